// tests/test_core.c — sections 1 (core), 2 (config) and 3 (tensor kernels).

static int test_status_and_errors(void) {
    CHECK(strcmp(lf_status_str(LF_ERR_FORMAT), "LF_ERR_FORMAT") == 0);
    CHECK(strcmp(lf_status_str(LF_ERR_CANCELLED), "LF_ERR_CANCELLED") == 0);
    CHECK(lf__fail(LF_ERR_IO, "x.bin: cannot open") == LF_ERR_IO);
    CHECK(lf__wrap(LF_ERR_IO, "loading %s", "models/a") == LF_ERR_IO);
    CHECK(strcmp(lf_last_error(), "loading models/a: x.bin: cannot open") == 0);
    CHECK(strcmp(lf_version(), LF_VERSION_STRING) == 0);
    return 0;
}

static int test_arena(void) {
    lf_arena a;
    CHECK_OK(lf_arena_init(&a, 1000, "test"));
    void *p = lf_arena_alloc(&a, 100), *q = lf_arena_alloc(&a, 100);
    CHECK(p && q && ((uintptr_t)p % 64) == 0 && ((uintptr_t)q % 64) == 0 && (char *)q >= (char *)p + 100);
    size_t mark = lf_arena_mark(&a);
    CHECK(lf_arena_alloc(&a, 0) == NULL);
    CHECK(lf_arena_alloc(&a, 100000) == NULL && strstr(lf_last_error(), "arena full"));
    lf_arena_reset(&a, mark);
    CHECK(lf_arena_mark(&a) == mark);
    lf_arena_deinit(&a);
    lf_arena_deinit(&a);  // safe twice
    return 0;
}

static int test_rng(void) {
    lf_rng a, b;
    lf_rng_seed(&a, 42), lf_rng_seed(&b, 42);
    double mean = 0, var = 0;
    for (int i = 0; i < 1000; i++) CHECK(lf_rng_u64(&a) == lf_rng_u64(&b));
    for (int i = 0; i < 20000; i++) {
        float u = lf_rng_float(&a);
        CHECK(u >= 0 && u < 1);
        float z = lf_rng_normal(&b);
        mean += z, var += (double)z * z;
    }
    mean /= 20000, var = var / 20000 - mean * mean;
    CHECK(fabs(mean) < 0.05 && fabs(var - 1) < 0.05);
    return 0;
}

typedef struct {
    const float *x;
    double *y;         // [N] one result per index
    int *hits;         // [N] how often each index ran
    int64_t *bounds;   // [2 * max_ranges] the ranges, in claim order
    int nranges;
} map_job;
static void map_range(void *arg, int64_t b, int64_t e, int tid) {
    map_job *j = (map_job *)arg;
    (void)tid;
    for (int64_t i = b; i < e; i++) j->y[i] = sqrt((double)j->x[i]) * 3.0, __atomic_add_fetch(&j->hits[i], 1, __ATOMIC_RELAXED);
    int r = __atomic_fetch_add(&j->nranges, 1, __ATOMIC_RELAXED);
    if (r < 64) j->bounds[2 * r] = b, j->bounds[2 * r + 1] = e;
}
static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

// The pool runs every index exactly once, cuts the same ranges every time (whoever claims
// them), and gives the same results.
static int test_pool(void) {
    enum { N = 100003 };
    static float x[N];
    static double y[N], first[N];
    static int hits[N];
    for (int i = 0; i < N; i++) x[i] = (float)(i % 7);
    for (int threads = 1; threads <= 3; threads++) {
        lf_pool *p;
        CHECK_OK(lf_pool_create(&p, threads));
        int64_t b0[128], b1[128];
        int n0 = 0;
        for (int rep = 0; rep < 300; rep++) {
            memset(hits, 0, sizeof hits);
            map_job j = {x, y, hits, rep ? b1 : b0, 0};
            lf_parallel_for(p, N, map_range, &j);
            for (int i = 0; i < N; i++) CHECK(hits[i] == 1);
            CHECK(j.nranges <= 64);
            qsort(j.bounds, (size_t)j.nranges, 2 * sizeof(int64_t), cmp_i64);
            if (rep == 0) {
                n0 = j.nranges;
                memcpy(first, y, sizeof y);
            } else {
                CHECK(j.nranges == n0 && memcmp(b0, b1, (size_t)n0 * 2 * sizeof(int64_t)) == 0);
                CHECK(memcmp(first, y, sizeof y) == 0);
            }
        }
        lf_pool_destroy(p);
    }
    lf_parallel_for(NULL, 0, map_range, NULL);  // n == 0 runs nothing
    return 0;
}

