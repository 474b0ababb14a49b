import struct

import numpy as np
import pytest
import torch

from pyro_langevin.datasets import BoxDataset, NormalDataset, digits_split, load_digits, load_mnist


def test_normal_dataset_shapes_moments_and_seed():
    mean, cov = torch.tensor([1.0, -2.0]), torch.tensor([[2.0, 0.5], [0.5, 1.0]])
    n = 20000
    ds = NormalDataset(mean, cov, n, seed=3, dtype=torch.float64)
    assert ds.data.shape == (n, 2) and len(ds) == n and ds[0].shape == (2,) and ds.data.dtype == torch.float64
    # the sample mean is within 4 standard errors sqrt(diag(cov) / n) of the mean
    assert ((ds.data.mean(0) - mean.double()).abs() < 4 * (cov.diagonal().double() / n).sqrt()).all()
    assert torch.equal(NormalDataset(mean, cov, n, seed=3, dtype=torch.float64).data, ds.data)
    state = torch.get_rng_state()
    NormalDataset(mean, cov, 10)
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is untouched


def test_box_dataset_is_the_gaussian_inside_the_box():
    ds = BoxDataset(torch.tensor([0.5, 0.0]), torch.tensor([[1.0, 0.6], [0.6, 1.0]]), 3000, box=(-1.0, 1.0))
    assert ds.data.shape == (3000, 2) and ds.inside(ds.data).all()
    assert ds.data.min() < -0.95 and ds.data.max() > 0.95  # reaches the walls
    with pytest.raises(ValueError, match="below min_acceptance"):
        BoxDataset(torch.tensor([10.0, 10.0]), torch.eye(2), 10)


def test_bad_gaussian_arguments():
    with pytest.raises(ValueError, match="positive definite"):
        NormalDataset(torch.zeros(2), -torch.eye(2), 10)
    with pytest.raises(ValueError, match=r"expected mean \[D\] and covariance \[D, D\]"):
        NormalDataset(torch.zeros(2), torch.eye(3), 10)
    with pytest.raises(ValueError, match="n must be a positive integer, got 0"):
        NormalDataset(torch.zeros(2), torch.eye(2), 0)


@pytest.mark.parametrize("value_range", [(-1.0, 1.0), (0.0, 1.0)])
def test_digits_shapes_and_range(value_range):
    images, labels = load_digits(value_range)
    assert images.shape == (1797, 1, 8, 8) and labels.shape == (1797,) and images.dtype == torch.float32
    assert images.min().item() == value_range[0] and images.max().item() == value_range[1]
    split = digits_split(value_range=value_range)
    x_train, x_test, y_train, y_test = split
    assert x_train.shape == (1257, 1, 8, 8) and x_test.shape == (540, 1, 8, 8)
    # stratified: every class has (almost exactly) 30 % of its images in the test split
    counts, test_counts = torch.bincount(labels), torch.bincount(y_test)
    assert ((test_counts - 0.3 * counts).abs() <= 1).all()
    assert torch.equal(digits_split(value_range=value_range).x_test, x_test)  # random_state=0 is fixed


def write_idx(path, array, magic):
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape))
        f.write(array.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_mnist(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 12), ("t10k", 5)):
        images = rng.integers(0, 256, size=(n, 28, 28))
        images[0, 0, 0], images[0, 0, 1] = 0, 255
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images, 0x0803)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, size=n), 0x0801)
    return tmp_path


def test_mnist_from_idx_files(tiny_mnist):
    images, labels = load_mnist(tiny_mnist)
    assert images.shape == (12, 1, 28, 28) and labels.shape == (12,) and labels.dtype == torch.long
    assert images[0, 0, 0, 0] == -1.0 and images[0, 0, 0, 1] == 1.0
    assert images.min() >= -1 and images.max() <= 1
    test_images, _ = load_mnist(tiny_mnist, train=False, value_range=(0.0, 1.0))
    assert test_images.shape == (5, 1, 28, 28) and test_images.min() >= 0 and test_images[0, 0, 0, 1] == 1.0
    subset, _ = load_mnist(tiny_mnist, max_items=4, seed=1)
    assert subset.shape == (4, 1, 28, 28)
    assert any(torch.equal(s, im) for s in subset for im in images)


def test_mnist_missing_root(tmp_path):
    with pytest.raises(RuntimeError, match="Dataset not found"):
        load_mnist(tmp_path / "nowhere")
