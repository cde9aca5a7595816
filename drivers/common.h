// drivers/common.h — what every lf-<task> driver shares: option parsing, the status -> exit
// code table, and the one-line error. Each driver defines LARGEFORGE_IMPLEMENTATION itself.
//
// EXIT CODES (every driver)
//   0  success                      5  LF_ERR_FORMAT: malformed file or input
//   2  LF_ERR_ARG: invalid argument  6  LF_ERR_SHAPE
//   3  LF_ERR_NOMEM                  7  LF_ERR_CONFIG: bad config field
//   4  LF_ERR_IO: cannot read/write  8  LF_ERR_UNSUPPORTED   9 LF_ERR_CAPACITY
//  10  LF_ERR_CUDA  11  LF_ERR_NET: network  12  LF_ERR_CANCELLED (interrupted)  13  LF_ERR_BUSY
//  14  LF_ERR_TIMEOUT
//  64  usage error (unknown option, missing value)
#ifndef LF_DRIVER_COMMON_H
#define LF_DRIVER_COMMON_H
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LF_EXIT_USAGE 64

static const char *lf_drv_name = "largeforge";
static int lf_drv_verbose = 0, lf_drv_quiet = 0;

static int lf_drv_exit_code(lf_status s) { return s == LF_OK ? 0 : 1 - (int)s; }

// Prints "lf-run: error: <detail>" once and returns the exit code for s.
static int lf_drv_fail(lf_status s) {
    fprintf(stderr, "%s: error: %s\n", lf_drv_name, lf_last_error()[0] ? lf_last_error() : lf_status_str(s));
    return lf_drv_exit_code(s);
}

static int lf_drv_usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "%s: error: ", lf_drv_name);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see %s --help)\n", lf_drv_name);
    return LF_EXIT_USAGE;
}

// SIGINT sets lf_drv_interrupted; generation stops at the next token (lf_gen_desc.should_stop).
static volatile sig_atomic_t lf_drv_interrupted;
static void lf_drv_on_sigint(int sig) {
    (void)sig;
    lf_drv_interrupted = 1;
}
static bool lf_drv_should_stop(void *user) {
    (void)user;
    return lf_drv_interrupted != 0;
}

// Option parsing: `if (lf_drv_opt(argc, argv, &i, "--model", &val))` consumes "--model X" or
// "--model=X". A missing value sets lf_drv_bad so the caller can report a usage error.
static const char *lf_drv_bad = NULL;
static int lf_drv_opt(int argc, char **argv, int *i, const char *name, const char **val) {
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0) return 0;
    if (argv[*i][n] == '=') {
        *val = argv[*i] + n + 1;
        return 1;
    }
    if (argv[*i][n] != 0) return 0;
    if (*i + 1 >= argc) {
        lf_drv_bad = name;
        return 0;
    }
    *val = argv[++*i];
    return 1;
}

static int lf_drv_parse_int(const char *s, long lo, long hi, long *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}
static int lf_drv_parse_float(const char *s, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end) return 0;
    *out = v;
    return 1;
}

// "--section.key V" or "--section.key=V" for a section in sections (a NULL-terminated list):
// appends "section.key=V" to ov (n entries of cap, each 512 bytes) and returns 1; 0 when
// argv[*i] is no such option; -1 (usage error printed) when it lacks a value or ov is full.
static int lf_drv_override(int argc, char **argv, int *i, const char *const *sections, char (*ov)[512], int *n, int cap) {
    const char *a = argv[*i];
    if (strncmp(a, "--", 2) != 0) return 0;
    int k = 0;
    while (sections[k] && !(strncmp(a + 2, sections[k], strlen(sections[k])) == 0 && a[2 + strlen(sections[k])] == '.')) k++;
    if (!sections[k]) return 0;
    if (*n == cap) return lf_drv_usage_error("too many overrides%s", ""), -1;
    const char *eq = strchr(a, '=');
    if (!eq && *i + 1 >= argc) return lf_drv_usage_error("option %s needs a value", a), -1;
    if (eq) snprintf(ov[*n], 512, "%s", a + 2);
    else snprintf(ov[*n], 512, "%s=%s", a + 2, argv[*i + 1]), ++*i;
    ++*n;
    return 1;
}

