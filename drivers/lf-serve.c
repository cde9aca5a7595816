// lf-serve — the OpenAI-compatible inference server (section 15 of the header). The router is
// the next issue's; `serve router` says so.
#define LARGEFORGE_IMPLEMENTATION
#include "../largeforge.h"
#include "common.h"

static const char *help =
    "usage: lf-serve inference (--model DIR | --config FILE) [options]\n"
    "\n"
    "Serves a model over HTTP with OpenAI's API: POST /v1/completions, POST /v1/chat/completions\n"
    "(stream: true for server-sent events), GET /v1/models, GET /health, GET /metrics (Prometheus),\n"
    "GET/POST /admin/model (swap in a model named in server.models). Prints 'listening on\n"
    "http://HOST:PORT' once bound; SIGTERM or SIGINT stop it gracefully (exit 0).\n"
    "\n"
    "options (each overrides the config; the config's keys are in configs/serve.yaml):\n"
    "  --config FILE         a serve config (sections model, server, generation)\n"
    "  --model DIR           the model directory               --adapter DIR  a LoRA adapter, merged\n"
    "  --name NAME           the served model id (default: the directory's name)\n"
    "  --host H              127.0.0.1                         --port N       8000 (0: any free port)\n"
    "  -t, --threads N       compute threads (default: all cores)\n"
    "  --max-batch N         16 sequences decoded together     --max-seq-len N  the model's context\n"
    "  --kv-budget-mb N      KV-cache memory (default: max-batch full contexts)\n"
    "  --api-key-file FILE   one key per line (each >= 32 chars); also $LARGEFORGE_API_KEY\n"
    "  --log-prompts         access-log lines carry prompts and completions\n"
    "  --access-log FILE     append the access log there (default: stderr)\n"
    "  --server.KEY V, --model.KEY V, --generation.KEY V   override one config key\n"
    "  --help, --version, --quiet, --verbose\n"
    "exit codes: 0 ok, 2 bad argument, 4 I/O, 5 bad file, 7 bad config, 11 network (bind), 64 usage\n";

static lf_service *the_service;
static FILE *access_file;

static void on_signal(int sig) {
    (void)sig;
    if (the_service) lf_service_stop(the_service);
}

static void write_access(void *user, const char *line) {
    (void)user;
    fprintf(access_file ? access_file : stderr, "%s\n", line);
    fflush(access_file ? access_file : stderr);
}

