"""Resolving a TARGET string to the forward and backward callables it names.

- ``package.module:attr`` or ``path/to/file.py:attr``: ``attr`` (dotted paths
  allowed) is the forward, a layer class or instance (``softmax_verify.target.conventions``),
  or an object whose ``forward``/``backward`` attributes are the pair.
- ``path/to/file.py`` or ``package.module`` alone: the module's ``forward`` and
  ``backward``, or ``softmax_forward`` and ``softmax_backward``.
- ``scipy``, ``torch``, ``jax``: the built-in framework adapters.
- ``reference`` (or no target): the bundled reference.

A target written with a library's ops (``autodiff`` one of ``core.options.AUTODIFF``, or
detected by its type or module: ``tf.nn.softmax``, ``jax.nn.softmax``, a mygrad op, a
keras function or layer, a ``torch.autograd.Function`` subclass, an ``nn.Module``, a
``jax.custom_vjp`` function) is read by softmax_verify.target.autodiff, whose backward
is the library's autodiff. What the code returns may be another library's array
(softmax_verify.target.arrays); the reading names it once the code has been called
(``with_outputs_read``).

For the ``cross_entropy`` kind (``load_loss_implementation``) the same spellings name a
loss: ``FILE.py`` alone its ``cross_entropy``/``cross_entropy_backward``,
``softmax_loss`` or ``forward``/``backward``; ``torch`` and ``jax`` the built-in peers
(``frameworks.loss_peer``); a framework target (torch or jax) is read by
``target.autodiff_loss``.
"""

from __future__ import annotations

import dataclasses
import errno
import importlib
import importlib.util
import inspect
import os
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from softmax_verify.bundled.cross_entropy import cross_entropy, cross_entropy_backward
from softmax_verify.bundled.reference import (
    log_softmax,
    log_softmax_backward,
    softmax,
    softmax_backward,
)
from softmax_verify.core.implementation import Implementation
from softmax_verify.core.kinds import Kind
from softmax_verify.core.loss_implementation import LossImplementation
from softmax_verify.core.messages import describe_exception
from softmax_verify.core.options import LossOptions, Options
from softmax_verify.target.arrays import ArrayLog
from softmax_verify.target.autodiff import (
    AutodiffError,
    AutodiffForward,
    adapt,
    library_of_module,
    uses,
)
from softmax_verify.target.autodiff_loss import AutodiffLoss, adapt_loss
from softmax_verify.target.conventions import (
    ConventionError,
    Reading,
    did_you_mean,
    implementation_from,
    is_layer,
    loss_implementation_from,
    required_names,
)
from softmax_verify.target.frameworks import FRAMEWORKS, MissingFramework, adapter, loss_peer

__all__ = [
    "REFERENCES",
    "TargetError",
    "TargetSpec",
    "load_implementation",
    "load_loss_implementation",
    "load_target",
    "reference_loss",
    "resolve",
    "resolve_callable",
    "resolve_loss_target",
    "resolve_target",
    "with_autodiff_note",
    "with_code_hints",
    "with_outputs_read",
]

_PAIRS = (("forward", "backward"), ("softmax_forward", "softmax_backward"))
#: A cross-entropy module's own pair: a loss and its gradient, or a loss returning both.
_LOSS_PAIRS = (
    ("cross_entropy", "cross_entropy_backward"),
    ("softmax_loss", "softmax_loss_backward"),
    ("forward", "backward"),
)
#: The bundled reference of each kind: what no target (or ``reference``) checks.
REFERENCES: dict[Kind, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "softmax": (softmax, softmax_backward),
    "log_softmax": (log_softmax, log_softmax_backward),
    "cross_entropy": (cross_entropy, cross_entropy_backward),
}


