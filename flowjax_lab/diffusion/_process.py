"""Forward noising processes ``x_t = alpha(t) x0 + sigma(t) eps``: data at t = 0, noise at t = 1.

Each process is the linear SDE ``dx = f(t) x dt + g(t) dW`` whose marginal given `x0` is
N(alpha(t) x0, sigma(t)^2 I), with ``f = d log alpha / dt`` and
``g^2 = d sigma^2 / dt - 2 f sigma^2``. Every coefficient is written in closed form (the tests
check them against automatic derivatives of `alpha` and `sigma`).
"""

import abc
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from .._types import Array, Key, Particles


def _time(t) -> Array:
    """`t` as a floating array (integers become the default float), dtype kept otherwise."""
    return _checks.as_float_array(t, "t")


def _real(value, name: str) -> None:
    """A finite real number (Python or 0-d), refused with a message naming `name` otherwise."""
    if _checks.is_traced(value):
        return
    if isinstance(value, bool) or not isinstance(value, int | float | np.number | np.ndarray
                                                 | jax.Array):
        raise TypeError(f"`{name}` must be a real number, got {value!r}.")
    if np.ndim(value) != 0 or not np.isfinite(float(value)):
        raise ValueError(f"`{name}` must be a finite scalar, got {value!r}.")


class AbstractProcess(eqx.Module):
    """A forward process ``x_t = alpha(t) x0 + sigma(t) eps``, eps ~ N(0, I), t in [0, 1].

    Subclasses give `alpha`, `sigma`, their derivatives `d_alpha`, `d_sigma`, the squared
    diffusion `g2` and the inverse of the log-SNR `time_of_log_snr`, all elementwise in `t`.
    Their parameters are checked when the process is built, so they must be concrete then
    (Python numbers, or arrays outside `jit`): `__check_init__` cannot carry an ``error_if``.
    """

    @abc.abstractmethod
    def alpha(self, t) -> Array:
        """Signal scale ``alpha(t)``, shaped like `t`."""

    @abc.abstractmethod
    def sigma(self, t) -> Array:
        """Noise scale ``sigma(t)``, shaped like `t`."""

    @abc.abstractmethod
    def d_alpha(self, t) -> Array:
        """``d alpha / dt``, shaped like `t`."""

    @abc.abstractmethod
    def d_sigma(self, t) -> Array:
        """``d sigma / dt``, shaped like `t`."""

    @abc.abstractmethod
    def g2(self, t) -> Array:
        """Squared diffusion ``g(t)^2 = d sigma^2 / dt - 2 f(t) sigma(t)^2``, shaped like `t`."""

    @abc.abstractmethod
    def time_of_log_snr(self, lam) -> Array:
        """The time `t` whose log-SNR is `lam` (the inverse of [`log_snr`][]), shaped like `lam`.

        It extends the schedule's formula beyond [0, 1] when `lam` lies outside its range."""

    def log_snr(self, t) -> Array:
        """``lambda(t) = log(alpha(t) / sigma(t))``, decreasing in `t`, shaped like `t`."""
        t = _time(t)
        return jnp.log(self.alpha(t)) - jnp.log(self.sigma(t))

    def f(self, t) -> Array:
        """Drift coefficient ``f(t) = d log alpha / dt``, shaped like `t`."""
        t = _time(t)
        return self.d_alpha(t) / self.alpha(t)

    def drift(self, t, x) -> Particles:
        """Forward drift ``f(t) x`` on a cloud `x` `(n, d)` (`t` scalar or `(n,)`)."""
        x = _checks.particles(x, "x", finite=False)
        return _column(self.f(jnp.asarray(t, x.dtype)), x) * x

    def diffusion(self, t) -> Array:
        """Diffusion coefficient ``g(t)``, shaped like `t`."""
        return jnp.sqrt(self.g2(_time(t)))

    @property
    def prior_std(self) -> Array:
        """``sigma(1)``: the prior N(0, sigma(1)^2 I) stands for the marginal at t = 1,
        N(alpha(1) mean, alpha(1)^2 Sigma + sigma(1)^2 I), whose ``alpha(1)`` is (near) zero."""
        return self.sigma(jnp.asarray(1.0))

    def sample_marginal(self, key: Key, x0, t) -> Particles:
        """Draw ``x_t = alpha(t) x0 + sigma(t) eps`` for data `x0` `(n, d)` at `t` (scalar or
        `(n,)`, in [0, 1]); shape `(n, d)`, dtype of `x0`."""
        key = _checks.key(key)
        x0 = _checks.particles(x0, "x0")
        t = times_for(t, x0)
        eps = jax.random.normal(key, x0.shape, x0.dtype)
        return _column(self.alpha(t), x0) * x0 + _column(self.sigma(t), x0) * eps

    def sample_prior(self, key: Key, n: int, d: int, dtype=None) -> Particles:
        """`n` draws of the prior N(0, sigma(1)^2 I) in dimension `d`, shape `(n, d)`."""
        key = _checks.key(key)
        n = _checks.positive_int(n, "n")
        d = _checks.positive_int(d, "d")
        dtype = _checks.float_dtype(dtype)
        return self.sigma(jnp.ones((), dtype)) * jax.random.normal(key, (n, d), dtype)


def times_for(t, x) -> Array:
    """`t` (scalar or `(n,)`, in [0, 1]) checked against the cloud `x` `(n, d)`, in its dtype."""
    t = _checks.unit_interval(jnp.asarray(_time(t), x.dtype))
    if t.ndim > 1 or (t.ndim == 1 and t.shape != x.shape[:1]):
        raise ValueError(f"`t` must be a scalar or of shape ({x.shape[0]},), got {t.shape}.")
    return t


