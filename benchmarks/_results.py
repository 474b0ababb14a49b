"""Shared plumbing of the benchmark scripts: one torch thread, medians of repeats,
machine and versions, and one section of ``benchmarks/RESULTS.md`` per script."""
import os
import platform
import re
import statistics
import time
from pathlib import Path

import math

import torch

RESULTS = Path(__file__).with_name("RESULTS.md")


def one_thread() -> None:
    torch.set_num_threads(1)


def median_time(fn, repeats: int = 5) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def machine() -> str:
    import pyro

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} thread), "
            f"pyro {pyro.__version__}, Python {platform.python_version()}")


def markdown_table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section ``name`` of RESULTS.md with ``body``, stamped
    with the date, the machine and the command that made it."""
    stamp = f"_{time.strftime('%Y-%m-%d')}; {machine()}; `python benchmarks/{name}.py`_"
    block = f"<!-- {name}:start -->\n## {name}\n\n{stamp}\n\n{body.strip()}\n<!-- {name}:end -->"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\nEach section is rewritten by its script.\n"
    pattern = re.compile(rf"<!-- {re.escape(name)}:start -->.*?<!-- {re.escape(name)}:end -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)


def raw_ula_loop(potential, x0: torch.Tensor, step_size: float, num_steps: int) -> torch.Tensor:
    """The baseline: the ULA update ``x - h grad U(x) + sqrt(2h) z`` written by hand with
    ``torch.autograd.grad``; ``x0`` is ``[D]`` (scalar potential) or ``[C, D]``."""
    scale = math.sqrt(2.0 * step_size)
    x = x0
    for _ in range(num_steps):
        x = x.detach().requires_grad_(True)
        u = potential(x)
        (grad,) = torch.autograd.grad(u if u.dim() == 0 else u.sum(), x)
        x = x.detach() - step_size * grad + scale * torch.randn_like(x)
    return x
