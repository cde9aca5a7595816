// tests/test_synth_gen.c — section 12's batched generation, scoring and synthetic data:
//   - lf_generate_batch against transformers' greedy ids (tiny_chat's gen_ref.json) and against
//     lf_generate, token for token; sampled items the same whatever the batch size; a prompt
//     that fails fails alone; cancellation;
//   - lf_score_logprobs against transformers' log-probabilities (numbers below);
//   - lf_synth_generate on an instruct teacher (tiny_chat) with a teacher that fails, empty and
//     too-long prompts, planted duplicates and degenerate answers; the base-model few-shot path
//     on models/kjv-llama-4m; preference pairs with log-prob judging, verifiers and extra
//     negatives; every output read back by section 10's reader;
//   - prompts files, the config, allocation failures, and the lf-generate driver.

#include <ctype.h>

#define SG_TINY "tests/fixtures/models/tiny_chat"
#define SG_KJV "models/kjv-llama-4m"

typedef struct sg_env {
    lf_tokenizer tok;
    lf_model m;
    lf_gen_desc g;  // the model's generation_config.json over the product's defaults
} sg_env;

static int sg_open(sg_env *e, const char *dir, int max_tokens, int threads) {
    lf_model_desc md = {.path = dir, .n_threads = threads, .max_tokens = max_tokens};
    CHECK_OK(lf_tok_open(&e->tok, dir));
    CHECK_OK(lf_model_open(&e->m, &md));
    e->g = lf_gen_desc_default();
    CHECK_OK(lf_gen_desc_load(&e->g, dir));
    return 0;
}
static void sg_close(sg_env *e) {
    lf_model_close(&e->m);
    lf_tok_close(&e->tok);
}

static int32_t *sg_encode(const lf_tokenizer *tok, const char *text, int *n) {
    int32_t *ids = NULL;
    size_t k = 0;
    *n = 0;
    if (lf_tok_encode(tok, text, strlen(text), false, &ids, &k) != LF_OK) return NULL;
    *n = (int)k;
    return ids;
}

// Whether two results are the same: ids, text and finish.
static int sg_same(const lf_gen_result *a, const lf_gen_result *b) {
    return a->n_gen == b->n_gen && a->finish == b->finish && a->len == b->len && a->n_prompt == b->n_prompt &&
           memcmp(a->ids, b->ids, (size_t)a->n_gen * sizeof(int32_t)) == 0 && memcmp(a->text, b->text, a->len) == 0;
}

typedef struct sg_batch_ctx {
    int done[16];    // on_done calls per item
    int asks, stop_after;  // should_stop: true from call stop_after on (0: never)
} sg_batch_ctx;
static void sg_on_done(void *user, int i) { ((sg_batch_ctx *)user)->done[i]++; }
static bool sg_stop(void *user) {
    sg_batch_ctx *c = (sg_batch_ctx *)user;
    return c->stop_after && ++c->asks >= c->stop_after;
}

// -- batches

// Greedy batch items equal transformers' generate and lf_generate token for token, with 6 prompts
// through 3 KV slots (slots are reused) and prompts prefilled in chunks of 16.
static int test_sgen_batch_greedy_parity(void) {
    lf_doc ref;
    CHECK_OK(lf_json_load(&ref, SG_TINY "/gen_ref.json"));
    const lf_node *cases = lf_node_get(ref.root, "cases");
    sg_env e;
    if (sg_open(&e, SG_TINY, 16, 2)) return 1;
    CHECK(cases && cases->n == 6 && e.g.sampling.temperature == 0);
    lf_kv kv3, kv1;
    CHECK_OK(lf_kv_init(&kv3, &e.m, 3, 0));
    CHECK_OK(lf_kv_init(&kv1, &e.m, 1, 0));
    lf_gen_desc g = e.g;
    g.max_tokens = 24;
    sg_batch_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    g.user = &ctx;
    lf_gen_item items[6];
    memset(items, 0, sizeof items);
    for (int i = 0; i < 6; i++) {
        items[i].prompt = sg_encode(&e.tok, lf_node_get(&cases->kids[i], "prompt")->str, &items[i].n_prompt);
        items[i].sampling = g.sampling;
        CHECK(items[i].prompt);
    }
    CHECK_OK(lf_generate_batch(&e.m, &kv3, &e.tok, &g, items, 6, sg_on_done));
    for (int i = 0; i < 6; i++) {
        const lf_node *c = &cases->kids[i];
        lf_gen_result one;
        CHECK(ctx.done[i] == 1 && items[i].status == LF_OK && items[i].error[0] == 0);
        CHECK(gen_ids_equal(lf_node_get(c, "greedy_ids"), items[i].res.ids, items[i].res.n_gen));
        CHECK(strcmp(items[i].res.text, lf_node_get(c, "greedy_text")->str) == 0);
        CHECK(items[i].res.finish == (lf_node_get(c, "stopped_at_eos")->num != 0 ? LF_FINISH_STOP : LF_FINISH_LENGTH));
        CHECK_OK(lf_generate(&e.m, &kv1, 0, &e.tok, items[i].prompt, items[i].n_prompt, &g, &one));
        CHECK(sg_same(&one, &items[i].res));
        lf_gen_result_deinit(&one);
        lf_gen_result_deinit(&items[i].res);
        lf_free((void *)items[i].prompt);
    }
    lf_kv_deinit(&kv3), lf_kv_deinit(&kv1);
    sg_close(&e);
    lf_doc_deinit(&ref);
    return 0;
}

// Sampled items do not depend on the batch: 1 slot or 4, prompts shared or not, item i equals
// lf_generate with the seed lf_gen_seed(seed, i); stop strings end each sequence on its own.
static int test_sgen_batch_seeds(void) {
    sg_env e;
    if (sg_open(&e, SG_KJV, 0, 1)) return 1;
    static const char *prompts[] = {"And God said", "The LORD is my shepherd", "In the beginning", "Blessed are the meek",
                                    "And Jesus answered", "My son, hear", "And God said", "And God said"};
    enum { N = 8 };
    lf_gen_desc g = e.g;
    g.max_tokens = 12, g.sampling.temperature = 1.0f, g.sampling.top_k = 0, g.sampling.top_p = 0.95f;
    const char *stop[1] = {":"};
    g.stop = stop, g.n_stop = 1;
    lf_gen_item a[N], b[N];
    memset(a, 0, sizeof a), memset(b, 0, sizeof b);
    for (int i = 0; i < N; i++) {
        a[i].prompt = sg_encode(&e.tok, prompts[i], &a[i].n_prompt);
        a[i].sampling = g.sampling, a[i].sampling.seed = lf_gen_seed(99, (uint64_t)i);
        b[i] = a[i];
    }
    lf_kv kv1, kv4;
    CHECK_OK(lf_kv_init(&kv1, &e.m, 1, 0));
    CHECK_OK(lf_kv_init(&kv4, &e.m, 4, 0));
    CHECK_OK(lf_generate_batch(&e.m, &kv1, &e.tok, &g, a, N, NULL));
    CHECK_OK(lf_generate_batch(&e.m, &kv4, &e.tok, &g, b, N, NULL));
    int stopped = 0, differ = 0;
    for (int i = 0; i < N; i++) {
        CHECK(a[i].status == LF_OK && b[i].status == LF_OK && sg_same(&a[i].res, &b[i].res));
        CHECK(!strchr(a[i].res.text, ':'));
        stopped += a[i].res.finish == LF_FINISH_STOP;
        lf_gen_desc one = g;
        one.sampling.seed = lf_gen_seed(99, (uint64_t)i);
        lf_gen_result r;
        CHECK_OK(lf_generate(&e.m, &kv1, 0, &e.tok, a[i].prompt, a[i].n_prompt, &one, &r));
        CHECK(sg_same(&r, &a[i].res));
        lf_gen_result_deinit(&r);
    }
    differ = strcmp(a[0].res.text, a[6].res.text) != 0 || strcmp(a[6].res.text, a[7].res.text) != 0;
    CHECK(differ && stopped > 0 && stopped < N);  // the same prompt, other seeds; ":" ended some, not all
    for (int i = 0; i < N; i++) lf_gen_result_deinit(&a[i].res), lf_gen_result_deinit(&b[i].res), lf_free((void *)a[i].prompt);
    // four answers to one prompt start together: three copy the first one's prefill
    lf_gen_item c[4], d1[4];
    memset(c, 0, sizeof c);
    for (int i = 0; i < 4; i++) {
        c[i].prompt = sg_encode(&e.tok, "And it came to pass", &c[i].n_prompt);
        c[i].sampling = g.sampling, c[i].sampling.seed = lf_gen_seed(5, (uint64_t)i);
        d1[i] = c[i];
    }
    CHECK_OK(lf_generate_batch(&e.m, &kv4, &e.tok, &g, c, 4, NULL));
    CHECK_OK(lf_generate_batch(&e.m, &kv1, &e.tok, &g, d1, 4, NULL));
    for (int i = 0; i < 4; i++) {
        CHECK(sg_same(&c[i].res, &d1[i].res));
        lf_gen_result_deinit(&c[i].res), lf_gen_result_deinit(&d1[i].res), lf_free((void *)c[i].prompt);
    }
    lf_kv_deinit(&kv1), lf_kv_deinit(&kv4);
    sg_close(&e);
    return 0;
}

