"""Data files: CSV and JSONL read and checked, stratified `limit`, leakage removed and counted."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.config import Config, DatasetConfig, load_config
from harness.dataset import (
    Example,
    examples_sha256,
    load_data,
    normalise,
    read_examples,
    stratified_sample,
)
from harness.errors import InputError

DS = DatasetConfig(eval=Path("unused"), train=None, input="text", target="category", id=None, limit=None,
                   seed=0)


def project(folder: Path, eval_body: str, train_body: str | None = None, *, eval_name: str = "eval.csv",
            train_name: str = "train.csv", labels: list[str] | None = None,
            dataset: dict[str, Any] | None = None) -> Config:
    """A config whose data files hold exactly these bodies."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / eval_name).write_text(eval_body, encoding="utf-8")
    ds: dict[str, Any] = {"eval": eval_name, "input": "text", "target": "category", **(dataset or {})}
    if train_body is not None:
        (folder / train_name).write_text(train_body, encoding="utf-8")
        ds["train"] = train_name
    task: dict[str, Any] = {"type": "classification", "instructions": "Classify."}
    if labels is not None:
        task["labels"] = labels
    cfg = {"name": "data", "task": task, "dataset": ds,
           "models": {"m": {"provider": "openai", "model": "x", "api_key_env": "TEST_API_KEY"}},
           "strategies": [{"name": "zs", "type": "zero_shot", "model": "m"}]}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return load_config(path)


def csv_of(rows: list[tuple[str, str]]) -> str:
    """CSV text with a text,category header (values must not need quoting)."""
    return "text,category\n" + "".join(f"{t},{c}\n" for t, c in rows)


def jsonl_of(rows: list[tuple[str, str]]) -> str:
    return "".join(json.dumps({"text": t, "category": c}) + "\n" for t, c in rows)


def read(folder: Path, name: str, body: str | bytes, ds: DatasetConfig = DS) -> list[Example]:
    path = folder / name
    if isinstance(body, bytes):
        path.write_bytes(body)
    else:
        path.write_text(body, encoding="utf-8")
    return read_examples(path, ds, "dataset.eval")


def read_error(folder: Path, name: str, body: str | bytes, ds: DatasetConfig = DS) -> str:
    with pytest.raises(InputError) as info:
        read(folder, name, body, ds)
    assert "\n" not in str(info.value)
    return str(info.value)


ROWS = [("My card was charged twice", "billing"), ("Where is my parcel?", "shipping"),
        ("Return these shoes", "returns")]


# --- reading ------------------------------------------------------------------------------------


def test_csv_and_jsonl_give_the_same_examples(tmp_path: Path) -> None:
    from_csv = read(tmp_path, "e.csv", csv_of(ROWS))
    from_jsonl = read(tmp_path, "e.jsonl", jsonl_of(ROWS))
    assert from_csv == from_jsonl == [Example(str(i), t, c) for i, (t, c) in enumerate(ROWS)]


def test_tsv_ndjson_and_a_byte_order_mark(tmp_path: Path) -> None:
    tsv = "text\tcategory\n" + "".join(f"{t}, really\t{c}\n" for t, c in ROWS)
    assert read(tmp_path, "e.tsv", tsv)[0].input == "My card was charged twice, really"
    expected = [Example(str(i), t, c) for i, (t, c) in enumerate(ROWS)]
    assert read(tmp_path, "e.ndjson", jsonl_of(ROWS)) == expected
    assert read(tmp_path, "bom.csv", "\ufeff" + csv_of(ROWS)) == expected


def test_multi_line_quoted_csv_fields_are_one_example_and_lines_stay_right(tmp_path: Path) -> None:
    body = ('text,category\n"Hello,\nmy card was ""charged""\ntwice",billing\n'
            "Where is my parcel?,shipping\n,returns\n")
    msg = read_error(tmp_path, "e.csv", body)
    assert "line 6: empty input in field 'text'" in msg  # the third record starts on line 6
    examples = read(tmp_path, "ok.csv", body.replace(",returns", "Return it,returns"))
    assert examples[0].input == 'Hello,\nmy card was "charged"\ntwice'
    assert [ex.target for ex in examples] == ["billing", "shipping", "returns"]


def test_jsonl_blank_lines_are_skipped_and_line_numbers_kept(tmp_path: Path) -> None:
    body = (jsonl_of(ROWS[:1]) + "\n   \n" + '{"text": "x", "category": 3}\n'
            + '{"text": "", "category": "a"}\n')
    msg = read_error(tmp_path, "e.jsonl", body)
    assert msg.endswith("line 5: empty input in field 'text'")
    assert read(tmp_path, "ok.jsonl", body.rsplit("{", 1)[0])[1] == Example("1", "x", "3")


