"""Flow matching on real data: the 8x8 digits, learned fields against the exact empirical flow.

From N(0, I) in d = 64 to the 1347 training digits (pixels in [-1, 1]), four learned fields are
trained by conditional flow matching: I-CFM (independent pairs) and OT-CFM (exact minibatch
optimal pairs), each with an MLP field and with a small convolutional U-Net
(``fields.UNetField``; `unet=False` leaves the U-Nets out, as the quick run does: on CPU they
need minutes). ``fields.ExactFlowMatching`` on the same training set is the minimiser of the
same loss over all fields. Every model generates `n_generated` digits from the same noise with
`euler_steps` Euler steps.

Measured against the 450 held-out test digits: energy distance, squared MMD (Gaussian kernel,
the median pairwise distance as bandwidth) and exact W2 in pixel space; each generated digit's
distance to its nearest training digit beside the test digits' own (memorisation); and a
classifier score: an MLP trained on the training digits, its accuracy on the test digits, and
its mean confidence and class histogram on the generated digits (with the total variation to
the histogram it gives the test digits).

Checks: the classifier reaches 95% test accuracy (logistic regression already does on this
split); the exact flow's samples are training digits (nearest distance below 1% of the test
digits' median); each learned model's median nearest-training distance is at least half the
test digits' (it does not copy its data) and at most twice (its digits are as near the data as
real ones); each learned model closes half of its untrained self's energy-distance gap to the
floor (the energy distance from as many training digits to the test digits); every training
ended ok.
"""

import dataclasses
import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import datasets, metrics
from .._plotting import figure
from ..fields import ExactFlowMatching, MLPField, UNetField
from ..learn import ClassificationLoss, FlowMatchingLoss, fit, generate
from ._config import validate
from ._registry import register
from ._result import Result, at_least, at_most, better, fit_ok
from ._training import adam, chunk_size, sub_folder

COUPLINGS = {"I-CFM": "independent", "OT-CFM": "ot"}
CLASSES = 10
SIDE = 8  # digits are 8x8 images, d = 64
SHOWN = 10  # digits shown per model in the figure


@dataclasses.dataclass(frozen=True)
class Config:
    n_generated: int = 450  # digits generated per model (at most the 450 test digits)
    steps: int = 4000  # training steps of each MLP field
    unet_steps: int = 1000  # training steps of each U-Net field
    batch_size: int = 128
    width: int = 256  # MLP field
    depth: int = 2
    channels: int = 16  # U-Net maps at full resolution
    learning_rate: float = 1e-3
    euler_steps: int = 50  # Euler steps of every generation
    classifier_steps: int = 600
    classifier_width: int = 128
    unet: bool = True
    dtype: str = "float32"

    def __post_init__(self):
        validate(self, positive=("learning_rate",),
                 counts=("n_generated", "steps", "unet_steps", "batch_size", "width", "depth",
                         "channels", "euler_steps", "classifier_steps", "classifier_width"))
        if self.n_generated > 450 or self.n_generated < 2:
            raise ValueError("config field 'n_generated' of fm-digits must be in [2, 450] (W2 "
                             f"pairs the samples with as many test digits), got "
                             f"{self.n_generated!r}.")

    @classmethod
    def quick(cls):
        return cls(n_generated=300, steps=400, unet=False, euler_steps=20, classifier_steps=300)


class _Classifier(eqx.Module):
    """Logits `(n, 10)` of digits `(n, 64)` by a one-hidden-layer MLP."""

    mlp: eqx.nn.MLP

    def __init__(self, width: int, *, key, dtype):
        self.mlp = eqx.nn.MLP(SIDE * SIDE, CLASSES, width, 1, activation=jax.nn.relu, key=key,
                              dtype=dtype)

    def __call__(self, x):
        return jax.vmap(self.mlp)(x)


@eqx.filter_jit
def _probabilities(model: _Classifier, x):
    return jax.nn.softmax(model(x), axis=1)


def nearest_distance(x, data) -> np.ndarray:
    """Distance of each row of `x` `(n, d)` to its nearest row of `data` `(m, d)`, and the index
    of that row; NaN for a row that is not finite. NumPy, float64."""
    x, data = np.asarray(x, np.float64), np.asarray(data, np.float64)
    squared = (np.sum(x**2, axis=1)[:, None] + np.sum(data**2, axis=1)[None]
               - 2 * x @ data.T).clip(0)
    index = np.argmin(np.where(np.isnan(squared), np.inf, squared), axis=1)
    distance = np.sqrt(squared[np.arange(len(x)), index])
    return np.where(np.all(np.isfinite(x), axis=1), distance, np.nan), index


