"""Any cross-entropy target -> its ``LossCode`` and the ``Reading``, decided without calling it.

From the target's type, signatures and source alone (as the softmax kinds are read):

- a function ``f(x, labels)``: its source's ``return loss, dx`` makes it a pair (the
  second element a gradient; one named like probabilities, ``return loss, probs``, is
  not), any other return the loss alone;
- a loss function and a gradient function (``--backward``): ``g(x, labels) -> dx``, or
  ``g(x, labels, dout)`` taking the upstream;
- a loss layer (a class built with no arguments, fresh for each call, or an instance,
  deep-copied): ``forward(x, labels)`` (or ``__call__``, ``forward_pass``, ``fprop``)
  returning the loss, ``(loss, probs)``, or storing it (``self.loss``); its backward read
  from its parameters: ``backward()``; ``backward(dout=1)`` (one parameter: the upstream);
  ``backward(x, labels)`` (the inputs again); ``backward(dvalues, y_true)`` (a first
  parameter named like the forward's output: the probabilities it stored or returned,
  and the labels); returning dx or storing it (``self.dinputs``).

What fits nothing is a ``ConventionError`` saying what was tried.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable
from typing import Any

from softmax_verify.core.options import LossOptions, ReadOptions
from softmax_verify.target.conventions._code import OUTPUT_NAMES, fresh
from softmax_verify.target.conventions._layout import Layout
from softmax_verify.target.conventions._loss_code import (
    LOSS_GRAD_NAMES,
    LOSS_NAMES,
    BackwardArgs,
    FunctionLoss,
    LayerLoss,
    LossCode,
    PairedLoss,
)
from softmax_verify.target.conventions._options import Reading
from softmax_verify.target.conventions._signatures import (
    ConventionError,
    binds,
    did_you_mean,
    function_node,
    required_names,
    returns_value,
    signature_text,
    stored_attributes,
)

__all__ = [
    "BACKWARD_METHODS",
    "FORWARD_METHODS",
    "PROBS_PARAMETERS",
    "is_loss_layer",
    "read_loss",
    "returned_pair",
]

FORWARD_METHODS = ("forward", "forward_pass", "fprop", "__call__")
BACKWARD_METHODS = ("backward", "backward_pass", "bprop", "backwards")
#: A backward's first parameter named so receives the forward's output probabilities (the
#: combined softmax and cross-entropy class of the "from scratch" book: dvalues).
PROBS_PARAMETERS: tuple[str, ...] = (
    "dvalues", "probs", "probabilities", "y_pred", "y_hat", "output", "outputs",
    "softmax_output", "predictions", "preds", "p",
)  # fmt: skip
#: The second element of ``return loss, NAME`` read as the probabilities, not a gradient.
_PROBS_RESULTS = frozenset((*PROBS_PARAMETERS, "prob", "softmax", "y"))
_ADAPTER = "or write an adapter: loss(x, labels) -> (loss, dx)"


def _positional(func: Callable[..., Any]) -> list[inspect.Parameter] | None:
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p for p in params if p.kind in kinds]


def _last_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _called(func: Callable[..., Any], call: ast.Call) -> Callable[..., Any] | None:
    """The function a ``return f(...)`` calls, when ``f`` is a name of the function's module
    (a loss method that delegates: ``return softmax_loss(scores, y)``)."""
    if not isinstance(call.func, ast.Name):
        return None
    found = getattr(inspect.unwrap(func), "__globals__", {}).get(call.func.id)
    return found if inspect.isfunction(found) else None


def returned_pair(func: Callable[..., Any], depth: int = 3) -> bool | None:
    """Whether the function's source returns ``(loss, dx)``: a 2-tuple whose second element
    is not named like probabilities, or the result of a function of its module that does
    (followed ``depth`` calls deep). None when the source cannot be read."""
    node = function_node(func)
    if node is None:
        return None
    verdicts: list[bool | None] = []
    for sub in ast.walk(node):
        if not isinstance(sub, ast.Return) or sub.value is None:
            continue
        value = sub.value
        if isinstance(value, ast.Tuple) and len(value.elts) == 2:
            verdicts.append(_last_name(value.elts[1]) not in _PROBS_RESULTS)
        elif isinstance(value, ast.Call) and depth and (callee := _called(func, value)):
            verdicts.append(returned_pair(callee, depth - 1))
    return bool(verdicts) and all(verdicts)


def _layout_text(read: ReadOptions, loss: LossOptions) -> str:
    return f"labels {loss.labels}; " + Layout(read.rank, read.axis).describe()


def _grad_text(loss: LossOptions, takes_upstream: bool) -> str:
    """``grad`` of the reading: which scalar dx is the gradient of, at which upstream."""
    if loss.reduction == "none":
        upstream = "the upstream vector passed" if takes_upstream else "ones"
        return f"of the rows' losses weighted by {upstream}"
    upstream = "the upstream passed" if takes_upstream else "upstream 1"
    return f"of the {loss.reduction} loss, at {upstream}"


def _functions(
    forward: Callable[..., Any], backward: Callable[..., Any] | None, name: str,
    read: ReadOptions, loss: LossOptions,
) -> tuple[LossCode, Reading]:  # fmt: skip
    fname = getattr(forward, "__name__", "loss")
    if not binds(forward, 2):
        raise ConventionError(
            f"{name}: {signature_text(forward, fname)} cannot be called as {fname}(x, labels); "
            f"give the other parameters defaults, {_ADAPTER}"
        )
    layout = _layout_text(read, loss)
    notes: tuple[str, ...] = ()
    if backward is not None:
        bname = getattr(backward, "__name__", "backward")
        params = _positional(backward)
        upstream = params is not None and len(params) >= 3 and binds(backward, 3)
        if not (upstream or binds(backward, 2)):
            raise ConventionError(
                f"{name}: {signature_text(backward, bname)} cannot be called as "
                f"{bname}(x, labels) or {bname}(x, labels, dout); {_ADAPTER}"
            )
        code: LossCode = PairedLoss(forward, backward, takes_upstream=upstream)
        called = f"{bname}(x, labels{', dout' if upstream else ''}) -> dx"
        return code, Reading(name, "functions", f"{fname}(x, labels) -> loss", called,
                             _grad_text(loss, upstream), None, layout)  # fmt: skip
    pair = returned_pair(forward)
    if pair is None:
        notes = (f"the source of {fname} could not be read: read as a loss alone; name its "
                 "gradient with --backward",)  # fmt: skip
    code = FunctionLoss(forward, pair=bool(pair))
    if not pair:
        return code, Reading(name, "function", f"{fname}(x, labels) -> loss", None, None, None,
                             layout, notes)  # fmt: skip
    return code, Reading(name, "function", f"{fname}(x, labels) -> (loss, dx)",
                         "the dx it returns", _grad_text(loss, False), None, layout)  # fmt: skip


def _defines(cls: type, name: str) -> bool:
    return any(name in vars(k) for k in cls.__mro__ if k is not object)


def _method(cls: type, names: tuple[str, ...]) -> str | None:
    return next((n for n in names if _defines(cls, n) and callable(getattr(cls, n))), None)


def _own_parameters(target: object, name: str) -> list[inspect.Parameter]:
    """The positional parameters of method ``name`` as a caller passes them (no self)."""
    cls = target if isinstance(target, type) else type(target)
    raw = inspect.getattr_static(cls, name)
    params = _positional(getattr(target, name)) or []
    bound = isinstance(target, type) and not isinstance(raw, (staticmethod, classmethod))
    return params[1:] if bound else params


def _takes(target: object, name: str, count: int) -> bool:
    """Whether method ``name`` of ``target`` (a class or an instance) takes ``count`` args."""
    extra = 0
    if isinstance(target, type):
        raw = inspect.getattr_static(target, name)
        extra = 0 if isinstance(raw, (staticmethod, classmethod)) else 1
    return binds(getattr(target, name), count + extra)


def _backward_args(target: object, name: str, label: str) -> BackwardArgs:
    """What the loss layer's backward is given, from its parameters (module docstring): none
    at all, one (required or with a default: the upstream), or two required ones (the
    forward's probabilities and the labels when the first is named like them, else the
    inputs again)."""
    params = _own_parameters(target, name)
    required = [p for p in params if p.default is inspect.Parameter.empty]
    if not params:
        return "nothing"
    if len(required) <= 1:
        return "upstream"
    if len(required) == 2:
        return "probs" if required[0].name in PROBS_PARAMETERS else "inputs"
    shown = f".{name}({', '.join(p.name for p in params)})"
    raise ConventionError(
        f"{label}: {shown} fits no loss backward; tried .{name}(), .{name}(dout=1), "
        f".{name}(x, labels) and .{name}(dvalues, y_true) (the forward's probabilities); "
        f"{_ADAPTER}"
    )


def _attribute(method: Callable[..., Any], names: tuple[str, ...]) -> str:
    """The first of ``names`` the method's source stores on its object, or ''."""
    stored = stored_attributes(method)
    return next((n for n in names if n in stored), "")


