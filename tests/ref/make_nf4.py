#!/usr/bin/env python3
"""bitsandbytes references for LargeForge's NF4 and int8 weight formats (section 11).

    python3 tests/ref/make_nf4.py --out tests/fixtures/quant     # ~3 s on CPU, no GPU needed

Writes <out>/nf4_ref.safetensors (and VERSIONS.txt). Everything in it is computed by
bitsandbytes itself, on the CPU, from its PyPI wheel:

  nf4_code      F32 [16]   bnb.functional.get_4bit_type("nf4")
  dynamic_map   F32 [256]  bnb.functional.create_dynamic_map(signed=True) (double quantization)

  For each case C in {a, b}:
  C.src         F32        the input: a [64, 128] (8192 elements, blocksize 64: 128 whole
                           blocks); b [17, 61] (1037 elements: odd, 16 whole blocks and a
                           partial one of 13)
  C.nf4         U8  [ceil(n/2)]  quantize_4bit(src, blocksize=64, quant_type="nf4") packed bytes
  C.absmax      F32 [blocks]     its absmax
  C.dequant     F32        dequantize_4bit of that state

  Double quantization (compress_statistics=True), for D in {a.dq64 (a, blocksize 64: 128
  absmax, one partial 256-block), a.dq32 (a, blocksize 32: 256 absmax, one whole 256-block),
  b.dq64}:
  D.absmax      F32 [blocks] the absmax before double quantization (as C.absmax)
  D.offset      F32 [1]    QuantState.offset (absmax.mean())
  D.absmax2     F32 [k]    QuantState.state2.absmax
  D.qabsmax_cpu U8 [blocks] QuantState.absmax as quantize_4bit returns it on this CPU
  D.absmax_cpu  F32 [blocks] dequantize_blockwise(qabsmax_cpu, state2) + offset, the scales
                           dequantize_4bit uses
  D.qabsmax     U8 [blocks] bnb's device-independent reference kernel for quantize_blockwise
                           (backends/default/ops.py, see below) applied to absmax - offset
  D.absmax_ref  F32 [blocks] dequantize_blockwise(qabsmax, state2) + offset
  a.dq64.dequant F32 [64, 128] dequantize_4bit of the real CPU double-quantized state

  int8 (LLM.int8 row-wise weight quantization, int8_vectorwise_quant / _dequant):
  i8.src F32 [48, 80], i8.q I8 [48, 80], i8.absmax F32 [48] (bnb's SCB), i8.dequant F32 [48, 80]

Which bitsandbytes code runs (0.50.2 on x86-64 CPU):
- quantize_4bit has no native CPU kernel: the "default" PyTorch kernel runs. It scales whole
  blocks by x * (1 / absmax) and the partial last block by x / absmax, clamps to [-1, 1] and
  picks torch.bucketize(scaled, midpoints) with midpoints (code[i] + code[i+1]) / 2 in f32:
  the nearest NF4 value, ties to the lower one. The CUDA kernel's decision tree (dQuantizeNF4)
  has the same tie rule; its thresholds are decimal float literals, and the script asserts
  that they are these midpoints except thresholds 0, 8, 12 and 14, one f32 ulp away (so only
  an input exactly on one of those is bucketed differently on CUDA). Element 2i goes to the
  high nibble of byte i; an odd count is padded with a 0.0 (code 7) nibble.
- quantize_blockwise (double quantization) has a native CPU kernel that, in this version,
  looks codes up in a 65536-bin table (an approximation of nearest that differs from the CUDA
  kernel and from bnb's own reference kernel). LargeForge implements the reference kernel's
  rule: the same scaling as above, then the nearest map value by f32 midpoints, ties to the
  lower one (CUDA's dQuantize is also exact nearest; it scales the partial block by the
  reciprocal too and breaks exact ties toward the even index), so the fixture holds
  both: qabsmax (what LargeForge must produce, byte for byte) and qabsmax_cpu (what bnb's CPU
  build stored, which LargeForge must dequantize exactly as bnb does).

Crafted inputs: b's first block has absmax 2 (a power of two, so x * (1/absmax) is exact) and
holds every threshold times 2 and its two f32 neighbours (ties and near-ties); its second
block and its partial last block have absmax 3 and values where x / 3 and x * (1/3) fall in
different buckets (pinning the reciprocal in whole blocks, the division in the partial one),
the second block also every threshold times 3 and its neighbours; one block is all zeros; one
block's absmax comes from a negative value. The int8 input has a zero row, a row whose absmax is 127 holding exact
.5 values (round half to even) and a row with a negative absmax.
"""
import argparse
import gc
import inspect
import os
import platform
import warnings
from fractions import Fraction

