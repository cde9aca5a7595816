#!/usr/bin/env python3
"""GPTQ references for LargeForge's lf_gptq: tests/ref/gptq_ref.py (auto_gptq's fasterquant in
float64 numpy, with LargeForge's f16 scales) on fixed weights and Hessians.

    python3 tests/ref/make_gptq_fixture.py --out tests/fixtures/quant   # < 5 s, numpy only

Writes <out>/gptq_ref.safetensors:
  W            F32 [48, 128]   a weight with a few large columns and rows
  H            F64 [128, 128]  2 X^T X / n of 512 correlated input rows (column 5 never reached: dead)
  <case>.q     I32 [48, 128]   codes in the original column order
  <case>.scales F32 [48, G], <case>.zeros I32 [48, G], <case>.g_idx I32 [128], <case>.dequant F32 [48, 128]
  cases (metadata "cases", JSON): bits 4, damp_percent 0.01, scale_f16 true, and
    sym_g32 (sym, 32, no act order), asym_g64_act (asym, 64, act order), sym_row_act (sym, -1,
    act order), asym_g16 (asym, 16)
and, per case in metadata, the reference's output error trace((W - Q) H (W - Q)^T) and that of
round-to-nearest with the same quantizer.
"""
import argparse
import json
import os
import sys

import numpy as np
from safetensors.numpy import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gptq_ref import gptq_quantize, find_params, quantize_codes  # noqa: E402

CASES = {
    "sym_g32": dict(group_size=32, sym=True, desc_act=False),
    "asym_g64_act": dict(group_size=64, sym=False, desc_act=True),
    "sym_row_act": dict(group_size=-1, sym=True, desc_act=True),
    "asym_g16": dict(group_size=16, sym=False, desc_act=False),
}


def rtn_error(W, H, group_size, sym):
    g = W.shape[1] if group_size == -1 else group_size
    Q = np.empty_like(W)
    for k0 in range(0, W.shape[1], g):
        x = W[:, k0:k0 + g]
        s, z = find_params(x, 4, sym)
        s = s.astype(np.float16).astype(np.float64)
        if not sym:
            xmin = np.minimum(x.min(axis=1), 0.0)
            xmin = np.where((xmin == 0) & (x.max(axis=1) <= 0), -1.0, xmin)
            z = np.round(-xmin / s)
        Q[:, k0:k0 + g] = s[:, None] * (quantize_codes(x, s[:, None], z[:, None], 15) - z[:, None])
    D = W - Q
    return float(np.trace(D @ H @ D.T))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rng = np.random.default_rng(20261122)
    rows, cols, n = 48, 128, 512
    W = (rng.standard_normal((rows, cols)) * 0.05).astype(np.float32)
    W[:, 7] *= 8
    W[3] *= 4
    mix = rng.standard_normal((cols, cols)) * 0.3 + np.eye(cols)
    X = rng.standard_normal((n, cols)) @ mix
    X[:, 11] *= 5
    X[:, 5] = 0  # a dead input
    H = 2.0 * X.T @ X / n
    Wd = W.astype(np.float64)
    t = {"W": W, "H": H}
    meta = {}
    for name, c in CASES.items():
        r = gptq_quantize(Wd, H, bits=4, damp_percent=0.01, scale_f16=True, **c)
        D = Wd - r["dequant"]
        meta[name] = dict(c, gptq_err=float(np.trace(D @ H @ D.T)), rtn_err=rtn_error(Wd, H, c["group_size"], c["sym"]))
        t[name + ".q"] = np.ascontiguousarray(r["q"].astype(np.int32))
        t[name + ".scales"] = np.ascontiguousarray(r["scales"].astype(np.float32))
        t[name + ".zeros"] = np.ascontiguousarray(r["zeros"].astype(np.int32))
        t[name + ".g_idx"] = np.ascontiguousarray(r["g_idx"].astype(np.int32))
        t[name + ".dequant"] = np.ascontiguousarray(r["dequant"].astype(np.float32))
        print(f"{name:14s} gptq {meta[name]['gptq_err']:.6g}  rtn {meta[name]['rtn_err']:.6g}")
    os.makedirs(a.out, exist_ok=True)
    save_file(t, os.path.join(a.out, "gptq_ref.safetensors"),
              metadata={"cases": json.dumps(meta), "generated_by": "tests/ref/make_gptq_fixture.py"})


if __name__ == "__main__":
    main()
