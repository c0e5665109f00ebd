"""wsj0-2mix (and the clean part of WHAM!) in its published layout.

    DIR/wav8k|wav16k/min|max/tr|cv|tt/{s1,s2,mix_clean}/<utt1>_<snr1>_<utt2>_<snr2>.wav

``tr`` is train, ``cv`` valid, ``tt`` test. ``DIR`` may be given at any level:
the folder holding ``wav8k``/``wav16k``, one of those, a ``min``/``max``
folder, or (old trees) any folder directly holding ``tr``/``cv``/``tt``.

* Rate: ``wav{fs/1000}k`` when it exists (no resampling); otherwise the
  closest rate at or above ``fs``, else the highest (downsampling loses less
  than upsampling); the preparation resamples to ``fs``. A note says which
  folder was used and why.
* Mode: option ``mode=min`` (default) or ``max``. A ``min``/``max`` folder
  given as ``DIR`` is its own mode (a conflicting ``mode=`` is an error); an
  old tree's mode is not in its path, so ``mode`` is assumed and noted.
* Published mixtures: one per ``mix_clean`` file, with the ``s1``/``s2`` file
  of the same name as its sources (``s1`` holds utt1 scaled to snr1, ``s2``
  utt2), so the published test set is scored as published.
* Sources for on-the-fly remixing: every utterance in ``s1``/``s2`` once per
  subset. A reused utterance has one copy per mixture, cut or padded to that
  mixture's length: in ``min`` mode every copy is truncated to the shorter
  utterance of its mixture, so the longest copy is kept (the most speech); in
  ``max`` mode every copy is the whole utterance zero-padded to the longer
  one, so the shortest copy is kept (the least trailing silence). The other
  copies are skips naming the kept one.
* Labels: id = utterance id (lowercased), group = speaker (its first 3
  characters, as for WSJ0), fine and coarse class ``speech``.
* WHAM!'s ``mix_both``, ``mix_single``, ``noise`` (and any other folder of a
  subset) are left unused and noted. tr and cv are both drawn from WSJ0's
  si_tr_s (shared speakers by design) and tt from si_dt_05/si_et_05, so an
  utterance id in several subsets is kept in each and counted in a note.

The rate and mode choice (``find_tree``) and the one-copy-per-utterance rule
(``one_copy_each``) serve every corpus published in this ``wavNk/min|max``
pattern (LibriMix: ``ugr.data.corpora.librimix``), each through its
``TreeLayout``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import soundfile as sf

from ..manifest import SPEECH
from . import CorpusLayoutError, Index, MixtureFile, SourceFile, register, require_folder, take_options
from .wsj0 import LICENCE as WSJ0_LICENCE
from .wsj0 import speaker_of

# wsj0-2mix is made from WSJ0's utterances (the scripts are public; the audio is the LDC's).
LICENCE = {
    **WSJ0_LICENCE,
    "title": "wsj0-2mix (mixtures of CSR-I (WSJ0) Complete)",
    "title_link": "https://www.merl.com/research/highlights/deep-clustering",
}

SUBSETS = {"tr": "train", "cv": "valid", "tt": "test"}
MODES = ("min", "max")
PARTS = ("s1", "s2")  # s1 holds utt1, s2 holds utt2
MIX = "mix_clean"
RATE_FOLDER = re.compile(r"wav(\d+)k")
AUDIO_SUFFIXES = (".wav", ".flac")
LAYOUT = "DIR/wav8k|wav16k/min|max/tr|cv|tt/{s1,s2,mix_clean}/<utt1>_<snr1>_<utt2>_<snr2>.wav"


@dataclass(frozen=True)
class TreeLayout:
    """A corpus published as ``wavNk/min|max/...``: what marks its mode folder, and how errors describe it."""

    corpus: str  # the indexer's name, e.g. wsj0_2mix
    title: str  # e.g. wsj0-2mix
    marks: tuple[str, ...]  # folders of a mode folder, e.g. tr, cv, tt
    layout: str  # the published layout, for the errors
    example: str  # a path a user may have, for the errors


WSJ0_2MIX = TreeLayout("wsj0_2mix", "wsj0-2mix", tuple(SUBSETS), LAYOUT, ".../wsj0-mix/2speakers")


@register("wsj0_2mix", LICENCE)
def index_wsj0_2mix(root: Path, *, fs: int, **options: str) -> Index:
    settings = take_options(options, {"mode": "min"}, "wsj0_2mix")
    if settings["mode"] not in MODES:
        raise CorpusLayoutError(f"corpus wsj0_2mix: mode={settings['mode']!r}; use mode=min or mode=max")
    require_folder(root, "wsj0_2mix")
    index = Index()
    tree, mode = find_tree(root, fs, settings["mode"], "mode" in options, index.notes, WSJ0_2MIX)
    for name in SUBSETS:
        folder = tree / name
        missing = [part for part in PARTS + (MIX,) if not (folder / part).is_dir()]
        if missing:
            what = "missing" if not folder.is_dir() else f"no {', '.join(missing)} folder"
            raise CorpusLayoutError(
                f"{folder}: {what}; wsj0-2mix needs all three subsets tr, cv, tt, each with s1, s2 and {MIX} ({LAYOUT})"
            )
    per_subset: dict[str, set[str]] = {}
    unused: dict[str, list[str]] = defaultdict(list)
    for name, split in SUBSETS.items():
        folder = tree / name
        for entry in sorted(folder.iterdir()):
            if entry.is_dir() and entry.name not in PARTS + (MIX,):
                unused[entry.name].append(name)
            elif not entry.is_dir():
                index.skips.append({"path": str(entry), "reason": f"not in s1, s2 or {MIX}"})
        index.mixtures += _mixtures(folder, split, index.skips)
        sources = _sources(folder, split, mode, index.skips)
        if not sources:
            raise CorpusLayoutError(
                f"{folder}: no usable files in s1, s2 (passed over: {index.skips[-5:]}); expected {LAYOUT}"
            )
        index.sources += sources
        per_subset[name] = {s.id for s in sources}
    if unused:
        listed = "; ".join(f"{folder} in {', '.join(subsets)}" for folder, subsets in sorted(unused.items()))
        index.notes.append(f"{tree}: folders present and not used ({listed}): only s1, s2 and {MIX} are read")
    shared = {f"{a}&{b}": len(per_subset[a] & per_subset[b]) for a, b in (("tr", "cv"), ("tr", "tt"), ("cv", "tt"))}
    if any(shared.values()):
        counts = ", ".join(f"{pair}: {n}" for pair, n in shared.items() if n)
        index.notes.append(
            f"{tree}: utterance ids in more than one subset ({counts}), kept once in each. tr and cv are both "
            "drawn from WSJ0 si_tr_s, so sharing between them is expected; tt (si_dt_05, si_et_05) has other "
            "speakers, so an id shared with tt means a damaged or mixed-up tree"
        )
    return index


def find_tree(root: Path, fs: int, mode: str, mode_given: bool, notes: list[str], tree: TreeLayout) -> tuple[Path, str]:
    """The folder holding ``tree.marks`` (the mode folder) and the mode its copies were cut in, from ``root``
    at any level; notes the rate folder used (and an assumed mode)."""
    if any((root / name).is_dir() for name in tree.marks):
        if root.name in MODES:
            if mode_given and mode != root.name:
                raise CorpusLayoutError(
                    f"{root}: a {root.name} folder, but mode={mode}; drop mode= or point at "
                    f"its sibling {root.parent / mode}"
                )
            mode = root.name
        else:
            source = "as given" if mode_given else "the default; give mode=max for a max tree"
            notes.append(
                f"{root}: holds {'/'.join(tree.marks)} directly, so its mode is not in the path; "
                f"copies chosen for mode={mode} ({source})"
            )
        _note_rate(root if RATE_FOLDER.fullmatch(root.name) else root.parent, fs, "the path given", notes)
        return root, mode
    if any((root / name).is_dir() for name in MODES):
        rate_dir, why = root, "the path given"
    else:
        rates = {
            int(m.group(1)) * 1000: p for p in root.iterdir() if (m := RATE_FOLDER.fullmatch(p.name)) and p.is_dir()
        }
        if not rates:
            raise CorpusLayoutError(
                f"{root}: no wav8k/wav16k, min/max or {'/'.join(tree.marks)} folder; point at a {tree.title} "
                f"tree ({tree.layout}), e.g. {tree.example}"
            )
        chosen = fs if fs in rates else min((r for r in rates if r > fs), default=max(rates))
        rate_dir = rates[chosen]
        why = (
            f"it matches fs={fs}"
            if chosen == fs
            else f"there is no wav{fs // 1000}k for fs={fs}; the closest rate at or above fs, else the highest"
        )
    mode_dir = rate_dir / mode
    if not mode_dir.is_dir():
        present = sorted(p.name for p in rate_dir.iterdir() if p.is_dir()) or "nothing"
        raise CorpusLayoutError(
            f"{mode_dir}: missing (mode={mode}); {rate_dir} holds {present}: pass mode=min or "
            f"mode=max to match, or point at another folder"
        )
    _note_rate(rate_dir, fs, why, notes)
    return mode_dir, mode


def folder_rate(mode_dir: Path) -> int | None:
    """The sample rate a ``wavNk/<mode>`` folder's name says (Hz), or None outside a ``wavNk`` folder."""
    match = RATE_FOLDER.fullmatch(mode_dir.parent.name)
    return int(match.group(1)) * 1000 if match else None


