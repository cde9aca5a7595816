// tests/test_serve.c — the inference service (section 15) over loopback, driven by the HTTP
// client of section 14: endpoints and their shapes, 32 concurrent streams equal to their lone
// greedy outputs, disconnects, overload, timeouts, keys, rate limits, hostile input, CORS,
// model swaps, /health while loading, the config. tests/clients/serve_clients.py repeats the
// main ones with the official openai package and curl (serve/clients).
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#ifndef LF_NO_THREADS  // section 15 needs threads
#define SV_MODEL "models/kjv-llama-4m"
#define SV_KEY "sk-test-0123456789abcdef0123456789abcdef"

typedef struct sv_fix {
    lf_service *s;
    pthread_t th;
    lf_status run_st;
    char base[64];
    pthread_mutex_t mu;
    lf__buf log;  // the access log
} sv_fix;

static void sv_log(void *user, const char *line) {
    sv_fix *f = (sv_fix *)user;
    pthread_mutex_lock(&f->mu);
    lf__buf_puts(&f->log, line), lf__buf_putc(&f->log, '\n');
    pthread_mutex_unlock(&f->mu);
}

static void *sv_main(void *arg) {
    sv_fix *f = (sv_fix *)arg;
    f->run_st = lf_service_run(f->s);
    return NULL;
}

// GET/POST path with an optional body and key; out must be lf_http_response_deinit-ed.
static lf_status sv_fetch(sv_fix *f, const char *path, const char *body, const char *key, lf_http_response *out) {
    char url[256], auth[128];
    snprintf(url, sizeof url, "%s%s", f->base, path);
    snprintf(auth, sizeof auth, "Bearer %s", key ? key : "");
    lf_http_header h[1] = {{"Authorization", auth}};
    lf_http_fetch_desc d;
    memset(&d, 0, sizeof d);
    d.url = url, d.body = body, d.body_len = body ? strlen(body) : 0, d.headers = h, d.n_headers = key ? 1 : 0;
    d.content_type = body ? "application/json" : NULL, d.timeout_ms = 60000;
    return lf_http_fetch(&d, out);
}

// The status of path, and the error code of its body when it has one.
static int sv_status(sv_fix *f, const char *path, const char *body, const char *key, char code[32]) {
    lf_http_response r;
    if (sv_fetch(f, path, body, key, &r) != LF_OK) return -1;
    int st = r.status;
    if (code) {
        lf_doc doc;
        code[0] = 0;
        if (lf_json_parse(&doc, r.body, r.body_len, "answer") == LF_OK) {
            const lf_node *c = lf_node_get(lf_node_get(doc.root, "error"), "code");
            if (c && c->type == LF_NODE_STRING) snprintf(code, 32, "%s", c->str);
            lf_doc_deinit(&doc);
        }
    }
    lf_http_response_deinit(&r);
    return st;
}

static int sv_start(sv_fix *f, lf_serve_desc *d) {
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
    d->http.port = 0, d->threads = d->threads ? d->threads : 2, d->access_log = sv_log, d->user = f;
    CHECK_OK(lf_service_open(&f->s, d));
    snprintf(f->base, sizeof f->base, "http://127.0.0.1:%d", lf_service_port(f->s));
    CHECK(pthread_create(&f->th, NULL, sv_main, f) == 0);
    for (int i = 0; i < 1000 && sv_status(f, "/health", NULL, NULL, NULL) != 200; i++) usleep(10000);
    CHECK(sv_status(f, "/health", NULL, NULL, NULL) == 200);
    return 0;
}

static int sv_stop(sv_fix *f) {
    lf_service_stop(f->s);
    pthread_join(f->th, NULL);
    lf_service_close(f->s);
    LF_FREE(f->log.data);
    pthread_mutex_destroy(&f->mu);
    CHECK_OK(f->run_st);
    return 0;
}

static lf_serve_desc sv_desc(void) {
    lf_serve_desc d;
    memset(&d, 0, sizeof d);
    d.model = SV_MODEL;
    return d;
}

// A metric's value (the first sample whose line starts with series), or -1.
static double sv_metric(sv_fix *f, const char *series) {
    lf_http_response r;
    double v = -1;
    if (sv_fetch(f, "/metrics", NULL, NULL, &r) != LF_OK) return -1;
    for (const char *p = r.body; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, series, strlen(series))) {
            v = atof(p + strlen(series));
            break;
        }
    lf_http_response_deinit(&r);
    return v;
}

// A string at a path of members, e.g. {"choices", "0", "text"} (digits index arrays).
static const lf_node *sv_at(const lf_node *n, const char *const *path, int k) {
    for (int i = 0; n && i < k; i++)
        n = n->type == LF_NODE_ARRAY ? (atoi(path[i]) < n->n ? &n->kids[atoi(path[i])] : NULL) : lf_node_get(n, path[i]);
    return n;
}

// The greedy text of prompt on SV_MODEL, with adapter merged when given.
static int sv_alone(const char *adapter, const char *prompt, int max_tokens, char *out, size_t cap) {
    lf_model m;
    lf_tokenizer tok;
    lf_kv kv;
    lf_gen_result res;
    int32_t *ids;
    size_t n;
    CHECK_OK(lf_model_open(&m, &(lf_model_desc){.path = SV_MODEL, .n_threads = 2}));
    if (adapter) {
        CHECK_OK(lf_lora_load(&m, adapter));
        CHECK_OK(lf_lora_merge(&m));
    }
    CHECK_OK(lf_tok_open(&tok, SV_MODEL));
    CHECK_OK(lf_kv_init(&kv, &m, 1, 0));
    CHECK_OK(lf_tok_encode(&tok, prompt, strlen(prompt), true, &ids, &n));
    lf_gen_desc g = lf_gen_desc_default();
    g.sampling.temperature = 0, g.max_tokens = max_tokens;
    CHECK_OK(lf_generate(&m, &kv, 0, &tok, ids, (int)n, &g, &res));
    snprintf(out, cap, "%s", res.text);
    lf_gen_result_deinit(&res), lf_free(ids), lf_kv_deinit(&kv), lf_tok_close(&tok), lf_model_close(&m);
    return 0;
}

