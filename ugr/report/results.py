"""Stage 4's publishable results: ``EXP_ROOT/RESULTS.md``, as ESPnet's ``egs2/*/enh1/README.md``.

``python -m ugr.report`` writes it after ``report.md``. A recipe publishes a
run by copying it into its folder (``cp exp/RESULTS.md RESULTS.md``). It is
made from files only:

* the title: the recipe (``--recipe``) and the command that reproduces the run
  (``--command``; stage 4 rebuilds it from the run's options);
* the environment: the date, this checkout's ugr version and git commit, the
  Python version, and from each experiment's ``provenance.json``
  (``ugr.pipeline.provenance.record_launch``, one entry per launch of the training)
  the code, torch version, device and torch threads of the training (listed
  per experiment where they differ); the wall time of each stage from
  ``EXP_ROOT/log/<stage>.seconds`` (the stage scripts write them on success:
  ``data``, ``lists``, ``train.<task>``, ``score.<task>``, ``report``); a
  missing one shows as ``-``;
* per test list (its path and mixture count): the SI-SDRi distribution table
  and the paired comparison with the baseline (the first experiment with
  uniform weighting), or with training seeds (``--seeds``) the same across
  seeds, and the worst group per grouping of the sources (fine class, group,
  input-SNR bin) with its difference from the baseline; the tables of
  ``ugr.report.tables``, so that their rows are report.md's.

Experiment names, labels and recorded values go through ``ugr.report.markdown``
(``markdown_cell``, also importable from here): no name adds a table column,
forms a link or reaches the page as HTML.
"""

from __future__ import annotations

import os
import platform
import time
from datetime import datetime
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import ugr
from ugr.io.atomic import atomic_write_text
from ugr.pipeline import provenance
from ugr.pipeline.score import MAIN_METRIC, STATS_FILE
from ugr.report import across_seeds, tables
from ugr.report import report as report_lib
from ugr.report.markdown import code_span as _code
from ugr.report.markdown import fenced as _fenced
from ugr.report.markdown import markdown_cell

FILE = "RESULTS.md"
LOG = "log"
SUFFIX = ".seconds"


# ----------------------------------------------------------------------------- wall times


def process_started() -> Optional[float]:
    """When this process started, on the ``time.monotonic()`` clock (Linux: ``/proc/self/stat``), so that a
    stage's time counts Python's start and imports; None where it is not known."""
    try:
        stat = Path("/proc/self/stat").read_text()
        ticks = int(stat[stat.rindex(")") + 2 :].split()[19])  # field 22, starttime, clock ticks after boot
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return time.monotonic() - max(age, 0.0)


