"""``link-mq demo`` as a newcomer runs it: interrupted with Ctrl-C at several moments (and once
with SIGTERM), then run to the end twice, all in the same folder. Ctrl-C ends it cleanly at any
moment (exit code 130, SIGTERM 143; one line, no traceback, no worker or beat left behind) and
every run starts afresh."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import kombu
import pytest
import sqlalchemy as sa

import link_message_queue  # noqa: F401  (registers linkmq+)
from link_message_queue.db import process_tables, upgrade
from link_message_queue.demo.workflow import START

from .processes import PYTHONPATH, wait_for

pytestmark = pytest.mark.acceptance

LINK_MQ = Path(sys.executable).with_name("link-mq")  # the console script, as `make demo` runs it
SUCCEEDED = "succeeded: 50 of 50 users written in 5 of 5 chunks"
STOPPED = "link-mq: stopped (Ctrl-C)"
RUN_TIMEOUT_S = 240.0  # generous: the machine may be busy


class DemoRun:
    """``link-mq demo`` in its own process group (the terminal's foreground group, as it
    were), its output collected as it comes."""

    def __init__(
        self, folder: Path, extra_env: dict[str, str] | None = None, args: tuple[str, ...] = ()
    ) -> None:
        environment = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("LINK_MQ_") and key != "PYTHONUNBUFFERED"
        }
        self.process = subprocess.Popen(
            [str(LINK_MQ), "demo", *args],
            cwd=folder,
            env={**environment, "PYTHONPATH": PYTHONPATH, **(extra_env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.stdout = bytearray()
        self.stderr = bytearray()
        self._readers = [
            threading.Thread(target=self._read, args=(stream, buffer), daemon=True)
            for stream, buffer in (
                (self.process.stdout, self.stdout),
                (self.process.stderr, self.stderr),
            )
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: object, buffer: bytearray) -> None:
        assert hasattr(stream, "read1")
        while chunk := stream.read1(4096):
            buffer.extend(chunk)

    def output(self) -> str:
        return (bytes(self.stdout) + bytes(self.stderr)).decode(errors="replace")

    def stop(self, stop_signal: signal.Signals) -> None:
        """What Ctrl-C in a terminal does (SIGINT), or a service manager stopping a service
        (SIGTERM): the signal to the whole process group."""
        os.killpg(self.process.pid, stop_signal)

    def finish(self) -> int:
        try:
            return self.process.wait(timeout=RUN_TIMEOUT_S)
        finally:
            self.close()

    def close(self) -> None:
        """Kill what still runs of it, read the rest of its output, close its pipes."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        for reader in self._readers:
            reader.join(timeout=10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


def _demo_processes(folder: Path) -> list[int]:
    """Every process started for the demo in ``folder``: each gets its CSV file's path."""
    marker = f"LINK_MQ_DEMO_CSV={folder / 'demo_users.csv'}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environment = (entry / "environ").read_bytes()
        except OSError:
            continue  # ended meanwhile, or not ours to read
        if marker in environment.split(b"\0"):
            found.append(int(entry.name))
    return found


def _interrupt_when(
    folder: Path,
    moment: Callable[[DemoRun], bool],
    what: str,
    *,
    presses: int = 1,
    extra_env: dict[str, str] | None = None,
    stop_signal: signal.Signals = signal.SIGINT,
) -> str:
    run = DemoRun(folder, extra_env)
    try:
        wait_for(lambda: moment(run) or run.process.poll() is not None, RUN_TIMEOUT_S, what)
        assert run.process.poll() is None, f"the demo ended before {what}:\n{run.output()}"
        for _ in range(presses):  # a second Ctrl-C kills worker and beat at once
            if run.process.poll() is None:
                run.stop(stop_signal)
                time.sleep(0.3)
        code = run.finish()
    finally:
        run.close()
    output = run.output()
    # 128 + the signal's number, as a shell reports a command a signal ended
    assert code == 128 + stop_signal, f"{stop_signal.name} {what}: exit code {code}\n{output}"
    stopped = STOPPED if stop_signal == signal.SIGINT else f"link-mq: stopped ({stop_signal.name})"
    assert output.count(stopped) == 1, output
    assert "Traceback" not in output, output
    wait_for(lambda: not _demo_processes(folder), 10, f"no worker or beat left after Ctrl-C {what}")
    return output


@pytest.mark.timeout(1200)
def test_demo__ctrl_c_at_any_moment_stops_cleanly_and_every_run_starts_afresh(
    tmp_path: Path,
) -> None:
    if not LINK_MQ.exists():
        pytest.skip(f"{LINK_MQ} is not installed (pip install -e .)")
    try:
        # Given a demo interrupted while its modules load, as it starts worker and beat, once
        # its import is queued but before the worker took it, with Ctrl-C twice, and halfway
        _interrupt_when(tmp_path, lambda run: time.sleep(0.3) is None, "while it loads")
        _interrupt_when(
            tmp_path, lambda run: b"demo: importing" in run.stdout, "as worker and beat start"
        )
        _interrupt_when(tmp_path, lambda run: b"0/50" in run.stderr, "with its import queued")
        _interrupt_when(tmp_path, lambda run: b"/50" in run.stderr, "twice", presses=2)
        # (and stopped by a service manager: SIGTERM, exit code 143)
        _interrupt_when(
            tmp_path, lambda run: b"/50" in run.stderr, "by SIGTERM", stop_signal=signal.SIGTERM
        )
        # (one message a tick, a tick every 0.4 s: still importing, for a few ticks more, when
        # its first chunk is in; at a tick a second it took some 20 s to get there)
        _interrupt_when(
            tmp_path,
            lambda run: b"10/50" in run.stderr,
            "halfway",
            extra_env={"LINK_MQ_TICK_INTERVAL": "0.4", "LINK_MQ_MESSAGES_PER_TICK": "1"},
        )

        # When the demo runs to its end, twice, in the same folder
        outputs = []
        for _ in range(2):
            run = DemoRun(tmp_path)
            code = run.finish()
            outputs.append(run.output())
            assert code == 0, run.output()

        # Then each imports every user, in exactly its own chunks, with nothing dead-lettered
        for output in outputs:
            assert SUCCEEDED in output, output
            assert "0 dead-lettered" in output, output
            assert "Traceback" not in output, output
            # Its output goes to a pipe here, as to a CI log: the progress bar writes whole
            # lines, one per count, instead of carriage-return frames on one line.
            assert "\r" not in output
            assert output.count("] 50/50\n") == 1, output
        assert not _demo_processes(tmp_path)
        # and nothing an interrupted run started is left "running"
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'link_mq.sqlite3'}")
        with engine.connect() as connection:
            running = connection.execute(
                sa.text(
                    "SELECT (SELECT count(*) FROM linkmq_process WHERE status = 'running')"
                    " + (SELECT count(*) FROM linkmq_process_task WHERE status = 'running')"
                )
            ).scalar_one()
        engine.dispose()
        assert running == 0
    finally:
        for pid in _demo_processes(tmp_path):
            os.kill(pid, signal.SIGKILL)


