// bench/loadgen — a load generator for OpenAI-compatible servers: LargeForge's lf-serve and
// llama.cpp's llama-server. Each of --streams threads sends streamed completions one after the
// other; one JSON line on stdout gives generated tokens/s over the wall time and percentiles of
// TTFT (request start to the first content chunk) and ITL (between content chunks).
//
//   loadgen --url http://127.0.0.1:PORT --model NAME [--streams 1] [--requests-per-stream 4 |
//           --duration S] [--max-tokens 64] [--prompt-tokens 128] [--endpoint completions|chat]
//           [--api-key KEY] [--ignore-eos] [--label NAME] [--wait 60] [--overhead]
//   loadgen --engine DIR [--threads N] [--max-batch 16] ...   the same requests to lf_engine in
//           this process, with no HTTP: the baseline the server's overhead is measured against
//
// --ignore-eos sends "ignore_eos": true (llama-server only: lf-serve rejects unknown fields).
// --overhead: non-streamed max_tokens 1 requests instead; their latency is the per-request cost
//   of the server around one engine step. With --engine, latency runs from lf_engine_submit (the
//   prompt already tokenized) to on_done: the server's overhead is the difference.
// Prompts are sized to ~--prompt-tokens with the server's own token count (usage.prompt_tokens
// of an unmeasured first request), and each starts with its own number (run, stream, request) so
// that no server can answer from a cached prefix, not even one cached by an earlier run. Generated tokens come from the final usage chunk
// (stream_options.include_usage), else one per content chunk.
#define LARGEFORGE_IMPLEMENTATION
#include "../largeforge.h"

#include <pthread.h>

static struct {
    const char *url, *model, *api_key, *label, *endpoint, *engine;
    int streams, requests, max_tokens, prompt_tokens, wait_s, threads, max_batch;
    double duration;
    bool chat, ignore_eos, overhead;
} O = {.endpoint = "completions", .streams = 1, .max_tokens = 64, .prompt_tokens = 128, .wait_s = 60, .max_batch = 16};

static double chars_per_token = 4;  // set by calibrate()
static unsigned run_id;              // in every prompt: no two runs send the same one

typedef struct dvec {
    double *v;
    size_t n, cap;
} dvec;

static void dvec_push(dvec *d, double x) {
    if (d->n == d->cap) {
        d->cap = d->cap ? 2 * d->cap : 256;
        d->v = realloc(d->v, d->cap * sizeof *d->v);
        if (!d->v) abort();
    }
    d->v[d->n++] = x;
}

typedef struct stream {  // one thread's requests
    pthread_t th;
    int id;
    dvec ttft, itl, lat;  // ms
    long requests, errors, tokens, prompt_tokens;
} stream;

typedef struct req {  // one request in flight
    stream *s;        // NULL: not measured (calibration)
    lf_http_response *resp;
    char *line;  // the SSE line being assembled
    size_t len, cap;
    uint64_t t0, t_last;
    long chunks, completion_tokens, prompt_tokens;  // the usage ones -1 until seen
    bool done;  // [DONE] came
    char err[300];
} req;

static double ms_since(uint64_t t0, uint64_t t1) { return (double)(t1 - t0) * 1e-6; }

// Reads usage and the content of one chunk or whole response; false when it is not JSON.
static bool take_json(req *r, const char *json, bool streamed) {
    cJSON *j = cJSON_Parse(json);
    if (!j) return false;
    cJSON *e = cJSON_GetObjectItem(j, "error"), *u = cJSON_GetObjectItem(j, "usage");
    if (e && !r->err[0]) {
        cJSON *m = cJSON_GetObjectItem(e, "message");
        snprintf(r->err, sizeof r->err, "error: %s", cJSON_IsString(m) ? m->valuestring : "(no message)");
    }
    if (cJSON_IsObject(u)) {
        cJSON *ct = cJSON_GetObjectItem(u, "completion_tokens"), *pt = cJSON_GetObjectItem(u, "prompt_tokens");
        if (cJSON_IsNumber(ct)) r->completion_tokens = (long)ct->valuedouble;
        if (cJSON_IsNumber(pt)) r->prompt_tokens = (long)pt->valuedouble;
    }
    cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    cJSON *text = O.chat ? cJSON_GetObjectItem(cJSON_GetObjectItem(c, streamed ? "delta" : "message"), "content")
                         : cJSON_GetObjectItem(c, "text");
    if (streamed && cJSON_IsString(text) && text->valuestring[0]) {
        uint64_t now = lf_time_ns();
        if (r->s && r->chunks == 0) dvec_push(&r->s->ttft, ms_since(r->t0, now));
        if (r->s && r->chunks > 0) dvec_push(&r->s->itl, ms_since(r->t_last, now));
        r->t_last = now, r->chunks++;
    }
    cJSON_Delete(j);
    return true;
}

