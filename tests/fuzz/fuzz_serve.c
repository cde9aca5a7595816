// tests/fuzz/fuzz_serve.c — libFuzzer target for section 15's request decoding (`make fuzz`): the
// first byte picks chat or completions, the rest is the body. Whatever it is, the answer is a
// prompt that fits the context with ids in the vocabulary, or a 400/404/500 whose error body
// (which quotes parts of the request) is valid JSON.
#define LARGEFORGE_IMPLEMENTATION
#include "../../largeforge.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static lf__svc_model sm;
    static bool ready;
    if (!ready) {
        if (lf_tok_open(&sm.tok, "tests/fixtures/models/tiny_chat") != LF_OK) __builtin_trap();
        sm.name = (char *)"m", sm.ctx = 64, sm.m.cfg.V = lf_tok_vocab_size(&sm.tok), sm.gen = lf_gen_desc_default();
        ready = true;
    }
    if (size < 1) return 0;
    lf_doc doc;
    lf__svc_params p;
    int32_t *ids;
    size_t n;
    char *text;
    int st = lf__svc_decode(&sm, (const char *)data + 1, size - 1, data[0] & 1, &doc, &p, &ids, &n, &text);
    if (st == 0) {
        if (n < 1 || (int)n >= sm.ctx || p.g.max_tokens < 1 || (int)n + p.g.max_tokens > sm.ctx) __builtin_trap();
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= sm.m.cfg.V) __builtin_trap();
    } else {
        if ((st != 400 && st != 404 && st != 500) || !p.err[0]) __builtin_trap();
        char body[8192];
        size_t len = lf_http_error_json(body, sizeof body, st, NULL, p.err, p.param);
        lf_doc e;
        if (len >= sizeof body || lf_json_parse(&e, body, len, "error") != LF_OK) __builtin_trap();
        lf_doc_deinit(&e);
    }
    lf_doc_deinit(&doc), lf_free(ids), lf_free(text);
    return 0;
}
