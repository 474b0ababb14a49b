from .base import LangevinKernel, StepInfo
from .mala import MALA
from .ula import ULA

__all__ = ["LangevinKernel", "MALA", "StepInfo", "ULA"]
