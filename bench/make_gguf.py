#!/usr/bin/env python3
"""Write random-weight GGUF models shaped like real small LLMs, for benchmarks.

Uses the `gguf` Python package (the sdist's vendor/llama.cpp/gguf-py, or PyPI's
`gguf`) and numpy.  The files load in llama.cpp (llama-bench) and carry the
metadata llama.cpp needs; the tokenizer is synthetic ("gpt2" BPE: the 256
GPT-2 byte tokens, one merge, filler tokens up to the real vocab size).

Shapes:
  smollm2-135m  arch llama, hidden 576, 30 layers, 9 heads / 3 KV heads,
                FF 1536, vocab 49152, tied embeddings, rope_theta 1e5,
                rms eps 1e-5, ctx 8192
  qwen2.5-0.5b  arch qwen2, hidden 896, 24 layers, 14 heads / 2 KV heads,
                FF 4864, vocab 151936, tied embeddings, q/k/v bias,
                rope_theta 1e6, rms eps 1e-6, ctx 32768

Each is written as F32 and BF16 (2-D weight matrices in that type; norms and
biases stay F32, as llama.cpp's convert_hf_to_gguf.py does).  Weights are
normal(0, 1) * 0.02 in float32, then cast (BF16: round-to-nearest-even, as
ggml_compute_fp32_to_bf16).  Norm weights are 1.0, biases random * 0.02.

Note: convert_hf_to_gguf.py permutes attn_q / attn_k rows for arch llama
(HF rotate_half RoPE layout -> GGML's interleaved layout).  With random
weights this changes no shape, size or speed, so it is not done here.

Usage: make_gguf.py --out DIR [--models smollm2-135m,qwen2.5-0.5b]
                    [--dtypes f32,bf16] [--seed 0] [--force]
Files are named DIR/<model>-<dtype>.gguf; an existing complete file is kept.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import gguf

MODELS = {
    "smollm2-135m": dict(
        arch="llama", name="SmolLM2-135M-random", hidden=576, layers=30,
        heads=9, kv_heads=3, ff=4 * 384, vocab=49152, ctx=8192,
        rope_theta=100000.0, eps=1e-5, qkv_bias=False, pre="smollm",
    ),
    "qwen2.5-0.5b": dict(
        arch="qwen2", name="Qwen2.5-0.5B-random", hidden=896, layers=24,
        heads=14, kv_heads=2, ff=4864, vocab=151936, ctx=32768,
        rope_theta=1000000.0, eps=1e-6, qkv_bias=True, pre="qwen2",
    ),
}

DTYPES = {
    "f32": (gguf.GGMLQuantizationType.F32, gguf.LlamaFileType.ALL_F32),
    "bf16": (gguf.GGMLQuantizationType.BF16, gguf.LlamaFileType.MOSTLY_BF16),
}


def bytes_to_unicode() -> list[str]:
    """GPT-2's byte -> printable unicode map (256 distinct 1-char strings)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    m = dict(zip(bs, cs))
    return [chr(m[b]) for b in range(256)]


def synthetic_vocab(n_vocab: int):
    """id 0 = <|endoftext|> (control, bos = eos), ids 1..256 = byte tokens,
    257 = 'Ġt' (the one merge 'Ġ t'), rest = distinct filler strings."""
    toks = ["<|endoftext|>"] + bytes_to_unicode() + ["\u0120t"]
    toks += [f"<tok_{i}>" for i in range(len(toks), n_vocab)]
    assert len(toks) == n_vocab and len(set(toks)) == n_vocab
    types = [int(gguf.TokenType.NORMAL)] * n_vocab
    types[0] = int(gguf.TokenType.CONTROL)
    merges = ["\u0120 t"]
    return toks, types, merges


