"""I-CFM versus OT-CFM (and SB-CFM) on the 2-D tasks of Tong et al. (TMLR 2024), measured as the
paper does.

Per task, method (`methods`: "I-CFM", "OT-CFM", "SB-CFM"; the coupling of each in `COUPLINGS`)
and seed: an MLP field (3 hidden layers of width 64, SELU) is trained by
conditional flow matching (AdamW, lr 1e-3, weight decay 1e-5, Gaussian smoothing sigma = 0.1);
samples are generated from held-out source points with 100 Euler steps; W2 to held-out target
points is exact (optimal assignment); the normalized path energy ``|E int |v|^2 - W2^2| / W2^2``
uses the kinetic energy summed during the Euler solve and the exact W2 between the held-out source
and target sets.

Two data regimes (`data`). "flowjax" (the default and the quick run): fresh samples of
``fl.datasets`` every step, a fixed number of steps, the final parameters; the fourth task is
8gaussians -> moons. "runner" (``Config.paper()``): the published protocol as the runner's source
defines it (``docs/protocols/tong2024_2d.md``): the runner's data definitions
(``_runner_data``) with fixed 10 000 / 1 000 / 1 000 splits, batches drawn from the fixed train
split, OT pairs drawn with replacement from the exact plan (independent pairs as drawn), the
best of the validation-loss checks evaluated, and the published table stored beside the results
(``PUBLISHED``).

Checks: every training ended ok; the W2 of each coupling's samples is within the sampling floor
(the W2 between two independent target samples of the same size, what a perfect sampler scores:
about 1.2 at 300 points of 8gaussians, whose modes lie 3.8 apart so that uneven counts per mode
cost much) and closes at least half of the untrained network's gap to that floor (both with
`floor_and_nfe`); OT-CFM's paths bend at most half as much as I-CFM's, and (once trained,
``check_npe``) its NPE is at most half of I-CFM's: the paper's ratios are 6 to 180. With
``check_direction`` (the quick run), OT-CFM's NPE is below I-CFM's by more than three standard
errors of the evaluation (the kinetic energies' sampling over the evaluation points, `npe_se`);
the W2 direction is not measurable at the quick size (see `_coupling_checks`). With
`compare_published`, each published cell is a check: our mean within two standard deviations
of the difference of the two means. SB-CFM's entropic coupling must converge on every probe
batch (its Sinkhorn status on `COUPLING_PROBES` training batches): pairs drawn from an
unconverged plan are not SB-CFM's.
"""

import dataclasses
import functools
import io
import json
from pathlib import Path
from typing import NamedTuple

import equinox as eqx
import jax
import numpy as np
import optax

from .. import datasets, metrics
from .._atomic import write_atomic
from .._plotting import figure, paths
from .._simulate import simulate
from .._status import Status
from ..fields import MLPField
from ..learn import FlowMatchingLoss, fit
from . import _runner_data
from ._config import validate
from ._registry import register
from ._result import Result, at_least, at_most, better, close, fit_ok
from ._training import chunk_size, sub_folder

