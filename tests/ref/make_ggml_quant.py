#!/usr/bin/env python3
"""gguf (llama.cpp's Python package) references for LargeForge's GGUF Q8_0 / Q4_0 block quantizers.

    python3 tests/ref/make_ggml_quant.py --out tests/fixtures/quant      # < 1 s, numpy only
    python3 tests/ref/make_ggml_quant.py --out tests/fixtures/quant --check   # regenerate in
                                        # memory, compare with the committed file byte for byte

Writes <out>/ggml_ref.safetensors. Every output is computed by gguf's numpy quantizer
(gguf.quants.quantize / dequantize, gguf==0.19.0); this script only builds the inputs and then
checks its own description of the formats (README_ggml_quant.md) against what gguf wrote:

  w             F32 [R, 256]   inputs, R = ROWS (8 blocks of 32 per row; the rows are described in
                               the README and in the file's metadata "generated_by")
  q8_0          U8  [R, 272]   quantize(w, Q8_0): per block 2 bytes f16 scale (LE) + 32 int8
  q4_0          U8  [R, 144]   quantize(w, Q4_0): per block 2 bytes f16 scale (LE) + 16 nibble bytes
  q8_0_deq      F32 [R, 256]   dequantize(q8_0, Q8_0)
  q4_0_deq      F32 [R, 256]   dequantize(q4_0, Q4_0)
  big.w         F32 [2, 256]   inputs whose scale reaches the top of the f16 range
  big.q8_0 / big.q4_0 / big.q8_0_deq / big.q4_0_deq   the same for big.w; some scales round
                               to +-inf in f16, so the _deq tensors hold +-inf and NaN (inf * 0)

Checks (all asserted): dequantize(quantize(w)) == the _deq tensors bit for bit; an independent
scalar re-implementation of the documented algorithms (Python floats / numpy f32 scalars, f16
via struct 'e') reproduces every byte; a hand decoder of the documented layout reproduces every
dequantized value bit for bit; the crafted cases really occur (Q8_0 exact .5 ties of both
parities and signs, Q4_0 elements where the f32 rounding of x*id + 8.5 decides the nibble, and
elements where a fused multiply-add (C compiled with FP contraction) would give another nibble).
"""
import argparse
import hashlib
import os
import struct
import sys
import tempfile
import warnings
from fractions import Fraction

import numpy as np
from gguf import GGMLQuantizationType as QT
from gguf.quants import quantize, dequantize
import safetensors
from safetensors.numpy import save_file

QK = 32
ROW = 256
NB = ROW // QK
f32 = np.float32
# f16 scale bits of big.q8_0 / big.q4_0, blocks in row order (0x7BFF = 65504, 0x7C00 = +inf)
BIG_Q8_0_SCALES = [0x6C08, 0x6C08, 0x7BFF, 0x7BFF, 0x7C00, 0x7C00, 0x7C00, 0x7C00,
                   0x7BFF, 0x7C00, 0x7C00, 0x742C, 0x7BFF, 0x7C00, 0x7BFA, 0x7BFF]
BIG_Q4_0_SCALES = [0x7BFF, 0xFC00, 0xFC00, 0x7C00, 0xFC00, 0x7C00, 0xFC00, 0xFC00,
                   0x7C00, 0xFC00, 0x7C00, 0x7C00, 0xFC00, 0x7C00, 0x7C00, 0xFC00]


def nextf(x, k=1):
    """x moved k f32 ulps (k < 0: toward -inf)."""
    x = f32(x)
    for _ in range(abs(k)):
        x = np.nextafter(x, f32(np.inf if k > 0 else -np.inf), dtype=np.float32)
    return x


def block(vals, fill=0.0):
    """A 32-element f32 block: vals, then fill."""
    v = [f32(x) for x in vals]
    assert len(v) <= QK, len(v)
    return np.array(v + [f32(fill)] * (QK - len(v)), dtype=np.float32)


