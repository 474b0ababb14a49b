r"""
Data for the energy-based-model examples and tests.

- :class:`NormalDataset`: :math:`n` draws of :math:`\mathcal N(\mu, \Sigma)`.
- :class:`BoxDataset`: the same Gaussian restricted to the box :math:`[a, b]^D`, by rejection.
- :func:`load_digits` / :func:`digits_split`: scikit-learn's embedded 8x8 digits as
  images ``[N, 1, 8, 8]`` scaled to ``value_range`` (default :math:`[-1, 1]`).
- :func:`load_mnist`: MNIST ``[N, 1, 28, 28]`` through :class:`torchvision.datasets.MNIST`
  from a root directory, scaled likewise.

The Gaussian datasets draw from their own generator (``seed``), leaving torch's global
one untouched; their tensors are in ``.data``.
"""
import numbers
from typing import NamedTuple, Optional, Tuple

import torch
from torch.utils.data import Dataset


def _scale(x: torch.Tensor, max_value: float, value_range: Tuple[float, float], dtype) -> torch.Tensor:
    low, high = value_range
    if not low < high:
        raise ValueError(f"value_range must be (low, high) with low < high, got {value_range!r}")
    return (x.to(dtype) / max_value) * (high - low) + low


class NormalDataset(Dataset):
    r""":math:`n` independent draws of :math:`\mathcal N(\mu, \Sigma)`, in ``.data`` ``[n, D]``.

    :param torch.Tensor mean: :math:`\mu`, ``[D]``.
    :param torch.Tensor covariance: :math:`\Sigma`, ``[D, D]``, positive definite.
    :param int n: number of draws.
    :param int seed: seed of the dataset's own generator.
    :param dtype: of the data (default: that of ``mean`` if floating, else the default dtype).
    """

    def __init__(self, mean, covariance, n: int, seed: int = 0, dtype=None):
        mean = torch.as_tensor(mean)
        dtype = dtype or (mean.dtype if mean.is_floating_point() else torch.get_default_dtype())
        mean, covariance = mean.to(dtype), torch.as_tensor(covariance).to(dtype)
        if mean.dim() != 1 or tuple(covariance.shape) != (mean.numel(),) * 2:
            raise ValueError(f"expected mean [D] and covariance [D, D], got {tuple(mean.shape)} and "
                             f"{tuple(covariance.shape)}")
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        chol, info = torch.linalg.cholesky_ex(covariance)
        if int(info) != 0:
            raise ValueError(f"covariance must be symmetric positive definite, got {covariance}")
        self.mean, self.covariance, self.n = mean, covariance, int(n)
        self._chol = chol
        self.generator = torch.Generator().manual_seed(seed)
        self.data = self._draw(self.n)

    def _draw(self, n: int) -> torch.Tensor:
        z = torch.randn(n, self.mean.numel(), generator=self.generator, dtype=self.mean.dtype)
        return self.mean + z @ self._chol.T

    def __len__(self) -> int:
        return self.data.shape[0]

    def __getitem__(self, i):
        return self.data[i]