static int test_serve_endpoints(void) {
    sv_fix f;
    lf_serve_desc d = sv_desc();
    if (sv_start(&f, &d)) return 1;
    lf_http_response r;
    lf_doc doc;
    // completions: OpenAI's shape, greedy, usage counts
    CHECK_OK(sv_fetch(&f, "/v1/completions", "{\"model\":\"kjv-llama-4m\",\"prompt\":\"In the beginning\",\"max_tokens\":12,\"temperature\":0}", NULL, &r));
    CHECK(r.status == 200 && strstr(lf_http_header_get(r.headers, r.n_headers, "content-type"), "application/json"));
    CHECK_OK(lf_json_parse(&doc, r.body, r.body_len, "completion"));
    static const char *const text[] = {"choices", "0", "text"}, *const fin[] = {"choices", "0", "finish_reason"};
    static const char *const obj[] = {"object"}, *const ct[] = {"usage", "completion_tokens"}, *const pt[] = {"usage", "prompt_tokens"};
    CHECK(!strcmp(sv_at(doc.root, obj, 1)->str, "text_completion") && !strcmp(sv_at(doc.root, fin, 3)->str, "length"));
    CHECK(sv_at(doc.root, ct, 2)->num == 12 && sv_at(doc.root, pt, 2)->num == 3 && sv_at(doc.root, text, 3)->len > 0);
    char first[512];
    snprintf(first, sizeof first, "%s", sv_at(doc.root, text, 3)->str);
    lf_doc_deinit(&doc), lf_http_response_deinit(&r);
    char alone[512];  // the same through lf_generate: the server adds nothing to the text
    if (sv_alone(NULL, "In the beginning", 12, alone, sizeof alone)) return 1;
    CHECK(!strcmp(alone, first));
    // chat, with logprobs
    CHECK_OK(sv_fetch(&f, "/v1/chat/completions", "{\"model\":\"kjv-llama-4m\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                      "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Who made the heaven?\"}]}],\"max_tokens\":4,"
                      "\"temperature\":0,\"logprobs\":true,\"top_logprobs\":3}", NULL, &r));
    CHECK(r.status == 200);
    CHECK_OK(lf_json_parse(&doc, r.body, r.body_len, "chat"));
    static const char *const role[] = {"choices", "0", "message", "role"}, *const lp[] = {"choices", "0", "logprobs", "content"};
    CHECK(!strcmp(sv_at(doc.root, obj, 1)->str, "chat.completion") && !strcmp(sv_at(doc.root, role, 4)->str, "assistant"));
    const lf_node *c = sv_at(doc.root, lp, 4);
    CHECK(c && c->type == LF_NODE_ARRAY && c->n == 4);
    for (int i = 0; i < 4; i++) {
        const lf_node *l = lf_node_get(&c->kids[i], "logprob"), *t = lf_node_get(&c->kids[i], "top_logprobs");
        CHECK(l->num <= 0 && t->n == 3 && lf_node_get(&t->kids[0], "logprob")->num >= l->num);
    }
    lf_doc_deinit(&doc), lf_http_response_deinit(&r);
    // models, one model, health, metrics
    CHECK_OK(sv_fetch(&f, "/v1/models", NULL, NULL, &r));
    CHECK(r.status == 200 && strstr(r.body, "\"id\":\"kjv-llama-4m\"") && strstr(r.body, "\"object\":\"list\""));
    lf_http_response_deinit(&r);
    CHECK(sv_status(&f, "/v1/models/kjv-llama-4m", NULL, NULL, NULL) == 200);
    char code[32];
    CHECK(sv_status(&f, "/v1/models/nope", NULL, NULL, code) == 404 && !strcmp(code, "MODEL_NOT_FOUND"));
    CHECK(sv_metric(&f, "inference_requests_total{model=\"kjv-llama-4m\",status=\"200\"}") == 2);
    CHECK(sv_metric(&f, "tokens_generated_total{model=\"kjv-llama-4m\"}") == 16);
    CHECK(sv_metric(&f, "inference_latency_seconds_count{model=\"kjv-llama-4m\"}") == 2);
    CHECK(sv_metric(&f, "active_requests{model=\"kjv-llama-4m\"}") == 0);
    CHECK(sv_metric(&f, "queue_length{model=\"kjv-llama-4m\"}") == 0);
    double kv = 1;  // the engine publishes its numbers after the step that answered
    for (int i = 0; i < 100 && kv != 0; i++) kv = sv_metric(&f, "kv_cache_usage_ratio{model=\"kjv-llama-4m\"}"), usleep(2000);
    CHECK(kv == 0);
    // the access log: one line per request, no prompt
    pthread_mutex_lock(&f.mu);
    CHECK(strstr(f.log.data, "\"path\":\"/v1/completions\",\"status\":200") && !strstr(f.log.data, "In the beginning"));
    pthread_mutex_unlock(&f.mu);
    return sv_stop(&f);
}

// -- 32 streams at once, each equal to its greedy output alone

