import math

import pytest
import torch
from torch import nn

from pyro_langevin import MALA, ULA
from pyro_langevin.ebm import ContrastiveDivergence, MLPEnergy, QuadraticEnergy, ReplayBuffer, run_chains


class TwoBumps(nn.Module):
    """E(x) = a s(-10 x) + b s(10 x) in 1-D: ``a`` sets the energy left of 0, ``b`` right of it."""

    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(0.0, dtype=torch.float64))
        self.b = nn.Parameter(torch.tensor(0.0, dtype=torch.float64))

    def forward(self, x):
        x = x.squeeze(-1)
        return self.a * torch.sigmoid(-10 * x) + self.b * torch.sigmoid(10 * x)


def cd_with_negatives_at(value, alpha=0.0):
    # negatives start at `value` and barely move: a tiny ULA step, all chains fresh
    buffer = ReplayBuffer(16, (1,), reinit_prob=1.0, init=lambda n: torch.full((n, 1), value), dtype=torch.float64)
    return ContrastiveDivergence(ULA(step_size=1e-8), num_steps=2, buffer=buffer, alpha=alpha)


def test_gradient_pushes_data_energy_down_and_negative_energy_up():
    torch.manual_seed(0)
    energy = TwoBumps()
    data = torch.full((8, 1), -1.0, dtype=torch.float64)  # data on the left, negatives on the right
    loss, stats = cd_with_negatives_at(1.0)(energy, data)
    loss.backward()
    s = torch.sigmoid(torch.tensor(10.0, dtype=torch.float64)).item()  # s(10) = s(-10 * -1)
    # dL/da = mean s(-10 x+) - mean s(-10 x-) = s(10) - s(-10) > 0: descent lowers the data's energy
    assert energy.a.grad.item() == pytest.approx(2 * s - 1, rel=1e-6) and energy.a.grad > 0
    # dL/db = s(-10) - s(10) < 0: descent raises the negatives' energy
    assert energy.b.grad.item() == pytest.approx(1 - 2 * s, rel=1e-6) and energy.b.grad < 0
    assert stats["energy_gap"] == pytest.approx(0.0)  # a = b = 0: no gap yet


def test_regulariser_gradient():
    torch.manual_seed(0)
    energy = TwoBumps()
    with torch.no_grad():
        energy.a.fill_(0.5)
        energy.b.fill_(-0.3)
    data = torch.full((8, 1), -1.0, dtype=torch.float64)
    alpha = 0.7
    loss, stats = cd_with_negatives_at(1.0, alpha)(energy, data)
    loss.backward()
    s = torch.sigmoid(torch.tensor(10.0, dtype=torch.float64)).item()
    e_data, e_neg = 0.5 * s - 0.3 * (1 - s), 0.5 * (1 - s) - 0.3 * s
    assert stats["energy_data"] == pytest.approx(e_data) and stats["energy_negative"] == pytest.approx(e_neg)
    assert stats["loss"] == pytest.approx(e_data - e_neg + alpha * (e_data**2 + e_neg**2))
    grad_a = s - (1 - s) + 2 * alpha * (e_data * s + e_neg * (1 - s))
    assert energy.a.grad.item() == pytest.approx(grad_a, rel=1e-6)


def test_negatives_are_the_kernels_moves_and_parameters_stay_out():
    torch.manual_seed(0)
    energy = QuadraticEnergy(3).double()
    energy.train()
    x0 = torch.randn(5, 3, dtype=torch.float64)
    h, temperature = 0.1, 0.5
    torch.manual_seed(1)
    x, stats = run_chains(energy, ULA(step_size=h, temperature=temperature), x0, num_steps=1)
    torch.manual_seed(1)
    z = torch.randn(5, 3, dtype=torch.float64)
    expected = x0 - h * x0 + math.sqrt(2 * h * temperature) * z  # identity precision: grad E = x
    assert torch.allclose(x, expected)
    assert stats["grad_norm"] == pytest.approx(x0.norm(dim=1).mean().item())
    assert stats["diverging"] == 0 and "accept_prob" not in stats
    assert all(p.grad is None and p.requires_grad for p in energy.parameters())
    assert energy.training and not x.requires_grad


def test_mala_reports_acceptance_and_divergences_are_counted():
    torch.manual_seed(0)

    def energy_nan_right(x):  # not finite for x > 0
        e = 0.5 * (x * x).sum(-1)
        return torch.where(x[:, 0] > 0, torch.full_like(e, float("nan")), e)

    class Wrapped(nn.Module):
        def forward(self, x):
            return energy_nan_right(x)

    x0 = torch.full((200, 1), -0.1, dtype=torch.float64)
    x, stats = run_chains(Wrapped(), ULA(step_size=0.05), x0, num_steps=5)
    assert stats["diverging"] > 0 and torch.isfinite(x).all() and (x <= 0).all()
    x, stats = run_chains(Wrapped(), MALA(step_size=0.05), x0, num_steps=5)
    assert stats["diverging"] > 0 and 0 < stats["accept_prob"] < 1


def test_without_buffer_chains_start_at_the_data():
    torch.manual_seed(0)
    data = torch.randn(4, 2, dtype=torch.float64)
    cd = ContrastiveDivergence(ULA(step_size=1e-12), num_steps=1)
    negatives, stats = cd.negatives(QuadraticEnergy(2).double(), data)
    assert torch.allclose(negatives, data) and "buffer_size" not in stats


def test_buffer_takes_back_the_negatives():
    torch.manual_seed(0)
    buffer = ReplayBuffer(100, (2,), reinit_prob=0.0, dtype=torch.float64)
    cd = ContrastiveDivergence(ULA(step_size=0.01), num_steps=3, buffer=buffer)
    negatives, stats = cd.negatives(MLPEnergy(2, (8,)).double(), torch.zeros(10, 2, dtype=torch.float64))
    assert len(buffer) == 10 and torch.equal(buffer.storage[:10], negatives)
    assert stats["buffer_size"] == 10 and stats["reinit_fraction"] == 1.0  # the empty buffer gave noise
    _, stats = cd.negatives(MLPEnergy(2, (8,)).double(), torch.zeros(10, 2, dtype=torch.float64))
    assert stats["buffer_size"] == 20 and stats["reinit_fraction"] == 0.0


def test_bad_arguments():
    with pytest.raises(TypeError, match="kernel must be a ULA or MALA"):
        ContrastiveDivergence(lambda x: x, 10)
    with pytest.raises(ValueError, match="num_steps must be a positive integer, got 0"):
        ContrastiveDivergence(ULA(), 0)
    with pytest.raises(ValueError, match="alpha must be a non-negative number, got -1"):
        ContrastiveDivergence(ULA(), 10, alpha=-1)
    with pytest.raises(TypeError, match="buffer must be a ReplayBuffer"):
        ContrastiveDivergence(ULA(), 10, buffer=[])
    cd = ContrastiveDivergence(ULA(), 1, buffer=ReplayBuffer(10, (2,)))
    with pytest.raises(ValueError, match="call buffer.to"):
        cd(QuadraticEnergy(2).double(), torch.zeros(3, 2, dtype=torch.float64))


def test_run_chains_validates():
    with pytest.raises(ValueError, match="num_steps must be a positive integer, got 0"):
        run_chains(QuadraticEnergy(2), ULA(), torch.zeros(3, 2), 0)
    with pytest.raises(TypeError, match="kernel must be a ULA or MALA"):
        run_chains(QuadraticEnergy(2), object(), torch.zeros(3, 2), 1)
