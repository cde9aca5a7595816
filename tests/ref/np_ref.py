#!/usr/bin/env python3
"""Independent NumPy (float64) forward pass for Llama / Qwen2 / Mistral checkpoints.

This is an *executable spec* of the conventions LargeForge's C forward pass must
follow. It deliberately does not import torch or transformers: it reads
config.json and the safetensors files directly (single file or sharded with
model.safetensors.index.json), so agreement with the HuggingFace logits stored
in ref.safetensors proves that the conventions written down here are the ones
transformers uses.

Usage:
    python3 tests/ref/np_ref.py tests/fixtures/models/llama_f32 [...more dirs]
prints max|np - ref logits| per model (exit 1 if any exceeds 1e-4).
"""
import json
import math
import os
import sys

import numpy as np
from safetensors.numpy import load_file


# ----------------------------------------------------------------------------
# checkpoint / config loading
# ----------------------------------------------------------------------------

def _bf16_to_f32(raw_u16):
    return (raw_u16.astype(np.uint32) << 16).view(np.float32)


def load_weights(model_dir):
    """Return {name: float64 ndarray}. Handles sharded checkpoints and BF16."""
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    out = {}
    for fn in files:
        path = os.path.join(model_dir, fn)
        # safetensors.numpy cannot represent bf16; parse the header ourselves.
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(n))
            data = f.read()
        for name, info in header.items():
            if name == "__metadata__":
                continue
            a, b = info["data_offsets"]
            buf = data[a:b]
            dt = info["dtype"]
            if dt == "F32":
                arr = np.frombuffer(buf, dtype="<f4")
            elif dt == "F16":
                arr = np.frombuffer(buf, dtype="<f2").astype(np.float32)
            elif dt == "BF16":
                arr = _bf16_to_f32(np.frombuffer(buf, dtype="<u2"))
            else:
                raise ValueError(f"unsupported dtype {dt} for {name}")
            out[name] = arr.reshape(info["shape"]).astype(np.float64)
    return out


