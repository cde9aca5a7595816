#!/usr/bin/env python3
"""PyTorch autograd references for the LargeForge training code.

    python3 tests/ref/make_grads.py --models tests/fixtures/models    # ~5 s on CPU

This script reads the existing fixture directories (it does not change the
weights). Run tests/ref/make_models.py first if they are missing. Each model is
loaded with `AutoModelForCausalLM.from_pretrained(dir, dtype=float32,
attn_implementation="eager")` and run in train() mode. All dropout probabilities
are 0, and the script checks that the train-mode logits equal the eval-mode logits.

grads.safetensors  (llama_f32, qwen2_f32, mistral_f32, llama3rope_f32)
  input_ids           I32 [2, 16]  torch.randint(0, V) from a fixed per-model seed (no BOS)
  labels              I32 [2, 16]  = input_ids, except -100 at [0, 0:4], [1, 10:13] and [1, 15]
  loss                F32 [1]      model(input_ids, labels=labels).loss
  logits              F32 [2, 16, V] the logits of that same forward
  grad.<param name>   F32 (shape of the parameter), one per model.named_parameters()

  Loss (transformers 5.23, loss/loss_utils.py: ForCausalLMLoss -> fixed_cross_entropy).
  The model calls it without num_items_in_batch, so the reduction is "mean":
    * shift: labels are right-padded with one -100 per row and shifted left, so
      logits[b, t] is scored against labels[b, t+1] for t = 0..T-2. The
      logits at t = T-1 are never scored, and labels[b, 0] is never a target.
    * loss = sum over all (b, t), t < T-1, with labels[b, t+1] != -100, of
             -log_softmax(logits[b, t])[labels[b, t+1]],
      divided by N = the number of such non-ignored targets in the WHOLE batch.
      This is one mean over all the batch's tokens, not a mean of per-row means.
      The log_softmax is in f32 (logits.float()). There is no label smoothing,
      and ignore_index is -100.
    * With this mask, N = 23. Row 0 has 12 targets (t+1 = 4..15; its -100 at
      position 0 has no effect, because label 0 is never a target). Row 1 has
      11 (t+1 = 1..14 except 10, 11, 12). The counts differ, so a mean of the
      per-row means would give a different loss than the global mean.
  Tied embeddings (qwen2_f32): named_parameters() lists the shared tensor once,
  as `model.embed_tokens.weight`. There is no `grad.lm_head.weight`. So
  `grad.model.embed_tokens.weight` holds the full gradient: the sum of the
  embedding-lookup part and the lm_head (output projection) part. The script
  checks this against an untied copy.

adamw.safetensors  (llama_f32 only; it uses the same batch as its grads.safetensors)
  input_ids, labels   I32 [2, 16]  (a copy of the batch, used at every step)
  loss.<s>            F32 [1]  loss of the forward at step s (before step s's update), s = 0..9
  grad_norm.<s>       F32 [1]  total L2 norm of all grads BEFORE clipping (clip_grad_norm_'s return value)
  lr.<s>              F32 [1]  the lr that optimizer.step() used at step s
  param.<name>        F32      every parameter after the 10 updates

  Setup:
    AdamW(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, foreach=False, fused=False)
    This uses 2 param groups, as HF Trainer does (Trainer.get_decay_parameter_names):
      weight_decay 0.01 for the names with neither "bias" nor "norm" in them
      (here: embed_tokens, q/k/v/o_proj, gate/up/down_proj, lm_head, all 2-D)
      weight_decay 0.0 for input_layernorm, post_attention_layernorm, model.norm
    get_cosine_schedule_with_warmup(num_warmup_steps=2, num_training_steps=10)
  Per step s = 0..9, in this exact order:
    1. lr_s = scheduler.get_last_lr()[0]  (recorded as lr.<s>)
    2. optimizer.zero_grad(set_to_none=True)
    3. out = model(input_ids, labels=labels); loss.<s> = out.loss
    4. out.loss.backward()
    5. grad_norm.<s> = clip_grad_norm_(model.parameters(), max_norm=1.0)
    6. optimizer.step()
    7. scheduler.step()
  lr schedule: lr_s = 1e-3 * f(s). Here f(s) = s/2 for s < 2. Otherwise
  f(s) = max(0, 0.5*(1 + cos(pi * (s-2)/8))). So lr_0 = 0, and step 0 does not
  move the weights, but it still fills m and v and counts as t = 1.
  clip: total = sqrt(sum over params of ||g||_2^2), computed as the norm of the
  per-tensor norms. Then coef = min(1, 1.0 / (total + 1e-6)), and every g *= coef.
  The multiply always happens, even when coef is 1.
  AdamW update (torch single-tensor path), for every element, with t = s+1:
    p  = p * (1 - lr*wd)            # decoupled decay, applied first, with wd of p's group
    m  = m + (g - m)*(1 - b1)       # lerp; m and v start at 0
    v  = v*b2 + (1 - b2)*g*g
    p  = p - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
  The script reimplements this formula directly, and checks the final params
  against torch.optim.AdamW.

Everything is deterministic: fixed seeds, torch.use_deterministic_algorithms,
one thread, and CPU. The script computes everything twice in one process and
checks that the results are bitwise equal. Running it twice gives byte-identical
files with the pinned versions in tests/ref/requirements.txt.
"""
import argparse
import copy
import hashlib
import math
import os
import sys

