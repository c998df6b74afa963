"""The fm-2d-protocol paper preset trained by flowjax_lab and by torchcfm, side by side.

Both codes train the runner's protocol (``docs/protocols/tong2024_2d.md``) on the **same data
arrays** and are measured by the **same evaluation code**:

- data: per task and seed, ``fm_2d_protocol.run_data`` (the runner's data re-written in
  ``_runner_data``: the fixed 10 000 / 1 000 / 1 000 splits, the evaluation source points and the
  held-out target points); torchcfm gets these arrays as torch tensors. The N(0, I) source of the
  N-> tasks is drawn fresh per batch by each code (JAX keys / ``torch.randn``).
- flowjax_lab: ``fm_2d_protocol.run_one`` with ``Config.paper()`` (sizes reduced on the command
  line): batches of 512 drawn with replacement from the train split, exact OT permutation then
  pairs drawn with replacement, ``optax.adamw``, best validation loss every `val_every` steps.
- torchcfm 1.0.7: ``ConditionalFlowMatcher`` (I-CFM) and
  ``ExactOptimalTransportConditionalFlowMatcher`` (OT-CFM: POT ``ot.emd`` plan, pairs drawn with
  replacement by NumPy), sigma 0.1; the runner's network (``[t, x]`` -> Linear(3, 64) SELU ->
  Linear(64, 64) SELU -> Linear(64, 64) SELU -> Linear(64, 2), PyTorch's default
  initialisation: torchcfm's ``models.MLP`` up to the input order); ``torch.optim.AdamW(lr 1e-3,
  weight_decay 1e-5)``; the runner's loader: epochs over the shuffled train split in batches of
  512 (the last one 272; moons->8gaussians pairs two shuffled loaders and drops the last
  batch), loss ``torch.mean((v - u)**2)``; the same model-selection rule as ours (validation
  loss on the whole 1 000-point validation split every `val_every` steps and at the end, OT pairs
  for the N-> tasks, independent pairs for moons->8gaussians; the best is evaluated). One torch
  thread.
- evaluation (both): 100 Euler steps from the same source points, kinetic energy summed during
  the solve (a left Riemann sum, as the runner's augmentation with Euler); torchcfm's model is
  integrated by an **explicit Euler loop in torch** (``t_k = k / 100``, what torchdyn's
  ``NeuralODE(solver="euler")`` does on ``linspace(0, 1, 101)``). W2 and NPE come from
  ``fm_2d_protocol.sample_metrics`` (exact W2 by optimal assignment, NPE against the exact
  source-target W2 on the first `npe_points`, shared by both codes per task and seed). Each
  trained torchcfm model is also integrated by our own solver (its weights copied into an
  ``MLPField``, `as_field`): ``kinetic_energy_by_our_solver`` beside its torch ``kinetic_energy``.
- seconds per training run: wall time of the training loop with its validation checks (ours:
  ``fit``'s seconds, the first run of each coupling includes JIT compilation).

    python -m benchmarks.fm_protocol --tasks gaussian->8gaussians gaussian->moons --seeds 2 \\
        --steps 2000 --eval-points 10000 --out fm_protocol.md

``--codes torchcfm --methods OT-CFM --first-seed 1`` trains only torchcfm's OT-CFM, on seeds 1,
2, ...: beside a paper run's folder (the same seeds, data and evaluation points) it completes the
comparison at full size.

Two studies beside it: ``--sb-plan`` prints SB-CFM's plan as the runner's POT call computes it
beside our converged solve (`sb_plan_table`); ``--table FOLDER...`` prints the side-by-side
table of ``fm-2d-protocol`` run folders, e.g. the per-task folders of a split paper run
(`published_table`).

Run it in the peers environment (torch, torchcfm, POT); without them only flowjax_lab's rows
are measured. ``rows(quick)`` (the suite's entry) runs gaussian->8gaussians, one seed: 40 steps
and 256 evaluation points when quick (seconds), else 1000 steps and 2000 points (minutes: each of
our OT-CFM steps solves a 512-point assignment with scipy's Hungarian algorithm, ~0.1 s here).
"""

import argparse
import copy
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from flowjax_lab import metrics
from flowjax_lab.experiments import _runner_data, fm_2d_protocol as p2d
from flowjax_lab.fields import MLPField

from . import _harness as H

