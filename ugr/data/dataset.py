"""Torch datasets: fresh on-the-fly mixtures for training, fixed listed mixtures for evaluation."""
from __future__ import annotations

import math
import os
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from .mixing import SourcePool, coarse_labels, draw_mixture, render
from .mixture_list import read_mixture_list


def _item(mixture: np.ndarray, sources: np.ndarray, fine: list[str], mixture_id: str) -> dict:
    return {
        "mixture": torch.from_numpy(mixture),
        "sources": torch.from_numpy(sources),
        "classes": list(fine),
        "coarse": coarse_labels(fine),
        "id": mixture_id,
    }


class OnTheFlyMixtures(Dataset):
    """Mixtures drawn afresh from (seed, key) alone, as the paper's augmented training data.

    Any non-negative integer key is valid; ``len`` is the number of mixtures per
    epoch. Because the generator is built only from ``SeedSequence([seed, key])``,
    an item does not depend on the worker, the process or what was drawn before:
    several DataLoader workers never share or repeat a random stream. Pair it
    with :class:`EpochSampler` so each epoch asks for new keys (fresh mixtures).
    ``priors`` maps ``speech+speech``/``env+env``/``speech+env`` to weights;
    ``None`` means uniform over the types this split can form.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike,
        split: str = "train",
        *,
        num_mixtures: int,
        seed: int,
        segment: float = 4.0,
        sample_rate: int = 8000,
        snr_range: tuple[float, float] = (-5.0, 5.0),
        priors: dict[str, float] | None = None,
        normalize: bool = False,
    ) -> None:
        if num_mixtures <= 0:
            raise ValueError(f"num_mixtures={num_mixtures}: must be positive")
        if snr_range[0] > snr_range[1]:
            raise ValueError(f"snr_range={snr_range}: low must not exceed high")
        self.pool = SourcePool(data_dir, split, sample_rate)
        self.priors = self.pool.feasible_priors() if priors is None else self.pool.check_priors(priors)
        self.split, self.num_mixtures, self.seed = split, num_mixtures, seed
        self.segment_frames = int(round(segment * sample_rate))
        self.snr_range = (float(snr_range[0]), float(snr_range[1]))
        self.normalize = normalize

    def __len__(self) -> int:
        return self.num_mixtures

    def __getitem__(self, key: int) -> dict:
        if key < 0:
            raise IndexError(f"key {key}: keys are non-negative integers")
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, int(key)]))
        spec, crops = draw_mixture(self.pool, rng, self.priors, self.segment_frames, self.snr_range)
        mixture, sources = render(crops, spec.snr_db, self.normalize)
        return _item(mixture, sources, [c.fine for c in spec.sources], f"{self.split}-s{self.seed}-k{key}")


class EpochSampler(Sampler[int]):
    """Yields keys ``epoch * num_mixtures + i`` for this rank's share of i.

    Lightning (and any loop calling ``set_epoch``) thereby draws fresh mixtures
    every epoch, while ranks get disjoint keys. With Lightning under DDP, pass
    ``use_distributed_sampler=False`` to the Trainer so it keeps this sampler.
    """

    def __init__(self, num_mixtures: int, *, rank: int = 0, world_size: int = 1) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank={rank}, world_size={world_size}: need 0 <= rank < world_size")
        self.num_mixtures, self.rank, self.world_size = num_mixtures, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        base = self.epoch * self.num_mixtures
        return iter(range(base + self.rank, base + self.num_mixtures, self.world_size))

    def __len__(self) -> int:
        return max(0, math.ceil((self.num_mixtures - self.rank) / self.world_size))


class ListedMixtures(Dataset):
    """The fixed validation/test mixtures of a list written by ``python -m ugr.data.mixtures``."""

    def __init__(self, data_dir: str | os.PathLike, list_path: str | os.PathLike, *, sample_rate: int = 8000) -> None:
        self.header, self.specs = read_mixture_list(list_path)
        if self.header["sample_rate"] != sample_rate:
            raise ValueError(
                f"{list_path}: written for {self.header['sample_rate']} Hz, {sample_rate} Hz asked; "
                "regenerate it with python -m ugr.data.mixtures at this rate"
            )
        self.pool = SourcePool(data_dir, self.header["split"], sample_rate)
        for mixture_id, spec in self.specs:
            for crop in spec.sources:
                if crop.id not in self.pool.by_id:
                    raise ValueError(
                        f"{list_path}: mixture {mixture_id} uses source {crop.id}, absent from {self.pool.manifest}; "
                        "regenerate the list for this data folder"
                    )
        self.segment_frames = self.header["segment_frames"]
        self.normalize = self.header["normalize"]

    def __len__(self) -> int:
        return len(self.specs)

    def __getitem__(self, index: int) -> dict:
        mixture_id, spec = self.specs[index]
        crops = [self.pool.read(self.pool.by_id[c.id], c.offset, self.segment_frames) for c in spec.sources]
        mixture, sources = render(crops, spec.snr_db, self.normalize)
        return _item(mixture, sources, [c.fine for c in spec.sources], mixture_id)


def collate_mixtures(batch: list[dict]) -> dict:
    """Stack tensors to (B, T) and (B, n_src, T); labels stay nested lists, ids a list."""
    return {
        "mixture": torch.stack([b["mixture"] for b in batch]),
        "sources": torch.stack([b["sources"] for b in batch]),
        "classes": [b["classes"] for b in batch],
        "coarse": [b["coarse"] for b in batch],
        "id": [b["id"] for b in batch],
    }