// lf_http_fetch's on_data: splits the event stream into lines and takes each "data:" one.
static bool on_data(void *user, const void *data, size_t n) {
    req *r = user;
    if (r->resp->status != 200) {  // keep the start of an error body for the message
        if (!r->err[0]) snprintf(r->err, sizeof r->err, "HTTP %d: %.*s", r->resp->status, (int)LF__MIN(n, 200), (const char *)data);
        return true;
    }
    for (const char *p = data, *end = p + n; p < end; p++) {
        if (*p != '\n') {
            if (r->len + 1 >= r->cap) {
                r->cap = r->cap ? 2 * r->cap : 4096;
                r->line = realloc(r->line, r->cap);
                if (!r->line) abort();
            }
            r->line[r->len++] = *p;
            continue;
        }
        if (r->len && r->line[r->len - 1] == '\r') r->len--;
        r->line[r->len] = 0, r->len = 0;
        if (strncmp(r->line, "data:", 5) != 0) continue;  // blank lines, comments, event names
        const char *payload = r->line + 5 + (r->line[5] == ' ');
        if (!strcmp(payload, "[DONE]")) r->done = true;
        else if (!take_json(r, payload, true) && !r->err[0])
            snprintf(r->err, sizeof r->err, "not JSON: %.200s", payload);
    }
    return true;
}

// Sends one request; false (with r->err) when it failed.
static bool send_request(req *r, const char *prompt, int max_tokens, bool streamed) {
    char head[1024], tail[256];
    // the model name goes in as given: a name with quotes or backslashes is not supported
    snprintf(head, sizeof head, "{\"model\":\"%s\",%s", O.model,
             O.chat ? "\"messages\":[{\"role\":\"user\",\"content\":\"" : "\"prompt\":\"");
    snprintf(tail, sizeof tail, "\"%s,\"max_tokens\":%d,\"temperature\":0,\"stream\":%s%s%s}", O.chat ? "}]" : "",
             max_tokens, streamed ? "true" : "false", streamed ? ",\"stream_options\":{\"include_usage\":true}" : "",
             O.ignore_eos ? ",\"ignore_eos\":true" : "");
    size_t body_len = strlen(head) + strlen(prompt) + strlen(tail);
    char *body = malloc(body_len + 1), url[512], auth[512];
    if (!body) abort();
    snprintf(body, body_len + 1, "%s%s%s", head, prompt, tail);
    snprintf(url, sizeof url, "%s/v1/%s", O.url, O.chat ? "chat/completions" : "completions");
    snprintf(auth, sizeof auth, "Bearer %s", O.api_key ? O.api_key : "");
    lf_http_header h = {"Authorization", auth};
    lf_http_response resp;
    lf_http_fetch_desc d = {.url = url, .headers = &h, .n_headers = O.api_key != NULL, .content_type = "application/json",
                            .body = body, .body_len = body_len, .timeout_ms = 120000,
                            .on_data = streamed ? on_data : NULL, .user = r};
    r->resp = &resp, r->chunks = 0, r->completion_tokens = r->prompt_tokens = -1, r->done = false, r->err[0] = 0;
    r->t0 = lf_time_ns();
    lf_status st = lf_http_fetch(&d, &resp);
    uint64_t t1 = lf_time_ns();
    free(body);
    if (st != LF_OK) {
        snprintf(r->err, sizeof r->err, "%.290s", lf_last_error());
        return false;
    }
    if (!streamed && resp.status == 200 && !take_json(r, resp.body, false))
        snprintf(r->err, sizeof r->err, "not JSON: %.200s", resp.body);
    else if (!streamed && resp.status != 200)
        snprintf(r->err, sizeof r->err, "HTTP %d: %.200s", resp.status, resp.body);
    else if (streamed && !r->err[0] && !r->done)
        snprintf(r->err, sizeof r->err, "the stream ended without [DONE]");
    lf_http_response_deinit(&resp);
    if (r->err[0]) return false;
    if (r->s) {
        dvec_push(&r->s->lat, ms_since(r->t0, t1));
        r->s->tokens += r->completion_tokens >= 0 ? r->completion_tokens : r->chunks;
        r->s->prompt_tokens += r->prompt_tokens > 0 ? r->prompt_tokens : 0;
    }
    return true;
}

