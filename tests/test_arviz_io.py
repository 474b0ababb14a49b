import matplotlib

matplotlib.use("Agg")

import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pyro  # noqa: E402
import pyro.distributions as dist  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from pyro.infer import MCMC  # noqa: E402
from pyro.infer.mcmc import util as mcmc_util  # noqa: E402

from pyro_langevin import MALA, ULA, arviz_io, to_inference_data  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)  # ArviZ 0.2x announces its 1.0 refactor once a day
    import arviz as az  # noqa: E402

PRECISION = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)



def potential(params):  # U(x) = x^T P x / 2; shape [] or [C]
    x = params["x"]
    return 0.5 * ((x @ PRECISION.to(x)) * x).sum(-1)


def model(y):  # float64 throughout, so that checks can be exact
    two = torch.tensor(2.0, dtype=torch.float64)
    mu = pyro.sample("mu", dist.Normal(0.0, two))
    sigma = pyro.sample("sigma", dist.HalfNormal(two))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", dist.Normal(mu, sigma), obs=y)


DATA = torch.tensor([0.3, -0.5, 1.2, 0.8, 0.1, -0.2, 0.9], dtype=torch.float64)


def run(kernel, num_samples=8, warmup_steps=6, initial_params=None, num_chains=1, args=(), seed=0):
    pyro.set_rng_seed(seed)
    mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=warmup_steps, initial_params=initial_params,
                num_chains=num_chains, disable_progbar=True)
    mcmc.run(*args)
    return mcmc


def assert_lp_is_minus_potential(idata, potential_of_x):
    x = torch.as_tensor(idata.posterior["x"].values)
    np.testing.assert_allclose(idata.sample_stats["lp"].values, -potential_of_x(x).numpy(), rtol=1e-12)


# ---------------------------------------------------------------------- layouts
def test_potential_fn_single_chain():
    mcmc = run(MALA(potential_fn=potential), initial_params={"x": torch.zeros(2, dtype=torch.float64)})
    idata = to_inference_data(mcmc)
    assert set(idata.groups()) == {"posterior", "sample_stats"}
    assert idata.posterior["x"].shape == (1, 8, 2)
    np.testing.assert_array_equal(idata.posterior["x"].values, mcmc.get_samples(group_by_chain=True)["x"].numpy())
    assert set(idata.sample_stats.data_vars) == {"lp", "diverging", "step_size", "acceptance_rate"}
    for name in idata.sample_stats.data_vars:
        assert idata.sample_stats[name].shape == (1, 8)
    assert idata.sample_stats["diverging"].dtype == bool
    assert (idata.sample_stats["step_size"].values == mcmc.kernel.step_size).all()
    accept = idata.sample_stats["acceptance_rate"].values
    assert ((accept >= 0) & (accept <= 1)).all()
    assert_lp_is_minus_potential(idata, lambda x: potential({"x": x}))
    assert idata.posterior.attrs["sampler"] == "MALA" and idata.posterior.attrs["vectorized_chains"] == 1


def test_potential_fn_vectorized_chains_on_the_chain_dim():
    C, S = 6, 5  # more chains than draws: a normal vectorized layout, and no warning about it
    init = {"x": torch.randn(C, 2, dtype=torch.float64)}
    mcmc = run(MALA(potential_fn=potential, vectorized_chains=C), num_samples=S, initial_params=init)
    idata = to_inference_data(mcmc)
    raw = mcmc.get_samples(group_by_chain=True)["x"]  # [1, S, C, 2]
    assert raw.shape == (1, S, C, 2)
    assert idata.posterior["x"].shape == (C, S, 2)
    for c in range(C):
        np.testing.assert_array_equal(idata.posterior["x"].values[c], raw[0, :, c].numpy())
    assert idata.sample_stats["lp"].shape == (C, S)
    assert_lp_is_minus_potential(idata, lambda x: potential({"x": x}))
    assert idata.posterior.attrs["vectorized_chains"] == C


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_run():
    init = {"x": torch.randn(3, 2, dtype=torch.float64, device="cuda")}
    mcmc = run(MALA(potential_fn=potential, vectorized_chains=3), initial_params=init)
    idata = to_inference_data(mcmc)
    assert idata.posterior["x"].shape == (3, 8, 2)
    assert_lp_is_minus_potential(idata, lambda x: potential({"x": x}))


def test_ula_reports_the_shadow_acceptance_only_when_tracked():
    init = {"x": torch.zeros(3, 2, dtype=torch.float64)}
    plain = to_inference_data(run(ULA(potential_fn=potential, step_size=0.1, vectorized_chains=3), initial_params=init))
    assert set(plain.sample_stats.data_vars) == {"lp", "diverging", "step_size"}
    tracked = to_inference_data(
        run(ULA(potential_fn=potential, step_size=0.1, vectorized_chains=3, track_accept_prob=True),
            initial_params=init)
    )
    assert tracked.sample_stats["acceptance_rate"].shape == (3, 8)
    assert tracked.posterior.attrs["sampler"] == "ULA"