static int test_files(void) {
    char dir[] = "/tmp/lf-test-files-XXXXXX";
    CHECK(mkdtemp(dir));
    char *p = lf_path_join(dir, "a.txt");
    CHECK(p);
    CHECK_OK(lf_file_write_atomic(p, "hello", 5));
    CHECK_OK(lf_file_write_atomic(p, "world!", 6));  // replaces, never tears
    char *data;
    size_t len;
    CHECK_OK(lf_file_read(p, 0, &data, &len));
    CHECK(len == 6 && memcmp(data, "world!", 7) == 0);
    lf_free(data);
    CHECK_ERR(lf_file_read(p, 3, &data, &len), LF_ERR_FORMAT, "limit of 3 bytes");
    lf_mmap m;
    CHECK_OK(lf_mmap_open(&m, p));
    CHECK(m.size == 6 && m.data[0] == 'w');
    lf_mmap_close(&m);
    CHECK_ERR(lf_mmap_open(&m, "/nonexistent/x"), LF_ERR_IO, "/nonexistent/x");
    CHECK_ERR(lf_file_write_atomic("/nonexistent/dir/x", "a", 1), LF_ERR_IO, "/nonexistent/dir/x");
    CHECK(lf_path_is_dir(dir) && lf_path_exists(p) && !lf_path_is_dir(p));
    remove(p);
    rmdir(dir);
    lf_free(p);
    return 0;
}

static int test_json(void) {
    lf_doc d;
    const char *t = "{\"a\": [1, 2.5, \"x\", null, true], \"n\": 3, \"s\": \"caf\\u00e9\", \"o\": {}}";
    CHECK_OK(lf_json_parse(&d, t, strlen(t), "t.json"));
    const lf_node *a = lf_node_get(d.root, "a");
    CHECK(a && a->type == LF_NODE_ARRAY && a->n == 5 && a->kids[1].num == 2.5 && a->kids[3].type == LF_NODE_NULL);
    CHECK(strcmp(lf_node_get(d.root, "s")->str, "caf\xc3\xa9") == 0);
    int64_t n = 0;
    double x = 0;
    bool b = false;
    const char *s = NULL;
    CHECK_OK(lf_cfg_int(&d, d.root, "n", true, 0, 10, &n));
    CHECK(n == 3);
    CHECK_ERR(lf_cfg_int(&d, d.root, "n", true, 5, 10, &n), LF_ERR_CONFIG, "t.json: field 'n' must be in [5, 10]");
    CHECK_ERR(lf_cfg_int(&d, d.root, "missing", true, 0, 1, &n), LF_ERR_CONFIG, "missing required field 'missing'");
    CHECK_OK(lf_cfg_int(&d, d.root, "missing", false, 0, 1, &n));
    CHECK(n == 3);  // untouched
    CHECK_ERR(lf_cfg_bool(&d, d.root, "n", false, &b), LF_ERR_CONFIG, "'n' must be true or false, got a number");
    CHECK_ERR(lf_cfg_str(&d, d.root, "o", false, &s), LF_ERR_CONFIG, "'o' must be a string, got an object");
    CHECK_ERR(lf_cfg_num(&d, d.root, "s", false, &x), LF_ERR_CONFIG, "'s' must be a number");
    lf_doc_deinit(&d);
    lf_doc_deinit(&d);
    const char *bad = "{\n  \"a\": [1,\n  2,,]\n}";
    CHECK_ERR(lf_json_parse(&d, bad, strlen(bad), "bad.json"), LF_ERR_FORMAT, "bad.json: invalid JSON at line 3");
    CHECK_ERR(lf_json_parse(&d, "{} x", 4, "tail.json"), LF_ERR_FORMAT, "trailing data");
    CHECK_OK(lf_json_parse(&d, "[1] \n", 5, "ws.json"));
    lf_doc_deinit(&d);
    return 0;
}

