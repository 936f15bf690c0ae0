#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages charlm needs (idempotent, quiet; sudo when not root).
#
#   scripts/install-packages.sh          building and running charlm
#   scripts/install-packages.sh --tests  and what the tests use (Unicode data files, prlimit, Open MPI,
#                                        Chromium and its driver, and pip's openai and selenium)
#   scripts/install-packages.sh --mpi    and Open MPI, for `swift build --traits MPI`
set -euo pipefail

packages=(pkg-config libutf8proc-dev libopenblas-dev)
[ "${1:-}" = "--tests" ] && packages+=(unicode-data bzip2 util-linux openmpi-bin libopenmpi-dev python3 python3-pip
    chromium chromium-driver)
[ "${1:-}" = "--mpi" ] && packages+=(openmpi-bin libopenmpi-dev)

missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
if [ "${#missing[@]}" -gt 0 ]; then
    echo "==> installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The serve tests' clients: the official OpenAI client and Selenium (scripts/test_serve.sh).
if [ "${1:-}" = "--tests" ] && ! python3 -c "import openai, selenium" 2>/dev/null; then
    echo "==> pip installing openai selenium"
    # A system Python (PEP 668) refuses plain installs: then into the user's site.
    python3 -m pip install --quiet --disable-pip-version-check openai selenium 2>/dev/null ||
        python3 -m pip install --quiet --disable-pip-version-check --user --break-system-packages openai selenium
    python3 -c "import openai, selenium"
fi
