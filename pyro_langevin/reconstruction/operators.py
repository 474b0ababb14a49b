r"""
Linear forward operators :math:`A` of imaging inverse problems, with their adjoints.

An operator maps images ``[*batch, C, H, W]`` to observations
``[*batch, C, H', W']`` and is linear, so the data term
:math:`\lVert y - A x\rVert^2 / (2\sigma^2)` of a reconstruction has the gradient
:math:`A^\top (A x - y) / \sigma^2`. Every adjoint below is exact (to rounding):
:math:`\langle A x, y\rangle = \langle x, A^\top y\rangle` for all ``x`` and ``y``.
Leading ``batch`` dimensions are arbitrary (``[B]`` images, ``[C, B]`` for ``C``
posterior chains per image). Constant tensors (mask, kernel) follow the input's
device and dtype.

- :class:`Identity` -- denoising.
- :class:`Mask` -- inpainting: keeps the pixels where the mask is 1.
- :class:`Blur` -- deblurring: a 2-D convolution, zero or circular boundary.
- :class:`Downsample` -- super-resolution: average pooling by an integer factor.
"""
import math
import numbers
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F


def _check_image(x: torch.Tensor, who: str) -> None:
    if not torch.is_tensor(x):
        raise TypeError(f"{who} expects a tensor, got {type(x).__name__}")
    if x.dim() < 3:
        raise ValueError(f"{who} expects images of shape [*batch, C, H, W], got shape {tuple(x.shape)}")


def _flat_planes(x: torch.Tensor) -> torch.Tensor:
    """``[*batch, C, H, W]`` -> ``[N, 1, H, W]`` (every channel of every image a plane)."""
    return x.reshape((-1, 1) + tuple(x.shape[-2:]))


