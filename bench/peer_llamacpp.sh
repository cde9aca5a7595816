#!/usr/bin/env bash
# bench/peer_llamacpp.sh - set up the llama.cpp peer used by `make bench`.
#
# Idempotent: every step is skipped when its output already exists.
#   1. pip-download the llama-cpp-python sdist (pinned) into the peer dir
#      (outside the repo), and extract it; llama.cpp lives in vendor/llama.cpp.
#   2. build llama.cpp's `llama-bench`, `llama-quantize` and `llama-server` (CPU, Release,
#      GGML_NATIVE=ON, no curl / openssl / web UI, no CUDA, -j2). llama-server lands next to
#      llama-bench ("$(dirname "$PEER")/llama-server" for bench/serve_bench.sh); a failure to
#      build it is logged, not fatal, so `make bench` keeps llama-bench.
#   3. create a Python venv with the sdist's own gguf-py (+ numpy) and write
#      random-weight GGUF models with bench/make_gguf.py; llama-quantize makes their Q8_0 and
#      Q4_0 versions.
#   4. print the absolute path of llama-bench on stdout (all logs go to stderr).
#
# Environment:
#   LF_PEER_DIR      peer dir            (default: $HOME/.cache/largeforge-peer)
#   LF_LLAMACPP_VER  llama-cpp-python version (default: pinned below)
#   LF_PEER_JOBS     build parallelism   (default: 2)
#   LF_PEER_MODELS   "0" to skip model generation
#   PYTHON           python3 to use      (default: python3)
set -euo pipefail

LLAMACPP_PY_VER="${LF_LLAMACPP_VER:-0.3.36}"
PEER_DIR="${LF_PEER_DIR:-$HOME/.cache/largeforge-peer}"
JOBS="${LF_PEER_JOBS:-2}"
PYTHON="${PYTHON:-python3}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"

log() { echo "[peer] $*" >&2; }

PEER_DIR="$(realpath -m "$PEER_DIR")"
case "$PEER_DIR/" in
    "$REPO"/*) log "LF_PEER_DIR ($PEER_DIR) must be outside the repo ($REPO)"; exit 1 ;;
esac
mkdir -p "$PEER_DIR"

SDIST="$PEER_DIR/llama_cpp_python-$LLAMACPP_PY_VER.tar.gz"
SRC="$PEER_DIR/llama_cpp_python-$LLAMACPP_PY_VER"
LLAMA="$SRC/vendor/llama.cpp"
BUILD="$PEER_DIR/build-$LLAMACPP_PY_VER"
BENCH_BIN="$BUILD/bin/llama-bench"
VENV="$PEER_DIR/venv"
MODELS="$PEER_DIR/models"

# --- 1. fetch + extract ------------------------------------------------------
if [ ! -f "$SDIST" ]; then
    log "downloading llama-cpp-python==$LLAMACPP_PY_VER sdist"
    ok=0
    for try in 1 2 3; do
        # pip builds the sdist's metadata (needs build deps from source under
        # :all:); that step has been seen to fail transiently, so retry.
        if "$PYTHON" -m pip download --no-deps --no-binary :all: \
                "llama-cpp-python==$LLAMACPP_PY_VER" -d "$PEER_DIR" >&2; then
            ok=1; break
        fi
        log "pip download failed (try $try)"
        sleep 2
    done
    [ "$ok" = 1 ] && [ -f "$SDIST" ] || { log "could not download $SDIST"; exit 1; }
fi
if [ ! -f "$LLAMA/CMakeLists.txt" ]; then
    log "extracting $SDIST"
    rm -rf "$SRC.tmp" && mkdir -p "$SRC.tmp"
    tar -xzf "$SDIST" -C "$SRC.tmp"
    rm -rf "$SRC" && mv "$SRC.tmp/llama_cpp_python-$LLAMACPP_PY_VER" "$SRC" && rm -rf "$SRC.tmp"
fi

# --- 2. build llama-bench, llama-quantize, llama-server -----------------------
# The server is in (LLAMA_BUILD_SERVER) but its web UI has no assets: no npm, no download.
configure() {
    command -v cmake >/dev/null || { log "cmake not found (apt-get install cmake)"; exit 1; }
    GEN=()
    command -v ninja >/dev/null && GEN=(-G Ninja)
    log "configuring llama.cpp in $BUILD"
    cmake -S "$LLAMA" -B "$BUILD" "${GEN[@]}" \
        -DCMAKE_BUILD_TYPE=Release \
        -DGGML_NATIVE=ON \
        -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF \
        -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
        -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
        -DLLAMA_BUILD_APP=OFF \
        -DBUILD_SHARED_LIBS=OFF >&2
}
if [ ! -x "$BENCH_BIN" ]; then
    t0=$(date +%s)
    configure
    log "building llama-bench (-j$JOBS)"
    cmake --build "$BUILD" --config Release --target llama-bench llama-quantize -j"$JOBS" >&2
    t1=$(date +%s)
    log "llama-bench built in $((t1 - t0)) s"
    echo "$((t1 - t0))" > "$BUILD/.build_seconds"
fi

# llama-quantize makes the Q8_0 and Q4_0 peers (a build from before it was asked for: add it)
QUANT_BIN="$BUILD/bin/llama-quantize"
if [ ! -x "$QUANT_BIN" ]; then
    log "building llama-quantize (-j$JOBS)"
    cmake --build "$BUILD" --config Release --target llama-quantize -j"$JOBS" >&2
fi

# llama-server for the serving comparison (bench/serve_bench.sh); a build configured before it
# was asked for has no such target: configure again, which keeps what is built.
SERVER_BIN="$BUILD/bin/llama-server"
if [ ! -x "$SERVER_BIN" ]; then
    log "building llama-server (-j$JOBS)"
    t0=$(date +%s)
    if { grep -q '^LLAMA_BUILD_SERVER:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null || configure; } &&
        cmake --build "$BUILD" --config Release --target llama-server -j"$JOBS" >&2; then
        log "llama-server built in $(($(date +%s) - t0)) s"
    else
        log "llama-server did not build: serving comparison unavailable"
    fi
fi

# --- 3. random-weight GGUF models --------------------------------------------
if [ "${LF_PEER_MODELS:-1}" != 0 ]; then
    if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import gguf, numpy' 2>/dev/null; then
        log "creating venv $VENV (numpy + sdist gguf-py)"
        "$PYTHON" -m venv "$VENV"
        "$VENV/bin/pip" install -q numpy >&2
        # gguf-py pinned to exactly the llama.cpp being benchmarked
        "$VENV/bin/pip" install -q "$LLAMA/gguf-py" >&2
    fi
    mkdir -p "$MODELS"
    # make_gguf.py itself skips files that already exist and are complete
    "$VENV/bin/python" "$HERE/make_gguf.py" --out "$MODELS" >&2
    # Q8_0 and Q4_0 as a llama.cpp user makes them: llama-quantize from the F32 file (its
    # defaults: Q4_0 keeps the tied token_embd/output in Q6_K, Q8_0 makes it Q8_0)
    for base in smollm2-135m qwen2.5-0.5b; do
        for t in Q8_0 Q4_0; do
            lt=$(echo "$t" | tr 'A-Z' 'a-z')
            [ -f "$MODELS/$base-$lt.gguf" ] || "$QUANT_BIN" "$MODELS/$base-f32.gguf" "$MODELS/$base-$lt.gguf.tmp" "$t" 2 >&2 &&
                mv -f "$MODELS/$base-$lt.gguf.tmp" "$MODELS/$base-$lt.gguf" 2>/dev/null || true
        done
    done
fi

echo "$BENCH_BIN"
