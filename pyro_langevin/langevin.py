r"""
The Langevin update, written once.

Every sampler in this package -- the :class:`~pyro_langevin.ULA` and
:class:`~pyro_langevin.MALA` kernels, the contrastive loss of
:mod:`pyro_langevin.ebm` and the posterior samplers of
:mod:`pyro_langevin.reconstruction` -- moves its state with
:func:`langevin_step`:

.. math::

    x' = x - h\, M \nabla U(x) + \sqrt{2 h T}\, M^{1/2} z, \qquad z \sim \mathcal{N}(0, I),

the Euler--Maruyama discretisation of the overdamped Langevin diffusion
:math:`dX = -M\nabla U(X)\,dt + \sqrt{2T}\,M^{1/2} dW`, whose stationary law is
:math:`\pi_T(x) \propto \exp(-U(x)/T)`. :math:`h` is the step size, :math:`T` the
temperature and :math:`M` a (fixed) positive-definite preconditioner. MALA adds the
Metropolis--Hastings correction of :func:`log_accept_ratio`.

Shapes: a position has shape ``batch_shape + event_shape``; the potential returns
one value per batch element, shape ``batch_shape`` (``[]`` for a single chain,
``[num_chains]`` for vectorized chains, ``[B]`` for a batch of EBM negatives).
Everything below reduces over the trailing ``event`` dimensions, so the same code
serves flat parameter vectors ``[C, D]`` and images ``[B, 1, 28, 28]``.

**References**

[1] G. O. Roberts, R. L. Tweedie (1996), *Exponential convergence of Langevin
    distributions and their discrete approximations*, Bernoulli 2(4).
[2] M. Girolami, B. Calderhead (2011), *Riemann manifold Langevin and Hamiltonian
    Monte Carlo methods* (preconditioned MALA), JRSS B 73(2).
"""
import contextlib
from typing import Callable, NamedTuple, Optional, Tuple

import torch

from .preconditioner import Preconditioner


class LangevinState(NamedTuple):
    """State of a Langevin chain (or of a batch of chains).

    :ivar torch.Tensor position: ``batch_shape + event_shape``.
    :ivar torch.Tensor potential: :math:`U(x)`, shape ``batch_shape``, detached.
    :ivar torch.Tensor grad: :math:`\\nabla U(x)`, shape of ``position``, detached.
    """

    position: torch.Tensor
    potential: torch.Tensor
    grad: torch.Tensor


