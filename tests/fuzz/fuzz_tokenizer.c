// libFuzzer target for section 5 (tokenizer).
//   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. tests/fuzz/fuzz_tokenizer.c -lcjson -lm -lpthread
//   ./a.out [corpus dir]          (LF_TOKENIZERS: the shared tokenizers, default ../shared/tokenizers)
// The first byte chooses what the rest is:
//   0..127    a tokenizer.json: load it and, if that works, encode and decode a little text
//   128..191  text for the qwen3 tokenizer (byte-level BPE, NFC, Split regex, added tokens)
//   192..255  text for the llama2 tokenizer (SentencePiece-style BPE, byte fallback)
// Text is encoded with and without special tokens, decoded whole and streamed.
#define LARGEFORGE_IMPLEMENTATION
#include "../../largeforge.h"

#include <stdlib.h>

static void lf_fuzz_roundtrip(const lf_tokenizer *t, const char *text, size_t len) {
    int32_t *ids;
    size_t n, dlen, got;
    char *dec;
    const char *chunk;
    for (int special = 0; special < 2; special++) {
        if (lf_tok_encode(t, text, len, special, &ids, &n) != LF_OK) continue;
        if (lf_tok_decode(t, ids, n, special, &dec, &dlen) == LF_OK) lf_free(dec);
        lf_tok_stream s;
        lf_tok_stream_init(&s, t, special);
        for (size_t i = 0; i < n; i++) lf_tok_stream_push(&s, ids[i], &chunk, &got);
        lf_tok_stream_flush(&s, &chunk, &got);
        lf_tok_stream_deinit(&s);
        lf_free(ids);
    }
}

static lf_tokenizer lf_fuzz_tok[2];
static int lf_fuzz_ready;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    if (data[0] < 128) {
        lf_tokenizer t;
        if (lf_tok_load(&t, text, len, NULL, 0, "fuzz.json") == LF_OK) {
            lf_fuzz_roundtrip(&t, "Hello, world! 123 \xC3\xA9t\xC3\xA9 <s>", 24);
            int32_t ids[] = {0, 1, 2, 3};
            char *dec;
            size_t dlen;
            if (lf_tok_decode(&t, ids, t.n_vocab < 4 ? (size_t)t.n_vocab : 4, false, &dec, &dlen) == LF_OK) lf_free(dec);
        }
        lf_tok_close(&t);
        return 0;
    }
    if (!lf_fuzz_ready) {
        const char *dir = getenv("LF_TOKENIZERS");
        char path[1024];
        static const char *const names[2] = {"qwen3", "llama2"};
        for (int i = 0; i < 2; i++) {
            snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "../shared/tokenizers", names[i]);
            if (lf_tok_open(&lf_fuzz_tok[i], path) != LF_OK) abort();  // a setup error, not a finding
        }
        lf_fuzz_ready = 1;
    }
    lf_fuzz_roundtrip(&lf_fuzz_tok[data[0] >= 192], text, len);
    return 0;
}
