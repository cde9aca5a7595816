// tests/test_tokenizer.c — section 5 (tokenizer) against references nobody here wrote:
//   - HF tokenizers' ids and decodes for tests/ref/tok_corpus.jsonl on the real tokenizer.json
//     files (tests/fixtures/tok/<name>.jsonl, made by tests/ref/make_tok_fixtures.py);
//   - the models' own Jinja chat templates (tests/fixtures/chat/<name>.jsonl);
//   - Python's unicodedata for NFC; plus a table of broken tokenizer.json inputs.
// The tokenizers come from $LF_TOKENIZERS, default ../shared/tokenizers (from the repo root).
// Each test returns 0 on pass.

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *lf_t_tok_dir(void) {
    const char *d = getenv("LF_TOKENIZERS");
    return d && *d ? d : "../shared/tokenizers";
}

static int lf_t_fail(const char *what, lf_status s) {
    fprintf(stderr, "  %s: %s: %s\n", what, lf_status_str(s), lf_last_error());
    return 1;
}

// Reads a JSONL file into one document per line (split on '\n' only, as the fixture
// scripts write them). Returns the number of lines, -1 on error.
static int lf_t_jsonl(const char *path, lf_doc **docs) {
    char *text;
    size_t len;
    *docs = NULL;
    if (lf_file_read(path, 0, &text, &len) != LF_OK) return -1;
    int n = 0, cap = 0;
    for (char *p = text, *end; p < text + len; p = end + 1) {
        end = memchr(p, '\n', (size_t)(text + len - p));
        if (!end) end = text + len;
        if (end == p) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            *docs = (lf_doc *)realloc(*docs, (size_t)cap * sizeof **docs);
        }
        if (lf_json_parse(&(*docs)[n], p, (size_t)(end - p), path) != LF_OK) {
            fprintf(stderr, "  %s line %d: %s\n", path, n + 1, lf_last_error());
            free(text);
            return -1;
        }
        n++;
    }
    free(text);
    return n;
}
static void lf_t_jsonl_free(lf_doc *docs, int n) {
    for (int i = 0; i < n; i++) lf_doc_deinit(&docs[i]);
    free(docs);
}

// Decodes the JSON string starting at the quote at p. lf_node strings cannot hold U+0000
// (cJSON keeps C strings), and the corpus has one, so the texts are read with this.
static bool lf_t_json_str(const char *p, lf__buf *out) {
    out->len = 0;
    if (!p || *p++ != '"') return false;
    while (*p && *p != '"') {
        if (*p != '\\') {
            lf__buf_put(out, p++, 1);
            continue;
        }
        p++;
        const char *esc = strchr("\"\\/bfnrt", *p), *repl = "\"\\/\b\f\n\r\t";
        if (esc && *p) {
            lf__buf_put(out, repl + (esc - "\"\\/bfnrt"), 1);
            p++;
            continue;
        }
        if (*p != 'u') return false;
        uint32_t c = (uint32_t)strtoul((char[5]){p[1], p[2], p[3], p[4], 0}, NULL, 16);
        p += 5;
        if (c >= 0xD800 && c < 0xDC00 && p[0] == '\\' && p[1] == 'u') {
            uint32_t lo = (uint32_t)strtoul((char[5]){p[2], p[3], p[4], p[5], 0}, NULL, 16);
            c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
            p += 6;
        }
        char u[4];
        lf__buf_put(out, u, lf__utf8_enc(c, u));
    }
    lf__buf_put(out, "", 0);
    return *p == '"' && !out->failed;
}

// The raw text of a JSONL file's line i (0-based), for lf_t_json_str.
static const char *lf_t_line(const char *text, int i) {
    for (; text && i > 0; i--) {
        text = strchr(text, '\n');
        if (text) text++;
    }
    return text;
}

static bool lf_t_ids_equal(const int32_t *ids, size_t n, const lf_node *want) {
    if (!want || want->type != LF_NODE_ARRAY || (size_t)want->n != n) return false;
    for (size_t i = 0; i < n; i++)
        if (ids[i] != (int32_t)want->kids[i].num) return false;
    return true;
}

static void lf_t_show(const char *label, const char *s, size_t n) {
    fprintf(stderr, "    %s (%zu bytes): ", label, n);
    for (size_t i = 0; i < n && i < 200; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7F) fprintf(stderr, "\\x%02x", c);
        else fputc(c, stderr);
    }
    fputc('\n', stderr);
}
static void lf_t_show_ids(const char *label, const int32_t *ids, size_t n) {
    fprintf(stderr, "    %s:", label);
    for (size_t i = 0; i < n && i < 60; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "%s\n", n > 60 ? " ..." : "");
}

// Decodes ids one at a time through a stream; every chunk must be valid UTF-8.
static lf_status lf_t_stream(const lf_tokenizer *t, const int32_t *ids, size_t n, bool skip, char **out, size_t *len) {
    lf_tok_stream st;
    lf_tok_stream_init(&st, t, skip);
    lf__buf all = {0};
    lf_status s = LF_OK;
    for (size_t i = 0; i <= n && s == LF_OK; i++) {
        const char *chunk;
        size_t got;
        s = i < n ? lf_tok_stream_push(&st, ids[i], &chunk, &got) : lf_tok_stream_flush(&st, &chunk, &got);
        if (s == LF_OK && lf__utf8_check((const unsigned char *)chunk, got) != got) {
            fprintf(stderr, "  stream chunk after id %zu is not valid UTF-8\n", i);
            s = LF_ERR_FORMAT;
        }
        if (s == LF_OK) lf__buf_put(&all, chunk, got);
    }
    lf__buf_put(&all, "", 0);
    lf_tok_stream_deinit(&st);
    *out = all.data, *len = all.len;
    return s;
}

