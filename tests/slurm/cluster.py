"""A real one-node Slurm cluster with accounting, started and stopped by the tests (recipe: shared/docs/SLURM.md).

Needs Debian's slurmctld, slurmd, slurm-client, munge, slurmdbd and mariadb-server (`.ci/run` installs them) and
root. Everything lives under one work folder; every daemon's PID is recorded and stopped at the end.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

NEEDED = ["slurmctld", "slurmd", "sinfo", "sbatch", "sacct", "munged", "slurmdbd", "mariadbd", "mariadb-install-db"]


def missing() -> list[str]:
    return [b for b in NEEDED if shutil.which(b) is None and not Path(f"/usr/sbin/{b}").exists()]


def _bin(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


class SlurmCluster:
    def __init__(self, work: Path):
        self.w = Path(work)
        self.procs: list[subprocess.Popen] = []
        self.host = socket.gethostname().split(".")[0]
        self.env = {**os.environ, "SLURM_CONF": str(self.w / "slurm.conf")}

    def _start(self, args, log, **kw):
        f = open(self.w / log, "w")
        p = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, env=self.env, **kw)
        self.procs.append(p)
        return p

    def _wait(self, check, what, timeout=60):
        t = time.time()
        while time.time() - t < timeout:
            if check():
                return
            time.sleep(0.3)
        logs = "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}" for p in self.w.glob("*.log"))
        raise RuntimeError(f"slurm test cluster: {what} did not come up in {timeout}s\n{logs}")

    def start(self) -> "SlurmCluster":
        w = self.w
        for d in ("state", "spool", "db", "munge"):
            (w / d).mkdir(parents=True, exist_ok=True)
        # munge, as the munge user
        shutil.chown(w / "munge", "munge", "munge")
        key = Path("/etc/munge/munge.key")
        if not key.exists():
            subprocess.run([_bin("mungekey"), "--create"], check=True)
        shutil.chown(key, "munge", "munge")
        os.chmod(key, 0o400)
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        self._start(["runuser", "-u", "munge", "--", _bin("munged"), "-F", "--force"], "munge.log")
        self._wait(lambda: Path("/run/munge/munge.socket.2").exists(), "munged")
        # private MariaDB on 127.0.0.1:3307 for slurmdbd
        sock = w / "mysql.sock"
        if not (w / "db" / "mysql").exists():
            subprocess.run([_bin("mariadb-install-db"), f"--datadir={w / 'db'}", "--user=root",
                            "--auth-root-authentication-method=normal"], check=True, capture_output=True)
        self._start([_bin("mariadbd"), f"--datadir={w / 'db'}", "--port=3307", "--bind-address=127.0.0.1",
                     f"--socket={sock}", "--user=root", f"--pid-file={w / 'mariadb.pid'}", "--skip-grant-tables=0"],
                    "mariadb.log")
        self._wait(sock.exists, "mariadb")
        subprocess.run(["mariadb", f"--socket={sock}", "-uroot", "-e",
                        "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurmpw';"
                        "GRANT ALL ON *.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"], check=True)
        dbd = w / "slurmdbd.conf"
        dbd.write_text(f"""AuthType=auth/munge
DbdAddr=127.0.0.1
DbdHost=localhost
DbdPort=6819
SlurmUser=root
PidFile={w / 'slurmdbd.pid'}
LogFile={w / 'slurmdbd.log'}
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3307
StorageUser=slurm
StoragePass=slurmpw
StorageLoc=slurm_acct_db
""")
        os.chmod(dbd, 0o600)
        cpu = subprocess.run([_bin("slurmd"), "-C"], capture_output=True, text=True).stdout.splitlines()[0]
        layout = " ".join(x for x in cpu.split() if not x.startswith(("NodeName=", "RealMemory=", "UpTime=")))
        mem = int(int(subprocess.run(["free", "-m"], capture_output=True, text=True).stdout.split()[7]) * 0.9)
        (w / "slurm.conf").write_text(f"""ClusterName=diqtest
SlurmctldHost={self.host}(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation={w / 'state'}
SlurmdSpoolDir={w / 'spool'}
SlurmctldPidFile={w / 'slurmctld.pid'}
SlurmdPidFile={w / 'slurmd.pid'}
SlurmctldLogFile={w / 'slurmctld.log'}
SlurmdLogFile={w / 'slurmd.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
MailProg=/bin/true
ReturnToService=2
JobCompType=jobcomp/filetxt
JobCompLoc={w / 'jobcomp.txt'}
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
JobAcctGatherType=jobacct_gather/none
NodeName={self.host} NodeAddr=127.0.0.1 {layout} RealMemory={mem} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
        self._start([_bin("slurmdbd"), "-D"], "slurmdbd.out.log")
        self._wait(lambda: subprocess.run(["sacctmgr", "-n", "show", "cluster"], env=self.env,
                                          capture_output=True).returncode == 0, "slurmdbd")
        subprocess.run(["sacctmgr", "-i", "add", "cluster", "diqtest"], env=self.env, capture_output=True)
        self._start([_bin("slurmctld"), "-D", "-i"], "slurmctld.out.log")
        self._start([_bin("slurmd"), "-D"], "slurmd.out.log")
        self._wait(lambda: subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=self.env, capture_output=True,
                                          text=True).stdout.strip() == "idle", "the node (idle)")
        return self

    def stop(self) -> None:
        subprocess.run(["scancel", "--user=root"], env=self.env, capture_output=True)
        for p in reversed(self.procs):
            p.terminate()
        for p in reversed(self.procs):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
