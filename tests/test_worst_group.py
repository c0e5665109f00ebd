"""Worst group: per grouping of the test sources (fine class, group such as the speaker, input-SNR bin) the
report names each experiment's worst group with its n, mean and p5 SI-SDRi, and the paired difference with the
baseline on the baseline's worst group, with the interval of one run or over seeds; older scores without a
``group`` column say so instead of failing."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_report import ROBUST, UNIFORM, fake_experiment

from ugr.pipeline import score
from ugr.pipeline.config import ScoringConfig
from ugr.report import across_seeds, report, results, stats, tables
from ugr.report.report import Scored

OLD_COLUMNS = ["mixture_id", "source", "class", "coarse", "si_sdr", "si_sdr_mix", "si_sdri"]  # before ``group``
N_MIXTURES = 60
SCORING = ScoringConfig(average_last_k=2, protocol="weights", metrics=["si_sdri"])


def _labels(rng: np.random.Generator) -> list[dict]:
    """Two sources per mixture: a speech source (one of three speakers) and an environmental one (two
    categories), with their input SNRs (the second the first's negative, as in a two-source mixture)."""
    rows = []
    for m in range(N_MIXTURES):
        snr = float(np.round(rng.uniform(-12, 12), 4))
        rows.append(
            {
                "mixture_id": f"m{m:03d}",
                "source": "0",
                "class": "speech",
                "coarse": "speech",
                "group": f"spk{m % 3}",
                "si_sdr_mix": snr,
            }
        )
        category = ("dog", "rain")[m % 2]
        rows.append(
            {
                "mixture_id": f"m{m:03d}",
                "source": "1",
                "class": category,
                "coarse": "env",
                "group": category,
                "si_sdr_mix": -snr,
            }
        )
    return rows


def write_scores(path: Path, labels: list[dict], values: np.ndarray, *, with_group: bool = True) -> None:
    """test.csv as stage 3 writes it (protocol weights), SI-SDRi ``values`` rounded as stage 3 rounds them."""
    columns = list(score.columns(SCORING)) if with_group else OLD_COLUMNS
    assert ("group" in columns) == with_group
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for label, value in zip(labels, values):
            writer.writerow(
                {
                    **label,
                    "si_sdr_mix": f"{label['si_sdr_mix']:.4f}",
                    "si_sdr": f"{value + label['si_sdr_mix']:.4f}",
                    "si_sdri": f"{value:.4f}",
                }
            )


def _read(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _scored(name: str, rows: list[dict], uniform: bool) -> Scored:
    return Scored(name, {}, rows, "uniform" if uniform else "robust", uniform, [])


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip()[1:-1])]


