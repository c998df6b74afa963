"""Discrete versus continuous depth: a residual transformer with L layers of step 1/L converges to
the attention ODE at rate O(1/L), for tokens in R^d and on the sphere (layer-norm model).

The parameters depend smoothly on depth, ``Q(t) = (1 + sin(3 t)) Q0``; the ODE reference is
solved by ``simulate`` with tight tolerances.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from .._plotting import figure
from .._simulate import simulate
from ..fields import Attention, residual_transformer
from ._registry import register
from ._result import Result, check


@dataclasses.dataclass(frozen=True)
class Config:
    n: int = 64
    d: int = 4
    layers: tuple = (2, 4, 8, 16, 32, 64, 128)
    beta: float = 2.0

    @classmethod
    def quick(cls):
        return cls(n=32, layers=(8, 32, 128))


@register("depth-limit", theme="transformer dynamics", config=Config,
          description="Residual transformer with L layers vs the attention ODE: error O(1/L).")
def run(config: Config, key) -> Result:
    dtype = jnp.result_type(float)
    kx, kq, kk, kv = jax.random.split(key, 4)
    d = config.d
    q0 = jax.random.normal(kq, (d, d), dtype) / (2 * np.sqrt(d))
    k0 = jax.random.normal(kk, (d, d), dtype) / (2 * np.sqrt(d))
    v0 = jax.random.normal(kv, (d, d), dtype) / (2 * np.sqrt(d))
    x0 = jax.random.normal(kx, (config.n, d), dtype)
    euclid = Attention(lambda t: (1 + jnp.sin(3 * t)) * q0, k0, v0)
    sphere = Attention(lambda t: config.beta * (1 + jnp.sin(3 * t)) * jnp.eye(d, dtype=dtype),
                       jnp.eye(d, dtype=dtype), jnp.eye(d, dtype=dtype), sphere=True)
    x0_sphere = x0 / jnp.linalg.norm(x0, axis=-1, keepdims=True)
    tol = 1e-9 if dtype == jnp.float64 else 1e-6
    layers = np.asarray(config.layers, float)
    errors, slopes = {}, {}
    for name, field, start in (("euclidean", euclid, x0), ("sphere", sphere, x0_sphere)):
        reference = simulate(field, start, rtol=tol, atol=tol).x1
        errors[name] = np.array([float(jnp.max(jnp.abs(
            residual_transformer(field, start, int(L))[-1] - reference))) for L in layers])
        slopes[name] = float(np.polyfit(np.log(layers), np.log(errors[name]), 1)[0])

    result = Result("depth-limit", dataclasses.asdict(config))
    result.checks += [check(f"order in 1/L ({name})", -slopes[name], 1.0, 0.15, relative=False)
                      for name in errors]
    result.metrics.update({f"slope_{name}": s for name, s in slopes.items()})
    result.metrics.update({f"error_{name}_L{int(L)}": float(e) for name in errors
                           for L, e in zip(layers, errors[name], strict=True)})
    result.arrays.update({"layers": layers, **{f"error_{k}": v for k, v in errors.items()}})
    fig, axes = figure(1, size=4.2)
    ax = axes[0, 0]
    for name, err in errors.items():
        ax.loglog(layers, err, "o-", label=f"{name} (slope {slopes[name]:.2f})")
    ax.loglog(layers, errors["euclidean"][0] * layers[0] / layers, "k:", label="1/L")
    ax.set_xlabel("layers L")
    ax.set_ylabel("max |x_L - x(1)|")
    ax.legend(fontsize=8)
    result.figures["depth_limit"] = fig
    return result
