r"""
Energy models: ``nn.Module`` s mapping a batch ``[B, *event_shape]`` to energies ``[B]``.

The model density is :math:`p_\theta(x) \propto \exp(-E_\theta(x))`; an energy is a
potential in the sense of :mod:`pyro_langevin.langevin` (minus a log density).
"""
import math
import numbers
from typing import Optional

import torch
from torch import nn


class QuadraticEnergy(nn.Module):
    r""":math:`E(x) = \tfrac12 (x - \mu)^\top P (x - \mu)`, a Gaussian
    :math:`\mathcal N(\mu, P^{-1})` up to its normalising constant.

    The precision is parameterised as :math:`P = L L^\top` with :math:`L` lower
    triangular and a positive diagonal (stored as its logarithm), so every parameter
    value gives a positive-definite :math:`P`.

    :param event_shape: shape of one sample, e.g. ``(2,)`` or ``(1, 8, 8)``; the
        quadratic form acts on its ``D = prod(event_shape)`` flattened entries.
    :param torch.Tensor mean: initial :math:`\mu` (default zeros).
    :param torch.Tensor precision: initial :math:`P`, ``[D, D]`` (default identity).
    """

    def __init__(self, event_shape, mean=None, precision=None):
        super().__init__()
        self.event_shape = torch.Size((event_shape,) if isinstance(event_shape, int) else event_shape)
        D = math.prod(self.event_shape)
        mean = torch.zeros(self.event_shape) if mean is None else torch.as_tensor(mean)
        if tuple(mean.shape) != tuple(self.event_shape):
            raise ValueError(f"mean must have shape {tuple(self.event_shape)}, got {tuple(mean.shape)}")
        dtype = mean.dtype if mean.is_floating_point() else torch.get_default_dtype()
        if precision is None:
            chol = torch.eye(D, dtype=dtype)
        else:
            precision = torch.as_tensor(precision, dtype=dtype)
            if tuple(precision.shape) != (D, D):
                raise ValueError(f"precision must have shape {(D, D)}, got {tuple(precision.shape)}")
            chol, info = torch.linalg.cholesky_ex(precision)
            if int(info) != 0:
                raise ValueError("precision must be symmetric positive definite")
        self.mean = nn.Parameter(mean.to(dtype).clone())
        self.chol_offdiag = nn.Parameter(torch.tril(chol, -1).clone())
        self.chol_log_diag = nn.Parameter(chol.diagonal().log().clone())

    @classmethod
    def from_moments(cls, mean: torch.Tensor, covariance: torch.Tensor, jitter: float = 0.0) -> "QuadraticEnergy":
        r"""The energy of :math:`\mathcal N(\mu, \Sigma)`: ``mean`` in the event shape
        (an image ``[C, H, W]`` say), ``covariance`` ``[D, D]`` over its flattened
        entries; ``jitter`` is added to the diagonal of :math:`\Sigma` before inversion."""
        mean = torch.as_tensor(mean)
        covariance = torch.as_tensor(covariance, dtype=mean.dtype)
        D = mean.numel()
        if tuple(covariance.shape) != (D, D):
            raise ValueError(f"covariance must have shape {(D, D)} for a mean of shape {tuple(mean.shape)}, "
                             f"got {tuple(covariance.shape)}")
        if jitter:
            covariance = covariance + jitter * torch.eye(D, dtype=covariance.dtype)
        precision = torch.cholesky_inverse(torch.linalg.cholesky(covariance))
        return cls(mean.shape, mean=mean, precision=precision)

    @property
    def cholesky(self) -> torch.Tensor:
        """:math:`L`, with :math:`P = L L^\\top`."""
        return torch.tril(self.chol_offdiag, -1) + torch.diag_embed(self.chol_log_diag.exp())

    @property
    def precision(self) -> torch.Tensor:
        L = self.cholesky
        return L @ L.T

    @property
    def covariance(self) -> torch.Tensor:
        return torch.cholesky_inverse(self.cholesky.T, upper=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """:param x: ``[B, *event_shape]``. :returns: ``[B]``."""
        r = (x - self.mean).flatten(1)  # [B, D]
        w = r @ self.cholesky  # r^T L, so |w|^2 = r^T L L^T r
        return 0.5 * (w * w).sum(-1)

    @property
    def config(self) -> dict:
        """Constructor arguments that rebuild this architecture (see :func:`energy_from_config`)."""
        return {"class": "QuadraticEnergy", "event_shape": tuple(self.event_shape)}


_ACTIVATIONS = {"silu": nn.SiLU, "softplus": nn.Softplus, "gelu": nn.GELU, "tanh": nn.Tanh, "elu": nn.ELU}


def _activation(name: str) -> nn.Module:
    if name not in _ACTIVATIONS:
        raise ValueError(
            f"activation must be one of {sorted(_ACTIVATIONS)} (smooth, so that the Langevin drift "
            f"is continuous), got {name!r}"
        )
    return _ACTIVATIONS[name]()


def _event_shape(event_shape) -> torch.Size:
    shape = torch.Size((event_shape,) if isinstance(event_shape, int) else tuple(event_shape))
    if len(shape) == 0 or any(int(s) < 1 for s in shape):
        raise ValueError(f"event_shape must be a non-empty shape of positive sizes, got {tuple(shape)}")
    return shape


class MLPEnergy(nn.Module):
    r"""A multilayer perceptron energy :math:`E_\theta(x) = w^\top h_L(x) + b
    \;[+\ \lVert x\rVert^2 / (2 s^2)]` on the flattened event, with smooth activations
    (so the Langevin drift :math:`-\nabla E` is continuous).

    A SiLU/Softplus network grows at most linearly, so :math:`e^{-E}` need not be
    normalisable; the optional quadratic envelope with scale :math:`s`
    (``envelope_scale``) makes it so, which keeps long-run chains from drifting off
    to infinity where no data ever was.

    :param event_shape: shape of one sample, e.g. ``(2,)``.
    :param tuple hidden_features: widths of the hidden layers.
    :param str activation: ``"silu"`` (default), ``"softplus"``, ``"gelu"``, ``"tanh"`` or ``"elu"``.
    :param float envelope_scale: :math:`s > 0` of the quadratic envelope (``None``: none).
    """

    def __init__(self, event_shape, hidden_features=(128, 128), activation: str = "silu",
                 envelope_scale: Optional[float] = None):
        super().__init__()
        self.event_shape = _event_shape(event_shape)
        hidden_features = tuple(int(h) for h in hidden_features)
        if not hidden_features or min(hidden_features) < 1:
            raise ValueError(f"hidden_features must be a non-empty tuple of positive widths, got {hidden_features!r}")
        if envelope_scale is not None and not (isinstance(envelope_scale, numbers.Real) and envelope_scale > 0):
            raise ValueError(f"envelope_scale must be a positive number or None, got {envelope_scale!r}")
        self.hidden_features = hidden_features
        self.activation = activation
        self.envelope_scale = None if envelope_scale is None else float(envelope_scale)
        layers, width = [], math.prod(self.event_shape)
        for h in hidden_features:
            layers += [nn.Linear(width, h), _activation(activation)]
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    @property
    def config(self) -> dict:
        return {"class": "MLPEnergy", "event_shape": tuple(self.event_shape), "hidden_features": self.hidden_features,
                "activation": self.activation, "envelope_scale": self.envelope_scale}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """:param x: ``[B, *event_shape]``. :returns: ``[B]``."""
        flat = x.flatten(1)
        energy = self.net(flat).squeeze(-1)
        if self.envelope_scale is not None:
            energy = energy + (flat * flat).sum(-1) / (2.0 * self.envelope_scale**2)
        return energy


class ConvEnergy(nn.Module):
    r"""A small convolutional energy for images ``[B, C, H, W]`` (e.g. ``1x8x8`` digits,
    ``1x28x28`` MNIST), in the spirit of the MNIST EBMs of Du & Mordatch (2019) and
    Nijkamp et al. (2019) as popularised by Lippe's UvA tutorial: 3x3 convolutions with
    SiLU ("Swish") activations, spatial down-sampling by strided convolutions, and a
    two-layer head to one scalar,

    .. math::

        E_\theta(x) = w^\top \mathrm{SiLU}\big(W\, \mathrm{flatten}(\mathrm{conv}_L \circ
        \cdots \circ \mathrm{conv}_1(x)) + b\big) + c.

    No normalisation layers (the energy of one image must not depend on the rest of the
    batch) and no ReLUs (the drift must be continuous). The network does not assume a
    pixel range: train it on [-1, 1] or [0, 1] data alike.

    :param event_shape: ``(C, H, W)``.
    :param tuple channels: output channels of the convolutions.
    :param tuple strides: their strides (default: ``(1, 2, 2, ...)`` for images of side
        at most 16, ``(2, 2, ...)`` otherwise -- the cost stays low on a CPU).
    :param int hidden_features: width of the head's hidden layer.
    :param str activation: as in :class:`MLPEnergy`.

    **References**

    [1] Y. Du, I. Mordatch (2019), *Implicit generation and modeling with energy-based
        models*, NeurIPS.
    [2] E. Nijkamp, M. Hill, S.-C. Zhu, Y. N. Wu (2019), *Learning non-convergent
        non-persistent short-run MCMC toward energy-based model*, NeurIPS.
    [3] P. Lippe (2022), *UvA Deep Learning Tutorials*, tutorial 8: deep energy-based
        generative models.
    """

    def __init__(self, event_shape=(1, 28, 28), channels=(16, 32, 64), strides=None, hidden_features: int = 64,
                 activation: str = "silu"):
        super().__init__()
        self.event_shape = _event_shape(event_shape)
        if len(self.event_shape) != 3:
            raise ValueError(f"event_shape must be (C, H, W), got {tuple(self.event_shape)}")
        channels = tuple(int(c) for c in channels)
        if not channels or min(channels) < 1:
            raise ValueError(f"channels must be a non-empty tuple of positive sizes, got {channels!r}")
        c, h, w = self.event_shape
        if strides is None:
            strides = (1 if max(h, w) <= 16 else 2,) + (2,) * (len(channels) - 1)
        strides = tuple(int(s) for s in strides)
        if len(strides) != len(channels) or min(strides) < 1:
            raise ValueError(f"strides must give one positive stride per channel entry {channels}, got {strides!r}")
        if int(hidden_features) < 1:
            raise ValueError(f"hidden_features must be a positive integer, got {hidden_features!r}")
        self.channels, self.strides = channels, strides
        self.hidden_features, self.activation = int(hidden_features), activation
        layers = []
        for out, stride in zip(channels, strides):
            layers += [nn.Conv2d(c, out, kernel_size=3, stride=stride, padding=1), _activation(activation)]
            c, h, w = out, (h - 1) // stride + 1, (w - 1) // stride + 1  # 3x3, padding 1
        layers += [nn.Flatten(), nn.Linear(c * h * w, self.hidden_features), _activation(activation),
                   nn.Linear(self.hidden_features, 1)]
        self.net = nn.Sequential(*layers)

    @property
    def config(self) -> dict:
        return {"class": "ConvEnergy", "event_shape": tuple(self.event_shape), "channels": self.channels,
                "strides": self.strides, "hidden_features": self.hidden_features, "activation": self.activation}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """:param x: ``[B, C, H, W]``. :returns: ``[B]``."""
        return self.net(x).squeeze(-1)


ENERGIES = {"QuadraticEnergy": QuadraticEnergy, "MLPEnergy": MLPEnergy, "ConvEnergy": ConvEnergy}


def energy_from_config(config: dict) -> nn.Module:
    """Build a fresh (untrained) energy from its ``config`` property, e.g. before
    loading a ``state_dict`` saved by :func:`~pyro_langevin.ebm.save_energy`."""
    config = dict(config)
    name = config.pop("class", None)
    if name not in ENERGIES:
        raise ValueError(f"unknown energy class {name!r}; expected one of {sorted(ENERGIES)}")
    return ENERGIES[name](**config)