def _note_rate(rate_dir: Path, fs: int, why: str, notes: list[str]) -> None:
    match = RATE_FOLDER.fullmatch(rate_dir.name)
    if match is None:  # an old tree outside a wavNk folder: its rate is only in the files' headers
        return
    rate = int(match.group(1)) * 1000
    resampled = "no resampling" if rate == fs else f"the preparation resamples {rate} Hz to {fs} Hz"
    notes.append(f"{rate_dir}: using {rate_dir.name} ({why}); {resampled}")


def _utterances(path: Path) -> tuple[str, str] | str:
    """The two utterance ids a wsj0-2mix file name holds, or why the file is not one."""
    if not path.is_file() or path.suffix.lower() not in AUDIO_SUFFIXES:
        return f"not an audio file ({path.suffix or 'no suffix'}); expected <utt1>_<snr1>_<utt2>_<snr2>.wav"
    fields = path.stem.split("_")
    if len(fields) != 4 or not fields[0] or not fields[2] or not all(map(_is_number, fields[1::2])):
        return "name is not <utt1>_<snr1>_<utt2>_<snr2> (SNRs as numbers)"
    return fields[0].lower(), fields[2].lower()


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _speech(uid: str, path: Path, split: str) -> SourceFile:
    return SourceFile(id=uid, path=str(path), split=split, group=speaker_of(uid), fine=SPEECH, coarse=SPEECH)


