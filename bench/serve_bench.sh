#!/usr/bin/env bash
# bench/serve_bench.sh — the serving part of `make bench` (LF_BENCH_ONLY=serve runs it alone):
# LargeForge's lf-serve beside llama.cpp's llama-server, the same model shape (SmolLM2-135M, F32,
# random weights), machine and thread count, driven by bench/loadgen over loopback at 1, 4 and
# 16 concurrent streams (greedy, ignore_eos, so every request makes max_tokens tokens), plus the
# per-request overhead: 1-token completions through lf-serve against the same requests given to
# the engine in-process (loadgen --engine, no HTTP). Both servers stay up; measurements alternate
# so that the noise of a shared machine falls on all of them. JSON lines on stdout (progress on
# stderr), then summaries: medians over the rounds, the LargeForge/llama-server ratio of tokens/s,
# the 16-stream/1-stream scaling of each, and the server's overhead (lf-serve minus engine).
#
#   LF_BENCH_DIR          random-weight model dirs        (default ~/.cache/largeforge-bench)
#   LF_BENCH_ROUNDS       rounds                          (default 3)
#   LF_BENCH_THREADS      threads per server              (default 2)
#   LF_SERVE_STREAMS      concurrency levels              (default "1 4 16")
#   LF_SERVE_SECONDS      seconds of requests per measurement (default 8; the last ones finish after)
#   LF_SERVE_MAX_TOKENS   tokens generated per request    (default 64)
#   LF_SERVE_PROMPT       prompt tokens per request       (default 128)
#   LF_BENCH_PEER         0 to skip llama-server          (default 1; see bench/peer_llamacpp.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${LF_BENCH_DIR:-$HOME/.cache/largeforge-bench}"
ROUNDS="${LF_BENCH_ROUNDS:-3}"
T="${LF_BENCH_THREADS:-2}"
STREAMS="${LF_SERVE_STREAMS:-1 4 16}"
SECS="${LF_SERVE_SECONDS:-8}"
MAXTOK="${LF_SERVE_MAX_TOKENS:-64}"
PROMPT="${LF_SERVE_PROMPT:-128}"
MODEL=smollm2-135m-f32
SLOTS=16
OUT=build/bench
mkdir -p "$DIR" "$OUT"
: > "$OUT/serve.jsonl"
log() { echo "[serve-bench] $*" >&2; }
emit() { echo "$1" | tee -a "$OUT/serve.jsonl"; }

[ -x build/lf-serve ] || { log "build/lf-serve is missing: run make first"; exit 1; }
cc -O3 -march=native bench/loadgen.c -o build/loadgen -lcjson -lm -lpthread
cc -O3 -march=native bench/mkmodel.c -o build/mkmodel -lcjson -lm -lpthread
[ -f "$DIR/$MODEL/model.safetensors" ] ||
  { log "writing $DIR/$MODEL"; ./build/mkmodel "$DIR/$MODEL" llama 576 30 9 3 1536 49152 1 F32; }
# a server needs a tokenizer: the synthetic one bench/make_gguf.py puts in the peer's GGUF (id 0
# <|endoftext|>, ids 1-256 GPT-2's byte tokens, 257 the one merge "Ġ t", fillers up to the vocab),
# so that both servers see the same prompt tokens
[ -f "$DIR/$MODEL/tokenizer.json" ] || python3 - "$DIR/$MODEL/tokenizer.json" 49152 <<'PY'
import json, sys
bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
cs, n = bs[:], 0
for b in range(256):
    if b not in bs:
        bs.append(b), cs.append(256 + n)
        n += 1
byte_tok = dict(zip(bs, cs))
toks = ["<|endoftext|>"] + [chr(byte_tok[b]) for b in range(256)] + ["\u0120t"]
toks += [f"<tok_{i}>" for i in range(len(toks), int(sys.argv[2]))]
tj = {"version": "1.0", "truncation": None, "padding": None,
      "added_tokens": [{"id": 0, "content": "<|endoftext|>", "single_word": False, "lstrip": False, "rstrip": False,
                        "normalized": False, "special": True}],
      "normalizer": None, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                                            "use_regex": True},
      "post_processor": None, "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                                          "use_regex": True},
      "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                "vocab": {t: i for i, t in enumerate(toks)}, "merges": ["\u0120 t"]}}
json.dump(tj, open(sys.argv[1], "w"), ensure_ascii=False)
PY

PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

# ours: --port 0, and the one stdout line says where it listens
ours_log="$OUT/lf-serve.log"
./build/lf-serve inference --model "$DIR/$MODEL" --port 0 --threads "$T" --max-batch "$SLOTS" \
  > "$ours_log.out" 2> "$ours_log" &
PIDS+=($!)
for _ in $(seq 1 100); do grep -q '^listening on ' "$ours_log.out" && break; sleep 0.1; done
OURS_URL=$(sed -n 's/^listening on //p' "$ours_log.out" | head -1)
[ -n "$OURS_URL" ] || { log "lf-serve did not start: see $ours_log"; exit 1; }
log "lf-serve at $OURS_URL"