def reference_loss(options: LossOptions) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The bundled cross-entropy pair for the run's reduction: ``cross_entropy(x, labels)``
    and ``cross_entropy_backward(x, labels, dout)`` (any label form)."""
    reduction = options.reduction

    def loss(x: Any, labels: Any) -> Any:
        return cross_entropy(x, labels, reduction)

    def backward(x: Any, labels: Any, dout: Any) -> Any:
        return cross_entropy_backward(x, labels, dout, reduction)

    loss.__name__ = loss.__qualname__ = "cross_entropy"
    backward.__name__ = backward.__qualname__ = "cross_entropy_backward"
    return loss, backward


class TargetError(ValueError):
    """A TARGET that cannot be resolved; the message says why in one line."""


def _load_module(spec: str) -> ModuleType:
    if os.getcwd() not in sys.path and "" not in sys.path:
        # As under ``python -m``: the console script's sys.path lacks the working directory,
        # where the user's own packages are (a FILE.py target may import them too).
        sys.path.insert(0, os.getcwd())
    if spec.endswith(".py") or os.sep in spec or "/" in spec:
        path = os.path.abspath(spec)
        if not os.path.isfile(path):
            raise TargetError(_not_a_file(spec, path))
        name = "softmax_verify_target_" + os.path.splitext(os.path.basename(path))[0]
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise TargetError(f"cannot load {spec} as a Python module")
        module = importlib.util.module_from_spec(module_spec)
        sys.path.insert(0, os.path.dirname(path))  # so the file can import its neighbours
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except (Exception, SystemExit) as exc:  # a stray sys.exit() must not end the run with 0
            raise TargetError(f"importing {spec} failed: {describe_exception(exc)}") from None
        return module
    try:
        return importlib.import_module(spec)
    except (Exception, SystemExit) as exc:
        raise TargetError(f"cannot import module {spec!r}: {describe_exception(exc)}") from None


#: What a path that is not a regular file is, by ``stat``'s file type test.
_FILE_TYPES = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _not_a_file(spec: str, path: str) -> str:
    """Why ``path`` cannot be loaded: missing, or what it is instead of a Python file."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return f"no such file: {spec}"
        return f"cannot read {spec}: {exc.strerror}"
    what = next((name for test, name in _FILE_TYPES if test(mode)), "not a regular file")
    hint = "; name a FILE.py in it, or a MODULE" if stat.S_ISDIR(mode) else ""
    return f"{spec} is {what}, not a Python file{hint}"


#: The instance each class named as ``Class.method`` was built as, for one reading of a
#: target: a forward and a backward named as methods of one class share it.
Instances = dict[type, object]


def _getattr_path(obj: Any, path: str, spec: str, instances: Instances) -> Any:
    """``obj.a.b``: each part of the dotted ``path`` in turn. A method of a class
    (``Class.method``: neither a static nor a class method) is taken from one instance of
    the class built with no arguments, as a user would call it (``NumpyOps().softmax``)."""
    for part in path.split("."):
        if not hasattr(obj, part):
            raise TargetError(f"{spec}: no attribute {part!r}{did_you_mean(part, dir(obj))}")
        if isinstance(obj, type) and inspect.isfunction(inspect.getattr_static(obj, part)):
            obj = _instance(obj, spec, instances)
        obj = getattr(obj, part)
    return obj


def _instance(cls: type, spec: str, instances: Instances) -> object:
    """The one instance of ``cls`` the target's methods are taken from, built on first use."""
    if cls not in instances:
        missing = required_names(cls)
        if missing:
            raise TargetError(
                f"{spec}: a method is taken from an instance built with no arguments, and "
                f"{cls.__qualname__}'s constructor argument {missing[0]!r} has no default; give "
                f"it one, or name a module-level instance (MODULE:instance.method)"
            )
        try:
            instances[cls] = cls()
        except (Exception, SystemExit) as exc:
            raise TargetError(
                f"{spec}: building {cls.__qualname__}() failed: {describe_exception(exc)}"
            ) from None
    return instances[cls]


