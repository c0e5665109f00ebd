"""Scoring: per-source rows against an SI-SDR computed here in numpy, stats from the CSV, last-K averaging, the
per-epoch protocol, the other metrics, and what makes scores stale."""

from __future__ import annotations

import csv
import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from test_config import CONF_DIR
from test_data_helpers import make_esc50, make_wsj0

from ugr.data.dataset import ListedMixtures
from ugr.data.eval_list import write_drawn_list
from ugr.data.prepare import CorpusInput, prepare
from ugr.pipeline import checkpoints, config, score
from ugr.pipeline.lists import lists_dir
from ugr.separation.models import build_model

SEGMENT = 0.5
N_MIXTURES = 6


def tiny_experiment_cfg() -> dict:
    """A tiny model's config as a mapping (tests edit it; ``typed`` checks it)."""
    cfg = config.load(CONF_DIR / "cpu" / "baseline_cpu.yaml").to_dict()
    cfg["model"].update(num_blocks=1, n_filters=32, bn_chan=16, upsampling_depth=2)
    cfg["data"].update(segment=SEGMENT, test_mixtures=N_MIXTURES, priors={"speech+env": 1.0})
    cfg["scoring"].update(average_last_k=2, protocol="weights", metrics=["si_sdri"])
    return cfg


def typed(cfg: dict) -> config.ExperimentConfig:
    return config.validate(cfg, where="tiny_experiment_cfg")


def scoring(**changes) -> config.ScoringConfig:
    """tiny_experiment_cfg's scoring section with ``changes``."""
    return config.ScoringConfig.from_section({**tiny_experiment_cfg()["scoring"], **changes}, "scoring(...)")


