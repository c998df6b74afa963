"""Neural mean-field game: crowd motion around an obstacle (PNAS 2020), d = 2 and d = 10.

A crowd N((0, 3), 0.3 I) must reach N((0, -3), 0.3 I) while the running cost
``Q = 50 N(x_{1:2}; 0, diag(1, 0.5))`` penalises the region in between. The obstacle mass is the
fraction of particle-time samples inside the obstacle's one-sigma ellipse
``x_1^2 / 1 + x_2^2 / 0.5 < 1`` (a non-finite position makes it NaN); it is compared with
straight-line paths from each start to its shifted end ``x_0 - (0, 6)``, the optimal paths
without the obstacle. With the paper's weights the detour costs nearly as much transport as it
saves running cost, so the avoidance is partial (about a quarter less obstacle mass after 1500
Adam steps in d = 2). A crowd that stays put has no obstacle mass, so the run also checks that
the crowd reaches rho_1 (see ``mfg_transport.reaching_checks``): nearer than the untrained
network, within Talagrand's bound from its terminal KL, and within the reach of the game's
optimum. The optimum costs at most what the straight paths x_0 + t (0, -6) cost (they end
exactly on rho_1: G = 0), so its terminal KL is ``G* <= (a_1 L_s + a_2 F_s) / a_3`` with
``L_s = 18`` and F_s their running cost, and by Talagrand its end law is within
``sqrt(2 s G*)`` (about 1.6) of rho_1 = N((0, -3), s I), s = 0.3. Without the obstacle the
penalised game has a closed form: the crowd stops ``6 s a_1 / (s a_1 + a_3) = 0.34`` short;
the quick run stops about 0.6 short.
"""

import dataclasses
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._plotting import figure, paths
from ..learn import crowd_game
from ._registry import register
from ._result import Result, at_most, better
from .mfg_transport import (
    TARGET_VARIANCE,
    solve_and_reach,
    validate_game_config,
)

TARGET_MEAN = (0.0, -3.0)  # PNAS 2020's rho_1 = N((0, -3), 0.3 I), first two coordinates


@dataclasses.dataclass(frozen=True)
class Config:
    dims: tuple = (2, 10)
    train_steps: int = 1500
    batch: int = 512
    width: int = 16
    learning_rate: float = 1e-2
    eval_every: int = 100
    n_eval: int = 1000
    dtype: str = "float32"

    def __post_init__(self):
        validate_game_config(self)

    @classmethod
    def quick(cls):
        # d = 2 only: each dimension compiles its own training step (about 10 s of CPU), so the
        # d = 10 checks run at full size only. train_steps is a multiple of eval_every (one
        # compiled chunk length).
        return cls(dims=(2,), train_steps=300, batch=256, learning_rate=3e-2, eval_every=100,
                   n_eval=400)


def inside_fraction(xs):
    """Per particle, the fraction of the saved times of ``xs (T, n, d)`` spent inside the ellipse
    x1^2 + x2^2 / 0.5 < 1: shape ``(n,)``, NaN for a particle with a non-finite position."""
    inside = (xs[..., 0] ** 2 + xs[..., 1] ** 2 / 0.5 < 1).astype(xs.dtype)
    finite = jnp.all(jnp.isfinite(xs), axis=(0, 2))
    return jnp.where(finite, jnp.mean(inside, axis=0), jnp.nan)


@eqx.filter_jit
def obstacle_statistics(game, paths, x_eval):
    """Obstacle masses of `paths` (the fine trajectory) and of the straight paths from the same
    starts to their shifted ends, the standard error of their paired difference, and the
    straight paths' transport and running costs (L, F; trapezoid rule in time)."""
    zeros = jnp.zeros(game.dim, x_eval.dtype)
    shift = zeros.at[:2].set(jnp.asarray(TARGET_MEAN, x_eval.dtype)) - zeros.at[1].set(3.0)
    straight = x_eval[None] + paths.ts[:, None, None] * shift[None, None]
    inside = inside_fraction(paths.xs[:, :, :game.dim])
    inside_straight = inside_fraction(straight)
    running = jax.vmap(game.running_cost)(straight)
    running = jnp.sum(0.5 * (running[1:] + running[:-1]) * jnp.diff(paths.ts)[:, None], axis=0)
    # The two masses are paired (same starts): the standard error of their difference is that
    # of the per-particle differences.
    paired_error = jnp.std(inside - inside_straight) / jnp.sqrt(x_eval.shape[0])
    return {"mass": jnp.mean(inside), "mass_straight": jnp.mean(inside_straight),
            "paired_error": paired_error, "L_straight": 0.5 * jnp.sum(shift**2),
            "F_straight": jnp.mean(running)}


