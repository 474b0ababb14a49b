r"""
Image quality metrics on a batch ``[B, C, H, W]``, one value per image.

- :func:`psnr`: :math:`10 \log_{10}(L^2 / \mathrm{MSE})` for a data range :math:`L`;
  ``inf`` for identical images.
- :func:`ssim`: the structural similarity of Wang et al. (2004), with a Gaussian
  window, :math:`K_1 = 0.01`, :math:`K_2 = 0.03`, population (co)variances and the
  mean over the "valid" part of the SSIM map and over channels. The paper's window
  is 11 x 11 with :math:`\sigma = 1.5`; images smaller than that (8 x 8 digits) need
  a smaller window, e.g. ``window_size=7`` (the SSIM map is then 2 x 2).
- :func:`interval_coverage`: fraction of true pixels inside credible intervals.

**References**

[1] Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli (2004), *Image quality
    assessment: from error visibility to structural similarity*, IEEE TIP 13(4).
"""
import numbers

import torch
import torch.nn.functional as F


def _pair(estimate, target, who):
    if not torch.is_tensor(estimate) or not torch.is_tensor(target):
        raise TypeError(f"{who} expects tensors")
    if estimate.shape != target.shape or estimate.dim() != 4:
        raise ValueError(f"{who} expects two batches [B, C, H, W] of one shape, got {tuple(estimate.shape)} "
                         f"and {tuple(target.shape)}")


def _positive(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return float(value)


def psnr(estimate: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    r"""Peak signal-to-noise ratio per image, in dB: ``[B]``; ``inf`` where the images
    are identical. Average the returned values for a batch figure (the mean of
    per-image PSNRs)."""
    _pair(estimate, target, "psnr")
    data_range = _positive("data_range", data_range)
    mse = (estimate - target).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(data_range**2 / mse)


def _gaussian_window(size, sigma, like):
    t = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = g / g.sum()
    return torch.outer(g, g)[None, None]


def ssim(estimate: torch.Tensor, target: torch.Tensor, data_range: float = 1.0, window_size: int = 11,
         sigma: float = 1.5) -> torch.Tensor:
    r"""Structural similarity per image, ``[B]``:

    .. math::

        \mathrm{SSIM}(x, y) = \frac{(2\mu_x\mu_y + C_1)(2\sigma_{xy} + C_2)}
        {(\mu_x^2 + \mu_y^2 + C_1)(\sigma_x^2 + \sigma_y^2 + C_2)},
        \quad C_1 = (0.01 L)^2,\ C_2 = (0.03 L)^2,

    local statistics under a normalised Gaussian window, averaged over the valid
    positions and the channels.

    :param float data_range: :math:`L`.
    :param int window_size: odd, at most the image's height and width.
    :param float sigma: the window's standard deviation in pixels.
    """
    _pair(estimate, target, "ssim")
    data_range, sigma = _positive("data_range", data_range), _positive("sigma", sigma)
    H, W = estimate.shape[-2:]
    if isinstance(window_size, bool) or not isinstance(window_size, numbers.Integral) or window_size < 1 \
            or window_size % 2 == 0 or window_size > min(H, W):
        raise ValueError(f"window_size must be odd and at most the image size {min(H, W)}, got {window_size!r}")
    B, C = estimate.shape[:2]
    w = _gaussian_window(window_size, sigma, estimate)
    x = estimate.reshape(B * C, 1, H, W)
    y = target.reshape(B * C, 1, H, W)
    mu_x, mu_y = F.conv2d(x, w), F.conv2d(y, w)
    var_x = F.conv2d(x * x, w) - mu_x**2
    var_y = F.conv2d(y * y, w) - mu_y**2
    cov = F.conv2d(x * y, w) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return (num / den).reshape(B, C, -1).mean(-1).mean(-1)


def interval_coverage(lower: torch.Tensor, upper: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Fraction of pixels of ``target`` inside ``[lower, upper]``, per image: ``[B]``."""
    if not (lower.shape == upper.shape == target.shape) or target.dim() < 2:
        raise ValueError(f"lower, upper and target must share one shape [B, ...], got {tuple(lower.shape)}, "
                         f"{tuple(upper.shape)} and {tuple(target.shape)}")
    inside = (target >= lower) & (target <= upper)
    return inside.flatten(1).to(target.dtype).mean(1)
