"""Several `celery worker` processes with distinct node names on one PostgreSQL: every message
runs exactly once, remote control reaches every node, and `link-mq status` lists every
consumer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable

import pytest

from .processes import PYTHONPATH, CeleryProcess, wait_for
from .test_bridge import _dispatch, _handled

pytestmark = [pytest.mark.acceptance, pytest.mark.postgres]

NODES = ("alpha", "beta", "gamma")


@pytest.fixture
def app_database_url(migrated_postgres_url: str) -> str:
    return migrated_postgres_url


def _cli(environment: dict[str, str], *args: str, module: str = "link_message_queue.cli") -> str:
    result = subprocess.run(
        [sys.executable, "-m", module, *args],
        env={**os.environ, **environment, "PYTHONPATH": PYTHONPATH},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_many_workers__each_message_once_every_node_answers_status_lists_them(
    environment: dict[str, str], celery: Callable[..., CeleryProcess]
) -> None:
    url = environment["LINK_MQ_DATABASE_URL"]
    worker_mode = {**environment, "LINK_MQ_CONSUME_MODE": "worker"}
    for node in NODES:
        celery(
            "worker",
            "-c",
            "2",
            "-n",
            f"{node}@%h",
            "--without-mingle",
            "--without-gossip",
            extra_env={"LINK_MQ_CONSUME_MODE": "worker"},
        )
    _dispatch(worker_mode, 60, sleep_s=0.05)

    wait_for(lambda: len(_handled(url)) == 60, 120, "every message to be handled")
    rows = _handled(url)
    assert Counter(row.n for row in rows) == Counter(range(60))
    assert len({row.pid for row in rows}) >= 3  # the work was spread over the pool processes

    replies = _cli(
        worker_mode,
        "-A",
        "link_message_queue.celery_app",
        "inspect",
        "ping",
        "--json",
        module="celery",
    )
    assert {name.split("@")[0] for name in json.loads(replies)} == set(NODES)

    def three_consumers() -> bool:
        status = json.loads(_cli(worker_mode, "status", "--json"))
        on_queue = [c for c in status["consumers"] if "link_processing_queue" in c["queues"]]
        return len(on_queue) >= 3

    wait_for(three_consumers, 30, "link-mq status to list the three workers")
