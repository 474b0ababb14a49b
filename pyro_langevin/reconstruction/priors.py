r"""
Energy priors for reconstruction: a Gaussian with a learned residual, and the
denoising score-matching loss that trains it without sampling.

**Gaussian plus residual.** :class:`GaussianResidualEnergy` is

.. math::

    E(x) = \tfrac12 (x - \mu)^\top P (x - \mu) + f_\theta(x),

the classic Gaussian prior (:math:`P = \Sigma^{-1}` of the training images) times
:math:`e^{-f_\theta}`, a learned correction (an exponential tilt). With
:math:`f_\theta = 0` it *is* the Gaussian baseline, so training can only start from
there; the quadratic term also keeps :math:`e^{-E}` normalisable wherever the
network is flat or linear (far from the data), where an untrained network says
nothing.

**Denoising score matching** (Vincent 2011). For data :math:`x`, noisy copies
:math:`\tilde x = x + s\varepsilon` and the energy's score :math:`-\nabla E`,

.. math::

    \mathcal L(\theta) = \tfrac12\, \mathbb E_{x, \varepsilon}
        \big\lVert s\, \nabla_{\tilde x} E(\tilde x) - \varepsilon \big\rVert^2

is minimised (up to a constant in :math:`\theta`) when :math:`e^{-E}` is the density
of the noisy data :math:`p_s = p_{\mathrm{data}} * \mathcal N(0, s^2 I)`, at
temperature 1. It needs one double-backward pass per batch and no Markov chain, so
it does not suffer the mixing failures of contrastive divergence on very peaked
densities. The learned prior is the smoothed :math:`p_s`; its Gaussian part is then
:math:`\mathcal N(\mu, \Sigma + s^2 I)`, which :meth:`GaussianResidualEnergy.from_data`
builds when given ``noise_std=s``.

**References**

[1] P. Vincent (2011), *A connection between score matching and denoising
    autoencoders*, Neural Computation 23(7).
[2] Y. Song, S. Ermon (2019), *Generative modeling by estimating gradients of the
    data distribution*, NeurIPS.
"""
import numbers
from typing import Dict, Tuple

import torch
from torch import nn


class GaussianResidualEnergy(nn.Module):
    r""":math:`E(x) = \tfrac12 (x-\mu)^\top P (x-\mu) + f_\theta(x)` on images
    ``[N, *event_shape] -> [N]``; only the residual :math:`f_\theta` has parameters
    (:math:`\mu` and :math:`P` are buffers).

    :param nn.Module residual: :math:`f_\theta`, ``[N, *event_shape] -> [N]`` (e.g. a
        :class:`~pyro_langevin.ebm.ConvEnergy`).
    :param torch.Tensor mean: :math:`\mu`, ``event_shape``.
    :param torch.Tensor precision: :math:`P`, ``[D, D]`` over the flattened event.
    """

    def __init__(self, residual: nn.Module, mean: torch.Tensor, precision: torch.Tensor):
        super().__init__()
        D = mean.numel()
        if tuple(precision.shape) != (D, D):
            raise ValueError(f"precision must have shape {(D, D)} for a mean of shape {tuple(mean.shape)}, "
                             f"got {tuple(precision.shape)}")
        self.residual = residual
        self.register_buffer("mean", mean.detach().clone())
        self.register_buffer("precision", precision.detach().clone())

    @classmethod
    def from_data(cls, residual: nn.Module, data: torch.Tensor, noise_std: float = 0.0,
                  jitter: float = 1e-4) -> "GaussianResidualEnergy":
        r"""The Gaussian part from images ``data`` ``[N, *event_shape]``: their mean and
        the inverse of their covariance plus :math:`(s^2 + \text{jitter}) I`, with
        :math:`s` = ``noise_std`` (the Gaussian of :math:`p_s`; the jitter keeps the
        covariance invertible where pixels never vary, e.g. the digits' borders)."""
        flat = data.flatten(1)
        cov = torch.cov(flat.T) + (noise_std**2 + jitter) * torch.eye(flat.shape[1], dtype=flat.dtype,
                                                                       device=flat.device)
        return cls(residual, data.mean(0), torch.cholesky_inverse(torch.linalg.cholesky(cov)))

    def quadratic(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\tfrac12 (x-\mu)^\top P (x-\mu)`, ``[N]``."""
        r = (x - self.mean).flatten(1)
        return 0.5 * ((r @ self.precision) * r).sum(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """:param x: ``[N, *event_shape]``. :returns: ``[N]``."""
        return self.quadratic(x) + self.residual(x)


class DenoisingScoreMatching:
    r"""The loss :math:`\tfrac12\,\overline{\lVert s \nabla E(x + s\varepsilon) - \varepsilon\rVert^2}`
    (see the module docstring), as a ``loss_fn(energy, batch) -> (loss, stats)`` for
    :func:`pyro_langevin.ebm.fit`. Its statistics are ``loss``, ``energy_data``
    (mean energy of the clean batch), ``energy_negative`` (of the noisy batch) and
    ``energy_gap`` (their difference: positive once the energy ranks clean images
    above their noisy copies).

    :param float noise_std: :math:`s > 0`, in the data's units.
    """

    def __init__(self, noise_std: float):
        if isinstance(noise_std, bool) or not isinstance(noise_std, numbers.Real) or not noise_std > 0:
            raise ValueError(f"noise_std must be a positive number, got {noise_std!r}")
        self.noise_std = float(noise_std)

    def __call__(self, energy: nn.Module, data: torch.Tensor) -> Tuple[torch.Tensor, Dict[str, float]]:
        s = self.noise_std
        eps = torch.randn_like(data)
        noisy = (data.detach() + s * eps).requires_grad_(True)
        with torch.no_grad():  # a statistic only
            e_data = energy(data)
        e_noisy = energy(noisy)
        (grad,) = torch.autograd.grad(e_noisy.sum(), noisy, create_graph=True)
        loss = 0.5 * (s * grad - eps).flatten(1).pow(2).sum(-1).mean()
        values = torch.stack([loss.detach(), e_data.mean(), e_noisy.detach().mean()]).tolist()
        stats = {"loss": values[0], "energy_data": values[1], "energy_negative": values[2],
                 "energy_gap": values[2] - values[1]}
        return loss, stats
