"""The link-mq command line."""

from __future__ import annotations

import pytest

from link_message_queue.cli import main


def test_cli__unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fly"])

    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_cli__bad_setting_is_reported_with_exit_code_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LINK_MQ_TICK_INTERVAL", "never")

    assert main(["tick"]) == 2
    assert "LINK_MQ_TICK_INTERVAL='never' is invalid" in capsys.readouterr().err


def test_cli__requeue_without_ids_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["dead-letters", "requeue"])

    assert exit_info.value.code == 2
    assert "needs ids or --all" in capsys.readouterr().err
