// tests/test_safetensors.c — writer/reader round trip, sharded sets, and the table of broken
// files, each with its status and a message naming the tensor, field or offset.

// Builds "8-byte length + header + data" in memory.
static unsigned char *st_build(const char *header, size_t data_len, size_t *size) {
    size_t h = strlen(header);
    *size = 8 + h + data_len;
    unsigned char *b = (unsigned char *)calloc(1, *size);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(b + 8, header, h);
    return b;
}

static int test_st_round_trip(void) {
    float f[6] = {1, -2, 3.5f, 0, 1e-3f, 7};
    uint16_t bf[4] = {0x3f80, 0x4000, 0xc040, 0};
    int8_t i8[3] = {-1, 0, 127};
    uint8_t u8[2] = {0, 255};
    int32_t i32[2] = {-5, 7};
    int64_t i64[2] = {1LL << 40, -3};
    uint16_t f16[1] = {0x3c00};
    lf_st_entry e[] = {{"a.f32", LF_DTYPE_F32, 2, {2, 3}, f},  {"b.bf16", LF_DTYPE_BF16, 1, {4}, bf},
                       {"c.i8", LF_DTYPE_I8, 1, {3}, i8},     {"d.u8", LF_DTYPE_U8, 1, {2}, u8},
                       {"e.i32", LF_DTYPE_I32, 1, {2}, i32},  {"f.i64", LF_DTYPE_I64, 2, {1, 2}, i64},
                       {"g.f16", LF_DTYPE_F16, 0, {0}, f16},  {"h.empty", LF_DTYPE_F32, 2, {0, 4}, NULL}};
    const char *meta[] = {"format", "pt", "largeforge_format", "test/1", "quote\"key", "line\nbreak"};
    char path[] = "/tmp/lf-test-st-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    CHECK_OK(lf_st_write(path, e, 8, meta, 3));
    lf_st_file f1;
    CHECK_OK(lf_st_open(&f1, path));
    CHECK(f1.n == 8);
    for (int i = 0; i < 8; i++) {
        const lf_st_tensor *t = lf_st_find(&f1, e[i].name);
        CHECK(t && t->dtype == e[i].dtype && t->ndim == e[i].ndim);
        size_t bytes = lf_dtype_size(e[i].dtype);
        for (int d = 0; d < t->ndim; d++) {
            CHECK(t->shape[d] == e[i].shape[d]);
            bytes *= (size_t)t->shape[d];
        }
        CHECK(t->end - t->begin == bytes && (bytes == 0 || memcmp(t->data, e[i].data, bytes) == 0));
    }
    CHECK(lf_st_find(&f1, "nope") == NULL);
    CHECK(strcmp(lf_st_meta(&f1, "largeforge_format"), "test/1") == 0);
    CHECK(strcmp(lf_st_meta(&f1, "quote\"key"), "line\nbreak") == 0);
    CHECK((size_t)(lf_st_find(&f1, "a.f32")->data - f1.map.data) % 8 == 0);  // the writer pads the header
    lf_st_close(&f1);
    lf_st_close(&f1);  // safe twice
    remove(path);
    return 0;
}