import numpy as np
import torch
import bitsandbytes
import bitsandbytes.backends.default.ops as bnb_default
import bitsandbytes.functional as F
import safetensors
from safetensors.torch import save_file

CUDA_NF4_THRESHOLDS = [  # csrc kernels, dQuantizeNF4 (float literals), in increasing order
    "-0.8480964004993439", "-0.6106329262256622", "-0.4599952697753906", "-0.33967943489551544",
    "-0.23460740596055984", "-0.13791173323988914", "-0.045525018125772476", "0.03979014977812767",
    "0.1202552504837513", "0.2035212516784668", "0.2920137718319893", "0.3893125355243683",
    "0.5016634166240692", "0.6427869200706482", "0.8614784181118011"]


def reference_quantize_blockwise():
    """bnb's registered "default" kernel for bitsandbytes::quantize_blockwise. The CPU
    registration shadows it in the dispatcher, so it is found among the module's functions by
    its signature and its bucketize rule."""
    for f in gc.get_objects():
        if inspect.isfunction(f) and f.__module__ == bnb_default.__name__:
            try:
                src = inspect.getsource(f)
            except (OSError, TypeError):
                continue
            if list(inspect.signature(f).parameters) == ["A", "code", "blocksize"] and "bucketize" in src:
                return f
    raise SystemExit("bitsandbytes' default quantize_blockwise kernel not found (bitsandbytes changed?)")


def f32_literal(s):
    """The f32 a C compiler makes of the decimal literal s (correctly rounded from the decimal,
    not through double)."""
    exact = Fraction(s)
    c = np.float32(float(s))
    cands = [np.nextafter(c, np.float32(-np.inf)), c, np.nextafter(c, np.float32(np.inf))]
    return min(cands, key=lambda v: (abs(Fraction(float(v)) - exact), int(v.view(np.uint32)) & 1))


def f32(x):
    return np.float32(x)


def near(x, k):
    """x moved by k f32 ulps."""
    x = f32(x)
    for _ in range(abs(k)):
        x = np.nextafter(x, f32(np.inf) if k > 0 else f32(-np.inf))
    return x


def bucket(s, mids):
    return int(np.searchsorted(mids, f32(s), side="left"))  # == torch.bucketize(right=False)


def make_b(gen, mids):
    n = 17 * 61
    x = (torch.randn(n, generator=gen) * 0.7).numpy().astype(np.float32)
    blk = lambda i: slice(64 * i, 64 * (i + 1))  # noqa: E731
    # block 0: absmax 2, every threshold * 2 and its neighbours (x * 0.5 is exact)
    b0 = [f32(2.0)]
    for m in mids:
        t = f32(m) * f32(2.0)
        b0 += [t, near(t, 1), near(t, -1)]
    x[blk(0)] = np.array(b0 + [f32(0.25)] * (64 - len(b0)), dtype=np.float32)
    # values near threshold * 3 whose bucket differs between x / 3 and x * fl(1/3)
    inv3 = f32(1) / f32(3)
    split = []
    for m in mids:
        t = f32(f32(m) * f32(3.0))
        for k in range(-8, 9):
            v = near(t, k)
            if bucket(v / f32(3), mids) != bucket(v * inv3, mids):
                split.append(v)
    assert len(split) >= 6, f"only {len(split)} division/reciprocal splits found"
    # block 1: absmax 3, those values (pinning x * (1/absmax) in whole blocks) and threshold * 3
    # with its neighbours
    b1 = [f32(3.0)] + split[:12]
    for m in mids:
        t = f32(f32(m) * f32(3.0))
        b1 += [near(t, k) for k in (-1, 0, 1)]
    x[blk(1)] = np.array(b1 + [f32(0.1)] * (64 - len(b1)), dtype=np.float32)
    # block 4: all zeros; block 7: the absmax is negative
    x[blk(4)] = 0
    x[blk(7)][5] = f32(-2.5)
    # the partial last block (13 elements from 1024): absmax 3 and the same values (pinning
    # x / absmax there)
    tail = [f32(3.0)] + split[:12]
    tail += [f32(0.1)] * (13 - len(tail))
    x[1024:] = np.array(tail, dtype=np.float32)
    return x.reshape(17, 61), len(split[:12])


def make_i8(gen):
    w = (torch.randn(48, 80, generator=gen) * 0.05).numpy().astype(np.float32)
    w[3] = 0  # zero row
    w[5] = np.clip(w[5] * 40, -120, 120)  # absmax 127: 127 / absmax == 1, x * 1 exact
    w[5][0] = 127.0
    w[5][1:11] = [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5, 126.5, -126.5, 100.5]
    w[9][7] = -0.4  # negative absmax
    return w


