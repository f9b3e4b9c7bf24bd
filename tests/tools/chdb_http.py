"""chdb_http.py - a current ClickHouse (26.5) for tests: chDB's libchdb.so behind a small HTTP
server of our own that speaks the part of ClickHouse's HTTP interface blockpipe uses.

The engine is real ClickHouse 26.5 (chDB's library is ClickHouse's own code run in a process:
parser, MergeTree engines, TTL, UInt256, FINAL, OPTIMIZE, system tables); only the HTTP transport
is this file's. Debian's clickhouse-server 18.16 (tests/tools/clickhouse.py) stays the end-to-end
server of every other test; this one is for what only a current server has (UInt256 columns,
TTL): tests/integration/test_clickhouse_current.py.

    from chdb_http import Chdb
    with Chdb() as ch:            # the same client side as clickhouse.ClickHouse
        ch.url("db"); ch.sql("SELECT version()"); ch.merge("db", tables)

The library is $BP_CHDB_LIB, else .local/node_modules/@chdb/lib-linux-x64-gnu/libchdb.so
(scripts/install-deps.sh --test installs it from npm). The server is this file run as a script in
a process of its own (the library cannot be unloaded, and a test must be able to stop it by PID):
127.0.0.1, a free port, a data dir in a temp dir, one chDB connection, so requests are answered
one at a time (several HTTP connections are accepted).

What the transport does, as ClickHouse's HTTP interface does it:
- GET or POST; the statement is the `query=` URL parameter followed by the body (a newline
  between), or only one of them. `database=` selects the current database for the request.
- An INSERT whose `query=` ends in `FORMAT <name>` takes the body as its data (Native, RowBinary,
  TabSeparated ...; chunked or with a length; `Content-Encoding: gzip` undone): the body is
  written to a file of the data dir and run as `INSERT ... FROM INFILE 'file' FORMAT <name>`.
- Other URL parameters are settings: each is SET before the statement and set back after it
  (`query_id`, `wait_end_of_query`, `session_id`, `session_timeout`, `default_format`, `user`,
  `password` are taken and ignored: one session, answers are sent whole anyway).
- The answer is TabSeparated unless the statement names a FORMAT (or `default_format=`).
- A refusal is HTTP 500 with the engine's text ("Code: N. DB::Exception: ...") and the
  X-ClickHouse-Exception-Code header.

What it cannot be: a server with other clients' queries running beside one (system.processes
shows only the current statement: blockpipe's wait for a killed writer's INSERT never waits),
temporary tables in sessions of their own (one session for all), a server that restarts with
its uptime (the process is one server; restart() starts a new one on the same data dir).
"""

from __future__ import annotations

import ctypes
import gzip
import http.server
import os
import re
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import server as _procs  # noqa: E402  free ports, child processes
from clickhouse import ClickHouse  # noqa: E402  the client side, shared

PKG = "@chdb/lib-linux-x64-gnu"


def lib_path() -> str | None:
    env = os.environ.get("BP_CHDB_LIB")
    if env:
        return env if os.path.isfile(env) else None
    root = os.environ.get("BP_SOURCE_DIR") or os.path.join(HERE, "..", "..")
    p = os.path.join(root, ".local", "node_modules", PKG, "libchdb.so")
    return p if os.path.isfile(p) else None


# ---- the engine ------------------------------------------------------------------------------

class Engine:
    """One chDB connection (libchdb.so through ctypes)."""

    def __init__(self, lib: str, path: str):
        self.lib = ctypes.CDLL(lib)
        L = self.lib
        L.chdb_connect.restype = ctypes.c_void_p
        L.chdb_connect.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)]
        L.chdb_query.restype = ctypes.c_void_p
        L.chdb_query.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
        L.chdb_result_buffer.restype = ctypes.c_void_p
        L.chdb_result_error.restype = ctypes.c_char_p
        L.chdb_result_length.restype = ctypes.c_size_t
        for fn in ("chdb_result_buffer", "chdb_result_error", "chdb_result_length",
                   "chdb_destroy_query_result"):
            getattr(L, fn).argtypes = [ctypes.c_void_p]
        L.chdb_close_conn.argtypes = [ctypes.c_void_p]
        argv = (ctypes.c_char_p * 3)(b"clickhouse", f"--path={path}".encode(), None)
        self.pconn = L.chdb_connect(2, argv)  # a pointer to the connection pointer
        if not self.pconn:
            raise RuntimeError(f"chdb_connect --path={path} failed")
        self.conn = ctypes.cast(self.pconn, ctypes.POINTER(ctypes.c_void_p))[0]

    def query(self, sql: str, fmt: str = "TabSeparated") -> tuple[bytes, str | None]:
        """(answer, None) or (b"", the engine's error text)."""
        r = self.lib.chdb_query(self.conn, sql.encode(), fmt.encode())
        if not r:
            return b"", "Code: 1000. DB::Exception: chdb_query returned no result"
        try:
            e = self.lib.chdb_result_error(r)
            if e:
                return b"", e.decode(errors="replace")
            n = self.lib.chdb_result_length(r)
            buf = self.lib.chdb_result_buffer(r)
            return (ctypes.string_at(buf, n) if buf and n else b""), None
        finally:
            self.lib.chdb_destroy_query_result(r)

    def close(self):
        if self.pconn:
            self.lib.chdb_close_conn(self.pconn)
            self.pconn = None


