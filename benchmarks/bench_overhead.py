"""The whole `harness run` command against a bare keep-alive client, process start included.

Both run as fresh processes against the same loopback server (tests/fake_openai.py in its own
process, a fixed latency per answer), the same N zero-shot requests at the same concurrency, in
interleaved rounds; the figures are medians. The ideal is N / concurrency x latency.

    python benchmarks/bench_overhead.py [--requests 800] [--concurrency 16] [--latency 0.1]
                                        [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from loopback_project import loopback_server, write_project
from record import add_json_flag, emit

ROOT = Path(__file__).resolve().parents[1]

SERVER = """
import sys
sys.path.insert(0, {tests!r})
from fake_openai import FakeOpenAI
with FakeOpenAI(latency_s={latency}) as s:
    print(s.base_url, flush=True)
    sys.stdin.read()
"""

# The floor: about thirty lines of stdlib asyncio, one keep-alive connection per worker, nothing
# but the requests (JSON in, JSON out).
BARE = """
import asyncio, json, sys
from urllib.parse import urlsplit

async def worker(url, queue, out):
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    while not queue.empty():
        i = queue.get_nowait()
        body = json.dumps({"model": "fake", "max_tokens": 64, "temperature": 0, "messages": [
            {"role": "system", "content": "Route it."},
            {"role": "user", "content": f"message number {i}"}]}).encode()
        writer.write(f"POST {url.path}/chat/completions HTTP/1.1\\r\\nHost: {url.netloc}\\r\\n"
                     f"Content-Type: application/json\\r\\nContent-Length: {len(body)}\\r\\n\\r\\n"
                     .encode() + body)
        head = (await reader.readuntil(b"\\r\\n\\r\\n")).decode().lower()
        size = int(head.split("content-length:")[1].split("\\r\\n")[0])
        answer = json.loads(await reader.readexactly(size))
        out.append(json.loads(answer["choices"][0]["message"]["content"]))
    writer.close()

async def main(base_url, n, concurrency):
    url, queue, out = urlsplit(base_url), asyncio.Queue(), []
    for i in range(n):
        queue.put_nowait(i)
    await asyncio.gather(*(worker(url, queue, out) for _ in range(concurrency)))
    print(len(out))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=800)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--rounds", type=int, default=3)
    add_json_flag(ap)
    args = ap.parse_args()
    harness_s: list[float] = []
    bare_s: list[float] = []
    with (loopback_server(SERVER.format(tests=str(ROOT / "tests"), latency=args.latency)) as base_url,
          tempfile.TemporaryDirectory() as tmp):
        t = Path(tmp)
        cfg = write_project(t, base_url, args.requests, args.concurrency)
        env = {**os.environ, "HARNESS_CACHE_DIR": str(t / "cache"),
               "HARNESS_HISTORY": str(t / "history.jsonl")}
        for i in range(args.rounds):
            bare_s.append(_timed([sys.executable, "-c", BARE, base_url, str(args.requests),
                                  str(args.concurrency)], env))
            harness_s.append(_timed([sys.executable, "-m", "harness", "run", str(cfg),
                                     "--out", str(t / f"run{i}"), "--no-cache"], env))
    h, b = statistics.median(harness_s), statistics.median(bare_s)
    emit("overhead", {
        "requests": args.requests, "concurrency": args.concurrency, "latency_s": args.latency,
        "ideal_s": round(args.requests / args.concurrency * args.latency, 2),
        "bare_client_median_s": round(b, 2), "harness_median_s": round(h, 2),
        "harness_over_bare": round(h / b, 3), "target": "<= 1.15",
        "rounds": {"bare": [round(x, 2) for x in bare_s],
                   "harness": [round(x, 2) for x in harness_s]},
    }, args.json)


if __name__ == "__main__":
    main()
