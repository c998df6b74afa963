"""Shape aliases used in signatures and docstrings across the package.

Outputs are JAX arrays with a floating dtype (``Particles``, ``Matrix``, ...). Inputs are what the
public boundary converts with ``jnp.asarray`` (``ParticlesLike``, ``MatrixLike``, ...): JAX and
NumPy arrays and Python numbers of any real dtype (integers become the default float), or nested
Python lists, which pass unchecked (jaxtyping reads the shape of arrays only). Within one
signature a dimension name means one size: ``x: ParticlesLike, y: Real[ArrayLike, "m d"]`` asks
for clouds in the same dimension. The test suite checks the annotations at run time
(tests/test_typechecked.py); without that import hook they are documentation.
"""

from jaxtyping import Array, ArrayLike, Float, Int, Integer, PRNGKeyArray, Real

Particles = Float[Array, "n d"]
ParticlesM = Float[Array, "m d"]  # a second cloud of another size, same dimension
Weights = Float[Array, " n"]
WeightsM = Float[Array, " m"]
Pairwise = Float[Array, "n m"]  # one entry per pair of points of two clouds
Matrix = Float[Array, "d d"]
Vector = Float[Array, " d"]
Scalar = Float[Array, ""]
Times = Float[Array, " T"]
Path = Float[Array, "T n d"]
Labels = Int[Array, " n"]
Permutation = Int[Array, " n"]
Count = Int[Array, ""]
StatusCode = Int[Array, ""]  # a Status value
Key = PRNGKeyArray

ParticlesLike = Real[ArrayLike, "n d"] | list
ParticlesMLike = Real[ArrayLike, "m d"] | list
WeightsLike = Real[ArrayLike, " n"] | list
WeightsMLike = Real[ArrayLike, " m"] | list
MatrixLike = Real[ArrayLike, "d d"] | list
VectorLike = Real[ArrayLike, " d"] | list
ScalarLike = Real[ArrayLike, ""]
TimesLike = Real[ArrayLike, " T"] | list
PathLike = Real[ArrayLike, "T n d"] | list
LabelsLike = Integer[ArrayLike, " n"] | list
# Arrays only (JAX or NumPy), where a function reads the shape before converting.
ParticlesArray = Real[ArrayLike, "n d"]
MatrixArray = Real[ArrayLike, "d d"]

__all__ = [
    "Array",
    "ArrayLike",
    "Count",
    "Float",
    "Key",
    "Labels",
    "LabelsLike",
    "Matrix",
    "MatrixArray",
    "MatrixLike",
    "Pairwise",
    "Particles",
    "ParticlesArray",
    "ParticlesLike",
    "ParticlesM",
    "ParticlesMLike",
    "Path",
    "PathLike",
    "Permutation",
    "Real",
    "Scalar",
    "ScalarLike",
    "StatusCode",
    "Times",
    "TimesLike",
    "Vector",
    "VectorLike",
    "Weights",
    "WeightsLike",
    "WeightsM",
    "WeightsMLike",
    "__all__",
]
