"""A minimal client of Gradio's HTTP protocol (httpx only), to time what the server does without the
gradio_client library's own polling: file upload, the REST call API (/gradio_api/call/<name>) and the
browser's queue protocol (/gradio_api/queue/join + the /queue/data event stream) for the UI's streaming
events, which are private to the gradio_client library."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx


class GradioHTTP:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=60)
        self._config: dict | None = None

    def close(self) -> None:
        self.http.close()

    def upload(self, path: Path) -> dict:
        """Upload a file; returns the FileData dict that an input component takes."""
        with open(path, "rb") as f:
            r = self.http.post("gradio_api/upload", files={"files": (path.name, f)})
        r.raise_for_status()
        return {"path": r.json()[0], "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}

    def call(self, api_name: str, data: list) -> list:
        """A public endpoint through the REST call API; returns the final output list."""
        r = self.http.post(f"gradio_api/call/{api_name}", json={"data": data})
        r.raise_for_status()
        event_id = r.json()["event_id"]
        event = None
        with self.http.stream("GET", f"gradio_api/call/{api_name}/{event_id}") as s:
            for line in s.iter_lines():
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event in ("complete", "error"):
                    payload = json.loads(line[5:])
                    if event == "error":
                        raise RuntimeError(f"gradio error: {payload}")
                    return payload
        raise RuntimeError("stream ended without a result")

    def fn_index(self, api_name: str) -> int:
        if self._config is None:
            self._config = self.http.get("config").raise_for_status().json()
        for dep in self._config["dependencies"]:
            if dep.get("api_name") == api_name:
                return int(dep["id"])
        raise KeyError(api_name)

    def stream(self, api_name: str, data: list) -> Iterator[tuple[float, str, list | None]]:
        """A UI event the way the browser runs it: yields (time.time() on arrival, message kind, output
        data or diffs) for each message of the event, ending with process_completed."""
        session = uuid.uuid4().hex[:11]
        fn = self.fn_index(api_name)
        body = {"data": data, "fn_index": fn, "session_hash": session, "event_data": None, "trigger_id": None}
        self.http.post("gradio_api/queue/join", json=body).raise_for_status()  # messages wait for the stream
        with self.http.stream("GET", "gradio_api/queue/data", params={"session_hash": session},
                              timeout=httpx.Timeout(60, read=120)) as s:
            for line in s.iter_lines():
                if not line.startswith("data:"):
                    continue
                now = time.time()
                msg = json.loads(line[5:])
                kind = msg.get("msg", "")
                out = (msg.get("output") or {}).get("data")
                yield now, kind, out
                if kind == "process_completed":
                    if not msg.get("success", True):
                        raise RuntimeError(f"gradio error: {msg}")
                    return
                if kind == "close_stream":
                    return


def text_of(output: object) -> str:
    """The text an output carries in a generating message: the full value or the strings in its diffs."""
    if isinstance(output, str):
        return output
    if isinstance(output, list):  # diffs: [[action, path, value], ...]
        return "".join(op[2] for op in output if isinstance(op, list) and len(op) == 3 and isinstance(op[2], str))
    return ""
