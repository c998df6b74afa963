"""Interrupt-and-resume: Ctrl-C (a real SIGINT) mid-training, then --resume, gives the numbers of
an uninterrupted run; the run folder never holds a half-written result."""

import dataclasses
import json
import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import flowjax_lab as fl
from flowjax_lab import cli
from flowjax_lab.experiments import Result, _registry, close

TARGET = jnp.array([1.0, -2.0, 0.5], jnp.float32)  # also under the experiment's float32
INTERRUPT = {"after_evaluations": None, "seen": 0}


def _loss(w, key):
    noise = 0.1 * jax.random.normal(key, (3,), w.dtype)
    return jnp.sum((w - TARGET.astype(w.dtype) + noise) ** 2)


def _evaluate(w):
    INTERRUPT["seen"] += 1
    if INTERRUPT["seen"] == INTERRUPT["after_evaluations"]:
        os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does
    return {"distance": jnp.linalg.norm(w - TARGET.astype(w.dtype))}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    steps: int = 120
    learning_rate: float = 0.05
    dtype: str = "float32"

    @classmethod
    def quick(cls):
        return cls()


def _train(config, key, *, checkpoint=None):
    out = fl.learn.fit(_loss, jnp.zeros(3), optax.adam(config.learning_rate), key,
                       steps=config.steps, chunk=20, evaluate=_evaluate, eval_every=20,
                       checkpoint=checkpoint, resume=checkpoint is not None, progress=False)
    result = Result("train-toy", dataclasses.asdict(config))
    result.metrics["final_loss"] = float(out.losses[-1])
    result.checks.append(close("weights reach the target", out.model, TARGET, 0.2))
    result.arrays.update({"losses": out.losses, "weights": np.asarray(out.model)})
    return result


@pytest.fixture(autouse=True)
def ctrl_c_raises():
    """Ctrl-C raises ``KeyboardInterrupt`` during each test, whatever the disposition the test
    process inherited (a background job starts with SIGINT ignored); restored afterwards."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def train_toy():
    _registry._load_all()
    saved = dict(_registry._REGISTRY)
    fl.experiments.register("train-toy", theme="continuous-time networks", config=TrainConfig,
                            description="A toy training run.")(_train)
    INTERRUPT.update(after_evaluations=None, seen=0)
    yield
    _registry._REGISTRY.clear()
    _registry._REGISTRY.update(saved)


def test_fit_interrupted_by_sigint_resumes_to_identical_numbers(tmp_path):
    key, opt = jax.random.key(0), optax.adam(0.05)
    kwargs = dict(steps=120, chunk=20, evaluate=_evaluate, eval_every=20, progress=False)
    INTERRUPT.update(after_evaluations=None, seen=0)
    full = fl.learn.fit(_loss, jnp.zeros(3), opt, key, **kwargs)
    INTERRUPT.update(after_evaluations=3, seen=0)  # Ctrl-C during the third chunk's evaluation
    cut = fl.learn.fit(_loss, jnp.zeros(3), opt, key, checkpoint=tmp_path, **kwargs)
    assert cut.interrupted and cut.step == 60
    INTERRUPT.update(after_evaluations=None)
    resumed = fl.learn.fit(_loss, jnp.zeros(3), opt, key, checkpoint=tmp_path, resume=True,
                           **kwargs)
    assert resumed.step == 120 and resumed.status == fl.Status.SUCCESS
    np.testing.assert_array_equal(resumed.losses, full.losses)
    np.testing.assert_array_equal(np.asarray(resumed.model), np.asarray(full.model))


def test_cli_ctrl_c_then_resume_equals_uninterrupted(train_toy, tmp_path, capsys):
    base = ["run", "train-toy", "--dtype", "float64"]
    assert cli.main(base + ["--out", str(tmp_path / "full")]) == 0
    INTERRUPT.update(after_evaluations=INTERRUPT["seen"] + 2, seen=INTERRUPT["seen"])
    assert cli.main(base + ["--out", str(tmp_path / "cut")]) == 130
    folder = tmp_path / "cut" / "train-toy"
    assert "--resume" in capsys.readouterr().err
    # Interrupted: a checkpoint and the config, but no (half-written) result.
    assert (folder / "checkpoint").is_dir() and (folder / "config.json").exists()
    assert not (folder / "metrics.json").exists()
    assert not list(folder.glob(".*.tmp"))
    # Resuming with another config is refused; with the same one it finishes.
    assert cli.main(base + ["--out", str(tmp_path / "cut"), "--resume",
                            "--set", "learning_rate=0.1"]) == 2
    assert "other settings" in capsys.readouterr().err
    assert cli.main(base + ["--out", str(tmp_path / "cut"), "--resume"]) == 0
    full = fl.experiments.load_run(tmp_path / "full" / "train-toy")
    resumed = fl.experiments.load_run(folder)
    assert resumed.passed and resumed.metrics == full.metrics
    np.testing.assert_array_equal(resumed.arrays["losses"], full.arrays["losses"])
    np.testing.assert_array_equal(resumed.arrays["weights"], full.arrays["weights"])
    assert json.loads((folder / "config.json").read_text())["config"]["steps"] == 120


def test_registry_raises_keyboard_interrupt_even_when_fit_caught_it(train_toy, tmp_path):
    INTERRUPT.update(after_evaluations=1, seen=0)
    with pytest.raises(KeyboardInterrupt):
        fl.experiments.run("train-toy", checkpoint=tmp_path)
    # The default handler is back: a later SIGINT is a plain KeyboardInterrupt again.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
