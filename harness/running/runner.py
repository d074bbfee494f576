"""The runner: every (arm, example) answered once through its strategy, scored by the task,
and appended durably; resumable."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openai

from harness.config import ModelConfig, Price, batch_mode
from harness.dataset import Example
from harness.errors import InputError
from harness.model.batch import BatchJournal, BatchQueue, BatchSettings
from harness.model.cache import cache_key, open_cache
from harness.model.completion import ChatRequest, Completion, is_endpoint_failure
from harness.model.endpoint import Endpoint, error_kind, response_format_for, retry_after_seconds
from harness.model.limits import AdaptiveLimiter
from harness.model.local_server import LocalServers, base_model_path
from harness.model.pricing import LOCAL_PRICE, billed_price
from harness.paths import cache_dir
from harness.running.outcome import Counts, RunIncomplete, RunInterrupted, Terminated
from harness.running.plan import Plan, build_meta, file_sha256
from harness.running.records import ArmMeta, Record, RunMeta, endpoint_failure_share
from harness.running.resume import check_resumable
from harness.running.scoring import make_record
from harness.running.spend import CHARS_PER_TOKEN, CapHit, SpendCap, SpendCapReached
from harness.running.store import ResultStore, read_columns, write_meta
from harness.strategies import Attempt, Call, Generate, Strategy
from harness.strategies.prompts import Message

Progress = Callable[[int, int, str], None]
BATCHES = "batches.json"  # the run folder's journal of Batch API batches
BATCH_WORKERS = 100_000  # batch mode: requests gathered at once (two full batches)


class Runner:
    """Sends every missing (arm, example) through its strategy and records the result."""

    def __init__(self, p: Plan, run_dir: Path, *, use_cache: bool = True,
                 cache_path: Path | None = None, progress: Progress | None = None,
                 base_urls: dict[str, str | list[str]] | None = None, keep_failures: bool = False,
                 allow_missing: bool = False, created: Path | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        self.p = p
        self.log = log or (lambda _m: None)  # status lines (batch progress)
        self.run_dir = run_dir
        self.progress = progress
        # model name -> base_url override (tests): one URL or a list of replicas
        self.base_urls = dict(base_urls or {})
        self.keep_failures = keep_failures  # on resume, keep endpoint failures as they are
        self.allow_missing = allow_missing  # an unavailable arm does not fail the run
        # the outermost folder this run created: removed again if the input turns out bad
        self.created = created
        self.cache = open_cache(cache_path or cache_dir() / "responses.sqlite",
                                p.cfg.run.cache_ttl) if use_cache else None
        self.counts = Counts()
        self.missing: dict[str, str] = {}  # model id -> why it is unavailable (found at run time)
        self.retried_404: set[str] = set()  # model ids whose first 404 was asked again
        self.answered: Counter[str] = Counter()  # arm -> examples answered in this invocation
        self.spend = SpendCap(p.cfg.run.max_cost_usd)
        self.endpoint_failed: Counter[str] = Counter()  # arm -> endpoint failures on record

    def _todo(self, done: set[tuple[str, str]]) -> list[tuple[Strategy, Example]]:
        items = []
        for s in self.p.strategies:
            for ex in self.p.data.eval:
                if (s.arm.key, ex.id) in done:
                    self.counts.skipped_done += 1
                else:
                    items.append((s, ex))
        return items

    def execute(self) -> Counts:
        """Run to completion (or until Ctrl-C / a fatal endpoint error); return what happened."""
        meta = build_meta(self.p)
        created = self.created
        old = check_resumable(self.run_dir, meta)
        if old is not None:
            meta = dataclasses.replace(meta, started_at=old.started_at or meta.started_at)
        write_meta(self.run_dir, meta)
        cols = read_columns(self.run_dir)  # columns, not a Record per line: a large run stays small
        missing = {s.arm.key for s in self.p.strategies if s.arm.unavailable}  # nothing to ask
        endpoint = {kind: is_endpoint_failure(kind) for kind in set(cols["error_kind"])}
        keys = list(zip(cols["arm"], cols["example_id"], strict=True))
        failed = [key for key, kind in zip(keys, cols["error_kind"], strict=True) if endpoint[kind]]
        redo = set() if self.keep_failures else {key for key in failed if key[0] not in missing}
        self.counts.rerequested = len(redo)
        done = set(keys) - redo
        self.endpoint_failed = Counter(arm for arm, ex in failed if (arm, ex) in done)
        todo = self._todo(done)
        store = ResultStore(self.run_dir)
        status, message = "failed", None
        resume = f"harness run {self.p.cfg.path} --out {self.run_dir} --resume"
        try:
            asyncio.run(self._run_all(todo, store))
            status = "complete"
            if self.spend.hit:
                status = "interrupted"
                message = (f"stopped at the spend cap: ${self.spend.spent:,.4f} spent of "
                           f"run.max_cost_usd ${self.spend.cap:g}")
                raise SpendCapReached(
                    f"{message} (the next request could have passed it); finished examples "
                    f"are saved. To go on, raise the cap: {resume} --max-cost USD")
        except KeyboardInterrupt as exc:
            how = "SIGTERM" if isinstance(exc, Terminated) else "Ctrl-C"
            status, message = "interrupted", f"stopped by {how}"
            err = RunInterrupted(f"interrupted by {how}; finished examples are saved. "
                                 f"Resume with: {resume}")
            if isinstance(exc, Terminated):
                err.exit_code = 143
            raise err from None
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
                self.counts.spent_usd = round(self.spend.spent, 6)
                meta = self._mark_missing(meta)
                problem = self._completeness(meta) if status == "complete" else None
                if problem is not None:
                    status, message = "incomplete", problem
                write_meta(self.run_dir, dataclasses.replace(
                    meta, status=status, message=message,
                    finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
                    counts=asdict(self.counts)))
        if status == "incomplete":
            again = ("" if any(a.unavailable for a in meta.arms) and not self.allow_missing
                     else f"; to request the failed examples again: {resume}")
            raise RunIncomplete(f"{message}. The run is marked incomplete and has no verdict"
                                f"{again}")
        return self.counts

    def _append(self, store: ResultStore, rec: Record) -> None:
        """Record one answered (or failed) example durably, and count it."""
        if rec.error_kind:
            self.counts.failure(rec.error_kind, rec.attempts)
        else:
            self.answered[rec.arm] += 1
        if rec.endpoint_failed:
            self.endpoint_failed[rec.arm] += 1
        store.append(rec)

    def _mark_missing(self, meta: RunMeta) -> RunMeta:
        """Arms whose model turned out not to exist, marked unavailable in the metadata."""
        if not self.missing:
            return dataclasses.replace(meta, allow_missing=self.allow_missing and any(
                a.unavailable for a in meta.arms))
        n = len(self.p.data.eval)

        def why(a: ArmMeta) -> str:
            got = self.answered[a.key]
            return (f"evaluated on {got} of {n} examples, then {self.missing[a.model_id]}" if got
                    else f"not evaluated: {self.missing[a.model_id]}")

        arms = tuple(dataclasses.replace(a, unavailable=a.unavailable or why(a))
                     if a.model_id in self.missing else a for a in meta.arms)
        return dataclasses.replace(meta, arms=arms, allow_missing=self.allow_missing)

    def _completeness(self, meta: RunMeta) -> str | None:
        """Why a run whose requests all finished is still incomplete, or None."""
        unavailable = [a for a in meta.arms if a.unavailable]
        if unavailable and not self.allow_missing:
            names = ", ".join(f"{a.key} ({a.unavailable})" for a in unavailable)
            return (f"{len(unavailable)} arm(s) could not be fully evaluated: {names}; pass "
                    "--allow-missing for a verdict over the arms that were evaluated")
        failed, planned = endpoint_failure_share(meta, self.endpoint_failed)
        limit = meta.run.max_failure_rate
        if planned and failed / planned > limit:
            return (f"the endpoint failed on {failed} of {planned} answers "
                    f"({100 * failed / planned:.1f}%, above run.max_failure_rate {100 * limit:g}%)")
        return None

    async def _run_all(self, todo: list[tuple[Strategy, Example]], store: ResultStore) -> None:
        total = len(todo) + self.counts.skipped_done
        done = self.counts.skipped_done
        cfg = self.p.cfg
        needs_request = [(s, e) for s, e in todo if s.arm.unavailable is None]
        for s, ex in todo:
            if s.arm.unavailable is not None:
                comp = Completion(attempts=0, error_kind="model_unavailable", error=s.arm.unavailable)
                self._append(store, make_record(s, ex, Attempt((Call(s.arm.model_id, comp),)),
                                                s.task))
                done += 1
        if not needs_request:
            if self.progress:
                self.progress(done, total, "")
            return
        models = {s.arm.model for s, _ in needs_request}
        server: LocalServers | None = None
        endpoints: dict[str, Endpoint] = {}
        batchers: dict[str, BatchQueue] = {}  # models in batch mode
        journal: BatchJournal | None = None
        # (model, structured_output, reasoning first) -> its generate
        generators: dict[tuple[str, str, bool, bool], Generate] = {}
        # one limiter per endpoint (base URL + key variable): a 429 storm on one provider must
        # not slow another, nor its headers teach another's rate
        limiters: dict[tuple[str, str | None], AdaptiveLimiter] = {}

        def limiter_for(url: str | list[str] | None, mc: ModelConfig) -> AdaptiveLimiter:
            where = (str(url or mc.base_urls or mc.base_url or mc.provider), mc.api_key_env)
            if where not in limiters:
                limiters[where] = AdaptiveLimiter(
                    cfg.run.concurrency, requests_per_minute=cfg.run.requests_per_minute,
                    tokens_per_minute=cfg.run.tokens_per_minute)
            return limiters[where]

        def on_retry_for(limiter: AdaptiveLimiter) -> Callable[[BaseException | None], None]:
            def on_retry(exc: BaseException | None) -> None:
                self.counts.retries += 1
                kind = error_kind(exc) if exc is not None else "unknown"
                self.counts.retries_by_kind[kind] = self.counts.retries_by_kind.get(kind, 0) + 1
                if isinstance(exc, openai.RateLimitError):
                    limiter.on_rate_limited(retry_after_seconds(exc))
            return on_retry

        self._check_prices(needs_request)

        try:
            local_models = [m for m in models if cfg.models[m].provider == "local"]
            if local_models and not all(m in self.base_urls for m in local_models):
                n_ctx = max(cfg.models[m].n_ctx for m in local_models)
                count = max((cfg.models[m].servers or 0 for m in local_models), default=0) or None
                # started in this thread: see PDEATHSIG
                server = LocalServers(count, self.p.adapters, n_ctx=n_ctx).start()
            adapter_sha = {alias: file_sha256(path) for alias, path in self.p.adapters.items()}
            for m in models:
                mc = cfg.models[m]
                url = self.base_urls.get(m) or (server.base_urls if mc.provider == "local" and server
                                                else None)
                limiter = limiter_for(url, mc)
                endpoints[m] = Endpoint(mc, base_url=url, run=cfg.run, on_retry=on_retry_for(limiter),
                                        on_headers=limiter.on_headers,
                                        before_retry=limiter.pace)
                scope = (f"llama.cpp:{file_sha256(base_model_path())}"
                         if mc.provider == "local" and m not in self.base_urls
                         else endpoints[m].base_url)
                if batch_mode(mc, cfg.run):
                    journal = journal or BatchJournal(self.run_dir / BATCHES)  # one per folder
                    batchers[m] = BatchQueue(
                        endpoints[m].pool.replicas[0].client, m, journal,
                        BatchSettings(poll_seconds=cfg.run.batch_poll_seconds,
                                      max_attempts=cfg.run.max_attempts), self.log)
                for s in {(s.arm.structured_output, s.arm.reasoning, s.arm.logprobs): s
                          for s, _ in needs_request if s.arm.model == m}.values():
                    mode = s.arm.structured_output
                    generators[(m, mode, s.arm.reasoning, s.arm.logprobs)] = self._generator(
                        endpoints[m], scope, adapter_sha, limiter, mode, s.task.output_schema(),
                        batchers.get(m), logprobs=s.arm.logprobs)
            await asyncio.gather(*(endpoints[m].probe() for m in models))
            if self.progress:
                self.progress(done, total, "")
            queue: asyncio.Queue[tuple[Strategy, Example]] = asyncio.Queue()

            skipped = 0

            async def worker() -> None:
                nonlocal done, skipped
                while not self.spend.hit:
                    try:
                        strategy, ex = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        return
                    model_id = strategy.arm.model_id
                    arm = strategy.arm
                    generate = generators[(arm.model, arm.structured_output, arm.reasoning,
                                           arm.logprobs)]
                    try:
                        if model_id in self.missing:  # a 404 earlier: don't pay for the rest
                            comp = Completion(attempts=0, error_kind="model_unavailable",
                                              error=self.missing[model_id])
                            attempt = Attempt((Call(model_id, comp),))
                            skipped += 1
                        else:
                            attempt = await strategy.answer(ex, generate)
                            rec = make_record(strategy, ex, attempt, strategy.task)
                            if (rec.error_kind and rec.error_kind.startswith("not_found")
                                    and model_id not in self.retried_404):
                                # one 404 may be a proxy's hiccup: ask once more before
                                # declaring the model unavailable
                                self.retried_404.add(model_id)
                                attempt = await strategy.answer(ex, generate)
                    except CapHit:  # not recorded: a resume with a higher cap asks it again
                        return
                    rec = make_record(strategy, ex, attempt, strategy.task)
                    if rec.error_kind and rec.error_kind.startswith("not_found"):
                        self.missing.setdefault(model_id, f"the endpoint does not know model "
                                                f"{model_id!r} ({rec.error})")
                    self._append(store, rec)
                    done += 1
                    if self.progress:
                        info = (f"{skipped} not requested: model unavailable" if skipped
                                else strategy.arm.key)
                        self.progress(done, total, info)

            # One model id at a time: llama.cpp's server holds one model (or adapter) in memory and
            # reloads on a switch; a warm-up request keeps that load out of the latency figures.
            for (model, model_id), group in itertools.groupby(
                    needs_request, key=lambda item: (item[0].arm.model, item[0].arm.model_id)):
                if server is not None and cfg.models[model].provider == "local":
                    await endpoints[model].warm_up(model_id)
                items = list(group)
                for item in items:
                    queue.put_nowait(item)
                # batch mode: every request at once, so that they go out in as few batches as can be
                width = min(len(items), BATCH_WORKERS) if model in batchers else cfg.run.concurrency
                workers = [asyncio.create_task(worker()) for _ in range(width)]
                try:
                    await asyncio.gather(*workers)
                finally:
                    for w in workers:
                        w.cancel()
                    await asyncio.gather(*workers, return_exceptions=True)
                if self.spend.hit:
                    break
        finally:
            for batcher in batchers.values():
                await batcher.aclose()
            for ep in endpoints.values():
                with contextlib.suppress(Exception):
                    await ep.aclose()
            if server is not None:
                server.stop()

    def _generator(self, endpoint: Endpoint, scope: str, adapter_sha: dict[str, str],
                   limiter: AdaptiveLimiter, mode: str, schema: dict[str, Any],
                   batcher: BatchQueue | None = None, logprobs: bool = False) -> Generate:
        """The `generate` a strategy calls for one model, structured-output mode and answer
        schema (and whether token log-probabilities are asked for): cache, then limiter and
        endpoint (online) or the batch queue (batch mode)."""
        cfg = self.p.cfg
        model = endpoint.config
        response_format = response_format_for(model, schema, mode)
        prices: dict[str, Price | None] = {}

        async def generate(messages: Sequence[Message], *, model_id: str, sample: int = 0,
                           temperature: float | None = None) -> Completion:
            request = ChatRequest(
                model=model_id, messages=tuple(messages),
                temperature=cfg.run.temperature if temperature is None else temperature,
                max_tokens=cfg.run.max_tokens, token_param=model.token_param, seed=cfg.run.seed,
                response_format=response_format, sample=sample, logprobs=logprobs,
            )
            key = cache_key(scope + adapter_sha.get(model_id, "")
                            + endpoint.model_fingerprint(model_id), request)
            comp = self.cache.get(key) if self.cache else None
            if comp is not None:
                self.counts.cache_hits += 1
                return comp
            if model_id not in prices:
                prices[model_id] = billed_price(model, model_id, cfg.run)
            price = prices[model_id]
            bound = (SpendCap.bound(price, messages, cfg.run.max_tokens)
                     if price is not None and self.spend.cap is not None else 0.0)
            self.spend.reserve(bound)  # CapHit: this request may not start
            try:
                comp = await self._send(request, key, endpoint, limiter, batcher, messages)
            except BaseException:
                self.spend.release(bound)
                raise
            self.spend.settle(bound, price or LOCAL_PRICE, comp)
            self.counts.requests += comp.attempts
            if self.cache is not None:
                self.cache.put(key, request.model, comp)
            return comp

        return generate

    async def _send(self, request: ChatRequest, key: str, endpoint: Endpoint,
                    limiter: AdaptiveLimiter, batcher: BatchQueue | None,
                    messages: Sequence[Message]) -> Completion:
        """One request: through the batch queue, or the limiter and the endpoint."""
        if batcher is not None:
            return await batcher.complete(request, key)
        tokens = sum(len(m["content"]) for m in messages) / CHARS_PER_TOKEN + self.p.cfg.run.max_tokens
        await limiter.acquire(tokens)
        ok = False
        try:
            comp = await endpoint.complete(request)
            ok = comp.error_kind is None
        finally:
            await limiter.release(ok=ok)
        return comp

    def _check_prices(self, items: Sequence[tuple[Strategy, Example]]) -> None:
        """With a spend cap, every model to be requested needs a known price (InputError)."""
        cap = self.p.cfg.run.max_cost_usd
        if cap is None:
            return
        for model, model_id in sorted({(s.arm.model, s.arm.model_id) for s, _ in items}):
            if billed_price(self.p.cfg.models[model], model_id, self.p.cfg.run) is None:
                raise InputError(f"run.max_cost_usd is ${cap:g}, but the price of {model_id!r} "
                                 f"(models.{model}) is unknown, so its spend cannot be counted; "
                                 f"set models.{model}.price")