static int lf_t_corpus(const char *name) {
    char dir[1024], fix[1024];
    snprintf(dir, sizeof dir, "%s/%s", lf_t_tok_dir(), name);
    snprintf(fix, sizeof fix, "tests/fixtures/tok/%s.jsonl", name);
    lf_tokenizer t;
    lf_status s = lf_tok_open(&t, dir);
    if (s != LF_OK) return lf_t_fail(dir, s);
    lf_doc *corpus, *want;
    int nc = lf_t_jsonl("tests/ref/tok_corpus.jsonl", &corpus), nw = lf_t_jsonl(fix, &want);
    int bad = 0, shown = 0;
    char *corpus_raw = NULL, *want_raw = NULL;
    size_t raw_len;
    lf__buf tb = {0}, db = {0};
    if (lf_file_read("tests/ref/tok_corpus.jsonl", 0, &corpus_raw, &raw_len) != LF_OK ||
        lf_file_read(fix, 0, &want_raw, &raw_len) != LF_OK)
        nc = -1;
    if (nc <= 0 || nc != nw) {
        fprintf(stderr, "  %s: corpus has %d lines, fixture %d\n", name, nc, nw);
        bad = 1;
    }
    for (int i = 0; i < nc && i < nw; i++) {
        const lf_node *w = want[i].root;
        const char *wl = lf_t_line(want_raw, i), *dq = wl ? strstr(wl, "\"decoded\":") : NULL;
        if (!lf_t_json_str(lf_t_line(corpus_raw, i), &tb) || !dq || !lf_t_json_str(dq + 10, &db)) {
            fprintf(stderr, "  %s line %d: cannot read the JSON strings\n", name, i + 1);
            bad++;
            continue;
        }
        const lf_node text_node = {LF_NODE_STRING, 0, NULL, tb.data, tb.len, 0, NULL}, *text = &text_node;
        const lf_node dec_node = {LF_NODE_STRING, 0, NULL, db.data, db.len, 0, NULL}, *dec = &dec_node;
        int32_t *ids = NULL, *ids_sp = NULL;
        size_t n = 0, n_sp = 0, dlen = 0, slen = 0;
        char *decoded = NULL, *streamed = NULL;
        bool ok = lf_tok_encode(&t, text->str, text->len, false, &ids, &n) == LF_OK && lf_t_ids_equal(ids, n, lf_node_get(w, "ids"));
        ok = ok && lf_tok_encode(&t, text->str, text->len, true, &ids_sp, &n_sp) == LF_OK &&
             lf_t_ids_equal(ids_sp, n_sp, lf_node_get(w, "ids_special"));
        ok = ok && lf_tok_decode(&t, ids, n, false, &decoded, &dlen) == LF_OK && dlen == dec->len &&
             memcmp(decoded, dec->str, dlen) == 0;
        ok = ok && lf_t_stream(&t, ids, n, false, &streamed, &slen) == LF_OK && slen == dec->len &&
             memcmp(streamed, dec->str, slen) == 0;
        if (!ok) {
            bad++;
            if (shown++ < 4) {
                fprintf(stderr, "  %s line %d mismatch (%s)\n", name, i + 1, lf_last_error());
                lf_t_show("text", text->str, text->len);
                lf_t_show_ids("ours", ids, n);
                const lf_node *wi = lf_node_get(w, "ids");
                fprintf(stderr, "    want:");
                for (int j = 0; j < wi->n && j < 60; j++) fprintf(stderr, " %d", (int)wi->kids[j].num);
                fprintf(stderr, "\n");
                lf_t_show_ids("ours special", ids_sp, n_sp);
                if (decoded) lf_t_show("decoded", decoded, dlen);
                if (streamed) lf_t_show("streamed", streamed, slen);
                lf_t_show("want decoded", dec->str, dec->len);
            }
        }
        lf_free(ids), lf_free(ids_sp), lf_free(decoded), free(streamed);
    }
    fprintf(stderr, "  %s: %d/%d corpus lines match\n", name, nc - bad, nc);
    lf_free(corpus_raw), lf_free(want_raw), lf_free(tb.data), lf_free(db.data);
    lf_t_jsonl_free(corpus, nc);
    lf_t_jsonl_free(want, nw);
    lf_tok_close(&t);
    return bad != 0;
}

static int test_tok_corpus_gpt2(void) { return lf_t_corpus("gpt2"); }
static int test_tok_corpus_llama2(void) { return lf_t_corpus("llama2"); }
static int test_tok_corpus_llama3(void) { return lf_t_corpus("llama3"); }
static int test_tok_corpus_mistral(void) { return lf_t_corpus("mistral"); }
static int test_tok_corpus_qwen3(void) { return lf_t_corpus("qwen3"); }

// Python's json.dumps(x, ensure_ascii=False) (Jinja's tojson in transformers), for tool calls.
static void lf_t_pyjson(lf__buf *b, const lf_node *n) {
    switch (n->type) {
    case LF_NODE_NULL: lf__buf_puts(b, "null"); break;
    case LF_NODE_BOOL: lf__buf_puts(b, n->num != 0 ? "true" : "false"); break;
    case LF_NODE_NUMBER:
        if (n->num == (double)(long long)n->num) lf__buf_printf(b, "%lld", (long long)n->num);
        else lf__buf_printf(b, "%.17g", n->num);
        break;
    case LF_NODE_STRING:
        lf__buf_puts(b, "\"");
        for (size_t i = 0; i < n->len; i++) {
            unsigned char c = (unsigned char)n->str[i];
            if (c == '"' || c == '\\') lf__buf_printf(b, "\\%c", c);
            else if (c == '\n') lf__buf_puts(b, "\\n");
            else if (c < 0x20) lf__buf_printf(b, "\\u%04x", c);
            else lf__buf_put(b, &n->str[i], 1);
        }
        lf__buf_puts(b, "\"");
        break;
    default:
        lf__buf_puts(b, n->type == LF_NODE_ARRAY ? "[" : "{");
        for (int i = 0; i < n->n; i++) {
            if (i) lf__buf_puts(b, ", ");
            if (n->type == LF_NODE_OBJECT) lf__buf_printf(b, "\"%s\": ", n->kids[i].key);
            lf_t_pyjson(b, &n->kids[i]);
        }
        lf__buf_puts(b, n->type == LF_NODE_ARRAY ? "]" : "}");
    }
}

