#!/usr/bin/env python3
"""Reference values for LargeForge's knowledge-distillation loss and feature-distillation MSE.

Writes tests/fixtures/kd/kd.json. Each case gives the inputs, the per-row CE and KL, the loss and
d loss / d S, all from float64 torch autograd on CPU. The feature cases give the MSE and its
gradients with respect to the student hidden states and the projection. The definition is in
tests/ref/README_kd.md and in the JSON's "definition".

Every input is a float32 value, drawn with torch.randn in float32 and upcast to float64 for the
math. S, Hs, Ht and W are also rounded to multiples of 2^-10, which float32 holds exactly and which
keeps the JSON short. The teacher logits Z are not rounded: on a grid, rows get ties, and tied
logits make the top-k ids ambiguous. The teacher's stored top-k log-probs are rounded to float32,
as an offline pass would store them. The sparse cases' reference
values are computed from those rounded log-probs, the same bits a C test reads.

The script asserts, without writing any of it to the JSON:
  - mean CE == torch.nn.functional.cross_entropy(S, y, ignore_index=-100);
  - for k = V, mean KL == F.kl_div(log_softmax(S/T), log_softmax(Z/T), log_target=True,
    reduction="batchmean") over the scored rows, and == trl's
    GKDTrainer.generalized_jsd_loss(beta=0, temperature=T) when trl is installed (it is optional);
  - d loss / d S == [alpha (softmax(S) - onehot(y)) + (1 - alpha) T (q - p)] / n_scored (the closed
    form that README_kd.md gives for a C backward);
  - feat == F.mse_loss(nn.Linear(Cs, Ct, bias=False)(Hs), Ht) over the unmasked rows, and the
    closed-form feature gradients.
It also writes a "checks" section. The first check is that exp(log_softmax(Z)/T) renormalised
over K equals softmax(Z/T) restricted to K. The second is that the offline top-k form computed
from float64 log-probs equals the online form computed from Z, both to 1e-12.

Usage (torch only; a few seconds on CPU; the output is byte-identical from run to run):
  pip install torch==2.15.0        # or: pip install -r tests/ref/requirements.txt
  python3 tests/ref/make_kd_fixture.py --out tests/fixtures/kd/kd.json
"""
import argparse
import json
import math
import os

import torch
import torch.nn.functional as F

torch.set_num_threads(1)
F64 = torch.float64
N, V = 7, 40
UNSCORED = (1, 5)        # rows with label -100
HUGE_S_ROW = 3           # student row with logits +90 / -90 (exp(90) overflows float32)
HUGE_Z_ROW = 4           # teacher row with one logit 40 (a near one-hot teacher)
GRID = 2.0 ** 10         # inputs are multiples of 1/GRID: exact in float32, short in JSON
TOL = 1e-12

# (name, alpha, T, k); k == V: the full teacher softmax from Z; k < V: the stored top-k
KD_CASES = [
    ("a0.5_T2_full", 0.5, 2.0, V),
    ("a0.5_T2_top5", 0.5, 2.0, 5),
    ("a0_T1_full", 0.0, 1.0, V),
    ("a1_T3_full", 1.0, 3.0, V),
    ("a0.3_T4_top8", 0.3, 4.0, 8),
    ("a0.5_T2_top1", 0.5, 2.0, 1),
]
# (name, Cs, Ct, projected); the masked row is row 2
FEAT_CASES = [("proj_Cs6_Ct10", 6, 10, True), ("noproj_C6", 6, 6, False)]
FEAT_MASKED_ROW = 2

DEFINITION = [
    "Rows i = 0..N-1: student logits S[i, V], label y[i] (-100: the row is not scored), teacher logits Z[i, V] "
    "or, in the top-k form, ids K_i (k ids by descending teacher logit) and lp_i = log_softmax(Z_i) at those ids "
    "(temperature 1, rounded to float32 as stored).",
    "Teacher: p_i(v) = exp(lp_i(v) / T) / sum_{u in K_i} exp(lp_i(u) / T) for v in K_i; k = V: p_i = softmax(Z_i / T).",
    "Student: log q_i = log_softmax(S_i / T) over the full vocabulary.",
    "KL_i = sum_{v in K_i} p_i(v) (log p_i(v) - log q_i(v)).",
    "CE_i = -log_softmax(S_i)[y_i] (temperature 1).",
    "loss = alpha * mean_{scored i} CE_i + (1 - alpha) * T^2 * mean_{scored i} KL_i; rows with y = -100 take no loss.",
    "feat = sum_i m_i ||H_s[i] W^T - H_t[i]||^2 / (Ct * sum_i m_i); W is [Ct, Cs] (nn.Linear(Cs, Ct).weight); "
    "no W: H_s[i] - H_t[i] (Cs == Ct).",
]


