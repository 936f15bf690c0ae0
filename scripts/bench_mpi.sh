#!/usr/bin/env bash
# Training throughput of one process on all cores against `mpirun -np RANKS` with one thread
# per rank, alternating the two: scripts/bench_mpi.sh CORPUS [HIDDEN...]
# Needs the MPI build (swift build -c release --traits MPI --build-path .build-mpi). Prints,
# per run, the median chars/s of the progress reports after the first.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
corpus=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
shift
sizes=("${@:-256 512}")
charlm="$root/.build-mpi/release/charlm"
ranks=${RANKS:-2}
threads=$(nproc)
mpirun=(mpirun --oversubscribe -np "$ranks")
[ "$(id -u)" -eq 0 ] && mpirun=(mpirun --allow-run-as-root --oversubscribe -np "$ranks")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
for hidden in ${sizes[@]}; do
    for repeat in 1 2 3; do
        for mode in single mpi; do
            rm -rf run
            if [ $mode = single ]; then command=("$charlm" train "$corpus" --out run --threads "$threads")
            else command=("${mpirun[@]}" "$charlm" train "$corpus" --out run --threads 1); fi
            "${command[@]}" --hidden "$hidden" --max-steps 60 --log-every 10 --eval-every 1000 --sample-every 0 \
                --json 2>/dev/null | python3 -c "
import json, statistics, sys
rates = [json.loads(l)['units_per_s'] for l in sys.stdin if '\"progress\"' in l][1:]
print(json.dumps({'hidden': $hidden, 'mode': '$mode', 'repeat': $repeat, 'chars_per_s': int(statistics.median(rates))}))"
        done
    done
done
