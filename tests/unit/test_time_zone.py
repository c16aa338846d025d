"""Tier 1: one rule for time-zone names typed by people (config, CLI, REST, scripts)."""

from __future__ import annotations

import pytest

from callcenter.clock import time_zone
from callcenter.errors import ConfigError


def test_a_known_zone() -> None:
    assert str(time_zone("Europe/Paris")) == "Europe/Paris"


@pytest.mark.parametrize(
    "name",
    [
        "Mars/Olympus",  # unknown
        "Europe",  # a directory of the zone database
        "../../etc/passwd",  # not a zone name
        "Z" * 300,  # a file name too long for the file system (found by fuzzing)
        "",
    ],
)
def test_any_unusable_name_is_one_clear_error(name: str) -> None:
    with pytest.raises(ConfigError, match="--tz: unknown time zone"):
        time_zone(name, "--tz")
