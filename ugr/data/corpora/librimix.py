"""LibriMix (Libri2Mix) in the layout its generation scripts write (github.com/JorisCos/LibriMix).

    DIR/Libri2Mix/wav8k|wav16k/min|max/{train-100,train-360,dev,test}/{s1,s2,noise,mix_clean,mix_both,mix_single}/<mixture_ID>.wav
    DIR/Libri2Mix/wav8k|wav16k/min|max/metadata/mixture_<subset>_mix_clean.csv, mixture_<subset>_mix_both.csv

``DIR`` may be LibriMix's storage folder (holding ``Libri2Mix`` and, from the
generation, ``LibriSpeech``), ``Libri2Mix``, a ``wav8k``/``wav16k`` folder or a
``min``/``max`` folder; the rate and mode are chosen as for wsj0-2mix
(``ugr.data.corpora.wsj0_2mix.find_tree``).

* Task (option ``task``, asteroid's names): ``sep_clean`` reads the
  ``mix_clean`` metadata, ``sep_noisy`` the ``mix_both`` metadata. Either way
  the references are the two speakers ``s1``, ``s2``: in ``sep_noisy`` the
  model separates them from the noisy mixture and the noise is no third
  output (asteroid's ``LibriMix(task="sep_noisy")`` and LibriMix's published
  numbers). The ``noise`` file of each row is checked (present, rate, length)
  but not used.
* Splits: ``dev`` is valid, ``test`` is test, the training subsets (option
  ``train``, default ``train-360`` as asteroid's recipes; ``train-100`` or
  ``train-100,train-360``) are train.
* Published mixtures: every metadata row, in the CSV's order (the fixed
  validation and test lists take the first N), with its ``source_1_path``,
  ``source_2_path`` as sources. Sources for remixing (``data.train_from:
  sources``): every utterance of the rows' ``s1``/``s2`` copies once per
  split, by the wsj0-2mix rule (``one_copy_each``: the longest copy in
  ``min``, the shortest in ``max``).
* Columns are read by name: ``mixture_ID``, ``mixture_path``,
  ``source_1_path``, ``source_2_path``, ``length`` (and ``noise_path`` for
  ``mix_both``). The generator writes absolute paths of the machine that ran
  it, so a path is taken from its last three parts (``<subset>/<folder>/<file>``)
  under the tree found, never as written (a copy must not read the original).
* Labels: id = the LibriSpeech utterance id (``mixture_ID`` is
  ``<utt1>_<utt2>``), group = its speaker (``<speaker>-<chapter>-<utt>``),
  coarse class ``speech``; fine class ``female``/``male`` from LibriSpeech's
  ``SPEAKERS.TXT`` (option ``speakers=FILE``, else ``LibriSpeech/SPEAKERS.TXT``
  beside ``Libri2Mix``, where generate_librimix.sh leaves it). Without it,
  or for a speaker it does not list, the fine class is ``speech`` (noted).
* Bad rows stop the preparation with one line naming the CSV, its line and
  the fix, with the count of other bad rows: a file that is missing or
  unreadable, a ``length`` that disagrees with a file, a file at a rate other
  than its ``wavNk`` folder's. Files in the folders read that no row names,
  and duplicate mixture ids, are counted skips in the preparation report.

Where asteroid's ``asteroid.data.LibriMix`` does not fit, so that this module
reads the CSVs itself: (1) ``asteroid.data`` does not import in the project's
environment (its package ``__init__`` needs librosa and pandas, which the
``--no-deps`` install of asteroid leaves out); (2) it picks the first CSV
whose name contains ``clean``/``both`` in a folder, which in the published
``metadata/`` folder (every subset's CSVs together) is any subset, so its
recipe copies each subset's CSVs to a folder of their own first; (3) it drops
mixtures shorter than its segment with a print, where ugr drops nothing
silently (training crops of short mixtures are zero-padded); (4) it opens
the CSV's absolute paths as written, which fail once the tree has moved and
read the original's files from a copy. Its
task names, its reading of the columns by name and its licence records are
the ones used here.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from pathlib import Path, PurePath

import soundfile as sf

from ..manifest import SPEECH
from . import CorpusLayoutError, Index, MixtureFile, SourceFile, register, require_folder, take_options
from .wsj0_2mix import MODES, TreeLayout, find_tree, folder_rate, one_copy_each

# asteroid.data.librimix_dataset.librispeech_license and asteroid.data.wham_dataset.wham_noise_license (not
# importable here, see above), in one record: sep_noisy's mixtures hold WHAM! noise (CC BY-NC 4.0), so a model
# of this corpus is marked non-commercial; a sep_clean model learnt from LibriSpeech (CC BY 4.0) alone.
LICENCE = {
    "title": "LibriMix (LibriSpeech ASR corpus + WHAM! noise)",
    "title_link": "https://github.com/JorisCos/LibriMix",
    "author": "Vassil Panayotov (LibriSpeech); Whisper.ai (WHAM! noise)",
    "author_link": "http://www.openslr.org/12",
    "license": "CC BY 4.0 (LibriSpeech, sep_clean); CC BY-NC 4.0 (WHAM! noise, in sep_noisy's mix_both)",
    "license_link": "https://creativecommons.org/licenses/by-nc/4.0/",
    "non_commercial": True,
}

TASKS = {"sep_clean": "mix_clean", "sep_noisy": "mix_both"}  # asteroid's task -> the metadata's mixture type
OTHER_TASKS = ("enh_single", "enh_both")  # asteroid's one-output tasks: not two-speaker separation
TRAIN_SUBSETS = ("train-100", "train-360")
SPLIT_OF = {"dev": "valid", "test": "test"}
PARTS = ("s1", "s2")
NOISE = "noise"
LAYOUT = (
    "DIR/Libri2Mix/wav8k|wav16k/min|max/{train-100,train-360,dev,test}/{s1,s2,noise,mix_clean,mix_both}/"
    "<mixture_ID>.wav with .../min|max/metadata/mixture_<subset>_mix_clean.csv (mix_both for sep_noisy)"
)
LIBRIMIX = TreeLayout("librimix", "Libri2Mix", ("metadata",), LAYOUT, ".../storage_dir/Libri2Mix")
COLUMNS = ("mixture_ID", "mixture_path", "source_1_path", "source_2_path", "length")
FEMALE_MALE = {"F": "female", "M": "male"}
ROOT_NAME = re.compile(r"Libri(\d)Mix")


@register("librimix", LICENCE)
def index_librimix(root: Path, *, fs: int, **options: str) -> Index:
    settings = take_options(
        options, {"task": "sep_clean", "mode": "min", "train": "train-360", "speakers": ""}, "librimix"
    )
    task, mode = settings["task"], settings["mode"]
    if task not in TASKS:
        other = f" ({task} is asteroid's one-output task, not two-speaker separation)" if task in OTHER_TASKS else ""
        raise CorpusLayoutError(
            f"corpus librimix: task={task!r}{other}; use task=sep_clean (mix_clean) or task=sep_noisy (mix_both)"
        )
    if mode not in MODES:
        raise CorpusLayoutError(f"corpus librimix: mode={mode!r}; use mode=min or mode=max")
    train = [name.strip() for name in settings["train"].split(",") if name.strip()]
    if not train or set(train) - set(TRAIN_SUBSETS):
        raise CorpusLayoutError(
            f"corpus librimix: train={settings['train']!r}; use train-100, train-360 or train-100,train-360"
        )
    require_folder(root, "librimix")
    index = Index()
    tree, mode = find_tree(_libri2mix(root), fs, mode, "mode" in options, index.notes, LIBRIMIX)
    rate = folder_rate(tree)
    if rate is None:
        index.notes.append(f"{tree}: not inside a wav8k/wav16k folder, so the files' rate is not checked")
    kind = TASKS[task]
    labels = _speaker_labels(tree, settings["speakers"], index.notes)
    subsets = {name: "train" for name in train} | SPLIT_OF
    problems: list[str] = []
    copies: dict[str, dict[str, list[tuple[int, Path]]]] = defaultdict(lambda: defaultdict(list))
    for subset, split in subsets.items():
        table = tree / "metadata" / f"mixture_{subset}_{kind}.csv"
        if not table.is_file():
            present = sorted(p.name for p in (tree / "metadata").glob("mixture_*.csv")) or "none"
            raise CorpusLayoutError(
                f"{table}: missing (task={task} reads the {kind} metadata of {subset}); the metadata folder holds "
                f"{present}: generate {subset} with LibriMix's create_librimix_from_metadata.py --types {kind}, "
                f"or choose the training subsets with train=..."
            )
        rows = _rows(table, tree / subset, kind, rate, problems, index.skips)
        for mixture_id, paths, frames in rows:
            sources = []
            for k, utterance in enumerate(mixture_id.split("_")):
                sources.append(_speech(utterance, paths[k], split, labels))
                copies[split][utterance].append((frames, paths[k]))
            index.mixtures.append(MixtureFile(mixture_id, split, str(paths[-1]), tuple(sources)))
        _unlisted(tree / subset, kind, {row[0] for row in rows}, index.skips)
    if problems:
        more = ""
        if len(problems) > 1:
            more = f" (and {len(problems) - 1} more bad rows, the next: {problems[1].split(': mixture')[0]})"
        raise CorpusLayoutError(problems[0] + more)
    for split, by_utterance in copies.items():
        index.sources += one_copy_each(
            by_utterance, mode, index.skips, lambda uid, path, split=split: _speech(uid, path, split, labels)
        )
    used = f"{kind} with s1, s2 as the references" + (", noise checked but no reference" if kind != "mix_clean" else "")
    index.notes.append(f"{tree}: task={task}: {used}; subsets {', '.join(f'{s}->{t}' for s, t in subsets.items())}")
    return index


def _libri2mix(root: Path) -> Path:
    """``root``, or the Libri2Mix folder inside LibriMix's storage folder; Libri3Mix alone is refused."""
    if (root / "Libri2Mix").is_dir():
        return root / "Libri2Mix"
    others = sorted(p.name for p in root.iterdir() if ROOT_NAME.fullmatch(p.name) and p.is_dir())
    if others or (ROOT_NAME.fullmatch(root.name) and root.name != "Libri2Mix"):
        raise CorpusLayoutError(
            f"{root}: holds {others or root.name}, no Libri2Mix; ugr's recipes separate two speakers, so point at "
            "a folder holding Libri2Mix (generate it with LibriMix's generate_librimix.sh, n_src 2)"
        )
    return root


