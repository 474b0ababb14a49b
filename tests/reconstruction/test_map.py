import pytest
import torch

from pyro_langevin.reconstruction import (Blur, ConvergenceWarning, Downsample, Identity, Mask, map_estimate,
                                          reconstruction_potential)

from ._gaussian import DT, gaussian_posterior, gaussian_problem

OPERATORS = {
    "identity": Identity(),
    "mask": Mask(torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(3)) < 0.5),
    "blur": Blur(Blur.gaussian_kernel(3, 0.8)),
    "downsample": Downsample(2),
}


@pytest.mark.parametrize("name", list(OPERATORS))
@pytest.mark.parametrize("prior_weight", [1.0, 0.3])
def test_lbfgs_map_is_the_wiener_estimate(name, prior_weight):
    op = OPERATORS[name]
    prob = gaussian_problem(op, batch=3, noise_sigma=0.1)
    U = reconstruction_potential(prob.prior, op, prob.observation, 0.1, prior_weight)
    # rel_tol=0: stop on the gradient, or where U no longer changes in float64 (|grad U| ~ 1e-7 here)
    est = map_estimate(U, {"x": op.adjoint(prob.observation)}, grad_tol=1e-8, rel_tol=0)
    expected, _ = gaussian_posterior(prob, op, 0.1, prior_weight)
    assert est.converged and est.grad_max <= 1e-6 and set(est) == {"x"}
    assert est["x"].shape == expected.shape and est["x"].dtype == DT and not est["x"].requires_grad
    # the Hessian's smallest eigenvalue is >= 0.3 * min eig(P) ~ 0.7, so |x - x*| <~ |grad U| / 0.7
    assert torch.allclose(est["x"], expected, rtol=0, atol=1e-7)
    assert est.potential == pytest.approx(float(U({"x": expected}).detach()), rel=1e-12)


def test_adam_map_and_vectorized_chains():
    op = OPERATORS["blur"]
    prob = gaussian_problem(op, batch=2, noise_sigma=0.1)
    U = reconstruction_potential(prob.prior, op, prob.observation, 0.1)
    init = {"x": prob.observation.expand(3, 2, 1, 4, 4)}  # three chains optimised together
    est = map_estimate(U, init, optimizer="adam", lr=0.02, max_iter=3000, grad_tol=1e-4)
    expected, _ = gaussian_posterior(prob, op, 0.1)
    assert est.converged and est["x"].shape == (3, 2, 1, 4, 4)
    assert torch.allclose(est["x"], expected.expand(3, 2, 1, 4, 4), atol=1e-4)
    assert torch.equal(init["x"], prob.observation.expand(3, 2, 1, 4, 4))  # not modified


def test_float32_stops_on_stagnation():
    op = OPERATORS["identity"]
    prob = gaussian_problem(op, noise_sigma=0.1)
    U = reconstruction_potential(prob.prior.float(), op, prob.observation.float(), 0.1)
    est = map_estimate(U, {"x": prob.observation.float()}, grad_tol=1e-12)
    expected, _ = gaussian_posterior(prob, op, 0.1)
    assert est.converged and est["x"].dtype == torch.float32
    assert torch.allclose(est["x"].double(), expected, atol=1e-4)


def test_non_finite_potential_raises():
    def potential(params):
        return (params["x"] ** 2).sum() + torch.log(params["x"].sum() - 10.0)  # NaN at the start
    with pytest.raises(FloatingPointError, match="potential is nan"):
        map_estimate(potential, {"x": torch.zeros(3, dtype=DT)})

    def potential_grad_inf(params):
        return params["x"].abs().sqrt().sum()  # infinite gradient at 0
    with pytest.raises(FloatingPointError, match=r"gradient of the potential for 'x' is not finite"):
        map_estimate(potential_grad_inf, {"x": torch.zeros(3, dtype=DT)})


def test_max_iter_warns_and_arguments_are_checked():
    prob = gaussian_problem(Identity(), noise_sigma=0.1)
    U = reconstruction_potential(prob.prior, Identity(), prob.observation, 0.1)
    with pytest.warns(ConvergenceWarning, match="max_iter=1"):
        est = map_estimate(U, {"x": prob.observation}, optimizer="adam", max_iter=1)
    assert not est.converged and est.num_iterations == 1
    with pytest.raises(ValueError, match="optimizer must be 'lbfgs' or 'adam', got 'sgd'"):
        map_estimate(U, {"x": prob.observation}, optimizer="sgd")
    with pytest.raises(ValueError, match="max_iter must be a positive integer, got 0"):
        map_estimate(U, {"x": prob.observation}, max_iter=0)
    with pytest.raises(TypeError, match="floating-point tensor"):
        map_estimate(U, {"x": torch.zeros(2, 1, 4, 4, dtype=torch.long)})


def test_diagonal_scale_preconditions_a_stiff_problem():
    from pyro_langevin.reconstruction import diagonal_scale

    op = OPERATORS["mask"]
    prob = gaussian_problem(op, batch=3, noise_sigma=0.01)  # observed pixels pinned to 0.01
    U = reconstruction_potential(prob.prior, op, prob.observation, 0.01)
    expected, _ = gaussian_posterior(prob, op, 0.01)
    plain = map_estimate(U, {"x": prob.observation}, grad_tol=1e-6, rel_tol=0)
    scaled = map_estimate(U, {"x": prob.observation}, grad_tol=1e-6, rel_tol=0,
                          scale={"x": diagonal_scale(U, prior_std=0.3)})
    assert scaled.converged and torch.allclose(scaled["x"], expected, atol=1e-7)
    assert scaled.num_iterations < plain.num_iterations
    with pytest.raises(ValueError, match="scale names the site 'z'"):
        map_estimate(U, {"x": prob.observation}, scale={"z": torch.ones(1)})
