// lf-run — generate text from a model directory: one prompt, or an interactive chat that uses
// the model's chat template when no --prompt is given.
#define LARGEFORGE_IMPLEMENTATION
#include "../largeforge.h"
#include "common.h"


static const char *help =
    "usage: lf-run --model DIR [--prompt TEXT | --prompt-file FILE] [options]\n"
    "\n"
    "With --prompt the text is completed as given (raw; add --chat to wrap it as one user turn\n"
    "in the model's chat template). Without a prompt, an interactive chat starts: one user turn\n"
    "per line on stdin, replies use the chat template; an empty line or EOF ends it.\n"
    "\n"
    "sampling (defaults: the product's, then the model's generation_config.json):\n"
    "  --max-tokens N        256          --temperature T     0.7 (0: greedy)\n"
    "  --top-k K             50 (0: off)  --top-p P           0.9 (1: off)\n"
    "  --min-p P             0 (off)      --repeat-penalty R  1.0 (off)\n"
    "  --seed S              0            --stop STR          stop string (repeatable)\n"
    "  --ignore-eos\n"
    "other options:\n"
    "  --chat                apply the chat template to --prompt\n"
    "  --chat-template NAME  chatml|llama3|llama2|mistral|plain (default: detected)\n"
    "  --system TEXT         system message for chat\n"
    "  --tokenizer P         tokenizer.json or a dir holding it (default: the model dir)\n"
    "  --ctx N               context length (default: min(max_position_embeddings, 4096))\n"
    "  --config FILE         sampling from a config's generation section (configs/generation.yaml)\n"
    "  --generation.KEY V    override one key of it (e.g. --generation.temperature 0)\n"
    "  -t, --threads N       compute threads (default: all cores)\n"
    "  --verbose             print timings to stderr\n"
    "  --help, --version, --quiet\n"
    "exit codes: 0 ok, 2 bad argument, 4 I/O, 5 bad file, 7 bad config, 9 capacity, 12 interrupted, 64 usage\n";

static bool print_piece(void *user, int32_t id, const char *text, size_t len) {
    (void)user, (void)id;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return true;
}

static lf_status generate_text(lf_model *m, lf_kv *kv, const lf_tokenizer *tok, const char *text, bool add_special,
                               const lf_gen_desc *g, lf_gen_result *res) {
    int32_t *ids;
    size_t n;
    lf_status s = lf_tok_encode(tok, text, strlen(text), add_special, &ids, &n);
    if (s != LF_OK) return s;
    s = lf_generate(m, kv, 0, tok, ids, (int)n, g, res);
    lf_free(ids);
    if (lf_drv_verbose && (s == LF_OK || s == LF_ERR_CANCELLED))
        fprintf(stderr, "\n[prompt %d tokens %.1f t/s, generated %d tokens %.1f t/s, finish %s]\n", res->n_prompt,
                res->n_prompt / (res->prompt_s > 0 ? res->prompt_s : 1e-9), res->n_gen,
                res->n_gen / (res->gen_s > 0 ? res->gen_s : 1e-9),
                res->finish == LF_FINISH_STOP ? "stop" : res->finish == LF_FINISH_LENGTH ? "length" : "cancelled");
    return s;
}