// An empty prompt, one longer than the context and one with an id outside the vocabulary fail
// alone; the others equal their runs alone. Cancellation ends what runs and what waits.
static int test_sgen_batch_failures(void) {
    sg_env e;
    if (sg_open(&e, SG_TINY, 0, 1)) return 1;
    lf_kv kv2, kv1;
    CHECK_OK(lf_kv_init(&kv2, &e.m, 2, 0));
    CHECK_OK(lf_kv_init(&kv1, &e.m, 1, 0));
    lf_gen_desc g = e.g;
    g.max_tokens = 24;
    static int32_t longp[300], bad[3] = {274, 384, 275};
    for (int i = 0; i < 300; i++) longp[i] = 274 + i % 3;
    lf_gen_item it[5];
    memset(it, 0, sizeof it);
    it[0].prompt = sg_encode(&e.tok, "The cat", &it[0].n_prompt);
    it[1].prompt = NULL, it[1].n_prompt = 0;
    it[2].prompt = longp, it[2].n_prompt = 300;
    it[3].prompt = bad, it[3].n_prompt = 3;
    it[4].prompt = sg_encode(&e.tok, "Once upon a time", &it[4].n_prompt);
    for (int i = 0; i < 5; i++) it[i].sampling = g.sampling;
    sg_batch_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    g.user = &ctx, g.should_stop = sg_stop;
    CHECK_OK(lf_generate_batch(&e.m, &kv2, &e.tok, &g, it, 5, sg_on_done));
    CHECK(it[1].status == LF_ERR_ARG && strstr(it[1].error, "empty prompt"));
    CHECK(it[2].status == LF_ERR_CAPACITY && strstr(it[2].error, "prompt of 300 tokens does not fit the context of 256"));
    CHECK(it[3].status == LF_ERR_ARG && strstr(it[3].error, "id 384, outside [0, 384)"));
    for (int i = 0; i < 5; i++) CHECK(ctx.done[i] == 1);
    for (int i = 0; i < 5; i += 4) {
        lf_gen_result r;
        CHECK(it[i].status == LF_OK);
        CHECK_OK(lf_generate(&e.m, &kv1, 0, &e.tok, it[i].prompt, it[i].n_prompt, &g, &r));
        CHECK(sg_same(&r, &it[i].res));
        lf_gen_result_deinit(&r);
    }
    for (int i = 0; i < 5; i++) lf_gen_result_deinit(&it[i].res);
    // cancelled at the 4th step: the two running items keep their 3 tokens, the rest never start
    memset(&ctx, 0, sizeof ctx);
    ctx.stop_after = 4;
    lf_gen_item c[4];
    memset(c, 0, sizeof c);
    for (int i = 0; i < 4; i++) c[i].prompt = longp, c[i].n_prompt = 10 + i, c[i].sampling = g.sampling;
    g.ignore_eos = true;
    CHECK_ERR(lf_generate_batch(&e.m, &kv2, &e.tok, &g, c, 4, sg_on_done), LF_ERR_CANCELLED, "cancelled");
    for (int i = 0; i < 4; i++) {
        CHECK(ctx.done[i] == 1 && c[i].status == LF_ERR_CANCELLED && c[i].res.finish == LF_FINISH_CANCELLED);
        CHECK(c[i].res.n_gen == (i < 2 ? 3 : 0) && strstr(c[i].error, "cancelled"));
        lf_gen_result_deinit(&c[i].res);
    }
    lf_free((void *)it[0].prompt), lf_free((void *)it[4].prompt);
    lf_kv_deinit(&kv2), lf_kv_deinit(&kv1);
    sg_close(&e);
    return 0;
}

// -- scoring: sum of log p(response | prompt) from transformers 5.23 and torch 2.15 (float32 model,
// float64 log-softmax), ids from HF tokenizers' Tokenizer.encode(text, add_special_tokens=False):
//   m = AutoModelForCausalLM.from_pretrained(dir, torch_dtype=torch.float32)
//   lp = log_softmax(m(ids(prompt) + ids(response)).logits[0].double(), -1)
//   sum(lp[len(prompt) - 1 + t, response[t]] for t in range(len(response)))
static const struct {
    const char *dir, *prompt, *resp;
    int n_prompt, n_resp;
    double sum;
} sg_score_ref[] = {
    {SG_TINY, "<|im_start|>user\nTell me about cats<|im_end|>\n<|im_start|>assistant\n",
     "The cat sat on the mat, and the dog sat by the door.", 24, 23, -186.496911556},
    {SG_KJV, "Instruction: Which book of the Bible is this verse from?\n\nIn the beginning God created the heaven and the earth.\nResponse:",
     " Genesis", 38, 4, -27.786088275},
    {SG_KJV, "Instruction: Which book of the Bible is this verse from?\n\nIn the beginning God created the heaven and the earth.\nResponse:",
     " And God said, Let there be light: and there was light. And God saw the light, that it was good: and God divided the light "
     "from the darkness.", 38, 34, -120.366243311},
};

// lf_score_logprobs equals transformers; long responses run in chunks (max_tokens 8 here) to the
// same sums as in one piece; several responses after one prompt equal separate calls.
static int test_sgen_score_logprobs(void) {
    for (int chunk = 0; chunk < 2; chunk++) {
        double got[3];
        for (size_t i = 0; i < 3; i++) {
            sg_env e;
            if (sg_open(&e, sg_score_ref[i].dir, chunk ? 64 : 8, 1)) return 1;
            lf_kv kv;
            CHECK_OK(lf_kv_init(&kv, &e.m, 2, 0));
            int np = 0, nr = 0;
            int32_t *p = sg_encode(&e.tok, sg_score_ref[i].prompt, &np), *r = sg_encode(&e.tok, sg_score_ref[i].resp, &nr);
            CHECK(p && r && np == sg_score_ref[i].n_prompt && nr == sg_score_ref[i].n_resp);
            const int32_t *rs[1] = {r};
            CHECK_OK(lf_score_logprobs(&e.m, &kv, 1, p, np, rs, &nr, 1, &got[i]));
            if (fabs(got[i] - sg_score_ref[i].sum) > 1e-3 + 1e-5 * fabs(sg_score_ref[i].sum)) {
                fprintf(stderr, "    case %zu: %.9f, transformers %.9f\n", i, got[i], sg_score_ref[i].sum);
                return 1;
            }
            if (i == 2) {  // the two KJV responses after one prefill
                int n2 = 0;
                int32_t *r2 = sg_encode(&e.tok, sg_score_ref[1].resp, &n2);
                const int32_t *both[2] = {r2, r};
                int ns[2] = {n2, nr};
                double two[2];
                CHECK_OK(lf_score_logprobs(&e.m, &kv, 0, p, np, both, ns, 2, two));
                CHECK(two[0] == got[1] && two[1] == got[2]);
                int zero = 0, big = 250;
                CHECK_ERR(lf_score_logprobs(&e.m, &kv, 0, p, np, both, &zero, 1, two), LF_ERR_ARG, "response 0 is empty");
                CHECK_ERR(lf_score_logprobs(&e.m, &kv, 0, p, np, both, &big, 1, two), LF_ERR_CAPACITY, "do not fit the context of 256");
                CHECK_ERR(lf_score_logprobs(&e.m, &kv, 2, p, np, both, ns, 1, two), LF_ERR_ARG, "KV slot 2");
                lf_free(r2);
            }
            lf_free(p), lf_free(r);
            lf_kv_deinit(&kv);
            sg_close(&e);
        }
    }
    return 0;
}

// -- synthetic data

