#!/usr/bin/env python3
"""Medians per (model, test, tool) from bench/run.sh's JSON lines, the LargeForge/llama.cpp
ratio, and decode bandwidth as a fraction of the measured memory bandwidth."""
import json, statistics, sys
from collections import defaultdict

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
membw = max((r["gb_s"] for r in rows if r.get("name") == "membw"), default=None)
ts = defaultdict(list)
load = defaultdict(list)
size = {}
train = defaultdict(list)
for r in rows:
    if "tokens_per_s" in r:
        train[(r["mode"], r["tool"])].append(r)
    if "tool" not in r or "result" not in r:
        continue
    res = r["result"]
    test = f"pp{res['n_prompt']}" if res["n_prompt"] else f"tg{res['n_gen']}"
    ts[(r["model"], test, r["tool"])].append(res["avg_ts"])
    if r["tool"] == "largeforge":  # our model's bytes: what our decode streams
        load[r["model"]].append(res["load_s"])
        size[r["model"]] = res["model_size"]
for model in sorted(load):
    print(json.dumps({"name": "model_load", "model": model, "bytes": size[model],
                      "largeforge_load_s": round(statistics.median(load[model]), 3)}))
for (model, test) in sorted({(m, t) for m, t, _ in ts}):
    ours, peer = ts.get((model, test, "largeforge")), ts.get((model, test, "llama.cpp"))
    out = {"name": "summary", "model": model, "test": test,
           "largeforge_ts": round(statistics.median(ours), 2) if ours else None,
           "llamacpp_ts": round(statistics.median(peer), 2) if peer else None,
           "rounds": len(ours or [])}
    if ours and peer:
        out["ratio"] = round(statistics.median(ours) / statistics.median(peer), 3)
    if test.startswith("tg") and ours and membw:
        gbs = statistics.median(ours) * size[model] / 1e9
        out["largeforge_weight_gb_s"] = round(gbs, 1)
        out["fraction_of_membw"] = round(gbs / membw, 2)
    print(json.dumps(out))

for mode in sorted({m for m, _ in train}):
    ours, peer = train.get((mode, "largeforge")), train.get((mode, "pytorch"))
    out = {"name": "summary_train", "mode": mode}
    for tool, rs in (("largeforge", ours), ("pytorch", peer)):
        if rs:
            out[f"{tool}_tokens_per_s"] = round(statistics.median(x["tokens_per_s"] for x in rs), 2)
            out[f"{tool}_peak_rss_mb"] = max(x["peak_rss_mb"] for x in rs)
    if ours and "fraction_of_matmul_peak" in ours[0]:
        out["largeforge_gflop_per_token"] = ours[0]["gflop_per_token"]
        out["largeforge_fraction_of_matmul_peak"] = statistics.median(x["fraction_of_matmul_peak"] for x in ours)
    if ours and peer:
        out["ratio"] = round(out["largeforge_tokens_per_s"] / out["pytorch_tokens_per_s"], 3)
    print(json.dumps(out))
