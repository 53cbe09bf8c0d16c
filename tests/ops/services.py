"""Real PostgreSQL and single-node Slurm servers for the operations tests, on loopback.

A missing binary skips a test on a developer machine but fails it under CI (the CI
image installs the Debian packages through scripts/install.sh --dev).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SBIN = ("/usr/sbin", "/usr/local/sbin")


def require(binary: str, *, extra_dirs: tuple[str, ...] = SBIN) -> str:
    found = shutil.which(binary) or next(
        (str(Path(d) / binary) for d in extra_dirs if (Path(d) / binary).is_file()), None
    )
    if found:
        return found
    message = f"{binary} not found: install postgresql, slurm-wlm and munge (scripts/install.sh --dev)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        message = f"{what} needs root (it starts system daemons)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout_s: float, what: str, poll_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout_s}s")
        time.sleep(poll_s)


def _stop_pidfile(pidfile: Path, timeout_s: float = 10) -> None:
    if not pidfile.is_file():
        return
    pid = int(pidfile.read_text().split()[0])
    try:
        os.kill(pid, 15)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


# --- PostgreSQL -----------------------------------------------------------------------


def postgres_bin(name: str) -> str:
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else require(name)


@contextmanager
def postgres_server(base: Path) -> Iterator[dict]:
    """initdb + pg_ctl start as the ``postgres`` user (the server refuses root)."""
    initdb, pg_ctl = postgres_bin("initdb"), postgres_bin("pg_ctl")
    user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    as_user = ["runuser", "-u", user, "--"] if os.geteuid() == 0 else []
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(user)
        except KeyError:
            pytest.fail("the postgresql package creates the 'postgres' user; it is missing")
    base.mkdir(parents=True, exist_ok=True)
    data, sockets = base / "pgdata", base / "sockets"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, user)
        shutil.chown(sockets, user)
        base.chmod(0o755)
    for parent in base.parents:
        # The server user must be able to reach its folders under the root-owned tmp dir.
        if parent == Path("/") or parent.stat().st_mode & 0o001:
            break
        parent.chmod(parent.stat().st_mode | 0o011)
    subprocess.run(
        [*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
        check=True, capture_output=True,
    )
    port = free_port()
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    subprocess.run(
        [*as_user, pg_ctl, "-D", str(data), "-o", options, "-l", str(base / "server.log"), "-w", "start"],
        check=True, capture_output=True,
    )
    try:
        yield {"username": "postgres", "password": "unused", "hostname": "127.0.0.1", "db_name": "postgres", "port": port}
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True)


# --- Slurm ------------------------------------------------------------------------------


def _munge_works() -> bool:
    if not shutil.which("munge"):
        return False
    cred = subprocess.run(["munge", "-n"], capture_output=True)
    return cred.returncode == 0 and subprocess.run(["unmunge"], input=cred.stdout, capture_output=True).returncode == 0


@contextmanager
def munge_daemon() -> Iterator[None]:
    """Use a running munged, or start one as the munge user and stop it afterwards."""
    if _munge_works():
        yield
        return
    munged = require("munged")
    key = Path("/etc/munge/munge.key")
    if not key.is_file():
        key.parent.mkdir(parents=True, exist_ok=True)
        key.write_bytes(os.urandom(1024))
        shutil.chown(key, "munge", "munge")
        key.chmod(0o400)
    run_dir = Path("/run/munge")
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.chown(run_dir, "munge", "munge")
    subprocess.run(["runuser", "-u", "munge", "--", munged], check=True, capture_output=True)
    wait_for(_munge_works, 10, "munged")
    try:
        yield
    finally:
        _stop_pidfile(run_dir / "munged.pid")


SLURM_CONF = """\
ClusterName=longattn-test
SlurmctldHost={host}
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
ReturnToService=2
MinJobAge=600
StateSaveLocation={base}/state
SlurmdSpoolDir={base}/spool
SlurmctldPidFile={base}/slurmctld.pid
SlurmdPidFile={base}/slurmd.pid
SlurmctldLogFile={base}/slurmctld.log
SlurmdLogFile={base}/slurmd.log
NodeName={host} CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def _node_idle() -> bool:
    out = subprocess.run(["sinfo", "--noheader", "--format=%t"], capture_output=True, text=True)
    return out.returncode == 0 and out.stdout.strip() in ("idle", "mix")


@contextmanager
def slurm_cluster(base: Path) -> Iterator[Path]:
    """slurmctld + slurmd for this host, configured under ``base``; yields slurm.conf.

    SLURM_CONF is set in this process's environment while the cluster runs, so sbatch,
    squeue and scancel (and the jobs they start) use it.
    """
    require_root("a local Slurm cluster")
    slurmctld, slurmd = require("slurmctld"), require("slurmd")
    for tool in ("sbatch", "squeue", "scancel", "scontrol", "sinfo"):
        require(tool)
    for sub in ("state", "spool"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    host = socket.gethostname().split(".")[0]
    memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20 // 2
    conf = base / "slurm.conf"
    conf.write_text(SLURM_CONF.format(
        host=host, ctld_port=free_port(), d_port=free_port(), base=base,
        cpus=os.cpu_count(), memory_mb=memory_mb,
    ))
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(conf)
    with munge_daemon():
        try:
            subprocess.run([slurmctld, "-f", str(conf)], check=True, capture_output=True)
            subprocess.run([slurmd, "-f", str(conf)], check=True, capture_output=True)
            wait_for(_node_idle, 30, "the Slurm node")
            yield conf
        finally:
            _stop_pidfile(base / "slurmd.pid")
            _stop_pidfile(base / "slurmctld.pid")
            if previous is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = previous
