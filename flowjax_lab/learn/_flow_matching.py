"""Learned flow matching: couplings, the conditional loss, sampling and likelihood (train any
field, e.g. ``fields.MLPField``, with ``learn.fit``).

The conditional flow-matching loss regresses a field on the velocity of random straight paths:
draw X0 from the source, X1 from the target, pair them by a coupling ("independent" I-CFM,
"ot" minibatch optimal transport OT-CFM, "entropic" Schrodinger-bridge SB-CFM), draw t ~ U[0, 1),
and minimise ``E |v(t, X_t) - U_t|^2`` with ``X_t = (1 - t) X0 + t X1 + sigma_t eps``. The
minimiser is the conditional expectation ``E[U_t | X_t]``, the field that moves the source to the
target.
"""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from .. import _checks, transport
from .._simulate import divergence_exact, simulate
from .._status import Status
from .._trajectory import Trajectory
from .._types import Array, Key, Particles, ParticlesLike, Scalar, StatusCode, WeightsLike

COUPLINGS = ("independent", "ot", "entropic")
# Options of the coupling's solve, passed on to `transport.minibatch_coupling`.
COUPLING_OPTIONS = ("solver", "threshold", "max_iterations", "momentum")


def _coupling_options(options) -> dict:
    """`options` as a dict, checked to hold only `COUPLING_OPTIONS`."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(COUPLING_OPTIONS))
    if unknown:
        raise ValueError(f"`coupling_options` may hold {COUPLING_OPTIONS}, got {unknown}.")
    return options


def couple(key: Key, x0: ParticlesLike, x1: ParticlesLike, coupling: str = "independent", *,
           sigma=0.0, replace: bool = False, options: dict | None = None):
    """Pair the rows of `x0` `(n, d)` with rows of `x1` `(n, d)`; usable inside ``jit``.

    - "independent": the rows as drawn (independent coupling).
    - "ot": the exact optimal permutation of `x1` (each row used once).
    - "entropic": each `x0` row draws its partner from its row of the entropic plan with
      regularisation ``2 sigma^2`` (needs `sigma > 0`), as in Schrodinger-bridge flow matching.

    With `replace`, the `n` pairs are then drawn with replacement from the coupled pairs (some
    repeat, some drop out): for "ot" this is drawing `n` pairs from the flattened exact plan, as
    torchcfm's ``OTPlanSampler`` does.

    `options` (names in `COUPLING_OPTIONS`) go to ``transport.minibatch_coupling``: `solver` for
    "ot"; `threshold`, `max_iterations`, `momentum` for "entropic".

    **Returns:** `(x0, x1_paired)`, both `(n, d)`.
    """
    coupling = _checks.choice(coupling, COUPLINGS, "coupling")
    _checks.positive(sigma, "sigma", allow_zero=coupling != "entropic")
    options = _coupling_options(options)
    if replace:
        key, k_rows = jax.random.split(key)
        x0, x1 = couple(key, x0, x1, coupling, sigma=sigma, options=options)
        rows = jax.random.randint(k_rows, x0.shape[:1], 0, x0.shape[0])
        return x0[rows], x1[rows]
    if coupling == "independent":
        return x0, x1
    if coupling == "ot":
        return transport.minibatch_coupling(x0, x1, **options)
    return transport.minibatch_coupling(x0, x1, epsilon=2 * sigma**2, key=key, **options)


def conditional_path(key: Key, x0: ParticlesLike, x1: ParticlesLike, t: WeightsLike, *,
                     sigma=0.0, bridge: bool = False):
    """A point on each conditional path and its velocity, for paired rows `x0`, `x1` `(n, d)`.

    ``X_t = (1 - t) x0 + t x1 + sigma_t eps`` with ``sigma_t = sigma`` (Gaussian smoothing) or,
    if `bridge`, ``sigma_t = sigma sqrt(t (1 - t))`` (Brownian bridge), and the velocity
    ``U_t = x1 - x0 + sigma_t' eps``. `t` has shape `(n,)`, in [0, 1].

    **Returns:** `(x_t, u_t)`, both `(n, d)`.
    """
    _checks.positive(sigma, "sigma", allow_zero=True)
    t = _checks.unit_interval(jnp.asarray(t, x0.dtype))
    if t.shape != x0.shape[:1]:
        raise ValueError(f"`t` must have shape ({x0.shape[0]},), got {tuple(t.shape)}.")
    return _path(key, x0, x1, t, sigma, bridge)


def _path(key: Key, x0, x1, t, sigma, bridge: bool):
    """[`conditional_path`][] without checks, for the loss's own draws."""
    tt = t[:, None]
    mean = (1 - tt) * x0 + tt * x1
    velocity = x1 - x0
    if sigma == 0:
        return mean, velocity
    eps = jax.random.normal(key, x0.shape, x0.dtype)
    if not bridge:
        return mean + sigma * eps, velocity
    root = jnp.sqrt(jnp.maximum(tt * (1 - tt), jnp.finfo(x0.dtype).eps))
    return mean + sigma * root * eps, velocity + sigma * (1 - 2 * tt) / (2 * root) * eps


