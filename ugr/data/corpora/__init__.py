"""Corpora as plug-ins: one indexer per corpus layout, registered by name.

An indexer reads a corpus in its published layout and says, for every usable
audio file, which split it belongs to and its labels; it never reads or
writes audio (``ugr.data.prepare`` does that, for every corpus alike). Adding
a corpus is one new module here that decorates its indexer with
``@register("name")``, plus its import below: no other corpus's code changes.

    @register("my_corpus", licence={"title": "My corpus", "license": "CC BY 4.0", ...})
    def index_my_corpus(root: Path, *, fs: int, **options: str) -> Index:
        ...

The licence is asteroid's record of a dataset (``LICENCE_FIELDS``): a model
exported with ``ugr-export`` lists the licences of the corpora it learnt from.

``fs`` is the sample rate the recipe prepares (an indexer may pick among
versions of a corpus, e.g. wsj0-2mix's wav8k/wav16k); ``options`` are the
indexer's own ``KEY=VALUE`` settings from ``python -m ugr.data.prepare
--corpus NAME DIR KEY=VALUE...``, as strings. An indexer checks them with
``take_options`` and raises ``CorpusLayoutError`` for a folder it cannot read,
naming the folder and the fix.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Sequence

from ..manifest import SPLITS  # the data contract names the splits

__all__ = [
    "SPLITS",
    "CorpusLayoutError",
    "SourceFile",
    "MixtureFile",
    "Index",
    "INDEXERS",
    "LICENCES",
    "LICENCE_FIELDS",
    "register",
    "take_options",
    "index_corpus",
    "require_folder",
    "registered",
]


class CorpusLayoutError(ValueError):
    """A corpus folder that its indexer cannot read; the message names the folder and the fix."""


@dataclass(frozen=True)
class SourceFile:
    """One source recording, before preparation (the row it becomes is ``ugr.data.manifest.SourceRow``).

    ``group`` is what must differ between the sources of one mixture (the
    speaker, or the recording); ``fine`` and ``coarse`` are its class labels
    (any strings; e.g. ``dog`` and ``env``).
    """

    id: str
    path: str  # absolute path of the original file
    split: str
    group: str
    fine: str
    coarse: str


@dataclass(frozen=True)
class MixtureFile:
    """One published, fixed mixture (e.g. wsj0-2mix's ``mix_clean`` with its ``s1``/``s2``)."""

    id: str
    split: str
    mixture: str  # absolute path
    sources: tuple[SourceFile, ...]  # their ``path`` is the published, scaled source file


@dataclass
class Index:
    """What an indexer found: the sources, any published mixtures, and every file it passed over, with why."""

    sources: list[SourceFile] = field(default_factory=list)
    mixtures: list[MixtureFile] = field(default_factory=list)
    skips: list[dict] = field(default_factory=list)  # {"path": ..., "reason": ...}
    notes: list[str] = field(default_factory=list)  # facts a reader of the preparation report should know

    def extend(self, other: "Index") -> None:
        self.sources += other.sources
        self.mixtures += other.mixtures
        self.skips += other.skips
        self.notes += other.notes


Indexer = Callable[..., Index]
INDEXERS: Dict[str, Indexer] = {}
LICENCES: Dict[str, Dict[str, Any]] = {}
# asteroid's record of a dataset's licence (the ``licenses`` of its pretrained models).
LICENCE_FIELDS = ("title", "title_link", "author", "author_link", "license", "license_link", "non_commercial")


def register(name: str, licence: Mapping[str, Any]) -> Callable[[Indexer], Indexer]:
    """Decorator: makes ``indexer`` available as ``--corpus NAME`` to ``ugr.data.prepare``, with its licence."""
    missing = [key for key in LICENCE_FIELDS if key not in licence]
    if missing:
        raise ValueError(f"corpus {name!r}: its licence record lacks {missing}")

    def add(indexer: Indexer) -> Indexer:
        if name in INDEXERS:
            raise ValueError(f"corpus indexer {name!r} is registered twice")
        INDEXERS[name] = indexer
        LICENCES[name] = dict(licence)
        return indexer

    return add


def take_options(options: Mapping[str, str], allowed: Mapping[str, str], corpus: str) -> Dict[str, str]:
    """The indexer's options with defaults filled in; an unknown option is an error listing the allowed ones."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        described = ", ".join(f"{k} (default {v!r})" for k, v in allowed.items()) or "none"
        raise CorpusLayoutError(f"corpus {corpus}: unknown option(s) {unknown}; its options are: {described}")
    return {**allowed, **options}


def index_corpus(name: str, root: str | os.PathLike, *, fs: int, options: Mapping[str, str] | None = None) -> Index:
    """Runs the indexer registered as ``name`` on ``root``."""
    if name not in INDEXERS:
        raise CorpusLayoutError(f"unknown corpus {name!r}; registered corpora: {', '.join(sorted(INDEXERS))}")
    return INDEXERS[name](Path(root).resolve(), fs=fs, **dict(options or {}))


def require_folder(root: Path, corpus: str) -> None:
    """A clear error for a corpus path that is not a folder (a typo, an unmounted disk)."""
    if not root.is_dir():
        raise CorpusLayoutError(f"{root}: no such folder (corpus {corpus}); check the path")


def registered() -> Sequence[str]:
    return sorted(INDEXERS)


# The corpora shipped with ugr; each module registers its indexer when imported.
SHIPPED = ("class_folders", "esc50", "librimix", "wsj0", "wsj0_2mix")
for _module in SHIPPED:
    importlib.import_module(f"{__name__}.{_module}")
