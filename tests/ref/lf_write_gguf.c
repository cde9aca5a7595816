// tests/ref/lf_write_gguf.c — the LargeForge side of the GGUF parity check (make_gguf_ref.py).
//
//   lf_write_gguf MODEL_DIR OUT_DIR TEXT ID...
//
// writes into OUT_DIR, from the f32 model in MODEL_DIR:
//   model-{f32,f16,bf16,q8_0,q4_0}.gguf   lf_gguf_write of the model as loaded
//   model-q8_0-from-q.gguf, model-q4_0-from-q.gguf
//                                         the same after lf_model_quantize (blocks copied: the
//                                         files must be identical to the two above)
//   lora.gguf, lora-rs.gguf               lf_gguf_write_lora of a random r=8 adapter on all seven
//                                         projections (alpha 16; the second one rsLoRA)
//   lora-peft/, lora-rs-peft/             the same adapters as PEFT directories (lf_lora_save)
//   lf.safetensors                        LargeForge's logits [T, V] on the prompt ID...:
//       logits_f32        the model as it is
//       logits_f16w, logits_bf16w
//                         the model saved in F16 / BF16 (lf_model_save) and reopened: the weights
//                         the F16 / BF16 files hold
//       logits_q8_0, logits_q4_0
//                         after lf_model_quantize(Q8_0 / Q4_0) (embeddings stay f32)
//       logits_q8_0e, logits_q4_0e
//                         the same with the embedding (= tied head) rounded through Q8_0, as
//                         the files hold it
//       logits_lora, logits_lora_rs
//                         the f32 model with the adapter
//       text_ids          lf_tok_encode(TEXT), no special tokens
#define LARGEFORGE_IMPLEMENTATION
#include "../../largeforge.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OUT 16
static lf_st_entry outs[MAX_OUT];
static char out_names[MAX_OUT][32];
static int n_outs;

static int fail(const char *what) {
    fprintf(stderr, "lf_write_gguf: %s: %s\n", what, lf_last_error());
    return 1;
}

static void keep(const char *name, lf_dtype dt, int ndim, int64_t d0, int64_t d1, const void *data) {
    snprintf(out_names[n_outs], sizeof out_names[n_outs], "%s", name);
    lf_st_entry *e = &outs[n_outs++];
    e->name = out_names[n_outs - 1], e->dtype = dt, e->ndim = ndim, e->shape[0] = d0, e->shape[1] = d1, e->data = data;
}

static lf_status open_model(lf_model *m, const char *dir) {
    lf_model_desc d = {0};
    d.path = dir, d.n_threads = 2, d.max_tokens = 256;
    return lf_model_open(m, &d);
}

// All T positions' logits of ids into a new [T, V] buffer.
static lf_status run(lf_model *m, const int32_t *ids, int T, const char *name) {
    lf_kv kv;
    float *logits = malloc((size_t)T * (size_t)m->cfg.V * sizeof(float));
    int8_t *want = malloc((size_t)T);
    memset(want, 1, (size_t)T);
    lf_status s = lf_kv_init(&kv, m, 1, 0);
    lf_batch b = {0};
    b.n = T, b.tokens = ids, b.logits = want;
    if (s == LF_OK) s = lf_model_forward(m, &kv, &b, logits);
    lf_kv_deinit(&kv);
    free(want);
    if (s == LF_OK) keep(name, LF_DTYPE_F32, 2, T, m->cfg.V, logits);
    return s;
}

static lf_status write_gguf(const lf_model *m, const char *out_dir, const char *file, lf_gguf_type type, const char *tok_dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", out_dir, file);
    lf_gguf_desc d = {0};
    d.type = type, d.tokenizer_dir = tok_dir, d.name = "kjv-llama-4m";
    return lf_gguf_write(m, path, &d);
}

// A random adapter on all seven projections: PEFT's A, and B ~ N(0, 0.05^2) so that it matters.
static lf_status add_adapter(lf_model *m, bool rslora) {
    lf_lora_desc ld = lf_lora_desc_default();
    ld.r = 8, ld.alpha = 16, ld.dropout = 0, ld.target_modules = "all-linear", ld.seed = 5, ld.use_rslora = rslora;
    lf_status s = lf_lora_attach(m, &ld);
    lf_rng rng;
    lf_rng_seed(&rng, 6);
    for (int l = 0; s == LF_OK && l < m->cfg.L; l++)
        for (int p = 0; p < LF_PROJ_COUNT; p++) {
            lf_lowrank *k = m->layers[l].lora[p];
            for (int64_t i = 0; i < m->layers[l].w[p].shape[0] * k->r; i++) k->B[i] = 0.05f * lf_rng_normal(&rng);
        }
    return s;
}