def _draw(sampler, key: Key, n: int) -> Particles:
    if callable(sampler):
        return sampler(key, n)
    return sampler[jax.random.randint(key, (n,), 0, sampler.shape[0])]


def _sampler(value, name: str):
    if callable(value):
        return value
    try:
        return _checks.particles(value, name)
    except TypeError as err:
        raise TypeError(
            f"`{name}` must be a sampler (key, n) -> (n, d) or a data array (n, d): {err}"
        ) from err


class FlowMatchingLoss(eqx.Module):
    """The conditional flow-matching loss, callable as ``loss(model, key) -> scalar`` for
    [`fit`][].

    Each call draws `batch_size` source and target points, pairs them by `coupling`, draws
    t ~ U[0, 1) per pair and returns ``mean_i |model(t_i, x_t_i) - u_t_i|^2``.

    **Arguments:**
    - `source`, `target`: samplers ``(key, n) -> (n, d)`` or data arrays `(m, d)` (rows drawn
      uniformly with replacement).
    - `batch_size`: pairs per step.
    - `coupling`: "independent" (I-CFM), "ot" (OT-CFM, exact minibatch permutation) or
      "entropic" (SB-CFM: entropic plan with regularisation ``2 sigma^2`` and Brownian-bridge
      paths of noise level `sigma`).
    - `sigma`: Gaussian smoothing of the paths (>= 0; > 0 for "entropic").
    - `replace`: draw the batch's pairs with replacement from the coupled pairs (see [`couple`][]).
    - `coupling_options`: options of the coupling's solve (see [`couple`][]), e.g.
      ``{"momentum": 1.5, "max_iterations": 10_000}`` for a small entropic regularisation; the
      entropic solve's convergence on a batch is reported by `coupling_status`.

    The model is called one particle at a time (``model(t_i, x_i[None], None)``, vectorised), so
    any field ``f(t, x, args)`` with scalar `t` can be trained or scored.
    """

    source: object
    target: object
    batch_size: int = eqx.field(static=True)
    coupling: str = eqx.field(static=True)
    sigma: float = eqx.field(static=True)
    replace: bool = eqx.field(static=True)
    coupling_options: tuple = eqx.field(static=True)

    def __init__(self, source, target, *, batch_size: int = 256, coupling: str = "independent",
                 sigma: float = 0.0, replace: bool = False, coupling_options: dict | None = None):
        self.source = _sampler(source, "source")
        self.target = _sampler(target, "target")
        self.batch_size = _checks.positive_int(batch_size, "batch_size")
        self.coupling = _checks.choice(coupling, COUPLINGS, "coupling")
        _checks.positive(sigma, "sigma", allow_zero=self.coupling != "entropic")
        self.sigma = float(sigma)
        self.replace = bool(replace)
        self.coupling_options = tuple(sorted(_coupling_options(coupling_options).items()))

    def _draw_batch(self, key: Key):
        """The batch's source and target rows `(n, d)` (before coupling) and the keys of the
        coupling, the times and the path noise."""
        k0, k1, kc, kt, kp = jax.random.split(key, 5)
        x0 = _draw(self.source, k0, self.batch_size)
        x1 = _draw(self.target, k1, self.batch_size)
        if x0.ndim != 2 or x0.shape != x1.shape:
            raise ValueError(
                f"source and target batches must both be (n, d) and equal, got {x0.shape} and "
                f"{x1.shape}."
            )
        return x0, x1.astype(x0.dtype), (kc, kt, kp)

    def sample(self, key: Key):
        """One batch: times `(n,)`, points `x_t` `(n, d)` and regression targets `u_t` `(n, d)`."""
        x0, x1, (kc, kt, kp) = self._draw_batch(key)
        x0, x1 = couple(kc, x0, x1, self.coupling, sigma=self.sigma, replace=self.replace,
                        options=dict(self.coupling_options))
        t = jax.random.uniform(kt, x0.shape[:1], x0.dtype)
        xt, ut = _path(kp, x0, x1, t, self.sigma, self.coupling == "entropic")
        return t, xt, ut

    def coupling_status(self, key: Key) -> StatusCode:
        """The [`Status`][flowjax_lab.Status] of the coupling on the batch that ``loss(model,
        key)`` draws: the entropic plan's solve may stop at its iteration limit (the pairs are
        then drawn from an unconverged plan); "independent" and "ot" always succeed."""
        key = _checks.key(key)
        if self.coupling != "entropic":
            return jnp.asarray(Status.SUCCESS, jnp.int32)
        x0, x1, (kc, _, _) = self._draw_batch(key)
        return transport.minibatch_coupling(x0, x1, epsilon=2 * self.sigma**2, key=kc,
                                            return_status=True, **dict(self.coupling_options))[2]

    def __call__(self, model, key: Key) -> Scalar:
        t, xt, ut = self.sample(key)
        out = jax.eval_shape(lambda: model(t[0], xt[:1], None))
        if getattr(out, "shape", None) != xt[:1].shape:
            got = getattr(out, "shape", type(out).__name__)
            raise ValueError(
                f"`model` must return an array shaped like its input x {xt[:1].shape}, got {got}."
            )
        pred = jax.vmap(lambda ti, xi: model(ti, xi[None], None)[0])(t, xt)
        return jnp.mean(jnp.sum((pred.astype(ut.dtype) - ut) ** 2, axis=1))