@eqx.filter_jit
def _scores(samples, test) -> dict:
    """Energy distance, squared MMD (median bandwidth) and exact W2 of `samples` `(n, 64)` to the
    test digits, in one compilation; NaN when a sample is not finite (the assignment is solved
    on zeros)."""
    finite = jnp.all(jnp.isfinite(samples))
    safe = jnp.where(finite, samples, 0)
    values = {"energy": metrics.energy_distance(safe, test),
              "mmd2": metrics.mmd_squared(safe, test, bandwidth="median"),
              "w2": metrics.sample_w2(safe, test[:samples.shape[0]])}
    return {k: jnp.where(finite, v, jnp.nan) for k, v in values.items()}


def _label(name: str) -> str:
    """Metric prefix of a model: "OT-CFM mlp" -> "otcfm_mlp"."""
    return name.replace(" ", "_").replace("-", "").lower()


def _noise(key, n, *, dtype):
    return jax.random.normal(key, (n, SIDE * SIDE), dtype)


@eqx.filter_jit
def _init(config: Config, key):
    """The source noise `(n_generated, 64)`, the classifier and the untrained fields (the U-Net
    `None` without `config.unet`), built in one compilation."""
    dtype = jnp.dtype(config.dtype)
    k_classifier, k_noise, k_mlp, k_unet = jax.random.split(key, 4)
    mlp = MLPField(SIDE * SIDE, width=config.width, depth=config.depth, activation=jax.nn.silu,
                   key=k_mlp, dtype=dtype)
    unet = (UNetField(SIDE * SIDE, channels=config.channels, key=k_unet, dtype=dtype)
            if config.unet else None)
    return (_noise(k_noise, config.n_generated, dtype=dtype),
            _Classifier(config.classifier_width, key=k_classifier, dtype=dtype), mlp, unet)


def _mosaic(top, bottom) -> np.ndarray:
    """Two rows of 8x8 digits (`(k, 64)` each) in one image, blank (NaN) lines between."""
    k = top.shape[0]
    canvas = np.full((2 * (SIDE + 1) - 1, k * (SIDE + 1) - 1), np.nan)
    for row, images in enumerate((top, bottom)):
        for i, image in enumerate(np.asarray(images, np.float64)):
            r, c = row * (SIDE + 1), i * (SIDE + 1)
            canvas[r:r + SIDE, c:c + SIDE] = image.reshape(SIDE, SIDE)
    return canvas