int main(int argc, char **argv) {
    lf_drv_name = "lf-serve";
    static const char *const sections[] = {"model", "server", "generation", NULL};
    const char *mode = NULL, *config = NULL, *model = NULL, *adapter = NULL, *name = NULL, *host = NULL, *keyfile = NULL;
    const char *access = NULL, *v, *overrides[64];
    char ovbuf[64][512];
    int n_ov = 0;
    bool log_prompts = false;
    long threads = -1, port = -1, max_batch = -1, max_seq = -1, kv_mb = -1;
    for (int i = 1, ovr; i < argc; i++) {
        long *ln = NULL, lo = 1, hi = 1L << 30;
        if (lf_drv_common_flag(argv[i], help)) continue;
        if (lf_drv_opt(argc, argv, &i, "--config", &v)) config = v;
        else if (lf_drv_opt(argc, argv, &i, "--model", &v) || lf_drv_opt(argc, argv, &i, "-m", &v)) model = v;
        else if (lf_drv_opt(argc, argv, &i, "--adapter", &v)) adapter = v;
        else if (lf_drv_opt(argc, argv, &i, "--name", &v)) name = v;
        else if (lf_drv_opt(argc, argv, &i, "--host", &v)) host = v;
        else if (lf_drv_opt(argc, argv, &i, "--api-key-file", &v)) keyfile = v;  // = server.api_key_file
        else if (lf_drv_opt(argc, argv, &i, "--access-log", &v)) access = v;
        else if (strcmp(argv[i], "--log-prompts") == 0) log_prompts = true;
        else if (lf_drv_opt(argc, argv, &i, "--port", &v)) ln = &port, lo = 0, hi = 65535;
        else if (lf_drv_opt(argc, argv, &i, "--threads", &v) || lf_drv_opt(argc, argv, &i, "-t", &v)) ln = &threads, lo = 0, hi = 4096;
        else if (lf_drv_opt(argc, argv, &i, "--max-batch", &v)) ln = &max_batch, hi = 4096;
        else if (lf_drv_opt(argc, argv, &i, "--max-seq-len", &v)) ln = &max_seq;
        else if (lf_drv_opt(argc, argv, &i, "--kv-budget-mb", &v)) ln = &kv_mb;
        else if ((ovr = lf_drv_override(argc, argv, &i, sections, ovbuf, &n_ov, 64)) != 0) {
            if (ovr < 0) return LF_EXIT_USAGE;
            overrides[n_ov - 1] = ovbuf[n_ov - 1];
        } else if (lf_drv_bad) return lf_drv_usage_error("option %s needs a value", lf_drv_bad);
        else if (!mode && argv[i][0] != '-') mode = argv[i];
        else return lf_drv_usage_error("unknown argument '%s'", argv[i]);
        if (ln && !lf_drv_parse_int(v, lo, hi, ln)) return lf_drv_usage_error("bad number '%s'", v);
    }
    if (mode && strcmp(mode, "router") == 0)
        return lf_drv_fail(lf__fail(LF_ERR_UNSUPPORTED, "serve router is not built yet (the router issue); serve inference is"));
    if (!mode || strcmp(mode, "inference") != 0) return lf_drv_usage_error("expected inference%s", "");

    // the product's defaults < generation_config.json < the config < the flags
    lf_doc doc;
    lf_serve_config c;
    memset(&c, 0, sizeof c);
    static const char *top[] = {"model", "server", "generation"};
    char keyov[4200];
    if (keyfile) {  // the config's own key reading ($LARGEFORGE_API_KEY, then the file's)
        if (n_ov == 64 || snprintf(keyov, sizeof keyov, "server.api_key_file=%s", keyfile) >= (int)sizeof keyov)
            return lf_drv_usage_error("--api-key-file %s: too many overrides or too long a path", keyfile);
        overrides[n_ov++] = keyov;
    }
    lf_status s = lf_config_load(&doc, config, overrides, n_ov);
    if (s == LF_OK) s = lf_cfg_keys(&doc, doc.root, NULL, top, 3);
    if (s == LF_OK) s = lf_serve_config_read(&c, &doc);
    if (s != LF_OK) return lf_drv_fail(s);
    lf_serve_desc *d = &c.desc;
    if (model) d->model = model;
    if (adapter) d->adapter = adapter;
    if (name) d->name = name;
    if (host) d->http.host = host;
    if (port >= 0) d->http.port = (int)port;
    if (threads >= 0) d->threads = (int)threads;
    if (max_batch > 0) d->engine.max_batch = (int)max_batch;
    if (max_seq > 0) d->engine.max_seq_len = (int)max_seq;
    if (kv_mb > 0) d->engine.kv_budget_bytes = (size_t)kv_mb << 20;
    if (log_prompts) d->log_prompts = true;
    if (!d->model) return lf_drv_usage_error("a model is required: --model DIR or model.name in --config%s", "");
    if (access || c.access_log) {
        const char *path = access ? access : c.access_log;
        if (!(access_file = fopen(path, "a"))) return lf_drv_fail(lf__fail(LF_ERR_IO, "%s: %s", path, strerror(errno)));
    }
    if (!lf_drv_quiet || access_file) d->access_log = write_access;
    if (lf_drv_verbose) lf_log_set(lf_log_stderr, NULL, LF_LOG_INFO);
    if (!d->n_api_keys && !lf_drv_quiet)
        fprintf(stderr, "%s: warning: no API key ($LARGEFORGE_API_KEY or server.api_key_file): every client is let in\n", lf_drv_name);

    s = lf_service_open(&the_service, d);
    if (s != LF_OK) return lf_drv_fail(s);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL), sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    printf("listening on http://%s:%d\n", d->http.host ? d->http.host : "127.0.0.1", lf_service_port(the_service));
    fflush(stdout);
    s = lf_service_run(the_service);
    signal(SIGTERM, SIG_IGN), signal(SIGINT, SIG_IGN);  // the handler must not see the service closed
    lf_service_close(the_service);
    if (access_file) fclose(access_file);
    lf_serve_config_deinit(&c), lf_doc_deinit(&doc);
    if (s != LF_OK) return lf_drv_fail(s);
    if (!lf_drv_quiet) fprintf(stderr, "%s: stopped\n", lf_drv_name);
    return 0;
}
