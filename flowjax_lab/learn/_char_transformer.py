"""A small causal character-level transformer whose depth is time: L residual steps of size 1/L.

Layer l moves the token cloud by ``x <- x + (1/L) f(t_l, x)`` with ``t_l = l / L`` and the
field ``f(t, x) = Attention_t(LN_t(x)) + MLP_t(LN'_t(x))`` (attention and MLP in parallel, pre-layer
norm), every parameter a [`PiecewiseConstant`][flowjax_lab.fields.PiecewiseConstant] over the
L layers. Running it with ``2L`` steps of size ``1/(2L)`` uses each layer's parameters twice: the
same network, discretised twice as finely (the depth limit of the attention ODE).
"""

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from .._types import Array
from ..fields import Attention, PiecewiseConstant


def _layer_norm(x, gain):
    """Each token of `x` `(n, d)` centred, scaled to unit variance, times `gain` `(d,)`."""
    centred = x - jnp.mean(x, axis=-1, keepdims=True)
    scale = jax.lax.rsqrt(jnp.mean(centred**2, axis=-1, keepdims=True) + 1e-5)
    return gain[None, :] * centred * scale


class TokenField(eqx.Module):
    """``f(t, x) = Attention_t(LN(x) g_t) + W2_t gelu(W1_t LN(x) g'_t + b1_t) + b2_t`` on a causal
    token cloud `(n, d)`; every parameter depends on depth through a `PiecewiseConstant`."""

    attention: Attention
    norms: PiecewiseConstant  # (L, 2, d): gains of the two layer norms
    mlp_in: PiecewiseConstant  # (L, m, d)
    mlp_in_bias: PiecewiseConstant  # (L, m)
    mlp_out: PiecewiseConstant  # (L, d, m)
    mlp_out_bias: PiecewiseConstant  # (L, d)

    def __call__(self, t, x, args=None):
        gains = self.norms(t)
        hidden = jax.nn.gelu(_layer_norm(x, gains[1]) @ self.mlp_in(t).T
                             + self.mlp_in_bias(t)[None, :])
        mlp = hidden @ self.mlp_out(t).T + self.mlp_out_bias(t)[None, :]
        return self.attention(t, _layer_norm(x, gains[0])) + mlp