COUPLINGS = {"I-CFM": "independent", "OT-CFM": "ot", "SB-CFM": "entropic"}
TASKS = tuple(f"{a}->{b}" for a in datasets.names() for b in datasets.names())
DATA = {"flowjax": TASKS, "runner": tuple(_runner_data.TASKS)}
# [SF]^2M (Tong et al., AISTATS 2024, arXiv 2307.03672) Table 2, "W2 on 10 000 samples, mean +-
# std over 5 seeds", as quoted in ../shared/notes/flow_matching.md 3.2(b) (a PDF-to-text copy,
# secondary): (task, method) -> (W2 mean, W2 std, NPE mean, NPE std).
PUBLISHED = {
    ("gaussian->8gaussians", "OT-CFM"): (0.303, 0.043, 0.031, 0.027),
    ("moons->8gaussians", "OT-CFM"): (0.601, 0.027, 0.015, 0.010),
    ("gaussian->moons", "OT-CFM"): (0.130, 0.016, 0.083, 0.009),
    ("gaussian->scurve", "OT-CFM"): (0.144, 0.028, 0.027, 0.012),
    ("gaussian->8gaussians", "I-CFM"): (0.373, 0.103, 0.202, 0.055),
    ("moons->8gaussians", "I-CFM"): (1.557, 0.407, 2.680, 0.292),
    ("gaussian->moons", "I-CFM"): (0.178, 0.014, 0.891, 0.120),
    ("gaussian->scurve", "I-CFM"): (0.242, 0.141, 0.856, 0.031),
    # No SB-CFM cell for moons->8gaussians. The runner's script never runs SB-CFM, and POT's
    # Sinkhorn as the runner calls it collapses on N->8gaussians (docs/protocols, section 9).
    ("gaussian->8gaussians", "SB-CFM"): (2.314, 2.112, 1.000, 0.000),
    ("gaussian->moons", "SB-CFM"): (0.434, 0.594, 0.995, 0.000),
    ("gaussian->scurve", "SB-CFM"): (0.341, 0.468, 0.745, 0.039),
}
PUBLISHED_SEEDS = 5
# Training batches on which SB-CFM's entropic coupling is solved once more to read its status.
COUPLING_PROBES = 8
# SB-CFM's Sinkhorn at regularisation 2 sigma^2 = 0.02: on a runner batch of 512 (N ->
# 8gaussians) plain log-domain iterations need 2 180 (over the default budget of 2 000),
# over-relaxation 1.5 needs 820, 1.8 diverges. Same fixed point; the probes check that it is
# reached (``python -m benchmarks.fm_protocol --sb-plan``).
ENTROPIC_OPTIONS = {"momentum": 1.5, "max_iterations": 10_000}
# Pairs of independent target samples behind the W2 floor: at 300 points of 8gaussians the W2
# between two samples is 1.18 +- 0.26 (60 pairs, range 0.64-1.91); 32 pairs estimate the standard
# deviation within ~13%, and 4 of them clear the tail.
FLOOR_PAIRS = 32


@dataclasses.dataclass(frozen=True)
class Config:
    tasks: tuple = ("gaussian->8gaussians", "moons->8gaussians", "gaussian->moons",
                    "8gaussians->moons")
    methods: tuple = ("I-CFM", "OT-CFM")  # of COUPLINGS; SB-CFM is slow (see `paper`)
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
    check_direction: bool = False  # OT-CFM's NPE below I-CFM's beyond its evaluation noise
    nfe_steps: tuple = (1, 2, 4, 8, 16, 32)  # Euler step counts tried for "NFE within 10%"
    data: str = "flowjax"  # "flowjax" (fresh fl.datasets samples) or "runner" (see the module)
    replace_pairs: bool = False  # redraw a plan's pairs with replacement (`protocol_loss`)
    val_every: int = 0  # steps between validation-loss checks (runner data; 0: none, final model)
    floor_and_nfe: bool = True  # sampling floor, untrained-network and NFE measurements
    compare_published: bool = False  # published cells as checks (runner data, full protocol)
    npe_points: int | None = None  # points of the NPE's source-target W2 (None: eval_points)
    dtype: str = "float32"

    def __post_init__(self):
        validate(self, positive=("learning_rate",), nonnegative=("sigma", "val_every"),
                 counts=("repeats", "steps", "batch_size", "width", "depth", "eval_points",
                         "euler_steps", "nfe_steps"),
                 choices={"data": DATA, "tasks": DATA.get(self.data, TASKS),
                          "methods": tuple(COUPLINGS)})
        npe = self.npe_points
        if npe is not None and (isinstance(npe, bool) or not isinstance(npe, int)
                                or not 1 <= npe <= self.eval_points):
            raise ValueError("config field 'npe_points' of fm-2d-protocol must be None or an "
                             f"integer in [1, eval_points={self.eval_points}], got "
                             f"{self.npe_points!r}.")
        if self.data == "flowjax" and self.val_every:
            raise ValueError("config field 'val_every' of fm-2d-protocol needs data='runner' "
                             f"(a validation split), got val_every={self.val_every}.")

    @classmethod
    def quick(cls):
        # Each Euler step count compiles its own solve: a coarser ladder in quick runs, without
        # the single step (it did not come within 10% at this size). 1000 steps: the NPE
        # direction is measurable from there (moons->8gaussians, seeds 0-2, NPE I-CFM vs OT-CFM:
        # 0.21/0.24/0.17 vs 0.17/0.16/0.14 at 300 steps, within the check's tolerance; 0.39/0.47/
        # 0.45 vs 0.10/0.14/0.08 at 1000, its standard error ~0.04). The W2 direction is not
        # (see `_coupling_checks`).
        return cls(tasks=("moons->8gaussians",), repeats=1, steps=1000, batch_size=128,
                   eval_points=300, euler_steps=50, check_npe=False, check_direction=True,
                   nfe_steps=(4, 16))

    @classmethod
    def paper(cls):
        """The published protocol (``docs/protocols/tong2024_2d.md``): the runner's four tasks and
        data, batch 512, 1000 epochs of 20 batches (20 000 steps) with a validation check every
        10 epochs (200 steps) and the best checked model evaluated, OT pairs drawn with
        replacement, 5 seeds. `eval_points` 10 000: the runner's test split (1 000 points)
        cannot give the published W2 (a perfect N->8gaussians sampler scores 0.52 at 1 000
        points, above the published 0.303); the [SF]^2M caption says 10 000 samples, and so
        does the maintainer's NPE baseline file. The floor and NFE measurements (extra to the
        protocol) are off: each would solve many 10 000-point assignments.

        `npe_points` 2 000: the NPE's source-target W2 (how the runner's baseline was sized is
        not settled) on the first 2 000 evaluation points. Source and target are far apart,
        so the exact solve is slow (N->8gaussians on a loaded 2-core CPU: 9 s at 2 000 points,
        104 s at 4 000, unfinished after 15 min at 10 000) while the value barely moves (3.859
        and 3.882, one draw each: about 0.01 on an NPE near 0.03).

        Methods I-CFM and OT-CFM, those of the runner's script (``two-dim-cfm.sh``); SB-CFM
        (``--set methods=SB-CFM``, compared with its three published cells) solves an entropic
        plan at regularisation 2 sigma^2 = 0.02 every step: 0.1 s per batch of 512 on a quiet
        2-core CPU, 0.2-0.6 s beside other jobs, some 10-30 hours for its 15 runs."""
        return cls(tasks=tuple(_runner_data.TASKS), repeats=5, steps=20_000, batch_size=512,
                   eval_points=10_000, data="runner", replace_pairs=True, val_every=200,
                   floor_and_nfe=False, compare_published=True, npe_points=2_000)


