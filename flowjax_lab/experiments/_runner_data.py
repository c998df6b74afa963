"""The data of Tong et al.'s 2-D flow-matching table, as the public runner defines them.

Each definition is re-written here from its description in ``docs/protocols/tong2024_2d.md``
(the runner is ``atong01/conditional-flow-matching``, called CFM below). The runner generates
``N = 12 000`` points once per task and splits them 10 000 / 1 000 / 1 000 with a fixed
permutation; training reads the fixed train split. Random draws use JAX keys, so the values
differ from the runner's NumPy/torch draws while the definitions are the same.
"""

import math

import jax
import jax.numpy as jnp

from .. import _checks

SPLITS = (10_000, 1_000, 1_000)  # train, validation, test: every datamodule config of CFM
SPLIT_SEED = 42  # CFM seeds the split's generator with 42 in every run
# Source of each runner task: "gaussian" is a fresh N(0, I) draw in every batch (not stored).
TASKS = {
    "gaussian->8gaussians": ("gaussian", "8gaussians"),
    "moons->8gaussians": ("dsb-moons", "dsb-8gaussians"),
    "gaussian->moons": ("gaussian", "moons"),
    "gaussian->scurve": ("gaussian", "scurve"),
}
# CFM's scikit-learn datamodule passes random_state=42 whatever the run's seed: these targets
# are the same data in every seed.
FIXED_DATA = ("moons", "scurve")


