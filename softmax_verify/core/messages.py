"""Text from anywhere (the code under test, an exception, a report's message) as one line.

A report line, a usage error and a reply from the child each show the first line of
a message, never a dump: ``one_line`` is that line, ``describe_exception`` is an
exception's type and that line.
"""

from __future__ import annotations

__all__ = ["MAX_MESSAGE", "describe_exception", "one_line"]

#: The longest message kept from the code under test: one line of a report, not a dump.
MAX_MESSAGE = 500


def one_line(text: object) -> str:
    """``text`` as one printable line of valid UTF-8: first non-empty line, lone surrogates
    and other unencodable characters escaped, at most ``MAX_MESSAGE`` characters."""
    if not isinstance(text, str):
        text = repr(text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
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
