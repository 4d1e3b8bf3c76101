"""Any target plus ``ReadOptions`` -> the canonical pair and the ``Reading``.

Decided from the target's type and signatures alone (no call of the code under
test): a class or an object with layer methods is a layer; a function is a
function; the backward's parameters say whether it is a vjp ``backward(dout,
cache)`` or a function of one array (an elementwise derivative or a Jacobian,
told apart per call by the returned shape). What fits nothing is a
``ConventionError`` saying what was tried and which option or adapter fits.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from softmax_verify.core.implementation import Implementation
from softmax_verify.core.options import ReadOptions
from softmax_verify.target.arrays import ArrayLog
from softmax_verify.target.conventions._code import (
    GRAD_NAMES,
    OUTPUT_NAMES,
    Code,
    FunctionCode,
    LayerCode,
    fresh,
)
from softmax_verify.target.conventions._layout import Layout
from softmax_verify.target.conventions._options import Reading
from softmax_verify.target.conventions._reader import Reader
from softmax_verify.target.conventions._signatures import (
    ConventionError,
    binds,
    did_you_mean,
    output_first,
    required_names,
    returns_value,
    signature_text,
    stored_attributes,
)
from softmax_verify.target.local import LocalImplementation

__all__ = ["Canonical", "implementation_from", "is_layer", "read"]

Canonical = tuple[Callable[..., Any], Callable[..., Any] | None, Reading]

FORWARD_METHODS = ("forward", "forward_pass", "fprop", "__call__")
BACKWARD_METHODS = ("backward", "backward_pass", "bprop", "backwards")
GRAD_METHODS = ("gradient", "derivative")
_ELEMENTWISE_NOTE = (
    "an elementwise derivative g gives dx = dout * g, only the Jacobian's diagonal; "
    "softmax's Jacobian diag(y) - y y^T is not diagonal, so the backward checks show the "
    "off-diagonal part missing"
)
_ADAPTER = "or write an adapter: forward(x) -> y or (y, cache), backward(dout, cache) -> dx"


def _defines(cls: type, name: str) -> bool:
    return any(name in vars(k) for k in cls.__mro__ if k is not object)


def _method(owner: object, names: tuple[str, ...]) -> str | None:
    cls = owner if isinstance(owner, type) else type(owner)
    return next((n for n in names if _defines(cls, n) and callable(getattr(owner, n))), None)


def _takes(owner: object, name: str, count: int) -> bool:
    """Whether method ``name`` of ``owner`` (a class or an instance) takes ``count`` args."""
    extra = 0
    if isinstance(owner, type):
        raw = inspect.getattr_static(owner, name)
        extra = 0 if isinstance(raw, (staticmethod, classmethod)) else 1
    return binds(getattr(owner, name), count + extra)


def is_layer(target: object) -> bool:
    """A class, or an instance whose class defines a forward method (forward, fprop, ...),
    or ``__call__`` together with a backward or gradient method. (A callable object
    alone, e.g. a jitted function, is a function.)"""
    if isinstance(target, type):
        return True
    if inspect.isroutine(target) or inspect.ismodule(target):
        return False
    if _method(target, FORWARD_METHODS[:-1]) is not None:
        return True
    return (
        _method(target, ("__call__",)) is not None
        and _method(target, BACKWARD_METHODS + GRAD_METHODS) is not None
    )


def _layout_text(options: ReadOptions) -> str:
    if options.rowwise:
        return "rowwise: one call per 1-D row"
    return Layout(options.rank, options.axis).describe()


def _result_text(method: Callable[..., Any], names: tuple[str, ...], plain: str) -> tuple[str, str]:
    """(' -> y' or ' -> .output', the attribute to read) from the method's source."""
    if returns_value(method):
        return f"-> {plain}", ""
    stored = stored_attributes(method)
    attr = next((n for n in names if n in stored), stored[-1] if stored else "")
    if attr:
        return f"-> .{attr}", attr
    return f"-> {plain} or the array attribute it sets", ""


def _layer_kind(target: object, name: str) -> str:
    """How fresh layers are made; a constructor argument without a default is an error."""
    if not isinstance(target, type):
        return "instance, deep copy per forward call"
    missing = required_names(target)
    if missing:
        raise ConventionError(
            f"{name}: the constructor argument {missing[0]!r} has no default, and a fresh "
            f"instance is built for each forward call with no arguments; give it a default, "
            f"or name a module-level instance (FILE.py:instance) to be deep-copied"
        )
    return "class, fresh instance per forward call"