PEER_URL=""
if [ "${LF_BENCH_PEER:-1}" != 0 ]; then
  PEER=$(bash bench/peer_llamacpp.sh) || PEER=""
  PEER_SERVER="${PEER:+$(dirname "$PEER")/llama-server}"  # built next to llama-bench
  GGUF="${LF_PEER_DIR:-$HOME/.cache/largeforge-peer}/models/$MODEL.gguf"
  if [ -x "$PEER_SERVER" ] && [ -f "$GGUF" ]; then
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    # SLOTS slots with continuous batching (its default); -c is shared: each slot gets c/SLOTS
    "$PEER_SERVER" -m "$GGUF" --host 127.0.0.1 --port "$port" -t "$T" -np "$SLOTS" \
      -c $((SLOTS * (PROMPT + MAXTOK + 128))) > "$OUT/llama-server.log" 2>&1 &
    PIDS+=($!)
    PEER_URL="http://127.0.0.1:$port"
    log "llama-server at $PEER_URL"
  else
    log "no llama-server or $GGUF: LargeForge only"
  fi
fi

# run TOOL URL ROUND ARGS...: one loadgen measurement as one JSON line (loadgen waits for /health)
# (TOOL engine: URL is ignored, the engine runs inside loadgen on the same threads)
run() {
  local tool=$1 url=$2 r=$3 line
  shift 3
  local target=(--url "$url")
  [ "$tool" = engine ] && target=(--engine "$DIR/$MODEL" --threads "$T" --max-batch "$SLOTS")
  line=$(./build/loadgen "${target[@]}" --model "$MODEL" --label "$tool" --prompt-tokens "$PROMPT" \
    --duration "$SECS" --ignore-eos "$@") || { log "$tool: loadgen failed"; return 0; }
  emit "{\"tool\":\"$tool\",\"model\":\"$MODEL\",\"round\":$r,\"result\":$line}"
}

# both loaded and warm before the first measurement (a server still loading takes the cores)
for url in "$OURS_URL" $PEER_URL; do
  ./build/loadgen --url "$url" --model "$MODEL" --overhead --requests-per-stream 1 > /dev/null ||
    { log "$url does not answer: see $OUT/*.log"; exit 1; }
done

for r in $(seq 1 "$ROUNDS"); do
  for n in $STREAMS; do
    log "round $r: $n streams"
    run largeforge "$OURS_URL" "$r" --streams "$n" --max-tokens "$MAXTOK"
    [ -z "$PEER_URL" ] || run llama-server "$PEER_URL" "$r" --streams "$n" --max-tokens "$MAXTOK"
    run engine - "$r" --streams "$n" --max-tokens "$MAXTOK"
  done
  log "round $r: overhead"
  run largeforge "$OURS_URL" "$r" --overhead --duration 4 --prompt-tokens 8
  run engine - "$r" --overhead --duration 4 --prompt-tokens 8
  [ -z "$PEER_URL" ] || run llama-server "$PEER_URL" "$r" --overhead --duration 4 --prompt-tokens 8
done

python3 - "$OUT/serve.jsonl" <<'PY'
import json, statistics, sys
from collections import defaultdict
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = defaultdict(list)
for r in rows:
    res = r["result"]
    by[(res["name"], res["streams"], r["tool"])].append(res)
med = lambda rs, f: round(statistics.median(f(x) for x in rs), 3) if rs else None
tools = (("largeforge", "largeforge"), ("llama-server", "llamacpp"), ("engine", "engine"))
tps = {}
for name, streams in sorted({(k[0], k[1]) for k in by}):
    out = {"name": "summary_" + name, "streams": streams}
    for tool, key in tools:
        rs = by.get((name, streams, tool))
        if not rs:
            continue
        out["rounds"] = len(rs)
        out[key + "_errors"] = sum(x["errors"] for x in rs)
        if name == "serve":
            out[key + "_tokens_per_s"] = tps[(key, streams)] = med(rs, lambda x: x["tokens_per_s"])
            for m in ("ttft_ms", "itl_ms"):
                for p in ("p50", "p95", "p99"):
                    out[f"{key}_{m[:-3]}_{p}_ms"] = med(rs, lambda x: (x[m] or {}).get(p, float("nan")))
        else:
            for p in ("p50", "p95", "p99"):
                out[f"{key}_latency_{p}_ms"] = med(rs, lambda x: x["latency_ms"][p])
    if name == "serve" and out.get("llamacpp_tokens_per_s"):
        out["ratio"] = round(out["largeforge_tokens_per_s"] / out["llamacpp_tokens_per_s"], 3)
    if name == "serve_overhead":
        if out.get("llamacpp_latency_p50_ms"):
            out["latency_ratio"] = round(out["largeforge_latency_p50_ms"] / out["llamacpp_latency_p50_ms"], 3)
        if out.get("engine_latency_p50_ms") is not None and out.get("largeforge_latency_p50_ms") is not None:
            # what lf-serve adds around the engine: HTTP, JSON, tokenizing, the answer, loopback
            for p in ("p50", "p95", "p99"):
                out[f"server_overhead_{p}_ms"] = round(out[f"largeforge_latency_{p}_ms"] - out[f"engine_latency_{p}_ms"], 3)
    print(json.dumps(out))
levels = sorted({s for _, s in tps})
for _, key in tools:
    if (key, levels[0]) in tps and (key, levels[-1]) in tps and len(levels) > 1:
        print(json.dumps({"name": "summary_serve_scaling", "tool": key, "streams": [levels[0], levels[-1]],
                          "tokens_per_s": [tps[(key, levels[0])], tps[(key, levels[-1])]],
                          "scaling": round(tps[(key, levels[-1])] / tps[(key, levels[0])], 2)}))
PY
