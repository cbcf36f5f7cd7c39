"""MkDocs hook: the reference tables of the documentation, generated from the code.

A page names a table with a marker on a line of its own; the marker is replaced by the table,
built from the one definition in the code:

- ``<!-- linkmq:settings -->``: every ``LINK_MQ_*`` variable (``Settings`` fields' metadata,
  and ``OTHER_VARIABLES``);
- ``<!-- linkmq:transport-options -->``: every ``TransportOptions`` field;
- ``<!-- linkmq:cli -->``: ``link-mq --help`` and every command's help (the argparse parser);
- ``<!-- linkmq:bench-latest -->``: ``bench/results/latest.md``, the latest benchmark run.

``bench/results/latest.png`` is added to the site as ``img/bench-latest.png``. A marker that
names no table, or a field without its meaning, fails the build.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

from link_message_queue.cli import build_parser
from link_message_queue.settings import OTHER_VARIABLES, Settings
from link_message_queue.transport.options import TransportOptions

ROOT = Path(__file__).resolve().parents[2]
BENCH_RESULTS = ROOT / "bench" / "results"
NONE = "\u2013"  # an en dash in an empty cell
_MARKER = re.compile(r"^<!-- linkmq:([a-z-]+) -->$", re.MULTILINE)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _default(spec: dataclasses.Field[Any]) -> str:
    shown = spec.metadata.get("shown_default")
    if shown:
        return str(shown)
    if spec.default is None:
        return "(unset)"
    return f"`{spec.default}`"


def _meaning(owner: type, spec: dataclasses.Field[Any]) -> str:
    doc = spec.metadata.get("doc")
    if not doc:
        raise PluginError(f"{owner.__name__}.{spec.name} has no meaning (its field metadata)")
    return str(doc)


def settings_table() -> str:
    lines = [
        "| variable | default | unit | meaning |",
        "| --- | --- | --- | --- |",
    ]
    for spec in dataclasses.fields(Settings):
        lines.append(
            f"| `{spec.metadata['variable']}` | {_cell(_default(spec))} | "
            f"{spec.metadata.get('unit') or NONE} | {_cell(_meaning(Settings, spec))} |"
        )
    for name, (default, meaning) in OTHER_VARIABLES.items():
        lines.append(f"| `{name}` | `{default}` | {NONE} | {_cell(meaning)} |")
    return "\n".join(lines)


def transport_options_table() -> str:
    lines = ["| option | default | unit | meaning |", "| --- | --- | --- | --- |"]
    for spec in dataclasses.fields(TransportOptions):
        default = _default(spec)
        if spec.name == "max_message_bytes":
            default = f"`{spec.default:,}`"
        lines.append(
            f"| `{spec.name}` | {_cell(default)} | {spec.metadata.get('unit') or NONE} | "
            f"{_cell(_meaning(TransportOptions, spec))} |"
        )
    return "\n".join(lines)


def cli_help() -> str:
    parser = build_parser()
    parts = ["```text", parser.format_help().rstrip(), "```"]
    for command, sub in _commands(parser):
        parts += ["", f"### `link-mq {command}`", "", "```text", sub.format_help().rstrip(), "```"]
    return "\n".join(parts)


def _commands(parser: argparse.ArgumentParser, prefix: str = "") -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for action in parser._actions:  # argparse keeps its sub-parsers here and nowhere else
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append((f"{prefix}{name}", sub))
                found += _commands(sub, f"{prefix}{name} ")
    return found


def bench_latest() -> str:
    return (BENCH_RESULTS / "latest.md").read_text(encoding="utf-8")


TABLES = {
    "settings": settings_table,
    "transport-options": transport_options_table,
    "cli": cli_help,
    "bench-latest": bench_latest,
}


def on_files(files: Files, config: MkDocsConfig) -> Files:
    files.append(
        File.generated(
            config, "img/bench-latest.png", abs_src_path=str(BENCH_RESULTS / "latest.png")
        )
    )
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    def replace(match: re.Match[str]) -> str:
        build = TABLES.get(match.group(1))
        if build is None:
            raise PluginError(f"{page.file.src_path}: no generated table {match.group(1)!r}")
        return build()

    return _MARKER.sub(replace, markdown)
