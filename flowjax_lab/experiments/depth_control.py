"""Control through depth: learn piecewise-constant attention parameters theta(t) (one (Q, K, V)
per layer) by gradient descent through the token dynamics, so that Gaussian tokens are carried
to a rotated anisotropic Gaussian, with a Sinkhorn-divergence loss (``learn.fit``).

Reported: the divergence to fresh target samples before and after training, the Bures distance
between the transported and target covariances, and the in-context map ``T_theta(alpha, x)`` of
a grid of query tokens given the source cloud as context.

Margins: the trained model must beat the untrained one on the same held-out clouds by 3 standard
deviations of the difference. Over 20 draws of the evaluation clouds (quick training), the
difference of the divergences had a standard deviation of 0.073 at `evaluation_n` = 256 and 0.047
at 512, about ``1.1 / sqrt(evaluation_n)``; that of the Bures distances about
``1.0 / sqrt(evaluation_n)``; both differences averaged 0.34 at 512, 7 such deviations.
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import transport
from .._plotting import covariance_ellipse, figure
from ..learn import DepthControl, DepthControlLoss, fit
from ..measures import Gaussian
from ._config import validate
from ._registry import register
from ._result import Result, better, fit_ok
from ._training import adam, chunk_size

# standard deviations of (untrained - trained) held-out values times sqrt(evaluation_n), see above
DIVERGENCE_SPREAD = 1.1
BURES_SPREAD = 1.0


@dataclasses.dataclass(frozen=True)
class Config:
    n: int = 128
    layers: int = 4
    steps: int = 400
    learning_rate: float = 0.03
    eigenvalues: tuple = (2.0, 0.3)
    rotation: float = 0.6
    evaluation_n: int = 512
    dtype: str = "float32"

    def __post_init__(self):
        validate(self, positive=("learning_rate", "eigenvalues"), nonnegative=("rotation",),
                 counts=("n", "layers", "steps", "evaluation_n"))

    @classmethod
    def quick(cls):
        return cls(n=64, steps=150)


def _target_cov(config, dtype):
    c, s = np.cos(config.rotation), np.sin(config.rotation)
    rot = np.array([[c, -s], [s, c]])
    return jnp.asarray(rot @ np.diag(config.eigenvalues) @ rot.T, dtype)


@eqx.filter_jit
def _setup(config: Config, k_init, k_eval):
    """Evaluation clouds, the target covariance, the initial model and the Bures distance of
    the source to the target, in one compilation."""
    dtype = jnp.dtype(config.dtype)
    cov1 = _target_cov(config, dtype)
    source = Gaussian(jnp.zeros(2, dtype), jnp.eye(2, dtype=dtype))
    target = Gaussian(jnp.zeros(2, dtype), cov1)
    model = DepthControl.init(k_init, 2, config.layers, scale=0.1, dtype=dtype)
    ks, kt = jax.random.split(k_eval)
    x_eval, y_eval = source.sample(ks, config.evaluation_n), target.sample(kt, config.evaluation_n)
    zero = jnp.zeros(2, dtype)
    bures0 = transport.gaussian_w2_squared(zero, jnp.eye(2, dtype=dtype), zero, cov1)
    return cov1, model, x_eval, y_eval, bures0


@eqx.filter_jit
def _measure(model: DepthControl, x_eval, y_eval, cov1, grid):
    """The transported cloud, its Sinkhorn divergence to the target samples, the Bures distance
    of its covariance to the target's, and the in-context map on `grid` (one compilation, for
    the model before and after training). A non-finite transported cloud gives NaN numbers (the
    divergence is computed on a stand-in cloud, since Sinkhorn refuses NaN)."""
    moved = model(x_eval)
    finite = jnp.all(jnp.isfinite(moved))
    nan = jnp.asarray(jnp.nan, moved.dtype)
    divergence = transport.sinkhorn_divergence(jnp.where(finite, moved, y_eval), y_eval)
    moved_cov = jnp.cov(jnp.where(finite, moved, y_eval).T).astype(moved.dtype)
    zero = jnp.zeros(2, moved.dtype)
    bures = transport.gaussian_w2_squared(zero, moved_cov, zero, cov1)
    return {"divergence": jnp.where(finite, divergence, nan), "moved": moved,
            "bures": jnp.where(finite, bures, nan),
            "in_context": model.in_context(x_eval[:128], grid)}


@register("depth-control", theme="transformer dynamics", config=Config,
          description="Learn layer-wise attention parameters to steer tokens to a target.")
def run(config: Config, key, checkpoint=None) -> Result:
    dtype = jnp.dtype(config.dtype)
    k_init, k_fit, k_eval = jax.random.split(key, 3)
    cov1, model, x_eval, y_eval, bures0 = _setup(config, k_init, k_eval)
    source = Gaussian(jnp.zeros(2, dtype), jnp.eye(2, dtype=dtype))
    target = Gaussian(jnp.zeros(2, dtype), cov1)
    loss = DepthControlLoss(source.sample, target.sample, config.n)
    grid = np.stack(np.meshgrid(np.linspace(-2, 2, 7), np.linspace(-2, 2, 7)),
                    axis=-1).reshape(-1, 2).astype(dtype)

    untrained = _measure(model, x_eval, y_eval, cov1, grid)
    before, bures_before = float(untrained["divergence"]), float(untrained["bures"])
    trained = fit(loss, model, adam(config.learning_rate), k_fit, steps=config.steps,
                  chunk=chunk_size(config.steps, 50), checkpoint=checkpoint,
                  resume=checkpoint is not None)
    out = {k: np.asarray(v) for k, v in
           _measure(trained.model, x_eval, y_eval, cov1, grid).items()}
    after, bures = float(out["divergence"]), float(out["bures"])
    moved, mapped = out["moved"], out["in_context"]
    x_eval, y_eval, cov1 = np.asarray(x_eval), np.asarray(y_eval), np.asarray(cov1)
    noise = 3 / np.sqrt(config.evaluation_n)  # 3 standard deviations over the spreads above

    result = Result("depth-control", dataclasses.asdict(config))
    result.checks += [
        fit_ok("training", trained),
        better("held-out Sinkhorn divergence to the target: trained vs untrained", after, before,
               margin=noise * DIVERGENCE_SPREAD,
               against="the same model before training, on the same fresh source and target "
                       "samples"),
        better("Bures W2^2 of the transported covariance to the target: trained vs untrained",
               bures, bures_before, margin=noise * BURES_SPREAD,
               against="the same model before training (closed-form Gaussian W2 of the "
                       "covariances)"),
    ]
    result.metrics.update({"divergence_before": before, "divergence_after": after,
                           "bures_w2_sq_source": float(bures0),
                           "bures_w2_sq_before": bures_before, "bures_w2_sq_after": bures,
                           "final_loss": float(np.mean(trained.losses[-10:]))})
    result.arrays.update({"losses": trained.losses, "moved": moved, "target": y_eval,
                          "grid": grid, "in_context": mapped, "Q": trained.model.Q,
                          "K": trained.model.K, "V": trained.model.V})

    fig, axes = figure(3, size=3.8)
    ax = axes[0, 0]
    ax.scatter(*np.asarray(x_eval).T, s=3, color="0.6", label="source")
    ax.scatter(*np.asarray(moved).T, s=3, color="C0", label="transported")
    covariance_ellipse(ax, cov1, color="C3", lw=1.5, label="target (2 sigma)")
    ax.set_aspect("equal")
    ax.legend(fontsize=7)
    ax.set_title("tokens at depth 1", fontsize=10)
    axes[0, 1].semilogy(trained.losses)
    axes[0, 1].set_xlabel("step")
    axes[0, 1].set_title("Sinkhorn divergence (training batches)", fontsize=10)
    ax = axes[0, 2]
    g, m = np.asarray(grid), np.asarray(mapped)
    ax.quiver(g[:, 0], g[:, 1], m[:, 0] - g[:, 0], m[:, 1] - g[:, 1], angles="xy",
              scale_units="xy", scale=1, width=0.004)
    ax.set_aspect("equal")
    ax.set_title("in-context map T(alpha, x) - x", fontsize=10)
    result.figures["depth_control"] = fig
    return result
