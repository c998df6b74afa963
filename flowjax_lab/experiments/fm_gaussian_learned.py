"""Learned flow matching between Gaussians recovers the linear field of theory.

An MLP field is trained by I-CFM from N(0, cov0) to N(0, cov1) in two cases: a standard Gaussian
source, where the flow-matching map equals the Bures-Monge map, and non-commuting covariances,
where the two maps differ. At several times the learned field, restricted to samples of alpha_t,
is fitted by a matrix and compared with ``A_t`` of ``theory.flow_matching_gaussian``; the learned
end map (a least-squares fit of generated x1 against x0) is compared with
``theory.flow_matching_map`` and with the Monge map.
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import metrics, theory
from .._plotting import covariance_ellipse, figure, paths
from ..fields import MLPField
from ..learn import FlowMatchingLoss, fit, generate
from ._registry import register
from ._result import Result, check
from ._training import chunk_size, sub_folder


@dataclasses.dataclass(frozen=True)
class Config:
    steps: int = 3000
    batch_size: int = 512
    width: int = 64
    depth: int = 3
    learning_rate: float = 3e-3
    eval_points: int = 4000
    tolerance: float = 0.1  # relative error allowed on A_t

    @classmethod
    def quick(cls):
        return cls(steps=600, batch_size=256, eval_points=2000, tolerance=0.25)


def _cases(dtype):
    c, s = np.cos(1.0), np.sin(1.0)
    rot = np.array([[c, -s], [s, c]])
    cov1 = rot @ np.diag([2.0, 0.3]) @ rot.T
    return {
        "standard source": (np.eye(2), cov1),
        "non-commuting": (np.diag([1.0, 0.15]), cov1),
    }


class _Gaussian(eqx.Module):
    """Sampler ``(key, n) -> (n, 2)`` of N(0, cov); a Module (the Cholesky factor is an array),
    so that losses with different covariances share one compiled training step in ``fit``."""

    chol: jax.Array

    def __init__(self, cov):
        self.chol = jnp.linalg.cholesky(cov)

    def __call__(self, key, n):
        return jax.random.normal(key, (n, 2), self.chol.dtype) @ self.chol.T


_gaussian = _Gaussian


@register(
    "fm-gaussian-learned",
    theme="optimal transport and flow matching",
    config=Config,
    description="Learned FM between Gaussians recovers A_t; FM map vs Monge map with figures.",
)
def run(config: Config, key, checkpoint=None) -> Result:
    dtype = jnp.result_type(float)
    result = Result("fm-gaussian-learned", dataclasses.asdict(config))
    times = np.linspace(0.1, 0.9, 9)
    fig, axes = figure(3, size=3.6)
    # One optimizer for both cases: with the samplers as Modules, both trainings share one
    # compiled step.
    optimizer = optax.adam(optax.cosine_decay_schedule(config.learning_rate, config.steps, 0.01))
    for i, (case, (cov0, cov1)) in enumerate(_cases(dtype).items()):
        cov0, cov1 = jnp.asarray(cov0, dtype), jnp.asarray(cov1, dtype)
        k_model, k_fit, k_eval = jax.random.split(jax.random.fold_in(key, i), 3)
        model = MLPField(2, width=config.width, depth=config.depth, activation=jax.nn.selu,
                         key=k_model)
        loss = FlowMatchingLoss(_gaussian(cov0), _gaussian(cov1), batch_size=config.batch_size)
        folder = sub_folder(checkpoint, case)
        trained = fit(loss, model, optimizer, k_fit, steps=config.steps,
                      chunk=chunk_size(config.steps), checkpoint=folder,
                      resume=folder is not None, progress=False).model

        errors = []
        for t in times:
            cov_t, a_t = theory.flow_matching_gaussian(cov0, cov1, t)
            x = _gaussian(cov_t)(k_eval, config.eval_points)
            fitted = jnp.linalg.lstsq(x, trained(t, x))[0].T
            errors.append(float(metrics.relative_error(fitted, a_t)))
        x0 = _gaussian(cov0)(k_eval, config.eval_points)
        traj = generate(trained, x0, saveat=21)
        learned_map = jnp.linalg.lstsq(x0, traj.x1)[0].T
        fm_map = theory.flow_matching_map(cov0, cov1)
        monge = theory.bures_monge_map(cov0, cov1)
        gap = float(metrics.relative_error(fm_map, monge))
        to_fm = float(metrics.relative_error(learned_map, fm_map))
        to_monge = float(metrics.relative_error(learned_map, monge))
        result.metrics.update({
            f"{case}: A_t relative error max": max(errors),
            f"{case}: A_t relative error mean": float(np.mean(errors)),
            f"{case}: FM map vs Monge map (theory)": gap,
            f"{case}: learned map vs FM map": to_fm,
            f"{case}: learned map vs Monge map": to_monge,
            f"{case}: generated covariance rel. error": float(metrics.relative_error(
                metrics.covariance(traj.x1), cov1)),
        })
        result.checks.append(check(f"{case}: learned A_t vs theory (mean over t)",
                                   np.mean(errors), 0.0, config.tolerance, relative=False))
        result.checks.append(check(f"{case}: learned end map vs theory FM map", learned_map,
                                   fm_map, config.tolerance))
        result.arrays[f"{case} A_t errors"] = np.array(errors)
        axes[0, 0].plot(times, errors, marker="o", label=case)
        ax = axes[0, 1 + i]
        paths(ax, traj.xs, count=80, alpha=0.3)
        covariance_ellipse(ax, cov0, color="k", lw=1.5, label="cov0")
        covariance_ellipse(ax, cov1, color="C3", lw=1.5, label="cov1")
        ax.set_title(f"{case}\n|FM map - Monge| / |Monge| = {gap:.3f}", fontsize=9)
        ax.set_aspect("equal")
        ax.legend(fontsize=7, loc="lower right")
    # With a standard source the FM map is the Monge map; with non-commuting covariances not.
    result.checks.append(check("standard source: FM map equals Monge map",
                               result.metrics["standard source: FM map vs Monge map (theory)"],
                               0.0, 1e-4, relative=False))
    axes[0, 0].set_xlabel("t")
    axes[0, 0].set_ylabel("relative error of learned A_t")
    axes[0, 0].legend(fontsize=8)
    result.figures["gaussian_flow_matching"] = fig
    return result
