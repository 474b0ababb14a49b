r"""
The posterior potential of a linear inverse problem with an energy prior.

For observations :math:`y = A x + \sigma \varepsilon`, :math:`\varepsilon \sim \mathcal N(0, I)`,
and a prior :math:`p(x) \propto \exp(-\lambda E(x))`, the posterior is
:math:`\pi(x \mid y) \propto \exp(-U(x))` with

.. math::

    U(x) = \frac{\lVert y - A x\rVert^2}{2\sigma^2} + \lambda\, E(x).

Its minimiser is the MAP estimate (for :math:`\lambda = 1` and a Gaussian prior,
the Wiener / generalised Tikhonov estimate); Langevin samples of :math:`e^{-U}` give
the posterior mean and per-pixel uncertainty. With an energy trained at temperature
:math:`T` (model density :math:`e^{-E/T}`), :math:`\lambda = 1/T` is the Bayesian
weight; other values of :math:`\lambda` temper the prior.
"""
import math
import numbers
from typing import Callable, Dict

import torch

from .operators import LinearOperator


def _check_nonnegative(name, value, strict):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} of type {type(value).__name__}")
    if not math.isfinite(value) or value < 0 or (strict and value == 0):
        raise ValueError(f"{name} must be {'positive' if strict else 'non-negative'} and finite, got {value!r}")
    return float(value)


class ReconstructionPotential:
    r""":math:`U(x) = \lVert y - A x\rVert^2 / (2\sigma^2) + \lambda E(x)` as a Pyro
    ``potential_fn``: called with ``{site: x}``.

    Layouts of ``x`` (``y`` is ``[B, *obs_shape]``, images ``[B, C, H, W]``):

    - ``[B, C, H, W]``: the ``B`` images jointly, :math:`U` of shape ``[]``
      (one Pyro chain);
    - ``[K, B, C, H, W]``: ``K`` chains (``vectorized_chains=K``), :math:`U` of shape ``[K]``.

    :meth:`per_image` returns the ``B`` terms separately (``[B]`` or ``[K, B]``), for
    samplers that accept or reject each image's chain on its own (the images'
    posteriors are independent).

    :param prior: energy ``nn.Module`` (or callable) mapping ``[N, C, H, W]`` to ``[N]``.
    :param LinearOperator operator: :math:`A`.
    :param torch.Tensor observation: :math:`y`, ``[B, *obs_shape]``.
    :param float noise_sigma: :math:`\sigma > 0`.
    :param float prior_weight: :math:`\lambda \ge 0`.
    :param str site: the name of the image in the params dict.
    """

    def __init__(self, prior: Callable, operator: LinearOperator, observation: torch.Tensor, noise_sigma: float,
                 prior_weight: float = 1.0, site: str = "x"):
        if not callable(prior):
            raise TypeError(f"prior must be an energy module mapping [N, C, H, W] to [N], got {prior!r}")
        if not isinstance(operator, LinearOperator):
            raise TypeError(f"operator must be a LinearOperator (Identity, Mask, Blur, Downsample), got {operator!r}")
        if not torch.is_tensor(observation) or observation.dim() != 4:
            shape = tuple(observation.shape) if torch.is_tensor(observation) else type(observation).__name__
            raise ValueError(f"observation must be a tensor [B, C, H, W], got {shape}")
        if not observation.is_floating_point():
            raise TypeError(f"observation must be floating point, got {observation.dtype}")
        # A^T y must exist and map back to y's shape: catches a mask or factor that does not fit y
        try:
            back = operator.adjoint(observation)
        except ValueError as e:
            raise ValueError(f"{operator!r} does not fit the observation of shape "
                             f"{tuple(observation.shape)}: {e}") from e
        if tuple(operator(back).shape) != tuple(observation.shape):
            raise ValueError(f"{operator!r} does not map images of shape {tuple(back.shape)} to observations "
                             f"of shape {tuple(observation.shape)}")
        self.prior = prior
        self.operator = operator
        self.observation = observation
        self.image_shape = tuple(back.shape)  # [B, C, H, W]
        self.noise_sigma = _check_nonnegative("noise_sigma", noise_sigma, strict=True)
        self.prior_weight = _check_nonnegative("prior_weight", prior_weight, strict=False)
        if not isinstance(site, str):
            raise TypeError(f"site must be a string, got {site!r}")
        self.site = site

    def _chain_shape(self, x: torch.Tensor):
        img = self.image_shape
        if not torch.is_tensor(x):
            raise TypeError(f"params[{self.site!r}] must be a tensor, got {type(x).__name__}")
        if tuple(x.shape[-4:]) != img or x.dim() not in (4, 5):
            raise ValueError(f"params[{self.site!r}] must have shape {list(img)} or "
                             f"[num_chains, {', '.join(map(str, img))}] for an observation of shape "
                             f"{tuple(self.observation.shape)}, got {tuple(x.shape)}")
        return tuple(x.shape[:-4])

    def data_term(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\lVert y - A x\rVert^2 / (2\sigma^2)` per image: ``[*chains, B]``."""
        r = self.observation - self.operator(x)
        return 0.5 * r.flatten(-3).pow(2).sum(-1) / self.noise_sigma**2

    def prior_term(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\lambda E(x)` per image: ``[*chains, B]``."""
        lead = x.shape[:-3]
        energy = self.prior(x.reshape((-1,) + tuple(x.shape[-3:])))
        if tuple(energy.shape) != (math.prod(lead),):
            raise ValueError(f"the prior must map [N, C, H, W] to energies [N]; for N={math.prod(lead)} it returned "
                             f"shape {tuple(energy.shape)}")
        return self.prior_weight * energy.reshape(lead)

    def per_image(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`U` of each image: ``x`` ``[B, C, H, W]`` -> ``[B]``, ``[K, B, C, H, W]`` -> ``[K, B]``."""
        self._chain_shape(x)
        if self.prior_weight == 0:
            return self.data_term(x)
        return self.data_term(x) + self.prior_term(x)

    def __call__(self, params: Dict[str, torch.Tensor]) -> torch.Tensor:
        """:math:`U` summed over the ``B`` images: shape ``[]`` or ``[K]``."""
        return self.per_image(params[self.site]).sum(-1)

    def __repr__(self):
        return (f"ReconstructionPotential(operator={self.operator!r}, observation={tuple(self.observation.shape)}, "
                f"noise_sigma={self.noise_sigma}, prior_weight={self.prior_weight})")


def reconstruction_potential(prior: Callable, operator: LinearOperator, observation: torch.Tensor,
                             noise_sigma: float, prior_weight: float = 1.0, *, site: str = "x"
                             ) -> ReconstructionPotential:
    r"""Build :math:`U(x) = \lVert y - A x\rVert^2 / (2\sigma^2) + \lambda E(x)`; see
    :class:`ReconstructionPotential`. Use it as ``MCMC(MALA(potential_fn=U), ...,
    initial_params={"x": x0})``, with :func:`~pyro_langevin.reconstruction.map_estimate`
    (``map_estimate(U, {"x": y})["x"]``) or with
    :func:`~pyro_langevin.reconstruction.sample_posterior`."""
    return ReconstructionPotential(prior, operator, observation, noise_sigma, prior_weight, site)
