import math

import torch

from ..langevin import is_finite, langevin_step, log_accept_ratio, select
from .base import LangevinKernel, StepInfo, accept_prob_from_log_ratio, no_divergence, single_chain_finite


class MALA(LangevinKernel):
    r"""The Metropolis-adjusted Langevin algorithm: the :class:`~pyro_langevin.ULA`
    proposal

    .. math::

        x' = x - h\, M \nabla U(x) + \sqrt{2 h T}\, M^{1/2} z,

    accepted with probability :math:`\min(1, \alpha)`,

    .. math::

        \alpha = \frac{\pi_T(x')\, q(x \mid x')}{\pi_T(x)\, q(x' \mid x)}, \qquad
        q(x' \mid x) = \mathcal N\big(x';\ x - h M \nabla U(x),\ 2 h T M\big),

    so that :math:`\pi_T \propto e^{-U/T}` is the exact stationary law. Decisions are
    per chain; a proposal whose potential or gradient is not finite is rejected and
    counted as a divergence. Potential and gradient of the current state are cached:
    one gradient evaluation per iteration.

    By default the step size is adapted in warmup to ``target_accept_prob=0.574``, the
    asymptotically optimal MALA acceptance rate [1]. Arguments are those of
    :class:`~pyro_langevin.ULA`, with ``adapt_step_size=True`` by default; ``clamp``
    is refused (a clamped proposal has no Gaussian density to correct with), while
    ``grad_clip`` keeps the correction exact (the drift is clipped in both directions).

    **References**

    [1] G. O. Roberts, J. S. Rosenthal (1998), *Optimal scaling of discrete
        approximations to Langevin diffusions*, JRSS B 60(1).
    [2] G. O. Roberts, R. L. Tweedie (1996), *Exponential convergence of Langevin
        distributions and their discrete approximations*, Bernoulli 2(4).
    """

    _needs_uniforms = True

    def __init__(self, model=None, potential_fn=None, step_size=0.01, temperature=None, *, adapt_step_size=True,
                 **kwargs):
        if kwargs.get("clamp") is not None:
            raise ValueError(
                f"MALA cannot clamp its proposals (clamp={kwargs['clamp']!r}): the clamped move has no "
                "Gaussian proposal density; use ULA, or a model whose support encodes the bounds"
            )
        super().__init__(model, potential_fn, step_size, temperature, adapt_step_size=adapt_step_size, **kwargs)

    def move(self, state, potential_fn=None, *, step_size=None, accept=True, sync=True, noise=None, uniform=None):
        h = self.step_size if step_size is None else step_size
        precond = self.adapter.preconditioner
        proposal, noise = langevin_step(
            state, self._potential if potential_fn is None else potential_fn, h, self.temperature,
            preconditioner=precond, grad_clip=self.grad_clip, noise=noise,
        )
        log_ratio = log_accept_ratio(state, proposal, noise, h, self.temperature,
                                     preconditioner=precond, grad_clip=self.grad_clip)
        if sync and single_chain_finite(proposal):
            # one chain, finite proposal: the same decision with Python branches instead of
            # mask tensors (each small operation is ~3% of a cheap step); the ratio is NaN
            # only if it overflows, and nan_to_num is the identity otherwise
            if math.isnan(float(log_ratio)):
                accept_prob = accept_prob_from_log_ratio(log_ratio)
            else:
                accept_prob = log_ratio.clamp(max=0.0).exp()
            info = StepInfo(accept_prob, no_divergence(log_ratio.device), False)
            u = torch.rand_like(accept_prob) if uniform is None else uniform
            if not accept or float(u) < float(accept_prob):
                return proposal, info
            # rejected: a fresh position tensor, as torch.where would give
            return state._replace(position=state.position.clone()), info
        finite = is_finite(proposal)
        log_ratio = torch.where(finite, log_ratio, torch.full_like(log_ratio, -float("inf")))
        accept_prob = accept_prob_from_log_ratio(log_ratio)
        if not accept:
            return proposal, StepInfo(accept_prob, ~finite, False)
        accepted = (torch.rand_like(accept_prob) if uniform is None else uniform) < accept_prob
        new = select(accepted, proposal, state)
        return new, StepInfo(accept_prob, ~finite, (not bool(finite.all())) if sync else None)
