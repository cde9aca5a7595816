#!/usr/bin/env python3
"""Reference values for the DPO-family and ORPO losses, computed by TRL's own code.

Writes tests/fixtures/pref/losses.json: per-pair losses, the mean loss, the implicit rewards,
the gradient of the mean loss with respect to every input log-prob (torch autograd, float64)
and the values TRL's trainers log (rewards/chosen, rewards/rejected, rewards/accuracies,
rewards/margins, logps/chosen, logps/rejected), for fixed float64 per-sequence log-probs.

Nothing here re-implements a loss. TRL's methods are called unbound on small stand-in objects
that carry only the attributes those methods read:

  trl==1.16.0 (pinned in requirements.txt)
    DPOTrainer._compute_loss(stub, model, inputs, False): the whole training-step loss and its
      metric logging. 1.16 has no separate dpo_loss; the loss is inline in _compute_loss. The
      "model" is a stand-in whose outputs.log_probs puts each sequence's log-prob on its first
      completion token (zeros elsewhere), so TRL's sum over tokens returns it exactly; the
      reference log-probs go in as precomputed (precompute_ref_logps=True). Per-pair losses come
      from batches of one pair (the method returns only the mean); per-pair rewards from what
      _compute_loss hands to accelerator.gather.
    experimental.orpo.ORPOTrainer.get_batch_loss_metrics(stub, None, batch), which calls
      ORPOTrainer.odds_ratio_loss; concatenated_forward is stubbed to return the given average
      per-token log-probs and an NLL of 0, so the returned loss is the odds-ratio term alone.
  trl==0.26.2 (the last release with DPOTrainer.dpo_loss; 1.x dropped label_smoothing for
    "sigmoid" and the reference_free option), for the cases 1.16 cannot express:
    DPOTrainer.get_batch_loss_metrics(stub, None, batch), which calls DPOTrainer.dpo_loss.
    It also cross-checks the 1.16 results where both versions apply.

Usage:
  pip install -r tests/ref/requirements.txt
  pip install --no-deps --target /tmp/trl-0.26.2 trl==0.26.2
  python3 tests/ref/make_pref_fixture.py --legacy-trl /tmp/trl-0.26.2 \
      --out tests/fixtures/pref/losses.json
"""
import argparse
import contextlib
import json
import math
import sys
import warnings
from collections import defaultdict
from types import SimpleNamespace

import torch

torch.set_default_dtype(torch.float64)
DEV = torch.device("cpu")

# One batch of 4 pairs for every DPO case: summed per-sequence log-probs (all exactly
# representable). z = (pc - rc) - (pr - rr); reference-free z = pc - pr.
#   pair 0: z = +1.25 (moderate, positive)          ref-free z = +2.75
#   pair 1: z = -2.5 (moderate, negative)           ref-free z = -8960 (huge, negative)
#   pair 2: z = +8000 (huge: beta z = 800 overflows a naive exp; hinge region beta z > 1)
#   pair 3: z = 0 with equal rewards (a tie: rewards/accuracies counts it as 0)
DPO_IN = {
    "pc": [-12.5, -9000.0, -5.0, -8.0],
    "pr": [-15.25, -40.0, -8010.0, -10.0],
    "rc": [-13.0, -8980.0, -30.0, -9.0],
    "rr": [-14.5, -22.5, -35.0, -11.0],
    # completion lengths in tokens; only IPO reads them (TRL divides each log-ratio by them)
    "n_chosen": [5, 600, 10, 4],
    "n_rejected": [6, 8, 2000, 4],
}
# ORPO inputs are average per-token log-probs (ORPOTrainer's concatenated_forward uses
# average_log_prob=True); they must be < 0.
#   pair 0: positive margin; pair 1: negative; pair 2: log-odds about -907.6 (a naive
#   log(sigmoid) overflows), chosen near 0 rejected -> exercises log1mexp's expm1 branch;
#   pair 3: a tie.
ORPO_IN = {"pc": [-0.8, -1.5, -900.0, -2.0], "pr": [-1.1, -0.9, -0.0005, -2.0]}

METRIC_KEYS = ["rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
               "logps/chosen", "logps/rejected"]


