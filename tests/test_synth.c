// tests/test_synth.c — section 10.7 (synthetic data: quality filters and near-duplicates):
//   - words as documented (case, punctuation, non-ASCII bytes);
//   - planted exact and near duplicates, each pair's true word-shingle Jaccard computed here from
//     the word ids (sorted 5-gram sets, no hashing) to show the case is what it claims;
//   - the MinHash estimate against the exact Jaccard over 200 random pairs;
//   - determinism for a seed, bad descs, empty and 1 MB inputs, allocation failures;
//   - verdicts on degenerate and normal answers, and the repeat fraction's boundary.
// Texts are made of 3-letter words, word id i < 4096 written in base 26, so a 5-gram of ids
// packs into 60 bits.

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SYN_K 5  // the default shingle

static char *syn_text(const int *ids, int n) {
    char *s = (char *)malloc((size_t)n * 4 + 1), *p = s;
    for (int i = 0; i < n; i++) {
        *p++ = (char)('a' + ids[i] / 676), *p++ = (char)('a' + ids[i] / 26 % 26), *p++ = (char)('a' + ids[i] % 26);
        *p++ = i + 1 < n ? ' ' : 0;
    }
    if (!n) *p = 0;
    return s;
}

static void syn_random_ids(lf_rng *r, int *ids, int n) {
    for (int i = 0; i < n; i++) ids[i] = (int)(lf_rng_u64(r) % 4096);
}

static int syn_cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

// The sorted, distinct 5-grams of ids (n >= 5); returns their count.
static int syn_shingles(const int *ids, int n, uint64_t *out) {
    int m = 0;
    for (int i = 0; i + SYN_K <= n; i++) {
        uint64_t v = 0;
        for (int j = 0; j < SYN_K; j++) v = v << 12 | (uint64_t)ids[i + j];
        out[m++] = v;
    }
    qsort(out, (size_t)m, 8, syn_cmp_u64);
    int u = 0;
    for (int i = 0; i < m; i++)
        if (!u || out[u - 1] != out[i]) out[u++] = out[i];
    return u;
}

// The exact Jaccard similarity of two id sequences' 5-gram sets.
static double syn_jaccard(const int *a, int na, const int *b, int nb) {
    uint64_t *x = (uint64_t *)malloc((size_t)(na + nb) * 8), *y = x + na;
    int nx = syn_shingles(a, na, x), ny = syn_shingles(b, nb, y), i = 0, j = 0, both = 0;
    while (i < nx && j < ny) {
        if (x[i] == y[j]) both++, i++, j++;
        else if (x[i] < y[j]) i++;
        else j++;
    }
    free(x);
    return (double)both / (nx + ny - both);
}

// ids with m words replaced, at 4, 10, 16, ...: each change is inside 5 of the 5-grams, and no
// 5-gram holds two changes.
static void syn_plant(const int *ids, int n, int m, int *out) {
    memcpy(out, ids, (size_t)n * sizeof *ids);
    for (int i = 0; i < m; i++) out[4 + 6 * i] = (ids[4 + 6 * i] + 1 + i) % 4096;
}

#define SYN_SIG(dd, str, sig) lf_dedup_signature(dd, str, strlen(str), sig)

