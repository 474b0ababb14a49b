"""Langevin Monte Carlo for Pyro, and energy-based models built on it.

- :mod:`pyro_langevin.langevin`: the one Langevin update (:func:`langevin_step`).
- :class:`ULA`, :class:`MALA`: Pyro MCMC kernels around it.
- :func:`to_inference_data`, :mod:`pyro_langevin.diagnostics`: ArviZ and the kernel Stein discrepancy.
- :mod:`pyro_langevin.ebm`, :mod:`pyro_langevin.datasets`: energy-based model training.
- :mod:`pyro_langevin.reconstruction`: inverse problems with an energy prior.
"""
from . import datasets, diagnostics, ebm, reconstruction
from .arviz_io import to_inference_data  # imports ArviZ only when called
from .ebm import ContrastiveDivergence, ReplayBuffer
from .kernels import MALA, ULA, LangevinKernel
from .langevin import LangevinState, init_state, langevin_step, log_accept_ratio
from .reconstruction import map_estimate, reconstruction_potential

__version__ = "0.1.0"

__all__ = [
    "ContrastiveDivergence",
    "LangevinKernel",
    "LangevinState",
    "MALA",
    "ReplayBuffer",
    "ULA",
    "datasets",
    "diagnostics",
    "ebm",
    "init_state",
    "langevin_step",
    "log_accept_ratio",
    "map_estimate",
    "reconstruction",
    "reconstruction_potential",
    "to_inference_data",
]
