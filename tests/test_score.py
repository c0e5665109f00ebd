"""Scoring: per-source rows against an SI-SDR computed here in numpy, stats from the CSV, last-K averaging."""
from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from test_data_helpers import make_esc50, make_wsj0
from ugr import checkpoints, config, score
from ugr.data.dataset import ListedMixtures
from ugr.data.eval_list import write_drawn_list
from ugr.data.mixing import MixingSettings
from ugr.data.prepare import CorpusInput, prepare
from ugr.models import build_model
from test_config import CONF_DIR

SEGMENT = 0.5
N_MIXTURES = 6


def tiny_experiment_cfg() -> dict:
    cfg = config.load(CONF_DIR / "baseline_cpu.yaml")
    cfg["model"].update(num_blocks=1, n_filters=32, bn_chan=16, upsampling_depth=2)
    cfg["data"].update(segment=SEGMENT, test_mixtures=N_MIXTURES, priors={"speech+env": 1.0})
    cfg["scoring"]["average_last_k"] = 2
    return cfg


def save_epoch_checkpoints(exp_dir: Path, cfg: dict, epochs: int) -> list[dict]:
    """Lightning-layout checkpoints of differently seeded models; returns their model state dicts."""
    exp_dir.mkdir(parents=True, exist_ok=True)
    (exp_dir / "config.yaml").write_text(yaml.safe_dump(cfg))
    states = []
    for epoch in range(epochs):
        torch.manual_seed(epoch)
        state = build_model(cfg["model"]).state_dict()
        states.append(state)
        checkpoints.atomic_torch_save({"state_dict": {f"model.{k}": v for k, v in state.items()}, "epoch": epoch},
                                      exp_dir / "checkpoints" / f"epoch={epoch}.ckpt")
    return states


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A prepared two-class corpus and the test list of tiny_experiment_cfg (speech+env mixtures)."""
    root = tmp_path_factory.mktemp("score")
    sets = {"si_tr_s": ["01a", "02b"], "si_dt_05": ["20c", "21d"], "si_et_05": ["40e", "41f"]}
    wsj0, esc50 = make_wsj0(root, sets), make_esc50(root / "esc50", clips_per_fold=2, seconds=1.0)
    prepare(root / "data", [CorpusInput("wsj0", str(wsj0)), CorpusInput("esc50", str(esc50))], fs=8000)
    cfg = tiny_experiment_cfg()
    lists = config.lists_dir(cfg, root / "data")
    write_drawn_list(root / "data", "test", lists / "test.csv", num=N_MIXTURES,
                     settings=MixingSettings.from_config(cfg["data"]))
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
    assert list(rows[0]) == list(score.COLUMNS)
    assert len(rows) == 2 * N_MIXTURES
    dataset = ListedMixtures(data, lists / "test.csv", sample_rate=8000)
    for index in range(len(dataset)):
        item = dataset[index]
        with torch.no_grad():
            est = model(item["mixture"][None])[0].double().numpy()
        src, mix = item["sources"].double().numpy(), item["mixture"].double().numpy()
        best = max(itertools.permutations(range(2)),
                   key=lambda perm: sum(np_si_sdr(est[perm[s]], src[s]) for s in range(2)))
        mine = [r for r in rows if r["mixture_id"] == item["id"]]
        assert [r["class"] for r in mine] == item["classes"] and [r["coarse"] for r in mine] == item["coarse"]
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
    one = score.score(tmp_path / "exp", data, checkpoint=tmp_path / "exp" / "checkpoints" / "epoch=0.ckpt",
                      progress=False)
    both = score.score(tmp_path / "exp", data, scoring={"average_last_k": 2}, progress=False)
    assert one["mean"] != both["mean"] and both["scoring"] == {"average_last_k": 2}


def test_current_scores_are_kept_and_changed_settings_or_checkpoints_rescore(corpus, tmp_path):
    data, _ = corpus
    cfg = tiny_experiment_cfg()
    save_epoch_checkpoints(tmp_path / "exp", cfg, epochs=3)
    first = score.score(tmp_path / "exp", data, progress=False)
    assert not first.get("up_to_date") and "epoch=1.ckpt, epoch=2.ckpt" in first["weights"]
    kept = score.score(tmp_path / "exp", data, progress=False)
    assert kept["up_to_date"] and kept["mean"] == first["mean"]
    three = score.score(tmp_path / "exp", data, scoring={"average_last_k": 3}, progress=False)
    assert not three.get("up_to_date") and "epoch=0.ckpt" in three["weights"] and three["mean"] != first["mean"]
    save_epoch_checkpoints(tmp_path / "exp", cfg, epochs=3)  # retrained: new files
    assert not score.score(tmp_path / "exp", data, scoring={"average_last_k": 3}, progress=False).get("up_to_date")


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
