"""Import arrows between the parts of ``link_message_queue``, read from the source with ``ast``.

A part is a subpackage (``transport``, ``bridge``, …) or a module at the package root
(``settings``, ``cli``, …). An arrow is one ``import``/``from … import`` statement in a module of
one part that names a module of another part, absolute or relative, wherever it stands: at module
level, inside a function, under ``if TYPE_CHECKING:``. Not arrows: dynamic imports
(``importlib.import_module``), dotted paths in strings (Celery's ``worker_consumer`` setting,
kombu's transport alias) and imports within one part. The package root's ``__init__.py`` is the
façade, outside the parts (see ``FACADE``).

``python -m tests.import_arrows [SRC_DIR]`` prints the arrows' counts, total and upward in the
layer order of ``tests/unit/test_layers.py``, for ``SRC_DIR`` (default: this checkout's ``src``).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "link_message_queue"
# `link_message_queue/__init__.py`: every `import link_message_queue.x` runs it, its own imports
# are lazy (PEP 562, or under TYPE_CHECKING) and test_public_api.py checks it loads nothing else.
FACADE = "__init__"


def module_name(path: Path, package_dir: Path) -> str:
    """The dotted module name of the file ``path`` inside ``package_dir`` (a package's
    ``__init__.py`` is the package)."""
    parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def absolute_module(node: ast.ImportFrom, path: Path, package_dir: Path) -> str:
    """The absolute module of a ``from … import`` in the file at ``path``."""
    if node.level == 0:
        return node.module or ""
    package = module_name(path, package_dir).split(".")
    if path.name != "__init__.py":
        package.pop()
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


@dataclass(frozen=True)
class Arrow:
    """One import statement from a module of part ``source`` to a module of part ``target``."""

    module: str  # the importing module, dotted
    line: int
    imported: str  # the imported module, dotted
    source: str
    target: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line} ({self.source}) -> {self.imported} ({self.target})"


def part_of(module: str) -> str:
    """The part of a dotted ``link_message_queue`` module: ``transport`` for
    ``link_message_queue.transport.store``, ``cli`` for ``link_message_queue.cli``,
    ``FACADE`` for the package itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else FACADE


def _imported_modules(node: ast.AST, path: Path, package_dir: Path) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        module = absolute_module(node, path, package_dir)
        if module == PACKAGE:
            # `from .. import settings` names a module; `from . import __version__` the façade.
            for alias in node.names:
                named = package_dir / alias.name
                is_part = named.is_dir() or named.with_suffix(".py").is_file()
                yield f"{PACKAGE}.{alias.name}" if is_part else PACKAGE
        else:
            yield module


def arrows(src_dir: Path) -> list[Arrow]:
    """Every arrow between two parts of the package under ``src_dir``, in file order."""
    package_dir = src_dir / PACKAGE
    found = []
    for path in sorted(package_dir.rglob("*.py")):
        module = module_name(path, package_dir)
        source = part_of(module)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            for imported in _imported_modules(node, path, package_dir):
                if imported != PACKAGE and not imported.startswith(f"{PACKAGE}."):
                    continue
                target = part_of(imported)
                if target != source:
                    line = getattr(node, "lineno", 0)
                    found.append(Arrow(module, line, imported, source, target))
    return sorted(found, key=lambda arrow: (arrow.module, arrow.line, arrow.imported))


def layer_index(layers: Sequence[Sequence[str]]) -> Callable[[str], int]:
    """A function from a part to its layer's position in ``layers`` (lowest first); a part in
    no layer raises ``KeyError`` naming it."""
    position = {part: index for index, layer in enumerate(layers) for part in layer}

    def index(part: str) -> int:
        if part not in position:
            raise KeyError(f"part {part!r} is in no layer of {list(layers)}")
        return position[part]

    return index


def upward(found: Sequence[Arrow], layers: Sequence[Sequence[str]]) -> list[Arrow]:
    """The arrows that go from a lower layer to a higher one (the façade excepted)."""
    index = layer_index(layers)
    return [
        arrow
        for arrow in found
        if FACADE not in (arrow.source, arrow.target) and index(arrow.target) > index(arrow.source)
    ]


def counts(found: Sequence[Arrow], layers: Sequence[Sequence[str]]) -> dict[str, int]:
    """Statements and distinct part pairs, total and upward (arrows of the façade left out)."""
    parts = [a for a in found if FACADE not in (a.source, a.target)]
    up = upward(parts, layers)
    return {
        "statements": len(parts),
        "statements_upward": len(up),
        "part_pairs": len({(a.source, a.target) for a in parts}),
        "part_pairs_upward": len({(a.source, a.target) for a in up}),
    }


def main(argv: Sequence[str]) -> int:
    """Print the counts, then each upward arrow."""
    from tests.unit.test_layers import LAYERS  # the one copy of the order (it imports this)

    src_dir = Path(argv[0]) if argv else Path(__file__).resolve().parents[1] / "src"
    found = arrows(src_dir)
    for name, value in counts(found, LAYERS).items():
        print(f"{name}: {value}")
    for arrow in upward(found, LAYERS):
        print(f"upward: {arrow}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
