"""Config validation: every problem with its location, all of them at once, paths resolved."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import api
from harness.config import Config, load_config, parse_config, with_overrides
from harness.errors import InputError
from harness.tasks import task_problems

LABELS = ["billing", "shipping", "returns", "account"]


def base() -> dict[str, Any]:
    """A valid config as a dict (data files are written by `write`)."""
    return {
        "name": "unit",
        "task": {"type": "classification", "instructions": "Route the message.", "labels": "labels.json"},
        "dataset": {"eval": "data/eval.csv", "train": "data/train.csv", "input": "text",
                    "target": "category"},
        "models": {"fake": {"provider": "openai", "model": "fake-model",
                            "base_url": "http://127.0.0.1:9/v1", "api_key_env": "TEST_API_KEY"}},
        "strategies": [
            {"name": "zero-shot", "type": "zero_shot", "model": "fake"},
            {"name": "few-shot", "type": "few_shot", "model": "fake", "shots": [1, 2]},
        ],
    }


def write(folder: Path, cfg: dict[str, Any] | str, name: str = "config.yaml") -> Path:
    """The config (a dict, or YAML text as is) and its data files under `folder`."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    (folder / "data" / "eval.csv").write_text("text,category\nhello,billing\nbye,shipping\n")
    (folder / "data" / "train.csv").write_text("text,category\nhi,billing\nciao,shipping\n")
    (folder / "labels.json").write_text(json.dumps(LABELS))
    path = folder / name
    path.write_text(cfg if isinstance(cfg, str) else yaml.safe_dump(cfg, sort_keys=False))
    return path


def error_of(folder: Path, cfg: dict[str, Any] | str) -> str:
    """The message of the InputError that loading `cfg` raises."""
    with pytest.raises(InputError) as info:
        load_config(write(folder, cfg))
    return str(info.value)


def edited(**paths: Any) -> dict[str, Any]:
    """base() with values set at dotted paths ("task.labels", "strategies.1.shots"); None deletes."""
    cfg = base()
    for dotted, value in paths.items():
        *parents, last = dotted.split(".")
        node: Any = cfg
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        key: Any = int(last) if last.isdigit() else last
        if value is None:
            del node[key]
        else:
            node[key] = value
    return cfg


# --- a valid config -----------------------------------------------------------------------------


def test_valid_config_loads_with_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, base()))
    assert isinstance(cfg, Config)
    assert cfg.name == "unit"
    assert cfg.task.labels == tuple(LABELS)
    assert [s.name for s in cfg.strategies] == ["zero-shot", "few-shot"]
    few = cfg.strategy("few-shot")
    assert few.shots == (1, 2) and few.selection == "stratified" and few.draws == 1
    assert cfg.models["fake"].token_param == "max_tokens"
    assert cfg.models["fake"].structured_output == "json_schema"
    assert cfg.models["fake"].timeout == cfg.run.timeout
    assert cfg.dataset.limit is None and cfg.dataset.seed == 0
    assert len(cfg.sha256) == 64


