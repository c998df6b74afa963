"""Wasserstein gradient flows: kernels and potentials, energies, JKO steps, Langevin dynamics."""

from ._energy import dissipation as dissipation, energy_along as energy_along
from ._jko import jko as jko, jko_step as jko_step
from ._kernels import (
    GaussianKernel as GaussianKernel,
    LogKernel as LogKernel,
    PowerLawKernel as PowerLawKernel,
    QuadraticPotential as QuadraticPotential,
    RadialKernel as RadialKernel,
    RieszKernel as RieszKernel,
)
from ._langevin import langevin as langevin
