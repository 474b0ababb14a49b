r"""
Preconditioners :math:`M` for the Langevin move
:math:`x' = x - h M \nabla U(x) + \sqrt{2hT} M^{1/2} z`.

:math:`M` plays the role of Pyro's ``inverse_mass_matrix``: the best choice is the
target's covariance, which warmup estimates (see :mod:`pyro_langevin.adaptation`).
Both kinds act on a flat trailing dimension of size ``D``; positions have shape
``[*batch_shape, D]``.
"""
import torch


class Preconditioner:
    """Interface: ``matvec`` (:math:`M v`), ``sqrt_matvec`` (:math:`M^{1/2} z` for some
    square root with :math:`M^{1/2} M^{1/2\\top} = M`), ``inv_quad``
    (:math:`v^\\top M^{-1} v`, reduced over the last dimension)."""

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sqrt_matvec(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def inv_quad(self, v: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def matrix(self) -> torch.Tensor:
        """:math:`M` as a ``[D]`` diagonal or a ``[D, D]`` matrix (for diagnostics)."""
        raise NotImplementedError


class DiagonalPreconditioner(Preconditioner):
    """:math:`M = \\mathrm{diag}(m)`, ``m`` of shape ``[D]`` and positive."""

    def __init__(self, diag: torch.Tensor):
        if diag.dim() != 1:
            raise ValueError(f"expected a 1-D diagonal, got shape {tuple(diag.shape)}")
        if not bool((diag > 0).all()) or not bool(torch.isfinite(diag).all()):
            raise ValueError(f"the diagonal must be positive and finite, got {diag}")
        self.diag = diag
        self._sqrt = diag.sqrt()

    def matvec(self, v):
        return v * self.diag

    def sqrt_matvec(self, z):
        return z * self._sqrt

    def inv_quad(self, v):
        return (v * v / self.diag).sum(-1)

    @property
    def matrix(self):
        return self.diag


class DensePreconditioner(Preconditioner):
    """:math:`M` a ``[D, D]`` symmetric positive-definite matrix, used through its
    Cholesky factor :math:`L` (:math:`M = L L^\\top`)."""

    def __init__(self, matrix: torch.Tensor):
        if matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"expected a square [D, D] matrix, got shape {tuple(matrix.shape)}")
        chol, info = torch.linalg.cholesky_ex(matrix)
        if int(info) != 0:
            raise ValueError("the preconditioner matrix is not positive definite")
        self._matrix = matrix
        self.cholesky = chol

    def matvec(self, v):
        return v @ self._matrix  # symmetric: (M v^T)^T = v M

    def sqrt_matvec(self, z):
        return z @ self.cholesky.T

    def inv_quad(self, v):
        w = torch.linalg.solve_triangular(self.cholesky, v.unsqueeze(-1), upper=False)
        return w.squeeze(-1).pow(2).sum(-1)

    @property
    def matrix(self):
        return self._matrix
