"""What a callable accepts and what a method stores, read without calling it."""

from __future__ import annotations

import ast
import difflib
import inspect
import textwrap
from collections.abc import Callable, Iterable
from typing import Any

__all__ = [
    "UPSTREAM_NAMES",
    "ConventionError",
    "binds",
    "did_you_mean",
    "function_node",
    "output_first",
    "required_names",
    "returns_value",
    "signature_text",
    "stored_attributes",
]

#: Parameter names of an upstream gradient (of the loss with respect to the output), in
#: lower case; ``d`` + the other parameter's name (``dY`` beside ``Y``) is one too.
UPSTREAM_NAMES = frozenset(
    {
        "dout", "d_out", "dy", "dys", "gy", "grad", "grads", "g", "upstream", "grad_output",
        "grad_out", "grad_y", "output_grad", "grad_outputs", "dvalues", "delta", "dl_dy",
        "dloss", "top_diff", "dtop",
    }
)  # fmt: skip


class ConventionError(ValueError, TypeError):
    """The target fits none of the known conventions; the message says what was tried and
    which option or adapter fits. A usage error: exit 2 on the command line."""


def _signature(func: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(func)
    except (TypeError, ValueError):  # builtins and C functions may have none
        return None


def did_you_mean(wanted: str | tuple[str, ...], available: Iterable[object]) -> str:
    """``"; did you mean foward?"`` when ``available`` (names) has a near miss of a
    ``wanted`` name (a misspelt method is common in real code); ``""`` otherwise."""
    names = [n for n in available if isinstance(n, str) and not n.startswith("__")]
    for name in (wanted,) if isinstance(wanted, str) else wanted:
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.8)
        if close and close[0] != name:
            return f"; did you mean {close[0]}?"
    return ""


def binds(func: Callable[..., Any], count: int) -> bool:
    """Whether ``func`` accepts ``count`` positional arguments (True when unknowable)."""
    sig = _signature(func)
    if sig is None:
        return True
    try:
        sig.bind(*range(count))
    except TypeError:
        return False
    return True


def required_names(func: Callable[..., Any]) -> list[str]:
    """The parameters of ``func`` without a default (none when unknowable)."""
    sig = _signature(func)
    if sig is None:
        return []
    kinds = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [
        p.name
        for p in sig.parameters.values()
        if p.default is inspect.Parameter.empty and p.kind not in kinds
    ]


def _is_upstream(name: str, other: str) -> bool:
    low, other = name.lower(), other.lower()
    return low in UPSTREAM_NAMES or low in (f"d{other}", f"d_{other}", f"grad_{other}")


def output_first(func: Callable[..., Any]) -> bool:
    """Whether a backward's first two positional parameters, by their names, take the
    output (or cache) first and the upstream second: ``backprop_softmax(Y, dY)``,
    ``backward(probs, grad_output)``. False when the names say the usual order
    (``backward(dout, cache)``), say nothing, or cannot be read."""
    sig = _signature(func)
    if sig is None:
        return False
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    names = [p.name for p in sig.parameters.values() if p.kind in kinds][:2]
    if len(names) < 2:
        return False
    first, second = names
    return _is_upstream(second, first) and not _is_upstream(first, second)


def signature_text(func: Callable[..., Any], name: str) -> str:
    """``name(x, axis)``: the parameters by name, ``=...`` for those with a default."""
    sig = _signature(func)
    if sig is None:
        return f"{name}(...)"
    params = sig.replace(
        parameters=[p.replace(annotation=p.empty) for p in sig.parameters.values()],
        return_annotation=sig.empty,
    )
    return f"{name}{params}"


def function_node(func: Callable[..., Any]) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    try:
        source = textwrap.dedent(inspect.getsource(inspect.unwrap(func)))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError, IndentationError):
        return None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return node
    return None


def returns_value(func: Callable[..., Any]) -> bool | None:
    """Whether the function's source has a ``return`` of something other than None."""
    node = function_node(func)
    if node is None:
        return None
    for sub in ast.walk(node):
        value = sub.value if isinstance(sub, ast.Return) else None
        if value is not None and not (isinstance(value, ast.Constant) and value.value is None):
            return True
    return False


def stored_attributes(func: Callable[..., Any]) -> list[str]:
    """The attributes the method binds on its first parameter (``self.x = ...``), in order."""
    node = function_node(func)
    if node is None or not node.args.args:
        return []
    owner = node.args.args[0].arg
    names: list[str] = []
    for sub in ast.walk(node):
        targets: list[ast.expr] = []
        if isinstance(sub, ast.Assign):
            targets = list(sub.targets)
        elif isinstance(sub, (ast.AnnAssign, ast.AugAssign)):
            targets = [sub.target]
        for target in targets:
            if (
                isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id == owner
                and target.attr not in names
            ):
                names.append(target.attr)
    return names
