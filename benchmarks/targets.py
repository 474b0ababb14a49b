r"""
The benchmark targets, shared by the benchmark scripts.

- **T1**, ``gaussian(100)``: :math:`\mathcal N(0, \mathrm{diag}(\sigma^2))` with
  :math:`\sigma_i` = ``linspace(0.1, 1, D)``, i.e.
  :math:`U(x) = \tfrac12 \sum_i x_i^2 / \sigma_i^2` (condition number 100).
  Exact moments: mean 0, variance :math:`\sigma^2`; ULA's own stationary variance
  with step size :math:`h` is :math:`\sigma^2 / (1 - h / (2\sigma^2))`.
- **T3**, ``logistic_regression()``: Bayesian logistic regression on scikit-learn's
  breast-cancer data (569 rows, 30 features standardised, plus an intercept column,
  so ``D = 31``), prior :math:`\beta \sim \mathcal N(0, I)`:

  .. math::

      U(\beta) = \sum_n \big[\operatorname{softplus}(x_n^\top\beta) - y_n\, x_n^\top\beta\big]
                 + \tfrac12 \lVert\beta\rVert^2 .

Each target gives ``potential(x)`` on a flat tensor, batched: ``[D] -> []`` and
``[C, D] -> [C]``; ``potential_fn(params)`` the same on Pyro's dict ``{"x": tensor}``
(the form ``MCMC`` kernels take); and ``model()``, the same density as a Pyro model
with the single latent site ``"x"``.
"""
from typing import Callable, NamedTuple, Optional

import torch
import pyro
import pyro.distributions as dist

SITE = "x"


class Target(NamedTuple):
    """A benchmark target.

    :ivar str name: short label for tables.
    :ivar int dim: ``D``.
    :ivar callable potential: flat ``[*batch, D] -> [*batch]``.
    :ivar callable model: Pyro model with latent site ``"x"`` of shape ``[D]``.
    :ivar torch.Tensor mean: exact posterior mean ``[D]`` (``None`` if unknown).
    :ivar torch.Tensor var: exact marginal variances ``[D]`` (``None`` if unknown).
    """

    name: str
    dim: int
    potential: Callable[[torch.Tensor], torch.Tensor]
    model: Callable[[], None]
    mean: Optional[torch.Tensor]
    var: Optional[torch.Tensor]

    def potential_fn(self, params):
        """``potential`` on Pyro's dict of unconstrained values."""
        return self.potential(params[SITE])

    def initial_params(self, num_chains: Optional[int] = None, dtype=torch.float64, scale: float = 0.0):
        """``{"x": ...}`` of shape ``[D]`` (or ``[C, D]``): zeros plus ``scale`` times a
        standard normal draw (from torch's global generator)."""
        shape = (self.dim,) if num_chains is None else (num_chains, self.dim)
        return {SITE: scale * torch.randn(shape, dtype=dtype)}


def gaussian(dim: int = 100, dtype=torch.float64) -> Target:
    """T1: the ``dim``-dimensional diagonal Gaussian with sds ``linspace(0.1, 1, dim)``."""
    sd = torch.linspace(0.1, 1.0, dim, dtype=dtype)
    half_prec = 0.5 * sd**-2

    def potential(x):
        return (x * x) @ half_prec  # two operators: the gradient is as cheap as it gets

    def model():
        pyro.sample(SITE, dist.Normal(torch.zeros_like(sd), sd).to_event(1))

    return Target(f"T1 Gaussian {dim}-D", dim, potential, model, torch.zeros_like(sd), sd**2)


def ulas_gaussian_variance(target: Target, step_size: float, preconditioner: Optional[torch.Tensor] = None
                           ) -> torch.Tensor:
    r"""ULA's stationary marginal variances on a diagonal Gaussian target:
    :math:`\sigma^2 / (1 - h m / (2\sigma^2))` for the diagonal preconditioner :math:`m`
    (identity when ``None``)."""
    m = 1.0 if preconditioner is None else preconditioner
    return target.var / (1.0 - step_size * m / (2.0 * target.var))


def breast_cancer(dtype=torch.float64):
    """Standardised breast-cancer features with an intercept column, ``X [569, 31]``,
    and labels ``y [569]`` in {0, 1}."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    X = torch.as_tensor(data.data, dtype=dtype)
    X = (X - X.mean(0)) / X.std(0)
    X = torch.cat([torch.ones(X.shape[0], 1, dtype=dtype), X], dim=1)
    y = torch.as_tensor(data.target, dtype=dtype)
    return X, y


def logistic_regression(dtype=torch.float64) -> Target:
    """T3: Bayesian logistic regression on the breast-cancer data, ``N(0, I)`` prior."""
    X, y = breast_cancer(dtype)
    D = X.shape[1]
    Xt, Xty = X.T.contiguous(), X.T @ y  # sum_n y_n x_n^T beta = beta^T (X^T y)

    def potential(beta):
        logits = beta @ Xt  # [*batch, N]
        return torch.nn.functional.softplus(logits).sum(-1) - beta @ Xty + 0.5 * (beta * beta).sum(-1)

    def model():
        beta = pyro.sample(SITE, dist.Normal(torch.zeros(D, dtype=dtype), 1.0).to_event(1))
        with pyro.plate("data", X.shape[0]):
            # (X * beta).sum(-1), not X @ beta: it broadcasts over the batch dims that
            # vectorized chains put left of the data plate
            pyro.sample("y", dist.Bernoulli(logits=(X * beta).sum(-1)), obs=y)

    return Target("T3 logistic regression", D, potential, model, None, None)


TARGETS = {"T1": gaussian, "T3": logistic_regression}
