"""Flow matching versus Bures optimal transport between two non-commuting Gaussians.

Particles from N(0, cov0) are pushed by the exact flow-matching field and by the Monge map's
displacement interpolation; their covariances are compared with ``theory`` at every saved time,
and the two end maps are compared with each other (they differ: the flow-matching map is not
optimal when the covariances do not commute).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from .. import metrics, theory, transport
from .._plotting import covariance_ellipse, figure, paths
from .._simulate import simulate
from ..fields import GaussianFlowMatching
from ..measures import Gaussian
from ._registry import register
from ._result import Result, check


@dataclasses.dataclass(frozen=True)
class Config:
    n: int = 20000
    saved_times: int = 11
    eigenvalues0: tuple = (1.0, 0.15)
    eigenvalues1: tuple = (2.0, 0.3)
    rotation: float = 1.0  # angle between the principal axes, radians
    rtol: float = 1e-6

    @classmethod
    def quick(cls):
        return cls(n=4000)


def covariances(config: Config, dtype):
    c, s = np.cos(config.rotation), np.sin(config.rotation)
    rot = np.array([[c, -s], [s, c]])
    cov0 = np.diag(config.eigenvalues0)
    cov1 = rot @ np.diag(config.eigenvalues1) @ rot.T
    return jnp.asarray(cov0, dtype), jnp.asarray(cov1, dtype)


@register(
    "gaussian-transport",
    theme="optimal transport and flow matching",
    config=Config,
    description="Flow matching vs Bures OT between non-commuting Gaussians, against theory.",
)
def run(config: Config, key) -> Result:
    dtype = jnp.result_type(float)
    cov0, cov1 = covariances(config, dtype)
    x0 = Gaussian(jnp.zeros(2, dtype), cov0).sample(key, config.n)
    ts = jnp.linspace(0, 1, config.saved_times, dtype=dtype)

    flow = simulate(GaussianFlowMatching(cov0, cov1), x0, saveat=ts, rtol=config.rtol,
                    atol=config.rtol)
    monge = transport.gaussian_monge_map(cov0, cov1)
    geodesic = jax.vmap(lambda t: (1 - t) * x0 + t * x0 @ monge)(ts)

    fm_err = max(float(metrics.relative_error(metrics.covariance(flow.xs[i]),
                                              theory.flow_matching_gaussian(cov0, cov1, t)[0]))
                 for i, t in enumerate(ts))
    ot_err = max(float(metrics.relative_error(metrics.covariance(geodesic[i]),
                                              theory.bures_geodesic(cov0, cov1, t)))
                 for i, t in enumerate(ts))
    fm_map = theory.flow_matching_map(cov0, cov1)
    fitted_map = jnp.linalg.lstsq(x0, flow.x1)[0].T  # x1 = fitted_map @ x0
    w2_sq = transport.gaussian_w2(jnp.zeros(2), cov0, jnp.zeros(2), cov1)
    tolerance = 6 / np.sqrt(config.n)  # sampling error of a covariance is O(n^-1/2)

    result = Result("gaussian-transport", dataclasses.asdict(config))
    result.checks += [
        check("FM particle covariance vs theory (max over t)", fm_err, 0.0, tolerance,
              relative=False),
        check("OT particle covariance vs Bures geodesic", ot_err, 0.0, tolerance, relative=False),
        check("FM particle map vs theory map", fitted_map, fm_map, 1e-3),
        check("Bures W2^2: ott-jax vs closed form", w2_sq,
              theory.bures_w2_squared(jnp.zeros(2), cov0, jnp.zeros(2), cov1), 1e-4),
        check("OT path energy equals W2^2", metrics.path_energy(geodesic, ts), w2_sq, tolerance),
    ]
    result.metrics.update({
        "fm_map_vs_monge_map_rel_gap": float(metrics.relative_error(fm_map, monge)),
        "fm_path_energy": float(metrics.path_energy(flow.xs, ts)),
        "ot_path_energy": float(metrics.path_energy(geodesic, ts)),
        "w2_squared": float(w2_sq),
        "fm_straightness": float(metrics.straightness(flow.xs, ts)),
        "num_field_evals": int(flow.stats["num_field_evals"]),
    })
    result.arrays.update({"ts": ts, "flow_matching": flow.xs[:, :256],
                          "optimal_transport": geodesic[:, :256]})

    fig, axes = figure(2, size=4.0, sharex=True, sharey=True)
    for ax, xs, title in ((axes[0, 0], flow.xs, "flow matching (independent coupling)"),
                          (axes[0, 1], geodesic, "Bures optimal transport")):
        paths(ax, xs, count=80)
        covariance_ellipse(ax, cov0, color="k", lw=1.5, label="cov0 (2 sigma)")
        covariance_ellipse(ax, cov1, color="C3", lw=1.5, label="cov1 (2 sigma)")
        ax.set_title(title, fontsize=10)
        ax.set_aspect("equal")
    axes[0, 0].legend(fontsize=8, loc="lower right")
    result.figures["trajectories"] = fig
    return result
