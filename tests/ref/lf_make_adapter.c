// tests/ref/lf_make_adapter.c — writes the LoRA adapter that LargeForge saves for the PEFT
// interop check: llama_f32 with r=4 adapters on all seven projections (seed 11, dropout 0.1),
// trained 3 AdamW steps on the parity batch (tests/fixtures/models/llama_f32/grads.safetensors),
// saved with lf_lora_save to tests/fixtures/models/llama_f32/lora_lf. `make parity` builds and
// runs it, then tests/ref/check_peft_loads.py loads the result with PEFT and records its logits.
#define LARGEFORGE_IMPLEMENTATION
#include "../../largeforge.h"
#include <stdio.h>

int main(void) {
    const char *dir = "tests/fixtures/models/llama_f32";
    lf_model m;
    lf_model_desc d = {.path = dir, .n_threads = 1, .max_tokens = 64, .max_seq_len = 64};
    lf_st_file f;
    lf_status s = lf_model_open(&m, &d);
    if (s == LF_OK) s = lf_st_open(&f, "tests/fixtures/models/llama_f32/grads.safetensors");
    lf_lora_desc ld = lf_lora_desc_default();
    ld.r = 4, ld.alpha = 8, ld.dropout = 0.1f, ld.target_modules = "all-linear", ld.seed = 11;
    if (s == LF_OK) s = lf_lora_attach(&m, &ld);
    const lf_st_tensor *ids = s == LF_OK ? lf_st_find(&f, "input_ids") : NULL, *labels = s == LF_OK ? lf_st_find(&f, "labels") : NULL;
    if (s == LF_OK && (!ids || !labels)) s = LF_ERR_FORMAT;
    if (s == LF_OK) s = lf_model_train_begin(&m, (int)ids->shape[0], (int)ids->shape[1], 0);
    lf_optim o;
    lf_optim_desc od = lf_optim_desc_default();
    od.learning_rate = 1e-2f, od.schedule = LF_SCHED_CONSTANT;
    if (s == LF_OK) s = lf_optim_init(&o, &m, &od);
    lf_train_batch b = {.tokens = ids ? (const int32_t *)ids->data : NULL, .labels = labels ? (const int32_t *)labels->data : NULL, .pos = NULL, .n_scored = 0};
    for (int i = 0; i < 3 && s == LF_OK; i++) {
        float loss, norm;
        lf_model_train_zero_grads(&m);
        if ((s = lf_model_train_grads(&m, &b, &loss)) == LF_OK) s = lf_optim_step(&o, &m, &norm);
        if (s == LF_OK) printf("step %d loss %.6f\n", i + 1, (double)loss);
    }
    if (s == LF_OK) s = lf_lora_save(&m, "tests/fixtures/models/llama_f32/lora_lf");
    if (s != LF_OK) fprintf(stderr, "lf_make_adapter: %s\n", lf_last_error());
    return s == LF_OK ? 0 : 1;
}
