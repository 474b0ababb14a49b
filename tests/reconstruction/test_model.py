import pyro
import pyro.optim
import pytest
import torch
from pyro.infer import MCMC, SVI, Trace_ELBO
from pyro.infer.autoguide import AutoDelta
from pyro.infer.autoguide.initialization import init_to_value
from pyro.infer.mcmc.util import initialize_model

from pyro_langevin import MALA, ULA
from pyro_langevin.reconstruction import EnergyDistribution, Mask, reconstruction_model, reconstruction_potential

from ._gaussian import DT, gaussian_posterior, gaussian_problem

SIGMA = 0.2


@pytest.fixture
def problem():
    op = Mask(torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=DT))
    prob = gaussian_problem(op, batch=2, image_shape=(1, 2, 2), noise_sigma=SIGMA)
    return op, prob


def test_energy_distribution_log_prob_and_no_sampler(problem):
    _, prob = problem
    d = EnergyDistribution(prob.prior, (1, 2, 2), temperature=2.0).expand((3,))
    x = torch.randn(5, 3, 1, 2, 2, dtype=DT)
    assert d.batch_shape == (3,) and d.event_shape == (1, 2, 2)
    assert torch.allclose(d.log_prob(x), -prob.prior(x.reshape(15, 1, 2, 2)).reshape(5, 3) / 2.0)
    with pytest.raises(NotImplementedError, match="init_to_value"):
        d.sample()
    with pytest.raises(ValueError, match="temperature"):
        EnergyDistribution(prob.prior, (1, 2, 2), temperature=0)


def test_model_potential_is_the_reconstruction_potential(problem):
    op, prob = problem
    model = reconstruction_model(prob.prior, op, prob.observation, SIGMA, prior_weight=1.5)
    U = reconstruction_potential(prob.prior, op, prob.observation, SIGMA, prior_weight=1.5)
    _, model_potential, _, _ = initialize_model(model, max_plate_nesting=1,
                                                init_strategy=init_to_value(values={"x": prob.observation}))
    a, b = torch.randn(2, 2, 1, 2, 2, dtype=DT)
    # equal up to the likelihood's normalising constant
    assert torch.allclose(model_potential({"x": a}) - model_potential({"x": b}), U({"x": a}) - U({"x": b}))


@pytest.mark.parametrize("kernel_cls", [ULA, MALA])
def test_langevin_kernels_on_the_model(problem, kernel_cls):
    op, prob = problem
    pyro.set_rng_seed(0)
    model = reconstruction_model(prob.prior, op, prob.observation, SIGMA)
    init = init_to_value(values={"x": prob.observation})
    kernel = kernel_cls(model=model, step_size=5e-3, init_strategy=init, max_plate_nesting=1, vectorized_chains=4)
    mcmc = MCMC(kernel, num_samples=200, warmup_steps=50, disable_progbar=True)
    mcmc.run()
    x = mcmc.get_samples()["x"]
    assert x.shape == (200, 4, 2, 1, 2, 2)
    mean, cov = gaussian_posterior(prob, op, SIGMA)
    # a smoke check of the target (the calibrated check is in test_posterior.py): the draws' mean
    # is within one posterior sd of the exact mean
    sd = cov.diagonal(dim1=-2, dim2=-1).sqrt().reshape(mean.shape)
    assert ((x.mean((0, 1)) - mean).abs() < sd).all()


def test_autodelta_svi_finds_the_map(problem):
    op, prob = problem
    pyro.set_rng_seed(0)
    pyro.clear_param_store()
    model = reconstruction_model(prob.prior, op, prob.observation, SIGMA)
    guide = AutoDelta(model, init_loc_fn=init_to_value(values={"x": prob.observation}))
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.05}), Trace_ELBO())
    for _ in range(300):
        svi.step()
    mean, _ = gaussian_posterior(prob, op, SIGMA)  # the Gaussian posterior's mode is its mean
    assert torch.allclose(guide.median()["x"], mean, atol=1e-5)
