"""The job scripts of jobs/ on a real local Slurm cluster (see conftest.py)."""
import json
import math
import os
import re
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from conftest import MFRES, REPO

COMPARED = ["step", "time", "loss", "test_loss", "test_accuracy", "grad_norm", "shallow_gap"]
CONFIG = os.path.join(REPO, "jobs", "configs", "default.ini")


def metrics(run):
    with open(os.path.join(run, "metrics.tsv")) as f:
        header = f.readline().rstrip("\n").split("\t")
        rows = np.array([[float(v) for v in line.split("\t")] for line in f])
    return {name: rows[:, i] for i, name in enumerate(header)}


def final_particles(run, step):
    with h5py.File(os.path.join(run, "checkpoints", f"ckpt-{step:08d}.h5"), "r") as f:
        return [f[f"particles/blocks/{k}/value"][()] for k in "uwb"]


def assert_same_run(a, b, step):
    ma, mb = metrics(a), metrics(b)
    for col in COMPARED:
        np.testing.assert_array_equal(mb[col], ma[col], err_msg=col)
    for x, y in zip(final_particles(a, step), final_particles(b, step)):
        assert np.array_equal(x, y)


HAND_RUNS = {}


def by_hand(cluster, run, *args):
    """The same run started by hand with mpirun, outside Slurm, in `run`;
    made once for each set of arguments, which later calls share. Returns
    the directory of the run."""
    if args in HAND_RUNS:
        return HAND_RUNS[args]
    env = {k: v for k, v in cluster.env.items() if not k.startswith("SLURM")}
    proc = subprocess.run(["mpirun", "--oversubscribe", "-n", "2", MFRES, "train", CONFIG, *args,
                           "--out", str(run)], capture_output=True, text=True,
                          env=dict(env, OPENBLAS_NUM_THREADS="1"), timeout=300)
    assert proc.returncode == 0, proc.stderr
    HAND_RUNS[args] = run
    return run


def lasting(seconds, seconds_per_step, log_every):
    """Arguments for a run of about `seconds` on this machine (at least four
    log intervals), and its number of steps."""
    steps = log_every * max(4, math.ceil(seconds / seconds_per_step / log_every))
    return ["--set", f"train.steps={steps}", "--set", f"output.log_every={log_every}"], steps


@pytest.fixture(scope="module")
def seconds_per_step(cluster, tmp_path_factory):
    """The default example's time per step on 2 ranks here, measured by hand:
    the tests that signal a running job size it in seconds, not steps, so
    that it is still running when the signal comes on a fast machine and
    does not take minutes on a slow one."""
    run = tmp_path_factory.mktemp("speed") / "run"
    by_hand(cluster, run, "--set", "train.steps=2000", "--set", "output.log_every=500")
    return float(np.median(metrics(run)["seconds_per_step"][1:]))


def job_log(run):
    return open(os.path.join(run, "job.log")).read()


def wait_for_lines(path, lines, timeout=120):
    """Until the file has more than `lines` lines."""
    end = time.time() + timeout
    while time.time() < end:
        if os.path.exists(path) and len(open(path).readlines()) > lines:
            return
        time.sleep(0.1)
    raise AssertionError(f"{path} did not grow past {lines} lines")