def read_rows(exp_dir: Path) -> list[dict]:
    with open(exp_dir / "scores" / "test.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def save_epoch_checkpoints(exp_dir: Path, cfg: dict, epochs: int) -> list[dict]:
    """Lightning-layout checkpoints of differently seeded models; returns their model state dicts."""
    exp_dir.mkdir(parents=True, exist_ok=True)
    (exp_dir / "config.yaml").write_text(yaml.safe_dump(cfg))
    states = []
    for epoch in range(epochs):
        torch.manual_seed(epoch)
        state = build_model(cfg["model"]).state_dict()
        states.append(state)
        checkpoints.atomic_torch_save(
            {"state_dict": {f"model.{k}": v for k, v in state.items()}, "epoch": epoch},
            exp_dir / "checkpoints" / f"epoch={epoch}.ckpt",
        )
    return states


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A prepared two-class corpus and the test list of tiny_experiment_cfg (speech+env mixtures)."""
    root = tmp_path_factory.mktemp("score")
    sets = {"si_tr_s": ["01a", "02b"], "si_dt_05": ["20c", "21d"], "si_et_05": ["40e", "41f"]}
    wsj0, esc50 = make_wsj0(root, sets), make_esc50(root / "esc50", clips_per_fold=2, seconds=1.0)
    prepare(root / "data", [CorpusInput("wsj0", str(wsj0)), CorpusInput("esc50", str(esc50))], fs=8000)
    cfg = tiny_experiment_cfg()
    lists = lists_dir(typed(cfg), root / "data")
    write_drawn_list(
        root / "data", "test", lists / "test.csv", num=N_MIXTURES, settings=(typed(cfg).data).mixing_settings()
    )
    return root / "data", lists


def np_si_sdr(est: np.ndarray, ref: np.ndarray) -> float:
    """SI-SDR (dB) from its definition, zero-mean signals, float64."""
    est, ref = est - est.mean(), ref - ref.mean()
    target = (est @ ref) / (ref @ ref) * ref
    return float(10 * np.log10((target @ target) / ((est - target) @ (est - target))))


def test_rows_match_an_independent_si_sdr_and_stats_match_the_csv(corpus, tmp_path):
    data, lists = corpus
    cfg = tiny_experiment_cfg()
    states = save_epoch_checkpoints(tmp_path / "exp", cfg, epochs=3)
    stats = score.score(tmp_path / "exp", data, progress=False)

    # The model scored must be the mean of the last two epochs.
    model = build_model(cfg["model"])
    model.load_state_dict({k: (states[1][k] + states[2][k]) / 2 for k in states[0]})
    model.eval()
    with open(tmp_path / "exp" / "scores" / "test.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(score.columns(typed(cfg).scoring)) == list(score.LABEL_COLUMNS + score.SI_SDR_COLUMNS)
    assert len(rows) == 2 * N_MIXTURES
    dataset = ListedMixtures(data, lists / "test.csv", sample_rate=8000)
    for index in range(len(dataset)):
        item = dataset[index]
        with torch.no_grad():
            est = model(item["mixture"][None])[0].double().numpy()
        src, mix = item["sources"].double().numpy(), item["mixture"].double().numpy()
        best = max(
            itertools.permutations(range(2)), key=lambda perm: sum(np_si_sdr(est[perm[s]], src[s]) for s in range(2))
        )
        mine = [r for r in rows if r["mixture_id"] == item["id"]]
        assert [r["class"] for r in mine] == item["classes"] and [r["coarse"] for r in mine] == item["coarse"]
        assert [r["group"] for r in mine] == item["groups"] and all(item["groups"])  # the manifest's group
        for s, row in enumerate(mine):
            assert int(row["source"]) == s
            assert float(row["si_sdr"]) == pytest.approx(np_si_sdr(est[best[s]], src[s]), abs=2e-3)
            assert float(row["si_sdr_mix"]) == pytest.approx(np_si_sdr(mix, src[s]), abs=2e-3)
            assert float(row["si_sdri"]) == pytest.approx(float(row["si_sdr"]) - float(row["si_sdr_mix"]), abs=2e-4)

    on_disk = json.loads((tmp_path / "exp" / "scores" / "test_stats.json").read_text())
    assert on_disk["n"] == stats["n"] == len(rows)
    values = np.array([float(r["si_sdri"]) for r in rows])
    assert on_disk["mean"] == pytest.approx(values.mean(), abs=1e-3)
    assert on_disk["std"] == pytest.approx(values.std(), abs=1e-3)
    for q in score.PERCENTILES:
        assert on_disk[f"p{q}"] == pytest.approx(np.percentile(values, q), abs=1e-3)
    per_class, per_coarse = on_disk["per_class"], on_disk["per_coarse"]
    assert per_coarse["speech"]["n"] == per_coarse["env"]["n"] == N_MIXTURES and set(per_coarse) == {"speech", "env"}
    for fine in {r["class"] for r in rows}:
        subset = np.array([float(r["si_sdri"]) for r in rows if r["class"] == fine])
        assert per_class[fine]["n"] == len(subset)
        assert per_class[fine]["mean"] == pytest.approx(subset.mean(), abs=1e-3)
    env = np.array([float(r["si_sdri"]) for r in rows if r["coarse"] == "env"])
    assert per_coarse["env"]["p50"] == pytest.approx(np.median(env), abs=1e-3)
    assert "epoch=1.ckpt" in on_disk["weights"] and "epoch=2.ckpt" in on_disk["weights"]
    assert not list((tmp_path / "exp" / "scores").glob(".*tmp*")), "temporary files left behind"


def test_average_last_checks_and_one_checkpoint(corpus, tmp_path):
    cfg = tiny_experiment_cfg()
    states = save_epoch_checkpoints(tmp_path / "exp", cfg, epochs=2)
    with pytest.raises(FileNotFoundError, match="2 epoch checkpoint.*3 needed"):
        checkpoints.average_last_epochs(tmp_path / "exp" / "checkpoints", 3)
    averaged, used = checkpoints.average_last_epochs(tmp_path / "exp" / "checkpoints", 1)
    assert [p.name for p in used] == ["epoch=1.ckpt"]
    for name, value in states[1].items():
        torch.testing.assert_close(averaged[name], value)
    data, _ = corpus
    one = score.score(
        tmp_path / "exp", data, checkpoint=tmp_path / "exp" / "checkpoints" / "epoch=0.ckpt", progress=False
    )
    both = score.score(tmp_path / "exp", data, scoring=scoring(average_last_k=2), progress=False)
    assert one["mean"] != both["mean"] and both["scoring"] == scoring(average_last_k=2).as_dict()
    assert one["scoring"]["protocol"] == "weights" and one["weights"].endswith("epoch=0.ckpt")


def test_current_scores_are_kept_and_changed_settings_or_checkpoints_rescore(corpus, tmp_path):
    data, _ = corpus
    cfg = tiny_experiment_cfg()
    save_epoch_checkpoints(tmp_path / "exp", cfg, epochs=3)
    first = score.score(tmp_path / "exp", data, progress=False)
    assert not first.get("up_to_date") and "epoch=1.ckpt, epoch=2.ckpt" in first["weights"]
    kept = score.score(tmp_path / "exp", data, progress=False)
    assert kept["up_to_date"] and kept["mean"] == first["mean"]
    three = score.score(tmp_path / "exp", data, scoring=scoring(average_last_k=3), progress=False)
    assert not three.get("up_to_date") and "epoch=0.ckpt" in three["weights"] and three["mean"] != first["mean"]
    save_epoch_checkpoints(tmp_path / "exp", cfg, epochs=3)  # retrained: new files
    assert not score.score(tmp_path / "exp", data, scoring=scoring(average_last_k=3), progress=False).get("up_to_date")
    for changed in (
        scoring(average_last_k=3, protocol="epochs"),
        scoring(average_last_k=3, metrics=["si_sdri", "sdri"]),
    ):
        assert not score.score(tmp_path / "exp", data, scoring=changed, progress=False).get("up_to_date"), changed
        assert score.score(tmp_path / "exp", data, scoring=changed, progress=False)["up_to_date"]


def test_cli_errors_name_the_missing_input(corpus, tmp_path):
    data, _ = corpus
    with pytest.raises(SystemExit, match="config.yaml: no config"):
        score.main(["--exp-dir", str(tmp_path / "nothing"), "--data", str(data)])
    save_epoch_checkpoints(tmp_path / "exp", tiny_experiment_cfg(), epochs=2)
    with pytest.raises(SystemExit, match="test mixture list missing"):
        score.main(["--exp-dir", str(tmp_path / "exp"), "--data", str(tmp_path)])
    with pytest.raises(SystemExit, match="--override needs --config"):
        score.main(["--exp-dir", str(tmp_path / "exp"), "--data", str(data), "--override", "scoring.average_last_k=1"])


def test_summarize_refuses_nothing():
    with pytest.raises(ValueError):
        score.summarize([])


def test_protocol_epochs_scores_each_checkpoint_and_averages_the_statistics_across_epochs(corpus, tmp_path):
    data, _ = corpus
    exp = tmp_path / "exp"
    save_epoch_checkpoints(exp, tiny_experiment_cfg(), epochs=3)
    chosen = scoring(protocol="epochs", average_last_k=2, metrics=["si_sdri", "sdri"])
    stats = score.score(exp, data, scoring=chosen, progress=False)
    rows = read_rows(exp)
    assert list(rows[0]) == list(score.columns(chosen))
    assert [int(r["epoch"]) for r in rows] == [1] * (2 * N_MIXTURES) + [2] * (2 * N_MIXTURES)
    epochs = json.loads((exp / "scores" / score.EPOCHS_FILE).read_text())
    assert epochs["epochs"] == [1, 2] and [e["checkpoint"] for e in epochs["per_epoch"]] == [
        "epoch=1.ckpt",
        "epoch=2.ckpt",
    ]

    # Each epoch's rows are that checkpoint's scores alone.
    copy = tmp_path / "copy"
    shutil.copytree(exp, copy)
    score.score(
        copy, data, scoring=chosen, checkpoint=copy / "checkpoints" / "epoch=1.ckpt", progress=False, force=True
    )
    single = read_rows(copy)
    for metric in ("si_sdri", "sdri"):
        assert [r[metric] for r in single] == [r[metric] for r in rows if r["epoch"] == "1"]

    def recomputed(epoch: str, coarse: str | None = None) -> np.ndarray:
        return np.array(
            [float(r["si_sdri"]) for r in rows if r["epoch"] == epoch and (coarse is None or r["coarse"] == coarse)]
        )

    keys = ["mean", "std", "p1", "p5", "p50", "p99"]
    per_epoch = {
        e: {k: v for k, v in zip(keys, (x.mean(), x.std(), *np.percentile(x, [1, 5, 50, 99])))}
        for e in ("1", "2")
        for x in [recomputed(e)]
    }
    for k in keys:
        values = [per_epoch["1"][k], per_epoch["2"][k]]
        assert [e[k] for e in epochs["per_epoch"]] == pytest.approx(values, abs=1e-3)
        assert epochs["mean"][k] == pytest.approx(np.mean(values), abs=1e-3) == stats[k]
        assert epochs["std"][k] == pytest.approx(np.std(values), abs=1e-3) == stats["across_epochs_std"][k]
    env = [recomputed(e, "env").mean() for e in ("1", "2")]
    assert stats["per_coarse"]["env"]["mean"] == pytest.approx(np.mean(env), abs=1e-3)
    assert stats["across_epochs_std"]["per_coarse"]["env"]["mean"] == pytest.approx(np.std(env), abs=1e-3)
    sdri = [np.mean([float(r["sdri"]) for r in rows if r["epoch"] == e]) for e in ("1", "2")]
    assert stats["metrics"]["sdri"]["mean"] == pytest.approx(np.mean(sdri), abs=1e-3)
    assert stats["across_epochs_std"]["metrics"]["sdri"]["mean"] == pytest.approx(np.std(sdri), abs=1e-3)
    assert stats["n"] == 2 * N_MIXTURES and "n" not in stats["across_epochs_std"]
    assert json.loads((exp / "scores" / score.STATS_FILE).read_text())["mean"] == stats["mean"]

    # Back to one averaged model: the per-epoch file goes, as it no longer describes the scores.
    score.score(exp, data, scoring=scoring(average_last_k=2), progress=False)
    assert not (exp / "scores" / score.EPOCHS_FILE).exists() and "epoch" not in read_rows(exp)[0]


def test_other_metrics_are_columns_and_statistics_where_they_apply(corpus, tmp_path):
    from pystoi import stoi as reference_stoi

    from ugr.separation import metrics

    data, lists = corpus
    exp = tmp_path / "exp"
    cfg = tiny_experiment_cfg()
    states = save_epoch_checkpoints(exp, cfg, epochs=1)
    stats = score.score(
        exp, data, scoring=scoring(average_last_k=1, metrics=["stoi", "si_sdri", "sdri"]), progress=False
    )
    rows = read_rows(exp)
    assert list(rows[0])[-2:] == ["stoi", "sdri"]
    model = build_model(cfg["model"])
    model.load_state_dict(states[0])
    model.eval()
    dataset = ListedMixtures(data, lists / "test.csv", sample_rate=8000)
    for index in range(len(dataset)):
        item = dataset[index]
        with torch.no_grad():
            _, _, ordered = score.score_batch(
                model(item["mixture"][None]), item["sources"][None], item["mixture"][None]
            )
        sdri = metrics.sdri(ordered, item["sources"][None], item["mixture"][None])[0]
        for s, row in enumerate(r for r in rows if r["mixture_id"] == item["id"]):
            assert float(row["sdri"]) == pytest.approx(float(sdri[s]), abs=2e-4)
            if row["coarse"] == "speech":
                expected = reference_stoi(item["sources"][s].double().numpy(), ordered[0, s].double().numpy(), 8000)
                assert float(row["stoi"]) == pytest.approx(expected, abs=2e-4)
            else:
                assert row["stoi"] == ""  # STOI measures speech intelligibility: not applicable
    speech_stoi = np.array([float(r["stoi"]) for r in rows if r["coarse"] == "speech"])
    assert stats["metrics"]["stoi"]["n"] == N_MIXTURES == len(speech_stoi)
    assert stats["metrics"]["stoi"]["mean"] == pytest.approx(speech_stoi.mean(), abs=1e-3)
    assert set(stats["metrics"]["stoi"]["per_coarse"]) == {"speech"}
    sdri_values = np.array([float(r["sdri"]) for r in rows])
    assert stats["metrics"]["sdri"]["n"] == 2 * N_MIXTURES
    assert stats["metrics"]["sdri"]["p5"] == pytest.approx(np.percentile(sdri_values, 5), abs=1e-3)
    assert "si_sdri" not in stats["metrics"]  # it is the top level


def test_another_test_list_makes_the_scores_stale(corpus, tmp_path):
    """`python -m ugr.pipeline.score --data B` after scoring on A must score B's list, not report A's scores as current."""
    data, lists = corpus
    exp = tmp_path / "exp"
    cfg = tiny_experiment_cfg()
    save_epoch_checkpoints(exp, cfg, epochs=2)
    assert score.score(exp, data, progress=False)["n"] == 2 * N_MIXTURES
    other = tmp_path / "data_b"
    shutil.copytree(data, other)
    write_drawn_list(
        other,
        "test",
        lists_dir(typed(cfg), other) / "test.csv",
        num=N_MIXTURES - 2,
        settings=(typed(cfg).data).mixing_settings(),
    )
    on_b = score.score(exp, other, progress=False)
    assert not on_b.get("up_to_date") and on_b["n"] == 2 * (N_MIXTURES - 2)
    assert on_b["test_list"] == str(lists_dir(typed(cfg), other) / "test.csv")
    back = score.score(exp, data, progress=False)
    assert not back.get("up_to_date") and back["n"] == 2 * N_MIXTURES


@pytest.mark.parametrize(
    "key, value, message",
    [
        (
            "metrics",
            ["si_sdri", "bogus"],
            "scoring.metrics names unknown metric(s) 'bogus'; allowed: si_sdri, sdri, stoi, pesq",
        ),
        ("metrics", "sdri", "scoring.metrics must be a list of metrics among"),
        ("protocol", "ensemble", "scoring.protocol must be one of ['weights', 'epochs']"),
    ],
)
def test_unknown_metric_or_protocol_is_refused_naming_the_key(tmp_path, key, value, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"inherit": str(CONF_DIR / "cpu" / "baseline_cpu.yaml"), "scoring": {key: value}}))
    with pytest.raises(config.ConfigError) as err:
        config.load(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_a_metric_at_a_rate_it_does_not_support_is_refused_before_training(tmp_path):
    path = tmp_path / "pesq.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "inherit": str(CONF_DIR / "cpu" / "baseline_cpu.yaml"),
                "data": {"sample_rate": 11025},
                "model": {"sample_rate": 11025},
                "scoring": {"metrics": ["pesq"]},
            }
        )
    )
    with pytest.raises(
        config.ConfigError,
        match=r"pesq.yaml: scoring.metrics: metric 'pesq' supports sample rates "
        r"\[8000, 16000\] Hz, not 11025 Hz",
    ):
        config.load(path)


def test_a_scoring_section_without_its_keys_is_refused(corpus, tmp_path):
    """Handed in, or in the experiment's config.yaml (a folder of a ugr before protocol and metrics existed)."""
    data, _ = corpus
    with pytest.raises(config.ConfigError, match=r"missing key\(s\) scoring.metrics, scoring.protocol"):
        config.ScoringConfig.from_section({"average_last_k": 2}, "scoring settings")
    cfg = tiny_experiment_cfg()
    cfg["scoring"] = {"average_last_k": 2}
    save_epoch_checkpoints(tmp_path / "exp", cfg, epochs=2)
    with pytest.raises(
        config.ConfigError, match=r"exp/config.yaml: missing key\(s\) scoring.metrics, scoring.protocol"
    ):
        score.score(tmp_path / "exp", data, progress=False)
