r"""
The contrastive-divergence loss of an energy-based model, with negatives drawn by the
package's Langevin kernels.

For :math:`p_\theta(x) = e^{-E_\theta(x)} / Z_\theta` the gradient of the average
log-likelihood of data :math:`x^+` is

.. math::

    -\nabla_\theta \mathbb E_{\mathrm{data}}[\log p_\theta(x^+)]
      = \mathbb E_{\mathrm{data}}[\nabla_\theta E_\theta(x^+)]
      - \mathbb E_{p_\theta}[\nabla_\theta E_\theta(x^-)],

estimated by the gradient of :math:`\overline{E_\theta(x^+)} - \overline{E_\theta(x^-)}`
with negatives :math:`x^-` from Langevin chains targeting :math:`p_\theta`, held fixed
(no gradient flows through the sampler).

**Which kernel.** The chains target :math:`\pi_T \propto e^{-E_\theta/T}`, so the
model that training fits is :math:`p_\theta \propto e^{-E_\theta / T}`:

- :class:`~pyro_langevin.MALA` negatives (``T = 1``) are exact draws of the model once
  the chains mix, so the fixed point is the maximum-likelihood estimate. Use it when the
  density itself matters (density estimation, low dimension, the Gaussian check of
  ``examples/ebm_gaussian.py``) with a persistent :class:`~pyro_langevin.ebm.ReplayBuffer`
  (``reinit_prob=0``).
- :class:`~pyro_langevin.ULA` negatives carry the step-size bias: for a Gaussian model
  :math:`\mathcal N(\mu, \Sigma)` they have covariance :math:`\Sigma (I - h\Sigma^{-1}/2)^{-1}`,
  so training makes *that* equal to the data covariance and the model's own
  :math:`\Sigma` comes out too small (per eigenvalue :math:`c` of the data covariance,
  :math:`\sigma^2 = (c + \sqrt{c^2 - 2hc})/2`). Cheaper per step (no accept/reject and no
  extra reductions), and allows ``clamp`` to the data range.
- Short-run ULA from noise (``ReplayBuffer(..., reinit_prob=1)``, a few dozen steps,
  tiny temperature, gradient clipping, clamping) is the non-convergent sampler of
  Nijkamp et al. (2019): the *sampler* is what is learned, not a density whose long-run
  chains look like data. Persistent short-run chains (``reinit_prob=0.05``, Du &
  Mordatch 2019) sit in between. This is the image-synthesis recipe.

**One parameterisation.** EBM papers write the move as
:math:`x - \lambda \nabla E(x) + \sigma z`, which is ULA with :math:`h = \lambda` and
:math:`T = \sigma^2 / (2\lambda)`: pass ``ULA(step_size=lam, noise_scale=sigma)``.
Temperatures of published recipes:

============================================  ======  ======  =========  ==========
recipe                                        λ       σ       T          clip
============================================  ======  ======  =========  ==========
Lippe's UvA tutorial, after Du & Mordatch     10      0.005   1.25e-6    0.03
(MNIST on [-1, 1], 60 steps, buffer 5 %)
JEM, Grathwohl et al. 2020 (20 steps)         1       0.01    5e-5       --
"correct" Langevin at T = 1                   h       √(2h)   1          --
============================================  ======  ======  =========  ==========

At such temperatures :math:`e^{-E/T}` is extremely peaked: the chains are essentially
noisy gradient descent, and the learned energy is meaningful only together with its
sampler.

**References**

[1] G. E. Hinton (2002), *Training products of experts by minimizing contrastive
    divergence*, Neural Computation 14(8).
[2] Y. Du, I. Mordatch (2019), *Implicit generation and modeling with energy-based
    models*, NeurIPS.
[3] E. Nijkamp, M. Hill, S.-C. Zhu, Y. N. Wu (2019), *Learning non-convergent
    non-persistent short-run MCMC toward energy-based model*, NeurIPS.
[4] W. Grathwohl et al. (2020), *Your classifier is secretly an energy based model and
    you should treat it like one*, ICLR.
"""
import numbers
from typing import Dict, Optional, Tuple