def test_relative_paths_resolve_against_the_config_folder_not_the_cwd(tmp_path: Path, monkeypatch) -> None:
    project = tmp_path / "project"
    cfg = base()
    cfg["task"]["output_schema"] = "schema.json"
    path = write(project, cfg)
    (project / "schema.json").write_text(json.dumps(
        {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loaded = load_config(Path("..") / "project" / "config.yaml")
    assert loaded.path == path.resolve()
    assert loaded.dataset.eval == (project / "data" / "eval.csv").resolve()
    assert loaded.dataset.train == (project / "data" / "train.csv").resolve()
    assert loaded.task.labels == tuple(LABELS)  # labels.json found next to the config
    assert loaded.task.output_schema is not None
    assert "label" in loaded.task.output_schema["properties"]


def test_absolute_paths_are_kept(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "eval.csv").write_text("text,category\na,b\n")
    cfg = edited(**{"dataset.eval": str(other / "eval.csv")})
    assert load_config(write(tmp_path / "p", cfg)).dataset.eval == other / "eval.csv"


def test_inline_labels_are_kept_in_order_and_stripped(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, edited(**{"task.labels": ["spam ", "ham"]})))
    assert cfg.task.labels == ("spam", "ham")


@pytest.mark.parametrize("name, body", [
    ("labels.json", json.dumps(["b", "a", "c"])),
    ("labels.yaml", "- b\n- a\n- c\n"),
    ("labels.txt", "b\n\n a \nc\n"),
])
def test_labels_file_formats(tmp_path: Path, name: str, body: str) -> None:
    path = write(tmp_path, edited(**{"task.labels": name}))
    (tmp_path / name).write_text(body)
    assert load_config(path).task.labels == ("b", "a", "c")


def test_no_labels_means_none_here_and_the_data_decides(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, edited(**{"task.labels": None}))).task.labels is None


def test_strategy_forms(tmp_path: Path) -> None:
    cfg = edited(strategies=[
        {"name": "fs", "type": "few_shot", "model": "fake", "shots": 3, "draws": 2, "selection": "random"},
        {"name": "ft", "type": "fine_tuned", "model": "fake",
         "fine_tuned_model": {"name": "my-ft", "train_if_missing": True}},
        {"name": "ft2", "type": "fine_tuned", "model": "fake", "fine_tuned_model": "ft:gpt:x"},
        {"name": "ft3", "type": "fine_tuned", "model": "fake",
         "fine_tuned_model": {"name": "ft:gpt:y", "training_cost_usd": 12.5}},
    ])
    loaded = load_config(write(tmp_path, cfg))
    fs, ft, ft2, ft3 = loaded.strategies
    assert (fs.shots, fs.draws, fs.selection) == ((3,), 2, "random")
    assert (ft.fine_tuned_model, ft.train_if_missing, ft.training_cost_usd) == ("my-ft", True, None)
    assert (ft2.fine_tuned_model, ft2.train_if_missing) == ("ft:gpt:x", False)
    assert (ft3.fine_tuned_model, ft3.training_cost_usd) == ("ft:gpt:y", 12.5)
    unsorted = edited(**{"strategies.1.shots": [8, 2, 4]})
    assert load_config(write(tmp_path, unsorted)).strategies[1].shots == (2, 4, 8)


def test_provider_defaults(tmp_path: Path) -> None:
    cfg = base()
    cfg["models"] = {"oa": {"provider": "openai", "model": "gpt-4o-mini"}, "loc": {"provider": "local"}}
    cfg["strategies"] = [{"name": "a", "type": "zero_shot", "model": "oa"},
                         {"name": "b", "type": "zero_shot", "model": "loc"}]
    loaded = load_config(write(tmp_path, cfg))
    assert loaded.models["oa"].api_key_env == "OPENAI_API_KEY"
    assert loaded.models["loc"].api_key_env is None
    assert loaded.models["loc"].structured_output == "json_object"


def test_sha256_follows_the_file_text(tmp_path: Path) -> None:
    first = load_config(write(tmp_path, base())).sha256
    assert load_config(write(tmp_path, base())).sha256 == first
    assert load_config(write(tmp_path, edited(name="other"))).sha256 != first


def test_with_overrides_replaces_only_what_is_given(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, base()))
    new = with_overrides(cfg, limit=7, concurrency=None)
    assert new.dataset.limit == 7 and new.run.concurrency == cfg.run.concurrency
    assert with_overrides(cfg, limit=None, concurrency=3).dataset.limit is None


def test_unknown_strategy_name(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, base()))
    with pytest.raises(InputError, match="no strategy named 'nope'"):
        cfg.strategy("nope")


# --- each problem with its location -------------------------------------------------------------


