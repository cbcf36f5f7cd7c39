"""docker-compose.yml and the Dockerfile: every service's command exists, every environment
variable is one the project reads, Flower never runs without basic auth, the image runs as a
non-root user, and `docker compose config` accepts the file where Docker Compose exists."""

from __future__ import annotations

import importlib
import importlib.util
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from link_message_queue import cli
from link_message_queue.settings import VARIABLES, Settings

from ..databases import unavailable

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
LINK_SERVICES = {name: service for name, service in SERVICES.items() if name != "db"}


def test_compose__has_the_services_of_a_deployment() -> None:
    assert set(SERVICES) == {"db", "migrate", "worker", "beat", "flower", "demo"}
    assert SERVICES["db"]["healthcheck"]["test"]
    assert SERVICES["migrate"]["command"] == ["link-mq", "db", "upgrade"]
    assert SERVICES["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    for name in ("worker", "beat", "flower", "demo"):
        assert SERVICES[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
    assert SERVICES["beat"]["deploy"]["replicas"] == 1
    assert SERVICES["demo"]["profiles"] == ["demo"]


@pytest.mark.parametrize("name", sorted(LINK_SERVICES))
def test_compose__every_command_exists(name: str) -> None:
    command = LINK_SERVICES[name]["command"]
    if command[0] == "link-mq":
        # argparse exits with 2 on an unknown command or option; --help exits 0.
        with pytest.raises(SystemExit) as raised:
            cli.build_parser().parse_args([*command[1:], "--help"])
        assert raised.value.code == 0
        return
    assert command[:3] == ["celery", "-A", "link_message_queue.celery_app"]
    assert importlib.import_module("link_message_queue.celery_app").app is not None
    assert command[3] in {"worker", "beat", "flower"}
    if command[3] == "flower":
        importlib.import_module("flower.command")


def test_compose__environment_names_are_settings_and_values_parse() -> None:
    environment = COMPOSE["x-link-env"]
    assert set(environment) <= VARIABLES, set(environment) - VARIABLES
    # The values, with compose's defaults filled in, are valid settings.
    resolved = {key: _default(str(value)) for key, value in environment.items()}
    settings = Settings.from_env(resolved)
    assert settings.database_url.startswith("postgresql+psycopg://app:")
    assert settings.config_module is not None
    assert importlib.util.find_spec(settings.config_module) is not None, settings.config_module
    for service in LINK_SERVICES.values():
        assert service["environment"] == environment


def test_compose__flower_needs_basic_auth_and_listens_on_loopback_only() -> None:
    flower = SERVICES["flower"]
    auth = [part for part in flower["command"] if part.startswith("--basic-auth=")]
    assert auth == ["--basic-auth=${FLOWER_BASIC_AUTH:?set FLOWER_BASIC_AUTH=user:password}"]
    assert flower["ports"] == ["127.0.0.1:5555:5555"]


def test_dockerfile__runs_as_a_non_root_user() -> None:
    lines = (REPO / "Dockerfile").read_text().splitlines()
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users
    assert users[-1] not in {"root", "0"}
    assert any("useradd" in line and users[-1] in line for line in lines)
    assert "'.[postgres,flower]'" in (REPO / "Dockerfile").read_text()


def _compose_command() -> list[str]:
    """``docker compose`` (the plugin) or ``docker-compose``: .ci/run installs the latter."""
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run(
            [docker, "compose", "version"], capture_output=True, check=False
        ).returncode
        == 0
    ):
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    if standalone is None:
        unavailable("neither `docker compose` nor `docker-compose` is here (.ci/run installs it)")
    return [standalone]


def test_compose__docker_compose_config_accepts_the_file_and_refuses_flower_without_auth() -> None:
    config = [*_compose_command(), "-f", str(REPO / "docker-compose.yml"), "config", "-q"]
    base = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
    accepted = subprocess.run(
        config,
        env={**base, "FLOWER_BASIC_AUTH": "admin:secret"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert accepted.returncode == 0, accepted.stderr
    refused = subprocess.run(config, env=base, capture_output=True, text=True, check=False)
    assert refused.returncode != 0
    assert "set FLOWER_BASIC_AUTH=user:password" in refused.stderr + refused.stdout


def _default(value: str) -> str:
    """Compose's ${NAME:-default} and ${NAME:?error} with nothing set."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)
