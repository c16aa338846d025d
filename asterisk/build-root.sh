#!/usr/bin/env bash
# Builds (once per machine) a Debian sid chroot holding Asterisk 22: Debian
# bookworm ships no asterisk package, sid does. Idempotent: a finished root is
# marked with .callcenter-ready and reused.
set -euo pipefail
ROOT=${1:?usage: build-root.sh DIR}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
if [ -f "$ROOT/.callcenter-ready" ]; then
  echo "asterisk root ready: $ROOT"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "build-root.sh: must run as root (debootstrap, chroot)" >&2
  exit 1
fi
rm -rf "$ROOT"
mkdir -p "$(dirname "$ROOT")"
echo "debootstrap sid into $ROOT (about 30 s)"
debootstrap --variant=minbase sid "$ROOT" "$MIRROR" >"$ROOT.debootstrap.log" 2>&1 || {
  tail -20 "$ROOT.debootstrap.log" >&2; exit 1; }
# The sid Release file is served expired: ignore Valid-Until.
chroot "$ROOT" apt-get -o Acquire::Check-Valid-Until=false update -qq
chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  asterisk asterisk-core-sounds-en-gsm asterisk-core-sounds-fr-gsm asterisk-moh-opsound-gsm >/dev/null
# Asterisk looks prompts up by language code: "fr" must exist.
ln -sfn fr_CA_f_June "$ROOT/usr/share/asterisk/sounds/fr"
chroot "$ROOT" asterisk -V
touch "$ROOT/.callcenter-ready"
