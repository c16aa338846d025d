"""Fixtures for the IVR tests."""

from __future__ import annotations

import pytest
from ivr_helpers import BANK, SURVEY

from callcenter.ivr.model import Script


@pytest.fixture
def bank() -> Script:
    return BANK


@pytest.fixture
def survey() -> Script:
    return SURVEY
