"""The half-precision accumulation model is passed, never defaulted, on the way to a tolerance.

Every tolerance whose result depends on the model takes it as ``accumulate``, with the
documented default ``"float32"``; a check that forgot to pass it would silently judge
half precision under that default whatever ``Options.accumulate`` said. So every call of
such a function (and of a gradient check) in ``softmax_verify/invariants/`` and
``softmax_verify/gradcheck/`` must pass ``accumulate=`` a value that is not a literal.

Which tolerances depend on the model is read off the source, as a static call graph: those
that call ``_model``, ``chain``, ``_tiny`` or ``is_probabilistic`` (the four that read the
model), and those that
call one that does. Then a behavioural check: a float16 kernel that accumulates in float16
passes under ``"input"`` and fails under ``"float32"``, through ``verify``.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import kernel_impls as k

import softmax_verify.tolerances as tolerances
from softmax_verify import gradcheck, verify
from softmax_verify.core.domain import Domain
from softmax_verify.core.options import Accumulation, Options

PACKAGE = Path(tolerances.__file__).resolve().parents[1]
ROOT = PACKAGE.parent
#: The functions that read the model itself (each takes it as a required argument).
READERS = frozenset({"_model", "chain", "_tiny", "is_probabilistic"})
#: The gradient checks, which pass the model on to their tolerances.
GRADCHECKS = frozenset(
    {
        "numerical_vjp_check",
        "directional_check",
        "full_jacobian_check",
        "log_softmax_directional_check",
    }
)
#: The model-dependent tolerances as the task stated them (a static call graph).
STATED = frozenset(
    {
        "_backward_bound",
        "backward_error_bound",
        "reference_backward_bound",
        "stage_bound",
        "formula_bound",
        "log_output_error",
        "difference_rounding",
        "directional_bound",
        "jacobian_backward_bound",
        "_eta_times",
        "forward_error_bound",
        "forward_relative_bound",
        "reference_forward_bound",
        "row_sum_bound",
        "sum_relative_error",
        "log_probability_slack",
        "log_softmax_backward_bound",
        "log_softmax_directional_bound",
        "log_softmax_error_bound",
        "log_softmax_weight_error",
        "logsumexp_bound",
        "reference_log_softmax_backward_bound",
        "reference_log_softmax_bound",
        "cross_entropy_row_bound",
        "cross_entropy_loss_bound",
        "reference_cross_entropy_loss_bound",
        "cross_entropy_backward_bound",
        "reference_cross_entropy_backward_bound",
        "cross_entropy_nonnegative_slack",
        "cross_entropy_batch_bound",
        "cross_entropy_alone_bound",
    }
)


def _modules(package: str) -> list[Path]:
    return sorted((PACKAGE / package).glob("*.py"))


def _called_name(call: ast.Call) -> str | None:
    """``f`` of ``f(...)`` and of ``module.f(...)``."""
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def _model_dependent() -> frozenset[str]:
    """The functions of softmax_verify/tolerances/ that call a reader, directly or through
    another such function (to a fixed point)."""
    calls: dict[str, set[str]] = {}
    for path in _modules("tolerances"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef):
                calls[node.name] = {
                    name
                    for call in ast.walk(node)
                    if isinstance(call, ast.Call) and (name := _called_name(call)) is not None
                }
    dependent = set(READERS)
    grew = True
    while grew:
        grew = False
        for name, callees in calls.items():
            if name not in dependent and callees & dependent:
                dependent.add(name)
                grew = True
    return frozenset(dependent - READERS)


def _at_float64(call: ast.Call) -> bool:
    """A call with ``np.float64`` among its arguments: the float64 reference's own bound,
    which no accumulation model changes."""
    return any(isinstance(arg, ast.Attribute) and arg.attr == "float64" for arg in call.args)


def _offences(
    paths: list[Path],
    names: frozenset[str],
    root: Path = ROOT,
    *,
    literal_ok: bool = False,
    float64_ok: bool = False,
) -> tuple[list[str], int]:
    """``file:line: what`` (relative to ``root``) for each call of one of ``names`` that does
    not pass ``accumulate=`` a non-literal value (any value with ``literal_ok``; calls at
    ``np.float64`` need none with ``float64_ok``), and the number of such calls seen."""
    offences: list[str] = []
    seen = 0
    for path in paths:
        where = path.relative_to(root).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if not isinstance(node, ast.Call) or (name := _called_name(node)) not in names:
                continue
            if float64_ok and _at_float64(node):
                continue
            seen += 1
            given = [kw.value for kw in node.keywords if kw.arg == "accumulate"]
            if not given:
                offences.append(f"{where}:{node.lineno}: {name}(...) without accumulate=")
            elif isinstance(given[0], ast.Constant) and not literal_ok:
                offences.append(
                    f"{where}:{node.lineno}: {name}(...) with the literal "
                    f"accumulate={given[0].value!r}, not the check's model"
                )
    return offences, seen


def test_the_model_dependent_tolerances_are_those_stated() -> None:
    assert _model_dependent() == STATED


def test_every_model_dependent_function_takes_the_model_by_keyword() -> None:
    for name in sorted(STATED):
        parameter = inspect.signature(getattr(tolerances, name)).parameters["accumulate"]
        assert parameter.kind is inspect.Parameter.KEYWORD_ONLY, name
        assert parameter.default == "float32", name
    for name in sorted(GRADCHECKS):
        parameter = inspect.signature(getattr(gradcheck, name)).parameters["accumulate"]
        assert parameter.kind is inspect.Parameter.KEYWORD_ONLY, name
        assert parameter.default == "float32", name
        assert "accumulation model" in (getattr(gradcheck, name).__doc__ or ""), name


def test_the_invariants_and_gradient_checks_pass_the_model_on_every_call() -> None:
    paths = _modules("invariants") + _modules("gradcheck")
    offences, seen = _offences(paths, STATED | GRADCHECKS)
    assert not offences, "the accumulation model is not passed:\n" + "\n".join(offences)
    assert seen > 30  # the walk found the calls (37 today), not an empty tree


def test_the_tolerances_pass_the_model_on_to_each_other() -> None:
    """Inside softmax_verify/tolerances/ too: only the float64 reference's own bound (a call
    at ``np.float64``) may leave the model out."""
    offences, seen = _offences(_modules("tolerances"), STATED, float64_ok=True)
    assert not offences, "the accumulation model is not passed on:\n" + "\n".join(offences)
    assert seen > 10  # 13 today


def test_the_diagnoses_state_their_model() -> None:
    """The catalogue's probes are judged under a model stated at every call (the loosest)."""
    offences, seen = _offences(_modules("diagnosis"), STATED, literal_ok=True)
    assert not offences, "a diagnosis leaves the model out:\n" + "\n".join(offences)
    assert seen > 10  # 14 today


