"""Seconds per EBM training iteration: pyro_langevin's ``Trainer`` + ``ContrastiveDivergence``
(negatives through ``ULA.move``, the package's one Langevin update) against a hand-written
loop doing the same work with the same network, in the same process.

Setting (Du & Mordatch 2019 / Lippe's tutorial): ``ConvEnergy`` on 1x28x28, batch 128,
60 Langevin steps x <- clamp(x - 10 clip(grad E, 0.03) + 0.005 z, -1, 1), replay buffer of
8192 with 5 % restarts, alpha = 0.1, Adam. One torch thread; the two loops alternate and
each figure is the median of ``--repeats`` timings of ``--iterations`` iterations. Target:
ratio <= 1.1.

    python benchmarks/ebm_training.py [--repeats 7] [--iterations 2] [--no-write]
"""
import argparse
import copy
import statistics
import time

import torch

try:  # run as a script (python benchmarks/ebm_training.py) or as a module
    from _results import machine, markdown_table, one_thread, write_section
except ImportError:
    from benchmarks._results import machine, markdown_table, one_thread, write_section
from pyro_langevin import ULA
from pyro_langevin.ebm import ContrastiveDivergence, ConvEnergy, ReplayBuffer, Trainer

BATCH, STEPS, LAMBDA, SIGMA, CLIP, ALPHA, CAPACITY, REINIT = 128, 60, 10.0, 0.005, 0.03, 0.1, 8192, 0.05


class ReferenceLoop:
    """The baseline: the same sampler and loss written by hand, no library code."""

    def __init__(self, energy, data):
        self.energy, self.data = energy, data
        self.optimizer = torch.optim.Adam(energy.parameters(), lr=1e-4, betas=(0.0, 0.999))
        self.storage = torch.empty(CAPACITY, *data.shape[1:])
        self.size = self.next = 0

    def negatives(self):
        if self.size == 0:
            x = torch.rand(BATCH, *self.data.shape[1:]) * 2 - 1
        else:
            x = self.storage[torch.randint(self.size, (BATCH,))]
            fresh = torch.rand(BATCH) < REINIT
            x[fresh] = torch.rand(int(fresh.sum()), *self.data.shape[1:]) * 2 - 1
        params = list(self.energy.parameters())
        for p in params:
            p.requires_grad_(False)
        self.energy.eval()
        for _ in range(STEPS):
            x = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.energy(x).sum(), x)
            x = (x.detach() - LAMBDA * grad.clamp(-CLIP, CLIP) + SIGMA * torch.randn_like(x)).clamp(-1, 1)
        for p in params:
            p.requires_grad_(True)
        self.energy.train()
        index = (self.next + torch.arange(BATCH)) % CAPACITY
        self.storage[index] = x
        self.next, self.size = (self.next + BATCH) % CAPACITY, min(self.size + BATCH, CAPACITY)
        return x

    def step(self):
        batch = self.data[torch.randint(self.data.shape[0], (BATCH,))]
        negatives = self.negatives()
        e = self.energy(torch.cat([batch, negatives]))
        e_data, e_neg = e[:BATCH], e[BATCH:]
        loss = e_data.mean() - e_neg.mean() + ALPHA * ((e_data ** 2).mean() + (e_neg ** 2).mean())
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()


def library_trainer(energy, data):
    kernel = ULA(step_size=LAMBDA, noise_scale=SIGMA, grad_clip=CLIP, clamp=(-1.0, 1.0))
    buffer = ReplayBuffer(CAPACITY, tuple(data.shape[1:]), reinit_prob=REINIT)
    cd = ContrastiveDivergence(kernel, STEPS, buffer, alpha=ALPHA)
    optimizer = torch.optim.Adam(energy.parameters(), lr=1e-4, betas=(0.0, 0.999))
    return Trainer(energy, cd, optimizer, data, BATCH)


def main(args):
    one_thread()
    torch.manual_seed(0)
    data = torch.rand(4096, 1, 28, 28) * 2 - 1
    energy = ConvEnergy((1, 28, 28))
    runs = {"library": library_trainer(energy, data), "reference": ReferenceLoop(copy.deepcopy(energy), data)}
    for run in runs.values():  # warm up (and fill the buffers a little)
        run.step()
    wall = {name: [] for name in runs}
    cpu = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():  # alternate, so both see the same machine load
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(args.iterations):
                run.step()
            wall[name].append((time.perf_counter() - t0) / args.iterations)
            cpu[name].append((time.process_time() - c0) / args.iterations)
    med = {kind: {name: statistics.median(t[name]) for name in runs} for kind, t in (("wall", wall), ("cpu", cpu))}
    rows = [["hand-written loop (baseline)", f"{med['wall']['reference']:.3f}", "1.00",
             f"{med['cpu']['reference']:.3f}", "1.00"],
            ["Trainer + ContrastiveDivergence (ULA.move)", f"{med['wall']['library']:.3f}",
             f"{med['wall']['library'] / med['wall']['reference']:.3f}", f"{med['cpu']['library']:.3f}",
             f"{med['cpu']['library'] / med['cpu']['reference']:.3f}"]]
    body = (f"ConvEnergy 1x28x28 ({sum(p.numel() for p in energy.parameters())} parameters), batch {BATCH}, "
            f"{STEPS} Langevin steps, one training iteration including the Adam step; median of {args.repeats} "
            f"alternating timings of {args.iterations} iterations, wall clock and process CPU time (the "
            "latter is the fair one on a shared machine). Target ratio <= 1.1.\n\n"
            + markdown_table(["loop", "wall s / iteration", "ratio", "CPU s / iteration", "ratio"], rows)
            + f"\n\nAll wall timings (s/iteration): library {[round(t, 3) for t in wall['library']]}, "
              f"reference {[round(t, 3) for t in wall['reference']]}. The library evaluates the gradient "
              f"{STEPS + 1} times per iteration (the chain state caches it, one evaluation at the start), the "
              f"reference {STEPS} times: 1/{STEPS} = {100 / STEPS:.1f} % of the sampling cost.")
    print(machine())
    print(body)
    if not args.no_write:
        write_section("ebm_training", body)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--no-write", action="store_true")
    main(parser.parse_args())
