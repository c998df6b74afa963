"""Diffusion models learned on 2-D toy data, and their samplers compared at equal cost.

Per task, an MLP (3 hidden layers of width 64, SiLU) predicts the noise of the VP process and is
trained by denoising score matching on fresh samples with ``learn.fit`` (Adam, cosine decay). From
the same prior noise each sampler generates `eval_points` points at each budget of model
evaluations (NFE): the reverse SDE by Euler-Maruyama, the probability-flow ODE by Euler and by Heun
(fixed steps uniform in t), DDIM (eta = 0), EDM's Heun and DPM-Solver-2 (two evaluations a step,
so half the steps). A sample is scored by its exact W2 to held-out data, against the sampling
floor (the W2 between two independent data samples of that size: what a perfect sampler scores).
Once the model is trained that W2 mostly measures the model, not the sampler; the deterministic
samplers are also compared point by point with the learned model's own flow map (an adaptive
solve from the same noise), which isolates their discretisation error.

On 8gaussians the exact score is known (``theory.gaussian_mixture_score`` of the mixture pushed
by the process), and the five deterministic samplers all discretise one ODE: their end points are
compared, point by point, with the exact flow map from the same noise, solved by scipy (DOP853,
float64) with the mixture score and the VP coefficients written here. That error carries no
sampling noise (over 4 seeds at 500 points it varies by about 10%), so convergence with NFE and
the ordering of the schemes are checked on it.
"""

import dataclasses
import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy.integrate import solve_ivp
from scipy.special import softmax

from .. import datasets, metrics, theory
from .._plotting import figure
from ..diffusion import (
    VP,
    DenoisingScoreMatching,
    ddim,
    dpm_solver_2,
    heun_edm,
    sample_probability_flow,
    sample_reverse_sde,
)
from ..fields import MLPField
from ..learn import fit
from . import _toy_densities
from ._config import validate
from ._registry import register
from ._result import Result, at_most, better, close, fit_ok, holds
from ._training import chunk_size, sub_folder
from .fm_2d_protocol import sampling_floor

# name -> model evaluations per step
SAMPLERS = {
    "reverse_sde_euler_maruyama": 1,
    "probability_flow_euler": 1,
    "probability_flow_heun": 2,
    "ddim": 1,
    "heun_edm": 2,
    "dpm_solver_2": 2,
}
FIRST_ORDER = ("probability_flow_euler", "ddim")
SECOND_ORDER = ("probability_flow_heun", "heun_edm", "dpm_solver_2")
PREDICTION = "eps"  # what the network is trained to predict
ORDER_TOLERANCE = 0.2  # of the first-order samplers' fitted order, see `_exact_arm`

# One object per argument: ``fit`` keys its compiled step on the loss's static parts and the
# optimizer, so runs in one process (several seeds, tests) share the compilation.
_optimizer = functools.cache(lambda rate, steps: optax.adam(optax.cosine_decay_schedule(rate,
                                                                                        steps)))
_data = functools.cache(lambda name: functools.partial(datasets.sample, name))


@dataclasses.dataclass(frozen=True)
class Config:
    tasks: tuple = ("8gaussians", "moons")
    samplers: tuple = tuple(SAMPLERS)
    train_steps: int = 4000
    batch_size: int = 256
    width: int = 64
    depth: int = 3
    learning_rate: float = 3e-3
    eval_points: int = 1000
    nfe: tuple = (8, 16, 32, 64, 128)  # budgets of model evaluations: even, increasing
    t_min: float = 1e-3
    reference_rtol: float = 1e-8  # of the scipy solve of the exact flow map
    flow_rtol: float = 1e-6  # of the adaptive solve of the learned model's flow map
    dtype: str = "float32"

    def __post_init__(self):
        validate(self, positive=("learning_rate", "t_min", "reference_rtol", "flow_rtol"),
                 counts=("train_steps", "batch_size", "width", "depth", "eval_points", "nfe"),
                 choices={"tasks": ("8gaussians", "moons"), "samplers": tuple(SAMPLERS)})
        if len(self.nfe) < 2 or any(k % 2 for k in self.nfe) or list(self.nfe) != sorted(
                set(self.nfe)):
            raise ValueError(f"config field 'nfe' of diffusion-2d must hold at least two even, "
                             f"increasing budgets, got {self.nfe!r}.")
        if self.t_min >= 1:
            raise ValueError(f"config field 't_min' of diffusion-2d must be < 1, got "
                             f"{self.t_min!r}.")

    @classmethod
    def quick(cls):
        # one task (8gaussians: the learned and the exact arm) to fit CI's time budget
        return cls(tasks=("8gaussians",), train_steps=1000, eval_points=500, nfe=(16, 64))


