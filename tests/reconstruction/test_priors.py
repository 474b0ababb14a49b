import pytest
import torch
from torch import nn

from pyro_langevin.ebm import QuadraticEnergy
from pyro_langevin.reconstruction import DenoisingScoreMatching, GaussianResidualEnergy

DT = torch.float64


class Zero(nn.Module):
    def forward(self, x):
        return x.new_zeros(x.shape[0])


class Scaled(nn.Module):
    """E(x) = a |x - m|^2 / 2 with a learnable a."""

    def __init__(self, m):
        super().__init__()
        self.m = m
        self.a = nn.Parameter(torch.tensor(1.0, dtype=DT))

    def forward(self, x):
        return 0.5 * self.a * (x - self.m).flatten(1).pow(2).sum(-1)


def test_gaussian_residual_with_zero_residual_is_the_gaussian():
    g = torch.Generator().manual_seed(0)
    data = torch.rand(200, 1, 3, 3, generator=g, dtype=DT)
    energy = GaussianResidualEnergy.from_data(Zero(), data, noise_std=0.1, jitter=1e-3)
    cov = torch.cov(data.flatten(1).T) + (0.01 + 1e-3) * torch.eye(9, dtype=DT)
    reference = QuadraticEnergy.from_moments(data.mean(0), cov)
    x = torch.randn(5, 1, 3, 3, generator=g, dtype=DT)
    assert torch.allclose(energy(x), reference(x).detach(), rtol=1e-10)
    assert list(dict(energy.named_parameters())) == []  # mean and precision are buffers
    with pytest.raises(ValueError, match=r"precision must have shape \(9, 9\)"):
        GaussianResidualEnergy(Zero(), data.mean(0), torch.eye(4, dtype=DT))


def test_score_matching_minimiser_is_the_smoothed_density():
    # data N(m, c I): over E = a |x - m|^2 / 2 the expected loss is D/2 (s^2 a^2 c + (s^2 a - 1)^2),
    # minimal at a = 1 / (c + s^2), the precision of the data convolved with N(0, s^2 I)
    c, s, m = 0.25, 0.3, 0.5
    data = m + c**0.5 * torch.randn(20000, 4, generator=torch.Generator().manual_seed(0), dtype=DT)
    energy, loss_fn = Scaled(m), DenoisingScoreMatching(s)

    def loss_at(a):
        energy.a.data.fill_(a)
        torch.manual_seed(1)  # one noise draw for every a: the loss is then exactly quadratic in a
        return float(loss_fn(energy, data)[0].detach())

    a0, h = 1.0, 0.5
    lo, mid, hi = loss_at(a0 - h), loss_at(a0), loss_at(a0 + h)
    vertex = a0 - h * (hi - lo) / (2 * (hi - 2 * mid + lo))  # the minimiser of the parabola
    assert vertex == pytest.approx(1 / (c + s**2), rel=0.02)


def test_score_matching_loss_value_and_statistics():
    energy = Scaled(0.0)
    data = torch.randn(8, 3, generator=torch.Generator().manual_seed(0), dtype=DT)
    torch.manual_seed(3)
    loss, stats = DenoisingScoreMatching(0.1)(energy, data)
    torch.manual_seed(3)
    eps = torch.randn_like(data)
    expected = 0.5 * (0.1 * (data + 0.1 * eps) - eps).pow(2).sum(-1).mean()
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-12)
    assert set(stats) == {"loss", "energy_data", "energy_negative", "energy_gap"}
    assert stats["energy_data"] == pytest.approx(float(energy(data).mean().detach()), rel=1e-12)
    loss.backward()
    assert energy.a.grad is not None and torch.isfinite(energy.a.grad)
    with pytest.raises(ValueError, match="noise_std must be a positive number, got 0"):
        DenoisingScoreMatching(0)
