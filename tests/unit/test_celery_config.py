"""The Celery configuration built from settings: broker URL checks and per-broker options."""

from __future__ import annotations

import pytest

from link_message_queue.celery_config import celery_config
from link_message_queue.settings import Settings, SettingsError


@pytest.mark.parametrize("broker_url", ["linkmq+", "linkmq+sqlite"])
def test_celery_config__linkmq_broker_without_a_database_url_is_refused(broker_url: str) -> None:
    # Settings built in code skip from_env's parsing; kombu would take the URL for an AMQP host.
    with pytest.raises(SettingsError, match=r"linkmq\+sqlite:///path\.db"):
        celery_config(Settings(broker_url=broker_url))


@pytest.mark.parametrize(
    ("broker_url", "transport_options", "drop_option"),
    [
        ("linkmq+sqlite:///app.db", {"table_prefix": "linkmq_", "lease_s": 30.0}, "expiration"),
        ("amqp://guest@rabbit//", {"confirm_publish": True}, "expiration"),
        ("pyamqp://guest@rabbit//", {"confirm_publish": True}, "expiration"),
        ("redis://localhost/0", {}, "expires"),
    ],
)
def test_celery_config__options_follow_the_broker(
    broker_url: str, transport_options: dict[str, object], drop_option: str
) -> None:
    config = celery_config(Settings(broker_url=broker_url, consume_mode="tick"))

    assert config["broker_transport_options"] == transport_options
    for entry in config["beat_schedule"].values():
        assert set(entry["options"]) == {"queue", drop_option}
