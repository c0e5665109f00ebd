"""The user's own sounds, one folder per class.

Layouts (files may sit in subfolders of a class folder; ``.wav .flac .ogg
.mp3``, any case, any sample rate and channel count, the preparation
resamples and downmixes):

    DIR/<class>/...                          split here, by file (below)
    DIR/{train,valid,test}/<class>/...       split as given (all three needed)

The layout is decided by what the folders hold, so a class may be named
``train``, ``valid`` or ``test`` (ESC-50 has a class ``train``): the top level
is split folders only when it holds nothing but folders named ``train``,
``valid``, ``test``, each holding only folders (its class folders). A top
folder that holds audio files itself is a class folder. When the two readings
both fit (a folder ``train`` holding only subfolders, beside other class
folders or beside a split-named folder of audio), the folder is ambiguous and
indexing stops until option ``layout=classes`` or ``layout=splits`` (the
recipes' ``--layout``) says which was meant.

Labels: fine class = the class folder's name; group = the class, so the two
sources of a mixture are of different classes (as the paper's env+env
mixtures of ESC-50); coarse class from option ``coarse``, a list
``CLASS:COARSE,...`` with ``*:DEFAULT`` for every class not named (default
``*:sound``: one coarse class, mixture prior ``sound+sound``;
``coarse=speech:speech,*:env`` gives the paper's speech/env setup). Class
names become labels in TSV lists and ``A+B`` priors, so a class folder whose
name holds whitespace or ``+`` is an error asking to rename it.

Split without split folders: seeded, stratified by class, reproducible from
the options alone. Per class, the files sorted by path are permuted by
``numpy.random.default_rng(SeedSequence([seed, crc32(class)]))`` (so adding
a class does not reshuffle the others); the first ``max(1, round(valid*n))``
go to valid, the next ``max(1, round(test*n))`` to test, the rest to train
(``round`` is Python's, half to even). A class of fewer than 3 files goes to
train whole, with a note. Options ``seed`` (0), ``valid`` (0.1), ``test``
(0.1); with split folders they are an error, as they would be ignored.

ids: ``<class>__<path under the class folder, without suffix, '/' as '__'>``
with whitespace and ``+`` replaced by ``_`` (ids are list keys; ``+`` is
refused in labels and ids alike), unique within a split folder, or within the
whole corpus before it is split (so two versions of one recording never land
in different splits): a second file with the same id (``a.wav`` and
``a.flac``) is a skip, the first by path kept. Hidden files and folders,
non-audio files and files outside a class folder are skips too.
"""

from __future__ import annotations

import os
import re
import zlib
from pathlib import Path

import numpy as np

from ..manifest import ManifestError, check_label
from . import SPLITS, CorpusLayoutError, Index, SourceFile, register, require_folder, take_options

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
SPLIT_OPTIONS = {"seed": "0", "valid": "0.1", "test": "0.1"}
LAYOUTS = ("classes", "splits")
DEFAULT_COARSE = "*:sound"
MIN_SPLIT_FILES = 3  # fewer cannot give one file to each of train, valid and test
UNSAFE_ID = re.compile(r"[\s+]")
LAYOUT_CLASSES = "DIR/<class>/<audio files>"
LAYOUT_SPLITS = "DIR/{train,valid,test}/<class>/<audio files>"
LAYOUT = f"{LAYOUT_CLASSES} or {LAYOUT_SPLITS}"


# Your own recordings: their terms are yours to state (ugr-export's model card says so).
LICENCE = {
    "title": "own recordings (class folders)",
    "title_link": "",
    "author": "",
    "author_link": "",
    "license": "the recordings' own terms (not known to ugr)",
    "license_link": "",
    "non_commercial": False,
}


