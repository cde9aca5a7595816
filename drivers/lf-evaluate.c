// lf-evaluate — logits of one forward pass, perplexity over a text file, exact match of greedy
// answers on a dataset, and a benchmark that measures and prints like llama.cpp's llama-bench
// so the two can be compared by one script.
#define LARGEFORGE_IMPLEMENTATION
#include "../largeforge.h"
#include "common.h"

#include <ctype.h>

static const char *help =
    "usage: lf-evaluate logits     --model DIR --tokens 1,2,3 --out FILE.safetensors\n"
    "       lf-evaluate perplexity --model DIR --input FILE [--ctx N] [--quantize TYPE]\n"
    "       lf-evaluate exact-match --model DIR --data FILE [--adapter DIR] [--template NAME] [--show N]\n"
    "       lf-evaluate benchmark  --model DIR [-p 128] [-n 64] [-t 2] [-r 5] [-o json|jsonl|md] [--quantize TYPE]\n"
    "\n"
    "  logits      writes the f32 tensor `logits` [T, V] of one forward pass over the ids\n"
    "  perplexity  exp(mean negative log-likelihood) over the file's tokens, in independent\n"
    "              windows of --ctx tokens (default 512); prints one JSON object\n"
    "  exact-match for each record of an instruction dataset (Alpaca, messages, ShareGPT,\n"
    "              prompt/completion), the greedy answer to its prompt (rendered with the chat\n"
    "              template; plain: stopped at END) against the record's answer: first line,\n"
    "              trimmed, case-sensitive; prints --show N of them and one JSON summary\n"
    "  benchmark   pp: one prefill of -p tokens; tg: -n tokens decoded one at a time; each\n"
    "              repeated -r times after a warm-up. Output fields as llama-bench's JSON.\n"
    "\n"
    "options:\n"
    "  --adapter DIR     apply a LoRA adapter (PEFT directory) to the model\n"
    "  --quantize TYPE   perplexity, benchmark: the projections quantized in memory first: q8_0, q4_0\n"
    "                    (GGUF's blocks), q4 (4-bit groups of 32, symmetric), int8 (per row), nf4\n"
    "                    (blocks of 64)\n"
    "  --template NAME   exact-match: default (the tokenizer's), chatml, llama3, llama2, mistral, plain\n"
    "  --max-tokens N    exact-match: longest answer (default 32)\n"
    "  -t, --threads N   compute threads (default: all cores)\n"
    "  --help, --version, --quiet, --verbose\n"
    "exit codes: 0 ok, 2 bad argument, 4 I/O, 5 bad input, 7 bad config, 9 capacity, 64 usage\n";

typedef struct opts {
    const char *model, *tokens, *out, *input, *fmt, *adapter, *data, *tmpl, *quant;
    long ctx, n_prompt, n_gen, threads, reps, show, max_tokens;
} opts;

// Opens the model, with the adapter when one is given, quantized when asked (--quantize).
static lf_status open_model(lf_model *m, const lf_model_desc *d, const opts *o) {
    lf_qtype qt = lf_qtype_from_name(o->quant);
    if (o->quant && !qt) return lf__fail(LF_ERR_ARG, "--quantize: '%s' is not q8_0, q4_0, q4, int8 or nf4", o->quant);
    lf_status s = lf_model_open(m, d);
    if (s == LF_OK && o->adapter) s = lf_lora_load(m, o->adapter);
    if (s == LF_OK && qt) s = lf_model_quantize(m, &(lf_qtensor_desc){.type = qt, .blocksize = qt == LF_QTYPE_Q4 ? 32 : 0});
    if (s != LF_OK) lf_model_close(m);
    return s;
}

