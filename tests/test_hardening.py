"""Names and values a user types (and data a corpus holds) never make a wrong result look right: each case is
refused, skipped and counted, or bounded, with a message naming the fix."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_data_helpers import make_esc50, tone
from test_data_mixing import settings

from ugr.data.audio import DEGENERATE_RATIO, is_degenerate, zero_mean_fraction
from ugr.data.dataset import ListedMixtures
from ugr.data.eval_list import write_drawn_list
from ugr.data.manifest import manifest_path, read_manifest
from ugr.data.mixing import CROP_TRIES, SILENT_CROP_RATIO, SourcePool, draw_mixture, stream
from ugr.data.prepare import CorpusInput, prepare

RATE = 8000
ENV_ONLY = {"env+env": 1}


# ----------------------------------------------------------------------------- degenerate (DC) sources


def _esc50_with(root: Path, shape) -> Path:
    """An ESC-50 layout at 8 kHz (used in place) whose every clip is ``shape(seed)``."""
    esc50 = make_esc50(root / "esc50", clips_per_fold=1, rate=RATE)
    for seed, path in enumerate(sorted((esc50 / "audio").glob("*.wav"))):
        sf.write(path, shape(seed), RATE, subtype="FLOAT")
    return esc50


def _flat_then_sound(seed: int) -> np.ndarray:
    """5 s: 4.5 s of a constant offset (the flat part of a clip), then 0.5 s of sound."""
    return np.concatenate([np.full(int(4.5 * RATE), 0.2, np.float32), tone(0.5, RATE, seed)])


def test_a_constant_dc_clip_is_a_counted_skip_with_its_own_reason_and_an_offset_clip_is_kept(tmp_path):
    esc50 = make_esc50(tmp_path / "esc50", clips_per_fold=1, rate=RATE)
    clips = sorted((esc50 / "audio").glob("*.wav"))
    sf.write(clips[0], np.full(RATE, 0.25, np.float32), RATE, subtype="FLOAT")  # one value: DC
    sf.write(clips[1], np.full(RATE, -3 / 32768, np.float32), RATE, subtype="PCM_16")  # a quiet DC in 16 bits
    offset = tone(1.0, RATE, 1) + np.float32(0.35)  # ~72 % of its power is DC, as some real ESC-50 clips
    assert 0.2 < zero_mean_fraction(offset) < 0.35
    sf.write(clips[2], offset, RATE, subtype="FLOAT")
    report = prepare(tmp_path / "data", [CorpusInput("esc50", str(esc50))], fs=RATE)
    reasons = {Path(s["path"]).name: s["reason"] for s in report["skipped"]}
    assert set(reasons) == {clips[0].name, clips[1].name}
    assert all(r.startswith("constant (DC) signal: ") for r in reasons.values()), reasons
    assert f"at most {DEGENERATE_RATIO:g}" in reasons[clips[0].name]
    assert report["skipped_reasons"] == {"constant (DC) signal": 2}
    written = json.loads((tmp_path / "data" / "prepare_report.json").read_text())
    assert written["skipped_reasons"] == {"constant (DC) signal": 2}
    kept = {
        r.path for split in ("train", "valid", "test") for r in read_manifest(manifest_path(tmp_path / "data", split))
    }
    assert any(p.endswith(clips[2].name) for p in kept)


def test_a_training_or_list_crop_is_never_the_flat_part_of_a_clip_and_the_draw_stays_deterministic(tmp_path):
    esc50 = _esc50_with(tmp_path, _flat_then_sound)
    prepare(tmp_path / "data", [CorpusInput("esc50", str(esc50))], fs=RATE)
    mixing = settings(ENV_ONLY)
    pool = SourcePool(tmp_path / "data", "train", RATE)
    for key in range(40):
        spec, crops = draw_mixture(pool, stream(mixing.seed, "train", key), mixing)
        assert not any(is_degenerate(crop) for crop in crops), (key, spec)
        again, _ = draw_mixture(pool, stream(mixing.seed, "train", key), mixing)
        assert again == spec
    # The fixed lists draw through the same rule: every listed reference has content.
    listed = write_drawn_list(tmp_path / "data", "valid", tmp_path / "valid.tsv", num=12, settings=mixing)
    data = ListedMixtures(tmp_path / "data", listed, sample_rate=RATE)
    for index in range(len(data)):
        assert not any(is_degenerate(s.numpy()) for s in data[index]["sources"]), index


def test_a_row_with_no_crop_but_a_constant_one_is_an_error_naming_it_not_a_degenerate_reference(tmp_path):
    esc50 = make_esc50(tmp_path / "esc50", clips_per_fold=1, rate=RATE, seconds=2.0)
    prepare(tmp_path / "data", [CorpusInput("esc50", str(esc50))], fs=RATE)
    for path in (esc50 / "audio").glob("*.wav"):  # changed after stage 0 (or a manifest a recipe wrote)
        sf.write(path, np.full(2 * RATE, 0.1, np.float32), RATE, subtype="FLOAT")
    mixing = settings(ENV_ONLY)
    pool = SourcePool(tmp_path / "data", "train", RATE)
    with pytest.raises(ValueError, match=r"train\.tsv: row .*: the audio is constant \(DC.*stage 0"):
        draw_mixture(pool, stream(mixing.seed, "train", 0), mixing)


def _old_draw_crop(pool, row, rng, frames):
    """The crop rule before degenerate crops were refused: silent crops alone were avoided."""
    length = pool.frames(row)
    if length <= frames:
        offset = -int(rng.integers(0, frames - length + 1))
        return offset
    floor = SILENT_CROP_RATIO * pool.rms(row) ** 2
    best = None
    for _ in range(CROP_TRIES):
        offset = int(rng.integers(0, length - frames + 1))
        power = float(np.mean(np.square(pool.read(row, offset, frames), dtype=np.float64)))
        if power >= floor:
            return offset
        if best is None or power > best[0]:
            best = (power, offset)
    if best[0] > 0:
        return best[1]
    whole = pool.read(row, 0, length)
    return int(np.clip(np.argmax(np.abs(whole)) - frames // 2, 0, length - frames))


def test_normal_data_draws_the_same_crops_as_before(tmp_path, monkeypatch):
    """Sound with silent stretches (no offset): the refusal of degenerate crops changes no draw."""

    def sound_with_gaps(seed: int) -> np.ndarray:
        clip = tone(3.0, RATE, seed)
        clip[RATE // 2 : 2 * RATE] = 0  # 1.5 s of digital silence
        return clip

    esc50 = _esc50_with(tmp_path, sound_with_gaps)
    prepare(tmp_path / "data", [CorpusInput("esc50", str(esc50))], fs=RATE)
    mixing = settings(ENV_ONLY)
    pool = SourcePool(tmp_path / "data", "train", RATE)
    from ugr.data import mixing as module

    new = [draw_mixture(pool, stream(mixing.seed, "train", key), mixing)[0] for key in range(40)]
    monkeypatch.setattr(
        module, "_draw_crop", lambda pool, row, rng, frames: (_old_draw_crop(pool, row, rng, frames), None)
    )
    old = [draw_mixture(pool, stream(mixing.seed, "train", key), mixing)[0] for key in range(40)]
    assert new == old


# ----------------------------------------------------------------------------- bounded weighting configs

from ugr.core import weighting as weighting_module  # noqa: E402
from ugr.pipeline.config import yaml_load  # noqa: E402


def _alias_bomb(levels: int = 9, width: int = 10) -> str:
    """A few hundred bytes of YAML: each level a sum of ``width`` aliases of the level below (width^levels terms)."""
    lines = ["a0: &a0 {type: uniform}"]
    for level in range(1, levels + 1):
        aliases = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"a{level}: &a{level} {{type: sum, terms: [{aliases}]}}")
    lines.append(f"weighting: *a{levels}")
    return "\n".join(lines) + "\n"


def test_a_weighting_of_nested_yaml_aliases_is_refused_at_once_naming_the_limit():
    text = _alias_bomb()
    assert len(text.encode()) < 1000
    cfg = yaml_load(text)["weighting"]
    started = time.perf_counter()
    with pytest.raises(
        ValueError,
        match=r"^weighting( terms\[\d+\])*: 'terms' nests sums 5 deep, more than the "
        r"limit 4 \(a YAML alias counts each time it is used\)",
    ):
        weighting_module.build(cfg)
    assert time.perf_counter() - started < 5


def test_a_weighting_is_bounded_in_terms_in_all_and_in_the_values_shown_in_errors():
    leaf = {"type": "robust", "alpha": 0.1}
    wide = {"type": "sum", "terms": [leaf] * (weighting_module.MAX_TERMS + 1)}
    with pytest.raises(
        ValueError,
        match=rf"^weighting: 'terms' makes more than {weighting_module.MAX_TERMS} "
        r"terms in all, the limit",
    ):
        weighting_module.build(wide)
    # Terms of nested sums count too: 4 x 20 > 64 though each sum is short.
    nested = {"type": "sum", "terms": [{"type": "sum", "terms": [leaf] * 20}] * 4}
    with pytest.raises(ValueError, match=r"^weighting terms\[\d\]: 'terms' makes more than 64 terms in all"):
        weighting_module.build(nested)
    # A bomb in any value (here gamma's) stops before an error message tries to show it.
    bomb = yaml_load(_alias_bomb().replace("weighting: *a9", "weighting: {type: class, gamma: {dog: *a9}}"))
    started = time.perf_counter()
    with pytest.raises(ValueError, match=r"^weighting gamma dog( terms\[\d+\])*: "):
        weighting_module.build(bomb["weighting"])
    assert time.perf_counter() - started < 5
    looped = yaml_load("w: &w {type: sum, terms: [*w]}")["w"]  # a config that contains itself
    with pytest.raises(ValueError, match="more than the limit 4"):
        weighting_module.build(looped)
    # Within the bounds nothing changes.
    ok = weighting_module.build({"type": "sum", "terms": [leaf, {"type": "sum", "terms": [leaf] * 3}]})
    assert len(ok.parts()) == 6


# ----------------------------------------------------------------------------- ugr-separate: ranges, diverged weights

import torch  # noqa: E402
from test_score import save_epoch_checkpoints, tiny_experiment_cfg  # noqa: E402

from ugr.pipeline import checkpoints, separate  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    exp = tmp_path_factory.mktemp("hardening") / "exp"
    save_epoch_checkpoints(exp, tiny_experiment_cfg(), epochs=3)
    return exp


@pytest.fixture
def recording(tmp_path):
    path = tmp_path / "in.wav"
    sf.write(path, (np.random.default_rng(0).standard_normal(4 * RATE) * 0.1).astype(np.float32), RATE)
    return path


@pytest.mark.parametrize(
    "chunk, hop, message",
    [
        (1e-5, 0.75e-5, r"--chunk-seconds 1e-05: must be at least 0\.1 s"),
        (float("nan"), 1.0, r"--chunk-seconds nan: must be a finite number of seconds"),
        (float("inf"), 1.0, r"--chunk-seconds inf: must be a finite number of seconds"),
        (2.0, float("inf"), r"--hop-seconds inf: must be a finite number of seconds"),
        (2.0, float("nan"), r"--hop-seconds nan: must be a finite number of seconds"),
        (2.0, -1.0, r"--hop-seconds -1\.0: must be at least half of --chunk-seconds"),
    ],
)
def test_separate_refuses_chunk_and_hop_out_of_range_naming_the_option(
    trained, recording, tmp_path, chunk, hop, message
):
    with pytest.raises(separate.InputError, match=message):
        separate.separate_files(trained, [recording], tmp_path / "out", chunk_seconds=chunk, hop_seconds=hop)
    assert not (tmp_path / "out").exists()


def test_separate_refuses_a_hop_of_no_sample_at_a_low_rate(trained, tmp_path):
    low = tmp_path / "low.wav"
    sf.write(low, (np.random.default_rng(1).standard_normal(160) * 0.1).astype(np.float32), 8)  # 8 Hz, 20 s
    with pytest.raises(
        separate.InputError,
        match=r"--hop-seconds 0\.05: 0 sample\(s\) at 8 Hz .*at least one "
        r"sample",
    ):
        separate.separate_files(trained, [low], tmp_path / "out", chunk_seconds=0.1, hop_seconds=0.05)


def _diverge(path: Path) -> None:
    ckpt = torch.load(path, weights_only=True)
    name = next(k for k, v in ckpt["state_dict"].items() if v.is_floating_point())
    ckpt["state_dict"][name] = ckpt["state_dict"][name].clone().fill_(float("nan"))
    torch.save(ckpt, path)


def test_diverged_weights_are_refused_naming_the_file_by_every_loader(trained, recording, tmp_path):
    exp = tmp_path / "exp"
    save_epoch_checkpoints(exp, tiny_experiment_cfg(), epochs=3)
    _diverge(exp / "checkpoints" / "epoch=2.ckpt")
    finite = (
        r"epoch=2\.ckpt: the weights are not finite \(the training diverged\): 1 of \d+ tensor\(s\) hold NaN "
        r"or inf"
    )
    with pytest.raises(checkpoints.CheckpointError, match=finite):  # the average of the last two
        checkpoints.load_experiment(exp, average_last=2)
    with pytest.raises(checkpoints.CheckpointError, match=finite):
        checkpoints.load_experiment(exp, checkpoint=exp / "checkpoints" / "epoch=2.ckpt")
    checkpoints.load_experiment(exp, checkpoint=exp / "checkpoints" / "epoch=1.ckpt")  # an earlier one loads
    with pytest.raises(checkpoints.CheckpointError, match=finite):
        separate.separate_files(exp, [recording], tmp_path / "out", average_last=2)
    assert not (tmp_path / "out").exists()
    # The command says it in one line, and writes nothing.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ugr.pipeline.separate",
            str(recording),
            "--exp-dir",
            str(exp),
            "--average-last",
            "2",
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and not (tmp_path / "out").exists()
    assert "the weights are not finite (the training diverged)" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


# ----------------------------------------------------------------------------- too few published mixtures: the fix

from test_corpora import make_2mix  # noqa: E402

from ugr.pipeline import config as config_lib  # noqa: E402
from ugr.pipeline.corpus_check import check_corpus  # noqa: E402

BASE_CPU = Path(__file__).resolve().parent.parent / "egs" / "wsj0_esc50" / "conf" / "cpu" / "base_cpu.yaml"


def test_too_few_published_mixtures_names_the_key_and_the_count_to_use(tmp_path):
    prepare(
        tmp_path / "data",
        [CorpusInput("wsj0_2mix", str(make_2mix(tmp_path / "wsj0-2mix")), {})],
        fs=8000,
        min_seconds=0.01,
    )  # 3 training, 1 validation, 1 test mixture

    def check(*overrides: str) -> None:
        cfg = config_lib.load(BASE_CPU, config_lib.parse_overrides([" ".join(overrides)]))
        check_corpus(cfg, tmp_path / "data", "base")

    published = (
        "data.train_from=published",
        "data.eval_from=published",
        "data.valid_mixtures=4",
        "data.test_mixtures=4",
    )
    with pytest.raises(
        config_lib.ConfigError,
        match=r"valid_mixtures\.tsv has 1 mixtures, 4 needed \(e\.g\. "
        r"--override data\.valid_mixtures=1 to use the 1 there are, or "
        r"--override data\.eval_from=sources to draw them",
    ):
        check(*published)
    with pytest.raises(
        config_lib.ConfigError,
        match=r"test_mixtures\.tsv has 1 mixtures, 4 needed \(e\.g\. "
        r"--override data\.test_mixtures=1 ",
    ):
        check(*published, "data.valid_mixtures=1")  # the fix the first message names
    check(*published, "data.valid_mixtures=1", "data.test_mixtures=1")


# ----------------------------------------------------------------------------- leftovers of killed writers

from small_disk import run_with_folder_on  # noqa: E402

from ugr.io import atomic  # noqa: E402

LAUNCH = Path(__file__).resolve().parents[1] / "tools" / "launch.sh"


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_temporaries_of_killed_writers_are_removed_and_nothing_else(tmp_path):
    figures = tmp_path / "figures"
    figures.mkdir()
    host, dead, alive = atomic._HOST, _dead_pid(), os.getpid()
    stale = figures / f".curve.png.{host}-{dead}.abcd_123.tmp"  # zero bytes: the writer was killed
    live = figures / f".table.png.{host}-{alive}.k2j4h5g6.tmp"  # a writer at work
    other_host = figures / f".other.png.ffffff-{dead}.zzzz9999.tmp"  # a writer elsewhere: kept an hour
    old_style = figures / ".old.png.q1w2e3r4.tmp"  # no pid in the name: by age
    mine = figures / ".notes.png.tmp"  # not of atomic_write's naming
    for path in (stale, live, other_host, old_style, mine):
        path.write_bytes(b"")
    past = time.time() - 2 * atomic.STALE_SECONDS
    os.utime(old_style, (past, past))
    assert atomic.remove_stale_temporaries(figures, "*.txt") == []  # the pattern picks the targets
    assert sorted(atomic.remove_stale_temporaries(figures, "*.png")) == sorted([stale, old_style])
    assert not stale.exists() and not old_style.exists()
    assert live.exists() and other_host.exists() and mine.exists()
    os.utime(other_host, (past, past))
    assert atomic.remove_stale_temporaries(figures) == [other_host]


def test_the_first_atomic_write_into_a_folder_removes_what_a_killed_writer_left(tmp_path):
    folder = tmp_path / "report" / "figures"
    folder.mkdir(parents=True)
    leftover = folder / f".curve.png.{atomic._HOST}-{_dead_pid()}.a1b2c3d4.tmp"
    leftover.write_bytes(b"")
    # A writer killed hard (no cleanup runs): its temporary file carries its pid, which is then gone.
    code = (
        "import os, signal; from ugr.io.atomic import atomic_write; "
        f"atomic_write({str(folder / 'killed.png')!r}, lambda h: os.kill(os.getpid(), signal.SIGKILL))"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == -9
    (killed,) = folder.glob(".killed.png.*.tmp")
    atomic.atomic_write_text(folder / "fresh.png", "x")
    assert not leftover.exists() and not killed.exists()
    assert sorted(p.name for p in folder.iterdir()) == ["fresh.png"]


def test_launch_leaves_no_jobid_temporary_on_a_full_disk_and_removes_those_of_dead_launchers(tmp_path):
    ids = tmp_path / "ids"
    ids.mkdir()
    launch = shlex.join(
        [str(LAUNCH), "--log", str(tmp_path / "log" / "a.log"), "--jobid-file", str(ids / "score.jobid"), "--", "true"]
    )
    done = run_with_folder_on(
        ids,
        ["sh", "-c", f"{launch}; status=$?; echo LISTING $(ls -A {ids}); exit $status"],
        setup=["sh", "-c", f"dd if=/dev/zero of={ids}/fill bs=1k 2>/dev/null; true"],
    )
    assert done.returncode != 0, done.stderr
    assert f"cannot write {ids}/score.jobid (check that {ids} is writable and has free space)" in done.stderr
    listing = [line for line in done.stdout.splitlines() if line.startswith("LISTING")][-1].split()[1:]
    assert listing == ["fill"], listing  # no score.jobid.tmp.PID left on the full disk
    # Leftovers of launchers that were killed (their pid is gone) are removed; a running one's are kept.
    dead, alive = _dead_pid(), os.getpid()
    (ids / f"score.jobid.tmp.{dead}").write_text("")
    (ids / f"score.jobid.tmp.{alive}").write_text("")
    result = subprocess.run(
        [str(LAUNCH), "--log", str(tmp_path / "log" / "b.log"), "--jobid-file", str(ids / "score.jobid"), "--", "true"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in ids.iterdir()) == ["score.jobid", f"score.jobid.tmp.{alive}"]
    assert (ids / "score.jobid").read_text() == "local\n"
