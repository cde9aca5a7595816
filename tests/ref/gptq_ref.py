#!/usr/bin/env python3
"""Independent float64 NumPy reference for GPTQ (AutoGPTQ's GPTQ.fasterquant).

Written from AutoGPTQ's auto_gptq/quantization/gptq.py (GPTQ.fasterquant) and
auto_gptq/quantization/quantizer.py (Quantizer.find_params, quantize); no torch and no
AutoGPTQ code runs here. See README_gptq.md for the line-by-line correspondence.

    gptq_quantize(W, H, bits=4, group_size=128, sym=True, desc_act=False,
                  damp_percent=0.01, blocksize=128, static_groups=False, scale_f16=False)
        -> dict(q, scales, zeros, g_idx, perm, dequant)

CLI:
    python3 tests/ref/gptq_ref.py IN.safetensors OUT.safetensors
    python3 tests/ref/gptq_ref.py --selftest
IN holds W (F32 [rows, cols]) and H (F64 or F32 [cols, cols]); the options come from the
safetensors __metadata__: either one key "options" whose value is a JSON object, or one key
per option whose value is JSON ("4", "true", "0.01"). Known options: bits, group_size, sym,
desc_act, damp_percent, blocksize, static_groups, scale_f16. OUT gets q (I32 [rows, cols]),
scales (F32 [rows, n_groups]), zeros (I32 [rows, n_groups]), g_idx (I32 [cols]),
perm (I32 [cols]) and dequant (F32 [rows, cols]).
"""
import json
import sys

import numpy as np

OPTION_TYPES = {
    "bits": int,
    "group_size": int,
    "sym": bool,
    "desc_act": bool,
    "damp_percent": float,
    "blocksize": int,
    "static_groups": bool,
    "scale_f16": bool,
}


def find_params(x, bits, sym):
    """Quantizer.find_params(x, weight=True) with perchannel=True, mse=False.

    x: [rows, n] -> (scale [rows], zero [rows]) as float64; zero holds integers.
    """
    maxq = 2 ** bits - 1
    xmin = np.minimum(x.min(axis=1), 0.0)
    xmax = np.maximum(x.max(axis=1), 0.0)
    if sym:
        xmax = np.maximum(np.abs(xmin), xmax)
        xmin = np.where(xmin < 0, -xmax, xmin)
    both = (xmin == 0) & (xmax == 0)
    xmin = np.where(both, -1.0, xmin)
    xmax = np.where(both, 1.0, xmax)
    scale = (xmax - xmin) / maxq
    if sym:
        zero = np.full_like(scale, (maxq + 1) / 2)
    else:
        zero = np.round(-xmin / scale)  # half to even, like torch.round
    return scale, zero


def quantize_codes(x, scale, zero, maxq):
    """Integer codes of quantizer.quantize: clamp(round(x / scale) + zero, 0, maxq)."""
    return np.clip(np.round(x / scale) + zero, 0, maxq)


def _params(x, bits, sym, scale_f16):
    scale, zero = find_params(x, bits, sym)
    if scale_f16:
        # LargeForge's deviation: the scale used from here on (error feedback included) is
        # the f16 value it stores, and an asymmetric zero is computed from that scale.
        scale = scale.astype(np.float16).astype(np.float64)
        if not np.all(np.isfinite(scale) & (scale > 0)):
            raise ValueError("scale_f16: a group scale rounds to 0 or inf in float16")
        if not sym:
            xmin = np.minimum(x.min(axis=1), 0.0)
            xmin = np.where((xmin == 0) & (x.max(axis=1) <= 0), -1.0, xmin)  # find_params' [-1, 1]
            zero = np.round(-xmin / scale)
    return scale, zero


