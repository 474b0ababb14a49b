r"""
Per-iteration overhead of the ULA kernel against a raw torch loop (issue 2, "Speed").

Median microseconds per Langevin step, one torch thread, in one process:

(a) a raw torch loop doing the same update
    :math:`x' = x - h\nabla U(x) + \sqrt{2h}\,z` with ``torch.autograd.grad``
    (one gradient per step, no checks, no storage);
(b) ``kernel.sample`` called in a loop;
(c) ``MCMC(ULA(...), disable_progbar=True).run()``, all included (setup, Pyro's
    logging hook, sample storage, the final stacking).

on the 2-D and the 100-D diagonal Gaussians with sds ``linspace(0.1, 1, D)``, with
``thinning=1`` and ``thinning=k`` (k Langevin steps per returned sample; times are
always per Langevin step). Ratios are taken within one run; the methods are
interleaved in every repeat so that load from other processes hits them alike.
Target: (b) <= 1.15 x (a), (c) <= 1.5 x (a).

    python benchmarks/kernel_overhead.py                 # ~1 minute
    python benchmarks/kernel_overhead.py --steps 500 --repeats 3 --no-write
    python benchmarks/kernel_overhead.py --profile       # cProfile of (c), 2-D
"""
import argparse
import math
import statistics
import time

import torch
from pyro.infer import MCMC

from pyro_langevin import ULA

try:  # run as a script (python benchmarks/kernel_overhead.py) or as a module
    from _results import markdown_table, one_thread, write_section
    from targets import gaussian
except ImportError:  # pragma: no cover
    from benchmarks._results import markdown_table, one_thread, write_section
    from benchmarks.targets import gaussian


def raw_loop(potential, x0: torch.Tensor, step_size: float, num_steps: int) -> torch.Tensor:
    """(a): the ULA update written by hand."""
    scale = math.sqrt(2.0 * step_size)
    x = x0
    for _ in range(num_steps):
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(potential(x), x)
        x = x.detach() - step_size * grad + scale * torch.randn_like(x)
    return x


def kernel_loop(target, step_size: float, num_steps: int, thinning: int):
    """(b): ``kernel.sample`` in a loop, ``num_steps`` Langevin steps in all."""
    kernel = ULA(potential_fn=target.potential_fn, step_size=step_size, thinning=thinning)
    kernel.initial_params = target.initial_params()
    kernel.setup(warmup_steps=0)
    params = kernel.initial_params
    t0 = time.perf_counter()
    for _ in range(num_steps // thinning):
        params = kernel.sample(params)
    return time.perf_counter() - t0


def mcmc_run(target, step_size: float, num_steps: int, thinning: int):
    """(c): ``MCMC(ULA)`` with the progress bar off, ``num_steps`` Langevin steps in all."""
    kernel = ULA(potential_fn=target.potential_fn, step_size=step_size, thinning=thinning)
    mcmc = MCMC(kernel, num_samples=num_steps // thinning, warmup_steps=0,
                initial_params=target.initial_params(), disable_progbar=True)
    t0 = time.perf_counter()
    mcmc.run()
    return time.perf_counter() - t0


def measure(target, step_size, num_steps, thinnings, repeats):
    """Microseconds per Langevin step of every method, interleaved per repeat: the median
    over repeats of each method, and the median over repeats of its ratio to the raw
    loop of the same repeat (robust to load that comes and goes)."""
    x0 = target.initial_params()["x"]
    methods = {"raw": lambda: _timed(raw_loop, target.potential, x0, step_size, num_steps)}
    for k in thinnings:
        methods[f"sample/{k}"] = lambda k=k: kernel_loop(target, step_size, num_steps, k)
        methods[f"mcmc/{k}"] = lambda k=k: mcmc_run(target, step_size, num_steps, k)
    times = {name: [] for name in methods}
    for name, fn in methods.items():  # warm up once (first autograd call, imports)
        fn()
    for _ in range(repeats):
        for name, fn in methods.items():
            times[name].append(fn() / num_steps * 1e6)
    median = {name: statistics.median(t) for name, t in times.items()}
    ratio = {name: statistics.median(a / b for a, b in zip(t, times["raw"])) for name, t in times.items()}
    return median, ratio


def _timed(fn, *args):
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def profile(step_size, num_steps):
    import cProfile
    import pstats

    target = gaussian(2)
    with cProfile.Profile() as prof:
        mcmc_run(target, step_size, num_steps, 1)
    pstats.Stats(prof).sort_stats("tottime").print_stats(30)


def main(args):
    one_thread()
    if args.profile:
        return profile(args.step_size, args.steps)
    torch.manual_seed(0)
    rows = []
    for dim in args.dims:
        target = gaussian(dim)
        t, r = measure(target, args.step_size, args.steps, [1, args.thinning], args.repeats)
        for k in [1, args.thinning]:
            b, c = f"sample/{k}", f"mcmc/{k}"
            rows.append([f"{dim}-D", k, f"{t['raw']:.1f}", f"{t[b]:.1f}", f"{r[b]:.2f}", f"{t[c]:.1f}", f"{r[c]:.2f}"])
    header = ["target", "thinning", "(a) raw loop µs/step", "(b) kernel.sample µs/step", "(b)/(a)",
              "(c) MCMC(ULA) µs/step", "(c)/(a)"]
    table = markdown_table(header, rows)
    print(table)
    if args.write:
        body = (
            "Median µs per Langevin step and median per-repeat ratio (float64, one thread, "
            f"{args.steps} steps x {args.repeats} repeats, methods interleaved; "
            f"step size {args.step_size}). Targets: (b)/(a) <= 1.15, (c)/(a) <= 1.5.\n\n" + table
        )
        write_section("kernel_overhead", body)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 100])
    parser.add_argument("--steps", type=int, default=2000, help="Langevin steps per timing")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--thinning", type=int, default=10)
    parser.add_argument("--step-size", type=float, default=0.005)
    parser.add_argument("--profile", action="store_true", help="cProfile MCMC(ULA) on the 2-D target")
    parser.add_argument("--no-write", dest="write", action="store_false", help="do not touch RESULTS.md")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