@register("class_folders", LICENCE)
def index_class_folders(root: Path, *, fs: int, **options: str) -> Index:
    require_folder(root, "class_folders")
    index = Index()
    layout = options.get("layout")
    if layout is not None and layout not in LAYOUTS:
        raise CorpusLayoutError(
            f"corpus class_folders: layout={layout!r}; give layout=classes ({LAYOUT_CLASSES}) "
            f"or layout=splits ({LAYOUT_SPLITS})"
        )
    top = _folders(root, index.skips)
    real = _real_folders(root)
    split_folders = _layout(root, top, layout) == "splits"
    if split_folders:
        strays = [p.name for p in top if p.name not in SPLITS]
        if strays:
            raise CorpusLayoutError(
                f"{root}: layout=splits, but {', '.join(strays)} is not a split folder; with "
                f"split folders the top level holds only {', '.join(SPLITS)} ({LAYOUT_SPLITS})"
            )
        given = sorted(set(options) & set(SPLIT_OPTIONS))
        if given:
            raise CorpusLayoutError(
                f"{root}: has split folders, which fix the split; drop the option(s) "
                f"{', '.join(given)} (or move the class folders up, out of the split "
                f"folders, to split by seed)"
            )
        missing = [s for s in SPLITS if not (root / s).is_dir()]
        if missing:
            raise CorpusLayoutError(
                f"{root}: no {', '.join(missing)} folder; with split folders all of "
                f"{', '.join(SPLITS)} are needed ({LAYOUT_SPLITS}); if the folders are "
                f"classes, pass --layout classes"
            )
        settings = take_options(options, {"coarse": DEFAULT_COARSE, "layout": "splits"}, "class_folders")
        files = {split: _class_files(_folders(root / split, index.skips), index, real) for split in SPLITS}
    else:
        settings = take_options(
            options, {"coarse": DEFAULT_COARSE, "layout": "classes", **SPLIT_OPTIONS}, "class_folders"
        )
        seed, valid, test = _split_settings(settings)
        found = _class_files(top, index, real)
        files = {split: {} for split in SPLITS}
        for name, paths in found.items():
            for split, chosen in _split_class(name, paths, seed, valid, test).items():
                files[split][name] = chosen
        small = [name for name, paths in found.items() if len(paths) < MIN_SPLIT_FILES]
        if small:
            index.notes.append(
                f"{root}: class(es) with fewer than {MIN_SPLIT_FILES} files, all in train: {', '.join(small)}"
            )
    classes = sorted({name for by_class in files.values() for name in by_class})
    if not classes:
        raise CorpusLayoutError(
            f"{root}: no class folder with audio files ({', '.join(AUDIO_SUFFIXES)}); expected {LAYOUT}"
        )
    coarse = _coarse_mapping(settings["coarse"], classes)
    for split in SPLITS:
        absent = [name for name in classes if name not in files[split]]
        if absent and split_folders:  # without split folders, only the small classes (noted) miss a split
            index.notes.append(f"{root / split}: no files of class(es) {', '.join(absent)}")
        for name in sorted(files[split]):
            for uid, path in sorted(files[split][name]):
                index.sources.append(
                    SourceFile(id=uid, path=str(path), split=split, group=name, fine=name, coarse=coarse[name])
                )
    if len(classes) == 1:
        index.notes.append(
            f"{root}: one class only ({classes[0]}); its sources can be mixed only with another "
            f"corpus's, as the two sources of a mixture must differ in class"
        )
    return index


def _layout(root: Path, top: list[Path], layout: str | None) -> str:
    """``classes`` or ``splits``: the one given, else the one that what the top folders hold fits.

    A split-named folder holding only folders reads as a split folder; one
    holding audio files reads as a class folder (empty or unreadable: either).
    Split folders need a top level of split folders only, so both readings can
    fit only then; when they disagree the corpus is ambiguous and the error
    names the folders of each reading.
    """
    if layout is not None:
        return layout
    named = [p for p in top if p.name in SPLITS]
    if not named:
        return "classes"
    like_splits = [p for p in named if _holds_only_folders(p)]
    if not like_splits:
        return "classes"
    like_classes = [p.name for p in top if p not in like_splits and (p.name not in SPLITS or _holds_audio(p))]
    if not like_classes:
        return "splits"
    raise CorpusLayoutError(
        f"{root}: ambiguous layout: {', '.join(p.name for p in like_splits)} hold(s) only folders, as split "
        f"folders do, but {', '.join(like_classes)} read(s) as class folder(s); pass --layout classes (every top "
        f"folder is a class, {like_splits[0].name} included: {LAYOUT_CLASSES}) or --layout splits "
        f"({LAYOUT_SPLITS}); python -m ugr.data.prepare takes layout=classes|splits"
    )


def _holds_only_folders(folder: Path) -> bool:
    """Visible subfolders and no visible audio file: how a split folder looks."""
    visible = [p for p in _entries(folder) if not p.name.startswith(".")]
    return any(p.is_dir() for p in visible) and not any(_is_audio(p) for p in visible)


def _holds_audio(folder: Path) -> bool:
    """A visible audio file directly in ``folder``: how a class folder (and no split folder) looks."""
    return any(_is_audio(p) and not p.name.startswith(".") for p in _entries(folder))


