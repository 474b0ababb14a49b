import torch

from ..langevin import is_finite, langevin_step, log_accept_ratio, select
from .base import LangevinKernel, StepInfo, accept_prob_from_log_ratio, no_divergence, single_chain_finite


class ULA(LangevinKernel):
    r"""The unadjusted Langevin algorithm as a Pyro :class:`~pyro.infer.mcmc.mcmc_kernel.MCMCKernel`:

    .. math::

        x' = x - h\, M \nabla U(x) + \sqrt{2 h T}\, M^{1/2} z, \qquad z \sim \mathcal N(0, I),

    in the unconstrained space, every move accepted. Its stationary law is not
    :math:`\pi_T \propto e^{-U/T}` but a perturbation of order :math:`h`: for
    :math:`U(x) = x^\top \Sigma^{-1} x / 2` (and :math:`M = I`, :math:`T = 1`) it is
    :math:`\mathcal N\big(0,\ \Sigma (I - h \Sigma^{-1}/2)^{-1}\big)`. Use
    :class:`~pyro_langevin.MALA` for the exact law.

    Usage mirrors Pyro's :class:`~pyro.infer.mcmc.HMC`::

        mcmc = MCMC(ULA(potential_fn=U, step_size=0.1), num_samples=2000,
                    initial_params={"x": torch.zeros(3)})
        mcmc = MCMC(ULA(model=model, step_size=1e-3), num_samples=2000)

    **Self-tuning.** With ``adapt_step_size=True`` the step size is tuned during warmup
    by dual averaging on the Metropolis acceptance probability that each ULA proposal
    *would* have under MALA (computed, never used to reject). That probability
    measures how far one step is from reversible with respect to :math:`\pi_T`, so a
    higher ``target_accept_prob`` gives a smaller :math:`h` and a smaller bias (for a
    Gaussian the bias of the variance is :math:`O(h)`); the default 0.9 is stricter
    than MALA's optimal 0.574, since nothing corrects ULA's error. A low target can put
    :math:`h` near ULA's stability limit :math:`2\lambda_{\min}(\Sigma)`: on a 2-D
    Gaussian with standard deviations 1 and 1.5 and correlation 0.5
    (``tests/kernels/test_ula.py``), target 0.6 tuned :math:`h = 1.24` and stationary
    variances 13 and 2.5 times the target's; target 0.95 tuned :math:`h = 0.25` and
    variances 1.15 and 1.06 times them. The shadow rate is reported in
    :meth:`diagnostics` and :meth:`sample_stats`.

    **Failure.** A step whose potential or gradient is not finite is not taken (per
    chain): the chain stays, the step counts as a divergence, and after
    ``max_consecutive_divergences`` in a row a :class:`RuntimeError` names the step
    size. No NaN reaches the samples.

    :param model: Pyro model (exclusive with ``potential_fn``); samples are returned
        in the constrained space by :class:`~pyro.infer.mcmc.api.MCMC`.
    :param callable potential_fn: :math:`U`, taking a dict of unconstrained tensors;
        shape ``[]`` for one chain, ``[C]`` with ``vectorized_chains=C`` (then every
        value has shape ``[C, *site_shape]``). Needs ``initial_params``. A kernel with
        neither model nor ``potential_fn`` is a move configuration for
        :class:`~pyro_langevin.ebm.ContrastiveDivergence`.
    :param float step_size: :math:`h > 0` (initial value when adapted).
    :param float temperature: :math:`T > 0`, default 1.
    :param float noise_scale: :math:`\sigma`, the alternative EBM parameterisation
        :math:`x - h\nabla U + \sigma z`, i.e. :math:`T = \sigma^2 / (2h)`; exclusive
        with ``temperature``. The temperature is what is kept when ``step_size`` is
        adapted.
    :param bool adapt_step_size: tune :math:`h` in warmup (see above).
    :param float target_accept_prob: the shadow acceptance rate to reach (default 0.9).
    :param bool adapt_mass_matrix: estimate the preconditioner :math:`M` in warmup.
    :param bool full_mass: dense rather than diagonal :math:`M`.
    :param dict transforms: as in :func:`~pyro.infer.mcmc.util.initialize_model`.
    :param int max_plate_nesting: as in Pyro's HMC.
    :param callable init_strategy: per-site initialisation (default ``init_to_uniform``).
    :param int vectorized_chains: ``C`` independent chains in one tensor, advanced by
        one batched gradient call. With ``potential_fn``, ``initial_params`` values
        have shape ``[C, *site_shape]`` and the potential returns shape ``[C]``. With
        a model, the kernel runs it inside an outer plate of size ``C`` left of all
        its batch dimensions (:mod:`pyro_langevin.model_potential`; the model must be
        vectorizable there, as for ``Trace_ELBO(vectorize_particles=True)``) and
        draws each chain's start from ``init_strategy``. Chains share the step size
        and preconditioner; acceptance and divergences are kept per chain.
    :param int thinning: Langevin steps per returned sample (warmup counts returned
        samples too), so Python and Pyro's per-sample work run once per ``thinning`` steps.
    :param float grad_clip: elementwise clamp of :math:`\nabla U` in the drift.
    :param tuple clamp: ``(low, high)`` bounds applied to every new position.
    :param int max_consecutive_divergences: raise after one chain has diverged this many
        steps in a row.
    :param bool restart_stuck_chains: with vectorized chains and ``adapt_step_size``,
        restart chains that stayed at near-zero acceptance through the initial warmup
        buffer from random healthy chains (once, in warmup; see
        :class:`~pyro_langevin.adaptation.LangevinAdapter`). Default True.
    :param bool track_accept_prob: compute the shadow acceptance probability (default:
        ``adapt_step_size``); it costs a few tensor operations per step.
    :param bool jit_compile: after warmup, run the steps of each returned sample in
        blocks of up to 32 compiled with ``torch.compile`` (the same chain as eager for
        the same seed; see :mod:`pyro_langevin.kernels.compiled`). Pays off for cheap
        potentials and one or a few chains; compilation takes seconds to a minute.

    **References**

    [1] G. O. Roberts, R. L. Tweedie (1996), *Exponential convergence of Langevin
        distributions and their discrete approximations*, Bernoulli 2(4).
    [2] A. Durmus, E. Moulines (2017), *Nonasymptotic convergence analysis for the
        unadjusted Langevin algorithm*, Ann. Appl. Probab. 27(3).
    """

    _default_target_accept_prob = 0.9

    def __init__(self, model=None, potential_fn=None, step_size=0.01, temperature=None, *, track_accept_prob=None,
                 **kwargs):
        super().__init__(model, potential_fn, step_size, temperature, **kwargs)
        self.track_accept_prob = self.adapt_step_size if track_accept_prob is None else bool(track_accept_prob)
        if self.clamp is not None and self.track_accept_prob:
            raise ValueError(
                f"ULA cannot compute the acceptance probability of clamped proposals (clamp={self.clamp!r}), "
                "which adapt_step_size and track_accept_prob need: the clamped move has no Gaussian density"
            )

    def move(self, state, potential_fn=None, *, step_size=None, accept=True, sync=True, noise=None, uniform=None):
        h = self.step_size if step_size is None else step_size
        precond = self.adapter.preconditioner
        proposal, noise = langevin_step(
            state, self._potential if potential_fn is None else potential_fn, h, self.temperature,
            preconditioner=precond, grad_clip=self.grad_clip, clamp=self.clamp, noise=noise,
        )
        accept_prob = None
        if self.track_accept_prob or not accept:
            log_ratio = log_accept_ratio(state, proposal, noise, h, self.temperature,
                                         preconditioner=precond, grad_clip=self.grad_clip)
            accept_prob = accept_prob_from_log_ratio(log_ratio)
        if sync and single_chain_finite(proposal):
            # one chain: no mask tensors (each small operation is ~3% of a cheap step)
            return proposal, StepInfo(accept_prob, no_divergence(proposal.potential.device), False)
        finite = is_finite(proposal)
        if sync and bool(finite.all()):
            return proposal, StepInfo(accept_prob, ~finite, False)
        if accept:
            proposal = select(finite, proposal, state)
        if accept_prob is not None:  # zero where not finite (U = -inf would give 1)
            accept_prob = torch.where(finite, accept_prob, torch.zeros_like(accept_prob))
        return proposal, StepInfo(accept_prob, ~finite, True if sync else None)