class EpsModel(eqx.Module):
    """A noise prediction ``(t, x) -> (n, 2)`` for `process`: the `network`'s, or when `exact`
    is set the exact one of the 8gaussians data, ``-sigma(t) grad log p_t`` with p_t the mixture
    of N(alpha m_k, (alpha^2 var0 + sigma^2) I) (`centres` m_k `(8, 2)`, equal weights).

    One Module type for the learned and the exact runs, so that they share each sampler's
    compilation."""

    network: MLPField
    process: VP
    centres: jax.Array
    var0: float
    exact: jax.Array  # a boolean scalar

    def __call__(self, t, x):
        a, s = self.process.alpha(t), self.process.sigma(t)
        k, d = self.centres.shape
        covs = jnp.broadcast_to((a**2 * self.var0 + s**2) * jnp.eye(d, dtype=x.dtype), (k, d, d))
        weights = jnp.full((k,), 1 / k, x.dtype)
        # The learned runs hand the mixture zeros: their points may be NaN, which it refuses.
        inputs = jnp.where(self.exact, x, jnp.zeros_like(x))
        mixture = -s * theory.gaussian_mixture_score(inputs, a * self.centres, covs, weights)
        return jnp.where(self.exact, mixture, self.network(t, x))


def eps_model(network, process, exact: bool) -> EpsModel:
    """The model the samplers run: `network`'s prediction, or the exact one (the fault tests
    replace this)."""
    nodes, std = _toy_densities._classes("8gaussians")
    dtype = jax.tree.leaves(network)[0].dtype
    return EpsModel(network, process, jnp.asarray(nodes[0], dtype), std**2, jnp.asarray(exact))


