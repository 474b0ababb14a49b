r"""
ULA's own stationary law, which is exact on Gaussians: for :math:`U(x) = x^\top\Sigma^{-1}x/2`
the chain :math:`x' = x - hM\nabla U + \sqrt{2hT}M^{1/2}z` is a Gaussian AR(1) process
with stationary covariance :math:`T\,\Sigma(I - h\Sigma^{-1}/2)^{-1}` (:math:`M = I`;
``stats_helpers.ula_stationary_covariance`` for general :math:`M`).

Every check compares the mean, the variances and the cross moment with that law
through MCSE z-scores (ESS over the chains) and a Bonferroni bound at family-wise
error 1e-3 (``stats_helpers``). Chains start from the exact stationary law, so no
burn-in bias enters. The negative control runs the same check on a really broken
move (noise :math:`\sqrt{h}\,z` instead of :math:`\sqrt{2h}\,z`) and must fail it.
"""
import math

import pytest
import torch

import pyro_langevin.kernels.ula as ula_module
from pyro_langevin import ULA
from pyro_langevin.langevin import langevin_step

from stats_helpers import (
    correlated_2d,
    gaussian_moments,
    gaussian_potential,
    run_chains,
    sample_gaussian,
    ula_stationary_covariance,
    z_bound,
)

CASES = {
    # name: (covariance, step size); h well inside stability (h < 2 lambda_min(Sigma))
    "1d": (torch.tensor([[2.25]], dtype=torch.float64), 0.5),
    "2d-correlated": (correlated_2d(rho=0.8, sds=(1.0, 2.0)), 0.2),
}


def ula_max_z(cov, step_size, *, vectorized=True, temperature=1.0, num_chains=128, num_samples=600):
    """max |z| of mean, variances and cross moment of post-warmup ULA draws against
    ULA's exact stationary law; started from that law."""
    exact = ula_stationary_covariance(cov, step_size, temperature)
    kernel = ULA(potential_fn=gaussian_potential(cov), step_size=step_size, temperature=temperature,
                 vectorized_chains=num_chains if vectorized else None)
    x0 = sample_gaussian(exact, (num_chains,))
    x = run_chains(kernel, x0, 0, num_samples)
    D = cov.shape[0]
    z = gaussian_moments(x, torch.zeros(D, dtype=cov.dtype), exact, pairs=((0, 1),) if D > 1 else ())
    return float(z.abs().max()), z.numel()


@pytest.mark.parametrize("case", list(CASES))
def test_ula_stationary_law_is_exact(case):
    cov, h = CASES[case]
    max_z, m = ula_max_z(cov, h)
    assert max_z < z_bound(m), f"max |z| = {max_z:.2f} over {m} statistics"


def test_ula_single_chain_stationary_law():
    """The non-vectorized path (batch shape []): 4 chains run one after the other."""
    cov, h = CASES["1d"]
    max_z, m = ula_max_z(cov, h, vectorized=False, num_chains=4, num_samples=1000)
    assert max_z < z_bound(m), f"max |z| = {max_z:.2f}"


def test_ula_temperature_scales_the_stationary_covariance():
    cov, h = CASES["2d-correlated"]
    max_z, m = ula_max_z(cov, h, temperature=2.0)
    assert max_z < z_bound(m), f"max |z| = {max_z:.2f}"


def test_the_check_sees_ula_bias():
    """Sharpness: the same check against the *target's* covariance (not ULA's) fails,
    so the tolerance is tight enough to see an O(h) bias."""
    cov, h = CASES["2d-correlated"]
    kernel = ULA(potential_fn=gaussian_potential(cov), step_size=h, vectorized_chains=128)
    x = run_chains(kernel, sample_gaussian(ula_stationary_covariance(cov, h), (128,)), 0, 600)
    z = gaussian_moments(x, torch.zeros(2, dtype=cov.dtype), cov)
    assert float(z.abs().max()) > z_bound(z.numel())


def _sqrt_h_noise_step(state, potential_fn, step_size, temperature=1.0, **kwargs):
    """A really broken Langevin move: x' = x - h grad U + sqrt(h T) z (noise too small by sqrt 2)."""
    noise = kwargs.pop("noise", None)
    noise = (torch.randn_like(state.position) if noise is None else noise) / math.sqrt(2.0)
    return langevin_step(state, potential_fn, step_size, temperature, noise=noise, **kwargs)


