"""tools/install.sh never rebuilds an environment in use nor re-points one that serves another checkout, and
refuses arguments it does not know. (Refusals only: building a venv is what every other test relies on.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ROOT / "tools" / "install.sh"


def install(*args: str, script: Path = INSTALL, venv: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(script), *args], capture_output=True, text=True, timeout=120, env={**os.environ, "UGR_VENV": str(venv)}
    )


def test_unknown_arguments_are_refused(tmp_path):
    done = install("--force", "extra", venv=tmp_path / "venv")
    assert done.returncode == 2 and "install.sh: unknown argument 'extra' (see --help)" in done.stderr
    assert not (tmp_path / "venv").exists()


def test_an_environment_of_another_checkout_is_refused_not_re_pointed(tmp_path):
    """This checkout's venv, asked for by a copy of the checkout: using it would run this checkout's code."""
    other = tmp_path / "checkout"
    (other / "tools").mkdir(parents=True)
    shutil.copy(ROOT / "pyproject.toml", other)
    shutil.copy(INSTALL, other / "tools")
    venv = Path(sys.prefix)
    stamp = (venv / ".ugr-install-stamp").stat().st_mtime_ns
    done = install(script=other / "tools" / "install.sh", venv=venv)
    assert done.returncode == 2
    assert f"install.sh: {venv} serves the checkout {ROOT} (its editable ugr is that checkout's code)" in done.stderr
    assert f"Give {other.resolve()} its own environment: unset UGR_VENV" in done.stderr
    assert (venv / ".ugr-install-stamp").stat().st_mtime_ns == stamp


def test_an_environment_in_use_is_not_rebuilt(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)  # incomplete: no ugr
    lock = venv / ".ugr-in-use.lock"
    # A recipe's shell (tools/env.sh, environment already checked) using it.
    user = subprocess.Popen(
        ["bash", "-c", f". {ROOT}/tools/env.sh && sleep 120"],
        env={**os.environ, "UGR_VENV": str(venv), "UGR_ENV_CHECKED": "1"},
    )
    try:
        deadline = time.time() + 60
        while subprocess.run(["flock", "--nonblock", "--exclusive", str(lock), "true"]).returncode == 0:
            assert time.time() < deadline and user.poll() is None, "tools/env.sh did not take the lock"
            time.sleep(0.05)
        done = install(venv=venv)
    finally:
        user.kill()
        user.wait()
    assert done.returncode == 2
    assert (
        f"install.sh: {venv} needs building (it is not built, or not completely), but a run uses it "
        f"(tools/env.sh holds {lock})"
    ) in done.stderr
    assert not (venv / "constraints.txt").exists(), "nothing was installed"
