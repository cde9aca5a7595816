// make parity: writes build/quant-interop/<m> in GPTQ's or AWQ's layout and <m>-deq (the same
// model with the weights dequantized by LargeForge, F32) for tests/ref/make_quant_interop.py to
// compare with its own reading of the checkpoints: m = gptq and awq (real runs, qi_quantize),
// gptq-layout and awq-layout (qi_layout's round-to-nearest, whose sha256 make test checks).
#define LARGEFORGE_IMPLEMENTATION
#include "../../largeforge.h"
#include <stdio.h>
#include "quant_interop.h"

int main(void) {
    static const char *names[4] = {"gptq", "awq", "gptq-layout", "awq-layout"};
    for (int k = 0; k < 4; k++) {
        lf_model m;
        lf_quant_desc qd;
        char dir[256], deq[256];
        snprintf(dir, sizeof dir, "build/quant-interop/%s", names[k]), snprintf(deq, sizeof deq, "%s-deq", dir);
        lf_status s = k < 2 ? qi_quantize(&m, k ? LF_QUANT_AWQ : LF_QUANT_GPTQ, false, 64, &qd, NULL) : qi_layout(&m, k - 2);
        if (s == LF_OK) s = lf_quant_save(&m, dir, k % 2 ? LF_QLAYOUT_AWQ : LF_QLAYOUT_GPTQ, k < 2 ? &qd : NULL);
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
