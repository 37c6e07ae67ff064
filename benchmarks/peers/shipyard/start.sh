#!/usr/bin/env bash
# Started by ../shared/bench (run_all.sh --peer-dir benchmarks/peers/shipyard): register the
# benchmark's exported models (the same files every peer serves), then serve them.
set -euo pipefail
port="$1"
bin="$(cd ../../.. && pwd)/.venv/bin"
rm -rf "$SHIPYARD_HOME"
"$bin/shipyard" models register "$PEERS_MODELS_DIR/minilm-int8.onnx" --name minilm \
  --tokenizer "$PEERS_MODELS_DIR/tokenizer.json" --max-length 128 --alias production
"$bin/shipyard" models register "$PEERS_MODELS_DIR/tabular.onnx" --name cancer --alias production
exec "$bin/shipyard" serve --host 127.0.0.1 --port "$port" \
  --max-batch-size 64 --max-batch-delay-ms 10