static int test_synth_words(void) {
    lf_dedup dd;
    CHECK_OK(lf_dedup_init(&dd, NULL));
    uint32_t a[128], b[128];
    // case, punctuation at word ends and punctuation-only runs do not count
    SYN_SIG(&dd, "Hello, World! It's (really) fine...", a);
    SYN_SIG(&dd, "hello world -- it's really FINE", b);
    CHECK(lf_dedup_similarity(&dd, a, b) == 1);
    // inner punctuation does: "it's" is not "its"
    SYN_SIG(&dd, "hello world its really fine", b);
    CHECK(lf_dedup_similarity(&dd, a, b) < 0.1);
    // non-ASCII bytes are word bytes: U+00A0 joins, accents are not folded
    SYN_SIG(&dd, "caf\xC3\xA9 au lait", a);
    SYN_SIG(&dd, "cafe au lait", b);
    CHECK(lf_dedup_similarity(&dd, a, b) < 0.1);
    SYN_SIG(&dd, "a\xC2\xA0" "b", a);
    SYN_SIG(&dd, "a b", b);
    CHECK(lf_dedup_similarity(&dd, a, b) < 0.1);
    // texts shorter than the shingle are one shingle: word order counts
    SYN_SIG(&dd, "b a", a);
    CHECK(lf_dedup_similarity(&dd, a, b) < 0.1);
    SYN_SIG(&dd, "\tA\n  B. ", a);
    CHECK(lf_dedup_similarity(&dd, a, b) == 1);
    lf_dedup_deinit(&dd);
    lf_dedup_deinit(&dd);  // safe twice
    return 0;
}

static int test_synth_dedup_planted(void) {
    lf_rng r;
    lf_rng_seed(&r, 7);
    int a40[40], b40[40], a100[100], b100[100], u100[100], a200[200], b200[200], c200[200];
    syn_random_ids(&r, a40, 40), syn_random_ids(&r, a100, 100), syn_random_ids(&r, u100, 100);
    syn_random_ids(&r, a200, 200);
    syn_plant(a40, 40, 1, b40), syn_plant(a100, 100, 1, b100);
    syn_plant(a200, 200, 2, b200), syn_plant(a200, 200, 13, c200);
    // the cases are what they claim: one interior word changes 5 of the 5-grams
    double j40 = syn_jaccard(a40, 40, b40, 40), j100 = syn_jaccard(a100, 100, b100, 100);
    double j90 = syn_jaccard(a200, 200, b200, 200), j50 = syn_jaccard(a200, 200, c200, 200);
    double ju = syn_jaccard(a100, 100, u100, 100);
    CHECK(fabs(j40 - 31.0 / 41) < 1e-12 && fabs(j100 - 91.0 / 101) < 1e-12 && ju == 0);
    CHECK(fabs(j90 - 186.0 / 206) < 1e-12 && fabs(j50 - 131.0 / 261) < 1e-12);  // 0.903, 0.502
    char *ta40 = syn_text(a40, 40), *tb40 = syn_text(b40, 40), *ta100 = syn_text(a100, 100), *tb100 = syn_text(b100, 100);
    char *tu100 = syn_text(u100, 100), *ta200 = syn_text(a200, 200), *tb200 = syn_text(b200, 200), *tc200 = syn_text(c200, 200);
    lf_dedup dd;
    int64_t dup;
    CHECK_OK(lf_dedup_init(&dd, NULL));
    CHECK(dd.d.bands == 16 && dd.d.num_perm == 128 && dd.d.shingle == 5 && dd.d.threshold == 0.85);
    CHECK_OK(lf_dedup_add(&dd, ta200, strlen(ta200), &dup));  // 0
    CHECK(dup == -1);
    CHECK_OK(lf_dedup_add(&dd, tb200, strlen(tb200), &dup));  // 1: J 0.903
    CHECK(dup == 0);
    CHECK_OK(lf_dedup_add(&dd, tc200, strlen(tc200), &dup));  // 2: J 0.502, kept
    CHECK(dup == -1);
    CHECK_OK(lf_dedup_add(&dd, ta100, strlen(ta100), &dup));  // 3: unrelated
    CHECK(dup == -1);
    CHECK_OK(lf_dedup_add(&dd, tb100, strlen(tb100), &dup));  // 4: one word in 100 (J 0.90)
    CHECK(dup == 3);
    CHECK_OK(lf_dedup_add(&dd, tu100, strlen(tu100), &dup));  // 5: unrelated
    CHECK(dup == -1);
    CHECK_OK(lf_dedup_add(&dd, ta40, strlen(ta40), &dup));  // 6
    // one interior word in 40 words leaves J = 31/41 = 0.76, below 0.85: rightly not a duplicate
    CHECK_OK(lf_dedup_add(&dd, tb40, strlen(tb40), &dup));  // 7
    CHECK(dup == -1);
    size_t n100 = strlen(ta100);
    char *exact = (char *)malloc(n100 + 2);  // an exact copy but for case and punctuation
    CHECK(exact);
    memcpy(exact, ta100, n100), exact[n100] = '.', exact[n100 + 1] = 0;
    exact[0] = (char)(exact[0] - 32);
    CHECK_OK(lf_dedup_add(&dd, exact, strlen(exact), &dup));  // 8: the best match, not just any
    CHECK(dup == 3);
    CHECK(dd.n_added == 9 && dd.n_kept == 6);
    lf_dedup_deinit(&dd);
    // at a threshold below 0.76 the 40-word pair is caught; its estimate is near its Jaccard
    lf_dedup_desc d = {.threshold = 0.65};
    CHECK_OK(lf_dedup_init(&dd, &d));
    CHECK(dd.d.bands == 32);
    uint32_t sa[128], sb[128];
    lf_dedup_signature(&dd, ta40, strlen(ta40), sa), lf_dedup_signature(&dd, tb40, strlen(tb40), sb);
    CHECK(fabs(lf_dedup_similarity(&dd, sa, sb) - j40) < 3 * sqrt(j40 * (1 - j40) / 128));
    CHECK_OK(lf_dedup_add(&dd, ta40, strlen(ta40), &dup));
    CHECK_OK(lf_dedup_add(&dd, tb40, strlen(tb40), &dup));
    CHECK(dup == 0);
    lf_dedup_deinit(&dd);
    free(ta40), free(tb40), free(ta100), free(tb100), free(tu100), free(ta200), free(tb200), free(tc200), free(exact);
    return 0;
}

