import pytest
import torch
from pyro.infer import MCMC

from pyro_langevin import MALA
from pyro_langevin.reconstruction import Downsample, Identity, Mask, reconstruction_potential

from ._gaussian import DT, gaussian_problem


def test_potential_value_and_layouts():
    op = Mask(torch.rand(4, 4, generator=torch.Generator().manual_seed(0)) < 0.5)
    prob = gaussian_problem(op, batch=3)
    U = reconstruction_potential(prob.prior, op, prob.observation, noise_sigma=0.1, prior_weight=2.0)
    x = torch.randn(3, 1, 4, 4, dtype=DT)
    expected = ((prob.observation - op(x)) ** 2).sum() / (2 * 0.1**2) + 2.0 * prob.prior(x).sum()
    assert torch.allclose(U({"x": x}), expected, rtol=1e-13)
    assert U({"x": x}).shape == () and U.per_image(x).shape == (3,)
    chains = torch.randn(5, 3, 1, 4, 4, dtype=DT)
    assert U({"x": chains}).shape == (5,) and U.per_image(chains).shape == (5, 3)
    assert torch.allclose(U({"x": chains})[2], U({"x": chains[2]}), rtol=1e-13)
    assert torch.allclose(U.per_image(chains)[1], U.per_image(chains[1]), rtol=1e-13)


def test_prior_weight_zero_is_the_data_term():
    prob = gaussian_problem(Identity())
    U = reconstruction_potential(prob.prior, Identity(), prob.observation, 0.5, prior_weight=0)
    assert U({"x": prob.observation}) == 0


def test_vectorized_chains_under_mcmc():
    op = Downsample(2)
    prob = gaussian_problem(op, batch=2)
    U = reconstruction_potential(prob.prior, op, prob.observation, noise_sigma=0.1)
    init = {"x": prob.mean.expand(3, 2, 1, 4, 4).clone()}
    mcmc = MCMC(MALA(potential_fn=U, vectorized_chains=3), num_samples=5, warmup_steps=5, initial_params=init,
                disable_progbar=True)
    mcmc.run()
    assert mcmc.get_samples()["x"].shape == (5, 3, 2, 1, 4, 4)


def test_shape_errors():
    prob = gaussian_problem(Identity())
    with pytest.raises(ValueError, match=r"Mask\(shape=\(8, 8\).*does not fit images of shape \(2, 1, 4, 4\)"):
        reconstruction_potential(prob.prior, Mask(torch.ones(8, 8)), prob.observation, 0.1)
    with pytest.raises(ValueError, match=r"must have shape \[2, 1, 8, 8\] .*got \(2, 1, 4, 4\)"):
        # a 4x4 observation of Downsample(2) is of 8x8 images
        reconstruction_potential(prob.prior, Downsample(2), prob.observation, 0.1).per_image(prob.observation)
    with pytest.raises(ValueError, match=r"observation must be a tensor \[B, C, H, W\], got \(1, 4, 4\)"):
        reconstruction_potential(prob.prior, Identity(), prob.observation[0], 0.1)
    U = reconstruction_potential(prob.prior, Identity(), prob.observation, 0.1)
    with pytest.raises(ValueError, match=r"params\['x'\] must have shape \[2, 1, 4, 4\].*got \(3, 1, 4, 4\)"):
        U({"x": torch.zeros(3, 1, 4, 4, dtype=DT)})
    with pytest.raises(ValueError, match="noise_sigma must be positive"):
        reconstruction_potential(prob.prior, Identity(), prob.observation, 0.0)
    with pytest.raises(ValueError, match="prior_weight must be non-negative"):
        reconstruction_potential(prob.prior, Identity(), prob.observation, 0.1, prior_weight=-1)
    bad = reconstruction_potential(lambda x: x.sum(), Identity(), prob.observation, 0.1)
    with pytest.raises(ValueError, match=r"energies \[N\]"):
        bad({"x": prob.observation})
