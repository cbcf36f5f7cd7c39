"""The transport is imported through its front door (issue 16): code in ``src/`` outside
``transport/`` imports only names that ``link_message_queue.transport`` lists in ``__all__``,
never one of its modules, so the package's inside can move without breaking the rest; and the
database's names (engines, tables, clock, migrations), which the transport re-exports for kombu
users, come from ``link_message_queue.db``. (tests/ and bench/ may still reach inside.)"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import link_message_queue
import link_message_queue.db
import link_message_queue.transport
from link_message_queue.transport import errors as transport_errors
from tests.import_arrows import absolute_module

PACKAGE_DIR = Path(link_message_queue.__file__).parent
TRANSPORT = "link_message_queue.transport"


def boundary_violations() -> Iterator[str]:
    """Yield ``file:line: import`` for each import of a transport internal outside transport/,
    and of a database name through the transport."""
    exported = set(link_message_queue.transport.__all__)
    # The errors are the transport's too (TransportError is the base of every linkmq error).
    database_names = set(link_message_queue.db.__all__) - set(transport_errors.__all__)
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        if (PACKAGE_DIR / "transport") in path.parents:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        where = f"{path.relative_to(PACKAGE_DIR.parent)}"
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith(f"{TRANSPORT}."):
                        yield f"{where}:{node.lineno}: import {alias.name}"
            elif isinstance(node, ast.ImportFrom):
                module = absolute_module(node, path, PACKAGE_DIR)
                if module.startswith(f"{TRANSPORT}."):
                    yield f"{where}:{node.lineno}: from {module} import ..."
                elif module == TRANSPORT:
                    for alias in node.names:
                        if alias.name not in exported:
                            yield f"{where}:{node.lineno}: {alias.name} not in transport.__all__"
                        elif alias.name in database_names:
                            yield f"{where}:{node.lineno}: {alias.name} is link_message_queue.db's"


def test_transport_boundary__outside_code_imports_only_the_transport_package() -> None:
    violations = list(boundary_violations())

    assert violations == [], (
        f"{len(violations)} imports reach inside link_message_queue.transport; export the name "
        "from transport/__init__.py instead:\n" + "\n".join(violations)
    )


def test_transport_boundary__every_exported_name_exists() -> None:
    transport = link_message_queue.transport
    missing = [name for name in transport.__all__ if not hasattr(transport, name)]
    assert missing == []


def test_transport_boundary__the_options_are_documented_once() -> None:
    # transport/options.py's field metadata is the one documentation of the options (the docs
    # site's table is generated from it); any other docstring links there instead of listing.
    from dataclasses import fields

    from link_message_queue.transport.options import TransportOptions

    options = {option.name for option in fields(TransportOptions)}
    listings = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        if path == PACKAGE_DIR / "transport" / "options.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in [tree, *ast.walk(tree)]:
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef):
                named = {option for option in options if option in (ast.get_docstring(node) or "")}
                if len(named) >= 4:
                    listings.append(f"{path.relative_to(PACKAGE_DIR.parent)}: {sorted(named)}")

    assert listings == [], "docstrings listing transport options:\n" + "\n".join(listings)
