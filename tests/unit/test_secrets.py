"""Tier 1: secret files are owner-only, and their content never leaks into errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcenter.errors import ConfigError
from callcenter.secrets import read_secret_file


def test_an_owner_only_file_is_read_and_stripped(tmp_path: Path) -> None:
    secret = tmp_path / "ami.secret"
    secret.write_text("s3cr3t\n")
    secret.chmod(0o600)
    assert read_secret_file(secret, "ami.secret_file") == "s3cr3t"


def test_a_file_others_can_read_is_refused_without_showing_it(tmp_path: Path) -> None:
    secret = tmp_path / "ami.secret"
    secret.write_text("s3cr3t")
    secret.chmod(0o644)
    with pytest.raises(
        ConfigError, match=r"ami.secret_file: .* readable by its owner only"
    ) as error:
        read_secret_file(secret, "ami.secret_file")
    assert "s3cr3t" not in str(error.value)


def test_a_missing_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"crm.http.token_file: .* does not exist"):
        read_secret_file(tmp_path / "nope", "crm.http.token_file")
