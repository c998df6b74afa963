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
# # Transformer dynamics: tokens moved by attention through depth
#
# Tokens are particles; a self-attention layer is a vector field on the whole cloud. For
# Gaussian tokens the softmax-attention flow keeps the cloud Gaussian in the mean-field limit,
# with a covariance that solves a quadratic (Riccati-like) ODE and can blow up in finite depth.
# Set `FLOWJAX_LAB_SMALL=1` for a quick run.

# %%
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import flowjax_lab as fl

SMALL = os.environ.get("FLOWJAX_LAB_SMALL") == "1"
n = 800 if SMALL else 8000

# %%
cov0 = jnp.diag(jnp.array([1.0, 0.5]))
Q = K = V = jnp.eye(2)
ts = jnp.linspace(0.0, 0.3, 7)
tokens = fl.Gaussian(jnp.zeros(2), cov0).sample(jax.random.key(0), n)
depth = fl.simulate(fl.fields.Attention(Q, K, V), tokens, t1=0.3, saveat=ts)
theory = fl.theory.attention_covariance(cov0, Q, K, V, ts)
print(f"blow-up before depth {float(ts[-1])}: {bool(theory.blew_up)}")

# %%
errors = [float(fl.metrics.relative_error(fl.metrics.covariance(depth.xs[i]), theory.covs[i]))
          for i in range(len(ts))]
print(f"max relative covariance error vs the Gaussian closure: {max(errors):.3g}")
assert max(errors) < 10 / np.sqrt(n)

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
for i in (0, 3, 6):
    axes[0].scatter(*np.asarray(depth.xs[i, :300]).T, s=4, label=f"depth t = {float(ts[i]):.2f}")
axes[0].set_aspect("equal")
axes[0].legend()
axes[0].set_title("tokens through depth")
axes[1].plot(ts, [float(jnp.trace(fl.metrics.covariance(x))) for x in depth.xs], "o",
             label="tokens")
axes[1].plot(ts, jnp.trace(theory.covs, axis1=1, axis2=2), "-", label="Gaussian closure")
axes[1].set_xlabel("depth t")
axes[1].set_title("trace of the token covariance")
axes[1].legend()
plt.show()