def _column(c, x) -> Array:
    """A scalar or per-particle coefficient `(n,)`, shaped to broadcast against `x` `(n, d)`."""
    return c if jnp.ndim(c) == 0 else c[:, None]


class VP(AbstractProcess):
    """Variance preserving (Ornstein-Uhlenbeck) process with a linear ``beta(t)`` schedule.

    ``dx = -beta(t) x / 2 dt + sqrt(beta(t)) dW`` with
    ``beta(t) = beta_min + t (beta_max - beta_min)``; ``alpha = exp(-B(t) / 2)`` with
    ``B(t) = int_0^t beta``, and ``sigma^2 = 1 - alpha^2``.
    """

    beta_min: float = 0.1
    beta_max: float = 20.0

    def __check_init__(self):
        _real(self.beta_min, "beta_min")
        _real(self.beta_max, "beta_max")
        _checks.positive(self.beta_min, "beta_min", allow_zero=True)
        _checks.positive(self.beta_max, "beta_max")
        if self.beta_max < self.beta_min:
            raise ValueError(f"`beta_max` must be >= `beta_min`, got beta_min={self.beta_min}, "
                             f"beta_max={self.beta_max}.")

    def beta(self, t) -> Array:
        """``beta(t)``, shaped like `t`."""
        return self.beta_min + _time(t) * (self.beta_max - self.beta_min)

    def _integral(self, t):
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2

    def alpha(self, t):
        return jnp.exp(-0.5 * self._integral(_time(t)))

    def sigma(self, t):
        return jnp.sqrt(-jnp.expm1(-self._integral(_time(t))))

    def d_alpha(self, t):
        t = _time(t)
        return -0.5 * self.beta(t) * self.alpha(t)

    def d_sigma(self, t):
        t = _time(t)
        return 0.5 * self.beta(t) * self.alpha(t) ** 2 / self.sigma(t)

    def g2(self, t):
        return self.beta(t)

    def log_snr(self, t):
        b = self._integral(_time(t))
        return -0.5 * b - 0.5 * jnp.log(-jnp.expm1(-b))

    def time_of_log_snr(self, lam):
        # B(t) = log(1 + exp(-2 lam)); B is quadratic in t, solved in the form without
        # cancellation (valid for beta_max = beta_min too).
        b = jax.nn.softplus(-2 * _time(lam))
        slope = self.beta_max - self.beta_min
        return 2 * b / (self.beta_min + jnp.sqrt(self.beta_min**2 + 2 * slope * b))


class VE(AbstractProcess):
    """Variance exploding process: ``alpha = 1``, geometric
    ``sigma(t) = sigma_min (sigma_max / sigma_min)^t``, ``dx = g(t) dW`` with
    ``g^2 = d sigma^2 / dt = 2 sigma^2 log(sigma_max / sigma_min)``.

    ``sigma(0) = sigma_min`` is not zero: the marginal at t = 0 is the data smoothed by it.
    """

    sigma_min: float = 0.01
    sigma_max: float = 50.0

    def __check_init__(self):
        _real(self.sigma_min, "sigma_min")
        _real(self.sigma_max, "sigma_max")
        _checks.positive(self.sigma_min, "sigma_min")
        _checks.positive(self.sigma_max, "sigma_max")
        if self.sigma_max <= self.sigma_min:
            raise ValueError(f"`sigma_max` must be > `sigma_min`, got sigma_min="
                             f"{self.sigma_min}, sigma_max={self.sigma_max}.")

    @property
    def _log_ratio(self) -> float:
        return math.log(self.sigma_max / self.sigma_min)

    def alpha(self, t):
        return jnp.ones_like(_time(t))

    def sigma(self, t):
        return self.sigma_min * jnp.exp(_time(t) * self._log_ratio)

    def d_alpha(self, t):
        return jnp.zeros_like(_time(t))

    def d_sigma(self, t):
        return self._log_ratio * self.sigma(t)

    def g2(self, t):
        return 2 * self._log_ratio * self.sigma(t) ** 2

    def log_snr(self, t):
        return -(math.log(self.sigma_min) + _time(t) * self._log_ratio)

    def time_of_log_snr(self, lam):
        return (-_time(lam) - math.log(self.sigma_min)) / self._log_ratio


class FlowMatchingPath(AbstractProcess):
    """The straight path ``alpha = 1 - t``, ``sigma = t`` (rectified flow): the flow-matching path
    of ``learn`` from N(0, I) with time reversed (``learn``'s time is ``1 - t``).

    ``f = -1 / (1 - t)`` and ``g^2 = 2 t / (1 - t)`` are singular at t = 1, where alpha = 0:
    samplers that need them (reverse SDE, log-SNR grids) start at some ``t_max < 1``.
    """

    def alpha(self, t):
        return 1 - _time(t)

    def sigma(self, t):
        return _time(t)

    def d_alpha(self, t):
        return -jnp.ones_like(_time(t))

    def d_sigma(self, t):
        return jnp.ones_like(_time(t))

    def g2(self, t):
        t = _time(t)
        return 2 * t / (1 - t)

    def log_snr(self, t):
        t = _time(t)
        return jnp.log1p(-t) - jnp.log(t)

    def time_of_log_snr(self, lam):
        return jax.nn.sigmoid(-_time(lam))
