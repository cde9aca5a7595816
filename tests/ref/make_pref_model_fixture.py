#!/usr/bin/env python3
"""Whole-model DPO / ORPO references: TRL 1.16.0's real trainers on the tiny llama_f32 + LoRA.

    python3 tests/ref/make_pref_model_fixture.py          # ~10 s on CPU, run from the repo root

Writes tests/fixtures/pref/model_grads.safetensors and tests/fixtures/pref/model_grads.json;
README_pref_model.md documents both (layout, conventions, tolerances).

What runs (nothing here re-implements TRL; the float64 cross-check below is separate):
  policy    = tests/fixtures/models/llama_f32 (float32, eager) + the LoRA adapter in
              tests/fixtures/models/llama_f32/lora_ref (r 4, alpha 8, all-linear, trainable)
  DPO       = trl.DPOTrainer(model=<base>, peft_config=<the adapter's LoraConfig>, ref_model=None),
              then the adapter's saved A/B are loaded into the trainer's "default" adapter. With a
              peft_config TRL's reference is the same model with the adapter DISABLED
              (use_adapter(model, None) -> disable_adapter()). Passing a ready PeftModel instead
              makes TRL 1.16 (peft >= 0.20) copy the adapter into a frozen "ref" adapter, so the
              reference would be the adapter itself; check_peftmodel_path() shows that.
              Loss types sigmoid, hinge, ipo; beta 0.1.
  ORPO      = trl.experimental.orpo.ORPOTrainer, same model/adapter set-up, beta 0.1.
  One step  = trainer.training_step(trainer.model, trainer.data_collator(rows)): HF Trainer's
              model.train(), compute_loss, accelerator.backward. The gradients are the .grad of
              every lora_A / lora_B weight right after it (no clipping, no optimizer step).
  Data      = 3 preference pairs given as token ids, rendered as text for a word-level
              tokenizer whose token "t<i>" is id i ("<unk>" 0, "<s>" 1 = BOS, "</s>" 2 = EOS), so
              TRL's own dataset preparation (prompt/completion split, BOS/EOS handling) runs.
              The tokenizer adds BOS like a Llama tokenizer. Pad = EOS (TRL's DPO fallback; set
              explicitly for ORPO, whose collator needs one).
  Config    = bf16=False (TRL defaults to bf16 mixed precision), use_cpu, 1 thread,
              deterministic algorithms; every other option at its TRL default.

Checks: the rows TRL fed the model are captured by a forward hook and compared with the
documented layout; losses are recomputed (float64) from the recorded float32 log-probs and
must match the trainers' losses to 1e-6; an independent float64 computation (plain PEFT
model, log_softmax, the documented formulas) gives the float32 noise level; two in-process
runs are bitwise equal, and the output files are byte-identical across runs.
"""
import argparse
import contextlib
import json
import logging
import math
import os
import sys
import tempfile
import warnings

import torch
import torch.nn.functional as F

warnings.filterwarnings("ignore")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

import datasets  # noqa: E402
import peft  # noqa: E402
import transformers  # noqa: E402
import trl  # noqa: E402
from peft import LoraConfig, PeftModel, set_peft_model_state_dict  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers, processors  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402
from trl import DPOConfig, DPOTrainer  # noqa: E402
from trl.experimental.orpo import ORPOConfig, ORPOTrainer  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_grads import load  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "tests/fixtures/models/llama_f32")
ADAPTER = os.path.join(MODEL, "lora_ref")
OUT = os.path.join(ROOT, "tests/fixtures/pref")