def _entries(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:  # unreadable: it fits either reading; indexing it reports why
        return []


def _is_audio(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_SUFFIXES and not path.is_dir()


def _folders(folder: Path, skips: list[dict]) -> list[Path]:
    """The visible subfolders of ``folder``, sorted; its files and hidden entries are skips."""
    folders = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            skips.append({"path": str(entry), "reason": "hidden (name starts with '.')"})
        elif entry.is_dir():
            folders.append(entry)
        else:
            skips.append({"path": str(entry), "reason": "not in a class folder"})
    return folders


def _class_files(class_dirs: list[Path], index: Index, real: set[tuple[int, int]]) -> dict[str, list[tuple[str, Path]]]:
    """``{class: [(id, audio file), ...]}`` for the class folders holding audio, files sorted by path.

    ids are unique among ``class_dirs`` (one split folder, or the whole corpus before it is split, so that two
    versions of one recording never land in different splits): a repeated id is a skip, the first file kept.
    """
    found = {}
    skips = index.skips
    seen: dict[str, Path] = {}
    for class_dir in class_dirs:
        if not _utf8(class_dir.name):
            raise CorpusLayoutError(
                f"{class_dir}: class folder name {class_dir.name!r} is not UTF-8 (labels and "
                f"lists are UTF-8 text); rename the folder"
            )
        try:
            check_label(class_dir.name, "class")
        except ManifestError:
            raise CorpusLayoutError(
                f"{class_dir}: class folder name {class_dir.name!r} holds whitespace or '+', which class labels "
                f"cannot (lists are TSV, priors are written A+B); rename the folder, e.g. to "
                f"{UNSAFE_ID.sub('_', class_dir.name)!r}"
            ) from None
        files = []
        for relative, path in _audio_files(class_dir, index, real):
            uid = UNSAFE_ID.sub("_", f"{class_dir.name}__{relative.replace('/', '__')}")
            if not _utf8(uid):
                skips.append({"path": str(path), "reason": "name not UTF-8 (ids and lists are UTF-8 text); rename it"})
                continue
            if uid in seen:
                skips.append({"path": str(path), "reason": f"duplicate id {uid} (kept {seen[uid]})"})
                continue
            seen[uid] = path
            files.append((uid, path))
        if files:
            found[class_dir.name] = files
        else:
            skips.append({"path": str(class_dir), "reason": "class folder without audio files"})
    return found


def _audio_files(class_dir: Path, index: Index, real: set[tuple[int, int]]) -> list[tuple[str, Path]]:
    """``(path under class_dir without suffix, file)`` for its audio files at any depth, sorted by that path.

    Symbolic links to folders are followed (a corpus assembled from links is common), each folder once, by
    device and inode: a folder reached through a link that is one of the corpus's own (``real``: read by
    its real path, or the corpus itself) or one already walked is a skip naming the link and what it
    points to. So a link back up the tree cannot be followed round until the paths grow too long to write,
    and no recording is indexed twice or under another class. Such a link, and a folder that cannot be
    read, is also a note: one line of the stage 0 log names it.
    """
    files, skips = [], index.skips
    walked = {str(class_dir): _folder_key(class_dir)}  # path as walked -> its folder's key
    through_link: set[str] = set()

    def unreadable(err: OSError) -> None:
        skip(str(err.filename), f"cannot read folder: {err.strerror}")

    def skip(path: str, reason: str) -> None:
        skips.append({"path": path, "reason": reason})
        index.notes.append(f"{path}: {reason}")

    for parent, subdirs, names in os.walk(class_dir, followlinks=True, onerror=unreadable):
        for hidden in sorted(d for d in subdirs if d.startswith(".")):
            skips.append({"path": os.path.join(parent, hidden), "reason": "hidden (name starts with '.')"})
        kept = []
        for name in sorted(d for d in subdirs if not d.startswith(".")):
            folder = os.path.join(parent, name)
            key = _folder_key(Path(folder))
            linked = parent in through_link or os.path.islink(folder)
            if key in walked.values() or (linked and key in real):
                ancestors = {k for path, k in walked.items() if folder.startswith(path + os.sep)}
                kind = "symlink loop" if key in ancestors or key == _folder_key(class_dir.parent) else "symlink"
                skip(
                    folder,
                    f"{kind}: points to {Path(folder).resolve()}, a folder already indexed (each folder "
                    f"is read once); skipped, remove the link",
                )
            else:
                walked[folder] = key
                if linked:
                    through_link.add(folder)
                kept.append(name)
        subdirs[:] = kept
        for name in sorted(names):
            path = Path(parent) / name
            if name.startswith("."):
                skips.append({"path": str(path), "reason": "hidden (name starts with '.')"})
            elif path.suffix.lower() not in AUDIO_SUFFIXES:
                skips.append(
                    {
                        "path": str(path),
                        "reason": f"not an audio file ({path.suffix or 'no suffix'}); "
                        f"audio is {' '.join(AUDIO_SUFFIXES)}",
                    }
                )
            else:
                files.append((path.relative_to(class_dir).with_suffix("").as_posix(), path))
    return sorted(files, key=lambda item: item[1].relative_to(class_dir).as_posix())


def _utf8(name: str) -> bool:
    """Whether a file name decoded as valid UTF-8 (Python keeps other bytes as surrogates, which no text
    file can hold)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _real_folders(root: Path) -> set[tuple[int, int]]:
    """The keys of the corpus folder and of its visible folders as they are, links not followed: each is
    read by its real path, so a link to one is a second way to it."""
    keys = set()
    for parent, subdirs, _ in os.walk(root):
        subdirs[:] = [d for d in subdirs if not d.startswith(".")]
        keys.add(_folder_key(Path(parent)))
    return keys


def _folder_key(folder: Path) -> tuple[int, int]:
    """What identifies a folder however it is reached (through links): its device and inode."""
    info = folder.stat()
    return info.st_dev, info.st_ino


def _split_settings(settings: dict[str, str]) -> tuple[int, float, float]:
    try:
        seed = int(settings["seed"])
        valid, test = float(settings["valid"]), float(settings["test"])
    except ValueError:
        raise CorpusLayoutError(
            f"corpus class_folders: seed={settings['seed']!r}, valid={settings['valid']!r}, "
            f"test={settings['test']!r}; seed is an integer >= 0, valid and test fractions"
        ) from None
    if seed < 0 or not (0 < valid < 1 and 0 < test < 1 and valid + test < 1):
        raise CorpusLayoutError(
            f"corpus class_folders: seed={seed}, valid={valid}, test={test}; need seed >= 0 and "
            f"valid, test > 0 with valid + test < 1"
        )
    return seed, valid, test


def _split_class(
    name: str, files: list[tuple[str, Path]], seed: int, valid: float, test: float
) -> dict[str, list[tuple[str, Path]]]:
    """One class's files per split, by the documented seeded rule."""
    n = len(files)
    if n < MIN_SPLIT_FILES:
        return {"train": files, "valid": [], "test": []}
    order = np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(name.encode())])).permutation(n)
    n_valid, n_test = max(1, round(valid * n)), max(1, round(test * n))
    if n_valid + n_test >= n:
        raise CorpusLayoutError(
            f"corpus class_folders: class {name} has {n} files; valid={valid} and test={test} "
            f"leave none for train; lower valid/test"
        )
    shuffled = [files[i] for i in order]
    return {
        "valid": shuffled[:n_valid],
        "test": shuffled[n_valid : n_valid + n_test],
        "train": shuffled[n_valid + n_test :],
    }


