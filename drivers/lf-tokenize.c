// lf-tokenize — encode text to ids or decode ids to text with a HuggingFace tokenizer.json, or
// train a byte-level BPE tokenizer on text files.
#define LARGEFORGE_IMPLEMENTATION
#include "../largeforge.h"
#include "common.h"

static const char *help =
    "usage: lf-tokenize encode|decode --tokenizer DIR_OR_JSON [--input FILE] [--jsonl] [--add-special]\n"
    "       lf-tokenize train --input FILE [--input FILE...] --vocab-size N --out DIR\n"
    "                         [--min-frequency N] [--special TOKEN...] [--max-length N]\n"
    "\n"
    "  encode   prints one JSON array of ids for the whole input (stdin or --input);\n"
    "           with --jsonl, one array per input line (split on \\n only)\n"
    "  decode   reads a JSON array of ids (with --jsonl: one array per line) and prints the text\n"
    "  train    learns a byte-level BPE tokenizer (GPT-2's pipeline; HF tokenizers' BpeTrainer\n"
    "           merges) and writes DIR/tokenizer.json and DIR/tokenizer_config.json\n"
    "\n"
    "options:\n"
    "  --tokenizer P    tokenizer.json, or a model directory holding it (required)\n"
    "  --input FILE     read FILE instead of stdin\n"
    "  --jsonl          one line in, one line out\n"
    "  --add-special    add the post-processor's special tokens (BOS/EOS); off by default\n"
    "  --skip-special   decode: leave special tokens out of the text\n"
    "  --vocab-size N   train: the vocabulary size, special and byte tokens included (required)\n"
    "  --min-frequency N  train: merge only pairs seen at least N times (default 2)\n"
    "  --special TOKEN  train: a special token (repeatable; default <|endoftext|> <|im_start|>\n"
    "                   <|im_end|>); the first one is the EOS token\n"
    "  --max-length N   train: model_max_length written to tokenizer_config.json\n"
    "  --help, --version, --quiet, --verbose\n"
    "exit codes: see largeforge --help; 0 ok, 2 bad argument, 4 I/O, 5 bad input, 64 usage\n";

static lf_status encode_one(const lf_tokenizer *t, const char *s, size_t n, bool special) {
    int32_t *ids;
    size_t k;
    lf_status st = lf_tok_encode(t, s, n, special, &ids, &k);
    if (st != LF_OK) return st;
    putchar('[');
    for (size_t i = 0; i < k; i++) printf(i ? ",%d" : "%d", ids[i]);
    puts("]");
    lf_free(ids);
    return LF_OK;
}

static lf_status decode_one(const lf_tokenizer *t, const char *s, size_t n, bool skip, long line) {
    lf_doc d;
    lf_status st = lf_json_parse(&d, s, n, line > 0 ? "input line" : "input");
    if (st != LF_OK) return line > 0 ? lf__wrap(st, "line %ld", line) : st;
    if (d.root->type != LF_NODE_ARRAY) {
        lf_doc_deinit(&d);
        return lf__fail(LF_ERR_FORMAT, "input%s: expected a JSON array of token ids", line > 0 ? " line" : "");
    }
    int32_t *ids = (int32_t *)malloc((size_t)(d.root->n ? d.root->n : 1) * sizeof(int32_t));
    for (int i = 0; i < d.root->n; i++) {
        const lf_node *e = &d.root->kids[i];
        if (e->type != LF_NODE_NUMBER || e->num != floor(e->num) || e->num < 0 || e->num > INT32_MAX) {
            free(ids);
            lf_doc_deinit(&d);
            return lf__fail(LF_ERR_FORMAT, "input line %ld: element %d is not a token id", line > 0 ? line : 1, i);
        }
        ids[i] = (int32_t)e->num;
    }
    char *text;
    size_t len;
    st = lf_tok_decode(t, ids, (size_t)d.root->n, skip, &text, &len);
    if (st == LF_OK) {
        fwrite(text, 1, len, stdout);
        putchar('\n');
        lf_free(text);
    }
    free(ids);
    lf_doc_deinit(&d);
    return st;
}

