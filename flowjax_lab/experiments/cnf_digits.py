"""A continuous normalizing flow on real digits, in bits per dimension, against a Gaussian.

Data: the 8x8 digit images as grey levels ``k`` in {0, ..., 16}^64, dequantized uniformly,
``v = k + u`` with ``u ~ U[0, 1)^64`` (fresh noise at every training step; one fixed draw for the
test images, shared by every model). For any density ``p_v`` on ``[0, 17)^64``,
``E_u[-log p_v(k + u)] >= -log P(k)`` with ``P(k) = int p_v(k + u) du`` a distribution on the
levels, so the bits per dimension below bound those of a discrete model.

Scales. The model sees ``y = v / s - 1`` (s = 8.5, so y in [-1, 1)) whitened by the Gaussian
baseline, ``z = L^{-1} (y - mu)``, where ``mu`` and ``Sigma_y = L L^T`` are the mean and
(maximum-likelihood) covariance of one dequantized draw of the training images. The CNF is a
density ``q`` on z; the two affine changes of variables give, exactly, with d = 64,

    log p_v(v) = log q(z) - 1/2 log det Sigma_y - d log s,
    bits/dim   = -log p_v(v) / (d log 2).

The Gaussian baseline is the same formula with ``q = N(0, I)``: the maximum-likelihood Gaussian
of the training draw, on any scale. The flow on top of it starts near it and learns the shape
that no Gaussian has (always-empty pixels, strokes).

Checks: training ended well; on the test images the flow beats the same network untrained and
the Gaussian baseline, each by `margin_se` standard errors of the paired per-image difference of
bits/dim plus ``GAIN`` = 0.01 bits/dim (so that a tie, two identical models, fails); the
baseline's mean bits/dim on its own training draw equals its closed form, computed on the
grey-level scale with no whitening and no Jacobian, ``(d/2 (1 + log 2 pi) + 1/2 log det
Sigma_v) / (d log 2)`` with ``Sigma_v`` the covariance of ``v`` (a wrong sign in either change of
variables moves it by 2 log2(8.5) = 6.2 or by log det Sigma_y / (d log 2) bits); and the baseline
is below log2(17), the uniform distribution on the 17 levels. The figure shows test digits, flow
samples and baseline samples (mapped back to grey levels and floored).
"""

import dataclasses
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import datasets
from .._plotting import figure
from ..learn import CNF, fit
from ..measures import isotropic_log_prob
from ._config import validate
from ._registry import register
from ._result import Result, at_most, better, close, fit_ok
from ._training import adam, chunk_size

LEVELS = 17  # grey levels 0..16
SCALE = 8.5  # y = v / SCALE - 1 maps [0, 17) onto [-1, 1)
DIM = 64
GAIN = 0.01  # bits/dim added to each comparison's margin


@dataclasses.dataclass(frozen=True)
class Config:
    train_steps: int = 2000
    batch: int = 256
    width: int = 128
    ode_steps: int = 4
    learning_rate: float = 2e-3
    margin_se: float = 5.0
    samples: int = 16
    dtype: str = "float32"

    def __post_init__(self):
        validate(self, positive=("learning_rate", "margin_se"),
                 counts=("train_steps", "batch", "width", "ode_steps", "samples"))

    @classmethod
    def quick(cls):
        return cls(train_steps=300, batch=128, width=64, samples=8)


class _DequantizedLoss(eqx.Module):
    """``loss(model, key)`` for ``fit``: Hutchinson NLL of a mini-batch of grey levels
    ``(N, 64)``, dequantized afresh and whitened (constants of the change of variables
    dropped)."""

    levels: jax.Array
    mean: jax.Array  # (1, 64)
    whiten: jax.Array  # L^{-1}, (64, 64)
    batch: int = eqx.field(static=True)

    def __call__(self, model: CNF, key):
        k_batch, k_noise, k_probe = jax.random.split(key, 3)
        idx = jax.random.choice(k_batch, self.levels.shape[0], (self.batch,), replace=False)
        v = self.levels[idx] + jax.random.uniform(k_noise, (self.batch, DIM), self.mean.dtype)
        z = _whitened(v, self.mean, self.whiten)
        return -jnp.mean(model.log_prob(z, trace="hutchinson", key=k_probe))


def _whitened(v, mean, whiten):
    """Grey levels ``v (n, 64)`` to the model's scale ``z = L^{-1} (v / s - 1 - mu)``, with
    ``mean (1, 64)`` and ``whiten = L^{-1} (64, 64)``."""
    return (v / SCALE - 1.0 - mean) @ whiten.T


def _bits(log_q, half_log_det):
    """Bits per dimension on the grey-level scale from the log-density ``log_q (n,)`` of the
    whitened points and ``1/2 log det Sigma_y`` (the docstring's formula)."""
    return -(log_q - half_log_det - DIM * math.log(SCALE)) / (DIM * math.log(2.0))


@eqx.filter_jit
def _evaluate(model: CNF, z_test, key, samples: int):
    """Exact log-density of the whitened test points ``(n,)`` and `samples` flow samples on
    the whitened scale ``(samples, 64)``, in one compilation."""
    return model.log_prob(z_test), model.sample(key, samples)


def _to_images(z, mean, chol):
    """Whitened points ``(n, 64)`` back to floored grey levels, ``(n, 8, 8)``."""
    v = (np.asarray(z, np.float64) @ chol.T + mean + 1.0) * SCALE
    return np.clip(np.floor(v), 0, LEVELS - 1).reshape(-1, 8, 8)


