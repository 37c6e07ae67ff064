#!/usr/bin/env bash
# Started by ../shared/bench (run_all.sh --peer-dir benchmarks/peers/shipyard-ray): register
# the benchmark's exported models (the same files every peer serves), then serve them on Ray
# Serve: one deployment per model, one replica each, Shipyard's batcher in it.
set -euo pipefail
port="$1"
shift  # the rest: more `shipyard serve` options (the haproxy peer passes its ingress)
bin="$(cd ../../.. && pwd)/.venv/bin"
rm -rf "$SHIPYARD_HOME"
"$bin/shipyard" models register "$PEERS_MODELS_DIR/minilm-int8.onnx" --name minilm \
  --tokenizer "$PEERS_MODELS_DIR/tokenizer.json" --max-length 128 --alias production
"$bin/shipyard" models register "$PEERS_MODELS_DIR/tabular.onnx" --name cancer --alias production
exec "$bin/shipyard" serve --engine ray --num-replicas 1 --host 127.0.0.1 --port "$port" \
  --max-batch-size 64 --max-batch-delay-ms 10 "$@"
