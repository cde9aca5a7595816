// tests/test_engine.c — the serving engine (section 12.6): batch invariance, the prefix cache,
// overload, cancellation, and an engine thread fed from another thread.

#define EN_MODEL "models/kjv-llama-4m"
enum { EN_N = 16, EN_MAX = 24 };

typedef struct en_out {
    lf_status st;
    int n, done;
    int32_t ids[256];
    float lp[256], top[256 * 3];  // each token's log-probability, the 3 best
    lf_finish finish;
    int streamed, cancel_after;  // tokens seen by on_token; cancel from it after that many
    lf_engine *e;
    uint64_t id;
} en_out;

static void en_done(void *user, uint64_t id, lf_status st, const lf_gen_result *res) {
    en_out *o = (en_out *)user;
    (void)id;
    o->st = st, o->done++, o->finish = res->finish, o->n = LF__MIN(res->n_gen, 256);
    if (res->ids) memcpy(o->ids, res->ids, (size_t)o->n * sizeof(int32_t));
    if (res->logprobs) memcpy(o->lp, res->logprobs, (size_t)o->n * sizeof(float));
    if (res->top_logprobs) memcpy(o->top, res->top_logprobs, (size_t)o->n * 3 * sizeof(float));
}

static bool en_token(void *user, int32_t id, const char *text, size_t len) {
    en_out *o = (en_out *)user;
    (void)id, (void)text, (void)len;
    if (++o->streamed == o->cancel_after) lf_engine_cancel(o->e, o->id);
    return true;
}

typedef struct en_fix {
    lf_model m;
    lf_tokenizer tok;
    int32_t *ids[EN_N];
    int n[EN_N];
} en_fix;

// The shipped model and 16 prompts of 5 to 90 tokens from its held-out text.
static int en_open(en_fix *f) {
    char *text;
    size_t len;
    CHECK_OK(lf_model_open(&f->m, &(lf_model_desc){.path = EN_MODEL, .n_threads = 2, .max_tokens = 128}));
    CHECK_OK(lf_tok_open(&f->tok, EN_MODEL));
    CHECK_OK(lf_file_read("data/kjv/valid.txt", 0, &text, &len));
    for (int i = 0; i < EN_N; i++) {
        size_t n;
        CHECK_OK(lf_tok_encode(&f->tok, text + 4000 * i, 600, false, &f->ids[i], &n));
        f->n[i] = 5 + (i * 37) % 86;
        CHECK((int)n >= f->n[i]);
    }
    lf_free(text);
    return 0;
}
static void en_close(en_fix *f) {
    for (int i = 0; i < EN_N; i++) lf_free(f->ids[i]);
    lf_tok_close(&f->tok), lf_model_close(&f->m);
}

static lf_engine_req en_req(en_fix *f, int i, en_out *o, bool sample) {
    lf_engine_req r;
    memset(&r, 0, sizeof r);
    r.prompt = f->ids[i], r.n_prompt = f->n[i];
    r.gen = lf_gen_desc_default();
    r.gen.max_tokens = EN_MAX, r.gen.ignore_eos = true;
    if (!sample) r.gen.sampling.temperature = 0;
    r.gen.sampling.seed = lf_gen_seed(7, (uint64_t)i);
    r.gen.logprobs = true, r.gen.top_logprobs = 3;
    r.on_done = en_done, r.user = o;
    return r;
}

static int en_drain(lf_engine *e) {
    for (bool busy = true; busy;) CHECK_OK(lf_engine_step(e, &busy));
    return 0;
}

