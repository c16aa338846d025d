"""Tier 1: rendering per-instance Asterisk configs (pure text)."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcenter.errors import SandboxError
from callcenter.sandbox.asterisk import (
    REPO,
    AsteriskPorts,
    AsteriskSandbox,
    override_options,
    render_config,
)


def test_override_replaces_only_inside_the_named_section() -> None:
    text = "[a]\nport = 1\n[b]\nport = 2\n"
    assert override_options(text, {("b", "port"): "9"}) == "[a]\nport = 1\n[b]\nport = 9\n"


def test_override_keeps_the_arrow_style() -> None:
    text = "[directories]\nastetcdir => /etc/asterisk\n"
    out = override_options(text, {("directories", "astetcdir"): "/x"})
    assert out == "[directories]\nastetcdir => /x\n"


def test_override_of_a_missing_setting_is_an_error() -> None:
    with pytest.raises(SandboxError, match="no setting to override"):
        override_options("[a]\nx = 1\n", {("a", "port"): "9"})


def test_rendered_instance_uses_its_own_ports(tmp_path: Path) -> None:
    ports = AsteriskPorts(
        sip=15060,
        ami=15038,
        rtp_start=30000,
        rtp_end=30099,
        agi=14573,
        trunk=15070,
        phones_contact="127.0.0.1:16000",
    )
    sandbox = AsteriskSandbox("unit", ports=ports, root=tmp_path)

    def render(name: str) -> str:
        return render_config(name, (REPO / "asterisk" / name).read_text(), sandbox)

    assert "bind = 127.0.0.1:15060" in render("pjsip.conf")
    assert "contact = sip:127.0.0.1:15070" in render("pjsip.conf")
    assert "port = 15038" in render("manager.conf")
    assert "rtpstart = 30000" in render("rtp.conf")
    assert "CALLCENTER_AGI = agi://127.0.0.1:14573" in render("extensions.conf")
    assert "astrundir => /callcenter/unit/run" in render("asterisk.conf")
    phones = render("pjsip_phones.conf")
    assert "[agent7](aor-phone)\ncontact = sip:agent7@127.0.0.1:16000" in phones


def test_repository_configs_hold_no_ami_secret() -> None:
    manager = (REPO / "asterisk" / "manager.conf").read_text()
    assert "secret" not in [line.split("=")[0].strip() for line in manager.splitlines()]
