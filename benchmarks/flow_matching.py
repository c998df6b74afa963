"""Flow-matching training throughput: I-CFM and OT-CFM on 8gaussians -> moons.

1. Training steps per second (batch 256, MLP 3 x 64 SELU, Adam 1e-3, sigma 0.1): ours runs K
   steps in one jitted ``lax.scan`` (the loop ``learn.fit`` runs), the OT pairing by the default
   exact solver (POT's network simplex through ``pure_callback``) inside the scan; torchcfm (when
   importable)
   runs its tutorial loop (``ConditionalFlowMatcher`` /
   ``ExactOptimalTransportConditionalFlowMatcher``, POT's ``emd`` then sampling the plan) on one
   torch thread. Baseline: ours, per coupling.
2. Time in the coupling alone for one batch: ours exact (default solver) and entropic (ott-jax
   Sinkhorn, epsilon = 2 sigma^2 with sigma = 1; also with ``momentum=1.5`` through
   ``transport.minibatch_coupling``), torchcfm's ``OTPlanSampler`` when importable.
   Baseline: ours exact.
3. The exact coupling alone at n = 256 and 1024: each solver of ``transport.optimal_permutation``
   (POT's network simplex, the default, and scipy's Hungarian, both through ``pure_callback``;
   the auction in XLA) vs POT ``ot.emd`` called directly. Baseline: the default.
Float32. Peers are measured only when torch and torchcfm import; nothing is installed here.
"""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import flowjax_lab as fl

from . import _harness as H

BATCH, WIDTH = 256, 64
COUPLINGS = {"I-CFM": "independent", "OT-CFM": "ot"}


def _ours(coupling: str, steps: int):
    """A callable running `steps` training steps in one jitted scan; returns the last loss."""
    source = functools.partial(fl.datasets.sample, "8gaussians", dtype=jnp.float32)
    target = functools.partial(fl.datasets.sample, "moons", dtype=jnp.float32)
    loss = fl.learn.FlowMatchingLoss(source, target, batch_size=BATCH, coupling=coupling,
                                     sigma=0.1)
    model = fl.fields.MLPField(2, width=WIDTH, depth=3, activation=jax.nn.selu,
                               key=jax.random.key(0), dtype=jnp.float32)
    optimizer = optax.adam(1e-3)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    opt_state = optimizer.init(params)

    @jax.jit
    def run(params, opt_state, key):
        def body(carry, k):
            params, opt_state = carry
            value, grads = jax.value_and_grad(lambda p: loss(eqx.combine(p, static), k))(params)
            with jax.numpy_dtype_promotion("standard"):
                updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), value

        _, values = jax.lax.scan(body, (params, opt_state), jax.random.split(key, steps))
        return values[-1]

    return lambda: run(params, opt_state, jax.random.key(1))


def _torchcfm(coupling: str, steps: int):
    import torch
    from torchcfm.conditional_flow_matching import (
        ConditionalFlowMatcher,
        ExactOptimalTransportConditionalFlowMatcher,
    )
    from torchcfm.models import MLP
    from torchcfm.utils import sample_8gaussians, sample_moons

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = MLP(dim=2, w=WIDTH, time_varying=True)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    matcher = (ConditionalFlowMatcher(sigma=0.1) if coupling == "independent"
               else ExactOptimalTransportConditionalFlowMatcher(sigma=0.1))

    def run():
        for _ in range(steps):
            optimizer.zero_grad()
            x0, x1 = sample_8gaussians(BATCH), sample_moons(BATCH)
            t, xt, ut = matcher.sample_location_and_conditional_flow(x0, x1)
            vt = model(torch.cat([xt, t[:, None]], dim=-1))
            loss = torch.mean((vt - ut) ** 2)
            loss.backward()
            optimizer.step()
        return float(loss.detach())

    return run


def _peer_missing() -> str | None:
    try:
        import torch  # noqa: F401
        import torchcfm  # noqa: F401
    except Exception as err:  # noqa: BLE001 - any import failure means: no peer
        return f"torch/torchcfm not importable ({type(err).__name__}: {err})"
    return None


def _train_rows(quick, repeats):
    steps = 20 if quick else 200
    missing = _peer_missing()
    out = []
    for label, coupling in COUPLINGS.items():
        group = f"{label} train 8g->moons"
        sizes = {"batch": BATCH, "width": WIDTH, "depth": 3, "steps_per_call": steps}
        fns = {"flowjax_lab (jit scan)": _ours(coupling, steps)}
        syncs = {}
        if missing is None:
            fns["torchcfm 1 thread"] = _torchcfm(coupling, steps)
            syncs["torchcfm 1 thread"] = lambda out: out
        timed = H.time_interleaved(fns, repeats=repeats, syncs=syncs)
        for impl, (timing, value) in timed.items():
            out.append(H.row(group=group, name="CFM training steps", impl=impl, timing=timing,
                             sizes=sizes, dtype="float32", baseline=impl.startswith("flowjax"),
                             throughput=(steps, "steps/s"),
                             extra={"last_loss": float(value)}))
        if missing is not None:
            out.append(H.skipped(group=group, name="CFM training steps", impl="torchcfm",
                                 sizes=sizes, dtype="float32", why=missing))
    return out