// Chat fixtures: one file per tokenizer, rendered with the template its config detects.
static int lf_t_chat(const char *name) {
    char dir[1024], fix[1024];
    snprintf(dir, sizeof dir, "%s/%s", lf_t_tok_dir(), name);
    snprintf(fix, sizeof fix, "tests/fixtures/chat/%s.jsonl", name);
    if (!lf_path_exists(fix)) {
        fprintf(stderr, "  %s missing\n", fix);
        return 1;
    }
    lf_tokenizer t;
    lf_status s = lf_tok_open(&t, dir);
    if (s != LF_OK) return lf_t_fail(dir, s);
    lf_doc *cases;
    int n = lf_t_jsonl(fix, &cases), bad = n <= 0;
    for (int i = 0; i < n; i++) {
        const lf_node *root = cases[i].root, *msgs = lf_node_get(root, "messages"), *gen = lf_node_get(root, "add_generation_prompt");
        const lf_node *want = lf_node_get(root, "text"), *err = lf_node_get(root, "error");
        lf_chat_msg m[64];
        lf_chat_tool_call calls[64];
        lf__buf args[64];
        int nm = msgs && msgs->n < 64 ? msgs->n : 0, nc = 0;
        memset(m, 0, sizeof m);
        for (int j = 0; j < nm; j++) {
            const lf_node *msg = &msgs->kids[j], *r = lf_node_get(msg, "role"), *c = lf_node_get(msg, "content");
            const lf_node *rc = lf_node_get(msg, "reasoning_content"), *tc = lf_node_get(msg, "tool_calls");
            m[j].role = r ? r->str : "", m[j].content = c ? c->str : "";
            m[j].reasoning = rc && rc->type == LF_NODE_STRING ? rc->str : NULL;
            m[j].tool_calls = calls + nc;
            for (int q = 0; tc && q < tc->n && nc < 64; q++, nc++, m[j].n_tool_calls++) {
                const lf_node *f = lf_node_get(&tc->kids[q], "function"), *fn = f ? f : &tc->kids[q];
                const lf_node *a = lf_node_get(fn, "arguments");
                memset(&args[nc], 0, sizeof args[nc]);
                if (a && a->type == LF_NODE_STRING) lf__buf_puts(&args[nc], a->str);
                else if (a) lf_t_pyjson(&args[nc], a);
                lf__buf_put(&args[nc], "", 0);
                calls[nc].name = lf_node_get(fn, "name")->str, calls[nc].arguments = args[nc].data;
            }
        }
        const lf_node *think = lf_node_get(lf_node_get(root, "kwargs"), "enable_thinking");
        unsigned flags = (gen && gen->num != 0 ? LF_CHAT_GENERATION_PROMPT : 0u) |
                         (think && think->num == 0 ? LF_CHAT_NO_THINKING : 0u);
        char *out = NULL;
        size_t len = 0;
        s = lf_chat_render(&t, LF_CHAT_DEFAULT, m, nm, flags, &out, &len);
        for (int q = 0; q < nc; q++) lf_free(args[q].data);
        bool expect_err = err && err->type == LF_NODE_BOOL && err->num != 0;
        bool ok = expect_err ? s != LF_OK : s == LF_OK && want && want->len == len && memcmp(want->str, out, len) == 0;
        if (!ok && bad++ < 4) {
            fprintf(stderr, "  %s case %d: %s %s\n", fix, i + 1, lf_status_str(s), s != LF_OK ? lf_last_error() : "");
            if (out) lf_t_show("ours", out, len);
            if (want) lf_t_show("want", want->str, want->len);
        }
        lf_free(out);
    }
    fprintf(stderr, "  %s: %d/%d chat cases match\n", name, n - bad, n);
    lf_t_jsonl_free(cases, n);
    lf_tok_close(&t);
    return bad != 0;
}
static int test_tok_chat_qwen3(void) { return lf_t_chat("qwen3"); }
static int test_tok_chat_llama3(void) { return lf_t_chat("llama3"); }
static int test_tok_chat_llama2(void) { return lf_t_chat("llama2"); }
static int test_tok_chat_mistral(void) { return lf_t_chat("mistral"); }

static int test_tok_chat_plain(void) {
    lf_chat_msg m[] = {{"system", "Be brief.", NULL, NULL, 0}, {"user", "Hi", NULL, NULL, 0},
                       {"assistant", "Hello.", NULL, NULL, 0}, {"user", "2+2?", NULL, NULL, 0}};
    char *out;
    size_t len;
    lf_status s = lf_chat_render(NULL, LF_CHAT_PLAIN, m, 4, LF_CHAT_GENERATION_PROMPT, &out, &len);
    if (s != LF_OK) return lf_t_fail("plain", s);
    int bad = strcmp(out, "Be brief.\nInstruction: Hi\nResponse: Hello.\nEND\nInstruction: 2+2?\nResponse:") != 0;
    lf_free(out);
    lf_chat_msg tool[] = {{"tool", "x", NULL, NULL, 0}};
    bad += lf_chat_render(NULL, LF_CHAT_PLAIN, tool, 1, 0, &out, &len) != LF_ERR_ARG;
    lf_chat_template tm;
    bad += lf_chat_template_from_name("llama3", &tm) != LF_OK || tm != LF_CHAT_LLAMA3;
    bad += lf_chat_template_from_name("jinja", &tm) != LF_ERR_ARG;
    // a template we do not recognize is an error naming the config file, not a silent fallback
    const char *tj = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}";
    const char *cfg = "{\"chat_template\":\"{{ messages | tojson }}\"}";
    lf_tokenizer t;
    if ((s = lf_tok_load(&t, tj, strlen(tj), cfg, strlen(cfg), "mem/tokenizer.json")) != LF_OK) return lf_t_fail("load", s);
    s = lf_chat_render(&t, LF_CHAT_DEFAULT, m + 1, 1, LF_CHAT_GENERATION_PROMPT, &out, &len);
    bad += s != LF_ERR_UNSUPPORTED || !strstr(lf_last_error(), "mem/tokenizer_config.json: chat_template");
    lf_tok_close(&t);
    return bad;
}

