"""Planted faults in fm-memorization, fm-gaussian-learned and fm-2d-protocol: each run must finish
and fail through the named checks."""

import functools

import jax.numpy as jnp
from faults import assert_caught, diverged, untrained

import flowjax_lab as fl
from flowjax_lab.experiments import fm_2d_protocol, fm_gaussian_learned, fm_memorization
from flowjax_lab.fields import ExactFlowMatching

MEM_SMALL = {"n_train": 60, "n_generated": 180}
GL_SMALL = {"eval_points": 1000}
P2D_SMALL = {"eval_points": 200, "nfe_steps": (4,)}


# fm-memorization


class _FrozenExactField(ExactFlowMatching):
    def __call__(self, t, x, args=None):
        return jnp.zeros_like(x)


class _EarlyClipField(ExactFlowMatching):
    """Times clipped at 1 - 1e-2 instead of 1 - sqrt(eps): the flow stops short of the data."""

    def _times(self, t, x):
        return jnp.broadcast_to(jnp.clip(jnp.asarray(t, x.dtype), 0, 1 - 1e-2), x.shape[:1])


class _NegatedDivergenceField(ExactFlowMatching):
    def divergence(self, t, x, args=None):
        return -super().divergence(t, x, args)


class _WideSource:
    """Noise drawn from N(0, 4 I) where the field assumes N(0, I)."""

    @staticmethod
    def standard(d, dtype=None):
        return fl.Gaussian(jnp.zeros(d, dtype), 4 * jnp.eye(d, dtype=dtype))


def test_memorization_frozen_field(monkeypatch):
    monkeypatch.setattr(fm_memorization, "ExactFlowMatching", _FrozenExactField)
    result = fl.experiments.run("fm-memorization", quick=True, **MEM_SMALL)
    assert_caught(result, "on training points", "hit uniformly", "log-density")


def test_memorization_flow_stops_short(monkeypatch):
    monkeypatch.setattr(fm_memorization, "ExactFlowMatching", _EarlyClipField)
    result = fl.experiments.run("fm-memorization", quick=True, **MEM_SMALL)
    assert_caught(result, "on training points")


def test_memorization_negated_divergence(monkeypatch):
    monkeypatch.setattr(fm_memorization, "ExactFlowMatching", _NegatedDivergenceField)
    result = fl.experiments.run("fm-memorization", quick=True, **MEM_SMALL)
    assert_caught(result, "log-density")


def test_memorization_wrong_source_scale(monkeypatch):
    monkeypatch.setattr(fm_memorization, "Gaussian", _WideSource)
    result = fl.experiments.run("fm-memorization", quick=True, **MEM_SMALL)
    assert_caught(result, "hit uniformly", "log-density")


# fm-gaussian-learned


def test_gaussian_learned_untrained(monkeypatch):
    untrained(monkeypatch, fm_gaussian_learned)
    result = fl.experiments.run("fm-gaussian-learned", quick=True, **GL_SMALL)
    assert_caught(result, "learned A_t vs theory", "trained vs untrained", "learned end map")


def test_gaussian_learned_diverged(monkeypatch):
    diverged(monkeypatch, fm_gaussian_learned)
    result = fl.experiments.run("fm-gaussian-learned", quick=True, **GL_SMALL)
    assert_caught(result, "training ended ok", "learned A_t vs theory", "learned end map")


def test_gaussian_learned_ot_coupling(monkeypatch):
    # Minibatch OT pairs instead of independent ones: the model learns (nearly) the Monge map.
    monkeypatch.setattr(fm_gaussian_learned, "FlowMatchingLoss",
                        functools.partial(fl.learn.FlowMatchingLoss, coupling="ot"))
    result = fl.experiments.run("fm-gaussian-learned", quick=True, **GL_SMALL)
    assert_caught(result, "end map vs theory FM map", "nearer the FM map than the Monge map")


def test_gaussian_learned_transposed_fit(monkeypatch):
    # The other convention of the least-squares fit: y ~ x M instead of y ~ M x.
    monkeypatch.setattr(fm_gaussian_learned, "linear_fit",
                        lambda x, y: jnp.linalg.lstsq(x, y)[0])
    result = fl.experiments.run("fm-gaussian-learned", quick=True, **GL_SMALL)
    assert_caught(result, "non-commuting: learned A_t vs theory",
                  "non-commuting: learned end map vs theory FM map")


# fm-2d-protocol


def test_2d_protocol_untrained(monkeypatch):
    untrained(monkeypatch, fm_2d_protocol)
    result = fl.experiments.run("fm-2d-protocol", quick=True, **P2D_SMALL)
    assert_caught(result, "within the sampling floor", "trained vs untrained", "paths bend")


def test_2d_protocol_diverged(monkeypatch):
    diverged(monkeypatch, fm_2d_protocol)
    result = fl.experiments.run("fm-2d-protocol", quick=True, **P2D_SMALL)
    assert_caught(result, "training ended ok", "within the sampling floor",
                  "trained vs untrained", "paths bend")


def test_2d_protocol_tiny_learning_rate():
    result = fl.experiments.run("fm-2d-protocol", quick=True, learning_rate=1e-12, **P2D_SMALL)
    assert_caught(result, "within the sampling floor", "trained vs untrained", "paths bend")


def test_2d_protocol_huge_learning_rate():
    result = fl.experiments.run("fm-2d-protocol", quick=True, learning_rate=1e6, **P2D_SMALL)
    assert_caught(result, "training ended ok", "trained vs untrained")


def test_2d_protocol_ot_coupling_lost(monkeypatch):
    # Both models trained with independent pairs: "OT-CFM" is I-CFM under another name.
    monkeypatch.setattr(fm_2d_protocol, "COUPLINGS", {"I-CFM": "independent",
                                                      "OT-CFM": "independent"})
    result = fl.experiments.run("fm-2d-protocol", quick=True, **P2D_SMALL)
    assert_caught(result, "paths bend", "NPE below I-CFM's")


def test_2d_protocol_npe_from_the_wrong_energy(monkeypatch):
    # An evaluation mix-up: OT-CFM's NPE computed from I-CFM's kinetic energy (runs go I-CFM
    # first, then OT-CFM, one seed in the quick run).
    real = fm_2d_protocol.sample_metrics
    energies = {}

    def crossed(config, energy, x1, data, shared=None):
        label = "I-CFM" if "I-CFM" not in energies else "OT-CFM"
        energies.setdefault(label, energy)
        return real(config, energies["I-CFM"], x1, data, shared)

    monkeypatch.setattr(fm_2d_protocol, "sample_metrics", crossed)
    result = fl.experiments.run("fm-2d-protocol", quick=True, **P2D_SMALL)
    assert_caught(result, "NPE below I-CFM's")


def test_2d_protocol_sb_cfm_coupling_out_of_iterations(monkeypatch):
    # SB-CFM's Sinkhorn given 10 iterations: pairs drawn from an unconverged plan are caught by
    # the probe batches, whatever the samples look like.
    monkeypatch.setattr(fm_2d_protocol, "ENTROPIC_OPTIONS", {"max_iterations": 10})
    result = fl.experiments.run("fm-2d-protocol", quick=True, methods=("SB-CFM",), steps=100,
                                eval_points=100, floor_and_nfe=False)
    assert_caught(result, "entropic coupling converged")
    assert result.metrics["moons->8gaussians SB-CFM coupling_converged mean"] == 0.0