def _sampler(name):
    return functools.partial(datasets.sample, name)


def sampling_floor(target, n: int, key) -> tuple[float, float]:
    """Mean and standard deviation of the exact W2 between two independent samples of `n` target
    points, over `FLOOR_PAIRS` pairs: the W2 a perfect sampler scores against held-out points."""
    keys = jax.random.split(key, (FLOOR_PAIRS, 2))
    values = [float(metrics.sample_w2(target(a, n), target(b, n))) for a, b in keys]
    return float(np.mean(values)), float(np.std(values, ddof=1))


def _standard_normal(key, n: int):
    """The runner's N(0, I) source, drawn fresh for every batch and evaluation: `(n, 2)`."""
    return jax.random.normal(key, (n, 2))


def _whole(points):
    """A sampler that returns all of `points` whatever its key (one validation batch)."""
    return lambda key, n: points


def _data(config: Config, task: str, coupling: str, key):
    """Training source and target, the validation loss's (source, target, coupling) or None,
    and the held-out samplers ``(key, n) -> (n, 2)`` of `task` under ``config.data``."""
    if config.data == "flowjax":
        source, target = (_sampler(name) for name in task.split("->"))
        return source, target, None, source, target
    src_name, tgt_name = _runner_data.TASKS[task]
    k_src, k_tgt = jax.random.split(key)
    train, val, _ = _runner_data.dataset(tgt_name, k_tgt)
    held_out = functools.partial(_runner_data.sample, tgt_name)
    if src_name == "gaussian":
        return (_standard_normal, train, (_standard_normal, _whole(val), coupling),
                _standard_normal, held_out)
    src_train, src_val, _ = _runner_data.dataset(src_name, k_src)
    # The runner draws OT pairs on moons -> 8gaussians in training only: validation pairs are
    # independent.
    return (src_train, train, (_whole(src_val), _whole(val), "independent"),
            functools.partial(_runner_data.sample, src_name), held_out)