@pytest.mark.parametrize("case", list(CASES))
def test_negative_control_sqrt_h_noise_fails(case, monkeypatch):
    monkeypatch.setattr(ula_module, "langevin_step", _sqrt_h_noise_step)
    cov, h = CASES[case]
    max_z, m = ula_max_z(cov, h)
    assert max_z > z_bound(m), f"the broken move passed: max |z| = {max_z:.2f}"


def test_preconditioned_ula_stationary_law():
    """With an adapted (then frozen) step size and diagonal M the stationary covariance
    is T M^{1/2} P~^{-1} (I - h P~/2)^{-1} M^{1/2}, P~ = M^{1/2} Sigma^{-1} M^{1/2}."""
    cov = torch.diag(torch.tensor([0.04, 1.0, 4.0], dtype=torch.float64))
    kernel = ULA(potential_fn=gaussian_potential(cov), step_size=0.01, adapt_step_size=True, target_accept_prob=0.7,
                 adapt_mass_matrix=True, vectorized_chains=128)
    x = run_chains(kernel, sample_gaussian(cov, (128,)), 200, 600)
    m_diag = kernel.preconditioner.matrix
    assert not torch.allclose(m_diag, torch.ones(3, dtype=torch.float64))
    exact = ula_stationary_covariance(cov, kernel.step_size, preconditioner=m_diag)
    z = gaussian_moments(x, torch.zeros(3, dtype=torch.float64), exact)
    assert float(z.abs().max()) < z_bound(z.numel())


# ---------------------------------------------------------------- self-tuning ULA
def _tuned_ula(cov, target, num_chains=128):
    kernel = ULA(potential_fn=gaussian_potential(cov), step_size=0.01, adapt_step_size=True,
                 target_accept_prob=target, vectorized_chains=num_chains)
    x = run_chains(kernel, sample_gaussian(cov, (num_chains,)), 300, 600)
    return kernel, x


def test_self_tuning_ula_higher_target_smaller_step_and_bias():
    """Higher shadow-acceptance target -> smaller h -> smaller bias; at each tuned h
    the draws follow ULA's exact law, and the measured variance bias (draws minus
    the target's variance) shrinks by more than its Monte Carlo error."""
    cov = correlated_2d(rho=0.5, sds=(1.0, 1.5))
    results = {}
    for target in (0.6, 0.95):
        kernel, x = _tuned_ula(cov, target)
        h = kernel.step_size
        exact = ula_stationary_covariance(cov, h)
        z = gaussian_moments(x, torch.zeros(2, dtype=torch.float64), exact)
        assert float(z.abs().max()) < z_bound(z.numel()), f"target {target}: max |z| = {z.abs().max():.2f}"
        rate = kernel.diagnostics()["acceptance rate"]
        assert abs(sum(rate) / len(rate) - target) < 0.05  # the shadow rate is reported and on target
        var = (x * x).mean((0, 1))
        results[target] = (h, var, exact.diagonal())
    (h_lo, var_lo, exact_lo), (h_hi, var_hi, exact_hi) = results[0.6], results[0.95]
    assert h_hi < h_lo
    # exact bias ordering from the formula, and the measured one
    assert bool((exact_hi - cov.diagonal() < exact_lo - cov.diagonal()).all())
    measured_gap = (var_lo - var_hi) / exact_lo  # relative, per dimension
    assert bool((measured_gap > 0.05).all()), measured_gap


def test_ula_divergent_proposals_have_zero_shadow_acceptance():
    def potential(params):
        x = params["x"]
        return torch.where(x[..., 0] > 0.5, torch.full_like(x[..., 0], -math.inf), 0.5 * (x * x).sum(-1))

    kernel = ULA(potential_fn=potential, step_size=1.0, track_accept_prob=True, vectorized_chains=256)
    kernel.initial_params = {"x": torch.zeros(256, 2, dtype=torch.float64)}
    kernel.setup(0)
    state, info = kernel.move(kernel._state)
    assert bool(info.diverging.any())
    assert bool((info.accept_prob[info.diverging] == 0).all())
    assert bool(torch.isfinite(state.potential).all())
