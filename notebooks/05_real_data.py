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
# # Real data: flow matching on handwritten digits, memorisation versus generalisation
#
# scikit-learn's 8x8 digits ship with the package (`fl.datasets.load("digits", ...)`: 1347
# training and 450 test images, pixels in [-1, 1], d = 64). The exact empirical flow
# (`fl.fields.ExactFlowMatching`) minimises the flow-matching loss over all fields and
# reproduces its training images; a learned field generalises instead. The experiments run the
# full versions with their metrics: `flowjax-lab run fm-digits` (I-CFM and OT-CFM, MLP and
# U-Net), `anode-digits` (neural ODE classifiers), `cnf-digits` (bits per dimension) and
# `transformer-text`. Set `FLOWJAX_LAB_SMALL=1` for a quick run.

# %%
import os

import jax
import matplotlib.pyplot as plt
import numpy as np
import optax

import flowjax_lab as fl

SMALL = os.environ.get("FLOWJAX_LAB_SMALL") == "1"
fm_steps = 300 if SMALL else 4000

train, train_labels = fl.datasets.load("digits", "train")
test, test_labels = fl.datasets.load("digits", "test")
print(f"train {train.shape}, test {test.shape}, pixels in [{float(train.min())}, "
      f"{float(train.max())}]")


def nearest(x, data):
    """Distance of each row of `x` (n, 64) to its nearest row of `data` (m, 64), and its index."""
    x, data = np.asarray(x, np.float64), np.asarray(data, np.float64)
    squared = (x**2).sum(1)[:, None] + (data**2).sum(1)[None] - 2 * x @ data.T
    index = squared.argmin(1)
    return np.sqrt(squared[np.arange(len(x)), index].clip(0)), index


reference = float(np.median(nearest(test, train)[0]))
print(f"median distance of a test digit to its nearest training digit: {reference:.2f}")

# %% [markdown]
# From the same Gaussian noise, 20 Euler steps of the exact field and of an MLP field trained
# briefly by conditional flow matching (I-CFM).

# %%
key_noise, key_field, key_fit = jax.random.split(jax.random.key(0), 3)
x0 = jax.random.normal(key_noise, (100, 64))
exact = fl.learn.generate(fl.fields.ExactFlowMatching(train), x0, steps=20).x1

loss = fl.learn.FlowMatchingLoss(lambda key, n: jax.random.normal(key, (n, 64)), train,
                                 batch_size=128)
field = fl.fields.MLPField(64, width=256, depth=2, activation=jax.nn.silu, key=key_field)
fitted = fl.learn.fit(loss, field, optax.adam(1e-3), key_fit, steps=fm_steps, progress=False)
learned = fl.learn.generate(fitted.model, x0, steps=20).x1

exact_distance, _ = nearest(exact, train)
learned_distance, learned_index = nearest(learned, train)
print(f"nearest training digit: exact flow max {exact_distance.max():.2g}, learned flow median "
      f"{np.median(learned_distance):.2f} (test digits {reference:.2f})")
assert exact_distance.max() < 0.01 * reference  # the exact flow returns training digits
assert np.median(learned_distance) > 0.5 * reference  # the learned one does not copy them

# %%
fig, axes = plt.subplots(3, 10, figsize=(10, 3.3))
rows = (("exact flow", exact), ("learned flow", learned),
        ("nearest training", np.asarray(train)[learned_index]))
for row, (title, images) in zip(axes, rows, strict=True):
    for ax, image in zip(row, np.asarray(images)[:10], strict=True):
        ax.imshow(image.reshape(8, 8), cmap="gray_r", vmin=-1, vmax=1)
        ax.set_axis_off()
    row[0].set_title(title, fontsize=9, loc="left")
plt.show()
