"""A character-level text corpus that ships with Python itself: the standard library's docstrings.

The text is the documentation of a fixed list of pure-Python standard-library modules
(`TEXT_MODULES`), read with `inspect` (no file access, no network): for each module in that order,
its own docstring, then the docstrings of its public classes and functions defined in the module
(in definition order), each class followed by its public methods. Docstrings are cleaned by
``inspect.getdoc`` and joined by blank lines.

The same Python version gives the same text on every machine; another version may change the
docstrings (and so the corpus, its length and the numbers measured on it): the corpus is a property
of the interpreter, which `text_corpus` does not hide (`corpus_text` returns it whole).

Characters are encoded over a fixed vocabulary (`TEXT_VOCABULARY`, 97 symbols): index 0 is the
unknown symbol ``"\N{REPLACEMENT CHARACTER}"`` (every character not listed), then newline, then
the printable ASCII characters from space to tilde. The split is contiguous by position: the first
90% of the characters are ``"train"``, the next 5% ``"validation"``, the last 5% ``"test"``.
"""

import functools
import importlib
import inspect
import warnings

import jax.numpy as jnp
import numpy as np

from .. import _checks
from .._types import Array

TEXT_MODULES = (
    "argparse", "ast", "base64", "calendar", "collections", "configparser", "contextlib", "csv",
    "dataclasses", "difflib", "email.message", "enum", "fnmatch", "functools", "glob",
    "http.client", "inspect", "ipaddress", "json", "locale", "logging", "optparse", "pathlib",
    "pprint", "queue", "random", "shlex", "shutil", "smtplib", "statistics", "string",
    "subprocess", "tarfile", "tempfile", "textwrap", "threading", "typing", "urllib.parse",
    "uuid", "zipfile",
)
UNKNOWN = "\N{REPLACEMENT CHARACTER}"
TEXT_VOCABULARY = UNKNOWN + "\n" + "".join(chr(c) for c in range(32, 127))
TEXT_SPLITS = ("train", "validation", "test")
_FRACTIONS = (0.9, 0.05, 0.05)
_INDEX = {c: i for i, c in enumerate(TEXT_VOCABULARY) if c != UNKNOWN}


def _public(namespace: dict, module: str):
    """The public classes and functions of `namespace` defined in `module`, in order."""
    return [obj for name, obj in namespace.items()
            if not name.startswith("_") and (inspect.isclass(obj) or inspect.isfunction(obj))
            and getattr(obj, "__module__", None) == module]


def _docstrings(module) -> list[str]:
    docs = [inspect.getdoc(module)]
    for obj in _public(vars(module), module.__name__):
        docs.append(inspect.getdoc(obj))
        if inspect.isclass(obj):
            docs += [inspect.getdoc(m) for m in _public(vars(obj), module.__name__)
                     if inspect.isfunction(m)]
    return [d for d in docs if d]


@functools.cache
def corpus_text() -> str:
    """The whole corpus as one string (see the module's docstring for what it holds)."""
    with warnings.catch_warnings():  # reading typing.io's docstring warns in Python 3.11
        warnings.simplefilter("ignore", DeprecationWarning)
        return "\n\n".join(doc for name in TEXT_MODULES
                           for doc in _docstrings(importlib.import_module(name)))


def encode_text(text: str) -> Array:
    """`text` as token indices into `TEXT_VOCABULARY`, int32 `(len(text),)`; characters outside
    the vocabulary become the unknown symbol (index 0)."""
    if not isinstance(text, str):
        raise TypeError(f"`text` must be a str, got {type(text).__name__}.")
    return jnp.asarray(np.fromiter((_INDEX.get(c, 0) for c in text), np.int32, len(text)))


def decode_text(tokens) -> str:
    """The string of token indices `tokens` `(n,)` (integers in ``[0, 97)``)."""
    array = np.asarray(tokens)
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"`tokens` must be integers, got dtype {array.dtype}.")
    if array.ndim != 1:
        raise ValueError(f"`tokens` must have shape (n,), got {array.shape}.")
    if array.size and (array.min() < 0 or array.max() >= len(TEXT_VOCABULARY)):
        raise ValueError(f"`tokens` must lie in [0, {len(TEXT_VOCABULARY)}), got values in "
                         f"[{array.min()}, {array.max()}].")
    return "".join(TEXT_VOCABULARY[i] for i in array)


@functools.cache
def _bounds() -> tuple[int, ...]:
    n = len(corpus_text())
    edges = np.round(np.cumsum((0.0,) + _FRACTIONS) * n).astype(int)
    return tuple(int(e) for e in edges)


def text_corpus(split: str = "train") -> tuple[Array, str]:
    """One contiguous split of the standard-library docstring corpus, character level.

    **Arguments:** `split`: ``"train"`` (the first 90% of the characters), ``"validation"``
    (the next 5%) or ``"test"`` (the last 5%).

    **Returns:** `tokens` int32 `(n,)` (indices into the vocabulary) and the vocabulary, a str of
    97 characters (`TEXT_VOCABULARY`: unknown symbol, newline, printable ASCII).
    """
    split = _checks.choice(split, TEXT_SPLITS, "split")
    index = TEXT_SPLITS.index(split)
    start, stop = _bounds()[index], _bounds()[index + 1]
    return _encoded()[start:stop], TEXT_VOCABULARY


@functools.cache
def _encoded() -> Array:
    return encode_text(corpus_text())