BOS, EOS, PAD = 1, 2, 2
BETA = 0.1
DPO_LOSSES = ["sigmoid", "hinge", "ipo"]
# (prompt, chosen, rejected) token ids, all in [3, 320): no BOS/EOS here, TRL adds them.
# Prompts 4, 6, 3 tokens; completions 5/3, 2/6, 7/4: both halves of the batch get padded, and in
# pair 1 the rejected completion is the longer one.
PAIRS = [
    ([17, 203, 45, 88], [120, 7, 301, 56, 99], [64, 250, 13]),
    ([9, 77, 150, 222, 31, 4], [310, 18], [42, 199, 85, 3, 266, 140]),
    ([55, 290, 111], [73, 8, 244, 160, 12, 95, 187], [36, 211, 69, 301]),
]
P = len(PAIRS)
DPO_METRIC_KEYS = ["rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
                   "logps/chosen", "logps/rejected", "logits/chosen", "logits/rejected", "entropy",
                   "mean_token_accuracy", "num_tokens"]
ORPO_METRIC_KEYS = ["rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
                    "logps/chosen", "logps/rejected", "logits/chosen", "logits/rejected", "nll_loss",
                    "log_odds_ratio", "log_odds_chosen"]


def log(*a):
    print(*a, flush=True)


# ---------------------------------------------------------------------------- set-up

def make_tokenizer():
    """Word-level identity tokenizer: "t<i>" <-> id i, BOS added like Llama's tokenizer."""
    V = json.load(open(os.path.join(MODEL, "config.json")))["vocab_size"]
    vocab = {"<unk>": 0, "<s>": BOS, "</s>": EOS, **{f"t{i}": i for i in range(3, V)}}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tk.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", BOS)])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    assert tok("t17 t203")["input_ids"] == [BOS, 17, 203]
    assert tok("t17 t203", add_special_tokens=False)["input_ids"] == [17, 203]
    assert tok("t17 t203</s>", add_special_tokens=False)["input_ids"] == [17, 203, EOS]
    return tok


def text(ids):
    return " ".join(f"t{i}" for i in ids)


def dataset():
    # completions start with a space: TRL concatenates prompt + completion as strings
    return datasets.Dataset.from_list([{"prompt": text(p), "chosen": " " + text(c), "rejected": " " + text(r)}
                                       for p, c, r in PAIRS])


def lora_config():
    c = json.load(open(os.path.join(ADAPTER, "adapter_config.json")))
    assert c["r"] == 4 and c["lora_alpha"] == 8 and not c["use_rslora"] and c["lora_dropout"] == 0.0
    return LoraConfig(r=c["r"], lora_alpha=c["lora_alpha"], lora_dropout=0.0, target_modules=c["target_modules"],
                      bias="none", task_type="CAUSAL_LM")


def saved_key(name):
    """PEFT parameter name -> adapter_model.safetensors key (drop the adapter name)."""
    assert ".default." in name, name
    return name.replace(".default.", ".")


def load_adapter_into(model):
    """Copy the saved lora_ref A/B into the trainer's freshly made "default" adapter."""
    sd = load_file(os.path.join(ADAPTER, "adapter_model.safetensors"))
    res = set_peft_model_state_dict(model, sd)
    assert not res.unexpected_keys, res.unexpected_keys
    lora = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert len(lora) == len(sd) == 28, (len(lora), len(sd))
    for n, p in lora.items():
        assert torch.equal(p.detach(), sd[saved_key(n)]), n
    for n, p in model.named_parameters():
        assert p.requires_grad == (".lora_A." in n or ".lora_B." in n), n
    return lora


def common_args(tmp):
    return dict(output_dir=tmp, bf16=False, use_cpu=True, report_to="none", seed=0, per_device_train_batch_size=P,
                save_strategy="no", dataloader_num_workers=0)


class Capture:
    """Forward hook on the model TRL calls: the kwargs/args it passes and what it returns."""

    def __init__(self, module):
        self.calls = []
        self.h = module.register_forward_hook(self.hook, with_kwargs=True)

    def hook(self, mod, args, kwargs, out):
        self.calls.append((args, dict(kwargs), out))

    def close(self):
        self.h.remove()


def lora_grads(lora):
    return {"grad." + saved_key(n): p.grad.detach().clone().contiguous() for n, p in lora.items()}


