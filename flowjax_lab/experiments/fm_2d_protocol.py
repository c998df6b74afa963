"""I-CFM versus OT-CFM on the 2-D tasks of Tong et al. (TMLR 2024), measured as the paper does.

Per task, coupling and seed: an MLP field (3 hidden layers of width 64, SELU) is trained by
conditional flow matching (AdamW, lr 1e-3, weight decay 1e-5, Gaussian smoothing sigma = 0.1);
samples are generated from held-out source points with 100 Euler steps; W2 to held-out target
points is exact (optimal assignment); the normalized path energy ``|E int |v|^2 - W2^2| / W2^2``
uses the kinetic energy summed during the Euler solve and the exact W2 between the held-out source
and target sets. Differences from the paper: fresh samples every step instead of a 10 000-point
training set, a fixed number of steps instead of early stopping, and the data scales of
``fl.datasets`` (8gaussians std sqrt(0.1)); the fourth task is 8gaussians -> moons.
"""

import dataclasses
import functools

import jax
import numpy as np
import optax

from .. import datasets, metrics
from .._plotting import figure, paths
from .._simulate import simulate
from ..fields import MLPField
from ..learn import FlowMatchingLoss, fit
from ._registry import register
from ._result import Result, check
from ._training import chunk_size, sub_folder

COUPLINGS = {"I-CFM": "independent", "OT-CFM": "ot"}


@dataclasses.dataclass(frozen=True)
class Config:
    tasks: tuple = ("gaussian->8gaussians", "moons->8gaussians", "gaussian->moons",
                    "8gaussians->moons")
    repeats: int = 3
    steps: int = 4000
    batch_size: int = 256
    width: int = 64
    depth: int = 3
    sigma: float = 0.1
    learning_rate: float = 1e-3
    eval_points: int = 1000
    euler_steps: int = 100
    check_npe: bool = True  # NPE is only meaningful once the models are trained
    nfe_steps: tuple = (1, 2, 4, 8, 16, 32)  # Euler step counts tried for "NFE within 10%"

    @classmethod
    def quick(cls):
        # Each Euler step count compiles its own solve: a coarser ladder in quick runs.
        return cls(tasks=("moons->8gaussians",), repeats=1, steps=300, batch_size=128,
                   eval_points=300, euler_steps=50, check_npe=False, nfe_steps=(1, 4, 16))


def _sampler(name):
    return functools.partial(datasets.sample, name)


def run_one(config: Config, task: str, coupling: str, key, checkpoint=None):
    """Train one model and measure it: returns (metrics dict, saved Euler paths). `checkpoint`:
    a folder to save (and resume) the training in."""
    source, target = (_sampler(name) for name in task.split("->"))
    k_model, k_fit, k_src, k_tgt = jax.random.split(key, 4)
    model = MLPField(2, width=config.width, depth=config.depth, activation=jax.nn.selu,
                     key=k_model)
    loss = FlowMatchingLoss(source, target, batch_size=config.batch_size, coupling=coupling,
                            sigma=config.sigma)
    optimizer = optax.adamw(config.learning_rate, weight_decay=1e-5)
    result = fit(loss, model, optimizer, k_fit, steps=config.steps,
                 chunk=chunk_size(config.steps, 500), checkpoint=checkpoint,
                 resume=checkpoint is not None, progress=False)
    x0 = source(k_src, config.eval_points)
    held_out = target(k_tgt, config.eval_points)
    energy, traj = metrics.kinetic_energy(result.model, x0, steps=config.euler_steps,
                                          saveat=21)
    w2 = float(metrics.sample_w2(traj.x1, held_out))
    w2_source = float(metrics.sample_w2(x0, held_out))
    adaptive = simulate(result.model, x0, rtol=1e-4, atol=1e-4)
    nfe = metrics.nfe_for_w2(result.model, x0, held_out, 1.1 * w2, steps=config.nfe_steps)
    values = {
        "w2": w2,
        "npe": float(metrics.normalized_path_energy(energy, w2_source)),
        "kinetic_energy": float(energy),
        "w2_source_target": w2_source,
        "straightness": float(metrics.straightness(traj.xs, traj.ts)),
        "nfe_adaptive": int(adaptive.stats["num_field_evals"]),
        "nfe_euler_within_10pct": -1 if nfe["nfe"] is None else nfe["nfe"],
        "final_loss": float(np.mean(result.losses[-50:])),
        "train_seconds": result.seconds,
    }
    return values, np.asarray(traj.xs[:, :200])


@register(
    "fm-2d-protocol",
    theme="optimal transport and flow matching",
    config=Config,
    description="I-CFM vs OT-CFM on the 2-D tasks of Tong et al.: W2 and normalized path energy.",
)
def run(config: Config, key, checkpoint=None) -> Result:
    result = Result("fm-2d-protocol", dataclasses.asdict(config))
    fig, axes = figure(len(config.tasks), len(COUPLINGS), size=3.0)
    table = {}
    for i, task in enumerate(config.tasks):
        for j, (label, coupling) in enumerate(COUPLINGS.items()):
            runs = [run_one(config, task, coupling, jax.random.fold_in(key, seed),
                            sub_folder(checkpoint, task, label, f"seed{seed}"))
                    for seed in range(config.repeats)]
            for name in runs[0][0]:
                values = np.array([r[0][name] for r in runs], np.float64)
                result.metrics[f"{task} {label} {name} mean"] = float(values.mean())
                if name in ("w2", "npe"):
                    result.metrics[f"{task} {label} {name} std"] = float(values.std())
            table[task, label] = np.array([[r[0]["w2"], r[0]["npe"]] for r in runs])
            result.arrays[f"paths {task} {label}"] = runs[0][1]
            ax = axes[j, i]
            paths(ax, runs[0][1], count=120, alpha=0.3)
            ax.set_title(f"{task}\n{label}: W2 {table[task, label][:, 0].mean():.3f}, "
                         f"NPE {table[task, label][:, 1].mean():.3f}", fontsize=8)
            ax.set_aspect("equal")
        # OT-CFM's paths are straighter (from the first steps on) and, once trained, near
        # optimal: its NPE must be below I-CFM's.
        bend = {label: 1 - result.metrics[f"{task} {label} straightness mean"]
                for label in COUPLINGS}
        result.checks.append(check(f"{task}: OT-CFM paths straighter than I-CFM",
                                   bend["OT-CFM"], 0.0, bend["I-CFM"], relative=False))
        if config.check_npe:
            result.checks.append(check(f"{task}: OT-CFM NPE below I-CFM NPE",
                                       table[task, "OT-CFM"][:, 1].mean(), 0.0,
                                       table[task, "I-CFM"][:, 1].mean(), relative=False))
    result.figures["paths"] = fig
    result.arrays["table w2 npe (task, coupling, seed, [w2, npe])"] = np.array(
        [[table[task, label] for label in COUPLINGS] for task in config.tasks])
    return result