def _speech(utterance: str, path: Path, split: str, labels: dict[str, str]) -> SourceFile:
    speaker = utterance.split("-")[0]
    return SourceFile(utterance, str(path), split, speaker, labels.get(speaker, SPEECH), SPEECH)


def _resolve(written: str, subset_dir: Path) -> Path:
    """A metadata path in the tree found: its last three parts ``<subset>/<folder>/<file>`` under the mode
    folder (a shorter, relative path under the subset's folder). Never the path as written: the generator
    wrote the absolute paths of its own machine, and a copy of the tree must not read the original's files."""
    parts = PurePath(written.replace("\\", "/")).parts
    return subset_dir.parent.joinpath(*parts[-3:]) if len(parts) >= 3 else subset_dir.joinpath(*parts)


def _rows(
    table: Path, subset_dir: Path, kind: str, rate: int | None, problems: list[str], skips: list[dict]
) -> list[tuple[str, list[Path], int]]:
    """(mixture_ID, [source 1, source 2, mixture], frames) per usable row; bad rows go to ``problems``."""
    columns = COLUMNS + (("noise_path",) if kind == "mix_both" else ())
    rows: list[tuple[str, list[Path], int]] = []
    seen: dict[str, int] = {}
    with open(table, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise CorpusLayoutError(
                f"{table}: no column(s) {', '.join(missing)} (its header: {', '.join(reader.fieldnames or [])}); "
                f"LibriMix's {kind} metadata has {', '.join(columns)}: regenerate it"
            )
        for record in reader:
            where = f"{table}:{reader.line_num}"
            mixture_id = (record["mixture_ID"] or "").strip()
            if mixture_id in seen:
                skips.append(
                    {"path": f"{where}", "reason": f"duplicate mixture id {mixture_id} (kept line {seen[mixture_id]})"}
                )
                continue
            problem = _check_row(where, record, columns, subset_dir, rate)
            if isinstance(problem, str):
                problems.append(problem)
                continue
            seen[mixture_id] = reader.line_num
            rows.append((mixture_id, *problem))
    return rows


def _check_row(
    where: str, record: dict, columns: tuple[str, ...], subset_dir: Path, rate: int | None
) -> str | tuple[list[Path], int]:
    """The row's files (source 1, source 2, mixture) and length, or the one-line problem with its fix."""
    mixture_id = (record["mixture_ID"] or "").strip()
    if len(mixture_id.split("_")) != 2 or not all(mixture_id.split("_")):
        return f"{where}: mixture_ID {mixture_id!r} is not <utt1>_<utt2> (two LibriSpeech ids); correct the row"
    try:
        length = int(record["length"])
    except (TypeError, ValueError):
        return f"{where}: mixture {mixture_id}: length {record['length']!r} is no whole number of samples; correct it"
    found: dict[str, Path] = {}
    for column in (c for c in columns if c.endswith("_path")):
        written = (record[column] or "").strip()
        path = _resolve(written, subset_dir) if written else None
        if path is None or not path.is_file():
            return (
                f"{where}: mixture {mixture_id}: {column} {path or '(empty)'}: no such file; regenerate the "
                f"subset with LibriMix's scripts, or delete the row"
            )
        try:
            info = sf.info(str(path))
        except (RuntimeError, sf.LibsndfileError) as err:
            return f"{where}: mixture {mixture_id}: {column} {path}: unreadable audio ({err}); regenerate it"
        if rate is not None and info.samplerate != rate:
            return (
                f"{where}: mixture {mixture_id}: {column} {path} is at {info.samplerate} Hz in a wav{rate // 1000}k "
                f"folder ({rate} Hz); regenerate it at {rate} Hz (LibriMix's --freqs), or point at the tree of "
                f"its own rate"
            )
        if info.frames != length:
            return (
                f"{where}: mixture {mixture_id}: length says {length} samples, {column} {path} has {info.frames}; "
                f"correct the length column, or regenerate the file"
            )
        found[column] = path
    return [found["source_1_path"], found["source_2_path"], found["mixture_path"]], length


def _unlisted(subset_dir: Path, kind: str, listed: set[str], skips: list[dict]) -> None:
    """Files in the folders this task reads that no metadata row names: counted, never silently passed over."""
    for folder in (kind, *PARTS):
        if (subset_dir / folder).is_dir():
            for path in sorted((subset_dir / folder).iterdir()):
                if path.stem not in listed:
                    skips.append({"path": str(path), "reason": f"not in the {kind} metadata of {subset_dir.name}"})


def _speaker_labels(tree: Path, given: str, notes: list[str]) -> dict[str, str]:
    """speaker -> female/male from LibriSpeech's SPEAKERS.TXT (``speakers=FILE`` or beside Libri2Mix)."""
    if given:
        path = Path(given)
        if not path.is_file():
            raise CorpusLayoutError(f"speakers={given}: no such file; give LibriSpeech's SPEAKERS.TXT or drop it")
    else:
        found = [p / "LibriSpeech" / "SPEAKERS.TXT" for p in list(tree.parents)[:4] if (p / "LibriSpeech").is_dir()]
        path = next((p for p in found if p.is_file()), None)
        if path is None:
            notes.append(
                f"{tree}: no LibriSpeech/SPEAKERS.TXT beside Libri2Mix: fine class speech for every source, "
                "no gender; give speakers=.../LibriSpeech/SPEAKERS.TXT for female/male"
            )
            return {}
    labels = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        fields = [field.strip() for field in line.split("|", 4)]
        if len(fields) < 2 or not fields[0] or fields[1] not in FEMALE_MALE:
            raise CorpusLayoutError(
                f"{path}:{number}: {line.strip()!r} is not 'ID | SEX | SUBSET | MINUTES | NAME' with SEX F or M; "
                "correct the line, or give another speakers=FILE"
            )
        labels[fields[0]] = FEMALE_MALE[fields[1]]
    notes.append(f"{path}: sex of {len(labels)} speakers: fine class female/male (speakers it lacks: speech)")
    return labels
