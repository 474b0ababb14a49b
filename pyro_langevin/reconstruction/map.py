r"""
MAP estimates: :math:`\hat x = \arg\min_x U(x)` for a Pyro ``potential_fn``.

The default optimiser is L-BFGS with a strong-Wolfe line search (Nocedal & Wright
2006, Alg. 7.5 and 3.5, as implemented by :class:`torch.optim.LBFGS`); Adam
(Kingma & Ba 2015) is the alternative for potentials whose gradient is noisy or
non-smooth. Iterations stop when

- the largest absolute gradient coordinate is at most ``grad_tol``, or
- the potential changes by at most ``rel_tol * max(1, |U|)`` in one iteration
  (L-BFGS) or over the last 10 iterations (Adam),

or after ``max_iter`` iterations (then :attr:`MAPEstimate.converged` is False and a
:class:`ConvergenceWarning` is issued). A non-finite potential or gradient at any
evaluation (line-search trials included) raises :class:`FloatingPointError`; nothing
is replaced silently.
"""
import math
import numbers
import warnings
from typing import Callable, Dict

import torch


class ConvergenceWarning(UserWarning):
    """:func:`map_estimate` stopped at ``max_iter`` before meeting its tolerances."""


class MAPEstimate(dict):
    """The estimate, a dict ``{site: tensor}`` shaped like ``init_params``, with facts
    about the run as attributes.

    :ivar float potential: :math:`U` at the estimate.
    :ivar float grad_max: largest absolute gradient coordinate there.
    :ivar int num_iterations: optimiser iterations taken.
    :ivar bool converged: a tolerance was met before ``max_iter``.
    """

    def __init__(self, params, potential, grad_max, num_iterations, converged):
        super().__init__(params)
        self.potential = potential
        self.grad_max = grad_max
        self.num_iterations = num_iterations
        self.converged = converged


def _check(name, value, integer=False):
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive {'integer' if integer else 'number'}, got {value!r}")
    return value