def test_two_node_job_requeued_then_continued_on_one_node(cluster, tmp_path,
                                                           seconds_per_step):
    """train.sbatch sized by sbatch's -N 2 --ntasks-per-node=2 alone: 4 ranks
    on 2 nodes (plain srun, the cluster's MpiDefault pmix, across both, each
    node with its own /tmp), requeued by `scontrol requeue` while it runs:
    Slurm stops it with SIGTERM, mfres checkpoints from both nodes, and the
    job restarts from that checkpoint and ends as the same run made by hand
    on one node. Then a job on one node continues it further."""
    run = tmp_path / "job"
    long, steps = lasting(6, seconds_per_step, 500)
    job = cluster.submit("-N", "2", "--ntasks-per-node=2", "-o", tmp_path / "slurm.out",
                         "jobs/train.sbatch", CONFIG, *long, "--out", run)
    wait_for_lines(run / "metrics.tsv", 2)
    cluster.run(["scontrol", "requeue", job], check=True)
    assert cluster.wait(job) == ["COMPLETED"]
    info = cluster.info(job)
    assert info["NodeList"] == "node[1-2]" and int(info["Restarts"]) >= 1
    log = job_log(run)
    assert "start 1 on node1, 4 tasks on 2 nodes, launcher srun, " in log, log
    assert "ranks 4, kernels " in log
    assert "restarting from" in log and "exited with status 0" in log
    assert f"step {steps}/{steps}" in open(tmp_path / "slurm.out").read()
    assert_same_run(by_hand(cluster, tmp_path / "hand", *long), run, steps)
    job = cluster.submit("-N", "1", "-n", "2", "-o", tmp_path / "more.out", "jobs/train.sbatch",
                         CONFIG, *long, "--set", f"train.steps={steps + 500}", "--out", run)
    assert cluster.wait(job) == ["COMPLETED"]
    last = job_log(run).split("mfres job ")[-1]
    assert ", 2 tasks on 1 nodes," in last and f"ckpt-{steps:08d}.h5" in last
    assert metrics(run)["step"][-1] == steps + 500


@pytest.mark.parametrize("launcher", ["srun --mpi=pmix --cpu-bind=none",
                                      "mpirun -x OPENBLAS_NUM_THREADS"])
def test_preempted_job_requeues_and_ends_as_if_uninterrupted(cluster, tmp_path, launcher,
                                                             seconds_per_step):
    """SIGUSR1 to the batch shell, as --signal=B:USR1@T sends it before the
    time limit: checkpoint, exit 3, requeue, restart, same final state. The
    launcher is a whole command line (MFRES_LAUNCHER), srun's or mpirun's."""
    run = tmp_path / "job"
    long, steps = lasting(6, seconds_per_step, 500)  # as the two-node test: one run by hand
    job = cluster.submit("-n", "2", "-o", tmp_path / "slurm.out", "jobs/train.sbatch", CONFIG,
                         *long, "--out", run, env={"MFRES_LAUNCHER": launcher})
    wait_for_lines(run / "metrics.tsv", 2)
    cluster.run(["scancel", "--signal=USR1", "--batch", job], check=True)
    assert cluster.wait(job) == ["COMPLETED"]
    log = job_log(run)
    assert f"launcher {launcher}" in log
    assert "stopped at step" in log and "requeueing (restart 1 of at most 20)" in log
    assert "start 2 on" in log and "restarting from" in log
    assert cluster.info(job)["Restarts"] == "1"
    assert_same_run(by_hand(cluster, tmp_path / "hand", *long), run, steps)


def test_real_time_limit(cluster, tmp_path, seconds_per_step):
    """A real time limit and Slurm's own early signal. slurmctld checks time
    limits every 30 s and sends the --signal warning at the first check less
    than T + 30 s before the limit: with --time=2 and B:USR1@60, 30 to 60 s
    into every start. The run needs about 70 s, so its first start is
    stopped with a checkpoint and requeued, and a later one finishes it."""
    run = tmp_path / "job"
    long, steps = lasting(70, seconds_per_step, 1000)
    job = cluster.submit("-n", "2", "--time=2", "--signal=B:USR1@60", "-o",
                         tmp_path / "slurm.out", "jobs/train.sbatch", CONFIG, *long,
                         "--out", run)
    assert cluster.wait(job, timeout=600) == ["COMPLETED"]
    log = job_log(run)
    assert int(cluster.info(job)["Restarts"]) >= 1
    assert "stopped at step" in log and "restarting from" in log
    assert "exited with status 0" in log and metrics(run)["step"][-1] == steps