// The embedding (and the tied head) rounded through Q8_0, as the Q8_0 and Q4_0 files hold it.
static float *round_embedding(lf_model *m) {
    int64_t n = (int64_t)m->cfg.V * m->cfg.C;
    float *f = malloc((size_t)n * sizeof(float));
    unsigned char *q = malloc((size_t)(n / 32 * LF_Q8_0_BYTES));
    lf_convert_to_f32(f, m->embed.data, m->embed.dtype, n);
    if (lf_ggml_quantize(LF_QTYPE_Q8_0, q, f, n) != LF_OK || lf_ggml_dequantize(LF_QTYPE_Q8_0, f, q, n) != LF_OK) exit(fail("embedding"));
    free(q);
    m->embed.data = f, m->embed.dtype = LF_DTYPE_F32;
    if (m->cfg.tied) m->lm_head = m->embed;
    return f;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: lf_write_gguf MODEL_DIR OUT_DIR TEXT ID...\n");
        return 2;
    }
    const char *dir = argv[1], *out = argv[2], *text = argv[3];
    int T = argc - 4;
    int32_t *ids = malloc((size_t)T * sizeof(int32_t));
    for (int i = 0; i < T; i++) ids[i] = (int32_t)atoi(argv[4 + i]);
    lf_model m;
    lf_tokenizer tok;
    int32_t *text_ids = NULL;
    size_t n_text = 0;
    char sub[4096];
    if (lf_dir_make(out) != LF_OK) return fail(out);
    if (lf_tok_open(&tok, dir) != LF_OK || lf_tok_encode(&tok, text, strlen(text), false, &text_ids, &n_text) != LF_OK) return fail("tokenizer");
    keep("text_ids", LF_DTYPE_I32, 1, (int64_t)n_text, 0, text_ids);
    lf_tok_close(&tok);

    if (open_model(&m, dir) != LF_OK || run(&m, ids, T, "logits_f32") != LF_OK) return fail("f32 forward");
    static const char *const files[] = {"model-f32.gguf", "model-f16.gguf", "model-bf16.gguf", "model-q8_0.gguf", "model-q4_0.gguf"};
    static const lf_gguf_type types[] = {LF_GGUF_F32, LF_GGUF_F16, LF_GGUF_BF16, LF_GGUF_Q8_0, LF_GGUF_Q4_0};
    for (int i = 0; i < 5; i++)
        if (write_gguf(&m, out, files[i], types[i], NULL) != LF_OK) return fail(files[i]);
    static const lf_dtype dts[] = {LF_DTYPE_F16, LF_DTYPE_BF16};
    static const char *const saved[] = {"saved-f16", "saved-bf16"}, *const wnames[] = {"logits_f16w", "logits_bf16w"};
    for (int i = 0; i < 2; i++) {  // the weights exactly as the F16 / BF16 files hold them
        lf_model r;
        snprintf(sub, sizeof sub, "%s/%s", out, saved[i]);
        if (lf_model_save(&m, sub, dts[i]) != LF_OK || open_model(&r, sub) != LF_OK || run(&r, ids, T, wnames[i]) != LF_OK) return fail(saved[i]);
        lf_model_close(&r);
    }
    static const char *const loras[] = {"lora.gguf", "lora-rs.gguf"}, *const lnames[] = {"logits_lora", "logits_lora_rs"},
                             *const peft[] = {"lora-peft", "lora-rs-peft"};
    for (int i = 0; i < 2; i++) {
        lf_model r;
        lf_gguf_desc d = {0};
        d.name = "kjv-llama-4m-lora";
        snprintf(sub, sizeof sub, "%s/%s", out, loras[i]);
        if (open_model(&r, dir) != LF_OK || add_adapter(&r, i == 1) != LF_OK || run(&r, ids, T, lnames[i]) != LF_OK ||
            lf_gguf_write_lora(&r, sub, &d) != LF_OK)
            return fail(loras[i]);
        snprintf(sub, sizeof sub, "%s/%s", out, peft[i]);  // the same adapter for convert_lora_to_gguf.py
        if (lf_lora_save(&r, sub) != LF_OK) return fail(peft[i]);
        lf_model_close(&r);
    }
    static const lf_qtype qts[] = {LF_QTYPE_Q8_0, LF_QTYPE_Q4_0};
    static const char *const qnames[] = {"logits_q8_0", "logits_q4_0"}, *const qenames[] = {"logits_q8_0e", "logits_q4_0e"},
                             *const qfiles[] = {"model-q8_0-from-q.gguf", "model-q4_0-from-q.gguf"};
    for (int i = 0; i < 2; i++) {
        lf_model r;
        lf_qtensor_desc qd = {0};
        qd.type = qts[i];
        if (open_model(&r, dir) != LF_OK || lf_model_quantize(&r, &qd) != LF_OK || run(&r, ids, T, qnames[i]) != LF_OK ||
            write_gguf(&r, out, qfiles[i], types[3 + i], dir) != LF_OK)
            return fail(qnames[i]);
        float *e = round_embedding(&r);
        if (run(&r, ids, T, qenames[i]) != LF_OK) return fail(qenames[i]);
        lf_model_close(&r);
        free(e);
    }
    snprintf(sub, sizeof sub, "%s/lf.safetensors", out);
    const char *meta[2] = {"text", text};
    if (lf_st_write(sub, outs, n_outs, meta, 1) != LF_OK) return fail(sub);
    lf_model_close(&m);
    printf("lf_write_gguf: wrote %s (%d prompt tokens, %zu text ids)\n", out, T, n_text);
    return 0;
}