// Broken tokenizer.json inputs: each gives its status and names the field.
static int test_tok_bad_inputs(void) {
    static const struct {
        const char *json;
        lf_status want;
        const char *msg;
    } cases[] = {
        {"{\"model\":", LF_ERR_FORMAT, "invalid JSON"},
        {"[]", LF_ERR_FORMAT, "must be a JSON object"},
        {"{}", LF_ERR_FORMAT, "model: missing"},
        {"{\"model\":{\"merges\":[]}}", LF_ERR_FORMAT, "model.vocab: missing"},
        {"{\"model\":{\"vocab\":[],\"merges\":[]}}", LF_ERR_FORMAT, "model.vocab: must be an object"},
        {"{\"model\":{\"vocab\":{},\"merges\":[]}}", LF_ERR_FORMAT, "model.vocab: empty"},
        {"{\"model\":{\"type\":\"WordPiece\",\"vocab\":{\"a\":0}}}", LF_ERR_UNSUPPORTED, "model.type: unsupported 'WordPiece'"},
        {"{\"model\":{\"vocab\":{\"a\":-1},\"merges\":[]}}", LF_ERR_FORMAT, "model.vocab['a']: must be an integer"},
        {"{\"model\":{\"vocab\":{\"a\":1.5},\"merges\":[]}}", LF_ERR_FORMAT, "model.vocab['a']: must be an integer"},
        {"{\"model\":{\"vocab\":{\"a\":99999999},\"merges\":[]}}", LF_ERR_FORMAT, "model.vocab['a']: must be an integer"},
        {"{\"model\":{\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]}}", LF_ERR_FORMAT, "id 0 is used twice"},
        {"{\"model\":{\"vocab\":{\"a\":0,\"a\":1},\"merges\":[]}}", LF_ERR_FORMAT, "duplicate token"},
        {"{\"model\":{\"vocab\":{\"a\":0}}}", LF_ERR_FORMAT, "model.merges: missing"},
        {"{\"model\":{\"vocab\":{\"a\":0},\"merges\":{}}}", LF_ERR_FORMAT, "model.merges: must be an array"},
        {"{\"model\":{\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a c\"]}}", LF_ERR_FORMAT, "model.merges[0]: unknown token 'c'"},
        {"{\"model\":{\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"ab\"]}}", LF_ERR_FORMAT, "model.merges[0]: expected"},
        {"{\"model\":{\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b \"]}}", LF_ERR_FORMAT, "model.merges[0]: expected"},
        {"{\"model\":{\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[[\"a\"]]}}", LF_ERR_FORMAT, "model.merges[0]: expected"},
        {"{\"model\":{\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a b\"]}}", LF_ERR_FORMAT, "model.merges[0]: 'a' + 'b' is not in the vocab"},
        {"{\"model\":{\"vocab\":{\"a\":0},\"merges\":[],\"unk_token\":\"<unk>\"}}", LF_ERR_FORMAT, "model.unk_token"},
        {"{\"model\":{\"vocab\":{\"a\":0},\"merges\":[],\"continuing_subword_prefix\":\"##\"}}", LF_ERR_UNSUPPORTED,
         "model.continuing_subword_prefix: unsupported"},
        {"{\"model\":{\"vocab\":{\"a\":0},\"merges\":[]},\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":"
         "[{\"type\":\"Whitespace\"}]}}", LF_ERR_UNSUPPORTED, "pre_tokenizer.pretokenizers[0].type: unsupported 'Whitespace'"},
        {"{\"model\":{\"vocab\":{\"a\":0},\"merges\":[]},\"normalizer\":{\"type\":\"Lowercase\"}}", LF_ERR_UNSUPPORTED,
         "normalizer.type: unsupported 'Lowercase'"},
        {"{\"model\":{\"vocab\":{\"a\":0},\"merges\":[]},\"decoder\":{\"type\":\"Metaspace\"}}", LF_ERR_UNSUPPORTED,
         "decoder.type: unsupported 'Metaspace'"},
        {"{\"model\":{\"vocab\":{\"a\":0},\"merges\":[]},\"normalizer\":{\"normalizers\":[]}}", LF_ERR_FORMAT,
         "normalizer.type: missing"},
        {"{\"model\":{\"vocab\":{\"a\":0},\"merges\":[]},\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":"
         "\"(?<=a)b\"},\"behavior\":\"Isolated\"}}", LF_ERR_UNSUPPORTED, "pre_tokenizer.pattern.Regex: unsupported group kind"},
        {"{\"model\":{\"vocab\":{\"a\":0},\"merges\":[]},\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":"
         "\"(ab\"},\"behavior\":\"Isolated\"}}", LF_ERR_FORMAT, "pre_tokenizer.pattern.Regex: missing )"},
        {"{\"model\":{\"vocab\":{\"a\":0},\"merges\":[]},\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":"
         "\"(a*)*\"},\"behavior\":\"Isolated\"}}", LF_ERR_UNSUPPORTED, "can match empty"},
        {"{\"model\":{\"vocab\":{\"a\":0},\"merges\":[]},\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":"
         "\"a\"},\"behavior\":\"Sideways\"}}", LF_ERR_UNSUPPORTED, "pre_tokenizer.behavior: unsupported 'Sideways'"},
        {"{\"model\":{\"vocab\":{\"a\":0},\"merges\":[]},\"added_tokens\":[{\"id\":1}]}", LF_ERR_FORMAT,
         "added_tokens[0].content: missing"},
        {"{\"model\":{\"vocab\":{\"a\":0},\"merges\":[]},\"added_tokens\":[{\"id\":\"x\",\"content\":\"<s>\"}]}",
         LF_ERR_FORMAT, "added_tokens[0].id: must be an integer"},
        {"{\"model\":{\"vocab\":{\"a\":0},\"merges\":[]},\"added_tokens\":[{\"id\":0,\"content\":\"<s>\"}]}", LF_ERR_FORMAT,
         "added_tokens[0]: id 0 of '<s>' is already the token 'a'"},
        {"{\"model\":{\"vocab\":{\"a\":0},\"merges\":[]},\"added_tokens\":[{\"id\":5,\"content\":\"a\"}]}", LF_ERR_FORMAT,
         "added_tokens[0]: 'a' has id 5, but the vocab gives it id 0"},
        {"{\"model\":{\"vocab\":{\"a\":0},\"merges\":[]},\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":"
         "[{\"SpecialToken\":{\"id\":\"<s>\"}}],\"special_tokens\":{}}}", LF_ERR_FORMAT, "no ids for '<s>'"},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        lf_tokenizer t;
        lf_status s = lf_tok_load(&t, cases[i].json, strlen(cases[i].json), NULL, 0, "tokenizer.json");
        if (s != cases[i].want || !strstr(lf_last_error(), cases[i].msg)) {
            fprintf(stderr, "  case %zu: got %s '%s', want %s '%s'\n", i, lf_status_str(s), lf_last_error(),
                    lf_status_str(cases[i].want), cases[i].msg);
            bad++;
        }
        lf_tok_close(&t);
        lf_tok_close(&t);  // safe twice
    }
    return bad;
}

