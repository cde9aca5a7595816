// tests/fuzz/fuzz_http.c — libFuzzer target for section 14's request parser (`make fuzz`). The
// first byte picks the limits, the second where to cut; the rest is fed whole, in two pieces cut
// there, and byte by byte, following pipelined requests to the end. The three must give the same
// requests and errors (a digest of every field, which also reads every string the parser made).
#define LARGEFORGE_IMPLEMENTATION
#include "../../largeforge.h"

static uint64_t fz_hash(uint64_t h, const void *p, size_t n) {  // FNV-1a
    for (size_t i = 0; i < n; i++) h = (h ^ ((const unsigned char *)p)[i]) * 0x100000001b3ull;
    return h;
}

// Feeds data[0, n): first cut bytes (0: all), then pieces of step bytes (0: the rest at once).
static uint64_t fz_run(const lf_http_limits *lim, const uint8_t *data, size_t n, size_t cut, size_t step) {
    lf_http_parser *p;
    if (lf_http_parser_create(&p, lim) != LF_OK) return 0;
    uint64_t h = 0xcbf29ce484222325ull;
    size_t at = 0, end = cut && cut < n ? cut : n;
    while (at < n) {
        if (at == end) end = step && end + step < n ? end + step : n;
        size_t used = 0;
        lf_http_parse_result r = lf_http_parser_feed(p, data + at, end - at, &used);
        if (used > end - at) __builtin_trap();
        at += used;
        if (r == LF_HTTP_PARSE_ERROR) {
            const char *why;
            int status = lf_http_parser_error(p, &why);
            h = fz_hash(fz_hash(fz_hash(h, "E", 1), &status, sizeof status), why, strlen(why));
            break;
        }
        if (r == LF_HTTP_PARSE_MORE) {
            if (at != end) __builtin_trap();  // MORE takes every byte
            continue;
        }
        const lf_http_request *q = lf_http_parser_request(p);
        const char *strs[5] = {q->method_name, q->target, q->path, q->query, q->peer};
        for (int i = 0; i < 5; i++) h = fz_hash(h, strs[i], strlen(strs[i]) + 1);
        int nums[3] = {(int)q->method, q->minor, q->keep_alive};
        h = fz_hash(fz_hash(h, nums, sizeof nums), &at, sizeof at);
        for (int i = 0; i < q->n_headers; i++)
            h = fz_hash(fz_hash(h, q->headers[i].name, strlen(q->headers[i].name) + 1), q->headers[i].value,
                        strlen(q->headers[i].value) + 1);
        h = fz_hash(h, q->body, q->body_len + 1);  // with its NUL
        if (q->body_len > (lim->max_body_bytes ? lim->max_body_bytes : ((size_t)8 << 20))) __builtin_trap();
    }
    lf_http_parser_destroy(p);
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    static const size_t heads[4] = {0, 64, 256, 1024}, bodies[4] = {0, 16, 256, 4096};
    static const int counts[4] = {0, 1, 4, 16};
    lf_http_limits lim = {heads[data[0] & 3], bodies[(data[0] >> 2) & 3], counts[(data[0] >> 4) & 3]};
    const uint8_t *req = data + 2;
    size_t n = size - 2, cut = 1 + (size_t)data[1] * n / 256;
    uint64_t whole = fz_run(&lim, req, n, 0, 0);
    if (fz_run(&lim, req, n, cut, 0) != whole) __builtin_trap();  // the result must not depend on the cut
    if (n <= 4096 && fz_run(&lim, req, n, 1, 1) != whole) __builtin_trap();
    return 0;
}