class BoxDataset(NormalDataset):
    r""":math:`n` draws of :math:`\mathcal N(\mu, \Sigma)` conditioned on the box
    :math:`[a, b]^D`, by rejection (draws outside the box are discarded).

    :param tuple box: ``(a, b)``, the same bounds in every coordinate (default ``(-1, 1)``).
    :param float min_acceptance: refuse boxes whose acceptance rate, estimated on the
        first draws, falls below this (rejection would take too long).

    Other parameters as :class:`NormalDataset`.
    """

    def __init__(self, mean, covariance, n: int, box: Tuple[float, float] = (-1.0, 1.0), seed: int = 0, dtype=None,
                 min_acceptance: float = 1e-3):
        low, high = box
        if not low < high:
            raise ValueError(f"box must be (low, high) with low < high, got {box!r}")
        self.box = (float(low), float(high))
        self.min_acceptance = min_acceptance
        super().__init__(mean, covariance, n, seed=seed, dtype=dtype)

    def _draw(self, n: int) -> torch.Tensor:
        kept, num_kept, num_drawn = [], 0, 0
        while num_kept < n:
            x = super()._draw(max(1024, 2 * n))
            x = x[((x >= self.box[0]) & (x <= self.box[1])).all(-1)]
            kept.append(x)
            num_kept += x.shape[0]
            num_drawn += max(1024, 2 * n)
            if num_kept < self.min_acceptance * num_drawn:
                raise ValueError(f"the box {self.box} holds a fraction {num_kept / num_drawn:.2g} of the Gaussian, "
                                 f"below min_acceptance={self.min_acceptance:g}")
        return torch.cat(kept)[:n]

    def inside(self, x: torch.Tensor) -> torch.Tensor:
        """Per-row mask of points ``[N, D]`` inside the box."""
        return ((x >= self.box[0]) & (x <= self.box[1])).all(-1)


def load_digits(value_range: Tuple[float, float] = (-1.0, 1.0), dtype=torch.float32
                ) -> Tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1797 8x8 digits: images ``[1797, 1, 8, 8]`` with pixels (0..16)
    mapped linearly onto ``value_range``, and labels ``[1797]`` (int64)."""
    from sklearn.datasets import load_digits as sk_load_digits

    digits = sk_load_digits()
    images = _scale(torch.as_tensor(digits.images), 16.0, value_range, dtype).unsqueeze(1)
    return images, torch.as_tensor(digits.target, dtype=torch.long)


class Split(NamedTuple):
    """A train/test split, unpacking in scikit-learn's order."""

    x_train: torch.Tensor
    x_test: torch.Tensor
    y_train: torch.Tensor
    y_test: torch.Tensor


def digits_split(test_size: float = 0.3, random_state: int = 0, value_range: Tuple[float, float] = (-1.0, 1.0),
                 dtype=torch.float32) -> Split:
    """The digits of :func:`load_digits`, split by class-stratified
    :func:`sklearn.model_selection.train_test_split` (1257 train and 540 test images at
    the defaults)."""
    from sklearn.model_selection import train_test_split

    images, labels = load_digits(value_range, dtype)
    index = torch.arange(labels.numel())
    train, test = train_test_split(index.numpy(), test_size=test_size, random_state=random_state,
                                   stratify=labels.numpy())
    train, test = torch.as_tensor(train), torch.as_tensor(test)
    return Split(images[train], images[test], labels[train], labels[test])


def load_mnist(root, train: bool = True, download: bool = False, value_range: Tuple[float, float] = (-1.0, 1.0),
               max_items: Optional[int] = None, seed: int = 0, dtype=torch.float32
               ) -> Tuple[torch.Tensor, torch.Tensor]:
    """MNIST through :class:`torchvision.datasets.MNIST` (``root`` holds ``MNIST/raw/``,
    torchvision's layout): images ``[N, 1, 28, 28]`` with pixels (0..255) mapped onto
    ``value_range``, and labels ``[N]``.

    :param root: the root directory (e.g. ``"/data"`` for ``/data/MNIST/raw/*-ubyte``).
    :param bool train: the 60000-image training set, else the 10000-image test set.
    :param bool download: let torchvision download the files if missing.
    :param int max_items: keep a random subset of this size (drawn with ``seed``).
    """
    from torchvision.datasets import MNIST

    dataset = MNIST(str(root), train=train, download=download)
    images, labels = dataset.data, dataset.targets
    if max_items is not None and max_items < labels.numel():
        keep = torch.randperm(labels.numel(), generator=torch.Generator().manual_seed(seed))[:max_items]
        images, labels = images[keep], labels[keep]
    return _scale(images, 255.0, value_range, dtype).unsqueeze(1), labels.long()
