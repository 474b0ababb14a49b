r"""
Warmup adaptation: Stan's window schedule (deterministic), batched Welford, when the
preconditioner and the step size change (exactly at window ends, never after
warmup), the acceptance rate and preconditioner reached on the 100-D Gaussian, and
the restart of stuck vectorized chains.
"""
import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import MCMC
from pyro.ops.stats import effective_sample_size
from pyro.ops.welford import WelfordCovariance

from pyro_langevin import MALA, ULA
from pyro_langevin.adaptation import BatchWelfordCovariance, LangevinAdapter, adaptation_schedule
from pyro_langevin.kernels import base as base_module

from stats_helpers import gaussian_potential, run_chains, sample_gaussian, z_bound


# ------------------------------------------------------------------ schedule
@pytest.mark.parametrize("num_steps, windows", [
    (10, [(0, 9)]),  # < 20 steps: one window, no mass-matrix adaptation (Stan)
    (100, [(0, 14), (15, 89), (90, 99)]),  # too short for 75/25/50: 15% / 75% / 10%
    (200, [(0, 74), (75, 99), (100, 149), (150, 199)]),
    (1000, [(0, 74), (75, 99), (100, 149), (150, 249), (250, 449), (450, 949), (950, 999)]),
])
def test_adaptation_schedule_is_stans(num_steps, windows):
    assert [(w.start, w.end) for w in adaptation_schedule(num_steps)] == windows


# ------------------------------------------------------------------ Welford
@pytest.mark.parametrize("diagonal", [True, False])
def test_batch_welford_equals_sequential_updates(diagonal):
    x = torch.randn(37, 4, dtype=torch.float64) * torch.tensor([0.1, 1.0, 3.0, 10.0], dtype=torch.float64) + 5.0
    sequential = WelfordCovariance(diagonal=diagonal)
    for row in x:
        sequential.update(row)
    batched = BatchWelfordCovariance(diagonal=diagonal)
    for chunk in (x[:1], x[1:10], x[10:11], x[11:]):  # a single row, then merges into a non-empty state
        batched.update_batch(chunk)
    assert batched.n_samples == 37
    for regularize in (False, True):
        torch.testing.assert_close(batched.get_covariance(regularize), sequential.get_covariance(regularize))


# ------------------------------------------------------------------ when things change
def _record_warmup(kernel, warmup_steps, num_samples, initial):
    """(preconditioner object, step size, dual-averaging step count) after each draw."""
    kernel.initial_params = {"x": initial}
    kernel.setup(warmup_steps)
    params = kernel.initial_params
    record = []
    for _ in range(warmup_steps + num_samples):
        params = kernel.sample(params)
        record.append((kernel.preconditioner, kernel.step_size, kernel.adapter._dual_averaging._t))
    return record


