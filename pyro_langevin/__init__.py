"""Langevin Monte Carlo for Pyro, and energy-based models built on it."""
from .kernels import MALA, ULA, LangevinKernel
from .langevin import LangevinState, init_state, langevin_step, log_accept_ratio

__version__ = "0.1.0"

__all__ = ["LangevinKernel", "LangevinState", "MALA", "ULA", "init_state", "langevin_step", "log_accept_ratio"]

from . import diagnostics  # noqa: E402  (kernel_stein_discrepancy)
from .arviz_io import to_inference_data  # noqa: E402  (imports ArviZ only when called)

__all__ += ["diagnostics", "to_inference_data"]

from . import datasets, ebm  # noqa: E402
from .ebm import ContrastiveDivergence, ReplayBuffer  # noqa: E402

__all__ += ["ContrastiveDivergence", "ReplayBuffer", "datasets", "ebm"]

from . import reconstruction  # noqa: E402
from .reconstruction import map_estimate, reconstruction_potential  # noqa: E402

__all__ += ["map_estimate", "reconstruction", "reconstruction_potential"]
