"""tools/launch.sh: the local backend, argument errors, and the slurm backend on a
real one-node cluster (tools/slurm/cluster.sh, fixture `slurm_cluster`)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

LAUNCH = Path(__file__).resolve().parents[1] / "tools" / "launch.sh"
FOOTER = re.compile(r"^# Ended \(code (-?\d+)\) at .+, elapsed time \d+ seconds$")
SLURM_CONF = """\
# a comment line
[cpu]
--time=5:00   # trailing comment
[gpu]
--time=7:00
--gres=gpu:{ngpu}
--comment=ngpu{ngpu}
[tasks]
--ntasks-per-node={ngpu}
--nodes={nodes}
"""


def launch(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(LAUNCH), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def footer_code(log: Path) -> int:
    match = FOOTER.match(log.read_text().splitlines()[-1])
    assert match, f"{log} does not end with the exit-code footer:\n{log.read_text()}"
    return int(match.group(1))


# ---------------------------------------------------------------------- local


def test_local_log_has_command_host_output_and_exit_code(tmp_path: Path) -> None:
    result = launch(
        "--log", "exp/log/stage.log", "--", "bash", "-c", "echo to-stdout; echo to-stderr >&2", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    log = tmp_path / "exp/log/stage.log"
    lines = log.read_text().splitlines()
    assert lines[0] == "# bash -c 'echo to-stdout; echo to-stderr >&2'"
    assert lines[1].startswith("# Started at ") and socket.gethostname() in lines[1]
    assert "to-stdout" in lines and "to-stderr" in lines
    assert footer_code(log) == 0
    # The output is also shown live (on stderr, so progress bars are visible).
    assert "to-stdout" in result.stderr and "to-stderr" in result.stderr
    assert result.stdout == ""


def test_python_output_reaches_the_log_in_order(tmp_path: Path) -> None:
    """Unbuffered: with a pipe or file as stdout Python would hold stdout back."""
    code = "import sys; print('first'); print('second', file=sys.stderr); print('third')"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    assert launch("--log", "py.log", "--", sys.executable, "-c", code, cwd=tmp_path, env=env).returncode == 0
    assert (tmp_path / "py.log").read_text().splitlines()[3:6] == ["first", "second", "third"]


def test_local_failure_is_the_exit_status_and_names_the_log(tmp_path: Path) -> None:
    result = launch("--log", "fail.log", "--", "bash", "-c", "exit 7", cwd=tmp_path)
    assert result.returncode != 0
    assert footer_code(tmp_path / "fail.log") == 7
    assert "fail.log" in result.stderr


def test_local_array_runs_every_task_with_its_index_and_reports_the_failed_one(tmp_path: Path) -> None:
    result = launch(
        "--array",
        "3",
        "--log",
        "log/task.%a.log",
        "--jobid-file",
        "ids/stage",
        "--",
        "bash",
        "-c",
        'echo "index=$UGR_TASK_ID"; [ "$UGR_TASK_ID" != 1 ]',
        cwd=tmp_path,
    )
    assert result.returncode != 0
    for task in range(3):
        log = tmp_path / f"log/task.{task}.log"
        assert f"index={task}" in log.read_text().splitlines()
        assert footer_code(log) == (1 if task == 1 else 0)
    failure = result.stderr.strip().splitlines()[-1]
    assert "1 of 3 task(s) failed" in failure and "task.1.log" in failure and "task.0.log" not in failure
    assert (tmp_path / "ids/stage").read_text() == "local\n"


def test_local_max_jobs_runs_tasks_side_by_side_sharing_the_cores(tmp_path: Path) -> None:
    """--max-jobs 2: tasks 0 and 1 overlap in time (each waits until both have started), task 2 starts after
    one of them ended; each gets OMP_NUM_THREADS = cores / 2, its own log, and a failure is still reported."""
    script = (
        'echo "threads=$OMP_NUM_THREADS"; date +%s.%N >"start.$UGR_TASK_ID"; printf "bar 1\\rbar 2\\n"; '
        'if [ "$UGR_TASK_ID" != 2 ]; then for i in $(seq 100); do [ -e start.0 ] && [ -e start.1 ] && break; '
        'sleep 0.05; done; [ -e start.0 ] && [ -e start.1 ]; fi; status=$?; date +%s.%N >"end.$UGR_TASK_ID"; '
        '[ $status = 0 ] && [ "$UGR_TASK_ID" != 2 ]'
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    result = launch(
        "--array", "3", "--max-jobs", "2", "--log", "log/t.%a.log", "--", "bash", "-c", script, cwd=tmp_path, env=env
    )
    assert [footer_code(tmp_path / f"log/t.{task}.log") for task in range(3)] == [0, 0, 1], result.stderr
    start, end = (
        {task: float((tmp_path / f"{what}.{task}").read_text()) for task in range(3)} for what in ("start", "end")
    )
    assert start[2] >= min(end[0], end[1]), "a third task ran while two were running"
    threads = max(1, os.cpu_count() // 2)
    for task in range(3):
        assert f"threads={threads}" in (tmp_path / f"log/t.{task}.log").read_text().splitlines()
    assert result.returncode != 0 and "1 of 3 task(s) failed; see log/t.2.log" in result.stderr
    # On stderr each line is tagged with its task's log; a progress bar shows its last state.
    assert f"[t.1] threads={threads}" in result.stderr.splitlines() and "[t.0] bar 2" in result.stderr.splitlines()
    assert (
        launch(
            "--array",
            "2",
            "--max-jobs",
            "2",
            "--log",
            "log/u.%a.log",
            "--",
            "bash",
            "-c",
            'echo "threads=$OMP_NUM_THREADS"',
            cwd=tmp_path,
            env={**env, "OMP_NUM_THREADS": "3"},
        ).returncode
        == 0
    )
    assert "threads=3" in (tmp_path / "log/u.1.log").read_text().splitlines()  # a user's setting stands


def test_local_interrupt_stops_every_running_task(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the launcher) reaches tasks running side by side, which background jobs of a script
    would otherwise ignore.

    The launcher starts as from a terminal, SIGINT at its default: a suite started in the background
    (``nohup tools/test.sh &``) hands its children SIGINT ignored, which bash can then not trap.
    """
    proc = subprocess.Popen(
        [
            str(LAUNCH),
            "--array",
            "2",
            "--max-jobs",
            "2",
            "--log",
            "log/s.%a.log",
            "--",
            sys.executable,
            "-c",
            "import time, os; open(f'up.{os.getpid()}', 'w'); time.sleep(60)",
        ],
        cwd=tmp_path,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 30
    while len(list(tmp_path.glob("up.*"))) < 2 and time.time() < deadline:
        time.sleep(0.1)
    pids = [int(p.name.split(".")[1]) for p in tmp_path.glob("up.*")]
    assert len(pids) == 2
    proc.send_signal(2)
    assert proc.wait(timeout=30) == 130
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists(), f"task process {pid} still runs"


def test_local_task_id_is_zero_without_array(tmp_path: Path) -> None:
    result = launch("--log", "a.log", "--", "bash", "-c", 'echo "index=$UGR_TASK_ID"', cwd=tmp_path)
    assert result.returncode == 0
    assert "index=0" in (tmp_path / "a.log").read_text().splitlines()


def test_help_exits_zero_with_the_interface(tmp_path: Path) -> None:
    result = launch("--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "--wait-for" in result.stdout and "--jobid-file" in result.stdout


@pytest.mark.parametrize("ids", ["local:local", ""])
def test_wait_for_jobs_that_ran_locally_or_no_jobs_returns_at_once(tmp_path: Path, ids: str) -> None:
    assert launch("--wait-for", ids, cwd=tmp_path).returncode == 0


SLURM_CLIENTS = ("scontrol", "sbatch", "srun", "squeue", "scancel", "sacct")


def path_without_slurm(tmp_path: Path, scontrol: str | None = None) -> str:
    """A PATH with every tool of this one but Slurm's clients; with ``scontrol``, a script of that text as scontrol."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for folder in os.environ["PATH"].split(os.pathsep):
        for tool in Path(folder).glob("*") if Path(folder).is_dir() else []:
            if tool.name not in SLURM_CLIENTS and not (bin_dir / tool.name).exists():
                (bin_dir / tool.name).symlink_to(tool)
    if scontrol is not None:
        (bin_dir / "scontrol").write_text(f"#!/bin/sh\n{scontrol}\n")
        (bin_dir / "scontrol").chmod(0o755)
    return str(bin_dir)


def test_wait_for_slurm_jobs_without_slurm_says_so(tmp_path: Path) -> None:
    result = launch("--wait-for", "123:456", cwd=tmp_path, env={**os.environ, "PATH": path_without_slurm(tmp_path)})
    assert result.returncode == 1
    assert "--wait-for 123 456: these are Slurm job ids, but scontrol (Slurm's client) is not on PATH" in result.stderr
    assert "MinJobAge" not in result.stderr


def test_wait_for_with_an_unreachable_controller_passes_on_what_scontrol_says(tmp_path: Path) -> None:
    scontrol = "echo 'slurm_load_jobs error: Unable to contact slurm controller (connect failure)' >&2; exit 1"
    env = {**os.environ, "PATH": path_without_slurm(tmp_path, scontrol)}
    result = launch("--wait-for", "123", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert "cannot get the state of job 123: slurm_load_jobs error: Unable to contact slurm controller" in result.stderr
    assert "MinJobAge" not in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--", "touch", "ran"], "missing --log"),
        (["--log", "x.log"], "no command given"),
        (["--backend", "pbs", "--log", "x.log", "--", "touch", "ran"], "unknown backend 'pbs'"),
        (["--backend", "slurm", "--log", "x.log", "--", "touch", "ran"], "needs --conf FILE"),
        (
            ["--backend", "slurm", "--conf", "nowhere.conf", "--log", "x.log", "--", "touch", "ran"],
            "slurm conf 'nowhere.conf' (--conf) does not exist",
        ),
        (
            ["--backend", "slurm", "--conf", "cpu_only.conf", "--kind", "gpu", "--log", "x.log", "--", "touch", "ran"],
            "kind 'gpu' (--kind) has no [gpu] section in cpu_only.conf (it has: cpu)",
        ),
        (
            ["--backend", "slurm", "--conf", "sets_output.conf", "--log", "x.log", "--", "touch", "ran"],
            "sets_output.conf:2: '--output=elsewhere.log' is set by launch.sh itself",
        ),
        (["--array", "0", "--log", "x.log", "--", "touch", "ran"], "--array '0' must be a positive integer"),
        (["--max-jobs", "0", "--log", "x.log", "--", "touch", "ran"], "--max-jobs '0' must be a positive integer"),
        (["--log", "x.%j.log", "--", "touch", "ran"], "'%' may only appear as '%a'"),
        (["--after", "12:abc", "--log", "x.log", "--", "touch", "ran"], "'abc' is not a job id"),
        (["--bogus", "1", "--log", "x.log", "--", "touch", "ran"], "unknown option '--bogus'"),
    ],
)
def test_bad_arguments_fail_clearly_before_running_anything(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "cpu_only.conf").write_text("[cpu]\n--time=1:00\n")
    (tmp_path / "sets_output.conf").write_text("[cpu]\n--output=elsewhere.log\n")
    result = launch(*args, cwd=tmp_path)
    assert result.returncode == 1
    assert message in result.stderr
    assert not (tmp_path / "ran").exists()


# ---------------------------------------------------------------------- slurm


def submit(tmp_path: Path, env: dict[str, str], *args: str) -> str:
    result = launch("--backend", "slurm", "--conf", "slurm.conf", *args, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    assert re.fullmatch(r"\d+", job_id), result.stdout
    return job_id


def wait_for(tmp_path: Path, env: dict[str, str], *ids: str) -> subprocess.CompletedProcess:
    return launch("--backend", "slurm", "--wait-for", ":".join(ids), cwd=tmp_path, env=env)


def job_fields(job_id: str, env: dict[str, str]) -> str:
    return subprocess.run(
        ["scontrol", "show", "job", "-o", job_id], env=env, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def slurm(tmp_path: Path, slurm_cluster: dict[str, str]) -> dict[str, str]:
    (tmp_path / "slurm.conf").write_text(SLURM_CONF)
    return slurm_cluster


@pytest.mark.slurm
def test_slurm_chain_runs_after_its_dependency_and_wait_blocks_until_done(
    tmp_path: Path, slurm: dict[str, str]
) -> None:
    first = submit(
        tmp_path,
        slurm,
        "--log",
        "log/a.log",
        "--jobid-file",
        "ids/a",
        "--",
        "bash",
        "-c",
        "sleep 2; echo made-by-a > a.txt",
    )
    second = submit(tmp_path, slurm, "--after", first, "--log", "log/b.log", "--", "bash", "-c", "cat a.txt > b.txt")
    assert (tmp_path / "ids/a").read_text() == f"{first}\n"
    assert not (tmp_path / "b.txt").exists()
    result = wait_for(tmp_path, slurm, first, second)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "b.txt").read_text() == "made-by-a\n"
    for name in ("a", "b"):
        log = tmp_path / f"log/{name}.log"
        assert footer_code(log) == 0
        assert "slurm job" in log.read_text().splitlines()[1]


@pytest.mark.slurm
def test_slurm_array_tasks_write_their_own_logs(tmp_path: Path, slurm: dict[str, str]) -> None:
    job = submit(
        tmp_path, slurm, "--array", "2", "--log", "log/sweep.%a.log", "--", "bash", "-c", 'echo "index=$UGR_TASK_ID"'
    )
    assert wait_for(tmp_path, slurm, job).returncode == 0
    for task in range(2):
        log = tmp_path / f"log/sweep.{task}.log"
        assert f"index={task}" in log.read_text().splitlines()
        assert f"slurm job {job}_{task}," in log.read_text()
        assert footer_code(log) == 0


@pytest.mark.slurm
def test_slurm_failure_cancels_dependents_and_wait_fails(tmp_path: Path, slurm: dict[str, str]) -> None:
    failing = submit(tmp_path, slurm, "--log", "log/a.log", "--", "bash", "-c", "exit 3")
    child = submit(tmp_path, slurm, "--after", failing, "--log", "log/b.log", "--", "touch", "b-ran")
    grandchild = submit(tmp_path, slurm, "--after", child, "--log", "log/c.log", "--", "touch", "c-ran")
    result = wait_for(tmp_path, slurm, grandchild)
    assert result.returncode == 1
    assert f"job {grandchild} (c) CANCELLED" in result.stderr
    assert "DependencyNeverSatisfied" in result.stderr
    result = wait_for(tmp_path, slurm, failing, child)
    assert result.returncode == 1
    assert f"job {failing} (a) FAILED, exit code 3:0" in result.stderr
    assert "JobState=CANCELLED" in job_fields(child, slurm)
    assert not (tmp_path / "b-ran").exists() and not (tmp_path / "c-ran").exists()
    assert footer_code(tmp_path / "log/a.log") == 3


@pytest.mark.slurm
def test_slurm_job_gets_conf_options_directory_and_environment(tmp_path: Path, slurm: dict[str, str]) -> None:
    env = {**slurm, "UGR_TEST_VALUE": "from the submitting shell"}
    job = submit(
        tmp_path,
        env,
        "--kind",
        "gpu",
        "--ngpu",
        "0",
        "--name",
        "probe",
        "--log",
        "probe.log",
        "--",
        "bash",
        "-c",
        'echo "$UGR_TEST_VALUE" > env.txt; pwd > pwd.txt',
    )
    fields = job_fields(job, slurm)
    for expected in (
        "JobName=probe",
        "TimeLimit=00:07:00",
        "TresPerNode=gres:gpu:0",
        "Comment=ngpu0",
        f"WorkDir={tmp_path}",
        "Requeue=1",
    ):
        assert expected in fields.split(), fields
    assert wait_for(tmp_path, slurm, job).returncode == 0
    assert (tmp_path / "env.txt").read_text() == "from the submitting shell\n"
    assert Path((tmp_path / "pwd.txt").read_text().strip()) == tmp_path


@pytest.mark.slurm
def test_slurm_job_forwards_usr1_to_the_command(tmp_path: Path, slurm: dict[str, str]) -> None:
    """A conf's --signal=B:USR1@90 signals only the batch shell before the time
    limit; Lightning's auto-requeue needs it to reach the Python process."""
    (tmp_path / "waits.py").write_text(
        "import signal, sys, time\n"
        "signal.signal(signal.SIGUSR1, lambda *_: (print('got USR1', flush=True), sys.exit(0)))\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
        "sys.exit(1)\n"
    )
    job = submit(tmp_path, slurm, "--log", "usr1.log", "--", sys.executable, "waits.py")
    log = tmp_path / "usr1.log"
    deadline = time.monotonic() + 30
    while "ready" not in log.read_text().splitlines():
        assert time.monotonic() < deadline, f"job {job} did not start:\n{log.read_text()}"
        time.sleep(0.2)
    subprocess.run(["scancel", "--batch", "--signal=USR1", job], env=slurm, check=True)
    assert wait_for(tmp_path, slurm, job).returncode == 0
    assert "got USR1" in log.read_text().splitlines()
    assert footer_code(log) == 0


@pytest.mark.slurm
def test_slurm_requeued_job_runs_again_under_the_same_log_and_wait_sees_the_end(
    tmp_path: Path, slurm: dict[str, str]
) -> None:
    """Preemption or `scontrol requeue`: the job stops on SIGTERM, is started again
    (SLURM_RESTART_COUNT=1) and appends to its log; --wait-for is not fooled by
    the stopped first run."""
    job = submit(
        tmp_path,
        slurm,
        "--log",
        "requeue.log",
        "--",
        "bash",
        "-c",
        'echo "run ${SLURM_RESTART_COUNT:-0}"; [ "${SLURM_RESTART_COUNT:-0}" != 0 ] || sleep 60',
    )
    log = tmp_path / "requeue.log"
    deadline = time.monotonic() + 30
    while "run 0" not in log.read_text().splitlines():
        assert time.monotonic() < deadline, f"job {job} did not start:\n{log.read_text()}"
        time.sleep(0.2)
    subprocess.run(["scontrol", "requeue", job], env=slurm, check=True)
    result = wait_for(tmp_path, slurm, job)
    assert result.returncode == 0, result.stderr + log.read_text()
    lines = log.read_text().splitlines()
    assert "run 1" in lines
    assert [int(m.group(1)) for m in map(FOOTER.match, lines) if m] == [143, 0], "\n".join(lines)
    starts = [line for line in lines if line.startswith("# Started at")]
    assert [s.rsplit(", ", 1)[1] for s in starts] == ["restart 0", "restart 1"]


@pytest.mark.slurm
def test_slurm_job_of_several_tasks_runs_the_command_once_per_task_under_srun(
    tmp_path: Path, slurm: dict[str, str]
) -> None:
    """Lightning's DDP on Slurm: one process per GPU, each told its rank by srun
    (SLURM_PROCID); tried here with 2 CPU tasks (no GPU on the test machine)."""
    job = submit(
        tmp_path,
        slurm,
        "--kind",
        "tasks",
        "--ngpu",
        "2",
        "--nodes",
        "1",
        "--log",
        "tasks.log",
        "--",
        "bash",
        "-c",
        'echo "rank=$SLURM_PROCID of $SLURM_NTASKS task=$UGR_TASK_ID"',
    )
    assert wait_for(tmp_path, slurm, job).returncode == 0
    lines = (tmp_path / "tasks.log").read_text().splitlines()
    assert sorted(line for line in lines if line.startswith("rank=")) == ["rank=0 of 2 task=0", "rank=1 of 2 task=0"]
    assert len([line for line in lines if line.startswith("# Started at")]) == 1
    assert footer_code(tmp_path / "tasks.log") == 0
    assert "NumTasks=2" in job_fields(job, slurm).split()


@pytest.mark.slurm
def test_slurm_failing_task_of_several_fails_the_job(tmp_path: Path, slurm: dict[str, str]) -> None:
    job = submit(
        tmp_path,
        slurm,
        "--kind",
        "tasks",
        "--ngpu",
        "2",
        "--log",
        "tasks.log",
        "--",
        "bash",
        "-c",
        '[ "$SLURM_PROCID" = 0 ] || exit 5; sleep 30',
    )
    result = wait_for(tmp_path, slurm, job)
    assert result.returncode == 1 and f"job {job} (tasks) FAILED" in result.stderr
    assert footer_code(tmp_path / "tasks.log") != 0
