r"""
Sample-quality scores for image EBMs: a small classifier whose penultimate layer gives
features, the Fréchet distance between feature distributions (the FID of Heusel et al.
2017 with a task-specific network instead of Inception), a Gaussian-mixture baseline,
and nearest-neighbour distances to the training set (memorisation shows as distances
far below those of held-out real images).

The Fréchet distance between Gaussians fitted to features :math:`a` and :math:`b` is

.. math::

    d^2 = \lVert \mu_a - \mu_b \rVert^2 + \mathrm{tr}\big(\Sigma_a + \Sigma_b
          - 2 (\Sigma_a^{1/2} \Sigma_b \Sigma_a^{1/2})^{1/2}\big),

computed in float64 through symmetric eigendecompositions. It is biased upwards for
finite samples, so compare scores computed from equally many points, and report the
score of held-out real images against other held-out real images as the floor.

**References**

[1] M. Heusel et al. (2017), *GANs trained by a two time-scale update rule converge to a
    local Nash equilibrium*, NeurIPS (the FID).
"""
from typing import Optional, Tuple

import torch
from torch import nn


class DigitClassifier(nn.Module):
    """A small CNN classifier; :meth:`features` is its penultimate layer ``[N, feature_dim]``.

    :param image_shape: ``(C, H, W)``.
    :param int feature_dim: width of the feature layer.
    :param int num_classes: number of classes.
    """

    def __init__(self, image_shape=(1, 8, 8), feature_dim: int = 32, num_classes: int = 10):
        super().__init__()
        c, h, w = image_shape
        stride = 1 if max(h, w) <= 16 else 2
        layers, size = [], (h, w)
        for out, s in ((16, stride), (32, 2), (32, 2)):
            layers += [nn.Conv2d(c, out, 3, stride=s, padding=1), nn.SiLU()]
            c, size = out, tuple((n - 1) // s + 1 for n in size)
        self.body = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * size[0] * size[1], feature_dim), nn.SiLU())
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def train_classifier(images: torch.Tensor, labels: torch.Tensor, *, feature_dim: int = 32, epochs: int = 20,
                     batch_size: int = 64, lr: float = 2e-3, seed: int = 0) -> DigitClassifier:
    """Train a :class:`DigitClassifier` with Adam on ``images`` ``[N, C, H, W]`` and
    ``labels`` ``[N]`` (torch's global generator is left as it was). Returns it in eval mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DigitClassifier(tuple(images.shape[1:]), feature_dim, int(labels.max()) + 1).to(images)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        for _ in range(epochs):
            perm = torch.randperm(images.shape[0], device=images.device)
            for i in range(0, images.shape[0], batch_size):
                index = perm[i: i + batch_size]
                loss = nn.functional.cross_entropy(model(images[index]), labels[index])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    return float((model(images).argmax(-1) == labels).double().mean())


@torch.no_grad()
def features(model: DigitClassifier, images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """``model.features`` in batches, ``[N, feature_dim]``."""
    return torch.cat([model.features(images[i: i + batch_size]) for i in range(0, images.shape[0], batch_size)])


def _sqrtm_psd(matrix: torch.Tensor) -> torch.Tensor:
    eigenvalues, vectors = torch.linalg.eigh(matrix)
    return (vectors * eigenvalues.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """The Fréchet distance :math:`d^2` between Gaussians fitted to the rows of ``a``
    ``[N, F]`` and ``b`` ``[M, F]`` (see the module docstring)."""
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1] or min(a.shape[0], b.shape[0]) < 2:
        raise ValueError(f"expected features [N, F] and [M, F] with N, M >= 2, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    a, b = a.double(), b.double()
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    root_a = _sqrtm_psd(cov_a)
    cross = root_a @ cov_b @ root_a
    trace_sqrt = torch.linalg.eigvalsh(0.5 * (cross + cross.T)).clamp(min=0).sqrt().sum()
    d2 = (a.mean(0) - b.mean(0)).square().sum() + cov_a.trace() + cov_b.trace() - 2 * trace_sqrt
    return float(d2)


def gaussian_mixture_samples(train_images: torch.Tensor, num: int, n_components: int = 10, seed: int = 0,
                             value_range: Optional[Tuple[float, float]] = None,
                             max_fit_images: Optional[int] = None) -> torch.Tensor:
    """``num`` images drawn from a full-covariance Gaussian mixture fitted (by
    scikit-learn's EM) to the flattened training images (a random subset of at most
    ``max_fit_images`` of them), in random order, clipped to ``value_range`` when given
    (as the EBM's chains are clamped)."""
    from sklearn.mixture import GaussianMixture

    generator = torch.Generator().manual_seed(seed)
    if max_fit_images is not None and max_fit_images < train_images.shape[0]:
        train_images = train_images[torch.randperm(train_images.shape[0], generator=generator)[:max_fit_images]]
    flat = train_images.flatten(1).double().cpu().numpy()
    gmm = GaussianMixture(n_components=n_components, covariance_type="full", random_state=seed, max_iter=500)
    gmm.fit(flat)
    x, _ = gmm.sample(num)  # grouped by component: shuffle
    x = torch.as_tensor(x)[torch.randperm(num, generator=generator)]
    x = x.to(train_images).reshape((num,) + tuple(train_images.shape[1:]))
    return x if value_range is None else x.clamp(*value_range)


def nearest_neighbour_distance(samples: torch.Tensor, reference: torch.Tensor, batch_size: int = 1024
                               ) -> torch.Tensor:
    """Euclidean distance from each sample ``[N, ...]`` to its nearest reference image, ``[N]``."""
    ref = reference.flatten(1)
    return torch.cat([torch.cdist(samples[i: i + batch_size].flatten(1).to(ref), ref).min(1).values
                      for i in range(0, samples.shape[0], batch_size)])

