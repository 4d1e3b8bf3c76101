"""Text from anywhere (the code under test, an exception, a report's message) as one line.

A report line, a usage error and a reply from the child each show the first line of
a message, never a dump: ``one_line`` is that line, ``describe_exception`` is an
exception's type and that line. The line holds no control character: a message of the
code under test cannot move the cursor, recolour or clear a terminal, rewrite an earlier
line of the report (a carriage return) or reorder its text (bidirectional overrides).
"""

from __future__ import annotations

import re

__all__ = ["MAX_MESSAGE", "describe_exception", "one_line"]

#: The longest message kept from the code under test: one line of a report, not a dump.
MAX_MESSAGE = 500
#: Terminal escape sequences (ECMA-48), removed whole: CSI (colours, cursor moves, ESC [
#: or the 8-bit CSI), OSC (a window title, a hyperlink; ended by BEL or ST), the string
#: commands DCS, SOS, PM and APC (ended by ST), and two-character escapes.
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"
    r"|\x1b[ -~]?"
)
#: Control characters left once the sequences are gone (C0, DEL, C1) and the
#: bidirectional overrides and isolates: removed.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def one_line(text: object) -> str:
    """``text`` as one printable line of valid UTF-8: first non-empty line, terminal escape
    sequences and control characters removed (a tab is a space), lone surrogates and
    other unencodable characters escaped, at most ``MAX_MESSAGE`` characters."""
    if not isinstance(text, str):
        text = repr(text)
    text = _ESCAPES.sub("", text).replace("\t", " ")
    lines = [kept for line in text.splitlines() if (kept := _CONTROLS.sub("", line).strip())]
    line = lines[0] if lines else ""
    line = line.encode("utf-8", "backslashreplace").decode("utf-8")
    return line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 3] + "..."


def describe_exception(exc: BaseException) -> str:
    """``Type: first line of the message``, whatever the exception's ``__str__`` does."""
    try:
        message = one_line(str(exc))
    except BaseException:  # a __str__ that raises (or exits) must not reach the verifier
        message = "<the exception's message could not be read>"
    name = one_line(getattr(type(exc), "__name__", "exception"))
    return name + (f": {message}" if message else "")
