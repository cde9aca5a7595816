// tests/ref/quant_interop.h — the checkpoints in GPTQ's and AWQ's layouts that
// tests/ref/read_quant.py (an independent reader) reads at make parity, shared by
// tests/ref/lf_quant_export.c and tests/test_quant.c:
//  - qi_quantize: the shipped model quantized by GPTQ (symmetric, act order) or AWQ on 16
//    calibration windows of 128 tokens from the start of data/kjv/train.txt, in groups of
//    group (64 for the fixtures; -1 one per row).
//    Their float work (Hessians, searches) may round differently under other compiler flags,
//    so only make parity reads these;
//  - qi_layout: round-to-nearest Q4 (symmetric for GPTQ's layout, with a scattered act-order
//    g_idx; asymmetric for AWQ's), which every build makes bit for bit the same: their
//    checkpoints' and weights' sha256 are in tests/fixtures/quant/interop.json for make test.
#define QI_MODEL "models/kjv-llama-4m"
#define QI_TEXT "data/kjv/train.txt"
enum { QI_SAMPLES = 16, QI_LEN = 128 };

// Opens the model and quantizes it by method (RTN too: the samples then only give err, [L, 7]
// or NULL, the projections' relative output errors).
static lf_status qi_quantize(lf_model *m, lf_quant_method method, bool asym, int group, lf_quant_desc *qd, double *err) {
    lf_tokenizer t;
    char *text = NULL;
    size_t len = 0, n = 0;
    int32_t *ids = NULL;
    lf_status s = lf_tok_open(&t, QI_MODEL);
    if (s == LF_OK && (s = lf_file_read(QI_TEXT, 0, &text, &len)) == LF_OK)
        s = lf_tok_encode(&t, text, LF__MIN(len, (size_t)65536), false, &ids, &n);
    lf_tok_close(&t);
    lf_free(text);
    if (s == LF_OK && n < (size_t)QI_SAMPLES * QI_LEN) s = lf__fail(LF_ERR_FORMAT, "%s: too short", QI_TEXT);
    static const int32_t *samples[QI_SAMPLES];
    static int lens[QI_SAMPLES];
    for (int i = 0; i < QI_SAMPLES; i++) samples[i] = ids + (size_t)i * QI_LEN, lens[i] = QI_LEN;
    memset(qd, 0, sizeof *qd);
    qd->method = method, qd->q.type = LF_QTYPE_Q4, qd->q.blocksize = group, qd->q.asym = asym, qd->gptq.desc_act = true;
    qd->samples = samples, qd->sample_len = lens, qd->n_samples = QI_SAMPLES;
    lf_model_desc md = {.path = QI_MODEL, .n_threads = 2, .max_tokens = QI_LEN, .max_seq_len = QI_LEN};
    if (s == LF_OK && (s = lf_model_open(m, &md)) == LF_OK && (s = lf_quant_model(m, qd, err)) != LF_OK) lf_model_close(m);
    lf_free(ids);  // the samples were read during lf_quant_model only
    return s;
}

// The shipped model in round-to-nearest Q4 for layout k (0 GPTQ's: symmetric, g_idx[i] =
// (i * 7) % groups so that the act-order path is exercised; 1 AWQ's: asymmetric).
static lf_status qi_layout(lf_model *m, int k) {
    lf_model_desc md = {.path = QI_MODEL, .n_threads = 2, .max_tokens = 1, .max_seq_len = 1};
    lf_qtensor_desc qd = {LF_QTYPE_Q4, 64, false, k == 1};
    lf_status s = lf_model_open(m, &md);
    if (s == LF_OK && (s = lf_model_quantize(m, &qd)) != LF_OK) lf_model_close(m);
    static int32_t gi[4][LF_PROJ_COUNT][704];  // the shipped model: 4 layers, inputs of 256 or 704
    for (int l = 0; s == LF_OK && k == 0 && l < 4; l++)
        for (int p = 0; p < LF_PROJ_COUNT; p++) {
            lf_qtensor *q = m->layers[l].q[p];
            for (int64_t i = 0; i < q->cols; i++) gi[l][p][i] = (int32_t)((i * 7) % (q->cols / q->blocksize));
            q->g_idx = gi[l][p];
        }
    return s;
}
