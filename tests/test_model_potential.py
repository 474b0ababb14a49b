"""
Per-chain potentials of a Pyro model (vectorized chains) against Pyro's own one-chain
potential from ``initialize_model``, chain by chain, and the per-chain initialisation.
"""
import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer.autoguide.initialization import init_to_uniform, init_to_value
from pyro.infer.mcmc.util import initialize_model

from pyro_langevin.model_potential import VectorizedModel, vectorized_model_potential

G, N = 4, 12


def plated_model(y, group):
    """Global constrained sites (HalfNormal, a Dirichlet, a to_event(1) positive vector),
    sites inside a plate (one constrained), a site in two nested plates, and
    observations inside a plate."""
    sigma = pyro.sample("sigma", dist.HalfNormal(1.0))
    weights = pyro.sample("weights", dist.Dirichlet(torch.ones(3)))
    scales = pyro.sample("scales", dist.LogNormal(torch.zeros(2), 1.0).to_event(1))
    with pyro.plate("groups", G):
        theta = pyro.sample("theta", dist.Normal(0.0, sigma))
        kappa = pyro.sample("kappa", dist.Gamma(2.0, 2.0))
    with pyro.plate("rows", 2, dim=-2), pyro.plate("cols", 3, dim=-1):
        pyro.sample("z", dist.Normal(0.0, 1.0))
    with pyro.plate("data", N):
        # event dims indexed away ([..., 0]), so the chain dim broadcasts (vectorizable)
        loc = theta[..., group] * weights[..., 0] + scales[..., 1]
        scale = sigma * scales[..., 0] / kappa[..., group].sqrt()
        pyro.sample("obs", dist.Normal(loc, scale), obs=y)


def unplated_model(y):
    """A vector observation without a plate: its batch dim is not a plate dim."""
    mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
    tau = pyro.sample("tau", dist.Gamma(3.0, 1.0))
    pyro.sample("obs", dist.Normal(mu, tau.rsqrt()), obs=y)


def data():
    return torch.randn(N), torch.arange(N) % G


def pyro_potential_and_params(model, args, C):
    init, potential_fn, transforms, trace = initialize_model(model, model_args=args, num_chains=C)
    return init, potential_fn, transforms, trace


@pytest.mark.parametrize("model, args", [(plated_model, data()), (unplated_model, (torch.randn(N),))])
def test_vectorized_potential_equals_pyro_chain_by_chain(model, args):
    C = 5
    init, potential_fn, transforms, trace = pyro_potential_and_params(model, args, C)
    assert all(v.shape[0] == C for v in init.values())
    vectorized = vectorized_model_potential(model, args, {}, transforms, C, trace)
    params = {k: v.detach().requires_grad_(True) for k, v in init.items()}
    potential = vectorized(params)
    assert potential.shape == (C,)
    grads = torch.autograd.grad(potential.sum(), list(params.values()))
    for c in range(C):
        one = {k: v[c].detach().requires_grad_(True) for k, v in init.items()}
        expected = potential_fn(one)
        torch.testing.assert_close(potential[c], expected.detach())
        expected_grads = torch.autograd.grad(expected, list(one.values()))
        for g, e in zip(grads, expected_grads):
            torch.testing.assert_close(g[c], e)


def test_site_shapes_and_chain_dim():
    args = data()
    _, _, transforms, trace = pyro_potential_and_params(plated_model, args, 1)
    vm = VectorizedModel(plated_model, args, {}, transforms, 3, trace)
    assert vm.chain_dim == 3  # two nested plates -> chain plate at dim -3
    assert vm.site_shapes == {
        "sigma": torch.Size([]), "weights": torch.Size([2]), "scales": torch.Size([2]),
        "theta": torch.Size([G]), "kappa": torch.Size([G]), "z": torch.Size([2, 3]),
    }
    _, _, transforms, trace = pyro_potential_and_params(unplated_model, (torch.randn(N),), 1)
    assert VectorizedModel(unplated_model, (torch.randn(N),), {}, transforms, 3, trace).chain_dim == 2


