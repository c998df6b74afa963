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
# # Gradient flows: the heat flow and Langevin dynamics
#
# The heat flow is the Wasserstein gradient flow of the entropy; its particles follow
# dX = sqrt(2) dW. Adding the potential |x|^2 / 2 gives the Ornstein-Uhlenbeck (Langevin)
# dynamics dX = -X dt + sqrt(2) dW, whose covariance relaxes to the identity:
# cov_t = e^{-2t} cov0 + (1 - e^{-2t}) I. Set `FLOWJAX_LAB_SMALL=1` for a quick run.

# %%
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import flowjax_lab as fl

SMALL = os.environ.get("FLOWJAX_LAB_SMALL") == "1"
n, steps = (1000, 100) if SMALL else (20000, 400)

# %%
cov0 = jnp.array([[0.3, 0.1], [0.1, 0.2]])
x0 = fl.Gaussian(jnp.zeros(2), cov0).sample(jax.random.key(0), n)
ts = jnp.linspace(0.0, 1.0, 11)
noise = float(np.sqrt(2.0))
heat = fl.simulate_sde(lambda t, x, args: jnp.zeros_like(x), noise, x0, jax.random.key(1),
                       steps=steps, saveat=ts)
langevin = fl.simulate_sde(lambda t, x, args: -x, noise, x0, jax.random.key(2), steps=steps,
                           saveat=ts)

# %%
def ou_covariance(t):
    decay = np.exp(-2 * t)
    return decay * np.asarray(cov0) + (1 - decay) * np.eye(2)


heat_error = [float(fl.metrics.relative_error(fl.metrics.covariance(heat.xs[i]),
                                              fl.theory.heat_covariance(cov0, t)))
              for i, t in enumerate(ts)]
ou_error = [float(fl.metrics.relative_error(fl.metrics.covariance(langevin.xs[i]),
                                            jnp.asarray(ou_covariance(float(t)))))
            for i, t in enumerate(ts)]
print(f"max relative covariance error: heat {max(heat_error):.3g}, Langevin {max(ou_error):.3g}")
assert max(heat_error + ou_error) < 8 / np.sqrt(n) + 2.0 / steps  # sampling + Euler bias

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
trace = lambda xs: [float(jnp.trace(fl.metrics.covariance(x))) for x in xs]
axes[0].plot(ts, trace(heat.xs), "o", label="heat particles")
axes[0].plot(ts, [float(jnp.trace(fl.theory.heat_covariance(cov0, t))) for t in ts], "-",
             label="theory: tr cov0 + 4t")
axes[0].plot(ts, trace(langevin.xs), "s", label="Langevin particles")
axes[0].plot(ts, [np.trace(ou_covariance(float(t))) for t in ts], "-",
             label="theory: OU relaxation")
axes[0].set_xlabel("t")
axes[0].set_title("trace of the covariance")
axes[0].legend()
axes[1].scatter(*np.asarray(x0[:400]).T, s=4, label="t = 0")
axes[1].scatter(*np.asarray(langevin.xs[-1, :400]).T, s=4, label="Langevin, t = 1")
axes[1].set_aspect("equal")
axes[1].legend()
plt.show()