static int test_half_conversions(void) {
    CHECK(lf_bf16_to_f32(0x3f80) == 1.0f && lf_f32_to_bf16(1.0f) == 0x3f80);
    CHECK(lf_f32_to_bf16(1.00390625f) == 0x3f80);  // a tie rounds to even
    CHECK(lf_f32_to_bf16(1.01171875f) == 0x3f82);
    CHECK(lf_f16_to_f32(0x3c00) == 1.0f && lf_f16_to_f32(0xc000) == -2.0f && lf_f16_to_f32(0x0001) == 5.9604644775390625e-8f);
    CHECK(lf_f16_to_f32(0x7c00) == INFINITY && lf_f16_to_f32(0x7bff) == 65504.0f);
    // every finite f16 survives f16 -> f32 -> f16
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00) continue;
        CHECK(lf_f32_to_f16(lf_f16_to_f32((uint16_t)h)) == h);
    }
    CHECK(lf_f32_to_f16(65520.0f) == 0x7c00);          // rounds up to inf
    CHECK(lf_f32_to_f16(1.0f + 1.0f / 2048) == 0x3c00);  // tie to even
    return 0;
}

// lf_matmul against a double-precision reference, over shapes that hit every tile remainder.
static int test_matmul(void) {
    static const int64_t shapes[][3] = {{1, 1, 1}, {1, 7, 5}, {3, 13, 17}, {4, 6, 16}, {5, 12, 33},
                                        {9, 25, 64}, {64, 96, 100}, {70, 31, 576}, {2, 5, 1537},
                                        {8, 49, 33}, {12, 100, 517}, {17, 3, 1}};
    lf_rng r;
    lf_rng_seed(&r, 7);
    lf_pool *pool;
    CHECK_OK(lf_pool_create(&pool, 2));
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int64_t N = shapes[s][0], M = shapes[s][1], K = shapes[s][2];
        float *x = (float *)malloc((size_t)(N * K) * 4), *w = (float *)malloc((size_t)(M * K) * 4);
        float *bias = (float *)malloc((size_t)M * 4), *out = (float *)malloc((size_t)(N * M) * 4);
        uint16_t *wb = (uint16_t *)malloc((size_t)(M * K) * 2), *wh = (uint16_t *)malloc((size_t)(M * K) * 2);
        for (int64_t i = 0; i < N * K; i++) x[i] = lf_rng_normal(&r);
        for (int64_t i = 0; i < M * K; i++) {
            wb[i] = lf_f32_to_bf16(lf_rng_normal(&r));
            w[i] = lf_bf16_to_f32(wb[i]);  // exactly representable in all three dtypes' reach
            wh[i] = lf_f32_to_f16(w[i]);
        }
        for (int64_t i = 0; i < M; i++) bias[i] = lf_rng_normal(&r);
        const void *datas[3] = {w, wb, wh};
        lf_dtype dts[3] = {LF_DTYPE_F32, LF_DTYPE_BF16, LF_DTYPE_F16};
        for (int d = 0; d < 3; d++) {
            lf_tensor t = {dts[d], 2, {M, K}, datas[d], "w"};
            CHECK_OK(lf_matmul(pool, out, x, &t, d == 1 ? bias : NULL, N));
            for (int64_t n = 0; n < N; n++)
                for (int64_t m = 0; m < M; m++) {
                    double ref = d == 1 ? bias[m] : 0, mag = 0;
                    for (int64_t k = 0; k < K; k++) {  // BF16 weights meet bf16-rounded x
                        double wk = d == 2 ? lf_f16_to_f32(wh[m * K + k]) : w[m * K + k];
                        double xk = d == 1 ? lf_bf16_to_f32(lf_f32_to_bf16(x[n * K + k])) : x[n * K + k];
                        ref += xk * wk, mag += fabs(xk * wk);
                    }
                    if (fabs(out[n * M + m] - ref) > 1e-6 * mag + 1e-6) {
                        fprintf(stderr, "    %s N=%lld M=%lld K=%lld [%lld,%lld]: %g vs %g\n", lf_dtype_name(dts[d]),
                                (long long)N, (long long)M, (long long)K, (long long)n, (long long)m, out[n * M + m], ref);
                        return 1;
                    }
                }
        }
        free(x), free(w), free(bias), free(out), free(wb), free(wh);
    }
    lf_tensor bad = {LF_DTYPE_I8, 2, {2, 2}, NULL, "q"};
    float o[4], xx[2] = {0};
    CHECK_ERR(lf_matmul(pool, o, xx, &bad, NULL, 1), LF_ERR_UNSUPPORTED, "'q' has dtype I8");
    lf_pool_destroy(pool);
    return 0;
}

