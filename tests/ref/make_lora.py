#!/usr/bin/env python3
"""PEFT LoRA references for the LargeForge LoRA training code.

    python3 tests/ref/make_lora.py --models tests/fixtures/models    # ~5 s on CPU; run AFTER make_grads.py

For llama_f32 and qwen2_f32 this writes <dir>/lora_ref/, and for llama_f32 also
<dir>/lora_rs_ref/ (rsLoRA). Each holds:
  adapter_config.json        written by PeftModel.save_pretrained (PEFT's own format)
  adapter_model.safetensors  written by PeftModel.save_pretrained: F32, keys
                             base_model.model.<module>.lora_A.weight  [r, in]
                             base_model.model.<module>.lora_B.weight  [out, r]
  grads.safetensors
    loss                 F32 [1]        model(input_ids, labels=labels).loss of the PEFT model
    logits               F32 [2, 16, V] the logits of that same forward
    merged_logits        F32 [2, 16, V] logits of model.merge_and_unload() on the same input
    grad.<adapter key>   F32 (shape of the LoRA weight), one per lora_A / lora_B; <adapter key>
                         is exactly the key in adapter_model.safetensors (no ".default")
  input_ids / labels are NOT repeated: they are read from <dir>/grads.safetensors
  (make_grads.py) and reused as is.

Setup: base model loaded like make_grads.py (float32, eager, train() mode, all
dropout 0), then
  peft.get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
      target_modules="all-linear", bias="none", task_type="CAUSAL_LM"[, use_rslora=True]))
"all-linear" = every nn.Linear except the output layer (lm_head), i.e. per layer
q_proj k_proj v_proj o_proj gate_proj up_proj down_proj. PEFT initialises B = 0 (so
the adapter would start as a no-op and B's effect would be invisible); this script
overwrites every lora_A / lora_B weight with 0.1 * randn from a fixed per-model seed,
in named_parameters() order (A then B for each module, modules in model order).
The base weights are frozen (requires_grad False); only A and B get gradients.

LoRA forward (peft/tuners/lora/layer.py, Linear.forward, dropout 0):
  y = base(x) + lora_B(lora_A(x)) * scaling = x W^T + b + scaling * (x A^T) B^T
  scaling = lora_alpha / r            = 8/4 = 2   (plain LoRA)
  scaling = lora_alpha / sqrt(r)      = 8/2 = 4   (use_rslora=True)
merge_and_unload: W' = W + scaling * B @ A (bias unchanged), then the LoRA layers are removed.

Checks: the f32 PEFT gradients are compared with a float64 plain-transformers
model whose weights are the merged W' = W + s*B@A: with G = dL/dW',
dL/dB = s * G A^T and dL/dA = s * B^T G. Everything is computed twice in one
process and asserted bitwise equal; two runs give byte-identical files.
"""
import argparse
import hashlib
import json
import os
import shutil
import sys

import peft
import torch
import transformers
from peft import LoraConfig, get_peft_model
from safetensors import safe_open
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_grads import load  # noqa: E402

R, ALPHA = 4, 8
TARGETS = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
# out dir, base model dir, use_rslora, A/B init seed
RUNS = [
    ("lora_ref", "llama_f32", False, 8001),
    ("lora_rs_ref", "llama_f32", True, 8001),  # same A/B as lora_ref: only the scaling differs
    ("lora_ref", "qwen2_f32", False, 8002),
]
MAX_DIR = 600 * 1024


def log(*a):
    print(*a, flush=True)


def peft_model(d, rslora, seed):
    base = load(d)
    cfg = LoraConfig(r=R, lora_alpha=ALPHA, lora_dropout=0.0, target_modules="all-linear",
                     bias="none", task_type="CAUSAL_LM", use_rslora=rslora)
    model = get_peft_model(base, cfg)
    g = torch.Generator().manual_seed(seed)
    n_lora = 0
    with torch.no_grad():
        for n, p in model.named_parameters():
            if ".lora_A." in n or ".lora_B." in n:
                p.copy_(0.1 * torch.randn(p.shape, generator=g, dtype=torch.float32))
                assert p.requires_grad, n
                n_lora += 1
            else:
                assert not p.requires_grad, n
    # all-linear: exactly the 7 projections of every layer, never lm_head
    mods = sorted(n for n, m in model.named_modules() if hasattr(m, "lora_A") and isinstance(m.lora_A, torch.nn.ModuleDict))
    L = base.config.num_hidden_layers
    assert len(mods) == 7 * L and n_lora == 14 * L, mods
    assert all(m.split(".")[-1] in TARGETS for m in mods) and not any("lm_head" in m for m in mods), mods
    want_s = ALPHA / R ** 0.5 if rslora else ALPHA / R
    for n, m in model.named_modules():
        if n in mods:
            assert m.scaling["default"] == want_s, (n, m.scaling)
            assert isinstance(m.lora_dropout["default"], torch.nn.Identity)
    model.train()
    return model, want_s


