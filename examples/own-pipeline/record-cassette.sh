#!/bin/sh
# Re-record cassettes/own-pipeline.yaml: docpipe in real mode against `tvdb emulate` on loopback (no money,
# no internet), then check the cassette for keys. Run from anywhere; needs tvdb installed.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
port=${PORT:-8089}
tvdb emulate --port "$port" --quiet &
emulator=$!
trap 'kill "$emulator"' EXIT
sleep 2
OPENAI_BASE_URL="http://127.0.0.1:$port/v1" LLAMA_CLOUD_BASE_URL="http://127.0.0.1:$port" \
OPENAI_API_KEY="sk-emulated-key-for-recording" LLAMA_CLOUD_API_KEY="llx-emulated-key-for-recording" \
  tvdb run "$here/scenario.yaml" --mode real --record --cassette "$here/cassettes/own-pipeline.yaml" --no-progress
tvdb cassette check "$here/cassettes/own-pipeline.yaml"
