"""The tour of pyro-langevin, on embedded data (no download), in under 10 minutes on
two CPU cores:

1. sample a Pyro model with ``MCMC(ULA(...))`` -- vectorized chains, a self-tuned
   step size -- and print its ArviZ summary next to MALA's;
2. train a convolutional energy on scikit-learn's 8x8 digits by contrastive
   divergence with Langevin negatives, sample from it, score the samples
   (``examples/ebm_digits.py``);
3. reconstruct corrupted test digits with an energy prior: MAP, posterior mean and
   per-pixel uncertainty from one potential (``examples/reconstruct.py``).

Figures and scores go to ``--out`` (default ``outputs/tour``).

    python examples/tour.py
"""
import argparse
import runpy
import sys
import time
from pathlib import Path

import torch

import pyro
import pyro.distributions as dist
from pyro.infer import MCMC

from pyro_langevin import MALA, ULA, to_inference_data
from pyro_langevin.arviz_io import summary

HERE = Path(__file__).parent


def model(x, y=None):
    """Bayesian linear regression with an unknown noise scale (a constrained site)."""
    w = pyro.sample("w", dist.Normal(torch.zeros(x.shape[1], dtype=x.dtype), 1.0).to_event(1))
    sigma = pyro.sample("sigma", dist.HalfNormal(torch.tensor(1.0, dtype=x.dtype)))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Normal((x * w).sum(-1), sigma), obs=y)


def sample_a_model(args):
    from sklearn.datasets import load_diabetes

    data = load_diabetes()
    x = torch.as_tensor(data.data[:, :4], dtype=torch.float64)
    x = (x - x.mean(0)) / x.std(0)
    y = torch.as_tensor(data.target, dtype=torch.float64)
    y = (y - y.mean()) / y.std()
    for name, kernel in [
        ("ULA, self-tuned step size", ULA(model=model, vectorized_chains=4, adapt_step_size=True,
                                          adapt_mass_matrix=True, thinning=5)),
        ("MALA", MALA(model=model, vectorized_chains=4, adapt_mass_matrix=True, thinning=5)),
    ]:
        mcmc = MCMC(kernel, num_samples=400, warmup_steps=300, disable_progbar=not args.progress)
        t0 = time.perf_counter()
        mcmc.run(x, y)
        print(f"\n--- {name}: 4 vectorized chains, {time.perf_counter() - t0:.1f} s, "
              f"step size {kernel.step_size:.3g}")
        print(summary(to_inference_data(mcmc)).to_string())


def run_example(script, argv):
    saved = sys.argv
    sys.argv = [str(script)] + argv
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = saved


def main(args):
    out = Path(args.out)
    pyro.set_rng_seed(args.seed)
    torch.set_num_threads(1)
    start = time.perf_counter()
    print("== 1/3  Sampling a Pyro model with MCMC(ULA(...)) and MCMC(MALA(...)), ArviZ summaries")
    sample_a_model(args)
    print(f"\n[{time.perf_counter() - start:.0f} s] == 2/3  Training a digits energy by contrastive divergence")
    run_example(HERE / "ebm_digits.py", ["--out", str(out / "ebm_digits"), "--iterations", str(args.ebm_iterations)])
    print(f"\n[{time.perf_counter() - start:.0f} s] == 3/3  Reconstructing corrupted digits with an energy prior")
    run_example(HERE / "reconstruct.py", ["--out", str(out / "reconstruct")] + args.reconstruct_args)
    print(f"\n[{time.perf_counter() - start:.0f} s] done; figures and scores in {out}/")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="outputs/tour")
    parser.add_argument("--ebm-iterations", type=int, default=2000)
    parser.add_argument("--reconstruct-args", nargs=argparse.REMAINDER, default=[],
                        help="further arguments for examples/reconstruct.py")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress", action="store_true", help="Pyro's progress bars in part 1")
    main(parser.parse_args())
