#!/usr/bin/env python3
"""Build `tiny_chat`: a tiny random Qwen2 checkpoint with a REAL (trained) tokenizer,
plus greedy-generation references, so `largeforge run` / the generation loop can be
checked end to end (text -> ids -> forward -> argmax loop -> EOS stop -> text).

    python3 tests/ref/make_tiny_chat.py --out tests/fixtures/models/tiny_chat

Writes into --out:
  tokenizer.json          byte-level BPE trained here on CORPUS (below), vocab 384 =
                          256 byte symbols + 125 merges + 3 special tokens appended at
                          the END (ids 381..383), like Qwen2 (specials after the BPE vocab).
                          Pipeline mirrors Qwen2/Qwen3 tokenizer.json exactly: NFC
                          normalizer, Split(Qwen2 regex, Isolated) + ByteLevel(no prefix
                          space, use_regex false) pre-tokenizer, ByteLevel post-processor
                          and decoder, BPE with unk null / "" prefix+suffix / no fuse_unk.
  tokenizer_config.json   tokenizer_class Qwen2Tokenizer, eos "<|im_end|>", bos null,
                          pad "<|endoftext|>", the plain chatml chat_template.
  config.json             Qwen2, hidden 64, 2 layers, 4 heads, 2 KV heads, inter 128,
                          vocab 384, tied embeddings, rope_theta 1e4 (legacy layout:
                          top-level rope_theta, no rope_parameters), eos = <|im_end|>,
                          bos null, use_sliding_window false.
  generation_config.json  eos = <|im_end|>, pad = <|endoftext|>, do_sample false.
  model.safetensors       F32 weights, init as in make_models.py (randn*gain/sqrt(fan_in),
                          gain 1.5 for q/k; norms 1+0.1*randn; biases 0.1*randn;
                          embeddings 2/sqrt(hidden)*randn). Tied: no lm_head.weight.
  gen_ref.json            greedy references, see CASES / record_case().

gen_ref.json cases: prompt (text), prompt_ids (tokenizer(text), no specials added; chat
prompts already contain their <|im_start|>/<|im_end|> markers), greedy_ids (new ids only,
from model.generate(do_sample=False, max_new_tokens=24, eos_token_id=<|im_end|>), the EOS
id included when it stopped there), greedy_text (decode(greedy_ids,
skip_special_tokens=True)), logits_last (the 5 largest logits of the first generated step,
ids in logits_last_ids), stopped_at_eos, min_top2_gap (smallest top1-top2 logit gap over
all greedy steps: how robust the argmax is to float noise).

Eager attention, float32, 1 thread, deterministic. Weight seed 184 (see WEIGHT_SEED).
"""
import argparse
import json
import os
import shutil
import sys

import torch
import transformers
from safetensors import safe_open
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_models import init_weights  # noqa: E402  (the same weight scheme as every fixture)
from transformers import (AutoModelForCausalLM, AutoTokenizer, GenerationConfig, Qwen2Config,
                          Qwen2ForCausalLM)

VOCAB = 384
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
QWEN2_REGEX = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"""
               r""" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")
CHAT_TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
                 "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
                 "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
# Weight seed, chosen by trying seeds 0..299 (same init scheme) for one where some greedy
# runs stop at <|im_end|> before max_new_tokens (here "Once upon a time" after 4 tokens
# and the first chat after 12), so the EOS stop is exercised; the others run the full 24.
WEIGHT_SEED = 184
MAX_NEW = 24
MAX_DIR_BYTES = 600 * 1024

MODEL_KW = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, vocab_size=VOCAB, rms_norm_eps=1e-6, rope_theta=10000.0,
                tie_word_embeddings=True, max_position_embeddings=256, use_sliding_window=False)

