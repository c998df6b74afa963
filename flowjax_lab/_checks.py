"""Argument checks shared by every public function.

Three tiers (ARCHITECTURE.md, house rule 4): shapes, names and Python-number values are checked at
trace time and raise ``ValueError``/``TypeError`` naming the argument; values of concrete arrays
are checked eagerly with NumPy; values of traced arrays are checked with ``equinox.error_if``.
"""

import difflib
from collections.abc import Iterable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


def is_traced(x) -> bool:
    """True when ``x`` is an abstract value inside ``jit``/``grad``/``vmap``."""
    return isinstance(x, jax.core.Tracer)


def as_float_array(x, name: str):
    """``x`` as a JAX array with a floating dtype (integers become the default float)."""
    if isinstance(x, str | bytes):  # jnp.asarray would read a string as a dtype name
        raise TypeError(f"`{name}` must be an array of numbers, got {type(x).__name__}.")
    try:
        x = jnp.asarray(x)
    except TypeError as err:
        raise TypeError(f"`{name}` must be an array of numbers, got {type(x).__name__}.") from err
    if not jnp.issubdtype(x.dtype, jnp.floating):
        if jnp.issubdtype(x.dtype, jnp.integer) or x.dtype == jnp.bool_:
            x = x.astype(jnp.result_type(float))
        else:
            raise TypeError(f"`{name}` must have a real floating dtype, got {x.dtype}.")
    return x


def check_finite(x, name: str):
    """Refuse NaN or inf in ``x`` (eagerly if concrete, with ``error_if`` if traced)."""
    if is_traced(x):
        return eqx.error_if(x, ~jnp.all(jnp.isfinite(x)), f"`{name}` contains NaN or inf.")
    if not np.all(np.isfinite(np.asarray(x))):
        raise ValueError(f"`{name}` contains NaN or inf.")
    return x


def particles(x, name: str = "x", *, dim: int | None = None, finite: bool = True):
    """A particle cloud: a floating array of shape ``(n, d)`` with ``n >= 1``."""
    x = as_float_array(x, name)
    if x.ndim != 2:
        raise ValueError(
            f"`{name}` must be a particle cloud of shape (n, d), got shape {tuple(x.shape)}."
        )
    if x.shape[0] == 0:
        raise ValueError(f"`{name}` must hold at least one particle, got shape {tuple(x.shape)}.")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"`{name}` must have dimension d = {dim}, got shape {tuple(x.shape)}.")
    return check_finite(x, name) if finite else x


def vector(v, name: str, *, dim: int | None = None, finite: bool = True):
    """A floating vector of shape ``(d,)`` (``(dim,)`` if given), e.g. a mean."""
    v = as_float_array(v, name)
    if v.ndim != 1 or (dim is not None and v.shape[0] != dim):
        expected = "(d,)" if dim is None else f"({dim},)"
        raise ValueError(f"`{name}` must have shape {expected}, got {tuple(v.shape)}.")
    return check_finite(v, name) if finite else v


def scalar(value, name: str):
    """Refuse arrays of any other shape than ``()`` (Python numbers and 0-d arrays pass)."""
    shape = np.shape(value)
    if shape != ():
        raise ValueError(f"`{name}` must be a scalar, got shape {tuple(shape)}.")
    return value


def same_dimension(x, y, names: tuple[str, str] = ("x", "y")) -> None:
    """Two clouds must live in the same space."""
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(
            f"`{names[0]}` and `{names[1]}` must have the same dimension d, "
            f"got {x.shape[-1]} and {y.shape[-1]}."
        )


def weights(w, n: int, name: str = "weights", *, dtype=None, atol: float = 1e-4):
    """Probability weights of shape ``(n,)``: non-negative, summing to one."""
    w = as_float_array(w, name)
    if dtype is not None:
        w = w.astype(dtype)
    if w.shape != (n,):
        raise ValueError(f"`{name}` must have shape ({n},), got {tuple(w.shape)}.")
    if is_traced(w):
        bad = jnp.any(w < 0) | (jnp.abs(jnp.sum(w) - 1) > atol) | ~jnp.all(jnp.isfinite(w))
        return eqx.error_if(w, bad, f"`{name}` must be non-negative and sum to one.")
    w_np = np.asarray(w, dtype=np.float64)
    if not np.all(np.isfinite(w_np)):
        raise ValueError(f"`{name}` contains NaN or inf.")
    if np.any(w_np < 0):
        raise ValueError(f"`{name}` must be non-negative, got min {w_np.min():.3g}.")
    if abs(w_np.sum() - 1) > atol:
        raise ValueError(f"`{name}` must sum to one, got {w_np.sum():.6g}.")
    return w


