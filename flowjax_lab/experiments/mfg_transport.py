"""Neural mean-field game: dynamic optimal transport from 8 Gaussians to one (PNAS 2020).

The Lagrangian solver of Ruthotto et al. trains a value network Phi(x, t); particles follow
``-grad Phi / a_1`` and carry their log-density, transport cost and HJB residual as extra state
channels. Run in d = 2 and d = 10 (the mixture lives in the first two coordinates). Optimal
transport paths are straight lines at constant speed, so ``metrics.straightness`` should be close
to one; the HJB residual should fall during training. Optimality: any flow has
transport cost L >= W2^2(rho_0, rho(., 1)) / 2, with equality for the optimal one, so L is compared
with W2^2 / 2 (exact assignment) between the samples and their own end points. Half the squared
W2 distance to samples of rho_1 is reported as well: the penalised problem approaches it from
below as the terminal KL term shrinks.
"""

import dataclasses
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import metrics, transport
from .._plotting import figure, paths
from ..fields import Potential
from ..learn import MeanFieldGame, fit, transport_game
from ._registry import register
from ._result import Result, check


@dataclasses.dataclass(frozen=True)
class Config:
    dims: tuple = (2, 10)
    train_steps: int = 1500
    batch: int = 512
    width: int = 16
    learning_rate: float = 1e-2
    eval_every: int = 100
    n_eval: int = 1000

    @classmethod
    def quick(cls):
        # d = 2 only: each dimension compiles its own training step (about 10 s of CPU), so the
        # d = 10 checks run at full size only. train_steps is a multiple of eval_every (one
        # compiled chunk length).
        return cls(dims=(2,), train_steps=200, batch=256, eval_every=50, n_eval=400)


def solve_game(game: MeanFieldGame, config, key, checkpoint=None):
    """Train the value network on `game` with Adam; returns (potential, FitResult, x_eval, initial
    terms). The HJB residual and the objective are evaluated on fixed samples every
    `config.eval_every` steps. `checkpoint`: a folder to save (and resume) the training in."""
    k_init, k_fit, k_eval = jax.random.split(key, 3)
    potential = Potential(game.dim, width=config.width, key=k_init)
    x_eval = game.sample_initial(k_eval, config.n_eval)

    @eqx.filter_jit
    def evaluate(p):
        terms = game.terms(p, x_eval)
        return {**terms, "J": game.objective(terms)}

    initial = evaluate(potential)
    fitted = fit(game, potential, optax.adam(config.learning_rate), k_fit,
                 steps=config.train_steps, chunk=config.eval_every, evaluate=evaluate,
                 eval_every=config.eval_every, checkpoint=checkpoint,
                 resume=checkpoint is not None, progress=False)
    return fitted.model, fitted, x_eval, {k: float(v) for k, v in initial.items()}


@register(
    "mfg-transport",
    theme="continuous-time networks",
    config=Config,
    description="Neural MFG (PNAS 2020): dynamic OT from 8 Gaussians to a Gaussian, d = 2 and 10.",
)
def run(config: Config, key, checkpoint=None) -> Result:
    result = Result("mfg-transport", dataclasses.asdict(config))
    fig, axes = figure(len(config.dims) + 1, size=3.6)
    for col, dim in enumerate(config.dims):
        game = transport_game(dim, batch=config.batch)
        folder = None if checkpoint is None else Path(checkpoint) / f"d{dim}"
        potential, fitted, x_eval, initial = solve_game(game, config, jax.random.fold_in(key, dim),
                                                        folder)
        final = fitted.evaluations[-1][1]
        fine = game.characteristics(potential, x_eval, steps=16, saveat=17)
        xs = fine.xs[:, :, :dim]
        # rho_0 and rho_1 share the law N(0, 0.3 I) of coordinates 3..d, independent of the
        # first two, so the OT cost is that of the first two coordinates alone.
        y_target = jnp.sqrt(game.variance1) * jax.random.normal(
            jax.random.fold_in(key, 100 + dim), (config.n_eval, 2), x_eval.dtype)
        half_w2_sq = 0.5 * float(transport.w2(x_eval[:, :2], y_target)) ** 2
        straight = float(metrics.straightness(xs, fine.ts))
        # Any flow costs L >= 1/2 E|z - x0|^2 >= W2^2(rho_0, rho(., 1)) / 2 (the identity pairing
        # is one coupling); equality holds exactly for optimal transport to its own end law.
        cost_fine = float(jnp.mean(fine.x1[:, dim + 1]))
        half_w2_own = 0.5 * float(transport.w2(x_eval, xs[-1])) ** 2
        result.metrics.update({
            f"d{dim}_transport_cost_L": final["L"],
            f"d{dim}_half_w2_squared_to_rho1_samples": half_w2_sq,
            f"d{dim}_half_w2_squared_to_own_end_law": half_w2_own,
            f"d{dim}_terminal_kl_G": final["G"],
            f"d{dim}_hjb_residual_initial": initial["HJB"],
            f"d{dim}_hjb_residual_final": final["HJB"],
            f"d{dim}_terminal_hjb_final": final["HJB_1"],
            f"d{dim}_objective_J": final["J"],
            f"d{dim}_straightness": straight,
            f"d{dim}_fit_seconds": fitted.seconds,
        })
        result.checks += [
            check(f"d={dim}: straight paths", straight, 1.0, 0.05),
            check(f"d={dim}: HJB residual decreased",
                  max(0.0, final["HJB"] - initial["HJB"]), 0.0, 0.0, relative=False),
            check(f"d={dim}: transport cost = W2^2/2 to its own end law (optimality)",
                  cost_fine, half_w2_own, 0.05),
        ]
        result.arrays[f"d{dim}_paths"] = np.asarray(xs[:, :200, :2])
        result.arrays[f"d{dim}_log_density_along_paths"] = np.asarray(
            game.log_initial(x_eval)[None] - fine.xs[:, :, dim])
        paths(axes[0, col], xs[:, :, :2], count=120)
        axes[0, col].set_title(f"d = {dim}: paths (x1, x2), straightness {straight:.3f}",
                               fontsize=8)
        axes[0, col].set_aspect("equal")
        steps = [0] + [s for s, _ in fitted.evaluations]
        hjb = [initial["HJB"]] + [e["HJB"] for _, e in fitted.evaluations]
        axes[0, -1].semilogy(steps, hjb, marker="o", label=f"d = {dim}")
    axes[0, -1].set_xlabel("training step")
    axes[0, -1].set_title("HJB residual", fontsize=8)
    axes[0, -1].legend(fontsize=8)
    result.figures["paths_and_hjb"] = fig
    return result
