r"""Energy-based models :math:`p_\theta(x) \propto e^{-E_\theta(x)}` trained by contrastive
divergence, with negatives drawn by the Langevin kernels of :mod:`pyro_langevin`.

- energies (:mod:`~pyro_langevin.ebm.energies`): ``nn.Module`` s ``[B, *event_shape] -> [B]``:
  :class:`QuadraticEnergy`, :class:`MLPEnergy`, :class:`ConvEnergy`;
- :class:`ReplayBuffer`: persistent starting points for the negatives;
- :class:`ContrastiveDivergence`: the loss, its negatives moved by ``kernel.move`` (the
  package's one Langevin update); which kernel and temperature to use is discussed in
  :mod:`pyro_langevin.ebm.loss`;
- :class:`Trainer` / :func:`fit`: the training loop, checkpoints, exact resume and the
  :class:`TrainingDiverged` stop; :func:`save_energy` / :func:`load_energy`;
- :mod:`~pyro_langevin.ebm.evaluation`: sample-quality scores for image models.

Example (MNIST-style images in [-1, 1], the recipe of Du & Mordatch 2019)::

    from pyro_langevin import ULA
    from pyro_langevin.ebm import ContrastiveDivergence, ConvEnergy, ReplayBuffer, fit

    energy = ConvEnergy((1, 28, 28))
    kernel = ULA(step_size=10.0, noise_scale=0.005, grad_clip=0.03, clamp=(-1.0, 1.0))
    cd = ContrastiveDivergence(kernel, num_steps=60, alpha=0.1,
                               buffer=ReplayBuffer(8192, (1, 28, 28), reinit_prob=0.05))
    optimizer = torch.optim.Adam(energy.parameters(), lr=1e-4, betas=(0.0, 0.999))
    trainer = fit(energy, images, cd, optimizer, num_iterations=5000, batch_size=128,
                  checkpoint_path="ebm.pt")
"""
from .buffer import ReplayBuffer
from .energies import ConvEnergy, MLPEnergy, QuadraticEnergy, energy_from_config
from .loss import ContrastiveDivergence, run_chains
from .training import Trainer, TrainingDiverged, fit, load_energy, save_energy

__all__ = ["ContrastiveDivergence", "ConvEnergy", "MLPEnergy", "QuadraticEnergy", "ReplayBuffer", "Trainer",
           "TrainingDiverged", "energy_from_config", "fit", "load_energy", "run_chains", "save_energy"]