class LinearOperator:
    r"""Base class: a linear map :math:`A` on images ``[*batch, C, H, W]``.

    Subclasses implement :meth:`forward` (:math:`A x`), :meth:`adjoint`
    (:math:`A^\top y`), :meth:`observation_shape` and :meth:`gram_diagonal`
    (:math:`\mathrm{diag}(A^\top A)`).
    """

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def observation_shape(self, image_shape: Sequence[int]) -> Tuple[int, ...]:
        """Shape of :math:`A x` for ``x`` of shape ``image_shape`` (``[*batch, C, H, W]``)."""
        return tuple(image_shape)

    def gram_diagonal(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\mathrm{diag}(A^\top A)` in the shape of ``x`` (the curvature of
        :math:`\lVert A x\rVert^2/2` per pixel)."""
        raise NotImplementedError

    def matrix(self, image_shape: Sequence[int], dtype=torch.float64, device=None) -> torch.Tensor:
        r"""The dense matrix of :math:`A` on one image of shape ``image_shape``
        (``[C, H, W]``), ``[prod(observation_shape), prod(image_shape)]``. For tests and
        small closed forms only: it applies :math:`A` to every basis image."""
        image_shape = tuple(image_shape)
        n = math.prod(image_shape)
        basis = torch.eye(n, dtype=dtype, device=device).reshape((n,) + image_shape)
        return self.forward(basis).reshape(n, -1).T.contiguous()

    def __repr__(self):
        return f"{type(self).__name__}()"


class Identity(LinearOperator):
    r""":math:`A = I`: the observation is the noisy image (denoising)."""

    def forward(self, x):
        _check_image(x, "Identity")
        return x

    def adjoint(self, y):
        _check_image(y, "Identity.adjoint")
        return y

    def gram_diagonal(self, x):
        return torch.ones_like(x)


class Mask(LinearOperator):
    r""":math:`A x = m \odot x` with a binary mask :math:`m` (inpainting); self-adjoint.
    Missing pixels are observed as 0, so they drop out of the data term.

    :param torch.Tensor mask: bool or 0/1 values, shape ``[H, W]``, ``[C, H, W]`` or
        ``[B, C, H, W]`` (one mask per image of a batch of ``B``); its trailing
        dimensions must equal the image's, dimensions of size 1 broadcast.
    """

    def __init__(self, mask: torch.Tensor):
        if not torch.is_tensor(mask):
            raise TypeError(f"mask must be a tensor, got {type(mask).__name__}")
        if mask.dim() < 2:
            raise ValueError(f"mask must have shape [H, W], [C, H, W] or [B, C, H, W], got {tuple(mask.shape)}")
        if mask.dtype != torch.bool:
            if not bool(((mask == 0) | (mask == 1)).all()):
                raise ValueError(f"mask must hold only 0 and 1, got values {mask.unique()[:5].tolist()}...")
        self.mask = mask

    def _mask_for(self, x: torch.Tensor, who: str) -> torch.Tensor:
        _check_image(x, who)
        m = self.mask
        ok = m.dim() <= x.dim() and m.shape[-2:] == x.shape[-2:] and all(
            a == b or a == 1 for a, b in zip(reversed(m.shape), reversed(x.shape))
        )
        if not ok:
            raise ValueError(f"{who}: mask of shape {tuple(m.shape)} does not fit images of shape {tuple(x.shape)}")
        return m.to(device=x.device, dtype=x.dtype)

    def forward(self, x):
        return self._mask_for(x, "Mask") * x

    def adjoint(self, y):
        return self._mask_for(y, "Mask.adjoint") * y

    def gram_diagonal(self, x):
        return self._mask_for(x, "Mask").expand_as(x).clone()

    def __repr__(self):
        m = self.mask.to(torch.float64)
        return f"Mask(shape={tuple(self.mask.shape)}, observed={float(m.mean()):.3f})"


class Blur(LinearOperator):
    r""":math:`A x = k * x`, the 2-D convolution of every channel with ``kernel``
    (deblurring), output of the image's size ("same"):

    .. math::

        (A x)_{i} = \sum_{j} k_{j}\, x_{i - j + c}, \qquad c = (\text{kernel size} - 1)/2,

    with zero (``boundary="zeros"``) or periodic (``"circular"``) extension of
    :math:`x`. The adjoint is the correlation with the same kernel (the convolution
    with the flipped kernel) under the same boundary rule, hence exact.

    :param torch.Tensor kernel: ``[kh, kw]``, odd sizes.
    :param str boundary: ``"zeros"`` or ``"circular"``.
    """

    def __init__(self, kernel: torch.Tensor, boundary: str = "zeros"):
        if not torch.is_tensor(kernel):
            raise TypeError(f"kernel must be a tensor, got {type(kernel).__name__}")
        if kernel.dim() != 2 or kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
            raise ValueError(f"kernel must be 2-D with odd sizes [kh, kw], got shape {tuple(kernel.shape)}")
        if boundary not in ("zeros", "circular"):
            raise ValueError(f"boundary must be 'zeros' or 'circular', got {boundary!r}")
        self.kernel = kernel
        self.boundary = boundary
        self.padding = (kernel.shape[0] // 2, kernel.shape[1] // 2)

    @staticmethod
    def gaussian_kernel(size: int, sigma: float, dtype=torch.float64) -> torch.Tensor:
        """A normalised ``[size, size]`` Gaussian kernel of standard deviation ``sigma`` pixels."""
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1 or size % 2 == 0:
            raise ValueError(f"size must be a positive odd integer, got {size!r}")
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma!r}")
        t = torch.arange(size, dtype=dtype) - size // 2
        g = torch.exp(-0.5 * (t / sigma) ** 2)
        k = torch.outer(g, g)
        return k / k.sum()

    def _weight(self, x):
        # conv2d correlates: convolving with k is correlating with the flipped kernel
        return self.kernel.to(device=x.device, dtype=x.dtype).flip(0, 1)[None, None]

    def _check(self, x, who):
        _check_image(x, who)
        kh, kw = self.kernel.shape
        if self.boundary == "circular" and (x.shape[-2] < kh // 2 or x.shape[-1] < kw // 2):
            raise ValueError(f"{who}: circular boundary needs images at least half the kernel size, "
                             f"got images {tuple(x.shape)} and kernel {tuple(self.kernel.shape)}")

    def _pad(self, planes):
        ph, pw = self.padding
        return F.pad(planes, (pw, pw, ph, ph), mode="circular")

    def forward(self, x):
        self._check(x, "Blur")
        planes, w = _flat_planes(x), self._weight(x)
        if self.boundary == "zeros":
            out = F.conv2d(planes, w, padding=self.padding)
        else:
            out = F.conv2d(self._pad(planes), w)
        return out.reshape(x.shape)

    def adjoint(self, y):
        self._check(y, "Blur.adjoint")
        planes, w = _flat_planes(y), self._weight(y)
        if self.boundary == "zeros":
            out = F.conv_transpose2d(planes, w, padding=self.padding)
        else:  # circulant: the transpose correlates with the flipped weight
            out = F.conv2d(self._pad(planes), w.flip(-2, -1))
        return out.reshape(y.shape)

    def gram_diagonal(self, x):
        # diag(A^T A)_j = sum_i A_ij^2: the adjoint of the squared kernel applied to ones
        squared = Blur(self.kernel * self.kernel, self.boundary)
        return squared.adjoint(torch.ones_like(x))

    def __repr__(self):
        return f"Blur(kernel={tuple(self.kernel.shape)}, boundary={self.boundary!r})"


class Downsample(LinearOperator):
    r""":math:`A` averages non-overlapping ``factor`` x ``factor`` blocks
    (super-resolution): :math:`(A x)_{I} = f^{-2} \sum_{i \in I} x_i`. Its adjoint
    copies each value over its block and divides by :math:`f^2` (nearest
    upsampling over :math:`f^2`).

    :param int factor: :math:`f \ge 1`, dividing the image's height and width.
    """

    def __init__(self, factor: int):
        if isinstance(factor, bool) or not isinstance(factor, numbers.Integral) or factor < 1:
            raise ValueError(f"factor must be a positive integer, got {factor!r}")
        self.factor = int(factor)

    def observation_shape(self, image_shape):
        image_shape = tuple(image_shape)
        f = self.factor
        if len(image_shape) < 3 or image_shape[-2] % f or image_shape[-1] % f:
            raise ValueError(f"Downsample(factor={f}) needs images [*batch, C, H, W] with H and W divisible "
                             f"by {f}, got shape {image_shape}")
        return image_shape[:-2] + (image_shape[-2] // f, image_shape[-1] // f)

    def forward(self, x):
        _check_image(x, "Downsample")
        out_shape = self.observation_shape(x.shape)
        return F.avg_pool2d(_flat_planes(x), self.factor).reshape(out_shape)

    def adjoint(self, y):
        _check_image(y, "Downsample.adjoint")
        f = self.factor
        return y.repeat_interleave(f, dim=-2).repeat_interleave(f, dim=-1) / (f * f)

    def gram_diagonal(self, x):
        self.observation_shape(x.shape)
        return torch.full_like(x, 1.0 / self.factor**4)

    def __repr__(self):
        return f"Downsample(factor={self.factor})"
