"""jit_compile=True: the compiled chain is the eager chain, compiles once, and falls
back to eager with one warning where Dynamo cannot trace the potential."""
import warnings

import pytest
import torch
import torch._dynamo.utils
from pyro.infer import MCMC

import pyro
from pyro_langevin import MALA, ULA

SD = torch.linspace(0.1, 1.0, 20, dtype=torch.float64)


def gaussian(params):
    return 0.5 * ((params["x"] / SD) ** 2).sum(-1)


def run(kernel, x0, num_samples=20, warmup_steps=10, seed=3):
    pyro.set_rng_seed(seed)
    mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=warmup_steps, initial_params={"x": x0},
                disable_progbar=True)
    mcmc.run()
    return mcmc.get_samples()["x"]


def unique_graphs():
    return torch._dynamo.utils.counters["stats"]["unique_graphs"]


@pytest.mark.parametrize(
    "kernel_class, chains",
    [(ULA, None), pytest.param(ULA, 8, marks=pytest.mark.slow), pytest.param(MALA, None, marks=pytest.mark.slow),
     (MALA, 8)],
)
def test_compiled_chain_equals_eager_and_compiles_once(kernel_class, chains):
    x0 = torch.full((20,) if chains is None else (chains, 20), 0.3, dtype=torch.float64)
    kwargs = dict(potential_fn=gaussian, step_size=0.005, thinning=5, vectorized_chains=chains)
    eager = run(kernel_class(**kwargs), x0)
    kernel = kernel_class(jit_compile=True, **kwargs)
    before = unique_graphs()
    compiled = run(kernel, x0)
    assert unique_graphs() - before == 1
    # same seed, same draws: the only difference allowed is floating-point reassociation
    torch.testing.assert_close(compiled, eager, rtol=1e-10, atol=1e-10)
    again = run(kernel, x0, seed=4)  # a second run with new numbers and a new step size
    assert unique_graphs() - before == 1, "a second run must not recompile"
    assert torch.isfinite(again).all()
    if kernel_class is MALA:
        assert kernel.diagnostics()["acceptance rate"] is not None


def test_compiled_counts_divergences_without_nan():
    def potential(params):  # NaN right of x = 1: those steps are refused
        x = params["x"]
        return torch.where(x > 1.0, torch.full_like(x, float("nan")), 0.5 * x * x).sum(-1)

    kernel = ULA(potential_fn=potential, step_size=0.5, thinning=4, jit_compile=True)
    samples = run(kernel, torch.zeros(1, dtype=torch.float64), num_samples=30)
    assert torch.isfinite(samples).all() and (samples <= 1.0).all()
    assert kernel.diagnostics()["divergences"], "divergent steps must be counted"


def test_untraceable_potential_falls_back_to_eager_with_one_warning():
    def potential(params):  # .tolist() cannot be traced into a graph
        x = params["x"]
        scale = torch.tensor(SD.tolist(), dtype=x.dtype)
        return 0.5 * ((x / scale) ** 2).sum(-1)

    x0 = torch.zeros(20, dtype=torch.float64)
    eager = run(ULA(potential_fn=potential, step_size=0.005, thinning=3), x0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = run(ULA(potential_fn=potential, step_size=0.005, thinning=3, jit_compile=True), x0)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "running eagerly" in messages[0], messages
    torch.testing.assert_close(compiled, eager, rtol=0, atol=0)
