#!/usr/bin/env python3
"""GGUF parity: llama.cpp (llama-cpp-python) runs the GGUF files LargeForge writes.

tests/ref/lf_write_gguf.c writes models/kjv-llama-4m as GGUF in F32, F16, BF16, Q8_0 and Q4_0
(lf_gguf_write), two LoRA adapters (lf_gguf_write_lora), and LargeForge's own logits for a fixed
prompt. This script

  1. loads every file with llama.cpp, runs the prompt and prints max |llama.cpp - LargeForge|;
  2. checks each file's tensors against gguf-py (llama.cpp's Python package): the F32 file holds
     the safetensors weights with convert's LlamaModel.permute applied, and every F16 / BF16 /
     Q8_0 / Q4_0 tensor is byte for byte gguf-py's conversion of the F32 one;
  3. compares tokenizations: a fixed text (HF `tokenizers`, llama.cpp, LargeForge) and
     tests/ref/tok_corpus.jsonl (HF vs llama.cpp);
  4. with --convert LLAMA_CPP_DIR [--convert-python PY] (PY with torch, transformers and
     sentencepiece; the converters of the same llama.cpp checkout), also runs llama.cpp's
     convert_hf_to_gguf.py / convert_lora_to_gguf.py on the same model and adapters and compares
     their files key by key and tensor by tensor;
  5. records llama.cpp's side in tests/fixtures/quant/gguf_ref.safetensors (logits per file, the
     tokenizations) with the sha256 of each file it loaded.

    python3 -m venv venv && CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAMA_CURL=OFF" \\
        venv/bin/pip install llama-cpp-python==0.3.36 gguf==0.19.0 tokenizers==0.23.3 \\
        numpy==2.4.6 safetensors==0.8.0
    venv/bin/python tests/ref/make_gguf_ref.py [--work DIR] [--convert DIR]

Run it from the repository root; lf_write_gguf.c is built with `cc` against largeforge.h
See tests/ref/README_gguf.md.
"""
import argparse
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys

import numpy as np
from safetensors.numpy import load_file, save_file

MODEL = "models/kjv-llama-4m"
TEXT = ("In the beginning God created the heaven and the earth. And the earth was without form, "
        "and void; and darkness was upon the face of the deep.\nAnd God said, Let there be light: "
        "and there was light. 1234 <|endoftext|>")
T = 8  # prompt positions whose logits are recorded (all V logits of each)
TYPES = ["f32", "f16", "bf16", "q8_0", "q4_0"]
# LargeForge's logits each llama.cpp run is compared with besides the f32 model's: the same
# weights as the file holds them, and the model after lf_model_quantize (lf_write_gguf.c)
SAME_WEIGHTS = {"f32": "logits_f32", "f16": "logits_f16w", "bf16": "logits_bf16w",
                "q8_0": "logits_q8_0e", "q4_0": "logits_q4_0e"}
AS_QUANTIZED = {"q8_0": "logits_q8_0", "q4_0": "logits_q4_0"}


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build(work):
    exe = os.path.join(work, "lf_write_gguf")
    cmd = ["cc", "-O2", "-std=gnu11", "-I.", "tests/ref/lf_write_gguf.c", "-o", exe, "-lcjson", "-lm", "-lpthread"]
    subprocess.run(cmd, check=True)
    return exe


def llama_run(llama_cpp, path, ids, lora=None):
    """All positions' logits of ids and the tokenization of TEXT, with an f32 KV cache and no
    flash attention, so that only the weights' format separates llama.cpp from LargeForge."""
    llm = llama_cpp.Llama(model_path=path, lora_path=lora, n_ctx=64, n_batch=64, n_ubatch=64, n_threads=2,
                          logits_all=True, flash_attn=False, type_k=0, type_v=0, verbose=False)
    llm.eval(ids)
    logits = np.array(llm.scores[: len(ids)], dtype=np.float32)
    tok = np.array(llm.tokenize(TEXT.encode("utf-8"), add_bos=False, special=True), dtype=np.int32)
    del llm
    return logits, tok