typedef struct sv_stream {
    sv_fix *f;
    char body[256];
    lf__buf sse, text;  // the raw events, the text they carry
    int chunks, stop_after;
    bool done;          // saw data: [DONE]
    lf_status st;
    int status;
} sv_stream;

// Pulls the "content"/"text" of every complete event out of s->sse.
static void sv_events(sv_stream *s) {
    char *p = s->sse.data, *e;
    while (p && (e = strstr(p, "\n\n")) != NULL) {
        *e = 0;
        s->done |= !strcmp(p, "data: [DONE]");
        if (!strncmp(p, "data: {", 7)) {
            lf_doc doc;
            if (lf_json_parse(&doc, p + 6, strlen(p + 6), "chunk") == LF_OK) {
                static const char *const t[] = {"choices", "0", "text"}, *const c[] = {"choices", "0", "delta", "content"};
                const lf_node *n = sv_at(doc.root, t, 3);
                if (!n) n = sv_at(doc.root, c, 4);
                if (n && n->type == LF_NODE_STRING) lf__buf_put(&s->text, n->str, n->len), __atomic_add_fetch(&s->chunks, 1, __ATOMIC_RELEASE);
                lf_doc_deinit(&doc);
            }
        }
        p = e + 2;
    }
    size_t rest = p ? strlen(p) : 0;
    if (p) memmove(s->sse.data, p, rest + 1), s->sse.len = rest;
}

static bool sv_on_data(void *user, const void *data, size_t len) {
    sv_stream *s = (sv_stream *)user;
    lf__buf_put(&s->sse, data, len);
    sv_events(s);
    return !(s->stop_after && s->chunks >= s->stop_after);
}

static void *sv_stream_main(void *arg) {
    sv_stream *s = (sv_stream *)arg;
    char url[128];
    snprintf(url, sizeof url, "%s/v1/completions", s->f->base);
    lf_http_fetch_desc d;
    memset(&d, 0, sizeof d);
    d.url = url, d.body = s->body, d.body_len = strlen(s->body), d.content_type = "application/json";
    d.on_data = sv_on_data, d.user = s, d.timeout_ms = 120000;
    lf_http_response r;
    s->st = lf_http_fetch(&d, &r);
    s->status = s->st == LF_OK || s->st == LF_ERR_CANCELLED ? r.status : -1;
    if (s->st == LF_OK) lf_http_response_deinit(&r);
    return NULL;
}

static int test_serve_concurrent_streams(void) {
    enum { N = 32 };
    sv_fix f;
    lf_serve_desc d = sv_desc();
    if (sv_start(&f, &d)) return 1;
    static const char *const seeds[] = {"In the beginning", "And the LORD said", "Blessed are", "For God so",
                                        "Then Jesus", "And it came to pass", "The earth", "Hear, O Israel"};
    static sv_stream s[N];
    char alone[N][1024];
    for (int i = 0; i < N; i++) {  // each prompt alone first, not streamed
        memset(&s[i], 0, sizeof s[i]);
        s[i].f = &f;
        int n = snprintf(s[i].body, sizeof s[i].body, "{\"model\":\"kjv-llama-4m\",\"prompt\":\"%s%.*s\",\"max_tokens\":%d,\"temperature\":0",
                         seeds[i % 8], i / 8, " and", 16 + i % 5);
        lf_http_response r;
        lf_doc doc;
        snprintf(s[i].body + n, sizeof s[i].body - (size_t)n, "}");
        CHECK_OK(sv_fetch(&f, "/v1/completions", s[i].body, NULL, &r));
        CHECK(r.status == 200);
        CHECK_OK(lf_json_parse(&doc, r.body, r.body_len, "completion"));
        static const char *const text[] = {"choices", "0", "text"};
        snprintf(alone[i], sizeof alone[i], "%s", sv_at(doc.root, text, 3)->str);
        lf_doc_deinit(&doc), lf_http_response_deinit(&r);
        snprintf(s[i].body + n, sizeof s[i].body - (size_t)n, ",\"stream\":true}");
    }
    pthread_t th[N];
    for (int i = 0; i < N; i++) CHECK(pthread_create(&th[i], NULL, sv_stream_main, &s[i]) == 0);
    for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < N; i++) {
        if (s[i].st != LF_OK || s[i].status != 200 || !s[i].text.data || strcmp(s[i].text.data, alone[i]) != 0)
            fprintf(stderr, "    stream %d: %s status %d: \"%s\" alone \"%s\"\n", i, lf_status_str(s[i].st), s[i].status,
                    s[i].text.data ? s[i].text.data : "", alone[i]);
        CHECK(s[i].st == LF_OK && s[i].status == 200 && s[i].text.data && !strcmp(s[i].text.data, alone[i]));
        CHECK(s[i].sse.len == 0 || !strcmp(s[i].sse.data, ""));  // ended on an event boundary
        LF_FREE(s[i].sse.data), LF_FREE(s[i].text.data);
    }
    CHECK(sv_metric(&f, "inference_requests_total{model=\"kjv-llama-4m\",status=\"200\"}") == 2 * N);
    CHECK(sv_metric(&f, "active_requests{model=\"kjv-llama-4m\"}") == 0);
    CHECK(sv_metric(&f, "time_to_first_token_seconds_count{model=\"kjv-llama-4m\"}") == 2 * N);
    return sv_stop(&f);
}

