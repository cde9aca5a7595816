/* bench/membw.c - sustained memory read bandwidth, 1 and N threads.
 *
 * Sums floats over a 1 GiB buffer (each thread owns a contiguous slice; the
 * slices are first-touched by their owners).  Inner loop: AVX-512 (or AVX2)
 * loads into 4 independent accumulators; plain C otherwise.
 * Median of R timed passes after one warm-up pass (median rather than best:
 * sustained rate, robust to one-off hiccups on a shared VM); prints one
 * JSON line per thread count:  {"name":"membw","threads":N,"gb_s":X}
 * (GB = 1e9 bytes)
 *
 * Build: cc -O3 -march=native -pthread bench/membw.c -o membw
 * Usage: membw [threads...]     (default: 1 2)
 *        env MEMBW_MIB (default 1024), MEMBW_REPS (default 10)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

typedef struct {
    const float *p;
    size_t n;
    float sum;
    pthread_barrier_t *bar;
    int reps;
    double *times; /* reps entries, written by thread 0 only */
    size_t total_bytes;
} job_t;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float sum_floats(const float *p, size_t n) {
    size_t i = 0;
#if defined(__AVX512F__)
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_add_ps(a0, _mm512_load_ps(p + i));
        a1 = _mm512_add_ps(a1, _mm512_load_ps(p + i + 16));
        a2 = _mm512_add_ps(a2, _mm512_load_ps(p + i + 32));
        a3 = _mm512_add_ps(a3, _mm512_load_ps(p + i + 48));
    }
    float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
#elif defined(__AVX2__)
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_add_ps(a0, _mm256_load_ps(p + i));
        a1 = _mm256_add_ps(a1, _mm256_load_ps(p + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_load_ps(p + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_load_ps(p + i + 24));
    }
    __m256 t = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
    float tmp[8];
    _mm256_storeu_ps(tmp, t);
    float s = tmp[0] + tmp[1] + tmp[2] + tmp[3] + tmp[4] + tmp[5] + tmp[6] + tmp[7];
#else
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += p[i]; s1 += p[i + 1]; s2 += p[i + 2]; s3 += p[i + 3];
    }
    float s = s0 + s1 + s2 + s3;
#endif
    for (; i < n; i++) s += p[i];
    return s;
}

static void *worker(void *arg) {
    job_t *j = arg;
    /* first touch: each thread faults in its own slice */
    memset((void *)j->p, 0, j->n * sizeof(float));
    for (size_t i = 0; i < j->n; i += 1024) ((float *)j->p)[i] = 1.0f;
    float acc = 0;
    for (int r = -1; r < j->reps; r++) { /* r = -1: warm-up */
        pthread_barrier_wait(j->bar);
        double t0 = now();
        acc += sum_floats(j->p, j->n);
        pthread_barrier_wait(j->bar);
        double dt = now() - t0;
        if (j->times && r >= 0) j->times[r] = dt;
    }
    j->sum = acc;
    return NULL;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double run(int nt, size_t bytes, int reps, double *checksum) {
    float *buf = aligned_alloc(4096, bytes);
    if (!buf) { perror("aligned_alloc"); exit(1); }
    size_t n = bytes / sizeof(float);
    size_t per = (n / nt) & ~(size_t)63; /* keep slices 256-byte aligned */
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, nt);
    pthread_t th[64];
    job_t jobs[64];
    double *times = calloc((size_t)reps, sizeof(double));
    if (!times) { perror("calloc"); exit(1); }
    size_t used = 0;
    for (int t = 0; t < nt; t++) {
        size_t cnt = (t == nt - 1) ? n - per * t : per;
        jobs[t] = (job_t){buf + per * t, cnt, 0, &bar, reps, t == 0 ? times : NULL, bytes};
        used += cnt;
    }
    for (int t = 1; t < nt; t++) pthread_create(&th[t], NULL, worker, &jobs[t]);
    worker(&jobs[0]);
    for (int t = 1; t < nt; t++) pthread_join(th[t], NULL);
    pthread_barrier_destroy(&bar);
    double cs = 0;
    for (int t = 0; t < nt; t++) cs += jobs[t].sum;
    *checksum = cs;
    free(buf);
    qsort(times, (size_t)reps, sizeof(double), cmp_d);
    double med = (reps & 1) ? times[reps / 2] : 0.5 * (times[reps / 2 - 1] + times[reps / 2]);
    free(times);
    return (double)used * sizeof(float) / med / 1e9;
}

int main(int argc, char **argv) {
    size_t mib = getenv("MEMBW_MIB") ? strtoull(getenv("MEMBW_MIB"), NULL, 10) : 1024;
    int reps = getenv("MEMBW_REPS") ? atoi(getenv("MEMBW_REPS")) : 10;
    if (reps < 1) reps = 1;
    int counts[16] = {1, 2}, nc = 2;
    if (argc > 1) {
        nc = 0;
        for (int i = 1; i < argc && nc < 16; i++) {
            int v = atoi(argv[i]);
            if (v >= 1 && v <= 64) counts[nc++] = v;
        }
    }
    for (int i = 0; i < nc; i++) {
        double cs;
        double gbs = run(counts[i], mib << 20, reps, &cs);
        printf("{\"name\":\"membw\",\"threads\":%d,\"gb_s\":%.2f}\n", counts[i], gbs);
        fflush(stdout);
        if (cs < 0) fprintf(stderr, "checksum %g\n", cs); /* keep sums live */
    }
    return 0;
}
