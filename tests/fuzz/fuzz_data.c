// tests/fuzz/fuzz_data.c — libFuzzer target for section 10's dataset reader, the SFT and
// preference-pair encoders, and section 12's prompts loader (`make fuzz`). The first byte picks
// the file kind (.jsonl/.json or .txt), the record limit and the format; the rest is the file.
// Every record read is encoded with tiny_chat's tokenizer (opened once; run from the repo root);
// with bit 0x40 the file also goes through lf_synth_load (written to a temporary file).
#define LARGEFORGE_IMPLEMENTATION
#include "../../largeforge.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static lf_tokenizer tok;
    static int opened;
    if (!opened) opened = lf_tok_open(&tok, "tests/fixtures/models/tiny_chat") == LF_OK ? 1 : -1;
    if (size < 1) return 0;
    lf_data_reader r;
    const lf_data_record *rec;
    const char *name = data[0] & 1 ? "fuzz.txt" : "fuzz.jsonl";
    size_t max_bytes = data[0] & 2 ? 64 : 0;
    lf_data_format fmt = (lf_data_format)((data[0] >> 2) % 7);
    if (lf_data_open_memory(&r, data + 1, size - 1, name, fmt, max_bytes) != LF_OK) return 0;
    lf_sft_desc d;
    memset(&d, 0, sizeof d);
    d.tok = opened > 0 ? &tok : NULL, d.max_length = data[0] & 0x80 ? 16 : 0, d.max_prompt_length = data[0] & 0x80 ? 6 : 0;
    for (int i = 0; i < 10000; i++) {  // bad records are skipped, so go on until the end or a break
        lf_status s = lf_data_next(&r, &rec);
        if (s == LF_OK && !rec) break;
        if (s == LF_ERR_FORMAT && !strstr(lf_last_error(), "stopped")) continue;
        if (s != LF_OK) break;
        volatile size_t sink = 0;
        for (int m = 0; m < rec->n_msgs; m++) sink += strlen(rec->msgs[m].role) + strlen(rec->msgs[m].content);
        if (rec->text) sink += strlen(rec->text);
        (void)sink;
        lf_sft_sample smp, rej;
        if (d.tok && rec->format == LF_DATA_DPO && lf_data_encode_pair(&d, rec, &smp, &rej) == LF_OK)
            lf_sft_sample_deinit(&smp), lf_sft_sample_deinit(&rej);
        else if (d.tok && rec->format != LF_DATA_DPO && lf_data_encode(&d, rec, &smp) == LF_OK) lf_sft_sample_deinit(&smp);
    }
    lf_data_close(&r);
    if (data[0] & 0x40) {
        char path[64];
        snprintf(path, sizeof path, "/tmp/lf-fuzz-prompts-%d.%s", (int)getpid(), data[0] & 1 ? "txt" : "jsonl");
        FILE *f = fopen(path, "wb");
        if (f && fwrite(data + 1, 1, size - 1, f) == size - 1 && fclose(f) == 0) {
            lf_synth_prompts p;
            if (lf_synth_load(&p, path) == LF_OK) lf_synth_prompts_deinit(&p);
        } else if (f) fclose(f);
        remove(path);
    }
    return 0;
}