IGNORED = {"query", "database", "query_id", "wait_end_of_query", "session_id", "session_timeout",
           "session_check", "default_format", "user", "password", "compress", "decompress",
           "enable_http_compression"}
INSERT_DATA = re.compile(r"^\s*INSERT\s+INTO\s+(.*?)\s+FORMAT\s+(\w+)\s*$", re.I | re.S)
FORMAT_AT_END = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.I)
CODE = re.compile(r"Code: (\d+)")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "chdb_http"

    def log_message(self, fmt, *args):  # the test's output stays readable
        pass

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                line = self.rfile.readline()
                if not line:
                    raise ConnectionError("body cut inside a chunk header")
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunk = self.rfile.read(size)
                if len(chunk) != size:
                    raise ConnectionError("body cut inside a chunk")
                parts.append(chunk)
                self.rfile.readline()
            body = b"".join(parts)
        else:
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            if len(body) != n:
                raise ConnectionError("body shorter than its Content-Length")
        enc = self.headers.get("Content-Encoding", "").lower()
        if enc == "gzip":
            body = gzip.decompress(body)
        elif enc == "deflate":
            body = zlib.decompress(body)
        return body

    def _answer(self, status: int, data: bytes, code: int | None = None):
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        if code is not None:
            self.send_header("X-ClickHouse-Exception-Code", str(code))
        self.end_headers()
        self.wfile.write(data)

    def _serve(self):
        try:
            body = self._body()
        except (ConnectionError, ValueError, OSError, EOFError, zlib.error) as e:
            # a body cut by the client: nothing of it is run (a real server may commit the
            # blocks it parsed; blockpipe does not rely on either)
            self.close_connection = True
            try:
                self._answer(500, f"Code: 33. DB::Exception: Cannot read all data: {e}\n"
                             .encode(), 33)
            except OSError:
                pass
            return
        params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query,
                                             keep_blank_values=True))
        status, data, code = self.server.run(params, body)
        self._answer(status, data, code)

    def do_POST(self):
        self._serve()

    def do_GET(self):
        self._serve()


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, engine: Engine, data_dir: str):
        super().__init__(addr, Handler)
        self.engine = engine
        self.data_dir = data_dir
        self.lock = threading.Lock()  # one connection: one statement at a time
        self.n = 0

    def run(self, params: dict, body: bytes) -> tuple[int, bytes, int | None]:
        with self.lock:
            return self._run(params, body)

    def _q(self, sql: str, fmt: str = "TabSeparated"):
        out, err = self.engine.query(sql, fmt)
        if err is not None:
            raise QueryError(err)
        return out

    def _run(self, params, body):
        query = params.get("query")
        infile = None
        settings = {k: v for k, v in params.items() if k not in IGNORED}
        m = INSERT_DATA.match(query) if query is not None and body else None
        if m:
            self.n += 1
            infile = os.path.join(self.data_dir, f"insert-{self.n}.bin")
            with open(infile, "wb") as f:
                f.write(body)
            sql = f"INSERT INTO {m.group(1)} FROM INFILE '{infile}' FORMAT {m.group(2)}"
        elif query is not None and body:
            sql = query + "\n" + body.decode()
        else:
            sql = query if query is not None else body.decode()
        fm = FORMAT_AT_END.search(sql)
        fmt = fm.group(1) if fm and not m else params.get("default_format", "TabSeparated")
        restore = {}
        try:
            db = params.get("database")
            self._q(f"USE `{db}`" if db else "USE default")
            for k, v in settings.items():
                if not re.fullmatch(r"\w+", k):
                    raise QueryError(f"Code: 115. DB::Exception: Unknown setting '{k}'. "
                                     "(UNKNOWN_SETTING)")
                old = self._q("SELECT value FROM system.settings WHERE name = "
                              f"'{k}'").decode().rstrip("\n")
                self._q(f"SET {k} = '{_sq(v)}'" if not re.fullmatch(r"-?\d+", v)
                        else f"SET {k} = {v}")
                restore[k] = old
            return 200, self._q(sql, fmt), None
        except QueryError as e:
            text = str(e)
            c = CODE.search(text)
            code = int(c.group(1)) if c else 1000
            if not text.startswith("Code: "):
                text = f"Code: {code}. DB::Exception: {text}"
            return 500, (text.rstrip("\n") + "\n").encode(), code
        finally:
            for k, old in restore.items():
                try:
                    self._q(f"SET {k} = '{_sq(old)}'" if not re.fullmatch(r"-?\d+", old)
                            else f"SET {k} = {old}")
                except QueryError:
                    pass
            if infile:
                os.unlink(infile)


