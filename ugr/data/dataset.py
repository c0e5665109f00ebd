"""Torch datasets: fresh training mixtures every epoch, fixed lists for evaluation.

Training draws item ``key`` from ``stream(seed, "train", key)`` alone, so an
item does not depend on the worker, the process or what was drawn before;
``EpochSampler`` hands out keys ``epoch * N + i``, hence new mixtures every
epoch and disjoint keys across DDP ranks, and a resumed training continues the
same stream of keys.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from .audio import read_segment
from .eval_list import read_eval_list
from .manifest import MixtureRow, mixtures_path, rate_problem, read_mixtures, resolve
from .mixing import MixingSettings, SourcePool, draw_mixture, render, stream


def _item(
    mixture: np.ndarray,
    sources: np.ndarray,
    fine: Sequence[str],
    coarse: Sequence[str],
    mixture_id: str,
    groups: Sequence[str],
) -> dict:
    return {
        "mixture": torch.from_numpy(mixture),
        "sources": torch.from_numpy(sources),
        "classes": list(fine),
        "coarse": list(coarse),
        "groups": list(groups),
        "id": mixture_id,
    }


class OnTheFlyMixtures(Dataset):
    """Training mixtures drawn afresh from the split's sources, as the paper's augmented training data.

    Any non-negative integer key is valid; ``len`` is the number of mixtures per epoch.
    """

    def __init__(self, data_dir: str | os.PathLike, split: str, settings: MixingSettings, num_mixtures: int) -> None:
        if num_mixtures <= 0:
            raise ValueError(f"num_mixtures={num_mixtures}: must be positive")
        self.pool = SourcePool(data_dir, split, settings.sample_rate)
        self.pool.check(settings)
        self.split, self.settings, self.num_mixtures = split, settings, num_mixtures

    def __len__(self) -> int:
        return self.num_mixtures

    def __getitem__(self, key: int) -> dict:
        if key < 0:
            raise IndexError(f"key {key}: keys are non-negative integers")
        spec, crops = draw_mixture(self.pool, stream(self.settings.seed, self.split, key), self.settings)
        mixture, sources = render(crops, spec.snr_db, self.settings.normalize)
        rows = [self.pool.by_id[c.id] for c in spec.sources]
        return _item(
            mixture,
            sources,
            [r.fine for r in rows],
            [r.coarse for r in rows],
            f"{self.split}-s{self.settings.seed}-k{key}",
            [r.group for r in rows],
        )


def _read_published(data_dir: Path, row: MixtureRow, offset: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Mixture and sources of a published mixture, samples ``offset .. offset + frames`` (zero outside)."""
    mixture = read_segment(resolve(data_dir, row.mixture), offset, frames, row.frames)
    sources = np.stack([read_segment(resolve(data_dir, path), offset, frames, row.frames) for path in row.sources])
    return mixture, sources


class PublishedCrops(Dataset):
    """Training on a corpus's published mixtures (e.g. wsj0-2mix ``tr``): item ``key`` is a random mixture
    and a random ``segment`` of it, drawn from ``stream(seed, split, key)``; used as published (no rescaling)."""

    def __init__(self, data_dir: str | os.PathLike, split: str, settings: MixingSettings, num_mixtures: int) -> None:
        self.data_dir = Path(data_dir)
        self.rows = read_mixtures(mixtures_path(data_dir, split))
        if not self.rows:
            raise ValueError(f"{mixtures_path(data_dir, split)}: no published mixtures to train on")
        problem = rate_problem(mixtures_path(data_dir, split), (r.sample_rate for r in self.rows), settings.sample_rate)
        if problem:
            raise ValueError(problem)
        self.split, self.settings, self.num_mixtures = split, settings, num_mixtures

    def __len__(self) -> int:
        return self.num_mixtures

    def __getitem__(self, key: int) -> dict:
        rng = stream(self.settings.seed, self.split, key)
        row = self.rows[int(rng.integers(len(self.rows)))]
        frames = self.settings.segment_frames
        spare = row.frames - frames
        offset = int(rng.integers(0, spare + 1)) if spare >= 0 else -int(rng.integers(0, -spare + 1))
        mixture, sources = _read_published(self.data_dir, row, offset, frames)
        return _item(mixture, sources, row.fines, row.coarses, f"{row.id}@{offset}", row.groups)


