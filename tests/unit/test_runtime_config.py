"""Loading the user's workflow config (``LINK_MQ_CONFIG``) fails at once, naming what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from celery import Celery

from link_message_queue.bridge.errors import BridgeError
from link_message_queue.engine import ChannelConfigError
from link_message_queue.runtime import WorkflowConfig, build_runtime, load_config
from link_message_queue.services import ServiceImportError
from link_message_queue.settings import Settings

HANDLER = "Acme\\Handler"


def _handler(message: object, context: object) -> None:
    """A handler service."""


def _settings(tmp_path: Path, config_module: str | None = None) -> Settings:
    return Settings.from_env(
        {
            "LINK_MQ_DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
            **({"LINK_MQ_CONFIG": config_module} if config_module else {}),
        }
    )


def test_runtime_config__a_misspelled_module_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(BridgeError, match=r"LINK_MQ_CONFIG='myapp\.linkmq_confg' cannot be"):
        load_config(_settings(tmp_path, "myapp.linkmq_confg"))


def test_runtime_config__a_module_failing_as_it_runs_names_the_variable_and_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken_linkmq_config.py").write_text("CHANNELS = {}\nSERVICES = undefined\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    with pytest.raises(BridgeError, match=r"LINK_MQ_CONFIG='broken_linkmq_config'.*NameError"):
        load_config(_settings(tmp_path, "broken_linkmq_config"))


@pytest.mark.parametrize(
    ("config", "error", "match"),
    [
        (
            WorkflowConfig({"local": {"targets": ["Acme\\Handlr"]}}, {HANDLER: _handler}, False),
            ChannelConfigError,
            r"channel 'local': target 'Acme\\\\Handlr'.*Registered: .*'Acme\\\\Handler'",
        ),
        (
            WorkflowConfig({}, {HANDLER: "acme_no_such_module:Handler"}, False),
            ServiceImportError,
            r"service 'Acme\\\\Handler': cannot import 'acme_no_such_module'",
        ),
        (
            WorkflowConfig(
                {},
                {HANDLER: _handler},
                True,
                processes={
                    "start": {
                        "process_type": "linear_messaging",
                        "tasks": [
                            {
                                "task_type": "collect_data",
                                "source": "Acme\\Srce",
                                "processing_type": "T",
                            }
                        ],
                    }
                },
            ),
            ChannelConfigError,
            r"process 'start', task 1 \(collect_data\): source 'Acme\\\\Srce'",
        ),
    ],
    ids=["channel-target", "service-path", "process-source"],
)
def test_runtime_config__a_name_that_leads_nowhere_fails_the_build(
    tmp_path: Path, config: WorkflowConfig, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        build_runtime(Celery("config-names"), _settings(tmp_path), config)
