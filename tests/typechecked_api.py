"""The public API called once at tiny sizes with its jaxtyping annotations checked at run time.

Run by tests/test_typechecked.py in one subprocess: ``python tests/typechecked_api.py`` imports
the public modules of flowjax_lab under jaxtyping's import hook with beartype (PEP 484's numeric
tower on: an ``int`` passes as a ``float``), so every annotated argument and return in them is
checked, internal calls included. The valid calls (JAX and NumPy arrays, float32 and float64,
Python lists and numbers) run inside one ``jax.eval_shape``: jaxtyping checks at trace time, so
nothing is compiled. Not called: ``metrics.nfe_for_w2``, ``theory.diffusion_errors`` and
``theory.diffusion_sampler_law``, which read concrete values and would compile op by op (seconds).
Then calls that break an annotation, eagerly and under ``jit``, must raise ``TypeCheckError``.
``--no-hook`` makes the valid calls without the hook (to measure its overhead). Prints one line
of JSON: seconds spent importing and calling, the number of calls and the process's CPU time.
"""

import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

HOOK = "--no-hook" not in sys.argv
CHECKER = "beartype.beartype(conf=beartype.BeartypeConf(is_pep484_tower=True))"
# The public API's modules (with their private submodules); not the experiments, learn, report or
# the internal helpers, whose decoration would only slow the import.
CHECKED = [f"flowjax_lab.{name}" for name in (
    "_simulate", "_simulate_sde", "_trajectory", "clustering", "datasets", "diffusion", "fields",
    "flows", "learn", "measures", "metrics", "theory", "transport")]

start = time.perf_counter()
if HOOK:
    from jaxtyping import install_import_hook

    with install_import_hook(CHECKED, CHECKER):
        import flowjax_lab as fl
else:
    import flowjax_lab as fl
from flowjax_lab import (  # noqa: E402
    clustering,
    datasets,
    diffusion,
    fields,
    flows,
    learn,
    measures,
    metrics,
    theory,
    transport,
)

import_s = time.perf_counter() - start
calls = 0