def test_model_path_vectorized():
    C, S = 4, 6
    mcmc = run(MALA(model=model, vectorized_chains=C), num_samples=S, args=(DATA,))
    idata = to_inference_data(mcmc)
    assert set(idata.groups()) == {"posterior", "sample_stats", "log_likelihood", "observed_data"}
    mu, sigma = idata.posterior["mu"].values, idata.posterior["sigma"].values
    assert mu.shape == sigma.shape == (C, S)
    assert (sigma > 0).all()  # constrained space
    np.testing.assert_array_equal(idata.observed_data["y"].values, DATA.numpy())
    # pointwise log-likelihood at every (chain, draw), computed here directly
    expected = dist.Normal(torch.as_tensor(mu)[..., None], torch.as_tensor(sigma)[..., None]).log_prob(DATA)
    np.testing.assert_allclose(idata.log_likelihood["y"].values, expected.numpy(), rtol=1e-12)
    # lp = -U(unconstrained) of Pyro's own single-chain potential, at each (chain, draw)
    _, potential_fn, transforms, _ = mcmc_util.initialize_model(model, model_args=(DATA,))
    for c in range(C):
        for s in range(S):
            u = {"mu": torch.as_tensor(mu[c, s]), "sigma": transforms["sigma"](torch.as_tensor(sigma[c, s]))}
            assert idata.sample_stats["lp"].values[c, s] == pytest.approx(-potential_fn(u).item(), rel=1e-10)


def test_model_path_matches_from_pyro():
    mcmc = run(MALA(model=model), args=(DATA,))
    ours = to_inference_data(mcmc)
    theirs = az.from_pyro(mcmc)
    for group in ("posterior", "log_likelihood", "observed_data"):
        for name, value in getattr(theirs, group).data_vars.items():
            np.testing.assert_allclose(getattr(ours, group)[name].values, value.values, rtol=1e-12)
            assert getattr(ours, group)[name].dims == value.dims
    np.testing.assert_array_equal(ours.sample_stats["diverging"].values, theirs.sample_stats["diverging"].values)


def test_log_likelihood_with_an_event_dim_latent_site():
    # w ~ N(0, I_3).to_event(1) outside any plate: pyro.infer.Predictive (which arviz.from_pyro uses) pads
    # the draws by the rank of the value, event dim included, and fails; the conversion pads by batch rank.
    X = torch.tensor([[1.0, 0.5, -1.0], [1.0, -0.3, 0.2], [1.0, 1.5, 0.7], [1.0, -1.2, -0.4]], dtype=torch.float64)
    y = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=torch.float64)

    def logistic(X, y):
        w = pyro.sample("w", dist.Normal(torch.zeros_like(X[0]), 1.0).to_event(1))
        with pyro.plate("data", X.shape[0]):
            pyro.sample("y", dist.Bernoulli(logits=(X * w).sum(-1)), obs=y)

    mcmc = run(MALA(model=logistic, vectorized_chains=3), args=(X, y))
    state = torch.get_rng_state()
    idata = to_inference_data(mcmc, log_likelihood=True)
    assert torch.equal(torch.get_rng_state(), state)  # tracing the model leaves the global RNG alone
    w = torch.as_tensor(idata.posterior["w"].values)  # [3, 8, 3]
    expected = dist.Bernoulli(logits=w @ X.T).log_prob(y)  # [3, 8, 4]
    np.testing.assert_allclose(idata.log_likelihood["y"].values, expected.numpy(), rtol=1e-12)


def test_log_likelihood_in_blocks_of_chains(monkeypatch):
    mcmc = run(MALA(model=model, vectorized_chains=5), args=(DATA,))
    whole = to_inference_data(mcmc).log_likelihood["y"].values
    monkeypatch.setattr(arviz_io, "_LOG_LIKELIHOOD_BLOCK", 2 * 8 * len(DATA))  # two chains per block
    np.testing.assert_array_equal(to_inference_data(mcmc).log_likelihood["y"].values, whole)
    assert "log_likelihood" not in to_inference_data(mcmc, log_likelihood=False).groups()


def test_log_likelihood_of_a_model_that_does_not_vectorize():
    def scalar_only_model(y):
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        scale = 1.0 if mu.item() > 0 else 2.0  # .item() breaks the vectorized trace
        with pyro.plate("data", y.shape[0]):
            pyro.sample("y", dist.Normal(mu, scale), obs=y)

    mcmc = run(MALA(model=scalar_only_model), args=(DATA,))
    with pytest.warns(UserWarning, match="could not compute the log_likelihood group"):
        idata = to_inference_data(mcmc)
    assert "log_likelihood" not in idata.groups() and "observed_data" in idata.groups()
    with pytest.raises(RuntimeError):
        to_inference_data(mcmc, log_likelihood=True)


@pytest.fixture
def sequential_chains(monkeypatch):
    # MCMC(num_chains=2) runs in worker processes when CPUs allow; pin the sequential path
    monkeypatch.setattr(pyro.infer.mcmc.api.mp, "cpu_count", lambda: 1)


