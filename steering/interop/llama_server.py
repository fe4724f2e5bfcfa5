"""Generate through ``llama-server`` (continuous batching over parallel slots), optionally with our
vector as its control vector: the fast engine for runs of 10^5+ tokens on CPU.

The server adds the control vector at every position of every request (scope ``"all"``), so one
server runs one condition; start another for the next. Prompts go in as token ids encoded by
:func:`steering.prompts.encode` (chat template applied once, as on Hugging Face), and each reply comes
back as a :class:`~steering.evaluate.Generation` with its token ids (end of sequence included, as
:func:`steering.evaluate.generate` counts), so :func:`steering.evaluate.measure_generations` scores it
like a Hugging Face run.

    with LlamaServer("model.gguf", vector=vec, strength=4.0, parallel=8) as server:
        gens, seconds = server.generate(tokenizer, prompts, max_new_tokens=400)
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import InvalidArgumentError, ModelFileError
from ..evaluate.generation import Generation
from ..prompts import Prompt, encode
from ..vector import SteeringVector
from .gguf import export_gguf

STARTUP_SECONDS = 120.0
REQUEST_SECONDS = 3600.0


def find_server(binary: str | os.PathLike[str] | None = None) -> Path:
    """``binary``, else ``$LLAMA_SERVER``, else ``llama-server`` on ``PATH`` or in ``.venv-llama``'s build."""
    if binary is not None:
        if not (Path(binary).is_file() and os.access(binary, os.X_OK)):
            raise ModelFileError(f"llama-server binary {str(binary)!r} does not exist or is not executable.")
        return Path(binary)
    candidates: list[str | Path | None] = [os.environ.get("LLAMA_SERVER"), shutil.which("llama-server")]
    marker = Path(".venv-llama/llama-bin")  # where scripts/llama_env.sh records its build (run from the checkout)
    if marker.is_file():
        candidates.append(Path(marker.read_text().strip()) / "llama-server")
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return Path(c)
    raise ModelFileError(
        "No llama-server binary found (tried the argument, $LLAMA_SERVER, PATH and .venv-llama/llama-bin). "
        "Build one with `bash scripts/llama_env.sh` or point LLAMA_SERVER at yours."
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LlamaServer:
    """A ``llama-server`` process on loopback, stopped on exit (also after an error).

    ``vector`` at ``strength`` is its control vector (every position); ``lora`` a llama.cpp LoRA
    adapter file (:func:`steering.interop.lora_gguf.export_lora_gguf` writes one from peft).
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        *,
        vector: SteeringVector | None = None,
        strength: float = 1.0,
        parallel: int = 8,
        context_per_slot: int = 1024,
        threads: int | None = None,
        binary: str | os.PathLike[str] | None = None,
        lora: str | os.PathLike[str] | None = None,
    ) -> None:
        if not Path(model_path).is_file():
            raise ModelFileError(f"No GGUF model at {str(model_path)!r}; fetch it first (e.g. `steering fetch-model`).")
        if lora is not None and not Path(lora).is_file():
            raise ModelFileError(
                f"No LoRA adapter at {str(lora)!r}; write one with steering.interop.lora_gguf.export_lora_gguf."
            )
        if parallel < 1 or context_per_slot < 16:
            raise InvalidArgumentError(
                f"parallel must be >= 1 and context_per_slot >= 16, got {parallel} and {context_per_slot}."
            )
        self.model_path, self.vector, self.strength = Path(model_path), vector, float(strength)
        self.parallel, self.context_per_slot = parallel, context_per_slot
        self.threads = threads or os.cpu_count() or 1
        self.lora = None if lora is None else Path(lora)
        self.binary = find_server(binary)
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._log: Any = None
        self.url = ""

    def __enter__(self) -> LlamaServer:
        self._tmp = tempfile.TemporaryDirectory(prefix="steering-llama-")
        try:
            argv = [
                str(self.binary), "-m", str(self.model_path), "--host", "127.0.0.1", "--port", str(_free_port()),
                "-np", str(self.parallel), "-c", str(self.parallel * self.context_per_slot),
                "-t", str(self.threads), "--no-webui",
            ]  # fmt: skip
            if self.vector is not None:
                path = Path(self._tmp.name) / "control.gguf"
                export_gguf(self.vector, path)
                argv += ["--control-vector-scaled", f"{path}:{self.strength}"]
            if self.lora is not None:
                argv += ["--lora", str(self.lora)]
            self.url = f"http://127.0.0.1:{argv[argv.index('--port') + 1]}"
            self._log = open(Path(self._tmp.name) / "server.log", "wb")  # closed in __exit__
            self._proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT)
            self._wait_ready(self._proc, Path(self._tmp.name) / "server.log")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_ready(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:]
                raise ModelFileError(f"llama-server exited with code {proc.returncode} at start-up:\n{tail}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        raise ModelFileError(f"llama-server did not answer /health within {STARTUP_SECONDS:.0f} s.")

    def __exit__(self, *exc: Any) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def complete(self, ids: list[int], max_new_tokens: int, **sampling: Any) -> Generation:
        """One completion of the token ids ``ids``; greedy unless ``temperature`` > 0 is given."""
        if self._proc is None:
            raise InvalidArgumentError("The server is not running; use it inside `with LlamaServer(...) as server:`.")
        if len(ids) + max_new_tokens > self.context_per_slot:
            # llama-server would silently drop the start of the prompt (or shift the context) instead.
            raise InvalidArgumentError(
                f"A {len(ids)}-token prompt with {max_new_tokens} new tokens does not fit a slot of "
                f"{self.context_per_slot} tokens: raise context_per_slot (or lower max_new_tokens)."
            )
        body = {
            "prompt": ids, "n_predict": max_new_tokens, "return_tokens": True, "cache_prompt": False,
            "temperature": 0.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0, "repeat_penalty": 1.0, **sampling,
        }  # fmt: skip
        req = urllib.request.Request(
            self.url + "/completion", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=REQUEST_SECONDS) as r:
                out = json.load(r)
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")[:300]
            raise InvalidArgumentError(
                f"llama-server refused a {len(ids)}-token prompt with {max_new_tokens} new tokens (HTTP {e.code}: "
                f"{detail}); a slot holds {self.context_per_slot} tokens: raise context_per_slot."
            ) from None
        if out.get("truncated"):
            raise InvalidArgumentError(f"llama-server truncated a {len(ids)}-token prompt; raise context_per_slot.")
        tokens = [int(t) for t in out["tokens"]]
        finished = out.get("stop_type") == "eos"
        return Generation(out["content"], len(tokens), tokens, finished)

    def generate(
        self,
        tokenizer: Any,
        prompts: Sequence[Prompt],
        *,
        max_new_tokens: int = 128,
        seed: int | None = None,
        **sampling: Any,
    ) -> tuple[list[Generation], float]:
        """Complete every prompt, ``parallel`` at a time; the completions and the wall seconds.

        ``sampling`` goes to the server (``temperature``, ``top_p``, ...); with ``seed``, request ``i``
        samples with seed ``seed + i`` (repeatable whatever the batch).
        """
        encoded = [encode(tokenizer, p) for p in prompts]
        t0 = time.perf_counter()
        with cf.ThreadPoolExecutor(self.parallel) as pool:
            futures = [
                pool.submit(
                    self.complete, ids, max_new_tokens, **sampling, **({} if seed is None else {"seed": seed + i})
                )
                for i, ids in enumerate(encoded)
            ]
            gens = [f.result() for f in futures]
        seconds = time.perf_counter() - t0
        # The text as a Hugging Face run decodes it, so both engines' replies are parsed alike.
        return [
            Generation(tokenizer.decode(g.ids, skip_special_tokens=True), g.n_tokens, g.ids, g.finished) for g in gens
        ], seconds
