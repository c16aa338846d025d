"""Secrets read from files (AMI secret, CRM token, webhook keys, PIN pepper).

A secret file must be readable by its owner only; its content never appears
in an error message.
"""

from __future__ import annotations

import stat
from pathlib import Path

from callcenter.errors import ConfigError


def read_secret_file(path: Path, key: str) -> str:
    """The stripped content of ``path``; ``key`` names the setting in errors."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(f"{key}: {path} does not exist") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{key}: {path} must be readable by its owner only (chmod 600)")
    return path.read_text().strip()
