"""kombu's own transport integration suite, taken from the installed kombu's source
distribution at test time (nothing is vendored): ``t/integration/common.py``."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from types import ModuleType

import kombu


def _cache_dir() -> Path:
    root = os.environ.get("LINK_MQ_TEST_CACHE") or Path.home() / ".cache" / "link-mq"
    return Path(root) / f"kombu-{kombu.__version__}"


def _fetch_common(target: Path) -> None:
    version = kombu.__version__
    with tempfile.TemporaryDirectory() as download_dir:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                ":all:",
                f"kombu=={version}",
                "-d",
                download_dir,
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
        (tarball,) = Path(download_dir).glob("kombu-*.tar.gz")
        with tarfile.open(tarball) as archive:
            member = archive.extractfile(f"kombu-{version}/t/integration/common.py")
            if member is None:
                raise FileNotFoundError(f"{tarball.name} has no t/integration/common.py")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(member.read())


def load_suite() -> ModuleType:
    common = _cache_dir() / "common.py"
    if not common.exists():
        _fetch_common(common)
    spec = importlib.util.spec_from_file_location("kombu_integration_common", common)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load kombu's suite from {common}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
