"""The benchmark scripts are documented from the command line: every one answers --help with its description."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("*.py")))
def test_every_benchmark_script_answers_help(script):
    done = subprocess.run([sys.executable, str(BENCH / script), "--help"], capture_output=True, text=True, cwd=BENCH)
    assert done.returncode == 0 and done.stdout.startswith("usage:") and len(done.stdout.splitlines()) > 3, \
        (script, done.stdout, done.stderr[-2000:])