def _at_method(target: object, grad: str | None, bwd: str | None) -> str | None:
    """The method that returns an elementwise derivative or a Jacobian, if that is the
    convention: asked for with grad, or the only one there (gradient, derivative, or a
    backward(self) with no upstream reading the state)."""
    grad_method = _method(target, GRAD_METHODS)
    if grad in ("elementwise", "jacobian"):
        return grad_method or bwd  # e.g. backward(self, out) returning the derivative
    if bwd is None:
        return None if grad == "vjp" else grad_method
    if grad is None and not _takes(target, bwd, 1):
        return bwd
    return None


def _layer(target: object, options: ReadOptions, name: str) -> tuple[Code, Reading]:
    cls = target if isinstance(target, type) else type(target)
    fwd = _method(target, FORWARD_METHODS)
    if fwd is None:
        raise ConventionError(
            f"{name}: no forward method; tried {', '.join(FORWARD_METHODS)}"
            f"{did_you_mean(FORWARD_METHODS, dir(cls))}; {_ADAPTER}"
        )
    kind = _layer_kind(target, name)
    if not _takes(target, fwd, 1):
        raise ConventionError(
            f"{name}: {signature_text(getattr(target, fwd), '.' + fwd)} cannot be called as "
            f".{fwd}(x); give its other parameters defaults, {_ADAPTER}"
        )
    fwd_text, output = _result_text(getattr(cls, fwd), OUTPUT_NAMES, "y")
    forward = f".{fwd}(x) {fwd_text}"
    layout = _layout_text(options)
    bwd = _method(target, BACKWARD_METHODS)
    at_name = _at_method(target, options.grad, bwd)
    if options.grad == "vjp" or (at_name is None and bwd is not None):
        if bwd is None or not _takes(target, bwd, 1):
            raise ConventionError(
                f"{name}: grad vjp calls .backward(dout); tried {', '.join(BACKWARD_METHODS)}"
                f"{did_you_mean(BACKWARD_METHODS, dir(cls)) if bwd is None else ''}"
                f"{'' if bwd is None else ' and .' + bwd + ' does not take one argument'}; "
                f"{_ADAPTER}"
            )
        bwd_text, dx = _result_text(getattr(cls, bwd), GRAD_NAMES, "dx")
        code: Code = LayerCode(fresh(target), fwd, bwd, "vjp", "x", output=output, dx=dx)
        backward = f".{bwd}(dout) {bwd_text}"
        return code, Reading(name, kind, forward, backward, "vjp", None, layout)
    if at_name is None:  # a forward-only layer
        code = LayerCode(fresh(target), fwd, None, "vjp", "x", output=output)
        return code, Reading(name, kind, forward, None, None, None, layout)
    takes_arg = _takes(target, at_name, 1)
    if not takes_arg and not _takes(target, at_name, 0):
        raise ConventionError(
            f"{name}: .{at_name} takes neither one array nor no argument; {_ADAPTER}"
        )
    grad_at = options.grad_at or "x"
    code = LayerCode(fresh(target), fwd, at_name, "at", grad_at, output=output,
                     grad_takes_arg=takes_arg)  # fmt: skip
    call = f".{at_name}({grad_at})" if takes_arg else f".{at_name}() on the stored state"
    return code, _at_reading(name, kind, forward, call, options, grad_at if takes_arg else None)


def _at_reading(
    name: str, kind: str, fwd: str, call: str, options: ReadOptions, grad_at: str | None
) -> Reading:
    grad = options.grad or "elementwise or jacobian, by the returned shape"
    if options.grad == "jacobian":
        bwd = f"{call} -> J, dx = J^T dout per row"
    elif options.grad == "elementwise":
        bwd = f"{call} -> g, dx = dout * g"
    else:
        bwd = f"{call} -> g (dx = dout * g) or J (..., D, D) (dx = J^T dout)"
    notes = () if options.grad == "jacobian" else (_ELEMENTWISE_NOTE,)
    return Reading(name, kind, fwd, bwd, grad, grad_at, _layout_text(options), notes)


