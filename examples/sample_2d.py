"""Sample a correlated 2-D Gaussian with ULA and MALA under Pyro's MCMC and print
the summaries, next to the exact moments (ULA's own, biased, and the target's).

    python examples/sample_2d.py --step-size 0.1 --num-samples 2000
"""
import argparse

import torch
from pyro.infer import MCMC

import pyro
from pyro_langevin import MALA, ULA


def main(args):
    pyro.set_rng_seed(args.seed)
    cov = torch.tensor([[1.0, 0.8], [0.8, 1.0]], dtype=torch.float64)
    precision = torch.linalg.inv(cov)

    def potential(params):  # U(x) = x^T Sigma^{-1} x / 2
        x = params["x"]
        return 0.5 * (x @ precision * x).sum(-1)

    h = args.step_size
    ula_cov = cov @ torch.linalg.inv(torch.eye(2, dtype=torch.float64) - h / 2 * precision)
    init = {"x": torch.zeros(2, dtype=torch.float64)}
    for name, kernel in [("ULA", ULA(potential_fn=potential, step_size=h)), ("MALA", MALA(potential_fn=potential))]:
        mcmc = MCMC(kernel, num_samples=args.num_samples, warmup_steps=args.warmup_steps, initial_params=init,
                    disable_progbar=not args.progress)
        mcmc.run()
        print(f"\n=== {name} (step size {kernel.step_size:.3f})")
        mcmc.summary()
        x = mcmc.get_samples()["x"]
        print("sample covariance:\n", torch.cov(x.T).numpy().round(3))
    print("\ntarget covariance:\n", cov.numpy().round(3))
    print(f"ULA stationary covariance at h={h}, Sigma (I - h Sigma^-1 / 2)^-1:\n", ula_cov.numpy().round(3))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--step-size", type=float, default=0.1)
    parser.add_argument("--num-samples", type=int, default=2000)
    parser.add_argument("--warmup-steps", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress", action="store_true")
    main(parser.parse_args())