# ~3.5 KB of varied English (prose, dialogue, numbers, punctuation, contractions,
# a few accented words, newlines) to train the BPE merges on.
CORPUS = """\
The cat sat on the mat and watched the rain fall on the garden.
Once upon a time, there was a little girl who lived near a quiet forest.
She liked to walk along the river every morning before school.
"Where are you going?" asked her mother. "Just to the river," she said.
It's a beautiful day, isn't it? We'll see you at the park at 3:30 pm.
The quick brown fox jumps over the lazy dog. The dog didn't move at all.
In 2023, the town had 12,500 people; by 2024 it had grown to 13,100.
Prices rose by 4.5% last year, and bread now costs $2.99 a loaf.
I'm not sure that they've read the letter, but they'd like to reply soon.
You're welcome to join us for dinner: soup, salad, bread, and tea.
Hello! How are you today? I am fine, thank you. And you?
The teacher wrote three words on the board: light, water, and time.
Many people think that learning a new language is hard, but it can be fun.
He opened the door slowly, looked around the room, and then sat down.
The children played in the snow until the sun went down behind the hills.
What is the capital of France? The capital of France is Paris.
Two plus three is five. Ten times four is forty. Seven minus two is five.
My phone number is 555-0123, and my office is on the 4th floor.
The meeting starts at 9:00 and ends at 10:45; please don't be late.
A small boat drifted across the lake while the birds sang in the trees.
There are 7 days in a week, 24 hours in a day, and 60 minutes in an hour.
She said, "Let's go to the café and have a crème brûlée."
The old man told stories about the sea, the ships, and the long winters.
We can't stop now; we've come too far to turn back.
Please answer the question in one short sentence.
The assistant said: "Sure! Here is a simple answer to your question."
Water boils at 100 degrees Celsius and freezes at 0 degrees.
The library opens at 8 am and closes at 6 pm, Monday to Friday.
Every evening, the family sat together and talked about their day.
Rain, wind, and snow: the weather changed three times in one afternoon.
The scientist measured the length (about 2.5 cm) and wrote it down.
I think, therefore I am. That is what the philosopher said long ago.
Good morning! Good afternoon! Good evening! Good night!
They walked home together, laughing and talking, under the bright stars.
The first rule is simple: be kind. The second rule is: be honest.
Line one of the list.
Line two of the list:
  - apples
  - oranges
  - bananas
The end of the story is happy, and everyone lives a long and quiet life.
Could you help me? Of course, I'd be glad to help you with that.
The train leaves at 7:15, so we should be at the station by 7:00.
Our garden has roses, tulips, and 3 big apple trees near the fence.
When the music stopped, the room was silent for a moment.
Thank you very much! You're very kind. See you tomorrow.
The river flows to the sea, and the sea reaches every shore.
He bought 2 books, 1 pen, and 6 pencils for $8.50 in total.
Why is the sky blue? Because sunlight is scattered by the air.
The user asked a question, and the assistant gave a clear answer.
"""

CASES = [
    ("plain", "The cat", None),
    ("plain", "Once upon a time", None),
    ("chat", None, [{"role": "user", "content": "Hello! How are you?"}]),
    ("chat", None, [{"role": "system", "content": "You are a helpful assistant."},
                    {"role": "user", "content": "What is 2 + 3?"},
                    {"role": "assistant", "content": "2 + 3 = 5."},
                    {"role": "user", "content": "And 10 * 4?"}]),
    ("plain", "In 2024, prices rose 3.5% (from $12.99 to $13.45)!", None),
    ("plain", "Line one.\nLine two:\n\n  - item A\n  - item B\n", None),
]


def log(*a):
    print(*a, flush=True)


