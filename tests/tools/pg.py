"""pg.py - a throw-away PostgreSQL server for tests and benchmarks. Python 3.11 stdlib only.

    from pg import Postgres
    with Postgres() as pg:                  # initdb + start, database "bp", user bp/bp
        url = pg.url()                      # postgres://bp:bp@127.0.0.1:PORT/bp
        pg.sql("select 1")                  # -> [["1"]] (through psql)
        pg.restart()                        # fast shutdown + start, same data and port
        pg.kill()                           # SIGKILL the postmaster (crash), then start()

The server binaries come from $BP_PG_BIN, else the newest /usr/lib/postgresql/*/bin
(Debian's postgresql package). initdb runs into a fresh temp dir; as root the dir is chowned
to the `postgres` user and the server runs as that user (PostgreSQL refuses to run as root),
otherwise as the current user. The server listens on 127.0.0.1 on a free port with its unix
socket in the temp dir. It is started directly (not daemonized through pg_ctl) so that it is
our child: stopped by PID in stop(), at exit (atexit) and on SIGTERM, and killed by the
kernel if this process dies first (PR_SET_PDEATHSIG), so a killed test leaves no server.
TCP logins need the password (scram-sha-256), so wrong credentials can be tested.
"""

from __future__ import annotations

import glob
import os
import pwd
import signal
import subprocess
import tempfile
import time

from server import ServerProcess, _child_setup, free_port  # noqa: F401 (free_port: re-exported)

USER = "bp"
PASSWORD = "bp"
DB = "bp"

def pg_bin_dir() -> str | None:
    """Where initdb/postgres/psql are, or None when no server is installed."""
    env = os.environ.get("BP_PG_BIN")
    if env:
        return env if os.path.isfile(os.path.join(env, "postgres")) else None
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                  key=lambda d: int(d.split("/")[-2]) if d.split("/")[-2].isdigit() else 0)
    dirs = [d for d in dirs if os.path.isfile(os.path.join(d, "postgres"))]
    return dirs[-1] if dirs else None


class Postgres(ServerProcess):
    """A running PostgreSQL server. settings: extra -c name=value (e.g. {"fsync": "off"})."""

    STOP_SIGNAL = signal.SIGINT  # fast shutdown: abort sessions, clean checkpoint

    def __init__(self, settings=None, fast: bool = True, start_timeout: float = 60.0):
        self.bin = pg_bin_dir()
        if not self.bin:
            raise RuntimeError("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin); "
                               "run: bash scripts/install-deps.sh --test")
        self.uid = self.gid = None
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            self.uid, self.gid = pw.pw_uid, pw.pw_gid
        self.tmpdir = tempfile.mkdtemp(prefix="bp-pg-")
        if self.uid is not None:
            os.chown(self.tmpdir, self.uid, self.gid)
        self.data = os.path.join(self.tmpdir, "data")
        self.log_path = os.path.join(self.tmpdir, "postgres.log")
        self.port = free_port()
        self.proc = None
        self._log = None
        self.settings = {"max_connections": "40", "shared_buffers": "128MB"}
        if fast:  # tests: durability against power loss is not what they check
            self.settings.update({"fsync": "off", "full_page_writes": "off",
                                  "synchronous_commit": "off"})
        self.settings.update(settings or {})
        self.register()
        try:
            self._initdb()
            self.start(start_timeout)
            self.sql(f"CREATE DATABASE {DB}", db="postgres")
        except BaseException:
            self.stop()
            raise

    # --- process control --------------------------------------------------------------

    def _run_as_owner(self, args, **kw):
        return subprocess.run(args, preexec_fn=_child_setup(self.uid, self.gid),
                              capture_output=True, text=True, **kw)

    def _initdb(self):
        pwfile = os.path.join(self.tmpdir, "pw")
        with open(pwfile, "w") as f:
            f.write(PASSWORD + "\n")
        if self.uid is not None:
            os.chown(pwfile, self.uid, self.gid)
        p = self._run_as_owner([os.path.join(self.bin, "initdb"), "-D", self.data, "-U", USER,
                                "--pwfile", pwfile, "--auth-local=trust",
                                "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C",
                                "--no-sync"], timeout=120)
        if p.returncode != 0:
            raise RuntimeError(f"initdb failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")

    def start(self, timeout: float = 60.0):
        """Starts the server on self.port (the same data dir and port after a stop/kill). A
        start whose port is still held (the killed server's socket not yet let go, or a
        process that took the free port for a moment) is tried again until the timeout."""
        deadline = time.monotonic() + timeout
        self._spawn()
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if "Address already in use" in self.log_tail(5) and \
                        time.monotonic() + 1 < deadline:
                    time.sleep(0.5)
                    self._spawn()
                    continue
                raise RuntimeError(f"postgres exited with {self.proc.returncode} at start:\n"
                                   + self.log_tail())
            p = subprocess.run([os.path.join(self.bin, "pg_isready"), "-q", "-h", "127.0.0.1",
                                "-p", str(self.port)], capture_output=True)
            if p.returncode == 0:
                return
            time.sleep(0.1)
        raise TimeoutError(f"postgres not ready within {timeout:.0f}s:\n" + self.log_tail())

    def _spawn(self):
        args = [os.path.join(self.bin, "postgres"), "-D", self.data, "-p", str(self.port),
                "-k", self.tmpdir, "-c", "listen_addresses=127.0.0.1"]
        for k, v in self.settings.items():
            args += ["-c", f"{k}={v}"]
        if self._log and not self._log.closed:
            self._log.close()
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, cwd=self.tmpdir, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     preexec_fn=_child_setup(self.uid, self.gid))

    def _halt(self, sig, timeout: float = 30.0):
        had = self.proc is not None
        super()._halt(sig, timeout)
        if had and sig == signal.SIGKILL:
            # the postmaster's children notice it is gone and exit; wait for the shared
            # memory segment to be released before a restart
            time.sleep(0.5)
        if self._log and not self._log.closed:
            self._log.close()

    # --- client side ------------------------------------------------------------------

    def url(self, db: str = DB, user: str = USER, password: str = PASSWORD,
            scheme: str = "postgres", query: str = "") -> str:
        u = f"{scheme}://{user}:{password}@127.0.0.1:{self.port}/{db}"
        return u + ("?" + query if query else "")

    def sql(self, sql: str, db: str = DB, timeout: float = 60.0) -> list[list[str]]:
        """Runs sql through psql over TCP; rows as lists of text (NULL is '')."""
        env = dict(os.environ, PGPASSWORD=PASSWORD, PGCONNECT_TIMEOUT="10")
        p = subprocess.run([os.path.join(self.bin, "psql"), "-X", "-q", "-h", "127.0.0.1",
                            "-p", str(self.port), "-U", USER, "-d", db, "-At", "-F", "\t",
                            "-v", "ON_ERROR_STOP=1", "-c", sql],
                           capture_output=True, text=True, env=env, timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f"psql failed ({p.returncode}) on {sql[:200]!r}:\n{p.stderr}")
        return [line.split("\t") for line in p.stdout.splitlines()]
