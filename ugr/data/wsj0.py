"""Index WSJ0 speech: the standard sets, or a wsj0-2mix folder as the authors used.

Standard layout: any tree containing ``si_tr_s`` (train), ``si_dt_05`` (valid)
and ``si_et_05`` (test) folders of ``.wav``/``.flac`` (or ``.wv1`` SPHERE,
converted with sph2pipe). wsj0-2mix layout: ``tr``/``cv``/``tt`` each with
``s1`` and ``s2``; each file there is one (scaled, cut) utterance named
``<utt1>_<snr1>_<utt2>_<snr2>.wav``: s1 holds utt1, s2 holds utt2. An utterance
reused by several wsj0-2mix mixtures is kept once (the others are counted as
duplicates in the report). Speaker = first 3 characters of the utterance id.
"""
from __future__ import annotations

import os
from pathlib import Path

from .audio import SPH2PIPE_HELP, SPHERE_SUFFIXES, sph2pipe_available
from .manifest import SourceFile

STANDARD_SETS = {"si_tr_s": "train", "si_dt_05": "valid", "si_et_05": "test"}
TWOMIX_SETS = {"tr": "train", "cv": "valid", "tt": "test"}
AUDIO_SUFFIXES = (".wav", ".flac") + SPHERE_SUFFIXES
# WSJ0 ships two microphones per utterance; the standard sets use the first (.wv1).
SECOND_MIC_SUFFIX = ".wv2"


class Wsj0LayoutError(ValueError):
    """The folder is neither WSJ0's standard layout nor wsj0-2mix; the message says what to fix."""


def index_wsj0(root: str | os.PathLike) -> tuple[list[SourceFile], list[dict]]:
    """Return the indexed utterances and the counted skips (``{"path", "reason"}``)."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise Wsj0LayoutError(f"{root}: not a folder; --wsj0 must point at a WSJ0 or wsj0-2mix tree")
    if all((root / name / part).is_dir() for name in TWOMIX_SETS for part in ("s1", "s2")):
        sources, skips = _index_twomix(root)
    else:
        sources, skips = _index_standard(root)
    if not sources:
        raise Wsj0LayoutError(f"{root}: no usable utterances found (skips: {skips[:5]})")
    if any(Path(s.path).suffix.lower() in SPHERE_SUFFIXES for s in sources) and not sph2pipe_available():
        raise RuntimeError(f"{root}: {SPH2PIPE_HELP}")
    return sources, skips


def _add_utterance(uid: str, split: str, path: Path, sources: list[SourceFile], skips: list[dict],
                   seen: dict[str, str]) -> None:
    """Index one utterance (speaker = first 3 characters of its id); a repeated id is a counted skip."""
    if uid in seen:
        skips.append({"path": str(path), "reason": f"duplicate utterance id {uid} (kept {seen[uid]})"})
        return
    seen[uid] = str(path)
    sources.append(SourceFile(uid, "wsj0", uid[:3], "speech", split, str(path)))


def _index_standard(root: Path) -> tuple[list[SourceFile], list[dict]]:
    set_dirs: list[tuple[Path, str]] = []
    for folder, subdirs, _ in os.walk(root):
        for name in sorted(subdirs):
            if name in STANDARD_SETS:
                set_dirs.append((Path(folder) / name, STANDARD_SETS[name]))
    if not set_dirs:
        raise Wsj0LayoutError(
            f"{root}: no {', '.join(STANDARD_SETS)} folders and no wsj0-2mix tr/cv/tt with s1/s2; "
            "point --wsj0 at the WSJ0 root (e.g. .../csr_1/11-1.1/wsj0 or the folder holding the discs)"
        )
    sources: list[SourceFile] = []
    skips: list[dict] = []
    seen: dict[str, str] = {}
    for set_dir, split in sorted(set_dirs):
        for path in sorted(set_dir.rglob("*")):
            if not path.is_file():
                continue
            suffix = path.suffix.lower()
            if suffix == SECOND_MIC_SUFFIX or suffix not in AUDIO_SUFFIXES:
                skips.append({"path": str(path), "reason": f"not a first-microphone audio file ({suffix or 'no suffix'})"})
                continue
            _add_utterance(path.stem.lower(), split, path, sources, skips, seen)
    return sources, skips


def _index_twomix(root: Path) -> tuple[list[SourceFile], list[dict]]:
    sources: list[SourceFile] = []
    skips: list[dict] = []
    seen: dict[str, str] = {}
    for name, split in TWOMIX_SETS.items():
        for part, token in (("s1", 0), ("s2", 2)):
            for path in sorted((root / name / part).iterdir()):
                fields = path.stem.split("_")
                if path.suffix.lower() not in AUDIO_SUFFIXES or len(fields) != 4:
                    skips.append({"path": str(path), "reason": "not a wsj0-2mix source file <utt1>_<snr1>_<utt2>_<snr2>.wav"})
                    continue
                _add_utterance(fields[token].lower(), split, path, sources, skips, seen)
    return sources, skips
