r"""
Per-iteration overhead of the ULA kernel against a raw torch loop (issue 2, "Speed").

Median microseconds per Langevin step, one torch thread, float64, in one process:

(a) a raw torch loop doing the same update
    :math:`x' = x - h\nabla U(x) + \sqrt{2h}\,z` with ``torch.autograd.grad``
    (one gradient per step, no checks, no storage);
(b) ``kernel.sample`` called in a loop;
(c) ``MCMC(ULA(...), disable_progbar=True).run()``, all included (setup, Pyro's
    logging hook, sample storage, the final stacking);

on the 2-D and the 100-D diagonal Gaussians with sds ``linspace(0.1, 1, D)``, with
``thinning=1`` and ``thinning=k`` (k Langevin steps per returned sample; times are
always per Langevin step). Time is the thread's CPU time (``--clock cpu``, the
default: the machine is shared, and wall-clock time counts the time other processes
hold the core) or wall-clock time (``--clock wall``). Methods are interleaved in every repeat, so that load
from other processes hits them alike; ratios are medians of per-repeat ratios.
Target: (b) <= 1.15 x (a), (c) <= 1.5 x (a).

A second table splits one draw (``thinning=1``) into its parts, each the difference
of two loops that run everything before it: the raw step, what ``kernel.move`` adds
(finiteness check, cached state, the dict that ``potential_fn`` takes), what
``kernel.sample`` adds (bookkeeping), Pyro's logging hook (``json.dumps(kernel.logging())``
then ``logger.info``, whose handler parses the JSON again for the disabled progress
bar), Pyro's sample storage (``torch.cat`` per draw, ``torch.stack`` at the end), and
the rest of ``MCMC`` (its generator and loop).

    python benchmarks/kernel_overhead.py                 # ~2 minutes
    python benchmarks/kernel_overhead.py --steps 500 --repeats 3 --no-write
    python benchmarks/kernel_overhead.py --profile       # cProfile of (c), 2-D
"""
import argparse
import logging
import statistics
import time

import torch
from pyro.infer import MCMC
from pyro.infer.mcmc.api import _add_logging_hook  # private: the hook MCMC installs
from pyro.infer.mcmc.logger import ProgressBar, initialize_logger

from pyro_langevin import ULA

try:  # run as a script (python benchmarks/kernel_overhead.py) or as a module
    from _results import markdown_table, one_thread, raw_ula_loop, write_section
    from targets import gaussian
except ImportError:  # pragma: no cover
    from benchmarks._results import markdown_table, one_thread, raw_ula_loop, write_section
    from benchmarks.targets import gaussian


CLOCKS = {"cpu": time.thread_time, "wall": time.perf_counter}
CLOCK = CLOCKS["cpu"]  # set by --clock




def make_kernel(target, step_size: float, thinning: int = 1, **kwargs) -> ULA:
    kernel = ULA(potential_fn=target.potential_fn, step_size=step_size, thinning=thinning, **kwargs)
    kernel.initial_params = target.initial_params()
    kernel.setup(warmup_steps=0)
    return kernel


def move_loop(target, step_size: float, num_steps: int) -> float:
    """``kernel.move`` in a loop (part of (b))."""
    kernel = make_kernel(target, step_size)
    state = kernel._state
    t0 = CLOCK()
    for _ in range(num_steps):
        state, _ = kernel.move(state)
    return CLOCK() - t0


