"""The wheel as users install it: built for real from this checkout by hatchling (through pip),
then opened, and installed to run the migrations from it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _pip(*arguments: str | Path) -> None:
    """Run pip quietly, without dependencies; fail the test with its error output."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", *arguments, "--no-deps", "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel pip builds from this checkout."""
    directory = tmp_path_factory.mktemp("wheel")
    _pip("wheel", "-w", directory, REPO)
    (path,) = directory.glob("link_message_queue-*.whl")
    return path


def test_packaging__wheel_carries_py_typed_and_the_license(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        licenses = [name for name in names if name.endswith(".dist-info/licenses/LICENSE")]
        metadata = next(name for name in names if name.endswith(".dist-info/METADATA"))
        assert licenses, sorted(names)
        license_text = archive.read(licenses[0]).decode()
        metadata_text = archive.read(metadata).decode()

    # PEP 561: type checkers read the package's annotations only with this marker.
    assert "link_message_queue/py.typed" in names
    assert "MIT License" in license_text
    assert "Copyright (c) 2026 link-message-queue developers" in license_text
    assert "License-Expression: MIT" in metadata_text
    assert "License-File: LICENSE" in metadata_text


def test_packaging__the_redis_extra_is_kombus_own(wheel: Path) -> None:
    # Before: `redis>=5` alone; kombu's Redis transport also imports `packaging` (and needs
    # redis>=6.4), so a worker installed with [redis] in a clean virtualenv died at start-up
    # with ModuleNotFoundError. kombu's extra carries whatever its transport needs.
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(name for name in archive.namelist() if name.endswith("/METADATA"))
        requirements = archive.read(metadata).decode().splitlines()
    redis = [line for line in requirements if line.endswith("extra == 'redis'")]
    assert any(line.startswith("Requires-Dist: kombu[redis]") for line in redis), redis


def test_packaging__the_installed_wheel_migrates_a_new_database(
    wheel: Path, tmp_path: Path
) -> None:
    # Given the wheel installed on its own (not this checkout's src/)
    target = tmp_path / "site"
    _pip("install", "-t", target, wheel)
    versions = target / "link_message_queue" / "db" / "migrations" / "versions"
    assert sorted(path.name[:4] for path in versions.glob("0*.py")) == [
        "0001",
        "0002",
        "0003",
        "0004",
        "0005",
        "0006",
    ]
    assert (versions.parent / "env.py").is_file()
    assert (versions.parent / "script.py.mako").is_file()

    # When it upgrades a new SQLite file (Alembic's script_location inside the installed package)
    code = textwrap.dedent(
        """
        import sys
        import link_message_queue
        from link_message_queue.db import SCHEMA_REVISION, engine_for, upgrade
        from link_message_queue.transport import TransportOptions
        print(link_message_queue.__file__)
        print(upgrade(engine_for(sys.argv[1], TransportOptions()), "linkmq_"), SCHEMA_REVISION)
        """
    )
    environ = {**os.environ, "PYTHONPATH": str(target)}
    done = subprocess.run(
        [sys.executable, "-c", code, f"sqlite:///{tmp_path / 'new.sqlite3'}"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=environ,
        check=False,
    )

    # Then the migrations ran from the installed package up to this version's revision
    assert done.returncode == 0, done.stderr
    package_file, revisions = done.stdout.splitlines()
    assert package_file.startswith(str(target))
    revision, expected = revisions.split()
    assert revision == expected


def test_packaging__the_console_script_enters_outside_the_package(wheel: Path) -> None:
    # A Ctrl-C while the package's __init__ imports kombu is guarded only if the entry point's
    # module loads before the package (link_mq_console's docstring).
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = archive.read(entry_points).decode()
    assert "link_mq_console.py" in names
    assert "link-mq = link_mq_console:main" in scripts
