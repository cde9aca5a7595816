#!/usr/bin/env python3
"""Independent readers for GPTQ and AWQ (GEMM) checkpoints, NumPy only.

They dequantize a checkpoint directory the way transformers (optimum/gptqmodel), AutoGPTQ,
AutoAWQ and vLLM read it, from the layout definitions in README_gptq.md; no torch and no
quantization library runs here.

    python3 tests/ref/read_quant.py DIR OUT.safetensors
    python3 tests/ref/read_quant.py --selftest

DIR holds config.json (with quantization_config) and model.safetensors, or shards listed in
model.safetensors.index.json. OUT gets, as F32, every quantized linear's weight [out, in]
under `<prefix>.weight` and every other tensor converted to F32 under its own name.

GPTQ (quant_method "gptq", bits 2/3/4/8), per linear <prefix>:
  qweight I32 [in*bits/32, out]  packed along in: column o is a little-endian bit stream,
                                 value i at stream bits [bits*i, bits*i + bits)
                                 (for 2/4/8 bits: word i*bits//32, bits (i % (32/bits))*bits)
  qzeros  I32 [G, out*bits/32]   packed the same way along out; checkpoint_format "gptq"
                                 (v1, the default) stores zero-1, "gptq_v2" stores zero;
                                 a v1 field of all ones (zero point 0) is rejected
  scales  F16 [G, out]
  g_idx   I32 [in]               group of each input column; may be absent only when
                                 desc_act is false (then i // group_size)
  w[o, i] = (q[i, o] - z[g_idx[i], o]) * scales[g_idx[i], o]
AWQ (quant_method "awq", version/format "gemm", bits 4), per linear <prefix>:
  qweight I32 [in, out/8]        word column j holds outputs 8j..8j+7; output
                                 8j + AWQ_ORDER[k] in bits [4k, 4k+4)
  qzeros  I32 [G, out/8]         same order, zero stored as is
  scales  F16 [G, out]           no g_idx: group of input i is i // group_size
  w[o, i] = (q[i, o] - z[i // group_size, o]) * scales[i // group_size, o]
G = ceil(in / group_size) (1 when group_size is -1).
"""
import json
import os
import struct
import sys

import numpy as np

AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]
AWQ_REVERSE_ORDER = [0, 4, 1, 5, 2, 6, 3, 7]

_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": None,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8,
    "U64": np.uint64, "U32": np.uint32, "U16": np.uint16, "U8": np.uint8, "BOOL": np.bool_,
}
_QUANT_SUFFIXES = (".qweight", ".qzeros", ".scales", ".g_idx")


class CheckpointError(ValueError):
    pass


# ----------------------------------------------------------------------------- safetensors

def read_safetensors(path):
    """Parse one .safetensors file by hand -> ({name: (dtype_str, array)}, metadata).

    BF16 is returned as float32 (exact). Offsets are checked to tile the data area.
    """
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise CheckpointError(f"{path}: too short for a safetensors header")
    (hlen,) = struct.unpack("<Q", raw[:8])
    if 8 + hlen > len(raw):
        raise CheckpointError(f"{path}: header length {hlen} past end of file")
    header = json.loads(raw[8:8 + hlen])
    data = memoryview(raw)[8 + hlen:]
    meta = header.pop("__metadata__", {}) or {}
    out = {}
    spans = []
    for name, info in header.items():
        dt = info["dtype"]
        if dt not in _DTYPES:
            raise CheckpointError(f"{path}: {name}: unsupported dtype {dt}")
        shape = tuple(info["shape"])
        b, e = info["data_offsets"]
        n = int(np.prod(shape, dtype=np.int64))
        itemsize = 2 if dt == "BF16" else np.dtype(_DTYPES[dt]).itemsize
        if not (0 <= b <= e <= len(data)) or e - b != n * itemsize:
            raise CheckpointError(f"{path}: {name}: bad data_offsets {b}..{e} for {dt}{shape}")
        spans.append((b, e))
        buf = bytes(data[b:e])
        if dt == "BF16":
            u = np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16
            arr = u.view(np.float32).reshape(shape)
        else:
            arr = np.frombuffer(buf, dtype=np.dtype(_DTYPES[dt]).newbyteorder("<"))
            arr = arr.astype(np.dtype(_DTYPES[dt]).newbyteorder("="), copy=True).reshape(shape)
        out[name] = (dt, arr)
    pos = 0
    for b, e in sorted(spans):
        if b != pos:
            raise CheckpointError(f"{path}: data area has a gap or overlap at byte {pos}")
        pos = e
    if pos != len(data):
        raise CheckpointError(f"{path}: {len(data) - pos} trailing bytes after the last tensor")
    return out, meta