class Accel:
    """accelerate.Accelerator stand-in (one process): gathers are the identity; gather (not
    gather_for_metrics) records its argument so the per-pair rewards can be read back."""

    device = DEV

    def __init__(self):
        self.gathered = []

    def gather(self, t):
        self.gathered.append(t)
        return t

    def gather_for_metrics(self, t):
        return t


# ---------------------------------------------------------------------------- TRL 1.16.0

def import_trl_current():
    import trl
    from trl.trainer.dpo_trainer import DPOTrainer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from trl.experimental.orpo.orpo_trainer import ORPOTrainer
    return trl.__version__, DPOTrainer, ORPOTrainer


class FakeLM:
    """What DPOTrainer._compute_loss reads from model(...): log_probs [2B, T-1] (per token, 0 off
    the completion), entropy, mean_logits, is_top1 (only logged)."""

    def __init__(self, logps, shift_mask):
        self.logps, self.shift_mask = logps, shift_mask

    def __call__(self, **kw):
        first = (self.shift_mask.cumsum(1) == 1) & self.shift_mask.bool()
        lp = torch.where(first, self.logps[:, None], torch.zeros((), dtype=self.logps.dtype))
        z = torch.zeros(lp.shape)
        return SimpleNamespace(log_probs=lp, entropy=z, mean_logits=z, is_top1=z.bool())


def dpo_current(DPOTrainer, loss_type, beta, label_smoothing, idx):
    """Run DPOTrainer._compute_loss on pairs idx; returns (mean loss, leaves, stub, accel)."""
    leaves = {k: torch.tensor([DPO_IN[k][i] for i in idx], requires_grad=True) for k in ("pc", "pr", "rc", "rr")}
    nc, nr = [DPO_IN["n_chosen"][i] for i in idx], [DPO_IN["n_rejected"][i] for i in idx]
    lens = nc + nr  # batch is [chosen..., rejected...]
    T = 1 + max(lens)  # position 0: a prompt token
    mask = torch.zeros(len(lens), T, dtype=torch.long)
    for r, n in enumerate(lens):
        mask[r, 1:1 + n] = 1
    inputs = {
        "input_ids": torch.zeros(len(lens), T, dtype=torch.long),
        "attention_mask": torch.ones(len(lens), T, dtype=torch.long),
        "completion_mask": mask,
        "ref_chosen_logps": leaves["rc"],
        "ref_rejected_logps": leaves["rr"],
    }
    accel = Accel()
    stub = SimpleNamespace(
        model=SimpleNamespace(training=True), accelerator=accel, aux_loss_enabled=False,
        precompute_ref_logps=True, ld_alpha=None, f_divergence_type="reverse_kl",
        loss_types=[loss_type], loss_weights=[1.0], beta=beta, label_smoothing=label_smoothing,
        use_weighting=False, _metrics=defaultdict(lambda: defaultdict(list)), _total_train_tokens=0,
        _tp_size=1, args=SimpleNamespace(),
    )
    model = FakeLM(torch.cat([leaves["pc"], leaves["pr"]]), mask[:, 1:])
    loss = DPOTrainer._compute_loss(stub, model, inputs, False)
    return loss, leaves, stub, accel


def case_dpo_current(DPOTrainer, name, loss_type, beta):
    n = len(DPO_IN["pc"])
    losses = [dpo_current(DPOTrainer, loss_type, beta, 0.0, [i])[0].item() for i in range(n)]
    loss, leaves, stub, accel = dpo_current(DPOTrainer, loss_type, beta, 0.0, list(range(n)))
    loss.backward()
    m = stub._metrics["train"]
    # _compute_loss gathers chosen_rewards, then rejected_rewards (then accuracies, margins, logps)
    chosen_rewards, rejected_rewards = accel.gathered[0], accel.gathered[1]
    assert math.isclose(sum(losses) / n, loss.item(), rel_tol=1e-14), (losses, loss.item())
    return {
        "name": name,
        "trl": "1.16.0 DPOTrainer._compute_loss",
        "config": {"loss_type": loss_type, "beta": beta, "label_smoothing": 0.0, "reference_free": False},
        "losses": losses,
        "loss": loss.item(),
        "chosen_rewards": chosen_rewards.tolist(),
        "rejected_rewards": rejected_rewards.tolist(),
        "grad": {k: leaves[k].grad.tolist() for k in ("pc", "pr", "rc", "rr")},
        "metrics": {k: m[k][0] for k in METRIC_KEYS},
    }


