"""Bad input to the text corpus and the character transformer: one row per function or
argument."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax_lab.datasets import decode_text, encode_text, text_corpus
from flowjax_lab.learn import CharTransformer, NextCharacterLoss

KEY = jax.random.key(0)


def _model():
    return CharTransformer(5, 4, 2, dim=4, heads=2, key=KEY)


CASES = [
    ("text_corpus unknown split", lambda: text_corpus("valid"), ValueError,
     "Unknown `split`.*validation"),
    ("encode_text bytes", lambda: encode_text(b"abc"), TypeError, "`text` must be a str"),
    ("decode_text float tokens", lambda: decode_text(np.array([1.0, 2.0])), TypeError,
     "integers"),
    ("decode_text 2-D tokens", lambda: decode_text(np.zeros((2, 2), int)), ValueError,
     r"shape \(n,\)"),
    ("decode_text out of range", lambda: decode_text(np.array([3, 97])), ValueError,
     r"\[0, 97\)"),
    ("CharTransformer heads not dividing dim",
     lambda: CharTransformer(5, 4, 2, dim=6, heads=4, key=KEY), ValueError, "divide"),
    ("CharTransformer vocabulary 1", lambda: CharTransformer(1, 4, 2, key=KEY), ValueError,
     "vocabulary"),
    ("CharTransformer layers 0", lambda: CharTransformer(5, 4, 0, key=KEY), ValueError,
     "layers"),
    ("CharTransformer no key", lambda: CharTransformer(5, 4, 2, key=None), TypeError, "key"),
    ("logits longer than the context", lambda: _model().logits(jnp.zeros(5, int)), ValueError,
     "context = 4"),
    ("logits float tokens", lambda: _model().logits(jnp.zeros(3)), TypeError, "integers"),
    ("logits token out of range", lambda: _model().logits(jnp.array([0, 5])), ValueError,
     r"\[0, 5\)"),
    ("states 0 steps", lambda: _model().states(jnp.zeros(3, int), 0), ValueError, "layers"),
    ("generate length 0", lambda: _model().generate(KEY, jnp.zeros(2, int), 0), ValueError,
     "length"),
    ("generate temperature 0",
     lambda: _model().generate(KEY, jnp.zeros(2, int), 3, temperature=0.0), ValueError,
     "temperature"),
    ("generate empty prompt", lambda: _model().generate(KEY, jnp.zeros(0, int), 3), ValueError,
     "prompt"),
    ("NextCharacterLoss float tokens", lambda: NextCharacterLoss(jnp.zeros(10), 4), TypeError,
     "integers"),
    ("NextCharacterLoss text shorter than the context",
     lambda: NextCharacterLoss(jnp.zeros(4, int), 4), ValueError, "more than `context`"),
    ("NextCharacterLoss batch 0", lambda: NextCharacterLoss(jnp.zeros(10, int), 4, batch=0),
     ValueError, "batch"),
]


@pytest.mark.parametrize(("call", "error", "match"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