def resolve_callable(spec: str, instances: Instances | None = None) -> Callable[..., Any]:
    """The single callable ``module:attr`` or ``file.py:attr`` names (for --backward);
    ``instances``: those the forward's reading built (``Class.method``)."""
    module_part, sep, attr = spec.rpartition(":")
    if not sep or not module_part or not attr:
        raise TargetError(f"expected MODULE:ATTR or FILE.py:ATTR, got {spec!r}")
    found = _getattr_path(
        _load_module(module_part), attr, spec, {} if instances is None else instances
    )
    if not callable(found):
        raise TargetError(f"{spec} is a {type(found).__name__}, not a callable")
    result: Callable[..., Any] = found
    return result


def _autodiff(
    found: Any, autodiff: str | None, device: str
) -> tuple[Callable[..., Any], Callable[..., Any] | None] | None:
    """The hook to softmax_verify.target.autodiff: the numpy pair of a framework target, or None."""
    try:
        adapted = adapt(found, autodiff, device=device)
    except (AutodiffError, MissingFramework) as exc:
        raise TargetError(str(exc)) from None
    return None if adapted is None else (adapted.forward, adapted.backward)


def resolve(
    spec: str | None, *, autodiff: str | None = None, device: str = "cpu"
) -> tuple[Callable[..., Any], Callable[..., Any] | None]:
    """``(forward, backward)`` for a TARGET; backward may be None.

    ``autodiff`` (``"torch"``/``"jax"``) and ``device``: see softmax_verify.target.autodiff.
    """
    found, backward = resolve_target(spec, autodiff=autodiff, device=device)
    if is_layer(found):
        raise TargetError(f"{spec} is a layer; read it with load_implementation")
    return found, backward


def resolve_target(
    spec: str | None,
    *,
    autodiff: str | None = None,
    device: str = "cpu",
    kind: Kind = "softmax",
    instances: Instances | None = None,
) -> tuple[Any, Callable[..., Any] | None]:
    """``(forward, backward)`` for a TARGET, where the forward may be a layer class or
    instance (its backward then None: the layer's own methods are read), or a target
    written with a framework's ops, read through its autodiff (``autodiff``, ``device``:
    see softmax_verify.target.autodiff). No target (or ``reference``) is the bundled
    reference of ``kind``."""
    if (autodiff is not None or device != "cpu") and spec in (None, "reference", *FRAMEWORKS):
        raise TargetError(
            f"--autodiff and --device need a target of yours (MODULE:ATTR), not {spec!r}"
        )
    if spec is None or spec == "reference":
        return REFERENCES[kind]
    if spec in FRAMEWORKS:
        try:
            return adapter(spec)
        except ImportError as exc:
            raise TargetError(str(exc)) from None
    module_part, sep, attr = spec.rpartition(":")
    if sep and module_part and attr and not (len(module_part) == 1 and module_part.isalpha()):
        found = _getattr_path(
            _load_module(module_part), attr, spec, {} if instances is None else instances
        )
        pair = _autodiff(found, autodiff, device)
        if pair is not None:
            return pair
        if is_layer(found):
            return found, None
        if hasattr(found, "forward") and callable(found.forward):
            return found.forward, getattr(found, "backward", None)
        if not callable(found):
            raise TargetError(f"{spec} is a {type(found).__name__}, not a callable")
        return found, None
    module = _load_module(spec)
    for fwd, bwd in _PAIRS:
        if callable(getattr(module, fwd, None)):
            pair = _autodiff(getattr(module, fwd), autodiff, device)
            return pair or (getattr(module, fwd), getattr(module, bwd, None))
    raise TargetError(
        f"{spec} has no forward/backward or softmax_forward/softmax_backward; "
        f"name one as {spec}:ATTR"
    )


@dataclass(frozen=True)
class TargetSpec:
    """A target as the command line names it, and the run's options (how to read and call
    it among them): plain values, so it crosses to a child process."""

    target: str | None
    backward: str | None = None
    options: Options = field(default_factory=Options)

    @property
    def compiled_per_shape(self) -> bool:
        """Whether the target is compiled once per shape: the built-in ``jax``, ``--autodiff
        jax``, or a function of jax's own named by its module (``jax.nn:softmax``), as the
        command line says (its verifier never loads the target, so a jax target
        detected in the child by its type is not known here)."""
        if self.target == "jax" or self.options.autodiff == "jax":
            return True
        module, _, attr = (self.target or "").rpartition(":")
        is_file = module.endswith(".py") or "/" in module or os.sep in module
        own = bool(attr) and not is_file and module.split(".")[0] == "jax"
        return own and self.options.autodiff is None


