"""The command line: help, version, and bad input that must stop every rank
with exit status 2 and a message naming the problem, without hanging and
without touching existing files."""
import os
import re
import resource
import subprocess

import numpy as np
import pytest

from conftest import ENV, MFRES, MPIRUN, mfres, read_metrics, write_config


def test_help_lists_every_key_with_its_default(tmp_path, small_config):
    out = mfres("--help", check=True).stdout
    assert "usage: mfres train CONFIG.ini" in out
    mfres("train", small_config, "--set", "train.steps=1", "--out", tmp_path / "run", check=True)
    resolved = open(tmp_path / "run" / "config.ini").read()
    keys = re.findall(r"^(\w+) = ", resolved, re.M)
    assert len(keys) >= 30
    for key in keys:
        assert re.search(rf"^\s+{key} = ", out, re.M), key
    assert re.search(r"^\s+width = 256\s+particles", out, re.M)


def test_version():
    out = mfres("--version", check=True).stdout
    assert out.startswith("mfres ") and "compiler:" in out
    # The widest kernel path this CPU has (the kernel's own flags for it).
    flags = set(open("/proc/cpuinfo").read().split())
    want = ("avx512" if {"avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl"} <= flags
            else "avx2" if {"avx2", "fma"} <= flags else "generic")
    if os.uname().machine != "x86_64":
        want = "generic"
    assert re.search(rf"^kernels: {want} \(built: ", out, re.M), out
    assert "\ntarget: any CPU of its architecture\n" in out


def bad_run(tmp_path, text, *extra, ranks=2):
    """Run a bad configuration into a run directory holding a precious file."""
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / "metrics.tsv").write_text("precious\n")
    cfg = write_config(tmp_path / "bad.ini", text)
    proc = mfres("train", cfg, "--out", run, *extra, ranks=ranks, timeout=60)
    assert (run / "metrics.tsv").read_text() == "precious\n"
    assert not (run / "config.ini").exists()
    return proc, cfg


@pytest.mark.parametrize("text, message", [
    ("[model]\nlayers = 2\nwidht = 8\n", ":3: [model] widht: unknown key"),
    ("[model]\nwidth = -4\n", ":2: [model] width: -4 is out of range (must be >= 1)"),
    ("[model]\nactivation = gelu\n",
     ":2: [model] activation: unknown value 'gelu' (choose one of: tanh, relu, sigmoid, softplus)"),
    ("[data]\nkind = file\nfile = /nonexistent/data.h5\n",
     "data.file '/nonexistent/data.h5': cannot open: No such file or directory"),
    ("[data]\nsamples = 100\n[train]\nbatch = 101\n",
     "train.batch = 101 is larger than data.samples = 100"),
    ("[data]\nsamples = 2305843009213693953\n",
     "data.samples = 2305843009213693953 is larger than 2147483647"),
    ("[data]\ntest_samples = 4611686018427387904\n",
     "data.test_samples = 4611686018427387904 is larger than 2147483647"),
    ("[data]\nteacher_layers = 4294967296\nteacher_width = 4294967296\n",
     "data.teacher_layers x data.teacher_width = 4294967296 x 4294967296 is too many"),
])
def test_bad_configuration_exits_2_on_every_rank(tmp_path, text, message):
    proc, cfg = bad_run(tmp_path, text)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    if message.startswith(":"):
        assert cfg + message in proc.stderr
    assert proc.stderr.count("mfres: error:") == 1  # one rank explains, all stop


def test_bad_override(tmp_path):
    proc, _ = bad_run(tmp_path, "[model]\nwidth = 8\n", "--set", "model.layers=zero", ranks=3)
    assert proc.returncode == 2
    assert "--set model.layers=zero: [model] layers: 'zero' is not an integer" in proc.stderr


@pytest.mark.parametrize("args, message", [
    (["train"], "train needs a configuration file"),
    (["train", "a.ini", "--bogus"], "unknown option '--bogus'"),
    (["train", "a.ini", "b.ini"], "more than one configuration file"),
    (["train", "a.ini", "--set"], "--set needs a value"),
    (["train", "a.ini", "--restart", ""], "--restart needs a value"),
    (["train", "a.ini", "--out", ""], "--out needs a value"),
    (["fly"], "unknown command 'fly'"),
    ([], "no command"),
])
def test_usage_errors(args, message):
    proc = mfres(*args, ranks=2, timeout=60)
    assert proc.returncode == 2
    assert message in proc.stderr


