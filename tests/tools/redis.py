"""redis.py - a throw-away Redis server for tests and benchmarks, and a small client.
Python 3.11 stdlib only.

    from redis import Redis
    with Redis() as r:                      # redis-server on 127.0.0.1:PORT in a temp dir
        url = r.url(query="maxlen=0")       # redis://127.0.0.1:PORT/0?maxlen=0
        r.call("XLEN", "blockpipe:blocks:anvil")       # -> 12
        r.restart(down_seconds=5)           # SIGTERM (AOF flushed), wait, start again
        r.kill()                            # SIGKILL (a crash); start() reloads the AOF
    with Redis(password="s3cret", tls=True) as r:   # requirepass, TLS port only, a test CA
        r.url()                             # rediss://:s3cret@127.0.0.1:PORT/0?tls_ca=...

The server is Debian's redis-server ($BP_REDIS_SERVER overrides), started directly as our
child (stopped by PID in stop(), at exit and on SIGTERM; PR_SET_PDEATHSIG kills it if this
process dies first). Persistence is the append-only file with appendfsync always, so a restart
or a SIGKILL of the server keeps every committed transaction. With tls=True a CA, a server
certificate for 127.0.0.1 / localhost and a client certificate are made with the openssl
command in the temp dir (r.ca, r.client_cert, r.client_key); the plain port is closed.

The client (call) speaks RESP over a socket (TLS with the test CA when the server has it):
replies are str (status, bulk strings as UTF-8), int, None or lists; an error reply raises
RedisError.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

from server import ServerProcess, free_port  # noqa: F401 (re-exported)



class RedisError(Exception):
    pass


def server_bin() -> str:
    b = os.environ.get("BP_REDIS_SERVER") or shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.access(b, os.X_OK):
        raise RuntimeError("redis-server not found (Debian package redis-server); run: "
                           "bash scripts/install-deps.sh --test")
    return b


def _pdeathsig():
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _openssl(*args, cwd):
    p = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{p.stderr}")


def make_test_ca(d: str) -> dict:
    """A CA and two certificates it signed (server: 127.0.0.1 and localhost; client)."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.pem", "-days", "2", "-subj", "/CN=blockpipe test CA", cwd=d)
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
                      ("client", "extendedKeyUsage=clientAuth")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                 f"{name}.csr", "-subj", f"/CN=blockpipe test {name}", cwd=d)
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write(ext + "\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile",
                 f"{name}.ext", cwd=d)
    return {k: os.path.join(d, v) for k, v in (("ca", "ca.pem"), ("cert", "server.pem"),
                                                ("key", "server.key"),
                                                ("client_cert", "client.pem"),
                                                ("client_key", "client.key"))}


def hold_port() -> socket.socket:
    """A loopback port held for a server that stops and starts again on it: a socket bound
    (not listening) with SO_REUSEADDR. redis-server (SO_REUSEADDR too) can bind and listen on
    it, while the kernel gives the port to no one else: not to another test's free_port()
    (bind to port 0) nor as the local port of an outgoing connection - with a plain free_port()
    either could take the port while the server was down, and its next start failed."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    return s


class Redis(ServerProcess):
    """A running redis-server. password: requirepass; tls: TLS only (a test CA)."""

    def __init__(self, password: str | None = None, tls: bool = False,
                 start_timeout: float = 30.0, settings: dict | None = None):
        self.bin = server_bin()
        self.password = password
        self.tls = tls
        self.tmpdir = tempfile.mkdtemp(prefix="bp-redis-")
        self.port_hold = hold_port()
        self.port = self.port_hold.getsockname()[1]
        self.log_path = os.path.join(self.tmpdir, "redis.log")
        self.proc = None
        self.settings = {"appendonly": "yes", "appendfsync": "always", "save": "",
                         "io-threads": "1"}
        self.settings.update(settings or {})
        self.files = make_test_ca(self.tmpdir) if tls else {}
        self.ca = self.files.get("ca")
        self.client_cert = self.files.get("client_cert")
        self.client_key = self.files.get("client_key")
        self.register()
        try:
            self.start(start_timeout)
        except BaseException:
            self.stop()
            raise

    # --- process control --------------------------------------------------------------

    def _args(self) -> list[str]:
        a = [self.bin, "--bind", "127.0.0.1", "--dir", self.tmpdir, "--logfile", self.log_path,
             "--daemonize", "no", "--protected-mode", "no"]
        if self.tls:
            a += ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file",
                  self.files["cert"], "--tls-key-file", self.files["key"],
                  "--tls-ca-cert-file", self.files["ca"], "--tls-auth-clients", "optional"]
        else:
            a += ["--port", str(self.port)]
        if self.password:
            a += ["--requirepass", self.password]
        for k, v in self.settings.items():
            a += [f"--{k}", v]
        return a

    def start(self, timeout: float = 30.0):
        """Starts the server on self.port (the same data and port after a stop/kill)."""
        self.proc = subprocess.Popen(self._args(), cwd=self.tmpdir, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                     preexec_fn=_pdeathsig)
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode} at start:\n"
                                   + self.log_tail())
            try:
                if self.call("PING") == "PONG":
                    return
            except (OSError, RedisError) as e:
                last = e
            time.sleep(0.05)
        raise TimeoutError(f"redis-server not ready within {timeout:.0f}s ({last}):\n"
                           + self.log_tail())

    def stop(self):
        super().stop()
        self.port_hold.close()

    # --- client side ------------------------------------------------------------------

    def url(self, db: int = 0, query: str = "", password: str | None = "") -> str:
        """The output URL: rediss:// with the CA as tls_ca when TLS; password "" means the
        server's own (None: none)."""
        pw = self.password if password == "" else password
        auth = f":{pw}@" if pw else ""
        scheme = "rediss" if self.tls else "redis"
        params = [f"tls_ca={self.ca}"] if self.tls else []
        if query:
            params.append(query)
        return f"{scheme}://{auth}127.0.0.1:{self.port}/{db}" + (
            "?" + "&".join(params) if params else "")

    def connect(self, timeout: float = 10.0, auth: bool = True) -> "Conn":
        return Conn(self, timeout, auth)

    def call(self, *args, timeout: float = 10.0):
        """One command on a fresh connection (AUTH first when the server has a password)."""
        with self.connect(timeout) as c:
            return c.call(*args)


class Conn:
    """A RESP connection (TLS with the test CA and client certificate for a TLS server)."""

    def __init__(self, r: Redis, timeout: float, auth: bool):
        s = socket.create_connection(("127.0.0.1", r.port), timeout=timeout)
        if r.tls:
            ctx = ssl.create_default_context(cafile=r.ca)
            ctx.load_cert_chain(r.client_cert, r.client_key)  # for tls-auth-clients yes
            s = ctx.wrap_socket(s, server_hostname="127.0.0.1")
        self.sock = s
        self.buf = b""
        if auth and r.password:
            self.call("AUTH", r.password)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, *args):
        out = [f"*{len(args)}\r\n".encode()]
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode()
            out.append(f"${len(b)}\r\n".encode() + b + b"\r\n")
        self.sock.sendall(b"".join(out))

    def call(self, *args):
        self.send(*args)
        return self.reply()

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("connection closed by the server")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("connection closed by the server")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n).decode("utf-8", "replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise RedisError(f"bad reply line {line[:80]!r}")


def entries(reply) -> list[tuple[str, dict]]:
    """XRANGE / XREAD entries as (id, {field: value})."""
    out = []
    for ent in reply or []:
        eid, kv = ent[0], ent[1]
        out.append((eid, dict(zip(kv[0::2], kv[1::2]))))
    return out