// A client that leaves mid-stream frees its slot at once; the server keeps serving.
static int test_serve_disconnect(void) {
    sv_fix f;
    lf_serve_desc d = sv_desc();
    if (sv_start(&f, &d)) return 1;
    sv_stream s;
    memset(&s, 0, sizeof s);
    s.f = &f, s.stop_after = 2;
    snprintf(s.body, sizeof s.body, "{\"model\":\"kjv-llama-4m\",\"prompt\":\"And God said\",\"max_tokens\":200,\"temperature\":0,\"ignore_eos\":true,\"stream\":true}");
    sv_stream_main(&s);
    CHECK(s.st == LF_ERR_CANCELLED && s.chunks >= 2);
    double active = 1;
    for (int i = 0; i < 500 && active != 0; i++) active = sv_metric(&f, "active_requests{model=\"kjv-llama-4m\"}"), usleep(10000);
    CHECK(active == 0);
    CHECK(sv_metric(&f, "inference_requests_total{model=\"kjv-llama-4m\",status=\"499\"}") == 1);
    CHECK(sv_metric(&f, "tokens_generated_total{model=\"kjv-llama-4m\"}") < 200);  // it stopped early
    CHECK(sv_status(&f, "/v1/completions", "{\"model\":\"kjv-llama-4m\",\"prompt\":\"And\",\"max_tokens\":3}", NULL, NULL) == 200);
    LF_FREE(s.sse.data), LF_FREE(s.text.data);
    return sv_stop(&f);
}

// A KV budget of one request's worth and a short queue: the rest get 503 MODEL_OVERLOADED with
// Retry-After, never another 5xx; a request past request_timeout_s gets 504 TIMEOUT.
static int test_serve_overload_and_timeout(void) {
    enum { N = 8 };
    sv_fix f;
    lf_serve_desc d = sv_desc();
    d.engine.max_batch = 4, d.engine.max_queue = 1, d.engine.queue_timeout_s = 0.2, d.engine.max_seq_len = 256;
    lf_model m;  // the budget: one sequence of 256 positions
    CHECK_OK(lf_model_open(&m, &(lf_model_desc){.path = SV_MODEL, .n_threads = 1}));
    d.engine.kv_budget_bytes = lf_kv_block_bytes(&m) * (256 / LF_KV_BLOCK);
    lf_model_close(&m);
    if (sv_start(&f, &d)) return 1;
    static sv_stream s[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        memset(&s[i], 0, sizeof s[i]);
        s[i].f = &f;
        snprintf(s[i].body, sizeof s[i].body, "{\"model\":\"kjv-llama-4m\",\"prompt\":\"And %d\",\"max_tokens\":200,\"ignore_eos\":true,\"stream\":true}", i);
        CHECK(pthread_create(&th[i], NULL, sv_stream_main, &s[i]) == 0);
    }
    int ok = 0, busy = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        ok += s[i].status == 200, busy += s[i].status == 503;
        CHECK(s[i].status == 200 || (s[i].status == 503 && strstr(s[i].sse.data ? s[i].sse.data : "", "MODEL_OVERLOADED")));
        LF_FREE(s[i].sse.data), LF_FREE(s[i].text.data);
    }
    CHECK(ok >= 1 && busy >= 1 && ok + busy == N);
    char code[32];
    CHECK(sv_status(&f, "/v1/completions", "{\"model\":\"kjv-llama-4m\",\"prompt\":\"And\",\"max_tokens\":300}", NULL, code) == 400);
    CHECK(sv_stop(&f) == 0);
    d.request_timeout_s = 0.02, d.engine.kv_budget_bytes = 0;
    if (sv_start(&f, &d)) return 1;
    CHECK(sv_status(&f, "/v1/completions", "{\"model\":\"kjv-llama-4m\",\"prompt\":\"And\",\"max_tokens\":250,\"ignore_eos\":true}", NULL, code) == 504 && !strcmp(code, "TIMEOUT"));
    CHECK(sv_metric(&f, "active_requests{model=\"kjv-llama-4m\"}") == 0);
    return sv_stop(&f);
}