@register(
    "mfg-crowd",
    theme="continuous-time networks",
    config=Config,
    description="Neural MFG (PNAS 2020): crowd motion around an obstacle, d = 2 and 10.",
)
def run(config: Config, key, checkpoint=None) -> Result:
    result = Result("mfg-crowd", dataclasses.asdict(config))
    fig, axes = figure(len(config.dims) + 1, size=3.6)
    for col, dim in enumerate(config.dims):
        label = f"d={dim}"
        game = crowd_game(dim, batch=config.batch)
        solved, fine, values, checks = solve_and_reach(label, game, config, key, checkpoint,
                                                       TARGET_MEAN)
        fitted, _, x_eval, _ = solved
        xs = fine.xs[:, :, :dim]
        stats = {k: float(v) for k, v in obstacle_statistics(game, fine, x_eval).items()}
        mass, mass_straight = stats["mass"], stats["mass_straight"]
        a1, a2, a3 = game.weights[:3]
        cost_straight = a1 * stats["L_straight"] + a2 * stats["F_straight"]
        optimum_reach = (math.sqrt(2 * TARGET_VARIANCE * cost_straight / a3)
                         + math.sqrt(2) * values["w2_rho1_sampling_floor"])
        result.metrics.update({f"d{dim}_{k}": v for k, v in values.items()})
        result.metrics.update({
            f"d{dim}_obstacle_mass": mass,
            f"d{dim}_obstacle_mass_straight_paths": mass_straight,
            f"d{dim}_obstacle_mass_difference_standard_error": stats["paired_error"],
            f"d{dim}_straight_paths_cost_a1L_plus_a2F": cost_straight,
        })
        result.checks += checks + [
            at_most(f"{label}: end points within the optimum's reach of rho_1",
                    values["w2_end_to_rho1_samples"], optimum_reach, kind="theory",
                    against="sqrt(2 s G*) with G* <= (a_1 L + a_2 F) / a_3 of the straight paths "
                            "(Talagrand on the game's optimum) + sqrt(2) x the sampling floor"),
            better(f"{label}: obstacle mass below that of straight paths", mass, mass_straight,
                   margin=3 * stats["paired_error"],
                   against="straight paths x_0 + t (0, -6) from the same starts (optimal "
                           "without the obstacle); margin 3 paired standard errors"),
        ]
        result.arrays[f"d{dim}_paths"] = np.asarray(xs[:, :200, :2])
        ax = axes[0, col]
        theta = np.linspace(0, 2 * np.pi, 100)
        ax.fill(np.cos(theta), np.sqrt(0.5) * np.sin(theta), color="0.8", zorder=0)
        paths(ax, xs[:, :, :2], count=120)
        ax.set_title(f"d = {dim}: paths (x1, x2), obstacle mass {mass:.3f} "
                     f"(straight {mass_straight:.3f})", fontsize=7)
        ax.set_aspect("equal")
        steps = [0] + [s for s, _ in fitted.evaluations]
        hjb = [values["hjb_residual_initial"]] + [e["HJB"] for _, e in fitted.evaluations]
        axes[0, -1].semilogy(steps, hjb, marker="o", label=f"d = {dim}")
    axes[0, -1].set_xlabel("training step")
    axes[0, -1].set_title("HJB residual", fontsize=8)
    axes[0, -1].legend(fontsize=8)
    result.figures["paths_and_hjb"] = fig
    return result