def test_a_signal_before_mfres_starts_is_kept(cluster, tmp_path, seconds_per_step):
    """A signal as soon as the batch script has begun, before or just after
    it launches mfres, is held and forwarded once the ranks have started: the
    run still stops with a checkpoint and requeues, instead of the signal
    being lost or killing ranks that cannot yet handle it."""
    run = tmp_path / "job"
    long, steps = lasting(8, seconds_per_step, 500)
    job = cluster.submit("-n", "2", "-o", tmp_path / "slurm.out", "jobs/train.sbatch", CONFIG,
                         *long, "--out", run)
    wait_for_lines(run / "job.log", 0)  # the script's first line, just before the launch
    cluster.run(["scancel", "--signal=USR1", "--batch", job], check=True)
    assert cluster.wait(job) == ["COMPLETED"]
    log = job_log(run)
    assert "signal received while mfres started" in log, log
    assert "stopped at step" in log and "restarting from" in log
    assert cluster.info(job)["Restarts"] == "1"
    assert "exited with status 0" in log and metrics(run)["step"][-1] == steps


def test_restart_bound_stops_a_run_that_cannot_finish(cluster, tmp_path):
    run = tmp_path / "job"
    job = cluster.submit("-n", "2", "-o", tmp_path / "slurm.out", "jobs/train.sbatch", CONFIG,
                         "--set", "train.steps=10000000", "--set", "output.max_time=1",
                         "--out", run, env={"MFRES_MAX_RESTARTS": "1"})
    assert cluster.wait(job) == ["FAILED"]
    assert cluster.info(job)["ExitCode"] == "3:0"
    log = job_log(run)
    assert log.count("max_time reached") == 2
    assert "1 restarts reached MFRES_MAX_RESTARTS = 1; giving up" in log


def test_bad_configuration_fails_the_job_at_once(cluster, tmp_path):
    job = cluster.submit("-n", "1", "-o", tmp_path / "slurm.out", "jobs/train.sbatch", CONFIG,
                         "--set", "model.width=0", "--out", tmp_path / "job")
    assert cluster.wait(job) == ["FAILED"]
    assert cluster.info(job)["ExitCode"] == "2:0"
    assert "[model] width: 0 is out of range" in open(tmp_path / "slurm.out").read()