@pytest.mark.parametrize("paths, message", [
    ({"task.instruction": "x"},
     "task: unknown key 'instruction' (did you mean 'instructions'?)"),
    ({"models.fake.base_ur": "http://x"},
     "models.fake: unknown key 'base_ur' (did you mean 'base_url'?)"),
    ({"strategies.1.shot": 2},
     "strategies[1]: unknown key 'shot' (did you mean 'shots'?)"),
    ({"strategies.1.shots": 0},
     "strategies[1].shots: 0 is less than the minimum of 1"),
    ({"strategies.1.shots": [2, 2]},
     "strategies[1].shots: [2, 2] has non-unique elements"),
    ({"strategies.1.shots": "four"},
     "strategies[1].shots: expected an integer or a list, got 'four'"),
    ({"strategies.1.shots": None},
     "strategies[1]: 'shots' is a required property"),
    ({"strategies.0.type": "fine_tuned"},
     "strategies[0]: 'fine_tuned_model' is a required property"),
    ({"strategies.0.type": "zeroshot"},
     "strategies[0].type: 'zeroshot' is not one of ['zero_shot', 'few_shot', 'fine_tuned', 'cascade'] "
     "(did you mean 'zero_shot'?)"),
    ({"models.fake.provider": "anthropic"},
     "models.fake.provider: 'anthropic' is not one of ['local', 'openai']"),
    ({"dataset.target": None}, "dataset: give target (the field holding the expected answer)"),
    ({"dataset.limit": 0}, "dataset.limit: 0 is less than the minimum of 1"),
    ({"task": None}, "(top level): 'task' is a required property"),
    ({"tasks": {}}, "(top level): unknown key 'tasks' (did you mean 'task'?)"),
    ({"run": {"temprature": 0}}, "run: unknown key 'temprature' (did you mean 'temperature'?)"),
    ({"finetune": {"batch_size": "big"}}, "finetune.batch_size: expected an integer or 'auto', got 'big'"),
    ({"task.labels": ["only"]}, "task.labels: ['only'] is too short"),
    ({"task.labels": 5}, "task.labels: expected a list, a string or null, got 5"),
    ({"strategies.1.fine_tuned_model": {"nam": "x"}},
     "strategies[1].fine_tuned_model: unknown key 'nam' (did you mean 'name'?)"),
    ({"strategies.1.type": "fine_tuned", "strategies.1.shots": None,
      "strategies.1.fine_tuned_model": {"name": "x", "training_cost_usd": -1}},
     "strategies[1].fine_tuned_model.training_cost_usd: -1 is less than the minimum of 0"),
    ({"models.fake.price": {"input": 1, "fine_tuned": {"input": 2, "outptu": 3}}},
     "models.fake.price.fine_tuned: unknown key 'outptu' (did you mean 'output'?)"),
    ({"dataset.target": True},  # written to the file as `true`
     'dataset.target: got the boolean True - YAML reads unquoted yes/no/on/off/true/false as '
     'booleans; quote it ("true")'),
    ({"name": "has space"}, "name: 'has space' does not match"),
    ({"strategies.0.model": "fak"}, "strategies[0].model: unknown model 'fak' (did you mean 'fake'?)"),
    ({"strategies.0.model": "zzz"}, "strategies[0].model: unknown model 'zzz' (models: fake)"),
    ({"strategies.0.shots": 2}, "strategies[0]: shots/draws/selection apply only to type few_shot"),
    ({"strategies.0.fine_tuned_model": "x"}, "strategies[0].fine_tuned_model: only for type fine_tuned"),
    ({"strategies.1.name": "zero-shot"}, "strategies: duplicate strategy name 'zero-shot'"),
    ({"models.fake.model": None}, "models.fake: 'model' is required for provider openai"),
    ({"models.fake.base_url": "localhost:8000/v1"},
     "models.fake.base_url: 'localhost:8000/v1' is not an http:// or https:// URL"),
    ({"dataset.train": "data/eval.csv"}, "dataset.train: is the same file as dataset.eval"),
    ({"dataset.train": None}, "strategies[1]: type few_shot needs a training pool (set dataset.train)"),
    ({"task.labels": "missing.json"}, "task.labels: cannot read labels file"),
    ({"task.labels": ["a", " a"]}, "task.labels lists the label 'a' twice"),
    ({"task.output_schema": {"type": "object", "properties": {"label": {"type": "strng"}}}},
     "task.output_schema: invalid JSON Schema at properties.label.type: 'strng' is not one of"),
    ({"task.output_schema": "nope.json"}, "task.output_schema: cannot read schema file"),
])
def test_each_problem_is_reported_with_its_location(
    tmp_path: Path, paths: dict[str, Any], message: str
) -> None:
    msg = error_of(tmp_path, edited(**paths))
    assert message in msg
    assert msg.startswith(str(tmp_path / "config.yaml") + ": ")
    assert "\n" not in msg


