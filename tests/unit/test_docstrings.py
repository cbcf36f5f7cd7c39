"""Every public class and function in the package has a docstring (issue 16): a reader finds a
name's shapes, units and errors where the name is defined."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import link_message_queue

PACKAGE_DIR = Path(link_message_queue.__file__).parent


def _is_public(name: str) -> bool:
    return not name.startswith("_")


def _undocumented_in(body: list[ast.stmt], prefix: str) -> Iterator[str]:
    """Yield the dotted names of public classes and functions in ``body`` (recursing into public
    classes) that have no docstring."""
    for node in body:
        if not isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if not _is_public(node.name):
            continue
        name = f"{prefix}.{node.name}"
        if ast.get_docstring(node) is None:
            yield name
        if isinstance(node, ast.ClassDef):
            yield from _undocumented_in(node.body, name)


def undocumented_names() -> list[str]:
    """The ``module.Class.method`` names without a docstring, in every module of the package."""
    names: list[str] = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        relative = path.relative_to(PACKAGE_DIR.parent).with_suffix("")
        module = ".".join(relative.parts)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        names.extend(_undocumented_in(tree.body, module))
    return names


def test_docstrings__every_public_class_and_function_has_one() -> None:
    missing = undocumented_names()

    assert missing == [], f"{len(missing)} public names without a docstring:\n" + "\n".join(missing)
