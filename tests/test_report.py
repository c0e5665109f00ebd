"""Report: tables carry the scored numbers (mean ± std across epochs under protocol epochs), paired bootstrap
intervals cover the true difference, steps to the baseline's final validation, groups per test list, figures."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
import yaml

from ugr.pipeline import config, score
from ugr.pipeline.config import ScoringConfig
from ugr.report import cli as report_cli
from ugr.report import report, tables

ROOT = Path(__file__).resolve().parents[1]
BASELINE = config.load(ROOT / "egs" / "wsj0_esc50" / "conf" / "cpu" / "baseline_cpu.yaml").to_dict()

STEPS_PER_EPOCH = 10
UNIFORM = {"type": "uniform", "granularity": "source"}
ROBUST = {"type": "robust", "alpha": 0.2, "granularity": "source"}


def fake_experiment(
    root: Path,
    name: str,
    values: np.ndarray,
    classes: list[str],
    weighting: dict,
    val_by_version: list[dict[int, float]],
    test_list: str = "0123456789abcdef",
    sdri: Optional[np.ndarray] = None,
    stoi: Optional[np.ndarray] = None,
) -> dict:
    """An experiment folder as stages 2-3 leave it: config, CSV logs per launch, scores. ``values`` of shape
    (sources,) are scores under protocol weights, of shape (epochs, sources) under protocol epochs."""
    exp = root / name
    (exp / "scores").mkdir(parents=True)
    by_epoch = values.ndim == 2
    extra = {name: v for name, v in (("sdri", sdri), ("stoi", stoi)) if v is not None}
    metrics = ["si_sdri"] + list(extra)
    scoring = {
        "average_last_k": len(values) if by_epoch else 2,
        "protocol": "epochs" if by_epoch else "weights",
        "metrics": metrics,
    }
    (exp / "config.yaml").write_text(yaml.safe_dump({**BASELINE, "weighting": weighting, "scoring": scoring}))
    per_epoch = []
    all_rows = []
    for e, epoch_values in enumerate(values if by_epoch else [values]):
        rows = [
            {
                "mixture_id": f"m{i // 2}",
                "source": i % 2,
                "class": c,
                "coarse": "speech" if c == "speech" else "env",
                "epoch": e,
                "si_sdr": v,
                "si_sdr_mix": 0.0,
                "si_sdri": v,
                **{name: float(v[i]) for name, v in extra.items()},
            }
            for i, (v, c) in enumerate(zip(epoch_values, classes))
        ]
        per_epoch.append(score.statistics(rows, metrics))
        all_rows += rows
    with open(exp / "scores" / "test.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=score.columns(ScoringConfig(**scoring)), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(all_rows)
    described = {
        "scoring": scoring,
        "test_list": f"/data/{test_list}/test.csv",
        "test_list_fingerprint": test_list,
        "checkpoints": [f"epoch={e}.ckpt" for e in range(len(per_epoch))],
    }
    if by_epoch:
        mean, std = score.across_epochs(per_epoch)
        stats = {**mean, "across_epochs_std": std, **described, "weights": "each of ..."}
    else:
        stats = {**per_epoch[0], **described, "weights": "average of epoch=1.ckpt, epoch=2.ckpt"}
    (exp / "scores" / score.STATS_FILE).write_text(json.dumps(stats))
    for version, curve in enumerate(val_by_version):
        log = exp / "csv" / f"version_{version}"
        log.mkdir(parents=True)
        with open(log / "metrics.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["epoch", "step", "train/loss_step", "val/si_sdri"])
            writer.writeheader()
            for epoch, value in curve.items():
                last_step = (epoch + 1) * STEPS_PER_EPOCH - 1  # Lightning's 0-based index of the epoch's last batch
                writer.writerow({"epoch": epoch, "step": last_step, "train/loss_step": 1.0, "val/si_sdri": ""})
                writer.writerow({"epoch": epoch, "step": last_step, "train/loss_step": "", "val/si_sdri": value})
    return stats


@pytest.fixture
def exp_root(tmp_path):
    rng = np.random.default_rng(0)
    classes = ["speech", "dog"] * 50
    fake_experiment(
        tmp_path, "baseline", rng.normal(5, 9, 100), classes, UNIFORM, [{0: 1.0, 1: 2.0}, {1: 2.5, 2: 3.0}]
    )  # killed in epoch 1, resumed: the resumed value wins
    fake_experiment(
        tmp_path,
        "robust_a5",
        rng.normal(3, 5, 100),
        classes,
        ROBUST,
        [{0: 0.5, 1: 3.2, 2: 3.5}],
        sdri=rng.normal(6, 4, 100),
    )
    return tmp_path


def _table_rows(text: str, heading: str) -> dict[str, list[str]]:
    """Rows of the first markdown table after ``heading``, by experiment name."""
    lines = text[text.index(heading) :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def _stats(root: Path, name: str) -> dict:
    return json.loads((root / name / "scores" / score.STATS_FILE).read_text())


def test_tables_carry_the_scored_statistics(exp_root):
    path = report.report(exp_root, ["robust_a5", "baseline"])
    text = path.read_text()
    table = _table_rows(text, "### SI-SDRi (dB)")
    assert list(table) == ["robust_a5", "baseline"]  # the order asked for
    for name in table:
        stats = _stats(exp_root, name)
        weighting, *numbers = table[name]
        assert [float(x) for x in numbers] == pytest.approx([stats[c] for c in tables.STAT_COLUMNS], abs=0.006)
    assert table["robust_a5"][0] == "robust (alpha=0.2)"
    sdri = _table_rows(text, "### SDRi")
    assert [float(x) for x in sdri["robust_a5"][1:]] == pytest.approx(
        [_stats(exp_root, "robust_a5")["metrics"]["sdri"][c] for c in tables.STAT_COLUMNS], abs=0.006
    )
    assert sdri["baseline"][1:3] == ["0", "not scored"]
    classes = _table_rows(text, "### Per coarse class")
    assert "| experiment | env | speech | combined | ± |" in text  # the corpus's coarse classes, in name order
    for name, cells in classes.items():
        stats = _stats(exp_root, name)
        env, speech, combined = (float(c.split("±")[0]) for c in cells[:3])
        assert speech == pytest.approx(stats["per_coarse"]["speech"]["mean"], abs=0.006)
        assert env == pytest.approx(stats["per_coarse"]["env"]["mean"], abs=0.006)
        assert combined == pytest.approx(stats["mean"], abs=0.006)
        assert float(cells[2].split("±")[1]) == pytest.approx(stats["std"] / np.sqrt(stats["n"]), abs=0.006)
        assert cells[3] == "standard error of the mean"
    for figure in report.FIGURES.values():
        assert f"`figures/{figure}`" in text and f"](figures/{figure})" in text


def test_protocol_epochs_shows_mean_and_std_across_epochs(tmp_path):
    rng = np.random.default_rng(1)
    classes = ["speech", "dog"] * 30
    values = rng.normal(4, 6, (3, 60)) + np.array([[0.0], [0.5], [1.5]])  # three epochs, shifted apart
    fake_experiment(tmp_path, "baseline", values, classes, UNIFORM, [{0: 1.0, 1: 2.0, 2: 2.5}])
    text = report.report(tmp_path).read_text()
    row = _table_rows(text, "### SI-SDRi (dB)")["baseline"]
    per_epoch = [{"mean": v.mean(), "p5": np.percentile(v, 5)} for v in values]
    for column, key in ((2, "mean"), (5, "p5")):
        mean, std = (float(x) for x in row[column].split("±"))
        assert mean == pytest.approx(np.mean([e[key] for e in per_epoch]), abs=0.006)
        assert std == pytest.approx(np.std([e[key] for e in per_epoch]), abs=0.006)
    assert row[1] == "60"
    cells = _table_rows(text, "### Per coarse class")["baseline"]
    speech = [v[0::2].mean() for v in values]
    assert [float(x) for x in cells[1].split("±")] == pytest.approx([np.mean(speech), np.std(speech)], abs=0.006)
    assert cells[3] == "std across 3 epochs"


def test_paired_bootstrap_interval_covers_the_true_difference():
    """Synthetic experiments differing by a known mean per source, with mixture-level noise both share:
    the 95 % interval covers the true difference in about 95 % of independent draws."""
    rng = np.random.default_rng(2)
    true, covered, draws = 0.7, 0, 200
    for _ in range(draws):
        mixture_effect = rng.normal(0, 4, 80)
        keys = [(f"m{m}", str(s)) for m in range(80) for s in range(2)]
        baseline = {k: mixture_effect[int(k[0][1:])] + rng.normal(0, 3) for k in keys}
        shared = rng.normal(0, 1.5, 80)  # a per-mixture part of the difference: sources of a mixture correlate
        other = {k: baseline[k] + true + shared[int(k[0][1:])] + rng.normal(0, 1) for k in keys}
        paired = tables.paired_comparison(other, baseline, resamples=500, seed=int(rng.integers(1 << 30)))
        covered += paired.low <= true <= paired.high
        assert paired.sources == 160 and paired.mixtures == 80
    assert 0.9 <= covered / draws <= 0.99


def test_paired_comparison_mean_and_share_improved_are_exact():
    baseline = {("a", "0"): 1.0, ("a", "1"): 2.0, ("b", "0"): 3.0, ("b", "1"): 4.0, ("c", "0"): 0.0}
    other = {("a", "0"): 2.0, ("a", "1"): 2.0, ("b", "0"): 1.0, ("b", "1"): 6.0, ("d", "0"): 9.0}
    paired = tables.paired_comparison(other, baseline)
    assert paired.sources == 4 and paired.mixtures == 2  # only the common pairs count
    assert paired.mean_difference == pytest.approx((1 + 0 - 2 + 2) / 4)
    assert paired.improved == pytest.approx(2 / 4)  # a tie is not an improvement
    assert paired.low <= paired.mean_difference <= paired.high
    assert tables.paired_comparison({("x", "0"): 1.0}, baseline) is None


def test_per_source_averages_the_epochs_of_each_source():
    rows = [
        {"mixture_id": "m", "source": "0", "si_sdri": "1.0"},
        {"mixture_id": "m", "source": "0", "si_sdri": "3.0"},
        {"mixture_id": "m", "source": "1", "si_sdri": "5.0", "stoi": ""},
    ]
    assert tables.per_source(rows) == {("m", "0"): 2.0, ("m", "1"): 5.0}
    assert tables.per_source(rows, "stoi") == {}


def test_paired_table_and_steps_to_reach_the_baseline(tmp_path):
    rng = np.random.default_rng(3)
    classes = ["speech", "dog"] * 50
    base = rng.normal(5, 9, 100)
    fake_experiment(tmp_path, "baseline", base, classes, UNIFORM, [{0: 1.0, 1: 2.0, 2: 3.0, 3: 3.1}])
    fake_experiment(tmp_path, "fast", base + 1.0, classes, ROBUST, [{0: 2.0, 1: 3.2, 2: 3.5, 3: 3.6}])
    fake_experiment(tmp_path, "slow", base - 0.5, classes, ROBUST, [{0: 0.5, 1: 1.5, 2: 2.0, 3: 2.2}])
    text = report.report(tmp_path, ["baseline", "fast", "slow"]).read_text()
    paired = _table_rows(text, "### Paired comparison against baseline")
    assert list(paired) == ["fast", "slow"]
    assert paired["fast"][:2] == ["100 (50)", "+1.00"] and paired["fast"][3] == "100.0 %"
    assert paired["fast"][2] == "[+1.00, +1.00]"  # every source differs by exactly 1 dB
    assert paired["slow"][1] == "-0.50" and paired["slow"][3] == "0.0 %"
    convergence = _table_rows(text, "### Convergence")
    assert "steps to reach baseline's final 3.10 dB" in text
    assert convergence["baseline"] == ["4", "40", "3.10", "40"]
    assert convergence["fast"][-1] == "20"  # 3.2 dB after epoch 2, i.e. 2 x 10 steps
    assert convergence["slow"][-1] == "not reached"
    assert tables.steps_to_reach(report.validation_curve(tmp_path / "fast"), 3.5) == 30


def test_experiments_of_two_test_lists_are_reported_separately(tmp_path):
    rng = np.random.default_rng(4)
    classes = ["speech", "dog"] * 20
    for name, weighting, test_list in (
        ("base_a", UNIFORM, "aaaaaaaa11111111"),
        ("robust_a", ROBUST, "aaaaaaaa11111111"),
        ("base_b", UNIFORM, "bbbbbbbb22222222"),
        ("robust_b", ROBUST, "bbbbbbbb22222222"),
    ):
        fake_experiment(tmp_path, name, rng.normal(4, 5, 40), classes, weighting, [{0: 1.0, 1: 2.0}], test_list)
    text = report.report(tmp_path, ["base_a", "base_b", "robust_a", "robust_b"]).read_text()
    sections = text.split("## Test list ")[1:]
    assert len(sections) == 2
    assert sections[0].startswith("`/data/aaaaaaaa11111111/test.csv`")
    assert sections[1].startswith("`/data/bbbbbbbb22222222/test.csv`")
    assert list(_table_rows(sections[0], "### SI-SDRi")) == ["base_a", "robust_a"]
    assert list(_table_rows(sections[0], "### Paired comparison against base_a")) == ["robust_a"]
    assert list(_table_rows(sections[1], "### Paired comparison against base_b")) == ["robust_b"]
    for key in ("aaaaaaaa", "bbbbbbbb"):
        for figure in report.FIGURES.values():
            name = f"figures/{Path(figure).stem}_{key}.png"
            assert (tmp_path / name).stat().st_size > 5000 and f"`{name}`" in text


def test_a_test_list_without_a_uniform_experiment_another_experiment_or_speech_says_so(tmp_path):
    fake_experiment(
        tmp_path, "robust", np.linspace(-5, 10, 20), ["dog"] * 20, ROBUST, [{0: 1.0}], stoi=np.full(20, np.nan)
    )
    text = report.report(tmp_path).read_text()
    assert "No experiment with uniform weighting was scored on this test list" in text
    assert (
        "### STOI, speech sources only\n\nScored, but no test source is one it applies to (coarse class "
        "`speech`)." in text
    )
    fake_experiment(tmp_path, "alone", np.linspace(-5, 10, 20), ["dog"] * 20, UNIFORM, [{0: 1.0}], "ffffffff00000000")
    text = report.report(tmp_path, ["alone"]).read_text()
    assert "### Paired comparison against alone (SI-SDRi)\n\nNo other experiment was scored on this test list." in text


def test_figures_are_written_as_png(exp_root):
    report.report(exp_root)
    for name in report.FIGURES.values():
        data = (exp_root / "figures" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert not list((exp_root / "figures").glob(".*"))


def test_validation_curve_merges_the_launches_of_a_resumed_run(exp_root):
    curve = report.validation_curve(exp_root / "baseline")
    assert curve == [(1, 10, 1.0), (2, 20, 2.5), (3, 30, 3.0)]
    assert curve[1].steps == 20 and curve[1].value == 2.5


def test_missing_scores_are_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no scored experiment"):
        report.report(tmp_path)
    with pytest.raises(SystemExit, match="not scored yet"):
        report_cli.main(["--exp-root", str(tmp_path), "--experiments", "ghost"])


def _seeded(
    root: Path,
    name: str,
    seed: int,
    values: np.ndarray,
    weighting: dict,
    curve: dict[int, float],
    swept: Optional[dict] = None,
) -> dict:
    """An experiment folder of one training seed, its config recording the seed (and a swept value)."""
    stats = fake_experiment(root, name, values, ["speech", "dog"] * (values.size // 2), weighting, [curve])
    saved = yaml.safe_load((root / name / "config.yaml").read_text())
    saved["weighting"].update(swept or {})
    saved["training"]["seed"] = seed
    (root / name / "config.yaml").write_text(yaml.safe_dump(saved))
    return stats


@pytest.fixture
def seeds_root(tmp_path):
    """Three seeds of a baseline and of robust at two alphas, robust better by about 1 dB at every seed."""
    rng = np.random.default_rng(11)
    for seed in range(3):
        base = rng.normal(4 + seed, 4, 60)
        _seeded(tmp_path, f"baseline_seed{seed}", seed, base, UNIFORM, {0: 1.0 + seed, 1: 4.0 + seed})
        for alpha, gain in ((0.1, 1.0), (0.3, 0.5)):
            _seeded(
                tmp_path,
                f"robust_alpha{alpha}_seed{seed}",
                seed,
                base + gain + rng.normal(0, 0.5, 60),
                ROBUST,
                {0: 3.7 + seed, 1: 5.0 + seed},
                {"alpha": alpha},
            )
    return tmp_path


def test_across_seeds_every_statistic_is_the_mean_and_std_over_the_seeds(seeds_root):
    names = [f"{v}_seed{s}" for v in ("baseline", "robust_alpha0.1", "robust_alpha0.3") for s in range(3)]
    text = report.report(seeds_root, names, sweep="robust:weighting.alpha=0.1,0.3").read_text()
    table = _table_rows(text, "#### SI-SDRi (dB) per estimated source, across seeds")
    assert list(table) == ["baseline", "robust_alpha0.1", "robust_alpha0.3"]
    for variant, cells in table.items():
        assert cells[1] == "3"
        runs = [_stats(seeds_root, f"{variant}_seed{s}") for s in range(3)]
        for cell, key in zip(cells[2:], ("mean", "std", "p1", "p5")):
            mean, std = (float(x) for x in cell.split(" ± "))
            values = [run[key] for run in runs]
            assert (mean, std) == (
                pytest.approx(np.mean(values), abs=0.006),
                pytest.approx(np.std(values, ddof=1), abs=0.006),
            )
    paired = _table_rows(text, "#### Paired comparison against baseline, across seeds")
    seeds, mixtures, mean, interval, mixtures_only, shows, agree, per_seed = paired["robust_alpha0.1"]
    assert (seeds, mixtures, agree) == ("3", "30", "3 of 3")
    assert float(mean) == pytest.approx(1.0, abs=0.2)
    low, high = (float(x) for x in interval.strip("[]").split(", "))
    assert low < float(mean) < high and low > 0 and shows == "higher"
    assert [float(x) for x in per_seed.split(", ")] == pytest.approx(
        [
            _stats(seeds_root, f"robust_alpha0.1_seed{s}")["mean"] - _stats(seeds_root, f"baseline_seed{s}")["mean"]
            for s in range(3)
        ],
        abs=0.006,
    )
    classes = _table_rows(text, "#### Per coarse class (mean SI-SDRi, dB), across seeds")
    assert float(classes["baseline"][1].split(" ± ")[0]) == pytest.approx(
        np.mean([_stats(seeds_root, f"baseline_seed{s}")["per_coarse"]["env"]["mean"] for s in range(3)]), abs=0.006
    )
    convergence = _table_rows(text, "#### Convergence across seeds")
    # The baseline ends at 5.0 dB on average (4, 5, 6): 90 % is 4.5. Robust reaches 4.5 at its first
    # validation for seeds 1 and 2 (4.7, 5.7) and at its second for seed 0 (3.7, then 5.0).
    assert (
        convergence["robust_alpha0.1"][2]
        == f"{np.mean([20, 10, 10]):.0f} ± {np.std([20, 10, 10], ddof=1):.0f} (3 of 3)"
    )
    assert convergence["baseline"][3] == "20 ± 0 (2 of 3)"  # seed 0 ends at 4.0, below the mean of the finals
    assert (seeds_root / "figures" / "operating_point.png").stat().st_size > 5000
    assert (seeds_root / "figures" / "valid_si_sdri_seeds.png").stat().st_size > 5000
    assert report.report(seeds_root, names, sweep="robust:weighting.alpha=0.1,0.3").read_text() == text, (
        "a rerun must be identical"
    )


def test_a_seed_folder_trained_at_another_seed_is_refused(seeds_root):
    saved = yaml.safe_load((seeds_root / "baseline_seed1" / "config.yaml").read_text())
    saved["training"]["seed"] = 7
    (seeds_root / "baseline_seed1" / "config.yaml").write_text(yaml.safe_dump(saved))
    with pytest.raises(
        SystemExit, match="baseline_seed1: named as training seed 1, but its config.yaml has training.seed 7"
    ):
        report_cli.main(["--exp-root", str(seeds_root), "--experiments", "baseline_seed0", "baseline_seed1"])