# The methods of the runner's script (SB-CFM's plan is studied apart: `sb_plan_table`).
COUPLINGS = {label: p2d.COUPLINGS[label] for label in ("I-CFM", "OT-CFM")}


def config(tasks, seeds: int, steps: int, eval_points: int, val_every: int = 200):
    """The paper preset at reduced sizes (the published-cell checks off: reduced runs cannot
    meet them)."""
    return dataclasses.replace(
        p2d.Config.paper(), tasks=tuple(tasks), repeats=seeds, steps=steps,
        eval_points=eval_points, val_every=min(val_every, steps),
        npe_points=min(p2d.Config.paper().npe_points, eval_points), compare_published=False)


def peer_missing() -> str | None:
    try:
        import ot  # noqa: F401
        import torch  # noqa: F401
        import torchcfm  # noqa: F401
    except Exception as err:  # noqa: BLE001 - any import failure means: no peer
        return f"torch/torchcfm/POT not importable ({type(err).__name__}: {err})"
    return None


# What each record keeps of ``sample_metrics``'s values, for both codes.
MEASURED = ("w2", "npe", "kinetic_energy", "w2_source_target")


def ours(cfg, task: str, coupling: str, key, shared: dict) -> dict:
    values, _, result = p2d.run_one(cfg, task, coupling, key, shared=shared)
    return {name: values[name] for name in MEASURED} | {"seconds": result.seconds}


class _RunnerMLP:
    """Builds the runner's network in torch (imported lazily)."""

    @staticmethod
    def make(width: int, depth: int):
        import torch

        layers, size = [], 3  # input [t, x]
        for _ in range(depth):
            layers += [torch.nn.Linear(size, width), torch.nn.SELU()]
            size = width
        return torch.nn.Sequential(*layers, torch.nn.Linear(size, 2))


def _velocity(model, t, x):
    import torch

    return model(torch.cat([t[:, None], x], dim=1))


def _batches(n_train: int, batch: int, drop_last: bool, generator):
    """One epoch of index batches over a shuffled train split (a torch DataLoader's order)."""
    import torch

    order = torch.randperm(n_train, generator=generator)
    stop = n_train - n_train % batch if drop_last else n_train
    return [order[i:i + batch] for i in range(0, stop, batch)]


def torchcfm_run(cfg, task: str, label: str, key, seed: int, shared: dict) -> dict:
    """torchcfm's classes on the runner's loop, trained on ``run_data``'s arrays and measured by
    ``sample_metrics`` on its evaluation points."""
    import torch
    from torchcfm.conditional_flow_matching import (
        ConditionalFlowMatcher,
        ExactOptimalTransportConditionalFlowMatcher,
    )

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    np.random.seed(seed)  # torchcfm draws OT pairs with np.random.choice
    generator = torch.Generator().manual_seed(seed)
    data = p2d.run_data(cfg, task, COUPLINGS[label], key)
    gaussian_source = _runner_data.TASKS[task][0] == "gaussian"
    as_torch = lambda a: torch.from_numpy(np.array(a, np.float32))
    target = as_torch(data.target)
    source = None if gaussian_source else as_torch(data.source)
    val_target = as_torch(data.validation[1](None, None))
    val_source = None if gaussian_source else as_torch(data.validation[0](None, None))
    ot = ExactOptimalTransportConditionalFlowMatcher(sigma=cfg.sigma)
    matcher = ot if label == "OT-CFM" else ConditionalFlowMatcher(sigma=cfg.sigma)
    # Validation pairs: the training coupling on N-> tasks, independent on moons->8gaussians.
    val_matcher = matcher if data.validation[2] != "independent" else ConditionalFlowMatcher(
        sigma=cfg.sigma)
    model = _RunnerMLP.make(cfg.width, cfg.depth)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=1e-5)

    def loss_of(m, x0, x1):
        t, xt, ut = m.sample_location_and_conditional_flow(x0, x1)
        return torch.mean((_velocity(model, t, xt) - ut) ** 2)

    def validate():
        with torch.no_grad():
            x0 = torch.randn_like(val_target) if gaussian_source else val_source
            return float(loss_of(val_matcher, x0, val_target))

    best_value, best_state, best_step, step, losses = float("inf"), None, 0, 0, []
    started = time.perf_counter()
    while step < cfg.steps:
        target_batches = _batches(len(target), cfg.batch_size, not gaussian_source, generator)
        source_batches = (None if gaussian_source else
                          _batches(len(source), cfg.batch_size, True, generator))
        for b, index in enumerate(target_batches):
            x1 = target[index]
            x0 = torch.randn_like(x1) if gaussian_source else source[source_batches[b]]
            optimizer.zero_grad()
            loss = loss_of(matcher, x0, x1)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            step += 1
            if step % cfg.val_every == 0 or step == cfg.steps:
                value = validate()
                if value < best_value:
                    best_value, best_state = value, copy.deepcopy(model.state_dict())
                    best_step = step
            if step == cfg.steps:
                break
    seconds = time.perf_counter() - started
    if best_state is not None:
        model.load_state_dict(best_state)
    x1, energy = euler(model, as_torch(data.x0), cfg.euler_steps)
    values = p2d.sample_metrics(cfg, energy, x1, data, shared)
    energy_ours = metrics.kinetic_energy(as_field(model), data.x0, steps=cfg.euler_steps)[0]
    return {name: values[name] for name in MEASURED} | {
        "seconds": seconds, "final_loss": float(np.mean(losses[-50:])), "best_step": best_step,
        "kinetic_energy_by_our_solver": float(energy_ours)}