// Keys, rate limits, CORS.
static int test_serve_keys_and_limits(void) {
    sv_fix f;
    lf_serve_desc d = sv_desc();
    const char *keys[] = {SV_KEY, "short"};
    d.api_keys = keys, d.n_api_keys = 2;
    lf_service *bad;
    CHECK_ERR(lf_service_open(&bad, &d), LF_ERR_CONFIG, "API key 2 has 5 characters; at least 32");
    const char *origins[] = {"https://app.example"};
    d.n_api_keys = 1, d.requests_per_min = 3, d.cors_origins = origins, d.n_cors = 1;
    if (sv_start(&f, &d)) return 1;
    const char *body = "{\"model\":\"kjv-llama-4m\",\"prompt\":\"And\",\"max_tokens\":2}";
    char code[32];
    CHECK(sv_status(&f, "/v1/completions", body, NULL, code) == 401 && !strcmp(code, "AUTHENTICATION_FAILED"));
    CHECK(sv_status(&f, "/v1/completions", body, "sk-test-0123456789abcdef0123456789abcdeX", code) == 401);
    CHECK(sv_status(&f, "/v1/models", NULL, NULL, code) == 401);
    CHECK(sv_status(&f, "/health", NULL, NULL, NULL) == 200);      // public
    CHECK(sv_metric(&f, "active_requests{model=\"kjv-llama-4m\"}") == 0);  // public by default
    CHECK(sv_status(&f, "/admin/model", NULL, SV_KEY, NULL) == 200);  // the API key is the admin key
    for (int i = 0; i < 3; i++) CHECK(sv_status(&f, "/v1/completions", body, SV_KEY, NULL) == 200);
    lf_http_response r;
    CHECK_OK(sv_fetch(&f, "/v1/completions", body, SV_KEY, &r));
    const char *retry = lf_http_header_get(r.headers, r.n_headers, "retry-after");
    CHECK(r.status == 429 && strstr(r.body, "RATE_LIMITED") && retry && atoi(retry) >= 1 && atoi(retry) <= 20);
    lf_http_response_deinit(&r);
    // CORS: the allowed origin is echoed, a preflight answered; another origin gets nothing
    char url[128];
    snprintf(url, sizeof url, "%s/v1/chat/completions", f.base);
    lf_http_header h[2] = {{"Origin", "https://app.example"}, {"Access-Control-Request-Method", "POST"}};
    lf_http_fetch_desc fd;
    memset(&fd, 0, sizeof fd);
    fd.url = url, fd.method = "OPTIONS", fd.headers = h, fd.n_headers = 2;
    CHECK_OK(lf_http_fetch(&fd, &r));
    CHECK(r.status == 204 && !strcmp(lf_http_header_get(r.headers, r.n_headers, "access-control-allow-origin"), "https://app.example"));
    CHECK(strstr(lf_http_header_get(r.headers, r.n_headers, "access-control-allow-headers"), "Authorization"));
    lf_http_response_deinit(&r);
    h[0].value = "https://evil.example";
    CHECK_OK(lf_http_fetch(&fd, &r));
    CHECK(!lf_http_header_get(r.headers, r.n_headers, "access-control-allow-origin"));
    lf_http_response_deinit(&r);
    if (sv_stop(&f)) return 1;
    // tokens per minute: prompt + max_tokens are charged at admission; /metrics behind the key
    d.requests_per_min = 0, d.tokens_per_min = 20, d.metrics_auth = true;
    if (sv_start(&f, &d)) return 1;
    const char *twelve = "{\"model\":\"kjv-llama-4m\",\"prompt\":\"And\",\"max_tokens\":12,\"ignore_eos\":true}";
    CHECK(sv_status(&f, "/v1/completions", twelve, SV_KEY, NULL) == 200);  // 2 + 12 of 20
    CHECK(sv_status(&f, "/v1/completions", twelve, SV_KEY, code) == 429 && !strcmp(code, "RATE_LIMITED"));
    CHECK(sv_status(&f, "/metrics", NULL, NULL, code) == 401 && !strcmp(code, "AUTHENTICATION_FAILED"));
    CHECK(sv_status(&f, "/metrics", NULL, SV_KEY, NULL) == 200);
    return sv_stop(&f);
}

