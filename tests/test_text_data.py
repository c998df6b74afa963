"""The standard-library docstring corpus: deterministic, contiguous disjoint splits, encoding."""

import importlib
import inspect

import jax.numpy as jnp
import numpy as np
import pytest

from flowjax_lab.datasets import _text

SPLITS = _text.TEXT_SPLITS


def test_vocabulary_is_unknown_newline_and_printable_ascii():
    vocabulary = _text.text_corpus("test")[1]
    assert vocabulary == _text.TEXT_VOCABULARY and len(vocabulary) == 97
    assert len(set(vocabulary)) == 97
    assert vocabulary[0] == _text.UNKNOWN and vocabulary[1] == "\n"
    assert vocabulary[2:] == "".join(chr(c) for c in range(32, 127))


def test_deterministic_rebuilt_from_the_interpreter():
    """The cached text equals a fresh read of the modules' docstrings."""
    assert _text.corpus_text.__wrapped__() == _text.corpus_text()
    for split in SPLITS:
        np.testing.assert_array_equal(_text.text_corpus(split)[0], _text.text_corpus(split)[0])


def test_splits_are_contiguous_disjoint_and_cover_the_corpus():
    parts = [_text.text_corpus(split)[0] for split in SPLITS]
    for part in parts:
        assert part.dtype == jnp.int32 and part.ndim == 1
    whole = _text.encode_text(_text.corpus_text())
    np.testing.assert_array_equal(np.concatenate(parts), whole)  # in order, nothing twice
    fractions = np.array([p.shape[0] for p in parts]) / whole.shape[0]
    np.testing.assert_allclose(fractions, [0.9, 0.05, 0.05], atol=1e-4)
    assert whole.shape[0] > 100_000  # enough text to train on


def test_round_trip_and_unknown_symbol():
    text = "def f(x):\n    return {'a': x ~ 1}  # ok"
    tokens = _text.encode_text(text)
    assert tokens.dtype == jnp.int32 and tokens.shape == (len(text),)
    assert _text.decode_text(tokens) == text
    odd = _text.encode_text("é\tΣ")
    np.testing.assert_array_equal(odd, [0, 0, 0])
    assert _text.decode_text(odd) == _text.UNKNOWN * 3
    assert _text.encode_text("").shape == (0,) and _text.decode_text(np.zeros(0, int)) == ""


def test_a_split_decodes_to_its_slice_of_the_text():
    text = _text.corpus_text()
    test = _text.decode_text(_text.text_corpus("test")[0])
    expected = "".join(c if c in _text.TEXT_VOCABULARY else _text.UNKNOWN
                       for c in text[len(text) - len(test):])
    assert test == expected


def test_the_corpus_opens_with_the_first_module_docstring():
    first = importlib.import_module(_text.TEXT_MODULES[0])
    assert _text.corpus_text().startswith(inspect.getdoc(first))


@pytest.mark.parametrize("split", ["training", "", None])
def test_unknown_split(split):
    with pytest.raises(ValueError, match="split"):
        _text.text_corpus(split)
