import numpy as np
import pytest
import torch
from scipy.linalg import sqrtm

from pyro_langevin.datasets import digits_split
from pyro_langevin.ebm.evaluation import (accuracy, features, frechet_distance, gaussian_mixture_samples,
                                          nearest_neighbour_distance, train_classifier)


def test_frechet_distance_matches_the_closed_form():
    torch.manual_seed(0)
    a = torch.randn(300, 4, dtype=torch.float64) @ torch.randn(4, 4, dtype=torch.float64)
    b = torch.randn(200, 4, dtype=torch.float64) * 2 + 1
    ca, cb = np.cov(a.numpy().T), np.cov(b.numpy().T)
    expected = (np.sum((a.numpy().mean(0) - b.numpy().mean(0)) ** 2) + np.trace(ca) + np.trace(cb)
                - 2 * np.trace(sqrtm(ca @ cb).real))
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    with pytest.raises(ValueError, match=r"expected features \[N, F\] and \[M, F\]"):
        frechet_distance(a, b[:, :3])


def test_nearest_neighbour_distance():
    reference = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    samples = torch.tensor([[0.0, 1.0], [3.0, 4.0], [6.0, 8.0]])
    assert torch.allclose(nearest_neighbour_distance(samples, reference, batch_size=2), torch.tensor([1.0, 0.0, 5.0]))


def test_gaussian_mixture_samples_shape_and_range():
    x = torch.rand(200, 1, 2, 2) * 2 - 1
    samples = gaussian_mixture_samples(x, 50, n_components=3, value_range=(-1.0, 1.0))
    assert samples.shape == (50, 1, 2, 2) and samples.min() >= -1 and samples.max() <= 1


def test_classifier_learns_digits_and_leaves_the_global_rng_alone():
    x_train, x_test, y_train, y_test = digits_split()
    state = torch.get_rng_state()
    model = train_classifier(x_train, y_train, feature_dim=16, epochs=3)
    assert torch.equal(torch.get_rng_state(), state)
    assert accuracy(model, x_test, y_test) > 0.8
    assert features(model, x_test, batch_size=100).shape == (540, 16)