def moon_arcs(n: int):
    """The noise-free, unshuffled two moons of scikit-learn's ``make_moons``: `(n, 2)`.

    The first ``n // 2`` points lie on the upper arc ``(cos s, sin s)`` and the other
    ``n - n // 2`` on the lower arc ``(1 - cos s, 1/2 - sin s)``, each with ``s`` evenly spaced
    on ``[0, pi]`` (both ends included).
    """
    n = _checks.positive_int(n, "n", minimum=2)
    upper = jnp.linspace(0.0, math.pi, n // 2)
    lower = jnp.linspace(0.0, math.pi, n - n // 2)
    return jnp.concatenate([jnp.stack([jnp.cos(upper), jnp.sin(upper)], 1),
                            jnp.stack([1 - jnp.cos(lower), 0.5 - jnp.sin(lower)], 1)])


def s_curve(t):
    """The (x, z) plane of scikit-learn's ``make_s_curve`` at parameters `t` `(n,)` in
    ``[-3 pi / 2, 3 pi / 2]``: ``(sin t, sign(t) (cos t - 1))``, `(n, 2)`."""
    return jnp.stack([jnp.sin(t), jnp.sign(t) * (jnp.cos(t) - 1)], 1)


def _make_moons(key, n: int, noise: float):
    """scikit-learn's ``make_moons(n, noise)``: the arcs shuffled, plus N(0, noise^2) on each
    coordinate: `(n, 2)`."""
    k_perm, k_noise = jax.random.split(key)
    points = jax.random.permutation(k_perm, moon_arcs(n))
    return points + noise * jax.random.normal(k_noise, points.shape)


def moons(key, n: int):
    """N->moons target (CFM ``runner/configs/datamodule/moons.yaml``, ``SKLearnDataModule`` in
    ``runner/src/datamodules/distribution_datamodule.py``): ``make_moons(n, noise=0.05)``, times
    2, then 1 subtracted from the first coordinate only: `(n, 2)` in about [-3, 3] x [-1, 2]."""
    return (2 * _make_moons(key, n, 0.05)).at[:, 0].add(-1.0)


def scurve(key, n: int):
    """N->scurve target (CFM ``configs/datamodule/scurve.yaml``, ``SKLearnDataModule``):
    ``make_s_curve(n, noise=0.05)`` keeping coordinates 0 and 2, times 1.5: `(n, 2)`.

    ``make_s_curve`` draws ``t = 3 pi (U - 1/2)`` and adds N(0, 0.05^2) to each of its three
    coordinates (the dropped middle one is ``2 U'``), so the kept plane is ``s_curve(t)`` plus
    noise."""
    n = _checks.positive_int(n, "n")
    k_t, k_noise = jax.random.split(key)
    t = 3 * math.pi * (jax.random.uniform(k_t, (n,)) - 0.5)
    return 1.5 * (s_curve(t) + 0.05 * jax.random.normal(k_noise, (n, 2)))


def gaussians8(key, n: int):
    """N->8gaussians target (CFM ``configs/datamodule/gaussians.yaml``, ``TorchDynDataModule``
    calling torchdyn ``ToyDataset.generate(n // 8, "gaussians", radius=5, std_gaussians=1,
    noise=1e-4)``, ``torchdyn/datasets/static_datasets.py``): exactly ``n // 8`` points per mode,
    ordered by mode, mode k ~ N(c_k + s_k, I) with centre ``c_k = 5 (cos, sin)(2 pi k / 8)``,
    k = 1..8, and one shared shift ``s_k ~ N(0, 1e-8 I)`` per mode: `(8 (n // 8), 2)`."""
    per_mode = _checks.positive_int(n, "n", minimum=8) // 8
    k_points, k_shift = jax.random.split(key)
    angles = 2 * math.pi * jnp.arange(1.0, 9.0) / 8
    centres = 5 * jnp.stack([jnp.cos(angles), jnp.sin(angles)], 1)
    centres = centres + 1e-4 * jax.random.normal(k_shift, (8, 2))
    points = jax.random.normal(k_points, (8, per_mode, 2)) + centres[:, None]
    return points.reshape(-1, 2)


def dsb_moons(key, n: int):
    """moons->8gaussians source (CFM ``configs/datamodule/twodim.yaml``, ``TwoDimDataModule``,
    ``data_distrib(n, "moon")`` of ``runner/src/datamodules/components/two_dim.py``, from DSB):
    ``make_moons(n, noise=0.1)`` standardised by one scalar mean and one scalar (unbiased)
    standard deviation over all entries, times 7: `(n, 2)`."""
    points = _make_moons(key, n, 0.1)
    return 7 * (points - points.mean()) / jnp.std(points, ddof=1)


def dsb_gaussians8(key, n: int):
    """moons->8gaussians target (``data_distrib(n, "8gaussians")``, same file): a centre drawn
    uniformly among ``4 (+-1, 0), 4 (0, +-1), 4 (+-1, +-1) / sqrt 2`` plus N(0, 0.5^2 I), all
    times 3 (centres at radius 12, standard deviation 1.5): `(n, 2)`."""
    n = _checks.positive_int(n, "n")
    k_mode, k_noise = jax.random.split(key)
    r = 1 / math.sqrt(2)
    centres = 4 * jnp.array([(1, 0), (-1, 0), (0, 1), (0, -1), (r, r), (r, -r), (-r, r),
                             (-r, -r)])
    modes = jax.random.randint(k_mode, (n,), 0, 8)
    return 3 * (centres[modes] + 0.5 * jax.random.normal(k_noise, (n, 2)))


SAMPLERS = {"moons": moons, "scurve": scurve, "8gaussians": gaussians8,
            "dsb-moons": dsb_moons, "dsb-8gaussians": dsb_gaussians8}


def split(points, splits=SPLITS):
    """`points` `(sum(splits), d)` split by the fixed permutation of key `SPLIT_SEED`: a tuple of
    arrays `(splits[i], d)`."""
    if points.shape[0] != sum(splits):
        raise ValueError(f"`points` must hold {sum(splits)} rows for splits {splits}, got "
                         f"{points.shape[0]}.")
    order = jax.random.permutation(jax.random.key(SPLIT_SEED), points.shape[0])
    edges = [sum(splits[:i]) for i in range(1, len(splits))]
    return tuple(jnp.split(points[order], edges))


def sample(name: str, key, n: int):
    """`n` points of the runner's data set `name`, a draw apart from its splits (a larger held-out
    set than the test split): generated at the next multiple of 8 (the 8gaussians definition
    draws whole modes) and `n` rows kept at random: `(n, 2)`."""
    name = _checks.choice(name, SAMPLERS, "name")
    n = _checks.positive_int(n, "n")
    k_points, k_keep = jax.random.split(key)
    points = SAMPLERS[name](k_points, 8 * math.ceil(n / 8))
    return jax.random.permutation(k_keep, points)[:n]


def dataset(name: str, key, splits=SPLITS):
    """The runner's data set `name` (a key of `SAMPLERS`) generated once with ``sum(splits)``
    points from `key` (from the fixed key `SPLIT_SEED` for `FIXED_DATA`, as the runner does) and
    split: `(train, validation, test)`, each `(size, 2)`."""
    name = _checks.choice(name, SAMPLERS, "name")
    key = jax.random.key(SPLIT_SEED) if name in FIXED_DATA else key
    return split(SAMPLERS[name](key, sum(splits)), splits)