def fma_f32(a, b, c):
    """fl32(a*b + c) with one rounding (what a fused multiply-add gives), exactly."""
    exact = Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))
    g = f32(float(exact))  # within one f32 ulp of the answer
    best = None
    for cand in (nextf(g, -1), g, nextf(g, 1)):
        err = abs(Fraction(float(cand)) - exact)
        odd = int(np.array(cand, dtype=np.float32).view(np.uint32)) & 1
        key = (err, odd)  # nearest, ties to even
        if best is None or key < best[0]:
            best = (key, cand)
    return best[1]


def q4_fma_witnesses(id_, n, limit, span=256):
    """f32 x near (n - 8.5) / id, |x| <= limit, for which Q4_0's fl32(fl32(x*id) + 8.5) and a
    fused fl32(x*id + 8.5) truncate to different integers (n and n - 1): the product lies within
    half an f32 ulp of a midpoint of the sum's f32 grid just below n."""
    x0 = f32((n - 8.5) / float(id_))
    xs = [x0]
    lo = hi = x0
    for _ in range(span):
        lo, hi = nextf(lo, -1), nextf(hi, 1)
        xs += [lo, hi]
    found = []
    for x in xs:
        if abs(x) > limit:
            continue
        unfused = int(f32(f32(x * id_) + f32(8.5)))
        if unfused != int(fma_f32(x, id_, f32(8.5))) and unfused <= 15:
            found.append(x)
    return found