static int test_st_bad_inputs(void) {
    static const struct {
        const char *what, *header;
        size_t data;
        lf_status st;
        const char *msg;
    } cases[] = {
        {"bad JSON", "{\"a\":{\"dtype\":\"F32\",", 0, LF_ERR_FORMAT, "invalid JSON at line 1"},
        {"not an object", "[1,2,3]", 0, LF_ERR_FORMAT, "header is not a JSON object"},
        {"unknown dtype", "{\"w\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, LF_ERR_FORMAT,
         "tensor 'w': unknown dtype 'F33'"},
        {"missing dtype", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, LF_ERR_FORMAT, "tensor 'w': field 'dtype'"},
        {"shape/size mismatch", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 24,
         LF_ERR_FORMAT, "tensor 'w': shape x dtype size is 24 bytes but data_offsets span 20"},
        {"end past data", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 12, LF_ERR_FORMAT,
         "tensor 'w': data_offsets end 16 > data size 12"},
        {"begin > end", "{\"w\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[8,4]}}", 12, LF_ERR_FORMAT,
         "data_offsets begin 8 > end 4"},
        {"overlap", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, LF_ERR_FORMAT,
         "tensors 'a' and 'b' overlap"},
        {"negative dim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, LF_ERR_FORMAT,
         "tensor 'w': shape[0] is not a non-negative integer"},
        {"fractional offset", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1.5]}}", 4, LF_ERR_FORMAT,
         "tensor 'w': field 'data_offsets'"},
        {"too many dims", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,1]}}", 1, LF_ERR_FORMAT,
         "tensor 'w': 5 dimensions"},
        {"shape overflow", "{\"w\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8,
         LF_ERR_FORMAT, "tensor 'w': shape overflows"},
        {"metadata not string", "{\"__metadata__\":{\"k\":1}}", 0, LF_ERR_FORMAT, "__metadata__['k'] is not a string"},
        {"entry not object", "{\"w\":5}", 0, LF_ERR_FORMAT, "tensor 'w': entry is not an object"},
        {"duplicate name", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                           "\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", 2, LF_ERR_FORMAT,
         "tensor 'w' appears twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t size;
        unsigned char *b = st_build(cases[i].header, cases[i].data, &size);
        lf_st_file f;
        lf_status s = lf_st_open_memory(&f, b, size, "bad.safetensors");
        if (s != cases[i].st || !strstr(lf_last_error(), cases[i].msg) || !strstr(lf_last_error(), "bad.safetensors")) {
            fprintf(stderr, "    case '%s': got %s \"%s\"\n", cases[i].what, lf_status_str(s), lf_last_error());
            free(b);
            return 1;
        }
        free(b);
    }
    // framing errors
    lf_st_file f;
    unsigned char tiny[5] = {1, 2, 3, 4, 5};
    CHECK_ERR(lf_st_open_memory(&f, tiny, 5, "t.st"), LF_ERR_FORMAT, "t.st: 5 bytes, too short");
    unsigned char past[16] = {100};  // header of 100 bytes in a 16-byte file
    CHECK_ERR(lf_st_open_memory(&f, past, 16, "p.st"), LF_ERR_FORMAT, "header length 100 runs past the end");
    unsigned char huge[16] = {0, 0, 0, 0, 0, 0, 0, 0x10};
    CHECK_ERR(lf_st_open_memory(&f, huge, 16, "h.st"), LF_ERR_FORMAT, "over the limit");
    // a truncated real file
    lf_mmap m;
    CHECK_OK(lf_mmap_open(&m, "tests/fixtures/models/llama_f32/model.safetensors"));
    CHECK_ERR(lf_st_open_memory(&f, m.data, m.size - 100, "cut.safetensors"), LF_ERR_FORMAT, "> data size");
    lf_mmap_close(&m);
    return 0;
}

static int test_st_sharded(void) {
    lf_st_set one, many;
    CHECK_OK(lf_st_set_open(&one, "tests/fixtures/models/llama_f32"));
    CHECK_OK(lf_st_set_open(&many, "tests/fixtures/models/llama_sharded_f32"));
    CHECK(one.n == 1 && many.n > 1);
    int total = 0;
    for (int i = 0; i < many.n; i++) total += many.files[i].n;
    CHECK(total == one.files[0].n);
    for (int i = 0; i < one.files[0].n; i++) {
        const lf_st_tensor *a = &one.files[0].tensors[i], *b = lf_st_set_find(&many, a->name);
        CHECK(b && b->end - b->begin == a->end - a->begin && memcmp(a->data, b->data, a->end - a->begin) == 0);
    }
    lf_st_set_close(&one);
    lf_st_set_close(&many);
    CHECK_ERR(lf_st_set_open(&one, "tests/fixtures"), LF_ERR_IO, "no model.safetensors");

    // broken index files
    static const struct {
        const char *index, *msg;
        lf_status st;
    } cases[] = {
        {"{\"weight_map\":{\"a\":\"../x.safetensors\"}}", "must be a file name", LF_ERR_FORMAT},
        {"{\"weight_map\":{\"a\":5}}", "weight_map['a'] is not a string", LF_ERR_FORMAT},
        {"{\"metadata\":{}}", "'weight_map' missing", LF_ERR_FORMAT},
        {"{\"weight_map\":{\"a\":\"missing.safetensors\"}}", "missing.safetensors: cannot open", LF_ERR_IO},
        {"{\"weight_map\":{\"nope\":\"s.safetensors\"}}", "names tensor 'nope' in s.safetensors", LF_ERR_FORMAT},
        {"{\"weight_map\":", "invalid JSON", LF_ERR_FORMAT},
    };
    char dir[] = "/tmp/lf-test-shard-XXXXXX";
    CHECK(mkdtemp(dir));
    char ip[600], sp[600];
    snprintf(ip, sizeof ip, "%s/model.safetensors.index.json", dir);
    snprintf(sp, sizeof sp, "%s/s.safetensors", dir);
    float x = 1;
    lf_st_entry e = {"w", LF_DTYPE_F32, 1, {1}, &x};
    CHECK_OK(lf_st_write(sp, &e, 1, NULL, 0));
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        CHECK_OK(lf_file_write_atomic(ip, cases[i].index, strlen(cases[i].index)));
        CHECK_ERR(lf_st_set_open(&one, dir), cases[i].st, cases[i].msg);
    }
    remove(ip), remove(sp), rmdir(dir);
    return 0;
}

static const lf_test tests_safetensors[] = {
    {"safetensors/round_trip", test_st_round_trip},
    {"safetensors/bad_inputs", test_st_bad_inputs},
    {"safetensors/sharded", test_st_sharded},
};
