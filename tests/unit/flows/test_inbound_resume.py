"""Tier 1: a caller's place comes back from the AGI request alone."""

from __future__ import annotations

from callcenter.flows.inbound import Resume, resume_of
from callcenter.protocol.agi import AgiParser, AgiRequest


def request(script: str) -> AgiRequest:
    [parsed] = AgiParser().feed(
        f"agi_network: yes\nagi_network_script: {script}\n"
        "agi_channel: PJSIP/trunk-00000001\nagi_uniqueid: node1-1.1\n\n".encode()
    )
    assert isinstance(parsed, AgiRequest)
    return parsed


def test_first_arrival_has_empty_variables_and_no_place() -> None:
    assert resume_of(request("inbound?dnis=3901&interaction=&enqueued=")) is None


def test_a_caller_sent_back_by_the_dialplan_keeps_id_and_enqueue_time() -> None:
    got = resume_of(request("inbound?dnis=3901&interaction=abc-1&enqueued=1764640000.250"))
    assert got == Resume("abc-1", 1764640000.25)


def test_a_transfer_is_a_new_interaction_even_with_variables() -> None:
    assert resume_of(request("inbound?queue=q1&from=x&interaction=abc-1&enqueued=1.0")) is None


def test_a_damaged_enqueue_time_is_no_place_rather_than_an_error() -> None:
    assert resume_of(request("inbound?interaction=abc-1&enqueued=soon")) is None
