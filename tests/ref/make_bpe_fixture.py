#!/usr/bin/env python3
"""HF tokenizers' ids on a tokenizer that LargeForge's BPE trainer (lf_tok_train) produced.

    python3 tests/ref/make_bpe_fixture.py TOKENIZER_JSON tests/fixtures/tok/bpe_train/lines.txt \
        --out tests/fixtures/tok/bpe_train \
        [--corpus tests/fixtures/tok/bpe_train/kjv.txt tests/fixtures/tok/bpe_train/mixed.txt --vocab-size 1000]

TOKENIZER_JSON is the tokenizer.json that the test tokenizer/bpe_train trained on the fixture
corpus (kjv.txt, mixed.txt; vocab 1000, min_frequency 2, the default special tokens). When its
output no longer matches tokenizer.sha256, the test keeps its temporary directory and prints
this command with the path filled in.

Writes into --out:
  expected.jsonl    one line per line of the text file (split on '\\n' only; the empty piece after
                    a final '\\n' is not a line), then one line for the whole file:
                    {"text": ..., "ids": Tokenizer.from_file(TOKENIZER_JSON).encode(text,
                    add_special_tokens=False).ids}. (The pipeline's post-processor is ByteLevel,
                    which adds no token, so add_special_tokens=True gives the same ids.)
  tokenizer.sha256  sha256sum's line for TOKENIZER_JSON ("<hex>  tokenizer.json"): the test
                    compares it with what the trainer produces now, so that a trainer change
                    says "regenerate the fixture" instead of failing on ids.

With --corpus, also trains `tokenizers`' own BpeTrainer on the same text, cut at the special
tokens as lf_tok_train cuts it (each piece pre-tokenized separately, as HF's encode does), with
the same settings, and reports whether its vocab and merges equal ours. That is a check, not a
fixture: nothing is written for it, and the exit status is non-zero when they differ.
Only `tokenizers` is needed (tests/ref/requirements-light.txt).
"""
import argparse
import hashlib
import json
import os
import re
import sys

import tokenizers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def hf_trained(corpus, vocab_size, min_frequency):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    cut = re.compile("|".join(re.escape(s) for s in sorted(SPECIALS, key=len, reverse=True)))
    pieces = []
    for path in corpus:
        with open(path, encoding="utf-8", newline="") as f:
            pieces += [p for p in cut.split(f.read()) if p]
    tok.train_from_iterator(pieces, trainer)
    return json.loads(tok.to_str())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tokenizer", help="tokenizer.json written by lf_tok_train")
    ap.add_argument("text", help="UTF-8 text file; one fixture line per line")
    ap.add_argument("--out", required=True, help="directory for expected.jsonl and tokenizer.sha256")
    ap.add_argument("--corpus", nargs="*", default=[], help="training files: compare with HF's BpeTrainer")
    ap.add_argument("--vocab-size", type=int, default=1000)
    ap.add_argument("--min-frequency", type=int, default=2)
    args = ap.parse_args()

    tok = Tokenizer.from_file(args.tokenizer)
    with open(args.text, encoding="utf-8", newline="") as f:
        text = f.read()
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "expected.jsonl"), "w", encoding="utf-8", newline="\n") as f:
        for t in lines + [text]:
            ids = tok.encode(t, add_special_tokens=False).ids
            assert ids == tok.encode(t, add_special_tokens=True).ids
            f.write(json.dumps({"text": t, "ids": ids}, ensure_ascii=False) + "\n")
    with open(args.tokenizer, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    with open(os.path.join(args.out, "tokenizer.sha256"), "w", newline="\n") as f:
        f.write(f"{digest}  tokenizer.json\n")
    print(f"{len(lines) + 1} lines, tokenizer sha256 {digest}, tokenizers {tokenizers.__version__}")

    if args.corpus:
        ours = json.load(open(args.tokenizer, encoding="utf-8"))["model"]
        hf = hf_trained(args.corpus, args.vocab_size, args.min_frequency)["model"]
        same_vocab, same_merges = ours["vocab"] == hf["vocab"], ours["merges"] == hf["merges"]
        print(f"HF BpeTrainer on the same corpus: vocab {'identical' if same_vocab else 'DIFFERENT'} "
              f"({len(hf['vocab'])} vs {len(ours['vocab'])}), merges {'identical' if same_merges else 'DIFFERENT'} "
              f"({len(hf['merges'])} vs {len(ours['merges'])})")
        for i, (a, b) in enumerate(zip(hf["merges"], ours["merges"])):
            if a != b:
                print(f"  first different merge: #{i}: HF {a}, ours {b}")
                break
        if not (same_vocab and same_merges):
            sys.exit(1)


if __name__ == "__main__":
    main()