typedef struct sg_hooks {
    int fail_index;        // check fails this prompt (a teacher that fails)
    int checked[32];       // check calls per prompt
    int progress_calls, last_done, last_total, backwards;
} sg_hooks;
static lf_status sg_check(void *user, int index, const char *answer, size_t len) {
    sg_hooks *h = (sg_hooks *)user;
    (void)answer, (void)len;
    h->checked[index]++;
    return index == h->fail_index ? lf__fail(LF_ERR_CUDA, "teacher: device lost on prompt %d", index) : LF_OK;
}
static void sg_progress(void *user, int done, int total) {
    sg_hooks *h = (sg_hooks *)user;
    h->backwards += done != h->last_done + 1;
    h->progress_calls++, h->last_done = done, h->last_total = total;
}

// Parses serialized records with section 10's reader: their count and format.
static int sg_read_back(const char *text, size_t len, const char *name, lf_data_format want, int n_want) {
    lf_data_reader rd;
    const lf_data_record *rec;
    int n = 0;
    CHECK_OK(lf_data_open_memory(&rd, text, len, name, LF_DATA_AUTO, 0));
    for (;;) {
        CHECK_OK(lf_data_next(&rd, &rec));
        if (!rec) break;
        CHECK(rec->format == want);
        n++;
    }
    lf_data_close(&rd);
    if (n != n_want) fprintf(stderr, "    %s: %d records, expected %d\n", name, n, n_want);
    CHECK(n == n_want);
    return 0;
}

