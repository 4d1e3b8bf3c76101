"""The optional extras (pyproject.toml) and the modules each one installs.

Every message that tells a user to install something names the extra through
``install_hint``, so a hint cannot name an extra that does not exist (a test reads
pyproject.toml's extras and compares).
"""

from __future__ import annotations

__all__ = ["EXTRA_OF", "extra_of", "install_hint"]

#: The extra that installs each optional module (its top-level name).
EXTRA_OF: dict[str, str] = {
    "scipy": "scipy",
    "torch": "torch",
    "jax": "jax",
    "jaxlib": "jax",
    "optax": "jax",
    "ml_dtypes": "half",
    "tensorflow": "tensorflow",
    "keras": "tensorflow",  # keras 3 comes with TensorFlow, its default backend
    "autograd": "autograd",
    "mygrad": "mygrad",
    "thinc": "thinc",
    "sklearn": "sklearn",
    "pytest": "pytest",
    "mpmath": "dev",
}


def extra_of(module: str) -> str:
    """The extra that installs ``module`` (a dotted name: its top-level package counts)."""
    top = module.split(".")[0]
    try:
        return EXTRA_OF[top]
    except KeyError:
        raise ValueError(f"module must be one of {', '.join(EXTRA_OF)}; got {module!r}") from None


def install_hint(module: str, *, checkout: bool = False) -> str:
    """``pip install 'softmax-verify[EXTRA]'`` for ``module``; from a checkout (``checkout``),
    the editable form ``pip install -e '.[EXTRA]'``."""
    extra = extra_of(module)
    return f"pip install -e '.[{extra}]'" if checkout else f"pip install 'softmax-verify[{extra}]'"