def grid_randn(g, shape, scale, grid=GRID):
    """float32 randn * scale, rounded to multiples of 1/grid (still float32, exactly), as float64;
    grid None: not rounded (float32 randn * scale, rounded to float32)."""
    x = torch.randn(shape, generator=g, dtype=torch.float32) * scale
    return (x if grid is None else torch.round(x * grid) / grid).to(F64)


def kd_inputs(seed):
    g = torch.Generator().manual_seed(seed)
    S = grid_randn(g, (N, V), 2.5)
    Z = grid_randn(g, (N, V), 3.0, None)  # off the grid: a grid makes ties
    y = torch.randint(0, V, (N,), generator=g)
    for r in UNSCORED:
        y[r] = -100
    big = (int(y[HUGE_S_ROW]) + 7) % V      # never the label: CE of that row is about 90
    S[HUGE_S_ROW, big] = 90.0
    S[HUGE_S_ROW, (big + 13) % V] = -90.0
    Z[HUGE_Z_ROW, int(torch.randint(0, V, (1,), generator=g))] = 40.0
    for i in range(N):  # distinct teacher logits: the top-k ids are unique
        assert len(set(Z[i].tolist())) == V, f"seed {seed}: tie in Z row {i}"
    return S, Z, y


def topk(Z, k):
    """ids by descending teacher logit; lp = log_softmax(Z) at the ids, float64 and float32-rounded."""
    ids = torch.argsort(Z, dim=-1, descending=True, stable=True)[:, :k]
    lp64 = torch.log_softmax(Z, dim=-1).gather(-1, ids)
    return ids, lp64, lp64.float().to(F64)


def teacher_logp(a, T):
    """log p over the k ids for log-weights a [N, k] (logits or log-probs): log_softmax(a / T)."""
    return torch.log_softmax(a / T, dim=-1)


def kd_loss(S, y, ids, logp_t, alpha, T):
    """Per-row CE and KL (all rows), the loss over the scored rows, d loss / d S."""
    S = S.detach().clone().requires_grad_(True)
    logq = torch.log_softmax(S / T, dim=-1).gather(-1, ids)
    kl = (logp_t.exp() * (logp_t - logq)).sum(-1)
    scored = y != -100
    ce = -torch.log_softmax(S, dim=-1).gather(-1, y.clamp(min=0)[:, None])[:, 0]
    ce_mean, kl_mean = ce[scored].mean(), kl[scored].mean()
    loss = alpha * ce_mean + (1 - alpha) * T * T * kl_mean
    (grad,) = torch.autograd.grad(loss, S)
    return dict(ce=ce.detach(), kl=kl.detach(), ce_mean=ce_mean.item(), kl_mean=kl_mean.item(),
                loss=loss.item(), grad=grad)


def rows(t, y):
    """Per-row values; None (JSON null) for rows that are not scored."""
    return [None if int(y[i]) == -100 else float(t[i]) for i in range(len(t))]


def full_ids():
    return torch.arange(V).expand(N, V)


def trl_gkd_kl():
    """trl's GKDTrainer.generalized_jsd_loss, if trl is installed; else None."""
    try:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from trl.experimental.gkd.gkd_trainer import GKDTrainer
        return GKDTrainer.generalized_jsd_loss
    except Exception as e:  # optional cross-check only
        print(f"trl cross-check skipped: {type(e).__name__}: {e}")
        return None


def cross_check_kd(S, Z, y, alpha, T, k, r, gjsd):
    scored = y != -100
    n = int(scored.sum())
    ce_ref = F.cross_entropy(S, y, ignore_index=-100)
    assert abs(ce_ref.item() - r["ce_mean"]) <= TOL * max(1, abs(r["ce_mean"])), (ce_ref.item(), r["ce_mean"])
    q = torch.softmax(S / T, dim=-1)
    p = torch.zeros(N, V, dtype=F64)
    if k == V:
        p = torch.softmax(Z / T, dim=-1)
        kl_ref = F.kl_div(torch.log_softmax(S[scored] / T, -1), torch.log_softmax(Z[scored] / T, -1),
                          reduction="batchmean", log_target=True)
        assert abs(kl_ref.item() - r["kl_mean"]) <= TOL * max(1, r["kl_mean"]), (kl_ref.item(), r["kl_mean"])
        if gjsd is not None:
            t = gjsd(S[None], Z[None], labels=y[None], beta=0.0, temperature=T)
            assert abs(t.item() - r["kl_mean"]) <= TOL * max(1, r["kl_mean"]), (t.item(), r["kl_mean"])
    else:
        ids, _, lp32 = topk(Z, k)
        p.scatter_(-1, ids, teacher_logp(lp32, T).exp())
    onehot = F.one_hot(y.clamp(min=0), V).to(F64)
    g = (alpha * (torch.softmax(S, -1) - onehot) + (1 - alpha) * T * (q - p)) / n
    g[~scored] = 0
    assert torch.allclose(g, r["grad"], rtol=0, atol=TOL), (g - r["grad"]).abs().max()
    assert (r["grad"][~scored] == 0).all()


