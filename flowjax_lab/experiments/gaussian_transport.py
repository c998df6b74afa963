"""Flow matching versus Bures optimal transport between two non-commuting Gaussians.

Particles from N(0, cov0) are pushed by the exact flow-matching field and by the Monge map's
displacement interpolation. Their covariances are compared with the closed forms at every saved
time, the flow-matching end map with an independent scipy solve of its matrix ODE, the optimal
transport path energy with W2^2; and the flow-matching transport cost exceeds the optimal one on
the same particles (its map is not optimal when the covariances do not commute).

Tolerances: the sample covariance S of n Gaussian points has ``E|S - Sigma|_F^2 =
((tr Sigma)^2 + |Sigma|_F^2) / n <= (d + 1) |Sigma|_F^2 / n``, so its relative Frobenius error
has a standard deviation of at most ``sqrt((d + 1) / n)``; the error norm of the d(d+1)/2 = 3
free entries has a chi-like tail, and 4 such deviations are exceeded with probability < 1e-4
(also over the saved times, which are strongly correlated). A mean of n values ``x^T M x`` has
relative standard deviation ``sqrt(2 tr((M Sigma)^2) / n) / tr(M Sigma) <= sqrt(2 / n)``: the
cost checks allow 5 of them.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import scipy.integrate

from .. import metrics, theory, transport
from .._plotting import covariance_ellipse, figure, paths
from .._simulate import simulate
from ..fields import GaussianFlowMatching
from ..measures import Gaussian
from ._config import validate
from ._registry import register
from ._result import Result, better, close


@dataclasses.dataclass(frozen=True)
class Config:
    n: int = 20000
    saved_times: int = 11
    eigenvalues0: tuple = (1.0, 0.15)
    eigenvalues1: tuple = (2.0, 0.3)
    rotation: float = 1.0  # angle between the principal axes, radians
    rtol: float = 1e-6
    dtype: str = "float32"

    def __post_init__(self):
        validate(self, positive=("eigenvalues0", "eigenvalues1", "rtol"),
                 nonnegative=("rotation",), counts=("n", "saved_times"))

    @classmethod
    def quick(cls):
        return cls(n=4000)


def covariances(config: Config, dtype):
    c, s = np.cos(config.rotation), np.sin(config.rotation)
    rot = np.array([[c, -s], [s, c]])
    cov0 = np.diag(config.eigenvalues0)
    cov1 = rot @ np.diag(config.eigenvalues1) @ rot.T
    return jnp.asarray(cov0, dtype), jnp.asarray(cov1, dtype)


def reference_fm_map(cov0, cov1) -> np.ndarray:
    """Phi_1 of ``dPhi/dt = A_t Phi``, ``A_t = (t cov1 - (1-t) cov0) cov_t^{-1}``, written here in
    NumPy and integrated by scipy's DOP853 at rtol 1e-11: independent of the library's field and
    of its diffrax solve."""
    cov0, cov1 = np.asarray(cov0, np.float64), np.asarray(cov1, np.float64)
    d = cov0.shape[0]

    def velocity(t, phi):
        cov_t = (1 - t) ** 2 * cov0 + t**2 * cov1
        a_t = np.linalg.solve(cov_t, t * cov1 - (1 - t) * cov0).T  # cov_t symmetric
        return (a_t @ phi.reshape(d, d)).ravel()

    sol = scipy.integrate.solve_ivp(velocity, (0.0, 1.0), np.eye(d).ravel(), method="DOP853",
                                    rtol=1e-11, atol=1e-11)
    return sol.y[:, -1].reshape(d, d)


def _relative_errors(covs, refs) -> np.ndarray:
    """Relative Frobenius errors of stacked covariances `(T, d, d)` (NaN propagates)."""
    gap = np.linalg.norm(covs - refs, axis=(-2, -1))
    return gap / np.linalg.norm(refs, axis=(-2, -1))


def _covariances(xs) -> np.ndarray:
    """Population covariances of saved clouds `(T, n, d)`, float64 (NaN propagates)."""
    return np.array([np.cov(x, rowvar=False, bias=True) for x in np.asarray(xs, np.float64)])


@register(
    "gaussian-transport",
    theme="optimal transport and flow matching",
    config=Config,
    description="Flow matching vs Bures OT between non-commuting Gaussians, against theory.",
)
@np.errstate(invalid="ignore", over="ignore")  # a blown-up cloud gives NaN, which fails checks
def run(config: Config, key) -> Result:
    dtype = jnp.dtype(config.dtype)
    cov0, cov1 = covariances(config, dtype)
    x0 = Gaussian(jnp.zeros(2, dtype), cov0).sample(key, config.n)
    ts = jnp.linspace(0, 1, config.saved_times, dtype=dtype)

    flow = simulate(GaussianFlowMatching(cov0, cov1), x0, saveat=ts, rtol=config.rtol,
                    atol=config.rtol)
    monge = transport.gaussian_monge_map(cov0, cov1)
    geodesic = jax.vmap(lambda t: (1 - t) * x0 + t * x0 @ monge)(ts)

    fm_ref = np.array([theory.flow_matching_gaussian(cov0, cov1, t)[0] for t in ts])
    ot_ref = np.array([theory.bures_geodesic(cov0, cov1, t) for t in ts])
    fm_err = _relative_errors(_covariances(flow.xs), fm_ref)
    ot_err = _relative_errors(_covariances(geodesic), ot_ref)
    sampling = 4 * np.sqrt(3 / config.n)  # relative covariance error, see the module docstring

    x0_np, x1_np = np.asarray(x0, np.float64), np.asarray(flow.x1, np.float64)
    fitted_map = (np.linalg.lstsq(x0_np, x1_np, rcond=None)[0].T  # x1 = x0 @ fitted_map^T
                  if np.all(np.isfinite(x1_np)) else np.full((2, 2), np.nan))
    ref_map = reference_fm_map(cov0, cov1)
    # An error-controlled solve keeps each step's local error below rtol (or the dtype's
    # rounding); over its ~10-30 steps the global error stays below 100 times that.
    map_tolerance = 100 * max(config.rtol, float(jnp.finfo(dtype).eps))

    w2_sq = float(theory.bures_w2_squared(jnp.zeros(2), cov0, jnp.zeros(2), cov1))
    fm_cost = float(np.mean(np.sum((x1_np - x0_np) ** 2, axis=1)))
    ot_cost = float(np.mean(np.sum((np.asarray(geodesic[-1], np.float64) - x0_np) ** 2, axis=1)))
    # Both costs are means of x^T M x over the same x0, M = (P - I)^T (P - I) for P the FM map
    # or the Monge map; their difference, with M the difference of the two, has standard
    # deviation sqrt(2 tr((M cov0)^2) / n).
    eye = np.eye(2)
    gap_form = ((ref_map - eye).T @ (ref_map - eye)
                - (np.asarray(monge, np.float64) - eye) @ (np.asarray(monge, np.float64) - eye))
    gap_product = gap_form @ np.asarray(cov0, np.float64)
    gap_sigma = float(np.sqrt(2 * np.trace(gap_product @ gap_product) / config.n))

    result = Result("gaussian-transport", dataclasses.asdict(config))
    result.checks += [
        close("FM particle covariance vs interpolant (max over t)", np.max(fm_err), 0.0,
              sampling, relative=False,
              against="theory.flow_matching_gaussian cov_t = (1-t)^2 cov0 + t^2 cov1"),
        close("OT particle covariance vs Bures geodesic (max over t)", np.max(ot_err), 0.0,
              sampling, relative=False,
              against="theory.bures_geodesic closed form (particles moved by ott-jax's map)"),
        close("FM particle map vs scipy solve of dPhi/dt = A_t Phi", fitted_map, ref_map,
              map_tolerance, against="scipy.integrate.solve_ivp (DOP853) of the matrix ODE, "
                                     "written in the experiment"),
        close("OT path energy vs W2^2", metrics.path_energy(geodesic, ts), w2_sq,
              5 * np.sqrt(2 / config.n), against="theory.bures_w2_squared closed form"),
        better("OT transport cost below FM's (FM map not optimal)", ot_cost, fm_cost,
               margin=5 * gap_sigma, against="the flow-matching particles' cost E|x1 - x0|^2 "
                                             "from the same x0"),
    ]
    result.metrics.update({
        "fm_map_vs_monge_map_rel_gap": float(metrics.relative_error(ref_map, monge)),
        "fm_transport_cost": fm_cost,
        "ot_transport_cost": ot_cost,
        "fm_path_energy": float(metrics.path_energy(flow.xs, ts)),
        "ot_path_energy": float(metrics.path_energy(geodesic, ts)),
        "w2_squared": w2_sq,
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
