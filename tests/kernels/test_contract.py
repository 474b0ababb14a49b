"""
The kernel contract, the same module for ULA and MALA: Pyro's ``MCMC`` API around
them (summary, diagnostics, ArviZ, several chains, pickling), the parts of the
``MCMCKernel`` contract Pyro leaves unwritten (setup/cleanup twice, initial_params,
fresh detached samples, dtype), the divergence path, and every argument check.
"""
import math
import pickle

import arviz
import pyro.infer.mcmc.api as mcmc_api
import pytest
import torch
from pyro.infer import MCMC

from pyro_langevin import MALA, ULA
from pyro_langevin.langevin import init_state

KERNELS = {"ULA": ULA, "MALA": MALA}


def standard_normal(params):
    """Module level, so that kernels built on it pickle."""
    return 0.5 * (params["x"] ** 2).sum(-1)


def two_sites(params):
    return 0.5 * (params["a"] ** 2).sum(-1) + 0.5 * (params["b"] ** 2).sum((-2, -1))


def nan_above_one(params):
    """A standard normal whose potential is NaN where x > 1."""
    x = params["x"]
    u = 0.5 * (x**2).sum(-1)
    return torch.where(x.max(-1).values > 1.0, torch.full_like(u, math.nan), u)


def make(name, **kwargs):
    kwargs.setdefault("potential_fn", standard_normal)
    kwargs.setdefault("step_size", 0.1)
    return KERNELS[name](**kwargs)


def run(kernel, initial_params, num_samples=50, warmup_steps=20, **kwargs):
    mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=warmup_steps, initial_params=initial_params,
                disable_progbar=True, **kwargs)
    mcmc.run()
    return mcmc


@pytest.fixture(params=list(KERNELS))
def name(request):
    return request.param


# ------------------------------------------------------------------ MCMC API
def test_summary_diagnostics_arviz(name, capsys):
    kernel = make(name)
    mcmc = run(kernel, {"x": torch.zeros(3)})
    mcmc.summary()
    out = capsys.readouterr().out
    assert "x[0]" in out and "n_eff" in out and "Number of divergences: 0" in out
    diag = mcmc.diagnostics()
    assert diag["divergences"] == {"chain 0": []}
    assert diag["step_size"]["chain 0"] == kernel.step_size
    stats = diag["sample_stats"]["chain 0"]
    assert set(stats) >= {"lp", "diverging", "step_size"} and stats["lp"].shape == (50,)
    if name == "MALA":
        assert stats["accept_prob"].shape == (50,)
        assert 0.0 < diag["acceptance rate"]["chain 0"] <= 1.0
    idata = arviz.from_pyro(mcmc)
    assert idata.posterior["x"].shape == (1, 50, 3)
    assert idata.sample_stats["diverging"].shape == (1, 50)


def test_num_chains_sequential_each_from_its_own_start(name, monkeypatch):
    """MCMC(num_chains=2) on a machine where it runs the chains one after the other
    (Pyro reserves one CPU, so 2 CPUs mean sequential); each chain starts from its own
    initial params (a tiny step size keeps each chain near its start)."""
    monkeypatch.setattr(mcmc_api.mp, "cpu_count", lambda: 2)
    kernel = make(name, step_size=1e-4, adapt_step_size=False) if name == "MALA" else make(name, step_size=1e-4)
    starts = torch.tensor([[5.0, 5.0], [-5.0, -5.0]])
    with pytest.warns(UserWarning, match="Chains will be drawn sequentially"):
        mcmc = MCMC(kernel, num_samples=20, warmup_steps=5, num_chains=2, initial_params={"x": starts},
                    disable_progbar=True)
    mcmc.run()
    x = mcmc.get_samples(group_by_chain=True)["x"]
    assert x.shape == (2, 20, 2)
    torch.testing.assert_close(x.mean(1), starts, atol=0.2, rtol=0)
    assert set(mcmc.diagnostics()["divergences"]) == {"chain 0", "chain 1"}


