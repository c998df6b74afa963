"""Learned flow matching: conditional paths, couplings, the loss, Gaussian recovery, likelihood."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import flowjax_lab as fl

COV1 = jnp.array([[2.0, 0.6], [0.6, 0.5]])


def gaussian1(key, n):
    return jax.random.normal(key, (n, 2)) @ jnp.linalg.cholesky(COV1).T


def test_conditional_velocity_is_the_time_derivative_of_the_path(getkey):
    """u_t = d/dt x_t for fixed (x0, x1, eps), for straight and Brownian-bridge paths."""
    x0, x1 = jax.random.normal(getkey(), (6, 2)), jax.random.normal(getkey(), (6, 2))
    key, t = getkey(), jnp.linspace(0.1, 0.9, 6)
    for bridge, sigma in ((False, 0.0), (False, 0.3), (True, 0.7)):
        path = lambda s: fl.learn.conditional_path(key, x0, x1, s, sigma=sigma, bridge=bridge)
        h = 1e-6
        derivative = (path(t + h)[0] - path(t - h)[0]) / (2 * h)
        np.testing.assert_allclose(path(t)[1], derivative, rtol=1e-6, atol=1e-6)
    # The bridge is pinned at both ends; constant smoothing is not.
    ends = jnp.array([0.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    xt, _ = fl.learn.conditional_path(key, x0, x1, ends, sigma=0.7, bridge=True)
    np.testing.assert_allclose(xt, jnp.where(ends[:, None] == 0, x0, x1), atol=1e-6)


def test_ot_coupling_is_the_optimal_permutation(getkey):
    x0, x1 = jax.random.normal(getkey(), (6, 2)), 2 + jax.random.normal(getkey(), (6, 2))
    _, paired = jax.jit(lambda a, b: fl.learn.couple(getkey(), a, b, "ot"))(x0, x1)
    # A permutation of the rows of x1 ...
    order = lambda a: a[jnp.lexsort(a.T[::-1])]
    np.testing.assert_array_equal(order(paired), order(x1))
    # ... of minimal cost among all 720.
    a, b = np.asarray(x0), np.asarray(x1)
    costs = [np.sum((a - b[list(p)]) ** 2) for p in itertools.permutations(range(6))]
    assert float(jnp.sum((x0 - paired) ** 2)) == pytest.approx(min(costs), rel=1e-12)
    _, same = fl.learn.couple(getkey(), x0, x1, "independent")
    np.testing.assert_array_equal(same, x1)


def test_entropic_coupling_samples_a_plan_with_uniform_marginals(getkey):
    """Partners are rows of x1; over many draws each x1 row is used 1/n of the time; the
    transport cost moves from the OT cost (small sigma) to the independent cost (large sigma)."""
    n, draws = 8, 400
    x0, x1 = jax.random.normal(getkey(), (n, 2)), jax.random.normal(getkey(), (n, 2)) + 1
    keys = jax.random.split(getkey(), draws)
    pair = jax.jit(jax.vmap(lambda k: fl.learn.couple(k, x0, x1, "entropic", sigma=1.0)[1]))
    paired = pair(keys)  # (draws, n, d)
    index = jnp.argmin(jnp.sum((paired[..., None, :] - x1[None, None]) ** 2, -1), axis=-1)
    np.testing.assert_allclose(paired, x1[index], atol=1e-12)
    counts = np.bincount(np.asarray(index).ravel(), minlength=n) / (draws * n)
    assert np.max(np.abs(counts - 1 / n)) < 4 * np.sqrt((1 / n) / (draws * n))
    cost = lambda sigma: float(jnp.mean(jnp.sum((x0 - fl.learn.couple(
        getkey(), x0, x1, "entropic", sigma=sigma)[1]) ** 2, -1)))
    ot = float(jnp.mean(jnp.sum((x0 - fl.learn.couple(getkey(), x0, x1, "ot")[1]) ** 2, -1)))
    independent = float(jnp.mean(jnp.sum((x0[:, None] - x1[None]) ** 2, -1)))
    assert cost(0.05) == pytest.approx(ot, rel=1e-6)
    assert abs(np.mean([cost(30.0) for _ in range(20)]) - independent) < 0.2 * independent


def test_coupling_status_reports_an_unconverged_entropic_plan(getkey):
    # Modes at radius 12 with sigma = 0.1 (regularisation 0.02 against costs near 200): the
    # Sinkhorn solve stops at its iteration limit on every batch; at sigma = 1 it converges; the
    # other couplings always succeed.
    def ring(key, n):
        k1, k2 = jax.random.split(key)
        angle = jax.random.randint(k1, (n,), 0, 8).astype(float) * (jnp.pi / 4)
        return 12 * jnp.stack([jnp.cos(angle), jnp.sin(angle)], 1) + jax.random.normal(k2, (n, 2))

    keys = jax.random.split(getkey(), 4)

    def statuses(**options):
        loss = fl.learn.FlowMatchingLoss(functools.partial(fl.datasets.sample, "gaussian"), ring,
                                         batch_size=64, **options)
        return np.asarray(jax.vmap(loss.coupling_status)(keys))

    assert np.all(statuses(coupling="entropic", sigma=0.1) != fl.Status.SUCCESS)
    assert np.all(statuses(coupling="entropic", sigma=1.0) == fl.Status.SUCCESS)
    assert np.all(statuses(coupling="ot") == fl.Status.SUCCESS)


def test_loss_at_the_exact_field_is_the_conditional_variance(getkey):
    """At v* = A_t x the loss equals int_0^1 tr(Cov(X1 - X0) - A_t cov_t A_t^T) dt, its minimum,
    and any perturbation of v* raises it."""
    field = fl.fields.GaussianFlowMatching(jnp.eye(2), COV1)
    source = lambda k, n: jax.random.normal(k, (n, 2))
    loss = fl.learn.FlowMatchingLoss(source, gaussian1, batch_size=20000)
    ts = jnp.linspace(0, 1, 401)

    def residual(t):
        cov_t, a_t = fl.theory.flow_matching_gaussian(jnp.eye(2), COV1, t)
        return jnp.trace(jnp.eye(2) + COV1 - a_t @ cov_t @ a_t.T)

    minimum = float(jax.scipy.integrate.trapezoid(jax.vmap(residual)(ts), ts))
    key = getkey()
    value = float(jax.jit(loss)(field, key))
    assert value == pytest.approx(minimum, rel=0.03)
    perturbed = lambda t, x, a: field(t, x) + 0.3 * x[:, ::-1]
    assert float(loss(perturbed, key)) > value + 0.05


@pytest.mark.slow
def test_exact_gaussian_pushforward_likelihood_forward_and_backward(getkey):
    """For the exact linear field, the density carried forward from N(0, I) and the likelihood
    computed backwards both equal the N(0, COV1) density."""
    field = fl.fields.GaussianFlowMatching(jnp.eye(2), COV1)
    source = fl.Gaussian.standard(2)
    x0 = source.sample(getkey(), 64)
    forward = fl.simulate(field, x0, log_density="exact", logp0=source.log_prob(x0), rtol=1e-8,
                          atol=1e-8)
    target = fl.Gaussian(jnp.zeros(2), COV1)
    np.testing.assert_allclose(forward.logp[-1], target.log_prob(forward.x1), rtol=1e-6)
    x1 = target.sample(getkey(), 64)
    logp, traj = fl.learn.log_likelihood(field, x1, source.log_prob, rtol=1e-8, atol=1e-8)
    assert int(traj.status) == 0
    np.testing.assert_allclose(logp, target.log_prob(x1), rtol=1e-6)


@pytest.mark.slow
def test_generate_then_likelihood_round_trip_for_a_network(getkey):
    # A smooth activation: SELU's kink makes the divergence discontinuous and costs accuracy.
    model = fl.fields.MLPField(2, width=16, depth=2, activation=jnp.tanh, key=getkey())
    source = fl.Gaussian.standard(2)
    x0 = source.sample(getkey(), 32)
    forward = fl.simulate(model, x0, log_density="exact", logp0=source.log_prob(x0), rtol=1e-8,
                          atol=1e-8)
    back = fl.learn.generate(model, x0, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(back.x1, forward.x1, rtol=1e-5, atol=1e-5)
    logp, _ = fl.learn.log_likelihood(model, forward.x1, source.log_prob, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(logp, forward.logp[-1], rtol=1e-6, atol=1e-6)
    euler = fl.learn.generate(model, x0, steps=7)
    assert int(euler.stats["num_field_evals"]) == 7


@pytest.mark.slow
def test_learned_gaussian_flow_matching_recovers_a_t(getkey):
    """An MLP trained by I-CFM from N(0, I) to N(0, COV1) recovers the linear field A_t."""
    source = lambda k, n: jax.random.normal(k, (n, 2))
    loss = fl.learn.FlowMatchingLoss(source, gaussian1, batch_size=512)
    model = fl.fields.MLPField(2, width=64, depth=3, activation=jax.nn.selu, key=getkey())
    before = model
    optimizer = optax.adam(optax.cosine_decay_schedule(3e-3, 1500, 0.01))
    result = fl.learn.fit(loss, model, optimizer, getkey(), steps=1500, chunk=500,
                          progress=False)
    assert result.ok

    def matrix_error(net, t):
        cov_t, a_t = fl.theory.flow_matching_gaussian(jnp.eye(2), COV1, t)
        x = jax.random.normal(jax.random.key(7), (4000, 2)) @ jnp.linalg.cholesky(cov_t).T
        fitted = jnp.linalg.lstsq(x, net(t, x))[0].T
        return float(fl.metrics.relative_error(fitted, a_t))

    times = (0.1, 0.5, 0.9)
    errors = [matrix_error(result.model, t) for t in times]  # about 0.03-0.06 when written
    assert max(errors) < 0.1, errors
    assert max(errors) < max(matrix_error(before, t) for t in times) / 5


def test_ot_cfm_trains_inside_fit(getkey):
    """OT-CFM's host assignment runs inside fit's jitted scan; the loss decreases."""
    loss = fl.learn.FlowMatchingLoss(functools.partial(fl.datasets.sample, "8gaussians"),
                                     functools.partial(fl.datasets.sample, "moons"),
                                     batch_size=64, coupling="ot")
    model = fl.fields.MLPField(2, width=32, depth=2, activation=jax.nn.selu, key=getkey())
    result = fl.learn.fit(loss, model, optax.adam(3e-3), getkey(), steps=200, chunk=100,
                          progress=False)
    assert result.ok
    assert np.mean(result.losses[-20:]) < 0.5 * np.mean(result.losses[:20])


@pytest.mark.slow
def test_path_metrics_on_straight_and_curved_flows(getkey):
    """Straight paths (one data point): the kinetic energy is W2^2 and NPE is 0, one Euler step
    suffices. The Gaussian FM flow: energy from the solve equals the finite-difference energy of
    its saved paths and exceeds the Bures W2^2 (FM paths are not optimal)."""
    x0 = jax.random.normal(getkey(), (50, 2))
    y = jnp.array([[3.0, -1.0]])
    straight = fl.fields.ExactFlowMatching(y)
    energy, traj = fl.metrics.kinetic_energy(straight, x0, steps=10)
    w2 = fl.metrics.sample_w2(x0, jnp.broadcast_to(y, x0.shape))
    np.testing.assert_allclose(energy, w2**2, rtol=1e-10)
    assert float(fl.metrics.normalized_path_energy(energy, w2)) < 1e-9
    nfe = fl.metrics.nfe_for_w2(straight, x0, traj.x1, 1e-6, steps=(1, 2))
    assert nfe["nfe"] == 1

    field = fl.fields.GaussianFlowMatching(jnp.eye(2), COV1)
    x0 = jax.random.normal(getkey(), (2000, 2))
    energy, traj = fl.metrics.kinetic_energy(field, x0, saveat=201, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(energy, fl.metrics.path_energy(traj.xs, traj.ts), rtol=1e-3)
    monge = fl.theory.bures_monge_map(jnp.eye(2), COV1)
    optimal = fl.metrics.mean_displacement(x0, x0 @ monge)  # W2^2 on the same sample
    assert float(energy) > 1.02 * float(optimal)
