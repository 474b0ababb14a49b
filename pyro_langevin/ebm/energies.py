r"""
Energy models: ``nn.Module`` s mapping a batch ``[B, *event_shape]`` to energies ``[B]``.

The model density is :math:`p_\theta(x) \propto \exp(-E_\theta(x))`; an energy is a
potential in the sense of :mod:`pyro_langevin.langevin` (minus a log density).
"""
import math

import torch
from torch import nn


class QuadraticEnergy(nn.Module):
    r""":math:`E(x) = \tfrac12 (x - \mu)^\top P (x - \mu)`, a Gaussian
    :math:`\mathcal N(\mu, P^{-1})` up to its normalising constant.

    The precision is parameterised as :math:`P = L L^\top` with :math:`L` lower
    triangular and a positive diagonal (stored as its logarithm), so every parameter
    value gives a positive-definite :math:`P`.

    :param event_shape: shape of one sample, e.g. ``(2,)`` or ``(1, 8, 8)``; the
        quadratic form acts on its ``D = prod(event_shape)`` flattened entries.
    :param torch.Tensor mean: initial :math:`\mu` (default zeros).
    :param torch.Tensor precision: initial :math:`P`, ``[D, D]`` (default identity).
    """

    def __init__(self, event_shape, mean=None, precision=None):
        super().__init__()
        self.event_shape = torch.Size((event_shape,) if isinstance(event_shape, int) else event_shape)
        D = math.prod(self.event_shape)
        mean = torch.zeros(self.event_shape) if mean is None else torch.as_tensor(mean)
        if tuple(mean.shape) != tuple(self.event_shape):
            raise ValueError(f"mean must have shape {tuple(self.event_shape)}, got {tuple(mean.shape)}")
        dtype = mean.dtype if mean.is_floating_point() else torch.get_default_dtype()
        if precision is None:
            chol = torch.eye(D, dtype=dtype)
        else:
            precision = torch.as_tensor(precision, dtype=dtype)
            if tuple(precision.shape) != (D, D):
                raise ValueError(f"precision must have shape {(D, D)}, got {tuple(precision.shape)}")
            chol, info = torch.linalg.cholesky_ex(precision)
            if int(info) != 0:
                raise ValueError("precision must be symmetric positive definite")
        self.mean = nn.Parameter(mean.to(dtype).clone())
        self.chol_offdiag = nn.Parameter(torch.tril(chol, -1).clone())
        self.chol_log_diag = nn.Parameter(chol.diagonal().log().clone())

    @classmethod
    def from_moments(cls, mean: torch.Tensor, covariance: torch.Tensor, jitter: float = 0.0) -> "QuadraticEnergy":
        r"""The energy of :math:`\mathcal N(\mu, \Sigma)`: ``mean`` in the event shape
        (an image ``[C, H, W]`` say), ``covariance`` ``[D, D]`` over its flattened
        entries; ``jitter`` is added to the diagonal of :math:`\Sigma` before inversion."""
        mean = torch.as_tensor(mean)
        covariance = torch.as_tensor(covariance, dtype=mean.dtype)
        D = mean.numel()
        if tuple(covariance.shape) != (D, D):
            raise ValueError(f"covariance must have shape {(D, D)} for a mean of shape {tuple(mean.shape)}, "
                             f"got {tuple(covariance.shape)}")
        if jitter:
            covariance = covariance + jitter * torch.eye(D, dtype=covariance.dtype)
        precision = torch.cholesky_inverse(torch.linalg.cholesky(covariance))
        return cls(mean.shape, mean=mean, precision=precision)

    @property
    def cholesky(self) -> torch.Tensor:
        """:math:`L`, with :math:`P = L L^\\top`."""
        return torch.tril(self.chol_offdiag, -1) + torch.diag_embed(self.chol_log_diag.exp())

    @property
    def precision(self) -> torch.Tensor:
        L = self.cholesky
        return L @ L.T

    @property
    def covariance(self) -> torch.Tensor:
        return torch.cholesky_inverse(self.cholesky.T, upper=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """:param x: ``[B, *event_shape]``. :returns: ``[B]``."""
        r = (x - self.mean).flatten(1)  # [B, D]
        w = r @ self.cholesky  # r^T L, so |w|^2 = r^T L L^T r
        return 0.5 * (w * w).sum(-1)