def gptq_quantize(W, H, bits=4, group_size=128, sym=True, desc_act=False,
                  damp_percent=0.01, blocksize=128, static_groups=False, scale_f16=False):
    """AutoGPTQ GPTQ.fasterquant in float64.

    W: [rows, cols] weight (out x in), H: [cols, cols] Hessian (2/n * X^T X as AutoGPTQ's
    add_batch builds it; any positive scaling gives the same result).
    Returns a dict, everything in the ORIGINAL column order:
      q       int64 [rows, cols]    codes in [0, 2^bits - 1]
      scales  float64 [rows, G]     per group (G = ceil(cols / group_size), 1 if -1);
                                    group g is the g-th group in quantization order
      zeros   int64 [rows, G]
      g_idx   int64 [cols]          group of each input column
      perm    int64 [cols]          act-order permutation (identity without desc_act)
      dequant float64 [rows, cols]  scales[:, g_idx] * (q - zeros[:, g_idx])
    """
    W = np.array(W, dtype=np.float64)
    H = np.array(H, dtype=np.float64)
    if W.ndim != 2 or H.shape != (W.shape[1], W.shape[1]):
        raise ValueError(f"shape mismatch: W {W.shape}, H {H.shape}")
    if bits not in (2, 3, 4, 8):
        raise ValueError(f"bits must be 2, 3, 4 or 8, got {bits}")
    if group_size != -1 and group_size <= 0:
        raise ValueError(f"group_size must be > 0 or -1, got {group_size}")
    if static_groups and group_size == -1:
        raise ValueError("static_groups needs a group_size")
    rows, cols = W.shape
    maxq = 2 ** bits - 1

    # fasterquant: `if not self.quantizer.ready(): find_params(W)` runs before the dead
    # columns are zeroed; it is the quantizer used when group_size == -1.
    scale, zero = _params(W, bits, sym, scale_f16)

    dead = np.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0

    scale_list, zero_list = [], []
    groups = []
    if static_groups:
        for i in range(0, cols, group_size):
            s, z = _params(W[:, i:i + group_size], bits, sym, scale_f16)
            scale_list.append(s)
            zero_list.append(z)
            groups.append((s, z))

    if desc_act:
        # torch.argsort(diag, descending=True) is not stable; ties are taken here in
        # ascending column order (a stable sort of -diag).
        perm = np.argsort(-np.diag(H), kind="stable").astype(np.int64)
        W = W[:, perm]
        H = H[perm][:, perm]
        invperm = np.argsort(perm)
    else:
        perm = np.arange(cols, dtype=np.int64)

    damp = damp_percent * np.mean(np.diag(H))
    H[np.arange(cols), np.arange(cols)] += damp
    # cholesky -> cholesky_inverse -> cholesky(upper=True)
    L = np.linalg.cholesky(H)
    Linv = np.linalg.inv(L)
    Hinv_full = Linv.T @ Linv
    Hinv = np.linalg.cholesky(Hinv_full).T

    Q = np.zeros_like(W)
    Qint = np.zeros(W.shape, dtype=np.int64)
    now_idx = 1
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        count = i2 - i1
        W1 = W[:, i1:i2].copy()
        Q1 = np.zeros_like(W1)
        Qi1 = np.zeros(W1.shape, dtype=np.int64)
        Err1 = np.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        for i in range(count):
            w = W1[:, i].copy()
            d = Hinv1[i, i]
            if group_size != -1:
                if not static_groups:
                    if (i1 + i) % group_size == 0:
                        # reads the outer W (lazy block updates only), not W1
                        scale, zero = _params(W[:, i1 + i:i1 + i + group_size],
                                              bits, sym, scale_f16)
                    if (i1 + i) // group_size - now_idx == -1:
                        scale_list.append(scale)
                        zero_list.append(zero)
                        now_idx += 1
                else:
                    idx = i1 + i
                    if desc_act:
                        idx = perm[idx]
                    scale, zero = groups[idx // group_size]
            qi = quantize_codes(w, scale, zero, maxq)
            q = scale * (qi - zero)
            Q1[:, i] = q
            Qi1[:, i] = qi.astype(np.int64)
            err1 = (w - q) / d
            W1[:, i:] -= np.outer(err1, Hinv1[i, i:])
            Err1[:, i] = err1
        Q[:, i1:i2] = Q1
        Qint[:, i1:i2] = Qi1
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]

    gs = group_size if group_size != -1 else cols
    if static_groups and desc_act:
        g_idx = perm.astype(np.int64) // gs
    else:
        g_idx = np.arange(cols, dtype=np.int64) // gs
    if desc_act:
        Q = Q[:, invperm]
        Qint = Qint[:, invperm]
        g_idx = g_idx[invperm]
    if not scale_list:
        scale_list.append(scale)
        zero_list.append(zero)
    scales = np.stack(scale_list, axis=1)
    zeros = np.stack(zero_list, axis=1).astype(np.int64)
    dequant = scales[:, g_idx] * (Qint - zeros[:, g_idx])
    # the codes reproduce the dequantized weight that fasterquant writes back
    assert np.array_equal(dequant, Q)
    out = {"q": Qint, "scales": scales, "zeros": zeros, "g_idx": g_idx, "perm": perm,
           "dequant": dequant}
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def rtn_quantize(W, bits=4, group_size=128, sym=True):
    """Round to nearest with the same quantizer (find_params per group of W, no feedback)."""
    W = np.asarray(W, dtype=np.float64)
    maxq = 2 ** bits - 1
    gs = group_size if group_size != -1 else W.shape[1]
    out = np.empty_like(W)
    for i in range(0, W.shape[1], gs):
        x = W[:, i:i + gs]
        s, z = find_params(x, bits, sym)
        out[:, i:i + gs] = s[:, None] * (quantize_codes(x, s[:, None], z[:, None], maxq)
                                         - z[:, None])
    return out


