"""Bad input to the gradient-flow and mean-field API: each row names the argument at fault."""

import jax.numpy as jnp
import pytest

import flowjax_lab as fl
from flowjax_lab import flows
from flowjax_lab.fields import Interaction, LinearNetworkField, TwoLayerMeanField

X = jnp.ones((4, 2)) * jnp.arange(4.0)[:, None]
SZZ = jnp.eye(2)
SYZ = jnp.ones((1, 2))
KEY = __import__("jax").random.key(0)
vector_kernel = lambda z: z  # returns (d,), not a scalar

ROWS = [
    (lambda: Interaction(kernel=3.0), TypeError, "`kernel` must be callable"),
    (lambda: Interaction(potential="x"), TypeError, "`potential` must be callable"),
    (lambda: Interaction(flows.GaussianKernel(), chunk_size=0), ValueError, "`chunk_size`"),
    (lambda: Interaction(weights=jnp.array([0.5, 0.6])), ValueError, "`weights` must sum"),
    (lambda: Interaction(weights=jnp.ones((2, 2)) / 4), ValueError, "`weights` must have shape"),
    (lambda: Interaction(vector_kernel)(0.0, X), ValueError, "`kernel` must return a scalar"),
    (lambda: Interaction(potential=lambda x: x[:1])(0.0, X), ValueError, "`potential` must"),
    (lambda: Interaction(flows.GaussianKernel(), weights=jnp.ones(3) / 3)(0.0, X), ValueError,
     "`weights` has shape"),
    (lambda: fl.fields.interaction_energy(jnp.ones(3), flows.GaussianKernel()), ValueError,
     "`x` must be a particle cloud"),
    (lambda: fl.fields.interaction_energy(X, vector_kernel), ValueError, "`kernel` must return"),
    (lambda: fl.fields.interaction_energy(X, flows.GaussianKernel(), weights=jnp.ones(4)),
     ValueError, "`weights` must"),
    (lambda: fl.simulate(Interaction(vector_kernel), X), ValueError, "`kernel` must return"),
    (lambda: flows.GaussianKernel(scale=0.0), ValueError, "`scale` must be > 0"),
    (lambda: flows.RieszKernel(s=-1.0), ValueError, "`s` must be > 0"),
    (lambda: flows.PowerLawKernel(a=1.0, b=2.0), ValueError, "`b` must be < `a`"),
    (lambda: flows.PowerLawKernel(a=-1.0, b=-2.0), ValueError, "`a` must be > 0"),
    (lambda: flows.energy_along(flows.GaussianKernel(), X[None]), TypeError,
     "`field` must be a fields.Interaction"),
    (lambda: flows.energy_along(Interaction(flows.GaussianKernel()), X), ValueError,
     r"`xs` must be saved clouds of shape \(T, n, d\)"),
    (lambda: flows.dissipation(Interaction(), jnp.ones(3)), ValueError, "`x` must be a particle"),
    (lambda: flows.jko_step(Interaction().energy, X, 0.0), ValueError, "`tau` must be > 0"),
    (lambda: flows.jko_step(Interaction().energy, X, -1.0), ValueError, "`tau` must be > 0"),
    (lambda: flows.jko_step(lambda y: y, X, 0.1), ValueError, "`energy` must return a scalar"),
    (lambda: flows.jko_step("energy", X, 0.1), TypeError, "`energy` must be callable"),
    (lambda: flows.jko_step(Interaction().energy, X, 0.1, weights=jnp.ones(4)), ValueError,
     "`weights` must sum"),
    (lambda: flows.jko(Interaction().energy, X, 0.1, 0), ValueError, "`num_steps`"),
    (lambda: flows.jko(Interaction().energy, X, 0.1, 2.5), TypeError, "`num_steps`"),
    (lambda: flows.jko(Interaction().energy, X, 0.1, 2, max_steps=0), ValueError, "`max_steps`"),
    (lambda: flows.langevin(X, KEY, temperature=-1.0, steps=2), ValueError,
     "`temperature` must be >= 0"),
    (lambda: flows.langevin(X, KEY, steps=0), ValueError, "`steps`"),
    (lambda: flows.langevin(X, None, steps=2), TypeError, "`key`"),
    (lambda: flows.langevin(X, KEY, kernel=vector_kernel, steps=2), ValueError,
     "`kernel` must return a scalar"),
    (lambda: LinearNetworkField(SZZ, jnp.ones((1, 3))), ValueError, r"`Syz` must have shape"),
    (lambda: LinearNetworkField(-SZZ, SYZ), ValueError, "`Szz` must be positive definite"),
    (lambda: LinearNetworkField(SZZ, SYZ)(0.0, X), ValueError, r"neurons `x` must have shape"),
    (lambda: LinearNetworkField.from_data(X, jnp.ones(3)), ValueError, "`y` must have shape"),
    (lambda: fl.theory.linear_network_covariance(jnp.eye(2), SZZ, SYZ, jnp.arange(3.0)),
     ValueError, r"`cov0` must have shape \(3, 3\)"),
    (lambda: fl.theory.linear_network_covariance(jnp.eye(3), SZZ, jnp.ones((1, 3)),
                                                 jnp.arange(3.0)), ValueError, "`Syz`"),
    (lambda: fl.theory.linear_network_covariance(jnp.eye(3), SZZ, SYZ, jnp.array([1.0, 0.0])),
     ValueError, "`ts` must be increasing"),
    (lambda: fl.theory.linear_network_covariance(jnp.eye(3), SZZ, SYZ, jnp.ones((2, 2))),
     ValueError, "`ts` must be a non-empty 1-D"),
    (lambda: fl.theory.linear_network_covariance(jnp.eye(3), SZZ, SYZ, jnp.ones(2), t0=2.0),
     ValueError, r"`ts` must be >= `t0`"),
    (lambda: fl.theory.linear_network_covariance(jnp.eye(3), SZZ, SYZ, jnp.ones(2),
                                                 t0=float("inf")), ValueError,
     "`t0` must be a finite scalar"),
    *[(lambda scale=scale: fl.theory.linear_network_covariance(jnp.eye(3), SZZ, SYZ,
                                                               jnp.ones(2), risk_scale=scale),
       error, message) for scale, error, message in [
        (0.0, ValueError, "`risk_scale` must be > 0"),
        (-0.5, ValueError, "`risk_scale` must be > 0"),
        (float("nan"), ValueError, "`risk_scale` must be a finite scalar"),
        (float("inf"), ValueError, "`risk_scale` must be a finite scalar"),
        (jnp.ones(2), ValueError, "`risk_scale` must be a finite scalar, got shape"),
        (jnp.array(-1.0), ValueError, "`risk_scale` must be > 0"),
        ("1", TypeError, "`risk_scale` must be a positive finite float"),
        (True, TypeError, "`risk_scale` must be a positive finite float"),
        (None, TypeError, "`risk_scale` must be a positive finite float")]],
    (lambda: LinearNetworkField(SZZ, SYZ, risk_scale=0.0), ValueError,
     "`risk_scale` must be > 0"),
    (lambda: LinearNetworkField(SZZ, SYZ, risk_scale=float("nan")), ValueError,
     "`risk_scale` must be a finite scalar"),
    (lambda: LinearNetworkField(SZZ, SYZ, risk_scale=None), TypeError,
     "`risk_scale` must be a positive finite float"),
    (lambda: LinearNetworkField.from_data(X, jnp.ones(4), risk_scale=-1), ValueError,
     "`risk_scale` must be > 0"),
    (lambda: TwoLayerMeanField(X, jnp.ones(3)), ValueError, "`y` must have shape"),
    (lambda: TwoLayerMeanField(X, jnp.ones(4), activation="relux"), ValueError,
     "Did you mean 'relu'"),
    (lambda: TwoLayerMeanField(X, jnp.ones(4), bias=1), TypeError, "`bias` must be a bool"),
    (lambda: TwoLayerMeanField(X, jnp.ones(4))(0.0, jnp.ones((5, 4))), ValueError,
     r"neurons `x` must have shape \(n, 3\)"),
    (lambda: TwoLayerMeanField(jnp.ones(4), jnp.ones(4)), ValueError, "`z` must be a particle"),
]


@pytest.mark.parametrize("call, error, message", ROWS)
def test_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_flow_that_blows_up_reports_nonfinite():
    # dx/dt = x^2 (potential -x^3/3) blows up at t = 1/x0 = 0.5 < t1
    field = Interaction(potential=lambda x: -jnp.sum(x**3) / 3)
    traj = fl.simulate(field, jnp.array([[2.0]]), t1=1.0, steps=200, solver="euler")
    assert int(traj.status) == fl.Status.NONFINITE
