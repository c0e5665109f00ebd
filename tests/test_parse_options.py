"""tools/parse_options.sh: Kaldi-style options for the recipes' bash scripts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

PARSE_OPTIONS = Path(__file__).resolve().parents[1] / "tools" / "parse_options.sh"
SCRIPT = f"""#!/usr/bin/env bash
set -euo pipefail
stage=1
data_dir=data/train
use_gpu=false
help_message="Usage: demo.sh [--stage N] [--data-dir DIR] [--use-gpu true|false] ARGS"
. {PARSE_OPTIONS}
echo "stage=$stage data_dir=$data_dir use_gpu=$use_gpu args=$*"
"""


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    script = tmp_path / "demo.sh"
    script.write_text(SCRIPT)
    script.chmod(0o755)
    return subprocess.run([str(script), *args], cwd=tmp_path, capture_output=True, text=True)


def test_defaults_stay_without_options(tmp_path: Path) -> None:
    assert run(tmp_path).stdout == "stage=1 data_dir=data/train use_gpu=false args=\n"


def test_dashes_and_underscores_both_name_the_variable(tmp_path: Path) -> None:
    result = run(tmp_path, "--data-dir", "a b", "--stage", "3", "--use_gpu", "true", "x", "--stage", "9")
    assert result.returncode == 0, result.stderr
    # Parsing stops at the first argument that is not an option.
    assert result.stdout == "stage=3 data_dir=a b use_gpu=true args=x --stage 9\n"


def test_double_dash_ends_the_options(tmp_path: Path) -> None:
    result = run(tmp_path, "--stage", "2", "--", "--stage", "5")
    assert result.stdout == "stage=2 data_dir=data/train use_gpu=false args=--stage 5\n"


def test_empty_value_is_allowed(tmp_path: Path) -> None:
    assert run(tmp_path, "--data-dir", "").stdout.startswith("stage=1 data_dir= use_gpu")


def test_help_prints_the_help_message_and_exits_zero(tmp_path: Path) -> None:
    result = run(tmp_path, "--help", "--stage", "2")
    assert result.returncode == 0
    assert result.stdout == "Usage: demo.sh [--stage N] [--data-dir DIR] [--use-gpu true|false] ARGS\n"


def test_config_file_is_sourced_and_later_options_override_it(tmp_path: Path) -> None:
    (tmp_path / "my.conf").write_text("stage=4\ndata_dir=data/dev\n")
    result = run(tmp_path, "--config", "my.conf", "--stage", "6")
    assert result.stdout == "stage=6 data_dir=data/dev use_gpu=false args=\n"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--epochs", "3"], "unknown option '--epochs'"),
        (["--use-gpu", "yes"], "option '--use-gpu' takes true or false, not 'yes'"),
        (["--stage", "two"], "option '--stage' takes an integer, not 'two'"),
        (["--stage", ""], "option '--stage' takes an integer, not ''"),
        (["--stage"], "option '--stage' needs a value"),
        (["--stage=3"], "write '--name VALUE' (with a space)"),
        (["--config", "missing.conf"], "config file 'missing.conf' (from --config) does not exist"),
    ],
)
def test_bad_options_exit_one_naming_the_problem(tmp_path: Path, args: list[str], message: str) -> None:
    result = run(tmp_path, *args)
    assert result.returncode == 1
    assert message in result.stderr
    assert result.stdout == ""
