"""Export a trained experiment as an asteroid pretrained model, with a model card beside it.

    ugr-export --exp-dir egs/wsj0_esc50/exp/robust_a5_cpu --out publish/robust_a5_cpu.pth

FILE is in asteroid's pretrained-model format, what ``BaseModel.serialize()``
gives (``model_name``, ``state_dict``, ``model_args``, ``infos``), plus the
``dataset``, ``task`` and ``licenses`` that asteroid's recipes add, so that
stock asteroid (its own layers, no ugr installed) loads and runs it:

    from asteroid.models import BaseModel
    model = BaseModel.from_pretrained("publish/robust_a5_cpu.pth")

FILE with the suffix ``.md`` is its model card: what the model is, how to load
it, the weighting it was trained with in words, the test SI-SDRi table (when
the experiment is scored, ``EXP/scores/test_stats.json``), the training data
(the data folder's ``prepare_report.json``, found by ``--data`` or in the
recipe layout beside ``exp/``), the whole config, and the licences: the code's
(MIT) and the training data's, whose terms the weights inherit. Both files
are ready for a model hub; nothing is uploaded.

The weights are those ugr-separate uses (``ugr.pipeline.checkpoints.load_experiment``):
the average of the last ``scoring.average_last_k`` epoch checkpoints, or
``--average-last K``, or one ``--checkpoint``. Before anything is written, the
serialized model is loaded back the way ``from_pretrained`` does (torch's
weights-only unpickler, stock asteroid classes) and must separate a test
signal as the experiment's model does, within 1e-5.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
import yaml
from asteroid.models import BaseModel

import ugr
from ugr.core import weighting
from ugr.data.corpora import LICENCES
from ugr.data.prepare import REPORT_NAME
from ugr.io.atomic import atomic_write, atomic_write_text
from ugr.pipeline.checkpoints import add_weights_options, epoch_checkpoints, load_experiment
from ugr.pipeline.config import DataConfig, ExperimentConfig
from ugr.pipeline.experiment_dir import DONE_FILE, ExperimentDir
from ugr.pipeline.score import STATS_FILE
from ugr.report.markdown import code_span, fenced, markdown_cell
from ugr.report.tables import class_table, distribution_table

TOLERANCE = 1e-5  # largest difference allowed between the exported model's estimates and the experiment's

CITATION = """@inproceedings{tzinis2021unified,
  title     = {Unified Gradient Reweighting for Model Biasing with Applications to Source Separation},
  author    = {Tzinis, Efthymios and Bralios, Dimitrios and Smaragdis, Paris},
  booktitle = {IEEE International Conference on Acoustics, Speech and Signal Processing (ICASSP)},
  year      = {2021},
  eprint    = {2010.13228},
  archivePrefix = {arXiv}
}"""


class ExportError(ValueError):
    """An experiment or option that cannot be exported; the message names it and the fix."""


def _check_trained(exp_dir: Path, checkpoint: Optional[Path]) -> None:
    """Clear errors for what load_experiment would report less directly: nothing trained, training unfinished."""
    folder = ExperimentDir(exp_dir)
    if not folder.config_file.is_file():
        raise ExportError(
            f"{exp_dir}: not an experiment folder (no {folder.config_file.name}); pass the --exp-dir that stage 2 "
            f"trained (e.g. egs/wsj0_esc50/exp/baseline_cpu)"
        )
    if checkpoint is not None:
        return
    if not epoch_checkpoints(folder.checkpoints):
        raise ExportError(f"{exp_dir}: not trained yet (no checkpoints/epoch=N.ckpt); train it (stage 2) first")
    if not folder.is_done():
        raise ExportError(
            f"{exp_dir}: training has not finished (no {DONE_FILE}), so its last epochs are not the "
            f"config's; let stage 2 finish, or pass --checkpoint FILE to export one checkpoint anyway"
        )


def mixture_classes(data: DataConfig) -> List[str]:
    """The coarse classes the training mixtures drew from (those of the mixture types with a prior > 0)."""
    return list(dict.fromkeys(c for name, weight in data.priors.items() if weight > 0 for c in name.split("+")))


def find_report(exp_dir: Path, data_dir: Optional[Path]) -> Optional[Path]:
    """The data folder's preparation report: in ``data_dir`` when given (an error if missing), else in the recipe
    layout (``<recipe>/exp/<experiment>`` beside ``<recipe>/data``), else None."""
    if data_dir is not None:
        path = data_dir / REPORT_NAME
        if not path.is_file():
            raise ExportError(f"{path}: no preparation report; pass --data the folder stage 0 prepared")
        return path
    path = exp_dir.resolve().parent.parent / "data" / REPORT_NAME
    return path if path.is_file() else None


def _mini_corpus_licences(provenance: Path, layout: str) -> List[Dict[str, Any]]:
    """One licence record per package behind the files of one mini-corpus layout, with its file count."""
    counts: Dict[tuple[str, str], int] = {}
    with open(provenance, newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            if row["file"].split("/")[0] == layout:
                key = (row["package"], row.get("licence") or "unknown: see the package")
                counts[key] = counts.get(key, 0) + 1
    return [
        {
            "title": package,
            "title_link": "",
            "author": "",
            "author_link": "",
            "license": licence,
            "license_link": "",
            "non_commercial": False,
            "files": count,
        }
        for (package, licence), count in sorted(counts.items())
    ]


def training_data(report: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """The corpora the data folder was prepared from, and their licences (asteroid's records), for the package
    and the card. A corpus of the ugr mini corpus (its stamp ``minicorpus.json`` beside the layout) lists the
    packages behind its files, from its ``provenance.tsv``."""
    if report is None:
        return {"dataset": "unknown (no preparation report)", "licenses": [], "known": False}
    names, licences = [], []
    for corpus in report["settings"]["corpora"]:
        root = Path(corpus["root"])
        provenance = root.parent / "provenance.tsv"
        if (root.parent / "minicorpus.json").is_file() and provenance.is_file():
            names.append(f"ugr mini corpus ({root.name} layout)")
            licences += _mini_corpus_licences(provenance, root.name)
        else:
            names.append(corpus["name"])
            licences.append(
                LICENCES.get(
                    corpus["name"],
                    {
                        "title": corpus["name"],
                        "title_link": "",
                        "author": "",
                        "author_link": "",
                        "license": "unknown: the corpus plug-in states none",
                        "license_link": "",
                        "non_commercial": False,
                    },
                )
            )
    return {"dataset": " + ".join(names), "licenses": licences, "known": True}


def _plain(value: Any) -> Any:
    """torch.load's weights-only unpickler (what from_pretrained uses) accepts plain types only."""
    return json.loads(json.dumps(value))


def build_package(
    model: BaseModel,
    cfg: ExperimentConfig,
    weights: str,
    stats: Optional[Dict[str, Any]],
    data: Dict[str, Any],
    experiment: str,
) -> Dict[str, Any]:
    """``model.serialize()`` with plain-typed infos, the training context and asteroid's recipe fields."""
    package = model.serialize()
    infos = package["infos"]
    # asteroid stores torch.__version__ as a TorchVersion object, which torch >= 2.6 refuses to load by default.
    infos["software_versions"] = {
        **{k: str(v) for k, v in infos["software_versions"].items()},
        "ugr_version": ugr.__version__,
    }
    infos.update(
        _plain(
            {
                "recipe_name": "ugr",
                "experiment": experiment,
                "weights": weights,
                "training_config": cfg.to_dict(),
                "final_metrics": stats,
            }
        )
    )
    task = "sep_" + "+".join(mixture_classes(cfg.data))
    package.update(_plain({"dataset": data["dataset"], "task": task, "licenses": data["licenses"]}))
    return package


def verify(payload: bytes, model: torch.nn.Module, sample_rate: int) -> float:
    """Loads the serialized bytes as ``from_pretrained`` does and compares estimates on 1 s of noise.

    Returns the largest difference; raises ExportError above ``TOLERANCE``.
    """
    conf = torch.load(io.BytesIO(payload), map_location="cpu")  # weights-only, as from_pretrained
    stock = BaseModel.from_pretrained(conf).eval()
    mixture = 0.1 * torch.randn(1, int(sample_rate), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        difference = (stock(mixture) - model(mixture)).abs().max().item()
    if not difference <= TOLERANCE:
        raise ExportError(
            f"the exported model separates differently from the experiment's (max difference "
            f"{difference:.3g} > {TOLERANCE:g}); report this as a bug"
        )
    return difference


def _scores_section(exp_dir: Path, stats: Optional[Dict[str, Any]], weights: str, cfg: ExperimentConfig) -> str:
    if stats is None:
        return (
            f"Not scored yet (no `scores/{STATS_FILE}`): score the experiment (stage 3, `python -m ugr.pipeline.score`) "
            f"and export again to have the table here."
        )
    name, scored = exp_dir.name, stats.get("weights", "?")
    caveat = (
        ""
        if scored == weights
        else f" (not the exported weights, {markdown_cell(weights)}: these scores are not theirs)"
    )
    return (
        f"SI-SDR improvement (dB) per estimated source on the recipe's fixed test list, weights: "
        f"{markdown_cell(scored)}{caveat}.\n\n{distribution_table({name: stats}, {name: cfg.weighting.label()})}"
        f"\n\nPer class of the reference (mean ±, the last column says what the ± is):\n\n{class_table({name: stats})}"
    )


def _data_section(
    report_path: Optional[Path], report: Optional[Dict[str, Any]], data: Dict[str, Any], cfg: ExperimentConfig
) -> str:
    d = cfg.data
    if d.train_from == "published":
        made = (
            f"Training mixtures: random {d.segment:g} s segments of the corpus's published training "
            f"mixtures at {d.sample_rate} Hz, {d.train_mixtures_per_epoch} per epoch, seed {d.seed}."
        )
    else:
        mixtures = ", ".join(f"{markdown_cell(kind)} {weight:g}" for kind, weight in d.priors.items())
        made = (
            f"Mixtures made on the fly: {mixtures} (priors), {d.segment:g} s at {d.sample_rate} Hz, SNR "
            f"uniform in [{d.snr_range[0]:g}, {d.snr_range[1]:g}] dB, {d.train_mixtures_per_epoch} "
            f"per epoch, seed {d.seed}."
        )
    lines = [made, "", f"Corpus: {markdown_cell(data['dataset'])}."]
    if report is None:
        lines += [
            "",
            "No preparation report found (`prepare_report.json` of the data folder); pass `--data DIR` to include it.",
        ]
        return "\n".join(lines)
    reasons = ", ".join(
        f"{markdown_cell(reason)}: {markdown_cell(count)}" for reason, count in report["skipped_reasons"].items()
    )
    value = {
        key: markdown_cell(report[key])
        for key in ("prepared_sources", "prepared_mixtures", "sample_rate", "skipped_count", "downmixed_count")
    }
    lines += [
        "",
        f"Preparation report {code_span(report_path)}: {value['prepared_sources']} source recordings and "
        f"{value['prepared_mixtures']} published mixtures at {value['sample_rate']} Hz; skipped "
        f"{value['skipped_count']}{f' ({reasons})' if reasons else ''}; downmixed "
        f"{value['downmixed_count']}.",
        "",
        "| split | coarse class | files | hours | groups |",
        "|---|---|---|---|---|",
    ]
    for split, content in report["splits"].items():
        for coarse, counts in content["sources"].items():
            lines.append(
                f"| {markdown_cell(split)} | {markdown_cell(coarse)} | {markdown_cell(counts['files'])} | "
                f"{counts['hours']:.3f} | {markdown_cell(counts['groups'])} |"
            )
    return "\n".join(lines)


def _linked(text: Any, link: Any) -> str:
    """``text`` escaped, as a link to ``link`` where that is a plain http(s) address (no other scheme, e.g.
    ``javascript:``, becomes a link)."""
    if isinstance(link, str) and re.fullmatch(r"https?://[^\s()<>\[\]`|\\]+", link):
        return f"[{markdown_cell(text)}]({link})"
    return markdown_cell(text)


def _licence_section(data: Dict[str, Any]) -> str:
    lines = [
        "- Code: ugr, MIT licence (`LICENSE`: copyright the ugr authors). The model classes are asteroid's (MIT).",
        "- Weights: learnt from the training data, they inherit its terms; check them before you share or use "
        "the model, commercially above all.",
    ]
    if not data["known"]:
        lines.append(
            "- The training data is not recorded here (no preparation report; pass `--data DIR`): check "
            "the terms of the corpora it was prepared from."
        )
    lines += ["", "| data | licence | commercial use |", "|---|---|---|"]
    for lic in data["licenses"]:
        title, licence = _linked(lic["title"], lic["title_link"]), _linked(lic["license"], lic["license_link"])
        lines.append(f"| {title} | {licence} | {'no' if lic['non_commercial'] else 'per the licence'} |")
    lines += [
        "",
        "The table lists the data these weights learnt from, as the corpora's plug-ins record their "
        "licences (ESC-50 is CC BY-NC 3.0, no commercial use; WSJ0 and wsj0-2mix are the LDC's).",
    ]
    return "\n".join(lines)


def model_card(
    file: Path,
    package: Dict[str, Any],
    n_params: int,
    cfg: ExperimentConfig,
    exp_dir: Path,
    stats: Optional[Dict],
    report_path: Optional[Path],
    report: Optional[Dict],
    data: Dict[str, Any],
    digest: str,
) -> str:
    """The model card (Markdown with a model hub's YAML header)."""
    name = package["model_name"]
    n_src, rate = package["model_args"]["n_src"], package["model_args"]["sample_rate"]
    header = {
        "library_name": "asteroid",
        "pipeline_tag": "audio-to-audio",
        "license": "other",
        "tags": ["asteroid", "audio", "audio-source-separation", name, "ugr"],
        "datasets": [lic["title"] for lic in data["licenses"]],
    }
    weights = markdown_cell(package["infos"]["weights"])
    record = cfg.to_dict()
    config = yaml.safe_dump(
        {k: record[k] for k in ("model", "data", "weighting", "training", "scoring")}, sort_keys=False
    )
    return f"""---
{yaml.safe_dump(header, sort_keys=False).strip()}
---

# {markdown_cell(exp_dir.name)}: asteroid {markdown_cell(name)} trained with unified gradient reweighting

asteroid {code_span(name)}, {n_params:,} parameters, {n_src} sources, {rate:g} Hz, trained with ugr's
experiment {markdown_cell(exp_dir.name)}. Weights: {weights}. File: {code_span(file.name)} (sha256 `{digest}`),
asteroid's pretrained-model format.

## How to load

```python
import soundfile as sf
import torch
from asteroid.models import BaseModel

model = BaseModel.from_pretrained({json.dumps(file.name)}).eval()
mixture, rate = sf.read("mixture.wav", dtype="float32")   # mono, at {rate:g} Hz
with torch.no_grad():
    estimates = model(torch.from_numpy(mixture)[None])[0]   # ({n_src}, T)
```

asteroid's `model.separate("mixture.wav", resample=True)` writes `mixture_est1.wav`... For any sample rate,
recordings of any length (in chunks) and folders, ugr's `ugr-separate --exp-dir EXP --out DIR FILES...`
gives the same estimates.

## Training: the weighting

{markdown_cell(weighting.in_words(cfg.weighting))}

## Test scores

{_scores_section(exp_dir, stats, package["infos"]["weights"], cfg)}

## Training data

{_data_section(report_path, report, data, cfg)}

## Configuration

The experiment's resolved `config.yaml`:

{fenced(config.strip(), "yaml")}

## Licences

{_licence_section(data)}

## Citation

```bibtex
{CITATION}
```
"""


def export(
    exp_dir: Path,
    out: Path,
    *,
    checkpoint: Optional[Path] = None,
    average_last: Optional[int] = None,
    data_dir: Optional[Path] = None,
) -> tuple[Path, Path]:
    """Writes ``out`` (asteroid format) and its model card ``out.with_suffix('.md')``; returns both paths."""
    exp_dir, out = Path(exp_dir), Path(out)
    if out.suffix == ".md" or out.is_dir():
        raise ExportError(
            f"--out {out}: give a model file name such as {out.with_suffix('.pth').name} (the card goes "
            f"beside it as .md)"
        )
    if average_last is not None and average_last < 1:
        raise ExportError(f"--average-last {average_last}: must be >= 1")
    _check_trained(exp_dir, checkpoint)
    cfg, model, weights = load_experiment(exp_dir, checkpoint=checkpoint, average_last=average_last)
    stats_path = exp_dir / "scores" / STATS_FILE
    stats = json.loads(stats_path.read_text()) if stats_path.is_file() else None
    report_path = find_report(exp_dir, data_dir)
    report = json.loads(report_path.read_text()) if report_path else None
    data = training_data(report)
    package = build_package(model, cfg, weights, stats, data, exp_dir.name)
    buffer = io.BytesIO()
    torch.save(package, buffer)
    payload = buffer.getvalue()
    verify(payload, model, cfg.data.sample_rate)
    card = model_card(
        out,
        package,
        sum(p.numel() for p in model.parameters()),
        cfg,
        exp_dir,
        stats,
        report_path,
        report,
        data,
        hashlib.sha256(payload).hexdigest(),
    )
    atomic_write(out, lambda handle: handle.write(payload))
    card_path = atomic_write_text(out.with_suffix(".md"), card)
    return out, card_path


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="ugr-export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--exp-dir", required=True, type=Path, help="trained experiment folder (stage 2 output)")
    parser.add_argument("--out", required=True, type=Path, help="model file to write, e.g. publish/model.pth")
    add_weights_options(parser, "export this one checkpoint (e.g. checkpoints/best.ckpt)")
    parser.add_argument(
        "--data",
        type=Path,
        help="the prepared data folder, for its preparation report "
        "(default: <recipe>/data beside <recipe>/exp, when there)",
    )
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    try:
        model_path, card_path = export(
            args.exp_dir, args.out, checkpoint=args.checkpoint, average_last=args.average_last, data_dir=args.data
        )
    except (ExportError, FileNotFoundError, ValueError) as err:
        sys.exit(f"ugr-export: {err}")
    print(f"ugr-export: wrote {model_path} (asteroid BaseModel.from_pretrained) and its model card {card_path}")


if __name__ == "__main__":
    main()
