"""The Makefile's venv step survives a Ctrl-C: run for real with ``make`` on a stub project,
interrupted while pip installs itself into the new venv, then run again."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from link_message_queue.settings import VARIABLES

from .processes import REPO, wait_for

pytestmark = [
    pytest.mark.acceptance,
    pytest.mark.skipif(shutil.which("make") is None, reason="needs make"),
]

STUB_PROJECT = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "makefile-stub"
version = "0"

[project.optional-dependencies]
dev = []

[tool.hatch.build.targets.wheel]
packages = ["src/makefile_stub"]
"""


def _make(project: Path, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["make", f"PYTHON={sys.executable}", ".venv/bin/.installed"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,  # type: ignore[call-overload]
    )


def _pip_metadata_written(project: Path) -> bool:
    return any(project.glob(".venv/lib/python*/site-packages/pip-*.dist-info/METADATA"))


def test_makefile__venv_interrupted_while_pip_installs_itself_is_made_again(
    tmp_path: Path,
) -> None:
    # Given a project with the Makefile, and a `make` interrupted (Ctrl-C to its process group)
    # once pip's metadata is in the new venv but before pip is complete
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    (tmp_path / "pyproject.toml").write_text(STUB_PROJECT)
    (tmp_path / "src" / "makefile_stub").mkdir(parents=True)
    (tmp_path / "src" / "makefile_stub" / "__init__.py").write_text("")
    interrupted = _make(tmp_path, start_new_session=True)
    wait_for(lambda: _pip_metadata_written(tmp_path), 120, "pip to be installing itself")
    os.killpg(interrupted.pid, signal.SIGINT)
    interrupted.communicate(timeout=60)
    assert not (tmp_path / ".venv" / "bin" / ".installed").exists()

    # When make runs again
    again = _make(tmp_path)
    output, _ = again.communicate(timeout=300)

    # Then it makes a working venv
    assert again.returncode == 0, output
    subprocess.run(
        [tmp_path / ".venv" / "bin" / "python", "-m", "pip", "--version"], check=True, timeout=60
    )
    subprocess.run(
        [tmp_path / ".venv" / "bin" / "python", "-c", "import makefile_stub"],
        check=True,
        timeout=60,
    )


def test_makefile__demo_runs_on_the_embedded_default_whatever_the_shell_exports(
    tmp_path: Path,
) -> None:
    # Given a project with the Makefile, its venv made, a `link-mq` there that records the
    # environment it gets, and a shell that exports every LINK_MQ_* variable (the README's
    # Quick start exports LINK_MQ_DATABASE_URL for the application)
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    (tmp_path / "pyproject.toml").write_text(STUB_PROJECT)
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    link_mq = bin_dir / "link-mq"
    link_mq.write_text('#!/bin/sh\nenv > "$(dirname "$0")/environment"\necho "link-mq $*"\n')
    link_mq.chmod(0o755)
    (bin_dir / ".installed").touch()  # after pyproject.toml: make keeps this venv
    exported = dict.fromkeys(VARIABLES, "postgresql+psycopg://postgres@127.0.0.1/myapp")

    # When `make demo` runs
    done = subprocess.run(
        ["make", f"PYTHON={sys.executable}", "demo"],
        cwd=tmp_path,
        env={**os.environ, **exported},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # Then `link-mq demo` runs with none of them: on the embedded default, as the README says
    assert done.returncode == 0, done.stdout + done.stderr
    assert "link-mq demo" in done.stdout
    environment = (bin_dir / "environment").read_text().splitlines()
    assert environment  # it did run
    assert [line for line in environment if line.startswith("LINK_MQ_")] == []
