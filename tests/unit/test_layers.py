"""No import goes upward (issue 16): each part of ``link_message_queue`` (a subpackage or a root
module) imports only parts of lower layers or of its own layer.

Every ``link_message_queue`` import counts, absolute or relative, at module level, inside a
function or under ``if TYPE_CHECKING:`` (``tests/import_arrows.py`` says what is not an arrow).
``python -m tests.import_arrows`` prints the counts."""

from __future__ import annotations

from pathlib import Path

import link_message_queue
from tests.import_arrows import FACADE, arrows, part_of, upward

SRC_DIR = Path(link_message_queue.__file__).parent.parent

# Lowest first. Parts of one layer may import each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("text",),  # plain-text tables, imports nothing
    ("messages",),  # the wire model and its codec
    ("services",),  # the service registry and reserved names the engine resolves through
    ("engine",),
    ("db",),  # engines, schema, migrations (issue 16 item 1)
    ("transport",),
    ("bulk",),  # send_many: many Celery task messages in one write through the transport
    ("bridge",),  # carries workflow messages between the engine and the queue
    ("processor",),  # a service of the engine (WorkflowProcessor); the bridge does not know it
    ("settings",),  # LINK_MQ_*: read by the application layers only, never by the library below
    ("monitoring",),
    ("runtime",),  # composes bridge, processor and engine for one process
    ("celery_config",),
    ("celery_app",),
    ("worker_consumer",),  # Celery's worker consumer, dead-lettering through celery_app.runtime()
    ("demo",),
    ("cli", "console"),  # the console script loads the CLI under its Ctrl-C guard and back
)

# Upward arrows that issue 16 removes in another step; an entry that no longer exists fails.
KNOWN_UPWARD: set[tuple[str, str]] = set()


def test_layers__every_part_of_the_package_is_in_one_layer() -> None:
    parts = {
        part_of(".".join(path.relative_to(SRC_DIR).with_suffix("").parts))
        for path in (SRC_DIR / "link_message_queue").rglob("*.py")
    }
    listed = [part for layer in LAYERS for part in layer]

    assert len(listed) == len(set(listed)), "a part is in two layers"
    assert sorted(parts - {FACADE} - set(listed)) == []


def test_layers__no_import_goes_upward() -> None:
    up = upward(arrows(SRC_DIR), LAYERS)
    unexpected = [str(arrow) for arrow in up if (arrow.module, arrow.imported) not in KNOWN_UPWARD]
    stale = KNOWN_UPWARD - {(arrow.module, arrow.imported) for arrow in up}

    assert unexpected == [], "imports going upward in LAYERS:\n" + "\n".join(unexpected)
    assert stale == set(), f"gone, remove from KNOWN_UPWARD: {sorted(stale)}"


def test_layers__the_bridge_does_not_import_the_processor() -> None:
    # The check sees what it must: this arrow existed until runtime.py left bridge/.
    found = {(arrow.source, arrow.target) for arrow in arrows(SRC_DIR)}

    assert ("bridge", "processor") not in found
    assert ("runtime", "processor") in found