def output_error(W, Wq, H):
    """trace((W - Wq) H (W - Wq)^T), the quantity GPTQ minimises."""
    D = np.asarray(W, np.float64) - Wq
    return float(np.einsum("ij,jk,ik->", D, H, D))


def _parse_options(meta):
    opts = {}
    if meta:
        if "options" in meta:
            opts.update(json.loads(meta["options"]))
        for k in OPTION_TYPES:
            if k in meta:
                opts[k] = json.loads(meta[k])
    unknown = set(opts) - set(OPTION_TYPES)
    if unknown:
        raise ValueError(f"unknown options: {sorted(unknown)}")
    for k, v in opts.items():
        t = OPTION_TYPES[k]
        if t is bool and not isinstance(v, bool):
            raise ValueError(f"option {k} must be true/false, got {v!r}")
        if t is int and (isinstance(v, bool) or not isinstance(v, int)):
            raise ValueError(f"option {k} must be an integer, got {v!r}")
        if t is float and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise ValueError(f"option {k} must be a number, got {v!r}")
    return opts


def main_cli(inp, outp):
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(inp, framework="numpy") as f:
        meta = f.metadata()
        keys = set(f.keys())
        if not {"W", "H"} <= keys:
            raise ValueError(f"{inp}: needs tensors W and H, has {sorted(keys)}")
        W = np.array(f.get_tensor("W"))
        H = np.array(f.get_tensor("H"))
    if W.dtype != np.float32:
        raise ValueError(f"W must be F32, got {W.dtype}")
    if H.dtype not in (np.float32, np.float64):
        raise ValueError(f"H must be F32 or F64, got {H.dtype}")
    opts = _parse_options(meta)
    r = gptq_quantize(W, H, **opts)
    out = {
        "q": r["q"].astype(np.int32),
        "scales": r["scales"].astype(np.float32),
        "zeros": r["zeros"].astype(np.int32),
        "g_idx": r["g_idx"].astype(np.int32),
        "perm": r["perm"].astype(np.int32),
        "dequant": r["dequant"].astype(np.float32),
    }
    # safetensors.numpy.save_file writes the raw buffer of a Fortran-ordered array
    # (as fancy indexing with invperm makes) in the wrong order: force C order.
    save_file({k: np.ascontiguousarray(v) for k, v in out.items()}, outp,
              metadata={"options": json.dumps(opts, sort_keys=True)})


# ----------------------------------------------------------------------------- self-test

