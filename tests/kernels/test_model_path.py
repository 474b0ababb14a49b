r"""
The model path: a Pyro model with constrained sites, sampled in the unconstrained
space through :func:`~pyro.infer.mcmc.util.initialize_model` and returned constrained.

- ULA on a conjugate Normal--Gamma model: every draw in the support, and the
  posterior means of the mean and of the precision match the analytic values
  within MCSE (z-bound, ``stats_helpers``) at a small step size, where ULA's
  :math:`O(h)` bias is below the Monte Carlo error; at a 6x larger step the same
  check sees the bias.
- Vectorized MALA with adaptation matches the same analytic means, and (slow) on a
  model with HalfNormal and Beta sites matches NUTS's posterior means: :math:`z = (\bar x_{MALA} - \bar x_{NUTS}) /
  \sqrt{\mathrm{MCSE}_{MALA}^2 + \mathrm{MCSE}_{NUTS}^2}` (independent runs).
"""
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import MCMC, NUTS

from pyro.ops.stats import effective_sample_size

from pyro_langevin import MALA, ULA

from stats_helpers import z_bound, z_scores


@pytest.fixture
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


A0, B0, KAPPA0, M0 = 2.0, 2.0, 1.0, 0.0


def normal_gamma_model(y):
    r"""tau ~ Gamma(a0, b0), mu | tau ~ N(m0, 1/(kappa0 tau)), y_i ~ N(mu, 1/tau)."""
    tau = pyro.sample("tau", dist.Gamma(A0, B0))
    mu = pyro.sample("mu", dist.Normal(M0, (KAPPA0 * tau).rsqrt()))
    with pyro.plate("data", y.shape[-1]):
        pyro.sample("obs", dist.Normal(mu, tau.rsqrt()), obs=y)


def normal_gamma_posterior_means(y):
    """E[mu | y] = m_n and E[tau | y] = a_n / b_n (conjugate update)."""
    n, ybar = y.shape[-1], y.mean()
    kappa_n = KAPPA0 + n
    m_n = (KAPPA0 * M0 + n * ybar) / kappa_n
    a_n = A0 + n / 2
    b_n = B0 + 0.5 * ((y - ybar) ** 2).sum() + KAPPA0 * n * (ybar - M0) ** 2 / (2 * kappa_n)
    return {"mu": m_n, "tau": a_n / b_n}


def _ula_conjugate_max_z(step_size):
    y = 1.0 + torch.randn(20) / 1.5**0.5
    kernel = ULA(normal_gamma_model, step_size=step_size, thinning=5, vectorized_chains=128)
    mcmc = MCMC(kernel, num_samples=150, warmup_steps=60, disable_progbar=True)
    mcmc.run(y)
    samples = mcmc.get_samples(group_by_chain=True)  # [1, N, C]
    assert bool((samples["tau"] > 0).all()) and bool(torch.isfinite(samples["tau"]).all())
    assert bool(torch.isfinite(samples["mu"]).all())
    truth = normal_gamma_posterior_means(y)
    z = torch.stack([z_scores(samples[k][0].T, truth[k]) for k in ("mu", "tau")])
    return float(z.abs().max())


def test_ula_model_path_conjugate_posterior_means(float64):
    """h = 0.005 (posterior sds ~0.2 for mu, ~0.3 for log tau): bias below MCSE."""
    assert _ula_conjugate_max_z(0.005) < z_bound(2)


def test_ula_model_path_check_sees_bias_at_large_step(float64):
    """Sharpness: at h = 0.03 ULA's O(h) bias on E[tau] exceeds the same bound."""
    assert _ula_conjugate_max_z(0.03) > z_bound(2)


def test_mala_model_path_conjugate_posterior_means(float64):
    """Vectorized MALA with step-size and diagonal preconditioner adaptation is exact."""
    y = 1.0 + torch.randn(20) / 1.5**0.5
    kernel = MALA(normal_gamma_model, adapt_mass_matrix=True, vectorized_chains=32)
    mcmc = MCMC(kernel, num_samples=300, warmup_steps=300, disable_progbar=True)
    mcmc.run(y)
    samples = mcmc.get_samples(group_by_chain=True)
    assert bool((samples["tau"] > 0).all())
    truth = normal_gamma_posterior_means(y)
    z = torch.stack([z_scores(samples[k][0].T, truth[k]) for k in ("mu", "tau")])
    assert float(z.abs().max()) < z_bound(2), z


def test_ula_model_path_single_chain_in_support(float64):
    y = 1.0 + torch.randn(20)
    mcmc = MCMC(ULA(normal_gamma_model, step_size=0.01), num_samples=100, warmup_steps=20, disable_progbar=True)
    mcmc.run(y)
    tau = mcmc.get_samples()["tau"]
    assert tau.shape == (100,) and bool((tau > 0).all())


def halfnormal_beta_model(y, successes, trials):
    mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
    sigma = pyro.sample("sigma", dist.HalfNormal(5.0))
    p = pyro.sample("p", dist.Beta(2.0, 2.0))
    with pyro.plate("data", y.shape[-1]):
        pyro.sample("obs", dist.Normal(mu, sigma), obs=y)
    with pyro.plate("groups", successes.shape[-1]):
        pyro.sample("counts", dist.Binomial(trials, p), obs=successes)


def _means_and_mcse(draws):
    """draws [num_chains, N] -> (mean, MCSE) with ESS over the chains."""
    ess = effective_sample_size(draws, chain_dim=0, sample_dim=1)
    return draws.mean(), draws.std() / ess.sqrt()


@pytest.mark.slow
def test_mala_model_path_matches_nuts(float64):
    """NUTS (Pyro, one chain, 100 + 300 draws, max_tree_depth=4) takes ~9 s here."""
    y = 3.0 + 2.0 * torch.randn(40)
    trials = torch.full((5,), 20.0)
    successes = torch.tensor([5.0, 8.0, 6.0, 9.0, 4.0])
    args = (y, successes, trials)
    C = 32
    mala = MCMC(MALA(halfnormal_beta_model, adapt_mass_matrix=True, vectorized_chains=C),
                num_samples=300, warmup_steps=300, disable_progbar=True)
    mala.run(*args)
    nuts = MCMC(NUTS(halfnormal_beta_model, max_tree_depth=4), num_samples=300, warmup_steps=100,
                disable_progbar=True)
    nuts.run(*args)
    a, b = mala.get_samples(group_by_chain=True), nuts.get_samples(group_by_chain=True)
    z = []
    for name in ("mu", "sigma", "p"):
        m_mala, se_mala = _means_and_mcse(a[name][0].T)
        m_nuts, se_nuts = _means_and_mcse(b[name])
        z.append((m_mala - m_nuts) / (se_mala**2 + se_nuts**2).sqrt())
    z = torch.stack(z)
    assert float(z.abs().max()) < z_bound(3), z
    assert bool((a["sigma"] > 0).all()) and bool(((a["p"] > 0) & (a["p"] < 1)).all())
