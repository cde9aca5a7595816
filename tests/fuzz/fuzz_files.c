// tests/fuzz/fuzz_files.c — libFuzzer target for the file parsers of sections 2, 4, 6-10 and 12
// (`make fuzz`): the safetensors header, config.json, adapter_config.json, YAML configs read by
// every section reader (training, LoRA, quantization, data, DPO, generation), and a checkpoint in
// LargeForge's quantized layout (section 11.3) loaded as the weights of a fixed small model. The
// first byte picks the parser (0xF0 and up: the quantized checkpoint; else its value mod 4); the
// rest is the input.
#define LARGEFORGE_IMPLEMENTATION
#include "../../largeforge.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    if (data[0] >= 0xF0) {  // the model of tests/fixtures/models/llama_f32 (2 layers, width 64, vocab 320)
        static const char cfg[] = "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": 64, "
                                  "\"intermediate_size\": 160, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, "
                                  "\"num_key_value_heads\": 2, \"head_dim\": 16, \"vocab_size\": 320, \"max_position_embeddings\": 128, "
                                  "\"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0, \"tie_word_embeddings\": false}";
        lf_model m;
        memset(&m, 0, sizeof m);
        m.st.files = (lf_st_file *)LF_MALLOC(sizeof(lf_st_file));
        if (m.st.files && lf_model_config_parse(&m.cfg, cfg, sizeof cfg - 1, "config.json") == LF_OK &&
            lf_st_open_memory(&m.st.files[0], data + 1, size - 1, "fuzz.safetensors") == LF_OK) {
            m.st.n = 1, m.max_seq_len = 8;
            if (lf__model_weights(&m) == LF_OK)  // every view it accepted lies inside the input: read them all
                for (int l = 0; l < m.cfg.L; l++)
                    for (int p = 0; p < LF_PROJ_COUNT; p++)
                        if (m.layers[l].q[p]) {
                            float *w = (float *)LF_MALLOC((size_t)lf_tensor_numel(&m.layers[l].w[p]) * sizeof(float));
                            if (w) lf_qtensor_dequantize(m.layers[l].q[p], w);
                            LF_FREE(w);
                        }
        }
        lf_model_close(&m);
    } else if (data[0] % 4 == 3) {
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
