# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: -all
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
# ---

# %% [markdown]
# # Continuous-time networks: mean-field training of a linear network
#
# The neurons theta_i = (u_i, v_i) of the linear network f(z) = (1/n) sum_i v_i u_i^T z move by
# the Wasserstein gradient flow of the risk R(M) = E|y - M z|^2 (the paper's risk, without 1/2;
# pass `risk_scale=0.5` to both the field and the theory for 1/2 E|y - M z|^2, the same flow at
# half the speed). From a Gaussian neuron law the law stays Gaussian, and its covariance solves a
# Riccati equation (`fl.theory.linear_network_covariance`).
# Set `FLOWJAX_LAB_SMALL=1` for a quick run.

# %%
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import flowjax_lab as fl

SMALL = os.environ.get("FLOWJAX_LAB_SMALL") == "1"
n = 1000 if SMALL else 20000

# %%
Szz = jnp.array([[1.0, 0.3], [0.3, 0.5]])  # input second moment E[z z^T]
Syz = jnp.array([[1.0, -0.5]])  # cross moment E[y z^T] (one output)
cov0 = 0.5 * jnp.eye(3)  # neurons (u in R^2, v in R)
ts = jnp.linspace(0.0, 4.0, 9)
neurons = fl.Gaussian(jnp.zeros(3), cov0).sample(jax.random.key(0), n)
training = fl.simulate(fl.fields.LinearNetworkField(Szz, Syz), neurons, t1=4.0, saveat=ts)
theory = fl.theory.linear_network_covariance(cov0, Szz, Syz, ts)

# %%
errors = [float(fl.metrics.relative_error(fl.metrics.covariance(training.xs[i]), theory[i]))
          for i in range(len(ts))]
print(f"max relative neuron-covariance error vs the Riccati flow: {max(errors):.3g}")
assert max(errors) < 10 / np.sqrt(n)


def risk_excess(M):
    """R(M) - min R = tr((M - M*) Szz (M - M*)^T), with M* = Syz Szz^{-1}."""
    gap = M - Syz @ jnp.linalg.inv(Szz)
    return float(jnp.trace(gap @ Szz @ gap.T))


particles = [risk_excess(x[:, 2:].T @ x[:, :2] / n) for x in training.xs]
closure = [risk_excess(c[2:, :2]) for c in theory]

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
axes[0].semilogy(ts, particles, "o", label="particles")
axes[0].semilogy(ts, closure, "-", label="Riccati closure")
axes[0].set_xlabel("training time t")
axes[0].set_title("excess risk")
axes[0].legend()
axes[1].scatter(*np.asarray(training.xs[-1, :400, :2]).T, s=4, c=np.asarray(
    training.xs[-1, :400, 2]), cmap="coolwarm")
axes[1].set_title("trained neurons: u (colour: v)")
axes[1].set_aspect("equal")
plt.show()
