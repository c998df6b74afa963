"""The experiment registry: discovery, typed overrides, several seeds (vmap or loop), failures."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flowjax_lab as fl
from flowjax_lab.experiments import Result, _registry, close


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    n: int = 4000
    scale: float = 1.0
    label: str = "toy"
    bins: tuple = (10, 20)
    fail: bool = False
    cap: float | None = None
    sigmas: float = 6.0
    dtype: str = "float64"  # vmap and loop agree to rounding: compared at 1e-12

    @classmethod
    def quick(cls):
        return cls(n=1000)


def _stats(config, key):
    """Pure JAX part: the sample variance of `n` draws of N(0, scale^2 I_2)."""
    x = config.scale * jax.random.normal(key, (config.n, 2))
    return jnp.var(x)


def _result(config, variance) -> Result:
    if config.fail:
        raise RuntimeError("the toy was asked to fail")
    result = Result("toy", dataclasses.asdict(config))
    result.metrics["variance"] = float(variance)
    # The sample variance of 2n standard normals has standard deviation sqrt(2 / (2n)).
    result.checks.append(close("sample variance vs scale^2", variance, config.scale**2,
                               config.sigmas * np.sqrt(1 / config.n)))
    result.arrays["variance"] = np.asarray(variance)
    return result


def _run(config, key):
    return _result(config, _stats(config, key))


def _batch(config, keys):
    variances = jax.vmap(lambda k: _stats(config, k))(keys)
    return [_result(config, v) for v in variances]


@pytest.fixture
def toy():
    """Register the toy experiment (with a vmapped batch) for one test only."""
    _registry._load_all()
    saved = dict(_registry._REGISTRY)
    fl.experiments.register("toy", theme="transformer dynamics", config=ToyConfig,
                            description="A toy.", batch=_batch)(_run)
    fl.experiments.register("toy-loop", theme="transformer dynamics", config=ToyConfig,
                            description="The toy without batch.")(_run)
    yield
    _registry._REGISTRY.clear()
    _registry._REGISTRY.update(saved)


def test_discovery_and_themes():
    assert "gaussian-transport" in fl.experiments.names()
    assert fl.experiments.broken() == {}
    for theme in fl.experiments.THEMES:
        assert all(fl.experiments.get(n).theme == theme for n in fl.experiments.names(theme))
    assert not fl.experiments.get("gaussian-transport").resumable


def test_overrides_are_parsed_and_typed(toy):
    exp = fl.experiments.get("toy")
    config = exp.make_config(quick=True, n="2e3", scale="0.5", label="x", bins="[3, 4]",
                             fail="false", cap="none")
    assert config == ToyConfig(n=2000, scale=0.5, label="x", bins=(3, 4), fail=False, cap=None)
    assert exp.make_config(scale=2, cap="1.5") == ToyConfig(scale=2.0, cap=1.5)
    assert exp.make_config(quick=True).n == 1000


def test_unknown_key_names_the_nearest(toy):
    with pytest.raises(ValueError, match="Did you mean 'scale'"):
        fl.experiments.run("toy", scael=2.0)


# Fields whose meaning fixes their sign wherever an experiment has them.
POSITIVE_FIELDS = ("learning_rate", "lr", "steps", "train_steps", "batch", "batch_size", "n",
                   "n_eval", "n_test", "width", "grid")


@pytest.mark.parametrize("name", fl.experiments.names())
def test_bad_override_values_raise_naming_the_field(name):
    experiment = fl.experiments.get(name)
    fields = {f: type(v) for f, _, v in experiment.fields()}
    numbers = [f for f, kind in fields.items() if kind in (int, float)]
    for field in numbers:
        with pytest.raises((TypeError, ValueError), match=field):
            fl.experiments.run(name, quick=True, **{field: "not a number"})
    for field in [f for f in numbers if fields[f] is float]:
        with pytest.raises(ValueError, match=field):
            fl.experiments.run(name, quick=True, **{field: "nan"})
    for field in [f for f in POSITIVE_FIELDS if f in numbers]:
        with pytest.raises(ValueError, match=field):
            fl.experiments.run(name, quick=True, **{field: fields[field](-1)})


def test_run_checks_against_theory(toy):
    result = fl.experiments.run("toy", quick=True, seed=3)
    assert result.passed and result.seeds == [3]
    assert result.error is None and result.seconds > 0
    # The same key gives the same numbers.
    again = fl.experiments.run("toy", key=jax.random.key(3), quick=True)
    assert again.metrics == result.metrics
    # A wrong reference (scale 1 sampled, 4 claimed) is caught by the check.
    bad = _result(ToyConfig(n=1000, scale=2.0), _stats(ToyConfig(n=1000), jax.random.key(0)))
    assert not bad.passed


def test_seeds_vmap_equals_loop_and_combines(toy):
    seeds = [4, 5, 6]
    batched = fl.experiments.run("toy", quick=True, seeds=seeds)
    looped = fl.experiments.run("toy-loop", quick=True, seeds=seeds)
    singles = [fl.experiments.run("toy-loop", quick=True, seed=s).metrics["variance"]
               for s in seeds]
    np.testing.assert_allclose(batched.metrics["variance"], np.mean(singles), rtol=1e-12)
    np.testing.assert_allclose(looped.metrics["variance"], np.mean(singles), rtol=1e-12)
    np.testing.assert_allclose(batched.metrics["variance_std"], np.std(singles), rtol=1e-9)
    worst = max(abs(v - 1.0) for v in singles)
    np.testing.assert_allclose(batched.checks[0].error, worst, rtol=1e-9)
    assert batched.arrays["variance"].shape == (3,)
    assert batched.seeds == seeds
    assert fl.experiments.run("toy", quick=True, seed=4, seeds=3).seeds == [4, 5, 6]


def test_a_check_failing_for_one_seed_fails_the_combination(toy):
    # Half a standard deviation: some seeds pass, others do not.
    config = {"sigmas": 0.5, "quick": True}
    singles = [fl.experiments.run("toy", seed=s, **config).passed for s in range(6)]
    assert any(singles) and not all(singles)
    assert not fl.experiments.run("toy", seeds=6, **config).passed


def test_failures_are_reported_not_raised(toy):
    result = fl.experiments.run("toy", quick=True, fail=True)
    assert not result.passed
    assert "RuntimeError: the toy was asked to fail" in result.error
    assert "Traceback" in result.traceback
    combined = fl.experiments.run("toy-loop", quick=True, fail=True, seeds=2)
    assert combined.error.startswith("seed 0: RuntimeError")


def test_saved_run_reads_back(toy, tmp_path):
    result = fl.experiments.run("toy", quick=True)
    folder = fl.experiments.save_run(result, tmp_path / "toy")
    assert sorted(p.name for p in folder.iterdir()) == ["arrays.npz", "config.json",
                                                         "metrics.json"]
    back = fl.experiments.load_run(folder)
    assert back.metrics == result.metrics and back.checks == result.checks
    assert back.config == {**result.config, "bins": [10, 20]}  # JSON has no tuples
    np.testing.assert_array_equal(back.arrays["variance"], result.arrays["variance"])
