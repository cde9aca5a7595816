// tests/fuzz/fuzz_files.c — libFuzzer target for the file parsers of sections 2, 4, 6-10 and 12
// (`make fuzz`): the safetensors header, config.json, adapter_config.json, and YAML configs
// read by every section reader (training, LoRA, quantization, data, DPO, generation). The first
// byte picks the parser; the rest is the input.
#define LARGEFORGE_IMPLEMENTATION
#include "../../largeforge.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    if (data[0] % 4 == 3) {
        lf_doc d;
        lf_lora_desc ld;
        if (lf_json_parse(&d, (const char *)data + 1, size - 1, "adapter_config.json") == LF_OK) {
            lf__lora_config(&d, &ld);
            lf_doc_deinit(&d);
        }
    } else if (data[0] % 4 == 2) {
        lf_doc d;
        if (lf_yaml_parse(&d, (const char *)data + 1, size - 1, "fuzz.yaml") == LF_OK) {
            lf_train_config tc;
            lf_data_config dc;
            lf_dpo_config pc;
            lf_kd_config kc;
            lf_synth_config sc;
            lf_gen_desc g = lf_gen_desc_default();
            lf_train_config_read(&tc, &d), lf_data_config_read(&dc, &d), lf_dpo_config_read(&pc, &d), lf_orpo_config_read(&pc, &d), lf_kd_config_read(&kc, &d);
            lf_synth_config_read(&sc, &d);
            lf_gen_desc_from_config(&g, &d);
            lf_doc_deinit(&d);
        }
    } else if (data[0] % 4 == 1) {
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