def load_checkpoint(d):
    """All tensors of a checkpoint directory (single file or index + shards)."""
    idx = os.path.join(d, "model.safetensors.index.json")
    single = os.path.join(d, "model.safetensors")
    if os.path.exists(idx):
        with open(idx) as f:
            wmap = json.load(f)["weight_map"]
        tensors = {}
        for shard in sorted(set(wmap.values())):
            got, _ = read_safetensors(os.path.join(d, shard))
            for name, v in got.items():
                if name in tensors:
                    raise CheckpointError(f"{name} appears in more than one shard")
                if wmap.get(name) != shard:
                    raise CheckpointError(f"{name} is in {shard} but the index says "
                                          f"{wmap.get(name)}")
                tensors[name] = v
        missing = set(wmap) - set(tensors)
        if missing:
            raise CheckpointError(f"index lists tensors no shard holds: {sorted(missing)[:5]}")
        return tensors
    if os.path.exists(single):
        return read_safetensors(single)[0]
    raise CheckpointError(f"{d}: neither model.safetensors nor model.safetensors.index.json")


def load_quant_config(d):
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    qc = cfg.get("quantization_config")
    if qc is None:
        raise CheckpointError(f"{d}/config.json has no quantization_config")
    if "quant_method" not in qc:
        raise CheckpointError("quantization_config has no quant_method (transformers refuses it)")
    return qc


# ----------------------------------------------------------------------------- unpacking

def unpack_bitstream_rows(words, bits, n):
    """words int32 [W, C], each column a little-endian bit stream of 32-bit words ->
    uint32 [n, C] with value k at stream bits [bits*k, bits*k + bits)."""
    w = words.astype(np.int64) & 0xFFFFFFFF
    if w.shape[0] * 32 != n * bits:
        raise CheckpointError(f"{w.shape[0]} words cannot hold {n} {bits}-bit values")
    k = np.arange(n)
    start = k * bits
    lo_word = start // 32
    lo_shift = start % 32
    val = w[lo_word, :] >> lo_shift[:, None]
    # a value crossing into the next word (3 bits only) takes its high bits from there
    spill = lo_shift + bits > 32
    if np.any(spill):
        ks = np.nonzero(spill)[0]
        val[ks, :] |= w[lo_word[ks] + 1, :] << (32 - lo_shift[ks])[:, None]
    return (val & ((1 << bits) - 1)).astype(np.uint32)


def gptq_dequant(qweight, qzeros, scales, g_idx, bits, v1):
    """-> float64 [out, in] and the decoded (q [in, out], z [G, out])."""
    out_f = scales.shape[1]
    n_in = qweight.shape[0] * 32 // bits
    q = unpack_bitstream_rows(qweight, bits, n_in)                   # [in, out]
    z = unpack_bitstream_rows(qzeros.T, bits, out_f).T.astype(np.int64)  # [G, out]
    if v1:
        z = z + 1   # as every v1 reader does: a stored all-ones field reads as 2^bits
    g = g_idx.astype(np.int64)
    w = (q.astype(np.int64) - z[g, :]) * scales.astype(np.float64)[g, :]
    return w.T, q, z


