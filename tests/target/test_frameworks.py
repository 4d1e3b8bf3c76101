"""The built-in framework adapters, run for real, and what happens when a framework is missing.

Each framework is an optional extra: locally a missing one skips its tests
(conftest.require), in CI it fails them. Missing frameworks are also simulated
(``sys.modules[name] = None``) to check the message that says what to install.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import require

from softmax_verify import Report, verify
from softmax_verify.cli import main
from softmax_verify.invariants import INVARIANT_IDS, INVARIANTS
from softmax_verify.target.frameworks import FRAMEWORKS, MissingFramework, adapter

BOTH = ("float64", "float32")
BACKWARD_IDS = {inv.id for inv in INVARIANTS if inv.needs_backward}


def assert_every_invariant_holds(report: Report) -> None:
    """Nothing failed; only stage_gradients is skipped (a framework has no named stages)."""
    assert [(r.invariant, r.dtype, r.message) for r in report.failures] == []
    assert {(r.invariant, r.dtype) for r in report.results} == {
        (i, d) for i in INVARIANT_IDS for d in BOTH
    }
    for result in report.results:
        if result.invariant == "stage_gradients":
            assert result.status == "skipped"
            assert "exps, sexps and divexps" in result.message
        else:
            assert result.status == "passed", result
            assert result.examples > 0


def test_scipy_adapter_is_forward_only_and_correct() -> None:
    require("scipy.special")
    forward, backward = adapter("scipy")
    assert backward is None
    x = np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]], dtype=np.float32)
    y = forward(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-6)
    report = verify(forward, backward, dtypes=BOTH, max_examples=25, target="scipy")
    assert report.passed
    assert report.backward is None
    for result in report.results:
        expected = "skipped" if result.invariant in BACKWARD_IDS else "passed"
        assert result.status == expected, result
        if expected == "skipped":
            assert result.message == "no backward given"


def test_torch_adapter_passes_every_invariant() -> None:
    torch = require("torch")
    forward, backward = adapter("torch")
    assert backward is not None
    x = np.array([[0.5, -1.0, 2.0]])
    y, cache = forward(x)
    np.testing.assert_allclose(y, torch.softmax(torch.from_numpy(x), dim=1).numpy())
    assert isinstance(backward(np.ones_like(x), cache), np.ndarray)
    report = verify(forward, backward, dtypes=BOTH, max_examples=15, target="torch")
    assert_every_invariant_holds(report)


def test_jax_adapter_passes_every_invariant() -> None:
    """Few examples: XLA compiles every new array shape (about a second each on a small CPU)."""
    require("jax")
    forward, backward = adapter("jax")
    assert backward is not None
    x = np.array([[0.5, -1.0, 2.0]])
    y, vjp = forward(x)
    assert y.dtype == np.float64  # the adapter enables 64-bit floats
    np.testing.assert_allclose(y, np.exp(x) / np.exp(x).sum(), rtol=1e-15)
    np.testing.assert_allclose(backward(np.ones_like(x), vjp), 0.0, atol=1e-15)
    report = verify(forward, backward, dtypes=BOTH, max_examples=2, target="jax")
    assert_every_invariant_holds(report)


def test_cli_check_torch_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    require("torch")
    assert main(["check", "torch", "--max-examples", "25"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("softmax-verify: torch\n")
    assert "0 failed, 0 errors" in out


# --- missing frameworks --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "module"), [("scipy", "scipy.special"), ("torch", "torch"), ("jax", "jax")]
)
def test_missing_framework_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, name: str, module: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import of it now raises ImportError
    with pytest.raises(MissingFramework) as info:
        adapter(name)
    assert isinstance(info.value, ImportError)
    assert str(info.value) == (
        f"{name} is not installed; install it with: pip install 'softmax-verify[{name}]'"
    )


@pytest.mark.parametrize("isolate", [True, False], ids=["isolated", "in-process"])
def test_missing_framework_is_a_cli_usage_error(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    isolate: bool,
) -> None:
    if isolate:  # the target loads in a child: a torch that cannot be imported, there
        (tmp_path / "torch").mkdir()
        (tmp_path / "torch" / "__init__.py").write_text("raise ImportError('no torch here')\n")
        monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    else:
        monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    assert main(["check", "torch", *([] if isolate else ["--no-isolate"])]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "softmax-verify: error: torch is not installed; "
        "install it with: pip install 'softmax-verify[torch]'\n"
    )


def test_unknown_framework_name() -> None:
    assert FRAMEWORKS == ("scipy", "torch", "jax")
    with pytest.raises(ValueError, match="framework must be one of scipy, torch, jax"):
        adapter("tensorflow")


def test_jax_adapter_drops_compiled_programs_past_its_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A thorough run compiles thousands of shapes; unbounded, XLA ran out of mappable
    # memory and segfaulted. Past the limit the adapter clears jax's caches and goes on.
    jax = require("jax")
    import softmax_verify.target.jax_buckets as buckets

    cleared: list[int] = []
    original = jax.clear_caches
    monkeypatch.setattr(buckets, "MAX_PROGRAMS", 2)

    def counting_clear() -> None:
        cleared.append(1)
        original()

    monkeypatch.setattr(jax, "clear_caches", counting_clear)
    forward, backward = adapter("jax")
    assert backward is not None
    from softmax_verify.bundled.reference import softmax, softmax_backward
    from softmax_verify.tolerances import reference_backward_bound, reference_forward_bound

    for n in range(1, 6):  # row counts share a bucket; column counts never do
        x = np.linspace(-3.0, 3.0, n * (3 + n)).reshape(n, 3 + n)
        g = np.arange(n * (3 + n), dtype=np.float64).reshape(n, 3 + n) / 7
        y, cache = forward(x)
        exact = softmax(x)
        # The derived bounds (softmax_verify.tolerances), as the invariants use them.
        assert (np.abs(y - exact) <= reference_forward_bound(x, exact, np.float64)).all()
        dx = backward(g, cache)
        tol = reference_backward_bound(x, exact, g, np.float64)
        assert (np.abs(dx - softmax_backward(g, exact)) <= tol).all()
    assert len(cleared) == 2  # at the 3rd and 5th new shape
