"""Neural mean-field game: crowd motion around an obstacle (PNAS 2020), d = 2 and d = 10.

A crowd N((0, 3), 0.3 I) must reach N((0, -3), 0.3 I) while the running cost
``Q = 50 N(x_{1:2}; 0, diag(1, 0.5))`` penalises the region in between. The obstacle mass is the
fraction of particle-time samples inside the obstacle's one-sigma ellipse
``x_1^2 / 1 + x_2^2 / 0.5 < 1``; it is compared with straight-line paths from each start to its
shifted end ``x_0 - (0, 6)``, the optimal paths without the obstacle. With the paper's weights
the detour costs nearly as much transport as it saves running cost, so the avoidance is partial
(about a quarter less obstacle mass after 1500 Adam steps in d = 2).
"""

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .._plotting import figure, paths
from ..learn import crowd_game
from ._registry import register
from ._result import Result, check
from .mfg_transport import solve_game


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
        return cls(dims=(2,), train_steps=300, batch=256, learning_rate=3e-2, eval_every=100,
                   n_eval=400)


def obstacle_mass(xs) -> float:
    """Fraction of the points ``xs (T, n, d)`` inside the ellipse x1^2 + x2^2 / 0.5 < 1."""
    inside = xs[..., 0] ** 2 + xs[..., 1] ** 2 / 0.5 < 1
    return float(jnp.mean(inside.astype(xs.dtype)))


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
        game = crowd_game(dim, batch=config.batch)
        folder = None if checkpoint is None else Path(checkpoint) / f"d{dim}"
        potential, fitted, x_eval, initial = solve_game(game, config, jax.random.fold_in(key, dim),
                                                        folder)
        final = fitted.evaluations[-1][1]
        fine = game.characteristics(potential, x_eval, steps=16, saveat=17)
        xs = fine.xs[:, :, :dim]
        shift = game.mean1 - game.centres0[0]
        straight = x_eval[None] + fine.ts[:, None, None] * shift[None, None]
        mass, mass_straight = obstacle_mass(xs), obstacle_mass(straight)
        result.metrics.update({
            f"d{dim}_obstacle_mass": mass,
            f"d{dim}_obstacle_mass_straight_paths": mass_straight,
            f"d{dim}_transport_cost_L": final["L"],
            f"d{dim}_running_cost_F": final["F"],
            f"d{dim}_terminal_kl_G": final["G"],
            f"d{dim}_hjb_residual_initial": initial["HJB"],
            f"d{dim}_hjb_residual_final": final["HJB"],
            f"d{dim}_objective_J": final["J"],
            f"d{dim}_fit_seconds": fitted.seconds,
        })
        result.checks += [
            check(f"d={dim}: obstacle mass below that of straight paths",
                  max(0.0, mass - mass_straight), 0.0, 0.0, relative=False),
            check(f"d={dim}: HJB residual decreased",
                  max(0.0, final["HJB"] - initial["HJB"]), 0.0, 0.0, relative=False),
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
        hjb = [initial["HJB"]] + [e["HJB"] for _, e in fitted.evaluations]
        axes[0, -1].semilogy(steps, hjb, marker="o", label=f"d = {dim}")
    axes[0, -1].set_xlabel("training step")
    axes[0, -1].set_title("HJB residual", fontsize=8)
    axes[0, -1].legend(fontsize=8)
    result.figures["paths_and_hjb"] = fig
    return result
