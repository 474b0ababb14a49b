r"""
Reconstruction of images from linear measurements with an energy prior:
:math:`U(x) = \lVert y - A x\rVert^2 / (2\sigma^2) + \lambda E(x)` as a potential and
as a Pyro model, its MAP estimate, posterior samples from the Langevin kernels,
and image metrics.
"""
from .map import ConvergenceWarning, MAPEstimate, map_estimate
from .metrics import interval_coverage, psnr, ssim
from .model import EnergyDistribution, reconstruction_model
from .operators import Blur, Downsample, Identity, LinearOperator, Mask
from .priors import DenoisingScoreMatching, GaussianResidualEnergy
from .posterior import PosteriorSamples, PosteriorSummary, diagonal_scale, sample_posterior
from .potential import ReconstructionPotential, reconstruction_potential

__all__ = [
    "Blur",
    "ConvergenceWarning",
    "Downsample",
    "DenoisingScoreMatching",
    "EnergyDistribution",
    "GaussianResidualEnergy",
    "Identity",
    "LinearOperator",
    "MAPEstimate",
    "Mask",
    "PosteriorSamples",
    "PosteriorSummary",
    "ReconstructionPotential",
    "diagonal_scale",
    "interval_coverage",
    "map_estimate",
    "psnr",
    "reconstruction_model",
    "reconstruction_potential",
    "sample_posterior",
    "ssim",
]
