"""Small matplotlib helpers shared by experiments (figures built without pyplot)."""

import numpy as np
from matplotlib.figure import Figure


def figure(ncols: int = 1, nrows: int = 1, *, size: float = 3.6, **kwargs):
    """A `Figure` and its axes array, sized `size` inches per panel."""
    fig = Figure(figsize=(size * ncols, size * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs)
    return fig, axes


def covariance_ellipse(ax, cov, *, scale: float = 2.0, **style) -> None:
    """Draw the ellipse {x : x^T cov^{-1} x = scale^2} of a 2-D covariance."""
    w, v = np.linalg.eigh(np.asarray(cov, np.float64)[:2, :2])
    theta = np.linspace(0, 2 * np.pi, 200)
    circle = np.stack([np.cos(theta), np.sin(theta)])
    points = v @ (scale * np.sqrt(np.clip(w, 0, None))[:, None] * circle)
    ax.plot(points[0], points[1], **style)


def paths(ax, xs, *, count: int = 64, color="C0", alpha: float = 0.5, lw: float = 0.8) -> None:
    """Draw the first `count` particle paths of `xs` `(T, n, d)` (first two coordinates)."""
    xs = np.asarray(xs)
    for i in range(min(count, xs.shape[1])):
        ax.plot(xs[:, i, 0], xs[:, i, 1], color=color, alpha=alpha, lw=lw)
    ax.scatter(xs[0, :count, 0], xs[0, :count, 1], s=6, color="k", zorder=3)
    ax.scatter(xs[-1, :count, 0], xs[-1, :count, 1], s=6, color="C3", zorder=3)
