"""WSJ0 speech in its standard sets: ``si_tr_s`` (train), ``si_dt_05`` (valid), ``si_et_05`` (test).

Any tree containing those folders, of ``.wav``/``.flac`` files or WSJ0's own
shorten-compressed NIST SPHERE ``.wv1`` (read through sph2pipe). Speaker =
the first 3 characters of the utterance id (the paper's grouping): the two
sources of a mixture come from different speakers. Labels: fine and coarse
class ``speech``. The second microphone (``.wv2``) is passed over and counted.
For the published wsj0-2mix mixtures use the ``wsj0_2mix`` corpus.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..audio import SPH2PIPE_HELP, SPHERE_SUFFIXES, sph2pipe_available
from ..manifest import SPEECH
from . import CorpusLayoutError, Index, SourceFile, register, require_folder, take_options

STANDARD_SETS = {"si_tr_s": "train", "si_dt_05": "valid", "si_et_05": "test"}
AUDIO_SUFFIXES = (".wav", ".flac") + SPHERE_SUFFIXES
SECOND_MIC_SUFFIX = ".wv2"  # WSJ0 ships two microphones per utterance; the standard sets use the first
LICENCE = {
    "title": "CSR-I (WSJ0) Complete",
    "title_link": "https://catalog.ldc.upenn.edu/LDC93S6A",
    "author": "LDC",
    "author_link": "https://www.ldc.upenn.edu/",
    "license": "LDC User Agreement for Non-Members",
    "license_link": "https://catalog.ldc.upenn.edu/license/ldc-non-members-agreement.pdf",
    "non_commercial": True,
}


def speaker_of(utterance_id: str) -> str:
    """WSJ0's speaker id: the first 3 characters of an utterance id."""
    return utterance_id[:3]


@register("wsj0", LICENCE)
def index_wsj0(root: Path, *, fs: int, **options: str) -> Index:
    take_options(options, {}, "wsj0")
    require_folder(root, "wsj0")
    set_dirs: list[tuple[Path, str]] = []
    for folder, subdirs, _ in os.walk(root):
        for name in sorted(subdirs):
            if name in STANDARD_SETS:
                set_dirs.append((Path(folder) / name, STANDARD_SETS[name]))
    if not set_dirs:
        raise CorpusLayoutError(
            f"{root}: no {', '.join(STANDARD_SETS)} folders; point --wsj0 at the WSJ0 root (e.g. "
            ".../csr_1/11-1.1/wsj0, or the folder holding the discs); a wsj0-2mix tree is the wsj0_2mix corpus"
        )
    index = Index()
    seen: dict[str, str] = {}
    for set_dir, split in sorted(set_dirs):
        for path in sorted(set_dir.rglob("*")):
            if not path.is_file():
                continue
            suffix = path.suffix.lower()
            if suffix == SECOND_MIC_SUFFIX or suffix not in AUDIO_SUFFIXES:
                index.skips.append(
                    {"path": str(path), "reason": f"not a first-microphone audio file ({suffix or 'no suffix'})"}
                )
                continue
            uid = path.stem.lower()
            if uid in seen:
                index.skips.append({"path": str(path), "reason": f"duplicate utterance id {uid} (kept {seen[uid]})"})
                continue
            seen[uid] = str(path)
            index.sources.append(SourceFile(uid, str(path), split, speaker_of(uid), SPEECH, SPEECH))
    if not index.sources:
        raise CorpusLayoutError(
            f"{root}: no usable utterances in {', '.join(STANDARD_SETS)} (passed over: {index.skips[:5]})"
        )
    if any(Path(s.path).suffix.lower() in SPHERE_SUFFIXES for s in index.sources) and not sph2pipe_available():
        raise RuntimeError(f"{root}: {SPH2PIPE_HELP}")
    return index