@pytest.mark.parametrize("thinning", [1, 3])
def test_preconditioner_changes_exactly_at_window_ends_and_freezes(thinning, monkeypatch):
    calls = []
    original = base_module.LangevinKernel._find_reasonable_step_size

    def spy(self, state, step_size):
        calls.append(self._t)
        return original(self, state, step_size)

    monkeypatch.setattr(base_module.LangevinKernel, "_find_reasonable_step_size", spy)
    cov = torch.diag(torch.tensor([0.01, 1.0], dtype=torch.float64))
    kernel = MALA(potential_fn=gaussian_potential(cov), adapt_mass_matrix=True, thinning=thinning, vectorized_chains=8)
    warmup = 200
    record = _record_warmup(kernel, warmup, 50, sample_gaussian(cov, (8,)))
    # Langevin step s = draw * thinning + i; mass windows of the 200*thinning-step schedule end at:
    schedule = adaptation_schedule(warmup * thinning)
    mass_ends = [w.end for w in schedule[1:-1]]
    change_draws = sorted({end // thinning for end in mass_ends})
    changed = [d for d in range(1, len(record)) if record[d][0] is not record[d - 1][0]]
    assert record[0][0] is None
    assert changed == change_draws
    # a step-size search at setup and after each new preconditioner, dual averaging restarted there
    assert calls == [0] + change_draws
    if thinning == 1:
        for d in change_draws:
            assert record[d][2] == 0
    # frozen after warmup: same preconditioner object and step size at every draw
    post = record[warmup - 1:]
    assert all(r[0] is post[0][0] for r in post)
    assert len({r[1] for r in post}) == 1


def test_step_size_is_dual_averaging_average_after_warmup():
    cov = torch.eye(3, dtype=torch.float64)
    kernel = MALA(potential_fn=gaussian_potential(cov), vectorized_chains=4)
    record = _record_warmup(kernel, 50, 5, torch.zeros(4, 3, dtype=torch.float64))
    log_avg = kernel.adapter._dual_averaging.get_state()[1]
    assert record[49][1] == pytest.approx(math.exp(log_avg))
    assert record[48][1] != record[49][1]


def test_no_adaptation_keeps_step_size_and_identity():
    kernel = ULA(potential_fn=gaussian_potential(torch.eye(2, dtype=torch.float64)), step_size=0.1)
    record = _record_warmup(kernel, 30, 10, torch.zeros(2, dtype=torch.float64))
    assert {r[1] for r in record} == {0.1}
    assert all(r[0] is None for r in record)


# ------------------------------------------------------------------ the 100-D target
def test_adaptation_on_100d_gaussian():
    r"""MALA on N(0, diag(sd^2)), sd = linspace(0.1, 1, 100), C = 64 chains started
    from exact draws (so every warmup window sees draws from the target).

    - Post-warmup acceptance rate (mean over chains and draws) within 0.05 of 0.574.
    - The adapted diagonal M against the true variances: M_i is a Welford estimate
      from the last mass window (W steps x C chains), so its relative standard error
      is sqrt(2 tau_i / (C W)) (Var[x^2] = 2 sd^4 for a Gaussian), with tau_i the
      integrated autocorrelation time of x_i^2, measured on the post-warmup draws
      (C N / ESS_i). Stan's regularisation adds a relative bias of 5 / (C W + 5),
      negligible here. We allow twice that tau (the last window runs with the previous
      window's M and a moving step size) and a Bonferroni z-bound over 100 dims.
    """
    sds = torch.linspace(0.1, 1.0, 100, dtype=torch.float64)
    cov = torch.diag(sds**2)
    C, warmup, N = 64, 400, 400
    kernel = MALA(potential_fn=gaussian_potential(cov), adapt_mass_matrix=True, vectorized_chains=C)
    x = run_chains(kernel, sample_gaussian(cov, (C,)), warmup, N)
    rate = torch.tensor(kernel.diagnostics()["acceptance rate"]).mean()
    assert abs(float(rate) - 0.574) < 0.05, float(rate)
    window = [w for w in adaptation_schedule(warmup)][-2]
    W = window.end - window.start + 1
    tau = C * N / effective_sample_size(x * x, chain_dim=0, sample_dim=1)
    rel_se = (2 * 2 * tau / (C * W)).sqrt()
    rel_err = kernel.preconditioner.matrix / sds**2 - 1
    z = rel_err / rel_se
    assert float(z.abs().max()) < z_bound(100), (float(z.abs().max()), float(rel_err.abs().max()))
    assert float(rel_err.abs().max()) < 0.2


def test_find_reasonable_step_size_on_100d_brackets_the_target():
    """The doubling/halving search lands where one proposal's acceptance crosses the
    target: the returned h accepts above it and 2h accepts below (chain-averaged over
    256 chains, so the noise of one proposal averages out)."""
    sds = torch.linspace(0.1, 1.0, 100, dtype=torch.float64)
    cov = torch.diag(sds**2)
    kernel = MALA(potential_fn=gaussian_potential(cov), step_size=1e-4, vectorized_chains=256)
    kernel.initial_params = {"x": sample_gaussian(cov, (256,))}
    kernel.setup(0)
    h = kernel._find_reasonable_step_size(kernel._state, 1e-4)

    def accept(step):
        return float(kernel.move(kernel._state, step_size=step, accept=False)[1].accept_prob.mean())

    assert accept(h) > 0.574 > accept(2 * h)


def test_find_reasonable_step_size_from_both_sides():
    sds = torch.linspace(0.1, 1.0, 100, dtype=torch.float64)
    cov = torch.diag(sds**2)
    kernel = MALA(potential_fn=gaussian_potential(cov), vectorized_chains=256)
    kernel.initial_params = {"x": sample_gaussian(cov, (256,))}
    kernel.setup(0)
    from_below = kernel._find_reasonable_step_size(kernel._state, 1e-5)
    from_above = kernel._find_reasonable_step_size(kernel._state, 10.0)
    # MALA's optimal scale on this target: h ~ sd_min^2 * l^2 d^{-1/3}, a few 1e-3..1e-2
    assert 1e-3 < from_below < 0.05 and 1e-3 < from_above < 0.05
    assert 0.25 < from_below / from_above < 4.0


# ------------------------------------------------------------------ stuck chains
def test_adapter_flags_stuck_chains_at_end_of_initial_buffer():
    adapter = LangevinAdapter(adapt_step_size=True)
    adapter.configure(200, 0.1)
    accept = torch.full((8,), 0.6, dtype=torch.float64)
    accept[[2, 5]] = 0.0
    ends = {}
    for t in range(200):
        out = adapter.step(t, torch.zeros(8, 3, dtype=torch.float64), accept)
        if out is not None:
            ends[t] = out
    assert sorted(ends) == [74, 99, 149, 199]
    assert ends[74].stuck_chains.tolist() == [i in (2, 5) for i in range(8)]
    assert all(ends[t].stuck_chains is None for t in (99, 149, 199))
    # no stuck chain: nothing flagged; switched off: nothing flagged
    adapter.configure(200, 0.1)
    assert all(adapter.step(t, torch.zeros(8, 3), torch.full((8,), 0.6)) is None for t in range(74))
    assert adapter.step(74, torch.zeros(8, 3), torch.full((8,), 0.6)).stuck_chains is None
    off = LangevinAdapter(adapt_step_size=True, restart_stuck_chains=False)
    off.configure(200, 0.1)
    for t in range(74):
        off.step(t, torch.zeros(8, 3), accept)
    assert off.step(74, torch.zeros(8, 3), accept).stuck_chains is None


def normal_halfnormal_model(y):
    mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
    sigma = pyro.sample("sigma", dist.HalfNormal(5.0))
    with pyro.plate("data", y.shape[-1]):
        pyro.sample("obs", dist.Normal(mu, sigma), obs=y)


def _stuck_run(restart):
    pyro.set_rng_seed(0)
    y = 3.0 + 2.0 * torch.randn(50, dtype=torch.float64)
    kernel = MALA(normal_halfnormal_model, vectorized_chains=8, restart_stuck_chains=restart)
    mcmc = MCMC(kernel, num_samples=200, warmup_steps=300, disable_progbar=True)
    mcmc.run(y)
    return kernel, torch.tensor(kernel.diagnostics()["acceptance rate"])


def test_stuck_vectorized_chains_are_restarted_in_warmup():
    """Normal model with a HalfNormal scale, init_to_uniform, 8 vectorized chains:
    without the restart some chains start in the tail (sigma ~ e^-2) and never accept
    at the shared step size; with it every chain mixes after warmup."""
    torch.set_default_dtype(torch.float64)
    try:
        off, rate_off = _stuck_run(False)
        on, rate_on = _stuck_run(True)
    finally:
        torch.set_default_dtype(torch.float32)
    assert float(rate_off.min()) < 0.05, rate_off  # the problem is real at this seed
    assert "restarted_chains" not in off.diagnostics()
    assert float(rate_on.min()) > 0.3, rate_on
    assert len(on.diagnostics()["restarted_chains"]) >= 1


def test_run_without_warmup_continues_as_adapted():
    """setup(0) after an adapted run keeps the adapted step size and preconditioner;
    a new warmup starts again from the identity."""
    cov = torch.diag(torch.tensor([0.01, 1.0], dtype=torch.float64))
    kernel = MALA(potential_fn=gaussian_potential(cov), adapt_mass_matrix=True, vectorized_chains=8)
    _record_warmup(kernel, 200, 0, sample_gaussian(cov, (8,)))
    adapted, h = kernel.preconditioner, kernel.step_size
    record = _record_warmup(kernel, 0, 20, sample_gaussian(cov, (8,)))
    assert all(r[0] is adapted and r[1] == h for r in record)
    kernel.initial_params = {"x": sample_gaussian(cov, (8,))}
    kernel.setup(200)
    assert kernel.preconditioner is None
