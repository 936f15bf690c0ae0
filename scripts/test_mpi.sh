#!/usr/bin/env bash
# Tests of data-parallel training under MPI (the `MPI` package trait), run by CI after
# `swift test`: builds charlm with the trait, then under `mpirun -np 2`
#   - 2 ranks give the weights of one process with the same global batch (30 steps, with and
#     without dropout, an odd batch; max |dw| <= 1e-5, and in fact 0 against 2 threads),
#   - a run resumed on the same 2 ranks is exact, and on 1 process it continues (and says so),
#   - ranks started on different corpora stop at once with a clear error,
#   - a rank killed with SIGKILL ends the job within 30 s, and the run stays loadable and
#     resumable.
# Needs openmpi-bin and libopenmpi-dev (scripts/install-packages.sh --mpi) and python3.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# Release: the same binary then serves scripts/test_serve.sh in CI (CHARLM=.build-mpi/release/charlm).
swift build -c release --traits MPI --build-path .build-mpi 2>&1 | tail -1
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "FAIL: the MPI build"; exit 1; }
charlm="$root/.build-mpi/release/charlm"
mpirun=(mpirun --oversubscribe -np 2)
[ "$(id -u)" -eq 0 ] && mpirun=(mpirun --allow-run-as-root --oversubscribe -np 2)
corpus="$root/corpora/brackets.txt"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# The tests set what they rely on: one OpenBLAS thread per call, whatever kernel table.
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }
same() {  # same A B TOLERANCE WHAT
    if out=$(python3 "$root/scripts/compare_safetensors.py" "$1" "$2" --tolerance "$3"); then
        pass "$4 ($out)"
    else
        fail "$4 ($out)"
    fi
}
# A constant rate: a run resumed with a longer step limit then continues as one run with that
# limit would (the default schedule's decay moves with the limit).
small=(--hidden 32 --layers 2 --batch 9 --seq-length 16 --eval-every 10 --sample-every 0 --lr-schedule constant --quiet)

"$charlm" info --help >/dev/null
if "$charlm" train "$corpus" --out probe --max-steps 1 "${small[@]}" >>log 2>&1 && "$charlm" info probe | grep -q "distributed  MPI build"; then
    pass "info: this build can run distributed"
else
    fail "info does not report the MPI build"
fi

for dropout in 0 0.25; do
    "$charlm" train "$corpus" --out one-$dropout --max-steps 30 --dropout "$dropout" --threads 2 "${small[@]}" >>log 2>&1
    "${mpirun[@]}" "$charlm" train "$corpus" --out two-$dropout --max-steps 30 --dropout "$dropout" "${small[@]}" >>log 2>&1
    same one-$dropout/model.safetensors two-$dropout/model.safetensors 1e-5 "2 ranks = 1 process, dropout $dropout"
    # The ranks split each validation's streams and add up the losses: the same validations.
    if python3 - one-$dropout/trainer_state.json two-$dropout/trainer_state.json <<'PY'
import json, sys
a, b = (json.load(open(p))["history"] for p in sys.argv[1:3])
assert len(a) == len(b) == 3, (len(a), len(b))
for x, y in zip(a, b):
    assert abs(x["validation_loss"] - y["validation_loss"]) <= 1e-9 * abs(x["validation_loss"]), (x, y)
PY
    then pass "2 ranks validate as 1 process does, dropout $dropout"; else fail "validation losses differ, dropout $dropout"; fi
done

# The default schedule (the rate falls over the last quarter of the step limit) on 2 ranks.
auto=("${small[@]/constant/auto}")
"$charlm" train "$corpus" --out one-auto --max-steps 30 --threads 2 "${auto[@]}" >>log 2>&1
"${mpirun[@]}" "$charlm" train "$corpus" --out two-auto --max-steps 30 "${auto[@]}" >>log 2>&1
same one-auto/model.safetensors two-auto/model.safetensors 1e-5 "2 ranks = 1 process, the auto schedule"

# Exact resume on the same ranks: 15 + 15 steps against 30 in one go.
"${mpirun[@]}" "$charlm" train "$corpus" --out split --max-steps 15 --dropout 0.25 "${small[@]}" >>log 2>&1
"${mpirun[@]}" "$charlm" train --resume split --max-steps 30 --quiet >>log 2>&1
same two-0.25/model.safetensors split/model.safetensors 0 "resumed on the same 2 ranks: bit-exact"
# On another number of processes: continues from the same global state, and says why it is not exact.
"${mpirun[@]}" "$charlm" train "$corpus" --out moved --max-steps 15 --dropout 0.25 "${small[@]}" >>log 2>&1
if "$charlm" train --resume moved --max-steps 30 --threads 1 2>&1 | grep -q "on 1 process instead of 2"; then
    pass "resumed on 1 process: continues and says it is not bit-exact"