def test_worker_processes_with_per_chain_initial_params_are_refused(name, monkeypatch):
    """Pyro's multiprocess sampler hands every worker the last chain's initial_params;
    a kernel that sees this in a worker process says so and points to vectorized_chains."""
    import pyro_langevin.kernels.base as base

    kernel = make(name)
    kernel.initial_params = {"x": torch.zeros(2)}
    kernel.initial_params = {"x": torch.ones(2)}  # as _MultiSampler does, once per chain
    monkeypatch.setattr(base.multiprocessing, "parent_process", lambda: object())
    with pytest.raises(RuntimeError, match="vectorized_chains"):
        kernel.setup(0)


def test_pickle_before_and_after_a_run(name):
    kernel = make(name)
    clone = pickle.loads(pickle.dumps(kernel))
    run(clone, {"x": torch.zeros(2)})
    after = pickle.loads(pickle.dumps(clone))
    assert after.step_size == clone.step_size
    run(after, {"x": torch.zeros(2)})


def test_setup_and_cleanup_twice(name):
    kernel = make(name)
    kernel.initial_params = {"x": torch.zeros(2)}
    kernel.setup(10)
    kernel.setup(10)
    params = kernel.initial_params
    for _ in range(15):
        params = kernel.sample(params)
    kernel.cleanup()
    kernel.cleanup()
    kernel.setup(5)  # usable again
    kernel.sample(kernel.initial_params)
    assert kernel.logging()["step size"]


def test_initial_params_getter_setter(name):
    kernel = make(name)
    assert kernel.initial_params is None
    init = {"x": torch.ones(2)}
    kernel.initial_params = init
    assert kernel.initial_params is init
    with pytest.raises(TypeError, match="initial_params must be a dict of tensors, got list"):
        kernel.initial_params = [torch.ones(2)]


