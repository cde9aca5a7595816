#!/usr/bin/env python3
"""Build tiny random HF checkpoints + reference logits for LargeForge tests.

    python3 tests/ref/make_models.py --out tests/fixtures/models

For every model directory this writes:
  config.json, generation_config.json (bos 1, eos 2), model.safetensors
  (or model-0000x-of-0000N.safetensors + model.safetensors.index.json),
  ref.safetensors with
    tokens      I32 [3, 20]      random ids in [0, vocab), seed differs per model
    logits      F32 [3, 20, V]   model(tokens).logits, eager attention, float32
                                 (bf16 models: bf16 weights upcast to f32, f32 math)
    logits_bf16 F32 [3, 20, V]   (bf16 models only) same, model run natively in bf16

Everything is seeded; re-running reproduces the files bit for bit on the same
torch/transformers versions (recorded in VERSIONS.txt).

Weight init: "randn * small" but scaled per matrix as gain/sqrt(fan_in)
(gain 1.5 for q/k, 1.0 otherwise) instead of a flat 0.02. With a flat 0.02 the
attention scores are ~0.03, attention is uniform and RoPE / sliding window /
GQA mistakes would barely move the logits. RMSNorm weights are 1 + 0.1*randn,
biases 0.1*randn, embeddings 2/sqrt(hidden)*randn.

Config style: transformers 5 writes RoPE as "rope_parameters" (theta inside).
Most real checkpoints use the older top-level "rope_theta" + "rope_scaling"
("legacy"). Models listed with style "v5" keep what transformers 5 writes; the
others are rewritten to the legacy layout, then re-loaded with from_pretrained
to prove transformers reads them back identically (the recorded logits are
computed from the re-loaded directory, i.e. from exactly what is on disk).
"""
import argparse
import copy
import inspect
import json
import os
import shutil
import sys

import numpy as np
import torch
import transformers
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import (GenerationConfig, LlamaConfig, LlamaForCausalLM, MistralConfig,
                          MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import np_ref  # noqa: E402

B, T = 3, 20
BOS, EOS = 1, 2

LLAMA = dict(hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, vocab_size=320, rms_norm_eps=1e-5, rope_theta=10000.0,
             tie_word_embeddings=False, max_position_embeddings=128)
QWEN2 = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=1, vocab_size=300, rms_norm_eps=1e-6, rope_theta=1000000.0,
             tie_word_embeddings=True, max_position_embeddings=128)
MISTRAL = dict(hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, vocab_size=320, rms_norm_eps=1e-5, rope_theta=10000.0,
               tie_word_embeddings=False, max_position_embeddings=128, sliding_window=8)
LLAMA3_SCALING = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                  "high_freq_factor": 4.0, "original_max_position_embeddings": 32}
# hidden 128 / 4 heads -> head_dim 32. intermediate 64 and vocab 256 keep the
# f32 directory under 1 MB (and test intermediate < hidden).
LLAMA3ROPE = dict(LLAMA, hidden_size=128, intermediate_size=64, vocab_size=256,
                  rope_theta=500000.0, rope_scaling=LLAMA3_SCALING)
LINEARROPE = dict(LLAMA, rope_scaling={"rope_type": "linear", "factor": 2.0})
LLAMA_HD = dict(LLAMA, head_dim=24, attention_bias=False)

ARCH = {"llama": (LlamaConfig, LlamaForCausalLM),
        "qwen2": (Qwen2Config, Qwen2ForCausalLM),
        "mistral": (MistralConfig, MistralForCausalLM)}

# name, arch, config kwargs, weight seed, weight dtype, config style, extra
MODELS = [
    ("llama_f32", "llama", LLAMA, 1001, "f32", "legacy", {}),
    ("llama_bf16", "llama", LLAMA, 1001, "bf16", "v5", {}),
    ("llama_hd_f32", "llama", LLAMA_HD, 1002, "f32", "legacy", {}),
    ("qwen2_f32", "qwen2", QWEN2, 1003, "f32", "legacy", {"qwen_window_trap": True}),
    ("qwen2_bf16", "qwen2", QWEN2, 1003, "bf16", "legacy", {"qwen_window_trap": True}),
    ("mistral_f32", "mistral", MISTRAL, 1004, "f32", "legacy", {}),
    ("mistral_bf16", "mistral", MISTRAL, 1004, "bf16", "legacy", {}),
    ("llama3rope_f32", "llama", LLAMA3ROPE, 1005, "f32", "legacy", {}),
    ("llama3rope_bf16", "llama", LLAMA3ROPE, 1005, "bf16", "v5", {}),
    ("linearrope_f32", "llama", LINEARROPE, 1006, "f32", "v5", {}),
    ("llama_sharded_f32", "llama", LLAMA, 1001, "f32", "legacy", {"max_shard_size": "150KB"}),
    ("qwen2_f16", "qwen2", QWEN2, 1003, "f16", "legacy", {"qwen_window_trap": True}),
]
SAVE_DTYPE = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}


