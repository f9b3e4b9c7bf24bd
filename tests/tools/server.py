"""server.py - the part every server a test starts shares (pg.py, redis.py, clickhouse.py): a
free loopback port, and the process bookkeeping. A server is our child: stopped by PID in
stop(), at exit (atexit) and on SIGTERM, and killed by the kernel if the test dies
(PR_SET_PDEATHSIG, _child_setup)."""
from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import time

_LIVE: list = []
_HOOKED = False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop_all():
    for server in list(_LIVE):
        server.stop()


def _on_sigterm(signum, _frame):
    _stop_all()
    raise SystemExit(128 + signum)


def _hook():
    global _HOOKED
    if _HOOKED:
        return
    _HOOKED = True
    atexit.register(_stop_all)
    try:
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:
        pass


def _child_setup(uid, gid):
    def fn():
        try:
            import ctypes
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except Exception:
            pass
        if uid is not None:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
    return fn


class ServerProcess:
    """A subclass sets STOP_SIGNAL (what shutdown() and stop() send: the server's clean
    shutdown), self.proc when it starts the process, self.tmpdir, and self.log_path (or its
    own log_tail); it calls register() once started, and may extend _halt."""
    STOP_SIGNAL = signal.SIGTERM
    proc = None
    tmpdir = None
    log_path = None

    def register(self):
        _hook()
        _LIVE.append(self)

    def register_and_start(self, *args):
        """register(), then start(*args); stopped again (by PID) when that fails."""
        self.register()
        try:
            self.start(*args)
        except BaseException:
            self.stop()
            raise

    def _halt(self, sig, timeout: float = 30.0):
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
            except ProcessLookupError:
                pass
        self.proc = None

    def shutdown(self):
        """The server's clean shutdown (STOP_SIGNAL), keeping its data."""
        self._halt(self.STOP_SIGNAL)

    def kill(self):
        """SIGKILL (a crash of the server); start() brings it back with what it had stored."""
        self._halt(signal.SIGKILL)

    def restart(self, down_seconds: float = 0.0):
        self.shutdown()
        if down_seconds:
            time.sleep(down_seconds)
        self.start()

    def stop(self):
        """Stops the server by PID and removes its temp dir."""
        self._halt(self.STOP_SIGNAL)
        if self in _LIVE:
            _LIVE.remove(self)
        if self.tmpdir and os.path.isdir(self.tmpdir):
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def log_tail(self, n: int = 30) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except (OSError, TypeError):
            return ""
