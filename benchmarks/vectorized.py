r"""
Vectorized chains (issue 4, "Speed"), one torch thread, float64, in one run.

**Throughput.** Chain-steps per second (``C`` x Langevin steps / s) of

- ``raw``: a batched torch loop doing the same ULA update
  :math:`x' = x - h\nabla U(x) + \sqrt{2h}\,z` on ``[C, D]`` with one
  ``torch.autograd.grad`` per step, storing nothing;
- ``MCMC``: ``MCMC(ULA(potential_fn, vectorized_chains=C, thinning=k))`` with the
  progress bar off, for ``k = 1`` and ``k = --thinning`` (Pyro stores every returned
  draw: one ``torch.cat`` per draw, one ``torch.stack`` at the end);
- ``StreamingMCMC``: the same kernel under Pyro's ``StreamingMCMC``, which keeps
  running means and variances instead of the draws;

for ``C`` in {1, 100, 1000} on T1 (100-D Gaussian) and T3 (logistic regression,
``D = 31``). Time is the process's CPU time (``--clock cpu``, the default: the
machine is shared, and wall-clock time counts the time other processes hold the
core) or wall-clock time (``--clock wall``). Methods are interleaved in every repeat; the table gives medians and
the median per-repeat ratio to ``raw``. Target: >= 0.8 x raw at ``C = 1000``.

**ESS per second.** Vectorized MALA (``C = 64``, diagonal preconditioner; on T3
also dense) against single-chain NUTS: bulk ESS computed across the ``C`` chains,
time including warmup. Target: >= 20 x NUTS's minimum ESS/s.

    python benchmarks/vectorized.py                  # ~5 minutes
    python benchmarks/vectorized.py --chains 1 100 --repeats 3 --skip-ess --no-write
"""
import argparse
import statistics
import time

import numpy as np
import torch
from pyro.infer import MCMC, NUTS
from pyro.infer.mcmc.api import StreamingMCMC

from pyro_langevin import MALA, ULA

try:
    from _results import markdown_table, one_thread, raw_ula_loop, write_section
    from ess_vs_nuts import bulk_ess, run
    from targets import gaussian, logistic_regression
except ImportError:  # pragma: no cover
    from benchmarks._results import markdown_table, one_thread, raw_ula_loop, write_section
    from benchmarks.ess_vs_nuts import bulk_ess, run
    from benchmarks.targets import gaussian, logistic_regression

STEP_SIZE = {"T1": 0.005, "T3": 0.005}
CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
CLOCK = CLOCKS["cpu"]  # set by --clock




def timed(fn, *args) -> float:
    t0 = CLOCK()
    fn(*args)
    return CLOCK() - t0


def mcmc_seconds(T, C, step_size, num_steps, thinning, streaming=False) -> float:
    kernel = ULA(potential_fn=T.potential_fn, step_size=step_size, vectorized_chains=C, thinning=thinning)
    cls = StreamingMCMC if streaming else MCMC
    mcmc = cls(kernel, num_samples=num_steps // thinning, warmup_steps=0, initial_params=T.initial_params(C),
               disable_progbar=True)
    return timed(mcmc.run)


def throughput(T, name, C, num_steps, thinning, repeats):
    """Chain-steps per second of every method (medians) and ratios to raw (median of
    per-repeat ratios)."""
    h = STEP_SIZE[name]
    x0 = T.initial_params(C)["x"]
    methods = {
        "raw": lambda: timed(raw_ula_loop, T.potential, x0, h, num_steps),
        "MCMC k=1": lambda: mcmc_seconds(T, C, h, num_steps, 1),
        f"MCMC k={thinning}": lambda: mcmc_seconds(T, C, h, num_steps, thinning),
        "StreamingMCMC k=1": lambda: mcmc_seconds(T, C, h, num_steps, 1, streaming=True),
        f"StreamingMCMC k={thinning}": lambda: mcmc_seconds(T, C, h, num_steps, thinning, streaming=True),
    }
    seconds = {m: [] for m in methods}
    for fn in methods.values():  # warm-up
        fn()
    for _ in range(repeats):
        for m, fn in methods.items():
            seconds[m].append(fn())
    rate = {m: statistics.median(C * num_steps / s for s in v) for m, v in seconds.items()}
    ratio = {m: statistics.median(r / s for s, r in zip(v, seconds["raw"])) for m, v in seconds.items()}
    return rate, ratio


