import math

import pyro
import pytest
import torch
from pyro.infer import MCMC

from pyro_langevin import ULA
from pyro_langevin.diagnostics import kernel_stein_discrepancy, score_from_potential



COV = torch.tensor([[1.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
PRECISION = torch.linalg.inv(COV)


def gaussian_score(x):  # b(x) = -Sigma^{-1} x for N(0, Sigma)
    return -x @ PRECISION


def ula_covariance(h):  # ULA's exact stationary covariance on U(x) = x^T Sigma^{-1} x / 2
    return COV @ torch.linalg.inv(torch.eye(2, dtype=torch.float64) - h / 2 * PRECISION)


def gaussian_draws(cov, n, generator):
    return torch.randn(n, cov.shape[0], generator=generator, dtype=torch.float64) @ torch.linalg.cholesky(cov).T


def stein_kernel_by_autograd(x, y, score_fn, beta, c):
    """k0(x, y) with every derivative of k(x, y) = (c^2 + |x - y|^2)^beta taken by autograd."""
    x = x.clone().requires_grad_(True)
    y = y.clone().requires_grad_(True)
    k = (c**2 + ((x - y) ** 2).sum()) ** beta
    grad_x, grad_y = torch.autograd.grad(k, (x, y), create_graph=True)
    trace = sum(torch.autograd.grad(grad_y[i], x, retain_graph=True)[0][i] for i in range(x.numel()))
    bx, by = score_fn(x.detach()[None])[0], score_fn(y.detach()[None])[0]
    return trace + bx @ grad_y + by @ grad_x + k * (bx @ by)


# ---------------------------------------------------------------------- exact values
def test_tiny_case_computed_by_hand():
    # x = (0, 1), d = 1, target N(0, 1): b(x) = -x; beta = -1/2, c = 1.
    # k0(x, y) = -4 beta (beta - 1) r^2 s^(beta-2) - 2 beta d s^(beta-1) + 2 beta s^(beta-1) (b(y) - b(x)) r
    #            + s^beta b(x) b(y),   r = x - y, s = 1 + r^2.
    # k0(0, 0) = (r = 0, s = 1): 0 + 1 + 0 + 0 * 0          = 1
    # k0(1, 1) = (r = 0, s = 1): 0 + 1 + 0 + (-1) * (-1)    = 2
    # k0(0, 1) = (r = -1, s = 2): -3 * 2^-2.5 + 2^-1.5 - 2^-1.5 * ((-1) - 0) * (-1) + 0 = -3 / (4 sqrt 2)
    # KSD^2 = (1 + 2 + 2 * k0(0, 1)) / 2^2
    expected = math.sqrt((3.0 - 3.0 / (2.0 * math.sqrt(2.0))) / 4.0)
    x = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    assert kernel_stein_discrepancy(x, lambda x: -x).item() == pytest.approx(expected, rel=1e-14)
    assert expected == pytest.approx(0.6963009, abs=1e-7)


@pytest.mark.parametrize("beta,c", [(-0.5, 1.0), (-0.25, 0.7), (-0.9, 2.0)])
def test_closed_form_matches_autograd(beta, c):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64)

    def score(x):  # any vector field: the formula does not assume a Gaussian
        return -(x**3) + torch.sin(x.flip(-1))

    total = sum(stein_kernel_by_autograd(x[i], x[j], score, beta, c) for i in range(5) for j in range(5))
    expected = math.sqrt(total.item() / 25)
    assert kernel_stein_discrepancy(x, score, beta=beta, c=c).item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("chunk_size", [1, 5, 16, 36, 37, 1000])
def test_chunked_equals_unchunked(chunk_size):
    g = torch.Generator().manual_seed(1)
    x = gaussian_draws(COV, 37, g) + 0.3
    whole = kernel_stein_discrepancy(x, gaussian_score, chunk_size=37)
    assert kernel_stein_discrepancy(x, gaussian_score, chunk_size=chunk_size).item() == pytest.approx(
        whole.item(), rel=1e-12
    )


def test_event_shape_is_flattened():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(20, 2, 3, generator=g, dtype=torch.float64)
    nested = kernel_stein_discrepancy(x, lambda x: -x)
    flat = kernel_stein_discrepancy(x.reshape(20, 6), lambda x: -x)
    assert nested.item() == pytest.approx(flat.item(), rel=1e-12)
    one_d = kernel_stein_discrepancy(x[:, 0, 0], lambda x: -x)
    assert one_d.item() == pytest.approx(kernel_stein_discrepancy(x[:, :1, 0], lambda x: -x).item(), rel=1e-12)


def test_float32_agrees_with_float64_and_keeps_dtype():
    g = torch.Generator().manual_seed(3)
    x = gaussian_draws(COV, 300, g) * 3.0 + 10.0  # off-centre: ||x_i - x_j||^2 by the Gram trick needs centring
    value64 = kernel_stein_discrepancy(x, gaussian_score)
    value32 = kernel_stein_discrepancy(x.float(), lambda x: -x @ PRECISION.float())
    assert value32.dtype == torch.float32 and value64.dtype == torch.float64
    assert value32.item() == pytest.approx(value64.item(), rel=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    g = torch.Generator().manual_seed(4)
    x = gaussian_draws(COV, 500, g)
    cpu = kernel_stein_discrepancy(x, gaussian_score, chunk_size=128)
    precision = PRECISION.cuda()
    gpu = kernel_stein_discrepancy(x.cuda(), lambda x: -x @ precision, chunk_size=128)
    assert gpu.device.type == "cuda"
    assert gpu.item() == pytest.approx(cpu.item(), rel=1e-10)


def test_score_from_potential():
    def potential(x):  # [m, 2] -> [m]
        return 0.5 * ((x @ PRECISION) * x).sum(-1)

    g = torch.Generator().manual_seed(5)
    x = gaussian_draws(COV, 50, g)
    score = score_from_potential(potential)
    torch.testing.assert_close(score(x), gaussian_score(x))
    assert not score(x).requires_grad
    assert kernel_stein_discrepancy(x, score).item() == pytest.approx(
        kernel_stein_discrepancy(x, gaussian_score).item(), rel=1e-12
    )


# ---------------------------------------------------------------------- statistical behaviour
def test_exact_samples_shrink_like_inverse_sqrt_n():
    # For i.i.d. draws from P the off-diagonal k0 terms have mean zero, so
    # E[KSD^2] = E_P[k0(x, x)] / n = (-2 beta d + E|x|^2) / n = 2 d / n for N(0, I), beta = -1/2, c = 1.
    d, repeats = 2, 16
    g = torch.Generator().manual_seed(6)
    means = []
    for n in (100, 400, 1600):
        scaled = torch.tensor(
            [
                kernel_stein_discrepancy(torch.randn(n, d, generator=g, dtype=torch.float64), lambda x: -x).item() ** 2
                * n / (2 * d)
                for _ in range(repeats)
            ]
        )
        se = scaled.std() / math.sqrt(repeats)
        assert abs(scaled.mean() - 1.0) < 4 * se, (n, scaled.mean(), se)
        means.append(math.sqrt(scaled.mean().item() * 2 * d / n))  # root-mean-square KSD
    slope = math.log(means[-1] / means[0]) / math.log(16)
    assert -0.6 < slope < -0.4, means


def test_ranks_exact_ula_laws_by_step_size():
    # Draw ULA's exact stationary law N(0, Sigma (I - h Sigma^-1 / 2)^-1) directly: the KSD against the
    # target N(0, Sigma) grows with h. Measured spread over 20 seeds at n = 4000: sd ~ 0.009 for each h,
    # means 0.04 (exact), 0.13 (h = 0.3), 0.36 (h = 0.6); the gaps below are > 5 sd.
    n = 4000
    g = torch.Generator().manual_seed(7)
    exact = kernel_stein_discrepancy(gaussian_draws(COV, n, g), gaussian_score).item()
    values = [kernel_stein_discrepancy(gaussian_draws(ula_covariance(h), n, g), gaussian_score).item()
              for h in (0.2, 0.4, 0.8)]
    print(f"KSD at n={n}: exact {exact:.4f}, ULA h=0.2/0.4/0.8 {values}")
    assert exact < values[0] < values[1] < values[2]
    # the exact draws sit at the noise floor sqrt(E_P k0(x, x) / n) = sqrt((d + tr Sigma^-1) / n)
    floor = math.sqrt((2 + PRECISION.trace().item()) / n)
    assert exact < 2 * floor
    # power: the same exact draws scored against a wrong target (N(0, 2 Sigma)) are flagged
    wrong = kernel_stein_discrepancy(gaussian_draws(COV, n, g), lambda x: -x @ PRECISION / 2).item()
    assert wrong > values[0]


def test_ranks_ula_runs_by_step_size():
    # 1000 vectorized ULA chains started at exact draws, 100 steps to relax to ULA's own law, then 4 draws
    # 10 steps apart: 4000 draws per step size.
    pyro.set_rng_seed(8)
    chains = 1000

    def potential(params):
        x = params["x"]
        return 0.5 * ((x @ PRECISION) * x).sum(-1)

    values = []
    for h in (0.1, 0.3, 0.6):
        init = {"x": gaussian_draws(COV, chains, None)}
        mcmc = MCMC(ULA(potential_fn=potential, step_size=h, vectorized_chains=chains, thinning=10),
                    num_samples=4, warmup_steps=10, initial_params=init, disable_progbar=True)
        mcmc.run()
        values.append(kernel_stein_discrepancy(mcmc.get_samples()["x"].reshape(-1, 2), gaussian_score).item())
    print(f"KSD of ULA runs, h=0.1/0.3/0.6: {values}")
    assert values[0] < values[1] < values[2]


def test_ten_thousand_by_one_hundred_fits():
    # n = 10,000, d = 100 in float32: blocks of chunk_size^2, never [n, n, d]; E[KSD^2] = 2 d / n.
    g = torch.Generator().manual_seed(9)
    x = torch.randn(10_000, 100, generator=g)
    value = kernel_stein_discrepancy(x, lambda x: -x)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(math.sqrt(2 * 100 / 10_000), rel=0.05)


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(beta=0.0), "beta"),
        (dict(beta=-1.0), "beta"),
        (dict(beta=0.5), "beta"),
        (dict(beta=True), "beta"),
        (dict(c=0.0), "c must be positive"),
        (dict(c=float("nan")), "c must be positive"),
        (dict(chunk_size=0), "chunk_size"),
        (dict(chunk_size=2.5), "chunk_size"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kernel_stein_discrepancy(torch.zeros(3, 2), lambda x: -x, **kwargs)


def test_bad_samples_and_scores():
    with pytest.raises(ValueError, match=r"shape \[n, \*event_shape\]"):
        kernel_stein_discrepancy(torch.tensor(1.0), lambda x: -x)
    with pytest.raises(TypeError, match="floating point"):
        kernel_stein_discrepancy(torch.zeros(3, 2, dtype=torch.long), lambda x: -x)
    with pytest.raises(TypeError, match="tensor"):
        kernel_stein_discrepancy([[0.0, 1.0]], lambda x: -x)
    with pytest.raises(TypeError, match="score_fn must be callable"):
        kernel_stein_discrepancy(torch.zeros(3, 2), "score")
    with pytest.raises(ValueError, match=r"shape of its input \(3, 2\), got \(3,\)"):
        kernel_stein_discrepancy(torch.zeros(3, 2), lambda x: x.sum(-1))
    x = torch.tensor([[0.0], [1.0], [-1.0]])
    with pytest.raises(ValueError, match="not finite at 1 of 3 samples .first at index 2"):
        kernel_stein_discrepancy(x, lambda x: torch.where(x < 0, float("nan"), -x))
    with pytest.raises(TypeError, match="potential_fn must be callable"):
        score_from_potential(None)
