"""The house rules the tools check: the package's layers (import-linter contracts in pyproject.toml), ruff's lint
and format, and mypy on the core and the integrations."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(command: list[str], cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600, env={**os.environ, **env})


def test_the_layers_hold_as_import_contracts():
    done = run([str(BIN / "lint-imports")])
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_an_upward_import_inside_a_function_breaks_the_contracts(tmp_path):
    """The control: the core importing the pipeline, even inside a function, where it would dodge a cycle."""
    shutil.copytree(ROOT / "ugr", tmp_path / "ugr", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    pmf = tmp_path / "ugr" / "core" / "pmf.py"
    pmf.write_text(pmf.read_text() + "\n\ndef _dodge():\n    from ugr.pipeline import config  # noqa: F401\n")
    done = run([str(BIN / "lint-imports")], cwd=tmp_path, PYTHONPATH=str(tmp_path))
    assert done.returncode != 0
    assert "ugr.core.pmf -> ugr.pipeline.config" in done.stdout


def test_ruff_finds_nothing_to_lint_or_format():
    lint = run([sys.executable, "-m", "ruff", "check", "."])
    assert lint.returncode == 0, lint.stdout[-4000:]
    formatted = run([sys.executable, "-m", "ruff", "format", "--check", "."])
    assert formatted.returncode == 0, formatted.stdout[-4000:]


def test_mypy_finds_no_type_error_in_the_core_and_the_integrations():
    done = run([sys.executable, "-m", "mypy"])
    assert done.returncode == 0, done.stdout[-4000:]
    assert "Success: no issues found" in done.stdout