def _backward_text(bwd: str, args: BackwardArgs, probs_attr: str, dx_text: str) -> str:
    given = {
        "upstream": "dout=the upstream",
        "nothing": "",
        "inputs": "x, labels",
        "probs": f"the forward's probabilities{' (.' + probs_attr + ')' if probs_attr else ''}, "
        "labels",
    }[args]
    return f".{bwd}({given}) {dx_text}"


def _layer_make(target: object, name: str) -> tuple[Callable[[], object], str]:
    if not isinstance(target, type):
        return fresh(target), "instance, deep copy per call"
    missing = required_names(target)
    if missing:
        raise ConventionError(
            f"{name}: the constructor argument {missing[0]!r} has no default, and a fresh "
            f"instance is built for each call with no arguments; give it a default, or name "
            f"a module-level instance (FILE.py:instance) to be deep-copied"
        )
    return target, "class, fresh instance per call"


def _layer(target: object, name: str, read: ReadOptions, loss: LossOptions) -> tuple[
    LossCode, Reading
]:  # fmt: skip
    cls = target if isinstance(target, type) else type(target)
    fwd = _method(cls, FORWARD_METHODS)
    if fwd is None:
        raise ConventionError(
            f"{name}: has no forward; tried {', '.join(FORWARD_METHODS)}"
            f"{did_you_mean(FORWARD_METHODS, dir(cls))}; {_ADAPTER}"
        )
    if not _takes(target, fwd, 2):
        shown = ", ".join(p.name for p in _own_parameters(target, fwd))
        raise ConventionError(
            f"{name}: .{fwd}({shown}) cannot be called as .{fwd}(x, labels); give its other "
            f"parameters defaults, {_ADAPTER}"
        )
    make, kind = _layer_make(target, name)
    forward_method = getattr(cls, fwd)
    loss_attr = "" if returns_value(forward_method) else _attribute(forward_method, LOSS_NAMES)
    returned = f".{loss_attr}" if loss_attr else "loss or (loss, probs)"
    fwd_text = f".{fwd}(x, labels) -> {returned}"
    layout = _layout_text(read, loss)
    bwd = _method(cls, BACKWARD_METHODS)
    if bwd is None:
        near = did_you_mean(BACKWARD_METHODS, dir(cls))
        notes = (f"no backward method{near}: the gradient invariants are skipped",) if near else ()
        code: LossCode = LayerLoss(make, fwd, None, "nothing", loss_attr=loss_attr)
        return code, Reading(name, kind, fwd_text, None, None, None, layout, notes)
    args = _backward_args(target, bwd, name)
    backward_method = getattr(cls, bwd)
    probs_attr = _attribute(forward_method, OUTPUT_NAMES) if args == "probs" else ""
    dx_attr = "" if returns_value(backward_method) else _attribute(backward_method, LOSS_GRAD_NAMES)
    dx_text = f"-> .{dx_attr}" if dx_attr else "-> dx"
    code = LayerLoss(make, fwd, bwd, args, loss_attr=loss_attr, probs_attr=probs_attr,
                     dx_attr=dx_attr)  # fmt: skip
    bwd_text = _backward_text(bwd, args, probs_attr, dx_text)
    grad = _grad_text(loss, args == "upstream")
    return code, Reading(name, kind, fwd_text, bwd_text, grad, None, layout)