def compute(d, rslora, seed, ids, labels):
    model, s = peft_model(d, rslora, seed)
    out = model(input_ids=ids, labels=labels)
    out.loss.backward()
    grads = {}
    for n, p in model.named_parameters():
        if p.requires_grad:
            grads[n] = p.grad.detach().clone()
    lora_w = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    state = {k: v.detach().clone() for k, v in peft.get_peft_model_state_dict(model).items()}
    model.eval()
    with torch.no_grad():
        eval_logits = model(input_ids=ids).logits
    assert torch.equal(eval_logits, out.logits), "train != eval logits"
    merged = model.merge_and_unload()
    assert not any("lora" in n for n, _ in merged.named_parameters())
    with torch.no_grad():
        merged_logits = merged(input_ids=ids).logits.detach().clone()
    return dict(model=model, scaling=s, loss=out.loss.detach().reshape(1).clone(),
                logits=out.logits.detach().clone(), merged_logits=merged_logits,
                grads=grads, lora_w=lora_w, state=state)


def saved_key(param_name):
    """PEFT param name -> key in adapter_model.safetensors (drop the adapter name)."""
    assert ".default." in param_name, param_name
    return param_name.replace(".default.", ".")


def check_f64(d, res, ids, labels):
    """Merged float64 plain model: dL/dW' gives dL/dA and dL/dB by the chain rule."""
    m = load(d, dtype=torch.float64)
    params = dict(m.named_parameters())
    s = res["scaling"]
    AB = {}
    for n, w in res["lora_w"].items():
        mod = n.split(".lora_")[0].replace("base_model.model.", "", 1)
        AB.setdefault(mod, {})["A" if ".lora_A." in n else "B"] = (n, w.double())
    with torch.no_grad():
        for mod, ab in AB.items():
            params[mod + ".weight"].add_(s * ab["B"][1] @ ab["A"][1])
    out = m(input_ids=ids, labels=labels)
    out.loss.backward()
    dl = abs(out.loss.item() - res["loss"].item())
    dlog = (out.logits - res["logits"].double()).abs().max().item()
    worst = 0.0
    for mod, ab in AB.items():
        G = params[mod + ".weight"].grad
        (na, A), (nb, Bm) = ab["A"], ab["B"]
        gA, gB = s * Bm.T @ G, s * G @ A.T
        for name, ref in ((na, gA), (nb, gB)):
            got = res["grads"][name].double()
            e = (got - ref).abs().max().item() / ref.abs().max().item()
            worst = max(worst, e)
    assert dl < 1e-5 and dlog < 1e-4 and worst < 1e-4, (dl, dlog, worst)
    return dl, dlog, worst