def load_implementation(spec: TargetSpec) -> tuple[Implementation, Reading]:
    """The Implementation ``spec`` names, read as its options say, and how it was read: the
    one place a target is read. Imports the user's code, so the command line calls it only
    in its child. Raises ``TargetError`` for anything the user must fix: a target that
    cannot be loaded, or one that fits no convention."""
    options, instances = spec.options, Instances()
    forward, found_backward = resolve_target(
        spec.target,
        autodiff=options.autodiff,
        device=options.device,
        kind=options.kind,
        instances=instances,
    )
    if spec.backward:
        if isinstance(forward, AutodiffForward):
            raise TargetError(
                f"--backward cannot be given for an autodiff target ({forward.interpretation}): "
                f"autodiff is it"
            )
        found_backward = resolve_callable(spec.backward, instances)
    try:
        impl, reading = implementation_from(
            forward,
            found_backward,
            options.read,
            timeout=options.timeout,
            name=spec.target or "reference",
        )
    except ConventionError as exc:
        raise TargetError(str(exc)) from None
    notes = tuple(filter(None, (_method_note(f, instances) for f in (forward, found_backward))))
    if notes:
        reading = dataclasses.replace(reading, notes=(*reading.notes, *notes))
    return impl, with_code_hints(with_autodiff_note(reading, forward), forward)


def _method_note(function: object, instances: Instances) -> str:
    """What the report says of a ``Class.method`` target: whose method, and which instance."""
    owner = getattr(function, "__self__", None)
    if not inspect.ismethod(function) or instances.get(type(owner)) is not owner:
        return ""
    cls = type(owner).__qualname__
    return f"{cls}.{function.__name__}: a method of one {cls}() built with no arguments"


def with_autodiff_note(reading: Reading, forward: object) -> Reading:
    """``reading``, saying how a framework target was read (softmax_verify.target.autodiff)."""
    how = getattr(forward, "interpretation", None) if isinstance(forward, AutodiffForward) else None
    return dataclasses.replace(reading, autodiff=str(how)) if how else reading


def _hinted(reading: Reading, found: list[tuple[str, str]]) -> Reading:
    """``reading`` with a note for each ``(library, why)`` in ``found``: a forward read without
    autodiff and without a backward has its gradient checked by ``--autodiff LIBRARY``."""
    if reading.autodiff is not None or reading.backward is not None:
        return reading
    notes = list(reading.notes)
    for library, why in found:
        flag = f"--autodiff {library}"
        if not any(flag + " " in note for note in notes):
            notes.append(
                f"the forward alone is checked (no backward): it {why}; {flag} would also "
                f"check its gradient"
            )
    return dataclasses.replace(reading, notes=tuple(notes))


def with_code_hints(reading: Reading, forward: object) -> Reading:
    """``reading``, with the ``--autodiff`` that would check the gradient of a forward
    whose code calls a library that has one (``autodiff.uses``: read, never called)."""
    if isinstance(forward, AutodiffForward):
        return reading
    return _hinted(reading, [(library, f"calls {library}") for library in uses(forward)])


def with_outputs_read(reading: Reading, impl: object) -> Reading:
    """``reading`` after the calls of ``impl``: which other libraries' arrays its code
    returned (``target.arrays``), and the ``--autodiff`` that would check the gradient
    of a forward read without one."""
    log = getattr(impl, "arrays", None)
    if not isinstance(log, ArrayLog) or not log.read:
        return reading
    found = []
    for name in log.read:
        library = library_of_module(name.split(" ")[0])
        if library is not None:
            found.append((library, f"returns a {name}"))
    return _hinted(dataclasses.replace(reading, arrays=log.describe()), found)


