"""``link-mq enqueue``, ``tick`` and ``dead-letters`` against a real database."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from link_message_queue.cli import main
from link_message_queue.messages import WorkflowMessage, encode


@pytest.fixture
def env(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LINK_MQ_DATABASE_URL", database_url)
    monkeypatch.setenv(
        "LINK_MQ_TABLE_PREFIX", f"cli{tmp_path.name[-6:].lower().replace('-', '_')}_"
    )
    monkeypatch.setenv("LINK_MQ_MAX_ATTEMPTS", "1")
    monkeypatch.delenv("LINK_MQ_CONFIG", raising=False)
    if not database_url.startswith("sqlite"):
        assert main(["db", "upgrade"]) == 0


def test_cli__enqueue_tick_dead_letter_requeue_purge(
    env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a message for a target nobody serves
    message = WorkflowMessage.collect_data_of("Acme\\User", "localhost", "Nobody\\Home")
    path = tmp_path / "message.json"
    path.write_text(encode(message))

    assert main(["enqueue", str(path)]) == 0
    assert f"queued {message.name} {message.uuid}" in capsys.readouterr().out

    # When a tick runs a consumer step, the message is poison: dead-lettered at once
    assert main(["tick"]) == 0
    assert json.loads(capsys.readouterr().out)["dead_lettered"] == 1

    assert main(["dead-letters", "list"]) == 0
    header, line = capsys.readouterr().out.splitlines()
    assert header.split()[0] == "id"
    assert "poison" in line
    assert message.name in line
    letter_id = int(line.split()[0])

    assert main(["dead-letters", "show", str(letter_id)]) == 0
    readable = capsys.readouterr().out
    assert f"message uuid:  {message.uuid}" in readable
    assert "Traceback" in readable
    assert main(["dead-letters", "show", str(letter_id), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["message_uuid"] == str(message.uuid)
    assert "Nobody" in shown["exception_message"]

    assert main(["dead-letters", "requeue", str(letter_id)]) == 0
    assert "link-mq: requeued 1 dead letter\n" in capsys.readouterr().out
    assert main(["tick"]) == 0
    assert json.loads(capsys.readouterr().out)["dead_lettered"] == 1
    capsys.readouterr()

    assert main(["dead-letters", "requeue", "999999"]) == 1
    assert "no dead letters with ids [999999]" in capsys.readouterr().err
    assert main(["dead-letters", "purge"]) == 0
    assert "deleted 1" in capsys.readouterr().out

    monkeypatch.setattr("sys.stdin", io.StringIO("{not json"))
    assert main(["enqueue", "-"]) == 2
    assert "the message is invalid: body" in capsys.readouterr().err
