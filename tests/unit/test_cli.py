"""The link-mq command line."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

import link_message_queue
from link_message_queue.bridge.dead_letters import DeadLetter
from link_message_queue.cli import dead_letter_table, main, show_dead_letter
from link_message_queue.monitoring.status import QueueStatus, Status, render
from link_message_queue.settings import VARIABLES


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


@pytest.mark.parametrize("text", ["9223372036854775808", "0", "-1", "twelve"])
def test_cli__a_dead_letter_id_out_of_range_is_a_usage_error(
    text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before the database is opened: SQLite raised OverflowError with a traceback for 2**63
    for command in (["dead-letters", "show", text], ["dead-letters", "requeue", text]):
        with pytest.raises(SystemExit) as stopped:
            main(command)
        assert stopped.value.code == 2
        error = capsys.readouterr().err
        assert "is not" in error
        assert "Traceback" not in error


def test_cli__version_is_the_package_version_and_the_installed_metadata(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])

    assert exit_info.value.code == 0
    printed = capsys.readouterr().out.split()
    assert printed == ["link-mq", link_message_queue.__version__]
    assert link_message_queue.__version__ == importlib.metadata.version("link-message-queue")
    script = Path(sys.executable).with_name("link-mq")
    shown = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert shown.split() == printed


def test_cli__help_names_every_variable_without_markup(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])

    shown = capsys.readouterr().out
    assert "`" not in shown
    for variable in VARIABLES:
        assert variable in shown


def _letter(number: int, message: str, name: str | None = "Acme\\User") -> DeadLetter:
    return DeadLetter(
        id=number,
        queue="link_processing_queue",
        message_name=name,
        message_uuid=None,
        body="{}",
        reason="failed",
        exception_type="myapp.handlers.ImportFailed",
        exception_message=message,
        traceback="Traceback (most recent call last):\n  ...\nImportFailed: boom\n",
        attempts=5,
        first_attempt_at=None,
        failed_at=1_764_561_600.25,  # 2025-12-01 04:00:00.250 UTC
    )


def test_cli__dead_letter_list_is_one_line_per_letter_under_a_header() -> None:
    letters = [
        _letter(7, "row 3 is invalid:\n  email missing\n\tand name too long"),
        _letter(12, "x" * 500, name=None),
    ]

    lines = dead_letter_table(letters, width=140)

    assert len(lines) == 3
    assert lines[0].split()[:3] == ["id", "failed", "at"]
    assert "2025-12-01T04:00:00.250+00:00" in lines[1]
    assert "ImportFailed: row 3 is invalid: email missing and name too long" in lines[1]
    assert lines[2].endswith("…")
    assert all(len(line) <= 140 for line in lines)


def test_cli__dead_letter_list_says_when_there_are_none() -> None:
    assert dead_letter_table([]) == ["no dead letters"]


def test_cli__dead_letter_show_is_readable_with_iso_times() -> None:
    shown = show_dead_letter(_letter(7, "boom"))

    assert "failed at:     2025-12-01T04:00:00.250+00:00" in shown
    assert "first attempt" not in shown  # not known: no line
    assert "error:         myapp.handlers.ImportFailed: boom" in shown
    assert "ImportFailed: boom\n" in shown  # the traceback, as kept
    assert "1764561600" not in shown


def test_status__render_keeps_long_queue_names_whole() -> None:
    long_name = "acme.orders.import." + "very_long_" * 6 + "queue"
    status = Status("sqlite:///x", [QueueStatus(long_name, ready=3), QueueStatus("short")])

    lines = render(status).splitlines()

    assert any(line.startswith(long_name + "  ") for line in lines)
    header, first = lines[1], lines[2]
    assert header.index("ready") + len("ready") == first.index("3") + 1  # numbers right-aligned


def test_counted__a_count_and_its_noun_agree() -> None:
    from link_message_queue.text import counted

    assert [counted(n, "dead letter") for n in (0, 1, 2)] == [
        "0 dead letters",
        "1 dead letter",
        "2 dead letters",
    ]