def _coarse_mapping(text: str, classes: list[str]) -> dict[str, str]:
    """``coarse=CLASS:COARSE,...,*:DEFAULT`` as ``{class: coarse}`` for every class found."""
    mapping: dict[str, str] = {}
    for entry in text.split(","):
        name, colon, label = (part.strip() for part in entry.partition(":"))
        if not colon or not name or name in mapping:
            raise CorpusLayoutError(
                f"corpus class_folders: coarse={text!r}: bad or repeated entry {entry!r}; "
                f"write CLASS:COARSE,...,*:DEFAULT, each class once"
            )
        try:
            mapping[name] = check_label(label, "coarse class")
        except ManifestError as err:
            raise CorpusLayoutError(f"corpus class_folders: coarse={text!r}: {err}") from None
    unknown = sorted(set(mapping) - set(classes) - {"*"})
    if unknown:
        raise CorpusLayoutError(
            f"corpus class_folders: coarse names unknown class(es) {', '.join(unknown)}; "
            f"the classes found are {', '.join(classes)}"
        )
    unmapped = [name for name in classes if name not in mapping and "*" not in mapping]
    if unmapped:
        raise CorpusLayoutError(
            f"corpus class_folders: coarse={text!r} gives no coarse class to "
            f"{', '.join(unmapped)}; add *:DEFAULT for the rest"
        )
    return {name: mapping.get(name, mapping.get("*")) for name in classes}
