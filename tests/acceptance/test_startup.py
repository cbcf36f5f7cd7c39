"""A worker, a beat and the CLI refuse to start on a workflow config that cannot work (a
misspelled ``LINK_MQ_CONFIG`` module, a name in it that leads nowhere), with one message that
names what to fix, instead of starting and failing every tick."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .processes import PYTHONPATH, REPO, CeleryProcess, stop_all, wait_for

pytestmark = pytest.mark.acceptance

START_UP_S = 60.0  # generous: the machine may be busy; a worker that starts never exits
MISSPELLED = ("tests.acceptance.bridge_confg", ["LINK_MQ_CONFIG", "tests.acceptance.bridge_confg"])
TYPO = ("tests.acceptance.typo_config", ["channel 'queue'", "target 'Acceptance\\\\Recordr'"])


def _environment(tmp_path: Path, config_module: str) -> dict[str, str]:
    return {
        "LINK_MQ_DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
        "LINK_MQ_CONFIG": config_module,
        "LINK_MQ_TICK_INTERVAL": "0.2",
    }


@pytest.mark.parametrize("config", [MISSPELLED, TYPO], ids=["misspelled-module", "typo-target"])
@pytest.mark.parametrize(
    "command",
    [
        ["worker", "--concurrency", "1", "--without-mingle", "--without-gossip"],
        ["beat", "--schedule", "beat-schedule"],
    ],
    ids=["worker", "beat"],
)
def test_startup__a_config_that_cannot_work_stops_celery(
    tmp_path: Path, command: list[str], config: tuple[str, list[str]]
) -> None:
    module, expected = config
    if command[0] == "beat":
        command = [*command[:-1], str(tmp_path / command[-1])]
    process = CeleryProcess(
        ["-A", "link_message_queue.celery_app", *command, "--loglevel", "INFO"],
        env=_environment(tmp_path, module),
        log_path=tmp_path / "celery.log",
    )
    try:
        process.process.wait(timeout=START_UP_S)
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"celery {command[0]} kept running on a broken config:\n{process.log()[-3000:]}"
        )
    finally:
        stop_all([process])

    assert process.process.returncode != 0
    log = process.log()
    assert "link-mq: cannot start:" in log
    for text in expected:
        assert text in log


@pytest.mark.parametrize("config", [MISSPELLED, TYPO], ids=["misspelled-module", "typo-target"])
def test_startup__a_config_that_cannot_work_stops_the_cli(
    tmp_path: Path, config: tuple[str, list[str]]
) -> None:
    module, expected = config
    result = subprocess.run(
        [sys.executable, "-m", "link_message_queue.cli", "tick"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": PYTHONPATH, **_environment(tmp_path, module)},
        capture_output=True,
        text=True,
        timeout=START_UP_S,
        check=False,
    )

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    for text in expected:
        assert text in result.stderr


def test_startup__a_worker_without_link_mq_config_warns_as_it_comes_up(tmp_path: Path) -> None:
    # An export forgotten in a new terminal: before, the worker came up silently and the first
    # thing it logged was the dead letter of a message for one of the application's targets.
    environment = _environment(tmp_path, "")
    del environment["LINK_MQ_CONFIG"]
    process = CeleryProcess(
        [
            "-A",
            "link_message_queue.celery_app",
            "worker",
            "--concurrency",
            "1",
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "WARNING",
        ],
        env=environment,
        log_path=tmp_path / "celery.log",
    )
    try:
        wait_for(
            lambda: (
                "LINK_MQ_CONFIG is not set" in process.log() or process.process.poll() is not None
            ),
            START_UP_S,
            "the worker to come up",
        )
    finally:
        stop_all([process])

    assert "export LINK_MQ_CONFIG=<your config module>" in process.log()
