// bench/tokbench — tokenizer encode/decode speed: `tokbench TOKENIZER_DIR TEXT_FILE [reps]`
// prints one JSON line per measurement (median of reps).
#define LARGEFORGE_IMPLEMENTATION
#include "../largeforge.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: tokbench TOKENIZER_DIR TEXT_FILE [reps]\n");
        return 64;
    }
    int reps = argc > 3 ? atoi(argv[3]) : 5;
    if (reps < 1 || reps > 64) reps = 5;
    lf_tokenizer t;
    char *text;
    size_t len;
    uint64_t t0 = lf_time_ns();
    if (lf_tok_open(&t, argv[1]) != LF_OK || lf_file_read(argv[2], 0, &text, &len) != LF_OK) {
        fprintf(stderr, "tokbench: %s\n", lf_last_error());
        return 1;
    }
    double load_s = (double)(lf_time_ns() - t0) * 1e-9, enc[64], dec[64];
    size_t n = 0;
    for (int r = 0; r < reps; r++) {
        int32_t *ids;
        char *back;
        size_t blen;
        uint64_t a = lf_time_ns();
        if (lf_tok_encode(&t, text, len, false, &ids, &n) != LF_OK) return fprintf(stderr, "%s\n", lf_last_error()), 1;
        uint64_t b = lf_time_ns();
        if (lf_tok_decode(&t, ids, n, false, &back, &blen) != LF_OK) return fprintf(stderr, "%s\n", lf_last_error()), 1;
        uint64_t c = lf_time_ns();
        enc[r] = (double)(b - a) * 1e-9, dec[r] = (double)(c - b) * 1e-9;
        lf_free(ids), lf_free(back);
    }
    qsort(enc, (size_t)reps, sizeof *enc, cmp_double);
    qsort(dec, (size_t)reps, sizeof *dec, cmp_double);
    const char *name = strrchr(argv[1], '/') ? strrchr(argv[1], '/') + 1 : argv[1];
    printf("{\"name\":\"tokenizer\",\"tokenizer\":\"%s\",\"bytes\":%zu,\"tokens\":%zu,\"load_s\":%.3f,"
           "\"encode_mb_s\":%.2f,\"decode_mb_s\":%.2f,\"threads\":1}\n",
           name, len, n, load_s, (double)len / 1e6 / enc[reps / 2], (double)len / 1e6 / dec[reps / 2]);
    lf_free(text);
    lf_tok_close(&t);
    return 0;
}
