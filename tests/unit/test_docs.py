"""The documentation site builds with ``mkdocs build --strict``: a broken link, a missing API
reference or a configuration field without its meaning fails the tests."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from link_message_queue.settings import Settings
from link_message_queue.transport.options import TransportOptions

ROOT = Path(__file__).resolve().parents[2]


def _build(project: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )


def _copy_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    shutil.copytree(ROOT / "docs", project / "docs")
    shutil.copytree(ROOT / "bench" / "results", project / "bench" / "results")
    shutil.copy(ROOT / "mkdocs.yml", project / "mkdocs.yml")
    return project


def test_docs__the_site_builds_strictly_with_every_generated_table(tmp_path: Path) -> None:
    built = _build(ROOT, tmp_path / "site")

    assert built.returncode == 0, built.stderr
    configuration = (tmp_path / "site" / "configuration" / "index.html").read_text()
    for spec in dataclasses.fields(Settings):
        assert spec.metadata["variable"] in configuration
    for spec in dataclasses.fields(TransportOptions):
        assert f"<code>{spec.name}</code>" in configuration
    assert "linkmq:" not in configuration  # every marker replaced
    reference = (tmp_path / "site" / "reference" / "index.html").read_text()
    assert "collect_data_of" in reference
    assert (tmp_path / "site" / "img" / "bench-latest.png").exists()


@pytest.mark.parametrize(
    ("page", "reported"),
    [
        ("See [the missing page](no-such-page.md).", "no-such-page.md"),
        ("::: link_message_queue.no_such_module", "no_such_module could not be found"),
        ("<!-- linkmq:no-such-table -->", "no generated table 'no-such-table'"),
    ],
)
def test_docs__a_broken_link_or_reference_fails_the_build(
    tmp_path: Path, page: str, reported: str
) -> None:
    project = _copy_project(tmp_path)
    (project / "docs" / "index.md").write_text(f"# Overview\n\n{page}\n")

    built = _build(project, tmp_path / "site")

    assert built.returncode != 0
    assert reported in built.stderr


def test_docs__every_setting_and_transport_option_has_its_meaning() -> None:
    for owner in (Settings, TransportOptions):
        for spec in dataclasses.fields(owner):
            assert spec.metadata.get("doc"), f"{owner.__name__}.{spec.name} has no doc"
            assert "unit" in spec.metadata


def test_docs__the_readme_is_short_and_its_quick_start_is_python_that_compiles() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = readme.split("```python\n")[1:]

    assert len(readme.splitlines()) <= 150
    assert len(blocks) >= 2
    for block in blocks:
        compile(block.split("```")[0], "README.md", "exec")
    assert "make demo" in readme
    assert "make test" in readme
