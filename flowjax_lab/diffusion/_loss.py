"""Denoising score matching (Vincent 2011; Ho et al. 2020; Song et al. 2021), as a loss for
``learn.fit``.

Draw data x0, a time t ~ U[t_min, 1), noise eps and ``x_t = alpha(t) x0 + sigma(t) eps``; regress
the model's prediction on the matching function of ``(x0, eps)``. The minimiser of
``E |model(t, x_t) - target|^2`` is the posterior mean of the target given ``x_t``: the exact
prediction of that kind (Tweedie for the score), whatever the (positive) weighting.
"""

import equinox as eqx
import jax
import jax.numpy as jnp

from .. import _checks
from .._types import Array, Key, Scalar
from ..learn._flow_matching import _draw, _sampler
from ._predictions import Coefficients, check_prediction, check_process

WEIGHTINGS = ("none", "likelihood")


def _score_scale(kind: str, c: Coefficients):
    """``|d score / d prediction|``: an error e in the prediction is an error scale * e in the
    score (at fixed x)."""
    if kind == "eps":
        return 1 / c.s
    if kind == "x0":
        return c.a / c.s**2
    if kind == "v":
        return c.a / (c.s * (c.a**2 + c.s**2))
    if kind == "score":
        return jnp.ones_like(c.s)
    return c.a / (c.s * (c.a * c.ds - c.s * c.da))


class DenoisingScoreMatching(eqx.Module):
    """The denoising loss, callable as ``loss(model, key) -> scalar`` for ``learn.fit``.

    **Arguments:**
    - `process`: the forward process.
    - `data`: a sampler ``(key, n) -> (n, d)`` or a data array `(m, d)` (rows drawn uniformly
      with replacement).
    - `prediction`: what the model predicts: "eps" (target eps), "x0" (target x0), "v"
      (``alpha eps - sigma x0``), "score" (``-eps / sigma``) or "velocity"
      (``alpha' x0 + sigma' eps``, the conditional flow-matching target of the path).
    - `weighting`: "none" (plain squared error of the prediction), "likelihood" (Song et al.'s
      ``g(t)^2 |score error|^2``, which bounds the KL divergence of the reverse SDE), or a
      callable ``w(t) -> (n,)`` of the times `(n,)`.
    - `batch_size`: samples per step; `t_min`: the smallest time drawn (the targets "score" and
      "likelihood" blow up as sigma -> 0).

    The model is called one sample at a time (``model(t_i, x_i[None])``, vectorised).
    """

    process: object
    data: object
    weighting: object
    prediction: str = eqx.field(static=True)
    batch_size: int = eqx.field(static=True)
    t_min: float = eqx.field(static=True)

    def __init__(self, process, data, *, prediction: str = "eps", weighting="none",
                 batch_size: int = 256, t_min: float = 1e-3):
        self.process = check_process(process)
        self.data = _sampler(data, "data")
        self.prediction = check_prediction(prediction)
        if not callable(weighting):
            _checks.choice(weighting, WEIGHTINGS, "weighting")
        self.weighting = weighting
        self.batch_size = _checks.positive_int(batch_size, "batch_size")
        _checks.positive(t_min, "t_min")
        if not t_min < 1:
            raise ValueError(f"`t_min` must be < 1, got {t_min!r}.")
        self.t_min = float(t_min)

    def sample(self, key: Key) -> tuple[Array, Array, Array, Coefficients]:
        """One batch: times `(n,)`, noisy points `x_t` `(n, d)`, regression targets `(n, d)` and
        the coefficients at the times."""
        kd, kt, ke = jax.random.split(key, 3)
        x0 = _draw(self.data, kd, self.batch_size)
        if x0.ndim != 2:
            raise ValueError(f"`data` must give batches of shape (n, d), got {x0.shape}.")
        t = jax.random.uniform(kt, x0.shape[:1], x0.dtype, self.t_min, 1)
        eps = jax.random.normal(ke, x0.shape, x0.dtype)
        c = Coefficients.at(self.process, t, x0)
        xt = c.a * x0 + c.s * eps
        targets = {"eps": eps, "x0": x0, "v": c.a * eps - c.s * x0, "score": -eps / c.s,
                   "velocity": c.da * x0 + c.ds * eps}
        return t, xt, targets[self.prediction], c

    def weights(self, t, c: Coefficients) -> Array:
        """The weight of each sample, `(n,)`."""
        if callable(self.weighting):
            return jnp.broadcast_to(jnp.asarray(self.weighting(t), t.dtype), t.shape)
        if self.weighting == "none":
            return jnp.ones_like(t)
        return self.process.g2(t) * _score_scale(self.prediction, c)[:, 0] ** 2

    def __call__(self, model, key: Key) -> Scalar:
        t, xt, target, c = self.sample(key)
        out = jax.eval_shape(lambda: model(t[0], xt[:1]))
        if getattr(out, "shape", None) != xt[:1].shape:
            got = getattr(out, "shape", type(out).__name__)
            raise ValueError(
                f"`model` must return an array shaped like its input x {xt[:1].shape}, got {got}."
            )
        pred = jax.vmap(lambda ti, xi: model(ti, xi[None])[0])(t, xt)
        error = jnp.sum((pred.astype(xt.dtype) - target) ** 2, axis=1)
        return jnp.mean(self.weights(t, c) * error)
