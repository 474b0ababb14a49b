r"""
Effective samples per second of single-chain MALA, self-tuned ULA and Pyro's NUTS
(issue 3, "Speed"), on

- **T1**: the 100-D Gaussian with sds ``linspace(0.1, 1, 100)``;
- **T3**: Bayesian logistic regression on scikit-learn's breast-cancer data
  (standardised, plus intercept, ``N(0, I)`` prior; ``D = 31``).

All samplers get the same ``potential_fn`` (see ``targets.py``), the same initial
point, one torch thread, float64. Time is that of ``MCMC.run()``, warmup included,
measured as the process's CPU time (``--clock cpu``, the default: this machine is
shared, and wall-clock time there counts the time other processes hold the core;
with one thread and nothing else running the two agree) or wall-clock
(``--clock wall``). ESS is ArviZ's bulk ESS (rank-normalised, split chains) per dimension;
the table gives its minimum and median over dimensions, and ESS/s for both.
Repeats (different seeds) are interleaved: MALA, ULA, NUTS, MALA, ...; the table
gives medians over repeats, and the ``min ESS/s / NUTS`` ratio is the median of the
per-repeat ratios.

Samplers:

- ``MALA``: ``MALA(adapt_step_size=True, adapt_mass_matrix=True)`` (diagonal
  preconditioner), ``thinning`` Langevin steps per draw.
- ``MALA jit``: the same with ``jit_compile=True`` (``thinning`` steps per
  ``torch.compile`` d call after warmup; the same chain as ``MALA`` for the same seed).
  Compilation happens once per process and shape: a first, untimed run compiles,
  and its time is reported beside the table.
- ``MALA dense`` (T3 only, with ``--samplers ... "MALA dense"``): ``full_mass=True``.
- ``ULA``: ``ULA(adapt_step_size=True, adapt_mass_matrix=True)``, the self-tuned
  ULA (shadow acceptance target 0.9, the default).
- ``NUTS``: ``NUTS(adapt_step_size=True, adapt_mass_matrix=True)`` (diagonal).

Bias (all samplers, so that MALA and NUTS show the Monte Carlo noise floor):
``mean``/``max rel. var error`` are the mean (signed) and maximum over dimensions of
:math:`\hat v_i / v_i - 1`, against the exact variances (T1) or a reference run
(T3: vectorized MALA with a dense preconditioner, 64 chains, in the same process;
its own ESS is printed). For ULA on T1 the exact stationary variances of the
adapted kernel, :math:`\sigma_i^2 / (1 - h m_i / (2\sigma_i^2))`, give the
predicted bias.

    python benchmarks/ess_vs_nuts.py                      # ~3 CPU minutes (about twice that in wall time on a busy machine)
    python benchmarks/ess_vs_nuts.py --samplers MALA "MALA dense" NUTS --targets T3
    python benchmarks/ess_vs_nuts.py --repeats 1 --targets T1 --no-write
"""
import argparse
import statistics
import time

import numpy as np
import torch
from pyro.infer import MCMC, NUTS

from pyro_langevin import MALA, ULA

try:
    from _results import markdown_table, one_thread, write_section
    from targets import SITE, gaussian, logistic_regression, ulas_gaussian_variance
except ImportError:  # pragma: no cover
    from benchmarks._results import markdown_table, one_thread, write_section
    from benchmarks.targets import SITE, gaussian, logistic_regression, ulas_gaussian_variance


def bulk_ess(samples: torch.Tensor) -> np.ndarray:
    """ArviZ bulk ESS per dimension of ``samples`` ``[chains, draws, D]``."""
    import arviz as az

    data = az.convert_to_dataset({SITE: samples.detach().cpu().numpy()})
    return np.asarray(az.ess(data, method="bulk")[SITE].values)


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def run(kernel, warmup_draws: int, num_draws: int, initial_params, seed: int, clock=time.process_time):
    """Run ``MCMC``; return samples ``[chains, draws, D]`` and the seconds ``clock`` counted."""
    torch.manual_seed(seed)
    mcmc = MCMC(kernel, num_samples=num_draws, warmup_steps=warmup_draws, initial_params=initial_params,
                disable_progbar=True)
    t0 = clock()
    mcmc.run()
    seconds = clock() - t0
    x = mcmc.get_samples()[SITE]  # [draws, D], or [draws, C, D] for vectorized chains
    x = x.unsqueeze(0) if x.dim() == 2 else x.transpose(0, 1)
    return x, seconds