def test_returned_samples_are_fresh_and_detached(name):
    kernel = make(name, vectorized_chains=4)
    kernel.initial_params = {"x": torch.randn(4, 3)}
    kernel.setup(0)
    params = kernel.initial_params
    draws = []
    for _ in range(5):
        params = kernel.sample(params)
        draws.append(params)
    for a, b in zip(draws, draws[1:]):
        assert not a["x"].requires_grad
        assert a["x"].untyped_storage().data_ptr() != b["x"].untyped_storage().data_ptr()
    # mutating an old draw changes nothing the chain uses
    saved = draws[-1]["x"].clone()
    draws[0]["x"].add_(100.0)
    torch.testing.assert_close(kernel._state.position, saved)
    # mutating the latest draw in place moves the chain there, with potential and gradient recomputed
    params["x"].zero_()
    new = kernel.sample(params)
    assert float(new["x"].abs().max()) < 5.0
    state = kernel._state
    expected = init_state(lambda x: standard_normal({"x": x}), state.position)
    torch.testing.assert_close(state.potential, expected.potential)
    torch.testing.assert_close(state.grad, expected.grad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_follows_initial_params(name, dtype):
    kernel = make(name, vectorized_chains=3)
    mcmc = run(kernel, {"x": torch.zeros(3, 2, dtype=dtype)}, num_samples=10, warmup_steps=10)
    assert mcmc.get_samples()["x"].dtype == dtype
    assert kernel.diagnostics()["sample_stats"]["lp"].dtype == dtype


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda(name):
    kernel = make(name, vectorized_chains=8)
    mcmc = run(kernel, {"x": torch.zeros(8, 2, device="cuda")}, num_samples=10, warmup_steps=10)
    assert mcmc.get_samples()["x"].device.type == "cuda"


def test_multiple_sites_round_trip(name):
    kernel = make(name, potential_fn=two_sites, vectorized_chains=2)
    init = {"a": torch.randn(2, 3), "b": torch.randn(2, 2, 2)}
    mcmc = run(kernel, init, num_samples=5, warmup_steps=5)
    samples = mcmc.get_samples()
    assert samples["a"].shape == (5, 2, 3) and samples["b"].shape == (5, 2, 2, 2)


# ------------------------------------------------------------------ divergences
def test_divergent_steps_are_not_taken_and_counted(name):
    kwargs = {"adapt_step_size": False} if name == "MALA" else {}
    kernel = make(name, potential_fn=nan_above_one, step_size=0.5, **kwargs)
    mcmc = run(kernel, {"x": torch.zeros(1)}, num_samples=400, warmup_steps=50)
    x = mcmc.get_samples()["x"]
    assert bool(torch.isfinite(x).all()) and float(x.max()) <= 1.0
    divergences = mcmc.diagnostics()["divergences"]["chain 0"]
    assert len(divergences) > 10 and all(isinstance(d, int) and 0 <= d < 400 for d in divergences)
    assert divergences == sorted(divergences)
    diverging = kernel.diagnostics()["sample_stats"]["diverging"]
    assert diverging.nonzero().flatten().tolist() == divergences


def test_vectorized_divergences_are_per_chain(name):
    kwargs = {"adapt_step_size": False} if name == "MALA" else {}
    kernel = make(name, potential_fn=nan_above_one, step_size=0.5, vectorized_chains=16, **kwargs)
    run(kernel, {"x": torch.zeros(16, 1)}, num_samples=200, warmup_steps=0)
    stats = kernel.diagnostics()["sample_stats"]
    assert stats["diverging"].shape == (200, 16)
    # 16 chains, each diverging now and then: never 100 in a row for one chain, so no error,
    # although some chain diverges at most draws
    assert float(stats["diverging"].any(1).float().mean()) > 0.5


def stuck_at_the_edge(params):
    """Finite only for x <= 0, with a drift pushing the chain across: every step diverges."""
    x = params["x"]
    return torch.where(x.max(-1).values > 0, torch.full_like(x[..., 0], math.nan), -10.0 * x.sum(-1))


def test_many_divergences_in_a_row_raise(name):
    kwargs = {"adapt_step_size": False} if name == "MALA" else {}
    kernel = make(name, potential_fn=stuck_at_the_edge, step_size=0.25, max_consecutive_divergences=30, **kwargs)
    with pytest.raises(RuntimeError, match=r"30 divergent Langevin steps in a row at step_size=0\.25.*smaller step_size"):
        run(kernel, {"x": torch.zeros(1)}, num_samples=100, warmup_steps=0)


# ------------------------------------------------------------------ arguments
@pytest.mark.parametrize("kwargs, error, match", [
    ({"step_size": 0.0}, ValueError, r"step_size must be positive and finite, got 0\.0"),
    ({"step_size": -1.0}, ValueError, r"step_size must be positive and finite, got -1\.0"),
    ({"step_size": math.inf}, ValueError, r"step_size must be positive and finite, got inf"),
    ({"step_size": math.nan}, ValueError, r"step_size must be positive and finite, got nan"),
    ({"step_size": "0.1"}, TypeError, r"step_size must be a positive number, got '0\.1' of type str"),
    ({"step_size": True}, TypeError, r"step_size must be a positive number, got True"),
    ({"temperature": 0}, ValueError, r"temperature must be positive and finite, got 0"),
    ({"temperature": -2.0}, ValueError, r"temperature must be positive and finite, got -2\.0"),
    ({"temperature": math.inf}, ValueError, r"temperature must be positive and finite, got inf"),
    ({"temperature": None, "noise_scale": -1.0}, ValueError, r"noise_scale must be positive and finite"),
    ({"temperature": 1.0, "noise_scale": 0.1}, ValueError, r"give either temperature or noise_scale"),
    ({"target_accept_prob": 0.0}, ValueError, r"target_accept_prob must be in \(0, 1\), got 0\.0"),
    ({"target_accept_prob": 1.0}, ValueError, r"target_accept_prob must be in \(0, 1\), got 1\.0"),
    ({"target_accept_prob": 1.5}, ValueError, r"target_accept_prob must be in \(0, 1\), got 1\.5"),
    ({"target_accept_prob": math.nan}, ValueError, r"target_accept_prob must be in \(0, 1\), got nan"),
    ({"model": lambda: None}, ValueError, r"Only one of model or potential_fn must be specified, got both"),
    ({"potential_fn": 3}, TypeError, r"potential_fn must be callable, got 3"),
    ({"full_mass": True}, ValueError, r"full_mass=True needs adapt_mass_matrix=True"),
    ({"vectorized_chains": 0}, ValueError, r"vectorized_chains must be >= 1, got 0"),
    ({"vectorized_chains": 2.0}, TypeError, r"vectorized_chains must be an integer, got 2\.0"),
    ({"thinning": 0}, ValueError, r"thinning must be >= 1, got 0"),
    ({"grad_clip": -1.0}, ValueError, r"grad_clip must be positive and finite, got -1\.0"),
    ({"max_consecutive_divergences": 0}, ValueError, r"max_consecutive_divergences must be >= 1, got 0"),
    ({"init_strategy": "uniform"}, TypeError, r"init_strategy must be callable, got 'uniform'"),
])
def test_bad_arguments(name, kwargs, error, match):
    with pytest.raises(error, match=match):
        make(name, **kwargs)


def test_integer_step_size_is_accepted(name):
    assert make(name, step_size=1).step_size == 1.0


@pytest.mark.parametrize("clamp, match", [((1.0, -1.0), "low < high"), ((0.0,), "low < high")])
def test_bad_clamp(clamp, match):
    with pytest.raises(ValueError, match=match):
        ULA(potential_fn=standard_normal, clamp=clamp)


def test_mala_refuses_clamp():
    with pytest.raises(ValueError, match=r"MALA cannot clamp its proposals \(clamp=\(-1\.0, 1\.0\)\)"):
        MALA(potential_fn=standard_normal, clamp=(-1.0, 1.0))


def test_ula_refuses_clamp_with_acceptance_tracking():
    with pytest.raises(ValueError, match="ULA cannot compute the acceptance probability of clamped proposals"):
        ULA(potential_fn=standard_normal, clamp=(-1.0, 1.0), adapt_step_size=True)


def test_mcmc_with_neither_model_nor_potential_fn(name):
    kernel = KERNELS[name](step_size=0.1)  # a valid move configuration
    mcmc = MCMC(kernel, num_samples=5, warmup_steps=0, disable_progbar=True)
    with pytest.raises(ValueError, match=f"{name} was built with neither model nor potential_fn"):
        mcmc.run()


def test_potential_fn_without_initial_params(name):
    mcmc = MCMC(make(name), num_samples=5, warmup_steps=0, disable_progbar=True)
    with pytest.raises(ValueError, match=r"potential_fn=\.\.\.\) needs initial_params"):
        mcmc.run()


def test_non_finite_initial_potential_is_refused(name):
    kernel = make(name, potential_fn=nan_above_one)
    kernel.initial_params = {"x": torch.full((1,), 2.0)}
    with pytest.raises(ValueError, match="not finite at the initial params"):
        kernel.setup(0)


# ------------------------------------------------------------------ noise_scale, thinning
def test_noise_scale_is_a_temperature(name):
    h, sigma = 0.05, 0.02
    kwargs = {"adapt_step_size": False} if name == "MALA" else {}
    kernel = make(name, step_size=h, temperature=None, noise_scale=sigma, **kwargs)
    assert kernel.temperature == pytest.approx(sigma**2 / (2 * h))
    if name == "MALA":
        return
    kernel.initial_params = {"x": torch.randn(2, dtype=torch.float64)}
    kernel.setup(0)
    state = kernel._state
    torch.manual_seed(7)
    new, _ = kernel.move(state)
    torch.manual_seed(7)
    z = torch.randn_like(state.position)
    torch.testing.assert_close(new.position, state.position - h * state.position + sigma * z)


@pytest.mark.parametrize("thinning", [1, 4])
def test_thinning_takes_k_steps_per_sample(name, thinning):
    calls = []

    def counting(params):
        calls.append(1)
        return standard_normal(params)

    kwargs = {"adapt_step_size": False} if name == "MALA" else {}
    kernel = make(name, potential_fn=counting, thinning=thinning, **kwargs)
    run(kernel, {"x": torch.zeros(2)}, num_samples=7, warmup_steps=3)
    assert len(calls) == 1 + (3 + 7) * thinning  # one at setup, one gradient per Langevin step
    assert kernel.diagnostics()["sample_stats"]["lp"].shape == (7,)