// Hostile input: each gets its 4xx in the error shape, and the server goes on serving.
static int test_serve_bad_input(void) {
    static const struct {
        const char *path, *body;
        int status;
        const char *code, *param;
    } cases[] = {
        {"/v1/completions", "{\"model\":\"kjv-llama-4m\",", 400, "INVALID_REQUEST", NULL},
        {"/v1/completions", "[1,2]", 400, "INVALID_REQUEST", NULL},
        {"/v1/completions", "{\"model\":\"kjv-llama-4m\",\"prompt\":\"a\",\"max_tokens\":\"9\"}", 400, "INVALID_REQUEST", "max_tokens"},
        {"/v1/completions", "{\"model\":\"kjv-llama-4m\",\"prompt\":\"a\",\"max_tokens\":0}", 400, "INVALID_REQUEST", "max_tokens"},
        {"/v1/completions", "{\"model\":\"kjv-llama-4m\",\"prompt\":\"a\",\"temperature\":3}", 400, "INVALID_REQUEST", "temperature"},
        {"/v1/completions", "{\"model\":\"kjv-llama-4m\",\"prompt\":\"a\",\"top_p\":0}", 400, "INVALID_REQUEST", "top_p"},
        {"/v1/completions", "{\"model\":\"kjv-llama-4m\",\"prompt\":\"a\",\"stop\":[\"\"]}", 400, "INVALID_REQUEST", "stop"},
        {"/v1/completions", "{\"model\":\"kjv-llama-4m\",\"prompt\":\"a\",\"n\":2}", 400, "INVALID_REQUEST", "n"},
        {"/v1/completions", "{\"model\":\"kjv-llama-4m\",\"prompt\":\"a\",\"echo\":true}", 400, "INVALID_REQUEST", "echo"},
        {"/v1/completions", "{\"model\":\"kjv-llama-4m\",\"prompt\":\"a\",\"frobnicate\":1}", 400, "INVALID_REQUEST", "frobnicate"},
        {"/v1/completions", "{\"model\":\"kjv-llama-4m\",\"prompt\":\"a\",\"logprobs\":2,\"stream\":true}", 400, "INVALID_REQUEST", "logprobs"},
        {"/v1/completions", "{\"model\":\"kjv-llama-4m\",\"prompt\":\"a\",\"stream_options\":{\"include_usage\":true}}", 400, "INVALID_REQUEST", "stream_options"},
        {"/v1/completions", "{\"model\":\"kjv-llama-4m\",\"prompt\":[1,99999999]}", 400, "INVALID_REQUEST", "prompt"},
        {"/v1/completions", "{\"model\":\"kjv-llama-4m\",\"prompt\":\"\"}", 400, "INVALID_REQUEST", "prompt"},
        {"/v1/completions", "{\"model\":\"kjv-llama-4m\",\"prompt\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}", 400, "INVALID_REQUEST", NULL},
        {"/v1/completions", "{\"prompt\":\"a\"}", 400, "INVALID_REQUEST", "model"},
        {"/v1/completions", "{\"model\":\"gpt-4\",\"prompt\":\"a\"}", 404, "MODEL_NOT_FOUND", "model"},
        {"/v1/completions", "{\"model\":\"kjv-llama-4m\",\"prompt\":\"\xc3\x28\"}", 400, "INVALID_REQUEST", NULL},
        {"/v1/chat/completions", "{\"model\":\"kjv-llama-4m\",\"messages\":[]}", 400, "INVALID_REQUEST", "messages"},
        {"/v1/chat/completions", "{\"model\":\"kjv-llama-4m\",\"messages\":[{\"role\":\"wizard\",\"content\":\"a\"}]}", 400, "INVALID_REQUEST", "messages"},
        {"/v1/chat/completions", "{\"model\":\"kjv-llama-4m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}", 400, "INVALID_REQUEST", "messages"},
        {"/v1/chat/completions", "{\"model\":\"kjv-llama-4m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"tools\":[]}", 400, "INVALID_REQUEST", "tools"},
        {"/v1/chat/completions", "{\"model\":\"kjv-llama-4m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"top_logprobs\":2}", 400, "INVALID_REQUEST", "top_logprobs"},
        {"/v1/nothing", NULL, 404, "NOT_FOUND", NULL},
        {"/v1/completions", NULL, 405, "METHOD_NOT_ALLOWED", NULL},
        {"/admin/model", "{\"model\":\"x\"}", 403, "FORBIDDEN", NULL},
    };
    sv_fix f;
    lf_serve_desc d = sv_desc();
    d.http.limits.max_body_bytes = 4096, d.http.limits.max_header_bytes = 2048;
    if (sv_start(&f, &d)) return 1;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        lf_http_response r;
        lf_doc doc;
        CHECK_OK(sv_fetch(&f, cases[i].path, cases[i].body, NULL, &r));
        int ok = r.status == cases[i].status && lf_json_parse(&doc, r.body, r.body_len, "error") == LF_OK;
        if (ok) {
            const lf_node *e = lf_node_get(doc.root, "error"), *c = lf_node_get(e, "code"), *p = lf_node_get(e, "param");
            const lf_node *m = lf_node_get(e, "message"), *t = lf_node_get(e, "type");
            ok = c && !strcmp(c->str, cases[i].code) && m && m->len > 0 && t && t->type == LF_NODE_STRING &&
                 (cases[i].param ? p && p->str && !strcmp(p->str, cases[i].param) : !p || p->type == LF_NODE_NULL);
            lf_doc_deinit(&doc);
        }
        if (!ok) fprintf(stderr, "    case %zu: %s %s -> %d %s\n", i, cases[i].path, cases[i].body ? cases[i].body : "", r.status, r.body);
        lf_http_response_deinit(&r);
        CHECK(ok);
    }
    // past the HTTP limits: the server's own errors carry the same shape
    char *big = (char *)malloc(8192);
    memset(big, 'a', 8191), big[8191] = 0;
    char code[32];
    CHECK(sv_status(&f, "/v1/completions", big, NULL, code) == 413 && !strcmp(code, "INVALID_REQUEST"));
    char url[128];
    snprintf(url, sizeof url, "%s/health", f.base);
    lf_http_header h[1] = {{"X-Big", big + 5000}};
    lf_http_fetch_desc fd;
    memset(&fd, 0, sizeof fd);
    fd.url = url, fd.headers = h, fd.n_headers = 1;
    lf_http_response r;
    CHECK_OK(lf_http_fetch(&fd, &r));
    CHECK(r.status == 431 && strstr(r.body, "\"code\":\"INVALID_REQUEST\""));
    lf_http_response_deinit(&r);
    free(big);
    CHECK(sv_status(&f, "/v1/completions", "{\"model\":\"kjv-llama-4m\",\"prompt\":\"And\",\"max_tokens\":3}", NULL, NULL) == 200);
    CHECK(sv_metric(&f, "inference_requests_total{model=\"kjv-llama-4m\",status=\"200\"}") == 1);
    return sv_stop(&f);
}