def _table(text: str) -> tuple[list[str], dict[str, list[str]]]:
    """A markdown table's header cells and its rows by first cell."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    return _cells(lines[0]), {_cells(line)[0]: _cells(line)[1:] for line in lines[2:]}


def _expected(values: np.ndarray, labels: list[str]) -> dict[str, tuple[int, float, float]]:
    """Per group, by numpy: n, mean, 5th percentile."""
    found = {}
    for name in set(labels):
        subset = np.array([v for v, label in zip(values, labels) if label == name])
        found[name] = (subset.size, float(subset.mean()), float(np.percentile(subset, 5)))
    return found


def _bin(snr: float) -> str:
    """The documented bins: the lower edge in, the upper edge out."""
    if snr < -5:
        return "below -5 dB"
    if snr < 0:
        return "-5 to 0 dB"
    return "0 to 5 dB" if snr < 5 else "5 dB and above"


@pytest.fixture
def two_runs(tmp_path):
    """A baseline and a robust run scored by hand: the environmental sources of the baseline are hard."""
    rng = np.random.default_rng(7)
    labels = _labels(rng)
    base = np.round(np.array([rng.normal(8, 4) if r["coarse"] == "speech" else rng.normal(2, 6) for r in labels]), 4)
    robust = np.round(base + rng.normal(0.8, 1.5, base.size), 4)
    write_scores(tmp_path / "baseline.csv", labels, base)
    write_scores(tmp_path / "robust.csv", labels, robust)
    runs = [
        _scored("baseline", _read(tmp_path / "baseline.csv"), True),
        _scored("robust", _read(tmp_path / "robust.csv"), False),
    ]
    return labels, base, robust, runs


@pytest.mark.parametrize("grouping", ["class", "group", "input_snr"])
def test_the_worst_group_table_recomputes_from_the_scores_file(two_runs, grouping):
    labels, base, robust, runs = two_runs
    names = [_bin(r["si_sdr_mix"]) if grouping == "input_snr" else r[grouping] for r in labels]
    header, rows = _table(tables.worst_group_table(runs, runs[0], grouping))
    base_groups = _expected(base, names)
    target = min(base_groups, key=lambda g: base_groups[g][1])
    assert f"difference on baseline's worst group, {target} (dB)" in header  # which sources: stated
    for name, values in (("baseline", base), ("robust", robust)):
        groups = _expected(values, names)
        worst = min(groups, key=lambda g: groups[g][1])
        n, mean, p5 = groups[worst]
        assert rows[name][:4] == [worst, str(n), f"{mean:.2f}", f"{p5:.2f}"]
    assert rows["baseline"][4:] == ["baseline", "-"]
    # The difference: on the sources of the baseline's worst group, the mixtures resampled.
    keys = [(r["mixture_id"], r["source"]) for r, label in zip(labels, names) if label == target]
    difference = {
        key: float(robust[i] - base[i])
        for i, (r, label) in enumerate(zip(labels, names))
        if label == target
        for key in [(r["mixture_id"], r["source"])]
    }
    assert len(difference) == len(keys) == base_groups[target][0]
    _, sums, counts = stats.by_mixture(difference)
    low, high = stats.interval(stats.bootstrap_means(sums, counts))
    assert rows["robust"][4:] == [f"{np.mean(list(difference.values())):+.2f}", f"[{low:+.2f}, {high:+.2f}]"]


def test_the_per_group_table_holds_every_groups_mean_and_p5_the_worst_in_bold(two_runs):
    labels, base, robust, runs = two_runs
    header, rows = _table(tables.group_table(runs, "class"))
    assert header == ["fine class", "n", "baseline: mean / p5", "robust: mean / p5"]
    assert list(rows) == ["dog", "rain", "speech"]  # by name
    for column, values in ((1, base), (2, robust)):
        groups = _expected(values, [r["class"] for r in labels])
        worst = min(groups, key=lambda g: groups[g][1])
        for name, (n, mean, p5) in groups.items():
            cell = f"{mean:.2f} / {p5:.2f}"
            assert rows[name][0] == str(n)
            assert rows[name][column] == (f"**{cell}**" if name == worst else cell)
    _, bins = _table(tables.group_table(runs, "input_snr"))
    assert list(bins) == [b for b in tables.snr_bins() if b in bins]  # from the lowest SNR up


def test_a_source_at_a_bin_edge_is_in_the_bin_above_it(tmp_path):
    assert tables.snr_bins() == ["below -5 dB", "-5 to 0 dB", "0 to 5 dB", "5 dB and above"]
    assert [tables.snr_bin(v) for v in (-5.0001, -5.0, -0.0001, 0.0, 4.9999, 5.0)] == [
        "below -5 dB",
        "-5 to 0 dB",
        "-5 to 0 dB",
        "0 to 5 dB",
        "0 to 5 dB",
        "5 dB and above",
    ]
    # Through a scores file: the values at the edges as stage 3 writes them (4 decimals).
    labels = [
        {
            "mixture_id": f"m{i // 2}",
            "source": str(i % 2),
            "class": "speech",
            "coarse": "speech",
            "group": "spk",
            "si_sdr_mix": snr,
        }
        for i, snr in enumerate([-5.0, 5.0, 0.0, -0.0, -7.5, 7.5])
    ]
    write_scores(tmp_path / "test.csv", labels, np.arange(6.0))
    groups = tables.group_statistics(_read(tmp_path / "test.csv"), "input_snr")
    assert {name: g.n for name, g in groups.items()} == {
        "below -5 dB": 1,
        "-5 to 0 dB": 1,
        "0 to 5 dB": 2,
        "5 dB and above": 2,
    }
    assert groups["0 to 5 dB"].mean == pytest.approx(2.5)  # the sources at 0 and -0.0 dB


def test_old_scores_without_a_group_column_say_not_recorded_not_an_error(tmp_path):
    rng = np.random.default_rng(3)
    classes = ["speech", "dog"] * 30
    for name, weighting in (("baseline", UNIFORM), ("robust", ROBUST)):
        fake_experiment(tmp_path, name, rng.normal(4, 6, 60), classes, weighting, [{0: 1.0}])
        labels = _labels(rng)[:60]
        write_scores(tmp_path / name / "scores" / "test.csv", labels, rng.normal(4, 6, 60), with_group=False)
    runs = [report.load_scored(tmp_path / name) for name in ("baseline", "robust")]
    assert "group" not in runs[0].rows[0]
    line = "Group (speaker, category): not recorded: rescore with stage 3."
    assert tables.worst_group_table(runs, runs[0], "group") == line
    assert tables.source_labels(runs[0].rows, "group") is None
    assert tables.worst_group_table(runs, runs[0], "class").startswith("| experiment | worst group |")
    text = report.report(tmp_path).read_text()
    section = text[text.index("### Worst group") : text.index("### Figures")]
    assert line in section and "#### By fine class" in section and "#### By input SNR" in section
    assert line in results.build(tmp_path)
    # One run rescored (with the column), one not: the rescored one is tabled, the other says so.
    write_scores(tmp_path / "robust" / "scores" / "test.csv", _labels(rng)[:60], rng.normal(4, 6, 60))
    runs[1] = report.load_scored(tmp_path / "robust")
    header, rows = _table(tables.worst_group_table(runs, runs[0], "group"))
    assert rows["baseline"][0] == "not recorded: rescore with stage 3" and rows["robust"][0] in {
        "spk0",
        "spk1",
        "spk2",
        "dog",
        "rain",
    }
    assert "difference on baseline: not recorded: rescore with stage 3 (dB)" in header


def test_scores_without_the_group_column_are_not_current_so_stage_3_rescores(tmp_path):
    scoring = SCORING
    what = {"scoring": scoring.as_dict(), "checkpoints": [], "test_list_fingerprint": "f"}
    (tmp_path / score.STATS_FILE).write_text(json.dumps(what))
    write_scores(tmp_path / score.TEST_LIST, _labels(np.random.default_rng(0))[:4], np.zeros(4), with_group=False)
    assert score._current(tmp_path / score.STATS_FILE, what, [], scoring) is None
    write_scores(tmp_path / score.TEST_LIST, _labels(np.random.default_rng(0))[:4], np.zeros(4))
    assert score._current(tmp_path / score.STATS_FILE, what, [], scoring) == what


@pytest.fixture
def seeded_runs(tmp_path):
    """A baseline and a robust variant at three training seeds, scored by hand on one test list."""
    rng = np.random.default_rng(11)
    labels = _labels(rng)
    hard = np.array([r["group"] == "spk1" for r in labels])  # the speaker the baseline fails on
    runs, values = [], {}
    for name, uniform, shift in (("baseline", True, 0.0), ("robust", False, 1.0)):
        for seed in (1, 2, 3):
            v = np.round(rng.normal(6, 4, len(labels)) - 5 * hard + shift * hard + rng.normal(0, 0.5), 4)
            path = tmp_path / f"{name}_seed{seed}.csv"
            write_scores(path, labels, v)
            runs.append(_scored(f"{name}_seed{seed}", _read(path), uniform))
            values[name, seed] = v
    return labels, values, across_seeds.seed_groups(runs)


def test_across_seeds_the_worst_groups_difference_is_paired_over_seeds_on_its_sources(seeded_runs):
    labels, values, variants = seeded_runs
    baseline, robust = variants
    assert [v.name for v in variants] == ["baseline", "robust"] and baseline.seeds == [1, 2, 3]
    header, rows = _table(tables.worst_group_table(variants, baseline, "group", over_seeds=True))
    names = [r["group"] for r in labels]
    per_seed = {(name, seed): _expected(values[name, seed], names) for name, seed in values}
    over_seeds = {g: np.mean([per_seed["baseline", s][g][1] for s in (1, 2, 3)]) for g in set(names)}
    target = min(over_seeds, key=over_seeds.get)
    assert target == "spk1" and "difference on baseline's worst group, spk1 (dB)" in header
    means = [per_seed["baseline", s][target][1] for s in (1, 2, 3)]
    p5s = [per_seed["baseline", s][target][2] for s in (1, 2, 3)]
    assert rows["baseline"][:5] == [
        "3",
        "spk1",
        str(per_seed["baseline", 1][target][0]),
        f"{np.mean(means):.2f} ± {np.std(means, ddof=1):.2f}",
        f"{np.mean(p5s):.2f} ± {np.std(p5s, ddof=1):.2f}",
    ]
    # The same as stats.paired_over_seeds called directly on the worst group's sources, seed k against seed k.
    differences = [
        {
            (r["mixture_id"], r["source"]): float(values["robust", s][i] - values["baseline", s][i])
            for i, r in enumerate(labels)
            if r["group"] == target
        }
        for s in (1, 2, 3)
    ]
    direct = stats.paired_over_seeds(differences)
    assert direct.seeds == 3 and direct.sources == sum(1 for g in names if g == target)
    assert rows["robust"][5:] == [
        f"{direct.mean_difference:+.2f}",
        f"[{direct.low:+.2f}, {direct.high:+.2f}]",
        f"[{direct.mixtures_low:+.2f}, {direct.mixtures_high:+.2f}]",
    ]
    assert rows["baseline"][5:] == ["baseline", "-", "-"]


def test_across_seeds_the_report_and_results_show_the_worst_group_over_seeds(tmp_path):
    rng = np.random.default_rng(5)
    classes = ["speech", "dog"] * 30
    for name, weighting in (("baseline", UNIFORM), ("robust", ROBUST)):
        for seed in (1, 2):
            exp = f"{name}_seed{seed}"
            fake_experiment(tmp_path, exp, rng.normal(4, 6, 60), classes, weighting, [{0: 1.0}])
            saved = yaml.safe_load((tmp_path / exp / "config.yaml").read_text())
            saved["training"]["seed"] = seed
            (tmp_path / exp / "config.yaml").write_text(yaml.safe_dump(saved))
            write_scores(
                tmp_path / exp / "scores" / "test.csv", _labels(np.random.default_rng(0))[:60], rng.normal(4, 6, 60)
            )
    text = report.report(tmp_path).read_text()
    section = text[text.index("### Worst group") :]
    assert "| variant | seeds | worst group |" in section and "95 % interval over seeds and mixtures" in section
    assert "| variant | seeds | worst group |" in results.build(tmp_path)


def test_a_group_name_that_is_markdown_is_escaped(tmp_path):
    labels = _labels(np.random.default_rng(1))[:20]
    for label in labels:
        label["group"] = "a|b<img src=x>" if label["source"] == "0" else "[x](javascript:alert(1))"
    write_scores(tmp_path / "test.csv", labels, np.arange(20.0) - 10 * (np.arange(20) % 2))
    run = _scored("base|line", _read(tmp_path / "test.csv"), True)
    for table in (tables.worst_group_table([run], run, "group"), tables.group_table([run], "group")):
        lines = table.splitlines()
        assert len({len(_cells(line)) for line in lines}) == 1
        assert "<img" not in table and not re.search(r"(?<!\\)\]\(javascript:", table)
        assert "\\[x\\](javascript:alert(1))" in table  # the worst group, escaped
    assert "| a\\|b&lt;img src=x&gt; | 10 |" in tables.group_table([run], "group")