def test_initial_params_differ_per_chain_and_are_valid():
    args = data()
    _, potential_fn, transforms, trace = pyro_potential_and_params(plated_model, args, 1)
    C = 6
    vm = VectorizedModel(plated_model, args, {}, transforms, C, trace)
    params = vm.initial_params(init_to_uniform)
    assert {k: tuple(v.shape) for k, v in params.items()} == {k: (C,) + tuple(s) for k, s in vm.site_shapes.items()}
    for name, v in params.items():
        flat = v.reshape(C, -1)
        assert torch.cdist(flat, flat).add(torch.eye(C)).min() > 0  # no two chains start alike
        if name != "weights":  # init_to_uniform draws the simplex through softmax, not stick-breaking
            assert float(flat.abs().max()) <= 2.0  # init_to_uniform: unconstrained values in (-2, 2)
    potential = vm.potential(params)
    assert bool(torch.isfinite(potential).all())
    torch.testing.assert_close(potential[2], potential_fn({k: v[2] for k, v in params.items()}))


def test_initial_params_from_values_are_shared():
    args = (torch.randn(N),)
    _, _, transforms, trace = pyro_potential_and_params(unplated_model, args, 1)
    vm = VectorizedModel(unplated_model, args, {}, transforms, 4, trace)
    params = vm.initial_params(init_to_value(values={"mu": torch.tensor(0.5), "tau": torch.tensor(2.0)}))
    torch.testing.assert_close(params["mu"], torch.full((4,), 0.5))
    torch.testing.assert_close(params["tau"], torch.full((4,), math.log(2.0)))


def cut_model():
    x = pyro.sample("x", dist.Normal(0.0, 1.0))
    pyro.factor("cut", torch.where(x > 1.0, torch.full_like(x, -math.inf), torch.zeros_like(x)))


def test_initial_params_redraw_invalid_chains():
    _, _, transforms, trace = initialize_model(cut_model, init_strategy=init_to_value(values={"x": torch.tensor(0.0)}))
    vm = VectorizedModel(cut_model, (), {}, transforms, 64, trace)
    params = vm.initial_params(init_to_uniform)
    assert bool((params["x"] <= 1.0).all())
    assert len(set(params["x"].tolist())) == 64


def test_initial_params_give_up_with_a_clear_error():
    def impossible():
        x = pyro.sample("x", dist.Normal(0.0, 1.0))
        pyro.factor("never", torch.full_like(x, -math.inf))

    trace = pyro.poutine.trace(impossible).get_trace()
    vm = VectorizedModel(impossible, (), {}, {"x": dist.transforms.identity_transform}, 3, trace)
    with pytest.raises(ValueError, match=r"cannot find valid initial params for chains \[0, 1, 2\]"):
        vm.initial_params(init_to_uniform, max_tries=3)


def test_discrete_latent_site_is_refused():
    def discrete():
        k = pyro.sample("k", dist.Categorical(torch.ones(3) / 3))
        pyro.sample("x", dist.Normal(k.float(), 1.0), obs=torch.tensor(0.0))

    trace = pyro.poutine.trace(discrete).get_trace()
    with pytest.raises(NotImplementedError, match="discrete latent site 'k'"):
        VectorizedModel(discrete, (), {}, {}, 2, trace)


def test_non_vectorizable_model_gets_a_clear_error():
    """Broadcasting an event dim against a plate dim puts a second chain dim in the
    log-density; that is refused, not silently summed."""
    def model(y):
        w = pyro.sample("w", dist.Dirichlet(torch.ones(3)))
        with pyro.plate("data", N):
            pyro.sample("obs", dist.Normal(w[..., :1], 1.0), obs=y)

    args = (torch.randn(N),)
    init, _, transforms, trace = initialize_model(model, model_args=args, num_chains=3)
    potential = vectorized_model_potential(model, args, {}, transforms, 3, trace)
    with pytest.raises(ValueError, match="site 'obs' has a log-density of shape"):
        potential(init)
