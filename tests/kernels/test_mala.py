r"""
MALA is exact: its post-warmup draws follow the target itself.

Checks: mean, variances and one cross moment against :math:`\mathcal N(0, \Sigma)`
through MCSE z-scores (ESS over the chains, ``stats_helpers``) and a Bonferroni
bound at family-wise error 1e-3, on a correlated 2-D Gaussian and on the 100-D
diagonal Gaussian with standard deviations ``linspace(0.1, 1, 100)``, warmup
adaptation on (its output is frozen before the draws that are checked). Chains start
from exact draws. The negative control drops the proposal-density term
:math:`\log q(x \mid x') - \log q(x' \mid x)` from the acceptance ratio -- a real,
commonly made mistake -- and must fail the same check.
"""
import pytest
import torch

import pyro_langevin.kernels.mala as mala_module
from pyro_langevin import MALA

from stats_helpers import correlated_2d, gaussian_moments, gaussian_potential, run_chains, sample_gaussian, z_bound

SDS_100 = torch.linspace(0.1, 1.0, 100, dtype=torch.float64)


def target(name):
    if name == "2d-correlated":
        return correlated_2d(rho=0.8, sds=(1.0, 2.0))
    return torch.diag(SDS_100**2)


def mala_max_z(name, *, vectorized=True, num_chains=64, warmup_steps=300, num_samples=400):
    cov = target(name)
    kernel = MALA(potential_fn=gaussian_potential(cov), step_size=0.1, adapt_mass_matrix=name == "100d",
                  vectorized_chains=num_chains if vectorized else None)
    x = run_chains(kernel, sample_gaussian(cov, (num_chains,)), warmup_steps, num_samples)
    z = gaussian_moments(x, torch.zeros(cov.shape[0], dtype=cov.dtype), cov)
    return float(z.abs().max()), z.numel(), kernel


def _log_ratio_without_proposal_density(state, proposal, noise, step_size, temperature=1.0, **kwargs):
    """The broken MALA ratio: target densities only, as if the proposal were symmetric."""
    return (state.potential - proposal.potential) / temperature


@pytest.mark.parametrize("name", ["2d-correlated", "100d"])
def test_mala_is_exact(name):
    max_z, m, kernel = mala_max_z(name)
    assert max_z < z_bound(m), f"max |z| = {max_z:.2f} over {m} statistics"
    assert kernel.diagnostics()["divergences"] == []


def test_mala_single_chain_is_exact():
    """The non-vectorized path (batch shape []): 4 chains one after the other."""
    max_z, m, _ = mala_max_z("2d-correlated", vectorized=False, num_chains=4, warmup_steps=200, num_samples=800)
    assert max_z < z_bound(m), f"max |z| = {max_z:.2f}"


@pytest.mark.parametrize("name", ["2d-correlated", "100d"])
def test_negative_control_without_proposal_density_fails(name, monkeypatch):
    monkeypatch.setattr(mala_module, "log_accept_ratio", _log_ratio_without_proposal_density)
    max_z, m, _ = mala_max_z(name)
    assert max_z > z_bound(m), f"the broken MALA passed: max |z| = {max_z:.2f}"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["2d-correlated", "100d"])
def test_mala_is_exact_long(name):
    max_z, m, _ = mala_max_z(name, num_chains=256, warmup_steps=1000, num_samples=2000)
    assert max_z < z_bound(m), f"max |z| = {max_z:.2f} over {m} statistics"


def test_mala_temperature_targets_tempered_law():
    """At temperature T the target is exp(-U/T): covariance T Sigma."""
    cov = target("2d-correlated")
    kernel = MALA(potential_fn=gaussian_potential(cov), temperature=2.0, vectorized_chains=64)
    x = run_chains(kernel, sample_gaussian(2.0 * cov, (64,)), 300, 400)
    z = gaussian_moments(x, torch.zeros(2, dtype=cov.dtype), 2.0 * cov)
    assert float(z.abs().max()) < z_bound(z.numel())


def test_mala_full_mass_is_exact():
    """Dense preconditioner adapted in warmup (full_mass=True), then frozen."""
    cov = target("2d-correlated")
    kernel = MALA(potential_fn=gaussian_potential(cov), adapt_mass_matrix=True, full_mass=True, vectorized_chains=64)
    x = run_chains(kernel, sample_gaussian(cov, (64,)), 300, 400)
    assert kernel.preconditioner.matrix.shape == (2, 2)
    z = gaussian_moments(x, torch.zeros(2, dtype=cov.dtype), cov)
    assert float(z.abs().max()) < z_bound(z.numel())
