"""The wheel as users install it: built for real from this checkout by hatchling (through pip),
then opened."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_packaging__wheel_carries_py_typed_and_the_license(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), REPO],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr

    (wheel,) = tmp_path.glob("link_message_queue-*.whl")
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
