"""Energy-based models trained by contrastive divergence with the Langevin kernels of
:mod:`pyro_langevin`: energies, a replay buffer, the loss, and a training loop."""
from .buffer import ReplayBuffer
from .energies import ConvEnergy, MLPEnergy, QuadraticEnergy, energy_from_config
from .loss import ContrastiveDivergence, run_chains
from .training import Trainer, TrainingDiverged, fit, load_energy, save_energy

__all__ = ["ContrastiveDivergence", "ConvEnergy", "MLPEnergy", "QuadraticEnergy", "ReplayBuffer", "Trainer",
           "TrainingDiverged", "energy_from_config", "fit", "load_energy", "run_chains", "save_energy"]