def step(trainer, batch):
    """One HF Trainer training step (gradient accumulation 1, as the training loop sets it)."""
    trainer.current_gradient_accumulation_steps = 1
    trainer.model.zero_grad(set_to_none=True)
    return trainer.training_step(trainer.model, batch)


# ---------------------------------------------------------------------------- DPO

def run_dpo(loss_type, tmp):
    base = load(MODEL)
    args = DPOConfig(**common_args(tmp), loss_type=[loss_type], beta=BETA)
    assert args.max_length == 1024 and args.truncation_mode == "keep_start" and not args.precompute_ref_log_probs
    assert args.f_divergence_type == "reverse_kl" and args.ld_alpha is None and not args.use_weighting
    tr = DPOTrainer(model=base, args=args, train_dataset=dataset(), processing_class=make_tokenizer(),
                    peft_config=lora_config())
    assert isinstance(tr.model, PeftModel) and tr.ref_model is None
    assert list(tr.model.peft_config) == ["default"]  # no "ref" adapter: the reference is adapters-off
    lora = load_adapter_into(tr.model)
    ds = tr.train_dataset
    rows = [{k: ds[i][k] for k in ("prompt_ids", "chosen_ids", "rejected_ids")} for i in range(P)]
    for (p, c, r), row in zip(PAIRS, rows):  # TRL's tokenisation: BOS + prompt | completion + EOS
        assert row == {"prompt_ids": [BOS] + p, "chosen_ids": c + [EOS], "rejected_ids": r + [EOS]}, row
    batch = tr.data_collator(rows)
    cap = Capture(tr.model)
    loss = step(tr, batch)
    cap.close()
    assert len(cap.calls) == 2, len(cap.calls)  # policy (grad), then reference (no grad, adapter off)
    (_, kw_pol, out_pol), (_, kw_ref, out_ref) = cap.calls
    for k in ("input_ids", "attention_mask", "labels"):
        assert torch.equal(kw_pol[k], kw_ref[k]), k
    assert kw_pol["fused_lm_head"] and kw_ref["fused_lm_head"] and not kw_pol["use_cache"]
    assert out_pol.log_probs.requires_grad and not out_ref.log_probs.requires_grad
    m = {k: v[0] for k, v in tr._metrics["train"].items()}
    assert all(len(v) == 1 for v in tr._metrics["train"].values())
    return dict(loss=loss.detach().clone(), metrics=m, grads=lora_grads(lora), batch=batch,
                input_ids=kw_pol["input_ids"], attention_mask=kw_pol["attention_mask"], labels=kw_pol["labels"],
                pol_tok=out_pol.log_probs.detach().clone(), ref_tok=out_ref.log_probs.detach().clone(),
                lora_w={n: p.detach().clone() for n, p in lora.items()})


def check_peftmodel_path(tmp):
    """Passing PeftModel.from_pretrained(...) (no peft_config): TRL 1.16 copies the adapter into a
    frozen "ref" adapter, so policy == reference and every reward is exactly 0."""
    base = load(MODEL)
    pm = PeftModel.from_pretrained(base, ADAPTER, is_trainable=True)
    tr = DPOTrainer(model=pm, args=DPOConfig(**common_args(tmp), loss_type=["sigmoid"], beta=BETA),
                    train_dataset=dataset(), processing_class=make_tokenizer())
    assert sorted(tr.model.peft_config) == ["default", "ref"], list(tr.model.peft_config)
    ds = tr.train_dataset
    batch = tr.data_collator([{k: ds[i][k] for k in ("prompt_ids", "chosen_ids", "rejected_ids")} for i in range(P)])
    loss = step(tr, batch)
    m = tr._metrics["train"]
    assert m["rewards/chosen"][0] == 0.0 and m["rewards/rejected"][0] == 0.0 and m["rewards/accuracies"][0] == 0.0
    assert abs(loss.item() - math.log(2)) < 1e-6, loss.item()
    return loss.item()


# ---------------------------------------------------------------------------- ORPO

