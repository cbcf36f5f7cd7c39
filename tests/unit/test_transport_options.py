"""Every seconds-valued transport option refuses what is not a positive, finite number of
seconds with the option's name, before anything reaches the database."""

from __future__ import annotations

import math
from dataclasses import fields

import pytest

from link_message_queue.transport import TransportOptionError, TransportOptions

SECONDS_OPTIONS = [
    f.name
    for f in fields(TransportOptions)
    if f.name.endswith("_s") and f.name != "publish_synchronous_commit"
] + ["polling_interval"]


def test_the_seconds_options_are_found() -> None:
    assert {"lease_s", "busy_timeout_s", "lease_renew_interval_s"} <= set(SECONDS_OPTIONS)


@pytest.mark.parametrize("name", SECONDS_OPTIONS)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 0, -1.0, True, "1"])
def test_a_seconds_option_refuses_what_is_not_a_positive_finite_number(
    name: str, value: object
) -> None:
    # Before: lease_s=nan passed (nan <= 0 is false) and the first claim failed with
    # "NOT NULL constraint failed: linkmq_message.visible_at"; busy_timeout_s=nan raised a bare
    # "cannot convert float NaN to integer".
    with pytest.raises(TransportOptionError, match=name):
        TransportOptions.from_transport_options({name: value})
