// lf-merge — fold a LoRA adapter into its base model and write a plain HuggingFace model
// directory (PEFT's merge_and_unload: W + scale * B A in f32).
#define LARGEFORGE_IMPLEMENTATION
#include "../largeforge.h"
#include "common.h"

static const char *help =
    "usage: lf-merge lora --base DIR --adapter DIR --out DIR [--dtype auto|f32|bf16|f16]\n"
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
    "  --help, --version, --quiet, --verbose\n"
    "exit codes: see largeforge --help\n";

int main(int argc, char **argv) {
    lf_drv_name = "lf-merge";
    const char *mode = NULL, *base = NULL, *adapter = NULL, *out = NULL, *dtype = "auto", *v;
    for (int i = 1; i < argc; i++) {
        if (lf_drv_common_flag(argv[i], help)) continue;
        if (lf_drv_opt(argc, argv, &i, "--base", &v)) base = v;
        else if (lf_drv_opt(argc, argv, &i, "--adapter", &v)) adapter = v;
        else if (lf_drv_opt(argc, argv, &i, "--out", &v)) out = v;
        else if (lf_drv_opt(argc, argv, &i, "--dtype", &v)) dtype = v;
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
    lf_status s = lf_model_open(&m, &d);
    if (s == LF_OK) s = lf_lora_load(&m, adapter);
    if (s == LF_OK) s = lf_lora_merge(&m);
    if (s == LF_OK) s = lf_model_save(&m, out, dt);
    if (s == LF_OK && !lf_drv_quiet) fprintf(stderr, "%s: wrote %s/model.safetensors (%s + %s)\n", lf_drv_name, out, base, adapter);
    lf_model_close(&m);
    return s == LF_OK ? 0 : lf_drv_fail(s);
}