class _BestModel:
    """``fit``'s `evaluate`: the validation loss of each checked model, keeping the best one
    (saved in `folder` when given, so that a resumed run keeps it)."""

    def __init__(self, loss, model, key, folder):
        self.loss, self.key, self.folder = loss, key, folder
        self.model, self.value, self.calls = None, float("inf"), 0
        if folder is not None and (folder / "best.json").exists():
            saved = json.loads((folder / "best.json").read_text())
            self.value, self.calls = saved["value"], saved["calls"]
        if folder is not None and (folder / "best.eqx").exists():
            with open(folder / "best.eqx", "rb") as handle:
                self.model = eqx.tree_deserialise_leaves(handle, model)

    def __call__(self, model) -> dict:
        value = float(_loss_value(self.loss, model, jax.random.fold_in(self.key, self.calls)))
        self.calls += 1
        if value < self.value:  # a NaN loss is never the best
            self.model, self.value = model, value
            if self.folder is not None:
                buffer = io.BytesIO()
                eqx.tree_serialise_leaves(buffer, model)
                write_atomic(self.folder / "best.eqx", buffer.getvalue())
        if self.folder is not None:
            write_atomic(self.folder / "best.json",
                         json.dumps({"value": self.value, "calls": self.calls}).encode())
        return {"val_loss": value}


@eqx.filter_jit
def _loss_value(loss, model, key):
    return loss(model, key)


class RunData(NamedTuple):
    """What one training run of `run_one` reads, all from its key: the training source and
    target (samplers or arrays), the validation loss's (source, target, coupling) or None, the
    evaluation source points `x0` and held-out target points, and the keys of the model and of
    the training."""

    source: object
    target: object
    validation: tuple | None
    x0: object
    held_out: object
    model_key: object
    fit_key: object
    val_key: object


def run_data(config: Config, task: str, coupling: str, key) -> RunData:
    """The data and evaluation points of `run_one` for (`task`, `coupling`, `key`): a peer
    trained on them is measured on the same points (``benchmarks/fm_protocol.py``)."""
    k_model, k_fit, k_src, k_tgt = jax.random.split(key, 4)
    k_data, k_val = jax.random.split(jax.random.fold_in(key, 1))
    source, target, validation, eval_source, eval_target = _data(config, task, coupling, k_data)
    return RunData(source, target, validation, eval_source(k_src, config.eval_points),
                   eval_target(k_tgt, config.eval_points), k_model, k_fit, k_val)


def sample_metrics(config: Config, energy, x1, data: RunData, shared: dict | None = None
                   ) -> dict:
    """The protocol's measurements of one trained model from its Euler solve on ``data.x0``:
    exact W2 of the samples `x1` to ``data.held_out`` (NaN when not finite) and the NPE of the
    kinetic `energy` against the exact source-target W2 on the first `npe_points` (kept in
    `shared` and computed once per task and seed)."""
    shared = {} if shared is None else shared
    if "w2_source" not in shared:
        n = config.npe_points or config.eval_points
        shared["w2_source"] = float(metrics.sample_w2(data.x0[:n], data.held_out[:n]))
    w2_source = shared["w2_source"]
    return {"w2": _w2(x1, data.held_out),
            "npe": float(metrics.normalized_path_energy(energy, w2_source)),
            "kinetic_energy": float(energy), "w2_source_target": w2_source}


def protocol_loss(config: Config, source, target, batch_size: int, coupling: str
                  ) -> FlowMatchingLoss:
    """The flow-matching loss of a training or validation batch. With ``replace_pairs`` the pairs
    of a plan ("ot", "entropic") are redrawn with replacement, as torchcfm's
    ``OTPlanSampler.sample_plan`` draws them from the flattened plan; independent pairs are used
    as drawn, as the runner's I-CFM and its moons->8gaussians validation (no plan) use them."""
    return FlowMatchingLoss(source, target, batch_size=batch_size, coupling=coupling,
                            sigma=config.sigma,
                            replace=config.replace_pairs and coupling != "independent",
                            coupling_options=ENTROPIC_OPTIONS if coupling == "entropic" else None)