def permute(w, n_head, n_head_kv):
    """convert_hf_to_gguf.py's LlamaModel.permute, in numpy."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def check_tensors(gguf, work):
    """The F32 file against the safetensors weights; the other files against gguf-py's conversion
    of the F32 file. Returns the number of tensors checked."""
    cfg = json.load(open(os.path.join(MODEL, "config.json")))
    st = load_file(os.path.join(MODEL, "model.safetensors"))
    names = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
    want = {"token_embd.weight": st["model.embed_tokens.weight"], "output_norm.weight": st["model.norm.weight"]}
    if "lm_head.weight" in st and not cfg.get("tie_word_embeddings"):
        want["output.weight"] = st["lm_head.weight"]
    for l in range(cfg["num_hidden_layers"]):
        for hf, gg in names.items():
            w = st[f"model.layers.{l}.{hf}.weight"]
            if hf == "self_attn.q_proj":
                w = permute(w, cfg["num_attention_heads"], cfg["num_attention_heads"])
            if hf == "self_attn.k_proj":
                w = permute(w, cfg["num_attention_heads"], cfg["num_key_value_heads"])
            want[f"blk.{l}.{gg}.weight"] = w
    f32 = {t.name: np.array(t.data) for t in gguf.GGUFReader(os.path.join(work, "model-f32.gguf")).tensors}
    if sorted(f32) != sorted(want):
        sys.exit(f"model-f32.gguf: tensors {sorted(set(f32) ^ set(want))} differ in name")
    for name, w in want.items():
        if not np.array_equal(f32[name].reshape(w.shape), w):
            sys.exit(f"model-f32.gguf: {name} is not the safetensors weight")
    n = len(want)
    for t in TYPES[1:]:
        for ten in gguf.GGUFReader(os.path.join(work, f"model-{t}.gguf")).tensors:
            ref = gguf.quants.quantize(f32[ten.name].astype(np.float32), ten.tensor_type)
            if ref.tobytes() != np.array(ten.data).tobytes():
                sys.exit(f"model-{t}.gguf: {ten.name} ({ten.tensor_type.name}) differs from gguf-py's conversion")
            n += 1
    return n


def check_corpus(llama_cpp, tokenizers, work):
    """llama.cpp (vocab of model-f32.gguf) against HF on every line of tok_corpus.jsonl."""
    lines = [json.loads(x) for x in open("tests/ref/tok_corpus.jsonl", encoding="utf-8").read().split("\n") if x]
    hf = tokenizers.Tokenizer.from_file(os.path.join(MODEL, "tokenizer.json"))
    llm = llama_cpp.Llama(model_path=os.path.join(work, "model-f32.gguf"), vocab_only=True, verbose=False)
    same = 0
    for text in lines:
        ids = llm.tokenize(text.encode("utf-8", "surrogatepass"), add_bos=False, special=True)
        same += ids == hf.encode(text, add_special_tokens=False).ids
    return same, len(lines)


def convert_check(llama_dir, python, work):
    """Runs llama.cpp's converters on the same model and adapters and compares the files: keys
    and values, then tensor names, types, shapes and bytes. Our tokenizer's pre-tokenizer hash is
    in no list, so an unrecognized one is answered with "gpt-2" (what lf_gguf_write picks)."""
    shim = ("import sys, runpy; sys.path.insert(0, sys.argv[1]); from conversion import base\n"
            "orig = base.TextModel.get_vocab_base_pre\n"
            "def pre(self, tok):\n"
            "    try: return orig(self, tok)\n"
            "    except NotImplementedError: return 'gpt-2'\n"
            "base.TextModel.get_vocab_base_pre = pre\n"
            "script = sys.argv[1] + '/' + sys.argv[2]; sys.argv = [script] + sys.argv[3:]\n"
            "runpy.run_path(script, run_name='__main__')\n")
    import gguf

    def read(path):
        r = gguf.GGUFReader(path)
        kv = {k: (tuple(f.types), [bytes(f.parts[i]) for i in f.data]) for k, f in r.fields.items() if not k.startswith("GGUF.")}
        return kv, {t.name: (t.tensor_type, tuple(t.shape), np.array(t.data).tobytes()) for t in r.tensors}

    jobs = [(f"model-{t}", "convert_hf_to_gguf.py", [MODEL, "--outtype", t]) for t in ("f32", "f16", "bf16", "q8_0")]
    jobs += [(n, "convert_lora_to_gguf.py", [os.path.join(work, n + "-peft"), "--base", MODEL, "--outtype", "f32"])
             for n in ("lora", "lora-rs")]
    for name, script, argv in jobs:
        out = os.path.join(work, f"convert-{name}.gguf")
        subprocess.run([python, "-c", shim, llama_dir, script] + argv + ["--outfile", out], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        (ka, ta), (kb, tb) = read(out), read(os.path.join(work, name + ".gguf"))
        keys = sorted(k for k in set(ka) | set(kb) if ka.get(k) != kb.get(k))
        tens = sorted(k for k in set(ta) | set(tb) if ta.get(k) != tb.get(k))
        print(f"  {name}.gguf vs {script}: {len(tb)} tensors, {len(tens)} differ {tens[:3]}; keys that differ: {keys}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="build/gguf_ref", help="where the GGUF files are written")
    ap.add_argument("--out", default="tests/fixtures/quant/gguf_ref.safetensors")
    ap.add_argument("--convert", metavar="LLAMA_CPP_DIR", help="also compare with llama.cpp's converters")
    ap.add_argument("--convert-python", default=sys.executable, help="a Python with torch and transformers for --convert")
    args = ap.parse_args()

    import gguf
    import llama_cpp
    import tokenizers

    hf = tokenizers.Tokenizer.from_file(os.path.join(MODEL, "tokenizer.json"))
    hf_ids = np.array(hf.encode(TEXT, add_special_tokens=False).ids, dtype=np.int32)
    prompt = hf_ids[:T].copy()

    os.makedirs(args.work, exist_ok=True)
    exe = build(args.work)
    subprocess.run([exe, MODEL, args.work, TEXT] + [str(i) for i in prompt], check=True)
    lf = load_file(os.path.join(args.work, "lf.safetensors"))
    ref = lf["logits_f32"]
    span = float(ref.max() - ref.min())

    out = {"prompt": prompt, "text_ids_hf": hf_ids}
    meta = {"text": TEXT, "model": MODEL,
            "llama_cpp_python": llama_cpp.__version__, "gguf": importlib.metadata.version("gguf"),
            "tokenizers": tokenizers.__version__, "numpy": np.__version__, "python": platform.python_version(),
            "settings": "n_ctx 64, n_threads 2, f32 KV cache (type_k = type_v = 0), flash_attn off",
            "generated_by": "python3 tests/ref/make_gguf_ref.py"}
    tok_llama = None
    print(f"LargeForge f32 logits: range {span:.3f} over {T} positions x {ref.shape[1]}")
    print(f"{'file':<18}{'vs LF f32':>11}{'/ range':>10}{'vs LF same weights':>20}{'vs LF quantized':>17}")
    for t in TYPES:
        path = os.path.join(args.work, f"model-{t}.gguf")
        logits, tok = llama_run(llama_cpp, path, prompt)
        tok_llama = tok if tok_llama is None else tok_llama
        if not np.array_equal(tok, tok_llama):
            sys.exit(f"{t}: llama.cpp tokenizes differently than with the f32 file")
        d0 = float(np.abs(logits - ref).max())
        d1 = float(np.abs(logits - lf[SAME_WEIGHTS[t]]).max())
        d2 = f"{float(np.abs(logits - lf[AS_QUANTIZED[t]]).max()):.3g}" if t in AS_QUANTIZED else ""
        print(f"{'model-' + t + '.gguf':<18}{d0:>11.3g}{d0 / span:>10.2e}{d1:>20.3g}{d2:>17}")
        out[f"logits_{t}"] = logits
        meta[f"sha256_{t}"] = sha256(path)
        if t in AS_QUANTIZED and sha256(os.path.join(args.work, f"model-{t}-from-q.gguf")) != meta[f"sha256_{t}"]:
            sys.exit(f"model-{t}-from-q.gguf (written after lf_model_quantize) differs from model-{t}.gguf")
    print("model-q8_0/q4_0.gguf written after lf_model_quantize: the same files")
    base = os.path.join(args.work, "model-f32.gguf")
    for name, key in (("lora", "logits_lora"), ("lora-rs", "logits_lora_rs")):
        path = os.path.join(args.work, f"{name}.gguf")
        logits, _ = llama_run(llama_cpp, base, prompt, lora=path)
        d = float(np.abs(logits - lf[key]).max())
        effect = float(np.abs(lf[key] - ref).max())
        print(f"{'f32 + ' + name:<18}{d:>11.3g}{d / span:>10.2e}   (the adapter moves the logits by up to {effect:.3g})")
        if name == "lora":  # the rsLoRA file is recorded by its checksum only
            out["logits_lora"] = logits
        meta[f"sha256_{name.replace('-', '_')}"] = sha256(path)

    n = check_tensors(gguf, args.work)
    print(f"tensors: {n} checked against the safetensors weights (F32) and gguf-py's conversion (others): all equal")
    lf_ids = lf["text_ids"]
    same_hf, same_lf = np.array_equal(tok_llama, hf_ids), np.array_equal(lf_ids, hf_ids)
    print(f"tokenization of the text ({len(hf_ids)} ids): llama.cpp {'==' if same_hf else '!='} HF, "
          f"LargeForge {'==' if same_lf else '!='} HF")
    if not (same_hf and same_lf):
        sys.exit(f"  HF {hf_ids.tolist()}\n  llama.cpp {tok_llama.tolist()}\n  LargeForge {lf_ids.tolist()}")
    same, total = check_corpus(llama_cpp, tokenizers, args.work)
    print(f"tok_corpus.jsonl: llama.cpp == HF on {same}/{total} lines")
    meta["corpus_same"] = f"{same}/{total}"
    if args.convert:
        convert_check(os.path.abspath(args.convert), args.convert_python, args.work)
    out["text_ids_llamacpp"] = tok_llama
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    save_file(out, args.out, metadata=meta)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
