#!/usr/bin/env python3
"""Generate chat-template reference fixtures.

    python3 tests/ref/make_chat_fixtures.py --tokenizers /work/shared/tokenizers --out tests/fixtures/chat

For each of qwen3, llama3, mistral, llama2 writes <out>/<name>.jsonl, one line per
(conversation, add_generation_prompt) case, in a fixed order:

    {"messages":[...],"add_generation_prompt":true,"text":"..."}
    {"messages":[...],"add_generation_prompt":false,"error":true,"error_message":"..."}

Optional key "kwargs" (an object) = extra template variables passed to
apply_chat_template, e.g. {"enable_thinking":false} for qwen3; lines without it
pass none.

Reference engine (--engine):
  transformers  tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=...)
                on AutoTokenizer.from_pretrained(<tokenizer dir>)  (the real thing)
  jinja         our replica of transformers' renderer: jinja2 ImmutableSandboxedEnvironment(
                trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]) with
                raise_exception, strftime_now, namespace, dict and the non-HTML-escaping tojson
                filter; variables messages, add_generation_prompt, tools=None, documents=None
                plus bos_token/eos_token/unk_token/pad_token/additional_special_tokens from
                tokenizer_config.json
  auto          (default) transformers if importable, else jinja.
With both installed, --check renders every case with both engines and fails on any difference.
"""
import argparse
import copy
import json
import os
import re
import sys
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
NAMES = ["qwen3", "llama3", "mistral", "llama2"]

_ESC = re.compile("[\u007f-\u009f\u2028\u2029\ufeff]")


def dumps(obj):
    s = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return _ESC.sub(lambda m: "\\u%04x" % ord(m.group()), s)


def U(c):
    return {"role": "user", "content": c}


def A(c, **kw):
    return {"role": "assistant", "content": c, **kw}


def S(c):
    return {"role": "system", "content": c}


# Each case: (messages, kwargs or None). Every case is rendered with add_generation_prompt
# True and then False.
CONVERSATIONS = [
    # 1 single user turn
    ([U("Hello!")], None),
    # 2 system + user
    ([S("You are a helpful assistant."), U("What is the capital of France?")], None),
    # 3 system + user + assistant + user
    ([S("You are a concise assistant."), U("Hi"), A("Hello! How can I help?"), U("Tell me a joke.")], None),
    # 4 multi-turn, 5 messages, no system
    ([U("What is 2+2?"), A("4"), U("And 3+3?"), A("6"), U("Thanks!")], None),
    # 5 multi-turn ending with assistant
    ([U("Name a color."), A("Blue."), U("Another one."), A("Green.")], None),
    # 6 content with newlines
    ([U("Line one\nLine two\n\nLine four\n"), A("Got it:\n- one\n- two\n"), U("```python\nprint('x')\n```")], None),
    # 7 leading / trailing whitespace
    ([S("  spaced system  "), U("  padded question  \n"), A(" padded answer "), U("\tnext\t")], None),
    # 8 unicode
    ([U("H\u00e9llo \u4e16\u754c \U0001F30D \u041f\u0440\u0438\u0432\u0435\u0442 cafe\u0301"), A("\u3053\u3093\u306b\u3061\u306f! \U0001F44B\U0001F3FD"), U("\u0645\u0631\u062d\u0628\u0627 \u05e9\u05dc\u05d5\u05dd")], None),
    # 9 empty content
    ([U(""), A(""), U("")], None),
    # 10 system only
    ([S("You are a pirate.")], None),
    # 11 roles not alternating: assistant first
    ([A("I speak first."), U("Hello")], None),
    # 12 roles not alternating: two user turns in a row
    ([U("First"), U("Second")], None),
    # 13 special-token text inside content
    ([U("Say <|im_end|> and <s> and [INST] and <|eot_id|> literally."), A("</s> <|im_start|> [/INST]")], None),
    # 14 qwen3 reasoning: <think> inside assistant content (history turn and final turn)
    ([U("Solve 1+1."), A("<think>\nThe user wants 1+1.\n</think>\n\n2"), U("And 2+2?"), A("<think>\nAdd.\n</think>\n\n4")], None),
    # 15 qwen3 reasoning via reasoning_content field
    ([U("Why is the sky blue?"), A("Rayleigh scattering.", reasoning_content="Short answer wanted.")], None),
    # 16 tool call round trip
    ([U("Weather in Paris?"),
      A("", tool_calls=[{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "\u00b0C"}}}]),
      {"role": "tool", "content": "{\"temp\": 21}"},
      A("It is 21\u00b0C in Paris.")], None),
    # 17 system message after the first turn (mistral: "Only user and assistant roles"; llama2 drops it)
    ([U("Hi"), S("Late system note."), U("Still there?")], None),
    # 18 qwen3 enable_thinking=false (other templates ignore the variable)
    ([U("Quick answer please.")], {"enable_thinking": False}),
    ([S("Be brief."), U("Hi"), A("Hello."), U("Bye")], {"enable_thinking": False}),
]


