"""What a user on a cluster meets, simulated on one machine.

- Other CPUs: the default binary under qemu-user's CPU models (Haswell: AVX2
  without AVX-512; Nehalem: SSE4.2, no AVX) picks the kernels those CPUs
  have and trains to the native run's loss within 1e-10 relative.
- No root, no Debian tools: the project built by an unprivileged user with
  apt-get, dpkg and pkg-config hidden from PATH, HDF5 found through
  HDF5_DIR (a prefix with include/ and lib/, as a module gives it), linked
  against BLIS instead of OpenBLAS, compiled by Clang (OMPI_CC) for this CPU
  alone (-march=native), then `make install`: a run of the installed binary
  reaches the native run's loss, the installed study script finds it and
  analyses with the python3 on PATH, and on an older CPU (qemu) the binary
  refuses to start with a message instead of an illegal instruction.
"""
import os
import pathlib
import platform
import re
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MFRES = os.environ.get("MFRES", os.path.join(REPO, "build", "mfres"))
CONFIG = os.path.join(REPO, "jobs", "configs", "default.ini")
SHORT = ["--set", "train.steps=12", "--set", "output.log_every=4"]
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OPENBLAS_NUM_THREADS="1", OMPI_MCA_btl_vader_single_copy_mechanism="none")
QEMU = shutil.which("qemu-x86_64")
needs_qemu = pytest.mark.skipif(
    platform.machine() != "x86_64" or not QEMU or "OPENBLAS_CORETYPE" in os.environ,
    reason="needs x86-64, qemu-x86_64 (Debian's qemu-user), and OpenBLAS free to pick its "
           "core (OPENBLAS_CORETYPE unset)")


def final_loss(run):
    with open(os.path.join(run, "metrics.tsv")) as f:
        header = f.readline().rstrip("\n").split("\t")
        last = f.readlines()[-1].split("\t")
    return float(last[header.index("loss")])