// Each request's tokens and their log-probabilities, greedy and sampled, are the same bits alone,
// beside 15 others (so from 8 decoding rows on, where lf_model_forward's kernels change), with
// prompts arriving mid-run and chunked into 16-token pieces, and with the prefix cache off; greedy
// ones equal lf_generate's. (With the kernels chosen by row count instead, log-probabilities
// differ in the last bits: the comparison is bit for bit because it can fail.)
static int test_engine_batch_invariance(void) {
    static en_fix f;
    static en_out alone[EN_N], crowd[EN_N], late[EN_N];
    CHECK(en_open(&f) == 0);
    lf_engine *e;
    uint64_t id;
    CHECK_OK(lf_engine_create(&e, &(lf_engine_desc){.model = &f.m, .tok = &f.tok}));
    for (int i = 0; i < EN_N; i++) {
        lf_engine_req r = en_req(&f, i, &alone[i], i % 2);
        CHECK_OK(lf_engine_submit(e, &r, &id));
        CHECK(en_drain(e) == 0);
        CHECK(alone[i].done == 1 && alone[i].st == LF_OK && alone[i].n == EN_MAX);
        for (int t = 0; t < EN_MAX; t++)  // a greedy token is the most likely one; all are <= 0, sorted
            CHECK(alone[i].lp[t] <= 0 && alone[i].top[3 * t] >= alone[i].top[3 * t + 1] &&
                  alone[i].top[3 * t + 1] >= alone[i].top[3 * t + 2] && (i % 2 || alone[i].lp[t] == alone[i].top[3 * t]));
    }
    lf_engine_destroy(e);
    for (int run = 0; run < 2; run++) {
        en_out *o = run ? late : crowd;
        lf_engine_desc d = {.model = &f.m, .tok = &f.tok, .prefill_chunk = run ? 16 : 0, .no_prefix_cache = run == 1};
        CHECK_OK(lf_engine_create(&e, &d));
        for (int i = 0; i < EN_N; i++) {
            lf_engine_req r = en_req(&f, i, &o[i], i % 2);
            CHECK_OK(lf_engine_submit(e, &r, &id));
            for (int k = 0; run && k < 3; k++) {
                bool busy;
                CHECK_OK(lf_engine_step(e, &busy));
            }
        }
        CHECK(en_drain(e) == 0);
        lf_engine_stats st;
        lf_engine_get_stats(e, &st);
        CHECK(st.running == 0 && st.waiting == 0 && st.kv_blocks_used == 0 && st.generated_tokens == EN_N * EN_MAX);
        lf_engine_destroy(e);
        for (int i = 0; i < EN_N; i++) {
            size_t nb = (size_t)alone[i].n * 4;
            bool same = o[i].n == alone[i].n && !memcmp(o[i].ids, alone[i].ids, nb) && !memcmp(o[i].lp, alone[i].lp, nb) &&
                        !memcmp(o[i].top, alone[i].top, 3 * nb);
            if (!same) fprintf(stderr, "    run %d, request %d differs from its run alone\n", run, i);
            CHECK(o[i].done == 1 && o[i].st == LF_OK && same);
        }
    }
    lf_kv kv;
    CHECK_OK(lf_kv_init(&kv, &f.m, 1, 0));
    for (int i = 0; i < EN_N; i += 2) {
        if (f.n[i] < 8) continue;  // lf_generate prefills fewer rows with the decode kernel
        lf_gen_result res;
        lf_engine_req r = en_req(&f, i, NULL, false);
        CHECK_OK(lf_generate(&f.m, &kv, 0, &f.tok, f.ids[i], f.n[i], &r.gen, &res));
        CHECK(res.n_gen == EN_MAX && !memcmp(res.ids, alone[i].ids, EN_MAX * 4));
        lf_gen_result_deinit(&res);
    }
    lf_kv_deinit(&kv);
    en_close(&f);
    return 0;
}

// A prompt whose first blocks another request computed maps them from the cache (its
// cached_prompt_tokens), and generates what it generates with the cache off.
static int test_engine_prefix_cache(void) {
    static en_fix f;
    CHECK(en_open(&f) == 0);
    int32_t a[60], b[60];
    memcpy(a, f.ids[3], sizeof a), memcpy(b, f.ids[3], sizeof b);
    for (int i = 40; i < 60; i++) b[i] = f.ids[5][i];  // the same first 40 tokens: 2 whole blocks
    en_out oa, ob, ref;
    memset(&oa, 0, sizeof oa), memset(&ob, 0, sizeof ob), memset(&ref, 0, sizeof ref);
    for (int run = 0; run < 2; run++) {
        lf_engine *e;
        uint64_t id;
        CHECK_OK(lf_engine_create(&e, &(lf_engine_desc){.model = &f.m, .tok = &f.tok, .no_prefix_cache = run == 1}));
        lf_engine_req r = en_req(&f, 0, run ? &ref : &oa, false);
        r.prompt = run ? b : a, r.n_prompt = 60;
        CHECK_OK(lf_engine_submit(e, &r, &id));
        CHECK(en_drain(e) == 0);
        lf_engine_stats st;
        if (!run) {
            lf_engine_get_stats(e, &st);
            CHECK(st.kv_blocks_cached == 3 && st.cached_prompt_tokens == 0);  // 48 of a's 60 tokens
            r.prompt = b, r.user = &ob;
            CHECK_OK(lf_engine_submit(e, &r, &id));
            CHECK(en_drain(e) == 0);
        }
        lf_engine_get_stats(e, &st);
        CHECK(st.cached_prompt_tokens == (run ? 0 : 32) && st.kv_blocks_used == 0);
        lf_engine_destroy(e);
    }
    CHECK(ob.st == LF_OK && ref.st == LF_OK && ob.n == EN_MAX && !memcmp(ob.ids, ref.ids, EN_MAX * 4));
    en_close(&f);
    return 0;
}

