"""simnode.py - `blockpipe simnode` as a child process for tests (stdlib only).

    node = Simnode(blockpipe, ["--length", "300", "--block-time", "0"], endpoints=2)
    node.urls[0]                       # http://127.0.0.1:PORT of endpoint ep1 (WebSocket too)
    node.rpc_batch([("eth_blockNumber", [])], ep=0)
    node.control("simnode_fork", 3)    # a control call (docs/ARCH.md): its result
    node.control_error("simnode_fork", 0)  # the error object a refused control call answers
    node.stats()                       # GET /stats
    node.stop()                        # SIGINT: its counters (JSON), exit 0 required
    node.kill()                        # in finally: harmless when already stopped
"""
import json
import signal
import subprocess
import urllib.request


class Simnode:
    def __init__(self, blockpipe, args, endpoints=1):
        cmd = [blockpipe, "simnode", "--listen", "127.0.0.1:0", "--endpoints", str(endpoints)]
        self.proc = subprocess.Popen(cmd + list(args), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.urls = []
        for _ in range(endpoints):
            line = self.proc.stdout.readline()
            if not line.startswith("listening on http://"):
                self.proc.kill()
                raise AssertionError(f"simnode did not start: {line!r} {self.proc.stderr.read()}")
            self.urls.append(line.split()[-1])

    def port(self, ep=0):
        return int(self.urls[ep].rsplit(":", 1)[1])

    def rpc_batch(self, calls, ep=0):
        """Results of a JSON-RPC batch, in call order; an error answer fails the test."""
        body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p}
                for i, (m, p) in enumerate(calls)]
        req = urllib.request.Request(self.urls[ep], data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            answers = sorted(json.loads(r.read()), key=lambda a: a["id"])
        for a in answers:
            if "error" in a:
                raise AssertionError(f"simnode answered an error on endpoint {ep}: {a}")
        return [a["result"] for a in answers]

    def _call(self, method, params, ep):
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        req = urllib.request.Request(self.urls[ep], data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def control(self, method, *params, ep=0):
        """A control call (simnode_fork / simnode_rollback / simnode_reapply, `blockpipe
        simnode --help`): what it did; an error answer fails the test."""
        a = self._call(method, list(params), ep)
        if "error" in a:
            raise AssertionError(f"simnode {method}{list(params)} answered an error: {a}")
        return a["result"]

    def control_error(self, method, *params, ep=0):
        """The error object of a control call that must be refused."""
        a = self._call(method, list(params), ep)
        if "error" not in a:
            raise AssertionError(f"simnode {method}{list(params)} was not refused: {a}")
        return a["error"]

    def stats(self, ep=0):
        with urllib.request.urlopen(self.urls[ep] + "/stats", timeout=10) as r:
            return json.loads(r.read())

    def stop(self):
        """SIGINT: simnode prints its counters as JSON and must exit 0."""
        self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=20)
        if self.proc.returncode != 0:
            raise AssertionError(f"simnode exited {self.proc.returncode} on SIGINT: "
                                 f"{err[-2000:]}")
        return json.loads(out.strip().splitlines()[-1])

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