def parse_config(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        c = json.load(f)
    hidden = c["hidden_size"]
    n_heads = c["num_attention_heads"]
    n_kv = c.get("num_key_value_heads") or n_heads
    head_dim = c.get("head_dim") or hidden // n_heads
    # RoPE: transformers >= 5 writes "rope_parameters" (theta inside it);
    # older configs (what most hub checkpoints have) write top-level
    # "rope_theta" + "rope_scaling" (null or dict with "rope_type" or legacy "type").
    if c.get("rope_parameters"):
        rp = dict(c["rope_parameters"])
        theta = float(rp.get("rope_theta", 10000.0))
    else:
        rp = dict(c.get("rope_scaling") or {})
        theta = float(c.get("rope_theta", 10000.0))
    rope_type = rp.get("rope_type", rp.get("type", "default"))
    # Sliding window: Mistral applies config.sliding_window (if not null) to
    # every layer. Qwen2 only if use_sliding_window is true, and then only to
    # layers >= max_window_layers (or per layer_types).
    mt = c.get("model_type")
    L = c["num_hidden_layers"]
    windows = [None] * L
    sw = c.get("sliding_window")
    if mt == "mistral":
        windows = [sw] * L
    elif mt == "qwen2":
        if c.get("use_sliding_window", False) and sw is not None:
            lt = c.get("layer_types")
            if lt:
                windows = [sw if t == "sliding_attention" else None for t in lt]
            else:
                mwl = c.get("max_window_layers", L)
                windows = [sw if i >= mwl else None for i in range(L)]
    return dict(
        model_type=mt, hidden=hidden, n_heads=n_heads, n_kv=n_kv, head_dim=head_dim,
        n_layers=L, eps=float(c["rms_norm_eps"]), theta=theta, rope_type=rope_type,
        rope=rp, windows=windows, tie=bool(c.get("tie_word_embeddings", False)),
        vocab=c["vocab_size"],
    )


# ----------------------------------------------------------------------------
# the conventions
# ----------------------------------------------------------------------------

def rope_inv_freq(cfg):
    """inv_freq[i], i = 0 .. head_dim/2 - 1 (transformers computes this in f32)."""
    d = cfg["head_dim"]
    i = np.arange(0, d, 2, dtype=np.float64)
    inv = 1.0 / (cfg["theta"] ** (i / d))
    rt, rp = cfg["rope_type"], cfg["rope"]
    if rt == "default":
        return inv
    if rt == "linear":
        return inv / rp["factor"]
    if rt == "llama3":
        factor = rp["factor"]
        lo, hi = rp["low_freq_factor"], rp["high_freq_factor"]
        old = rp["original_max_position_embeddings"]
        low_freq_wavelen = old / lo
        high_freq_wavelen = old / hi
        wavelen = 2 * math.pi / inv
        out = np.where(wavelen > low_freq_wavelen, inv / factor, inv)
        smooth = (old / wavelen - lo) / (hi - lo)
        smoothed = (1 - smooth) * out / factor + smooth * out
        medium = ~(wavelen < high_freq_wavelen) & ~(wavelen > low_freq_wavelen)
        return np.where(medium, smoothed, out)
    raise ValueError(f"rope_type {rt} not implemented in np_ref")


def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def apply_rope(x, pos, inv_freq):
    """x: [T, H, D]. HF 'rotate_half' (NeoX) layout: pairs are (j, j + D/2)."""
    ang = pos[:, None] * inv_freq[None, :]          # [T, D/2]
    cos = np.concatenate([np.cos(ang)] * 2, -1)[:, None, :]
    sin = np.concatenate([np.sin(ang)] * 2, -1)[:, None, :]
    h = x.shape[-1] // 2
    rot = np.concatenate([-x[..., h:], x[..., :h]], -1)
    return x * cos + rot * sin


def silu(x):
    return x / (1.0 + np.exp(-x))


def forward(model_dir, tokens, window_override="config", W=None, cfg=None):
    """tokens: int array [T]. Returns float64 logits [T, V].

    window_override: "config" uses the checkpoint's sliding window rule;
    an int / None forces that window on every layer (for boundary checks)."""
    cfg = cfg or parse_config(model_dir)
    W = W or load_weights(model_dir)
    T = len(tokens)
    H, KV, D = cfg["n_heads"], cfg["n_kv"], cfg["head_dim"]
    inv_freq = rope_inv_freq(cfg)
    pos = np.arange(T, dtype=np.float64)
    x = W["model.embed_tokens.weight"][tokens]        # [T, hidden]
    for l in range(cfg["n_layers"]):
        p = f"model.layers.{l}."
        h = rms_norm(x, W[p + "input_layernorm.weight"], cfg["eps"])

        def lin(name, inp):
            y = inp @ W[p + name + ".weight"].T          # nn.Linear: y = x W^T + b
            b = W.get(p + name + ".bias")
            return y if b is None else y + b

        q = apply_rope(lin("self_attn.q_proj", h).reshape(T, H, D), pos, inv_freq)
        k = apply_rope(lin("self_attn.k_proj", h).reshape(T, KV, D), pos, inv_freq)
        v = lin("self_attn.v_proj", h).reshape(T, KV, D)
        window = cfg["windows"][l] if window_override == "config" else window_override
        qi = np.arange(T)[:, None]
        ki = np.arange(T)[None, :]
        allowed = ki <= qi                                 # causal
        if window is not None:
            allowed &= (qi - ki) < window                  # kv_idx > q_idx - window
        att = np.empty((T, H, D))
        group = H // KV
        for hh in range(H):
            kvh = hh // group                              # repeat_kv: q head h -> kv head h // (H/KV)
            s = (q[:, hh, :] @ k[:, kvh, :].T) / math.sqrt(D)
            s = np.where(allowed, s, -np.inf)
            s = s - s.max(-1, keepdims=True)
            e = np.exp(s)
            att[:, hh, :] = (e / e.sum(-1, keepdims=True)) @ v[:, kvh, :]
        o = att.reshape(T, H * D) @ W[p + "self_attn.o_proj.weight"].T
        if p + "self_attn.o_proj.bias" in W:
            o = o + W[p + "self_attn.o_proj.bias"]
        x = x + o
        h = rms_norm(x, W[p + "post_attention_layernorm.weight"], cfg["eps"])
        g = h @ W[p + "mlp.gate_proj.weight"].T
        u = h @ W[p + "mlp.up_proj.weight"].T
        x = x + (silu(g) * u) @ W[p + "mlp.down_proj.weight"].T
    x = rms_norm(x, W["model.norm.weight"], cfg["eps"])
    head = W.get("lm_head.weight")
    if head is None:                                       # tied embeddings
        head = W["model.embed_tokens.weight"]
    return x @ head.T


def check_dir(model_dir):
    ref = load_file(os.path.join(model_dir, "ref.safetensors"))
    cfg = parse_config(model_dir)
    W = load_weights(model_dir)
    toks, logits = ref["tokens"], ref["logits"]
    worst = 0.0
    for b in range(toks.shape[0]):
        out = forward(model_dir, toks[b], cfg=cfg, W=W)
        worst = max(worst, float(np.abs(out - logits[b]).max()))
    return worst


if __name__ == "__main__":
    bad = 0
    for d in sys.argv[1:]:
        err = check_dir(d)
        ok = err <= 1e-4
        bad += not ok
        print(f"{os.path.basename(d.rstrip('/')):20s} max|numpy_f64 - hf_f32| = {err:.3e}  {'OK' if ok else 'FAIL'}")
    sys.exit(1 if bad else 0)