def potential_and_grad(potential_fn: Callable, position: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Evaluate :math:`U(x)` and :math:`\\nabla_x U(x)` with one backward pass.

    Gradients are taken with respect to ``position`` only, so parameters of
    ``potential_fn`` (an energy network, say) neither receive ``.grad`` nor stay in
    the returned graph. Batch elements are independent, so the gradient of
    ``U.sum()`` is the per-element gradient.

    :returns: ``(potential, grad)``, both detached.
    """
    x = position.detach().requires_grad_(True)
    # entering enable_grad costs as much as a small tensor operation: only when needed
    with contextlib.nullcontext() if torch.is_grad_enabled() else torch.enable_grad():
        potential = potential_fn(x)
        # a scalar needs no reduction, whose backward node would cost ~10% of a cheap step
        (grad,) = torch.autograd.grad(potential if potential.dim() == 0 else potential.sum(), x)
    return potential.detach(), grad


def init_state(potential_fn: Callable, position: torch.Tensor) -> LangevinState:
    """The :class:`LangevinState` at ``position`` (one gradient evaluation)."""
    potential, grad = potential_and_grad(potential_fn, position)
    return LangevinState(position.detach(), potential, grad)


def drift_grad(grad: torch.Tensor, grad_clip: Optional[float]) -> torch.Tensor:
    """The gradient used in the drift: clamped elementwise to ``[-grad_clip, grad_clip]``
    when ``grad_clip`` is given (the per-step clipping of EBM recipes, e.g. Du &
    Mordatch 2019 clip at 0.01)."""
    return grad if grad_clip is None else grad.clamp(-grad_clip, grad_clip)


def langevin_step(
    state: LangevinState,
    potential_fn: Callable,
    step_size: float,
    temperature: float = 1.0,
    *,
    preconditioner: Optional[Preconditioner] = None,
    grad_clip: Optional[float] = None,
    clamp: Optional[Tuple[float, float]] = None,
    noise: Optional[torch.Tensor] = None,
) -> Tuple[LangevinState, torch.Tensor]:
    r"""One Langevin move from ``state``:

    .. math::

        x' = \mathrm{clamp}\big(x - h\, M\, \mathrm{clip}(\nabla U(x))
             + \sqrt{2 h T}\, M^{1/2} z\big),

    followed by the one gradient evaluation at :math:`x'` that the next step (and
    MALA's correction) needs. Non-finite values are returned as they are; the
    caller decides what to do with them (see :func:`select`).

    :param LangevinState state: current state.
    :param callable potential_fn: maps a position to potentials of shape ``batch_shape``.
    :param float step_size: :math:`h > 0` (a float, or a 0-d tensor).
    :param float temperature: :math:`T > 0`; the stationary law is :math:`\propto e^{-U/T}`.
    :param Preconditioner preconditioner: :math:`M` (``None``: identity). Acts on a
        flat trailing dimension.
    :param float grad_clip: optional elementwise clamp of :math:`\nabla U` in the drift.
    :param tuple clamp: optional ``(low, high)`` bounds for :math:`x'` (e.g. the data range).
    :param torch.Tensor noise: optional :math:`z`, shape of the position (default: fresh
        standard normal draws from torch's global generator).
    :returns: ``(proposal, noise)``.
    """
    x = state.position
    if noise is None:
        noise = torch.randn_like(x)
    g = drift_grad(state.grad, grad_clip)
    scale = (2.0 * step_size * temperature) ** 0.5  # step_size may be a 0-d tensor (compiled path)
    if preconditioner is None:
        new_x = x - step_size * g + scale * noise
    else:
        new_x = x - step_size * preconditioner.matvec(g) + scale * preconditioner.sqrt_matvec(noise)
    if clamp is not None:
        new_x = new_x.clamp(clamp[0], clamp[1])
    potential, grad = potential_and_grad(potential_fn, new_x)
    return LangevinState(new_x.detach(), potential, grad), noise


def _sum_event(t: torch.Tensor, batch_dim: int) -> torch.Tensor:
    """Sum over all dimensions after the first ``batch_dim`` ones."""
    return t.flatten(batch_dim).sum(-1) if t.dim() > batch_dim else t


def is_finite(state: LangevinState) -> torch.Tensor:
    """Per-batch-element mask: potential and every gradient coordinate finite."""
    # inf - inf and nan propagate through the sum, so one reduction checks them all
    return torch.isfinite(state.potential + _sum_event(state.grad, state.potential.dim()))


def log_accept_ratio(
    state: LangevinState,
    proposal: LangevinState,
    noise: torch.Tensor,
    step_size: float,
    temperature: float = 1.0,
    *,
    preconditioner: Optional[Preconditioner] = None,
    grad_clip: Optional[float] = None,
) -> torch.Tensor:
    r"""Log Metropolis--Hastings ratio of a :func:`langevin_step` proposal for the
    target :math:`\pi_T \propto e^{-U/T}`:

    .. math::

        \log\alpha = -\frac{U(x') - U(x)}{T} + \log q(x \mid x') - \log q(x' \mid x),
        \qquad q(x' \mid x) = \mathcal{N}\big(x';\, x - h M g(x),\, 2 h T M\big),

    with :math:`\log q(x'\mid x) = -\lVert z\rVert^2/2` and
    :math:`\log q(x \mid x') = -\lVert x - x' + h M g(x')\rVert^2_{M^{-1}} / (4hT)`
    (the common normalising constants cancel). :math:`g` is the clipped gradient when
    ``grad_clip`` is given -- the proposal is still Gaussian, so the correction stays
    exact; a clamped proposal is not, and must not be corrected with this.

    :returns: shape ``batch_shape``; NaN where the proposal is not finite.
    """
    batch_dim = state.potential.dim()
    g_new = drift_grad(proposal.grad, grad_clip)
    if preconditioner is None:
        back = state.position - proposal.position + step_size * g_new
        back_sq = _sum_event(back * back, batch_dim)
    else:
        back = state.position - proposal.position + step_size * preconditioner.matvec(g_new)
        back_sq = preconditioner.inv_quad(back)
    log_q_back = -back_sq / (4.0 * step_size * temperature)
    log_q_fwd = -0.5 * _sum_event(noise * noise, batch_dim)
    return (state.potential - proposal.potential) / temperature + log_q_back - log_q_fwd


def select(mask: torch.Tensor, new: LangevinState, old: LangevinState) -> LangevinState:
    """Per batch element, ``new`` where ``mask`` is true, else ``old``.

    :param torch.Tensor mask: bool, shape ``batch_shape``.
    """
    pos_mask = mask.reshape(mask.shape + (1,) * (new.position.dim() - mask.dim()))
    return LangevinState(
        torch.where(pos_mask, new.position, old.position),
        torch.where(mask, new.potential, old.potential),
        torch.where(pos_mask, new.grad, old.grad),
    )
