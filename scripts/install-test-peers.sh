#!/usr/bin/env bash
# Installs the test peers from Debian's packages: DCMTK (modalities, workstations, reference servers),
# Orthanc with its DICOMweb plugin (a real DICOMweb server), Chromium (the browser), openssl (test CAs),
# tinyproxy (the clinic's HTTP proxy), stunnel4 (TLS in front of plain-HTTP peers, with a test CA's certificate),
# systemd and python3 (the service package's test: systemd-analyze verify, systemd-notify, a notify socket),
# FUSE with python3-fusepy (the file system of the power-loss test, test/support/lossyfs.py).
# Runs apt-get update first, since a fresh machine's package lists may be empty or stale, and uses sudo
# only when not already root (a fresh Debian container has no sudo).
set -euo pipefail

packages=(dcmtk orthanc orthanc-dicomweb chromium openssl ca-certificates tinyproxy stunnel4)
packages+=(systemd python3)
packages+=(fuse3 python3-fusepy)
as_root=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-test-peers: not root and no sudo: run this script as root" >&2; exit 1; }
  as_root=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}"