def log(*a):
    print(*a, flush=True)


def build_config(arch, kw):
    cls, _ = ARCH[arch]
    kw = dict(kw, bos_token_id=BOS, eos_token_id=EOS)
    if arch == "qwen2":
        kw.update(use_sliding_window=False)
    cfg = cls(**kw)
    cfg._attn_implementation = "eager"
    return cfg


def init_weights(model, seed):
    g = torch.Generator().manual_seed(seed)
    hidden = model.config.hidden_size
    with torch.no_grad():
        for name, p in model.named_parameters():  # tied params appear once
            r = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if name.endswith("norm.weight"):
                v = 1.0 + 0.1 * r
            elif name.endswith(".bias"):
                v = 0.1 * r
            elif "embed_tokens" in name:
                v = (2.0 / hidden ** 0.5) * r
            elif p.ndim == 2:
                gain = 1.5 if (".q_proj." in name or ".k_proj." in name) else 1.0
                v = (gain / p.shape[1] ** 0.5) * r
            else:
                raise RuntimeError(f"unexpected parameter {name}")
            p.copy_(v)


def make_tokens(vocab, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (B, T), generator=g, dtype=torch.int64)


@torch.no_grad()
def logits_of(model, tokens):
    model.eval()
    return model(input_ids=tokens).logits.float()


def save_model(model, out_dir, max_shard_size=None):
    kw = {}
    if "safe_serialization" in inspect.signature(model.save_pretrained).parameters:
        kw["safe_serialization"] = True  # transformers 4.x; 5.x always writes safetensors
    if max_shard_size:
        kw["max_shard_size"] = max_shard_size
    model.save_pretrained(out_dir, **kw)
    GenerationConfig(bos_token_id=BOS, eos_token_id=EOS).save_pretrained(out_dir)


def to_legacy_config(out_dir, arch, extra):
    """Rewrite config.json into the pre-transformers-5 layout most hub models use."""
    path = os.path.join(out_dir, "config.json")
    with open(path) as f:
        c = json.load(f)
    rp = dict(c.pop("rope_parameters"))
    c["rope_theta"] = rp.pop("rope_theta")
    c["rope_scaling"] = None if rp.get("rope_type", "default") == "default" else rp
    if "dtype" in c:
        c["torch_dtype"] = c.pop("dtype")
    if arch == "qwen2":
        c.pop("layer_types", None)
        if extra.get("qwen_window_trap"):
            # Like real Qwen2.5 configs: a sliding_window value is present but
            # use_sliding_window is false, so NO window applies. A small value
            # and max_window_layers 1 make an engine that wrongly honours it fail.
            c["sliding_window"] = 4
            c["max_window_layers"] = 1
            c["use_sliding_window"] = False
    with open(path, "w") as f:
        json.dump(dict(sorted(c.items())), f, indent=2)
        f.write("\n")


def reload(out_dir, arch, dtype):
    _, mcls = ARCH[arch]
    m = mcls.from_pretrained(out_dir, dtype=dtype, attn_implementation="eager")
    m.eval()
    for n, p in m.named_parameters():
        assert p.dtype == dtype, (n, p.dtype)
    return m


def variant_logits(model, tokens, mutate):
    """Logits of the same weights under a modified config (for 'does X matter' checks)."""
    cfg = copy.deepcopy(model.config)
    mutate(cfg)
    m2 = type(model)(cfg).to(next(model.parameters()).dtype)
    missing, unexpected = m2.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected and all("inv_freq" in k for k in missing), (missing, unexpected)
    return logits_of(m2, tokens)