@pytest.mark.parametrize("labels, message", [
    ("[yes, no]", 'task.labels[0]: got the boolean True; task.labels[1]: got the boolean False - '
                  'YAML reads unquoted yes/no/on/off/true/false as booleans; quote them ("yes", "no")'),
    ("[maybe, On]", 'task.labels[1]: got the boolean True - YAML reads unquoted '
                    'yes/no/on/off/true/false as booleans; quote it ("On")'),
    ("off", 'task.labels: got the boolean False - YAML reads unquoted yes/no/on/off/true/false as '
            'booleans; quote it ("off")'),
])
def test_unquoted_yes_no_in_yaml_says_to_quote_them(tmp_path: Path, labels: str, message: str) -> None:
    """(Regression: `labels: [yes, no]` said 'expected a string or null, got [True, False]'.)"""
    text = yaml.safe_dump(base(), sort_keys=False).replace("labels: labels.json", f"labels: {labels}")
    msg = error_of(tmp_path, text)
    assert message in msg and "expected a string" not in msg
    quoted = text.replace(f"labels: {labels}", 'labels: ["yes", "no"]')
    assert load_config(write(tmp_path, quoted)).task.labels == ("yes", "no")


def test_a_classification_schema_without_label_is_a_task_problem(tmp_path: Path) -> None:
    """The config layer accepts any valid JSON Schema; the task type says what it needs."""
    schema = {"type": "object", "properties": {"category": {"type": "string"}}}
    path = write(tmp_path, edited(**{"task.output_schema": schema}))
    cfg = load_config(path)
    assert cfg.task.output_schema == schema
    assert task_problems(cfg.task) == ["task.output_schema: a classification schema needs a 'label' property"]
    with pytest.raises(InputError) as info:
        api.load_config(path)
    assert str(info.value) == (f"{cfg.path}: task.output_schema: a classification schema needs a 'label' "
                               "property")
    fine = edited(**{"task.output_schema": {"type": "object", "properties": {"label": {"type": "string"}}}})
    fine_path = write(tmp_path / "fine", fine)
    assert task_problems(load_config(fine_path).task) == []
    assert api.load_config(fine_path).task.output_schema == fine["task"]["output_schema"]
    assert task_problems(load_config(write(tmp_path / "default", base())).task) == []


def test_every_schema_problem_is_reported_together_in_order(tmp_path: Path) -> None:
    cfg = base()
    cfg["strategies"] = [{"name": f"s{i}", "type": "zero_shot", "model": "fake"} for i in range(12)]
    cfg["strategies"][10]["draws"] = 0
    cfg["strategies"][2]["modle"] = cfg["strategies"][2].pop("model")
    cfg["run"] = {"concurrency": 0}
    cfg["dataset"]["limt"] = 3
    msg = error_of(tmp_path, cfg)
    parts = msg.split(": ", 1)[1].split("; ")
    assert parts == [
        "dataset: unknown key 'limt' (did you mean 'limit'?)",
        "run.concurrency: 0 is less than the minimum of 1",
        "strategies[2]: unknown key 'modle' (did you mean 'model'?)",
        "strategies[2]: 'model' is a required property",
        "strategies[10].draws: 0 is less than the minimum of 1",
    ]


def test_problems_beyond_the_schema_are_reported_together_too(tmp_path: Path) -> None:
    cfg = edited(**{"task.labels": "nope.json"})
    cfg["strategies"] = [
        {"name": "a", "type": "zero_shot", "model": "gpt"},
        {"name": "a", "type": "zero_shot", "model": "mini", "draws": 2},
    ]
    msg = error_of(tmp_path, cfg)
    for part in ("strategies[0].model: unknown model 'gpt'", "strategies[1].model: unknown model 'mini'",
                 "strategies[1]: shots/draws/selection apply only to type few_shot",
                 "strategies: duplicate strategy name 'a'", "task.labels: cannot read labels file"):
        assert part in msg
    assert msg.count(str(tmp_path / "config.yaml")) == 1


def test_an_api_key_pasted_as_the_variable_name_is_not_echoed(tmp_path: Path) -> None:
    msg = error_of(tmp_path, edited(**{"models.fake.api_key_env": "sk-proj-SECRETSECRET123"}))
    assert "models.fake.api_key_env: must name an environment variable" in msg
    assert "SECRET" not in msg


# --- the file itself ----------------------------------------------------------------------------


def test_malformed_yaml_gives_line_and_column(tmp_path: Path) -> None:
    text = "name: unit\ntask:\n  type: classification\n  - instructions: x\n"
    msg = error_of(tmp_path, text)
    assert "malformed YAML at line 4, column 3" in msg
    assert "block mapping that starts at line 3, column 3" in msg


def test_unclosed_bracket_points_at_where_it_opened(tmp_path: Path) -> None:
    text = "name: unit\ntask:\n  labels: [a, b\ndataset:\n  eval: x\n"
    msg = error_of(tmp_path, text)
    assert "malformed YAML at line 4, column 8" in msg
    assert "flow sequence that starts at line 3, column 11" in msg


