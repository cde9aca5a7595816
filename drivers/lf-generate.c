// lf-generate — data from a teacher model: `data` writes one answer per prompt as Alpaca or
// messages records, `preferences` writes DPO pairs (SRS 3.1.1; prompts that fail are reported
// and skipped, the answers quality-filtered and near-duplicates removed, see ON SYNTHETIC DATA in
// largeforge.h; SIGINT stops the run and writes what was kept so far), and `logits` writes the
// teacher's top-k log-probs over a distillation dataset for offline distillation.
#define LARGEFORGE_IMPLEMENTATION
#include "../largeforge.h"
#include "common.h"

#include <unistd.h>

static const char *help =
    "usage: lf-generate data|preferences [--config FILE] [options] [--SECTION.KEY VALUE...]\n"
    "       lf-generate logits --config DISTILL.yaml [--output FILE] [--SECTION.KEY VALUE...]\n"
    "\n"
    "  data         one answer per prompt: Alpaca ({instruction, input, output}) or messages records\n"
    "  preferences  num_responses answers per prompt at temperatures spread over temperature_range;\n"
    "               chosen/rejected by the teacher's length-normalized log-probability, or by a\n"
    "               verifier (exact, regex, command) against the prompts' reference answers; DPO records\n"
    "  logits       the distill config's teacher run once over its data (the student's tokenization):\n"
    "               its top_k log-probs at every token, into a targets file (default distill.logits_file)\n"
    "               that `largeforge train distill` then reads instead of loading the teacher\n"
    "\n"
    "A base model (a tokenizer without chat_template, or model.base: true) is prompted few-shot in\n"
    "the plain format with 3-4 random demonstrations; an instruct model gets its chat template.\n"
    "The config (configs/synth.yaml) has the sections model, generation and synth; every key can be\n"
    "overridden: --generation.temperature 0.9, --synth.dedup.threshold 0.9. Unknown keys are errors.\n"
    "\n"
    "options (each overrides the config):\n"
    "  --config FILE           the run's config\n"
    "  --model DIR             the teacher, a HuggingFace model directory (model.name)\n"
    "  --prompts FILE          .txt: one prompt per line; .jsonl/.json: instruction [+ input] or prompt,\n"
    "                          and reference (or output) as the reference answer (synth.prompts)\n"
    "  --output FILE           where the records go (synth.output)\n"
    "  --demonstrations FILE   Alpaca records the base-model examples are drawn from\n"
    "  --format NAME           alpaca|messages (data), dpo|dpo_messages (preferences)\n"
    "  --json                  one JSON array instead of JSON Lines\n"
    "  --batch-size N          prompts decoded together (default 8)\n"
    "  --seed S                the run's seed (generation.seed)\n"
    "  -t, --threads N         compute threads (default: all cores)\n"
    "  --help, --version, --quiet, --verbose\n"
    "exit codes: 0 done (failed, filtered and duplicate prompts are reported, not errors); 2 bad argument,\n"
    "  4 I/O, 5 bad file, 7 bad config, 12 interrupted (what was kept so far is written), 64 usage\n";


static bool tty;
static uint64_t t_start;
static void progress(void *user, int done, int total) {
    (void)user;
    if (lf_drv_quiet) return;
    double el = (double)(lf_time_ns() - t_start) * 1e-9, eta = done ? el / done * (total - done) : 0;
    if (tty) {
        int w = 30, bar = total ? (int)((long)w * done / total) : w;
        fprintf(stderr, "\r[%.*s%.*s] %d/%d %.1f/s eta %dm%02ds ", bar, "##############################", w - bar,
                "..............................", done, total, el > 0 ? done / el : 0.0, (int)(eta / 60), (int)eta % 60);
        if (done == total) fputc('\n', stderr);
    } else if (done == total || done % LF__MAX(1, total / 10) == 0)
        fprintf(stderr, "%d/%d generated (%.1f s)\n", done, total, el);
}

