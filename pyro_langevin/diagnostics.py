r"""
Sample-quality diagnostics that need only the score :math:`\nabla \log p = -\nabla U`.

The kernel Stein discrepancy (KSD) measures how far an empirical distribution
:math:`Q_n = \frac1n \sum_i \delta_{x_i}` is from a target :math:`P` known up to its
normalising constant -- all an energy-based model, or a biased sampler such as ULA,
gives. With the Langevin Stein operator and a kernel :math:`k`,

.. math::

    \mathrm{KSD}(Q_n)^2 = \frac{1}{n^2} \sum_{i,j=1}^n k_0(x_i, x_j),

    k_0(x, y) = \nabla_x \cdot \nabla_y k(x, y) + b(x) \cdot \nabla_y k(x, y)
              + b(y) \cdot \nabla_x k(x, y) + k(x, y)\, b(x) \cdot b(y),

with :math:`b = \nabla \log p`. For the inverse multiquadric (IMQ) kernel
:math:`k(x, y) = (c^2 + \lVert x - y \rVert^2)^\beta`, :math:`\beta \in (-1, 0)`,
a KSD going to zero implies that :math:`Q_n` converges weakly to :math:`P` (for
distantly dissipative targets with Lipschitz score; Gaussian kernels lack this in
dimension 3 and up), and it goes to zero when :math:`Q_n` converges in Wasserstein
distance, which is why Gorham & Mackey (2017) recommend it, with
:math:`\beta = -1/2`, :math:`c = 1`. Writing :math:`r = x - y` and :math:`s = c^2 + \lVert r\rVert^2`,

.. math::

    k_0(x, y) = -4\beta(\beta - 1)\, \lVert r\rVert^2 s^{\beta - 2}
                - 2\beta d\, s^{\beta - 1}
                + 2\beta\, s^{\beta - 1} \big(b(y) - b(x)\big) \cdot r
                + s^\beta\, b(x) \cdot b(y).

For exact i.i.d. draws from :math:`P` the off-diagonal terms have mean zero, so
:math:`\mathbb E[\mathrm{KSD}^2] = \mathbb E_P[k_0(x, x)] / n
= \big(-2\beta d\, c^{2\beta - 2} + c^{2\beta}\, \mathbb E_P\lVert b\rVert^2\big) / n`:
the KSD of a correct sampler shrinks like :math:`n^{-1/2}`, and a biased one
levels off at its bias.

Two cautions. Correlated MCMC draws add more Monte Carlo error than i.i.d. ones
(roughly, :math:`n` becomes an effective sample size), so the KSD of a short run
mixes bias and mixing; compare runs of similar efficiency, or larger ones. And the
KSD is not affine invariant: :math:`c` is a length scale, so measure in coordinates
where the target is roughly isotropic (e.g. :math:`z = L^{-1}(x - m)` with score
:math:`L^\top b(m + L z)`).

**References**

[1] J. Gorham, L. Mackey (2017), *Measuring sample quality with kernels*, ICML.
[2] Q. Liu, J. Lee, M. Jordan (2016), *A kernelized Stein discrepancy for
    goodness-of-fit tests*, ICML.
[3] K. Chwialkowski, H. Strathmann, A. Gretton (2016), *A kernel test of goodness
    of fit*, ICML.
"""
import math
import numbers
from typing import Callable

import torch

from .langevin import potential_and_grad

__all__ = ["kernel_stein_discrepancy", "score_from_potential"]