def test_tab_indentation_is_malformed_yaml(tmp_path: Path) -> None:
    assert "malformed YAML at line 3, column 1" in error_of(tmp_path, "name: unit\ntask:\n\ttype: x\n")


def test_duplicate_yaml_key_is_an_error(tmp_path: Path) -> None:
    text = yaml.safe_dump(base(), sort_keys=False) + "name: again\n"
    msg = error_of(tmp_path, text)
    assert "duplicate key 'name' (first given at line 1)" in msg
    assert f"line {text.count(chr(10))}, column 1" in msg


def test_yaml_anchors_and_merge_keys_still_work(tmp_path: Path) -> None:
    cfg = base()
    cfg["strategies"] = [{"name": "zs"}]
    text = yaml.safe_dump(cfg, sort_keys=False).replace(
        "- name: zs\n", "- <<: {type: zero_shot, model: fake}\n  name: zs\n")
    loaded = load_config(write(tmp_path, text))
    assert (loaded.strategies[0].type, loaded.strategies[0].model) == ("zero_shot", "fake")


@pytest.mark.parametrize("text, message", [
    ("", "the config file is empty"),
    ("# only a comment\n", "the config file is empty"),
    ("- a\n- b\n", "the config must be a YAML mapping (got list)"),
    ("just text\n", "the config must be a YAML mapping (got str)"),
])
def test_config_that_is_not_a_mapping(tmp_path: Path, text: str, message: str) -> None:
    assert message in error_of(tmp_path, text)


def test_missing_folder_and_undecodable_config_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(InputError, match="config path is a folder, not a file"):
        load_config(tmp_path)
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("name: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"cannot read config file .*not UTF-8"):
        load_config(bad)


@pytest.mark.parametrize("name, body, message", [
    ("labels.json", '{"a": 1}', "must hold a list of non-empty label strings (got dict)"),
    ("labels.json", '["a", ', "is not valid JSON (line 1, column"),
    ("labels.json", '["a", ""]', "must hold a list of non-empty label strings"),
    ("labels.json", '["a", 3]', "must hold a list of non-empty label strings"),
    ("labels.json", '["a"]', "must list at least two labels"),
    ("labels.txt", "a\nb\na\n", "lists the label 'a' twice"),
    ("labels.yaml", "a: [\n", "is not valid YAML at line"),
    ("labels.yaml", "- maybe\n- yes\n- Off\n",
     'labels.yaml: item 2: got the boolean True; item 3: got the boolean False - YAML reads unquoted '
     'yes/no/on/off/true/false as booleans; quote them ("yes", "Off")'),
])
def test_bad_labels_files(tmp_path: Path, name: str, body: str, message: str) -> None:
    cfg = edited(**{"task.labels": name})
    path = write(tmp_path, cfg)
    (tmp_path / name).write_text(body)
    with pytest.raises(InputError) as info:
        load_config(path)
    assert "task.labels: " in str(info.value) and message in str(info.value)


def test_labels_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = write(tmp_path, edited(**{"task.labels": "labels.txt"}))
    (tmp_path / "labels.txt").write_bytes("caf\u00e9\nthé\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"task\.labels: cannot read labels file .* not UTF-8"):
        load_config(path)


def test_output_schema_file_that_is_not_json(tmp_path: Path) -> None:
    path = write(tmp_path, edited(**{"task.output_schema": "schema.json"}))
    (tmp_path / "schema.json").write_text('{\n  "type": "object",\n  oops\n}\n')
    with pytest.raises(InputError, match=r"task\.output_schema: .*schema\.json is not valid JSON \(line 3"):
        load_config(path)


def test_output_schema_must_be_an_object(tmp_path: Path) -> None:
    path = write(tmp_path, edited(**{"task.output_schema": "schema.json"}))
    (tmp_path / "schema.json").write_text("[1, 2]")
    with pytest.raises(InputError, match="the schema must be a JSON object"):
        load_config(path)


def test_parse_config_takes_a_parsed_document(tmp_path: Path) -> None:
    write(tmp_path, base())
    cfg = parse_config(copy.deepcopy(base()), tmp_path / "config.yaml")
    assert cfg.dataset.eval == (tmp_path / "data" / "eval.csv").resolve()
    with pytest.raises(InputError, match="the config file is empty"):
        parse_config(None, tmp_path / "config.yaml")