// The first line of s, without surrounding whitespace, into out.
static void first_line(const char *s, char *out, size_t cap) {
    while (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r') s++;
    size_t n = strcspn(s, "\n");
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\r' || s[n - 1] == '\t')) n--;
    snprintf(out, cap, "%.*s", (int)LF__MIN(n, cap - 1), s);
}

static lf_status eval_exact_match(const opts *o) {
    lf_tokenizer t;
    lf_model m;
    lf_kv kv;
    lf_data_reader r;
    memset(&r, 0, sizeof r);
    lf_chat_template tmpl = LF_CHAT_DEFAULT;
    if (o->tmpl && lf_chat_template_from_name(o->tmpl, &tmpl) != LF_OK)
        return lf__fail(LF_ERR_ARG, "--template: '%s' is not default, chatml, llama3, llama2, mistral or plain", o->tmpl);
    lf_status s = lf_tok_open(&t, o->model);
    if (s != LF_OK) return s;
    lf_model_desc d = {.path = o->model, .n_threads = (int)o->threads};
    if ((s = open_model(&m, &d, o)) != LF_OK) return lf_tok_close(&t), s;
    if ((s = lf_kv_init(&kv, &m, 1, 0)) == LF_OK) s = lf_data_open(&r, o->data, LF_DATA_AUTO, 0);
    lf_gen_desc g = lf_gen_desc_default();
    g.sampling.temperature = 0, g.max_tokens = (int)o->max_tokens;
    const char *plain_stop[] = {"\nEND"};
    bool plain = tmpl == LF_CHAT_PLAIN || (tmpl == LF_CHAT_DEFAULT && t.chat == LF_CHAT_DEFAULT);
    if (plain) g.stop = plain_stop, g.n_stop = 1;
    long correct = 0, total = 0;
    const lf_data_record *rec;
    while (s == LF_OK && (s = lf_data_next(&r, &rec)) == LF_OK && rec) {
        if (rec->n_msgs < 2 || strcmp(rec->msgs[rec->n_msgs - 1].role, "assistant") != 0) {
            s = lf__fail(LF_ERR_FORMAT, "%s:%lld: the record does not end with an answer", o->data, (long long)rec->line);
            break;
        }
        char *prompt = NULL, want[512], got[512];
        size_t plen = 0;
        int32_t *ids = NULL;
        size_t n = 0;
        lf_gen_result res;
        memset(&res, 0, sizeof res);
        s = lf_chat_render(&t, tmpl, rec->msgs, rec->n_msgs - 1, LF_CHAT_GENERATION_PROMPT, &prompt, &plen);
        if (s == LF_OK) s = lf_tok_encode(&t, prompt, plen, plain, &ids, &n);  // templates write their own BOS
        if (s == LF_OK) s = lf_generate(&m, &kv, 0, &t, ids, (int)n, &g, &res);
        if (s == LF_OK) {
            first_line(res.text, got, sizeof got), first_line(rec->msgs[rec->n_msgs - 1].content, want, sizeof want);
            bool ok = strcmp(got, want) == 0;
            correct += ok, total++;
            if (total <= o->show) {  // the answer, the expected one, and the start of the prompt's last paragraph
                const char *q = rec->msgs[rec->n_msgs - 2].content, *para = strstr(q, "\n\n");
                while (para && strstr(para + 2, "\n\n")) para = strstr(para + 2, "\n\n");
                q = para ? para + 2 : q;
                size_t ql = strcspn(q, "\n");
                printf("%s  %-16.24s want %-12s %.*s%s\n", ok ? "ok  " : "MISS", got, want, (int)LF__MIN(ql, 56), q,
                       ql > 56 || q[ql] ? "..." : "");
            }
        }
        lf_gen_result_deinit(&res), lf_free(ids), lf_free(prompt);
    }
    if (s == LF_OK && total == 0) s = lf__fail(LF_ERR_FORMAT, "%s: no records", o->data);
    if (s == LF_OK)
        printf("{\"model\":\"%s\",\"adapter\":%s%s%s,\"data\":\"%s\",\"correct\":%ld,\"total\":%ld,\"exact_match\":%.4f}\n", o->model,
               o->adapter ? "\"" : "", o->adapter ? o->adapter : "null", o->adapter ? "\"" : "", o->data, correct, total,
               (double)correct / (double)total);
    lf_data_close(&r), lf_kv_deinit(&kv), lf_model_close(&m), lf_tok_close(&t);
    return s;
}

static lf_status eval_logits(const opts *o) {
    // parse "1,2,3"
    int32_t *ids = NULL;
    int n = 0, cap = 0;
    for (const char *p = o->tokens; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > INT32_MAX || (*end && *end != ','))
            return lf__fail(LF_ERR_ARG, "--tokens: expected comma-separated ids, bad at '%s'", p);
        if (n == cap) ids = (int32_t *)realloc(ids, (size_t)(cap = cap ? 2 * cap : 64) * sizeof *ids);
        ids[n++] = (int32_t)v;
        p = *end ? end + 1 : end;
    }
    if (n == 0) return lf__fail(LF_ERR_ARG, "--tokens: no ids");
    lf_model m;
    lf_model_desc d = {.path = o->model, .n_threads = (int)o->threads, .max_tokens = n, .max_seq_len = n};
    lf_status s = open_model(&m, &d, o);
    if (s != LF_OK) return free(ids), s;
    lf_kv kv;
    float *logits = NULL;
    int8_t *want = (int8_t *)malloc((size_t)n);
    memset(want, 1, (size_t)n);
    if ((s = lf_kv_init(&kv, &m, 1, n)) == LF_OK) {
        logits = (float *)malloc((size_t)n * (size_t)m.cfg.V * sizeof(float));
        lf_batch b = {n, ids, NULL, NULL, want, NULL};
        s = lf_model_forward(&m, &kv, &b, logits);
        if (s == LF_OK) {
            lf_st_entry e = {"logits", LF_DTYPE_F32, 2, {n, m.cfg.V}, logits};
            s = lf_st_write(o->out, &e, 1, NULL, 0);
        }
        lf_kv_deinit(&kv);
    }
    free(logits), free(want), free(ids);
    lf_model_close(&m);
    return s;
}