def run_one(config: Config, task: str, coupling: str, key, checkpoint=None, shared=None):
    """Train one model and measure it: returns (metrics dict, saved Euler paths, the ``fit``
    result). `checkpoint`: a folder to save (and resume) the training in. With ``val_every``
    the model measured is the one of lowest validation loss among the checks. `shared`: a dict
    kept between the couplings of one task and seed (same `key`, same evaluation points), which
    holds the source-target W2 once computed. Metrics are NaN when the samples are not
    finite."""
    data = run_data(config, task, coupling, key)
    x0, held_out = data.x0, data.held_out
    model = MLPField(2, width=config.width, depth=config.depth, activation=jax.nn.selu,
                     key=data.model_key)
    loss = protocol_loss(config, data.source, data.target, config.batch_size, coupling)
    best = None
    if config.val_every:
        val_source, val_target, val_coupling = data.validation
        val_loss = protocol_loss(config, val_source, val_target, _runner_data.SPLITS[1],
                                 val_coupling)
        best = _BestModel(val_loss, model, data.val_key, None if checkpoint is None
                          else Path(checkpoint))
    optimizer = optax.adamw(config.learning_rate, weight_decay=1e-5)
    result = fit(loss, model, optimizer, data.fit_key, steps=config.steps,
                 chunk=chunk_size(config.steps, 500), evaluate=best,
                 eval_every=config.val_every or None, checkpoint=checkpoint,
                 resume=checkpoint is not None)
    trained = result.model if best is None or best.model is None else best.model
    energies, traj = metrics.kinetic_energy(trained, x0, steps=config.euler_steps, saveat=21,
                                            per_particle=True)
    values = sample_metrics(config, np.mean(energies), traj.x1, data, shared)
    values["npe_se"] = _npe_standard_error(energies, values["w2_source_target"])
    values.update({
        "straightness": float(metrics.straightness(traj.xs, traj.ts)),
        "final_loss": float(np.mean(result.losses[-50:])),
        "train_seconds": result.seconds,
    })
    if best is not None:
        values["best_val_loss"] = best.value
    if coupling == "entropic":
        values["coupling_converged"] = _converged_fraction(loss, data.fit_key)
    if config.floor_and_nfe:
        untrained = metrics.kinetic_energy(model, x0, steps=config.euler_steps, saveat=21)[1]
        values.update({"w2_untrained": _w2(untrained.x1, held_out),
                       "nfe_adaptive": float("nan"), "nfe_euler_within_10pct": float("nan")})
    finite = np.isfinite(values["w2"]) and np.isfinite(values["kinetic_energy"])
    if config.floor_and_nfe and finite:
        # Adaptive solves of a field that is not finite never end: only for finite samples.
        adaptive = simulate(trained, x0, rtol=1e-4, atol=1e-4)
        nfe = metrics.nfe_for_w2(trained, x0, held_out, 1.1 * values["w2"],
                                 steps=config.nfe_steps)
        values.update({
            "nfe_adaptive": int(adaptive.stats["num_field_evals"]),
            "nfe_euler_within_10pct": -1 if nfe["nfe"] is None else nfe["nfe"],
        })
    return values, np.asarray(traj.xs[:, :200]), result


def _converged_fraction(loss: FlowMatchingLoss, key) -> float:
    """Fraction of `COUPLING_PROBES` training batches (keys split from `key`) on which the
    loss's coupling solve converged."""
    status = eqx.filter_jit(jax.vmap(loss.coupling_status))(
        jax.random.split(key, COUPLING_PROBES))
    return float(np.mean(np.asarray(status) == Status.SUCCESS))


def _npe_standard_error(energies, w2_source: float) -> float:
    """Standard error of the NPE from the sampling of its kinetic energy over the source points,
    the source-target W2 held fixed: ``sd_i(e_i) / sqrt(n) / W2^2`` with `energies` `(n,)` each
    particle's Euler sum ``sum_k dt |v(t_k, x_k)|^2`` (whose mean is the kinetic energy). NaN
    when one is not finite."""
    each = np.asarray(energies, np.float64)
    if not np.all(np.isfinite(each)):
        return float("nan")
    return float(np.std(each, ddof=1) / np.sqrt(each.size) / w2_source**2)


def _w2(generated, held_out) -> float:
    """Exact W2 between the clouds; NaN when `generated` is not finite."""
    if not np.all(np.isfinite(np.asarray(generated))):
        return float("nan")
    return float(metrics.sample_w2(generated, held_out))


