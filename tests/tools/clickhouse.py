"""clickhouse.py - a throw-away ClickHouse server for tests and benchmarks. Python 3 stdlib only.

    from clickhouse import ClickHouse
    with ClickHouse() as ch:                # own config in a temp dir, user bp/bp
        url = ch.url("db")                  # clickhouse://bp:bp@127.0.0.1:PORT/db
        ch.sql("SELECT 1")                  # -> [["1"]] (TabSeparated, \\N -> None)
        ch.restart()                        # SIGTERM + start, same data and ports
        ch.kill()                           # SIGKILL (a crash), then start()
        ch.merge("db")                      # OPTIMIZE ... FINAL of every table, for sure

The server is $BP_CLICKHOUSE_SERVER, else Debian's /usr/sbin/clickhouse-server (package
clickhouse-server, 18.16; scripts/install-deps.sh --test installs it), else `clickhouse server`
from a current single-binary install. Its config (listen_host 127.0.0.1, free http and tcp
ports, path / tmp_path / user_files_path / logs in the temp dir, users `default` without a
password and `bp` with password bp, both from 127.0.0.1 only, UTC) is written by this module;
nothing of /etc/clickhouse-server is read. The server runs as the current user (18.16 does not
refuse root; the data dir is ours either way). It is started directly, not daemonized, so it
is our child: stopped by PID in stop(), at exit (atexit) and on SIGTERM, and killed by the
kernel if this process dies first (PR_SET_PDEATHSIG), so a killed test leaves no server
(pg.py's bookkeeping, shared with the PostgreSQL servers).
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import server as _procs  # free ports, child processes: what every test server shares
from server import ServerProcess

USER = "bp"
PASSWORD = "bp"


def server_cmd() -> list[str] | None:
    """How to start a server, or None when none is installed."""
    env = os.environ.get("BP_CLICKHOUSE_SERVER")
    if env:
        return [env] if os.access(env, os.X_OK) else None
    if os.access("/usr/sbin/clickhouse-server", os.X_OK):
        return ["/usr/sbin/clickhouse-server"]
    one = shutil.which("clickhouse")
    return [one, "server"] if one else None


CONFIG = """<?xml version="1.0"?>
<yandex>
  <logger><level>information</level><log>{d}/server.log</log><errorlog>{d}/server.err.log</errorlog>
    <size>100M</size><count>1</count></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>{http}</http_port>
  <tcp_port>{tcp}</tcp_port>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <users_config>{d}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
  <keep_alive_timeout>30</keep_alive_timeout>
  <mlock_executable>false</mlock_executable>
</yandex>
"""

USERS = """<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
  <users>
    <default><password></password><networks><ip>127.0.0.1</ip></networks>
      <profile>default</profile><quota>default</quota></default>
    <{user}><password>{password}</password><networks><ip>127.0.0.1</ip></networks>
      <profile>default</profile><quota>default</quota></{user}>
  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
    <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>
  </interval></default></quotas>
