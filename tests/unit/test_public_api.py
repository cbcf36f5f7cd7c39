"""The public API at the package root: what the quick start imports, documented, and cheap to
import."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import link_message_queue


def test_public_api__the_quick_start_imports_work() -> None:
    from link_message_queue import (
        DispatchContext,
        Payload,
        Settings,
        WorkflowMessage,
        WorkflowMessageHandler,
        producer,
        publish_on,
    )

    message = WorkflowMessage.collect_data_of("Acme\\User", origin="quick-start", target="x")
    assert message.payload == Payload("Acme\\User")
    assert callable(producer)
    assert callable(publish_on)
    assert Settings.from_env({}).queue == "link_processing_queue"
    assert DispatchContext.__name__ == "DispatchContext"
    assert WorkflowMessageHandler.__name__ == "WorkflowMessageHandler"


def test_public_api__every_name_in_all_exists_and_is_documented() -> None:
    for name in link_message_queue.__all__:
        value = getattr(link_message_queue, name)
        if name != "__version__":
            assert inspect.getdoc(value), f"{name} has no docstring"
    assert sorted(link_message_queue.__all__) == link_message_queue.__all__
    assert set(link_message_queue.__all__) <= set(dir(link_message_queue))


def test_public_api__an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        link_message_queue.no_such_name  # type: ignore[attr-defined]  # noqa: B018


def test_public_api__import_registers_the_transport_and_loads_nothing_else() -> None:
    code = (
        "import sys, link_message_queue\n"
        "from kombu.transport import TRANSPORT_ALIASES\n"
        "print(TRANSPORT_ALIASES['linkmq'])\n"
        "print(sorted(m for m in sys.modules if m.startswith('link_message_queue.')))\n"
        "print('celery' in sys.modules, 'sqlalchemy' in sys.modules, 'alembic' in sys.modules)\n"
    )
    alias, loaded, heavy = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.splitlines()

    assert alias == "link_message_queue.transport:Transport"
    assert loaded == "[]"
    assert heavy == "False False False"