static int test_tok_api(void) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/llama2", lf_t_tok_dir());
    lf_tokenizer t;
    lf_status s = lf_tok_open(&t, dir);
    if (s != LF_OK) return lf_t_fail(dir, s);
    int bad = 0;
    bad += lf_tok_vocab_size(&t) != 32000 || t.bos_id != 1 || t.eos_id != 2 || t.chat != LF_CHAT_LLAMA2;
    bad += lf_tok_find(&t, "<s>") != 1 || lf_tok_find(&t, "▁Hello") != 15043 || lf_tok_find(&t, "no such") != -1;
    bad += !lf_tok_is_special(&t, 2) || lf_tok_is_special(&t, 15043) || lf_tok_piece(&t, 32000) != NULL;
    bad += strcmp(lf_tok_piece(&t, 13), "<0x0A>") != 0;
    int32_t *ids;
    size_t n;
    s = lf_tok_encode(&t, "ab\xC3(", 4, false, &ids, &n);
    bad += s != LF_ERR_FORMAT || !strstr(lf_last_error(), "byte offset 2");
    int32_t bad_ids[] = {1, 15043, 32000};
    char *text;
    size_t len;
    s = lf_tok_decode(&t, bad_ids, 3, false, &text, &len);
    bad += s != LF_ERR_ARG || !strstr(lf_last_error(), "ids[2] = 32000");
    // skip_special drops <s>; the SentencePiece Strip then removes the leading space
    s = lf_tok_decode(&t, bad_ids, 2, true, &text, &len);
    bad += s != LF_OK || strcmp(text, "Hello") != 0;
    lf_free(text);
    // a byte-fallback run that is not UTF-8 decodes to one U+FFFD per byte, streamed or not
    int32_t run[] = {0xE4 + 3, 0x41 + 3, 15043};
    s = lf_tok_decode(&t, run, 3, false, &text, &len);
    bad += s != LF_OK || strcmp(text, "\xEF\xBF\xBD\xEF\xBF\xBD Hello") != 0;
    lf_free(text);
    // the stream holds a byte run until a non-byte token ends it, then emits complete text
    const char *chunk;
    lf_tok_stream st;
    lf_tok_stream_init(&st, &t, false);
    int32_t zh[] = {0xE4 + 3, 0xB8 + 3, 0x80 + 3, 29991};  // 一 as byte tokens, then "!"
    for (int i = 0; i < 3; i++) bad += lf_tok_stream_push(&st, zh[i], &chunk, &len) != LF_OK || len != 0;
    bad += lf_tok_stream_push(&st, zh[3], &chunk, &len) != LF_OK || strcmp(chunk, "\xE4\xB8\x80!") != 0;
    bad += lf_tok_stream_push(&st, 0xE4 + 3, &chunk, &len) != LF_OK || len != 0;
    bad += lf_tok_stream_flush(&st, &chunk, &len) != LF_OK || strcmp(chunk, "\xEF\xBF\xBD") != 0;
    lf_tok_stream_deinit(&st);
    lf_tok_close(&t);
    lf_tok_close(&t);
    return bad;
}

// NFC against pairs computed with Python's unicodedata.normalize("NFC", s).
static int test_tok_nfc(void) {
    static const struct { const char *in, *want; } cases[] = {
        {"e\xCC\x81", "\xC3\xA9"},                          // e + COMBINING ACUTE -> é
        {"A\xCC\x8A", "\xC3\x85"},                          // A + RING ABOVE -> Å
        {"\xE2\x84\xAB", "\xC3\x85"},                       // ANGSTROM SIGN (singleton) -> Å
        {"\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB", "\xED\x95\x9C"},  // Hangul L V T -> 한
        {"a\xCC\xA3\xCC\x87", "\xE1\xBA\xA1\xCC\x87"},      // a + dot below + dot above -> ạ + dot above
        {"a\xCC\x87\xCC\xA3", "\xE1\xBA\xA1\xCC\x87"},      // reordered by combining class first
        {"\xE0\xA4\x95\xE0\xA4\xBC", "\xE0\xA4\x95\xE0\xA4\xBC"},  // क + nukta: composition exclusion
        {"\xEF\xAC\x81", "\xEF\xAC\x81"},                   // ﬁ ligature: compatibility only, unchanged
        {"plain ASCII", "plain ASCII"},
        {"\xE1\xBE\xB7", "\xE1\xBE\xB7"},                   // ᾷ stays composed
        {"\xCE\xB1\xCD\x82\xCD\x85", "\xE1\xBE\xB7"},       // α + perispomeni + ypogegrammeni -> ᾷ
    };
    int bad = 0;
    lf__u32vec cps = {0};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        lf__buf out = {0};
        if (!lf__uc_normalize(cases[i].in, strlen(cases[i].in), true, &cps, &out) || !out.data ||
            strcmp(out.data, cases[i].want) != 0) {
            fprintf(stderr, "  NFC case %zu wrong\n", i);
            bad++;
        }
        LF_FREE(out.data);
    }
    // a long run of alternating marks (the counting-sort path): "a" + (U+0301 U+0316) x 50
    // is, as Python's unicodedata says, U+00E1 + U+0316 x 50 + U+0301 x 49
    lf__buf in = {0}, want = {0}, out = {0};
    lf__buf_puts(&in, "a"), lf__buf_puts(&want, "\xC3\xA1");
    for (int i = 0; i < 50; i++) lf__buf_puts(&in, "\xCC\x81\xCC\x96"), lf__buf_puts(&want, "\xCC\x96");
    for (int i = 0; i < 49; i++) lf__buf_puts(&want, "\xCC\x81");
    if (!lf__uc_normalize(in.data, in.len, true, &cps, &out) || out.len != want.len || memcmp(out.data, want.data, out.len)) {
        fprintf(stderr, "  NFC of a long run of marks wrong\n");
        bad++;
    }
    LF_FREE(in.data), LF_FREE(want.data), LF_FREE(out.data);
    LF_FREE(cps.v);
    return bad;
}

