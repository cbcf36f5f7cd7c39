"""Settings from the environment: defaults, parsing, and errors naming the variable."""

from __future__ import annotations

import pytest

from link_message_queue.settings import Settings, SettingsError


def test_settings__defaults_are_the_embedded_sqlite_database() -> None:
    settings = Settings.from_env({})

    assert settings.database_url == "sqlite:///link_mq.sqlite3"
    assert settings.broker_url == "linkmq+sqlite:///link_mq.sqlite3"
    assert settings.queue == "link_processing_queue"
    assert settings.tick_interval_s == 1.0
    assert settings.messages_per_tick == 1
    assert settings.consume_mode == "tick"
    assert settings.max_attempts == 5
    assert settings.node_name == "localhost"


def test_settings__broker_follows_the_database_unless_set() -> None:
    url = "postgresql+psycopg://app:secret@db/app"

    assert Settings.from_env({"LINK_MQ_DATABASE_URL": url}).broker_url == f"linkmq+{url}"
    assert (
        Settings.from_env(
            {"LINK_MQ_DATABASE_URL": url, "LINK_MQ_BROKER_URL": "redis://r/0"}
        ).broker_url
        == "redis://r/0"
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LINK_MQ_TICK_INTERVAL", "0"),
        ("LINK_MQ_TICK_INTERVAL", "soon"),
        ("LINK_MQ_MESSAGES_PER_TICK", "-1"),
        ("LINK_MQ_CONSUME_MODE", "both"),
        ("LINK_MQ_MAX_ATTEMPTS", "1.5"),
        ("LINK_MQ_NODE_NAME", "ab"),
        ("LINK_MQ_QUEUE", "has space"),
        ("LINK_MQ_CONFIG", "not a module"),
        ("LINK_MQ_TABLE_PREFIX", "Robert'); DROP"),
        ("LINK_MQ_DATABASE_URL", "not a url"),
        ("LINK_MQ_BROKER_URL", "nope"),
        ("LINK_MQ_LEASE_S", "nan"),
    ],
)
def test_settings__invalid_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_settings__errors_and_descriptions_never_show_a_password() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(
            {"LINK_MQ_BROKER_URL": "linkmq+postgresql://app:hunter2@db/app", "LINK_MQ_LEASE_S": "x"}
        )
    assert "hunter2" not in str(caught.value)

    settings = Settings.from_env(
        {"LINK_MQ_DATABASE_URL": "postgresql+psycopg://app:hunter2@db/app"}
    )
    assert "hunter2" not in repr(settings.describe())
    assert "***" in str(settings.describe()["broker_url"])


@pytest.mark.parametrize(
    "broker_url", ["linkmq+", "linkmq+sqlite", "linkmq+postgresql+psycopg", "linkmq+://db/app"]
)
def test_settings__linkmq_broker_without_a_database_url_names_the_expected_form(
    broker_url: str,
) -> None:
    # kombu takes "linkmq+" with no "://" for an AMQP host name: caught here, not as gaierror.
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"LINK_MQ_BROKER_URL": broker_url})

    assert "LINK_MQ_BROKER_URL" in str(caught.value)
    assert "linkmq+sqlite:///path.db" in str(caught.value)
    assert "linkmq+postgresql+psycopg://" in str(caught.value)