def as_field(model) -> MLPField:
    """The torch runner network as our ``MLPField`` (same weights; its input ``[t, x]``
    reordered to our ``[x, t]``): the trained torchcfm model integrated by our own Euler solve,
    a check that both codes' evaluations agree on one model."""
    linears = [m for m in model if hasattr(m, "weight")]
    field = MLPField(2, width=linears[0].out_features, depth=len(linears) - 1,
                     activation=jax.nn.selu, key=jax.random.key(0))
    weights = [m.weight.detach().numpy() for m in linears]
    weights[0] = np.concatenate([weights[0][:, 1:], weights[0][:, :1]], axis=1)
    biases = [m.bias.detach().numpy() for m in linears]
    return eqx.tree_at(lambda f: ([layer.weight for layer in f.mlp.layers]
                                  + [layer.bias for layer in f.mlp.layers]),
                       field, [jnp.asarray(w) for w in weights + biases])


def euler(model, x0, steps: int):
    """Explicit Euler from t = 0 to 1 in `steps` steps; the kinetic energy ``E sum_k dt
    |v(t_k, x_k)|^2`` accumulated on the way. Returns (x1 as NumPy, energy)."""
    import torch

    dt, x, energy = 1.0 / steps, x0, 0.0
    with torch.no_grad():
        for k in range(steps):
            t = torch.full((x.shape[0],), k * dt)
            v = _velocity(model, t, x)
            energy += dt * float(torch.mean(torch.sum(v**2, dim=1)))
            x = x + dt * v
    return x.numpy(), energy


CODES = ("flowjax_lab", "torchcfm")


def measure(cfg, *, codes=CODES, methods=tuple(COUPLINGS), first_seed: int = 0,
            log=print) -> list[dict]:
    """Every (task, method, code, seed): W2, NPE, seconds. Seeds ``first_seed`` to ``first_seed +
    cfg.repeats - 1`` as ``fm_2d_protocol.run`` numbers them (``fold_in(key(0), seed)``: a paper
    run's seed s is this seed s); the source-target W2 shared per task and seed. torchcfm is
    skipped, and why returned, when it is not importable."""
    missing = peer_missing() if "torchcfm" in codes else None
    codes = [c for c in codes if not (c == "torchcfm" and missing)]
    records, root = [], jax.random.key(0)
    for task in cfg.tasks:
        for seed in range(first_seed, first_seed + cfg.repeats):
            key, shared = jax.random.fold_in(root, seed), {}
            for label in methods:
                coupling = COUPLINGS[label]
                for code in codes:
                    values = (ours(cfg, task, coupling, key, shared) if code == "flowjax_lab"
                              else torchcfm_run(cfg, task, label, key, seed, shared))
                    rec = {"task": task, "method": label, "code": code, "seed": seed} | values
                    records.append(rec)
                    log(json.dumps(rec), flush=True)
    return records, missing


def _pm(values, fmt="{:.3f}") -> str:
    values = np.asarray(values, np.float64)
    return f"{fmt.format(values.mean())} ± {fmt.format(values.std())}"


