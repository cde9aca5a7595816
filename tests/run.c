// tests/run.c — the one test runner: `build/tests [-v] [name-substring...]`.
// Ends with "N passed, N failed[, N skipped]" and exits non-zero when anything failed.
#include <stdbool.h>
#include <stdlib.h>

// Allocation fault injection (STYLE R19): the library allocates only through these hooks, so a
// test can make the Nth call fail and count the blocks still alive afterwards. Pool workers
// free their start-up block on their own thread, hence the atomics.
static long lf_test_fail_at = -1, lf_test_allocs = 0, lf_test_live = 0;
static bool lf_test_fail_now(void) {
    return lf_test_fail_at >= 0 && __atomic_fetch_add(&lf_test_allocs, 1, __ATOMIC_RELAXED) == lf_test_fail_at;
}
static void *lf_test_malloc(size_t n) {
    if (lf_test_fail_now()) return NULL;
    void *p = malloc(n);
    if (p) __atomic_add_fetch(&lf_test_live, 1, __ATOMIC_RELAXED);
    return p;
}
static void *lf_test_realloc(void *p, size_t n) {
    if (lf_test_fail_now()) return NULL;
    void *q = realloc(p, n);
    if (q && !p) __atomic_add_fetch(&lf_test_live, 1, __ATOMIC_RELAXED);
    return q;
}
static void lf_test_free(void *p) {
    if (p) __atomic_sub_fetch(&lf_test_live, 1, __ATOMIC_RELAXED);
    free(p);
}
#define LF_MALLOC(n) lf_test_malloc(n)
#define LF_REALLOC(p, n) lf_test_realloc(p, n)
#define LF_FREE(p) lf_test_free(p)

#define LARGEFORGE_IMPLEMENTATION
#include "../largeforge.h"
#include "test.h"

#include <sys/wait.h>

// Runs session once to count its allocations, then once per allocation with that one failing:
// each run must return LF_ERR_NOMEM and leave no block behind (STYLE R19).
static int lf_test_each_allocation_fails(lf_status (*session)(const void *ctx), const void *ctx) {
    long base = lf_test_live;
    lf_test_fail_at = 1L << 40, lf_test_allocs = 0;  // count the session's allocations
    lf_status s = session(ctx);
    long total = lf_test_allocs;
    lf_test_fail_at = -1;
    if (s != LF_OK || total < 10 || lf_test_live != base) {
        fprintf(stderr, "    the session: %s (%s), %ld allocations, %ld blocks left\n", lf_status_str(s), lf_last_error(), total,
                lf_test_live - base);
        return 1;
    }
    if (getenv("LF_TEST_VERBOSE")) fprintf(stderr, "    failing each of %ld allocations in turn\n", total);
    for (long i = 0; i < total; i++) {
        lf_test_fail_at = i, lf_test_allocs = 0;
        s = session(ctx);
        lf_test_fail_at = -1;
        if (s != LF_ERR_NOMEM || lf_test_live != base) {
            fprintf(stderr, "    allocation %ld of %ld failing: %s (%s), %ld blocks left\n", i, total, lf_status_str(s),
                    lf_last_error(), lf_test_live - base);
            return 1;
        }
    }
    return 0;
}

#include "test_core.c"
#include "test_quant.c"
#include "test_safetensors.c"
#include "test_model.c"
#include "test_lora.c"
#include "test_train.c"
#include "test_data.c"
#include "test_synth.c"
#include "test_tokenizer.c"
#include "test_generate.c"
#include "test_engine.c"
#include "test_http.c"
#include "test_serve.c"
#include "test_drivers.c"
#include "test_synth_gen.c"
#include "test_layout.c"

static const lf_test *const lf_suites[] = {tests_core, tests_quant, tests_safetensors, tests_model, tests_lora, tests_train, tests_data, tests_synth, tests_tokenizer,
                                           tests_generate, tests_engine, tests_http, tests_serve, tests_drivers, tests_synth_gen, tests_layout};
static const size_t lf_suite_sizes[] = {sizeof tests_core / sizeof *tests_core,
                                        sizeof tests_quant / sizeof *tests_quant,
                                        sizeof tests_safetensors / sizeof *tests_safetensors,
                                        sizeof tests_model / sizeof *tests_model,
                                        sizeof tests_lora / sizeof *tests_lora,
                                        sizeof tests_train / sizeof *tests_train,
                                        sizeof tests_data / sizeof *tests_data,
                                        sizeof tests_synth / sizeof *tests_synth,
                                        sizeof tests_tokenizer / sizeof *tests_tokenizer,
                                        sizeof tests_generate / sizeof *tests_generate,
                                        sizeof tests_engine / sizeof *tests_engine,
                                        sizeof tests_http / sizeof *tests_http,
                                        sizeof tests_serve / sizeof *tests_serve,
                                        sizeof tests_drivers / sizeof *tests_drivers,
                                        sizeof tests_synth_gen / sizeof *tests_synth_gen,
                                        sizeof tests_layout / sizeof *tests_layout};

int main(int argc, char **argv) {
    int passed = 0, failed = 0, skipped = 0, verbose = 0;
    for (int i = 1; i < argc; i++) verbose |= strcmp(argv[i], "-v") == 0;
    for (size_t s = 0; s < sizeof lf_suites / sizeof *lf_suites; s++)
        for (size_t i = 0; i < lf_suite_sizes[s]; i++) {
            const lf_test *t = &lf_suites[s][i];
            int filters = 0, selected = 0;  // names given: run the tests matching any of them
            for (int a = 1; a < argc; a++)
                if (argv[a][0] != '-') filters++, selected |= strstr(t->name, argv[a]) != NULL;
            if (filters && !selected) continue;
            uint64_t t0 = lf_time_ns();
            int r = t->fn();
            double ms = (double)(lf_time_ns() - t0) * 1e-6;
            if (r == 0) passed++;
            else if (r < 0) skipped++;
            else failed++;
            if (r != 0 || verbose)
                fprintf(stderr, "%-6s %s (%.0f ms)\n", r == 0 ? "ok" : r < 0 ? "skip" : "FAIL", t->name, ms);
        }
    if (skipped) printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    else printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