def build_tokenizer(out_dir):
    n_bpe = VOCAB - len(SPECIALS)
    tok = Tokenizer(models.BPE(unk_token=None, continuing_subword_prefix="", end_of_word_suffix="",
                               fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    trainer = trainers.BpeTrainer(vocab_size=n_bpe, min_frequency=2, show_progress=False,
                                  special_tokens=[], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS.splitlines(keepends=True), trainer=trainer)
    assert tok.get_vocab_size(with_added_tokens=False) == n_bpe, tok.get_vocab_size()
    # specials after the BPE vocab, as in Qwen2 (ids n_bpe .. VOCAB-1)
    tok.add_special_tokens(SPECIALS)
    assert tok.get_vocab_size(with_added_tokens=True) == VOCAB

    # Normalise the JSON to the exact shapes of Qwen2/Qwen3's tokenizer.json.
    j = json.loads(tok.to_str())
    m = j["model"]
    for k, v in (("type", "BPE"), ("dropout", None), ("unk_token", None), ("continuing_subword_prefix", ""),
                 ("end_of_word_suffix", ""), ("fuse_unk", False), ("byte_fallback", False),
                 ("ignore_merges", False)):
        # the trainer writes None for the empty prefix/suffix; same meaning as ""
        assert m.get(k, v) in ((v, None) if v == "" else (v,)), (k, m.get(k))
    model_out = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                 "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                 "vocab": m["vocab"], "merges": [list(p) if isinstance(p, list) else p.split(" ", 1)
                                                 for p in m["merges"]]}
    added = [{"id": a["id"], "content": a["content"], "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for a in j["added_tokens"]]
    out = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
           "normalizer": {"type": "NFC"},
           "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
               {"type": "Split", "pattern": {"Regex": QWEN2_REGEX}, "behavior": "Isolated", "invert": False},
               {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]},
           "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                              "use_regex": False},
           "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
           "model": model_out}
    # what we rewrote must be what the library produced (modulo key order / merge format)
    for k in ("normalizer", "pre_tokenizer", "post_processor"):
        assert j[k] == out[k], (k, j[k], out[k])
    # decoders.ByteLevel() ignores its kwargs in Python and serializes True/True/True;
    # the ByteLevel decoder does not read those fields. Qwen's file says False/False/False.
    assert j["decoder"]["type"] == "ByteLevel"
    path = os.path.join(out_dir, "tokenizer.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=2)
        f.write("\n")
    tok2 = Tokenizer.from_file(path)
    for line in CORPUS.splitlines(keepends=True):
        assert tok2.encode(line, add_special_tokens=False).ids == tok.encode(line, add_special_tokens=False).ids
    assert [tok2.token_to_id(s) for s in SPECIALS] == list(range(VOCAB - len(SPECIALS), VOCAB))

    added_dec = {str(a["id"]): {k: a[k] for k in ("content", "lstrip", "normalized", "rstrip", "single_word",
                                                  "special")} for a in added}
    cfg = {"add_bos_token": False, "add_prefix_space": False, "added_tokens_decoder": added_dec,
           "additional_special_tokens": ["<|im_start|>", "<|im_end|>"], "bos_token": None,
           "chat_template": CHAT_TEMPLATE, "clean_up_tokenization_spaces": False, "eos_token": "<|im_end|>",
           "errors": "replace", "model_max_length": MODEL_KW["max_position_embeddings"],
           "pad_token": "<|endoftext|>", "split_special_tokens": False, "tokenizer_class": "Qwen2Tokenizer",
           "unk_token": None}
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, ensure_ascii=False, indent=2)
        f.write("\n")
    return tok2





def build_model(out_dir, eos_id, pad_id):
    cfg = Qwen2Config(**MODEL_KW, bos_token_id=None, eos_token_id=eos_id, pad_token_id=None)
    cfg._attn_implementation = "eager"
    torch.manual_seed(WEIGHT_SEED)
    model = Qwen2ForCausalLM(cfg).to(torch.float32)
    init_weights(model, WEIGHT_SEED)
    model.eval()
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(), "not tied"
    model.save_pretrained(out_dir)
    GenerationConfig(eos_token_id=eos_id, pad_token_id=pad_id, do_sample=False).save_pretrained(out_dir)

    # classic (pre-transformers-5) config.json layout, as in make_models.py's "legacy" style
    path = os.path.join(out_dir, "config.json")
    with open(path) as f:
        c = json.load(f)
    rp = dict(c.pop("rope_parameters"))
    c["rope_theta"] = rp.pop("rope_theta")
    assert rp.get("rope_type", "default") == "default", rp
    c["rope_scaling"] = None
    if "dtype" in c:
        c["torch_dtype"] = c.pop("dtype")
    c.pop("layer_types", None)
    c["use_sliding_window"] = False
    c["bos_token_id"] = None
    c["eos_token_id"] = eos_id
    with open(path, "w") as f:
        json.dump(dict(sorted(c.items())), f, indent=2)
        f.write("\n")
    return model


@torch.no_grad()
def manual_greedy(model, ids, eos_id):
    """No-cache greedy loop (full forward each step) to cross-check generate()."""
    ids = list(ids)
    new, gaps = [], []
    for _ in range(MAX_NEW):
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1].float()
        top2 = torch.topk(logits, 2)
        gaps.append(float(top2.values[0] - top2.values[1]))
        nxt = int(top2.indices[0])
        new.append(nxt)
        ids.append(nxt)
        if nxt == eos_id:
            break
    return new, gaps