// The regex engine on the constructs HF patterns use.
static int test_tok_regex(void) {
    static const struct { const char *pat, *text; int start, end; } cases[] = {
        {"'s|'t|'re", "x're", 1, 4},
        {"(?i:'s|'ll)", "'LL", 0, 3},
        {"(?i:'s)", "'\xC5\xBF", 0, 3},  // ſ folds to s
        {"\\s+(?!\\S)|\\s+", "a   b", 1, 3},
        {"\\s+(?!\\S)|\\s+", "a   ", 1, 4},
        {"\\p{N}{1,3}", "12345", 0, 3},
        {"[^\\r\\n\\p{L}\\p{N}]?\\p{L}+", "  \xC3\xA9t\xC3\xA9", 1, 7},
        {" ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*", "ab !?\n\nc", 2, 7},
        {"\\s*[\\r\\n]+", "x \n\n y", 1, 4},
        {"a(?=b)", "aab", 1, 2},
        {"[a-c]+?c", "abcc", 0, 3},
        {"x{2,}", "xxxxy", 0, 4},
        {"\\P{L}+", "ab12", 2, 4},
        {"[\\x41-\\x43]+", "zABCD", 1, 4},
        {"q", "abc", -1, -1},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        lf__re re;
        lf_status s = lf__re_compile(&re, cases[i].pat, strlen(cases[i].pat), false, "test", "pattern");
        if (s != LF_OK) {
            bad += lf_t_fail(cases[i].pat, s);
            continue;
        }
        lf__re_ctx c = {&re, (const unsigned char *)cases[i].text, strlen(cases[i].text), NULL, 0, 0, 0, 0};
        size_t ms = 0, me = 0;
        int r = lf__re_find(&c, 0, &ms, &me);
        if (r < 0 || (r == 0) != (cases[i].start < 0) || (r == 1 && ((int)ms != cases[i].start || (int)me != cases[i].end))) {
            fprintf(stderr, "  regex /%s/ on '%s': got %d [%zu, %zu)\n", cases[i].pat, cases[i].text, r, ms, me);
            bad++;
        }
        LF_FREE(c.stk);
        lf__re_free(&re);
    }
    return bad;
}

// -- the BPE trainer
// (lf_tok_train) against HF tokenizers: the test trains on tests/fixtures/tok/bpe_train/{kjv,mixed}.txt
// (vocab 1000), and HF's ids for lines.txt on that tokenizer (expected.jsonl, made by
// tests/ref/make_bpe_fixture.py) must equal lf_tok_encode's. Uses lf_t_jsonl, lf_t_json_str,
// lf_t_line, lf_t_ids_equal, lf_t_show(_ids) from test_tokenizer.c.

#include <sys/stat.h>
#include <unistd.h>

#define LF_T_BPE_DIR "tests/fixtures/tok/bpe_train"

// SHA-256 (FIPS 180-4), for the fixture's tokenizer.sha256.

static bool lf_t_file_eq(const char *path, const char *data, size_t len) {
    char *f;
    size_t n;
    if (lf_file_read(path, 0, &f, &n) != LF_OK) return false;
    bool eq = n == len && memcmp(f, data, n) == 0;
    lf_free(f);
    return eq;
}