def tensor_plan(cfg) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, numpy shape = (rows, cols) i.e. GGML ne reversed, kind)."""
    h, ff, v = cfg["hidden"], cfg["ff"], cfg["vocab"]
    hd = h // cfg["heads"]
    q_dim, kv_dim = cfg["heads"] * hd, cfg["kv_heads"] * hd
    plan = [("token_embd.weight", (v, h), "w")]
    for i in range(cfg["layers"]):
        p = f"blk.{i}."
        plan += [
            (p + "attn_norm.weight", (h,), "norm"),
            (p + "attn_q.weight", (q_dim, h), "w"),
            (p + "attn_k.weight", (kv_dim, h), "w"),
            (p + "attn_v.weight", (kv_dim, h), "w"),
        ]
        if cfg["qkv_bias"]:
            plan += [
                (p + "attn_q.bias", (q_dim,), "bias"),
                (p + "attn_k.bias", (kv_dim,), "bias"),
                (p + "attn_v.bias", (kv_dim,), "bias"),
            ]
        plan += [
            (p + "attn_output.weight", (h, q_dim), "w"),
            (p + "ffn_norm.weight", (h,), "norm"),
            (p + "ffn_gate.weight", (ff, h), "w"),
            (p + "ffn_up.weight", (ff, h), "w"),
            (p + "ffn_down.weight", (h, ff), "w"),
        ]
    plan.append(("output_norm.weight", (h,), "norm"))
    # tied embeddings: no output.weight; llama.cpp falls back to token_embd
    return plan


def to_bf16(x: np.ndarray) -> np.ndarray:
    """float32 -> bf16 bits (uint16), round to nearest even, NaN kept quiet."""
    n = x.view(np.uint32)
    n = np.where((n & 0x7FFFFFFF) > 0x7F800000, (n & np.uint32(0xFFFF0000)) | np.uint32(64 << 16), n)
    r = (n.astype(np.uint64) + (0x7FFF + ((n >> 16) & 1))) >> 16
    return r.astype(np.uint16)


def write_model(path: str, key: str, dtype: str, seed: int) -> int:
    cfg = MODELS[key]
    arch = cfg["arch"]
    wtype, ftype = DTYPES[dtype]
    tmp = path + ".tmp"
    w = gguf.GGUFWriter(tmp, arch)

    hd = cfg["hidden"] // cfg["heads"]
    w.add_name(cfg["name"])
    w.add_context_length(cfg["ctx"])
    w.add_embedding_length(cfg["hidden"])
    w.add_block_count(cfg["layers"])
    w.add_feed_forward_length(cfg["ff"])
    w.add_head_count(cfg["heads"])
    w.add_head_count_kv(cfg["kv_heads"])
    w.add_rope_dimension_count(hd)
    w.add_rope_freq_base(cfg["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["eps"])
    w.add_vocab_size(cfg["vocab"])
    w.add_file_type(int(ftype))

    toks, types, merges = synthetic_vocab(cfg["vocab"])
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(cfg["pre"])
    w.add_token_list(toks)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(0)
    w.add_eos_token_id(0)
    w.add_add_bos_token(False)

    # Stream: declare all tensor infos, write header, then one tensor at a time.
    plan = tensor_plan(cfg)
    for name, shape, kind in plan:
        n = int(np.prod(shape))
        if kind == "w" and wtype == gguf.GGMLQuantizationType.BF16:
            w.add_tensor_info(name, shape, np.dtype(np.uint16), n * 2, raw_dtype=wtype)
        else:
            w.add_tensor_info(name, shape, np.dtype(np.float32), n * 4)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()

    rng = np.random.default_rng(seed)
    n_params = 0
    for name, shape, kind in plan:
        n_params += int(np.prod(shape))
        if kind == "norm":
            t = np.ones(shape, dtype=np.float32)
        else:
            t = rng.standard_normal(shape, dtype=np.float32)
            t *= np.float32(0.02)
            if kind == "w" and wtype == gguf.GGMLQuantizationType.BF16:
                t = to_bf16(t)
        w.write_tensor_data(t)
    w.close()
    os.replace(tmp, path)
    return n_params


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--dtypes", default=",".join(DTYPES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--force", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for key in a.models.split(","):
        if key not in MODELS:
            ap.error(f"unknown model {key!r}; have {', '.join(MODELS)}")
        for dt in a.dtypes.split(","):
            if dt not in DTYPES:
                ap.error(f"unknown dtype {dt!r}; have {', '.join(DTYPES)}")
            path = os.path.join(a.out, f"{key}-{dt}.gguf")
            if os.path.exists(path) and not a.force:
                print(f"[make_gguf] exists: {path}", file=sys.stderr)
                continue
            t0 = time.time()
            n = write_model(path, key, dt, a.seed)
            print(f"[make_gguf] wrote {path}: {n / 1e6:.1f} M params, "
                  f"{os.path.getsize(path) / 2**20:.0f} MiB, {time.time() - t0:.1f} s",
                  file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
