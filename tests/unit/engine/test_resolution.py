"""prooph's channel resolution, one test per precedence rule."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from link_message_queue.engine import load_channels, resolve_channel
from link_message_queue.services import ServiceRegistry

TARGET = "Acme\\Handler"


def _resolve(
    config: Mapping[str, object], origin: str | None = "node", sender: str | None = "node"
) -> str:
    channels = load_channels(config, ServiceRegistry())
    return resolve_channel(channels, TARGET, origin, sender).name


def test_resolution__first_origin_and_sender_match_wins_at_once() -> None:
    config = {
        "unfiltered": {"targets": [TARGET]},
        "both_1": {"targets": [TARGET], "origin": "node", "sender": "node"},
        "both_2": {"targets": [TARGET], "origin": "node", "sender": "node"},
        "origin_later": {"targets": [TARGET], "origin": "node"},
    }

    assert _resolve(config) == "both_1"


def test_resolution__both_filters_must_match() -> None:
    config = {
        "both_wrong_sender": {"targets": [TARGET], "origin": "node", "sender": "other"},
        "unfiltered": {"targets": [TARGET]},
    }

    assert _resolve(config) == "unfiltered"


def test_resolution__last_origin_only_match_beats_sender_only_and_unfiltered() -> None:
    config = {
        "origin_1": {"targets": [TARGET], "origin": "node"},
        "origin_2": {"targets": [TARGET], "origin": "node"},
        "origin_other": {"targets": [TARGET], "origin": "other"},
        "sender": {"targets": [TARGET], "sender": "node"},
        "unfiltered": {"targets": [TARGET]},
    }

    assert _resolve(config) == "origin_2"


def test_resolution__last_sender_only_match_beats_unfiltered() -> None:
    config = {
        "sender_1": {"targets": [TARGET], "sender": "node"},
        "sender_2": {"targets": [TARGET], "sender": "node"},
        "sender_other": {"targets": [TARGET], "sender": "other"},
        "unfiltered": {"targets": [TARGET]},
    }

    assert _resolve(config) == "sender_2"


def test_resolution__last_unfiltered_channel_wins_over_local() -> None:
    config = {
        "local": {"targets": [TARGET]},
        "unfiltered_1": {"targets": [TARGET]},
        "unfiltered_2": {"targets": ["*"]},
        "origin_other": {"targets": [TARGET], "origin": "other"},
    }

    assert _resolve(config) == "unfiltered_2"


def test_resolution__falls_back_to_local_when_nothing_matches() -> None:
    config = {
        "elsewhere": {"targets": ["Other\\Handler"]},
        "origin_other": {"targets": [TARGET], "origin": "other"},
    }

    assert _resolve(config) == "local"


def test_resolution__local_is_a_candidate_like_any_other_channel() -> None:
    config = {"unfiltered": {"targets": [TARGET]}, "local": {"targets": [TARGET]}}

    assert _resolve(config) == "local"


def test_resolution__wildcard_is_not_less_specific_than_a_named_target() -> None:
    config = {
        "named": {"targets": [TARGET], "sender": "node"},
        "wildcard": {"targets": ["*"], "sender": "node"},
    }

    assert _resolve(config) == "wildcard"


def test_resolution__events_match_unfiltered_channels_only() -> None:
    config = {
        "both": {"targets": [TARGET], "origin": "node", "sender": "node"},
        "sender": {"targets": ["*"], "sender": "node"},
        "unfiltered": {"targets": [TARGET]},
    }

    assert _resolve(config, origin=None, sender=None) == "unfiltered"


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ({"c": {"targets": ["x"], "senders": "node"}}, "unknown keys \\['senders'\\]"),
        ({"c": {"targets": []}}, "empty 'targets'"),
        ({"c": {"origin": "x"}}, "needs 'targets'"),
        ({"c": {"targets": "x"}}, "must be a list"),
        ({"c": {"targets": ["x", ""]}}, "non-empty strings"),
        ({"c": {"targets": ["x"], "sender": 3}}, "'sender' must be a non-empty string"),
        ({"c": {"targets": ["x"], "utils": "plugin"}}, "'utils' must be a list"),
        ({"c": ["x"]}, "must be a mapping"),
        ({"": {"targets": ["x"]}}, "non-empty string"),
    ],
)
def test_channels__invalid_config_is_refused_at_load(
    config: Mapping[str, object], error: str
) -> None:
    from link_message_queue.engine import ChannelConfigError

    with pytest.raises(ChannelConfigError, match=error):
        load_channels(config, ServiceRegistry())
