"""What an experiment folder was trained on, so that it never passes for a run on other data.

``ugr.pipeline.train`` writes ``EXP_DIR/provenance.json`` when the training starts:

* ``data``: the data folder (absolute path), what stage 0 prepared it from
  (``prepare_report.json``'s settings, when ``ugr.data.prepare`` made it), a
  SHA-256 of its manifests (the data contract: every source and published
  mixture, by id, path and labels), and the list key with a SHA-256 of each
  validation and test list the training and scoring use;
* ``launches``: per launch of the training (the first, then every resume),
  its start time, host and code version (ugr's version and the checkout's git
  commit, ``+changes`` when it had uncommitted changes), the torch
  version, torch's thread count and the device it trained on (the
  CPU model and its core count, or the GPU names): stage 4's RESULTS.md
  (``ugr.report.results``) shows them.

``check`` compares a data folder with that record: other manifests, or other
lists under the same key, are refused with both folders named, so that
re-running stages 2-3 with another ``--data`` cannot keep, skip to or report
the old folder's model and scores as the new data's. The data folder may have
moved: its content is compared, not its path.

    python -m ugr.pipeline.provenance check --exp-dir exp/baseline --data data   # the recipes' stages 2 and 3
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, Optional

import ugr
from ugr.io.atomic import atomic_write_text
from ugr.io.cli import one_line_errors
from ugr.pipeline.config import ExperimentConfig
from ugr.pipeline.experiment_dir import ExperimentDir
from ugr.pipeline.lists import lists_dir

FILE = "provenance.json"
LISTS = ("valid", "test")


class ProvenanceError(ValueError):
    """An experiment folder that was trained on other data than the one given; the message says which."""


def _sha256(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def describe_data(cfg: ExperimentConfig, data_dir: Path) -> Dict[str, Any]:
    """The identity of a data folder as an experiment of config ``cfg`` uses it."""
    data_dir = Path(data_dir)
    manifests = sorted((data_dir / "manifests").glob("*.tsv"))
    if not manifests:
        raise ProvenanceError(f"{data_dir}: no manifests/*.tsv; is it a prepared data folder (stage 0)?")
    lists = lists_dir(cfg, data_dir)
    report = data_dir / "prepare_report.json"
    return {
        "data_dir": str(data_dir.resolve()),
        "prepared_from": json.loads(report.read_text()).get("settings") if report.is_file() else None,
        "manifests_sha256": _sha256(manifests),
        "lists_key": lists.name,
        "lists_sha256": {name: _sha256([lists / f"{name}.csv"]) for name in LISTS if (lists / f"{name}.csv").is_file()},
    }


def code_version() -> str:
    """ugr's version, with the git commit of its checkout (``+changes`` if it has uncommitted ones) when it is one."""
    root = Path(ugr.__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return ugr.__version__
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=30
        )
        changes = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ugr.__version__
    if commit.returncode != 0:
        return ugr.__version__
    return f"{ugr.__version__} git {commit.stdout.strip()}" + ("+changes" if changes.stdout.strip() else "")


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; elsewhere ``platform.processor()``), or ``unknown CPU``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return " ".join(value.split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_device() -> str:
    """The CPU this process trains on: its model and the cores it may use, e.g. ``Intel(R) Xeon(R) ... (8 cores)``."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 0
    return f"{cpu_model()} ({cores} cores)"


def gpu_device(names: list[str], num_nodes: int = 1) -> str:
    """GPUs by name and count, e.g. ``NVIDIA H100 80GB HBM3``, ``2 x NVIDIA A100`` or ``2 nodes x 4 x NVIDIA A100``."""
    counts: Dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    per_node = ", ".join(name if count == 1 else f"{count} x {name}" for name, count in counts.items())
    return per_node if num_nodes <= 1 else f"{num_nodes} nodes x {per_node}"


def read(exp_dir: Path) -> Optional[Dict[str, Any]]:
    path = Path(exp_dir) / FILE
    return json.loads(path.read_text()) if path.is_file() else None


def _where(data: Dict[str, Any]) -> str:
    prepared = data.get("prepared_from")
    if not prepared:
        return data["data_dir"]
    corpora = ", ".join(f"{c['name']} {c['root']}" for c in prepared["corpora"])
    return f"{data['data_dir']} ({corpora} at {prepared['sample_rate']} Hz)"


def check(exp_dir: Path, data_dir: Path, cfg: Optional[ExperimentConfig] = None) -> None:
    """Raises ProvenanceError unless ``exp_dir`` holds nothing trained, or was trained on ``data_dir``'s data.

    ``cfg`` (default: the folder's ``config.yaml``) gives the list key.
    """
    exp_dir = Path(exp_dir)
    if not ExperimentDir(exp_dir).trained():
        return
    record = read(exp_dir)
    fix = f"use another experiment folder (run.sh --tag or --exp), or --force true to retrain {exp_dir} on it"
    if record is None:
        raise ProvenanceError(
            f"{exp_dir} holds a training without a record of its data ({FILE}; made by an older "
            f"ugr), so it cannot be vouched for as a run on {data_dir}: {fix}"
        )
    if cfg is None:
        cfg = ExperimentDir(exp_dir).config()
    then, now = record["data"], describe_data(cfg, data_dir)
    different = ["its manifests"] if then["manifests_sha256"] != now["manifests_sha256"] else []
    different += [
        f"its {name} list ({then['lists_key']}/{name}.csv)"
        for name, digest in now["lists_sha256"].items()
        if then["lists_sha256"].get(name, digest) != digest
    ]
    if different:
        raise ProvenanceError(
            f"{exp_dir} was trained on the data of {_where(then)}, not on {_where(now)}: "
            f"{' and '.join(different)} differ; {fix}"
        )


def record_launch(exp_dir: Path, cfg: ExperimentConfig, data_dir: Path, device: str) -> Dict[str, Any]:
    """Writes (first launch) or extends (a resume) the record; returns it. A resume under other code is said.

    ``device``: what the training runs on (``cpu_device()``, or ``gpu_device`` of the GPUs' names); the
    launch also records the torch version and torch's thread count in this process.
    """
    import torch  # here: reading a record (stages 2 and 3's check) needs no torch

    exp_dir = Path(exp_dir)
    record = read(exp_dir) if ExperimentDir(exp_dir).trained() else None
    launch = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": socket.gethostname(),
        "code": code_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": device,
    }
    if record is None:
        record = {"data": describe_data(cfg, data_dir), "launches": []}
    elif record["launches"] and record["launches"][-1]["code"] != launch["code"]:
        print(
            f"train: note: {exp_dir} was trained so far by ugr {record['launches'][-1]['code']}; this launch runs "
            f"{launch['code']}"
        )
    record["launches"].append(launch)
    atomic_write_text(exp_dir / FILE, json.dumps(record, indent=2) + "\n")
    return record


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ugr.pipeline.provenance",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check_parser = sub.add_parser(
        "check", help="exit 1, saying why, unless EXP_DIR was trained on DATA's data (or holds no training yet)"
    )
    check_parser.add_argument("--exp-dir", required=True, type=Path, help="experiment folder")
    check_parser.add_argument("--data", required=True, type=Path, help="prepared data folder (with its lists)")
    args = parser.parse_args(argv)
    with one_line_errors("provenance", args.exp_dir, ProvenanceError, ValueError):
        check(args.exp_dir, args.data)


if __name__ == "__main__":
    main()