@register(
    "fm-digits",
    theme="optimal transport and flow matching",
    config=Config,
    description="I-CFM and OT-CFM (MLP and U-Net) vs the exact empirical flow on 8x8 digits.",
)
def run(config: Config, key, checkpoint=None) -> Result:
    dtype = jnp.dtype(config.dtype)
    train, train_labels = datasets.load("digits", "train", scale="symmetric", dtype=dtype)
    test, test_labels = datasets.load("digits", "test", scale="symmetric", dtype=dtype)
    k_init, k_classifier, k_fit = jax.random.split(key, 3)
    n = config.n_generated
    x0, classifier, mlp, unet = _init(config, k_init)
    result = Result("fm-digits", dataclasses.asdict(config))

    # Classifier on the real training digits.
    folder = sub_folder(checkpoint, "classifier")
    fitted = fit(ClassificationLoss(train, train_labels, classes=CLASSES, batch=config.batch_size),
                 classifier, adam(config.learning_rate), k_classifier,
                 steps=config.classifier_steps, chunk=chunk_size(config.classifier_steps),
                 checkpoint=folder, resume=folder is not None)
    classifier = fitted.model
    probabilities = np.asarray(_probabilities(classifier, test))
    finite = np.all(np.isfinite(probabilities), axis=1)
    correct = np.where(finite, np.argmax(probabilities, axis=1) == np.asarray(test_labels), np.nan)
    result.metrics.update({
        "classifier_test_accuracy": float(np.mean(correct)),
        "classifier_test_confidence": float(np.mean(np.max(probabilities, axis=1))),
    })
    # 95% is the bar (a linear classifier reaches it on this split); at 450 test digits
    # an accuracy near 0.97 has a standard error of 0.008.
    result.checks += [
        fit_ok("classifier: training", fitted),
        at_least("classifier accuracy on real test digits", np.mean(correct), 0.95,
                 against="95% of the 450 test digits"),
    ]

    # References: the test digits' own distances to the training set and scores.
    test_nearest = nearest_distance(test, train)[0]
    reference = float(np.median(test_nearest))
    floor = {k: float(v) for k, v in _scores(train[:n], test).items()}
    result.metrics.update({"test_nearest_train_distance_median": reference,
                           **{f"train_{k}": v for k, v in floor.items()}})

    generated = {}
    samples = generate(ExactFlowMatching(train), x0, steps=config.euler_steps).x1
    generated["exact"] = samples
    models = [("mlp", mlp, config.steps)] + ([("unet", unet, config.unet_steps)] if unet else [])
    source = functools.partial(_noise, dtype=dtype)
    for kind, model, steps in models:
        before = {k: float(v) for k, v in
                  _scores(generate(model, x0, steps=config.euler_steps).x1, test).items()}
        for coupling_name, coupling in COUPLINGS.items():
            name = f"{coupling_name} {kind}"
            label = _label(name)
            loss = FlowMatchingLoss(source, train, batch_size=config.batch_size,
                                    coupling=coupling)
            folder = sub_folder(checkpoint, label)
            fitted = fit(loss, model, adam(config.learning_rate), k_fit, steps=steps,
                         chunk=chunk_size(steps), checkpoint=folder, resume=folder is not None)
            samples = generate(fitted.model, x0, steps=config.euler_steps).x1
            generated[name] = samples
            after = {k: float(v) for k, v in _scores(samples, test).items()}
            result.metrics.update({f"{label}_untrained_energy": before["energy"],
                                   f"{label}_final_loss": float(np.mean(fitted.losses[-10:])),
                                   f"{label}_fit_seconds": fitted.seconds})
            # The untrained field moves noise by little (energy distance ~3.6 to the test digits);
            # a tie or a mere drift fails: half the gap to the data's own floor (~0.03).
            result.checks += [
                fit_ok(f"{name}: training", fitted),
                better(f"{name}: energy distance to test vs untrained", after["energy"],
                       before["energy"], margin=0.5 * (before["energy"] - floor["energy"]),
                       against="the same network at initialisation; margin: half its gap to "
                               "the energy distance from as many training digits"),
            ]
            result.metrics.update({f"{label}_{k}": v for k, v in after.items()})

    # The median of n >= 60 nearest distances is known to a few percent (the distances spread
    # by ~20% about it); a copying model scores 0 and noise ~9, against 2.1 for test digits.
    figure_rows = []
    histograms = {"test digits": np.bincount(np.argmax(probabilities, axis=1),
                                             minlength=CLASSES) / len(probabilities)}
    for name, samples in generated.items():
        label = _label(name)
        distance, index = nearest_distance(samples, train)
        median = float(np.median(distance))
        p = np.asarray(_probabilities(classifier, samples))
        classes = np.argmax(p, axis=1)
        histograms[name] = np.bincount(classes, minlength=CLASSES) / n
        result.metrics.update({
            f"{label}_nearest_train_distance_median": median,
            f"{label}_nearest_train_distance_max": float(np.max(distance)),
            f"{label}_classifier_confidence": float(np.mean(np.max(p, axis=1))),
            f"{label}_class_histogram_tv": float(0.5 * np.sum(np.abs(histograms[name]
                                                                     - histograms["test digits"]))),
        })
        if name == "exact":
            result.metrics.update({f"exact_{k}": float(v) for k, v in
                                   _scores(samples, test).items()})
            result.checks.append(at_most(
                "exact FM: samples are training digits (max nearest distance)", np.max(distance),
                0.01 * reference, kind="theory",
                against="the exact field's last Euler step lands on the posterior mean of the "
                        "training digits, collapsed on one; bound: 1% of the test digits' "
                        "median distance to the training set"))
        else:
            result.checks += [
                at_least(f"{name}: not memorising (median nearest-training distance)", median,
                         0.5 * reference,
                         against="half the test digits' median distance to the training set"),
                at_most(f"{name}: near the data (median nearest-training distance)", median,
                        2.0 * reference,
                        against="twice the test digits' median distance to the training set"),
            ]
        figure_rows.append((name, np.asarray(samples[:SHOWN]), np.asarray(train)[index[:SHOWN]]))
        result.arrays[f"{label}_samples"] = np.asarray(samples)

    fig, axes = figure(1, len(figure_rows), size=1.6)
    fig.set_size_inches(SHOWN * 0.8, 1.8 * len(figure_rows))
    for ax, (name, top, bottom) in zip(axes[:, 0], figure_rows, strict=True):
        ax.imshow(_mosaic(top, bottom), cmap="gray_r", vmin=-1, vmax=1)
        ax.set_title(f"{name}: generated (top), nearest training digit (bottom)", fontsize=9)
        ax.axis("off")
    result.figures["generated_and_nearest"] = fig
    fig, axes = figure(1, 1, size=4.0)
    fig.set_size_inches(7, 3.5)
    width = 0.8 / len(histograms)
    for i, (name, histogram) in enumerate(histograms.items()):
        axes[0, 0].bar(np.arange(CLASSES) + i * width, histogram, width, label=name)
    axes[0, 0].set_xticks(np.arange(CLASSES) + 0.4 - width / 2, range(CLASSES))
    axes[0, 0].set_xlabel("class predicted by the digit classifier")
    axes[0, 0].set_ylabel("fraction of digits")
    axes[0, 0].legend(fontsize=8)
    result.figures["class_histograms"] = fig
    return result