def test_jsonl_keeps_unicode_line_separators_inside_strings(tmp_path: Path) -> None:
    body = '{"text": "one\u2028two\u0085three", "category": "a"}\n'
    assert read(tmp_path, "e.jsonl", body)[0].input == "one\u2028two\u0085three"


def test_ids_from_a_field(tmp_path: Path) -> None:
    ds = DatasetConfig(**{**DS.__dict__, "id": "id"})
    body = "id,text,category\nA-1,hello,x\n7,bye,y\n"
    assert [ex.id for ex in read(tmp_path, "e.csv", body, ds)] == ["A-1", "7"]


@pytest.mark.parametrize("name, body, message", [
    ("e.csv", "text,category\n", "holds no examples"),
    ("e.csv", "", "holds no examples"),
    ("e.jsonl", "\n\n", "holds no examples"),
    ("e.csv", "text,label\nhi,a\n", "has no column 'category' (fields: text, label)"),
    ("e.csv", "Text,category\nhi,a\n", "has no column 'text' (did you mean 'Text'?)"),
    ("e.csv", "text,category\nhi,a\nbye\n", "line 3: missing field 'category'"),
    ("e.csv", "text,category\nhi, there,a\n", "line 2: 3 values, but the header has 2 columns"),
    ("e.csv", "text,category\nhi,\n", "line 2: empty target in field 'category'"),
    ("e.csv", "text,category\n  ,a\n", "line 2: empty input in field 'text'"),
    ("e.jsonl", '{"text": "hi"}\n', "line 1: missing field 'category' (fields: text)"),
    ("e.jsonl", '{"text": "hi", "category": null}\n', "line 1: missing field 'category'"),
    ("e.jsonl", '{"text": ["hi"], "category": "a"}\n', "line 1: field 'text' must be a string, not list"),
    ("e.jsonl", '{"text": "a", "category": "b"}\n{"text": "c",\n', "line 2: invalid JSON"),
    ("e.jsonl", '["hi", "a"]\n', "line 1: each line must be a JSON object, not list"),
    ("e.xlsx", "x", "unsupported file type '.xlsx'"),
    ("e.csv", b"text,category\nhi,a\ncaf\xe9,b\n", "not UTF-8 text (invalid continuation byte on line 3)"),
])
def test_bad_data_files(tmp_path: Path, name: str, body: str | bytes, message: str) -> None:
    msg = read_error(tmp_path, name, body)
    assert msg.startswith("dataset.eval: ")
    assert message in msg


def test_duplicate_and_empty_ids(tmp_path: Path) -> None:
    ds = DatasetConfig(**{**DS.__dict__, "id": "id"})
    msg = read_error(tmp_path, "e.csv", "id,text,category\n1,a,x\n2,b,y\n1,c,x\n", ds)
    assert "line 4: duplicate id '1' (first on line 2)" in msg
    assert "line 2: empty id in field 'id'" in read_error(tmp_path, "f.csv", "id,text,category\n ,a,x\n", ds)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"dataset\.eval: file not found"):
        read_examples(tmp_path / "nope.csv", DS, "dataset.eval")
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(InputError, match="is a folder, not a data file"):
        read_examples(tmp_path / "dir.csv", DS, "dataset.eval")


# --- labels -------------------------------------------------------------------------------------


def test_default_labels_are_the_distinct_targets_of_eval_and_train(tmp_path: Path) -> None:
    cfg = project(tmp_path, csv_of([("a", "spam"), ("b", "ham"), ("c", "spam")]),
                  csv_of([("d", "eggs"), ("e", "ham")]))
    assert load_data(cfg).labels == ("eggs", "ham", "spam")


def test_config_labels_keep_their_order_and_may_include_unseen_ones(tmp_path: Path) -> None:
    cfg = project(tmp_path, csv_of([("a", "spam"), ("b", "ham")]), labels=["spam", "ham", "eggs"])
    assert load_data(cfg).labels == ("spam", "ham", "eggs")


def test_target_outside_the_label_set(tmp_path: Path) -> None:
    cfg = project(tmp_path, csv_of([("a", "spam"), ("b", "Ham")]), labels=["spam", "ham"])
    with pytest.raises(InputError) as info:
        load_data(cfg)
    assert str(info.value) == (f"dataset.eval: {tmp_path / 'eval.csv'}: line 3: target 'Ham' is not in the "
                               f"label set (did you mean 'ham'?)")


def test_target_outside_the_label_set_in_the_training_file(tmp_path: Path) -> None:
    cfg = project(tmp_path, csv_of([("a", "spam"), ("b", "ham")]), csv_of([("c", "xyz")]),
                  labels=["spam", "ham"])
    with pytest.raises(InputError, match=r"dataset\.train: .*line 2: target 'xyz' is not in the label set "
                                         r"\(labels: spam, ham\)"):
        load_data(cfg)