static lf_status eval_perplexity(const opts *o) {
    lf_tokenizer t;
    lf_status s = lf_tok_open(&t, o->model);
    if (s != LF_OK) return s;
    char *text;
    size_t len;
    int32_t *ids = NULL;
    size_t n = 0;
    if ((s = lf_file_read(o->input, 0, &text, &len)) == LF_OK) {
        s = lf_tok_encode(&t, text, len, true, &ids, &n);
        lf_free(text);
    }
    lf_tok_close(&t);
    if (s != LF_OK) return s;
    int ctx = (int)o->ctx;
    lf_model m;
    lf_model_desc d = {.path = o->model, .n_threads = (int)o->threads, .max_tokens = ctx, .max_seq_len = ctx};
    if ((s = open_model(&m, &d, o)) != LF_OK) return lf_free(ids), s;
    double nll = 0;
    long scored = 0;
    uint64_t t0 = lf_time_ns();
    s = lf_drv_nll(&m, ids, n, ctx, "perplexity", &nll, &scored);
    if (s == LF_OK && scored == 0) s = lf__fail(LF_ERR_ARG, "%s: fewer than 2 tokens, nothing to score", o->input);
    if (s == LF_OK)
        printf("{\"model\":\"%s\",\"input\":\"%s\",\"n_tokens\":%zu,\"n_scored\":%ld,\"ctx\":%d,\"nll\":%.6f,"
               "\"perplexity\":%.6f,\"seconds\":%.3f}\n",
               o->model, o->input, n, scored, ctx, nll, exp(nll), (double)(lf_time_ns() - t0) * 1e-9);
    lf_free(ids);
    lf_model_close(&m);
    return s;
}

// -- benchmark: the same measurement as llama-bench (a warm-up run, then -r timed runs; pp is
// one batch of n_prompt tokens, tg is n_gen single-token steps, both from an empty cache).

static double stats(const double *x, int n, double *sd) {
    double mean = 0, var = 0;
    for (int i = 0; i < n; i++) mean += x[i];
    mean /= n;
    for (int i = 0; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    *sd = n > 1 ? sqrt(var / (n - 1)) : 0;
    return mean;
}

static lf_status bench_run(lf_model *m, lf_kv *kv, int n_prompt, int n_gen, float *logits, lf_rng *rng, double *sec) {
    int V = m->cfg.V;
    int32_t ids[1];
    lf_kv_seq_truncate(kv, 0, 0);
    uint64_t t0 = lf_time_ns();
    if (n_prompt > 0) {
        int32_t *toks = (int32_t *)malloc((size_t)n_prompt * sizeof *toks);
        for (int i = 0; i < n_prompt; i++) toks[i] = (int32_t)(lf_rng_u64(rng) % (uint64_t)V);
        lf_batch b = {n_prompt, toks, NULL, NULL, NULL, NULL};
        lf_status s = lf_model_forward(m, kv, &b, logits);
        free(toks);
        if (s != LF_OK) return s;
    }
    for (int i = 0; i < n_gen; i++) {
        ids[0] = (int32_t)(lf_rng_u64(rng) % (uint64_t)V);
        int32_t pos = i;
        lf_batch b = {1, ids, &pos, NULL, NULL, NULL};
        lf_status s = lf_model_forward(m, kv, &b, logits);
        if (s != LF_OK) return s;
    }
    *sec = (double)(lf_time_ns() - t0) * 1e-9;
    return LF_OK;
}

// The CPU's name as /proc/cpuinfo gives it (llama-bench's cpu_info), "unknown" elsewhere.
static void cpu_name(char *out, size_t cap) {
    snprintf(out, cap, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        char *c = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && c) {
            c += 1 + (c[1] == ' ');
            c[strcspn(c, "\n")] = 0;
            for (char *q = c; *q; q++)
                if (*q == '"' || *q == '\\') *q = ' ';
            snprintf(out, cap, "%s", c);
            break;
        }
    }
    if (f) fclose(f);
}

