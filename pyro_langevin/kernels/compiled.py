r"""
Several Langevin transitions in one ``torch.compile`` d call (``jit_compile=True``).

For one chain the cost of an eager Langevin step is Python and operator dispatch,
not arithmetic (a 100-D Gaussian gradient is a few microseconds). Compiling the
kernel's own :meth:`~pyro_langevin.kernels.base.LangevinKernel.move` -- potential,
gradient, update and, for MALA, the accept decision -- for ``thinning`` steps at a
time makes Python run once per returned sample instead of once per step.

- The compiled code is the eager code, traced: the same
  :func:`~pyro_langevin.langevin.langevin_step`, with the branch-free
  (``sync=False``) form of ``move``. The kernel draws the noise (and MALA's
  uniforms) of a block of up to ``NOISE_BLOCK`` steps at once from torch's global
  generator, in the eager and the compiled path alike, so for the same seed the
  compiled chain is the eager chain, up to floating-point reassociation.
- ``thinning`` steps run as blocks of up to ``NOISE_BLOCK`` (32) unrolled steps: Python runs
  once per block, and compilation time stays bounded whatever the thinning.
- The step size enters as a 0-d tensor, so changing it does not recompile;
  shapes, dtypes and the preconditioner are fixed after warmup, so a run compiles
  once per distinct block length (one or two).
- Dynamo's guards are evaluated only on the first call of each signature (shapes,
  dtypes, device, block length, preconditioner, kernel configuration); later calls
  skip them (``torch.compiler.set_stance(skip_guard_eval_unsafe=True)``). So the
  potential must not depend on Python-level values that change between calls
  (tensors it reads are fine: they are graph inputs).
- Warmup runs eagerly (adaptation changes the step size and the preconditioner
  at every step).
- If Dynamo cannot trace the potential (a Pyro model's trace machinery, say), the
  kernel warns once and stays eager.
"""
import warnings
from typing import Optional, Tuple

import torch

from ..langevin import LangevinState

RECOMPILE_LIMIT = 64  # graphs of _transitions kept per process (kernels x shapes x block lengths)


def _transitions(kernel, state: LangevinState, step_size: torch.Tensor, noise: torch.Tensor,
                 uniforms: Optional[torch.Tensor]):
    """``noise.shape[0]`` branch-free transitions of ``kernel`` (the function that is compiled)."""
    num_div = torch.zeros(state.potential.shape, dtype=torch.long, device=state.potential.device)
    accept_sum = None
    for i in range(noise.shape[0]):  # unrolled: noise.shape[0] is static
        state, info = kernel.move(state, step_size=step_size, sync=False, noise=noise[i],
                                  uniform=None if uniforms is None else uniforms[i])
        num_div = num_div + info.diverging
        if info.accept_prob is not None:
            accept_sum = info.accept_prob if accept_sum is None else accept_sum + info.accept_prob
    return state, num_div, accept_sum


class CompiledTransitions:
    """A block of transitions of ``kernel`` per call, compiled on first use.

    ``transitions(state, noise, uniforms)`` takes the block's noise ``[n, *position_shape]``
    and (MALA) uniforms ``[n, *batch_shape]``, drawn by the caller exactly as the eager
    path draws them, and returns ``(state, num_diverging, accept_sum)``: the state after
    the ``n`` steps, the number of divergent steps per chain (int, ``batch_shape``) and
    the sum of acceptance probabilities per chain (``None`` when the kernel does not
    track them); or ``None`` if compilation failed (the caller then steps eagerly).
    The graph holds no random number generation, so Inductor fuses the whole block.
    """

    def __init__(self, kernel):
        self.kernel = kernel
        self.failed = False
        self._compiled = None
        self._signatures = set()
        self._step_size = None

    def _step_size_tensor(self, like: torch.Tensor) -> torch.Tensor:
        h = self._step_size
        if h is None or float(h) != self.kernel.step_size or h.dtype != like.dtype or h.device != like.device:
            h = self._step_size = torch.tensor(self.kernel.step_size, dtype=like.dtype, device=like.device)
        return h

    def __call__(self, state: LangevinState, noise: torch.Tensor, uniforms: Optional[torch.Tensor] = None
                 ) -> Optional[Tuple[LangevinState, torch.Tensor, Optional[torch.Tensor]]]:
        if self.failed:
            return None
        step_size = self._step_size_tensor(state.position)
        if self._compiled is None:
            self._compiled = torch.compile(_transitions, fullgraph=True, dynamic=False)
        # a call like one already compiled reuses its graph without evaluating Dynamo's
        # guards (they cost more than a block of steps of a cheap potential): what they
        # would check -- shapes, dtypes, device, block length, preconditioner, kernel
        # configuration -- is in the signature, and the kernel's configuration is fixed
        # after warmup
        signature = (noise.shape, noise.dtype, noise.device, uniforms is None, id(self.kernel.preconditioner),
                     self.kernel.temperature, self.kernel.grad_clip, self.kernel.clamp)
        dynamo_config = torch._dynamo.config
        previous = dynamo_config.trace_autograd_ops, dynamo_config.recompile_limit
        dynamo_config.trace_autograd_ops = True  # lets Dynamo trace torch.autograd.grad
        # every kernel of a process shares _transitions' code object, and with it Dynamo's
        # cache (kernels alike reuse a graph) and its recompilation limit (8 by default)
        dynamo_config.recompile_limit = max(previous[1], RECOMPILE_LIMIT)
        try:
            if signature in self._signatures:
                with torch.compiler.set_stance(skip_guard_eval_unsafe=True):
                    return self._compiled(self.kernel, state, step_size, noise, uniforms)
            try:
                result = self._compiled(self.kernel, state, step_size, noise, uniforms)
            except Exception as e:  # compilation is best effort; the eager path stays correct
                self.failed = True
                first_line = str(e).splitlines()[0] if str(e) else ""
                warnings.warn(
                    f"{type(self.kernel).__name__}(jit_compile=True): torch.compile could not compile the "
                    f"Langevin step ({type(e).__name__}: {first_line}); running eagerly instead",
                    RuntimeWarning,
                    stacklevel=4,
                )
                return None
            self._signatures.add(signature)
            return result
        finally:
            dynamo_config.trace_autograd_ops, dynamo_config.recompile_limit = previous

    def __getstate__(self):
        return {"kernel": self.kernel, "failed": self.failed, "_compiled": None, "_signatures": set(),
                "_step_size": None}