def run_orpo(tmp):
    base = load(MODEL)
    tok = make_tokenizer()
    tok.pad_token = tok.eos_token  # DPO's fallback; ORPO's collator raises without a pad token
    args = ORPOConfig(**common_args(tmp), beta=BETA)
    assert args.max_length == 1024 and args.max_completion_length is None
    tr = ORPOTrainer(model=base, args=args, train_dataset=dataset(), processing_class=tok, peft_config=lora_config())
    assert isinstance(tr.model, PeftModel) and tr.padding_value == PAD and not tr.is_encoder_decoder
    lora = load_adapter_into(tr.model)
    ds = tr.train_dataset
    keys = [k for k in ds.column_names if k.endswith(("_input_ids", "_attention_mask", "_labels"))]
    rows = [{k: ds[i][k] for k in keys} for i in range(P)]
    for (p, c, r), row in zip(PAIRS, rows):
        assert row["prompt_input_ids"] == [BOS] + p
        assert row["chosen_input_ids"] == [BOS] + p + c + [EOS]
        assert row["rejected_input_ids"] == [BOS] + p + r + [EOS]
        assert row["chosen_labels"] == [-100] * (1 + len(p)) + c + [EOS]
        assert row["rejected_labels"] == [-100] * (1 + len(p)) + r + [EOS]
    batch = tr.data_collator(rows)
    cap = Capture(tr.model)
    loss = step(tr, batch)
    cap.close()
    assert len(cap.calls) == 1
    args_, kw, out = cap.calls[0]
    cat = ORPOTrainer.concatenated_inputs(batch, padding_value=tr.padding_value)
    assert torch.equal(args_[0], cat["concatenated_input_ids"])
    assert torch.equal(kw["attention_mask"], cat["concatenated_attention_mask"])
    m = {k: torch.tensor(v).mean().item() for k, v in tr._stored_metrics["train"].items()}
    assert all(len(v) == 1 for v in tr._stored_metrics["train"].values())
    # what TRL scores, recomputed from the captured logits with TRL's own helpers
    logits = out.logits.detach()
    avg = ORPOTrainer.get_batch_logps(logits, cat["concatenated_labels"], average_log_prob=True)
    nll_labels = torch.where(cat["concatenated_attention_mask"] == 1, cat["concatenated_input_ids"], -100)[:P]
    nll = F.cross_entropy(logits[:P, :-1].reshape(-1, logits.size(-1)), nll_labels[:, 1:].reshape(-1))
    return dict(loss=loss.detach().clone(), metrics=m, grads=lora_grads(lora), input_ids=args_[0],
                attention_mask=kw["attention_mask"], labels=cat["concatenated_labels"], nll_labels=nll_labels,
                avg_logps=avg, nll=nll)


# ---------------------------------------------------------------------------- float64 cross-check

