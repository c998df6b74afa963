"""Argument checks shared by every public function.

Three tiers (ARCHITECTURE.md, house rule 4): shapes, dtypes, names and Python numbers are checked
at trace time and raise ``ValueError``/``TypeError`` naming the argument. Values of arrays
(finite, positive, symmetric positive definite, weights summing to one, times in order) are
checked by [`fail_if`][]: the same predicate and the same message eagerly (``ValueError``) and
under ``jit`` (``equinox.error_if``, raised when the compiled call runs). Such checks ride on the
array they return: a caller must use the returned value.
"""

import difflib
from collections.abc import Callable, Iterable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


def is_traced(x) -> bool:
    """True when ``x`` is an abstract value inside ``jit``/``grad``/``vmap``."""
    return isinstance(x, jax.core.Tracer)


def fail_if(x, bad: Callable, message: str):
    """`x`, refused with `message` where ``bad(x)`` holds: a ``ValueError`` now when `x` is
    concrete (even inside ``jit``), ``equinox.error_if`` with the same message when traced."""
    if any(is_traced(leaf) for leaf in jax.tree.leaves(x)):
        return eqx.error_if(x, bad(x), message)
    with jax.ensure_compile_time_eval():
        failed = bool(np.any(np.asarray(bad(x))))
    if failed:
        raise ValueError(message)
    return x


def float_dtype(dtype=None, name: str = "dtype"):
    """The requested floating dtype; `None` is the default float (float64 under x64)."""
    if dtype is None:
        return jnp.dtype(jnp.result_type(float))
    try:
        dtype = jnp.dtype(dtype)
    except TypeError as err:
        raise TypeError(f"`{name}` must be a floating dtype, got {dtype!r}.") from err
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"`{name}` must be a floating dtype, got {dtype}.")
    return dtype


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
            x = x.astype(float_dtype())
        else:
            raise TypeError(f"`{name}` must have a real floating dtype, got {x.dtype}.")
    return x


def check_finite(x, name: str):
    """Refuse NaN or inf in ``x`` (see [`fail_if`][])."""
    return fail_if(x, lambda x: ~jnp.all(jnp.isfinite(x)), f"`{name}` contains NaN or inf.")


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
    w = check_finite(w, name)
    w = fail_if(w, lambda w: jnp.any(w < 0), f"`{name}` must be non-negative.")
    return fail_if(w, lambda w: jnp.abs(jnp.sum(w) - 1) > atol,
                   f"`{name}` must sum to one (to {atol:g}).")


def covariance(cov, name: str = "cov", *, dim: int | None = None, semidefinite: bool = False):
    """A symmetric positive-definite matrix of shape ``(d, d)`` (semi-definite if asked)."""
    cov = as_float_array(cov, name)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise ValueError(f"`{name}` must be a square matrix (d, d), got {tuple(cov.shape)}.")
    if dim is not None and cov.shape[0] != dim:
        raise ValueError(f"`{name}` must have shape ({dim}, {dim}), got {tuple(cov.shape)}.")
    cov = check_finite(cov, name)
    cov = fail_if(cov, lambda c: jnp.max(jnp.abs(c - c.T)) > 1e-5 * _scale(c),
                  f"`{name}` must be symmetric.")
    # Eigenvalues in the array's dtype carry an error of about d * eps * scale.
    eps = float(jnp.finfo(cov.dtype).eps)
    if semidefinite:
        return fail_if(cov, lambda c: _lowest(c) < -max(1e-7, 4 * cov.shape[0] * eps),
                       f"`{name}` must be positive semi-definite.")
    return fail_if(cov, lambda c: _lowest(c) <= max(1e-12, eps),
                   f"`{name}` must be positive definite.")


def _scale(c):
    return 1 + jnp.max(jnp.abs(c))


def _lowest(c):
    """The smallest eigenvalue of the symmetric part of `c`, relative to its scale."""
    return jnp.linalg.eigvalsh((c + c.T) / 2)[0] / _scale(c)


def positive(value, name: str, *, allow_zero: bool = False):
    """A scalar that must be > 0 (or >= 0); `None` passes. A Python number is checked now (its
    value quoted), an array by [`fail_if`][]."""
    if value is None:
        return value
    if isinstance(value, bool | np.bool_ | str):
        raise TypeError(f"`{name}` must be a real scalar, got {value!r}.")
    bound = ">= 0" if allow_zero else "> 0"
    if isinstance(value, int | float | np.number):
        if not np.isfinite(value):
            raise ValueError(f"`{name}` must be a finite scalar, got {value!r}.")
        if value < 0 or (value == 0 and not allow_zero):
            raise ValueError(f"`{name}` must be {bound}, got {value!r}.")
        return value
    if np.ndim(value) != 0:
        raise ValueError(f"`{name}` must be a finite scalar, got shape {np.shape(value)}.")
    value = fail_if(value, lambda v: ~jnp.isfinite(v), f"`{name}` must be a finite scalar.")
    return fail_if(value, lambda v: (v < 0) | ((v == 0) & (not allow_zero)),
                   f"`{name}` must be {bound}.")


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


def time_interval(t0, t1):
    """``(t0, t1)``, finite scalars with ``t1 >= t0`` (see [`fail_if`][])."""
    ends = (scalar(t0, "t0"), scalar(t1, "t1"))
    ends = fail_if(ends, lambda e: ~(jnp.isfinite(e[0]) & jnp.isfinite(e[1])),
                   "`t0` and `t1` must be finite.")
    return fail_if(ends, lambda e: jnp.asarray(e[1]) < jnp.asarray(e[0]),
                   "`t1` must be >= `t0`.")


def times(ts, name: str = "ts", *, dtype=None, min_length: int = 1, decreasing: bool = False,
          strictly: bool = False, nonnegative: bool = False):
    """A 1-D array of at least `min_length` finite times, increasing (`decreasing` if asked),
    strictly if asked, >= 0 if asked; in `dtype` if given. The shape is checked at trace time,
    the values by [`fail_if`][]."""
    ts = as_float_array(ts, name)
    if dtype is not None:
        ts = ts.astype(dtype)
    if ts.ndim != 1 or ts.shape[0] < min_length:
        what = "a non-empty 1-D array of" if min_length <= 1 else f"a 1-D array of at least " \
            f"{min_length}"
        raise ValueError(f"`{name}` must be {what} times, got shape {tuple(ts.shape)}.")
    ts = check_finite(ts, name)
    if nonnegative:
        ts = fail_if(ts, lambda t: jnp.any(t < 0), f"`{name}` must be >= 0.")
    sign = -1 if decreasing else 1
    order = ("strictly " if strictly else "") + ("decreasing" if decreasing else "increasing")
    return fail_if(ts, lambda t: jnp.any(sign * jnp.diff(t) <= 0 if strictly
                                         else sign * jnp.diff(t) < 0),
                   f"`{name}` must be {order}.")


def unit_interval(t, name: str = "t"):
    """Times in ``[0, 1]`` (see [`fail_if`][]; NaN is outside)."""
    t = jnp.asarray(t)
    return fail_if(t, lambda t: ~jnp.all((t >= 0) & (t <= 1)), f"`{name}` must lie in [0, 1].")


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
