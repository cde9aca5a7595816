// make parity: writes build/quant-interop/{gptq,awq} (the checkpoints, in GPTQ's and AWQ's
// layouts) and {gptq,awq}-deq (the same models with the weights dequantized by LargeForge, F32)
// for tests/ref/make_quant_interop.py to compare with its own reading of the checkpoints.
#define LARGEFORGE_IMPLEMENTATION
#include "../../largeforge.h"
#include <stdio.h>
#include "quant_interop.h"

int main(void) {
    static const char *names[2] = {"gptq", "awq"};
    for (int k = 0; k < 2; k++) {
        lf_model m;
        lf_quant_desc qd;
        char dir[256], deq[256];
        snprintf(dir, sizeof dir, "build/quant-interop/%s", names[k]), snprintf(deq, sizeof deq, "%s-deq", dir);
        lf_status s = qi_quantize(&m, k ? LF_QUANT_AWQ : LF_QUANT_GPTQ, false, &qd, NULL);
        if (s == LF_OK) s = lf_quant_save(&m, dir, k ? LF_QLAYOUT_AWQ : LF_QLAYOUT_GPTQ, &qd);
        if (s == LF_OK) s = lf_model_save(&m, deq, LF_DTYPE_F32);
        if (s != LF_OK) {
            fprintf(stderr, "lf_quant_export: %s: %s\n", names[k], lf_last_error());
            return 1;
        }
        lf_model_close(&m);
        printf("wrote %s and %s\n", dir, deq);
    }
    return 0;
}
