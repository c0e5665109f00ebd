"""``pip install ugr`` without extras brings the method's core with torch and numpy only, and the README's
plain-PyTorch example runs there: a SpeechBrain or ESPnet user who wants ``reweigh`` gets no recipe stack."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_readme import BLOCKS

ROOT = Path(__file__).resolve().parents[1]
RECIPE_STACK = (
    "pytorch-lightning",
    "lightning",
    "matplotlib",
    "soundfile",
    "asteroid",
    "asteroid-filterbanks",
    "julius",
    "torchmetrics",
    "tensorboard",
    "pesq",
    "pystoi",
    "pyyaml",
    "scipy",
    "mlflow-skinny",  # the trackers: the extra ugr[tracking]
    "wandb",
)


def run(*command: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=900, cwd=cwd)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.mark.slow
@pytest.mark.skipif(
    torch.version.cuda is not None,
    reason="this torch is a CUDA build: a venv without it would download several GB of CUDA torch",
)
def test_the_core_installs_with_torch_and_numpy_only_and_runs_the_plain_pytorch_example(tmp_path):
    source = tmp_path / "source"  # a copy: pip's build writes build/ and egg-info beside the sources
    source.mkdir()
    shutil.copytree(ROOT / "ugr", source / "ugr", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", source)
    venv = tmp_path / "core"
    run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    # The constraints file of tools/install.sh pins torch (the CPU wheel here), as every pip call must.
    constraints = Path(sys.prefix) / "constraints.txt"
    run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-c", constraints, source)

    freeze = run(python, "-m", "pip", "freeze").splitlines()
    installed = {line.split("==")[0].split(" @ ")[0].strip().lower() for line in freeze if line.strip()}
    assert {"ugr", "torch", "numpy"} <= installed
    assert installed.isdisjoint(RECIPE_STACK), sorted(installed & set(RECIPE_STACK))
    print(f"\ncore install: {len(installed)} packages: {' '.join(sorted(installed))}")
    print(f"core install size: {run('du', '-sh', venv).split()[0]}")

    example = tmp_path / "plain_pytorch.py"
    example.write_text(BLOCKS[0])
    assert "reweigh(" in BLOCKS[0]
    output = run(python, example, cwd=tmp_path)
    assert output.startswith("ESS ") and "largest weight" in output
