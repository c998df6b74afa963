"""Shape aliases used in signatures and docstrings across the package."""

from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

Particles = Float[Array, "n d"]
Weights = Float[Array, " n"]
Matrix = Float[Array, "d d"]
Vector = Float[Array, " d"]
Scalar = Float[Array, ""]
Times = Float[Array, " T"]
Labels = Int[Array, " n"]
Key = PRNGKeyArray

__all__ = [
    "Array",
    "ArrayLike",
    "Key",
    "Labels",
    "Matrix",
    "Particles",
    "Scalar",
    "Times",
    "Vector",
    "Weights",
]