def log1mexp(x):
    return torch.where(x < -math.log(2), torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def f64_reference(ids, attn, labels, nll_labels):
    """Independent float64 computation of every recorded quantity: a float64 PEFT model with the
    same adapter, full logits + log_softmax (not TRL's fused head) and the loss formulas written out."""
    base = load(MODEL, dtype=torch.float64)
    pm = PeftModel.from_pretrained(base, ADAPTER, is_trainable=True).double()
    pm.train()
    lora = {n: p for n, p in pm.named_parameters() if p.requires_grad}
    assert len(lora) == 28 and all(p.dtype == torch.float64 for p in lora.values())
    tgt = labels[:, 1:]
    mask = (tgt != -100).double()
    ncomp = mask.sum(1)

    def token_logps(logits):
        lp = torch.log_softmax(logits[:, :-1], -1).gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return lp * mask

    with torch.no_grad(), pm.disable_adapter():
        ref_tok = token_logps(pm(input_ids=ids, attention_mask=attn).logits)
    ref = ref_tok.sum(1)
    res = {"ref_tok": ref_tok, "ref": ref}
    for lt in DPO_LOSSES + ["orpo"]:
        pm.zero_grad(set_to_none=True)
        logits = pm(input_ids=ids, attention_mask=attn).logits
        tok = token_logps(logits)
        pol = tok.sum(1)
        if lt == "orpo":
            avg = pol / ncomp
            pc, pr = avg[:P], avg[P:]
            log_odds = (pc - pr) - (log1mexp(pc) - log1mexp(pr))
            nll = F.cross_entropy(logits[:P, :-1].reshape(-1, logits.size(-1)), nll_labels[:, 1:].reshape(-1))
            loss = nll - (BETA * F.logsigmoid(log_odds)).mean()
            res["orpo_avg"], res["orpo_nll"] = avg.detach(), nll.detach()
        else:
            z = (pol[:P] - ref[:P]) - (pol[P:] - ref[P:])
            if lt == "sigmoid":
                loss = (-F.logsigmoid(BETA * z)).mean()
            elif lt == "hinge":
                loss = torch.relu(1 - BETA * z).mean()
            else:
                d = (pol[:P] - ref[:P]) / ncomp[:P] - (pol[P:] - ref[P:]) / ncomp[P:]
                loss = ((d - 1 / (2 * BETA)) ** 2).mean()
            res["pol_tok"], res["pol"] = tok.detach(), pol.detach()
        loss.backward()
        res[lt] = (loss.item(), {"grad." + saved_key(n): p.grad.detach().clone() for n, p in lora.items()})
    return res


def dpo_loss_from_logps(lt, pc, pr, rc, rr, nc, nr):
    """The TRL 1.16 formulas (checked against TRL in make_pref_fixture.py), float64."""
    z = [(a - b) - (c - d) for a, b, c, d in zip(pc, rc, pr, rr)]
    if lt == "sigmoid":
        ls = [math.log1p(math.exp(-BETA * x)) for x in z]
    elif lt == "hinge":
        ls = [max(0.0, 1 - BETA * x) for x in z]
    else:
        ls = [((a - b) / n - (c - d) / m - 1 / (2 * BETA)) ** 2 for a, b, c, d, n, m in zip(pc, rc, pr, rr, nc, nr)]
    return sum(ls) / len(ls), z, ls


def grad_err(g32, g64):
    """max over tensors of max|g32 - g64| / max|g64| (per tensor), and the same globally."""
    per = max((g32[k].double() - g64[k]).abs().max().item() / g64[k].abs().max().item() for k in g64)
    gmax = max(g.abs().max().item() for g in g64.values())
    glob = max((g32[k].double() - g64[k]).abs().max().item() for k in g64) / gmax
    return per, glob


# ---------------------------------------------------------------------------- main

def dump(obj, ind=0):
    """JSON, indented, each list of numbers on one line, floats in Python's shortest round-trip form."""
    pad, sub = " " * ind, " " * (ind + 2)
    if isinstance(obj, dict):
        return "{\n" + ",\n".join(f"{sub}{json.dumps(k)}: {dump(v, ind + 2)}" for k, v in obj.items()) + "\n" + pad + "}"
    if isinstance(obj, list) and any(isinstance(v, (dict, list, str)) for v in obj):
        return "[\n" + ",\n".join(sub + dump(v, ind + 2) for v in obj) + "\n" + pad + "]"
    if isinstance(obj, list):
        return "[" + ", ".join(dump(v) for v in obj) + "]"
    assert not isinstance(obj, float) or math.isfinite(obj), obj
    return json.dumps(obj)


def build():
    with tempfile.TemporaryDirectory() as tmp:
        dpo = {lt: run_dpo(lt, tmp) for lt in DPO_LOSSES}
        orpo = run_orpo(tmp)
        peft_path_loss = check_peftmodel_path(tmp)
    return dpo, orpo, peft_path_loss


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=OUT)
    a = ap.parse_args()
    assert trl.__version__ == "1.16.0", trl.__version__
    assert transformers.__version__ == "5.23.0" and peft.__version__ == "0.21.2", (transformers.__version__,
                                                                                    peft.__version__)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.utils.logging.disable_progress_bar()
    logging.getLogger("trl").setLevel(logging.ERROR)

    dpo, orpo, peft_path_loss = build()
    dpo2, orpo2, _ = build()
    for lt in DPO_LOSSES:
        a1, a2 = dpo[lt], dpo2[lt]
        assert torch.equal(a1["loss"], a2["loss"]) and a1["metrics"] == a2["metrics"], lt
        assert all(torch.equal(a1["grads"][k], a2["grads"][k]) for k in a1["grads"]), lt
    assert torch.equal(orpo["loss"], orpo2["loss"]) and orpo["metrics"] == orpo2["metrics"]
    assert all(torch.equal(orpo["grads"][k], orpo2["grads"][k]) for k in orpo["grads"])

    # ---- rows: identical for all DPO loss types, and ORPO feeds the very same rows
    d0 = dpo["sigmoid"]
    ids, attn, labels = d0["input_ids"], d0["attention_mask"], d0["labels"]
    cmask = d0["batch"]["completion_mask"]
    for lt in DPO_LOSSES:
        for k in ("input_ids", "attention_mask", "labels", "pol_tok", "ref_tok"):
            assert torch.equal(dpo[lt][k], d0[k]), (lt, k)
    assert torch.equal(orpo["input_ids"], ids) and torch.equal(orpo["attention_mask"], attn)
    assert torch.equal(orpo["labels"], labels)
    T = ids.size(1)
    seqs = [[BOS] + p + c + [EOS] for p, c, _ in PAIRS] + [[BOS] + p + r + [EOS] for p, _, r in PAIRS]
    plen = [1 + len(p) for p, _, _ in PAIRS] * 2
    assert T == max(map(len, seqs))
    for b, s in enumerate(seqs):  # the documented layout, position by position
        L = len(s)
        assert ids[b].tolist() == s + [PAD] * (T - L), b
        assert attn[b].tolist() == [1] * L + [0] * (T - L), b
        assert cmask[b].tolist() == [0] * plen[b] + [1] * (L - plen[b]) + [0] * (T - L), b
        assert labels[b].tolist() == [-100] * plen[b] + s[plen[b]:] + [-100] * (T - L), b
        assert orpo["nll_labels"][b % P].tolist() == seqs[b % P] + [-100] * (T - len(seqs[b % P]))
    ncomp = cmask.sum(1)
    assert torch.equal(ncomp, (labels[:, 1:] != -100).sum(1))  # every completion token is scored

    # ---- log-probs: TRL's per-token log_probs are 0 off the completion; sums are what the loss uses
    pol_tok, ref_tok = d0["pol_tok"], d0["ref_tok"]
    assert pol_tok.shape == (2 * P, T - 1)
    assert torch.all(pol_tok[labels[:, 1:] == -100] == 0) and torch.all(ref_tok[labels[:, 1:] == -100] == 0)
    pol, ref = pol_tok.sum(1), ref_tok.sum(1)
    m = d0["metrics"]
    assert abs(m["logps/chosen"] - pol[:P].mean().item()) < 1e-6 and abs(m["logps/rejected"] - pol[P:].mean().item()) < 1e-6
    pc, pr, rc, rr = pol[:P].tolist(), pol[P:].tolist(), ref[:P].tolist(), ref[P:].tolist()
    nc, nr = ncomp[:P].tolist(), ncomp[P:].tolist()

    # ---- self-consistency: every trainer loss from the recorded float32 log-probs
    info = {}
    for lt in DPO_LOSSES:
        L, z, ls = dpo_loss_from_logps(lt, pc, pr, rc, rr, nc, nr)
        got = dpo[lt]["loss"].item()
        assert abs(L - got) <= 1e-6 * max(1.0, abs(L)), (lt, L, got)
        mm = dpo[lt]["metrics"]
        cr = [BETA * (x - y) for x, y in zip(pc, rc)]
        rj = [BETA * (x - y) for x, y in zip(pr, rr)]
        for k, v in (("rewards/chosen", sum(cr) / P), ("rewards/rejected", sum(rj) / P),
                     ("rewards/margins", (sum(cr) - sum(rj)) / P),
                     ("rewards/accuracies", sum(x > y for x, y in zip(cr, rj)) / P)):
            assert abs(mm[k] - v) < 1e-6, (lt, k, mm[k], v)
        info[lt] = (L, z, ls, cr, rj)
    z = info["sigmoid"][1]
    assert all(abs(x) > 0.05 for x in z), z  # accuracies are not decided by rounding
    assert all(abs(1 - BETA * x) > 0.05 for x in z), z  # no pair sits on the hinge's kink
    assert any(x > 0 for x in z) and any(x < 0 for x in z), z  # a mixed batch
    oavg = orpo["avg_logps"]
    assert torch.allclose(oavg, torch.tensor([x / n for x, n in zip(pc + pr, nc + nr)]), rtol=1e-5, atol=0)
    opc, opr = oavg[:P].double(), oavg[P:].double()
    lo = (opc - opr) - (log1mexp(opc) - log1mexp(opr))
    o_loss = orpo["nll"].item() - (BETA * F.logsigmoid(lo)).mean().item()
    assert abs(o_loss - orpo["loss"].item()) < 1e-6, (o_loss, orpo["loss"].item())
    om = orpo["metrics"]
    assert abs(om["nll_loss"] - orpo["nll"].item()) < 1e-6
    assert abs(om["log_odds_chosen"] - lo.mean().item()) < 1e-5 and abs(om["log_odds_ratio"] - F.logsigmoid(lo).mean().item()) < 1e-6
    assert abs(om["logps/chosen"] - opc.mean().item()) < 1e-6 and abs(om["logps/rejected"] - opr.mean().item()) < 1e-6

    # ---- float64 cross-check
    f64 = f64_reference(ids, attn, labels, orpo["nll_labels"])
    diffs = {"pol_logps_abs": (pol.double() - f64["pol"]).abs().max().item(),
             "ref_logps_abs": (ref.double() - f64["ref"]).abs().max().item(),
             "pol_token_logps_abs": (pol_tok.double() - f64["pol_tok"]).abs().max().item(),
             "ref_token_logps_abs": (ref_tok.double() - f64["ref_tok"]).abs().max().item(),
             "orpo_avg_logps_abs": (oavg.double() - f64["orpo_avg"]).abs().max().item(),
             "orpo_nll_abs": abs(orpo["nll"].item() - f64["orpo_nll"].item())}
    for lt in DPO_LOSSES + ["orpo"]:
        r = orpo if lt == "orpo" else dpo[lt]
        L64, g64 = f64[lt]
        per, glob = grad_err(r["grads"], g64)
        diffs[lt] = {"loss_abs": abs(r["loss"].item() - L64), "loss_rel": abs(r["loss"].item() - L64) / abs(L64),
                     "grad_rel_per_tensor_max": per, "grad_rel_global": glob}
        assert diffs[lt]["loss_rel"] < 1e-5 and per < 1e-3 and glob < 1e-4, (lt, diffs[lt])
    assert max(v for k, v in diffs.items() if not isinstance(v, dict)) < 1e-4, diffs

    # ---- output
    os.makedirs(a.out, exist_ok=True)
    i32 = lambda t: t.to(torch.int32).contiguous()  # noqa: E731
    f32 = lambda t: t.to(torch.float32).reshape(-1).contiguous() if t.dim() == 0 else t.to(torch.float32).contiguous()  # noqa: E731
    tensors = {
        "input_ids": i32(ids), "attention_mask": i32(attn), "completion_mask": i32(cmask), "labels": i32(labels),
        "orpo.nll_labels": i32(orpo["nll_labels"]),
        "dpo.policy_logps": f32(pol), "dpo.ref_logps": f32(ref),
        "dpo.policy_token_logps": f32(pol_tok), "dpo.ref_token_logps": f32(ref_tok),
        "orpo.policy_logps": f32(oavg), "orpo.nll_loss": f32(orpo["nll"].reshape(1)),
        "orpo.loss": f32(orpo["loss"].reshape(1)),
    }
    for lt in DPO_LOSSES:
        tensors[f"dpo_{lt}.loss"] = f32(dpo[lt]["loss"].reshape(1))
        for k, g in dpo[lt]["grads"].items():
            tensors[f"dpo_{lt}.{k}"] = f32(g)
    for k, g in orpo["grads"].items():
        tensors[f"orpo.{k}"] = f32(g)
    for k, g in tensors.items():
        if ".grad." in k:
            assert g.abs().max().item() > 0, k
    st_path = os.path.join(a.out, "model_grads.safetensors")
    save_file(dict(sorted(tensors.items())), st_path, metadata={"source": (
        f"tests/ref/make_pref_model_fixture.py: trl {trl.__version__} DPOTrainer/ORPOTrainer.training_step, "
        f"torch {torch.__version__.split('+')[0]}, transformers {transformers.__version__}, peft {peft.__version__}, "
        "float32 CPU; see tests/ref/README_pref_model.md")})

    doc = {
        "source": (f"trl {trl.__version__}: DPOTrainer (peft_config, ref_model=None -> reference = adapter disabled) "
                   "and experimental.orpo.ORPOTrainer, one Trainer.training_step each on the same 3 pairs; "
                   f"torch {torch.__version__.split('+')[0]}, transformers {transformers.__version__}, "
                   f"peft {peft.__version__}; float32 (bf16=False), CPU. Made by tests/ref/make_pref_model_fixture.py."),
        "model": "tests/fixtures/models/llama_f32",
        "adapter": "tests/fixtures/models/llama_f32/lora_ref (r 4, alpha 8, scaling 2, all-linear)",
        "beta": BETA,
        "bos_id": BOS, "eos_id": EOS, "pad_id": PAD,
        "pairs": [{"prompt": p, "chosen": c, "rejected": r} for p, c, r in PAIRS],
        "n_pairs": P,
        "seq_len": T,
        "completion_tokens": ncomp.tolist(),
        "dpo": {lt: {"loss": dpo[lt]["loss"].item(), "loss_from_logps_f64": info[lt][0],
                     "losses_per_pair_from_logps_f64": info[lt][2],
                     "metrics": {k: dpo[lt]["metrics"][k] for k in DPO_METRIC_KEYS}} for lt in DPO_LOSSES},
        "dpo_z": z,
        "dpo_rewards_chosen": info["sigmoid"][3],
        "dpo_rewards_rejected": info["sigmoid"][4],
        "orpo": {"loss": orpo["loss"].item(), "loss_from_logps_f64": o_loss, "log_odds": lo.tolist(),
                 "metrics": {k: om[k] for k in ORPO_METRIC_KEYS}},
        "f32_vs_f64": diffs,
        "peftmodel_path_sigmoid_loss": peft_path_loss,
    }
    js_path = os.path.join(a.out, "model_grads.json")
    with open(js_path, "w") as f:
        f.write(dump(doc) + "\n")
    size = os.path.getsize(st_path) + os.path.getsize(js_path)
    assert size < 1 << 20, size

    log(f"rows: T={T}, completion tokens {ncomp.tolist()}, z = {[round(x, 4) for x in z]}")
    for lt in DPO_LOSSES:
        log(f"dpo {lt:8s} loss {dpo[lt]['loss'].item():.7f}  f64 {diffs[lt]}")
    log(f"orpo     loss {orpo['loss'].item():.7f} nll {orpo['nll'].item():.7f}  f64 {diffs['orpo']}")
    log("logps f32 vs f64: " + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items() if not isinstance(v, dict)))
    log(f"PeftModel path (ref = copy of the adapter): sigmoid loss {peft_path_loss} (log 2 = {math.log(2)})")
    log(f"wrote {st_path} ({os.path.getsize(st_path)} B), {js_path} ({os.path.getsize(js_path)} B)")


if __name__ == "__main__":
    main()