class CharTransformer(eqx.Module):
    """A causal transformer over a vocabulary of `vocabulary` symbols and a context of `context`
    tokens, with `layers` residual layers of step ``1 / layers``.

    **Arguments:** `vocabulary`, `context`, `layers`, `dim` (token dimension d), `heads` (h,
    dividing d), `mlp_ratio` (MLP width m = `mlp_ratio` d), `key`, `dtype`.

    Token `i` reads tokens `j <= i` only (``Attention(causal=True)``); positions are learned
    embeddings `(context, d)`.
    """

    embedding: Array  # (V, d)
    position: Array  # (context, d)
    field: TokenField
    final_gain: Array  # (d,)
    unembedding: Array  # (V, d)
    layers: int = eqx.field(static=True)

    def __init__(self, vocabulary: int, context: int, layers: int, *, dim: int = 64,
                 heads: int = 4, mlp_ratio: int = 4, key, dtype=None):
        vocabulary = _checks.positive_int(vocabulary, "vocabulary", minimum=2)
        context = _checks.positive_int(context, "context")
        self.layers = _checks.positive_int(layers, "layers")
        dim = _checks.positive_int(dim, "dim")
        heads = _checks.positive_int(heads, "heads")
        mlp_ratio = _checks.positive_int(mlp_ratio, "mlp_ratio")
        if dim % heads:
            raise ValueError(f"`heads` must divide `dim`, got dim={dim}, heads={heads}.")
        key = _checks.key(key)
        dtype = _checks.float_dtype(dtype)
        p = _initial(key, vocabulary, context, self.layers, dim, heads, mlp_ratio * dim, dtype)
        self.embedding, self.position = p["embedding"], p["position"]
        attention = Attention(*(PiecewiseConstant(p[name]) for name in ("Q", "K", "V")),
                              output=PiecewiseConstant(p["output"]), causal=True)
        self.field = TokenField(attention, *(PiecewiseConstant(p[name]) for name in (
            "norms", "mlp_in", "mlp_in_bias", "mlp_out", "mlp_out_bias")))
        self.final_gain, self.unembedding = p["final_gain"], p["unembedding"]

    @property
    def context(self) -> int:
        return self.position.shape[0]

    @property
    def vocabulary(self) -> int:
        return self.embedding.shape[0]

    def _tokens(self, tokens):
        tokens = jnp.asarray(tokens)
        if not jnp.issubdtype(tokens.dtype, jnp.integer):
            raise TypeError(f"`tokens` must be integers, got dtype {tokens.dtype}.")
        if tokens.ndim != 1 or not 1 <= tokens.shape[0] <= self.context:
            raise ValueError(f"`tokens` must have shape (n,) with 1 <= n <= context = "
                             f"{self.context}, got {tuple(tokens.shape)}.")
        return _checks.fail_if(tokens, lambda t: (t < 0) | (t >= self.vocabulary),
                               f"`tokens` must lie in [0, {self.vocabulary}).")

    def states(self, tokens, layers: int | None = None) -> Array:
        """The token states after each residual step, `(S + 1, n, d)` for `tokens` `(n,)`
        (int, ``n <= context``) and ``S = layers`` steps of size ``1 / S`` (default: the trained
        depth L; S = 2L repeats each layer's parameters twice)."""
        steps = self.layers if layers is None else _checks.positive_int(layers, "layers")
        return _states(self, self._tokens(tokens), steps)

    def logits(self, tokens, layers: int | None = None) -> Array:
        """Next-token logits `(n, V)` at every position of `tokens` `(n,)` (see `states`)."""
        steps = self.layers if layers is None else _checks.positive_int(layers, "layers")
        return _logits(self, self._tokens(tokens), steps)

    def _states(self, tokens, steps: int) -> Array:
        """`states` without the checks (for losses and loops)."""
        x0 = self.embedding[tokens] + self.position[: tokens.shape[0]]
        h = 1.0 / steps

        # `fields.residual_transformer` takes the same steps, but refuses a cloud with NaN:
        # here a diverged model must give NaN losses (a fit status), not an exception.
        def step(x, index):
            x = x + h * self.field(index * h, x)
            return x, x

        _, xs = jax.lax.scan(step, x0, jnp.arange(steps, dtype=x0.dtype))
        return jnp.concatenate([x0[None], xs])

    def _logits(self, tokens, steps: int) -> Array:
        """`logits` without the checks."""
        return _layer_norm(self._states(tokens, steps)[-1], self.final_gain) @ self.unembedding.T

    def generate(self, key, prompt, length: int, *, temperature: float = 1.0) -> Array:
        """`length` tokens `(length,)` sampled one at a time after `prompt` `(p,)` (its last
        `context` tokens), each from ``softmax(logits / temperature)`` of the last `context`
        tokens."""
        key = _checks.key(key)
        length = _checks.positive_int(length, "length")
        temperature = float(_checks.positive(temperature, "temperature"))
        prompt = jnp.asarray(prompt)
        if prompt.ndim != 1 or prompt.shape[0] == 0:
            raise ValueError(f"`prompt` must have shape (p,) with p >= 1, got "
                             f"{tuple(prompt.shape)}.")
        prompt = self._tokens(prompt[-self.context:])
        window = jnp.zeros((self.context,), prompt.dtype).at[: prompt.shape[0]].set(prompt)
        return _generate(self, key, window, jnp.asarray(prompt.shape[0]), length,
                         jnp.asarray(temperature, self.embedding.dtype))


_states = eqx.filter_jit(CharTransformer._states)
_logits = eqx.filter_jit(CharTransformer._logits)