def stage_seconds(exp_root: Path, stage: str) -> Optional[float]:
    """A stage's recorded wall time (``EXP_ROOT/log/<stage>.seconds``); None when missing or unreadable."""
    try:
        return float((Path(exp_root) / LOG / f"{stage}{SUFFIX}").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _seconds(value: Optional[float]) -> str:
    if value is None:
        return "-"
    return f"{value:.0f} s" if float(value).is_integer() else f"{value:.1f} s"


def _tasks(exp_root: Path, stage: str, count: int) -> str:
    """A per-variant stage: its tasks ``<stage>.0`` ... ``<stage>.<count-1>`` (the variants' order).

    Tasks run side by side (local jobs, array jobs): the longest is the stage's time, the sum its work."""
    found = [s for s in (stage_seconds(exp_root, f"{stage}.{task}") for task in range(count)) if s is not None]
    if not found:
        return "-"
    if count == 1:
        return _seconds(found[0])
    timed = f"{count} tasks" if len(found) == count else f"{len(found)} of {count} tasks timed"
    return f"{timed}, longest {_seconds(max(found))}, sum {_seconds(sum(found))}"


# ----------------------------------------------------------------------------- environment


def _launches(exp_root: Path, names: Sequence[str]) -> Dict[str, List[Dict]]:
    """Each experiment's launches of its training (provenance.json), none for a folder without a readable one."""
    found = {}
    for name in names:
        try:
            record = provenance.read(Path(exp_root) / name)
        except (OSError, ValueError):
            record = None
        found[name] = list((record or {}).get("launches") or [])
    return found


def _training_fact(launches: Dict[str, List[Dict]], key: str) -> str:
    """One value when every experiment's launches agree, else each value with the experiments that had it."""
    by_value: Dict[str, List[str]] = {}
    for name, entries in launches.items():
        values = [str(entry[key]) for entry in entries if entry.get(key) is not None] or ["-"]
        for value in dict.fromkeys(values):
            by_value.setdefault(value, []).append(name)
    if len(by_value) == 1:
        return markdown_cell(next(iter(by_value)))
    return "; ".join(
        f"{markdown_cell(value)} ({', '.join(markdown_cell(n) for n in names)})" for value, names in by_value.items()
    )


def environment(exp_root: Path, names: Sequence[str], report_seconds: Optional[float]) -> str:
    launches = _launches(exp_root, names)
    code = provenance.code_version()
    commit = code.split(" git ", 1)[1] if " git " in code else "-"
    date = datetime.now().astimezone().isoformat(timespec="seconds")
    lines = [
        "## Environment",
        "",
        f"- date: {date}",
        f"- ugr version: {markdown_cell(ugr.__version__)}",
        f"- git commit: {markdown_cell(commit)}",
        f"- python version: {platform.python_version()}",
        f"- code of the training: {_training_fact(launches, 'code')}",
        f"- torch version: {_training_fact(launches, 'torch')}",
        f"- device: {_training_fact(launches, 'device')}",
        f"- torch threads: {_training_fact(launches, 'threads')}",
        "- wall time per stage:",
        f"  - data: {_seconds(stage_seconds(exp_root, 'data'))}",
        f"  - lists: {_seconds(stage_seconds(exp_root, 'lists'))}",
        f"  - train: {_tasks(exp_root, 'train', len(names))}",
        f"  - score: {_tasks(exp_root, 'score', len(names))}",
        f"  - report: {_seconds(report_seconds)}",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- tables


def _group_section(group: List[report_lib.Scored], exp_root: Path) -> str:
    baseline = next((exp for exp in group if exp.is_uniform), None)
    list_path = Path(group[0].stats.get("test_list", "?"))
    try:
        shown = list_path.relative_to(Path(exp_root).resolve().parent)
    except ValueError:
        shown = list_path
    mixtures = len({row["mixture_id"] for row in group[0].rows})
    protocols = sorted({"epochs" if exp.by_epochs else "weights" for exp in group})
    parts = [
        f"## Test list {_code(str(shown))}: {mixtures} mixtures",
        "Scoring protocol: "
        + ", ".join(f"`{p}`" for p in protocols)
        + (" (a cell: the mean across the scored epochs ± its std)" if "epochs" in protocols else "")
        + ".",
    ]
    title = report_lib.METRIC_TITLES[MAIN_METRIC]
    variants = across_seeds.seed_groups(group)
    if across_seeds.has_seeds(variants):
        base = next((variant for variant in variants if variant.is_uniform), None)
        parts += [
            f"### {title} per estimated source, across training seeds",
            "A cell: the statistic's mean over the seeds ± its std across them.",
            tables.distribution_table(variants, over_seeds=True),
        ]
        if base is not None and len(variants) > 1:
            shown_base = markdown_cell(base.name)
            parts += [
                f"### Paired comparison against {shown_base}, across seeds (SI-SDRi)",
                f"Difference = variant - {shown_base} per (mixture, source), seed k against seed k; 95 % "
                f"interval over seeds and mixtures: Student's t on the per-seed differences (valid at few "
                f"seeds; report.md says how), beside the mixtures-only bootstrap.",
                tables.paired_table(variants, base, over_seeds=True),
            ]
        parts += [
            "### Per coarse class (mean SI-SDRi, dB), across training seeds",
            tables.class_table(variants, over_seeds=True),
        ]
        if base is not None and len(variants) > 1:
            parts += report_lib.class_paired_parts(variants, base, level="###")
        parts += report_lib.worst_group_parts(variants, base, over_seeds=True, full=False)
        if all(run.curve for variant in variants for run in variant.runs):
            parts += report_lib.early_progress_parts(variants, base, level="###")
        return "\n\n".join(parts)
    parts += [
        f"### {title} per estimated source",
        tables.distribution_table({exp.name: exp.stats for exp in group}, {exp.name: exp.weighting for exp in group}),
    ]
    if baseline is not None and len(group) > 1:
        shown_base = markdown_cell(baseline.name)
        parts += [
            f"### Paired comparison against {shown_base} (SI-SDRi)",
            f"Difference = experiment - {shown_base} per (mixture, source); 95 % bootstrap interval over mixtures.",
            tables.paired_table(group, baseline),
        ]
    parts += report_lib.worst_group_parts(group, baseline, full=False)
    return "\n\n".join(parts)


# ----------------------------------------------------------------------------- the file


def _names(exp_root: Path, experiments: Optional[Sequence[str]]) -> List[str]:
    names = list(experiments) if experiments else report_lib.scored_experiments(exp_root)
    if not names:
        raise FileNotFoundError(f"{exp_root}: no scored experiment (*/scores/{STATS_FILE}); run stages 2-3 first")
    return names


def _sections(exp_root: Path, names: Sequence[str]) -> List[str]:
    """The tables, per test list (the report's grouping: the test list's contents)."""
    groups: Dict[str, List[report_lib.Scored]] = {}
    for exp in (report_lib.load_scored(exp_root / name) for name in names):
        groups.setdefault(exp.test_list, []).append(exp)
    return [_group_section(group, exp_root) for group in groups.values()]


def _text(
    exp_root: Path,
    names: Sequence[str],
    recipe: str,
    command: str,
    sections: Sequence[str],
    report_seconds: Optional[float],
) -> str:
    folder = _code(exp_root.name + "/")
    parts = [
        f"# RESULTS: {markdown_cell(recipe)}" if recipe else "# RESULTS",
        f"Made by stage 4 (`python -m ugr.report`) from the experiments in {folder}; reproduced by:",
        _fenced(command, "sh") if command else "-",
        environment(exp_root, names, report_seconds),
        *sections,
        f"Full report with figures: report.md (in {folder}).",
    ]
    return "\n\n".join(parts) + "\n"


def build(
    exp_root: Path,
    experiments: Optional[Sequence[str]] = None,
    recipe: str = "",
    command: str = "",
    report_seconds: Optional[float] = None,
) -> str:
    """RESULTS.md's text for ``experiments`` (default: every scored one, by name) under ``exp_root``.

    ``report_seconds``: stage 4's wall time (default: the one on record, ``log/report.seconds``)."""
    exp_root = Path(exp_root)
    names = _names(exp_root, experiments)
    if report_seconds is None:
        report_seconds = stage_seconds(exp_root, "report")
    return _text(exp_root, names, recipe, command, _sections(exp_root, names), report_seconds)


def write(
    exp_root: Path,
    experiments: Optional[Sequence[str]] = None,
    recipe: str = "",
    command: str = "",
    started: Optional[float] = None,
) -> Path:
    """Writes ``EXP_ROOT/RESULTS.md``; returns its path.

    ``started`` (on the ``time.monotonic()`` clock): when stage 4 began; its wall time up to the writing is
    shown and recorded as ``log/report.seconds``. Without it the time on record is shown."""
    exp_root = Path(exp_root)
    if started is None:
        text = build(exp_root, experiments, recipe, command)
    else:
        names = _names(exp_root, experiments)
        sections = _sections(exp_root, names)  # first: their bootstrap intervals are part of the stage's time
        seconds = round(time.monotonic() - started, 1)
        text = _text(exp_root, names, recipe, command, sections, seconds)
        atomic_write_text(exp_root / LOG / f"report{SUFFIX}", f"{seconds}\n")
    path = exp_root / FILE
    atomic_write_text(path, text)
    return path
