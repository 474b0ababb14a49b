import pytest
import torch

from pyro_langevin.reconstruction import Blur, Downsample, Identity, Mask

DT = torch.float64


def _operators():
    g = torch.Generator().manual_seed(1)
    asym = torch.rand(3, 5, generator=g, dtype=DT)  # not symmetric: flipping matters
    return {
        "identity": Identity(),
        "mask_bool": Mask(torch.rand(8, 8, generator=g) < 0.5),
        "mask_per_image": Mask((torch.rand(2, 3, 8, 8, generator=g) < 0.5).to(DT)),
        "blur_zeros": Blur(asym),
        "blur_circular": Blur(asym, boundary="circular"),
        "downsample": Downsample(2),
    }


@pytest.mark.parametrize("name", list(_operators()))
@pytest.mark.parametrize("lead", [(2,), (4, 2)], ids=["images", "chains"])
def test_adjoint_identity(name, lead):
    op = _operators()[name]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(lead + (3, 8, 8), generator=g, dtype=DT)
    y = torch.randn(op.observation_shape(x.shape), generator=g, dtype=DT)
    Ax = op(x)
    assert Ax.shape == y.shape
    lhs, rhs = (Ax * y).sum(), (x * op.adjoint(y)).sum()
    assert torch.allclose(lhs, rhs, rtol=1e-12, atol=1e-12), (float(lhs), float(rhs))


@pytest.mark.parametrize("name", list(_operators()))
def test_gram_diagonal_matches_dense_matrix(name):
    op = _operators()[name]
    if name == "mask_per_image":
        op = Mask(op.mask[0])
    A = op.matrix((3, 8, 8))
    expected = (A * A).sum(0).reshape(3, 8, 8)
    assert torch.allclose(op.gram_diagonal(torch.zeros(3, 8, 8, dtype=DT)), expected, atol=1e-14)


def test_blur_is_a_convolution():
    k = torch.arange(1.0, 10.0, dtype=DT).reshape(3, 3)
    delta = torch.zeros(1, 1, 5, 5, dtype=DT)
    delta[..., 2, 2] = 1.0
    # the response to a centred impulse is the kernel itself (a correlation would flip it)
    assert torch.equal(Blur(k)(delta)[0, 0, 1:4, 1:4], k)
    # circular boundary wraps around
    corner = torch.zeros(1, 1, 5, 5, dtype=DT)
    corner[..., 0, 0] = 1.0
    out = Blur(k, boundary="circular")(corner)[0, 0]
    assert out[4, 4] == k[0, 0] and out[1, 1] == k[2, 2] and out.sum() == k.sum()


def test_gaussian_kernel_and_downsample_values():
    k = Blur.gaussian_kernel(5, 1.0)
    assert k.shape == (5, 5) and torch.isclose(k.sum(), torch.tensor(1.0, dtype=DT)) and torch.equal(k, k.T)
    x = torch.arange(16.0, dtype=DT).reshape(1, 1, 4, 4)
    assert torch.equal(Downsample(2)(x)[0, 0], torch.tensor([[2.5, 4.5], [10.5, 12.5]], dtype=DT))
    up = Downsample(2).adjoint(torch.ones(1, 1, 1, 1, dtype=DT))
    assert torch.equal(up, torch.full((1, 1, 2, 2), 0.25, dtype=DT))


def test_operators_follow_dtype():
    x = torch.randn(2, 1, 4, 4, dtype=torch.float32)
    for op in [Mask(torch.ones(4, 4, dtype=DT)), Blur(Blur.gaussian_kernel(3, 1.0)), Downsample(2), Identity()]:
        assert op(x).dtype == torch.float32 and op.adjoint(op(x)).dtype == torch.float32


def test_mask_shape_errors():
    with pytest.raises(ValueError, match=r"mask of shape \(8, 8\) does not fit images of shape \(2, 1, 7, 7\)"):
        Mask(torch.ones(8, 8))(torch.zeros(2, 1, 7, 7))
    with pytest.raises(ValueError, match="does not fit"):
        Mask(torch.ones(3, 1, 8, 8))(torch.zeros(2, 1, 8, 8))  # 3 masks for 2 images
    with pytest.raises(ValueError, match="only 0 and 1"):
        Mask(torch.full((4, 4), 0.5))
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        Mask(torch.ones(4))
    with pytest.raises(TypeError, match="tensor"):
        Mask([[1, 0]])
    with pytest.raises(ValueError, match=r"\[\*batch, C, H, W\]"):
        Identity()(torch.zeros(4, 4))


def test_blur_and_downsample_errors():
    with pytest.raises(ValueError, match="odd sizes"):
        Blur(torch.ones(2, 2))
    with pytest.raises(ValueError, match="boundary"):
        Blur(torch.ones(3, 3), boundary="reflect")
    with pytest.raises(ValueError, match="factor"):
        Downsample(0)
    with pytest.raises(ValueError, match=r"divisible by 3, got shape \(1, 1, 8, 8\)"):
        Downsample(3)(torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="odd integer"):
        Blur.gaussian_kernel(4, 1.0)
