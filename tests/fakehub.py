"""A minimal Hugging Face Hub for tests: serves a local model folder as one repo at one commit, enough for
huggingface_hub's snapshot_download (model info, file tree, HEAD and GET of each file)."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMMIT = "a" * 40


def serve(folder: Path, repo: str) -> ThreadingHTTPServer:
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file())

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _json(self, data) -> None:
            body = json.dumps(data).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _file(self, body: bool) -> None:
            prefix = f"/{repo}/resolve/"
            name = self.path[len(prefix):].split("?")[0].partition("/")[2] if self.path.startswith(prefix) else ""
            path = Path(folder) / name
            if not name or not path.is_file():
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = path.read_bytes()
            self.send_response(200)
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def do_HEAD(self) -> None:
            self._file(body=False)

        def do_GET(self) -> None:
            if self.path.startswith(f"/api/models/{repo}/tree/"):
                self._json([{"type": "file", "path": str(p.relative_to(folder)), "size": p.stat().st_size,
                             "oid": hashlib.sha1(p.read_bytes()).hexdigest()} for p in files])
            elif self.path.startswith(f"/api/models/{repo}"):
                self._json({"id": repo, "sha": COMMIT,
                            "siblings": [{"rfilename": str(p.relative_to(folder))} for p in files]})
            else:
                self._file(body=True)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def blackhole() -> socket.socket:
    """A port that accepts connections and never answers (a firewall that drops, a stuck proxy)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock
