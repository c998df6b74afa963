"""The paper preset of fm-2d-protocol: the runner's data definitions, its splits, the with-
replacement OT pairs and the preset's fields (docs/protocols/tong2024_2d.md)."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flowjax_lab as fl
from flowjax_lab.experiments import _runner_data as rd, fm_2d_protocol as p2d

KEY = jax.random.key(0)


def test_moon_arcs_follow_their_formula():
    arcs = np.asarray(rd.moon_arcs(9))  # 4 points on the upper arc, 5 on the lower
    s_up, s_low = np.linspace(0, np.pi, 4), np.linspace(0, np.pi, 5)
    np.testing.assert_allclose(arcs[:4], np.c_[np.cos(s_up), np.sin(s_up)], atol=1e-6)
    np.testing.assert_allclose(arcs[4:], np.c_[1 - np.cos(s_low), 0.5 - np.sin(s_low)],
                               atol=1e-6)


def test_s_curve_follows_its_formula():
    t = jnp.array([-1.5 * math.pi, -math.pi / 2, 0.3, math.pi])
    np.testing.assert_allclose(rd.s_curve(t), [[1, 1], [-1, 1], [np.sin(0.3), np.cos(0.3) - 1],
                                               [0, -2]], atol=1e-6)


def test_arcs_and_s_curve_match_scikit_learn():
    datasets = pytest.importorskip("sklearn.datasets")
    moons, _ = datasets.make_moons(11, shuffle=False, noise=None)
    np.testing.assert_allclose(rd.moon_arcs(11), moons, atol=1e-6)
    curve, t = datasets.make_s_curve(50, noise=0.0, random_state=0)
    np.testing.assert_allclose(rd.s_curve(jnp.asarray(t)), curve[:, [0, 2]], atol=1e-5)


def test_runner_data_shapes_and_scales():
    n = 12_000
    moons = np.asarray(rd.moons(KEY, n))
    # x = 2 cos s - 1 or 1 - 2 cos s, y = 2 sin s or 1 - 2 sin s: means (0, 1/2).
    assert moons.shape == (n, 2)
    np.testing.assert_allclose(moons.mean(0), [0.0, 0.5], atol=0.02)
    scurve = np.asarray(rd.scurve(KEY, n))
    assert scurve.shape == (n, 2) and np.abs(scurve).max(0)[1] < 3.5
    modes = np.asarray(rd.gaussians8(KEY, n)).reshape(8, n // 8, 2)  # ordered by mode
    angles = 2 * np.pi * np.arange(1, 9) / 8
    np.testing.assert_allclose(modes.mean(1), 5 * np.c_[np.cos(angles), np.sin(angles)],
                               atol=0.12)  # 4.5 standard errors at 1 500 points, std 1
    np.testing.assert_allclose(modes.std(1), 1.0, atol=0.06)
    dsb = np.asarray(rd.dsb_moons(KEY, n))  # one scalar mean and std over every entry
    np.testing.assert_allclose([dsb.mean(), dsb.std(ddof=1)], [0.0, 7.0], atol=1e-4)
    radius = np.linalg.norm(np.asarray(rd.dsb_gaussians8(KEY, n)), axis=1)
    assert abs(np.median(radius) - 12) < 0.2


def test_splits_are_fixed():
    order = np.asarray(jnp.concatenate(rd.split(jnp.arange(12_000.0)[:, None])))[:, 0]
    np.testing.assert_array_equal(np.sort(order), np.arange(12_000))  # a partition
    train, val, test = rd.dataset("8gaussians", KEY)
    assert (train.shape, val.shape, test.shape) == ((10_000, 2), (1_000, 2), (1_000, 2))
    np.testing.assert_array_equal(train, rd.dataset("8gaussians", KEY)[0])
    other = jax.random.key(1)
    assert not np.array_equal(train, rd.dataset("8gaussians", other)[0])
    # scikit-learn data: the same in every seed, as the runner's random_state=42.
    np.testing.assert_array_equal(rd.dataset("moons", KEY)[1], rd.dataset("moons", other)[1])
    assert rd.sample("8gaussians", KEY, 13).shape == (13, 2)
    with pytest.raises(ValueError, match="`points` must hold 12000 rows"):
        rd.split(jnp.zeros((5, 2)))
    with pytest.raises(ValueError, match="`name`"):
        rd.dataset("8gauss", KEY)


def test_ot_pairs_with_replacement_come_from_the_plan():
    x0 = jax.random.normal(KEY, (16, 2))
    x1 = jax.random.normal(jax.random.key(1), (16, 2)) + 3
    a, b = fl.learn.couple(KEY, x0, x1, "ot")
    c, d = fl.learn.couple(KEY, x0, x1, "ot", replace=True)
    pairs = {tuple(np.round(row, 5)) for row in np.c_[a, b]}
    assert {tuple(np.round(row, 5)) for row in np.c_[c, d]} <= pairs
    assert len(np.unique(np.asarray(c), axis=0)) < 16  # 16 draws of 16 repeat (p > 0.999)


def test_paper_losses_redraw_plan_pairs_and_keep_independent_pairs():
    # The runner redraws pairs from a plan (OT-CFM, SB-CFM) and uses I-CFM's pairs as drawn.
    # With a fresh N(0, I) source every x0 row is distinct: a velocity target u = x1 - x0 repeats
    # only when pairs are redrawn (64 draws of 64 repeat with p > 0.999).
    config = dataclasses.replace(p2d.Config.paper(), batch_size=64)
    data = p2d.run_data(config, "gaussian->moons", "independent", KEY)
    for coupling, redrawn in (("independent", False), ("ot", True)):
        loss = p2d.protocol_loss(config, data.source, data.target, 64, coupling)
        u = np.asarray(loss.sample(KEY)[2])
        assert (len(np.unique(u, axis=0)) < 64) == redrawn, coupling
    unpaired = dataclasses.replace(config, replace_pairs=False)
    u = np.asarray(p2d.protocol_loss(unpaired, data.source, data.target, 64, "ot").sample(KEY)[2])
    assert len(np.unique(u, axis=0)) == 64

def test_paper_preset_fields():
    config = fl.experiments.get("fm-2d-protocol").make_config(preset="paper")
    assert config == p2d.Config.paper()
    expected = {"tasks": ("gaussian->8gaussians", "moons->8gaussians", "gaussian->moons",
                          "gaussian->scurve"),
                "repeats": 5, "steps": 20_000, "batch_size": 512, "width": 64, "depth": 3,
                "sigma": 0.1, "learning_rate": 1e-3, "euler_steps": 100, "eval_points": 10_000,
                "data": "runner", "replace_pairs": True, "val_every": 200,
                "compare_published": True, "floor_and_nfe": False, "npe_points": 2_000}
    assert {k: getattr(config, k) for k in expected} == expected
    assert config.methods == ("I-CFM", "OT-CFM")  # the runner's script runs these two
    sb_cells = {(t, "SB-CFM") for t in config.tasks if t != "moons->8gaussians"}
    assert set(p2d.PUBLISHED) == {(t, m) for t in config.tasks for m in config.methods} | sb_cells
    assert fl.experiments.get("fm-2d-protocol").presets() == ["paper"]
    assert p2d.Config.quick() == fl.experiments.get("fm-2d-protocol").make_config(quick=True)
    with pytest.raises(ValueError, match="'tasks'"):
        dataclasses.replace(config, tasks=("8gaussians->moons",))
    with pytest.raises(ValueError, match="'methods'"):
        dataclasses.replace(config, methods=("FM",))
    with pytest.raises(ValueError, match="'methods'"):
        dataclasses.replace(config, methods=())
    with pytest.raises(ValueError, match="'val_every'"):
        p2d.Config(val_every=10)
    with pytest.raises(ValueError, match="'npe_points'"):
        dataclasses.replace(config, npe_points=20_000)


def _value(model, key):
    return model["v"]


def test_best_model_keeps_the_lowest_validation_loss(tmp_path):
    best = p2d._BestModel(_value, {"v": jnp.zeros(())}, KEY, tmp_path)
    for v in (3.0, 1.0, 2.0, float("nan")):
        best({"v": jnp.asarray(v)})
    assert (best.value, float(best.model["v"]), best.calls) == (1.0, 1.0, 4)
    again = p2d._BestModel(_value, {"v": jnp.zeros(())}, KEY, tmp_path)  # a resumed run
    assert (again.value, float(again.model["v"]), again.calls) == (1.0, 1.0, 4)


def test_npe_standard_error_follows_the_euler_sums():
    # v(t, x) = x: Euler gives x_k = (1 + dt)^k x_0, so each particle's energy is
    # |x_0|^2 sum_k dt (1 + dt)^(2k), and the standard error is that factor times
    # sd(|x_0|^2) / sqrt(n), over W2^2.
    x0 = jax.random.normal(KEY, (500, 2))
    steps, w2 = 20, 1.7
    dt = 1 / steps
    factor = sum(dt * (1 + dt) ** (2 * k) for k in range(steps))
    sq = np.sum(np.asarray(x0, np.float64) ** 2, axis=1)
    energies, _ = fl.metrics.kinetic_energy(lambda t, x, args: x, x0, steps=steps,
                                            per_particle=True)
    np.testing.assert_allclose(energies, factor * sq, rtol=1e-5)
    mean, _ = fl.metrics.kinetic_energy(lambda t, x, args: x, x0, steps=steps)
    np.testing.assert_allclose(mean, np.mean(energies), rtol=1e-6)
    expected = factor * np.std(sq, ddof=1) / np.sqrt(sq.size) / w2**2
    np.testing.assert_allclose(p2d._npe_standard_error(energies, w2), expected, rtol=1e-4)
    assert np.isnan(p2d._npe_standard_error(energies.at[3].set(jnp.nan), w2))
    assert p2d.Config.quick().check_direction and not p2d.Config.quick().check_npe


def test_runner_data_run_compares_every_published_cell():
    # The paper preset at a toy size (20 steps): it runs end to end, stores the published cells
    # beside ours and draws them, and its untrained-like models miss the published W2.
    result = fl.experiments.run("fm-2d-protocol", preset="paper", tasks=("gaussian->moons",),
                                repeats=1, steps=20, val_every=10, eval_points=200,
                                npe_points=200)
    assert result.error is None, result.error
    cells = [c for c in result.checks if "within the published spread" in c.name]
    assert len(cells) == 4  # W2 and NPE of I-CFM and OT-CFM
    assert not all(c.passed for c in cells if "W2" in c.name)
    for label in ("I-CFM", "OT-CFM"):
        published = p2d.PUBLISHED["gaussian->moons", label][0]
        assert result.metrics[f"gaussian->moons {label} w2 mean published"] == published
    axes = result.figures["published"].axes
    assert len(axes) == 2 and all(len(ax.containers) == 4 for ax in axes)
