r"""
The Pyro shell shared by :class:`~pyro_langevin.ULA` and :class:`~pyro_langevin.MALA`.

A kernel stores configuration and counters and calls the one Langevin update of
:mod:`pyro_langevin.langevin`; the subclasses only say how a proposal is accepted
(:meth:`LangevinKernel.move`). The chain state is a :class:`~pyro_langevin.langevin.LangevinState`
over the flat unconstrained parameters, shape ``[D]`` (one chain) or ``[C, D]``
(``vectorized_chains=C``), caching the potential and its gradient, so that each
Langevin step costs one gradient evaluation.
"""
import math
import multiprocessing
import numbers
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

import torch
from pyro.infer.autoguide.initialization import init_to_uniform
from pyro.infer.mcmc.mcmc_kernel import MCMCKernel
from pyro.infer.mcmc.util import initialize_model

from ..adaptation import LangevinAdapter, WindowEnd
from ..langevin import LangevinState, init_state
from ..model_potential import VectorizedModel
from .compiled import CompiledTransitions


NOISE_BLOCK = 32  # Langevin steps whose noise is drawn at once (and compiled into one graph)


class StepInfo(NamedTuple):
    """Per-step facts of one :meth:`LangevinKernel.move`.

    :ivar accept_prob: Metropolis acceptance probability, shape ``batch_shape``: MALA's
        own, or for ULA the one its proposal *would* have (``None`` when not tracked).
    :ivar diverging: bool, shape ``batch_shape``: the proposal was not finite and was
        not taken.
    :ivar any_diverging: ``bool(diverging.any())``, computed once; ``None`` from a
        branch-free ``move(..., sync=False)``, which never reads a tensor back to Python.
    """

    accept_prob: Optional[torch.Tensor]
    diverging: torch.Tensor
    any_diverging: Optional[bool]


def accept_prob_from_log_ratio(log_ratio: torch.Tensor) -> torch.Tensor:
    """:math:`\\min(1, e^{\\log\\alpha})`, zero where the ratio is NaN."""
    return torch.nan_to_num(log_ratio.clamp(max=0.0).exp(), nan=0.0)


def single_chain_finite(state: LangevinState) -> bool:
    """For one chain (a 0-d potential): the potential and the sum of the gradient are
    finite -- the test of :func:`~pyro_langevin.langevin.is_finite` with one tensor
    operation and no mask (a NaN or inf coordinate makes the sum non-finite). Unlike
    ``is_finite``, a finite potential and gradient sum whose total overflows pass."""
    return (state.potential.dim() == 0 and math.isfinite(float(state.potential))
            and math.isfinite(float(state.grad.sum())))


_NO_DIVERGENCE: Dict[torch.device, torch.Tensor] = {}


def no_divergence(device: torch.device) -> torch.Tensor:
    """A 0-d ``False`` on ``device``, cached: the ``diverging`` mask of a finite
    single-chain step without an allocation per step. Shared: never modify it in place."""
    mask = _NO_DIVERGENCE.get(device)
    if mask is None:
        mask = _NO_DIVERGENCE[device] = torch.zeros((), dtype=torch.bool, device=device)
    return mask


