#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages charlm needs (idempotent, quiet; sudo when not root).
#
#   scripts/install-packages.sh          building and running charlm
#   scripts/install-packages.sh --tests  and what the tests use (Unicode data files, prlimit, Open MPI)
#   scripts/install-packages.sh --mpi    and Open MPI, for `swift build --traits MPI`
set -euo pipefail

packages=(pkg-config libutf8proc-dev libopenblas-dev)
[ "${1:-}" = "--tests" ] && packages+=(unicode-data bzip2 util-linux openmpi-bin libopenmpi-dev python3)
[ "${1:-}" = "--mpi" ] && packages+=(openmpi-bin libopenmpi-dev)

missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "==> installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
