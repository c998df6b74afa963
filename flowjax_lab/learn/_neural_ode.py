"""Neural ODE classifiers (Chen et al. 2018) with zero-padding augmentation (Dupont et al. 2019).

Features ``x (n, d)`` are padded with ``augment`` zero channels, moved by a learned field
``dh/dt = v(t, h)`` on [0, 1] and classified by an affine head on the terminal state. Without
augmentation the feature map is a homeomorphism of R^d, so nested classes (a ring inside a ring)
cannot become linearly separable; one extra dimension removes the obstruction.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from .. import _checks
from .._simulate import simulate
from .._trajectory import Trajectory
from .._types import Array, Key, LabelsLike, ParticlesLike, Scalar
from ..fields._neural import MLPField


def _labels(labels, n: int, classes: int):
    """Integer labels of shape ``(n,)`` in ``[0, classes)``."""
    labels = jnp.asarray(labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"`labels` must be integers, got dtype {labels.dtype}.")
    if labels.shape != (n,):
        raise ValueError(f"`labels` must have shape ({n},), got {tuple(labels.shape)}.")
    return _checks.fail_if(labels, lambda y: jnp.any((y < 0) | (y >= classes)),
                           f"`labels` must lie in [0, {classes}).")


class NeuralODEClassifier(eqx.Module):
    """Logits ``W h(1) + c`` where ``h`` solves ``dh/dt = v(t, h)``, ``h(0) = [x, 0]``.

    **Arguments:**
    - `dim`: input dimension d; `classes`: number of classes.
    - `augment`: number of zero channels appended to the input (0 = plain neural ODE).
    - `width`, `depth`: the field's MLP (see [`MLPField`][]).
    - `solver`, `steps`: how ``simulate`` integrates during training (fixed steps by default).
    - `key`: PRNG key; `dtype`: parameter dtype.
    """

    field: MLPField
    head: eqx.nn.Linear
    dim: int = eqx.field(static=True)
    augment: int = eqx.field(static=True)
    solver: str = eqx.field(static=True)
    steps: int | None = eqx.field(static=True)

    def __init__(self, dim: int, classes: int, *, augment: int = 0, width: int = 32,
                 depth: int = 2, solver: str = "rk4", steps: int | None = 10, key: Key,
                 dtype=None):
        self.dim = _checks.positive_int(dim, "dim")
        self.augment = _checks.positive_int(augment, "augment", minimum=0)
        classes = _checks.positive_int(classes, "classes", minimum=2)
        self.solver = solver
        self.steps = None if steps is None else _checks.positive_int(steps, "steps")
        k_field, k_head = jax.random.split(_checks.key(key))
        width_total = dim + self.augment
        self.field = MLPField(width_total, width=width, depth=depth, key=k_field, dtype=dtype)
        self.head = eqx.nn.Linear(width_total, classes, key=k_head,
                                  dtype=_checks.float_dtype(dtype))

    @property
    def classes(self) -> int:
        return self.head.out_features

    def flow(self, x: ParticlesLike, *, saveat=None, **options) -> Trajectory:
        """The augmented features along the flow: ``xs (T, n, dim + augment)``.

        `options` override the training solver (e.g. ``solver="tsit5", steps=None, rtol=1e-3``
        to count the field evaluations an adaptive solver needs).
        """
        x = _checks.particles(x, "x", dim=self.dim).astype(self.head.weight.dtype)
        h0 = jnp.concatenate([x, jnp.zeros((x.shape[0], self.augment), x.dtype)], axis=1)
        options = {"solver": self.solver, "steps": self.steps, **options}
        return simulate(self.field, h0, saveat=saveat, **options)

    def __call__(self, x) -> Array:
        """Logits, shape `(n, classes)`."""
        return jax.vmap(self.head)(self.flow(x).x1)


def classification_loss(model: NeuralODEClassifier, x: ParticlesLike,
                        labels: LabelsLike) -> Scalar:
    """Mean cross-entropy of the model's logits on ``x (n, d)`` against integer ``labels (n,)``."""
    x = _checks.particles(x, "x")
    labels = _labels(labels, x.shape[0], model.classes)
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(model(x), labels))


def accuracy(model: NeuralODEClassifier, x: ParticlesLike, labels: LabelsLike) -> Scalar:
    """Fraction of ``x (n, d)`` whose arg-max logit equals its label."""
    x = _checks.particles(x, "x")
    labels = _labels(labels, x.shape[0], model.classes)
    return jnp.mean((jnp.argmax(model(x), axis=1) == labels).astype(x.dtype))


class ClassificationLoss(eqx.Module):
    """``loss(model, key)`` for [`fit`][]: cross-entropy on a random mini-batch of a data set.

    **Arguments:** `x` `(N, d)`, integer `labels` `(N,)` in ``[0, classes)``, `batch` size
    (capped at N), `classes`.
    """

    x: Array
    labels: Array
    batch: int = eqx.field(static=True)

    def __init__(self, x, labels, *, classes: int, batch: int = 256):
        self.x = _checks.particles(x, "x")
        self.labels = _labels(labels, self.x.shape[0], _checks.positive_int(classes, "classes"))
        self.batch = min(_checks.positive_int(batch, "batch"), self.x.shape[0])

    def __call__(self, model: NeuralODEClassifier, key) -> Array:
        idx = jax.random.choice(key, self.x.shape[0], (self.batch,), replace=False)
        logits = model(self.x[idx])
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, self.labels[idx]))
