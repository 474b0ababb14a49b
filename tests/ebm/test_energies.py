import pytest
import torch

from pyro_langevin.ebm import ConvEnergy, MLPEnergy, QuadraticEnergy, energy_from_config


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mlp_energy_shapes_and_envelope(dtype):
    torch.manual_seed(0)
    plain = MLPEnergy((2, 3), (16, 8), activation="softplus").to(dtype)
    enveloped = MLPEnergy((2, 3), (16, 8), activation="softplus", envelope_scale=2.0).to(dtype)
    enveloped.load_state_dict(plain.state_dict())
    x = torch.randn(5, 2, 3, dtype=dtype)
    e = plain(x)
    assert e.shape == (5,) and e.dtype == dtype
    assert torch.allclose(enveloped(x) - e, (x * x).sum((1, 2)) / 8.0)


@pytest.mark.parametrize("shape, strides", [((1, 8, 8), (1, 2, 2)), ((1, 28, 28), (2, 2, 2)), ((3, 5, 7), (1, 2, 2))])
def test_conv_energy_shapes_and_batch_independence(shape, strides):
    torch.manual_seed(0)
    energy = ConvEnergy(shape).double()
    assert energy.strides == strides
    x = torch.rand(4, *shape, dtype=torch.float64)
    e = energy(x)
    assert e.shape == (4,)
    assert torch.allclose(energy(x[2:3]), e[2:3])  # one image's energy does not depend on the batch


def test_conv_energy_input_gradient_is_smooth():
    # SiLU everywhere: the input gradient is continuous (finite differences of it converge)
    torch.manual_seed(0)
    energy = ConvEnergy((1, 8, 8), channels=(4, 8), hidden_features=8).double()
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda y: energy(y), (x,))


@pytest.mark.parametrize("energy", [
    QuadraticEnergy((2,)),
    MLPEnergy(3, (4,), envelope_scale=1.5),
    ConvEnergy((1, 8, 8), channels=(4, 8), strides=(1, 2)),
])
def test_config_round_trip(energy):
    rebuilt = energy_from_config(energy.config)
    assert type(rebuilt) is type(energy) and rebuilt.config == energy.config
    rebuilt.load_state_dict(energy.state_dict())


def test_bad_arguments():
    with pytest.raises(ValueError, match="activation must be one of .* got 'relu'"):
        MLPEnergy(2, activation="relu")
    with pytest.raises(ValueError, match="hidden_features must be a non-empty tuple"):
        MLPEnergy(2, hidden_features=())
    with pytest.raises(ValueError, match="envelope_scale must be a positive number"):
        MLPEnergy(2, envelope_scale=0)
    with pytest.raises(ValueError, match=r"event_shape must be \(C, H, W\), got \(8, 8\)"):
        ConvEnergy((8, 8))
    with pytest.raises(ValueError, match="strides must give one positive stride per channel"):
        ConvEnergy((1, 8, 8), channels=(4, 8), strides=(1,))
    with pytest.raises(ValueError, match="event_shape must be a non-empty shape of positive sizes"):
        MLPEnergy((0, 2))
    with pytest.raises(ValueError, match="unknown energy class 'Foo'"):
        energy_from_config({"class": "Foo"})
