#!/usr/bin/env bash
# make bench — LargeForge beside llama.cpp's llama-bench on the same shapes, dtypes, machine and
# thread count, in one run. Rounds alternate the two tools and the models so that the noise of
# a shared machine falls on both; the summary quotes medians and the LargeForge/llama.cpp ratio.
# Everything is JSON lines on stdout (progress on stderr).
#
#   LF_BENCH_DIR     random-weight model dirs  (default ~/.cache/largeforge-bench)
#   LF_BENCH_ROUNDS  rounds                    (default 3)
#   LF_BENCH_THREADS threads                   (default 2)
#   LF_BENCH_PEER    0 to skip llama.cpp       (default 1; see bench/peer_llamacpp.sh)
#   LF_BENCH_ONLY    train: only the training comparison (with PyTorch); serve: only the serving
#                    one (bench/serve_bench.sh, beside llama-server)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${LF_BENCH_ONLY:-}" = serve ] && exec bash bench/serve_bench.sh
DIR="${LF_BENCH_DIR:-$HOME/.cache/largeforge-bench}"
ROUNDS="${LF_BENCH_ROUNDS:-3}"
T="${LF_BENCH_THREADS:-2}"
OUT=build/bench
mkdir -p "$DIR" "$OUT"
: > "$OUT/results.jsonl"
log() { echo "[bench] $*" >&2; }
emit() { echo "$1" | tee -a "$OUT/results.jsonl"; }

cc -O3 -march=native bench/mkmodel.c -o build/mkmodel -lcjson -lm -lpthread
cc -O3 -march=native bench/tokbench.c -o build/tokbench -lcjson -lm -lpthread
cc -O3 -march=native -pthread bench/membw.c -o build/membw

# name: ours (mkmodel args) and the peer's GGUF file
MODELS=(
  "smollm2-135m-f32|llama 576 30 9 3 1536 49152 1 F32"
  "smollm2-135m-bf16|llama 576 30 9 3 1536 49152 1 BF16"
  "qwen2.5-0.5b-f32|qwen2 896 24 14 2 4864 151936 1 F32"
  "qwen2.5-0.5b-bf16|qwen2 896 24 14 2 4864 151936 1 BF16"
)
for m in "${MODELS[@]}"; do
  name=${m%%|*}
  [ -f "$DIR/$name/model.safetensors" ] || { log "writing $DIR/$name"; ./build/mkmodel "$DIR/$name" ${m#*|}; }
done

ONLY="${LF_BENCH_ONLY:-}"
PEER=""
if [ "${LF_BENCH_PEER:-1}" != 0 ] && [ "$ONLY" != train ]; then
  PEER=$(bash bench/peer_llamacpp.sh) || { log "llama.cpp peer unavailable: LargeForge only"; PEER=""; }
  PEER_MODELS="${LF_PEER_DIR:-$HOME/.cache/largeforge-peer}/models"
fi

for line in $(./build/membw | tr -d ' '); do emit "$line"; done
if [ "$ONLY" != train ]; then

# tokenizer speed on ~4 MB of the conformance corpus, one thread
python3 - "$OUT/tok.txt" <<'PY'
import json, sys
text = "\n".join(json.loads(l) for l in open("tests/ref/tok_corpus.jsonl", encoding="utf-8"))
data = (text + "\n").encode()
open(sys.argv[1], "wb").write((data * (4_000_000 // len(data) + 1))[:4_000_000].decode("utf-8", "ignore").encode())
PY
for tk in qwen3 llama3 llama2 mistral gpt2; do
  emit "$(./build/tokbench ../shared/tokenizers/$tk "$OUT/tok.txt" 5)"
done

# quantized: ours quantized in memory from the f32 dir, the peer's made by llama-quantize
QUANTIZED=(smollm2-135m-q8_0 smollm2-135m-q4_0 qwen2.5-0.5b-q8_0 qwen2.5-0.5b-q4_0)
for r in $(seq 1 "$ROUNDS"); do
  for name in "${MODELS[@]%%|*}" "${QUANTIZED[@]}"; do
    dir=$name q=()
    case $name in *-q8_0|*-q4_0) dir=${name%-*}-f32 q=(--quantize "${name##*-}") ;; esac
    [ -n "$PEER" ] && [ ! -f "$PEER_MODELS/$name.gguf" ] && { log "no $PEER_MODELS/$name.gguf: skipping $name"; continue; }
    log "round $r: $name"
    ./build/lf-evaluate benchmark --model "$DIR/$dir" "${q[@]}" -p 128 -n 64 -t "$T" -r 5 -o jsonl |
      while read -r l; do emit "{\"tool\":\"largeforge\",\"model\":\"$name\",\"round\":$r,\"result\":$l}"; done
    if [ -n "$PEER" ]; then
      "$PEER" -m "$PEER_MODELS/$name.gguf" -p 128 -n 64 -t "$T" -r 5 -o jsonl 2>/dev/null |
        while read -r l; do emit "{\"tool\":\"llama.cpp\",\"model\":\"$name\",\"round\":$r,\"result\":$l}"; done
    fi
  done
done

fi

# training speed: full fine-tuning, LoRA (r=16, all seven projections) and QLoRA of the
# SmolLM2-135M shape, B=4 x T=256, beside PyTorch's CPU training of the same config
# (bench/train_torch.py, full and LoRA; torch comes with `make parity`)
cc -O3 -march=native bench/trainbench.c -o build/trainbench -lcjson -lm -lpthread
TRAIN_MODEL="$DIR/smollm2-135m-f32"
if python3 -c 'import torch, transformers, peft' 2>/dev/null; then HAVE_TORCH=1; else HAVE_TORCH=0; fi
for r in $(seq 1 "${LF_BENCH_TRAIN_ROUNDS:-1}"); do
  log "training round $r"
  for mode in full lora qlora; do emit "$(./build/trainbench "$TRAIN_MODEL" 4 256 "$T" 3 1 $mode)"; done
  if [ "$HAVE_TORCH" = 1 ]; then
    emit "$(python3 bench/train_torch.py --model "$TRAIN_MODEL" --batch 4 --seq 256 --threads "$T" --steps 3 --warmup 1 --mode full)"
    emit "$(python3 bench/train_torch.py --model "$TRAIN_MODEL" --batch 4 --seq 256 --threads "$T" --steps 3 --warmup 1 --mode lora)"
  else
    emit '{"name":"skipped","what":"pytorch training","why":"torch, transformers or peft not installed (make parity installs them)"}'
  fi
done

python3 bench/summarize.py "$OUT/results.jsonl"

# serving: lf-serve beside llama-server at 1, 4 and 16 streams, and its per-request overhead
[ -n "$ONLY" ] || bash bench/serve_bench.sh