def test_unwritable_run_directory(tmp_path, small_config):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = mfres("train", small_config, "--out", blocker / "run", ranks=2, timeout=60)
    assert proc.returncode == 1
    assert f"cannot create run directory '{blocker}/run'" in proc.stderr


def test_divergence_exits_4(tmp_path, small_config):
    proc = mfres("train", small_config, "--set", "train.lr=1e30", "--set",
                 "model.activation=relu", "--out", tmp_path / "run", ranks=2, timeout=60)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "diverged at step" in proc.stderr


@pytest.mark.parametrize("command", ["train", "bench"])
def test_generic_openblas_core_is_reported(tmp_path, small_config, monkeypatch, command):
    """OpenBLAS 0.3.21 can fall back to the generic Prescott core on new CPUs;
    mfres names the core and, on an AVX2 CPU, warns with the OPENBLAS_CORETYPE
    fix, before the work starts."""
    import conftest
    monkeypatch.setitem(conftest.ENV, "OPENBLAS_CORETYPE", "Prescott")
    if command == "train":
        args = (small_config, "--set", "train.steps=1", "--out", tmp_path / "run")
    else:
        args = ("--layers", "1", "--width", "100", "--dim", "4", "--batch", "8", "--steps", "1")
    proc = mfres(command, *args, ranks=2, check=True)
    assert "OpenBLAS core Prescott" in proc.stdout
    avx2 = " avx2 " in open("/proc/cpuinfo").read().replace("\n", " ")
    assert proc.stderr.count("Set OPENBLAS_CORETYPE=") == (1 if avx2 else 0), proc.stderr


def test_readme_documents_every_key():
    """Every key of `mfres --help` has a row in jobs/configs/README.md, with the
    same default."""
    out = mfres("--help", check=True).stdout
    readme = open(os.path.join(os.path.dirname(__file__), "..", "..", "jobs", "configs",
                               "README.md")).read()
    section = None
    for line in out.splitlines():
        m = re.match(r"^  \[(\w+)\]$", line)
        if m:
            section = m.group(1)
            continue
        m = re.match(r"^    (\w+) = (\S+)", line)
        if m and section:
            key, default = m.groups()
            row = f"| `[{section}] {key}` | {default} |"
            assert row in readme, row


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="no /dev/shm")
def test_work_sharing_too_large_for_shared_memory(tmp_path, small_config, monkeypatch):
    """A node's particles that cannot fit in the shared-memory folder (here
    Open MPI is pointed at /proc, which has no room) are refused before any
    allocation (a full tmpfs would otherwise end the run with SIGBUS)."""
    import conftest
    monkeypatch.setitem(conftest.ENV, "OMPI_MCA_osc_sm_backing_directory", "/proc")
    proc = mfres("train", small_config, "--set", "train.share_work=node", "--out",
                 tmp_path / "run", ranks=2)
    assert proc.returncode != 0
    assert re.search(r"train.share_work = node: this node's particles need [0-9.]+ GiB of "
                     r"shared memory but /proc has 0.00 GiB free", proc.stderr), proc.stderr


def test_work_sharing_by_default_gives_way(tmp_path, small_config, monkeypatch):
    """train.share_work = auto (the default) shares the work on several ranks,
    and without room for the shared memory (here Open MPI is pointed at
    /proc, which has none) warns and runs without it, to the same results
    bit for bit."""
    import conftest
    shared = mfres("train", small_config, "--out", tmp_path / "shared", ranks=2, check=True)
    assert re.search(r"work sharing: \d+ of \d+ chunk evaluations", shared.stdout), shared.stdout
    monkeypatch.setitem(conftest.ENV, "OMPI_MCA_osc_sm_backing_directory", "/proc")
    alone = mfres("train", small_config, "--out", tmp_path / "alone", ranks=2, check=True)
    assert re.search(r"train.share_work = auto: this node's particles need [0-9.]+ GiB of "
                     r"shared memory but /proc has 0.00 GiB free: no work sharing",
                     alone.stderr), alone.stderr
    assert "work sharing:" not in alone.stdout
    assert read_metrics(tmp_path / "alone").keys() == read_metrics(tmp_path / "shared").keys()
    for col, values in read_metrics(tmp_path / "shared").items():
        if "time" not in col and "seconds" not in col:
            assert np.array_equal(read_metrics(tmp_path / "alone")[col], values, equal_nan=True), col


