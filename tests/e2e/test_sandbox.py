"""Tier 3: our Asterisk configuration, loaded by the real Asterisk 22.

This is the config validation that counts: Asterisk itself parses every file;
a boot with any WARNING or ERROR fails, and the objects the call centre needs
must exist as Asterisk built them.
"""

from __future__ import annotations

import re

import pytest

from callcenter.testing.instances import AsteriskInstance

pytestmark = pytest.mark.asterisk


def test_boot_is_clean(asterisk: AsteriskInstance) -> None:
    console = asterisk.sandbox.console_log.read_text(errors="replace")
    assert "Asterisk Ready" in console
    # The boot only: the instance is shared by the session, and later tests
    # make FastAGI unreachable on purpose (daemon restarts).
    boot = console[: console.index("Asterisk Ready")]
    problems = [line for line in boot.splitlines() if re.search(r"\b(WARNING|ERROR)\[", line)]
    assert problems == []


def test_phones_are_built_for_recording_and_coaching(asterisk: AsteriskInstance) -> None:
    for endpoint in ("agent1", "agent20", "supervisor1"):
        detail = asterisk.cli(f"pjsip show endpoint {endpoint}")
        assert re.search(r"direct_media\s+:\s+false", detail), endpoint
        assert re.search(r"dtmf_mode\s+:\s+rfc4733", detail), endpoint
        assert f"{endpoint}-auth" in detail, f"{endpoint} must require authentication"
    trunk = asterisk.cli("pjsip show endpoint trunk")
    assert re.search(r"context\s+:\s+from-trunk", trunk)


def test_ami_user_and_dialplan(asterisk: AsteriskInstance) -> None:
    user = asterisk.cli("manager show user callcenter")
    assert "callcenter" in user
    assert "originate" in user
    dialplan = asterisk.cli("dialplan show from-trunk")
    assert "AGI(${CALLCENTER_AGI}/inbound" in dialplan
    assert "9999" in dialplan
    assert f"agi://127.0.0.1:{asterisk.ports.agi}" in asterisk.cli("dialplan show globals")


def test_french_and_english_prompts_are_installed(asterisk: AsteriskInstance) -> None:
    # Asked of Asterisk itself: the chroot's language links are absolute
    # (/etc/alternatives/...) and do not resolve from the host.
    for sound in ("beep", "digits/1", "queue-youarenext"):
        listing = asterisk.cli(f"core show sound {sound}")
        assert "Language en:" in listing, listing
        assert "Language fr:" in listing, listing
        assert "Format: gsm" in listing, listing