def _mixtures(folder: Path, split: str, skips: list[dict]) -> list[MixtureFile]:
    mixtures: dict[str, MixtureFile] = {}
    for path in sorted((folder / MIX).iterdir()):
        utterances = _utterances(path)
        if isinstance(utterances, str):
            skips.append({"path": str(path), "reason": utterances})
            continue
        parts = [folder / part / path.name for part in PARTS]
        lacking = [str(p) for p in parts if not p.is_file()]
        mid = path.stem.lower()
        if lacking:
            skips.append({"path": str(path), "reason": f"mixture without its source file(s) ({', '.join(lacking)})"})
        elif mid in mixtures:
            skips.append({"path": str(path), "reason": f"duplicate mixture id {mid} (kept {mixtures[mid].mixture})"})
        else:
            sources = tuple(_speech(uid, p, split) for uid, p in zip(utterances, parts))
            mixtures[mid] = MixtureFile(id=mid, split=split, mixture=str(path), sources=sources)
    return list(mixtures.values())


def _sources(folder: Path, split: str, mode: str, skips: list[dict]) -> list[SourceFile]:
    """Each utterance of the subset once: its longest copy in min mode, its shortest in max mode."""
    copies: dict[str, list[tuple[int, Path]]] = defaultdict(list)
    for token, part in enumerate(PARTS):
        for path in sorted((folder / part).iterdir()):
            utterances = _utterances(path)
            if isinstance(utterances, str):
                skips.append({"path": str(path), "reason": utterances})
                continue
            try:
                frames = sf.info(str(path)).frames
            except RuntimeError as err:
                skips.append({"path": str(path), "reason": f"unreadable audio header ({err})"})
                continue
            copies[utterances[token]].append((frames, path))
    return one_copy_each(copies, mode, skips, lambda uid, path: _speech(uid, path, split))


def one_copy_each(
    copies: dict[str, list[tuple[int, Path]]],
    mode: str,
    skips: list[dict],
    source: Callable[[str, Path], SourceFile],
) -> list[SourceFile]:
    """One source per utterance id from its published copies (frames, path): in ``min`` mode every copy is cut
    to its mixture's shorter utterance, so the longest is kept (the most speech); in ``max`` mode every copy is
    padded to the longer one, so the shortest (the least trailing silence). The others are counted skips."""
    pick, kept = (max, "longest") if mode == "min" else (min, "shortest")
    sources = []
    for uid in sorted(copies):
        best = pick(copies[uid], key=lambda copy: copy[0])[1]
        for _, path in copies[uid]:
            if path != best:
                skips.append(
                    {"path": str(path), "reason": f"duplicate utterance id {uid} (kept the {kept} copy, {best})"}
                )
        sources.append(source(uid, best))
    return sources
