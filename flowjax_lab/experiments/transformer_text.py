"""A small causal transformer trained on real text, then read as a depth-discretised token flow.

The text is the standard library's own docstrings (``datasets.text_corpus``: 40 pure-Python
modules, character level, 97 symbols; first 90% train, next 5% validation, last 5% test, by
position; the corpus depends on the Python version). A [`CharTransformer`][] of L residual layers
of step 1/L (causal multi-head ``fields.Attention``, pre-layer norm, per-token MLP) is trained by
next-character prediction with Adam.

Measured, on held-out blocks of ``context + 1`` characters (each character predicted from the
ones before it in its block):

- bits per character against a bigram model (add-one smoothing: ``p(b | a) = (n_ab + 1) /
  (n_a + 97)``, counts from the training split) and a unigram model (add-one as well), and
  against the same network untrained; autoregressive samples;
- causality: the test loss is recomputed with every later character of the block hidden;
- the depth limit: the trained parameters run with 2L (and 4L) steps of size 1/(2L), each
  layer's parameters used for two (four) steps: the same attention ODE discretised more finely.
  Forward Euler is first order, so the change of the last token states from 2L to 4L steps is
  about half the change from L to 2L (checked: ratio at most 0.75; measured 0.37-0.46 at quick
  size over seeds 0-2, above 1 when the steps integrate further instead of refining);
- token clustering across depth: the mean pairwise cosine of the token states after each step
  (the quantity whose growth to 1 is clustering in the transformer-dynamics experiments), and
  the fraction of token pairs with cosine >= `threshold` (``clustering.clustered_fraction``).
"""

import dataclasses
import textwrap

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import clustering
from .._plotting import figure
from ..datasets import decode_text, text_corpus
from ..learn import CharTransformer, NextCharacterLoss, fit, sequence_loss
from ._config import validate
from ._registry import register
from ._result import Result, at_most, better, close, fit_ok
from ._training import adam, chunk_size, sub_folder

BITS = 1 / np.log(2)  # bits per nat


@dataclasses.dataclass(frozen=True)
class Config:
    context: int = 64
    layers: int = 4
    dim: int = 64
    heads: int = 4
    mlp_ratio: int = 4
    batch: int = 32
    train_steps: int = 1500
    learning_rate: float = 3e-3
    test_blocks: int = 256
    causal_blocks: int = 4
    samples: int = 3
    sample_length: int = 240
    temperature: float = 0.8
    threshold: float = 0.9
    dtype: str = "float32"

    def __post_init__(self):
        validate(self, positive=("learning_rate", "temperature", "threshold"),
                 counts=("context", "layers", "dim", "heads", "mlp_ratio", "batch", "train_steps",
                         "test_blocks", "causal_blocks", "samples", "sample_length"))
        if self.dim % self.heads:
            raise ValueError(f"config field 'heads' of transformer-text must divide 'dim' "
                             f"({self.dim}), got {self.heads!r}.")
        if self.test_blocks < 2:
            raise ValueError(f"config field 'test_blocks' of transformer-text must be at least 2 "
                             f"(standard errors by block means), got {self.test_blocks!r}.")
        if self.threshold > 1:
            raise ValueError(f"config field 'threshold' of transformer-text must be a cosine "
                             f"<= 1, got {self.threshold!r}.")

    @classmethod
    def quick(cls):
        return cls(context=32, layers=2, dim=32, heads=2, learning_rate=5e-3, train_steps=400,
                   causal_blocks=2, samples=2, sample_length=100)