</yandex>
"""


class ClickHouse(ServerProcess):
    """A running ClickHouse server on 127.0.0.1 (free HTTP and native ports)."""

    def __init__(self, start_timeout: float = 120.0):
        self.cmd = server_cmd()
        if not self.cmd:
            raise RuntimeError("no ClickHouse server (/usr/sbin/clickhouse-server or "
                               "`clickhouse`); run: bash scripts/install-deps.sh --test")
        self.tmpdir = tempfile.mkdtemp(prefix="bp-ch-")
        self.http_port, self.tcp_port = _procs.free_port(), _procs.free_port()
        self.log_path = os.path.join(self.tmpdir, "server.log")
        self.proc = None
        self._out = None
        with open(os.path.join(self.tmpdir, "config.xml"), "w") as f:
            f.write(CONFIG.format(d=self.tmpdir, http=self.http_port, tcp=self.tcp_port))
        with open(os.path.join(self.tmpdir, "users.xml"), "w") as f:
            f.write(USERS.format(user=USER, password=PASSWORD))
        self.register()
        try:
            self.start(start_timeout)
        except BaseException:
            self.stop()
            raise

    # --- process control --------------------------------------------------------------

    def start(self, timeout: float = 120.0):
        """Starts the server (the same data dir and ports after a stop or kill) and waits
        until it answers a query. A restart whose port is still held (the killed server's
        socket not yet let go, or a process that took the free port for a moment) is tried
        again until the timeout."""
        deadline = time.monotonic() + timeout
        self._spawn()
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if "Address already in use" in self.log_tail(5) and \
                        time.monotonic() + 1 < deadline:
                    time.sleep(0.5)
                    self._spawn()
                    continue
                raise RuntimeError(f"clickhouse-server exited with {self.proc.returncode} at "
                                   f"start:\n{self.log_tail()}")
            try:
                if self.sql("SELECT 1", timeout=5) == [["1"]]:
                    return
            except (OSError, RuntimeError):
                pass
            time.sleep(0.1)
        raise TimeoutError(f"clickhouse-server not ready within {timeout:.0f}s:\n"
                           + self.log_tail())

    def _spawn(self):
        if self._out and not self._out.closed:
            self._out.close()
        self._out = open(os.path.join(self.tmpdir, "stdout.log"), "ab")
        self.proc = subprocess.Popen(
            self.cmd + [f"--config-file={self.tmpdir}/config.xml"], cwd=self.tmpdir,
            stdin=subprocess.DEVNULL, stdout=self._out, stderr=subprocess.STDOUT,
            preexec_fn=_procs._child_setup(None, None))

    def _halt(self, sig, timeout: float = 60.0):
        super()._halt(sig, timeout)
        if self._out and not self._out.closed:
            self._out.close()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 30) -> str:
        out = []
        for name in ("server.err.log", "stdout.log"):
            try:
                with open(os.path.join(self.tmpdir, name), errors="replace") as f:
                    out += f.readlines()[-n:]
            except (OSError, TypeError):
                pass
        return "".join(out[-n:])

    # --- client side ------------------------------------------------------------------

    def url(self, db: str = "bp", user: str = USER, password: str = PASSWORD,
            scheme: str = "clickhouse", query: str = "") -> str:
        auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        u = f"{scheme}://{auth}127.0.0.1:{self.http_port}/{db}"
        return u + ("?" + query if query else "")

    def post(self, sql: str, db: str | None = None, body: bytes | None = None,
             timeout: float = 120.0, params: dict | None = None) -> bytes:
        """One statement over HTTP as user bp: the SQL in the body, or in the URL when body
        (INSERT data) is given. Returns the answer; a refusal raises RuntimeError with the
        server's message."""
        q = dict(params or {})
        if db:
            q["database"] = db
        if body is not None:
            q["query"] = sql
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}/?" + urllib.parse.urlencode(q),
            data=body if body is not None else sql.encode(),
            headers={"Authorization": "Basic " + base64.b64encode(
                f"{USER}:{PASSWORD}".encode()).decode()})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.read()
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"clickhouse: {sql[:200]!r}: HTTP {e.code}: "
                               f"{e.read().decode(errors='replace')[:1000]}") from None

    def sql(self, sql: str, db: str | None = None, timeout: float = 120.0) -> list[list]:
        """Rows of a TabSeparated answer as lists of text, \\N as None."""
        text = self.post(sql, db, timeout=timeout, params={"wait_end_of_query": "1"})
        return [[unescape(c) for c in line.split("\t")]
                for line in text.decode().splitlines()]


    def merge(self, db: str, tables=("blocks", "transactions", "logs"), timeout: float = 120.0):
        """OPTIMIZE TABLE ... FINAL of each table until the server did it: a server busy with
        a merge skips the request silently unless optimize_throw_if_noop is set."""
        for t in tables:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    self.post(f"OPTIMIZE TABLE {db}.{t} FINAL", timeout=timeout,
                              params={"optimize_throw_if_noop": "1"})
                    break
                except RuntimeError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)


_ESC = {"t": "\t", "n": "\n", "\\": "\\", "0": "\0", "r": "\r", "'": "'", "b": "\b",
        "f": "\f"}


def unescape(cell: str):
    if cell == "\\N":
        return None
    if "\\" not in cell:
        return cell
    out, i = [], 0
    while i < len(cell):
        if cell[i] == "\\" and i + 1 < len(cell):
            out.append(_ESC.get(cell[i + 1], cell[i + 1]))
            i += 2
        else:
            out.append(cell[i])
            i += 1
    return "".join(out)