// /health is 503 while the first model loads: its config.json is a FIFO the test fills later.
// Then /admin/model swaps in another model while a stream runs on the first: the stream ends
// whole on the old model, new requests go to the new one.
static int test_serve_loading_and_swap(void) {
    char dir[] = "/tmp/lf_serve_XXXXXX", path[256], src[512], cwd[256];
    CHECK(mkdtemp(dir) && getcwd(cwd, sizeof cwd));
    static const char *const files[] = {"model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]), snprintf(src, sizeof src, "%s/" SV_MODEL "/%s", cwd, files[i]);
        if (lf_path_exists(src)) CHECK(symlink(src, path) == 0);
    }
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK(mkfifo(path, 0600) == 0);
    sv_fix f;
    memset(&f, 0, sizeof f);
    pthread_mutex_init(&f.mu, NULL);
    lf_serve_named models[] = {{"chat", "tests/fixtures/models/tiny_chat"}};
    lf_serve_desc d = sv_desc();
    d.model = dir, d.name = "kjv", d.models = models, d.n_models = 1, d.threads = 2, d.access_log = sv_log, d.user = &f;
    d.admin_key = SV_KEY;
    CHECK_OK(lf_service_open(&f.s, &d));
    snprintf(f.base, sizeof f.base, "http://127.0.0.1:%d", lf_service_port(f.s));
    CHECK(pthread_create(&f.th, NULL, sv_main, &f) == 0);
    char code[32];
    CHECK(sv_status(&f, "/health", NULL, NULL, NULL) == 503);
    CHECK(sv_status(&f, "/v1/completions", "{\"model\":\"kjv\",\"prompt\":\"a\"}", NULL, code) == 503 && !strcmp(code, "MODEL_OVERLOADED"));
    char *cfg;
    size_t len;
    CHECK_OK(lf_file_read(SV_MODEL "/config.json", 0, &cfg, &len));
    FILE *fifo = fopen(path, "w");
    CHECK(fifo && fwrite(cfg, 1, len, fifo) == len);
    fclose(fifo), lf_free(cfg);
    for (int i = 0; i < 1000 && sv_status(&f, "/health", NULL, NULL, NULL) != 200; i++) usleep(10000);
    CHECK(sv_status(&f, "/health", NULL, NULL, NULL) == 200);
    // a long stream on the first model, then the swap
    sv_stream s;
    memset(&s, 0, sizeof s);
    s.f = &f;
    snprintf(s.body, sizeof s.body, "{\"model\":\"kjv\",\"prompt\":\"And God said\",\"max_tokens\":120,\"ignore_eos\":true,\"temperature\":0,\"stream\":true}");
    pthread_t th;
    CHECK(pthread_create(&th, NULL, sv_stream_main, &s) == 0);
    for (int i = 0; i < 500 && sv_metric(&f, "active_requests{model=\"kjv\"}") != 1; i++) usleep(2000);
    CHECK(sv_status(&f, "/admin/model", "{\"model\":\"chat\"}", "sk-wrong-key-0123456789abcdef0123456789", code) == 401);
    CHECK(sv_status(&f, "/admin/model", "{\"model\":\"../etc\"}", SV_KEY, code) == 404);
    CHECK(sv_status(&f, "/admin/model", "{\"model\":\"chat\"}", SV_KEY, NULL) == 200);
    CHECK(sv_status(&f, "/v1/completions", "{\"model\":\"chat\",\"prompt\":\"hi\",\"max_tokens\":2}", NULL, NULL) == 200);
    CHECK(sv_status(&f, "/v1/completions", "{\"model\":\"kjv\",\"prompt\":\"hi\",\"max_tokens\":2}", NULL, code) == 404);
    pthread_join(th, NULL);
    CHECK(s.st == LF_OK && s.status == 200 && s.chunks > 0 && s.done);
    CHECK(sv_metric(&f, "tokens_generated_total{model=\"kjv\"}") == 120);  // the old model finished its stream
    LF_FREE(s.sse.data), LF_FREE(s.text.data);
    unlink(path);
    for (size_t i = 0; i < 4; i++) snprintf(path, sizeof path, "%s/%s", dir, files[i]), unlink(path);
    rmdir(dir);
    return sv_stop(&f);
}

// The completion's text, or "" when the answer is not a 200 completion.
static int sv_complete(sv_fix *f, const char *body, char *out, size_t cap) {
    lf_http_response r;
    lf_doc doc;
    static const char *const text[] = {"choices", "0", "text"};
    CHECK_OK(sv_fetch(f, "/v1/completions", body, NULL, &r));
    CHECK(r.status == 200);
    CHECK_OK(lf_json_parse(&doc, r.body, r.body_len, "completion"));
    snprintf(out, cap, "%s", sv_at(doc.root, text, 3)->str);
    lf_doc_deinit(&doc), lf_http_response_deinit(&r);
    return 0;
}

// /admin/model without "model" swaps the adapter of the model served now: the answers become
// those of the merged adapter, then of the base again. Then a stop while a stream runs: the stream
// ends whole within the grace period, and the service stops accepting at once.
static int test_serve_adapter_swap_and_stop(void) {
    char dir[] = "/tmp/lf_adapter_XXXXXX";
    CHECK(mkdtemp(dir));
    {  // an adapter whose B is not zero, so that it changes the answers
        lf_model m;
        CHECK_OK(lf_model_open(&m, &(lf_model_desc){.path = SV_MODEL, .n_threads = 1}));
        lf_lora_desc ld = lf_lora_desc_default();
        ld.r = 4, ld.target_modules = "q_proj,v_proj,down_proj", ld.seed = 7;
        CHECK_OK(lf_lora_attach(&m, &ld));
        for (int l = 0; l < m.cfg.L; l++)
            for (int p = 0; p < LF_PROJ_COUNT; p++)
                if (m.layers[l].lora[p])
                    for (int64_t i = 0; i < 4 * m.layers[l].w[p].shape[0]; i++) m.layers[l].lora[p]->B[i] = 0.05f * (float)((i % 7) - 3);
        CHECK_OK(lf_lora_save(&m, dir));
        lf_model_close(&m);
    }
    const char *body = "{\"model\":\"kjv\",\"prompt\":\"In the beginning\",\"max_tokens\":12,\"temperature\":0}";
    char base[512], merged[512], got[512];
    if (sv_alone(NULL, "In the beginning", 12, base, sizeof base) || sv_alone(dir, "In the beginning", 12, merged, sizeof merged)) return 1;
    CHECK(strcmp(base, merged) != 0);
    sv_fix f;
    lf_serve_named adapters[] = {{"kind", dir}};
    lf_serve_desc d = sv_desc();
    d.name = "kjv", d.adapters = adapters, d.n_adapters = 1, d.admin_key = SV_KEY;
    if (sv_start(&f, &d)) return 1;
    if (sv_complete(&f, body, got, sizeof got)) return 1;
    CHECK(!strcmp(got, base));
    char code[32];
    CHECK(sv_status(&f, "/admin/model", "{\"adapter\":\"cruel\"}", SV_KEY, code) == 404 && !strcmp(code, "MODEL_NOT_FOUND"));
    CHECK(sv_status(&f, "/admin/model", "{\"adapter\":\"kind\"}", SV_KEY, NULL) == 200);
    lf_http_response r;
    CHECK_OK(sv_fetch(&f, "/admin/model", NULL, SV_KEY, &r));
    CHECK(r.status == 200 && strstr(r.body, "\"model\":\"kjv\",\"adapter\":\"kind\""));
    lf_http_response_deinit(&r);
    if (sv_complete(&f, body, got, sizeof got)) return 1;
    CHECK(!strcmp(got, merged));
    CHECK(sv_status(&f, "/admin/model", "{\"adapter\":null}", SV_KEY, NULL) == 200);
    if (sv_complete(&f, body, got, sizeof got)) return 1;
    CHECK(!strcmp(got, base));
    // a stop while a stream runs
    sv_stream st;
    memset(&st, 0, sizeof st);
    st.f = &f;
    snprintf(st.body, sizeof st.body, "{\"model\":\"kjv\",\"prompt\":\"And God said\",\"max_tokens\":150,\"ignore_eos\":true,\"temperature\":0,\"stream\":true}");
    pthread_t th;
    CHECK(pthread_create(&th, NULL, sv_stream_main, &st) == 0);
    for (int i = 0; i < 500 && __atomic_load_n(&st.chunks, __ATOMIC_ACQUIRE) < 2; i++) usleep(2000);
    lf_service_stop(f.s);
    bool refused = false;  // the listening socket closes at once (within 2 s on a slow machine)
    for (int i = 0; i < 200 && !refused; i++) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)lf_service_port(f.s))};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        refused = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno == ECONNREFUSED;
        if (fd >= 0) close(fd);
        if (!refused) usleep(10000);
    }
    CHECK(refused);
    pthread_join(th, NULL);
    CHECK(st.st == LF_OK && st.status == 200 && st.done);
    LF_FREE(st.sse.data), LF_FREE(st.text.data);
    char path[512];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir), unlink(path);
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir), unlink(path);
    rmdir(dir);
    return sv_stop(&f);
}