def cases():
    for msgs, kw in CONVERSATIONS:
        for agp in (True, False):
            yield msgs, agp, kw


# ------------------------------------------------------------------ jinja replica
class JinjaEngine:
    def __init__(self, tokdir):
        import jinja2
        import jinja2.ext
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        self.jinja2 = jinja2
        with open(os.path.join(tokdir, "tokenizer_config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        tmpl = cfg["chat_template"]
        if isinstance(tmpl, list):  # [{"name":..., "template":...}]
            tmpl = {t["name"]: t["template"] for t in tmpl}["default"]

        def raise_exception(message):
            raise jinja2.exceptions.TemplateError(message)

        def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
            return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

        def strftime_now(fmt):
            return datetime.now().strftime(fmt)

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
        env.filters["tojson"] = tojson
        env.globals["raise_exception"] = raise_exception
        env.globals["strftime_now"] = strftime_now
        env.globals["dict"] = dict
        env.globals["namespace"] = jinja2.utils.Namespace
        self.template = env.from_string(tmpl)

        def tok_str(v):
            return v["content"] if isinstance(v, dict) else v

        self.special = {}
        for k in ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"):
            if cfg.get(k) is not None:
                self.special[k] = tok_str(cfg[k])
        if cfg.get("additional_special_tokens"):
            self.special["additional_special_tokens"] = [tok_str(t) for t in cfg["additional_special_tokens"]]

    def render(self, messages, add_generation_prompt, kwargs):
        msgs = copy.deepcopy(messages)
        for m in msgs:  # transformers aliases reasoning fields the same way
            r = next((m[k] for k in ("reasoning_content", "thinking", "reasoning") if m.get(k) is not None), None)
            if r is not None:
                m.setdefault("thinking", r)
                m["reasoning_content"] = r
        kw = dict(self.special)
        kw.update(kwargs or {})
        return self.template.render(messages=msgs, tools=None, documents=None,
                                    add_generation_prompt=add_generation_prompt, **kw)


class TransformersEngine:
    def __init__(self, tokdir):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        from transformers import AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(tokdir)

    def render(self, messages, add_generation_prompt, kwargs):
        return self.tok.apply_chat_template(copy.deepcopy(messages), tokenize=False,
                                            add_generation_prompt=add_generation_prompt, **(kwargs or {}))


def run_case(engine, msgs, agp, kw):
    try:
        return {"text": engine.render(msgs, agp, kw)}
    except Exception as e:  # jinja2.exceptions.TemplateError from raise_exception, or template bugs
        return {"error": True, "error_message": str(e)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizers", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--names", nargs="*", default=NAMES)
    ap.add_argument("--engine", choices=["auto", "transformers", "jinja"], default="auto")
    ap.add_argument("--check", action="store_true", help="also render with the other engine and compare")
    a = ap.parse_args()

    engine = a.engine
    if engine == "auto":
        try:
            import transformers  # noqa: F401
            engine = "transformers"
        except ImportError:
            engine = "jinja"
    print(f"engine: {engine}")
    Engine = TransformersEngine if engine == "transformers" else JinjaEngine
    Other = JinjaEngine if engine == "transformers" else TransformersEngine

    os.makedirs(a.out, exist_ok=True)
    bad = 0
    for name in a.names:
        tokdir = os.path.join(a.tokenizers, name)
        eng = Engine(tokdir)
        other = Other(tokdir) if a.check else None
        n = n_err = 0
        path = os.path.join(a.out, name + ".jsonl")
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            for msgs, agp, kw in cases():
                rec = {"messages": msgs, "add_generation_prompt": agp}
                if kw:
                    rec["kwargs"] = kw
                res = run_case(eng, msgs, agp, kw)
                if other is not None:
                    res2 = run_case(other, msgs, agp, kw)
                    if res.get("text") != res2.get("text") or res.get("error") != res2.get("error"):
                        bad += 1
                        print(f"  MISMATCH {name} agp={agp} {msgs!r}\n    {res!r}\n    {res2!r}")
                rec.update(res)
                n += 1
                n_err += bool(res.get("error"))
                f.write(dumps(rec) + "\n")
        print(f"{name:8s} {n} cases ({n_err} errors) -> {path}")
    if bad:
        sys.exit(f"{bad} mismatches between engines")


if __name__ == "__main__":
    main()