def _coupling_rows(quick, repeats):
    missing = _peer_missing()
    group = f"coupling n={BATCH}"
    sizes = {"n": BATCH, "d": 2}
    x0 = fl.datasets.sample("8gaussians", jax.random.key(2), BATCH, dtype=jnp.float32)
    x1 = fl.datasets.sample("moons", jax.random.key(3), BATCH, dtype=jnp.float32)
    exact = jax.jit(lambda a, b: fl.learn.couple(jax.random.key(0), a, b, "ot")[1])
    entropic = jax.jit(lambda a, b: fl.learn.couple(jax.random.key(0), a, b, "entropic",
                                                    sigma=1.0)[1])
    relaxed = jax.jit(lambda a, b: fl.transport.minibatch_coupling(
        a, b, epsilon=2.0, key=jax.random.key(0), momentum=1.5)[1])
    fns = {"ours exact (network simplex, POT)": lambda: exact(x0, x1),
           "ours entropic (ott-jax, sigma=1)": lambda: entropic(x0, x1),
           "ours entropic, momentum 1.5": lambda: relaxed(x0, x1)}
    syncs = {}
    if missing is None:
        import numpy as np
        import torch
        from torchcfm.optimal_transport import OTPlanSampler

        sampler = OTPlanSampler(method="exact")
        t0, t1 = torch.from_numpy(np.array(x0)), torch.from_numpy(np.array(x1))
        fns["torchcfm OTPlanSampler exact (POT)"] = lambda: sampler.sample_plan(t0, t1)
        syncs["torchcfm OTPlanSampler exact (POT)"] = lambda out: out
    timed = H.time_interleaved(fns, repeats=repeats, syncs=syncs)
    rows = [H.row(group=group, name="minibatch coupling", impl=impl, timing=timing, sizes=sizes,
                  dtype="float32", baseline=impl.startswith("ours exact"))
            for impl, (timing, _) in timed.items()]
    if missing is not None:
        rows.append(H.skipped(group=group, name="minibatch coupling", impl="torchcfm",
                              sizes=sizes, dtype="float32", why=missing))
    return rows


def _assignment_rows(quick, repeats):
    """The exact coupling alone at n = 256 and 1024 (8gaussians -> moons, squared distances): the
    three solvers of ``transport.optimal_permutation`` and POT ``ot.emd`` called directly
    (float64, as torchcfm calls it). Baseline: the default solver. Each row records the cost of
    its permutation."""
    import numpy as np
    import ot

    from flowjax_lab.transport._assignment import squared_distances

    out = []
    for n in (64,) if quick else (256, 1024):
        group, sizes = f"exact coupling n={n}", {"n": n, "d": 2}
        x0 = fl.datasets.sample("8gaussians", jax.random.key(4), n, dtype=jnp.float32)
        x1 = fl.datasets.sample("moons", jax.random.key(5), n, dtype=jnp.float32)
        solvers = {"ours default (network simplex, POT callback)": "network_simplex",
                   "ours Hungarian (scipy callback)": "hungarian",
                   "ours in XLA (auction)": "auction"}
        fns = {}
        for impl, solver in solvers.items():
            solve = jax.jit(functools.partial(fl.transport.optimal_permutation, solver=solver))
            fns[impl] = functools.partial(solve, x0, x1)
        cost = np.asarray(squared_distances(x0, x1), np.float64)
        weights = np.full(n, 1.0 / n)
        fns["POT ot.emd (float64), direct"] = lambda: ot.emd(weights, weights, cost).argmax(1)
        syncs = {"POT ot.emd (float64), direct": lambda o: o}
        for impl, (timing, perm) in H.time_interleaved(fns, repeats=repeats,
                                                       syncs=syncs).items():
            value = float(cost[np.arange(n), np.asarray(perm)].sum())
            out.append(H.row(group=group, name="exact coupling", impl=impl, timing=timing,
                             sizes=sizes, dtype="float32", baseline=impl.startswith("ours default"),
                             extra={"assignment_cost": value}))
    return out


def rows(quick: bool, repeats: int | None = None) -> list[dict]:
    repeats = repeats or (3 if quick else 5)
    return (_train_rows(quick, repeats) + _coupling_rows(quick, repeats)
            + _assignment_rows(quick, repeats))
