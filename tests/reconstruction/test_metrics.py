import math

import pytest
import torch

from pyro_langevin.reconstruction import interval_coverage, psnr, ssim

DT = torch.float64


def test_psnr_hand_values():
    target = torch.zeros(2, 1, 4, 4, dtype=DT)
    est = target.clone()
    est[0] += 0.1  # MSE 0.01 -> 20 dB
    est[1, 0, 0, 0] = 0.4  # MSE 0.16 / 16 = 0.01 -> 20 dB
    assert torch.allclose(psnr(est, target), torch.tensor([20.0, 20.0], dtype=DT))
    assert torch.allclose(psnr(est * 255, target, data_range=255.0), torch.tensor([20.0, 20.0], dtype=DT))
    assert psnr(target, target).isinf().all()  # identical images: inf, not a cap


def test_ssim_hand_values():
    x = torch.rand(3, 2, 8, 8, generator=torch.Generator().manual_seed(0), dtype=DT)
    assert torch.allclose(ssim(x, x, window_size=7), torch.ones(3, dtype=DT))
    # constant images a and b: no variance, SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    a, b, c1 = 0.2, 0.7, 0.01**2
    s = ssim(torch.full((1, 1, 8, 8), a, dtype=DT), torch.full((1, 1, 8, 8), b, dtype=DT), window_size=7)
    assert float(s) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-12)
    # opposite patterns around 0.5: sigma_xy = -sigma^2 < 0 in every window, so SSIM < 0
    checker = (torch.arange(8)[:, None] + torch.arange(8)).remainder(2).to(DT) * 2 - 1
    x, y = 0.5 + 0.4 * checker[None, None], 0.5 - 0.4 * checker[None, None]
    s = float(ssim(x, y, data_range=1.0, window_size=3, sigma=100.0))  # nearly flat window
    assert s < 0 and torch.allclose(ssim(x, y, window_size=3), ssim(y, x, window_size=3))


def test_ssim_matches_a_direct_computation():
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(1, 1, 7, 7, generator=g, dtype=DT), torch.rand(1, 1, 7, 7, generator=g, dtype=DT)
    t = torch.arange(7, dtype=DT) - 3
    w = torch.outer(torch.exp(-t**2 / 4.5), torch.exp(-t**2 / 4.5))
    w = w / w.sum()  # one 7x7 window covers the image: a single SSIM value
    mx, my = (w * x).sum(), (w * y).sum()
    vx, vy, cxy = (w * (x - mx) ** 2).sum(), (w * (y - my) ** 2).sum(), (w * (x - mx) * (y - my)).sum()
    c1, c2 = 1e-4, 9e-4
    expected = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    assert float(ssim(x, y, window_size=7)) == pytest.approx(float(expected), rel=1e-10)


def test_metric_errors_and_coverage():
    x = torch.zeros(2, 1, 8, 8)
    with pytest.raises(ValueError, match="window_size must be odd and at most the image size 8, got 11"):
        ssim(x, x)
    with pytest.raises(ValueError, match=r"one shape, got \(2, 1, 8, 8\) and \(1, 1, 8, 8\)"):
        psnr(x, x[:1])
    with pytest.raises(ValueError, match="data_range must be positive"):
        psnr(x, x, data_range=0)
    lower, upper = torch.zeros(2, 4), torch.ones(2, 4)
    target = torch.tensor([[0.5, 2.0, 1.0, -1.0], [0.0, 0.1, 0.2, 0.3]])
    assert torch.equal(interval_coverage(lower, upper, target), torch.tensor([0.5, 1.0]))
    assert math.isclose(float(interval_coverage(lower, upper, target).mean()), 0.75)