@register(
    "cnf-digits",
    theme="continuous-time networks",
    config=Config,
    description="CNF on dequantized 8x8 digits: bits/dim against a full-covariance Gaussian.",
)
def run(config: Config, key, checkpoint=None) -> Result:
    k_train, k_test, k_init, k_fit, k_eval, k_gauss = jax.random.split(key, 6)
    levels, _ = datasets.load("digits", "train", scale="raw", dtype=config.dtype)
    test_levels, _ = datasets.load("digits", "test", scale="raw", dtype=config.dtype)
    dtype = levels.dtype
    v = np.asarray(levels + jax.random.uniform(k_train, levels.shape, dtype), np.float64)
    v_test = test_levels + jax.random.uniform(k_test, test_levels.shape, dtype)
    # the Gaussian baseline: maximum likelihood on the training draw, on the model's scale
    y = v / SCALE - 1.0
    mean = y.mean(axis=0, keepdims=True)
    chol = np.linalg.cholesky(np.cov(y.T, bias=True))
    half_log_det = float(np.sum(np.log(np.diag(chol))))
    whiten = np.linalg.inv(chol)
    mean_j, whiten_j = jnp.asarray(mean, dtype), jnp.asarray(whiten, dtype)
    z_train = _whitened(jnp.asarray(v, dtype), mean_j, whiten_j)
    z_test = _whitened(v_test, mean_j, whiten_j)
    baseline_train = np.asarray(_bits(isotropic_log_prob(z_train), half_log_det), np.float64)
    baseline = np.asarray(_bits(isotropic_log_prob(z_test), half_log_det), np.float64)
    # its closed form on the grey-level scale: no whitening, no Jacobian
    _, log_det_v = np.linalg.slogdet(np.cov(v.T, bias=True))
    closed_form = float((DIM / 2 * (1 + math.log(2 * math.pi)) + log_det_v / 2)
                        / (DIM * math.log(2)))

    model = CNF(DIM, width=config.width, steps=config.ode_steps, key=k_init, dtype=dtype)
    untrained = np.asarray(_bits(_evaluate(model, z_test, k_eval, config.samples)[0],
                                 half_log_det), np.float64)
    loss = _DequantizedLoss(levels, mean_j, whiten_j, min(config.batch, levels.shape[0]))
    fitted = fit(loss, model, adam(config.learning_rate), k_fit, steps=config.train_steps,
                 chunk=chunk_size(config.train_steps),
                 checkpoint=checkpoint, resume=checkpoint is not None)
    log_q, z_samples = _evaluate(fitted.model, z_test, k_eval, config.samples)
    flow = np.asarray(_bits(log_q, half_log_det), np.float64)
    paired_error = lambda other: float(np.std(flow - other) / np.sqrt(flow.size))

    result = Result("cnf-digits", dataclasses.asdict(config))
    result.metrics.update({
        "test_bits_per_dim_flow": float(np.mean(flow)),
        "test_bits_per_dim_gaussian": float(np.mean(baseline)),
        "test_bits_per_dim_untrained": float(np.mean(untrained)),
        "train_bits_per_dim_gaussian": float(np.mean(baseline_train)),
        "train_bits_per_dim_gaussian_closed_form": closed_form,
        "flow_minus_gaussian_standard_error": paired_error(baseline),
        "final_train_loss_nats": float(np.mean(fitted.losses[-10:])),
        "fit_seconds": fitted.seconds,
    })
    margin = lambda other: GAIN + config.margin_se * paired_error(other)
    words = (f"{config.margin_se:g} standard errors of the paired difference + {GAIN} "
             f"bits/dim")
    result.checks += [
        fit_ok("training", fitted),
        better("test bits/dim: flow vs untrained", np.mean(flow), np.mean(untrained),
               margin=margin(untrained),
               against=f"the same network at initialisation, same dequantized test images "
                       f"(margin {words})"),
        better("test bits/dim: flow vs full-covariance Gaussian", np.mean(flow),
               np.mean(baseline), margin=margin(baseline),
               against=f"the maximum-likelihood Gaussian of the dequantized training images, "
                       f"same test images (margin {words})"),
        # float32 whitening and log-densities: relative errors ~1e-6 of values ~1e2 nats
        close("Gaussian baseline on its training draw vs closed form",
              np.mean(baseline_train), closed_form, 1e-3, relative=False,
              against="d/2 (1 + log 2 pi) + 1/2 log det Sigma_v on the grey-level scale "
                      "(numpy, float64), in bits/dim; 1e-3 absolute"),
        at_most("Gaussian baseline vs uniform on the levels", np.mean(baseline),
                math.log2(LEVELS),
                against="log2(17) bits/dim: the uniform distribution on the 17 grey levels"),
    ]
    test_images = np.asarray(test_levels[:config.samples]).reshape(-1, 8, 8)
    flow_images = _to_images(z_samples, mean, chol)
    gauss = jax.random.normal(k_gauss, (config.samples, DIM), dtype)
    gauss_images = _to_images(gauss, mean, chol)
    result.arrays.update({"flow_samples": flow_images, "losses": fitted.losses,
                          "test_bits_per_dim_flow": flow, "test_bits_per_dim_gaussian": baseline})
    fig, axes = figure(config.samples, 3, size=0.9)
    for row, (title, images) in enumerate((("test digits", test_images),
                                           ("flow samples", flow_images),
                                           ("Gaussian samples", gauss_images))):
        for col, image in enumerate(images):
            axes[row, col].imshow(image, cmap="gray_r", vmin=0, vmax=LEVELS - 1)
            axes[row, col].set_axis_off()
        axes[row, 0].set_title(title, fontsize=8, loc="left")
    result.figures["digits_and_samples"] = fig
    return result
