"""Report: tables carry the scored numbers, the convergence curve survives a resume, figures are PNGs."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from ugr import report, score


def fake_experiment(root: Path, name: str, values: np.ndarray, classes: list[str], weighting: dict,
                    val_by_version: list[dict[int, float]]) -> dict:
    """An experiment folder as stages 2-3 leave it: config, CSV logs per launch, scores."""
    exp = root / name
    (exp / "scores").mkdir(parents=True)
    (exp / "config.yaml").write_text(yaml.safe_dump({"weighting": weighting}))
    rows = [{"mixture_id": f"m{i // 2}", "source": i % 2, "class": c, "coarse": "speech" if c == "speech" else "env",
             "si_sdr": v, "si_sdr_mix": 0.0, "si_sdri": v} for i, (v, c) in enumerate(zip(values, classes))]
    with open(exp / "scores" / "test.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=score.COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    stats = score.statistics(rows)
    stats["weights"] = "average of epoch=1.ckpt, epoch=2.ckpt"
    (exp / "scores" / score.STATS_FILE).write_text(json.dumps(stats))
    for version, curve in enumerate(val_by_version):
        log = exp / "csv" / f"version_{version}"
        log.mkdir(parents=True)
        with open(log / "metrics.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["epoch", "step", "train/loss_step", "val/si_sdri"])
            writer.writeheader()
            for epoch, value in curve.items():
                writer.writerow({"epoch": epoch, "step": epoch * 10, "train/loss_step": 1.0, "val/si_sdri": ""})
                writer.writerow({"epoch": epoch, "step": epoch * 10, "train/loss_step": "", "val/si_sdri": value})
    return stats


@pytest.fixture
def exp_root(tmp_path):
    rng = np.random.default_rng(0)
    classes = ["speech", "dog"] * 50
    fake_experiment(tmp_path, "baseline", rng.normal(5, 9, 100), classes, {"type": "uniform", "granularity": "source"},
                    [{0: 1.0, 1: 2.0}, {1: 2.5, 2: 3.0}])  # killed in epoch 1, resumed: the resumed value wins
    fake_experiment(tmp_path, "robust_a5", rng.normal(3, 5, 100), classes,
                    {"type": "robust", "alpha": 0.2, "granularity": "source"}, [{0: 0.5, 1: 1.5, 2: 2.0}])
    return tmp_path


def _table_rows(text: str, heading: str) -> dict[str, list[str]]:
    """Rows of the first markdown table after ``heading``, by experiment name."""
    lines = text[text.index(heading):].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def test_tables_carry_the_scored_statistics(exp_root):
    path = report.report(exp_root, ["robust_a5", "baseline"])
    text = path.read_text()
    table = _table_rows(text, "# Test SI-SDRi")
    assert list(table) == ["robust_a5", "baseline"]  # the order asked for
    for name in table:
        stats = json.loads((exp_root / name / "scores" / score.STATS_FILE).read_text())
        weighting, *numbers = table[name]
        assert [float(x) for x in numbers] == pytest.approx(
            [stats[c] for c in report.STAT_COLUMNS], abs=0.006)
    assert table["robust_a5"][0] == "robust (alpha=0.2)"
    classes = _table_rows(text, "## Per class")
    assert "| experiment | env | speech | combined |" in text  # the corpus's coarse classes, in name order
    for name, cells in classes.items():
        stats = json.loads((exp_root / name / "scores" / score.STATS_FILE).read_text())
        env, speech, combined = (float(c.split("±")[0]) for c in cells)
        assert speech == pytest.approx(stats["per_coarse"]["speech"]["mean"], abs=0.006)
        assert env == pytest.approx(stats["per_coarse"]["env"]["mean"], abs=0.006)
        assert combined == pytest.approx(stats["mean"], abs=0.006)
        se = float(cells[2].split("±")[1])
        assert se == pytest.approx(stats["std"] / np.sqrt(stats["n"]), abs=0.006)


def test_figures_are_written_as_png(exp_root):
    report.report(exp_root)
    for name in report.FIGURES.values():
        data = (exp_root / "figures" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert not list((exp_root / "figures").glob(".*"))


def test_validation_curve_merges_the_launches_of_a_resumed_run(exp_root):
    assert report.validation_curve(exp_root / "baseline") == [(1, 1.0), (2, 2.5), (3, 3.0)]


def test_missing_scores_are_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no scored experiment"):
        report.report(tmp_path)
    with pytest.raises(SystemExit, match="not scored yet"):
        report.main(["--exp-root", str(tmp_path), "--experiments", "ghost"])
