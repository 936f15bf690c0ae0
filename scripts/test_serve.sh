#!/usr/bin/env bash
# Tests of `charlm serve` and `charlm explain` with real clients, run by CI after `swift test`:
#   - trains a small model on corpora/brackets.txt (a release build: seconds),
#   - explain: the report is well-formed HTML (a strict parser), --json has every property,
#     and a neuron follows bracket depth (|r| >= 0.5) and explain finds it,
#   - the official `openai` Python client against `charlm serve` (scripts/test_serve.py):
#     completions, streaming, n > 1, seeds, logprobs, stop, errors; bad input over raw HTTP;
#     64 concurrent streaming clients for 20 s (LOAD_SECONDS), all complete, figures printed,
#   - the page in headless Chromium through Selenium (scripts/test_browser.py); screenshots
#     go to .build-artifacts/ (kept for inspection).
# Needs chromium, chromium-driver and pip's openai and selenium (install-packages.sh --tests).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# CHARLM=PATH tests that binary (CI passes the MPI tests' release build, which serves as well).
if [ -n "${CHARLM:-}" ]; then
    charlm=$(cd "$(dirname "$CHARLM")" && pwd)/$(basename "$CHARLM")
else
    swift build -c release --product charlm 2>&1 | tail -1
    [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "FAIL: the release build"; exit 1; }
    charlm="$root/.build/release/charlm"
fi
artifacts="$root/.build-artifacts"
mkdir -p "$artifacts"
work=$(mktemp -d)
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS CHARLM_API_KEY
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

"$charlm" train "$root/corpora/brackets.txt" --out brackets --hidden 64 --layers 1 --max-steps 600 \
    --eval-every 200 --sample-every 0 --seed 1 --quiet >train.log 2>&1 || { cat train.log; fail "training"; }

# explain: HTML and JSON.
if "$charlm" explain brackets "$root/corpora/brackets.txt" -o report.html --max-chars 5000 2>explain.log; then
    pass "explain wrote report.html ($(wc -c <report.html) bytes): $(cat explain.log)"
else
    fail "explain: $(cat explain.log)"
fi
python3 - report.html <<'PY' && pass "report.html is well-formed HTML with no external resources" || fail "report.html"
import sys
from html.parser import HTMLParser
VOID = {"meta", "br", "img", "hr", "input", "link"}
class Strict(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.errors = [], []
    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href") and value and ("//" in value):
                self.errors.append(f"external {name}={value}")
        if tag not in VOID:
            self.stack.append(tag)
    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]} at line {self.getpos()[0]}")
        else:
            self.stack.pop()
text = open(sys.argv[1], encoding="utf-8").read()
p = Strict()
p.feed(text)
p.close()
assert text.startswith("<!doctype html>"), "doctype"
assert not p.errors and not p.stack, (p.errors[:5], p.stack)
assert "Hardest spans" in text and "bracket depth" in text
PY
"$charlm" explain brackets - --json --max-chars 5000 <"$root/corpora/brackets.txt" >report.json 2>/dev/null
python3 - report.json <<'PY' && pass "explain --json: a neuron follows bracket depth, and explain names it" || fail "explain --json"
import json, sys
d = json.load(open(sys.argv[1]))
props = {p["property"]: p for p in d["properties"]}
assert set(props) == {"position in line", "bracket depth", "after a newline", "word length"}, props.keys()
assert d["constant_properties"] == ["inside quotes"], d["constant_properties"]
assert len(d["units"]) == 5000 and len(d["bits"]) == 5000 and 0 < d["mean_bits"] < 3
best = props["bracket depth"]["neurons"][0]
assert abs(best["correlation"]) >= 0.5, best["correlation"]
# The correlation it reports is the one its activations give.
import statistics
x, y = best["activations"], props["bracket depth"]["values"]
mx, my = statistics.fmean(x), statistics.fmean(y)
r = sum((a - mx) * (b - my) for a, b in zip(x, y)) / (sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y)) ** 0.5
assert abs(r - best["correlation"]) < 1e-6, (r, best["correlation"])
print(f"   bracket depth: layer {best['layer']} unit {best['unit']} ({best['kind']}), r = {r:+.3f}")
PY

# serve: start on a free port, wait for it.
"$charlm" serve brackets --port 0 --max-tokens 1000000 >serve.log 2>&1 &
server=$!
for _ in $(seq 100); do grep -q "at http://" serve.log && break; sleep 0.1; done
base=$(grep -o 'http://[^/ ]*' serve.log | head -1)
[ -n "$base" ] || { cat serve.log; fail "serve did not start"; exit 1; }
pass "serve listening at $base"
python3 "$root/scripts/test_serve.py" "$base" --load-seconds "${LOAD_SECONDS:-20}" --clients 64 || fail "test_serve.py"
# The three clients test_serve.py drops mid-stream: each generation logged as stopped.
stopped=$(grep -c " /v1/completions 499 .*generation stopped" serve.log)
[ "$stopped" -eq 3 ] && pass "the three dropped streams were stopped, not finished (499 in the log)" \
    || fail "dropped streams logged as stopped: $stopped of 3"
python3 "$root/scripts/test_browser.py" "$base" "$artifacts" || fail "test_browser.py"
kill "$server" 2>/dev/null
wait "$server" 2>/dev/null
server=""
lines=$(grep -c " /v1/completions " serve.log)
[ "$lines" -gt 10 ] && pass "the server logged one line per request ($lines completions)" || fail "request log ($lines)"
echo "$failures failures"
[ "$failures" -eq 0 ]