// The estimate's mean absolute error over 200 pairs with Jaccard spread over [0, 1]. For one pair
// the estimate is (equal minima) / 128, a binomial share: E|est - J| ~ sqrt(2/pi) sqrt(J(1-J)/128)
// <= 0.035. The checks: the mean absolute error is under 1/sqrt(128) = 0.088 (the loose bound),
// and under 1.25x the mean of that per-pair prediction; the mean signed error is within 4
// standard errors of 0 (no bias).
static int test_synth_estimate(void) {
    lf_dedup dd;
    CHECK_OK(lf_dedup_init(&dd, NULL));
    lf_rng r;
    lf_rng_seed(&r, 11);
    int a[300], b[300];
    double mae = 0, bias = 0, predicted = 0, var = 0, jmin = 1, jmax = 0;
    const int pairs = 200;
    for (int p = 0; p < pairs; p++) {
        int n = 20 + (int)(lf_rng_u64(&r) % 281), m = (int)(lf_rng_u64(&r) % (uint64_t)(n / 2 + 1));
        syn_random_ids(&r, a, n);
        memcpy(b, a, sizeof a);
        for (int i = 0; i < m; i++) b[lf_rng_u64(&r) % (uint64_t)n] = (int)(lf_rng_u64(&r) % 4096);
        double j = syn_jaccard(a, n, b, n);
        char *ta = syn_text(a, n), *tb = syn_text(b, n);
        uint32_t sa[128], sb[128];
        lf_dedup_signature(&dd, ta, strlen(ta), sa), lf_dedup_signature(&dd, tb, strlen(tb), sb);
        free(ta), free(tb);
        double e = lf_dedup_similarity(&dd, sa, sb) - j;
        mae += fabs(e) / pairs, bias += e / pairs, var += j * (1 - j) / 128 / pairs;
        predicted += sqrt(2 / acos(-1.0)) * sqrt(j * (1 - j) / 128) / pairs;
        jmin = fmin(jmin, j), jmax = fmax(jmax, j);
    }
    if (getenv("LF_TEST_VERBOSE"))
        fprintf(stderr, "    J in [%.3f, %.3f]: mean |error| %.4f (predicted %.4f, bound %.4f), mean error %+.4f\n", jmin,
                jmax, mae, predicted, 1 / sqrt(128), bias);
    CHECK(jmin < 0.1 && jmax > 0.9);
    CHECK(mae < 1 / sqrt(128) && mae < 1.25 * predicted);
    CHECK(fabs(bias) < 4 * sqrt(var / pairs));
    lf_dedup_deinit(&dd);
    return 0;
}