def test_study_array_requeues_a_task_and_runs_the_analysis_after(cluster, tmp_path,
                                                                  seconds_per_step):
    """jobs/study.sh --submit: an array job over 2 widths x 2 seeds (2 tasks
    at a time, the widest first) and an analysis job after it. The first
    task, requeued by `scontrol requeue` while it runs (Slurm stops it with
    SIGTERM, mfres checkpoints), continues from its checkpoint and ends as
    the same run made by hand; the analysis starts only when all 4 are done,
    under $PYTHON: a venv's interpreter, which marks that it started."""
    out = tmp_path / "study"
    long, steps = lasting(4, seconds_per_step, 500)
    venv, marker = tmp_path / "venv", tmp_path / "venv-started"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                    str(venv)], check=True)
    site = subprocess.run([venv / "bin" / "python", "-c", "import site; "
                           "print(site.getsitepackages()[0])"], capture_output=True, text=True,
                          check=True).stdout.strip()
    with open(os.path.join(site, "mfres_test_marker.pth"), "w") as f:
        f.write(f"import os; open({str(marker)!r}, 'a').write(os.getcwd() + '\\n')\n")
    env = dict(cluster.env, MFRES_STUDY_WIDTHS="64 256", MFRES_STUDY_SEEDS="2",
               MFRES_STUDY_THROTTLE="2", MFRES_STUDY_SBATCH="-n 2",
               PYTHON=str(venv / "bin" / "python"))
    proc = subprocess.run(["jobs/study.sh", "--submit", CONFIG, *long, "--out", str(out)],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    array, analysis = re.search(r"array job (\d+) \(4 tasks of up to 1 runs: the 4 of 4 runs "
                                r"not finished\)\nmfres study: analysis job (\d+)",
                                proc.stdout).groups()
    first = out / "L0004-M00000256" / "s001"
    wait_for_lines(first / "metrics.tsv", 2)
    cluster.run(["scontrol", "requeue", f"{array}_0"], check=True)
    assert cluster.wait(analysis, timeout=400) == ["COMPLETED"]
    assert cluster.wait(array) == ["COMPLETED"] * 4
    nodes = {field.split("=", 1)[1]
             for line in cluster.run(["scontrol", "-o", "show", "job", array]).stdout.splitlines()
             for field in line.split() if field.startswith("NodeList=")}
    assert nodes == {"node1", "node2"}  # two tasks at a time, one on each node
    log = job_log(first)
    assert "restarting from" in log and "exited with status 0" in log
    seed = 1 + 1000 * (4 + 100000 * 256)  # uncoupled: jobs/common.sh
    hand = by_hand(cluster, tmp_path / "hand", *long, "--set", f"init.seed={seed}",
                   "--set", f"train.seed={seed}")
    assert_same_run(hand, first, steps)
    for width in (64, 256):
        for s in (1, 2):
            assert metrics(out / f"L0004-M{width:08d}" / f"s{s:03d}")["step"][-1] == steps
    summary = json.load(open(out / "analysis" / "summary.json"))
    assert summary["widths"] == [64, 256] and summary["seeds"] == 2
    assert marker.exists(), "the analysis job did not run the venv's python"
    assert "fluctuation exponent (output)" in open(out / f"analysis-{analysis}.out").read()


def test_study_packs_runs_and_names_the_unfinished(cluster, tmp_path, seconds_per_step):
    """6 runs (3 widths x 2 seeds) and the test cluster's MaxArraySize = 4:
    2 runs per task, 3 tasks. The first task, preempted (SIGUSR1 to its
    batch shell) in its first run, requeues and runs both. One run cannot
    start (a file where its checkpoints/ belongs): its task fails, and the
    analysis job, started after the array whatever happened, fails naming
    that run instead of staying pending. Submitted again after the fix,
    only that run is queued, and the analysis runs."""
    out = tmp_path / "study"
    short, steps = lasting(3, seconds_per_step, 500)
    env = dict(cluster.env, MFRES_STUDY_WIDTHS="16 32 64", MFRES_STUDY_SEEDS="2",
               MFRES_STUDY_SBATCH="-n 1")
    bad = out / "L0004-M00000032" / "s002"
    bad.mkdir(parents=True)
    (bad / "checkpoints").write_text("not a folder\n")

    def submit(tasks, per, queued):
        proc = subprocess.run(["jobs/study.sh", "--submit", CONFIG, *short, "--out", str(out)],
                              capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return re.search(rf"array job (\d+) \({tasks} tasks of up to {per} runs: the {queued} "
                         rf"of 6 runs not finished\)\nmfres study: analysis job (\d+)",
                         proc.stdout).groups()

    array, analysis = submit(3, 2, 6)
    first = out / "L0004-M00000064" / "s001"
    wait_for_lines(first / "metrics.tsv", 2)
    cluster.run(["scancel", "--signal=USR1", "--batch", f"{array}_0"], check=True)
    assert cluster.wait(analysis) == ["FAILED"]
    assert sorted(cluster.wait(array)) == ["COMPLETED", "COMPLETED", "FAILED"]
    log = open(out / f"analysis-{analysis}.out").read()
    assert f"not analysed: 1 of 6 runs did not finish (submit again to run them):\n  {bad}" in log
    assert "requeueing" in job_log(first) and "restarting from" in job_log(first)
    assert metrics(out / "L0004-M00000064" / "s002")["step"][-1] == steps
    (bad / "checkpoints").unlink()
    array, analysis = submit(1, 1, 1)
    assert cluster.wait(analysis) == ["COMPLETED"]
    assert json.load(open(out / "analysis" / "summary.json"))["widths"] == [16, 32, 64]


def test_scaling_sbatch_writes_one_table(cluster, tmp_path):
    """Sized by sbatch alone (-N 2 --ntasks-per-node=2), the default sweep is
    1 and 2 tasks on one node, then 2 nodes x 2 tasks (srun -N 2 -n 4)."""
    tsv = tmp_path / "scaling.tsv"
    job = cluster.submit("-N", "2", "--ntasks-per-node=2", "-o", tmp_path / "slurm.out",
                         "jobs/scaling.sbatch", "--layers", "2", "--width", "3000", "--dim", "8",
                         "--batch", "32", "--steps", "3",
                         env={"MFRES_SCALING_REPEATS": "2", "MFRES_SCALING_TSV": str(tsv)})
    assert cluster.wait(job) == ["COMPLETED"]
    rows = [line.split("\t") for line in open(tsv).read().splitlines()]
    header, rows = rows[0], rows[1:]
    col = {name: i for i, name in enumerate(header)}
    assert [(r[col["label"]], r[col["ranks"]], r[col["width"]]) for r in rows] == 2 * [
        ("strong", "1", "3000"), ("weak", "1", "3000"), ("strong", "2", "3000"),
        ("weak", "2", "6000"), ("strong", "4", "3000"), ("weak", "4", "12000")]
    assert "== strong scaling, 4 tasks on 2 nodes" in open(tmp_path / "slurm.out").read()
    assert all(float(r[col["seconds_median"]]) > 0 for r in rows)
    out = open(tmp_path / "slurm.out").read()
    table = out[out.index("scaling table"):].splitlines()
    assert "speed-up" in table[1] and "(medians of 2 repeats;" in table[-2]
    # Each row is the median (here the mean) of its configuration's two repeats.
    printed = {(t.split()[0], t.split()[1]): float(t.split()[3]) for t in table[2:8]}
    for label, ranks in printed:
        times = [float(r[col["seconds_median"]]) for r in rows
                 if (r[col["label"]], r[col["ranks"]]) == (label, ranks)]
        assert abs(printed[label, ranks] - sum(times) / 2) < 1e-4


def test_study_task_sized_by_sbatch_runs_on_two_nodes(cluster, tmp_path):
    """A study's array task sized by sbatch alone (-N 2 --ntasks-per-node=2,
    as MFRES_STUDY_SBATCH passes it): its run has 4 ranks on 2 nodes."""
    out = tmp_path / "study"
    job = cluster.submit("--array=0", "-N", "2", "--ntasks-per-node=2", "-o",
                         tmp_path / "slurm.out", "jobs/study.sbatch", CONFIG,
                         "--set", "train.steps=100", "--set", "output.log_every=50",
                         "--out", out, env={"MFRES_STUDY_WIDTHS": "32", "MFRES_STUDY_SEEDS": "2"})
    assert cluster.wait(job) == ["COMPLETED"]
    log = job_log(out / "L0004-M00000032" / "s001")
    assert "4 tasks on 2 nodes" in log and "ranks 4, kernels " in log, log
    assert "exited with status 0" in log


def test_scaling_without_slurm_one_mode(tmp_path):
    """MFRES_SCALING_MODES runs one sweep; a wrong mode is refused before any
    run. Outside Slurm the script launches with mpirun."""
    tsv = tmp_path / "weak.tsv"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM")}
    env.update(MFRES=MFRES, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               MFRES_SCALING_TASKS="1 2", MFRES_SCALING_REPEATS="1",
               MFRES_SCALING_MODES="weak", MFRES_SCALING_TSV=str(tsv))
    cmd = ["bash", "jobs/scaling.sbatch", "--layers", "1", "--width", "500", "--dim", "4",
           "--batch", "8", "--steps", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    labels = [line.split("\t")[0] for line in open(tsv).read().splitlines()[1:]]
    assert labels == ["weak", "weak"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=60,
                          env=dict(env, MFRES_SCALING_MODES="strong wek"))
    assert proc.returncode == 2
    assert "MFRES_SCALING_MODES: 'wek' is neither strong nor weak" in proc.stderr
    assert "== strong" not in proc.stdout
