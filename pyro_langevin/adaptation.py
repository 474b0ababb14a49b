r"""
Warmup adaptation of the step size and the preconditioner, composed into the
Langevin kernels and run only during warmup.

- **Step size**: dual averaging (Nesterov 2009; Hoffman & Gelman 2014, Alg. 5) on
  :math:`H_t = \delta - \bar\alpha_t`, the target acceptance probability minus the
  (chain-averaged) Metropolis acceptance probability of the step, using Pyro's
  :class:`~pyro.ops.dual_averaging.DualAveraging`. After warmup the averaged iterate
  :math:`\exp(\bar x_t)` is frozen.
- **Preconditioner**: :math:`M \approx \mathrm{Cov}_\pi[x]`, estimated with Welford's
  algorithm (Pyro's :class:`~pyro.ops.welford.WelfordCovariance`, with Stan's
  regularisation) in Stan's doubling windows (75-step initial buffer, 25-step first
  window, 50-step terminal buffer; Pyro's :class:`~pyro.infer.mcmc.adaptation.WarmupAdapter`
  builds the schedule). At the end of each window :math:`M` is replaced and the
  dual averaging restarts around :math:`\log(10 h)`, as in Stan and Pyro.

Vectorized chains share one step size and one preconditioner: the acceptance
statistic is the mean over chains and every chain's position enters the covariance
estimate (Chan, Golub & LeVeque's pairwise update merges a batch at a time).
"""
import math
from typing import List, Optional

import torch
from pyro.infer.mcmc.adaptation import WarmupAdapter, adapt_window
from pyro.ops.dual_averaging import DualAveraging
from pyro.ops.welford import WelfordCovariance

from .preconditioner import DensePreconditioner, DiagonalPreconditioner, Preconditioner


class BatchWelfordCovariance(WelfordCovariance):
    """:class:`~pyro.ops.welford.WelfordCovariance` that also takes a batch of samples
    ``[N, D]`` at once (Chan, Golub & LeVeque 1979 pairwise merge)."""

    def update_batch(self, samples: torch.Tensor) -> None:
        n_b = samples.shape[0]
        if n_b == 1:
            return self.update(samples[0])
        mean_b = samples.mean(0)
        centred = samples - mean_b
        m2_b = (centred * centred).sum(0) if self.diagonal else centred.T @ centred
        n_a = self.n_samples
        n = n_a + n_b
        delta = mean_b - self._mean
        self._mean = self._mean + delta * (n_b / n)
        cross = delta * delta if self.diagonal else torch.outer(delta, delta)
        self._m2 = self._m2 + m2_b + cross * (n_a * n_b / n)
        self.n_samples = n


def adaptation_schedule(num_steps: int) -> List[adapt_window]:
    """Stan's windows for ``num_steps`` warmup steps, as Pyro builds them: a list of
    ``adapt_window(start, end)`` (inclusive); the first and last are the buffers."""
    adapter = WarmupAdapter(adapt_mass_matrix=True)
    # the schedule depends on num_steps alone; the mass-matrix shape is a placeholder
    adapter.configure(num_steps, initial_step_size=1.0, mass_matrix_shape={("x",): (1,)})
    return list(adapter.adaptation_schedule)


class LangevinAdapter:
    r"""Step-size and preconditioner adaptation for a Langevin kernel.

    :param bool adapt_step_size: tune :math:`h` by dual averaging.
    :param float target_accept_prob: :math:`\delta`, the acceptance rate to reach.
    :param bool adapt_mass_matrix: estimate the preconditioner :math:`M`.
    :param bool full_mass: dense :math:`M` instead of diagonal.
    """

    def __init__(self, adapt_step_size=False, target_accept_prob=0.574, adapt_mass_matrix=False, full_mass=False):
        self.adapt_step_size = adapt_step_size
        self.target_accept_prob = target_accept_prob
        self.adapt_mass_matrix = adapt_mass_matrix
        self.full_mass = full_mass
        self.step_size = None
        self.preconditioner: Optional[Preconditioner] = None
        self.schedule: List[adapt_window] = []

    @property
    def enabled(self) -> bool:
        return self.adapt_step_size or self.adapt_mass_matrix

    def configure(self, num_steps: int, step_size: float) -> None:
        """Reset for a warmup of ``num_steps`` Langevin steps starting at ``step_size``."""
        self.num_steps = num_steps
        self.step_size = step_size
        self.preconditioner = None
        self.schedule = adaptation_schedule(num_steps) if num_steps > 0 else []
        self._window = 0
        self._welford = BatchWelfordCovariance(diagonal=not self.full_mass)
        self._dual_averaging = DualAveraging()
        self._restart_step_size(step_size)

    def _restart_step_size(self, step_size: float) -> None:
        self.step_size = step_size
        self._dual_averaging.prox_center = math.log(10 * step_size)  # from Stan
        self._dual_averaging.reset()

    def step(self, t: int, position: torch.Tensor, accept_prob: Optional[torch.Tensor]) -> None:
        """Learn from warmup step ``t`` (0-based): ``position`` ``[*batch, D]`` after the
        step, ``accept_prob`` its (per-chain) acceptance probability."""
        if t >= self.num_steps or not self.enabled:
            return
        window = self.schedule[self._window]
        last = len(self.schedule) - 1
        mass_phase = self.adapt_mass_matrix and 0 < self._window < last
        if self.adapt_step_size:
            stat = self.target_accept_prob - float(accept_prob.mean())
            self._dual_averaging.step(stat)
            self.step_size = math.exp(self._dual_averaging.get_state()[0])
        if mass_phase:
            self._welford.update_batch(position.detach().reshape(-1, position.shape[-1]))
        if t == window.end:
            if self._window == last:
                if self.adapt_step_size:
                    self.step_size = math.exp(self._dual_averaging.get_state()[1])
            elif mass_phase:
                cov = self._welford.get_covariance(regularize=True)
                self.preconditioner = DensePreconditioner(cov) if self.full_mass else DiagonalPreconditioner(cov)
                self._welford.reset()
                if self.adapt_step_size:
                    self._restart_step_size(self.step_size)
            self._window += 1
