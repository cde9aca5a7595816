// tests/test_drivers.c — the command-line drivers end to end: exit codes, one-line errors, and
// outputs checked against the same transformers/tokenizers fixtures as the library tests.
// Needs the drivers in build/ (make test builds them first); skipped when they are missing.

// Runs a shell command; returns its exit code and captures up to cap bytes of stdout+stderr.
static int drv_run(const char *cmd, char *out, size_t cap) {
    char full[4096];
    snprintf(full, sizeof full, "(%s) 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#define DRV_NEED_BUILD()                                                           \
    do {                                                                           \
        if (!lf_path_exists("build/largeforge") || !lf_path_exists("build/lf-run")) \
            SKIP("drivers not built (run make first)");                            \
    } while (0)

static int test_drivers_cli(void) {
    DRV_NEED_BUILD();
    char out[8192];
    CHECK(drv_run("build/largeforge --version", out, sizeof out) == 0 && strstr(out, LF_VERSION_STRING));
    CHECK(drv_run("build/largeforge --help", out, sizeof out) == 0 && strstr(out, "tokenize"));
    CHECK(drv_run("build/largeforge run --help", out, sizeof out) == 0 && strstr(out, "--temperature"));
    CHECK(drv_run("build/largeforge nosuchtask", out, sizeof out) == 64 && strstr(out, "unknown task"));
    CHECK(drv_run("build/largeforge run --model", out, sizeof out) == 64 && strstr(out, "--model needs a value"));
    CHECK(drv_run("build/largeforge run --bogus", out, sizeof out) == 64 && strstr(out, "unknown argument"));
    // a missing model: exit 4 (LF_ERR_IO), one line naming the file
    CHECK(drv_run("build/largeforge run --model /nonexistent --prompt hi", out, sizeof out) == 4);
    CHECK(strncmp(out, "lf-run: error: ", 15) == 0 && strstr(out, "/nonexistent") && strchr(out, '\n') == out + strlen(out) - 1);
    // a broken config.json: exit 7 (LF_ERR_CONFIG) naming the field
    CHECK(drv_run("d=$(mktemp -d) && cp tests/fixtures/models/tiny_chat/* $d/ && sed -i 's/\"hidden_size\": 64/\"hidden_size\": \"64\"/' "
                  "$d/config.json && build/largeforge run --model $d --prompt hi; r=$?; rm -rf $d; exit $r", out, sizeof out) == 7);
    CHECK(strstr(out, "config.json: field 'hidden_size' must be an integer"));
    return 0;
}

static int test_drivers_tokenize(void) {
    DRV_NEED_BUILD();
    char out[8192];
    // ids equal HF tokenizers' (tiny_chat's gen_ref.json: "The cat" -> [274,283,275])
    CHECK(drv_run("printf 'The cat' | build/largeforge tokenize encode --tokenizer tests/fixtures/models/tiny_chat", out,
                  sizeof out) == 0);
    CHECK(strcmp(out, "[274,283,275]\n") == 0);
    CHECK(drv_run("printf 'The cat\\nThe cat' | build/lf-tokenize encode --jsonl --tokenizer tests/fixtures/models/tiny_chat",
                  out, sizeof out) == 0);
    CHECK(strcmp(out, "[274,283,275]\n[274,283,275]\n") == 0);
    CHECK(drv_run("echo '[274,283,275]' | build/lf-tokenize decode --tokenizer tests/fixtures/models/tiny_chat/tokenizer.json",
                  out, sizeof out) == 0);
    CHECK(strcmp(out, "The cat\n") == 0);
    CHECK(drv_run("echo '[274,99999]' | build/lf-tokenize decode --tokenizer tests/fixtures/models/tiny_chat", out, sizeof out) == 2);
    CHECK(strstr(out, "lf-tokenize: error:"));
    CHECK(drv_run("echo '[1,' | build/lf-tokenize decode --tokenizer tests/fixtures/models/tiny_chat", out, sizeof out) == 5);
    // train: the same file as the library's trainer on the fixture corpus (whose ids HF checked)
    CHECK(drv_run("d=$(mktemp -d) && build/largeforge tokenize train --quiet --input tests/fixtures/tok/bpe_train/kjv.txt "
                  "--input tests/fixtures/tok/bpe_train/mixed.txt --vocab-size 1000 --out $d && (cd $d && sha256sum tokenizer.json) "
                  "&& rm -r $d", out, sizeof out) == 0);
    char want[100];
    FILE *f = fopen("tests/fixtures/tok/bpe_train/tokenizer.sha256", "r");
    CHECK(f && fgets(want, sizeof want, f));
    fclose(f);
    CHECK(strcmp(out, want) == 0);
    CHECK(drv_run("build/lf-tokenize train --input /nonexistent.txt --vocab-size 300 --out /tmp/x", out, sizeof out) == 4);
    CHECK(strstr(out, "/nonexistent.txt"));
    CHECK(drv_run("build/lf-tokenize train --input x.txt --out /tmp/x", out, sizeof out) == 64);
    return 0;
}

static int test_drivers_run_greedy(void) {
    DRV_NEED_BUILD();
    char out[8192];
    // transformers' greedy continuation of "Once upon a time" is "is\xef\xbf\xbdld" then EOS
    CHECK(drv_run("build/largeforge run --model tests/fixtures/models/tiny_chat --prompt 'Once upon a time' --temperature 0"
                  " --max-tokens 24 --threads 1", out, sizeof out) == 0);
    CHECK(strcmp(out, "is\xef\xbf\xbdld\n") == 0);
    // the same through configs/generation.yaml with a command-line override
    CHECK(drv_run("build/largeforge run --model tests/fixtures/models/tiny_chat --prompt 'Once upon a time' --threads 1"
                  " --config configs/generation.yaml --generation.temperature 0", out, sizeof out) == 0);
    CHECK(strcmp(out, "is\xef\xbf\xbdld\n") == 0);
    CHECK(drv_run("build/largeforge run --model tests/fixtures/models/tiny_chat --prompt x --generation.bogus=1", out,
                  sizeof out) == 7 && strstr(out, "generation.bogus: unknown key"));
    return 0;
}

static int test_drivers_evaluate(void) {
    DRV_NEED_BUILD();
    char out[8192];
    char path[] = "/tmp/lf-test-logits-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    // sequence 0 of llama_f32's reference, through the driver: logits equal transformers'
    lf_test_ref r;
    if (lf_test_ref_open(&r, "llama_f32")) return 1;
    char cmd[2048];
    int k = snprintf(cmd, sizeof cmd, "build/largeforge evaluate logits --model tests/fixtures/models/llama_f32 --out %s --tokens ", path);
    for (int t = 0; t < r.T; t++) k += snprintf(cmd + k, sizeof cmd - (size_t)k, t ? ",%d" : "%d", ((const int32_t *)r.tokens->data)[t]);
    CHECK(drv_run(cmd, out, sizeof out) == 0);
    lf_st_file f;
    CHECK_OK(lf_st_open(&f, path));
    const lf_st_tensor *lg = lf_st_find(&f, "logits");
    CHECK(lg && lg->dtype == LF_DTYPE_F32 && lg->ndim == 2 && lg->shape[0] == r.T && lg->shape[1] == r.V);
    CHECK(lf_test_max_diff((const float *)lg->data, (const float *)r.logits->data, (size_t)r.T * (size_t)r.V) <= 1e-4f);
    lf_st_close(&f);
    lf_st_close(&r.f);
    remove(path);
    CHECK(drv_run("build/largeforge evaluate logits --model tests/fixtures/models/llama_f32 --out /tmp/x --tokens 1,400",
                  out, sizeof out) == 2 && strstr(out, "id 400"));
    // perplexity of a text under tiny_chat, and the llama-bench-shaped JSON
    CHECK(drv_run("build/largeforge evaluate perplexity --model tests/fixtures/models/tiny_chat --input tests/fixtures/models/tiny_chat/config.json --ctx 64",
                  out, sizeof out) == 0);
    CHECK(strstr(out, "\"perplexity\":") && strstr(out, "\"n_scored\":"));
    CHECK(drv_run("build/largeforge evaluate benchmark --model tests/fixtures/models/qwen2_f32 -p 16 -n 4 -r 2 -t 1 -o json",
                  out, sizeof out) == 0);
    lf_doc d;
    CHECK_OK(lf_json_parse(&d, out, strlen(out), "benchmark output"));
    CHECK(d.root->type == LF_NODE_ARRAY && d.root->n == 2);
    const char *keys[] = {"n_prompt", "n_gen", "n_threads", "model_size", "model_n_params", "avg_ts", "stddev_ts", "samples_ts"};
    for (int i = 0; i < 2; i++)
        for (size_t k2 = 0; k2 < sizeof keys / sizeof *keys; k2++) CHECK(lf_node_get(&d.root->kids[i], keys[k2]));
    CHECK(lf_node_get(&d.root->kids[0], "n_prompt")->num == 16 && lf_node_get(&d.root->kids[1], "n_gen")->num == 4);
    lf_doc_deinit(&d);
    return 0;
}


// Interactive chat (no --prompt): each stdin line is a user turn rendered with the model's chat
// template; the first reply equals transformers' greedy generate on the same conversation.
static int test_drivers_interactive_chat(void) {
    DRV_NEED_BUILD();
    char out[8192];
    CHECK(drv_run("printf 'Hello! How are you?\\nAgain?\\n' | build/largeforge run --model tests/fixtures/models/tiny_chat"
                  " --temperature 0 --max-tokens 24 --threads 1", out, sizeof out) == 0);
    const char *first = "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdL\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                        "\xef\xbf\xbd\xef\xbf\xbdT\n";  // gen_ref.json case 3, then EOS
    CHECK(strncmp(out, first, strlen(first)) == 0);
    char *nl = strchr(out, '\n');
    CHECK(nl && strchr(nl + 1, '\n'));  // a second reply followed
    return 0;
}

// -- train, merge, exact-match

// Writes dir.yaml: a LoRA SFT run on tiny_chat (the Alpaca fixture, dropout on) into dir.
static int drv_train_config(const char *dir) {
    char cfg[700];
    snprintf(cfg, sizeof cfg, "%s.yaml", dir);
    FILE *f = fopen(cfg, "w");
    if (!f) return -1;
    fprintf(f, "model:\n  name: tests/fixtures/models/tiny_chat\ntraining:\n  output_dir: %s\n  max_steps: 600\n"
               "  per_device_batch_size: 2\n  gradient_accumulation_steps: 2\n  learning_rate: 1.0e-3\n  logging_steps: 3\n"
               "  save_steps: 10\n  eval_steps: 50\n  threads: 1\nlora:\n  r: 4\n  lora_dropout: 0.1\n  target_modules: all-linear\n"
               "data:\n  train_file: tests/fixtures/data/alpaca.jsonl\n  validation_file: tests/fixtures/data/alpaca.json\n"
               "  max_length: 48\n  cache_dir: %s.cache\n", dir, dir);
    return fclose(f);
}

// The loss of every step in a metrics.jsonl, as text (bit-exact: %.9g of a float).
static int drv_losses(const char *dir, char *out, size_t cap) {
    char path[700], line[512];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = 0;
    int steps = 0;
    out[0] = 0;
    while (fgets(line, sizeof line, f)) {
        char *l = strstr(line, "\"loss\": ");
        if (!l) continue;
        size_t k = strcspn(l + 8, ",");
        if (n + k + 2 < cap) memcpy(out + n, l + 8, k), n += k, out[n++] = ' ', out[n] = 0;
        steps++;
    }
    fclose(f);
    return steps;
}

// Interrupted by SIGTERM mid-run, then --resume: the same logged loss at every logging step, bit
// for bit, as the run that was never interrupted (adapter dropout on, accumulation 2, eval every
// 50 steps, checkpoints every 10 steps and logs every 3, so a logging window spans the cut).
static int test_drivers_train_resume(void) {
    DRV_NEED_BUILD();
    char base[] = "/tmp/lf-test-train-XXXXXX", a[600], b[600], out[8192], cmd[2000];
    CHECK(mkdtemp(base));
    snprintf(a, sizeof a, "%s/whole", base), snprintf(b, sizeof b, "%s/cut", base);
    CHECK(drv_train_config(a) == 0 && drv_train_config(b) == 0);
    snprintf(cmd, sizeof cmd, "build/largeforge train sft --config %s.yaml --quiet", a);
    CHECK(drv_run(cmd, out, sizeof out) == 0);
    // the second run: SIGTERM once 25 steps are logged
    snprintf(cmd, sizeof cmd, "build/largeforge train sft --config %s.yaml & p=$!; "
             "while [ \"$(cat %s/metrics.jsonl 2>/dev/null | wc -l)\" -lt 12 ] && kill -0 $p 2>/dev/null; do sleep 0.01; done; "
             "kill -TERM $p; wait $p", b, b);
    CHECK(drv_run(cmd, out, sizeof out) == 0);
    if (!strstr(out, "interrupted at step")) SKIP("the run ended before SIGTERM reached it (a very fast machine)");
    char ck[700];
    snprintf(ck, sizeof ck, "%s/checkpoints", b);
    CHECK(lf_path_is_dir(ck));
    snprintf(cmd, sizeof cmd, "build/largeforge train sft --config %s.yaml --quiet", b);
    CHECK(drv_run(cmd, out, sizeof out) == 2 && strstr(out, "already has checkpoints"));  // never overwritten
    snprintf(cmd, sizeof cmd, "build/largeforge train sft --config %s.yaml --quiet --resume", b);
    CHECK(drv_run(cmd, out, sizeof out) == 0);
    static char la[65536], lb[65536];
    int na = drv_losses(a, la, sizeof la), nb = drv_losses(b, lb, sizeof lb);
    CHECK(na == 200 && nb == 200);
    CHECK(strcmp(la, lb) == 0);
    // the run directory
    const char *files[] = {"config.yaml", "run.log", "loss.png", "final/adapter_model.safetensors", "final/adapter_config.json"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(ck, sizeof ck, "%s/%s", b, files[i]);
        CHECK(lf_path_exists(ck));
    }
    snprintf(cmd, sizeof cmd, "grep -c '\"eval_loss\"' %s/metrics.jsonl; grep -c '\"message\": \"resumed\"' %s/run.log; "
             "head -c 8 %s/loss.png | od -An -tx1", b, b, b);
    CHECK(drv_run(cmd, out, sizeof out) == 0);
    CHECK(strncmp(out, "12\n1\n 89 50 4e 47", 17) == 0);
    // epochs: an accumulation group ends with its epoch (4 records, batch 2, accumulation 4:
    // 2 micro-batches an epoch, one step each), so 3 epochs are 3 steps and end at epoch 3
    snprintf(cmd, sizeof cmd, "build/largeforge train sft --config %s.yaml --quiet --training.output_dir %s/ep "
             "--training.max_steps -1 --training.num_epochs 3 --training.gradient_accumulation_steps 4 && tail -2 %s/ep/metrics.jsonl",
             a, base, base);
    CHECK(drv_run(cmd, out, sizeof out) == 0);
    CHECK(strstr(out, "{\"step\": 3, \"epoch\": 3.0000, \"loss\"") && strstr(out, "\"eval_loss\""));
    snprintf(cmd, sizeof cmd, "rm -rf %s", base);
    CHECK(system(cmd) == 0);
    return 0;
}

// A run's value of "key" in the last line of metrics.jsonl holding it, as text; "" if none.
static void drv_metric(const char *dir, const char *key, char *out, size_t cap) {
    char path[700], line[4096], pat[80];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir), snprintf(pat, sizeof pat, "\"%s\": ", key);
    out[0] = 0;
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f)) {
        char *v = strstr(line, pat);
        if (v) snprintf(out, cap, "%.*s", (int)strcspn(v + strlen(pat), ",}"), v + strlen(pat));
    }
    if (f) fclose(f);
}

