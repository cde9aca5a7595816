// tests/test_generate.c — sampling (against exact expected distributions) and the generation
// loop (greedy ids equal transformers' generate on tests/fixtures/models/tiny_chat).

// Draws n samples and compares frequencies with the expected probabilities.
static int sample_freqs(const lf_sampler *s, const float *logits0, int V, const double *expect, int n) {
    lf_rng rng;
    lf_rng_seed(&rng, s->seed);
    int counts[16] = {0};
    float logits[16];
    int32_t work[16];
    for (int i = 0; i < n; i++) {
        memcpy(logits, logits0, sizeof(float) * (size_t)V);
        int32_t t = lf_sample(s, logits, V, NULL, 0, 0, &rng, work);
        CHECK(t >= 0 && t < V);
        counts[t]++;
    }
    for (int v = 0; v < V; v++) {
        double f = (double)counts[v] / n;
        if (fabs(f - expect[v]) > 0.012) {
            fprintf(stderr, "    token %d: frequency %.4f, expected %.4f\n", v, f, expect[v]);
            return 1;
        }
    }
    return 0;
}

static int test_sampling_distributions(void) {
    const float lg[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
    lf_sampler s = {1.0f, 0, 1.0f, 0.0f, 1.0f, 0, 0, 11};
    double plain[4] = {0.5, 0.3, 0.15, 0.05};
    if (sample_freqs(&s, lg, 4, plain, 40000)) return 1;
    s.top_k = 2;  // renormalized over the best two
    double topk[4] = {0.5 / 0.8, 0.3 / 0.8, 0, 0};
    if (sample_freqs(&s, lg, 4, topk, 40000)) return 1;
    s.top_k = 0, s.top_p = 0.85f;  // mass above token 2 is 0.8 < 0.85: kept; above token 3: 0.95
    double topp[4] = {0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0};
    if (sample_freqs(&s, lg, 4, topp, 40000)) return 1;
    s.top_p = 1.0f, s.min_p = 0.5f;  // below 0.25 dropped
    double minp[4] = {0.5 / 0.8, 0.3 / 0.8, 0, 0};
    if (sample_freqs(&s, lg, 4, minp, 40000)) return 1;
    s.min_p = 0, s.temperature = 2.0f;  // p ~ sqrt(p0)
    double z = sqrt(0.5) + sqrt(0.3) + sqrt(0.15) + sqrt(0.05);
    double temp[4] = {sqrt(0.5) / z, sqrt(0.3) / z, sqrt(0.15) / z, sqrt(0.05) / z};
    if (sample_freqs(&s, lg, 4, temp, 40000)) return 1;
    return 0;
}

static int test_sampling_greedy_and_penalty(void) {
    lf_rng rng;
    lf_rng_seed(&rng, 0);
    int32_t work[8];
    lf_sampler greedy = {0.0f, 0, 1.0f, 0.0f, 1.0f, 0, 0, 0};
    float a[5] = {1, 3, 3, -1, 2};
    CHECK(lf_sample(&greedy, a, 5, NULL, 0, 0, &rng, work) == 1);  // ties: the lower id
    // transformers' repetition penalty: positive logits divided, negative multiplied, once per id
    lf_sampler pen = {0.0f, 0, 1.0f, 0.0f, 2.0f, 0, 0, 0};
    float b[3] = {2, 1, -1};
    int32_t hist[4] = {0, 2, 0, 0};
    CHECK(lf_sample(&pen, b, 3, hist, 4, 0, &rng, work) == 0);
    CHECK(b[0] == 1.0f && b[1] == 1.0f && b[2] == -2.0f);
    // OpenAI's presence and frequency penalties (vLLM: over generated ids only): logit -=
    // presence * [count > 0] + frequency * count; hist[0] is the prompt here
    lf_sampler pf = {0.0f, 0, 1.0f, 0.0f, 1.0f, 0.5f, 0.25f, 0};
    float e[3] = {2, 1, -1};
    CHECK(lf_sample(&pf, e, 3, hist, 4, 1, &rng, work) == 0);
    CHECK(e[0] == 2.0f - 0.5f - 0.5f && e[1] == 1.0f && e[2] == -1.0f - 0.5f - 0.25f);
    lf_sampler k1 = {0.9f, 1, 1.0f, 0.0f, 1.0f, 0, 0, 0};
    float c[5] = {0, 0.5f, 4, 4, 1};
    for (int i = 0; i < 100; i++) {
        float d[5];
        memcpy(d, c, sizeof d);
        CHECK(lf_sample(&k1, d, 5, NULL, 0, 0, &rng, work) == 2);
    }
    return 0;
}


// -- generation against transformers' greedy generate (tests/ref/make_tiny_chat.py)

typedef struct gen_capture {
    lf__buf text;
    int calls;
} gen_capture;
static bool gen_capture_piece(void *user, int32_t id, const char *text, size_t len) {
    (void)id;
    gen_capture *c = (gen_capture *)user;
    lf__buf_put(&c->text, text, len);
    c->calls++;
    return true;
}

static int gen_ids_equal(const lf_node *arr, const int32_t *ids, int n) {
    if (!arr || arr->type != LF_NODE_ARRAY || arr->n != n) return 0;
    for (int i = 0; i < n; i++)
        if ((int32_t)arr->kids[i].num != ids[i]) return 0;
    return 1;
}

#define LF_TINY_CHAT "tests/fixtures/models/tiny_chat"

static int test_generate_greedy_parity(void) {
    lf_doc ref;
    CHECK_OK(lf_json_load(&ref, LF_TINY_CHAT "/gen_ref.json"));
    lf_tokenizer tok;
    CHECK_OK(lf_tok_open(&tok, LF_TINY_CHAT));
    lf_model m;
    lf_model_desc md = {.path = LF_TINY_CHAT, .n_threads = 2, .max_tokens = 16};  // prompts prefill in chunks
    CHECK_OK(lf_model_open(&m, &md));
    lf_kv kv;
    CHECK_OK(lf_kv_init(&kv, &m, 2, 0));
    lf_gen_desc g = lf_gen_desc_default();
    CHECK_OK(lf_gen_desc_load(&g, LF_TINY_CHAT));
    CHECK(g.sampling.temperature == 0 && g.n_eos == 1 && g.eos_ids[0] == 383);  // do_sample false
    g.max_tokens = 24;
    const lf_node *cases = lf_node_get(ref.root, "cases");
    CHECK(cases && cases->n >= 6);
    for (int i = 0; i < cases->n; i++) {
        const lf_node *c = &cases->kids[i];
        const char *prompt = lf_node_get(c, "prompt")->str;
        int32_t *ids;
        size_t n;
        CHECK_OK(lf_tok_encode(&tok, prompt, strlen(prompt), false, &ids, &n));
        CHECK(gen_ids_equal(lf_node_get(c, "prompt_ids"), ids, (int)n));
        gen_capture cap = {LF__ZERO, 0};
        g.on_token = gen_capture_piece, g.user = &cap;
        lf_gen_result res;
        CHECK_OK(lf_generate(&m, &kv, i % 2, &tok, ids, (int)n, &g, &res));
        if (!gen_ids_equal(lf_node_get(c, "greedy_ids"), res.ids, res.n_gen)) {
            fprintf(stderr, "    case %d (%s): generated ids differ from transformers\n", i, prompt);
            return 1;
        }
        const char *expect = lf_node_get(c, "greedy_text")->str;
        CHECK(strcmp(res.text, expect) == 0);
        CHECK(cap.text.len == res.len && (res.len == 0 || memcmp(cap.text.data, res.text, res.len) == 0));
        bool eos = lf_node_get(c, "stopped_at_eos")->num != 0;
        CHECK(res.finish == (eos ? LF_FINISH_STOP : LF_FINISH_LENGTH));
        lf_free(cap.text.data);
        lf_gen_result_deinit(&res);
        lf_free(ids);
    }
    lf_kv_deinit(&kv);
    lf_model_close(&m);
    lf_tok_close(&tok);
    lf_doc_deinit(&ref);
    return 0;
}

// tiny_chat's tokenizer, model (one thread) and KV cache, with its generation_config.json.
typedef struct gen_env {
    lf_tokenizer tok;
    lf_model m;
    lf_kv kv;
    lf_gen_desc g;
} gen_env;
static int gen_env_open(gen_env *e, int max_seq_len) {
    lf_model_desc md = {.path = LF_TINY_CHAT, .n_threads = 1, .max_seq_len = max_seq_len};
    CHECK_OK(lf_tok_open(&e->tok, LF_TINY_CHAT));
    CHECK_OK(lf_model_open(&e->m, &md));
    CHECK_OK(lf_kv_init(&e->kv, &e->m, 1, 0));
    e->g = lf_gen_desc_default();
    CHECK_OK(lf_gen_desc_load(&e->g, LF_TINY_CHAT));
    e->g.max_tokens = 24;
    return 0;
}
static void gen_env_close(gen_env *e) {
    lf_kv_deinit(&e->kv);
    lf_model_close(&e->m);
    lf_tok_close(&e->tok);
}

static bool gen_cancel_after_5(void *user) { return ++*(int *)user > 5; }

// Stop strings end generation before them and never reach the callback; cancellation returns
// LF_ERR_CANCELLED with what was made so far; a too-long prompt is refused.
static int test_generate_stop_and_cancel(void) {
    gen_env e;
    if (gen_env_open(&e, 40)) return 1;
    lf_gen_desc g = e.g;
    const char *stops[2] = {"never-appears", " said"};
    g.stop = stops, g.n_stop = 2;
    gen_capture cap = {LF__ZERO, 0};
    g.on_token = gen_capture_piece, g.user = &cap;
    int32_t *ids;
    size_t n;
    CHECK_OK(lf_tok_encode(&e.tok, "The cat", 7, false, &ids, &n));
    lf_gen_result res;
    CHECK_OK(lf_generate(&e.m, &e.kv, 0, &e.tok, ids, (int)n, &g, &res));
    // transformers' greedy text is "\xef\xbf\xbdJ...\xef\xbf\xbd said to...": cut before " said"
    CHECK(res.finish == LF_FINISH_STOP && strstr(res.text, "said") == NULL && res.len > 0);
    CHECK(cap.text.len == res.len && memcmp(cap.text.data, res.text, res.len) == 0);
    lf_gen_result_deinit(&res);
    lf_free(cap.text.data);
    int calls = 0;
    g.n_stop = 0, g.on_token = NULL, g.should_stop = gen_cancel_after_5, g.user = &calls;
    CHECK_ERR(lf_generate(&e.m, &e.kv, 0, &e.tok, ids, (int)n, &g, &res), LF_ERR_CANCELLED, "cancelled after 5 tokens");
    CHECK(res.n_gen == 5 && res.finish == LF_FINISH_CANCELLED);
    lf_gen_result_deinit(&res);
    g.should_stop = NULL;
    g.max_tokens = 100;  // the context (40) ends it first
    CHECK_OK(lf_generate(&e.m, &e.kv, 0, &e.tok, ids, (int)n, &g, &res));
    CHECK(res.finish == LF_FINISH_LENGTH || res.finish == LF_FINISH_STOP);
    CHECK(res.n_prompt + res.n_gen <= 40);
    lf_gen_result_deinit(&res);
    int32_t big[40] = {0};
    CHECK_ERR(lf_generate(&e.m, &e.kv, 0, &e.tok, big, 40, &g, &res), LF_ERR_CAPACITY, "does not fit the context of 40");
    lf_free(ids);
    gen_env_close(&e);
    return 0;
}

static bool gen_stop_first(void *user, int32_t id, const char *text, size_t len) {
    (void)id, (void)text, (void)len;
    return ++*(int *)user > 1 ? true : false;  // false at once: stop
}

// The leftmost stop string wins whatever the list order; a callback returning false is the
// last callback; NaN logits do not make the sampler read garbage.
static int test_generate_stop_edge_cases(void) {
    gen_env e;
    if (gen_env_open(&e, 64)) return 1;
    lf_gen_desc g = e.g;
    int32_t *ids;
    size_t n;
    CHECK_OK(lf_tok_encode(&e.tok, "The cat", 7, false, &ids, &n));
    const char *stops[2] = {"id", "sa"};  // " said": "sa" comes first in the text
    g.stop = stops, g.n_stop = 2;
    lf_gen_result res;
    CHECK_OK(lf_generate(&e.m, &e.kv, 0, &e.tok, ids, (int)n, &g, &res));
    CHECK(res.finish == LF_FINISH_STOP && !strstr(res.text, "sa") && !strstr(res.text, "id"));
    lf_gen_result_deinit(&res);
    int calls = 0;
    g.n_stop = 0, g.on_token = gen_stop_first, g.user = &calls;
    CHECK_OK(lf_generate(&e.m, &e.kv, 0, &e.tok, ids, (int)n, &g, &res));
    CHECK(calls == 1 && res.finish == LF_FINISH_STOP);
    lf_gen_result_deinit(&res);
    float nan_logits[4] = {NAN, NAN, NAN, NAN};
    int32_t work[4] = {12345, 12345, 12345, 12345};
    lf_rng rng;
    lf_rng_seed(&rng, 1);
    lf_sampler smp = {0.7f, 0, 0.9f, 0.0f, 1.0f, 0, 0, 1};
    int32_t t = lf_sample(&smp, nan_logits, 4, NULL, 0, 0, &rng, work);
    CHECK(t >= 0 && t < 4);
    // a KV cache made for a longer context than this model instance supports is refused
    lf_model m2;
    lf_model_desc md2 = {.path = LF_TINY_CHAT, .n_threads = 1, .max_seq_len = 16};
    CHECK_OK(lf_model_open(&m2, &md2));
    int32_t pos = 20;
    lf_batch b = {1, ids, &pos, NULL, NULL, NULL};
    float *logits = (float *)malloc(384 * sizeof(float));
    e.kv.len[0] = 20;
    CHECK_ERR(lf_model_forward(&m2, &e.kv, &b, logits), LF_ERR_ARG, "KV cache made for another model");
    free(logits);
    lf_model_close(&m2);
    lf_free(ids);
    gen_env_close(&e);
    return 0;
}

// configs/generation.yaml holds the product's defaults; bad sections name the field.
static int test_generation_config(void) {
    lf_doc d;
    CHECK_OK(lf_config_load(&d, "configs/generation.yaml", NULL, 0));
    lf_gen_desc g, def = lf_gen_desc_default();
    memset(&g, 0, sizeof g);
    CHECK_OK(lf_gen_desc_from_config(&g, &d));
    CHECK(g.max_tokens == def.max_tokens && g.sampling.temperature == def.sampling.temperature);
    CHECK(g.sampling.top_k == def.sampling.top_k && g.sampling.top_p == def.sampling.top_p && g.n_stop == 0);
    lf_doc_deinit(&d);
    const char *ov[] = {"generation.stop=[\"END\", \"\\n\\n\"]", "generation.temperature=0"};
    CHECK_OK(lf_config_load(&d, "configs/generation.yaml", ov, 2));
    CHECK_OK(lf_gen_desc_from_config(&g, &d));
    CHECK(g.sampling.temperature == 0 && g.n_stop == 2 && strcmp(g.stop[0], "END") == 0 && strcmp(g.stop[1], "\n\n") == 0);
    lf_gen_desc copy = g;  // the stop pointers live in the doc, not in the desc
    CHECK(strcmp(copy.stop[1], "\n\n") == 0);
    lf_doc_deinit(&d);
    static const struct {
        const char *ov, *msg;
    } bad[] = {
        {"generation.tempreature=1", "generation.tempreature: unknown key (did you mean temperature?)"},
        {"generation.top_p=0", "field 'top_p' must be in (0, 1]"},
        {"generation.max_tokens=-1", "field 'max_tokens' must be in"},
        {"generation.stop=END", "field 'stop' must be a list of strings"},
        {"generation.temperature=hot", "field 'temperature' must be a number, got a string"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK_OK(lf_config_load(&d, NULL, &bad[i].ov, 1));
        CHECK_ERR(lf_gen_desc_from_config(&g, &d), LF_ERR_CONFIG, bad[i].msg);
        lf_doc_deinit(&d);
    }
    return 0;
}

// -- allocation failures: every LF_MALLOC/LF_REALLOC of a whole session (tokenizer, model, KV
// cache, encode, chat template, generation) made to fail in turn gives LF_ERR_NOMEM, and
// closing everything leaves no block behind.

static lf_status gen_session(const void *ctx) {
    (void)ctx;
    lf_tokenizer tok;
    lf_model m;
    lf_kv kv;
    lf_gen_result res;
    memset(&tok, 0, sizeof tok), memset(&m, 0, sizeof m), memset(&kv, 0, sizeof kv), memset(&res, 0, sizeof res);
    int32_t *ids = NULL;
    size_t n = 0, cl = 0;
    char *chat = NULL;
    lf_model_desc md = {.path = LF_TINY_CHAT, .n_threads = 2, .max_tokens = 8, .max_seq_len = 32};
    lf_gen_desc g = lf_gen_desc_default();
    g.max_tokens = 4;
    const char *stop[1] = {"zz"};
    g.stop = stop, g.n_stop = 1;
    lf_chat_msg msg = {.role = "user", .content = "Once upon a time"};
    lf_status s = lf_tok_open(&tok, LF_TINY_CHAT);
    if (s == LF_OK) s = lf_model_open(&m, &md);
    if (s == LF_OK) s = lf_kv_init(&kv, &m, 1, 0);
    if (s == LF_OK) s = lf_chat_render(&tok, LF_CHAT_DEFAULT, &msg, 1, true, &chat, &cl);
    if (s == LF_OK) s = lf_tok_encode(&tok, chat, cl, false, &ids, &n);
    if (s == LF_OK) s = lf_generate(&m, &kv, 0, &tok, ids, (int)n, &g, &res);
    lf_gen_result_deinit(&res);
    lf_free(ids), lf_free(chat);
    lf_kv_deinit(&kv);
    lf_model_close(&m);
    lf_tok_close(&tok);
    return s;
}

static int test_allocation_failures(void) { return lf_test_each_allocation_fails(gen_session, NULL); }

static const lf_test tests_generate[] = {
    {"generate/allocation_failures", test_allocation_failures},
    {"generate/greedy_parity_transformers", test_generate_greedy_parity},
    {"generate/stop_strings_and_cancel", test_generate_stop_and_cancel},
    {"generate/stop_edge_cases", test_generate_stop_edge_cases},
    {"generate/generation_config", test_generation_config},
    {"generate/sampling_distributions", test_sampling_distributions},
    {"generate/sampling_greedy_and_penalty", test_sampling_greedy_and_penalty},
};