def awq_dequant(qweight, qzeros, scales, group_size):
    """AutoAWQ's dequantize_gemm in NumPy: unpack nibbles in word order, then undo the
    interleave with AWQ_REVERSE_ORDER -> float64 [out, in]."""
    def unpack(x):
        u = x.astype(np.int64) & 0xFFFFFFFF
        nib = (u[:, :, None] >> (4 * np.arange(8))[None, None, :]) & 0xF  # [r, j, k]
        nib = nib.reshape(x.shape[0], -1)                                # col 8j+k
        order = (np.arange(nib.shape[1]).reshape(-1, 8)[:, AWQ_REVERSE_ORDER]).reshape(-1)
        return nib[:, order]
    q = unpack(qweight)           # [in, out]
    z = unpack(qzeros)            # [G, out]
    g = np.arange(q.shape[0]) // group_size
    w = (q - z[g, :]) * scales.astype(np.float64)[g, :]
    return w.T, q, z


# ----------------------------------------------------------------------------- readers

def _need(tensors, name, dtype, shape):
    if name not in tensors:
        raise CheckpointError(f"missing {name}")
    dt, arr = tensors[name]
    if dt != dtype:
        raise CheckpointError(f"{name}: dtype {dt}, expected {dtype}")
    if tuple(arr.shape) != tuple(shape):
        raise CheckpointError(f"{name}: shape {tuple(arr.shape)}, expected {tuple(shape)}")
    return arr


def _prefixes(tensors):
    prefixes = sorted(n[:-len(".qweight")] for n in tensors if n.endswith(".qweight"))
    for n in tensors:
        for suf in _QUANT_SUFFIXES:
            if n.endswith(suf) and n[:-len(suf)] not in prefixes:
                raise CheckpointError(f"{n} without {n[:-len(suf)]}.qweight")
    for p in prefixes:
        if p + ".weight" in tensors:
            raise CheckpointError(f"{p} has both .weight and .qweight")
    return prefixes


