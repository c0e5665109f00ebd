"""Is on-the-fly mixing fast enough? Mixtures/s of the training dataset vs the model's consumption.

Data side: ``OnTheFlyMixtures`` (4 s at 8 kHz by default) read through a
DataLoader with ONE worker process, as training would. Model side: the
paper's default Sudo rm -rf (asteroid ``SuDORMRFNet(n_src=2,
sample_rate=8000)``; ``--model ugr`` uses ``ugr.separation.models.build_model`` instead),
forward + PIT negative SI-SDR + backward on a batch of 4 x 4 s, on this
machine's CPU. Prints both rates and data/model (target: at least 20).

Without ``--data`` the mini corpus is built and prepared under ``--work``.
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ugr.data.dataset import EpochSampler, OnTheFlyMixtures, collate_mixtures
from ugr.pipeline import config

ROOT = Path(__file__).resolve().parents[1]


def data_rate(data_dir: Path, seconds: float, segment: float, sample_rate: int) -> float:
    base = config.load(ROOT / "egs" / "wsj0_esc50" / "conf" / "cpu" / "base_cpu.yaml").data
    settings = (
        dataclasses.replace(
            base,
            sample_rate=sample_rate,
            segment=segment,
            snr_range=[-5, 5],
            priors={"speech+env": 1, "env+env": 1},
            normalize=False,
            seed=0,
        )
    ).mixing_settings()
    dataset = OnTheFlyMixtures(data_dir, "train", settings, num_mixtures=100_000)
    loader = DataLoader(
        dataset,
        batch_size=1,
        sampler=EpochSampler(len(dataset)),
        num_workers=1,
        collate_fn=collate_mixtures,
        prefetch_factor=4,
    )
    iterator = iter(loader)
    for _ in range(20):  # start the worker, warm the file cache
        next(iterator)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        next(iterator)
        count += 1
    return count / (time.perf_counter() - start)


def model_rate(kind: str, batch: int, segment: float, sample_rate: int, steps: int) -> tuple[float, str]:
    from asteroid.losses import PITLossWrapper, pairwise_neg_sisdr

    if kind == "asteroid":
        from asteroid.models import SuDORMRFNet

        model, name = SuDORMRFNet(n_src=2, sample_rate=sample_rate), "asteroid SuDORMRFNet(n_src=2, sample_rate=8000)"
    else:
        from ugr.separation.models import build_model

        model, name = build_model(), "ugr.separation.models.build_model() defaults"
    loss = PITLossWrapper(pairwise_neg_sisdr, pit_from="pw_mtx")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    frames = int(segment * sample_rate)
    mixture, sources = torch.randn(batch, frames), torch.randn(batch, 2, frames)

    def step() -> None:
        optimizer.zero_grad()
        loss(model(mixture), sources).backward()
        optimizer.step()

    step()  # warm-up (allocations, kernel selection)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - start), name


def prepared_minicorpus(work: Path, sample_rate: int) -> Path:
    from ugr.data.prepare import CorpusInput, prepare

    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "minicorpus" / "build.py"), "--out", str(work / "minicorpus")],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    prepare(
        work / "data",
        [
            CorpusInput("wsj0", str(work / "minicorpus" / "wsj0")),
            CorpusInput("esc50", str(work / "minicorpus" / "esc50")),
        ],
        fs=sample_rate,
    )
    return work / "data"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="prepared data folder (ugr.data.prepare); default: the mini corpus")
    parser.add_argument("--work", type=Path, default=Path("/tmp/ugr_bench_data"), help="where to build the mini corpus")
    parser.add_argument(
        "--model", choices=["asteroid", "ugr"], default="asteroid", help="model to time (default: %(default)s)"
    )
    parser.add_argument("--data-seconds", type=float, default=10.0, help="how long to time the dataset")
    parser.add_argument("--steps", type=int, default=1, help="timed training steps after one warm-up")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--segment", type=float, default=4.0)
    parser.add_argument("--sample-rate", type=int, default=8000)
    args = parser.parse_args(argv)
    data_dir = args.data or prepared_minicorpus(args.work, args.sample_rate)
    mixing = data_rate(data_dir, args.data_seconds, args.segment, args.sample_rate)
    print(
        f"data : {mixing:9.2f} mixtures/s  (OnTheFlyMixtures, 1 worker, {args.segment:g} s at {args.sample_rate} Hz, {data_dir})"
    )
    training, name = model_rate(args.model, args.batch, args.segment, args.sample_rate, args.steps)
    print(
        f"model: {training:9.3f} mixtures/s  ({name}, forward+backward, batch {args.batch} x {args.segment:g} s, "
        f"{torch.get_num_threads()} threads)"
    )
    ratio = mixing / training
    print(f"ratio: {ratio:9.1f}  (data / model; target >= 20: {'met' if ratio >= 20 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