# `link-mq demo` with a Ctrl-C that lands in a finalizer (where Python only prints "Exception
# ignored") while the demo still sets up its database, before any worker starts.
_SWALLOWED_DURING_SETUP = """
import os, signal, sys
import link_message_queue.demo.runner as runner

class SignalInFinalizer:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        sum(range(1000))  # the handler runs here, inside __del__

def write_users_csv(*args, **kwargs):
    SignalInFinalizer()  # collected at once: the Ctrl-C lands in its __del__
    return original(*args, **kwargs)

original, runner.write_users_csv = runner.write_users_csv, write_users_csv
sys.argv = ["link-mq", "demo"]
from link_mq_console import main
sys.exit(main())
"""


def test_demo__a_ctrl_c_swallowed_during_setup_still_stops_it(tmp_path: Path) -> None:
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("LINK_MQ_")
    }
    done = subprocess.run(
        [sys.executable, "-c", _SWALLOWED_DURING_SETUP],
        cwd=tmp_path,
        env={**environment, "PYTHONPATH": PYTHONPATH},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 130, done.stdout + done.stderr
    assert STOPPED in done.stderr
    assert "succeeded" not in done.stdout  # it did not run on to the end
    assert not _demo_processes(tmp_path)


def test_demo__on_its_embedded_default_clears_what_an_interrupted_run_left(
    tmp_path: Path,
) -> None:
    if not LINK_MQ.exists():
        pytest.skip(f"{LINK_MQ} is not installed (pip install -e .)")
    # Given the demo's own database (link_mq.sqlite3 in its folder) with a message an
    # interrupted run left on its queue and its import process still "running"
    url = f"sqlite:///{tmp_path / 'link_mq.sqlite3'}"
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    upgrade(engine, "linkmq_")
    with kombu.Connection(f"linkmq+{url}") as connection:
        with closing(connection.SimpleQueue("link_processing_queue")) as queue:
            queue.put({"left": "by an interrupted run"})
    with engine.begin() as connection:
        connection.execute(
            sa.insert(process_tables("linkmq_").process).values(
                id=str(uuid.uuid4()),
                task_list_id=str(uuid.uuid4()),
                name=START,
                process_type="linear_messaging",
                definition="{}",
                status="running",
                started_at=time.time(),
            )
        )

    # When the demo runs there (LINK_MQ_* unset), on a few users
    run = DemoRun(tmp_path, args=("--users", "4", "--chunk", "2"))
    code = run.finish()

    # Then it clears them and runs to its end
    output = run.output()
    assert code == 0, output
    assert (
        "cleared what an interrupted run left: 1 queued messages, 1 processes marked failed"
        in output
    ), output
    assert "succeeded: 4 of 4 users written in 2 of 2 chunks" in output, output
    with engine.connect() as connection:
        statuses = connection.execute(
            sa.select(process_tables("linkmq_").process.c.status).where(
                process_tables("linkmq_").process.c.parent_position.is_(None)
            )
        ).scalars()
        assert sorted(statuses) == ["failed", "succeeded"]
    engine.dispose()