def dir_size(d):
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", nargs="*", help="subset of model names")
    args = ap.parse_args()

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    summary = []

    for idx, (name, arch, kw, wseed, wdtype, style, extra) in enumerate(MODELS):
        if args.only and name not in args.only:
            continue
        log(f"== {name}")
        out_dir = os.path.join(args.out, name)
        shutil.rmtree(out_dir, ignore_errors=True)

        cfg = build_config(arch, kw)
        torch.manual_seed(wseed)
        model = ARCH[arch][1](cfg).to(torch.float32)
        init_weights(model, wseed)
        model.eval()
        if arch == "qwen2":
            assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(), "not tied"
            assert model.model.layers[0].self_attn.q_proj.bias.abs().min() > 0
        tokens = make_tokens(cfg.vocab_size, 5000 + idx)

        save_dtype = SAVE_DTYPE[wdtype]
        save_model(model.to(save_dtype), out_dir, extra.get("max_shard_size"))
        model.to(torch.float32)
        if style == "legacy":
            to_legacy_config(out_dir, arch, extra)

        # reference: reload from disk, f32 compute (bf16 weights are upcast exactly)
        m32 = reload(out_dir, arch, torch.float32)
        logits = logits_of(m32, tokens)
        if wdtype == "f32":
            in_mem = logits_of(model, tokens)
            d = (logits - in_mem).abs().max().item()
            log(f"   reload-from-disk vs in-memory logits max diff = {d:.3e}")
            assert d == 0.0
        else:
            # upcast bf16/f16 weights == in-memory weights rounded to that dtype
            sd = model.state_dict()
            for n, p in m32.state_dict().items():
                if n in sd:
                    assert torch.equal(p, sd[n].to(save_dtype).float()), n
        rt = m32.config.rope_parameters
        log(f"   loaded rope_parameters = {rt}; sliding_window = {getattr(m32.config, 'sliding_window', None)}")

        tensors = {"tokens": tokens.to(torch.int32).contiguous(), "logits": logits.contiguous()}
        line = f"{name:18s} max|logits| = {logits.abs().max().item():.4f}"
        if wdtype == "bf16":
            mbf = reload(out_dir, arch, torch.bfloat16)
            lbf = logits_of(mbf, tokens)
            tensors["logits_bf16"] = lbf.contiguous()
            line += f"   max|logits - logits_bf16| = {(logits - lbf).abs().max().item():.4f}"

        # feature checks: the feature must actually change the logits
        if arch == "mistral":
            def no_window(c):
                c.sliding_window = None
            d = (logits - variant_logits(m32, tokens, no_window)).abs().max().item()
            line += f"   [window 8 vs none: max diff {d:.3f}]"
            assert d > 1e-2, "sliding window has no effect?"
            # exact boundary: numpy with the same / neighbouring window sizes
            W = np_ref.load_weights(out_dir)
            c = np_ref.parse_config(out_dir)
            diffs = {}
            for w in (7, 8, 9):
                diffs[w] = max(float(np.abs(np_ref.forward(out_dir, tokens[b].numpy(), w, W=W, cfg=c)
                                            - logits[b].numpy()).max()) for b in range(B))
            line += "   [numpy mask (q-k)<W: " + ", ".join(f"W={w}: {v:.1e}" for w, v in diffs.items()) + "]"
            assert diffs[8] < 1e-4 and diffs[7] > 1e-3 and diffs[9] > 1e-3
        if kw.get("rope_scaling"):
            theta = kw["rope_theta"]

            def no_scaling(c):
                c.rope_parameters = {"rope_type": "default", "rope_theta": theta}
            d = (logits - variant_logits(m32, tokens, no_scaling)).abs().max().item()
            line += f"   [{kw['rope_scaling']['rope_type']} scaling vs none: max diff {d:.3f}]"
            if kw["rope_scaling"]["rope_type"] == "llama3":
                # all three llama3 regimes must be present for head_dim 32
                rs = kw["rope_scaling"]
                c = np_ref.parse_config(out_dir)
                base = np_ref.rope_inv_freq(dict(c, rope_type="default"))
                wl = 2 * np.pi / base
                hi = rs["original_max_position_embeddings"] / rs["high_freq_factor"]
                lo = rs["original_max_position_embeddings"] / rs["low_freq_factor"]
                n = (int((wl < hi).sum()), int(((wl >= hi) & (wl <= lo)).sum()), int((wl > lo).sum()))
                hf_inv = m32.model.rotary_emb.inv_freq.double().numpy()
                ierr = float(np.abs(hf_inv / np_ref.rope_inv_freq(c) - 1).max())
                line += f"   [inv_freq unchanged/smoothed/divided = {n[0]}/{n[1]}/{n[2]}, rel err vs numpy {ierr:.1e}]"
                assert min(n) >= 1 and ierr < 1e-6
            assert d > 1e-2, "rope scaling has no effect?"
        if arch == "qwen2":
            m0 = copy.deepcopy(m32)
            with torch.no_grad():
                for l in m0.model.layers:
                    for proj in (l.self_attn.q_proj, l.self_attn.k_proj, l.self_attn.v_proj):
                        proj.bias.zero_()
            d = (logits - logits_of(m0, tokens)).abs().max().item()
            line += f"   [qkv bias vs zero bias: max diff {d:.3f}]"
            assert d > 1e-2

        save_file(tensors, os.path.join(out_dir, "ref.safetensors"),
                  # a single metadata key: safetensors writes the metadata map in
                  # random order, so more than one key breaks bit-reproducibility
                  metadata={"source": f"tests/ref/make_models.py {name}: torch {torch.__version__},"
                                      f" transformers {transformers.__version__}, eager attention,"
                                      f" {wdtype} weights"})

        # independent numpy forward must agree with HF
        nerr = np_ref.check_dir(out_dir)
        line += f"   numpy-ref err {nerr:.1e}"
        assert nerr < 1e-4, nerr
        size = dir_size(out_dir)
        line += f"   ({size / 1024:.0f} KiB)"
        assert size < 1024 * 1024, f"{name} is {size} bytes"
        summary.append(line)
        log("   " + line)

    with open(os.path.join(args.out, "VERSIONS.txt"), "w") as f:
        f.write(f"python {sys.version.split()[0]}\n")
        f.write(f"torch {torch.__version__}\n")
        f.write(f"transformers {transformers.__version__}\n")
        import safetensors
        f.write(f"safetensors {safetensors.__version__}\n")
        f.write(f"numpy {np.__version__}\n")
        f.write("generated by: python3 tests/ref/make_models.py --out tests/fixtures/models\n")

    verify(args.out, [m for m in MODELS if not args.only or m[0] in args.only])
    log("\nSUMMARY")
    for s in summary:
        log(s)