// Trains on the fixture corpus; the files must be the same byte for byte when trained again
// from memory, hash to the fixture's tokenizer.sha256, and load; HF's ids for every line of
// expected.jsonl must equal lf_tok_encode's, and decode must give the text back.
static int test_tok_train_fixture(void) {
    const char *inputs[2] = {LF_T_BPE_DIR "/kjv.txt", LF_T_BPE_DIR "/mixed.txt"};
    lf_tok_train_desc d = {.inputs = inputs, .n_inputs = 2, .vocab_size = 1000};
    char dir[] = "/tmp/lf-test-bpe-XXXXXX", tpath[64], cpath[64];
    CHECK(mkdtemp(dir));
    snprintf(tpath, sizeof tpath, "%s/tokenizer.json", dir), snprintf(cpath, sizeof cpath, "%s/tokenizer_config.json", dir);
    CHECK_OK(lf_tok_train(&d, dir));

    // again, from memory: the same bytes
    char *texts[2], *tj, *cj;
    size_t lens[2], tl, cl;
    CHECK_OK(lf_file_read(inputs[0], 0, &texts[0], &lens[0]));
    CHECK_OK(lf_file_read(inputs[1], 0, &texts[1], &lens[1]));
    lf_tok_train_desc dm = {.texts = (const char *const *)texts, .text_lens = lens, .n_texts = 2, .vocab_size = 1000};
    CHECK_OK(lf_tok_train_json(&dm, &tj, &tl, &cj, &cl));
    lf_free(texts[0]), lf_free(texts[1]);
    bool same = lf_t_file_eq(tpath, tj, tl) && lf_t_file_eq(cpath, cj, cl);
    char hex[65], *want_hex;
    size_t wl;
    lf_sha256 sc;
    lf_sha256_init(&sc);
    lf_sha256_update(&sc, tj, tl);
    lf_sha256_final(&sc, hex);
    lf_free(tj), lf_free(cj);
    if (!same) {
        fprintf(stderr, "  a second training run gave different files (first run kept in %s)\n", dir);
        return 1;
    }
    bool fixture_ok = lf_file_read(LF_T_BPE_DIR "/tokenizer.sha256", 0, &want_hex, &wl) == LF_OK && wl >= 64 &&
                      memcmp(want_hex, hex, 64) == 0;
    lf_free(want_hex);
    if (!fixture_ok) {
        fprintf(stderr, "  the trainer's output changed (sha256 %s, the fixture's is in %s/tokenizer.sha256);\n"
                        "  if intended, regenerate: python3 tests/ref/make_bpe_fixture.py %s %s/lines.txt --out %s "
                        "--corpus %s %s\n", hex, LF_T_BPE_DIR, tpath, LF_T_BPE_DIR, LF_T_BPE_DIR, inputs[0], inputs[1]);
        return 1;
    }

    lf_tokenizer t;
    lf_status s = lf_tok_open(&t, dir);
    if (s != LF_OK) return lf_t_fail(dir, s);
    int bad = 0;
    bad += t.n_vocab != 1000 || t.eos_id != 0 || t.bos_id != -1 || t.chat != LF_CHAT_CHATML;
    bad += lf_tok_find(&t, "<|im_end|>") != 2 || !lf_tok_is_special(&t, 1) || lf_tok_is_special(&t, 3);
    // GPT-2's byte order: the 188 printable bytes first ("!" is 3), then 0x00.. (space is the 33rd)
    bad += strcmp(lf_tok_piece(&t, 3), "!") != 0 || strcmp(lf_tok_piece(&t, 3 + 188 + 32), "\xC4\xA0") != 0;
    lf_chat_msg msg = {.role = "user", .content = "hi"};
    char *chat;
    size_t chat_len;
    if (lf_chat_render(&t, LF_CHAT_DEFAULT, &msg, 1, LF_CHAT_GENERATION_PROMPT, &chat, &chat_len) != LF_OK ||
        strcmp(chat, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n") != 0)
        bad++;
    else
        lf_free(chat);
    if (bad) fprintf(stderr, "  %s: wrong vocab size, special ids, byte order or chat template\n", dir);

    lf_doc *want;
    char *raw = NULL;
    size_t raw_len;
    int nw = lf_t_jsonl(LF_T_BPE_DIR "/expected.jsonl", &want), shown = 0;
    if (nw < 50 || lf_file_read(LF_T_BPE_DIR "/expected.jsonl", 0, &raw, &raw_len) != LF_OK) {
        fprintf(stderr, "  cannot read %s/expected.jsonl\n", LF_T_BPE_DIR);
        bad++;
    }
    lf__buf text = {0};
    int wrong = 0;
    for (int i = 0; raw && i < nw; i++) {
        const char *tq = strstr(lf_t_line(raw, i), "\"text\":");
        if (!tq || !lf_t_json_str(tq + 7 + (tq[7] == ' '), &text)) {
            fprintf(stderr, "  expected.jsonl line %d: cannot read the text\n", i + 1);
            bad++;
            continue;
        }
        int32_t *ids = NULL;
        size_t n = 0, dl = 0;
        char *dec = NULL;
        bool ok = lf_tok_encode(&t, text.data, text.len, false, &ids, &n) == LF_OK &&
                  lf_t_ids_equal(ids, n, lf_node_get(want[i].root, "ids"));
        ok = ok && lf_tok_decode(&t, ids, n, false, &dec, &dl) == LF_OK && dl == text.len && memcmp(dec, text.data, dl) == 0;
        if (!ok) {
            wrong++;
            if (shown++ < 4) {
                fprintf(stderr, "  expected.jsonl line %d mismatch (%s)\n", i + 1, lf_last_error());
                lf_t_show("text", text.data, text.len);
                lf_t_show_ids("ours", ids, n);
                if (dec) lf_t_show("decoded", dec, dl);
            }
        }
        lf_free(ids), lf_free(dec);
    }
    fprintf(stderr, "  bpe_train: %d/%d fixture lines match\n", nw - wrong, nw);
    lf_free(text.data), lf_free(raw);
    if (nw > 0) lf_t_jsonl_free(want, nw);
    lf_tok_close(&t);
    remove(tpath), remove(cpath), rmdir(dir);
    return bad + wrong != 0;
}

// Loads trained JSON text into t (with its config).
static lf_status lf_t_train_load(lf_tokenizer *t, const lf_tok_train_desc *d) {
    char *tj, *cj;
    size_t tl, cl;
    lf_status s = lf_tok_train_json(d, &tj, &tl, &cj, &cl);
    if (s != LF_OK) return s;
    s = lf_tok_load(t, tj, tl, cj, cl, "trained");
    lf_free(tj), lf_free(cj);
    return s;
}

// Small trainings whose results are known by hand.
static int test_tok_train_small(void) {
    lf_tokenizer t;
    int32_t *ids;
    size_t n;
    // "ab ab ab": (a, b) is merged first (count 3, ties with none), then (Ġ, ab) (count 2);
    // min_frequency 3 stops after the first
    const char *t1[1] = {"ab ab ab"};
    size_t l1[1] = {8};
    lf_tok_train_desc d = {.texts = t1, .text_lens = l1, .n_texts = 1, .vocab_size = 1000};
    CHECK_OK(lf_t_train_load(&t, &d));
    CHECK(t.n_vocab == 261 && lf_tok_find(&t, "ab") == 259 && lf_tok_find(&t, "\xC4\xA0" "ab") == 260);
    lf_tok_close(&t);
    d.min_frequency = 3;
    CHECK_OK(lf_t_train_load(&t, &d));
    CHECK(t.n_vocab == 260 && lf_tok_find(&t, "ab") == 259);
    lf_tok_close(&t);
    // a vocab with room for the bytes and specials only: no merge
    d.vocab_size = 259, d.min_frequency = 0;
    CHECK_OK(lf_t_train_load(&t, &d));
    CHECK(t.n_vocab == 259);
    CHECK_OK(lf_tok_encode(&t, "ab", 2, false, &ids, &n));
    CHECK(n == 2 && ids[0] == 3 + 'a' - '!' && ids[1] == 3 + 'b' - '!');
    lf_free(ids);
    lf_tok_close(&t);
    // ties: in "xy zw xy zw", (x,y), (z,w) and (Ġ,z) all count 2, and the smallest (left id,
    // right id) goes first: letters sort before Ġ (258), so xy, zw, then Ġzw; Ġxy counts 1
    const char *t2[1] = {"xy zw xy zw"};
    size_t l2[1] = {11};
    lf_tok_train_desc d2 = {.texts = t2, .text_lens = l2, .n_texts = 1, .vocab_size = 300};
    CHECK_OK(lf_t_train_load(&t, &d2));
    CHECK(lf_tok_find(&t, "xy") == 259 && lf_tok_find(&t, "zw") == 260 && lf_tok_find(&t, "\xC4\xA0" "zw") == 261);
    CHECK(t.n_vocab == 262);
    lf_tok_close(&t);
    // special tokens in the text are cut out, never merged; custom specials, eos and bos
    const char *sp[2] = {"<s>", "</s>"};
    const char *t3[1] = {"<s>hello</s><s>hello</s><s>hello</s>"};
    size_t l3[1] = {strlen(t3[0])};
    lf_tok_train_desc d3 = {.texts = t3, .text_lens = l3, .n_texts = 1, .vocab_size = 400, .special_tokens = sp,
                            .n_special = 2, .eos_token = "</s>", .bos_token = "<s>", .model_max_length = 512};
    char *tj, *cj;
    size_t tl, cl;
    CHECK_OK(lf_tok_train_json(&d3, &tj, &tl, &cj, &cl));
    CHECK(strstr(cj, "\"model_max_length\": 512") && strstr(cj, "\"bos_token\": \"<s>\"") && !strstr(cj, "chat_template"));
    CHECK_OK(lf_tok_load(&t, tj, tl, cj, cl, "trained"));
    lf_free(tj), lf_free(cj);
    CHECK(t.bos_id == 0 && t.eos_id == 1 && t.chat == LF_CHAT_DEFAULT && lf_tok_find(&t, "hello") >= 0);
    CHECK(lf_tok_find(&t, "<s") < 0 && lf_tok_find(&t, "</") < 0 && lf_tok_find(&t, "s>") < 0);
    CHECK_OK(lf_tok_encode(&t, t3[0], l3[0], false, &ids, &n));
    CHECK(n == 9 && ids[0] == 0 && ids[1] == lf_tok_find(&t, "hello") && ids[2] == 1);
    lf_free(ids);
    lf_tok_close(&t);
    // no special tokens at all: eos null, the byte tokens start at 0
    lf_tok_train_desc d4 = {.texts = t1, .text_lens = l1, .n_texts = 1, .vocab_size = 256, .special_tokens = sp};
    CHECK_OK(lf_t_train_load(&t, &d4));
    CHECK(t.n_vocab == 256 && t.eos_id == -1 && lf_tok_find(&t, "!") == 0);
    lf_tok_close(&t);
    // a long run: tokens grow by doubling until the next would pass LF_MAX_TOKEN_BYTES, and the
    // file still loads (the loader refuses longer tokens)
    char *run = (char *)malloc(2 * 4096 + 1);
    memset(run, 'x', 2 * 4096 + 1), run[4096] = ' ';
    const char *t5[1] = {run};
    size_t l5[1] = {2 * 4096 + 1};
    lf_tok_train_desc d5 = {.texts = t5, .text_lens = l5, .n_texts = 1, .vocab_size = 400};
    lf_status s = lf_t_train_load(&t, &d5);
    free(run);
    CHECK_OK(s);
    CHECK(lf_tok_piece(&t, t.n_vocab - 1) && strlen(lf_tok_piece(&t, t.n_vocab - 1)) <= LF_MAX_TOKEN_BYTES);
    lf_tok_close(&t);
    return 0;
}

static int test_tok_train_bad_inputs(void) {
    char dir[] = "/tmp/lf-test-bpe-bad-XXXXXX", bad_utf8[64], missing[64], file_out[64];
    CHECK(mkdtemp(dir));
    snprintf(bad_utf8, sizeof bad_utf8, "%s/bad.txt", dir), snprintf(missing, sizeof missing, "%s/missing.txt", dir);
    snprintf(file_out, sizeof file_out, "%s/out", dir);
    CHECK_OK(lf_file_write_atomic(bad_utf8, "hello\nw\xC3\x28rld", 12));
    CHECK_OK(lf_file_write_atomic(file_out, "x", 1));
    const char *in_missing[1] = {missing}, *in_bad[1] = {bad_utf8}, *texts[2] = {"fine", "ab\xE2\x82"};
    size_t lens[2] = {4, 4};
    const char *dup[2] = {"<a>", "<a>"};
    lf_tok_train_desc d = {.inputs = in_missing, .n_inputs = 1, .vocab_size = 300};
    CHECK_ERR(lf_tok_train(&d, dir), LF_ERR_IO, "missing.txt");
    d.inputs = in_bad;
    CHECK_ERR(lf_tok_train(&d, dir), LF_ERR_FORMAT, "bad.txt: invalid UTF-8 at byte offset 7");
    lf_tok_train_desc dt = {.texts = texts, .text_lens = lens, .n_texts = 2, .vocab_size = 300};
    CHECK_ERR(lf_tok_train(&dt, dir), LF_ERR_FORMAT, "texts[1]: invalid UTF-8 at byte offset 2");
    dt.n_texts = 1;
    CHECK_ERR(lf_tok_train(&dt, file_out), LF_ERR_IO, "not a directory");
    dt.vocab_size = 258;  // 256 bytes + 3 specials do not fit
    CHECK_ERR(lf_tok_train(&dt, dir), LF_ERR_CONFIG, "vocab_size");
    dt.vocab_size = 0;
    CHECK_ERR(lf_tok_train(&dt, dir), LF_ERR_CONFIG, "vocab_size");
    dt.vocab_size = 300, dt.min_frequency = -1;
    CHECK_ERR(lf_tok_train(&dt, dir), LF_ERR_CONFIG, "min_frequency");
    dt.min_frequency = 0, dt.eos_token = "</s>";
    CHECK_ERR(lf_tok_train(&dt, dir), LF_ERR_CONFIG, "eos_token");
    dt.eos_token = NULL, dt.special_tokens = dup, dt.n_special = 2;
    CHECK_ERR(lf_tok_train(&dt, dir), LF_ERR_CONFIG, "special_tokens[1]");
    dt.special_tokens = NULL, dt.n_special = 0, dt.n_texts = 0;
    CHECK_ERR(lf_tok_train(&dt, dir), LF_ERR_CONFIG, "inputs");
    CHECK(!lf_path_exists(missing));
    remove(bad_utf8), remove(file_out), rmdir(dir);
    return 0;
}

// Every allocation of a small training made to fail in turn gives LF_ERR_NOMEM and leaks nothing.
static lf_status lf_t_train_session(const void *ctx) {
    (void)ctx;
    const char *texts[2] = {"In the beginning God created the heaven and the earth. <|endoftext|> And the earth",
                            "was without form, and void; and darkness was upon the face of the deep."};
    size_t lens[2] = {strlen(texts[0]), strlen(texts[1])};
    lf_tok_train_desc d = {.texts = texts, .text_lens = lens, .n_texts = 2, .vocab_size = 300, .min_frequency = 1};
    char *tj, *cj;
    size_t tl, cl;
    lf_status s = lf_tok_train_json(&d, &tj, &tl, &cj, &cl);
    if (s == LF_OK) lf_free(tj), lf_free(cj);
    return s;
}

static int test_tok_train_allocation_failures(void) { return lf_test_each_allocation_fails(lf_t_train_session, NULL); }


static const lf_test tests_tokenizer[] = {
    {"tokenizer/train_fixture", test_tok_train_fixture},
    {"tokenizer/train_small", test_tok_train_small},
    {"tokenizer/train_bad_inputs", test_tok_train_bad_inputs},
    {"tokenizer/train_allocation_failures", test_tok_train_allocation_failures},
    {"tokenizer/nfc", test_tok_nfc},
    {"tokenizer/regex", test_tok_regex},
    {"tokenizer/bad_inputs", test_tok_bad_inputs},
    {"tokenizer/api", test_tok_api},
    {"tokenizer/corpus_gpt2", test_tok_corpus_gpt2},
    {"tokenizer/corpus_llama2", test_tok_corpus_llama2},
    {"tokenizer/corpus_llama3", test_tok_corpus_llama3},
    {"tokenizer/corpus_mistral", test_tok_corpus_mistral},
    {"tokenizer/corpus_qwen3", test_tok_corpus_qwen3},
    {"tokenizer/chat_plain", test_tok_chat_plain},
    {"tokenizer/chat_qwen3", test_tok_chat_qwen3},
    {"tokenizer/chat_llama3", test_tok_chat_llama3},
    {"tokenizer/chat_llama2", test_tok_chat_llama2},
    {"tokenizer/chat_mistral", test_tok_chat_mistral},
};
