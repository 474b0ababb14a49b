r"""
pyro-langevin next to its peers, in one run and one thread.

Implementations (each skipped with a line in the table when not installed; see
``benchmarks/requirements.txt``):

- ``raw torch``: a hand-written eager loop, ``x - h * grad + sqrt(2h) * z`` with
  ``torch.autograd.grad`` (the baseline for the eager kernel);
- ``ULA eager`` / ``ULA compiled``: ``MCMC(ULA(potential_fn=..., thinning=k,
  vectorized_chains=C, jit_compile=...))``; ``MALA eager`` / ``MALA compiled`` the same
  with MALA at the same fixed step size;
- ``BlackJAX sgld``: ``blackjax.sgld`` with the full-batch gradient (the same unadjusted
  update), and ``BlackJAX mala``, both jitted with ``lax.scan`` over the whole run and
  ``vmap`` over chains -- how BlackJAX is meant to be used;
- ``TorchEBM``: ``torchebm.samplers.LangevinDynamics`` (``noise_scale=1``, the same update);
- ``Pyro NUTS``: one chain, warmup included (a reference for ESS per second).

Targets (all float64): T1 the 100-D Gaussian with sds ``linspace(0.1, 1)``, T2 a 2-D
banana (:math:`x_1 \sim N(0, 2^2)`, :math:`x_2 \mid x_1 \sim N(b(x_1^2 - 4), 1)`,
:math:`b = 1/4`), T3 the breast-cancer logistic regression. Every implementation of an
unadjusted move uses the same step size ``h`` and starts every chain from the same
points (exact draws for T1/T2, the end of a burn-in run for T3).

Columns: ``steps/s`` is Langevin steps times chains per second (chain-samples per
second, every step counted, thinned or not); ``ESS/s`` the minimum over coordinates of
the bulk ESS (``pyro.ops.stats.effective_sample_size`` over the chains) of the kept
draws, per second; compile times are reported apart and not counted; for T1, ``var
ratio`` is the mean sample variance over ULA's exact stationary variance (1 for every
correct ULA/SGLD, which checks that the peers run the same update).

    python benchmarks/peers.py                      # everything, ~10 minutes
    python benchmarks/peers.py --targets T1 --chains 1 1000
"""
import argparse
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import torch  # noqa: E402
from pyro.infer import MCMC, NUTS  # noqa: E402
from pyro.ops.stats import effective_sample_size  # noqa: E402

import pyro  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from _results import markdown_table, one_thread, write_section  # noqa: E402
from targets import SITE, Target, gaussian, logistic_regression, ulas_gaussian_variance  # noqa: E402

from pyro_langevin import MALA, ULA  # noqa: E402

# Langevin steps per kept draw (so per compiled call, up to 32) and steps per run, by chain count:
# one chain thins by 100 (T1's slowest coordinate decorrelates in ~1/h = 200 steps), many by 10
THINNING = {1: 100, 100: 10, 1000: 10}
STEPS = {1: 40000, 100: 2000, 1000: 1000}
THIN = None  # set per chain count in main()


# ----------------------------------------------------------------------------- targets
def banana(b: float = 0.25, dtype=torch.float64) -> Target:
    """T2: x1 ~ N(0, 4), x2 | x1 ~ N(b (x1^2 - 4), 1); mean 0, var (4, 1 + 32 b^2)."""

    def potential(x):
        x1, x2 = x[..., 0], x[..., 1]
        return x1 * x1 / 8.0 + 0.5 * (x2 - b * (x1 * x1 - 4.0)) ** 2

    def model():  # not used here; Target wants one
        raise NotImplementedError

    var = torch.tensor([4.0, 1.0 + 32.0 * b * b], dtype=dtype)
    return Target("T2 banana 2-D", 2, potential, model, torch.zeros(2, dtype=dtype), var)


