// tests/test_lora.c — LoRA adapters (section 7) against PEFT, and the training paths they use.
// References: tests/ref/make_lora.py (PEFT 0.21.2 on the tiny checkpoints): the adapters in
// PEFT's own files, the loss, logits, A/B gradients and merge_and_unload() logits.

// All the logits of a [B, T] batch, one row at a time through the KV cache.
static int lora_logits(lf_model *m, const int32_t *ids, int B, int T, float *out) {
    lf_kv kv;
    CHECK_OK(lf_kv_init(&kv, m, 1, T));
    int8_t all[64];
    memset(all, 1, sizeof all);
    for (int b = 0; b < B; b++) {
        lf_kv_seq_truncate(&kv, 0, 0);
        lf_batch bt = {T, ids + (size_t)b * (size_t)T, NULL, NULL, all, NULL};
        CHECK_OK(lf_model_forward(m, &kv, &bt, out + (size_t)b * (size_t)T * (size_t)m->cfg.V));
    }
    lf_kv_deinit(&kv);
    return 0;
}

static double lora_max_diff(const float *a, const float *b, int64_t n) {
    double d = 0;
    for (int64_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

// Loads PEFT's adapter, then checks logits, loss, every A/B gradient, merged logits and a saved
// merged model. Tolerances: logits 1e-4 absolute, loss 1e-5 relative, gradients 1e-4 of the
// tensor's largest entry (as the full fine-tuning test).
static int lora_vs_peft(const char *model, const char *ref) {
    char dir[512], rdir[600], path[700];
    snprintf(dir, sizeof dir, LF_TEST_MODELS "%s", model);
    snprintf(rdir, sizeof rdir, "%s/%s", dir, ref);
    lf_st_file in, g;
    snprintf(path, sizeof path, "%s/grads.safetensors", dir);
    CHECK_OK(lf_st_open(&in, path));
    snprintf(path, sizeof path, "%s/grads.safetensors", rdir);
    CHECK_OK(lf_st_open(&g, path));
    const lf_st_tensor *ids = lf_st_find(&in, "input_ids"), *labels = lf_st_find(&in, "labels");
    const lf_st_tensor *loss = lf_st_find(&g, "loss"), *logits = lf_st_find(&g, "logits"), *merged = lf_st_find(&g, "merged_logits");
    CHECK(ids && labels && loss && logits && merged);
    int B = (int)ids->shape[0], T = (int)ids->shape[1];
    lf_model m;
    lf_model_desc d = {.path = dir, .n_threads = 2, .max_tokens = 64, .max_seq_len = 64};
    CHECK_OK(lf_model_open(&m, &d));
    CHECK_OK(lf_lora_load(&m, rdir));
    int64_t n = (int64_t)B * T * m.cfg.V;
    float *got = (float *)malloc((size_t)n * sizeof(float));
    CHECK(got);
    if (lora_logits(&m, (const int32_t *)ids->data, B, T, got)) return 1;
    double dl = lora_max_diff(got, (const float *)logits->data, n);
    // training: loss and the gradient of every lora_A / lora_B
    CHECK_OK(lf_model_train_begin(&m, B, T, 0));
    float l = 0;
    lf_train_batch tb = {.tokens = (const int32_t *)ids->data, .labels = (const int32_t *)labels->data, .pos = NULL, .n_scored = 0};
    CHECK_OK(lf_model_train_grads(&m, &tb, &l));
    float lref = ((const float *)loss->data)[0];
    int checked = 0;
    int64_t total = 0;
    double worst = 0;
    for (int i = 0; i < g.n; i++) {
        const lf_st_tensor *t = &g.tensors[i];
        if (strncmp(t->name, "grad.", 5) != 0) continue;
        int64_t k = 0;
        const float *ours = lf_model_grad(&m, t->name + 5, &k), *theirs = (const float *)t->data;
        CHECK(ours && k == t->shape[0] * t->shape[1]);
        double mx = 0, e = 0;
        for (int64_t j = 0; j < k; j++) mx = fmax(mx, fabs(theirs[j])), e = fmax(e, fabs((double)ours[j] - theirs[j]));
        worst = fmax(worst, e / mx), checked++, total += k;
    }
    if (getenv("LF_TEST_VERBOSE"))
        fprintf(stderr, "  %s/%s: logits %.2g, loss %.7f vs %.7f, %d A/B gradients, worst relative %.2g\n", model, ref, dl,
                l, lref, checked, worst);
    CHECK(dl <= 1e-4);
    CHECK(fabsf(l - lref) <= 1e-5f * fabsf(lref));
    CHECK(checked == 14 * m.cfg.L && worst <= 1e-4);
    CHECK(lf_model_n_trainable(&m) == total);
    CHECK(!lf_model_grad(&m, "model.norm.weight", NULL));  // the base is frozen
    lf_model_close(&m);
    // merge_and_unload: the logits of PEFT's merged model, then the same after a save and reload
    CHECK_OK(lf_model_open(&m, &d));
    CHECK_OK(lf_lora_load(&m, rdir));
    CHECK_ERR(lf_lora_load(&m, rdir), LF_ERR_ARG, "adapters already");  // the loaded ones stay
    CHECK(m.lora_r == 4 && m.layers[0].lora[LF_PROJ_Q]);
    char tmp0[] = "/tmp/lf-test-unmerged-XXXXXX";
    CHECK(mkdtemp(tmp0));
    CHECK_ERR(lf_model_save(&m, tmp0, LF_DTYPE_INVALID), LF_ERR_ARG, "adapters are attached");
    rmdir(tmp0);
    CHECK_OK(lf_lora_merge(&m));
    CHECK(m.lora_r == 0 && !m.layers[0].lora[LF_PROJ_Q]);
    CHECK_ERR(lf_lora_merge(&m), LF_ERR_ARG, "no adapters");
    if (lora_logits(&m, (const int32_t *)ids->data, B, T, got)) return 1;
    double dm = lora_max_diff(got, (const float *)merged->data, n);
    char tmp[] = "/tmp/lf-test-merged-XXXXXX";
    CHECK(mkdtemp(tmp));
    CHECK_OK(lf_model_save(&m, tmp, LF_DTYPE_INVALID));
    CHECK_ERR(lf_model_save(&m, dir, LF_DTYPE_INVALID), LF_ERR_ARG, "own directory");
    lf_lora_desc more = lf_lora_desc_default();  // a merged model takes new adapters
    CHECK_OK(lf_lora_attach(&m, &more));
    lf_model_close(&m);
    lf_model_desc d2 = d;
    d2.path = tmp;
    CHECK_OK(lf_model_open(&m, &d2));
    float *again = (float *)malloc((size_t)n * sizeof(float));
    CHECK(again);
    if (lora_logits(&m, (const int32_t *)ids->data, B, T, again)) return 1;
    double ds = lora_max_diff(got, again, n);
    if (getenv("LF_TEST_VERBOSE")) fprintf(stderr, "  %s/%s: merged logits %.2g, saved and reloaded %.2g\n", model, ref, dm, ds);
    CHECK(dm <= 1e-4 && ds == 0);
    lf_model_close(&m);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    CHECK(system(cmd) == 0);
    free(got), free(again);
    lf_st_close(&in), lf_st_close(&g);
    return 0;
}

static int test_lora_llama(void) { return lora_vs_peft("llama_f32", "lora_ref"); }
static int test_lora_rslora(void) { return lora_vs_peft("llama_f32", "lora_rs_ref"); }
static int test_lora_qwen2(void) { return lora_vs_peft("qwen2_f32", "lora_ref"); }

// Interop the other way: an adapter LargeForge saved (tests/ref/lf_make_adapter.c) loads in PEFT
// (tests/ref/check_peft_loads.py recorded PEFT's logits with it, and after merge_and_unload):
// LargeForge's logits with the same adapter, and merged, agree within 1e-4; saving it again
// gives the same file byte for byte.
static int test_lora_peft_loads_ours(void) {
    const char *dir = LF_TEST_MODELS "llama_f32", *ad = LF_TEST_MODELS "llama_f32/lora_lf";
    lf_st_file in, ref;
    CHECK_OK(lf_st_open(&in, LF_TEST_MODELS "llama_f32/grads.safetensors"));
    CHECK_OK(lf_st_open(&ref, LF_TEST_MODELS "llama_f32/lora_lf/peft_logits.safetensors"));
    const lf_st_tensor *ids = lf_st_find(&in, "input_ids"), *lg = lf_st_find(&ref, "logits"), *mg = lf_st_find(&ref, "merged_logits");
    CHECK(ids && lg && mg);
    int B = (int)ids->shape[0], T = (int)ids->shape[1];
    lf_model m;
    lf_model_desc d = {.path = dir, .n_threads = 2, .max_tokens = 64, .max_seq_len = 64};
    CHECK_OK(lf_model_open(&m, &d));
    CHECK_OK(lf_lora_load(&m, ad));
    int64_t n = (int64_t)B * T * m.cfg.V;
    float *got = (float *)malloc((size_t)n * sizeof(float));
    CHECK(got);
    if (lora_logits(&m, (const int32_t *)ids->data, B, T, got)) return 1;
    double dl = lora_max_diff(got, (const float *)lg->data, n);
    char tmp[] = "/tmp/lf-test-lfad-XXXXXX", a[600], b[600];
    CHECK(mkdtemp(tmp));
    CHECK_OK(lf_lora_save(&m, tmp));
    snprintf(a, sizeof a, "%s/adapter_model.safetensors", ad), snprintf(b, sizeof b, "%s/adapter_model.safetensors", tmp);
    char *x = NULL, *y = NULL;
    size_t xl = 0, yl = 0;
    CHECK_OK(lf_file_read(a, 0, &x, &xl));
    CHECK_OK(lf_file_read(b, 0, &y, &yl));
    CHECK(xl == yl && memcmp(x, y, xl) == 0);
    lf_free(x), lf_free(y);
    CHECK_OK(lf_lora_merge(&m));
    if (lora_logits(&m, (const int32_t *)ids->data, B, T, got)) return 1;
    double dm = lora_max_diff(got, (const float *)mg->data, n);
    if (getenv("LF_TEST_VERBOSE")) fprintf(stderr, "  ours in PEFT: logits %.2g, merged %.2g\n", dl, dm);
    CHECK(dl <= 1e-4 && dm <= 1e-4);
    free(got);
    lf_model_close(&m);
    lf_st_close(&in), lf_st_close(&ref);
    snprintf(a, sizeof a, "rm -rf %s", tmp);
    CHECK(system(a) == 0);
    return 0;
}

// Save, reload: the same tensors bit for bit and the same settings; training moves A and B only.
static int test_lora_save_train(void) {
    lf_model m;
    lf_model_desc d = {.path = LF_TEST_MODELS "llama_bf16", .n_threads = 2, .max_tokens = 64, .max_seq_len = 64};
    CHECK_OK(lf_model_open(&m, &d));
    lf_lora_desc ld = lf_lora_desc_default();
    ld.r = 4, ld.target_modules = "all-linear", ld.seed = 7, ld.use_rslora = true;
    CHECK_OK(lf_lora_attach(&m, &ld));
    CHECK_ERR(lf_lora_attach(&m, &ld), LF_ERR_ARG, "adapters already");
    const lf_lowrank *k = m.layers[1].lora[LF_PROJ_DOWN];
    CHECK(k && k->r == 4 && fabsf(k->scale - 8.0f) < 1e-6f && k->B[0] == 0 && k->A[0] != 0);
    uint16_t w0 = ((const uint16_t *)m.layers[0].w[LF_PROJ_Q].data)[5];
    CHECK_OK(lf_model_train_begin(&m, 2, 8, 0));
    lf_optim_desc od = lf_optim_desc_default();
    od.learning_rate = 1e-2f, od.total_steps = 3;
    lf_optim o;
    CHECK_OK(lf_optim_init(&o, &m, &od));
    CHECK(o.n == lf_model_n_trainable(&m));
    int32_t tok[16];
    for (int i = 0; i < 16; i++) tok[i] = (i * 7 + 3) % m.cfg.V;
    lf_train_batch tb = {.tokens = tok, .labels = tok, .pos = NULL, .n_scored = 0};
    float loss[3], norm;
    for (int s = 0; s < 3; s++) {
        lf_model_train_zero_grads(&m);
        CHECK_OK(lf_model_train_grads(&m, &tb, &loss[s]));
        CHECK_OK(lf_optim_step(&o, &m, &norm));
    }
    CHECK(loss[2] < loss[0]);
    // the frozen base was upcast from BF16: its value is the bf16 one, and it did not move
    CHECK(((const float *)m.layers[0].w[LF_PROJ_Q].data)[5] == lf_bf16_to_f32(w0));
    CHECK(k->B[0] != 0);
    char tmp[] = "/tmp/lf-test-lora-XXXXXX";
    CHECK(mkdtemp(tmp));
    CHECK_OK(lf_lora_save(&m, tmp));
    lf_model m2;
    CHECK_OK(lf_model_open(&m2, &d));
    CHECK_OK(lf_lora_load(&m2, tmp));
    lf_lora_desc got = lf_lora_get_desc(&m2);
    CHECK(got.r == 4 && got.alpha == ld.alpha && got.dropout == ld.dropout && got.use_rslora);
    CHECK(strcmp(got.target_modules, "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj") == 0);
    for (int l = 0; l < m.cfg.L; l++)
        for (int p = 0; p < LF_PROJ_COUNT; p++) {
            const lf_lowrank *a = m.layers[l].lora[p], *b = m2.layers[l].lora[p];
            int64_t in = m.layers[l].w[p].shape[1], out = m.layers[l].w[p].shape[0];
            CHECK(b && b->scale == a->scale && memcmp(a->A, b->A, (size_t)(4 * in) * 4) == 0 &&
                  memcmp(a->B, b->B, (size_t)(4 * out) * 4) == 0);
        }
    lf_model_close(&m);
    lf_model_close(&m2);
    lf_optim_deinit(&o);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    CHECK(system(cmd) == 0);
    return 0;
}

// Dropout: the backward pass regenerates the forward's masks, so the gradient of an A entry
// matches central differences of the loss at the same micro-batch index.
static int test_lora_dropout_gradient(void) {
    lf_model m;
    lf_model_desc d = {.path = LF_TEST_MODELS "llama_f32", .n_threads = 2, .max_tokens = 64, .max_seq_len = 64};
    CHECK_OK(lf_model_open(&m, &d));
    lf_lora_desc ld = lf_lora_desc_default();
    ld.r = 2, ld.dropout = 0.5f, ld.target_modules = "v_proj,down_proj", ld.seed = 3;
    CHECK_OK(lf_lora_attach(&m, &ld));
    for (int l = 0; l < m.cfg.L; l++)  // a nonzero B, so that A's gradient is not zero
        for (int i = 0; i < 2 * m.layers[l].w[LF_PROJ_V].shape[0]; i++) m.layers[l].lora[LF_PROJ_V]->B[i] = 0.05f * (float)((i % 7) - 3);
    CHECK_OK(lf_model_train_begin(&m, 1, 12, 0));
    int32_t tok[12];
    for (int i = 0; i < 12; i++) tok[i] = (i * 5 + 1) % m.cfg.V;
    lf_train_batch tb = {.tokens = tok, .labels = tok, .pos = NULL, .n_scored = 0};
    float l0, lp, lm, la;
    lf_model_train_rng(&m, 11, 4);
    CHECK_OK(lf_model_train_grads(&m, &tb, &l0));
    const float *gp = lf_model_grad(&m, "base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight", NULL);
    CHECK(gp);
    float g[40];  // a copy: later calls accumulate into the gradient
    memcpy(g, gp, sizeof g);
    float *A = m.layers[0].lora[LF_PROJ_V]->A;
    int worst = 0;
    for (int i = 0; i < 8; i++) {
        int j = i * 5;
        float keep = A[j];
        double fd[2];
        for (int k = 0; k < 2; k++) {  // central differences at h and h/2, Richardson-extrapolated
            float h = k ? 5e-3f : 1e-2f;
            A[j] = keep + h, lf_model_train_rng(&m, 11, 4);
            CHECK_OK(lf_model_train_grads(&m, &tb, &lp));
            A[j] = keep - h, lf_model_train_rng(&m, 11, 4);
            CHECK_OK(lf_model_train_grads(&m, &tb, &lm));
            fd[k] = ((double)lp - lm) / (2 * h);
        }
        A[j] = keep;
        double est = (4 * fd[1] - fd[0]) / 3;
        if (fabs(est - g[j]) > 5e-3 * fmax(0.1, fabs(est))) {
            fprintf(stderr, "    A[%d]: analytic %.6g, central difference %.6g\n", j, g[j], est);
            worst++;
        }
    }
    lf_model_train_rng(&m, 11, 5);  // another micro-batch index draws other masks
    CHECK_OK(lf_model_train_grads(&m, &tb, &la));
    CHECK(la != l0);
    lf_model_close(&m);
    return worst;
}

// Packing: two samples in one row with restarted positions give the loss and gradients of the
// same samples in rows of their own.
static int test_packing_isolation(void) {
    lf_model m1, m2;
    lf_model_desc d = {.path = LF_TEST_MODELS "mistral_f32", .n_threads = 2, .max_tokens = 64, .max_seq_len = 64};
    CHECK_OK(lf_model_open(&m1, &d));
    CHECK_OK(lf_model_open(&m2, &d));
    enum { T = 14, A = 9, Bn = 5 };
    int32_t packed[T], plab[T], ppos[T], rows[2 * T], rlab[2 * T];
    for (int i = 0; i < T; i++) packed[i] = (i * 11 + 2) % m1.cfg.V, plab[i] = packed[i], ppos[i] = i < A ? i : i - A;
    plab[A] = -100;  // a sample's first label: nothing predicts it across the boundary
    for (int i = 0; i < 2 * T; i++) rows[i] = 0, rlab[i] = -100;
    for (int i = 0; i < A; i++) rows[i] = packed[i], rlab[i] = plab[i];
    for (int i = 0; i < Bn; i++) rows[T + i] = packed[A + i], rlab[T + i] = i ? packed[A + i] : -100;
    CHECK_OK(lf_model_train_begin(&m1, 1, T, 0));
    CHECK_OK(lf_model_train_begin(&m2, 2, T, 0));
    float l1, l2;
    lf_train_batch b1 = {.tokens = packed, .labels = plab, .pos = ppos, .n_scored = 0}, b2 = {.tokens = rows, .labels = rlab, .pos = NULL, .n_scored = 0};
    CHECK_OK(lf_model_train_grads(&m1, &b1, &l1));
    CHECK_OK(lf_model_train_grads(&m2, &b2, &l2));
    int64_t n = 0;
    const char *names[] = {"model.layers.1.self_attn.q_proj.weight", "model.layers.0.mlp.down_proj.weight", "model.norm.weight",
                           "lm_head.weight"};
    double worst = 0;
    for (int i = 0; i < 4; i++) {
        const float *g1 = lf_model_grad(&m1, names[i], &n), *g2 = lf_model_grad(&m2, names[i], NULL);
        CHECK(g1 && g2);
        double mx = 0;
        for (int64_t j = 0; j < n; j++) mx = fmax(mx, fabs(g2[j]));
        worst = fmax(worst, lora_max_diff(g1, g2, n) / mx);
    }
    if (getenv("LF_TEST_VERBOSE")) fprintf(stderr, "  packed vs separate rows: loss %.7f vs %.7f, gradients %.2g\n", l1, l2, worst);
    CHECK(fabsf(l1 - l2) <= 1e-6f * fabsf(l2) && worst <= 1e-5);
    int32_t bad[T];
    memcpy(bad, ppos, sizeof bad);
    bad[3] = 7;
    lf_train_batch b3 = {.tokens = packed, .labels = plab, .pos = bad, .n_scored = 0};
    CHECK_ERR(lf_model_train_grads(&m1, &b3, &l1), LF_ERR_ARG, "position 3 is 7");
    lf_model_close(&m1);
    lf_model_close(&m2);
    return 0;
}

// Broken adapter directories: each a clear error naming the file and the field or tensor.
static int test_lora_bad_adapters(void) {
    char tmp[] = "/tmp/lf-test-badlora-XXXXXX";
    CHECK(mkdtemp(tmp));
    char cfgp[600], stp[600];
    snprintf(cfgp, sizeof cfgp, "%s/adapter_config.json", tmp);
    snprintf(stp, sizeof stp, "%s/adapter_model.safetensors", tmp);
    char *good_st = NULL;
    size_t st_len = 0;
    CHECK_OK(lf_file_read(LF_TEST_MODELS "llama_f32/lora_ref/adapter_model.safetensors", 0, &good_st, &st_len));
    static const struct {
        const char *cfg;
        lf_status st;
        const char *msg;
    } cases[] = {
        {"{\"r\": 4}", LF_ERR_CONFIG, "lora_alpha"},
        {"{\"r\": \"4\", \"lora_alpha\": 8}", LF_ERR_CONFIG, "'r'"},
        {"{\"r\": 4, \"lora_alpha\": 8, \"use_dora\": true}", LF_ERR_UNSUPPORTED, "use_dora"},
        {"{\"r\": 4, \"lora_alpha\": 8, \"bias\": \"all\"}", LF_ERR_UNSUPPORTED, "bias"},
        {"{\"r\": 4, \"lora_alpha\": 8, \"rank_pattern\": {\"q_proj\": 8}}", LF_ERR_UNSUPPORTED, "rank_pattern"},
        {"{\"r\": 4, \"lora_alpha\": 8, \"peft_type\": \"IA3\"}", LF_ERR_UNSUPPORTED, "peft_type IA3"},
        {"{\"r\": 8, \"lora_alpha\": 8}", LF_ERR_SHAPE, "lora_A.weight' is not [8, "},
        {"[1]", LF_ERR_FORMAT, "not a JSON object"},
    };
    lf_model m;
    lf_model_desc d = {.path = LF_TEST_MODELS "llama_f32", .n_threads = 1, .max_tokens = 16, .max_seq_len = 32};
    CHECK_OK(lf_model_open(&m, &d));
    CHECK_ERR(lf_lora_load(&m, tmp), LF_ERR_IO, "adapter_config.json");
    CHECK_OK(lf_file_write_atomic(stp, good_st, st_len));
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        CHECK_OK(lf_file_write_atomic(cfgp, cases[i].cfg, strlen(cases[i].cfg)));
        CHECK_ERR(lf_lora_load(&m, tmp), cases[i].st, cases[i].msg);
        CHECK(m.lora_r == 0 && !m.lora_);
    }
    // a tensor that is not a projection's A or B, and an A without its B
    const char *cfg = "{\"r\": 4, \"lora_alpha\": 8}";
    CHECK_OK(lf_file_write_atomic(cfgp, cfg, strlen(cfg)));
    float a[4 * 64] = {0};
    lf_st_entry e1 = {"base_model.model.lm_head.lora_A.weight", LF_DTYPE_F32, 2, {4, 64}, a};
    CHECK_OK(lf_st_write(stp, &e1, 1, NULL, 0));
    CHECK_ERR(lf_lora_load(&m, tmp), LF_ERR_UNSUPPORTED, "lm_head.lora_A.weight' is not a lora_A/lora_B");
    lf_st_entry e2 = {"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", LF_DTYPE_F32, 2, {4, 64}, a};
    CHECK_OK(lf_st_write(stp, &e2, 1, NULL, 0));
    CHECK_ERR(lf_lora_load(&m, tmp), LF_ERR_FORMAT, "q_proj.lora_B.weight' is missing");
    lf_lora_desc ld = lf_lora_desc_default();
    ld.target_modules = "q_proj,lm_head";
    CHECK_ERR(lf_lora_attach(&m, &ld), LF_ERR_CONFIG, "'lm_head' is not one of");
    ld.target_modules = "q_proj", ld.r = 0;
    CHECK_ERR(lf_lora_attach(&m, &ld), LF_ERR_CONFIG, "lora.r");
    ld.r = 4, ld.dropout = 1;
    CHECK_ERR(lf_lora_attach(&m, &ld), LF_ERR_CONFIG, "lora.lora_dropout");
    CHECK_ERR(lf_lora_save(&m, tmp), LF_ERR_ARG, "no adapters");
    CHECK_ERR(lf_lora_merge(&m), LF_ERR_ARG, "no adapters");
    lf_model_close(&m);
    free(good_st);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    CHECK(system(cmd) == 0);
    return 0;
}

// Gradient checkpointing recomputes each layer in the backward pass: the same loss and the same
// gradients bit for bit, full fine-tuning (qwen2: biases, tied head) and adapters with dropout.
static int checkpointing_same(bool lora) {
    lf_model m[2];
    lf_model_desc d = {.path = LF_TEST_MODELS "qwen2_f32", .n_threads = 2, .max_tokens = 32, .max_seq_len = 32};
    float loss[2];
    int32_t tok[24];
    for (int i = 0; i < 24; i++) tok[i] = (i * 17 + 3) % 100;
    lf_train_batch tb = {.tokens = tok, .labels = tok, .pos = NULL, .n_scored = 0};
    for (int k = 0; k < 2; k++) {
        CHECK_OK(lf_model_open(&m[k], &d));
        lf_lora_desc ld = lf_lora_desc_default();
        ld.target_modules = "all-linear", ld.dropout = 0.2f, ld.seed = 1;
        if (lora) CHECK_OK(lf_lora_attach(&m[k], &ld));
        if (lora)  // a nonzero B, so that every gradient is exercised
            for (int l = 0; l < m[k].cfg.L; l++)
                for (int p = 0; p < LF_PROJ_COUNT; p++)
                    for (int64_t i = 0; i < 8 * m[k].layers[l].w[p].shape[0]; i++) m[k].layers[l].lora[p]->B[i] = 0.01f * (float)(i % 5);
        CHECK_OK(lf_model_train_begin(&m[k], 2, 12, k ? LF_TRAIN_CHECKPOINTING : 0));
        CHECK_OK(lf_model_train_grads(&m[k], &tb, &loss[k]));
    }
    CHECK(memcmp(&loss[0], &loss[1], sizeof(float)) == 0);
    CHECK(lf_model_n_trainable(&m[0]) == lf_model_n_trainable(&m[1]));
    // evaluation: no dropout (the same loss twice), no gradient, the dropout stream untouched
    uint64_t calls = lf_model_train_calls(&m[0]);
    int64_t ng = 0;
    const float *g = lf_model_grad(&m[0], lora ? "base_model.model.model.layers.0.mlp.up_proj.lora_B.weight" : "model.norm.weight", &ng);
    float *keep = (float *)malloc((size_t)ng * sizeof(float)), e1, e2;
    int scored = 0;
    CHECK(g && keep);
    memcpy(keep, g, (size_t)ng * sizeof(float));
    CHECK_OK(lf_model_train_eval(&m[0], &tb, &e1, &scored));
    CHECK_OK(lf_model_train_eval(&m[0], &tb, &e2, NULL));
    CHECK(e1 == e2 && scored == 22 && lf_model_train_calls(&m[0]) == calls && memcmp(keep, g, (size_t)ng * sizeof(float)) == 0);
    free(keep);
    char name[200];
    int compared = 0;
    for (int l = 0; l < m[0].cfg.L; l++)
        for (int p = 0; p < LF_PROJ_COUNT; p++)
            for (int ab = 0; ab < 2; ab++) {
                if (lora) snprintf(name, sizeof name, "base_model.model.model.layers.%d.%s.lora_%c.weight", l, lf_proj_name((lf_proj)p), "AB"[ab]);
                else snprintf(name, sizeof name, "model.layers.%d.%s.%s", l, lf_proj_name((lf_proj)p), ab ? "bias" : "weight");
                int64_t n0 = 0, n1 = 0;
                const float *g0 = lf_model_grad(&m[0], name, &n0), *g1 = lf_model_grad(&m[1], name, &n1);
                CHECK(!g0 == !g1 && n0 == n1);
                if (!g0) continue;
                CHECK(memcmp(g0, g1, (size_t)n0 * sizeof(float)) == 0);
                compared++;
            }
    CHECK(compared >= (lora ? 14 : 10) * m[0].cfg.L);
    lf_model_close(&m[0]), lf_model_close(&m[1]);
    return 0;
}
static int test_checkpointing_full(void) { return checkpointing_same(false); }
static int test_checkpointing_lora(void) { return checkpointing_same(true); }

// QLoRA: a model quantized to NF4 (double-quantized) trains its adapters on the dequantized
// weights. The reference is the same model saved with those weights in F32 and reopened: the
// loss and the A/B gradients agree within 1e-5 relative, and the quantized model's logits equal
// the saved one's within 1e-5.
static int test_qlora_nf4(void) {
    lf_model q, f;
    lf_model_desc d = {.path = LF_TEST_MODELS "llama_f32", .n_threads = 2, .max_tokens = 32, .max_seq_len = 32};
    CHECK_OK(lf_model_open(&q, &d));
    CHECK_OK(lf_model_quantize(&q, &(lf_qtensor_desc){.type = LF_QTYPE_NF4, .double_quant = true}));
    CHECK(q.layers[1].q[LF_PROJ_UP] && !q.layers[1].w[LF_PROJ_UP].data);
    CHECK_ERR(lf_model_quantize(&q, &(lf_qtensor_desc){.type = LF_QTYPE_NF4, .double_quant = true}), LF_ERR_ARG, "quantized already");
    char tmp[] = "/tmp/lf-test-qlora-XXXXXX";
    CHECK(mkdtemp(tmp));
    CHECK_OK(lf_model_save(&q, tmp, LF_DTYPE_F32));
    lf_model_desc d2 = d;
    d2.path = tmp;
    CHECK_OK(lf_model_open(&f, &d2));
    int32_t tok[24];
    for (int i = 0; i < 24; i++) tok[i] = (i * 29 + 7) % q.cfg.V;
    float *lq = (float *)malloc((size_t)24 * (size_t)q.cfg.V * sizeof(float)), *lf_ = (float *)malloc((size_t)24 * (size_t)q.cfg.V * sizeof(float));
    CHECK(lq && lf_);
    if (lora_logits(&q, tok, 1, 24, lq) || lora_logits(&f, tok, 1, 24, lf_)) return 1;
    double dl = lora_max_diff(lq, lf_, 24 * q.cfg.V);
    free(lq), free(lf_);
    lf_lora_desc ld = lf_lora_desc_default();
    ld.target_modules = "all-linear", ld.seed = 5, ld.dropout = 0;
    CHECK_OK(lf_lora_attach(&q, &ld));
    CHECK_OK(lf_lora_attach(&f, &ld));
    for (int l = 0; l < q.cfg.L; l++)  // the same nonzero B in both
        for (int p = 0; p < LF_PROJ_COUNT; p++)
            for (int64_t i = 0; i < 8 * q.layers[l].w[p].shape[0]; i++)
                q.layers[l].lora[p]->B[i] = f.layers[l].lora[p]->B[i] = 0.02f * (float)((i % 9) - 4);
    CHECK_OK(lf_model_train_begin(&q, 2, 12, 0));
    CHECK_OK(lf_model_train_begin(&f, 2, 12, 0));
    lf_train_batch tb = {.tokens = tok, .labels = tok, .pos = NULL, .n_scored = 0};
    float a, b;
    CHECK_OK(lf_model_train_grads(&q, &tb, &a));
    CHECK_OK(lf_model_train_grads(&f, &tb, &b));
    double worst = 0;
    char name[200];
    for (int l = 0; l < q.cfg.L; l++)
        for (int p = 0; p < LF_PROJ_COUNT; p++)
            for (int ab = 0; ab < 2; ab++) {
                snprintf(name, sizeof name, "base_model.model.model.layers.%d.%s.lora_%c.weight", l, lf_proj_name((lf_proj)p), "AB"[ab]);
                int64_t n = 0;
                const float *g1 = lf_model_grad(&q, name, &n), *g2 = lf_model_grad(&f, name, NULL);
                CHECK(g1 && g2);
                double mx = 0;
                for (int64_t i = 0; i < n; i++) mx = fmax(mx, fabs(g2[i]));
                worst = fmax(worst, lora_max_diff(g1, g2, n) / mx);
            }
    if (getenv("LF_TEST_VERBOSE")) fprintf(stderr, "  qlora nf4: logits %.2g, loss %.7f vs %.7f, gradients %.2g\n", dl, a, b, worst);
    CHECK(dl <= 1e-5 && fabsf(a - b) <= 1e-5f * fabsf(b) && worst <= 1e-5);
    CHECK_ERR(lf_model_train_begin(&q, 2, 12, 0), LF_ERR_ARG, "already in training");
    lf_model_close(&q), lf_model_close(&f);
    lf_model m;
    CHECK_OK(lf_model_open(&m, &d));
    CHECK_OK(lf_model_quantize(&m, &(lf_qtensor_desc){.type = LF_QTYPE_INT8}));
    CHECK_ERR(lf_model_train_begin(&m, 2, 12, 0), LF_ERR_ARG, "trains adapters only");
    lf_model_close(&m);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    CHECK(system(cmd) == 0);
    return 0;
}

// Adapters switched off: the base model's logits (the transformers fixture), on again: PEFT's.
static int test_lora_enable(void) {
    lf_st_file in, g;
    CHECK_OK(lf_st_open(&in, LF_TEST_MODELS "llama_f32/grads.safetensors"));
    CHECK_OK(lf_st_open(&g, LF_TEST_MODELS "llama_f32/lora_ref/grads.safetensors"));
    const lf_st_tensor *ids = lf_st_find(&in, "input_ids"), *base = lf_st_find(&in, "logits"), *lg = lf_st_find(&g, "logits");
    CHECK(ids && base && lg);
    int B = (int)ids->shape[0], T = (int)ids->shape[1];
    lf_model m;
    lf_model_desc d = {.path = LF_TEST_MODELS "llama_f32", .n_threads = 2, .max_tokens = 64, .max_seq_len = 64};
    CHECK_OK(lf_model_open(&m, &d));
    CHECK_OK(lf_lora_load(&m, LF_TEST_MODELS "llama_f32/lora_ref"));
    int64_t n = (int64_t)B * T * m.cfg.V;
    float *got = (float *)malloc((size_t)n * sizeof(float));
    CHECK(got);
    lf_lora_enable(&m, false);
    if (lora_logits(&m, (const int32_t *)ids->data, B, T, got)) return 1;
    double off = lora_max_diff(got, (const float *)base->data, n);
    lf_lora_enable(&m, true);
    if (lora_logits(&m, (const int32_t *)ids->data, B, T, got)) return 1;
    double on = lora_max_diff(got, (const float *)lg->data, n);
    // in training mode too: the reference log-probs of DPO come from the same model, adapters off
    CHECK_OK(lf_model_train_begin(&m, B, T, 0));
    lf_train_batch tb = {.tokens = (const int32_t *)ids->data, .labels = (const int32_t *)ids->data};
    float loss_on, loss_off;
    CHECK_OK(lf_model_train_eval(&m, &tb, &loss_on, NULL));
    lf_lora_enable(&m, false);
    CHECK_OK(lf_model_train_eval(&m, &tb, &loss_off, NULL));
    lf_lora_enable(&m, true);
    if (getenv("LF_TEST_VERBOSE")) fprintf(stderr, "  adapters off: %.2g from the base; on: %.2g from PEFT\n", off, on);
    CHECK(off <= 1e-4 && on <= 1e-4 && loss_on != loss_off);
    free(got);
    lf_model_close(&m);
    lf_st_close(&in), lf_st_close(&g);
    return 0;
}

// -- objectives over log-probabilities (lf_train_batch.objective)

typedef struct obj_ctx {
    float beta, scale;  // dpo_like: beta; mean_ce: -1 / n
    int n_calls;
} obj_ctx;

// The causal-LM mean written as an objective: -sum logp / n.
static float obj_mean_ce(void *user, const float *logp, float *dlogp, int B, int T) {
    obj_ctx *c = (obj_ctx *)user;
    double sum = 0;
    for (int i = 0; i < B * T; i++) sum += logp[i], dlogp[i] = c->scale;
    c->n_calls++;
    return (float)(sum * c->scale);
}

// A preference loss without a reference (DPO's shape): -log sigmoid(beta (S0 - S1)), S_b the sum
// of row b's log-probabilities (positions with no target contribute 0).
static float obj_dpo_like(void *user, const float *logp, float *dlogp, int B, int T) {
    obj_ctx *c = (obj_ctx *)user;
    double S[2] = {0, 0};
    for (int b = 0; b < 2 && b < B; b++)
        for (int t = 0; t < T; t++) S[b] += logp[b * T + t];
    double z = c->beta * (S[0] - S[1]), sg = 1.0 / (1.0 + exp(-z));  // d/dz -log sigmoid(z) = -(1 - sigmoid(z))
    for (int t = 0; t < T; t++) dlogp[t] = (float)(-c->beta * (1.0 - sg)), dlogp[T + t] = (float)(c->beta * (1.0 - sg));
    c->n_calls++;
    return (float)(-log(sg));
}

// The objective head: cross-entropy written as an objective gives the built-in loss's gradients
// bit for bit; a DPO-shaped loss's gradient matches central differences of the loss (final norm
// and embedding entries; Richardson-extrapolated, within 2e-3).
static int test_objective_head(void) {
    lf_model m1, m2;
    lf_model_desc d = {.path = LF_TEST_MODELS "llama_f32", .n_threads = 2, .max_tokens = 32, .max_seq_len = 32};
    CHECK_OK(lf_model_open(&m1, &d));
    CHECK_OK(lf_model_open(&m2, &d));
    enum { B = 2, T = 10 };
    int32_t tok[B * T], lab[B * T];
    for (int i = 0; i < B * T; i++) tok[i] = lab[i] = (i * 37 + 11) % m1.cfg.V;
    lab[1] = lab[12] = -100;
    CHECK_OK(lf_model_train_begin(&m1, B, T, 0));
    CHECK_OK(lf_model_train_begin(&m2, B, T, 0));
    int n_valid = 0;
    for (int i = 0; i < B * T; i++) n_valid += i % T != T - 1 && lab[i + 1] != -100;
    obj_ctx ce = {0, -1.0f / (float)n_valid, 0};
    lf_train_batch plain = {.tokens = tok, .labels = lab}, viaobj = plain;
    viaobj.objective = obj_mean_ce, viaobj.objective_user = &ce;
    float l1, l2;
    CHECK_OK(lf_model_train_grads(&m1, &plain, &l1));
    CHECK_OK(lf_model_train_grads(&m2, &viaobj, &l2));
    CHECK(ce.n_calls == 1 && fabsf(l1 - l2) <= 1e-6f * l1);
    const char *names[] = {"model.norm.weight", "model.layers.1.mlp.down_proj.weight", "model.embed_tokens.weight", "lm_head.weight"};
    for (int i = 0; i < 4; i++) {
        int64_t n = 0;
        const float *g1 = lf_model_grad(&m1, names[i], &n), *g2 = lf_model_grad(&m2, names[i], NULL);
        CHECK(g1 && g2 && memcmp(g1, g2, (size_t)n * sizeof(float)) == 0);
    }
    lf_model_close(&m2);
    // the DPO-shaped loss: analytic gradient against central differences of the loss
    lf_model_train_zero_grads(&m1);
    obj_ctx dpo = {0.5f, 0, 0};
    lf_train_batch pref = plain;
    pref.objective = obj_dpo_like, pref.objective_user = &dpo;
    float l0;
    CHECK_OK(lf_model_train_grads(&m1, &pref, &l0));
    float logp[B * T], g[8];
    memcpy(g, lf_model_grad(&m1, "model.norm.weight", NULL), sizeof g);
    float *w = (float *)(uintptr_t)m1.final_norm;  // the master copy the gradient belongs to
    int bad = 0;
    for (int j = 0; j < 8; j++) {
        double fd[2];
        float keep = w[j];
        for (int k = 0; k < 2; k++) {
            float h = k ? 5e-3f : 1e-2f, lp, lm, dummy[B * T];
            w[j] = keep + h;
            CHECK_OK(lf_model_train_logps(&m1, &plain, logp));
            lp = obj_dpo_like(&dpo, logp, dummy, B, T);
            w[j] = keep - h;
            CHECK_OK(lf_model_train_logps(&m1, &plain, logp));
            lm = obj_dpo_like(&dpo, logp, dummy, B, T);
            fd[k] = ((double)lp - lm) / (2 * h);
        }
        w[j] = keep;
        double est = (4 * fd[1] - fd[0]) / 3;
        if (fabs(est - g[j]) > 2e-3 * fmax(0.05, fabs(est))) {
            fprintf(stderr, "    norm[%d]: analytic %.6g, central difference %.6g\n", j, g[j], est);
            bad++;
        }
    }
    CHECK_OK(lf_model_train_logps(&m1, &plain, logp));
    CHECK(logp[T - 1] == 0 && logp[0] == 0 && logp[2] < 0);  // no target at a row's end or before a -100
    lf_model_close(&m1);
    return bad;
}

// DPO on a LoRA policy, the reference being the same model with its adapters off: the loss equals
// lf_dpo_loss on the log-prob sums computed separately, and the gradient of a lora_B entry
// matches central differences of that loss. ORPO (d NULL) likewise: the mean NLL of the chosen
// rows' prompts and completions plus lf_orpo_loss on the completions' per-token averages. Rows 2
// and 5 are a padding pair (nothing scored).
static double pref_loss_of(lf_model *m, const lf_dpo_desc *d, const lf_train_batch *b, int B, int T) {
    float lp[64];
    double S[6], R[6], nll = 0;
    int P = B / 2, n[6], chosen_tokens = 0;
    lf_lora_enable(m, false);
    if (lf_model_train_logps(m, b, lp) != LF_OK) return NAN;
    for (int r = 0; r < B; r++) {
        R[r] = 0;
        for (int t = 0; t < T; t++) R[r] += lp[r * T + t];
    }
    lf_lora_enable(m, true);
    if (lf_model_train_logps(m, b, lp) != LF_OK) return NAN;
    for (int r = 0; r < B; r++) {
        S[r] = 0, n[r] = 0;
        for (int t = 0; t < T; t++) S[r] += lp[r * T + t], n[r] += lp[r * T + t] != 0;
        if (!d) S[r] /= n[r] ? n[r] : 1;
    }
    int32_t full[64];  // the chosen rows scored whole (every position has a target but the first)
    memcpy(full, b->labels, (size_t)(B * T) * sizeof(int32_t));
    for (int i = 0; i < 2 * T; i++) full[i] = b->tokens[i];
    lf_train_batch fb = *b;
    fb.labels = full;
    if (lf_model_train_logps(m, &fb, lp) != LF_OK) return NAN;
    for (int i = 0; i < P * T; i++) nll -= lp[i], chosen_tokens += lp[i] != 0;
    S[2] = S[3], S[3] = S[4], R[2] = R[3], R[3] = R[4];  // the pairs that hold data: rows (0, 3), (1, 4)
    lf_pref_pairs pp = {2, S, S + 2, R, R + 2, NULL, NULL};
    lf_pref_stats st;
    if (!d) return lf_orpo_loss(0.25f, &pp, NULL, NULL, &st) == LF_OK ? st.loss + nll / chosen_tokens : NAN;
    return lf_dpo_loss(d, &pp, NULL, NULL, &st) == LF_OK ? st.loss : NAN;
}

static int test_dpo_grads(void) {
    lf_model m;
    lf_model_desc md = {.path = LF_TEST_MODELS "llama_f32", .n_threads = 2, .max_tokens = 32, .max_seq_len = 32};
    CHECK_OK(lf_model_open(&m, &md));
    lf_lora_desc ld = lf_lora_desc_default();
    ld.r = 2, ld.dropout = 0, ld.target_modules = "v_proj,down_proj", ld.seed = 4;
    CHECK_OK(lf_lora_attach(&m, &ld));
    for (int l = 0; l < m.cfg.L; l++)
        for (int i = 0; i < 2 * m.layers[l].w[LF_PROJ_V].shape[0]; i++) m.layers[l].lora[LF_PROJ_V]->B[i] = 0.1f * (float)((i % 5) - 2);
    enum { B = 6, T = 8 };
    int32_t tok[B * T], lab[B * T];
    for (int i = 0; i < B * T; i++) tok[i] = (i * 29 + 5) % m.cfg.V, lab[i] = i % T < 3 || i / T % 3 == 2 ? -100 : tok[i];
    for (int i = 0; i < 3; i++) tok[3 * T + i] = tok[i], tok[4 * T + i] = tok[T + i];  // each pair shares its prompt
    lab[4 * T + 7] = -100;  // completions of different lengths
    CHECK_OK(lf_model_train_begin(&m, B, T, 0));
    lf_train_batch b = {.tokens = tok, .labels = lab};
    lf_dpo_desc dd = lf_dpo_desc_default(), *d;
    dd.beta = 0.5f;
    lf_pref_stats st;
    int bad = 0;
    for (int pass = 0; pass < 2; pass++) {  // DPO, then ORPO (d NULL)
        d = pass ? NULL : &dd;
        lf_model_train_zero_grads(&m);
        if (d) CHECK_OK(lf_dpo_grads(&m, d, &b, NULL, 0.5f, &st));
        else CHECK_OK(lf_orpo_grads(&m, 0.25f, &b, 0.5f, &st));
        double want = pref_loss_of(&m, d, &b, B, T);
        CHECK(fabs(st.loss - want) <= 1e-6 * fmax(1, fabs(want)));
        float g[6];
        memcpy(g, lf_model_grad(&m, "base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight", NULL), sizeof g);
        float *Bw = m.layers[0].lora[LF_PROJ_V]->B;
        for (int j = 0; j < 6; j++) {
            float keep = Bw[j];
            double fd[2];
            for (int k = 0; k < 2; k++) {
                float h = k ? 5e-3f : 1e-2f;
                Bw[j] = keep + h;
                double lp = pref_loss_of(&m, d, &b, B, T);
                Bw[j] = keep - h;
                double lm = pref_loss_of(&m, d, &b, B, T);
                fd[k] = (lp - lm) / (2 * h);
            }
            Bw[j] = keep;
            double est = (4 * fd[1] - fd[0]) / 3 * 0.5;  // the gradient's weight
            if (fabs(est - g[j]) > 2e-3 * fmax(0.05, fabs(est))) {
                fprintf(stderr, "    %s lora_B[%d]: analytic %.6g, central difference %.6g\n", d ? "dpo" : "orpo", j, g[j], est);
                bad++;
            }
        }
        if (getenv("LF_TEST_VERBOSE"))
            fprintf(stderr, "  %s: loss %.6f, rewards/chosen %.4f, rejected %.4f, accuracy %.2f\n", d ? "dpo" : "orpo", st.loss,
                    st.rewards_chosen, st.rewards_rejected, st.accuracies);
    }
    lf_model_close(&m);
    return bad;
}

// DPO (sigmoid, hinge, IPO) and ORPO through TRL 1.16's own trainers on llama_f32 + lora_ref,
// the DPO reference being the model with the adapter off (tests/ref/make_pref_model_fixture.py):
// the loss (1e-5 relative), TRL's metrics (1e-5; logps 5e-5) and every A/B gradient (1e-4 of the
// tensor's largest entry).
static int pref_metric(const lf_node *mt, const char *key, double got, double tol, const char *what) {
    const lf_node *v = lf_node_get(mt, key);
    if (v && fabs(got - v->num) <= tol) return 1;
    fprintf(stderr, "    %s %s: %.9g, TRL %.9g\n", what, key, got, v ? v->num : NAN);
    return 0;
}

static int test_pref_model_trl(void) {
    lf_st_file g;
    lf_doc doc;
    CHECK_OK(lf_st_open(&g, "tests/fixtures/pref/model_grads.safetensors"));
    CHECK_OK(lf_json_load(&doc, "tests/fixtures/pref/model_grads.json"));
    const lf_st_tensor *ids = lf_st_find(&g, "input_ids"), *labels = lf_st_find(&g, "labels");
    CHECK(ids && labels);
    int B = (int)ids->shape[0], T = (int)ids->shape[1];
    lf_model m;
    lf_model_desc md = {.path = LF_TEST_MODELS "llama_f32", .n_threads = 2, .max_tokens = 64, .max_seq_len = 64};
    CHECK_OK(lf_model_open(&m, &md));
    CHECK_OK(lf_lora_load(&m, LF_TEST_MODELS "llama_f32/lora_ref"));
    CHECK_OK(lf_model_train_begin(&m, B, T, 0));
    lf_train_batch b = {.tokens = (const int32_t *)ids->data, .labels = (const int32_t *)labels->data};
    static const char *names[4] = {"sigmoid", "hinge", "ipo", "orpo"};
    int ok = 1;
    double worst_g = 0, worst_l = 0;
    for (int k = 0; k < 4; k++) {
        const lf_node *c = k < 3 ? lf_node_get(lf_node_get(doc.root, "dpo"), names[k]) : lf_node_get(doc.root, "orpo");
        const lf_node *mt = lf_node_get(c, "metrics");
        CHECK(c && mt);
        lf_dpo_desc d = lf_dpo_desc_default();
        d.beta = 0.1f, d.loss_type = (lf_pref_loss)k;
        lf_pref_stats st;
        lf_model_train_zero_grads(&m);
        if (k < 3) CHECK_OK(lf_dpo_grads(&m, &d, &b, NULL, 1.0f, &st));
        else CHECK_OK(lf_orpo_grads(&m, 0.1f, &b, 1.0f, &st));
        double want = lf_node_get(c, "loss")->num;
        worst_l = fmax(worst_l, fabs(st.loss - want) / fabs(want));
        ok &= pref_metric(c, "loss", st.loss, 1e-5 * fabs(want), names[k]);
        ok &= pref_metric(mt, "rewards/chosen", st.rewards_chosen, 1e-5, names[k]);
        ok &= pref_metric(mt, "rewards/rejected", st.rewards_rejected, 1e-5, names[k]);
        ok &= pref_metric(mt, "rewards/margins", st.margins, 1e-5, names[k]);
        ok &= pref_metric(mt, "rewards/accuracies", st.accuracies, 1e-6, names[k]);
        ok &= pref_metric(mt, "logps/chosen", st.logps_chosen, 5e-5, names[k]);
        ok &= pref_metric(mt, "logps/rejected", st.logps_rejected, 5e-5, names[k]);
        if (k == 3) {
            ok &= pref_metric(mt, "nll_loss", st.nll_loss, 1e-5, names[k]);
            ok &= pref_metric(mt, "log_odds_ratio", st.log_odds_ratio, 1e-5, names[k]);
            ok &= pref_metric(mt, "log_odds_chosen", st.log_odds_chosen, 1e-5, names[k]);
        }
        char prefix[32];
        snprintf(prefix, sizeof prefix, "%s%s.grad.", k < 3 ? "dpo_" : "", names[k]);
        int checked = 0;
        for (int i = 0; i < g.n; i++) {
            const lf_st_tensor *t = &g.tensors[i];
            if (strncmp(t->name, prefix, strlen(prefix)) != 0) continue;
            int64_t n = 0;
            const float *ours = lf_model_grad(&m, t->name + strlen(prefix), &n), *theirs = (const float *)t->data;
            CHECK(ours && n == t->shape[0] * t->shape[1]);
            double mx = 0, e = 0;
            for (int64_t j = 0; j < n; j++) mx = fmax(mx, fabs(theirs[j])), e = fmax(e, fabs((double)ours[j] - theirs[j]));
            worst_g = fmax(worst_g, e / mx), checked++;
            if (e > 1e-4 * mx) fprintf(stderr, "    %s %s: max difference %.3g of %.3g\n", names[k], t->name, e, mx), ok = 0;
        }
        CHECK(checked == 14 * m.cfg.L);
    }
    if (getenv("LF_TEST_VERBOSE"))
        fprintf(stderr, "  dpo sigmoid/hinge/ipo + orpo vs TRL: losses within %.2g relative, gradients within %.2g of the largest\n",
                worst_l, worst_g);
    lf_model_close(&m);
    lf_doc_deinit(&doc);
    lf_st_close(&g);
    return !ok;
}

static const lf_test tests_lora[] = {
    {"train/dpo_orpo_grads_lora", test_dpo_grads},
    {"train/dpo_orpo_vs_trl_model", test_pref_model_trl},
    {"lora/enable_disable", test_lora_enable},
    {"train/objective_head", test_objective_head},
    {"lora/qlora_nf4", test_qlora_nf4},
    {"train/checkpointing_full", test_checkpointing_full},
    {"train/checkpointing_lora", test_checkpointing_lora},
    {"lora/peft_llama", test_lora_llama},
    {"lora/peft_rslora", test_lora_rslora},
    {"lora/peft_qwen2", test_lora_qwen2},
    {"lora/save_load_train", test_lora_save_train},
    {"lora/peft_loads_ours", test_lora_peft_loads_ours},
    {"lora/dropout_gradient", test_lora_dropout_gradient},
    {"lora/bad_adapters", test_lora_bad_adapters},
    {"train/packing_isolation", test_packing_isolation},
};
