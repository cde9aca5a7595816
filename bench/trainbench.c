// bench/trainbench — training speed, the LargeForge side of make bench's comparison with
// bench/train_torch.py: the same model dir, batch, sequence length, threads, AdamW (lr 2e-5,
// weight decay 0.01) and clipping at 1.0; full fine-tuning, LoRA (r=16, alpha 32, dropout 0, all
// seven projections, as train_torch.py's) or QLoRA (the same adapters on an NF4 base,
// double-quantized, as bitsandbytes' QLoRA recipe).
//   trainbench MODEL_DIR [batch 4] [seq 256] [threads 2] [steps 5] [warmup 1] [full|lora|qlora]
// Prints one JSON line: median tokens/s over the timed steps, each step's seconds, peak RSS,
// FLOPs per token and the fraction of the measured f32 matmul peak reached.
#define LARGEFORGE_IMPLEMENTATION
#include "../largeforge.h"

#include <sys/resource.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: trainbench MODEL_DIR [batch] [seq] [threads] [steps] [warmup] [full|lora|qlora]\n");
        return 64;
    }
    int B = argc > 2 ? atoi(argv[2]) : 4, T = argc > 3 ? atoi(argv[3]) : 256, threads = argc > 4 ? atoi(argv[4]) : 2;
    int steps = argc > 5 ? atoi(argv[5]) : 5, warmup = argc > 6 ? atoi(argv[6]) : 1;
    const char *mode = argc > 7 ? argv[7] : "full";
    bool lora = strcmp(mode, "lora") == 0 || strcmp(mode, "qlora") == 0;
    if (!lora && strcmp(mode, "full") != 0) return fprintf(stderr, "trainbench: mode must be full, lora or qlora\n"), 64;
    if (B < 1 || T < 2 || steps < 1 || steps > 64 || warmup < 0) return fprintf(stderr, "trainbench: bad arguments\n"), 64;
    lf_model m;
    lf_model_desc d = {.path = argv[1], .n_threads = threads, .max_seq_len = T};
    lf_optim o;
    lf_optim_desc od = lf_optim_desc_default();
    od.learning_rate = 2e-5f, od.weight_decay = 0.01f, od.max_grad_norm = 1.0f, od.schedule = LF_SCHED_CONSTANT;
    lf_status s = lf_model_open(&m, &d);
    lf_lora_desc ld = lf_lora_desc_default();
    ld.r = 16, ld.alpha = 32, ld.dropout = 0, ld.target_modules = "all-linear";
    if (s == LF_OK && strcmp(mode, "qlora") == 0) s = lf_model_quantize(&m, &(lf_qtensor_desc){.type = LF_QTYPE_NF4, .double_quant = true});
    if (s == LF_OK && lora) s = lf_lora_attach(&m, &ld);
    if (s == LF_OK) s = lf_model_train_begin(&m, B, T, 0);
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
        lf_train_batch tb = {.tokens = tok, .labels = tok, .pos = NULL, .n_scored = 0};
        s = lf_model_train_grads(&m, &tb, &loss);  // labels = inputs, as the torch side does
        if (s == LF_OK) s = lf_optim_step(&o, &m, &norm);
        if (i >= warmup) sec[i - warmup] = (double)(lf_time_ns() - t0) * 1e-9;
    }
    if (s != LF_OK) return fprintf(stderr, "trainbench: %s\n", lf_last_error()), 1;
    // FLOPs per token: 3 x the forward's (backward = 2 x forward): 2 per weight of every matmul
    // (lm_head included, the embedding lookup not), plus causal attention's QK^T and PV over
    // T/2 keys on average.
    const lf_model_config *c = &m.cfg;
    double mm_params = (double)c->L * ((double)c->C * (2.0 * c->NH * c->HS + 2.0 * c->NKV * c->HS) + 3.0 * c->C * c->FF) +
                       (double)c->V * c->C;
    // (adapters: the frozen weights get no gradient, so 2 x forward for them; the adapters' own
    // products are left out)
    double flops_per_token = (lora ? 2.0 : 3.0) * 2.0 * mm_params + 3.0 * 2.0 * c->L * (double)T * c->NH * c->HS;
    // the machine's matmul peak as this library reaches it: an f32 GEMM of a training shape
    double peak = 0;
    {
        int64_t N = 1024, M = c->FF, K = c->C;
        float *x = (float *)calloc((size_t)(N * K), 4), *w = (float *)calloc((size_t)(M * K), 4), *out = (float *)malloc((size_t)(N * M) * 4);
        lf_tensor wt = {LF_DTYPE_F32, 2, {M, K}, w, "w"};
        for (int r = 0; r < 3; r++) {
            uint64_t t0 = lf_time_ns();
            lf_matmul(m.pool, out, x, &wt, NULL, N);
            double gf = 2.0 * (double)N * M * K / ((double)(lf_time_ns() - t0) * 1e-9) / 1e9;
            peak = gf > peak ? gf : peak;
        }
        free(x), free(w), free(out);
    }
    memcpy(sorted, sec, sizeof(double) * (size_t)steps);
    qsort(sorted, (size_t)steps, sizeof *sorted, cmp_double);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const char *name = strrchr(argv[1], '/') ? strrchr(argv[1], '/') + 1 : argv[1];
    printf("{\"tool\":\"largeforge\",\"version\":\"%s\",\"mode\":\"%s\",\"model\":\"%s\",\"batch\":%d,\"seq\":%d,"
           "\"threads\":%d,\"trainable\":%lld,\"tokens_per_s\":%.2f,\"step_s\":[",
           LF_VERSION_STRING, mode, name, B, T, lf_pool_size(m.pool), (long long)lf_model_n_trainable(&m), (double)B * T / sorted[steps / 2]);
    for (int i = 0; i < steps; i++) printf(i ? ",%.3f" : "%.3f", sec[i]);
    double tps = (double)B * T / sorted[steps / 2];
    printf("],\"last_loss\":%.4f,\"peak_rss_mb\":%.0f,\"gflop_per_token\":%.3f,\"achieved_gflops\":%.1f,"
           "\"matmul_peak_gflops\":%.1f,\"fraction_of_matmul_peak\":%.2f}\n",
           loss, (double)ru.ru_maxrss / 1024.0, flops_per_token / 1e9, tps * flops_per_token / 1e9, peak,
           tps * flops_per_token / 1e9 / peak);
    lf_optim_deinit(&o);
    lf_model_close(&m);
    free(tok);
    return 0;
}