// A KV budget for one request at a time: the next waits, the queue holds 2 and refuses the
// rest, a wait past queue_timeout_s ends with LF_ERR_BUSY; a request larger than the whole budget
// is refused at once; a cancelled request ends at once and gives its blocks back.
static int test_engine_overload_and_cancel(void) {
    static en_fix f;
    CHECK(en_open(&f) == 0);
    lf_engine *e;
    uint64_t id;
    size_t blk = lf_kv_block_bytes(&f.m);
    lf_engine_desc d = {.model = &f.m, .tok = &f.tok, .kv_budget_bytes = 8 * blk, .max_queue = 2, .queue_timeout_s = 0.3};
    CHECK_OK(lf_engine_create(&e, &d));
    en_out o[4];
    memset(o, 0, sizeof o);
    lf_engine_req big = en_req(&f, 2, &o[0], false);
    big.gen.max_tokens = 100;
    CHECK_ERR(lf_engine_submit(e, &big, &id), LF_ERR_CAPACITY, "need 12 KV blocks, the budget holds 8");
    // prompts of 79, 42, 30 and 18 tokens + 30 or 24 new: 7, 5, 4 and 3 blocks
    static const int which[4] = {2, 1, 3, 5};
    for (int i = 0; i < 4; i++) {
        lf_engine_req r = en_req(&f, which[i], &o[i], false);
        if (i == 0) r.gen.max_tokens = 30;
        CHECK_OK(lf_engine_submit(e, &r, &id));
    }
    bool busy;
    lf_engine_stats st;
    CHECK_OK(lf_engine_step(e, &busy));
    lf_engine_get_stats(e, &st);
    CHECK(st.running == 1 && st.waiting == 2 && st.kv_blocks_used == 7 && o[3].done == 1 && o[3].st == LF_ERR_BUSY);
    while (o[0].done == 0) CHECK_OK(lf_engine_step(e, &busy));
    CHECK(o[0].st == LF_OK && o[0].n == 30);
    CHECK_OK(lf_engine_step(e, &busy));  // the first in the queue joins (evicting cached blocks)
    lf_engine_get_stats(e, &st);
    CHECK(st.running == 1 && st.waiting == 1 && st.kv_blocks_used == 5);
    usleep(350000);
    CHECK_OK(lf_engine_step(e, &busy));
    CHECK(o[2].done == 1 && o[2].st == LF_ERR_BUSY && o[1].done == 0);
    CHECK(en_drain(e) == 0);
    CHECK(o[1].st == LF_OK && o[1].n == EN_MAX);
    // cancellation from the token callback, mid-generation
    en_out c;
    memset(&c, 0, sizeof c);
    lf_engine_req r = en_req(&f, 4, &c, false);
    r.gen.on_token = en_token, r.gen.max_tokens = 60;
    c.cancel_after = 5, c.e = e;
    CHECK_OK(lf_engine_submit(e, &r, &c.id));
    CHECK(en_drain(e) == 0);
    lf_engine_get_stats(e, &st);
    CHECK(c.done == 1 && c.st == LF_ERR_CANCELLED && c.finish == LF_FINISH_CANCELLED && c.n >= 5 && c.n <= 7);
    CHECK(st.running == 0 && st.kv_blocks_used == 0);
    lf_engine_destroy(e);
    en_close(&f);
    return 0;
}

#ifndef LF_NO_THREADS
static void *en_thread(void *arg) {
    lf_engine_run((lf_engine *)arg);
    return NULL;
}

// lf_engine_run on its own thread, requests submitted and cancelled from this one: every request
// ends once, with its tokens of the single-threaded run.
static int test_engine_thread(void) {
    static en_fix f;
    static en_out o[EN_N];
    CHECK(en_open(&f) == 0);
    lf_engine *e;
    CHECK_OK(lf_engine_create(&e, &(lf_engine_desc){.model = &f.m, .tok = &f.tok, .max_batch = 4}));
    pthread_t th;
    CHECK(pthread_create(&th, NULL, en_thread, e) == 0);
    uint64_t id[EN_N];
    for (int i = 0; i < EN_N; i++) {
        lf_engine_req r = en_req(&f, i, &o[i], false);
        CHECK_OK(lf_engine_submit(e, &r, &id[i]));
        if (i == 5) lf_engine_cancel(e, id[3]);
    }
    for (int spins = 0; spins < 3000; spins++) {
        lf_engine_stats st;
        lf_engine_get_stats(e, &st);
        if (st.generated_tokens > 0 && st.running == 0 && st.waiting == 0) break;
        usleep(2000);
    }
    lf_engine_stop(e);
    pthread_join(th, NULL);
    lf_engine_destroy(e);
    for (int i = 0; i < EN_N; i++) CHECK(o[i].done == 1 && (o[i].st == LF_OK || (i == 3 && o[i].st == LF_ERR_CANCELLED)));
    en_close(&f);
    return 0;
}
#endif

static const lf_test tests_engine[] = {
    {"engine/batch_invariance", test_engine_batch_invariance},
    {"engine/prefix_cache", test_engine_prefix_cache},
    {"engine/overload_and_cancel", test_engine_overload_and_cancel},
#ifndef LF_NO_THREADS
    {"engine/thread", test_engine_thread},
#endif
};