def kd_case(idx, name, alpha, T, k, gjsd, checks):
    S, Z, y = kd_inputs(1000 + idx)
    case = {"name": name, "alpha": alpha, "T": T, "k": k, "teacher": "logits" if k == V else "topk",
            "S": S.tolist(), "y": y.tolist(), "Z": Z.tolist()}
    if k == V:
        r = kd_loss(S, y, full_ids(), teacher_logp(Z, T), alpha, T)
    else:
        ids, lp64, lp32 = topk(Z, k)
        case["ids"], case["lp"] = ids.tolist(), lp32.tolist()
        r = kd_loss(S, y, ids, teacher_logp(lp32, T), alpha, T)
        # offline (float64 lp, temperature applied to log-probs) vs online (softmax(Z/T) restricted to K)
        online = kd_loss(S, y, ids, teacher_logp(Z.gather(-1, ids), T), alpha, T)
        offline = kd_loss(S, y, ids, teacher_logp(lp64, T), alpha, T)
        d = {"case": name, "k": k, "T": T,
             "max_abs_diff_kl": (offline["kl"] - online["kl"]).abs().max().item(),
             "abs_diff_loss": abs(offline["loss"] - online["loss"]),
             "max_abs_diff_grad": (offline["grad"] - online["grad"]).abs().max().item(),
             "stored_f32_lp_abs_diff_loss": abs(r["loss"] - online["loss"])}
        assert max(d["max_abs_diff_kl"], d["abs_diff_loss"], d["max_abs_diff_grad"]) <= TOL, d
        checks["offline_vs_online"].append(d)
    cross_check_kd(S, Z, y, alpha, T, k, r, gjsd)
    assert all(math.isfinite(v) for v in r["grad"].flatten().tolist())
    case.update({"n_scored": int((y != -100).sum()), "ce": rows(r["ce"], y), "kl": rows(r["kl"], y),
                 "ce_mean": r["ce_mean"], "kl_mean": r["kl_mean"], "loss": r["loss"],
                 "grad_S": r["grad"].tolist()})
    return case


def temperature_check():
    """exp(log_softmax(Z)/T) renormalised over K == softmax(Z/T) restricted to K, for every k and T used."""
    out = []
    for k, T in sorted({(k, T) for _, _, T, k in KD_CASES} | {(V, 4.0), (5, 1.0)}):
        worst = 0.0
        for idx in range(len(KD_CASES)):
            _, Z, _ = kd_inputs(1000 + idx)
            ids, lp64, _ = topk(Z, k)
            via_lp = teacher_logp(lp64, T).exp()
            zT = torch.softmax(Z / T, dim=-1).gather(-1, ids)
            direct = zT / zT.sum(-1, keepdim=True)
            worst = max(worst, (via_lp - direct).abs().max().item())
        assert worst <= TOL, (k, T, worst)
        out.append({"k": k, "T": T, "max_abs_diff_p": worst})
    return out


def feat_case(idx, name, Cs, Ct, projected):
    g = torch.Generator().manual_seed(2000 + idx)
    Hs = grid_randn(g, (N, Cs), 1.0)
    Ht = grid_randn(g, (N, Ct), 1.5)
    W = grid_randn(g, (Ct, Cs), 1.0 / math.sqrt(Cs)) if projected else None
    m = torch.ones(N, dtype=F64)
    m[FEAT_MASKED_ROW] = 0
    Hs[FEAT_MASKED_ROW] = 512.0     # padding garbage: any leak into the result shows
    Ht[FEAT_MASKED_ROW] = -768.0

    hs = Hs.clone().requires_grad_(True)
    w = W.clone().requires_grad_(True) if projected else None
    pred = hs @ w.T if projected else hs
    sq = ((pred - Ht) ** 2).sum(-1)
    feat = (m * sq).sum() / (Ct * m.sum())
    grads = torch.autograd.grad(feat, [hs, w] if projected else [hs])

    real = m.bool()
    lin = torch.nn.Linear(Cs, Ct, bias=False).to(F64)
    with torch.no_grad():
        if projected:
            lin.weight.copy_(W)
        ref = F.mse_loss(lin(Hs[real]) if projected else Hs[real], Ht[real])
    assert abs(ref.item() - feat.item()) <= TOL * max(1, feat.item()), (ref.item(), feat.item())
    res = (pred.detach() - Ht) * m[:, None] * (2 / (Ct * m.sum()))
    assert torch.allclose(grads[0], res @ W if projected else res, rtol=0, atol=TOL)
    if projected:
        assert torch.allclose(grads[1], res.T @ Hs, rtol=0, atol=TOL)
    assert (grads[0][FEAT_MASKED_ROW] == 0).all()

    return {"name": name, "N": N, "Cs": Cs, "Ct": Ct, "Hs": Hs.tolist(), "Ht": Ht.tolist(),
            "W": W.tolist() if projected else None, "mask": [int(v) for v in m.tolist()],
            "sq_err": [float(sq[i].detach()) if m[i] else None for i in range(N)], "feat": feat.item(),
            "grad_Hs": grads[0].tolist(), "grad_W": grads[1].tolist() if projected else None}