// The match reported is the kept text with the highest estimate, not the first candidate: X and
// Y are the same 200 words with 8 and 3 planted changes, Q the words themselves. J(Q, X) = 0.66
// and J(Q, Y) = 0.86 both reach 0.61 while J(X, Y) = 0.56 does not, so X and Y are both kept.
// 1024 permutations put each estimate within 0.016 (one standard error) of its J.
static int test_synth_dedup_best_match(void) {
    lf_rng r;
    lf_rng_seed(&r, 13);
    int q[200], x[200], y[200];
    syn_random_ids(&r, q, 200);
    syn_plant(q, 200, 8, x);
    memcpy(y, q, sizeof q);
    for (int i = 0; i < 3; i++) y[100 + 6 * i] = (q[100 + 6 * i] + 7) % 4096;  // away from X's
    CHECK(fabs(syn_jaccard(q, 200, x, 200) - 156.0 / 236) < 1e-12 && fabs(syn_jaccard(q, 200, y, 200) - 181.0 / 211) < 1e-12);
    CHECK(fabs(syn_jaccard(x, 200, y, 200) - 141.0 / 251) < 1e-12);
    char *tq = syn_text(q, 200), *tx = syn_text(x, 200), *ty = syn_text(y, 200);
    lf_dedup dd;
    lf_dedup_desc d = {.num_perm = 1024, .threshold = 0.61};
    int64_t dup;
    CHECK_OK(lf_dedup_init(&dd, &d));
    CHECK_OK(lf_dedup_add(&dd, tx, strlen(tx), &dup));
    CHECK(dup == -1);
    CHECK_OK(lf_dedup_add(&dd, ty, strlen(ty), &dup));
    CHECK(dup == -1);
    CHECK_OK(lf_dedup_add(&dd, tq, strlen(tq), &dup));
    CHECK(dup == 1);
    uint32_t *sx = (uint32_t *)malloc(2 * 1024 * 4), *sq = sx + 1024;
    SYN_SIG(&dd, tx, sx), SYN_SIG(&dd, tq, sq);
    CHECK(lf_dedup_similarity(&dd, sq, sx) >= 0.61);  // X was a qualifying candidate too
    free(sx);
    lf_dedup_deinit(&dd);
    free(tq), free(tx), free(ty);
    return 0;
}

// (a x + b) mod 2^61 - 1 in 64-bit pieces equals the 128-bit product's remainder.
static int test_synth_m61(void) {
#ifdef __SIZEOF_INT128__
    const uint64_t p = (1ull << 61) - 1, edge[] = {0, 1, 2, (1ull << 32) - 1, 1ull << 32, p - 2, p - 1};
    lf_rng r;
    lf_rng_seed(&r, 1);
    for (int i = 0; i < 100049; i++) {
        uint64_t a = i < 49 ? edge[i / 7] : lf_rng_u64(&r) % p, x = i < 49 ? edge[i % 7] : lf_rng_u64(&r) % p;
        uint64_t b = lf_rng_u64(&r) % p;
        CHECK(lf__m61_muladd(a, x, b) == (uint64_t)(((unsigned __int128)a * x + b) % p));
    }
    return 0;
#else
    SKIP("no 128-bit integers to check against");
#endif
}

