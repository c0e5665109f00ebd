#!/usr/bin/env python
"""Training steps/s inside the recipe (Lightning, data workers, logging) against the bare step, same config.

The recipe part runs stage 2's own trainer (``ugr.pipeline.train.build_trainer``, the
``MixtureData`` loaders, ``SeparationSystem``) on a prepared data folder for
``--warmup`` + ``--steps`` steps of one epoch (validation cut to one batch),
in a temporary experiment folder, and times the steps after the warm-up,
from the start of the first timed batch to the end of the last: data waits,
host syncs, logging and checkpoint bookkeeping included. The bare part is
``bench/model_speed.py``'s training step (forward, PIT SI-SDR, backward,
clip, Adam) of the same model, batch size, mixture length, device, threads
and speed settings (activation checkpointing, compile) on a fixed random
batch, without Lightning. The two parts alternate ``--rounds`` times, so
that drift of the machine hits both alike. Printed: steps/s of each, and
their ratio (target: the recipe at least 0.9 of the bare step).

``recipe_speed.py task-startup``: the start-up of one task of stage 2 on a
trained experiment folder, from the start of its processes to the decision
"trained; skipping", before and after stage 2 became one process:

* before: the processes the stage ran then, one after another, with the code of
  the last commit that had ``egs/TEMPLATE/scripts/task.sh`` (``git archive`` of
  its ``ugr/``): ``python -m ugr.pipeline.variants configs`` (setup.sh),
  ``variants names``, ``variants task I``, ``python -m ugr.pipeline.experiment_dir
  done`` and ``lock`` (task.sh), ``python -m ugr.pipeline.provenance check``
  (stage2_train.sh);
* after: ``python -m ugr.pipeline.task train --index I`` (exit status 3: skipped).

Run in the folder of the configs (``--conf``), e.g. a recipe after ``./run.sh
--stop_stage 2``::

    cd egs/wsj0_esc50 && ../../tools/venv/bin/python ../../bench/recipe_speed.py task-startup \
        --experiments baseline_cpu --data data --exp exp

Printed: the median seconds of each over ``--rounds`` and their ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from model_speed import make_step
from pytorch_lightning.callbacks import Callback

from ugr.pipeline import config as config_lib
from ugr.pipeline import efficiency
from ugr.pipeline.system import SeparationSystem
from ugr.pipeline.train import MixtureData, build_trainer

TARGET_RATIO = 0.9


class StepClock(Callback):
    """Wall time from the start of training batch ``warmup`` to the end of the last batch."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end, self.steps = warmup, 0.0, 0.0, 0

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if batch_idx == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if batch_idx >= self.warmup:
            self.end, self.steps = time.perf_counter(), self.steps + 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--config",
        type=Path,
        default=Path("egs/wsj0_esc50/conf/cpu/baseline_cpu.yaml"),
        help="experiment config (default: %(default)s)",
    )
    parser.add_argument("--override", action="append", default=[], help="SECTION.KEY=VALUE ..., as ugr.pipeline.train")
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("egs/wsj0_esc50/data"),
        help="prepared data folder with the config's lists (stages 0-1; default: %(default)s)",
    )
    parser.add_argument("--ngpu", type=int, default=0, choices=[0, 1], help="0: CPU, 1: one GPU (default: 0)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed first steps (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=2, help="alternations recipe/bare (default: %(default)s)")
    parser.add_argument(
        "--threads",
        type=int,
        default=torch.get_num_threads(),
        help="torch CPU threads, for both (default: torch's, %(default)s, as the recipe)",
    )
    args = parser.parse_args(argv)
    if min(args.steps, args.rounds) < 1 or args.warmup < 0:
        parser.error("--steps and --rounds must be >= 1, --warmup >= 0")
    return args


def recipe_steps_per_second(cfg: config_lib.ExperimentConfig, args: argparse.Namespace) -> float:
    clock = StepClock(args.warmup)
    with tempfile.TemporaryDirectory(prefix="recipe_speed_") as exp_dir:
        trainer = build_trainer(cfg, Path(exp_dir), args.data, args.ngpu, progress=False)
        trainer.callbacks.append(clock)
        trainer.limit_val_batches = 1
        efficiency.set_tf32(cfg.training.tf32)
        trainer.fit(SeparationSystem(cfg), datamodule=MixtureData(cfg, args.data, args.ngpu))
    return clock.steps / (clock.end - clock.start)


def bare_steps_per_second(cfg: config_lib.ExperimentConfig, args: argparse.Namespace) -> float:
    device = "cuda" if args.ngpu else "cpu"
    torch.manual_seed(0)
    model = efficiency.apply_memory_settings(cfg.model.build(), cfg.training).to(device)
    efficiency.compile_model(model, cfg.training)
    efficiency.set_tf32(cfg.training.tf32)
    frames = int(cfg.data.segment * cfg.data.sample_rate)
    sources = torch.randn(cfg.training.batch_size, cfg.model.n_src, frames, device=device)
    variant = "ours" + ("+bf16" if cfg.training.precision == "bf16-mixed" else "")
    step = make_step(model, sources.sum(1), sources, SimpleNamespace(optimizer_step=True, device=device), variant)
    for _ in range(args.warmup):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    return args.steps / (time.perf_counter() - start)


ROOT = Path(__file__).resolve().parents[1]
OLD_TASK_SCRIPT = "egs/TEMPLATE/scripts/task.sh"


def _old_code(into: Path) -> str:
    """Extracts ``ugr/`` of the last commit that had the stage-2 chain of processes (scripts/task.sh) into
    ``into``; returns the commit."""

    def git(*words: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(ROOT), *words], capture_output=True, text=True, check=check)

    commit = git("rev-parse", "HEAD").stdout.strip()
    if git("cat-file", "-e", f"{commit}:{OLD_TASK_SCRIPT}", check=False).returncode != 0:
        removed = git("rev-list", "-1", "HEAD", "--", OLD_TASK_SCRIPT).stdout.strip()
        if not removed:
            raise SystemExit(f"recipe_speed: no commit of this checkout has {OLD_TASK_SCRIPT}")
        commit = git("rev-parse", f"{removed}^").stdout.strip()  # the commit that removed it: its parent
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "ugr"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return commit


