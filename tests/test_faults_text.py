"""Planted faults in the transformer-text experiment: each run must fail a named check.

The fakes of `faults` train nothing (no gradient is compiled); evaluation sizes are cut (fewer
held-out blocks, one short sample) to keep the file short.
"""

import jax
import jax.numpy as jnp
import pytest
from faults import assert_caught, diverged, untrained

import flowjax_lab as fl
from flowjax_lab.experiments import transformer_text
from flowjax_lab.fields import Attention

SMALL = {"test_blocks": 32, "causal_blocks": 1, "samples": 1, "sample_length": 8}


@pytest.mark.parametrize("fault", [untrained, diverged], ids=["untrained", "diverged"])
def test_training_faults(monkeypatch, fault):
    fault(monkeypatch, transformer_text)
    result = fl.experiments.run("transformer-text", quick=True, **SMALL)
    names = ["transformer vs bigram", "trained vs untrained"]
    if fault is diverged:
        names += ["training", "later characters hidden", "depth limit"]
    assert_caught(result, *names)


def test_causal_mask_off(monkeypatch):
    """Attention reads the whole block (``causal=False``): position i sees character i + 1, its
    own target, which training would learn to copy. The untrained network already reads ahead:
    its losses change when the later characters are hidden (the causal one's do not, see the
    untrained run above)."""
    real = Attention.__init__

    def leaky(self, *args, **options):
        real(self, *args, **{**options, "causal": False})

    monkeypatch.setattr(Attention, "__init__", leaky)
    untrained(monkeypatch, transformer_text)
    result = fl.experiments.run("transformer-text", quick=True, **SMALL)
    assert_caught(result, "later characters hidden")


def test_depth_steps_not_refined(monkeypatch, fresh_traces):
    """Every step keeps the trained size 1/L: 2L and 4L steps integrate the depth ODE to depth 2
    and 4 instead of refining it, so the changes grow instead of halving."""

    def unrefined(self, tokens, steps):
        x0 = self.embedding[tokens] + self.position[: tokens.shape[0]]
        h = 1.0 / self.layers

        def step(x, index):
            x = x + h * self.field(index * h, x)
            return x, x

        _, xs = jax.lax.scan(step, x0, jnp.arange(steps, dtype=x0.dtype))
        return jnp.concatenate([x0[None], xs])

    monkeypatch.setattr(fl.learn.CharTransformer, "_states", unrefined)
    untrained(monkeypatch, transformer_text)
    result = fl.experiments.run("transformer-text", quick=True, **SMALL)
    assert_caught(result, "depth limit: first order")