@register(
    "fm-2d-protocol",
    theme="optimal transport and flow matching",
    config=Config,
    description="I-CFM vs OT-CFM on the 2-D tasks of Tong et al.: W2 and normalized path energy.",
)
def run(config: Config, key, checkpoint=None) -> Result:
    result = Result("fm-2d-protocol", dataclasses.asdict(config))
    fig, axes = figure(len(config.tasks), len(config.methods), size=3.0)
    table, npe_se = {}, {}
    for i, task in enumerate(config.tasks):
        if config.floor_and_nfe:
            target = _data(config, task, "independent", jax.random.fold_in(key, 10_000 + i))[4]
            floor, floor_sd = sampling_floor(target, config.eval_points,
                                             jax.random.fold_in(key, 10_000 + i))
            result.metrics[f"{task} W2 floor (two target samples) mean"] = floor
            result.metrics[f"{task} W2 floor (two target samples) std"] = floor_sd
        shared = [{} for _ in range(config.repeats)]
        for j, label in enumerate(config.methods):
            coupling = COUPLINGS[label]
            runs = [run_one(config, task, coupling, jax.random.fold_in(key, seed),
                            sub_folder(checkpoint, task, label, f"seed{seed}"), shared[seed])
                    for seed in range(config.repeats)]
            for name in runs[0][0]:
                values = np.array([r[0][name] for r in runs], np.float64)
                result.metrics[f"{task} {label} {name} mean"] = float(values.mean())
                if name in ("w2", "npe"):
                    result.metrics[f"{task} {label} {name} std"] = float(values.std())
            table[task, label] = np.array([[r[0]["w2"], r[0]["npe"]] for r in runs])
            npe_se[task, label] = np.array([r[0]["npe_se"] for r in runs])
            result.arrays[f"paths {task} {label}"] = runs[0][1]
            result.checks += [fit_ok(f"{task} {label} seed {seed}: training ended ok", r[2])
                              for seed, r in enumerate(runs)]
            if coupling == "entropic":
                result.checks.append(at_least(
                    f"{task} {label}: entropic coupling converged on every probe batch",
                    min(r[0]["coupling_converged"] for r in runs), 1.0,
                    against=f"Sinkhorn status on {COUPLING_PROBES} training batches per seed"))
            if config.data == "runner" and (task, label) in PUBLISHED:
                _published(result, config, task, label)
            if config.floor_and_nfe:
                _floor_checks(result, config, task, label, floor, floor_sd)
            ax = axes[j, i]
            paths(ax, runs[0][1], count=120, alpha=0.3)
            ax.set_title(f"{task}\n{label}: W2 {table[task, label][:, 0].mean():.3f}, "
                         f"NPE {table[task, label][:, 1].mean():.3f}", fontsize=8)
            ax.set_aspect("equal")
        if {"I-CFM", "OT-CFM"} <= set(config.methods):
            _coupling_checks(result, config, task, table, npe_se)
    result.figures["paths"] = fig
    if config.data == "runner":
        result.figures["published"] = _published_figure(result, config)
    result.arrays["table w2 npe (task, coupling, seed, [w2, npe])"] = np.array(
        [[table[task, label] for label in config.methods] for task in config.tasks])
    return result


def _published(result: Result, config: Config, task: str, label: str) -> None:
    """The published W2 and NPE of (`task`, `label`) beside ours, and with
    ``compare_published`` a check per cell: our mean within two standard deviations of the
    difference of the two means (ours over ``repeats`` seeds, theirs over 5)."""
    row = dict(zip(("w2 mean", "w2 std", "npe mean", "npe std"), PUBLISHED[task, label],
                   strict=True))
    for name, value in row.items():
        result.metrics[f"{task} {label} {name} published"] = value
    if not config.compare_published:
        return
    for name in ("w2", "npe"):
        ours, ours_sd = (result.metrics[f"{task} {label} {name} {s}"] for s in ("mean", "std"))
        spread = 2 * np.hypot(ours_sd / np.sqrt(config.repeats),
                              row[f"{name} std"] / np.sqrt(PUBLISHED_SEEDS))
        result.checks.append(close(
            f"{task} {label}: {name.upper()} within the published spread", ours,
            row[f"{name} mean"], spread, relative=False, kind="comparison",
            against="[SF]^2M (AISTATS 2024) Table 2, 5 seeds: two standard deviations of the "
                    "difference of the means"))


def _published_figure(result: Result, config: Config):
    """Per task (columns), W2 and NPE (rows): our mean +- std over the seeds beside the
    published one, per method."""
    fig, axes = figure(len(config.tasks), 2, size=2.8)
    for i, task in enumerate(config.tasks):
        for row, name in enumerate(("w2", "npe")):
            ax = axes[row, i]
            for j, label in enumerate(config.methods):
                cells = (f"{task} {label} {name} {s}" for s in ("mean", "std"))
                ax.errorbar(j - 0.1, *(result.metrics[c] for c in cells), fmt="o", color="C0",
                            label="ours" if j == 0 else None)
                published = [result.metrics.get(f"{task} {label} {name} {s} published")
                             for s in ("mean", "std")]
                if published[0] is not None:
                    ax.errorbar(j + 0.1, *published, fmt="s", color="C1",
                                label="published" if j == 0 else None)
            ax.set_xticks(range(len(config.methods)), config.methods, fontsize=7)
            ax.set_title(f"{task}: {name.upper()}", fontsize=8)
    axes[0, 0].legend(fontsize=7)
    return fig


