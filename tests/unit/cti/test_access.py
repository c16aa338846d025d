"""Tier 1: the access policy."""

from __future__ import annotations

import pytest

from callcenter.cti.access import (
    Action,
    Principal,
    Role,
    acts_for_other,
    allowed,
    new_token,
    require,
    token_digest,
)
from callcenter.errors import Forbidden

AGENT = Principal("a01", Role.AGENT, "a01")
SUPERVISOR = Principal("s1", Role.SUPERVISOR, "s1")
ADMIN = Principal("root", Role.ADMIN, None)


def test_an_agent_acts_only_on_themself() -> None:
    assert allowed(AGENT, Action.AGENT_OPERATE, "a01")
    assert not allowed(AGENT, Action.AGENT_OPERATE, "a02")
    assert not allowed(AGENT, Action.AGENT_OPERATE, None)
    for action in (Action.SUPERVISE, Action.COACH, Action.MESSAGE, Action.MANAGE_USERS):
        assert not allowed(AGENT, action, "a01")
    with pytest.raises(Forbidden, match=r"a01 \(agent\) may not agent.operate on a02"):
        require(AGENT, Action.AGENT_OPERATE, "a02")


def test_a_supervisor_acts_on_anyone_but_coaches_from_their_own_phone() -> None:
    assert allowed(SUPERVISOR, Action.AGENT_OPERATE, "a02")
    assert allowed(SUPERVISOR, Action.SUPERVISE)
    assert allowed(SUPERVISOR, Action.COACH, "s1")
    assert not allowed(SUPERVISOR, Action.COACH, "s2")
    assert not allowed(SUPERVISOR, Action.MANAGE_USERS)


def test_an_admin_may_do_everything() -> None:
    assert all(allowed(ADMIN, action, "x") for action in Action)


def test_acting_for_another_is_what_gets_audited() -> None:
    assert acts_for_other(SUPERVISOR, "a01")
    assert not acts_for_other(AGENT, "a01")


def test_tokens_are_random_and_only_their_digest_is_kept() -> None:
    one, two = new_token(), new_token()
    assert one != two
    assert len(one) >= 40
    assert token_digest(one) != one
    assert len(token_digest(one)) == 64
    assert token_digest(one) == token_digest(one)
