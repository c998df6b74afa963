"""Planted faults in gaussian-transport, langevin-equilibrium, aggregation and jko-vs-flow: each
run must finish and fail through the named checks."""

import equinox as eqx
import jax.numpy as jnp
from faults import assert_caught

import flowjax_lab as fl
from flowjax_lab.experiments import aggregation, gaussian_transport
from flowjax_lab.fields import GaussianFlowMatching

GT_SMALL = {"n": 1000, "saved_times": 5}
LE_SMALL = {"n": 1000, "t1": 2.0, "steps": 100, "saved_times": 5}
AGG_SMALL = {"n": 100, "t1": 6.0, "saved_times": 9}
JKO_SMALL = {"n": 12, "step_counts": (4, 8)}


# gaussian-transport


class _TransposedField(GaussianFlowMatching):
    """The other transpose convention: ``x @ A_t`` instead of ``x @ A_t^T``."""

    def __call__(self, t, x, args=None):
        return x @ self.matrix(t)


class _NegatedField(GaussianFlowMatching):
    def __call__(self, t, x, args=None):
        return -super().__call__(t, x, args)


class _FrozenField(GaussianFlowMatching):
    def __call__(self, t, x, args=None):
        return jnp.zeros_like(x)


def test_gaussian_transport_transposed_field(monkeypatch):
    monkeypatch.setattr(gaussian_transport, "GaussianFlowMatching", _TransposedField)
    result = fl.experiments.run("gaussian-transport", quick=True, **GT_SMALL)
    assert_caught(result, "FM particle covariance", "FM particle map")


def test_gaussian_transport_negated_field(monkeypatch):
    monkeypatch.setattr(gaussian_transport, "GaussianFlowMatching", _NegatedField)
    result = fl.experiments.run("gaussian-transport", quick=True, **GT_SMALL)
    assert_caught(result, "FM particle covariance", "FM particle map")


def test_gaussian_transport_frozen_field(monkeypatch):
    monkeypatch.setattr(gaussian_transport, "GaussianFlowMatching", _FrozenField)
    result = fl.experiments.run("gaussian-transport", quick=True, **GT_SMALL)
    assert_caught(result, "FM particle covariance", "FM particle map", "OT transport cost")


def test_gaussian_transport_inverted_monge_map(monkeypatch):
    real = fl.transport.gaussian_monge_map
    monkeypatch.setattr(fl.transport, "gaussian_monge_map", lambda c0, c1: real(c1, c0))
    result = fl.experiments.run("gaussian-transport", quick=True, **GT_SMALL)
    assert_caught(result, "OT particle covariance", "OT path energy")


# langevin-equilibrium


def _patch_langevin(monkeypatch, change):
    """Replace ``flows.langevin`` by one whose keyword arguments (a dict) pass through `change`."""
    real = fl.flows.langevin
    monkeypatch.setattr(fl.flows, "langevin", lambda x0, key, **kw: real(x0, key, **change(kw)))


def test_langevin_wrong_temperature(monkeypatch):
    # Noise sqrt(T) dW instead of sqrt(2T) dW: the particles feel half the temperature.
    _patch_langevin(monkeypatch, lambda kw: {**kw, "temperature": kw["temperature"] / 2})
    result = fl.experiments.run("langevin-equilibrium", quick=True, **LE_SMALL)
    assert_caught(result, "heat covariance", "OU covariance", "OU final covariance")


def test_langevin_negated_drift(monkeypatch):
    def negate(kw):
        if kw.get("potential") is None:
            return kw
        return {**kw, "potential": fl.flows.QuadraticPotential(-kw["potential"].matrix)}

    _patch_langevin(monkeypatch, negate)
    result = fl.experiments.run("langevin-equilibrium", quick=True, **LE_SMALL)
    assert_caught(result, "OU covariance", "OU final covariance")