import torch
import transformers
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, Trainer, get_cosine_schedule_with_warmup

B, T = 2, 16
IGNORE = -100
# name, input seed
MODELS = [
    ("llama_f32", 7001),
    ("qwen2_f32", 7002),
    ("mistral_f32", 7003),
    ("llama3rope_f32", 7004),
]
ADAMW_MODEL = "llama_f32"
ADAMW = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
WARMUP, TOTAL, MAX_NORM = 2, 10, 1.0
MAX_FILE = 1024 * 1024


def log(*a):
    print(*a, flush=True)


def load(d, dtype=torch.float32):
    m = AutoModelForCausalLM.from_pretrained(d, dtype=dtype, attn_implementation="eager")
    for n, p in m.named_parameters():
        assert p.dtype == dtype, (n, p.dtype)
    assert m.config._attn_implementation == "eager"
    # no dropout anywhere, so train() == eval() numerically
    for mod in m.modules():
        if isinstance(mod, torch.nn.Dropout):
            assert mod.p == 0.0, mod
    assert float(getattr(m.config, "attention_dropout", 0.0)) == 0.0
    m.train()
    return m


def make_batch(vocab, seed):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (B, T), generator=g, dtype=torch.int64)
    labels = ids.clone()
    labels[0, :4] = IGNORE
    labels[1, 10:13] = IGNORE
    labels[1, 15] = IGNORE  # unequal rows (12 and 11 targets): a mean of row means would differ
    return ids, labels


def manual_loss(logits, labels):
    """The documented reduction, in float64: one global mean over non-ignored shifted targets."""
    lp = torch.log_softmax(logits[:, :-1].double(), dim=-1)
    tgt = labels[:, 1:]
    mask = tgt != IGNORE
    nll = -lp.gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    per_row = [(nll[b][mask[b]].sum() / mask[b].sum()).item() for b in range(B)]
    return (nll[mask].sum() / mask.sum()).item(), int(mask.sum()), per_row


def fwd_bwd(model, ids, labels):
    model.zero_grad(set_to_none=True)
    out = model(input_ids=ids, labels=labels)
    out.loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    return out.loss.detach().clone(), out.logits.detach().clone(), grads


def grads_for(d, seed):
    model = load(d)
    V = model.config.vocab_size
    ids, labels = make_batch(V, seed)
    loss, logits, grads = fwd_bwd(model, ids, labels)
    names = [n for n, _ in model.named_parameters()]
    assert list(grads) == names and all(grads[n].shape == p.shape for n, p in model.named_parameters())
    assert logits.dtype == torch.float32 and tuple(logits.shape) == (B, T, V)
    return model, ids, labels, loss, logits, grads


