"""RESULTS.md (stage 4's publishable results, ugr.report.results): the reproducing command, the environment from the
experiments' provenance and the stages' recorded wall times, the report's own table rows; names never break a
table or reach the page as HTML. Also the records it reads: provenance's launch fields, the stages' wall times."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from test_report import BASELINE, ROBUST, UNIFORM, _table_rows, fake_experiment, seeds_root  # noqa: F401 (a fixture)

from ugr.pipeline import config, provenance
from ugr.report import cli as report_cli
from ugr.report import report, results

ROOT = Path(__file__).resolve().parents[1]
WALL_TIME = ROOT / "egs" / "TEMPLATE" / "scripts" / "wall_time.sh"
LAUNCH = {
    "started": "2025-01-01T00:00:00+0000",
    "host": "node1",
    "code": "0.1.0 git 0123456789ab",
    "torch": "2.4.1+cpu",
    "threads": 4,
    "device": "AMD EPYC 7763 64-Core Processor (8 cores)",
}


def _provenance(exp_dir: Path, *launches: dict) -> None:
    (exp_dir / provenance.FILE).write_text(json.dumps({"data": {}, "launches": list(launches)}))


def _seconds(root: Path, **stages: float) -> None:
    """log/<stage>.seconds as the stage scripts write them (train_0 for train.0)."""
    (root / "log").mkdir(exist_ok=True)
    for stage, value in stages.items():
        (root / "log" / f"{stage.replace('_', '.')}.seconds").write_text(f"{value}\n")


@pytest.fixture
def run_root(tmp_path):
    """Two scored experiments with their launches on record and every stage's wall time."""
    rng = np.random.default_rng(0)
    classes = ["speech", "dog"] * 50
    fake_experiment(tmp_path, "baseline", rng.normal(5, 9, 100), classes, UNIFORM, [{0: 1.0, 1: 2.0}])
    fake_experiment(tmp_path, "robust_a5", rng.normal(3, 5, 100), classes, ROBUST, [{0: 0.5, 1: 3.2}])
    for name in ("baseline", "robust_a5"):
        _provenance(tmp_path / name, LAUNCH)
    _seconds(tmp_path, data=12, lists=3, train_0=269, train_1=261, score_0=40, score_1=44)
    return tmp_path


def _cells(line: str) -> list[str]:
    """A markdown table row's cells as GitHub splits them: at every ``|`` that is not backslash-escaped."""
    cells, cell, chars = [], "", iter(line.strip()[1:-1])
    for char in chars:
        if char == "\\":
            cell += char + next(chars, "")
        elif char == "|":
            cells.append(cell.strip())
            cell = ""
        else:
            cell += char
    return cells + [cell.strip()]


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n#", start + len(heading))
    return text[start : end if end >= 0 else None]


def test_results_md_names_the_recipe_command_environment_and_stage_times_and_repeats_the_reports_rows(run_root):
    command = "./run.sh --experiments 'baseline robust_a5'"
    report_cli.main(
        [
            "--exp-root",
            str(run_root),
            "--experiments",
            "baseline",
            "robust_a5",
            "--recipe",
            "wsj0_esc50",
            "--command",
            command,
        ]
    )
    text = (run_root / results.FILE).read_text()
    assert text.startswith("# RESULTS: wsj0_esc50\n")
    assert f"```sh\n{command}\n```" in text
    environment = _section(text, "## Environment")
    date = re.search(r"^- date: (\S+)$", environment, re.M)[1]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", date)
    commit = provenance.code_version().split(" git ")[-1]
    for line in [
        "- ugr version: 0.1.0",
        f"- git commit: {commit}",
        "- python version: 3.",
        "- code of the training: 0.1.0 git 0123456789ab",
        "- torch version: 2.4.1+cpu",
        "- device: AMD EPYC 7763 64-Core Processor (8 cores)",
        "- torch threads: 4",
        "  - data: 12 s",
        "  - lists: 3 s",
        "  - train: 2 tasks, longest 269 s, sum 530 s",
        "  - score: 2 tasks, longest 44 s, sum 84 s",
    ]:
        assert f"\n{line}" in environment, line
    # Stage 4's own time: measured to the writing, shown and put on record beside the others.
    recorded = results.stage_seconds(run_root, "report")
    assert recorded is not None and 0 < recorded < 600
    assert f"  - report: {recorded:.1f} s" in environment or f"  - report: {recorded:.0f} s" in environment
    # The tables are the report's: the same rows, the test list named with its mixture count.
    assert "## Test list `/data/0123456789abcdef/test.csv`: 50 mixtures" in text
    report_md = (run_root / "report.md").read_text()
    for heading in ("### SI-SDRi (dB) per estimated source", "### Paired comparison against baseline (SI-SDRi)"):
        assert _table_rows(text, heading) == _table_rows(report_md, heading)
    assert list(_table_rows(text, "### SI-SDRi (dB) per estimated source")) == ["baseline", "robust_a5"]
    assert text.rstrip().endswith("Full report with figures: report.md (in `" + run_root.name + "/`).")