int main(int argc, char **argv) {
    lf_drv_name = "lf-tokenize";
    const char *mode = NULL, *tok_path = NULL, *input = NULL, *out = NULL, *v, *inputs[256], *specials[64];
    int n_inputs = 0, n_special = 0;
    long vocab = 0, min_freq = 0, max_len = 0;
    bool jsonl = false, special = false, skip = false;
    for (int i = 1; i < argc; i++) {
        if (lf_drv_common_flag(argv[i], help)) continue;
        if (lf_drv_opt(argc, argv, &i, "--tokenizer", &v)) tok_path = v;
        else if (lf_drv_opt(argc, argv, &i, "--input", &v)) {
            if (n_inputs == 256) return lf_drv_usage_error("at most 256 --input files%s", "");
            input = inputs[n_inputs++] = v;
        } else if (lf_drv_opt(argc, argv, &i, "--out", &v)) out = v;
        else if (lf_drv_opt(argc, argv, &i, "--special", &v)) {
            if (n_special == 64) return lf_drv_usage_error("at most 64 --special tokens%s", "");
            specials[n_special++] = v;
        } else if (lf_drv_opt(argc, argv, &i, "--vocab-size", &v)) {
            if (!lf_drv_parse_int(v, 1, 1 << 22, &vocab)) return lf_drv_usage_error("--vocab-size: '%s' is not a count", v);
        } else if (lf_drv_opt(argc, argv, &i, "--min-frequency", &v)) {
            if (!lf_drv_parse_int(v, 1, 1L << 30, &min_freq)) return lf_drv_usage_error("--min-frequency: '%s' is not a count", v);
        } else if (lf_drv_opt(argc, argv, &i, "--max-length", &v)) {
            if (!lf_drv_parse_int(v, 1, 1L << 30, &max_len)) return lf_drv_usage_error("--max-length: '%s' is not a count", v);
        }
        else if (strcmp(argv[i], "--jsonl") == 0) jsonl = true;
        else if (strcmp(argv[i], "--add-special") == 0) special = true;
        else if (strcmp(argv[i], "--skip-special") == 0) skip = true;
        else if (lf_drv_bad) return lf_drv_usage_error("option %s needs a value", lf_drv_bad);
        else if (!mode && argv[i][0] != '-') mode = argv[i];
        else return lf_drv_usage_error("unknown argument '%s'", argv[i]);
    }
    if (!mode || (strcmp(mode, "encode") && strcmp(mode, "decode") && strcmp(mode, "train")))
        return lf_drv_usage_error("expected 'encode', 'decode' or 'train'%s", "");
    if (strcmp(mode, "train") == 0) {
        if (!n_inputs || !out || !vocab) return lf_drv_usage_error("train needs --input, --vocab-size and --out%s", "");
        lf_tok_train_desc d = {0};
        d.inputs = inputs, d.n_inputs = n_inputs, d.vocab_size = (int)vocab, d.min_frequency = (int)min_freq;
        d.model_max_length = (int)max_len;
        if (n_special) d.special_tokens = specials, d.n_special = n_special;
        uint64_t t0 = lf_time_ns();
        lf_status s = lf_tok_train(&d, out);
        if (s != LF_OK) return lf_drv_fail(s);
        if (!lf_drv_quiet) fprintf(stderr, "%s: wrote %s/tokenizer.json (%ld tokens) in %.2f s\n", lf_drv_name, out, vocab,
                                   (double)(lf_time_ns() - t0) / 1e9);
        return 0;
    }
    if (!tok_path) return lf_drv_usage_error("--tokenizer is required%s", "");
    lf_tokenizer t;
    lf_status s = lf_tok_open(&t, tok_path);
    if (s != LF_OK) return lf_drv_fail(s);
    char *text = NULL;
    size_t len = 0;
    s = lf_file_read(input ? input : "/dev/stdin", 0, &text, &len);
    bool enc = strcmp(mode, "encode") == 0;
    if (s == LF_OK && !jsonl) s = enc ? encode_one(&t, text, len, special) : decode_one(&t, text, len, skip, 0);
    for (size_t a = 0, line = 1; s == LF_OK && jsonl && a < len; line++) {
        size_t b = a;
        while (b < len && text[b] != '\n') b++;
        s = enc ? encode_one(&t, text + a, b - a, special) : decode_one(&t, text + a, b - a, skip, (long)line);
        if (s != LF_OK && enc) s = lf__wrap(s, "%s line %zu", input ? input : "stdin", line);
        a = b + 1;
    }
    lf_free(text);
    lf_tok_close(&t);
    return s == LF_OK ? 0 : lf_drv_fail(s);
}