// The same thread count gives bit-identical output; the split is by output column, so any
// thread count does.
static int test_matmul_deterministic(void) {
    int64_t N = 37, M = 101, K = 300;
    float *x = (float *)malloc((size_t)(N * K) * 4), *w = (float *)malloc((size_t)(M * K) * 4);
    float *o1 = (float *)malloc((size_t)(N * M) * 4), *o2 = (float *)malloc((size_t)(N * M) * 4);
    lf_rng r;
    lf_rng_seed(&r, 3);
    for (int64_t i = 0; i < N * K; i++) x[i] = lf_rng_normal(&r);
    for (int64_t i = 0; i < M * K; i++) w[i] = lf_rng_normal(&r);
    lf_tensor t = {LF_DTYPE_F32, 2, {M, K}, w, "w"};
    lf_pool *p1, *p3;
    CHECK_OK(lf_pool_create(&p1, 1));
    CHECK_OK(lf_pool_create(&p3, 3));
    CHECK_OK(lf_matmul(p1, o1, x, &t, NULL, N));
    CHECK_OK(lf_matmul(p3, o2, x, &t, NULL, N));
    CHECK(memcmp(o1, o2, (size_t)(N * M) * 4) == 0);
    lf_pool_destroy(p1), lf_pool_destroy(p3);
    free(x), free(w), free(o1), free(o2);
    return 0;
}


// The vector exp used by softmax and SwiGLU agrees with exp() to ~an ulp over f32's range.
static int test_exp16(void) {
#ifdef LF__AVX512
    double worst = 0;
    for (float x = -87.0f; x < 88.0f; x += 0.0137f) {
        float in[16], out[16];
        for (int i = 0; i < 16; i++) in[i] = x + (float)i * 1e-3f;
        _mm512_storeu_ps(out, lf__exp16(_mm512_loadu_ps(in)));
        for (int i = 0; i < 16; i++) {
            double ref = exp((double)in[i]), rel = fabs(out[i] - ref) / ref;
            worst = rel > worst ? rel : worst;
        }
    }
    if (worst > 2.5e-7) fprintf(stderr, "    worst relative error %.3g\n", worst);
    CHECK(worst <= 2.5e-7);
    float big[16], res[16];
    for (int i = 0; i < 16; i++) big[i] = i < 8 ? -1000.0f : 1000.0f;
    _mm512_storeu_ps(res, lf__exp16(_mm512_loadu_ps(big)));
    CHECK(res[0] == 0.0f && isfinite(res[15]) && res[15] > 1e38f);
    return 0;
#else
    SKIP("no AVX-512 on this CPU: the portable path uses expf");
#endif
}

static int node_equal(const lf_node *a, const lf_node *b) {
    if (a->type != b->type || a->n != b->n) return 0;
    if ((a->key || b->key) && (!a->key || !b->key || strcmp(a->key, b->key))) return 0;
    if (a->type == LF_NODE_STRING) return a->len == b->len && memcmp(a->str, b->str, a->len) == 0;
    if (a->type == LF_NODE_NUMBER || a->type == LF_NODE_BOOL) return a->num == b->num;
    for (int i = 0; i < a->n; i++)
        if (!node_equal(&a->kids[i], &b->kids[i])) return 0;
    return 1;
}

static const char *yaml_good =
    "# a training config\n"
    "model:\n"
    "  model_name: \"Qwen/Qwen2.5-0.5B\"   # quoted\n"
    "  dtype: bfloat16\n"
    "training:\n"
    "  learning_rate: 1e-4\n"
    "  epochs: 3\n"
    "  warmup_ratio: .03\n"
    "  bf16: true\n"
    "  seed: ~\n"
    "  neg: -2\n"
    "  word: yes\n"
    "lora:\n"
    "  r: 16\n"
    "  target_modules: [q_proj, \"v_proj\", k_proj]\n"
    "  alpha: 32.0\n"
    "\n"
    "data:\n"
    "  files:\n"
    "    - train.jsonl\n"
    "    - 'it''s.jsonl'\n"
    "  splits:\n"
    "  - name: train\n"
    "    ratio: 0.9\n"
    "  - {name: val, ratio: 0.1}\n"
    "prompt: |\n"
    "  line one\n"
    "    indented\n"
    "  line three\n"
    "folded: >-\n"
    "  a\n"
    "  b\n"
    "empty:\n"
    "url: http://x.y/z\r\n"
    "\"quoted key\": \"tab\\there\"\n";

