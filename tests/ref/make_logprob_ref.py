# Reference for tests/test_synth_gen.c "score_logprob_transformers": sum of log p(response | prompt)
# by transformers (float32, float64 log-softmax), tokens by HF tokenizers.
# Run from the repository root: python3 tests/ref/make_logprob_ref.py (torch, transformers and
# tokenizers as in tests/ref/requirements.txt); it prints the table the test holds.
import torch, transformers, tokenizers
cases = [
    ("tests/fixtures/models/tiny_chat", "<|im_start|>user\nTell me about cats<|im_end|>\n<|im_start|>assistant\n", "The cat sat on the mat, and the dog sat by the door."),
    ("models/kjv-llama-4m", "Instruction: Which book of the Bible is this verse from?\n\nIn the beginning God created the heaven and the earth.\nResponse:", " Genesis"),
    ("models/kjv-llama-4m", "Instruction: Which book of the Bible is this verse from?\n\nIn the beginning God created the heaven and the earth.\nResponse:",
     " And God said, Let there be light: and there was light. And God saw the light, that it was good: and God divided the light from the darkness."),
]
for d, p, r in cases:
    tok = tokenizers.Tokenizer.from_file(f"{d}/tokenizer.json")
    m = transformers.AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32).eval()
    pi = tok.encode(p, add_special_tokens=False).ids
    ri = tok.encode(r, add_special_tokens=False).ids
    with torch.no_grad():
        lg = m(torch.tensor([pi + ri])).logits[0].double()
    lp = torch.log_softmax(lg, -1)
    s = sum(lp[len(pi) - 1 + t, ri[t]].item() for t in range(len(ri)))
    print(f'{{"{d}", {len(pi)}, {len(ri)}, {s:.9f}}},  // {r[:30]!r}')