@contextlib.contextmanager
def float_keeps_float64():
    """ORPOTrainer.odds_ratio_loss calls .float() (float32) on its inputs; for float64
    reference values make .float() keep float64 tensors as they are, for the duration of the
    call only. The unpatched float32 run is checked against it."""
    orig = torch.Tensor.float

    def f(self, *a, **k):
        return self if self.dtype == torch.float64 else orig(self, *a, **k)

    torch.Tensor.float = f
    try:
        yield
    finally:
        torch.Tensor.float = orig


def orpo_run(ORPOTrainer, beta):
    pc = torch.tensor(ORPO_IN["pc"], requires_grad=True)
    pr = torch.tensor(ORPO_IN["pr"], requires_grad=True)
    accel = Accel()
    stub = SimpleNamespace(beta=beta, accelerator=accel, aux_loss_enabled=False)
    zero = torch.zeros(1, 1, 1)
    stub.concatenated_forward = lambda model, batch: (pc, pr, zero, zero, torch.zeros(()))
    stub.odds_ratio_loss = ORPOTrainer.odds_ratio_loss.__get__(stub)
    loss, metrics = ORPOTrainer.get_batch_loss_metrics(stub, None, {})
    return loss, metrics, pc, pr, stub


def case_orpo_current(ORPOTrainer, beta):
    with float_keeps_float64():
        loss, metrics, pc, pr, stub = orpo_run(ORPOTrainer, beta)
        losses, cr, rr, log_odds_ratio, log_odds_chosen = stub.odds_ratio_loss(pc.detach(), pr.detach())
    assert loss.dtype == torch.float64 and losses.dtype == torch.float64
    loss.backward()
    losses32, *_ = stub.odds_ratio_loss(pc.detach(), pr.detach())  # as TRL runs it: float32
    assert losses32.dtype == torch.float32
    assert torch.allclose(losses32.double(), losses, rtol=1e-6, atol=1e-9), (losses32, losses)
    return {
        "name": "orpo_beta0.1",
        "trl": "1.16.0 experimental.orpo.ORPOTrainer.get_batch_loss_metrics -> odds_ratio_loss",
        "config": {"beta": beta},
        "inputs": ORPO_IN,
        "losses": losses.tolist(),
        "loss": loss.item(),
        "chosen_rewards": cr.tolist(),
        "rejected_rewards": rr.tolist(),
        "log_odds_ratio": log_odds_ratio.item(),
        "log_odds_chosen": log_odds_chosen.item(),
        "grad": {"pc": pc.grad.tolist(), "pr": pr.grad.tolist()},
        "metrics": {k: metrics[k] for k in METRIC_KEYS + ["log_odds_ratio", "log_odds_chosen"]},
    }


# ---------------------------------------------------------------------------- TRL 0.26.2

def import_trl_legacy(path):
    """Import trl 0.26.2 from a --target directory, after 1.16's classes are taken. Its
    import_utils stores transformers 5's (available, version) tuples as flags, which are always
    truthy (it would import weave etc.); keep only the bool."""
    for k in [k for k in sys.modules if k == "trl" or k.startswith("trl.")]:
        del sys.modules[k]
    sys.path.insert(0, path)
    import trl.import_utils as iu
    for k, v in list(vars(iu).items()):
        if k.startswith("_") and k.endswith("_available") and isinstance(v, tuple):
            setattr(iu, k, v[0])
    import trl
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from trl.trainer.dpo_trainer import DPOTrainer
        from trl.trainer.dpo_config import FDivergenceType
        from trl.trainer.orpo_trainer import ORPOTrainer
    assert trl.__version__ == "0.26.2", trl.__version__
    return DPOTrainer, FDivergenceType, ORPOTrainer


