// tests/test_train.c — section 8: the training config and checkpoints.

static const char *cfg_full =
    "model:\n  name: tests/fixtures/models/llama_f32\n"
    "training:\n  output_dir: /tmp/x\n  learning_rate: 1.0e-4\n  lr_scheduler_type: linear\n  per_device_batch_size: 2\n"
    "lora:\n  r: 4\n  alpha: 8\n  target_modules: [q_proj, down_proj]\n";

static int test_train_config(void) {
    lf_doc d;
    lf_train_config c;
    CHECK_OK(lf_yaml_parse(&d, cfg_full, strlen(cfg_full), "sft.yaml"));
    CHECK_OK(lf_train_config_read(&c, &d));
    // set fields, and HF's / the product's defaults for the rest
    CHECK(strcmp(c.model, "tests/fixtures/models/llama_f32") == 0 && strcmp(c.output_dir, "/tmp/x") == 0);
    CHECK(c.optim.learning_rate == 1e-4f && c.optim.schedule == LF_SCHED_LINEAR && c.batch_size == 2);
    CHECK(c.num_epochs == 3 && c.grad_accum == 4 && c.optim.weight_decay == 0.01f && c.optim.warmup_ratio == 0.1f);
    CHECK(c.save_steps == 500 && c.save_total_limit == 3 && c.logging_steps == 10 && c.eval_steps == 500 && c.seed == 42);
    CHECK(c.lora && c.lora_desc.r == 4 && c.lora_desc.alpha == 8 && c.lora_desc.dropout == 0.05f);
    CHECK(strcmp(c.lora_desc.target_modules, "q_proj,down_proj") == 0 && c.quant_bits == 0);
    // the resolved YAML reads back to the same settings
    char *y = lf_train_config_yaml(&c);
    CHECK(y);
    lf_doc d2;
    lf_train_config c2;
    CHECK_OK(lf_yaml_parse(&d2, y, strlen(y), "config.yaml"));
    CHECK_OK(lf_train_config_read(&c2, &d2));
    CHECK(c2.optim.learning_rate == c.optim.learning_rate && c2.optim.schedule == c.optim.schedule && c2.lora == c.lora &&
          strcmp(c2.lora_desc.target_modules, c.lora_desc.target_modules) == 0 && c2.batch_size == 2);
    lf_doc_deinit(&d2);
    lf_free(y);
    lf_doc_deinit(&d);
    static const struct {
        const char *yaml, *msg;
    } bad[] = {
        {"training:\n  output_dir: x\n", "model.name: required"},
        {"model:\n  name: m\ntraining:\n  num_epochs: 1\n", "training: missing required field 'output_dir'"},
        {"model:\n  name: m\ntraining:\n  output_dir: x\n  lerning_rate: 1\n", "training.lerning_rate: unknown key (did you mean learning_rate?)"},
        {"model:\n  name: m\ntraining:\n  output_dir: x\n  learning_rate: fast\n", "learning_rate"},
        {"model:\n  name: m\ntraining:\n  output_dir: x\n  per_device_batch_size: 0\n", "per_device_batch_size"},
        {"model:\n  name: m\ntraining:\n  output_dir: x\n  lr_scheduler_type: warm\n", "'warm' is not one of cosine, linear"},
        {"model:\n  name: m\ntraining:\n  output_dir: x\n  optim: sgd\n", "optim: 'sgd'"},
        {"model:\n  name: m\ntraining:\n  output_dir: x\nlora:\n  r: 8\n  target_modules: [q_proj, lm_head]\n", "'lm_head' is not one of"},
        {"model:\n  name: m\ntraining:\n  output_dir: x\nlora:\n  alpha: 8\n  lora_alpha: 8\n", "alpha and lora_alpha"},
        {"model:\n  name: m\ntraining:\n  output_dir: x\nlora:\n  dropout: 1.5\n", "lora: dropout: 1.5 is outside"},
        {"model:\n  name: m\ntraining:\n  output_dir: x\nquantization:\n  enabled: true\n", "enable lora (QLoRA)"},
        {"model:\n  name: m\ntraining:\n  output_dir: x\nlora:\n  r: 8\nquantization:\n  bits: 3\n", "quantization: field 'bits'"},
        {"model: [1]\ntraining:\n  output_dir: x\n", "'model' must be a mapping"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK_OK(lf_yaml_parse(&d, bad[i].yaml, strlen(bad[i].yaml), "bad.yaml"));
        lf_status s = lf_train_config_read(&c, &d);
        if (s != LF_ERR_CONFIG || !strstr(lf_last_error(), bad[i].msg) || !strstr(lf_last_error(), "bad.yaml")) {
            fprintf(stderr, "    case %zu: %s (%s), expected \"%s\"\n", i, lf_status_str(s), lf_last_error(), bad[i].msg);
            return 1;
        }
        lf_doc_deinit(&d);
    }
    return 0;
}

// One LoRA training step on a fixed batch: the loss it reports.
static int ckpt_step(lf_model *m, lf_optim *o, float *loss) {
    int32_t tok[16];
    for (int i = 0; i < 16; i++) tok[i] = (i * 13 + 5) % m->cfg.V;
    lf_train_batch tb = {.tokens = tok, .labels = tok, .pos = NULL, .n_scored = 0};
    float norm;
    lf_model_train_zero_grads(m);
    CHECK_OK(lf_model_train_grads(m, &tb, loss));
    CHECK_OK(lf_optim_step(o, m, &norm));
    return 0;
}

static int ckpt_open(lf_model *m, lf_optim *o, bool lora) {
    lf_model_desc d = {.path = LF_TEST_MODELS "llama_bf16", .n_threads = 2, .max_tokens = 32, .max_seq_len = 32};
    CHECK_OK(lf_model_open(m, &d));
    lf_lora_desc ld = lf_lora_desc_default();
    ld.r = 2, ld.dropout = 0.1f, ld.seed = 9;
    if (lora) CHECK_OK(lf_lora_attach(m, &ld));
    CHECK_OK(lf_model_train_begin(m, 2, 8, 0));
    lf_optim_desc od = lf_optim_desc_default();
    od.learning_rate = 1e-3f, od.total_steps = 6;
    CHECK_OK(lf_optim_init(o, m, &od));
    lf_model_train_rng(m, 77, 0);
    return 0;
}

// Save after 3 steps, load into a fresh model: the next 3 losses equal the uninterrupted run's
// bit for bit (adapters with dropout, and full fine-tuning); a flipped byte is caught.
static int ckpt_resume(bool lora) {
    char run[] = "/tmp/lf-test-run-XXXXXX";
    CHECK(mkdtemp(run));
    char dir[600];
    snprintf(dir, sizeof dir, "%s/checkpoints/step-3", run);
    lf_model a, b;
    lf_optim oa, ob;
    float la[6], lb[3];
    if (ckpt_open(&a, &oa, lora)) return 1;
    for (int s = 0; s < 3; s++)
        if (ckpt_step(&a, &oa, &la[s])) return 1;
    lf_train_state st = {3, 0, 12, 48, 77, lf_model_train_calls(&a), HUGE_VAL, 0, 1.25, 2, {0.5, -1e-300, 3}, 4};
    char cdir[600];
    snprintf(cdir, sizeof cdir, "%s/checkpoints", run);
    CHECK_OK(lf_dir_make(cdir));
    CHECK_OK(lf_ckpt_save(dir, &a, &oa, &st));
    for (int s = 3; s < 6; s++)
        if (ckpt_step(&a, &oa, &la[s])) return 1;
    if (ckpt_open(&b, &ob, lora)) return 1;
    lf_train_state got;
    char latest[700];
    CHECK_OK(lf_ckpt_latest(run, latest, sizeof latest));
    CHECK(strcmp(latest, dir) == 0);
    CHECK_OK(lf_ckpt_load(latest, &b, &ob, &got));
    CHECK(got.step == 3 && got.index == 12 && got.tokens == 48 && got.calls == st.calls && got.best_eval == HUGE_VAL &&
          got.log_loss == 1.25 && got.log_steps == 2 && got.log_micro == 4 && got.log_metrics[0] == 0.5 &&
          got.log_metrics[1] == -1e-300 && got.log_metrics[2] == 3 && got.log_metrics[11] == 0);
    for (int s = 0; s < 3; s++)
        if (ckpt_step(&b, &ob, &lb[s])) return 1;
    for (int s = 0; s < 3; s++) CHECK(memcmp(&la[3 + s], &lb[s], sizeof(float)) == 0);
    // damage: one flipped byte in the optimizer file is reported by name
    char opt[700], cmd[1600];
    snprintf(opt, sizeof opt, "%s/optimizer.safetensors", dir);
    snprintf(cmd, sizeof cmd, "printf '\\377' | dd of=%s bs=1 seek=200 conv=notrunc status=none", opt);
    CHECK(system(cmd) == 0);
    CHECK_ERR(lf_ckpt_load(dir, &b, &ob, &got), LF_ERR_FORMAT, "optimizer.safetensors: checksum mismatch");
    snprintf(cmd, sizeof cmd, "rm %s/SHA256SUMS", dir);
    CHECK(system(cmd) == 0);
    CHECK_ERR(lf_ckpt_load(dir, &b, &ob, &got), LF_ERR_FORMAT, "incomplete checkpoint");
    // pruning keeps the newest
    for (int k = 4; k <= 6; k++) {
        snprintf(dir, sizeof dir, "%s/checkpoints/step-%d", run, k);
        CHECK_OK(lf_ckpt_save(dir, &a, &oa, &st));
    }
    CHECK_OK(lf_ckpt_prune(run, 2));
    snprintf(dir, sizeof dir, "%s/checkpoints/step-4", run);
    CHECK(!lf_path_exists(dir));
    snprintf(dir, sizeof dir, "%s/checkpoints/step-5", run);
    CHECK(lf_path_exists(dir));
    lf_model_close(&a), lf_model_close(&b), lf_optim_deinit(&oa), lf_optim_deinit(&ob);
    snprintf(cmd, sizeof cmd, "rm -rf %s", run);
    CHECK(system(cmd) == 0);
    return 0;
}

static int test_ckpt_resume_lora(void) { return ckpt_resume(true); }
static int test_ckpt_resume_full(void) { return ckpt_resume(false); }

// Every training config shipped in configs/ reads without error.
static int test_train_configs_shipped(void) {
    const char *files[] = {"configs/sft.yaml", "configs/pretrain.yaml", "configs/pretrain_kjv.yaml", "configs/demo_sft.yaml"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        lf_doc d;
        lf_train_config c;
        lf_data_config dc;
        CHECK_OK(lf_config_load(&d, files[i], NULL, 0));
        CHECK_OK(lf_train_config_read(&c, &d));
        CHECK_OK(lf_data_config_read(&dc, &d));
        lf_doc_deinit(&d);
    }
    return 0;
}

// -- preference losses against TRL (tests/ref/make_pref_fixture.py: TRL's own functions on fixed
// log-probs, float64): every per-case mean loss, gradient and logged metric within 1e-6
// relative (beta is a float here: 0.1 is 0.100000001).

static int pref_arr(const lf_node *obj, const char *key, double *out, int n) {
    const lf_node *a = lf_node_get(obj, key);
    if (!a || a->type != LF_NODE_ARRAY || a->n != n) return 0;
    for (int i = 0; i < n; i++) out[i] = a->kids[i].num;
    return 1;
}

static int pref_close(const char *what, const char *name, double got, double want) {
    if (fabs(got - want) <= 1e-6 * fmax(1.0, fabs(want))) return 1;
    fprintf(stderr, "    %s: %s %.12g, TRL %.12g\n", what, name, got, want);
    return 0;
}

static int test_pref_losses_trl(void) {
    lf_doc doc;
    CHECK_OK(lf_json_load(&doc, "tests/fixtures/pref/losses.json"));
    const lf_node *in = lf_node_get(doc.root, "dpo_inputs"), *cases = lf_node_get(doc.root, "cases");
    CHECK(in && cases && cases->type == LF_NODE_ARRAY);
    double pc[4], pr[4], rc[4], rr[4], ncd[4], nrd[4];
    CHECK(pref_arr(in, "pc", pc, 4) && pref_arr(in, "pr", pr, 4) && pref_arr(in, "rc", rc, 4) && pref_arr(in, "rr", rr, 4) &&
          pref_arr(in, "n_chosen", ncd, 4) && pref_arr(in, "n_rejected", nrd, 4));
    int nc[4], nr[4];
    for (int i = 0; i < 4; i++) nc[i] = (int)ncd[i], nr[i] = (int)nrd[i];
    int ok = 1, checked = 0;
    for (int k = 0; k < cases->n; k++) {
        const lf_node *c = &cases->kids[k], *cfg = lf_node_get(c, "config"), *g = lf_node_get(c, "grad"), *mt = lf_node_get(c, "metrics");
        const char *name = lf_node_get(c, "name")->str;
        lf_pref_stats st;
        double dpc[4], dpr[4], want_pc[4], want_pr[4];
        CHECK(pref_arr(g, "pc", want_pc, 4) && pref_arr(g, "pr", want_pr, 4));
        if (strncmp(name, "orpo", 4) == 0) {
            double opc[4], opr[4];
            const lf_node *oin = lf_node_get(c, "inputs");
            CHECK(pref_arr(oin, "pc", opc, 4) && pref_arr(oin, "pr", opr, 4));
            lf_pref_pairs pp = {4, opc, opr, NULL, NULL, NULL, NULL};
            CHECK_OK(lf_orpo_loss((float)lf_node_get(cfg, "beta")->num, &pp, dpc, dpr, &st));
            ok &= pref_close(name, "log_odds_ratio", st.log_odds_ratio, lf_node_get(c, "log_odds_ratio")->num);
            ok &= pref_close(name, "log_odds_chosen", st.log_odds_chosen, lf_node_get(c, "log_odds_chosen")->num);
        } else {
            lf_dpo_desc d = lf_dpo_desc_default();
            const char *lt = lf_node_get(cfg, "loss_type")->str;
            d.beta = (float)lf_node_get(cfg, "beta")->num, d.label_smoothing = (float)lf_node_get(cfg, "label_smoothing")->num;
            d.reference_free = lf_node_get(cfg, "reference_free")->num != 0;
            d.loss_type = !strcmp(lt, "hinge") ? LF_PREF_HINGE : !strcmp(lt, "ipo") ? LF_PREF_IPO : LF_PREF_SIGMOID;
            lf_pref_pairs pp = {4, pc, pr, rc, rr, nc, nr};
            CHECK_OK(lf_dpo_loss(&d, &pp, dpc, dpr, &st));
        }
        ok &= pref_close(name, "loss", st.loss, lf_node_get(c, "loss")->num);
        for (int i = 0; i < 4; i++) ok &= pref_close(name, "d/dpc", dpc[i], want_pc[i]) & pref_close(name, "d/dpr", dpr[i], want_pr[i]);
        ok &= pref_close(name, "rewards/chosen", st.rewards_chosen, lf_node_get(mt, "rewards/chosen")->num);
        ok &= pref_close(name, "rewards/rejected", st.rewards_rejected, lf_node_get(mt, "rewards/rejected")->num);
        ok &= pref_close(name, "rewards/accuracies", st.accuracies, lf_node_get(mt, "rewards/accuracies")->num);
        ok &= pref_close(name, "rewards/margins", st.margins, lf_node_get(mt, "rewards/margins")->num);
        ok &= pref_close(name, "logps/chosen", st.logps_chosen, lf_node_get(mt, "logps/chosen")->num);
        ok &= pref_close(name, "logps/rejected", st.logps_rejected, lf_node_get(mt, "logps/rejected")->num);
        checked++;
    }
    lf_doc_deinit(&doc);
    CHECK(checked == 6 && ok);
    lf_dpo_desc bad = lf_dpo_desc_default();
    lf_pref_pairs pp = {4, pc, pr, NULL, NULL, NULL, NULL};
    CHECK_ERR(lf_dpo_loss(&bad, &pp, NULL, NULL, NULL), LF_ERR_ARG, "reference log-probs are required");
    bad.beta = 0;
    CHECK_ERR(lf_dpo_loss(&bad, &pp, NULL, NULL, NULL), LF_ERR_CONFIG, "dpo.beta");
    double zero[4] = {-1, -2, 0, -1};  // an average log-prob of 0 has no odds
    lf_pref_pairs pz = {4, zero, pr, NULL, NULL, NULL, NULL};
    CHECK_ERR(lf_orpo_loss(0.1f, &pz, NULL, NULL, NULL), LF_ERR_ARG, "pair 2: log-probs must be < 0");
    return 0;
}

// The dpo section: the product's DPOConfig defaults, values, and field-named errors.
static int test_dpo_config(void) {
    lf_doc d;
    lf_dpo_config c;
    CHECK_OK(lf_yaml_parse(&d, "model:\n  name: x\n", 17, "dpo.yaml"));
    CHECK_OK(lf_dpo_config_read(&c, &d));
    CHECK(c.loss.beta == 0.1f && c.loss.loss_type == LF_PREF_SIGMOID && c.loss.label_smoothing == 0 && !c.loss.reference_free &&
          c.max_prompt_length == 512 && c.max_length == 1024 && !c.precompute_ref_log_probs);
    lf_doc_deinit(&d);
    const char *y = "dpo:\n  beta: 0.3\n  loss_type: ipo\n  max_prompt_length: 64\n  max_length: 128\n  precompute_ref_log_probs: true\n";
    CHECK_OK(lf_yaml_parse(&d, y, strlen(y), "dpo.yaml"));
    CHECK_OK(lf_dpo_config_read(&c, &d));
    CHECK(c.loss.beta == 0.3f && c.loss.loss_type == LF_PREF_IPO && c.max_prompt_length == 64 && c.max_length == 128 &&
          c.precompute_ref_log_probs);
    lf_doc_deinit(&d);
    static const struct { const char *yaml, *msg; } bad[] = {
        {"dpo:\n  bta: 0.1\n", "dpo.bta: unknown key (did you mean beta?)"},
        {"dpo:\n  loss_type: kto\n", "'kto' is not one of sigmoid, hinge, ipo"},
        {"dpo:\n  beta: 0\n", "dpo: beta"},
        {"dpo:\n  label_smoothing: 0.5\n", "dpo: label_smoothing"},
        {"dpo:\n  max_prompt_length: 2048\n", "max_prompt_length 2048 must be below max_length 1024"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK_OK(lf_yaml_parse(&d, bad[i].yaml, strlen(bad[i].yaml), "dpo.yaml"));
        CHECK_ERR(lf_dpo_config_read(&c, &d), LF_ERR_CONFIG, bad[i].msg);
        lf_doc_deinit(&d);
    }
    return 0;
}

// Distillation's loss and its gradient on logits equal PyTorch's (tests/ref/make_kd_fixture.py,
// float64 autograd on float32 inputs): the loss within 1e-5 relative, every gradient entry within
// 1e-6 of the case's largest, each position's CE and KL within 1e-5; full-vocabulary cases give
// the teacher as log_softmax(Z), top-k cases as the stored ids and log-probs.
static int kd_matrix(const lf_node *a, float *out, int rows, int cols) {
    if (!a || a->type != LF_NODE_ARRAY || a->n != rows) return 0;
    for (int i = 0; i < rows; i++) {
        if (a->kids[i].type != LF_NODE_ARRAY || a->kids[i].n != cols) return 0;
        for (int j = 0; j < cols; j++) out[i * cols + j] = (float)a->kids[i].kids[j].num;
    }
    return 1;
}

static int test_kd_loss_torch(void) {
    lf_doc doc;
    CHECK_OK(lf_json_load(&doc, "tests/fixtures/kd/kd.json"));
    const lf_node *cases = lf_node_get(doc.root, "cases");
    CHECK(cases && cases->type == LF_NODE_ARRAY && cases->n == 6);
    enum { N = 7, V = 40 };
    int ok = 1;
    double worst_l = 0, worst_g = 0;
    for (int c = 0; c < cases->n; c++) {
        const lf_node *k = &cases->kids[c];
        int K = (int)lf_node_get(k, "k")->num;
        float S[N * V], Z[N * V], lp[N * V], g[N * V], want[N * V], fid[N * V];
        int32_t y[N], ids[N * V];
        double yd[N];
        CHECK(kd_matrix(lf_node_get(k, "S"), S, N, V) && kd_matrix(lf_node_get(k, "grad_S"), want, N, V) && pref_arr(k, "y", yd, N));
        for (int i = 0; i < N; i++) y[i] = (int32_t)yd[i];
        if (strcmp(lf_node_get(k, "teacher")->str, "topk") == 0) {
            CHECK(kd_matrix(lf_node_get(k, "ids"), fid, N, K) && kd_matrix(lf_node_get(k, "lp"), lp, N, K));
            for (int i = 0; i < N * K; i++) ids[i] = (int32_t)fid[i];
        } else {
            CHECK(K == V && kd_matrix(lf_node_get(k, "Z"), Z, N, V));
            for (int i = 0; i < N; i++) {
                double m = Z[i * V], sum = 0;
                for (int v = 1; v < V; v++) m = fmax(m, Z[i * V + v]);
                for (int v = 0; v < V; v++) sum += exp(Z[i * V + v] - m);
                for (int v = 0; v < V; v++) ids[i * V + v] = v, lp[i * V + v] = (float)(Z[i * V + v] - m - log(sum));
            }
        }
        lf_kd_desc d = {(float)lf_node_get(k, "alpha")->num, (float)lf_node_get(k, "T")->num};
        lf_kd_targets t = {K, ids, lp};
        lf_kd_stats st;
        CHECK_OK(lf_kd_loss(&d, S, y, N, V, &t, 0, g, &st));
        double wl = lf_node_get(k, "loss")->num, mg = 0, e = 0;
        for (int i = 0; i < N * V; i++) mg = fmax(mg, fabs(want[i])), e = fmax(e, fabs((double)g[i] - want[i]));
        worst_l = fmax(worst_l, fabs(st.loss - wl) / fabs(wl)), worst_g = fmax(worst_g, e / mg);
        double ce = lf_node_get(k, "ce_mean")->num, kl = lf_node_get(k, "kl_mean")->num;
        if (fabs(st.loss - wl) > 1e-5 * fabs(wl) || e > 1e-6 * mg || fabs(st.ce - ce) > 1e-5 * fmax(1, ce) ||
            fabs(st.kl - kl) > 1e-5 * fmax(1, kl) || st.n != (int64_t)lf_node_get(k, "n_scored")->num) {
            fprintf(stderr, "    %s: loss %.9g (torch %.9g), ce %.9g (%.9g), kl %.9g (%.9g), gradient off by %.3g of %.3g\n",
                    lf_node_get(k, "name")->str, st.loss, wl, st.ce, ce, st.kl, kl, e, mg);
            ok = 0;
        }
    }
    if (getenv("LF_TEST_VERBOSE")) fprintf(stderr, "  kd vs torch: loss within %.2g relative, gradients within %.2g of the largest\n", worst_l, worst_g);
    lf_kd_desc bad = {1.5f, 2.0f};
    lf_kd_targets t0 = {1, NULL, NULL};
    float S1[4] = {0};
    int32_t y1[1] = {0};
    CHECK_ERR(lf_kd_loss(&bad, S1, y1, 1, 4, &t0, 0, NULL, NULL), LF_ERR_CONFIG, "distill.alpha");
    lf_doc_deinit(&doc);
    return !ok;
}

// lf_kd_grads through the model: a teacher with the student's own weights and the whole vocabulary
// gives KL 0; at top-8 the gradient of the final norm matches central differences of lf_kd_eval.
static int test_kd_grads(void) {
    lf_model st, te;
    lf_model_desc md = {.path = LF_TEST_MODELS "llama_f32", .n_threads = 2, .max_tokens = 32, .max_seq_len = 32};
    CHECK_OK(lf_model_open(&st, &md));
    CHECK_OK(lf_model_open(&te, &md));
    enum { B = 2, T = 8 };
    int V = st.cfg.V;
    int32_t tok[B * T], lab[B * T], *ids = (int32_t *)malloc((size_t)B * T * (size_t)V * 4);
    float *lp = (float *)malloc((size_t)B * T * (size_t)V * 4);
    CHECK(ids && lp);
    for (int i = 0; i < B * T; i++) tok[i] = (i * 37 + 11) % V, lab[i] = i % T < 2 ? -100 : tok[i];
    lf_kv kv;
    CHECK_OK(lf_kv_init(&kv, &te, 1, T));
    CHECK_OK(lf_model_train_begin(&st, B, T, 0));
    lf_train_batch b = {.tokens = tok, .labels = lab};
    lf_kd_desc d = {0.3f, 2.0f};
    lf_kd_stats s0, s1;
    for (int pass = 0; pass < 2; pass++) {
        int K = pass ? 8 : V;
        for (int r = 0; r < B; r++) CHECK_OK(lf_kd_teacher_topk(&te, &kv, tok + r * T, T, K, ids + r * T * K, lp + r * T * K, NULL));
        lf_kd_targets t = {K, ids, lp};
        lf_model_train_zero_grads(&st);
        CHECK_OK(lf_kd_grads(&st, &d, &b, &t, NULL, pass ? &s1 : &s0));
    }
    CHECK(fabs(s0.kl) < 1e-6 && s0.n == 12 && fabs(s0.loss - 0.3 * s0.ce) < 1e-6);  // the same model: no KL
    CHECK(s1.kl > 0 && s1.ce == s0.ce);
    for (int i = 0; i < T * 8; i += 8) CHECK(lp[i] >= lp[i + 1] && lp[i + 1] >= lp[i + 7]);  // largest first
    float g[8];
    memcpy(g, lf_model_grad(&st, "model.norm.weight", NULL), sizeof g);
    float *w = (float *)(uintptr_t)st.final_norm;
    lf_kd_targets t = {8, ids, lp};
    int bad = 0;
    for (int j = 0; j < 8; j++) {
        double fd[2];
        float keep = w[j];
        for (int k = 0; k < 2; k++) {
            float h = k ? 5e-3f : 1e-2f;
            lf_kd_stats sp, sm;
            w[j] = keep + h;
            CHECK_OK(lf_kd_eval(&st, &d, &b, &t, NULL, &sp));
            w[j] = keep - h;
            CHECK_OK(lf_kd_eval(&st, &d, &b, &t, NULL, &sm));
            fd[k] = (sp.loss - sm.loss) / (2 * h);
        }
        w[j] = keep;
        double est = (4 * fd[1] - fd[0]) / 3;
        if (fabs(est - g[j]) > 2e-3 * fmax(0.05, fabs(est))) fprintf(stderr, "    norm[%d]: %.6g, central difference %.6g\n", j, g[j], est), bad++;
    }
    lf_kv_deinit(&kv);
    lf_model_close(&st), lf_model_close(&te);
    free(ids), free(lp);
    return bad;
}

// Feature distillation's MSE through a projection (and without one, equal widths) equals
// PyTorch's (nn.Linear + mse_loss over the real rows): the loss within 1e-6 relative, the
// gradients of h_s and W within 1e-6 of their largest entries. Through the model, W registered
// with lf_model_train_extra gets the gradient central differences give, and checkpoints with it.
static int test_kd_features(void) {
    lf_doc doc;
    CHECK_OK(lf_json_load(&doc, "tests/fixtures/kd/kd.json"));
    const lf_node *fc = lf_node_get(doc.root, "feature_cases");
    CHECK(fc && fc->type == LF_NODE_ARRAY && fc->n == 2);
    for (int c = 0; c < 2; c++) {
        const lf_node *k = &fc->kids[c];
        int N = (int)lf_node_get(k, "N")->num, Cs = (int)lf_node_get(k, "Cs")->num, Ct = (int)lf_node_get(k, "Ct")->num;
        float hs[64], ht[80], W[60], ghs[64] = {0}, gw[60] = {0}, whs[64], ww[60];
        double md[8];
        uint8_t mask[8];
        bool proj = lf_node_get(k, "W")->type == LF_NODE_ARRAY;
        CHECK(N <= 8 && Cs * N <= 64 && Ct * N <= 80 && pref_arr(k, "mask", md, N));
        CHECK(kd_matrix(lf_node_get(k, "Hs"), hs, N, Cs) && kd_matrix(lf_node_get(k, "Ht"), ht, N, Ct) &&
              kd_matrix(lf_node_get(k, "grad_Hs"), whs, N, Cs));
        if (proj) CHECK(kd_matrix(lf_node_get(k, "W"), W, Ct, Cs) && kd_matrix(lf_node_get(k, "grad_W"), ww, Ct, Cs));
        for (int i = 0; i < N; i++) mask[i] = md[i] != 0;
        double loss, want = lf_node_get(k, "feat")->num, mh = 0, eh = 0, mw = 0, ew = 0;
        lf_kd_feature_loss(hs, ht, proj ? W : NULL, mask, N, Cs, Ct, 1.0, &loss, ghs, proj ? gw : NULL);
        for (int i = 0; i < N * Cs; i++) mh = fmax(mh, fabs(whs[i])), eh = fmax(eh, fabs((double)ghs[i] - whs[i]));
        for (int i = 0; proj && i < Ct * Cs; i++) mw = fmax(mw, fabs(ww[i])), ew = fmax(ew, fabs((double)gw[i] - ww[i]));
        if (getenv("LF_TEST_VERBOSE"))
            fprintf(stderr, "  %s: feat %.9g (torch %.9g), d h_s within %.2g, d W within %.2g\n", lf_node_get(k, "name")->str, loss, want,
                    eh / mh, proj ? ew / mw : 0.0);
        CHECK(fabs(loss - want) <= 1e-6 * want && eh <= 1e-6 * mh && (!proj || ew <= 1e-6 * mw));
    }
    lf_doc_deinit(&doc);
    // through the model: the last layer's output against made-up teacher states of width 5
    lf_model m;
    lf_model_desc md = {.path = LF_TEST_MODELS "llama_f32", .n_threads = 2, .max_tokens = 32, .max_seq_len = 32};
    CHECK_OK(lf_model_open(&m, &md));
    enum { B = 2, T = 6, CT = 5 };
    int C = m.cfg.C, V = m.cfg.V, layer = m.cfg.L - 1;
    float *W = (float *)malloc((size_t)CT * (size_t)C * 4), ht[B * T * CT];
    int32_t tok[B * T], lab[B * T], ids[B * T];
    float lp[B * T];
    uint8_t mask[B * T];
    CHECK(W);
    for (int i = 0; i < CT * C; i++) W[i] = 0.05f * (float)((i * 7) % 11 - 5);
    for (int i = 0; i < B * T * CT; i++) ht[i] = 0.3f * (float)((i * 5) % 9 - 4);
    for (int i = 0; i < B * T; i++) tok[i] = (i * 13 + 3) % V, lab[i] = i % T < 2 ? -100 : tok[i], mask[i] = i % T < 5, ids[i] = tok[i], lp[i] = 0;
    const char *name = "distill.proj.0.weight";
    const float *hid[1] = {ht};
    float *projs[1] = {W};
    const char *names[1] = {name};
    lf_kd_features f = {1, &layer, hid, projs, names, mask, CT, 0.7f};
    lf_kd_targets t = {1, ids, lp};
    lf_kd_desc d = {0.5f, 2.0f};
    CHECK_OK(lf_model_train_extra(&m, name, W, (int64_t)CT * C));
    CHECK_ERR(lf_model_train_extra(&m, name, W, 4), LF_ERR_ARG, "is there already");
    CHECK_OK(lf_model_train_begin(&m, B, T, 0));
    lf_kd_stats st;
    lf_train_batch b = {.tokens = tok, .labels = lab};
    CHECK_OK(lf_kd_grads(&m, &d, &b, &t, &f, &st));
    CHECK(st.feat > 0 && lf_model_n_trainable(&m) == lf_model_n_params(&m) + CT * C);
    int64_t n = 0;
    const float *g = lf_model_grad(&m, name, &n);
    CHECK(g && n == CT * C);
    int bad = 0;
    for (int j = 0; j < 6; j++) {
        int at = j * 7;
        float keep = W[at];
        double fd[2];
        for (int k = 0; k < 2; k++) {
            float h = k ? 5e-3f : 1e-2f;
            lf_kd_stats sp, sm;
            W[at] = keep + h;
            CHECK_OK(lf_kd_eval(&m, &d, &b, &t, &f, &sp));
            W[at] = keep - h;
            CHECK_OK(lf_kd_eval(&m, &d, &b, &t, &f, &sm));
            fd[k] = (sp.loss - sm.loss) / (2 * h);
        }
        W[at] = keep;
        double est = (4 * fd[1] - fd[0]) / 3;
        if (fabs(est - g[at]) > 2e-3 * fmax(0.05, fabs(est))) fprintf(stderr, "    W[%d]: %.6g, central difference %.6g\n", at, g[at], est), bad++;
    }
    // the final norm's gradient carries the feature term too (the last layer feeds it)
    const float *gn = lf_model_grad(&m, "model.norm.weight", NULL);
    CHECK(gn);
    float *w = (float *)(uintptr_t)m.final_norm;
    for (int j = 0; j < 3; j++) {
        float keep = w[j];
        lf_kd_stats sp, sm;
        w[j] = keep + 5e-3f;
        CHECK_OK(lf_kd_eval(&m, &d, &b, &t, &f, &sp));
        w[j] = keep - 5e-3f;
        CHECK_OK(lf_kd_eval(&m, &d, &b, &t, &f, &sm));
        w[j] = keep;
        double est = (sp.loss - sm.loss) / 1e-2;
        if (fabs(est - gn[j]) > 5e-3 * fmax(0.05, fabs(est))) fprintf(stderr, "    norm[%d]: %.6g, central difference %.6g\n", j, gn[j], est), bad++;
    }
    // the projection checkpoints and comes back
    char dir[] = "/tmp/lf-kdproj-XXXXXX", ck[300];
    CHECK(mkdtemp(dir));
    snprintf(ck, sizeof ck, "%s/step-1", dir);
    lf_optim o;
    lf_optim_desc od = {.learning_rate = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .total_steps = 4};
    CHECK_OK(lf_optim_init(&o, &m, &od));
    CHECK_OK(lf_optim_step(&o, &m, NULL));
    float keep0 = W[0];
    lf_train_state ts = {.step = 1};
    CHECK_OK(lf_ckpt_save(ck, &m, &o, &ts));
    W[0] = 99;
    CHECK_OK(lf_ckpt_load(ck, &m, &o, &ts));
    CHECK(W[0] == keep0);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    lf_optim_deinit(&o);
    lf_model_close(&m);
    free(W);
    return bad;
}

static const lf_test tests_train[] = {
    {"train/kd_features", test_kd_features},
    {"train/kd_loss_vs_torch", test_kd_loss_torch},
    {"train/kd_grads_model", test_kd_grads},
    {"train/dpo_config", test_dpo_config},
    {"train/preference_losses_trl", test_pref_losses_trl},
    {"train/configs_shipped", test_train_configs_shipped},
    {"train/config", test_train_config},
    {"train/checkpoint_resume_lora", test_ckpt_resume_lora},
    {"train/checkpoint_resume_full", test_ckpt_resume_full},
};