def check_grads(name, d, model, ids, labels, loss, logits, grads):
    """Independent checks; returns facts for the summary."""
    info = {}
    with torch.no_grad():
        model.eval()
        ev = model(input_ids=ids).logits
        model.train()
    assert torch.equal(ev, logits), "train-mode logits differ from eval-mode logits"

    ml, n, per_row = manual_loss(logits, labels)
    assert abs(ml - loss.item()) < 1e-5 * max(1.0, abs(ml)), (ml, loss.item())
    # not the same as dividing by B*(T-1), or by B*T
    info.update(n_targets=n, per_row=per_row)

    # float64 autograd of the same weights: gives the f32 error level for C tolerances
    m64 = load(d, torch.float64)
    l64, _, g64 = fwd_bwd(m64, ids, labels)
    info["loss64_diff"] = abs(l64.item() - loss.item())
    rel = 0.0
    for k in grads:
        scale = g64[k].abs().max().item()
        rel = max(rel, (grads[k].double() - g64[k]).abs().max().item() / scale)
    info["rel_err_vs_f64"] = rel
    assert rel < 1e-4, rel

    # tied embeddings: the one tensor carries embedding + lm_head contributions
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    names = [k for k in grads]
    if tied:
        assert "lm_head.weight" not in names and "model.embed_tokens.weight" in names
        assert model.lm_head.weight is model.model.embed_tokens.weight
        mu = load(d, torch.float64)
        mu.lm_head.weight = torch.nn.Parameter(mu.model.embed_tokens.weight.detach().clone())
        assert mu.lm_head.weight is not mu.model.embed_tokens.weight
        _, _, gu = fwd_bwd(mu, ids, labels)
        summed = gu["model.embed_tokens.weight"] + gu["lm_head.weight"]
        e = (summed - g64["model.embed_tokens.weight"]).abs().max().item()
        assert e < 1e-12, e
        # and neither part alone is the answer
        for part in ("model.embed_tokens.weight", "lm_head.weight"):
            assert (gu[part] - g64["model.embed_tokens.weight"]).abs().max().item() > 1e-3
        info["tied"] = "model.embed_tokens.weight (= embedding grad + lm_head grad; no lm_head.weight)"
    else:
        assert "lm_head.weight" in names
    return info


def run_adamw(d, ids, labels):
    model = load(d)
    names = [n for n, _ in model.named_parameters()]
    decay = set(Trainer.get_decay_parameter_names(None, model))
    simple = {n for n in names if "bias" not in n and "norm" not in n}
    assert decay == simple, (decay ^ simple)
    params = dict(model.named_parameters())
    assert all(params[n].ndim == 2 for n in decay) and all(params[n].ndim == 1 for n in set(names) - decay)
    groups = [{"params": [params[n] for n in names if n in decay], "weight_decay": ADAMW["weight_decay"]},
              {"params": [params[n] for n in names if n not in decay], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=ADAMW["lr"], betas=ADAMW["betas"], eps=ADAMW["eps"],
                            weight_decay=ADAMW["weight_decay"], foreach=False, fused=False)
    sched = get_cosine_schedule_with_warmup(opt, num_warmup_steps=WARMUP, num_training_steps=TOTAL)

    # the documented update, done by hand on a copy (f32, same op order)
    ref = {n: p.detach().clone() for n, p in model.named_parameters()}
    m = {n: torch.zeros_like(p) for n, p in ref.items()}
    v = {n: torch.zeros_like(p) for n, p in ref.items()}
    b1, b2 = ADAMW["betas"]
    eps = ADAMW["eps"]

    rec = {}
    for s in range(TOTAL):
        lr = sched.get_last_lr()[0]
        assert all(g["lr"] == lr for g in opt.param_groups)
        f = s / WARMUP if s < WARMUP else max(0.0, 0.5 * (1 + math.cos(math.pi * (s - WARMUP) / (TOTAL - WARMUP))))
        assert abs(lr - ADAMW["lr"] * f) < 1e-15, (s, lr)
        opt.zero_grad(set_to_none=True)
        out = model(input_ids=ids, labels=labels)
        out.loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_NORM)
        opt.step()
        sched.step()
        rec[f"loss.{s}"] = out.loss.detach().reshape(1).clone()
        rec[f"grad_norm.{s}"] = gn.detach().reshape(1).float().clone()
        rec[f"lr.{s}"] = torch.tensor([lr], dtype=torch.float32)

        # manual AdamW with the clipped grads of this step
        t = s + 1
        for n in names:
            g = params[n].grad
            wd = ADAMW["weight_decay"] if n in decay else 0.0
            p = ref[n]
            p.mul_(1 - lr * wd)
            m[n].lerp_(g, 1 - b1)
            v[n].mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v[n].sqrt() / ((1 - b2 ** t) ** 0.5)).add_(eps)
            p.addcdiv_(m[n], denom, value=-(lr / (1 - b1 ** t)))
            # keep the hand-made copy on the optimizer's trajectory
            e = (p - params[n].detach()).abs().max().item()
            assert e < 1e-6, (s, n, e)
            p.copy_(params[n].detach())
    for n in names:
        rec[f"param.{n}"] = params[n].detach().clone()
    return rec


