"""One sampling interface for toy and real sets: ``sample`` and ``sample_labeled``."""

import jax

from .. import _checks
from .._types import Key, Labels, Particles
from . import _packaged, _toy


def sample_labeled(name: str, key: Key, n: int, *, dim: int | None = None, dtype=None,
                   **options) -> tuple[Particles, Labels]:
    """Draw ``n`` points and their labels: shapes ``(n, d)`` and ``(n,)``. Jit-compatible.

    Toy sets are generated (``dim`` defaults to 2; other values for "gaussian" and "mixture"
    only; ``options`` reach the sampler: ``noise`` for moons/circles, ``radius``/``std`` for
    8gaussians/mixture, ...). Real sets draw rows uniformly, with replacement, from a fixed split
    (``options``: ``split="train"`` or ``"test"``, ``scale`` as in ``load``); ``dim``, if given,
    must be the set's own.
    """
    name = _checks.choice(name, _toy.names() + _packaged.real_names(), "name")
    key = _checks.key(key)
    n = _checks.positive_int(n, "n")
    if name in _packaged.real_names():
        x, labels = _packaged.load(name, dtype=dtype, **options)
        if dim is not None and _checks.positive_int(dim, "dim") != x.shape[1]:
            raise ValueError(f"`dim` must be {x.shape[1]} for data set {name!r}, got {dim}.")
        rows = jax.random.randint(key, (n,), 0, x.shape[0])
        return x[rows], labels[rows]
    dim = 2 if dim is None else _checks.positive_int(dim, "dim")
    return _toy.draw(name, key, n, dim, _checks.float_dtype(dtype), options)


def sample(name: str, key: Key, n: int, *, dim: int | None = None, dtype=None,
           **options) -> Particles:
    """Draw ``n`` points of the named set, shape ``(n, d)`` (see ``sample_labeled``)."""
    return sample_labeled(name, key, n, dim=dim, dtype=dtype, **options)[0]