// The peak RSS a run logged (run.log's "done" line), in KB; 0 if none.
static long drv_rss(const char *dir) {
    char path[700], line[4096];
    long kb = 0;
    snprintf(path, sizeof path, "%s/run.log", dir);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f)) {
        char *v = strstr(line, "\"max_rss_kb\": ");
        if (v) kb = strtol(v + 14, NULL, 10);
    }
    if (f) fclose(f);
    return kb;
}

// train dpo and orpo on the shipped model (configs/dpo.yaml, LoRA, the reference = adapters off):
// TRL's metric names; the reference's log-probs precomputed and cached give the very same run;
// a SIGTERM and --resume give the same losses and metrics bit for bit; peak memory against LoRA
// SFT on the same rows (B pairs against 2B samples): at most 1.3x, precomputed at most 1.1x.
static int test_drivers_dpo(void) {
    DRV_NEED_BUILD();
    char base[] = "/tmp/lf-test-dpo-XXXXXX", cmd[4000], out[8192], d[6][100], v[2][64];
    CHECK(mkdtemp(base));
    static const char *names[6] = {"live", "pre", "cut", "orpo", "sft", "resumed"};
    for (int i = 0; i < 6; i++) snprintf(d[i], sizeof d[i], "%s/%s", base, names[i]);
    const char *common = "--training.max_steps 16 --training.save_steps 5 --training.logging_steps 2 --training.eval_steps 8 "
                         "--data.train_file tests/fixtures/data/dpo_books.jsonl --data.validation_split 0.25 --lora.lora_dropout 0.1 "
                         "--training.threads 1";
    snprintf(cmd, sizeof cmd, "build/largeforge train dpo --config configs/dpo.yaml --quiet %s --training.output_dir %s --data.cache_dir %s/c",
             common, d[0], base);
    CHECK(drv_run(cmd, out, sizeof out) == 0);
    snprintf(cmd, sizeof cmd, "build/largeforge train dpo --config configs/dpo.yaml --quiet %s --training.output_dir %s --data.cache_dir %s/c "
             "--dpo.precompute_ref_log_probs true && ls %s/c | grep -c '\\.ref-'", common, d[1], base, base);
    CHECK(drv_run(cmd, out, sizeof out) == 0 && strcmp(out, "1\n") == 0);
    snprintf(cmd, sizeof cmd, "for r in %s %s; do sed 's/\"tokens_per_s\": [0-9.]*//' $r/metrics.jsonl > $r.m; done; cmp %s.m %s.m && "
             "grep -c 'rewards/accuracies' %s.m", d[0], d[1], d[0], d[1], d[0]);
    CHECK(drv_run(cmd, out, sizeof out) == 0 && strcmp(out, "10\n") == 0);  // 8 training lines, 2 evals
    static const char *keys[] = {"rewards/chosen", "rewards/rejected", "rewards/margins", "logps/chosen", "logps/rejected",
                                 "eval_rewards/accuracies"};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        drv_metric(d[0], keys[k], v[0], sizeof v[0]);
        CHECK(v[0][0]);
    }
    drv_metric(d[0], "rewards/margins", v[0], sizeof v[0]);
    CHECK(strtod(v[0], NULL) > 0);  // it learns to prefer the right book
    // continuing an adapter (model.adapter): the reference is that adapter as it starts, so before
    // the first step moves it (the eval after one step at learning rate 0) the rewards are 0 and
    // the loss log 2
    snprintf(cmd, sizeof cmd, "build/largeforge train dpo --config configs/dpo.yaml --quiet %s --training.output_dir %s/adapter "
             "--data.cache_dir %s/c --model.adapter %s/final --training.max_steps 1 --training.logging_steps 1 "
             "--training.gradient_accumulation_steps 1 && grep -c '\"eval_loss\": 0.693147, \"eval_rewards/chosen\": 0,' %s/adapter/metrics.jsonl",
             common, base, base, d[0], base);
    CHECK(drv_run(cmd, out, sizeof out) == 0 && strcmp(out, "1\n") == 0);
    // full fine-tuning: the reference's log-probs are computed once before the first step, so that
    // step sees rewards 0 and the loss log 2 (they are the starting model's, exactly)
    snprintf(cmd, sizeof cmd, "build/largeforge train dpo --config configs/dpo.yaml --quiet %s --training.output_dir %s/full "
             "--data.cache_dir %s/c --lora.enabled false --training.max_steps 1 --training.logging_steps 1 "
             "--training.gradient_accumulation_steps 1 && grep -c '\"loss\": 0.69314718[0-9]*, .*\"rewards/chosen\": 0, \"rewards/rejected\": 0,' "
             "%s/full/metrics.jsonl", common, base, base, base);
    CHECK(drv_run(cmd, out, sizeof out) == 0 && strcmp(out, "1\n") == 0);
    // SIGTERM once 5 lines are logged, then --resume
    snprintf(cmd, sizeof cmd, "build/largeforge train dpo --config configs/dpo.yaml %s --training.output_dir %s --data.cache_dir %s/c & p=$!; "
             "while [ \"$(cat %s/metrics.jsonl 2>/dev/null | wc -l)\" -lt 5 ] && kill -0 $p 2>/dev/null; do sleep 0.01; done; "
             "kill -TERM $p; wait $p", common, d[2], base, d[2]);
    CHECK(drv_run(cmd, out, sizeof out) == 0);
    if (strstr(out, "interrupted at step")) {
        snprintf(cmd, sizeof cmd, "build/largeforge train dpo --config configs/dpo.yaml --quiet --resume %s --training.output_dir %s "
                 "--data.cache_dir %s/c && sed 's/\"tokens_per_s\": [0-9.]*//' %s/metrics.jsonl | cmp - %s.m", common, d[2], base, d[2], d[0]);
        CHECK(drv_run(cmd, out, sizeof out) == 0);
    } else fprintf(stderr, "    (the run ended before SIGTERM reached it: resume not checked)\n");
    snprintf(cmd, sizeof cmd, "sed '/^dpo:/,$d' configs/dpo.yaml > %s/orpo.yaml && printf 'orpo:\\n  beta: 0.2\\n  max_prompt_length: 80\\n  max_length: 96\\n' >> %s/orpo.yaml && "
             "build/largeforge train orpo --config %s/orpo.yaml --quiet %s --training.output_dir %s --data.cache_dir %s/c",
             base, base, base, common, d[3], base);
    CHECK(drv_run(cmd, out, sizeof out) == 0);
    static const char *okeys[] = {"nll_loss", "log_odds_ratio", "log_odds_chosen", "eval_nll_loss"};
    for (size_t k = 0; k < sizeof okeys / sizeof *okeys; k++) {
        drv_metric(d[3], okeys[k], v[1], sizeof v[1]);
        CHECK(v[1][0]);
    }
    // memory: the same rows as SFT (4 pairs against 8 samples of the same prompts and answers)
    snprintf(cmd, sizeof cmd, "build/largeforge train sft --config configs/demo_sft.yaml --quiet --training.output_dir %s --data.cache_dir %s/c "
             "--training.max_steps 16 --training.per_device_batch_size 8 --data.max_length 96 --training.threads 1 --data.train_file data/sft/train.jsonl",
             d[4], base);
    CHECK(drv_run(cmd, out, sizeof out) == 0);
    long sft = drv_rss(d[4]), live = drv_rss(d[0]), pre = drv_rss(d[1]);
    if (getenv("LF_TEST_VERBOSE"))
        fprintf(stderr, "  peak RSS: LoRA SFT %ld KB, DPO %ld KB (%.3fx), precomputed %ld KB (%.3fx)\n", sft, live, (double)live / sft, pre,
                (double)pre / sft);
    CHECK(sft > 0 && live <= 1.3 * sft && pre <= 1.1 * sft);
    snprintf(cmd, sizeof cmd, "rm -rf %s", base);
    CHECK(system(cmd) == 0);
    return 0;
}

