"""Real data sets that ship inside scikit-learn: no download, the same rows on every machine.

- ``digits``: 1 797 handwritten digits, 8 x 8 grey levels 0..16 flattened row by row (d = 64),
  labels 0..9. Default scale ``"symmetric"``: pixel / 8 - 1, in [-1, 1].
- ``iris`` (150 x 4, 3 classes), ``wine`` (178 x 13, 3 classes), ``breast_cancer`` (569 x 30,
  2 classes). Default scale ``"standard"``: each feature centred and divided by its standard
  deviation on the training split (a feature constant there is only centred).

Splits are fixed: a stratified 75 / 25 split of scikit-learn's row order
(``train_test_split(..., test_size=0.25, stratify=labels, random_state=0)``), so train and test
hold the classes in the same proportions. ``scale="raw"`` gives the values as shipped.
"""

import functools

import jax.numpy as jnp
import numpy as np

from .. import _checks
from .._types import Labels, Particles

_LOADERS = {"digits": "load_digits", "iris": "load_iris", "wine": "load_wine",
            "breast_cancer": "load_breast_cancer"}
SPLITS = ("train", "test")
SCALES = ("symmetric", "standard", "raw")
TEST_FRACTION = 0.25


def real_names() -> list[str]:
    """The real data-set names: ``digits`` and the tables ``iris``, ``wine``, ``breast_cancer``."""
    return sorted(_LOADERS)


@functools.cache
def _split(name: str) -> tuple[np.ndarray, ...]:
    """(x_train, y_train, x_test, y_test) as shipped, float64 / int32 NumPy arrays."""
    try:
        from sklearn import datasets, model_selection
    except ImportError as err:  # a dependency of flowjax_lab: only a broken install lands here
        raise ImportError(f"The real data set {name!r} ships with scikit-learn, which is not "
                          "installed: `pip install scikit-learn`.") from err
    bunch = getattr(datasets, _LOADERS[name])()
    x, y = bunch.data.astype(np.float64), bunch.target.astype(np.int32)
    x_train, x_test, y_train, y_test = model_selection.train_test_split(
        x, y, test_size=TEST_FRACTION, stratify=y, random_state=0)
    return x_train, y_train, x_test, y_test


def _scaled(name: str, scale: str, x: np.ndarray) -> np.ndarray:
    if scale == "raw":
        return x
    if scale == "symmetric":
        if name != "digits":
            raise ValueError(f"`scale` 'symmetric' is for the digits' grey levels; use 'standard' "
                             f"or 'raw' for {name!r}.")
        return x / 8.0 - 1.0
    train = _split(name)[0]
    std = train.std(axis=0)
    return (x - train.mean(axis=0)) / np.where(std > 0, std, 1.0)


def load(name: str, split: str = "train", *, scale: str | None = None,
         dtype=None) -> tuple[Particles, Labels]:
    """The whole fixed split of a real set: points ``(n, d)`` and integer labels ``(n,)``.

    ``scale``: ``"symmetric"`` (digits only, pixel / 8 - 1), ``"standard"`` (per feature, with
    the training split's mean and deviation) or ``"raw"``; by default symmetric for digits,
    standard for the tables. Sizes (train / test): digits 1347 / 450, iris 112 / 38, wine 133 / 45,
    breast_cancer 426 / 143.
    """
    name = _checks.choice(name, _LOADERS, "name")
    split = _checks.choice(split, SPLITS, "split")
    scale = "symmetric" if scale is None and name == "digits" else scale or "standard"
    scale = _checks.choice(scale, SCALES, "scale")
    x_train, y_train, x_test, y_test = _split(name)
    x, y = (x_train, y_train) if split == "train" else (x_test, y_test)
    dtype = _checks.float_dtype(dtype)
    return jnp.asarray(_scaled(name, scale, x), dtype), jnp.asarray(y)