def sample(name, model, process, x, key, nfe, t_min):
    """Run sampler `name` on `model` (a prediction of kind `PREDICTION`) with `nfe` model
    evaluations from `x` at t = 1 down to `t_min`; returns ``diffusion.Samples``."""
    kw = {"prediction": PREDICTION, "steps": nfe // SAMPLERS[name], "t_min": t_min}
    if name == "reverse_sde_euler_maruyama":
        return sample_reverse_sde(model, process, x, key, **kw)
    if name.startswith("probability_flow"):
        return sample_probability_flow(model, process, x, solver=name.rsplit("_", 1)[1], **kw)
    if name == "ddim":
        return ddim(model, process, x, **kw)
    return (heun_edm if name == "heun_edm" else dpm_solver_2)(model, process, x, **kw)


def reference_flow(x, process: VP, t_min, rtol) -> np.ndarray:
    """End points at `t_min` of the probability-flow ODE of the exact 8gaussians score, started
    from `x` `(n, 2)` at t = 1: scipy's DOP853 in float64, with VP's
    ``beta(t) = beta_min + t (beta_max - beta_min)``, ``B = int_0^t beta``,
    ``alpha = exp(-B / 2)``, ``sigma^2 = 1 - exp(-B)`` and ``dx/dt = -beta / 2 (x + score)``.
    Returns `(n, 2)`."""
    nodes, std = _toy_densities._classes("8gaussians")
    x, centres = np.asarray(x, np.float64), nodes[0]
    b0, b1 = float(process.beta_min), float(process.beta_max)

    def velocity(t, y):
        y = y.reshape(x.shape)
        integral = b0 * t + 0.5 * (b1 - b0) * t**2
        alpha, var = np.exp(-0.5 * integral), std**2 * np.exp(-integral) - np.expm1(-integral)
        offsets = alpha * centres[None] - y[:, None]  # (n, 8, 2)
        posterior = softmax(-0.5 * np.sum(offsets**2, axis=-1) / var, axis=1)
        score = np.einsum("nk,nkd->nd", posterior, offsets) / var
        return (-0.5 * (b0 + t * (b1 - b0)) * (y + score)).ravel()

    sol = solve_ivp(velocity, (1.0, t_min), x.ravel(), method="DOP853", rtol=rtol, atol=rtol)
    if not sol.success:
        raise RuntimeError(f"the reference solve failed: {sol.message}")
    return sol.y[:, -1].reshape(x.shape)


def w2(generated, held_out) -> float:
    """Exact W2 between the clouds; NaN when `generated` is not finite."""
    if not np.all(np.isfinite(np.asarray(generated))):
        return float("nan")
    return float(metrics.sample_w2(generated, held_out))


def rms(x, y) -> float:
    """Root-mean-square distance between paired points `(n, d)`; NaN if any is not finite."""
    return float(np.sqrt(np.mean(np.sum((np.asarray(x, np.float64) - np.asarray(y)) ** 2, -1))))


def train(config: Config, task: str, key, checkpoint=None):
    """The initial network and ``fit``'s result of denoising score matching on `task`."""
    k_model, k_fit = jax.random.split(key)
    network = MLPField(2, width=config.width, depth=config.depth, activation=jax.nn.silu,
                       key=k_model)
    loss = DenoisingScoreMatching(VP(), _data(task), prediction=PREDICTION,
                                  batch_size=config.batch_size, t_min=config.t_min)
    fitted = fit(loss, network, _optimizer(config.learning_rate, config.train_steps), k_fit,
                 steps=config.train_steps,
                 chunk=chunk_size(config.train_steps, 500), checkpoint=checkpoint,
                 resume=checkpoint is not None)
    return network, fitted


def ladder_runs(model, process, noise, key, config: Config, budgets) -> tuple[dict, bool]:
    """Every configured sampler at every budget of `budgets` from the same `noise`:
    ``{(name, nfe): points (n, 2)}``, and whether each run made exactly its budget of model
    evaluations."""
    points, exact_budget = {}, True
    for name in config.samplers:
        for nfe in budgets:
            out = sample(name, model, process, noise, key, nfe, config.t_min)
            points[name, nfe] = np.asarray(out.x)
            exact_budget &= int(out.nfe) == nfe
    return points, exact_budget


def flow_checks(label: str, errors: dict, config: Config, kind: str, against: str) -> list:
    """Each second-order sampler's flow-map error at the largest budget at most the first-order
    samplers' (of those configured); `errors` maps a sampler to its errors over the budgets."""
    first = [name for name in FIRST_ORDER if name in errors]
    if not first:
        return []
    bound = min(errors[name][-1] for name in first)
    return [better(f"{label}: {name} flow-map error at NFE {config.nfe[-1]} at most the "
                   f"first-order samplers'", errors[name][-1], bound, kind=kind,
                   against=f"{against}; second order against first ({', '.join(first)}) at "
                           f"equal NFE")
            for name in SECOND_ORDER if name in errors]


def flow_errors(points, reference, config: Config) -> dict:
    """Root-mean-square distance of each deterministic sampler's points to `reference`, over the
    budgets: ``{name: (budgets,)}``."""
    return {name: np.array([rms(points[name, k], reference) for k in config.nfe])
            for name in config.samplers if name != "reverse_sde_euler_maruyama"}


@register(
    "diffusion-2d",
    theme="optimal transport and flow matching",
    config=Config,
    description="Denoising score matching on 2-D toy data; reverse SDE, PF-ODE, DDIM, EDM-Heun "
                "and DPM-Solver-2 compared at equal NFE, and against the exact mixture flow.",
)
def run(config: Config, key, checkpoint=None) -> Result:
    result = Result("diffusion-2d", dataclasses.asdict(config))
    process = VP()
    n, top = config.eval_points, config.nfe[-1]
    exact_task = "8gaussians" in config.tasks
    fig, axes = figure(len(config.samplers) + 1, len(config.tasks) + exact_task, size=2.6)
    for row, task in enumerate(config.tasks):
        k_train, k_noise, k_held, k_sde, k_floor = jax.random.split(
            jax.random.fold_in(key, row), 5)
        initial, fitted = train(config, task, k_train, sub_folder(checkpoint, task))
        model = eps_model(fitted.model, process, False)
        noise = process.sample_prior(k_noise, n, 2)
        held_out = datasets.sample(task, k_held, n, dtype=noise.dtype)
        floor, floor_sd = sampling_floor(_data(task), n, k_floor)
        points, exact_budget = ladder_runs(model, process, noise, k_sde, config, config.nfe)
        untrained = ladder_runs(eps_model(initial, process, False), process, noise, k_sde,
                                config, (top,))[0]
        finite = all(np.all(np.isfinite(p)) for p in points.values())
        # An adaptive solve of a model that is not finite runs to its step limit: skipped.
        flow = (sample_probability_flow(model, process, noise, prediction=PREDICTION,
                                        rtol=config.flow_rtol, atol=config.flow_rtol,
                                        t_min=config.t_min).x if finite
                else np.full(noise.shape, np.nan))
        errors = flow_errors(points, flow, config)
        scores = {name: np.array([w2(points[name, k], held_out) for k in config.nfe])
                  for name in config.samplers}
        worst = max(scores[name][-1] for name in config.samplers)
        best_untrained = min(w2(p, held_out) for p in untrained.values())
        result.checks += [
            fit_ok(f"{task}: training ended ok", fitted),
            holds(f"{task}: every sample finite (all samplers and budgets)", finite,
                  against="the samplers of the trained model"),
            holds(f"{task}: every sampler made exactly its budget of evaluations", exact_budget,
                  against=f"Samples.nfe equal to the budget, budgets {tuple(config.nfe)}"),
            better(f"{task}: W2 to held-out data at NFE {top}, trained (worst sampler) vs "
                   f"untrained (best sampler)", worst, best_untrained,
                   margin=(best_untrained - floor) / 2,
                   against="the same network untrained, same noise and samplers; margin: half "
                           "its gap to the sampling floor"),
        ]
        # Trained 1000 steps (quick), the samplers' W2 lie 1.5-4 floor sd below this bound
        # over 3 seeds (moons 0.39-0.43 against 0.60, 8gaussians 0.79-1.01 against 1.8).
        result.checks += [
            at_most(f"{task}: {name} at NFE {top}: W2 to held-out data within the sampling "
                    f"floor", scores[name][-1], floor + 4 * floor_sd, kind="comparison",
                    against=f"W2 between two independent {task} samples of {n} points (a "
                            f"perfect sampler): mean + 4 sd over fm-2d-protocol's pairs")
            for name in config.samplers]
        result.checks += flow_checks(
            task, errors, config, "comparison",
            f"the learned model's own PF-ODE, adaptive Tsit5 at rtol {config.flow_rtol}, same "
            f"noise")
        result.metrics.update({
            f"{task} W2 floor mean": floor, f"{task} W2 floor std": floor_sd,
            f"{task} W2 untrained at NFE {top} (best sampler)": best_untrained,
            f"{task} final loss": float(np.mean(fitted.losses[-50:])),
            f"{task} train seconds": fitted.seconds,
            **{f"{task} {name} W2 at NFE {k}": float(v)
               for name in config.samplers
               for k, v in zip(config.nfe, scores[name], strict=True)},
            **{f"{task} {name} flow-map error at NFE {k}": float(v)
               for name in errors for k, v in zip(config.nfe, errors[name], strict=True)},
        })
        result.arrays.update({f"{task} {name} W2": scores[name] for name in config.samplers})
        result.arrays.update({f"{task} {name} flow-map error": errors[name] for name in errors})
        _draw_row(axes[row], points, scores, held_out, floor, config, f"{task}, learned",
                  "W2 to held-out data")
        if task == "8gaussians":
            _exact_arm(result, axes[-1], initial, process, (floor, floor_sd), config,
                       jax.random.fold_in(key, 10_000))
    result.arrays["nfe"] = np.asarray(config.nfe)
    result.figures["samplers"] = fig
    return result


def _exact_arm(result: Result, axes, network, process, floor, config: Config, key) -> None:
    """The samplers of the exact 8gaussians score against the exact flow map (scipy)."""
    k_noise, k_held, k_sde = jax.random.split(key, 3)
    n, top, low = config.eval_points, config.nfe[-1], config.nfe[0]
    noise = process.sample_prior(k_noise, n, 2)
    points, exact_budget = ladder_runs(eps_model(network, process, True), process, noise, k_sde,
                                       config, config.nfe)
    reference = reference_flow(noise, process, config.t_min, config.reference_rtol)
    held_out = datasets.sample("8gaussians", k_held, n, dtype=noise.dtype)
    errors = flow_errors(points, reference, config)
    ceiling = floor[0] + 4 * floor[1]
    scipy_ref = f"scipy DOP853 (rtol {config.reference_rtol}) of the exact mixture score's PF-ODE"
    result.checks += [
        holds("exact score: every sampler made exactly its budget of evaluations",
              exact_budget, against=f"Samples.nfe equal to the budget, budgets "
                                    f"{tuple(config.nfe)}"),
        at_most("exact score: W2 of the exact flow map to held-out data within the sampling "
                "floor", w2(reference, held_out), ceiling, kind="comparison",
                against="W2 between two independent 8gaussians samples (mean + 4 sd): the flow "
                        "of the exact score carries the prior to the data"),
    ]
    curves = dict(errors)
    if "reverse_sde_euler_maruyama" in config.samplers:
        curves["reverse_sde_euler_maruyama"] = sde = np.array(
            [w2(points["reverse_sde_euler_maruyama", k], held_out) for k in config.nfe])
        result.checks.append(at_most(
            f"exact score: reverse_sde_euler_maruyama at NFE {top}: W2 to held-out data within "
            f"the sampling floor", sde[-1], ceiling, kind="comparison",
            against="W2 between two independent 8gaussians samples (mean + 4 sd)"))
        result.metrics.update({f"exact score reverse_sde_euler_maruyama W2 at NFE {k}": float(v)
                               for k, v in zip(config.nfe, sde, strict=True)})
    # Convergence: from the lowest to the highest budget the error falls at least as fast as
    # NFE^(-1/2) (half the lowest order of these schemes; over 4 seeds the first-order schemes
    # fall as NFE^-1 from NFE 16 on, the second-order ones faster).
    result.checks += [
        at_most(f"exact score: {name} converges to the exact flow map (error at NFE {top} / "
                f"at NFE {low})", errors[name][-1] / errors[name][0], np.sqrt(low / top),
                kind="theory", against=f"{scipy_ref}, same noise; at least order 1/2 over the "
                                       f"budgets")
        for name in errors]
    # Order of the first-order schemes from the two largest budgets: 1 asymptotically; over 4
    # seeds the slopes lie within 0.1 of 1 from NFE 16 on (they vary by 0.05 between seeds), and
    # ORDER_TOLERANCE = 0.2 leaves twice that (below NFE 16 the Euler slope reaches 1.3).
    pair = np.log(config.nfe[-1] / config.nfe[-2])
    for name in (s for s in FIRST_ORDER if s in errors):
        order = np.log(errors[name][-2] / errors[name][-1]) / pair
        result.checks.append(close(
            f"exact score: {name}: order from NFE {config.nfe[-2]} to {top}", order, 1.0,
            ORDER_TOLERANCE, relative=False,
            against=f"order 1 of the scheme; errors against {scipy_ref}"))
        result.metrics[f"exact score {name} order at the two largest budgets"] = float(order)
    result.checks += flow_checks("exact score", errors, config, "theory", scipy_ref)
    result.metrics.update({
        "exact score flow map W2": w2(reference, held_out),
        **{f"exact score {name} flow-map error at NFE {k}": float(v)
           for name in errors for k, v in zip(config.nfe, errors[name], strict=True)},
    })
    result.arrays.update({f"exact score {name} flow-map error": errors[name]
                          for name in errors})
    result.arrays["exact score reference"] = reference
    _draw_row(axes, points, curves, reference, None, config, "8gaussians, exact score",
              "error vs the exact flow map (SDE: W2)")


def _draw_row(axes, points, curves, data, floor, config: Config, title, ylabel) -> None:
    """Samples of each sampler at the largest budget over `data`, then `curves` against NFE."""
    top = config.nfe[-1]
    for j, name in enumerate(config.samplers):
        axes[j].scatter(*np.asarray(data).T, s=2, color="0.75")
        axes[j].scatter(*np.asarray(points[name, top]).T, s=2, color=f"C{j}")
        axes[j].set_title(f"{title}\n{name}, NFE {top}", fontsize=7)
        axes[j].set_aspect("equal")
        axes[-1].loglog(config.nfe, curves[name], "o-", ms=3, color=f"C{j}", label=name)
    if floor is not None:
        axes[-1].axhline(floor, color="k", lw=0.8, ls="--", label="sampling floor")
    axes[-1].set(xlabel="model evaluations (NFE)", ylabel=ylabel, xticks=config.nfe,
                 xticklabels=[str(k) for k in config.nfe])
    axes[-1].minorticks_off()
    axes[-1].set_title(title, fontsize=8)
    axes[-1].legend(fontsize=5)