def test_missing_stage_times_and_launch_records_show_a_dash(run_root):
    for path in (run_root / "log").iterdir():
        path.unlink()
    (run_root / "robust_a5" / provenance.FILE).unlink()  # trained by an older ugr: no record
    text = results.build(run_root, ["baseline", "robust_a5"])
    environment = _section(text, "## Environment")
    for stage in ("data", "lists", "train", "score", "report"):
        assert f"\n  - {stage}: -\n" in environment + "\n", stage
    # The experiments disagree (one has no record): each value with its experiments.
    assert "- torch version: 2.4.1+cpu (baseline); - (robust_a5)" in environment
    assert "# RESULTS\n" in text and "reproduced by:\n\n-\n" in text  # no recipe, no command given


def test_a_stage_timed_for_some_tasks_only_says_how_many(run_root):
    (run_root / "log" / "train.1.seconds").unlink()
    (run_root / "log" / "score.1.seconds").write_text("garbage\n")
    environment = _section(results.build(run_root, ["baseline", "robust_a5"]), "## Environment")
    assert "  - train: 1 of 2 tasks timed, longest 269 s, sum 269 s" in environment
    assert "  - score: 1 of 2 tasks timed, longest 40 s, sum 40 s" in environment


def test_experiments_trained_on_different_machines_are_listed_each(run_root):
    _provenance(run_root / "robust_a5", {**LAUNCH, "device": "NVIDIA H100 80GB HBM3", "threads": 16})
    environment = _section(results.build(run_root, ["baseline", "robust_a5"]), "## Environment")
    assert (
        "- device: AMD EPYC 7763 64-Core Processor (8 cores) (baseline); NVIDIA H100 80GB HBM3 (robust_a5)"
        in environment
    )
    assert "- torch threads: 4 (baseline); 16 (robust_a5)" in environment
    assert "- torch version: 2.4.1+cpu\n" in environment  # they agree on it


def test_a_name_with_a_pipe_and_html_adds_no_column_and_is_escaped(run_root):
    name = "odd|name<img onerror=x>"
    rng = np.random.default_rng(1)
    fake_experiment(run_root, name, rng.normal(4, 6, 100), ["speech", "dog"] * 50, ROBUST, [{0: 1.5}])
    _provenance(run_root / name, {**LAUNCH, "device": "<script>alert(1)</script>"})
    text = results.build(run_root, ["baseline", name])
    assert "<img" not in text and "<script" not in text
    escaped = results.markdown_cell(name)
    assert escaped == "odd\\|name&lt;img onerror=x&gt;"
    for heading in ("### SI-SDRi (dB) per estimated source", "### Paired comparison against baseline"):
        table = [line for line in _section(text, heading).splitlines() if line.startswith("|")]
        widths = {len(_cells(line)) for line in table}
        assert len(widths) == 1, table  # every row as wide as the header
        assert any(_cells(line)[0] == escaped for line in table[2:])
    assert f"&lt;script&gt;alert(1)&lt;/script&gt; ({escaped})" in text