def step_size_for(name: str, target: Target) -> float:
    if name == "T1":
        return 0.005  # sd_min^2 / 2: stable, visibly biased only in the stiffest coordinates
    if name == "T2":
        return 0.02
    # T3: half the inverse of an upper bound of the Hessian's largest eigenvalue,
    # X^T diag(p(1-p)) X + I <= X^T X / 4 + I
    from targets import breast_cancer

    X, _ = breast_cancer()
    return 0.5 / float(torch.linalg.eigvalsh(X.T @ X / 4 + torch.eye(X.shape[1], dtype=X.dtype)).max())


def starting_points(name: str, target: Target, C: int, h: float) -> torch.Tensor:
    """``[C, D]``: exact draws (T1, T2) or the end of a 2,000-step ULA burn-in (T3)."""
    gen = torch.Generator().manual_seed(1234)
    if name == "T1":
        return torch.randn(C, target.dim, dtype=torch.float64, generator=gen) * target.var.sqrt()
    if name == "T2":
        x1 = 2.0 * torch.randn(C, dtype=torch.float64, generator=gen)
        x2 = 0.25 * (x1 * x1 - 4.0) + torch.randn(C, dtype=torch.float64, generator=gen)
        return torch.stack([x1, x2], -1)
    x = torch.zeros(C, target.dim, dtype=torch.float64)
    for _ in range(2000):
        x.requires_grad_(True)
        (g,) = torch.autograd.grad(target.potential(x).sum(), x)
        x = x.detach() - h * g + math.sqrt(2 * h) * torch.randn(x.shape, dtype=x.dtype, generator=gen)
    return x


# ----------------------------------------------------------------------------- runners
# each returns (seconds, compile_seconds or None, samples [C, S, D] float64 CPU)
def run_raw_torch(target, x0, h, steps):
    x = x0[0].clone() if x0.shape[0] == 1 else x0.clone()
    scale = math.sqrt(2 * h)
    kept = []
    t0 = time.process_time()
    for i in range(steps):
        x.requires_grad_(True)
        (g,) = torch.autograd.grad(target.potential(x).sum(), x)
        x = x.detach() - h * g + scale * torch.randn_like(x)
        if (i + 1) % THIN == 0:
            kept.append(x)
    seconds = time.process_time() - t0
    samples = torch.stack(kept, -2)  # [(C,) S, D]
    return seconds, None, samples.reshape(x0.shape[0], -1, x0.shape[1])