def _blocks(tokens, context: int, count: int) -> np.ndarray:
    """Up to `count` consecutive blocks `(b, context + 1)` of `tokens`, each sharing its first
    character with the last of the block before it (every character after the first is
    predicted exactly once)."""
    tokens = np.asarray(tokens)
    count = min(count, (tokens.shape[0] - 1) // context)
    return np.stack([tokens[i * context: (i + 1) * context + 1] for i in range(count)])


def _future_hidden(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and targets `(b * context, context)` in which, for each block and position j, the
    inputs after j are replaced by the unknown symbol (0) and the targets kept: the loss at j is
    then read with nothing after j in view."""
    context = blocks.shape[1] - 1
    visible = np.arange(context)[None, :] <= np.arange(context)[:, None]  # (j, position)
    inputs = np.where(visible[None], blocks[:, None, :-1], 0).reshape(-1, context)
    targets = np.broadcast_to(blocks[:, None, 1:], (len(blocks), context, context))
    return inputs, targets.reshape(-1, context)


@eqx.filter_jit
def _evaluate(model, inputs, targets, steps):
    """Per-character losses (nats) `(b, context)` of `targets` given `inputs` `(b, context)`, the
    mean pairwise cosine of the token states after each of `steps` steps `(b, steps + 1)` and
    the last states `(b, context, d)`."""

    def one(pair):
        states = model._states(pair[0], steps)
        unit = states / jnp.linalg.norm(states, axis=-1, keepdims=True)
        gram = jnp.einsum("sid,sjd->sij", unit, unit)
        n = pair[0].shape[0]
        mean_cosine = (jnp.sum(gram, axis=(1, 2)) - n) / (n * (n - 1))
        return sequence_loss(model, pair[0], pair[1], steps), mean_cosine, states[-1]

    return jax.lax.map(one, (inputs, targets), batch_size=64)


def _count_model(train, vocabulary: int, previous: bool) -> np.ndarray:
    """Add-one smoothed log2-probabilities: `(V, V)` bigram (row: previous character) or `(V,)`
    unigram, from the training characters."""
    train = np.asarray(train)
    if previous:
        counts = np.ones((vocabulary, vocabulary))
        np.add.at(counts, (train[:-1], train[1:]), 1)
    else:
        counts = 1 + np.bincount(train, minlength=vocabulary).astype(float)
    return np.log2(counts / counts.sum(axis=-1, keepdims=True))


def _standard_error(a, b) -> float:
    """Standard error of ``mean(a - b)`` for per-character values `(blocks, context)`, by block
    means (characters within a block are dependent; blocks are treated as independent)."""
    means = np.mean(np.asarray(a, np.float64) - np.asarray(b, np.float64), axis=1)
    return float(np.std(means, ddof=1) / np.sqrt(means.size))


@register("transformer-text", theme="transformer dynamics", config=Config,
          description="Causal character transformer on the stdlib's docstrings: bits/char vs "
                      "a bigram, depth limit L -> 2L and token clustering across depth.")
@np.errstate(all="ignore")  # a diverged model gives NaN numbers: they fail the checks
def run(config: Config, key, checkpoint=None) -> Result:
    dtype = jnp.dtype(config.dtype)
    train, vocabulary = text_corpus("train")
    validation, test = text_corpus("validation")[0], text_corpus("test")[0]
    V, T, L = len(vocabulary), config.context, config.layers
    k_init, k_fit, k_sample = jax.random.split(key, 3)
    model = CharTransformer(V, T, L, dim=config.dim, heads=config.heads,
                            mlp_ratio=config.mlp_ratio, key=k_init, dtype=dtype)

    # one array of blocks for every evaluation at depth L (one compilation): test, validation,
    # and the causality blocks with their later characters hidden
    test_blocks = _blocks(test, T, config.test_blocks)
    valid_blocks = _blocks(validation, T, config.test_blocks)
    causal = test_blocks[: config.causal_blocks]
    hidden_inputs, hidden_targets = _future_hidden(causal)
    inputs = np.concatenate([test_blocks[:, :-1], valid_blocks[:, :-1], hidden_inputs])
    targets = np.concatenate([test_blocks[:, 1:], valid_blocks[:, 1:], hidden_targets])
    edges = np.cumsum([0, len(test_blocks), len(valid_blocks), len(hidden_inputs)])
    prompt = jnp.asarray(test[:T])

    folder = sub_folder(checkpoint, "transformer")
    fitted = fit(NextCharacterLoss(train, T, batch=config.batch), model,
                 adam(config.learning_rate), k_fit, steps=config.train_steps,
                 chunk=chunk_size(config.train_steps), checkpoint=folder,
                 resume=folder is not None)
    trained = fitted.model

    losses, cosines, final = (np.asarray(v, np.float64)
                              for v in _evaluate(trained, inputs, targets, L))
    bits = losses * BITS
    test_bits, valid_bits = bits[edges[0]:edges[1]], bits[edges[1]:edges[2]]
    positions = np.arange(T)
    hidden_bits = bits[edges[2]:].reshape(len(causal), T, T)[:, positions, positions]
    cosines, final = cosines[: edges[1]], final[: edges[1]]
    fine_losses, fine_cosines, fine_final = (np.asarray(v, np.float64) for v in _evaluate(
        trained, test_blocks[:, :-1], test_blocks[:, 1:], 2 * L))
    fine_bits = fine_losses * BITS
    finest_final = np.asarray(_evaluate(trained, test_blocks[:, :-1], test_blocks[:, 1:],
                                        4 * L)[2], np.float64)
    # Euler's error is first order in the step: the change from 2L to 4L steps is half the
    # change from L to 2L once the steps resolve the depth ODE
    coarse_change = np.linalg.norm(fine_final - final[: len(test_blocks)])
    fine_change = np.linalg.norm(finest_final - fine_final)
    # the same arrays (and so the same compilation) for the untrained network
    untrained_bits = np.asarray(_evaluate(model, inputs, targets, L)[0])[: edges[1]] * BITS

    bigram, unigram = _count_model(train, V, True), _count_model(train, V, False)
    baseline = {}
    for name, blocks in (("test", test_blocks), ("validation", valid_blocks)):
        baseline[f"bigram_{name}"] = -bigram[blocks[:, :-1], blocks[:, 1:]]
        baseline[f"unigram_{name}"] = -unigram[blocks[:, 1:]]
    mean = {"test": float(np.mean(test_bits)), "validation": float(np.mean(valid_bits)),
            "untrained": float(np.mean(untrained_bits)), "test_2L": float(np.mean(fine_bits)),
            **{k: float(np.mean(v)) for k, v in baseline.items()}}
    uniform = float(np.log2(V))

    clustered = [float(clustering.clustered_fraction(x, config.threshold))
                 if np.all(np.isfinite(x)) else np.nan for x in final[:8]]
    samples = []
    for i in range(config.samples):
        tokens = np.asarray(trained.generate(jax.random.fold_in(k_sample, i), prompt,
                                             config.sample_length,
                                             temperature=config.temperature))
        samples.append(decode_text(np.clip(tokens, 0, V - 1)))

    result = Result("transformer-text", dataclasses.asdict(config))
    se_bigram = _standard_error(test_bits, baseline["bigram_test"])
    se_untrained = _standard_error(test_bits, untrained_bits)
    # The L layers are Euler steps of size h = 1/L of the depth ODE; Euler's error is first
    # order, so halving the step moves the output by a fraction of order h/2 of the displacement
    # the steps integrate. What that displacement buys is at most the bits the network removes
    # from the uniform code, log2(V) - bits at L: the loss may move by (log2 V - bits) / (2L).
    depth_tolerance = (uniform - mean["test"]) / (2 * L)
    change_ratio = fine_change / coarse_change if coarse_change > 0 else np.nan
    result.checks += [
        fit_ok("training", fitted),
        better("test bits/char: transformer vs bigram", mean["test"], mean["bigram_test"],
               margin=3 * se_bigram,
               against="bigram of the training split with add-one smoothing, same characters "
                       "(margin: 3 standard errors of the paired difference, by block means)"),
        better("test bits/char: trained vs untrained", mean["test"], mean["untrained"],
               margin=0.5 + 3 * se_untrained,
               against="the same network at initialisation (margin: half a bit per character "
                       "and 3 standard errors)"),
        close("test bits/char with later characters hidden vs teacher-forced",
              float(np.mean(hidden_bits)), float(np.mean(test_bits[: len(causal)])), 1e-3,
              relative=False, kind="sanity",
              against=f"a causal model cannot read ahead: {len(causal)} blocks, the characters "
                      "after each target replaced by the unknown symbol (1e-3 bit: rounding)"),
        at_most(f"depth limit: |bits/char at 2L - at L| (L={L})",
                abs(mean["test_2L"] - mean["test"]), depth_tolerance,
                against="the same parameters, 2L steps of size 1/(2L): Euler with half the step "
                        "(tolerance (log2 V - bits at L) / (2L))"),
        at_most(f"depth limit: first order, |x_4L - x_2L| / |x_2L - x_L| (L={L})",
                change_ratio, 0.75, kind="theory",
                against="forward Euler converges at order 1 to the depth ODE: the ratio of "
                        "successive changes of the last token states tends to 1/2 (0.75 allows "
                        "the steps not yet in the asymptotic regime)"),
    ]
    result.metrics.update({
        "test_bits_per_char": mean["test"], "test_perplexity": float(2 ** mean["test"]),
        "validation_bits_per_char": mean["validation"],
        "bigram_test_bits_per_char": mean["bigram_test"],
        "bigram_validation_bits_per_char": mean["bigram_validation"],
        "unigram_test_bits_per_char": mean["unigram_test"],
        "unigram_validation_bits_per_char": mean["unigram_validation"],
        "untrained_test_bits_per_char": mean["untrained"],
        "uniform_bits_per_char": uniform,
        "test_bits_per_char_2L": mean["test_2L"],
        "depth_change_bits_per_char": mean["test_2L"] - mean["test"],
        "depth_change_ratio": float(change_ratio),
        "bigram_margin_standard_errors": (mean["bigram_test"] - mean["test"]) / se_bigram,
        "final_train_bits_per_char": float(np.mean(fitted.losses[-50:]) * BITS),
        "clustered_fraction_last_layer": float(np.mean(clustered)),
        "test_characters": int(test_bits.size),
        "fit_seconds": fitted.seconds,
    })
    layer_cosines, fine_layer_cosines = np.mean(cosines, axis=0), np.mean(fine_cosines, axis=0)
    result.metrics.update({f"mean_cosine_step{s}": float(c) for s, c in enumerate(layer_cosines)})
    result.metrics["mean_cosine_last_2L"] = float(fine_layer_cosines[-1])
    result.arrays.update({"train_losses": np.asarray(fitted.losses), "mean_cosine": layer_cosines,
                          "mean_cosine_2L": fine_layer_cosines, "samples": np.array(samples)})
    _figures(result, fitted, mean, layer_cosines, fine_layer_cosines, samples,
             decode_text(np.asarray(prompt)), config)
    return result


def _figures(result, fitted, mean, cosines, fine_cosines, samples, prompt, config):
    L = config.layers
    fig, axes = figure(2, size=4.0)
    ax = axes[0, 0]
    ax.plot(np.asarray(fitted.losses) * BITS, lw=0.6, label="training batch")
    for name, style in (("bigram_test", "C1--"), ("unigram_test", "C2:"), ("test", "C3-")):
        ax.axhline(mean[name], color=style[:2], ls=style[2:], lw=1,
                   label=f"{name.replace('_', ' ')} {mean[name]:.3f}")
    ax.set_xlabel("training step")
    ax.set_ylabel("bits per character")
    ax.set_ylim(0, 1.1 * mean["untrained"] if np.isfinite(mean["untrained"]) else None)
    ax.legend(fontsize=7)
    ax = axes[0, 1]
    ax.plot(np.arange(L + 1) / L, cosines, "o-", label=f"L = {L} steps")
    ax.plot(np.arange(2 * L + 1) / (2 * L), fine_cosines, "s--", ms=3, label=f"2L = {2 * L}")
    ax.set_xlabel("depth t")
    ax.set_ylabel("mean pairwise cosine of tokens")
    ax.legend(fontsize=8)
    result.figures["training_and_clustering"] = fig

    lines = [f"prompt: {prompt!r}", ""]
    for i, sample in enumerate(samples):
        lines += [f"sample {i + 1} (temperature {config.temperature}):"]
        lines += [textwrap.fill(line, 90) or " " for line in sample.splitlines()] + [""]
    lines = lines[:60]
    fig, axes = figure(1, size=9.0)
    fig.set_size_inches(9.0, 0.5 + 0.13 * len(lines))
    axes[0, 0].axis("off")
    axes[0, 0].text(0, 1, "\n".join(lines), family="monospace", fontsize=7, va="top")
    result.figures["samples"] = fig
