"""Softmax written with jax ops: custom_vjp/custom_jvp rules, right and wrong, and jit."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

_config: Any = jax.config  # untyped in jax's stubs
_config.update("jax_enable_x64", True)


def _softmax(x: Any) -> Any:
    e = jnp.exp(x - jnp.max(x, axis=1, keepdims=True))
    return e / jnp.sum(e, axis=1, keepdims=True)


@jax.custom_vjp
def good_vjp(x: Any) -> Any:
    return _softmax(x)


def _good_fwd(x: Any) -> tuple[Any, Any]:
    y = _softmax(x)
    return y, y


def _good_bwd(y: Any, g: Any) -> tuple[Any]:
    return (y * (g - jnp.sum(g * y, axis=1, keepdims=True)),)


good_vjp.defvjp(_good_fwd, _good_bwd)


@jax.custom_vjp
def missing_term_vjp(x: Any) -> Any:
    return _softmax(x)


def _missing_bwd(y: Any, g: Any) -> tuple[Any]:
    return (y * g,)  # the <g, y> term is missing


missing_term_vjp.defvjp(_good_fwd, _missing_bwd)


@jax.custom_jvp
def good_jvp(x: Any) -> Any:
    return _softmax(x)


@good_jvp.defjvp
def _good_jvp_rule(primals: tuple[Any], tangents: tuple[Any]) -> tuple[Any, Any]:
    (x,), (t,) = primals, tangents
    y = _softmax(x)
    return y, y * (t - jnp.sum(t * y, axis=1, keepdims=True))


jitted = jax.jit(lambda x: jax.nn.softmax(x, axis=1))


@jax.jit
def tail_bug(x: Any) -> Any:
    """Sums the columns in blocks of 8 and drops the remainder block (a kernel tail bug)."""
    d = x.shape[1]
    full = d - d % 8 if d > 8 else d
    e = jnp.exp(x - jnp.max(x, axis=1, keepdims=True))
    return e / jnp.sum(e[:, :full], axis=1, keepdims=True)


def tail_left_out_of_the_sum(x: Any) -> Any:
    """A kernel summing whole blocks of 8 columns only: past a block, the D % 8 tail
    is left out of the sum, so those rows sum to more than one."""
    d = x.shape[1]
    e = jnp.exp(x - jnp.max(x, axis=1, keepdims=True))
    whole = d - d % 8 if d > 8 else d
    return e / jnp.sum(e[:, :whole], axis=1, keepdims=True)


def float32_out(x: Any) -> Any:
    """Right values, returned in float32 whatever the input's dtype."""
    return _softmax(x).astype(jnp.float32)