def test_markdown_cell_escapes_what_markdown_and_html_would_read():
    assert results.markdown_cell("plain_name-1.0") == "plain_name-1.0"
    assert results.markdown_cell("a\\|b") == "a\\\\\\|b"  # a backslash cannot unescape the pipe
    assert results.markdown_cell("x & <b>\ny</b>") == "x &amp; &lt;b&gt; y&lt;/b&gt;"  # one line


def test_seeded_runs_show_the_across_seeds_tables_of_the_report(seeds_root):  # noqa: F811 (the fixture)
    names = [f"{v}_seed{s}" for v in ("baseline", "robust_alpha0.1", "robust_alpha0.3") for s in range(3)]
    text = results.build(seeds_root, names)
    report_md = report.report(seeds_root, names).read_text()
    across = "### SI-SDRi (dB) per estimated source, across training seeds"
    assert _table_rows(text, across) == _table_rows(report_md, "#### SI-SDRi (dB) per estimated source, across seeds")
    assert list(_table_rows(text, across)) == ["baseline", "robust_alpha0.1", "robust_alpha0.3"]
    assert _table_rows(text, "### Paired comparison against baseline, across seeds") == _table_rows(
        report_md, "#### Paired comparison against baseline, across seeds"
    )
    assert "  - train: -" in text  # nothing timed here


def test_record_launch_records_torch_threads_and_device(tmp_path):
    data = tmp_path / "data"
    (data / "manifests").mkdir(parents=True)
    (data / "manifests" / "sources.tsv").write_text("id\tpath\n")
    cfg = config.validate(BASELINE)
    exp_dir = tmp_path / "exp"
    exp_dir.mkdir()
    record = provenance.record_launch(exp_dir, cfg, data, device="Some CPU (2 cores)")
    [launch] = record["launches"]
    assert launch["torch"] == torch.__version__
    assert launch["threads"] == torch.get_num_threads()
    assert launch["device"] == "Some CPU (2 cores)"
    assert json.loads((exp_dir / provenance.FILE).read_text())["launches"] == [launch]


def test_the_training_records_the_cpu_or_the_gpus_it_runs_on():
    from ugr.pipeline.train import RecordExperiment

    cpu = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cpu")), device_ids=[0], num_nodes=1)
    device = RecordExperiment.device(cpu)
    assert device == provenance.cpu_device() and re.search(r" \(\d+ cores\)$", device)
    assert not device.startswith("(")  # a CPU model is named
    assert provenance.gpu_device(["NVIDIA H100 80GB HBM3"]) == "NVIDIA H100 80GB HBM3"
    assert provenance.gpu_device(["NVIDIA A100"] * 4, num_nodes=2) == "2 nodes x 4 x NVIDIA A100"


def _run_stage(tmp_path: Path, body: str) -> tuple[int, Path]:
    exp = tmp_path / "exp"
    script = tmp_path / "stage.sh"
    script.write_text(f"set -euo pipefail\nexp={exp}\n. {WALL_TIME}\n{body}\n")
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60)
    assert done.stderr == ""
    return done.returncode, exp / "log"


def test_a_stage_records_its_wall_time_on_success_only_and_keeps_its_exit_status(tmp_path):
    status, log = _run_stage(tmp_path, "wall_time_record train.1\nsleep 1")
    assert status == 0
    assert int((log / "train.1.seconds").read_text()) >= 1
    assert sorted(p.name for p in log.iterdir()) == ["train.1.seconds"]  # no temporary file left
    status, log = _run_stage(tmp_path, "wall_time_record score.0\nexit 3")
    assert status == 3 and not (log / "score.0.seconds").exists()
    status, log = _run_stage(tmp_path, "wall_time_record train.1\nfalse")  # set -e: a failed command
    assert status == 1 and int((log / "train.1.seconds").read_text()) >= 1  # the last success's record stays
    status, log = _run_stage(tmp_path, "wall_time_record train.1\nwall_time_cancel\nexit 0")  # skipped: kept
    assert status == 0 and int((log / "train.1.seconds").read_text()) >= 1
