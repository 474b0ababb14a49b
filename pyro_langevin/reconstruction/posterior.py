r"""
Posterior sampling for reconstruction: the package's Langevin kernels on the
posterior potential, one chain per (chain, image) pair, and summaries of the draws.

The images of a batch have independent posteriors, so each image gets its own
Metropolis decision: the kernel runs ``vectorized_chains = K * B`` chains on the
per-image potentials of :meth:`ReconstructionPotential.per_image
<pyro_langevin.reconstruction.ReconstructionPotential.per_image>`. The chains share
the kernel's step size (adapted in warmup on their mean acceptance probability).

**Diagonal preconditioning by a change of variables.** The posterior of an
inpainting problem is stiff: observed pixels are pinned to within :math:`\sigma`
(0.01, say), missing ones vary on the prior's scale (0.3). The sampler therefore
runs on :math:`u` with :math:`x = x_0 + s \odot u` for a per-pixel scale :math:`s`
(the Jacobian is constant, so the target in :math:`u` is :math:`e^{-U(x_0 + s\odot u)}`);
a Langevin move in :math:`u` is the move in :math:`x` preconditioned by
:math:`M = \mathrm{diag}(s^2)`, with its own scale per image, which the kernels'
shared preconditioner cannot express. :func:`diagonal_scale` gives the Laplace
guess :math:`s = (\mathrm{diag}(A^\top A)/\sigma^2 + 1/\tau^2)^{-1/2}` for a prior of
scale :math:`\tau`.
"""
from typing import Callable, NamedTuple, Optional, Union

import torch
from tqdm.auto import tqdm

from ..kernels import MALA, LangevinKernel
from .potential import ReconstructionPotential


class PosteriorSummary(NamedTuple):
    """Pixelwise posterior summaries, each in the image shape ``[B, C, H, W]``.

    :ivar mean: posterior mean (the MMSE estimate).
    :ivar std: posterior standard deviation.
    :ivar lower: lower end of the central credible interval.
    :ivar upper: upper end.
    """

    mean: torch.Tensor
    std: torch.Tensor
    lower: torch.Tensor
    upper: torch.Tensor

    @classmethod
    def from_samples(cls, samples: torch.Tensor, credible_mass: float = 0.9) -> "PosteriorSummary":
        r"""Summaries of ``samples`` ``[num_samples, num_chains, *image_shape]`` pooled over
        draws and chains; the interval holds the central ``credible_mass`` of them
        (quantiles :math:`(1 \mp m)/2`, linear interpolation as :func:`torch.quantile`)."""
        if not 0 < credible_mass < 1:
            raise ValueError(f"credible_mass must be in (0, 1), got {credible_mass!r}")
        if samples.dim() < 3:
            raise ValueError(f"samples must be [num_samples, num_chains, *image_shape], got {tuple(samples.shape)}")
        flat = samples.reshape((-1,) + tuple(samples.shape[2:]))
        n = flat.shape[0]
        ordered = flat.sort(dim=0).values  # torch.quantile refuses large tensors

        def quantile(q):
            pos = q * (n - 1)
            lo = int(pos)
            hi = min(lo + 1, n - 1)
            return ordered[lo] + (pos - lo) * (ordered[hi] - ordered[lo])

        tail = (1.0 - credible_mass) / 2.0
        return cls(flat.mean(0), flat.std(0), quantile(tail), quantile(1.0 - tail))


class PosteriorSamples(NamedTuple):
    """Draws of :func:`sample_posterior`.

    :ivar samples: ``[num_samples, num_chains, B, C, H, W]``.
    :ivar float step_size: the kernel's step size after warmup (in the preconditioned ``u``).
    :ivar accept_rate: mean acceptance probability per chain and image, ``[num_chains, B]``
        (``None`` for a kernel that does not track it).
    :ivar int num_divergent: divergent Langevin steps (post-warmup draws affected).
    """

    samples: torch.Tensor
    step_size: float
    accept_rate: Optional[torch.Tensor]
    num_divergent: int

    def summary(self, credible_mass: float = 0.9) -> PosteriorSummary:
        return PosteriorSummary.from_samples(self.samples, credible_mass)