def build(models_dir):
    res = {}
    for out_name, name, rslora, seed in RUNS:
        d = os.path.join(models_dir, name)
        ref = load_file(os.path.join(d, "grads.safetensors"))
        ids, labels = ref["input_ids"].long(), ref["labels"].long()
        r = compute(d, rslora, seed, ids, labels)
        r.update(ids=ids, labels=labels, base_logits=ref["logits"], base_loss=ref["loss"])
        res[(out_name, name)] = r
    return res


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", required=True, help="the tests/fixtures/models directory")
    args = ap.parse_args()

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    transformers.utils.logging.disable_progress_bar()
    torch.manual_seed(0)

    results = build(args.models)
    again = build(args.models)
    for k in results:
        a, b = results[k], again[k]
        for f in ("loss", "logits", "merged_logits"):
            assert torch.equal(a[f], b[f]), (k, f)
        assert a["grads"].keys() == b["grads"].keys()
        assert all(torch.equal(a["grads"][n], b["grads"][n]) for n in a["grads"]), k

    meta = (f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}, "
            f"eager, float32, CPU")
    summary = []
    for (out_name, name, rslora, seed) in RUNS:
        r = results[(out_name, name)]
        d = os.path.join(args.models, name)
        od = os.path.join(d, out_name)
        if os.path.isdir(od):
            shutil.rmtree(od)
        # re-create a clean PEFT model with the same A/B for save_pretrained
        pm, _ = peft_model(d, rslora, seed)
        # stable, repo-relative base path instead of whatever --models was
        pm.peft_config["default"].base_model_name_or_path = f"tests/fixtures/models/{name}"
        # PEFT expands "all-linear" into a *set* of full module names and json-dumps it in set
        # order, which depends on PYTHONHASHSEED. Sort it so the file is reproducible.
        tm = pm.peft_config["default"].target_modules
        assert isinstance(tm, (set, list)) and len(tm) == 7 * pm.config.num_hidden_layers, tm
        pm.peft_config["default"].target_modules = sorted(tm)
        pm.save_pretrained(od)
        readme = os.path.join(od, "README.md")  # PEFT's model card stub: not a reference, drop it
        if os.path.exists(readme):
            os.remove(readme)
        assert sorted(os.listdir(od)) == ["adapter_config.json", "adapter_model.safetensors"], os.listdir(od)

        saved = load_file(os.path.join(od, "adapter_model.safetensors"))
        assert saved.keys() == r["state"].keys()
        grads = {}
        for n, g in r["grads"].items():
            k = saved_key(n)
            assert k in saved and torch.equal(saved[k], r["lora_w"][n]), k
            assert g.shape == saved[k].shape and g.abs().max().item() > 0, k
            grads[f"grad.{k}"] = g.contiguous()
        assert len(grads) == len(saved)
        tensors = {"loss": r["loss"].contiguous(), "logits": r["logits"].contiguous(),
                   "merged_logits": r["merged_logits"].contiguous(), **grads}
        path = os.path.join(od, "grads.safetensors")
        s = r["scaling"]
        save_file(tensors, path, metadata={"source": (
            f"tests/ref/make_lora.py {name}/{out_name}: {meta}; LoRA r={R} alpha={ALPHA} "
            f"{'rslora ' if rslora else ''}scaling={s} all-linear (no lm_head), A/B = 0.1*randn seed {seed}; "
            f"input_ids/labels from ../grads.safetensors; loss = HF ForCausalLMLoss")})
        cfgj = json.load(open(os.path.join(od, "adapter_config.json")))
        assert cfgj["r"] == R and cfgj["lora_alpha"] == ALPHA and cfgj["use_rslora"] == rslora
        tm = cfgj["target_modules"]
        assert tm == sorted(tm) and {t.split(".")[-1] for t in tm} == TARGETS, tm
        assert sorted(t for t in tm) == sorted(k.split(".lora_")[0].replace("base_model.model.", "", 1)
                                               for k in saved if ".lora_A." in k)

        dl, dlog, worst = check_f64(d, r, r["ids"], r["labels"])
        mdiff = (r["merged_logits"] - r["logits"]).abs().max().item()
        assert mdiff < 1e-4, mdiff  # f32 rounding of W + s*B@A vs the unmerged path
        bdiff = (r["logits"] - r["base_logits"]).abs().max().item()
        assert bdiff > 0.1, bdiff  # the adapter really changes the output
        size = sum(os.path.getsize(os.path.join(od, f)) for f in os.listdir(od))
        assert size < MAX_DIR, (od, size)
        gmax = max(grads, key=lambda k: grads[k].abs().max().item())
        summary.append(
            f"{name}/{out_name}: scaling {s}  loss {r['loss'].item():.6f} (base {r['base_loss'].item():.6f})  "
            f"max|logits-base| {bdiff:.3f}  max|merged-adapter| {mdiff:.2e}  "
            f"f64: dloss {dl:.1e} dlogits {dlog:.1e} grad rel err {worst:.1e}  "
            f"{len(grads)} grads, max|grad| {grads[gmax].abs().max().item():.4e} ({gmax})  "
            f"{size / 1024:.0f} KiB")
        for f in sorted(os.listdir(od)):
            p = os.path.join(od, f)
            summary.append(f"    {f:28s} {os.path.getsize(p):7d} B  sha {sha(p)}")

    # rsLoRA differs from plain LoRA only through the scaling
    a, b = results[("lora_ref", "llama_f32")], results[("lora_rs_ref", "llama_f32")]
    rsd = (a["logits"] - b["logits"]).abs().max().item()
    assert rsd > 0.1, rsd
    summary.append(f"llama_f32: max|logits(lora) - logits(rslora)| {rsd:.3f}")

    log("SUMMARY")
    for s in summary:
        log(s)


if __name__ == "__main__":
    sys.exit(main())