def var_errors(samples: torch.Tensor, var: torch.Tensor):
    """Mean and max over dimensions of the relative error of the marginal variances."""
    rel = samples.reshape(-1, samples.shape[-1]).var(0) / var - 1.0
    return float(rel.mean()), float(rel.abs().max())


def samplers(args, name):
    """``{label: (make_kernel, warmup_draws, num_draws, settings)}`` for target ``name``."""
    k = args.thinning
    warmup = args.warmup_t1 if name == "T1" else args.warmup_t3
    lang = lambda: (warmup // k, args.langevin_steps // k, f"{warmup}+{args.langevin_steps} steps, thinning {k}")
    out = {
        "MALA": (lambda T: MALA(potential_fn=T.potential_fn, adapt_mass_matrix=True, thinning=k),) + lang(),
        "MALA jit": (lambda T: MALA(potential_fn=T.potential_fn, adapt_mass_matrix=True, thinning=k,
                                    jit_compile=True),) + lang(),
        "MALA dense": (lambda T: MALA(potential_fn=T.potential_fn, adapt_mass_matrix=True, full_mass=True,
                                      thinning=k),) + lang(),
        "ULA": (lambda T: ULA(potential_fn=T.potential_fn, adapt_step_size=True, adapt_mass_matrix=True,
                              thinning=k),) + lang(),
        "NUTS": (lambda T: NUTS(potential_fn=T.potential_fn, adapt_mass_matrix=True), args.nuts_warmup,
                 args.nuts_draws, f"{args.nuts_warmup}+{args.nuts_draws} iterations"),
    }
    wanted = [s for s in args.samplers if s != "MALA dense" or name == "T3"]
    return {s: out[s] for s in wanted}


def reference_variances(T, args):
    """T3's marginal variances from vectorized dense MALA (64 chains); also its min ESS,
    its seconds, and the condition number of the posterior correlation matrix (what a
    diagonal preconditioner leaves)."""
    C = args.reference_chains
    torch.manual_seed(12345)
    init = T.initial_params(C, scale=1.0)
    kernel = MALA(potential_fn=T.potential_fn, adapt_mass_matrix=True, full_mass=True, vectorized_chains=C,
                  thinning=args.thinning)
    x, seconds = run(kernel, 1000 // args.thinning, args.reference_steps // args.thinning, init, 12345,
                     CLOCKS[args.clock])
    flat = x.reshape(-1, T.dim)
    eig = torch.linalg.eigvalsh(torch.corrcoef(flat.T))
    return flat.var(0), float(bulk_ess(x).min()), seconds, float(eig[-1] / eig[0])


def main(args):
    one_thread()
    rows, notes = [], []
    for name in args.targets:
        T = gaussian(100) if name == "T1" else logistic_regression()
        torch.manual_seed(0)
        # T1: an overdispersed start (N(0, I) against sds 0.1..1); T3: the prior mean
        init = T.initial_params(scale=1.0 if name == "T1" else 0.0)
        note = ""
        if name == "T1":
            var = T.var
        else:
            var, ref_ess, ref_s, cond = reference_variances(T, args)
            note = (f"T3 reference variances: {args.reference_chains} chains of dense MALA, "
                    f"{args.reference_steps} steps each, min bulk ESS {ref_ess:.0f}, {ref_s:.0f} s. "
                    f"T3's posterior correlation matrix (from the reference draws) has condition number {cond:.0f}: "
                    "a diagonal preconditioner leaves it, and MALA's mixing time grows like the condition "
                    "number (NUTS's like its square root).")
            print(f"{name} reference: min ESS {ref_ess:.0f} in {ref_s:.1f} s", flush=True)
        conf = samplers(args, name)
        if "MALA jit" in conf:  # compile once, untimed (the compiled code is cached per process and shape)
            make, warm, draws, _ = conf["MALA jit"]
            t0 = time.perf_counter()
            run(make(T), warm, draws, init, seed=-1)
            notes.append(f"{name}: the untimed first `MALA jit` run, compilation included, took "
                         f"{time.perf_counter() - t0:.0f} s wall-clock.")
        res = {s: [] for s in conf}
        for r in range(args.repeats):
            for s, (make, warm, draws, _) in conf.items():
                kernel = make(T)
                x, seconds = run(kernel, warm, draws, init, seed=r, clock=CLOCKS[args.clock])
                ess = bulk_ess(x)
                mean_err, max_err = var_errors(x, var)
                h = getattr(kernel, "step_size", float("nan"))
                pred = float("nan")
                if s == "ULA" and name == "T1":
                    m = kernel.preconditioner.matrix if kernel.preconditioner is not None else None
                    pred = float((ulas_gaussian_variance(T, h, m) / var - 1).abs().max())
                res[s].append(dict(seconds=seconds, ess_min=float(ess.min()), ess_med=float(np.median(ess)),
                                   mean_err=mean_err, max_err=max_err, pred=pred, h=h))
                print(f"{name} {s:10s} repeat {r}: {seconds:6.1f} s  min ESS {ess.min():7.1f}  "
                      f"min ESS/s {ess.min() / seconds:7.1f}  var err mean {mean_err:+.3f} max {max_err:.3f}",
                      flush=True)
        nuts = [d["ess_min"] / d["seconds"] for d in res.get("NUTS", [])]
        for s, (_, _, _, settings) in conf.items():
            ds = res[s]
            med = lambda key: statistics.median(d[key] for d in ds)
            per_s = [d["ess_min"] / d["seconds"] for d in ds]
            ratio = f"{statistics.median(a / b for a, b in zip(per_s, nuts)):.2f}" if nuts else "-"
            pred = f"{med('pred'):.3f}" if s == "ULA" and name == "T1" else "-"
            rows.append([name, s, settings, f"{med('seconds'):.1f}", f"{med('ess_min'):.0f}", f"{med('ess_med'):.0f}",
                         f"{statistics.median(per_s):.1f}",
                         f"{statistics.median(d['ess_med'] / d['seconds'] for d in ds):.1f}", ratio,
                         f"{med('mean_err'):+.3f}", f"{med('max_err'):.3f}", pred, f"{med('h'):.3g}"])
        notes.append(note)
    header = ["target", "sampler", "warmup+sampling", f"{args.clock} time s", "ESS min", "ESS median", "min ESS/s",
              "median ESS/s", "min ESS/s ÷ NUTS", "mean rel. var error", "max rel. var error",
              "ULA predicted max error", "step size"]
    table = markdown_table(header, rows)
    print(table)
    if args.write:
        body = (
            f"Single chain each, float64, one thread; {args.clock} time of `MCMC.run()`, warmup included; "
            "bulk ESS (ArviZ). "
            f"Medians over {args.repeats} interleaved repeats; `min ESS/s ÷ NUTS` is the median of per-repeat "
            "ratios (target for MALA: >= 3). Variance errors are against the exact variances (T1) or a "
            "vectorized dense-MALA reference (T3); MALA's and NUTS's show the Monte Carlo noise floor, "
            "ULA's on T1 also the exact prediction for its adapted step size and preconditioner.\n\n" + table
            + "\n\n" + " ".join(n for n in notes if n)
        )
        write_section("ess_vs_nuts", body)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", nargs="+", default=["T1", "T3"], choices=["T1", "T3"])
    parser.add_argument("--samplers", nargs="+", default=["MALA", "MALA jit", "ULA", "NUTS"],
                        choices=["MALA", "MALA jit", "MALA dense", "ULA", "NUTS"])
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu",
                        help="process CPU time (default) or wall-clock time")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--thinning", type=int, default=10, help="Langevin steps per draw (MALA, ULA)")
    parser.add_argument("--warmup-t1", type=int, default=2000, help="Langevin warmup steps on T1")
    parser.add_argument("--warmup-t3", type=int, default=2000, help="Langevin warmup steps on T3")
    parser.add_argument("--langevin-steps", type=int, default=20000, help="Langevin steps after warmup")
    parser.add_argument("--nuts-warmup", type=int, default=500)
    parser.add_argument("--nuts-draws", type=int, default=1000)
    parser.add_argument("--reference-chains", type=int, default=64)
    parser.add_argument("--reference-steps", type=int, default=10000)
    parser.add_argument("--no-write", dest="write", action="store_false", help="do not touch RESULTS.md")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