def covariance(cov, name: str = "cov", *, dim: int | None = None, semidefinite: bool = False):
    """A symmetric positive-definite matrix of shape ``(d, d)`` (semi-definite if asked)."""
    cov = as_float_array(cov, name)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise ValueError(f"`{name}` must be a square matrix (d, d), got {tuple(cov.shape)}.")
    if dim is not None and cov.shape[0] != dim:
        raise ValueError(f"`{name}` must have shape ({dim}, {dim}), got {tuple(cov.shape)}.")
    what = "positive semi-definite" if semidefinite else "positive definite"
    if is_traced(cov):
        asym = jnp.max(jnp.abs(cov - cov.T)) > 1e-5 * (1 + jnp.max(jnp.abs(cov)))
        return eqx.error_if(cov, asym, f"`{name}` must be symmetric.")
    c = np.asarray(cov, dtype=np.float64)
    if not np.all(np.isfinite(c)):
        raise ValueError(f"`{name}` contains NaN or inf.")
    scale = 1 + np.max(np.abs(c))
    if np.max(np.abs(c - c.T)) > 1e-5 * scale:
        raise ValueError(f"`{name}` must be symmetric.")
    low = np.linalg.eigvalsh(c).min()
    if low < -1e-7 * scale or (not semidefinite and low <= 1e-12 * scale):
        raise ValueError(f"`{name}` must be {what}; its smallest eigenvalue is {low:.3g}.")
    return cov


def positive(value, name: str, *, allow_zero: bool = False):
    """A Python or concrete scalar that must be > 0 (or >= 0)."""
    if value is None or is_traced(value):
        return value
    v = np.asarray(value)
    if v.ndim != 0 or not np.isfinite(v):
        raise ValueError(f"`{name}` must be a finite scalar, got {value!r}.")
    if v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"`{name}` must be {bound}, got {value!r}.")
    return value


def positive_int(value, name: str, *, minimum: int = 1) -> int:
    """An integer at least ``minimum`` (booleans refused)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"`{name}` must be an integer, got {value!r}.")
    if value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value}.")
    return int(value)


def choice(value, choices: Iterable[str], name: str) -> str:
    """One of a set of names; an unknown name lists the valid ones and the nearest."""
    choices = sorted(choices)
    if value in choices:
        return value
    near = difflib.get_close_matches(str(value), choices, n=1)
    hint = f" Did you mean {near[0]!r}?" if near else ""
    raise ValueError(f"Unknown `{name}` {value!r}; expected one of {choices}.{hint}")


def time_interval(t0, t1) -> None:
    """``t1 >= t0`` when both are concrete numbers."""
    if is_traced(t0) or is_traced(t1):
        return
    if not (np.isfinite(t0) and np.isfinite(t1)):
        raise ValueError(f"`t0` and `t1` must be finite, got t0={t0}, t1={t1}.")
    if float(t1) < float(t0):
        raise ValueError(f"`t1` must be >= `t0`, got t0={t0}, t1={t1}.")


def unit_interval(t, name: str = "t"):
    """Times in ``[0, 1]`` (eagerly if concrete, with ``error_if`` if traced)."""
    t = jnp.asarray(t)
    if is_traced(t):
        return eqx.error_if(t, jnp.any((t < 0) | (t > 1)), f"`{name}` must lie in [0, 1].")
    t_np = np.asarray(t)
    if np.any((t_np < 0) | (t_np > 1)) or not np.all(np.isfinite(t_np)):
        raise ValueError(f"`{name}` must lie in [0, 1], got {t_np}.")
    return t


def key(k, name: str = "key"):
    """A JAX PRNG key (typed or raw uint32[2])."""
    if k is None:
        raise TypeError(f"`{name}` must be a jax.random key, got None.")
    k_arr = jnp.asarray(k) if not hasattr(k, "dtype") else k
    if jnp.issubdtype(k_arr.dtype, jax.dtypes.prng_key):
        return k
    if k_arr.dtype == jnp.uint32 and k_arr.shape[-1:] == (2,):
        return k
    raise TypeError(f"`{name}` must be a jax.random key, got {k_arr.dtype}{tuple(k_arr.shape)}.")