// train distill: online (the teacher loaded, top-16 per token) and offline (its targets written
// once by generate logits) give the same run bit for bit; a targets file made for other data is
// refused, naming the file; a teacher quantized to NF4 trains too; feature distillation into a
// smaller student from scratch.
static int test_drivers_distill(void) {
    DRV_NEED_BUILD();
    char base[] = "/tmp/lf-test-kd-XXXXXX", cmd[4000], out[8192];
    CHECK(mkdtemp(base));
    snprintf(cmd, sizeof cmd, "head -160 data/sft/train.jsonl > %s/train.jsonl && head -40 data/sft/test.jsonl > %s/other.jsonl", base, base);
    CHECK(drv_run(cmd, out, sizeof out) == 0);
    char common[1000];
    snprintf(common, sizeof common, "--quiet --training.max_steps 8 --training.logging_steps 2 --training.eval_steps 4 --distill.top_k 16 "
             "--data.train_file %s/train.jsonl --data.cache_dir %s/c --training.threads 1", base, base);
    snprintf(cmd, sizeof cmd, "build/largeforge generate logits --config configs/distill.yaml %s --output %s/t.safetensors && "
             "build/largeforge train distill --config configs/distill.yaml %s --training.output_dir %s/on && "
             "build/largeforge train distill --config configs/distill.yaml %s --training.output_dir %s/off --distill.logits_file %s/t.safetensors && "
             "for r in on off; do sed 's/\"tokens_per_s\": [0-9.]*//' %s/$r/metrics.jsonl > %s/$r.m; done && cmp %s/on.m %s/off.m && "
             "grep -c '\"kl_loss\"' %s/on.m", common, base, common, base, common, base, base, base, base, base, base, base);
    CHECK(drv_run(cmd, out, sizeof out) == 0 && strcmp(out, "4\n") == 0);
    snprintf(cmd, sizeof cmd, "build/largeforge train distill --config configs/distill.yaml %s --training.output_dir %s/bad "
             "--data.train_file %s/other.jsonl --distill.logits_file %s/t.safetensors", common, base, base, base);
    CHECK(drv_run(cmd, out, sizeof out) == 5 && strstr(out, "t.safetensors: made for another dataset"));
    snprintf(cmd, sizeof cmd, "build/largeforge train distill --config configs/distill.yaml %s --training.output_dir %s/q "
             "--distill.teacher_quantization nf4 && grep -c '\"eval_kl_loss\"' %s/q/metrics.jsonl", common, base, base);
    CHECK(drv_run(cmd, out, sizeof out) == 0 && strcmp(out, "2\n") == 0);
    // a student half as wide and deep, from fresh weights, with feature distillation through learned
    // projections (256 -> 128 wide): they train and checkpoint with it
    snprintf(cmd, sizeof cmd, "mkdir -p %s/stu && cp models/kjv-llama-4m/tokenizer*.json %s/stu/ && "
             "sed 's/\"hidden_size\": 256/\"hidden_size\": 128/; s/\"num_hidden_layers\": 4/\"num_hidden_layers\": 2/; "
             "s/\"num_attention_heads\": 4/\"num_attention_heads\": 2/; s/\"num_key_value_heads\": 4/\"num_key_value_heads\": 2/' "
             "models/kjv-llama-4m/config.json > %s/stu/config.json && "
             "build/largeforge train distill --config configs/distill.yaml %s --training.output_dir %s/f --model.name %s/stu "
             "--lora.enabled false --distill.feature_layers '[[0, 1], [1, 3]]' --training.save_steps 4 && "
             "grep -c '\"feature_loss\"' %s/f/metrics.jsonl && ls %s/f/checkpoints/step-8 | grep -c extra.safetensors",
             base, base, base, common, base, base, base, base);
    CHECK(drv_run(cmd, out, sizeof out) == 0 && strcmp(out, "4\n1\n") == 0);
    snprintf(cmd, sizeof cmd, "build/largeforge train distill --config configs/distill.yaml %s --training.output_dir %s/g "
             "--distill.feature_layers '[[0, 1]]' --distill.logits_file %s/t.safetensors", common, base, base);
    CHECK(drv_run(cmd, out, sizeof out) == 7 && strstr(out, "feature_layers need the teacher loaded"));
    snprintf(cmd, sizeof cmd, "rm -rf %s", base);
    CHECK(system(cmd) == 0);
    return 0;
}