@torch.no_grad()
def record_case(model, tok, hf_tok, kind, prompt, messages, eos_id):
    if kind == "chat":
        prompt = hf_tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tok.encode(prompt, add_special_tokens=False).ids
    hf_ids = hf_tok(prompt, add_special_tokens=False)["input_ids"]
    assert ids == hf_ids, (prompt, ids, hf_ids)
    inp = torch.tensor([ids])
    out = model.generate(input_ids=inp, attention_mask=torch.ones_like(inp), do_sample=False,
                         max_new_tokens=MAX_NEW, eos_token_id=eos_id, pad_token_id=eos_id,
                         output_scores=True, return_dict_in_generate=True)
    new = out.sequences[0, len(ids):].tolist()
    first = out.scores[0][0].float()
    full_first = model(input_ids=inp).logits[0, -1].float()
    assert torch.allclose(first, full_first, atol=1e-5), "generate scores != forward logits"
    top = torch.topk(first, 5)
    man, gaps = manual_greedy(model, ids, eos_id)
    assert man == new, ("generate() vs no-cache greedy loop", new, man)
    stopped = len(new) < MAX_NEW or (len(new) > 0 and new[-1] == eos_id)
    assert stopped == (eos_id in new)
    text = tok.decode(new, skip_special_tokens=True)
    assert text == hf_tok.decode(new, skip_special_tokens=True)
    rec = {"kind": kind, "prompt": prompt}
    if messages is not None:
        rec["messages"] = messages
    rec.update({"prompt_ids": ids, "greedy_ids": new, "greedy_text": text,
                "greedy_text_with_special": tok.decode(new, skip_special_tokens=False),
                "stopped_at_eos": stopped, "n_new": len(new),
                "logits_last": [round(float(v), 6) for v in top.values],
                "logits_last_ids": [int(i) for i in top.indices],
                "min_top2_gap": round(min(gaps), 6)})
    return rec


def dir_size(d):
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    out_dir = args.out
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)

    tok = build_tokenizer(out_dir)
    eos_id, pad_id = tok.token_to_id("<|im_end|>"), tok.token_to_id("<|endoftext|>")
    log(f"tokenizer: vocab {tok.get_vocab_size()}, specials {[(s, tok.token_to_id(s)) for s in SPECIALS]}")
    mem_model = build_model(out_dir, eos_id, pad_id)

    # Everything below is computed from what is on disk.
    hf_tok = AutoTokenizer.from_pretrained(out_dir)
    model = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    assert type(model).__name__ == "Qwen2ForCausalLM", type(model)
    assert model.config.rope_parameters["rope_theta"] == 10000.0
    assert model.config.eos_token_id == eos_id and model.config.bos_token_id is None
    assert hf_tok.eos_token == "<|im_end|>" and hf_tok.eos_token_id == eos_id and hf_tok.bos_token is None
    assert len(hf_tok) == VOCAB, len(hf_tok)
    for n, p in model.state_dict().items():
        assert torch.equal(p, mem_model.state_dict()[n]), n
    # tokenizers vs transformers on the training text, incl. decode round trip
    for line in CORPUS.splitlines(keepends=True):
        a = tok.encode(line, add_special_tokens=False).ids
        assert a == hf_tok(line, add_special_tokens=False)["input_ids"], line
        assert tok.decode(a) == line
    assert tok.decode(tok.encode(CORPUS).ids) == CORPUS

    cases = [record_case(model, tok, hf_tok, kind, p, msgs, eos_id) for kind, p, msgs in CASES]
    any_eos = any(c["stopped_at_eos"] for c in cases)
    ref = {"source": (f"tests/ref/make_tiny_chat.py: torch {torch.__version__}, transformers "
                      f"{transformers.__version__}, tokenizers {__import__('tokenizers').__version__}, "
                      "eager attention, float32, greedy generate()"),
           "max_new_tokens": MAX_NEW, "eos_token_id": eos_id, "bos_token_id": None,
           "any_stopped_at_eos": any_eos, "cases": cases}
    with open(os.path.join(out_dir, "gen_ref.json"), "w", encoding="utf-8") as f:
        json.dump(ref, f, ensure_ascii=False, indent=1)
        f.write("\n")

    # final checks of the files on disk
    with safe_open(os.path.join(out_dir, "model.safetensors"), "pt") as f:
        names = list(f.keys())
        assert "lm_head.weight" not in names
        assert all(f.get_slice(k).get_dtype() == "F32" for k in names)
    size = dir_size(out_dir)
    for fn in sorted(os.listdir(out_dir)):
        log(f"   {fn:24s} {os.path.getsize(os.path.join(out_dir, fn)):8d} bytes")
    log(f"   total {size} bytes ({size / 1024:.0f} KiB), {len(names)} tensors")
    assert size < MAX_DIR_BYTES, size
    for c in cases:
        log(f"-- {c['prompt']!r}\n   prompt_ids {c['prompt_ids']}\n   greedy_ids {c['greedy_ids']}"
            f"\n   greedy_text {c['greedy_text']!r}  eos={c['stopped_at_eos']}  min gap {c['min_top2_gap']}")
    log(f"any greedy run stopped at EOS: {any_eos}")


if __name__ == "__main__":
    main()
