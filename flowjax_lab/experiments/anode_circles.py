"""Neural ODE vs augmented neural ODE on nested circles (Dupont, Doucet, Teh 2019).

A plain neural ODE classifier moves the plane by a homeomorphism, so an inner ring can never be
moved outside the outer ring to become linearly separable: the flow has to squeeze and it needs a
stiffer field. One zero-padded extra dimension lets the classes pass each other. Both models are
trained identically (fixed RK4 steps, discretise-then-optimise); the field evaluations an adaptive
solver then needs (Tsit5, rtol 1e-3) measure how hard each learned flow is.
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import datasets
from .._plotting import figure
from ..learn import ClassificationLoss, NeuralODEClassifier, fit
from ._registry import register
from ._result import Result, check
from ._training import chunk_size, sub_folder


@dataclasses.dataclass(frozen=True)
class Config:
    n: int = 1000
    train_steps: int = 400
    batch: int = 128
    width: int = 32
    ode_steps: int = 8
    augment: int = 1
    learning_rate: float = 1e-2
    grid: int = 80

    @classmethod
    def quick(cls):
        return cls(n=400, train_steps=120, width=16, ode_steps=4, grid=40)


LIM = 1.4  # half-width of the plotted square (inputs on the unit scale)


@eqx.filter_jit
def _setup(config: Config, k_train, k_test):
    """Training and test sets (on the unit scale) and the plotting grid, in one compilation."""
    x, y = datasets.sample_labeled("circles", k_train, config.n)
    x_test, y_test = datasets.sample_labeled("circles", k_test, config.n)
    scale = 3.0  # the data set's outer radius; inputs are fed on the unit scale
    g = jnp.linspace(-LIM, LIM, config.grid, dtype=x.dtype)
    grid = jnp.stack(jnp.meshgrid(g, g), axis=-1).reshape(-1, 2)
    return x / scale, y, x_test / scale, y_test, g, grid


def _train(config, augment, x, y, key, checkpoint=None):
    k_init, k_fit = jax.random.split(key)
    model = NeuralODEClassifier(2, 2, augment=augment, width=config.width,
                                steps=config.ode_steps, key=k_init)
    loss = ClassificationLoss(x, y, classes=2, batch=config.batch)
    return fit(loss, model, optax.adam(config.learning_rate), k_fit, steps=config.train_steps,
               chunk=chunk_size(config.train_steps), checkpoint=checkpoint,
               resume=checkpoint is not None, progress=False)


@eqx.filter_jit
def _evaluate(model: NeuralODEClassifier, x_test, y_test, grid):
    """Adaptive field evaluations on the test set, and the training solver's end states and
    predictions for the test points and the grid (one solve), in one compilation."""
    adaptive = model.flow(x_test, solver="tsit5", steps=None, rtol=1e-3, atol=1e-3)
    ends = model.flow(jnp.concatenate([x_test, grid])).x1
    predicted = jnp.argmax(jax.vmap(model.head)(ends), axis=1)
    n = x_test.shape[0]
    accuracy = jnp.mean((predicted[:n] == y_test).astype(x_test.dtype))
    return accuracy, adaptive.stats["num_field_evals"], ends[:n], predicted[n:]


@register(
    "anode-circles",
    theme="continuous-time networks",
    config=Config,
    description="Neural ODE vs augmented neural ODE classifier on nested circles: accuracy, NFE.",
)
def run(config: Config, key, checkpoint=None) -> Result:
    k_train, k_test, k_fit = jax.random.split(key, 3)
    x, y, x_test, y_test, g, grid = _setup(config, k_train, k_test)
    points, labels, g = np.asarray(x_test), np.asarray(y_test), np.asarray(g)  # for the figure
    result = Result("anode-circles", dataclasses.asdict(config))
    fig, axes = figure(2, 2, size=3.6)
    for col, (name, augment) in enumerate((("node", 0), ("anode", config.augment))):
        fitted = _train(config, augment, x, y, k_fit, sub_folder(checkpoint, name))
        test_accuracy, nfe, features, regions = _evaluate(fitted.model, x_test, y_test, grid)
        features = np.asarray(features)
        regions = np.asarray(regions).reshape(config.grid, config.grid)
        result.metrics.update({
            f"{name}_test_accuracy": float(test_accuracy),
            f"{name}_final_loss": float(np.mean(fitted.losses[-10:])),
            f"{name}_adaptive_field_evals": int(nfe),
            f"{name}_fit_seconds": fitted.seconds,
        })
        result.arrays[f"{name}_features"] = features
        ax = axes[0, col]
        ax.contourf(g, g, regions, levels=[-0.5, 0.5, 1.5],
                    colors=["C0", "C1"], alpha=0.25)
        ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="coolwarm", s=4)
        ax.set_title(f"{name}: decision regions "
                     f"(acc {result.metrics[f'{name}_test_accuracy']:.3f})", fontsize=9)
        ax.set_aspect("equal")
        ax = axes[1, col]
        second = 2 if augment else 1
        ax.scatter(features[:, 0], features[:, second], c=labels, cmap="coolwarm", s=4)
        ax.set_title(f"{name}: features h(1) (coords 1, {second + 1}), "
                     f"NFE {result.metrics[f'{name}_adaptive_field_evals']}", fontsize=9)
    result.figures["decision_regions_and_features"] = fig
    result.checks += [
        check("augmented test accuracy", result.metrics["anode_test_accuracy"], 1.0, 0.05),
        check("augmented final loss below plain", max(0.0, result.metrics["anode_final_loss"]
                                                      - result.metrics["node_final_loss"]),
              0.0, 0.0, relative=False),
    ]
    return result
