"""Data: toy distributions as pure JAX samplers, and real sets that ship inside packages.

``sample(name, key, n)`` draws a cloud of shape ``(n, d)``; ``sample_labeled`` also returns labels,
shape ``(n,)``. Toy names (``names()``) are generated; real names (``real_names()``: scikit-learn's
digits and three small tables) are drawn from a fixed split, which ``load`` returns whole.
``text_corpus(split)`` is character-level text of the standard library's docstrings.
"""

from ._packaged import load, real_names
from ._sample import sample, sample_labeled
from ._text import (
    TEXT_VOCABULARY,
    corpus_text,
    decode_text,
    encode_text,
    text_corpus,
)
from ._toy import names

__all__ = ["TEXT_VOCABULARY", "corpus_text", "decode_text", "encode_text", "load", "names",
           "real_names", "sample", "sample_labeled", "text_corpus"]
