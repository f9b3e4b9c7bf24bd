"""webhook.py - an alert webhook receiver on 127.0.0.1 for the tests: a thread serving POSTs,
each call's JSON "blockpipe" object kept in `calls` (in arrival order), `url` to give to
--alert-webhook, `close()` to stop it."""
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer


class WebhookReceiver:
    def __init__(self, path="/hook"):
        self.calls = []
        calls = self.calls

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                calls.append(json.loads(body)["blockpipe"])
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}{path}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()
