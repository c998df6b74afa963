"""Toy data sets: shapes, dtypes, keys and jit for every name, and the geometry of each set."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flowjax_lab as fl

NAMES = fl.datasets.names()
N = 20000


@functools.cache
def _draw(name, seed=0, n=N, **options):
    """Points and labels as NumPy arrays (cached: several tests read the same draw)."""
    x, label = fl.datasets.sample_labeled(name, jax.random.key(seed), n, **options)
    return np.asarray(x), np.asarray(label)


def test_names_are_the_documented_sets():
    assert set(NAMES) == {"gaussian", "8gaussians", "moons", "checkerboard", "spirals",
                          "circles", "mixture"}


@pytest.mark.parametrize("name", NAMES)
def test_shape_dtype_keys_and_jit(name):
    key = jax.random.key(5)
    x, label = fl.datasets.sample_labeled(name, key, 300)
    assert x.shape == (300, 2) and label.shape == (300,)
    assert x.dtype == jnp.float64  # the default float (float64 under this harness)
    assert jnp.issubdtype(label.dtype, jnp.integer)
    assert np.all(np.isfinite(np.asarray(x)))
    # Same key, same points; another key, other points.
    np.testing.assert_array_equal(fl.datasets.sample(name, key, 300), x)
    assert not np.array_equal(np.asarray(fl.datasets.sample(name, jax.random.key(6), 300)),
                              np.asarray(x))
    # jit-compatible (the key is traced), same draw as eagerly.
    jitted = jax.jit(lambda k: fl.datasets.sample(name, k, 300))(key)
    np.testing.assert_allclose(jitted, x, rtol=1e-12, atol=1e-12)
    # The requested dtype is kept.
    x32 = fl.datasets.sample(name, key, 300, dtype=jnp.float32)
    assert x32.dtype == jnp.float32 and np.all(np.isfinite(np.asarray(x32)))


@pytest.mark.parametrize("name", ["gaussian", "mixture"])
def test_any_dimension_for_gaussian_and_mixture(name):
    x = fl.datasets.sample(name, jax.random.key(0), 500, dim=5)
    assert x.shape == (500, 5) and np.all(np.isfinite(np.asarray(x)))


def test_gaussian_is_standard_normal():
    x = np.asarray(fl.datasets.sample("gaussian", jax.random.key(0), N, dim=3))
    assert np.linalg.norm(x.mean(0)) < 5 * np.sqrt(3 / N)
    assert np.linalg.norm(np.cov(x.T, bias=True) - np.eye(3)) < 5 * np.sqrt(12 / N)


def test_eight_gaussians_cluster_around_eight_centres_at_radius_five():
    x, label = _draw("8gaussians")
    angles = 2 * np.pi * np.arange(8) / 8
    centres = 5 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    # Every point is within 6 standard deviations (std sqrt(0.1)) of its own centre, which is
    # also its nearest centre (the centres are 3.8 apart).
    distance = np.linalg.norm(x[:, None, :] - centres[None], axis=-1)
    np.testing.assert_array_equal(np.argmin(distance, axis=1), label)
    assert np.max(distance[np.arange(N), label]) < 6 * np.sqrt(0.1)
    for k in range(8):
        members = x[label == k]
        assert abs(len(members) / N - 1 / 8) < 5 * np.sqrt(7 / 64 / N)  # uniform components
        assert np.linalg.norm(members.mean(0) - centres[k]) < 5 * np.sqrt(0.2 / len(members))
        np.testing.assert_allclose(np.var(members, axis=0), 0.1, rtol=0.15)
    # Radius 5 on average.
    assert abs(np.mean(np.linalg.norm(x, axis=1)) - 5) < 0.02


def test_circles_radii():
    # Without noise the two classes lie exactly on circles of radii 3 and 1.5.
    x, label = _draw("circles", noise=0.0)
    radius = np.linalg.norm(x, axis=1)
    np.testing.assert_allclose(radius[label == 0], 3.0, rtol=1e-12)
    np.testing.assert_allclose(radius[label == 1], 1.5, rtol=1e-12)
    # Angles are uniform: the mean of each circle is its centre, the origin.
    for k in (0, 1):
        assert np.linalg.norm(x[label == k].mean(0)) < 5 * 3 / np.sqrt(np.sum(label == k))
    # With the default noise the radii spread by about 3 * 0.08 around the same values.
    x, label = _draw("circles")
    radius = np.linalg.norm(x, axis=1)
    for k, r in ((0, 3.0), (1, 1.5)):
        assert abs(np.median(radius[label == k]) - r) < 0.02
        assert abs(np.std(radius[label == k]) - 0.24) < 0.02


def test_moons_lie_on_two_half_circles():
    x, label = _draw("moons", noise=0.0)
    upper, lower = x[label == 0], x[label == 1]
    # 2 * make_moons - 1: half circles of radius 2 about (-1, -1) (upper) and (1, 0) (lower).
    np.testing.assert_allclose(np.linalg.norm(upper - np.array([-1.0, -1.0]), axis=1), 2.0,
                               rtol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(lower - np.array([1.0, 0.0]), axis=1), 2.0,
                               rtol=1e-12)
    assert np.all(upper[:, 1] >= -1 - 1e-12) and np.all(lower[:, 1] <= 1e-12)
    # The two moons are point reflections of each other through (0, -1/2).
    np.testing.assert_allclose(upper.mean(0) + lower.mean(0), [0.0, -1.0], atol=0.05)


def test_mixture_mean_and_components():
    x, label = _draw("mixture", dim=3)
    angles = 2 * np.pi * np.arange(3) / 3
    centres = np.zeros((3, 3))
    centres[:, 0], centres[:, 1] = 3 * np.cos(angles), 3 * np.sin(angles)
    # Equal-weight components on a regular triangle: the mixture is centred.
    # Per coordinate the variance is 0.25 + 9/2 in the plane, 0.25 off it.
    variance = np.array([0.25 + 4.5, 0.25 + 4.5, 0.25])
    assert np.all(np.abs(x.mean(0)) < 5 * np.sqrt(variance / N))
    np.testing.assert_allclose(np.var(x, axis=0), variance, rtol=0.05)
    for k in range(3):
        members = x[label == k]
        assert np.linalg.norm(members.mean(0) - centres[k]) < 5 * 0.5 * np.sqrt(3 / len(members))
        np.testing.assert_allclose(np.std(members, axis=0), 0.5, rtol=0.05)


def test_checkerboard_occupies_alternate_squares():
    x, _ = _draw("checkerboard")
    assert np.all(np.abs(x) <= 4)
    # 4 x 4 squares of side 2 on [-4, 4]^2; points lie only in squares with i + j even.
    i, j = np.floor(x[:, 0] / 2).astype(int), np.floor(x[:, 1] / 2).astype(int)
    assert np.all((i + j) % 2 == 0)
    counts = np.zeros((4, 4))
    np.add.at(counts, (i + 2, j + 2), 1)
    occupied = counts[(np.add.outer(np.arange(4), np.arange(4)) % 2) == 0] / N
    # Eight occupied squares, equally likely, each filled uniformly (mean at its centre).
    assert occupied.size == 8 and np.all(np.abs(occupied - 1 / 8) < 5 * np.sqrt(7 / 64 / N))
    for a, b in ((0, 0), (1, 1), (-2, 0), (-1, -1)):
        inside = x[(i == a) & (j == b)]
        np.testing.assert_allclose(inside.mean(0), [2 * a + 1, 2 * b + 1], atol=0.06)


def test_spirals_two_opposite_arms_with_sqrt_spacing():
    x, label = _draw("spirals")
    # 3 x = +-s (-cos s, sin s) + U[0, 1/2)^2 with s = 3 pi sqrt(u): the offset (1/4, 1/4)
    # is the mean of the noise; the two arms are point reflections of each other.
    y = 3 * x - 0.25
    arm0, arm1 = y[label == 0], y[label == 1]
    spread = np.sqrt(arm0.var(0) / len(arm0) + arm1.var(0) / len(arm1))
    assert np.all(np.abs(arm0.mean(0) + arm1.mean(0)) < 5 * spread)
    np.testing.assert_allclose(np.cov(arm0.T), np.cov(arm1.T), rtol=0.1)
    # s^2 is uniform on [0, 9 pi^2]: E|y|^2 = 9 pi^2 / 2 + 2 / 48 (noise variance).
    for arm in (arm0, arm1):
        second_moment = np.mean(np.sum(arm**2, axis=1))
        assert abs(second_moment - (9 * np.pi**2 / 2 + 1 / 24)) < 1.5, second_moment
    # Radii reach 3 pi (plus the noise) and no further.
    assert np.max(np.linalg.norm(y, axis=1)) < 3 * np.pi + 0.36


def test_labels_are_components():
    for name, count in (("8gaussians", 8), ("moons", 2), ("circles", 2), ("spirals", 2),
                        ("mixture", 3)):
        _, label = _draw(name)
        assert set(np.unique(label)) == set(range(count)), name


# Real sets shipped inside scikit-learn.
REAL_SIZES = {"digits": (1347, 450, 64, 10), "iris": (112, 38, 4, 3), "wine": (133, 45, 13, 3),
              "breast_cancer": (426, 143, 30, 2)}


def test_real_names_are_the_shipped_sets():
    assert set(fl.datasets.real_names()) == set(REAL_SIZES)
    assert not set(fl.datasets.real_names()) & set(NAMES)


@pytest.mark.parametrize("name", sorted(REAL_SIZES))
def test_real_split_is_fixed_disjoint_and_stratified(name):
    n_train, n_test, dim, classes = REAL_SIZES[name]
    x_train, y_train = (np.asarray(a) for a in fl.datasets.load(name, "train", scale="raw"))
    x_test, y_test = (np.asarray(a) for a in fl.datasets.load(name, "test", scale="raw"))
    assert x_train.shape == (n_train, dim) and x_test.shape == (n_test, dim)
    assert x_train.dtype == np.float64  # the default float under this harness
    # disjoint rows that together are the shipped set (as a multiset of rows)
    from sklearn import datasets as shipped
    full = getattr(shipped, f"load_{name}")()
    rows = np.concatenate([x_train, x_test])
    order = np.lexsort(rows.T)
    reference = full.data[np.lexsort(full.data.T)]
    np.testing.assert_array_equal(rows[order], reference)
    # stratified: each class's share of the test split within one row of its share overall
    counts = np.bincount(full.target, minlength=classes)
    np.testing.assert_array_less(
        np.abs(np.bincount(y_test, minlength=classes) - counts * n_test / counts.sum()), 1.0 + 1e-9)
    # the same rows on every call
    np.testing.assert_array_equal(np.asarray(fl.datasets.load(name, "test", scale="raw")[0]),
                                  x_test)


def test_digit_scales():
    raw = np.asarray(fl.datasets.load("digits", scale="raw")[0])
    assert raw.min() == 0 and raw.max() == 16 and np.all(raw == np.round(raw))
    symmetric = np.asarray(fl.datasets.load("digits")[0])  # the default scale
    np.testing.assert_allclose(symmetric, raw / 8 - 1, atol=1e-15)
    standard = np.asarray(fl.datasets.load("digits", scale="standard")[0])
    spread = raw.std(axis=0)
    np.testing.assert_allclose(standard.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(standard.std(axis=0)[spread > 0], 1, atol=1e-12)
    np.testing.assert_array_equal(standard[:, spread == 0], 0)  # constant pixels: centred only


def test_tables_standardised_on_the_training_split():
    x_train = np.asarray(fl.datasets.load("wine")[0])
    np.testing.assert_allclose(x_train.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(x_train.std(axis=0), 1, atol=1e-12)
    raw_test = np.asarray(fl.datasets.load("wine", "test", scale="raw")[0])
    raw_train = np.asarray(fl.datasets.load("wine", scale="raw")[0])
    np.testing.assert_allclose(
        np.asarray(fl.datasets.load("wine", "test")[0]),
        (raw_test - raw_train.mean(axis=0)) / raw_train.std(axis=0), atol=1e-12)


def test_real_sample_draws_rows_of_the_split_under_jit():
    x_test, y_test = (np.asarray(a) for a in fl.datasets.load("digits", "test"))
    draw = jax.jit(lambda k: fl.datasets.sample_labeled("digits", k, 500, split="test",
                                                        dtype=jnp.float32))
    x, label = (np.asarray(a) for a in draw(jax.random.key(3)))
    assert x.shape == (500, 64) and x.dtype == np.float32 and label.shape == (500,)
    # every drawn row is a test row with its own label
    distance = ((x[:, None, :] - x_test[None].astype(np.float32)) ** 2).sum(-1)
    nearest = distance.argmin(axis=1)
    np.testing.assert_array_equal(distance[np.arange(500), nearest], 0)
    np.testing.assert_array_equal(y_test[nearest], label)
    assert len(np.unique(nearest)) > 300  # 500 draws with replacement from 450 rows