static lf_status eval_benchmark(const opts *o) {
    int np = (int)o->n_prompt, ng = (int)o->n_gen, reps = (int)o->reps;
    lf_model m;
    uint64_t tl = lf_time_ns();
    lf_model_desc d = {.path = o->model, .n_threads = (int)o->threads, .max_tokens = LF__MAX(np, 1),
                       .max_seq_len = LF__MAX(np, ng) + 1};
    lf_status s = open_model(&m, &d, o);
    if (s != LF_OK) return s;
    double load_s = (double)(lf_time_ns() - tl) * 1e-9;
    lf_kv kv;
    if ((s = lf_kv_init(&kv, &m, 1, 0)) != LF_OK) return lf_model_close(&m), s;
    float *logits = (float *)malloc((size_t)m.cfg.V * sizeof(float));
    lf_rng rng;
    lf_rng_seed(&rng, 1234);
    char dtb[16];  // as llama-bench names types: F32, Q8_0, Q4_0 (NF4, INT8: ours)
    snprintf(dtb, sizeof dtb, "%s", lf_dtype_name(m.layers[0].w[LF_PROJ_Q].dtype));
    if (m.layers[0].q[LF_PROJ_Q])
        for (int i = 0; i < (int)sizeof dtb && (dtb[i] = (char)toupper((unsigned char)lf_qtype_name(m.layers[0].q[LF_PROJ_Q]->type)[i])); i++) {}
    const char *dt = dtb;
    int tests[2][2] = {{np, 0}, {0, ng}};
    bool json = strcmp(o->fmt, "json") == 0, md = strcmp(o->fmt, "md") == 0;
    if (json) puts("[");
    if (md) puts("| model | size | params | threads | test | t/s |\n| --- | ---: | ---: | ---: | ---: | ---: |");
    int printed = 0;
    for (int k = 0; k < 2 && s == LF_OK; k++) {
        int p = tests[k][0], g = tests[k][1];
        if (p == 0 && g == 0) continue;
        double sec[64], ts[64], sd_ts, sd_ns, ns[64];
        s = bench_run(&m, &kv, p, g, logits, &rng, &sec[0]);  // warm-up
        for (int r = 0; r < reps && s == LF_OK; r++) {
            s = bench_run(&m, &kv, p, g, logits, &rng, &sec[r]);
            ts[r] = (p + g) / sec[r], ns[r] = sec[r] * 1e9;
        }
        if (s != LF_OK) break;
        double avg_ts = stats(ts, reps, &sd_ts), avg_ns = stats(ns, reps, &sd_ns);
        if (md) {
            printf("| %s %s | %.2f MiB | %.2f M | %ld | %s%d | %.2f ± %.2f |\n", m.cfg.arch == LF_ARCH_QWEN2 ? "qwen2" : "llama",
                   dt, (double)lf_model_weight_bytes(&m) / 1048576.0, (double)lf_model_n_params(&m) / 1e6, o->threads,
                   p ? "pp" : "tg", p ? p : g, avg_ts, sd_ts);
            continue;
        }
        char cpu[256], when[32];
        cpu_name(cpu, sizeof cpu);
        time_t now = time(NULL);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
        printf("%s{\"build_commit\":\"largeforge-" LF_VERSION_STRING "\",\"build_number\":0,\"cpu_info\":\"%s\",\"backends\":\"CPU\","
               "\"model_filename\":\"%s\",\"model_type\":\"%s %s\",\"model_size\":%zu,\"model_n_params\":%lld,"
               "\"n_batch\":%d,\"n_ubatch\":%d,\"n_threads\":%ld,\"type_k\":\"f32\",\"type_v\":\"f32\","
               "\"n_prompt\":%d,\"n_gen\":%d,\"n_depth\":0,\"test_time\":\"%s\",\"load_s\":%.3f,\"avg_ns\":%.0f,"
               "\"stddev_ns\":%.0f,\"avg_ts\":%.6f,\"stddev_ts\":%.6f,\"samples_ns\":[",
               json && printed ? ",\n" : "", cpu, o->model, m.cfg.arch == LF_ARCH_QWEN2 ? "qwen2" : "llama", dt,
               lf_model_weight_bytes(&m), (long long)lf_model_n_params(&m), m.max_tokens, m.max_tokens,
               (long)lf_pool_size(m.pool), p, g, when, load_s, avg_ns, sd_ns, avg_ts, sd_ts);
        for (int r = 0; r < reps; r++) printf(r ? ",%.0f" : "%.0f", ns[r]);
        printf("],\"samples_ts\":[");
        for (int r = 0; r < reps; r++) printf(r ? ",%.6f" : "%.6f", ts[r]);
        printf("]}%s", json ? "" : "\n");
        printed++;
    }
    if (json) puts("\n]");
    free(logits);
    lf_kv_deinit(&kv);
    lf_model_close(&m);
    return s;
}

