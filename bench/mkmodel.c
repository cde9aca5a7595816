// bench/mkmodel — writes a random-weight HuggingFace model directory of a given shape, so
// `make bench` can measure real model shapes without downloading weights.
//   mkmodel OUT_DIR ARCH HIDDEN LAYERS HEADS KV_HEADS FF VOCAB TIED F32|BF16
#define LARGEFORGE_IMPLEMENTATION
#include "../largeforge.h"

#include <sys/stat.h>

int main(int argc, char **argv) {
    if (argc != 11) {
        fprintf(stderr, "usage: mkmodel OUT_DIR llama|qwen2 HIDDEN LAYERS HEADS KV_HEADS FF VOCAB TIED(0|1) F32|BF16\n");
        return 64;
    }
    const char *dir = argv[1], *arch = argv[2];
    int C = atoi(argv[3]), L = atoi(argv[4]), NH = atoi(argv[5]), NKV = atoi(argv[6]), FF = atoi(argv[7]);
    int V = atoi(argv[8]), tied = atoi(argv[9]), bf16 = strcmp(argv[10], "BF16") == 0, HS = C / NH;
    bool bias = strcmp(arch, "qwen2") == 0;
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    if (system(cmd) != 0) return 1;
    lf_dtype dt = bf16 ? LF_DTYPE_BF16 : LF_DTYPE_F32;
    // one buffer of random values, as large as the largest tensor, shared by every tensor
    size_t big = (size_t)V * (size_t)C;
    if ((size_t)FF * (size_t)C > big) big = (size_t)FF * (size_t)C;
    void *rnd = malloc(big * 4);
    lf_rng r;
    lf_rng_seed(&r, 1);
    float scale = 1.0f / sqrtf((float)C);
    for (size_t i = 0; i < big; i++) {
        float x = lf_rng_normal(&r) * scale;
        if (bf16) ((uint16_t *)rnd)[i] = lf_f32_to_bf16(x);
        else ((float *)rnd)[i] = x;
    }
    float *ones = (float *)malloc((size_t)(FF > C ? FF : C) * 4);
    uint16_t *ones16 = (uint16_t *)malloc((size_t)(FF > C ? FF : C) * 2);
    for (int i = 0; i < (FF > C ? FF : C); i++) ones[i] = 1.0f, ones16[i] = 0x3f80;
    const void *one = bf16 ? (const void *)ones16 : (const void *)ones;
    int cap = 4 + L * 12, n = 0;
    lf_st_entry *e = (lf_st_entry *)calloc((size_t)cap, sizeof *e);
    char (*names)[96] = (char (*)[96])calloc((size_t)cap, 96);
#define ADD(nm, d0, d1, data)                                                              \
    do {                                                                                   \
        snprintf(names[n], 96, "%s", nm);                                                  \
        e[n] = (lf_st_entry){names[n], dt, (d1) ? 2 : 1, {(d0), (d1)}, (data)};             \
        n++;                                                                               \
    } while (0)
    char nm[96];
    ADD("model.embed_tokens.weight", V, C, rnd);
    ADD("model.norm.weight", C, 0, one);
    if (!tied) ADD("lm_head.weight", V, C, rnd);
    for (int l = 0; l < L; l++) {
        const char *w[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                            "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
        int64_t shp[7][2] = {{NH * HS, C}, {NKV * HS, C}, {NKV * HS, C}, {C, NH * HS}, {FF, C}, {FF, C}, {C, FF}};
        for (int k = 0; k < 7; k++) {
            snprintf(nm, sizeof nm, "model.layers.%d.%s.weight", l, w[k]);
            ADD(nm, shp[k][0], shp[k][1], rnd);
            if (bias && k < 3) {
                snprintf(nm, sizeof nm, "model.layers.%d.%s.bias", l, w[k]);
                ADD(nm, shp[k][0], 0, rnd);
            }
        }
        snprintf(nm, sizeof nm, "model.layers.%d.input_layernorm.weight", l);
        ADD(nm, C, 0, one);
        snprintf(nm, sizeof nm, "model.layers.%d.post_attention_layernorm.weight", l);
        ADD(nm, C, 0, one);
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    lf_status s = lf_st_write(path, e, n, NULL, 0);
    if (s != LF_OK) {
        fprintf(stderr, "mkmodel: %s\n", lf_last_error());
        return 1;
    }
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    fprintf(f,
            "{\"model_type\":\"%s\",\"hidden_size\":%d,\"intermediate_size\":%d,\"num_hidden_layers\":%d,"
            "\"num_attention_heads\":%d,\"num_key_value_heads\":%d,\"vocab_size\":%d,\"tie_word_embeddings\":%s,"
            "\"rms_norm_eps\":1e-05,\"rope_theta\":%s,\"max_position_embeddings\":8192,\"bos_token_id\":1,"
            "\"eos_token_id\":2,\"torch_dtype\":\"%s\"}\n",
            arch, C, FF, L, NH, NKV, V, tied ? "true" : "false", bias ? "1000000.0" : "100000.0",
            bf16 ? "bfloat16" : "float32");
    fclose(f);
    free(rnd), free(ones), free(ones16), free(e), free(names);
    return 0;
}