def _gptq_unblocked(W, H, bits, group_size, sym, damp_percent):
    """Textbook GPTQ (no lazy batches, every remaining column updated after each column,
    group parameters from the fully updated W). fasterquant equals it when every group
    starts at a block start (blocksize 1, or blocksize == group_size)."""
    W = np.array(W, np.float64)
    H = np.array(H, np.float64)
    cols = W.shape[1]
    maxq = 2 ** bits - 1
    dead = np.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H[np.arange(cols), np.arange(cols)] += damp_percent * np.mean(np.diag(H))
    U = np.linalg.cholesky(np.linalg.inv(H)).T
    Q = np.zeros_like(W)
    for j in range(cols):
        if j % group_size == 0:
            s, z = find_params(W[:, j:j + group_size], bits, sym)
        Q[:, j] = s * (quantize_codes(W[:, j], s, z, maxq) - z)
        e = (W[:, j] - Q[:, j]) / U[j, j]
        W[:, j:] -= np.outer(e, U[j, j:])
    return Q


def _problem(rng, rows=96, cols=256, n=2048):
    # correlated inputs with uneven per-column energy (so act order matters)
    A = rng.standard_normal((cols, cols)) / np.sqrt(cols) + np.eye(cols)
    X = rng.standard_normal((n, cols)) @ A
    X *= np.exp(rng.standard_normal(cols))[None, :]
    H = 2.0 / n * X.T @ X
    W = rng.standard_normal((rows, cols)) * 0.02
    W[:, rng.choice(cols, 4, replace=False)] *= 8.0  # a few outlier columns
    return W, H


