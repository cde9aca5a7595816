// bench/trainbench — training speed of full fine-tuning, the LargeForge side of make bench's
// comparison with bench/train_torch.py: the same model dir, batch, sequence length, threads,
// AdamW (lr 2e-5, weight decay 0.01) and clipping at 1.0.
//   trainbench MODEL_DIR [batch 4] [seq 256] [threads 2] [steps 5] [warmup 1]
// Prints one JSON line: median tokens/s over the timed steps, each step's seconds, peak RSS.
#define LARGEFORGE_IMPLEMENTATION
#include "../largeforge.h"

#include <sys/resource.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: trainbench MODEL_DIR [batch] [seq] [threads] [steps] [warmup]\n");
        return 64;
    }
    int B = argc > 2 ? atoi(argv[2]) : 4, T = argc > 3 ? atoi(argv[3]) : 256, threads = argc > 4 ? atoi(argv[4]) : 2;
    int steps = argc > 5 ? atoi(argv[5]) : 5, warmup = argc > 6 ? atoi(argv[6]) : 1;
    if (B < 1 || T < 2 || steps < 1 || steps > 64 || warmup < 0) return fprintf(stderr, "trainbench: bad arguments\n"), 64;
    lf_model m;
    lf_model_desc d = {.path = argv[1], .n_threads = threads, .max_seq_len = T};
    lf_optim o;
    lf_optim_desc od = lf_optim_desc_default();
    od.learning_rate = 2e-5f, od.weight_decay = 0.01f, od.max_grad_norm = 1.0f, od.schedule = LF_SCHED_CONSTANT;
    lf_status s = lf_model_open(&m, &d);
    if (s == LF_OK) s = lf_model_train_begin(&m, B, T);
    if (s == LF_OK) s = lf_optim_init(&o, &m, &od);
    if (s != LF_OK) return fprintf(stderr, "trainbench: %s\n", lf_last_error()), 1;
    int32_t *tok = (int32_t *)malloc((size_t)B * (size_t)T * sizeof *tok);
    lf_rng rng;
    lf_rng_seed(&rng, 7);
    for (int i = 0; i < B * T; i++) tok[i] = (int32_t)(lf_rng_u64(&rng) % (uint64_t)m.cfg.V);
    double sec[64], sorted[64];
    float loss = 0, norm = 0;
    for (int i = 0; i < warmup + steps && s == LF_OK; i++) {
        uint64_t t0 = lf_time_ns();
        lf_model_train_zero_grads(&m);
        s = lf_model_train_grads(&m, tok, tok, &loss);  // labels = inputs, as the torch side does
        if (s == LF_OK) s = lf_optim_step(&o, &m, &norm);
        if (i >= warmup) sec[i - warmup] = (double)(lf_time_ns() - t0) * 1e-9;
    }
    if (s != LF_OK) return fprintf(stderr, "trainbench: %s\n", lf_last_error()), 1;
    memcpy(sorted, sec, sizeof(double) * (size_t)steps);
    qsort(sorted, (size_t)steps, sizeof *sorted, cmp_double);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const char *name = strrchr(argv[1], '/') ? strrchr(argv[1], '/') + 1 : argv[1];
    printf("{\"tool\":\"largeforge\",\"version\":\"%s\",\"mode\":\"full\",\"model\":\"%s\",\"batch\":%d,\"seq\":%d,"
           "\"threads\":%d,\"tokens_per_s\":%.2f,\"step_s\":[",
           LF_VERSION_STRING, name, B, T, lf_pool_size(m.pool), (double)B * T / sorted[steps / 2]);
    for (int i = 0; i < steps; i++) printf(i ? ",%.3f" : "%.3f", sec[i]);
    printf("],\"last_loss\":%.4f,\"peak_rss_mb\":%.0f}\n", loss, (double)ru.ru_maxrss / 1024.0);
    lf_optim_deinit(&o);
    lf_model_close(&m);
    free(tok);
    return 0;
}