static int test_synth_dedup_determinism(void) {
    lf_rng r;
    lf_rng_seed(&r, 3);
    int ids[150], alt[150];  // J = 141/151 = 0.93
    syn_random_ids(&r, ids, 150);
    syn_plant(ids, 150, 1, alt);
    char *t = syn_text(ids, 150), *u = syn_text(alt, 150);
    uint32_t s1[64], s2[64], s3[64];
    lf_dedup a, b, c;
    lf_dedup_desc d = {.num_perm = 64, .seed = 0}, e = {.num_perm = 64, .seed = 1};
    CHECK_OK(lf_dedup_init(&a, &d));
    CHECK_OK(lf_dedup_init(&b, &d));
    CHECK_OK(lf_dedup_init(&c, &e));
    lf_dedup_signature(&a, t, strlen(t), s1), lf_dedup_signature(&b, t, strlen(t), s2), lf_dedup_signature(&c, t, strlen(t), s3);
    CHECK(memcmp(s1, s2, sizeof s1) == 0 && memcmp(s1, s3, sizeof s1) != 0);
    // the same adds give the same answers
    for (int i = 0; i < 6; i++) {
        const char *x = i % 3 == 1 ? u : t;
        int64_t da, db;
        CHECK_OK(lf_dedup_add(&a, x, strlen(x), &da));
        CHECK_OK(lf_dedup_add(&b, x, strlen(x), &db));
        CHECK(da == db && (i == 0 ? da == -1 : da == 0));
    }
    CHECK(a.n_kept == 1 && a.tab_cap_ == b.tab_cap_ && memcmp(a.tab_, b.tab_, a.tab_cap_ * 8) == 0);
    lf_dedup_deinit(&a), lf_dedup_deinit(&b), lf_dedup_deinit(&c);
    free(t), free(u);
    return 0;
}

static int test_synth_dedup_edges(void) {
    lf_dedup dd;
    lf_dedup_desc d;
    memset(&dd, 0, sizeof dd);
    lf_dedup_deinit(&dd);  // safe on zeroed
    d = (lf_dedup_desc){.shingle = 65};
    CHECK_ERR(lf_dedup_init(&dd, &d), LF_ERR_CONFIG, "dedup.shingle");
    d = (lf_dedup_desc){.num_perm = -3};
    CHECK_ERR(lf_dedup_init(&dd, &d), LF_ERR_CONFIG, "dedup.num_perm");
    d = (lf_dedup_desc){.threshold = 1.5};
    CHECK_ERR(lf_dedup_init(&dd, &d), LF_ERR_CONFIG, "dedup.threshold");
    d = (lf_dedup_desc){.threshold = NAN};
    CHECK_ERR(lf_dedup_init(&dd, &d), LF_ERR_CONFIG, "dedup.threshold");
    d = (lf_dedup_desc){.bands = 129};
    CHECK_ERR(lf_dedup_init(&dd, &d), LF_ERR_CONFIG, "dedup.bands");
    lf_dedup_deinit(&dd);
    d = (lf_dedup_desc){.num_perm = 100, .bands = 30};  // r = 3, 10 rows unused
    CHECK_OK(lf_dedup_init(&dd, &d));
    int64_t dup;
    CHECK_ERR(lf_dedup_add(&dd, NULL, 3, &dup), LF_ERR_ARG, "NULL");
    // texts with no words are all one (empty) shingle set
    CHECK_OK(lf_dedup_add(&dd, NULL, 0, &dup));
    CHECK(dup == -1);
    CHECK_OK(lf_dedup_add(&dd, " \n\t", 3, &dup));
    CHECK(dup == 0);
    CHECK_OK(lf_dedup_add(&dd, "!!! ...", 7, &dup));
    CHECK(dup == 0);
    CHECK_OK(lf_dedup_add(&dd, "word", 4, &dup));
    CHECK(dup == -1 && dd.n_added == 4 && dd.n_kept == 2);
    lf_dedup_deinit(&dd);
    return 0;
}

