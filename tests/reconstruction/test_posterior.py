import functools

import pyro
import pytest
import torch
from pyro.ops.stats import effective_sample_size

from pyro_langevin import MALA, ULA
from pyro_langevin.reconstruction import (Blur, Identity, Mask, PosteriorSummary, diagonal_scale,
                                          reconstruction_potential, sample_posterior)

from ._gaussian import DT, gaussian_posterior, gaussian_problem

SIGMA = 0.1
Z_MAX = 4.5  # two-sided, Bonferroni over 2 x 32 statistics at level ~1e-3: z = 4.3


def _z_scores(samples, mean, cov):
    """z-scores of the sample mean and variance against the exact moments, per pixel, with
    the Monte Carlo standard error from the effective sample size of each series."""
    x = samples.transpose(0, 1).flatten(2)  # [K, S, B * D]
    mean, var = mean.flatten(), cov.diagonal(dim1=-2, dim2=-1).flatten()
    ess_mean = effective_sample_size(x, chain_dim=0, sample_dim=1)
    z_mean = (x.mean((0, 1)) - mean) / (var / ess_mean).sqrt()
    sq = (x - mean) ** 2  # E[sq] = var
    ess_sq = effective_sample_size(sq, chain_dim=0, sample_dim=1)
    z_var = (sq.mean((0, 1)) - var) / (sq.flatten(0, 1).var(0) / ess_sq).sqrt()
    return z_mean, z_var


def _run(op, kernel=MALA, sampled_weight=1.0, seed=0):
    prob = gaussian_problem(op, batch=2, noise_sigma=SIGMA, seed=seed)
    U = reconstruction_potential(prob.prior, op, prob.observation, SIGMA, prior_weight=sampled_weight)
    pyro.set_rng_seed(seed)
    run = sample_posterior(U, prob.mean.expand(2, 1, 4, 4), num_samples=1500, warmup_steps=300, num_chains=4,
                           kernel=kernel, scale=diagonal_scale(U, prior_std=0.3))
    mean, cov = gaussian_posterior(prob, op, SIGMA)  # the posterior with prior weight 1
    return run, _z_scores(run.samples, mean, cov)


@pytest.mark.parametrize("op", [Blur(Blur.gaussian_kernel(3, 0.8)),
                                Mask(torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(0)) < 0.5)],
                         ids=["blur", "mask"])
def test_mala_posterior_mean_and_variance(op):
    run, (z_mean, z_var) = _run(op)
    assert run.samples.shape == (1500, 4, 2, 1, 4, 4) and run.num_divergent == 0
    assert 0.4 < float(run.accept_rate.mean()) < 0.8
    assert z_mean.abs().max() < Z_MAX, z_mean
    assert z_var.abs().max() < Z_MAX, z_var


def test_negative_controls_fail_the_same_check():
    op = Blur(Blur.gaussian_kernel(3, 0.8))
    # a prior weight of 2 instead of 1: the check must see the narrower posterior
    _, (z_mean, z_var) = _run(op, sampled_weight=2.0)
    assert max(z_mean.abs().max(), z_var.abs().max()) > Z_MAX
    # ULA at a large step: its stationary variance is inflated by (I - h Sigma^-1 / 2)^-1
    _, (z_mean, z_var) = _run(op, kernel=functools.partial(ULA, step_size=0.5))
    assert z_var.max() > Z_MAX


def test_summary_and_shapes():
    op = Identity()
    prob = gaussian_problem(op, batch=3, noise_sigma=SIGMA)
    U = reconstruction_potential(prob.prior, op, prob.observation, SIGMA)
    pyro.set_rng_seed(0)
    run = sample_posterior(U, prob.observation, num_samples=20, warmup_steps=10, num_chains=2,
                           kernel=functools.partial(ULA, step_size=1e-3), thinning=2)
    assert run.samples.shape == (20, 2, 3, 1, 4, 4) and run.accept_rate is None
    s = run.summary(credible_mass=0.8)
    flat = run.samples.flatten(0, 1)
    assert torch.allclose(s.lower, torch.quantile(flat, 0.1, dim=0)) and torch.allclose(s.upper, flat.quantile(0.9, 0))
    assert torch.allclose(s.mean, flat.mean(0)) and torch.allclose(s.std, flat.std(0))
    assert isinstance(s, PosteriorSummary) and all(t.shape == (3, 1, 4, 4) for t in s)
    with pytest.raises(ValueError, match="initial_x must have shape"):
        sample_posterior(U, prob.observation[:2], num_samples=2, warmup_steps=0)
    with pytest.raises(ValueError, match="credible_mass"):
        run.summary(credible_mass=1.0)
    with pytest.raises(TypeError, match="kernel must build"):
        sample_posterior(U, prob.observation, num_samples=2, warmup_steps=0, kernel=lambda **kw: None)


def test_diagonal_scale():
    op = Mask(torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=DT))
    prob = gaussian_problem(op, batch=2, image_shape=(1, 2, 2), noise_sigma=SIGMA)
    U = reconstruction_potential(prob.prior, op, prob.observation, SIGMA)
    tau = torch.tensor([[0.5, 0.25], [1.0, 2.0]], dtype=DT)
    expected = (op.mask / SIGMA**2 + tau**-2).rsqrt().expand(2, 1, 2, 2)
    assert torch.allclose(diagonal_scale(U, prior_std=tau), expected)
    assert torch.allclose(diagonal_scale(U, prior_std=0.5)[0, 0, 0, 1], torch.tensor(0.5, dtype=DT))
    with pytest.raises(ValueError, match="prior_std must be positive"):
        diagonal_scale(U, prior_std=-tau)
