"""Data: toy distributions as pure JAX samplers, and real sets that ship inside packages.

``sample(name, key, n)`` draws a cloud of shape ``(n, d)``; ``sample_labeled`` also returns labels,
shape ``(n,)``. Toy names (``names()``) are generated; real names (``real_names()``: scikit-learn's
digits and three small tables) are drawn from a fixed split, which ``load`` returns whole.
"""

from ._packaged import load, real_names
from ._sample import sample, sample_labeled
from ._toy import names

__all__ = ["load", "names", "real_names", "sample", "sample_labeled"]