@functools.partial(jax.jit, static_argnums=range(1, 8))
def _initial(key, V, T, L, d, h, m, dtype) -> dict:
    """Initial parameters: unit-variance token states, per-layer maps scaled by 1/sqrt(fan-in),
    unit layer-norm gains, zero biases (one normal draw, split: one small compilation)."""
    k = d // h
    shapes = {"embedding": ((V, d), 1.0), "position": ((T, d), 0.5),
              # scores <Q x, K x> / sqrt(k) of unit-variance tokens: 1/sqrt(k) folded into Q
              "Q": ((L, h, k, d), (d * k) ** -0.5), "K": ((L, h, k, d), d**-0.5),
              "V": ((L, h, k, d), d**-0.5), "output": ((L, h, d, k), d**-0.5),
              "mlp_in": ((L, m, d), d**-0.5), "mlp_out": ((L, d, m), m**-0.5),
              "unembedding": ((V, d), d**-0.5)}
    sizes = [math.prod(shape) for shape, _ in shapes.values()]
    pieces = jnp.split(jax.random.normal(key, (sum(sizes),), dtype), np.cumsum(sizes)[:-1])
    params = {name: scale * piece.reshape(shape)
              for piece, (name, (shape, scale)) in zip(pieces, shapes.items(), strict=True)}
    return {**params, "norms": jnp.ones((L, 2, d), dtype), "final_gain": jnp.ones((d,), dtype),
            "mlp_in_bias": jnp.zeros((L, m), dtype), "mlp_out_bias": jnp.zeros((L, d), dtype)}


@eqx.filter_jit
def _generate(model, key, window, count, length, temperature):
    """`length` sampled tokens after the first `count` tokens of `window` `(context,)` (one
    compilation for every prompt length and temperature)."""
    T = model.context

    def step(carry, step_key):
        window, count = carry  # the first `count` entries are the visible context
        logits = model._logits(window, model.layers)[count - 1]  # causal: later ones unread
        token = jax.random.categorical(step_key, logits / temperature).astype(window.dtype)
        grown = window.at[jnp.minimum(count, T - 1)].set(token)
        slid = jnp.roll(window, -1).at[T - 1].set(token)
        return (jnp.where(count < T, grown, slid), jnp.minimum(count + 1, T)), token

    _, tokens = jax.lax.scan(step, (window, count), jax.random.split(key, length))
    return tokens


class NextCharacterLoss(eqx.Module):
    """Mean next-token cross-entropy (nats) of a [`CharTransformer`][] on `batch` windows of
    ``context + 1`` tokens drawn uniformly from `tokens` `(N,)` with the step's key.

    **Arguments:** `tokens` (int, ``N > context``), `context`, `batch`.
    """

    tokens: Array
    context: int = eqx.field(static=True)
    batch: int = eqx.field(static=True)

    def __init__(self, tokens, context: int, *, batch: int = 32):
        tokens = jnp.asarray(tokens)
        self.context = _checks.positive_int(context, "context")
        self.batch = _checks.positive_int(batch, "batch")
        if not jnp.issubdtype(tokens.dtype, jnp.integer) or tokens.ndim != 1:
            raise TypeError(f"`tokens` must be integers of shape (N,), got "
                            f"{tokens.dtype}{tuple(tokens.shape)}.")
        if tokens.shape[0] <= self.context:
            raise ValueError(f"`tokens` must hold more than `context` = {self.context} tokens, "
                             f"got {tokens.shape[0]}.")
        self.tokens = tokens

    def __call__(self, model: CharTransformer, key) -> Array:
        starts = jax.random.randint(key, (self.batch,), 0, self.tokens.shape[0] - self.context)
        windows = jax.vmap(lambda s: jax.lax.dynamic_slice(self.tokens, (s,),
                                                           (self.context + 1,)))(starts)
        return jnp.mean(jax.vmap(lambda w: sequence_loss(model, w[:-1], w[1:]))(windows))


def sequence_loss(model: CharTransformer, inputs, targets, layers: int | None = None) -> Array:
    """Cross-entropy (nats) `(n,)` of `targets` `(n,)` under the next-token prediction of the
    model at each position of `inputs` `(n,)` (position i reads inputs 0..i), with `layers`
    steps (see `CharTransformer.states`). Unchecked: for losses and evaluation loops."""
    steps = model.layers if layers is None else layers
    log_p = jax.nn.log_softmax(model._logits(inputs, steps), axis=-1)
    return -jnp.take_along_axis(log_p, targets[:, None], axis=-1)[:, 0]