static void report(const lf_synth_result *r, const char *out, bool cancelled) {
    const lf_synth_summary *u = &r->sum;
    if (lf_drv_quiet) return;
    int unfinished = 0;
    for (int i = 0; i < r->n; i++) {  // --verbose: the library logged each failure already
        const lf_synth_record *e = &r->recs[i];
        unfinished += e->verdict == LF_SYNTH_FAILED && e->status == LF_ERR_CANCELLED;
        if (e->verdict == LF_SYNTH_FAILED && e->status != LF_ERR_CANCELLED && !lf_drv_verbose)
            fprintf(stderr, "%s: prompt %d failed: %s\n", lf_drv_name, e->index, e->error);
    }
    fprintf(stderr, "%s: %d prompts (%s): %d kept, %d failed", lf_drv_name, u->prompts, r->fewshot ? "few-shot, base model" : "chat template",
            u->kept, u->failed);
    if (unfinished) fprintf(stderr, " (%d not finished)", unfinished);
    fprintf(stderr, ", %d filtered (", u->filtered);
    for (int q = 1, first = 1; q < 6; q++)
        if (u->filtered_by[q]) fprintf(stderr, "%s%s %d", first ? "" : ", ", lf_quality_name((lf_quality)q), u->filtered_by[q]), first = 0;
    fprintf(stderr, "), %d near-duplicates", u->duplicates);
    if (r->preferences) fprintf(stderr, ", %d without a pair, %d extra pairs", u->no_pair, u->extra_pairs);
    if (u->verify_timeouts) fprintf(stderr, ", %d verifier timeouts", u->verify_timeouts);
    if (u->fewer_shots) fprintf(stderr, ", %d prompts with fewer demonstrations (context)", u->fewer_shots);
    fprintf(stderr, "; %lld tokens in %.1f s (%.0f tokens/s)\n%s: %s %s\n", (long long)u->generated_tokens, u->seconds,
            u->seconds > 0 ? (double)u->generated_tokens / u->seconds : 0.0, lf_drv_name,
            cancelled ? "interrupted; the records kept so far are in" : "wrote", out);
}

// logits: the teacher's targets file for a distillation config's dataset.
static void logits_progress(void *user, int64_t done, int64_t total) {
    (void)user;
    if (tty && !lf_drv_quiet && (done == total || done % 16 == 0)) fprintf(stderr, "\r%lld/%lld samples ", (long long)done, (long long)total);
}

static lf_status generate_logits(const char *config, const char *const *overrides, int n_ov, const char *out, long threads) {
    lf_doc doc;
    lf_train_config tc;
    lf_data_config dc;
    lf_kd_config kc;
    lf_tokenizer tok = {0};
    lf_model te = {0};
    lf_kv kv = {0};
    lf_dataset ds = {0};
    static const char *top[] = {"model", "training", "lora", "quantization", "data", "distill"};
    lf_status s = lf_config_load(&doc, config, overrides, n_ov);
    if (s != LF_OK) return s;
    if ((s = lf_cfg_keys(&doc, doc.root, NULL, top, 6)) == LF_OK && (s = lf_train_config_read(&tc, &doc)) == LF_OK &&
        (s = lf_data_config_read(&dc, &doc)) == LF_OK)
        s = lf_kd_config_read(&kc, &doc);
    if (s == LF_OK && !kc.teacher) s = lf__fail(LF_ERR_CONFIG, "%s: distill.teacher: required to make its logits", doc.name);
    if (s == LF_OK && !(out = out ? out : kc.logits_file))
        s = lf__fail(LF_ERR_CONFIG, "%s: where to write: --output FILE or distill.logits_file", doc.name);
    char cache[1100];
    lf_dataset_desc dd = {0};
    if (s == LF_OK) s = lf_drv_same_tokenizer(kc.teacher, tc.model);
    if (s == LF_OK) s = lf_drv_cache_dir(&dc, cache, sizeof cache);
    if (s == LF_OK) s = lf_tok_open(&tok, tc.model);
    if (s == LF_OK) {  // the student's dataset, as train distill opens it
        dd.path = dc.train_file, dd.format = dc.format, dd.tok = &tok, dd.chat = dc.chat, dd.max_length = dc.max_length;
        dd.cache_dir = cache, dd.tokenizer_path = tc.model;
        s = lf_dataset_open(&ds, &dd);
    }
    // the teacher as train distill runs it: chunks of max_length, so the numbers are the same
    lf_model_desc md = {.path = kc.teacher, .n_threads = threads >= 0 ? (int)threads : tc.threads, .max_tokens = dc.max_length,
                        .max_seq_len = dc.max_length};
    if (s == LF_OK) s = lf_model_open(&te, &md);
    if (s == LF_OK && kc.teacher_quant_bits) s = lf_model_quantize(&te, &(lf_qtensor_desc){.type = kc.teacher_quant_bits == 4 ? LF_QTYPE_NF4 : LF_QTYPE_INT8, .double_quant = true});
    if (s == LF_OK) s = lf_kv_init(&kv, &te, 1, dc.max_length);
    int k = kc.top_k ? LF__MIN(kc.top_k, te.cfg.V) : te.cfg.V;
    if (s == LF_OK && !lf_drv_quiet)
        fprintf(stderr, "%s: the top %d of %s over %lld samples (%lld tokens) of %s\n", lf_drv_name, k, kc.teacher, (long long)ds.n,
                (long long)ds.offsets[ds.n], dc.train_file);
    if (s == LF_OK) s = lf_kd_targets_write(out, &ds, &te, &kv, k, kc.teacher, logits_progress, NULL);
    if (s == LF_OK && !lf_drv_quiet) fprintf(stderr, "%s%s: wrote %s\n", tty ? "\n" : "", lf_drv_name, out);
    lf_kv_deinit(&kv), lf_model_close(&te), lf_dataset_close(&ds), lf_tok_close(&tok), lf_doc_deinit(&doc);
    return s;
}