def table(records: list[dict], missing: str | None = None) -> str:
    """Markdown: per (task, method, code) the mean ± std over seeds (population std, as the
    experiment's metrics), the published cell and the seconds per training run (mean, and the
    range over seeds)."""
    lines = ["| task | method | code | seeds | W2 | NPE | published W2 | published NPE | "
             "s / training run (range) |", "|---|---|---|---|---|---|---|---|---|"]
    keys = dict.fromkeys((r["task"], r["method"], r["code"]) for r in records)
    for task, method, code in keys:
        rs = [r for r in records if (r["task"], r["method"], r["code"]) == (task, method, code)]
        w2m, w2s, npem, npes = p2d.PUBLISHED[task, method]
        secs = np.array([r["seconds"] for r in rs])
        lines.append(f"| {task} | {method} | {code} | {len(rs)} | {_pm([r['w2'] for r in rs])} "
                     f"| {_pm([r['npe'] for r in rs])} | {w2m:.3f} ± {w2s:.3f} | "
                     f"{npem:.3f} ± {npes:.3f} | {secs.mean():.1f} "
                     f"({secs.min():.1f}-{secs.max():.1f}) |")
    if missing:
        lines.append(f"\ntorchcfm rows skipped: {missing}")
    return "\n".join(lines)


def rows(quick: bool, repeats: int | None = None) -> list[dict]:
    """The suite's entry: one task, one seed, small size (quick: seconds); a row per (method,
    code) with W2 and NPE in the row, the training's wall time as its run time (one run, no
    repeats: `repeats` is ignored), ours the group baseline."""
    steps, points = (40, 256) if quick else (1000, 2000)
    cfg = config(("gaussian->8gaussians",), 1, steps, points, val_every=20 if quick else 200)
    records, missing = measure(cfg, log=lambda *a, **k: None)
    out = []
    for r in records:
        group = f"{r['method']} protocol {r['task']}"
        timing = H.Timing(first=r["seconds"], median=r["seconds"], iqr=0.0, repeats=1)
        out.append(H.row(group=group, name="CFM protocol training run", impl=r["code"],
                         timing=timing, sizes={"steps": steps, "batch": cfg.batch_size,
                                               "eval_points": points},
                         dtype="float32", baseline=r["code"] == "flowjax_lab",
                         throughput=(steps, "steps/s"),
                         extra={"w2": r["w2"], "npe": r["npe"]}))
    if missing is not None:
        for label in COUPLINGS:
            out.append(H.skipped(group=f"{label} protocol gaussian->8gaussians",
                                 name="CFM protocol training run", impl="torchcfm",
                                 sizes={"steps": steps}, dtype="float32", why=missing))
    return out


def sb_plan_table(batches: int = 10, batch: int = 512) -> str:
    """SB-CFM's plan at regularisation 2 sigma^2 = 0.02 on runner batches of the N-> tasks (a
    fresh N(0, I) source, target rows drawn without replacement from the train split): POT's
    ``ot.sinkhorn`` as the runner's ``OTPlanSampler("sinkhorn")`` calls it (unnormalised costs,
    kernel mode, 1 000 iterations): its mass, effective number of pairs exp(H) of the normalised
    plan and rows holding over 0.1 % of it (medians over `batches`); beside it our converged
    solve (`fm_2d_protocol.ENTROPIC_OPTIONS`): how many batches converged and seconds per
    batch."""
    import warnings

    import ot

    from flowjax_lab import transport

    reg = 2 * p2d.Config.paper().sigma**2
    ours = jax.jit(lambda a, b: transport.sinkhorn(a, b, epsilon=reg, **p2d.ENTROPIC_OPTIONS))
    lines = ["| task | POT plan mass | POT effective pairs | POT rows > 0.1 % | ours converged "
             "| ours iterations | ours s per batch |", "|---|---|---|---|---|---|---|"]
    rng = np.random.default_rng(0)
    for task, (_, target) in _runner_data.TASKS.items():
        if not task.startswith("gaussian->"):
            continue
        train = np.asarray(_runner_data.dataset(target, jax.random.key(0))[0], np.float64)
        mass, pairs, rows, converged, iterations, seconds = [], [], [], 0, [], []
        for _ in range(batches):
            x0 = rng.normal(size=(batch, 2))
            x1 = train[rng.choice(len(train), batch, replace=False)]
            weights = np.full(batch, 1 / batch)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the breakdown's warnings are what is measured
                plan = ot.sinkhorn(weights, weights, ot.dist(x0, x1), reg)
            q = plan.ravel() / plan.sum()
            q = q[q > 0]
            mass.append(plan.sum())
            pairs.append(np.exp(-np.sum(q * np.log(q))))
            rows.append(np.sum(plan.sum(1) / plan.sum() > 1e-3))
            began = time.perf_counter()
            result = jax.block_until_ready(ours(x0.astype(np.float32), x1.astype(np.float32)))
            seconds.append(time.perf_counter() - began)
            converged += int(result.status) == 0
            iterations.append(int(result.iterations))
        lines.append(f"| {task} | {np.median(mass):.2g} | {np.median(pairs):.1f} | "
                     f"{np.median(rows):.0f} of {batch} | {converged} of {batches} | "
                     f"{np.median(iterations):.0f} | {np.median(seconds[1:]):.2f} |")
    return "\n".join(lines)


