"""Teacher-student training of a mean-field two-layer ReLU network (Chizat-Bach).

A teacher with `teacher_neurons` ReLU units labels Gaussian inputs in 2-D; students of various
widths follow the Wasserstein gradient flow of the empirical risk from a small initialisation.
Wide students drive the risk towards zero, as the mean-field global-convergence theory predicts;
students narrower than the teacher stall at a positive risk.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from .._plotting import figure
from .._simulate import simulate
from ..fields import TwoLayerMeanField
from ._registry import register
from ._result import Result, check


@dataclasses.dataclass(frozen=True)
class Config:
    widths: tuple = (2, 3, 8, 64, 256)
    teacher_neurons: int = 3
    samples: int = 500
    init_scale: float = 0.1
    t1: float = 200.0
    steps: int = 4000
    saved_times: int = 101

    @classmethod
    def quick(cls):
        return cls(widths=(2, 64), samples=300, t1=100.0, steps=1000, saved_times=51)


@register("two-layer-teacher-student", theme="gradient flows and mean-field training",
          config=Config, description="Mean-field ReLU students of several widths vs a teacher.")
def run(config: Config, key) -> Result:
    dtype = jnp.result_type(float)
    k_data, k_init = jax.random.split(key)
    m = config.teacher_neurons
    angles = 2 * jnp.pi * (jnp.arange(m, dtype=dtype) + 0.1) / m
    u_teacher = jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=1)
    z = jax.random.normal(k_data, (config.samples, 2), dtype)
    y = jnp.sum(jax.nn.relu(z @ u_teacher.T), axis=1)
    field = TwoLayerMeanField(z, y, activation="relu")

    risks, trajectories = {}, {}
    for width in config.widths:
        x0 = config.init_scale * jax.random.normal(jax.random.fold_in(k_init, width),
                                                   (width, 3), dtype)
        traj = simulate(field, x0, t1=config.t1, saveat=config.saved_times, steps=config.steps,
                        solver="heun")
        risks[width] = np.asarray(jax.vmap(field.risk)(traj.xs))
        trajectories[width] = np.asarray(traj.xs)
    ts = np.asarray(traj.ts)
    initial = float(risks[config.widths[0]][0])
    narrow = [w for w in config.widths if w < m]
    wide = max(config.widths)

    result = Result("two-layer-teacher-student", dataclasses.asdict(config))
    result.checks.append(check(f"widest student (n={wide}) final risk / initial risk",
                               risks[wide][-1] / initial, 0.0, 1e-2, relative=False))
    if narrow:
        stall = min(float(risks[w][-1]) for w in narrow) / initial
        result.checks.append(check("narrow students stall: final/initial risk >= 0.1",
                                   max(0.1 - stall, 0.0), 0.0, 0.0, relative=False))
    result.metrics.update({f"final_risk_width_{w}": float(r[-1]) for w, r in risks.items()})
    result.metrics["initial_risk"] = initial
    result.arrays.update({"ts": ts, **{f"risk_{w}": r for w, r in risks.items()}})

    fig, axes = figure(2, size=4.0)
    for i, (width, r) in enumerate(risks.items()):
        axes[0, 0].semilogy(ts, r, color=f"C{i}", label=f"n={width}")
    axes[0, 0].set_xlabel("t")
    axes[0, 0].set_title("empirical risk", fontsize=10)
    axes[0, 0].legend(fontsize=8)
    xs = trajectories[wide]
    signed = xs[:, :, :2] * np.abs(xs[:, :, 2:3])  # |v_i| u_i: the neuron's effective weight
    for i in range(min(wide, 128)):
        color = "C0" if xs[-1, i, 2] > 0 else "C3"
        axes[0, 1].plot(signed[:, i, 0], signed[:, i, 1], color=color, lw=0.7, alpha=0.7)
    teacher = np.asarray(u_teacher) * np.max(np.linalg.norm(signed[-1], axis=1))
    axes[0, 1].scatter(teacher[:, 0], teacher[:, 1], marker="*", s=120, color="k",
                       label="teacher directions")
    axes[0, 1].set_title(f"neurons |v| u, n={wide} (blue v>0, red v<0)", fontsize=10)
    axes[0, 1].legend(fontsize=8)
    axes[0, 1].set_aspect("equal")
    result.figures["teacher_student"] = fig
    return result