def run_ours(kernel_class, jit):
    def run(target, x0, h, steps):
        C = x0.shape[0]
        kwargs = dict(potential_fn=target.potential_fn, step_size=h, thinning=THIN, jit_compile=jit,
                      vectorized_chains=None if C == 1 else C)
        if kernel_class is MALA:
            kwargs["adapt_step_size"] = False
        kernel = kernel_class(**kwargs)
        init = {SITE: x0[0] if C == 1 else x0}
        compile_seconds = None
        if jit:  # compile on a short run of the same kernel, then time a run that reuses it
            t0 = time.process_time()
            MCMC(kernel, num_samples=2, warmup_steps=0, initial_params=init, disable_progbar=True).run()
            compile_seconds = time.process_time() - t0
        mcmc = MCMC(kernel, num_samples=steps // THIN, warmup_steps=0, initial_params=init, disable_progbar=True)
        t0 = time.process_time()
        mcmc.run()
        seconds = time.process_time() - t0
        x = mcmc.get_samples(group_by_chain=True)[SITE][0]  # [S, (C,) D]
        samples = x.unsqueeze(0) if C == 1 else x.transpose(0, 1)
        return seconds, compile_seconds, samples

    return run


def jax_logdensity(name, target):
    import jax.numpy as jnp

    if name == "T1":
        half_prec = jnp.asarray((0.5 / target.var).numpy())
        return lambda x: -jnp.dot(x * x, half_prec)
    if name == "T2":
        return lambda x: -(x[0] ** 2 / 8.0 + 0.5 * (x[1] - 0.25 * (x[0] ** 2 - 4.0)) ** 2)
    from targets import breast_cancer

    X, y = breast_cancer()
    X, y = jnp.asarray(X.numpy()), jnp.asarray(y.numpy())
    import jax

    return lambda b: -(jnp.sum(jax.nn.softplus(X @ b)) - jnp.dot(y, X @ b) + 0.5 * jnp.dot(b, b))


def run_blackjax(algorithm):
    def run(target, x0, h, steps, name):
        import blackjax
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_enable_x64", True)
        logdensity = jax_logdensity(name, target)
        draws = steps // THIN
        if algorithm == "sgld":
            sgld = blackjax.sgld(lambda x, _: jax.grad(logdensity)(x))

            def chain(key, x):
                def draw(x, key):
                    x, _ = jax.lax.scan(lambda x, k: (sgld.step(k, x, None, h), None), x, jax.random.split(key, THIN))
                    return x, x

                return jax.lax.scan(draw, x, jax.random.split(key, draws))[1]
        else:
            mala = blackjax.mala(logdensity, h)

            def chain(key, x):
                def draw(state, key):
                    state, _ = jax.lax.scan(lambda s, k: (mala.step(k, s)[0], None), state, jax.random.split(key, THIN))
                    return state, state.position

                return jax.lax.scan(draw, mala.init(x), jax.random.split(key, draws))[1]

        fn = jax.jit(jax.vmap(chain))
        keys = jax.random.split(jax.random.PRNGKey(0), x0.shape[0])
        xs = jnp.asarray(x0.numpy())
        t0 = time.process_time()
        fn(keys, xs).block_until_ready()
        compile_seconds = time.process_time() - t0
        keys = jax.random.split(jax.random.PRNGKey(1), x0.shape[0])
        t0 = time.process_time()
        out = fn(keys, xs).block_until_ready()
        seconds = time.process_time() - t0
        # the first call compiled and ran: report compile time net of one run
        return seconds, max(compile_seconds - seconds, 0.0), torch.as_tensor(out.__array__().copy())

    return run


def run_torchebm(target, x0, h, steps):
    from torchebm.core import BaseModel
    from torchebm.samplers import LangevinDynamics

    class Energy(BaseModel):
        def forward(self, x):
            return target.potential(x)

    sampler = LangevinDynamics(Energy(), step_size=h, noise_scale=1.0, dtype=torch.float64)
    t0 = time.process_time()
    traj = sampler.sample(x=x0.clone(), n_steps=steps, thin=THIN, return_trajectory=True)
    return time.process_time() - t0, None, traj.detach()


def run_nuts(target, x0, h, steps):
    mcmc = MCMC(NUTS(potential_fn=target.potential_fn), num_samples=1000, warmup_steps=500,
                initial_params={SITE: x0[0]}, disable_progbar=True)
    t0 = time.process_time()
    mcmc.run()
    seconds = time.process_time() - t0
    return seconds, None, mcmc.get_samples(group_by_chain=True)[SITE]


def installed(module):
    try:
        __import__(module)
        return True
    except ImportError:
        return False


IMPLEMENTATIONS = [
    # (label, runner, needs module, takes the target name, only for these chain counts)
    ("raw torch", run_raw_torch, None, False, None),
    ("ULA eager", run_ours(ULA, False), None, False, None),
    ("ULA compiled", run_ours(ULA, True), None, False, None),
    ("MALA eager", run_ours(MALA, False), None, False, (1, 1000)),
    ("MALA compiled", run_ours(MALA, True), None, False, (1, 1000)),
    ("BlackJAX sgld", run_blackjax("sgld"), "blackjax", True, None),
    ("BlackJAX mala", run_blackjax("mala"), "blackjax", True, None),
    ("TorchEBM", run_torchebm, "torchebm", False, None),
    ("Pyro NUTS", run_nuts, None, False, (1,)),
]


def versions():
    out = [f"torch {torch.__version__}", f"pyro {pyro.__version__}"]
    for mod in ("jax", "blackjax", "torchebm"):
        if installed(mod):
            out.append(f"{mod} {__import__(mod).__version__}")
        else:
            out.append(f"{mod} not installed")
    return ", ".join(out)


def main(args):
    one_thread()
    torch.set_default_dtype(torch.float64)
    makers = {"T1": lambda: gaussian(100), "T2": banana, "T3": logistic_regression}
    sections, summary = [], []
    for name in args.targets:
        target = makers[name]()
        h = step_size_for(name, target)
        ula_var = ulas_gaussian_variance(target, h) if name == "T1" else None
        rows, results = [], {}
        for C in args.chains:
            global THIN
            THIN = THINNING[C]
            steps = max(THIN * 4, int(STEPS[C] * args.scale) // THIN * THIN)
            x0 = starting_points(name, target, C, h)
            for label, runner, module, wants_name, only in IMPLEMENTATIONS:
                if only is not None and C not in only:
                    continue
                if module is not None and not installed(module):
                    rows.append([label, C, "—", "—", "—", "—", f"skipped: `pip install {module}`"])
                    continue
                pyro.set_rng_seed(0)
                run = (lambda *a: runner(*a, name)) if wants_name else runner
                seconds, compile_s, samples = run(target, x0, h, steps)
                ess = float(effective_sample_size(samples.detach().double(), chain_dim=0, sample_dim=1).min())
                is_nuts = label == "Pyro NUTS"
                rate = samples.shape[0] * samples.shape[1] / seconds if is_nuts else C * steps / seconds
                results[label, C] = rate
                note = "draws/s (warmup included)" if is_nuts else ""
                if ula_var is not None and label not in ("MALA eager", "MALA compiled", "BlackJAX mala", "Pyro NUTS"):
                    note = f"var ratio {float((samples.reshape(-1, target.dim).var(0) / ula_var).mean()):.3f}"
                rows.append([label, C, f"{rate:,.0f}", f"{ess / seconds:,.1f}",
                             "—" if compile_s is None else f"{compile_s:.1f}", f"{seconds:.2f}", note])
                print(f"{name} C={C:5d} {label:14s} {rate:12,.0f} steps/s  ESS/s {ess / seconds:10,.1f}  "
                      f"{seconds:6.2f} s  {note}", flush=True)
        sections.append(f"### {target.name} (h = {h:.4g}; thinning {THINNING})\n\n" + markdown_table(
            ["implementation", "chains", "steps/s", "min ESS/s", "compile s", "run s", "note"], rows))
        summary += ratios(name, results)
    body = f"Versions: {versions()}.\n\n" + "\n\n".join(sections)
    body += "\n\n### Targets of issue 7 (ratios within this run)\n\n" + markdown_table(["check", "ratio", "target"], summary)
    print("\n" + body)
    if not args.no_write:
        write_section("peers", body)


def ratios(name, r):
    out = []

    def add(check, num, den, target):
        if num in r and den in r:
            out.append([f"{name}: {check}", f"{r[num] / r[den]:.2f}", target])

    add("ULA compiled / ULA eager, 1 chain", ("ULA compiled", 1), ("ULA eager", 1), "≥ 10")
    add("ULA compiled / BlackJAX sgld, 1 chain", ("ULA compiled", 1), ("BlackJAX sgld", 1), "≥ 0.5")
    for label in ("ULA eager", "ULA compiled"):
        add(f"{label} / BlackJAX sgld, 1000 chains", (label, 1000), ("BlackJAX sgld", 1000), "≥ 1")
        for C in (1, 100, 1000):
            add(f"{label} / TorchEBM, {C} chains", (label, C), ("TorchEBM", C), "≥ 1.5")
    add("ULA eager / raw torch, 1 chain", ("ULA eager", 1), ("raw torch", 1), "—")
    add("ULA eager / raw torch, 1000 chains", ("ULA eager", 1000), ("raw torch", 1000), "—")
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", nargs="+", default=["T1", "T2", "T3"], choices=["T1", "T2", "T3"])
    parser.add_argument("--chains", nargs="+", type=int, default=[1, 100, 1000], choices=[1, 100, 1000])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the number of steps")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    main(parser.parse_args())