def test_a_single_distinct_target_is_not_a_classification(tmp_path: Path) -> None:
    cfg = project(tmp_path, csv_of([("a", "spam"), ("b", "spam")]))
    with pytest.raises(InputError, match="fewer than two distinct targets"):
        load_data(cfg)


def test_targets_are_stripped(tmp_path: Path) -> None:
    cfg = project(tmp_path, 'text,category\na, spam \nb,ham\n', labels=["spam", "ham"])
    assert [ex.target for ex in load_data(cfg).eval] == ["spam", "ham"]


# --- limit: a seeded, stratified sample ---------------------------------------------------------


def _imbalanced() -> list[Example]:
    counts = {"a": 50, "b": 30, "c": 15, "d": 5}
    return [Example(f"{lab}{i}", f"{lab} text {i}", lab) for lab, n in counts.items() for i in range(n)]


def test_stratified_sample_keeps_label_proportions() -> None:
    sample = stratified_sample(_imbalanced(), 20, seed=1)
    assert len(sample) == 20
    assert Counter(ex.target for ex in sample) == {"a": 10, "b": 6, "c": 3, "d": 1}


def test_stratified_sample_uses_largest_remainders() -> None:
    sample = stratified_sample(_imbalanced(), 7, seed=1)  # quotas 3.5, 2.1, 1.05, 0.35
    assert Counter(ex.target for ex in sample) == {"a": 4, "b": 2, "c": 1}


def test_stratified_sample_is_seeded_and_deterministic() -> None:
    examples = _imbalanced()
    first = stratified_sample(examples, 20, seed=1)
    assert stratified_sample(examples, 20, seed=1) == first
    assert stratified_sample(list(examples), 20, seed=1) == first
    assert stratified_sample(examples, 20, seed=2) != first
    assert [ex.id for ex in first] == sorted((ex.id for ex in first), key=[e.id for e in examples].index)


def test_stratified_sample_of_everything_is_everything() -> None:
    examples = _imbalanced()
    assert stratified_sample(examples, 100, seed=0) == examples
    assert stratified_sample(examples, 500, seed=0) == examples


def test_limit_in_load_data(tmp_path: Path) -> None:
    rows = [(f"msg {i}", "spam" if i % 4 else "ham") for i in range(40)]  # 30 spam, 10 ham
    cfg = project(tmp_path, csv_of(rows), dataset={"limit": 8, "seed": 5})
    data = load_data(cfg)
    assert len(data.eval) == 8 and data.eval_total == 40
    assert Counter(ex.target for ex in data.eval) == {"spam": 6, "ham": 2}
    assert data.sha256 == examples_sha256(data.eval)
    assert load_data(cfg) == data
    other = load_data(project(tmp_path / "other", csv_of(rows), dataset={"limit": 8, "seed": 6}))
    assert other.eval != data.eval and other.sha256 != data.sha256


# --- leakage ------------------------------------------------------------------------------------


def test_normalise() -> None:
    assert normalise("  Where IS\tmy\n parcel? ") == "where is my parcel?"
    assert normalise("Straße") == normalise("STRASSE")


def test_train_inputs_equal_to_eval_inputs_are_removed_and_counted(tmp_path: Path) -> None:
    eval_rows = [("My card was charged twice", "billing"), ("Where is my parcel?", "shipping")]
    train_rows = [("my  CARD was charged\ttwice", "billing"),  # the same after normalising
                  ("  where is my parcel?  ", "shipping"),
                  ("My card was charged twice!", "billing"),  # different text: kept
                  ("Reset my password", "account")]
    cfg = project(tmp_path, csv_of(eval_rows), csv_of(train_rows))
    data = load_data(cfg)
    assert data.leaked == 2
    assert [ex.input for ex in data.train] == ["My card was charged twice!", "Reset my password"]
    assert len(data.eval) == 2


def test_leakage_is_checked_against_the_whole_eval_file_not_just_the_sample(tmp_path: Path) -> None:
    eval_rows = [(f"eval message {i}", "spam" if i % 2 else "ham") for i in range(20)]
    train_rows = [(f"EVAL message {i}", "spam" if i % 2 else "ham") for i in range(20)] + [("fresh", "ham")]
    cfg = project(tmp_path, csv_of(eval_rows), csv_of(train_rows), dataset={"limit": 4})
    data = load_data(cfg)
    assert len(data.eval) == 4
    assert data.leaked == 20 and [ex.input for ex in data.train] == ["fresh"]


def test_no_training_file_means_an_empty_pool(tmp_path: Path) -> None:
    data = load_data(project(tmp_path, csv_of(ROWS)))
    assert data.train == () and data.leaked == 0