// evaluate --quantize: the projections in Q8_0 / Q4_0 in memory; the benchmark names the type
// and the smaller size, perplexity stays near the f32 model's (Q8_0 within 1%, Q4_0 within 10%).
static int test_drivers_quantize_eval(void) {
    DRV_NEED_BUILD();
    char out[8192];
    double ppl[3];
    static const char *q[3] = {"", "--quantize q8_0", "--quantize q4_0"};
    for (int k = 0; k < 3; k++) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "build/largeforge evaluate perplexity --model models/kjv-llama-4m --input tests/fixtures/tok/bpe_train/kjv.txt --ctx 128 %s", q[k]);
        CHECK(drv_run(cmd, out, sizeof out) == 0);
        const char *p = strstr(out, "\"perplexity\":");
        CHECK(p);
        ppl[k] = strtod(p + 13, NULL);
    }
    if (getenv("LF_TEST_VERBOSE")) fprintf(stderr, "  perplexity: f32 %.4f, Q8_0 %.4f, Q4_0 %.4f\n", ppl[0], ppl[1], ppl[2]);
    CHECK(fabs(ppl[1] / ppl[0] - 1) < 0.01 && fabs(ppl[2] / ppl[0] - 1) < 0.10);
    CHECK(drv_run("build/largeforge evaluate benchmark --model models/kjv-llama-4m -p 8 -n 2 -r 1 -o jsonl --quantize q4_0", out, sizeof out) == 0 &&
          strstr(out, "\"model_type\":\"llama Q4_0\"") &&
          strstr(out, "\"model_size\":2929664,"));  // projections 1,806,336 (Q4_0) + head 1,114,112 (Q8_0) + norms 9,216
    CHECK(drv_run("build/largeforge evaluate benchmark --model models/kjv-llama-4m --quantize q5_k", out, sizeof out) == 2 &&
          strstr(out, "--quantize: 'q5_k' is not q8_0, q4_0, q4, int8 or nf4"));
    return 0;
}