int main(int argc, char **argv) {
    lf_drv_name = "lf-evaluate";
    // defaults
    opts o = {.ctx = 512, .n_prompt = 128, .n_gen = 64, .threads = 0, .reps = 5, .fmt = "json", .max_tokens = 32};
    const char *mode = NULL, *v;
    for (int i = 1; i < argc; i++) {
        long *num = NULL;
        if (lf_drv_common_flag(argv[i], help)) continue;
        if (lf_drv_opt(argc, argv, &i, "--model", &v) || lf_drv_opt(argc, argv, &i, "-m", &v)) o.model = v;
        else if (lf_drv_opt(argc, argv, &i, "--tokens", &v)) o.tokens = v;
        else if (lf_drv_opt(argc, argv, &i, "--out", &v)) o.out = v;
        else if (lf_drv_opt(argc, argv, &i, "--input", &v)) o.input = v;
        else if (lf_drv_opt(argc, argv, &i, "--adapter", &v)) o.adapter = v;
        else if (lf_drv_opt(argc, argv, &i, "--data", &v)) o.data = v;
        else if (lf_drv_opt(argc, argv, &i, "--template", &v)) o.tmpl = v;
        else if (lf_drv_opt(argc, argv, &i, "--quantize", &v)) o.quant = v;
        else if (lf_drv_opt(argc, argv, &i, "--show", &v)) num = &o.show;
        else if (lf_drv_opt(argc, argv, &i, "--max-tokens", &v)) num = &o.max_tokens;
        else if (lf_drv_opt(argc, argv, &i, "-o", &v) || lf_drv_opt(argc, argv, &i, "--output", &v)) o.fmt = v;
        else if (lf_drv_opt(argc, argv, &i, "--ctx", &v)) num = &o.ctx;
        else if (lf_drv_opt(argc, argv, &i, "-p", &v) || lf_drv_opt(argc, argv, &i, "--n-prompt", &v)) num = &o.n_prompt;
        else if (lf_drv_opt(argc, argv, &i, "-n", &v) || lf_drv_opt(argc, argv, &i, "--n-gen", &v)) num = &o.n_gen;
        else if (lf_drv_opt(argc, argv, &i, "-t", &v) || lf_drv_opt(argc, argv, &i, "--threads", &v)) num = &o.threads;
        else if (lf_drv_opt(argc, argv, &i, "-r", &v) || lf_drv_opt(argc, argv, &i, "--repetitions", &v)) num = &o.reps;
        else if (lf_drv_bad) return lf_drv_usage_error("option %s needs a value", lf_drv_bad);
        else if (!mode && argv[i][0] != '-') mode = argv[i];
        else return lf_drv_usage_error("unknown argument '%s'", argv[i]);
        if (num && !lf_drv_parse_int(v, 0, 1 << 20, num)) return lf_drv_usage_error("bad number '%s'", v);
    }
    if (!mode) return lf_drv_usage_error("expected logits, perplexity, exact-match or benchmark%s", "");
    if (!o.model) return lf_drv_usage_error("--model is required%s", "");
    lf_status s;
    if (strcmp(mode, "logits") == 0) {
        if (!o.tokens || !o.out) return lf_drv_usage_error("logits needs --tokens and --out%s", "");
        s = eval_logits(&o);
    } else if (strcmp(mode, "perplexity") == 0) {
        if (!o.input) return lf_drv_usage_error("perplexity needs --input%s", "");
        if (o.ctx < 2) return lf_drv_usage_error("--ctx must be at least 2%s", "");
        s = eval_perplexity(&o);
    } else if (strcmp(mode, "exact-match") == 0) {
        if (!o.data) return lf_drv_usage_error("exact-match needs --data%s", "");
        if (o.max_tokens < 1) return lf_drv_usage_error("--max-tokens must be at least 1%s", "");
        s = eval_exact_match(&o);
    } else if (strcmp(mode, "benchmark") == 0) {
        if (o.reps < 1 || o.reps > 64) return lf_drv_usage_error("-r must be in 1..64%s", "");
        if (strcmp(o.fmt, "json") && strcmp(o.fmt, "jsonl") && strcmp(o.fmt, "md"))
            return lf_drv_usage_error("-o must be json, jsonl or md, not '%s'", o.fmt);
        s = eval_benchmark(&o);
    } else
        return lf_drv_usage_error("unknown mode '%s'", mode);
    return s == LF_OK ? 0 : lf_drv_fail(s);
}
