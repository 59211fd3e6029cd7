#!/usr/bin/env bash
# Every bundled sample dataset through `mirograph bench`, offline: a simulated model
# (sim_answers.py) answers them, K=2 runs per task, the exact judge. Prints each summary
# table; the results, summary.json and the two plots land in OUT/<format>/.
#   bash examples/bench/run-samples.sh [OUT]     (default: bench-samples)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-bench-samples}"
port="${MIROGRAPH_SAMPLE_PORT:-8011}"
export MIROGRAPH_BASE_URL="http://127.0.0.1:${port}/v1"
PYTHONPATH="$here" mirograph sim-model --policy sim_answers:answer --port "$port" >/dev/null &
sim=$!
trap 'kill "$sim" 2>/dev/null' EXIT
for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:${port}/v1/models" >/dev/null && break
  sleep 0.2
done
for data in gaia browsecomp.csv browsecomp-zh.csv xbench-deepsearch.csv hle.jsonl frames.tsv standard; do
  name="${data%%.*}"
  echo "== $data"
  mirograph bench "$here/$data" --flow "$here/sim-flow.yaml" --runs 2 --out "$out/$name" 2>/dev/null
done
