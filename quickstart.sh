#!/usr/bin/env bash
# One command from a fresh clone to a trained model: installs the system packages (apt),
# builds charlm in release mode, fetches tinyshakespeare (checksum verified), trains the
# default model for a short, stated time, and generates a sample from it.
#
#   ./quickstart.sh                 # 5 minutes of training
#   CHARLM_TIME=20m ./quickstart.sh # longer
#   CHARLM_CORPORA=DIR ./quickstart.sh   # offline: copy tinyshakespeare.txt from DIR
set -euo pipefail
cd "$(dirname "$0")"
time_budget="${CHARLM_TIME:-5m}"

scripts/install-packages.sh

echo "==> building charlm (release)"
swift build -c release --product charlm 2>&1 | tail -n 1
charlm=.build/release/charlm

echo "==> fetching tinyshakespeare"
if [ -n "${CHARLM_CORPORA:-}" ]; then
    corpus=$(corpora/fetch.sh tinyshakespeare --from "$CHARLM_CORPORA")
elif ! corpus=$(corpora/fetch.sh tinyshakespeare); then
    echo "    (no download: training on the project's own corpora/brackets.txt instead;" >&2
    echo "     set CHARLM_CORPORA=DIR to copy tinyshakespeare.txt from a directory)" >&2
    corpus=corpora/brackets.txt
fi

run=runs/quickstart
echo "==> training the default model on $corpus for $time_budget into $run"
$charlm train "$corpus" --out "$run" --overwrite --time "$time_budget"

echo "==> a sample (temperature 0.8)"
$charlm generate "$run" --prompt $'\n' --length 600 --temperature 0.8 --seed 1
echo
echo "==> next: $charlm generate $run --prompt \"ROMEO:\"   |   $charlm serve $run (then open http://127.0.0.1:8080/)   |   $charlm info $run"
