"""Real Celery processes for acceptance tests, started in their own process group so a test
can SIGKILL a worker together with its pool children."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Subprocesses import this checkout's code (src/, before any installed copy) and tests/.
PYTHONPATH = os.pathsep.join([str(REPO / "src"), str(REPO)])


class CeleryProcess:
    """``python -m celery …`` (or another ``module``, e.g. the link-mq CLI)."""

    def __init__(
        self, args: list[str], env: Mapping[str, str], log_path: Path, module: str = "celery"
    ) -> None:
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": PYTHONPATH, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL the whole group: the main process and its pool children at once."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self._log.close()

    def stop(self, timeout_s: float = 15.0) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL if it does not end in time."""
        self.terminate()
        self.wait_stopped(time.monotonic() + timeout_s)

    def terminate(self) -> None:
        """Ask for a warm shutdown without waiting for it: SIGTERM to the main process only, as
        a service manager should (systemd's KillMode=mixed); it stops its pool itself. A
        SIGTERM to the pool children as well can leave billiard's task-queue lock held by a
        dead child, and the worker then hangs at exit."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait_stopped(self, deadline: float) -> None:
        """Wait for the process to end until ``deadline`` (monotonic), then SIGKILL it."""
        try:
            self.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def stop_all(processes: list[CeleryProcess], timeout_s: float = 15.0) -> None:
    """Stop every process at once: a Celery warm shutdown takes seconds (the pool's threads,
    Celery's timer), and waiting for each in turn adds them up."""
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + timeout_s
    for process in processes:
        process.wait_stopped(deadline)


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)