// Bad configs: each a clear line naming the file and field, the documented exit code.
static int test_drivers_train_errors(void) {
    DRV_NEED_BUILD();
    char out[4096];
    CHECK(drv_run("build/largeforge train sft --config /nonexistent.yaml", out, sizeof out) == 4 && strstr(out, "/nonexistent.yaml"));
    CHECK(drv_run("build/largeforge train sft", out, sizeof out) == 64 && strstr(out, "--config is required"));
    CHECK(drv_run("build/largeforge train distil --config x", out, sizeof out) == 64 && strstr(out, "expected pretrain, sft, dpo, orpo or distill"));
    CHECK(drv_run("build/largeforge train distill --config configs/distill.yaml --distill.teacher tests/fixtures/models/tiny_chat", out, sizeof out) == 7 &&
          strstr(out, "the two must share a tokenizer"));
    CHECK(drv_run("build/largeforge train distill --config configs/distill.yaml --distill.alpha 2", out, sizeof out) == 7 &&
          strstr(out, "distill: alpha: 2 is outside [0, 1]"));
    CHECK(drv_run("build/largeforge train dpo --config configs/demo_sft.yaml --training.output_dir /tmp/lf-never", out, sizeof out) == 7 &&
          strstr(out, "alpaca data: preference training reads prompt/chosen/rejected pairs"));
    CHECK(drv_run("build/largeforge train dpo --config configs/dpo.yaml --dpo.loss_type sigmod", out, sizeof out) == 7 &&
          strstr(out, "dpo: loss_type"));
    CHECK(drv_run("build/largeforge train orpo --config configs/dpo.yaml", out, sizeof out) == 7 &&
          strstr(out, "orpo reads the 'orpo' section, not 'dpo'"));
    CHECK(drv_run("build/largeforge train sft --config configs/demo_sft.yaml --training.lerning_rate 1", out, sizeof out) == 7 &&
          strstr(out, "training.lerning_rate: unknown key (did you mean learning_rate?)"));
    CHECK(drv_run("build/largeforge train sft --config configs/demo_sft.yaml --bogus.key 1", out, sizeof out) == 64);
    CHECK(drv_run("build/largeforge train sft --config configs/demo_sft.yaml --data.max_length ten", out, sizeof out) == 7 &&
          strstr(out, "data: field 'max_length'"));
    CHECK(drv_run("LARGEFORGE_LORA_R=0 build/largeforge train sft --config configs/demo_sft.yaml", out, sizeof out) == 7 &&
          strstr(out, "'r'"));
    CHECK(drv_run("d=$(mktemp -d) && printf '{\"instruction\": \"a\", \"output\": 3}\\n' > $d/bad.jsonl && "
                  "build/largeforge train sft --config configs/demo_sft.yaml --model.name tests/fixtures/models/tiny_chat "
                  "--training.output_dir $d/run --data.train_file $d/bad.jsonl --data.cache_dir $d/c; r=$?; rm -rf $d; exit $r",
                  out, sizeof out) == 5);
    CHECK(strstr(out, "bad.jsonl:1: field 'output'"));
    return 0;
}