// Handles the flags every driver has; returns 1 when the option was one of them.
static int lf_drv_common_flag(const char *arg, const char *help) {
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
        fputs(help, stdout);
        exit(0);
    }
    if (strcmp(arg, "--version") == 0) {
        printf("%s %s\n", lf_drv_name, LF_VERSION_STRING);
        exit(0);
    }
    if (strcmp(arg, "--verbose") == 0 || strcmp(arg, "-v") == 0) {
        lf_log_set(lf_log_stderr, NULL, LF_LOG_INFO);  // the library's own progress lines
        return lf_drv_verbose = 1;
    }
    if (strcmp(arg, "--quiet") == 0 || strcmp(arg, "-q") == 0) return lf_drv_quiet = 1;
    return 0;
}
// The dataset cache of a data section: data.cache_dir, else $LARGEFORGE_HOME/datasets, else
// ~/.largeforge/datasets; its parent is made when missing (SRS: LARGEFORGE_HOME).
static lf_status lf_drv_cache_dir(const lf_data_config *d, char *cache, size_t cap) {
    const char *home = getenv("LARGEFORGE_HOME"), *h = getenv("HOME");
    if (d->cache_dir) snprintf(cache, cap, "%s", d->cache_dir);
    else if (home) snprintf(cache, cap, "%s/datasets", home);
    else snprintf(cache, cap, "%s/.largeforge/datasets", h ? h : "/tmp");
    char parent[1100];
    snprintf(parent, sizeof parent, "%s", cache);
    char *slash = strrchr(parent, '/');
    if (!slash || slash == parent) return LF_OK;
    *slash = 0;
    return lf_dir_make(parent);
}

// The mean negative log-likelihood of ids[1..n) under m, in independent windows of ctx tokens
// (each window's first token is context only); *scored gets how many were scored. progress: a
// label for a "\r<label>: a/b tokens" line on a terminal, or NULL.
static lf_status lf_drv_nll(lf_model *m, const int32_t *ids, size_t n, int ctx, const char *progress, double *mean_nll, long *scored) {
    lf_kv kv;
    lf_status s = lf_kv_init(&kv, m, 1, ctx);
    if (s != LF_OK) return s;
    int V = m->cfg.V;
    float *logits = (float *)malloc((size_t)ctx * (size_t)V * sizeof(float));
    int8_t *want = (int8_t *)malloc((size_t)ctx);
    if (!logits || !want) s = lf__fail(LF_ERR_NOMEM, "logits for %d tokens", ctx);
    else memset(want, 1, (size_t)ctx);
    double nll = 0;
    *scored = 0;
    for (size_t a = 0; a + 1 < n && s == LF_OK; a += (size_t)ctx) {
        int w = (int)LF__MIN((size_t)ctx, n - a);
        lf_batch b = {w, ids + a, NULL, NULL, want, NULL};
        s = lf_model_forward(m, &kv, &b, logits);
        for (int i = 0; s == LF_OK && i + 1 < w; i++) {  // log-softmax in double for a stable sum
            const float *l = logits + (size_t)i * (size_t)V;
            float mx = l[0];
            for (int v = 1; v < V; v++) mx = l[v] > mx ? l[v] : mx;
            double sum = 0;
            for (int v = 0; v < V; v++) sum += exp((double)(l[v] - mx));
            nll += log(sum) - (double)(l[ids[a + (size_t)i + 1]] - mx);
        }
        *scored += w - 1;
        if (progress && !lf_drv_quiet && isatty(2)) fprintf(stderr, "\r%s: %zu/%zu tokens", progress, LF__MIN(a + (size_t)w, n), n);
    }
    if (progress && !lf_drv_quiet && isatty(2)) fputc('\n', stderr);
    *mean_nll = *scored ? nll / (double)*scored : 0.0;
    free(logits), free(want);
    lf_kv_deinit(&kv);
    return s;
}

// Distillation's teacher and student must share a tokenizer: the same tokenizer.json bytes.
static lf_status lf_drv_same_tokenizer(const char *teacher, const char *student) {
    char *a = lf_path_join(teacher, "tokenizer.json"), *b = lf_path_join(student, "tokenizer.json"), ha[65] = "", hb[65] = "";
    lf_status s = a && b ? lf__sha256_file(a, ha) : LF_ERR_NOMEM;
    if (s == LF_OK) s = lf__sha256_file(b, hb);
    if (s == LF_OK && strcmp(ha, hb) != 0) s = lf__fail(LF_ERR_CONFIG, "distill.teacher: %s and the student's %s differ: the two must share a tokenizer", a, b);
    lf_free(a), lf_free(b);
    return s;
}

#endif
