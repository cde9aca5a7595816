// lf-quantize — quantize a model: round-to-nearest (int8, nf4, q8_0, q4_0, q4), GPTQ or AWQ on
// calibration text; writes the quantized model and quantization_report.json (compression,
// perplexity before and after on held-out text, each projection's output error). Or export a
// model or a LoRA adapter as GGUF for llama.cpp.
#define LARGEFORGE_IMPLEMENTATION
#include "../largeforge.h"
#include "common.h"

static const char *help =
    "usage: lf-quantize int8|nf4|q8_0|q4_0|q4|gptq|awq|gguf --model DIR --out DIR [options]\n"
    "\n"
    "  int8, nf4, q8_0, q4_0, q4   round-to-nearest, into LargeForge's quantized layout (run, serve\n"
    "                              and QLoRA training load it)\n"
    "  gptq                        GPTQ, 4-bit groups, into GPTQ's layout (transformers, vLLM)\n"
    "  awq                         AWQ, 4-bit groups with zero points, into AWQ's GEMM layout\n"
    "  gguf                        the model as a GGUF file for llama.cpp (--type), or with --adapter\n"
    "                              the adapter as a llama.cpp LoRA GGUF; --out is then the file\n"
    "\n"
    "options:\n"
    "  --model DIR          the model to quantize (required)\n"
    "  --out DIR            where the quantized model and quantization_report.json go (required)\n"
    "  --bits N             4 (q4, gptq, awq: the only width they have)\n"
    "  --group-size N       q4, gptq, awq: 16, 32, 64, 128 (default), ... or -1 (whole rows; not awq)\n"
    "  --asym               q4, gptq: a zero point per group (default symmetric; awq always has them)\n"
    "  --desc-act, --no-desc-act   gptq: act order (default on)\n"
    "  --damp X             gptq: damp_percent (default 0.01)\n"
    "  --no-true-sequential gptq: collect a layer's inputs in one pass\n"
    "  --no-clip            awq: skip the clipping search\n"
    "  --calibration FILE   text (.txt), or a dataset (.jsonl, .json: its texts, or its messages'\n"
    "                       contents one per line); gptq and awq need it\n"
    "  --samples N          calibration sequences (default 128)\n"
    "  --seq-len N          tokens per sequence (default 512, at most the model's positions)\n"
    "  --eval FILE          held-out text for the perplexities (default: the calibration text's\n"
    "                       last tenth, which calibration then does not use)\n"
    "  --layout L           largeforge, gptq or awq (default: gptq for gptq, awq for awq, else largeforge)\n"
    "  --type T             gguf: f32, f16, bf16, q8_0, q4_0 (default: bf16 for a bf16 model, else f16;\n"
    "                       adapters f32)\n"
    "  --adapter DIR        gguf: a PEFT LoRA adapter of --model to write instead of the model\n"
    "  -t, --threads N      compute threads (default: all cores)\n"
    "  --help, --version, --quiet, --verbose\n"
    "exit codes: see largeforge --help\n";

typedef struct opts {
    const char *mode, *model, *out, *calib, *eval, *layout, *type, *adapter;
    long bits, group, samples, seq_len, threads;
    double damp;
    int asym, desc_act, no_seq, no_clip;
} opts;

// The text of a calibration or evaluation file: plain text as it is; a dataset's records (text,
// or their messages' contents, prompt/completion and chosen) one per line.
static lf_status read_text(const char *path, lf__buf *out) {
    size_t n = strlen(path);
    bool data = (n > 6 && !strcmp(path + n - 6, ".jsonl")) || (n > 5 && !strcmp(path + n - 5, ".json"));
    if (!data) {
        char *text;
        size_t len;
        lf_status s = lf_file_read(path, 0, &text, &len);
        if (s == LF_OK) lf__buf_put(out, text, len);
        lf_free(text);
        return s;
    }
    lf_data_reader r;
    lf_status s = lf_data_open(&r, path, LF_DATA_AUTO, 0);
    const lf_data_record *rec;
    while (s == LF_OK && (s = lf_data_next(&r, &rec)) == LF_OK && rec) {
        if (rec->text) lf__buf_put(out, rec->text, rec->text_len);
        for (int i = 0; i < rec->n_msgs; i++) lf__buf_puts(out, rec->msgs[i].content), lf__buf_putc(out, '\n');
        const lf_data_field *f[3] = {&rec->prompt, &rec->completion, &rec->chosen};
        for (int i = 0; i < 3; i++)
            if (f[i]->text) lf__buf_puts(out, f[i]->text), lf__buf_putc(out, '\n');
        lf__buf_putc(out, '\n');
    }
    lf_data_close(&r);
    return s == LF_OK && out->failed ? LF_ERR_NOMEM : s;
}