static int test_synth_long_input(void) {
    const size_t words = 1 << 18;  // 1 MiB: 3 letters and a space each
    int *ids = (int *)malloc(words * sizeof *ids);
    lf_rng r;
    lf_rng_seed(&r, 5);
    syn_random_ids(&r, ids, (int)words);
    char *t = syn_text(ids, (int)words), *loop = (char *)malloc(words * 4 + 1), *the = (char *)malloc(words * 4 + 1);
    memset(loop, 'a', words * 4), loop[words * 4] = 0;
    for (size_t i = 0; i < words; i++) memcpy(the + 4 * i, "the ", 4);
    the[words * 4] = 0;
    size_t len = strlen(t);
    CHECK(len == words * 4 - 1);
    uint64_t t0 = lf_time_ns();
    lf_dedup dd;
    int64_t dup;
    CHECK_OK(lf_dedup_init(&dd, NULL));
    CHECK_OK(lf_dedup_add(&dd, t, len, &dup));
    CHECK(dup == -1);
    t[len / 2 - 1] = '0';  // one letter in the middle
    CHECK_OK(lf_dedup_add(&dd, t, len, &dup));
    CHECK(dup == 0);
    lf_dedup_deinit(&dd);
    double dedup_s = (double)(lf_time_ns() - t0) * 1e-9;
    lf_quality q;
    t0 = lf_time_ns();
    CHECK_OK(lf_quality_check(NULL, t, len, 300000, true, &q));
    CHECK(q == LF_QUALITY_OK);
    CHECK_OK(lf_quality_check(NULL, loop, words * 4, 300000, false, &q));
    CHECK(q == LF_QUALITY_REPETITIVE);
    CHECK_OK(lf_quality_check(NULL, the, words * 4, 300000, false, &q));
    CHECK(q == LF_QUALITY_REPETITIVE);
    double quality_s = (double)(lf_time_ns() - t0) * 1e-9;
    if (getenv("LF_TEST_VERBOSE")) fprintf(stderr, "    1 MiB: 2 dedup adds %.3f s, 3 quality checks %.3f s\n", dedup_s, quality_s);
    CHECK(dedup_s < 20 && quality_s < 20);  // ~0.1 s each at -O2; the bound allows sanitizers
    free(ids), free(t), free(loop), free(the);
    return 0;
}

typedef struct syn_case {
    const char *text;
    int64_t n_tokens;
    bool finished;
    lf_quality want;
} syn_case;