def main():
    warnings.filterwarnings("ignore", category=FutureWarning)  # inspect touching torch.distributed
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures/quant")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    cpu = torch.device("cpu")
    code = F.get_4bit_type("nf4", device=cpu)
    mids = ((code[:-1] + code[1:]) / 2).numpy()
    cuda = np.array([f32_literal(t) for t in CUDA_NF4_THRESHOLDS], dtype=np.float32)
    off = [i for i in range(15) if cuda[i] != mids[i]]
    assert off == [0, 8, 12, 14] and all(abs(int(cuda[i].view(np.int32)) - int(mids[i].view(np.int32))) == 1
                                         for i in off), f"CUDA thresholds vs f32 midpoints: {off}"
    dmap = F.create_dynamic_map(signed=True)
    ref_qbw = reference_quantize_blockwise()

    gen = torch.Generator().manual_seed(20240611)
    a = (torch.randn(64, 128, generator=gen) * 0.05).numpy().astype(np.float32)
    a[3, 64:] *= 40  # one block with a much larger absmax
    b, nsplit = make_b(gen, mids)
    out = {"nf4_code": code.clone(), "dynamic_map": dmap.clone()}

    for name, src in (("a", a), ("b", b)):
        t = torch.from_numpy(src.copy())
        q, st = F.quantize_4bit(t, blocksize=64, compress_statistics=False, quant_type="nf4")
        out[f"{name}.src"] = t
        out[f"{name}.nf4"] = q.reshape(-1).clone()
        out[f"{name}.absmax"] = st.absmax.clone()
        out[f"{name}.dequant"] = F.dequantize_4bit(q, st).clone()

    for name, src, bs in (("a.dq64", a, 64), ("a.dq32", a, 32), ("b.dq64", b, 64)):
        t = torch.from_numpy(src.copy())
        _, plain = F.quantize_4bit(t, blocksize=bs, compress_statistics=False, quant_type="nf4")
        q, st = F.quantize_4bit(t, blocksize=bs, compress_statistics=True, quant_type="nf4")
        assert st.nested and st.state2.blocksize == 256
        assert torch.equal(st.state2.code, dmap), "state2.code is not create_dynamic_map()"
        recon_cpu = F.dequantize_blockwise(st.absmax, st.state2) + st.offset
        centered = plain.absmax - st.offset
        qref, absmax2_ref = ref_qbw(centered, dmap, 256)
        assert torch.equal(absmax2_ref, st.state2.absmax), "absmax2 differs between bnb kernels"
        recon_ref = F.dequantize_blockwise(qref, st.state2) + st.offset
        out[f"{name}.absmax"] = plain.absmax.clone()
        out[f"{name}.offset"] = st.offset.reshape(1).clone()
        out[f"{name}.absmax2"] = st.state2.absmax.clone()
        out[f"{name}.qabsmax_cpu"] = st.absmax.clone()
        out[f"{name}.absmax_cpu"] = recon_cpu.clone()
        out[f"{name}.qabsmax"] = qref.reshape(-1).clone()
        out[f"{name}.absmax_ref"] = recon_ref.clone()
        if name == "a.dq64":
            out[f"{name}.dequant"] = F.dequantize_4bit(q, st).clone()
        ndiff = int((qref.reshape(-1) != st.absmax).sum())
        print(f"{name}: {st.absmax.numel()} absmax codes, reference kernel vs CPU table differ in {ndiff}")

    w = make_i8(gen)
    t = torch.from_numpy(w.copy())
    q8, scb, _ = F.int8_vectorwise_quant(t)
    out["i8.src"] = t
    out["i8.q"] = q8.clone()
    out["i8.absmax"] = scb.clone()
    out["i8.dequant"] = F.int8_vectorwise_dequant(q8, scb).clone()
    assert q8[5, 1:7].tolist() == [0, 2, 2, 0, -2, -2], "int8 rounding is not half to even"

    path = os.path.join(args.out, "nf4_ref.safetensors")
    save_file({k: v.contiguous() for k, v in out.items()}, path,
              metadata={"generated_by": f"tests/ref/make_nf4.py, bitsandbytes {bitsandbytes.__version__}, "
                                        f"torch {torch.__version__}"})  # one key: byte-identical reruns
    with open(os.path.join(args.out, "VERSIONS.txt"), "w") as f:
        f.write(f"python {platform.python_version()}\ntorch {torch.__version__}\n"
                f"bitsandbytes {bitsandbytes.__version__}\nsafetensors {safetensors.__version__}\n"
                f"numpy {np.__version__}\ngenerated by: python3 tests/ref/make_nf4.py --out {args.out}\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes); partial-block division cases: {nsplit}")


if __name__ == "__main__":
    main()