static lf_status tokenize_file(const lf_tokenizer *t, const char *path, int32_t **ids, size_t *n) {
    lf__buf b = {0};
    lf_status s = read_text(path, &b);
    if (s == LF_OK) s = lf_tok_encode(t, b.data ? b.data : "", b.len, true, ids, n);
    LF_FREE(b.data);
    return s;
}

static int progress(void *user, int layer, int layers) {
    (void)user;
    if (!lf_drv_quiet) fprintf(stderr, isatty(2) ? "\rquantize: layer %d/%d" : "quantize: layer %d/%d\n", layer, layers);
    if (!lf_drv_quiet && isatty(2) && layer == layers) fputc('\n', stderr);
    return lf_drv_interrupted;
}

static int64_t file_size(const char *dir, const char *name) {
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

// gguf: the model (or --adapter's adapter on it) as one GGUF file at --out.
static lf_status export_gguf(const opts *o) {
    static const char *types[] = {"f32", "f16", "bf16", "q8_0", "q4_0"};
    lf_gguf_desc gd = {0};
    for (int i = 0; o->type && i < 5; i++)
        if (!strcmp(o->type, types[i])) gd.type = (lf_gguf_type)(LF_GGUF_F32 + i);
    if (o->type && !gd.type) return lf__fail(LF_ERR_ARG, "--type: '%s' is not f32, f16, bf16, q8_0 or q4_0", o->type);
    lf_model m;
    lf_model_desc md = {.path = o->model, .n_threads = (int)o->threads, .max_tokens = 1, .max_seq_len = 1};
    lf_status s = lf_model_open(&m, &md);
    if (s != LF_OK) return s;
    if (o->adapter && (s = lf_lora_load(&m, o->adapter)) == LF_OK) s = lf_gguf_write_lora(&m, o->out, &gd);
    else if (!o->adapter) s = lf_gguf_write(&m, o->out, &gd);
    if (s == LF_OK && !lf_drv_quiet)
        fprintf(stderr, "%s: wrote %s (%s%s%s)\n", lf_drv_name, o->out, o->adapter ? o->adapter : o->model,
                o->type ? ", " : "", o->type ? o->type : "");
    lf_model_close(&m);
    return s;
}

static lf_status quantize(const opts *o) {
    static const char *modes[] = {"nf4", "int8", "q8_0", "q4_0", "q4", "gptq", "awq"};
    int mi = 0;
    while (mi < 7 && strcmp(o->mode, modes[mi])) mi++;
    if (mi == 7) return lf__fail(LF_ERR_ARG, "'%s' is not int8, nf4, q8_0, q4_0, q4, gptq or awq", o->mode);
    lf_quant_desc qd = {0};
    qd.method = mi == 5 ? LF_QUANT_GPTQ : mi == 6 ? LF_QUANT_AWQ : LF_QUANT_RTN;
    qd.q.type = mi >= 4 ? LF_QTYPE_Q4 : (lf_qtype)(mi + 1);
    qd.q.blocksize = mi >= 4 ? (int)o->group : 0, qd.q.asym = o->asym;
    qd.gptq.desc_act = o->desc_act, qd.gptq.damp_percent = o->damp;
    qd.no_true_sequential = o->no_seq, qd.no_clip = o->no_clip;
    qd.progress = progress;
    if ((mi >= 4 || mi == 1 || mi == 2) && o->bits != (mi == 1 || mi == 2 ? 8 : 4) && o->bits != 0)
        return lf__fail(LF_ERR_ARG, "--bits %ld: %s is %d-bit", o->bits, o->mode, mi == 1 || mi == 2 ? 8 : 4);
    lf_quant_layout layout = mi == 5 ? LF_QLAYOUT_GPTQ : mi == 6 ? LF_QLAYOUT_AWQ : LF_QLAYOUT_LARGEFORGE;
    if (o->layout) {
        static const char *ln[] = {"largeforge", "gptq", "awq"};
        int k = 0;
        while (k < 3 && strcmp(o->layout, ln[k])) k++;
        if (k == 3) return lf__fail(LF_ERR_ARG, "--layout: '%s' is not largeforge, gptq or awq", o->layout);
        layout = (lf_quant_layout)k;
    }
    if (qd.method != LF_QUANT_RTN && !o->calib) return lf__fail(LF_ERR_ARG, "%s needs --calibration FILE", o->mode);
    uint64_t t0 = lf_time_ns();
    lf_tokenizer t;
    lf_status s = o->calib || o->eval ? lf_tok_open(&t, o->model) : LF_OK;  // text needs the tokenizer
    if (s != LF_OK) return s;
    int32_t *cal = NULL, *ev = NULL;
    size_t ncal = 0, nev = 0;
    if (o->calib) s = tokenize_file(&t, o->calib, &cal, &ncal);
    if (s == LF_OK && o->eval) s = tokenize_file(&t, o->eval, &ev, &nev);
    if (o->calib || o->eval) lf_tok_close(&t);
    const int32_t *eval_ids = ev;
    if (s == LF_OK && !o->eval && cal) {  // hold out the calibration text's last tenth
        nev = ncal / 10, ncal -= nev, eval_ids = cal + ncal;
    }
    lf_model m;
    lf_model_desc md = {.path = o->model, .n_threads = (int)o->threads, .max_tokens = (int)o->seq_len, .max_seq_len = (int)o->seq_len};
    if (s == LF_OK) s = lf_model_open(&m, &md);
    if (s != LF_OK) return lf_free(cal), lf_free(ev), s;
    int ctx = m.max_seq_len;
    // calibration: up to --samples windows of ctx tokens spread evenly over the text
    int ns = 0, *lens = NULL;
    const int32_t **samples = NULL;
    if (ncal >= 2) {
        size_t win = LF__MIN(ncal, (size_t)ctx), fit = ncal / win;
        ns = (int)LF__MIN((size_t)o->samples, fit);
        samples = (const int32_t **)malloc((size_t)ns * sizeof *samples), lens = (int *)malloc((size_t)ns * sizeof *lens);
        for (int i = 0; i < ns; i++) samples[i] = cal + (fit > 1 ? (ncal - win) * (size_t)i / (size_t)(ns > 1 ? ns - 1 : 1) : 0), lens[i] = (int)win;
        qd.samples = samples, qd.sample_len = lens, qd.n_samples = ns;
    }
    double nll0 = NAN, nll1 = NAN;
    long scored = 0;
    size_t bytes0 = lf_model_weight_bytes(&m);
    if (eval_ids && nev >= 2) s = lf_drv_nll(&m, eval_ids, nev, ctx, "perplexity before", &nll0, &scored);
    double *err = (double *)malloc((size_t)m.cfg.L * LF_PROJ_COUNT * sizeof(double));
    uint64_t tq = lf_time_ns();
    if (s == LF_OK) s = lf_quant_model(&m, &qd, err);
    double qsec = (double)(lf_time_ns() - tq) * 1e-9;
    if (s == LF_OK && eval_ids && nev >= 2) s = lf_drv_nll(&m, eval_ids, nev, ctx, "perplexity after", &nll1, &scored);
    if (s == LF_OK) s = lf_quant_save(&m, o->out, layout, &qd);
    int64_t bytes1 = s == LF_OK ? file_size(o->out, "model.safetensors") : -1;
    if (s == LF_OK) {  // the report: printed as a table, written as JSON
        lf__buf j = {0};
        static const char *ln[] = {"largeforge", "gptq", "awq"};
        double sum = 0;
        int nerr = 0;
#define LF__J(...) lf__buf_printf(&j, __VA_ARGS__)
        LF__J("{\n  \"model\": "), lf__buf_json_str(&j, o->model, strlen(o->model)), LF__J(",\n  \"out\": ");
        lf__buf_json_str(&j, o->out, strlen(o->out));
        LF__J(",\n  \"method\": \"%s\",\n  \"layout\": \"%s\",\n",
              qd.method == LF_QUANT_GPTQ ? "gptq" : qd.method == LF_QUANT_AWQ ? "awq" : "rtn", ln[layout]);
        LF__J("  \"quant_type\": \"%s\",\n  \"bits\": %d,\n  \"group_size\": %d,\n  \"sym\": %s,\n  \"desc_act\": %s,\n",
              mi >= 4 ? "q4" : modes[mi], mi == 1 || mi == 2 ? 8 : 4, mi >= 4 ? (int)o->group : mi >= 2 ? 32 : mi == 0 ? 64 : 0,
              mi >= 4 && (o->asym || mi == 6) ? "false" : "true", mi == 5 && o->desc_act ? "true" : "false");
        LF__J("  \"calibration\": {\"file\": ");
        if (o->calib) lf__buf_json_str(&j, o->calib, strlen(o->calib));
        else LF__J("null");
        LF__J(", \"samples\": %d, \"seq_len\": %d, \"tokens\": %lld},\n", ns, ns ? lens[0] : 0, (long long)(ns ? (int64_t)ns * lens[0] : 0));
        LF__J("  \"size\": {\"original_bytes\": %zu, \"quantized_bytes\": %lld, \"compression_ratio\": %.4f},\n", bytes0,
              (long long)bytes1, (double)bytes0 / (double)bytes1);
        if (scored)
            LF__J("  \"perplexity\": {\"eval\": "), lf__buf_json_str(&j, o->eval ? o->eval : "the calibration text's last tenth",
                                                              strlen(o->eval ? o->eval : "the calibration text's last tenth")),
                LF__J(", \"tokens\": %ld, \"ctx\": %d, \"before\": %.6f, \"after\": %.6f, \"change_percent\": %.4f},\n", scored,
                      ctx, exp(nll0), exp(nll1), 100.0 * (exp(nll1) / exp(nll0) - 1.0));
        LF__J("  \"layers\": [\n");
        for (int l = 0; l < m.cfg.L; l++)
            for (int p = 0; p < LF_PROJ_COUNT; p++) {
                double e = err[l * LF_PROJ_COUNT + p];
                if (e == e) sum += e, nerr++;
                LF__J("    {\"layer\": %d, \"proj\": \"%s\", \"rel_output_error\": %s%.6g}%s\n", l, lf_proj_name((lf_proj)p),
                      e == e ? "" : "null", e == e ? e : 0.0, l == m.cfg.L - 1 && p == LF_PROJ_COUNT - 1 ? "" : ",");
            }
        LF__J("  ],\n  \"mean_rel_output_error\": %.6g,\n  \"quantize_seconds\": %.3f,\n  \"seconds\": %.3f\n}\n",
              nerr ? sum / nerr : 0.0, qsec, (double)(lf_time_ns() - t0) * 1e-9);
#undef LF__J
        char *path = lf_path_join(o->out, "quantization_report.json");
        s = !path || j.failed ? LF_ERR_NOMEM : lf_file_write_atomic(path, j.data, j.len);
        lf_free(path);
        LF_FREE(j.data);
        if (s == LF_OK && !lf_drv_quiet) {
            fprintf(stderr, "%s: %s -> %s (%s layout) in %.1f s\n", lf_drv_name, o->model, o->out, ln[layout], qsec);
            fprintf(stderr, "  size        %.2f MiB -> %.2f MiB (%.2fx smaller)\n", (double)bytes0 / 1048576.0,
                    (double)bytes1 / 1048576.0, (double)bytes0 / (double)bytes1);
            if (scored) fprintf(stderr, "  perplexity  %.4f -> %.4f (%+.2f%%) on %ld held-out tokens\n", exp(nll0), exp(nll1),
                                100.0 * (exp(nll1) / exp(nll0) - 1.0), scored);
            if (nerr) fprintf(stderr, "  projections mean relative output error %.3g (per projection: quantization_report.json)\n", sum / nerr);
        }
    }
    free(err), free(samples), free(lens);
    lf_free(cal), lf_free(ev);
    lf_model_close(&m);
    return s;
}

int main(int argc, char **argv) {
    lf_drv_name = "lf-quantize";
    opts o = {.group = 128, .samples = 128, .seq_len = 512, .desc_act = 1, .damp = 0.01};
    const char *v;
    signal(SIGINT, lf_drv_on_sigint);
    for (int i = 1; i < argc; i++) {
        if (lf_drv_common_flag(argv[i], help)) continue;
        if (lf_drv_opt(argc, argv, &i, "--model", &v)) o.model = v;
        else if (lf_drv_opt(argc, argv, &i, "--out", &v)) o.out = v;
        else if (lf_drv_opt(argc, argv, &i, "--calibration", &v)) o.calib = v;
        else if (lf_drv_opt(argc, argv, &i, "--eval", &v)) o.eval = v;
        else if (lf_drv_opt(argc, argv, &i, "--layout", &v)) o.layout = v;
        else if (lf_drv_opt(argc, argv, &i, "--type", &v)) o.type = v;
        else if (lf_drv_opt(argc, argv, &i, "--adapter", &v)) o.adapter = v;
        else if (lf_drv_opt(argc, argv, &i, "--bits", &v)) {
            if (!lf_drv_parse_int(v, 1, 16, &o.bits)) return lf_drv_usage_error("--bits: '%s' is not 1..16", v);
        } else if (lf_drv_opt(argc, argv, &i, "--group-size", &v)) {
            if (!lf_drv_parse_int(v, -1, 1 << 20, &o.group) || o.group == 0) return lf_drv_usage_error("--group-size: '%s' is not -1 or a size", v);
        } else if (lf_drv_opt(argc, argv, &i, "--samples", &v)) {
            if (!lf_drv_parse_int(v, 1, 1 << 20, &o.samples)) return lf_drv_usage_error("--samples: '%s' is not a positive count", v);
        } else if (lf_drv_opt(argc, argv, &i, "--seq-len", &v)) {
            if (!lf_drv_parse_int(v, 2, 1 << 20, &o.seq_len)) return lf_drv_usage_error("--seq-len: '%s' is not 2 or more", v);
        } else if (lf_drv_opt(argc, argv, &i, "--damp", &v)) {
            if (!lf_drv_parse_float(v, &o.damp) || !(o.damp > 0 && o.damp < 1)) return lf_drv_usage_error("--damp: '%s' is not in (0, 1)", v);
        } else if (lf_drv_opt(argc, argv, &i, "--threads", &v) || lf_drv_opt(argc, argv, &i, "-t", &v)) {
            if (!lf_drv_parse_int(v, 1, 1024, &o.threads)) return lf_drv_usage_error("--threads: '%s' is not 1..1024", v);
        } else if (lf_drv_bad) return lf_drv_usage_error("option %s needs a value", lf_drv_bad);
        else if (!strcmp(argv[i], "--asym")) o.asym = 1;
        else if (!strcmp(argv[i], "--desc-act")) o.desc_act = 1;
        else if (!strcmp(argv[i], "--no-desc-act")) o.desc_act = 0;
        else if (!strcmp(argv[i], "--no-true-sequential")) o.no_seq = 1;
        else if (!strcmp(argv[i], "--no-clip")) o.no_clip = 1;
        else if (!o.mode && argv[i][0] != '-') o.mode = argv[i];
        else return lf_drv_usage_error("unknown argument '%s'", argv[i]);
    }
    if (!o.mode) return lf_drv_usage_error("expected int8, nf4, q8_0, q4_0, q4, gptq, awq or gguf%s", "");
    if (!o.model || !o.out) return lf_drv_usage_error("--model and --out are required%s", "");
    if ((o.type || o.adapter) && strcmp(o.mode, "gguf")) return lf_drv_usage_error("--type and --adapter are for gguf%s", "");
    lf_status s = strcmp(o.mode, "gguf") ? quantize(&o) : export_gguf(&o);
    return s == LF_OK ? 0 : lf_drv_fail(s);
}
