"""A copied recipe with tiny configs and a tiny synthetic corpus, shared by the recipe tests; no tests here."""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from test_data_helpers import make_esc50, make_wsj0

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "egs" / "wsj0_esc50"
TINY: dict[str, Any] = {
    "inherit": "base_cpu.yaml",
    "data": {"segment": 0.5, "train_mixtures_per_epoch": 24, "valid_mixtures": 4, "test_mixtures": 6},
    "model": {"num_blocks": 1, "n_filters": 32, "bn_chan": 16, "upsampling_depth": 2},
    "training": {"batch_size": 4, "epochs": 3, "num_workers": 0, "valid_batch_size": 4},
    "scoring": {"average_last_k": 2},
}
EXPERIMENTS = "tiny tiny_robust"


def run_recipe(recipe: Path, *args: str, check: bool = True, timeout: float = 600,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """./run.sh ARGS in the copy; with check, a failure shows the tails of its output."""
    done = subprocess.run(["./run.sh", *args], cwd=recipe, capture_output=True, text=True, timeout=timeout,
                          env=env)
    if check:
        assert done.returncode == 0, f"run.sh {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def copy_recipe(root: Path, name: str = "mycopy", tiny: dict[str, Any] = TINY) -> Path:
    """`cp -r egs/wsj0_esc50 egs/NAME` in a tree ROOT whose tools/ is the project's, with
    conf/tiny.yaml (TINY) and conf/tiny_robust.yaml (the same, robust weighting)."""
    if not (root / "tools").exists():
        (root / "tools").symlink_to(ROOT / "tools")
    (root / "egs").mkdir(exist_ok=True)
    copy = root / "egs" / name
    subprocess.run(["cp", "-r", str(RECIPE), str(copy)], check=True)
    for generated in ("data", "exp", "downloads"):  # a developer's own runs are not part of the copy
        subprocess.run(["rm", "-rf", str(copy / generated)], check=True)
    (copy / "conf" / "tiny.yaml").write_text(yaml.safe_dump(tiny))
    robust = {"inherit": "tiny.yaml", "weighting": {"type": "robust", "alpha": 0.2}}
    (copy / "conf" / "tiny_robust.yaml").write_text(yaml.safe_dump(robust))
    return copy


def make_corpora(root: Path) -> list[str]:
    """Tiny WSJ0 and ESC-50 trees under ROOT; returns run.sh's --wsj0/--esc50 arguments for them."""
    sets = {"si_tr_s": ["01a", "02b"], "si_dt_05": ["20c", "21d"], "si_et_05": ["40e", "41f"]}
    make_wsj0(root, sets)
    make_esc50(root / "esc50", clips_per_fold=2, seconds=1.0)
    return ["--wsj0", str(root / "wsj0"), "--esc50", str(root / "esc50")]
