"""What do the command line and the Python API accept? docs/reference/cli.md, made from the
argument parser (`harness.cli.build_parser()`: every subcommand's `--help`, at a fixed width),
and docs/reference/api.md, made from the signatures and docstrings of the public functions of
`harness.api` and `harness.testing`."""

from __future__ import annotations

import argparse
import ast
import contextlib
import inspect
import os
import re
import textwrap
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

from docgen.markdown import page

COLUMNS = "100"  # the width argparse formats help at (its COLUMNS environment variable)


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Environment variables set for the duration (argparse's width, no colour)."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --------------------------------------------------------------------------- CLI reference


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(name, help, parser) of every subcommand, in the order they were added."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            out += [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return out


def cli_page() -> str:
    """docs/reference/cli.md: `harness --help` and every subcommand's."""
    with _environment(COLUMNS=COLUMNS, NO_COLOR="1", PYTHON_COLORS="0"):
        from harness.cli import build_parser

        parser = build_parser()
        parts = [f"## harness\n\n{parser.description or ''}\n\n```text\n$ harness --help\n"
                 f"{parser.format_help().rstrip()}\n```"]
        for name, text, sub in _subcommands(parser):
            parts.append(f"## harness {name}\n\n{text[:1].upper() + text[1:]}.\n\n```text\n"
                         f"$ harness {name} --help\n{sub.format_help().rstrip()}\n```")
    intro = ("Generated from the argument parser (`harness.cli.build_parser()`): every "
             "subcommand with its help, as `harness COMMAND --help` prints it at 100 columns.")
    return page("Command line", intro, "\n\n".join(parts))


# --------------------------------------------------------------------------- API reference


def _annotation(value: Any) -> str:
    if value is inspect.Parameter.empty:
        return ""
    return value if isinstance(value, str) else inspect.formatannotation(value)


def _source_defaults(obj: Callable[..., Any]) -> dict[str, str]:
    """Each parameter's default as written in the source (`lambda _m: None`)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(inspect.unwrap(obj))))
    except (OSError, TypeError, SyntaxError):
        return {}
    node = next((n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)),
                None)
    if node is None:
        return {}
    a = node.args
    positional = [*a.posonlyargs, *a.args]
    pairs = list(zip(positional[len(positional) - len(a.defaults):], a.defaults, strict=True))
    pairs += [(arg, d) for arg, d in zip(a.kwonlyargs, a.kw_defaults, strict=True) if d is not None]
    return {arg.arg: ast.unparse(d) for arg, d in pairs}


def _default(value: Any, written: str | None) -> str:
    """A default's repr, or its source text where the repr holds a memory address."""
    text = repr(value)
    return (written or "...") if re.search(r" at 0x[0-9a-fA-F]+", text) else text


def signature_text(name: str, obj: Callable[..., Any]) -> str:
    """`name(a: int, *, b: str = 'x') -> T` with the annotations as written (no quotes); one
    parameter a line when the signature is long."""
    sig = inspect.signature(obj)
    written = _source_defaults(obj) if not inspect.isclass(obj) else {}
    params: list[str] = []
    kinds = inspect.Parameter
    star = False
    items = list(sig.parameters.values())
    for i, p in enumerate(items):
        if p.kind == kinds.KEYWORD_ONLY and not star:
            params.append("*")
            star = True
        ann = _annotation(p.annotation)
        prefix = "*" if p.kind == kinds.VAR_POSITIONAL else "**" if p.kind == kinds.VAR_KEYWORD else ""
        star = star or p.kind == kinds.VAR_POSITIONAL
        text = prefix + p.name + (f": {ann}" if ann else "")
        if p.default is not inspect.Parameter.empty:
            default = _default(p.default, written.get(p.name))
            text += f" = {default}" if ann else f"={default}"
        params.append(text)
        if p.kind == kinds.POSITIONAL_ONLY and (i + 1 == len(items)
                                                or items[i + 1].kind != kinds.POSITIONAL_ONLY):
            params.append("/")
    ret = _annotation(sig.return_annotation)
    tail = f" -> {ret}" if ret and not inspect.isclass(obj) else ""
    one = f"{name}({', '.join(params)}){tail}"
    if len(one) <= 88:
        return one
    return f"{name}(\n" + "".join(f"    {p},\n" for p in params) + f"){tail}"


def _public(module: ModuleType) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, v in vars(module).items() if not n.startswith("_")
                 and (inspect.isfunction(v) or inspect.isclass(v))
                 and getattr(v, "__module__", None) == module.__name__]
    return sorted(names, key=lambda n: (n.lower(), n))


def _entry(module: ModuleType, name: str) -> str:
    obj = getattr(module, name)
    if type(obj).__name__ == "FixtureFunctionDefinition" or hasattr(obj, "_pytestfixturefunction"):
        sig, what = f"@pytest.fixture\ndef {signature_text(name, obj)}", "pytest fixture"
        doc = inspect.getdoc(obj) or ""
    elif inspect.isclass(obj):
        bases = ", ".join(f"`{b.__name__}`" for b in obj.__bases__ if b is not object)
        sig = f"class {signature_text(name, obj)}"
        what = "class" + (f", a subclass of {bases}" if bases else "")
        doc = inspect.getdoc(obj) or ""
    elif callable(obj) and (inspect.isfunction(obj) or inspect.ismethod(obj)):
        decorated = inspect.isgeneratorfunction(inspect.unwrap(obj)) and hasattr(obj, "__wrapped__")
        sig = ("@contextlib.contextmanager\n" if decorated else "") + f"def {signature_text(name, obj)}"
        what, doc = "function", inspect.getdoc(obj) or ""
    else:  # a type alias or a constant: no docstring of its own
        sig, what, doc = f"{name} = {obj!r}", "type alias", ""
    return (f"### {name}\n\n*{what}* `{module.__name__}.{name}`\n\n```python\n{sig}\n```"
            + (f"\n\n{doc}" if doc else ""))


def api_page() -> str:
    """docs/reference/api.md: the public functions of harness.api and harness.testing."""
    import harness.api
    import harness.testing

    parts = []
    for module in (harness.api, harness.testing):
        doc = (module.__doc__ or "").strip()  # written flush left: its indented examples stay code
        parts.append(f"## {module.__name__}\n\n{doc}\n\n"
                     + "\n\n".join(_entry(module, n) for n in _public(module)))
    intro = ("Generated from the docstrings and signatures of `harness.api` (the CLI's every "
             "command, callable from Python; `import harness` gives its main functions) and "
             "`harness.testing` (the regression gate inside a pytest suite).")
    return page("Python API", intro, "\n\n".join(parts))
