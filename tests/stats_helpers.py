r"""
Monte Carlo error bounds for the statistical tests of the samplers.

A test estimates expectations :math:`E_\pi[f]` from ``C`` chains of ``N`` draws and
compares each with its exact value :math:`\mu_f` through

.. math::

    z_f = \frac{\hat\mu_f - \mu_f}{\mathrm{MCSE}_f}, \qquad
    \mathrm{MCSE}_f = \sqrt{\widehat{\mathrm{Var}}[f] / \mathrm{ESS}_f},

with :math:`\mathrm{ESS}_f` from :func:`pyro.ops.stats.effective_sample_size` over the
``C`` chains (the BlackJAX ``tests/mcmc/test_sampling.py`` recipe). For a correct
sampler each :math:`z_f` is approximately standard normal, so with ``m`` statistics
in one test the Bonferroni bound :func:`z_bound` fails a correct sampler with
probability at most ``p`` (whatever the seed; the seeds are fixed anyway).
"""
from typing import Optional

import torch
from pyro.ops.stats import effective_sample_size


def z_bound(num_tests: int, p: float = 1e-3) -> float:
    """Two-sided Bonferroni bound: :math:`\\Phi^{-1}(1 - p / (2m))`."""
    return float(torch.special.ndtri(torch.tensor(1.0 - p / (2.0 * num_tests), dtype=torch.float64)))


def z_scores(values: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """``values``: ``[C, N, *stat_shape]`` (one statistic per trailing index, ``C``
    chains of ``N`` draws); ``truth``: ``stat_shape``. Returns the z-scores, ``stat_shape``."""
    values = values.double()
    est = values.mean((0, 1))
    ess = effective_sample_size(values, chain_dim=0, sample_dim=1)
    mcse = values.reshape((-1,) + values.shape[2:]).std(0) / ess.sqrt()
    return (est - truth) / mcse


def gaussian_moments(x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor, pairs=((0, 1),)):
    """z-scores of the mean, the variance (centred at the true mean) and the cross
    moments :math:`E[(x_i-\\mu_i)(x_j-\\mu_j)]` of draws ``x`` ``[C, N, D]`` against
    :math:`\\mathcal N(\\mathrm{mean}, \\mathrm{cov})`. Returns a flat tensor of
    ``2 D + len(pairs)`` z-scores."""
    c = x - mean
    stats = [c, c * c] + [(c[..., i] * c[..., j]).unsqueeze(-1) for i, j in pairs]
    truth = [torch.zeros_like(mean), cov.diagonal()] + [cov[i, j].reshape(1) for i, j in pairs]
    return torch.cat([z_scores(s, t) for s, t in zip(stats, truth)])


def ula_stationary_covariance(cov: torch.Tensor, step_size: float, temperature: float = 1.0,
                              preconditioner: Optional[torch.Tensor] = None) -> torch.Tensor:
    r"""Exact stationary covariance of ULA, :math:`x' = x - h M P x + \sqrt{2hT} M^{1/2} z`,
    on :math:`U(x) = x^\top P x / 2` with :math:`P = \Sigma^{-1}`:

    .. math::

        S = T\, M^{1/2} \tilde P^{-1} (I - h \tilde P / 2)^{-1} M^{1/2},
        \qquad \tilde P = M^{1/2} P M^{1/2},

    (:math:`M = I`: :math:`S = T \Sigma (I - h\Sigma^{-1}/2)^{-1}`), the fixed point of
    :math:`S = A S A^\top + 2hT M` with :math:`A = I - hMP`. ``preconditioner`` is a
    ``[D]`` diagonal or a ``[D, D]`` matrix."""
    D = cov.shape[0]
    eye = torch.eye(D, dtype=cov.dtype)
    if preconditioner is None:
        root = eye
    elif preconditioner.dim() == 1:
        root = torch.diag(preconditioner.sqrt())
    else:
        evals, evecs = torch.linalg.eigh(preconditioner)
        root = evecs @ torch.diag(evals.sqrt()) @ evecs.T
    p_tilde = root @ torch.linalg.inv(cov) @ root
    inner = torch.linalg.inv(p_tilde) @ torch.linalg.inv(eye - 0.5 * step_size * p_tilde)
    out = temperature * root @ inner @ root
    return 0.5 * (out + out.T)


def correlated_2d(rho: float = 0.8, sds=(1.0, 2.0)) -> torch.Tensor:
    """A correlated 2-D covariance ``[2, 2]`` (float64)."""
    s = torch.tensor(sds, dtype=torch.float64)
    corr = torch.tensor([[1.0, rho], [rho, 1.0]], dtype=torch.float64)
    return corr * torch.outer(s, s)


def gaussian_potential(cov: torch.Tensor, name: str = "x"):
    """``potential(params) -> [*batch]``: :math:`U(x) = x^\\top \\Sigma^{-1} x / 2`."""
    precision = torch.linalg.inv(cov)

    def potential(params):
        x = params[name]
        return 0.5 * ((x @ precision) * x).sum(-1)

    return potential


def sample_gaussian(cov: torch.Tensor, shape) -> torch.Tensor:
    """Exact draws ``[*shape, D]`` from :math:`\\mathcal N(0, \\Sigma)`."""
    chol = torch.linalg.cholesky(cov)
    return torch.randn(tuple(shape) + (cov.shape[0],), dtype=cov.dtype) @ chol.T


def ess_min(values: torch.Tensor) -> float:
    return float(effective_sample_size(values.double(), chain_dim=0, sample_dim=1).min())


def run_chains(kernel, initial_position: torch.Tensor, warmup_steps: int, num_samples: int, *model_args,
               name: str = "x") -> torch.Tensor:
    """Draws ``[C, N, D]`` of ``C`` chains: one :class:`~pyro.infer.mcmc.api.MCMC` run
    of a kernel with ``vectorized_chains=C``, or ``C`` runs of a single-chain kernel
    driven as ``MCMC`` drives it, without the logging hook (``initial_position``
    ``[C, D]`` either way)."""
    from pyro.infer import MCMC

    if kernel.vectorized_chains is not None:
        mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=warmup_steps,
                    initial_params={name: initial_position}, disable_progbar=True)
        mcmc.run(*model_args)
        return mcmc.get_samples(group_by_chain=True)[name][0].transpose(0, 1)
    chains = []
    for x0 in initial_position:
        kernel.initial_params = {name: x0}
        kernel.setup(warmup_steps, *model_args)
        params = kernel.initial_params
        for _ in range(warmup_steps):
            params = kernel.sample(params)
        draws = []
        for _ in range(num_samples):
            params = kernel.sample(params)
            draws.append(params[name].clone())
        kernel.cleanup()
        chains.append(torch.stack(draws))
    return torch.stack(chains)