def test_exit_statuses_agree_between_mfres_and_the_job_scripts():
    """enum mf_exit (include/log.h) and the statuses jobs/common.sh acts on."""
    root = os.path.join(os.path.dirname(__file__), "..", "..")
    header = open(os.path.join(root, "include", "log.h")).read()
    enum = dict((name, int(v)) for name, v in re.findall(r"MF_EXIT_(\w+) = (\d+)", header))
    assert enum == {"OK": 0, "RUNTIME": 1, "USAGE": 2, "STOPPED": 3, "DIVERGED": 4}
    script = open(os.path.join(root, "jobs", "common.sh")).read()
    shell = dict((name, int(v)) for name, v in re.findall(r"MFRES_EXIT_(\w+)=(\d+)", script))
    assert shell and all(enum[name] == value for name, value in shell.items())


def test_data_file_is_read_by_one_rank(tmp_path):
    """Rank 0 reads the data file and broadcasts it: under strace, one
    process of a 3-rank job opens it (a job of thousands of ranks would
    otherwise open it thousands of times on a shared file system), and the
    run uses it (its loss equals a 1-rank run's)."""
    import h5py
    data = tmp_path / "d.h5"
    rng = np.random.default_rng(0)
    with h5py.File(data, "w") as f:
        f["x"], f["y"] = rng.standard_normal((50, 3)), rng.standard_normal((50, 2))
    cfg = write_config(tmp_path / "d.ini", f"[data]\nkind = file\nfile = {data}\n"
                       "samples = 40\ntest_samples = 10\n[train]\nsteps = 2\n"
                       "[output]\nlog_every = 1\n")
    trace = tmp_path / "trace"
    proc = subprocess.run(["strace", "-f", "-e", "trace=openat", "-o", str(trace), *MPIRUN,
                           "-n", "3", MFRES, "train", cfg, "--out", str(tmp_path / "three")],
                          capture_output=True, text=True, timeout=120, env=ENV)
    assert proc.returncode == 0, proc.stderr
    opened = {line.split()[0] for line in open(trace) if str(data) in line}
    assert len(opened) == 1, opened
    mfres("train", cfg, "--out", tmp_path / "one", check=True)
    np.testing.assert_allclose(read_metrics(tmp_path / "three")["loss"],
                               read_metrics(tmp_path / "one")["loss"], rtol=1e-12)