def _timed(commands: list[list[str]], env: dict[str, str], ok: tuple[int, ...] = (0,)) -> float:
    start = time.perf_counter()
    for command in commands:
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode not in ok:
            raise SystemExit(f"recipe_speed: {' '.join(command)} failed ({done.returncode}): {done.stderr[-1000:]}")
    return time.perf_counter() - start


def task_startup(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="recipe_speed.py task-startup",
        description="stage 2's per-task start-up on a trained folder, before and after "
        "it became one process (see the module's help)",
    )
    parser.add_argument("--experiments", required=True, help="the run's experiments (the trained one first)")
    parser.add_argument("--conf", default="conf")
    parser.add_argument("--seeds", default="")
    parser.add_argument("--sweep", default="")
    parser.add_argument("--tag", default="")
    parser.add_argument("--override", default="")
    parser.add_argument("--data", default="data")
    parser.add_argument("--exp", default="exp")
    parser.add_argument("--index", type=int, default=0, help="the trained variant's number [0]")
    parser.add_argument("--rounds", type=int, default=3, help="alternations before/after; medians [3]")
    args = parser.parse_args(argv)
    python = sys.executable
    options = [
        "--experiments",
        args.experiments,
        "--conf",
        args.conf,
        "--seeds",
        args.seeds,
        "--sweep",
        args.sweep,
        "--tag",
        args.tag,
        "--override",
        args.override,
    ]
    after = [
        [
            python,
            "-m",
            "ugr.pipeline.task",
            "train",
            "--index",
            str(args.index),
            *options,
            "--data",
            args.data,
            "--exp",
            args.exp,
        ]
    ]
    with tempfile.TemporaryDirectory(prefix="recipe_speed_old_") as old:
        commit = _old_code(Path(old))
        old_env = {**os.environ, "PYTHONPATH": old}
        new_env = {**os.environ, "PYTHONPATH": str(ROOT)}
        task = subprocess.run(
            [python, "-m", "ugr.pipeline.variants", *options, "task", str(args.index)],
            capture_output=True,
            text=True,
            env=old_env,
            check=True,
        ).stdout.splitlines()
        exp_dir = str(Path(args.exp) / task[1])
        before = [
            [python, "-m", "ugr.pipeline.variants", "--experiments", args.experiments, "--conf", args.conf, "configs"],
            [python, "-m", "ugr.pipeline.variants", *options, "names"],
            [python, "-m", "ugr.pipeline.variants", *options, "task", str(args.index)],
            [python, "-m", "ugr.pipeline.experiment_dir", "done", exp_dir],
            [python, "-m", "ugr.pipeline.experiment_dir", "lock", exp_dir],
            [python, "-m", "ugr.pipeline.provenance", "check", "--exp-dir", exp_dir, "--data", args.data],
        ]
        if not (Path(exp_dir) / "train.done").is_file():
            raise SystemExit(f"recipe_speed: {exp_dir} is not trained (no train.done): train it first")
        old_times, new_times = [], []
        for _ in range(args.rounds):
            old_times.append(_timed(before, old_env))
            new_times.append(_timed(after, new_env, ok=(3,)))  # ugr.pipeline.task.CURRENT: skipped
    old_s, new_s = statistics.median(old_times), statistics.median(new_times)
    print(
        f"task start-up of stage 2 on the trained {exp_dir}, until 'skipping' ({os.cpu_count()} CPUs, 1-min load "
        f"average {os.getloadavg()[0]:.1f}); median of {args.rounds} rounds:"
    )
    print(
        f"  before ({commit[:10]}: {len(before)} processes): {old_s:.2f} s ({', '.join(f'{t:.2f}' for t in old_times)})"
    )
    print(
        f"  after (python -m ugr.pipeline.task, 1 process): {new_s:.2f} s ({', '.join(f'{t:.2f}' for t in new_times)})"
    )
    print(f"  ratio before/after: {old_s / new_s:.2f}")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["task-startup"]:
        task_startup(argv[1:])
        return
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    record = config_lib.load(args.config, config_lib.parse_overrides(args.override)).to_dict()
    record["data"]["train_mixtures_per_epoch"] = (args.warmup + args.steps) * record["training"]["batch_size"]
    record["training"]["epochs"] = 1
    cfg = config_lib.validate(record, where=str(args.config))
    efficiency.keep_freed_memory(cfg.training.keep_freed_memory)  # as ugr.pipeline.train does, for both
    if cfg.training.precision == "16-mixed":
        sys.exit("recipe_speed: the bare step has no fp16 scaler; use 32-true or bf16-mixed")
    load_before, cpu_before = os.getloadavg()[0], time.process_time()
    recipe, bare = [], []
    for _ in range(args.rounds):
        recipe.append(recipe_steps_per_second(cfg, args))
        bare.append(bare_steps_per_second(cfg, args))
    load_after = os.getloadavg()[0]
    recipe_rate, bare_rate = statistics.median(recipe), statistics.median(bare)
    training = record["training"]
    print(
        f"setup: {args.config} (batch {training['batch_size']} x {cfg.data.segment} s, "
        f"{training['num_workers']} data workers, precision {training['precision']}, compile {training['compile']}, "
        f"activation checkpointing {training['activation_checkpointing']}), {'cuda' if args.ngpu else 'cpu'}, "
        f"{args.threads} threads, {args.steps} timed steps after {args.warmup}, median of {args.rounds} rounds"
    )
    print(
        f"machine: {torch.cuda.get_device_name() if args.ngpu else f'{os.cpu_count()} CPUs'}, "
        f"torch {torch.__version__}, 1-min load average {load_before:.1f} before, {load_after:.1f} after; "
        f"CPU time of this process {time.process_time() - cpu_before:.0f} s"
    )
    print(
        f"  rounds, recipe steps/s: {', '.join(f'{r:.3f}' for r in recipe)}; bare: {', '.join(f'{b:.3f}' for b in bare)}"
    )
    ratio = recipe_rate / bare_rate
    print(
        f"recipe {recipe_rate:.3f} steps/s, bare step {bare_rate:.3f} steps/s: ratio {ratio:.3f} "
        f"(target >= {TARGET_RATIO:g}: {'met' if ratio >= TARGET_RATIO else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
