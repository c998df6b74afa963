"""Measures of clustering of tokens on the sphere (Geshkovski et al., "A mathematical perspective
on Transformers"): clustered pairs, number of clusters, and the interaction energy that the
attention dynamics on the sphere increases.

All of them take a cloud `(n, d)` and build the `(n, n)` Gram matrix: they are meant for the
moderate n of clustering studies, not for the n of a benchmark.
"""

import jax
import jax.numpy as jnp

from . import _checks
from ._deprecated import aliases
from ._types import Array, Count, Labels, Particles, ParticlesLike, Scalar, ScalarLike


def _cosines(x) -> Array:
    u = x / jnp.linalg.norm(x, axis=-1, keepdims=True)
    return u @ u.T


def _threshold(threshold):
    return _checks.fail_if(_checks.scalar(threshold, "threshold"),
                           lambda t: jnp.abs(jnp.asarray(t)) > 1,
                           "`threshold` must be a cosine in [-1, 1].")


def clustered_fraction(x: ParticlesLike, threshold: ScalarLike = 0.99) -> Scalar:
    """The fraction of token pairs ``i < j`` whose cosine is at least `threshold`: the
    probability that two distinct tokens drawn at random have clustered. `x` `(n, d)`, n >= 2."""
    x = _checks.particles(x, "x")
    if x.shape[0] < 2:
        raise ValueError(f"`x` must hold at least two tokens, got shape {tuple(x.shape)}.")
    close = _cosines(x) >= jnp.asarray(_threshold(threshold), x.dtype)
    n = x.shape[0]
    pairs = (jnp.sum(close) - jnp.trace(close)).astype(x.dtype) / 2
    return pairs / (n * (n - 1) / 2)


def cluster_labels(x: ParticlesLike, threshold: ScalarLike = 0.99) -> Labels:
    """Cluster labels `(n,)` (int): the connected components of the graph linking tokens whose
    cosine is at least `threshold` (single linkage); each label is the smallest index in its
    component."""
    x = _checks.particles(x, "x")
    close = _cosines(x) >= jnp.asarray(_threshold(threshold), x.dtype)
    n = x.shape[0]

    def spread(state):
        labels, _ = state
        new = jnp.min(jnp.where(close, labels[None, :], n), axis=1)
        return new, jnp.any(new != labels)

    labels, _ = jax.lax.while_loop(lambda s: s[1], spread, (jnp.arange(n), jnp.array(True)))
    return labels


def cluster_count(x: ParticlesLike, threshold: ScalarLike = 0.99) -> Count:
    """The number of clusters (connected components at cosine `threshold`), an int scalar."""
    labels = cluster_labels(x, threshold)
    return jnp.sum(labels == jnp.arange(labels.shape[0]))


def attention_energy(x: ParticlesLike, beta: ScalarLike) -> Scalar:
    """``E_beta(x) = 1 / (2 beta n^2) sum_{i,j} exp(beta <x_i, x_j>)`` for tokens `(n, d)` (on
    the unit sphere for its meaning; not checked). The attention dynamics on the sphere with
    ``Q = beta I, K = V = I`` and "mean" normalisation is ``dx_i/dt = n grad_{x_i} E_beta``
    (projected on the sphere), so E_beta increases along it."""
    x = _checks.particles(x, "x")
    beta = _checks.positive(beta, "beta")
    beta = jnp.asarray(beta, x.dtype)
    n = x.shape[0]
    return jnp.sum(jnp.exp(beta * (x @ x.T))) / (2 * beta * n**2)


def on_sphere(x: ParticlesLike) -> Particles:
    """`x` `(n, d)` with every row scaled to unit norm."""
    x = _checks.particles(x, "x")
    return x / jnp.linalg.norm(x, axis=-1, keepdims=True)


__getattr__ = aliases(globals(), {"interaction_energy": "attention_energy"})
