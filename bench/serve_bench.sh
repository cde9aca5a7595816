#!/usr/bin/env bash
# bench/serve_bench.sh — the serving part of `make bench` (LF_BENCH_ONLY=serve runs it alone):
# LargeForge's lf-serve beside llama.cpp's llama-server, the same model shape (SmolLM2-135M, F32,
# random weights), machine and thread count, driven by bench/loadgen over loopback at 1, 4 and
# 16 concurrent streams (greedy, ignore_eos, so every request makes max_tokens tokens), plus the
# per-request overhead: 1-token completions of the shipped tiny model through lf-serve against
# the same requests given to the engine in-process (loadgen --engine, no HTTP). Both servers stay up; measurements alternate
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

# start_ours VAR DIR [ARGS]: lf-serve on a free port (its one stdout line says where); VAR gets
# the URL
start_ours() {
  local log="$OUT/lf-serve-$(basename "$2").log" url var=$1 dir=$2
  shift 2
  ./build/lf-serve inference --model "$dir" --port 0 --threads "$T" --max-batch "$SLOTS" "$@" > "$log.out" 2> "$log" &
  PIDS+=($!)
  for _ in $(seq 1 100); do grep -q '^listening on ' "$log.out" && break; sleep 0.1; done
  url=$(sed -n 's/^listening on //p' "$log.out" | head -1)
  [ -n "$url" ] || { log "lf-serve did not start: see $log"; exit 1; }
  log "lf-serve ($(basename "$dir")) at $url"
  printf -v "$var" '%s' "$url"
}
# start_peer VAR GGUF CTX: llama-server with SLOTS slots (continuous batching, its default; the
# context is shared: each slot gets CTX/SLOTS)
start_peer() {
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$PEER_SERVER" -m "$2" --host 127.0.0.1 --port "$port" -t "$T" -np "$SLOTS" -c "$3" \
    > "$OUT/llama-server-$(basename "$2").log" 2>&1 &
  PIDS+=($!)
  log "llama-server ($(basename "$2")) at http://127.0.0.1:$port"
  printf -v "$1" '%s' "http://127.0.0.1:$port"
}

# Throughput on the SmolLM2-135M shape; the per-request overhead on the shipped tiny model, whose
# forward pass is short enough (about a millisecond) for the server's own cost to show. The
# peer serves the same tiny model from a GGUF that LargeForge exports.
OH_DIR=models/kjv-llama-4m
OH=kjv-llama-4m
start_ours OURS_URL "$DIR/$MODEL"
ACCESS="$OUT/access-$OH.jsonl"  # its "ms" minus "engine_ms": what the server adds, request by request
: > "$ACCESS"
start_ours OURS_OH_URL "$OH_DIR" --access-log "$ACCESS"
PEER_URL="" PEER_OH_URL=""
if [ "${LF_BENCH_PEER:-1}" != 0 ]; then
  PEER=$(bash bench/peer_llamacpp.sh) || PEER=""
  PEER_SERVER="${PEER:+$(dirname "$PEER")/llama-server}"  # built next to llama-bench
  GGUF="${LF_PEER_DIR:-$HOME/.cache/largeforge-peer}/models/$MODEL.gguf"
  if [ -x "$PEER_SERVER" ] && [ -f "$GGUF" ]; then
    start_peer PEER_URL "$GGUF" $((SLOTS * (PROMPT + MAXTOK + 128)))
    ./build/largeforge quantize gguf --model "$OH_DIR" --out "$OUT/$OH.gguf" --type f32 > /dev/null &&
      start_peer PEER_OH_URL "$OUT/$OH.gguf" $((SLOTS * 256))
  else
    log "no llama-server or $GGUF: LargeForge only"
  fi
fi

# run TOOL URL NAME DIR ROUND ARGS...: one loadgen measurement as one JSON line (loadgen waits
# for /health); TOOL engine: URL is ignored, DIR's model runs inside loadgen on the same threads
run() {
  local tool=$1 url=$2 name=$3 dir=$4 r=$5 line
  shift 5
  local target=(--url "$url")
  [ "$tool" = engine ] && target=(--engine "$dir" --threads "$T" --max-batch "$SLOTS")
  line=$(./build/loadgen "${target[@]}" --model "$name" --label "$tool" --prompt-tokens "$PROMPT" \
    --duration "$SECS" --ignore-eos "$@") || { log "$tool: loadgen failed"; return 0; }
  emit "{\"tool\":\"$tool\",\"model\":\"$name\",\"round\":$r,\"result\":$line}"
}

# all loaded and warm before the first measurement (a server still loading takes the cores)
for u in "$OURS_URL $MODEL" "$OURS_OH_URL $OH" ${PEER_URL:+"$PEER_URL $MODEL"} ${PEER_OH_URL:+"$PEER_OH_URL $OH"}; do
  ./build/loadgen --url "${u% *}" --model "${u#* }" --overhead --requests-per-stream 1 > /dev/null ||
    { log "${u% *} does not answer: see $OUT/*.log"; exit 1; }
done

for r in $(seq 1 "$ROUNDS"); do
  for n in $STREAMS; do
    log "round $r: $n streams"
    run largeforge "$OURS_URL" "$MODEL" - "$r" --streams "$n" --max-tokens "$MAXTOK"
    [ -z "$PEER_URL" ] || run llama-server "$PEER_URL" "$MODEL" - "$r" --streams "$n" --max-tokens "$MAXTOK"
    run engine - "$MODEL" "$DIR/$MODEL" "$r" --streams "$n" --max-tokens "$MAXTOK"
  done
  log "round $r: overhead"
  run largeforge "$OURS_OH_URL" "$OH" - "$r" --overhead --duration 4 --prompt-tokens 8
  run engine - "$OH" "$OH_DIR" "$r" --overhead --duration 4 --prompt-tokens 8
  [ -z "$PEER_OH_URL" ] || run llama-server "$PEER_OH_URL" "$OH" - "$r" --overhead --duration 4 --prompt-tokens 8
done

python3 - "$OUT/serve.jsonl" "$ACCESS" <<'PY'
import json, statistics, sys
from collections import defaultdict
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
own = sorted(a["ms"] - a["engine_ms"] for a in map(json.loads, open(sys.argv[2]))
             if a.get("completion_tokens") == 1 and "engine_ms" in a)
pct = lambda v, q: round(v[min(len(v) - 1, int(q * (len(v) - 1) + 0.5))], 3)
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
        if own:  # measured inside lf-serve: arrival to answer queued, less the engine's time
            out["server_own_requests"] = len(own)
            for p, q in (("p50", .5), ("p95", .95), ("p99", .99)):
                out[f"server_own_{p}_ms"] = pct(own, q)
    print(json.dumps(out))
levels = sorted({s for _, s in tps})
for _, key in tools:
    if (key, levels[0]) in tps and (key, levels[-1]) in tps and len(levels) > 1:
        print(json.dumps({"name": "summary_serve_scaling", "tool": key, "streams": [levels[0], levels[-1]],
                          "tokens_per_s": [tps[(key, levels[0])], tps[(key, levels[-1])]],
                          "scaling": round(tps[(key, levels[-1])] / tps[(key, levels[0])], 2)}))
PY