def selftest():
    rng = np.random.default_rng(1234)
    W, H = _problem(rng)
    fails = 0

    def check(cond, what):
        nonlocal fails
        if not cond:
            fails += 1
            print(f"FAIL: {what}")

    print("GPTQ vs round-to-nearest, output error trace((W-Q) H (W-Q)^T), W 96x256, 4 bits")
    print(f"{'sym':>5} {'group':>5} {'desc_act':>8} {'RTN':>11} {'GPTQ':>11} {'GPTQ/RTN':>9}")
    for sym in (True, False):
        for gs in (32, 64, 128):
            rtn = output_error(W, rtn_quantize(W, 4, gs, sym), H)
            for da in (False, True):
                r = gptq_quantize(W, H, bits=4, group_size=gs, sym=sym, desc_act=da)
                e = output_error(W, r["dequant"], H)
                print(f"{str(sym):>5} {gs:>5} {str(da):>8} {rtn:11.5g} {e:11.5g} {e / rtn:9.3f}")
                check(e < rtn, f"GPTQ not better than RTN (sym={sym} gs={gs} desc_act={da})")
                g = r["g_idx"]
                check(np.array_equal(
                    r["dequant"], r["scales"][:, g] * (r["q"] - r["zeros"][:, g])),
                    "dequant != scales[g_idx] * (q - zeros[g_idx])")
                check(r["q"].min() >= 0 and r["q"].max() <= 15, "codes out of range")
                counts = np.bincount(g, minlength=r["scales"].shape[1])
                check(np.all(counts == gs), "each group must hold group_size columns")
                if da:
                    check(not np.array_equal(r["perm"], np.arange(W.shape[1])),
                          "desc_act left the identity permutation")
                    check(np.array_equal(g[r["perm"]], np.arange(W.shape[1]) // gs),
                          "g_idx must be i // group_size in permuted order")

    # blocked fasterquant == textbook GPTQ when groups start at block starts
    for gs, bs in ((32, 32), (64, 1), (128, 128)):
        a = gptq_quantize(W, H, bits=4, group_size=gs, sym=False, blocksize=bs)["dequant"]
        b = _gptq_unblocked(W, H, 4, gs, False, 0.01)
        check(np.allclose(a, b, rtol=0, atol=1e-12),
              f"blocked (bs={bs}) != unblocked for group {gs}")
    # ...and the outer-W read in find_params matters when groups start inside a block
    a = gptq_quantize(W, H, bits=4, group_size=32, sym=False, blocksize=128)
    b = _gptq_unblocked(W, H, 4, 32, False, 0.01)
    check(not np.allclose(a["dequant"], b, rtol=0, atol=1e-12),
          "find_params reading the outer W made no difference (quirk not exercised)")
    print(f"group 32 inside block 128: outer-W quirk changes "
          f"{np.mean(a['dequant'] != b) * 100:.1f}% of the weights vs textbook GPTQ")

    # 8 bits, per-channel (-1), static groups, f16 scales, dead columns
    r8 = gptq_quantize(W, H, bits=8, group_size=64, sym=True, desc_act=True)
    check(r8["q"].max() <= 255 and np.all(r8["zeros"] == 128), "8-bit sym zero must be 128")
    check(output_error(W, r8["dequant"], H) < output_error(W, rtn_quantize(W, 8, 64), H),
          "8-bit GPTQ not better than RTN")
    rpc = gptq_quantize(W, H, bits=4, group_size=-1, sym=True)
    check(rpc["scales"].shape == (96, 1) and np.all(rpc["g_idx"] == 0), "group -1 layout")
    s_ref, _ = find_params(W, 4, True)
    check(np.array_equal(rpc["scales"][:, 0], s_ref), "group -1 uses find_params(W)")
    rst = gptq_quantize(W, H, bits=4, group_size=64, sym=False, desc_act=True,
                        static_groups=True)
    check(np.array_equal(rst["g_idx"], np.arange(256) // 64),
          "static groups: g_idx is i // group_size in original order")
    for j in range(4):
        s, z = find_params(W[:, 64 * j:64 * j + 64], 4, False)
        check(np.array_equal(rst["scales"][:, j], s) and np.array_equal(rst["zeros"][:, j], z),
              "static groups: params from the original W")
    rf = gptq_quantize(W, H, bits=4, group_size=64, sym=True, desc_act=True, scale_f16=True)
    check(np.array_equal(rf["scales"], rf["scales"].astype(np.float16).astype(np.float64)),
          "scale_f16: scales must be float16 values")
    g = rf["g_idx"]
    check(np.array_equal(rf["dequant"], rf["scales"][:, g] * (rf["q"] - rf["zeros"][:, g])),
          "scale_f16: dequant uses the f16 scales")
    Hd = H.copy()
    Hd[:, 7] = 0
    Hd[7, :] = 0
    rd = gptq_quantize(W, Hd, bits=4, group_size=32, sym=True, desc_act=True)
    check(np.all(rd["dequant"][:, 7] == 0), "dead column must quantize to 0")

    # CLI round trip
    import os
    import tempfile
    from safetensors import safe_open
    from safetensors.numpy import save_file
    with tempfile.TemporaryDirectory() as td:
        inp = os.path.join(td, "in.safetensors")
        outp = os.path.join(td, "out.safetensors")
        opts = {"bits": 4, "group_size": 64, "sym": False, "desc_act": True,
                "damp_percent": 0.01, "scale_f16": True}
        save_file({"W": W.astype(np.float32), "H": H}, inp,
                  metadata={"options": json.dumps(opts)})
        main_cli(inp, outp)
        ref = gptq_quantize(W.astype(np.float32), H, **opts)
        with safe_open(outp, framework="numpy") as f:
            check(np.array_equal(f.get_tensor("q"), ref["q"]), "CLI q")
            check(np.array_equal(f.get_tensor("g_idx"), ref["g_idx"]), "CLI g_idx")
            check(np.array_equal(f.get_tensor("scales"), ref["scales"].astype(np.float32)),
                  "CLI scales")
            check(f.get_tensor("q").dtype == np.int32 and
                  f.get_tensor("dequant").dtype == np.float32, "CLI dtypes")
        save_file({"W": W.astype(np.float32), "H": H.astype(np.float32)}, inp,
                  metadata={"bits": "8", "group_size": "128", "desc_act": "true"})
        main_cli(inp, outp)
        with safe_open(outp, framework="numpy") as f:
            check(f.get_tensor("q").max() > 15, "CLI per-key options (bits 8)")

    print("selftest:", "OK" if fails == 0 else f"{fails} failure(s)")
    return fails == 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--selftest"]:
        sys.exit(0 if selftest() else 1)
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main_cli(sys.argv[1], sys.argv[2])
