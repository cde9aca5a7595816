#!/usr/bin/env python3
"""Reference SFT encodings (tokens + loss masks) for tests/test_data.c.

    python3 tests/ref/make_sft_fixtures.py --tokenizers /work/shared/tokenizers \
        --out tests/fixtures/data/sft_ref.jsonl

Reads the hand-written datasets in tests/fixtures/data/ and writes one line per
(case, file, record):

    {"case":"qwen3","file":"messages.jsonl","index":1,"tokens":[...],"labels":[...],
     "prefix_mismatch":0,"realigned":0,"truncated":false}

Cases (CASES below) pick a tokenizer, a chat template (transformers' apply_chat_template on the
tokenizer's own Jinja chat_template, or LargeForge's PLAIN format for base models, written out
below), template kwargs and max_length. Token ids always come from HF `tokenizers`.

The masking rule is TRL's prompt/completion rule applied turn by turn (see "ON SFT LABELS" in
largeforge.h):
  full  = render(messages)                       (tokenized whole)
  for each assistant turn i:
    a = lcp(tok(render(messages[:i], add_generation_prompt=True)), full)
    f = tok(render(messages[:i+1]))
    b = len(f) if f is a prefix of full, else the end e in (a, min(len(full), a + len(f))]
        whose preceding tokens share the longest suffix with f (first such e)  -> "realigned"
    labels[a:b] = full[a:b]
  raw text: tok(prompt + completion, add_special_tokens=True) + [eos], prompt masked
  (prompt=None: everything trained); truncation keeps the first max_length tokens.
Rendered chat text is tokenized with add_special_tokens=False (as apply_chat_template does);
PLAIN and raw text with add_special_tokens=True.

Independent check (--check, on by default when transformers is importable): for the ChatML
(tiny_chat) and Llama 3 cases the same conversations are also rendered with a copy of the
template whose assistant parts sit in {% generation %} blocks, the text is asserted equal to
the real template's, and transformers' return_assistant_tokens_mask must equal our mask.

Needs: tokenizers, jinja2, transformers (tests/ref/requirements.txt). make test needs none of
them: it reads the committed output.
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DATA = os.path.join(ROOT, "tests", "fixtures", "data")
TINY = os.path.join(ROOT, "tests", "fixtures", "models", "tiny_chat")

CHAT_FILES = ["alpaca.jsonl", "alpaca.json", "sharegpt.json", "messages.jsonl", "prompt_completion.jsonl"]
TEXT_FILES = ["text.jsonl", "doc.txt"]

# name: (tokenizer dir (None: tiny_chat), template ("default" or "plain"), kwargs, max_length, files)
CASES = {
    "tiny_chat": (None, "default", {}, 0, CHAT_FILES + TEXT_FILES),
    "tiny_chat_max16": (None, "default", {}, 16, ["messages.jsonl", "text.jsonl"]),
    "qwen3": ("qwen3", "default", {}, 0, CHAT_FILES + TEXT_FILES),
    "qwen3_nothink": ("qwen3", "default", {"enable_thinking": False}, 0, ["sharegpt.json", "messages.jsonl"]),
    "llama3": ("llama3", "default", {}, 0, CHAT_FILES + ["text.jsonl"]),
    "llama2": ("llama2", "default", {}, 0, ["alpaca.jsonl", "sharegpt.json", "messages.jsonl"]),
    "llama2_plain": ("llama2", "plain", {}, 0, ["alpaca.jsonl", "messages.jsonl", "prompt_completion.jsonl"]),
}

# {% generation %}-tagged copies of two templates, for return_assistant_tokens_mask.
TAGGED = {
    "tiny_chat": (
        "{% for message in messages %}{% if message['role'] == 'assistant' %}{{ '<|im_start|>assistant\\n' }}"
        "{% generation %}{{ message['content'] + '<|im_end|>' + '\\n' }}{% endgeneration %}"
        "{% else %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endif %}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    ),
    "llama3": (
        "{% for message in messages %}{% if loop.index0 == 0 %}{{ bos_token }}{% endif %}"
        "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
        "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] | trim + '<|eot_id|>' }}{% endgeneration %}"
        "{% else %}{{ message['content'] | trim + '<|eot_id|>' }}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
    ),
}

ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


def records(path):
    """The records of a fixture file as our reader converts them."""
    if path.endswith(".txt"):
        return [{"text": open(path, encoding="utf-8", newline="").read()}]
    text = open(path, encoding="utf-8", newline="").read()
    if text.lstrip().startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.split("\n") if line.strip()]


def convert(rec):
    """-> ("chat", messages, n_prompt) or ("text", prompt or None, text)."""
    if "conversations" in rec:
        return "chat", [{"role": ROLES[m["from"]], "content": m["value"]} for m in rec["conversations"]], 0
    if "messages" in rec:
        return "chat", rec["messages"], 0
    if "instruction" in rec and "output" in rec:
        user = rec["instruction"]
        if rec.get("input"):
            user += "\n\n" + rec["input"]
        return "chat", [{"role": "user", "content": user}, {"role": "assistant", "content": rec["output"]}], 0
    if "prompt" in rec and "completion" in rec:
        if isinstance(rec["prompt"], list):
            return "chat", rec["prompt"] + rec["completion"], len(rec["prompt"])
        return "text", rec["prompt"], rec["completion"]
    return "text", None, rec["text"]


def render_plain(msgs, gen):
    out = ""
    for i, m in enumerate(msgs):
        if m["role"] == "system" and i == 0:
            out += m["content"] + "\n"
        elif m["role"] == "user":
            out += "Instruction: " + m["content"] + "\n"
        elif m["role"] == "assistant":
            out += "Response: " + m["content"] + "\nEND\n"
        else:
            raise ValueError("plain: role " + m["role"])
    return out + ("Response:" if gen else "")


def lcp(a, b):
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def realign(f, full, a):
    best, best_k = a, 0
    for e in range(a + 1, min(len(full), a + len(f)) + 1):
        k = 0
        while k < len(f) and k < e - a and f[len(f) - 1 - k] == full[e - 1 - k]:
            k += 1
        if k > best_k:
            best, best_k = e, k
    return best


class Case:
    def __init__(self, name, tok_dirs):
        from tokenizers import Tokenizer
        d, self.template, self.kwargs, self.max_length, self.files = CASES[name]
        self.dir = TINY if d is None else os.path.join(tok_dirs, d)
        self.tok = Tokenizer.from_file(os.path.join(self.dir, "tokenizer.json"))
        cfg = json.load(open(os.path.join(self.dir, "tokenizer_config.json")))
        eos = cfg["eos_token"]
        self.eos = self.tok.token_to_id(eos if isinstance(eos, str) else eos["content"])
        self.hf = None
        if self.template != "plain":
            from transformers import AutoTokenizer
            self.hf = AutoTokenizer.from_pretrained(self.dir)

    def render(self, msgs, gen):
        if self.template == "plain":
            return render_plain(msgs, gen)
        return self.hf.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen, **self.kwargs)

    def ids(self, text, special):
        return self.tok.encode(text, add_special_tokens=special).ids

    def encode(self, rec):
        kind, a, b = convert(rec)
        st = {"prefix_mismatch": 0, "realigned": 0}
        if kind == "text":
            prompt, text = a, b
            full = self.ids((prompt or "") + text, True)
            if not full or full[-1] != self.eos:
                full.append(self.eos)
            start = 0
            if prompt is not None:
                p = self.ids(prompt, True)
                start = lcp(p, full)
                st["prefix_mismatch"] = int(start < len(p))
            labels = [-100] * start + full[start:]
        else:
            msgs, n_prompt = a, b
            special = self.template == "plain"
            full = self.ids(self.render(msgs, False), special)
            labels = [-100] * len(full)
            for i in range(n_prompt, len(msgs)):
                if msgs[i]["role"] != "assistant":
                    continue
                p = self.ids(self.render(msgs[:i], True), special)
                f = self.ids(self.render(msgs[: i + 1], False), special)
                start = lcp(p, full)
                st["prefix_mismatch"] += start < len(p)
                end = len(f)
                if lcp(f, full) < len(f):
                    end = realign(f, full, start)
                    st["realigned"] += 1
                labels[start:end] = full[start:end]
        truncated = bool(self.max_length) and len(full) > self.max_length
        if truncated:
            full, labels = full[: self.max_length], labels[: self.max_length]
        return full, labels, st, truncated


def check_generation_masks(case_name, case):
    """Our masks against transformers' return_assistant_tokens_mask on a tagged template."""
    tagged = TAGGED[case_name]
    n = 0
    for fname in case.files:
        for rec in records(os.path.join(DATA, fname)):
            kind, msgs, n_prompt = convert(rec)
            if kind != "chat" or n_prompt:
                continue
            real = case.hf.apply_chat_template(msgs, tokenize=False)
            mine = case.hf.apply_chat_template(msgs, chat_template=tagged, tokenize=False)
            assert real == mine, (case_name, fname, real, mine)
            r = case.hf.apply_chat_template(msgs, chat_template=tagged, tokenize=True, return_dict=True,
                                            return_assistant_tokens_mask=True)
            full, labels, _, _ = case.encode(rec)
            assert list(r["input_ids"]) == full, (case_name, fname)
            hf_mask = [int(x) for x in r["assistant_masks"]]
            our_mask = [int(l != -100) for l in labels]
            assert hf_mask == our_mask, (case_name, fname, hf_mask, our_mask)
            n += 1
    print(f"  {case_name}: {n} conversations match return_assistant_tokens_mask", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizers", default=os.path.join(os.path.dirname(ROOT), "shared", "tokenizers"))
    ap.add_argument("--out", default=os.path.join(DATA, "sft_ref.jsonl"))
    ap.add_argument("--no-check", action="store_true", help="skip the return_assistant_tokens_mask cross-check")
    args = ap.parse_args()
    lines = []
    for name in CASES:
        case = Case(name, args.tokenizers)
        for fname in case.files:
            for i, rec in enumerate(records(os.path.join(DATA, fname))):
                full, labels, st, truncated = case.encode(rec)
                lines.append(json.dumps({"case": name, "file": fname, "index": i, "tokens": full, "labels": labels,
                                         "prefix_mismatch": st["prefix_mismatch"], "realigned": st["realigned"],
                                         "truncated": truncated}, separators=(",", ":")))
        if not args.no_check and name in TAGGED:
            check_generation_masks(name, case)
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {len(lines)} samples to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