def build_all(models_dir):
    out = {}
    for name, seed in MODELS:
        d = os.path.join(models_dir, name)
        model, ids, labels, loss, logits, grads = grads_for(d, seed)
        tensors = {"input_ids": ids.to(torch.int32).contiguous(),
                   "labels": labels.to(torch.int32).contiguous(),
                   "loss": loss.reshape(1).contiguous(),
                   "logits": logits.contiguous()}
        for n, g in grads.items():
            tensors[f"grad.{n}"] = g.contiguous()
        out[name] = (tensors, (model, ids, labels, loss, logits, grads))
    return out


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
    torch.manual_seed(0)  # nothing random is drawn from the global RNG; set anyway

    results = build_all(args.models)
    again = build_all(args.models)
    for name in results:
        a, b = results[name][0], again[name][0]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f"{name} not deterministic"

    meta_src = f"torch {torch.__version__}, transformers {transformers.__version__}, eager, float32, CPU"
    summary = []
    for name, _ in MODELS:
        d = os.path.join(args.models, name)
        tensors, (model, ids, labels, loss, logits, grads) = results[name]
        info = check_grads(name, d, model, ids, labels, loss, logits, grads)
        path = os.path.join(d, "grads.safetensors")
        save_file(tensors, path, metadata={"source": (
            f"tests/ref/make_grads.py {name}: {meta_src}; loss = HF ForCausalLMLoss mean over "
            f"{info['n_targets']} non-ignored shifted targets (logits[:, t] vs labels[:, t+1])")})
        size = os.path.getsize(path)
        assert size < MAX_FILE, (path, size)
        gmax_name = max(grads, key=lambda k: grads[k].abs().max().item())
        line = (f"{name:15s} loss {loss.item():.6f}  N {info['n_targets']}  "
                f"per-row means {info['per_row'][0]:.4f}/{info['per_row'][1]:.4f}  "
                f"max|grad| {grads[gmax_name].abs().max().item():.4e} ({gmax_name})  "
                f"f32 vs f64 grad rel err {info['rel_err_vs_f64']:.1e}  "
                f"{len(grads)} grads  {size / 1024:.0f} KiB  sha {sha(path)}")
        if "tied" in info:
            line += f"\n{'':15s} tied gradient: {info['tied']}"
        summary.append(line)

    # AdamW reference (llama_f32), computed twice for the determinism check
    d = os.path.join(args.models, ADAMW_MODEL)
    tensors = results[ADAMW_MODEL][0]
    ids, labels = tensors["input_ids"].long(), tensors["labels"].long()
    rec = run_adamw(d, ids, labels)
    rec2 = run_adamw(d, ids, labels)
    assert rec.keys() == rec2.keys() and all(torch.equal(rec[k], rec2[k]) for k in rec), "adamw not deterministic"
    init = {n: p.detach() for n, p in load(d).named_parameters()}
    assert all(not torch.equal(init[n], rec[f"param.{n}"]) for n in init), "some param did not move"
    assert rec["loss.0"].item() == tensors["loss"].item(), "step-0 loss != grads.safetensors loss"
    assert rec["loss.1"].item() == rec["loss.0"].item(), "lr_0 = 0, so step 0 must not move the weights"
    g0 = torch.linalg.vector_norm(torch.stack([tensors[k].double().norm() for k in tensors if k.startswith("grad.")]))
    assert abs(g0.item() - rec["grad_norm.0"].item()) < 1e-5 * g0.item(), (g0.item(), rec["grad_norm.0"].item())
    adam = {"input_ids": tensors["input_ids"], "labels": tensors["labels"], **rec}
    path = os.path.join(d, "adamw.safetensors")
    save_file(adam, path, metadata={"source": (
        f"tests/ref/make_grads.py {ADAMW_MODEL}: {meta_src}; AdamW lr 1e-3 betas (0.9, 0.999) eps 1e-8 "
        f"wd 0.01 (2-D weights only), cosine warmup 2 / total 10, clip 1.0; per step: zero_grad, forward, "
        f"backward, clip_grad_norm_, optimizer.step, scheduler.step")})
    size = os.path.getsize(path)
    assert size < MAX_FILE, (path, size)
    dmax = max((rec[f"param.{n}"] - init[n]).abs().max().item() for n in init)

    verify(args.models)

    log("SUMMARY")
    for s in summary:
        log(s)
    log(f"adamw ({ADAMW_MODEL}): {size / 1024:.0f} KiB  sha {sha(path)}  max|param change| {dmax:.4e}")
    for s in range(TOTAL):
        clipped = "clipped" if rec[f"grad_norm.{s}"].item() > MAX_NORM else "not clipped"
        log(f"  step {s}: lr {rec[f'lr.{s}'].item():.6e}  loss {rec[f'loss.{s}'].item():.6f}"
            f"  grad_norm {rec[f'grad_norm.{s}'].item():.6f} ({clipped})")