def sample_loop(target, step_size: float, num_steps: int, thinning: int, **kwargs) -> float:
    """(b): ``kernel.sample`` in a loop, ``num_steps`` Langevin steps in all."""
    kernel = make_kernel(target, step_size, thinning, **kwargs)
    params = kernel.initial_params
    t0 = CLOCK()
    for _ in range(num_steps // thinning):
        params = kernel.sample(params)
    return CLOCK() - t0


def mcmc_run(target, step_size: float, num_steps: int, thinning: int, **kwargs) -> float:
    """(c): ``MCMC(ULA)`` with the progress bar off, ``num_steps`` Langevin steps in all."""
    kernel = ULA(potential_fn=target.potential_fn, step_size=step_size, thinning=thinning, **kwargs)
    mcmc = MCMC(kernel, num_samples=num_steps // thinning, warmup_steps=0,
                initial_params=target.initial_params(), disable_progbar=True)
    t0 = CLOCK()
    mcmc.run()
    return CLOCK() - t0


def pyro_loop(target, step_size: float, num_draws: int, hook: bool, storage: bool) -> float:
    """``kernel.sample`` in a loop followed, per draw, by what ``MCMC`` does with the
    draw: its logging hook, set up as ``MCMC`` sets it up (progress bar off), and its
    storage (one ``torch.cat`` of the flattened sites per draw, one ``torch.stack`` at
    the end)."""
    kernel = make_kernel(target, step_size)
    progress_bar = ProgressBar(0, num_draws, disable=True)
    logger = initialize_logger(logging.getLogger("pyro.infer.mcmc"), "", progress_bar)
    log = _add_logging_hook(logger, progress_bar)
    params, acc = kernel.initial_params, []
    t0 = CLOCK()
    for i in range(num_draws):
        params = kernel.sample(params)
        if hook:
            log(kernel, params, "Sample", i)
        if storage:
            acc.append(torch.cat([params[name].reshape(-1) for name in sorted(params)]))
    if storage:
        torch.stack(acc)
    seconds = CLOCK() - t0
    progress_bar.close()
    return seconds


def measure(methods, num_steps, repeats):
    """Microseconds per step of every method, interleaved per repeat: the median over
    repeats of each, and the median of its per-repeat ratio to ``"raw"``."""
    times = {name: [] for name in methods}
    for fn in methods.values():  # warm up once (first autograd call, imports)
        fn()
    for _ in range(repeats):
        for name, fn in methods.items():
            times[name].append(fn() / num_steps * 1e6)
    median = {name: statistics.median(t) for name, t in times.items()}
    ratio = {name: statistics.median(a / b for a, b in zip(t, times["raw"])) for name, t in times.items()}
    return median, ratio


def supports_jit() -> bool:
    try:
        ULA(potential_fn=lambda p: p, jit_compile=True)
    except TypeError:
        return False
    return True


def profile(step_size, num_steps):
    import cProfile
    import pstats

    target = gaussian(2)
    with cProfile.Profile() as prof:
        mcmc_run(target, step_size, num_steps, 1)
    pstats.Stats(prof).sort_stats("tottime").print_stats(30)


def main(args):
    global CLOCK
    one_thread()
    CLOCK = CLOCKS[args.clock]
    if args.profile:
        return profile(args.step_size, args.steps)
    torch.manual_seed(0)
    jit = args.jit and supports_jit()
    rows, parts = [], []
    n, h, k = args.steps, args.step_size, args.thinning
    for dim in args.dims:
        T = gaussian(dim)
        x0 = T.initial_params()["x"]
        methods = {
            "raw": lambda: _timed(raw_ula_loop, T.potential, x0, h, n),
            "move": lambda: move_loop(T, h, n),
            "+hook": lambda: pyro_loop(T, h, n, hook=True, storage=False),
            "+hook+storage": lambda: pyro_loop(T, h, n, hook=True, storage=True),
        }
        variants = [(1, {}), (k, {})] + ([(k, {"jit_compile": True})] if jit else [])
        for thin, kw in variants:
            tag = f"{thin}{' jit' if kw else ''}"
            methods[f"sample/{tag}"] = lambda thin=thin, kw=kw: sample_loop(T, h, n, thin, **kw)
            methods[f"mcmc/{tag}"] = lambda thin=thin, kw=kw: mcmc_run(T, h, n, thin, **kw)
        t, r = measure(methods, n, args.repeats)
        for thin, kw in variants:
            tag = f"{thin}{' jit' if kw else ''}"
            b, c = f"sample/{tag}", f"mcmc/{tag}"
            rows.append([f"{dim}-D", thin, "yes" if kw else "no", f"{t['raw']:.1f}", f"{t[b]:.1f}",
                         f"{r[b]:.2f}", f"{t[c]:.1f}", f"{r[c]:.2f}"])
        b, hk, st, c = t["sample/1"], t["+hook"], t["+hook+storage"], t["mcmc/1"]
        parts.append([f"{dim}-D", f"{t['raw']:.1f}", f"{t['move'] - t['raw']:.1f}", f"{b - t['move']:.1f}",
                      f"{hk - b:.1f}", f"{st - hk:.1f}", f"{c - st:.1f}", f"{c:.1f}"])
        print(f"{dim}-D done", flush=True)
    header = ["target", "thinning", "jit_compile", "(a) raw loop µs/step", "(b) kernel.sample µs/step", "(b)/(a)",
              "(c) MCMC(ULA) µs/step", "(c)/(a)"]
    table = markdown_table(header, rows)
    parts_header = ["target", "raw step", "+ kernel.move", "+ kernel.sample", "+ Pyro logging hook",
                    "+ Pyro storage", "+ rest of MCMC", "= (c) at thinning 1"]
    parts_table = markdown_table(parts_header, parts)
    print(table, parts_table, sep="\n\n")
    if args.write:
        body = (
            f"Median µs ({args.clock} time) per Langevin step and median per-repeat ratio to (a) (float64, one thread, "
            f"{n} steps x {args.repeats} repeats, methods interleaved; step size {h}). "
            "Targets: (b)/(a) <= 1.15, (c)/(a) <= 1.5.\n\n" + table
            + "\n\nWhere the time of one draw goes at thinning 1 (µs, medians; each part is the difference "
            "between two loops that run everything before it, so that it is timed in place: Pyro's hook alone, "
            "in a tight loop, takes ~13 µs, but interleaved with sampling it slows the sampling code down too):"
            "\n\n" + parts_table
        )
        write_section("kernel_overhead", body)


def _timed(fn, *args):
    t0 = CLOCK()
    fn(*args)
    return CLOCK() - t0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 100])
    parser.add_argument("--steps", type=int, default=1000, help="Langevin steps per timing")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--thinning", type=int, default=10)
    parser.add_argument("--step-size", type=float, default=0.005)
    parser.add_argument("--no-jit", dest="jit", action="store_false", help="skip the jit_compile=True rows")
    parser.add_argument("--profile", action="store_true", help="cProfile MCMC(ULA) on the 2-D target")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu",
                        help="CPU time of this process (default) or wall-clock time")
    parser.add_argument("--no-write", dest="write", action="store_false", help="do not touch RESULTS.md")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
