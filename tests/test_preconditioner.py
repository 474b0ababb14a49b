"""Preconditioners: M v, a square root of M, v^T M^{-1} v, and their argument checks."""
import pytest
import torch

from pyro_langevin.preconditioner import DensePreconditioner, DiagonalPreconditioner


def spd(D):
    a = torch.randn(D, D, dtype=torch.float64)
    return a @ a.T / D + 0.1 * torch.eye(D, dtype=torch.float64)


@pytest.mark.parametrize("batch", [(), (7,), (2, 3)])
@pytest.mark.parametrize("kind", ["diagonal", "dense"])
def test_preconditioner_algebra(kind, batch):
    D = 4
    if kind == "diagonal":
        diag = torch.linspace(0.1, 3.0, D, dtype=torch.float64)
        precond, M = DiagonalPreconditioner(diag), torch.diag(diag)
        assert precond.matrix is diag
    else:
        M = spd(D)
        precond = DensePreconditioner(M)
        assert precond.matrix is M
    v = torch.randn(batch + (D,), dtype=torch.float64)
    torch.testing.assert_close(precond.matvec(v), v @ M.T)
    torch.testing.assert_close(precond.inv_quad(v), ((v @ torch.linalg.inv(M)) * v).sum(-1))
    # sqrt_matvec is z -> R z for some R with R R^T = M: read R off the unit vectors
    R = precond.sqrt_matvec(torch.eye(D, dtype=torch.float64)).T
    torch.testing.assert_close(R @ R.T, M)
    torch.testing.assert_close(precond.sqrt_matvec(v), v @ R.T)


@pytest.mark.parametrize("diag, match", [
    (torch.ones(2, 2), "1-D diagonal"),
    (torch.tensor([1.0, 0.0]), "positive and finite"),
    (torch.tensor([1.0, -1.0]), "positive and finite"),
    (torch.tensor([1.0, float("inf")]), "positive and finite"),
    (torch.tensor([1.0, float("nan")]), "positive and finite"),
])
def test_diagonal_rejects_bad_values(diag, match):
    with pytest.raises(ValueError, match=match):
        DiagonalPreconditioner(diag)


@pytest.mark.parametrize("matrix, match", [
    (torch.ones(3), r"square \[D, D\]"),
    (torch.ones(2, 3), r"square \[D, D\]"),
    (torch.tensor([[1.0, 2.0], [2.0, 1.0]]), "not positive definite"),
])
def test_dense_rejects_bad_values(matrix, match):
    with pytest.raises(ValueError, match=match):
        DensePreconditioner(matrix)