static int test_serve_config(void) {
    lf_doc doc;
    lf_serve_config c;
    CHECK_OK(lf_config_load(&doc, "configs/serve.yaml", NULL, 0));
    CHECK_OK(lf_serve_config_read(&c, &doc));
    CHECK(!strcmp(c.desc.model, "models/kjv-llama-4m") && c.desc.http.port == 8000 && c.desc.engine.max_batch == 16);
    CHECK(c.desc.shutdown_grace_ms == 30000 && c.desc.gen && c.desc.gen->max_tokens == 256 && c.desc.n_cors == 0);
    lf_serve_config_deinit(&c), lf_doc_deinit(&doc);
    const char *ov[] = {"server.rate_limits=3"};
    CHECK_OK(lf_config_load(&doc, "configs/serve.yaml", ov, 1));
    CHECK_ERR(lf_serve_config_read(&c, &doc), LF_ERR_CONFIG, "server.rate_limits: unknown key");
    lf_serve_config_deinit(&c), lf_doc_deinit(&doc);
    // two models and an adapter: each list holds its own names
    char yf[] = "/tmp/lf_serve_XXXXXX";
    int yd = mkstemp(yf);
    const char *yaml = "model:\n  name: m0\nserver:\n  models:\n    a: dir-a\n    b: dir-b\n  adapters:\n    k: dir-k\n";
    CHECK(yd >= 0 && write(yd, yaml, strlen(yaml)) == (ssize_t)strlen(yaml));
    close(yd);
    CHECK_OK(lf_config_load(&doc, yf, NULL, 0));
    CHECK_OK(lf_serve_config_read(&c, &doc));
    CHECK(c.desc.n_models == 2 && !strcmp(c.desc.models[0].name, "a") && !strcmp(c.desc.models[1].path, "dir-b"));
    CHECK(c.desc.n_adapters == 1 && !strcmp(c.desc.adapters[0].name, "k") && !strcmp(c.desc.adapters[0].path, "dir-k"));
    lf_serve_config_deinit(&c), lf_doc_deinit(&doc);
    unlink(yf);
    char kf[] = "/tmp/lf_keys_XXXXXX";
    int fd = mkstemp(kf);
    CHECK(fd >= 0 && write(fd, "# keys\n" SV_KEY "\n\ntoo-short\n", 7 + 40 + 2 + 10) == 59);
    close(fd);
    char o1[300];
    snprintf(o1, sizeof o1, "server.api_key_file=%s", kf);
    const char *ov2[] = {o1};
    CHECK_OK(lf_config_load(&doc, "configs/serve.yaml", ov2, 1));
    CHECK_ERR(lf_serve_config_read(&c, &doc), LF_ERR_CONFIG, ":4: the key has 9 characters");
    lf_serve_config_deinit(&c), lf_doc_deinit(&doc);
    unlink(kf);
    return 0;
}

static const lf_test tests_serve[] = {
    {"serve/endpoints", test_serve_endpoints},
    {"serve/concurrent_streams", test_serve_concurrent_streams},
    {"serve/disconnect", test_serve_disconnect},
    {"serve/overload_and_timeout", test_serve_overload_and_timeout},
    {"serve/keys_and_limits", test_serve_keys_and_limits},
    {"serve/bad_input", test_serve_bad_input},
    {"serve/loading_and_swap", test_serve_loading_and_swap},
    {"serve/adapter_swap_and_stop", test_serve_adapter_swap_and_stop},
    {"serve/config", test_serve_config},
};
#else
static int test_serve_no_threads(void) { SKIP("built with LF_NO_THREADS: the service needs threads"); }
static const lf_test tests_serve[] = {{"serve/no_threads", test_serve_no_threads}};
#endif
