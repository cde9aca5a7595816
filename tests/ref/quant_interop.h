// tests/ref/quant_interop.h — the GPTQ and AWQ checkpoints whose independent reading
// (tests/ref/read_quant.py) tests/fixtures/quant/interop.json records: the shipped model
// quantized on 16 calibration windows of 128 tokens from the start of data/kjv/train.txt, group
// 64, GPTQ symmetric with act order, AWQ with clipping. Shared by tests/ref/lf_quant_export.c
// (make parity) and tests/test_quant.c, which must make the same weights.
#define QI_MODEL "models/kjv-llama-4m"
#define QI_TEXT "data/kjv/train.txt"
enum { QI_SAMPLES = 16, QI_LEN = 128 };

// Opens the model and quantizes it by method (RTN too: the samples then only give err, [L, 7]
// or NULL, the projections' relative output errors).
static lf_status qi_quantize(lf_model *m, lf_quant_method method, bool asym, lf_quant_desc *qd, double *err) {
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
    qd->method = method, qd->q.type = LF_QTYPE_Q4, qd->q.blocksize = 64, qd->q.asym = asym, qd->gptq.desc_act = true;
    qd->samples = samples, qd->sample_len = lens, qd->n_samples = QI_SAMPLES;
    lf_model_desc md = {.path = QI_MODEL, .n_threads = 2, .max_tokens = QI_LEN, .max_seq_len = QI_LEN};
    if (s == LF_OK && (s = lf_model_open(m, &md)) == LF_OK && (s = lf_quant_model(m, qd, err)) != LF_OK) lf_model_close(m);
    lf_free(ids);  // the samples were read during lf_quant_model only
    return s;
}
