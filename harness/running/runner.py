"""The runner: every (arm, example) answered once through its strategy, scored by the task,
and appended durably; resumable."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.config import Price
from harness.dataset import Example
from harness.errors import InputError
from harness.kinds import CLASSIFICATION
from harness.model.cache import open_cache
from harness.model.completion import Completion, is_endpoint_failure
from harness.model.limits import AdaptiveLimiter
from harness.model.pricing import LOCAL_PRICE, billed_price
from harness.model.session import ModelSession
from harness.paths import cache_dir
from harness.running.outcome import Counts, RunIncomplete, RunInterrupted, Terminated
from harness.running.plan import Plan, build_meta
from harness.running.records import ArmMeta, Record, RunMeta, endpoint_failure_share
from harness.running.resume import check_resumable
from harness.running.scoring import make_record
from harness.running.sequential_order import observation
from harness.running.spend import CHARS_PER_TOKEN, CapHit, SpendCap, SpendCapReached
from harness.running.store import ResultStore, read_columns, write_meta
from harness.strategies import Attempt, Call, Generate, Strategy
from harness.strategies.prompts import Message

if TYPE_CHECKING:
    from harness.running.sequential import Monitor

Progress = Callable[[int, int, str], None]
BATCHES = "batches.json"  # the run folder's journal of Batch API batches
BATCH_WORKERS = 100_000  # batch mode: requests gathered at once (two full batches)


class RunMeter:
    """The run's side of every request (model.session.Meter): counted in `counts`, and held
    against the spend cap while in flight."""

    def __init__(self, counts: Counts, spend: SpendCap, max_tokens: int) -> None:
        self.counts = counts
        self.spend = spend
        self.max_tokens = max_tokens

    def cache_hit(self) -> None:
        """An answer from the response cache."""
        self.counts.cache_hits += 1

    def retried(self, kind: str) -> None:
        """A retried attempt, by error kind."""
        self.counts.retries += 1
        self.counts.retries_by_kind[kind] = self.counts.retries_by_kind.get(kind, 0) + 1

    def reserve(self, price: Price | None, messages: Sequence[Message]) -> float:
        """Hold the request's upper bound against the cap (CapHit: it may not start)."""
        bound = (SpendCap.bound(price, messages, self.max_tokens)
                 if price is not None and self.spend.cap is not None else 0.0)
        self.spend.reserve(bound)
        return bound

    def release(self, held: float) -> None:
        """A reserved request that was never answered."""
        self.spend.release(held)

    def settle(self, held: float, price: Price | None, completion: Completion) -> None:
        """The request's reported cost replaces its bound; its attempts are counted."""
        self.spend.settle(held, price or LOCAL_PRICE, completion)
        self.counts.requests += completion.attempts


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
        self._done = self._total = 0  # progress: examples finished (done before included), all
        self._skipped = 0  # examples not requested in this invocation: their model is missing
        self.monitor: Monitor | None = None  # run.sequential: the looks

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
        self.monitor = self._monitor(cols, endpoint)
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
        if self.monitor is not None:
            score = None if rec.endpoint_failed else self._observe(rec.expected, rec.prediction,
                                                                   rec.correct)
            self.monitor.note(rec.arm, rec.example_id, score, rec.schema_valid)

    def _observe(self, expected: Any, prediction: Any, correct: bool) -> float:
        """An answer's score on decision.metric, as the sequential looks see it."""
        return observation(self.p.task, self.p.cfg.decision.metric, expected, prediction, correct)

    def _monitor(self, cols: dict[str, list[Any]], endpoint: dict[Any, bool]) -> Monitor | None:
        """With `run.sequential`, the looks' monitor (the order written to the run folder, and
        fed what is already on record); else None."""
        design = self.p.cfg.run.sequential
        if not design.enabled:
            return None
        from harness.running.sequential import Monitor
        from harness.running.sequential_order import request_order, write_design

        examples = [(ex.id, ex.target) for ex in self.p.data.eval]
        clusters = ({ex.id: ex.cluster for ex in self.p.data.eval}
                    if self.p.cfg.dataset.cluster else None)
        order = request_order(examples, design.seed,
                              stratify=self.p.cfg.task.type == CLASSIFICATION, clusters=clusters)
        write_design(self.run_dir, design, order, clusters)
        monitor = Monitor([s.arm for s in self.p.strategies], order, design, self.p.cfg.decision,
                          clusters)
        for arm, ex, expected, prediction, correct, valid, kind in zip(
                cols["arm"], cols["example_id"], cols["expected"], cols["prediction"],
                cols["correct"], cols["schema_valid"], cols["error_kind"], strict=True):
            score = None if endpoint[kind] else self._observe(expected, prediction, correct)
            monitor.note(arm, str(ex), score, bool(valid))
        return monitor

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
        """Record the arms that cannot be asked, then answer the rest, one model id at a time."""
        self._total = len(todo) + self.counts.skipped_done
        self._done, self._skipped = self.counts.skipped_done, 0
        needs_request = self._record_unavailable(todo, store)
        if not needs_request:
            self._report("")
            return
        self._check_prices(needs_request)
        cfg = self.p.cfg
        meter = RunMeter(self.counts, self.spend, cfg.run.max_tokens)
        async with ModelSession(
                {s.arm.model: cfg.models[s.arm.model] for s, _ in needs_request}, cfg.run,
                meter=meter, batch_journal=self.run_dir / BATCHES, chars_per_token=CHARS_PER_TOKEN,
                cache=self.cache, adapters=self.p.adapters, base_urls=self.base_urls,
                new_limiter=self._new_limiter, log=self.log) as session:
            generators: dict[str, Generate] = {
                s.arm.key: session.generate(s.arm.model, structured_output=s.arm.structured_output,
                                            schema=s.task.output_schema(), logprobs=s.arm.logprobs)
                for s in {s.arm.key: s for s, _ in needs_request}.values()}
            self._report("")
            if self.monitor is None:
                await self._answer(needs_request, session, generators, store)
                return
            await self._rounds(self.monitor, needs_request, session, generators, store)

    async def _answer(self, needs_request: list[tuple[Strategy, Example]], session: ModelSession,
                      generators: dict[str, Generate], store: ResultStore) -> None:
        """Answer the items, one model id at a time: llama.cpp's server holds one model (or
        adapter) in memory and reloads on a switch; a warm-up request keeps that load out of
        the latency figures."""
        for (model, model_id), group in itertools.groupby(
                needs_request, key=lambda item: (item[0].arm.model, item[0].arm.model_id)):
            await session.warm_up(model, model_id)
            items = list(group)
            # batch mode: every request at once, so that they go out in as few batches as can be
            width = (min(len(items), BATCH_WORKERS) if session.batched(model)
                     else self.p.cfg.run.concurrency)
            await self._work(items, generators, store, width)
            if self.spend.hit:
                break

    async def _rounds(self, monitor: Monitor, needs_request: list[tuple[Strategy, Example]],
                      session: ModelSession, generators: dict[str, Generate],
                      store: ResultStore) -> None:
        """A sequential run: one round of examples per look for the arms still active (in
        batch mode, one batch per round), then the look; until the monitor is finished. A
        resumed run replays the rounds already on record without a request."""
        pending = {(s.arm.key, ex.id): (s, ex) for s, ex in needs_request}
        rank = {s.arm.key: i for i, s in enumerate(self.p.strategies)}
        for look in range(monitor.looks):
            active = monitor.active_arms()
            ids = monitor.round(look)
            items = sorted((pending[(key, i)] for key in active for i in ids
                            if (key, i) in pending), key=lambda it: rank[it[0].arm.key])
            await self._answer(items, session, generators, store)
            if self.spend.hit:
                return
            monitor.look(look)
            if monitor.finished:
                return

    def _new_limiter(self) -> AdaptiveLimiter:
        """A limiter for one endpoint of the session, at the run's concurrency and rates."""
        run = self.p.cfg.run
        return AdaptiveLimiter(run.concurrency, requests_per_minute=run.requests_per_minute,
                               tokens_per_minute=run.tokens_per_minute)

    def _record_unavailable(self, todo: list[tuple[Strategy, Example]],
                            store: ResultStore) -> list[tuple[Strategy, Example]]:
        """Record every item of an unavailable arm as such; return the items to request."""
        for s, ex in todo:
            if s.arm.unavailable is not None:
                comp = Completion(attempts=0, error_kind="model_unavailable", error=s.arm.unavailable)
                self._append(store, make_record(s, ex, Attempt((Call(s.arm.model_id, comp),)),
                                                s.task))
                self._done += 1
        return [(s, e) for s, e in todo if s.arm.unavailable is None]

    def _report(self, info: str) -> None:
        """Tell the progress callback how far the run is."""
        if self.progress:
            self.progress(self._done, self._total, info)

    async def _work(self, items: list[tuple[Strategy, Example]], generators: dict[str, Generate],
                    store: ResultStore, width: int) -> None:
        """Answer `items` with `width` workers (until done, or the spend cap is hit)."""
        queue: asyncio.Queue[tuple[Strategy, Example]] = asyncio.Queue()
        for item in items:
            queue.put_nowait(item)
        workers = [asyncio.create_task(self._worker(queue, generators, store))
                   for _ in range(width)]
        try:
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _worker(self, queue: asyncio.Queue[tuple[Strategy, Example]],
                      generators: dict[str, Generate], store: ResultStore) -> None:
        """Take items off the queue, answer and record each, until none is left."""
        while not self.spend.hit:
            try:
                strategy, ex = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                attempt = await self._attempt(strategy, ex, generators[strategy.arm.key])
            except CapHit:  # not recorded: a resume with a higher cap asks it again
                return
            rec = make_record(strategy, ex, attempt, strategy.task)
            model_id = strategy.arm.model_id
            if rec.error_kind and rec.error_kind.startswith("not_found"):
                self.missing.setdefault(model_id, f"the endpoint does not know model "
                                        f"{model_id!r} ({rec.error})")
            self._append(store, rec)
            self._done += 1
            self._report(f"{self._skipped} not requested: model unavailable" if self._skipped
                         else strategy.arm.key)

    async def _attempt(self, strategy: Strategy, ex: Example, generate: Generate) -> Attempt:
        """The strategy's answer to one example; none asked for a model known to be missing."""
        model_id = strategy.arm.model_id
        if model_id in self.missing:  # a 404 earlier: don't pay for the rest
            self._skipped += 1
            comp = Completion(attempts=0, error_kind="model_unavailable",
                              error=self.missing[model_id])
            return Attempt((Call(model_id, comp),))
        attempt = await strategy.answer(ex, generate)
        if (any((c.completion.error_kind or "").startswith("not_found") for c in attempt.calls)
                and model_id not in self.retried_404):
            # one 404 may be a proxy's hiccup: ask once more before declaring the model unavailable
            self.retried_404.add(model_id)
            attempt = await strategy.answer(ex, generate)
        return attempt

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
