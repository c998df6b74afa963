"""The interaction field: chunked pair sums against dense ones, the radial fast path against
per-pair autodiff and float64, gradients in memory linear in n, gradient structure, invariances,
energy decrease along the flow, and collisions under singular kernels."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flowjax_lab as fl
from flowjax_lab import flows
from flowjax_lab.fields import Interaction, interaction_energy

KERNELS = {
    "gaussian": flows.GaussianKernel(scale=0.7),
    "log": flows.LogKernel(),
    "riesz": flows.RieszKernel(s=1.0),
    "power": flows.PowerLawKernel(a=2.0, b=0.5),
    "power-log": flows.PowerLawKernel(a=2.0, b=0.0),
    "anisotropic": lambda z: jnp.exp(-z[0] ** 2 - 0.5 * z[1] ** 2),  # not radial: generic path
}


def dense_energy(kernel, potential, x, w):
    """The energy with an explicit (n, n) matrix of pair values (the self pair masked)."""
    n = x.shape[0]
    off = ~jnp.eye(n, dtype=bool)
    z = jnp.where(off[..., None], x[:, None, :] - x[None, :, :], 1.0)
    pairs = jnp.where(off, jax.vmap(jax.vmap(kernel))(z), 0.0)
    return w @ jax.vmap(potential)(x) + 0.5 * w @ pairs @ w


def weights_for(key, n):
    w = jax.random.uniform(key, (n,), jnp.float64, 0.2, 1.0)
    return w / jnp.sum(w)


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_chunked_equals_dense_and_is_a_weighted_gradient(name, getkey):
    kernel, potential = KERNELS[name], flows.QuadraticPotential(0.5)
    n = 23  # not a multiple of the block edge
    x = jax.random.normal(getkey(), (n, 2))
    w = weights_for(getkey(), n)
    field = Interaction(kernel, potential, weights=w, chunk_size=5)
    dense = dense_energy(kernel, potential, x, w)
    np.testing.assert_allclose(field.energy(x), dense, rtol=1e-12)
    # velocity = -(1/w_i) dF/dx_i with F computed densely (an independent route)
    expected = -jax.grad(lambda y: dense_energy(kernel, potential, y, w))(x) / w[:, None]
    np.testing.assert_allclose(field(0.0, x), expected, rtol=1e-10, atol=1e-12)
    # the block edge does not change anything
    one_block = Interaction(kernel, potential, weights=w, chunk_size=n)
    np.testing.assert_allclose(field(0.0, x), one_block(0.0, x), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("name", ["gaussian", "riesz"])
def test_radial_fast_path_is_chosen_by_type_and_differentiates_like_the_dense_route(name,
                                                                                   getkey):
    kernel, n = KERNELS[name], 13
    x = jax.random.normal(getkey(), (n, 2))
    w = weights_for(getkey(), n)
    fast = Interaction(kernel, weights=w, chunk_size=4)
    assert fast._profile is not None  # a RadialKernel; a lambda hides the type (generic path)
    assert Interaction(lambda z: kernel(z))._profile is None
    # reverse mode through the velocity (second order in W) against the dense (n, n) route
    no_potential = lambda y: 0.0 * y[0]
    dense_velocity = lambda y: -jax.grad(dense_energy, argnums=2)(kernel, no_potential, y,
                                                                 w) / w[:, None]
    r = jax.random.normal(getkey(), x.shape)
    grad = jax.grad(lambda y: jnp.sum(fast(0.0, y) * r))(x)
    expected = jax.grad(lambda y: jnp.sum(dense_velocity(y) * r))(x)
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, expected, rtol=1e-10, atol=1e-12)


def test_float32_fast_path_is_accurate_against_float64(getkey):
    # The squared distances are summed from exact coordinate differences (no |x|^2 + |y|^2 -
    # 2 <x, y> cancellation, which cost up to 2e-2 per particle for Riesz): per particle ~1e-6,
    # and for Riesz the worst row's error (~3e-5, close pairs) is the generic path's too.
    x = 3.0 + jax.random.normal(getkey(), (600, 3))  # off the origin on purpose
    for kernel, tol in ((flows.GaussianKernel(0.5), 5e-6), (flows.RieszKernel(1.0), 1e-4)):
        field = Interaction(kernel, chunk_size=256)
        v64, v32 = field(0.0, x), field(0.0, x.astype(jnp.float32))
        assert v32.dtype == jnp.float32
        error = jnp.linalg.norm(v32.astype(v64.dtype) - v64, axis=1)
        assert float(jnp.max(error / jnp.linalg.norm(v64, axis=1))) < tol, kernel


def test_gradients_through_the_field_and_energy_need_memory_linear_in_n():
    # XLA's memory analysis of the compiled gradient at two sizes: the pair blocks are recomputed
    # in reverse mode, so quadrupling n leaves the temporaries about where they were (a kept
    # (n, n) residual would be 16 MiB at n = 2048).
    field = Interaction(flows.GaussianKernel(), chunk_size=128)
    losses = {"field": lambda x: jnp.sum(field(0.0, x) ** 2), "energy": field.energy}
    for name, loss in losses.items():
        temps = [jax.jit(jax.grad(loss)).lower(jnp.zeros((n, 3), jnp.float32)).compile()
                 .memory_analysis().temp_size_in_bytes for n in (512, 2048)]
        assert temps[1] < 2 * temps[0], (name, temps)  # linear growth allows 4x, quadratic 16x
        assert temps[1] < 2048 * 2048 * 4 / 8, (name, temps)


def test_energy_gradient_matches_finite_differences(getkey):
    kernel = flows.PowerLawKernel(a=2.0, b=0.0)
    x = jax.random.normal(getkey(), (9, 2))
    field = Interaction(kernel, flows.QuadraticPotential(), chunk_size=4)
    grad = jax.grad(field.energy)(x)
    direction = jax.random.normal(getkey(), x.shape)
    h = 1e-5
    fd = (field.energy(x + h * direction) - field.energy(x - h * direction)) / (2 * h)
    np.testing.assert_allclose(jnp.sum(grad * direction), fd, rtol=1e-7)


def test_uniform_weights_match_the_issue_formula(getkey):
    kernel = flows.GaussianKernel()
    x = jax.random.normal(getkey(), (11, 3))
    n = x.shape[0]
    diffs = x[:, None, :] - x[None, :, :]
    grads = jax.vmap(jax.vmap(jax.grad(kernel)))(diffs)  # smooth even kernel: grad W(0) = 0
    expected = -x - jnp.sum(grads, axis=1) / n
    field = Interaction(kernel, flows.QuadraticPotential(), chunk_size=4)
    np.testing.assert_allclose(field(0.0, x), expected, atol=1e-13)
    np.testing.assert_allclose(interaction_energy(x, kernel, flows.QuadraticPotential()),
                               field.energy(x), rtol=1e-13)


def test_permutation_equivariance(getkey):
    x = jax.random.normal(getkey(), (17, 2))
    w = weights_for(getkey(), 17)
    perm = jax.random.permutation(getkey(), 17)
    kernel, potential = flows.RieszKernel(0.5), flows.QuadraticPotential()
    v = Interaction(kernel, potential, weights=w, chunk_size=4)(0.0, x)
    vp = Interaction(kernel, potential, weights=w[perm], chunk_size=4)(0.0, x[perm])
    np.testing.assert_allclose(vp, v[perm], rtol=1e-12)
    e = Interaction(kernel, potential, weights=w, chunk_size=4).energy(x)
    ep = Interaction(kernel, potential, weights=w[perm], chunk_size=4).energy(x[perm])
    np.testing.assert_allclose(ep, e, rtol=1e-13)


def test_weighted_cloud_equals_duplicated_particles(getkey):
    # A particle of weight 2/(n+1) acts like two copies of weight 1/(n+1) each (smooth kernel).
    n = 10
    x = jax.random.normal(getkey(), (n, 2))
    w = jnp.full(n, 1 / (n + 1)).at[0].set(2 / (n + 1))
    kernel = flows.GaussianKernel(scale=0.8, strength=2.0)
    weighted = Interaction(kernel, weights=w, chunk_size=3)(0.0, x)
    duplicated = Interaction(kernel, chunk_size=3)(0.0, jnp.concatenate([x[:1], x]))
    np.testing.assert_allclose(weighted, duplicated[1:], atol=1e-13)


def test_divergence_is_the_trace_of_each_particles_jacobian(getkey):
    x = jax.random.normal(getkey(), (7, 2))
    field = Interaction(flows.PowerLawKernel(2.0, 0.5), flows.QuadraticPotential(jnp.diag(
        jnp.array([1.0, 3.0]))), chunk_size=3)
    jac = jax.jacfwd(lambda y: field(0.0, y))(x)  # (n, d, n, d)
    own = jnp.einsum("ikik->i", jac)
    np.testing.assert_allclose(field.divergence(0.0, x), own, rtol=1e-10)
    # log|z| is harmonic in 2-D: only the potential's Laplacian remains
    log_field = Interaction(flows.LogKernel(), flows.QuadraticPotential(), chunk_size=3)
    np.testing.assert_allclose(log_field.divergence(0.0, x), -2.0 * jnp.ones(7), atol=1e-12)


def test_energy_never_increases_along_the_flow(getkey):
    x0 = 2.0 * jax.random.normal(getkey(), (40, 2))
    field = Interaction(flows.PowerLawKernel(a=2.0, b=0.0), chunk_size=16)
    traj = fl.simulate(field, x0, t1=2.0, saveat=41, rtol=1e-8, atol=1e-8)
    assert int(traj.status) == fl.Status.SUCCESS
    energy = flows.energy_along(field, traj.xs)
    assert bool(jnp.all(jnp.diff(energy) <= 1e-10))
    assert float(energy[0] - energy[-1]) > 0.1
    # dF/dt = -dissipation, by central differences of the saved energies
    dt = traj.ts[1] - traj.ts[0]
    rate = (energy[2:] - energy[:-2]) / (2 * dt)
    diss = jax.vmap(lambda y: flows.dissipation(field, y))(traj.xs[1:-1])
    np.testing.assert_allclose(rate, -diss, rtol=5e-3, atol=1e-4)


def test_collision_under_a_singular_kernel_is_reported():
    # Two particles attracted by W = +log|z| at +-a: a' = -1/(4a). One Euler step of size
    # dt = 4 a^2 lands exactly on the collision; the next evaluation is singular.
    attract = flows.LogKernel(strength=-1.0)
    x0 = jnp.array([[0.5], [-0.5]])
    traj = fl.simulate(Interaction(attract), x0, t1=2.0, steps=2, solver="euler", saveat=3)
    np.testing.assert_allclose(traj.xs[1], jnp.zeros((2, 1)), atol=0)
    assert int(traj.status) == fl.Status.NONFINITE
    # with adaptive steps the solver stalls at the collision time t = 2 a^2 = 0.5: not a success
    traj = fl.simulate(Interaction(attract), x0, t1=1.0, max_steps=256)
    assert int(traj.status) != fl.Status.SUCCESS
    # coincident particles under a repulsive singular kernel
    x1 = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    traj = fl.simulate(Interaction(flows.RieszKernel(1.0)), x1, t1=0.1, steps=4, solver="heun")
    assert int(traj.status) == fl.Status.NONFINITE
    with pytest.raises(RuntimeError, match="NaN or inf"):
        traj.raise_on_failure()


def test_jit_and_grad_through_parameters(getkey):
    x = jax.random.normal(getkey(), (12, 2))

    @jax.jit
    def energy_of_scale(scale):
        return Interaction(flows.GaussianKernel(scale=scale), chunk_size=5).energy(x)

    h = 1e-5
    fd = (energy_of_scale(0.8 + h) - energy_of_scale(0.8 - h)) / (2 * h)
    np.testing.assert_allclose(jax.grad(energy_of_scale)(0.8), fd, rtol=1e-7)