def _functions(
    forward: Callable[..., Any], backward: Callable[..., Any] | None, options: ReadOptions,
    name: str,
) -> tuple[Code | None, Reading]:  # fmt: skip
    fname = getattr(forward, "__name__", "forward")
    if not binds(forward, 1):
        raise ConventionError(
            f"{name}: {signature_text(forward, fname)} cannot be called as {fname}(x); tried "
            f"forward(x) and layer classes (pass the class or an instance, not its method); "
            f"give the other parameters defaults, {_ADAPTER}"
        )
    kind = "functions"
    fwd_text = f"{fname}(x) -> y or (y, cache)"
    if backward is None:
        code = None if _native(options) else FunctionCode(forward, None, "vjp", "x")
        return code, Reading(name, kind, fwd_text, None, None, None, _layout_text(options))
    bname = getattr(backward, "__name__", "backward")
    vjp_ok, at_ok = binds(backward, 2), binds(backward, 1)
    grad = options.grad or ("vjp" if vjp_ok else None)
    if grad == "vjp" and vjp_ok:
        swapped = output_first(backward)  # backprop_softmax(Y, dY): its names say the order
        native = _native(options) and not swapped
        code = None if native else FunctionCode(forward, backward, "vjp", "x", cache_first=swapped)
        bwd_text = f"{bname}(dout, cache) -> dx"
        if swapped:
            said = signature_text(backward, bname)
            bwd_text = f"{bname}(cache, dout) -> dx, the order {said} says"
        return code, Reading(name, kind, fwd_text, bwd_text, "vjp", None, _layout_text(options))
    if grad != "vjp" and at_ok:
        grad_at = options.grad_at or "x"
        code = FunctionCode(forward, backward, "at", grad_at)
        return code, _at_reading(name, kind, fwd_text, f"{bname}({grad_at})", options, grad_at)
    raise ConventionError(
        f"{name}: {signature_text(backward, bname)} fits no backward convention; tried "
        f"{bname}(dout, cache) -> dx (grad vjp) and {bname}(x or y) -> an elementwise "
        f"derivative or a Jacobian (grad elementwise/jacobian, --grad-at x|y); "
        f"give the other parameters defaults, {_ADAPTER}"
    )


def _native(options: ReadOptions) -> bool:
    """Whether the code's own forward/backward already are the canonical pair."""
    return not options.rowwise and Layout(options.rank, options.axis).identity


def read(
    forward: object,
    backward: Callable[..., Any] | None = None,
    options: ReadOptions | None = None,
    *,
    name: str | None = None,
    arrays: ArrayLog | None = None,
) -> Canonical:
    """``(forward, backward, reading)``: the canonical pair for ``forward`` (a function, a
    layer class or instance, or an object with forward/backward functions) and
    ``backward``, read as ``options`` says. Raises ``ConventionError`` when nothing fits.
    ``arrays`` reads the code's outputs that are other libraries' arrays (its own log
    when None; a canonical pair that is the code itself leaves them to the caller)."""
    options = options or ReadOptions()
    if not isinstance(options, ReadOptions):
        raise TypeError(f"options must be a ReadOptions, got {type(options).__name__}")
    label = name or str(getattr(forward, "__qualname__", type(forward).__qualname__))
    if backward is not None and not callable(backward):
        raise TypeError(f"backward must be callable or None, got {type(backward).__name__}")
    code: Code | None
    if is_layer(forward) and backward is None:
        if not isinstance(forward, type):
            pair = _namespace_pair(forward)
            if pair is not None:
                return read(pair[0], pair[1], options, name=label, arrays=arrays)
        code, reading = _layer(forward, options, label)
    elif callable(forward) and not isinstance(forward, type):
        code, reading = _functions(forward, backward, options, label)
        if code is None:
            return forward, backward, reading
    else:
        raise TypeError(
            f"forward must be a callable, a layer class or a layer instance, "
            f"got {type(forward).__name__}"
        )
    reader = Reader(code, Layout(options.rank, options.axis), rowwise=options.rowwise,
                    grad=options.grad, arrays=arrays or ArrayLog())  # fmt: skip
    return reader.forward, (reader.backward if reading.backward else None), reading


def _namespace_pair(obj: object) -> tuple[Callable[..., Any], Callable[..., Any]] | None:
    """An object whose ``forward(x)`` and ``backward(dout, cache)`` are plain functions
    (a namespace, not a layer: its backward is given the cache)."""
    forward, backward = getattr(obj, "forward", None), getattr(obj, "backward", None)
    if callable(forward) and callable(backward) and binds(backward, 2):
        return forward, backward
    return None


def implementation_from(
    forward: object,
    backward: Callable[..., Any] | None = None,
    options: ReadOptions | None = None,
    *,
    timeout: float | None = 10.0,
    name: str | None = None,
    wrap: Callable[[Callable[..., Any]], Callable[..., Any]] | None = None,
) -> tuple[Implementation, Reading]:
    """The ``Implementation`` of ``forward``/``backward`` read as ``options`` say, and the
    ``Reading``. ``wrap`` is applied to the canonical pair (e.g. to count calls). An
    ``Implementation`` given as ``forward`` is already read: it is returned as it is."""
    if isinstance(forward, Implementation):
        label = name or forward.name
        described = Reading(label, "implementation", "as built", "as built" if forward.has_backward
                            else None, None, None, "axis -1")  # fmt: skip
        return forward, described
    arrays = ArrayLog()  # one log: the reader's and the implementation's reads
    fwd, bwd, reading = read(forward, backward, options, name=name, arrays=arrays)
    if wrap is not None:
        fwd, bwd = wrap(fwd), None if bwd is None else wrap(bwd)
    impl = LocalImplementation(fwd, bwd, timeout=timeout, name=reading.name, arrays=arrays)
    return impl, reading