def _loss_autodiff(found: Any, options: Options) -> AutodiffLoss | None:
    """The hook to softmax_verify.target.autodiff_loss: a framework loss target's LossCode."""
    try:
        return adapt_loss(found, options.autodiff, device=options.device, loss=options.loss)
    except (AutodiffError, MissingFramework) as exc:
        raise TargetError(str(exc)) from None


def _loss_framework(spec: str, options: Options) -> AutodiffLoss:
    try:
        function, framework = loss_peer(spec, options.loss)
        code = adapt_loss(function, framework, loss=options.loss)
    except ImportError as exc:
        raise TargetError(str(exc)) from None
    except ValueError as exc:
        raise TargetError(f"{exc} (the scipy adapter checks a softmax)") from None
    assert code is not None  # a framework was named
    return code


def resolve_loss_target(
    spec: str | None, options: Options, instances: Instances | None = None
) -> tuple[Any, Callable[..., Any] | None]:
    """``(loss, gradient)`` for a cross-entropy TARGET: the loss a function, a loss layer
    (its gradient then None: the layer's own backward is read) or a framework target's
    ``LossCode``; no target (or ``reference``) is the bundled reference."""
    if (options.autodiff is not None or options.device != "cpu") and spec in (
        None, "reference", *FRAMEWORKS,
    ):  # fmt: skip
        raise TargetError(
            f"--autodiff and --device need a target of yours (MODULE:ATTR), not {spec!r}"
        )
    if spec is None or spec == "reference":
        return reference_loss(options.loss)
    if spec in FRAMEWORKS:
        return _loss_framework(spec, options), None
    module_part, sep, attr = spec.rpartition(":")
    if sep and module_part and attr and not (len(module_part) == 1 and module_part.isalpha()):
        found = _getattr_path(
            _load_module(module_part), attr, spec, {} if instances is None else instances
        )
        return _loss_autodiff(found, options) or found, None
    module = _load_module(spec)
    for loss_name, grad_name in _LOSS_PAIRS:
        if callable(getattr(module, loss_name, None)):
            found = getattr(module, loss_name)
            code = _loss_autodiff(found, options)
            return (code, None) if code is not None else (found, getattr(module, grad_name, None))
    names = ", ".join(f"{a}/{b}" for a, b in _LOSS_PAIRS)
    raise TargetError(f"{spec} has none of {names}; name one as {spec}:ATTR")


def load_loss_implementation(spec: TargetSpec) -> tuple[LossImplementation, Reading]:
    """``load_implementation`` for the ``cross_entropy`` kind: the LossImplementation
    ``spec`` names, read as its options say, and how it was read. ``TargetError`` for
    anything the user must fix."""
    options, instances = spec.options, Instances()
    loss, gradient = resolve_loss_target(spec.target, options, instances)
    if spec.backward:
        if isinstance(loss, AutodiffLoss):
            raise TargetError("--backward cannot be given for an autodiff target: autodiff is it")
        gradient = resolve_callable(spec.backward, instances)
    try:
        impl, reading = loss_implementation_from(
            loss, gradient, options.read, options.loss,
            timeout=options.timeout, name=spec.target or "reference",
        )  # fmt: skip
    except ConventionError as exc:
        raise TargetError(str(exc)) from None
    notes = tuple(filter(None, (_method_note(f, instances) for f in (loss, gradient))))
    if isinstance(loss, AutodiffLoss):
        reading = dataclasses.replace(reading, autodiff=loss.interpretation)
    if notes:
        reading = dataclasses.replace(reading, notes=(*reading.notes, *notes))
    return impl, reading


def load_target(spec: TargetSpec) -> tuple[Implementation | LossImplementation, Reading]:
    """The target ``spec`` names, read for its kind: a cross-entropy's LossImplementation
    (``load_loss_implementation``) or a softmax's Implementation (``load_implementation``)."""
    if spec.options.kind == "cross_entropy":
        return load_loss_implementation(spec)
    return load_implementation(spec)
