r"""
The one Langevin update of :mod:`pyro_langevin.langevin`, deterministically: one step
against its formula for a given noise, MALA's log acceptance ratio against a direct
computation of the two Gaussian proposal densities, ``select`` and ``is_finite``,
for batch shapes ``[]``, ``[C]`` and image-shaped events ``[B, 1, 8, 8]``.
"""
import math

import pytest
import torch
from torch.distributions import MultivariateNormal

from pyro_langevin.langevin import (
    LangevinState,
    init_state,
    is_finite,
    langevin_step,
    log_accept_ratio,
    potential_and_grad,
    select,
)
from pyro_langevin.preconditioner import DensePreconditioner, DiagonalPreconditioner

SHAPES = {  # name: (batch_shape, event_shape)
    "single": ((), (3,)),
    "chains": ((5,), (3,)),
    "images": ((4,), (1, 8, 8)),
}


def quartic(event_dims):
    """A non-quadratic potential with coupled coordinates: sum x^4/4 + x^2/2 + 0.3 x_0 x_1
    over the trailing ``event_dims`` dimensions."""
    def potential(x):
        flat = x.flatten(-event_dims) if event_dims > 1 else x
        return (0.25 * flat**4 + 0.5 * flat**2).sum(-1) + 0.3 * flat[..., 0] * flat[..., 1]

    return potential


def quartic_grad(x, event_dims):
    flat = x.flatten(-event_dims) if event_dims > 1 else x
    g = flat**3 + flat
    g = g.clone()
    g[..., 0] += 0.3 * flat[..., 1]
    g[..., 1] += 0.3 * flat[..., 0]
    return g.reshape(x.shape)


def make_preconditioner(kind, D):
    if kind == "identity":
        return None, torch.eye(D, dtype=torch.float64)
    if kind == "diagonal":
        m = torch.linspace(0.5, 2.0, D, dtype=torch.float64)
        return DiagonalPreconditioner(m), torch.diag(m)
    a = torch.randn(D, D, dtype=torch.float64)
    m = a @ a.T / D + 0.5 * torch.eye(D, dtype=torch.float64)
    return DensePreconditioner(m), m


@pytest.mark.parametrize("shape", list(SHAPES))
def test_potential_and_grad_shapes_and_values(shape):
    batch, event = SHAPES[shape]
    x = torch.randn(batch + event, dtype=torch.float64)
    potential, grad = potential_and_grad(quartic(len(event)), x)
    assert potential.shape == batch and grad.shape == x.shape
    assert not potential.requires_grad and not grad.requires_grad
    torch.testing.assert_close(grad, quartic_grad(x, len(event)))


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("temperature", [1.0, 0.3])
def test_langevin_step_formula_identity(shape, temperature):
    batch, event = SHAPES[shape]
    U = quartic(len(event))
    state = init_state(U, torch.randn(batch + event, dtype=torch.float64))
    z = torch.randn_like(state.position)
    h = 0.07
    proposal, noise = langevin_step(state, U, h, temperature, noise=z)
    expected = state.position - h * quartic_grad(state.position, len(event)) + math.sqrt(2 * h * temperature) * z
    assert noise is z
    torch.testing.assert_close(proposal.position, expected)
    torch.testing.assert_close(proposal.potential, U(expected))
    torch.testing.assert_close(proposal.grad, quartic_grad(expected, len(event)))
    assert proposal.potential.shape == batch


@pytest.mark.parametrize("kind", ["diagonal", "dense"])
@pytest.mark.parametrize("batch", [(), (5,)])
def test_langevin_step_formula_preconditioned(kind, batch):
    U = quartic(1)
    precond, M = make_preconditioner(kind, 3)
    state = init_state(U, torch.randn(batch + (3,), dtype=torch.float64))
    z = torch.randn_like(state.position)
    h, T = 0.05, 1.7
    proposal, _ = langevin_step(state, U, h, T, preconditioner=precond, noise=z)
    L = torch.linalg.cholesky(M)
    expected = state.position - h * state.grad @ M.T + math.sqrt(2 * h * T) * z @ L.T
    torch.testing.assert_close(proposal.position, expected)


def test_langevin_step_grad_clip_and_clamp():
    U = quartic(1)
    state = init_state(U, torch.tensor([[3.0, -3.0, 0.1]], dtype=torch.float64))
    z = torch.randn_like(state.position)
    h = 0.1
    proposal, _ = langevin_step(state, U, h, grad_clip=0.5, clamp=(-1.0, 1.0), noise=z)
    expected = (state.position - h * state.grad.clamp(-0.5, 0.5) + math.sqrt(2 * h) * z).clamp(-1.0, 1.0)
    torch.testing.assert_close(proposal.position, expected)


def test_langevin_step_default_noise_is_standard_normal():
    U = quartic(1)
    state = init_state(U, torch.zeros(20000, 2, dtype=torch.float64))
    _, noise = langevin_step(state, U, 0.1)
    assert noise.shape == state.position.shape
    assert abs(float(noise.mean())) < 0.02 and abs(float(noise.var()) - 1.0) < 0.03


