#!/usr/bin/env python3
"""Generate tokenizer reference fixtures with HuggingFace `tokenizers` (the reference).

    python3 tests/ref/make_tok_fixtures.py --tokenizers /work/shared/tokenizers --out tests/fixtures/tok

For each tokenizer <name> in --names, writes <out>/<name>.jsonl with one line per entry of
tests/ref/tok_corpus.jsonl, in corpus order:

    {"ids":[...],"ids_special":[...],"decoded":"...","roundtrip":true}

  ids          Tokenizer.encode(text, add_special_tokens=False).ids
  ids_special  Tokenizer.encode(text, add_special_tokens=True).ids   (post-processor applied)
  decoded      Tokenizer.decode(ids, skip_special_tokens=False)
  roundtrip    decoded == text
"""
import argparse
import json
import os
import re
import sys

try:
    import tokenizers
    from tokenizers import Tokenizer
except ImportError:  # pragma: no cover
    sys.exit("make_tok_fixtures.py needs `pip install -r tests/ref/requirements.txt`")

HERE = os.path.dirname(os.path.abspath(__file__))
NAMES = ["gpt2", "llama2", "llama3", "mistral", "qwen3"]

# Same escaping as make_corpus.py: keep UTF-8 raw except characters that some line
# readers treat as line breaks or that are invisible (DEL, C1 controls, U+2028/9, BOM).
_ESC = re.compile("[\u007f-\u009f\u2028\u2029\ufeff]")


def dumps(obj):
    s = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return _ESC.sub(lambda m: "\\u%04x" % ord(m.group()), s)


def load_corpus(path):
    with open(path, encoding="utf-8", newline="") as f:
        # split on "\n" only: str.splitlines() would also split on U+2028, U+0085, ...
        return [json.loads(line) for line in f.read().split("\n") if line]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizers", required=True, help="dir holding <name>/tokenizer.json")
    ap.add_argument("--out", required=True, help="output dir, e.g. tests/fixtures/tok")
    ap.add_argument("--corpus", default=os.path.join(HERE, "tok_corpus.jsonl"))
    ap.add_argument("--names", nargs="*", default=NAMES)
    a = ap.parse_args()

    corpus = load_corpus(a.corpus)
    os.makedirs(a.out, exist_ok=True)
    print(f"tokenizers {tokenizers.__version__}; corpus {len(corpus)} entries")
    for name in a.names:
        tok = Tokenizer.from_file(os.path.join(a.tokenizers, name, "tokenizer.json"))
        n_rt = 0
        out_path = os.path.join(a.out, name + ".jsonl")
        with open(out_path, "w", encoding="utf-8", newline="\n") as f:
            for text in corpus:
                ids = tok.encode(text, add_special_tokens=False).ids
                ids_special = tok.encode(text, add_special_tokens=True).ids
                decoded = tok.decode(ids, skip_special_tokens=False)
                rt = decoded == text
                n_rt += rt
                f.write(dumps({"ids": ids, "ids_special": ids_special, "decoded": decoded, "roundtrip": rt}) + "\n")
        print(f"{name:8s} {n_rt}/{len(corpus)} round-trip  -> {out_path} ({os.path.getsize(out_path)} bytes)")


if __name__ == "__main__":
    main()