// The issue's robustness case on an instruct teacher (tiny_chat, greedy): a teacher that fails on
// one prompt, prompts over the context, empty prompts: the run finishes, reports them, and writes
// the rest; a planted duplicate and tiny_chat's degenerate answers are filtered.
static int test_sgen_instruct_robustness(void) {
    sg_env e;
    if (sg_open(&e, SG_TINY, 0, 1)) return 1;
    static char longp[2000];
    for (int i = 0; i < 250; i++) memcpy(longp + 7 * i, "The cat", 7), longp[7 * i + 7] = 0;
    lf_synth_prompt ps[8] = {{"Write a poem", NULL}, {"Once upon a time", NULL}, {"The cat", NULL}, {"", NULL},
                             {" \n\t", NULL},         {longp, NULL},              {"Write a poem", NULL}, {"Hello there", NULL}};
    lf_gen_desc g = e.g;
    g.max_tokens = 40;
    sg_hooks h;
    memset(&h, 0, sizeof h);
    h.fail_index = 7;
    lf_synth_desc d;
    memset(&d, 0, sizeof d);
    d.model = &e.m, d.tok = &e.tok, d.gen = &g, d.batch_size = 3;
    d.check = sg_check, d.progress = sg_progress, d.user = &h;
    lf_synth_result r;
    CHECK_OK(lf_synth_generate(&d, ps, 8, &r));
    static const lf_synth_verdict want[8] = {LF_SYNTH_KEPT,   LF_SYNTH_FILTERED, LF_SYNTH_FILTERED,  LF_SYNTH_FAILED,
                                             LF_SYNTH_FAILED, LF_SYNTH_FAILED,   LF_SYNTH_DUPLICATE, LF_SYNTH_FAILED};
    CHECK(r.n == 8 && !r.preferences && !r.fewshot);
    for (int i = 0; i < 8; i++) {
        const lf_synth_record *x = &r.recs[i];
        if (x->verdict != want[i]) fprintf(stderr, "    prompt %d: %s, expected %s\n", i, lf_synth_verdict_name(x->verdict), lf_synth_verdict_name(want[i]));
        CHECK(x->index == i && x->verdict == want[i] && strcmp(x->instruction, ps[i].instruction) == 0);
        CHECK((x->verdict == LF_SYNTH_FAILED) == (x->error != NULL) && (x->verdict == LF_SYNTH_FAILED) == (x->output == NULL));
        CHECK(h.checked[i] == (i == 3 || i == 4 || i == 5 ? 0 : 1));  // the answers only
    }
    CHECK(strcmp(r.recs[0].output, "ooest'SS\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                                   "\xef\xbf\xbd" "ad\x11" "adadadalard") == 0);
    CHECK(r.recs[0].finish == LF_FINISH_STOP && r.recs[0].quality == LF_QUALITY_OK);
    CHECK(r.recs[1].quality == LF_QUALITY_REPETITIVE && r.recs[2].quality == LF_QUALITY_UNFINISHED);
    CHECK(r.recs[3].status == LF_ERR_ARG && strstr(r.recs[3].error, "prompt 3 is empty") && strstr(r.recs[4].error, "prompt 4 is empty"));
    CHECK(r.recs[5].status == LF_ERR_CAPACITY && strstr(r.recs[5].error, "does not fit the context of 256"));
    CHECK(r.recs[6].dup_of == 0 && strcmp(r.recs[6].output, r.recs[0].output) == 0);
    CHECK(r.recs[7].status == LF_ERR_CUDA && strstr(r.recs[7].error, "device lost on prompt 7"));
    const lf_synth_summary *u = &r.sum;
    CHECK(u->prompts == 8 && u->records == 8 && u->kept == 1 && u->failed == 4 && u->filtered == 2 && u->duplicates == 1);
    CHECK(u->filtered_by[LF_QUALITY_REPETITIVE] == 1 && u->filtered_by[LF_QUALITY_UNFINISHED] == 1 && u->generated_tokens > 0);
    CHECK(h.progress_calls == 8 && h.last_done == 8 && h.last_total == 8 && h.backwards == 0);
    // the rest is written: one record, read back as Alpaca (JSONL and a JSON array) and messages
    char *text;
    size_t len;
    CHECK_OK(lf_synth_serialize(&r, LF_SYNTH_FORMAT_DEFAULT, false, &text, &len));
    CHECK(strncmp(text, "{\"instruction\": \"Write a poem\", \"input\": \"\", \"output\": \"ooest'SS", 60) == 0 && strchr(text, '\n') == text + len - 1);
    if (sg_read_back(text, len, "out.jsonl", LF_DATA_ALPACA, 1)) return 1;
    lf_free(text);
    CHECK_OK(lf_synth_serialize(&r, LF_SYNTH_ALPACA, true, &text, &len));
    if (sg_read_back(text, len, "out.json", LF_DATA_ALPACA, 1)) return 1;
    lf_free(text);
    r.system = lf__strndup("Be brief.", 9, "test");
    CHECK_OK(lf_synth_serialize(&r, LF_SYNTH_MESSAGES, false, &text, &len));
    CHECK(strstr(text, "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"Write a poem\"}, "
                       "{\"role\": \"assistant\", \"content\": \"ooest"));
    if (sg_read_back(text, len, "out.jsonl", LF_DATA_MESSAGES, 1)) return 1;
    lf_free(text);
    CHECK_ERR(lf_synth_serialize(&r, LF_SYNTH_DPO, false, &text, &len), LF_ERR_ARG, "does not hold instruction data");
    char dir[] = "/tmp/lf_synth_XXXXXX", path[64];
    CHECK(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/out.jsonl", dir);
    CHECK_OK(lf_synth_write(&r, LF_SYNTH_ALPACA, false, path));
    lf_data_reader rd;
    const lf_data_record *rec;
    CHECK_OK(lf_data_open(&rd, path, LF_DATA_AUTO, 0));
    CHECK_OK(lf_data_next(&rd, &rec));
    CHECK(rec && rec->format == LF_DATA_ALPACA && rec->n_msgs == 2 && strcmp(rec->msgs[1].content, r.recs[0].output) == 0);
    lf_data_close(&rd);
    remove(path), rmdir(dir);
    lf_synth_result_deinit(&r);
    // without the filters the degenerate answers are kept, and so is the duplicate
    d.quality.max_repeat_fraction = 1, d.quality.allow_unfinished = true, d.keep_duplicates = true, d.check = NULL;
    CHECK_OK(lf_synth_generate(&d, ps, 8, &r));
    CHECK(r.sum.kept == 5 && r.sum.failed == 3 && r.sum.filtered == 0 && r.sum.duplicates == 0);
    lf_synth_result_deinit(&r);
    sg_close(&e);
    return 0;
}

// The exact Jaccard similarity of two texts' word 5-shingle sets, words as section 10 reads them
// (ASCII whitespace splits, A-Z lower-cased, ASCII punctuation stripped from both ends).
static int sg_words(const char *s, char w[][32], int cap) {
    int n = 0;
    for (const char *p = s; *p && n < cap;) {
        while (*p && isspace((unsigned char)*p)) p++;
        const char *a = p;
        while (*p && !isspace((unsigned char)*p)) p++;
        const char *b = p;
        while (a < b && ispunct((unsigned char)*a)) a++;
        while (b > a && ispunct((unsigned char)b[-1])) b--;
        if (a == b) continue;
        int k = 0;
        for (; a < b && k < 31; a++) w[n][k++] = (char)tolower((unsigned char)*a);
        w[n++][k] = 0;
    }
    return n;
}
static double sg_jaccard(const char *x, const char *y) {
    static char wx[256][32], wy[256][32];
    int nx = sg_words(x, wx, 256), ny = sg_words(y, wy, 256), both = 0, ax = nx - 4, ay = ny - 4;
    for (int i = 0; i < ax; i++) {  // shingles of x (distinct) found in y
        bool dup = false, in = false;
        for (int j = 0; j < i && !dup; j++) dup = !memcmp(wx[i], wx[j], sizeof wx[0] * 5);
        for (int j = 0; j < ay && !in && !dup; j++) {
            in = true;
            for (int k = 0; k < 5 && in; k++) in = strcmp(wx[i + k], wy[j + k]) == 0;
        }
        both += in && !dup;
    }
    int ux = 0, uy = 0;
    for (int i = 0; i < ax; i++) {
        bool dup = false;
        for (int j = 0; j < i && !dup; j++) {
            dup = true;
            for (int k = 0; k < 5 && dup; k++) dup = strcmp(wx[i + k], wx[j + k]) == 0;
        }
        ux += !dup;
    }
    for (int i = 0; i < ay; i++) {
        bool dup = false;
        for (int j = 0; j < i && !dup; j++) {
            dup = true;
            for (int k = 0; k < 5 && dup; k++) dup = strcmp(wy[i + k], wy[j + k]) == 0;
        }
        uy += !dup;
    }
    return (double)both / (double)(ux + uy - both);
}

// Planted near-duplicates: prompts that differ in a word's case or punctuation, or in one word
// of sixty, are removed when their "instruction\nanswer" texts are that similar; the unrelated
// prompt stays. Every decision is checked against the exact Jaccard similarity.
static int test_sgen_near_duplicates(void) {
    sg_env e;
    if (sg_open(&e, SG_TINY, 0, 1)) return 1;
    static const char *base =
        "Please write a short and simple story for children about a small cat who lives in a big old house near the river "
        "with her mother and two brothers and likes to play in the garden with the friendly dog from the farm every "
        "morning before the sun is up and the birds start to sing their songs in the tall green trees by the";
    static char p[4][600];
    snprintf(p[0], sizeof p[0], "%s water.", base);
    snprintf(p[1], sizeof p[1], "%s Water", base);
    snprintf(p[2], sizeof p[2], "%s lake.", base);
    snprintf(p[3], sizeof p[3], "Write a poem");
    lf_synth_prompt ps[4] = {{p[0], NULL}, {p[1], NULL}, {p[2], NULL}, {p[3], NULL}};
    lf_gen_desc g = e.g;
    g.max_tokens = 4;
    lf_synth_desc d;
    memset(&d, 0, sizeof d);
    d.model = &e.m, d.tok = &e.tok, d.gen = &g;
    d.quality.max_repeat_fraction = 1, d.quality.allow_unfinished = true;
    d.dedup.threshold = 0.7;
    lf_synth_result r;
    CHECK_OK(lf_synth_generate(&d, ps, 4, &r));
    char t[4][700];
    for (int i = 0; i < 4; i++) snprintf(t[i], sizeof t[i], "%s\n%s", r.recs[i].instruction, r.recs[i].output ? r.recs[i].output : "");
    CHECK(r.recs[0].verdict == LF_SYNTH_KEPT && r.recs[3].verdict == LF_SYNTH_KEPT);
    for (int i = 1; i < 3; i++) {
        double j = sg_jaccard(t[0], t[i]);
        if (getenv("LF_TEST_VERBOSE")) fprintf(stderr, "    prompt %d: Jaccard %.3f with prompt 0: %s\n", i, j, lf_synth_verdict_name(r.recs[i].verdict));
        CHECK(j >= 0.8 && r.recs[i].verdict == LF_SYNTH_DUPLICATE && r.recs[i].dup_of == 0);
    }
    CHECK(sg_jaccard(t[0], t[3]) < 0.1 && r.sum.duplicates == 2 && r.sum.kept == 2);
    lf_synth_result_deinit(&r);
    sg_close(&e);
    return 0;
}

static int sg_count(const char *s, const char *sub) {
    int n = 0;
    for (const char *p = strstr(s, sub); p; p = strstr(p + 1, sub)) n++;
    return n;
}

// The base-model path (models/kjv-llama-4m has no chat template): 3 or 4 demonstrations drawn at
// random without repetition, never the prompt itself, then the prompt, in the plain format;
// demonstrations are dropped to fit the context; generation stops at END.
static int test_sgen_base_fewshot(void) {
    sg_env e;
    if (sg_open(&e, SG_KJV, 0, 1)) return 1;
    static const lf_synth_prompt pool[6] = {{"Say one", "one"}, {"Say two", "two"}, {"Say three", "three"},
                                            {"Say four", "four"}, {"Say five", "five"}, {"Say six", "six"}};
    lf_gen_desc g = e.g;
    g.max_tokens = 8;
    lf_synth_desc d;
    memset(&d, 0, sizeof d);
    d.model = &e.m, d.tok = &e.tok, d.gen = &g, d.demos = pool, d.n_demos = 6;
    int seen[5] = {0}, varied = 0;
    char *first = NULL;
    for (int i = 0; i < 12; i++) {
        char *t, *again;
        size_t n, n2;
        CHECK_OK(lf_synth_render(&d, i, "Say seven", &t, &n));
        CHECK_OK(lf_synth_render(&d, i, "Say seven", &again, &n2));
        CHECK(n == n2 && strcmp(t, again) == 0);  // deterministic
        int shots = sg_count(t, "\nEND\n");
        CHECK(shots == 3 || shots == 4);
        seen[shots]++;
        CHECK(strncmp(t, "Instruction: Say ", 17) == 0 && n > 32 && strcmp(t + n - 32, "Instruction: Say seven\nResponse:") == 0);
        for (int k = 0; k < 6; k++) {  // each demonstration whole, at most once
            char blk[64];
            snprintf(blk, sizeof blk, "Instruction: %s\nResponse: %s\nEND\n", pool[k].instruction, pool[k].reference);
            CHECK(sg_count(t, blk) <= 1);
        }
        if (first) varied += strcmp(first, t) != 0;
        else first = t, t = NULL;
        lf_free(t), lf_free(again);
    }
    CHECK(seen[3] > 0 && seen[4] > 0 && varied > 0);
    // the prompt is never its own example; a system prompt is the first line; shots fixes the count
    char *t;
    size_t n;
    d.shots = 6, d.system = "You answer in one word.";
    CHECK_OK(lf_synth_render(&d, 0, "Say four", &t, &n));
    CHECK(sg_count(t, "\nEND\n") == 5 && !strstr(t, "Response: four") && strncmp(t, "You answer in one word.\nInstruction: ", 37) == 0);
    lf_free(t);
    d.shots = 0, d.system = NULL;
    // another seed, other draws
    lf_gen_desc g2 = g;
    g2.sampling.seed = 1234;
    d.gen = &g2;
    CHECK_OK(lf_synth_render(&d, 0, "Say seven", &t, &n));
    CHECK(strcmp(t, first) != 0);
    lf_free(t), lf_free(first);
    d.gen = &g;
    // long demonstrations (KJV verses) are dropped, last first, to leave max_tokens of the context
    lf_synth_prompts demos, test;
    CHECK_OK(lf_synth_load(&demos, "data/sft/train.jsonl"));
    CHECK_OK(lf_synth_load(&test, "data/sft/test.jsonl"));
    CHECK(demos.n == 2000 && test.n == 80 && strstr(test.items[0].instruction, "?\n\n") && test.items[0].reference);
    d.demos = demos.items, d.n_demos = demos.n;
    g.max_tokens = 24;
    lf_synth_result r;
    CHECK_OK(lf_synth_generate(&d, test.items, 6, &r));
    CHECK(r.fewshot && r.sum.fewer_shots > 0 && r.sum.failed == 0);
    for (int i = 0; i < 6; i++) {
        int np;
        CHECK_OK(lf_synth_render(&d, i, test.items[i].instruction, &t, &n));
        int32_t *ids = sg_encode(&e.tok, t, &np);
        CHECK(ids && (np + g.max_tokens <= 256 || sg_count(t, "\nEND\n") == 0));
        lf_free(ids), lf_free(t);
        const char *o = r.recs[i].output;  // the plain format's markers never reach an answer
        CHECK(o && !strstr(o, "END") && !strstr(o, "Instruction:") && o[0] != ' ');
    }
    lf_synth_result_deinit(&r);
    // an instruct teacher asked for few-shot prompts (a config's base: true) gets the plain format
    sg_env ic;
    if (sg_open(&ic, SG_TINY, 0, 1)) return 1;
    d.model = &ic.m, d.tok = &ic.tok, d.demos = pool, d.n_demos = 6;
    CHECK_OK(lf_synth_render(&d, 0, "Say seven", &t, &n));
    CHECK(strstr(t, "<|im_start|>user\nSay seven<|im_end|>\n<|im_start|>assistant\n") && !strstr(t, "Instruction:"));
    lf_free(t);
    d.prompting = LF_SYNTH_PROMPT_FEWSHOT;
    CHECK_OK(lf_synth_render(&d, 0, "Say seven", &t, &n));
    CHECK(strncmp(t, "Instruction: ", 13) == 0 && !strstr(t, "<|im_start|>"));
    lf_free(t);
    sg_close(&ic);
    lf_synth_prompts_deinit(&demos), lf_synth_prompts_deinit(&test);
    sg_close(&e);
    return 0;
}

// -- preference pairs

static lf_synth_desc sg_pref_desc(sg_env *e, lf_gen_desc *g, const lf_synth_prompt *pool, int n_pool) {
    lf_synth_desc d;
    memset(&d, 0, sizeof d);
    *g = e->g;
    g->max_tokens = 10;
    d.model = &e->m, d.tok = &e->tok, d.gen = g, d.demos = pool, d.n_demos = n_pool;
    d.quality.allow_unfinished = true, d.quality.max_repeat_fraction = 1;
    return d;
}

static const lf_synth_prompt sg_pool[6] = {{"Say one", "one"}, {"Say two", "two"}, {"Say three", "three"},
                                           {"Say four", "four"}, {"Say five", "five"}, {"Say six", "six"}};
static const lf_synth_prompt sg_pref_prompts[5] = {{"Say seven", "seven"}, {"Say eight", "eight"}, {"Say nine", "nine"},
                                                   {"Say ten", "ten"}, {"Who begat Isaac?", "Abraham"}};

// Log-prob judging (no verifier): chosen scores at least rejected, the scores are the teacher's
// length-normalized log-probabilities; extra negatives are the chosen answer's first half and
// another prompt's chosen answer; the pairs do not depend on the batch size; DPO output reads back.
static int test_sgen_preferences(void) {
    sg_env e;
    if (sg_open(&e, SG_KJV, 0, 1)) return 1;
    lf_gen_desc g;
    lf_synth_desc d = sg_pref_desc(&e, &g, sg_pool, 6);
    d.num_responses = 3, d.temperature_range[0] = 0.7f, d.temperature_range[1] = 1.3f;
    d.negatives = LF_SYNTH_NEG_TRUNCATED | LF_SYNTH_NEG_OTHER, d.batch_size = 4;
    lf_synth_result r, r1;
    CHECK_OK(lf_synth_preferences(&d, sg_pref_prompts, 5, &r));
    d.batch_size = 1;
    CHECK_OK(lf_synth_preferences(&d, sg_pref_prompts, 5, &r1));
    CHECK(r.preferences && r.fewshot && r.n == r1.n && r.n > 5 && r.sum.prompts == 5 && r.sum.generated_tokens > 0);
    int pairs = 0, trunc = 0, other = 0;
    lf_kv kv;
    CHECK_OK(lf_kv_init(&kv, &e.m, 1, 0));
    for (int i = 0; i < r.n; i++) {
        const lf_synth_record *x = &r.recs[i], *y = &r1.recs[i];
        CHECK(x->verdict == y->verdict && x->index == y->index && x->kind == y->kind);  // batch 4 = batch 1
        if (x->verdict != LF_SYNTH_KEPT) continue;
        CHECK(!strcmp(x->output, y->output) && !strcmp(x->rejected, y->rejected) && x->chosen_score == y->chosen_score);
        CHECK(x->rejected_score == y->rejected_score && strcmp(x->output, x->rejected) != 0);
        if (x->kind == 0) {
            pairs++;
            CHECK(i < 5 && x->index == i && x->chosen_score >= x->rejected_score);
            // chosen_score is the mean log p of " " + answer after the rendered prompt
            char *t, resp[512];
            size_t n;
            int np, nr;
            CHECK_OK(lf_synth_render(&d, i, sg_pref_prompts[i].instruction, &t, &n));
            snprintf(resp, sizeof resp, " %s", x->output);
            int32_t *p = sg_encode(&e.tok, t, &np), *q = sg_encode(&e.tok, resp, &nr);
            const int32_t *qs[1] = {q};
            double sum;
            CHECK_OK(lf_score_logprobs(&e.m, &kv, 0, p, np, qs, &nr, 1, &sum));
            CHECK(sum / nr == x->chosen_score && x->chosen_score < 0);
            lf_free(t), lf_free(p), lf_free(q);
        } else if (x->kind == LF_SYNTH_NEG_TRUNCATED) {
            trunc++;
            size_t n = strlen(x->rejected);
            CHECK(i >= 5 && n < strlen(x->output) && strncmp(x->output, x->rejected, n) == 0 && x->output[n] == ' ');
            CHECK(x->rejected_score == x->rejected_score && !strcmp(x->output, r.recs[x->index].output));
        } else {
            other++;
            bool found = false;
            for (int j = 0; j < 5; j++) found |= j != x->index && r.recs[j].verdict == LF_SYNTH_KEPT && !strcmp(r.recs[j].output, x->rejected);
            CHECK(x->kind == LF_SYNTH_NEG_OTHER && found);
        }
    }
    CHECK(pairs >= 3 && trunc >= 1 && other == pairs && r.sum.kept == pairs + trunc + other && r.sum.extra_pairs == trunc + other);
    char *text;
    size_t len;
    CHECK_OK(lf_synth_serialize(&r, LF_SYNTH_FORMAT_DEFAULT, false, &text, &len));
    CHECK(strncmp(text, "{\"prompt\": \"", 12) == 0 && strstr(text, "\", \"chosen\": \"") && strstr(text, "\", \"rejected\": \""));
    if (sg_read_back(text, len, "pairs.jsonl", LF_DATA_DPO, r.sum.kept)) return 1;
    lf_free(text);
    CHECK_OK(lf_synth_serialize(&r, LF_SYNTH_DPO_MESSAGES, true, &text, &len));
    CHECK(strstr(text, "\"prompt\": [{\"role\": \"user\", \"content\": \"Say ") && strstr(text, "\"chosen\": [{\"role\": \"assistant\""));
    if (sg_read_back(text, len, "pairs.json", LF_DATA_DPO, r.sum.kept)) return 1;
    lf_free(text);
    CHECK_ERR(lf_synth_serialize(&r, LF_SYNTH_ALPACA, false, &text, &len), LF_ERR_ARG, "does not hold preference pairs");
    lf_synth_result_deinit(&r), lf_synth_result_deinit(&r1);
    lf_kv_deinit(&kv);
    sg_close(&e);
    return 0;
}

// Exact match compares trimmed bytes (first_line: the answer's first line); the regex verifier
// finds the pattern in the trimmed answer, ^ and $ anchoring the whole pattern.
static int test_sgen_verify_regex(void) {
    lf_synth_desc d;
    memset(&d, 0, sizeof d);
    lf__synth c;
    memset(&c, 0, sizeof c);
    c.d = &d, d.verify = LF_VERIFY_EXACT;
    lf_synth_prompt p = {"Capital of France?", "  Paris\n"};
    const char *two = " Paris \n because it is.";
    CHECK(lf__synth_verify(&c, &p, 0, "Paris", 5) == 1 && lf__synth_verify(&c, &p, 0, "paris", 5) == 0);
    CHECK(lf__synth_verify(&c, &p, 0, two, strlen(two)) == 0);
    d.verify_first_line = true;
    CHECK(lf__synth_verify(&c, &p, 0, two, strlen(two)) == 1 && lf__synth_verify(&c, &p, 0, "Paris!\nParis", 12) == 0);
    d.verify = LF_VERIFY_REGEX, p.reference = " ^Par(is|ee)$ ";
    CHECK(lf__synth_verify(&c, &p, 0, " Paree ", 7) == 1 && lf__synth_verify(&c, &p, 0, two, strlen(two)) == 0);
    static const struct {
        const char *pat, *answer;
        int want;
    } cases[] = {
        {"Paris", "The capital is Paris.", 1},   {"^Paris", "The capital is Paris.", 0}, {"^The", "The capital is Paris.", 1},
        {"Paris\\.$", "The capital is Paris.", 1}, {"Paris$", "The capital is Paris.", 0}, {"(?i)paris", "PARIS", 1},
        {"^a|b$", "xb", 0},                      {"^a|b$", "b", 1},                      {"\\d+ apples", "I ate 42 apples", 1},
        {"a\\$", "cost: a$", 1},                 {"^(yes|no)$", "no", 1},                {"^(yes|no)$", "no way", 0},
        {"^$", "", 1},                           {"x{2,3}", "axxb", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int r = lf__verify_regex(cases[i].pat, strlen(cases[i].pat), cases[i].answer, strlen(cases[i].answer), 0);
        if (r != cases[i].want) fprintf(stderr, "    /%s/ on \"%s\": %d, expected %d\n", cases[i].pat, cases[i].answer, r, cases[i].want);
        CHECK(r == cases[i].want);
    }
    CHECK_ERR((lf_status)lf__verify_regex("[ab", 3, "a", 1, 3), LF_ERR_FORMAT, "reference of prompt 3: unterminated [");
    CHECK_ERR((lf_status)lf__verify_regex("a^b", 3, "a", 1, 0), LF_ERR_UNSUPPORTED, "anchors");
    return 0;
}

// The command verifier: no shell of ours (the answer, prompt and reference never reach a command
// line), stdin may go unread (no SIGPIPE), a non-zero exit refuses, a hang is killed at the timeout.
static int test_sgen_verify_command(void) {
    static char big[300000];
    memset(big, 'a', sizeof big);
    const char *cat[] = {"/bin/sh", "-c", "cat > /dev/null", NULL}, *tru[] = {"true", NULL}, *no[] = {"/bin/sh", "-c", "exit 3", NULL};
    const char *env[] = {"/bin/sh", "-c", "test \"$LF_PROMPT\" = 'p q' && test \"$(cat)\" = \"$LF_REFERENCE\"", NULL};
    const char *hang[] = {"/bin/sh", "-c", "sleep 5; true", NULL}, *none[] = {"/nonexistent/verifier", NULL};
    bool late;
    CHECK(lf__verify_command(cat, "p", "r", big, sizeof big, 10, &late) == 1 && !late);
    CHECK(lf__verify_command(tru, "p", "r", big, sizeof big, 10, &late) == 1 && !late);
    CHECK(lf__verify_command(no, "p", "r", "x", 1, 10, &late) == 0 && !late);
    CHECK(lf__verify_command(env, "p q", "the answer", "the answer", 10, 10, &late) == 1);
    CHECK(lf__verify_command(env, "p q", "the answer", "an answer", 9, 10, &late) == 0);
    char dir[] = "/tmp/lf_verify_XXXXXX", ref[256], mark[64];
    CHECK(mkdtemp(dir));
    snprintf(mark, sizeof mark, "%s/injected", dir);
    snprintf(ref, sizeof ref, "$(touch %s)`touch %s`", mark, mark);
    CHECK(lf__verify_command(env, "p q", ref, ref, strlen(ref), 10, &late) == 1 && !lf_path_exists(mark));
    rmdir(dir);
    uint64_t t0 = lf_time_ns();
    CHECK(lf__verify_command(hang, "p", "r", big, sizeof big, 0.3, &late) == 0 && late);
    CHECK(lf_time_ns() - t0 < 3000000000ull);
    CHECK_ERR((lf_status)lf__verify_command(none, "p", "r", "x", 1, 1, &late), LF_ERR_IO, "cannot run '/nonexistent/verifier'");
    return 0;
}

// With references and a verifier, chosen is an accepted answer and rejected a refused one: given
// the log-prob run's rejected answer as the reference, exact match and a command that compares
// (as exact match does) swap every pair. A verifier that times out refuses all; a bad pattern fails
// its prompt; a missing command ends the run.
static int test_sgen_preference_verifiers(void) {
    sg_env e;
    if (sg_open(&e, SG_KJV, 0, 1)) return 1;
    lf_gen_desc g;
    lf_synth_desc d = sg_pref_desc(&e, &g, sg_pool, 6);
    d.temperature_range[0] = d.temperature_range[1] = 1.2f;
    lf_synth_result r, v;
    CHECK_OK(lf_synth_preferences(&d, sg_pref_prompts, 5, &r));
    lf_synth_prompt swapped[5];
    int pairs = 0;
    for (int i = 0; i < 5; i++) {
        swapped[i].instruction = sg_pref_prompts[i].instruction;
        swapped[i].reference = r.recs[i].verdict == LF_SYNTH_KEPT ? r.recs[i].rejected : "never said";
        pairs += r.recs[i].verdict == LF_SYNTH_KEPT;
    }
    CHECK(pairs >= 3);
    const char *cmp[] = {"/bin/sh", "-c", "test \"$(cat)\" = \"$LF_REFERENCE\"", NULL};
    for (int kind = 0; kind < 2; kind++) {
        d.verify = kind ? LF_VERIFY_COMMAND : LF_VERIFY_EXACT, d.verify_argv = cmp;
        CHECK_OK(lf_synth_preferences(&d, swapped, 5, &v));
        for (int i = 0; i < 5; i++) {
            if (r.recs[i].verdict != LF_SYNTH_KEPT) {  // no answer equals "never said"
                CHECK(v.recs[i].verdict == LF_SYNTH_NO_PAIR && strstr(v.recs[i].error, "no answer passed the verifier"));
                continue;
            }
            CHECK(v.recs[i].verdict == LF_SYNTH_KEPT && !strcmp(v.recs[i].output, r.recs[i].rejected));
            CHECK(!strcmp(v.recs[i].rejected, r.recs[i].output) && v.recs[i].chosen_score == r.recs[i].rejected_score);
        }
        lf_synth_result_deinit(&v);
    }
    // a prompt without a reference is judged by log-probability
    swapped[0].reference = NULL;
    d.verify = LF_VERIFY_EXACT;
    CHECK_OK(lf_synth_preferences(&d, swapped, 2, &v));
    CHECK(v.recs[0].verdict == r.recs[0].verdict && (!v.recs[0].output || !strcmp(v.recs[0].output, r.recs[0].output)));
    lf_synth_result_deinit(&v);
    const char *hang[] = {"/bin/sh", "-c", "sleep 5", NULL}, *none[] = {"/nonexistent/verifier", NULL};
    d.verify = LF_VERIFY_COMMAND, d.verify_argv = hang, d.verify_timeout_s = 0.2;
    uint64_t t0 = lf_time_ns();
    CHECK_OK(lf_synth_preferences(&d, sg_pref_prompts, 2, &v));
    CHECK(v.sum.no_pair == 2 && v.sum.verify_timeouts >= 2 && lf_time_ns() - t0 < 4000000000ull);
    lf_synth_result_deinit(&v);
    d.verify_argv = none;
    CHECK_ERR(lf_synth_preferences(&d, sg_pref_prompts, 2, &v), LF_ERR_IO, "cannot run '/nonexistent/verifier'");
    CHECK(v.n == 0 && v.recs == NULL);
    lf_synth_prompt bad[2] = {{"Say seven", "[seven"}, {"Say eight", "e"}};
    d.verify = LF_VERIFY_REGEX;
    CHECK_OK(lf_synth_preferences(&d, bad, 2, &v));
    CHECK(v.recs[0].verdict == LF_SYNTH_FAILED && v.recs[0].status == LF_ERR_FORMAT && strstr(v.recs[0].error, "unterminated ["));
    CHECK(v.recs[1].verdict != LF_SYNTH_FAILED);
    lf_synth_result_deinit(&v);
    lf_synth_result_deinit(&r);
    sg_close(&e);
    return 0;
}

// -- prompts files, config, desc checks

static int sg_write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return 1;
    fputs(text, f);
    fclose(f);
    return 0;
}

static int test_sgen_load_and_config(void) {
    char dir[] = "/tmp/lf_synth_XXXXXX", path[128];
    CHECK(mkdtemp(dir));
    lf_synth_prompts p;
    snprintf(path, sizeof path, "%s/p.txt", dir);
    CHECK(!sg_write_file(path, "first prompt\r\n\n   \nsecond, with {\"json\"}\n"));
    CHECK_OK(lf_synth_load(&p, path));
    CHECK(p.n == 2 && !strcmp(p.items[0].instruction, "first prompt") && !p.items[0].reference);
    CHECK(!strcmp(p.items[1].instruction, "second, with {\"json\"}"));
    lf_synth_prompts_deinit(&p);
    snprintf(path, sizeof path, "%s/p.jsonl", dir);
    CHECK(!sg_write_file(path, "{\"instruction\": \"Add\", \"input\": \"1 + 2\", \"output\": \"3\"}\n\n{\"prompt\": \"P\", \"reference\": "
                               "\"R\", \"output\": \"O\"}\n{\"instruction\": \"I\", \"input\": \"\", \"output\": null}\n"));
    CHECK_OK(lf_synth_load(&p, path));
    CHECK(p.n == 3 && !strcmp(p.items[0].instruction, "Add\n\n1 + 2") && !strcmp(p.items[0].reference, "3"));
    CHECK(!strcmp(p.items[1].instruction, "P") && !strcmp(p.items[1].reference, "R"));
    CHECK(!strcmp(p.items[2].instruction, "I") && !p.items[2].reference);
    lf_synth_prompts_deinit(&p);
    snprintf(path, sizeof path, "%s/p.json", dir);
    CHECK(!sg_write_file(path, " [{\"instruction\": \"A\"}, {\"prompt\": \"B\", \"output\": \"b\"}, \"C\"]"));
    CHECK_OK(lf_synth_load(&p, path));
    CHECK(p.n == 3 && !strcmp(p.items[1].instruction, "B") && !strcmp(p.items[1].reference, "b"));
    CHECK(!strcmp(p.items[2].instruction, "C") && !p.items[2].reference);
    lf_synth_prompts_deinit(&p);
    static const struct {
        const char *name, *text, *msg;
    } bad[] = {
        {"b1.jsonl", "{\"instruction\": \"A\"}\n{\"input\": \"x\"}\n", "b1.jsonl:2: a prompt record needs 'instruction' or 'prompt'"},
        {"b2.jsonl", "{\"instruction\": 3}\n", "b2.jsonl:1: field 'instruction': expected a string, got number"},
        {"b3.jsonl", "{\"instruction\": \"A\"}\n{\"instruction\": \n", "b3.jsonl:2"},
        {"b4.json", "[{\"prompt\": \"A\"}, 7]", "b4.json: item 1: expected an object or a string, got number"},
        {"b5.jsonl", "{\"prompt\": \"A\"}\n[1, 2]\n", "b5.jsonl:2: expected an object or a string, got array"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, bad[i].name);
        CHECK(!sg_write_file(path, bad[i].text));
        CHECK_ERR(lf_synth_load(&p, path), LF_ERR_FORMAT, bad[i].msg);
        CHECK(p.items == NULL && p.mem_ == NULL);
        remove(path);
    }
    CHECK_ERR(lf_synth_load(&p, "/nonexistent/prompts.txt"), LF_ERR_IO, "/nonexistent/prompts.txt");
    snprintf(path, sizeof path, "%s/p.txt", dir), remove(path);
    snprintf(path, sizeof path, "%s/p.jsonl", dir), remove(path);
    snprintf(path, sizeof path, "%s/p.json", dir), remove(path);
    rmdir(dir);
    // configs/synth.yaml, overrides, and bad keys named
    lf_doc doc;
    lf_synth_config c;
    const char *ov[] = {"synth.dedup.threshold=0.9", "model.base=true", "synth.preferences.negatives=[truncated, other_prompt]",
                        "synth.preferences.verifier=command", "synth.preferences.command=[python3, check.py]", "synth.format=dpo_messages"};
    CHECK_OK(lf_config_load(&doc, "configs/synth.yaml", ov, 6));
    CHECK_OK(lf_synth_config_read(&c, &doc));
    CHECK(!strcmp(c.model, SG_KJV) && !strcmp(c.prompts, "data/sft/test.jsonl") && !strcmp(c.demonstrations, "data/sft/train.jsonl"));
    CHECK(c.desc.dedup.threshold == 0.9 && c.desc.prompting == LF_SYNTH_PROMPT_FEWSHOT && c.desc.batch_size == 8 && !c.json);
    CHECK(c.desc.negatives == (LF_SYNTH_NEG_TRUNCATED | LF_SYNTH_NEG_OTHER) && c.desc.verify == LF_VERIFY_COMMAND);
    CHECK(!strcmp(c.desc.verify_argv[0], "python3") && !strcmp(c.desc.verify_argv[1], "check.py") && !c.desc.verify_argv[2]);
    CHECK(c.format == LF_SYNTH_DPO_MESSAGES && c.desc.temperature_range[1] == 1.0f && c.desc.verify_timeout_s == 10);
    lf_gen_desc g = lf_gen_desc_default();
    CHECK_OK(lf_gen_desc_from_config(&g, &doc));
    CHECK(g.max_tokens == 16 && g.sampling.seed == 42);
    lf_doc_deinit(&doc);
    static const struct {
        const char *ov, *msg;
    } badc[] = {
        {"synth.dedupe.threshold=0.9", "synth.dedupe: unknown key (did you mean dedup?)"},
        {"synth.preferences.verifier=fuzzy", "verifier: 'fuzzy' is not none, exact, regex or command"},
        {"synth.preferences.temperature_range=[1, 0.5]", "temperature_range: must be [low, high]"},
        {"synth.format=csv", "format: 'csv' is not"},
        {"synth.preferences.verifier=command", "the command verifier needs [program, args...]"},
        {"synth.dedup.threshold=1.5", "synth.dedup: threshold: must be in (0, 1]"},
        {"synth.batch_size=0", "synth: field 'batch_size' must be in [1, 4096]"},
        {"synth.preferences.negatives=[shortened]", "negatives: expected a list of truncated, other_prompt"},
        {"model.base=maybe", "model: field 'base' must be"},
    };
    for (size_t i = 0; i < sizeof badc / sizeof *badc; i++) {
        CHECK_OK(lf_config_load(&doc, "configs/synth.yaml", &badc[i].ov, 1));
        CHECK_ERR(lf_synth_config_read(&c, &doc), LF_ERR_CONFIG, badc[i].msg);
        lf_doc_deinit(&doc);
    }
    lf_synth_format f;
    CHECK_OK(lf_synth_format_from_name("messages", &f));
    CHECK(f == LF_SYNTH_MESSAGES);
    CHECK_ERR(lf_synth_format_from_name("sharegpt", &f), LF_ERR_ARG, "unknown synthetic data format 'sharegpt'");
    // desc checks name the field
    sg_env e;
    if (sg_open(&e, SG_TINY, 0, 1)) return 1;
    lf_synth_prompt one[1] = {{"hi", NULL}};
    lf_synth_result r;
    lf_synth_desc d;
    memset(&d, 0, sizeof d);
    CHECK_ERR(lf_synth_generate(&d, one, 1, &r), LF_ERR_ARG, "desc.model and desc.tok are required");
    d.model = &e.m, d.tok = &e.tok, d.batch_size = -1;
    CHECK_ERR(lf_synth_generate(&d, one, 1, &r), LF_ERR_CONFIG, "synth.batch_size");
    d.batch_size = 0, d.num_responses = 1;
    CHECK_ERR(lf_synth_preferences(&d, one, 1, &r), LF_ERR_CONFIG, "synth.num_responses");
    d.num_responses = 0, d.quality.max_repeat_fraction = 2;
    CHECK_ERR(lf_synth_generate(&d, one, 1, &r), LF_ERR_CONFIG, "quality.max_repeat_fraction");
    d.quality.max_repeat_fraction = 0, d.dedup.threshold = -1;
    CHECK_ERR(lf_synth_generate(&d, one, 1, &r), LF_ERR_CONFIG, "dedup.threshold");
    d.dedup.threshold = 0, d.verify = LF_VERIFY_COMMAND;
    CHECK_ERR(lf_synth_preferences(&d, one, 1, &r), LF_ERR_CONFIG, "synth.verify_argv");
    d.verify = LF_VERIFY_NONE, d.prompting = LF_SYNTH_PROMPT_FEWSHOT, d.demos = sg_pool, d.n_demos = 1, d.shots = 1;
    lf_synth_prompt nodemo[1] = {{"Say one", NULL}};
    d.demos = nodemo;
    CHECK_ERR(lf_synth_generate(&d, one, 1, &r), LF_ERR_ARG, "demonstration 0 needs an instruction and an answer");
    CHECK(r.n == 0 && r.recs == NULL);
    d.demos = sg_pool;
    CHECK_OK(lf_synth_generate(&d, one, 0, &r));  // no prompts: an empty result
    CHECK(r.n == 0 && r.sum.prompts == 0);
    lf_synth_result_deinit(&r);
    sg_close(&e);
    return 0;
}

// Every allocation of a data run and of a preference run (teacher, prompts with a duplicate and an
// empty one, the batch, filters, dedup, scoring, extra negatives, exact verifier, output) made to
// fail in turn gives LF_ERR_NOMEM and leaves no block behind.
static lf_status sg_session(const void *ctx) {
    bool prefs = ctx != NULL;
    lf_tokenizer tok;
    lf_model m;
    lf_synth_result r;
    memset(&tok, 0, sizeof tok), memset(&m, 0, sizeof m), memset(&r, 0, sizeof r);
    lf_model_desc md = {.path = SG_TINY, .n_threads = 1, .max_tokens = 8, .max_seq_len = 64};
    lf_synth_prompt ps[4] = {{"Write a poem", "m"}, {"", NULL}, {"Write a poem", "m"}, {"The cat", "x"}};
    lf_gen_desc g = lf_gen_desc_default();
    g.max_tokens = 5, g.sampling.temperature = 1.0f;
    lf_synth_desc d;
    memset(&d, 0, sizeof d);
    d.gen = &g, d.batch_size = 2, d.quality.allow_unfinished = true, d.quality.max_repeat_fraction = 1, d.system = "Be brief.";
    d.negatives = LF_SYNTH_NEG_TRUNCATED | LF_SYNTH_NEG_OTHER, d.verify = LF_VERIFY_EXACT;
    char *text = NULL;
    size_t len;
    lf_status s = lf_tok_open(&tok, SG_TINY);
    if (s == LF_OK) s = lf_model_open(&m, &md);
    d.model = &m, d.tok = &tok;
    if (s == LF_OK) s = prefs ? lf_synth_preferences(&d, ps, 4, &r) : lf_synth_generate(&d, ps, 4, &r);
    if (s == LF_OK) s = lf_synth_serialize(&r, prefs ? LF_SYNTH_DPO_MESSAGES : LF_SYNTH_MESSAGES, true, &text, &len);
    lf_free(text);
    lf_synth_result_deinit(&r);
    lf_model_close(&m);
    lf_tok_close(&tok);
    return s;
}
static int test_sgen_allocation_failures(void) {
    int prefs = 1;
    if (lf_test_each_allocation_fails(sg_session, NULL)) return 1;
    return lf_test_each_allocation_fails(sg_session, &prefs);
}

// -- the driver

static int test_sgen_driver(void) {
    if (!lf_path_exists("build/lf-generate") || !lf_path_exists("build/largeforge")) SKIP("drivers not built (run make first)");
    char out[16384], cmd[2048], dir[] = "/tmp/lf_gen_XXXXXX";
    CHECK(mkdtemp(dir));
    snprintf(cmd, sizeof cmd, "printf 'Write a poem\\nThe cat\\n\\nWrite a poem\\n' > %s/p.txt && build/largeforge generate data --model "
             SG_TINY " --prompts %s/p.txt --output %s/out/d.jsonl --generation.temperature 0 --generation.max_tokens 40 -t 1 "
             "&& cat %s/out/d.jsonl", dir, dir, dir, dir);
    CHECK(drv_run(cmd, out, sizeof out) == 0);
    CHECK(strstr(out, "3 prompts (chat template): 1 kept, 0 failed, 1 filtered (unfinished 1), 1 near-duplicates"));
    CHECK(strstr(out, "3/3 generated") && sg_count(out, "{\"instruction\": \"Write a poem\", \"input\": \"\", \"output\": \"ooest") == 1);
    // preferences on the shipped base model from configs/synth.yaml, three verses
    snprintf(cmd, sizeof cmd, "head -3 data/sft/test.jsonl > %s/v.jsonl && build/lf-generate preferences --config configs/synth.yaml "
             "--prompts %s/v.jsonl --output %s/pairs.json --json --synth.quality.allow_unfinished true --generation.max_tokens 6 "
             "--batch-size 3 -t 1 -q && cat %s/pairs.json", dir, dir, dir, dir);
    CHECK(drv_run(cmd, out, sizeof out) == 0);
    CHECK(out[0] == '[' && strstr(out, "\"chosen\": ") && !strstr(out, "lf-generate:"));
    if (sg_read_back(out, strlen(out), "pairs.json", LF_DATA_DPO, sg_count(out, "\"rejected\": "))) return 1;
    // usage, I/O and config errors: their exit codes and one line
    CHECK(drv_run("build/lf-generate --help", out, sizeof out) == 0 && strstr(out, "preferences"));
    CHECK(drv_run("build/lf-generate", out, sizeof out) == 64 && strstr(out, "expected data, preferences or logits"));
    CHECK(drv_run("build/lf-generate data --model " SG_TINY " --output /tmp/x.jsonl", out, sizeof out) == 64 && strstr(out, "prompts are required"));
    snprintf(cmd, sizeof cmd, "build/lf-generate data --model " SG_TINY " --prompts /nonexistent.txt --output %s/x.jsonl", dir);
    CHECK(drv_run(cmd, out, sizeof out) == 4 && strstr(out, "lf-generate: error: ") && strstr(out, "/nonexistent.txt"));
    snprintf(cmd, sizeof cmd, "build/lf-generate data --config configs/synth.yaml --synth.qualty.min_tokens 3 --output %s/x.jsonl", dir);
    CHECK(drv_run(cmd, out, sizeof out) == 7 && strstr(out, "synth.qualty: unknown key (did you mean quality?)"));
    snprintf(cmd, sizeof cmd, "build/lf-generate data --config configs/synth.yaml --format dpo --output %s/x.jsonl -q", dir);
    CHECK(drv_run(cmd, out, sizeof out) == 2 && strstr(out, "does not hold instruction data"));
    // SIGINT: exit 12, and what was kept so far is written
    snprintf(cmd, sizeof cmd, "for i in $(seq 1500); do echo \"prompt $i\"; done > %s/many.txt; build/lf-generate data --model " SG_TINY
             " --prompts %s/many.txt --output %s/int.jsonl --generation.max_tokens 200 --generation.ignore_eos true "
             "--synth.quality.allow_unfinished true --synth.quality.max_repeat_fraction 1 -t 1 & sleep 0.5; kill -INT $!; wait $!; "
             "r=$?; test -f %s/int.jsonl && echo written; exit $r", dir, dir, dir, dir);
    CHECK(drv_run(cmd, out, sizeof out) == 12 && strstr(out, "interrupted") && strstr(out, "written"));
    snprintf(cmd, sizeof cmd, "rm -r %s", dir);
    CHECK(system(cmd) == 0);
    return 0;
}

static const lf_test tests_synth_gen[] = {
    {"synth_gen/batch_greedy_parity", test_sgen_batch_greedy_parity},
    {"synth_gen/batch_seeds", test_sgen_batch_seeds},
    {"synth_gen/batch_failures", test_sgen_batch_failures},
    {"synth_gen/score_logprobs_transformers", test_sgen_score_logprobs},
    {"synth_gen/instruct_robustness", test_sgen_instruct_robustness},
    {"synth_gen/near_duplicates", test_sgen_near_duplicates},
    {"synth_gen/base_fewshot", test_sgen_base_fewshot},
    {"synth_gen/preferences", test_sgen_preferences},
    {"synth_gen/verify_exact_regex", test_sgen_verify_regex},
    {"synth_gen/verify_command", test_sgen_verify_command},
    {"synth_gen/preference_verifiers", test_sgen_preference_verifiers},
    {"synth_gen/load_and_config", test_sgen_load_and_config},
    {"synth_gen/allocation_failures", test_sgen_allocation_failures},
    {"synth_gen/driver", test_sgen_driver},
};