def dump(obj, ind=0):
    """JSON, indented; a list of numbers on one line, a matrix one row a line; floats as Python's
    repr (shortest round-trip form)."""
    pad, sub = " " * ind, " " * (ind + 2)
    if isinstance(obj, dict):
        items = [f"{sub}{json.dumps(k)}: {dump(v, ind + 2)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list) and any(isinstance(v, (dict, str, list)) for v in obj):
        return "[\n" + ",\n".join(sub + dump(v, ind + 2) for v in obj) + "\n" + pad + "]"
    if isinstance(obj, list):
        return "[" + ", ".join(dump(v) for v in obj) + "]"
    if isinstance(obj, float):
        assert math.isfinite(obj), obj
    return json.dumps(obj)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/fixtures/kd/kd.json")
    a = ap.parse_args()

    gjsd = trl_gkd_kl()
    checks = {"tol": TOL, "temperature_on_logprobs": temperature_check(), "offline_vs_online": []}
    cases = [kd_case(i, *c, gjsd, checks) for i, c in enumerate(KD_CASES)]
    feats = [feat_case(i, *c) for i, c in enumerate(FEAT_CASES)]

    doc = {
        "source": "tests/ref/make_kd_fixture.py: float64 torch autograd on CPU, torch "
                  + torch.__version__.split("+")[0] + "; the definition below, not any library's trainer.",
        "definition": DEFINITION,
        "notes": [
            f"Each KD case has N = {N} rows, V = {V}. Rows {UNSCORED[0]} and {UNSCORED[1]} have y = -100. Row "
            f"{HUGE_S_ROW} has student logits +90 and -90 (exp(90) overflows float32; its CE is about 90). Row "
            f"{HUGE_Z_ROW} has a teacher logit of 40 (the teacher is almost one-hot).",
            "Inputs (S, Z, lp, Hs, Ht, W) are float32 values, so a float32 reader gets them exactly. All other "
            "numbers are float64 results.",
            "teacher \"logits\" (k = V): p = softmax(Z / T) over the full vocabulary; ids and lp are absent. "
            "teacher \"topk\": ids [N][k] hold the top-k of Z by descending logit, and lp [N][k] holds "
            "float32(log_softmax(Z)) at those ids. The results use ids and lp only; Z is given for an "
            "online top-k path, which agrees to about 1e-8 (checks.offline_vs_online.stored_f32_lp_abs_diff_loss).",
            "ce, kl: per row, null where y = -100. ce_mean and kl_mean are over the n_scored rows. loss = "
            "alpha ce_mean + (1 - alpha) T^2 kl_mean. grad_S = d loss / d S [N][V], zero on unscored rows.",
            "k = 1: p = 1 on the teacher's argmax, so KL_i = -log q_i(argmax).",
            "feature cases: mask [N] (1 = real token). Row 2 is masked and filled with 512 / -768, so any leak "
            "shows. sq_err[i] = ||Hs[i] W^T - Ht[i]||^2, null where masked. W is null when there is no "
            "projection. grad_Hs [N][Cs], grad_W [Ct][Cs].",
            "checks.temperature_on_logprobs: the largest |exp(lp/T) renormalised - softmax(Z/T) restricted and "
            "renormalised| over the K ids, all cases. checks.offline_vs_online: the top-k form from float64 lp "
            "against the online form from Z, both with the same ids. Every value is <= tol.",
        ],
        "cases": cases,
        "feature_cases": feats,
        "checks": checks,
    }
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    text = dump(doc) + "\n"
    with open(a.out, "w") as f:
        f.write(text)
    print(f"wrote {a.out} ({len(text)} bytes); trl cross-check {'done' if gjsd else 'skipped'}")


if __name__ == "__main__":
    main()
