"""What a tier-3 test gets from the ``asterisk`` fixture."""

from __future__ import annotations

from dataclasses import dataclass

from callcenter.sandbox.asterisk import AmiCredentials, AsteriskPorts, AsteriskSandbox


@dataclass(frozen=True)
class AsteriskInstance:
    sandbox: AsteriskSandbox
    ami: AmiCredentials
    ports: AsteriskPorts
    phones_port: int

    def cli(self, command: str) -> str:
        return self.sandbox.cli(command)

    def active_channels(self) -> int:
        # "N active channel(s)"
        for line in self.cli("core show channels count").splitlines():
            if "active channel" in line:
                return int(line.split()[0])
        return 0
