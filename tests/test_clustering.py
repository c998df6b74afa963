"""Clustering measures on constructed clouds, and the energy the sphere dynamics increases."""

import jax
import jax.numpy as jnp
import numpy as np

import flowjax_lab as fl
from flowjax_lab.fields import Attention


def clusters(key, sizes, d=3, spread=1e-3):
    """Tokens near `len(sizes)` orthogonal directions, `sizes[c]` of them at direction c."""
    centres = jnp.eye(d)[jnp.repeat(jnp.arange(len(sizes)), jnp.array(sizes),
                                    total_repeat_length=sum(sizes))]
    return fl.clustering.on_sphere(centres + spread * jax.random.normal(key, centres.shape))


def test_counts_and_fraction_on_constructed_clusters(getkey):
    sizes = (5, 3, 1)
    x = clusters(getkey(), sizes)
    perm = jax.random.permutation(getkey(), x.shape[0])
    n = sum(sizes)
    pairs = sum(s * (s - 1) / 2 for s in sizes) / (n * (n - 1) / 2)
    for cloud in (x, x[perm]):
        assert int(fl.clustering.cluster_count(cloud)) == 3
        np.testing.assert_allclose(fl.clustering.clustered_fraction(cloud), pairs, rtol=1e-12)
    labels = fl.clustering.cluster_labels(x)
    np.testing.assert_array_equal(labels, np.repeat([0, 5, 8], sizes))
    # a chain of tokens 0.1 rad apart is one cluster at cos 0.99 (single linkage), not at 0.999
    angles = 0.1 * jnp.arange(6.0)
    chain = jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=1)
    assert int(fl.clustering.cluster_count(chain, 0.99)) == 1
    assert int(fl.clustering.cluster_count(chain, 0.999)) == 6


def test_sphere_dynamics_is_n_times_the_energy_gradient_and_increases_it(getkey):
    beta, n, d = 2.0, 16, 3
    x = fl.clustering.on_sphere(jax.random.normal(getkey(), (n, d)))
    field = Attention(beta * jnp.eye(d), jnp.eye(d), jnp.eye(d), normalization="mean",
                      sphere=True)
    grad = jax.grad(lambda y: fl.clustering.attention_energy(y, beta))(x)
    tangent = grad - jnp.sum(grad * x, axis=1, keepdims=True) * x
    np.testing.assert_allclose(field(0.0, x), n * tangent, rtol=1e-12, atol=1e-14)
    xs = fl.simulate(field, x, t1=4.0, saveat=9, rtol=1e-8, atol=1e-8).xs
    energy = jax.vmap(lambda y: fl.clustering.attention_energy(y, beta))(xs)
    assert bool(jnp.all(jnp.diff(energy) > 0)), energy
    assert float(fl.clustering.clustered_fraction(xs[-1])) > float(
        fl.clustering.clustered_fraction(xs[0]))
