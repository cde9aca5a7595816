// lf-merge — fold a LoRA adapter into its base model and write a plain HuggingFace model
// directory (PEFT's merge_and_unload: W + scale * B A in f32), or a quantized one: a base in
// LargeForge's quantized layout, or --quantize, merges in f32 and quantizes the result.
#define LARGEFORGE_IMPLEMENTATION
#include "../largeforge.h"
#include "common.h"

static const char *help =
    "usage: lf-merge lora --base DIR --adapter DIR --out DIR [--dtype auto|f32|bf16|f16] [--quantize TYPE]\n"
    "\n"
    "  lora   base + adapter (a PEFT LoRA directory: adapter_config.json, adapter_model.safetensors)\n"
    "         merged in f32, written as model.safetensors with the base's config.json, generation\n"
    "         config and tokenizer files; transformers, vLLM and llama.cpp's converter load it\n"
    "\n"
    "options:\n"
    "  --base DIR      the base model directory (required)\n"
    "  --adapter DIR   the adapter directory (required)\n"
    "  --out DIR       where the merged model goes (required; not the base's own directory)\n"
    "  --dtype T       auto (default): each tensor in the base checkpoint's dtype; or f32, bf16, f16\n"
    "  --quantize TYPE the merged projections quantized (round-to-nearest) and written in LargeForge's\n"
    "                  quantized layout: q8_0, q4_0, q4, int8, nf4. A base in that layout is quantized\n"
    "                  again in its own type by default: the merged projections only, the others\n"
    "                  keep their codes; none: written dequantized, as --dtype says\n"
    "  --group-size N  q4: the group (default: the base's, else 128)\n"
    "  --help, --version, --quiet, --verbose\n"
    "exit codes: see largeforge --help\n";

int main(int argc, char **argv) {
    lf_drv_name = "lf-merge";
    const char *mode = NULL, *base = NULL, *adapter = NULL, *out = NULL, *dtype = "auto", *quant = NULL, *v;
    long group = 0;
    for (int i = 1; i < argc; i++) {
        if (lf_drv_common_flag(argv[i], help)) continue;
        if (lf_drv_opt(argc, argv, &i, "--base", &v)) base = v;
        else if (lf_drv_opt(argc, argv, &i, "--adapter", &v)) adapter = v;
        else if (lf_drv_opt(argc, argv, &i, "--out", &v)) out = v;
        else if (lf_drv_opt(argc, argv, &i, "--dtype", &v)) dtype = v;
        else if (lf_drv_opt(argc, argv, &i, "--quantize", &v)) quant = v;
        else if (lf_drv_opt(argc, argv, &i, "--group-size", &v)) {
            if (!lf_drv_parse_int(v, -1, 1 << 20, &group) || !group) return lf_drv_usage_error("--group-size: '%s' is not -1 or a size", v);
        }
        else if (lf_drv_bad) return lf_drv_usage_error("option %s needs a value", lf_drv_bad);
        else if (!mode && argv[i][0] != '-') mode = argv[i];
        else return lf_drv_usage_error("unknown argument '%s'", argv[i]);
    }
    if (!mode || strcmp(mode, "lora") != 0) return lf_drv_usage_error("expected 'lora'%s", "");
    if (!base || !adapter || !out) return lf_drv_usage_error("--base, --adapter and --out are required%s", "");
    lf_dtype dt = LF_DTYPE_INVALID;
    if (strcmp(dtype, "f32") == 0) dt = LF_DTYPE_F32;
    else if (strcmp(dtype, "bf16") == 0) dt = LF_DTYPE_BF16;
    else if (strcmp(dtype, "f16") == 0) dt = LF_DTYPE_F16;
    else if (strcmp(dtype, "auto") != 0) return lf_drv_usage_error("--dtype: '%s' is not auto, f32, bf16 or f16", dtype);
    lf_model m;
    lf_model_desc d = {0};
    d.path = base, d.max_tokens = 1, d.max_seq_len = 1;
    lf_qtensor_desc qd = {0};
    qd.type = lf_qtype_from_name(quant);
    bool none = quant && !strcmp(quant, "none");
    if (quant && !qd.type && !none) return lf_drv_usage_error("--quantize: '%s' is not q8_0, q4_0, q4, int8, nf4 or none", quant);
    lf_status s = lf_model_open(&m, &d);
    const lf_qtensor *bq = s == LF_OK ? m.layers[0].q[0] : NULL;  // a quantized base: its type, group and zeros
    if (bq && !qd.type && !none) {
        qd.type = bq->type, qd.blocksize = bq->type == LF_QTYPE_Q4 && bq->blocksize == bq->cols ? -1 : bq->blocksize;
        for (int64_t i = 0; bq->zeros && i < bq->rows * (bq->cols / bq->blocksize); i++) qd.asym |= bq->zeros[i] != 8;
    }
    if (group) qd.blocksize = (int)group;
    if (s == LF_OK) s = lf_lora_load(&m, adapter);
    if (s == LF_OK) s = lf_lora_merge(&m);
    if (s == LF_OK && qd.type && (s = lf_model_quantize(&m, &qd)) == LF_OK) s = lf_quant_save(&m, out, LF_QLAYOUT_LARGEFORGE, NULL);
    else if (s == LF_OK) s = lf_model_save(&m, out, dt);
    if (s == LF_OK && !lf_drv_quiet) fprintf(stderr, "%s: wrote %s/model.safetensors (%s + %s)\n", lf_drv_name, out, base, adapter);
    lf_model_close(&m);
    return s == LF_OK ? 0 : lf_drv_fail(s);
}