def diagonal_scale(potential: ReconstructionPotential, prior_std: Union[float, torch.Tensor] = 1.0) -> torch.Tensor:
    r"""The per-pixel scale :math:`s = (\mathrm{diag}(A^\top A)/\sigma^2 + 1/\tau^2)^{-1/2}`,
    ``[B, C, H, W]``: the posterior standard deviation of a Gaussian prior with
    independent pixels of standard deviation :math:`\tau`, up to the off-diagonal terms.

    :param prior_std: :math:`\tau > 0`, a number or a tensor broadcasting to the image
        shape (e.g. ``diag(P)^{-1/2}`` of a Gaussian prior's precision).
    """
    prior_std = torch.as_tensor(prior_std, dtype=potential.observation.dtype, device=potential.observation.device)
    if not bool((prior_std > 0).all()):
        raise ValueError(f"prior_std must be positive, got {prior_std}")
    ones = torch.ones(potential.image_shape, dtype=potential.observation.dtype, device=potential.observation.device)
    gram = potential.operator.gram_diagonal(ones)
    return (gram / potential.noise_sigma**2 + prior_std**-2).rsqrt()


def sample_posterior(potential: ReconstructionPotential, initial_x: torch.Tensor, *, num_samples: int = 500,
                     warmup_steps: int = 500, num_chains: int = 4, kernel: Callable[..., LangevinKernel] = MALA,
                     scale: Optional[torch.Tensor] = None, thinning: int = 1, progress: bool = False
                     ) -> PosteriorSamples:
    r"""Sample :math:`\pi(x \mid y) \propto e^{-U(x)}` with a Langevin kernel of this package.

    :param ReconstructionPotential potential: :math:`U`.
    :param torch.Tensor initial_x: starting images, ``[B, C, H, W]`` (every chain) or
        ``[num_chains, B, C, H, W]``; e.g. the observation's adjoint, or the MAP estimate.
    :param int num_samples: draws kept per chain, after ``warmup_steps`` draws of warmup.
    :param int num_chains: :math:`K` chains per image.
    :param kernel: builds the kernel: called as ``kernel(potential_fn=..., vectorized_chains=K*B,
        thinning=thinning)``; :class:`~pyro_langevin.MALA` (default, adapted step size) or
        e.g. ``functools.partial(ULA, step_size=1e-3)``.
    :param torch.Tensor scale: per-pixel scale :math:`s` of the change of variables
        :math:`x = x_0 + s \odot u` (broadcast to ``[B, C, H, W]``; default 1: none); see
        :func:`diagonal_scale`.
    :param int thinning: Langevin steps per draw.
    :param bool progress: show a tqdm progress bar.
    """
    if not isinstance(potential, ReconstructionPotential):
        raise TypeError(f"potential must be a ReconstructionPotential, got {potential!r}")
    image_shape = potential.image_shape
    if tuple(initial_x.shape) == image_shape:
        initial_x = initial_x.expand((num_chains,) + image_shape)
    if tuple(initial_x.shape) != (num_chains,) + image_shape:
        raise ValueError(f"initial_x must have shape {list(image_shape)} or [{num_chains}, "
                         f"{', '.join(map(str, image_shape))}], got {tuple(initial_x.shape)}")
    loc = initial_x.detach()
    scale = torch.ones((), dtype=loc.dtype, device=loc.device) if scale is None else scale.to(loc)
    if not bool((scale > 0).all()):
        raise ValueError("scale must be positive everywhere")
    num_flat = num_chains * image_shape[0]

    def flat_potential(params):  # u: [K * B, C, H, W] -> [K * B]
        x = loc + scale * params["u"].reshape(loc.shape)
        return potential.per_image(x).reshape(num_flat)

    sampler = kernel(potential_fn=flat_potential, vectorized_chains=num_flat, thinning=thinning)
    if not isinstance(sampler, LangevinKernel):
        raise TypeError(f"kernel must build a pyro_langevin kernel (ULA, MALA), got {sampler!r}")
    params = {"u": torch.zeros((num_flat,) + image_shape[1:], dtype=loc.dtype, device=loc.device)}
    sampler.initial_params = params
    # the loop of Pyro's MCMC for one (vectorized) chain, without its per-draw bookkeeping
    sampler.setup(warmup_steps)
    draws = []
    try:
        for t in tqdm(range(warmup_steps + num_samples), disable=not progress, desc="posterior", leave=False):
            params = sampler.sample(params)
            if t >= warmup_steps:
                draws.append(loc + scale * params["u"].reshape(loc.shape))
        diagnostics = sampler.diagnostics()
    finally:
        sampler.cleanup()
    rate = diagnostics.get("acceptance rate")
    if rate is not None:
        rate = torch.as_tensor(rate).reshape(num_chains, image_shape[0])
    samples = torch.stack(draws) if draws else loc.new_zeros((0,) + tuple(loc.shape))
    return PosteriorSamples(samples, float(sampler.step_size), rate, len(diagnostics["divergences"]))