def score_from_potential(potential_fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    r"""The score :math:`b(x) = \nabla \log p(x) = -\nabla U(x)` of a potential.

    :param callable potential_fn: :math:`U`, mapping ``[m, *event_shape]`` to ``[m]``
        (one potential per sample, as the Langevin kernels' vectorized potentials do).
    :returns: ``score_fn`` mapping ``[m, *event_shape]`` to ``[m, *event_shape]``.
    """
    if not callable(potential_fn):
        raise TypeError(f"potential_fn must be callable, got {potential_fn!r}")

    def score_fn(x: torch.Tensor) -> torch.Tensor:
        _, grad = potential_and_grad(potential_fn, x)
        return -grad

    return score_fn


def _check_args(samples, beta, c, chunk_size):
    if not torch.is_tensor(samples):
        raise TypeError(f"samples must be a tensor [n, *event_shape], got {type(samples).__name__}")
    if samples.dim() < 1 or samples.shape[0] < 1:
        raise ValueError(f"samples must have shape [n, *event_shape] with n >= 1, got {tuple(samples.shape)}")
    if not samples.is_floating_point():
        raise TypeError(f"samples must be floating point, got {samples.dtype}")
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not -1.0 < beta < 0.0:
        raise ValueError(f"beta must be in (-1, 0) for the IMQ kernel, got {beta!r}")
    if isinstance(c, bool) or not isinstance(c, numbers.Real) or not (math.isfinite(c) and c > 0):
        raise ValueError(f"c must be positive and finite, got {c!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")


def _scores(samples: torch.Tensor, score_fn: Callable, chunk_size: int) -> torch.Tensor:
    """``score_fn`` on ``chunk_size`` samples at a time, checked, as ``[n, d]``."""
    parts = []
    for start in range(0, samples.shape[0], chunk_size):
        x = samples[start : start + chunk_size]
        b = score_fn(x)
        if not torch.is_tensor(b) or b.shape != x.shape:
            got = tuple(b.shape) if torch.is_tensor(b) else type(b).__name__
            raise ValueError(f"score_fn must return the shape of its input {tuple(x.shape)}, got {got}")
        parts.append(b.detach().reshape(x.shape[0], -1).to(samples.dtype))
    scores = torch.cat(parts, 0)
    bad = ~torch.isfinite(scores).all(-1)
    if bool(bad.any()):
        raise ValueError(
            f"score_fn is not finite at {int(bad.sum())} of {scores.shape[0]} samples "
            f"(first at index {int(bad.nonzero()[0])}); the KSD is undefined there"
        )
    return scores


def _pair_factors(x: torch.Tensor, b: torch.Tensor, c2: float):
    r"""Augmented factors whose products give the pairwise terms of :math:`k_0` as
    ``[m, m]`` blocks (one matrix product each, no ``[m, m, d]`` array):

    - ``s_left[i] @ s_right[j] =`` :math:`c^2 + \lVert x_i\rVert^2 + \lVert x_j\rVert^2
      - 2 x_i \cdot x_j = s_{ij}`;
    - ``drift_left[i] @ drift_right[j] =`` :math:`x_i\cdot b_j + b_i\cdot x_j - b_i\cdot x_i
      - b_j\cdot x_j = (b_j - b_i)\cdot(x_i - x_j)`.
    """
    ones = torch.ones_like(x[:, :1])
    sq = (x * x).sum(-1, keepdim=True)
    bx = (b * x).sum(-1, keepdim=True)
    s_left, s_right = torch.cat([x, sq + c2, ones], 1), torch.cat([-2.0 * x, ones, sq], 1)
    drift_left, drift_right = torch.cat([x, b, bx, ones], 1), torch.cat([b, x, -ones, -bx], 1)
    return s_left, s_right, drift_left, drift_right


def _block_sum(I: slice, J: slice, b, s_left, s_right, drift_left, drift_right, beta: float, c2: float):
    r""":math:`\sum_{i \in I, j \in J} k_0(x_i, x_j)`, written as
    :math:`\sum s^{\beta-1} \big[s\, b_i\cdot b_j + 2\beta (b_j - b_i)\cdot r
    - 2\beta d - 4\beta(\beta-1)(1 - c^2/s)\big]` (using :math:`\lVert r\rVert^2 = s - c^2`)."""
    d = b.shape[1]
    s = (s_left[I] @ s_right[J].T).clamp_(min=c2)  # rounding can take ||r||^2 below zero
    inner = (b[I] @ b[J].T).mul_(s)
    inner.add_(drift_left[I] @ drift_right[J].T, alpha=2.0 * beta)
    inner.add_(-2.0 * beta * d - 4.0 * beta * (beta - 1.0))
    inner.add_(torch.reciprocal(s).mul_(4.0 * beta * (beta - 1.0) * c2))
    weight = torch.rsqrt(s).div_(s) if beta == -0.5 else s.pow_(beta - 1.0)  # s^(beta - 1); rsqrt is faster
    return torch.dot(inner.view(-1), weight.view(-1)).to(torch.float64)


def kernel_stein_discrepancy(
    samples: torch.Tensor,
    score_fn: Callable[[torch.Tensor], torch.Tensor],
    *,
    beta: float = -0.5,
    c: float = 1.0,
    chunk_size: int = 512,
) -> torch.Tensor:
    r"""Kernel Stein discrepancy of ``samples`` against the target whose score is
    ``score_fn``, with the IMQ kernel :math:`k(x,y) = (c^2 + \lVert x-y\rVert^2)^\beta`
    and the V-statistic

    .. math::

        \mathrm{KSD} = \Big(\frac{1}{n^2} \sum_{i,j=1}^n k_0(x_i, x_j)\Big)^{1/2},

        k_0(x, y) = -4\beta(\beta - 1)\, \lVert r\rVert^2 s^{\beta - 2}
                    - 2\beta d\, s^{\beta - 1}
                    + 2\beta\, s^{\beta - 1} \big(b(y) - b(x)\big) \cdot r
                    + s^\beta\, b(x) \cdot b(y),

    :math:`r = x - y`, :math:`s = c^2 + \lVert r\rVert^2`, :math:`b = \nabla\log p`
    (see the module docstring). Lower is better; for exact draws
    :math:`\mathbb E[\mathrm{KSD}^2] = \mathbb E_P[k_0(x,x)]/n`, e.g. :math:`2d/n` for a
    standard normal target with the defaults.

    The pairwise sum runs over ``chunk_size x chunk_size`` blocks of the upper
    triangle (:math:`k_0` is symmetric), each from three matrix products, so memory is
    :math:`O(n d + \text{chunk\_size}^2)` -- never ``[n, n, d]`` -- and time
    :math:`O(n^2 d)`. Positions are centred first (:math:`k_0` depends on
    :math:`x - y` only), which keeps :math:`\lVert x_i - x_j\rVert^2` accurate in float32.

    :param torch.Tensor samples: ``[n, *event_shape]`` (flattened to ``[n, d]``); any
        float dtype and device. For MCMC output, flatten chains and draws first.
    :param callable score_fn: :math:`b(x) = \nabla \log p(x) = -\nabla U(x)`, mapping
        ``[m, *event_shape]`` to the same shape; called on ``chunk_size`` samples at a
        time. :func:`score_from_potential` builds it from a potential.
    :param float beta: :math:`\beta \in (-1, 0)`, default :math:`-1/2` (as in [1]).
    :param float c: :math:`c > 0`, default 1.
    :param int chunk_size: block size of the pairwise sum (and of ``score_fn`` calls).
    :returns: scalar tensor, dtype and device of ``samples``.
    :raises ValueError: if ``score_fn`` returns a wrong shape or non-finite values.

    **References**

    [1] J. Gorham, L. Mackey (2017), *Measuring sample quality with kernels*, ICML.
    """
    _check_args(samples, beta, c, chunk_size)
    if not callable(score_fn):
        raise TypeError(f"score_fn must be callable, got {score_fn!r}")
    beta, c2 = float(beta), float(c) ** 2
    samples = samples.detach()
    n = samples.shape[0]
    scores = _scores(samples, score_fn, chunk_size)
    x = samples.reshape(n, -1)
    factors = _pair_factors(x - x.mean(0), scores, c2)
    total = torch.zeros((), dtype=torch.float64, device=samples.device)
    for i in range(0, n, chunk_size):
        I = slice(i, i + chunk_size)
        for j in range(i, n, chunk_size):
            block = _block_sum(I, slice(j, j + chunk_size), scores, *factors, beta, c2)
            total += block if i == j else 2.0 * block
    # the V-statistic is a squared RKHS norm, >= 0; clamp rounding below zero
    return (total / n**2).clamp(min=0.0).sqrt().to(samples.dtype)
