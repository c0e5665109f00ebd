"""Copied recipes with tiny configs, and small corpora in each recipe's layout, for the recipe tests; no tests here."""

from __future__ import annotations

import subprocess
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import yaml
from test_data_helpers import make_esc50, make_wsj0, tone

ROOT = Path(__file__).resolve().parents[1]
# Tiny sizes over a recipe's CPU preset: a few seconds per experiment.
TINY_SIZES: dict[str, Any] = {
    "data": {"segment": 0.5, "train_mixtures_per_epoch": 24, "valid_mixtures": 4, "test_mixtures": 6},
    "model": {"num_blocks": 1, "n_filters": 32, "bn_chan": 16, "upsampling_depth": 2},
    "training": {"batch_size": 4, "epochs": 3, "num_workers": 0, "valid_batch_size": 4},
    "scoring": {"average_last_k": 2},
}
TINY: dict[str, Any] = {"inherit": "cpu/base_cpu.yaml", **TINY_SIZES}  # written as conf/tiny.yaml
EXPERIMENTS = "tiny tiny_robust"


def tiny_overrides(experiment: str = "") -> str:
    """TINY_SIZES as run.sh --override words (for running a recipe's shipped configs unchanged)."""
    prefix = f"{experiment}:" if experiment else ""
    return " ".join(
        f"{prefix}{section}.{key}={value}" for section, values in TINY_SIZES.items() for key, value in values.items()
    )


def run_recipe(
    recipe: Path, *args: str, check: bool = True, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """./run.sh ARGS in the copy; with check, a failure shows the tails of its output."""
    done = subprocess.run(["./run.sh", *args], cwd=recipe, capture_output=True, text=True, timeout=timeout, env=env)
    if check:
        assert done.returncode == 0, f"run.sh {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def copy_recipe(
    root: Path, name: str = "mycopy", tiny: dict[str, Any] | None = TINY, recipe: str = "wsj0_esc50"
) -> Path:
    """`cp -r egs/RECIPE egs/NAME` in a tree ROOT whose tools/ and egs/TEMPLATE are the project's; with ``tiny``,
    adds conf/tiny.yaml and, in a folder of conf/ as the shipped configs are, conf/tiny/tiny_robust.yaml (the same,
    robust weighting): the experiments tiny and tiny_robust."""
    if not (root / "tools").exists():
        (root / "tools").symlink_to(ROOT / "tools")
    (root / "egs").mkdir(exist_ok=True)
    if not (root / "egs" / "TEMPLATE").exists():
        (root / "egs" / "TEMPLATE").symlink_to(ROOT / "egs" / "TEMPLATE")
    copy = root / "egs" / name
    subprocess.run(["cp", "-r", str(ROOT / "egs" / recipe), str(copy)], check=True)
    for generated in ("data", "exp", "downloads"):  # a developer's own runs are not part of the copy
        subprocess.run(["rm", "-rf", str(copy / generated)], check=True)
    if tiny is not None:
        (copy / "conf" / "tiny.yaml").write_text(yaml.safe_dump(tiny))
        robust = {"inherit": "../tiny.yaml", "weighting": {"type": "robust", "alpha": 0.2}}
        (copy / "conf" / "tiny").mkdir()
        (copy / "conf" / "tiny" / "tiny_robust.yaml").write_text(yaml.safe_dump(robust))
    return copy


def make_corpora(root: Path) -> list[str]:
    """Tiny WSJ0 and ESC-50 trees under ROOT; returns run.sh's --wsj0/--esc50 arguments for them."""
    sets = {"si_tr_s": ["01a", "02b"], "si_dt_05": ["20c", "21d"], "si_et_05": ["40e", "41f"]}
    make_wsj0(root, sets)
    make_esc50(root / "esc50", clips_per_fold=2, seconds=1.0)
    return ["--wsj0", str(root / "wsj0"), "--esc50", str(root / "esc50")]


def make_wsj0_2mix(root: Path, mixtures: dict[str, int] | None = None) -> Path:
    """A published-layout tree ``root/wav8k/min/{tr,cv,tt}/{s1,s2,mix_clean}`` made as wsj0-2mix is:
    two speakers per mixture, source 1 0-5 dB over source 2, cut to the shorter utterance, mix = s1 + s2."""
    speakers = {"tr": ["01a", "02b", "03c"], "cv": ["20c", "21d"], "tt": ["40e", "41f"]}
    rng = np.random.default_rng(0)
    for subset, count in (mixtures or {"tr": 6, "cv": 3, "tt": 3}).items():
        for i in range(count):
            first, second = rng.choice(speakers[subset], size=2, replace=False)
            utts = [f"{first}c01{i:02d}", f"{second}c02{i:02d}"]
            snr = float(rng.uniform(0, 2.5))
            signals = [tone(float(rng.uniform(1.0, 2.0)), 8000, zlib.crc32(u.encode())) for u in utts]
            frames = min(len(s) for s in signals)
            s1, s2 = (
                s[:frames] / np.sqrt(np.mean(s[:frames] ** 2)) * 10 ** (g / 20) for s, g in zip(signals, (snr, -snr))
            )
            scale = 0.9 / np.max(np.abs(s1 + s2))
            name = f"{utts[0]}_{snr:.4f}_{utts[1]}_{-snr:.4f}.wav"
            for part, signal in (("s1", s1), ("s2", s2), ("mix_clean", s1 + s2)):
                path = root / "wav8k" / "min" / subset / part / name
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, (signal * scale).astype(np.float32), 8000)
    return root


def make_class_folders(
    root: Path, classes: tuple[str, ...] = ("dog", "rain", "siren", "speech"), per_class: int = 5
) -> Path:
    """``root/<class>/*`` at odd rates, some stereo, in wav/flac/ogg: the user's own sounds."""
    formats = [("wav", 11025, 1), ("flac", 22050, 2), ("ogg", 44100, 1), ("wav", 16000, 2), ("wav", 8000, 1)]
    for c, name in enumerate(classes):
        for i in range(per_class):
            suffix, rate, channels = formats[(c + i) % len(formats)]
            path = root / name / f"{name}{i}.{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, tone(1.0 + 0.3 * i, rate, zlib.crc32(f"{name}{i}".encode()), channels=channels), rate)
    return root