else
    fail "resuming a 2-rank run on 1 process"
fi
same two-0.25/model.safetensors moved/model.safetensors 1e-4 "resumed on 1 process: the same model to float rounding"

# Ranks that would train different things stop before the first step.
head -c 4000 "$corpus" >other.txt
mismatch=$("${mpirun[@]}" bash -c 'if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then c=other.txt; else c='"$corpus"'; fi
    exec '"$charlm"' train "$c" --out mismatch --max-steps 5 --hidden 32 --batch 9 --seq-length 16 --quiet' 2>&1)
status=$?
if [ $status -ne 0 ] && grep -q "ranks of this job differ" <<<"$mismatch"; then
    pass "different corpora on the ranks: refused ($status)"
else
    fail "different corpora on the ranks were not refused: $status $mismatch"
fi

# An error on one rank only (rank 0 finds the run directory taken) ends the whole job.
start=$(date +%s)
taken=$(timeout 60 "${mpirun[@]}" "$charlm" train "$corpus" --out two-0 --max-steps 5 "${small[@]}" 2>&1)
status=$?
if [ $status -ne 0 ] && [ $status -ne 124 ] && grep -q "already exists" <<<"$taken" && grep -q "ending the job" <<<"$taken"; then
    pass "an error on rank 0 alone ends the job in $(( $(date +%s) - start )) s ($status)"
else
    fail "an error on rank 0 alone did not end the job ($status): $taken"
fi

# Ranks may use different thread counts (machines differ): they still train together.
if "${mpirun[@]}" bash -c 'exec '"$charlm"' train '"$corpus"' --out threads --max-steps 5 --hidden 32 --batch 9 \
    --seq-length 16 --sample-every 0 --quiet --threads $((OMPI_COMM_WORLD_RANK + 1))' >>log 2>&1; then
    pass "ranks with different thread counts train together"
else
    fail "ranks with different thread counts were refused"
fi

# A rank killed with SIGKILL: the job ends, the run survives.
"${mpirun[@]}" "$charlm" train "$corpus" --out killed --max-steps 1000000 --hidden 32 --batch 8 --seq-length 16 \
    --eval-every 5 --sample-every 0 --quiet >killed.log 2>&1 &
job=$!
rank1=""
for _ in $(seq 1 100); do
    if [ -f killed/trainer_state.json ] && grep -q '"step" : [1-9]' killed/trainer_state.json; then
        for pid in $(pgrep -f "charlm train $corpus --out killed" || true); do
            if tr '\0' '\n' </proc/$pid/environ 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1'; then rank1=$pid; fi
        done
        [ -n "$rank1" ] && break
    fi
    sleep 0.2
done
if [ -z "$rank1" ]; then
    fail "could not find rank 1 of the job"
    kill "$job" 2>/dev/null || true
else
    kill -9 "$rank1"
    start=$(date +%s)
    ended=""
    for _ in $(seq 1 300); do
        if ! kill -0 "$job" 2>/dev/null; then ended=yes; break; fi
        sleep 0.1
    done
        wait "$job"
    status=$?
        if [ -n "$ended" ] && [ $status -ne 0 ]; then
        pass "rank 1 killed: the job ended in $(( $(date +%s) - start )) s with status $status"
    else
        fail "rank 1 killed: the job did not end within 30 s (status $status)"
        kill -9 "$job" 2>/dev/null || true
    fi
    grep -q "exited on signal 9" killed.log && pass "mpirun names the rank that died" || fail "no message naming the dead rank: $(tail -5 killed.log)"
    step=$(python3 -c 'import json; print(json.load(open("killed/trainer_state.json"))["step"])')
    if "$charlm" info killed >/dev/null \
        && "${mpirun[@]}" "$charlm" train --resume killed --max-steps $((step + 5)) --quiet >>log 2>&1; then
        pass "the run is loadable and resumes on 2 ranks (from step $step)"
    else
        fail "the run left by the killed job does not resume"
    fi
fi

if [ $failures -ne 0 ]; then
    echo "--- the runs' output:"
    tail -40 log
    echo "$failures MPI test(s) failed"
    exit 1
fi
echo "all MPI tests passed"