def dpo_legacy(DPOTrainer, FDiv, loss_type, beta, label_smoothing, reference_free, inp):
    leaves = {k: torch.tensor(inp[k], requires_grad=True) for k in ("pc", "pr", "rc", "rr")}
    accel = Accel()
    stub = SimpleNamespace(
        accelerator=accel, args=SimpleNamespace(use_liger_kernel=False, rpo_alpha=None),
        loss_type=[loss_type], loss_weights=None, use_weighting=False, aux_loss_enabled=False,
        reference_free=reference_free, f_divergence_type=FDiv.REVERSE_KL, f_divergence_params=None,
        beta=beta, label_smoothing=label_smoothing,
    )
    z = torch.zeros(len(inp["pc"]))
    stub.concatenated_forward = lambda model, batch: {
        "chosen_logps": leaves["pc"], "rejected_logps": leaves["pr"],
        "mean_chosen_logits": z, "mean_rejected_logits": z}
    stub.dpo_loss = DPOTrainer.dpo_loss.__get__(stub)
    batch = {"ref_chosen_logps": leaves["rc"], "ref_rejected_logps": leaves["rr"]}
    loss, metrics = DPOTrainer.get_batch_loss_metrics(stub, None, batch)
    with torch.no_grad():
        losses, cr, rr = stub.dpo_loss(leaves["pc"], leaves["pr"], leaves["rc"], leaves["rr"], loss_type)
    return loss, metrics, leaves, losses, cr, rr


def case_dpo_legacy(DPOTrainer, FDiv, name, loss_type, beta, label_smoothing, reference_free):
    loss, metrics, leaves, losses, cr, rr = dpo_legacy(DPOTrainer, FDiv, loss_type, beta, label_smoothing,
                                                       reference_free, DPO_IN)
    loss.backward()
    return {
        "name": name,
        "trl": "0.26.2 DPOTrainer.get_batch_loss_metrics -> dpo_loss",
        "config": {"loss_type": loss_type, "beta": beta, "label_smoothing": label_smoothing,
                   "reference_free": reference_free},
        "losses": losses.tolist(),
        "loss": loss.item(),
        "chosen_rewards": cr.tolist(),
        "rejected_rewards": rr.tolist(),
        "grad": {k: (leaves[k].grad.tolist() if leaves[k].grad is not None else [0.0] * len(DPO_IN["pc"]))
                 for k in ("pc", "pr", "rc", "rr")},
        "metrics": {k: metrics[k] for k in METRIC_KEYS},
    }


def cross_check(DPOTrainer, FDiv, ORPOTrainer, cur):
    """Where 0.26.2 and 1.16 define the same thing, they must agree."""
    by = {c["name"]: c for c in cur}
    for name, lt in (("sigmoid_beta0.1", "sigmoid"), ("hinge_beta0.1", "hinge")):
        loss, metrics, _, losses, cr, rr = dpo_legacy(DPOTrainer, FDiv, lt, 0.1, 0.0, False, DPO_IN)
        assert torch.allclose(losses, torch.tensor(by[name]["losses"]), rtol=1e-13, atol=0), name
        assert all(math.isclose(metrics[k], by[name]["metrics"][k], rel_tol=1e-13) for k in METRIC_KEYS), name
    # 0.26.2's IPO divides every log-prob by its completion length before dpo_loss
    # (concatenated_forward: all_logps / loss_mask.sum(-1)); same loss as 1.16's per-token
    # averaging of the log-ratios, different rewards/logps metrics.
    n = {"pc": "n_chosen", "rc": "n_chosen", "pr": "n_rejected", "rr": "n_rejected"}
    avg = {k: [v / c for v, c in zip(DPO_IN[k], DPO_IN[n[k]])] for k in n}
    _, _, _, losses, _, _ = dpo_legacy(DPOTrainer, FDiv, "ipo", 0.1, 0.0, False, avg)
    assert torch.allclose(losses, torch.tensor(by["ipo_beta0.1"]["losses"]), rtol=1e-12, atol=0)
    o = by["orpo_beta0.1"]
    stub = SimpleNamespace(beta=0.1, accelerator=Accel())
    with float_keeps_float64():
        losses, *_ = ORPOTrainer.odds_ratio_loss(stub, torch.tensor(o["inputs"]["pc"]), torch.tensor(o["inputs"]["pr"]))
    assert torch.allclose(losses, torch.tensor(o["losses"]), rtol=1e-13, atol=0)


# ---------------------------------------------------------------------------- output