def is_loss_layer(target: object) -> bool:
    """A class, or an instance whose class defines a forward method (forward, fprop, ...),
    or ``__call__`` together with a backward method."""
    if isinstance(target, type):
        return True
    if inspect.isroutine(target) or inspect.ismodule(target):
        return False
    cls = type(target)
    if _method(cls, FORWARD_METHODS[:-1]) is not None:
        return True
    return _method(cls, ("__call__",)) is not None and _method(cls, BACKWARD_METHODS) is not None


def read_loss(
    target: object,
    backward: Callable[..., Any] | None,
    read: ReadOptions,
    loss: LossOptions,
    *,
    name: str,
) -> tuple[LossCode, Reading]:
    """The ``LossCode`` of a cross-entropy ``target`` (a function, or a loss layer class or
    instance) and ``backward`` (a gradient function, or None), and how it was read; a
    ``ConventionError`` when nothing fits."""
    if isinstance(target, LossCode):  # a framework target, read by target.autodiff_loss
        return target, Reading(
            name, "framework", "loss(logits, labels) -> loss",
            "the framework's autodiff" if target.has_backward else None,
            _grad_text(loss, target.takes_upstream), None, _layout_text(read, loss),
        )  # fmt: skip
    if backward is not None and not callable(backward):
        raise TypeError(f"backward must be callable or None, got {type(backward).__name__}")
    if is_loss_layer(target) and backward is None:
        return _layer(target, name, read, loss)
    if callable(target) and not isinstance(target, type):
        return _functions(target, backward, name, read, loss)
    raise TypeError(
        f"forward must be a loss function, or a loss layer class or instance, got "
        f"{type(target).__name__}"
    )
