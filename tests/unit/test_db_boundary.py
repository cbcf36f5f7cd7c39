"""``db/`` is the bottom of the library: it imports nothing else of ``link_message_queue`` (the
transport, the processor and the bridge import it, never the other way; ``test_layers.py``
places it), and its migrations state their own DDL: no revision imports today's models."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import link_message_queue
from tests.import_arrows import absolute_module, arrows

PACKAGE_DIR = Path(link_message_queue.__file__).parent
DB_DIR = PACKAGE_DIR / "db"


def _imports(path: Path) -> Iterator[str]:
    """The absolute module of each import in the file at ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield absolute_module(node, path, PACKAGE_DIR)


def test_db_boundary__db_imports_no_other_part_of_the_package() -> None:
    outward = [str(arrow) for arrow in arrows(PACKAGE_DIR.parent) if arrow.source == "db"]

    assert outward == [], "db/ imports only itself:\n" + "\n".join(outward)


def test_db_boundary__migrations_import_no_model() -> None:
    revisions = sorted((DB_DIR / "migrations" / "versions").glob("*.py"))
    allowed = {"link_message_queue.db.migrations", "alembic", "sqlalchemy"}
    imported = {
        f"{path.name}: {module}"
        for path in revisions
        for module in _imports(path)
        if module.startswith(("link_message_queue", "alembic", "sqlalchemy"))
        and module not in allowed
    }

    assert len(revisions) >= 6
    assert imported == set(), "a revision states its own DDL:\n" + "\n".join(sorted(imported))