class EpochSampler(Sampler[int]):
    """Yields keys ``epoch * num_mixtures + i`` for this rank's share of i, from where training stands.

    Lightning (and any loop calling ``set_epoch``) thereby draws fresh mixtures
    every epoch, while ranks get disjoint keys. With Lightning under DDP, pass
    ``use_distributed_sampler=False`` to the Trainer so it keeps this sampler.

    A resumed training must see the rest of the same stream, so the sampler
    starts after ``batches_done`` batches of ``batch_size`` keys: in the epoch
    they end in, at the next batch. It cannot wait for ``set_epoch`` to learn
    the epoch: on a restart Lightning makes the data iterator before it sets the
    epoch, and a DataLoader with worker processes draws its first keys at once.
    ``len`` stays the whole epoch's share, as Lightning counts an epoch's
    batches from the start of the epoch.
    """

    def __init__(
        self, num_mixtures: int, *, rank: int = 0, world_size: int = 1, batch_size: int = 1, batches_done: int = 0
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank={rank}, world_size={world_size}: need 0 <= rank < world_size")
        self.num_mixtures, self.rank, self.world_size = num_mixtures, rank, world_size
        batches_per_epoch = len(self) // batch_size  # the DataLoader drops the last, incomplete batch
        if batches_per_epoch < 1:
            raise ValueError(
                f"{num_mixtures} mixtures per epoch over {world_size} rank(s) make no batch of {batch_size}"
            )
        self.epoch, batch = divmod(batches_done, batches_per_epoch)
        self._skip = batch * batch_size  # keys of this rank's share that the first pass over self.epoch skips

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch, self._skip = epoch, 0

    def __iter__(self) -> Iterator[int]:
        base = self.epoch * self.num_mixtures
        keys = range(base + self.rank, base + self.num_mixtures, self.world_size)[self._skip :]
        self._skip = 0
        return iter(keys)

    def __len__(self) -> int:
        return max(0, math.ceil((self.num_mixtures - self.rank) / self.world_size))


class ListedMixtures(Dataset):
    """The fixed mixtures of an evaluation list (``ugr.data.eval_list``), checked against the data folder.

    Drawn lists give ``segment``-long mixtures; published ones keep each
    mixture's own length (``fixed_length`` is False: evaluate one at a time).
    """

    def __init__(self, data_dir: str | os.PathLike, list_path: str | os.PathLike, *, sample_rate: int) -> None:
        self.data_dir = Path(data_dir)
        self.list = read_eval_list(list_path, data_dir)
        header = self.list.header
        if header["sample_rate"] != sample_rate:
            raise ValueError(
                f"{list_path}: written for {header['sample_rate']} Hz, {sample_rate} Hz asked; "
                f"regenerate it with stage 1 at this rate"
            )
        self.fixed_length = self.list.kind == "drawn"
        if self.fixed_length:
            self.pool = SourcePool(data_dir, header["split"], sample_rate)
            self.segment_frames, self.normalize = header["segment_frames"], bool(header["normalize"])
        else:
            by_id = {row.id: row for row in read_mixtures(mixtures_path(data_dir, header["split"]))}
            self.published = [by_id[mixture_id] for mixture_id in self.list.published]

    def __len__(self) -> int:
        return len(self.list.drawn) if self.fixed_length else len(self.published)

    def __getitem__(self, index: int) -> dict:
        if not self.fixed_length:
            row = self.published[index]
            mixture, sources = _read_published(self.data_dir, row, 0, row.frames)
            return _item(mixture, sources, row.fines, row.coarses, row.id, row.groups)
        mixture_id, spec = self.list.drawn[index]
        rows = [self.pool.by_id[c.id] for c in spec.sources]
        crops = [self.pool.read(row, c.offset, self.segment_frames) for row, c in zip(rows, spec.sources)]
        mixture, sources = render(crops, spec.snr_db, self.normalize)
        return _item(
            mixture, sources, [r.fine for r in rows], [r.coarse for r in rows], mixture_id, [r.group for r in rows]
        )


def collate_mixtures(batch: list[dict]) -> dict:
    """Stack tensors to (B, T) and (B, n_src, T); labels (classes, coarse, groups: per source) stay nested lists,
    ids a list."""
    return {
        "mixture": torch.stack([b["mixture"] for b in batch]),
        "sources": torch.stack([b["sources"] for b in batch]),
        "classes": [b["classes"] for b in batch],
        "coarse": [b["coarse"] for b in batch],
        "groups": [b["groups"] for b in batch],
        "id": [b["id"] for b in batch],
    }
