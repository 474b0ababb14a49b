import math

import pytest
import torch

from pyro_langevin.ebm import ReplayBuffer


def filled(capacity=1000, value=5.0, **kwargs):
    buffer = ReplayBuffer(capacity, (2,), **kwargs)
    buffer.push(torch.full((capacity, 2), value))
    return buffer


@pytest.mark.parametrize("reinit_prob", [0.05, 0.3])
def test_reinit_rate_is_binomial(reinit_prob):
    # stored points are all 5.0, fresh uniform noise lies in [-1, 1]: count the fresh ones
    torch.manual_seed(0)
    buffer = filled(reinit_prob=reinit_prob)
    n = 20000
    fresh = (buffer.sample(n).abs() <= 1).all(-1)
    rate = fresh.double().mean().item()
    assert abs(rate - reinit_prob) < 4 * math.sqrt(reinit_prob * (1 - reinit_prob) / n)
    assert buffer.num_fresh == int(fresh.sum()) and buffer.num_drawn == n


def test_reinit_extremes_and_empty_buffer():
    torch.manual_seed(0)
    assert (filled(reinit_prob=0.0).sample(500) == 5.0).all()
    assert (filled(reinit_prob=1.0).sample(500).abs() <= 1).all()
    empty = ReplayBuffer(10, (3, 4), reinit_prob=0.0, init="uniform", init_range=(0.0, 1.0))
    x = empty.sample(7)
    assert x.shape == (7, 3, 4) and ((x >= 0) & (x <= 1)).all()


def test_normal_and_callable_init():
    torch.manual_seed(0)
    x = ReplayBuffer(10, (20000,), init="normal", init_std=3.0).sample(1)
    assert abs(x.std().item() - 3.0) < 0.1
    buffer = ReplayBuffer(10, (2,), init=lambda num: torch.full((num, 2), 7.0))
    assert (buffer.sample(4) == 7.0).all()
    with pytest.raises(ValueError, match=r"init\(3\) must return shape \(3, 5\)"):
        ReplayBuffer(10, (5,), init=lambda num: torch.zeros(num, 4)).sample(3)


def test_draws_come_from_the_stored_points():
    torch.manual_seed(0)
    buffer = ReplayBuffer(50, (1,), reinit_prob=0.0)
    buffer.push(torch.arange(30.0).unsqueeze(1))
    x = buffer.sample(1000)
    assert set(x.squeeze(1).tolist()) == set(range(30))  # uniform over the 30 stored: all appear


def test_capacity_keeps_the_newest_points():
    buffer = ReplayBuffer(100, (1,), reinit_prob=0.0)
    for start in range(0, 250, 30):  # 9 pushes of 30 (the last one of 10), wrapping around
        buffer.push(torch.arange(start, min(start + 30, 250), dtype=torch.float32).unsqueeze(1))
    assert len(buffer) == 100
    assert sorted(buffer.storage.squeeze(1).tolist()) == list(range(150, 250))
    big = ReplayBuffer(10, (1,))
    big.push(torch.arange(25.0).unsqueeze(1))  # more than capacity in one push: the last 10 stay
    assert sorted(big.storage.squeeze(1).tolist()) == list(range(15, 25)) and len(big) == 10


def test_state_dict_round_trip_gives_the_same_draws():
    torch.manual_seed(0)
    buffer = ReplayBuffer(64, (2, 3), reinit_prob=0.2)
    buffer.push(torch.randn(40, 2, 3))
    copy = ReplayBuffer(64, (2, 3), reinit_prob=0.2)
    copy.load_state_dict(buffer.state_dict())
    assert len(copy) == 40 and copy.next_index == buffer.next_index
    torch.manual_seed(1)
    a = buffer.sample(32)
    torch.manual_seed(1)
    assert torch.equal(a, copy.sample(32))
    with pytest.raises(ValueError, match="incompatible with capacity 16"):
        ReplayBuffer(16, (2, 3)).load_state_dict(buffer.state_dict())


def test_to_moves_storage_and_draws_follow():
    buffer = ReplayBuffer(8, (2,)).to(dtype=torch.float64)
    buffer.push(torch.zeros(3, 2))  # float32 input is cast to the storage
    assert buffer.dtype == torch.float64 and buffer.sample(5).dtype == torch.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda():
    buffer = ReplayBuffer(8, (2,)).to("cuda")
    buffer.push(torch.zeros(3, 2, device="cuda"))
    assert buffer.sample(5).device.type == "cuda"
    state = buffer.state_dict()
    ReplayBuffer(8, (2,)).load_state_dict(state)


@pytest.mark.parametrize("kwargs, match", [
    (dict(capacity=0), "capacity"),
    (dict(reinit_prob=1.5), "reinit_prob"),
    (dict(init="laplace"), "init must be"),
    (dict(init_range=(1.0, -1.0)), "init_range"),
    (dict(init_std=0.0), "init_std"),
])
def test_bad_arguments(kwargs, match):
    args = dict(capacity=10, event_shape=(2,))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        ReplayBuffer(**args)


def test_bad_push_and_sample():
    buffer = ReplayBuffer(10, (2,))
    with pytest.raises(ValueError, match=r"expected points of shape \[num, 2\], got \(4, 3\)"):
        buffer.push(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="num must be a positive integer"):
        buffer.sample(0)