class QueryError(Exception):
    pass


def _sq(s: str) -> str:
    return s.replace("\\", "\\\\").replace("'", "\\'")


def serve(lib: str, data_dir: str, port: int, ready_file: str):
    os.makedirs(data_dir, exist_ok=True)
    engine = Engine(lib, data_dir)
    out, err = engine.query("SELECT version()")
    if err:
        raise SystemExit(f"chdb: SELECT version(): {err}")
    srv = Server(("127.0.0.1", port), engine, data_dir)
    with open(ready_file + ".tmp", "w") as f:
        f.write(out.decode().strip() + "\n")
    os.rename(ready_file + ".tmp", ready_file)
    try:
        srv.serve_forever(poll_interval=0.2)
    finally:
        engine.close()


# ---- the test's side: the server as a child process ------------------------------------------

class Chdb(ClickHouse):
    """A running chdb_http server on 127.0.0.1 (a free port, data in a temp dir); the client
    side (url, post, sql, merge) is clickhouse.ClickHouse's. Stopped by PID (stop(), at exit,
    on SIGTERM, or by the kernel when the test dies: tests/tools/server.py)."""

    def __init__(self, start_timeout: float = 120.0):
        self.lib = lib_path()
        if not self.lib:
            raise RuntimeError(f"no chDB library ({PKG}: .local/node_modules/{PKG}/libchdb.so "
                               "or $BP_CHDB_LIB); run: bash scripts/install-deps.sh --test")
        self.tmpdir = tempfile.mkdtemp(prefix="bp-chdb-")
        self.http_port = _procs.free_port()
        self.tcp_port = None
        self.proc = None
        self._out = None
        self.version = None
        self.register_and_start(start_timeout)

    def start(self, timeout: float = 120.0):
        ready = os.path.join(self.tmpdir, "ready")
        if os.path.exists(ready):
            os.unlink(ready)
        if self._out and not self._out.closed:
            self._out.close()
        self._out = open(os.path.join(self.tmpdir, "stdout.log"), "ab")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--lib", self.lib, "--path",
             os.path.join(self.tmpdir, "data"), "--port", str(self.http_port), "--ready", ready],
            cwd=self.tmpdir, stdin=subprocess.DEVNULL, stdout=self._out,
            stderr=subprocess.STDOUT, preexec_fn=_procs._child_setup(None, None))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chdb_http exited with {self.proc.returncode} at start:\n"
                                   f"{self.log_tail()}")
            if os.path.exists(ready):
                with open(ready) as f:
                    self.version = f.read().strip()
                return
            time.sleep(0.1)
        raise TimeoutError(f"chdb_http not ready within {timeout:.0f}s:\n{self.log_tail()}")

    def _spawn(self):
        self.start()

    def log_tail(self, n: int = 30) -> str:
        try:
            with open(os.path.join(self.tmpdir, "stdout.log"), errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


def main():
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lib", default=lib_path())
    ap.add_argument("--path", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--ready", required=True)
    a = ap.parse_args()
    if not a.lib:
        raise SystemExit("no libchdb.so: run bash scripts/install-deps.sh --test")
    serve(a.lib, a.path, a.port, a.ready)


if __name__ == "__main__":
    main()