int main(int argc, char **argv) {
    lf_drv_name = "lf-generate";
    static const char *const sections[] = {"model", "generation", "synth", "training", "lora", "quantization", "data", "distill", NULL};
    const char *mode = NULL, *config = NULL, *model = NULL, *prompts = NULL, *output = NULL, *demos = NULL, *fmt = NULL, *v;
    const char *overrides[64];
    char ovbuf[64][512];
    int n_ov = 0;
    bool json = false;
    long threads = -1, batch = -1, seed = -1;
    for (int i = 1, ovr; i < argc; i++) {
        long *ln = NULL;
        if (lf_drv_common_flag(argv[i], help)) continue;
        if (lf_drv_opt(argc, argv, &i, "--config", &v)) config = v;
        else if (lf_drv_opt(argc, argv, &i, "--model", &v) || lf_drv_opt(argc, argv, &i, "-m", &v)) model = v;
        else if (lf_drv_opt(argc, argv, &i, "--prompts", &v)) prompts = v;
        else if (lf_drv_opt(argc, argv, &i, "--output", &v) || lf_drv_opt(argc, argv, &i, "-o", &v)) output = v;
        else if (lf_drv_opt(argc, argv, &i, "--demonstrations", &v)) demos = v;
        else if (lf_drv_opt(argc, argv, &i, "--format", &v)) fmt = v;
        else if (strcmp(argv[i], "--json") == 0) json = true;
        else if (lf_drv_opt(argc, argv, &i, "--batch-size", &v)) ln = &batch;
        else if (lf_drv_opt(argc, argv, &i, "--seed", &v)) ln = &seed;
        else if (lf_drv_opt(argc, argv, &i, "--threads", &v) || lf_drv_opt(argc, argv, &i, "-t", &v)) ln = &threads;
        else if ((ovr = lf_drv_override(argc, argv, &i, sections, ovbuf, &n_ov, 64)) != 0) {
            if (ovr < 0) return LF_EXIT_USAGE;
            overrides[n_ov - 1] = ovbuf[n_ov - 1];
        } else if (lf_drv_bad) return lf_drv_usage_error("option %s needs a value", lf_drv_bad);
        else if (!mode && argv[i][0] != '-') mode = argv[i];
        else return lf_drv_usage_error("unknown argument '%s'", argv[i]);
        if (ln && !lf_drv_parse_int(v, ln == &batch ? 1 : 0, ln == &seed ? (1L << 53) : 4096, ln))
            return lf_drv_usage_error("bad number '%s'", v);
    }
    if (mode && strcmp(mode, "logits") == 0) {
        tty = isatty(2);
        if (!config) return lf_drv_usage_error("logits reads a distillation config: --config FILE%s", "");
        lf_status s = generate_logits(config, overrides, n_ov, output, threads);
        return s == LF_OK ? 0 : lf_drv_fail(s);
    }
    if (!mode || (strcmp(mode, "data") && strcmp(mode, "preferences")))
        return lf_drv_usage_error("expected data, preferences or logits%s", "");
    bool prefs = strcmp(mode, "preferences") == 0;
    tty = isatty(2);

    // the product's defaults < generation_config.json < the config < the flags
    lf_doc doc;
    lf_synth_config c;
    static const char *top[] = {"model", "generation", "synth"};
    lf_status s = lf_config_load(&doc, config, overrides, n_ov);
    if (s == LF_OK) s = lf_cfg_keys(&doc, doc.root, NULL, top, 3);
    if (s == LF_OK) s = lf_synth_config_read(&c, &doc);
    if (s != LF_OK) return lf_drv_fail(s);
    if (model) c.model = model;
    if (prompts) c.prompts = prompts;
    if (output) c.output = output;
    if (demos) c.demonstrations = demos;
    if (json) c.json = true;
    if (batch > 0) c.desc.batch_size = (int)batch;
    if (threads >= 0) c.threads = (int)threads;
    if (fmt && (s = lf_synth_format_from_name(fmt, &c.format)) != LF_OK) return lf_drv_fail(s);
    if (c.format != LF_SYNTH_FORMAT_DEFAULT && (c.format == LF_SYNTH_DPO || c.format == LF_SYNTH_DPO_MESSAGES) != prefs)
        return lf_drv_fail(lf__fail(LF_ERR_ARG, "format %s does not hold %s (%s)", fmt ? fmt : "(synth.format)",
                                    prefs ? "preference pairs" : "instruction data", prefs ? "dpo, dpo_messages" : "alpaca, messages"));
    if (!c.model) return lf_drv_usage_error("a teacher is required: --model DIR or model.name%s", "");
    if (!c.prompts) return lf_drv_usage_error("prompts are required: --prompts FILE or synth.prompts%s", "");
    if (!c.output) return lf_drv_usage_error("an output file is required: --output FILE or synth.output%s", "");
    lf_gen_desc g = lf_gen_desc_default();
    lf_tokenizer tok = {0};
    lf_model m = {0};
    lf_synth_prompts ps = {0}, ds = {0};
    lf_synth_result r = {0};
    lf_model_desc md = {.path = c.model, .n_threads = c.threads};
    if ((s = lf_gen_desc_load(&g, c.model)) == LF_OK && (s = lf_gen_desc_from_config(&g, &doc)) == LF_OK && seed >= 0)
        g.sampling.seed = (uint64_t)seed;
    if (s == LF_OK) s = lf_synth_load(&ps, c.prompts);  // the files first: a typo fails before the model loads
    if (s == LF_OK && c.demonstrations) s = lf_synth_load(&ds, c.demonstrations);
    if (s == LF_OK && (s = lf_tok_open(&tok, c.model)) == LF_ERR_IO) s = lf__wrap(s, "no usable tokenizer.json in %s", c.model);
    if (s == LF_OK) s = lf_model_open(&m, &md);
    if (s == LF_OK) {
        lf_synth_desc *d = &c.desc;
        d->model = &m, d->tok = &tok, d->gen = &g, d->demos = ds.items, d->n_demos = ds.n;
        d->progress = progress, d->should_stop = lf_drv_should_stop;
        signal(SIGINT, lf_drv_on_sigint);
        if (!lf_drv_quiet) fprintf(stderr, "%s: %d prompts from %s, teacher %s\n", lf_drv_name, ps.n, c.prompts, c.model);
        t_start = lf_time_ns();
        s = prefs ? lf_synth_preferences(d, ps.items, ps.n, &r) : lf_synth_generate(d, ps.items, ps.n, &r);
    }
    lf_status w = LF_OK;
    if (s == LF_OK || s == LF_ERR_CANCELLED) {  // the output's folder may not exist yet (build/synth/)
        char dir[1024];
        snprintf(dir, sizeof dir, "%s", c.output);
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir) *slash = 0, w = lf_dir_make(dir);
        if (w == LF_OK) w = lf_synth_write(&r, c.format, c.json, c.output);
    }
    if (w == LF_OK && (s == LF_OK || s == LF_ERR_CANCELLED)) report(&r, c.output, s == LF_ERR_CANCELLED);
    if (s == LF_OK || s == LF_ERR_CANCELLED) s = w == LF_OK ? s : w;
    lf_synth_result_deinit(&r);
    lf_synth_prompts_deinit(&ps), lf_synth_prompts_deinit(&ds);
    lf_model_close(&m), lf_tok_close(&tok), lf_doc_deinit(&doc);
    return s == LF_OK ? 0 : s == LF_ERR_CANCELLED ? lf_drv_exit_code(s) : lf_drv_fail(s);
}