def direct_log_accept_ratio(x, x_new, U, h, T, M, event_dims, grad_clip=None):
    """-(U(x') - U(x))/T + log N(x; x' - h M g(x'), 2hTM) - log N(x'; x - h M g(x), 2hTM),
    with torch's MultivariateNormal on flattened events."""
    def g(y):
        grad = quartic_grad(y, event_dims).flatten(-event_dims) if event_dims > 1 else quartic_grad(y, event_dims)
        return grad if grad_clip is None else grad.clamp(-grad_clip, grad_clip)

    flat = (lambda y: y.flatten(-event_dims)) if event_dims > 1 else (lambda y: y)
    fwd = MultivariateNormal(flat(x) - h * g(x) @ M.T, covariance_matrix=2 * h * T * M)
    back = MultivariateNormal(flat(x_new) - h * g(x_new) @ M.T, covariance_matrix=2 * h * T * M)
    return -(U(x_new) - U(x)) / T + back.log_prob(flat(x)) - fwd.log_prob(flat(x_new))


@pytest.mark.parametrize("kind", ["identity", "diagonal", "dense"])
@pytest.mark.parametrize("shape", ["single", "chains"])
@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_log_accept_ratio_equals_gaussian_proposal_densities(kind, shape, temperature):
    batch, event = SHAPES[shape]
    U = quartic(1)
    precond, M = make_preconditioner(kind, 3)
    state = init_state(U, torch.randn(batch + event, dtype=torch.float64))
    h = 0.2
    proposal, noise = langevin_step(state, U, h, temperature, preconditioner=precond)
    got = log_accept_ratio(state, proposal, noise, h, temperature, preconditioner=precond)
    want = direct_log_accept_ratio(state.position, proposal.position, U, h, temperature, M, 1)
    assert got.shape == batch
    torch.testing.assert_close(got, want)


def test_log_accept_ratio_images_and_grad_clip():
    """Image events [B, 1, 8, 8] reduce over all event dims; with grad_clip the proposal
    is still Gaussian and the ratio uses the clipped drift both ways."""
    batch, event = SHAPES["images"]
    U = quartic(len(event))
    state = init_state(U, torch.randn(batch + event, dtype=torch.float64))
    h, T = 0.05, 1.0
    proposal, noise = langevin_step(state, U, h, T, grad_clip=0.5)
    got = log_accept_ratio(state, proposal, noise, h, T, grad_clip=0.5)
    M = torch.eye(64, dtype=torch.float64)
    want = direct_log_accept_ratio(state.position, proposal.position, U, h, T, M, len(event), grad_clip=0.5)
    assert got.shape == batch
    torch.testing.assert_close(got, want)


def test_log_accept_ratio_vanishes_for_small_steps():
    """On a Gaussian, log alpha = O(h^{3/2}): tiny steps are accepted almost surely."""
    def U(x):
        return 0.5 * (x * x).sum(-1)

    state = init_state(U, torch.randn(100, 3, dtype=torch.float64))
    proposal, noise = langevin_step(state, U, 1e-6)
    assert float(log_accept_ratio(state, proposal, noise, 1e-6).abs().max()) < 1e-5


@pytest.mark.parametrize("shape", list(SHAPES))
def test_select_and_is_finite(shape):
    batch, event = SHAPES[shape]
    U = quartic(len(event))
    old = init_state(U, torch.randn(batch + event, dtype=torch.float64))
    new = init_state(U, torch.randn(batch + event, dtype=torch.float64))
    mask = torch.rand(batch) < 0.5 if batch else torch.tensor(False)
    if batch:
        mask[0], mask[-1] = True, False
    out = select(mask, new, old)
    m = mask.reshape(batch + (1,) * len(event))
    torch.testing.assert_close(out.position, torch.where(m, new.position, old.position))
    torch.testing.assert_close(out.potential, torch.where(mask, new.potential, old.potential))
    torch.testing.assert_close(out.grad, torch.where(m, new.grad, old.grad))
    assert bool(is_finite(new).all())
    # break element 0 three ways: NaN potential, inf gradient, -inf and +inf gradient entries
    for breaker in ("nan_potential", "inf_grad", "mixed_inf"):
        potential, grad = new.potential.clone(), new.grad.clone()
        idx = (0,) if batch else ()
        if breaker == "nan_potential":
            potential[idx] = math.nan
        elif breaker == "inf_grad":
            grad[idx].view(-1)[1] = math.inf
        else:
            grad[idx].view(-1)[0] = math.inf
            grad[idx].view(-1)[1] = -math.inf
        finite = is_finite(LangevinState(new.position, potential, grad))
        assert finite.shape == batch
        assert not bool(finite[idx])
        if batch:
            assert bool(finite[1:].all())


def test_potential_and_grad_leaves_parameters_alone():
    w = torch.nn.Parameter(torch.tensor(2.0, dtype=torch.float64))
    x = torch.randn(4, 3, dtype=torch.float64)
    potential, grad = potential_and_grad(lambda y: w * (y * y).sum(-1), x)
    assert w.grad is None and not potential.requires_grad
    torch.testing.assert_close(grad, 2 * w.detach() * x)
