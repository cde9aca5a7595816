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

static const lf_test tests_drivers[] = {
    {"drivers/interactive_chat", test_drivers_interactive_chat},
    {"drivers/cli_and_exit_codes", test_drivers_cli},
    {"drivers/tokenize", test_drivers_tokenize},
    {"drivers/run_greedy", test_drivers_run_greedy},
    {"drivers/evaluate", test_drivers_evaluate},
};