static const char *yaml_good_json =
    "{\"model\":{\"model_name\":\"Qwen/Qwen2.5-0.5B\",\"dtype\":\"bfloat16\"},"
    "\"training\":{\"learning_rate\":1e-4,\"epochs\":3,\"warmup_ratio\":0.03,\"bf16\":true,\"seed\":null,\"neg\":-2,"
    "\"word\":\"yes\"},"
    "\"lora\":{\"r\":16,\"target_modules\":[\"q_proj\",\"v_proj\",\"k_proj\"],\"alpha\":32.0},"
    "\"data\":{\"files\":[\"train.jsonl\",\"it's.jsonl\"],\"splits\":[{\"name\":\"train\",\"ratio\":0.9},"
    "{\"name\":\"val\",\"ratio\":0.1}]},"
    "\"prompt\":\"line one\\n  indented\\nline three\\n\",\"folded\":\"a b\",\"empty\":null,\"url\":\"http://x.y/z\","
    "\"quoted key\":\"tab\\there\"}";

static int test_yaml(void) {
    lf_doc y, j;
    CHECK_OK(lf_yaml_parse(&y, yaml_good, strlen(yaml_good), "good.yaml"));
    CHECK_OK(lf_json_parse(&j, yaml_good_json, strlen(yaml_good_json), "expected.json"));
    CHECK(node_equal(y.root, j.root));
    lf_doc_deinit(&y), lf_doc_deinit(&j);
    static const struct {
        const char *yaml, *json;
    } more[] = {
        {"a:\n- 1\n- 2\nb: 3\n", "{\"a\":[1,2],\"b\":3}"},                       // a list at its key's indent
        {"a: >\n  one\n  two\n\n  three\n", "{\"a\":\"one two\\nthree\\n\"}"},    // folding, as PyYAML
        {"- - a\n  - b\n- c\n", "[[\"a\",\"b\"],\"c\"]"},                          // compact nested lists
        {"k: |-\n  x\n\n  y\n", "{\"k\":\"x\\n\\ny\"}"},
    };
    for (size_t i = 0; i < sizeof more / sizeof *more; i++) {
        CHECK_OK(lf_yaml_parse(&y, more[i].yaml, strlen(more[i].yaml), "more.yaml"));
        CHECK_OK(lf_json_parse(&j, more[i].json, strlen(more[i].json), "more.json"));
        if (!node_equal(y.root, j.root)) fprintf(stderr, "    case %zu differs from %s\n", i, more[i].json);
        CHECK(node_equal(y.root, j.root));
        lf_doc_deinit(&y), lf_doc_deinit(&j);
    }
    CHECK_OK(lf_yaml_parse(&y, "", 0, "empty.yaml"));
    CHECK(y.root->type == LF_NODE_OBJECT && y.root->n == 0);
    lf_doc_deinit(&y);
    static const struct {
        const char *text, *msg;
    } bad[] = {
        {"a:\n\tb: 1\n", "line 2: tabs cannot indent"},
        {"a: 1\n  b: 2\n", "line 2, column 3: unexpected indentation"},
        {"a: 1\na: 2\n", "line 2, column 1: duplicate key 'a'"},
        {"a: \"x\n", "unterminated double-quoted string"},
        {"a: &x 1\n", "anchors, aliases and tags"},
        {"a: 1\n---\nb: 2\n", "line 2, column 1: several documents"},
        {"a: [1, 2\n", "unterminated flow collection"},
        {"a: 'x' y\n", "unexpected text after the value"},
        {"just text\n", "line 1, column 1: expected 'key: value'"},
        {"- a\nb: 1\n", "line 2, column 1: expected a '- ' item"},
        {"a: \"\\q\"\n", "unsupported escape"},
        {"a: \"x\\0y\"\n", "unsupported escape '\\0'"},
        {"a: {b: 1, b: 2}\n", "duplicate key 'b'"},
        {"a: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n",
         "nested deeper than 64"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK_ERR(lf_yaml_parse(&y, bad[i].text, strlen(bad[i].text), "bad.yaml"), LF_ERR_FORMAT, bad[i].msg);
    return 0;
}

static int test_config_overrides(void) {
    char path[] = "/tmp/lf-test-config-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    CHECK_OK(lf_file_write_atomic(path, yaml_good, strlen(yaml_good)));
    const char *ov[] = {"training.learning_rate=2e-5", "lora.r=8", "new.section.key=hello", "training.bf16=false"};
    lf_doc d;
    CHECK_OK(lf_config_load(&d, path, ov, 4));
    const lf_node *t = lf_node_get(d.root, "training"), *l = lf_node_get(d.root, "lora");
    CHECK(lf_node_get(t, "learning_rate")->num == 2e-5 && lf_node_get(l, "r")->num == 8);
    CHECK(lf_node_get(t, "bf16")->type == LF_NODE_BOOL && lf_node_get(t, "bf16")->num == 0);
    CHECK(strcmp(lf_node_get(lf_node_get(lf_node_get(d.root, "new"), "section"), "key")->str, "hello") == 0);
    CHECK(lf_node_get(t, "epochs")->num == 3);  // untouched
    lf_doc_deinit(&d);
    const char *bad1[] = {"noequals"}, *bad2[] = {"lora.target_modules.x=1"};
    CHECK_ERR(lf_config_load(&d, path, bad1, 1), LF_ERR_ARG, "expected section.key=value");
    CHECK_ERR(lf_config_load(&d, path, bad2, 1), LF_ERR_CONFIG, "'x' is inside a value that is not a mapping");
    // the environment: between the file and the command line; other LARGEFORGE_ variables ignored
    setenv("LARGEFORGE_TRAINING_LEARNING_RATE", "3e-4", 1);
    setenv("LARGEFORGE_LORA_TARGET_MODULES", "[q_proj, v_proj]", 1);
    setenv("LARGEFORGE_LOG_LEVEL", "DEBUG", 1);
    CHECK_OK(lf_config_load(&d, path, NULL, 0));
    t = lf_node_get(d.root, "training"), l = lf_node_get(d.root, "lora");
    CHECK(lf_node_get(t, "learning_rate")->num == 3e-4 && lf_node_get(l, "target_modules")->n == 2);
    CHECK(!lf_node_get(d.root, "log"));
    lf_doc_deinit(&d);
    CHECK_OK(lf_config_load(&d, path, ov, 1));  // the command line wins
    CHECK(lf_node_get(lf_node_get(d.root, "training"), "learning_rate")->num == 2e-5);
    lf_doc_deinit(&d);
    unsetenv("LARGEFORGE_TRAINING_LEARNING_RATE"), unsetenv("LARGEFORGE_LORA_TARGET_MODULES"), unsetenv("LARGEFORGE_LOG_LEVEL");
    // unknown keys: named, with the nearest known key
    CHECK_OK(lf_yaml_parse(&d, "training:\n  lerning_rate: 1\n  zzz: 2\n", 37, "t.yaml"));
    static const char *known[] = {"learning_rate", "num_epochs"};
    CHECK_ERR(lf_cfg_keys(&d, lf_node_get(d.root, "training"), "training", known, 2), LF_ERR_CONFIG,
              "t.yaml: training.lerning_rate: unknown key (did you mean learning_rate?)");
    lf_doc_deinit(&d);
    remove(path);
    return 0;
}

// -- finite-difference checks of the backward ops: each op's loss L = sum(r * op(params)) is
// evaluated in double by a reference written here, differentiated by central differences, and
// compared with the f32 analytic gradient: max |analytic - numeric| <= 1e-4 * max |numeric|.

typedef double (*fd_loss)(const double *p, const void *ctx);

static int fd_compare(const char *what, fd_loss f, const void *ctx, double *p, int64_t n, const float *analytic) {
    double worst = 0, scale = 0;
    for (int64_t i = 0; i < n; i++) {
        double keep = p[i], h = 1e-5 * (fabs(keep) > 1 ? fabs(keep) : 1);
        p[i] = keep + h;
        double a = f(p, ctx);
        p[i] = keep - h;
        double b = f(p, ctx);
        p[i] = keep;
        double num = (a - b) / (2 * h);
        scale = fmax(scale, fabs(num));
        worst = fmax(worst, fabs(num - analytic[i]));
    }
    if (worst > 1e-4 * fmax(scale, 1e-6)) {
        fprintf(stderr, "    %s: max |analytic - numeric| = %.3g (scale %.3g)\n", what, worst, scale);
        return 1;
    }
    return 0;
}

static void fd_fill(lf_rng *r, double *d, float *f, int64_t n, double mul) {
    for (int64_t i = 0; i < n; i++) f[i] = (float)(d[i] = mul * lf_rng_normal(r));
}

enum { FD_N = 3, FD_C = 17, FD_M = 7, FD_V = 11 };
typedef struct fd_ctx {
    const double *r;  // the random projection
    int which;        // which part of p is x (0) or w (1)...
    double p2[64 * 64];
    const int32_t *ints;
    float *cos_t, *sin_t;
} fd_ctx;

// rmsnorm: p = [x (N*C), w (C)]
static double fd_rmsnorm(const double *p, const void *vc) {
    const fd_ctx *c = (const fd_ctx *)vc;
    double L = 0;
    for (int n = 0; n < FD_N; n++) {
        double ss = 0;
        for (int i = 0; i < FD_C; i++) ss += p[n * FD_C + i] * p[n * FD_C + i];
        double r = 1.0 / sqrt(ss / FD_C + 1e-5);
        for (int i = 0; i < FD_C; i++) L += c->r[n * FD_C + i] * p[FD_N * FD_C + i] * p[n * FD_C + i] * r;
    }
    return L;
}
// swiglu: p = [gate (N*C), up (N*C)]
static double fd_swiglu(const double *p, const void *vc) {
    const fd_ctx *c = (const fd_ctx *)vc;
    double L = 0;
    for (int i = 0; i < FD_N * FD_C; i++) L += c->r[i] * p[i] / (1 + exp(-p[i])) * p[FD_N * FD_C + i];
    return L;
}
// matmul: p = [x (N*C), w (M*C), b (M)]
static double fd_matmul(const double *p, const void *vc) {
    const fd_ctx *c = (const fd_ctx *)vc;
    const double *x = p, *w = p + FD_N * FD_C, *b = w + FD_M * FD_C;
    double L = 0;
    for (int n = 0; n < FD_N; n++)
        for (int m = 0; m < FD_M; m++) {
            double o = b[m];
            for (int k = 0; k < FD_C; k++) o += x[n * FD_C + k] * w[m * FD_C + k];
            L += c->r[n * FD_M + m] * o;
        }
    return L;
}
// cross-entropy: p = logits (N*V), targets in ints, mean over the non-ignored rows
static double fd_xent(const double *p, const void *vc) {
    const fd_ctx *c = (const fd_ctx *)vc;
    double L = 0;
    for (int n = 0; n < FD_N; n++) {
        if (c->ints[n] < 0) continue;
        double mx = p[n * FD_V], s = 0;
        for (int v = 1; v < FD_V; v++) mx = fmax(mx, p[n * FD_V + v]);
        for (int v = 0; v < FD_V; v++) s += exp(p[n * FD_V + v] - mx);
        L += (log(s) + mx - p[n * FD_V + c->ints[n]]) * 0.5;  // 2 rows count: scale 1/2
    }
    return L;
}
// rope: p = x [N, 2 heads, 8]; positions in ints; tables in cos_t/sin_t [8 positions, 4]
static double fd_rope(const double *p, const void *vc) {
    const fd_ctx *c = (const fd_ctx *)vc;
    double L = 0;
    for (int n = 0; n < FD_N; n++)
        for (int h = 0; h < 2; h++)
            for (int i = 0; i < 4; i++) {
                const double *v = p + (n * 2 + h) * 8;
                double cs = c->cos_t[c->ints[n] * 4 + i], sn = c->sin_t[c->ints[n] * 4 + i];
                L += c->r[(n * 2 + h) * 8 + i] * (v[i] * cs - v[i + 4] * sn);
                L += c->r[(n * 2 + h) * 8 + i + 4] * (v[i + 4] * cs + v[i] * sn);
            }
    return L;
}

static int test_backward_ops(void) {
    lf_rng rng;
    lf_rng_seed(&rng, 99);
    static double pd[1024], rd[1024];
    static float pf[1024], rf[1024], g[1024], out[1024], rstd[8];
    fd_ctx c;
    memset(&c, 0, sizeof c);
    c.r = rd;
    fd_fill(&rng, rd, rf, 1024, 1.0);

    // rmsnorm
    fd_fill(&rng, pd, pf, FD_N * FD_C + FD_C, 1.0);
    memset(g, 0, sizeof g);
    lf__rmsnorm_forward(out, rstd, pf, pf + FD_N * FD_C, FD_N, FD_C, 1e-5f);
    lf__rmsnorm_backward(g, g + FD_N * FD_C, rf, pf, pf + FD_N * FD_C, rstd, FD_N, FD_C);
    if (fd_compare("rmsnorm", fd_rmsnorm, &c, pd, FD_N * FD_C + FD_C, g)) return 1;

    // swiglu
    fd_fill(&rng, pd, pf, 2 * FD_N * FD_C, 2.0);
    lf__swiglu_backward(g, g + FD_N * FD_C, rf, pf, pf + FD_N * FD_C, FD_N * FD_C);
    if (fd_compare("swiglu", fd_swiglu, &c, pd, 2 * FD_N * FD_C, g)) return 1;

    // matmul with bias, on a pool
    lf_pool *pool;
    CHECK_OK(lf_pool_create(&pool, 2));
    int64_t nx = FD_N * FD_C, nw = FD_M * FD_C;
    fd_fill(&rng, pd, pf, nx + nw + FD_M, 1.0);
    float *scratch = (float *)malloc(lf__matmul_backward_scratch(FD_N, FD_M, FD_C, 2, true) * sizeof(float));
    memset(g, 0, sizeof g);
    lf__matmul_backward(pool, g, g + nx, g + nx + nw, rf, pf, pf + nx, NULL, FD_N, FD_M, FD_C, scratch);
    free(scratch);
    lf_pool_destroy(pool);
    if (fd_compare("matmul", fd_matmul, &c, pd, nx + nw + FD_M, g)) return 1;

    // cross-entropy, one row ignored
    int32_t targets[FD_N] = {3, -100, 10};
    c.ints = targets;
    fd_fill(&rng, pd, pf, FD_N * FD_V, 3.0);
    float losses[FD_N];
    memcpy(g, pf, sizeof(float) * FD_N * FD_V);
    lf__crossentropy_backward(g, losses, targets, NULL, FD_N, FD_V, 0.5f);
    CHECK(losses[1] == 0);
    if (fd_compare("cross-entropy", fd_xent, &c, pd, FD_N * FD_V, g)) return 1;

    // rope: the backward of a rotation by the stored tables
    float cs[32], sn[32];
    for (int i = 0; i < 32; i++) {
        float a = lf_rng_normal(&rng);
        cs[i] = cosf(a), sn[i] = sinf(a);
    }
    int32_t pos[FD_N] = {0, 5, 7};
    c.ints = pos, c.cos_t = cs, c.sin_t = sn;
    fd_fill(&rng, pd, pf, FD_N * 16, 1.0);
    memcpy(g, rf, sizeof(float) * FD_N * 16);
    lf__rope_backward(g, cs, sn, pos, FD_N, 2, 8);
    if (fd_compare("rope", fd_rope, &c, pd, FD_N * 16, g)) return 1;

    // embedding: rows receive their tokens' gradients, repeated tokens summed
    float wte[4 * 3] = {0}, dxe[3 * 3] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    int32_t toks[3] = {2, 0, 2};
    lf__embedding_backward(wte, dxe, toks, 3, 3);
    CHECK(wte[0] == 4 && wte[6] == 8 && wte[7] == 10 && wte[8] == 12 && wte[3] == 0);
    return 0;
}

// SHA-256: FIPS 180-4's test vectors, whole and fed in uneven pieces.
static int test_sha256(void) {
    static const struct { const char *in; long repeat; const char *hex; } v[] = {
        {"", 1, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", 1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"a", 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
    };
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        lf_sha256 c;
        char hex[65];
        lf_sha256_init(&c);
        for (long r = 0; r < v[i].repeat; r++) lf_sha256_update(&c, v[i].in, strlen(v[i].in));
        lf_sha256_final(&c, hex);
        CHECK(strcmp(hex, v[i].hex) == 0);
    }
    char buf[1000];
    for (int i = 0; i < 1000; i++) buf[i] = (char)(i * 7);
    char whole[65], parts[65];
    lf_sha256 a, b;
    lf_sha256_init(&a), lf_sha256_init(&b);
    lf_sha256_update(&a, buf, sizeof buf);
    for (size_t off = 0, k = 1; off < sizeof buf; off += k, k = k * 3 % 71 + 1) lf_sha256_update(&b, buf + off, LF__MIN(k, sizeof buf - off));
    lf_sha256_final(&a, whole), lf_sha256_final(&b, parts);
    CHECK(strcmp(whole, parts) == 0);
    return 0;
}

static const lf_test tests_core[] = {
    {"core/sha256", test_sha256},
    {"tensor/backward_ops_finite_differences", test_backward_ops},
    {"config/yaml", test_yaml},
    {"config/overrides", test_config_overrides},
    {"tensor/exp16", test_exp16},
    {"core/status_and_errors", test_status_and_errors},
    {"core/arena", test_arena},
    {"core/rng", test_rng},
    {"core/pool", test_pool},
    {"core/files", test_files},
    {"config/json", test_json},
    {"tensor/half_conversions", test_half_conversions},
    {"tensor/matmul", test_matmul},
    {"tensor/matmul_deterministic", test_matmul_deterministic},
};