def make_inputs():
    rng = np.random.default_rng(20240611)
    rows, desc = [], []

    # rows 0-7: Gaussian rows at different scales (0.02 is a typical weight scale)
    for r, s in enumerate([1.0, 0.02, 0.02, 3.0, 1e-3, 50.0, 0.5, 7e-5]):
        rows.append(rng.standard_normal(ROW, dtype=np.float32) * f32(s))
        desc.append(f"{r}: normal * {s}")

    # rows 8-9: one huge value per block among small Gaussian values, at varied positions/signs
    for r, (vals, pos) in enumerate([([50.0, -1e4, 3e3, -7.5, 1e5, -2e5, 12.0, -0.9], [0, 31, 15, 16, 1, 30, 7, 24]),
                                     ([-60.0, 1e4, -3e3, 7.5, -1e5, 2e5, -12.0, 0.9], [16, 0, 31, 15, 24, 7, 30, 1])]):
        w = rng.standard_normal(ROW, dtype=np.float32) * f32(0.02)
        for b, (v, p) in enumerate(zip(vals, pos)):
            w[b * QK + p] = f32(v)
        rows.append(w)
        desc.append(f"{8 + r}: 0.02 * normal with one outlier per block {vals} at {pos}")

    blocks, bdesc, expect = [], [], []

    def add(b, what, q8d=None, q4d=None):
        """q8d / q4d: the f16 scale bits gguf must write for this block (asserted in check)."""
        blocks.append(np.asarray(b, dtype=np.float32))
        bdesc.append(what)
        expect.append((q8d, q4d))

    # zeros and exactly representable values
    add(block([]), "all +0.0 (Q4_0 scale 0/-8 = -0.0, bytes 00 80, quants 0x88, deq -0.0)", 0x0000, 0x8000)
    add(block([], fill=-0.0), "all -0.0 (gguf: Q4_0 max = x[0] = -0.0, scale +0.0; llama.cpp C: -0.0)", 0x0000, 0x0000)
    add(block([0.0] * 31 + [-0.25]), "zeros then one -0.25 at the end")
    add(block([-0.0, 0.0] * 15 + [1.0, -0.0]), "mixed +-0 and one 1.0")
    add(block([127] + [int(v) for v in rng.integers(-127, 128, 31)]), "Q8_0-exact: 127 then random ints (d = 1)")
    add(block([-127] + list(range(-15, 16))), "Q8_0-exact: -127 then -15..15 (d = 1)")
    add(block([-8] + [int(v) for v in rng.integers(-8, 8, 31)]), "Q4_0-exact: -8 then random ints in [-8, 7] (d = 1)")
    add(block([0.25 * (j - 8) for j in range(16)] + [0.25 * (7 - j) for j in range(16)]),
        "Q4_0: -2 first (d = 0.25), all 16 levels; low/high nibble order check")
    # Q4_0 sign rule: max is the signed value of largest magnitude, first occurrence wins
    add(block([1.0, -3.0, 2.0, 3.0, -2.9, 0.5] + list(np.linspace(-2.5, 2.5, 26))), "-3 before +3: max = -3, +3 clamps to 15")
    add(block([1.0, 3.0, 2.0, -3.0, -2.9, 0.5] + list(np.linspace(-2.5, 2.5, 26))), "+3 before -3: max = +3 (d < 0), -3 clamps")
    add(block(-np.abs(rng.standard_normal(QK)) - 0.1), "all negative")
    add(block([0.7] * 32), "all equal positive")
    add(block(list(-np.abs(rng.standard_normal(16))) + list(0.4 * rng.standard_normal(16))), "negative-dominant")
    add(block([-5.0] + list(rng.uniform(-5, 5, 31).astype(np.float32))), "negative max first, uniform rest")

    # Q8_0 rounding: d = 1 exactly (amax 127), x*id = x: exact .5 ties of both parities/signs,
    # and their f32 neighbours
    ties = [k + 0.5 for k in range(-127, 127)]
    for i in range(0, len(ties), 31):
        add(block([127.0 if i % 62 == 0 else -127.0] + ties[i:i + 31]), f"Q8_0 ties k+0.5, k = {int(ties[i] - 0.5)}..")
    near = []
    for k in [0, 1, 2, 3, 62, 63, 125, 126]:
        for s in (1, -1):
            h = f32(s * (k + 0.5))
            near += [nextf(h, -1), nextf(h, 1)]
    add(block([127.0] + near[:31]), "Q8_0 f32 neighbours of k+0.5")
    add(block([-127.0] + near[31:] + [0.49999997, -0.49999997, 0.5, -0.5, 1.4999999, -2.5000002]), "Q8_0 more neighbours")

    # Q4_0 rounding: max = -8 (d = 1, id = 1) and +8 (d = -1, id = -1); x0 = +-x exactly.
    # k+0.5 ties go up in x0 (floor(x0 + 0.5)); x0 + 8.5 is rounded to f32 before the
    # truncation, so an x0 less than half an ulp of the sum below k+0.5 still rounds up (2^-22
    # below: up for sums in [4, 16); 2^-21 below: an exact midpoint for sums in [8, 16), tie to
    # the even integer, up; for sums in [4, 8) it is representable, down).
    for m in (-8.0, 8.0):
        add(block([m] + [k + 0.5 for k in range(-8, 8)] + [h - 2.0 ** -22 for h in (0.5, 1.5, 2.5, 6.5, -0.5, -1.5, -3.5, -7.5)]
                  + [h - 2.0 ** -20 for h in (0.5, 2.5, -0.5, -4.5)] + [7.5 + 2.0 ** -20, 7.75, -7.75]),
            f"Q4_0 ties, max {m}")
        add(block([m] + [h - 2.0 ** -21 for h in (0.5, 1.5, 3.5, 7.5, -0.5, -1.5, -2.5, -3.5, -6.5, -7.5)]
                  + [h + 2.0 ** -21 for h in (0.5, -0.5, -7.5, 2.5)]
                  + [nextf(h, -1) for h in (0.5, 1.5, -0.5, -1.5, -7.5, 7.5)]
                  + [nextf(h, 1) for h in (0.5, -0.5, -2.5, 4.5, -7.5)]
                  + [-8.0, 8.0, 7.99, -7.99, 8.0, -8.0]),
            f"Q4_0 near-ties (ties to even in x0 + 8.5), max {m}")

    # Q4_0 with a non-power-of-two id: elements where an FMA gives another nibble
    for m in (-3.0, 5.0, -0.7, 100.0):
        d = f32(f32(m) / f32(-8))
        id_ = f32(f32(1) / d)
        wit = []
        for n in range(1, 16):
            wit += q4_fma_witnesses(id_, n, abs(m))[:3]
        add(block([m] + wit[:QK - 1], fill=m / 3), f"Q4_0 FMA-sensitive products, max {m} ({len(wit[:QK - 1])} of them)")

    # f16 scale limits (both formats stay finite; Q8_0's top end is in big.*)
    add(block([-524032.0, 1.0, 262016.0]), "Q4_0 d = 65504 (f16 max) exactly", None, 0x7BFF)
    add(block([524159.0, -500000.0, 3.0]), "Q4_0 d = -65519.875 -> f16 -65504", None, 0xFBFF)
    add(block([-524128.0, 7.0]), "Q4_0 d = 65516 -> 65504", None, 0x7BFF)
    add(block([8 * (1 + 2.0 ** -11), 3.0, -1.0]), "Q4_0 d = -(1 + 2^-11): f16 tie to even -> -1", None, 0xBC00)
    add(block([-8 * (1 + 3 * 2.0 ** -11), 3.0, -1.0]), "Q4_0 d = 1 + 3*2^-11: f16 tie to even -> 1 + 2^-9", None, 0x3C02)
    add(block([127 * (1 + 2.0 ** -11), 3.0, -1.0, 126.99]), "Q8_0 d = 1 + 2^-11: f16 tie -> 1 (quants use f32 id)", 0x3C00)
    add(block([-127 * (1 + 3 * 2.0 ** -11), 3.0, 126.9]), "Q8_0 d = 1 + 3*2^-11 -> 1 + 2^-9", 0x3C02)
    for e, what, bits in [(-24, "2^-24 (f16 min subnormal)", 1), (-25, "2^-25 (f16 tie -> 0)", 0), (-26, "2^-26 (-> 0)", 0)]:
        add(block([127 * 2.0 ** e] + list(rng.standard_normal(31).astype(np.float32) * f32(40 * 2.0 ** e))), f"Q8_0 d = {what}", bits)
        add(block([-8 * 2.0 ** e] + list(rng.standard_normal(31).astype(np.float32) * f32(2.5 * 2.0 ** e))), f"Q4_0 d = {what}", None, bits)
    add(block([127 * 3 * 2.0 ** -25, 1.0e-6]), "Q8_0 d = 3*2^-25: f16 subnormal tie -> 2^-23", 0x0002)
    add(block([8 * 3 * 2.0 ** -25, -1.0e-7]), "Q4_0 d = -3*2^-25 -> -2^-23", None, 0x8002)
    add(block([8 * 2.0 ** -25, 2.0 ** -26]), "Q4_0 d = -2^-25: f16 tie -> -0.0", None, 0x8000)
    add(block([127 * (2.0 ** -14 - 2.0 ** -25)]), "Q8_0 d = f16 min normal - half subnormal step: tie -> 2^-14", 0x0400)
    add(block([-8 * (2.0 ** -14 - 2.0 ** -25), 2.0 ** -15]), "Q4_0 d = same, positive", None, 0x0400)
    add(block([127 * (2.0 ** -14 - 2.0 ** -23), -(2.0 ** -15)]), "Q8_0 d just below f16 min normal (subnormal 0x3FE)", 0x03FE)
    # tiny values: scale 0 in f16 but quants from the f32 scale; f32 subnormals
    add(block(list(rng.standard_normal(32).astype(np.float32) * f32(1e-10))), "1e-10 * normal: f16 scale 0, quants not 0")
    add(block([4e-37, -3e-37, 1e-38, -1.5e-39, 1e-45, 2e-40]), "amax 4e-37: Q8_0 d is an f32 subnormal, 1/d finite")
    add(block([-1e-36, 5e-37, -2e-38, 1e-44]), "amax 1e-36")
    add(block([1.0, 1e-40, -1e-40, 1.4e-45, -1.4e-45, 1.17e-38, 0.49]), "f32 subnormals next to 1.0")
    add(block(list(rng.standard_normal(32).astype(np.float32) * f32(3e-6))), "3e-6 * normal: f16 subnormal scales")

    while len(blocks) % NB:
        add(block(rng.standard_normal(QK).astype(np.float32) * f32(0.1)), "filler: 0.1 * normal")
    for r0 in range(0, len(blocks), NB):
        rows.append(np.concatenate(blocks[r0:r0 + NB]))
        desc.append(f"{len(rows) - 1}: " + " | ".join(f"b{b}: {bdesc[r0 + b]}" for b in range(NB)))
    w = np.stack(rows).astype(np.float32)

    # big: scales at the top of the f16 range; the f16 scale is +-inf for Q4_0 in every block
    # but the first, for Q8_0 in the blocks BIG_Q8_0_SCALES marks 0x7C00 (asserted in build):
    # deterministic bytes, inf/NaN dequantization
    big = [
        block([-524159.0, 1.0]), block([524160.0, -1.0]),  # Q4_0: d -> 65504 / -inf (65520 ties away to inf)
        block([127 * 65504.0, 1e6, -5e6]), block([-127 * 65519.0, 3.0]),  # Q8_0 d = 65504, 65519 -> 65504
        block([127 * 65520.0, 2.0]), block([-127 * 65520.0, 5e6]),  # d = 65520 -> +inf
        block([1e9, -1e9, 0.0, 1.0]), block([3.0e38, -1.0e38, 1.0]),  # far beyond
        block([-127 * 65504.0, 0.0]), block([2.0e10] + [0.0] * 31),
        block(rng.standard_normal(QK).astype(np.float32) * f32(1e7)),
        block(rng.standard_normal(QK).astype(np.float32) * f32(1e6)),
        block([127 * 65519.99, -3e6]), block([-1.0e7, 1.0e7]),
        block([-8.3e6, 7.9e6, 1.0]), block([65519.0 * 127 * 1.00001]),
    ]
    wbig = np.stack([np.concatenate(big[:NB]), np.concatenate(big[NB:])]).astype(np.float32)
    # blocks in rows 10.. with an expected scale: (row, block, q8 bits, q4 bits)
    r0 = len(rows) - len(blocks) // NB
    exp = [(r0 + i // NB, i % NB, q8d, q4d) for i, (q8d, q4d) in enumerate(expect) if (q8d, q4d) != (None, None)]
    return w, desc, wbig, exp


# ---- independent re-implementation of the documented algorithms (scalar, one element at a time)

def f16_bytes(x):
    try:
        return struct.pack("<e", float(x))  # IEEE binary16, round to nearest even
    except OverflowError:
        return b"\x00\xfc" if x < 0 else b"\x00\x7c"


def roundf(x):
    """C roundf: halfway cases away from zero. Exact in f64 for |x| < 2^52."""
    a = abs(float(x))
    r = float(int(a + 0.5)) if a < 2.0 ** 52 else a
    return -r if x < 0 else r


def ref_q8_0(xb):
    amax = f32(0)
    for v in xb:
        amax = max(amax, f32(abs(v)))
    d = f32(amax / f32(127))
    id_ = f32(f32(1) / d) if d != 0 else f32(0)
    q = bytes(int(roundf(f32(v * id_))) & 0xFF for v in xb)
    return f16_bytes(d) + q


def ref_q4_0(xb):
    mx = xb[0]  # the first element of largest magnitude (llama.cpp starts from +0.0 instead)
    for v in xb[1:]:
        if abs(mx) < abs(v):
            mx = v
    d = f32(mx / f32(-8))
    id_ = f32(f32(1) / d) if d != 0 else f32(0)
    q = [min(15, int(f32(f32(v * id_) + f32(8.5)))) for v in xb]
    return f16_bytes(d) + bytes(q[j] | (q[j + 16] << 4) for j in range(16))


def decode(qbytes, kind):
    """Dequantize by hand from the documented layout."""
    tsz = 34 if kind == "q8_0" else 18
    out = []
    for o in range(0, len(qbytes), tsz):
        blk = bytes(qbytes[o:o + tsz])
        d = f32(struct.unpack("<e", blk[:2])[0])
        if kind == "q8_0":
            qs = [int(v) for v in np.frombuffer(blk[2:], dtype=np.int8)]
        else:
            qs = [(b & 0x0F) - 8 for b in blk[2:]] + [(b >> 4) - 8 for b in blk[2:]]
        out += [f32(f32(q) * d) for q in qs]
    return np.array(out, dtype=np.float32)


def same_bits(a, b):
    a, b = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    if a.shape != b.shape:
        return False
    na, nb = np.isnan(a), np.isnan(b)
    return bool(np.array_equal(na, nb) and np.array_equal(a.view(np.uint32)[~na], b.view(np.uint32)[~nb]))


def check(w, q8, q4, d8, d4):
    # round trip and dtype/shape
    assert q8.dtype == np.uint8 and q8.shape == (w.shape[0], NB * 34), q8.shape
    assert q4.dtype == np.uint8 and q4.shape == (w.shape[0], NB * 18), q4.shape
    assert same_bits(dequantize(q8, QT.Q8_0), d8) and same_bits(dequantize(q4, QT.Q4_0), d4)
    for r in range(w.shape[0]):
        for b in range(NB):
            xb = w[r, b * QK:(b + 1) * QK]
            assert ref_q8_0(xb) == bytes(q8[r, b * 34:(b + 1) * 34]), (r, b, "q8_0")
            assert ref_q4_0(xb) == bytes(q4[r, b * 18:(b + 1) * 18]), (r, b, "q4_0")
        assert same_bits(decode(q8[r], "q8_0"), d8[r]), (r, "q8_0 decode")
        assert same_bits(decode(q4[r], "q4_0"), d4[r]), (r, "q4_0 decode")


def stats(w):
    """Counts of the crafted situations, asserted non-zero so the fixture really pins them."""
    n = dict(q8_tie_pos_even=0, q8_tie_pos_odd=0, q8_tie_neg_even=0, q8_tie_neg_odd=0,
             q4_tie=0, q4_add_rounds_up=0, q4_fma_differs=0, q4_clamped=0)
    for r in range(w.shape[0]):
        for b in range(NB):
            xb = w[r, b * QK:(b + 1) * QK]
            amax = f32(np.max(np.abs(xb)))
            d = f32(amax / f32(127))
            id_ = f32(1) / d if d else f32(0)
            for v in xb:
                p = f32(v * id_)
                if p != np.trunc(p) and p * 2 == np.trunc(p * 2):
                    k = int(np.floor(abs(p)))
                    n[f"q8_tie_{'pos' if p > 0 else 'neg'}_{'odd' if k % 2 else 'even'}"] += 1
            i = int(np.argmax(np.abs(xb)))
            d = f32(xb[i] / f32(-8))
            id_ = f32(1) / d if d else f32(0)
            for v in xb:
                p = f32(v * id_)
                s = f32(p + f32(8.5))
                if p * 2 == np.trunc(p * 2) and p != np.trunc(p):
                    n["q4_tie"] += 1
                if int(s) != int(np.floor(Fraction(float(p)) + Fraction(17, 2))):
                    n["q4_add_rounds_up"] += 1
                if int(s) > 15:
                    n["q4_clamped"] += 1
                if id_ != 0 and int(fma_f32(v, id_, f32(8.5))) != int(s):
                    n["q4_fma_differs"] += 1
    return n


def build():
    w, desc, wbig, exp = make_inputs()
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # inf * 0 in big.*_deq
        for pre, x in (("", w), ("big.", wbig)):
            q8 = quantize(x, QT.Q8_0)
            q4 = quantize(x, QT.Q4_0)
            d8 = dequantize(q8, QT.Q8_0)
            d4 = dequantize(q4, QT.Q4_0)
            check(x, q8, q4, d8, d4)
            out.update({pre + "w": x, pre + "q8_0": q8, pre + "q4_0": q4, pre + "q8_0_deq": d8, pre + "q4_0_deq": d4})
    for r, b, q8d, q4d in exp:
        for bits, q, tsz in ((q8d, out["q8_0"], 34), (q4d, out["q4_0"], 18)):
            if bits is not None:
                got = int(q[r, b * tsz]) | int(q[r, b * tsz + 1]) << 8
                assert got == bits, (r, b, tsz, hex(got), hex(bits))
    for k, want in (("big.q8_0", BIG_Q8_0_SCALES), ("big.q4_0", BIG_Q4_0_SCALES)):
        q, tsz = out[k], 34 if k == "big.q8_0" else 18
        got = [int(q[r, b * tsz]) | int(q[r, b * tsz + 1]) << 8 for r in range(2) for b in range(NB)]
        assert got == want, (k, [hex(g) for g in got])
    # layout: row 10 block 7 holds q = j in element j and q = 15 - j in element 16 + j
    assert bytes(out["q4_0"][10, 7 * 18 + 2:8 * 18]) == bytes(j | (15 - j) << 4 for j in range(16))
    assert bytes(out["q4_0"][10, 7 * 18:7 * 18 + 2]) == struct.pack("<e", 0.25)
    z = out["q4_0"][10, 0:18]
    assert bytes(z) == b"\x00\x80" + b"\x88" * 16 and np.all(np.signbit(out["q4_0_deq"][10, 0:32]))
    assert np.all(np.isfinite(out["q8_0_deq"])) and np.all(np.isfinite(out["q4_0_deq"]))
    assert not np.all(np.isfinite(out["big.q4_0_deq"])) and not np.all(np.isfinite(out["big.q8_0_deq"]))
    st = stats(w)
    for k, v in st.items():
        assert v > 0, (k, st)
    # one metadata key: safetensors writes __metadata__ from a hash map, so several keys come
    # out in a different order on every run
    meta = {"generated_by": f"tests/ref/make_ggml_quant.py, gguf {gguf_version()}, numpy {np.__version__}, "
                            f"safetensors {safetensors.__version__}\n"
                            "crafted: " + ", ".join(f"{k}={v}" for k, v in st.items()) + "\n"
                            "rows of w:\n" + "\n".join(desc)}
    return {k: np.ascontiguousarray(v) for k, v in out.items()}, meta


def gguf_version():
    from importlib.metadata import version
    return version("gguf")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures/quant")
    ap.add_argument("--check", action="store_true", help="compare with the existing file instead of writing")
    args = ap.parse_args()
    tensors, meta = build()
    path = os.path.join(args.out, "ggml_ref.safetensors")
    with tempfile.TemporaryDirectory() as tmp:
        tpath = os.path.join(tmp, "ggml_ref.safetensors")
        save_file(tensors, tpath, metadata=meta)
        with open(tpath, "rb") as f:
            data = f.read()
    print(meta["generated_by"].split("\n")[1])
    print(f"{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")
    if args.check:
        with open(path, "rb") as f:
            old = f.read()
        if old != data:
            sys.exit(f"{path} differs from a fresh regeneration")
        print(f"{path}: identical")
        return
    os.makedirs(args.out, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