def generate(model, x0: ParticlesLike, *, steps: int | None = None, solver: str | None = None,
             saveat=None, rtol=1e-5, atol=1e-5, args=None, max_steps: int = 4096) -> Trajectory:
    """Push source samples `x0` `(n, d)` through the field from t = 0 to 1 with ``simulate``.

    `steps=None` uses adaptive steps (tsit5 unless `solver` is given); an integer uses that many
    fixed steps (Euler unless `solver` is given). The number of field evaluations is in
    ``trajectory.stats["num_field_evals"]``.
    """
    solver = solver or ("tsit5" if steps is None else "euler")
    return simulate(model, x0, saveat=saveat, solver=solver, steps=steps, rtol=rtol, atol=atol,
                    args=args, max_steps=max_steps)


class Reversed(eqx.Module):
    """The field run backwards in time: ``g(s, x) = -field(1 - s, x)`` on [0, 1]."""

    field: object

    def __call__(self, s, x, args=None) -> Particles:
        return -self.field(1 - s, x, args)

    def divergence(self, s, x, args=None) -> Array:
        return -divergence_exact(self.field, 1 - s, x, args)[1]


def log_likelihood(model, x1: ParticlesLike, source_log_prob: Callable, *, steps: int | None = None,
                   solver: str | None = None, rtol=1e-5, atol=1e-5, args=None,
                   method: str = "exact", key=None, max_steps: int = 4096):
    """Log-density at `x1` `(n, d)` of the law the flow produces from the source.

    Integrates the field backwards from t = 1 to 0 with ``simulate(log_density=method)`` and uses
    ``log p_1(x1) = log p_0(x0) - int_0^1 div v_t(x_t) dt``.

    **Arguments:**
    - `source_log_prob`: ``(n, d) -> (n,)``, e.g. ``fl.Gaussian.standard(d).log_prob``.
    - `steps`, `solver`: as in [`generate`][]; `method`: "exact" or "hutchinson" (needs `key`).

    **Returns:** `(log_p1 (n,), trajectory)`; the trajectory (from x1 back to x0) carries the
    run's `status`.
    """
    solver = solver or ("tsit5" if steps is None else "euler")
    traj = simulate(Reversed(model), x1, solver=solver, steps=steps, rtol=rtol, atol=atol,
                    args=args, log_density=method, key=key, max_steps=max_steps)
    return source_log_prob(traj.x1) - traj.logp[-1], traj
