"""A real HTTP server on loopback that serves a registry folder, with injectable faults,
and answers the Hugging Face Hub's ``/{repo}/resolve/{revision}/{file}`` URLs the way
``huggingface_hub`` expects (``X-Repo-Commit``, ``ETag``, ``Content-Length``); and
:func:`external`, which runs another program's server (llama-server, vLLM) on loopback."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class Handler(BaseHTTPRequestHandler):
    server: RegistryServer  # type: ignore[assignment]

    def log_message(self, *args):  # quiet
        pass

    def _resolve(self) -> Path | None:
        path = self.path.split("?", 1)[0].lstrip("/")
        parts = path.split("/")
        if len(parts) > 4 and parts[2] == "resolve":  # hub layout: org/repo/resolve/rev/file...
            path = "/".join(parts[4:])
        self.rel = path
        file = (self.server.root / path).resolve()
        return file if file.is_file() and self.server.root.resolve() in file.parents else None

    def do_POST(self):
        """The two Hub endpoints a commit uses: preupload (all files 'regular') and commit (ndjson)."""
        import base64
        import json

        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        parts = self.path.split("?", 1)[0].strip("/").split("/")  # api/models/org/repo/<verb>/<rev>
        self.server.requests.append("POST " + "/".join(parts))
        if self.server.faults.get("commit") == 403:
            self.send_error(403)
            return
        if len(parts) >= 6 and parts[4] == "preupload":
            files = json.loads(body)["files"]
            reply = {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
        elif len(parts) >= 6 and parts[4] == "commit":
            for line in body.decode().splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    dest = self.server.root / item["value"]["path"]
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(base64.b64decode(item["value"]["content"]))
            self.server.commits += 1
            url = f"{self.server.url}/{parts[2]}/{parts[3]}/commit/{COMMIT}"
            reply = {"commitUrl": url, "commitOid": COMMIT, "pullRequestUrl": None}
        else:
            self.send_error(404)
            return
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_HEAD(self):
        self._serve(body=False)

    def do_GET(self):
        self._serve(body=True)

    def _serve(self, body: bool):
        file = self._resolve()
        self.server.requests.append(self.rel)
        fault = self.server.faults.get(self.rel)
        if fault == "stall":  # accept the connection, never answer
            time.sleep(self.server.slow_seconds)
            return
        if isinstance(fault, str) and fault.startswith("redirect:"):  # send the client elsewhere
            self.send_response(302)
            self.send_header("Location", fault.removeprefix("redirect:"))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if fault == "trickle_headers":  # a status line and headers one byte at a time, never a read timeout
            head = b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 40) for i in range(40))
            for i in range(len(head)):
                try:
                    self.wfile.write(head[i : i + 1])
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(self.server.trickle_seconds)
            return
        if isinstance(fault, tuple):  # (status, times, Retry-After or None): answer status the first times
            code, times, after = fault
            seen = self.server.counts.get(self.rel, 0)
            if seen < times:
                self.server.counts[self.rel] = seen + 1
                self.send_response(code)
                if after is not None:
                    self.send_header("Retry-After", str(after))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        if fault in (404, 500) or file is None:
            code = fault if isinstance(fault, int) else 404
            self.send_response(code)
            if code == 404:
                self.send_header("X-Error-Code", "EntryNotFound")  # what the Hub says for a missing file
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = file.read_bytes()
        if fault == "wrong":
            data = bytes(b ^ 0x01 for b in data)
        if fault == "big":
            data = data * 50
        self.send_response(200)
        if fault != "big":
            self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("X-Repo-Commit", COMMIT)
        self.end_headers()
        if not body:
            return
        if fault == "slow":
            time.sleep(self.server.slow_seconds)
        if fault == "trickle":  # one byte at a time, each well within any read timeout
            for i in range(len(data)):
                try:
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(self.server.trickle_seconds)
            return
        if fault == "drop":
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data)


class RegistryServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path):
        super().__init__(("127.0.0.1", 0), Handler)
        self.root = root
        self.faults: dict[str, object] = {}
        self.counts: dict[str, int] = {}  # answers given so far under a (status, times, after) fault
        self.requests: list[str] = []
        self.commits = 0
        self.slow_seconds = 2.0
        self.trickle_seconds = 0.05

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def serve(root: Path):
    server = RegistryServer(root)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def external(
    cmd: list[str], port: int, env: Mapping[str, str] | None = None, seconds: float = 600, cwd: Path | None = None
) -> Iterator[str]:
    """Run ``cmd`` (a server on ``127.0.0.1:port``), yield its URL once ``/health`` answers 200, always stop it.
    Fails with the server's stderr if it exits first, or after ``seconds`` without an answer."""
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + seconds
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None:
                raise AssertionError(f"{cmd[0]} exited: {server.communicate()[1][-4000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{cmd[0]} did not answer {url}/health within {seconds} s")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=60)


def post_json(url: str, body: Mapping[str, object], timeout: float = 300) -> dict:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        raw = r.read()
    return json.loads(raw) if raw else {}
