#!/usr/bin/env python3
"""PEFT loads the adapter LargeForge saved, and records what it computes with it.

    python3 tests/ref/check_peft_loads.py --models tests/fixtures/models   # after lf_make_adapter

Reads tests/fixtures/models/llama_f32/lora_lf/ (adapter_config.json + adapter_model.safetensors
written by lf_lora_save, see tests/ref/lf_make_adapter.c) with
peft.PeftModel.from_pretrained on the float32 base, runs the parity batch
(llama_f32/grads.safetensors input_ids) and writes lora_lf/peft_logits.safetensors:
    logits         F32 [2, 16, V]   the PEFT model's logits (eval mode: no dropout)
    merged_logits  F32 [2, 16, V]   after merge_and_unload()
It also checks that PEFT read every tensor (its state dict equals the file) and the config fields.
The C test lora/peft_loads_ours compares LargeForge's logits for the same adapter with these.
"""
import argparse
import json
import os
import sys

import peft
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_grads import load  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", required=True)
    a = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    d = os.path.join(a.models, "llama_f32")
    od = os.path.join(d, "lora_lf")
    ids = load_file(os.path.join(d, "grads.safetensors"))["input_ids"].long()
    model = peft.PeftModel.from_pretrained(load(d), od)
    model.eval()
    cfg = json.load(open(os.path.join(od, "adapter_config.json")))
    pc = model.peft_config["default"]
    assert pc.r == cfg["r"] == 4 and pc.lora_alpha == cfg["lora_alpha"] == 8, (pc.r, pc.lora_alpha)
    saved = load_file(os.path.join(od, "adapter_model.safetensors"))
    state = peft.get_peft_model_state_dict(model)
    assert saved.keys() == state.keys(), sorted(set(saved) ^ set(state))
    assert all(torch.equal(saved[k], state[k]) for k in saved)
    with torch.no_grad():
        logits = model(input_ids=ids).logits.contiguous()
        merged = model.merge_and_unload()(input_ids=ids).logits.contiguous()
    save_file({"logits": logits, "merged_logits": merged}, os.path.join(od, "peft_logits.safetensors"),
              metadata={"source": f"tests/ref/check_peft_loads.py: peft {peft.__version__}, torch {torch.__version__}"})
    print(f"lora_lf: PEFT loaded {len(saved)} tensors; max|logits| {logits.abs().max().item():.3f}")


if __name__ == "__main__":
    main()
