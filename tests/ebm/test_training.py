import numpy as np
import pytest
import torch
from pyro.ops.stats import effective_sample_size
from stats_helpers import z_bound
from torch import nn

from pyro_langevin import MALA, ULA
from pyro_langevin.datasets import NormalDataset
from pyro_langevin.ebm import (ContrastiveDivergence, ConvEnergy, MLPEnergy, QuadraticEnergy, ReplayBuffer, Trainer,
                               TrainingDiverged, fit, load_energy, save_energy)


# ---------------------------------------------------------------- the Gaussian scenario
def train_quadratic(kernel, num_iterations=800, batch_size=256, lr=0.05, seed=0):
    """Fit QuadraticEnergy to 2000 draws of a correlated 2-D Gaussian with persistent
    chains; return the Polyak averages of (mean, covariance) over the last 40 % of the
    iterations, their Monte Carlo standard errors, and the data."""
    torch.manual_seed(seed)
    data = NormalDataset(torch.tensor([1.0, -0.5]), torch.tensor([[1.5, 0.5], [0.5, 1.0]]), 2000,
                         dtype=torch.float64).data
    energy = QuadraticEnergy(2).double()
    buffer = ReplayBuffer(4 * batch_size, (2,), reinit_prob=0.0, init="normal", init_std=2.0, dtype=torch.float64)
    optimizer = torch.optim.Adam(energy.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 1.0 if t < num_iterations // 2 else 0.1)
    trainer = Trainer(energy, ContrastiveDivergence(kernel, 5, buffer), optimizer, data, batch_size,
                      scheduler=scheduler)
    iterates = []
    for t in range(num_iterations):
        trainer.step()
        if t >= 0.6 * num_iterations:
            c = energy.covariance.detach()
            iterates.append(torch.cat([energy.mean.detach(), c[0, 0:2], c[1, 1:2]]))
    iterates = torch.stack(iterates)  # [T, 5]: mean, c00, c01, c11
    ess = effective_sample_size(iterates.unsqueeze(0), chain_dim=0, sample_dim=1)
    return iterates.mean(0), iterates.std(0) / ess.sqrt(), data


def moments(mean, cov):
    return torch.cat([mean, cov[0, 0:2], cov[1, 1:2]])


def ula_learned_covariance(data_cov, h):
    """The model covariance S at which ULA's stationary covariance S (I - h S^{-1}/2)^{-1}
    equals the data's: per eigenvalue c, s = (c + sqrt(c^2 - 2 h c)) / 2."""
    c, u = torch.linalg.eigh(data_cov)
    return u @ torch.diag((c + torch.sqrt(c * c - 2 * h * c)) / 2) @ u.T


def test_quadratic_energy_recovers_gaussian_moments_with_mala():
    # the fixed point of persistent CD with exact (MALA) negatives is the MLE: the data's
    # own mean and (biased) covariance; tolerance: the Bonferroni z-bound (p = 1e-3 over the
    # 5 statistics, 3.7) in Monte Carlo standard errors of the Polyak average of the
    # iterates (MCSE = sd / sqrt(ESS)), and 0.03 in absolute terms (variances ~1)
    estimate, mcse, data = train_quadratic(MALA(step_size=0.3))
    target = moments(data.mean(0), torch.cov(data.T, correction=0))
    z = (estimate - target) / mcse
    assert z.abs().max() < z_bound(5), f"z-scores {z}"
    assert (estimate - target).abs().max() < 0.03


def test_ula_negatives_learn_the_predicted_biased_covariance():
    # the negative control: ULA negatives at h = 0.2 miss the data's moments by many
    # standard errors, but hit the covariance the exact ULA bias formula predicts
    h = 0.2
    estimate, mcse, data = train_quadratic(ULA(step_size=h))
    data_cov = torch.cov(data.T, correction=0)
    exact = moments(data.mean(0), data_cov)
    predicted = moments(data.mean(0), ula_learned_covariance(data_cov, h))
    assert ((estimate - exact) / mcse).abs().max() > 10
    z = (estimate - predicted) / mcse
    assert z.abs().max() < z_bound(5), f"z-scores {z}"


# ---------------------------------------------------------------- checkpoints and resume
def make_trainer(tmp_path, checkpoint_every=5, energy=None, **kwargs):
    data = NormalDataset(torch.zeros(2), torch.eye(2), 64, dtype=torch.float64).data
    energy = energy or MLPEnergy(2, (8,)).double()
    buffer = ReplayBuffer(32, (2,), reinit_prob=0.5, dtype=torch.float64)  # draws use the RNG heavily
    cd = ContrastiveDivergence(ULA(step_size=0.05), 3, buffer, alpha=0.1)
    optimizer = torch.optim.Adam(energy.parameters(), lr=0.01)
    return Trainer(energy, cd, optimizer, data, 16, checkpoint_path=tmp_path / "ckpt.pt",
                   checkpoint_every=checkpoint_every, metadata={"value_range": (-1.0, 1.0)}, **kwargs)


def test_resume_takes_bitwise_the_same_steps(tmp_path):
    import random

    torch.manual_seed(0)
    straight = make_trainer(tmp_path / "a")
    straight.fit(11, progress=False)

    torch.manual_seed(0)
    first = make_trainer(tmp_path / "b")
    first.fit(6, progress=False)  # checkpoints at 5 and 6
    torch.manual_seed(123), random.seed(123), np.random.seed(123)  # scramble every generator
    resumed = make_trainer(tmp_path / "b", energy=MLPEnergy(2, (8,)).double())  # fresh weights
    resumed.load_checkpoint(tmp_path / "b" / "ckpt.pt")
    assert resumed.iteration == 6 and len(resumed.buffer) == first.buffer.size
    resumed.fit(11, progress=False)
    for p, q in zip(straight.energy.parameters(), resumed.energy.parameters()):
        assert torch.equal(p, q)
    assert straight.history == resumed.history
    assert torch.equal(straight.buffer.storage, resumed.buffer.storage)


def test_fit_resumes_from_an_existing_checkpoint(tmp_path):
    torch.manual_seed(0)
    trainer = make_trainer(tmp_path)
    trainer.fit(5, progress=False)
    kwargs = dict(checkpoint_path=tmp_path / "ckpt.pt")
    again = fit(trainer.energy, trainer.data, trainer.loss_fn, trainer.optimizer, 7, 16, progress=False, **kwargs)
    assert again.iteration == 7 and len(again.history) == 7


class Poisonable(nn.Module):
    """An MLP energy that returns NaN once ``poisoned`` is set."""

    def __init__(self):
        super().__init__()
        self.inner = MLPEnergy(2, (8,)).double()
        self.poisoned = False

    def forward(self, x):
        e = self.inner(x)
        return e * float("nan") if self.poisoned else e


def test_non_finite_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(tmp_path):
    torch.manual_seed(0)
    trainer = make_trainer(tmp_path, checkpoint_every=3, energy=Poisonable())
    trainer.fit(6, progress=False)
    good = {k: v.clone() for k, v in trainer.energy.state_dict().items()}
    trainer.energy.poisoned = True
    with pytest.raises(TrainingDiverged, match=r"diverged at iteration 6: loss = nan; the last good checkpoint is "
                                                r".*ckpt\.pt") as info:
        trainer.fit(10, progress=False)
    assert info.value.iteration == 6 and info.value.checkpoint == str(tmp_path / "ckpt.pt")
    saved = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert saved["iteration"] == 6
    assert all(torch.equal(saved["model"][k], v) for k, v in good.items())


def test_exploding_energy_stops(tmp_path):
    torch.manual_seed(0)
    trainer = make_trainer(tmp_path, max_energy=1e-3)
    trainer.checkpoint_path = None
    with pytest.raises(TrainingDiverged, match=r"exceeds max_energy=0.001; checkpointing is off"):
        trainer.fit(3, progress=False)


def test_save_and_load_energy(tmp_path):
    torch.manual_seed(0)
    energy = ConvEnergy((1, 8, 8), channels=(4, 8), hidden_features=16).double()
    save_energy(tmp_path / "e.pt", energy, value_range=(0.0, 1.0))
    loaded, meta = load_energy(tmp_path / "e.pt")
    x = torch.rand(3, 1, 8, 8, dtype=torch.float64)
    assert torch.equal(loaded(x), energy(x)) and meta == {"value_range": (0.0, 1.0)}
    trainer = make_trainer(tmp_path)
    trainer.fit(5, progress=False)  # a trainer checkpoint loads the same way
    loaded, meta = load_energy(tmp_path / "ckpt.pt")
    assert isinstance(loaded, MLPEnergy) and meta == {"value_range": (-1.0, 1.0)}


def test_bad_arguments(tmp_path):
    energy = MLPEnergy(2, (4,))
    cd = ContrastiveDivergence(ULA(), 1)
    opt = torch.optim.SGD(energy.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="batch_size=20 exceeds the 10 data points"):
        Trainer(energy, cd, opt, torch.zeros(10, 2), 20)
    with pytest.raises(TypeError, match="data must be a tensor"):
        Trainer(energy, cd, opt, [[0.0, 0.0]], 1)
    with pytest.raises(ValueError, match="max_grad_norm must be a positive number"):
        Trainer(energy, cd, opt, torch.zeros(10, 2), 2, max_grad_norm=-1)
    with pytest.raises(ValueError, match="not a pyro_langevin.ebm checkpoint"):
        torch.save({"a": 1}, tmp_path / "x.pt")
        load_energy(tmp_path / "x.pt")