def _check_positive(name, value, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive number, got {value!r} of type {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return float(value)


def _check_int(name, value, minimum=1, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} of type {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


class LangevinKernel(MCMCKernel):
    r"""Base class of the Langevin kernels; see :class:`~pyro_langevin.ULA` for the
    arguments. Subclasses implement :meth:`move`."""

    _default_target_accept_prob = 0.574
    _needs_uniforms = False  # MALA draws one uniform per chain and step

    def __init__(
        self,
        model=None,
        potential_fn=None,
        step_size=0.01,
        temperature=None,
        *,
        noise_scale=None,
        adapt_step_size=False,
        target_accept_prob=None,
        adapt_mass_matrix=False,
        full_mass=False,
        transforms=None,
        max_plate_nesting=None,
        init_strategy=init_to_uniform,
        vectorized_chains=None,
        thinning=1,
        grad_clip=None,
        clamp=None,
        max_consecutive_divergences=100,
        restart_stuck_chains=True,
        jit_compile=False,
    ):
        if model is not None and potential_fn is not None:
            raise ValueError("Only one of model or potential_fn must be specified, got both")
        if model is not None and not callable(model):
            raise TypeError(f"model must be callable, got {model!r}")
        if potential_fn is not None and not callable(potential_fn):
            raise TypeError(f"potential_fn must be callable, got {potential_fn!r}")
        self.model = model
        self.potential_fn = potential_fn
        self.step_size = _check_positive("step_size", step_size)
        if noise_scale is not None:
            if temperature is not None:
                raise ValueError(
                    f"give either temperature or noise_scale, got temperature={temperature!r} "
                    f"and noise_scale={noise_scale!r}"
                )
            noise_scale = _check_positive("noise_scale", noise_scale)
            temperature = noise_scale**2 / (2.0 * self.step_size)  # sigma = sqrt(2 h T)
        self.temperature = _check_positive("temperature", 1.0 if temperature is None else temperature)
        if target_accept_prob is None:
            target_accept_prob = self._default_target_accept_prob
        if isinstance(target_accept_prob, bool) or not isinstance(target_accept_prob, numbers.Real) or not (
            0.0 < target_accept_prob < 1.0
        ):
            raise ValueError(f"target_accept_prob must be in (0, 1), got {target_accept_prob!r}")
        if full_mass and not adapt_mass_matrix:
            raise ValueError("full_mass=True needs adapt_mass_matrix=True")
        if not callable(init_strategy):
            raise TypeError(f"init_strategy must be callable, got {init_strategy!r}")
        self.vectorized_chains = _check_int("vectorized_chains", vectorized_chains, allow_none=True)
        self.thinning = _check_int("thinning", thinning)
        self.grad_clip = _check_positive("grad_clip", grad_clip, allow_none=True)
        if clamp is not None:
            if len(clamp) != 2 or not clamp[0] < clamp[1]:
                raise ValueError(f"clamp must be a pair (low, high) with low < high, got {clamp!r}")
            clamp = (float(clamp[0]), float(clamp[1]))
        self.clamp = clamp
        self.max_consecutive_divergences = _check_int("max_consecutive_divergences", max_consecutive_divergences)
        self.max_plate_nesting = _check_int("max_plate_nesting", max_plate_nesting, minimum=0, allow_none=True)
        self.init_strategy = init_strategy
        self.jit_compile = bool(jit_compile)
        self._compiled = CompiledTransitions(self) if self.jit_compile else None
        self.transforms = transforms
        self._user_transforms = transforms
        self.adapter = LangevinAdapter(
            adapt_step_size=bool(adapt_step_size),
            target_accept_prob=float(target_accept_prob),
            adapt_mass_matrix=bool(adapt_mass_matrix),
            full_mass=bool(full_mass),
            restart_stuck_chains=bool(restart_stuck_chains),
        )
        self._initial_params = None
        self._user_initial_params = None
        self._num_initial_params_set = 0
        self._reset()

    # ------------------------------------------------------------------ properties
    @property
    def adapt_step_size(self) -> bool:
        return self.adapter.adapt_step_size

    @property
    def target_accept_prob(self) -> float:
        return self.adapter.target_accept_prob

    @property
    def preconditioner(self):
        """The current preconditioner :math:`M` (``None``: identity)."""
        return self.adapter.preconditioner

    @property
    def initial_params(self) -> Optional[Dict[str, torch.Tensor]]:
        return self._initial_params

    @initial_params.setter
    def initial_params(self, params):
        if params is not None and not isinstance(params, dict):
            raise TypeError(f"initial_params must be a dict of tensors, got {type(params).__name__}")
        self._initial_params = params
        self._user_initial_params = params
        self._num_initial_params_set += 1

    # ------------------------------------------------------------------ Pyro contract
    def _reset(self):
        self._t = 0
        self._warmup_steps = 0
        self._state: Optional[LangevinState] = None
        self._last_sample = None
        self._divergences: List[int] = []
        self._consecutive_divergences: Optional[torch.Tensor] = None  # per chain, while some chain diverges
        self._num_divergent = 0
        self._restarted_chains: List[int] = []
        self._position_version = None
        self._stats: Dict[str, list] = {"potential": [], "accept_prob": [], "diverging": []}

    def setup(self, warmup_steps, *args, **kwargs):
        """Prepare a run of ``warmup_steps`` warmup draws (safe to call again: each call
        starts afresh). With a model, finds transforms, the potential and, unless given,
        initial parameters via :func:`pyro.infer.mcmc.util.initialize_model`."""
        warmup_steps = _check_int("warmup_steps", warmup_steps, minimum=0)
        self._reset()
        self._warmup_steps = warmup_steps
        if self.model is None and self.potential_fn is None:
            raise ValueError(
                f"{type(self).__name__} was built with neither model nor potential_fn: it is a move "
                "configuration (for ContrastiveDivergence, say) and cannot run under MCMC"
            )
        if (
            self._num_initial_params_set > 1
            and self._user_initial_params is not None
            and multiprocessing.parent_process() is not None
        ):
            raise RuntimeError(
                "MCMC(num_chains>1) runs chains in worker processes that all receive the last chain's "
                f"initial_params; use {type(self).__name__}(..., vectorized_chains=C) to run C chains "
                "from their own initial params in one process"
            )
        if self.model is not None:
            self._setup_model(args, kwargs)
        elif self._initial_params is None:
            raise ValueError(
                f"{type(self).__name__}(potential_fn=...) needs initial_params: pass "
                "MCMC(..., initial_params={name: tensor}) or set kernel.initial_params"
            )
        else:
            self._potential_of_params = self.potential_fn
        self._setup_layout(self._initial_params)
        self._state = self._init_state(self._initial_params)
        self._last_sample = self._initial_params
        self._position_version = self._state.position._version
        self.adapter.configure(warmup_steps * self.thinning, self.step_size, self._state.position.shape[-1])
        if self.adapt_step_size and warmup_steps > 0:
            self.adapter.restart_step_size(self._find_reasonable_step_size(self._state, self.step_size))
            self.step_size = self.adapter.step_size

    def _setup_model(self, args, kwargs):
        C = self.vectorized_chains
        init_params, potential_fn, transforms, trace = initialize_model(
            self.model,
            model_args=args,
            model_kwargs=kwargs,
            transforms=self._user_transforms,
            max_plate_nesting=self.max_plate_nesting,
            init_strategy=self.init_strategy,
            initial_params=self._user_initial_params,
        )
        self.transforms = transforms
        if C is None:
            self._potential_of_params = potential_fn
        else:
            vectorized = VectorizedModel(self.model, args, kwargs, transforms, C, trace, self.max_plate_nesting)
            self._potential_of_params = vectorized.potential
            if self._user_initial_params is None:
                # every chain its own draw from init_strategy, in one run of the model
                init_params = vectorized.initial_params(self.init_strategy)
        if self._user_initial_params is None:
            self._initial_params = init_params

    def _setup_layout(self, params):
        if not params:
            raise ValueError(f"initial_params must name at least one site, got {params!r}")
        first = next(iter(params.values()))
        batch = ()
        if self.vectorized_chains is not None:
            batch = (self.vectorized_chains,)
        layout = []
        for name in sorted(params):
            v = params[name]
            if not torch.is_tensor(v):
                raise TypeError(f"initial_params[{name!r}] must be a tensor, got {type(v).__name__}")
            if v.dtype != first.dtype or v.device != first.device:
                raise ValueError(
                    f"initial_params must share one dtype and device, got {v.dtype}/{v.device} "
                    f"for {name!r} and {first.dtype}/{first.device}"
                )
            if tuple(v.shape[: len(batch)]) != batch:
                raise ValueError(
                    f"with vectorized_chains={self.vectorized_chains}, initial_params[{name!r}] must have "
                    f"shape [{self.vectorized_chains}, *site_shape], got {tuple(v.shape)}"
                )
            site_shape = tuple(v.shape[len(batch):])
            layout.append((name, site_shape, math.prod(site_shape)))
        self._batch_shape = batch
        self._layout = layout

    def _pack(self, params) -> torch.Tensor:
        flat = [params[name].detach().reshape(self._batch_shape + (-1,)) for name, _, _ in self._layout]
        return flat[0] if len(flat) == 1 else torch.cat(flat, dim=-1)

    def _unpack(self, flat: torch.Tensor) -> Dict[str, torch.Tensor]:
        if len(self._layout) == 1:
            name, shape, _ = self._layout[0]
            # a vector site is the flat position itself: no view, so no autograd node per step
            return {name: flat if len(shape) == 1 else flat.reshape(self._batch_shape + shape)}
        out, start = {}, 0
        for name, shape, size in self._layout:
            out[name] = flat[..., start : start + size].reshape(self._batch_shape + shape)
            start += size
        return out

    def _potential(self, flat: torch.Tensor) -> torch.Tensor:
        """:math:`U` of the flat position, shape ``batch_shape``."""
        return self._potential_of_params(self._unpack(flat))

    def _init_state(self, params) -> LangevinState:
        state = init_state(self._potential, self._pack(params))
        if tuple(state.potential.shape) != self._batch_shape:
            expected = f"[{self.vectorized_chains}] (one potential per vectorized chain)" if self._batch_shape else "[] (a scalar)"
            raise ValueError(
                f"potential_fn must return shape {expected}, got {tuple(state.potential.shape)}"
            )
        if not bool(torch.isfinite(state.potential).all()) or not bool(torch.isfinite(state.grad).all()):
            raise ValueError(
                f"the potential or its gradient is not finite at the initial params "
                f"(potential={state.potential}); choose initial_params inside the support"
            )
        return state

    def _find_reasonable_step_size(self, state: LangevinState, step_size: float) -> float:
        """Double or halve ``step_size`` until the (chain-averaged) acceptance probability
        of one proposal from ``state`` crosses the target, and return the largest step
        size tried whose acceptance is above it (after Hoffman & Gelman 2014, Alg. 4;
        at most 50 doublings or halvings). Costs one gradient per try; the chain does
        not move."""
        target = self.target_accept_prob

        def accept(h):
            _, info = self.move(state, step_size=h, accept=False)
            return float(info.accept_prob.mean())

        above = accept(step_size) > target
        factor = 2.0 if above else 0.5
        for _ in range(50):
            new = step_size * factor
            if (accept(new) > target) != above:
                return step_size if above else new
            step_size = new
        return step_size

    def move(self, state: LangevinState, potential_fn: Optional[Callable] = None, *, step_size=None, accept=True,
             sync=True, noise=None, uniform=None) -> Tuple[LangevinState, StepInfo]:
        """One transition from ``state`` with this kernel's configuration.

        :param callable potential_fn: potential of the position (default: the one of
            the model or ``potential_fn`` the kernel was set up with).
        :param float step_size: overrides the current step size (a float or a 0-d tensor).
        :param bool accept: if False, return the proposal and its acceptance
            probability without the accept/reject decision (used to tune the step size).
        :param bool sync: if False, never read a tensor back to Python (no fast paths,
            ``StepInfo.any_diverging`` is ``None``): the form that ``torch.compile`` traces.
        :param torch.Tensor noise: the step's :math:`z`, shape of the position (default:
            drawn from torch's global generator).
        :param torch.Tensor uniform: MALA's uniform draw for the accept decision, shape
            ``batch_shape`` (default: drawn).
        """
        raise NotImplementedError

    def sample(self, params):
        state = self._state
        if params is not self._last_sample or state.position._version != self._position_version:
            # a caller moved the chain (other params, or ours mutated in place): start from there
            state = self._init_state(params)
        warmup = self._t < self._warmup_steps
        compiled = None if warmup else self._compiled
        diverging = None
        accept_sum = None
        done = 0
        while done < self.thinning:
            # noise for a block of steps at once: one RNG call per block, the same draws
            # for the eager and the compiled path
            n = min(NOISE_BLOCK, self.thinning - done)
            noise = uniforms = result = None
            if n > 1 or compiled is not None:
                # (a single eager step draws its own: the same numbers, in the same order)
                noise = torch.randn((n,) + state.position.shape, dtype=state.position.dtype,
                                    device=state.position.device)
                if self._needs_uniforms:
                    uniforms = torch.rand((n,) + state.potential.shape, dtype=state.potential.dtype,
                                          device=state.potential.device)
            if compiled is not None:
                result = compiled(state, noise, uniforms)
            if result is not None:
                state, num_diverging, block_accept = result
                if bool(num_diverging.any()):
                    diverging = num_diverging > 0 if diverging is None else diverging | (num_diverging > 0)
                    self._record_divergences(num_diverging, n)
                elif self._consecutive_divergences is not None:
                    self._consecutive_divergences = None
                if block_accept is not None:
                    accept_sum = block_accept if accept_sum is None else accept_sum + block_accept
                done += n
                continue
            for i in range(n):
                state, info = self.move(state, noise=None if noise is None else noise[i],
                                        uniform=None if uniforms is None else uniforms[i])
                if info.any_diverging:
                    diverging = info.diverging if diverging is None else diverging | info.diverging
                    self._record_divergences(info.diverging.long())
                elif self._consecutive_divergences is not None:
                    self._consecutive_divergences = None
                if warmup:
                    window_end = self.adapter.step(self._t * self.thinning + done + i, state.position, info.accept_prob)
                    if window_end is not None:
                        state = self._end_of_window(state, window_end)
                    self.step_size = self.adapter.step_size
                elif info.accept_prob is not None:
                    accept_sum = info.accept_prob if accept_sum is None else accept_sum + info.accept_prob
            done += n
        if not warmup:
            draw = self._t - self._warmup_steps
            stats = self._stats
            stats["potential"].append(state.potential)
            if accept_sum is not None:
                stats["accept_prob"].append(accept_sum / self.thinning if self.thinning > 1 else accept_sum)
            if diverging is not None:
                self._divergences.append(draw)
                stats["diverging"].append((draw, diverging))
        self._t += 1
        self._state = state
        self._position_version = state.position._version
        out = self._unpack(state.position)
        self._last_sample = out
        return out

    def _record_divergences(self, num_diverging: torch.Tensor, num_steps: int = 1):
        """Count ``num_diverging`` (int or bool, ``batch_shape``) divergent steps out of a
        block of ``num_steps`` (one eager step, or a compiled block). A chain's run of
        consecutive divergences grows by the block only when every step of the block
        diverged (and restarts otherwise); raise when one chain's run reaches
        ``max_consecutive_divergences``."""
        self._num_divergent += int(num_diverging.sum())
        whole = num_diverging == num_steps
        run = self._consecutive_divergences
        run = whole.long() * num_steps if run is None else (run + num_steps) * whole
        self._consecutive_divergences = run
        longest = int(run.max())
        if longest >= self.max_consecutive_divergences:
            raise RuntimeError(
                f"{longest} divergent Langevin steps in a row at step_size="
                f"{self.step_size:.4g}: the potential or its gradient is not finite where the chain goes. "
                "Try a smaller step_size (or check the potential and the initial params)."
            )

    def _end_of_window(self, state: LangevinState, window_end: WindowEnd) -> LangevinState:
        """Act on the end of an adaptation window: restart stuck vectorized chains from
        random healthy ones, and search a step size for a new preconditioner."""
        if window_end.stuck_chains is not None:
            stuck = window_end.stuck_chains
            healthy = (~stuck).nonzero().flatten()
            restarted = stuck.nonzero().flatten()
            source = torch.arange(stuck.shape[0], device=stuck.device)
            pick = torch.randint(len(healthy), (len(restarted),), device=stuck.device)
            source[restarted] = healthy[pick]
            state = LangevinState(state.position[source], state.potential[source], state.grad[source])
            self._restarted_chains.extend(restarted.tolist())
        if window_end.new_preconditioner and self.adapt_step_size:
            self.adapter.restart_step_size(self._find_reasonable_step_size(state, self.adapter.step_size))
        return state

    def logging(self):
        return {"step size": f"{self.step_size:.2e}", "divergences": self._num_divergent}

    def diagnostics(self):
        """``divergences``: post-warmup draw indices at which a step diverged (in any
        vectorized chain); ``step_size``; ``acceptance rate`` (mean over post-warmup
        steps, per chain when vectorized) where tracked; ``preconditioner`` when
        adapted; ``restarted_chains`` (vectorized chains restarted in warmup, see
        :class:`~pyro_langevin.adaptation.LangevinAdapter`) when any; and
        ``sample_stats`` (:meth:`sample_stats`)."""
        out = {"divergences": list(self._divergences), "step_size": self.step_size}
        if self._restarted_chains:
            out["restarted_chains"] = list(self._restarted_chains)
        accept = self._stats["accept_prob"]
        if accept:
            rate = torch.stack(accept).mean(0)
            out["acceptance rate"] = rate.tolist() if rate.dim() else float(rate)
        if self.preconditioner is not None:
            out["preconditioner"] = self.preconditioner.matrix
        # Pyro's MCMC keeps each chain's diagnostics, so per-draw statistics travel here
        out["sample_stats"] = self.sample_stats()
        return out

    def sample_stats(self) -> Dict[str, torch.Tensor]:
        """Per-draw statistics of the last run, each ``[num_draws, *batch_shape]``:
        ``lp`` (minus the potential), ``diverging``, ``step_size`` and, where tracked,
        ``accept_prob``."""
        stats = self._stats
        if not stats["potential"]:
            return {}
        lp = -torch.stack(stats["potential"])
        diverging = torch.zeros(lp.shape, dtype=torch.bool, device=lp.device)
        for draw, mask in stats["diverging"]:
            diverging[draw] = mask
        out = {"lp": lp, "diverging": diverging, "step_size": torch.full_like(lp, self.step_size)}
        if stats["accept_prob"]:
            out["accept_prob"] = torch.stack(stats["accept_prob"])
        return out

    def cleanup(self):
        """Drop the chain state (safe to call twice); statistics stay for :meth:`sample_stats`."""
        self._state = None
        self._last_sample = None
        if self._user_initial_params is None:
            self._initial_params = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_state"] = None
        state["_last_sample"] = None
        return state