// -- --engine: the same requests to lf_engine in-process (the engine's thread runs lf_engine_run)

static struct {
    lf_model m;
    lf_tokenizer tok;
    lf_engine *e;
    pthread_t th;
} E;

typedef struct ereq {  // a request's wait for on_done
    req *r;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    lf_status st;
} ereq;

static bool engine_on_token(void *user, int32_t id, const char *text, size_t len) {
    (void)id;
    req *r = ((ereq *)user)->r;
    if (len && r->s) {  // the server sends a chunk for each token with text: the same points
        uint64_t now = lf_time_ns();
        dvec_push(r->chunks ? &r->s->itl : &r->s->ttft, ms_since(r->chunks ? r->t_last : r->t0, now));
        r->t_last = now;
    }
    r->chunks += len > 0;
    (void)text;
    return true;
}

static void engine_on_done(void *user, uint64_t id, lf_status st, const lf_gen_result *res) {
    (void)id;
    ereq *w = user;
    w->r->completion_tokens = res ? res->n_gen : 0;
    pthread_mutex_lock(&w->mu);
    w->done = true, w->st = st;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void *engine_main(void *arg) {
    (void)arg;
    lf_engine_run(E.e);
    return NULL;
}

static bool engine_open(void) {
    lf_model_desc md = {.path = O.engine, .n_threads = O.threads, .max_tokens = LF__MAX(512, O.max_batch + 256)};
    lf_engine_desc ed = {.model = &E.m, .tok = &E.tok, .max_batch = O.max_batch};
    lf_status st = lf_model_open(&E.m, &md);
    if (st == LF_OK) st = lf_tok_open(&E.tok, O.engine);
    if (st == LF_OK) st = lf_engine_create(&E.e, &ed);
    if (st == LF_OK && pthread_create(&E.th, NULL, engine_main, NULL)) st = LF_ERR_NOMEM;
    if (st != LF_OK) fprintf(stderr, "loadgen: %s: %s\n", O.engine, lf_last_error());
    return st == LF_OK;
}

// send_request's twin for --engine: greedy, as the HTTP requests are.
static bool engine_request(req *r, const char *prompt, int max_tokens, bool streamed) {
    int32_t *ids = NULL;
    size_t n = 0;
    ereq w = {.r = r};
    r->chunks = 0, r->completion_tokens = -1, r->err[0] = 0;
    if (lf_tok_encode(&E.tok, prompt, strlen(prompt), true, &ids, &n) != LF_OK) {
        snprintf(r->err, sizeof r->err, "%.290s", lf_last_error());
        return false;
    }
    r->prompt_tokens = (long)n;
    lf_engine_req q = {.prompt = ids, .n_prompt = (int)n, .gen = lf_gen_desc_default(), .on_done = engine_on_done, .user = &w};
    q.gen.sampling.temperature = 0, q.gen.max_tokens = max_tokens, q.gen.ignore_eos = O.ignore_eos;
    q.gen.on_token = streamed ? engine_on_token : NULL;
    pthread_mutex_init(&w.mu, NULL), pthread_cond_init(&w.cv, NULL);
    uint64_t id;
    r->t0 = lf_time_ns();
    lf_status st = lf_engine_submit(E.e, &q, &id);
    pthread_mutex_lock(&w.mu);
    while (st == LF_OK && !w.done) pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    uint64_t t1 = lf_time_ns();
    pthread_mutex_destroy(&w.mu), pthread_cond_destroy(&w.cv);
    lf_free(ids);
    if (st == LF_OK) st = w.st;
    if (st != LF_OK) {
        snprintf(r->err, sizeof r->err, "%s: %.250s", lf_status_str(st), lf_last_error());
        return false;
    }
    if (r->s) {
        dvec_push(&r->s->lat, ms_since(r->t0, t1));
        r->s->tokens += r->completion_tokens, r->s->prompt_tokens += r->prompt_tokens;
    }
    return true;
}

static bool request(req *r, const char *prompt, int max_tokens, bool streamed) {
    return O.engine ? engine_request(r, prompt, max_tokens, streamed) : send_request(r, prompt, max_tokens, streamed);
}

// A prompt of ~n_tokens (by chars_per_token) that starts with its own number.
static char *make_prompt(int stream_id, long seq, int n_tokens) {
    static const char *words[] = {"the", "river", "quiet", "stone", "light", "over", "garden", "before", "winter",
                                  "and", "small", "bright", "morning", "across", "field", "where", "old", "bells",
                                  "ring", "under", "clouds", "slowly", "toward", "harbor", "people", "walk"};
    size_t want = (size_t)(n_tokens * chars_per_token), nw = sizeof words / sizeof *words, len = 0;
    char *p = malloc(want + 64);
    if (!p) abort();
    len = (size_t)snprintf(p, 64, "Request %06x.%d.%ld:", run_id, stream_id, seq);
    for (size_t i = (size_t)(stream_id * 7 + seq * 13); len < want; i++)
        len += (size_t)snprintf(p + len, want + 64 - len, " %s", words[(i * 11 + i / nw) % nw]);
    return p;
}

// Waits for /health to answer 200 (a server still loading answers 503).
static bool wait_healthy(void) {
    char url[512];
    snprintf(url, sizeof url, "%s/health", O.url);
    for (uint64_t end = lf_time_ns() + (uint64_t)O.wait_s * 1000000000ull;;) {
        lf_http_fetch_desc d = {.url = url, .timeout_ms = 5000};
        lf_http_response resp;
        if (lf_http_fetch(&d, &resp) == LF_OK) {
            int status = resp.status;
            lf_http_response_deinit(&resp);
            if (status == 200) return true;
        }
        if (lf_time_ns() > end) return false;
        usleep(200000);
    }
}

// Unmeasured requests (they also warm the server up) tell how many chars make a token here: a
// short prompt first (any context takes it), then one of the asked size when that is longer.
static bool calibrate(void) {
    for (int n = 64;; n = O.prompt_tokens) {
        req r = {0};
        char *p = make_prompt(-1, 0, n);
        bool ok = request(&r, p, 1, false);
        if (ok && r.prompt_tokens > 0) chars_per_token = (double)strlen(p) / (double)r.prompt_tokens;
        if (!ok) fprintf(stderr, "loadgen: a first request failed: %s\n", r.err);
        free(p);
        free(r.line);
        if (!ok || n >= O.prompt_tokens) return ok;
    }
}

static uint64_t t_end;  // --duration: no request starts after it
static pthread_barrier_t start;

static void *stream_main(void *arg) {
    stream *s = arg;
    req r = {.s = s};
    pthread_barrier_wait(&start);
    for (long i = 0; O.duration > 0 ? lf_time_ns() < t_end : i < O.requests; i++) {
        char *p = make_prompt(s->id, i, O.prompt_tokens);
        bool ok = request(&r, p, O.overhead ? 1 : O.max_tokens, !O.overhead);
        free(p);
        s->requests++;
        if (!ok && s->errors++ == 0) fprintf(stderr, "loadgen: stream %d: %s\n", s->id, r.err);
    }
    free(r.line);
    return NULL;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// Prints "key":{"p50":..,"p95":..,"p99":..} of v (linear interpolation between ranks).
static void print_pct(const char *key, dvec *v) {
    printf(",\"%s\":", key);
    if (!v->n) {
        printf("null");
        return;
    }
    qsort(v->v, v->n, sizeof *v->v, cmp_double);
    const double q[3] = {0.50, 0.95, 0.99};
    for (int i = 0; i < 3; i++) {
        double at = q[i] * (double)(v->n - 1), f = at - (double)(size_t)at;
        size_t k = (size_t)at, k1 = k + 1 < v->n ? k + 1 : k;
        printf("%s\"p%d\":%.3f", i ? "," : "{", (int)(q[i] * 100 + 0.5), v->v[k] * (1 - f) + v->v[k1] * f);
    }
    printf("}");
}

static void usage(void) {
    fprintf(stderr, "usage: loadgen --url http://HOST:PORT --model NAME [--streams N] [--requests-per-stream K |\n"
                    "  --duration S] [--max-tokens N] [--prompt-tokens P] [--endpoint completions|chat]\n"
                    "  [--api-key KEY] [--ignore-eos] [--label NAME] [--wait S] [--overhead]\n"
                    "       loadgen --engine MODEL_DIR [--threads N] [--max-batch 16] [the options above but --url]\n");
    exit(64);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--ignore-eos")) O.ignore_eos = true;
        else if (!strcmp(a, "--overhead")) O.overhead = true;
        else if (!v) usage();
        else if (i++, !strcmp(a, "--url")) O.url = v;
        else if (!strcmp(a, "--engine")) O.engine = v;
        else if (!strcmp(a, "--threads")) O.threads = atoi(v);
        else if (!strcmp(a, "--max-batch")) O.max_batch = atoi(v);
        else if (!strcmp(a, "--model")) O.model = v;
        else if (!strcmp(a, "--api-key")) O.api_key = v;
        else if (!strcmp(a, "--label")) O.label = v;
        else if (!strcmp(a, "--endpoint")) O.endpoint = v;
        else if (!strcmp(a, "--streams")) O.streams = atoi(v);
        else if (!strcmp(a, "--requests-per-stream")) O.requests = atoi(v);
        else if (!strcmp(a, "--duration")) O.duration = atof(v);
        else if (!strcmp(a, "--max-tokens")) O.max_tokens = atoi(v);
        else if (!strcmp(a, "--prompt-tokens")) O.prompt_tokens = atoi(v);
        else if (!strcmp(a, "--wait")) O.wait_s = atoi(v);
        else usage();
    }
    O.chat = !strcmp(O.endpoint, "chat");
    if (O.engine && !O.model) O.model = O.engine;
    if (!(O.url || O.engine) || !O.model || O.streams < 1 || O.streams > 1024 || O.max_tokens < 1 || O.prompt_tokens < 1 ||
        (!O.chat && strcmp(O.endpoint, "completions")) || (O.chat && O.engine) || O.requests < 0 || O.duration < 0 || strchr(O.model, '"') ||
        strchr(O.model, '\\'))
        usage();
    if (!O.requests && O.duration <= 0) O.requests = 4;
    run_id = (unsigned)(lf_time_ns() ^ (uint64_t)getpid() << 20) & 0xffffff;
    if (O.engine && !engine_open()) return 1;
    if (!O.engine && !wait_healthy()) {
        fprintf(stderr, "loadgen: %s/health did not answer 200 within %d s\n", O.url, O.wait_s);
        return 1;
    }
    if (!calibrate()) return 1;
    stream *ss = calloc((size_t)O.streams, sizeof *ss);
    if (!ss) abort();
    pthread_barrier_init(&start, NULL, (unsigned)O.streams + 1);
    for (int i = 0; i < O.streams; i++) {
        ss[i].id = i;
        if (pthread_create(&ss[i].th, NULL, stream_main, &ss[i])) abort();
    }
    uint64_t t0 = lf_time_ns();
    t_end = t0 + (uint64_t)(O.duration * 1e9);
    pthread_barrier_wait(&start);
    stream all = {0};
    for (int i = 0; i < O.streams; i++) {
        pthread_join(ss[i].th, NULL);
        all.requests += ss[i].requests, all.errors += ss[i].errors;
        all.tokens += ss[i].tokens, all.prompt_tokens += ss[i].prompt_tokens;
        dvec *from[3] = {&ss[i].ttft, &ss[i].itl, &ss[i].lat}, *to[3] = {&all.ttft, &all.itl, &all.lat};
        for (int k = 0; k < 3; k++) {
            for (size_t j = 0; j < from[k]->n; j++) dvec_push(to[k], from[k]->v[j]);
            free(from[k]->v);
        }
    }
    double wall = (double)(lf_time_ns() - t0) * 1e-9;
    long ok = all.requests - all.errors;
    printf("{\"name\":\"%s\",\"label\":\"%s\",\"endpoint\":\"%s\",\"streams\":%d,\"requests\":%ld,\"errors\":%ld,"
           "\"max_tokens\":%d,\"prompt_tokens\":%.1f,\"tokens\":%ld,\"wall_s\":%.3f,\"requests_per_s\":%.3f,"
           "\"tokens_per_s\":%.2f",
           O.overhead ? "serve_overhead" : "serve", O.label ? O.label : O.model, O.endpoint, O.streams, all.requests,
           all.errors, O.overhead ? 1 : O.max_tokens, ok ? (double)all.prompt_tokens / (double)ok : 0.0, all.tokens,
           wall, (double)ok / wall, (double)all.tokens / wall);
    if (!O.overhead) {
        print_pct("ttft_ms", &all.ttft);
        print_pct("itl_ms", &all.itl);
    }
    print_pct("latency_ms", &all.lat);
    printf("}\n");
    if (O.engine) lf_engine_stop(E.e), pthread_join(E.th, NULL), lf_engine_destroy(E.e), lf_tok_close(&E.tok), lf_model_close(&E.m);
    return ok ? 0 : 1;
}
