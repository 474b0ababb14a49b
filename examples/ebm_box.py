r"""Scenario 2: a Gaussian restricted to the box [-1, 1]^2, which a quadratic energy
cannot represent and an MLP energy can.

Both energies are trained by persistent contrastive divergence with MALA negatives
(exact draws of the model, so the long-run chains are samples of the model itself),
the replay buffer restarting 5 % of the chains from uniform noise on [-3, 3]^2 so
that the region around the box is explored too. Each model is then judged by its
*long-run* samples: 2000 chains started from that noise and run 2000 MALA steps:

- the fraction inside the box (the data: 100 %; the target for the MLP: at least 95 %),
- the Kolmogorov--Smirnov distance of each 1-D marginal to the data's (next to the
  5 % critical value of the two-sample test).

The best a Gaussian can do is the data's own mean and covariance (the maximum-likelihood
Gaussian); its inside fraction is shown too, from 10^5 exact draws.

    python examples/ebm_box.py                       # about a minute on one core
    python examples/ebm_box.py --out outputs/ebm_box # also saves box.png and the energies

Measured (``--out outputs/ebm_box``, 34 s of CPU on one core; KS 5 % critical value 0.036):

=============================================  ==========  =====  =====
model (long-run samples)                       inside box  KS x1  KS x2
=============================================  ==========  =====  =====
best Gaussian (data moments, exact draws)      87.9 %      0.059  0.043
QuadraticEnergy                                90.5 %      0.063  0.062
MLPEnergy (64, 64), SiLU                       96.0 %      0.028  0.021
=============================================  ==========  =====  =====
"""
import argparse
import math
import time
from pathlib import Path

import torch
from scipy.stats import ks_2samp

from pyro_langevin import MALA
from pyro_langevin.datasets import BoxDataset
from pyro_langevin.ebm import (ContrastiveDivergence, MLPEnergy, QuadraticEnergy, ReplayBuffer, Trainer, run_chains,
                               save_energy)


def train(energy, data, args, iterations, lr):
    buffer = ReplayBuffer(10 * args.batch_size, (2,), reinit_prob=0.05, init="uniform", init_range=(-3.0, 3.0))
    cd = ContrastiveDivergence(MALA(step_size=args.step_size), args.num_steps, buffer)
    optimizer = torch.optim.Adam(energy.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 1.0 if t < 0.75 * iterations else 0.1)
    trainer = Trainer(energy, cd, optimizer, data, args.batch_size, scheduler=scheduler)
    t0 = time.perf_counter()
    trainer.fit(iterations, progress=args.progress)
    return trainer, time.perf_counter() - t0


def judge(name, samples, data, inside, seconds, long_stats):
    ks = [ks_2samp(samples[:, d].numpy(), data[:, d].numpy()).statistic for d in range(2)]
    print(f"| {name} | {100 * float(inside(samples).float().mean()):.1f} % | {ks[0]:.3f} | {ks[1]:.3f} | "
          f"{long_stats.get('accept_prob', float('nan')):.2f} | {seconds:.0f} |", flush=True)


def main(args):
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    dataset = BoxDataset(torch.tensor([0.5, 0.0]), torch.tensor([[1.0, 0.6], [0.6, 1.0]]), args.num_data,
                         box=(-1.0, 1.0), seed=args.seed)
    data = dataset.data
    n, m = args.num_chains, data.shape[0]
    print(f"data: {m} points, all inside the box; KS 5 % critical value for {n} vs {m} points: "
          f"{1.358 * math.sqrt((n + m) / (n * m)):.3f}\n")
    print("| model (long-run samples) | inside box | KS x1 | KS x2 | MALA accept | train s |")
    print("|---|---|---|---|---|---|")
    mle = torch.distributions.MultivariateNormal(data.mean(0), torch.cov(data.T)).sample((100000,))
    print(f"| best Gaussian (data moments, exact draws) | {100 * float(dataset.inside(mle).float().mean()):.1f} % | "
          f"{ks_2samp(mle[:, 0].numpy(), data[:, 0].numpy()).statistic:.3f} | "
          f"{ks_2samp(mle[:, 1].numpy(), data[:, 1].numpy()).statistic:.3f} | -- | -- |")
    energies = {
        "QuadraticEnergy": (QuadraticEnergy(2), args.quadratic_iterations, 0.02),
        "MLPEnergy (64, 64), SiLU": (MLPEnergy(2, (64, 64), envelope_scale=3.0), args.mlp_iterations, args.lr),
    }
    samples = {}
    for name, (energy, iterations, lr) in energies.items():
        trainer, seconds = train(energy, data, args, iterations, lr)
        start = torch.rand(n, 2) * 6 - 3
        x, stats = run_chains(energy, MALA(step_size=args.step_size), start, args.long_run_steps)
        judge(name, x, data, dataset.inside, seconds, stats)
        samples[name] = x
        if args.out:
            save_energy(Path(args.out) / f"{type(energy).__name__}.pt", energy, box=(-1.0, 1.0))
    if args.out:
        plot(args.out, data, samples, energies)


def plot(out, data, samples, energies):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = torch.linspace(-2.5, 2.5, 200)
    xx, yy = torch.meshgrid(grid, grid, indexing="xy")
    fig, axes = plt.subplots(1, 1 + len(samples), figsize=(4 * (1 + len(samples)), 4))
    axes[0].scatter(data[:2000, 0], data[:2000, 1], s=1)
    axes[0].set_title("data")
    for ax, (name, x) in zip(axes[1:], samples.items()):
        with torch.no_grad():
            e = energies[name][0](torch.stack([xx.flatten(), yy.flatten()], -1)).reshape(xx.shape)
        ax.contourf(xx, yy, torch.exp(-(e - e.min())), levels=20, cmap="Blues")
        ax.scatter(x[:2000, 0], x[:2000, 1], s=1, c="k")
        ax.set_title(f"{name.split(' ')[0]}: exp(-E) and long-run samples", fontsize=8)
    for ax in axes:
        ax.plot([-1, 1, 1, -1, -1], [-1, -1, 1, 1, -1], "r-", lw=1)
        ax.set_xlim(-2.5, 2.5)
        ax.set_ylim(-2.5, 2.5)
        ax.set_aspect("equal")
    Path(out).mkdir(parents=True, exist_ok=True)
    fig.savefig(Path(out) / "box.png", dpi=100, bbox_inches="tight")
    print(f"\nsaved {Path(out) / 'box.png'} and the energies (load with pyro_langevin.ebm.load_energy)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-data", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--num-steps", type=int, default=10, help="MALA steps per negative")
    parser.add_argument("--step-size", type=float, default=0.02)
    parser.add_argument("--lr", type=float, default=0.005)
    parser.add_argument("--quadratic-iterations", type=int, default=600)
    parser.add_argument("--mlp-iterations", type=int, default=2000)
    parser.add_argument("--num-chains", type=int, default=2000)
    parser.add_argument("--long-run-steps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="directory for box.png and the trained energies")
    parser.add_argument("--progress", action="store_true")
    main(parser.parse_args())