import torch
from torch import nn

from ..kernels.base import LangevinKernel
from ..langevin import init_state
from .buffer import ReplayBuffer


def _check_kernel_and_steps(kernel, num_steps) -> None:
    if not isinstance(kernel, LangevinKernel):
        raise TypeError(f"kernel must be a ULA or MALA kernel of pyro_langevin, got {type(kernel).__name__}")
    if isinstance(num_steps, bool) or not isinstance(num_steps, numbers.Integral) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")


def run_chains(energy: nn.Module, kernel: LangevinKernel, initial_position: torch.Tensor, num_steps: int
               ) -> Tuple[torch.Tensor, Dict[str, float]]:
    r"""Advance a batch of chains ``num_steps`` moves of ``kernel`` under the potential
    ``energy`` (one chain per batch element), with the energy's parameters frozen and
    the module in eval mode (both restored afterwards).

    :param energy: ``[B, *event_shape] -> [B]``.
    :param kernel: a :class:`~pyro_langevin.ULA` or :class:`~pyro_langevin.MALA`; its
        ``move`` is the update used.
    :param torch.Tensor initial_position: ``[B, *event_shape]``.
    :param int num_steps: number of moves.
    :returns: ``(position, stats)``: the end points ``[B, *event_shape]`` (detached) and
        ``grad_norm`` (mean over chains of :math:`\lVert\nabla_x E\rVert_2` at the point
        a move starts from, averaged over every ``max(1, num_steps // 10)``-th move),
        ``diverging`` (number of proposals, over chains and moves, whose energy or
        gradient was not finite; the chain stayed put), ``accept_prob`` (mean, where
        the kernel tracks it).
    """
    _check_kernel_and_steps(kernel, num_steps)
    params = [p for p in energy.parameters() if p.requires_grad]
    was_training = energy.training
    for p in params:  # the sampler differentiates w.r.t. x only; skip the parameters' graph
        p.requires_grad_(False)
    energy.eval()
    try:
        state = init_state(energy, initial_position)
        grad_norm = state.grad.new_zeros(())
        stride = max(1, num_steps // 10)  # a reduction over the whole batch costs ~2 % of a step on images
        accept = None
        diverging = 0
        for step in range(num_steps):
            if step % stride == 0:
                grad_norm += state.grad.flatten(1).norm(dim=1).mean()
            state, info = kernel.move(state, potential_fn=energy)
            if info.any_diverging:
                diverging += int(info.diverging.sum())
            if info.accept_prob is not None:
                accept = info.accept_prob.mean() if accept is None else accept + info.accept_prob.mean()
    finally:
        for p in params:
            p.requires_grad_(True)
        energy.train(was_training)
    stats = {"grad_norm": float(grad_norm) / len(range(0, num_steps, stride)), "diverging": diverging}
    if accept is not None:
        stats["accept_prob"] = float(accept) / num_steps
    return state.position, stats


class ContrastiveDivergence:
    r"""The loss

    .. math::

        \mathcal L(\theta) = \overline{E_\theta(x^+)} - \overline{E_\theta(x^-)}
          + \alpha \big(\overline{E_\theta(x^+)^2} + \overline{E_\theta(x^-)^2}\big),

    whose first two terms give the maximum-likelihood gradient (see the module
    docstring) and whose last keeps energies near zero (Du & Mordatch 2019). The
    negatives :math:`x^-` are ``num_steps`` moves of ``kernel`` from starting points
    drawn from ``buffer`` (then pushed back), or from the data batch itself without a
    buffer (Hinton's CD-k).

    Usage::

        kernel = ULA(step_size=10.0, noise_scale=0.005, grad_clip=0.03, clamp=(-1, 1))
        buffer = ReplayBuffer(10000, (1, 28, 28), reinit_prob=0.05)
        cd = ContrastiveDivergence(kernel, num_steps=60, buffer=buffer, alpha=0.1)
        loss, stats = cd(energy, batch)
        loss.backward()

    :param kernel: a :class:`~pyro_langevin.ULA` or :class:`~pyro_langevin.MALA`,
        usually built with neither model nor ``potential_fn`` (a move configuration).
        Its ``step_size``, ``temperature``, ``grad_clip`` and ``clamp`` are used as they
        are: no warmup adaptation runs inside the loss (watch ``accept_prob`` in the
        statistics of a MALA kernel).
    :param int num_steps: Langevin moves per negative, at least 1.
    :param ReplayBuffer buffer: persistent starting points (``None``: start at the data).
    :param float alpha: weight :math:`\alpha \ge 0` of the energy regulariser.
    """

    def __init__(self, kernel: LangevinKernel, num_steps: int, buffer: Optional[ReplayBuffer] = None,
                 alpha: float = 0.0):
        _check_kernel_and_steps(kernel, num_steps)
        if buffer is not None and not isinstance(buffer, ReplayBuffer):
            raise TypeError(f"buffer must be a ReplayBuffer or None, got {type(buffer).__name__}")
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not alpha >= 0:
            raise ValueError(f"alpha must be a non-negative number, got {alpha!r}")
        self.kernel = kernel
        self.num_steps = int(num_steps)
        self.buffer = buffer
        self.alpha = float(alpha)

    def negatives(self, energy: nn.Module, data: torch.Tensor) -> Tuple[torch.Tensor, Dict[str, float]]:
        """Negatives ``[B, *event_shape]`` for a data batch (the buffer, if any, takes
        them back) and the sampling statistics of :func:`run_chains`."""
        if self.buffer is None:
            x0 = data.detach()
        else:
            buffer = self.buffer
            if buffer.device != data.device or buffer.dtype != data.dtype:
                raise ValueError(f"the buffer lives on {buffer.device}/{buffer.dtype} but the data on "
                                 f"{data.device}/{data.dtype}; call buffer.to(device, dtype) first")
            num_fresh = buffer.num_fresh
            x0 = buffer.sample(data.shape[0])
            num_fresh = buffer.num_fresh - num_fresh
        negatives, stats = run_chains(energy, self.kernel, x0, self.num_steps)
        if self.buffer is not None:
            self.buffer.push(negatives)
            stats["buffer_size"] = len(self.buffer)
            stats["reinit_fraction"] = num_fresh / data.shape[0]
        return negatives, stats

    def __call__(self, energy: nn.Module, data: torch.Tensor) -> Tuple[torch.Tensor, Dict[str, float]]:
        r"""The loss (a scalar with a graph to the energy's parameters) and statistics:
        ``loss``, ``energy_data`` and ``energy_negative`` (batch means),
        ``energy_gap`` :math:`= \overline{E(x^-)} - \overline{E(x^+)}` (positive while the
        model tells data from its samples; near zero at equilibrium), and those of
        :meth:`negatives`.

        :param torch.Tensor data: ``[B, *event_shape]``.
        """
        negatives, stats = self.negatives(energy, data)
        energies = energy(torch.cat([data, negatives]))  # one pass: data and negatives share the network
        e_data, e_neg = energies[: data.shape[0]], energies[data.shape[0]:]
        mean_data, mean_neg = e_data.mean(), e_neg.mean()
        loss = mean_data - mean_neg
        if self.alpha:
            loss = loss + self.alpha * ((e_data * e_data).mean() + (e_neg * e_neg).mean())
        summary = torch.stack([loss.detach(), mean_data.detach(), mean_neg.detach()]).tolist()
        stats = {"loss": summary[0], "energy_data": summary[1], "energy_negative": summary[2],
                 "energy_gap": summary[2] - summary[1], **stats}
        return loss, stats