def published_table(folders) -> str:
    """The side-by-side table of fm-2d-protocol run folders (``OUT/fm-2d-protocol``, e.g. one per
    task of a split paper run): per task and method our W2 and NPE mean +- std over the seeds,
    the published ones, and whether each cell's check passed."""
    lines = ["| task | method | W2 ours | W2 published | NPE ours | NPE published | checks |",
             "|---|---|---|---|---|---|---|"]
    for folder in folders:
        saved = json.loads((Path(folder) / "metrics.json").read_text())
        config = json.loads((Path(folder) / "config.json").read_text())["config"]
        values = saved["metrics"]
        passed = {c["name"]: c["passed"] for c in saved["checks"]}
        for task in config["tasks"]:
            for label in config["methods"]:
                cells, marks = [], []
                for name in ("w2", "npe"):
                    key = f"{task} {label} {name}"
                    cells.append(f"{values[key + ' mean']:.3f} ± {values[key + ' std']:.3f}")
                    published = [values.get(f"{key} {s} published") for s in ("mean", "std")]
                    cells.append("—" if published[0] is None
                                 else f"{published[0]:.3f} ± {published[1]:.3f}")
                    check = passed.get(f"{task} {label}: {name.upper()} within the published "
                                       "spread")
                    marks.append(f"{name.upper()} " + {True: "in", False: "**out**",
                                                       None: "—"}[check])
                lines.append(f"| {task} | {label} | " + " | ".join(cells) + " | "
                             + ", ".join(marks) + " |")
    return "\n".join(lines)


def _main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.fm_protocol",
                                description=__doc__.split("\n")[0])
    p.add_argument("--tasks", nargs="+", default=["gaussian->8gaussians", "gaussian->moons"],
                   choices=list(_runner_data.TASKS))
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--eval-points", type=int, default=10_000)
    p.add_argument("--val-every", type=int, default=200)
    p.add_argument("--codes", nargs="+", default=list(CODES), choices=CODES,
                   help="which codes train (default both)")
    p.add_argument("--methods", nargs="+", default=list(COUPLINGS), choices=list(COUPLINGS))
    p.add_argument("--first-seed", type=int, default=0,
                   help="seeds first-seed .. first-seed + seeds - 1, as a paper run numbers them")
    p.add_argument("--out", help="also write the markdown table (and a .json of the records)")
    p.add_argument("--sb-plan", action="store_true",
                   help="only SB-CFM's plan: POT as the runner calls it beside ours")
    p.add_argument("--table", nargs="+", metavar="FOLDER",
                   help="only print the side-by-side table of fm-2d-protocol run folders")
    args = p.parse_args(argv)
    if args.sb_plan:
        print(sb_plan_table())
        return 0
    if args.table:
        print(published_table(args.table))
        return 0
    cfg = config(args.tasks, args.seeds, args.steps, args.eval_points, args.val_every)
    began, load = time.time(), os.getloadavg()
    print(json.dumps({"config": dataclasses.asdict(cfg) | {"methods": args.methods},
                      "codes": args.codes, "first_seed": args.first_seed, "load_start": load}),
          flush=True)
    records, missing = measure(cfg, codes=args.codes, methods=args.methods,
                               first_seed=args.first_seed)
    text = table(records, missing)
    text += (f"\n\nload average {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f} -> "
             + "/".join(f"{v:.2f}" for v in os.getloadavg())
             + f", {time.time() - began:.0f} s in all")
    print(text)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text + "\n")
        with open(os.path.splitext(args.out)[0] + ".json", "w") as handle:
            json.dump({"argv": sys.argv, "records": records}, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
