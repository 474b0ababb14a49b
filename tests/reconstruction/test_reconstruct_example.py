import json
import runpy
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parents[2] / "examples" / "reconstruct.py"


@pytest.mark.slow
def test_reconstruct_example_runs(tmp_path, monkeypatch):
    """A tiny end-to-end run of examples/reconstruct.py: train, select lambda, reconstruct, save."""
    monkeypatch.setattr(sys, "argv", [str(EXAMPLE), "--iterations", "30", "--num-test", "16", "--num-validation",
                                      "16", "--warmup-steps", "10", "--num-samples", "10", "--prior-weights", "1",
                                      "--quiet", "--out", str(tmp_path)])
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    rows = json.loads((tmp_path / "metrics_digits.json").read_text())
    assert [r["task"] for r in rows] == ["denoise", "center", "random"]
    assert all(0 <= r["coverage90"] <= 1 and r["psnr_gauss_map"] > 10 for r in rows)
    assert (tmp_path / "reconstruct_digits.png").stat().st_size > 0 and (tmp_path / "digits_prior.pt").exists()
