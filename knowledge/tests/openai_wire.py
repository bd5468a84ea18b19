"""A local HTTP server that speaks the OpenAI API wire format, for testing our real clients.

Tests queue behaviours (`server.script(...)`) and the server answers the SDK's real HTTP
requests with them: JSON bodies, HTTP errors with Retry-After, slow answers. Nothing in
the SDK is patched. Later tests extend it with chat completions (SSE).
"""

import base64
import json
import struct
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class OpenAIWireServer:
    def __init__(self):
        self.requests = []
        self.behaviours = deque()
        self.dimensions_default = 8
        handler = self._handler()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self):
        host, port = self.httpd.server_address
        return f"http://{host}:{port}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def script(self, *behaviours):
        """Queue behaviours: "ok", ("status", code, retry_after), ("sleep", seconds), ("short",)."""
        self.behaviours.extend(behaviours)

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send_json(self, code, body, headers=None):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                server.requests.append(
                    {
                        "path": self.path,
                        "body": body,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                    }
                )
                behaviour = server.behaviours.popleft() if server.behaviours else "ok"
                if isinstance(behaviour, tuple) and behaviour[0] == "status":
                    _, code, retry_after = behaviour
                    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
                    self._send_json(
                        code,
                        {"error": {"message": f"scripted {code}", "type": "server_error"}},
                        headers,
                    )
                    return
                if isinstance(behaviour, tuple) and behaviour[0] == "sleep":
                    time.sleep(behaviour[1])
                if self.path.endswith("/embeddings"):
                    self._embeddings(body, short=behaviour == ("short",))
                else:
                    self._send_json(404, {"error": {"message": "unknown path"}})

            def _embeddings(self, body, short):
                inputs = body["input"]
                inputs = [inputs] if isinstance(inputs, str) else inputs
                dims = body.get("dimensions") or server.dimensions_default
                if short:
                    inputs = inputs[:-1]
                data = []
                for index, text in enumerate(inputs):
                    # a deterministic vector that depends on the text
                    vector = [((hash(text) >> (i % 32)) % 97) / 97.0 + i for i in range(dims)]
                    if body.get("encoding_format") == "base64":
                        packed = struct.pack(f"<{dims}f", *vector)
                        embedding = base64.b64encode(packed).decode()
                    else:
                        embedding = vector
                    data.append({"object": "embedding", "index": index, "embedding": embedding})
                self._send_json(
                    200,
                    {
                        "object": "list",
                        "data": data,
                        "model": body["model"],
                        "usage": {"prompt_tokens": 3, "total_tokens": 3},
                    },
                )

        return Handler
