"""The console script's Ctrl-C guard covers the package's own import (link_mq_console), and a
reader that goes away (``link-mq … | head``) ends it without a traceback."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# The console script as pip writes it, with a SIGINT sent at the moment the package's __init__
# imports kombu.transport: what a Ctrl-C in the first half second of `link-mq` meets.
_SCRIPT = textwrap.dedent(
    """
    import importlib.abc, os, signal, sys

    class CtrlCOnKombu(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == "kombu.transport":
                os.kill(os.getpid(), signal.SIGINT)
            return None

    sys.meta_path.insert(0, CtrlCOnKombu())
    from link_mq_console import main
    sys.argv = ["link-mq", "--version"]
    sys.exit(main())
    """
)


def test_console__ctrl_c_while_the_package_imports_kombu_ends_in_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 130, done.stderr
    assert done.stderr == "link-mq: stopped (Ctrl-C)\n"
    assert "link-mq 0" not in done.stdout  # it stopped before running the command


def test_console__a_reader_that_went_away_ends_it_without_a_traceback() -> None:
    # `link-mq status | head -4`: before, about 1 run in 6 ended in a BrokenPipeError traceback
    # (or "Exception ignored … BrokenPipeError" and exit code 120 when it came at exit).
    command = Path(sys.executable).with_name("link-mq")
    process = subprocess.Popen(
        [str(command), "--version"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"},
    )
    assert process.stdout is not None
    assert process.stderr is not None
    process.stdout.close()  # the reader is gone before the command writes its line
    stderr = process.stderr.read().decode()
    process.stderr.close()

    assert process.wait(timeout=60) == 141, stderr  # 128 + SIGPIPE, as a shell reports it
    assert stderr == ""