def test_the_offences_name_the_file_and_line(tmp_path: Path) -> None:
    module = tmp_path / "softmax_verify" / "invariants" / "_example.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        "def check(impl, case, accumulate):\n"
        "    forward_error_bound(x, y, dtype, accumulate=accumulate)\n"
        "    tolerances.row_sum_bound(d, dtype)\n"
        "    numerical_vjp_check(impl, x, dout, accumulate='float32')\n",
        encoding="utf-8",
    )
    offences, seen = _offences([module], STATED | GRADCHECKS, tmp_path)
    assert seen == 3
    assert offences == [
        "softmax_verify/invariants/_example.py:3: row_sum_bound(...) without accumulate=",
        "softmax_verify/invariants/_example.py:4: numerical_vjp_check(...) with the literal "
        "accumulate='float32', not the check's model",
    ]


def test_the_model_is_no_context_variable() -> None:
    for path in _modules("tolerances"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {
            (node.module or "").split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
        }
        assert "contextvars" not in imported, path.name
    assert not hasattr(tolerances, "accumulation")


def test_a_float16_accumulating_kernel_is_judged_by_the_model_passed() -> None:
    """float16_sequential accumulates its row sum in float16: within the ``"input"`` bound
    on short rows (where that bound is informative), outside the ``"float32"`` one."""

    def run(model: Accumulation) -> set[str]:
        report = verify(
            k.float16_sequential,
            dtypes=("float16",),
            invariants=("matches_reference",),
            domain=Domain(cols=(1, 64)),
            max_examples=25,
            options=Options(accumulate=model),
        )
        return {r.status for r in report.results}

    assert run("input") == {"passed"}
    assert run("float32") == {"failed"}