// merge lora: the merged directory gives PEFT's merge_and_unload() logits.
static int test_drivers_merge(void) {
    DRV_NEED_BUILD();
    char out[4096];
    CHECK(drv_run("d=$(mktemp -d) && build/largeforge merge lora --base tests/fixtures/models/llama_f32 --adapter "
                  "tests/fixtures/models/llama_f32/lora_ref --out $d/m --quiet && echo $d", out, sizeof out) == 0);
    out[strcspn(out, "\n")] = 0;
    char dir[700];
    snprintf(dir, sizeof dir, "%.600s/m", out);
    lf_st_file in, g;
    CHECK_OK(lf_st_open(&in, LF_TEST_MODELS "llama_f32/grads.safetensors"));
    CHECK_OK(lf_st_open(&g, LF_TEST_MODELS "llama_f32/lora_ref/grads.safetensors"));
    const lf_st_tensor *ids = lf_st_find(&in, "input_ids"), *mg = lf_st_find(&g, "merged_logits");
    lf_model m;
    lf_model_desc d = {.path = dir, .n_threads = 2, .max_tokens = 64, .max_seq_len = 64};
    CHECK_OK(lf_model_open(&m, &d));
    int B = (int)ids->shape[0], T = (int)ids->shape[1];
    int64_t n = (int64_t)B * T * m.cfg.V;
    float *got = (float *)malloc((size_t)n * sizeof(float));
    CHECK(got);
    if (lora_logits(&m, (const int32_t *)ids->data, B, T, got)) return 1;
    CHECK(lora_max_diff(got, (const float *)mg->data, n) <= 1e-4);
    free(got);
    lf_model_close(&m), lf_st_close(&in), lf_st_close(&g);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %.600s", out);
    CHECK(system(cmd) == 0);
    CHECK(drv_run("build/largeforge merge lora --base tests/fixtures/models/llama_f32 --adapter /nonexistent --out /tmp/x",
                  out, sizeof out) == 4 && strstr(out, "/nonexistent/adapter_config.json"));
    return 0;
}