def verify(out, models):
    """Re-open every output with safetensors.safe_open and check shapes / dtypes."""
    for name, arch, kw, _, wdtype, _, extra in models:
        d = os.path.join(out, name)
        V = kw["vocab_size"]
        with safe_open(os.path.join(d, "ref.safetensors"), "pt") as f:
            keys = set(f.keys())
            want = {"tokens", "logits"} | ({"logits_bf16"} if wdtype == "bf16" else set())
            assert keys == want, (name, keys)
            t = f.get_tensor("tokens")
            assert t.dtype == torch.int32 and tuple(t.shape) == (B, T)
            assert int(t.min()) >= 0 and int(t.max()) < V
            for k in want - {"tokens"}:
                x = f.get_tensor(k)
                assert x.dtype == torch.float32 and tuple(x.shape) == (B, T, V), (name, k, x.shape)
        if extra.get("max_shard_size"):
            with open(os.path.join(d, "model.safetensors.index.json")) as fh:
                wm = json.load(fh)["weight_map"]
            shards = sorted(set(wm.values()))
            assert len(shards) >= 2, shards
            assert not os.path.exists(os.path.join(d, "model.safetensors"))
            files = shards
        else:
            files = ["model.safetensors"]
        want_dt = SAVE_DTYPE[wdtype]
        names = []
        for fn in files:
            with safe_open(os.path.join(d, fn), "pt") as f:
                for k in f.keys():
                    assert f.get_slice(k).get_dtype() == wdtype.upper()
                    assert f.get_tensor(k).dtype == want_dt
                    names.append(k)
        tied = "lm_head.weight" not in names
        assert tied == (arch == "qwen2"), (name, tied)
        print(f"verified {name:18s} {len(files)} weight file(s), {len(names)} tensors,"
              f" lm_head {'tied (absent)' if tied else 'present'}")


if __name__ == "__main__":
    main()