def _group_count(n_in, group_size):
    if group_size == -1:
        return 1
    if not isinstance(group_size, int) or group_size <= 0:
        raise CheckpointError(f"bad group_size {group_size!r}")
    return -(-n_in // group_size)


def read_gptq(tensors, qc):
    bits = qc.get("bits")
    if bits not in (2, 3, 4, 8):
        raise CheckpointError(f"gptq bits must be 2, 3, 4 or 8, got {bits!r}")
    group_size = qc.get("group_size")
    if "desc_act" not in qc:
        raise CheckpointError("gptq quantization_config has no desc_act (vLLM requires it)")
    desc_act = qc["desc_act"]
    fmt = qc.get("checkpoint_format", qc.get("format", "gptq"))
    if fmt not in ("gptq", "gptq_v2"):
        raise CheckpointError(f"unsupported checkpoint_format {fmt!r}")
    out = {}
    used = set()
    for p in _prefixes(tensors):
        qw_dt, qw = tensors[p + ".qweight"]
        if qw_dt != "I32" or qw.ndim != 2:
            raise CheckpointError(f"{p}.qweight: {qw_dt}{tuple(qw.shape)}, expected 2-D I32")
        n_out = qw.shape[1]
        n_in = qw.shape[0] * 32 // bits
        if qw.shape[0] * 32 % bits:
            raise CheckpointError(f"{p}.qweight: {qw.shape[0]} rows do not hold whole values")
        if p + ".g_idx" in tensors and tensors[p + ".g_idx"][1].ndim == 1:
            n_in = tensors[p + ".g_idx"][1].shape[0]
        if n_in * bits % 32 or n_out * bits % 32:
            raise CheckpointError(f"{p}: in {n_in} / out {n_out} not multiples of 32/{bits}")
        G = _group_count(n_in, group_size)
        _need(tensors, p + ".qweight", "I32", (n_in * bits // 32, n_out))
        qz = _need(tensors, p + ".qzeros", "I32", (G, n_out * bits // 32))
        sc = _need(tensors, p + ".scales", "F16", (G, n_out))
        gs = group_size if group_size != -1 else n_in
        default_g = np.arange(n_in) // gs
        if p + ".g_idx" in tensors:
            g = _need(tensors, p + ".g_idx", "I32", (n_in,))
            if g.min() < 0 or g.max() >= G:
                raise CheckpointError(f"{p}.g_idx: values outside [0, {G})")
            if not desc_act and not np.array_equal(g, default_g):
                raise CheckpointError(f"{p}.g_idx is not i // group_size but desc_act is false "
                                      "(vLLM's kernels would ignore it)")
            used.add(p + ".g_idx")
        elif desc_act:
            raise CheckpointError(f"{p}.g_idx missing with desc_act true")
        else:
            g = default_g
        w, _, z = gptq_dequant(qw, qz, sc, g, bits, v1=(fmt == "gptq"))
        if fmt == "gptq" and np.any(z == 1 << bits):
            # zero-1 = -1: zero point 0 has no v1 encoding. Per-field readers (vLLM's
            # gptq_gemm, AutoGPTQ) take 2^bits, gptqmodel's packed "+0x11111111" carries
            # into the next field; neither is the intended weight.
            raise CheckpointError(f"{p}.qzeros: a v1 zero field is all ones (zero point 0 "
                                  "cannot be stored with checkpoint_format gptq)")
        out[p + ".weight"] = w.astype(np.float32)
        used.update({p + ".qweight", p + ".qzeros", p + ".scales"})
    return out, used


def read_awq(tensors, qc):
    if qc.get("bits", qc.get("w_bit")) != 4:
        raise CheckpointError(f"awq bits must be 4, got {qc.get('bits')!r}")
    version = str(qc.get("version", qc.get("format", "gemm"))).lower()
    if version != "gemm":
        raise CheckpointError(f"only the AWQ GEMM layout is read here, got version {version!r}")
    if qc.get("zero_point", True) is not True:
        raise CheckpointError("awq zero_point false has no GEMM layout here")
    group_size = qc.get("group_size", qc.get("q_group_size"))
    out = {}
    used = set()
    for p in _prefixes(tensors):
        if p + ".g_idx" in tensors:
            raise CheckpointError(f"{p}.g_idx present: AWQ has no g_idx")
        qw_dt, qw = tensors[p + ".qweight"]
        if qw_dt != "I32" or qw.ndim != 2:
            raise CheckpointError(f"{p}.qweight: {qw_dt}{tuple(qw.shape)}, expected 2-D I32")
        n_in, n_out = qw.shape[0], qw.shape[1] * 8
        G = _group_count(n_in, group_size)
        if group_size != -1 and n_in % group_size:
            raise CheckpointError(f"{p}: in {n_in} not a multiple of group_size {group_size}")
        qz = _need(tensors, p + ".qzeros", "I32", (G, n_out // 8))
        sc = _need(tensors, p + ".scales", "F16", (G, n_out))
        w, _, _ = awq_dequant(qw, qz, sc, group_size if group_size != -1 else n_in)
        out[p + ".weight"] = w.astype(np.float32)
        used.update({p + ".qweight", p + ".qzeros", p + ".scales"})
    return out, used


def read_dir(d):
    """Dequantize a checkpoint directory -> {name: float32 array}."""
    qc = load_quant_config(d)
    tensors = load_checkpoint(d)
    method = str(qc["quant_method"]).lower()
    if method == "gptq":
        out, used = read_gptq(tensors, qc)
    elif method == "awq":
        out, used = read_awq(tensors, qc)
    else:
        raise CheckpointError(f"quant_method {method!r} is neither gptq nor awq")
    if not out:
        raise CheckpointError("no quantized linear (<prefix>.qweight) in the checkpoint")
    for name, (dt, arr) in tensors.items():
        if name in used:
            continue
        if dt not in ("F64", "F32", "F16", "BF16"):
            raise CheckpointError(f"{name}: unquantized tensor of dtype {dt}")
        out[name] = arr.astype(np.float32)
    return out


def main_cli(d, outp):
    from safetensors.numpy import save_file
    out = read_dir(d)
    save_file({k: np.ascontiguousarray(v) for k, v in sorted(out.items())}, outp)


# ----------------------------------------------------------------------------- self-test
# The packers below are written from the layout definitions with Python integers, a
# different route from the vectorised unpackers above.

def pack_bitstream_rows(vals, bits):
    """uint [n, C] -> int32 [n*bits/32, C]; value k at stream bits [bits*k, bits*k+bits)."""
    n, C = vals.shape
    assert n * bits % 32 == 0
    nw = n * bits // 32
    out = np.zeros((nw, C), dtype=np.uint32)
    for c in range(C):
        acc = 0
        for k in range(n):
            v = int(vals[k, c])
            assert 0 <= v < (1 << bits)
            acc |= v << (bits * k)
        for r in range(nw):
            out[r, c] = (acc >> (32 * r)) & 0xFFFFFFFF
    return out.view(np.int32)


def pack_gptq(q, zeros, scales_f16, bits, v1):
    """q [out, in] codes, zeros [out, G], scales [out, G] -> qweight, qzeros, scales."""
    qweight = pack_bitstream_rows(q.T, bits)
    zstore = zeros - 1 if v1 else zeros
    zstore = zstore & ((1 << bits) - 1)   # v1 zero 0 -> all ones (a reader sees 2^bits)
    qzeros = pack_bitstream_rows(zstore, bits).T   # packed along out
    return qweight, np.ascontiguousarray(qzeros), np.ascontiguousarray(scales_f16.T)


def pack_awq(q, zeros, scales_f16):
    """AutoAWQ WQLinear_GEMM.from_linear's loop: word column j, nibble k holds output
    8j + AWQ_ORDER[k]."""
    def pack(x):    # x [rows, out]
        rows, n = x.shape
        res = np.zeros((rows, n // 8), dtype=np.uint32)
        for j in range(n // 8):
            for k in range(8):
                res[:, j] |= x[:, 8 * j + AWQ_ORDER[k]].astype(np.uint32) << np.uint32(4 * k)
        return res.view(np.int32)
    return pack(q.T), pack(zeros.T), np.ascontiguousarray(scales_f16.T)


def _write_st(path, tensors):
    """Minimal safetensors writer (needed for BF16, which NumPy lacks)."""
    header, blobs, off = {}, [], 0
    for name, (dt, arr) in tensors.items():
        if dt == "BF16":
            b = (np.ascontiguousarray(arr, dtype=np.float32).view(np.uint32) >> 16) \
                .astype("<u2").tobytes()
        else:
            b = np.ascontiguousarray(arr).astype(
                np.dtype(_DTYPES[dt]).newbyteorder("<")).tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def _write_dir(d, qc, tensors, shards=1):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"model_type": "llama", "quantization_config": qc}, f)
    names = sorted(tensors)
    if shards == 1:
        _write_st(os.path.join(d, "model.safetensors"), tensors)
        return
    wmap = {}
    for s in range(shards):
        fn = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: tensors[n] for n in names[s::shards]}
        _write_st(os.path.join(d, fn), part)
        wmap.update({n: fn for n in part})
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": wmap}, f)


def _rand_layer(rng, n_out, n_in, bits, G, zero_lo, zero_hi):
    maxq = (1 << bits) - 1
    q = rng.integers(0, maxq + 1, size=(n_out, n_in))
    q[0, :] = maxq        # exercise the top bit of every field
    q[1, :] = 0
    zeros = rng.integers(zero_lo, zero_hi + 1, size=(n_out, G))
    scales = (rng.uniform(0.5, 2.0, size=(n_out, G)) * 1e-2).astype(np.float16)
    return q, zeros, scales


def selftest():
    import shutil
    import tempfile
    from safetensors.numpy import save_file

    rng = np.random.default_rng(7)
    fails = 0

    def check(cond, what):
        nonlocal fails
        if not cond:
            fails += 1
            print(f"FAIL: {what}")

    def expect_error(fn, what):
        try:
            fn()
        except CheckpointError:
            return
        check(False, f"no error for {what}")

    passthrough = {
        "model.embed_tokens.weight": ("BF16", rng.standard_normal((64, 32)).astype(np.float32)),
        "model.norm.weight": ("F16", rng.standard_normal(32).astype(np.float16)),
        "model.layers.0.input_layernorm.weight": ("F32", rng.standard_normal(64)
                                                  .astype(np.float32)),
    }
    bf = passthrough["model.embed_tokens.weight"][1]
    passthrough["model.embed_tokens.weight"] = (
        "BF16", ((bf.view(np.uint32) >> 16) << 16).view(np.float32))   # BF16-exact
    td = tempfile.mkdtemp()
    try:
        # GPTQ: bits x desc_act x format x sharding
        cases = [(4, 32, False, "gptq", 1), (4, 64, True, "gptq", 2), (8, 32, True, "gptq", 1),
                 (8, -1, False, "gptq", 3), (4, 32, True, "gptq_v2", 1), (2, 64, False, "gptq", 1),
                 (3, 32, True, "gptq", 2)]
        for bits, gsz, desc_act, fmt, shards in cases:
            layers = {"model.layers.0.self_attn.q_proj": (64, 96),
                      "model.layers.0.mlp.down_proj": (32, 128),
                      "lm_head": (64, 64)}
            tensors = dict(passthrough)
            expect = {}
            maxq = (1 << bits) - 1
            for p, (n_out, n_in) in layers.items():
                gs = gsz if gsz != -1 else n_in
                G = -(-n_in // gs)
                # v1 cannot store zero 0 (it becomes -1): draw zeros from 1 there
                q, zeros, scales = _rand_layer(rng, n_out, n_in, bits, G,
                                               1 if fmt == "gptq" else 0, maxq)
                g = np.arange(n_in) // gs
                if desc_act:
                    g = g[rng.permutation(n_in)]      # shuffled act-order g_idx
                qw, qz, sc = pack_gptq(q, zeros, scales, bits, v1=(fmt == "gptq"))
                tensors[p + ".qweight"] = ("I32", qw)
                tensors[p + ".qzeros"] = ("I32", qz)
                tensors[p + ".scales"] = ("F16", sc)
                if desc_act or bits != 8:       # g_idx may be omitted without desc_act
                    tensors[p + ".g_idx"] = ("I32", g.astype(np.int32))
                expect[p + ".weight"] = ((q - zeros[:, g]) *
                                         scales.astype(np.float64)[:, g]).astype(np.float32)
            tensors["model.layers.0.self_attn.q_proj.bias"] = (
                "F16", rng.standard_normal(64).astype(np.float16))
            qc = {"quant_method": "gptq", "bits": bits, "group_size": gsz,
                  "desc_act": desc_act, "sym": False, "checkpoint_format": fmt}
            d = os.path.join(td, f"gptq_{bits}_{gsz}_{desc_act}_{fmt}_{shards}")
            _write_dir(d, qc, tensors, shards)
            got = read_dir(d)
            for k, v in expect.items():
                check(np.array_equal(got[k], v), f"gptq {bits}b g{gsz} act={desc_act} {fmt}: {k}")
            for k, (_, v) in passthrough.items():
                check(got[k].dtype == np.float32 and np.array_equal(got[k], v.astype(np.float32)),
                      f"passthrough {k}")
            check("model.layers.0.self_attn.q_proj.bias" in got, "bias passthrough")
            check(not any(k.endswith((".qweight", ".qzeros", ".scales", ".g_idx")) for k in got),
                  "quantized parts must not be passed through")
            print(f"gptq bits={bits} group={gsz:>3} desc_act={desc_act!s:5} {fmt:7} "
                  f"shards={shards}: {len(expect)} linears round-trip exactly")

        # end to end: gptq_ref's output, packed v1, reads back as its dequantized weight
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import gptq_ref
        W, H = gptq_ref._problem(np.random.default_rng(3), rows=64, cols=128, n=512)
        r = gptq_ref.gptq_quantize(W, H, bits=4, group_size=32, sym=True, desc_act=True,
                                   scale_f16=True)
        qw, qz, sc = pack_gptq(r["q"], r["zeros"], r["scales"].astype(np.float16), 4, v1=True)
        d = os.path.join(td, "e2e")
        _write_dir(d, {"quant_method": "gptq", "bits": 4, "group_size": 32, "desc_act": True,
                       "sym": True}, {"m.qweight": ("I32", qw), "m.qzeros": ("I32", qz),
                                      "m.scales": ("F16", sc),
                                      "m.g_idx": ("I32", r["g_idx"].astype(np.int32))})
        check(np.array_equal(read_dir(d)["m.weight"], r["dequant"].astype(np.float32)),
              "gptq_ref -> v1 checkpoint -> reader")

        # the v1 zero=0 hazard: readers add 1 to the stored all-ones field
        q, zeros, scales = _rand_layer(rng, 32, 64, 4, 2, 0, 0)
        qw, qz, sc = pack_gptq(q, zeros, scales, 4, v1=True)
        w, _, z = gptq_dequant(qw, qz, sc, np.arange(64) // 32, 4, v1=True)
        check(np.all(z == 16), "v1 zero 0 decodes as 16 (what per-field v1 readers compute)")
        d = os.path.join(td, "v1_zero0")
        _write_dir(d, {"quant_method": "gptq", "bits": 4, "group_size": 32, "desc_act": False},
                   {"m.qweight": ("I32", qw), "m.qzeros": ("I32", qz), "m.scales": ("F16", sc)})
        expect_error(lambda: read_dir(d), "v1 checkpoint with zero point 0")

        # hand-packed words pin the bit order: GPTQ value i at bits 4i of word 0 ...
        qw = np.array([[0x76543210], [0xFEDCBA98]], dtype=np.uint32).view(np.int32)
        check(np.array_equal(unpack_bitstream_rows(qw, 4, 16)[:, 0], np.arange(16)),
              "gptq 4-bit nibble order")
        # ... AWQ nibble k of word j holds output 8j + AWQ_ORDER[k]
        word = sum(AWQ_ORDER[k] << (4 * k) for k in range(8))       # 0x75316420
        check(word == 0x75316420, "AWQ_ORDER word")
        wq, _, _ = awq_dequant(np.array([[word]], np.uint32).view(np.int32),
                               np.zeros((1, 1), np.int32), np.ones((1, 8), np.float16), 1)
        check(np.array_equal(wq[:, 0], np.arange(8)), "awq nibble order")
        check([AWQ_ORDER[r] for r in AWQ_REVERSE_ORDER] == list(range(8)),
              "AWQ_REVERSE_ORDER inverts AWQ_ORDER")
        # 3-bit: value 10 straddles words 0 and 1 (AutoGPTQ's pack: bits 30-31 | bit 0)
        v = np.zeros((32, 1), np.uint32)
        v[10, 0] = 5
        pw = pack_bitstream_rows(v, 3).view(np.uint32)
        check(pw[0, 0] == (5 & 3) << 30 and pw[1, 0] == (5 >> 2) & 1, "3-bit straddle")

        # AWQ: single file and sharded, group 32/64/128
        for gsz, shards in ((32, 1), (64, 2), (128, 1)):
            layers = {"model.layers.0.self_attn.o_proj": (64, 128),
                      "model.layers.0.mlp.gate_proj": (128, 128)}
            tensors = dict(passthrough)
            expect = {}
            for p, (n_out, n_in) in layers.items():
                G = n_in // gsz
                q, zeros, scales = _rand_layer(rng, n_out, n_in, 4, G, 0, 15)
                qw, qz, sc = pack_awq(q, zeros, scales)
                tensors[p + ".qweight"] = ("I32", qw)
                tensors[p + ".qzeros"] = ("I32", qz)
                tensors[p + ".scales"] = ("F16", sc)
                g = np.arange(n_in) // gsz
                expect[p + ".weight"] = ((q - zeros[:, g]) *
                                         scales.astype(np.float64)[:, g]).astype(np.float32)
            qc = {"quant_method": "awq", "version": "gemm", "bits": 4, "group_size": gsz,
                  "zero_point": True, "modules_to_not_convert": None}
            d = os.path.join(td, f"awq_{gsz}_{shards}")
            _write_dir(d, qc, tensors, shards)
            got = read_dir(d)
            for k, v in expect.items():
                check(np.array_equal(got[k], v), f"awq g{gsz}: {k}")
            print(f"awq  bits=4 group={gsz:>3} shards={shards}: {len(expect)} linears "
                  "round-trip exactly")

        # loud failures
        base = os.path.join(td, "gptq_4_32_False_gptq_1")

        def mutate(name, fn_tensors=None, fn_qc=None):
            src = load_checkpoint(base)
            with open(os.path.join(base, "config.json")) as f:
                qc = json.load(f)["quantization_config"]
            if fn_tensors:
                fn_tensors(src)
            if fn_qc:
                fn_qc(qc)
            d = os.path.join(td, "bad_" + name)
            _write_dir(d, qc, src)
            return lambda: read_dir(d)

        p = "model.layers.0.self_attn.q_proj"
        expect_error(mutate("scales_shape", lambda t: t.__setitem__(
            p + ".scales", ("F16", t[p + ".scales"][1][:-1]))), "scales with a missing group")
        expect_error(mutate("scales_dtype", lambda t: t.__setitem__(
            p + ".scales", ("F32", t[p + ".scales"][1].astype(np.float32)))), "F32 scales")
        expect_error(mutate("qzeros_missing", lambda t: t.pop(p + ".qzeros")), "missing qzeros")
        expect_error(mutate("gidx_range", lambda t: t.__setitem__(
            p + ".g_idx", ("I32", t[p + ".g_idx"][1] + 5))), "g_idx out of range")
        expect_error(mutate("gidx_perm", lambda t: t.__setitem__(
            p + ".g_idx", ("I32", t[p + ".g_idx"][1][::-1].copy()))),
            "shuffled g_idx with desc_act false")
        expect_error(mutate("no_desc_act", fn_qc=lambda c: c.pop("desc_act")), "no desc_act")
        expect_error(mutate("no_method", fn_qc=lambda c: c.pop("quant_method")),
                     "no quant_method")
        expect_error(mutate("v3", fn_qc=lambda c: c.__setitem__("checkpoint_format", "x")),
                     "unknown checkpoint_format")
        expect_error(mutate("both", lambda t: t.__setitem__(
            p + ".weight", ("F32", np.zeros((64, 96), np.float32)))), "weight and qweight")
        expect_error(mutate("awq_gidx", fn_qc=lambda c: c.update(
            quant_method="awq", version="gemm")), "AWQ with g_idx")
        shutil.copytree(base, os.path.join(td, "bad_trunc"))
        fn = os.path.join(td, "bad_trunc", "model.safetensors")
        with open(fn, "r+b") as f:
            f.truncate(os.path.getsize(fn) - 4)
        expect_error(lambda: read_dir(os.path.join(td, "bad_trunc")), "truncated file")

        # the hand-written safetensors parser agrees with the safetensors package
        arrs = {"a": rng.standard_normal((3, 5)).astype(np.float16),
                "b": rng.integers(-9, 9, (7,)).astype(np.int32)}
        fn = os.path.join(td, "x.safetensors")
        save_file(arrs, fn)
        got, _ = read_safetensors(fn)
        check(all(np.array_equal(got[k][1], v) for k, v in arrs.items()), "parser vs safetensors")

        # CLI
        outp = os.path.join(td, "out.safetensors")
        main_cli(os.path.join(td, "awq_64_2"), outp)
        got, _ = read_safetensors(outp)
        check(got["model.layers.0.mlp.gate_proj.weight"][0] == "F32" and
              got["model.layers.0.mlp.gate_proj.weight"][1].shape == (128, 128), "CLI output")
    finally:
        shutil.rmtree(td)
    print("selftest:", "OK" if fails == 0 else f"{fails} failure(s)")
    return fails == 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--selftest"]:
        sys.exit(0 if selftest() else 1)
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main_cli(sys.argv[1], sys.argv[2])