// exact-match: one line per shown prompt and a JSON summary over every record.
static int test_drivers_exact_match(void) {
    DRV_NEED_BUILD();
    char out[8192];
    CHECK(drv_run("build/largeforge evaluate exact-match --model tests/fixtures/models/tiny_chat --data tests/fixtures/data/alpaca.jsonl "
                  "--show 2 --max-tokens 4", out, sizeof out) == 0);
    CHECK(strstr(out, "\"total\":4,\"exact_match\":") && strstr(out, " want "));
    return 0;
}

// largeforge quantize: GPTQ on a little calibration text writes GPTQ's layout and a report whose
// perplexities and sizes are there; q4 into LargeForge's layout reloads to the report's "after"
// perplexity exactly (lf-evaluate on the written model) and trains LoRA adapters (QLoRA); gguf
// writes a file; errors are named.
static int test_drivers_quantize(void) {
    DRV_NEED_BUILD();
    char base[] = "/tmp/lf-test-quantize-XXXXXX", cmd[2048], out[8192], path[600];
    CHECK(mkdtemp(base));
    snprintf(cmd, sizeof cmd, "head -c 40000 data/kjv/train.txt > %s/cal.txt && head -c 20000 data/kjv/valid.txt > %s/eval.txt", base, base);
    CHECK(system(cmd) == 0);
    static const char *modes[2] = {"gptq", "q4 --asym --layout largeforge"};
    double after[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        snprintf(cmd, sizeof cmd, "build/largeforge quantize %s --model models/kjv-llama-4m --out %s/m%d --calibration %s/cal.txt "
                 "--eval %s/eval.txt --samples 8 --seq-len 128 --group-size 64 -t 2", modes[k], base, k, base, base);
        CHECK(drv_run(cmd, out, sizeof out) == 0);
        CHECK(strstr(out, "perplexity") && strstr(out, "smaller"));
        snprintf(path, sizeof path, "%s/m%d/quantization_report.json", base, k);
        lf_doc r;
        CHECK_OK(lf_config_load(&r, path, NULL, 0));
        const lf_node *pp = lf_node_get(r.root, "perplexity"), *sz = lf_node_get(r.root, "size"), *layers = lf_node_get(r.root, "layers");
        double before = 0, ratio = 0;
        CHECK(pp && sz && layers);
        CHECK_OK(lf_cfg_num(&r, pp, "before", true, &before));
        CHECK_OK(lf_cfg_num(&r, pp, "after", true, &after[k]));
        CHECK_OK(lf_cfg_num(&r, sz, "compression_ratio", true, &ratio));
        CHECK(before > 1 && after[k] > before * 0.99 && after[k] < before * 1.05 && ratio > 2.5);
        const char *method;
        CHECK_OK(lf_cfg_str(&r, r.root, "method", true, &method));
        CHECK(strcmp(method, k ? "rtn" : "gptq") == 0);
        lf_doc_deinit(&r);
    }
    snprintf(cmd, sizeof cmd, "build/largeforge evaluate perplexity --model %s/m1 --input %s/eval.txt --ctx 128 -t 2", base, base);
    CHECK(drv_run(cmd, out, sizeof out) == 0);
    const char *p = strstr(out, "\"perplexity\":");
    CHECK(p && fabs(atof(p + 13) - after[1]) < 1e-5 * after[1]);
    // LoRA on the quantized model as it was written (QLoRA on its Q4 base; quantization.enabled leaves it as it is)
    snprintf(cmd, sizeof cmd, "build/largeforge train sft --config configs/demo_sft.yaml --quiet --model.name %s/m1 --training.output_dir %s/run "
             "--data.cache_dir %s/c --training.max_steps 3 --training.per_device_batch_size 4 --quantization.enabled true", base, base, base);
    CHECK(drv_run(cmd, out, sizeof out) == 0);
    snprintf(path, sizeof path, "%s/run/final/adapter_model.safetensors", base);
    CHECK(lf_path_exists(path));
    snprintf(cmd, sizeof cmd, "build/largeforge quantize gguf --model models/kjv-llama-4m --out %s/m.gguf --type q8_0", base);
    CHECK(drv_run(cmd, out, sizeof out) == 0);
    snprintf(path, sizeof path, "%s/m.gguf", base);
    CHECK(lf_path_exists(path));
    snprintf(cmd, sizeof cmd, "build/largeforge quantize awq --model models/kjv-llama-4m --out %s/x", base);
    CHECK(drv_run(cmd, out, sizeof out) == 2 && strstr(out, "awq needs --calibration FILE"));
    snprintf(cmd, sizeof cmd, "build/largeforge quantize q4 --model models/kjv-llama-4m --out %s/x --group-size 48", base);
    CHECK(drv_run(cmd, out, sizeof out) == 2 && strstr(out, "group size 48"));
    snprintf(cmd, sizeof cmd, "build/largeforge quantize q5 --model models/kjv-llama-4m --out %s/x", base);
    CHECK(drv_run(cmd, out, sizeof out) == 2 && strstr(out, "'q5' is not"));
    snprintf(cmd, sizeof cmd, "rm -rf %s", base);
    CHECK(system(cmd) == 0);
    return 0;
}