static int test_synth_quality(void) {
    static const char *normal =
        "Photosynthesis is the process by which green plants, algae and some bacteria turn light into chemical "
        "energy. Chlorophyll in the chloroplasts absorbs mostly red and blue light. That energy splits water "
        "molecules, releasing oxygen, and drives the Calvin cycle, which fixes carbon dioxide from the air into "
        "sugars such as glucose. The plant uses those sugars for growth and stores the surplus as starch. In short, "
        "plants make their own food from sunlight, water and carbon dioxide, and the oxygen we breathe is a "
        "by-product of the process.";
    static const char *sentence3 =
        "I am sorry, but I cannot help with that request today. I am sorry, but I cannot help with that request "
        "today. I am sorry, but I cannot help with that request today.";
    static const char *sentence2 = "The answer is four because two plus two is four. The answer is four because two plus two is four.";
    char the[400];
    for (int i = 0; i < 80; i++) memcpy(the + 5 * i, "the  ", 5);
    the[399] = 0;
    const syn_case cases[] = {
        {"", 0, true, LF_QUALITY_EMPTY},
        {" \n\t \r\n", 2, true, LF_QUALITY_EMPTY},
        {normal, 110, true, LF_QUALITY_OK},
        {normal, 110, false, LF_QUALITY_UNFINISHED},  // cut at the length limit
        {"The capital of France is Paris.", 7, true, LF_QUALITY_OK},
        {"Paris.", 2, true, LF_QUALITY_OK},
        {"42", 1, true, LF_QUALITY_OK},
        {"Mississippi", 4, true, LF_QUALITY_OK},
        {"1000000", 3, true, LF_QUALITY_OK},
        {"Thanks!!!!!!", 4, true, LF_QUALITY_OK},
        {"\xE5\x8C\x97\xE4\xBA\xAC\xE6\x98\xAF\xE4\xB8\xAD\xE5\x9B\xBD\xE7\x9A\x84\xE9\xA6\x96\xE9\x83\xBD\xEF\xBC\x8C"
         "\xE4\xB9\x9F\xE6\x98\xAF\xE5\x85\xA8\xE5\x9B\xBD\xE7\x9A\x84\xE6\x94\xBF\xE6\xB2\xBB\xE5\x92\x8C\xE6\x96\x87"
         "\xE5\x8C\x96\xE4\xB8\xAD\xE5\xBF\x83\xE3\x80\x82", 14, true, LF_QUALITY_OK},  // Chinese, no spaces
        {"", 0, false, LF_QUALITY_EMPTY},
        {"ok", 0, true, LF_QUALITY_TOO_SHORT},
        {the, 80, true, LF_QUALITY_REPETITIVE},
        {the, 80, false, LF_QUALITY_REPETITIVE},  // a loop cut at the limit: the loop is the cause
        {sentence3, 45, true, LF_QUALITY_REPETITIVE},
        {sentence2, 24, true, LF_QUALITY_REPETITIVE},
        {"!!!!!!!!", 8, true, LF_QUALITY_REPETITIVE},
        {"hahahahahahahaha", 8, true, LF_QUALITY_REPETITIVE},
        {"Sure: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 12, false, LF_QUALITY_REPETITIVE},
        {"\xE5\x93\x88\xE5\x93\x88\xE5\x93\x88\xE5\x93\x88\xE5\x93\x88\xE5\x93\x88\xE5\x93\x88\xE5\x93\x88", 8, true,
         LF_QUALITY_REPETITIVE},  // 8 x U+54C8
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        lf_quality q = (lf_quality)-1;
        CHECK_OK(lf_quality_check(NULL, cases[i].text, strlen(cases[i].text), cases[i].n_tokens, cases[i].finished, &q));
        if (q != cases[i].want) fprintf(stderr, "    case %zu: %s, expected %s\n", i, lf_quality_name(q), lf_quality_name(cases[i].want));
        CHECK(q == cases[i].want);
    }
    lf_quality q;
    lf_quality_desc d = {.min_tokens = 5, .max_tokens = 100};
    CHECK_OK(lf_quality_check(&d, "Paris.", 6, 3, true, &q));
    CHECK(q == LF_QUALITY_TOO_SHORT);
    CHECK_OK(lf_quality_check(&d, normal, strlen(normal), 110, true, &q));
    CHECK(q == LF_QUALITY_TOO_LONG);
    d = (lf_quality_desc){.allow_unfinished = true};
    CHECK_OK(lf_quality_check(&d, normal, strlen(normal), 110, false, &q));
    CHECK(q == LF_QUALITY_OK);
    d = (lf_quality_desc){.max_repeat_fraction = 1};  // off
    CHECK_OK(lf_quality_check(&d, the, strlen(the), 80, true, &q));
    CHECK(q == LF_QUALITY_OK);
    // the boundary: 7 distinct words then the first 5 again: 10 3-grams, 3 repeats (0.3, not
    // above); then the first 6: 11 3-grams, 4 repeats (0.36)
    const char *b10 = "one two three four five six seven one two three four five";
    CHECK_OK(lf_quality_check(NULL, b10, strlen(b10), 12, true, &q));
    CHECK(q == LF_QUALITY_OK);
    const char *b11 = "one two three four five six seven one two three four five six";
    CHECK_OK(lf_quality_check(NULL, b11, strlen(b11), 13, true, &q));
    CHECK(q == LF_QUALITY_REPETITIVE);
    // n = 2: "one two" twice in 7 words: 6 2-grams, 1 repeat (0.17); at 0.1 that is repetitive
    d = (lf_quality_desc){.repeat_ngram = 2, .max_repeat_fraction = 0.1};
    CHECK_OK(lf_quality_check(&d, "one two three four five one two", 31, 7, true, &q));
    CHECK(q == LF_QUALITY_REPETITIVE);
    return 0;
}

static int test_synth_quality_errors(void) {
    lf_quality q;
    lf_quality_desc d = {.min_tokens = -1};
    CHECK_ERR(lf_quality_check(&d, "x", 1, 1, true, &q), LF_ERR_CONFIG, "quality.min_tokens");
    d = (lf_quality_desc){.min_tokens = 10, .max_tokens = 5};
    CHECK_ERR(lf_quality_check(&d, "x", 1, 1, true, &q), LF_ERR_CONFIG, "quality.max_tokens");
    d = (lf_quality_desc){.repeat_ngram = 33};
    CHECK_ERR(lf_quality_check(&d, "x", 1, 1, true, &q), LF_ERR_CONFIG, "quality.repeat_ngram");
    d = (lf_quality_desc){.max_repeat_fraction = 1.5};
    CHECK_ERR(lf_quality_check(&d, "x", 1, 1, true, &q), LF_ERR_CONFIG, "quality.max_repeat_fraction");
    d = (lf_quality_desc){.max_repeat_fraction = -0.1};
    CHECK_ERR(lf_quality_check(&d, "x", 1, 1, true, &q), LF_ERR_CONFIG, "quality.max_repeat_fraction");
    CHECK_ERR(lf_quality_check(NULL, NULL, 1, 1, true, &q), LF_ERR_ARG, "NULL");
    CHECK_ERR(lf_quality_check(NULL, "x", 1, -1, true, &q), LF_ERR_ARG, "n_tokens");
    CHECK_OK(lf_quality_check(NULL, NULL, 0, 0, true, &q));
    CHECK(q == LF_QUALITY_EMPTY);
    const char *names[] = {"ok", "empty", "too_short", "too_long", "repetitive", "unfinished"};
    for (int i = 0; i < 6; i++) CHECK(strcmp(lf_quality_name((lf_quality)i), names[i]) == 0);
    CHECK(strcmp(lf_quality_name((lf_quality)6), "unknown") == 0);
    return 0;
}

// A generator's filtering of 80 answers: quality, then near-duplicates.
static lf_status synth_session(const void *ctx) {
    (void)ctx;
    lf_dedup dd;
    lf_dedup_desc d = {.num_perm = 32};
    lf_status s = lf_dedup_init(&dd, &d);
    lf_rng r;
    lf_rng_seed(&r, 9);
    int ids[50];
    syn_random_ids(&r, ids, 50);
    char text[256];
    for (int i = 0; s == LF_OK && i < 80; i++) {
        if (i % 4 != 3) syn_random_ids(&r, ids, 50);  // every fourth repeats the one before
        int n = snprintf(text, sizeof text, "%s", i / 4 % 2 ? "the answer is 4. " : "");
        for (int w = 0; w < 50 && n < 200; w++) n += snprintf(text + n, sizeof text - (size_t)n, "%d ", ids[w]);
        lf_quality q;
        int64_t dup;
        s = lf_quality_check(NULL, text, (size_t)n, 50, true, &q);
        if (s == LF_OK && q == LF_QUALITY_OK) s = lf_dedup_add(&dd, text, (size_t)n, &dup);
    }
    if (s == LF_OK && (dd.n_kept != 60 || dd.n_added != 80)) s = lf__fail(LF_ERR_ARG, "kept %lld", (long long)dd.n_kept);
    lf_dedup_deinit(&dd);
    return s;
}

static int test_synth_allocation_failures(void) { return lf_test_each_allocation_fails(synth_session, NULL); }

static const lf_test tests_synth[] = {
    {"synth/words", test_synth_words},
    {"synth/dedup_planted", test_synth_dedup_planted},
    {"synth/dedup_estimate", test_synth_estimate},
    {"synth/dedup_best_match", test_synth_dedup_best_match},
    {"synth/dedup_m61", test_synth_m61},
    {"synth/dedup_determinism", test_synth_dedup_determinism},
    {"synth/dedup_edges", test_synth_dedup_edges},
    {"synth/long_input", test_synth_long_input},
    {"synth/quality", test_synth_quality},
    {"synth/quality_errors", test_synth_quality_errors},
    {"synth/allocation_failures", test_synth_allocation_failures},
};
