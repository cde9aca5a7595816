#!/usr/bin/env python3
"""GPTQ and AWQ checkpoints written by LargeForge, read by tests/ref/read_quant.py (an independent
reader written from AutoGPTQ's, AutoAWQ's, transformers' and vLLM's layout definitions).

    ./build/lf_quant_export                                # writes build/quant-interop/*
    python3 tests/ref/make_quant_interop.py --out tests/fixtures/quant/interop.json

For each m (gptq and awq: real runs; gptq-layout and awq-layout: round-to-nearest Q4, the GPTQ one
with a scattered act-order g_idx, see tests/ref/quant_interop.h) it reads build/quant-interop/<m>
with read_quant.read_dir, and asserts that every projection's dequantized weight equals, bit for
bit, what LargeForge dequantized in memory (build/quant-interop/<m>-deq/model.safetensors,
written by lf_model_save), and so do the other tensors (AWQ moves its scales into the norms).
For the two layout checkpoints, which every build makes bit for bit, it records the sha256 of
each dequantized projection and of the checkpoint file; tests/test_quant.c checks them against
a fresh run.
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np
from safetensors.numpy import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from read_quant import read_dir  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="build/quant-interop")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rec = {}
    for m in ("gptq", "awq", "gptq-layout", "awq-layout"):
        got = read_dir(os.path.join(a.dir, m))
        want = load_file(os.path.join(a.dir, m + "-deq", "model.safetensors"))
        assert set(got) == set(want), (m, sorted(set(got) ^ set(want))[:5])
        proj = {}
        for name, w in sorted(want.items()):
            g = np.ascontiguousarray(got[name], dtype=np.float32)
            w = np.ascontiguousarray(w, dtype=np.float32)
            assert g.shape == w.shape and g.tobytes() == w.tobytes(), (m, name, float(np.abs(g - w).max()))
            if "_proj." in name and name.endswith(".weight"):
                proj[name] = hashlib.sha256(w.tobytes()).hexdigest()
        with open(os.path.join(a.dir, m, "model.safetensors"), "rb") as f:
            file_sha = hashlib.sha256(f.read()).hexdigest()
        with open(os.path.join(a.dir, m, "config.json")) as f:
            qc = json.load(f)["quantization_config"]
        if m.endswith("-layout"):
            rec[m] = {"file_sha256": file_sha, "quantization_config": qc, "dequantized_sha256": proj}
        print(f"{m}: {len(proj)} projections and {len(want) - len(proj)} other tensors equal bit for bit")
    with open(a.out, "w") as f:
        json.dump(rec, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