// lf-serve against the real clients (tests/clients/serve_clients.py): the official openai
// package, curl, prometheus_client's parser of /metrics, raw sockets for hostile input and a
// slowloris client, then SIGTERM and exit 0. Skipped when python3 or its packages are missing.
static int test_drivers_serve_clients(void) {
    DRV_NEED_BUILD();
    if (!lf_path_exists("build/lf-serve")) SKIP("build/lf-serve not built (run make first)");
    static char out[1 << 16];
    int rc = drv_run("python3 tests/clients/serve_clients.py --server build/lf-serve --model tests/fixtures/models/tiny_chat "
                     "--threads 1",
                     out, sizeof out);
    if (rc == 3 || rc == 127) SKIP("python3 with openai and prometheus_client is needed: %s", out);
    const char *last = strstr(out, "serve_clients: ");
    if (rc != 0 || !last || getenv("LF_TEST_VERBOSE")) fprintf(stderr, "%s", out);
    CHECK(rc == 0 && last && strstr(last, " 0 fail, 0 skip"));
    // the driver's own errors: no model, a short key, a bad config key
    CHECK(drv_run("build/lf-serve inference", out, sizeof out) == 64 && strstr(out, "a model is required"));
    CHECK(drv_run("LARGEFORGE_API_KEY=short build/lf-serve inference --model tests/fixtures/models/tiny_chat --port 0", out,
                  sizeof out) == 7 && strstr(out, "at least 32"));
    CHECK(drv_run("build/lf-serve inference --config configs/serve.yaml --server.prot 1", out, sizeof out) == 7 &&
          strstr(out, "server.prot"));
    return 0;
}

static const lf_test tests_drivers[] = {
    {"drivers/serve_clients", test_drivers_serve_clients},
    {"drivers/train_resume_sigterm", test_drivers_train_resume},
    {"drivers/dpo_orpo", test_drivers_dpo},
    {"drivers/distill_online_offline", test_drivers_distill},
    {"drivers/evaluate_quantize", test_drivers_quantize_eval},
    {"drivers/train_errors", test_drivers_train_errors},
    {"drivers/merge_lora", test_drivers_merge},
    {"drivers/quantize", test_drivers_quantize},
    {"drivers/exact_match", test_drivers_exact_match},
    {"drivers/interactive_chat", test_drivers_interactive_chat},
    {"drivers/cli_and_exit_codes", test_drivers_cli},
    {"drivers/tokenize", test_drivers_tokenize},
    {"drivers/run_greedy", test_drivers_run_greedy},
    {"drivers/evaluate", test_drivers_evaluate},
};
