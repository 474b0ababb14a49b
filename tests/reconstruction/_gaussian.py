"""A tiny Gaussian reconstruction problem with its closed-form posterior (shared by the tests)."""
from typing import NamedTuple

import torch

from pyro_langevin.ebm.energies import QuadraticEnergy

DT = torch.float64


class GaussianProblem(NamedTuple):
    prior: QuadraticEnergy
    mean: torch.Tensor  # [C, H, W]
    covariance: torch.Tensor  # [D, D]
    truth: torch.Tensor  # [B, C, H, W]
    observation: torch.Tensor


def gaussian_problem(operator, batch=2, image_shape=(1, 4, 4), noise_sigma=0.1, seed=0):
    g = torch.Generator().manual_seed(seed)
    D = torch.Size(image_shape).numel()
    L = torch.randn(D, D, generator=g, dtype=DT)
    cov = 0.1 * (L @ L.T / D + 0.2 * torch.eye(D, dtype=DT))
    mean = torch.rand(image_shape, generator=g, dtype=DT)
    truth = mean + (torch.linalg.cholesky(cov) @ torch.randn(D, batch, generator=g, dtype=DT)).T.reshape(
        (batch,) + tuple(image_shape))
    clean = operator(truth)
    y = clean + noise_sigma * torch.randn(clean.shape, generator=g, dtype=DT)
    return GaussianProblem(QuadraticEnergy.from_moments(mean, cov), mean, cov, truth, y)


def operator_matrices(operator, batch, image_shape):
    """The dense matrix of the operator for each image (a per-image mask differs per image)."""
    from pyro_langevin.reconstruction import Mask

    if isinstance(operator, Mask) and operator.mask.dim() == 4:
        return [Mask(operator.mask[b]).matrix(image_shape) for b in range(batch)]
    return [operator.matrix(image_shape)] * batch


def gaussian_posterior(problem, operator, noise_sigma, prior_weight=1.0):
    r"""Closed form for the prior N(mu, Sigma) weighted by lambda: per image, precision
    H = A^T A / sigma^2 + lambda P and mean H^{-1} (A^T y / sigma^2 + lambda P mu).
    Returns (mean [B, C, H, W], covariance [B, D, D])."""
    shape = tuple(problem.mean.shape)
    B = problem.observation.shape[0]
    P = torch.linalg.inv(problem.covariance)
    means, covs = [], []
    for b, A in enumerate(operator_matrices(operator, B, shape)):
        H = A.T @ A / noise_sigma**2 + prior_weight * P
        rhs = A.T @ problem.observation[b].reshape(-1) / noise_sigma**2 + prior_weight * P @ problem.mean.reshape(-1)
        means.append(torch.linalg.solve(H, rhs))
        covs.append(torch.linalg.inv(H))
    return torch.stack(means).reshape((B,) + shape), torch.stack(covs)
