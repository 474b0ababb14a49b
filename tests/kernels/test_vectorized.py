"""
Vectorized chains (``vectorized_chains=C``). Their exactness is checked with the
single-chain kernels' tests, which run vectorized by default (``test_ula.py``,
``test_mala.py``, ESS over the C chains); here: chains stay independent, the
potential_fn path's shape contract, and the model path with plates.
"""
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import MCMC

from pyro_langevin import MALA, ULA

from stats_helpers import correlated_2d, gaussian_potential

KERNELS = {"ULA": ULA, "MALA": MALA}


@pytest.mark.parametrize("name", list(KERNELS))
def test_chains_never_share_a_state(name):
    C = 16
    kernel = KERNELS[name](potential_fn=gaussian_potential(correlated_2d()), step_size=0.3, vectorized_chains=C)
    kernel.initial_params = {"x": torch.randn(C, 2, dtype=torch.float64)}
    kernel.setup(50)
    params = kernel.initial_params
    for _ in range(300):
        params = kernel.sample(params)
        x = params["x"]
        distance = torch.cdist(x, x) + torch.eye(C, dtype=x.dtype)
        assert float(distance.min()) > 0


@pytest.mark.parametrize("name", list(KERNELS))
def test_chains_from_one_start_separate_at_once(name):
    """Each chain draws its own noise: chains started at one point differ after one step."""
    C = 8
    kernel = KERNELS[name](potential_fn=gaussian_potential(correlated_2d()), step_size=0.3, vectorized_chains=C)
    kernel.initial_params = {"x": torch.zeros(C, 2, dtype=torch.float64)}
    kernel.setup(0)
    x = kernel.sample(kernel.initial_params)["x"]
    moved = x[(x != 0).any(-1)]
    assert len(moved) >= 2 and len(torch.unique(moved, dim=0)) == len(moved)


def scalar_potential(params):
    return 0.5 * (params["x"] ** 2).sum()


@pytest.mark.parametrize("name", list(KERNELS))
def test_scalar_potential_is_refused_with_the_expected_shape(name):
    kernel = KERNELS[name](potential_fn=scalar_potential, vectorized_chains=8)
    mcmc = MCMC(kernel, num_samples=5, warmup_steps=0, initial_params={"x": torch.zeros(8, 2)}, disable_progbar=True)
    with pytest.raises(ValueError, match=r"potential_fn must return shape \[8\] \(one potential per vectorized chain\), got \(\)"):
        mcmc.run()


@pytest.mark.parametrize("name", list(KERNELS))
def test_initial_params_without_chain_dim_are_refused(name):
    kernel = KERNELS[name](potential_fn=gaussian_potential(torch.eye(2)), vectorized_chains=8)
    kernel.initial_params = {"x": torch.zeros(2)}
    with pytest.raises(ValueError, match=r"initial_params\['x'\] must have shape \[8, \*site_shape\], got \(2,\)"):
        kernel.setup(0)


def test_single_chain_vector_potential_is_refused():
    kernel = ULA(potential_fn=gaussian_potential(torch.eye(2)))
    kernel.initial_params = {"x": torch.zeros(3, 2)}
    with pytest.raises(ValueError, match=r"potential_fn must return shape \[\] \(a scalar\), got \(3,\)"):
        kernel.setup(0)


def plated_model(y, group):
    """A HalfNormal scale, a per-group effect inside a plate, a Dirichlet and a
    to_event(1) positive vector; observations inside a plate."""
    sigma = pyro.sample("sigma", dist.HalfNormal(1.0))
    weights = pyro.sample("weights", dist.Dirichlet(torch.ones(3)))
    scales = pyro.sample("scales", dist.LogNormal(torch.zeros(2), 0.5).to_event(1))
    with pyro.plate("groups", 3):
        theta = pyro.sample("theta", dist.Normal(0.0, sigma))
    with pyro.plate("data", y.shape[-1]):
        loc = theta[..., group] + weights[..., 0]
        pyro.sample("obs", dist.Normal(loc, scales[..., 0]), obs=y)


@pytest.mark.parametrize("name", list(KERNELS))
def test_model_path_with_plates(name):
    C, N = 6, 9
    y, group = torch.randn(N), torch.arange(N) % 3
    kernel = KERNELS[name](plated_model, step_size=0.01, vectorized_chains=C)
    mcmc = MCMC(kernel, num_samples=20, warmup_steps=20, disable_progbar=True)
    mcmc.run(y, group)
    samples = mcmc.get_samples()
    assert samples["sigma"].shape == (20, C) and bool((samples["sigma"] > 0).all())
    assert samples["theta"].shape == (20, C, 3)
    assert samples["weights"].shape == (20, C, 3)
    torch.testing.assert_close(samples["weights"].sum(-1), torch.ones(20, C))
    assert samples["scales"].shape == (20, C, 2) and bool((samples["scales"] > 0).all())
    stats = kernel.diagnostics()["sample_stats"]
    assert stats["lp"].shape == (20, C) and stats["diverging"].shape == (20, C)
    # each chain started from its own draw of init_to_uniform
    kernel.setup(0, y, group)
    theta0 = kernel.initial_params["theta"]
    assert theta0.shape == (C, 3) and len(torch.unique(theta0, dim=0)) == C


def test_per_chain_acceptance_is_reported():
    kernel = MALA(potential_fn=gaussian_potential(torch.eye(2, dtype=torch.float64)), vectorized_chains=5)
    mcmc = MCMC(kernel, num_samples=30, warmup_steps=30, initial_params={"x": torch.zeros(5, 2, dtype=torch.float64)},
                disable_progbar=True)
    mcmc.run()
    rate = mcmc.diagnostics()["acceptance rate"]["chain 0"]
    assert isinstance(rate, list) and len(rate) == 5
    assert kernel.diagnostics()["sample_stats"]["accept_prob"].shape == (30, 5)