def test_inputs_that_are_not_regular_files(tmp_path, small_config):
    """A directory, a FIFO or a device as the configuration, or a FIFO as the
    checkpoint: exit 2 at once naming it (a FIFO used to block forever, a
    directory to train the defaults), and a NUL byte inside the text is an
    error on its line rather than a value cut short."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    nul = tmp_path / "nul.ini"
    nul.write_bytes(b"[model]\nwidth = 1\x006\n")
    for config, message in ((tmp_path, f"{tmp_path}: not a regular file"),
                            (fifo, f"{fifo}: not a regular file"),
                            ("/dev/zero", "/dev/zero: not a regular file"),
                            (nul, f"{nul}:2: a NUL byte in the text")):
        proc = mfres("train", config, "--out", tmp_path / "run", ranks=2, timeout=30)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    proc = mfres("train", small_config, "--out", tmp_path / "run", "--restart", fifo, ranks=2,
                 timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert f"checkpoint '{fifo}': not a regular file" in proc.stderr
    assert not os.path.exists(tmp_path / "run")


def test_real_values_at_the_ends_of_the_double_range(tmp_path, small_config):
    """lr = 1e-320 (an underflow to a subnormal) is a number and kept;
    1e999 is refused as beyond the range of a double, not as 'not finite'."""
    proc = mfres("config", small_config, "--set", "train.lr=1e-320", check=True)
    assert float(re.search(r"^lr = (\S+)$", proc.stdout, re.M)[1]) == 1e-320
    proc = mfres("config", small_config, "--set", "train.lr=1e999")
    assert proc.returncode == 2 and "'1e999' is beyond the range of a double" in proc.stderr


@pytest.mark.parametrize("path, message", [
    ("a\nb", "control character 0x0a at position POS of the path"),
    ("a\tb", "control character 0x09 at position POS of the path"),
    ("a\x1bb", "control character 0x1b at position POS of the path"),
    ("a ;b", "'RUN/a ;b' holds ' ;', which config.ini would read as a comment"),
    ("a ", "'RUN/a ' begins or ends with a space"),
])
def test_paths_that_would_not_read_back(tmp_path, small_config, path, message):
    """Paths are stored in config.ini and checkpoints; one that would read
    back as another (a newline would end its line) is refused up front,
    whether from --out or from the file, and nothing is created."""
    out = f"{tmp_path}/{path}"
    proc = mfres("train", small_config, "--out", out, ranks=2, timeout=30)
    assert proc.returncode == 2, proc.stderr
    where = message.replace("RUN", str(tmp_path))
    assert "[output] dir: " + where.replace("POS", str(len(str(tmp_path)) + 3)) in proc.stderr
    assert not os.path.exists(out)
    if path in ("a\tb", "a\x1bb"):  # what the file itself can hold inside a value
        cfg = write_config(tmp_path / "c.ini", f"[data]\nkind = file\nfile = {path}\n")
        proc = mfres("config", cfg, timeout=30)
        assert proc.returncode == 2, proc.stderr
        assert f"{cfg}:3: [data] file: " + message.replace("POS", "2") in proc.stderr


def test_out_of_memory_names_the_keys(tmp_path, small_config):
    """Particles that do not fit (under a 4 GiB address-space limit): the
    message names the array and the keys that sized it, and the run
    directory is not created."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
    proc = subprocess.run([MFRES, "train", small_config, "--out", tmp_path / "run", "--set",
                           "model.layers=1", "--set", "model.width=200000000"], env=ENV,
                          preexec_fn=limit, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert ("out of memory: the particles' u, w (model.layers x model.width / ranks x "
            "model.dim values each, of model.precision) and b, 800000000 x 8 bytes (5.96 GiB)") in proc.stderr
    assert not (tmp_path / "run").exists()
    proc = mfres("config", small_config, "--set", "model.layers=1000000000", "--set",
                 "model.width=1", "--set", "data.samples=100000", "--set", "train.batch=0")
    assert proc.returncode == 2
    assert ("(model.layers + 1) x train.batch x model.dim = 1000000001 x 100000 x 4 is too "
            "many batch states (at most 2^40)") in proc.stderr


REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


@pytest.mark.parametrize("command", ["train", "config", "info", "eval", "bench"])
def test_every_subcommand_has_help(command):
    """`mfres COMMAND --help` (also after other arguments) prints a usage and
    exits 0; a missing configuration names the subcommand."""
    for args in ([command, "--help"], [command, "x.ini", "-h"]):
        proc = mfres(*args)
        assert proc.returncode == 0 and proc.stdout.startswith("usage: "), proc
        assert f"mfres {command}" in proc.stdout and not proc.stderr
    if command in ("train", "config"):
        proc = mfres(command)
        assert proc.returncode == 2
        assert f"{command} needs a configuration file" in proc.stderr


@pytest.mark.parametrize("script", ["jobs/study.sh", "jobs/train.sbatch", "jobs/study.sbatch",
                                    "jobs/scaling.sbatch", "analysis/mfresfile.py",
                                    "analysis/plot_run.py", "analysis/report.py",
                                    "analysis/scaling.py", "analysis/schemes.py",
                                    "analysis/import_dataset.py"])
def test_every_script_has_help(script):
    """Every script prints its usage for --help, exits 0 and runs nothing."""
    path = os.path.join(REPO, script)
    cmd = [os.environ.get("PYTHON", "/usr/bin/python3"), path] if script.endswith(".py") \
        else [path]
    proc = subprocess.run(cmd + ["--help"], capture_output=True, text=True, env=ENV, timeout=60)
    assert proc.returncode == 0, proc.stderr
    name = os.path.basename(script)
    first = proc.stdout.splitlines()[0]
    assert first.startswith(f"usage: {name}") or first.startswith(f"{name}: "), proc.stdout


def test_info_reads_outputs_h5(tmp_path, small_config):
    """`mfres info` on a run's outputs.h5 summarises it (rows, steps,
    probes, losses) instead of calling it a foreign file."""
    mfres("train", small_config, "--out", tmp_path / "run", check=True)
    proc = mfres("info", tmp_path / "run" / "outputs.h5", check=True)
    rows = read_metrics(tmp_path / "run")
    assert "outputs.h5 of a run" in proc.stdout
    assert "rows       5, steps 0 to 40" in proc.stdout and "probes     32, 1 outputs" in \
        proc.stdout, proc.stdout
    assert f"{rows['loss'][-1]:.4e} at step 40" in proc.stdout


PLAN_CONFIG = """
[model]
layers = 4
width = 500000
[data]
samples = 64
test_samples = 16
[train]
steps = 2
batch = 16
[output]
log_every = 1
"""


def test_config_plans_a_run_before_it_is_queued(tmp_path):
    """`mfres config --ranks R --nodes N` prints the plan: memory per rank,
    which the peak RSS of the run matches within 25% (here 1 rank, 2·10^6
    particles), and core-hours = steps x probed step x ranks. A run no node
    can hold is refused by config and by train with the same message, exit
    2, before anything is allocated or created; so is one beyond the Slurm
    job's memory."""
    cfg = write_config(tmp_path / "p.ini", PLAN_CONFIG)
    out = mfres("config", cfg, "--ranks", "4", "--nodes", "2", check=True).stdout
    assert "; plan for 4 ranks on 2 node(s), 2 per node" in out
    step = float(re.search(r"^; step +([0-9.e+-]+) s", out, re.M).group(1))
    hours = float(re.search(r"([0-9.e+-]+) core-hours for 2 steps", out).group(1))
    assert hours == pytest.approx(step * 2 * 4 / 3600, rel=2e-3)  # both printed to 4 digits
    for precision in ("double", "mixed"):  # mixed: 4-byte particles
        option = ("--set", f"model.precision={precision}")
        out = mfres("config", cfg, *option, "--ranks", "1", check=True).stdout
        planned = float(re.search(r"^; memory per rank +([0-9.e+-]+) GiB", out, re.M).group(1))
        proc = subprocess.Popen([MFRES, "train", cfg, *option, "--out", tmp_path / precision],
                                env=ENV, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        assert status == 0
        assert 0.8 < usage.ru_maxrss * 1024 / (planned * 2**30) < 1.25, (usage.ru_maxrss,
                                                                          planned, precision)
    big = ("--set", "model.width=100000000000")
    config = mfres("config", cfg, *big, "--ranks", "1")
    train = mfres("train", cfg, *big, "--out", tmp_path / "big")
    assert config.returncode == train.returncode == 2
    assert "mfres: error: the run does not fit: about " in train.stderr
    assert config.stderr == train.stderr and not os.path.exists(tmp_path / "big")
    # In a Slurm job, the job's share of the node (--mem sets it) is the limit.
    small = subprocess.run([MFRES, "train", cfg, "--out", tmp_path / "small"], text=True,
                           capture_output=True, env=dict(ENV, SLURM_MEM_PER_NODE="64"))
    assert small.returncode == 2 and "(the job's share, SLURM_MEM_PER_NODE = 64 MiB)" in \
        small.stderr, small.stderr


def test_paths_beyond_their_limits_are_refused(tmp_path, small_config):
    """A run directory of 192 characters (one more than [output] dir takes)
    and a checkpoint path of 245 (one more than MPI-IO takes) are refused
    with exit 2 before anything is created, naming the key or option and
    its limit; the limits themselves work (test_nodes, on two nodes)."""
    def padded(length):
        path = str(tmp_path)
        while len(path) < length - 40:
            path = os.path.join(path, "d" * 30)
        return os.path.join(path, "r" * (length - len(path) - 1))
    proc = mfres("train", small_config, "--out", padded(192))
    assert proc.returncode == 2
    assert "[output] dir: a path of 192 characters; this key takes at most 191" in proc.stderr
    proc = mfres("train", small_config, "--restart", padded(245), "--out", tmp_path / "run")
    assert proc.returncode == 2
    assert "--restart: a path of 245 characters; a file opened with MPI-IO may have at most " \
           "244" in proc.stderr, proc.stderr
    assert os.listdir(tmp_path) == ["small.ini"]
