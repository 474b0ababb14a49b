r"""
Several Langevin transitions in one ``torch.compile`` d call (``jit_compile=True``).

For one chain the cost of an eager Langevin step is Python and operator dispatch,
not arithmetic (a 100-D Gaussian gradient is a few microseconds). Compiling the
kernel's own :meth:`~pyro_langevin.kernels.base.LangevinKernel.move` -- potential,
gradient, update and, for MALA, the accept decision -- for ``thinning`` steps at a
time makes Python run once per returned sample instead of once per step.

- The compiled code is the eager code, traced: the same
  :func:`~pyro_langevin.langevin.langevin_step`, with the branch-free
  (``sync=False``) form of ``move``. Random numbers come from torch's global
  generator through ATen (Inductor's ``fallback_random``), so for the same seed
  the compiled chain is the eager chain, up to floating-point reassociation.
- The step size enters as a 0-d tensor, so changing it does not recompile;
  shapes, dtypes and the preconditioner are fixed after warmup, so a run compiles
  once (plus once per distinct ``thinning``).
- Warmup runs eagerly (adaptation changes the step size and the preconditioner
  at every step).
- If Dynamo cannot trace the potential (a Pyro model's trace machinery, say), the
  kernel warns once and stays eager.
"""
import warnings
from typing import Optional, Tuple

import torch

from ..langevin import LangevinState


class CompiledTransitions:
    """``num_steps`` transitions of ``kernel`` per call, compiled on first use.

    Calling it returns ``(state, num_diverging, accept_sum)``: the state after the
    steps, the number of divergent steps per chain (``batch_shape``, int) and the sum
    of acceptance probabilities per chain (``None`` when the kernel does not track
    them); or ``None`` if compilation failed (the caller then steps eagerly).
    """

    def __init__(self, kernel):
        self.kernel = kernel
        self.failed = False
        self._compiled = None

    def _steps(self, state: LangevinState, step_size: torch.Tensor, num_steps: int):
        num_div = torch.zeros(state.potential.shape, dtype=torch.long, device=state.potential.device)
        accept_sum = None
        for _ in range(num_steps):
            state, info = self.kernel.move(state, step_size=step_size, sync=False)
            num_div = num_div + info.diverging
            if info.accept_prob is not None:
                accept_sum = info.accept_prob if accept_sum is None else accept_sum + info.accept_prob
        return state, num_div, accept_sum

    def __call__(self, state: LangevinState, num_steps: int
                 ) -> Optional[Tuple[LangevinState, torch.Tensor, Optional[torch.Tensor]]]:
        if self.failed:
            return None
        step_size = torch.tensor(self.kernel.step_size, dtype=state.position.dtype, device=state.position.device)
        first = self._compiled is None
        if first:
            self._compiled = torch.compile(self._steps, fullgraph=True, dynamic=False,
                                           options={"fallback_random": True})
        with torch._dynamo.config.patch(trace_autograd_ops=True):  # lets Dynamo trace torch.autograd.grad
            if not first:
                return self._compiled(state, step_size, num_steps)
            try:
                return self._compiled(state, step_size, num_steps)
            except Exception as e:  # compilation is best effort; the eager path stays correct
                self.failed = True
                warnings.warn(
                    f"{type(self.kernel).__name__}(jit_compile=True): torch.compile could not compile the "
                    f"Langevin step ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                    "running eagerly instead",
                    RuntimeWarning,
                    stacklevel=4,
                )
                return None

    def __getstate__(self):
        return {"kernel": self.kernel, "failed": self.failed, "_compiled": None}
