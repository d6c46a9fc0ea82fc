#!/usr/bin/env bash
# The README's first command (via `make demo`): score the example
# conversations with a model. With no MODEL, the project writes its own demo
# model (random weights, a small tokenizer; nothing is downloaded).
#   make demo                               # the built-in demo model
#   make demo MODEL=/path/to/hf/checkpoint  # a real reward model directory
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
MODEL=${MODEL:-}
INPUT=${INPUT:-examples/conversations.jsonl}
if [ -z "$MODEL" ]; then
    MODEL=$BUILD/demo-model
    [ -f "$MODEL/model.safetensors" ] || python3 scripts/make_demo_model.py "$MODEL"
fi
echo "== scoring $INPUT with $MODEL" >&2
# The JSON lines go to stdout as they are; a person reads the preview on stderr.
scored=$("$BUILD/bin/nimreward-score" --model "$MODEL" -i "$INPUT" ${DEMO_FLAGS:-}) && rc=0 || rc=$?
[ -n "$scored" ] && printf '%s\n' "$scored"
[ -n "$scored" ] && printf '%s\n' "$scored" | python3 scripts/demo_preview.py "$INPUT" >&2
exit "$rc"
