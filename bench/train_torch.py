#!/usr/bin/env python3
"""PyTorch side of the LargeForge training-speed comparison.

Loads a HF model directory in float32 (random-weight safetensors + config.json,
no tokenizer needed), builds a fixed random batch of token ids (labels =
input_ids) and times full training steps:
    zero_grad -> forward(labels) -> backward -> clip_grad_norm_(1.0) -> AdamW step
--mode lora wraps the model with peft LoRA (r=16, alpha=32, all attn+MLP proj).

Prints ONE JSON line on stdout.

  python3 bench/train_torch.py --model ~/.cache/largeforge-bench/smollm2-135m-f32 \
      --batch 4 --seq 256 --threads 2 --steps 5 --warmup 1 --mode full
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--mode", choices=["full", "lora"], default="full")
    ap.add_argument("--attn", choices=["eager", "sdpa"], default="sdpa",
                    help="HF attention implementation (sdpa measured faster "
                         "on CPU f32; see bench notes)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(args.seed)

    from transformers import AutoModelForCausalLM

    model_dir = os.path.expanduser(args.model)
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, attn_implementation=args.attn)
    model.config.use_cache = False
    model.train()

    if args.mode == "lora":
        from peft import LoraConfig, get_peft_model
        cfg = LoraConfig(
            r=16, lora_alpha=32, lora_dropout=0.0,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                            "gate_proj", "up_proj", "down_proj"],
            bias="none", task_type="CAUSAL_LM")
        model = get_peft_model(model, cfg)
        model.train()

    params = [p for p in model.parameters() if p.requires_grad]
    n_train = sum(p.numel() for p in params)
    opt = torch.optim.AdamW(params, lr=2e-5, weight_decay=0.01)

    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(0, vocab, (args.batch, args.seq), generator=g)

    def step():
        opt.zero_grad(set_to_none=True)
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return out.loss.item()

    for _ in range(args.warmup):
        step()

    times, losses = [], []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        losses.append(step())
        times.append(time.perf_counter() - t0)

    toks = args.batch * args.seq
    rec = {
        "tool": "pytorch",
        "torch": torch.__version__,
        "mode": args.mode,
        "model": os.path.basename(os.path.normpath(model_dir)),
        "batch": args.batch,
        "seq": args.seq,
        "threads": args.threads,
        "tokens_per_s": round(statistics.median(toks / t for t in times), 2),
        "step_s": [round(t, 4) for t in times],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "attn": args.attn,
        "trainable_params": n_train,
        "loss": [round(l, 4) for l in losses],
    }
    print(json.dumps(rec))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
