"""The seed's second scenario (``examples/ebm_box.py``) as a slow check: an MLP energy
trained with MALA negatives puts at least 95 % of its long-run samples inside the box,
with 1-D marginals within the two-sample KS 1 % critical value of the data's; the
quadratic energy cannot (its best fit, the data's moments, leaves > 10 % outside)."""
import math

import pytest
import torch
from scipy.stats import ks_2samp

from pyro_langevin import MALA
from pyro_langevin.datasets import BoxDataset
from pyro_langevin.ebm import ContrastiveDivergence, MLPEnergy, ReplayBuffer, Trainer, run_chains


@pytest.mark.slow
def test_mlp_energy_learns_the_box():
    torch.manual_seed(0)
    dataset = BoxDataset(torch.tensor([0.5, 0.0]), torch.tensor([[1.0, 0.6], [0.6, 1.0]]), 5000)
    data = dataset.data
    best_gaussian = torch.distributions.MultivariateNormal(data.mean(0), torch.cov(data.T)).sample((100000,))
    assert dataset.inside(best_gaussian).float().mean() < 0.9

    energy = MLPEnergy(2, (64, 64), envelope_scale=3.0)
    buffer = ReplayBuffer(2560, (2,), reinit_prob=0.05, init_range=(-3.0, 3.0))
    optimizer = torch.optim.Adam(energy.parameters(), lr=0.005)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 1.0 if t < 1500 else 0.1)
    Trainer(energy, ContrastiveDivergence(MALA(step_size=0.02), 10, buffer), optimizer, data, 256,
            scheduler=scheduler).fit(2000, progress=False)
    n = 2000
    x, stats = run_chains(energy, MALA(step_size=0.02), torch.rand(n, 2) * 6 - 3, 2000)
    assert dataset.inside(x).float().mean() >= 0.95
    critical = 1.63 * math.sqrt((n + data.shape[0]) / (n * data.shape[0]))  # two-sample KS, 1 %
    for d in range(2):
        assert ks_2samp(x[:, d].numpy(), data[:, d].numpy()).statistic < critical