int main(int argc, char **argv) {
    lf_drv_name = "lf-run";
    const char *model = NULL, *tok_path = NULL, *prompt = NULL, *prompt_file = NULL, *tmpl_name = NULL, *system = NULL, *v;
    const char *stops[16], *config = NULL, *overrides[32];
    static const char *const sections[] = {"generation", NULL};
    char ovbuf[32][512];
    int n_stop = 0, n_ov = 0;
    bool chat = false, ignore_eos = false;
    long threads = 0, ctx = 0, max_tokens = -1, top_k = -1, seed = -1;
    double temp = -1, top_p = -1, min_p = -1, rep = -1;
    for (int i = 1, ovr; i < argc; i++) {
        long *ln = NULL;
        double *dn = NULL;
        if (lf_drv_common_flag(argv[i], help)) continue;
        if (lf_drv_opt(argc, argv, &i, "--model", &v) || lf_drv_opt(argc, argv, &i, "-m", &v)) model = v;
        else if (lf_drv_opt(argc, argv, &i, "--prompt", &v) || lf_drv_opt(argc, argv, &i, "-p", &v)) prompt = v;
        else if (lf_drv_opt(argc, argv, &i, "--prompt-file", &v)) prompt_file = v;
        else if (lf_drv_opt(argc, argv, &i, "--chat-template", &v)) tmpl_name = v;
        else if (lf_drv_opt(argc, argv, &i, "--system", &v)) system = v;
        else if (lf_drv_opt(argc, argv, &i, "--tokenizer", &v)) tok_path = v;
        else if (lf_drv_opt(argc, argv, &i, "--config", &v)) config = v;
        else if ((ovr = lf_drv_override(argc, argv, &i, sections, ovbuf, &n_ov, 32)) != 0) {
            if (ovr < 0) return LF_EXIT_USAGE;
            overrides[n_ov - 1] = ovbuf[n_ov - 1];
        }
        else if (lf_drv_opt(argc, argv, &i, "--stop", &v)) {
            if (n_stop == 16) return lf_drv_usage_error("at most 16 --stop strings%s", "");
            stops[n_stop++] = v;
        } else if (strcmp(argv[i], "--chat") == 0) chat = true;
        else if (strcmp(argv[i], "--ignore-eos") == 0) ignore_eos = true;
        else if (lf_drv_opt(argc, argv, &i, "--max-tokens", &v) || lf_drv_opt(argc, argv, &i, "-n", &v)) ln = &max_tokens;
        else if (lf_drv_opt(argc, argv, &i, "--top-k", &v)) ln = &top_k;
        else if (lf_drv_opt(argc, argv, &i, "--seed", &v)) ln = &seed;
        else if (lf_drv_opt(argc, argv, &i, "--ctx", &v)) ln = &ctx;
        else if (lf_drv_opt(argc, argv, &i, "--threads", &v) || lf_drv_opt(argc, argv, &i, "-t", &v)) ln = &threads;
        else if (lf_drv_opt(argc, argv, &i, "--temperature", &v) || lf_drv_opt(argc, argv, &i, "--temp", &v)) dn = &temp;
        else if (lf_drv_opt(argc, argv, &i, "--top-p", &v)) dn = &top_p;
        else if (lf_drv_opt(argc, argv, &i, "--min-p", &v)) dn = &min_p;
        else if (lf_drv_opt(argc, argv, &i, "--repeat-penalty", &v)) dn = &rep;
        else if (lf_drv_bad) return lf_drv_usage_error("option %s needs a value", lf_drv_bad);
        else return lf_drv_usage_error("unknown argument '%s'", argv[i]);
        if (ln && !lf_drv_parse_int(v, 0, 1L << 40, ln)) return lf_drv_usage_error("bad number '%s'", v);
        if (dn && (!lf_drv_parse_float(v, dn) || *dn < 0)) return lf_drv_usage_error("bad value '%s'", v);
    }
    if (!model) return lf_drv_usage_error("--model is required%s", "");
    if (prompt && prompt_file) return lf_drv_usage_error("use --prompt or --prompt-file, not both%s", "");

    // sampling: the product's defaults < generation_config.json < --config < the flags below
    lf_gen_desc g = lf_gen_desc_default();
    lf_doc cfg = {0};
    lf_status s = lf_gen_desc_load(&g, model);
    if (s == LF_OK && (config || n_ov)) s = lf_config_load(&cfg, config, overrides, n_ov);
    if (s == LF_OK && (config || n_ov)) s = lf_gen_desc_from_config(&g, &cfg);
    lf_model m = {0};
    lf_tokenizer tok = {0};
    lf_kv kv = {0};
    lf_chat_template tmpl = LF_CHAT_DEFAULT;
    char *file_prompt = NULL;
    if (s == LF_OK && tmpl_name) s = lf_chat_template_from_name(tmpl_name, &tmpl);
    if (s == LF_OK && prompt_file) {
        size_t len;
        s = lf_file_read(prompt_file, 0, &file_prompt, &len);
        prompt = file_prompt;
    }
    lf_model_desc md = {.path = model, .n_threads = (int)threads, .max_seq_len = (int)ctx};
    if (s == LF_OK && (s = lf_tok_open(&tok, tok_path ? tok_path : model)) == LF_ERR_IO && !tok_path)
        s = lf__wrap(s, "no usable tokenizer.json in %s (pass --tokenizer)", model);
    if (s == LF_OK) s = lf_model_open(&m, &md);
    if (s == LF_OK) s = lf_kv_init(&kv, &m, 1, 0);
    if (s != LF_OK) return lf_drv_fail(s);
    // eos: generation_config.json's, else config.json's (lf_generate's default), else the tokenizer's
    if (g.n_eos == 0 && m.cfg.n_eos == 0 && tok.eos_id >= 0) g.eos_ids[g.n_eos++] = tok.eos_id;
    if (max_tokens >= 0) g.max_tokens = (int)max_tokens;
    if (top_k >= 0) g.sampling.top_k = (int)top_k;
    if (seed >= 0) g.sampling.seed = (uint64_t)seed;
    if (temp >= 0) g.sampling.temperature = (float)temp;
    if (top_p >= 0) g.sampling.top_p = (float)top_p;
    if (min_p >= 0) g.sampling.min_p = (float)min_p;
    if (rep >= 0) g.sampling.repetition_penalty = (float)rep;
    if (n_stop) g.stop = stops, g.n_stop = n_stop;
    if (ignore_eos) g.ignore_eos = true;
    g.on_token = print_piece, g.should_stop = lf_drv_should_stop;
    signal(SIGINT, lf_drv_on_sigint);

    if (prompt) {
        char *text = NULL;
        size_t len;
        lf_chat_msg msgs[2] = {{.role = "system", .content = system}, {.role = "user", .content = prompt}};
        if (chat) s = lf_chat_render(&tok, tmpl, system ? msgs : msgs + 1, system ? 2 : 1, true, &text, &len);
        lf_gen_result res;
        // a rendered template already holds its BOS; raw text gets the post-processor's
        if (s == LF_OK) s = generate_text(&m, &kv, &tok, chat ? text : prompt, !chat, &g, &res);
        if (s == LF_OK || s == LF_ERR_CANCELLED) lf_gen_result_deinit(&res), putchar('\n');
        lf_free(text);
    } else {
        // interactive chat: the whole conversation is re-rendered each turn
        lf_chat_msg *msgs = (lf_chat_msg *)calloc(1024, sizeof *msgs);
        int n = 0;
        if (system) msgs[n++] = (lf_chat_msg){.role = "system", .content = system};
        char line[8192];
        while (s == LF_OK && n + 2 < 1024) {
            if (isatty(0)) fputs("> ", stdout), fflush(stdout);
            if (!fgets(line, sizeof line, stdin) || line[0] == '\n') break;
            line[strcspn(line, "\n")] = 0;
            msgs[n++] = (lf_chat_msg){.role = "user", .content = strdup(line)};
            char *text;
            size_t len;
            lf_gen_result res;
            if ((s = lf_chat_render(&tok, tmpl, msgs, n, true, &text, &len)) != LF_OK) break;
            lf_drv_interrupted = 0;
            s = generate_text(&m, &kv, &tok, text, false, &g, &res);
            lf_free(text);
            if (s == LF_ERR_CANCELLED) s = LF_OK;  // Ctrl-C ends the reply, not the chat
            if (s == LF_OK) msgs[n++] = (lf_chat_msg){.role = "assistant", .content = strdup(res.text)}, lf_gen_result_deinit(&res);
            putchar('\n');
        }
        for (int i = 0; i < n; i++)
            if (msgs[i].content != system) free((void *)msgs[i].content);
        free(msgs);
    }
    lf_kv_deinit(&kv);
    lf_model_close(&m);
    lf_tok_close(&tok);
    lf_doc_deinit(&cfg);
    free(file_prompt);
    return s == LF_OK ? 0 : lf_drv_fail(s);
}