def verify(models_dir):
    """Re-open the outputs with safe_open and check names, dtypes and shapes."""
    for name, _ in MODELS:
        d = os.path.join(models_dir, name)
        m = load(d)
        V = m.config.vocab_size
        params = dict(m.named_parameters())
        with safe_open(os.path.join(d, "grads.safetensors"), "pt") as f:
            keys = set(f.keys())
            assert keys == {"input_ids", "labels", "loss", "logits"} | {f"grad.{n}" for n in params}, name
            for k in ("input_ids", "labels"):
                x = f.get_tensor(k)
                assert x.dtype == torch.int32 and tuple(x.shape) == (B, T)
            ids, lab = f.get_tensor("input_ids"), f.get_tensor("labels")
            assert int(ids.min()) >= 0 and int(ids.max()) < V
            assert int((lab == IGNORE).sum()) == 8 and torch.equal(lab[lab != IGNORE], ids[lab != IGNORE])
            assert f.get_tensor("loss").dtype == torch.float32 and tuple(f.get_tensor("loss").shape) == (1,)
            assert tuple(f.get_tensor("logits").shape) == (B, T, V)
            for n, p in params.items():
                g = f.get_tensor(f"grad.{n}")
                assert g.dtype == torch.float32 and g.shape == p.shape, n
                assert g.abs().max().item() > 0, n
        if name == ADAMW_MODEL:
            with safe_open(os.path.join(d, "adamw.safetensors"), "pt") as f:
                want = {"input_ids", "labels"} | {f"param.{n}" for n in params}
                for s in range(TOTAL):
                    want |= {f"loss.{s}", f"grad_norm.{s}", f"lr.{s}"}
                assert set(f.keys()) == want
                for n, p in params.items():
                    x = f.get_tensor(f"param.{n}")
                    assert x.dtype == torch.float32 and x.shape == p.shape
        log(f"verified {name}: {len(params)} grads" + (" + adamw" if name == ADAMW_MODEL else ""))


if __name__ == "__main__":
    sys.exit(main())