def call(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, counted."""
    global calls
    calls += 1
    return fn(*args, **kwargs)


rng = np.random.default_rng(0)
X = rng.normal(size=(4, 2))  # NumPy float64, (n, d)
Y = rng.normal(size=(5, 2)).astype(np.float32)  # another size, another dtype
COV1 = np.eye(2)
MEAN = [0.5, -1.0]  # a Python list
GRID = np.linspace(1.0, 0.1, 4)  # a sampler's decreasing times
PATH = np.linspace(0.0, 1.0, 3)[:, None, None] * np.ones((3, 4, 2))  # (T, n, d)


def valid_calls():
    """Every annotated public function on valid inputs, traced (no XLA compilation): the
    annotations are checked on the arguments as given (lists, NumPy, Python numbers) and on the
    traced results."""
    keys = iter(jax.random.split(jax.random.key(0), 16))
    x = jnp.asarray(X)
    x2 = x[::-1] + 1.0
    y = jnp.asarray(Y)
    cov0 = jnp.array([[2.0, 0.3], [0.3, 1.0]])
    cov1, mean = COV1, MEAN
    ts = jnp.linspace(0.0, 1.0, 3)
    a = jnp.full(4, 0.25)
    vp = diffusion.VP()
    mlp = fields.MLPField(2, width=4, depth=1, key=next(keys))

    # the top level and the fields
    call(mlp, 0.5, x)
    traj = call(fl.simulate, mlp, X, t0=0, t1=1, steps=2, solver="euler", saveat=3,
                log_density="exact", logp0=np.zeros(4))
    call(fl.simulate_sde, mlp, lambda t, z, args: 0.1 * z, x, next(keys), steps=2, saveat=ts)
    attention = fields.Attention(jnp.eye(2), jnp.eye(2), jnp.eye(2))
    call(attention, 0.0, x)
    call(fields.residual_transformer, attention, x, 2)
    call(fields.PiecewiseConstant(jnp.ones((2, 2)), 0, 1), 0.3)
    exact = fields.ExactFlowMatching(y, np.full(5, 0.2))
    call(exact, 0.5, x)
    for method in (exact.divergence, exact.denoiser, exact.score, exact.log_prob):
        call(method, 0.5, x)
    gaussian_fm = fields.GaussianFlowMatching(cov0, cov1)
    call(gaussian_fm, 0.5, x)
    call(gaussian_fm.divergence, 0.5, x)
    call(gaussian_fm.matrix, 0.5)
    interaction = fields.Interaction(flows.GaussianKernel(scale=1), flows.QuadraticPotential(),
                                     weights=a)
    call(interaction, 0.0, x)
    call(interaction.divergence, 0.0, x)
    call(interaction.energy, x)
    call(fields.interaction_energy, x, flows.PowerLawKernel(a=2, b=0))
    call(fields.Interaction(flows.RieszKernel(), flows.QuadraticPotential(cov0, jnp.ones(2))),
         0.0, x)
    call(fields.Interaction(flows.LogKernel()), 0.0, x)
    neurons = jnp.ones((3, 3))
    call(fields.LinearNetworkField(np.eye(2), [[0.5, 1.0]]), 0.0, neurons)
    call(fields.LinearNetworkField.from_data(x, x[:, 0]), 0.0, neurons)
    call(fields.LinearNetworkField(np.eye(2), [[0.5, 1.0]], risk_scale=1).risk, neurons)
    two_layer = fields.TwoLayerMeanField(x, x[:, 0])
    call(two_layer, 0.0, neurons)
    call(two_layer.risk, neurons)
    otflow = fields.OTFlowPotential(2, width=4, rank=2, key=next(keys))
    call(otflow, 0.5, x)
    call(otflow.divergence, 0.5, x)
    call(fields.UNetField(16, channels=2, frequencies=1, key=next(keys)), 0.5, jnp.ones((1, 16)))
    pointwise = fields.pointwise(lambda t, p, args: -p)
    call(pointwise, 0.0, x)
    call(pointwise.divergence, 0.0, x)

    # transport
    result = call(transport.sinkhorn, x, y, epsilon=0.5)
    for method in (result.plan, result.cost_matrix, result.transport_cost, result.barycentric_map):
        call(method)
    call(transport.sinkhorn, X, y, a=a, b=[0.2] * 5, lse_mode=True)
    call(transport.sinkhorn_divergence, x, y, epsilon=0.5, return_status=True)
    call(transport.w2, x, x2)
    call(transport.w2, x, y, epsilon=0.5, return_method=True, return_status=True)
    call(transport.gaussian_w2_squared, mean, cov0, jnp.zeros(2), cov1)
    call(transport.gaussian_monge_map, cov0, cov1)
    call(transport.minibatch_coupling, x, x2)
    call(transport.minibatch_coupling, x, x2, epsilon=0.5, key=next(keys), return_status=True)
    call(transport.optimal_permutation, x, x2)
    call(transport.linear_assignment, np.arange(9.0).reshape(3, 3) % 4)

    # metrics and measures
    call(metrics.covariance, x)
    call(metrics.relative_error, cov0, np.eye(2))
    call(metrics.path_energy, traj.xs, traj.ts)
    call(metrics.straightness, PATH, [0.0, 0.5, 1.0])
    call(metrics.mean_displacement, x, x2)
    call(metrics.sample_w2, x, x2)
    call(metrics.kinetic_energy, mlp, x, steps=2)
    call(metrics.normalized_path_energy, 1.0, jnp.asarray(0.9))
    call(metrics.median_bandwidth, x, y)
    call(metrics.mmd_squared, x, y, bandwidth="median")
    call(metrics.mmd_squared, x, y, bandwidth=2, unbiased=False)
    call(metrics.energy_distance, x, y)
    empirical = measures.Empirical(x, a)
    for method in (empirical.mean, empirical.cov):
        call(method)
    call(empirical.sample, next(keys), 3)
    normal = measures.Gaussian(mean, cov0)
    call(normal.sample, next(keys), 3)
    call(normal.log_prob, x)
    call(measures.Gaussian.standard(2, jnp.float32).log_prob, y)
    call(measures.isotropic_log_prob, x, jnp.zeros(2), 2.0)

    # theory
    heads = jnp.ones((2, 1, 2))
    call(theory.attention_velocity_matrix, cov0, jnp.eye(2), jnp.eye(2), jnp.eye(2))
    call(theory.attention_covariance, cov0, heads, heads, jnp.broadcast_to(jnp.eye(2), (2, 2, 2)),
         ts)
    call(theory.attention_covariance_identity, cov0, [[1.0, 0.0]], [[0.0, 1.0]], ts)
    call(theory.attention_covariance_identity, cov0, [[1.0, 0.0]], [[0.0, 1.0]], ts + 1, t0=1)
    call(theory.bures_monge_map, cov0, cov1)
    call(theory.bures_geodesic, cov0, cov1, 0.5)
    call(theory.bures_w2_squared, mean, cov0, np.zeros(2), cov1)
    call(theory.diffusion_covariance, cov0, 0.8, 0.6)
    call(theory.gaussian_score, x, mean, cov0)
    call(theory.gaussian_mixture_score, x, jnp.zeros((3, 2)), jnp.broadcast_to(cov0, (3, 2, 2)),
         jnp.full(3, 1 / 3))
    call(theory.diffusion_sampler_covariance, cov0, cov1, GRID, vp.alpha, vp.sigma, sampler="ddim")
    call(theory.flow_matching_gaussian, cov0, cov1, 0.5)
    call(theory.flow_matching_map, cov0, cov1, 1)
    call(theory.heat_covariance, cov0, 0.5)
    call(theory.gaussian_mmd_squared, mean, cov0, jnp.zeros(2), cov1, bandwidth=1)
    call(theory.linear_network_covariance, np.eye(3), np.eye(2), [[0.5, 1.0]], ts)
    call(theory.linear_network_covariance, np.eye(3), np.eye(2), [[0.5, 1.0]], ts + 0.5,
         risk_scale=0.5, t0=np.float64(0.5))

    # flows, clustering, data sets
    call(flows.energy_along, interaction, traj.xs)
    call(flows.dissipation, interaction, x)
    call(flows.jko_step, interaction.energy, x, 0.1, weights=a, max_steps=8)
    call(flows.jko, interaction.energy, x, 0.1, 2, max_steps=8)
    call(flows.langevin, x, next(keys), potential=flows.QuadraticPotential(2.0), steps=2, saveat=2)
    sphere = clustering.on_sphere(x)
    call(clustering.clustered_fraction, sphere)
    call(clustering.cluster_labels, sphere, 0.5)
    call(clustering.cluster_count, sphere)
    call(clustering.attention_energy, sphere, 1)
    call(datasets.sample, "moons", next(keys), 8)
    call(datasets.sample_labeled, "mixture", next(keys), 8, dtype=jnp.float32)
    call(datasets.load, "iris")
    call(diffusion.time_grid, vp, 4)

    # learn
    call(learn.couple, next(keys), X, x2, "ot")
    call(learn.conditional_path, next(keys), x, x2, np.full(4, 0.5), sigma=0.1)
    call(learn.generate, mlp, X, steps=2)
    call(learn.log_likelihood, mlp, x, measures.Gaussian.standard(2).log_prob, steps=2)
    classifier = learn.NeuralODEClassifier(2, 3, width=4, steps=2, key=next(keys))
    call(classifier.flow, X)
    call(learn.classification_loss, classifier, x, [0, 1, 2, 0])
    call(learn.accuracy, classifier, X, np.array([0, 1, 2, 0]))
    call(learn.CNF(2, width=4, steps=2, key=next(keys)).log_prob, x)
    call(learn.OTFlow(2, width=4, rank=2, steps=2, key=next(keys)).log_prob, x)
    call(learn.velocity_error, mlp, mlp, X)
    call(diffusion.EmpiricalScore(vp, y), 0.5, x)


start = time.perf_counter()
jax.eval_shape(valid_calls)
calls_s = time.perf_counter() - start


def refused(fn, *args, **kwargs) -> None:
    """``fn(*args, **kwargs)`` must fail jaxtyping's check (not a check of the function)."""
    from jaxtyping import TypeCheckError

    try:
        fn(*args, **kwargs)
    except TypeCheckError:
        return
    raise AssertionError(f"{fn.__qualname__} passed a call that breaks its annotations")


if HOOK:
    refused(metrics.covariance, np.ones(3))  # (n,) for a cloud (n, d)
    refused(transport.sinkhorn_divergence, X, np.ones((5, 3)))  # d = 2 and 3
    refused(transport.gaussian_w2_squared, MEAN, np.eye(3), MEAN, COV1)  # mean (2,), cov 3 x 3
    refused(measures.Empirical, X, np.full(5, 0.2))  # 4 points, 5 weights
    refused(metrics.covariance, X.astype(np.complex64))  # complex is not real
    refused(learn.couple, jax.random.key(0), X, np.ones((4, 3)))  # d = 2 and 3
    refused(learn.accuracy, learn.NeuralODEClassifier(2, 3, width=4, steps=2,
                                                    key=jax.random.key(0)),
            X, np.zeros(4, np.float32))  # float labels
    # under jit the checks run when the function is traced
    refused(jax.jit(clustering.on_sphere), np.ones(3))
    refused(jax.jit(lambda p, q: metrics.energy_distance(p, q)), X, np.ones((5, 3)))

print(json.dumps({"hook": HOOK, "import_s": round(import_s, 2), "calls_s": round(calls_s, 2),
                  "calls": calls, "cpu_s": round(time.process_time(), 2)}))