def _floor_checks(result: Result, config: Config, task: str, label: str, floor,
                  floor_sd) -> None:
    """W2 within the sampling floor, and trained ahead of untrained."""
    w2 = result.metrics[f"{task} {label} w2 mean"]
    untrained = result.metrics[f"{task} {label} w2_untrained mean"]
    result.checks += [
        at_most(f"{task} {label}: W2 to held-out target within the sampling floor", w2,
                floor + 4 * floor_sd, kind="comparison",
                against=f"W2 between two independent target samples of "
                        f"{config.eval_points} points (a perfect sampler): mean + 4 sd "
                        f"over {FLOOR_PAIRS} pairs"),
        better(f"{task} {label}: W2 to held-out target, trained vs untrained", w2,
               untrained, margin=(untrained - floor) / 2,
               against="the same network untrained (zero steps), same points; margin: "
                       "half its gap to the sampling floor"),
    ]


def _coupling_checks(result: Result, config: Config, task: str, table: dict,
                     npe_se: dict) -> None:
    """OT-CFM's paths bend at most half as much as I-CFM's; (``check_npe``) its NPE is at most
    half of I-CFM's; (``check_direction``) its NPE is below I-CFM's beyond evaluation noise."""
    # Once trained, OT-CFM's paths are nearly straight and its kinetic energy near optimal:
    # its bend and NPE are at most half of I-CFM's (at 300 quick steps the bends are 0.011
    # and 0.10). An untrained pair (same initial network) bends alike and fails.
    bend = {label: 1 - result.metrics[f"{task} {label} straightness mean"]
            for label in ("I-CFM", "OT-CFM")}
    result.checks.append(better(
        f"{task}: OT-CFM paths bend at most half as much as I-CFM's", bend["OT-CFM"],
        bend["I-CFM"], margin=bend["I-CFM"] / 2,
        against="I-CFM trained alike (same initial network, steps and data); bend = 1 - "
                "straightness"))
    npe = {label: table[task, label][:, 1].mean() for label in ("I-CFM", "OT-CFM")}
    if config.check_npe:
        result.checks.append(better(
            f"{task}: OT-CFM NPE at most half of I-CFM's", npe["OT-CFM"], npe["I-CFM"],
            margin=npe["I-CFM"] / 2, against="I-CFM trained alike"))
    if config.check_direction:
        # The tolerance is the evaluation noise at this size, fixed before any value was seen.
        # Both NPEs of a seed divide by the same source-target W2 (computed once per task and
        # seed), so the noise of the comparison is that of the two kinetic energies, each a mean
        # over the `eval_points` source points: standard errors s_I and s_OT (`npe_se`, from the
        # per-particle energies). The two share their source points, so their errors may be
        # correlated either way: the difference's standard error is at most s_I + s_OT
        # (triangle inequality); the mean over `repeats` independent seeds divides the root
        # sum of squares by `repeats`. Margin: 3 standard errors (one-sided, normal: a false
        # failure under 0.2 %). Not covered: the spread between training seeds (only
        # `repeats` seeds are run; the quick run's are fixed keys).
        # W2 is not checked in this direction: at 300 points the W2 of a perfect sampler of
        # 8gaussians is 1.12 +- 0.20 (the sampling floor), its noise alone gives a margin of
        # 3 sqrt(2) 0.20 = 0.85 for one seed, while the measured gaps at quick size were -0.03
        # to 0.43 (seeds 0-2, 300 and 1000 steps); the published gaps exceed their spread on
        # moons->8gaussians only, at 10 000 points.
        pair = npe_se[task, "I-CFM"] + npe_se[task, "OT-CFM"]
        margin = 3 * float(np.sqrt(np.sum(pair**2))) / config.repeats
        result.checks.append(better(
            f"{task}: OT-CFM NPE below I-CFM's beyond evaluation noise", npe["OT-CFM"],
            npe["I-CFM"], margin=margin,
            against=f"I-CFM trained alike; margin: 3 standard errors of the difference from the "
                    f"kinetic energies' sampling over {config.eval_points} points x "
                    f"{config.repeats} seed(s)"))