def ess_rows(args):
    rows = []
    for name in args.targets:
        T = gaussian(100) if name == "T1" else logistic_regression()
        torch.manual_seed(0)
        C = args.ess_chains
        scale = 1.0  # chains start from N(0, I) draws, NUTS from the first of them
        init_c = T.initial_params(C, scale=scale)
        init_1 = {"x": init_c["x"][0].clone()} if name == "T1" else T.initial_params()
        k = args.thinning
        configs = {"NUTS (1 chain)": (lambda: NUTS(potential_fn=T.potential_fn, adapt_mass_matrix=True), 500, 1000,
                                      init_1, "500+1000 iterations")}
        for label, full in [("MALA diag", False)] + ([("MALA dense", True)] if name == "T3" else []):
            configs[f"{label} (C={C})"] = (
                lambda full=full: MALA(potential_fn=T.potential_fn, adapt_mass_matrix=True, full_mass=full,
                                       vectorized_chains=C, thinning=k),
                args.ess_warmup // k, args.ess_steps // k, init_c,
                f"{args.ess_warmup}+{args.ess_steps} steps, thinning {k}")
        res = {c: [] for c in configs}
        for r in range(args.ess_repeats):
            for c, (make, warm, draws, init, _) in configs.items():
                x, seconds = run(make(), warm, draws, init, seed=r, clock=CLOCK)
                ess = bulk_ess(x)
                res[c].append((seconds, float(ess.min()), float(np.median(ess))))
                print(f"{name} {c:18s} repeat {r}: {seconds:6.1f} s  min ESS {ess.min():8.0f}  "
                      f"min ESS/s {ess.min() / seconds:8.1f}", flush=True)
        nuts = [e / s for s, e, _ in res["NUTS (1 chain)"]]
        for c, (_, _, _, _, settings) in configs.items():
            per_s = [e / s for s, e, _ in res[c]]
            rows.append([name, c, settings, f"{statistics.median(s for s, _, _ in res[c]):.1f}",
                         f"{statistics.median(e for _, e, _ in res[c]):.0f}",
                         f"{statistics.median(per_s):.1f}",
                         f"{statistics.median(m / s for s, _, m in res[c]):.1f}",
                         f"{statistics.median(a / b for a, b in zip(per_s, nuts)):.1f}"])
    header = ["target", "sampler", "warmup+sampling", "time s", "ESS min", "min ESS/s", "median ESS/s",
              "min ESS/s ÷ NUTS"]
    return markdown_table(header, rows)


def main(args):
    global CLOCK
    one_thread()
    CLOCK = CLOCKS[args.clock]
    torch.manual_seed(0)
    rows = []
    for name in args.targets:
        T = gaussian(100) if name == "T1" else logistic_regression()
        for C in [] if args.skip_throughput else args.chains:
            steps = args.steps if C * T.dim * (569 if name == "T3" else 1) < 1e6 else args.steps_large
            rate, ratio = throughput(T, name, C, steps, args.thinning, args.repeats)
            print(name, C, {m: f"{r:.3g} ({ratio[m]:.2f})" for m, r in rate.items()}, flush=True)
            rows.append([name, C, steps] + [f"{rate[m]:.3g} ({ratio[m]:.2f})" for m in rate])
    header = ["target", "C", "steps", "raw loop", "MCMC thinning 1", f"MCMC thinning {args.thinning}",
              "StreamingMCMC thinning 1", f"StreamingMCMC thinning {args.thinning}"]
    table = markdown_table(header, rows) if rows else ""
    print(table)
    ess_table = "" if args.skip_ess else ess_rows(args)
    print(ess_table)
    if args.write:
        body = "" if not table else (
            f"### Throughput\n\nChain-steps per second (C x Langevin steps / s; in brackets the median per-repeat "
            f"ratio to the raw batched loop; target >= 0.8 at C = 1000), {args.clock} time, ULA with step size 0.005, float64, "
            f"one thread, medians of {args.repeats} interleaved repeats.\n\n" + table
        )
        if ess_table:
            body += (
                f"\n\n### ESS per second\n\nVectorized MALA (C = {args.ess_chains}, bulk ESS across the chains) "
                f"against single-chain NUTS; {args.clock} time including warmup; float64, one thread; "
                f"median of {args.ess_repeats} repeat(s). Target: >= 20 x NUTS's min ESS/s.\n\n" + ess_table
            )
        write_section("vectorized", body)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", nargs="+", default=["T1", "T3"], choices=["T1", "T3"])
    parser.add_argument("--chains", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument("--steps", type=int, default=500, help="Langevin steps per timing")
    parser.add_argument("--steps-large", type=int, default=100, help="steps per timing when C x D x N >= 1e6")
    parser.add_argument("--thinning", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-ess", action="store_true", help="only the throughput table")
    parser.add_argument("--skip-throughput", action="store_true", help="only the ESS table")
    parser.add_argument("--ess-chains", type=int, default=64)
    parser.add_argument("--ess-warmup", type=int, default=1000, help="Langevin warmup steps of vectorized MALA")
    parser.add_argument("--ess-steps", type=int, default=5000, help="Langevin steps after warmup")
    parser.add_argument("--ess-repeats", type=int, default=1)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu",
                        help="CPU time of this process (default) or wall-clock time")
    parser.add_argument("--no-write", dest="write", action="store_false", help="do not touch RESULTS.md")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