def map_estimate(potential_fn: Callable[[Dict[str, torch.Tensor]], torch.Tensor],
                 init_params: Dict[str, torch.Tensor], *, optimizer: str = "lbfgs", lr: float = None,
                 max_iter: int = 1000, grad_tol: float = 1e-6, rel_tol: float = 1e-12,
                 history_size: int = 20, scale: Dict[str, torch.Tensor] = None) -> MAPEstimate:
    r"""Minimise ``potential_fn`` from ``init_params``.

    :param callable potential_fn: maps ``{site: tensor}`` to a scalar potential
        (a tensor with several elements, e.g. one per vectorized chain, is summed:
        the chains are optimised jointly and independently).
    :param dict init_params: starting point ``{site: tensor}``; not modified.
    :param str optimizer: ``"lbfgs"`` (default) or ``"adam"``.
    :param float lr: step size (default 1 for L-BFGS, whose line search scales it,
        0.01 for Adam).
    :param int max_iter: most iterations (an L-BFGS iteration includes its line search).
    :param float grad_tol: stop when :math:`\max_i |\partial U / \partial x_i|` is at most this.
    :param float rel_tol: stop when :math:`U` changes by at most ``rel_tol * max(1, |U|)``
        (0: rely on ``grad_tol`` alone). Near a minimum the change of :math:`U` is
        quadratic in the gradient, so this rule mostly catches stagnation at the
        dtype's precision (in float32, say).
    :param int history_size: L-BFGS memory.
    :param dict scale: optional per-site positive scales :math:`s` (broadcasting to the
        site's shape): the optimiser then works on :math:`u` with
        :math:`x = x_0 + s \odot u`, a diagonal preconditioning that helps stiff
        problems (inpainting pins observed pixels to :math:`\sigma`, the others vary on the
        prior's scale; see :func:`~pyro_langevin.reconstruction.diagonal_scale`). The
        stopping rules still refer to :math:`x` and :math:`U`.
    :returns: :class:`MAPEstimate`, e.g. ``map_estimate(U, {"x": y})["x"]``.
    :raises FloatingPointError: when the potential or its gradient is not finite.
    """
    if not isinstance(init_params, dict) or not init_params:
        raise TypeError(f"init_params must be a non-empty dict of tensors, got {init_params!r}")
    for name, value in init_params.items():
        if not torch.is_tensor(value) or not value.is_floating_point():
            raise TypeError(f"init_params[{name!r}] must be a floating-point tensor, got {value!r}")
    if optimizer not in ("lbfgs", "adam"):
        raise ValueError(f"optimizer must be 'lbfgs' or 'adam', got {optimizer!r}")
    max_iter = _check("max_iter", max_iter, integer=True)
    grad_tol = _check("grad_tol", grad_tol)
    if isinstance(rel_tol, bool) or not isinstance(rel_tol, numbers.Real) or not rel_tol >= 0:
        raise ValueError(f"rel_tol must be a non-negative number, got {rel_tol!r}")
    lr = _check("lr", 1.0 if optimizer == "lbfgs" and lr is None else 0.01 if lr is None else lr)
    scale = {} if scale is None else dict(scale)
    for name, s in scale.items():
        if name not in init_params:
            raise ValueError(f"scale names the site {name!r}, which is not in init_params {sorted(init_params)}")
        if not torch.is_tensor(s) or not bool((s > 0).all()):
            raise ValueError(f"scale[{name!r}] must be a tensor of positive values")
    origin = {k: v.detach() for k, v in init_params.items()}
    scale = {k: scale[k].to(v).expand_as(v) if k in scale else torch.ones_like(v) for k, v in origin.items()}
    # the optimised variables u, with x = x_0 + s * u
    shifts = {k: torch.zeros_like(v, memory_format=torch.contiguous_format).requires_grad_(True)
              for k, v in origin.items()}
    leaves = list(shifts.values())
    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS(leaves, lr=lr, max_iter=1, max_eval=25, history_size=history_size,
                                tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe")
    else:
        opt = torch.optim.Adam(leaves, lr=lr)
    num_evals = [0]

    def position():
        return {k: origin[k] + scale[k] * u for k, u in shifts.items()}

    def closure():
        opt.zero_grad(set_to_none=False)
        value = potential_fn(position()).sum()
        if not torch.isfinite(value):
            raise FloatingPointError(f"the potential is {float(value.detach())} after {num_evals[0]} evaluations: "
                                     "check the model and the starting point, or lower lr")
        value.backward()
        value = value.detach()
        for name, u in shifts.items():
            if not bool(torch.isfinite(u.grad).all()):
                raise FloatingPointError(f"the gradient of the potential for {name!r} is not finite after "
                                         f"{num_evals[0]} evaluations")
        num_evals[0] += 1
        return value

    def grad_max():  # of U with respect to x: dU/du = s * dU/dx
        return max(float((u.grad / scale[k]).abs().max()) for k, u in shifts.items())

    history = [float(closure())]
    converged = grad_max() <= grad_tol
    it = 0
    window = 1 if optimizer == "lbfgs" else 10
    while not converged and it < max_iter:
        if optimizer == "lbfgs":
            opt.step(closure)
            # the line search leaves .grad at its last trial point: evaluate at the accepted one
            history.append(float(closure()))
        else:  # Adam evaluates before its update; the stopping rules lag one iteration
            history.append(float(opt.step(closure)))
        it += 1
        past = history[-1 - window] if len(history) > window else math.inf
        converged = grad_max() <= grad_tol or abs(history[-1] - past) <= rel_tol * max(1.0, abs(history[-1]))
    if optimizer == "adam":
        history.append(float(closure()))  # potential and gradient at the returned point
    if not converged:
        warnings.warn(f"map_estimate stopped after max_iter={max_iter} iterations with max |grad U| = "
                      f"{grad_max():.3g} > grad_tol={grad_tol}", ConvergenceWarning, stacklevel=2)
    with torch.no_grad():
        out = position()
    return MAPEstimate(out, history[-1], grad_max(), it, converged)
