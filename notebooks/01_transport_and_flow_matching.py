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
# # Optimal transport and flow matching between Gaussians
#
# Particles from N(0, cov0) are pushed to N(0, cov1) two ways: by the flow-matching field
# (independent coupling) and along the Bures optimal-transport geodesic. Both are checked
# against the closed forms of `fl.theory`. Set `FLOWJAX_LAB_SMALL=1` for a quick run.

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
angle = 1.0
rotation = jnp.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
cov0 = jnp.diag(jnp.array([1.0, 0.15]))
cov1 = rotation @ jnp.diag(jnp.array([2.0, 0.3])) @ rotation.T
x0 = fl.Gaussian(jnp.zeros(2), cov0).sample(jax.random.key(0), n)
ts = jnp.linspace(0.0, 1.0, 11)

flow = fl.simulate(fl.fields.GaussianFlowMatching(cov0, cov1), x0, saveat=ts)
monge = fl.transport.gaussian_monge_map(cov0, cov1)
geodesic = jnp.stack([(1 - t) * x0 + t * x0 @ monge for t in ts])

# %% [markdown]
# The particle covariances follow theory to the sampling error O(n^-1/2).

# %%
fm_error = [float(fl.metrics.relative_error(fl.metrics.covariance(flow.xs[i]),
                                            fl.theory.flow_matching_gaussian(cov0, cov1, t)[0]))
            for i, t in enumerate(ts)]
ot_error = [float(fl.metrics.relative_error(fl.metrics.covariance(geodesic[i]),
                                            fl.theory.bures_geodesic(cov0, cov1, t)))
            for i, t in enumerate(ts)]
print(f"max relative covariance error: flow matching {max(fm_error):.3g}, OT {max(ot_error):.3g}")
assert max(fm_error + ot_error) < 6 / np.sqrt(n)

w2_squared = float(fl.transport.gaussian_w2_squared(jnp.zeros(2), cov0, jnp.zeros(2), cov1))
print(f"W2^2 = {w2_squared:.4f}; path energy: OT {float(fl.metrics.path_energy(geodesic, ts)):.4f}"
      f", flow matching {float(fl.metrics.path_energy(flow.xs, ts)):.4f} (larger: not optimal)")

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
for ax, xs, title in ((axes[0], flow.xs, "flow matching"), (axes[1], geodesic, "Bures OT")):
    for i in range(60):
        ax.plot(xs[:, i, 0], xs[:, i, 1], color="C0", alpha=0.5, lw=0.8)
    ax.scatter(xs[-1, :60, 0], xs[-1, :60, 1], s=6, color="C3")
    ax.set_title(title)
    ax.set_aspect("equal")
axes[2].plot(ts, fm_error, "o-", label="flow matching")
axes[2].plot(ts, ot_error, "s-", label="OT geodesic")
axes[2].set_xlabel("t")
axes[2].set_title("relative covariance error vs theory")
axes[2].legend()
plt.show()