def test_pyro_num_chains_two(sequential_chains):
    init = {"x": torch.tensor([[1.0, -1.0], [-2.0, 0.5]], dtype=torch.float64)}
    with pytest.warns(UserWarning, match="sequentially"):
        mcmc = run(MALA(potential_fn=potential), initial_params=init, num_chains=2)
    idata = to_inference_data(mcmc)
    assert idata.posterior["x"].shape == (2, 8, 2)
    assert idata.sample_stats["lp"].shape == (2, 8)
    assert_lp_is_minus_potential(idata, lambda x: potential({"x": x}))
    # az.summary means equal Pyro's own summary means
    pyro_means = mcmc_util.summary(mcmc.get_samples(group_by_chain=True))["x"]["mean"].numpy()
    az_means = az.summary(idata, round_to="none")["mean"].values
    np.testing.assert_allclose(az_means, pyro_means, rtol=1e-12)


def test_pyro_chains_times_vectorized_chains(sequential_chains):
    P, C, S = 2, 3, 6
    init = {"x": torch.arange(P * C * 2, dtype=torch.float64).reshape(P, C, 2) / 4}
    with pytest.warns(UserWarning, match="sequentially"):
        mcmc = run(MALA(potential_fn=potential, vectorized_chains=C), num_samples=S, initial_params=init,
                   num_chains=P)
    idata = to_inference_data(mcmc)
    raw = mcmc.get_samples(group_by_chain=True)["x"]
    assert raw.shape == (P, S, C, 2)
    assert idata.posterior["x"].shape == (P * C, S, 2)
    for p in range(P):
        for c in range(C):  # chain index = pyro_chain * C + vectorized_chain
            np.testing.assert_array_equal(idata.posterior["x"].values[p * C + c], raw[p, :, c].numpy())
    assert_lp_is_minus_potential(idata, lambda x: potential({"x": x}))
    assert idata.posterior.attrs["pyro_chains"] == P
    flat_means = raw.reshape(-1, 2).mean(0).numpy()
    np.testing.assert_allclose(az.summary(idata, round_to="none")["mean"].values, flat_means, rtol=1e-12)


def test_other_pyro_kernels_get_diverging_only():
    from pyro.infer import NUTS

    mcmc = run(NUTS(model), num_samples=4, warmup_steps=4, args=(DATA,))
    idata = to_inference_data(mcmc)
    assert set(idata.sample_stats.data_vars) == {"diverging"}
    np.testing.assert_array_equal(idata.sample_stats["diverging"].values,
                                  az.from_pyro(mcmc).sample_stats["diverging"].values)
    assert idata.posterior.attrs["sampler"] == "NUTS" and idata.log_likelihood["y"].shape == (1, 4, 7)


# ---------------------------------------------------------------------- ArviZ on the result
# ArviZ 0.23's plot_trace calls a matplotlib API deprecated in matplotlib 3.11
@pytest.mark.filterwarnings("ignore:Passing a dict or None as alias_mapping:DeprecationWarning")
def test_arviz_diagnostics_and_plots_run(tmp_path):
    import matplotlib.pyplot as plt

    mcmc = run(MALA(model=model, vectorized_chains=4), args=(DATA,))
    idata = to_inference_data(mcmc)
    table = az.summary(idata)
    assert list(table.index) == ["mu", "sigma"]
    assert np.isfinite(table["r_hat"]).all()
    assert az.rhat(idata)["mu"].shape == () and az.ess(idata)["sigma"] > 0
    az.plot_trace(idata)
    az.plot_rank(idata)
    plt.close("all")
    assert list(arviz_io.summary(idata).index) == ["mu", "sigma"]
    arviz_io.save_trace_plot(idata, tmp_path / "trace.png")
    arviz_io.save_rank_plot(idata, tmp_path / "rank.png", var_names=["mu"])
    assert (tmp_path / "trace.png").stat().st_size > 0 and (tmp_path / "rank.png").stat().st_size > 0
    assert not plt.get_fignums()


def test_coords_and_dims_pass_through():
    init = {"x": torch.zeros(3, 2, dtype=torch.float64)}
    mcmc = run(MALA(potential_fn=potential, vectorized_chains=3), initial_params=init)
    idata = to_inference_data(mcmc, coords={"coordinate": ["a", "b"]}, dims={"x": ["coordinate"]})
    assert idata.posterior["x"].dims == ("chain", "draw", "coordinate")
    assert list(idata.posterior["coordinate"].values) == ["a", "b"]
    assert list(az.summary(idata).index) == ["x[a]", "x[b]"]


def test_bad_input():
    with pytest.raises(TypeError, match="expects a pyro.infer.MCMC, got dict"):
        to_inference_data({"x": torch.zeros(3)})
    mcmc = MCMC(MALA(potential_fn=potential), num_samples=4, initial_params={"x": torch.zeros(2)})
    with pytest.raises(ValueError, match="call mcmc.run"):
        to_inference_data(mcmc)
