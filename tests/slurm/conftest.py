"""A real two-node Slurm cluster on one machine for the job-script tests.

The session fixture `cluster` installs Slurm and munge if they are missing
(through `make deps`), writes a munge key and a slurm.conf into a temporary
directory, starts munged, slurmctld and one slurmd per node (node1, node2)
in the foreground on free ports on the loopback interface, each slurmd in
new UTS and mount namespaces with its node's host name and its own /tmp
(as /tmp is node-local on clusters), waits for both nodes to be idle, and
at the end cancels every job and stops exactly the daemons it started, by
pid. Since the nodes' /tmp is their own, the tests' temporary files live
under build/test-slurm (pytest's --basetemp), which every node sees.
"""
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MFRES = os.environ.get("MFRES", os.path.join(REPO, "build", "mfres"))
FINISHED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL",
            "BOOT_FAIL", "DEADLINE"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


NODES = ("node1", "node2")
SLURM_CONF = """\
ClusterName=mfrestest
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort={ctld_port}
AuthType=auth/munge
CredType=cred/munge
# cred_expire also sets how long a requeued job waits before it may start.
AuthInfo=socket={dir}/munge.sock,cred_expire=5
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool-%n
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd-%n.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd-%n.log
# Two CPUs a node whatever the machine has, so that two 2-rank jobs land
# on different nodes.
SlurmdParameters=config_overrides
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
# A requeued job may start after cred_expire, at the next pass of the main
# scheduler: every 2 s here, not 60 s.
SchedulerParameters=sched_interval=2
# The site's MPI plugin: the job scripts' default launcher is plain srun.
MpiDefault=pmix
ReturnToService=2
JobRequeue=1
# Small, so that a study packs runs into array tasks to fit it.
MaxArraySize=4
KillWait=10
MinJobAge=3600
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=node1 NodeAddr=127.0.0.1 Port={port1} CPUs=2 RealMemory=4000 State=UNKNOWN
NodeName=node2 NodeAddr=127.0.0.1 Port={port2} CPUs=2 RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=node1,node2 Default=YES MaxTime=INFINITE State=UP
"""


def pytest_configure(config):
    """Temporary files where every fake node sees them (not /tmp)."""
    if not config.option.basetemp:
        config.option.basetemp = os.path.join(REPO, "build", "test-slurm")


class Cluster:
    def __init__(self, folder):
        if not shutil.which("slurmctld") or not shutil.which("munged"):
            subprocess.run(["make", "-C", REPO, "--no-print-directory", "deps"], check=True)
        self.dir = str(folder)
        os.mkdir(os.path.join(self.dir, "state"))
        key = os.path.join(self.dir, "munge.key")
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(key, 0o600)
        self.host = socket.gethostname().split(".")[0]
        conf = os.path.join(self.dir, "slurm.conf")
        with open(conf, "w") as f:
            f.write(SLURM_CONF.format(host=self.host, dir=self.dir, ctld_port=free_port(),
                                      port1=free_port(), port2=free_port()))
        # Open MPI between the nodes: TCP over loopback only, and ranks that
        # yield while they wait (4 ranks of two nodes share 2 cores here).
        self.env = dict(os.environ, SLURM_CONF=conf, MFRES=MFRES, PYTHON=sys.executable,
                        OMPI_ALLOW_RUN_AS_ROOT="1",
                        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                        OMPI_MCA_btl_vader_single_copy_mechanism="none",
                        OMPI_MCA_btl_tcp_if_include="lo", OMPI_MCA_oob_tcp_if_include="lo",
                        OMPI_MCA_mpi_yield_when_idle="1")
        self.daemons = []
        d = self.dir
        self._start("munged", ["munged", "-F", "--force", f"--key-file={key}",
                               f"--socket={d}/munge.sock", f"--pid-file={d}/munged.pid",
                               f"--log-file={d}/munged.log", f"--seed-file={d}/munged.seed"])
        self._wait(lambda: os.path.exists(f"{d}/munge.sock"), "munged")
        self._start("slurmctld", ["slurmctld", "-D", "-f", conf])
        for node in NODES:
            tmp = os.path.join(self.dir, f"tmp-{node}")
            os.mkdir(tmp)
            # unshare and sh exec into slurmd: the pid is slurmd's.
            self._start(f"slurmd-{node}", [
                "unshare", "--uts", "--mount", "--propagation", "private", "/bin/sh", "-c",
                'hostname "$0" && mount --bind "$1" /tmp && exec slurmd -D -f "$2" -N "$0"',
                node, tmp, conf])
        self._wait(lambda: self.run(["sinfo", "-h", "-o", "%D %t"]).stdout.strip() == "2 idle",
                   "two idle nodes")

    def _start(self, name, cmd):
        log = open(os.path.join(self.dir, name + ".out"), "w")
        self.daemons.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                             env=self.env))

    def _wait(self, ready, what, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            for p in self.daemons:
                if p.poll() is not None:
                    raise RuntimeError(f"{p.args[0]} exited; see {self.dir}")
            if ready():
                return
            time.sleep(0.2)
        raise RuntimeError(f"no {what} after {timeout} s; see {self.dir}")

    def run(self, cmd, **kw):
        return subprocess.run(cmd, capture_output=True, text=True, env=kw.pop("env", self.env),
                              **kw)

    def submit(self, *args, env=None):
        """sbatch ARGS; returns the job id."""
        proc = self.run(["sbatch", "--parsable", *map(str, args)],
                        env=dict(self.env, **(env or {})), cwd=REPO)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip().split(";")[0]

    def states(self, job):
        """JobState of the job, or of every task of an array job."""
        out = self.run(["scontrol", "-o", "show", "job", job]).stdout
        return [field.split("=", 1)[1] for line in out.splitlines()
                for field in line.split() if field.startswith("JobState=")]

    def info(self, job):
        out = self.run(["scontrol", "-o", "show", "job", job]).stdout.split()
        return dict(field.split("=", 1) for field in out if "=" in field)

    def wait(self, job, timeout=240):
        end = time.time() + timeout
        while time.time() < end:
            states = self.states(job)
            if states and all(s in FINISHED for s in states):
                return states
            time.sleep(0.5)
        states, log = self.states(job), self.info(job).get("StdOut", "")
        self.run(["scancel", job])
        text = open(log).read()[-6000:] if log and os.path.isfile(log) else "(none)"
        raise AssertionError(f"job {job} still {states} after {timeout} s, now cancelled; "
                             f"its output ({log}):\n{text}")

    def stop(self):
        self.run(["scancel", "--full", "--user", "root"])
        time.sleep(1)
        for p in reversed(self.daemons):
            p.terminate()
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the test cluster's daemons and namespaces need root")
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    yield c
    c.stop()
