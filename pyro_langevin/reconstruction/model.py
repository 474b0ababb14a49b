r"""
The reconstruction problem as a Pyro model: an unnormalised energy prior and a
Gaussian likelihood,

.. math::

    x \sim p(x) \propto e^{-E(x)/T}, \qquad y \mid x \sim \mathcal N(A x, \sigma^2 I),

whose potential (minus the log joint, up to a constant) is the
:class:`~pyro_langevin.reconstruction.ReconstructionPotential` with
:math:`\lambda = 1/T`. Langevin kernels (``ULA(model=...)``, ``MALA(model=...)``),
Pyro's ``AutoDelta`` + ``SVI`` (the MAP estimate) and anything else that only needs
``log_prob`` run on it.

The prior cannot be sampled (its normalising constant and sampler are unknown), so
Pyro must be told where to start and how many plates the model has::

    model = reconstruction_model(energy, Mask(m), y, noise_sigma=0.05)
    init = init_to_value(values={"x": y})
    mcmc = MCMC(MALA(model=model, init_strategy=init, max_plate_nesting=1), num_samples=500)
    guide = AutoDelta(model, init_loc_fn=init)
"""
import math
from typing import Callable

import torch
import pyro
import pyro.distributions as dist
from pyro.distributions.torch_distribution import TorchDistribution
from torch.distributions import constraints

from .operators import LinearOperator
from .potential import ReconstructionPotential


class EnergyDistribution(TorchDistribution):
    r"""The unnormalised density :math:`p(x) \propto \exp(-E(x)/T)`:
    ``log_prob(x) = -E(x) / T`` (no normalising constant), support the reals.

    :param energy: ``nn.Module`` (or callable) mapping ``[N, *event_shape]`` to ``[N]``.
    :param event_shape: shape of one sample, e.g. ``(1, 8, 8)``.
    :param float temperature: :math:`T > 0`.
    :param batch_shape: independent copies (a plate of images, say).
    """

    arg_constraints = {}
    has_rsample = False

    def __init__(self, energy: Callable, event_shape, temperature: float = 1.0, batch_shape=torch.Size()):
        if not callable(energy):
            raise TypeError(f"energy must be callable, got {energy!r}")
        if not (isinstance(temperature, (int, float)) and not isinstance(temperature, bool)
                and math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be positive and finite, got {temperature!r}")
        self.energy = energy
        self.temperature = float(temperature)
        super().__init__(torch.Size(batch_shape), torch.Size(event_shape), validate_args=False)

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self):
        return constraints.independent(constraints.real, len(self.event_shape))

    def expand(self, batch_shape, _instance=None):
        return EnergyDistribution(self.energy, self.event_shape, self.temperature, batch_shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """``-E(value) / T``, shape ``value.shape[:-len(event_shape)]``."""
        k = len(self.event_shape)
        if tuple(value.shape[value.dim() - k:]) != tuple(self.event_shape):
            raise ValueError(f"value must end with the event shape {tuple(self.event_shape)}, got {tuple(value.shape)}")
        lead = value.shape[: value.dim() - k]
        energy = self.energy(value.reshape((-1,) + tuple(self.event_shape)))
        return -energy.reshape(lead) / self.temperature

    def sample(self, sample_shape=torch.Size()):
        raise NotImplementedError(
            "EnergyDistribution has no sampler (its normalising constant is unknown): start Pyro from a value, "
            "e.g. init_strategy=init_to_value(values={'x': x0}) for MCMC and init_loc_fn=... for autoguides, "
            "and pass max_plate_nesting so that Pyro need not run the model to guess it"
        )


def reconstruction_model(prior: Callable, operator: LinearOperator, observation: torch.Tensor, noise_sigma: float,
                         prior_weight: float = 1.0, *, site: str = "x") -> Callable[[], torch.Tensor]:
    r"""The Pyro model of the reconstruction problem (arguments as in
    :func:`~pyro_langevin.reconstruction.reconstruction_potential`)::

        with pyro.plate("images", B):
            x = pyro.sample(site, EnergyDistribution(prior, (C, H, W), temperature=1 / prior_weight))
            pyro.sample("y", Normal(A x, noise_sigma).to_event(3), obs=observation)

    Its potential is :math:`U(x)` plus a constant. ``max_plate_nesting=1``; the
    prior has no sampler (see :class:`EnergyDistribution` for how to initialise).
    """
    problem = ReconstructionPotential(prior, operator, observation, noise_sigma, prior_weight, site)
    if problem.prior_weight == 0:
        raise ValueError("prior_weight must be positive for the Pyro model (temperature 1 / prior_weight)")
    batch, event_shape = problem.image_shape[0], problem.image_shape[1:]
    temperature = 1.0 / problem.prior_weight
    sigma = problem.noise_sigma

    def model():
        with pyro.plate("images", batch, dim=-1):
            x = pyro.sample(site, EnergyDistribution(prior, event_shape, temperature))
            pyro.sample("y", dist.Normal(operator(x), sigma).to_event(3), obs=observation)
        return x

    return model