def dump(obj, ind=0):
    """JSON, indented, with each list of numbers on one line; floats as Python's repr (shortest
    round-trip form)."""
    pad, sub = " " * ind, " " * (ind + 2)
    if isinstance(obj, dict):
        items = [f"{sub}{json.dumps(k)}: {dump(v, ind + 2)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list) and any(isinstance(v, (dict, str)) for v in obj):
        return "[\n" + ",\n".join(sub + dump(v, ind + 2) for v in obj) + "\n" + pad + "]"
    if isinstance(obj, list):
        return "[" + ", ".join(dump(v) for v in obj) + "]"
    if isinstance(obj, float):
        assert math.isfinite(obj), obj
    return json.dumps(obj)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/fixtures/pref/losses.json")
    ap.add_argument("--legacy-trl", default="/tmp/trl-0.26.2",
                    help="directory holding trl 0.26.2 (pip install --no-deps --target DIR trl==0.26.2)")
    a = ap.parse_args()

    version, DPOCur, ORPOCur = import_trl_current()
    assert version == "1.16.0", f"fixture is pinned to trl 1.16.0, found {version}"
    cur = [case_dpo_current(DPOCur, "sigmoid_beta0.1", "sigmoid", 0.1),
           case_dpo_current(DPOCur, "hinge_beta0.1", "hinge", 0.1),
           case_dpo_current(DPOCur, "ipo_beta0.1", "ipo", 0.1),
           case_orpo_current(ORPOCur, 0.1)]
    DPOOld, FDiv, ORPOOld = import_trl_legacy(a.legacy_trl)
    old = [case_dpo_legacy(DPOOld, FDiv, "sigmoid_ls0.2_beta0.1", "sigmoid", 0.1, 0.2, False),
           case_dpo_legacy(DPOOld, FDiv, "sigmoid_reffree_beta0.5", "sigmoid", 0.5, 0.0, True)]
    cross_check(DPOOld, FDiv, ORPOOld, cur)
    by = {c["name"]: c for c in cur + old}
    order = ["sigmoid_beta0.1", "sigmoid_ls0.2_beta0.1", "hinge_beta0.1", "ipo_beta0.1",
             "sigmoid_reffree_beta0.5", "orpo_beta0.1"]

    doc = {
        "source": ("TRL 1.16.0: trl.trainer.dpo_trainer.DPOTrainer._compute_loss (sigmoid, hinge, ipo) and "
                   "trl.experimental.orpo.orpo_trainer.ORPOTrainer.get_batch_loss_metrics -> odds_ratio_loss (orpo); "
                   "TRL 0.26.2: trl.trainer.dpo_trainer.DPOTrainer.get_batch_loss_metrics -> dpo_loss (sigmoid with "
                   "label_smoothing, reference_free: both gone from 1.x). Called unbound on stand-in objects, float64, "
                   "by tests/ref/make_pref_fixture.py; torch " + torch.__version__.split("+")[0] + "."),
        "notes": [
            "pc/pr: policy summed log-probs of chosen/rejected; rc/rr: reference. z = (pc - rc) - (pr - rr).",
            "losses: per pair; loss: their mean, what the trainer minimises; grad: d loss / d input (float64 autograd).",
            "metrics: the trainer's logged values, means over the 4 pairs; rewards/accuracies is "
            "(chosen_rewards > rejected_rewards).float().mean(), so the tie in pair 3 counts 0.",
            "ipo (1.16): z uses each log-ratio divided by its completion length: "
            "(pc - rc)/n_chosen - (pr - rr)/n_rejected; rewards and logps metrics stay unnormalised.",
            "sigmoid_reffree (0.26.2): z = pc - pr, but the rewards still subtract the reference: beta (pc - rc); "
            "grad wrt rc, rr is 0.",
            "orpo: inputs are average per-token log-probs; losses = beta logsigmoid(log_odds) (a reward, not a loss); "
            "loss = -mean(losses), the odds-ratio term of ORPO's loss (the trainer adds the chosen NLL); "
            "rewards = beta * logps; log_odds_ratio = mean(logsigmoid(log_odds)), log_odds_chosen = mean(log_odds). "
            "TRL runs it in float32 (.float()); values here are float64, agreeing with the float32 run to 1e-6.",
        ],
        "dpo_inputs": DPO_IN,
        "cases": [by[k] for k in order],
    }
    import os
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        f.write(dump(doc) + "\n")
    print(f"wrote {a.out} ({os.path.getsize(a.out)} bytes)")


if __name__ == "__main__":
    main()
