// tests/fuzz/fuzz_safetensors.c — libFuzzer target for the safetensors header parser and the
// config.json reader (`make fuzz`). The first byte picks the parser; the rest is the input.
#define LARGEFORGE_IMPLEMENTATION
#include "../../largeforge.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    if (data[0] & 1) {
        lf_st_file f;
        if (lf_st_open_memory(&f, data + 1, size - 1, "fuzz.safetensors") == LF_OK) {
            // touch every view the parser handed out: it must lie inside the input
            volatile unsigned char sink = 0;
            for (int i = 0; i < f.n; i++)
                if (f.tensors[i].end > f.tensors[i].begin) sink ^= f.tensors[i].data[f.tensors[i].end - f.tensors[i].begin - 1];
            (void)sink;
            lf_st_close(&f);
        }
    } else {
        lf_model_config c;
        lf_model_config_parse(&c, (const char *)data + 1, size - 1, "config.json");
    }
    return 0;
}