def test_langevin_frozen_drift(monkeypatch):
    _patch_langevin(monkeypatch, lambda kw: {**kw, "potential": None})
    result = fl.experiments.run("langevin-equilibrium", quick=True, **LE_SMALL)
    assert_caught(result, "OU covariance", "OU final covariance")


def test_langevin_too_few_steps():
    result = fl.experiments.run("langevin-equilibrium", quick=True, **{**LE_SMALL, "steps": 10})
    assert_caught(result, "Euler-Maruyama step")


# aggregation


def _patch_simulate(monkeypatch, change):
    """Replace aggregation's ``simulate`` by one that integrates ``change(field)``."""
    real = aggregation.simulate
    monkeypatch.setattr(aggregation, "simulate",
                        lambda field, x0, **kw: real(change(field), x0, **kw))


def test_aggregation_negated_field(monkeypatch):
    _patch_simulate(monkeypatch, lambda f: lambda t, x, a: -f(t, x, a))
    result = fl.experiments.run("aggregation", quick=True, **AGG_SMALL)
    assert_caught(result, "second moment", "energy increase")


def test_aggregation_frozen_field(monkeypatch):
    _patch_simulate(monkeypatch, lambda f: lambda t, x, a: jnp.zeros_like(x))
    result = fl.experiments.run("aggregation", quick=True, **AGG_SMALL)
    assert_caught(result, "second moment", "radial distribution", "support radius")


def test_aggregation_wrong_repulsion_exponent(monkeypatch):
    # The default exponent b = 0.5 instead of the logarithm (b = 0), in field and energy alike.
    real = fl.flows.PowerLawKernel
    monkeypatch.setattr(fl.flows, "PowerLawKernel", lambda a, b: real(a, 0.5))
    result = fl.experiments.run("aggregation", quick=True, **AGG_SMALL)
    assert_caught(result, "second moment")


def test_aggregation_too_short_horizon():
    # Not yet at the steady state: the exact relaxation of m2 still holds, the disk does not.
    result = fl.experiments.run("aggregation", quick=True, **{**AGG_SMALL, "t1": 0.5})
    assert_caught(result, "radial distribution", "support radius")
    assert "second moment vs virial closed form (max over t)" not in result.failed_checks


# jko-vs-flow


def _patch_jko(monkeypatch, change):
    """Replace ``flows.jko`` by one whose arguments (a dict) pass through `change`."""
    real = fl.flows.jko

    def jko(energy, x0, tau, num_steps):
        return real(**change({"energy": energy, "x0": x0, "tau": tau, "num_steps": num_steps}))

    monkeypatch.setattr(fl.flows, "jko", jko)


def test_jko_frozen(monkeypatch):
    real = fl.flows.jko

    def frozen(*args):
        traj = real(*args)
        return eqx.tree_at(lambda t: t.xs, traj, jnp.broadcast_to(traj.xs[0], traj.xs.shape))

    monkeypatch.setattr(fl.flows, "jko", frozen)
    result = fl.experiments.run("jko-vs-flow", quick=True, **JKO_SMALL)
    assert_caught(result, "log-log slope")


def test_jko_half_time_step(monkeypatch):
    # The proximal cost |y - x|^2 / tau instead of / (2 tau): each step moves half as far.
    _patch_jko(monkeypatch, lambda kw: {**kw, "tau": kw["tau"] / 2})
    result = fl.experiments.run("jko-vs-flow", quick=True, **JKO_SMALL)
    assert_caught(result, "log-log slope")


def test_jko_unconverged_solves(monkeypatch):
    _patch_jko(monkeypatch, lambda kw: {**kw, "max_steps": 2})
    result = fl.experiments.run("jko-vs-flow", quick=True, **JKO_SMALL)
    assert_caught(result, "every JKO solve succeeded")


def test_jko_negated_energy(monkeypatch):
    _patch_jko(monkeypatch, lambda kw: {**kw, "energy": lambda y: -kw["energy"](y)})
    result = fl.experiments.run("jko-vs-flow", quick=True, **JKO_SMALL)
    assert_caught(result, "JKO energy increase")