@pytest.fixture(scope="module")
def native(tmp_path_factory):
    """The default binary's run on this CPU; its final training loss."""
    run = tmp_path_factory.mktemp("native") / "run"
    proc = subprocess.run([MFRES, "train", CONFIG, *SHORT, "--out", run], capture_output=True,
                          text=True, env=ENV, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return final_loss(run)


@needs_qemu
@pytest.mark.parametrize("cpu, kernels", [("Haswell", "avx2"), ("Nehalem", "generic")])
def test_other_cpu_models_run_their_own_kernels(tmp_path, native, cpu, kernels):
    proc = subprocess.run([QEMU, "-cpu", cpu, MFRES, "--version"], capture_output=True,
                          text=True, env=ENV, timeout=60)
    assert proc.returncode == 0, proc.stderr
    found = re.search(rf"^kernels: {kernels} \(built: avx512 avx2 generic; this CPU: (.*)\)$",
                      proc.stdout, re.M)
    assert found, proc.stdout
    isa = found.group(1).split()
    assert ("avx2" in isa) == (cpu == "Haswell") and "avx512f" not in isa
    run = tmp_path / "run"
    proc = subprocess.run([QEMU, "-cpu", cpu, MFRES, "train", CONFIG, *SHORT, "--out", run],
                          capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"kernels {kernels}, BLAS OpenBLAS core {cpu}" in proc.stdout
    assert final_loss(run) == pytest.approx(native, rel=1e-10)


def test_every_kernel_path_this_cpu_runs_trains_to_the_same_loss(tmp_path, native):
    """MFRES_KERNELS chooses a path: each one this CPU runs gives the
    automatic choice's loss to 1e-10 (the paths differ in rounding only)."""
    ran = []
    for path in ("avx512", "avx2", "generic"):
        run = tmp_path / path
        proc = subprocess.run([MFRES, "train", CONFIG, *SHORT, "--out", run],
                              capture_output=True, text=True, timeout=120,
                              env=dict(ENV, MFRES_KERNELS=path))
        if proc.returncode == 2 and "this CPU cannot run" in proc.stderr:
            continue
        assert proc.returncode == 0, proc.stderr
        assert f"kernels {path}, BLAS " in proc.stdout
        assert final_loss(run) == pytest.approx(native, rel=1e-10)
        ran.append(path)
    assert "generic" in ran


def test_asking_for_kernels_this_cpu_lacks_is_refused():
    proc = subprocess.run([MFRES, "--version"], capture_output=True, text=True, env=ENV)
    cpu = re.search(r"this CPU: (.*)\)", proc.stdout).group(1).split()
    proc = subprocess.run([MFRES, "config", CONFIG], capture_output=True, text=True,
                          env=dict(ENV, MFRES_KERNELS="avx3"))
    assert proc.returncode == 2
    assert "MFRES_KERNELS = avx3: not one of auto" in proc.stderr
    if platform.machine() == "x86_64" and "avx512f" not in cpu:
        proc = subprocess.run([MFRES, "config", CONFIG], capture_output=True, text=True,
                              env=dict(ENV, MFRES_KERNELS="avx512"))
        assert proc.returncode == 2 and "this CPU cannot run the avx512 kernels" in proc.stderr


def hidden_tools_path(folder):
    """A PATH folder with every command of /usr/bin and /bin except the
    Debian package tools and pkg-config."""
    hidden = re.compile(r"^(apt.*|dpkg.*|pkg-config|pkgconf|.*-pkg-config)$")
    os.makedirs(folder)
    for d in ("/usr/bin", "/bin"):
        for name in os.listdir(d):
            target = os.path.join(folder, name)
            if not hidden.match(name) and not os.path.lexists(target):
                os.symlink(os.path.join(d, name), target)
    return folder


def blis():
    """Debian's BLIS (libblis-dev): its cblas.h folder and library folder."""
    for variant in ("blis-openmp", "blis-pthread", "blis-serial"):
        inc = f"/usr/include/{platform.machine()}-linux-gnu/{variant}"
        lib = f"/usr/lib/{platform.machine()}-linux-gnu/{variant}"
        if os.path.exists(os.path.join(inc, "cblas.h")):
            return inc, lib
    return None


@pytest.fixture
def user_home():
    """A folder in /tmp that the user nobody owns, removed afterwards."""
    top = tempfile.mkdtemp(prefix="mfres-user-")
    shutil.chown(top, "nobody")
    yield pathlib.Path(top)
    shutil.rmtree(top)


@pytest.mark.skipif(os.geteuid() != 0, reason="runs the build as another user (runuser)")
@pytest.mark.skipif(not shutil.which("clang") or not blis(),
                    reason="needs clang and Debian's libblis-dev")
def test_unprivileged_build_with_module_style_libraries(user_home, native):
    top = user_home
    src, prefix, work = top / "src", top / "prefix", top / "work"
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, capture_output=True, text=True, check=True).stdout
    for name in files.splitlines():
        if os.path.isfile(os.path.join(REPO, name)):
            os.makedirs(src / os.path.dirname(name), exist_ok=True)
            shutil.copy2(os.path.join(REPO, name), src / name)
    # A module's HDF5: one prefix holding include/ and lib/.
    hdf5 = top / "hdf5"
    hdf5.mkdir()
    arch = f"{platform.machine()}-linux-gnu"
    os.symlink("/usr/include/hdf5/openmpi", hdf5 / "include")
    os.symlink(f"/usr/lib/{arch}/hdf5/openmpi", hdf5 / "lib")
    bindir = hidden_tools_path(str(top / "bin"))
    work.mkdir()
    subprocess.run(["chown", "-R", "nobody", str(src), str(work)], check=True)
    inc, lib = blis()
    user_env = {"PATH": bindir, "HOME": str(top), "OMPI_CC": "clang",
                "OPENBLAS_NUM_THREADS": "1", "OMPI_MCA_btl_vader_single_copy_mechanism": "none"}

    def as_user(*cmd, cwd=src, timeout=600, env=()):
        return subprocess.run(["runuser", "-u", "nobody", "--", "env", "-i",
                               *[f"{k}={v}" for k, v in {**user_env, **dict(env)}.items()],
                               *map(str, cmd)], cwd=cwd, capture_output=True, text=True,
                              timeout=timeout)

    proc = as_user("make", "deps")
    assert proc.returncode == 0 and "no dpkg/apt-get (not Debian)" in proc.stdout, proc.stderr
    make = ["make", "-j2", f"HDF5_DIR={hdf5}", f"BLAS_CFLAGS=-isystem {inc}",
            f"BLAS_LIBS=-L{lib} -Wl,-rpath,{lib} -lblis", "CFLAGS=-march=native", "WERROR=1"]
    proc = as_user(*make, "install", f"PREFIX={prefix}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert re.search(r"^  HDF5 +from HDF5_DIR$", proc.stdout, re.M), proc.stdout
    assert re.search(r"^  BLAS +from BLAS_LIBS: .*-lblis$", proc.stdout, re.M)
    assert re.search(r"^  inih +no pkg-config on PATH$", proc.stdout, re.M)
    assert "clang version" in proc.stdout

    # A missing library is named with what to set, before any compiling.
    proc = as_user("make", "BUILD=build/bad", "HDF5_DIR=/nonexistent")
    assert proc.returncode != 0
    assert ("mfres build: cannot compile and link with HDF5 (from HDF5_DIR): HDF5_CFLAGS = "
            "'-I/nonexistent/include'") in proc.stderr and "hdf5.h" in proc.stderr
    assert "CC " not in proc.stdout

    # The installed binary: for this CPU, BLIS, the native run's loss.
    installed = prefix / "bin" / "mfres"
    proc = as_user(installed, "--version", cwd=work)
    assert re.search(r"^target: CPUs with avx avx2 .*sse4.2", proc.stdout, re.M), proc.stdout
    proc = as_user(installed, "train", prefix / "share/mfres/jobs/configs/default.ini", *SHORT,
                   "--out", work / "run", cwd=work)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"kernels \w+, BLAS BLIS \d", proc.stdout), proc.stdout
    assert final_loss(work / "run") == pytest.approx(native, rel=1e-10)

    # The installed study script finds the installed binary and runs the
    # analysis with python3 from PATH.
    proc = as_user(prefix / "share/mfres/jobs/study.sh", CONFIG, *SHORT, "--out",
                   work / "study", cwd=work,
                   env={"MFRES_STUDY_WIDTHS": "8 16", "MFRES_STUDY_SEEDS": "2",
                        "MFRES_STUDY_RANKS": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (work / "study" / "analysis" / "summary.json").exists()

    if QEMU and platform.machine() == "x86_64":
        proc = subprocess.run([QEMU, "-cpu", "Nehalem", installed, "--version"],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert re.match(r"mfres: error: this binary was built for CPUs with .*avx2.*, but this "
                        r"CPU lacks (avx|avx2|bmi|bmi2|fma) \(it has sse3 ", proc.stderr), \
            proc.stderr
