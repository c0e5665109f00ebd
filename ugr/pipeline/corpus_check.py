"""Whether a prepared data folder can serve an experiment config: one check, before any stage's work.

Stages 0, 1 and 2 ask it once each (``python -m ugr.pipeline.variants check --data``,
``ugr.pipeline.lists``, ``ugr.pipeline.train``), so a data folder that cannot serve a config
stops the run with one message naming the file, the config key and the fix,
instead of an error from inside a data loader hours later. The datasets keep
their own checks of the files they open, with the same messages
(``ugr.data.manifest.rate_problem``), for use outside the recipes.
"""

from __future__ import annotations

import os

from ugr.data.manifest import manifest_path, mixtures_path, rate_problem, read_manifest, read_mixtures
from ugr.data.mixing import SourcePool
from ugr.pipeline.config import PUBLISHED, SOURCES, ConfigError, ExperimentConfig


def check_corpus(cfg: ExperimentConfig, data_dir: str | os.PathLike, where: str) -> None:
    """Raises ConfigError (naming ``where``) when the data folder cannot serve ``cfg``.

    Its rate must be the config's; every mixture type of ``data.priors`` must
    be formable in each split that draws from sources; the published mixtures
    asked for must exist; every class named by the weighting must exist in the
    training data. The errors list what the data folder has.
    """
    from ugr.core.weighting import ClassBias  # imported here: it pulls in torch

    data = cfg.data
    settings = data.mixing_settings()
    splits = {"train": data.train_from, "valid": data.eval_from, "test": data.eval_from}
    try:
        for split, origin in splits.items():
            if origin == SOURCES:
                pool = SourcePool(data_dir, split, settings.sample_rate)
                for pair, _ in settings.priors:
                    problem = pool.problem(pair)
                    if problem:
                        raise ConfigError(
                            f"{where}: data.priors asks {'+'.join(pair)} mixtures, but in {data_dir} {problem}"
                        )
            else:
                path = mixtures_path(data_dir, split)
                rows = read_mixtures(path)
                need = {"train": 1, "valid": data.valid_mixtures, "test": data.test_mixtures}[split]
                if len(rows) < need:
                    raise ConfigError(
                        f"{where}: data.{'train' if split == 'train' else 'eval'}_from is "
                        f"{PUBLISHED}, but {path} has {len(rows)} mixtures, {need} needed "
                        f"{_fewer_mixtures_fix(split, len(rows))}"
                    )
                problem = rate_problem(path, (row.sample_rate for row in rows), settings.sample_rate)
                if problem:
                    raise ConfigError(f"{where}: {problem}")
        if data.train_from == SOURCES:
            rows = read_manifest(manifest_path(data_dir, "train"))
            labels = {r.fine for r in rows} | {r.coarse for r in rows}
        else:
            rows = read_mixtures(mixtures_path(data_dir, "train"))
            labels = {label for r in rows for label in r.fines + r.coarses}
    except (ValueError, FileNotFoundError) as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"{where}: {err}") from err
    named = {label for term in cfg.weighting.parts() if isinstance(term, ClassBias) for label in term.gamma}
    missing = sorted(named - labels)
    if missing:
        raise ConfigError(
            f"{where}: weighting gamma names class(es) {', '.join(missing)}, which the training data "
            f"of {data_dir} does not have; its classes are: {', '.join(sorted(labels))} (name one, "
            f'e.g. --override "EXPERIMENT:weighting.gamma={{{sorted(labels)[0]}: 3}}")'
        )
    _check_group_dro(cfg, rows, data_dir, where)


def _check_group_dro(cfg: ExperimentConfig, rows: list, data_dir: str | os.PathLike, where: str) -> None:
    """Group DRO needs its ``group_by`` labels in the training data, and at least two groups (one group's q is 1:
    the uniform update). ``rows`` are the training split's source rows or published mixtures."""
    from ugr.core.weighting import GroupDRO  # imported here: it pulls in torch

    columns = {"fine": ("fine", "fines"), "coarse": ("coarse", "coarses"), "group": ("group", "groups")}
    for term in cfg.weighting.parts():
        if not isinstance(term, GroupDRO):
            continue
        one, many = columns[term.group_by]
        groups = {label for r in rows for label in (getattr(r, many, None) or (getattr(r, one, None),)) if label}
        if len(groups) < 2:
            carried = f"only the group {sorted(groups)[0]}" if groups else f"no {one!r} labels"
            raise ConfigError(
                f"{where}: weighting.group_by is {term.group_by!r}, but the training data of {data_dir} "
                f"carries {carried}; group DRO needs at least two groups (pick another group_by: "
                f"{', '.join(k for k in columns if k != term.group_by)})"
            )


def _fewer_mixtures_fix(split: str, available: int) -> str:
    """The fix for a split with too few published mixtures: ask for those there are, or draw them from sources."""
    origin = "data.train_from" if split == "train" else "data.eval_from"
    draw = f"--override {origin}={SOURCES} to draw them from the sources"
    if split == "train" or available == 0:
        return f"(e.g. {draw}, or prepare a corpus that publishes them)"
    return f"(e.g. --override data.{split}_mixtures={available} to use the {available} there are, or {draw})"
