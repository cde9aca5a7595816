// largeforge.h — v0.1.0 — fine-tune, align, distill, quantize and serve Llama-family LLMs in C
// License: MIT, see the end of this file.
//
// QUICK START
//   In exactly one .c file:   #define LARGEFORGE_IMPLEMENTATION
//                             #include "largeforge.h"
//   Build:  cc -O3 -march=native app.c -lcjson -lm -lpthread
//
//   lf_model m; lf_model_desc d = {.path = "models/tiny"};
//   if (lf_model_open(&m, &d) != LF_OK) fprintf(stderr, "%s\n", lf_last_error());
//
// LARGEFORGE DOES NOT
//   run architectures outside the Llama family (llama, qwen2, mistral), read pickle (.bin/.pt)
//   checkpoints, download anything, or print on its own. It never exits or aborts on bad input.
//
// TRUST MODEL
//   Model files (safetensors, config.json), tokenizer.json, tokenizer_config.json and text are
//   untrusted: every length, count, offset and shape read from them is checked (with checked
//   arithmetic) before use, and bad input returns a status with a message that names the file,
//   tensor, field or byte offset. Limits are the LF_MAX_* macros below.
//
// CONTENTS                                  (grep -n '^// ==' largeforge.h prints this map)
//    1. core         status, errors, logging, allocation, arenas, rng, time, pool, files
//    2. config       JSON and YAML into one tree of lf_node; overrides; typed field readers
//    3. tensor       dtypes, conversions, CPU kernels (matmul, norms, rope, softmax, swiglu),
//                    NF4 and int8 weights as bitsandbytes stores them, GGUF's Q8_0 and Q4_0
//                    blocks, GPTQ's/AWQ's 4-bit groups, matmuls on them, int8 dot products
//    4. safetensors  mmap reader with a validated header, sharded index, writer
//    5. tokenizer    HF tokenizer.json (byte-level and SentencePiece-style BPE), chat templates,
//                    the byte-level BPE trainer
//    6. model        Llama-family config and weights, batched forward with a KV cache, training
//                    forward/backward, saving
//    7. lora         PEFT-compatible adapters: attach, load, save, merge
//    8. train        AdamW, learning-rate schedules, gradient clipping, the training config,
//                    checkpoints
//    9. objectives   SFT: chat and text samples with the loss on the answers only; preference
//                    losses (DPO, hinge, IPO, ORPO) from per-sequence log-probabilities and
//                    their training steps; distillation (logits and features)
//   10. data         dataset formats and streaming reader, split, tokenized cache, batches,
//                    preference pairs, teacher targets, quality filters and near-duplicates
//   11. quant        calibration passes, GPTQ, AWQ, quantized checkpoints (ours, GPTQ's, AWQ's),
//                    GGUF export of models and LoRA adapters
//   12. generate     sampling, stop strings, streaming generation, batched generation, scoring,
//                    synthetic instruction data and preference pairs
//
// CONFIGURATION MACROS          default      define where
//   LF_API                       extern       everywhere       decoration of public functions
//   LF_STATIC                    off          everywhere       make the whole API static
//   LF_MALLOC/LF_REALLOC/LF_FREE libc         impl file only   all three or none
//   LF_ASSERT(c)                 assert(c)    impl file only   internal invariants only
//   LF_NO_STDIO                  off          everywhere       drop path-based APIs (memory ones stay)
//   LF_NO_THREADS                off          everywhere       the pool runs all work inline
//   LF_MAX_JSON_BYTES            1 GiB        impl file only   largest JSON or YAML document accepted
//   LF_MAX_CONFIG_DEPTH          64           impl file only   deepest YAML nesting
//   LF_MAX_ST_HEADER_BYTES       100 MiB      impl file only   largest safetensors header
//   LF_MAX_DIMS                  4            everywhere       largest tensor rank
//   LF_MAX_SHARDS                1024         impl file only   largest sharded checkpoint
//   LF_MAX_TOKEN_BYTES           1024         impl file only   longest vocab / added token
//   LF_MAX_VOCAB                 1 << 22      impl file only   largest tokenizer vocabulary
//   LF_MAX_REGEX_PROG            8192         impl file only   largest compiled pre-tokenizer regex
//   LF_MAX_DATA_RECORD_BYTES     64 MiB       impl file only   longest dataset record (JSONL line)
//
// CONVENTIONS
//   names    lf_module_verb (modules: pool arena rng sha256 json node cfg st tok chat model kv
//            lora optim ckpt sft data dataset batcher gen nf4 int8 qtensor quant gptq gguf),
//            lf_type, LF_MACRO, static lf__internal
//   shapes   outermost first, row-major, linear weights [out, in] as HF stores them.
//            B batch, T sequence, C model width, NH heads, NKV kv heads, HS head size,
//            FF MLP width, L layers, V vocab, N rows (tokens in one forward)
//   errors   fallible calls return lf_status (LF_OK == 0); lf_last_error() holds the detail
//            for this thread, meaningful right after a call that did not return LF_OK
//   memory   pointers passed in are borrowed for the call; pointers returned belong to their
//            object and live until its _close/_deinit, unless the doc says "free with lf_free".
//            Objects are caller-owned structs that must not move after _open/_init;
//            _close/_deinit are safe on zeroed or already released objects.
//   threads  every function says: safe / safe on distinct objects / not safe
//   cJSON    used only inside section 2; its own allocations do not go through LF_MALLOC.
//            The host must not change LC_NUMERIC while LargeForge parses.

#ifndef LARGEFORGE_H
#define LARGEFORGE_H

#define LF_VERSION_MAJOR 0
#define LF_VERSION_MINOR 1
#define LF_VERSION_PATCH 0
#define LF_VERSION_STRING "0.1.0"

// The implementation needs POSIX (mmap, clock_gettime, pthreads): include this header before
// any system header in the implementation file, or build with -std=gnu11.
#if defined(LARGEFORGE_IMPLEMENTATION) && !defined(_GNU_SOURCE) && !defined(_WIN32)
#define _GNU_SOURCE
#endif
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef LF_API
#  if defined(LF_STATIC)
#    define LF_API static
#  elif defined(LF_SHARED) && defined(_WIN32)
#    define LF_API __declspec(dllexport)
#  elif defined(LF_SHARED)
#    define LF_API __attribute__((visibility("default")))
#  else
#    define LF_API extern
#  endif
#endif

#ifndef LF_MAX_DIMS
#define LF_MAX_DIMS 4
#endif

#ifdef __cplusplus
extern "C" {
#endif

// == 1. core (API) ===============================================================================
// threads: free functions are safe; objects (arena, rng, pool, mmap) are safe on distinct
// objects; lf_log_set is not safe (call it before starting threads).

typedef enum lf_status {
    LF_OK = 0,
    LF_ERR_ARG = -1,          // caller passed something invalid
    LF_ERR_NOMEM = -2,        // an allocation failed (message: how much, what for)
    LF_ERR_IO = -3,           // open/read/write/mmap failed (message: path, errno text)
    LF_ERR_FORMAT = -4,       // a file or string is malformed (message: where)
    LF_ERR_SHAPE = -5,        // tensor shapes disagree
    LF_ERR_CONFIG = -6,       // a config field is missing, ill-typed or out of range
    LF_ERR_UNSUPPORTED = -7,  // valid input we do not handle (an architecture, a dtype)
    LF_ERR_CAPACITY = -8,     // more than the reserved capacity (batch, sequence, slots)
    LF_ERR_CUDA = -9,
    LF_ERR_NET = -10,
    LF_ERR_CANCELLED = -11,   // a should_stop callback asked to stop
    LF_ERR_BUSY = -12         // overloaded: no room now and none in time (the engine's queue)
} lf_status;

LF_API const char *lf_status_str(lf_status s);  // "LF_ERR_FORMAT"; safe
LF_API const char *lf_last_error(void);         // per-thread detail of the last failure; safe
LF_API const char *lf_version(void);            // LF_VERSION_STRING; safe

// Logging: silent unless a logger is installed. Set it once at start-up, before threads.
typedef enum lf_log_level { LF_LOG_DEBUG = 0, LF_LOG_INFO = 1, LF_LOG_WARN = 2, LF_LOG_ERROR = 3 } lf_log_level;
typedef void (*lf_log_fn)(void *user, lf_log_level lvl, const char *module, const char *msg);
LF_API void lf_log_set(lf_log_fn fn, void *user, lf_log_level min_level);  // not safe
LF_API void lf_log_stderr(void *user, lf_log_level lvl, const char *module, const char *msg);
LF_API void lf_log_jsonl(void *user, lf_log_level lvl, const char *module, const char *msg); // user: FILE*

// Memory we hand out (documented as "free with lf_free").
LF_API void lf_free(void *p);  // safe

// Arena: one block, bump allocation, mark/reset. Used for activations and scratch.
typedef struct lf_arena {
    unsigned char *base;
    size_t cap, used;
} lf_arena;
LF_API lf_status lf_arena_init(lf_arena *a, size_t cap, const char *what);  // not safe
LF_API void *lf_arena_alloc(lf_arena *a, size_t bytes);  // 64-byte aligned; NULL + LF_ERR_CAPACITY when full
LF_API size_t lf_arena_mark(const lf_arena *a);
LF_API void lf_arena_reset(lf_arena *a, size_t mark);
LF_API void lf_arena_deinit(lf_arena *a);

// RNG: xoshiro256** seeded by splitmix64. Explicit state, never global.
typedef struct lf_rng { uint64_t s[4]; } lf_rng;
LF_API void lf_rng_seed(lf_rng *r, uint64_t seed);
LF_API uint64_t lf_rng_u64(lf_rng *r);
LF_API float lf_rng_float(lf_rng *r);   // uniform in [0, 1)
LF_API float lf_rng_normal(lf_rng *r);  // standard normal (Box-Muller)

LF_API uint64_t lf_time_ns(void);  // monotonic clock; safe

// SHA-256 (FIPS 180-4), incremental: checkpoint checksums, dataset cache keys.
typedef struct lf_sha256 {
    uint32_t h[8];
    uint64_t n;              // bytes so far
    unsigned char blk[64];   // a partial block
} lf_sha256;
LF_API void lf_sha256_init(lf_sha256 *c);
LF_API void lf_sha256_update(lf_sha256 *c, const void *data, size_t n);
LF_API void lf_sha256_final(lf_sha256 *c, char hex[65]);  // lowercase hex, NUL-terminated

// Thread pool. lf_parallel_for cuts [0, n) into fixed ranges (the same cut for the same n and
// thread count) that the threads, the caller among them as tid 0, claim until none is left.
// fn must compute each range's result the same whatever thread runs it (tid is only for
// per-thread scratch); results are then bit-identical run to run. fn must not call
// lf_parallel_for on the same pool.
typedef void (*lf_range_fn)(void *arg, int64_t begin, int64_t end, int tid);
typedef struct lf_pool lf_pool;
LF_API lf_status lf_pool_create(lf_pool **out, int n_threads);  // n_threads <= 0: all cores
LF_API void lf_pool_destroy(lf_pool *p);                        // safe on NULL
LF_API int lf_pool_size(const lf_pool *p);                      // 1 for NULL
LF_API void lf_parallel_for(lf_pool *p, int64_t n, lf_range_fn fn, void *arg);  // p may be NULL
LF_API int lf_cpu_count(void);

// Files. A mapping is read-only and lives until lf_mmap_close.
typedef struct lf_mmap {
    const unsigned char *data;
    size_t size;
    void *handle_;  // implementation detail
} lf_mmap;
LF_API lf_status lf_mmap_open(lf_mmap *m, const char *path);  // safe on distinct objects
LF_API void lf_mmap_close(lf_mmap *m);
// Reads a whole file; *data is NUL-terminated, free with lf_free. max_bytes 0: no limit.
LF_API lf_status lf_file_read(const char *path, size_t max_bytes, char **data, size_t *len);
// Writes a unique path.tmp.XXXXXX, fsyncs it, renames it over path and fsyncs the directory: a
// reader sees the old file or the new one, never a torn one.
LF_API lf_status lf_file_write_atomic(const char *path, const void *data, size_t len);
LF_API bool lf_path_exists(const char *path);
LF_API bool lf_path_is_dir(const char *path);
LF_API lf_status lf_dir_make(const char *path);  // mkdir -p; LF_ERR_IO naming the path
// Joins a and b with '/'; free with lf_free.
LF_API char *lf_path_join(const char *a, const char *b);

// == 2. config (API) =============================================================================
// threads: parsing is safe on distinct documents; reading a parsed document is safe.

// One tree for every parsed document, JSON or YAML. Nodes and strings live in the document.
typedef enum lf_node_type {
    LF_NODE_NULL = 0, LF_NODE_BOOL, LF_NODE_NUMBER, LF_NODE_STRING, LF_NODE_ARRAY, LF_NODE_OBJECT
} lf_node_type;

typedef struct lf_node {
    lf_node_type type;
    int n;                  // children (array items or object members)
    const char *key;        // member name when the parent is an object, else NULL
    const char *str;        // string value (NUL-terminated), NULL otherwise
    size_t len;             // byte length of str
    double num;             // number value; bool: 0 or 1
    struct lf_node *kids;   // [n]
} lf_node;

typedef struct lf_doc {
    lf_node *root;
    char name[256];   // file name used in error messages
    void *mem_;       // one block holding nodes and strings
} lf_doc;

LF_API lf_status lf_json_parse(lf_doc *doc, const char *text, size_t len, const char *name);
LF_API lf_status lf_json_load(lf_doc *doc, const char *path);
// The YAML subset configs use (see 2.1); errors name the line and column.
LF_API lf_status lf_yaml_parse(lf_doc *doc, const char *text, size_t len, const char *name);
// A config file (.json as JSON, anything else as YAML; NULL: an empty one) with overrides
// applied: first the environment's LARGEFORGE_<SECTION>_<KEY>=value (sections model, training,
// lora, quantization, data, dpo, distill, generation, server; e.g.
// LARGEFORGE_TRAINING_LEARNING_RATE=1e-4), then the command line's "section.key=value". Each
// sets that field, its value read as YAML ("training.learning_rate=1e-4" is a number,
// "lora.target_modules=[q_proj, v_proj]" a list). Whether a key is known is for the config's
// reader to say (lf_cfg_keys).
LF_API lf_status lf_config_load(lf_doc *doc, const char *path, const char *const *overrides, int n_overrides);
LF_API void lf_doc_deinit(lf_doc *doc);
LF_API const lf_node *lf_node_get(const lf_node *obj, const char *key);  // NULL if absent or obj not an object

// Typed field readers: an absent (or null) field leaves *out untouched and returns LF_OK
// unless required; a field of the wrong type or range returns LF_ERR_CONFIG naming
// "<doc>: <key>". Integers must be integral and within [lo, hi].
LF_API lf_status lf_cfg_int(const lf_doc *d, const lf_node *obj, const char *key, bool required,
                            int64_t lo, int64_t hi, int64_t *out);
LF_API lf_status lf_cfg_num(const lf_doc *d, const lf_node *obj, const char *key, bool required, double *out);
LF_API lf_status lf_cfg_bool(const lf_doc *d, const lf_node *obj, const char *key, bool required, bool *out);
LF_API lf_status lf_cfg_str(const lf_doc *d, const lf_node *obj, const char *key, bool required, const char **out);
// Every key of mapping obj (named section in messages; NULL: the top level) must be one of
// known[n]: else LF_ERR_CONFIG "<doc>: <section>.<key>: unknown key", with the nearest known key
// suggested.
LF_API lf_status lf_cfg_keys(const lf_doc *d, const lf_node *obj, const char *section, const char *const *known, int n);

// == 3. tensor (API) =============================================================================
// threads: conversions are safe; lf_matmul as noted.

// Stored dtype ids: explicit values that only grow.
typedef enum lf_dtype {
    LF_DTYPE_INVALID = 0,
    LF_DTYPE_F32 = 1, LF_DTYPE_F16 = 2, LF_DTYPE_BF16 = 3, LF_DTYPE_F64 = 4,
    LF_DTYPE_I8 = 5, LF_DTYPE_U8 = 6, LF_DTYPE_I16 = 7, LF_DTYPE_U16 = 8,
    LF_DTYPE_I32 = 9, LF_DTYPE_U32 = 10, LF_DTYPE_I64 = 11, LF_DTYPE_U64 = 12,
    LF_DTYPE_BOOL = 13, LF_DTYPE_F8_E4M3 = 14, LF_DTYPE_F8_E5M2 = 15,
    LF_DTYPE_COUNT_
} lf_dtype;

LF_API const char *lf_dtype_name(lf_dtype t);      // safetensors spelling: "F32", "BF16"
LF_API size_t lf_dtype_size(lf_dtype t);           // bytes per element; 0 for INVALID
LF_API lf_dtype lf_dtype_from_name(const char *s, size_t len);  // LF_DTYPE_INVALID if unknown

// A view of n-d data: row-major, outermost first. Does not own data.
typedef struct lf_tensor {
    lf_dtype dtype;
    int ndim;
    int64_t shape[LF_MAX_DIMS];
    const void *data;
    const char *name;  // for error messages
} lf_tensor;

LF_API int64_t lf_tensor_numel(const lf_tensor *t);

LF_API float lf_bf16_to_f32(uint16_t h);
LF_API uint16_t lf_f32_to_bf16(float f);  // round to nearest even (as torch does)
LF_API float lf_f16_to_f32(uint16_t h);
LF_API uint16_t lf_f32_to_f16(float f);   // round to nearest even
// Converts n elements of src (F32, BF16 or F16) to f32.
LF_API lf_status lf_convert_to_f32(float *dst, const void *src, lf_dtype src_dtype, int64_t n);

// out[N, M] = x[N, K] . w[M, K]^T (+ bias[M]); w in F32, BF16 or F16 (BF16 meets x rounded to
// bf16, see 3.1); split over the pool by output column, so results do not depend on the thread
// count. Allocates its scratch per call (the model plans its own once).
// threads: safe on distinct out buffers (one call at a time per pool)
LF_API lf_status lf_matmul(lf_pool *pool, float *out, const float *x, const lf_tensor *w,
                           const float *bias, int64_t N);

// Quantized weights. threads: every function here is safe on distinct outputs; the matmuls as
// lf_matmul.
//
// ON QUANTIZED WEIGHTS: a frozen base weight is held exactly as bitsandbytes holds it, so bnb's
// tensors load as they are and what we quantize matches bnb byte for byte:
//  - NF4: the weight [out, in] flattened row-major and cut into blocks of `blocksize` elements
//    (64 for QLoRA); a block keeps absmax = max|x| (f32), each element the index of the NF4 value
//    (lf_nf4_code) nearest to x / absmax, ties to the lower one. Two indices per byte, element
//    2i in the high nibble of byte i; an odd count ends with the nibble of 0.0 (7).
//  - double quantization (bnb compress_statistics): the absmax minus their mean (offset),
//    quantized in blocks of 256 to the nearest value of the signed 8-bit dynamic map
//    (lf_quant_dynamic_map) with one f32 absmax2 per block. Block b's scale is then
//    code2[qabsmax[b]] * absmax2[b / 256] + offset, rounded after the product and after the sum.
//  - int8: LLM.int8's row-wise weight format (bnb int8_vectorwise_quant): per output row
//    absmax (bnb's SCB), q = round-half-even(x * (127 / absmax)); x' = (q * absmax) * (1/127).
//  - Q4: GPTQ's and AWQ's 4-bit group-wise format. Groups of `blocksize` consecutive values of a
//    row (32, 64, 128, ... or the whole row) share a scale s, held in f32 but always an f16 value
//    (the checkpoints store f16), and an integer zero z in [0, 15]; a value is a code c in [0, 15]
//    and x = (float)(c - z) * s, exact in f32. Codes two per byte along the row, value 2i in the
//    low nibble of byte i. g_idx (GPTQ's act order) maps column k to its group; NULL: k / blocksize.
//    Round-to-nearest picks s and z as GPTQ's quantizer does: the group's range widened to hold 0;
//    symmetric: z = 8 and, where the group has a negative value, the range made symmetric (a group
//    with none keeps [0, max] and clamps above 7 steps, as GPTQ's code does); s = range / 15
//    rounded to f16 (at least f16's smallest step, 2^-24), z = round(-min / s) when asymmetric;
//    c = clamp(round(x / s) + z, 0, 15), halves to even.
// Quantizing rejects NaN and Inf (LF_ERR_ARG naming the element): they would poison a whole
// block's scale. An all-zero block or row gets absmax 0 and dequantizes to zeros.

typedef enum lf_qtype {
    LF_QTYPE_NONE = 0, LF_QTYPE_NF4 = 1, LF_QTYPE_INT8 = 2, LF_QTYPE_Q8_0 = 3, LF_QTYPE_Q4_0 = 4, LF_QTYPE_Q4 = 5
} lf_qtype;

// "nf4", "int8", "q8_0", "q4_0", "q4" (the CLI's and the quantized layout's names); "none" for
// LF_QTYPE_NONE and anything else. lf_qtype_from_name: the type of such a name, NONE if unknown.
LF_API const char *lf_qtype_name(lf_qtype t);
LF_API lf_qtype lf_qtype_from_name(const char *name);
LF_API const float *lf_nf4_code(void);           // [16] bnb's NF4 values, ascending; safe
LF_API const float *lf_quant_dynamic_map(void);  // [256] bnb create_dynamic_map(signed=True); safe

// lf_nf4_quantize — NF4-quantize src blockwise (bnb quantize_4bit, quant_type "nf4").
//   dst      [ceil(n / 2)] packed codes                         written
//   absmax   [ceil(n / blocksize)] max|x| of each block          written
//   blocksize  32, 64, 128, ..., 4096 (bnb's set)
//   returns  LF_OK | LF_ERR_ARG (n <= 0, bad blocksize, NULL, NaN/Inf in src: message names it;
//            dst and absmax are then unspecified)
LF_API lf_status lf_nf4_quantize(unsigned char *dst, float *absmax, const float *src, int64_t n, int blocksize);
// dst[n] = code[nibble] * absmax[block] (bnb dequantize_4bit).
LF_API lf_status lf_nf4_dequantize(float *dst, const unsigned char *src, const float *absmax, int64_t n,
                                   int blocksize);
// lf_nf4_quantize_absmax — double quantization of nblocks NF4 absmax (finite, as from
// lf_nf4_quantize): *offset = their mean (accumulated in double), then blocks of 256 of
// absmax - offset quantized to the dynamic map.
//   qabsmax  [nblocks] indices into lf_quant_dynamic_map()      written
//   absmax2  [ceil(nblocks / 256)]                               written
LF_API lf_status lf_nf4_quantize_absmax(unsigned char *qabsmax, float *absmax2, float *offset, const float *absmax,
                                        int64_t nblocks);
// absmax[b] = code2[qabsmax[b]] * absmax2[b / 256] + offset; code2 NULL means
// lf_quant_dynamic_map() (a bnb checkpoint stores its own as nested_quant_map).
LF_API lf_status lf_nf4_dequantize_absmax(float *absmax, const unsigned char *qabsmax, const float *absmax2,
                                          float offset, const float *code2, int64_t nblocks);

// lf_int8_quantize — row-wise int8 (LLM.int8 weights): absmax[r] = max|src[r, :]|,
// dst[r, c] = round-half-even(src[r, c] * (127 / absmax[r])).
//   returns  LF_OK | LF_ERR_ARG (rows or cols <= 0, NULL, NaN/Inf: message names the element)
LF_API lf_status lf_int8_quantize(int8_t *dst, float *absmax, const float *src, int64_t rows, int64_t cols);
// dst[r, c] = (src[r, c] * absmax[r]) * (1/127), as bnb int8_vectorwise_dequant.
LF_API lf_status lf_int8_dequantize(float *dst, const int8_t *src, const float *absmax, int64_t rows, int64_t cols);

// GGUF's block formats (llama.cpp's ggml), blocks of 32 consecutive values, as gguf-py's numpy
// quantizer (tests/fixtures/quant/ggml_ref.safetensors) and ggml's reference quantizers make them:
//   Q8_0  34 bytes: the scale d = max|x| / 127 as f16 (little-endian), then 32 int8
//         round(x * (1/d)) (d the f32 value; halves away from zero); x = q * d
//   Q4_0  18 bytes: m = the value of largest magnitude (sign kept; the first of ties),
//         d = m / -8 as f16, then 16 bytes of codes min(15, trunc(x * (1/d) + 8.5)): value j of the
//         block in the low nibble of byte j, value j + 16 in its high nibble; x = (code - 8) * d
#define LF_Q8_0_BYTES 34  // per block of 32 values
#define LF_Q4_0_BYTES 18
// lf_ggml_quantize — n values (a multiple of 32) into n / 32 blocks of type (Q8_0 or Q4_0).
//   returns  LF_OK | LF_ERR_ARG (another type; n not a positive multiple of 32; NaN/Inf: named)
//   threads  safe
LF_API lf_status lf_ggml_quantize(lf_qtype type, unsigned char *dst, const float *src, int64_t n);
LF_API lf_status lf_ggml_dequantize(lf_qtype type, float *dst, const unsigned char *src, int64_t n);

// Q4's round-to-nearest on one group of n values (GPTQ's quantizer, as described above): its
// scale (an f16 value) and zero; lf_q4_code is then one value's code. threads: safe
LF_API void lf_q4_params(const float *x, int n, bool asym, float *scale, int *zero);
LF_API int lf_q4_code(float x, float scale, int zero);

// A quantized linear weight [rows, cols] = HF's [out, in]. lf_qtensor_quantize fills one and
// owns its arrays (one block, mem_); a caller may instead point the fields at a checkpoint's
// tensors (mem_ NULL), which must then outlive it.
typedef struct lf_qtensor {
    lf_qtype type;
    int64_t rows, cols;
    int blocksize;                 // NF4: elements per absmax block (flat over rows * cols); Q4: group
                                   // size; Q8_0, Q4_0: 32; int8: 0
    const unsigned char *q;        // NF4: [ceil(rows * cols / 2)] packed codes; int8: [rows, cols] int8;
                                   // Q8_0, Q4_0: [rows * cols / 32] blocks; Q4: [rows, cols / 2]
    const float *absmax;           // NF4: [nblocks], NULL when double-quantized; int8: [rows];
                                   // Q4: the scales [rows, groups]
    const unsigned char *qabsmax;  // NF4 double quantization: [nblocks] indices into code2, else NULL
    const float *absmax2;          // [ceil(nblocks / 256)]
    const float *code2;            // [256]
    float offset;
    const unsigned char *zeros;    // Q4: [rows, groups] zero points
    const int32_t *g_idx;          // Q4: [cols] group of each column (act order), or NULL
    void *mem_;                    // what lf_qtensor_quantize allocated
} lf_qtensor;

typedef struct lf_qtensor_desc {
    lf_qtype type;      // required
    int blocksize;      // NF4: default 64 (QLoRA, bnb); Q4: the group size, default 128, -1 the whole
                        // row; it divides the row: a power of two from 16, or the row's length
    bool double_quant;  // NF4; default: false. true = bnb_4bit_use_double_quant (QLoRA's setting)
    bool asym;          // Q4: zero points per group (default: symmetric, z = 8)
} lf_qtensor_desc;

// lf_qtensor_quantize — quantize w [rows, cols] (f32) into qt.
//   returns  LF_OK | LF_ERR_ARG (bad desc field or shape, NaN/Inf: message names it) | LF_ERR_NOMEM
//   after    qt owns its arrays until lf_qtensor_deinit; on failure qt is zeroed
LF_API lf_status lf_qtensor_quantize(lf_qtensor *qt, const float *w, int64_t rows, int64_t cols,
                                     const lf_qtensor_desc *desc);
// out [rows, cols] = the weight in f32 (exactly the values the matmuls multiply by).
LF_API lf_status lf_qtensor_dequantize(const lf_qtensor *qt, float *out);
LF_API void lf_qtensor_deinit(lf_qtensor *qt);  // safe on a zeroed or already released qt

// lf_qtensor_matmul — out[N, rows] = x[N, cols] . dequant(w)^T (+ bias[rows]) without making the
// f32 matrix: panels of w are dequantized into per-thread buffers. Split over the pool by output
// column, so results do not depend on the thread count; they equal lf_matmul on
// lf_qtensor_dequantize's matrix (bit for bit in AVX-512 builds, to rounding in others).
//   returns  LF_OK | LF_ERR_ARG (N <= 0, an inconsistent w: message names the field) | LF_ERR_NOMEM
//   threads  safe on distinct out buffers (one call at a time per pool)
LF_API lf_status lf_qtensor_matmul(lf_pool *pool, float *out, const float *x, const lf_qtensor *w,
                                   const float *bias, int64_t N);
// The input gradient of that product: dx[N, cols] = dout[N, rows] . dequant(w), panels of w
// dequantized as stored (no transposed copy). Same contract as lf_qtensor_matmul.
LF_API lf_status lf_qtensor_matmul_dx(lf_pool *pool, float *dx, const float *dout, const lf_qtensor *w, int64_t N);

// == 4. safetensors (API) ========================================================================
// threads: open/close are safe on distinct objects; lookups in an open file are read-only and
// safe; the writer is safe.

typedef struct lf_st_tensor {
    char name[256];
    lf_dtype dtype;
    int ndim;
    int64_t shape[LF_MAX_DIMS];
    uint64_t begin, end;         // byte offsets inside the data region
    const unsigned char *data;   // view into the mapping
} lf_st_tensor;

// One .safetensors file, mapped. Tensor views live until lf_st_close.
typedef struct lf_st_file {
    char path[1024];
    lf_mmap map;
    int n;                  // tensors
    lf_st_tensor *tensors;  // [n], sorted by name
    lf_doc meta;            // __metadata__ as an object (root NULL when absent)
} lf_st_file;

// lf_st_open — map a .safetensors file and validate its header.
//   returns  LF_OK | LF_ERR_IO | LF_ERR_FORMAT (message: file, tensor, field, byte offset)
//   threads  safe on distinct objects
LF_API lf_status lf_st_open(lf_st_file *f, const char *path);
// Same checks over bytes in memory (kept, not copied): the fuzz target and tests use it.
LF_API lf_status lf_st_open_memory(lf_st_file *f, const void *data, size_t size, const char *name);
LF_API void lf_st_close(lf_st_file *f);
LF_API const lf_st_tensor *lf_st_find(const lf_st_file *f, const char *name);  // NULL if absent
LF_API const char *lf_st_meta(const lf_st_file *f, const char *key);          // NULL if absent

// A model's weights: one file or the shards of model.safetensors.index.json.
typedef struct lf_st_set {
    int n;
    lf_st_file *files;  // [n]
} lf_st_set;
LF_API lf_status lf_st_set_open(lf_st_set *s, const char *dir);
LF_API void lf_st_set_close(lf_st_set *s);
LF_API const lf_st_tensor *lf_st_set_find(const lf_st_set *s, const char *name);

// Writer: tensors are copied out in the order given; metadata pairs are key/value strings.
typedef struct lf_st_entry {
    const char *name;
    lf_dtype dtype;
    int ndim;
    int64_t shape[LF_MAX_DIMS];
    const void *data;
} lf_st_entry;
LF_API lf_status lf_st_write(const char *path, const lf_st_entry *tensors, int n,
                             const char *const *meta_kv, int n_meta);  // written atomically
// Serializes into one buffer (free with lf_free).
LF_API lf_status lf_st_serialize(const lf_st_entry *tensors, int n, const char *const *meta_kv,
                                 int n_meta, unsigned char **out, size_t *out_len);

// == 5. tokenizer (API) ==========================================================================

// Chat formats. LF_CHAT_DEFAULT means "whatever the tokenizer's chat_template is".
typedef enum lf_chat_template {
    LF_CHAT_DEFAULT = 0,  // detect from tokenizer_config.json's chat_template
    LF_CHAT_CHATML,       // <|im_start|>role\n...<|im_end|> (Qwen2, Qwen2.5, Qwen3)
    LF_CHAT_LLAMA3,       // <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>
    LF_CHAT_LLAMA2,       // <s>[INST] <<SYS>>\n...\n<</SYS>>\n\n... [/INST] ... </s>
    LF_CHAT_MISTRAL,      // <s>[INST] ... [/INST]...</s> (Mistral-7B v0.1: no system role)
    LF_CHAT_PLAIN         // LargeForge's format for base models (see lf_chat_render)
} lf_chat_template;

// A loaded tokenizer. Read-only after lf_tok_open/lf_tok_load: encode, decode and render may
// run concurrently on one tokenizer.
typedef struct lf_tokenizer {
    char name[256];         // file name used in messages
    int32_t n_vocab;        // ids are in [0, n_vocab): model vocab and added tokens
    int32_t bos_id, eos_id; // from tokenizer_config.json bos_token/eos_token; -1 if none
    lf_chat_template chat;  // detected chat format; LF_CHAT_DEFAULT when there is no template
    struct lf__tok *impl_;  // implementation detail
} lf_tokenizer;

// lf_tok_open — load tokenizer.json (path is the file, or a directory holding it and, if
// present, tokenizer_config.json for chat_template and bos/eos tokens).
//   returns  LF_OK | LF_ERR_IO | LF_ERR_FORMAT (broken file; message names file and field)
//            | LF_ERR_UNSUPPORTED (a normalizer, pre-tokenizer, decoder or model we do not
//            implement; message names the field path, e.g. "pre_tokenizer.type")
//   threads  safe on distinct objects
LF_API lf_status lf_tok_open(lf_tokenizer *t, const char *path);
// Same from memory; config_json may be NULL. name is used in messages.
LF_API lf_status lf_tok_load(lf_tokenizer *t, const char *json, size_t len, const char *config_json,
                             size_t config_len, const char *name);
LF_API void lf_tok_close(lf_tokenizer *t);  // safe on zeroed or closed objects

// lf_tok_encode — text to ids, exactly as HF tokenizers' Tokenizer.encode(text, add_special).
//   text     UTF-8, len bytes (need not be NUL-terminated)                   borrowed
//   ids      out: *n ids, free with lf_free (NULL when *n == 0)
//   returns  LF_OK | LF_ERR_FORMAT (invalid UTF-8; message gives the byte offset) | LF_ERR_NOMEM
//   threads  safe
LF_API lf_status lf_tok_encode(const lf_tokenizer *t, const char *text, size_t len, bool add_special,
                               int32_t **ids, size_t *n);

// lf_tok_decode — ids to text, as HF tokenizers' decode(ids, skip_special_tokens).
//   text     out: NUL-terminated, *len bytes, free with lf_free
//   returns  LF_OK | LF_ERR_ARG (id out of range; message names the index) | LF_ERR_NOMEM
//   threads  safe
LF_API lf_status lf_tok_decode(const lf_tokenizer *t, const int32_t *ids, size_t n, bool skip_special,
                               char **text, size_t *len);

// Streaming decoder: push ids one at a time and get back only complete UTF-8. The text of all
// pushes plus the final flush equals lf_tok_decode of all ids. A byte-fallback run (<0x..>
// tokens) is held until the next other token, because HF decodes an invalid run as one U+FFFD
// per byte, and a run can turn invalid at any later byte.
typedef struct lf_tok_stream {
    const lf_tokenizer *tok;
    bool skip_special;
    bool started_;                   // a token was decoded (no decoder: tokens join with spaces)
    int strip_left;                  // leading characters the Strip decoder still removes
    int n_utf8;                      // bytes of a partial UTF-8 sequence (byte-level decoder)
    unsigned char utf8[4];
    unsigned char *run_;             // held byte-fallback run
    size_t run_len_, run_cap_;
    char *out_;                      // text not yet handed out
    size_t out_len_, out_cap_;
    char *tmp_;                      // scratch for the per-token decoder steps
    size_t tmp_cap_;
} lf_tok_stream;
LF_API void lf_tok_stream_init(lf_tok_stream *s, const lf_tokenizer *t, bool skip_special);
// lf_tok_stream_push — decode one more id.
//   text     out: the newly completed text (NUL-terminated, *len bytes, often empty); it
//            belongs to s and stays valid until the next call on s
//   returns  LF_OK | LF_ERR_ARG (bad id) | LF_ERR_NOMEM
//   threads  not safe on the same s
LF_API lf_status lf_tok_stream_push(lf_tok_stream *s, int32_t id, const char **text, size_t *len);
// Ends the stream: hands out held bytes (an incomplete UTF-8 tail becomes U+FFFD, as decode).
LF_API lf_status lf_tok_stream_flush(lf_tok_stream *s, const char **text, size_t *len);
LF_API void lf_tok_stream_deinit(lf_tok_stream *s);  // safe on zeroed objects

LF_API int32_t lf_tok_vocab_size(const lf_tokenizer *t);               // n_vocab; safe
LF_API int32_t lf_tok_find(const lf_tokenizer *t, const char *token);  // exact token string; -1 if none
LF_API const char *lf_tok_piece(const lf_tokenizer *t, int32_t id);    // raw token string; NULL if none
LF_API bool lf_tok_is_special(const lf_tokenizer *t, int32_t id);      // an added token marked special

// A tool call of an assistant message. arguments is JSON text, inserted as is (the templates'
// "arguments is string" branch), e.g. {"city": "Paris"}.
typedef struct lf_chat_tool_call {
    const char *name;
    const char *arguments;
} lf_chat_tool_call;

// One chat message; strings are NUL-terminated UTF-8.
typedef struct lf_chat_msg {
    const char *role;                     // "system", "user", "assistant", "tool"
    const char *content;
    const char *reasoning;                // optional: reasoning_content (Qwen3 <think>); NULL: none
    const lf_chat_tool_call *tool_calls;  // optional: the assistant's tool calls (Qwen3)
    int n_tool_calls;
} lf_chat_msg;

// Options of lf_chat_render, or-ed together.
typedef enum lf_chat_flags {
    LF_CHAT_GENERATION_PROMPT = 1,  // end with the assistant header (add_generation_prompt)
    LF_CHAT_NO_THINKING = 2         // Qwen3's enable_thinking=false: an empty <think> block
} lf_chat_flags;

// "default", "chatml", "llama3", "llama2", "mistral", "plain"; LF_ERR_ARG otherwise.
LF_API lf_status lf_chat_template_from_name(const char *name, lf_chat_template *out);

// lf_chat_render — messages to prompt text, byte-identical to the model's own Jinja template.
//   t        the tokenizer (bos/eos strings, detected template); may be NULL when tmpl is not
//            LF_CHAT_DEFAULT
//   tmpl     LF_CHAT_DEFAULT: t's detected format (LF_CHAT_PLAIN when it has no template)
//   flags    lf_chat_flags
//   LF_CHAT_PLAIN renders, for base models:
//            [system content "\n"]             only as the first message
//            "Instruction: " user "\n"         per user message
//            "Response: " assistant "\nEND\n"  per assistant message
//            "Response:"                       with LF_CHAT_GENERATION_PROMPT (the model
//                                              writes " ..." itself, as in training)
//   out      NUL-terminated, *len bytes, free with lf_free
//   returns  LF_OK | LF_ERR_ARG (roles the template rejects, as its raise_exception does)
//            | LF_ERR_UNSUPPORTED (t's chat_template is not one we render; names the file)
//   threads  safe
LF_API lf_status lf_chat_render(const lf_tokenizer *t, lf_chat_template tmpl, const lf_chat_msg *msgs, int n,
                                unsigned flags, char **out, size_t *len);

// Training a tokenizer: byte-level BPE with GPT-2's pipeline, learned from UTF-8 text.
typedef struct lf_tok_train_desc {
    const char *const *inputs;          // UTF-8 text files, n_inputs of them
    int n_inputs;
    const char *const *texts;           // and/or texts in memory: texts[i] has text_lens[i] bytes
    const size_t *text_lens;
    int n_texts;
    int vocab_size;                     // required: the final size, special and byte tokens included
    int min_frequency;                  // default: 2 (a pair seen fewer times is never merged)
    const char *const *special_tokens;  // default (NULL): <|endoftext|>, <|im_start|>, <|im_end|>
    int n_special;                      // entries in special_tokens (0 with a non-NULL list: none)
    const char *eos_token;              // default: the first special token (none if there is none)
    const char *bos_token;              // default: none; else a special token (encode never adds it)
    int model_max_length;               // default: not written (transformers: no limit)
} lf_tok_train_desc;

// lf_tok_train — learn a byte-level BPE tokenizer from the inputs and write
// out_dir/tokenizer.json and out_dir/tokenizer_config.json (each atomically; out_dir is created
// when missing). tokenizer.json has GPT-2's pipeline (no normalizer, ByteLevel pre-tokenizer
// with GPT-2's regex, ByteLevel decoder, no BOS/EOS added) and ids as HF's BpeTrainer numbers
// them: the special tokens, the 256 byte tokens, then one token per merge. HF tokenizers and
// lf_tok_encode give the same ids on it, and the same inputs and desc give byte-identical files.
// Special tokens in the text are cut out as encode cuts them, so they never join a merge.
// tokenizer_config.json: eos_token (also pad_token), bos_token, tokenizer_class
// PreTrainedTokenizerFast, model_max_length, and a ChatML chat_template (lf_chat_render's
// LF_CHAT_CHATML) when <|im_start|> and <|im_end|> are special tokens.
//   returns  LF_OK | LF_ERR_CONFIG (a bad desc field, named: "tok_train.vocab_size: ...")
//            | LF_ERR_IO (names the file) | LF_ERR_FORMAT (invalid UTF-8: file and byte offset)
//            | LF_ERR_NOMEM
//   threads  safe (runs on the calling thread only)
LF_API lf_status lf_tok_train(const lf_tok_train_desc *d, const char *out_dir);
// Same, handing back the two files' text instead (both NUL-terminated, free with lf_free).
// Under LF_NO_STDIO only d->texts are read.
LF_API lf_status lf_tok_train_json(const lf_tok_train_desc *d, char **tokenizer_json, size_t *json_len,
                                   char **config_json, size_t *config_len);

// == 6. model (API) ==============================================================================
// threads: open/close are safe on distinct models; one forward at a time per model (it owns
// the activations and the pool); a KV cache belongs to one forward at a time.

typedef enum lf_arch { LF_ARCH_DEFAULT = 0, LF_ARCH_LLAMA = 1, LF_ARCH_QWEN2 = 2, LF_ARCH_MISTRAL = 3 } lf_arch;
typedef enum lf_rope_type { LF_ROPE_DEFAULT = 0, LF_ROPE_LINEAR = 1, LF_ROPE_LLAMA3 = 2 } lf_rope_type;

// What config.json says, resolved (absent optional fields get transformers' defaults).
typedef struct lf_model_config {
    lf_arch arch;
    int C, FF, L, NH, NKV, HS, V;   // hidden, intermediate, layers, heads, kv heads, head_dim, vocab
    float eps;                      // rms_norm_eps
    double rope_theta;
    lf_rope_type rope_type;
    double rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_original_max_pos;      // llama3: original_max_position_embeddings
    bool tied;                      // tie_word_embeddings
    bool qkv_bias, o_bias, mlp_bias;
    int max_pos;                    // max_position_embeddings
    int sliding_window;             // 0: full attention
    int window_from_layer;          // the window applies to layers >= this (Qwen2's max_window_layers)
    int bos_id;                     // -1 when absent
    int eos_ids[8], n_eos;
} lf_model_config;

// Parses config.json text; every missing or ill-typed field is named in the message.
LF_API lf_status lf_model_config_parse(lf_model_config *cfg, const char *json, size_t len, const char *name);

typedef struct lf_model_desc {
    const char *path;    // required: a HuggingFace model directory
    int n_threads;       // default: all cores
    int max_tokens;      // default: 512; most tokens in one lf_model_forward call
    int max_seq_len;     // default: min(max_position_embeddings, 4096); positions must stay below it
    lf_pool *pool;       // optional: share a pool (kept, not owned); the models sharing it then
                         // run one forward at a time between them; default: the model makes one
} lf_model_desc;

// The seven linear projections of a layer, in transformers' named_parameters() order.
typedef enum lf_proj {
    LF_PROJ_Q, LF_PROJ_K, LF_PROJ_V, LF_PROJ_O, LF_PROJ_GATE, LF_PROJ_UP, LF_PROJ_DOWN, LF_PROJ_COUNT
} lf_proj;
LF_API const char *lf_proj_name(lf_proj p);  // "self_attn.q_proj" ... "mlp.down_proj"; safe

// A low-rank update of one projection (LoRA, section 7 makes them):
// y += scale * (dropout(x) A^T) B^T.
typedef struct lf_lowrank {
    int r;
    float scale, dropout;
    float *A, *B;    // [r, in], [out, r], f32
    float *dA, *dB;  // their gradients while training (lf_model_train_begin), else NULL
} lf_lowrank;

typedef struct lf_layer {
    lf_tensor w[LF_PROJ_COUNT];        // [out, in]: q [NH*HS, C], k and v [NKV*HS, C], o [C, NH*HS],
                                       // gate and up [FF, C], down [C, FF]
    const float *b[LF_PROJ_COUNT];     // biases; NULL when the model has none
    lf_lowrank *lora[LF_PROJ_COUNT];   // adapters; NULL when none
    lf_qtensor *q[LF_PROJ_COUNT];      // the weight quantized (lf_model_quantize): w[p].data is then NULL
    const float *attn_norm, *mlp_norm; // [C]
} lf_layer;

// A loaded model: weights are views into the mapped safetensors (no copy when F32/BF16/F16),
// norms and biases are small f32 copies. Must not move after lf_model_open.
typedef struct lf_model {
    lf_model_config cfg;
    lf_st_set st;
    lf_tensor embed, lm_head;     // [V, C]; lm_head is embed when tied
    const float *final_norm;      // [C]
    lf_layer *layers;             // [L]
    float *rope_cos, *rope_sin;   // [max_seq_len, HS/2]
    int max_tokens, max_seq_len;
    lf_pool *pool;
    bool own_pool;
    float *small_;                // one block for norms, biases and rope tables
    lf_arena acts_;               // activations for max_tokens, sized once
    char *dir;                    // the model directory it was opened from (a copy)
    int lora_r;                   // the largest adapter rank (section 7); 0 without adapters
    bool lora_off;                // adapters switched off (lf_lora_enable): the base model alone
    struct lf__train *train_;     // training state (lf_model_train_begin), else NULL
    struct lf__lora *lora_;       // adapters (section 7), else NULL
    lf_qtensor *qw_;              // [L, 7] quantized projections (lf_model_quantize), else NULL
    lf_qtensor *qhead_;           // the head in Q8_0 when the projections are Q8_0 or Q4_0, else NULL
    void **blocks_;               // weight memory the model owns (merged adapters)
    int n_blocks_;
    size_t blocks_cap_;
    struct lf__param *extra_;     // parameters that train with the model (lf_model_train_extra)
    int n_extra_;
} lf_model;

// lf_model_open — load config.json and the safetensors weights of a model directory.
//   returns  LF_OK | LF_ERR_IO | LF_ERR_FORMAT | LF_ERR_CONFIG (field named) |
//            LF_ERR_UNSUPPORTED (architecture, dtype) | LF_ERR_SHAPE (tensor named)
//   threads  safe on distinct objects
LF_API lf_status lf_model_open(lf_model *m, const lf_model_desc *desc);
LF_API void lf_model_close(lf_model *m);
LF_API int64_t lf_model_n_params(const lf_model *m);
LF_API size_t lf_model_weight_bytes(const lf_model *m);  // the checkpoint's tensors; quantized ones at their size

// lf_model_quantize — hold every layer's seven projections quantized round-to-nearest as d says
// (lf_qtensor_desc: NF4 or int8 as bitsandbytes does for QLoRA, GGUF's Q8_0 or Q4_0, group-wise
// Q4); embeddings, norms and the head stay as they are; the projections' mapped pages are
// released. Forward, adapters and adapter training then run on the quantized weights. With Q8_0
// or Q4_0 the inference forward's head is Q8_0 too (llama.cpp's Q8_0 files hold it so; its
// Q4_0 ones in Q6_K, which we do not have); training keeps the head as it is. On a quantized
// model whose adapters were merged (lf_lora_merge dequantizes what it merges into), only the
// merged projections are quantized again; the others keep their codes.
//   returns  LF_OK | LF_ERR_ARG (training, already quantized, a bad desc) | LF_ERR_NOMEM
LF_API lf_status lf_model_quantize(lf_model *m, const lf_qtensor_desc *d);

#ifndef LF_KV_BLOCK
#define LF_KV_BLOCK 16  // positions per KV block (a power of two)
#endif

// The KV cache: max_seqs independent sequences ("slots") of up to max_seq_len positions, stored
// in blocks of LF_KV_BLOCK positions (all layers of a block together); a slot's row of the
// block table maps its positions to blocks. lf_kv_init gives every slot its own blocks up front.
// lf_kv_init_paged makes one pool of blocks that slots take as they grow (lf_kv_reserve) and
// give back (lf_kv_seq_release), and that slots can share (lf_kv_seq_copy shares whole blocks;
// a shared block is copied before it is written): vLLM's paged cache.
typedef struct lf_kv {
    int L, max_seqs, max_seq_len, width;  // width = NKV*HS
    int n_blocks, blocks_per_seq;         // blocks in all; table columns (ceil(max_seq_len / block))
    float *k, *v;                         // [n_blocks, L, LF_KV_BLOCK, width]
    int32_t *len;                         // [max_seqs] positions filled
    int32_t *table;                       // [max_seqs, blocks_per_seq] block ids, -1: none
    int32_t *ref;                         // paged: [n_blocks] holders of each block (0: free)
    int32_t *free_;                       // paged: [n_blocks] a stack of free block ids
    int n_free;
    bool paged;
} lf_kv;
LF_API lf_status lf_kv_init(lf_kv *kv, const lf_model *m, int max_seqs, int max_seq_len);  // 0: defaults 1, m->max_seq_len
// n_blocks of LF_KV_BLOCK positions shared by max_seqs slots (lf_kv_block_bytes: the size of one).
//   returns  LF_OK | LF_ERR_ARG (n_blocks < 1) | LF_ERR_CAPACITY (max_seq_len over the model's) | NOMEM
LF_API lf_status lf_kv_init_paged(lf_kv *kv, const lf_model *m, int n_blocks, int max_seqs, int max_seq_len);
LF_API size_t lf_kv_block_bytes(const lf_model *m);  // keys and values of one block, all layers
LF_API void lf_kv_deinit(lf_kv *kv);
LF_API void lf_kv_seq_truncate(lf_kv *kv, int seq, int len);  // forget positions >= len
// Slot to gets slot from's first n positions (a shared prompt's prefill, done once): copied, or
// in a paged cache shared (to's blocks are released first).
LF_API void lf_kv_seq_copy(lf_kv *kv, int from, int to, int n);
// Paged: give slot seq blocks for positions [0, n) (copies of shared ones it will write: those
// from its length on). Returns LF_OK | LF_ERR_CAPACITY (not enough free blocks: nothing changes)
// | LF_ERR_ARG (a bad slot, n over max_seq_len). A cache from lf_kv_init has them all: LF_OK.
LF_API lf_status lf_kv_reserve(lf_kv *kv, int seq, int n);
// Paged: slot seq gives its blocks back and is empty (lf_kv_init's: it is only emptied).
LF_API void lf_kv_seq_release(lf_kv *kv, int seq);

// A batch of tokens from one or more sequences (each sequence's positions in increasing order).
// A token at position p of sequence s attends to positions [0, p] of s: those written by
// earlier calls and by this one. Writing position p forgets the positions after it.
typedef struct lf_batch {
    int n;
    const int32_t *tokens;  // [n] ids in [0, V)
    const int32_t *pos;     // [n] position within its sequence; NULL: 0..n-1
    const int32_t *seq;     // [n] KV slot; NULL: all 0
    const int8_t *logits;   // [n] 1 = return this token's logits; NULL: only the last token
    float *const *hidden;   // optional [L]: where hidden[l] is not NULL, it gets layer l's output
                            // [n, C] (the residual stream after the layer; distillation's features)
} lf_batch;

// lf_model_forward — run the transformer over a batch, filling the KV cache.
//   logits   [rows, V] f32 out, one row per token whose logits flag is set, in batch order
//   returns  LF_OK | LF_ERR_ARG (bad id, position or slot; message names the index) |
//            LF_ERR_CAPACITY (n > max_tokens, position >= max_seq_len)
//   threads  not safe on the same m or kv
LF_API lf_status lf_model_forward(lf_model *m, lf_kv *kv, const lf_batch *b, float *logits);

// Training. Without adapters every parameter trains: lf_model_train_begin copies every weight
// into f32 master parameters (the model's views then point at them, so inference sees the
// weights being trained). With adapters (section 7) only their A and B train: the base stays
// frozen, used where it is when stored in f32 and upcast once otherwise, and gets no gradient.
// Both plan the activations of a [B, T] micro-batch.
//   returns  LF_OK | LF_ERR_NOMEM (message: how much, for what) | LF_ERR_CAPACITY (T > max_seq_len)
//            | LF_ERR_ARG (already training; the model stays in training mode until it closes)
//   flags    LF_TRAIN_CHECKPOINTING: keep the activations of one layer, not of all, and recompute
//            each layer's in the backward pass (gradient checkpointing: about a third more
//            compute for L-fold less activation memory; the gradients are the same bit for bit)
enum { LF_TRAIN_CHECKPOINTING = 1 };
LF_API lf_status lf_model_train_begin(lf_model *m, int B, int T, unsigned flags);
// lf_model_train_extra — before lf_model_train_begin: p[n] (the caller's, kept) trains with the
// model although it is not part of it (a distillation projection): a gradient (lf_model_grad by
// name), AdamW with weight decay, checkpoints (extra.safetensors).
//   returns  LF_OK | LF_ERR_ARG (training already; a name used twice or over 150 bytes) | NOMEM
LF_API lf_status lf_model_train_extra(lf_model *m, const char *name, float *p, int64_t n);

// One micro-batch. Packing puts several samples in a row: their positions restart at 0, and
// a token attends only to the earlier tokens of its own sample.
typedef struct lf_train_batch {
    const int32_t *tokens;  // [B, T]
    const int32_t *labels;  // [B, T] as transformers takes them: position t predicts labels[t + 1]; -100 ignored
    const int32_t *pos;     // [B, T] positions, 0 where a sample starts, else the previous + 1; NULL: 0..T-1 per row
    int n_scored;           // the loss divisor (HF's num_items_in_batch: the scored targets of all the
                            // micro-batches of one optimizer step); 0: this micro-batch's own count
    // Another loss than the causal-LM mean (preference and odds-ratio objectives, section 9):
    // given logp[B*T], the log-probability of each position's target (0 where there is none),
    // it returns the loss and fills dlogp[B*T] = d loss / d logp. NULL: cross-entropy.
    float (*objective)(void *user, const float *logp, float *dlogp, int B, int T);
    void *objective_user;
    // A loss on whole rows of logits (distillation, section 9), instead of both: called for each
    // chunk of positions [p0, p0 + rows) with their logits [rows, V] and targets (the labels
    // shifted: -100 where none), it returns their summed loss and, when backward is set,
    // overwrites the logits with d loss / d logits. The loss reported is the sum of its returns.
    double (*head)(void *user, int64_t p0, int rows, float *logits, const int32_t *targets, int V, bool backward);
    void *head_user;
    // A loss on hidden states (feature distillation), added to the other: after the forward it is
    // called for each layer l with feature_layers[l] set, with that layer's output h [B*T, C];
    // it returns its loss and, when backward is set, writes d loss / d h into dh (zeroed).
    double (*feature)(void *user, int layer, const float *h, float *dh, int64_t N, int C, bool backward);
    const int8_t *feature_layers;  // [L]
    void *feature_user;
} lf_train_batch;
// lf_model_train_grads — loss and gradients of one micro-batch, gradients accumulated (+=).
//   loss     out: the mean over this micro-batch's scored targets (whatever n_scored is)
//   returns  LF_OK | LF_ERR_ARG (before lf_model_train_begin; a bad id, label or position,
//            naming its index)
//   threads  not safe on the same m
LF_API lf_status lf_model_train_grads(lf_model *m, const lf_train_batch *b, float *loss);
// lf_model_train_eval — the loss only (no gradients, no adapter dropout): validation.
//   n_scored out: the targets the loss averages over (weight batches by it for a dataset mean)
LF_API lf_status lf_model_train_eval(lf_model *m, const lf_train_batch *b, float *loss, int *n_scored);
// lf_model_train_logps — forward only (no gradients, no dropout): logp[B*T] = log p of each
// position's target (as train_grads shifts them), 0 where there is none.
LF_API lf_status lf_model_train_logps(lf_model *m, const lf_train_batch *b, float *logp);
LF_API void lf_model_train_zero_grads(lf_model *m);
// The gradient of a trainable parameter by name, NULL if none (*n gets its length): transformers'
// names for full fine-tuning ("model.norm.weight"), PEFT's saved keys for adapters
// ("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight").
LF_API const float *lf_model_grad(const lf_model *m, const char *name, int64_t *n);
LF_API int64_t lf_model_n_trainable(const lf_model *m);  // floats that train; 0 when not training
// Adapter dropout draws micro-batch n's masks from (seed, n): set both to resume exactly.
LF_API void lf_model_train_rng(lf_model *m, uint64_t seed, uint64_t calls);
LF_API uint64_t lf_model_train_calls(const lf_model *m);  // micro-batches run so far

// lf_model_save — write the model as a HuggingFace directory that transformers loads: its
// weights as they are now (trained, merged) in one model.safetensors, plus config.json,
// generation_config.json and the tokenizer files copied from the directory it came from.
//   dtype    each tensor's dtype: LF_DTYPE_F32, BF16 or F16; LF_DTYPE_INVALID (0): the dtype
//            it had in the checkpoint
//   returns  LF_OK | LF_ERR_IO | LF_ERR_ARG (dir is the model's own directory; a bad dtype) |
//            LF_ERR_NOMEM
//   threads  not safe on the same m
LF_API lf_status lf_model_save(const lf_model *m, const char *dir, lf_dtype dtype);
// lf_model_init — a model to pretrain from scratch: out_dir gets config_dir's config.json,
// generation_config.json and tokenizer files, and a model.safetensors (F32) drawn as
// transformers initializes a Llama: normal(0, initializer_range (0.02)) for embedding and linear
// weights, zero biases, unit norms; a tied head is the embedding.
//   returns  LF_OK | LF_ERR_IO | LF_ERR_CONFIG (config.json, field named) | LF_ERR_NOMEM
LF_API lf_status lf_model_init(const char *config_dir, const char *out_dir, uint64_t seed);

// == 7. lora (API) ===============================================================================
// threads: not safe on the same model.
//
// LoRA as PEFT computes it: an adapted projection gives y = x W^T + b + scale * dropout(x) A^T B^T
// with A [r, in], B [out, r] and scale = lora_alpha / r (rsLoRA: lora_alpha / sqrt(r)). The
// adapters belong to the model: attach or load them before lf_model_train_begin, and training
// then updates only A and B. Save and load use PEFT's files: adapter_config.json and
// adapter_model.safetensors with keys base_model.model.model.layers.N.<module>.lora_A.weight.

typedef struct lf_lora_desc {
    int r;                       // rank: 8 (the product's LoraConfig)
    float alpha;                 // lora_alpha: 16
    float dropout;               // lora_dropout: 0.05
    const char *target_modules;  // comma-separated: q_proj k_proj v_proj o_proj gate_proj up_proj
                                 // down_proj, or "all-linear" (all seven): "q_proj,k_proj,v_proj,o_proj"
    bool use_rslora;             // scale = alpha / sqrt(r)
    uint64_t seed;               // A's initialisation (PEFT's: uniform in +-1/sqrt(in); B = 0)
} lf_lora_desc;
LF_API lf_lora_desc lf_lora_desc_default(void);

// lf_lora_attach — new adapters on every layer's target projections.
//   returns  LF_OK | LF_ERR_CONFIG (a field, named: "lora.r", "lora.target_modules") |
//            LF_ERR_ARG (the model has adapters already, or is training) | LF_ERR_NOMEM
LF_API lf_status lf_lora_attach(lf_model *m, const lf_lora_desc *d);
// lf_lora_load — a PEFT LoRA adapter directory (F32, BF16 or F16 tensors).
//   returns  LF_OK | LF_ERR_IO | LF_ERR_FORMAT (file and field or tensor named) |
//            LF_ERR_UNSUPPORTED (DoRA, rank/alpha patterns, lora bias, fan_in_fan_out, adapters
//            on modules other than the seven projections; named) | LF_ERR_SHAPE | LF_ERR_ARG
LF_API lf_status lf_lora_load(lf_model *m, const char *dir);
// lf_lora_save — the adapters as a PEFT directory (F32), written atomically file by file.
//   returns  LF_OK | LF_ERR_IO | LF_ERR_ARG (no adapters) | LF_ERR_NOMEM
LF_API lf_status lf_lora_save(const lf_model *m, const char *dir);
LF_API lf_lora_desc lf_lora_get_desc(const lf_model *m);  // the attached adapters' settings
// Adapters on (the default) or off: off, the model computes as its base alone, with no second
// copy of it (DPO's reference model when the policy is LoRA). Safe while training; not during a
// forward.
LF_API void lf_lora_enable(lf_model *m, bool enabled);
// lf_lora_merge — fold the adapters into the weights (W + scale * B A, in f32, as PEFT's
// merge_and_unload) and remove them; lf_model_save then writes a plain model, and new adapters
// may be attached.
//   returns  LF_OK | LF_ERR_ARG (no adapters; training) | LF_ERR_NOMEM (the model unchanged)
LF_API lf_status lf_lora_merge(lf_model *m);

// == 8. train (API) ==============================================================================
// threads: not safe on the same optimizer or model.

// Learning-rate schedules, as transformers' get_*_schedule_with_warmup compute them.
typedef enum lf_sched {
    LF_SCHED_DEFAULT = 0,  // cosine, the product's default
    LF_SCHED_COSINE = 1,
    LF_SCHED_LINEAR = 2,
    LF_SCHED_CONSTANT = 3,
    LF_SCHED_CONSTANT_WITH_WARMUP = 4
} lf_sched;

// AdamW as torch.optim.AdamW computes it, with HF Trainer's parameter groups (no weight decay
// on biases and norms) and clip_grad_norm_ before each step. Zero is meaningful for several
// fields (no weight decay, no clipping), so start from lf_optim_desc_default().
typedef struct lf_optim_desc {
    float learning_rate;  // 2e-5 (the product's TrainingConfig)
    float beta1, beta2;   // 0.9, 0.999
    float eps;            // 1e-8
    float weight_decay;   // 0.01
    float max_grad_norm;  // 1.0; 0: no clipping
    lf_sched schedule;    // cosine
    int warmup_steps;     // 0: ceil(warmup_ratio * total_steps)
    float warmup_ratio;   // 0.1
    int total_steps;      // required for cosine and linear
} lf_optim_desc;
LF_API lf_optim_desc lf_optim_desc_default(void);

typedef struct lf_optim {
    lf_optim_desc d;
    int64_t n, step;  // moments; steps taken
    float *m, *v;     // [n] first and second moments
} lf_optim;
// lf_optim_init — moments for a model in training mode (after lf_model_train_begin).
//   returns  LF_OK | LF_ERR_ARG (not in training mode) | LF_ERR_CONFIG (a field, named) | LF_ERR_NOMEM
LF_API lf_status lf_optim_init(lf_optim *o, const lf_model *m, const lf_optim_desc *d);
LF_API void lf_optim_deinit(lf_optim *o);
LF_API float lf_optim_lr(const lf_optim *o, int64_t step);  // the schedule's learning rate at a step
// lf_optim_step — clip the accumulated gradients, apply one AdamW update at lf_optim_lr(step),
// advance the step. *grad_norm (may be NULL) gets the norm before clipping.
LF_API lf_status lf_optim_step(lf_optim *o, lf_model *m, float *grad_norm);

// A training run's settings: the product's TrainingConfig and LoraConfig field names, read from a
// config's `model`, `training`, `lora` and `quantization` sections; HF's defaults where the
// product names none. Strings point into the document, which must outlive the config.
typedef enum lf_eval_strategy { LF_EVAL_STEPS = 0, LF_EVAL_EPOCH = 1, LF_EVAL_NO = 2 } lf_eval_strategy;
typedef struct lf_train_config {
    const char *model;             // model.name: a HuggingFace model directory (required)
    const char *adapter;           // model.adapter: a PEFT adapter directory whose training continues
                                   // (an SFT adapter for DPO); its adapter_config.json, not the lora
                                   // section, sets rank, alpha, dropout and targets
    const char *output_dir;        // training.output_dir (required)
    int num_epochs;                // 3
    int max_steps;                 // -1: num_epochs decides (HF)
    int batch_size;                // per_device_batch_size: 4
    int grad_accum;                // gradient_accumulation_steps: 4
    lf_optim_desc optim;           // learning_rate 2e-5, weight_decay 0.01, warmup_ratio 0.1, warmup_steps,
                                   // max_grad_norm 1.0, lr_scheduler_type cosine, adam_beta1/2, adam_epsilon
    int save_steps;                // 500
    int save_total_limit;          // 3; 0: keep all
    int logging_steps;             // 10
    int eval_steps;                // 500
    lf_eval_strategy eval_strategy;  // steps
    int early_stopping_patience;   // 0: off; else stop after this many evals without improvement
    float early_stopping_threshold;  // 0: an eval improves when it is lower by more than this
    uint64_t seed;                 // 42
    bool gradient_checkpointing;   // false
    bool bf16;                     // true; CPU training is f32 whatever this says (DESIGN: numerics)
    int threads;                   // 0: all cores
    bool lora;                     // lora.enabled (false; true when the section sets r)
    lf_lora_desc lora_desc;        // r 8, lora_alpha 16, lora_dropout 0.05, target_modules q,k,v,o
    int quant_bits;                // quantization.enabled: 4 (nf4) or 8 (int8) for QLoRA's base; 0: none
    bool double_quant;             // quantization.double_quant: true (QLoRA's bnb_4bit_use_double_quant)
    char targets_[256];            // storage for lora_desc.target_modules
} lf_train_config;
// lf_train_config_read — every field of those sections, typed and checked, unknown keys refused.
//   returns  LF_OK | LF_ERR_CONFIG (the file and "section.key" named)
LF_API lf_status lf_train_config_read(lf_train_config *c, const lf_doc *doc);
// The resolved settings as YAML (those four sections), for a run's config.yaml; free with lf_free.
LF_API char *lf_train_config_yaml(const lf_train_config *c);

// Where a run stands: what a checkpoint holds besides weights and optimizer moments.
#define LF_TRAIN_LOG_METRICS 12
typedef struct lf_train_state {
    int64_t step;             // optimizer steps done
    int64_t epoch, index;     // data position: the epoch, and the next sample of its order
    int64_t tokens;           // tokens trained on
    uint64_t seed, calls;     // adapter dropout (lf_model_train_rng)
    double best_eval;         // lowest eval loss so far (early stopping); HUGE_VAL: none yet
    int bad_evals;            // evals since it last improved
    double log_loss;          // the losses summed since the last logged step, and their count,
    int log_steps;            //   so a resumed run logs the same averages
    double log_metrics[LF_TRAIN_LOG_METRICS];  // an objective's metrics summed since the last
    int log_micro;                             //   logged step, over log_micro micro-batches
} lf_train_state;

// lf_ckpt_save — a checkpoint directory, written as a whole or not at all: the files go into
// dir.tmp-PID (each fsynced), SHA256SUMS lists their checksums (as sha256sum -c reads them),
// then the directory is renamed to dir. It holds the trainable weights (adapters: a PEFT adapter;
// full fine-tuning: an HF model directory in F32), optimizer.safetensors (AdamW moments) and
// trainer_state.json (st and the optimizer's step).
//   returns  LF_OK | LF_ERR_IO | LF_ERR_ARG (not training) | LF_ERR_NOMEM
LF_API lf_status lf_ckpt_save(const char *dir, const lf_model *m, const lf_optim *o, const lf_train_state *st);
// lf_ckpt_load — checks every checksum first, then restores weights, moments and state into a
// model already in training mode (same adapters or full) and an initialized optimizer.
//   returns  LF_OK | LF_ERR_IO | LF_ERR_FORMAT (a damaged or incomplete checkpoint: the file
//            named) | LF_ERR_SHAPE (made for another model or adapter)
LF_API lf_status lf_ckpt_load(const char *dir, lf_model *m, lf_optim *o, lf_train_state *st);
// The checkpoints of a run: run_dir/checkpoints/step-N. lf_ckpt_latest puts the path of the one
// with the largest N in out (LF_ERR_IO when there is none); lf_ckpt_prune deletes the oldest
// until keep are left (keep 0: none deleted).
LF_API lf_status lf_ckpt_latest(const char *run_dir, char *out, size_t cap);
LF_API lf_status lf_ckpt_prune(const char *run_dir, int keep);

// == 9. objectives (API) =========================================================================
// threads: encoding is safe (the tokenizer is read-only).
//
// ON SFT LABELS: labels use transformers' unshifted convention: labels[t] is tokens[t] where the
// loss is taken and LF_IGNORE_INDEX elsewhere; the model shifts (position t predicts labels[t+1]).
// A conversation is rendered with lf_chat_render and tokenized whole. For each assistant turn i
// (i >= n_prompt), the tokens between the render of messages[0..i) with the generation prompt
// and the render of messages[0..i] are trained: the turn's content and what the template writes
// after it (ChatML "<|im_end|>\n", Llama 3 "<|eot_id|>", PLAIN "\nEND\n"), as TRL masks
// prompt/completion data. Where the prefix's tokens are not a prefix of the conversation's,
// the longest common prefix is masked (counted in prefix_mismatch, as TRL warns). A template
// that renders a conversation's last turn differently from the same turn followed by more
// (Qwen3 gives only the last assistant turn an empty <think> block) leaves a turn's end
// unknown from its own render: it is then placed where that render's tail lines up with the
// conversation's tokens (the longest common suffix; counted in realigned).
// Special tokens: chat templates write their own BOS (Llama 3, Llama 2, Mistral), so rendered
// text is encoded without the post-processor's, as apply_chat_template does; LF_CHAT_PLAIN and
// raw text are encoded with it (lf_tok_encode add_special = true), so BOS comes once, first.
// Raw text (pretraining documents, prompt/completion strings) gets the EOS id appended unless it
// already ends with it, as TRL does. Truncation to max_length keeps the start (TRL's default).

#define LF_IGNORE_INDEX (-100)  // a label that takes no loss (PyTorch's cross_entropy default)

typedef struct lf_sft_desc {
    const lf_tokenizer *tok;   // required
    lf_chat_template chat;     // default: the tokenizer's template (LF_CHAT_PLAIN when it has none)
    unsigned chat_flags;       // lf_chat_flags besides GENERATION_PROMPT (e.g. LF_CHAT_NO_THINKING)
    int max_length;            // default 0: no limit; longer samples lose their end
    int max_prompt_length;     // preference pairs only (lf_data_encode_pair); default 0: no limit
} lf_sft_desc;

// One encoded sample. tokens and labels are freed by lf_sft_sample_deinit.
typedef struct lf_sft_sample {
    int32_t *tokens;       // [n]
    int32_t *labels;       // [n] tokens[t] where trained, LF_IGNORE_INDEX elsewhere
    int n;
    int n_trained;         // labels that are not LF_IGNORE_INDEX
    int prefix_mismatch;   // turns whose prompt tokens were not a prefix of the sample's tokens
    int realigned;         // turns whose end was found by lining up their tail (see above)
    bool truncated;        // cut at max_length
} lf_sft_sample;

// lf_sft_encode_chat — tokens and labels of a conversation; assistant turns from n_prompt on
// are trained (0: all of them; a conversational prompt/completion passes the prompt's length).
//   returns  LF_OK (n_trained may be 0: no assistant turn, or all of them cut) | LF_ERR_ARG (bad
//            desc; roles the template rejects) | LF_ERR_FORMAT (an assistant turn first, with
//            nothing before it) | LF_ERR_UNSUPPORTED (a chat_template we do not render) | NOMEM
//   threads  safe
LF_API lf_status lf_sft_encode_chat(const lf_sft_desc *d, const lf_chat_msg *msgs, int n, int n_prompt,
                                    lf_sft_sample *out);
// lf_sft_encode_text — raw text: prompt + text + EOS with only text + EOS trained (TRL's
// prompt/completion strings), or with prompt NULL the document text + EOS, all trained
// (pretraining, TRL's language-modeling format).
//   returns  LF_OK | LF_ERR_CONFIG (the tokenizer has no EOS token) | LF_ERR_FORMAT (invalid UTF-8)
LF_API lf_status lf_sft_encode_text(const lf_sft_desc *d, const char *prompt, const char *text, lf_sft_sample *out);
LF_API void lf_sft_sample_deinit(lf_sft_sample *s);  // safe on zeroed objects

// Preference losses from per-sequence log-probabilities, as TRL computes them. For pair i, pc/pr
// are the policy's summed log-probs of the chosen and rejected completions, rc/rr the reference
// model's; z = (pc - rc) - (pr - rr) (reference_free: pc - pr):
//   sigmoid  -logsigmoid(beta z) (1 - ls) - logsigmoid(-beta z) ls   (ls: label_smoothing, TRL <= 0.26's cDPO)
//   hinge    relu(1 - beta z)
//   ipo      (z' - 1 / (2 beta))^2, z' with each log-ratio divided by its completion's tokens
// The implicit rewards are beta (pc - rc) and beta (pr - rr) (the reference subtracted even when
// reference_free, as TRL 0.26 logs them).
typedef enum lf_pref_loss { LF_PREF_SIGMOID = 0, LF_PREF_HINGE = 1, LF_PREF_IPO = 2 } lf_pref_loss;
typedef struct lf_dpo_desc {
    float beta;              // 0.1 (the product's DPOConfig)
    lf_pref_loss loss_type;  // sigmoid
    float label_smoothing;   // 0; conservative DPO (sigmoid only)
    bool reference_free;     // false
} lf_dpo_desc;
LF_API lf_dpo_desc lf_dpo_desc_default(void);
// A config's `dpo` section, the product's DPOConfig: beta (0.1), loss_type (sigmoid | hinge |
// ipo), label_smoothing (0), reference_free (false), max_prompt_length (512), max_length (1024),
// precompute_ref_log_probs (false). Unknown keys and bad values name the file and key.
typedef struct lf_dpo_config {
    lf_dpo_desc loss;
    int max_prompt_length, max_length;
    bool precompute_ref_log_probs;
} lf_dpo_config;
LF_API lf_status lf_dpo_config_read(lf_dpo_config *c, const lf_doc *doc);
// The `orpo` section (TRL's ORPOConfig): beta (0.1, the odds-ratio weight TRL and the paper call
// lambda), max_prompt_length (512), max_length (1024); the other fields keep their defaults.
LF_API lf_status lf_orpo_config_read(lf_dpo_config *c, const lf_doc *doc);

typedef struct lf_pref_pairs {
    int n;
    const double *pc, *pr;  // [n] the policy's summed log-probs (ORPO: averaged per token)
    const double *rc, *rr;  // [n] the reference's; may be NULL when reference_free (and for ORPO)
    const int *nc, *nr;     // [n] completion lengths in tokens (IPO); NULL: 1
} lf_pref_pairs;

// What TRL logs per step, means over the pairs: rewards/chosen, rewards/rejected,
// rewards/accuracies (chosen reward > rejected), rewards/margins, logps/chosen, logps/rejected;
// ORPO adds log_odds_ratio (mean logsigmoid of the log odds), log_odds_chosen (their mean) and
// nll_loss (lf_orpo_grads).
typedef struct lf_pref_stats {
    double loss, rewards_chosen, rewards_rejected, accuracies, margins, logps_chosen, logps_rejected;
    double log_odds_ratio, log_odds_chosen, nll_loss;
} lf_pref_stats;

// lf_dpo_loss — the mean loss over the pairs and its gradient: dpc[i], dpr[i] = d mean / d pc[i],
// d pr[i] (the reference is constant); either may be NULL.
//   returns  LF_OK | LF_ERR_CONFIG (beta <= 0, label_smoothing outside [0, 0.5), an unknown loss
//            type; the field named) | LF_ERR_ARG (no pairs; no reference without reference_free)
//   threads  safe
LF_API lf_status lf_dpo_loss(const lf_dpo_desc *d, const lf_pref_pairs *p, double *dpc, double *dpr, lf_pref_stats *st);
// lf_orpo_loss — ORPO's odds-ratio term over pairs of average per-token log-probs:
// -beta * mean(logsigmoid(log odds(pc) - log odds(pr))), log odds(p) = p - log(1 - e^p); the
// trainer adds the chosen rows' NLL (lf_orpo_grads). Gradients as lf_dpo_loss.
//   returns  LF_OK | LF_ERR_CONFIG (orpo.beta <= 0) | LF_ERR_ARG (no pairs; a log-prob >= 0)
LF_API lf_status lf_orpo_loss(float beta, const lf_pref_pairs *p, double *dpc, double *dpr, lf_pref_stats *st);

// lf_dpo_grads — DPO's loss and gradients for one micro-batch of pairs (section 6's objective
// head): rows [0, B/2) are the chosen samples, rows [B/2, B) the rejected ones in the same order,
// labels masking the prompts (lf_data_encode_pair, or a DPO dataset's batcher). Pairs whose rows
// score nothing are padding and left out. ref[B] holds the reference model's summed log-probs
// per row; NULL takes them from this model with its adapters switched off (a LoRA policy's
// base: no second model). The gradients of the loss, times weight (1 / the micro-batches of an
// optimizer step, as HF's Trainer scales them), are added; weight 0 only evaluates (no
// gradients, no dropout). st gets the loss and TRL's metrics.
//   returns  LF_OK | LF_ERR_ARG (B odd; not training; no adapters to switch off with ref NULL
//            and not reference_free) | as lf_dpo_loss and lf_model_train_grads
//   threads  not safe on the same m
LF_API lf_status lf_dpo_grads(lf_model *m, const lf_dpo_desc *d, const lf_train_batch *b, const double *ref, float weight,
                              lf_pref_stats *st);
// lf_dpo_ref_logps — ref[B]: each row's summed log-probs with the adapters switched off (the
// reference of a LoRA policy; without adapters, the model itself). Once per dataset for
// precompute_ref_log_probs.
//   returns  LF_OK | as lf_model_train_logps
LF_API lf_status lf_dpo_ref_logps(lf_model *m, const lf_train_batch *b, double *ref);
// lf_orpo_grads — ORPO on a micro-batch laid out as lf_dpo_grads': the chosen rows' NLL plus
// lf_orpo_loss on the completions' per-token average log-probs; no reference. The NLL is the
// mean over every target of the chosen rows, prompt and completion, as TRL 1.16's ORPOTrainer
// and the ORPO authors' code (disable_prompt_loss off) take it. st->nll_loss gets the NLL,
// st->loss the sum. weight 0 evaluates, as lf_dpo_grads.
//   returns  as lf_dpo_grads
LF_API lf_status lf_orpo_grads(lf_model *m, float beta, const lf_train_batch *b, float weight, lf_pref_stats *st);

// Distillation: the student learns from a frozen teacher that shares its tokenizer, through a
// loss on its whole rows of logits (section 6's head):
//   loss = alpha * mean CE(S_i, y_i) + (1 - alpha) * T^2 * mean KL(p_i || q_i)
// over the positions i with a target y_i (the mean divides by n_scored, as the causal LM does),
// q_i = softmax(S_i / T) over the whole vocabulary, and p_i the teacher's distribution at
// temperature T on its top-k ids, renormalized: p_i(v) = softmax(lp_i / T) over the k ids, lp_i
// its log-probs at temperature 1 (k = V: softmax(Z_i / T), the whole distribution). alpha weighs
// the hard labels (HF's knowledge-distillation guide calls 1 - alpha lambda); the T^2 keeps the
// KL's gradient on the scale of the CE's (Hinton et al.). The student keeps its whole vocabulary
// at top-k (as DistillKit's sparse KL does; TRL's server distillation renormalizes both).
typedef struct lf_kd_desc {
    float alpha;        // 0.5
    float temperature;  // 2.0
} lf_kd_desc;
LF_API lf_kd_desc lf_kd_desc_default(void);

// The teacher's top-k log-probs (temperature 1) at each of n positions, largest first (k = V:
// all of them, in id order).
typedef struct lf_kd_targets {
    int k;
    const int32_t *ids;  // [n, k]
    const float *logp;   // [n, k]
} lf_kd_targets;

typedef struct lf_kd_stats {
    double loss;    // as defined above, plus the features' term
    double ce, kl;  // their means over the scored positions (before the weights)
    double feat;    // the features' term (weighted)
    int64_t n;      // scored positions
} lf_kd_stats;

// Feature distillation: the student's hidden states after some of its layers are pulled toward
// the teacher's after corresponding layers, through a learned projection W [Ct, Cs] where the
// widths differ (identity where they agree), the term added to the loss above:
//   feat = weight * sum over the pairs of  sum_i m_i ||W h_s,i - h_t,i||^2 / (Ct * sum_i m_i)
// m_i = 1 at real tokens (padding takes none). W trains with the student: register it with
// lf_model_train_extra before lf_model_train_begin. With gradient accumulation each micro-batch's
// term is weighted by its share of the step's scored positions.
typedef struct lf_kd_features {
    int n;                               // layer pairs
    const int *student_layer;            // [n]
    const float *const *teacher_hidden;  // [n] [B*T, Ct]: the teacher's layer outputs at the micro-batch's positions
    float *const *proj;                  // [n] W [Ct, Cs], NULL where Ct == Cs (identity)
    const char *const *proj_name;        // [n] the names W was registered under
    const uint8_t *mask;                 // [B*T] 1: a real token
    int Ct;
    float weight;
} lf_kd_features;
// lf_kd_feature_loss — one pair on N rows: h_s [N, Cs], h_t [N, Ct], W [Ct, Cs] (NULL: identity),
// mask [N]: *loss = sum_i m_i ||W h_s,i - h_t,i||^2 / (Ct * sum_i m_i); its gradient times scale
// is added to dhs [N, Cs] and dW [Ct, Cs] (either may be NULL).
//   threads  safe
LF_API void lf_kd_feature_loss(const float *hs, const float *ht, const float *W, const uint8_t *mask, int64_t N, int Cs, int Ct,
                               double scale, double *loss, float *dhs, float *dW);

// lf_kd_loss — the loss on logits S [N, V] with targets y [N] (-100: none) and the teacher's
// targets for the same N positions; dS (may be NULL) gets d loss / d S. n_div: the mean's divisor
// (0: the scored positions).
//   returns  LF_OK | LF_ERR_CONFIG (alpha outside [0, 1], temperature <= 0) | LF_ERR_ARG (k
//            outside [1, V], an id outside [0, V))
//   threads  safe
LF_API lf_status lf_kd_loss(const lf_kd_desc *d, const float *S, const int32_t *y, int N, int V, const lf_kd_targets *t, int n_div,
                            float *dS, lf_kd_stats *st);
// lf_kd_teacher_topk — the teacher's top-k log-probs at each of the n positions of one sequence
// (kv slot 0 is reset; chunks of the model's max_tokens): ids[n, k], logp[n, k]; hidden (may be
// NULL): [L], where not NULL [n, C] gets that layer's outputs (feature distillation).
//   returns  LF_OK | LF_ERR_ARG (k outside [1, V]) | as lf_model_forward | LF_ERR_NOMEM
//   threads  not safe on the same teacher or kv
LF_API lf_status lf_kd_teacher_topk(lf_model *teacher, lf_kv *kv, const int32_t *tokens, int n, int k, int32_t *ids, float *logp,
                                    float *const *hidden);
// lf_kd_grads — the student's loss on a micro-batch (section 6) against the teacher's targets
// for its B*T positions (position p's targets are the teacher's at p), and the features' term
// (f may be NULL); gradients added. lf_kd_eval: the same without gradients (no dropout).
//   returns  LF_OK | as lf_kd_loss and lf_model_train_grads
//   threads  not safe on the same m
LF_API lf_status lf_kd_grads(lf_model *m, const lf_kd_desc *d, const lf_train_batch *b, const lf_kd_targets *t, const lf_kd_features *f,
                             lf_kd_stats *st);
LF_API lf_status lf_kd_eval(lf_model *m, const lf_kd_desc *d, const lf_train_batch *b, const lf_kd_targets *t, const lf_kd_features *f,
                            lf_kd_stats *st);
// A config's `distill` section: teacher (a model directory sharing the student's tokenizer;
// required unless logits_file), temperature (2.0), alpha (0.5), top_k (0: the whole vocabulary),
// teacher_quantization (none | nf4 | int8: the frozen teacher held quantized), logits_file (the
// teacher's targets from `largeforge generate logits`: no teacher is loaded), feature_layers (a
// list of [student layer, teacher layer] pairs, at most 16, teacher layers distinct: feature
// distillation, which needs the teacher loaded), feature_weight (1.0). Strings point into doc.
typedef struct lf_kd_config {
    lf_kd_desc kd;
    const char *teacher, *logits_file;
    int top_k;
    int teacher_quant_bits;  // 0, 4 (nf4) or 8 (int8)
    int n_features;
    int feature_layers[16][2];
    float feature_weight;
} lf_kd_config;
//   returns  LF_OK | LF_ERR_CONFIG (the file and "distill.key" named; unknown keys refused)
LF_API lf_status lf_kd_config_read(lf_kd_config *c, const lf_doc *doc);

// == 10. data (API) ==============================================================================
// threads: readers, datasets and batchers are safe on distinct objects; a dataset is read-only
// once open, so several batchers may share it.
//
// ON DATASETS: a dataset file is JSON Lines (one object per line; blank lines are skipped), a
// JSON array of objects (whatever the extension: the first non-blank byte decides), or a .txt
// file, which is ONE text document (the whole file). Records are read one at a time with memory
// bounded by max_record_bytes, so files larger than memory stream. The format comes from the
// first record's keys (in this order: conversations, messages, chosen+rejected, instruction+
// output, prompt+completion, text) and every later record must have its fields. Each error
// names file:line (of the record's first byte in a JSON array) and the field:
//   "train.jsonl:17: field 'output': expected a string, got number".
// Conversions: Alpaca is [user, assistant] with the user message instruction + "\n\n" + input
// (input absent or empty: the instruction alone), as Stanford Alpaca joins them. ShareGPT's
// from human/user, gpt/assistant, system become those roles. Prompt/completion and DPO fields
// are strings, or lists of messages (all of a record's fields alike).

typedef enum lf_data_format {
    LF_DATA_AUTO = 0,               // detect from the first record
    LF_DATA_ALPACA = 1,             // instruction, input (optional), output
    LF_DATA_SHAREGPT = 2,           // conversations: [{from, value}]
    LF_DATA_MESSAGES = 3,           // messages: [{role, content}] (OpenAI)
    LF_DATA_PROMPT_COMPLETION = 4,  // prompt, completion (TRL)
    LF_DATA_DPO = 5,                // prompt, chosen, rejected
    LF_DATA_TEXT = 6                // text (and .txt files)
} lf_data_format;

LF_API const char *lf_data_format_name(lf_data_format f);  // "alpaca", "sharegpt", ...; safe
// "auto", "alpaca", "sharegpt", "messages", "prompt_completion", "dpo", "text"; LF_ERR_ARG otherwise.
LF_API lf_status lf_data_format_from_name(const char *name, lf_data_format *out);

// A field that is a string or a list of chat messages.
typedef struct lf_data_field {
    const char *text;          // the string; NULL for a list
    const lf_chat_msg *msgs;   // the list; NULL for a string
    int n_msgs;
} lf_data_field;

// One record, as read. Everything it points to belongs to the reader until the next call.
typedef struct lf_data_record {
    lf_data_format format;
    const char *file;          // the reader's name, for messages
    int64_t index;             // 0-based record number in the file
    int64_t line;              // 1-based line of the record's first byte
    const lf_chat_msg *msgs;   // ALPACA, SHAREGPT, MESSAGES: the conversation; PROMPT_COMPLETION
    int n_msgs;                //   with lists: prompt then completion messages
    lf_data_field prompt;      // PROMPT_COMPLETION, DPO
    lf_data_field completion;  // PROMPT_COMPLETION
    lf_data_field chosen, rejected;  // DPO
    const char *text;          // TEXT
    size_t text_len;
} lf_data_record;

// A streaming reader. Must not move after lf_data_open; the fields ending in _ are private.
typedef struct lf_data_reader {
    char name[1024];           // the path (or the memory source's name) used in messages
    lf_data_format format;     // as asked, then as detected from the first record
    int64_t format_line;       // the line the format was detected at (0 until then)
    lf_data_record rec;        // the current record
    void *file_;
    const unsigned char *src_;
    size_t src_len_, src_pos_, max_bytes_;
    unsigned char *buf_;
    char *text_;
    size_t text_len_, text_cap_;
    char *joined_;
    size_t joined_cap_;
    lf_chat_msg *msgs_;
    size_t msgs_cap_;
    lf_doc doc_;
    int64_t line_, index_;
    int kind_, state_;
} lf_data_reader;

// lf_data_open — start reading a dataset file (.jsonl, .json, .txt).
//   format           LF_DATA_AUTO: from the first record; a .txt file is LF_DATA_TEXT
//   max_record_bytes longest line (JSON array: record; .txt: file); 0: LF_MAX_DATA_RECORD_BYTES
//   returns  LF_OK | LF_ERR_IO | LF_ERR_FORMAT (empty file; neither JSON Lines nor an array)
//            | LF_ERR_ARG (a format a .txt file cannot have) | LF_ERR_NOMEM
//   threads  safe on distinct objects
LF_API lf_status lf_data_open(lf_data_reader *r, const char *path, lf_data_format format, size_t max_record_bytes);
// The same over bytes in memory (kept, not copied); name is used in messages and decides .txt.
LF_API lf_status lf_data_open_memory(lf_data_reader *r, const void *data, size_t len, const char *name,
                                     lf_data_format format, size_t max_record_bytes);
// lf_data_next — the next record: *rec points at r->rec, or is NULL at the end of the file.
//   returns  LF_OK | LF_ERR_FORMAT (file:line, field; JSON Lines and well-formed array items
//            are skipped, so the next call goes on with the following record: a validator can
//            list every bad one) | LF_ERR_IO | LF_ERR_NOMEM
//   threads  not safe on the same r
LF_API lf_status lf_data_next(lf_data_reader *r, const lf_data_record **rec);
LF_API void lf_data_close(lf_data_reader *r);  // safe on zeroed or closed objects

// Whether record `index` belongs to the validation split: a hash of (seed, index) below ratio.
// It needs no other record, so it streams, and it is the same on every run and machine.
LF_API bool lf_data_is_validation(uint64_t seed, int64_t index, double ratio);  // safe

// lf_data_encode — a record's SFT sample (lf_sft_encode_chat / lf_sft_encode_text by format).
//   returns  as those, with file:line prepended | LF_ERR_UNSUPPORTED (DPO records: the
//            preference objectives read them)
LF_API lf_status lf_data_encode(const lf_sft_desc *d, const lf_data_record *rec, lf_sft_sample *out);
// lf_data_encode_pair — a DPO record's two samples: the chosen and the rejected completion after
// the same prompt, the prompt masked in both (strings: as prompt/completion text, EOS appended;
// message lists: rendered with the chat template, the completions' assistant turns trained).
// Truncation, as the product's DPOConfig has it: a prompt over max_prompt_length keeps its last
// max_prompt_length tokens (TRL 0.x's tokenize_row), then each sample keeps its first
// max_length tokens (TRL's keep_start); both samples keep the same prompt tokens.
//   returns  as lf_data_encode | LF_ERR_ARG (not a DPO record)
LF_API lf_status lf_data_encode_pair(const lf_sft_desc *d, const lf_data_record *rec, lf_sft_sample *chosen,
                                     lf_sft_sample *rejected);

typedef struct lf_data_stats {
    int64_t records;          // records read
    int64_t samples;          // samples kept
    int64_t tokens;           // tokens in the samples
    int64_t trained_tokens;   // labels that are not LF_IGNORE_INDEX
    int64_t truncated;        // samples cut at max_length
    int64_t dropped;          // records left with no trained token (no assistant turn, all cut)
    int64_t prefix_mismatch;  // turns, see lf_sft_sample
    int64_t realigned;        // turns, see lf_sft_sample
} lf_data_stats;

typedef struct lf_dataset_desc {
    const char *path;            // required: .jsonl, .json or .txt
    lf_data_format format;       // default: detected from the first record
    const lf_tokenizer *tok;     // required
    lf_chat_template chat;       // default: the tokenizer's template
    unsigned chat_flags;         // default 0; e.g. LF_CHAT_NO_THINKING
    int max_length;              // default 0: no limit (pretraining documents are never cut)
    int max_prompt_length;       // DPO data: default 0: no limit (lf_data_encode_pair)
    double validation_split;     // default 0: none; in [0, 1)
    uint64_t seed;               // of the split (0 is a seed like any other)
    const char *cache_dir;       // default NULL: no cache; created when missing (one level)
    const char *tokenizer_path;  // required with cache_dir: what tok was opened from (file or dir)
    size_t max_record_bytes;     // default LF_MAX_DATA_RECORD_BYTES
} lf_dataset_desc;

typedef enum lf_dataset_cache {
    LF_DATASET_CACHE_OFF = 0,      // no cache_dir
    LF_DATASET_CACHE_WRITTEN = 1,  // tokenized and written to cache_path
    LF_DATASET_CACHE_HIT = 2,      // mapped from cache_path
    LF_DATASET_CACHE_REBUILT = 3   // cache_path was damaged (cache_error says how) and rewritten
} lf_dataset_cache;

// ON THE CACHE: <cache_dir>/<key>.lfds, key the SHA-256 (hex) of the dataset file's bytes,
// tokenizer.json's and tokenizer_config.json's bytes, the format, template, chat flags,
// max_length, the library version and the encoding version. The file is a 256-byte header
// {"LFDS", version, counts, format, stats, key, checksum (SHA-256 of the rest)}, then per sample
// its tokens then its labels (int32), then offsets [n+1] and record indices [n] (int64), all
// little-endian. It is written atomically; every open checks the whole file (sizes, checksum,
// offsets, ids < n_vocab, labels) and rebuilds a damaged one. The split is not in the key:
// changing validation_split or seed reuses the cache.
//
// ON PAIRS: DPO data gives two samples per record, the chosen one (index 2k) and the rejected one
// (2k + 1), with the same record index, so a pair is never split between train and validation. A
// pair either of whose samples has no token left to train on is dropped (stats.dropped counts
// records; stats.samples counts both samples of each pair kept).

// The encoded samples of a dataset file, in file order, and its train/validation split. Must
// not move after lf_dataset_open. Arrays are views of one block (the mapped cache or memory).
typedef struct lf_dataset {
    lf_data_format format;     // as detected
    int64_t n;                 // samples
    const int64_t *offsets;    // [n + 1] sample i has offsets[i+1] - offsets[i] tokens
    const int64_t *record;     // [n] the record each sample came from (0-based, file order)
    int64_t n_train, n_val;
    const int64_t *train;      // [n_train] sample indices, increasing
    const int64_t *val;        // [n_val]
    int32_t eos_id;            // the tokenizer's (-1 if none): the default pad id
    lf_data_stats stats;       // of the build (a cache hit reads them from the file)
    lf_dataset_cache cache;
    char cache_path[1024];
    char cache_error[256];     // why a cache was rebuilt
    const int32_t *data_;      // per sample: tokens then labels
    lf_mmap map_;
    void *mem_;
    int64_t *split_;
} lf_dataset;

// lf_dataset_open — read, encode and split a dataset, or map its cache.
//   returns  LF_OK | LF_ERR_CONFIG (desc field named) | LF_ERR_IO | LF_ERR_FORMAT (file:line,
//            field) | LF_ERR_NOMEM
//   threads  safe on distinct objects
LF_API lf_status lf_dataset_open(lf_dataset *ds, const lf_dataset_desc *desc);
LF_API void lf_dataset_close(lf_dataset *ds);  // safe on zeroed or closed objects
// Sample i's tokens and labels ([*n] each; views into ds). i must be in [0, ds->n).
LF_API void lf_dataset_sample(const lf_dataset *ds, int64_t i, const int32_t **tokens, const int32_t **labels, int *n);

// -- 10.5 batches
//
// ON BATCHES: a batcher cuts one split into [B, T] batches of tokens, labels and positions, in
// an order shuffled per epoch from (seed, epoch), so a position (epoch, index) saved after any
// batch resumes the same sequence exactly. Modes:
//   LF_PACK_NONE     one sample per row, cut at T; padding: pad id, label -100, positions go on
//                    (every row's positions are 0..T-1).
//   LF_PACK_SAMPLES  samples laid end to end in a row while they fit (in order: a sample that
//                    does not fit starts the next row; one longer than T is cut at T), each
//                    with positions from 0 and its first label -100, so no sample is trained to
//                    follow another (HF's DataCollatorWithFlattening). The model must keep
//                    attention inside each run of positions starting at 0. Padding at a row's
//                    end is a run of its own (pad id, label -100, positions from 0).
//   LF_PACK_CONCAT   the split's samples (pretraining documents, each ending in EOS) in file
//                    order, concatenated and cut into blocks of T (HF's group_texts; the last,
//                    partial block is dropped), labels as encoded (= tokens for text),
//                    positions 0..T-1; blocks are shuffled.
// An epoch's last batch may have fewer rows (*rows < B); the rest is padding.
// A DPO dataset's items are pairs (LF_PACK_NONE only, B even): rows [0, B/2) hold the chosen
// samples and rows [B/2, B) the rejected ones of the same pairs in the same order; a last batch
// of fewer pairs pads both halves (*rows counts the rows holding data, twice the pairs).

typedef enum lf_pack { LF_PACK_NONE = 0, LF_PACK_SAMPLES = 1, LF_PACK_CONCAT = 2 } lf_pack;
typedef enum lf_data_split { LF_SPLIT_TRAIN = 0, LF_SPLIT_VALIDATION = 1 } lf_data_split;

// Zero is meaningful for seed and pad_id, so start from lf_batch_desc_default().
typedef struct lf_batch_desc {
    int B, T;              // required: rows per batch, tokens per row
    lf_pack pack;          // LF_PACK_NONE
    lf_data_split split;   // LF_SPLIT_TRAIN
    bool shuffle;          // true
    uint64_t seed;         // 0
    int32_t pad_id;        // -1: the dataset's eos_id (0 when it has none)
} lf_batch_desc;
LF_API lf_batch_desc lf_batch_desc_default(void);

typedef struct lf_batcher {
    lf_batch_desc d;
    const lf_dataset *ds;
    int64_t n;              // items per epoch: the split's samples, or (CONCAT) blocks
    int64_t epoch, index;   // position: the next item of this epoch's order (save to resume)
    int64_t *sample;        // [B] after lf_batcher_next: each row's dataset sample (the first of a
                            // packed row), -1 for padding and CONCAT blocks
    int64_t *order_;        // [n] the order of order_epoch_
    int64_t order_epoch_;
    int64_t *cum_;          // CONCAT: [n_docs + 1] token offsets of the split's samples
} lf_batcher;

// lf_batcher_init — batches of ds's split; the position starts at (0, 0). ds is kept.
//   returns  LF_OK | LF_ERR_CONFIG (B, T, pack, split, pad_id; pairs with packing or B odd) |
//            LF_ERR_ARG (empty split) | NOMEM
LF_API lf_status lf_batcher_init(lf_batcher *b, const lf_dataset *ds, const lf_batch_desc *d);
// lf_batcher_next — fill the next batch and advance the position (to (epoch + 1, 0) after an
// epoch's last batch).
//   tokens, labels, pos  [B, T] int32 out
//   rows     out: rows holding data (B but for an epoch's last batch)
//   returns  LF_OK | LF_ERR_NOMEM (the new epoch's order)
//   threads  not safe on the same b
LF_API lf_status lf_batcher_next(lf_batcher *b, int32_t *tokens, int32_t *labels, int32_t *pos, int *rows);
// Sets the position (from a checkpoint). returns LF_OK | LF_ERR_ARG (index > n or epoch < 0)
LF_API lf_status lf_batcher_seek(lf_batcher *b, int64_t epoch, int64_t index);
// Batches and rows in an epoch (with packing they depend on the epoch's order).
LF_API lf_status lf_batcher_count(const lf_batcher *b, int64_t epoch, int64_t *batches, int64_t *rows);
LF_API void lf_batcher_deinit(lf_batcher *b);  // safe on zeroed objects

// A training config's `data` section (configs/sft.yaml): train_file (required),
// validation_file, format (auto), validation_split (0), max_length (512), packing (false),
// template (default: the tokenizer's), cache_dir (NULL when absent; `largeforge train` then uses
// $LARGEFORGE_HOME/datasets, else ~/.largeforge/datasets). Strings point into the document.
typedef struct lf_data_config {
    const char *train_file, *validation_file, *cache_dir;
    lf_data_format format;
    double validation_split;
    int max_length;
    bool packing;
    lf_chat_template chat;
} lf_data_config;
//   returns  LF_OK | LF_ERR_CONFIG (the file and "data.key" named; unknown keys refused)
LF_API lf_status lf_data_config_read(lf_data_config *d, const lf_doc *doc);

// -- 10.7 teacher targets for offline distillation
//
// ON THE TARGETS FILE: a safetensors file holding, for every sample of a dataset (both splits,
// in the dataset's order), the teacher's top-k log-probs at each of its positions
// (lf_kd_teacher_topk): "ids" I32 [P, k], "logp" F32 [P, k], "offsets" I64 [n + 1] (sample i
// has positions [offsets[i], offsets[i+1])); metadata: format "largeforge-kd-targets", k,
// teacher, and dataset (the SHA-256 of every sample's tokens), which a student's dataset must
// match. Written atomically.
#ifndef LF_NO_STDIO
// lf_kd_targets_write — run the teacher once over every sample of ds (kv: one slot of at least
// the longest sample) and write the file. progress (may be NULL) gets (samples done, total).
//   returns  LF_OK | LF_ERR_IO | as lf_kd_teacher_topk | LF_ERR_NOMEM
LF_API lf_status lf_kd_targets_write(const char *path, const lf_dataset *ds, lf_model *teacher, lf_kv *kv, int k, const char *teacher_name,
                                     void (*progress)(void *user, int64_t done, int64_t total), void *user);
typedef struct lf_kd_file {
    lf_st_file st;
    int k;
    int64_t n;                // samples
    const int64_t *offsets;   // [n + 1]
    const int32_t *ids;       // [P, k]
    const float *logp;        // [P, k]
} lf_kd_file;
// lf_kd_file_open — map a targets file made for ds (the same tokens, sample for sample).
//   returns  LF_OK | LF_ERR_IO | LF_ERR_FORMAT (not a targets file; its shapes or offsets; made
//            for another dataset: the message says so)
LF_API lf_status lf_kd_file_open(lf_kd_file *f, const char *path, const lf_dataset *ds);
LF_API void lf_kd_file_close(lf_kd_file *f);
#endif

// -- 10.8 synthetic data: quality filters and near-duplicates
//
// ON WORDS: both checks read a text as words: runs of bytes between ASCII whitespace (space,
// \t \n \v \f \r; every byte >= 0x80 is a word byte, so no Unicode space splits), A-Z lower-cased,
// ASCII punctuation (!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~) stripped from both ends; a run that is all
// punctuation is no word. "Hello, World!" and "hello world" are the same two words.
//
// ON NEAR-DUPLICATES: MinHash with LSH banding, as datasketch's MinHashLSH. A text's shingles are
// its runs of `shingle` consecutive words (a text of fewer words is one shingle, all of them; a
// text of no words has none). Each shingle's 64-bit hash x goes through num_perm hashes
// ((a*x + b) mod (2^61 - 1)) & 0xFFFFFFFF, a in [1, p), b in [0, p) drawn from lf_rng(seed); the
// signature keeps each one's minimum. The share of equal minima between two signatures estimates
// the Jaccard similarity of the shingle sets (standard error sqrt(J(1-J)/num_perm); two texts of
// no words estimate 1). Signatures are cut into `bands` bands of r = num_perm / bands rows; texts
// sharing a band are candidates, and a candidate whose estimate is >= threshold is a duplicate.
// The default bands are the fewest b (dividing num_perm) for which a pair at the threshold is a
// candidate with probability 1 - (1 - t^r)^b >= 0.99: 16 bands of 8 for 128 and 0.85. (The band
// count whose S-curve midpoint (1/b)^(1/r) is nearest t, 8 of 16 at 0.88, would miss 54% of
// pairs at J = 0.85 and 19% at J = 0.9; extra candidates only cost a signature comparison.)
// Memory: num_perm * 4 + 8 bytes per kept text, and 8 bytes per band table slot (at most half
// full: n_kept * bands entries).

typedef struct lf_dedup_desc {
    int shingle;       // default 5: words per shingle (<= 64)
    int num_perm;      // default 128: hash functions (<= 65536)
    int bands;         // default: see above; must be <= num_perm (num_perm % bands rows unused)
    double threshold;  // default 0.85: estimated Jaccard at or above which a text is a duplicate
    uint64_t seed;     // of the hash functions (0 is a seed like any other)
} lf_dedup_desc;

// Texts added one at a time; the fields ending in _ are private.
typedef struct lf_dedup {
    lf_dedup_desc d;   // resolved
    int64_t n_added;   // calls to lf_dedup_add that succeeded
    int64_t n_kept;    // texts kept (not duplicates)
    uint64_t *perm_;   // [2, num_perm] a then b
    uint32_t *sig_;    // [n_kept, num_perm]
    int64_t *id_;      // [n_kept] each kept text's index among the added ones
    uint64_t *tab_;    // band table: band key's high 32 bits << 32 | (kept index + 1); 0 empty
    size_t sig_cap_, id_cap_, tab_cap_, tab_n_;
} lf_dedup;

// lf_dedup_init — an empty set of texts. desc NULL: all defaults.
//   returns  LF_OK | LF_ERR_CONFIG (the field named) | LF_ERR_NOMEM
//   threads  safe on distinct objects
LF_API lf_status lf_dedup_init(lf_dedup *dd, const lf_dedup_desc *desc);
// lf_dedup_add — whether text is a near-duplicate of a kept text; keeps it when it is not.
//   dup_of   out: -1 (kept), or the index (0-based count of earlier successful adds) of the kept
//            text with the highest estimate (ties: the earliest)
//   returns  LF_OK | LF_ERR_ARG (text NULL with len > 0) | LF_ERR_CAPACITY (2^32 - 1 kept texts)
//            | LF_ERR_NOMEM (nothing changed)
//   threads  not safe on the same dd
LF_API lf_status lf_dedup_add(lf_dedup *dd, const char *text, size_t len, int64_t *dup_of);
// The text's MinHash signature into sig[num_perm]; safe.
LF_API void lf_dedup_signature(const lf_dedup *dd, const char *text, size_t len, uint32_t *sig);
// The share of equal entries of two signatures: the Jaccard estimate; safe.
LF_API double lf_dedup_similarity(const lf_dedup *dd, const uint32_t *a, const uint32_t *b);
LF_API void lf_dedup_deinit(lf_dedup *dd);  // safe on zeroed or released objects

// ON QUALITY: checks in the enum's order; the verdict is the first that fails. EMPTY: no byte
// but whitespace. TOO_SHORT / TOO_LONG: n_tokens against the limits. REPETITIVE: the share of
// n-grams equal to an earlier n-gram of the same text is above max_repeat_fraction (Gopher's
// duplicate n-gram check, by count). The n-grams are of words (ON WORDS; n = repeat_ngram) when
// the text has at least 2n words; otherwise, so that loops with no word boundaries ("!!!!!!!!",
// "hahaha", text in scripts without spaces) are caught, of code points with whitespace left out
// (n = 2 * repeat_ngram; a code point is a lead byte >= 0xC0 and the continuation bytes
// 0x80-0xBF after it, at most 3, or any other single byte). A loop with no spaces after 2n words
// or more is one word to the word check: max_tokens bounds it. A degenerate loop cut at the
// length limit is REPETITIVE, not UNFINISHED. UNFINISHED: generation stopped at the length limit
// (finished false).

typedef enum lf_quality {
    LF_QUALITY_OK = 0,
    LF_QUALITY_EMPTY = 1,
    LF_QUALITY_TOO_SHORT = 2,
    LF_QUALITY_TOO_LONG = 3,
    LF_QUALITY_REPETITIVE = 4,
    LF_QUALITY_UNFINISHED = 5
} lf_quality;
LF_API const char *lf_quality_name(lf_quality q);  // "ok", "empty", "too_short", "too_long", "repetitive", "unfinished"; safe

typedef struct lf_quality_desc {
    int min_tokens;              // default 1
    int max_tokens;              // default 0: no limit
    int repeat_ngram;            // default 3: n of the repetition check (<= 32)
    double max_repeat_fraction;  // default 0.3; 1 turns the check off
    bool allow_unfinished;       // default false: an answer cut at the length limit is UNFINISHED
} lf_quality_desc;

// lf_quality_check — the verdict on one generated answer. desc NULL: all defaults.
//   n_tokens  the answer's token count (the caller tokenizes)
//   finished  generation ended by itself (EOS or a stop string), not at the length limit
//   returns   LF_OK | LF_ERR_CONFIG (the field named) | LF_ERR_ARG (text NULL with len > 0,
//             n_tokens < 0) | LF_ERR_NOMEM (the n-gram set: 16 bytes per n-gram at most)
//   threads   safe
LF_API lf_status lf_quality_check(const lf_quality_desc *desc, const char *text, size_t len, int64_t n_tokens,
                                  bool finished, lf_quality *verdict);

// == 11. quant (API) =============================================================================
// threads: lf_gptq is safe; lf_quant_model is not safe on the same model.
//
// ON CALIBRATED QUANTIZATION: GPTQ and AWQ quantize each layer's projections to Q4 knowing the
// inputs those projections really see, taken from calibration token sequences run through the
// model layer by layer. The residual stream of every sample is kept between layers, so each
// layer runs a few times over the samples instead of the model running once per layer.
//  - GPTQ (auto_gptq's fasterquant, tests/ref/gptq_ref.py): H = 2 X^T X / n of a projection's
//    inputs; columns quantized in blocks of 128 in order (act order: by decreasing H diagonal),
//    each column's rounding error fed into the columns after it through the upper Cholesky
//    factor of H^-1 (H damped by damp_percent of its mean diagonal). Group parameters are
//    taken, as auto_gptq takes them, from the weight as updated by the previous blocks. Inputs
//    of layer l come from the already quantized layers before it; within a layer q/k/v, o,
//    gate/up and down are quantized in that order, each seeing its inputs through the ones
//    before it (auto_gptq's true_sequential). LargeForge's one change: each group's scale is
//    rounded to f16 (what the checkpoint stores) before its codes are made, so the error fed
//    back is the stored weight's.
//  - AWQ (AutoAWQ's search): per input channel the mean |x|; for q/k/v (scaled against
//    input_layernorm), o (against v, when they have the same shape), gate/up (against
//    post_attention_layernorm) and down (against up) a grid of 20 exponents r picks the channel
//    scales s = mean|x|^r / (mean of the group-normalized |w|)^(1 - r), normalized by
//    sqrt(max s min s), that minimize the mean squared error of the group's projection outputs
//    (AutoAWQ measures the enclosing module's output; we take the projections', as the search
//    over them is what the scales change); the scales move into the norm or the previous
//    projection (the model computes the same function), then a search of clipping ranges (10
//    steps down to half the range, per output row and group; not for q and k)
//    and AWQ's asymmetric round-to-nearest (the group's [min, max], no zero forced in).
//    Layer l's inputs come from the unquantized layers before it, as in AutoAWQ.
// Every error these searches minimize, and the report's, counts every calibration token
// exactly, through the inputs' second moments (section 11.2).

typedef enum lf_quant_method { LF_QUANT_RTN = 0, LF_QUANT_GPTQ = 1, LF_QUANT_AWQ = 2 } lf_quant_method;

typedef struct lf_gptq_desc {
    int group_size;       // default 128; -1: one group per row
    bool asym;            // default: symmetric (auto_gptq's sym=True)
    bool desc_act;        // act order
    double damp_percent;  // default 0.01; in (0, 1)
} lf_gptq_desc;

// lf_gptq — GPTQ one weight W [rows, cols] (f32) given H [cols, cols] (the inputs' 2 X^T X / n,
// f64) into out (Q4, owning its arrays; g_idx set under desc_act with groups).
//   returns  LF_OK | LF_ERR_ARG (a bad desc field or shape, NaN/Inf in W or H, H not positive
//            definite after damping: message says so) | LF_ERR_NOMEM
LF_API lf_status lf_gptq(lf_qtensor *out, const float *W, int64_t rows, int64_t cols, const double *H,
                         const lf_gptq_desc *d);

typedef struct lf_quant_desc {
    lf_quant_method method;
    lf_qtensor_desc q;          // the format: RTN any; GPTQ and AWQ: LF_QTYPE_Q4 (q.blocksize the
                                // group, -1 a whole row; q.asym; AWQ is always asymmetric)
    lf_gptq_desc gptq;          // GPTQ's options (group_size and asym come from q)
    bool no_true_sequential;    // GPTQ: a layer's four input groups collected in one pass
    bool no_clip;               // AWQ: skip the clipping search
    const int32_t *const *samples;  // calibration token sequences (required for GPTQ and AWQ;
    const int *sample_len;          // optional for RTN: they give the per-projection errors)
    int n_samples;              // each 1..m->max_tokens tokens long
    int (*progress)(void *user, int layer, int layers);  // optional, after each layer; non-zero cancels
    void *user;
} lf_quant_desc;

// lf_quant_model — quantize every layer's seven projections of m (as lf_model_quantize leaves
// them; AWQ also rescales norms, v and up) by d. err, when given, gets per projection [L, 7]
// the relative output error ||X Wq'^T - X W^T||^2 / ||X W^T||^2 on the calibration tokens (X the
// projection's inputs at that point, Wq' the quantized weight with AWQ's scales undone); NaN
// without samples.
//   returns  LF_OK | LF_ERR_ARG (training, quantized or adapted model, bad desc or sample: named)
//            | LF_ERR_NOMEM | LF_ERR_CANCELLED (the model is then unusable: close it)
LF_API lf_status lf_quant_model(lf_model *m, const lf_quant_desc *d, double *err);

// Where a quantized model goes (the layouts: section 11.3). LargeForge's loads back with
// lf_model_open (run, serve and QLoRA training use it); GPTQ's and AWQ's take Q4 weights and are
// what transformers, optimum and vLLM load.
typedef enum lf_quant_layout { LF_QLAYOUT_LARGEFORGE = 0, LF_QLAYOUT_GPTQ = 1, LF_QLAYOUT_AWQ = 2 } lf_quant_layout;

// lf_quant_save — write quantized m (lf_model_quantize, lf_quant_model, or opened quantized) to
// dir: model.safetensors with the projections in layout and the rest as in m's checkpoint, the
// model's other files, config.json with a quantization_config (d, optional, says how the
// weights were made: method, GPTQ's options).
//   returns  LF_OK | LF_ERR_ARG (not quantized; a weight the layout cannot hold: named) | LF_ERR_IO | NOMEM
#ifndef LF_NO_STDIO
LF_API lf_status lf_quant_save(const lf_model *m, const char *dir, lf_quant_layout layout, const lf_quant_desc *d);
#endif

// GGUF export.
//
// ON GGUF: lf_gguf_write writes what llama.cpp's convert_hf_to_gguf.py writes for a
// LlamaForCausalLM, MistralForCausalLM or Qwen2ForCausalLM directory (tests/ref/README_gguf.md:
// the tensors come out byte for byte the same, and llama.cpp's logits match ours):
//  - general.architecture "llama" (llama and mistral) or "qwen2", the hyperparameters under that
//    prefix (key_length/value_length always), general.sampling.* from the model's
//    generation_config.json (llama.cpp's default sampling); tensors token_embd, output_norm,
//    output (left out when tied: llama.cpp reuses token_embd), blk.N.attn_norm / attn_q /
//    attn_k / attn_v / attn_output / ffn_norm / ffn_gate / ffn_up / ffn_down (.weight, and .bias
//    where the model has biases); dims in ggml's order (innermost first), data aligned to 32.
//  - llama.cpp's "llama" rotates pairs (2i, 2i+1) of a head where transformers rotates
//    (i, i + HS/2), so attn_q and attn_k rows (and their biases) are reordered per head, as
//    convert's LlamaModel.permute does; qwen2 rotates like transformers and is written as it is.
//  - rope scaling: linear as rope.scaling.type/factor; llama3 as the tensor rope_freqs.weight
//    [HS/2] of per-frequency divisors. Mistral's sliding window has no key in the llama
//    architecture and is left out, as convert does: llama.cpp attends past the window (the
//    same logits over the first sliding_window positions).
//  - LF_GGUF_F32 / F16 / BF16: every 2-d weight in that type (f16 and bf16 rounded to nearest
//    even, as numpy and torch round). LF_GGUF_Q8_0 / Q4_0: the seven projections in that type
//    (lf_ggml_quantize, gguf-py's quantizer bit for bit); token_embd and output in Q8_0 in both
//    (llama-quantize would make output.weight Q6_K, which we do not have). A weight whose rows
//    are not a multiple of 32 long goes in F16, as gguf-py falls back. Norms, biases and
//    rope_freqs are F32. A projection held quantized (lf_model_quantize) is written from the
//    values its matmul uses, except that Q8_0 or Q4_0 blocks going into a file of their own type
//    are copied as they are (no second rounding: the file equals the one made from the f32
//    model).
// lf_gguf_write_lora writes the adapters as convert_lora_to_gguf.py does: general.type "adapter",
// adapter.type "lora", adapter.lora.alpha, tensors blk.N.<name>.weight.lora_a (A [r, in]) and
// .lora_b (B [out, r], its rows reordered like the weight's for llama's attn_q and attn_k).
// llama.cpp scales by alpha / r: for rsLoRA (alpha / sqrt(r)) the file carries alpha * sqrt(r),
// where convert writes alpha and llama.cpp then applies the wrong scale.
// Both stream into path.tmp.XXXXXX, fsync it and rename it over path: a reader sees the old file
// or the new one, never a torn one. Integers and tensor data are little-endian. The same model,
// adapters and desc give a byte-identical file.

typedef enum lf_gguf_type {
    LF_GGUF_DEFAULT = 0,  // models: BF16 when the embedding is BF16, else F16 (convert's --outtype
                          // auto); adapters: F32 (convert_lora_to_gguf.py's default)
    LF_GGUF_F32 = 1,
    LF_GGUF_F16 = 2,
    LF_GGUF_BF16 = 3,
    LF_GGUF_Q8_0 = 4,     // models only
    LF_GGUF_Q4_0 = 5      // models only
} lf_gguf_type;

typedef struct lf_gguf_desc {
    lf_gguf_type type;          // default: see lf_gguf_type
    const char *tokenizer_dir;  // tokenizer.json [+ tokenizer_config.json, chat_template.jinja];
                                // default: the model's directory
    const char *name;           // general.name; default: the model directory's last component
} lf_gguf_desc;

#ifndef LF_NO_STDIO
// lf_gguf_write — the model's weights as they are now (trained, merged) as a GGUF file that
// llama.cpp runs; adapters are not folded in (lf_lora_merge first, or lf_gguf_write_lora).
//   d        NULL: all defaults
//   tokenizer  byte-level BPE: tokenizer.ggml.model "gpt2", the merges, and as .pre the
//            llama.cpp pre-tokenizer that splits text as tokenizer.json's pre_tokenizer does:
//              ByteLevel (GPT-2's regex; lf_tok_train's tokenizers)         "gpt-2"
//              Split(Llama-3's regex) + ByteLevel, ignore_merges            "llama-bpe"
//              Split(Llama-3's regex) + ByteLevel                           "dbrx"
//              Split(Qwen2's regex) + ByteLevel                             "qwen2"
//              Digits(individual_digits) + ByteLevel (SmolLM)               "smollm"
//            SentencePiece-style BPE (byte_fallback, "▁" by normalizer or Metaspace): "llama",
//            .pre "default", with scores that make llama.cpp's SentencePiece merger follow the
//            merges: minus the rank of the first merge making a piece (convert gives every piece
//            -1000, with which llama.cpp tokenizes text differently from HF).
//            Token types: added tokens that are special or look it (<|...|>) control, other
//            added ones user-defined, <0xXX> byte (SentencePiece-style), ids past the
//            tokenizer's up to vocab_size "[PAD<id>]" unused. bos/eos/unknown/padding ids from
//            tokenizer_config.json (else config.json's bos/eos); add_bos_token/add_eos_token from
//            the post-processor (else tokenizer_config.json, else false); tokenizer.chat_template
//            from tokenizer_config.json or chat_template.jinja.
//            llama.cpp applies no NFC normalizer (Qwen's): text NFC changes may tokenize
//            differently there.
//   returns  LF_OK | LF_ERR_ARG (NULL, bad desc.type) | LF_ERR_IO (names the file) |
//            LF_ERR_FORMAT | LF_ERR_CONFIG (a tokenizer or generation_config.json field, named) |
//            LF_ERR_UNSUPPORTED (what llama.cpp cannot express, named: a pre-tokenizer, qwen2
//            with heads * head_dim != hidden_size or llama3 rope) | LF_ERR_NOMEM
//   threads  safe alongside other readers of m (forward passes); not while m trains or changes
LF_API lf_status lf_gguf_write(const lf_model *m, const char *path, const lf_gguf_desc *d);

// lf_gguf_write_lora — the adapters on m (section 7) as a llama.cpp LoRA GGUF, to run on the
// file lf_gguf_write makes of the base. d->type F32 (default), F16 or BF16; d->tokenizer_dir is
// not used.
//   returns  LF_OK | LF_ERR_ARG (no adapters; NULL; another type) | LF_ERR_IO | LF_ERR_NOMEM
//   threads  as lf_gguf_write
LF_API lf_status lf_gguf_write_lora(const lf_model *m, const char *path, const lf_gguf_desc *d);
#endif


// == 12. generate (API) ==========================================================================
// threads: lf_sample is safe on distinct rng/work buffers; lf_generate as lf_model_forward.

#ifndef LF_MAX_STOP
#define LF_MAX_STOP 16  // stop strings a config may list
#endif

// Sampling, applied in transformers' order: repetition penalty, temperature, top-k, top-p,
// min-p, then a draw. temperature 0 is greedy (argmax; ties go to the lowest id).
typedef struct lf_sampler {
    float temperature;          // 0: greedy
    int top_k;                  // 0: off
    float top_p;                // 1: off
    float min_p;                // 0: off
    float repetition_penalty;   // 1: off; > 1 penalizes every token already in the context
    uint64_t seed;
} lf_sampler;

typedef enum lf_finish { LF_FINISH_NONE = 0, LF_FINISH_STOP = 1, LF_FINISH_LENGTH = 2, LF_FINISH_CANCELLED = 3 } lf_finish;

// Called with each piece of text as it becomes final (never a partial UTF-8 character, never
// part of a stop string); return false to stop generating.
typedef bool (*lf_token_fn)(void *user, int32_t id, const char *text, size_t len);

typedef struct lf_gen_desc {
    lf_sampler sampling;        // lf_gen_desc_default(): temperature 0.7, top_k 50, top_p 0.9
    int max_tokens;             // default 256
    const char *const *stop;    // stop strings (not included in the output)
    int n_stop;
    int32_t eos_ids[8];         // default (n_eos 0): config.json's eos_token_id; lf_gen_desc_load
    int n_eos;                  //   fills these from generation_config.json
    bool ignore_eos;
    lf_token_fn on_token;       // optional streaming callback
    bool (*should_stop)(void *user);  // optional; checked before every token
    void *user;
    bool logprobs;              // record each generated token's log-probability (lf_gen_result)
    int top_logprobs;           // and the log-probabilities of the n most likely tokens (0 to 20)
    const char *stop_[LF_MAX_STOP];    // storage for stop strings read from a config
} lf_gen_desc;

// The product's defaults (SRS: max_tokens 256, temperature 0.7, top_p 0.9, top_k 50).
LF_API lf_gen_desc lf_gen_desc_default(void);
// Overlays generation_config.json from a model dir (temperature, top_k, top_p, min_p,
// repetition_penalty, eos_token_id; "do_sample": false makes it greedy) as vLLM does: the
// sampling fields are defaults even where do_sample is absent (transformers would be greedy
// there). An absent file changes nothing; a bad one changes nothing and returns LF_ERR_CONFIG.
LF_API lf_status lf_gen_desc_load(lf_gen_desc *d, const char *model_dir);

typedef struct lf_gen_result {
    char *text;                 // generated text, NUL-terminated; freed by lf_gen_result_deinit
    size_t len;
    int32_t *ids;               // [n_gen] generated ids
    int n_prompt, n_gen;
    lf_finish finish;
    double prompt_s, gen_s;     // seconds spent in prefill and in decoding
    // with d.logprobs: [n_gen] log softmax of the model's logits (before penalties and
    // temperature) at each generated id; [n_gen, top_logprobs] the most likely ids, best first
    float *logprobs, *top_logprobs;
    int32_t *top_ids;
    int n_top;
} lf_gen_result;
LF_API void lf_gen_result_deinit(lf_gen_result *r);

// Reads the `generation` section of a config (configs/generation.yaml): max_tokens,
// temperature, top_k, top_p, min_p, repetition_penalty, seed, stop (a list), ignore_eos. Fields
// left out keep their value in d; an unknown or ill-typed field is LF_ERR_CONFIG naming it.
// The stop strings point into doc, which must outlive d. A doc without the section is fine.
LF_API lf_status lf_gen_desc_from_config(lf_gen_desc *d, const lf_doc *doc);

// lf_sample — pick the next token from logits [V] (modified in place).
//   history  the context so far (for the repetition penalty)   borrowed
//   work     scratch of V int32                                 borrowed
LF_API int32_t lf_sample(const lf_sampler *s, float *logits, int V, const int32_t *history, int n_history,
                         lf_rng *rng, int32_t *work);

// lf_generate — prefill prompt into KV slot seq (from position 0) and decode until EOS, a stop
// string, max_tokens, the KV capacity or a cancellation.
//   returns  LF_OK | LF_ERR_CANCELLED (res holds what was made) | LF_ERR_CAPACITY (prompt too long)
//   threads  not safe on the same m or kv
LF_API lf_status lf_generate(lf_model *m, lf_kv *kv, int seq, const lf_tokenizer *tok, const int32_t *prompt,
                             int n_prompt, const lf_gen_desc *d, lf_gen_result *res);

// -- 12.3 batches

// lf_gen_seed — the sampler seed of item `index` of a run seeded with `seed`: an item's draws
// depend on its own index, never on the batch it ran in, and lf_generate with this seed
// reproduces it. safe.
LF_API uint64_t lf_gen_seed(uint64_t seed, uint64_t index);

// One sequence of lf_generate_batch.
typedef struct lf_gen_item {
    const int32_t *prompt;  // [n_prompt] ids                                        borrowed
    int n_prompt;
    lf_sampler sampling;    // this item's sampler and seed (e.g. d->sampling, seed lf_gen_seed(seed, i))
    lf_gen_result res;      // out: as lf_generate's; free with lf_gen_result_deinit
    lf_status status;       // out: LF_OK, or why this item failed
    char error[256];        // out: the message when status != LF_OK
} lf_gen_item;

// lf_generate_batch — generate for n prompts, up to min(kv->max_seqs, m->max_tokens) at a time,
// each in its own KV slot: a prompt is prefilled alone (in chunks of max_tokens; one equal to a
// prompt started in the same step copies that slot's cache and logits instead), then every
// decoding step is one lf_model_forward over the next token of every active sequence; a finished
// sequence's slot takes the next prompt. Per sequence, EOS, stop strings, max_tokens and the KV
// capacity end it exactly as in lf_generate, so with the same sampler an item's ids and text are
// lf_generate's. (On CPU bit for bit while fewer than 8 sequences decode together: from 8 rows on
// the matmul takes its packed kernel, whose f32 sums round differently, see 3.1; a sampled token
// can then differ where two candidates are within rounding.)
//   d        stops, eos, max_tokens and should_stop (asked once per step, before starting a
//            prompt or sampling) apply to every item; d->sampling and d->on_token are not used
//            (each item has its sampler; streaming is lf_generate's)
//   on_done  optional: called with d->user as item i's res and status become final
//   returns  LF_OK, also when items failed alone: an empty prompt (LF_ERR_ARG), one that does not
//            fit the context (LF_ERR_CAPACITY), one the model refuses (an id outside the vocab:
//            LF_ERR_ARG) | LF_ERR_CANCELLED | LF_ERR_NOMEM or a decoding step's forward error;
//            then every unfinished item has that status, and res what it had made
//   threads  not safe on the same m or kv
LF_API lf_status lf_generate_batch(lf_model *m, lf_kv *kv, const lf_tokenizer *tok, const lf_gen_desc *d,
                                   lf_gen_item *items, int n, void (*on_done)(void *user, int i));

// -- 12.4 scoring

// lf_score_logprobs — sum[i] = the sum over response i of log p(resp[i][t] | prompt, resp[i][0..t))
// under m (f32 logits, log-softmax in double): A/B judging by the teacher. The prompt is
// prefilled once into KV slot seq, then each response runs after it in chunks of max_tokens with
// the logits of every position.
//   resp     [n] responses of n_resp[i] > 0 ids each                                   borrowed
//   returns  LF_OK | LF_ERR_ARG (an empty prompt or response, a bad slot or id) | LF_ERR_CAPACITY
//            (n_prompt + n_resp[i] - 1 positions do not fit the KV's context) | LF_ERR_NOMEM
//   threads  not safe on the same m or kv
LF_API lf_status lf_score_logprobs(lf_model *m, lf_kv *kv, int seq, const int32_t *prompt, int n_prompt,
                                   const int32_t *const *resp, const int *n_resp, int n, double *sum);

// -- 12.5 synthetic data (SRS 3.1.1 SyntheticDataGenerator)
//
// ON SYNTHETIC DATA: a teacher answers prompts; the answers are checked, filtered and deduplicated.
//  - Prompting. A base model is prompted completion-style, as the product's pipeline found works:
//    3 or 4 demonstrations drawn at random (without repetition, never one whose instruction is the
//    prompt's) from a pool, then the prompt, in LF_CHAT_PLAIN with no chat template ("Instruction:
//    X\nResponse: Y\nEND\n" each, ending "Instruction: <prompt>\nResponse:"), stopped at "\nEND"
//    or "\nInstruction:". Demonstrations are dropped, last first, while the prompt leaves fewer
//    than max_tokens positions of the context (summary.fewer_shots counts such prompts). An
//    instruct model gets [system] + the prompt as a user turn in its chat template (the plain
//    format's stops too, when that is its template: a model SFT-trained in it). A model is
//    base when its tokenizer has no chat_template (or desc.chat is LF_CHAT_PLAIN), unless
//    desc.prompting says otherwise (a config's `base: true` / `base: false`).
//  - Seeds. Prompt i's sampler seed is lf_gen_seed(seed, i) (preferences: response j's is
//    lf_gen_seed(lf_gen_seed(seed, i), j)), its demonstrations come from a second stream of the
//    same; results do not depend on batch_size (see lf_generate_batch for the CPU caveat).
//  - Failures. A prompt that is empty, does not fit the context, cannot be tokenized, or that the
//    model or desc.check refuses, becomes a FAILED record with its status and message (logged at
//    LF_LOG_WARN without the prompt text) and the run goes on. Out of memory ends the run.
//  - Answers are trimmed of whitespace. Filters, in order: desc.check (optional), section 10's
//    quality verdict (n_tokens = the answer's tokens; unfinished = ended at the length limit),
//    then near-duplicates (MinHash, section 10) over "instruction\nanswer", in prompt order: the
//    first of a group is kept.
//  - Preferences. num_responses answers per prompt at temperatures spread evenly over
//    temperature_range. Each distinct answer is scored by the teacher: its length-normalized
//    log-probability after the prompt (lf_score_logprobs / tokens; the answer encoded without
//    special tokens, after a space in the plain format, as "Response: Y" writes it). Without a
//    verifier (or for a prompt without a reference) chosen is the best-scored answer that passes
//    the quality filter and rejected the worst-scored other answer. With a verifier and a
//    reference, chosen is the best-scored accepted answer that passes the filter and rejected the
//    best-scored refused one (the teacher's most confident wrong answer); no contrast, no pair.
//    Verifiers, on the trimmed answer and reference:
//      EXACT    equal bytes (verify_first_line: the answer's first line, trimmed);
//      REGEX    the reference is a pattern (the tokenizer's regex engine: classes, \d \w \s \p{..},
//               groups, (?i), lookahead, counted repeats) that must occur in the answer; a leading
//               ^ or trailing $ anchors the whole pattern at the start or end of the answer (so
//               ^a|b$ reads as ^(?:a|b)$); a bad pattern fails that prompt;
//      COMMAND  verify_argv runs (no shell) with the answer on stdin, LF_PROMPT and LF_REFERENCE
//               in its environment, stdout to /dev/null; exit 0 accepts. After verify_timeout_s
//               its process group is killed and the answer counts as refused (summary
//               verify_timeouts). A command that cannot start ends the run (LF_ERR_IO).
//    Extra negatives (desc.negatives) add pairs for each kept prompt, with the same chosen answer:
//    TRUNCATED its first half (whole words, when it has two or more), OTHER the chosen answer of
//    another kept prompt (drawn from the prompt's stream). Extra pairs follow the sampled ones.
//  - Output: kept records only, JSON Lines or one JSON array, in Alpaca or messages form (data),
//    DPO with strings or message lists (preferences); all of them read back with lf_data_open.

typedef enum lf_synth_prompting {
    LF_SYNTH_PROMPT_AUTO = 0,     // base when the template is plain (see above)
    LF_SYNTH_PROMPT_CHAT = 1,     // instruct: the chat template
    LF_SYNTH_PROMPT_FEWSHOT = 2   // base: demonstrations in the plain format
} lf_synth_prompting;

typedef enum lf_verify { LF_VERIFY_NONE = 0, LF_VERIFY_EXACT = 1, LF_VERIFY_REGEX = 2, LF_VERIFY_COMMAND = 3 } lf_verify;

enum { LF_SYNTH_NEG_TRUNCATED = 1, LF_SYNTH_NEG_OTHER = 2 };  // lf_synth_desc.negatives, or-ed

// A prompt, or a demonstration (reference = its answer).
typedef struct lf_synth_prompt {
    const char *instruction;
    const char *reference;    // the reference answer; NULL: none
} lf_synth_prompt;

typedef struct lf_synth_desc {
    lf_model *model;                   // required: the teacher
    const lf_tokenizer *tok;           // required: its tokenizer
    const lf_gen_desc *gen;            // default NULL: lf_gen_desc_default(); its sampling.seed seeds
                                       //   the run; no eos anywhere: the tokenizer's
    const char *system;                // optional system prompt (base: the plain format's first line)
    int batch_size;                    // default 8: sequences decoded together
    lf_synth_prompting prompting;      // default: AUTO
    lf_chat_template chat;             // default: the tokenizer's
    const lf_synth_prompt *demos;      // base: the pool of demonstrations           borrowed
    int n_demos;
    int shots;                         // default 0: 3 or 4 at random per prompt (at most n_demos)
    lf_quality_desc quality;           // default: section 10's
    lf_dedup_desc dedup;               // default: section 10's
    bool keep_duplicates;              // default false: near-duplicates are removed
    // preferences only
    int num_responses;                 // default 2 (2..64)
    float temperature_range[2];        // default {0.5, 1.0} when both are 0
    lf_verify verify;                  // default NONE: log-prob judging only
    bool verify_first_line;            // EXACT: compare the answer's first line
    const char *const *verify_argv;    // COMMAND: program and arguments, NULL-terminated
    double verify_timeout_s;           // COMMAND: default 10
    unsigned negatives;                // LF_SYNTH_NEG_*: extra pairs; default 0: none
    // callbacks, all optional, all given user
    void (*progress)(void *user, int done, int total);  // total: prompts (x num_responses)
    bool (*should_stop)(void *user);   // checked between decoding steps: LF_ERR_CANCELLED
    // An outside check of each raw answer (a safety classifier; tests use it to make a teacher fail
    // on chosen prompts): a status other than LF_OK fails that prompt with the message it set.
    lf_status (*check)(void *user, int index, const char *answer, size_t len);
    void *user;
} lf_synth_desc;

typedef enum lf_synth_verdict {
    LF_SYNTH_KEPT = 0,
    LF_SYNTH_FAILED = 1,     // status and error say why
    LF_SYNTH_FILTERED = 2,   // quality says why (preferences: of the best answer)
    LF_SYNTH_DUPLICATE = 3,  // dup_of names the record it repeats
    LF_SYNTH_NO_PAIR = 4     // preferences: no two answers to tell apart (error says why)
} lf_synth_verdict;
LF_API const char *lf_synth_verdict_name(lf_synth_verdict v);  // "kept", "failed", ...; safe

typedef struct lf_synth_record {
    int index;                 // the prompt's
    lf_synth_verdict verdict;
    lf_quality quality;
    lf_status status;          // FAILED: why
    char *error;               // FAILED, NO_PAIR: the message; else NULL
    char *instruction;         // the prompt as given
    char *output;              // the answer; preferences: the chosen one (NULL when there is none)
    char *rejected;            // preferences
    double chosen_score, rejected_score;  // preferences: length-normalized log-probabilities
    int kind;                  // preferences: 0 sampled pair, else the LF_SYNTH_NEG_* of an extra one
    int n_tokens;              // the answer's (preferences: the chosen one's) tokens
    lf_finish finish;          // data: how generation ended
    int dup_of;                // DUPLICATE: the record index it repeats; else -1
} lf_synth_record;

typedef struct lf_synth_summary {
    int prompts, records;
    int kept, failed, filtered, duplicates, no_pair;  // records by verdict
    int filtered_by[6];        // FILTERED records by lf_quality
    int extra_pairs;           // kept extra negatives (included in kept)
    int fewer_shots;           // prompts given fewer demonstrations than asked, to fit the context
    int verify_timeouts;
    int64_t generated_tokens;
    double seconds;
} lf_synth_summary;

typedef struct lf_synth_result {
    lf_synth_record *recs;     // [n], records of prompt order (extra pairs after the others)
    int n;
    lf_synth_summary sum;
    bool preferences;
    bool fewshot;              // prompted as a base model (few-shot, plain format)
    char *system;              // the system prompt used (messages formats), or NULL
} lf_synth_result;
LF_API void lf_synth_result_deinit(lf_synth_result *r);  // safe on zeroed objects

// lf_synth_generate — instruction data: one answer per prompt.
//   returns  LF_OK (prompts may have failed: see the records) | LF_ERR_ARG, LF_ERR_CONFIG (desc
//            field named) | LF_ERR_UNSUPPORTED (a chat_template we do not render) |
//            LF_ERR_CANCELLED (out holds every record; unfinished prompts FAILED, cancelled) |
//            LF_ERR_NOMEM (out is empty)
//   threads  not safe on the same model; safe otherwise
LF_API lf_status lf_synth_generate(const lf_synth_desc *d, const lf_synth_prompt *prompts, int n, lf_synth_result *out);
// lf_synth_preferences — DPO pairs (see ON SYNTHETIC DATA). Returns as lf_synth_generate, and
// LF_ERR_IO when the verifier command cannot start.
LF_API lf_status lf_synth_preferences(const lf_synth_desc *d, const lf_synth_prompt *prompts, int n,
                                      lf_synth_result *out);
// lf_synth_render — the prompt text item index gets (before tokenization), e.g. to show it.
//   text     out: NUL-terminated, *len bytes, free with lf_free
//   returns  LF_OK | as lf_synth_generate's desc checks | LF_ERR_ARG (an empty instruction)
LF_API lf_status lf_synth_render(const lf_synth_desc *d, int index, const char *instruction, char **text, size_t *len);

typedef enum lf_synth_format {
    LF_SYNTH_FORMAT_DEFAULT = 0,  // ALPACA for instruction data, DPO for preferences
    LF_SYNTH_ALPACA = 1,          // {"instruction", "input": "", "output"} (no system prompt)
    LF_SYNTH_MESSAGES = 2,        // {"messages": [[system], user, assistant]}
    LF_SYNTH_DPO = 3,             // {"prompt", "chosen", "rejected"} strings
    LF_SYNTH_DPO_MESSAGES = 4     // the same as message lists ([system] user; assistant)
} lf_synth_format;
// "default", "alpaca", "messages", "dpo", "dpo_messages"; LF_ERR_ARG otherwise.
LF_API lf_status lf_synth_format_from_name(const char *name, lf_synth_format *out);

// lf_synth_serialize — the kept records in format f, as JSON Lines or (json_array) one array.
//   out      NUL-terminated, *len bytes, free with lf_free
//   returns  LF_OK | LF_ERR_ARG (a preference format for instruction data or the reverse) | NOMEM
LF_API lf_status lf_synth_serialize(const lf_synth_result *r, lf_synth_format f, bool json_array, char **out,
                                    size_t *len);
// The same written atomically to path. returns as lf_synth_serialize | LF_ERR_IO
LF_API lf_status lf_synth_write(const lf_synth_result *r, lf_synth_format f, bool json_array, const char *path);

// Prompts (or demonstrations) from a file: .txt: one per non-blank line (no reference); else JSON
// Lines or a JSON array of strings (prompts) or objects with instruction (and input, joined by
// "\n\n" as Alpaca) or prompt, and optionally reference (else output) as the reference answer.
// Errors name file:line (array: the item) and field. Strings live in p->mem_.
typedef struct lf_synth_prompts {
    lf_synth_prompt *items;
    int n;
    char *mem_;
} lf_synth_prompts;
LF_API lf_status lf_synth_load(lf_synth_prompts *p, const char *path);
LF_API void lf_synth_prompts_deinit(lf_synth_prompts *p);  // safe on zeroed objects

#ifndef LF_MAX_VERIFY_ARGS
#define LF_MAX_VERIFY_ARGS 32  // words of a verifier command in a config
#endif

// A synthetic-data config (configs/synth.yaml): model {name, base, template, threads}, synth
// {prompts, output, format, json, system, batch_size, demonstrations, shots, quality {min_tokens,
// max_tokens, repeat_ngram, max_repeat_fraction, allow_unfinished}, dedup {enabled, threshold,
// shingle, num_perm, bands, seed}, preferences {num_responses, temperature_range, negatives
// (truncated, other_prompt), verifier (none, exact, regex, command), first_line, command (a list),
// timeout}}. The generation section is lf_gen_desc_from_config's. Strings point into the doc;
// desc.verify_argv points into c. Unknown keys are errors.
typedef struct lf_synth_config {
    const char *model, *prompts, *output, *demonstrations;
    int threads;                 // default 0: all cores
    lf_synth_format format;
    bool json;
    lf_synth_desc desc;          // the fields a config sets; model, tok, gen, demos left NULL
    const char *argv_[LF_MAX_VERIFY_ARGS + 1];
} lf_synth_config;
//   returns  LF_OK | LF_ERR_CONFIG (file and section.key named)
LF_API lf_status lf_synth_config_read(lf_synth_config *c, const lf_doc *doc);

// -- 12.6 the serving engine
//
// ON THE ENGINE: requests are submitted from any thread and run on the engine's thread
// (lf_engine_run, or lf_engine_step in a loop of the caller's). Each step is one forward pass
// (continuous batching): first one token of every sequence that is decoding, so the weights are
// read once per step for all of them, then prompt tokens of sequences still prefilling, at most
// prefill_chunk per step, so a long prompt never stalls the streams already running (chunked
// prefill). A request joins at a step boundary when a KV slot is free and the paged cache holds
// blocks for its whole worst case (prompt + max_tokens): a running request never waits for
// memory and is never preempted. Until then it waits in a bounded queue; a full queue, or a wait
// past queue_timeout_s, ends it with LF_ERR_BUSY (the server's 503). Finished and cancelled
// requests give their blocks back at once.
//   Prefix caching: every full block of prompt tokens, once computed, is kept (keyed by its tokens
// and the block before it) until its memory is needed; a request whose prompt starts with cached
// blocks (a shared system prompt) maps them instead of computing them again.
//   Batch invariance: decoding rows always take the decode matmul kernels and prompt rows the
// prefill ones (lf__model_forward's n_dot), every other operation is per row, and each request
// samples from its own seeded generator, so a request's tokens are the same bits whether it runs
// alone or beside others, whatever the chunking, and whether its prefix came from the cache.

typedef struct lf_engine lf_engine;

typedef struct lf_engine_desc {
    lf_model *model;             // required; the engine uses it alone while it lives
    const lf_tokenizer *tok;     // required: streamed text and stop strings
    int max_batch;               // default 16: sequences in flight (KV slots)
    int max_seq_len;             // default: the model's
    size_t kv_budget_bytes;      // default: max_batch full contexts; rounded down to whole blocks
    int prefill_chunk;           // default 256: prompt tokens per step (capped by max_tokens)
    int max_queue;               // default 64 waiting requests
    double queue_timeout_s;      // default 30
    bool no_prefix_cache;
} lf_engine_desc;

typedef struct lf_engine_req {
    const int32_t *prompt;       // [n_prompt] ids, copied by lf_engine_submit
    int n_prompt;
    lf_gen_desc gen;             // sampling (and its seed), max_tokens, stop strings (copied),
                                 // eos, ignore_eos; gen.on_token streams text on the engine's
                                 // thread (returning false stops the request); should_stop unused
    // Called once, on the engine's thread, when the request ends: status LF_OK (res.finish says
    // how), LF_ERR_CANCELLED, LF_ERR_BUSY, or the error that ended it; res is freed on return.
    void (*on_done)(void *user, uint64_t id, lf_status status, const lf_gen_result *res);
    void *user;                  // given to gen.on_token (as gen.user) and on_done
} lf_engine_req;

typedef struct lf_engine_stats {
    int running, waiting, max_batch;
    int kv_blocks, kv_blocks_used, kv_blocks_cached;  // used: held by running requests
    int64_t prompt_tokens, cached_prompt_tokens;      // prefilled, and mapped from the cache
    int64_t generated_tokens, steps;
} lf_engine_stats;

//   returns  LF_OK | LF_ERR_ARG (desc field named) | LF_ERR_CAPACITY | LF_ERR_NOMEM
LF_API lf_status lf_engine_create(lf_engine **out, const lf_engine_desc *d);
LF_API void lf_engine_destroy(lf_engine *e);  // ends what is left as cancelled; safe on NULL
// Queues a request; *id names it. returns LF_OK | LF_ERR_ARG (an empty prompt, an id outside
// the vocabulary, an empty stop string) | LF_ERR_CAPACITY (the prompt leaves no room to
// generate in max_seq_len, or its worst case exceeds the whole KV budget) | LF_ERR_NOMEM.
// A full queue is not an error here: on_done gets LF_ERR_BUSY. threads: safe.
LF_API lf_status lf_engine_submit(lf_engine *e, const lf_engine_req *r, uint64_t *id);
// Ends request id at the next step boundary (on_done: LF_ERR_CANCELLED, res holding what was
// made); unknown or finished ids are ignored. threads: safe.
LF_API void lf_engine_cancel(lf_engine *e, uint64_t id);
// One step (admissions, one forward pass, sampling, callbacks). *busy: work remains.
//   returns  LF_OK | the forward pass's error (every running request has then ended with it)
//   threads  not safe: one engine thread
LF_API lf_status lf_engine_step(lf_engine *e, bool *busy);
// Steps until lf_engine_stop, sleeping while there is nothing to do. Requests still running or
// waiting then end cancelled. threads: as lf_engine_step.
LF_API lf_status lf_engine_run(lf_engine *e);
LF_API void lf_engine_stop(lf_engine *e);  // threads: safe
LF_API void lf_engine_get_stats(lf_engine *e, lf_engine_stats *st);  // threads: safe

#ifdef __cplusplus
}
#endif
#endif // LARGEFORGE_H

#ifdef LARGEFORGE_IMPLEMENTATION
#ifndef LF__IMPLEMENTATION_ONCE
#define LF__IMPLEMENTATION_ONCE
#define LF_IMPLEMENTATION_INCLUDED 1

#include <assert.h>
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifndef LF_NO_STDIO
#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif
#ifndef LF_NO_THREADS
#include <pthread.h>
#include <sched.h>
#include <unistd.h>
#endif
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif
#include <cjson/cJSON.h>

#if defined(LF_MALLOC) && defined(LF_REALLOC) && defined(LF_FREE)
#elif !defined(LF_MALLOC) && !defined(LF_REALLOC) && !defined(LF_FREE)
#define LF_MALLOC(sz) malloc(sz)
#define LF_REALLOC(p, sz) realloc(p, sz)
#define LF_FREE(p) free(p)
#else
#error "largeforge.h: define all of LF_MALLOC, LF_REALLOC and LF_FREE, or none of them"
#endif

#ifndef LF_ASSERT
#define LF_ASSERT(c) assert(c)
#endif
#ifndef LF_MAX_JSON_BYTES
#define LF_MAX_JSON_BYTES ((size_t)1 << 30)
#endif
#ifndef LF_MAX_ST_HEADER_BYTES
#define LF_MAX_ST_HEADER_BYTES ((uint64_t)100 << 20)
#endif
#ifndef LF_MAX_SHARDS
#define LF_MAX_SHARDS 1024
#endif

#if defined(__GNUC__) || defined(__clang__)
#define LF__PRINTF(a, b) __attribute__((format(printf, a, b)))
#define LF__INLINE static inline __attribute__((always_inline))
#else
#define LF__PRINTF(a, b)
#define LF__INLINE static inline
#endif
#ifdef __cplusplus
#define LF__TLS thread_local
#else
#define LF__TLS _Thread_local
#endif

#ifdef __cplusplus
#define LF__ZERO {}
#else
#define LF__ZERO {0}
#endif
#define LF__MIN(a, b) ((a) < (b) ? (a) : (b))
#define LF__MAX(a, b) ((a) > (b) ? (a) : (b))
#define LF__CEIL_DIV(a, b) (((a) + (b)-1) / (b))

// == 1. core (impl) ==============================================================================

static LF__TLS char lf__err[1024];

LF_API const char *lf_last_error(void) { return lf__err; }
LF_API const char *lf_version(void) { return LF_VERSION_STRING; }

LF_API const char *lf_status_str(lf_status s) {
    switch (s) {
    case LF_OK: return "LF_OK";
    case LF_ERR_ARG: return "LF_ERR_ARG";
    case LF_ERR_NOMEM: return "LF_ERR_NOMEM";
    case LF_ERR_IO: return "LF_ERR_IO";
    case LF_ERR_FORMAT: return "LF_ERR_FORMAT";
    case LF_ERR_SHAPE: return "LF_ERR_SHAPE";
    case LF_ERR_CONFIG: return "LF_ERR_CONFIG";
    case LF_ERR_UNSUPPORTED: return "LF_ERR_UNSUPPORTED";
    case LF_ERR_CAPACITY: return "LF_ERR_CAPACITY";
    case LF_ERR_CUDA: return "LF_ERR_CUDA";
    case LF_ERR_NET: return "LF_ERR_NET";
    case LF_ERR_CANCELLED: return "LF_ERR_CANCELLED";
    case LF_ERR_BUSY: return "LF_ERR_BUSY";
    }
    return "LF_ERR_UNKNOWN";
}

// Every failure goes through here: it records the message and returns the status.
static LF__PRINTF(2, 3) lf_status lf__fail(lf_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(lf__err, sizeof lf__err, fmt, ap);
    va_end(ap);
    return s;
}

// Prepends context ("loading models/x: ") to the current message, keeping the status.
static LF__PRINTF(2, 3) lf_status lf__wrap(lf_status s, const char *fmt, ...) {
    char head[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    size_t hn = strlen(head), cap = sizeof lf__err;
    if (hn + 3 >= cap) return s;
    size_t on = LF__MIN(strlen(lf__err), cap - hn - 3);  // the tail of a long message is cut
    memmove(lf__err + hn + 2, lf__err, on);
    memcpy(lf__err, head, hn);
    lf__err[hn] = ':', lf__err[hn + 1] = ' ', lf__err[hn + 2 + on] = 0;
    return s;
}

static struct {
    lf_log_fn fn;
    void *user;
    lf_log_level min;
} lf__logger;

LF_API void lf_log_set(lf_log_fn fn, void *user, lf_log_level min_level) {
    lf__logger.fn = fn;
    lf__logger.user = user;
    lf__logger.min = min_level;
}

static LF__PRINTF(3, 4) void lf__log(lf_log_level lvl, const char *module, const char *fmt, ...) {
    if (!lf__logger.fn || lvl < lf__logger.min) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    lf__logger.fn(lf__logger.user, lvl, module, msg);
}

static const char *lf__level_name(lf_log_level l) {
    static const char *names[] = {"debug", "info", "warn", "error"};
    return (unsigned)l < 4 ? names[l] : "?";
}

LF_API void lf_log_stderr(void *user, lf_log_level lvl, const char *module, const char *msg) {
    (void)user;
#ifndef LF_NO_STDIO
    fprintf(stderr, "[%s] %s: %s\n", lf__level_name(lvl), module, msg);
#else
    (void)lvl, (void)module, (void)msg;
#endif
}

LF_API void lf_log_jsonl(void *user, lf_log_level lvl, const char *module, const char *msg) {
#ifndef LF_NO_STDIO
    FILE *f = user ? (FILE *)user : stderr;
    fprintf(f, "{\"t\":%.6f,\"level\":\"%s\",\"module\":\"%s\",\"msg\":\"", (double)lf_time_ns() * 1e-9,
            lf__level_name(lvl), module);
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputs("\"}\n", f);
#else
    (void)user, (void)lvl, (void)module, (void)msg;
#endif
}

// A binary heap over an array of T, least first by LESS(const T *, const T *): NAME_up places x
// at index i (the caller has room and has counted it), NAME_pop takes the least of *n > 0.
#define LF__HEAP_DEFINE(NAME, T, LESS)                                                          \
    static void NAME##_up(T *h, size_t i, T x) {                                                \
        while (i > 0 && LESS(&x, &h[(i - 1) / 2])) h[i] = h[(i - 1) / 2], i = (i - 1) / 2;      \
        h[i] = x;                                                                               \
    }                                                                                           \
    static T NAME##_pop(T *h, size_t *n) {                                                      \
        T top = h[0], last = h[--*n];                                                           \
        size_t i = 0;                                                                           \
        for (;;) {                                                                              \
            size_t c = 2 * i + 1;                                                               \
            if (c >= *n) break;                                                                 \
            if (c + 1 < *n && LESS(&h[c + 1], &h[c])) c++;                                      \
            if (!LESS(&h[c], &last)) break;                                                     \
            h[i] = h[c], i = c;                                                                 \
        }                                                                                       \
        if (*n) h[i] = last;                                                                    \
        return top;                                                                             \
    }

// -- 1.1 allocation: the one choke point (R9)

static bool lf__mul_ok(size_t a, size_t b, size_t *out) {
    if (a && b > SIZE_MAX / a) return false;
    *out = a * b;
    return true;
}
static bool lf__add_ok(size_t a, size_t b, size_t *out) {
    if (b > SIZE_MAX - a) return false;
    *out = a + b;
    return true;
}

static void lf__fmt_bytes(char *buf, size_t n, double bytes) {
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (bytes >= 1024 && i < 4) bytes /= 1024, i++;
    snprintf(buf, n, "%.1f %s", bytes, u[i]);
}

static void *lf__alloc(size_t bytes, const char *what) {
    void *p = LF_MALLOC(bytes ? bytes : 1);
    if (!p) {
        char b[32];
        lf__fmt_bytes(b, sizeof b, (double)bytes);
        lf__fail(LF_ERR_NOMEM, "out of memory allocating %s for %s", b, what);
    }
    return p;
}
static void *lf__calloc(size_t n, size_t size, const char *what) {
    size_t bytes;
    if (!lf__mul_ok(n, size, &bytes)) {
        lf__fail(LF_ERR_NOMEM, "size overflow allocating %zu x %zu bytes for %s", n, size, what);
        return NULL;
    }
    void *p = lf__alloc(bytes, what);
    if (p) memset(p, 0, bytes);
    return p;
}
// Grows *p to hold n items of size (doubling); keeps *p on failure.
static bool lf__grow(void **p, size_t *cap, size_t n, size_t size, const char *what) {
    if (n <= *cap) return true;
    size_t c = *cap ? *cap : 16, bytes;
    while (c < n) c *= 2;
    if (!lf__mul_ok(c, size, &bytes)) {
        lf__fail(LF_ERR_NOMEM, "size overflow growing %s", what);
        return false;
    }
    void *q = LF_REALLOC(*p, bytes);
    if (!q) {
        char b[32];
        lf__fmt_bytes(b, sizeof b, (double)bytes);
        lf__fail(LF_ERR_NOMEM, "out of memory growing %s to %s", what, b);
        return false;
    }
    *p = q;
    *cap = c;
    return true;
}
static char *lf__strndup(const char *s, size_t n, const char *what) {
    char *p = (char *)lf__alloc(n + 1, what);
    if (p) memcpy(p, s, n), p[n] = 0;
    return p;
}

LF_API void lf_free(void *p) {
    if (p) LF_FREE(p);
}

// A growable byte buffer for building strings and files.
typedef struct lf__buf {
    char *data;
    size_t len, cap;
    bool failed;  // an append ran out of memory; the message is set
} lf__buf;

static void lf__buf_put(lf__buf *b, const void *s, size_t n) {
    if (b->failed) return;
    if (!lf__grow((void **)&b->data, &b->cap, b->len + n + 1, 1, "string buffer")) {
        b->failed = true;
        return;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
}
static void lf__buf_puts(lf__buf *b, const char *s) { lf__buf_put(b, s, strlen(s)); }
static void lf__buf_putc(lf__buf *b, char c) { lf__buf_put(b, &c, 1); }
// Appends s as a quoted JSON string.
static void lf__buf_json_str(lf__buf *b, const char *s, size_t n) {
    lf__buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') lf__buf_putc(b, '\\'), lf__buf_putc(b, (char)c);
        else if (c == '\n') lf__buf_puts(b, "\\n");
        else if (c < 0x20) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", c);
            lf__buf_puts(b, e);
        } else lf__buf_putc(b, (char)c);
    }
    lf__buf_putc(b, '"');
}
// The shortest decimal that reads back as the same float (0.1f as "0.1", not "0.100000001").
static const char *lf__fstr(char tmp[32], float v) {
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(tmp, 32, "%.*g", prec, (double)v);
        if (strtof(tmp, NULL) == v) break;
    }
    return tmp;
}
static LF__PRINTF(2, 3) void lf__buf_printf(lf__buf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof tmp) {
        lf__buf_put(b, tmp, (size_t)n);
        return;
    }
    char *big = (char *)lf__alloc((size_t)n + 1, "formatted string");
    if (!big) {
        b->failed = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    lf__buf_put(b, big, (size_t)n);
    LF_FREE(big);
}

// -- 1.2 arenas

LF_API lf_status lf_arena_init(lf_arena *a, size_t cap, const char *what) {
    memset(a, 0, sizeof *a);
    if (cap == 0) return LF_OK;
    size_t bytes;
    if (!lf__add_ok(cap, 63, &bytes)) return lf__fail(LF_ERR_NOMEM, "arena for %s: size overflow", what);
    bytes &= ~(size_t)63;
    a->base = (unsigned char *)LF_MALLOC(bytes);
    if (!a->base) {
        char b[32];
        lf__fmt_bytes(b, sizeof b, (double)bytes);
        return lf__fail(LF_ERR_NOMEM, "out of memory allocating %s for %s", b, what);
    }
    a->cap = bytes;
    return LF_OK;
}

LF_API void *lf_arena_alloc(lf_arena *a, size_t bytes) {
    if (bytes == 0) return NULL;  // a disabled buffer fails fast instead of aliasing another
    uintptr_t p = ((uintptr_t)a->base + a->used + 63) & ~(uintptr_t)63;
    size_t off = (size_t)(p - (uintptr_t)a->base);
    if (off > a->cap || bytes > a->cap - off) {
        lf__fail(LF_ERR_CAPACITY, "arena full: %zu bytes requested, %zu of %zu used", bytes, a->used, a->cap);
        return NULL;
    }
    a->used = off + bytes;
    return (void *)p;
}
LF_API size_t lf_arena_mark(const lf_arena *a) { return a->used; }
LF_API void lf_arena_reset(lf_arena *a, size_t mark) {
    if (mark <= a->used) a->used = mark;
}
LF_API void lf_arena_deinit(lf_arena *a) {
    if (a->base) LF_FREE(a->base);
    memset(a, 0, sizeof *a);
}

// -- 1.3 rng and time

static uint64_t lf__splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
LF_API void lf_rng_seed(lf_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = lf__splitmix64(&seed);
}
LF_API uint64_t lf_rng_u64(lf_rng *r) {
    uint64_t *s = r->s, x = s[1] * 5, res = ((x << 7) | (x >> 57)) * 9, t = s[1] << 17;
    s[2] ^= s[0], s[3] ^= s[1], s[1] ^= s[2], s[0] ^= s[3], s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return res;
}
LF_API float lf_rng_float(lf_rng *r) { return (float)(lf_rng_u64(r) >> 40) * (1.0f / 16777216.0f); }
LF_API float lf_rng_normal(lf_rng *r) {
    double u1 = ((double)(lf_rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740993.0);  // (0, 1]
    double u2 = (double)(lf_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

LF_API uint64_t lf_time_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

// SHA-256 per FIPS 180-4: 64 rounds per 64-byte block; the message ends with 0x80, zeros and
// its bit length, big-endian.
#define LF__ROR(x, r) (((x) >> (r)) | ((x) << (32 - (r))))
static void lf__sha256_block(uint32_t h[8], const unsigned char *b) {
    static const uint32_t k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01,
        0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
        0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
        0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08,
        0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
        0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
    uint32_t w[64], a[8];
    for (int i = 0; i < 16; i++) w[i] = (uint32_t)b[4 * i] << 24 | (uint32_t)b[4 * i + 1] << 16 | (uint32_t)b[4 * i + 2] << 8 | b[4 * i + 3];
    for (int i = 16; i < 64; i++)
        w[i] = w[i - 16] + (LF__ROR(w[i - 15], 7) ^ LF__ROR(w[i - 15], 18) ^ (w[i - 15] >> 3)) + w[i - 7] +
               (LF__ROR(w[i - 2], 17) ^ LF__ROR(w[i - 2], 19) ^ (w[i - 2] >> 10));
    memcpy(a, h, sizeof a);
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = a[7] + (LF__ROR(a[4], 6) ^ LF__ROR(a[4], 11) ^ LF__ROR(a[4], 25)) + ((a[4] & a[5]) ^ (~a[4] & a[6])) + k[i] + w[i];
        uint32_t t2 = (LF__ROR(a[0], 2) ^ LF__ROR(a[0], 13) ^ LF__ROR(a[0], 22)) + ((a[0] & a[1]) ^ (a[0] & a[2]) ^ (a[1] & a[2]));
        memmove(a + 1, a, 7 * sizeof *a);
        a[4] += t1, a[0] = t1 + t2;
    }
    for (int i = 0; i < 8; i++) h[i] += a[i];
}
#undef LF__ROR

LF_API void lf_sha256_init(lf_sha256 *c) {
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, h0, sizeof h0);
    c->n = 0;
}

LF_API void lf_sha256_update(lf_sha256 *c, const void *data, size_t n) {
    const unsigned char *p = (const unsigned char *)data;
    while (n) {
        size_t used = (size_t)(c->n % 64), take = LF__MIN(64 - used, n);
        if (used == 0 && n >= 64) take = 64, lf__sha256_block(c->h, p);
        else if (memcpy(c->blk + used, p, take), used + take == 64) lf__sha256_block(c->h, c->blk);
        c->n += take, p += take, n -= take;
    }
}

LF_API void lf_sha256_final(lf_sha256 *c, char hex[65]) {
    uint64_t bits = c->n * 8;
    unsigned char pad[72] = {0x80};
    size_t k = (size_t)((c->n % 64 < 56 ? 56 : 120) - c->n % 64);
    for (int i = 0; i < 8; i++) pad[k + (size_t)i] = (unsigned char)(bits >> (56 - 8 * i));
    lf_sha256_update(c, pad, k + 8);
    for (int i = 0; i < 8; i++) snprintf(hex + 8 * i, 9, "%08x", c->h[i]);
}

// -- 1.4 thread pool
//
// ON THE POOL: lf_parallel_for cuts [0, n) into fixed ranges (LF__POOL_SPLIT per thread; the
// same cut for the same n and thread count) and every thread, the caller included, claims
// ranges until none is left. A thread that the OS has descheduled thus delays nobody: the
// others take its ranges. Who runs a range never changes what it computes (tid only picks
// per-thread scratch), so results stay bit-identical run to run. Decode calls lf_parallel_for
// a few hundred times per token, so waking costs microseconds: idle workers spin on the
// generation counter for a while before sleeping on a condition variable. A claim is a CAS on
// one 64-bit ticket, (generation << 32) | next range, so a worker that wakes late can never
// claim a range of a job that has moved on.

#define LF__POOL_SPLIT 4

LF_API int lf_cpu_count(void) {
#if !defined(LF_NO_THREADS) && defined(_SC_NPROCESSORS_ONLN)
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
#else
    return 1;
#endif
}

struct lf_pool {
    int n;
#ifndef LF_NO_THREADS
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;          // guarded by mu; read atomically by spinners
    uint32_t gen;      // the current job's generation (published last)
    uint64_t ticket;   // (gen << 32) | next unclaimed range
    int64_t done;      // ranges finished in the current job
    // the current job: written before gen is published, read with atomics
    lf_range_fn fn;
    void *arg;
    int64_t njobs, nranges;
#endif
};

// Range r of n split into k near-equal parts.
static void lf__pool_range(int64_t n, int64_t k, int64_t r, int64_t *b, int64_t *e) {
    int64_t q = n / k, rem = n % k;
    *b = r * q + LF__MIN(r, rem);
    *e = *b + q + (r < rem);
}

#ifndef LF_NO_THREADS
// Claims and runs ranges of job `gen` until none is left (or the job has moved on).
static void lf__pool_work(lf_pool *p, uint32_t gen, int tid) {
    lf_range_fn fn = __atomic_load_n(&p->fn, __ATOMIC_ACQUIRE);
    void *arg = __atomic_load_n(&p->arg, __ATOMIC_ACQUIRE);
    int64_t njobs = __atomic_load_n(&p->njobs, __ATOMIC_ACQUIRE), nranges = __atomic_load_n(&p->nranges, __ATOMIC_ACQUIRE);
    uint64_t t = __atomic_load_n(&p->ticket, __ATOMIC_ACQUIRE);
    for (;;) {
        if ((uint32_t)(t >> 32) != gen || (int64_t)(uint32_t)t >= nranges) return;
        if (!__atomic_compare_exchange_n(&p->ticket, &t, t + 1, true, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) continue;
        int64_t b, e;
        lf__pool_range(njobs, nranges, (int64_t)(uint32_t)t, &b, &e);
        fn(arg, b, e, tid);
        __atomic_add_fetch(&p->done, 1, __ATOMIC_ACQ_REL);
        t = __atomic_load_n(&p->ticket, __ATOMIC_ACQUIRE);
    }
}

typedef struct lf__worker_arg {
    lf_pool *p;
    int tid;
} lf__worker_arg;

static void *lf__pool_worker(void *va) {
    lf__worker_arg wa = *(lf__worker_arg *)va;
    LF_FREE(va);
    lf_pool *p = wa.p;
    uint32_t seen = 0;
    for (;;) {
        uint32_t g = seen;
        for (int spin = 0; spin < 100000; spin++) {  // about a millisecond, then sleep
            g = __atomic_load_n(&p->gen, __ATOMIC_ACQUIRE);
            if (g != seen || __atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) break;
#if defined(__x86_64__)
            _mm_pause();
#endif
        }
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            while ((g = __atomic_load_n(&p->gen, __ATOMIC_ACQUIRE)) == seen && !p->stop) pthread_cond_wait(&p->cv, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) return NULL;
        seen = g;
        lf__pool_work(p, g, wa.tid);
    }
}
#endif

LF_API lf_status lf_pool_create(lf_pool **out, int n_threads) {
    *out = NULL;
    if (n_threads <= 0) n_threads = lf_cpu_count();
#ifdef LF_NO_THREADS
    n_threads = 1;
#endif
    lf_pool *p = (lf_pool *)lf__calloc(1, sizeof *p, "thread pool");
    if (!p) return LF_ERR_NOMEM;
    p->n = n_threads;
#ifndef LF_NO_THREADS
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (n_threads > 1) {
        p->threads = (pthread_t *)lf__calloc((size_t)n_threads, sizeof(pthread_t), "thread pool");
        if (!p->threads) return lf_pool_destroy(p), LF_ERR_NOMEM;
        for (int i = 1; i < n_threads; i++) {
            lf__worker_arg *wa = (lf__worker_arg *)lf__alloc(sizeof *wa, "thread pool");
            if (!wa) {
                p->n = i;
                return lf_pool_destroy(p), LF_ERR_NOMEM;
            }
            wa->p = p, wa->tid = i;
            if (pthread_create(&p->threads[i], NULL, lf__pool_worker, wa) != 0) {
                LF_FREE(wa);
                p->n = i;
                lf_pool_destroy(p);
                return lf__fail(LF_ERR_NOMEM, "thread pool: cannot start thread %d of %d", i, n_threads);
            }
        }
    }
#endif
    *out = p;
    return LF_OK;
}

LF_API void lf_pool_destroy(lf_pool *p) {
    if (!p) return;
#ifndef LF_NO_THREADS
    pthread_mutex_lock(&p->mu);
    __atomic_store_n(&p->stop, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n && p->threads; i++) pthread_join(p->threads[i], NULL);
    LF_FREE(p->threads);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
#endif
    LF_FREE(p);
}

LF_API int lf_pool_size(const lf_pool *p) { return p ? p->n : 1; }

LF_API void lf_parallel_for(lf_pool *p, int64_t n, lf_range_fn fn, void *arg) {
    if (n <= 0) return;
    if (!p || p->n == 1 || n == 1) {
        fn(arg, 0, n, 0);
        return;
    }
#ifndef LF_NO_THREADS
    int64_t nranges = LF__MIN(n, (int64_t)p->n * LF__POOL_SPLIT);
    uint32_t gen = p->gen + 1;
    __atomic_store_n(&p->fn, fn, __ATOMIC_RELAXED);
    __atomic_store_n(&p->arg, arg, __ATOMIC_RELAXED);
    __atomic_store_n(&p->njobs, n, __ATOMIC_RELAXED);
    __atomic_store_n(&p->nranges, nranges, __ATOMIC_RELAXED);
    __atomic_store_n(&p->done, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&p->ticket, (uint64_t)gen << 32, __ATOMIC_RELEASE);
    pthread_mutex_lock(&p->mu);
    __atomic_store_n(&p->gen, gen, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    lf__pool_work(p, gen, 0);
    for (int spin = 0; __atomic_load_n(&p->done, __ATOMIC_ACQUIRE) < nranges; spin++) {
        if (spin > 2000) sched_yield();  // a worker holds a range but has no core: let it run
#if defined(__x86_64__)
        else _mm_pause();
#endif
    }
#endif
}

// -- 1.5 files

#ifndef LF_NO_STDIO
LF_API lf_status lf_mmap_open(lf_mmap *m, const char *path) {
    memset(m, 0, sizeof *m);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return lf__fail(LF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return lf__fail(LF_ERR_IO, "%s: not a regular file", path);
    }
    m->size = (size_t)st.st_size;
    if (m->size > 0) {
        void *p = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return lf__fail(LF_ERR_IO, "%s: mmap of %zu bytes failed: %s", path, m->size, strerror(errno));
        }
        m->data = (const unsigned char *)p;
        m->handle_ = p;
    }
    close(fd);
    return LF_OK;
}

LF_API void lf_mmap_close(lf_mmap *m) {
    if (m->handle_) munmap(m->handle_, m->size);
    memset(m, 0, sizeof *m);
}

LF_API lf_status lf_file_read(const char *path, size_t max_bytes, char **data, size_t *len) {
    *data = NULL, *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return lf__fail(LF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    lf__buf b = LF__ZERO;
    char chunk[1 << 16];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (max_bytes && b.len + n > max_bytes) {
            fclose(f);
            LF_FREE(b.data);
            return lf__fail(LF_ERR_FORMAT, "%s: larger than the limit of %zu bytes", path, max_bytes);
        }
        lf__buf_put(&b, chunk, n);
    }
    bool err = ferror(f) != 0;
    fclose(f);
    if (err || b.failed) {
        LF_FREE(b.data);
        return b.failed ? LF_ERR_NOMEM : lf__fail(LF_ERR_IO, "%s: read error", path);
    }
    if (!b.data) lf__buf_put(&b, "", 0);
    if (b.failed) return LF_ERR_NOMEM;
    *data = b.data, *len = b.len;
    return LF_OK;
}

// A file streamed into path.tmp.XXXXXX and renamed over path by commit (fsynced, then its
// directory): a reader sees the old file or the new one, never a torn one. cap 0 writes straight
// through (lf_file_write_atomic's one buffer); otherwise writes gather in a buffer of cap bytes.
typedef struct lf__afile {
    int fd;
    char tmp[4096];
    unsigned char *buf;  // [cap] pending bytes
    size_t len, cap;
    uint64_t at;         // bytes handed to write so far, pending ones included
} lf__afile;

static lf_status lf__afile_open(lf__afile *f, const char *path, size_t cap) {
    memset(f, 0, sizeof *f);
    f->fd = -1;
    if ((size_t)snprintf(f->tmp, sizeof f->tmp, "%s.tmp.XXXXXX", path) >= sizeof f->tmp)
        return lf__fail(LF_ERR_ARG, "path too long: %s", path);
    f->cap = cap;
    if (cap && !(f->buf = (unsigned char *)lf__alloc(cap, "file buffer"))) return LF_ERR_NOMEM;
    if ((f->fd = mkstemp(f->tmp)) < 0) {  // unique per call: concurrent writers of one path never share it
        LF_FREE(f->buf), f->buf = NULL;
        return lf__fail(LF_ERR_IO, "%s: cannot create: %s", f->tmp, strerror(errno));
    }
    fchmod(f->fd, 0644);
    return LF_OK;
}

static lf_status lf__afile_put(lf__afile *f, const unsigned char *p, size_t left) {
    while (left > 0) {
        ssize_t w = write(f->fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return lf__fail(LF_ERR_IO, "%s: write failed: %s", f->tmp, strerror(w < 0 ? errno : EIO));
        p += w, left -= (size_t)w;
    }
    return LF_OK;
}

static lf_status lf__afile_flush(lf__afile *f) {
    lf_status s = lf__afile_put(f, f->buf, f->len);
    f->len = 0;
    return s;
}

static lf_status lf__afile_write(lf__afile *f, const void *data, size_t n) {
    const unsigned char *p = (const unsigned char *)data;
    f->at += n;
    if (!f->cap) return lf__afile_put(f, p, n);
    while (n > 0) {
        size_t k = LF__MIN(n, f->cap - f->len);
        memcpy(f->buf + f->len, p, k);
        f->len += k, p += k, n -= k;
        lf_status s = f->len == f->cap ? lf__afile_flush(f) : LF_OK;
        if (s != LF_OK) return s;
    }
    return LF_OK;
}

// Zeros up to the next multiple of align.
static lf_status lf__afile_pad(lf__afile *f, uint64_t align) {
    static const unsigned char zeros[64] = {0};
    lf_status s = LF_OK;
    for (size_t n = (size_t)((align - f->at % align) % align); n > 0 && s == LF_OK; n -= LF__MIN(n, sizeof zeros))
        s = lf__afile_write(f, zeros, LF__MIN(n, sizeof zeros));
    return s;
}

static void lf__afile_abort(lf__afile *f) {
    if (f->fd >= 0) close(f->fd), unlink(f->tmp);
    LF_FREE(f->buf);
    f->fd = -1, f->buf = NULL;
}

static lf_status lf__afile_commit(lf__afile *f, const char *path) {
    lf_status s = lf__afile_flush(f);
    if (s != LF_OK) return lf__afile_abort(f), s;
    int synced = fsync(f->fd), e = errno, closed = close(f->fd);
    f->fd = -1;
    LF_FREE(f->buf), f->buf = NULL;
    if (synced != 0 || closed != 0) {
        unlink(f->tmp);
        return lf__fail(LF_ERR_IO, "%s: fsync/close failed: %s", f->tmp, strerror(synced ? e : errno));
    }
    if (rename(f->tmp, path) != 0) {
        e = errno;
        unlink(f->tmp);
        return lf__fail(LF_ERR_IO, "%s: rename to %s failed: %s", f->tmp, path, strerror(e));
    }
    char dir[4096];  // fsync the directory so the rename itself survives a crash
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *(slash == dir ? slash + 1 : slash) = 0;
    else strcpy(dir, ".");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) fsync(dfd), close(dfd);
    return LF_OK;
}

LF_API lf_status lf_file_write_atomic(const char *path, const void *data, size_t len) {
    lf__afile f;
    lf_status s = lf__afile_open(&f, path, 0);
    if (s == LF_OK && (s = lf__afile_write(&f, data, len)) != LF_OK) lf__afile_abort(&f);
    return s == LF_OK ? lf__afile_commit(&f, path) : s;
}

LF_API bool lf_path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}
LF_API bool lf_path_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}
LF_API lf_status lf_dir_make(const char *path) {
    char *p = lf__strndup(path, strlen(path), "path");
    if (!p) return LF_ERR_NOMEM;
    lf_status s = LF_OK;
    for (char *c = p + 1; s == LF_OK; c++)
        if (*c == '/' || !*c) {
            char keep = *c;
            *c = 0;
            if (mkdir(p, 0777) != 0 && errno != EEXIST) s = lf__fail(LF_ERR_IO, "%s: cannot create directory: %s", p, strerror(errno));
            else if (!lf_path_is_dir(p)) s = lf__fail(LF_ERR_IO, "%s: exists and is not a directory", p);
            *c = keep;
            if (!keep) break;
        }
    LF_FREE(p);
    return s;
}
#endif  // LF_NO_STDIO

LF_API char *lf_path_join(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    bool slash = la > 0 && a[la - 1] != '/';
    char *p = (char *)lf__alloc(la + lb + 2, "path");
    if (!p) return NULL;
    memcpy(p, a, la);
    if (slash) p[la++] = '/';
    memcpy(p + la, b, lb + 1);
    return p;
}

// == 2. config (impl) ============================================================================
//
// ON THE TREE: cJSON parses (with an explicit length, since safetensors headers are not
// NUL-terminated); we then copy its tree into one block of lf_node plus string bytes, so the
// rest of the header never sees a cJSON type and a document is freed with one call.

static void lf__json_count(const cJSON *j, size_t *nodes, size_t *bytes) {
    *nodes += 1;
    if (j->string) *bytes += strlen(j->string) + 1;
    if (cJSON_IsString(j) && j->valuestring) *bytes += strlen(j->valuestring) + 1;
    for (const cJSON *c = j->child; c; c = c->next) lf__json_count(c, nodes, bytes);
}

typedef struct lf__json_fill {
    lf_node *next_node;
    char *next_byte;
} lf__json_fill;

static const char *lf__json_copy_str(lf__json_fill *f, const char *s, size_t *len) {
    size_t n = strlen(s);
    char *d = f->next_byte;
    memcpy(d, s, n + 1);
    f->next_byte += n + 1;
    if (len) *len = n;
    return d;
}

static void lf__json_fill_node(lf__json_fill *f, lf_node *dst, const cJSON *j) {
    memset(dst, 0, sizeof *dst);
    if (j->string) dst->key = lf__json_copy_str(f, j->string, NULL);
    if (cJSON_IsNull(j)) dst->type = LF_NODE_NULL;
    else if (cJSON_IsBool(j)) dst->type = LF_NODE_BOOL, dst->num = cJSON_IsTrue(j) ? 1 : 0;
    else if (cJSON_IsNumber(j)) dst->type = LF_NODE_NUMBER, dst->num = j->valuedouble;
    else if (cJSON_IsString(j)) {
        dst->type = LF_NODE_STRING;
        dst->str = lf__json_copy_str(f, j->valuestring ? j->valuestring : "", &dst->len);
    } else {
        dst->type = cJSON_IsArray(j) ? LF_NODE_ARRAY : LF_NODE_OBJECT;
        int n = 0;
        for (const cJSON *c = j->child; c; c = c->next) n++;
        dst->n = n;
        dst->kids = f->next_node;
        f->next_node += n;
        int i = 0;
        for (const cJSON *c = j->child; c; c = c->next) lf__json_fill_node(f, &dst->kids[i++], c);
    }
}

// Copies a cJSON tree into doc (one block) and deletes it.
static lf_status lf__doc_from_cjson(lf_doc *doc, cJSON *j) {
    size_t nodes = 0, bytes = 0, total;
    lf__json_count(j, &nodes, &bytes);
    if (!lf__mul_ok(nodes, sizeof(lf_node), &total) || !lf__add_ok(total, bytes, &total)) {
        cJSON_Delete(j);
        return lf__fail(LF_ERR_NOMEM, "%s: tree too large", doc->name);
    }
    doc->mem_ = lf__alloc(total, "config tree");
    if (!doc->mem_) {
        cJSON_Delete(j);
        return lf__wrap(LF_ERR_NOMEM, "%s", doc->name);
    }
    lf__json_fill f = {(lf_node *)doc->mem_, (char *)doc->mem_ + nodes * sizeof(lf_node)};
    doc->root = f.next_node++;
    lf__json_fill_node(&f, doc->root, j);
    cJSON_Delete(j);
    return LF_OK;
}

// The reverse, for edits (config overrides); NULL when out of memory.
static cJSON *lf__doc_to_cjson(const lf_node *n) {
    cJSON *j = NULL;
    switch (n->type) {
    case LF_NODE_NULL: return cJSON_CreateNull();
    case LF_NODE_BOOL: return cJSON_CreateBool(n->num != 0);
    case LF_NODE_NUMBER: return cJSON_CreateNumber(n->num);
    case LF_NODE_STRING: return cJSON_CreateString(n->str);
    case LF_NODE_ARRAY: j = cJSON_CreateArray(); break;
    case LF_NODE_OBJECT: j = cJSON_CreateObject(); break;
    }
    for (int i = 0; j && i < n->n; i++) {
        cJSON *c = lf__doc_to_cjson(&n->kids[i]);
        if (!c) return cJSON_Delete(j), (cJSON *)NULL;
        if (n->type == LF_NODE_ARRAY) cJSON_AddItemToArray(j, c);
        else cJSON_AddItemToObject(j, n->kids[i].key, c);
    }
    return j;
}

static void lf__line_col(const char *text, size_t off, int *line, int *col) {
    *line = 1, *col = 1;
    for (size_t i = 0; i < off; i++) {
        if (text[i] == '\n') (*line)++, *col = 1;
        else (*col)++;
    }
}

LF_API lf_status lf_json_parse(lf_doc *doc, const char *text, size_t len, const char *name) {
    memset(doc, 0, sizeof *doc);
    snprintf(doc->name, sizeof doc->name, "%s", name ? name : "<json>");
    if (len > LF_MAX_JSON_BYTES)
        return lf__fail(LF_ERR_FORMAT, "%s: %zu bytes is over the JSON limit of %zu", doc->name, len,
                        (size_t)LF_MAX_JSON_BYTES);
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!j) {
        size_t off = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        int line, col;
        lf__line_col(text, off, &line, &col);
        return lf__fail(LF_ERR_FORMAT, "%s: invalid JSON at line %d, column %d (byte %zu)", doc->name, line, col, off);
    }
    // anything but whitespace after the value is an error too
    size_t off = (size_t)(end - text);
    while (off < len && (text[off] == ' ' || text[off] == '\n' || text[off] == '\r' || text[off] == '\t')) off++;
    if (off < len) {
        cJSON_Delete(j);
        int line, col;
        lf__line_col(text, off, &line, &col);
        return lf__fail(LF_ERR_FORMAT, "%s: trailing data after JSON value at line %d, column %d (byte %zu)",
                        doc->name, line, col, off);
    }
    return lf__doc_from_cjson(doc, j);
}

#ifndef LF_NO_STDIO
LF_API lf_status lf_json_load(lf_doc *doc, const char *path) {
    char *text;
    size_t len;
    memset(doc, 0, sizeof *doc);
    lf_status s = lf_file_read(path, LF_MAX_JSON_BYTES, &text, &len);
    if (s != LF_OK) return s;
    s = lf_json_parse(doc, text, len, path);
    LF_FREE(text);
    return s;
}
#endif

LF_API void lf_doc_deinit(lf_doc *doc) {
    if (doc->mem_) LF_FREE(doc->mem_);
    memset(doc, 0, sizeof *doc);
}

LF_API const lf_node *lf_node_get(const lf_node *obj, const char *key) {
    if (!obj || obj->type != LF_NODE_OBJECT) return NULL;
    for (int i = 0; i < obj->n; i++)
        if (strcmp(obj->kids[i].key, key) == 0) return &obj->kids[i];
    return NULL;
}

static const char *lf__node_type_name(lf_node_type t) {
    static const char *names[] = {"null", "a boolean", "a number", "a string", "an array", "an object"};
    return names[t];
}

// Looks a field up; *out NULL when absent or null (an error if required), else it must have
// the given type.
static lf_status lf__cfg_field(const lf_doc *d, const lf_node *obj, const char *key, bool required,
                               lf_node_type type, const char *want, const lf_node **out) {
    const lf_node *n = lf_node_get(obj, key);
    *out = n && n->type != LF_NODE_NULL ? n : NULL;
    if (!*out && required) return lf__fail(LF_ERR_CONFIG, "%s: missing required field '%s'", d->name, key);
    if (*out && n->type != type)
        return lf__fail(LF_ERR_CONFIG, "%s: field '%s' must be %s, got %s", d->name, key, want, lf__node_type_name(n->type));
    return LF_OK;
}

LF_API lf_status lf_cfg_int(const lf_doc *d, const lf_node *obj, const char *key, bool required,
                            int64_t lo, int64_t hi, int64_t *out) {
    const lf_node *n;
    lf_status s = lf__cfg_field(d, obj, key, required, LF_NODE_NUMBER, "an integer", &n);
    if (s != LF_OK || !n) return s;
    double v = n->num;
    if (v != floor(v) || fabs(v) > 9007199254740992.0)
        return lf__fail(LF_ERR_CONFIG, "%s: field '%s' must be an integer, got %g", d->name, key, v);
    if (v < (double)lo || v > (double)hi)
        return lf__fail(LF_ERR_CONFIG, "%s: field '%s' must be in [%lld, %lld], got %.0f", d->name, key,
                        (long long)lo, (long long)hi, v);
    *out = (int64_t)v;
    return LF_OK;
}

LF_API lf_status lf_cfg_num(const lf_doc *d, const lf_node *obj, const char *key, bool required, double *out) {
    const lf_node *n;
    lf_status s = lf__cfg_field(d, obj, key, required, LF_NODE_NUMBER, "a number", &n);
    if (s == LF_OK && n) *out = n->num;
    return s;
}

LF_API lf_status lf_cfg_bool(const lf_doc *d, const lf_node *obj, const char *key, bool required, bool *out) {
    const lf_node *n;
    lf_status s = lf__cfg_field(d, obj, key, required, LF_NODE_BOOL, "true or false", &n);
    if (s == LF_OK && n) *out = n->num != 0;
    return s;
}

LF_API lf_status lf_cfg_str(const lf_doc *d, const lf_node *obj, const char *key, bool required, const char **out) {
    const lf_node *n;
    lf_status s = lf__cfg_field(d, obj, key, required, LF_NODE_STRING, "a string", &n);
    if (s == LF_OK && n) *out = n->str;
    return s;
}

// -- 2.1 YAML
//
// ON YAML: the subset configs use, parsed line by line into a cJSON tree that then becomes an
// lf_doc like any JSON: block mappings and sequences by indentation (spaces only), "- key: v"
// items, plain/single/double-quoted scalars, flow [a, b] and {k: v} on one line, literal |
// and folded > block scalars, # comments. Scalars are typed by YAML 1.2's core schema (so 1e-4
// is a number, yes is a string). Anchors, aliases, tags and several documents are refused.

#ifndef LF_MAX_CONFIG_DEPTH
#define LF_MAX_CONFIG_DEPTH 64
#endif

typedef struct lf__yline {
    const char *s;  // first non-space character
    int len;        // bytes to the end of the line (no '\n', no '\r')
    int indent;     // leading spaces
    int no;         // 1-based line number
} lf__yline;

typedef struct lf__yaml {
    const char *name;
    lf__yline *lines;
    int n, i;  // lines, current line
    lf_status st;
} lf__yaml;

static LF__PRINTF(4, 5) cJSON *lf__y_err(lf__yaml *y, int line, int col, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (y->st == LF_OK) y->st = lf__fail(LF_ERR_FORMAT, "%s: line %d, column %d: %s", y->name, line, col, msg);
    return NULL;
}

static bool lf__y_blank(const lf__yline *l) { return l->len == 0 || l->s[0] == '#'; }
static void lf__y_skip(lf__yaml *y) {
    while (y->i < y->n && lf__y_blank(&y->lines[y->i])) y->i++;
}
static bool lf__y_item_at(const char *p, const char *end) { return p < end && *p == '-' && (p + 1 == end || p[1] == ' '); }
static bool lf__y_is_item(const lf__yline *l) { return lf__y_item_at(l->s, l->s + l->len); }

// Typed plain scalar (YAML 1.2 core schema).
static cJSON *lf__y_plain(const char *s, int n) {
    char buf[128];
    if (n == 0 || (n == 1 && s[0] == '~') || (n == 4 && (!memcmp(s, "null", 4) || !memcmp(s, "Null", 4) || !memcmp(s, "NULL", 4))))
        return cJSON_CreateNull();
    if ((n == 4 && (!memcmp(s, "true", 4) || !memcmp(s, "True", 4) || !memcmp(s, "TRUE", 4)))) return cJSON_CreateTrue();
    if ((n == 5 && (!memcmp(s, "false", 5) || !memcmp(s, "False", 5) || !memcmp(s, "FALSE", 5)))) return cJSON_CreateFalse();
    if (n < (int)sizeof buf) {
        memcpy(buf, s, (size_t)n), buf[n] = 0;
        int i = buf[0] == '-' || buf[0] == '+', digits = 0, dot = 0, exp = 0;
        bool ok = true;
        for (; buf[i] && ok; i++) {
            if (buf[i] >= '0' && buf[i] <= '9') digits++;
            else if (buf[i] == '.' && !dot && !exp) dot = 1;
            else if ((buf[i] == 'e' || buf[i] == 'E') && digits && !exp) {
                exp = 1;
                if (buf[i + 1] == '-' || buf[i + 1] == '+') i++;
                if (!(buf[i + 1] >= '0' && buf[i + 1] <= '9')) ok = false;
            } else ok = false;
        }
        if (ok && digits) return cJSON_CreateNumber(strtod(buf, NULL));
        const char *v = buf + (buf[0] == '-' || buf[0] == '+');
        if (!strcmp(v, ".inf") || !strcmp(v, ".Inf") || !strcmp(v, ".INF"))
            return cJSON_CreateNumber(buf[0] == '-' ? -INFINITY : INFINITY);
    }
    char *str = lf__strndup(s, (size_t)n, "YAML scalar");  // cJSON copies it
    if (!str) return NULL;
    cJSON *j = cJSON_CreateString(str);
    LF_FREE(str);
    return j;
}

// A quoted scalar starting at *p (the quote); advances *p past the closing quote.
static cJSON *lf__y_quoted(lf__yaml *y, const lf__yline *l, const char **p) {
    char q = **p;
    const char *s = *p + 1, *end = l->s + l->len;
    lf__buf b = LF__ZERO;
    for (; s < end; s++) {
        if (*s == q) {
            if (q != '\'' || s + 1 >= end || s[1] != '\'') break;
            s++;  // '' inside single quotes is one quote
        }
        if (q == '\'') {
            lf__buf_putc(&b, *s);
            continue;
        }
        if (*s != '\\') {
            lf__buf_putc(&b, *s);
            continue;
        }
        if (++s == end) break;
        switch (*s) {
        case 'n': lf__buf_putc(&b, '\n'); break;
        case 't': lf__buf_putc(&b, '\t'); break;
        case 'r': lf__buf_putc(&b, '\r'); break;
        case '"': case '\\': case '/': case ' ': lf__buf_putc(&b, *s); break;
        default:
            LF_FREE(b.data);
            return lf__y_err(y, l->no, (int)(s - l->s) + l->indent + 1, "unsupported escape '\\%c'", *s);
        }
    }
    if (s >= end) {
        LF_FREE(b.data);
        return lf__y_err(y, l->no, (int)(*p - l->s) + l->indent + 1, "unterminated %s-quoted string (multi-line quotes are not supported)",
                         q == '"' ? "double" : "single");
    }
    *p = s + 1;
    lf__buf_put(&b, "", 0);
    if (b.failed) return lf__y_err(y, l->no, 1, "out of memory");
    cJSON *j = cJSON_CreateString(b.data);
    LF_FREE(b.data);
    return j;
}

// An inline value at *p: quoted, flow collection or plain scalar; stops at the flow
// terminators in `stop` (none at the top level, where " #" starts a comment).
static cJSON *lf__y_inline(lf__yaml *y, const lf__yline *l, const char **p, const char *stop, int depth) {
    const char *end = l->s + l->len, *s = *p;
    int col = (int)(s - l->s) + l->indent + 1;
    if (depth > LF_MAX_CONFIG_DEPTH) return lf__y_err(y, l->no, col, "nested deeper than %d", LF_MAX_CONFIG_DEPTH);
    while (s < end && *s == ' ') s++;
    if (s < end && (*s == '&' || *s == '*' || *s == '!'))
        return lf__y_err(y, l->no, col, "anchors, aliases and tags are not supported");
    cJSON *j = NULL;
    if (s < end && (*s == '"' || *s == '\'')) j = lf__y_quoted(y, l, &s);
    else if (s < end && (*s == '[' || *s == '{')) {
        bool map = *s == '{';
        char close = map ? '}' : ']';
        j = map ? cJSON_CreateObject() : cJSON_CreateArray();
        s++;
        while (j && y->st == LF_OK) {
            while (s < end && *s == ' ') s++;
            if (s < end && *s == close) {
                s++;
                break;
            }
            if (s >= end) return cJSON_Delete(j), lf__y_err(y, l->no, col, "unterminated flow collection (must close on its line)");
            cJSON *key = NULL;
            if (map) {
                key = lf__y_inline(y, l, &s, ":,}", depth + 1);
                if (!key || !cJSON_IsString(key) || s >= end || *s != ':') {
                    cJSON_Delete(key), cJSON_Delete(j);
                    return lf__y_err(y, l->no, (int)(s - l->s) + l->indent + 1, "expected 'key: value' in a flow mapping");
                }
                s++;
            }
            cJSON *v = lf__y_inline(y, l, &s, map ? ",}" : ",]", depth + 1);
            if (!v) return cJSON_Delete(key), cJSON_Delete(j), (cJSON *)NULL;
            if (map) {
                if (cJSON_GetObjectItemCaseSensitive(j, key->valuestring)) {
                    lf__y_err(y, l->no, col, "duplicate key '%s'", key->valuestring);
                    return cJSON_Delete(v), cJSON_Delete(key), cJSON_Delete(j), (cJSON *)NULL;
                }
                cJSON_AddItemToObject(j, key->valuestring, v);
                cJSON_Delete(key);
            } else
                cJSON_AddItemToArray(j, v);
            while (s < end && *s == ' ') s++;
            if (s < end && *s == ',') s++;
            else if (s >= end) return cJSON_Delete(j), lf__y_err(y, l->no, col, "unterminated flow collection (must close on its line)");
            else if (*s != close) return cJSON_Delete(j), lf__y_err(y, l->no, (int)(s - l->s) + l->indent + 1, "expected ',' or '%c'", close);
        }
    } else {
        const char *e = s;
        while (e < end && !(stop && strchr(stop, *e)) && !(*e == '#' && e > *p && e[-1] == ' ')) e++;
        const char *t = e;
        while (t > s && t[-1] == ' ') t--;
        j = lf__y_plain(s, (int)(t - s));
        s = e;
    }
    if (!j && y->st == LF_OK) return lf__y_err(y, l->no, col, "out of memory");
    *p = s;
    return j;
}

// The rest of a line after an inline value must be empty or a comment.
static bool lf__y_line_done(lf__yaml *y, const lf__yline *l, const char *p) {
    while (p < l->s + l->len && *p == ' ') p++;
    if (p < l->s + l->len && *p != '#') {
        lf__y_err(y, l->no, (int)(p - l->s) + l->indent + 1, "unexpected text after the value");
        return false;
    }
    return true;
}

static cJSON *lf__y_block(lf__yaml *y, int indent, int depth, bool in_mapping);

// | and > block scalars: the more-indented lines that follow.
static cJSON *lf__y_block_scalar(lf__yaml *y, const lf__yline *head, const char *p, int parent_indent) {
    bool folded = *p == '>';
    char chomp = p + 1 < head->s + head->len && (p[1] == '-' || p[1] == '+') ? p[1] : 0;
    lf__buf b = LF__ZERO;
    int ind = -1;
    size_t blanks = 0;  // blank lines since the last content line
    y->i++;
    while (y->i < y->n) {
        const lf__yline *l = &y->lines[y->i];
        if (l->len == 0) {  // blank lines belong to the scalar
            lf__buf_putc(&b, '\n');
            blanks++, y->i++;
            continue;
        }
        if (l->indent <= parent_indent) break;
        if (ind < 0) ind = l->indent;
        if (l->indent < ind) break;
        // folding: one line break between lines becomes a space; before n blank lines it goes,
        // leaving n newlines
        if (folded && ind >= 0 && b.len > blanks && !b.failed) {
            if (blanks == 0) b.data[b.len - 1] = ' ';
            else memmove(b.data + b.len - blanks - 1, b.data + b.len - blanks, blanks + 1), b.len--;
        }
        blanks = 0;
        for (int k = ind; k < l->indent; k++) lf__buf_putc(&b, ' ');
        lf__buf_put(&b, l->s, (size_t)l->len);
        lf__buf_putc(&b, '\n');
        y->i++;
    }
    lf__buf_put(&b, "", 0);
    if (b.failed) return lf__y_err(y, head->no, 1, "out of memory");
    if (chomp != '+') {
        while (b.len > 0 && b.data[b.len - 1] == '\n') b.data[--b.len] = 0;
        if (chomp != '-' && b.len > 0) lf__buf_putc(&b, '\n');
    }
    cJSON *j = cJSON_CreateString(b.data);
    LF_FREE(b.data);
    return j;
}

// The value after "key:" or "- ": inline, a block scalar, or a nested block on later lines.
static cJSON *lf__y_value(lf__yaml *y, const lf__yline *l, const char *p, int indent, int depth, bool seq_same_indent) {
    while (p < l->s + l->len && *p == ' ') p++;
    if (p < l->s + l->len && *p != '#') {
        if (*p == '|' || *p == '>') return lf__y_block_scalar(y, l, p, indent);
        cJSON *v = lf__y_inline(y, l, &p, NULL, depth);
        y->i++;
        if (v && !lf__y_line_done(y, l, p)) return cJSON_Delete(v), (cJSON *)NULL;
        return v;
    }
    y->i++;
    lf__y_skip(y);
    if (y->i < y->n) {
        const lf__yline *n = &y->lines[y->i];
        if (n->indent > indent) return lf__y_block(y, n->indent, depth + 1, false);
        if (seq_same_indent && n->indent == indent && lf__y_is_item(n))  // "key:\n- a": the list ends at the next key
            return lf__y_block(y, n->indent, depth + 1, true);
    }
    return cJSON_CreateNull();
}

// A block mapping or sequence at this indent. in_mapping: a sequence written at its key's
// indent, which ends at the next line that is not an item.
static cJSON *lf__y_block(lf__yaml *y, int indent, int depth, bool in_mapping) {
    if (depth > LF_MAX_CONFIG_DEPTH) return lf__y_err(y, y->lines[y->i].no, 1, "nested deeper than %d", LF_MAX_CONFIG_DEPTH);
    bool seq = lf__y_is_item(&y->lines[y->i]);
    cJSON *j = seq ? cJSON_CreateArray() : cJSON_CreateObject();
    if (!j) return lf__y_err(y, y->lines[y->i].no, 1, "out of memory");
    for (lf__y_skip(y); y->i < y->n && y->st == LF_OK; lf__y_skip(y)) {
        lf__yline *l = &y->lines[y->i];
        if (l->indent < indent) break;
        if (l->indent > indent) return cJSON_Delete(j), lf__y_err(y, l->no, l->indent + 1, "unexpected indentation");
        if (l->len >= 3 && (!memcmp(l->s, "---", 3) || !memcmp(l->s, "...", 3)))
            return cJSON_Delete(j), lf__y_err(y, l->no, 1, "several documents in one file are not supported");
        if (seq && in_mapping && !lf__y_is_item(l)) break;
        if (seq != lf__y_is_item(l))
            return cJSON_Delete(j), lf__y_err(y, l->no, l->indent + 1, seq ? "expected a '- ' item" : "expected 'key: value'");
        cJSON *v;
        if (seq) {
            const char *p = l->s + 1;
            while (p < l->s + l->len && *p == ' ') p++;
            // "- key: value" opens a mapping whose keys line up with "key"
            const char *c = p;
            bool quoted = c < l->s + l->len && (*c == '"' || *c == '\'');
            while (!quoted && c < l->s + l->len && !(*c == ':' && (c + 1 == l->s + l->len || c[1] == ' ')) && *c != '#' && *c != '[' && *c != '{') c++;
            if ((!quoted && c < l->s + l->len && *c == ':') || lf__y_item_at(p, l->s + l->len)) {
                // "- key: v" or "- - v": a nested block whose first line starts here
                int col = l->indent + (int)(p - l->s);
                l->len -= (int)(p - l->s), l->s = p, l->indent = col;
                v = lf__y_block(y, col, depth + 1, false);
            } else
                v = lf__y_value(y, l, p, indent, depth, false);
            if (v) cJSON_AddItemToArray(j, v);
        } else {
            const char *p = l->s, *end = l->s + l->len, *k0 = p, *k1;
            cJSON *qkey = NULL;
            if (*p == '"' || *p == '\'') {
                if (!(qkey = lf__y_quoted(y, l, &p))) return cJSON_Delete(j), (cJSON *)NULL;
                k0 = qkey->valuestring, k1 = k0 + strlen(k0);
            } else {
                while (p < end && !(*p == ':' && (p + 1 == end || p[1] == ' '))) p++;
                k1 = p;
                while (k1 > k0 && k1[-1] == ' ') k1--;
            }
            if (p >= end || *p != ':') {
                cJSON_Delete(qkey);
                return cJSON_Delete(j), lf__y_err(y, l->no, l->indent + 1, "expected 'key: value'");
            }
            char key[256];
            if (k1 - k0 >= (long)sizeof key || k1 == k0) {
                cJSON_Delete(qkey);
                return cJSON_Delete(j), lf__y_err(y, l->no, l->indent + 1, "a key must have 1 to 255 bytes");
            }
            memcpy(key, k0, (size_t)(k1 - k0)), key[k1 - k0] = 0;
            cJSON_Delete(qkey);
            if (cJSON_GetObjectItemCaseSensitive(j, key))
                return cJSON_Delete(j), lf__y_err(y, l->no, l->indent + 1, "duplicate key '%s'", key);
            v = lf__y_value(y, l, p + 1, indent, depth, true);
            if (v) cJSON_AddItemToObject(j, key, v);
        }
        if (!v) return cJSON_Delete(j), (cJSON *)NULL;
    }
    if (y->st != LF_OK) return cJSON_Delete(j), (cJSON *)NULL;
    return j;
}

LF_API lf_status lf_yaml_parse(lf_doc *doc, const char *text, size_t len, const char *name) {
    memset(doc, 0, sizeof *doc);
    snprintf(doc->name, sizeof doc->name, "%s", name ? name : "<yaml>");
    if (len > LF_MAX_JSON_BYTES)
        return lf__fail(LF_ERR_FORMAT, "%s: %zu bytes is over the limit of %zu", doc->name, len, (size_t)LF_MAX_JSON_BYTES);
    lf__yaml y = {doc->name, NULL, 0, 0, LF_OK};
    size_t cap = 0;
    for (size_t a = 0; a < len;) {  // the line table
        size_t b = a;
        while (b < len && text[b] != '\n') b++;
        size_t e = b;
        if (e > a && text[e - 1] == '\r') e--;
        size_t s = a;
        while (s < e && text[s] == ' ') s++;
        if (s < e && text[s] == '\t')
            return LF_FREE(y.lines), lf__fail(LF_ERR_FORMAT, "%s: line %d: tabs cannot indent YAML", doc->name, y.n + 1);
        if (memchr(text + a, 0, e - a))
            return LF_FREE(y.lines), lf__fail(LF_ERR_FORMAT, "%s: line %d: NUL byte", doc->name, y.n + 1);
        if (!lf__grow((void **)&y.lines, &cap, (size_t)y.n + 1, sizeof *y.lines, "YAML lines")) return LF_FREE(y.lines), LF_ERR_NOMEM;
        if (e - a > INT32_MAX) return LF_FREE(y.lines), lf__fail(LF_ERR_FORMAT, "%s: line %d too long", doc->name, y.n + 1);
        y.lines[y.n] = (lf__yline){text + s, (int)(e - s), (int)(s - a), y.n + 1};
        y.n++;
        a = b + 1;
    }
    lf__y_skip(&y);
    cJSON *root = y.i < y.n ? lf__y_block(&y, y.lines[y.i].indent, 0, false) : cJSON_CreateObject();
    lf__y_skip(&y);
    if (root && y.st == LF_OK && y.i < y.n)
        lf__y_err(&y, y.lines[y.i].no, y.lines[y.i].indent + 1, "unexpected indentation");
    LF_FREE(y.lines);
    if (y.st != LF_OK || !root) {
        cJSON_Delete(root);
        return y.st != LF_OK ? y.st : lf__fail(LF_ERR_NOMEM, "%s: out of memory", doc->name);
    }
    return lf__doc_from_cjson(doc, root);
}

// "a.b.c=value": sets a scalar, creating the mappings on the way, typed like a YAML scalar.
static lf_status lf__config_override(cJSON *root, const char *name, const char *ov) {
    const char *eq = strchr(ov, '=');
    if (!eq || eq == ov) return lf__fail(LF_ERR_ARG, "override '%s': expected section.key=value", ov);
    cJSON *node = root;
    for (const char *p = ov; p < eq;) {
        const char *dot = (const char *)memchr(p, '.', (size_t)(eq - p));
        const char *e = dot ? dot : eq;
        char key[256];
        if (e == p || e - p >= (long)sizeof key) return lf__fail(LF_ERR_ARG, "override '%s': empty or long key", ov);
        memcpy(key, p, (size_t)(e - p)), key[e - p] = 0;
        if (!cJSON_IsObject(node))
            return lf__fail(LF_ERR_CONFIG, "%s: override '%s': '%s' is inside a value that is not a mapping", name, ov, key);
        cJSON *next = cJSON_GetObjectItemCaseSensitive(node, key);
        if (!dot) {  // the value is YAML too: a scalar, "a quoted one" or a [flow, list]
            lf__buf line = LF__ZERO;
            lf__buf_puts(&line, "v: ");
            lf__buf_puts(&line, eq + 1);
            lf_doc vd;
            lf_status s = line.failed ? LF_ERR_NOMEM : lf_yaml_parse(&vd, line.data, line.len, "override");
            LF_FREE(line.data);
            if (s != LF_OK) return lf__wrap(s, "%s: override '%s'", name, ov);
            cJSON *v = lf__doc_to_cjson(&vd.root->kids[0]);
            lf_doc_deinit(&vd);
            if (!v) return lf__fail(LF_ERR_NOMEM, "override '%s': out of memory", ov);
            if (next ? !cJSON_ReplaceItemInObjectCaseSensitive(node, key, v) : !cJSON_AddItemToObject(node, key, v)) {
                cJSON_Delete(v);
                return lf__fail(LF_ERR_NOMEM, "override '%s': out of memory", ov);
            }
            return LF_OK;
        }
        if (!next && !(next = cJSON_AddObjectToObject(node, key))) return lf__fail(LF_ERR_NOMEM, "override: out of memory");
        node = next, p = dot + 1;
    }
    return LF_OK;
}

// Levenshtein distance, for "did you mean" (keys are short).
static int lf__edit_distance(const char *a, const char *b) {
    int la = (int)LF__MIN(strlen(a), 63), lb = (int)LF__MIN(strlen(b), 63), d[64][64];
    for (int i = 0; i <= la; i++) d[i][0] = i;
    for (int j = 0; j <= lb; j++) d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++)
            d[i][j] = LF__MIN(LF__MIN(d[i - 1][j] + 1, d[i][j - 1] + 1), d[i - 1][j - 1] + (a[i - 1] != b[j - 1]));
    return d[la][lb];
}

LF_API lf_status lf_cfg_keys(const lf_doc *d, const lf_node *obj, const char *section, const char *const *known, int n) {
    if (!obj || obj->type != LF_NODE_OBJECT) return LF_OK;
    for (int i = 0; i < obj->n; i++) {
        const char *key = obj->kids[i].key;
        int best = -1, bd = 1 << 30;
        for (int k = 0; k < n; k++) {
            if (strcmp(known[k], key) == 0) best = k, bd = 0;
            int e = bd ? lf__edit_distance(known[k], key) : 0;
            if (e < bd) best = k, bd = e;
        }
        if (bd == 0) continue;
        const char *dot = section ? "." : "";
        section = section ? section : "";
        if (best >= 0 && bd <= 3)
            return lf__fail(LF_ERR_CONFIG, "%s: %s%s%s: unknown key (did you mean %s?)", d->name, section, dot, key, known[best]);
        return lf__fail(LF_ERR_CONFIG, "%s: %s%s%s: unknown key", d->name, section, dot, key);
    }
    return LF_OK;
}

#ifndef LF_NO_STDIO
extern char **environ;

// LARGEFORGE_TRAINING_LEARNING_RATE=1e-4 -> "training.learning_rate=1e-4" (NULL: not a config
// variable); free with lf_free.
static char *lf__env_override(const char *var) {
    static const char *sections[] = {"model", "training", "lora", "quantization", "data", "dpo", "distill", "generation", "server"};
    const char *pre = "LARGEFORGE_", *eq = strchr(var, '=');
    if (!eq || strncmp(var, pre, strlen(pre)) != 0) return NULL;
    const char *name = var + strlen(pre);
    for (size_t i = 0; i < sizeof sections / sizeof *sections; i++) {
        size_t n = strlen(sections[i]);
        if (name + n + 1 >= eq || name[n] != '_' || strncasecmp(name, sections[i], n) != 0) continue;
        char *o = lf__strndup(name, strlen(name), "environment override");
        if (!o) return NULL;
        for (char *c = o; *c != '='; c++) *c = c == o + n ? '.' : *c >= 'A' && *c <= 'Z' ? (char)(*c + 32) : *c;
        return o;
    }
    return NULL;
}

LF_API lf_status lf_config_load(lf_doc *doc, const char *path, const char *const *overrides, int n_overrides) {
    memset(doc, 0, sizeof *doc);
    char *text = NULL;
    size_t len = 0, n = path ? strlen(path) : 0;
    lf_status s = path ? lf_file_read(path, LF_MAX_JSON_BYTES, &text, &len) : LF_OK;
    if (s != LF_OK) return s;
    bool json = n > 5 && strcmp(path + n - 5, ".json") == 0;
    s = json ? lf_json_parse(doc, text, len, path) : lf_yaml_parse(doc, text ? text : "", len, path ? path : "command line");
    LF_FREE(text);
    int n_env = 0;
    for (char **e = environ; e && *e; e++) n_env += strncmp(*e, "LARGEFORGE_", 11) == 0;
    if (s != LF_OK || n_overrides + n_env == 0) return s;
    // overrides edit the tree: back to cJSON, edit, and build the document again
    cJSON *root = lf__doc_to_cjson(doc->root);
    char name[256];
    snprintf(name, sizeof name, "%s", doc->name);
    lf_doc_deinit(doc);
    if (!root) return lf__fail(LF_ERR_NOMEM, "%s: out of memory applying overrides", name);
    for (char **e = environ; e && *e && s == LF_OK; e++) {
        char *o = strncmp(*e, "LARGEFORGE_", 11) == 0 ? lf__env_override(*e) : NULL;
        if (o && (s = lf__config_override(root, name, o)) != LF_OK)
            s = lf__wrap(s, "environment %.*s", (int)(strchr(*e, '=') - *e), *e);
        LF_FREE(o);
    }
    for (int i = 0; i < n_overrides && s == LF_OK; i++) s = lf__config_override(root, name, overrides[i]);
    if (s != LF_OK) return cJSON_Delete(root), s;
    snprintf(doc->name, sizeof doc->name, "%s", name);
    return lf__doc_from_cjson(doc, root);
}
#endif

// == 3. tensor (impl) ============================================================================
//
// ON KERNELS: every op is a plain function, outputs first, inputs const, dimensions last, no
// allocation (STYLE R13). Activations are f32; weights may be F32, BF16 or F16 and are
// converted on the fly inside the matmul, so bf16 checkpoints are used straight from the mmap.
// Accumulation is always f32.

static const struct {
    const char *name;
    size_t size;
} lf__dtypes[LF_DTYPE_COUNT_] = {  // in lf_dtype order
    {"INVALID", 0}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"F64", 8}, {"I8", 1}, {"U8", 1}, {"I16", 2},
    {"U16", 2}, {"I32", 4}, {"U32", 4}, {"I64", 8}, {"U64", 8}, {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1},
};

LF_API const char *lf_dtype_name(lf_dtype t) {
    return (unsigned)t < LF_DTYPE_COUNT_ ? lf__dtypes[t].name : "INVALID";
}
LF_API size_t lf_dtype_size(lf_dtype t) { return (unsigned)t < LF_DTYPE_COUNT_ ? lf__dtypes[t].size : 0; }
LF_API lf_dtype lf_dtype_from_name(const char *s, size_t len) {
    for (int i = 1; i < LF_DTYPE_COUNT_; i++)
        if (strlen(lf__dtypes[i].name) == len && memcmp(lf__dtypes[i].name, s, len) == 0) return (lf_dtype)i;
    return LF_DTYPE_INVALID;
}

LF_API int64_t lf_tensor_numel(const lf_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

LF_API float lf_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
LF_API uint16_t lf_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}
LF_API float lf_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    if (exp == 0x1f) u = sign | 0x7f800000u | (man << 13);
    else if (exp != 0) u = sign | ((exp + 112) << 23) | (man << 13);
    else if (man == 0) u = sign;
    else {  // subnormal: normalize
        int e = -1;
        do e++, man <<= 1; while (!(man & 0x400));
        u = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}
LF_API uint16_t lf_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000, a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (a > 0x7f800000u ? 0x200 : 0));
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);  // rounds to inf
    if (a < 0x38800000u) {                                     // subnormal or zero in f16
        if (a < 0x33000000u) return (uint16_t)sign;
        uint32_t e = a >> 23, man = (a & 0x7fffff) | 0x800000, shift = 126 - e;
        uint32_t h = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((a - 0x38000000u) >> 13), rem = a & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

LF_API lf_status lf_convert_to_f32(float *dst, const void *src, lf_dtype dt, int64_t n) {
    switch (dt) {
    case LF_DTYPE_F32: memcpy(dst, src, (size_t)n * 4); return LF_OK;
    case LF_DTYPE_BF16:
        for (int64_t i = 0; i < n; i++) dst[i] = lf_bf16_to_f32(((const uint16_t *)src)[i]);
        return LF_OK;
    case LF_DTYPE_F16:
        for (int64_t i = 0; i < n; i++) dst[i] = lf_f16_to_f32(((const uint16_t *)src)[i]);
        return LF_OK;
    default: return lf__fail(LF_ERR_UNSUPPORTED, "cannot convert %s to F32", lf_dtype_name(dt));
    }
}

// -- 3.1 matmul
//
// ON THE MATMUL: out[N, M] = x[N, K] . w[M, K]^T, split over the pool by output column so the
// result does not depend on the thread count. Two kernels:
//  - few rows (decode): a tile of NR rows x MR columns keeps NR*MR vector sums running along K
//    (both operands are K-contiguous) and streams MR rows of w at once: bound by reading w.
//  - many rows (prefill): w is packed K-major into panels of 48 columns, then each x element is
//    broadcast against 3 vectors of the panel: bound by the FMA units, no horizontal sums.
// F32 and F16 weights multiply f32 activations. BF16 weights multiply activations rounded to
// bf16 (vdpbf16ps, f32 accumulation), as llama.cpp does: that is what makes bf16 prefill fast,
// and costs ~1e-2 on the logits (tests/test_model.c states the tolerance).
// Tile sizes and the dtype are compile-time constants after inlining, so each variant gets its
// own straight-line loop without a copy of the source.

#define LF__MM_NR 4           // dot kernel: rows per tile
#define LF__MM_MR 6           // dot kernel: columns per tile
#define LF__MM_PACKED_MIN_N 8 // from this many rows on, the packed kernel (LF__KERN_AUTO)
#define LF__PK_W 48           // packed kernel: columns per panel (3 vectors of 16)
#define LF__PK_NR 8           // packed kernel: rows per tile
#define LF__PK_KC 256         // packed kernel: k per packed panel (even)

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512BF16__)
#define LF__AVX512 1
#endif

typedef struct lf__mm_job {
    float *out;                 // [N, M]
    const float *x, *bias;      // [N, K], [M] or NULL
    const uint16_t *xb;         // BF16 only: x rounded to bf16, [N, Kp] zero-padded
    const unsigned char *w;     // [M, K]
    unsigned char *pack;        // [threads, LF__PK_KC * LF__PK_W * 4] packed-kernel panels
    lf_dtype dt;
    int64_t N, M, K, Kp;
    bool accumulate;            // out += x . w^T instead of out =
    bool packed;                // the packed kernel, else the dot kernel
} lf__mm_job;

// Which kernel multiplies: by the row count, or one of the two whatever it is. Each kernel gives
// a row the same bits whatever rows share the call (both split work by output column only), but
// the two sum K in different orders: batch invariance (section 12) picks the kernel by the
// row's role, not by the batch's size.
typedef enum { LF__KERN_AUTO, LF__KERN_DOT, LF__KERN_PACKED } lf__kern;

// Bytes of scratch lf__matmul needs: the bf16 copy of x and one packed panel per thread.
static size_t lf__matmul_scratch(int64_t N, int64_t K, int threads) {
    size_t Kp = (size_t)(K + 31) & ~(size_t)31;
    return (size_t)N * Kp * 2 + 64 + (size_t)threads * LF__PK_KC * LF__PK_W * 4;
}

#ifdef LF__AVX512
LF__INLINE __m512 lf__load16(const void *p, lf_dtype dt, int64_t k, __mmask16 m) {
    if (dt == LF_DTYPE_F16) return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)p + k));
    return _mm512_maskz_loadu_ps(m, (const float *)p + k);
}

LF__INLINE void lf__mm_tile(const int NR, const int MR, const lf_dtype dt, const lf__mm_job *j, int64_t n, int64_t c0) {
    size_t wrow = (size_t)j->K * lf_dtype_size(dt);
    const unsigned char *w = j->w + (size_t)c0 * wrow;
    const int64_t K = j->K;
    __m512 acc[LF__MM_NR][LF__MM_MR];
    for (int r = 0; r < NR; r++)
        for (int c = 0; c < MR; c++) acc[r][c] = _mm512_setzero_ps();
    if (dt == LF_DTYPE_BF16) {
        // the main loop unmasked, the tail masked (a mask computed in the loop makes GCC keep
        // the sums in memory)
        int64_t k = 0;
        for (; k + 32 <= K; k += 32) {
            __m512i xv[LF__MM_NR];
            for (int r = 0; r < NR; r++) xv[r] = _mm512_loadu_si512((const void *)(j->xb + (n + r) * j->Kp + k));
            for (int c = 0; c < MR; c++) {
                __m512i wv = _mm512_loadu_si512((const void *)((const uint16_t *)(w + (size_t)c * wrow) + k));
                for (int r = 0; r < NR; r++) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], (__m512bh)xv[r], (__m512bh)wv);
            }
        }
        if (k < K) {
            __mmask32 m = (__mmask32)((1u << (K - k)) - 1);
            for (int c = 0; c < MR; c++) {
                __m512i wv = _mm512_maskz_loadu_epi16(m, (const uint16_t *)(w + (size_t)c * wrow) + k);
                for (int r = 0; r < NR; r++) {
                    __m512i xv = _mm512_loadu_si512((const void *)(j->xb + (n + r) * j->Kp + k));
                    acc[r][c] = _mm512_dpbf16_ps(acc[r][c], (__m512bh)xv, (__m512bh)wv);
                }
            }
        }
    } else {
        const float *x = j->x + n * K;
        int64_t k = 0;
        for (; k + 16 <= K; k += 16) {
            __m512 xv[LF__MM_NR];
            for (int r = 0; r < NR; r++) xv[r] = _mm512_loadu_ps(x + r * K + k);
            for (int c = 0; c < MR; c++) {
                __m512 wv = lf__load16(w + (size_t)c * wrow, dt, k, (__mmask16)0xffff);
                for (int r = 0; r < NR; r++) acc[r][c] = _mm512_fmadd_ps(xv[r], wv, acc[r][c]);
            }
        }
        if (k < K) {  // the tail, masked
            __mmask16 m = (__mmask16)((1u << (K - k)) - 1);
            for (int c = 0; c < MR; c++) {
                __m512 wv = lf__load16(w + (size_t)c * wrow, dt, k, m);
                for (int r = 0; r < NR; r++) acc[r][c] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + r * K + k), wv, acc[r][c]);
            }
        }
    }
    for (int r = 0; r < NR; r++)
        for (int c = 0; c < MR; c++) {
            float *o = j->out + (n + r) * j->M + c0 + c;
            *o = _mm512_reduce_add_ps(acc[r][c]) + (j->accumulate ? *o : 0.0f);
        }
}

// Packs columns [m0, m0 + 48) x k in [k0, k0 + kc) of w K-major: F32/F16 as f32 [kc][48],
// BF16 as pairs of consecutive k in one 32-bit lane [kc/2][48] (vdpbf16ps's layout). Columns
// past M and k past K are zero.
// In-register transpose of a 16 x 16 block of 32-bit words: r[i] becomes column i.
LF__INLINE void lf__transpose16(__m512i r[16]) {
    __m512i t[16];
    for (int i = 0; i < 16; i += 2) t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]), t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]), r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]), r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    for (int h = 0; h < 16; h += 8)
        for (int i = 0; i < 4; i++)
            t[h + i] = _mm512_shuffle_i32x4(r[h + i], r[h + i + 4], 0x88), t[h + i + 4] = _mm512_shuffle_i32x4(r[h + i], r[h + i + 4], 0xdd);
    for (int i = 0; i < 8; i++)
        r[i] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0x88), r[i + 8] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0xdd);
}

// Packs columns [m0, m0 + 48) x k in [k0, k0 + kc) of w K-major: F32/F16 as f32 [kc][48],
// BF16 as pairs of consecutive k in one 32-bit word [kc/2][48] (vdpbf16ps's layout), 16 x 16
// blocks at a time. Columns past M and k past K are zero.
LF__INLINE void lf__pk_pack(const lf_dtype dt, const lf__mm_job *j, unsigned char *pack, int64_t m0, int64_t k0, int kc) {
    int ncols = (int)LF__MIN(LF__PK_W, j->M - m0);
    int64_t kvalid = LF__MIN((int64_t)kc, j->K - k0);  // real k in this panel
    size_t wrow = (size_t)j->K * lf_dtype_size(dt);
    int words = dt == LF_DTYPE_BF16 ? kc / 2 : kc;     // 32-bit words per packed column
    uint32_t *p = (uint32_t *)pack;
    for (int v = 0; v < 3; v++)
        for (int t = 0; t < words; t += 16) {
            __m512i r[16];
            for (int c = 0; c < 16; c++) {
                int col = 16 * v + c;
                if (col >= ncols) {
                    r[c] = _mm512_setzero_si512();
                    continue;
                }
                const unsigned char *src = j->w + (size_t)(m0 + col) * wrow;
                if (dt == LF_DTYPE_BF16) {  // 32 bf16 = 16 pairs
                    int64_t e = LF__MIN(32, LF__MAX(0, kvalid - 2 * t));
                    __mmask32 m = e == 32 ? (__mmask32)~0u : (__mmask32)((1u << e) - 1);
                    r[c] = _mm512_maskz_loadu_epi16(m, (const uint16_t *)src + k0 + 2 * t);
                } else {
                    int64_t e = LF__MIN(16, LF__MAX(0, kvalid - t));
                    __mmask16 m = e == 16 ? (__mmask16)0xffff : (__mmask16)((1u << e) - 1);
                    r[c] = dt == LF_DTYPE_F16 ? _mm512_castps_si512(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)src + k0 + t)))
                                              : _mm512_maskz_loadu_epi32(m, (const uint32_t *)src + k0 + t);
                }
            }
            lf__transpose16(r);
            for (int i = 0; i < 16 && t + i < words; i++) _mm512_storeu_si512((void *)(p + (size_t)(t + i) * LF__PK_W + 16 * v), r[i]);
        }
}

// NR rows x 48 columns of out, over one packed panel; starts from bias (or 0) on the first
// panel of k, from the partial sums in out after that.
LF__INLINE void lf__pk_tile(const int NR, const lf_dtype dt, const lf__mm_job *j, const unsigned char *pack,
                            int64_t n, int64_t m0, int64_t k0, int kc) {
    int ncols = (int)LF__MIN(LF__PK_W, j->M - m0);
    __mmask16 mk[3];
    for (int c = 0; c < 3; c++) {
        int v = LF__MIN(16, LF__MAX(0, ncols - 16 * c));
        mk[c] = (__mmask16)(v == 16 ? 0xffff : (1u << v) - 1);
    }
    __m512 acc[LF__PK_NR][3];
    for (int r = 0; r < NR; r++)
        for (int c = 0; c < 3; c++) {
            float *o = j->out + (n + r) * j->M + m0 + 16 * c;
            acc[r][c] = k0 > 0 || j->accumulate ? _mm512_maskz_loadu_ps(mk[c], o)
                        : j->bias ? _mm512_maskz_loadu_ps(mk[c], j->bias + m0 + 16 * c) : _mm512_setzero_ps();
        }
    if (dt == LF_DTYPE_BF16) {
        const uint32_t *p = (const uint32_t *)pack;
        for (int k = 0; k < kc; k += 2, p += LF__PK_W) {
            __m512i w0 = _mm512_loadu_si512((const void *)p), w1 = _mm512_loadu_si512((const void *)(p + 16)),
                    w2 = _mm512_loadu_si512((const void *)(p + 32));
            for (int r = 0; r < NR; r++) {
                int32_t pair;
                memcpy(&pair, j->xb + (n + r) * j->Kp + k0 + k, 4);
                __m512i xv = _mm512_set1_epi32(pair);
                acc[r][0] = _mm512_dpbf16_ps(acc[r][0], (__m512bh)w0, (__m512bh)xv);
                acc[r][1] = _mm512_dpbf16_ps(acc[r][1], (__m512bh)w1, (__m512bh)xv);
                acc[r][2] = _mm512_dpbf16_ps(acc[r][2], (__m512bh)w2, (__m512bh)xv);
            }
        }
    } else {
        const float *p = (const float *)pack;
        for (int k = 0; k < kc; k++, p += LF__PK_W) {
            __m512 w0 = _mm512_loadu_ps(p), w1 = _mm512_loadu_ps(p + 16), w2 = _mm512_loadu_ps(p + 32);
            for (int r = 0; r < NR; r++) {
                __m512 xv = _mm512_set1_ps(j->x[(n + r) * j->K + k0 + k]);
                acc[r][0] = _mm512_fmadd_ps(xv, w0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(xv, w1, acc[r][1]);
                acc[r][2] = _mm512_fmadd_ps(xv, w2, acc[r][2]);
            }
        }
    }
    for (int r = 0; r < NR; r++)
        for (int c = 0; c < 3; c++) _mm512_mask_storeu_ps(j->out + (n + r) * j->M + m0 + 16 * c, mk[c], acc[r][c]);
}

// Panels [p0, p1) of 48 columns, all rows.
LF__INLINE void lf__pk_range(const lf_dtype dt, const lf__mm_job *j, int64_t p0, int64_t p1, int tid) {
    unsigned char *pack = j->pack + (size_t)tid * LF__PK_KC * LF__PK_W * 4;
    for (int64_t p = p0; p < p1; p++) {
        int64_t m0 = p * LF__PK_W;
        for (int64_t k0 = 0; k0 < j->K; k0 += LF__PK_KC) {
            int kc = (int)LF__MIN(LF__PK_KC, j->K - k0);
            if (dt == LF_DTYPE_BF16) kc = (kc + 1) & ~1;  // xb is zero-padded past K
            lf__pk_pack(dt, j, pack, m0, k0, kc);
            int64_t n = 0;
            for (; n + LF__PK_NR <= j->N; n += LF__PK_NR) lf__pk_tile(LF__PK_NR, dt, j, pack, n, m0, k0, kc);
            for (; n + 4 <= j->N; n += 4) lf__pk_tile(4, dt, j, pack, n, m0, k0, kc);
            for (; n < j->N; n++) lf__pk_tile(1, dt, j, pack, n, m0, k0, kc);
        }
    }
}
#else
// Portable kernels: the same two loop orders in plain C (the compiler vectorizes along K);
// BF16 activations are rounded the same way, so every build computes the same products.
LF__INLINE float lf__load1(const void *p, lf_dtype dt, int64_t k) {
    switch (dt) {
    case LF_DTYPE_BF16: return lf_bf16_to_f32(((const uint16_t *)p)[k]);
    case LF_DTYPE_F16: return lf_f16_to_f32(((const uint16_t *)p)[k]);
    default: return ((const float *)p)[k];
    }
}
LF__INLINE void lf__mm_tile(const int NR, const int MR, const lf_dtype dt, const lf__mm_job *j, int64_t n, int64_t c0) {
    size_t wrow = (size_t)j->K * lf_dtype_size(dt);
    for (int r = 0; r < NR; r++)
        for (int c = 0; c < MR; c++) {
            const unsigned char *wr = j->w + (size_t)(c0 + c) * wrow;
            float s[8] = {0};
            for (int64_t k = 0; k < j->K; k++) {
                float xv = dt == LF_DTYPE_BF16 ? lf_bf16_to_f32(j->xb[(n + r) * j->Kp + k]) : j->x[(n + r) * j->K + k];
                s[k & 7] += xv * lf__load1(wr, dt, k);
            }
            float *o = j->out + (n + r) * j->M + c0 + c;
            *o = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])) + (j->accumulate ? *o : 0.0f);
        }
}
LF__INLINE void lf__pk_range(const lf_dtype dt, const lf__mm_job *j, int64_t p0, int64_t p1, int tid) {
    (void)tid;
    for (int64_t c = p0 * LF__PK_W; c < LF__MIN(p1 * LF__PK_W, j->M); c++) {
        for (int64_t n = 0; n < j->N; n++) lf__mm_tile(1, 1, dt, j, n, c);
        if (j->bias)
            for (int64_t n = 0; n < j->N; n++) j->out[n * j->M + c] += j->bias[c];
    }
}
#endif

// Dot kernel over column tiles [t0, t1): tiles are LF__MM_MR wide, the last one holds the rest.
LF__INLINE void lf__mm_range(const lf_dtype dt, const lf__mm_job *j, int64_t t0, int64_t t1) {
    int64_t full = j->M / LF__MM_MR;
    for (int64_t t = t0; t < t1; t++) {
        int64_t n = 0;
        if (t < full) {
            for (; n + LF__MM_NR <= j->N; n += LF__MM_NR) lf__mm_tile(LF__MM_NR, LF__MM_MR, dt, j, n, t * LF__MM_MR);
            for (; n < j->N; n++) lf__mm_tile(1, LF__MM_MR, dt, j, n, t * LF__MM_MR);
        } else
            for (int64_t c = full * LF__MM_MR; c < j->M; c++)
                for (n = 0; n < j->N; n++) lf__mm_tile(1, 1, dt, j, n, c);
    }
    if (j->bias) {
        int64_t c1 = LF__MIN(t1 * LF__MM_MR, j->M);
        for (int64_t n = 0; n < j->N; n++)
            for (int64_t c = t0 * LF__MM_MR; c < c1; c++) j->out[n * j->M + c] += j->bias[c];
    }
}

static void lf__mm_worker(void *arg, int64_t t0, int64_t t1, int tid) {
    const lf__mm_job *j = (const lf__mm_job *)arg;
    bool packed = j->packed;
    switch (j->dt) {
    case LF_DTYPE_BF16: packed ? lf__pk_range(LF_DTYPE_BF16, j, t0, t1, tid) : lf__mm_range(LF_DTYPE_BF16, j, t0, t1); break;
    case LF_DTYPE_F16: packed ? lf__pk_range(LF_DTYPE_F16, j, t0, t1, tid) : lf__mm_range(LF_DTYPE_F16, j, t0, t1); break;
    default: packed ? lf__pk_range(LF_DTYPE_F32, j, t0, t1, tid) : lf__mm_range(LF_DTYPE_F32, j, t0, t1); break;
    }
}

// The kernel-level entry: shapes already checked; scratch holds lf__matmul_scratch(N, K,
// threads) bytes.
// accumulate: out += instead of out = (the backward pass sums weight gradients this way).
static void lf__gemm_k(lf_pool *pool, float *out, const float *x, const void *w, lf_dtype dt, const float *bias,
                       int64_t N, int64_t M, int64_t K, void *scratch, bool accumulate, lf__kern kern) {
    bool packed = kern == LF__KERN_AUTO ? N >= LF__MM_PACKED_MIN_N : kern == LF__KERN_PACKED;
    lf__mm_job j = {out, x, bias, NULL, (const unsigned char *)w, NULL, dt, N, M, K, (K + 31) & ~(int64_t)31, accumulate,
                    packed};
    unsigned char *s = (unsigned char *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    if (dt == LF_DTYPE_BF16) {  // round x to bf16 once, zero-padded to whole vectors
        uint16_t *xb = (uint16_t *)s;
        for (int64_t n = 0; n < N; n++) {
            int64_t k = 0;
#ifdef LF__AVX512
            for (; k + 32 <= K; k += 32) {
                __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + n * K + k + 16), _mm512_loadu_ps(x + n * K + k));
                _mm512_storeu_si512((void *)(xb + n * j.Kp + k), (__m512i)v);
            }
#endif
            for (; k < K; k++) xb[n * j.Kp + k] = lf_f32_to_bf16(x[n * K + k]);
            for (; k < j.Kp; k++) xb[n * j.Kp + k] = 0;
        }
        j.xb = xb;
    }
    j.pack = s + (size_t)N * (size_t)j.Kp * 2;
    lf_parallel_for(pool, packed ? LF__CEIL_DIV(M, LF__PK_W) : LF__CEIL_DIV(M, LF__MM_MR), lf__mm_worker, &j);
}
static void lf__gemm(lf_pool *pool, float *out, const float *x, const void *w, lf_dtype dt, const float *bias,
                     int64_t N, int64_t M, int64_t K, void *scratch, bool accumulate) {
    lf__gemm_k(pool, out, x, w, dt, bias, N, M, K, scratch, accumulate, LF__KERN_AUTO);
}
static void lf__matmul(lf_pool *pool, float *out, const float *x, const void *w, lf_dtype dt, const float *bias,
                       int64_t N, int64_t M, int64_t K, void *scratch) {
    lf__gemm(pool, out, x, w, dt, bias, N, M, K, scratch, false);
}

LF_API lf_status lf_matmul(lf_pool *pool, float *out, const float *x, const lf_tensor *w, const float *bias, int64_t N) {
    if (w->ndim != 2) return lf__fail(LF_ERR_SHAPE, "matmul: weight '%s' must be 2-d", w->name ? w->name : "?");
    if (w->dtype != LF_DTYPE_F32 && w->dtype != LF_DTYPE_BF16 && w->dtype != LF_DTYPE_F16)
        return lf__fail(LF_ERR_UNSUPPORTED, "matmul: weight '%s' has dtype %s", w->name ? w->name : "?",
                        lf_dtype_name(w->dtype));
    void *scratch = lf__alloc(lf__matmul_scratch(N, w->shape[1], lf_pool_size(pool)), "matmul scratch");
    if (!scratch) return LF_ERR_NOMEM;
    lf__matmul(pool, out, x, w->data, w->dtype, bias, N, w->shape[0], w->shape[1], scratch);
    LF_FREE(scratch);
    return LF_OK;
}

// -- 3.2 elementwise ops and norms

// out[N, C] = x / sqrt(mean(x^2) + eps) * w, in f32 as transformers' LlamaRMSNorm does;
// rstd[N] (may be NULL) keeps 1/sqrt(...) for the backward pass.
static void lf__rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int64_t N, int64_t C, float eps) {
    for (int64_t n = 0; n < N; n++) {
        const float *xr = x + n * C;
        float *o = out + n * C;
        float ss = 0;
        for (int64_t i = 0; i < C; i++) ss += xr[i] * xr[i];
        float r = 1.0f / sqrtf(ss / (float)C + eps);
        if (rstd) rstd[n] = r;
        for (int64_t i = 0; i < C; i++) o[i] = w[i] * (xr[i] * r);
    }
}

// RoPE in HF's rotate_half layout: the pair (i, i + HS/2) rotates by angle sign * pos *
// inv_freq[i], in place. x [N, H, HS]; cos/sin tables [max_pos, HS/2]; pos [N].
static void lf__rope_rotate(float *x, const float *cos_t, const float *sin_t, const int32_t *pos, int64_t N,
                            int64_t H, int64_t HS, float sign) {
    int64_t half = HS / 2;
    for (int64_t n = 0; n < N; n++) {
        const float *c = cos_t + (int64_t)pos[n] * half, *s = sin_t + (int64_t)pos[n] * half;
        for (int64_t h = 0; h < H; h++) {
            float *v = x + (n * H + h) * HS;
            for (int64_t i = 0; i < half; i++) {
                float a = v[i], b = v[i + half], si = sign * s[i];
                v[i] = a * c[i] - b * si;
                v[i + half] = b * c[i] + a * si;
            }
        }
    }
}
static void lf__rope_forward(float *x, const float *cos_t, const float *sin_t, const int32_t *pos, int64_t N,
                             int64_t H, int64_t HS) {
    lf__rope_rotate(x, cos_t, sin_t, pos, N, H, HS, 1.0f);
}
// The rotation is orthogonal: its gradient is the inverse rotation, applied to dx in place.
static void lf__rope_backward(float *dx, const float *cos_t, const float *sin_t, const int32_t *pos, int64_t N,
                              int64_t H, int64_t HS) {
    lf__rope_rotate(dx, cos_t, sin_t, pos, N, H, HS, -1.0f);
}

#ifdef LF__AVX512
// exp of 16 floats: 2^n * e^r with n = round(x / ln 2) and |r| <= ln 2 / 2; the degree-7 Taylor
// polynomial of e^r is within 6e-9 relative, below f32's rounding, so this matches expf to an ulp.
LF__INLINE __m512 lf__exp16(__m512 x) {
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.7f)), _mm512_set1_ps(-104.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145752f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860677e-6f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}
#endif

// out[N, FF] = silu(gate) * up
static void lf__swiglu_forward(float *out, const float *gate, const float *up, int64_t n) {
    int64_t i = 0;
#ifdef LF__AVX512
    for (; i + 16 <= n; i += 16) {
        __m512 g = _mm512_loadu_ps(gate + i), e = lf__exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
        _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), _mm512_loadu_ps(up + i)));
    }
#endif
    for (; i < n; i++) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

// In place over x[n]: softmax with the max subtracted, sums in f32.
static void lf__softmax_inplace(float *x, int64_t n) {
    float mx = -INFINITY, sum = 0;
    for (int64_t i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    int64_t i = 0;
#ifdef LF__AVX512
    __m512 acc = _mm512_setzero_ps();
    for (; i + 16 <= n; i += 16) {
        __m512 e = lf__exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), _mm512_set1_ps(mx)));
        _mm512_storeu_ps(x + i, e);
        acc = _mm512_add_ps(acc, e);
    }
    sum = _mm512_reduce_add_ps(acc);
#endif
    for (; i < n; i++) sum += (x[i] = expf(x[i] - mx));
    float inv = 1.0f / sum;
    for (i = 0; i < n; i++) x[i] *= inv;
}

static float lf__dot(const float *a, const float *b, int64_t n) {
#ifdef LF__AVX512
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc);
    }
    return _mm512_reduce_add_ps(acc);
#else
    float s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
#endif
}

// y[n] += a * x[n]
static void lf__axpy(float *y, float a, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

// -- 3.3 backward ops
//
// ON GRADIENTS: each forward op above has its backward here, in f32 (training runs on f32
// master weights). Parameter gradients accumulate (+=, for micro-batch accumulation and LoRA);
// activation gradients overwrite (=), except those flowing into the residual stream, which
// accumulate (+=): rmsnorm's dx and the embedding's rows. Work is split by output element, so
// sums run in a fixed order and results do not depend on the thread count.

// RMSNorm: y = w * x * rstd. dx += rstd * (w*dy - x * rstd^2 * mean(w*dy*x)); dw += dy*x*rstd
// (dw may be NULL).
static void lf__rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w,
                                 const float *rstd, int64_t N, int64_t C) {
    for (int64_t n = 0; n < N; n++) {
        const float *xr = x + n * C, *g = dy + n * C;
        float *d = dx + n * C, r = rstd[n], dot = 0;
        for (int64_t i = 0; i < C; i++) dot += w[i] * g[i] * xr[i];
        float k = dot * r * r / (float)C;
        for (int64_t i = 0; i < C; i++) d[i] += r * (w[i] * g[i] - xr[i] * k);
    }
    for (int64_t n = 0; dw && n < N; n++)  // dw in row order after dx: the same sums every run
        for (int64_t i = 0; i < C; i++) dw[i] += dy[n * C + i] * x[n * C + i] * rstd[n];
}

// out = silu(gate) * up: dgate = dout * up * silu'(gate), dup = dout * silu(gate) (overwrite;
// dgate may alias dout).
static void lf__swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up,
                                int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i], sg = 1.0f / (1.0f + expf(-g)), o = dout[i];
        dup[i] = o * g * sg;
        dgate[i] = o * up[i] * sg * (1.0f + g * (1.0f - sg));
    }
}

typedef struct lf__tr_job {
    float *dst;
    const float *src;
    int64_t R, C;
} lf__tr_job;

static void lf__transpose_blocks(void *arg, int64_t b0, int64_t b1, int tid) {  // row blocks of 32
    (void)tid;
    const lf__tr_job *j = (const lf__tr_job *)arg;
    for (int64_t r0 = b0 * 32; r0 < LF__MIN(j->R, b1 * 32); r0 += 32)
        for (int64_t c0 = 0; c0 < j->C; c0 += 32)
            for (int64_t r = r0; r < LF__MIN(j->R, r0 + 32); r++)
                for (int64_t c = c0; c < LF__MIN(j->C, c0 + 32); c++) j->dst[c * j->R + r] = j->src[r * j->C + c];
}

// dst[C, R] = src[R, C]^T, in 32 x 32 blocks so both sides stay in cache.
static void lf__transpose(lf_pool *pool, float *dst, const float *src, int64_t R, int64_t C) {
    lf__tr_job j = {dst, src, R, C};
    lf_parallel_for(pool, LF__CEIL_DIV(R, 32), lf__transpose_blocks, &j);
}

// Floats of scratch lf__matmul_backward's fast path needs for N rows and matrices of up to
// M x K: dout^T, x^T, the GEMM's own, and w^T (unless the caller passes it).
static size_t lf__matmul_backward_scratch(int64_t N, int64_t M, int64_t K, int threads, bool with_wt) {
    int64_t big = LF__MAX(LF__MAX(N, M), K);
    return (size_t)(N * M + N * K + (with_wt ? M * K : 0)) + lf__matmul_scratch(big, big, threads) / 4 + 64;
}

// The backward of out[N, M] = x[N, K] . w[M, K]^T + b: dx = dout . w, dw += dout^T . x,
// db += column sums of dout. Both products run as the packed GEMM on transposed copies
// (w_t: w^T [K, M] made by the caller, or NULL to make it here) in scratch
// (lf__matmul_backward_scratch floats). dx, dw and db may be NULL.
static void lf__matmul_backward(lf_pool *pool, float *dx, float *dw, float *db, const float *dout, const float *x,
                                const float *w, const float *w_t, int64_t N, int64_t M, int64_t K, float *scratch) {
    float *dt = scratch, *xt = dt + N * M, *wt = xt + N * K;
    float *gs = wt + (w_t ? 0 : M * K);
    if (dx) {
        if (!w_t) lf__transpose(pool, wt, w, M, K), w_t = wt;
        lf__gemm(pool, dx, dout, w_t, LF_DTYPE_F32, NULL, N, K, M, gs, false);  // dx[N, K] = dout . (w^T)^T
    }
    if (!dw && !db) return;
    lf__transpose(pool, dt, dout, N, M);  // dw[M, K] += (dout^T)[M, N] . (x^T)[K, N]^T
    if (dw) {
        lf__transpose(pool, xt, x, N, K);
        lf__gemm(pool, dw, dt, xt, LF_DTYPE_F32, NULL, M, K, N, gs, true);
    }
    if (db)
        for (int64_t m = 0; m < M; m++) {
            float s = 0;
            for (int64_t n = 0; n < N; n++) s += dt[m * N + n];
            db[m] += s;
        }
}

// Rows of the embedding table receive their tokens' gradients (in token order).
static void lf__embedding_backward(float *dwte, const float *dx, const int32_t *tokens, int64_t N, int64_t C) {
    for (int64_t n = 0; n < N; n++) lf__axpy(dwte + (int64_t)tokens[n] * C, 1.0f, dx + n * C, C);
}

// Cross-entropy over logits [N, V] in place: each row becomes scale * (softmax - onehot(target))
// (scales[n] instead when scales is not NULL) and losses[n] its -log p(target); a target of -100
// (ignored) gives a zero row and loss 0.
static void lf__crossentropy_backward(float *logits, float *losses, const int32_t *targets, const float *scales,
                                      int64_t N, int64_t V, float scale) {
    for (int64_t n = 0; n < N; n++) {
        float *l = logits + n * V;
        if (targets[n] < 0) {
            memset(l, 0, (size_t)V * sizeof(float));
            losses[n] = 0;
            continue;
        }
        float mx = l[0];
        for (int64_t v = 1; v < V; v++) mx = l[v] > mx ? l[v] : mx;
        double sum = 0;
        for (int64_t v = 0; v < V; v++) sum += exp((double)(l[v] - mx));
        losses[n] = (float)(log(sum) - (double)(l[targets[n]] - mx));
        float inv = (float)(1.0 / sum), k = scales ? scales[n] : scale;
        for (int64_t v = 0; v < V; v++) l[v] = expf(l[v] - mx) * inv * k;
        l[targets[n]] -= k;
    }
}

// -- 3.4 quantized weights: NF4 and int8 (bitsandbytes' layouts)

// bnb's NF4 values (functional.get_4bit_type("nf4")).
static const float lf__nf4_code[16] = {
    -1.0f, -0.696192801f, -0.525073051f, -0.394917488f, -0.284441382f, -0.18477343f, -0.0910500363f, 0.0f,
    0.0795802996f, 0.160930201f, 0.246112302f, 0.337915242f, 0.440709829f, 0.562617004f, 0.722956836f, 1.0f};
// The decision thresholds: the f32 midpoints (code[i] + code[i+1]) / 2 that bnb's reference
// kernel buckets by. bnb's CUDA tree (dQuantizeNF4) writes them as decimal float literals, four
// of which (0, 8, 12, 14) round to the f32 next to these: only an input exactly on one of those
// thresholds is bucketed differently there.
static const float lf__nf4_mid[15] = {
    -0.848096371f, -0.610632896f, -0.45999527f, -0.33967942f, -0.234607399f, -0.137911737f, -0.0455250181f,
    0.0397901498f, 0.120255247f, 0.203521252f, 0.292013764f, 0.389312536f, 0.501663446f, 0.64278692f, 0.861478448f};
// bnb's create_dynamic_map(signed=True): 127 negative values, 0, 127 positive values, 1.
static const float lf__dynamic_map[256] = {
    -0.992968738f, -0.978906274f, -0.96484375f, -0.950781226f, -0.936718762f, -0.922656238f,
    -0.908593774f, -0.89453125f, -0.880468726f, -0.866406262f, -0.852343738f, -0.838281274f,
    -0.82421875f, -0.810156226f, -0.796093762f, -0.782031238f, -0.767968774f, -0.75390625f,
    -0.739843726f, -0.725781262f, -0.711718798f, -0.697656274f, -0.68359375f, -0.669531226f,
    -0.655468762f, -0.641406298f, -0.627343774f, -0.61328125f, -0.599218726f, -0.585156262f,
    -0.571093798f, -0.557031274f, -0.54296875f, -0.528906226f, -0.514843702f, -0.500781238f,
    -0.486718714f, -0.47265625f, -0.458593726f, -0.444531262f, -0.430468738f, -0.416406244f,
    -0.40234375f, -0.388281226f, -0.374218762f, -0.360156238f, -0.346093744f, -0.33203125f,
    -0.317968726f, -0.303906262f, -0.289843738f, -0.275781274f, -0.26171875f, -0.247656241f,
    -0.233593747f, -0.219531253f, -0.205468744f, -0.19140625f, -0.177343756f, -0.163281247f,
    -0.149218753f, -0.135156244f, -0.12109375f, -0.107031256f, -0.0985937491f, -0.0957812592f,
    -0.0929687545f, -0.0901562497f, -0.0873437524f, -0.0845312476f, -0.0817187577f, -0.078906253f,
    -0.0760937482f, -0.0732812509f, -0.0704687461f, -0.0676562563f, -0.0648437515f, -0.0620312504f,
    -0.0592187531f, -0.0564062484f, -0.053593751f, -0.05078125f, -0.047968749f, -0.0451562516f,
    -0.0423437469f, -0.0395312496f, -0.0367187522f, -0.0339062512f, -0.0310937501f, -0.028281251f,
    -0.0254687499f, -0.0226562507f, -0.0198437516f, -0.0170312505f, -0.0142187504f, -0.0114062503f,
    -0.00971874967f, -0.00915624946f, -0.00859375019f, -0.00803124998f, -0.00746874977f, -0.00690625003f,
    -0.00634374982f, -0.00578125007f, -0.00521875033f, -0.00465624966f, -0.00409374991f, -0.00353124971f,
    -0.00296874996f, -0.00240624999f, -0.00184375001f, -0.00128124992f, -0.000943750085f, -0.000831249985f,
    -0.00071875006f, -0.000606250076f, -0.000493750034f, -0.000381250022f, -0.000268750038f, -0.000156250011f,
    -8.87499991e-05f, -6.62500024e-05f, -4.37499984e-05f, -2.12499981e-05f, -7.7499999e-06f, -3.25000019e-06f,
    -5.50000038e-07f, 0.0f, 5.50000038e-07f, 3.25000019e-06f, 7.7499999e-06f, 2.12499981e-05f,
    4.37499984e-05f, 6.62500024e-05f, 8.87499991e-05f, 0.000156250011f, 0.000268750038f, 0.000381250022f,
    0.000493750034f, 0.000606250076f, 0.00071875006f, 0.000831249985f, 0.000943750085f, 0.00128124992f,
    0.00184375001f, 0.00240624999f, 0.00296874996f, 0.00353124971f, 0.00409374991f, 0.00465624966f,
    0.00521875033f, 0.00578125007f, 0.00634374982f, 0.00690625003f, 0.00746874977f, 0.00803124998f,
    0.00859375019f, 0.00915624946f, 0.00971874967f, 0.0114062503f, 0.0142187504f, 0.0170312505f,
    0.0198437516f, 0.0226562507f, 0.0254687499f, 0.028281251f, 0.0310937501f, 0.0339062512f,
    0.0367187522f, 0.0395312496f, 0.0423437469f, 0.0451562516f, 0.047968749f, 0.05078125f,
    0.053593751f, 0.0564062484f, 0.0592187531f, 0.0620312504f, 0.0648437515f, 0.0676562563f,
    0.0704687461f, 0.0732812509f, 0.0760937482f, 0.078906253f, 0.0817187577f, 0.0845312476f,
    0.0873437524f, 0.0901562497f, 0.0929687545f, 0.0957812592f, 0.0985937491f, 0.107031256f,
    0.12109375f, 0.135156244f, 0.149218753f, 0.163281247f, 0.177343756f, 0.19140625f,
    0.205468744f, 0.219531253f, 0.233593747f, 0.247656241f, 0.26171875f, 0.275781274f,
    0.289843738f, 0.303906262f, 0.317968726f, 0.33203125f, 0.346093744f, 0.360156238f,
    0.374218762f, 0.388281226f, 0.40234375f, 0.416406244f, 0.430468738f, 0.444531262f,
    0.458593726f, 0.47265625f, 0.486718714f, 0.500781238f, 0.514843702f, 0.528906226f,
    0.54296875f, 0.557031274f, 0.571093798f, 0.585156262f, 0.599218726f, 0.61328125f,
    0.627343774f, 0.641406298f, 0.655468762f, 0.669531226f, 0.68359375f, 0.697656274f,
    0.711718798f, 0.725781262f, 0.739843726f, 0.75390625f, 0.767968774f, 0.782031238f,
    0.796093762f, 0.810156226f, 0.82421875f, 0.838281274f, 0.852343738f, 0.866406262f,
    0.880468726f, 0.89453125f, 0.908593774f, 0.922656238f, 0.936718762f, 0.950781226f,
    0.96484375f, 0.978906274f, 0.992968738f, 1.0f,
};

#define LF__QDQ_BLOCK 256                           // bnb's blocksize for double quantization
static const float lf__inv127 = 7.874015718698502e-3f;  // bnb's 1/127 (int8_vectorwise_dequant)

LF_API const float *lf_nf4_code(void) { return lf__nf4_code; }
LF_API const float *lf_quant_dynamic_map(void) { return lf__dynamic_map; }

static bool lf__nf4_blocksize_ok(int bs) { return bs >= 32 && bs <= 4096 && (bs & (bs - 1)) == 0; }

// The nearest of 2 * top sorted codes to s, given their 2 * top - 1 midpoints: the number of
// midpoints below s, so a tie goes to the lower code (torch.bucketize; bnb's CUDA NF4 tree).
LF__INLINE int lf__bucket(const float *mid, int top, float s) {
    int q = 0;
    for (int step = top; step; step >>= 1) q += step * (s > mid[q + step - 1]);
    return q;
}

// max |x[i] - sub| into *am; returns -1, or the index of the first value that is NaN or Inf.
static int64_t lf__absmax(const float *x, int64_t n, float sub, float *am) {
    float m = 0;
    for (int64_t i = 0; i < n; i++) {
        float a = fabsf(x[i] - sub);
        if (!(a <= FLT_MAX)) return i;
        m = a > m ? a : m;
    }
    *am = m;
    return -1;
}

// bnb's blockwise scaling, as its "default" kernels do it (its CPU build runs those for
// quantize_4bit): the absmax is clamped to >= 1e-38 (an all-zero block scales to 0, code 0.0);
// a whole block is scaled by x * (1 / absmax), the partial last block by x / absmax, and that
// block stores the clamped absmax. bnb's clamp of the scaled values to [-1, 1] changes no
// bucket, so it is left out.
typedef struct lf__bscale {
    float f;
    bool divide;
} lf__bscale;
static lf__bscale lf__block_scale(float am, bool partial, float *stored) {
    float c = am < 1e-38f ? 1e-38f : am;
    *stored = partial ? c : am;
    lf__bscale s = {partial ? c : 1.0f / c, partial};
    return s;
}
LF__INLINE float lf__bscaled(lf__bscale s, float x) { return s.divide ? x / s.f : x * s.f; }

#ifdef LF__AVX512
// The NF4 codes of 16 scaled values into 8 bytes (element 2i in the high nibble), as lf__bucket.
LF__INLINE void lf__nf4_code16(unsigned char *dst, __m512 s) {
    __m512i q = _mm512_setzero_si512();
    for (int t = 0; t < 15; t++) {
        __mmask16 above = _mm512_cmp_ps_mask(s, _mm512_set1_ps(lf__nf4_mid[t]), _CMP_GT_OQ);
        q = _mm512_mask_add_epi32(q, above, q, _mm512_set1_epi32(1));
    }
    __m128i b = _mm512_cvtepi32_epi8(q);  // one code per byte; a 16-bit lane holds an even and an odd one
    __m128i pair = _mm_and_si128(_mm_or_si128(_mm_slli_epi16(b, 4), _mm_srli_epi16(b, 8)), _mm_set1_epi16(0xff));
    _mm_storel_epi64((__m128i *)dst, _mm_packus_epi16(pair, pair));
}
#endif

LF_API lf_status lf_nf4_quantize(unsigned char *dst, float *absmax, const float *src, int64_t n, int blocksize) {
    if (!dst || !absmax || !src)
        return lf__fail(LF_ERR_ARG, "nf4 quantize: %s is NULL", !dst ? "dst" : !absmax ? "absmax" : "src");
    if (n <= 0) return lf__fail(LF_ERR_ARG, "nf4 quantize: n must be > 0, got %lld", (long long)n);
    if (!lf__nf4_blocksize_ok(blocksize))
        return lf__fail(LF_ERR_ARG, "nf4 quantize: blocksize must be 32, 64, 128, ..., 4096 (bitsandbytes), got %d",
                        blocksize);
    for (int64_t b0 = 0; b0 < n; b0 += blocksize) {
        int64_t len = LF__MIN(blocksize, n - b0), bad;
        float am = 0;
        if ((bad = lf__absmax(src + b0, len, 0.0f, &am)) >= 0)
            return lf__fail(LF_ERR_ARG, "nf4 quantize: src[%lld] is %s", (long long)(b0 + bad),
                            isnan(src[b0 + bad]) ? "NaN" : "infinite");
        lf__bscale s = lf__block_scale(am, len < blocksize, &absmax[b0 / blocksize]);
        int64_t i = b0;
#ifdef LF__AVX512
        if (!s.divide)  // a whole block: a multiple of 16 elements from an even index
            for (; i < b0 + len; i += 16)
                lf__nf4_code16(dst + i / 2, _mm512_mul_ps(_mm512_loadu_ps(src + i), _mm512_set1_ps(s.f)));
#endif
        for (; i < b0 + len; i++) {
            int c = lf__bucket(lf__nf4_mid, 8, lf__bscaled(s, src[i]));
            if (i & 1) dst[i >> 1] |= (unsigned char)c;
            else dst[i >> 1] = (unsigned char)(c << 4 | (i + 1 == n ? 7 : 0));  // an odd count pads with 0.0
        }
    }
    return LF_OK;
}

LF_API lf_status lf_nf4_dequantize(float *dst, const unsigned char *src, const float *absmax, int64_t n,
                                   int blocksize) {
    if (!dst || !src || !absmax)
        return lf__fail(LF_ERR_ARG, "nf4 dequantize: %s is NULL", !dst ? "dst" : !src ? "src" : "absmax");
    if (n <= 0) return lf__fail(LF_ERR_ARG, "nf4 dequantize: n must be > 0, got %lld", (long long)n);
    if (!lf__nf4_blocksize_ok(blocksize))
        return lf__fail(LF_ERR_ARG, "nf4 dequantize: blocksize must be 32, 64, 128, ..., 4096, got %d", blocksize);
    for (int64_t i = 0; i < n; i++)
        dst[i] = lf__nf4_code[i & 1 ? src[i >> 1] & 15 : src[i >> 1] >> 4] * absmax[i / blocksize];
    return LF_OK;
}

// Double quantization around a given offset (the public call computes it): bnb's
// quantize_blockwise(absmax - offset, blocksize=256) with the dynamic map, by its reference rule.
static lf_status lf__nf4_quantize_absmax_at(unsigned char *qabsmax, float *absmax2, const float *absmax,
                                            int64_t nblocks, float offset) {
    float mid[255];
    for (int i = 0; i < 255; i++) mid[i] = (lf__dynamic_map[i] + lf__dynamic_map[i + 1]) / 2;
    for (int64_t b0 = 0; b0 < nblocks; b0 += LF__QDQ_BLOCK) {
        int64_t len = LF__MIN(LF__QDQ_BLOCK, nblocks - b0), bad;
        float am = 0;
        if ((bad = lf__absmax(absmax + b0, len, offset, &am)) >= 0)
            return lf__fail(LF_ERR_ARG, "nf4 quantize absmax: absmax[%lld] - offset is not finite",
                            (long long)(b0 + bad));
        lf__bscale s = lf__block_scale(am, len < LF__QDQ_BLOCK, &absmax2[b0 / LF__QDQ_BLOCK]);
        for (int64_t i = b0; i < b0 + len; i++)
            qabsmax[i] = (unsigned char)lf__bucket(mid, 128, lf__bscaled(s, absmax[i] - offset));
    }
    return LF_OK;
}

LF_API lf_status lf_nf4_quantize_absmax(unsigned char *qabsmax, float *absmax2, float *offset, const float *absmax,
                                        int64_t nblocks) {
    if (!qabsmax || !absmax2 || !offset || !absmax)
        return lf__fail(LF_ERR_ARG, "nf4 quantize absmax: %s is NULL",
                        !qabsmax ? "qabsmax" : !absmax2 ? "absmax2" : !offset ? "offset" : "absmax");
    if (nblocks <= 0)
        return lf__fail(LF_ERR_ARG, "nf4 quantize absmax: nblocks must be > 0, got %lld", (long long)nblocks);
    // bnb takes torch's f32 mean, whose summation order follows the CPU's vector width; this
    // one is accumulated in double and rounded once, so the two can differ in the last bits
    double sum = 0;
    for (int64_t i = 0; i < nblocks; i++) {
        if (!(fabsf(absmax[i]) <= FLT_MAX))
            return lf__fail(LF_ERR_ARG, "nf4 quantize absmax: absmax[%lld] is not finite", (long long)i);
        sum += absmax[i];
    }
    *offset = (float)(sum / (double)nblocks);
    return lf__nf4_quantize_absmax_at(qabsmax, absmax2, absmax, nblocks, *offset);
}

// code2[q] * absmax2 + offset with bnb's two roundings: the volatile keeps the compiler from
// fusing them into one FMA (GCC does at its default -ffp-contract=fast).
LF__INLINE float lf__dq_absmax(const float *code2, unsigned char q, float absmax2, float offset) {
    volatile float p = code2[q] * absmax2;
    return p + offset;
}

LF_API lf_status lf_nf4_dequantize_absmax(float *absmax, const unsigned char *qabsmax, const float *absmax2,
                                          float offset, const float *code2, int64_t nblocks) {
    if (!absmax || !qabsmax || !absmax2)
        return lf__fail(LF_ERR_ARG, "nf4 dequantize absmax: %s is NULL",
                        !absmax ? "absmax" : !qabsmax ? "qabsmax" : "absmax2");
    if (nblocks <= 0)
        return lf__fail(LF_ERR_ARG, "nf4 dequantize absmax: nblocks must be > 0, got %lld", (long long)nblocks);
    if (!code2) code2 = lf__dynamic_map;
    for (int64_t i = 0; i < nblocks; i++)
        absmax[i] = lf__dq_absmax(code2, qabsmax[i], absmax2[i / LF__QDQ_BLOCK], offset);
    return LF_OK;
}

LF_API lf_status lf_int8_quantize(int8_t *dst, float *absmax, const float *src, int64_t rows, int64_t cols) {
    if (!dst || !absmax || !src)
        return lf__fail(LF_ERR_ARG, "int8 quantize: %s is NULL", !dst ? "dst" : !absmax ? "absmax" : "src");
    if (rows <= 0 || cols <= 0)
        return lf__fail(LF_ERR_ARG, "int8 quantize: rows and cols must be > 0, got %lld x %lld", (long long)rows,
                        (long long)cols);
    for (int64_t r = 0; r < rows; r++) {
        const float *x = src + r * cols;
        float am = 0;
        int64_t bad = lf__absmax(x, cols, 0.0f, &am);
        if (bad >= 0)
            return lf__fail(LF_ERR_ARG, "int8 quantize: src[%lld, %lld] is %s", (long long)r, (long long)bad,
                            isnan(x[bad]) ? "NaN" : "infinite");
        absmax[r] = am;
        float f = 127.0f / am;  // bnb: 127.0 / row_stats in f32; x * f stays within [-127, 127]
        for (int64_t c = 0; c < cols; c++) dst[r * cols + c] = am > 0 ? (int8_t)rintf(x[c] * f) : 0;
    }
    return LF_OK;
}

LF_API lf_status lf_int8_dequantize(float *dst, const int8_t *src, const float *absmax, int64_t rows, int64_t cols) {
    if (!dst || !src || !absmax)
        return lf__fail(LF_ERR_ARG, "int8 dequantize: %s is NULL", !dst ? "dst" : !src ? "src" : "absmax");
    if (rows <= 0 || cols <= 0)
        return lf__fail(LF_ERR_ARG, "int8 dequantize: rows and cols must be > 0, got %lld x %lld", (long long)rows,
                        (long long)cols);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) dst[r * cols + c] = ((float)src[r * cols + c] * absmax[r]) * lf__inv127;
    return LF_OK;
}

// GGUF blocks. Rounding as ggml's roundf (half away from zero) and its (int8_t) truncation;
// Q4_0's x * (1/d) is rounded to f32 before 8.5 is added, as gguf-py and a strict C build do (a
// fused multiply-add changes some codes). Where 1/d overflows (blocks of magnitude below about
// 1e-37, undefined in ggml) the codes are clamped to their range, NaN to the zero code.
static float lf__f32_rounded(float v) {
    volatile float t = v;  // an f32 store: no contraction into the next operation
    return t;
}

static int lf__ggml_code(float v, int lo, int hi, int nan) { return v != v ? nan : v < (float)lo ? lo : v > (float)hi ? hi : (int)v; }

static lf_status lf__ggml_check(lf_qtype type, const void *dst, const void *src, int64_t n, const char *what) {
    if (type != LF_QTYPE_Q8_0 && type != LF_QTYPE_Q4_0) return lf__fail(LF_ERR_ARG, "ggml %s: type %d is not Q8_0 or Q4_0", what, (int)type);
    if (!dst || !src) return lf__fail(LF_ERR_ARG, "ggml %s: %s is NULL", what, !dst ? "dst" : "src");
    if (n <= 0 || n % 32) return lf__fail(LF_ERR_ARG, "ggml %s: %lld values, not a positive multiple of 32", what, (long long)n);
    return LF_OK;
}

LF_API lf_status lf_ggml_quantize(lf_qtype type, unsigned char *dst, const float *src, int64_t n) {
    lf_status s = lf__ggml_check(type, dst, src, n, "quantize");
    if (s != LF_OK) return s;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(src[i])) return lf__fail(LF_ERR_ARG, "ggml quantize: element %lld is %g", (long long)i, (double)src[i]);
    for (int64_t b = 0; b < n / 32; b++) {
        const float *x = src + 32 * b;
        float amax = 0, m = x[0];  // Q4_0: the first of the largest magnitude, sign kept (x[0] if all are 0)
        for (int j = 0; j < 32; j++)
            if (amax < fabsf(x[j])) amax = fabsf(x[j]), m = x[j];
        float d = type == LF_QTYPE_Q8_0 ? amax / 127.0f : m / -8.0f, id = d != 0 ? 1.0f / d : 0.0f;
        uint16_t h = lf_f32_to_f16(d);
        if (type == LF_QTYPE_Q8_0) {
            unsigned char *o = dst + LF_Q8_0_BYTES * b;
            o[0] = (unsigned char)(h & 0xff), o[1] = (unsigned char)(h >> 8);
            for (int j = 0; j < 32; j++) o[2 + j] = (unsigned char)(int8_t)lf__ggml_code(roundf(x[j] * id), -127, 127, 0);
        } else {
            unsigned char *o = dst + LF_Q4_0_BYTES * b;
            o[0] = (unsigned char)(h & 0xff), o[1] = (unsigned char)(h >> 8);
            for (int j = 0; j < 16; j++) {
                int lo = lf__ggml_code(lf__f32_rounded(x[j] * id) + 8.5f, 0, 15, 8);
                int hi = lf__ggml_code(lf__f32_rounded(x[j + 16] * id) + 8.5f, 0, 15, 8);
                o[2 + j] = (unsigned char)(lo | hi << 4);
            }
        }
    }
    return LF_OK;
}

LF_API lf_status lf_ggml_dequantize(lf_qtype type, float *dst, const unsigned char *src, int64_t n) {
    lf_status s = lf__ggml_check(type, dst, src, n, "dequantize");
    if (s != LF_OK) return s;
    for (int64_t b = 0; b < n / 32; b++) {
        float *y = dst + 32 * b;
        if (type == LF_QTYPE_Q8_0) {
            const unsigned char *q = src + LF_Q8_0_BYTES * b;
            float d = lf_f16_to_f32((uint16_t)(q[0] | q[1] << 8));
            for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)q[2 + j] * d;
        } else {
            const unsigned char *q = src + LF_Q4_0_BYTES * b;
            float d = lf_f16_to_f32((uint16_t)(q[0] | q[1] << 8));
            for (int j = 0; j < 16; j++) y[j] = (float)((q[2 + j] & 15) - 8) * d, y[j + 16] = (float)((q[2 + j] >> 4) - 8) * d;
        }
    }
    return LF_OK;
}

// -- 3.5 quantized tensors

static const char *const lf__qtype_names[] = {"none", "nf4", "int8", "q8_0", "q4_0", "q4"};
LF_API const char *lf_qtype_name(lf_qtype t) { return (unsigned)t <= LF_QTYPE_Q4 ? lf__qtype_names[t] : "none"; }
LF_API lf_qtype lf_qtype_from_name(const char *name) {
    for (int i = 1; name && i <= LF_QTYPE_Q4; i++)
        if (!strcmp(name, lf__qtype_names[i])) return (lf_qtype)i;
    return LF_QTYPE_NONE;
}

#define LF__ALIGN64(n) (((n) + 63) & ~(size_t)63)

// A quantized weight with these fields and the others zero.
static lf_qtensor lf__qtensor_make(lf_qtype type, int64_t rows, int64_t cols, int blocksize, const unsigned char *q,
                                   const float *absmax, void *mem) {
    lf_qtensor t;
    memset(&t, 0, sizeof t);
    t.type = type, t.rows = rows, t.cols = cols, t.blocksize = blocksize, t.q = q, t.absmax = absmax, t.mem_ = mem;
    return t;
}

// Q4 group sizes: a power of two from 16 that divides the row, or the whole (even) row.
static bool lf__q4_group_ok(int g, int64_t cols) {
    return g > 0 && cols % 2 == 0 && cols % g == 0 && (g == cols || (g >= 16 && (g & (g - 1)) == 0));
}

// The scale and zero of a group whose values lie in [lo, hi]. GPTQ's quantizer (auto_gptq
// Quantizer.find_params): the range widened to hold 0, symmetric where asked and the group has a
// negative value, [0, 0] widened to [-1, 1]. AWQ's (AutoAWQ pseudo_quantize_tensor, zero point):
// the range as it is, at least 1e-5 wide, the zero clamped to [0, 15]. Either way s = range / 15
// rounded to f16, at least 2^-24 (f16's smallest step), and the zero computed from that s.
static void lf__q4_range_params(double lo, double hi, bool asym, bool awq, float *scale, int *zero) {
    if (!awq) {
        lo = LF__MIN(lo, 0.0), hi = LF__MAX(hi, 0.0);
        if (!asym) {
            hi = LF__MAX(-lo, hi);
            if (lo < 0) lo = -hi;
        }
        if (lo == 0 && hi == 0) lo = -1, hi = 1;
    }
    float s = lf_f16_to_f32(lf_f32_to_f16((float)(LF__MAX(hi - lo, awq ? 1e-5 : 0.0) / 15.0)));
    *scale = s > 0 ? s : 5.9604645e-8f;
    double z = rint(-lo / *scale);
    *zero = !asym && !awq ? 8 : z < 0 ? 0 : z > 15 ? 15 : (int)z;
}

LF_API void lf_q4_params(const float *x, int n, bool asym, float *scale, int *zero) {
    float lo = 0, hi = 0;
    for (int i = 0; i < n; i++) lo = LF__MIN(lo, x[i]), hi = LF__MAX(hi, x[i]);
    lf__q4_range_params(lo, hi, asym, false, scale, zero);
}

LF_API int lf_q4_code(float x, float scale, int zero) {
    float c = rintf(x / scale) + (float)zero;
    return c < 0 ? 0 : c > 15 ? 15 : (int)c;
}

typedef struct lf__q4_build {  // the arrays of a Q4 weight being filled
    unsigned char *codes, *zeros;
    float *scales;
    int32_t *g_idx;
} lf__q4_build;

// q becomes an empty Q4 weight (codes 0) that owns its arrays, with a g_idx when asked.
static lf_status lf__q4_alloc(lf_qtensor *q, lf__q4_build *b, int64_t rows, int64_t cols, int g, bool g_idx) {
    size_t n = (size_t)rows * (size_t)cols, ng = n / (size_t)g, qb = LF__ALIGN64(n / 2), sb = LF__ALIGN64(ng * 4),
           zb = LF__ALIGN64(ng);
    unsigned char *mem = (unsigned char *)lf__calloc(qb + sb + zb + (g_idx ? (size_t)cols * 4 : 0), 1, "q4 weight");
    if (!mem) return LF_ERR_NOMEM;
    b->codes = mem, b->scales = (float *)(mem + qb), b->zeros = mem + qb + sb;
    b->g_idx = g_idx ? (int32_t *)(mem + qb + sb + zb) : NULL;
    *q = lf__qtensor_make(LF_QTYPE_Q4, rows, cols, g, b->codes, b->scales, mem);
    q->zeros = b->zeros, q->g_idx = b->g_idx;
    return LF_OK;
}

static void lf__q4_set(lf__q4_build *b, int64_t cols, int64_t r, int64_t k, int code) {
    size_t i = (size_t)r * (size_t)cols + (size_t)k;
    b->codes[i / 2] = (unsigned char)((b->codes[i / 2] & (i & 1 ? 0x0f : 0xf0)) | code << (i & 1 ? 4 : 0));
}

// Round-to-nearest Q4 of w [rows, cols] (finite) in groups of g with GPTQ's or AWQ's parameters.
static lf_status lf__q4_quantize(lf_qtensor *q, const float *w, int64_t rows, int64_t cols, int g, bool asym, bool awq) {
    lf__q4_build b;
    lf_status st = lf__q4_alloc(q, &b, rows, cols, g, false);
    if (st != LF_OK) return st;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t k0 = 0; k0 < cols; k0 += g) {
            const float *x = w + r * cols + k0;
            float lo = x[0], hi = x[0];
            for (int i = 0; i < g; i++) lo = LF__MIN(lo, x[i]), hi = LF__MAX(hi, x[i]);
            int64_t gi = (r * cols + k0) / g;
            int z;
            lf__q4_range_params(lo, hi, asym, awq, &b.scales[gi], &z);
            b.zeros[gi] = (unsigned char)z;
            for (int i = 0; i < g; i++) lf__q4_set(&b, cols, r, k0 + i, lf_q4_code(x[i], b.scales[gi], z));
        }
    return LF_OK;
}

LF_API void lf_qtensor_deinit(lf_qtensor *qt) {
    if (!qt) return;
    LF_FREE(qt->mem_);
    memset(qt, 0, sizeof *qt);
}

LF_API lf_status lf_qtensor_quantize(lf_qtensor *qt, const float *w, int64_t rows, int64_t cols,
                                     const lf_qtensor_desc *desc) {
    if (!qt) return lf__fail(LF_ERR_ARG, "qtensor quantize: qt is NULL");
    memset(qt, 0, sizeof *qt);
    if (!w || !desc) return lf__fail(LF_ERR_ARG, "qtensor quantize: %s is NULL", !w ? "w" : "desc");
    size_t n;
    if (rows <= 0 || cols <= 0 || !lf__mul_ok((size_t)rows, (size_t)cols, &n) || n > (size_t)INT64_MAX)
        return lf__fail(LF_ERR_ARG, "qtensor quantize: shape [%lld, %lld] must be positive and fit in int64",
                        (long long)rows, (long long)cols);
    lf_status st;
    if (desc->type == LF_QTYPE_INT8) {
        unsigned char *mem = (unsigned char *)lf__alloc(LF__ALIGN64(n) + (size_t)rows * 4, "int8 weight");
        if (!mem) return LF_ERR_NOMEM;
        float *absmax = (float *)(mem + LF__ALIGN64(n));
        if ((st = lf_int8_quantize((int8_t *)mem, absmax, w, rows, cols)) != LF_OK) {
            LF_FREE(mem);
            return st;
        }
        *qt = lf__qtensor_make(LF_QTYPE_INT8, rows, cols, 0, mem, absmax, mem);
        return LF_OK;
    }
    if (desc->type == LF_QTYPE_Q8_0 || desc->type == LF_QTYPE_Q4_0) {
        if (cols % 32) return lf__fail(LF_ERR_ARG, "qtensor quantize: Q8_0/Q4_0 rows of %lld values, not a multiple of 32", (long long)cols);
        size_t bytes = n / 32 * (desc->type == LF_QTYPE_Q8_0 ? LF_Q8_0_BYTES : LF_Q4_0_BYTES);
        unsigned char *mem = (unsigned char *)lf__alloc(bytes, "ggml weight");
        if (!mem) return LF_ERR_NOMEM;
        if ((st = lf_ggml_quantize(desc->type, mem, w, (int64_t)n)) != LF_OK) return LF_FREE(mem), st;
        *qt = lf__qtensor_make(desc->type, rows, cols, 32, mem, NULL, mem);
        return LF_OK;
    }
    if (desc->type == LF_QTYPE_Q4) {
        int g = desc->blocksize == -1 ? (int)cols : desc->blocksize ? desc->blocksize : 128;
        if (!lf__q4_group_ok(g, cols))
            return lf__fail(LF_ERR_ARG, "qtensor quantize: Q4 group size %d does not divide rows of %lld values (a power of "
                            "two from 16, or the whole even row)", g, (long long)cols);
        for (size_t i = 0; i < n; i++)
            if (!isfinite(w[i])) return lf__fail(LF_ERR_ARG, "qtensor quantize: element %zu is %g", i, (double)w[i]);
        return lf__q4_quantize(qt, w, rows, cols, g, desc->asym, false);
    }
    if (desc->type != LF_QTYPE_NF4)
        return lf__fail(LF_ERR_ARG, "qtensor quantize: desc.type must be LF_QTYPE_NF4, INT8, Q8_0, Q4_0 or Q4, got %d", (int)desc->type);
    int bs = desc->blocksize ? desc->blocksize : 64;
    if (!lf__nf4_blocksize_ok(bs))
        return lf__fail(LF_ERR_ARG, "qtensor quantize: desc.blocksize must be 32, 64, 128, ..., 4096, got %d", bs);
    size_t nb = (n + (size_t)bs - 1) / (size_t)bs, nb2 = (nb + LF__QDQ_BLOCK - 1) / LF__QDQ_BLOCK;
    size_t qbytes = LF__ALIGN64((n + 1) / 2);
    size_t bytes = qbytes + (desc->double_quant ? LF__ALIGN64(nb) + nb2 * 4 : nb * 4);
    unsigned char *mem = (unsigned char *)lf__alloc(bytes, "nf4 weight");
    // double quantization keeps only the quantized absmax: the f32 ones live for this call
    float *absmax = desc->double_quant ? (float *)lf__alloc(nb * 4, "nf4 absmax") : (float *)(mem + qbytes);
    if (!mem || !absmax) {
        LF_FREE(mem);
        if (desc->double_quant) LF_FREE(absmax);
        return LF_ERR_NOMEM;
    }
    lf_qtensor q = lf__qtensor_make(LF_QTYPE_NF4, rows, cols, bs, mem, absmax, mem);
    st = lf_nf4_quantize(mem, absmax, w, (int64_t)n, bs);
    if (desc->double_quant) {
        unsigned char *qabsmax = mem + qbytes;
        float *absmax2 = (float *)(mem + qbytes + LF__ALIGN64(nb));
        if (st == LF_OK) st = lf_nf4_quantize_absmax(qabsmax, absmax2, &q.offset, absmax, (int64_t)nb);
        q.absmax = NULL, q.qabsmax = qabsmax, q.absmax2 = absmax2, q.code2 = lf__dynamic_map;
        LF_FREE(absmax);
    }
    if (st != LF_OK) {
        LF_FREE(mem);
        return st;
    }
    *qt = q;
    return LF_OK;
}

// Names the first field of w that cannot describe a quantized weight.
static lf_status lf__qtensor_check(const lf_qtensor *w, const char *fn) {
    size_t n;
    if (!w) return lf__fail(LF_ERR_ARG, "%s: w is NULL", fn);
    if (w->type < LF_QTYPE_NF4 || w->type > LF_QTYPE_Q4)
        return lf__fail(LF_ERR_ARG, "%s: w.type must be LF_QTYPE_NF4, INT8, Q8_0, Q4_0 or Q4, got %d", fn, (int)w->type);
    if (w->rows <= 0 || w->cols <= 0 || !lf__mul_ok((size_t)w->rows, (size_t)w->cols, &n) || n > (size_t)INT64_MAX)
        return lf__fail(LF_ERR_ARG, "%s: w shape [%lld, %lld] must be positive", fn, (long long)w->rows,
                        (long long)w->cols);
    if (!w->q) return lf__fail(LF_ERR_ARG, "%s: w.q is NULL", fn);
    if (w->type == LF_QTYPE_INT8) return w->absmax ? LF_OK : lf__fail(LF_ERR_ARG, "%s: w.absmax is NULL", fn);
    if (w->type == LF_QTYPE_Q4) {
        if (!lf__q4_group_ok(w->blocksize, w->cols))
            return lf__fail(LF_ERR_ARG, "%s: Q4 group size %d does not divide rows of %lld values", fn, w->blocksize, (long long)w->cols);
        return w->absmax && w->zeros ? LF_OK : lf__fail(LF_ERR_ARG, "%s: w.%s is NULL", fn, !w->absmax ? "absmax" : "zeros");
    }
    if (w->type >= LF_QTYPE_Q8_0)  // blocks of 32 along each row
        return w->cols % 32 == 0 ? LF_OK : lf__fail(LF_ERR_ARG, "%s: Q8_0/Q4_0 rows of %lld values, not a multiple of 32", fn, (long long)w->cols);
    if (!lf__nf4_blocksize_ok(w->blocksize))
        return lf__fail(LF_ERR_ARG, "%s: w.blocksize must be 32, 64, 128, ..., 4096, got %d", fn, w->blocksize);
    if (w->qabsmax) {
        if (!w->absmax2 || !w->code2)
            return lf__fail(LF_ERR_ARG, "%s: w.%s is NULL", fn, !w->absmax2 ? "absmax2" : "code2");
    } else if (!w->absmax)
        return lf__fail(LF_ERR_ARG, "%s: w.absmax and w.qabsmax are both NULL", fn);
    return LF_OK;
}

// Scale of NF4 block b (double-quantized ones rebuilt as bnb does).
LF__INLINE float lf__nf4_scale(const lf_qtensor *w, int64_t b) {
    if (!w->qabsmax) return w->absmax[b];
    return lf__dq_absmax(w->code2, w->qabsmax[b], w->absmax2[b / LF__QDQ_BLOCK], w->offset);
}

// Element i (flat, row-major) of w in f32 (GGUF blocks exactly as lf_ggml_dequantize).
LF__INLINE float lf__q_at(const lf_qtensor *w, int64_t i) {
    if (w->type == LF_QTYPE_INT8) return ((float)((const int8_t *)w->q)[i] * w->absmax[i / w->cols]) * lf__inv127;
    if (w->type == LF_QTYPE_Q8_0) {
        const unsigned char *b = w->q + (i / 32) * LF_Q8_0_BYTES;
        return (float)(int8_t)b[2 + i % 32] * lf_f16_to_f32((uint16_t)(b[0] | b[1] << 8));
    }
    if (w->type == LF_QTYPE_Q4_0) {
        const unsigned char *b = w->q + (i / 32) * LF_Q4_0_BYTES;
        int j = (int)(i % 32), code = j < 16 ? b[2 + j] & 15 : b[2 + j - 16] >> 4;
        return (float)(code - 8) * lf_f16_to_f32((uint16_t)(b[0] | b[1] << 8));
    }
    if (w->type == LF_QTYPE_Q4) {
        int64_t r = i / w->cols, k = i % w->cols, ng = w->cols / w->blocksize;
        int64_t g = r * ng + (w->g_idx ? w->g_idx[k] : k / w->blocksize);
        return (float)((w->q[i >> 1] >> (i & 1 ? 4 : 0) & 15) - w->zeros[g]) * w->absmax[g];
    }
    return lf__nf4_code[i & 1 ? w->q[i >> 1] & 15 : w->q[i >> 1] >> 4] * lf__nf4_scale(w, i / w->blocksize);
}

#ifdef LF__AVX512
// w[r, k .. k + 16) (cols and k multiples of 16, so one NF4 block, or half a GGUF block).
LF__INLINE __m512 lf__q_load16(const lf_qtensor *w, int64_t r, int64_t k) {
    int64_t i = r * w->cols + k;
    if (w->type == LF_QTYPE_INT8) {
        __m512 q = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(w->q + i))));
        return _mm512_mul_ps(_mm512_mul_ps(q, _mm512_set1_ps(w->absmax[r])), _mm512_set1_ps(lf__inv127));
    }
    if (w->type == LF_QTYPE_Q8_0 || w->type == LF_QTYPE_Q4_0) {
        bool q8 = w->type == LF_QTYPE_Q8_0;
        const unsigned char *b = w->q + (i / 32) * (q8 ? LF_Q8_0_BYTES : LF_Q4_0_BYTES);
        __m512 d = _mm512_set1_ps(lf_f16_to_f32((uint16_t)(b[0] | b[1] << 8)));
        if (q8) return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 2 + i % 32)))), d);
        __m128i by = _mm_loadu_si128((const __m128i *)(b + 2)), m = _mm_set1_epi8(15);  // low nibbles: values 0-15, high: 16-31
        __m128i codes = i % 32 ? _mm_and_si128(_mm_srli_epi16(by, 4), m) : _mm_and_si128(by, m);
        __m512i c = _mm512_sub_epi32(_mm512_cvtepu8_epi32(codes), _mm512_set1_epi32(8));
        return _mm512_mul_ps(_mm512_cvtepi32_ps(c), d);
    }
    if (w->type == LF_QTYPE_Q4) {
        if (w->g_idx) {  // act order: the 16 columns may belong to different groups
            float t[16];
            for (int j = 0; j < 16; j++) t[j] = lf__q_at(w, i + j);
            return _mm512_loadu_ps(t);
        }
        // 8 bytes to 16 codes in element order: byte j's low nibble, then its high nibble
        __m128i b = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)(w->q + i / 2)));
        __m128i codes = _mm_or_si128(_mm_and_si128(b, _mm_set1_epi16(15)), _mm_slli_epi16(_mm_srli_epi16(b, 4), 8));
        int64_t g = r * (w->cols / w->blocksize) + k / w->blocksize;
        __m512i c = _mm512_sub_epi32(_mm512_cvtepu8_epi32(codes), _mm512_set1_epi32(w->zeros[g]));
        return _mm512_mul_ps(_mm512_cvtepi32_ps(c), _mm512_set1_ps(w->absmax[g]));
    }
    // NF4: 8 bytes to 16 codes in element order: byte j's high nibble, then its low nibble
    __m128i b = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)(w->q + i / 2)));
    __m128i codes = _mm_or_si128(_mm_srli_epi16(b, 4), _mm_slli_epi16(_mm_and_si128(b, _mm_set1_epi16(15)), 8));
    __m512 v = _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(codes), _mm512_loadu_ps(lf__nf4_code));
    return _mm512_mul_ps(v, _mm512_set1_ps(lf__nf4_scale(w, i >> __builtin_ctz((unsigned)w->blocksize))));
}
#endif

// Row r of w into dst [cols].
static void lf__q_row(const lf_qtensor *w, int64_t r, float *dst) {
    int64_t i0 = r * w->cols, k = 0;
#ifdef LF__AVX512
    if (w->cols % 16 == 0)
        for (; k < w->cols; k += 16) _mm512_storeu_ps(dst + k, lf__q_load16(w, r, k));
#endif
    for (; k < w->cols; k++) dst[k] = lf__q_at(w, i0 + k);
}

LF_API lf_status lf_qtensor_dequantize(const lf_qtensor *qt, float *out) {
    lf_status st = lf__qtensor_check(qt, "qtensor dequantize");
    if (st != LF_OK) return st;
    if (!out) return lf__fail(LF_ERR_ARG, "qtensor dequantize: out is NULL");
    for (int64_t r = 0; r < qt->rows; r++) lf__q_row(qt, r, out + r * qt->cols);
    return LF_OK;
}

// -- 3.6 matmul on quantized weights
//
// ON THE QUANTIZED MATMUL: the packed f32 kernel of 3.1 multiplies K-major panels of 48 output
// columns by LF__PK_KC reduction steps. Here each panel is dequantized straight from the
// quantized weight into a per-thread buffer, so the f32 matrix never exists:
//  - out = x . w^T: panel[k][c] = w[m0 + c, k0 + k] (16 x 16 blocks transposed in registers);
//  - dx = dout . w: panel[m][c] = w[m0 + m, c0 + c] (rows of w as stored, no transpose).
// Each element is dequantized once per call and then meets all N rows, so at training sizes the
// cost is the f32 GEMM's. Below LF__MM_PACKED_MIN_N rows (decode) the forward product instead
// runs 3.1's dot kernel on LF__MM_MR rows of w dequantized at a time. Either way the buffers hold
// exactly lf_qtensor_dequantize's values and go through lf__gemm's tiles in its order, hence the
// same bits. Vector dequantization needs cols % 16 == 0 (16 consecutive elements then share a
// row and an NF4 block); other shapes take a scalar path.

typedef struct lf__qmm_job {
    lf__mm_job mm;    // the f32 GEMM fed by the panels: out [N, mm.M] (= or +=) x [N, mm.K] . panel
    const lf_qtensor *w;
    float *buf;       // [threads, per_thread]: a panel, or LF__MM_MR dequantized rows for the dot kernel
    size_t per_thread;
    bool dx;          // panels of w as stored (dx = dout . w) instead of w^T
} lf__qmm_job;

// Forward panel: pack[k][c] = w[m0 + c, k0 + k] for k < kc, c < 48 (0 past the last row).
static void lf__q_pack_wt(const lf_qtensor *w, float *pack, int64_t m0, int64_t k0, int kc) {
    int ncols = (int)LF__MIN(LF__PK_W, w->rows - m0);
#ifdef LF__AVX512
    if (w->cols % 16 == 0) {  // then kc is a multiple of 16 too
        for (int v = 0; v < 3; v++)
            for (int t = 0; t < kc; t += 16) {
                __m512i r[16];
                for (int c = 0; c < 16; c++)
                    r[c] = 16 * v + c < ncols ? _mm512_castps_si512(lf__q_load16(w, m0 + 16 * v + c, k0 + t))
                                              : _mm512_setzero_si512();
                lf__transpose16(r);
                for (int i = 0; i < 16; i++)
                    _mm512_storeu_si512((void *)(pack + (size_t)(t + i) * LF__PK_W + 16 * v), r[i]);
            }
        return;
    }
#endif
    for (int c = 0; c < LF__PK_W; c++)
        for (int k = 0; k < kc; k++)
            pack[k * LF__PK_W + c] = c < ncols ? lf__q_at(w, (m0 + c) * w->cols + k0 + k) : 0.0f;
}

// Backward panel: pack[m][c] = w[m0 + m, c0 + c] for m < kc, c < 48 (0 past the last column).
static void lf__q_pack_w(const lf_qtensor *w, float *pack, int64_t m0, int kc, int64_t c0) {
    int ncols = (int)LF__MIN(LF__PK_W, w->cols - c0);
#ifdef LF__AVX512
    if (w->cols % 16 == 0) {  // then ncols is a multiple of 16 too
        for (int m = 0; m < kc; m++)
            for (int v = 0; v < 3; v++)
                _mm512_storeu_ps(pack + m * LF__PK_W + 16 * v,
                                 16 * v < ncols ? lf__q_load16(w, m0 + m, c0 + 16 * v) : _mm512_setzero_ps());
        return;
    }
#endif
    for (int m = 0; m < kc; m++)
        for (int c = 0; c < LF__PK_W; c++)
            pack[m * LF__PK_W + c] = c < ncols ? lf__q_at(w, (m0 + m) * w->cols + c0 + c) : 0.0f;
}

// All N rows of out against one panel: the packed kernel's tiles, in lf__pk_range's order.
static void lf__q_panel(const lf__mm_job *j, const float *pack, int64_t c0, int64_t k0, int kc) {
#ifdef LF__AVX512
    const unsigned char *p = (const unsigned char *)pack;
    int64_t n = 0;
    for (; n + LF__PK_NR <= j->N; n += LF__PK_NR) lf__pk_tile(LF__PK_NR, LF_DTYPE_F32, j, p, n, c0, k0, kc);
    for (; n + 4 <= j->N; n += 4) lf__pk_tile(4, LF_DTYPE_F32, j, p, n, c0, k0, kc);
    for (; n < j->N; n++) lf__pk_tile(1, LF_DTYPE_F32, j, p, n, c0, k0, kc);
#else
    int ncols = (int)LF__MIN(LF__PK_W, j->M - c0);
    for (int64_t n = 0; n < j->N; n++) {
        float *o = j->out + n * j->M + c0, acc[LF__PK_W];
        const float *x = j->x + n * j->K + k0;
        for (int c = 0; c < ncols; c++) acc[c] = k0 > 0 || j->accumulate ? o[c] : j->bias ? j->bias[c0 + c] : 0.0f;
        for (int k = 0; k < kc; k++)
            for (int c = 0; c < ncols; c++) acc[c] += x[k] * pack[k * LF__PK_W + c];
        for (int c = 0; c < ncols; c++) o[c] = acc[c];
    }
#endif
}

static void lf__qmm_worker(void *arg, int64_t p0, int64_t p1, int tid) {
    const lf__qmm_job *q = (const lf__qmm_job *)arg;
    const lf__mm_job *j = &q->mm;
    float *pack = q->buf + (size_t)tid * q->per_thread;
    for (int64_t p = p0; p < p1; p++)
        for (int64_t k0 = 0; k0 < j->K; k0 += LF__PK_KC) {
            int kc = (int)LF__MIN(LF__PK_KC, j->K - k0);
            if (q->dx) lf__q_pack_w(q->w, pack, k0, kc, p * LF__PK_W);
            else lf__q_pack_wt(q->w, pack, p * LF__PK_W, k0, kc);
            lf__q_panel(j, pack, p * LF__PK_W, k0, kc);
        }
}

// Few rows (decode): the dot kernel of 3.1, in lf__mm_range's order, over tiles of LF__MM_MR
// rows of w dequantized into the thread's buffer.
static void lf__qmm_dot_worker(void *arg, int64_t t0, int64_t t1, int tid) {
    const lf__qmm_job *q = (const lf__qmm_job *)arg;
    lf__mm_job j = q->mm;  // re-pointed at each tile: w to the buffer, out to the tile's first column
    float *rows = q->buf + (size_t)tid * q->per_thread;
    int64_t full = j.M / LF__MM_MR;
    for (int64_t t = t0; t < t1; t++) {
        int64_t c0 = t * LF__MM_MR, mr = LF__MIN(LF__MM_MR, j.M - c0), n = 0;
        for (int64_t c = 0; c < mr; c++) lf__q_row(q->w, c0 + c, rows + c * j.K);
        j.w = (const unsigned char *)rows, j.out = q->mm.out + c0;
        if (t < full) {
            for (; n + LF__MM_NR <= j.N; n += LF__MM_NR) lf__mm_tile(LF__MM_NR, LF__MM_MR, LF_DTYPE_F32, &j, n, 0);
            for (; n < j.N; n++) lf__mm_tile(1, LF__MM_MR, LF_DTYPE_F32, &j, n, 0);
        } else
            for (int64_t c = 0; c < mr; c++)
                for (n = 0; n < j.N; n++) lf__mm_tile(1, 1, LF_DTYPE_F32, &j, n, c);
        if (j.bias)
            for (n = 0; n < j.N; n++)
                for (int64_t c = 0; c < mr; c++) j.out[n * j.M + c] += j.bias[c0 + c];
    }
}

// Floats of per-thread buffer lf__qgemm needs for a weight of `cols` columns: a panel, or the dot
// kernel's rows.
static size_t lf__qgemm_per_thread(int64_t cols) {
    return LF__MAX((size_t)LF__PK_KC * LF__PK_W, (size_t)LF__MM_MR * (size_t)cols);
}
// Bytes of scratch lf__qgemm needs for weights of up to `cols` columns on a pool of `threads`.
static size_t lf__qgemm_scratch(int64_t cols, int threads) {
    return (size_t)threads * lf__qgemm_per_thread(cols) * sizeof(float) + 64;
}

// The kernel-level entry (w already checked). Forward: out[N, w->rows] (= or +=) x[N, w->cols] .
// dequant(w)^T (+ bias). dx: out[N, w->cols] (= or +=) x[N, w->rows] . dequant(w), no bias.
// Few rows (or kern DOT) go through the dot kernel as lf__gemm's do; scratch holds
// lf__qgemm_scratch bytes.
static void lf__qgemm(lf_pool *pool, float *out, const float *x, const lf_qtensor *w, const float *bias, int64_t N,
                      void *scratch, bool accumulate, bool dx, lf__kern kern) {
    int64_t M = dx ? w->cols : w->rows, K = dx ? w->rows : w->cols;
    lf__qmm_job q;
    memset(&q, 0, sizeof q);
    q.mm.out = out, q.mm.x = x, q.mm.bias = dx ? NULL : bias, q.mm.dt = LF_DTYPE_F32;
    q.mm.N = N, q.mm.M = M, q.mm.K = q.mm.Kp = K, q.mm.accumulate = accumulate;
    q.w = w, q.dx = dx, q.per_thread = lf__qgemm_per_thread(w->cols);
    q.buf = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    if (!dx && (kern == LF__KERN_AUTO ? N < LF__MM_PACKED_MIN_N : kern == LF__KERN_DOT))
        lf_parallel_for(pool, LF__CEIL_DIV(M, LF__MM_MR), lf__qmm_dot_worker, &q);
    else lf_parallel_for(pool, LF__CEIL_DIV(M, LF__PK_W), lf__qmm_worker, &q);
}

static lf_status lf__qmatmul(lf_pool *pool, float *out, const float *x, const lf_qtensor *w, const float *bias,
                             int64_t N, bool dx, const char *fn) {
    lf_status st = lf__qtensor_check(w, fn);
    if (st != LF_OK) return st;
    if (!out || !x) return lf__fail(LF_ERR_ARG, "%s: %s is NULL", fn, !out ? "out" : "x");
    if (N <= 0) return lf__fail(LF_ERR_ARG, "%s: N must be > 0, got %lld", fn, (long long)N);
    void *scratch = lf__alloc(lf__qgemm_scratch(w->cols, lf_pool_size(pool)), "quantized matmul scratch");
    if (!scratch) return LF_ERR_NOMEM;
    lf__qgemm(pool, out, x, w, bias, N, scratch, false, dx, LF__KERN_AUTO);
    LF_FREE(scratch);
    return LF_OK;
}

LF_API lf_status lf_qtensor_matmul(lf_pool *pool, float *out, const float *x, const lf_qtensor *w,
                                   const float *bias, int64_t N) {
    return lf__qmatmul(pool, out, x, w, bias, N, false, "qtensor matmul");
}

LF_API lf_status lf_qtensor_matmul_dx(lf_pool *pool, float *dx, const float *dout, const lf_qtensor *w, int64_t N) {
    return lf__qmatmul(pool, dx, dout, w, NULL, N, true, "qtensor matmul_dx");
}

// -- 3.7 int8 dot products for Q8_0 and Q4_0 weights
//
// ON THE INT8 PRODUCT: as llama.cpp, the activations are quantized too (each row in blocks of
// 32: d = max|x| / 127, q = round(x / d), halves away from zero) and each block of a weight row
// meets the same block of an activation row in an exact integer dot product. Unlike
// llama.cpp's block_q8_0, d stays f32 (no f16 rounding of the activation scale). For output
// (n, r) the blocks are summed in increasing order, one rounding each:
//     acc = fma((float)idot_b, dw_b * dx_b, acc)        (acc starts at 0)
//     out = acc (+ bias[r]), or out += that when accumulating
// idot_b is exact (|idot| < 2^20, so (float)idot is too), hence every build (AVX-512 VNNI,
// AVX-VNNI, plain C) gives the same bits, whatever the thread count, the tiling or N: a row of
// a batch gets what it gets alone.
// VPDPBUSD multiplies unsigned by signed bytes, so the weights go in unsigned and the
// activations signed: Q8_0's w + 128 (idot = dot(w + 128, x) - 128 sum(x)), Q4_0's codes as
// stored (idot = dot(code, x) - 8 sum(x)); -128 sum(x) and -8 sum(x) are kept per activation
// block and start the integer sum. A strip of LF__QD_W weight rows is repacked (unpacked
// nibbles, + 128) so that 32-bit lane i of a vector holds 4 consecutive bytes of row i: an
// activation dword is then broadcast and one VPDPBUSD advances LF__QD_W rows at once, with no
// horizontal sums. A strip is packed once into the thread's buffer and meets all N rows in
// tiles of up to 8: decode streams each weight byte once (prefetched), prefill
// reuses the packed strip from L1/L2 and runs at the VPDPBUSD rate.

#if defined(__AVX512VNNI__) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define LF__VNNI 512
#define LF__QD_W 16  // weight rows per strip: the lanes of a vector
#elif defined(__AVXVNNI__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define LF__VNNI 256
#define LF__QD_W 8
#else
#define LF__QD_W 16  // plain C: rows per parallel unit
#endif
#define LF__QD_NT 8        // activation rows per tile
#define LF__QD_PF 16384    // bytes of weight prefetched ahead (measured: 4 KiB is too short)

// One activation block's scale and the integer that starts its dot with offset weights.
typedef struct lf__q8x_blk {
    float d;         // max|x| / 127 (f32); 0 for an all-zero block, NaN for one with NaN/Inf
    int32_t off[2];  // -128 sum(q) for Q8_0 weights (stored + 128), -8 sum(q) for Q4_0 codes
} lf__q8x_blk;

// Bytes of an activation buffer for x [N, cols] (cols % 32 == 0): q [N, cols] int8, then the
// blocks [N, cols / 32]; 64 more so that q can start on a cache line.
static size_t lf__q8x_bytes(int64_t N, int64_t cols) {
    return (size_t)N * (size_t)cols + (size_t)N * (size_t)(cols / 32) * sizeof(lf__q8x_blk) + 64;
}

static int8_t *lf__q8x_q(const void *buf) { return (int8_t *)(((uintptr_t)buf + 63) & ~(uintptr_t)63); }
static lf__q8x_blk *lf__q8x_blocks(const void *buf, int64_t N, int64_t cols) {
    return (lf__q8x_blk *)(lf__q8x_q(buf) + (size_t)N * (size_t)cols);
}

// Quantizes rows [n0, n1) of x [N, cols] into dst (lf__q8x_bytes(N, cols) bytes), as llama.cpp's
// quantize_row_q8_0_ref but for d's f16 rounding. A block holding NaN or Inf gets d = NaN and
// q = 0, so that the rows it meets come out NaN as in the f32 product; one with max|x| below
// 127 / FLT_MAX (1 / d overflows: undefined in llama.cpp) gets d = 0 and q = 0. The vector code
// computes the very same values (IEEE division, product and rounding).
static void lf__q8x_rows(void *dst, const float *x, int64_t N, int64_t cols, int64_t n0, int64_t n1) {
    int8_t *q = lf__q8x_q(dst);
    lf__q8x_blk *blk = lf__q8x_blocks(dst, N, cols);
    for (int64_t i = n0 * (cols / 32); i < n1 * (cols / 32); i++) {
        const float *v = x + 32 * i;
        int8_t *o = q + 32 * i;
        float amax = 0;
        bool finite = true;
        int32_t sum = 0;
#if LF__VNNI == 512
        __m512 a[2] = {_mm512_loadu_ps(v), _mm512_loadu_ps(v + 16)};
        finite = !(_mm512_fpclass_ps_mask(a[0], 0x99) | _mm512_fpclass_ps_mask(a[1], 0x99));  // NaN, +-Inf
        amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a[0]), _mm512_abs_ps(a[1])));
#elif LF__VNNI == 256
        const __m256 abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
        __m256 a[4], m = _mm256_setzero_ps();
        for (int h = 0; h < 4; h++) {
            a[h] = _mm256_loadu_ps(v + 8 * h);
            __m256 ah = _mm256_and_ps(a[h], abs);
            finite &= _mm256_movemask_ps(_mm256_cmp_ps(ah, _mm256_set1_ps(FLT_MAX), _CMP_LE_OQ)) == 0xff;
            m = _mm256_max_ps(m, ah);
        }
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        amax = _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
#else
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(v[j])), finite &= isfinite(v[j]) != 0;
#endif
        float d = finite ? amax / 127.0f : NAN, id = finite && d != 0 ? 1.0f / d : 0.0f;
        if (id > FLT_MAX) d = 0, id = 0;  // max|x| < 127 / FLT_MAX: zeros (llama.cpp's 1 / d overflows)
        if (!finite || id == 0) memset(o, 0, 32);
        else {
            // roundf(v * id) (|v * id| <= 127 + 2^-17): the vector code truncates and adds one away
            // from zero where the dropped part, which is exact, is at least a half
#if LF__VNNI == 512
            __m512i c[2];
            for (int h = 0; h < 2; h++) {
                __m512 p = _mm512_mul_ps(a[h], _mm512_set1_ps(id));
                __m512 t = _mm512_roundscale_ps(p, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
                __mmask16 up = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(p, t)), _mm512_set1_ps(0.5f), _CMP_GE_OQ);
                __m512i away = _mm512_or_si512(_mm512_srai_epi32(_mm512_castps_si512(p), 31), _mm512_set1_epi32(1));
                c[h] = _mm512_mask_add_epi32(_mm512_cvttps_epi32(t), up, _mm512_cvttps_epi32(t), away);
                _mm_storeu_si128((__m128i *)(o + 16 * h), _mm512_cvtepi32_epi8(c[h]));
            }
            sum = _mm512_reduce_add_epi32(_mm512_add_epi32(c[0], c[1]));
#elif LF__VNNI == 256
            __m256i c[4], s = _mm256_setzero_si256();
            for (int h = 0; h < 4; h++) {
                __m256 p = _mm256_mul_ps(a[h], _mm256_set1_ps(id));
                __m256 t = _mm256_round_ps(p, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
                __m256 up = _mm256_cmp_ps(_mm256_and_ps(_mm256_sub_ps(p, t), abs), _mm256_set1_ps(0.5f), _CMP_GE_OQ);
                __m256i away = _mm256_or_si256(_mm256_srai_epi32(_mm256_castps_si256(p), 31), _mm256_set1_epi32(1));
                c[h] = _mm256_add_epi32(_mm256_cvttps_epi32(t), _mm256_and_si256(_mm256_castps_si256(up), away));
                s = _mm256_add_epi32(s, c[h]);
            }
            __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(c[0], c[1]), _mm256_packs_epi32(c[2], c[3]));
            _mm256_storeu_si256((__m256i *)o, _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
            __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
            s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
            sum = _mm_cvtsi128_si32(_mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1)));
#else
            for (int j = 0; j < 32; j++) o[j] = (int8_t)roundf(v[j] * id), sum += o[j];
#endif
        }
        blk[i].d = d, blk[i].off[0] = -128 * sum, blk[i].off[1] = -8 * sum;
    }
}
// All N rows, on the calling thread.
static void lf__q8x_quantize(void *dst, const float *x, int64_t N, int64_t cols) { lf__q8x_rows(dst, x, N, cols, 0, N); }

typedef struct lf__qd_job {
    float *out;                // [N, rows]
    const float *bias;         // [rows] or NULL
    const lf_qtensor *w;
    const int8_t *xq;          // [N, cols]
    const lf__q8x_blk *xb;     // [N, nb]
    unsigned char *pack;       // [threads, lf__qd_per_thread]
    size_t per_thread;
    int64_t N, rows, cols, nb;
    bool q4, accumulate;
} lf__qd_job;

// Per-thread bytes: a packed strip, LF__QD_W rows of 32 bytes and an f32 scale per block.
static size_t lf__qd_per_thread(int64_t cols) { return (size_t)(cols / 32) * LF__QD_W * 36 + 64; }

// Bytes of scratch lf__qdot_gemm needs for weights of up to `cols` columns on `threads` threads
// (18 * cols per thread: less than lf__qgemm_scratch, so the model's buffer serves both).
static size_t lf__qdot_scratch(int64_t cols, int threads) { return (size_t)threads * lf__qd_per_thread(cols) + 64; }

LF__INLINE int32_t lf__ld_i32(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}
LF__INLINE uint16_t lf__ld_u16(const void *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

// The final store of one output, the same in every build.
LF__INLINE void lf__qd_store(const lf__qd_job *j, int64_t n, int64_t r, float acc) {
    float *o = j->out + n * j->rows + r;
    if (j->bias) acc += j->bias[r];
    *o = j->accumulate ? *o + acc : acc;
}

#ifdef LF__VNNI
// Packs weight rows [r0, r0 + nr) (nr <= LF__QD_W; missing rows repeat the last one with scale
// 0): pk [nb][8][LF__QD_W] dwords of unsigned weights, dws [nb][LF__QD_W] f32 scales.
static void lf__qd_pack(const lf__qd_job *j, int64_t r0, int nr, unsigned char *pk, float *dws) {
    const size_t bb = j->q4 ? LF_Q4_0_BYTES : LF_Q8_0_BYTES, rowb = (size_t)j->nb * bb;
    const unsigned char *row[LF__QD_W];
    for (int i = 0; i < LF__QD_W; i++) row[i] = j->w->q + (size_t)(r0 + LF__MIN(i, nr - 1)) * rowb;
    // the strip is contiguous and so are the strips after it: a slice per block, LF__QD_PF bytes
    // ahead, is prefetched (16 rows read in step are more streams than the hardware follows)
    const char *next = (const char *)(j->w->q + (size_t)r0 * rowb) + LF__QD_PF;
    size_t slice = (LF__QD_W * bb + 63) & ~(size_t)63, total = (size_t)j->rows * rowb, at_pf = (size_t)r0 * rowb + LF__QD_PF;
    size_t left = total > at_pf ? total - at_pf : 0;
#if LF__VNNI == 512
    const __mmask16 live = (__mmask16)((1u << nr) - 1);
    const __m512i lo4 = _mm512_set1_epi8(15), bias8 = _mm512_set1_epi8((char)0x80);
    for (int64_t b = 0; b < j->nb; b++) {
        for (size_t k = (size_t)b * slice; k < LF__MIN((size_t)(b + 1) * slice, left); k += 64) _mm_prefetch(next + k, _MM_HINT_T0);
        const size_t at = (size_t)b * bb + 2;
        unsigned char *o = pk + (size_t)b * 32 * LF__QD_W;
        __m512i z[8], t[8], u[8];
        if (j->q4) {
            // a 16 x 4 dword transpose of the packed nibbles: z[k] = rows k, k + 4, k + 8, k + 12,
            // then unpacks within 128-bit lanes; byte m holds values m and m + 16, so the low
            // nibbles of dword g are group g and the high ones group g + 4
            for (int k = 0; k < 4; k++) {
                __m128i r[4];
                for (int l = 0; l < 4; l++) r[l] = _mm_loadu_si128((const __m128i *)(row[k + 4 * l] + at));
                z[k] = _mm512_inserti32x4(_mm512_inserti32x4(_mm512_inserti32x4(_mm512_castsi128_si512(r[0]), r[1], 1), r[2], 2), r[3], 3);
            }
            t[0] = _mm512_unpacklo_epi32(z[0], z[1]), t[1] = _mm512_unpackhi_epi32(z[0], z[1]);
            t[2] = _mm512_unpacklo_epi32(z[2], z[3]), t[3] = _mm512_unpackhi_epi32(z[2], z[3]);
            u[0] = _mm512_unpacklo_epi64(t[0], t[2]), u[1] = _mm512_unpackhi_epi64(t[0], t[2]);
            u[2] = _mm512_unpacklo_epi64(t[1], t[3]), u[3] = _mm512_unpackhi_epi64(t[1], t[3]);
            for (int g = 0; g < 4; g++) {
                _mm512_storeu_si512((void *)(o + 64 * g), _mm512_and_si512(u[g], lo4));
                _mm512_storeu_si512((void *)(o + 64 * (g + 4)), _mm512_and_si512(_mm512_srli_epi16(u[g], 4), lo4));
            }
        } else {
            // a 16 x 8 dword transpose: z[k] = rows (k, k + 4) for k < 4, (k + 4, k + 8) after; two
            // rounds of unpacks, then one 128-bit shuffle leaves dword g of rows 0..15 in order
            for (int k = 0; k < 8; k++) {
                int a = k < 4 ? k : k + 4;
                z[k] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(row[a] + at))),
                                          _mm256_loadu_si256((const __m256i *)(row[a + 4] + at)), 1);
            }
            for (int k = 0; k < 8; k += 2) t[k] = _mm512_unpacklo_epi32(z[k], z[k + 1]), t[k + 1] = _mm512_unpackhi_epi32(z[k], z[k + 1]);
            for (int k = 0; k < 8; k += 4) {
                u[k] = _mm512_unpacklo_epi64(t[k], t[k + 2]), u[k + 1] = _mm512_unpackhi_epi64(t[k], t[k + 2]);
                u[k + 2] = _mm512_unpacklo_epi64(t[k + 1], t[k + 3]), u[k + 3] = _mm512_unpackhi_epi64(t[k + 1], t[k + 3]);
            }
            for (int g = 0; g < 4; g++) {  // w + 128: unsigned for VPDPBUSD
                _mm512_storeu_si512((void *)(o + 64 * g), _mm512_xor_si512(_mm512_shuffle_i32x4(u[g], u[g + 4], 0x88), bias8));
                _mm512_storeu_si512((void *)(o + 64 * (g + 4)), _mm512_xor_si512(_mm512_shuffle_i32x4(u[g], u[g + 4], 0xdd), bias8));
            }
        }
        // the f16 scales, inserted one by one (a gather is slower on Zen 5)
        uint16_t h[16];
        for (int i = 0; i < 16; i++) h[i] = lf__ld_u16(row[i] + (size_t)b * bb);
        __m512 d = _mm512_cvtph_ps(_mm256_setr_epi16((short)h[0], (short)h[1], (short)h[2], (short)h[3], (short)h[4], (short)h[5],
                                                     (short)h[6], (short)h[7], (short)h[8], (short)h[9], (short)h[10], (short)h[11],
                                                     (short)h[12], (short)h[13], (short)h[14], (short)h[15]));
        _mm512_storeu_ps(dws + b * LF__QD_W, _mm512_maskz_mov_ps(live, d));
    }
#else
    const __m256 live = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(nr), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
    const __m256i lo4 = _mm256_set1_epi8(15), bias8 = _mm256_set1_epi8((char)0x80);
    for (int64_t b = 0; b < j->nb; b++) {
        for (size_t k = (size_t)b * slice; k < LF__MIN((size_t)(b + 1) * slice, left); k += 64) _mm_prefetch(next + k, _MM_HINT_T0);
        const size_t at = (size_t)b * bb + 2;
        unsigned char *o = pk + (size_t)b * 32 * LF__QD_W;
        __m256i z[8], t[8], u[8];
        if (j->q4) {  // as above with z[k] = rows k, k + 4
            for (int k = 0; k < 4; k++)
                z[k] = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(row[k] + at))),
                                               _mm_loadu_si128((const __m128i *)(row[k + 4] + at)), 1);
            t[0] = _mm256_unpacklo_epi32(z[0], z[1]), t[1] = _mm256_unpackhi_epi32(z[0], z[1]);
            t[2] = _mm256_unpacklo_epi32(z[2], z[3]), t[3] = _mm256_unpackhi_epi32(z[2], z[3]);
            u[0] = _mm256_unpacklo_epi64(t[0], t[2]), u[1] = _mm256_unpackhi_epi64(t[0], t[2]);
            u[2] = _mm256_unpacklo_epi64(t[1], t[3]), u[3] = _mm256_unpackhi_epi64(t[1], t[3]);
            for (int g = 0; g < 4; g++) {
                _mm256_storeu_si256((__m256i *)(o + 32 * g), _mm256_and_si256(u[g], lo4));
                _mm256_storeu_si256((__m256i *)(o + 32 * (g + 4)), _mm256_and_si256(_mm256_srli_epi16(u[g], 4), lo4));
            }
        } else {  // an 8 x 8 dword transpose
            for (int k = 0; k < 8; k++) z[k] = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(row[k] + at)), bias8);
            for (int k = 0; k < 8; k += 2) t[k] = _mm256_unpacklo_epi32(z[k], z[k + 1]), t[k + 1] = _mm256_unpackhi_epi32(z[k], z[k + 1]);
            for (int k = 0; k < 8; k += 4) {
                u[k] = _mm256_unpacklo_epi64(t[k], t[k + 2]), u[k + 1] = _mm256_unpackhi_epi64(t[k], t[k + 2]);
                u[k + 2] = _mm256_unpacklo_epi64(t[k + 1], t[k + 3]), u[k + 3] = _mm256_unpackhi_epi64(t[k + 1], t[k + 3]);
            }
            for (int g = 0; g < 4; g++) {
                _mm256_storeu_si256((__m256i *)(o + 32 * g), _mm256_permute2x128_si256(u[g], u[g + 4], 0x20));
                _mm256_storeu_si256((__m256i *)(o + 32 * (g + 4)), _mm256_permute2x128_si256(u[g], u[g + 4], 0x31));
            }
        }
        uint16_t h[8];
        for (int i = 0; i < 8; i++) h[i] = lf__ld_u16(row[i] + (size_t)b * bb);
        __m128i hv = _mm_setr_epi16((short)h[0], (short)h[1], (short)h[2], (short)h[3], (short)h[4], (short)h[5], (short)h[6], (short)h[7]);
        _mm256_storeu_ps(dws + b * LF__QD_W, _mm256_and_ps(live, _mm256_cvtph_ps(hv)));
    }
#endif
}

// Activation rows [n0, n0 + NT) against the packed strip of rows [r0, r0 + nr).
LF__INLINE void lf__qd_tile(const int NT, const lf__qd_job *j, const unsigned char *pk, const float *dws, int64_t n0,
                            int64_t r0, int nr) {
    const int q4 = j->q4;
    const int64_t nb = j->nb, cols = j->cols;
#if LF__VNNI == 512
    __m512 acc[LF__QD_NT];
    for (int i = 0; i < NT; i++) acc[i] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const unsigned char *p = pk + (size_t)b * 512;
        __m512i wv[8];
        for (int g = 0; g < 8; g++) wv[g] = _mm512_loadu_si512((const void *)(p + 64 * g));
        __m512 dw = _mm512_loadu_ps(dws + b * 16);
#pragma GCC unroll 8  // keeps the sums in registers (else GCC keeps them in memory)
        for (int i = 0; i < NT; i++) {
            const int8_t *x = j->xq + (n0 + i) * cols + 32 * b;
            const lf__q8x_blk *xb = j->xb + (n0 + i) * nb + b;
            __m512i s = _mm512_set1_epi32(xb->off[q4]);
            for (int g = 0; g < 8; g++) s = _mm512_dpbusd_epi32(s, wv[g], _mm512_set1_epi32(lf__ld_i32(x + 4 * g)));
            acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, _mm512_set1_ps(xb->d)), acc[i]);
        }
    }
    __mmask16 m = (__mmask16)((1u << nr) - 1);
    for (int i = 0; i < NT; i++) {
        float *o = j->out + (n0 + i) * j->rows + r0;
        __m512 v = acc[i];
        if (j->bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, j->bias + r0));
        if (j->accumulate) v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, o), v);
        _mm512_mask_storeu_ps(o, m, v);
    }
#else
    __m256 acc[LF__QD_NT];
    for (int i = 0; i < NT; i++) acc[i] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const unsigned char *p = pk + (size_t)b * 256;
        __m256i wv[8];
        for (int g = 0; g < 8; g++) wv[g] = _mm256_loadu_si256((const __m256i *)(p + 32 * g));
        __m256 dw = _mm256_loadu_ps(dws + b * 8);
#pragma GCC unroll 8
        for (int i = 0; i < NT; i++) {
            const int8_t *x = j->xq + (n0 + i) * cols + 32 * b;
            const lf__q8x_blk *xb = j->xb + (n0 + i) * nb + b;
            __m256i s = _mm256_set1_epi32(xb->off[q4]);
            for (int g = 0; g < 8; g++) s = _mm256_dpbusd_avx_epi32(s, wv[g], _mm256_set1_epi32(lf__ld_i32(x + 4 * g)));
            acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, _mm256_set1_ps(xb->d)), acc[i]);
        }
    }
    for (int i = 0; i < NT; i++) {
        float a[8];
        _mm256_storeu_ps(a, acc[i]);
        for (int c = 0; c < nr; c++) lf__qd_store(j, n0 + i, r0 + c, a[c]);
    }
#endif
}

static void lf__qd_worker(void *arg, int64_t s0, int64_t s1, int tid) {
    const lf__qd_job *j = (const lf__qd_job *)arg;
    unsigned char *pk = j->pack + (size_t)tid * j->per_thread;
    float *dws = (float *)(pk + (size_t)j->nb * 32 * LF__QD_W);
    const char *start = (const char *)j->w->q + (size_t)s0 * LF__QD_W * (size_t)j->nb * (j->q4 ? LF_Q4_0_BYTES : LF_Q8_0_BYTES);
    for (int k = 0; k < LF__QD_PF; k += 64) _mm_prefetch(start + k, _MM_HINT_T0);  // what lf__qd_pack's prefetch skips
    for (int64_t s = s0; s < s1; s++) {
        int64_t r0 = s * LF__QD_W, n = 0;
        int nr = (int)LF__MIN(LF__QD_W, j->rows - r0);
        lf__qd_pack(j, r0, nr, pk, dws);
        for (; n + LF__QD_NT <= j->N; n += LF__QD_NT) lf__qd_tile(LF__QD_NT, j, pk, dws, n, r0, nr);
        if (n + 4 <= j->N) lf__qd_tile(4, j, pk, dws, n, r0, nr), n += 4;
        if (n + 2 <= j->N) lf__qd_tile(2, j, pk, dws, n, r0, nr), n += 2;
        if (n < j->N) lf__qd_tile(1, j, pk, dws, n, r0, nr);
    }
}
#else
// Plain C, block by block in the same order: each weight row is first unpacked to its unsigned
// bytes and f32 scales in the thread's buffer.
static void lf__qd_worker(void *arg, int64_t s0, int64_t s1, int tid) {
    const lf__qd_job *j = (const lf__qd_job *)arg;
    unsigned char *u = j->pack + (size_t)tid * j->per_thread;
    float *dw = (float *)(u + j->cols);
    const size_t bb = j->q4 ? LF_Q4_0_BYTES : LF_Q8_0_BYTES;
    for (int64_t r = s0 * LF__QD_W; r < LF__MIN(s1 * LF__QD_W, j->rows); r++) {
        for (int64_t b = 0; b < j->nb; b++) {
            const unsigned char *p = j->w->q + ((size_t)r * (size_t)j->nb + (size_t)b) * bb;
            dw[b] = lf_f16_to_f32(lf__ld_u16(p));
            for (int k = 0; k < 32; k++)
                u[32 * b + k] = j->q4 ? (unsigned char)(k < 16 ? p[2 + k] & 15 : p[2 + k - 16] >> 4) : (unsigned char)(p[2 + k] ^ 0x80);
        }
        for (int64_t n = 0; n < j->N; n++) {
            const int8_t *x = j->xq + n * j->cols;
            const lf__q8x_blk *xb = j->xb + n * j->nb;
            float acc = 0;
            for (int64_t b = 0; b < j->nb; b++) {
                int32_t s = xb[b].off[j->q4];
                for (int k = 0; k < 32; k++) s += (int32_t)u[32 * b + k] * x[32 * b + k];
                acc = fmaf((float)s, dw[b] * xb[b].d, acc);
            }
            lf__qd_store(j, n, r, acc);
        }
    }
}
#endif

// out[N, w->rows] (= or +=) xq . w^T (+ bias) for a Q8_0 or Q4_0 weight (checked by the caller);
// xq holds x [N, w->cols] from lf__q8x_quantize, scratch lf__qdot_scratch(w->cols, threads)
// bytes. Split over the pool by strips of LF__QD_W weight rows.
static void lf__qdot_gemm(lf_pool *pool, float *out, const void *xq, const lf_qtensor *w, const float *bias, int64_t N,
                          void *scratch, bool accumulate) {
    lf__qd_job j;
    memset(&j, 0, sizeof j);
    j.out = out, j.bias = bias, j.w = w, j.N = N, j.rows = w->rows, j.cols = w->cols, j.nb = w->cols / 32;
    j.xq = lf__q8x_q(xq), j.xb = lf__q8x_blocks(xq, N, w->cols);
    j.pack = (unsigned char *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    j.per_thread = lf__qd_per_thread(w->cols);
    j.q4 = w->type == LF_QTYPE_Q4_0, j.accumulate = accumulate;
    lf_parallel_for(pool, LF__CEIL_DIV(w->rows, LF__QD_W), lf__qd_worker, &j);
}

typedef struct lf__q8x_job {
    void *dst;
    const float *x;
    int64_t N, cols;
} lf__q8x_job;

static void lf__q8x_worker(void *arg, int64_t n0, int64_t n1, int tid) {
    const lf__q8x_job *q = (const lf__q8x_job *)arg;
    (void)tid;
    lf__q8x_rows(q->dst, q->x, q->N, q->cols, n0, n1);
}

// Bytes of scratch lf__qdot_matmul needs: x quantized, then lf__qdot_gemm's.
static size_t lf__qdot_matmul_scratch(int64_t N, int64_t cols, int threads) {
    return lf__q8x_bytes(N, cols) + lf__qdot_scratch(cols, threads);
}

// lf__qdot_gemm on x [N, w->cols] in f32: x is quantized (rows over the pool) into the start of
// scratch (lf__qdot_matmul_scratch bytes). Products that share x (q/k/v, gate/up) can instead
// quantize it once and call lf__qdot_gemm for each.
static void lf__qdot_matmul(lf_pool *pool, float *out, const float *x, const lf_qtensor *w, const float *bias, int64_t N,
                            void *scratch, bool accumulate) {
    lf__q8x_job q = {scratch, x, N, w->cols};
    lf_parallel_for(pool, N, lf__q8x_worker, &q);
    lf__qdot_gemm(pool, out, scratch, w, bias, N, (unsigned char *)scratch + lf__q8x_bytes(N, w->cols), accumulate);
}

// == 4. safetensors (impl) =======================================================================
//
// ON VALIDATION: the file is 8 bytes of little-endian header length, the JSON header, then the
// data region. Everything in the header is untrusted: the length is bounded, every dtype must
// be known, shape x dtype size must equal end - begin (checked arithmetic), offsets must lie in
// the data region and tensors must not overlap. A view is handed out only after all of that.

static int lf__st_cmp_name(const void *a, const void *b) {
    return strcmp(((const lf_st_tensor *)a)->name, ((const lf_st_tensor *)b)->name);
}
static int lf__st_cmp_begin(const void *a, const void *b) {
    const lf_st_tensor *x = *(const lf_st_tensor *const *)a, *y = *(const lf_st_tensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}

// Reads a JSON number that must be an integer in [0, 2^53].
static bool lf__node_u64(const lf_node *n, uint64_t *out) {
    if (!n || n->type != LF_NODE_NUMBER || n->num < 0 || n->num > 9007199254740992.0 || n->num != floor(n->num))
        return false;
    *out = (uint64_t)n->num;
    return true;
}

static lf_status lf__st_parse_tensor(lf_st_file *f, const lf_node *e, lf_st_tensor *t, uint64_t data_size) {
    const char *file = f->path;
    if (strlen(e->key) >= sizeof t->name)
        return lf__fail(LF_ERR_FORMAT, "%s: tensor name longer than %zu bytes", file, sizeof t->name - 1);
    snprintf(t->name, sizeof t->name, "%s", e->key);
    if (e->type != LF_NODE_OBJECT) return lf__fail(LF_ERR_FORMAT, "%s: tensor '%s': entry is not an object", file, t->name);
    const lf_node *dt = lf_node_get(e, "dtype"), *sh = lf_node_get(e, "shape"), *off = lf_node_get(e, "data_offsets");
    if (!dt || dt->type != LF_NODE_STRING)
        return lf__fail(LF_ERR_FORMAT, "%s: tensor '%s': field 'dtype' missing or not a string", file, t->name);
    t->dtype = lf_dtype_from_name(dt->str, dt->len);
    if (t->dtype == LF_DTYPE_INVALID)
        return lf__fail(LF_ERR_FORMAT, "%s: tensor '%s': unknown dtype '%s'", file, t->name, dt->str);
    if (!sh || sh->type != LF_NODE_ARRAY)
        return lf__fail(LF_ERR_FORMAT, "%s: tensor '%s': field 'shape' missing or not an array", file, t->name);
    if (sh->n > LF_MAX_DIMS)
        return lf__fail(LF_ERR_FORMAT, "%s: tensor '%s': %d dimensions, at most %d supported", file, t->name, sh->n,
                        LF_MAX_DIMS);
    t->ndim = sh->n;
    size_t bytes = lf_dtype_size(t->dtype);
    for (int i = 0; i < sh->n; i++) {
        uint64_t d;
        if (!lf__node_u64(&sh->kids[i], &d))
            return lf__fail(LF_ERR_FORMAT, "%s: tensor '%s': shape[%d] is not a non-negative integer", file, t->name, i);
        t->shape[i] = (int64_t)d;
        if (!lf__mul_ok(bytes, (size_t)d, &bytes))
            return lf__fail(LF_ERR_FORMAT, "%s: tensor '%s': shape overflows the byte size", file, t->name);
    }
    if (!off || off->type != LF_NODE_ARRAY || off->n != 2 || !lf__node_u64(&off->kids[0], &t->begin) ||
        !lf__node_u64(&off->kids[1], &t->end))
        return lf__fail(LF_ERR_FORMAT, "%s: tensor '%s': field 'data_offsets' must be [begin, end] integers", file,
                        t->name);
    if (t->begin > t->end)
        return lf__fail(LF_ERR_FORMAT, "%s: tensor '%s': data_offsets begin %llu > end %llu", file, t->name,
                        (unsigned long long)t->begin, (unsigned long long)t->end);
    if (t->end > data_size)
        return lf__fail(LF_ERR_FORMAT, "%s: tensor '%s': data_offsets end %llu > data size %llu", file, t->name,
                        (unsigned long long)t->end, (unsigned long long)data_size);
    if (t->end - t->begin != bytes)
        return lf__fail(LF_ERR_FORMAT, "%s: tensor '%s': shape x dtype size is %zu bytes but data_offsets span %llu",
                        file, t->name, bytes, (unsigned long long)(t->end - t->begin));
    return LF_OK;
}

static lf_status lf__st_parse(lf_st_file *f, const unsigned char *data, size_t size) {
    const char *file = f->path;
    if (size < 8) return lf__fail(LF_ERR_FORMAT, "%s: %zu bytes, too short for the 8-byte header length", file, size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | data[i];
    if (hlen > LF_MAX_ST_HEADER_BYTES)
        return lf__fail(LF_ERR_FORMAT, "%s: header length %llu is over the limit of %llu bytes", file,
                        (unsigned long long)hlen, (unsigned long long)LF_MAX_ST_HEADER_BYTES);
    if (hlen > size - 8)
        return lf__fail(LF_ERR_FORMAT, "%s: header length %llu runs past the end of the file (%zu bytes)", file,
                        (unsigned long long)hlen, size);
    lf_doc hdr;
    lf_status s = lf_json_parse(&hdr, (const char *)data + 8, (size_t)hlen, file);
    if (s != LF_OK) return lf__wrap(s, "safetensors header (offset 8)");
    if (hdr.root->type != LF_NODE_OBJECT) {
        lf_doc_deinit(&hdr);
        return lf__fail(LF_ERR_FORMAT, "%s: header is not a JSON object", file);
    }
    uint64_t data_size = size - 8 - hlen;
    const unsigned char *region = data + 8 + hlen;
    int n = 0;
    for (int i = 0; i < hdr.root->n; i++) n += strcmp(hdr.root->kids[i].key, "__metadata__") != 0;
    f->tensors = (lf_st_tensor *)lf__calloc((size_t)(n ? n : 1), sizeof(lf_st_tensor), "safetensors index");
    lf_st_tensor **by_begin = (lf_st_tensor **)lf__calloc((size_t)(n ? n : 1), sizeof(void *), "safetensors index");
    if (!f->tensors || !by_begin) {
        LF_FREE(by_begin);
        lf_doc_deinit(&hdr);
        return LF_ERR_NOMEM;
    }
    f->n = n;
    int k = 0;
    for (int i = 0; i < hdr.root->n && s == LF_OK; i++) {
        const lf_node *e = &hdr.root->kids[i];
        if (strcmp(e->key, "__metadata__") == 0) {
            if (e->type != LF_NODE_OBJECT) {
                s = lf__fail(LF_ERR_FORMAT, "%s: __metadata__ is not an object", file);
                break;
            }
            for (int m = 0; m < e->n; m++)
                if (e->kids[m].type != LF_NODE_STRING)
                    s = lf__fail(LF_ERR_FORMAT, "%s: __metadata__['%s'] is not a string", file, e->kids[m].key);
            continue;
        }
        lf_st_tensor *t = &f->tensors[k];
        s = lf__st_parse_tensor(f, e, t, data_size);
        t->data = region + t->begin;
        by_begin[k++] = t;
    }
    if (s == LF_OK && n > 0) {
        qsort(by_begin, (size_t)n, sizeof *by_begin, lf__st_cmp_begin);
        for (int i = 1; i < n && s == LF_OK; i++)
            if (by_begin[i]->begin < by_begin[i - 1]->end)
                s = lf__fail(LF_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap (bytes %llu..%llu and %llu..%llu)", file,
                             by_begin[i - 1]->name, by_begin[i]->name, (unsigned long long)by_begin[i - 1]->begin,
                             (unsigned long long)by_begin[i - 1]->end, (unsigned long long)by_begin[i]->begin,
                             (unsigned long long)by_begin[i]->end);
        qsort(f->tensors, (size_t)n, sizeof *f->tensors, lf__st_cmp_name);
        for (int i = 1; i < n && s == LF_OK; i++)
            if (strcmp(f->tensors[i].name, f->tensors[i - 1].name) == 0)
                s = lf__fail(LF_ERR_FORMAT, "%s: tensor '%s' appears twice", file, f->tensors[i].name);
    }
    LF_FREE(by_begin);
    if (s == LF_OK) {
        // keep only __metadata__ as its own document; the rest of the header is no longer needed
        const lf_node *meta = lf_node_get(hdr.root, "__metadata__");
        if (meta) {
            lf__buf b = LF__ZERO;
            lf__buf_putc(&b, '{');
            for (int m = 0; m < meta->n; m++) {
                if (m) lf__buf_putc(&b, ',');
                lf__buf_json_str(&b, meta->kids[m].key, strlen(meta->kids[m].key));
                lf__buf_putc(&b, ':');
                lf__buf_json_str(&b, meta->kids[m].str, meta->kids[m].len);
            }
            lf__buf_putc(&b, '}');
            s = b.failed ? LF_ERR_NOMEM : lf_json_parse(&f->meta, b.data, b.len, file);
            LF_FREE(b.data);
        }
    }
    lf_doc_deinit(&hdr);
    return s;
}

LF_API lf_status lf_st_open_memory(lf_st_file *f, const void *data, size_t size, const char *name) {
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", name ? name : "<memory>");
    lf_status s = lf__st_parse(f, (const unsigned char *)data, size);
    if (s != LF_OK) lf_st_close(f);
    return s;
}

#ifndef LF_NO_STDIO
LF_API lf_status lf_st_open(lf_st_file *f, const char *path) {
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", path);
    lf_status s = lf_mmap_open(&f->map, path);
    if (s == LF_OK) s = lf__st_parse(f, f->map.data, f->map.size);
    if (s != LF_OK) lf_st_close(f);
    return s;
}
#endif

LF_API void lf_st_close(lf_st_file *f) {
#ifndef LF_NO_STDIO
    lf_mmap_close(&f->map);
#endif
    LF_FREE(f->tensors);
    lf_doc_deinit(&f->meta);
    memset(f, 0, sizeof *f);
}

LF_API const lf_st_tensor *lf_st_find(const lf_st_file *f, const char *name) {
    int lo = 0, hi = f->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(f->tensors[mid].name, name);
        if (c == 0) return &f->tensors[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

LF_API const char *lf_st_meta(const lf_st_file *f, const char *key) {
    const lf_node *n = lf_node_get(f->meta.root, key);
    return n ? n->str : NULL;
}

// -- 4.1 sharded checkpoints

#ifndef LF_NO_STDIO
LF_API lf_status lf_st_set_open(lf_st_set *set, const char *dir) {
    memset(set, 0, sizeof *set);
    char *single = lf_path_join(dir, "model.safetensors"), *index = lf_path_join(dir, "model.safetensors.index.json");
    lf_status s = single && index ? LF_OK : LF_ERR_NOMEM;
    lf_doc doc = LF__ZERO;
    if (s == LF_OK && lf_path_exists(single)) {
        set->files = (lf_st_file *)lf__calloc(1, sizeof(lf_st_file), "safetensors set");
        s = set->files ? lf_st_open(&set->files[0], single) : LF_ERR_NOMEM;
        set->n = s == LF_OK;
    } else if (s == LF_OK && lf_path_exists(index)) {
        s = lf_json_load(&doc, index);
        const lf_node *map = s == LF_OK ? lf_node_get(doc.root, "weight_map") : NULL;
        if (s == LF_OK && (!map || map->type != LF_NODE_OBJECT))
            s = lf__fail(LF_ERR_FORMAT, "%s: field 'weight_map' missing or not an object", index);
        // distinct shard names, in order of first appearance
        const char **names = NULL;
        size_t cap = 0;
        int n = 0;
        for (int i = 0; s == LF_OK && i < map->n; i++) {
            const lf_node *e = &map->kids[i];
            if (e->type != LF_NODE_STRING) {
                s = lf__fail(LF_ERR_FORMAT, "%s: weight_map['%s'] is not a string", index, e->key);
                break;
            }
            if (e->len == 0 || strchr(e->str, '/') || strcmp(e->str, "..") == 0 || strcmp(e->str, ".") == 0) {
                s = lf__fail(LF_ERR_FORMAT, "%s: weight_map['%s']: shard name '%s' must be a file name in %s", index,
                             e->key, e->str, dir);
                break;
            }
            int j = 0;
            while (j < n && strcmp(names[j], e->str) != 0) j++;
            if (j < n) continue;
            if (n >= LF_MAX_SHARDS) {
                s = lf__fail(LF_ERR_FORMAT, "%s: more than %d shards", index, LF_MAX_SHARDS);
                break;
            }
            if (!lf__grow((void **)&names, &cap, (size_t)n + 1, sizeof *names, "shard list")) {
                s = LF_ERR_NOMEM;
                break;
            }
            names[n++] = e->str;
        }
        if (s == LF_OK) {
            set->files = (lf_st_file *)lf__calloc((size_t)(n ? n : 1), sizeof(lf_st_file), "safetensors set");
            if (!set->files) s = LF_ERR_NOMEM;
        }
        for (int i = 0; s == LF_OK && i < n; i++) {
            char *p = lf_path_join(dir, names[i]);
            s = p ? lf_st_open(&set->files[i], p) : LF_ERR_NOMEM;
            LF_FREE(p);
            set->n += s == LF_OK;
        }
        // every tensor the index names must be in the shard it names
        for (int i = 0; s == LF_OK && i < map->n; i++) {
            const lf_node *e = &map->kids[i];
            int j = 0;
            while (strcmp(names[j], e->str) != 0) j++;
            if (!lf_st_find(&set->files[j], e->key))
                s = lf__fail(LF_ERR_FORMAT, "%s: weight_map names tensor '%s' in %s, which does not contain it", index,
                             e->key, e->str);
        }
        LF_FREE(names);
    } else if (s == LF_OK) {
        s = lf__fail(LF_ERR_IO, "%s: no model.safetensors or model.safetensors.index.json", dir);
    }
    lf_doc_deinit(&doc);
    LF_FREE(single);
    LF_FREE(index);
    if (s != LF_OK) lf_st_set_close(set);
    return s;
}
#endif

LF_API void lf_st_set_close(lf_st_set *set) {
    for (int i = 0; i < set->n; i++) lf_st_close(&set->files[i]);
    LF_FREE(set->files);
    memset(set, 0, sizeof *set);
}

LF_API const lf_st_tensor *lf_st_set_find(const lf_st_set *set, const char *name) {
    for (int i = 0; i < set->n; i++) {
        const lf_st_tensor *t = lf_st_find(&set->files[i], name);
        if (t) return t;
    }
    return NULL;
}

// -- 4.2 writer

LF_API lf_status lf_st_serialize(const lf_st_entry *tensors, int n, const char *const *meta_kv, int n_meta,
                                 unsigned char **out, size_t *out_len) {
    *out = NULL, *out_len = 0;
    lf__buf h = LF__ZERO;
    uint64_t off = 0;
    lf__buf_putc(&h, '{');
    if (n_meta > 0) {
        lf__buf_puts(&h, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i) lf__buf_putc(&h, ',');
            lf__buf_json_str(&h, meta_kv[2 * i], strlen(meta_kv[2 * i]));
            lf__buf_putc(&h, ':');
            lf__buf_json_str(&h, meta_kv[2 * i + 1], strlen(meta_kv[2 * i + 1]));
        }
        lf__buf_putc(&h, '}');
    }
    for (int i = 0; i < n; i++) {
        const lf_st_entry *t = &tensors[i];
        size_t bytes = lf_dtype_size(t->dtype);
        if (bytes == 0 || t->ndim < 0 || t->ndim > LF_MAX_DIMS) {
            LF_FREE(h.data);
            return lf__fail(LF_ERR_ARG, "safetensors writer: tensor '%s' has a bad dtype or rank", t->name);
        }
        for (int d = 0; d < t->ndim; d++)
            if (t->shape[d] < 0 || !lf__mul_ok(bytes, (size_t)t->shape[d], &bytes)) {
                LF_FREE(h.data);
                return lf__fail(LF_ERR_ARG, "safetensors writer: tensor '%s' has a bad shape", t->name);
            }
        if (i || n_meta > 0) lf__buf_putc(&h, ',');
        lf__buf_json_str(&h, t->name, strlen(t->name));
        lf__buf_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", lf_dtype_name(t->dtype));
        for (int d = 0; d < t->ndim; d++) lf__buf_printf(&h, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        lf__buf_printf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off, (unsigned long long)(off + bytes));
        off += bytes;
    }
    lf__buf_putc(&h, '}');
    while (!h.failed && h.len % 8) lf__buf_putc(&h, ' ');  // keeps the data region 8-byte aligned
    if (h.failed) {
        LF_FREE(h.data);
        return LF_ERR_NOMEM;
    }
    size_t total = 8 + h.len + (size_t)off;
    unsigned char *buf = (unsigned char *)lf__alloc(total, "safetensors file");
    if (!buf) {
        LF_FREE(h.data);
        return LF_ERR_NOMEM;
    }
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    memcpy(buf + 8, h.data, h.len);
    unsigned char *p = buf + 8 + h.len;
    for (int i = 0; i < n; i++) {
        size_t bytes = lf_dtype_size(tensors[i].dtype);
        for (int d = 0; d < tensors[i].ndim; d++) bytes *= (size_t)tensors[i].shape[d];
        if (bytes) memcpy(p, tensors[i].data, bytes);
        p += bytes;
    }
    LF_FREE(h.data);
    *out = buf, *out_len = total;
    return LF_OK;
}

#ifndef LF_NO_STDIO
LF_API lf_status lf_st_write(const char *path, const lf_st_entry *tensors, int n, const char *const *meta_kv,
                             int n_meta) {
    unsigned char *buf;
    size_t len;
    lf_status s = lf_st_serialize(tensors, n, meta_kv, n_meta, &buf, &len);
    if (s == LF_OK) s = lf_file_write_atomic(path, buf, len);
    LF_FREE(buf);
    return s;
}
#endif

// == 5. tokenizer (impl) =========================================================================
//
// ON THE PIPELINE: ids must equal HF tokenizers' ids, so encode follows its steps exactly:
//   1. split the text on added tokens whose "normalized" is false (leftmost-longest match, then
//      the single_word / lstrip / rstrip rules of AddedVocabulary::find_matches);
//   2. normalize each remaining segment (NFC, Prepend, Replace, ...), then split it on the
//      added tokens whose "normalized" is true;
//   3. pre-tokenize each segment into words (Split regexes, ByteLevel);
//   4. BPE each word: one symbol per character (ByteLevel: per byte; a character missing from
//      the vocab becomes its <0xXX> byte tokens or unk), then merge the adjacent pair with the
//      lowest merge rank, leftmost first, until none is left. A heap of candidate pairs over a
//      linked list of symbols does this in O(n log n); a popped pair whose symbols have changed
//      since it was pushed is skipped, as in HF's Word::merge_all;
//   5. wrap the ids in the post-processor's special tokens.
// Decode runs every id through the streaming decoder (lf_tok_stream), so that streamed and
// whole decodes cannot disagree. Nothing is cached between calls: a loaded tokenizer is
// read-only, and all scratch memory belongs to the call.

#ifndef LF_MAX_TOKEN_BYTES
#define LF_MAX_TOKEN_BYTES 1024        // longest token string accepted in tokenizer.json
#endif
#ifndef LF_MAX_VOCAB
#define LF_MAX_VOCAB (1 << 22)         // largest token id + 1
#endif
#ifndef LF_MAX_REGEX_PROG
#define LF_MAX_REGEX_PROG 8192         // compiled size of one pre-tokenizer regex (instructions)
#endif
#define LF__TOK_MAX_DEPTH 16           // nesting of Sequence normalizers/pre-tokenizers/decoders
#define LF__TOK_MAX_TEMPLATE 16        // special tokens a post-processor adds on each side
#define LF__UTF8_REPLACEMENT "\xEF\xBF\xBD"

// -- 5.1 UTF-8 and Unicode properties

// Decodes one code point of valid UTF-8 (every text is validated on entry).
LF__INLINE uint32_t lf__utf8_dec(const unsigned char *s, size_t *len) {
    unsigned c = s[0];
    if (c < 0x80) return *len = 1, c;
    if (c < 0xE0) return *len = 2, ((c & 0x1Fu) << 6) | (s[1] & 0x3Fu);
    if (c < 0xF0) return *len = 3, ((c & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
    return *len = 4, ((c & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu);
}

static size_t lf__utf8_enc(uint32_t c, char *o) {
    if (c < 0x80) return o[0] = (char)c, 1;
    if (c < 0x800) return o[0] = (char)(0xC0 | (c >> 6)), o[1] = (char)(0x80 | (c & 0x3F)), 2;
    if (c < 0x10000) {
        o[0] = (char)(0xE0 | (c >> 12)), o[1] = (char)(0x80 | ((c >> 6) & 0x3F)), o[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (c >> 18)), o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3F)), o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

// Bytes a sequence starting with lead byte c needs (0: c cannot start one), and the range its
// second byte must fall in (excluding overlongs, surrogates and code points past U+10FFFF).
static int lf__utf8_need(unsigned c, unsigned *lo, unsigned *hi) {
    *lo = 0x80, *hi = 0xBF;
    if (c < 0x80) return 1;
    if (c < 0xC2) return 0;
    if (c < 0xE0) return 2;
    if (c < 0xF0) {
        if (c == 0xE0) *lo = 0xA0;
        if (c == 0xED) *hi = 0x9F;
        return 3;
    }
    if (c > 0xF4) return 0;
    if (c == 0xF0) *lo = 0x90;
    if (c == 0xF4) *hi = 0x8F;
    return 4;
}

// Offset of the first byte that is not part of valid UTF-8, or n when all of s is valid.
static size_t lf__utf8_check(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        unsigned lo, hi;
        int need = lf__utf8_need(s[i], &lo, &hi);
        if (need == 0 || i + (size_t)need > n || s[i + 1] < lo || s[i + 1] > hi) return i;
        for (int j = 2; j < need; j++)
            if ((s[i + (size_t)j] & 0xC0) != 0x80) return i;
        i += (size_t)need;
    }
    return n;
}
enum { LF__GC_CN, LF__GC_LU, LF__GC_LL, LF__GC_LT, LF__GC_LM, LF__GC_LO, LF__GC_MN, LF__GC_MC, LF__GC_ME, LF__GC_ND, LF__GC_NL, LF__GC_NO, LF__GC_PC, LF__GC_PD, LF__GC_PS, LF__GC_PE, LF__GC_PI, LF__GC_PF, LF__GC_PO, LF__GC_SM, LF__GC_SC, LF__GC_SK, LF__GC_SO, LF__GC_ZS, LF__GC_ZL, LF__GC_ZP, LF__GC_CC, LF__GC_CF, LF__GC_CS, LF__GC_CO };
static const uint32_t lf__uc_gc[3968] = {
    0x1a, 0x417, 0x432, 0x494, 0x4b2, 0x50e, 0x52f, 0x552, 0x573, 0x592,
    0x5ad, 0x5d2, 0x609, 0x752, 0x793, 0x7f2, 0x821, 0xb6e, 0xb92, 0xbaf,
    0xbd5, 0xbec, 0xc15, 0xc22, 0xf6e, 0xf93, 0xfaf, 0xfd3, 0xffa, 0x1417,
    0x1432, 0x1454, 0x14d6, 0x14f2, 0x1515, 0x1536, 0x1545, 0x1570, 0x1593, 0x15bb,
    0x15d6, 0x15f5, 0x1616, 0x1633, 0x164b, 0x1695, 0x16a2, 0x16d2, 0x1715, 0x172b,
    0x1745, 0x1771, 0x178b, 0x17f2, 0x1801, 0x1af3, 0x1b01, 0x1be2, 0x1ef3, 0x1f02,
    0x2001, 0x2022, 0x2041, 0x2062, 0x2081, 0x20a2, 0x20c1, 0x20e2, 0x2101, 0x2122,
    0x2141, 0x2162, 0x2181, 0x21a2, 0x21c1, 0x21e2, 0x2201, 0x2222, 0x2241, 0x2262,
    0x2281, 0x22a2, 0x22c1, 0x22e2, 0x2301, 0x2322, 0x2341, 0x2362, 0x2381, 0x23a2,
    0x23c1, 0x23e2, 0x2401, 0x2422, 0x2441, 0x2462, 0x2481, 0x24a2, 0x24c1, 0x24e2,
    0x2501, 0x2522, 0x2541, 0x2562, 0x2581, 0x25a2, 0x25c1, 0x25e2, 0x2601, 0x2622,
    0x2641, 0x2662, 0x2681, 0x26a2, 0x26c1, 0x26e2, 0x2721, 0x2742, 0x2761, 0x2782,
    0x27a1, 0x27c2, 0x27e1, 0x2802, 0x2821, 0x2842, 0x2861, 0x2882, 0x28a1, 0x28c2,
    0x28e1, 0x2902, 0x2941, 0x2962, 0x2981, 0x29a2, 0x29c1, 0x29e2, 0x2a01, 0x2a22,
    0x2a41, 0x2a62, 0x2a81, 0x2aa2, 0x2ac1, 0x2ae2, 0x2b01, 0x2b22, 0x2b41, 0x2b62,
    0x2b81, 0x2ba2, 0x2bc1, 0x2be2, 0x2c01, 0x2c22, 0x2c41, 0x2c62, 0x2c81, 0x2ca2,
    0x2cc1, 0x2ce2, 0x2d01, 0x2d22, 0x2d41, 0x2d62, 0x2d81, 0x2da2, 0x2dc1, 0x2de2,
    0x2e01, 0x2e22, 0x2e41, 0x2e62, 0x2e81, 0x2ea2, 0x2ec1, 0x2ee2, 0x2f01, 0x2f42,
    0x2f61, 0x2f82, 0x2fa1, 0x2fc2, 0x3021, 0x3062, 0x3081, 0x30a2, 0x30c1, 0x3102,
    0x3121, 0x3182, 0x31c1, 0x3242, 0x3261, 0x32a2, 0x32c1, 0x3322, 0x3381, 0x33c2,
    0x33e1, 0x3422, 0x3441, 0x3462, 0x3481, 0x34a2, 0x34c1, 0x3502, 0x3521, 0x3542,
    0x3581, 0x35a2, 0x35c1, 0x3602, 0x3621, 0x3682, 0x36a1, 0x36c2, 0x36e1, 0x3722,
    0x3765, 0x3781, 0x37a2, 0x3805, 0x3881, 0x38a3, 0x38c2, 0x38e1, 0x3903, 0x3922,
    0x3941, 0x3963, 0x3982, 0x39a1, 0x39c2, 0x39e1, 0x3a02, 0x3a21, 0x3a42, 0x3a61,
    0x3a82, 0x3aa1, 0x3ac2, 0x3ae1, 0x3b02, 0x3b21, 0x3b42, 0x3b61, 0x3b82, 0x3bc1,
    0x3be2, 0x3c01, 0x3c22, 0x3c41, 0x3c62, 0x3c81, 0x3ca2, 0x3cc1, 0x3ce2, 0x3d01,
    0x3d22, 0x3d41, 0x3d62, 0x3d81, 0x3da2, 0x3dc1, 0x3de2, 0x3e21, 0x3e43, 0x3e62,
    0x3e81, 0x3ea2, 0x3ec1, 0x3f22, 0x3f41, 0x3f62, 0x3f81, 0x3fa2, 0x3fc1, 0x3fe2,
    0x4001, 0x4022, 0x4041, 0x4062, 0x4081, 0x40a2, 0x40c1, 0x40e2, 0x4101, 0x4122,
    0x4141, 0x4162, 0x4181, 0x41a2, 0x41c1, 0x41e2, 0x4201, 0x4222, 0x4241, 0x4262,
    0x4281, 0x42a2, 0x42c1, 0x42e2, 0x4301, 0x4322, 0x4341, 0x4362, 0x4381, 0x43a2,
    0x43c1, 0x43e2, 0x4401, 0x4422, 0x4441, 0x4462, 0x4481, 0x44a2, 0x44c1, 0x44e2,
    0x4501, 0x4522, 0x4541, 0x4562, 0x4581, 0x45a2, 0x45c1, 0x45e2, 0x4601, 0x4622,
    0x4641, 0x4662, 0x4741, 0x4782, 0x47a1, 0x47e2, 0x4821, 0x4842, 0x4861, 0x48e2,
    0x4901, 0x4922, 0x4941, 0x4962, 0x4981, 0x49a2, 0x49c1, 0x49e2, 0x5285, 0x52a2,
    0x5604, 0x5855, 0x58c4, 0x5a55, 0x5c04, 0x5cb5, 0x5d84, 0x5db5, 0x5dc4, 0x5df5,
    0x6006, 0x6e01, 0x6e22, 0x6e41, 0x6e62, 0x6e84, 0x6eb5, 0x6ec1, 0x6ee2, 0x6f00,
    0x6f44, 0x6f62, 0x6fd2, 0x6fe1, 0x7000, 0x7095, 0x70c1, 0x70f2, 0x7101, 0x7160,
    0x7181, 0x71a0, 0x71c1, 0x7202, 0x7221, 0x7440, 0x7461, 0x7582, 0x79e1, 0x7a02,
    0x7a41, 0x7aa2, 0x7b01, 0x7b22, 0x7b41, 0x7b62, 0x7b81, 0x7ba2, 0x7bc1, 0x7be2,
    0x7c01, 0x7c22, 0x7c41, 0x7c62, 0x7c81, 0x7ca2, 0x7cc1, 0x7ce2, 0x7d01, 0x7d22,
    0x7d41, 0x7d62, 0x7d81, 0x7da2, 0x7dc1, 0x7de2, 0x7e81, 0x7ea2, 0x7ed3, 0x7ee1,
    0x7f02, 0x7f21, 0x7f62, 0x7fa1, 0x8602, 0x8c01, 0x8c22, 0x8c41, 0x8c62, 0x8c81,
    0x8ca2, 0x8cc1, 0x8ce2, 0x8d01, 0x8d22, 0x8d41, 0x8d62, 0x8d81, 0x8da2, 0x8dc1,
    0x8de2, 0x8e01, 0x8e22, 0x8e41, 0x8e62, 0x8e81, 0x8ea2, 0x8ec1, 0x8ee2, 0x8f01,
    0x8f22, 0x8f41, 0x8f62, 0x8f81, 0x8fa2, 0x8fc1, 0x8fe2, 0x9001, 0x9022, 0x9056,
    0x9066, 0x9108, 0x9141, 0x9162, 0x9181, 0x91a2, 0x91c1, 0x91e2, 0x9201, 0x9222,
    0x9241, 0x9262, 0x9281, 0x92a2, 0x92c1, 0x92e2, 0x9301, 0x9322, 0x9341, 0x9362,
    0x9381, 0x93a2, 0x93c1, 0x93e2, 0x9401, 0x9422, 0x9441, 0x9462, 0x9481, 0x94a2,
    0x94c1, 0x94e2, 0x9501, 0x9522, 0x9541, 0x9562, 0x9581, 0x95a2, 0x95c1, 0x95e2,
    0x9601, 0x9622, 0x9641, 0x9662, 0x9681, 0x96a2, 0x96c1, 0x96e2, 0x9701, 0x9722,
    0x9741, 0x9762, 0x9781, 0x97a2, 0x97c1, 0x97e2, 0x9801, 0x9842, 0x9861, 0x9882,
    0x98a1, 0x98c2, 0x98e1, 0x9902, 0x9921, 0x9942, 0x9961, 0x9982, 0x99a1, 0x99c2,
    0x9a01, 0x9a22, 0x9a41, 0x9a62, 0x9a81, 0x9aa2, 0x9ac1, 0x9ae2, 0x9b01, 0x9b22,
    0x9b41, 0x9b62, 0x9b81, 0x9ba2, 0x9bc1, 0x9be2, 0x9c01, 0x9c22, 0x9c41, 0x9c62,
    0x9c81, 0x9ca2, 0x9cc1, 0x9ce2, 0x9d01, 0x9d22, 0x9d41, 0x9d62, 0x9d81, 0x9da2,
    0x9dc1, 0x9de2, 0x9e01, 0x9e22, 0x9e41, 0x9e62, 0x9e81, 0x9ea2, 0x9ec1, 0x9ee2,
    0x9f01, 0x9f22, 0x9f41, 0x9f62, 0x9f81, 0x9fa2, 0x9fc1, 0x9fe2, 0xa001, 0xa022,
    0xa041, 0xa062, 0xa081, 0xa0a2, 0xa0c1, 0xa0e2, 0xa101, 0xa122, 0xa141, 0xa162,
    0xa181, 0xa1a2, 0xa1c1, 0xa1e2, 0xa201, 0xa222, 0xa241, 0xa262, 0xa281, 0xa2a2,
    0xa2c1, 0xa2e2, 0xa301, 0xa322, 0xa341, 0xa362, 0xa381, 0xa3a2, 0xa3c1, 0xa3e2,
    0xa401, 0xa422, 0xa441, 0xa462, 0xa481, 0xa4a2, 0xa4c1, 0xa4e2, 0xa501, 0xa522,
    0xa541, 0xa562, 0xa581, 0xa5a2, 0xa5c1, 0xa5e2, 0xa600, 0xa621, 0xaae0, 0xab24,
    0xab52, 0xac02, 0xb132, 0xb14d, 0xb160, 0xb1b6, 0xb1f4, 0xb200, 0xb226, 0xb7cd,
    0xb7e6, 0xb812, 0xb826, 0xb872, 0xb886, 0xb8d2, 0xb8e6, 0xb900, 0xba05, 0xbd60,
    0xbde5, 0xbe72, 0xbea0, 0xc01b, 0xc0d3, 0xc132, 0xc174, 0xc192, 0xc1d6, 0xc206,
    0xc372, 0xc39b, 0xc3b2, 0xc405, 0xc804, 0xc825, 0xc966, 0xcc09, 0xcd52, 0xcdc5,
    0xce06, 0xce25, 0xda92, 0xdaa5, 0xdac6, 0xdbbb, 0xdbd6, 0xdbe6, 0xdca4, 0xdce6,
    0xdd36, 0xdd46, 0xddc5, 0xde09, 0xdf45, 0xdfb6, 0xdfe5, 0xe012, 0xe1c0, 0xe1fb,
    0xe205, 0xe226, 0xe245, 0xe606, 0xe960, 0xe9a5, 0xf4c6, 0xf625, 0xf640, 0xf809,
    0xf945, 0xfd66, 0xfe84, 0xfed6, 0xfef2, 0xff44, 0xff60, 0xffa6, 0xffd4, 0x10005,
    0x102c6, 0x10344, 0x10366, 0x10484, 0x104a6, 0x10504, 0x10526, 0x105c0, 0x10612, 0x107e0,
    0x10805, 0x10b26, 0x10b80, 0x10bd2, 0x10be0, 0x10c05, 0x10d60, 0x10e05, 0x11115, 0x11125,
    0x111e0, 0x1121b, 0x11240, 0x11306, 0x11405, 0x11924, 0x11946, 0x11c5b, 0x11c66, 0x12067,
    0x12085, 0x12746, 0x12767, 0x12786, 0x127a5, 0x127c7, 0x12826, 0x12927, 0x129a6, 0x129c7,
    0x12a05, 0x12a26, 0x12b05, 0x12c46, 0x12c92, 0x12cc9, 0x12e12, 0x12e24, 0x12e45, 0x13026,
    0x13047, 0x13080, 0x130a5, 0x131a0, 0x131e5, 0x13220, 0x13265, 0x13520, 0x13545, 0x13620,
    0x13645, 0x13660, 0x136c5, 0x13740, 0x13786, 0x137a5, 0x137c7, 0x13826, 0x138a0, 0x138e7,
    0x13920, 0x13967, 0x139a6, 0x139c5, 0x139e0, 0x13ae7, 0x13b00, 0x13b85, 0x13bc0, 0x13be5,
    0x13c46, 0x13c80, 0x13cc9, 0x13e05, 0x13e54, 0x13e8b, 0x13f56, 0x13f74, 0x13f85, 0x13fb2,
    0x13fc6, 0x13fe0, 0x14026, 0x14067, 0x14080, 0x140a5, 0x14160, 0x141e5, 0x14220, 0x14265,
    0x14520, 0x14545, 0x14620, 0x14645, 0x14680, 0x146a5, 0x146e0, 0x14705, 0x14740, 0x14786,
    0x147a0, 0x147c7, 0x14826, 0x14860, 0x148e6, 0x14920, 0x14966, 0x149c0, 0x14a26, 0x14a40,
    0x14b25, 0x14ba0, 0x14bc5, 0x14be0, 0x14cc9, 0x14e06, 0x14e45, 0x14ea6, 0x14ed2, 0x14ee0,
    0x15026, 0x15067, 0x15080, 0x150a5, 0x151c0, 0x151e5, 0x15240, 0x15265, 0x15520, 0x15545,
    0x15620, 0x15645, 0x15680, 0x156a5, 0x15740, 0x15786, 0x157a5, 0x157c7, 0x15826, 0x158c0,
    0x158e6, 0x15927, 0x15940, 0x15967, 0x159a6, 0x159c0, 0x15a05, 0x15a20, 0x15c05, 0x15c46,
    0x15c80, 0x15cc9, 0x15e12, 0x15e34, 0x15e40, 0x15f25, 0x15f46, 0x16000, 0x16026, 0x16047,
    0x16080, 0x160a5, 0x161a0, 0x161e5, 0x16220, 0x16265, 0x16520, 0x16545, 0x16620, 0x16645,
    0x16680, 0x166a5, 0x16740, 0x16786, 0x167a5, 0x167c7, 0x167e6, 0x16807, 0x16826, 0x168a0,
    0x168e7, 0x16920, 0x16967, 0x169a6, 0x169c0, 0x16aa6, 0x16ae7, 0x16b00, 0x16b85, 0x16bc0,
    0x16be5, 0x16c46, 0x16c80, 0x16cc9, 0x16e16, 0x16e25, 0x16e4b, 0x16f00, 0x17046, 0x17065,
    0x17080, 0x170a5, 0x17160, 0x171c5, 0x17220, 0x17245, 0x172c0, 0x17325, 0x17360, 0x17385,
    0x173a0, 0x173c5, 0x17400, 0x17465, 0x174a0, 0x17505, 0x17560, 0x175c5, 0x17740, 0x177c7,
    0x17806, 0x17827, 0x17860, 0x178c7, 0x17920, 0x17947, 0x179a6, 0x179c0, 0x17a05, 0x17a20,
    0x17ae7, 0x17b00, 0x17cc9, 0x17e0b, 0x17e76, 0x17f34, 0x17f56, 0x17f60, 0x18006, 0x18027,
    0x18086, 0x180a5, 0x181a0, 0x181c5, 0x18220, 0x18245, 0x18520, 0x18545, 0x18740, 0x18786,
    0x187a5, 0x187c6, 0x18827, 0x188a0, 0x188c6, 0x18920, 0x18946, 0x189c0, 0x18aa6, 0x18ae0,
    0x18b05, 0x18b60, 0x18ba5, 0x18bc0, 0x18c05, 0x18c46, 0x18c80, 0x18cc9, 0x18e00, 0x18ef2,
    0x18f0b, 0x18ff6, 0x19005, 0x19026, 0x19047, 0x19092, 0x190a5, 0x191a0, 0x191c5, 0x19220,
    0x19245, 0x19520, 0x19545, 0x19680, 0x196a5, 0x19740, 0x19786, 0x197a5, 0x197c7, 0x197e6,
    0x19807, 0x198a0, 0x198c6, 0x198e7, 0x19920, 0x19947, 0x19986, 0x199c0, 0x19aa7, 0x19ae0,
    0x19ba5, 0x19be0, 0x19c05, 0x19c46, 0x19c80, 0x19cc9, 0x19e00, 0x19e25, 0x19e60, 0x1a006,
    0x1a047, 0x1a085, 0x1a1a0, 0x1a1c5, 0x1a220, 0x1a245, 0x1a766, 0x1a7a5, 0x1a7c7, 0x1a826,
    0x1a8a0, 0x1a8c7, 0x1a920, 0x1a947, 0x1a9a6, 0x1a9c5, 0x1a9f6, 0x1aa00, 0x1aa85, 0x1aae7,
    0x1ab0b, 0x1abe5, 0x1ac46, 0x1ac80, 0x1acc9, 0x1ae0b, 0x1af36, 0x1af45, 0x1b000, 0x1b026,
    0x1b047, 0x1b080, 0x1b0a5, 0x1b2e0, 0x1b345, 0x1b640, 0x1b665, 0x1b780, 0x1b7a5, 0x1b7c0,
    0x1b805, 0x1b8e0, 0x1b946, 0x1b960, 0x1b9e7, 0x1ba46, 0x1baa0, 0x1bac6, 0x1bae0, 0x1bb07,
    0x1bc00, 0x1bcc9, 0x1be00, 0x1be47, 0x1be92, 0x1bea0, 0x1c025, 0x1c626, 0x1c645, 0x1c686,
    0x1c760, 0x1c7f4, 0x1c805, 0x1c8c4, 0x1c8e6, 0x1c9f2, 0x1ca09, 0x1cb52, 0x1cb80, 0x1d025,
    0x1d060, 0x1d085, 0x1d0a0, 0x1d0c5, 0x1d160, 0x1d185, 0x1d480, 0x1d4a5, 0x1d4c0, 0x1d4e5,
    0x1d626, 0x1d645, 0x1d686, 0x1d7a5, 0x1d7c0, 0x1d805, 0x1d8a0, 0x1d8c4, 0x1d8e0, 0x1d906,
    0x1d9c0, 0x1da09, 0x1db40, 0x1db85, 0x1dc00, 0x1e005, 0x1e036, 0x1e092, 0x1e276, 0x1e292,
    0x1e2b6, 0x1e306, 0x1e356, 0x1e409, 0x1e54b, 0x1e696, 0x1e6a6, 0x1e6d6, 0x1e6e6, 0x1e716,
    0x1e726, 0x1e74e, 0x1e76f, 0x1e78e, 0x1e7af, 0x1e7c7, 0x1e805, 0x1e900, 0x1e925, 0x1eda0,
    0x1ee26, 0x1efe7, 0x1f006, 0x1f0b2, 0x1f0c6, 0x1f105, 0x1f1a6, 0x1f300, 0x1f326, 0x1f7a0,
    0x1f7d6, 0x1f8c6, 0x1f8f6, 0x1f9a0, 0x1f9d6, 0x1fa12, 0x1fab6, 0x1fb32, 0x1fb60, 0x20005,
    0x20567, 0x205a6, 0x20627, 0x20646, 0x20707, 0x20726, 0x20767, 0x207a6, 0x207e5, 0x20809,
    0x20952, 0x20a05, 0x20ac7, 0x20b06, 0x20b45, 0x20bc6, 0x20c25, 0x20c47, 0x20ca5, 0x20ce7,
    0x20dc5, 0x20e26, 0x20ea5, 0x21046, 0x21067, 0x210a6, 0x210e7, 0x211a6, 0x211c5, 0x211e7,
    0x21209, 0x21347, 0x213a6, 0x213d6, 0x21401, 0x218c0, 0x218e1, 0x21900, 0x219a1, 0x219c0,
    0x21a02, 0x21f72, 0x21f84, 0x21fa2, 0x22005, 0x24920, 0x24945, 0x249c0, 0x24a05, 0x24ae0,
    0x24b05, 0x24b20, 0x24b45, 0x24bc0, 0x24c05, 0x25120, 0x25145, 0x251c0, 0x25205, 0x25620,
    0x25645, 0x256c0, 0x25705, 0x257e0, 0x25805, 0x25820, 0x25845, 0x258c0, 0x25905, 0x25ae0,
    0x25b05, 0x26220, 0x26245, 0x262c0, 0x26305, 0x26b60, 0x26ba6, 0x26c12, 0x26d2b, 0x26fa0,
    0x27005, 0x27216, 0x27340, 0x27401, 0x27ec0, 0x27f02, 0x27fc0, 0x2800d, 0x28025, 0x2cdb6,
    0x2cdd2, 0x2cde5, 0x2d017, 0x2d025, 0x2d36e, 0x2d38f, 0x2d3a0, 0x2d405, 0x2dd72, 0x2ddca,
    0x2de25, 0x2df20, 0x2e005, 0x2e246, 0x2e2a7, 0x2e2c0, 0x2e3e5, 0x2e646, 0x2e687, 0x2e6b2,
    0x2e6e0, 0x2e805, 0x2ea46, 0x2ea80, 0x2ec05, 0x2eda0, 0x2edc5, 0x2ee20, 0x2ee46, 0x2ee80,
    0x2f005, 0x2f686, 0x2f6c7, 0x2f6e6, 0x2f7c7, 0x2f8c6, 0x2f8e7, 0x2f926, 0x2fa92, 0x2fae4,
    0x2fb12, 0x2fb74, 0x2fb85, 0x2fba6, 0x2fbc0, 0x2fc09, 0x2fd40, 0x2fe0b, 0x2ff40, 0x30012,
    0x300cd, 0x300f2, 0x30166, 0x301db, 0x301e6, 0x30209, 0x30340, 0x30405, 0x30864, 0x30885,
    0x30f20, 0x31005, 0x310a6, 0x310e5, 0x31526, 0x31545, 0x31560, 0x31605, 0x31ec0, 0x32005,
    0x323e0, 0x32406, 0x32467, 0x324e6, 0x32527, 0x32580, 0x32607, 0x32646, 0x32667, 0x32726,
    0x32780, 0x32816, 0x32820, 0x32892, 0x328c9, 0x32a05, 0x32dc0, 0x32e05, 0x32ea0, 0x33005,
    0x33580, 0x33605, 0x33940, 0x33a09, 0x33b4b, 0x33b60, 0x33bd6, 0x34005, 0x342e6, 0x34327,
    0x34366, 0x34380, 0x343d2, 0x34405, 0x34aa7, 0x34ac6, 0x34ae7, 0x34b06, 0x34be0, 0x34c06,
    0x34c27, 0x34c46, 0x34c67, 0x34ca6, 0x34da7, 0x34e66, 0x34fa0, 0x34fe6, 0x35009, 0x35140,
    0x35209, 0x35340, 0x35412, 0x354e4, 0x35512, 0x355c0, 0x35606, 0x357c8, 0x357e6, 0x359e0,
    0x36006, 0x36087, 0x360a5, 0x36686, 0x366a7, 0x366c6, 0x36767, 0x36786, 0x367a7, 0x36846,
    0x36867, 0x368a5, 0x369a0, 0x36a09, 0x36b52, 0x36c36, 0x36d66, 0x36e96, 0x36fb2, 0x36fe0,
    0x37006, 0x37047, 0x37065, 0x37427, 0x37446, 0x374c7, 0x37506, 0x37547, 0x37566, 0x375c5,
    0x37609, 0x37745, 0x37cc6, 0x37ce7, 0x37d06, 0x37d47, 0x37da6, 0x37dc7, 0x37de6, 0x37e47,
    0x37e80, 0x37f92, 0x38005, 0x38487, 0x38586, 0x38687, 0x386c6, 0x38700, 0x38772, 0x38809,
    0x38940, 0x389a5, 0x38a09, 0x38b45, 0x38f04, 0x38fd2, 0x39002, 0x39120, 0x39201, 0x39760,
    0x397a1, 0x39812, 0x39900, 0x39a06, 0x39a72, 0x39a86, 0x39c27, 0x39c46, 0x39d25, 0x39da6,
    0x39dc5, 0x39e86, 0x39ea5, 0x39ee7, 0x39f06, 0x39f45, 0x39f60, 0x3a002, 0x3a584, 0x3ad62,
    0x3af04, 0x3af22, 0x3b364, 0x3b806, 0x3c001, 0x3c022, 0x3c041, 0x3c062, 0x3c081, 0x3c0a2,
    0x3c0c1, 0x3c0e2, 0x3c101, 0x3c122, 0x3c141, 0x3c162, 0x3c181, 0x3c1a2, 0x3c1c1, 0x3c1e2,
    0x3c201, 0x3c222, 0x3c241, 0x3c262, 0x3c281, 0x3c2a2, 0x3c2c1, 0x3c2e2, 0x3c301, 0x3c322,
    0x3c341, 0x3c362, 0x3c381, 0x3c3a2, 0x3c3c1, 0x3c3e2, 0x3c401, 0x3c422, 0x3c441, 0x3c462,
    0x3c481, 0x3c4a2, 0x3c4c1, 0x3c4e2, 0x3c501, 0x3c522, 0x3c541, 0x3c562, 0x3c581, 0x3c5a2,
    0x3c5c1, 0x3c5e2, 0x3c601, 0x3c622, 0x3c641, 0x3c662, 0x3c681, 0x3c6a2, 0x3c6c1, 0x3c6e2,
    0x3c701, 0x3c722, 0x3c741, 0x3c762, 0x3c781, 0x3c7a2, 0x3c7c1, 0x3c7e2, 0x3c801, 0x3c822,
    0x3c841, 0x3c862, 0x3c881, 0x3c8a2, 0x3c8c1, 0x3c8e2, 0x3c901, 0x3c922, 0x3c941, 0x3c962,
    0x3c981, 0x3c9a2, 0x3c9c1, 0x3c9e2, 0x3ca01, 0x3ca22, 0x3ca41, 0x3ca62, 0x3ca81, 0x3caa2,
    0x3cac1, 0x3cae2, 0x3cb01, 0x3cb22, 0x3cb41, 0x3cb62, 0x3cb81, 0x3cba2, 0x3cbc1, 0x3cbe2,
    0x3cc01, 0x3cc22, 0x3cc41, 0x3cc62, 0x3cc81, 0x3cca2, 0x3ccc1, 0x3cce2, 0x3cd01, 0x3cd22,
    0x3cd41, 0x3cd62, 0x3cd81, 0x3cda2, 0x3cdc1, 0x3cde2, 0x3ce01, 0x3ce22, 0x3ce41, 0x3ce62,
    0x3ce81, 0x3cea2, 0x3cec1, 0x3cee2, 0x3cf01, 0x3cf22, 0x3cf41, 0x3cf62, 0x3cf81, 0x3cfa2,
    0x3cfc1, 0x3cfe2, 0x3d001, 0x3d022, 0x3d041, 0x3d062, 0x3d081, 0x3d0a2, 0x3d0c1, 0x3d0e2,
    0x3d101, 0x3d122, 0x3d141, 0x3d162, 0x3d181, 0x3d1a2, 0x3d1c1, 0x3d1e2, 0x3d201, 0x3d222,
    0x3d241, 0x3d262, 0x3d281, 0x3d2a2, 0x3d3c1, 0x3d3e2, 0x3d401, 0x3d422, 0x3d441, 0x3d462,
    0x3d481, 0x3d4a2, 0x3d4c1, 0x3d4e2, 0x3d501, 0x3d522, 0x3d541, 0x3d562, 0x3d581, 0x3d5a2,
    0x3d5c1, 0x3d5e2, 0x3d601, 0x3d622, 0x3d641, 0x3d662, 0x3d681, 0x3d6a2, 0x3d6c1, 0x3d6e2,
    0x3d701, 0x3d722, 0x3d741, 0x3d762, 0x3d781, 0x3d7a2, 0x3d7c1, 0x3d7e2, 0x3d801, 0x3d822,
    0x3d841, 0x3d862, 0x3d881, 0x3d8a2, 0x3d8c1, 0x3d8e2, 0x3d901, 0x3d922, 0x3d941, 0x3d962,
    0x3d981, 0x3d9a2, 0x3d9c1, 0x3d9e2, 0x3da01, 0x3da22, 0x3da41, 0x3da62, 0x3da81, 0x3daa2,
    0x3dac1, 0x3dae2, 0x3db01, 0x3db22, 0x3db41, 0x3db62, 0x3db81, 0x3dba2, 0x3dbc1, 0x3dbe2,
    0x3dc01, 0x3dc22, 0x3dc41, 0x3dc62, 0x3dc81, 0x3dca2, 0x3dcc1, 0x3dce2, 0x3dd01, 0x3dd22,
    0x3dd41, 0x3dd62, 0x3dd81, 0x3dda2, 0x3ddc1, 0x3dde2, 0x3de01, 0x3de22, 0x3de41, 0x3de62,
    0x3de81, 0x3dea2, 0x3dec1, 0x3dee2, 0x3df01, 0x3df22, 0x3df41, 0x3df62, 0x3df81, 0x3dfa2,
    0x3dfc1, 0x3dfe2, 0x3e101, 0x3e202, 0x3e2c0, 0x3e301, 0x3e3c0, 0x3e402, 0x3e501, 0x3e602,
    0x3e701, 0x3e802, 0x3e8c0, 0x3e901, 0x3e9c0, 0x3ea02, 0x3eb00, 0x3eb21, 0x3eb40, 0x3eb61,
    0x3eb80, 0x3eba1, 0x3ebc0, 0x3ebe1, 0x3ec02, 0x3ed01, 0x3ee02, 0x3efc0, 0x3f002, 0x3f103,
    0x3f202, 0x3f303, 0x3f402, 0x3f503, 0x3f602, 0x3f6a0, 0x3f6c2, 0x3f701, 0x3f783, 0x3f7b5,
    0x3f7c2, 0x3f7f5, 0x3f842, 0x3f8a0, 0x3f8c2, 0x3f901, 0x3f983, 0x3f9b5, 0x3fa02, 0x3fa80,
    0x3fac2, 0x3fb01, 0x3fb80, 0x3fbb5, 0x3fc02, 0x3fd01, 0x3fdb5, 0x3fe00, 0x3fe42, 0x3fea0,
    0x3fec2, 0x3ff01, 0x3ff83, 0x3ffb5, 0x3ffe0, 0x40017, 0x4017b, 0x4020d, 0x402d2, 0x40310,
    0x40331, 0x4034e, 0x40370, 0x403b1, 0x403ce, 0x403f0, 0x40412, 0x40518, 0x40539, 0x4055b,
    0x405f7, 0x40612, 0x40730, 0x40751, 0x40772, 0x407ec, 0x40832, 0x40893, 0x408ae, 0x408cf,
    0x408f2, 0x40a53, 0x40a72, 0x40a8c, 0x40ab2, 0x40bf7, 0x40c1b, 0x40ca0, 0x40cdb, 0x40e0b,
    0x40e24, 0x40e40, 0x40e8b, 0x40f53, 0x40fae, 0x40fcf, 0x40fe4, 0x4100b, 0x41153, 0x411ae,
    0x411cf, 0x411e0, 0x41204, 0x413a0, 0x41414, 0x41820, 0x41a06, 0x41ba8, 0x41c26, 0x41c48,
    0x41ca6, 0x41e20, 0x42016, 0x42041, 0x42076, 0x420e1, 0x42116, 0x42142, 0x42161, 0x421c2,
    0x42201, 0x42262, 0x42296, 0x422a1, 0x422d6, 0x42313, 0x42321, 0x423d6, 0x42481, 0x424b6,
    0x424c1, 0x424f6, 0x42501, 0x42536, 0x42541, 0x425d6, 0x425e2, 0x42601, 0x42682, 0x426a5,
    0x42722, 0x42756, 0x42782, 0x427c1, 0x42813, 0x428a1, 0x428c2, 0x42956, 0x42973, 0x42996,
    0x429c2, 0x429f6, 0x42a0b, 0x42c0a, 0x43061, 0x43082, 0x430aa, 0x4312b, 0x43156, 0x43180,
    0x43213, 0x432b6, 0x43353, 0x43396, 0x43413, 0x43436, 0x43473, 0x43496, 0x434d3, 0x434f6,
    0x435d3, 0x435f6, 0x439d3, 0x43a16, 0x43a53, 0x43a76, 0x43a93, 0x43ab6, 0x43e93, 0x46016,
    0x4610e, 0x4612f, 0x4614e, 0x4616f, 0x46196, 0x46413, 0x46456, 0x4652e, 0x4654f, 0x46576,
    0x46f93, 0x46fb6, 0x47373, 0x47696, 0x47b93, 0x47c56, 0x484e0, 0x48816, 0x48960, 0x48c0b,
    0x49396, 0x49d4b, 0x4a016, 0x4b6f3, 0x4b716, 0x4b833, 0x4b856, 0x4bf13, 0x4c016, 0x4cdf3,
    0x4ce16, 0x4ed0e, 0x4ed2f, 0x4ed4e, 0x4ed6f, 0x4ed8e, 0x4edaf, 0x4edce, 0x4edef, 0x4ee0e,
    0x4ee2f, 0x4ee4e, 0x4ee6f, 0x4ee8e, 0x4eeaf, 0x4eecb, 0x4f296, 0x4f813, 0x4f8ae, 0x4f8cf,
    0x4f8f3, 0x4fcce, 0x4fcef, 0x4fd0e, 0x4fd2f, 0x4fd4e, 0x4fd6f, 0x4fd8e, 0x4fdaf, 0x4fdce,
    0x4fdef, 0x4fe13, 0x50016, 0x52013, 0x5306e, 0x5308f, 0x530ae, 0x530cf, 0x530ee, 0x5310f,
    0x5312e, 0x5314f, 0x5316e, 0x5318f, 0x531ae, 0x531cf, 0x531ee, 0x5320f, 0x5322e, 0x5324f,
    0x5326e, 0x5328f, 0x532ae, 0x532cf, 0x532ee, 0x5330f, 0x53333, 0x53b0e, 0x53b2f, 0x53b4e,
    0x53b6f, 0x53b93, 0x53f8e, 0x53faf, 0x53fd3, 0x56016, 0x56613, 0x568b6, 0x568f3, 0x569b6,
    0x56e80, 0x56ed6, 0x572c0, 0x572f6, 0x58001, 0x58602, 0x58c01, 0x58c22, 0x58c41, 0x58ca2,
    0x58ce1, 0x58d02, 0x58d21, 0x58d42, 0x58d61, 0x58d82, 0x58da1, 0x58e22, 0x58e41, 0x58e62,
    0x58ea1, 0x58ec2, 0x58f84, 0x58fc1, 0x59022, 0x59041, 0x59062, 0x59081, 0x590a2, 0x590c1,
    0x590e2, 0x59101, 0x59122, 0x59141, 0x59162, 0x59181, 0x591a2, 0x591c1, 0x591e2, 0x59201,
    0x59222, 0x59241, 0x59262, 0x59281, 0x592a2, 0x592c1, 0x592e2, 0x59301, 0x59322, 0x59341,
    0x59362, 0x59381, 0x593a2, 0x593c1, 0x593e2, 0x59401, 0x59422, 0x59441, 0x59462, 0x59481,
    0x594a2, 0x594c1, 0x594e2, 0x59501, 0x59522, 0x59541, 0x59562, 0x59581, 0x595a2, 0x595c1,
    0x595e2, 0x59601, 0x59622, 0x59641, 0x59662, 0x59681, 0x596a2, 0x596c1, 0x596e2, 0x59701,
    0x59722, 0x59741, 0x59762, 0x59781, 0x597a2, 0x597c1, 0x597e2, 0x59801, 0x59822, 0x59841,
    0x59862, 0x59881, 0x598a2, 0x598c1, 0x598e2, 0x59901, 0x59922, 0x59941, 0x59962, 0x59981,
    0x599a2, 0x599c1, 0x599e2, 0x59a01, 0x59a22, 0x59a41, 0x59a62, 0x59a81, 0x59aa2, 0x59ac1,
    0x59ae2, 0x59b01, 0x59b22, 0x59b41, 0x59b62, 0x59b81, 0x59ba2, 0x59bc1, 0x59be2, 0x59c01,
    0x59c22, 0x59c41, 0x59c62, 0x59cb6, 0x59d61, 0x59d82, 0x59da1, 0x59dc2, 0x59de6, 0x59e41,
    0x59e62, 0x59e80, 0x59f32, 0x59fab, 0x59fd2, 0x5a002, 0x5a4c0, 0x5a4e2, 0x5a500, 0x5a5a2,
    0x5a5c0, 0x5a605, 0x5ad00, 0x5ade4, 0x5ae12, 0x5ae20, 0x5afe6, 0x5b005, 0x5b2e0, 0x5b405,
    0x5b4e0, 0x5b505, 0x5b5e0, 0x5b605, 0x5b6e0, 0x5b705, 0x5b7e0, 0x5b805, 0x5b8e0, 0x5b905,
    0x5b9e0, 0x5ba05, 0x5bae0, 0x5bb05, 0x5bbe0, 0x5bc06, 0x5c012, 0x5c050, 0x5c071, 0x5c090,
    0x5c0b1, 0x5c0d2, 0x5c130, 0x5c151, 0x5c172, 0x5c190, 0x5c1b1, 0x5c1d2, 0x5c2ed, 0x5c312,
    0x5c34d, 0x5c372, 0x5c390, 0x5c3b1, 0x5c3d2, 0x5c410, 0x5c431, 0x5c44e, 0x5c46f, 0x5c48e,
    0x5c4af, 0x5c4ce, 0x5c4ef, 0x5c50e, 0x5c52f, 0x5c552, 0x5c5e4, 0x5c612, 0x5c74d, 0x5c792,
    0x5c80d, 0x5c832, 0x5c84e, 0x5c872, 0x5ca16, 0x5ca52, 0x5caae, 0x5cacf, 0x5caee, 0x5cb0f,
    0x5cb2e, 0x5cb4f, 0x5cb6e, 0x5cb8f, 0x5cbad, 0x5cbc0, 0x5d016, 0x5d340, 0x5d376, 0x5de80,
    0x5e016, 0x5fac0, 0x5fe16, 0x5ff80, 0x60017, 0x60032, 0x60096, 0x600a4, 0x600c5, 0x600ea,
    0x6010e, 0x6012f, 0x6014e, 0x6016f, 0x6018e, 0x601af, 0x601ce, 0x601ef, 0x6020e, 0x6022f,
    0x60256, 0x6028e, 0x602af, 0x602ce, 0x602ef, 0x6030e, 0x6032f, 0x6034e, 0x6036f, 0x6038d,
    0x603ae, 0x603cf, 0x60416, 0x6042a, 0x60546, 0x605c7, 0x6060d, 0x60624, 0x606d6, 0x6070a,
    0x60764, 0x60785, 0x607b2, 0x607d6, 0x60800, 0x60825, 0x612e0, 0x61326, 0x61375, 0x613a4,
    0x613e5, 0x6140d, 0x61425, 0x61f72, 0x61f84, 0x61fe5, 0x62000, 0x620a5, 0x62600, 0x62625,
    0x631e0, 0x63216, 0x6324b, 0x632d6, 0x63405, 0x63816, 0x63c80, 0x63e05, 0x64016, 0x643e0,
    0x6440b, 0x64556, 0x6490b, 0x64a16, 0x64a2b, 0x64c16, 0x6500b, 0x65156, 0x6562b, 0x65816,
    0x68005, 0x9b816, 0x9c005, 0x1402a4, 0x1402c5, 0x1491a0, 0x149216, 0x1498e0, 0x149a05, 0x149f04,
    0x149fd2, 0x14a005, 0x14c184, 0x14c1b2, 0x14c205, 0x14c409, 0x14c545, 0x14c580, 0x14c801, 0x14c822,
    0x14c841, 0x14c862, 0x14c881, 0x14c8a2, 0x14c8c1, 0x14c8e2, 0x14c901, 0x14c922, 0x14c941, 0x14c962,
    0x14c981, 0x14c9a2, 0x14c9c1, 0x14c9e2, 0x14ca01, 0x14ca22, 0x14ca41, 0x14ca62, 0x14ca81, 0x14caa2,
    0x14cac1, 0x14cae2, 0x14cb01, 0x14cb22, 0x14cb41, 0x14cb62, 0x14cb81, 0x14cba2, 0x14cbc1, 0x14cbe2,
    0x14cc01, 0x14cc22, 0x14cc41, 0x14cc62, 0x14cc81, 0x14cca2, 0x14ccc1, 0x14cce2, 0x14cd01, 0x14cd22,
    0x14cd41, 0x14cd62, 0x14cd81, 0x14cda2, 0x14cdc5, 0x14cde6, 0x14ce08, 0x14ce72, 0x14ce86, 0x14cfd2,
    0x14cfe4, 0x14d001, 0x14d022, 0x14d041, 0x14d062, 0x14d081, 0x14d0a2, 0x14d0c1, 0x14d0e2, 0x14d101,
    0x14d122, 0x14d141, 0x14d162, 0x14d181, 0x14d1a2, 0x14d1c1, 0x14d1e2, 0x14d201, 0x14d222, 0x14d241,
    0x14d262, 0x14d281, 0x14d2a2, 0x14d2c1, 0x14d2e2, 0x14d301, 0x14d322, 0x14d341, 0x14d362, 0x14d384,
    0x14d3c6, 0x14d405, 0x14dcca, 0x14de06, 0x14de52, 0x14df00, 0x14e015, 0x14e2e4, 0x14e415, 0x14e441,
    0x14e462, 0x14e481, 0x14e4a2, 0x14e4c1, 0x14e4e2, 0x14e501, 0x14e522, 0x14e541, 0x14e562, 0x14e581,
    0x14e5a2, 0x14e5c1, 0x14e5e2, 0x14e641, 0x14e662, 0x14e681, 0x14e6a2, 0x14e6c1, 0x14e6e2, 0x14e701,
    0x14e722, 0x14e741, 0x14e762, 0x14e781, 0x14e7a2, 0x14e7c1, 0x14e7e2, 0x14e801, 0x14e822, 0x14e841,
    0x14e862, 0x14e881, 0x14e8a2, 0x14e8c1, 0x14e8e2, 0x14e901, 0x14e922, 0x14e941, 0x14e962, 0x14e981,
    0x14e9a2, 0x14e9c1, 0x14e9e2, 0x14ea01, 0x14ea22, 0x14ea41, 0x14ea62, 0x14ea81, 0x14eaa2, 0x14eac1,
    0x14eae2, 0x14eb01, 0x14eb22, 0x14eb41, 0x14eb62, 0x14eb81, 0x14eba2, 0x14ebc1, 0x14ebe2, 0x14ec01,
    0x14ec22, 0x14ec41, 0x14ec62, 0x14ec81, 0x14eca2, 0x14ecc1, 0x14ece2, 0x14ed01, 0x14ed22, 0x14ed41,
    0x14ed62, 0x14ed81, 0x14eda2, 0x14edc1, 0x14ede2, 0x14ee04, 0x14ee22, 0x14ef21, 0x14ef42, 0x14ef61,
    0x14ef82, 0x14efa1, 0x14efe2, 0x14f001, 0x14f022, 0x14f041, 0x14f062, 0x14f081, 0x14f0a2, 0x14f0c1,
    0x14f0e2, 0x14f104, 0x14f135, 0x14f161, 0x14f182, 0x14f1a1, 0x14f1c2, 0x14f1e5, 0x14f201, 0x14f222,
    0x14f241, 0x14f262, 0x14f2c1, 0x14f2e2, 0x14f301, 0x14f322, 0x14f341, 0x14f362, 0x14f381, 0x14f3a2,
    0x14f3c1, 0x14f3e2, 0x14f401, 0x14f422, 0x14f441, 0x14f462, 0x14f481, 0x14f4a2, 0x14f4c1, 0x14f4e2,
    0x14f501, 0x14f522, 0x14f541, 0x14f5e2, 0x14f601, 0x14f6a2, 0x14f6c1, 0x14f6e2, 0x14f701, 0x14f722,
    0x14f741, 0x14f762, 0x14f781, 0x14f7a2, 0x14f7c1, 0x14f7e2, 0x14f801, 0x14f822, 0x14f841, 0x14f862,
    0x14f881, 0x14f902, 0x14f921, 0x14f942, 0x14f960, 0x14fa01, 0x14fa22, 0x14fa40, 0x14fa62, 0x14fa80,
    0x14faa2, 0x14fac1, 0x14fae2, 0x14fb01, 0x14fb22, 0x14fb40, 0x14fe44, 0x14fea1, 0x14fec2, 0x14fee5,
    0x14ff04, 0x14ff42, 0x14ff65, 0x150046, 0x150065, 0x1500c6, 0x1500e5, 0x150166, 0x150185, 0x150467,
    0x1504a6, 0x1504e7, 0x150516, 0x150586, 0x1505a0, 0x15060b, 0x1506d6, 0x150714, 0x150736, 0x150740,
    0x150805, 0x150e92, 0x150f00, 0x151007, 0x151045, 0x151687, 0x151886, 0x1518c0, 0x1519d2, 0x151a09,
    0x151b40, 0x151c06, 0x151e45, 0x151f12, 0x151f65, 0x151f92, 0x151fa5, 0x151fe6, 0x152009, 0x152145,
    0x1524c6, 0x1525d2, 0x152605, 0x1528e6, 0x152a47, 0x152a80, 0x152bf2, 0x152c05, 0x152fa0, 0x153006,
    0x153067, 0x153085, 0x153666, 0x153687, 0x1536c6, 0x153747, 0x153786, 0x1537c7, 0x153832, 0x1539c0,
    0x1539e4, 0x153a09, 0x153b40, 0x153bd2, 0x153c05, 0x153ca6, 0x153cc4, 0x153ce5, 0x153e09, 0x153f45,
    0x153fe0, 0x154005, 0x154526, 0x1545e7, 0x154626, 0x154667, 0x1546a6, 0x1546e0, 0x154805, 0x154866,
    0x154885, 0x154986, 0x1549a7, 0x1549c0, 0x154a09, 0x154b40, 0x154b92, 0x154c05, 0x154e04, 0x154e25,
    0x154ef6, 0x154f45, 0x154f67, 0x154f86, 0x154fa7, 0x154fc5, 0x155606, 0x155625, 0x155646, 0x1556a5,
    0x1556e6, 0x155725, 0x1557c6, 0x155805, 0x155826, 0x155845, 0x155860, 0x155b65, 0x155ba4, 0x155bd2,
    0x155c05, 0x155d67, 0x155d86, 0x155dc7, 0x155e12, 0x155e45, 0x155e64, 0x155ea7, 0x155ec6, 0x155ee0,
    0x156025, 0x1560e0, 0x156125, 0x1561e0, 0x156225, 0x1562e0, 0x156405, 0x1564e0, 0x156505, 0x1565e0,
    0x156602, 0x156b75, 0x156b84, 0x156c02, 0x156d24, 0x156d55, 0x156d80, 0x156e02, 0x157805, 0x157c67,
    0x157ca6, 0x157cc7, 0x157d06, 0x157d27, 0x157d72, 0x157d87, 0x157da6, 0x157dc0, 0x157e09, 0x157f40,
    0x158005, 0x1af480, 0x1af605, 0x1af8e0, 0x1af965, 0x1aff80, 0x1b001c, 0x1c001d, 0x1f2005, 0x1f4dc0,
    0x1f4e05, 0x1f5b40, 0x1f6002, 0x1f60e0, 0x1f6262, 0x1f6300, 0x1f63a5, 0x1f63c6, 0x1f63e5, 0x1f6533,
    0x1f6545, 0x1f66e0, 0x1f6705, 0x1f67a0, 0x1f67c5, 0x1f67e0, 0x1f6805, 0x1f6840, 0x1f6865, 0x1f68a0,
    0x1f68c5, 0x1f7655, 0x1f7860, 0x1f7a65, 0x1fa7cf, 0x1fa7ee, 0x1fa816, 0x1faa05, 0x1fb200, 0x1fb245,
    0x1fb900, 0x1fb9f6, 0x1fba00, 0x1fbe05, 0x1fbf94, 0x1fbfb6, 0x1fc006, 0x1fc212, 0x1fc2ee, 0x1fc30f,
    0x1fc332, 0x1fc340, 0x1fc406, 0x1fc612, 0x1fc62d, 0x1fc66c, 0x1fc6ae, 0x1fc6cf, 0x1fc6ee, 0x1fc70f,
    0x1fc72e, 0x1fc74f, 0x1fc76e, 0x1fc78f, 0x1fc7ae, 0x1fc7cf, 0x1fc7ee, 0x1fc80f, 0x1fc82e, 0x1fc84f,
    0x1fc86e, 0x1fc88f, 0x1fc8b2, 0x1fc8ee, 0x1fc90f, 0x1fc932, 0x1fc9ac, 0x1fca12, 0x1fca60, 0x1fca92,
    0x1fcb0d, 0x1fcb2e, 0x1fcb4f, 0x1fcb6e, 0x1fcb8f, 0x1fcbae, 0x1fcbcf, 0x1fcbf2, 0x1fcc53, 0x1fcc6d,
    0x1fcc93, 0x1fcce0, 0x1fcd12, 0x1fcd34, 0x1fcd52, 0x1fcd80, 0x1fce05, 0x1fcea0, 0x1fcec5, 0x1fdfa0,
    0x1fdffb, 0x1fe000, 0x1fe032, 0x1fe094, 0x1fe0b2, 0x1fe10e, 0x1fe12f, 0x1fe152, 0x1fe173, 0x1fe192,
    0x1fe1ad, 0x1fe1d2, 0x1fe209, 0x1fe352, 0x1fe393, 0x1fe3f2, 0x1fe421, 0x1fe76e, 0x1fe792, 0x1fe7af,
    0x1fe7d5, 0x1fe7ec, 0x1fe815, 0x1fe822, 0x1feb6e, 0x1feb93, 0x1febaf, 0x1febd3, 0x1febee, 0x1fec0f,
    0x1fec32, 0x1fec4e, 0x1fec6f, 0x1fec92, 0x1fecc5, 0x1fee04, 0x1fee25, 0x1ff3c4, 0x1ff405, 0x1ff7e0,
    0x1ff845, 0x1ff900, 0x1ff945, 0x1ffa00, 0x1ffa45, 0x1ffb00, 0x1ffb45, 0x1ffba0, 0x1ffc14, 0x1ffc53,
    0x1ffc75, 0x1ffc96, 0x1ffcb4, 0x1ffce0, 0x1ffd16, 0x1ffd33, 0x1ffdb6, 0x1ffde0, 0x1fff3b, 0x1fff96,
    0x1fffc0, 0x200005, 0x200180, 0x2001a5, 0x2004e0, 0x200505, 0x200760, 0x200785, 0x2007c0, 0x2007e5,
    0x2009c0, 0x200a05, 0x200bc0, 0x201005, 0x201f60, 0x202012, 0x202060, 0x2020eb, 0x202680, 0x2026f6,
    0x20280a, 0x202eab, 0x202f36, 0x20314b, 0x203196, 0x2031e0, 0x203216, 0x2033a0, 0x203416, 0x203420,
    0x203a16, 0x203fa6, 0x203fc0, 0x205005, 0x2053a0, 0x205405, 0x205a20, 0x205c06, 0x205c2b, 0x205f80,
    0x206005, 0x20640b, 0x206480, 0x2065a5, 0x20682a, 0x206845, 0x20694a, 0x206960, 0x206a05, 0x206ec6,
    0x206f60, 0x207005, 0x2073c0, 0x2073f2, 0x207405, 0x207880, 0x207905, 0x207a12, 0x207a2a, 0x207ac0,
    0x208001, 0x208502, 0x208a05, 0x2093c0, 0x209409, 0x209540, 0x209601, 0x209a80, 0x209b02, 0x209f80,
    0x20a005, 0x20a500, 0x20a605, 0x20ac80, 0x20adf2, 0x20ae01, 0x20af60, 0x20af81, 0x20b160, 0x20b181,
    0x20b260, 0x20b281, 0x20b2c0, 0x20b2e2, 0x20b440, 0x20b462, 0x20b640, 0x20b662, 0x20b740, 0x20b762,
    0x20b7a0, 0x20c005, 0x20e6e0, 0x20e805, 0x20eac0, 0x20ec05, 0x20ed00, 0x20f004, 0x20f0c0, 0x20f0e4,
    0x20f620, 0x20f644, 0x20f760, 0x210005, 0x2100c0, 0x210105, 0x210120, 0x210145, 0x2106c0, 0x2106e5,
    0x210720, 0x210785, 0x2107a0, 0x2107e5, 0x210ac0, 0x210af2, 0x210b0b, 0x210c05, 0x210ef6, 0x210f2b,
    0x211005, 0x2113e0, 0x2114eb, 0x211600, 0x211c05, 0x211e60, 0x211e85, 0x211ec0, 0x211f6b, 0x212005,
    0x2122cb, 0x212380, 0x2123f2, 0x212405, 0x212740, 0x2127f2, 0x212800, 0x213005, 0x213700, 0x21378b,
    0x2137c5, 0x21380b, 0x213a00, 0x213a4b, 0x214005, 0x214026, 0x214080, 0x2140a6, 0x2140e0, 0x214186,
    0x214205, 0x214280, 0x2142a5, 0x214300, 0x214325, 0x2146c0, 0x214706, 0x214760, 0x2147e6, 0x21480b,
    0x214920, 0x214a12, 0x214b20, 0x214c05, 0x214fab, 0x214ff2, 0x215005, 0x2153ab, 0x215400, 0x215805,
    0x215916, 0x215925, 0x215ca6, 0x215ce0, 0x215d6b, 0x215e12, 0x215ee0, 0x216005, 0x2166c0, 0x216732,
    0x216805, 0x216ac0, 0x216b0b, 0x216c05, 0x216e60, 0x216f0b, 0x217005, 0x217240, 0x217332, 0x2173a0,
    0x21752b, 0x217600, 0x218005, 0x218920, 0x219001, 0x219660, 0x219802, 0x219e60, 0x219f4b, 0x21a005,
    0x21a486, 0x21a500, 0x21a609, 0x21a740, 0x21cc0b, 0x21cfe0, 0x21d005, 0x21d540, 0x21d566, 0x21d5ad,
    0x21d5c0, 0x21d605, 0x21d640, 0x21e005, 0x21e3ab, 0x21e4e5, 0x21e500, 0x21e605, 0x21e8c6, 0x21ea2b,
    0x21eab2, 0x21eb40, 0x21ee05, 0x21f046, 0x21f0d2, 0x21f140, 0x21f605, 0x21f8ab, 0x21f980, 0x21fc05,
    0x21fee0, 0x220007, 0x220026, 0x220047, 0x220065, 0x220706, 0x2208f2, 0x2209c0, 0x220a4b, 0x220cc9,
    0x220e06, 0x220e25, 0x220e66, 0x220ea5, 0x220ec0, 0x220fe6, 0x221047, 0x221065, 0x221607, 0x221666,
    0x2216e7, 0x221726, 0x221772, 0x2217bb, 0x2217d2, 0x221846, 0x221860, 0x2219bb, 0x2219c0, 0x221a05,
    0x221d20, 0x221e09, 0x221f40, 0x222006, 0x222065, 0x2224e6, 0x222587, 0x2225a6, 0x2226a0, 0x2226c9,
    0x222812, 0x222885, 0x2228a7, 0x2228e5, 0x222900, 0x222a05, 0x222e66, 0x222e92, 0x222ec5, 0x222ee0,
    0x223006, 0x223047, 0x223065, 0x223667, 0x2236c6, 0x2237e7, 0x223825, 0x2238b2, 0x223926, 0x2239b2,
    0x2239c7, 0x2239e6, 0x223a09, 0x223b45, 0x223b72, 0x223b85, 0x223bb2, 0x223c00, 0x223c2b, 0x223ea0,
    0x224005, 0x224240, 0x224265, 0x224587, 0x2245e6, 0x224647, 0x224686, 0x2246a7, 0x2246c6, 0x224712,
    0x2247c6, 0x2247e0, 0x225005, 0x2250e0, 0x225105, 0x225120, 0x225145, 0x2251c0, 0x2251e5, 0x2253c0,
    0x2253e5, 0x225532, 0x225540, 0x225605, 0x225be6, 0x225c07, 0x225c66, 0x225d60, 0x225e09, 0x225f40,
    0x226006, 0x226047, 0x226080, 0x2260a5, 0x2261a0, 0x2261e5, 0x226220, 0x226265, 0x226520, 0x226545,
    0x226620, 0x226645, 0x226680, 0x2266a5, 0x226740, 0x226766, 0x2267a5, 0x2267c7, 0x226806, 0x226827,
    0x2268a0, 0x2268e7, 0x226920, 0x226967, 0x2269c0, 0x226a05, 0x226a20, 0x226ae7, 0x226b00, 0x226ba5,
    0x226c47, 0x226c80, 0x226cc6, 0x226da0, 0x226e06, 0x226ea0, 0x228005, 0x2286a7, 0x228706, 0x228807,
    0x228846, 0x2288a7, 0x2288c6, 0x2288e5, 0x228972, 0x228a09, 0x228b52, 0x228b80, 0x228bb2, 0x228bc6,
    0x228be5, 0x228c40, 0x229005, 0x229607, 0x229666, 0x229727, 0x229746, 0x229767, 0x2297e6, 0x229827,
    0x229846, 0x229885, 0x2298d2, 0x2298e5, 0x229900, 0x229a09, 0x229b40, 0x22b005, 0x22b5e7, 0x22b646,
    0x22b6c0, 0x22b707, 0x22b786, 0x22b7c7, 0x22b7e6, 0x22b832, 0x22bb05, 0x22bb86, 0x22bbc0, 0x22c005,
    0x22c607, 0x22c666, 0x22c767, 0x22c7a6, 0x22c7c7, 0x22c7e6, 0x22c832, 0x22c885, 0x22c8a0, 0x22ca09,
    0x22cb40, 0x22cc12, 0x22cda0, 0x22d005, 0x22d566, 0x22d587, 0x22d5a6, 0x22d5c7, 0x22d606, 0x22d6c7,
    0x22d6e6, 0x22d705, 0x22d732, 0x22d740, 0x22d809, 0x22d940, 0x22e005, 0x22e360, 0x22e3a6, 0x22e407,
    0x22e446, 0x22e4c7, 0x22e4e6, 0x22e580, 0x22e609, 0x22e74b, 0x22e792, 0x22e7f6, 0x22e805, 0x22e8e0,
    0x230005, 0x230587, 0x2305e6, 0x230707, 0x230726, 0x230772, 0x230780, 0x231401, 0x231802, 0x231c09,
    0x231d4b, 0x231e60, 0x231fe5, 0x2320e0, 0x232125, 0x232140, 0x232185, 0x232280, 0x2322a5, 0x2322e0,
    0x232305, 0x232607, 0x2326c0, 0x2326e7, 0x232720, 0x232766, 0x2327a7, 0x2327c6, 0x2327e5, 0x232807,
    0x232825, 0x232847, 0x232866, 0x232892, 0x2328e0, 0x232a09, 0x232b40, 0x233405, 0x233500, 0x233545,
    0x233a27, 0x233a86, 0x233b00, 0x233b46, 0x233b87, 0x233c06, 0x233c25, 0x233c52, 0x233c65, 0x233c87,
    0x233ca0, 0x234005, 0x234026, 0x234165, 0x234666, 0x234727, 0x234745, 0x234766, 0x2347f2, 0x2348e6,
    0x234900, 0x234a05, 0x234a26, 0x234ae7, 0x234b26, 0x234b85, 0x235146, 0x2352e7, 0x235306, 0x235352,
    0x2353a5, 0x2353d2, 0x235460, 0x235605, 0x235f20, 0x238005, 0x238120, 0x238145, 0x2385e7, 0x238606,
    0x2386e0, 0x238706, 0x2387c7, 0x2387e6, 0x238805, 0x238832, 0x2388c0, 0x238a09, 0x238b4b, 0x238da0,
    0x238e12, 0x238e45, 0x239200, 0x239246, 0x239500, 0x239527, 0x239546, 0x239627, 0x239646, 0x239687,
    0x2396a6, 0x2396e0, 0x23a005, 0x23a0e0, 0x23a105, 0x23a140, 0x23a165, 0x23a626, 0x23a6e0, 0x23a746,
    0x23a760, 0x23a786, 0x23a7c0, 0x23a7e6, 0x23a8c5, 0x23a8e6, 0x23a900, 0x23aa09, 0x23ab40, 0x23ac05,
    0x23acc0, 0x23ace5, 0x23ad20, 0x23ad45, 0x23b147, 0x23b1e0, 0x23b206, 0x23b240, 0x23b267, 0x23b2a6,
    0x23b2c7, 0x23b2e6, 0x23b305, 0x23b320, 0x23b409, 0x23b540, 0x23dc05, 0x23de66, 0x23dea7, 0x23def2,
    0x23df20, 0x23f605, 0x23f620, 0x23f80b, 0x23fab6, 0x23fbb4, 0x23fc36, 0x23fe40, 0x23fff2, 0x240005,
    0x247340, 0x24800a, 0x248de0, 0x248e12, 0x248ea0, 0x249005, 0x24a880, 0x25f205, 0x25fe32, 0x25fe60,
    0x260005, 0x2685e0, 0x26861b, 0x268720, 0x288005, 0x28c8e0, 0x2d0005, 0x2d4720, 0x2d4805, 0x2d4be0,
    0x2d4c09, 0x2d4d40, 0x2d4dd2, 0x2d4e05, 0x2d57e0, 0x2d5809, 0x2d5940, 0x2d5a05, 0x2d5dc0, 0x2d5e06,
    0x2d5eb2, 0x2d5ec0, 0x2d6005, 0x2d6606, 0x2d66f2, 0x2d6796, 0x2d6804, 0x2d6892, 0x2d68b6, 0x2d68c0,
    0x2d6a09, 0x2d6b40, 0x2d6b6b, 0x2d6c40, 0x2d6c65, 0x2d6f00, 0x2d6fa5, 0x2d7200, 0x2dc801, 0x2dcc02,
    0x2dd00b, 0x2dd2f2, 0x2dd360, 0x2de005, 0x2de960, 0x2de9e6, 0x2dea05, 0x2dea27, 0x2df100, 0x2df1e6,
    0x2df264, 0x2df400, 0x2dfc04, 0x2dfc52, 0x2dfc64, 0x2dfc86, 0x2dfca0, 0x2dfe07, 0x2dfe40, 0x2e0005,
    0x30ff00, 0x310005, 0x319ac0, 0x31a005, 0x31a120, 0x35fe04, 0x35fe80, 0x35fea4, 0x35ff80, 0x35ffa4,
    0x35ffe0, 0x360005, 0x362460, 0x362a05, 0x362a60, 0x362c85, 0x362d00, 0x362e05, 0x365f80, 0x378005,
    0x378d60, 0x378e05, 0x378fa0, 0x379005, 0x379120, 0x379205, 0x379340, 0x379396, 0x3793a6, 0x3793f2,
    0x37941b, 0x379480, 0x39e006, 0x39e5c0, 0x39e606, 0x39e8e0, 0x39ea16, 0x39f880, 0x3a0016, 0x3a1ec0,
    0x3a2016, 0x3a24e0, 0x3a2536, 0x3a2ca7, 0x3a2ce6, 0x3a2d56, 0x3a2da7, 0x3a2e7b, 0x3a2f66, 0x3a3076,
    0x3a30a6, 0x3a3196, 0x3a3546, 0x3a35d6, 0x3a3d60, 0x3a4016, 0x3a4846, 0x3a48b6, 0x3a48c0, 0x3a5c0b,
    0x3a5e80, 0x3a6016, 0x3a6ae0, 0x3a6c0b, 0x3a6f20, 0x3a8001, 0x3a8342, 0x3a8681, 0x3a89c2, 0x3a8aa0,
    0x3a8ac2, 0x3a8d01, 0x3a9042, 0x3a9381, 0x3a93a0, 0x3a93c1, 0x3a9400, 0x3a9441, 0x3a9460, 0x3a94a1,
    0x3a94e0, 0x3a9521, 0x3a95a0, 0x3a95c1, 0x3a96c2, 0x3a9740, 0x3a9762, 0x3a9780, 0x3a97a2, 0x3a9880,
    0x3a98a2, 0x3a9a01, 0x3a9d42, 0x3aa081, 0x3aa0c0, 0x3aa0e1, 0x3aa160, 0x3aa1a1, 0x3aa2a0, 0x3aa2c1,
    0x3aa3a0, 0x3aa3c2, 0x3aa701, 0x3aa740, 0x3aa761, 0x3aa7e0, 0x3aa801, 0x3aa8a0, 0x3aa8c1, 0x3aa8e0,
    0x3aa941, 0x3aaa20, 0x3aaa42, 0x3aad81, 0x3ab0c2, 0x3ab401, 0x3ab742, 0x3aba81, 0x3abdc2, 0x3ac101,
    0x3ac442, 0x3ac781, 0x3acac2, 0x3ace01, 0x3ad142, 0x3ad4c0, 0x3ad501, 0x3ad833, 0x3ad842, 0x3adb73,
    0x3adb82, 0x3adc41, 0x3adf73, 0x3adf82, 0x3ae2b3, 0x3ae2c2, 0x3ae381, 0x3ae6b3, 0x3ae6c2, 0x3ae9f3,
    0x3aea02, 0x3aeac1, 0x3aedf3, 0x3aee02, 0x3af133, 0x3af142, 0x3af201, 0x3af533, 0x3af542, 0x3af873,
    0x3af882, 0x3af941, 0x3af962, 0x3af980, 0x3af9c9, 0x3b0016, 0x3b4006, 0x3b46f6, 0x3b4766, 0x3b4db6,
    0x3b4ea6, 0x3b4ed6, 0x3b5086, 0x3b50b6, 0x3b50f2, 0x3b5180, 0x3b5366, 0x3b5400, 0x3b5426, 0x3b5600,
    0x3be002, 0x3be145, 0x3be162, 0x3be3e0, 0x3c0006, 0x3c00e0, 0x3c0106, 0x3c0320, 0x3c0366, 0x3c0440,
    0x3c0466, 0x3c04a0, 0x3c04c6, 0x3c0560, 0x3c2005, 0x3c25a0, 0x3c2606, 0x3c26e4, 0x3c27c0, 0x3c2809,
    0x3c2940, 0x3c29c5, 0x3c29f6, 0x3c2a00, 0x3c5205, 0x3c55c6, 0x3c55e0, 0x3c5805, 0x3c5d86, 0x3c5e09,
    0x3c5f40, 0x3c5ff4, 0x3c6000, 0x3cfc05, 0x3cfce0, 0x3cfd05, 0x3cfd80, 0x3cfda5, 0x3cfde0, 0x3cfe05,
    0x3cffe0, 0x3d0005, 0x3d18a0, 0x3d18eb, 0x3d1a06, 0x3d1ae0, 0x3d2001, 0x3d2442, 0x3d2886, 0x3d2964,
    0x3d2980, 0x3d2a09, 0x3d2b40, 0x3d2bd2, 0x3d2c00, 0x3d8e2b, 0x3d9596, 0x3d95ab, 0x3d9614, 0x3d962b,
    0x3d96a0, 0x3da02b, 0x3da5d6, 0x3da5eb, 0x3da7c0, 0x3dc005, 0x3dc080, 0x3dc0a5, 0x3dc400, 0x3dc425,
    0x3dc460, 0x3dc485, 0x3dc4a0, 0x3dc4e5, 0x3dc500, 0x3dc525, 0x3dc660, 0x3dc685, 0x3dc700, 0x3dc725,
    0x3dc740, 0x3dc765, 0x3dc780, 0x3dc845, 0x3dc860, 0x3dc8e5, 0x3dc900, 0x3dc925, 0x3dc940, 0x3dc965,
    0x3dc980, 0x3dc9a5, 0x3dca00, 0x3dca25, 0x3dca60, 0x3dca85, 0x3dcaa0, 0x3dcae5, 0x3dcb00, 0x3dcb25,
    0x3dcb40, 0x3dcb65, 0x3dcb80, 0x3dcba5, 0x3dcbc0, 0x3dcbe5, 0x3dcc00, 0x3dcc25, 0x3dcc60, 0x3dcc85,
    0x3dcca0, 0x3dcce5, 0x3dcd60, 0x3dcd85, 0x3dce60, 0x3dce85, 0x3dcf00, 0x3dcf25, 0x3dcfa0, 0x3dcfc5,
    0x3dcfe0, 0x3dd005, 0x3dd140, 0x3dd165, 0x3dd380, 0x3dd425, 0x3dd480, 0x3dd4a5, 0x3dd540, 0x3dd565,
    0x3dd780, 0x3dde13, 0x3dde40, 0x3e0016, 0x3e0580, 0x3e0616, 0x3e1280, 0x3e1416, 0x3e15e0, 0x3e1636,
    0x3e1800, 0x3e1836, 0x3e1a00, 0x3e1a36, 0x3e1ec0, 0x3e200b, 0x3e21b6, 0x3e35c0, 0x3e3cd6, 0x3e4060,
    0x3e4216, 0x3e4780, 0x3e4816, 0x3e4920, 0x3e4a16, 0x3e4a40, 0x3e4c16, 0x3e4cc0, 0x3e6016, 0x3e7f75,
    0x3e8016, 0x3edb00, 0x3edbb6, 0x3edda0, 0x3ede16, 0x3edfa0, 0x3ee016, 0x3eee80, 0x3ef016, 0x3efb20,
    0x3efc16, 0x3efd80, 0x3efe16, 0x3efe20, 0x3f0016, 0x3f0180, 0x3f0216, 0x3f0900, 0x3f0a16, 0x3f0b40,
    0x3f0c16, 0x3f1100, 0x3f1216, 0x3f15c0, 0x3f1616, 0x3f1640, 0x3f2016, 0x3f4a80, 0x3f4c16, 0x3f4dc0,
    0x3f4e16, 0x3f4ea0, 0x3f4f16, 0x3f4fa0, 0x3f5016, 0x3f50e0, 0x3f5216, 0x3f55a0, 0x3f5616, 0x3f5760,
    0x3f5816, 0x3f58c0, 0x3f5a16, 0x3f5b40, 0x3f5c16, 0x3f5d00, 0x3f5e16, 0x3f5ee0, 0x3f6016, 0x3f7260,
    0x3f7296, 0x3f7960, 0x3f7e09, 0x3f7f40, 0x400005, 0x54dc00, 0x54e005, 0x56e720, 0x56e805, 0x5703c0,
    0x570405, 0x59d440, 0x59d605, 0x5d7c20, 0x5f0005, 0x5f43c0, 0x600005, 0x626960, 0x1c0003b, 0x1c00040,
    0x1c0041b, 0x1c01000, 0x1c02006, 0x1c03e00, 0x1e0001d, 0x1ffffc0, 0x200001d, 0x21fffc0,
};
static const uint32_t lf__uc_ccc[571] = {
    0x0, 0x300e6, 0x315e8, 0x316dc, 0x31ae8, 0x31bd8, 0x31cdc, 0x321ca, 0x323dc, 0x327ca,
    0x329dc, 0x33401, 0x339dc, 0x33de6, 0x345f0, 0x346e6, 0x347dc, 0x34ae6, 0x34ddc, 0x34f00,
    0x350e6, 0x353dc, 0x357e6, 0x358e8, 0x359dc, 0x35be6, 0x35ce9, 0x35dea, 0x35fe9, 0x360ea,
    0x362e9, 0x363e6, 0x37000, 0x483e6, 0x48800, 0x591dc, 0x592e6, 0x596dc, 0x597e6, 0x59ade,
    0x59bdc, 0x59ce6, 0x5a2dc, 0x5a8e6, 0x5aadc, 0x5abe6, 0x5adde, 0x5aee4, 0x5afe6, 0x5b00a,
    0x5b10b, 0x5b20c, 0x5b30d, 0x5b40e, 0x5b50f, 0x5b610, 0x5b711, 0x5b812, 0x5b913, 0x5bb14,
    0x5bc15, 0x5bd16, 0x5be00, 0x5bf17, 0x5c000, 0x5c118, 0x5c219, 0x5c300, 0x5c4e6, 0x5c5dc,
    0x5c600, 0x5c712, 0x5c800, 0x610e6, 0x6181e, 0x6191f, 0x61a20, 0x61b00, 0x64b1b, 0x64c1c,
    0x64d1d, 0x64e1e, 0x64f1f, 0x65020, 0x65121, 0x65222, 0x653e6, 0x655dc, 0x657e6, 0x65cdc,
    0x65de6, 0x65fdc, 0x66000, 0x67023, 0x67100, 0x6d6e6, 0x6dd00, 0x6dfe6, 0x6e3dc, 0x6e4e6,
    0x6e500, 0x6e7e6, 0x6e900, 0x6eadc, 0x6ebe6, 0x6eddc, 0x6ee00, 0x71124, 0x71200, 0x730e6,
    0x731dc, 0x732e6, 0x734dc, 0x735e6, 0x737dc, 0x73ae6, 0x73bdc, 0x73de6, 0x73edc, 0x73fe6,
    0x742dc, 0x743e6, 0x744dc, 0x745e6, 0x746dc, 0x747e6, 0x748dc, 0x749e6, 0x74b00, 0x7ebe6,
    0x7f2dc, 0x7f3e6, 0x7f400, 0x7fddc, 0x7fe00, 0x816e6, 0x81a00, 0x81be6, 0x82400, 0x825e6,
    0x82800, 0x829e6, 0x82e00, 0x859dc, 0x85c00, 0x898e6, 0x899dc, 0x89ce6, 0x8a000, 0x8cae6,
    0x8cfdc, 0x8d4e6, 0x8e200, 0x8e3dc, 0x8e4e6, 0x8e6dc, 0x8e7e6, 0x8e9dc, 0x8eae6, 0x8eddc,
    0x8f01b, 0x8f11c, 0x8f21d, 0x8f3e6, 0x8f6dc, 0x8f7e6, 0x8f9dc, 0x8fbe6, 0x90000, 0x93c07,
    0x93d00, 0x94d09, 0x94e00, 0x951e6, 0x952dc, 0x953e6, 0x95500, 0x9bc07, 0x9bd00, 0x9cd09,
    0x9ce00, 0x9fee6, 0x9ff00, 0xa3c07, 0xa3d00, 0xa4d09, 0xa4e00, 0xabc07, 0xabd00, 0xacd09,
    0xace00, 0xb3c07, 0xb3d00, 0xb4d09, 0xb4e00, 0xbcd09, 0xbce00, 0xc3c07, 0xc3d00, 0xc4d09,
    0xc4e00, 0xc5554, 0xc565b, 0xc5700, 0xcbc07, 0xcbd00, 0xccd09, 0xcce00, 0xd3b09, 0xd3d00,
    0xd4d09, 0xd4e00, 0xdca09, 0xdcb00, 0xe3867, 0xe3a09, 0xe3b00, 0xe486b, 0xe4c00, 0xeb876,
    0xeba09, 0xebb00, 0xec87a, 0xecc00, 0xf18dc, 0xf1a00, 0xf35dc, 0xf3600, 0xf37dc, 0xf3800,
    0xf39d8, 0xf3a00, 0xf7181, 0xf7282, 0xf7300, 0xf7484, 0xf7500, 0xf7a82, 0xf7e00, 0xf8082,
    0xf8100, 0xf82e6, 0xf8409, 0xf8500, 0xf86e6, 0xf8800, 0xfc6dc, 0xfc700, 0x103707, 0x103800,
    0x103909, 0x103b00, 0x108ddc, 0x108e00, 0x135de6, 0x136000, 0x171409, 0x171600, 0x173409, 0x173500,
    0x17d209, 0x17d300, 0x17dde6, 0x17de00, 0x18a9e4, 0x18aa00, 0x1939de, 0x193ae6, 0x193bdc, 0x193c00,
    0x1a17e6, 0x1a18dc, 0x1a1900, 0x1a6009, 0x1a6100, 0x1a75e6, 0x1a7d00, 0x1a7fdc, 0x1a8000, 0x1ab0e6,
    0x1ab5dc, 0x1abbe6, 0x1abddc, 0x1abe00, 0x1abfdc, 0x1ac1e6, 0x1ac3dc, 0x1ac5e6, 0x1acadc, 0x1acbe6,
    0x1acf00, 0x1b3407, 0x1b3500, 0x1b4409, 0x1b4500, 0x1b6be6, 0x1b6cdc, 0x1b6de6, 0x1b7400, 0x1baa09,
    0x1bac00, 0x1be607, 0x1be700, 0x1bf209, 0x1bf400, 0x1c3707, 0x1c3800, 0x1cd0e6, 0x1cd300, 0x1cd401,
    0x1cd5dc, 0x1cdae6, 0x1cdcdc, 0x1ce0e6, 0x1ce100, 0x1ce201, 0x1ce900, 0x1ceddc, 0x1cee00, 0x1cf4e6,
    0x1cf500, 0x1cf8e6, 0x1cfa00, 0x1dc0e6, 0x1dc2dc, 0x1dc3e6, 0x1dcadc, 0x1dcbe6, 0x1dcdea, 0x1dced6,
    0x1dcfdc, 0x1dd0ca, 0x1dd1e6, 0x1df6e8, 0x1df7e4, 0x1df9dc, 0x1dfada, 0x1dfbe6, 0x1dfce9, 0x1dfddc,
    0x1dfee6, 0x1dffdc, 0x1e0000, 0x20d0e6, 0x20d201, 0x20d4e6, 0x20d801, 0x20dbe6, 0x20dd00, 0x20e1e6,
    0x20e200, 0x20e501, 0x20e7e6, 0x20e8dc, 0x20e9e6, 0x20ea01, 0x20ecdc, 0x20f0e6, 0x20f100, 0x2cefe6,
    0x2cf200, 0x2d7f09, 0x2d8000, 0x2de0e6, 0x2e0000, 0x302ada, 0x302be4, 0x302ce8, 0x302dde, 0x302ee0,
    0x303000, 0x309908, 0x309b00, 0xa66fe6, 0xa67000, 0xa674e6, 0xa67e00, 0xa69ee6, 0xa6a000, 0xa6f0e6,
    0xa6f200, 0xa80609, 0xa80700, 0xa82c09, 0xa82d00, 0xa8c409, 0xa8c500, 0xa8e0e6, 0xa8f200, 0xa92bdc,
    0xa92e00, 0xa95309, 0xa95400, 0xa9b307, 0xa9b400, 0xa9c009, 0xa9c100, 0xaab0e6, 0xaab100, 0xaab2e6,
    0xaab4dc, 0xaab500, 0xaab7e6, 0xaab900, 0xaabee6, 0xaac000, 0xaac1e6, 0xaac200, 0xaaf609, 0xaaf700,
    0xabed09, 0xabee00, 0xfb1e1a, 0xfb1f00, 0xfe20e6, 0xfe27dc, 0xfe2ee6, 0xfe3000, 0x101fddc, 0x101fe00,
    0x102e0dc, 0x102e100, 0x10376e6, 0x1037b00, 0x10a0ddc, 0x10a0e00, 0x10a0fe6, 0x10a1000, 0x10a38e6, 0x10a3901,
    0x10a3adc, 0x10a3b00, 0x10a3f09, 0x10a4000, 0x10ae5e6, 0x10ae6dc, 0x10ae700, 0x10d24e6, 0x10d2800, 0x10eabe6,
    0x10ead00, 0x10f46dc, 0x10f48e6, 0x10f4bdc, 0x10f4ce6, 0x10f4ddc, 0x10f5100, 0x10f82e6, 0x10f83dc, 0x10f84e6,
    0x10f85dc, 0x10f8600, 0x1104609, 0x1104700, 0x1107009, 0x1107100, 0x1107f09, 0x1108000, 0x110b909, 0x110ba07,
    0x110bb00, 0x11100e6, 0x1110300, 0x1113309, 0x1113500, 0x1117307, 0x1117400, 0x111c009, 0x111c100, 0x111ca07,
    0x111cb00, 0x1123509, 0x1123607, 0x1123700, 0x112e907, 0x112ea09, 0x112eb00, 0x1133b07, 0x1133d00, 0x1134d09,
    0x1134e00, 0x11366e6, 0x1136d00, 0x11370e6, 0x1137500, 0x1144209, 0x1144300, 0x1144607, 0x1144700, 0x1145ee6,
    0x1145f00, 0x114c209, 0x114c307, 0x114c400, 0x115bf09, 0x115c007, 0x115c100, 0x1163f09, 0x1164000, 0x116b609,
    0x116b707, 0x116b800, 0x1172b09, 0x1172c00, 0x1183909, 0x1183a07, 0x1183b00, 0x1193d09, 0x1193f00, 0x1194307,
    0x1194400, 0x119e009, 0x119e100, 0x11a3409, 0x11a3500, 0x11a4709, 0x11a4800, 0x11a9909, 0x11a9a00, 0x11c3f09,
    0x11c4000, 0x11d4207, 0x11d4300, 0x11d4409, 0x11d4600, 0x11d9709, 0x11d9800, 0x16af001, 0x16af500, 0x16b30e6,
    0x16b3700, 0x16ff006, 0x16ff200, 0x1bc9e01, 0x1bc9f00, 0x1d165d8, 0x1d16701, 0x1d16a00, 0x1d16de2, 0x1d16ed8,
    0x1d17300, 0x1d17bdc, 0x1d18300, 0x1d185e6, 0x1d18adc, 0x1d18c00, 0x1d1aae6, 0x1d1ae00, 0x1d242e6, 0x1d24500,
    0x1e000e6, 0x1e00700, 0x1e008e6, 0x1e01900, 0x1e01be6, 0x1e02200, 0x1e023e6, 0x1e02500, 0x1e026e6, 0x1e02b00,
    0x1e130e6, 0x1e13700, 0x1e2aee6, 0x1e2af00, 0x1e2ece6, 0x1e2f000, 0x1e8d0dc, 0x1e8d700, 0x1e944e6, 0x1e94a07,
    0x1e94b00,
};
static const uint64_t lf__uc_decomp[2061] = {
    0x3000008200300, 0x3040008200301, 0x3080008200302, 0x30c0008200303, 0x3100008200308, 0x314000820030a,
    0x31c0008600327, 0x3200008a00300, 0x3240008a00301, 0x3280008a00302, 0x32c0008a00308, 0x3300009200300,
    0x3340009200301, 0x3380009200302, 0x33c0009200308, 0x3440009c00303, 0x3480009e00300, 0x34c0009e00301,
    0x3500009e00302, 0x3540009e00303, 0x3580009e00308, 0x364000aa00300, 0x368000aa00301, 0x36c000aa00302,
    0x370000aa00308, 0x374000b200301, 0x380000c200300, 0x384000c200301, 0x388000c200302, 0x38c000c200303,
    0x390000c200308, 0x394000c20030a, 0x39c000c600327, 0x3a0000ca00300, 0x3a4000ca00301, 0x3a8000ca00302,
    0x3ac000ca00308, 0x3b0000d200300, 0x3b4000d200301, 0x3b8000d200302, 0x3bc000d200308, 0x3c4000dc00303,
    0x3c8000de00300, 0x3cc000de00301, 0x3d0000de00302, 0x3d4000de00303, 0x3d8000de00308, 0x3e4000ea00300,
    0x3e8000ea00301, 0x3ec000ea00302, 0x3f0000ea00308, 0x3f4000f200301, 0x3fc000f200308, 0x4000008200304,
    0x404000c200304, 0x4080008200306, 0x40c000c200306, 0x4100008200328, 0x414000c200328, 0x4180008600301,
    0x41c000c600301, 0x4200008600302, 0x424000c600302, 0x4280008600307, 0x42c000c600307, 0x430000860030c,
    0x434000c60030c, 0x438000880030c, 0x43c000c80030c, 0x4480008a00304, 0x44c000ca00304, 0x4500008a00306,
    0x454000ca00306, 0x4580008a00307, 0x45c000ca00307, 0x4600008a00328, 0x464000ca00328, 0x4680008a0030c,
    0x46c000ca0030c, 0x4700008e00302, 0x474000ce00302, 0x4780008e00306, 0x47c000ce00306, 0x4800008e00307,
    0x484000ce00307, 0x4880008e00327, 0x48c000ce00327, 0x4900009000302, 0x494000d000302, 0x4a00009200303,
    0x4a4000d200303, 0x4a80009200304, 0x4ac000d200304, 0x4b00009200306, 0x4b4000d200306, 0x4b80009200328,
    0x4bc000d200328, 0x4c00009200307, 0x4d00009400302, 0x4d4000d400302, 0x4d80009600327, 0x4dc000d600327,
    0x4e40009800301, 0x4e8000d800301, 0x4ec0009800327, 0x4f0000d800327, 0x4f4000980030c, 0x4f8000d80030c,
    0x50c0009c00301, 0x510000dc00301, 0x5140009c00327, 0x518000dc00327, 0x51c0009c0030c, 0x520000dc0030c,
    0x5300009e00304, 0x534000de00304, 0x5380009e00306, 0x53c000de00306, 0x5400009e0030b, 0x544000de0030b,
    0x550000a400301, 0x554000e400301, 0x558000a400327, 0x55c000e400327, 0x560000a40030c, 0x564000e40030c,
    0x568000a600301, 0x56c000e600301, 0x570000a600302, 0x574000e600302, 0x578000a600327, 0x57c000e600327,
    0x580000a60030c, 0x584000e60030c, 0x588000a800327, 0x58c000e800327, 0x590000a80030c, 0x594000e80030c,
    0x5a0000aa00303, 0x5a4000ea00303, 0x5a8000aa00304, 0x5ac000ea00304, 0x5b0000aa00306, 0x5b4000ea00306,
    0x5b8000aa0030a, 0x5bc000ea0030a, 0x5c0000aa0030b, 0x5c4000ea0030b, 0x5c8000aa00328, 0x5cc000ea00328,
    0x5d0000ae00302, 0x5d4000ee00302, 0x5d8000b200302, 0x5dc000f200302, 0x5e0000b200308, 0x5e4000b400301,
    0x5e8000f400301, 0x5ec000b400307, 0x5f0000f400307, 0x5f4000b40030c, 0x5f8000f40030c, 0x6800009e0031b,
    0x684000de0031b, 0x6bc000aa0031b, 0x6c0000ea0031b, 0x734000820030c, 0x738000c20030c, 0x73c000920030c,
    0x740000d20030c, 0x7440009e0030c, 0x748000de0030c, 0x74c000aa0030c, 0x750000ea0030c, 0x754001b800304,
    0x758001f800304, 0x75c001b800301, 0x760001f800301, 0x764001b80030c, 0x768001f80030c, 0x76c001b800300,
    0x770001f800300, 0x7780018800304, 0x77c001c800304, 0x7800044c00304, 0x7840044e00304, 0x7880018c00304,
    0x78c001cc00304, 0x7980008e0030c, 0x79c000ce0030c, 0x7a0000960030c, 0x7a4000d60030c, 0x7a80009e00328,
    0x7ac000de00328, 0x7b0003d400304, 0x7b4003d600304, 0x7b80036e0030c, 0x7bc005240030c, 0x7c0000d40030c,
    0x7d00008e00301, 0x7d4000ce00301, 0x7e00009c00300, 0x7e4000dc00300, 0x7e80018a00301, 0x7ec001ca00301,
    0x7f00018c00301, 0x7f4001cc00301, 0x7f8001b000301, 0x7fc001f000301, 0x800000820030f, 0x804000c20030f,
    0x8080008200311, 0x80c000c200311, 0x8100008a0030f, 0x814000ca0030f, 0x8180008a00311, 0x81c000ca00311,
    0x820000920030f, 0x824000d20030f, 0x8280009200311, 0x82c000d200311, 0x8300009e0030f, 0x834000de0030f,
    0x8380009e00311, 0x83c000de00311, 0x840000a40030f, 0x844000e40030f, 0x848000a400311, 0x84c000e400311,
    0x850000aa0030f, 0x854000ea0030f, 0x858000aa00311, 0x85c000ea00311, 0x860000a600326, 0x864000e600326,
    0x868000a800326, 0x86c000e800326, 0x878000900030c, 0x87c000d00030c, 0x8980008200307, 0x89c000c200307,
    0x8a00008a00327, 0x8a4000ca00327, 0x8a8001ac00304, 0x8ac001ec00304, 0x8b0001aa00304, 0x8b4001ea00304,
    0x8b80009e00307, 0x8bc000de00307, 0x8c00045c00304, 0x8c40045e00304, 0x8c8000b200304, 0x8cc000f200304,
    0xd000060000000, 0xd040060200000, 0xd0c0062600000, 0xd100061000301, 0xdd00057200000, 0xdf80007600000,
    0xe140015000301, 0xe180072200301, 0xe1c0016e00000, 0xe200072a00301, 0xe240072e00301, 0xe280073200301,
    0xe300073e00301, 0xe380074a00301, 0xe3c0075200301, 0xe400079400301, 0xea80073200308, 0xeac0074a00308,
    0xeb00076200301, 0xeb40076a00301, 0xeb80076e00301, 0xebc0077200301, 0xec00079600301, 0xf280077200308,
    0xf2c0078a00308, 0xf300077e00301, 0xf340078a00301, 0xf380079200301, 0xf4c007a400301, 0xf50007a400308,
    0x10000082a00300, 0x10040082a00308, 0x100c0082600301, 0x101c0080c00308, 0x10300083400301, 0x10340083000300,
    0x10380084600306, 0x10640083000306, 0x10e40087000306, 0x11400086a00300, 0x11440086a00308, 0x114c0086600301,
    0x115c008ac00308, 0x11700087400301, 0x11740087000300, 0x11780088600306, 0x11d8008e80030f, 0x11dc008ea0030f,
    0x13040082c00306, 0x13080086c00306, 0x13400082000306, 0x13440086000306, 0x13480082000308, 0x134c0086000308,
    0x13580082a00306, 0x135c0086a00306, 0x1368009b000308, 0x136c009b200308, 0x13700082c00308, 0x13740086c00308,
    0x13780082e00308, 0x137c0086e00308, 0x13880083000304, 0x138c0087000304, 0x13900083000308, 0x13940087000308,
    0x13980083c00308, 0x139c0087c00308, 0x13a8009d000308, 0x13ac009d200308, 0x13b00085a00308, 0x13b40089a00308,
    0x13b80084600304, 0x13bc0088600304, 0x13c00084600308, 0x13c40088600308, 0x13c8008460030b, 0x13cc008860030b,
    0x13d00084e00308, 0x13d40088e00308, 0x13e00085600308, 0x13e40089600308, 0x188800c4e00653, 0x188c00c4e00654,
    0x189000c9000654, 0x189400c4e00655, 0x189800c9400654, 0x1b0000daa00654, 0x1b0800d8200654, 0x1b4c00da400654,
    0x24a4012500093c, 0x24c4012600093c, 0x24d0012660093c, 0x25600122a0093c, 0x25640122c0093c, 0x25680122e0093c,
    0x256c012380093c, 0x2570012420093c, 0x2574012440093c, 0x2578012560093c, 0x257c0125e0093c, 0x272c0138e009be,
    0x27300138e009d7, 0x277001342009bc, 0x277401344009bc, 0x277c0135e009bc, 0x28cc0146400a3c, 0x28d80147000a3c,
    0x29640142c00a3c, 0x29680142e00a3c, 0x296c0143800a3c, 0x29780145600a3c, 0x2d200168e00b56, 0x2d2c0168e00b3e,
    0x2d300168e00b57, 0x2d700164200b3c, 0x2d740164400b3c, 0x2e500172400bd7, 0x2f280178c00bbe, 0x2f2c0178e00bbe,
    0x2f300178c00bd7, 0x31200188c00c56, 0x33000197e00cd5, 0x331c0198c00cd5, 0x33200198c00cd6, 0x33280198c00cc2,
    0x332c0199400cd5, 0x352801a8c00d3e, 0x352c01a8e00d3e, 0x353001a8c00d57, 0x376801bb200dca, 0x377001bb200dcf,
    0x377401bb800dca, 0x377801bb200ddf, 0x3d0c01e8400fb7, 0x3d3401e9800fb7, 0x3d4801ea200fb7, 0x3d5c01eac00fb7,
    0x3d7001eb600fb7, 0x3da401e8000fb5, 0x3dcc01ee200f72, 0x3dd401ee200f74, 0x3dd801f6400f80, 0x3de001f6600f80,
    0x3e0401ee200f80, 0x3e4c01f2400fb7, 0x3e7401f3800fb7, 0x3e8801f4200fb7, 0x3e9c01f4c00fb7, 0x3eb001f5600fb7,
    0x3ee401f2000fb5, 0x40980204a0102e, 0x6c180360a01b35, 0x6c200360e01b35, 0x6c280361201b35, 0x6c300361601b35,
    0x6c380361a01b35, 0x6c480362201b35, 0x6cec0367401b35, 0x6cf40367801b35, 0x6d000367c01b35, 0x6d040367e01b35,
    0x6d0c0368401b35, 0x78000008200325, 0x7804000c200325, 0x78080008400307, 0x780c000c400307, 0x78100008400323,
    0x7814000c400323, 0x78180008400331, 0x781c000c400331, 0x78200018e00301, 0x7824001ce00301, 0x78280008800307,
    0x782c000c800307, 0x78300008800323, 0x7834000c800323, 0x78380008800331, 0x783c000c800331, 0x78400008800327,
    0x7844000c800327, 0x7848000880032d, 0x784c000c80032d, 0x78500022400300, 0x78540022600300, 0x78580022400301,
    0x785c0022600301, 0x78600008a0032d, 0x7864000ca0032d, 0x78680008a00330, 0x786c000ca00330, 0x78700045000306,
    0x78740045200306, 0x78780008c00307, 0x787c000cc00307, 0x78800008e00304, 0x7884000ce00304, 0x78880009000307,
    0x788c000d000307, 0x78900009000323, 0x7894000d000323, 0x78980009000308, 0x789c000d000308, 0x78a00009000327,
    0x78a4000d000327, 0x78a8000900032e, 0x78ac000d00032e, 0x78b00009200330, 0x78b4000d200330, 0x78b80019e00301,
    0x78bc001de00301, 0x78c00009600301, 0x78c4000d600301, 0x78c80009600323, 0x78cc000d600323, 0x78d00009600331,
    0x78d4000d600331, 0x78d80009800323, 0x78dc000d800323, 0x78e003c6c00304, 0x78e403c6e00304, 0x78e80009800331,
    0x78ec000d800331, 0x78f0000980032d, 0x78f4000d80032d, 0x78f80009a00301, 0x78fc000da00301, 0x79000009a00307,
    0x7904000da00307, 0x79080009a00323, 0x790c000da00323, 0x79100009c00307, 0x7914000dc00307, 0x79180009c00323,
    0x791c000dc00323, 0x79200009c00331, 0x7924000dc00331, 0x79280009c0032d, 0x792c000dc0032d, 0x7930001aa00301,
    0x7934001ea00301, 0x7938001aa00308, 0x793c001ea00308, 0x79400029800300, 0x79440029a00300, 0x79480029800301,
    0x794c0029a00301, 0x7950000a000301, 0x7954000e000301, 0x7958000a000307, 0x795c000e000307, 0x7960000a400307,
    0x7964000e400307, 0x7968000a400323, 0x796c000e400323, 0x797003cb400304, 0x797403cb600304, 0x7978000a400331,
    0x797c000e400331, 0x7980000a600307, 0x7984000e600307, 0x7988000a600323, 0x798c000e600323, 0x7990002b400307,
    0x7994002b600307, 0x7998002c000307, 0x799c002c200307, 0x79a003cc400307, 0x79a403cc600307, 0x79a8000a800307,
    0x79ac000e800307, 0x79b0000a800323, 0x79b4000e800323, 0x79b8000a800331, 0x79bc000e800331, 0x79c0000a80032d,
    0x79c4000e80032d, 0x79c8000aa00324, 0x79cc000ea00324, 0x79d0000aa00330, 0x79d4000ea00330, 0x79d8000aa0032d,
    0x79dc000ea0032d, 0x79e0002d000301, 0x79e4002d200301, 0x79e8002d400308, 0x79ec002d600308, 0x79f0000ac00303,
    0x79f4000ec00303, 0x79f8000ac00323, 0x79fc000ec00323, 0x7a00000ae00300, 0x7a04000ee00300, 0x7a08000ae00301,
    0x7a0c000ee00301, 0x7a10000ae00308, 0x7a14000ee00308, 0x7a18000ae00307, 0x7a1c000ee00307, 0x7a20000ae00323,
    0x7a24000ee00323, 0x7a28000b000307, 0x7a2c000f000307, 0x7a30000b000308, 0x7a34000f000308, 0x7a38000b200307,
    0x7a3c000f200307, 0x7a40000b400302, 0x7a44000f400302, 0x7a48000b400323, 0x7a4c000f400323, 0x7a50000b400331,
    0x7a54000f400331, 0x7a58000d000331, 0x7a5c000e800308, 0x7a60000ee0030a, 0x7a64000f20030a, 0x7a6c002fe00307,
    0x7a800008200323, 0x7a84000c200323, 0x7a880008200309, 0x7a8c000c200309, 0x7a900018400301, 0x7a94001c400301,
    0x7a980018400300, 0x7a9c001c400300, 0x7aa00018400309, 0x7aa4001c400309, 0x7aa80018400303, 0x7aac001c400303,
    0x7ab003d4000302, 0x7ab403d4200302, 0x7ab80020400301, 0x7abc0020600301, 0x7ac00020400300, 0x7ac40020600300,
    0x7ac80020400309, 0x7acc0020600309, 0x7ad00020400303, 0x7ad40020600303, 0x7ad803d4000306, 0x7adc03d4200306,
    0x7ae00008a00323, 0x7ae4000ca00323, 0x7ae80008a00309, 0x7aec000ca00309, 0x7af00008a00303, 0x7af4000ca00303,
    0x7af80019400301, 0x7afc001d400301, 0x7b000019400300, 0x7b04001d400300, 0x7b080019400309, 0x7b0c001d400309,
    0x7b100019400303, 0x7b14001d400303, 0x7b1803d7000302, 0x7b1c03d7200302, 0x7b200009200309, 0x7b24000d200309,
    0x7b280009200323, 0x7b2c000d200323, 0x7b300009e00323, 0x7b34000de00323, 0x7b380009e00309, 0x7b3c000de00309,
    0x7b40001a800301, 0x7b44001e800301, 0x7b48001a800300, 0x7b4c001e800300, 0x7b50001a800309, 0x7b54001e800309,
    0x7b58001a800303, 0x7b5c001e800303, 0x7b6003d9800302, 0x7b6403d9a00302, 0x7b680034000301, 0x7b6c0034200301,
    0x7b700034000300, 0x7b740034200300, 0x7b780034000309, 0x7b7c0034200309, 0x7b800034000303, 0x7b840034200303,
    0x7b880034000323, 0x7b8c0034200323, 0x7b90000aa00323, 0x7b94000ea00323, 0x7b98000aa00309, 0x7b9c000ea00309,
    0x7ba00035e00301, 0x7ba40036000301, 0x7ba80035e00300, 0x7bac0036000300, 0x7bb00035e00309, 0x7bb40036000309,
    0x7bb80035e00303, 0x7bbc0036000303, 0x7bc00035e00323, 0x7bc40036000323, 0x7bc8000b200300, 0x7bcc000f200300,
    0x7bd0000b200323, 0x7bd4000f200323, 0x7bd8000b200309, 0x7bdc000f200309, 0x7be0000b200303, 0x7be4000f200303,
    0x7c000076200313, 0x7c040076200314, 0x7c0803e0000300, 0x7c0c03e0200300, 0x7c1003e0000301, 0x7c1403e0200301,
    0x7c1803e0000342, 0x7c1c03e0200342, 0x7c200072200313, 0x7c240072200314, 0x7c2803e1000300, 0x7c2c03e1200300,
    0x7c3003e1000301, 0x7c3403e1200301, 0x7c3803e1000342, 0x7c3c03e1200342, 0x7c400076a00313, 0x7c440076a00314,
    0x7c4803e2000300, 0x7c4c03e2200300, 0x7c5003e2000301, 0x7c5403e2200301, 0x7c600072a00313, 0x7c640072a00314,
    0x7c6803e3000300, 0x7c6c03e3200300, 0x7c7003e3000301, 0x7c7403e3200301, 0x7c800076e00313, 0x7c840076e00314,
    0x7c8803e4000300, 0x7c8c03e4200300, 0x7c9003e4000301, 0x7c9403e4200301, 0x7c9803e4000342, 0x7c9c03e4200342,
    0x7ca00072e00313, 0x7ca40072e00314, 0x7ca803e5000300, 0x7cac03e5200300, 0x7cb003e5000301, 0x7cb403e5200301,
    0x7cb803e5000342, 0x7cbc03e5200342, 0x7cc00077200313, 0x7cc40077200314, 0x7cc803e6000300, 0x7ccc03e6200300,
    0x7cd003e6000301, 0x7cd403e6200301, 0x7cd803e6000342, 0x7cdc03e6200342, 0x7ce00073200313, 0x7ce40073200314,
    0x7ce803e7000300, 0x7cec03e7200300, 0x7cf003e7000301, 0x7cf403e7200301, 0x7cf803e7000342, 0x7cfc03e7200342,
    0x7d000077e00313, 0x7d040077e00314, 0x7d0803e8000300, 0x7d0c03e8200300, 0x7d1003e8000301, 0x7d1403e8200301,
    0x7d200073e00313, 0x7d240073e00314, 0x7d2803e9000300, 0x7d2c03e9200300, 0x7d3003e9000301, 0x7d3403e9200301,
    0x7d400078a00313, 0x7d440078a00314, 0x7d4803ea000300, 0x7d4c03ea200300, 0x7d5003ea000301, 0x7d5403ea200301,
    0x7d5803ea000342, 0x7d5c03ea200342, 0x7d640074a00314, 0x7d6c03eb200300, 0x7d7403eb200301, 0x7d7c03eb200342,
    0x7d800079200313, 0x7d840079200314, 0x7d8803ec000300, 0x7d8c03ec200300, 0x7d9003ec000301, 0x7d9403ec200301,
    0x7d9803ec000342, 0x7d9c03ec200342, 0x7da00075200313, 0x7da40075200314, 0x7da803ed000300, 0x7dac03ed200300,
    0x7db003ed000301, 0x7db403ed200301, 0x7db803ed000342, 0x7dbc03ed200342, 0x7dc00076200300, 0x7dc40075800000,
    0x7dc80076a00300, 0x7dcc0075a00000, 0x7dd00076e00300, 0x7dd40075c00000, 0x7dd80077200300, 0x7ddc0075e00000,
    0x7de00077e00300, 0x7de40079800000, 0x7de80078a00300, 0x7dec0079a00000, 0x7df00079200300, 0x7df40079c00000,
    0x7e0003e0000345, 0x7e0403e0200345, 0x7e0803e0400345, 0x7e0c03e0600345, 0x7e1003e0800345, 0x7e1403e0a00345,
    0x7e1803e0c00345, 0x7e1c03e0e00345, 0x7e2003e1000345, 0x7e2403e1200345, 0x7e2803e1400345, 0x7e2c03e1600345,
    0x7e3003e1800345, 0x7e3403e1a00345, 0x7e3803e1c00345, 0x7e3c03e1e00345, 0x7e4003e4000345, 0x7e4403e4200345,
    0x7e4803e4400345, 0x7e4c03e4600345, 0x7e5003e4800345, 0x7e5403e4a00345, 0x7e5803e4c00345, 0x7e5c03e4e00345,
    0x7e6003e5000345, 0x7e6403e5200345, 0x7e6803e5400345, 0x7e6c03e5600345, 0x7e7003e5800345, 0x7e7403e5a00345,
    0x7e7803e5c00345, 0x7e7c03e5e00345, 0x7e8003ec000345, 0x7e8403ec200345, 0x7e8803ec400345, 0x7e8c03ec600345,
    0x7e9003ec800345, 0x7e9403eca00345, 0x7e9803ecc00345, 0x7e9c03ece00345, 0x7ea003ed000345, 0x7ea403ed200345,
    0x7ea803ed400345, 0x7eac03ed600345, 0x7eb003ed800345, 0x7eb403eda00345, 0x7eb803edc00345, 0x7ebc03ede00345,
    0x7ec00076200306, 0x7ec40076200304, 0x7ec803ee000345, 0x7ecc0076200345, 0x7ed00075800345, 0x7ed80076200342,
    0x7edc03f6c00345, 0x7ee00072200306, 0x7ee40072200304, 0x7ee80072200300, 0x7eec0070c00000, 0x7ef00072200345,
    0x7ef80077200000, 0x7f040015000342, 0x7f0803ee800345, 0x7f0c0076e00345, 0x7f100075c00345, 0x7f180076e00342,
    0x7f1c03f8c00345, 0x7f200072a00300, 0x7f240071000000, 0x7f280072e00300, 0x7f2c0071200000, 0x7f300072e00345,
    0x7f3403f7e00300, 0x7f3803f7e00301, 0x7f3c03f7e00342, 0x7f400077200306, 0x7f440077200304, 0x7f480079400300,
    0x7f4c0072000000, 0x7f580077200342, 0x7f5c0079400342, 0x7f600073200306, 0x7f640073200304, 0x7f680073200300,
    0x7f6c0071400000, 0x7f7403ffc00300, 0x7f7803ffc00301, 0x7f7c03ffc00342, 0x7f800078a00306, 0x7f840078a00304,
    0x7f880079600300, 0x7f8c0076000000, 0x7f900078200313, 0x7f940078200314, 0x7f980078a00342, 0x7f9c0079600342,
    0x7fa00074a00306, 0x7fa40074a00304, 0x7fa80074a00300, 0x7fac0071c00000, 0x7fb00074200314, 0x7fb40015000300,
    0x7fb80070a00000, 0x7fbc000c000000, 0x7fc803ef800345, 0x7fcc0079200345, 0x7fd00079c00345, 0x7fd80079200342,
    0x7fdc03fec00345, 0x7fe00073e00300, 0x7fe40071800000, 0x7fe80075200300, 0x7fec0071e00000, 0x7ff00075200345,
    0x7ff40016800000, 0x80000400400000, 0x80040400600000, 0x84980075200000, 0x84a80009600000, 0x84ac0018a00000,
    0x86680432000338, 0x866c0432400338, 0x86b80432800338, 0x8734043a000338, 0x8738043a800338, 0x873c043a400338,
    0x88100440600338, 0x88240441000338, 0x88300441600338, 0x88900444600338, 0x88980444a00338, 0x89040447800338,
    0x89100448600338, 0x891c0448a00338, 0x89240449000338, 0x89800007a00338, 0x8988044c200338, 0x89b40449a00338,
    0x89b80007800338, 0x89bc0007c00338, 0x89c0044c800338, 0x89c4044ca00338, 0x89d0044e400338, 0x89d4044e600338,
    0x89e0044ec00338, 0x89e4044ee00338, 0x8a00044f400338, 0x8a04044f600338, 0x8a100450400338, 0x8a140450600338,
    0x8a200450c00338, 0x8a240450e00338, 0x8ab00454400338, 0x8ab40455000338, 0x8ab80455200338, 0x8abc0455600338,
    0x8b80044f800338, 0x8b84044fa00338, 0x8b880452200338, 0x8b8c0452400338, 0x8ba80456400338, 0x8bac0456600338,
    0x8bb00456800338, 0x8bb40456a00338, 0x8ca40601000000, 0x8ca80601200000, 0xab70055ba00338, 0xc1300609603099,
    0xc1380609a03099, 0xc1400609e03099, 0xc148060a203099, 0xc150060a603099, 0xc158060aa03099, 0xc160060ae03099,
    0xc168060b203099, 0xc170060b603099, 0xc178060ba03099, 0xc180060be03099, 0xc188060c203099, 0xc194060c803099,
    0xc19c060cc03099, 0xc1a4060d003099, 0xc1c0060de03099, 0xc1c4060de0309a, 0xc1cc060e403099, 0xc1d0060e40309a,
    0xc1d8060ea03099, 0xc1dc060ea0309a, 0xc1e4060f003099, 0xc1e8060f00309a, 0xc1f0060f603099, 0xc1f4060f60309a,
    0xc2500608c03099, 0xc2780613a03099, 0xc2b00615603099, 0xc2b80615a03099, 0xc2c00615e03099, 0xc2c80616203099,
    0xc2d00616603099, 0xc2d80616a03099, 0xc2e00616e03099, 0xc2e80617203099, 0xc2f00617603099, 0xc2f80617a03099,
    0xc3000617e03099, 0xc3080618203099, 0xc3140618803099, 0xc31c0618c03099, 0xc3240619003099, 0xc3400619e03099,
    0xc3440619e0309a, 0xc34c061a403099, 0xc350061a40309a, 0xc358061aa03099, 0xc35c061aa0309a, 0xc364061b003099,
    0xc368061b00309a, 0xc370061b603099, 0xc374061b60309a, 0xc3d00614c03099, 0xc3dc061de03099, 0xc3e0061e003099,
    0xc3e4061e203099, 0xc3e8061e403099, 0xc3f8061fa03099, 0x3e4001189000000, 0x3e4040cde800000, 0x3e40811d9400000,
    0x3e40c1199000000, 0x3e4100dda200000, 0x3e41409c6400000, 0x3e4180a7ca00000, 0x3e41c13f3800000, 0x3e42013f3800000,
    0x3e4240b2a200000, 0x3e428123a200000, 0x3e42c0ab0e00000, 0x3e4300b29000000, 0x3e4340c3ec00000, 0x3e4380ecd200000,
    0x3e43c0ff0a00000, 0x3e44010c7e00000, 0x3e44410f7400000, 0x3e448111f000000, 0x3e44c1211e00000, 0x3e4500d40400000,
    0x3e4540da3600000, 0x3e4580e1b200000, 0x3e45c0e7bc00000, 0x3e4601087a00000, 0x3e464122d400000, 0x3e468133e200000,
    0x3e46c09d0400000, 0x3e4700a6ea00000, 0x3e4740d60800000, 0x3e4780e43600000, 0x3e47c10c5a00000, 0x3e48013c3c00000,
    0x3e4840baa000000, 0x3e4880dfd600000, 0x3e48c10b9a00000, 0x3e490112c800000, 0x3e4940c59200000, 0x3e498103b000000,
    0x3e49c1103e00000, 0x3e4a00bd9400000, 0x3e4a40ce2e00000, 0x3e4a80dad400000, 0x3e4ac0e5f800000, 0x3e4b01219c00000,
    0x3e4b409f0c00000, 0x3e4b80a36e00000, 0x3e4bc0a5bc00000, 0x3e4c00c98800000, 0x3e4c40d5a600000, 0x3e4c80e42000000,
    0x3e4cc0edce00000, 0x3e4d01000200000, 0x3e4d410c0c00000, 0x3e4d810cb800000, 0x3e4dc11bde00000, 0x3e4e012e6400000,
    0x3e4e4136de00000, 0x3e4e813bf400000, 0x3e4ec0f11800000, 0x3e4f00f2fe00000, 0x3e4f40fb4000000, 0x3e4f81079200000,
    0x3e4fc1260800000, 0x3e50013cfe00000, 0x3e504115ac00000, 0x3e5080b1be00000, 0x3e50c0be0800000, 0x3e5100f8c000000,
    0x3e514100fc00000, 0x3e5180e4c400000, 0x3e51c0f19400000, 0x3e5201198400000, 0x3e52412dee00000, 0x3e5280b1b000000,
    0x3e52c0b8c400000, 0x3e5300d42600000, 0x3e5340dbb400000, 0x3e5380de1e00000, 0x3e53c0fa5e00000, 0x3e5400fc6e00000,
    0x3e54412c9600000, 0x3e5480a5a400000, 0x3e54c1011600000, 0x3e5500a3b800000, 0x3e5540a39800000, 0x3e5580f43800000,
    0x3e55c0fb7c00000, 0x3e560107e200000, 0x3e56412cea00000, 0x3e5681170000000, 0x3e56c0c59e00000, 0x3e5700d40400000,
    0x3e574115fc00000, 0x3e57809c7200000, 0x3e57c0b7ce00000, 0x3e5800c02400000, 0x3e5840e70e00000, 0x3e5880eae000000,
    0x3e58c0a62e00000, 0x3e5900f1f600000, 0x3e59409f7e00000, 0x3e5980bf5200000, 0x3e59c09c1a00000, 0x3e5a00d99800000,
    0x3e5a40caf000000, 0x3e5a80fa4400000, 0x3e5ac0a78600000, 0x3e5b00b0bc00000, 0x3e5b40ee0200000, 0x3e5b81089200000,
    0x3e5bc1155400000, 0x3e5c00d77400000, 0x3e5c411f6000000, 0x3e5c80d91000000, 0x3e5cc0c5fc00000, 0x3e5d0105ca00000,
    0x3e5d40c74000000, 0x3e5d80eaca00000, 0x3e5dc09d5c00000, 0x3e5e00a2d200000, 0x3e5e40a39200000, 0x3e5e80d10200000,
    0x3e5ec0f9ce00000, 0x3e5f0104de00000, 0x3e5f4115a400000, 0x3e5f81239e00000, 0x3e5fc0a5ea00000, 0x3e6000a88400000,
    0x3e6040b2e600000, 0x3e6080bdd800000, 0x3e60c0cb8a00000, 0x3e6100dffc00000, 0x3e6140f25400000, 0x3e61812b5a00000,
    0x3e61c134d400000, 0x3e62013d2e00000, 0x3e62413d9c00000, 0x3e6280a53600000, 0x3e62c0cd8c00000, 0x3e6300d6ee00000,
    0x3e63411ec400000, 0x3e6380bce800000, 0x3e63c0c32000000, 0x3e6400c40000000, 0x3e6440c93400000, 0x3e6480de4600000,
    0x3e64c0e29200000, 0x3e6500e91200000, 0x3e6540f39400000, 0x3e6580fbe800000, 0x3e65c100de00000, 0x3e66011e4c00000,
    0x3e664109dc00000, 0x3e6681204600000, 0x3e66c1269400000, 0x3e6700a42e00000, 0x3e6740a54600000, 0x3e6780a97a00000,
    0x3e67c0e19000000, 0x3e6801118400000, 0x3e6841155400000, 0x3e6880bd9200000, 0x3e68c0bfea00000, 0x3e6900c6f600000,
    0x3e6940d75c00000, 0x3e6980f87c00000, 0x3e69c0e6ea00000, 0x3e6a009dc800000, 0x3e6a40adf200000, 0x3e6a80b7ce00000,
    0x3e6ac0bb7400000, 0x3e6b00c03800000, 0x3e6b40e76400000, 0x3e6b80e8d200000, 0x3e6bc0ff3400000, 0x3e6c01008c00000,
    0x3e6c41246800000, 0x3e6c812dec00000, 0x3e6cc12e9000000, 0x3e6d01303000000, 0x3e6d409f1600000, 0x3e6d80f35c00000,
    0x3e6dc1236800000, 0x3e6e012d7000000, 0x3e6e40c1c200000, 0x3e6e809d0c00000, 0x3e6ec0a1b400000, 0x3e6f00b7dc00000,
    0x3e6f40b87e00000, 0x3e6f80cb3200000, 0x3e6fc0d40400000, 0x3e7000e39c00000, 0x3e7040ec8400000, 0x3e708109f800000,
    0x3e70c120f800000, 0x3e71013f1a00000, 0x3e7140cd1000000, 0x3e71812c5c00000, 0x3e71c0a51200000, 0x3e7200cef600000,
    0x3e7240cfe600000, 0x3e7280da8200000, 0x3e72c0dd3800000, 0x3e7300e81200000, 0x3e7340eab200000, 0x3e7380f0d600000,
    0x3e73c0fa2000000, 0x3e740130bc00000, 0x3e7440a2da00000, 0x3e7480c45c00000, 0x3e74c12cf000000, 0x3e7500a05600000,
    0x3e7540ba3200000, 0x3e7580dbd400000, 0x3e75c11e5400000, 0x3e7600bf1600000, 0x3e7640c28800000, 0x3e7680d02e00000,
    0x3e76c0e70e00000, 0x3e77012d0c00000, 0x3e7740a45200000, 0x3e7780a81e00000, 0x3e77c0b8ca00000, 0x3e7800cc2600000,
    0x3e7840ce9c00000, 0x3e7880d15000000, 0x3e78c0d9ca00000, 0x3e7900e80c00000, 0x3e7940ebc400000, 0x3e7980fef200000,
    0x3e79c1119e00000, 0x3e7a0111c200000, 0x3e7a41239800000, 0x3e7a812dc400000, 0x3e7ac0a67e00000, 0x3e7b00dd7400000,
    0x3e7b40a83a00000, 0x3e7b80e3a000000, 0x3e7bc0e93000000, 0x3e7c010bf400000, 0x3e7c412d4600000, 0x3e7c8138ae00000,
    0x3e7cc13d3e00000, 0x3e7d00cf2e00000, 0x3e7d40db9600000, 0x3e7d8103d000000, 0x3e7dc0f59600000, 0x3e7e00f64000000,
    0x3e7e40f92400000, 0x3e7e80e58000000, 0x3e7ec0e13200000, 0x3e7f0116b000000, 0x3e7f409d8000000, 0x3e7f81066c00000,
    0x3e7fc0a47400000, 0x3e8000a40e00000, 0x3e8040bd4c00000, 0x3e8080c5a600000, 0x3e80c0f9ac00000, 0x3e8100b70a00000,
    0x3e8140da3c00000, 0x3e8180cd6800000, 0x3e81c11e7600000, 0x3e8201109800000, 0x3e82412c9a00000, 0x3e8281131600000,
    0x3e82c0bda600000, 0x3e8300a28000000, 0x3e8340ab8000000, 0x3e8400b0b400000, 0x3e8480cce800000, 0x3e8540a3bc00000,
    0x3e8580e65400000, 0x3e85c0ed9400000, 0x3e8600f27800000, 0x3e8640f2bc00000, 0x3e8680f2ca00000, 0x3e86c0f31e00000,
    0x3e87012eac00000, 0x3e8740f97c00000, 0x3e8780ff7a00000, 0x3e88010c2400000, 0x3e888115f000000, 0x3e8941207000000,
    0x3e898121fa00000, 0x3e8a8131de00000, 0x3e8ac131f800000, 0x3e8b01325000000, 0x3e8b413b6800000, 0x3e8b8121bc00000,
    0x3e8bc12d6e00000, 0x3e8c009f5c00000, 0x3e8c40a1ce00000, 0x3e8c80a29a00000, 0x3e8cc0a59200000, 0x3e8d00a5c800000,
    0x3e8d40a6a200000, 0x3e8d80ab3a00000, 0x3e8dc0ac0c00000, 0x3e8e00acd000000, 0x3e8e40b08000000, 0x3e8e80b15000000,
    0x3e8ec0b8c800000, 0x3e8f00b8dc00000, 0x3e8f40c12800000, 0x3e8f80c2d000000, 0x3e8fc0c31c00000, 0x3e9000c3e400000,
    0x3e9040ca9e00000, 0x3e9080cbc400000, 0x3e90c0cd2200000, 0x3e9100d10a00000, 0x3e9140daee00000, 0x3e9180dc3400000,
    0x3e91c0de4400000, 0x3e9200e2dc00000, 0x3e9240e45600000, 0x3e9280e84400000, 0x3e92c0f12200000, 0x3e9300f27c00000,
    0x3e9340f29200000, 0x3e9380f29000000, 0x3e93c0f2a000000, 0x3e9400f2ac00000, 0x3e9440f2ba00000, 0x3e9480f31a00000,
    0x3e94c0f31c00000, 0x3e9500f48000000, 0x3e9540f50200000, 0x3e9580f78000000, 0x3e95c0fbe800000, 0x3e9600fc1200000,
    0x3e9640fc8200000, 0x3e9680fee400000, 0x3e96c1000a00000, 0x3e970103da00000, 0x3e974104f200000, 0x3e978104f200000,
    0x3e97c108ae00000, 0x3e9801122000000, 0x3e9841132c00000, 0x3e9881160200000, 0x3e98c1167200000, 0x3e990119a600000,
    0x3e99411a1000000, 0x3e99811f6c00000, 0x3e99c1207000000, 0x3e9a012dc600000, 0x3e9a412ffe00000, 0x3e9a81307600000,
    0x3e9ac0c0ea00000, 0x3e9b0485dc00000, 0x3e9b41043000000, 0x3e9c009c4c00000, 0x3e9c40a36a00000, 0x3e9c80a2d000000,
    0x3e9cc09f0000000, 0x3e9d00a28a00000, 0x3e9d40a30000000, 0x3e9d80a58e00000, 0x3e9dc0a5f400000, 0x3e9e00ab3a00000,
    0x3e9e40aaaa00000, 0x3e9e80ab3200000, 0x3e9ec0abc400000, 0x3e9f00b0b400000, 0x3e9f40b16600000, 0x3e9f80b28800000,
    0x3e9fc0b2a800000, 0x3ea000b4c400000, 0x3ea040b65000000, 0x3ea080bda400000, 0x3ea0c0bdb200000, 0x3ea100bed200000,
    0x3ea140bf5a00000, 0x3ea180c1b000000, 0x3ea1c0c29c00000, 0x3ea200c21000000, 0x3ea240c31c00000, 0x3ea280c2c000000,
    0x3ea2c0c3e400000, 0x3ea300c46800000, 0x3ea340c78800000, 0x3ea380c83800000, 0x3ea3c0c8a400000, 0x3ea400caac00000,
    0x3ea440cce800000, 0x3ea480ce2e00000, 0x3ea4c0ce3600000, 0x3ea500ceac00000, 0x3ea540d6f200000, 0x3ea580d77400000,
    0x3ea5c0da8200000, 0x3ea600ddb600000, 0x3ea640dd9600000, 0x3ea680de4400000, 0x3ea6c0e03c00000, 0x3ea700e2dc00000,
    0x3ea740ef4e00000, 0x3ea780e46a00000, 0x3ea7c0e55e00000, 0x3ea800e65400000, 0x3ea840e8e200000, 0x3ea880ea0c00000,
    0x3ea8c0ea7600000, 0x3ea900ec3a00000, 0x3ea940ec3e00000, 0x3ea980ed9400000, 0x3ea9c0edb600000, 0x3eaa00ede800000,
    0x3eaa40ee9400000, 0x3eaa80ee8000000, 0x3eaac0f19800000, 0x3eab00f56200000, 0x3eab40f78000000, 0x3eab80f8f600000,
    0x3eabc0fab600000, 0x3eac00fbe800000, 0x3eac40fe7c00000, 0x3eac81000a00000, 0x3eacc106a400000, 0x3ead0107de00000,
    0x3ead410ef200000, 0x3ead81128200000, 0x3eadc1130c00000, 0x3eae01132c00000, 0x3eae41157e00000, 0x3eae8115f000000,
    0x3eaec1159600000, 0x3eaf01160200000, 0x3eaf4115fc00000, 0x3eaf8115da00000, 0x3eafc1167200000, 0x3eb001171400000,
    0x3eb0411a1000000, 0x3eb0811e7000000, 0x3eb0c120e400000, 0x3eb101233200000, 0x3eb14124ec00000, 0x3eb1812cf800000,
    0x3eb1c12dc600000, 0x3eb2012eac00000, 0x3eb2412fb600000, 0x3eb2812ffe00000, 0x3eb2c1301600000, 0x3eb301307600000,
    0x3eb341362400000, 0x3eb3813f3800000, 0x3eb3c4509400000, 0x3eb404508800000, 0x3eb44467aa00000, 0x3eb480773a00000,
    0x3eb4c0803000000, 0x3eb500807200000, 0x3eb544a49200000, 0x3eb584b9a000000, 0x3eb5c4fda600000, 0x3eb6013e8600000,
    0x3eb6413f1c00000, 0x3ec7400bb2005b4, 0x3ec7c00be4005b7, 0x3eca800bd2005c1, 0x3ecac00bd2005c2, 0x3ecb01f692005c1,
    0x3ecb41f692005c2, 0x3ecb800ba0005b7, 0x3ecbc00ba0005b8, 0x3ecc000ba0005bc, 0x3ecc400ba2005bc, 0x3ecc800ba4005bc,
    0x3eccc00ba6005bc, 0x3ecd000ba8005bc, 0x3ecd400baa005bc, 0x3ecd800bac005bc, 0x3ece000bb0005bc, 0x3ece400bb2005bc,
    0x3ece800bb4005bc, 0x3ecec00bb6005bc, 0x3ecf000bb8005bc, 0x3ecf800bbc005bc, 0x3ed0000bc0005bc, 0x3ed0400bc2005bc,
    0x3ed0c00bc6005bc, 0x3ed1000bc8005bc, 0x3ed1800bcc005bc, 0x3ed1c00bce005bc, 0x3ed2000bd0005bc, 0x3ed2400bd2005bc,
    0x3ed2800bd4005bc, 0x3ed2c00baa005b9, 0x3ed3000ba2005bf, 0x3ed3400bb6005bf, 0x3ed3800bc8005bf, 0x4426822132110ba,
    0x4427022136110ba, 0x442ac2214a110ba, 0x444b82226211127, 0x444bc2226411127, 0x44d2c2268e1133e, 0x44d302268e11357,
    0x452ec22972114ba, 0x452f022972114b0, 0x452f822972114bd, 0x456e822b70115af, 0x456ec22b72115af, 0x464e02326a11930,
    0x745783a2ae1d165, 0x7457c3a2b01d165, 0x745803a2be1d16e, 0x745843a2be1d16f, 0x745883a2be1d170, 0x7458c3a2be1d171,
    0x745903a2be1d172, 0x746ec3a3721d165, 0x746f03a3741d165, 0x746f43a3761d16e, 0x746f83a3781d16e, 0x746fc3a3761d16f,
    0x747003a3781d16f, 0xbe00009c7a00000, 0xbe00409c7000000, 0xbe00809c8200000, 0xbe00c4024400000, 0xbe01009ec000000,
    0xbe01409f5c00000, 0xbe01809f7600000, 0xbe01c0a00400000, 0xbe0200a0f400000, 0xbe0240a13200000, 0xbe0280a1ce00000,
    0xbe02c0a19e00000, 0xbe0300693c00000, 0xbe03440c7400000, 0xbe0380a29a00000, 0xbe03c0a2a800000, 0xbe0400a2c800000,
    0xbe0440a2ee00000, 0xbe04840a3800000, 0xbe04c0697200000, 0xbe0500a2ce00000, 0xbe0540a31a00000, 0xbe05840a9600000,
    0xbe05c0a32e00000, 0xbe0600a34800000, 0xbe06409d9800000, 0xbe0680a35800000, 0xbe06c0a36a00000, 0xbe070523be00000,
    0xbe0740a3ea00000, 0xbe0780a40600000, 0xbe07c069be00000, 0xbe0800a47600000, 0xbe0840a48c00000, 0xbe0880a4e400000,
    0xbe08c0a4ee00000, 0xbe09006a2a00000, 0xbe0940a58e00000, 0xbe0980a59200000, 0xbe09c0a5c800000, 0xbe0a00a5f400000,
    0xbe0a40a60a00000, 0xbe0a80a60c00000, 0xbe0ac0a62e00000, 0xbe0b00a69200000, 0xbe0b40a6a200000, 0xbe0b80a6b400000,
    0xbe0bc0a6e600000, 0xbe0c00a6fa00000, 0xbe0c40a6fe00000, 0xbe0c80a6fe00000, 0xbe0cc0a6fe00000, 0xbe0d04145800000,
    0xbe0d40e0e000000, 0xbe0d80a79400000, 0xbe0dc0a7be00000, 0xbe0e0416c600000, 0xbe0e40a7d600000, 0xbe0e80a7e200000,
    0xbe0ec0a80c00000, 0xbe0f00a93c00000, 0xbe0f40a87000000, 0xbe0f80a89000000, 0xbe0fc0a8d000000, 0xbe1000a94400000,
    0xbe1040a9ec00000, 0xbe1080aa2000000, 0xbe10c0aaa600000, 0xbe1100aac600000, 0xbe1140ab0800000, 0xbe1180ab0800000,
    0xbe11c0ab3200000, 0xbe1200ab5600000, 0xbe1240ab6600000, 0xbe1280ab8400000, 0xbe12c0ae2c00000, 0xbe1300ac0c00000,
    0xbe1340ae2e00000, 0xbe1380aca200000, 0xbe13c0ace800000, 0xbe1400a40e00000, 0xbe1440b1dc00000, 0xbe1480af9c00000,
    0xbe14c0afe800000, 0xbe1500b01a00000, 0xbe1540af1600000, 0xbe1580b06400000, 0xbe15c0b06200000, 0xbe1600b15800000,
    0xbe164429c800000, 0xbe1680b1e400000, 0xbe16c0b1ee00000, 0xbe1700b20c00000, 0xbe1740b23400000, 0xbe1780b24400000,
    0xbe17c0b2c400000, 0xbe18042d5000000, 0xbe18442dd400000, 0xbe1880b3d800000, 0xbe18c0b43600000, 0xbe1900b44e00000,
    0xbe1940b3b000000, 0xbe1980b4cc00000, 0xbe19c06ddc00000, 0xbe1a006df800000, 0xbe1a40b61000000, 0xbe1a80b67c00000,
    0xbe1ac0b67c00000, 0xbe1b04339000000, 0xbe1b40b78600000, 0xbe1b80b7b000000, 0xbe1bc0b7ce00000, 0xbe1c00b7e600000,
    0xbe1c44363000000, 0xbe1c80b7fe00000, 0xbe1cc0b80c00000, 0xbe1d00bea600000, 0xbe1d40b84400000, 0xbe1d806f0200000,
    0xbe1dc0b8c000000, 0xbe1e00b8dc00000, 0xbe1e40b98000000, 0xbe1e80b91a00000, 0xbe1ec43bc800000, 0xbe1f00ba8600000,
    0xbe1f443bcc00000, 0xbe1f80badc00000, 0xbe1fc0bad600000, 0xbe2000baf800000, 0xbe2040bbc200000, 0xbe2080bbc400000,
    0xbe20c0705e00000, 0xbe2100bbfa00000, 0xbe2140bc5000000, 0xbe2180bc7a00000, 0xbe21c0bcd200000, 0xbe220070c400000,
    0xbe2244430600000, 0xbe228070f800000, 0xbe22c0bd6000000, 0xbe2300bd6600000, 0xbe2340bd6c00000, 0xbe2380bd9400000,
    0xbe23c5472400000, 0xbe2400bdfc00000, 0xbe2444466200000, 0xbe2484466200000, 0xbe24c1040200000, 0xbe2500be4400000,
    0xbe2540be4400000, 0xbe2580718e00000, 0xbe25c4657000000, 0xbe2604c3b400000, 0xbe2640bec400000, 0xbe2680bed600000,
    0xbe26c071c600000, 0xbe2700bf3400000, 0xbe2740bf9a00000, 0xbe2780bfae00000, 0xbe27c0bff200000, 0xbe2800c10200000,
    0xbe2840727400000, 0xbe2880723800000, 0xbe28c0c12800000, 0xbe29044da800000, 0xbe2940c18e00000, 0xbe2980c29000000,
    0xbe29c0c29800000, 0xbe2a00c29c00000, 0xbe2a40c29800000, 0xbe2a80c2f400000, 0xbe2ac0c31c00000, 0xbe2b00c36400000,
    0xbe2b40c34800000, 0xbe2b80c35e00000, 0xbe2bc0c3bc00000, 0xbe2c00c3e400000, 0xbe2c40c3ec00000, 0xbe2c80c42000000,
    0xbe2cc0c43600000, 0xbe2d00c4ba00000, 0xbe2d40c56200000, 0xbe2d80c5a800000, 0xbe2dc0c6a000000, 0xbe2e04561800000,
    0xbe2e40c67a00000, 0xbe2e80c5f800000, 0xbe2ec0c6d000000, 0xbe2f00c70600000, 0xbe2f40c7c800000, 0xbe2f8457e200000,
    0xbe2fc0c84400000, 0xbe3000c78a00000, 0xbe3040c75200000, 0xbe3080745c00000, 0xbe30c0c8d200000, 0xbe3100c8fc00000,
    0xbe3140c93a00000, 0xbe3180c8ee00000, 0xbe31c074d800000, 0xbe3200ca9e00000, 0xbe3240cad800000, 0xbe3284601400000,
    0xbe32c0cbc600000, 0xbe3300cdf000000, 0xbe3340cc9200000, 0xbe3380763200000, 0xbe33c0cd2200000, 0xbe3400761000000,
    0xbe344075c800000, 0xbe3480a32400000, 0xbe34c0a32a00000, 0xbe3500ce0000000, 0xbe3540cd3800000, 0xbe3581015a00000,
    0xbe35c087b200000, 0xbe3600ce2e00000, 0xbe3640ce3600000, 0xbe3680ce4200000, 0xbe36c0cebc00000, 0xbe3700cea600000,
    0xbe3744678600000, 0xbe3780769200000, 0xbe37c0cff400000, 0xbe3800cf0a00000, 0xbe3840d0a400000, 0xbe3880d10a00000,
    0xbe38c468da00000, 0xbe3900d11c00000, 0xbe3940d03e00000, 0xbe3980d22800000, 0xbe39c0773a00000, 0xbe3a00d28400000,
    0xbe3a40d34600000, 0xbe3a80d3d400000, 0xbe3ac0d55000000, 0xbe3b046d4600000, 0xbe3b40d5b600000, 0xbe3b80783000000,
    0xbe3bc0d64200000, 0xbe3c04714e00000, 0xbe3c40d6a800000, 0xbe3c80789c00000, 0xbe3cc0d6e400000, 0xbe3d00d73e00000,
    0xbe3d40d77400000, 0xbe3d80d77600000, 0xbe3dc4751a00000, 0xbe3e043a1600000, 0xbe3e4475f400000, 0xbe3e80d89c00000,
    0xbe3ec4797800000, 0xbe3f00d97e00000, 0xbe3f40d99a00000, 0xbe3f80d8ce00000, 0xbe3fc0da2c00000, 0xbe4000da7c00000,
    0xbe4040daee00000, 0xbe4080da8200000, 0xbe40c0dad200000, 0xbe4100daf000000, 0xbe4140db0a00000, 0xbe41847a3c00000,
    0xbe41c0da6800000, 0xbe4200dc5e00000, 0xbe4240dcdc00000, 0xbe42807a6600000, 0xbe42c0dd9600000, 0xbe4300dd8e00000,
    0xbe43447da200000, 0xbe4380dbf200000, 0xbe43c0dedc00000, 0xbe44047ebc00000, 0xbe44447f1c00000, 0xbe4480df8c00000,
    0xbe44c0e07200000, 0xbe4500e03c00000, 0xbe4540e03600000, 0xbe45807b2c00000, 0xbe45c0e09400000, 0xbe4600e0fa00000,
    0xbe4640e0ee00000, 0xbe4680e15a00000, 0xbe46c40a4a00000, 0xbe4700e28a00000, 0xbe474484c600000, 0xbe4780e33800000,
    0xbe47c4875600000, 0xbe4800e45000000, 0xbe4840e46a00000, 0xbe4880e4a000000, 0xbe48c48c1000000, 0xbe4900e50000000,
    0xbe4940e52a00000, 0xbe49848e6a00000, 0xbe49c4902800000, 0xbe4a00e6f400000, 0xbe4a40e71600000, 0xbe4a807d5800000,
    0xbe4ac0e74a00000, 0xbe4b007d7000000, 0xbe4b407d7000000, 0xbe4b80e88e00000, 0xbe4bc0e8b800000, 0xbe4c00e8e200000,
    0xbe4c40e90a00000, 0xbe4c80e99400000, 0xbe4cc07e3600000, 0xbe4d00ea4800000, 0xbe4d44986c00000, 0xbe4d80ea7c00000,
    0xbe4dc4992400000, 0xbe4e00eae000000, 0xbe4e44433e00000, 0xbe4e80ec2000000, 0xbe4ec49f4200000, 0xbe4f049f7000000,
    0xbe4f44a08800000, 0xbe4f807ff800000, 0xbe4fc0801000000, 0xbe5000ede800000, 0xbe5044a1e600000, 0xbe5084a1e400000,
    0xbe50c4a23200000, 0xbe5104a26600000, 0xbe5140ee3c00000, 0xbe5180ee3e00000, 0xbe51c0ee3e00000, 0xbe5200ee9400000,
    0xbe5240807200000, 0xbe5280ef1600000, 0xbe52c0808c00000, 0xbe5300812c00000, 0xbe5344a83a00000, 0xbe5380f09c00000,
    0xbe53c0f11800000, 0xbe5400f19800000, 0xbe544081c600000, 0xbe5484ac4c00000, 0xbe54c0f2ac00000, 0xbe5504ad3400000,
    0xbe5544ad8a00000, 0xbe5580f31e00000, 0xbe55c0f3d600000, 0xbe5600825e00000, 0xbe5640f48000000, 0xbe5680f49400000,
    0xbe56c0f49e00000, 0xbe5704b2f800000, 0xbe5744b54e00000, 0xbe5784b54e00000, 0xbe57c0f5dc00000, 0xbe5800840400000,
    0xbe5844b75600000, 0xbe5880f78c00000, 0xbe58c0f79200000, 0xbe5900844e00000, 0xbe5944b90000000, 0xbe5980f9a400000,
    0xbe59c0854000000, 0xbe5a00f9d000000, 0xbe5a40f9c600000, 0xbe5a80fa0000000, 0xbe5ac4bf0c00000, 0xbe5b00fac600000,
    0xbe5b40860200000, 0xbe5b80fb8e00000, 0xbe5bc0fc0400000, 0xbe5c00fc8a00000, 0xbe5c40866800000, 0xbe5c84c45000000,
    0xbe5cc4c48e00000, 0xbe5d0086b200000, 0xbe5d44c5b200000, 0xbe5d80fef400000, 0xbe5dc4c67c00000, 0xbe5e00ff2a00000,
    0xbe5e40fff400000, 0xbe5e81000a00000, 0xbe5ec4c9b400000, 0xbe5f04ca4600000, 0xbe5f4100c000000, 0xbe5f84cb5000000,
    0xbe5fc100e000000, 0xbe600466be00000, 0xbe604087aa00000, 0xbe6081016400000, 0xbe60c1020600000, 0xbe6100881600000,
    0xbe6141027c00000, 0xbe6180b56a00000, 0xbe61c4cf4e00000, 0xbe6204cf6a00000, 0xbe6244672600000, 0xbe6284673800000,
    0xbe62c1040200000, 0xbe6301040800000, 0xbe63411f3c00000, 0xbe638088d600000, 0xbe63c1052200000, 0xbe6401051600000,
    0xbe6441053a00000, 0xbe6480a56600000, 0xbe64c1056200000, 0xbe6501056600000, 0xbe6541057a00000, 0xbe658105cc00000,
    0xbe65c4d67800000, 0xbe660105ca00000, 0xbe6641063a00000, 0xbe668106c600000, 0xbe66c1075a00000, 0xbe6701064600000,
    0xbe6741077a00000, 0xbe678107ce00000, 0xbe67c108ae00000, 0xbe680106a600000, 0xbe6841079400000, 0xbe6881079800000,
    0xbe68c107b800000, 0xbe6904d86c00000, 0xbe6944dad600000, 0xbe6984d9aa00000, 0xbe69c08a5600000, 0xbe6a0109e200000,
    0xbe6a4109e600000, 0xbe6a810a2c00000, 0xbe6ac4e79400000, 0xbe6b010ac800000, 0xbe6b44de5800000, 0xbe6b808aba00000,
    0xbe6bc08ac200000, 0xbe6c04df6200000, 0xbe6c44e1a400000, 0xbe6c808ad600000, 0xbe6cc10ca000000, 0xbe6d010cb800000,
    0xbe6d410cce00000, 0xbe6d810cd200000, 0xbe6dc10d5200000, 0xbe6e010d1000000, 0xbe6e410e1c00000, 0xbe6e810dc400000,
    0xbe6ec10ef200000, 0xbe6f010e5000000, 0xbe6f410ed600000, 0xbe6f810f0c00000, 0xbe6fc08bae00000, 0xbe70010fc200000,
    0xbe7041100200000, 0xbe70808bf200000, 0xbe70c110c000000, 0xbe710110c600000, 0xbe7144ecce00000, 0xbe718111ae00000,
    0xbe71c111bc00000, 0xbe72008c6a00000, 0xbe724111f400000, 0xbe7280697600000, 0xbe72c4f15c00000, 0xbe7304f2cc00000,
    0xbe73408d7c00000, 0xbe73808d8e00000, 0xbe73c1154000000, 0xbe740115da00000, 0xbe7441171400000, 0xbe748118aa00000,
    0xbe74c4f95000000, 0xbe7501195600000, 0xbe7541198200000, 0xbe75811a3600000, 0xbe75c11aee00000, 0xbe7604fe5e00000,
    0xbe7644100800000, 0xbe76811b9600000, 0xbe76c11b7800000, 0xbe77011be000000, 0xbe774411bc00000, 0xbe77811da800000,
    0xbe77c11e7000000, 0xbe78050ba400000, 0xbe78450bda00000, 0xbe7881212800000, 0xbe78c121e200000, 0xbe7901222200000,
    0xbe79450e5c00000, 0xbe7981223600000, 0xbe79c1247000000, 0xbe7a0125ae00000, 0xbe7a4125b000000, 0xbe7a8124f800000,
    0xbe7ac127f200000, 0xbe7b01282a00000, 0xbe7b4517f400000, 0xbe7b812b1600000, 0xbe7bc0932a00000, 0xbe7c012b6e00000,
    0xbe7c451aee00000, 0xbe7c8093cc00000, 0xbe7cc12d8600000, 0xbe7d00bb6400000, 0xbe7d412e4600000, 0xbe7d85228a00000,
    0xbe7dc5243400000, 0xbe7e0094dc00000, 0xbe7e4094ec00000, 0xbe7e812fc000000, 0xbe7ec5281400000, 0xbe7f00956400000,
    0xbe7f45292c00000, 0xbe7f81301600000, 0xbe7fc1301600000, 0xbe8001305200000, 0xbe80452b6c00000, 0xbe808131c400000,
    0xbe80c0966600000, 0xbe8101325200000, 0xbe8141334e00000, 0xbe8181338400000, 0xbe81c133fc00000, 0xbe8200979c00000,
    0xbe8245366000000, 0xbe8281362400000, 0xbe82c1388000000, 0xbe830139fa00000, 0xbe8340999c00000, 0xbe838099da00000,
    0xbe83c13ace00000, 0xbe8405419c00000, 0xbe844099f000000, 0xbe8485420a00000, 0xbe84c5441c00000, 0xbe8505452200000,
    0xbe85413d7600000, 0xbe85809aac00000, 0xbe85c13df200000, 0xbe86013dfc00000, 0xbe86413e0a00000, 0xbe86813e1e00000,
    0xbe86c13e2c00000, 0xbe87013e7600000, 0xbe87454c0000000,
};
static const uint16_t lf__uc_comp[941] = {
    912, 909, 913, 0, 1, 2, 3, 53, 55, 238, 4, 572, 5, 165, 208, 210,
    570, 415, 57, 417, 419, 421, 59, 61, 63, 65, 6, 425, 67, 427, 431, 433,
    429, 7, 8, 9, 598, 69, 71, 73, 10, 596, 77, 212, 214, 594, 240, 75,
    439, 441, 445, 198, 79, 447, 81, 83, 187, 85, 87, 449, 453, 236, 451, 455,
    457, 11, 12, 13, 89, 91, 93, 97, 14, 610, 167, 216, 218, 612, 95, 459,
    98, 463, 189, 465, 100, 467, 102, 106, 469, 104, 475, 473, 477, 479, 481, 200,
    108, 15, 483, 112, 485, 110, 489, 487, 16, 17, 18, 19, 114, 116, 246, 20,
    616, 118, 169, 220, 222, 161, 614, 191, 499, 501, 120, 503, 124, 224, 226, 505,
    122, 509, 126, 128, 511, 132, 513, 232, 130, 521, 136, 523, 234, 134, 527, 525,
    21, 22, 23, 138, 140, 142, 24, 640, 144, 146, 171, 228, 230, 163, 638, 529,
    148, 533, 531, 539, 541, 543, 545, 150, 549, 547, 551, 553, 555, 652, 25, 152,
    658, 250, 557, 154, 656, 654, 155, 559, 157, 159, 561, 563, 26, 27, 28, 29,
    54, 56, 239, 30, 573, 31, 166, 209, 211, 571, 416, 58, 418, 420, 422, 60,
    62, 64, 66, 32, 426, 68, 428, 432, 434, 430, 33, 34, 35, 599, 70, 72,
    74, 36, 597, 78, 213, 215, 595, 241, 76, 440, 442, 446, 199, 80, 448, 82,
    84, 188, 86, 88, 450, 454, 237, 452, 456, 458, 565, 37, 38, 39, 90, 92,
    94, 40, 611, 168, 217, 219, 613, 96, 460, 99, 197, 464, 190, 466, 101, 468,
    103, 107, 470, 105, 476, 474, 478, 480, 482, 201, 109, 41, 484, 113, 486, 111,
    490, 488, 42, 43, 44, 45, 115, 117, 247, 46, 617, 119, 170, 221, 223, 162,
    615, 192, 500, 502, 121, 504, 125, 225, 227, 506, 123, 510, 127, 129, 512, 133,
    514, 233, 131, 522, 566, 137, 524, 235, 135, 528, 526, 47, 48, 49, 139, 141,
    143, 50, 641, 145, 147, 172, 229, 231, 164, 639, 530, 149, 534, 532, 540, 542,
    544, 546, 151, 550, 548, 567, 552, 554, 556, 653, 51, 153, 659, 251, 558, 52,
    657, 568, 655, 156, 560, 158, 160, 562, 564, 875, 258, 835, 576, 574, 580, 578,
    181, 202, 204, 185, 423, 602, 600, 606, 604, 461, 620, 618, 624, 622, 491, 244,
    493, 242, 206, 179, 175, 173, 177, 577, 575, 581, 579, 182, 203, 205, 186, 424,
    603, 601, 607, 605, 462, 621, 619, 625, 623, 492, 245, 494, 243, 207, 180, 176,
    174, 178, 586, 584, 590, 588, 587, 585, 591, 589, 435, 437, 436, 438, 495, 497,
    496, 498, 515, 516, 517, 518, 535, 536, 537, 538, 569, 630, 628, 634, 632, 636,
    631, 629, 635, 633, 637, 644, 642, 648, 646, 650, 645, 643, 649, 647, 651, 195,
    193, 194, 183, 184, 443, 444, 248, 249, 196, 831, 259, 830, 829, 668, 669, 833,
    841, 261, 682, 683, 843, 262, 696, 697, 845, 857, 263, 856, 855, 268, 712, 713,
    883, 264, 726, 727, 874, 872, 265, 871, 870, 269, 740, 885, 266, 752, 753, 887,
    826, 838, 760, 270, 823, 822, 660, 661, 827, 825, 762, 271, 676, 677, 764, 272,
    688, 689, 839, 837, 766, 273, 850, 849, 275, 704, 705, 853, 768, 277, 720, 721,
    866, 867, 770, 278, 863, 862, 276, 732, 733, 868, 772, 279, 744, 745, 881, 879,
    851, 267, 854, 864, 274, 869, 880, 280, 281, 285, 302, 304, 284, 282, 306, 283,
    300, 310, 312, 287, 314, 289, 316, 286, 318, 324, 288, 326, 328, 330, 332, 322,
    303, 305, 293, 291, 307, 292, 301, 311, 313, 296, 315, 290, 317, 295, 319, 325,
    297, 327, 329, 331, 333, 323, 294, 298, 299, 308, 309, 320, 321, 334, 335, 337,
    336, 338, 340, 341, 339, 342, 343, 344, 353, 354, 365, 364, 366, 369, 370, 372,
    371, 373, 374, 377, 375, 376, 378, 379, 381, 380, 382, 383, 385, 384, 403, 404,
    405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 471, 472, 507, 508, 519, 520,
    582, 592, 583, 593, 608, 609, 626, 627, 662, 664, 666, 774, 663, 665, 667, 775,
    776, 777, 778, 779, 780, 781, 670, 672, 674, 782, 671, 673, 675, 783, 784, 785,
    786, 787, 788, 789, 678, 680, 679, 681, 684, 686, 685, 687, 690, 692, 694, 790,
    691, 693, 695, 791, 792, 793, 794, 795, 796, 797, 698, 700, 702, 798, 699, 701,
    703, 799, 800, 801, 802, 803, 804, 805, 706, 708, 710, 707, 709, 711, 714, 716,
    718, 715, 717, 719, 722, 724, 723, 725, 728, 730, 729, 731, 734, 736, 738, 735,
    737, 739, 741, 742, 743, 746, 748, 750, 806, 747, 749, 751, 807, 808, 809, 810,
    811, 812, 813, 754, 756, 758, 814, 755, 757, 759, 815, 816, 817, 818, 819, 820,
    821, 824, 836, 878, 828, 846, 847, 848, 840, 882, 859, 860, 861, 894, 895, 896,
    897, 899, 898, 900, 901, 902, 903, 904, 905, 906, 907, 908, 911, 910, 914, 915,
    916, 917, 918, 919, 920, 921, 930, 931, 922, 923, 924, 925, 932, 933, 926, 927,
    928, 929, 934, 935, 936, 937, 966, 941, 942, 943, 944, 945, 946, 947, 948, 949,
    950, 951, 952, 953, 954, 955, 956, 957, 958, 959, 960, 961, 962, 963, 964, 965,
    967, 993, 968, 969, 970, 971, 972, 973, 974, 975, 976, 977, 978, 979, 980, 981,
    982, 983, 984, 985, 986, 987, 988, 989, 990, 991, 992, 994, 995, 996, 997, 998,
    1493, 1494, 1495, 1496, 1497, 1498, 1499, 1501, 1500, 1502, 1503, 1504, 1505,
};
// end of generated tables

// Index of the run of a sorted run table (start in the bits above `shift`) that holds c.
static size_t lf__uc_run(const uint32_t *runs, size_t n, int shift, uint32_t c) {
    size_t lo = 0, hi = n;  // runs[0] starts at U+0000, so the answer exists
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if ((runs[mid] >> shift) <= c) lo = mid;
        else hi = mid;
    }
    return lo;
}
static int lf__uc_gc_of(uint32_t c) {
    return (int)(lf__uc_gc[lf__uc_run(lf__uc_gc, sizeof lf__uc_gc / sizeof *lf__uc_gc, 5, c)] & 31);
}
static int lf__uc_ccc_of(uint32_t c) {
    if (c < 0x300) return 0;  // nothing below U+0300 combines
    return (int)(lf__uc_ccc[lf__uc_run(lf__uc_ccc, sizeof lf__uc_ccc / sizeof *lf__uc_ccc, 8, c)] & 255);
}
// Unicode White_Space: what \s means in Oniguruma and char::is_whitespace in Rust.
static bool lf__uc_is_space(uint32_t c) {
    if (c < 0x80) return c == ' ' || (c >= 9 && c <= 13);
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
           c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}
// Python's str.isspace (used by Jinja's strip/trim): White_Space plus U+001C..U+001F.
static bool lf__uc_is_pyspace(uint32_t c) { return lf__uc_is_space(c) || (c >= 0x1C && c <= 0x1F); }

#define LF__GCM(g) (1u << (g))
#define LF__GCM_L (LF__GCM(LF__GC_LU) | LF__GCM(LF__GC_LL) | LF__GCM(LF__GC_LT) | LF__GCM(LF__GC_LM) | LF__GCM(LF__GC_LO))
#define LF__GCM_M (LF__GCM(LF__GC_MN) | LF__GCM(LF__GC_MC) | LF__GCM(LF__GC_ME))
#define LF__GCM_N (LF__GCM(LF__GC_ND) | LF__GCM(LF__GC_NL) | LF__GCM(LF__GC_NO))

// -- 5.2 NFC
//
// Canonical decomposition (table + Hangul arithmetic), canonical ordering by combining class,
// then canonical composition of each unblocked mark with the last starter (UAX #15).

enum { LF__HANGUL_S = 0xAC00, LF__HANGUL_L = 0x1100, LF__HANGUL_V = 0x1161, LF__HANGUL_T = 0x11A7,
       LF__HANGUL_NV = 21, LF__HANGUL_NT = 28, LF__HANGUL_N = 11172 };

static bool lf__uc_decomp_of(uint32_t c, uint32_t *a, uint32_t *b) {
    size_t lo = 0, hi = sizeof lf__uc_decomp / sizeof *lf__uc_decomp;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        uint32_t k = (uint32_t)(lf__uc_decomp[mid] >> 42);
        if (k == c) {
            *a = (uint32_t)(lf__uc_decomp[mid] >> 21) & 0x1FFFFF, *b = (uint32_t)lf__uc_decomp[mid] & 0x1FFFFF;
            return true;
        }
        if (k < c) lo = mid + 1;
        else hi = mid;
    }
    return false;
}

static uint32_t lf__uc_compose(uint32_t a, uint32_t b) {
    if (a >= LF__HANGUL_L && a < LF__HANGUL_L + 19 && b >= LF__HANGUL_V && b < LF__HANGUL_V + LF__HANGUL_NV)
        return LF__HANGUL_S + ((a - LF__HANGUL_L) * LF__HANGUL_NV + (b - LF__HANGUL_V)) * LF__HANGUL_NT;
    if (a >= LF__HANGUL_S && a < LF__HANGUL_S + LF__HANGUL_N && (a - LF__HANGUL_S) % LF__HANGUL_NT == 0 &&
        b > LF__HANGUL_T && b < LF__HANGUL_T + LF__HANGUL_NT)
        return a + (b - LF__HANGUL_T);
    size_t lo = 0, hi = sizeof lf__uc_comp / sizeof *lf__uc_comp;
    uint64_t key = ((uint64_t)a << 21) | b;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        uint64_t d = lf__uc_decomp[lf__uc_comp[mid]], k = (d >> 0) & (((uint64_t)1 << 42) - 1);
        if (k == key) return (uint32_t)(d >> 42);
        if (k < key) lo = mid + 1;
        else hi = mid;
    }
    return 0;
}

typedef struct lf__u32vec {
    uint32_t *v;
    size_t n, cap;
} lf__u32vec;

static bool lf__u32_push(lf__u32vec *a, uint32_t x) {
    if (a->n == a->cap && !lf__grow((void **)&a->v, &a->cap, a->n + 1, sizeof *a->v, "tokenizer scratch"))
        return false;
    a->v[a->n++] = x;
    return true;
}

static bool lf__uc_decompose(uint32_t c, lf__u32vec *out) {
    uint32_t a, b;
    if (c >= LF__HANGUL_S && c < LF__HANGUL_S + LF__HANGUL_N) {
        uint32_t s = c - LF__HANGUL_S, t = s % LF__HANGUL_NT;
        if (!lf__u32_push(out, LF__HANGUL_L + s / (LF__HANGUL_NV * LF__HANGUL_NT)) ||
            !lf__u32_push(out, LF__HANGUL_V + (s % (LF__HANGUL_NV * LF__HANGUL_NT)) / LF__HANGUL_NT))
            return false;
        return t == 0 || lf__u32_push(out, LF__HANGUL_T + t);
    }
    if (c < 0xC0 || !lf__uc_decomp_of(c, &a, &b)) return lf__u32_push(out, c);
    return lf__uc_decompose(a, out) && (b == 0 || lf__uc_decompose(b, out));
}

// Full normalization of one island: decompose, order marks by combining class, compose.
static bool lf__uc_normalize_island(const char *s, size_t n, bool compose, lf__u32vec *cps, lf__buf *out) {
    size_t i;
    cps->n = 0;
    for (i = 0; i < n;) {
        size_t l;
        if (!lf__uc_decompose(lf__utf8_dec((const unsigned char *)s + i, &l), cps)) return false;
        i += l;
    }
    uint32_t *v = cps->v;
    // canonical ordering: each run of marks (ccc != 0) sorted stably by ccc; insertion sort for
    // the short runs of real text, a counting sort for long ones (a hostile run of thousands of
    // alternating marks must not cost quadratic time)
    for (size_t a = 0; a < cps->n;) {
        if (lf__uc_ccc_of(v[a]) == 0) {
            a++;
            continue;
        }
        size_t b = a;
        while (b < cps->n && lf__uc_ccc_of(v[b]) != 0) b++;
        if (b - a <= 32) {
            for (size_t j = a + 1; j < b; j++) {
                uint32_t c = v[j];
                int cc = lf__uc_ccc_of(c);
                size_t k = j;
                while (k > a && lf__uc_ccc_of(v[k - 1]) > cc) v[k] = v[k - 1], k--;
                v[k] = c;
            }
        } else {
            uint32_t *tmp = (uint32_t *)lf__calloc(b - a, sizeof *tmp, "normalization scratch");
            if (!tmp) return false;
            size_t start[257] = {0};
            for (size_t j = a; j < b; j++) start[lf__uc_ccc_of(v[j]) + 1]++;
            for (int c = 1; c < 257; c++) start[c] += start[c - 1];
            for (size_t j = a; j < b; j++) tmp[start[lf__uc_ccc_of(v[j])]++] = v[j];
            memcpy(v + a, tmp, (b - a) * sizeof *tmp);
            LF_FREE(tmp);
        }
        a = b;
    }
    size_t w = 0, starter = SIZE_MAX;
    int last_cc = -1;  // -1: nothing between the starter and the current character
    for (size_t j = 0; j < cps->n && compose; j++) {
        uint32_t c = v[j];
        int cc = lf__uc_ccc_of(c);
        if (starter != SIZE_MAX && !(last_cc != -1 && (last_cc == 0 || last_cc >= cc))) {
            uint32_t p = lf__uc_compose(v[starter], c);
            if (p) {
                v[starter] = p;
                continue;
            }
        }
        if (cc == 0) starter = w, last_cc = -1;
        else last_cc = cc;
        v[w++] = c;
    }
    if (!compose) w = cps->n;
    for (size_t j = 0; j < w; j++) {
        char u[4];
        lf__buf_put(out, u, lf__utf8_enc(v[j], u));
    }
    return !out->failed;
}

// Characters that NFC (below U+0300) or NFD (below U+00C0) leave alone and that never combine
// with a neighbour (checked by gen_unicode_tables.py): only the islands between them need work.
LF__INLINE bool lf__uc_inert(uint32_t c, bool compose) {
    return c < (compose ? 0x300u : 0xC0u) || (c >= 0x4E00 && c <= 0x9FFF);
}

// NFC (compose=true) or NFD of s[0..n) appended to out; cps is scratch.
static bool lf__uc_normalize(const char *s, size_t n, bool compose, lf__u32vec *cps, lf__buf *out) {
    size_t i = 0, done = 0, last = 0;  // done: copied up to here; last: start of the last character
    while (i < n) {
        size_t l = 1;
        if ((unsigned char)s[i] < (compose ? 0xCC : 0xC3)) {  // below U+0300 (U+00C0)
            last = i;
            i += (unsigned char)s[i] < 0x80 ? 1 : 2;
            continue;
        }
        if (lf__uc_inert(lf__utf8_dec((const unsigned char *)s + i, &l), compose)) {
            last = i, i += l;
            continue;
        }
        size_t start = last < i && last >= done ? last : i, end = i;  // the starter before may compose
        while (end < n && !lf__uc_inert(lf__utf8_dec((const unsigned char *)s + end, &l), compose)) end += l;
        lf__buf_put(out, s + done, start - done);
        if (!lf__uc_normalize_island(s + start, end - start, compose, cps, out)) return false;
        done = i = end, last = end;
    }
    lf__buf_put(out, s + done, n - done);
    return !out->failed;
}


// -- 5.3 regex
//
// ON THE REGEX ENGINE: HF compiles pre-tokenizer patterns with Oniguruma, whose semantics are
// leftmost-first backtracking over code points. We compile the subset those patterns use to a
// small program (Pike's instructions with relative jumps, so fragments can be copied for {m,n})
// and run it with an explicit backtracking stack. Loops over sub-patterns that can match empty
// are refused at compile time (no infinite loops), and a step budget per search turns a
// pathological pattern into an error instead of a hang.

enum { LF__RE_CHAR, LF__RE_ANY, LF__RE_CLASS, LF__RE_SPLIT, LF__RE_JMP, LF__RE_NLOOK, LF__RE_PLOOK, LF__RE_MATCH };
enum { LF__RI_RANGE, LF__RI_GC, LF__RI_SPACE };

typedef struct lf__re_inst {
    uint8_t op;
    int32_t x, y;  // CHAR: code point; CLASS: class index; SPLIT: preferred, other (relative);
                   // JMP: target (relative); NLOOK/PLOOK: continuation (relative)
} lf__re_inst;
typedef struct lf__re_item {
    uint8_t kind;
    bool neg;
    uint32_t lo, hi;  // RANGE: code points; GC: category mask in lo
} lf__re_item;
typedef struct lf__re_class {
    uint64_t ascii[2];  // the answer for U+0000..U+007F, precomputed
    bool neg;
    int first, n;       // items
} lf__re_class;
typedef struct lf__re {
    lf__re_inst *prog;
    size_t n, cap;
    lf__re_class *cls;
    size_t ncls, cls_cap;
    lf__re_item *items;
    size_t nitems, items_cap;
} lf__re;

static void lf__re_free(lf__re *re) {
    LF_FREE(re->prog), LF_FREE(re->cls), LF_FREE(re->items);
    memset(re, 0, sizeof *re);
}

static bool lf__re_item_has(const lf__re_item *it, uint32_t c) {
    bool r;
    switch (it->kind) {
    case LF__RI_RANGE: r = c >= it->lo && c <= it->hi; break;
    case LF__RI_GC: r = (it->lo >> lf__uc_gc_of(c)) & 1; break;
    default: r = lf__uc_is_space(c); break;
    }
    return r != it->neg;
}
static bool lf__re_class_slow(const lf__re *re, const lf__re_class *k, uint32_t c) {
    bool in = false;
    for (int i = 0; i < k->n && !in; i++) in = lf__re_item_has(&re->items[k->first + i], c);
    return in != k->neg;
}
LF__INLINE bool lf__re_class_has(const lf__re *re, const lf__re_class *k, uint32_t c) {
    if (c < 128) return (k->ascii[c >> 6] >> (c & 63)) & 1;
    return lf__re_class_slow(re, k, c);
}

static int lf__hexval(char h) {
    if (h >= '0' && h <= '9') return h - '0';
    h = (char)(h | 32);
    return h >= 'a' && h <= 'f' ? h - 'a' + 10 : -1;
}
static bool lf__is_alnum(uint32_t c) { return (c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z'); }

typedef struct lf__re_parser {
    const char *pat;
    size_t n, i;
    lf__re *re;
    const char *file, *where;  // for messages
    bool icase;
    int depth;
} lf__re_parser;

static lf_status lf__re_err(lf__re_parser *p, lf_status s, const char *what) {
    return lf__fail(s, "%s: %s: %s at pattern offset %zu", p->file, p->where, what, p->i);
}

static lf_status lf__re_emit(lf__re_parser *p, uint8_t op, int32_t x, int32_t y) {
    lf__re *re = p->re;
    if (re->n >= LF_MAX_REGEX_PROG) return lf__re_err(p, LF_ERR_UNSUPPORTED, "pattern too large (LF_MAX_REGEX_PROG)");
    if (!lf__grow((void **)&re->prog, &re->cap, re->n + 1, sizeof *re->prog, "regex")) return LF_ERR_NOMEM;
    re->prog[re->n++] = (lf__re_inst){op, x, y};
    return LF_OK;
}
static lf_status lf__re_insert(lf__re_parser *p, size_t at, uint8_t op, int32_t x, int32_t y) {
    lf_status s = lf__re_emit(p, op, x, y);
    if (s != LF_OK) return s;
    lf__re *re = p->re;
    memmove(re->prog + at + 1, re->prog + at, (re->n - 1 - at) * sizeof *re->prog);
    re->prog[at] = (lf__re_inst){op, x, y};
    return LF_OK;
}

static lf_status lf__re_add_item(lf__re_parser *p, lf__re_item it) {
    lf__re *re = p->re;
    if (!lf__grow((void **)&re->items, &re->items_cap, re->nitems + 1, sizeof *re->items, "regex")) return LF_ERR_NOMEM;
    re->items[re->nitems++] = it;
    return LF_OK;
}
// Case-insensitive ASCII, plus the two non-ASCII characters Unicode folds onto ASCII letters.
static lf_status lf__re_add_range(lf__re_parser *p, uint32_t lo, uint32_t hi) {
    lf_status s = lf__re_add_item(p, (lf__re_item){LF__RI_RANGE, false, lo, hi});
    if (s != LF_OK || !p->icase) return s;
    uint32_t a = LF__MAX(lo, 'a'), b = LF__MIN(hi, 'z');
    if (a <= b && (s = lf__re_add_item(p, (lf__re_item){LF__RI_RANGE, false, a - 32, b - 32})) != LF_OK) return s;
    a = LF__MAX(lo, 'A'), b = LF__MIN(hi, 'Z');
    if (a <= b && (s = lf__re_add_item(p, (lf__re_item){LF__RI_RANGE, false, a + 32, b + 32})) != LF_OK) return s;
    if (lo <= 's' && hi >= 's') s = lf__re_add_item(p, (lf__re_item){LF__RI_RANGE, false, 0x17F, 0x17F});
    if (s == LF_OK && lo <= 'k' && hi >= 'k') s = lf__re_add_item(p, (lf__re_item){LF__RI_RANGE, false, 0x212A, 0x212A});
    return s;
}

// Next code point of the pattern (which was checked to be UTF-8).
static uint32_t lf__re_next(lf__re_parser *p) {
    size_t l;
    uint32_t c = lf__utf8_dec((const unsigned char *)p->pat + p->i, &l);
    p->i += l;
    return c;
}

// Parses the escape after '\' into either a code point (*cp) or class items (returns true).
static lf_status lf__re_escape(lf__re_parser *p, uint32_t *cp, bool *is_class, bool *item_neg) {
    *is_class = false, *item_neg = false;
    if (p->i >= p->n) return lf__re_err(p, LF_ERR_FORMAT, "pattern ends after '\\'");
    uint32_t c = lf__re_next(p);
    switch (c) {
    case 'n': *cp = '\n'; return LF_OK;
    case 'r': *cp = '\r'; return LF_OK;
    case 't': *cp = '\t'; return LF_OK;
    case 'f': *cp = '\f'; return LF_OK;
    case 'v': *cp = '\v'; return LF_OK;
    case 'a': *cp = 7; return LF_OK;
    case 'e': *cp = 27; return LF_OK;
    case 'x': case 'u': {
        bool brace = c == 'x' && p->i < p->n && p->pat[p->i] == '{';
        size_t max = brace ? 6 : c == 'x' ? 2 : 4, k = 0;
        uint32_t v = 0;
        if (brace) p->i++;
        while (k < max && p->i < p->n && lf__hexval(p->pat[p->i]) >= 0) {
            char h = p->pat[p->i++];
            v = v * 16 + (uint32_t)lf__hexval(h);
            k++;
        }
        if (k == 0 || (brace && (p->i >= p->n || p->pat[p->i++] != '}')) || (c == 'u' && k != 4) || v > 0x10FFFF)
            return lf__re_err(p, LF_ERR_FORMAT, "bad hex escape");
        *cp = v;
        return LF_OK;
    }
    case 's': case 'S':
        *is_class = true, *item_neg = c == 'S';
        return lf__re_add_item(p, (lf__re_item){LF__RI_SPACE, c == 'S', 0, 0});
    case 'd': case 'D':
        *is_class = true, *item_neg = c == 'D';
        return lf__re_add_item(p, (lf__re_item){LF__RI_GC, c == 'D', LF__GCM(LF__GC_ND), 0});
    case 'w': case 'W':
        *is_class = true, *item_neg = c == 'W';
        return lf__re_add_item(p, (lf__re_item){LF__RI_GC, c == 'W', LF__GCM_L | LF__GCM_M | LF__GCM(LF__GC_ND) | LF__GCM(LF__GC_PC), 0});
    case 'p': case 'P': {
        static const struct { const char *name; uint32_t mask; } props[] = {
            {"L", LF__GCM_L}, {"Lu", LF__GCM(LF__GC_LU)}, {"Ll", LF__GCM(LF__GC_LL)}, {"Lt", LF__GCM(LF__GC_LT)},
            {"Lm", LF__GCM(LF__GC_LM)}, {"Lo", LF__GCM(LF__GC_LO)}, {"M", LF__GCM_M}, {"Mn", LF__GCM(LF__GC_MN)},
            {"N", LF__GCM_N}, {"Nd", LF__GCM(LF__GC_ND)}, {"Nl", LF__GCM(LF__GC_NL)}, {"No", LF__GCM(LF__GC_NO)},
            {"P", LF__GCM(LF__GC_PC) | LF__GCM(LF__GC_PD) | LF__GCM(LF__GC_PS) | LF__GCM(LF__GC_PE) |
                  LF__GCM(LF__GC_PI) | LF__GCM(LF__GC_PF) | LF__GCM(LF__GC_PO)},
            {"S", LF__GCM(LF__GC_SM) | LF__GCM(LF__GC_SC) | LF__GCM(LF__GC_SK) | LF__GCM(LF__GC_SO)},
            {"Z", LF__GCM(LF__GC_ZS) | LF__GCM(LF__GC_ZL) | LF__GCM(LF__GC_ZP)}, {"Zs", LF__GCM(LF__GC_ZS)},
            {"C", LF__GCM(LF__GC_CN) | LF__GCM(LF__GC_CC) | LF__GCM(LF__GC_CF) | LF__GCM(LF__GC_CS) | LF__GCM(LF__GC_CO)},
            {"Cc", LF__GCM(LF__GC_CC)}, {"Cf", LF__GCM(LF__GC_CF)},
        };
        bool neg = c == 'P';
        if (p->i >= p->n || p->pat[p->i] != '{') return lf__re_err(p, LF_ERR_UNSUPPORTED, "\\p without {...}");
        const char *name = p->pat + p->i + 1, *end = (const char *)memchr(name, '}', p->n - p->i - 1);
        if (!end) return lf__re_err(p, LF_ERR_FORMAT, "unterminated \\p{");
        if (*name == '^') neg = !neg, name++;
        for (size_t k = 0; k < sizeof props / sizeof *props; k++)
            if (strlen(props[k].name) == (size_t)(end - name) && memcmp(props[k].name, name, (size_t)(end - name)) == 0) {
                p->i = (size_t)(end - p->pat) + 1;
                *is_class = true, *item_neg = neg;
                return lf__re_add_item(p, (lf__re_item){LF__RI_GC, neg, props[k].mask, 0});
            }
        return lf__re_err(p, LF_ERR_UNSUPPORTED, "unknown Unicode property");
    }
    default:
        if (lf__is_alnum(c)) return lf__re_err(p, LF_ERR_UNSUPPORTED, "unsupported escape");
        *cp = c;  // escaped punctuation stands for itself
        return LF_OK;
    }
}

static lf_status lf__re_new_class(lf__re_parser *p, bool neg, size_t first_item) {
    lf__re *re = p->re;
    if (!lf__grow((void **)&re->cls, &re->cls_cap, re->ncls + 1, sizeof *re->cls, "regex")) return LF_ERR_NOMEM;
    lf__re_class *k = &re->cls[re->ncls];
    memset(k, 0, sizeof *k);
    k->neg = neg, k->first = (int)first_item, k->n = (int)(re->nitems - first_item);
    for (uint32_t c = 0; c < 128; c++)
        if (lf__re_class_slow(re, k, c)) k->ascii[c >> 6] |= (uint64_t)1 << (c & 63);
    return lf__re_emit(p, LF__RE_CLASS, (int32_t)re->ncls++, 0);
}

static lf_status lf__re_bracket(lf__re_parser *p) {
    size_t first = p->re->nitems;
    bool neg = p->i < p->n && p->pat[p->i] == '^';
    if (neg) p->i++;
    bool any = false;
    lf_status s;
    for (;;) {
        if (p->i >= p->n) return lf__re_err(p, LF_ERR_FORMAT, "unterminated [");
        if (p->pat[p->i] == ']' && any) {
            p->i++;
            break;
        }
        if (p->pat[p->i] == '[' || (p->pat[p->i] == '&' && p->i + 1 < p->n && p->pat[p->i + 1] == '&'))
            return lf__re_err(p, LF_ERR_UNSUPPORTED, "nested class or class intersection");
        any = true;
        uint32_t lo = lf__re_next(p), hi;
        bool is_class, neg_item;
        if (lo == '\\') {
            if ((s = lf__re_escape(p, &lo, &is_class, &neg_item)) != LF_OK) return s;
            if (is_class) continue;
        }
        hi = lo;
        if (p->i + 1 < p->n && p->pat[p->i] == '-' && p->pat[p->i + 1] != ']') {
            p->i++;
            hi = lf__re_next(p);
            if (hi == '\\') {
                if ((s = lf__re_escape(p, &hi, &is_class, &neg_item)) != LF_OK) return s;
                if (is_class) return lf__re_err(p, LF_ERR_FORMAT, "class escape as a range end");
            }
            if (hi < lo) return lf__re_err(p, LF_ERR_FORMAT, "range out of order");
        }
        if ((s = lf__re_add_range(p, lo, hi)) != LF_OK) return s;
    }
    return lf__re_new_class(p, neg, first);
}

static lf_status lf__re_alt(lf__re_parser *p, bool *nullable);

static lf_status lf__re_atom(lf__re_parser *p, bool *nullable) {
    lf_status s;
    *nullable = false;
    uint32_t c = lf__re_next(p);
    if (c == '(') {
        if (++p->depth > 64) return lf__re_err(p, LF_ERR_UNSUPPORTED, "groups nested too deeply");
        bool saved = p->icase;
        uint8_t look = 0;
        if (p->i < p->n && p->pat[p->i] == '?') {
            const char *q = p->pat + p->i + 1;
            size_t left = p->n - p->i - 1;
            if (left >= 1 && (*q == ':' || *q == '!' || *q == '=')) {
                look = *q == '!' ? LF__RE_NLOOK : *q == '=' ? LF__RE_PLOOK : 0;
                p->i += 2;
            } else if (left >= 2 && q[0] == 'i' && (q[1] == ':' || q[1] == ')')) {
                p->i += 3;
                p->icase = true;
                if (q[1] == ')') {  // (?i) applies to the rest of the enclosing group
                    p->depth--;
                    *nullable = true;
                    return LF_OK;
                }
            } else
                return lf__re_err(p, LF_ERR_UNSUPPORTED, "unsupported group kind");
        }
        size_t at = p->re->n;
        if (look && (s = lf__re_emit(p, look, 0, 0)) != LF_OK) return s;
        if ((s = lf__re_alt(p, nullable)) != LF_OK) return s;
        if (p->i >= p->n || p->pat[p->i] != ')') return lf__re_err(p, LF_ERR_FORMAT, "missing )");
        p->i++;
        p->icase = saved;
        p->depth--;
        if (look) {
            if ((s = lf__re_emit(p, LF__RE_MATCH, 0, 0)) != LF_OK) return s;
            p->re->prog[at].x = (int32_t)(p->re->n - at);
            *nullable = true;
        }
        return LF_OK;
    }
    if (c == '[') return lf__re_bracket(p);
    if (c == '.') return lf__re_emit(p, LF__RE_ANY, 0, 0);
    if (c == '*' || c == '+' || c == '?' || c == '{') return lf__re_err(p, LF_ERR_FORMAT, "nothing to repeat");
    if (c == '^' || c == '$') return lf__re_err(p, LF_ERR_UNSUPPORTED, "anchors");
    if (c == '\\') {
        size_t first = p->re->nitems;
        bool is_class, neg_item;
        if ((s = lf__re_escape(p, &c, &is_class, &neg_item)) != LF_OK) return s;
        if (is_class) return lf__re_new_class(p, false, first);
    }
    if (p->icase && lf__is_alnum(c) && c > '9') {
        size_t first = p->re->nitems;
        return (s = lf__re_add_range(p, c, c)) != LF_OK ? s : lf__re_new_class(p, false, first);
    }
    return lf__re_emit(p, LF__RE_CHAR, (int32_t)c, 0);
}

// Applies a quantifier (if any) to the fragment prog[at..n).
static lf_status lf__re_quant(lf__re_parser *p, size_t at, bool *nullable) {
    if (p->i >= p->n) return LF_OK;
    char q = p->pat[p->i];
    long lo, hi;  // hi < 0: unbounded
    if (q == '?') lo = 0, hi = 1;
    else if (q == '*') lo = 0, hi = -1;
    else if (q == '+') lo = 1, hi = -1;
    else if (q == '{') {
        char *e;
        const char *b = p->pat + p->i + 1;
        if (*b < '0' || *b > '9') return lf__re_err(p, LF_ERR_UNSUPPORTED, "'{' not starting a {m,n} count");
        lo = strtol(b, &e, 10), hi = lo;
        if (*e == ',') hi = e[1] >= '0' && e[1] <= '9' ? strtol(e + 1, &e, 10) : (e++, -1);
        if (*e != '}' || lo > 1000 || hi > 1000 || (hi >= 0 && hi < lo)) return lf__re_err(p, LF_ERR_FORMAT, "bad {m,n}");
        p->i = (size_t)(e - p->pat);
    } else
        return LF_OK;
    p->i++;
    bool greedy = !(p->i < p->n && p->pat[p->i] == '?');
    if (!greedy) p->i++;
    if (p->i < p->n && strchr("?*+{", p->pat[p->i])) return lf__re_err(p, LF_ERR_UNSUPPORTED, "stacked quantifiers");
    if (hi < 0 && *nullable) return lf__re_err(p, LF_ERR_UNSUPPORTED, "unbounded repeat of a pattern that can match empty");
    lf__re *re = p->re;
    size_t len = re->n - at, total = len * (size_t)LF__MAX(lo, 1) + (hi < 0 ? 2 : (size_t)(hi - lo) * (len + 1));
    if (re->n + total > LF_MAX_REGEX_PROG) return lf__re_err(p, LF_ERR_UNSUPPORTED, "pattern too large (LF_MAX_REGEX_PROG)");
    lf__re_inst *frag = (lf__re_inst *)lf__alloc(len * sizeof *frag, "regex");
    if (!frag) return LF_ERR_NOMEM;
    memcpy(frag, re->prog + at, len * sizeof *frag);
    re->n = at;
    lf_status s = LF_OK;
    int32_t L = (int32_t)len;
    for (long k = 0; k < lo && s == LF_OK; k++)
        for (size_t j = 0; j < len && s == LF_OK; j++) s = lf__re_emit(p, frag[j].op, frag[j].x, frag[j].y);
    if (hi < 0 && s == LF_OK) {  // split +1, end; frag; jmp back to the split
        s = lf__re_emit(p, LF__RE_SPLIT, greedy ? 1 : L + 2, greedy ? L + 2 : 1);
        for (size_t j = 0; j < len && s == LF_OK; j++) s = lf__re_emit(p, frag[j].op, frag[j].x, frag[j].y);
        if (s == LF_OK) s = lf__re_emit(p, LF__RE_JMP, -(L + 1), 0);
    }
    size_t first_opt = re->n;
    for (long k = lo; k < hi && s == LF_OK; k++) {  // optional copies all skip to the end
        s = lf__re_emit(p, LF__RE_SPLIT, 0, 0);
        for (size_t j = 0; j < len && s == LF_OK; j++) s = lf__re_emit(p, frag[j].op, frag[j].x, frag[j].y);
    }
    for (size_t j = first_opt; s == LF_OK && hi > lo && j < re->n; j += len + 1) {
        int32_t skip = (int32_t)(re->n - j);
        re->prog[j].x = greedy ? 1 : skip, re->prog[j].y = greedy ? skip : 1;
    }
    LF_FREE(frag);
    if (lo == 0) *nullable = true;
    return s;
}

static lf_status lf__re_concat(lf__re_parser *p, bool *nullable) {
    *nullable = true;
    while (p->i < p->n && p->pat[p->i] != '|' && p->pat[p->i] != ')') {
        size_t at = p->re->n;
        bool an;
        lf_status s = lf__re_atom(p, &an);
        if (s == LF_OK) s = lf__re_quant(p, at, &an);
        if (s != LF_OK) return s;
        *nullable = *nullable && an;
    }
    return LF_OK;
}

static lf_status lf__re_alt(lf__re_parser *p, bool *nullable) {
    size_t start = p->re->n, split = 0, jmps[256], nj = 0;
    lf_status s = lf__re_concat(p, nullable);
    while (s == LF_OK && p->i < p->n && p->pat[p->i] == '|') {
        p->i++;
        if (nj == 0) {  // first '|': put the split in front of the first branch
            if ((s = lf__re_insert(p, start, LF__RE_SPLIT, 1, 0)) != LF_OK) return s;
            split = start;
        }
        if (nj == sizeof jmps / sizeof *jmps) return lf__re_err(p, LF_ERR_UNSUPPORTED, "too many alternatives");
        jmps[nj++] = p->re->n;
        if ((s = lf__re_emit(p, LF__RE_JMP, 0, 0)) != LF_OK) return s;
        p->re->prog[split].y = (int32_t)(p->re->n - split);
        size_t b = p->re->n;
        bool bn;
        if ((s = lf__re_concat(p, &bn)) != LF_OK) return s;
        *nullable = *nullable || bn;
        if (p->i < p->n && p->pat[p->i] == '|') {
            if ((s = lf__re_insert(p, b, LF__RE_SPLIT, 1, 0)) != LF_OK) return s;
            split = b;
        }
    }
    for (size_t j = 0; j < nj && s == LF_OK; j++) p->re->prog[jmps[j]].x = (int32_t)(p->re->n - jmps[j]);
    return s;
}

// Compiles pat (UTF-8, n bytes); literal = true compiles it as a plain string.
static lf_status lf__re_compile(lf__re *re, const char *pat, size_t n, bool literal, const char *file, const char *where) {
    memset(re, 0, sizeof *re);
    lf__re_parser p = {pat, n, 0, re, file, where, false, 0};
    if (lf__utf8_check((const unsigned char *)pat, n) != n) return lf__re_err(&p, LF_ERR_FORMAT, "invalid UTF-8");
    lf_status s = LF_OK;
    bool nullable;
    if (literal)
        while (p.i < n && s == LF_OK) s = lf__re_emit(&p, LF__RE_CHAR, (int32_t)lf__re_next(&p), 0);
    else if ((s = lf__re_alt(&p, &nullable)) == LF_OK && p.i < n)
        s = lf__re_err(&p, LF_ERR_FORMAT, "unbalanced )");
    if (s == LF_OK) s = lf__re_emit(&p, LF__RE_MATCH, 0, 0);
    if (s != LF_OK) lf__re_free(re);
    return s;
}

typedef struct lf__re_bt {
    int32_t pc;
    size_t pos;
} lf__re_bt;
typedef struct lf__re_ctx {
    const lf__re *re;
    const unsigned char *s;
    size_t n;
    lf__re_bt *stk;
    size_t top, cap;
    uint64_t steps, budget;
} lf__re_ctx;

// Runs the program from pc at pos: 1 and *end on a match, 0 on none, <0 a status.
static int lf__re_run(lf__re_ctx *c, int32_t pc, size_t pos, size_t *end) {
    const lf__re_inst *prog = c->re->prog;
    const unsigned char *s = c->s;
    size_t base = c->top, n = c->n;
    for (;;) {
        if (++c->steps > c->budget) return lf__fail(LF_ERR_UNSUPPORTED, "pre-tokenizer regex too complex for this input (step budget)");
        const lf__re_inst *in = &prog[pc];
        size_t l = 1;
        uint32_t ch;
        switch (in->op) {
        case LF__RE_CHAR:
            if (pos < n && (ch = s[pos] < 0x80 ? s[pos] : lf__utf8_dec(s + pos, &l)) == (uint32_t)in->x) {
                pos += l, pc++;
                continue;
            }
            break;
        case LF__RE_ANY:
            if (pos < n && s[pos] != '\n') {
                if (s[pos] >= 0x80) lf__utf8_dec(s + pos, &l);
                pos += l, pc++;
                continue;
            }
            break;
        case LF__RE_CLASS:
            if (pos < n) {
                ch = s[pos] < 0x80 ? s[pos] : lf__utf8_dec(s + pos, &l);
                if (lf__re_class_has(c->re, &c->re->cls[in->x], ch)) {
                    pos += l, pc++;
                    continue;
                }
            }
            break;
        case LF__RE_SPLIT:
            if (c->top == c->cap && !lf__grow((void **)&c->stk, &c->cap, c->top + 1, sizeof *c->stk, "regex stack"))
                return LF_ERR_NOMEM;
            c->stk[c->top++] = (lf__re_bt){pc + in->y, pos};
            pc += in->x;
            continue;
        case LF__RE_JMP: pc += in->x; continue;
        case LF__RE_NLOOK: case LF__RE_PLOOK: {
            size_t e;
            int r = lf__re_run(c, pc + 1, pos, &e);
            if (r < 0) return r;
            if ((r == 1) == (in->op == LF__RE_PLOOK)) {
                pc += in->x;
                continue;
            }
            break;
        }
        default:  // MATCH
            c->top = base;
            *end = pos;
            return 1;
        }
        if (c->top == base) return 0;  // fail: resume the latest alternative
        c->top--;
        pc = c->stk[c->top].pc, pos = c->stk[c->top].pos;
    }
}

// Leftmost match starting at or after from: 1 (and [*ms, *me)), 0 none, <0 a status.
static int lf__re_find(lf__re_ctx *c, size_t from, size_t *ms, size_t *me) {
    c->steps = 0;
    c->budget = ((uint64_t)1 << 20) + 256 * (uint64_t)(c->n - from);
    for (size_t pos = from; pos <= c->n;) {
        int r = lf__re_run(c, 0, pos, me);
        if (r != 0) return *ms = pos, r;
        if (pos == c->n) break;
        size_t l = 1;
        if (c->s[pos] >= 0x80) lf__utf8_dec(c->s + pos, &l);
        pos += l;
    }
    return 0;
}

// -- 5.4 the loaded tokenizer

enum { LF__TF_MODEL = 1, LF__TF_ADDED = 2, LF__TF_SPECIAL = 4 };
enum { LF__NORM_NFC, LF__NORM_NFD, LF__NORM_PREPEND, LF__NORM_REPLACE, LF__NORM_STRIP };
enum { LF__PRE_SPLIT, LF__PRE_PREFIX_SPACE };
enum { LF__SPLIT_ISOLATED, LF__SPLIT_REMOVED, LF__SPLIT_MERGED_PREV, LF__SPLIT_MERGED_NEXT, LF__SPLIT_CONTIGUOUS };
enum { LF__DEC_REPLACE, LF__DEC_STRIP };
enum { LF__CHAT_THINK = 1 };  // chatml: Qwen3's <think> handling of the last assistant turn

typedef struct lf__str {
    uint32_t off, len;  // bytes in lf__tok.blob
} lf__str;

typedef struct lf__added {
    lf__str content, norm;  // norm: content after the normalizer (for normalized tokens)
    int32_t id;
    bool single_word, lstrip, rstrip, normalized;
} lf__added;

// Added tokens of one kind, grouped by first byte and longest first, for leftmost-longest.
typedef struct lf__matchset {
    int32_t *order;       // indices into lf__tok.added
    int32_t start[257];   // order[start[b] .. start[b+1]) begin with byte b
    bool normalized;      // match the normalized form
} lf__matchset;

typedef struct lf__norm {
    int kind;
    lf__str a, b;         // PREPEND: a; REPLACE: a -> b
    bool left, right;     // STRIP
} lf__norm;

typedef struct lf__pre {
    int kind;
    lf__re re;
    int behavior;
    bool invert;
} lf__pre;

typedef struct lf__dec {
    int kind;
    lf__str a, b;         // REPLACE: a -> b; STRIP: a is the character
    int start, stop;      // STRIP
} lf__dec;

typedef struct lf__merge {
    uint64_t key;         // (left id << 32) | right id; 0 with id -1: empty slot
    int32_t rank, id;
} lf__merge;

typedef struct lf__tok {
    int32_t n_vocab;
    char *blob;           // every string, NUL-separated
    size_t blob_len, blob_cap;
    lf__str *pieces;      // [n_vocab] token strings; len UINT32_MAX: no token with that id
    uint8_t *flags;       // [n_vocab] LF__TF_*
    int32_t *hash;        // token string -> id, open addressing, -1 empty
    size_t hash_mask;
    lf__merge *merges;
    size_t merge_mask;
    // model
    bool byte_level, byte_fallback, fuse_unk, ignore_merges;
    bool split_metaspace;   // words can be cut before each "▁" that follows another character
    int32_t unk_id;
    int32_t byte_id[256];   // byte-level: id of each byte's stand-in character; -1 if none
    int32_t ascii_id[128];  // id of each ASCII character as a token; -1 if none
    int32_t fallback_id[256];  // <0xXX>; -1 if none
    uint16_t byte_char[256];   // GPT-2's bytes_to_unicode: byte -> stand-in code point
    int16_t char_byte[324];    // and back (-1: not a stand-in)
    // added tokens
    lf__added *added;
    int n_added;
    lf__matchset raw, normed;
    // pipeline
    lf__norm *norms;
    int n_norms;
    lf__pre *pres;
    int n_pres;
    lf__dec *decs;          // per-token decoder steps, in order
    int n_decs;
    bool has_decoder, dec_byte_level, dec_byte_fallback;
    uint32_t dec_strip_char;  // Strip after Fuse: leading characters of the whole text
    int dec_strip_start;
    int32_t prefix[LF__TOK_MAX_TEMPLATE], suffix[LF__TOK_MAX_TEMPLATE];
    int n_prefix, n_suffix;
    // tokenizer_config.json
    char config_name[256];
    lf__str bos, eos;       // len 0: none
    bool chat_unknown;      // a chat_template we do not render
    int chat_flags;
    lf__str chat_default_system;
} lf__tok;

static uint64_t lf__hash_bytes(const char *s, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 29;
        s += 8, n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0x94D049BB133111EBull;
    return h ^ (h >> 31);
}
LF__INLINE uint64_t lf__hash_u64(uint64_t x) {
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static int32_t lf__tok_lookup(const lf__tok *k, const char *s, size_t n) {
    for (size_t h = lf__hash_bytes(s, n) & k->hash_mask;; h = (h + 1) & k->hash_mask) {
        int32_t id = k->hash[h];
        if (id < 0) return -1;
        if (k->pieces[id].len == n && memcmp(k->blob + k->pieces[id].off, s, n) == 0) return id;
    }
}
// The model's own vocabulary only: added tokens outside it never take part in BPE.
LF__INLINE int32_t lf__tok_model_id(const lf__tok *k, const char *s, size_t n) {
    int32_t id = lf__tok_lookup(k, s, n);
    return id >= 0 && (k->flags[id] & LF__TF_MODEL) ? id : -1;
}

LF__INLINE const lf__merge *lf__tok_merge(const lf__tok *k, int32_t a, int32_t b) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    for (size_t h = lf__hash_u64(key) & k->merge_mask;; h = (h + 1) & k->merge_mask) {
        const lf__merge *m = &k->merges[h];
        if (m->id < 0) return NULL;
        if (m->key == key) return m;
    }
}

// Stores bytes in the blob; the result stays valid as the blob grows (it is an offset).
static lf_status lf__tok_intern(lf__tok *k, const char *s, size_t n, lf__str *out) {
    if (k->blob_len + n + 1 > UINT32_MAX) return lf__fail(LF_ERR_FORMAT, "tokenizer strings exceed 4 GiB");
    if (!lf__grow((void **)&k->blob, &k->blob_cap, k->blob_len + n + 1, 1, "tokenizer strings")) return LF_ERR_NOMEM;
    memcpy(k->blob + k->blob_len, s, n);
    k->blob[k->blob_len + n] = 0;
    out->off = (uint32_t)k->blob_len, out->len = (uint32_t)n;
    k->blob_len += n + 1;
    return LF_OK;
}

// Readers of tokenizer.json fields. Problems are LF_ERR_FORMAT naming "<file>: <path>.<key>".
typedef struct lf__tj {
    const char *file;
    lf__tok *k;
} lf__tj;

static const lf_node *lf__tj_get(const lf_node *obj, const char *key) {
    const lf_node *n = lf_node_get(obj, key);
    return n && n->type != LF_NODE_NULL ? n : NULL;
}
static lf_status lf__tj_str(const lf__tj *j, const char *path, const lf_node *obj, const char *key, bool required,
                            const lf_node **out) {
    *out = lf__tj_get(obj, key);
    if (!*out && required) return lf__fail(LF_ERR_FORMAT, "%s: %s%s%s: missing", j->file, path, *path ? "." : "", key);
    if (*out && (*out)->type != LF_NODE_STRING)
        return lf__fail(LF_ERR_FORMAT, "%s: %s%s%s: must be a string", j->file, path, *path ? "." : "", key);
    if (*out && lf__utf8_check((const unsigned char *)(*out)->str, (*out)->len) != (*out)->len)
        return lf__fail(LF_ERR_FORMAT, "%s: %s%s%s: invalid UTF-8", j->file, path, *path ? "." : "", key);
    return LF_OK;
}
static lf_status lf__tj_bool(const lf__tj *j, const char *path, const lf_node *obj, const char *key, bool *out) {
    const lf_node *n = lf__tj_get(obj, key);
    if (!n) return LF_OK;
    if (n->type != LF_NODE_BOOL)
        return lf__fail(LF_ERR_FORMAT, "%s: %s%s%s: must be true or false", j->file, path, *path ? "." : "", key);
    *out = n->num != 0;
    return LF_OK;
}
static lf_status lf__tj_int(const lf__tj *j, const char *path, const lf_node *n, int64_t lo, int64_t hi, int64_t *out) {
    if (!n || n->type != LF_NODE_NUMBER || n->num != floor(n->num) || n->num < (double)lo || n->num > (double)hi)
        return lf__fail(LF_ERR_FORMAT, "%s: %s: must be an integer in [%lld, %lld]", j->file, path, (long long)lo,
                        (long long)hi);
    *out = (int64_t)n->num;
    return LF_OK;
}
// The "type" of a component; anything else than the names in `known` is LF_ERR_UNSUPPORTED.
static lf_status lf__tj_type(const lf__tj *j, const char *path, const lf_node *obj, const char *const *known, int *out) {
    const lf_node *t;
    if (!obj || obj->type != LF_NODE_OBJECT) return lf__fail(LF_ERR_FORMAT, "%s: %s: must be an object", j->file, path);
    lf_status s = lf__tj_str(j, path, obj, "type", true, &t);
    if (s != LF_OK) return s;
    for (int i = 0; known[i]; i++)
        if (strcmp(t->str, known[i]) == 0) return *out = i, LF_OK;
    return lf__fail(LF_ERR_UNSUPPORTED, "%s: %s.type: unsupported '%s'", j->file, path, t->str);
}
// A child array of a Sequence, bounded in depth.
static lf_status lf__tj_array(const lf__tj *j, const char *path, const lf_node *obj, const char *key, int depth,
                              const lf_node **out) {
    if (depth >= LF__TOK_MAX_DEPTH) return lf__fail(LF_ERR_FORMAT, "%s: %s: Sequence nested too deeply", j->file, path);
    *out = lf__tj_get(obj, key);
    if (!*out || (*out)->type != LF_NODE_ARRAY)
        return lf__fail(LF_ERR_FORMAT, "%s: %s.%s: must be an array", j->file, path, key);
    return LF_OK;
}
// A Replace/Split "pattern": {"String": s} or {"Regex": r}.
static lf_status lf__tj_pattern(const lf__tj *j, const char *path, const lf_node *obj, const lf_node **str, bool *regex) {
    char sub[512];
    snprintf(sub, sizeof sub, "%s.pattern", path);
    const lf_node *pat = lf__tj_get(obj, "pattern");
    if (!pat || pat->type != LF_NODE_OBJECT) return lf__fail(LF_ERR_FORMAT, "%s: %s: must be an object", j->file, sub);
    lf_status s = lf__tj_str(j, sub, pat, "String", false, str);
    if (s != LF_OK || *str) return *regex = false, s;
    *regex = true;
    return lf__tj_str(j, sub, pat, "Regex", true, str);
}

// A Replace step (normalizer or decoder): pattern.String -> content, both interned.
static lf_status lf__tj_replace(const lf__tj *j, const char *path, const lf_node *obj, lf__tok *k, lf__str *from, lf__str *to) {
    const lf_node *a, *b;
    bool regex;
    lf_status s = lf__tj_pattern(j, path, obj, &a, &regex);
    if (s != LF_OK) return s;
    if (regex) return lf__fail(LF_ERR_UNSUPPORTED, "%s: %s.pattern.Regex: unsupported (only String)", j->file, path);
    if (a->len == 0) return lf__fail(LF_ERR_FORMAT, "%s: %s.pattern.String: empty", j->file, path);
    if ((s = lf__tj_str(j, path, obj, "content", true, &b)) != LF_OK) return s;
    if ((s = lf__tok_intern(k, a->str, a->len, from)) != LF_OK) return s;
    return lf__tok_intern(k, b->str, b->len, to);
}

static lf_status lf__tok_push(void **arr, int *n, size_t size, const void *item, const char *what) {
    size_t cap = (size_t)*n;  // arrays grow one by one: there are a handful of steps
    if (!lf__grow(arr, &cap, cap + 1, size, what)) return LF_ERR_NOMEM;
    memcpy((char *)*arr + (size_t)*n * size, item, size);
    (*n)++;
    return LF_OK;
}

// -- 5.5 loading tokenizer.json

static const char *const lf__norm_types[] = {"Sequence", "NFC", "NFD", "Prepend", "Replace", "Strip", NULL};
static const char *const lf__pre_types[] = {"Sequence", "Split", "ByteLevel", NULL};
static const char *const lf__dec_types[] = {"Sequence", "ByteLevel", "Replace", "ByteFallback", "Fuse", "Strip", NULL};
static const char *const lf__post_types[] = {"Sequence", "ByteLevel", "TemplateProcessing", NULL};
static const char *const lf__split_behaviors[] = {"Isolated", "Removed", "MergedWithPrevious", "MergedWithNext",
                                                  "Contiguous", NULL};
// GPT-2's pre-tokenizer regex, which ByteLevel applies when use_regex is true.
static const char lf__gpt2_regex[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static lf_status lf__tok_normalizer(const lf__tj *j, const char *path, const lf_node *obj, int depth) {
    lf__tok *k = j->k;
    int type = 0;
    lf_status s = lf__tj_type(j, path, obj, lf__norm_types, &type);
    if (s != LF_OK) return s;
    lf__norm nm;
    memset(&nm, 0, sizeof nm);
    const lf_node *a;
    char sub[512];
    switch (type) {
    case 0:
        if ((s = lf__tj_array(j, path, obj, "normalizers", depth, &a)) != LF_OK) return s;
        for (int i = 0; i < a->n && s == LF_OK; i++) {
            snprintf(sub, sizeof sub, "%s.normalizers[%d]", path, i);
            s = lf__tok_normalizer(j, sub, &a->kids[i], depth + 1);
        }
        return s;
    case 1: nm.kind = LF__NORM_NFC; break;
    case 2: nm.kind = LF__NORM_NFD; break;
    case 3:
        nm.kind = LF__NORM_PREPEND;
        if ((s = lf__tj_str(j, path, obj, "prepend", true, &a)) != LF_OK) return s;
        if ((s = lf__tok_intern(k, a->str, a->len, &nm.a)) != LF_OK) return s;
        break;
    case 4:
        nm.kind = LF__NORM_REPLACE;
        if ((s = lf__tj_replace(j, path, obj, k, &nm.a, &nm.b)) != LF_OK) return s;
        break;
    default:
        nm.kind = LF__NORM_STRIP, nm.left = nm.right = true;
        if ((s = lf__tj_bool(j, path, obj, "strip_left", &nm.left)) != LF_OK) return s;
        if ((s = lf__tj_bool(j, path, obj, "strip_right", &nm.right)) != LF_OK) return s;
        break;
    }
    return lf__tok_push((void **)&k->norms, &k->n_norms, sizeof nm, &nm, "normalizers");
}

static lf_status lf__tok_add_split(lf__tok *k, const char *file, const char *path, const char *pat, size_t n,
                                   bool literal, int behavior, bool invert) {
    lf__pre pre;
    memset(&pre, 0, sizeof pre);
    pre.kind = LF__PRE_SPLIT, pre.behavior = behavior, pre.invert = invert;
    lf_status s = lf__re_compile(&pre.re, pat, n, literal, file, path);
    if (s != LF_OK) return s;
    if ((s = lf__tok_push((void **)&k->pres, &k->n_pres, sizeof pre, &pre, "pre-tokenizers")) != LF_OK) lf__re_free(&pre.re);
    return s;
}

static lf_status lf__tok_pretokenizer(const lf__tj *j, const char *path, const lf_node *obj, int depth) {
    lf__tok *k = j->k;
    int type = 0;
    lf_status s = lf__tj_type(j, path, obj, lf__pre_types, &type);
    if (s != LF_OK) return s;
    if (type != 0 && k->byte_level)  // it would see the byte-level alphabet, which we never build
        return lf__fail(LF_ERR_UNSUPPORTED, "%s: %s: a pre-tokenizer after ByteLevel is unsupported", j->file, path);
    const lf_node *a;
    char sub[512];
    if (type == 0) {
        if ((s = lf__tj_array(j, path, obj, "pretokenizers", depth, &a)) != LF_OK) return s;
        for (int i = 0; i < a->n && s == LF_OK; i++) {
            snprintf(sub, sizeof sub, "%s.pretokenizers[%d]", path, i);
            s = lf__tok_pretokenizer(j, sub, &a->kids[i], depth + 1);
        }
        return s;
    }
    if (type == 1) {
        bool regex, invert = false;
        int behavior = LF__SPLIT_ISOLATED;
        if ((s = lf__tj_pattern(j, path, obj, &a, &regex)) != LF_OK) return s;
        if ((s = lf__tj_bool(j, path, obj, "invert", &invert)) != LF_OK) return s;
        snprintf(sub, sizeof sub, "%s.behavior", path);
        const lf_node *bh = lf__tj_get(obj, "behavior");
        if (bh) {
            if (bh->type != LF_NODE_STRING) return lf__fail(LF_ERR_FORMAT, "%s: %s: must be a string", j->file, sub);
            for (behavior = 0; lf__split_behaviors[behavior] && strcmp(bh->str, lf__split_behaviors[behavior]); behavior++) {}
            if (!lf__split_behaviors[behavior])
                return lf__fail(LF_ERR_UNSUPPORTED, "%s: %s: unsupported '%s'", j->file, sub, bh->str);
        }
        snprintf(sub, sizeof sub, "%s.pattern.%s", path, regex ? "Regex" : "String");
        return lf__tok_add_split(k, j->file, sub, a->str, a->len, !regex, behavior, invert);
    }
    bool prefix = true, use_regex = true;  // HF's defaults
    if ((s = lf__tj_bool(j, path, obj, "add_prefix_space", &prefix)) != LF_OK) return s;
    if ((s = lf__tj_bool(j, path, obj, "use_regex", &use_regex)) != LF_OK) return s;
    if (prefix) {
        lf__pre pre;
        memset(&pre, 0, sizeof pre);
        pre.kind = LF__PRE_PREFIX_SPACE;
        if ((s = lf__tok_push((void **)&k->pres, &k->n_pres, sizeof pre, &pre, "pre-tokenizers")) != LF_OK) return s;
    }
    if (use_regex &&
        (s = lf__tok_add_split(k, j->file, path, lf__gpt2_regex, strlen(lf__gpt2_regex), false, LF__SPLIT_ISOLATED, false)) != LF_OK)
        return s;
    k->byte_level = true;
    return LF_OK;
}

// Decoder chains we run: [ByteLevel], or per-token Replace/Strip steps, then optionally
// ByteFallback, Fuse, and a Strip of the fused text's start.
static lf_status lf__tok_decoder(const lf__tj *j, const char *path, const lf_node *obj, int depth, bool *fused) {
    lf__tok *k = j->k;
    int type = 0;
    lf_status s = lf__tj_type(j, path, obj, lf__dec_types, &type);
    if (s != LF_OK) return s;
    const lf_node *a;
    char sub[512];
    lf__dec d;
    memset(&d, 0, sizeof d);
    if (type != 0 && k->dec_byte_level)
        return lf__fail(LF_ERR_UNSUPPORTED, "%s: %s: a decoder after ByteLevel is unsupported", j->file, path);
    if (((type == 2 || type == 3) && (k->dec_byte_fallback || *fused)) || (type == 5 && k->dec_byte_fallback && !*fused))
        return lf__fail(LF_ERR_UNSUPPORTED, "%s: %s: '%s' after ByteFallback or Fuse is unsupported", j->file, path,
                        lf__dec_types[type]);
    switch (type) {
    case 0:
        if ((s = lf__tj_array(j, path, obj, "decoders", depth, &a)) != LF_OK) return s;
        for (int i = 0; i < a->n && s == LF_OK; i++) {
            snprintf(sub, sizeof sub, "%s.decoders[%d]", path, i);
            s = lf__tok_decoder(j, sub, &a->kids[i], depth + 1, fused);
        }
        return s;
    case 1:
        if (k->n_decs || *fused) return lf__fail(LF_ERR_UNSUPPORTED, "%s: %s: ByteLevel after other decoders", j->file, path);
        k->dec_byte_level = true;
        return LF_OK;
    case 2:
        d.kind = LF__DEC_REPLACE;
        if ((s = lf__tj_replace(j, path, obj, k, &d.a, &d.b)) != LF_OK) return s;
        break;
    case 3: k->dec_byte_fallback = true; return LF_OK;
    case 4: *fused = true; return LF_OK;
    default: {
        int64_t start = 0, stop = 0;
        if ((s = lf__tj_str(j, path, obj, "content", true, &a)) != LF_OK) return s;
        size_t l = 0;
        if (a->len == 0 || (lf__utf8_dec((const unsigned char *)a->str, &l), l != a->len))
            return lf__fail(LF_ERR_FORMAT, "%s: %s.content: must be one character", j->file, path);
        snprintf(sub, sizeof sub, "%s.start", path);
        if ((s = lf__tj_int(j, sub, lf_node_get(obj, "start"), 0, 1 << 20, &start)) != LF_OK) return s;
        snprintf(sub, sizeof sub, "%s.stop", path);
        if ((s = lf__tj_int(j, sub, lf_node_get(obj, "stop"), 0, 1 << 20, &stop)) != LF_OK) return s;
        if (*fused) {  // on the whole text: only its start can be stripped while streaming
            if (stop != 0 || k->dec_strip_start != 0)
                return lf__fail(LF_ERR_UNSUPPORTED, "%s: %s: Strip of the end of the fused text", j->file, path);
            k->dec_strip_char = lf__utf8_dec((const unsigned char *)a->str, &l);
            k->dec_strip_start = (int)start;
            return LF_OK;
        }
        d.kind = LF__DEC_STRIP, d.start = (int)start, d.stop = (int)stop;
        if ((s = lf__tok_intern(k, a->str, a->len, &d.a)) != LF_OK) return s;
    }
    }
    return lf__tok_push((void **)&k->decs, &k->n_decs, sizeof d, &d, "decoders");
}

static lf_status lf__tok_postprocessor(const lf__tj *j, const char *path, const lf_node *obj, int depth) {
    lf__tok *k = j->k;
    int type = 0;
    lf_status s = lf__tj_type(j, path, obj, lf__post_types, &type);
    if (s != LF_OK) return s;
    const lf_node *a = NULL;
    char sub[512];
    if (type == 0) {
        if ((s = lf__tj_array(j, path, obj, "processors", depth, &a)) != LF_OK) return s;
        for (int i = 0; i < a->n && s == LF_OK; i++) {
            snprintf(sub, sizeof sub, "%s.processors[%d]", path, i);
            s = lf__tok_postprocessor(j, sub, &a->kids[i], depth + 1);
        }
        return s;
    }
    if (type == 1) return LF_OK;  // ByteLevel only adjusts offsets
    const lf_node *single = lf__tj_get(obj, "single"), *specials = lf__tj_get(obj, "special_tokens");
    if (!single || single->type != LF_NODE_ARRAY) return lf__fail(LF_ERR_FORMAT, "%s: %s.single: must be an array", j->file, path);
    int32_t pre[LF__TOK_MAX_TEMPLATE], post[LF__TOK_MAX_TEMPLATE];
    int npre = 0, npost = 0;
    bool seen_a = false;
    for (int i = 0; i < single->n; i++) {
        const lf_node *it = &single->kids[i], *sp = lf__tj_get(it, "SpecialToken"), *name, *ids;
        snprintf(sub, sizeof sub, "%s.single[%d]", path, i);
        if (lf__tj_get(it, "Sequence")) {
            seen_a = true;
            continue;
        }
        if (!sp) return lf__fail(LF_ERR_FORMAT, "%s: %s: must hold SpecialToken or Sequence", j->file, sub);
        if ((s = lf__tj_str(j, sub, sp, "id", true, &name)) != LF_OK) return s;
        ids = lf__tj_get(lf__tj_get(lf__tj_get(obj, "special_tokens"), name->str), "ids");
        if (!specials || !ids || ids->type != LF_NODE_ARRAY)
            return lf__fail(LF_ERR_FORMAT, "%s: %s.special_tokens: no ids for '%s'", j->file, path, name->str);
        for (int m = 0; m < ids->n; m++) {
            int64_t id = 0;
            snprintf(sub, sizeof sub, "%s.special_tokens.%s.ids[%d]", path, name->str, m);
            if ((s = lf__tj_int(j, sub, &ids->kids[m], 0, k->n_vocab - 1, &id)) != LF_OK) return s;
            if ((seen_a ? npost : npre) == LF__TOK_MAX_TEMPLATE)
                return lf__fail(LF_ERR_UNSUPPORTED, "%s: %s: more than %d special tokens", j->file, path, LF__TOK_MAX_TEMPLATE);
            if (seen_a) post[npost++] = (int32_t)id;
            else pre[npre++] = (int32_t)id;
        }
    }
    // a later processor wraps the output of the earlier ones
    if (k->n_prefix + npre > LF__TOK_MAX_TEMPLATE || k->n_suffix + npost > LF__TOK_MAX_TEMPLATE)
        return lf__fail(LF_ERR_UNSUPPORTED, "%s: %s: more than %d special tokens", j->file, path, LF__TOK_MAX_TEMPLATE);
    memmove(k->prefix + npre, k->prefix, (size_t)k->n_prefix * sizeof *k->prefix);
    memcpy(k->prefix, pre, (size_t)npre * sizeof *pre);
    memcpy(k->suffix + k->n_suffix, post, (size_t)npost * sizeof *post);
    k->n_prefix += npre, k->n_suffix += npost;
    return LF_OK;
}

static void lf__tok_bytes_to_unicode(lf__tok *k) {
    uint32_t extra = 256;  // GPT-2 keeps printable Latin-1 bytes as is and moves the rest past 255
    memset(k->char_byte, 0xFF, sizeof k->char_byte);
    for (uint32_t b = 0; b < 256; b++) {
        bool keep = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        k->byte_char[b] = (uint16_t)(keep ? b : extra++);
        k->char_byte[k->byte_char[b]] = (int16_t)b;
    }
}

// Inserts id's string into the lookup table (sized for every token up front).
static void lf__tok_hash_put(lf__tok *k, int32_t id) {
    size_t h = lf__hash_bytes(k->blob + k->pieces[id].off, k->pieces[id].len) & k->hash_mask;
    while (k->hash[h] >= 0) h = (h + 1) & k->hash_mask;
    k->hash[h] = id;
}

static size_t lf__pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c *= 2;
    return c;
}

static void lf__tok_quote(char *dst, size_t cap, const char *s, size_t n) {
    snprintf(dst, cap, "'%.*s%s'", (int)LF__MIN(n, 40), s, n > 40 ? "..." : "");
}

// model.vocab and added_tokens: ids, strings and the lookup table.
static lf_status lf__tok_vocab(const lf__tj *j, const lf_node *model, const lf_node *added) {
    lf__tok *k = j->k;
    const lf_node *vocab = lf__tj_get(model, "vocab");
    char path[128], q[64];
    if (!vocab) return lf__fail(LF_ERR_FORMAT, "%s: model.vocab: missing", j->file);
    if (vocab->type != LF_NODE_OBJECT) return lf__fail(LF_ERR_FORMAT, "%s: model.vocab: must be an object", j->file);
    if (added && added->type != LF_NODE_ARRAY) return lf__fail(LF_ERR_FORMAT, "%s: added_tokens: must be an array", j->file);
    int n_added = added ? added->n : 0;
    int64_t max_id = -1, id = 0;
    lf_status s;
    for (int i = 0; i < vocab->n; i++) {
        lf__tok_quote(q, sizeof q, vocab->kids[i].key, strlen(vocab->kids[i].key));
        snprintf(path, sizeof path, "model.vocab[%s]", q);
        if ((s = lf__tj_int(j, path, &vocab->kids[i], 0, LF_MAX_VOCAB - 1, &id)) != LF_OK) return s;
        max_id = LF__MAX(max_id, id);
    }
    for (int i = 0; i < n_added; i++) {
        snprintf(path, sizeof path, "added_tokens[%d].id", i);
        if ((s = lf__tj_int(j, path, lf_node_get(&added->kids[i], "id"), 0, LF_MAX_VOCAB - 1, &id)) != LF_OK) return s;
        max_id = LF__MAX(max_id, id);
    }
    if (max_id < 0) return lf__fail(LF_ERR_FORMAT, "%s: model.vocab: empty", j->file);
    k->n_vocab = (int32_t)max_id + 1;
    k->pieces = (lf__str *)lf__alloc((size_t)k->n_vocab * sizeof *k->pieces, "token table");
    k->flags = (uint8_t *)lf__calloc((size_t)k->n_vocab, 1, "token table");
    k->hash_mask = lf__pow2_at_least(2 * ((size_t)vocab->n + (size_t)n_added)) - 1;
    k->hash = (int32_t *)lf__alloc((k->hash_mask + 1) * sizeof *k->hash, "token table");
    k->added = (lf__added *)lf__calloc((size_t)n_added, sizeof *k->added, "added tokens");
    if (!k->pieces || !k->flags || !k->hash || !k->added) return LF_ERR_NOMEM;
    memset(k->hash, 0xFF, (k->hash_mask + 1) * sizeof *k->hash);
    for (int32_t i = 0; i < k->n_vocab; i++) k->pieces[i] = (lf__str){0, UINT32_MAX};
    for (int i = 0; i < vocab->n; i++) {
        const lf_node *e = &vocab->kids[i];
        size_t len = strlen(e->key);
        lf__tok_quote(q, sizeof q, e->key, len);
        int32_t v = (int32_t)e->num, other;
        if (len == 0 || len > LF_MAX_TOKEN_BYTES || lf__utf8_check((const unsigned char *)e->key, len) != len)
            return lf__fail(LF_ERR_FORMAT, "%s: model.vocab[%s]: empty, over LF_MAX_TOKEN_BYTES or invalid UTF-8", j->file, q);
        if (k->pieces[v].len != UINT32_MAX)
            return lf__fail(LF_ERR_FORMAT, "%s: model.vocab[%s]: id %d is used twice", j->file, q, v);
        if ((other = lf__tok_lookup(k, e->key, len)) >= 0)
            return lf__fail(LF_ERR_FORMAT, "%s: model.vocab[%s]: duplicate token (ids %d and %d)", j->file, q, other, v);
        if ((s = lf__tok_intern(k, e->key, len, &k->pieces[v])) != LF_OK) return s;
        k->flags[v] = LF__TF_MODEL;
        lf__tok_hash_put(k, v);
    }
    for (int i = 0; i < n_added; i++) {
        const lf_node *e = &added->kids[i], *c;
        lf__added *a = &k->added[k->n_added];
        snprintf(path, sizeof path, "added_tokens[%d]", i);
        bool special = false;
        if ((s = lf__tj_str(j, path, e, "content", true, &c)) != LF_OK) return s;
        if ((s = lf__tj_bool(j, path, e, "single_word", &a->single_word)) != LF_OK ||
            (s = lf__tj_bool(j, path, e, "lstrip", &a->lstrip)) != LF_OK ||
            (s = lf__tj_bool(j, path, e, "rstrip", &a->rstrip)) != LF_OK ||
            (s = lf__tj_bool(j, path, e, "normalized", &a->normalized)) != LF_OK ||
            (s = lf__tj_bool(j, path, e, "special", &special)) != LF_OK)
            return s;
        lf__tok_quote(q, sizeof q, c->str, c->len);
        if (c->len == 0 || c->len > LF_MAX_TOKEN_BYTES)
            return lf__fail(LF_ERR_FORMAT, "%s: %s.content: empty or over LF_MAX_TOKEN_BYTES", j->file, path);
        int32_t v = (int32_t)lf_node_get(e, "id")->num, other = lf__tok_lookup(k, c->str, c->len);
        if (other >= 0 && other != v)
            return lf__fail(LF_ERR_FORMAT, "%s: %s: %s has id %d, but the vocab gives it id %d", j->file, path, q, v, other);
        if (other < 0 && k->pieces[v].len != UINT32_MAX)
            return lf__fail(LF_ERR_FORMAT, "%s: %s: id %d of %s is already the token '%s'", j->file, path, v, q,
                            k->blob + k->pieces[v].off);
        if (other < 0) {
            if ((s = lf__tok_intern(k, c->str, c->len, &k->pieces[v])) != LF_OK) return s;
            lf__tok_hash_put(k, v);
        }
        k->flags[v] |= (uint8_t)(LF__TF_ADDED | (special ? LF__TF_SPECIAL : 0));
        a->id = v, a->content = k->pieces[v];
        k->n_added++;
    }
    return LF_OK;
}

static lf_status lf__tok_merges(const lf__tj *j, const lf_node *model) {
    lf__tok *k = j->k;
    const lf_node *merges = lf__tj_get(model, "merges");
    char q[64], q2[64];
    if (!merges) return lf__fail(LF_ERR_FORMAT, "%s: model.merges: missing", j->file);
    if (merges->type != LF_NODE_ARRAY) return lf__fail(LF_ERR_FORMAT, "%s: model.merges: must be an array", j->file);
    k->merge_mask = lf__pow2_at_least(2 * (size_t)merges->n) - 1;
    k->merges = (lf__merge *)lf__alloc((k->merge_mask + 1) * sizeof *k->merges, "merges");
    if (!k->merges) return LF_ERR_NOMEM;
    for (size_t i = 0; i <= k->merge_mask; i++) k->merges[i] = (lf__merge){0, -1, -1};
    char cat[2 * LF_MAX_TOKEN_BYTES];
    for (int i = 0; i < merges->n; i++) {
        const lf_node *m = &merges->kids[i];
        const char *a, *b;
        size_t la, lb;
        if (m->type == LF_NODE_STRING) {  // "a b": exactly one space, as HF splits it
            const char *sp = (const char *)memchr(m->str, ' ', m->len);
            if (!sp || memchr(sp + 1, ' ', m->len - (size_t)(sp - m->str) - 1))
                return lf__fail(LF_ERR_FORMAT, "%s: model.merges[%d]: expected \"left right\" with one space", j->file, i);
            a = m->str, la = (size_t)(sp - m->str), b = sp + 1, lb = m->len - la - 1;
        } else if (m->type == LF_NODE_ARRAY && m->n == 2 && m->kids[0].type == LF_NODE_STRING &&
                   m->kids[1].type == LF_NODE_STRING) {
            a = m->kids[0].str, la = m->kids[0].len, b = m->kids[1].str, lb = m->kids[1].len;
        } else
            return lf__fail(LF_ERR_FORMAT, "%s: model.merges[%d]: expected \"left right\" or [left, right]", j->file, i);
        int32_t ia = lf__tok_model_id(k, a, la), ib = lf__tok_model_id(k, b, lb), im = -1;
        if (ia < 0 || ib < 0) {
            lf__tok_quote(q, sizeof q, ia < 0 ? a : b, ia < 0 ? la : lb);
            return lf__fail(LF_ERR_FORMAT, "%s: model.merges[%d]: unknown token %s", j->file, i, q);
        }
        if (la + lb <= sizeof cat) {
            memcpy(cat, a, la), memcpy(cat + la, b, lb);
            im = lf__tok_model_id(k, cat, la + lb);
        }
        if (im < 0) {
            lf__tok_quote(q, sizeof q, a, la), lf__tok_quote(q2, sizeof q2, b, lb);
            return lf__fail(LF_ERR_FORMAT, "%s: model.merges[%d]: %s + %s is not in the vocab", j->file, i, q, q2);
        }
        uint64_t key = ((uint64_t)(uint32_t)ia << 32) | (uint32_t)ib;
        size_t h = lf__hash_u64(key) & k->merge_mask;
        while (k->merges[h].id >= 0 && k->merges[h].key != key) h = (h + 1) & k->merge_mask;
        k->merges[h] = (lf__merge){key, i, im};  // a repeated pair takes the later rank, as HF's map does
    }
    return LF_OK;
}

static lf_status lf__tok_model(const lf__tj *j, const lf_node *root) {
    lf__tok *k = j->k;
    const lf_node *model = lf__tj_get(root, "model"), *t, *unk;
    if (!model) return lf__fail(LF_ERR_FORMAT, "%s: model: missing", j->file);
    if (model->type != LF_NODE_OBJECT) return lf__fail(LF_ERR_FORMAT, "%s: model: must be an object", j->file);
    lf_status s = lf__tj_str(j, "model", model, "type", false, &t);
    if (s != LF_OK) return s;
    if (t && strcmp(t->str, "BPE") != 0) return lf__fail(LF_ERR_UNSUPPORTED, "%s: model.type: unsupported '%s'", j->file, t->str);
    if ((s = lf__tok_vocab(j, model, lf__tj_get(root, "added_tokens"))) != LF_OK) return s;
    if ((s = lf__tok_merges(j, model)) != LF_OK) return s;
    if ((s = lf__tj_bool(j, "model", model, "byte_fallback", &k->byte_fallback)) != LF_OK ||
        (s = lf__tj_bool(j, "model", model, "fuse_unk", &k->fuse_unk)) != LF_OK ||
        (s = lf__tj_bool(j, "model", model, "ignore_merges", &k->ignore_merges)) != LF_OK)
        return s;
    const lf_node *dropout = lf__tj_get(model, "dropout");
    if (dropout && !(dropout->type == LF_NODE_NUMBER && dropout->num == 0))
        return lf__fail(LF_ERR_UNSUPPORTED, "%s: model.dropout: unsupported (must be null)", j->file);
    static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        if ((s = lf__tj_str(j, "model", model, affixes[i], false, &t)) != LF_OK) return s;
        if (t && t->len) return lf__fail(LF_ERR_UNSUPPORTED, "%s: model.%s: unsupported '%s'", j->file, affixes[i], t->str);
    }
    if ((s = lf__tj_str(j, "model", model, "unk_token", false, &unk)) != LF_OK) return s;
    k->unk_id = unk ? lf__tok_model_id(k, unk->str, unk->len) : -1;
    if (unk && k->unk_id < 0) return lf__fail(LF_ERR_FORMAT, "%s: model.unk_token: '%s' is not in the vocab", j->file, unk->str);
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        k->fallback_id[b] = lf__tok_model_id(k, name, 6);
        if (b < 128) {
            char c = (char)b;
            k->ascii_id[b] = lf__tok_model_id(k, &c, 1);
        }
    }
    lf__tok_bytes_to_unicode(k);
    for (int b = 0; b < 256; b++) {
        char u[4];
        k->byte_id[b] = lf__tok_model_id(k, u, lf__utf8_enc(k->byte_char[b], u));
    }
    return LF_OK;
}

// -- 5.6 encode

typedef struct lf__sym {
    int32_t id, prev, next;
    uint32_t len;  // bytes covered; 0: merged into its left neighbour
} lf__sym;
typedef struct lf__cand {
    int32_t rank, pos, id;
} lf__cand;
typedef struct lf__span {
    size_t off, len;
    bool match;
} lf__span;

// Scratch of one encode call: nothing here outlives it, so calls can run concurrently.
typedef struct lf__enc {
    const lf__tok *k;
    int32_t *ids;
    size_t n_ids, cap_ids;
    lf__buf norm[2];   // normalizer steps ping-pong between these
    lf__buf text;      // the segment being pre-tokenized (spans point into it)
    lf__buf word;      // a word in the byte-level alphabet
    lf__span *sp[3];   // pre-tokenizer words: current, next, and one split's matches
    size_t nsp[3], capsp[3];
    lf__sym *syms;
    size_t cap_syms;
    lf__cand *heap;
    size_t n_heap, cap_heap;
    lf__u32vec cps;
    lf__re_ctx re;
} lf__enc;

static void lf__enc_free(lf__enc *e) {
    LF_FREE(e->norm[0].data), LF_FREE(e->norm[1].data), LF_FREE(e->text.data), LF_FREE(e->word.data);
    for (int i = 0; i < 3; i++) LF_FREE(e->sp[i]);
    LF_FREE(e->syms), LF_FREE(e->heap), LF_FREE(e->cps.v), LF_FREE(e->re.stk), LF_FREE(e->ids);
}

static lf_status lf__enc_push(lf__enc *e, int32_t id) {
    if (e->n_ids == e->cap_ids && !lf__grow((void **)&e->ids, &e->cap_ids, e->n_ids + 1, sizeof *e->ids, "token ids"))
        return LF_ERR_NOMEM;
    e->ids[e->n_ids++] = id;
    return LF_OK;
}
static lf_status lf__enc_span(lf__enc *e, int which, size_t off, size_t len, bool match) {
    if (e->nsp[which] == e->capsp[which] &&
        !lf__grow((void **)&e->sp[which], &e->capsp[which], e->nsp[which] + 1, sizeof(lf__span), "pre-tokenizer words"))
        return LF_ERR_NOMEM;
    e->sp[which][e->nsp[which]++] = (lf__span){off, len, match};
    return LF_OK;
}

LF__INLINE bool lf__cand_less(const lf__cand *a, const lf__cand *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}
LF__HEAP_DEFINE(lf__cand_heap, lf__cand, lf__cand_less)
static void lf__bpe_candidate(lf__enc *e, int32_t pos) {
    const lf__merge *m = lf__tok_merge(e->k, e->syms[pos].id, e->syms[e->syms[pos].next].id);
    if (m) lf__cand_heap_up(e->heap, e->n_heap++, (lf__cand){m->rank, pos, m->id});  // room reserved by the caller
}

// One word through the BPE model (HF's BPE::tokenize: ignore_merges, merge_word, merge_all).
static lf_status lf__enc_bpe(lf__enc *e, const char *w, size_t n) {
    const lf__tok *k = e->k;
    const unsigned char *u = (const unsigned char *)w;
    if (n == 0) return LF_OK;
    bool from_bytes = false;
    if (k->byte_level) {  // spell the word in the byte-level alphabet, or start from bytes directly
        from_bytes = true;
        for (size_t i = 0; i < n && from_bytes; i++) from_bytes = k->byte_id[u[i]] >= 0;
        if (!from_bytes || k->ignore_merges) {
            e->word.len = 0;
            for (size_t i = 0; i < n; i++) {
                char c[4];
                lf__buf_put(&e->word, c, lf__utf8_enc(k->byte_char[u[i]], c));
            }
            if (e->word.failed) return LF_ERR_NOMEM;
            if (!from_bytes) w = e->word.data, u = (const unsigned char *)w, n = e->word.len;
        }
    }
    if (k->ignore_merges) {
        int32_t id = k->byte_level ? lf__tok_model_id(k, e->word.data, e->word.len) : lf__tok_model_id(k, w, n);
        if (id >= 0) return lf__enc_push(e, id);
    }
    if (n > e->cap_syms && !lf__grow((void **)&e->syms, &e->cap_syms, n, sizeof *e->syms, "BPE symbols")) return LF_ERR_NOMEM;
    // every merge pops one candidate and pushes at most two: at most 3n are ever queued
    if (3 * n > e->cap_heap && !lf__grow((void **)&e->heap, &e->cap_heap, 3 * n, sizeof *e->heap, "BPE heap"))
        return LF_ERR_NOMEM;
    lf__sym *sy = e->syms;
    int32_t m = 0, unk = -1;
    uint32_t unk_len = 0;
    if (from_bytes)
        for (size_t i = 0; i < n; i++) sy[m++] = (lf__sym){k->byte_id[u[i]], 0, 0, 1};
    else
        for (size_t i = 0; i < n;) {  // HF's merge_word, including where a pending unk goes
            size_t l;
            uint32_t c = lf__utf8_dec(u + i, &l);
            int32_t id = c < 128 ? k->ascii_id[c] : lf__tok_model_id(k, w + i, l);
            if (id >= 0) {
                if (unk >= 0) sy[m++] = (lf__sym){unk, 0, 0, unk_len}, unk = -1;
                sy[m++] = (lf__sym){id, 0, 0, (uint32_t)l};
            } else {
                bool all = k->byte_fallback;
                for (size_t b = 0; b < l && all; b++) all = k->fallback_id[u[i + b]] >= 0;
                if (all)
                    for (size_t b = 0; b < l; b++) sy[m++] = (lf__sym){k->fallback_id[u[i + b]], 0, 0, 1};
                else if (k->unk_id >= 0) {
                    if (unk >= 0 && k->fuse_unk) unk_len += (uint32_t)l;
                    else {
                        if (unk >= 0) sy[m++] = (lf__sym){unk, 0, 0, unk_len};
                        unk = k->unk_id, unk_len = (uint32_t)l;
                    }
                }
            }
            i += l;
        }
    if (unk >= 0) sy[m++] = (lf__sym){unk, 0, 0, unk_len};
    if (m == 0) return LF_OK;
    e->n_heap = 0;
    for (int32_t i = 0; i < m; i++) {
        sy[i].prev = i - 1, sy[i].next = i + 1 < m ? i + 1 : -1;
        if (i + 1 < m) lf__bpe_candidate(e, i);
    }
    while (e->n_heap) {
        lf__cand c = lf__cand_heap_pop(e->heap, &e->n_heap);
        lf__sym *s = &sy[c.pos];
        if (s->len == 0 || s->next < 0) continue;
        const lf__merge *mg = lf__tok_merge(k, s->id, sy[s->next].id);
        if (!mg || mg->id != c.id) continue;  // stale: a neighbour has changed since the push
        lf__sym *r = &sy[s->next];
        s->id = c.id, s->len += r->len, r->len = 0, s->next = r->next;
        if (s->next >= 0) sy[s->next].prev = c.pos;
        if (s->prev >= 0) lf__bpe_candidate(e, s->prev);
        if (s->next >= 0) lf__bpe_candidate(e, c.pos);
    }
    for (int32_t i = 0; i >= 0; i = sy[i].next) {
        lf_status st = lf__enc_push(e, sy[i].id);
        if (st != LF_OK) return st;
    }
    return LF_OK;
}

// One Split step over the word e->sp[0][w], appending the resulting words to e->sp[1]
// (NormalizedString::split: find the matches, apply the behavior, drop empty pieces).
static lf_status lf__enc_split(lf__enc *e, const lf__pre *pre, lf__span w) {
    lf__re_ctx *c = &e->re;
    c->re = &pre->re, c->s = (const unsigned char *)e->text.data + w.off, c->n = w.len, c->top = 0;
    e->nsp[2] = 0;
    size_t prev = 0, last_end = 0, ms, me, lme = SIZE_MAX;
    lf_status s;
    while (last_end <= w.len) {  // the onig crate's find_iter
        int r = lf__re_find(c, last_end, &ms, &me);
        if (r < 0) return (lf_status)r;
        if (r == 0) break;
        if (ms == me && lme == me) {  // no empty match right after the previous match
            size_t l = 1;
            if (last_end < w.len && c->s[last_end] >= 0x80) lf__utf8_dec(c->s + last_end, &l);
            last_end += l;
            continue;
        }
        last_end = lme = me;
        if (prev != ms && (s = lf__enc_span(e, 2, prev, ms - prev, pre->invert)) != LF_OK) return s;
        if ((s = lf__enc_span(e, 2, ms, me - ms, !pre->invert)) != LF_OK) return s;
        prev = me;
    }
    if (prev != w.len && (s = lf__enc_span(e, 2, prev, w.len - prev, pre->invert)) != LF_OK) return s;
    lf__span *m = e->sp[2];
    size_t n = e->nsp[2], first = e->nsp[1];
    bool prev_match = false;
    for (size_t i = 0; i < n; i++) {
        size_t j = pre->behavior == LF__SPLIT_MERGED_NEXT ? n - 1 - i : i;  // that one folds from the end
        bool extend = false;
        switch (pre->behavior) {
        case LF__SPLIT_REMOVED: if (m[j].match) continue; break;
        case LF__SPLIT_CONTIGUOUS: extend = i > 0 && m[j].match == prev_match; break;
        case LF__SPLIT_MERGED_PREV: case LF__SPLIT_MERGED_NEXT: extend = i > 0 && m[j].match && !prev_match; break;
        default: break;
        }
        prev_match = m[j].match;
        if (!extend) {
            if ((s = lf__enc_span(e, 1, m[j].off, m[j].len, false)) != LF_OK) return s;
            continue;
        }
        lf__span *last = &e->sp[1][e->nsp[1] - 1];
        if (pre->behavior == LF__SPLIT_MERGED_NEXT) last->len += last->off - m[j].off, last->off = m[j].off;
        else last->len = m[j].off + m[j].len - last->off;
    }
    if (pre->behavior == LF__SPLIT_MERGED_NEXT)
        for (size_t a = first, b = e->nsp[1]; a + 1 < b; a++, b--) {
            lf__span t = e->sp[1][a];
            e->sp[1][a] = e->sp[1][b - 1], e->sp[1][b - 1] = t;
        }
    size_t keep = first;  // empty pieces are dropped
    for (size_t i = first; i < e->nsp[1]; i++)
        if (e->sp[1][i].len) e->sp[1][keep++] = e->sp[1][i];
    e->nsp[1] = keep;
    for (size_t i = first; i < keep; i++) e->sp[1][i].off += w.off;
    return LF_OK;
}

// Pre-tokenizes a normalized segment and runs the model on each word.
static lf_status lf__enc_words(lf__enc *e, const char *s, size_t n) {
    const lf__tok *k = e->k;
    lf_status st;
    if (n == 0) return LF_OK;
    e->text.len = 0;
    lf__buf_put(&e->text, s, n);
    if (e->text.failed) return LF_ERR_NOMEM;
    e->nsp[0] = 0;
    if ((st = lf__enc_span(e, 0, 0, n, false)) != LF_OK) return st;
    for (int p = 0; p < k->n_pres; p++) {
        const lf__pre *pre = &k->pres[p];
        e->nsp[1] = 0;
        for (size_t i = 0; i < e->nsp[0]; i++) {
            lf__span w = e->sp[0][i];
            if (pre->kind == LF__PRE_SPLIT) st = lf__enc_split(e, pre, w);
            else if (e->text.data[w.off] == ' ') st = lf__enc_span(e, 1, w.off, w.len, false);
            else {  // ByteLevel's add_prefix_space: the word gets a space in front
                size_t off = e->text.len;  // reserve first: the copy reads from the same buffer
                if (!lf__grow((void **)&e->text.data, &e->text.cap, off + w.len + 2, 1, "pre-tokenizer text"))
                    return LF_ERR_NOMEM;
                lf__buf_put(&e->text, " ", 1);
                lf__buf_put(&e->text, e->text.data + w.off, w.len);
                st = e->text.failed ? LF_ERR_NOMEM : lf__enc_span(e, 1, off, w.len + 1, false);
            }
            if (st != LF_OK) return st;
        }
        lf__span *t = e->sp[0];
        e->sp[0] = e->sp[1], e->sp[1] = t;
        size_t c = e->capsp[0];
        e->capsp[0] = e->capsp[1], e->capsp[1] = c;
        e->nsp[0] = e->nsp[1];
    }
    for (size_t i = 0; i < e->nsp[0]; i++) {
        const char *w = e->text.data + e->sp[0][i].off;
        size_t n = e->sp[0][i].len, start = 0;
        // SentencePiece-style files have no pre-tokenizer: the whole text is one word. When no
        // token spans "x▁", cutting there gives the same merges and keeps the words short.
        for (size_t j = 1; k->split_metaspace && j + 3 <= n; j++)
            if (memcmp(w + j, "\xE2\x96\x81", 3) == 0 && (j < 3 || memcmp(w + j - 3, "\xE2\x96\x81", 3) != 0)) {
                if ((st = lf__enc_bpe(e, w + start, j - start)) != LF_OK) return st;
                start = j;
            }
        if ((st = lf__enc_bpe(e, w + start, n - start)) != LF_OK) return st;
    }
    return LF_OK;
}

// Runs the normalizer over s; *out points into e->norm (or at s when there is none).
static lf_status lf__enc_normalize(lf__enc *e, const char *s, size_t n, const char **out, size_t *out_n) {
    const lf__tok *k = e->k;
    *out = s, *out_n = n;
    for (int i = 0; i < k->n_norms; i++) {
        const lf__norm *nm = &k->norms[i];
        lf__buf *dst = &e->norm[i & 1];
        const char *src = *out, *a = k->blob + nm->a.off, *b = k->blob + nm->b.off;
        size_t len = *out_n;
        dst->len = 0;
        switch (nm->kind) {
        case LF__NORM_NFC: case LF__NORM_NFD:
            if (!lf__uc_normalize(src, len, nm->kind == LF__NORM_NFC, &e->cps, dst)) return LF_ERR_NOMEM;
            break;
        case LF__NORM_PREPEND:
            if (len) lf__buf_put(dst, a, nm->a.len);
            lf__buf_put(dst, src, len);
            break;
        case LF__NORM_REPLACE:
            for (size_t j = 0; j < len;) {
                if (len - j >= nm->a.len && memcmp(src + j, a, nm->a.len) == 0) {
                    lf__buf_put(dst, b, nm->b.len);
                    j += nm->a.len;
                } else
                    lf__buf_put(dst, src + j++, 1);
            }
            break;
        default: {
            size_t lo = 0, hi = len, l;
            while (nm->left && lo < hi && lf__uc_is_space(lf__utf8_dec((const unsigned char *)src + lo, &l))) lo += l;
            while (nm->right && hi > lo) {
                size_t c = hi - 1;
                while (c > lo && ((unsigned char)src[c] & 0xC0) == 0x80) c--;
                if (!lf__uc_is_space(lf__utf8_dec((const unsigned char *)src + c, &l))) break;
                hi = c;
            }
            lf__buf_put(dst, src + lo, hi - lo);
        }
        }
        if (dst->failed) return LF_ERR_NOMEM;
        if (!dst->data) lf__buf_put(dst, "", 0);
        *out = dst->data, *out_n = dst->len;
    }
    return LF_OK;
}

static bool lf__is_word_char(uint32_t c) { return ((LF__GCM_L | LF__GCM_N) >> lf__uc_gc_of(c)) & 1; }

static lf_status lf__enc_text(lf__enc *e, const char *s, size_t n, bool normalized);

// Splits s on one set of added tokens (AddedVocabulary::find_matches) and hands the text
// between them to the next stage.
static lf_status lf__enc_added(lf__enc *e, const lf__matchset *ms, const char *s, size_t n) {
    const lf__tok *k = e->k;
    const unsigned char *u = (const unsigned char *)s;
    size_t start_offset = 0, p = 0;
    lf_status st;
    while (p < n) {
        const lf__added *hit = NULL;
        for (int32_t i = ms->start[u[p]]; i < ms->start[u[p] + 1] && !hit; i++) {
            const lf__added *a = &k->added[ms->order[i]];
            lf__str t = ms->normalized ? a->norm : a->content;
            if (t.len <= n - p && memcmp(s + p, k->blob + t.off, t.len) == 0) hit = a;
        }
        if (!hit) {
            p++;
            continue;
        }
        size_t start = p, stop = p + (ms->normalized ? hit->norm.len : hit->content.len), l;
        p = stop;
        if (hit->single_word) {
            bool word_before = false, word_after = stop < n && lf__is_word_char(lf__utf8_dec(u + stop, &l));
            if (start > 0) {
                size_t c = start - 1;
                while (c > 0 && (u[c] & 0xC0) == 0x80) c--;
                word_before = lf__is_word_char(lf__utf8_dec(u + c, &l));
            }
            if (word_before || word_after) continue;
        }
        if (hit->lstrip) {
            size_t ns = start;
            while (ns > 0) {
                size_t c = ns - 1;
                while (c > 0 && (u[c] & 0xC0) == 0x80) c--;
                if (!lf__uc_is_space(lf__utf8_dec(u + c, &l))) break;
                ns = c;
            }
            start = LF__MAX(ns, start_offset);
        }
        if (hit->rstrip)
            while (stop < n && lf__uc_is_space(lf__utf8_dec(u + stop, &l))) stop += l;
        if (start_offset < start && (st = lf__enc_text(e, s + start_offset, start - start_offset, ms->normalized)) != LF_OK)
            return st;
        if ((st = lf__enc_push(e, hit->id)) != LF_OK) return st;
        start_offset = stop;
    }
    return start_offset < n ? lf__enc_text(e, s + start_offset, n - start_offset, ms->normalized) : LF_OK;
}

// Text between added tokens: raw text is normalized and split on the normalized added tokens;
// normalized text goes to the pre-tokenizer.
static lf_status lf__enc_text(lf__enc *e, const char *s, size_t n, bool normalized) {
    if (normalized) return lf__enc_words(e, s, n);
    const char *ns;
    size_t nn;
    lf_status st = lf__enc_normalize(e, s, n, &ns, &nn);
    return st != LF_OK ? st : lf__enc_added(e, &e->k->normed, ns, nn);
}

// -- 5.7 decode and streaming decode
//
// ON DECODING: HF runs the decoder chain over the list of token strings. The chains we accept
// reduce to per-token steps, so one token at a time gives the same text, provided that
//   - ByteLevel bytes go through one UTF-8 assembler for the whole stream (String::
//     from_utf8_lossy: one U+FFFD per maximal invalid subpart, one for an incomplete tail);
//   - a run of <0xXX> tokens is held until it ends, then emitted as UTF-8 if it is valid and
//     as one U+FFFD per byte if not (ByteFallback);
//   - a Strip after Fuse removes characters from the start of the whole text;
//   - with no decoder at all, tokens are joined with single spaces.

static lf_status lf__stream_put(lf_tok_stream *s, const char *p, size_t n) {
    if (!lf__grow((void **)&s->out_, &s->out_cap_, s->out_len_ + n + 1, 1, "decoded text")) return LF_ERR_NOMEM;
    memcpy(s->out_ + s->out_len_, p, n);
    s->out_len_ += n;
    s->out_[s->out_len_] = 0;
    return LF_OK;
}

// Appends valid UTF-8 to the output, minus what the Strip decoder removes from the start.
static lf_status lf__stream_text(lf_tok_stream *s, const char *p, size_t n) {
    const lf__tok *k = s->tok->impl_;
    while (s->strip_left > 0 && n > 0) {
        size_t l;
        if (lf__utf8_dec((const unsigned char *)p, &l) != k->dec_strip_char) {
            s->strip_left = 0;
            break;
        }
        p += l, n -= l, s->strip_left--;
    }
    return n ? lf__stream_put(s, p, n) : LF_OK;
}

// The byte-level assembler: complete characters go out, invalid bytes become U+FFFD.
static lf_status lf__stream_bytes(lf_tok_stream *s, const unsigned char *p, size_t n) {
    lf_status st = LF_OK;
    for (size_t i = 0; i < n && st == LF_OK; i++) {
        unsigned b = p[i], lo, hi;
        if (s->n_utf8 > 0) {
            unsigned need = (unsigned)lf__utf8_need(s->utf8[0], &lo, &hi);
            if (s->n_utf8 > 1) lo = 0x80, hi = 0xBF;
            if (b >= lo && b <= hi) {
                s->utf8[s->n_utf8++] = (unsigned char)b;
                if ((unsigned)s->n_utf8 == need) st = lf__stream_text(s, (const char *)s->utf8, need), s->n_utf8 = 0;
                continue;
            }
            s->n_utf8 = 0;  // the maximal subpart so far is invalid; b starts afresh
            if ((st = lf__stream_text(s, LF__UTF8_REPLACEMENT, 3)) != LF_OK) break;
        }
        int need = lf__utf8_need(b, &lo, &hi);
        char c = (char)b;
        if (need == 1) st = lf__stream_text(s, &c, 1);
        else if (need == 0) st = lf__stream_text(s, LF__UTF8_REPLACEMENT, 3);
        else s->utf8[s->n_utf8++] = (unsigned char)b;
    }
    return st;
}

static lf_status lf__stream_end_run(lf_tok_stream *s) {
    lf_status st = LF_OK;
    if (s->run_len_ == 0) return LF_OK;
    if (lf__utf8_check(s->run_, s->run_len_) == s->run_len_) st = lf__stream_text(s, (const char *)s->run_, s->run_len_);
    else
        for (size_t i = 0; i < s->run_len_ && st == LF_OK; i++) st = lf__stream_text(s, LF__UTF8_REPLACEMENT, 3);
    s->run_len_ = 0;
    return st;
}

// Applies the per-token decoder steps to piece, into buf.
static lf_status lf__stream_steps(const lf__tok *k, const char *piece, size_t n, lf__buf *buf) {
    lf__buf tmp;
    memset(&tmp, 0, sizeof tmp);
    buf->len = 0;
    lf__buf_put(buf, piece, n);
    for (int i = 0; i < k->n_decs && !buf->failed; i++) {
        const lf__dec *d = &k->decs[i];
        const char *src = buf->data, *a = k->blob + d->a.off;
        size_t len = buf->len, lo = 0, hi = len;
        tmp.len = 0;
        if (d->kind == LF__DEC_REPLACE) {
            for (size_t j = 0; j < len;) {
                if (len - j >= d->a.len && memcmp(src + j, a, d->a.len) == 0) {
                    lf__buf_put(&tmp, k->blob + d->b.off, d->b.len);
                    j += d->a.len;
                } else
                    lf__buf_put(&tmp, src + j++, 1);
            }
        } else {
            for (int c = 0; c < d->start && lo < hi && memcmp(src + lo, a, d->a.len) == 0; c++) lo += d->a.len;
            for (int c = 0; c < d->stop && hi - lo >= d->a.len && memcmp(src + hi - d->a.len, a, d->a.len) == 0; c++)
                hi -= d->a.len;
            lf__buf_put(&tmp, src + lo, hi - lo);
        }
        lf__buf swap = *buf;
        *buf = tmp, tmp = swap;
    }
    bool failed = buf->failed || tmp.failed;
    LF_FREE(tmp.data);
    return failed ? LF_ERR_NOMEM : LF_OK;
}

// Decodes one id into the stream's pending output.
static lf_status lf__stream_feed(lf_tok_stream *s, int32_t id) {
    const lf__tok *k = s->tok->impl_;
    if (id < 0 || id >= k->n_vocab) return lf__fail(LF_ERR_ARG, "id %d is out of range [0, %d)", id, k->n_vocab);
    if (k->pieces[id].len == UINT32_MAX || (s->skip_special && (k->flags[id] & LF__TF_SPECIAL))) return LF_OK;
    const char *piece = k->blob + k->pieces[id].off;
    size_t n = k->pieces[id].len;
    lf_status st = LF_OK;
    if (!k->has_decoder) {
        if (s->started_ && (st = lf__stream_put(s, " ", 1)) != LF_OK) return st;
        s->started_ = true;
        return lf__stream_put(s, piece, n);
    }
    if (k->dec_byte_level) {  // characters back to bytes; a token with others passes as is
        unsigned char bytes[LF_MAX_TOKEN_BYTES];
        size_t nb = 0, l;
        bool all = true;
        for (size_t i = 0; i < n && all; i += l) {
            uint32_t c = lf__utf8_dec((const unsigned char *)piece + i, &l);
            all = c < sizeof k->char_byte / sizeof *k->char_byte && k->char_byte[c] >= 0;
            if (all) bytes[nb++] = (unsigned char)k->char_byte[c];
        }
        return all ? lf__stream_bytes(s, bytes, nb) : lf__stream_bytes(s, (const unsigned char *)piece, n);
    }
    lf__buf buf = {s->tmp_, 0, s->tmp_cap_, false};
    st = lf__stream_steps(k, piece, n, &buf);
    s->tmp_ = buf.data, s->tmp_cap_ = buf.cap;
    if (st != LF_OK) return st;
    const char *t = buf.data ? buf.data : "";
    if (k->dec_byte_fallback && buf.len == 6 && memcmp(t, "<0x", 3) == 0 && t[5] == '>' && lf__hexval(t[3]) >= 0 &&
        lf__hexval(t[4]) >= 0) {
        if (!lf__grow((void **)&s->run_, &s->run_cap_, s->run_len_ + 1, 1, "byte run")) return LF_ERR_NOMEM;
        s->run_[s->run_len_++] = (unsigned char)(lf__hexval(t[3]) * 16 + lf__hexval(t[4]));
        return LF_OK;
    }
    if ((st = lf__stream_end_run(s)) != LF_OK) return st;
    return lf__stream_text(s, t, buf.len);
}

static lf_status lf__stream_finish(lf_tok_stream *s) {
    lf_status st = lf__stream_end_run(s);
    if (st == LF_OK && s->n_utf8 > 0) st = lf__stream_text(s, LF__UTF8_REPLACEMENT, 3), s->n_utf8 = 0;
    return st;
}

// Hands the output of this call to the caller; it stays in s until the next call.
static lf_status lf__stream_out(lf_tok_stream *s, lf_status st, const char **text, size_t *len) {
    if (st == LF_OK) st = lf__stream_put(s, "", 0);  // NUL-terminated, even when empty
    *text = st == LF_OK ? s->out_ : "", *len = st == LF_OK ? s->out_len_ : 0;
    s->out_len_ = 0;
    return st;
}

// -- 5.8 chat templates
//
// ON CHAT TEMPLATES: we do not run Jinja. Each format is a small renderer that reproduces one
// family's published template byte for byte (Python's str.strip() whitespace included), and
// tokenizer_config.json's chat_template is recognized by substrings only those templates have.

typedef struct lf__chat {
    const lf_chat_msg *m;
    int n;
    bool gen, no_think;
    int flags;
    const char *bos, *eos, *default_system;
    lf__buf out;
} lf__chat;

static bool lf__is_role(const lf_chat_msg *m, const char *role) { return strcmp(m->role, role) == 0; }

// Python's str.strip() (whitespace) or str.strip(ch), on s[0..n).
static void lf__py_strip(const char **s, size_t *n, int ch, bool left, bool right) {
    const unsigned char *u = (const unsigned char *)*s;
    size_t lo = 0, hi = *n, l;
    while (left && lo < hi && (ch ? u[lo] == ch : lf__uc_is_pyspace(lf__utf8_dec(u + lo, &l)))) lo += ch ? 1 : l;
    while (right && hi > lo) {
        size_t c = hi - 1;
        while (c > lo && (u[c] & 0xC0) == 0x80) c--;
        if (ch ? u[c] != ch : !lf__uc_is_pyspace(lf__utf8_dec(u + c, &l))) break;
        hi = c;
    }
    *s += lo, *n = hi - lo;
}

static void lf__chat_put(lf__chat *c, const char *s, size_t n) { lf__buf_put(&c->out, s, n); }
static void lf__chat_puts(lf__chat *c, const char *s) { lf__buf_puts(&c->out, s); }
static void lf__chat_put_stripped(lf__chat *c, const char *s, int ch, bool left, bool right) {
    size_t n = strlen(s);
    lf__py_strip(&s, &n, ch, left, right);
    lf__chat_put(c, s, n);
}

static const char *lf__strstr_last(const char *s, const char *needle) {
    const char *last = NULL;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle)) last = p;
    return last;
}

// Qwen2.5 / Qwen3 (flags LF__CHAT_THINK).
static lf_status lf__chat_chatml(lf__chat *c) {
    const lf_chat_msg *m = c->m;
    int n = c->n, last_query = n - 1;
    if (n == 0) return lf__fail(LF_ERR_ARG, "chat: the chatml template needs at least one message");
    if (lf__is_role(&m[0], "system") || c->default_system) {
        lf__chat_puts(c, "<|im_start|>system\n");
        lf__chat_puts(c, lf__is_role(&m[0], "system") ? m[0].content : c->default_system);
        lf__chat_puts(c, "<|im_end|>\n");
    }
    for (int i = n - 1; i >= 0; i--) {  // the last user turn that is not a tool response
        size_t l = strlen(m[i].content), tl = strlen("</tool_response>");
        bool tool_resp = strncmp(m[i].content, "<tool_response>", 15) == 0 && l >= tl &&
                         strcmp(m[i].content + l - tl, "</tool_response>") == 0;
        if (lf__is_role(&m[i], "user") && !tool_resp) {
            last_query = i;
            break;
        }
    }
    for (int i = 0; i < n; i++) {
        const char *role = m[i].role, *content = m[i].content;
        if (lf__is_role(&m[i], "user") || (lf__is_role(&m[i], "system") && i > 0)) {
            lf__chat_puts(c, "<|im_start|>"), lf__chat_puts(c, role), lf__chat_puts(c, "\n");
            lf__chat_puts(c, content), lf__chat_puts(c, "<|im_end|>\n");
        } else if (lf__is_role(&m[i], "assistant")) {
            lf__chat_puts(c, "<|im_start|>assistant\n");
            if (m[i].n_tool_calls > 0 && !(c->flags & LF__CHAT_THINK))
                return lf__fail(LF_ERR_UNSUPPORTED, "chat: messages[%d]: tool calls are rendered for Qwen3 only", i);
            bool think = c->flags & LF__CHAT_THINK;
            const char *end = think && !m[i].reasoning ? lf__strstr_last(content, "</think>") : NULL;
            const char *reason = think && m[i].reasoning ? m[i].reasoning : "", *body = content;
            size_t rlen = strlen(reason), blen = strlen(content);
            if (end) {  // reasoning: before the first </think>, after the last <think> in it
                body = end + 8, blen = strlen(body);
                lf__py_strip(&body, &blen, '\n', true, false);
                const char *first = strstr(content, "</think>");
                reason = content, rlen = (size_t)(first - content);
                lf__py_strip(&reason, &rlen, '\n', false, true);
                const char *open = NULL;
                for (const char *p = reason; p + 7 <= reason + rlen; p++)
                    if (memcmp(p, "<think>", 7) == 0) open = p;
                if (open) rlen -= (size_t)(open + 7 - reason), reason = open + 7;
                lf__py_strip(&reason, &rlen, '\n', true, false);
            }
            if ((c->flags & LF__CHAT_THINK) && i > last_query && (i == n - 1 || rlen > 0)) {
                lf__chat_puts(c, "<think>\n");
                lf__py_strip(&reason, &rlen, '\n', true, true);
                lf__chat_put(c, reason, rlen);
                lf__chat_puts(c, "\n</think>\n\n");
                lf__py_strip(&body, &blen, '\n', true, false);
            }
            lf__chat_put(c, body, blen);
            for (int j = 0; j < m[i].n_tool_calls; j++) {
                const lf_chat_tool_call *tc = &m[i].tool_calls[j];
                if (!tc->name || !tc->arguments)
                    return lf__fail(LF_ERR_ARG, "chat: messages[%d].tool_calls[%d]: NULL name or arguments", i, j);
                if (j > 0 || blen > 0) lf__chat_puts(c, "\n");
                lf__chat_puts(c, "<tool_call>\n{\"name\": \""), lf__chat_puts(c, tc->name);
                lf__chat_puts(c, "\", \"arguments\": "), lf__chat_puts(c, tc->arguments), lf__chat_puts(c, "}\n</tool_call>");
            }
            lf__chat_puts(c, "<|im_end|>\n");
        } else if (lf__is_role(&m[i], "tool")) {
            if (i == 0 || !lf__is_role(&m[i - 1], "tool")) lf__chat_puts(c, "<|im_start|>user");
            lf__chat_puts(c, "\n<tool_response>\n"), lf__chat_puts(c, content), lf__chat_puts(c, "\n</tool_response>");
            if (i == n - 1 || !lf__is_role(&m[i + 1], "tool")) lf__chat_puts(c, "<|im_end|>\n");
        }
    }
    if (c->gen) lf__chat_puts(c, "<|im_start|>assistant\n");
    if (c->gen && c->no_think && (c->flags & LF__CHAT_THINK)) lf__chat_puts(c, "<think>\n\n</think>\n\n");
    return LF_OK;
}

static lf_status lf__chat_llama3(lf__chat *c) {
    for (int i = 0; i < c->n; i++) {
        if (i == 0) lf__chat_puts(c, c->bos);
        lf__chat_puts(c, "<|start_header_id|>"), lf__chat_puts(c, c->m[i].role), lf__chat_puts(c, "<|end_header_id|>\n\n");
        lf__chat_put_stripped(c, c->m[i].content, 0, true, true);
        lf__chat_puts(c, "<|eot_id|>");
    }
    if (c->gen) lf__chat_puts(c, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    return LF_OK;
}

// Llama-2 (system folded into the first user turn) and Mistral v0.1 (no system role).
static lf_status lf__chat_inst(lf__chat *c, bool llama2) {
    const lf_chat_msg *m = c->m;
    int n = c->n, first = 0;
    const char *sys = NULL;
    if (llama2 && n == 0) return lf__fail(LF_ERR_ARG, "chat: the llama2 template needs at least one message");
    if (llama2 && lf__is_role(&m[0], "system")) sys = m[0].content, first = 1;
    if (!llama2) lf__chat_puts(c, c->bos);
    for (int i = first; i < n; i++) {
        int idx = i - first;
        bool user = lf__is_role(&m[i], "user");
        if (user != (idx % 2 == 0))
            return lf__fail(LF_ERR_ARG, "chat: messages[%d]: conversation roles must alternate user/assistant/user/assistant/...", i);
        if (!llama2 && !user && !lf__is_role(&m[i], "assistant"))
            return lf__fail(LF_ERR_ARG, "chat: messages[%d]: only user and assistant roles are supported", i);
        lf__buf content;
        memset(&content, 0, sizeof content);
        if (idx == 0 && sys) lf__buf_puts(&content, "<<SYS>>\n"), lf__buf_puts(&content, sys), lf__buf_puts(&content, "\n<</SYS>>\n\n");
        lf__buf_puts(&content, m[i].content);
        if (content.failed) return LF_ERR_NOMEM;
        if (user) {
            if (llama2) lf__chat_puts(c, c->bos);
            lf__chat_puts(c, "[INST] ");
            if (llama2) lf__chat_put_stripped(c, content.data, 0, true, true);
            else lf__chat_puts(c, content.data);
            lf__chat_puts(c, " [/INST]");
        } else if (lf__is_role(&m[i], "assistant")) {
            if (llama2) lf__chat_puts(c, " "), lf__chat_put_stripped(c, content.data, 0, true, true), lf__chat_puts(c, " ");
            else lf__chat_puts(c, content.data);
            lf__chat_puts(c, c->eos);
        }
        LF_FREE(content.data);
    }
    return LF_OK;
}

static lf_status lf__chat_plain(lf__chat *c) {
    for (int i = 0; i < c->n; i++) {
        const lf_chat_msg *m = &c->m[i];
        if (lf__is_role(m, "system") && i == 0) lf__chat_puts(c, m->content), lf__chat_puts(c, "\n");
        else if (lf__is_role(m, "user")) lf__chat_puts(c, "Instruction: "), lf__chat_puts(c, m->content), lf__chat_puts(c, "\n");
        else if (lf__is_role(m, "assistant"))
            lf__chat_puts(c, "Response: "), lf__chat_puts(c, m->content), lf__chat_puts(c, "\nEND\n");
        else
            return lf__fail(LF_ERR_ARG, "chat: messages[%d]: role '%s' is not supported by the plain format", i, m->role);
    }
    if (c->gen) lf__chat_puts(c, "Response:");
    return LF_OK;
}

// Recognizes a chat_template by substrings that only the formats we render have.
static lf_chat_template lf__chat_detect(const char *tmpl, int *flags, const char **default_system) {
    static const char *const qwen_systems[] = {"You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
                                               "You are a helpful assistant."};
    *flags = 0, *default_system = NULL;
    if (strstr(tmpl, "<|im_start|>")) {
        if (strstr(tmpl, "<think>")) *flags |= LF__CHAT_THINK;
        for (int i = 0; i < 2 && !*default_system && !*flags; i++)
            if (strstr(tmpl, qwen_systems[i])) *default_system = qwen_systems[i];
        return LF_CHAT_CHATML;
    }
    if (strstr(tmpl, "<|start_header_id|>") && !strstr(tmpl, "Cutting Knowledge Date")) return LF_CHAT_LLAMA3;
    if (strstr(tmpl, "[INST]") && strstr(tmpl, "<<SYS>>")) return LF_CHAT_LLAMA2;
    if (strstr(tmpl, "[INST]") && strstr(tmpl, "Only user and assistant roles are supported")) return LF_CHAT_MISTRAL;
    return LF_CHAT_DEFAULT;
}

LF_API lf_status lf_chat_template_from_name(const char *name, lf_chat_template *out) {
    static const char *const names[] = {"default", "chatml", "llama3", "llama2", "mistral", "plain"};
    for (int i = 0; name && i < 6; i++)
        if (strcmp(name, names[i]) == 0) return *out = (lf_chat_template)i, LF_OK;
    return lf__fail(LF_ERR_ARG, "unknown chat template '%s' (expected default, chatml, llama3, llama2, mistral or plain)",
                    name ? name : "(null)");
}

LF_API lf_status lf_chat_render(const lf_tokenizer *t, lf_chat_template tmpl, const lf_chat_msg *msgs, int n,
                                unsigned flags, char **out, size_t *len) {
    *out = NULL, *len = 0;
    const lf__tok *k = t ? t->impl_ : NULL;
    if (n < 0 || (n > 0 && !msgs)) return lf__fail(LF_ERR_ARG, "lf_chat_render: bad message array (n = %d)", n);
    for (int i = 0; i < n; i++)
        if (!msgs[i].role || !msgs[i].content) return lf__fail(LF_ERR_ARG, "lf_chat_render: messages[%d]: NULL role or content", i);
    if (tmpl == LF_CHAT_DEFAULT) {
        if (!k) return lf__fail(LF_ERR_ARG, "lf_chat_render: LF_CHAT_DEFAULT needs a loaded tokenizer");
        if (k->chat_unknown)
            return lf__fail(LF_ERR_UNSUPPORTED, "%s: chat_template: not a format LargeForge renders (chatml, llama3, llama2, "
                            "mistral); pick one by name", k->config_name);
        tmpl = t->chat != LF_CHAT_DEFAULT ? t->chat : LF_CHAT_PLAIN;
    }
    lf__chat c;
    memset(&c, 0, sizeof c);
    c.m = msgs, c.n = n, c.gen = flags & LF_CHAT_GENERATION_PROMPT, c.no_think = flags & LF_CHAT_NO_THINKING;
    c.bos = tmpl == LF_CHAT_LLAMA3 ? "<|begin_of_text|>" : "<s>", c.eos = "</s>";
    if (k && k->bos.len) c.bos = k->blob + k->bos.off;
    if (k && k->eos.len) c.eos = k->blob + k->eos.off;
    if (k && tmpl == t->chat) {
        c.flags = k->chat_flags;
        if (k->chat_default_system.len) c.default_system = k->blob + k->chat_default_system.off;
    }
    lf_status s;
    switch (tmpl) {
    case LF_CHAT_CHATML: s = lf__chat_chatml(&c); break;
    case LF_CHAT_LLAMA3: s = lf__chat_llama3(&c); break;
    case LF_CHAT_LLAMA2: s = lf__chat_inst(&c, true); break;
    case LF_CHAT_MISTRAL: s = lf__chat_inst(&c, false); break;
    case LF_CHAT_PLAIN: s = lf__chat_plain(&c); break;
    default: s = lf__fail(LF_ERR_ARG, "lf_chat_render: unknown template %d", (int)tmpl);
    }
    if (s == LF_OK && !c.out.data) lf__buf_put(&c.out, "", 0);
    if (s == LF_OK && c.out.failed) s = LF_ERR_NOMEM;
    if (s != LF_OK) {
        LF_FREE(c.out.data);
        return s;
    }
    *out = c.out.data, *len = c.out.len;
    return LF_OK;
}

// -- 5.9 public functions

typedef struct lf__mkey {
    uint8_t first;
    uint32_t len;
    int32_t idx;
} lf__mkey;
static int lf__mkey_cmp(const void *pa, const void *pb) {
    const lf__mkey *a = (const lf__mkey *)pa, *b = (const lf__mkey *)pb;
    if (a->first != b->first) return a->first < b->first ? -1 : 1;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;  // longest first
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static lf_status lf__tok_matchset(lf__tok *k, lf__matchset *m, bool normalized) {
    int n = 0;
    m->normalized = normalized;
    for (int i = 0; i < k->n_added; i++) n += k->added[i].normalized == normalized;
    lf__mkey *keys = (lf__mkey *)lf__calloc((size_t)n + 1, sizeof *keys, "added tokens");
    m->order = (int32_t *)lf__calloc((size_t)n + 1, sizeof *m->order, "added tokens");
    if (!keys || !m->order) return LF_FREE(keys), LF_ERR_NOMEM;
    int c = 0;
    for (int i = 0; i < k->n_added; i++) {
        const lf__added *a = &k->added[i];
        lf__str t = normalized ? a->norm : a->content;
        if (a->normalized == normalized && t.len > 0) keys[c++] = (lf__mkey){(uint8_t)k->blob[t.off], t.len, i};
    }
    qsort(keys, (size_t)c, sizeof *keys, lf__mkey_cmp);
    for (int i = 0, b = 0; b <= 256; b++) {
        while (i < c && keys[i].first < b) i++;
        m->start[b] = i;
    }
    for (int i = 0; i < c; i++) m->order[i] = keys[i].idx;
    LF_FREE(keys);
    return LF_OK;
}

// Normalized forms of the normalized added tokens (HF matches those on normalized text).
static lf_status lf__tok_added_sets(lf__tok *k) {
    lf__enc e;
    memset(&e, 0, sizeof e);
    e.k = k;
    lf_status s = LF_OK;
    for (int i = 0; i < k->n_added && s == LF_OK; i++) {
        lf__added *a = &k->added[i];
        const char *out;
        size_t n;
        if (!a->normalized) continue;
        // copy first: the normalizer's strings and the content both live in the growing blob
        char *content = lf__strndup(k->blob + a->content.off, a->content.len, "added token");
        if (!content) s = LF_ERR_NOMEM;
        if (s == LF_OK) s = lf__enc_normalize(&e, content, a->content.len, &out, &n);
        if (s == LF_OK) s = lf__tok_intern(k, out, n, &a->norm);
        LF_FREE(content);
    }
    lf__enc_free(&e);
    if (s == LF_OK) s = lf__tok_matchset(k, &k->raw, false);
    if (s == LF_OK) s = lf__tok_matchset(k, &k->normed, true);
    return s;
}

// bos_token / eos_token: a string or {"content": ...}.
static lf_status lf__tok_config_token(const lf__tj *j, const lf_node *root, const char *key, lf__str *out) {
    const lf_node *n = lf__tj_get(root, key), *c = n;
    lf_status s = LF_OK;
    if (n && n->type == LF_NODE_OBJECT) s = lf__tj_str(j, key, n, "content", true, &c);
    else if (n && n->type != LF_NODE_STRING) return lf__fail(LF_ERR_FORMAT, "%s: %s: must be a string or an object", j->file, key);
    if (s == LF_OK && c && c->len) s = lf__tok_intern(j->k, c->str, c->len, out);
    return s;
}

static lf_status lf__tok_config(lf_tokenizer *t, const char *json, size_t len) {
    lf__tok *k = t->impl_;
    lf_doc doc;
    lf_status s = lf_json_parse(&doc, json, len, k->config_name);
    if (s != LF_OK) return s;
    lf__tj j = {k->config_name, k};
    const lf_node *root = doc.root, *tmpl = lf__tj_get(root, "chat_template");
    if (root->type != LF_NODE_OBJECT) s = lf__fail(LF_ERR_FORMAT, "%s: must be a JSON object", k->config_name);
    if (s == LF_OK) s = lf__tok_config_token(&j, root, "bos_token", &k->bos);
    if (s == LF_OK) s = lf__tok_config_token(&j, root, "eos_token", &k->eos);
    if (s == LF_OK && tmpl && tmpl->type == LF_NODE_ARRAY) {  // [{name, template}]: the "default" one
        const lf_node *pick = NULL;
        for (int i = 0; i < tmpl->n && !pick; i++) {
            const lf_node *nm = lf__tj_get(&tmpl->kids[i], "name");
            if (nm && nm->type == LF_NODE_STRING && strcmp(nm->str, "default") == 0) pick = lf__tj_get(&tmpl->kids[i], "template");
        }
        tmpl = pick;
    }
    if (s == LF_OK && tmpl) {
        if (tmpl->type != LF_NODE_STRING) s = lf__fail(LF_ERR_FORMAT, "%s: chat_template: must be a string", k->config_name);
        else {
            const char *sys;
            t->chat = lf__chat_detect(tmpl->str, &k->chat_flags, &sys);
            k->chat_unknown = t->chat == LF_CHAT_DEFAULT;
            if (sys) s = lf__tok_intern(k, sys, strlen(sys), &k->chat_default_system);
        }
    }
    if (s == LF_OK) {
        t->bos_id = k->bos.len ? lf__tok_lookup(k, k->blob + k->bos.off, k->bos.len) : -1;
        t->eos_id = k->eos.len ? lf__tok_lookup(k, k->blob + k->eos.off, k->eos.len) : -1;
    }
    lf_doc_deinit(&doc);
    return s;
}

static lf_status lf__tok_parse(lf_tokenizer *t, const lf_node *root) {
    lf__tok *k = t->impl_;
    lf__tj j = {t->name, k};
    if (root->type != LF_NODE_OBJECT) return lf__fail(LF_ERR_FORMAT, "%s: must be a JSON object", t->name);
    lf_status s = lf__tok_model(&j, root);
    const lf_node *n;
    bool fused = false;
    if (s == LF_OK && (n = lf__tj_get(root, "normalizer"))) s = lf__tok_normalizer(&j, "normalizer", n, 0);
    if (s == LF_OK && (n = lf__tj_get(root, "pre_tokenizer"))) s = lf__tok_pretokenizer(&j, "pre_tokenizer", n, 0);
    if (s == LF_OK && (n = lf__tj_get(root, "decoder"))) k->has_decoder = true, s = lf__tok_decoder(&j, "decoder", n, 0, &fused);
    if (s == LF_OK && (n = lf__tj_get(root, "post_processor"))) s = lf__tok_postprocessor(&j, "post_processor", n, 0);
    if (s == LF_OK) s = lf__tok_added_sets(k);
    k->split_metaspace = s == LF_OK && !k->byte_level && !k->ignore_merges && lf__tok_model_id(k, "\xE2\x96\x81", 3) >= 0;
    for (int32_t id = 0; s == LF_OK && id < k->n_vocab && k->split_metaspace; id++) {
        const char *p = k->blob + k->pieces[id].off;
        for (size_t j = 1; k->pieces[id].len != UINT32_MAX && j + 3 <= k->pieces[id].len; j++)
            if (memcmp(p + j, "\xE2\x96\x81", 3) == 0 && (j < 3 || memcmp(p + j - 3, "\xE2\x96\x81", 3) != 0))
                k->split_metaspace = false;
    }
    return s;
}

LF_API lf_status lf_tok_load(lf_tokenizer *t, const char *json, size_t len, const char *config_json, size_t config_len,
                             const char *name) {
    memset(t, 0, sizeof *t);
    t->bos_id = t->eos_id = -1;
    snprintf(t->name, sizeof t->name, "%s", name ? name : "tokenizer.json");
    lf__tok *k = (lf__tok *)lf__calloc(1, sizeof *k, "tokenizer");
    if (!k) return LF_ERR_NOMEM;
    t->impl_ = k;
    snprintf(k->config_name, sizeof k->config_name, "%s", "tokenizer_config.json");
    if (name && strrchr(name, '/'))
        snprintf(k->config_name, sizeof k->config_name, "%.*s/tokenizer_config.json", (int)(strrchr(name, '/') - name), name);
    lf_doc doc;
    lf_status s = lf_json_parse(&doc, json, len, t->name);
    if (s == LF_OK) {
        s = lf__tok_parse(t, doc.root);
        lf_doc_deinit(&doc);
    }
    t->n_vocab = k->n_vocab;
    if (s == LF_OK && config_json) s = lf__tok_config(t, config_json, config_len);
    if (s != LF_OK) lf_tok_close(t);
    return s;
}

#ifndef LF_NO_STDIO
LF_API lf_status lf_tok_open(lf_tokenizer *t, const char *path) {
    memset(t, 0, sizeof *t);
    bool dir = lf_path_is_dir(path);
    char *file = dir ? lf_path_join(path, "tokenizer.json") : lf__strndup(path, strlen(path), "path");
    const char *slash = strrchr(path, '/');
    char *base = dir ? lf__strndup(path, strlen(path), "path") : lf__strndup(path, slash ? (size_t)(slash - path) : 1, "path");
    if (base && !dir && !slash) base[0] = '.';
    char *cfg = base ? lf_path_join(base, "tokenizer_config.json") : NULL;
    char *json = NULL, *cjson = NULL;
    size_t len = 0, clen = 0;
    lf_status s = file && cfg ? lf_file_read(file, LF_MAX_JSON_BYTES, &json, &len) : LF_ERR_NOMEM;
    if (s == LF_OK && lf_path_exists(cfg)) s = lf_file_read(cfg, LF_MAX_JSON_BYTES, &cjson, &clen);
    if (s == LF_OK) s = lf_tok_load(t, json, len, cjson, clen, file);
    if (s == LF_OK && cjson) snprintf(t->impl_->config_name, sizeof t->impl_->config_name, "%s", cfg);
    LF_FREE(file), LF_FREE(base), LF_FREE(cfg), LF_FREE(json), LF_FREE(cjson);
    return s;
}
#endif

LF_API void lf_tok_close(lf_tokenizer *t) {
    lf__tok *k = t->impl_;
    if (k) {
        for (int i = 0; i < k->n_pres; i++) lf__re_free(&k->pres[i].re);
        LF_FREE(k->blob), LF_FREE(k->pieces), LF_FREE(k->flags), LF_FREE(k->hash), LF_FREE(k->merges);
        LF_FREE(k->added), LF_FREE(k->raw.order), LF_FREE(k->normed.order);
        LF_FREE(k->norms), LF_FREE(k->pres), LF_FREE(k->decs);
        LF_FREE(k);
    }
    memset(t, 0, sizeof *t);
}

LF_API lf_status lf_tok_encode(const lf_tokenizer *t, const char *text, size_t len, bool add_special, int32_t **ids,
                               size_t *n) {
    *ids = NULL, *n = 0;
    if (!t->impl_) return lf__fail(LF_ERR_ARG, "lf_tok_encode: the tokenizer is not loaded");
    if (!text && len) return lf__fail(LF_ERR_ARG, "lf_tok_encode: text is NULL");
    size_t bad = len ? lf__utf8_check((const unsigned char *)text, len) : 0;
    if (bad != len) return lf__fail(LF_ERR_FORMAT, "lf_tok_encode: invalid UTF-8 at byte offset %zu", bad);
    const lf__tok *k = t->impl_;
    lf__enc e;
    memset(&e, 0, sizeof e);
    e.k = k;
    lf_status s = LF_OK;
    for (int i = 0; add_special && i < k->n_prefix && s == LF_OK; i++) s = lf__enc_push(&e, k->prefix[i]);
    if (s == LF_OK && len) s = lf__enc_added(&e, &k->raw, text, len);
    for (int i = 0; add_special && i < k->n_suffix && s == LF_OK; i++) s = lf__enc_push(&e, k->suffix[i]);
    if (s == LF_OK && e.n_ids) *ids = e.ids, *n = e.n_ids, e.ids = NULL;
    lf__enc_free(&e);
    return s;
}

LF_API void lf_tok_stream_init(lf_tok_stream *s, const lf_tokenizer *t, bool skip_special) {
    memset(s, 0, sizeof *s);
    s->tok = t, s->skip_special = skip_special;
    s->strip_left = t->impl_ ? t->impl_->dec_strip_start : 0;
}

LF_API lf_status lf_tok_stream_push(lf_tok_stream *s, int32_t id, const char **text, size_t *len) {
    *text = "", *len = 0;
    if (!s->tok || !s->tok->impl_) return lf__fail(LF_ERR_ARG, "lf_tok_stream_push: stream not initialized");
    s->out_len_ = 0;
    return lf__stream_out(s, lf__stream_feed(s, id), text, len);
}

LF_API lf_status lf_tok_stream_flush(lf_tok_stream *s, const char **text, size_t *len) {
    *text = "", *len = 0;
    if (!s->tok || !s->tok->impl_) return lf__fail(LF_ERR_ARG, "lf_tok_stream_flush: stream not initialized");
    s->out_len_ = 0;
    return lf__stream_out(s, lf__stream_finish(s), text, len);
}

LF_API void lf_tok_stream_deinit(lf_tok_stream *s) {
    LF_FREE(s->run_), LF_FREE(s->out_), LF_FREE(s->tmp_);
    memset(s, 0, sizeof *s);
}

LF_API lf_status lf_tok_decode(const lf_tokenizer *t, const int32_t *ids, size_t n, bool skip_special, char **text,
                               size_t *len) {
    *text = NULL, *len = 0;
    if (!t->impl_) return lf__fail(LF_ERR_ARG, "lf_tok_decode: the tokenizer is not loaded");
    lf_tok_stream s;
    lf_tok_stream_init(&s, t, skip_special);
    lf_status st = LF_OK;
    for (size_t i = 0; i < n && st == LF_OK; i++)
        if ((st = lf__stream_feed(&s, ids[i])) == LF_ERR_ARG)
            st = lf__fail(LF_ERR_ARG, "lf_tok_decode: ids[%zu] = %d is out of range [0, %d)", i, ids[i], t->n_vocab);
    if (st == LF_OK) st = lf__stream_finish(&s);
    if (st == LF_OK) st = lf__stream_put(&s, "", 0);  // NUL-terminated, even when empty
    if (st == LF_OK) *text = s.out_, *len = s.out_len_, s.out_ = NULL;
    lf_tok_stream_deinit(&s);
    return st;
}

LF_API int32_t lf_tok_vocab_size(const lf_tokenizer *t) { return t->n_vocab; }

LF_API int32_t lf_tok_find(const lf_tokenizer *t, const char *token) {
    return t->impl_ && token ? lf__tok_lookup(t->impl_, token, strlen(token)) : -1;
}

LF_API const char *lf_tok_piece(const lf_tokenizer *t, int32_t id) {
    const lf__tok *k = t->impl_;
    if (!k || id < 0 || id >= k->n_vocab || k->pieces[id].len == UINT32_MAX) return NULL;
    return k->blob + k->pieces[id].off;
}

LF_API bool lf_tok_is_special(const lf_tokenizer *t, int32_t id) {
    const lf__tok *k = t->impl_;
    return k && id >= 0 && id < k->n_vocab && (k->flags[id] & LF__TF_SPECIAL);
}

// -- 5.10 BPE trainer
//
// ON TRAINING: the text is cut into words exactly as encode cuts it (special tokens, then
// GPT-2's regex through lf__enc_split), and each distinct word is kept once with its count.
// Every word starts as its byte tokens. Then, until the vocab is full, the adjacent pair with
// the highest count (occurrences times word counts, over all words) is merged in every word
// that holds it, left to right as BPE encode applies it; ties go to the smallest (left id,
// right id). That is the rule of HF's BpeTrainer, and so are the ids (special tokens, the 256
// byte characters in code point order, then merges; a merge whose string already is a token
// reuses its id), so `tokenizers` learns the same merges: tests/ref/make_bpe_fixture.py checks
// that on the fixture corpus. Two places could differ: HF applies a merge only to the words its
// queue entry recorded and never resets a merged pair's count (we keep exact counts), and it
// would merge past LF_MAX_TOKEN_BYTES, which our loader refuses (we skip such a pair).
// Counts stay exact incrementally: merging one occurrence changes only the pairs beside it, and
// an index pair -> words (a list that may repeat a word or name one that lost the pair, checked
// on use) limits each step to the words that hold the pair. A max-heap holds (count, pair)
// entries; an entry that no longer has its pair's count is requeued with the current count when
// it surfaces, and every increase queues a fresh entry, so the first entry that is current is
// the true maximum.

#define LF__BT_CHUNK (1u << 20)  // text handed to the regex at once, cut where a match must end

typedef struct lf__bt_pair {
    uint64_t key;   // (left id << 32) | right id
    int64_t count;  // occurrences in all words, each times its word's count
    int32_t head;   // first node of the words that may hold the pair; -1: none
    int32_t step;   // the last merge step that raised count (queue the pair once per step)
    bool banned;    // the merged token would exceed LF_MAX_TOKEN_BYTES
} lf__bt_pair;

typedef struct lf__bt_node {
    int32_t word, next;
} lf__bt_node;

typedef struct lf__bt_entry {
    int64_t count;
    uint64_t key;
    int32_t pair;
} lf__bt_entry;

typedef struct lf__bt {
    int32_t vocab_size, min_count;
    const char *const *specials;
    int n_special;
    int32_t *special_order;  // specials, longest first (leftmost-longest matching)
    uint8_t special_first[32];  // bitset: bytes a special token starts with
    // words: bytes while counting; then symbols, at the same offsets
    char *wbytes;
    size_t wbytes_len, wbytes_cap;
    size_t *woff;
    uint32_t *wlen;
    int64_t *wcount;
    int32_t *wstep;  // the last merge step that visited the word
    size_t n_words, cap_woff, cap_wlen, cap_wcount;
    int32_t *whash;
    size_t whash_mask;
    int64_t n_text_words;
    int32_t *syms;
    // tokens, as byte-level strings
    char *tbytes;
    size_t tbytes_len, tbytes_cap;
    size_t *toff;
    uint32_t *tlen;
    int32_t n_tok;
    int32_t *thash;
    size_t thash_mask;
    int32_t byte_tok[256];
    int32_t *merges;  // [n_merges][2]
    size_t n_merges, cap_merges;
    // pairs, their word lists and the queue
    lf__bt_pair *pairs;
    size_t n_pairs, cap_pairs;
    int32_t *phash;
    size_t phash_mask;
    lf__bt_node *nodes;
    size_t n_nodes, cap_nodes;
    lf__bt_entry *heap;
    size_t n_heap, cap_heap;
    int32_t *raised;
    size_t n_raised, cap_raised;
    lf__enc enc;  // the regex step's scratch
    lf__pre pre;
} lf__bt;

static void lf__bt_free(lf__bt *b) {
    LF_FREE(b->special_order), LF_FREE(b->wbytes), LF_FREE(b->woff), LF_FREE(b->wlen), LF_FREE(b->wcount);
    LF_FREE(b->wstep), LF_FREE(b->whash), LF_FREE(b->syms), LF_FREE(b->tbytes), LF_FREE(b->toff), LF_FREE(b->tlen);
    LF_FREE(b->thash), LF_FREE(b->merges), LF_FREE(b->pairs), LF_FREE(b->phash), LF_FREE(b->nodes);
    LF_FREE(b->heap), LF_FREE(b->raised);
    lf__enc_free(&b->enc);
    lf__re_free(&b->pre.re);
}

// Counts one word; distinct words live in an open-addressing table kept under half full.
static lf_status lf__bt_add_word(lf__bt *b, const char *w, size_t n) {
    b->n_text_words++;
    size_t h = lf__hash_bytes(w, n) & b->whash_mask;
    for (int32_t i; (i = b->whash[h]) >= 0; h = (h + 1) & b->whash_mask)
        if (b->wlen[i] == n && memcmp(b->wbytes + b->woff[i], w, n) == 0) return b->wcount[i]++, LF_OK;
    if (b->n_words >= INT32_MAX - 1 || n > UINT32_MAX)
        return lf__fail(LF_ERR_CAPACITY, "tok_train: more than 2^31 distinct words, or a word over 4 GiB");
    size_t i = b->n_words;
    if (!lf__grow((void **)&b->wbytes, &b->wbytes_cap, b->wbytes_len + n, 1, "training words") ||
        !lf__grow((void **)&b->woff, &b->cap_woff, i + 1, sizeof *b->woff, "training words") ||
        !lf__grow((void **)&b->wlen, &b->cap_wlen, i + 1, sizeof *b->wlen, "training words") ||
        !lf__grow((void **)&b->wcount, &b->cap_wcount, i + 1, sizeof *b->wcount, "training words"))
        return LF_ERR_NOMEM;
    memcpy(b->wbytes + b->wbytes_len, w, n);
    b->woff[i] = b->wbytes_len, b->wlen[i] = (uint32_t)n, b->wcount[i] = 1;
    b->wbytes_len += n, b->n_words++;
    b->whash[h] = (int32_t)i;
    if (2 * b->n_words <= b->whash_mask) return LF_OK;
    size_t mask = 2 * b->whash_mask + 1;  // rehash into a table twice the size
    int32_t *t = (int32_t *)lf__calloc(mask + 1, sizeof *t, "training word table");
    if (!t) return LF_ERR_NOMEM;
    memset(t, 0xFF, (mask + 1) * sizeof *t);
    for (size_t j = 0; j < b->n_words; j++) {
        size_t g = lf__hash_bytes(b->wbytes + b->woff[j], b->wlen[j]) & mask;
        while (t[g] >= 0) g = (g + 1) & mask;
        t[g] = (int32_t)j;
    }
    LF_FREE(b->whash);
    b->whash = t, b->whash_mask = mask;
    return LF_OK;
}

// Pre-tokenizes text that holds no special token, a chunk at a time. A GPT-2 regex match never
// holds a non-space character followed by a space, so every match ends where a visible ASCII
// character meets ' ' or '\n', and cutting there gives the matches of the whole text.
static lf_status lf__bt_add_segment(lf__bt *b, const char *s, size_t n) {
    lf__enc *e = &b->enc;
    while (n > 0) {
        size_t cut = n;
        if (n > LF__BT_CHUNK)
            for (cut = LF__BT_CHUNK; cut < n; cut++)
                if (s[cut - 1] > ' ' && s[cut - 1] < 0x7F && (s[cut] == ' ' || s[cut] == '\n')) break;
        e->text.len = 0;
        lf__buf_put(&e->text, s, cut);
        if (e->text.failed) return LF_ERR_NOMEM;
        e->nsp[1] = 0;
        lf_status st = lf__enc_split(e, &b->pre, (lf__span){0, cut, false});
        for (size_t i = 0; i < e->nsp[1] && st == LF_OK; i++)
            st = lf__bt_add_word(b, e->text.data + e->sp[1][i].off, e->sp[1][i].len);
        if (st != LF_OK) return st;
        s += cut, n -= cut;
    }
    return LF_OK;
}

// One whole text (valid UTF-8): special tokens are cut out leftmost-longest, as encode does for
// added tokens that are not normalized and have no single_word/lstrip/rstrip.
static lf_status lf__bt_add_text(lf__bt *b, const char *s, size_t n) {
    size_t start = 0, p = 0;
    while (p < n) {
        unsigned char c = (unsigned char)s[p];
        size_t hit = 0;
        for (int i = 0; i < b->n_special && !hit && (b->special_first[c >> 3] >> (c & 7) & 1); i++) {
            const char *t = b->specials[b->special_order[i]];
            size_t l = strlen(t);
            if (l <= n - p && memcmp(s + p, t, l) == 0) hit = l;
        }
        if (!hit) {
            p++;
            continue;
        }
        lf_status st = lf__bt_add_segment(b, s + start, p - start);
        if (st != LF_OK) return st;
        p += hit, start = p;
    }
    return lf__bt_add_segment(b, s + start, n - start);
}

// The id of token string s, added when new (a merge may rebuild an existing string). toff and
// tlen are sized for vocab_size up front.
static lf_status lf__bt_token(lf__bt *b, const char *s, size_t n, int32_t *id) {
    size_t h = lf__hash_bytes(s, n) & b->thash_mask;
    for (int32_t i; (i = b->thash[h]) >= 0; h = (h + 1) & b->thash_mask)
        if (b->tlen[i] == n && memcmp(b->tbytes + b->toff[i], s, n) == 0) return *id = i, LF_OK;
    if (!lf__grow((void **)&b->tbytes, &b->tbytes_cap, b->tbytes_len + n, 1, "trained tokens")) return LF_ERR_NOMEM;
    memcpy(b->tbytes + b->tbytes_len, s, n);
    b->toff[b->n_tok] = b->tbytes_len, b->tlen[b->n_tok] = (uint32_t)n;
    b->tbytes_len += n;
    b->thash[h] = *id = b->n_tok++;
    return LF_OK;
}

static const char *const lf__bt_default_specials[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};

// Resolves defaults and checks the desc; the special tokens become the first ids.
static lf_status lf__bt_init(lf__bt *b, const lf_tok_train_desc *d) {
    b->specials = d->special_tokens ? d->special_tokens : lf__bt_default_specials;
    b->n_special = d->special_tokens ? d->n_special : 3;
    b->min_count = d->min_frequency > 0 ? d->min_frequency : 2;
    b->vocab_size = d->vocab_size;
    if (d->n_inputs < 0 || d->n_texts < 0 || (d->n_inputs && !d->inputs) || (d->n_texts && (!d->texts || !d->text_lens)))
        return lf__fail(LF_ERR_CONFIG, "tok_train.inputs/texts: negative count or NULL list");
    if (d->n_inputs + d->n_texts == 0) return lf__fail(LF_ERR_CONFIG, "tok_train.inputs: no input files or texts");
    if (d->min_frequency < 0) return lf__fail(LF_ERR_CONFIG, "tok_train.min_frequency: must be >= 0, got %d", d->min_frequency);
    if (d->model_max_length < 0)
        return lf__fail(LF_ERR_CONFIG, "tok_train.model_max_length: must be >= 0, got %d", d->model_max_length);
    if (b->n_special < 0 || b->n_special > 65536)
        return lf__fail(LF_ERR_CONFIG, "tok_train.n_special: must be in [0, 65536], got %d", b->n_special);
    for (int i = 0; i < b->n_special; i++) {
        const char *t = b->specials[i];
        size_t l = t ? strlen(t) : 0;
        if (l == 0 || l > LF_MAX_TOKEN_BYTES || lf__utf8_check((const unsigned char *)t, l) != l)
            return lf__fail(LF_ERR_CONFIG, "tok_train.special_tokens[%d]: empty, NULL, over LF_MAX_TOKEN_BYTES or invalid UTF-8", i);
        for (int j = 0; j < i; j++)
            if (strcmp(b->specials[j], t) == 0)
                return lf__fail(LF_ERR_CONFIG, "tok_train.special_tokens[%d]: '%s' is also special_tokens[%d]", i, t, j);
        b->special_first[(unsigned char)t[0] >> 3] |= (uint8_t)(1u << (t[0] & 7));
    }
    const char *named[2] = {d->eos_token, d->bos_token}, *field[2] = {"eos_token", "bos_token"};
    for (int k = 0; k < 2; k++) {
        int i = 0;
        while (named[k] && i < b->n_special && strcmp(b->specials[i], named[k]) != 0) i++;
        if (named[k] && i == b->n_special)
            return lf__fail(LF_ERR_CONFIG, "tok_train.%s: '%s' is not one of the special tokens", field[k], named[k]);
    }
    if (d->vocab_size < 256 + b->n_special || d->vocab_size > LF_MAX_VOCAB)
        return lf__fail(LF_ERR_CONFIG, "tok_train.vocab_size: must be in [%d, %d] (256 byte tokens + %d special tokens at least), got %d",
                        256 + b->n_special, LF_MAX_VOCAB, b->n_special, d->vocab_size);
    b->special_order = (int32_t *)lf__calloc((size_t)b->n_special + 1, sizeof(int32_t), "special tokens");
    b->whash_mask = (1u << 16) - 1;
    b->whash = (int32_t *)lf__alloc((b->whash_mask + 1) * sizeof(int32_t), "training word table");
    b->thash_mask = lf__pow2_at_least(2 * (size_t)b->vocab_size) - 1;
    b->thash = (int32_t *)lf__alloc((b->thash_mask + 1) * sizeof(int32_t), "trained token table");
    b->toff = (size_t *)lf__alloc((size_t)b->vocab_size * sizeof(size_t), "trained tokens");
    b->tlen = (uint32_t *)lf__alloc((size_t)b->vocab_size * sizeof(uint32_t), "trained tokens");
    if (!b->special_order || !b->whash || !b->thash || !b->toff || !b->tlen) return LF_ERR_NOMEM;
    memset(b->whash, 0xFF, (b->whash_mask + 1) * sizeof(int32_t));
    memset(b->thash, 0xFF, (b->thash_mask + 1) * sizeof(int32_t));
    for (int i = 0; i < b->n_special; i++) {  // insertion sort, longest first: there are a handful
        int j = i;
        for (size_t l = strlen(b->specials[i]); j > 0 && strlen(b->specials[b->special_order[j - 1]]) < l; j--)
            b->special_order[j] = b->special_order[j - 1];
        b->special_order[j] = i;
    }
    b->pre.kind = LF__PRE_SPLIT, b->pre.behavior = LF__SPLIT_ISOLATED;
    return lf__re_compile(&b->pre.re, lf__gpt2_regex, strlen(lf__gpt2_regex), false, "tok_train", "GPT-2 regex");
}

// Reads the inputs into the word counts.
static lf_status lf__bt_read(lf__bt *b, const lf_tok_train_desc *d) {
    lf_status s = LF_OK;
    for (int i = 0; i < d->n_texts && s == LF_OK; i++) {
        const char *t = d->texts[i];
        size_t n = d->text_lens[i], bad;
        if (!t && n) return lf__fail(LF_ERR_CONFIG, "tok_train.texts[%d]: NULL", i);
        if ((bad = n ? lf__utf8_check((const unsigned char *)t, n) : 0) != n)
            return lf__fail(LF_ERR_FORMAT, "tok_train.texts[%d]: invalid UTF-8 at byte offset %zu", i, bad);
        s = lf__bt_add_text(b, t, n);
    }
#ifndef LF_NO_STDIO
    for (int i = 0; i < d->n_inputs && s == LF_OK; i++) {
        lf_mmap m;
        if (!d->inputs[i]) return lf__fail(LF_ERR_CONFIG, "tok_train.inputs[%d]: NULL", i);
        if ((s = lf_mmap_open(&m, d->inputs[i])) != LF_OK) return s;
        size_t bad = m.size ? lf__utf8_check(m.data, m.size) : 0;
        if (bad != m.size) s = lf__fail(LF_ERR_FORMAT, "%s: invalid UTF-8 at byte offset %zu", d->inputs[i], bad);
        else s = lf__bt_add_text(b, (const char *)m.data, m.size);
        lf_mmap_close(&m);
    }
#else
    if (d->n_inputs > 0) return lf__fail(LF_ERR_UNSUPPORTED, "tok_train.inputs: files need stdio (built with LF_NO_STDIO)");
#endif
    return s;
}

// The index of pair (l, r) in *out, created with count 0 when new.
static lf_status lf__bt_pair_at(lf__bt *b, int32_t l, int32_t r, int32_t *out) {
    uint64_t key = ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
    size_t h = lf__hash_u64(key) & b->phash_mask;
    for (int32_t i; (i = b->phash[h]) >= 0; h = (h + 1) & b->phash_mask)
        if (b->pairs[i].key == key) return *out = i, LF_OK;
    if (b->n_pairs >= INT32_MAX - 1) return lf__fail(LF_ERR_CAPACITY, "tok_train: more than 2^31 distinct pairs");
    if (!lf__grow((void **)&b->pairs, &b->cap_pairs, b->n_pairs + 1, sizeof *b->pairs, "training pairs")) return LF_ERR_NOMEM;
    if (2 * (b->n_pairs + 1) > b->phash_mask) {  // rehash into a table twice the size first
        size_t mask = 2 * b->phash_mask + 1;
        int32_t *t = (int32_t *)lf__calloc(mask + 1, sizeof *t, "training pair table");
        if (!t) return LF_ERR_NOMEM;
        memset(t, 0xFF, (mask + 1) * sizeof *t);
        for (size_t j = 0; j < b->n_pairs; j++) {
            size_t g = lf__hash_u64(b->pairs[j].key) & mask;
            while (t[g] >= 0) g = (g + 1) & mask;
            t[g] = (int32_t)j;
        }
        LF_FREE(b->phash);
        b->phash = t, b->phash_mask = mask;
        for (h = lf__hash_u64(key) & mask; t[h] >= 0; h = (h + 1) & mask) {}
    }
    int32_t i = (int32_t)b->n_pairs++;
    b->pairs[i] = (lf__bt_pair){key, 0, -1, -1, false};
    b->phash[h] = i;
    return *out = i, LF_OK;
}

// Adds delta (word w's count, or minus it) to pair (l, r). A rise records w in the pair's word
// list and, once per step, the pair for queueing.
static lf_status lf__bt_count(lf__bt *b, int32_t l, int32_t r, int64_t delta, int32_t w, int32_t step) {
    int32_t i = -1;
    lf_status s = lf__bt_pair_at(b, l, r, &i);
    if (s != LF_OK) return s;
    lf__bt_pair *p = &b->pairs[i];
    p->count += delta;
    if (delta <= 0) return LF_OK;
    if (p->head < 0 || b->nodes[p->head].word != w) {
        if (b->n_nodes >= INT32_MAX - 1) return lf__fail(LF_ERR_CAPACITY, "tok_train: pair index over 2^31 entries");
        if (!lf__grow((void **)&b->nodes, &b->cap_nodes, b->n_nodes + 1, sizeof *b->nodes, "training pair index"))
            return LF_ERR_NOMEM;
        b->nodes[b->n_nodes] = (lf__bt_node){w, p->head};
        p->head = (int32_t)b->n_nodes++;
    }
    if (p->step != step) {
        p->step = step;
        if (!lf__grow((void **)&b->raised, &b->cap_raised, b->n_raised + 1, sizeof *b->raised, "training pairs"))
            return LF_ERR_NOMEM;
        b->raised[b->n_raised++] = i;
    }
    return LF_OK;
}

LF__INLINE bool lf__bt_before(const lf__bt_entry *x, const lf__bt_entry *y) {
    return x->count != y->count ? x->count > y->count : x->key < y->key;
}
LF__HEAP_DEFINE(lf__bt_heap, lf__bt_entry, lf__bt_before)
static lf_status lf__bt_push(lf__bt *b, int32_t pair) {
    if (!lf__grow((void **)&b->heap, &b->cap_heap, b->n_heap + 1, sizeof *b->heap, "training queue")) return LF_ERR_NOMEM;
    lf__bt_entry x = {b->pairs[pair].count, b->pairs[pair].key, pair};
    lf__bt_heap_up(b->heap, b->n_heap++, x);
    return LF_OK;
}

// Merges every (a, c) of word w into id, left to right, updating the pairs beside each one.
static lf_status lf__bt_merge_word(lf__bt *b, int32_t w, int32_t a, int32_t c, int32_t id, int32_t step) {
    int32_t *s = b->syms + b->woff[w];
    uint32_t n = b->wlen[w], r = 0, o = 0;
    int64_t wc = b->wcount[w];
    lf_status st = LF_OK;
    while (r < n && st == LF_OK) {
        if (r + 1 == n || s[r] != a || s[r + 1] != c) {
            s[o++] = s[r++];
            continue;
        }
        if (o > 0 && (st = lf__bt_count(b, s[o - 1], a, -wc, w, step)) == LF_OK) st = lf__bt_count(b, s[o - 1], id, wc, w, step);
        if (st == LF_OK && r + 2 < n && (st = lf__bt_count(b, c, s[r + 2], -wc, w, step)) == LF_OK)
            st = lf__bt_count(b, id, s[r + 2], wc, w, step);
        if (st == LF_OK) st = lf__bt_count(b, a, c, -wc, w, step);
        s[o++] = id, r += 2;
    }
    b->wlen[w] = o;
    return st;
}

// The base vocab, the words as byte tokens, the initial pair counts, then the merges.
static lf_status lf__bt_learn(lf__bt *b) {
    lf_status s = LF_OK;
    int32_t id;
    for (int i = 0; i < b->n_special && s == LF_OK; i++) s = lf__bt_token(b, b->specials[i], strlen(b->specials[i]), &id);
    lf__tok *k = (lf__tok *)lf__calloc(1, sizeof *k, "byte-level alphabet");
    if (!k) return LF_ERR_NOMEM;
    lf__tok_bytes_to_unicode(k);
    int n_cp = (int)(sizeof k->char_byte / sizeof *k->char_byte);
    for (int cp = 0; cp < n_cp && s == LF_OK; cp++)  // HF orders its alphabet by code point
        if (k->char_byte[cp] >= 0) {
            char u[4];
            s = lf__bt_token(b, u, lf__utf8_enc((uint32_t)cp, u), &b->byte_tok[k->char_byte[cp]]);
        }
    LF_FREE(k);
    if (s != LF_OK) return s;
    b->syms = (int32_t *)lf__calloc(b->wbytes_len + 1, sizeof(int32_t), "training symbols");
    b->wstep = (int32_t *)lf__calloc(b->n_words + 1, sizeof(int32_t), "training words");
    b->phash_mask = (1u << 16) - 1;
    b->phash = (int32_t *)lf__alloc((b->phash_mask + 1) * sizeof(int32_t), "training pair table");
    if (!b->syms || !b->wstep || !b->phash) return LF_ERR_NOMEM;
    memset(b->phash, 0xFF, (b->phash_mask + 1) * sizeof(int32_t));
    for (size_t i = 0; i < b->wbytes_len; i++) b->syms[i] = b->byte_tok[(unsigned char)b->wbytes[i]];
    LF_FREE(b->wbytes);
    b->wbytes = NULL;
    for (size_t w = 0; w < b->n_words && s == LF_OK; w++)
        for (uint32_t i = 0; i + 1 < b->wlen[w] && s == LF_OK; i++) {
            const int32_t *sy = b->syms + b->woff[w];
            s = lf__bt_count(b, sy[i], sy[i + 1], b->wcount[w], (int32_t)w, 0);
        }
    for (size_t i = 0; i < b->n_raised && s == LF_OK; i++) s = lf__bt_push(b, b->raised[i]);
    b->n_raised = 0;
    for (int32_t step = 1; s == LF_OK && b->n_tok < b->vocab_size && b->n_heap > 0;) {
        lf__bt_entry top = lf__bt_heap_pop(b->heap, &b->n_heap);
        lf__bt_pair *p = &b->pairs[top.pair];
        if (p->banned) continue;
        if (top.count != p->count) {  // stale: requeue with the current count
            if (p->count > 0) s = lf__bt_push(b, top.pair);
            continue;
        }
        if (top.count < b->min_count) break;
        int32_t a = (int32_t)(top.key >> 32), c = (int32_t)(top.key & 0xFFFFFFFFu);
        size_t la = b->tlen[a], lc = b->tlen[c];
        if (la + lc > LF_MAX_TOKEN_BYTES) {  // the loader would refuse the token
            p->banned = true;
            continue;
        }
        char cat[LF_MAX_TOKEN_BYTES];
        memcpy(cat, b->tbytes + b->toff[a], la), memcpy(cat + la, b->tbytes + b->toff[c], lc);
        if ((s = lf__bt_token(b, cat, la + lc, &id)) != LF_OK) break;
        if (!lf__grow((void **)&b->merges, &b->cap_merges, 2 * (b->n_merges + 1), sizeof *b->merges, "merges"))
            return LF_ERR_NOMEM;
        b->merges[2 * b->n_merges] = a, b->merges[2 * b->n_merges + 1] = c, b->n_merges++;
        int32_t node = p->head;
        p->head = -1;
        for (; node >= 0 && s == LF_OK; node = b->nodes[node].next) {
            int32_t w = b->nodes[node].word;
            if (b->wstep[w] == step) continue;
            b->wstep[w] = step;
            s = lf__bt_merge_word(b, w, a, c, id, step);
        }
        LF_ASSERT(s != LF_OK || b->pairs[top.pair].count == 0);
        for (size_t i = 0; i < b->n_raised && s == LF_OK; i++)
            if (b->pairs[b->raised[i]].count > 0 && !b->pairs[b->raised[i]].banned) s = lf__bt_push(b, b->raised[i]);
        b->n_raised = 0;
        step++;
    }
    return s;
}

// tokenizer.json, laid out as HF's Tokenizer.save writes it (vocab in id order).
static void lf__bt_write_tokenizer(const lf__bt *b, lf__buf *o) {
    static const char added_flags[] = ", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false, \"special\": true}";
    lf__buf_puts(o, "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [");
    for (int i = 0; i < b->n_special; i++) {  // distinct and interned first: special i has id i
        lf__buf_printf(o, "%s\n    {\"id\": %d, \"content\": ", i ? "," : "", i);
        lf__buf_json_str(o, b->specials[i], strlen(b->specials[i]));
        lf__buf_puts(o, added_flags);
    }
    lf__buf_puts(o, b->n_special ? "\n  ],\n" : "],\n");
    static const char byte_level[] = "{\"type\": \"ByteLevel\", \"add_prefix_space\": %s, \"trim_offsets\": %s, \"use_regex\": true}";
    lf__buf_puts(o, "  \"normalizer\": null,\n  \"pre_tokenizer\": ");
    lf__buf_printf(o, byte_level, "false", "true");
    lf__buf_puts(o, ",\n  \"post_processor\": ");
    lf__buf_printf(o, byte_level, "true", "false");
    lf__buf_puts(o, ",\n  \"decoder\": ");
    lf__buf_printf(o, byte_level, "true", "true");
    lf__buf_puts(o, ",\n  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": null,\n"
                    "    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n    \"fuse_unk\": false,\n"
                    "    \"byte_fallback\": false,\n    \"ignore_merges\": false,\n    \"vocab\": {");
    for (int32_t t = 0; t < b->n_tok; t++) {
        lf__buf_puts(o, t ? ",\n      " : "\n      ");
        lf__buf_json_str(o, b->tbytes + b->toff[t], b->tlen[t]);
        lf__buf_printf(o, ": %d", t);
    }
    lf__buf_puts(o, "\n    },\n    \"merges\": [");
    for (size_t m = 0; m < b->n_merges; m++) {
        int32_t a = b->merges[2 * m], c = b->merges[2 * m + 1];
        lf__buf_puts(o, m ? ",\n      [" : "\n      [");
        lf__buf_json_str(o, b->tbytes + b->toff[a], b->tlen[a]);
        lf__buf_puts(o, ", ");
        lf__buf_json_str(o, b->tbytes + b->toff[c], b->tlen[c]);
        lf__buf_puts(o, "]");
    }
    lf__buf_puts(o, b->n_merges ? "\n    ]\n  }\n}\n" : "]\n  }\n}\n");
}

// The chat template of make_tiny_chat.py's model: plain ChatML, which lf__chat_detect reads as
// LF_CHAT_CHATML with no default system prompt.
static const char lf__bt_chatml[] =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

// tokenizer_config.json for transformers' PreTrainedTokenizerFast (keys sorted, as it saves).
static void lf__bt_write_config(const lf__bt *b, const lf_tok_train_desc *d, lf__buf *o) {
    const char *eos = d->eos_token ? d->eos_token : b->n_special ? b->specials[0] : NULL;
    bool chatml = false, im_end = false;
    lf__buf_puts(o, "{\n  \"added_tokens_decoder\": {");
    for (int i = 0; i < b->n_special; i++) {
        lf__buf_printf(o, "%s\n    \"%d\": {\"content\": ", i ? "," : "", i);
        lf__buf_json_str(o, b->specials[i], strlen(b->specials[i]));
        lf__buf_puts(o, ", \"lstrip\": false, \"normalized\": false, \"rstrip\": false, \"single_word\": false, \"special\": true}");
        chatml |= strcmp(b->specials[i], "<|im_start|>") == 0, im_end |= strcmp(b->specials[i], "<|im_end|>") == 0;
    }
    lf__buf_puts(o, b->n_special ? "\n  },\n  \"bos_token\": " : "},\n  \"bos_token\": ");
    if (d->bos_token) lf__buf_json_str(o, d->bos_token, strlen(d->bos_token));
    else lf__buf_puts(o, "null");
    if (chatml && im_end) lf__buf_puts(o, ",\n  \"chat_template\": "), lf__buf_json_str(o, lf__bt_chatml, strlen(lf__bt_chatml));
    lf__buf_puts(o, ",\n  \"clean_up_tokenization_spaces\": false,\n  \"eos_token\": ");
    if (eos) lf__buf_json_str(o, eos, strlen(eos));
    else lf__buf_puts(o, "null");
    if (d->model_max_length > 0) lf__buf_printf(o, ",\n  \"model_max_length\": %d", d->model_max_length);
    lf__buf_puts(o, ",\n  \"pad_token\": ");
    if (eos) lf__buf_json_str(o, eos, strlen(eos));
    else lf__buf_puts(o, "null");
    lf__buf_puts(o, ",\n  \"tokenizer_class\": \"PreTrainedTokenizerFast\",\n  \"unk_token\": null\n}\n");
}

LF_API lf_status lf_tok_train_json(const lf_tok_train_desc *d, char **tokenizer_json, size_t *json_len,
                                   char **config_json, size_t *config_len) {
    *tokenizer_json = *config_json = NULL, *json_len = *config_len = 0;
    if (!d) return lf__fail(LF_ERR_ARG, "lf_tok_train: desc is NULL");
    lf__bt *b = (lf__bt *)lf__calloc(1, sizeof *b, "tokenizer trainer");
    if (!b) return LF_ERR_NOMEM;
    uint64_t t0 = lf_time_ns();
    lf_status s = lf__bt_init(b, d);
    if (s == LF_OK) s = lf__bt_read(b, d);
    uint64_t t1 = lf_time_ns();
    if (s == LF_OK) s = lf__bt_learn(b);
    lf__buf tj = LF__ZERO, cj = LF__ZERO;
    if (s == LF_OK) lf__bt_write_tokenizer(b, &tj), lf__bt_write_config(b, d, &cj);
    if (s == LF_OK && (tj.failed || cj.failed)) s = LF_ERR_NOMEM;
    if (s == LF_OK) {
        lf__log(LF_LOG_INFO, "tok", "trained BPE: %lld words (%zu distinct), vocab %d of %d (%zu merges); "
                "counting %.2f s, merging %.2f s", (long long)b->n_text_words, b->n_words, b->n_tok, b->vocab_size,
                b->n_merges, (double)(t1 - t0) * 1e-9, (double)(lf_time_ns() - t1) * 1e-9);
        *tokenizer_json = tj.data, *json_len = tj.len, *config_json = cj.data, *config_len = cj.len;
    } else
        LF_FREE(tj.data), LF_FREE(cj.data);
    lf__bt_free(b);
    LF_FREE(b);
    return s;
}

#ifndef LF_NO_STDIO
LF_API lf_status lf_tok_train(const lf_tok_train_desc *d, const char *out_dir) {
    if (!out_dir) return lf__fail(LF_ERR_ARG, "lf_tok_train: out_dir is NULL");
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST)
        return lf__fail(LF_ERR_IO, "%s: cannot create the directory: %s", out_dir, strerror(errno));
    if (!lf_path_is_dir(out_dir)) return lf__fail(LF_ERR_IO, "%s: not a directory", out_dir);
    char *tj, *cj, *tpath = lf_path_join(out_dir, "tokenizer.json"), *cpath = lf_path_join(out_dir, "tokenizer_config.json");
    size_t tl, cl;
    lf_status s = tpath && cpath ? lf_tok_train_json(d, &tj, &tl, &cj, &cl) : LF_ERR_NOMEM;
    if (s == LF_OK) {
        s = lf_file_write_atomic(tpath, tj, tl);
        if (s == LF_OK) s = lf_file_write_atomic(cpath, cj, cl);
        LF_FREE(tj), LF_FREE(cj);
    }
    LF_FREE(tpath), LF_FREE(cpath);
    return s;
}
#endif

// == 6. model (impl) =============================================================================
//
// ON THE FORWARD PASS: transformers' conventions exactly: RMSNorm in f32, RoPE in the
// rotate_half layout (pair i with i + HS/2), query head h reads kv head h / (NH / NKV), scores
// scaled by 1/sqrt(HS), SwiGLU MLP, lm_head tied to the embedding when the config says so.
// A batch may mix sequences: each token's K and V go into its slot first, then each token
// attends to positions [lo, p] of its own slot (lo > 0 only with a sliding window).

static lf_status lf__model_config_fields(lf_model_config *c, const lf_doc *d) {
    const lf_node *r = d->root;
    const char *type = NULL;
    lf_status s = lf_cfg_str(d, r, "model_type", true, &type);
    if (s != LF_OK) return s;
    if (strcmp(type, "llama") == 0) c->arch = LF_ARCH_LLAMA;
    else if (strcmp(type, "qwen2") == 0) c->arch = LF_ARCH_QWEN2;
    else if (strcmp(type, "mistral") == 0) c->arch = LF_ARCH_MISTRAL;
    else
        return lf__fail(LF_ERR_UNSUPPORTED, "%s: model_type '%s' is not supported (llama, qwen2, mistral)", d->name,
                        type);
    int64_t C = 0, FF = 0, L = 0, NH = 0, NKV = -1, HS = -1, V = 0, max_pos = 2048, win = 0, win_from = 0;
    const int64_t big = 1 << 24;
    if ((s = lf_cfg_int(d, r, "hidden_size", true, 1, big, &C)) != LF_OK ||
        (s = lf_cfg_int(d, r, "intermediate_size", true, 1, big, &FF)) != LF_OK ||
        (s = lf_cfg_int(d, r, "num_hidden_layers", true, 1, 4096, &L)) != LF_OK ||
        (s = lf_cfg_int(d, r, "num_attention_heads", true, 1, 4096, &NH)) != LF_OK ||
        (s = lf_cfg_int(d, r, "num_key_value_heads", false, 1, 4096, &NKV)) != LF_OK ||
        (s = lf_cfg_int(d, r, "head_dim", false, 2, 4096, &HS)) != LF_OK ||
        (s = lf_cfg_int(d, r, "vocab_size", true, 1, big, &V)) != LF_OK ||
        (s = lf_cfg_int(d, r, "max_position_embeddings", false, 1, 1 << 30, &max_pos)) != LF_OK)
        return s;
    if (NKV < 0) NKV = NH;
    if (HS < 0) {
        if (C % NH) return lf__fail(LF_ERR_CONFIG, "%s: hidden_size %lld is not a multiple of num_attention_heads %lld",
                                    d->name, (long long)C, (long long)NH);
        HS = C / NH;
    }
    if (NH % NKV)
        return lf__fail(LF_ERR_CONFIG, "%s: num_attention_heads %lld is not a multiple of num_key_value_heads %lld",
                        d->name, (long long)NH, (long long)NKV);
    if (HS % 2) return lf__fail(LF_ERR_CONFIG, "%s: head_dim %lld must be even for RoPE", d->name, (long long)HS);
    c->C = (int)C, c->FF = (int)FF, c->L = (int)L, c->NH = (int)NH, c->NKV = (int)NKV, c->HS = (int)HS;
    c->V = (int)V, c->max_pos = (int)max_pos;
    double eps = 1e-6, theta = 10000;
    bool tied = false, attn_bias = false, mlp_bias = false, use_win = c->arch == LF_ARCH_MISTRAL;
    if ((s = lf_cfg_num(d, r, "rms_norm_eps", false, &eps)) != LF_OK ||
        (s = lf_cfg_num(d, r, "rope_theta", false, &theta)) != LF_OK ||
        (s = lf_cfg_bool(d, r, "tie_word_embeddings", false, &tied)) != LF_OK ||
        (s = lf_cfg_bool(d, r, "attention_bias", false, &attn_bias)) != LF_OK ||
        (s = lf_cfg_bool(d, r, "mlp_bias", false, &mlp_bias)) != LF_OK ||
        (s = lf_cfg_bool(d, r, "use_sliding_window", false, &use_win)) != LF_OK ||
        (s = lf_cfg_int(d, r, "sliding_window", false, 1, 1 << 30, &win)) != LF_OK ||
        (c->arch == LF_ARCH_QWEN2 && (s = lf_cfg_int(d, r, "max_window_layers", false, 0, 4096, &win_from)) != LF_OK))
        return s;
    if (eps <= 0 || !(theta > 0)) return lf__fail(LF_ERR_CONFIG, "%s: rms_norm_eps and rope_theta must be > 0", d->name);
    c->eps = (float)eps, c->rope_theta = theta, c->tied = tied;
    // Qwen2 always has q/k/v biases and no o bias; llama's attention_bias covers all four.
    c->qkv_bias = c->arch == LF_ARCH_QWEN2 || (c->arch == LF_ARCH_LLAMA && attn_bias);
    c->o_bias = c->arch == LF_ARCH_LLAMA && attn_bias;
    c->mlp_bias = c->arch == LF_ARCH_LLAMA && mlp_bias;
    c->sliding_window = use_win ? (int)win : 0;
    c->window_from_layer = (int)win_from;

    // transformers 4.x writes rope_theta + rope_scaling; 5.x writes rope_parameters holding both
    const char *rs_name = "rope_parameters";
    const lf_node *rs = lf_node_get(r, rs_name);
    if (!rs || rs->type == LF_NODE_NULL) rs = lf_node_get(r, rs_name = "rope_scaling");
    c->rope_type = LF_ROPE_DEFAULT;
    if (rs && rs->type != LF_NODE_NULL) {
        if (rs->type != LF_NODE_OBJECT) return lf__fail(LF_ERR_CONFIG, "%s: field '%s' must be an object", d->name, rs_name);
        lf_doc sub = *d;  // messages name the nested field: "config.json: rope_scaling.factor"
        snprintf(sub.name, sizeof sub.name, "%.200s: %s", d->name, rs_name);
        const char *rt = NULL;
        if ((s = lf_cfg_str(&sub, rs, "rope_type", false, &rt)) != LF_OK) return s;
        if (!rt && (s = lf_cfg_str(&sub, rs, "type", false, &rt)) != LF_OK) return s;
        if (!rt) rt = "default";
        if ((s = lf_cfg_num(&sub, rs, "rope_theta", false, &c->rope_theta)) != LF_OK) return s;
        double factor = 1, lo = 1, hi = 4;
        int64_t orig = 8192;
        if (strcmp(rt, "default") == 0) c->rope_type = LF_ROPE_DEFAULT;
        else if (strcmp(rt, "linear") == 0) c->rope_type = LF_ROPE_LINEAR;
        else if (strcmp(rt, "llama3") == 0) c->rope_type = LF_ROPE_LLAMA3;
        else
            return lf__fail(LF_ERR_UNSUPPORTED, "%s.rope_type: '%s' is not supported (default, linear, llama3)", sub.name, rt);
        if (c->rope_type != LF_ROPE_DEFAULT && (s = lf_cfg_num(&sub, rs, "factor", true, &factor)) != LF_OK) return s;
        if (c->rope_type == LF_ROPE_LLAMA3 &&
            ((s = lf_cfg_num(&sub, rs, "low_freq_factor", true, &lo)) != LF_OK ||
             (s = lf_cfg_num(&sub, rs, "high_freq_factor", true, &hi)) != LF_OK ||
             (s = lf_cfg_int(&sub, rs, "original_max_position_embeddings", true, 1, 1 << 30, &orig)) != LF_OK))
            return s;
        if (!(factor > 0)) return lf__fail(LF_ERR_CONFIG, "%s.factor: must be > 0", sub.name);
        if (!(hi > lo)) return lf__fail(LF_ERR_CONFIG, "%s.high_freq_factor: must be > low_freq_factor", sub.name);
        if (!(c->rope_theta > 0)) return lf__fail(LF_ERR_CONFIG, "%s.rope_theta: must be > 0", sub.name);
        c->rope_factor = factor, c->rope_low_freq_factor = lo, c->rope_high_freq_factor = hi;
        c->rope_original_max_pos = (int)orig;
    }
    // bos/eos: an integer, or a list of integers for eos
    int64_t bos = -1;
    if ((s = lf_cfg_int(d, r, "bos_token_id", false, 0, big, &bos)) != LF_OK) return s;
    c->bos_id = (int)bos;
    const lf_node *eos = lf_node_get(r, "eos_token_id");
    c->n_eos = 0;
    if (eos && eos->type == LF_NODE_NUMBER) {
        int64_t e = 0;
        if ((s = lf_cfg_int(d, r, "eos_token_id", false, 0, big, &e)) != LF_OK) return s;
        c->eos_ids[c->n_eos++] = (int)e;
    } else if (eos && eos->type == LF_NODE_ARRAY) {
        for (int i = 0; i < eos->n && c->n_eos < 8; i++) {
            uint64_t e;
            if (!lf__node_u64(&eos->kids[i], &e) || e > (uint64_t)big)
                return lf__fail(LF_ERR_CONFIG, "%s: eos_token_id[%d] must be a token id", d->name, i);
            c->eos_ids[c->n_eos++] = (int)e;
        }
    } else if (eos && eos->type != LF_NODE_NULL)
        return lf__fail(LF_ERR_CONFIG, "%s: field 'eos_token_id' must be an integer or a list", d->name);
    return LF_OK;
}

LF_API lf_status lf_model_config_parse(lf_model_config *cfg, const char *json, size_t len, const char *name) {
    memset(cfg, 0, sizeof *cfg);
    lf_doc d;
    lf_status s = lf_json_parse(&d, json, len, name);
    if (s != LF_OK) return s;
    if (d.root->type != LF_NODE_OBJECT) s = lf__fail(LF_ERR_CONFIG, "%s: not a JSON object", name);
    else s = lf__model_config_fields(cfg, &d);
    lf_doc_deinit(&d);
    return s;
}

// inv_freq[i] = theta^(-2i/HS), adjusted by the rope_scaling type; computed in f32 the way
// transformers' _compute_*_parameters does, so the tables match its cos/sin to the last bit
// or two.
static void lf__rope_inv_freq(const lf_model_config *c, float *inv_freq) {
    int half = c->HS / 2;
    for (int i = 0; i < half; i++) {
        float f = (float)(1.0 / pow(c->rope_theta, (double)(float)(2 * i) / (double)c->HS));
        if (c->rope_type == LF_ROPE_LINEAR) f = f / (float)c->rope_factor;
        else if (c->rope_type == LF_ROPE_LLAMA3) {
            float factor = (float)c->rope_factor, lo = (float)c->rope_low_freq_factor,
                  hi = (float)c->rope_high_freq_factor, old = (float)c->rope_original_max_pos;
            float lo_wavelen = old / lo, hi_wavelen = old / hi, wavelen = 2.0f * (float)M_PI / f;
            float g = wavelen > lo_wavelen ? f / factor : f;
            if (!(wavelen < hi_wavelen) && !(wavelen > lo_wavelen)) {
                float smooth = (old / wavelen - lo) / (hi - lo);
                g = (1.0f - smooth) * g / factor + smooth * g;
            }
            f = g;
        }
        inv_freq[i] = f;
    }
}

static lf_status lf__model_tensor(lf_model *m, lf_tensor *out, const char *name, int64_t d0, int64_t d1) {
    const lf_st_tensor *t = lf_st_set_find(&m->st, name);
    if (!t) return lf__fail(LF_ERR_FORMAT, "missing tensor '%s'", name);
    int ndim = d1 > 0 ? 2 : 1;
    if (t->ndim != ndim || t->shape[0] != d0 || (ndim == 2 && t->shape[1] != d1))
        return lf__fail(LF_ERR_SHAPE, "tensor '%s': shape [%lld%s%lld], expected [%lld%s%lld]", name,
                        (long long)t->shape[0], t->ndim > 1 ? ", " : "", t->ndim > 1 ? (long long)t->shape[1] : 0LL,
                        (long long)d0, ndim > 1 ? ", " : "", ndim > 1 ? (long long)d1 : 0LL);
    if (t->dtype != LF_DTYPE_F32 && t->dtype != LF_DTYPE_BF16 && t->dtype != LF_DTYPE_F16)
        return lf__fail(LF_ERR_UNSUPPORTED, "tensor '%s': dtype %s (F32, BF16 or F16 expected)", name,
                        lf_dtype_name(t->dtype));
    memset(out, 0, sizeof *out);
    out->dtype = t->dtype, out->ndim = ndim, out->shape[0] = d0, out->shape[1] = d1;
    out->data = t->data, out->name = t->name;
    return LF_OK;
}

// A 1-d tensor converted into the f32 block at *cursor.
static lf_status lf__model_vec(lf_model *m, const float **out, float **cursor, const char *name, int64_t n) {
    lf_tensor t;
    lf_status s = lf__model_tensor(m, &t, name, n, 0);
    if (s != LF_OK) return s;
    lf_convert_to_f32(*cursor, t.data, t.dtype, n);
    *out = *cursor;
    *cursor += n;
    return LF_OK;
}

LF_API const char *lf_proj_name(lf_proj p) {
    static const char *names[LF_PROJ_COUNT] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                               "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};
    return (unsigned)p < LF_PROJ_COUNT ? names[p] : "?";
}

// A block of memory the model owns until it closes (merged adapters, converted scales).
static void *lf__model_own(lf_model *m, size_t bytes, const char *what) {
    void *p = lf__alloc(bytes, what);
    if (p && !lf__grow((void **)&m->blocks_, &m->blocks_cap_, (size_t)m->n_blocks_ + 1, sizeof(void *), "weight blocks")) {
        LF_FREE(p);
        return NULL;
    }
    return p ? (m->blocks_[m->n_blocks_++] = p) : NULL;
}

// The quant_type of a checkpoint in LargeForge's quantized layout (section 11.3), else NONE.
static lf_qtype lf__model_qlayout(const lf_model *m) {
    const lf_st_file *f = m->st.n ? &m->st.files[0] : NULL;
    const char *fmt = NULL, *type = NULL;
    if (!f || !f->meta.root || lf_cfg_str(&f->meta, f->meta.root, "format", false, &fmt) != LF_OK || !fmt ||
        strcmp(fmt, "largeforge-quant") != 0 || lf_cfg_str(&f->meta, f->meta.root, "quant_type", false, &type) != LF_OK || !type)
        return LF_QTYPE_NONE;
    return lf_qtype_from_name(type);
}

// A quantized tensor of the checkpoint: its data if it has this dtype and shape, else NULL with
// the error set.
static const void *lf__model_qpart(lf_model *m, const char *prefix, const char *suffix, lf_dtype dt, int64_t d0, int64_t d1) {
    char name[160];
    snprintf(name, sizeof name, "%s%s", prefix, suffix);
    const lf_st_tensor *t = lf_st_set_find(&m->st, name);
    if (!t) lf__fail(LF_ERR_FORMAT, "missing tensor '%s'", name);
    else if (t->dtype != dt || t->ndim != (d1 ? 2 : 1) || t->shape[0] != d0 || (d1 && t->shape[1] != d1))
        lf__fail(LF_ERR_SHAPE, "tensor '%s': %s [%lld%s%lld], expected %s [%lld%s%lld]", name, lf_dtype_name(t->dtype),
                 (long long)t->shape[0], t->ndim > 1 ? ", " : "", t->ndim > 1 ? (long long)t->shape[1] : 0LL,
                 lf_dtype_name(dt), (long long)d0, d1 ? ", " : "", (long long)d1);
    else return t->data;
    return NULL;
}

// Projection p of layer l from LargeForge's quantized layout: views of the mapped tensors (Q4's
// f16 scales converted into a block the model owns); every code, zero and group index checked.
static lf_status lf__model_qload(lf_model *m, lf_qtype type, int l, lf_proj p, int64_t R, int64_t K) {
    const lf_model_config *c = &m->cfg;
    if (!m->qw_ && !(m->qw_ = (lf_qtensor *)lf__calloc((size_t)c->L * LF_PROJ_COUNT, sizeof(lf_qtensor), "quantized weights")))
        return LF_ERR_NOMEM;
    char prefix[120], part[140];
    snprintf(prefix, sizeof prefix, "model.layers.%d.%s", l, lf_proj_name(p));
    lf_qtensor *q = &m->qw_[l * LF_PROJ_COUNT + (int)p];
    lf_qtensor t = lf__qtensor_make(type, R, K, 0, NULL, NULL, NULL);
    int64_t n = R * K;
    if (type == LF_QTYPE_INT8) {
        t.q = (const unsigned char *)lf__model_qpart(m, prefix, ".qweight", LF_DTYPE_I8, R, K);
        t.absmax = t.q ? (const float *)lf__model_qpart(m, prefix, ".scales", LF_DTYPE_F32, R, 0) : NULL;
    } else if (type == LF_QTYPE_Q8_0 || type == LF_QTYPE_Q4_0) {
        if (K % 32) return lf__fail(LF_ERR_SHAPE, "%s: rows of %lld values are not whole blocks of 32", prefix, (long long)K);
        t.blocksize = 32;
        t.q = (const unsigned char *)lf__model_qpart(m, prefix, ".qweight", LF_DTYPE_U8, R, K / 32 * (type == LF_QTYPE_Q8_0 ? LF_Q8_0_BYTES : LF_Q4_0_BYTES));
    } else if (type == LF_QTYPE_NF4) {
        t.blocksize = 64;
        t.q = (const unsigned char *)lf__model_qpart(m, prefix, ".qweight", LF_DTYPE_U8, (n + 1) / 2, 0);
        snprintf(part, sizeof part, "%s.absmax", prefix);
        const lf_st_tensor *am = lf_st_set_find(&m->st, part);
        for (int bs = 32; am && bs <= 4096; bs *= 2)  // the block size is what makes the absmax count
            if (am->ndim == 1 && am->shape[0] == (n + bs - 1) / bs) t.blocksize = bs;
        t.absmax = t.q ? (const float *)lf__model_qpart(m, prefix, ".absmax", LF_DTYPE_F32, (n + t.blocksize - 1) / t.blocksize, 0) : NULL;
    } else {
        snprintf(part, sizeof part, "%s.scales", prefix);
        const lf_st_tensor *sc = lf_st_set_find(&m->st, part);
        int64_t G = sc && sc->ndim == 2 && sc->shape[1] > 0 ? sc->shape[1] : 0;
        t.blocksize = G > 0 && K % G == 0 ? (int)(K / G) : 0;
        if (!lf__q4_group_ok(t.blocksize, K))
            return lf__fail(LF_ERR_SHAPE, "%s.scales: %lld groups do not cut rows of %lld values into Q4 groups", prefix, (long long)G, (long long)K);
        t.q = (const unsigned char *)lf__model_qpart(m, prefix, ".qweight", LF_DTYPE_U8, R, K / 2);
        const uint16_t *s16 = t.q ? (const uint16_t *)lf__model_qpart(m, prefix, ".scales", LF_DTYPE_F16, R, G) : NULL;
        t.zeros = s16 ? (const unsigned char *)lf__model_qpart(m, prefix, ".qzeros", LF_DTYPE_U8, R, G) : NULL;
        if (!t.zeros) return LF_ERR_FORMAT;
        for (int64_t i = 0; i < R * G; i++)
            if (t.zeros[i] > 15) return lf__fail(LF_ERR_FORMAT, "%s.qzeros[%lld] is %d, above 15", prefix, (long long)i, t.zeros[i]);
        float *f = (float *)lf__model_own(m, (size_t)(R * G) * sizeof(float), "q4 scales");
        if (!f) return LF_ERR_NOMEM;
        for (int64_t i = 0; i < R * G; i++)
            if (!isfinite(f[i] = lf_f16_to_f32(s16[i]))) return lf__fail(LF_ERR_FORMAT, "%s.scales[%lld] is not finite", prefix, (long long)i);
        t.absmax = f;
        snprintf(part, sizeof part, "%s.g_idx", prefix);
        if (lf_st_set_find(&m->st, part)) {
            if (!(t.g_idx = (const int32_t *)lf__model_qpart(m, prefix, ".g_idx", LF_DTYPE_I32, K, 0))) return LF_ERR_FORMAT;
            for (int64_t k = 0; k < K; k++)
                if (t.g_idx[k] < 0 || t.g_idx[k] >= G)
                    return lf__fail(LF_ERR_FORMAT, "%s.g_idx[%lld] is %d, outside [0, %lld)", prefix, (long long)k, t.g_idx[k], (long long)G);
        }
    }
    if (!t.q || (type != LF_QTYPE_Q8_0 && type != LF_QTYPE_Q4_0 && !t.absmax)) return LF_ERR_FORMAT;
    *q = t;
    lf_layer *ly = &m->layers[l];
    memset(&ly->w[p], 0, sizeof ly->w[p]);
    ly->w[p].ndim = 2, ly->w[p].shape[0] = R, ly->w[p].shape[1] = K;
    ly->q[p] = q;
    return LF_OK;
}

static lf_status lf__head_quantize(lf_model *m);

static lf_status lf__model_weights(lf_model *m) {
    const lf_model_config *c = &m->cfg;
    int64_t C = c->C, Q = (int64_t)c->NH * c->HS, KV = (int64_t)c->NKV * c->HS, FF = c->FF;
    // sizes of the f32 block: norms, biases, rope tables
    size_t n = (size_t)C + (size_t)c->L * (size_t)(2 * C + (c->qkv_bias ? Q + 2 * KV : 0) + (c->o_bias ? C : 0) +
                                                   (c->mlp_bias ? 2 * FF + C : 0)) +
               (size_t)m->max_seq_len * (size_t)c->HS;
    m->small_ = (float *)lf__calloc(n, sizeof(float), "norms, biases and rope tables");
    m->layers = (lf_layer *)lf__calloc((size_t)c->L, sizeof(lf_layer), "layer table");
    if (!m->small_ || !m->layers) return LF_ERR_NOMEM;
    float *cur = m->small_;
    lf_qtype qt = lf__model_qlayout(m);
    lf_status s = lf__model_tensor(m, &m->embed, "model.embed_tokens.weight", c->V, C);
    if (s == LF_OK) s = lf__model_vec(m, &m->final_norm, &cur, "model.norm.weight", C);
    if (s == LF_OK) {
        if (c->tied) m->lm_head = m->embed;
        else s = lf__model_tensor(m, &m->lm_head, "lm_head.weight", c->V, C);
    }
    char name[160];
#define LF__V(field, suffix, d0)                                              \
    ((void)snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix),     \
     (s = lf__model_vec(m, &ly->field, &cur, name, d0)) != LF_OK)
    for (int l = 0; l < c->L && s == LF_OK; l++) {
        lf_layer *ly = &m->layers[l];
        int64_t out[LF_PROJ_COUNT] = {Q, KV, KV, C, FF, FF, C}, in[LF_PROJ_COUNT] = {C, C, C, Q, C, C, FF};
        bool bias[LF_PROJ_COUNT] = {c->qkv_bias, c->qkv_bias, c->qkv_bias, c->o_bias, c->mlp_bias, c->mlp_bias, c->mlp_bias};
        for (int p = 0; p < LF_PROJ_COUNT && s == LF_OK; p++) {
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, lf_proj_name((lf_proj)p));
            if (qt && !lf_st_set_find(&m->st, name)) s = lf__model_qload(m, qt, l, (lf_proj)p, out[p], in[p]);
            else s = lf__model_tensor(m, &ly->w[p], name, out[p], in[p]);
            if (s == LF_OK && bias[p]) {
                snprintf(name, sizeof name, "model.layers.%d.%s.bias", l, lf_proj_name((lf_proj)p));
                s = lf__model_vec(m, &ly->b[p], &cur, name, out[p]);
            }
        }
        if (s != LF_OK || LF__V(attn_norm, "input_layernorm.weight", C) || LF__V(mlp_norm, "post_attention_layernorm.weight", C))
            break;
    }
#undef LF__V
    if (s == LF_OK && (qt == LF_QTYPE_Q8_0 || qt == LF_QTYPE_Q4_0)) s = lf__head_quantize(m);  // as lf_model_quantize
    if (s != LF_OK) return s;
    // rope tables: angle = pos * inv_freq in f32 (as torch multiplies), cos/sin rounded to f32
    int half = c->HS / 2;
    float inv_freq[2048];
    lf__rope_inv_freq(c, inv_freq);
    m->rope_cos = cur;
    m->rope_sin = cur + (size_t)m->max_seq_len * (size_t)half;
    for (int p = 0; p < m->max_seq_len; p++)
        for (int i = 0; i < half; i++) {
            float a = (float)p * inv_freq[i];
            m->rope_cos[(size_t)p * (size_t)half + (size_t)i] = (float)cos((double)a);
            m->rope_sin[(size_t)p * (size_t)half + (size_t)i] = (float)sin((double)a);
        }
    return LF_OK;
}

// Activation slots for max_tokens rows (STYLE R10: planned once, one block, nothing allocated
// per call). Only the layout depends on the call; no slot has to start zeroed.
typedef struct lf__acts {
    float *x, *xn, *q, *k, *v, *att, *gate, *up, *rows, *scores;
    float *lora;                // [N, lora_r] the scaled x A^T of a low-rank update
    int32_t *pos, *seq, *undo;  // default positions and slots; old KV lengths for rollback
    void *mm;                   // matmul scratch
    int n_dot;                  // -1: kernels by row count; else rows [0, n_dot) DOT, the rest PACKED
} lf__acts;

static size_t lf__acts_plan(const lf_model *m, lf__acts *a, unsigned char *base) {
    const lf_model_config *c = &m->cfg;
    size_t N = (size_t)m->max_tokens, off = 0;
    int64_t maxK = LF__MAX(LF__MAX(c->C, c->FF), c->NH * c->HS);
    size_t sizes[15] = {N * (size_t)c->C, N * (size_t)c->C, N * (size_t)c->NH * (size_t)c->HS,
                        N * (size_t)c->NKV * (size_t)c->HS, N * (size_t)c->NKV * (size_t)c->HS,
                        N * (size_t)c->NH * (size_t)c->HS, N * (size_t)c->FF, N * (size_t)c->FF, N * (size_t)c->C,
                        (size_t)lf_pool_size(m->pool) * (size_t)m->max_seq_len, N * (size_t)m->lora_r, N, N, N,
                        LF__MAX(LF__MAX(lf__matmul_scratch(m->max_tokens, maxK, lf_pool_size(m->pool)),
                                        lf__qgemm_scratch(maxK, lf_pool_size(m->pool))),
                                lf__qdot_matmul_scratch(m->max_tokens, maxK, lf_pool_size(m->pool))) / 4 + 1};
    void **slots[15] = {(void **)&a->x,    (void **)&a->xn,   (void **)&a->q,      (void **)&a->k,
                        (void **)&a->v,    (void **)&a->att,  (void **)&a->gate,   (void **)&a->up,
                        (void **)&a->rows, (void **)&a->scores, (void **)&a->lora, (void **)&a->pos,
                        (void **)&a->seq,  (void **)&a->undo, &a->mm};
    for (int i = 0; i < 15; i++) {
        *slots[i] = base ? base + off : NULL;
        off += (sizes[i] * 4 + 63) & ~(size_t)63;  // every slot holds 4-byte elements
    }
    a->n_dot = -1;
    return off;
}

// (Re)sizes the activation block: at open, and when adapters raise lora_r.
static lf_status lf__model_plan(lf_model *m) {
    lf__acts plan;
    lf_arena_deinit(&m->acts_);
    return lf_arena_init(&m->acts_, lf__acts_plan(m, &plan, NULL), "activations");
}

#ifndef LF_NO_STDIO
LF_API lf_status lf_model_open(lf_model *m, const lf_model_desc *desc) {
    memset(m, 0, sizeof *m);
    if (!desc || !desc->path) return lf__fail(LF_ERR_ARG, "lf_model_open: desc.path is required");
    char *cfg_path = lf_path_join(desc->path, "config.json");
    if (!cfg_path) return LF_ERR_NOMEM;
    char *text = NULL;
    size_t len = 0;
    lf_status s = lf_file_read(cfg_path, LF_MAX_JSON_BYTES, &text, &len);
    if (s == LF_OK) s = lf_model_config_parse(&m->cfg, text, len, cfg_path);
    LF_FREE(text);
    LF_FREE(cfg_path);
    if (s != LF_OK) return s;
    m->max_tokens = desc->max_tokens > 0 ? desc->max_tokens : 512;
    m->max_seq_len = desc->max_seq_len > 0 ? desc->max_seq_len : LF__MIN(m->cfg.max_pos, 4096);
    if (m->cfg.HS / 2 > 2048) return lf__fail(LF_ERR_UNSUPPORTED, "head_dim %d is over 4096", m->cfg.HS);
    if (desc->pool) m->pool = desc->pool;
    else if ((s = lf_pool_create(&m->pool, desc->n_threads)) != LF_OK) return s;
    m->own_pool = !desc->pool;
    if ((s = lf_st_set_open(&m->st, desc->path)) == LF_OK && (s = lf__model_weights(m)) != LF_OK)
        s = lf__wrap(s, "%s", desc->path);
    if (s == LF_OK && !(m->dir = lf__strndup(desc->path, strlen(desc->path), "model path"))) s = LF_ERR_NOMEM;
    if (s == LF_OK) s = lf__model_plan(m);
    if (s != LF_OK) {
        lf_model_close(m);
        return s;
    }
    static const char *archs[] = {"?", "llama", "qwen2", "mistral"};
    lf__log(LF_LOG_INFO, "model", "%s: %s, %d layers, width %d, %.1fM parameters, %s weights mapped (%.1f MiB), "
            "activations %.1f MiB for %d tokens, %d threads", desc->path, archs[m->cfg.arch], m->cfg.L, m->cfg.C,
            (double)lf_model_n_params(m) / 1e6, lf_dtype_name(m->layers[0].w[LF_PROJ_Q].dtype),
            (double)lf_model_weight_bytes(m) / 1048576.0, (double)m->acts_.cap / 1048576.0, m->max_tokens,
            lf_pool_size(m->pool));
    return LF_OK;
}
#endif

static void lf__train_free(lf_model *m);
static void lf__lora_free(lf_model *m);

LF_API void lf_model_close(lf_model *m) {
    lf__train_free(m);
    lf__lora_free(m);
    for (int i = 0; m->qw_ && i < m->cfg.L * LF_PROJ_COUNT; i++) lf_qtensor_deinit(&m->qw_[i]);
    LF_FREE(m->qw_);
    lf_qtensor_deinit(m->qhead_);
    LF_FREE(m->qhead_);
    for (int i = 0; i < m->n_blocks_; i++) LF_FREE(m->blocks_[i]);
    LF_FREE(m->blocks_);
    LF_FREE(m->extra_);
    LF_FREE(m->dir);
    if (m->own_pool) lf_pool_destroy(m->pool);
    lf_st_set_close(&m->st);
    LF_FREE(m->small_);
    LF_FREE(m->layers);
    lf_arena_deinit(&m->acts_);
    memset(m, 0, sizeof *m);
}

LF_API int64_t lf_model_n_params(const lf_model *m) {  // from the shapes: packed checkpoints count what they stand for
    const lf_model_config *c = &m->cfg;
    int64_t n = (int64_t)c->V * c->C * (c->tied ? 1 : 2) + c->C;
    for (int l = 0; l < c->L; l++) {
        n += 2 * (int64_t)c->C;
        for (int p = 0; p < LF_PROJ_COUNT; p++) n += lf_tensor_numel(&m->layers[l].w[p]) + (m->layers[l].b[p] ? m->layers[l].w[p].shape[0] : 0);
    }
    return n;
}

// The bytes a quantized weight takes: codes and scales.
static size_t lf__qtensor_bytes(const lf_qtensor *q) {
    size_t n = (size_t)q->rows * (size_t)q->cols, nb = q->blocksize ? (n + (size_t)q->blocksize - 1) / (size_t)q->blocksize : 0;
    switch (q->type) {
    case LF_QTYPE_INT8: return n + (size_t)q->rows * 4;
    case LF_QTYPE_Q8_0: return n / 32 * LF_Q8_0_BYTES;
    case LF_QTYPE_Q4_0: return n / 32 * LF_Q4_0_BYTES;
    case LF_QTYPE_Q4: return n / 2 + n / (size_t)q->blocksize * 5 + (q->g_idx ? (size_t)q->cols * 4 : 0);
    default: return (n + 1) / 2 + (q->qabsmax ? nb + (nb + LF__QDQ_BLOCK - 1) / LF__QDQ_BLOCK * 4 : nb * 4);
    }
}

LF_API size_t lf_model_weight_bytes(const lf_model *m) {
    size_t n = 0;
    for (int i = 0; i < m->st.n; i++)
        for (int j = 0; j < m->st.files[i].n; j++) {
            const lf_st_tensor *t = &m->st.files[i].tensors[j];
            int l, at = 0;
            const lf_qtensor *q = NULL;  // a quantized projection counts at its quantized size
            if (m->qw_ && sscanf(t->name, "model.layers.%d.%n", &l, &at) == 1 && at > 0 && l >= 0 && l < m->cfg.L)
                for (int p = 0; p < LF_PROJ_COUNT; p++) {
                    size_t k = strlen(lf_proj_name((lf_proj)p));
                    if (!strncmp(t->name + at, lf_proj_name((lf_proj)p), k) && !strcmp(t->name + at + k, ".weight")) q = m->layers[l].q[p];
                }
            if (m->qhead_ && !strcmp(t->name, m->cfg.tied ? "model.embed_tokens.weight" : "lm_head.weight")) q = m->qhead_;
            n += q ? lf__qtensor_bytes(q) : (size_t)(t->end - t->begin);
        }
    return n;
}

#if (LF_KV_BLOCK & (LF_KV_BLOCK - 1)) != 0
#error "LF_KV_BLOCK must be a power of two"
#endif

// Floats from one block's start to the next, and from one layer's rows to the next within one.
#define LF__KV_BLOCK_FLOATS(kv) ((size_t)(kv)->L * LF_KV_BLOCK * (size_t)(kv)->width)
#define LF__KV_LAYER_FLOATS(kv) ((size_t)LF_KV_BLOCK * (size_t)(kv)->width)

// Offset in k or v of layer l's row for position p of slot seq (the block must exist).
static size_t lf__kv_off(const lf_kv *kv, int l, int seq, int p) {
    int32_t b = kv->table[(size_t)seq * (size_t)kv->blocks_per_seq + (size_t)(p / LF_KV_BLOCK)];
    return (size_t)b * LF__KV_BLOCK_FLOATS(kv) + (size_t)l * LF__KV_LAYER_FLOATS(kv) +
           (size_t)(p % LF_KV_BLOCK) * (size_t)kv->width;
}

static lf_status lf__kv_alloc(lf_kv *kv, const lf_model *m, int n_blocks, int max_seqs, int max_seq_len, bool paged) {
    memset(kv, 0, sizeof *kv);
    if (max_seqs <= 0) max_seqs = 1;
    if (max_seq_len <= 0) max_seq_len = m->max_seq_len;
    if (max_seq_len > m->max_seq_len)
        return lf__fail(LF_ERR_CAPACITY, "KV cache: max_seq_len %d is over the model's max_seq_len %d", max_seq_len,
                        m->max_seq_len);
    kv->L = m->cfg.L, kv->max_seqs = max_seqs, kv->max_seq_len = max_seq_len, kv->width = m->cfg.NKV * m->cfg.HS;
    kv->blocks_per_seq = (max_seq_len + LF_KV_BLOCK - 1) / LF_KV_BLOCK, kv->paged = paged;
    if (!paged && max_seqs > INT32_MAX / kv->blocks_per_seq) return lf__fail(LF_ERR_NOMEM, "KV cache: size overflow");
    kv->n_blocks = paged ? n_blocks : max_seqs * kv->blocks_per_seq;
    size_t n, cells = (size_t)max_seqs * (size_t)kv->blocks_per_seq;
    if (!lf__mul_ok((size_t)kv->n_blocks, LF__KV_BLOCK_FLOATS(kv), &n)) return lf__fail(LF_ERR_NOMEM, "KV cache: size overflow");
    kv->k = (float *)lf__calloc(n, sizeof(float), "KV cache (keys)");
    kv->v = kv->k ? (float *)lf__calloc(n, sizeof(float), "KV cache (values)") : NULL;
    kv->len = kv->v ? (int32_t *)lf__calloc((size_t)max_seqs, sizeof(int32_t), "KV cache lengths") : NULL;
    kv->table = kv->len ? (int32_t *)lf__alloc(cells * sizeof(int32_t), "KV block table") : NULL;
    if (kv->table && paged) {
        kv->ref = (int32_t *)lf__calloc((size_t)n_blocks, sizeof(int32_t), "KV block references");
        kv->free_ = kv->ref ? (int32_t *)lf__alloc((size_t)n_blocks * sizeof(int32_t), "KV free blocks") : NULL;
    }
    if (!kv->table || (paged && !kv->free_)) {
        lf_kv_deinit(kv);
        return LF_ERR_NOMEM;
    }
    for (size_t i = 0; i < cells; i++) kv->table[i] = paged ? -1 : (int32_t)i;
    for (int i = 0; paged && i < n_blocks; i++) kv->free_[i] = n_blocks - 1 - i;  // taken from block 0 up
    kv->n_free = paged ? n_blocks : 0;
    return LF_OK;
}

LF_API lf_status lf_kv_init(lf_kv *kv, const lf_model *m, int max_seqs, int max_seq_len) {
    return lf__kv_alloc(kv, m, 0, max_seqs, max_seq_len, false);
}

LF_API lf_status lf_kv_init_paged(lf_kv *kv, const lf_model *m, int n_blocks, int max_seqs, int max_seq_len) {
    if (n_blocks < 1) {
        memset(kv, 0, sizeof *kv);
        return lf__fail(LF_ERR_ARG, "KV cache: n_blocks must be >= 1, got %d", n_blocks);
    }
    return lf__kv_alloc(kv, m, n_blocks, max_seqs, max_seq_len, true);
}

LF_API size_t lf_kv_block_bytes(const lf_model *m) {
    return 2 * (size_t)m->cfg.L * LF_KV_BLOCK * (size_t)m->cfg.NKV * (size_t)m->cfg.HS * sizeof(float);
}

LF_API void lf_kv_deinit(lf_kv *kv) {
    LF_FREE(kv->k), LF_FREE(kv->v), LF_FREE(kv->len), LF_FREE(kv->table), LF_FREE(kv->ref), LF_FREE(kv->free_);
    memset(kv, 0, sizeof *kv);
}

static void lf__kv_unref(lf_kv *kv, int32_t b) {
    if (--kv->ref[b] == 0) kv->free_[kv->n_free++] = b;
}

LF_API void lf_kv_seq_release(lf_kv *kv, int seq) {
    if (seq < 0 || seq >= kv->max_seqs) return;
    kv->len[seq] = 0;
    int32_t *t = kv->table + (size_t)seq * (size_t)kv->blocks_per_seq;
    for (int j = 0; kv->paged && j < kv->blocks_per_seq; j++)
        if (t[j] >= 0) lf__kv_unref(kv, t[j]), t[j] = -1;
}

LF_API lf_status lf_kv_reserve(lf_kv *kv, int seq, int n) {
    if (seq < 0 || seq >= kv->max_seqs) return lf__fail(LF_ERR_ARG, "KV reserve: slot %d outside [0, %d)", seq, kv->max_seqs);
    if (n < 0 || n > kv->max_seq_len)
        return lf__fail(LF_ERR_ARG, "KV reserve: %d positions, max_seq_len is %d", n, kv->max_seq_len);
    if (!kv->paged) return LF_OK;
    int32_t *t = kv->table + (size_t)seq * (size_t)kv->blocks_per_seq;
    int first = kv->len[seq] / LF_KV_BLOCK, end = (n + LF_KV_BLOCK - 1) / LF_KV_BLOCK, need = 0;
    for (int j = 0; j < end; j++) need += t[j] < 0 || (j >= first && kv->ref[t[j]] > 1);
    if (need > kv->n_free)
        return lf__fail(LF_ERR_CAPACITY, "KV reserve: slot %d needs %d more blocks, %d are free", seq, need, kv->n_free);
    for (int j = 0; j < end; j++) {
        if (t[j] >= 0 && (j < first || kv->ref[t[j]] == 1)) continue;
        int32_t b = kv->free_[--kv->n_free];
        kv->ref[b] = 1;
        if (t[j] >= 0) {  // shared and about to be written: this slot's own copy
            size_t F = LF__KV_BLOCK_FLOATS(kv);
            memcpy(kv->k + (size_t)b * F, kv->k + (size_t)t[j] * F, F * sizeof(float));
            memcpy(kv->v + (size_t)b * F, kv->v + (size_t)t[j] * F, F * sizeof(float));
            lf__kv_unref(kv, t[j]);
        }
        t[j] = b;
    }
    return LF_OK;
}

LF_API void lf_kv_seq_copy(lf_kv *kv, int from, int to, int n) {
    int blocks = (n + LF_KV_BLOCK - 1) / LF_KV_BLOCK;
    int32_t *a = kv->table + (size_t)from * (size_t)kv->blocks_per_seq, *b = kv->table + (size_t)to * (size_t)kv->blocks_per_seq;
    if (kv->paged) {
        lf_kv_seq_release(kv, to);
        for (int j = 0; j < blocks; j++) b[j] = a[j], kv->ref[a[j]]++;
    } else {
        size_t F = LF__KV_BLOCK_FLOATS(kv);
        for (int j = 0; j < blocks; j++) {
            memcpy(kv->k + (size_t)b[j] * F, kv->k + (size_t)a[j] * F, F * sizeof(float));
            memcpy(kv->v + (size_t)b[j] * F, kv->v + (size_t)a[j] * F, F * sizeof(float));
        }
    }
    kv->len[to] = n;
}

LF_API void lf_kv_seq_truncate(lf_kv *kv, int seq, int len) {
    if (seq >= 0 && seq < kv->max_seqs && len >= 0 && len < kv->len[seq]) kv->len[seq] = len;
}

// Projection p of layer l is q from now on. The mapped original is not read again: its pages
// are given back (the whole pages inside it).
static void lf__proj_quantized(lf_model *m, int l, lf_proj p, lf_qtensor *q) {
    lf_tensor *w = &m->layers[l].w[p];
#if !defined(LF_NO_STDIO) && !defined(_WIN32)
    uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE), a = ((uintptr_t)w->data + pg - 1) & ~(pg - 1),
              b = ((uintptr_t)w->data + (uintptr_t)lf_tensor_numel(w) * lf_dtype_size(w->dtype)) & ~(pg - 1);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
#endif
    m->layers[l].q[p] = q, w->data = NULL, w->dtype = LF_DTYPE_INVALID;
}

// The head in Q8_0 for the inference forward (rows a multiple of 32 long; else it stays).
static lf_status lf__head_quantize(lf_model *m) {
    int64_t V = m->cfg.V, C = m->cfg.C;
    if (m->qhead_ || C % 32) return LF_OK;
    float *f = (float *)lf__alloc((size_t)(V * C) * sizeof(float), "head (f32)");
    m->qhead_ = f ? (lf_qtensor *)lf__calloc(1, sizeof(lf_qtensor), "quantized head") : NULL;
    lf_status s = m->qhead_ ? LF_OK : LF_ERR_NOMEM;
    if (s == LF_OK) {
        lf_convert_to_f32(f, m->lm_head.data, m->lm_head.dtype, V * C);
        lf_qtensor_desc qd = {LF_QTYPE_Q8_0, 0, false, false};
        if ((s = lf_qtensor_quantize(m->qhead_, f, V, C, &qd)) != LF_OK) LF_FREE(m->qhead_), m->qhead_ = NULL;
    }
    LF_FREE(f);
    return s;
}

LF_API lf_status lf_model_quantize(lf_model *m, const lf_qtensor_desc *d) {
    const lf_model_config *c = &m->cfg;
    int todo = 0;  // projections held in f32/bf16/f16 (all, or those an adapter merge dequantized)
    for (int l = 0; l < c->L; l++)
        for (int p = 0; p < LF_PROJ_COUNT; p++) todo += !m->layers[l].q[p];
    if (m->train_ || !todo) return lf__fail(LF_ERR_ARG, "model_quantize: the model is %s", m->train_ ? "training" : "quantized already");
    if (!d || d->type < LF_QTYPE_NF4 || d->type > LF_QTYPE_Q4) return lf__fail(LF_ERR_ARG, "model_quantize: d.type must be NF4, INT8, Q8_0, Q4_0 or Q4");
    int64_t most = 0;
    for (int p = 0; p < LF_PROJ_COUNT; p++) most = LF__MAX(most, lf_tensor_numel(&m->layers[0].w[p]));
    if (!m->qw_ && !(m->qw_ = (lf_qtensor *)lf__calloc((size_t)c->L * LF_PROJ_COUNT, sizeof(lf_qtensor), "quantized weights")))
        return LF_ERR_NOMEM;
    float *f = (float *)lf__alloc((size_t)most * sizeof(float), "quantization scratch");
    if (!f) return LF_ERR_NOMEM;
    lf_status s = LF_OK;
    for (int l = 0; l < c->L && s == LF_OK; l++)
        for (int p = 0; p < LF_PROJ_COUNT && s == LF_OK; p++) {
            lf_tensor *w = &m->layers[l].w[p];
            lf_qtensor *q = &m->qw_[l * LF_PROJ_COUNT + p];
            if (m->layers[l].q[p]) continue;
            lf_qtensor_deinit(q);  // what a merge replaced
            lf_convert_to_f32(f, w->data, w->dtype, lf_tensor_numel(w));
            if ((s = lf_qtensor_quantize(q, f, w->shape[0], w->shape[1], d)) != LF_OK) break;
            lf__proj_quantized(m, l, (lf_proj)p, q);
        }
    LF_FREE(f);
    if (s == LF_OK && (d->type == LF_QTYPE_Q8_0 || d->type == LF_QTYPE_Q4_0)) s = lf__head_quantize(m);
    return s == LF_OK ? s : lf__wrap(s, "model_quantize (the model is unusable now; close it)");
}

// -- 6.1 attention
//
// One query row attends to keys [lo, hi] of its sequence (causal; lo > 0 under a sliding
// window, where transformers keeps key k when q - k < window). The inference path reads K and
// V from the KV cache; the training path from the layer's own k and v activations, keeping the
// probabilities for the backward pass. Both run lf__attn_row.

// Where row t of K and V is: t * stride, or with a block table (the KV cache) in block
// tab[t / LF_KV_BLOCK], blocks bstride apart.
typedef struct lf__rows {
    const int32_t *tab;
    size_t stride, bstride;
} lf__rows;
LF__INLINE size_t lf__row_at(const lf__rows *r, int t) {
    return r->tab ? (size_t)r->tab[t / LF_KV_BLOCK] * r->bstride + (size_t)(t % LF_KV_BLOCK) * r->stride : (size_t)t * r->stride;
}
// The last row from t on that is stride after the one before it (the end of t's block), <= hi.
LF__INLINE int lf__rows_run(const lf__rows *r, int t, int hi) {
    return r->tab ? LF__MIN(hi, (t / LF_KV_BLOCK + 1) * LF_KV_BLOCK - 1) : hi;
}

// p[0 .. hi-lo] = softmax(q . K[t] * scale), out = sum p[t] V[t].
static void lf__attn_row(float *out, float *p, const float *q, const float *K, const float *V, const lf__rows *r, int lo,
                         int hi, int HS, float scale) {
    for (int t = lo; t <= hi;)
        for (const float *k = K + lf__row_at(r, t), *ke = k + (size_t)(lf__rows_run(r, t, hi) - t) * r->stride; k <= ke;
             k += r->stride)
            p[t++ - lo] = lf__dot(q, k, HS) * scale;
    lf__softmax_inplace(p, hi - lo + 1);
    memset(out, 0, (size_t)HS * sizeof(float));
    for (int t = lo; t <= hi;)
        for (const float *v = V + lf__row_at(r, t), *ve = v + (size_t)(lf__rows_run(r, t, hi) - t) * r->stride; v <= ve;
             v += r->stride)
            lf__axpy(out, p[t++ - lo], v, HS);
}

static int lf__attn_lo(const lf_model_config *c, int layer, int p) {
    int w = c->sliding_window;
    return w > 0 && layer >= c->window_from_layer && p - w + 1 > 0 ? p - w + 1 : 0;
}

typedef struct lf__attn_job {
    const lf_model *m;
    const lf_kv *kv;
    int layer, n;
    const int32_t *pos, *seq;
    const float *q;   // [n, NH, HS]
    float *out;       // [n, NH, HS]
    float *scores;    // [threads, max_seq_len]
} lf__attn_job;

static void lf__attn_worker(void *arg, int64_t j0, int64_t j1, int tid) {
    const lf__attn_job *J = (const lf__attn_job *)arg;
    const lf_model_config *c = &J->m->cfg;
    int NH = c->NH, HS = c->HS, group = c->NH / c->NKV, W = J->kv->width;
    float scale = 1.0f / sqrtf((float)HS), *sc = J->scores + (size_t)tid * (size_t)J->m->max_seq_len;
    for (int64_t j = j0; j < j1; j++) {  // head-major, so each thread's range holds early and late tokens alike
        int64_t i = j % J->n;
        int h = (int)(j / J->n), p = J->pos[i];
        const lf_kv *kv = J->kv;
        lf__rows r = {kv->table + (size_t)J->seq[i] * (size_t)kv->blocks_per_seq, (size_t)W, LF__KV_BLOCK_FLOATS(kv)};
        size_t base = (size_t)J->layer * LF__KV_LAYER_FLOATS(kv) + (size_t)(h / group) * (size_t)HS;
        lf__attn_row(J->out + (i * NH + h) * HS, sc, J->q + (i * NH + h) * HS, kv->k + base, kv->v + base, &r,
                     lf__attn_lo(c, J->layer, p), p, HS, scale);
    }
}

// Training attention over whole sequences: q [B, T, NH, HS], k and v [B, T, NKV, HS] (after
// RoPE), out [B, T, NH, HS], probs [B, NH, T, T] kept for the backward pass (row t holds
// keys 0..t; entries outside [lo, t] are 0).
typedef struct lf__tattn_job {
    float *out, *probs;
    const float *q, *k, *v;
    float *dq, *dk, *dv;         // backward only: dq overwritten, dk/dv overwritten per (b, kv head)
    const float *dout;
    const int32_t *lo;           // [B, T] the first key of each query's sample (packing)
    const lf_model_config *c;
    int layer, B, T;
} lf__tattn_job;

static void lf__tattn_fwd(void *arg, int64_t j0, int64_t j1, int tid) {  // jobs: (b, h, t)
    (void)tid;
    const lf__tattn_job *J = (const lf__tattn_job *)arg;
    int NH = J->c->NH, NKV = J->c->NKV, HS = J->c->HS, T = J->T;
    float scale = 1.0f / sqrtf((float)HS);
    for (int64_t j = j0; j < j1; j++) {
        int t = (int)(j % T), h = (int)(j / T % NH), b = (int)(j / T / NH);
        int lo = LF__MAX(lf__attn_lo(J->c, J->layer, t), J->lo[(size_t)b * (size_t)T + (size_t)t]);
        size_t kvoff = ((size_t)b * (size_t)T * (size_t)NKV + (size_t)(h / (NH / NKV))) * (size_t)HS;
        float *p = J->probs + (((size_t)b * (size_t)NH + (size_t)h) * (size_t)T + (size_t)t) * (size_t)T;
        lf__rows r = {NULL, (size_t)NKV * (size_t)HS, 0};
        memset(p, 0, (size_t)T * sizeof(float));
        lf__attn_row(J->out + (((size_t)b * (size_t)T + (size_t)t) * (size_t)NH + (size_t)h) * (size_t)HS, p + lo,
                     J->q + (((size_t)b * (size_t)T + (size_t)t) * (size_t)NH + (size_t)h) * (size_t)HS, J->k + kvoff,
                     J->v + kvoff, &r, lo, t, HS, scale);
    }
}

// Backward, one job per (b, kv head): it owns that head's dk and dv, so the sums over the
// query heads of its group and over t run in a fixed order.
static void lf__tattn_bwd(void *arg, int64_t j0, int64_t j1, int tid) {
    (void)tid;
    const lf__tattn_job *J = (const lf__tattn_job *)arg;
    int NH = J->c->NH, NKV = J->c->NKV, HS = J->c->HS, T = J->T, group = NH / NKV;
    size_t qs = (size_t)NH * (size_t)HS, ks = (size_t)NKV * (size_t)HS;
    float scale = 1.0f / sqrtf((float)HS);
    for (int64_t j = j0; j < j1; j++) {
        int b = (int)(j / NKV), kh = (int)(j % NKV);
        size_t kvoff = (size_t)b * (size_t)T * ks + (size_t)kh * (size_t)HS;
        for (int t = 0; t < T; t++) memset(J->dk + kvoff + (size_t)t * ks, 0, (size_t)HS * sizeof(float)),
                                     memset(J->dv + kvoff + (size_t)t * ks, 0, (size_t)HS * sizeof(float));
        for (int h = kh * group; h < (kh + 1) * group; h++)
            for (int t = 0; t < T; t++) {
                int lo = LF__MAX(lf__attn_lo(J->c, J->layer, t), J->lo[(size_t)b * (size_t)T + (size_t)t]);
                const float *p = J->probs + (((size_t)b * (size_t)NH + (size_t)h) * (size_t)T + (size_t)t) * (size_t)T;
                size_t qoff = ((size_t)b * (size_t)T + (size_t)t) * qs + (size_t)h * (size_t)HS;
                const float *go = J->dout + qoff, *q = J->q + qoff;
                float *dq = J->dq + qoff, dpsum = 0;
                for (int u = lo; u <= t; u++) dpsum += p[u] * lf__dot(go, J->v + kvoff + (size_t)u * ks, HS);
                memset(dq, 0, (size_t)HS * sizeof(float));
                for (int u = lo; u <= t; u++) {
                    float dp = lf__dot(go, J->v + kvoff + (size_t)u * ks, HS), ds = p[u] * (dp - dpsum) * scale;
                    lf__axpy(dq, ds, J->k + kvoff + (size_t)u * ks, HS);
                    lf__axpy(J->dk + kvoff + (size_t)u * ks, ds, q, HS);
                    lf__axpy(J->dv + kvoff + (size_t)u * ks, p[u], go, HS);
                }
            }
    }
}

// -- 6.2 the forward pass

// y[n, out] = x W^T + b, plus the projection's low-rank update when it has one (as PEFT's
// eval forward: no dropout).
static void lf__proj_rows(const lf_model *m, const lf_layer *ly, lf_proj p, float *y, const float *x, int64_t n,
                          const lf__acts *a, lf__kern kern) {
    const lf_tensor *w = &ly->w[p];
    const lf_qtensor *q = ly->q[p];
    if (q && (q->type == LF_QTYPE_Q8_0 || q->type == LF_QTYPE_Q4_0)) lf__qdot_matmul(m->pool, y, x, q, ly->b[p], n, a->mm, false);
    else if (q) lf__qgemm(m->pool, y, x, q, ly->b[p], n, a->mm, false, false, kern);
    else lf__gemm_k(m->pool, y, x, w->data, w->dtype, ly->b[p], n, w->shape[0], w->shape[1], a->mm, false, kern);
    const lf_lowrank *d = m->lora_off ? NULL : ly->lora[p];
    if (!d) return;
    lf__gemm_k(m->pool, a->lora, x, d->A, LF_DTYPE_F32, NULL, n, d->r, w->shape[1], a->mm, false, kern);
    for (int64_t i = 0; i < n * d->r; i++) a->lora[i] *= d->scale;
    lf__gemm_k(m->pool, y, a->lora, d->B, LF_DTYPE_F32, NULL, n, w->shape[0], d->r, a->mm, true, kern);
}
// y [n, out] = x [n, in] through projection p; rows split between the kernels as a->n_dot says.
// (Q8_0/Q4_0 weights use the int8 dot product, which gives every row the same bits anyway.)
static void lf__proj_forward(const lf_model *m, const lf_layer *ly, lf_proj p, float *y, const float *x, int64_t n,
                             const lf__acts *a) {
    int64_t d = a->n_dot < 0 ? 0 : LF__MIN(a->n_dot, n), out = ly->w[p].shape[0], in = ly->w[p].shape[1];
    if (a->n_dot < 0) lf__proj_rows(m, ly, p, y, x, n, a, LF__KERN_AUTO);
    if (a->n_dot >= 0 && d > 0) lf__proj_rows(m, ly, p, y, x, d, a, LF__KERN_DOT);
    if (a->n_dot >= 0 && n > d) lf__proj_rows(m, ly, p, y + d * out, x + d * in, n - d, a, LF__KERN_PACKED);
}

// The inputs of a layer's projections, by the groups that share one: q, k and v; o; gate and up;
// down (quantization's calibration, section 11).
enum { LF__IN_QKV, LF__IN_O, LF__IN_GATE_UP, LF__IN_DOWN, LF__IN_COUNT };

// Layer l on the residual stream a->x [n, C] (tokens at positions P of KV slots S), in place.
// Where capture[g] is given it gets input group g [n, width].
static void lf__layer_forward(const lf_model *m, lf_kv *kv, int l, const lf__acts *a, int n, const int32_t *P,
                              const int32_t *S, float *const *capture) {
    const lf_model_config *c = &m->cfg;
    const lf_layer *ly = &m->layers[l];
    int64_t C = c->C, KW = kv->width, FF = c->FF, HQ = (int64_t)c->NH * c->HS;
#define LF__CAPTURE(g, src, width) \
    if (capture && capture[g]) memcpy(capture[g], src, (size_t)n * (size_t)(width) * sizeof(float))
    lf__rmsnorm_forward(a->xn, NULL, a->x, ly->attn_norm, n, C, c->eps);
    LF__CAPTURE(LF__IN_QKV, a->xn, C);
    lf__proj_forward(m, ly, LF_PROJ_Q, a->q, a->xn, n, a);
    lf__proj_forward(m, ly, LF_PROJ_K, a->k, a->xn, n, a);
    lf__proj_forward(m, ly, LF_PROJ_V, a->v, a->xn, n, a);
    lf__rope_forward(a->q, m->rope_cos, m->rope_sin, P, n, c->NH, c->HS);
    lf__rope_forward(a->k, m->rope_cos, m->rope_sin, P, n, c->NKV, c->HS);
    for (int i = 0; i < n; i++) {
        size_t row = lf__kv_off(kv, l, S[i], P[i]);
        memcpy(kv->k + row, a->k + i * KW, (size_t)KW * sizeof(float));
        memcpy(kv->v + row, a->v + i * KW, (size_t)KW * sizeof(float));
    }
    lf__attn_job aj = {m, kv, l, n, P, S, a->q, a->att, a->scores};
    lf_parallel_for(m->pool, (int64_t)n * c->NH, lf__attn_worker, &aj);
    LF__CAPTURE(LF__IN_O, a->att, HQ);
    lf__proj_forward(m, ly, LF_PROJ_O, a->xn, a->att, n, a);
    for (int64_t i = 0; i < n * C; i++) a->x[i] += a->xn[i];
    lf__rmsnorm_forward(a->xn, NULL, a->x, ly->mlp_norm, n, C, c->eps);
    LF__CAPTURE(LF__IN_GATE_UP, a->xn, C);
    lf__proj_forward(m, ly, LF_PROJ_GATE, a->gate, a->xn, n, a);
    lf__proj_forward(m, ly, LF_PROJ_UP, a->up, a->xn, n, a);
    lf__swiglu_forward(a->gate, a->gate, a->up, n * FF);
    LF__CAPTURE(LF__IN_DOWN, a->gate, FF);
    lf__proj_forward(m, ly, LF_PROJ_DOWN, a->xn, a->gate, n, a);
    for (int64_t i = 0; i < n * C; i++) a->x[i] += a->xn[i];
#undef LF__CAPTURE
}

// n_dot < 0: the matmul kernels follow the row count. Else (batch invariance, the serving
// engine of section 12) the first n_dot tokens take the decode kernels and the others the
// prefill ones whatever n is, so a token's logits are the same bits whatever else the batch holds.
static lf_status lf__model_forward(lf_model *m, lf_kv *kv, const lf_batch *b, float *logits, int n_dot) {
    const lf_model_config *c = &m->cfg;
    int n = b->n;
    if (n <= 0) return lf__fail(LF_ERR_ARG, "forward: empty batch");
    if (n > m->max_tokens)
        return lf__fail(LF_ERR_CAPACITY, "forward: %d tokens in one batch, max_tokens is %d", n, m->max_tokens);
    if (kv->L != c->L || kv->width != c->NKV * c->HS || kv->max_seq_len > m->max_seq_len)
        return lf__fail(LF_ERR_ARG, "forward: KV cache made for another model (or for a longer max_seq_len than this one's %d)",
                        m->max_seq_len);
    lf__acts a;
    lf__acts_plan(m, &a, m->acts_.base);
    const int32_t *P = b->pos, *S = b->seq;
    if (!P)
        for (int i = 0; i < n; i++) a.pos[i] = i;
    if (!S) memset(a.seq, 0, (size_t)n * sizeof(int32_t));
    P = P ? P : a.pos, S = S ? S : a.seq;
    a.n_dot = LF__MIN(n_dot, n);
    // validate every token before the cache changes; writing position p forgets what followed it
    lf_status s = LF_OK;
    int i = 0, blk;
    for (; i < n && s == LF_OK; i++) {
        if (b->tokens[i] < 0 || b->tokens[i] >= c->V)
            s = lf__fail(LF_ERR_ARG, "forward: token %d is id %d, outside [0, %d)", i, b->tokens[i], c->V);
        else if (S[i] < 0 || S[i] >= kv->max_seqs)
            s = lf__fail(LF_ERR_ARG, "forward: token %d uses KV slot %d, outside [0, %d)", i, S[i], kv->max_seqs);
        else if (P[i] < 0 || P[i] >= kv->max_seq_len)
            s = lf__fail(LF_ERR_CAPACITY, "forward: token %d at position %d, max_seq_len is %d", i, P[i], kv->max_seq_len);
        else if (P[i] > kv->len[S[i]])
            s = lf__fail(LF_ERR_ARG, "forward: token %d at position %d but slot %d holds only %d positions", i, P[i],
                         S[i], kv->len[S[i]]);
        else if (kv->paged && (blk = kv->table[(size_t)S[i] * (size_t)kv->blocks_per_seq + (size_t)(P[i] / LF_KV_BLOCK)]) < 0)
            s = lf__fail(LF_ERR_CAPACITY, "forward: token %d at position %d of slot %d has no KV block (lf_kv_reserve)", i,
                         P[i], S[i]);
        else if (kv->paged && kv->ref[blk] > 1)
            s = lf__fail(LF_ERR_ARG, "forward: token %d writes a KV block slot %d shares (lf_kv_reserve copies it)", i, S[i]);
        else
            a.undo[i] = kv->len[S[i]], kv->len[S[i]] = P[i] + 1;
    }
    if (s != LF_OK) {
        for (i -= 2; i >= 0; i--) kv->len[S[i]] = a.undo[i];
        return s;
    }
    int64_t C = c->C;
    // embedding rows
    for (i = 0; i < n; i++)
        lf_convert_to_f32(a.x + i * C, (const unsigned char *)m->embed.data + (size_t)b->tokens[i] * (size_t)C *
                                                                                   lf_dtype_size(m->embed.dtype),
                          m->embed.dtype, C);
    for (int l = 0; l < c->L; l++) {
        lf__layer_forward(m, kv, l, &a, n, P, S, NULL);
        if (b->hidden && b->hidden[l]) memcpy(b->hidden[l], a.x, (size_t)(n * C) * sizeof(float));
    }
    // final norm and lm_head on the rows that want logits only
    int rows = 0, rows_dot = 0;
    for (i = 0; i < n; i++)
        if (b->logits ? b->logits[i] != 0 : i == n - 1) {
            memcpy(a.rows + rows++ * C, a.x + i * C, (size_t)C * sizeof(float));
            rows_dot += i < a.n_dot;
        }
    lf__rmsnorm_forward(a.xn, NULL, a.rows, m->final_norm, rows, C, c->eps);
    if (m->qhead_) lf__qdot_matmul(m->pool, logits, a.xn, m->qhead_, NULL, rows, a.mm, false);
    else if (n_dot < 0) lf__matmul(m->pool, logits, a.xn, m->lm_head.data, m->lm_head.dtype, NULL, rows, c->V, C, a.mm);
    else
        for (int part = 0; part < 2; part++) {
            int r0 = part ? rows_dot : 0, nr = part ? rows - rows_dot : rows_dot;
            if (nr > 0)
                lf__gemm_k(m->pool, logits + (size_t)r0 * (size_t)c->V, a.xn + (size_t)r0 * (size_t)C, m->lm_head.data,
                           m->lm_head.dtype, NULL, nr, c->V, C, a.mm, false, part ? LF__KERN_PACKED : LF__KERN_DOT);
        }
    return LF_OK;
}
LF_API lf_status lf_model_forward(lf_model *m, lf_kv *kv, const lf_batch *b, float *logits) {
    return lf__model_forward(m, kv, b, logits, -1);
}

// -- 6.3 training: forward with saved activations, loss, backward
//
// ON TRAINING: the activations of a [B, T] micro-batch live in one block planned up front
// (llm.c style): per layer the inputs each backward op needs. Full fine-tuning copies every
// weight into one f32 block of master parameters and points the model's views at it, so
// inference on the same model sees the weights being trained. With adapters only their A and
// B are parameters and the base is frozen: F32 weights are used where they are mapped, others
// are upcast once into a frozen block, and no weight gradient is computed for them.
// The loss is transformers' causal-LM loss: position t predicts labels[t + 1], -100 is
// ignored, and the sum is divided by the number of scored targets. Logits exist LF__CE_ROWS
// rows at a time: each chunk is scored and back-propagated before the next.
// Dropout on an adapter's input draws its mask from a hash of (seed, call, layer, projection,
// element), so the backward pass regenerates the forward's mask instead of storing it.

#define LF__CE_ROWS 64

typedef struct lf__param {
    char name[160];
    int64_t n, off;  // elements; offset in the gradient block (and the optimizer's moments)
    float *p, *g;    // value and gradient
} lf__param;

typedef struct lf__train {
    int B, T, n_params, r;  // r: the largest adapter rank
    bool lora;              // adapters train, the base is frozen
    bool head_t_ready;      // head_t holds the frozen head's transpose
    bool checkpointing;     // one layer's activations, recomputed in the backward pass
    bool eval;              // the current micro-batch is evaluated: no dropout
    int64_t n_train;        // floats of the parameters
    lf__param *params;
    float *master, *grads;  // [n_train] each; master is NULL with adapters
    float *frozen;          // adapters: the base weights not stored in F32, upcast
    uint64_t seed, calls;   // adapter dropout masks
    lf_arena acts;
    // per layer [L, N, ...]: residual in, normed, rstd, q, k, v (after RoPE), probs, attention
    // out, residual mid, normed, rstd, gate, up, swiglu out
    float *x_in, *xn1, *rstd1, *q, *k, *v, *probs, *att, *x_mid, *xn2, *rstd2, *gate, *up, *h;
    float *x_out, *xnf, *rstdf;           // [N, C], [N, C], [N]
    float *logits, *losses;               // [LF__CE_ROWS, V], [LF__CE_ROWS]
    float *dx, *dxn, *dq, *dk, *dv, *datt, *dgate, *dup, *dh, *dtmp;  // gradient scratch
    int32_t *pos, *lo, *targets;          // [N]: positions, first key of each query's sample, targets
    float *logp, *dlogp;                  // [N]: an objective's inputs and gradients
    float *lu;                            // [L, 7, N, r] adapters: scale * dropout(x) A^T
    float *xd, *xdt, *dyt, *ut, *du, *dut, *abt;  // adapter scratch
    void *mm;                             // matmul scratch
    float *bwd, *bwd_head;                // matmul backward scratch: layers, lm_head
    float *head_t;                        // lm_head^T [C, V], made once per micro-batch
} lf__train;

static lf__param *lf__train_param(lf__train *t, const char *name, float *p, int64_t n, int64_t *off) {
    lf__param *q = &t->params[t->n_params++];
    snprintf(q->name, sizeof q->name, "%s", name);
    q->n = n, q->off = *off, q->p = p, q->g = t->grads + *off;
    *off += n;
    return q;
}

// Every weight tensor of the model (embedding, projections, untied head), for the loops below.
static int lf__model_weights_list(lf_model *m, lf_tensor **out) {
    int k = 0;
    out[k++] = &m->embed;
    for (int l = 0; l < m->cfg.L; l++)
        for (int p = 0; p < LF_PROJ_COUNT; p++) out[k++] = &m->layers[l].w[p];
    if (!m->cfg.tied) out[k++] = &m->lm_head;
    return k;
}

// Full fine-tuning: the parameters in transformers' named_parameters() order get master
// copies of the weights, and the model's views point at them.
static void lf__train_full_params(lf_model *m, lf__train *t) {
    const lf_model_config *c = &m->cfg;
    int64_t off = 0;
    char name[160];
#define LF__P(nm, n_, tensor, vec)                                                                   \
    do {                                                                                             \
        lf__param *p_ = lf__train_param(t, nm, t->master + off, n_, &off);                           \
        lf_tensor *tt_ = (tensor);                                                                   \
        const float **vv_ = (vec);                                                                   \
        if (tt_) lf_convert_to_f32(p_->p, tt_->data, tt_->dtype, n_), tt_->data = p_->p, tt_->dtype = LF_DTYPE_F32; \
        else memcpy(p_->p, *vv_, (size_t)(n_) * sizeof(float)), *vv_ = p_->p;                      \
    } while (0)
    LF__P("model.embed_tokens.weight", (int64_t)c->V * c->C, &m->embed, (const float **)NULL);
    for (int l = 0; l < c->L; l++) {
        lf_layer *ly = &m->layers[l];
        for (int p = 0; p < LF_PROJ_COUNT; p++) {
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, lf_proj_name((lf_proj)p));
            LF__P(name, lf_tensor_numel(&ly->w[p]), &ly->w[p], (const float **)NULL);
            if (ly->b[p]) {
                snprintf(name, sizeof name, "model.layers.%d.%s.bias", l, lf_proj_name((lf_proj)p));
                LF__P(name, ly->w[p].shape[0], (lf_tensor *)NULL, &ly->b[p]);
            }
        }
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
        LF__P(name, c->C, (lf_tensor *)NULL, &ly->attn_norm);
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
        LF__P(name, c->C, (lf_tensor *)NULL, &ly->mlp_norm);
    }
    LF__P("model.norm.weight", c->C, (lf_tensor *)NULL, &m->final_norm);
    if (!c->tied) LF__P("lm_head.weight", (int64_t)c->V * c->C, &m->lm_head, (const float **)NULL);
    else m->lm_head = m->embed;  // one tensor, one gradient (as transformers ties them)
#undef LF__P
}

// Adapters: A and B of each adapted projection, named as PEFT saves them; the base is frozen.
static void lf__train_lora_params(lf_model *m, lf__train *t, lf_tensor **w, int nw) {
    int64_t off = 0;
    char name[160];
    for (int l = 0; l < m->cfg.L; l++)
        for (int p = 0; p < LF_PROJ_COUNT; p++) {
            lf_lowrank *d = m->layers[l].lora[p];
            if (!d) continue;
            const char *pre = "base_model.model.model.layers";
            snprintf(name, sizeof name, "%s.%d.%s.lora_A.weight", pre, l, lf_proj_name((lf_proj)p));
            d->dA = lf__train_param(t, name, d->A, d->r * m->layers[l].w[p].shape[1], &off)->g;
            snprintf(name, sizeof name, "%s.%d.%s.lora_B.weight", pre, l, lf_proj_name((lf_proj)p));
            d->dB = lf__train_param(t, name, d->B, m->layers[l].w[p].shape[0] * d->r, &off)->g;
        }
    float *cur = t->frozen;
    for (int i = 0; i < nw; i++)
        if (w[i]->dtype != LF_DTYPE_F32 && w[i]->data) {  // quantized ones have no data
            int64_t n = lf_tensor_numel(w[i]);
            lf_convert_to_f32(cur, w[i]->data, w[i]->dtype, n);
            w[i]->data = cur, w[i]->dtype = LF_DTYPE_F32, cur += n;
        }
    if (m->cfg.tied) m->lm_head = m->embed;
}

// The activation block for [B, T] (STYLE R10): sizes in floats, one slot each.
static size_t lf__train_plan(const lf_model *m, lf__train *t, unsigned char *base) {
    const lf_model_config *c = &m->cfg;
    size_t N = (size_t)t->B * (size_t)t->T, L = (size_t)(t->checkpointing ? 1 : c->L), C = (size_t)c->C,
           Q = (size_t)c->NH * (size_t)c->HS, KV = (size_t)c->NKV * (size_t)c->HS, FF = (size_t)c->FF, T = (size_t)t->T,
           R = (size_t)t->r;
    size_t maxw = LF__MAX(LF__MAX(C, FF), Q), th = (size_t)lf_pool_size(m->pool);
    size_t sizes[] = {(size_t)c->L * N * C, L * N * C, L * N, L * N * Q, L * N * KV, L * N * KV, L * (size_t)t->B * (size_t)c->NH * T * T,
                      L * N * Q, L * N * C, L * N * C, L * N, L * N * FF, L * N * FF, L * N * FF,
                      N * C, N * C, N, (size_t)LF__CE_ROWS * (size_t)c->V, LF__CE_ROWS,
                      N * C, N * maxw, N * Q, N * KV, N * KV, N * Q, N * FF, N * FF, N * FF, N * maxw, N, N, N, N, N,
                      L * LF_PROJ_COUNT * N * R, R ? N * maxw : 0, R ? maxw * N : 0, R ? maxw * N : 0, R * N, N * R,
                      R * N, R * maxw,
                      LF__MAX(lf__matmul_scratch((int64_t)N, (int64_t)maxw, (int)th), lf__qgemm_scratch((int64_t)maxw, (int)th)) / 4 + 1,
                      lf__matmul_backward_scratch((int64_t)N, (int64_t)maxw, (int64_t)maxw, (int)th, true),
                      lf__matmul_backward_scratch(LF__CE_ROWS, (int64_t)c->V, (int64_t)C, (int)th, false),
                      (size_t)c->V * C};
    void **slots[] = {(void **)&t->x_in, (void **)&t->xn1, (void **)&t->rstd1, (void **)&t->q, (void **)&t->k,
                      (void **)&t->v, (void **)&t->probs, (void **)&t->att, (void **)&t->x_mid, (void **)&t->xn2,
                      (void **)&t->rstd2, (void **)&t->gate, (void **)&t->up, (void **)&t->h, (void **)&t->x_out,
                      (void **)&t->xnf, (void **)&t->rstdf, (void **)&t->logits, (void **)&t->losses, (void **)&t->dx,
                      (void **)&t->dxn, (void **)&t->dq, (void **)&t->dk, (void **)&t->dv, (void **)&t->datt,
                      (void **)&t->dgate, (void **)&t->dup, (void **)&t->dh, (void **)&t->dtmp, (void **)&t->pos,
                      (void **)&t->lo, (void **)&t->targets, (void **)&t->logp, (void **)&t->dlogp, (void **)&t->lu, (void **)&t->xd, (void **)&t->xdt,
                      (void **)&t->dyt, (void **)&t->ut, (void **)&t->du, (void **)&t->dut, (void **)&t->abt,
                      &t->mm, (void **)&t->bwd, (void **)&t->bwd_head, (void **)&t->head_t};
    size_t off = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        *slots[i] = base ? base + off : NULL;
        off += (sizes[i] * 4 + 63) & ~(size_t)63;
    }
    return off;
}

LF_API lf_status lf_model_train_begin(lf_model *m, int B, int T, unsigned flags) {
    if (m->train_) return lf__fail(LF_ERR_ARG, "train_begin: the model is already in training mode");
    if (B <= 0 || T <= 1 || T > m->max_seq_len)
        return lf__fail(LF_ERR_CAPACITY, "train_begin: batch [%d, %d] (T must be in [2, max_seq_len %d])", B, T, m->max_seq_len);
    if (m->qw_ && !m->lora_r) return lf__fail(LF_ERR_ARG, "train_begin: a quantized model trains adapters only (attach LoRA: QLoRA)");
    lf__train *t = (lf__train *)lf__calloc(1, sizeof *t, "training state");
    if (!t) return LF_ERR_NOMEM;
    const lf_model_config *c = &m->cfg;
    lf_tensor **w = (lf_tensor **)lf__alloc((size_t)(2 + LF_PROJ_COUNT * c->L) * sizeof *w, "weight list");
    if (!w) return LF_FREE(t), LF_ERR_NOMEM;
    int nw = lf__model_weights_list(m, w);
    int64_t n_frozen = 0;
    t->B = B, t->T = T, t->lora = m->lora_r > 0, t->r = m->lora_r, t->seed = 0x6c6f7261;
    t->checkpointing = (flags & LF_TRAIN_CHECKPOINTING) != 0;
    if (t->lora) {
        for (int l = 0; l < c->L; l++)
            for (int p = 0; p < LF_PROJ_COUNT; p++)
                if (m->layers[l].lora[p]) {
                    const lf_tensor *wt = &m->layers[l].w[p];
                    t->n_params += 2, t->n_train += m->layers[l].lora[p]->r * (wt->shape[0] + wt->shape[1]);
                }
        for (int i = 0; i < nw; i++) n_frozen += w[i]->dtype == LF_DTYPE_F32 || !w[i]->data ? 0 : lf_tensor_numel(w[i]);
    } else {
        int per_layer = 2 + LF_PROJ_COUNT;
        for (int p = 0; p < LF_PROJ_COUNT; p++) per_layer += m->layers[0].b[p] != NULL;
        t->n_params = 2 + !c->tied + c->L * per_layer;
        t->n_train = lf_model_n_params(m);  // every tensor of the checkpoint: at least the parameters
    }
    lf_status s = LF_OK;
    int64_t n_model = t->n_train;  // the extras come after the model's parameters
    for (int i = 0; i < m->n_extra_; i++) t->n_params++, t->n_train += m->extra_[i].n;
    t->params = (lf__param *)lf__calloc((size_t)t->n_params, sizeof(lf__param), "parameter table");
    t->grads = t->params ? (float *)lf__calloc((size_t)t->n_train, sizeof(float), "gradients") : NULL;
    if (t->grads && !t->lora) t->master = (float *)lf__calloc((size_t)n_model, sizeof(float), "f32 master weights");
    if (t->grads && n_frozen) t->frozen = (float *)lf__calloc((size_t)n_frozen, sizeof(float), "frozen f32 base weights");
    if (!t->grads || (!t->lora && !t->master) || (n_frozen && !t->frozen)) s = LF_ERR_NOMEM;
    if (s == LF_OK) s = lf_arena_init(&t->acts, lf__train_plan(m, t, NULL), "training activations");
    if (s == LF_OK) {
        lf__train_plan(m, t, t->acts.base);
        t->n_params = 0;
        if (t->lora) lf__train_lora_params(m, t, w, nw);
        else lf__train_full_params(m, t);
        for (int i = 0; i < m->n_extra_; i++) lf__train_param(t, m->extra_[i].name, m->extra_[i].p, m->extra_[i].n, &n_model);
        m->train_ = t;
    } else {
        LF_FREE(t->params), LF_FREE(t->master), LF_FREE(t->grads), LF_FREE(t->frozen);
        lf_arena_deinit(&t->acts);
        LF_FREE(t);
    }
    LF_FREE(w);
    return s;
}

LF_API lf_status lf_model_train_extra(lf_model *m, const char *name, float *p, int64_t n) {
    if (m->train_) return lf__fail(LF_ERR_ARG, "train_extra: '%s' comes before lf_model_train_begin", name);
    if (strlen(name) > 150 || n <= 0) return lf__fail(LF_ERR_ARG, "train_extra: a bad name or size for '%.150s'", name);
    for (int i = 0; i < m->n_extra_; i++)
        if (strcmp(m->extra_[i].name, name) == 0) return lf__fail(LF_ERR_ARG, "train_extra: '%s' is there already", name);
    lf__param *e = (lf__param *)LF_REALLOC(m->extra_, (size_t)(m->n_extra_ + 1) * sizeof *e);
    if (!e) return lf__fail(LF_ERR_NOMEM, "out of memory for an extra parameter");
    m->extra_ = e, e += m->n_extra_++;
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    e->p = p, e->n = n;
    return LF_OK;
}

// The weights point at the master or frozen copies: a model leaves training when it closes.
static void lf__train_free(lf_model *m) {
    lf__train *t = m->train_;
    if (!t) return;
    for (int l = 0; m->layers && l < m->cfg.L; l++)
        for (int p = 0; p < LF_PROJ_COUNT; p++)
            if (m->layers[l].lora[p]) m->layers[l].lora[p]->dA = m->layers[l].lora[p]->dB = NULL;
    LF_FREE(t->params), LF_FREE(t->master), LF_FREE(t->grads), LF_FREE(t->frozen);
    lf_arena_deinit(&t->acts);
    LF_FREE(t);
    m->train_ = NULL;
}

LF_API void lf_model_train_zero_grads(lf_model *m) {
    if (m->train_) memset(m->train_->grads, 0, (size_t)m->train_->n_train * sizeof(float));
}

LF_API int64_t lf_model_n_trainable(const lf_model *m) { return m->train_ ? m->train_->n_train : 0; }

LF_API const float *lf_model_grad(const lf_model *m, const char *name, int64_t *n) {
    for (int i = 0; m->train_ && i < m->train_->n_params; i++)
        if (strcmp(m->train_->params[i].name, name) == 0) {
            if (n) *n = m->train_->params[i].n;
            return m->train_->params[i].g;
        }
    return NULL;
}

// The gradient of data p that the model's views hold (a master copy); NULL when p is frozen.
static float *lf__train_grad_of(const lf__train *t, const void *p) {
    uintptr_t a = (uintptr_t)p, lo = (uintptr_t)t->master, hi = (uintptr_t)(t->master + t->n_train);
    return t->master && a >= lo && a < hi ? t->grads + ((const float *)p - t->master) : NULL;
}

// Adapter dropout: element i of (call, layer, projection) is kept, scaled by 1 / (1 - p), or 0.
static float lf__lora_keep(const lf__train *t, int l, int p, int64_t i, float drop) {
    uint64_t x = t->seed ^ (t->calls * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)(l * LF_PROJ_COUNT + p) << 48) ^ (uint64_t)i;
    return (float)(lf__splitmix64(&x) >> 40) * (1.0f / 16777216.0f) < drop ? 0.0f : 1.0f / (1.0f - drop);
}

// The adapter's input: x itself, or x with dropout applied (in t->xd).
static const float *lf__lora_input(lf__train *t, const lf_lowrank *d, int l, int p, const float *x, int64_t n) {
    if (d->dropout <= 0 || t->eval) return x;
    for (int64_t i = 0; i < n; i++) t->xd[i] = x[i] * lf__lora_keep(t, l, p, i, d->dropout);
    return t->xd;
}

// y = x W^T + b, plus the adapter's scale * dropout(x) A^T B^T (its first product is kept).
static void lf__tproj_forward(lf_model *m, lf__train *t, int l, lf_proj p, float *y, const float *x) {
    const lf_layer *ly = &m->layers[l];
    const lf_tensor *w = &ly->w[p];
    const lf_lowrank *d = m->lora_off ? NULL : ly->lora[p];
    int64_t N = (int64_t)t->B * t->T, out = w->shape[0], in = w->shape[1];
    if (ly->q[p]) lf__qgemm(m->pool, y, x, ly->q[p], ly->b[p], N, t->mm, false, false, LF__KERN_AUTO);
    else lf__matmul(m->pool, y, x, w->data, w->dtype, ly->b[p], N, out, in, t->mm);
    if (!d) return;
    float *u = t->lu + ((t->checkpointing ? 0 : (int64_t)l) * LF_PROJ_COUNT + p) * N * t->r;
    lf__matmul(m->pool, u, lf__lora_input(t, d, l, p, x, N * in), d->A, LF_DTYPE_F32, NULL, N, d->r, in, t->mm);
    for (int64_t i = 0; i < N * d->r; i++) u[i] *= d->scale;
    lf__gemm(m->pool, y, u, d->B, LF_DTYPE_F32, NULL, N, out, d->r, t->mm, true);
}

// dx = dy . W plus the adapter's path, and the gradients of what trains: W and b, or A and B.
static void lf__tproj_backward(lf_model *m, lf__train *t, int l, lf_proj p, float *dx, const float *dy, const float *x) {
    const lf_layer *ly = &m->layers[l];
    const lf_tensor *w = &ly->w[p];
    const lf_lowrank *d = m->lora_off ? NULL : ly->lora[p];
    lf_pool *pool = m->pool;
    int64_t N = (int64_t)t->B * t->T, out = w->shape[0], in = w->shape[1];
    if (ly->q[p]) lf__qgemm(pool, dx, dy, ly->q[p], NULL, N, t->mm, false, true, LF__KERN_AUTO);  // frozen: dx only
    else
        lf__matmul_backward(pool, dx, lf__train_grad_of(t, w->data), lf__train_grad_of(t, ly->b[p]), dy, x,
                            (const float *)w->data, NULL, N, out, in, t->bwd);
    if (!d) return;
    int64_t r = d->r;
    const float *u = t->lu + ((t->checkpointing ? 0 : (int64_t)l) * LF_PROJ_COUNT + p) * N * t->r;
    lf__transpose(pool, t->dyt, dy, N, out);  // dB[out, r] += dy^T u
    lf__transpose(pool, t->ut, u, N, r);
    lf__gemm(pool, d->dB, t->dyt, t->ut, LF_DTYPE_F32, NULL, out, r, N, t->mm, true);
    lf__transpose(pool, t->abt, d->B, out, r);  // du[N, r] = scale * dy B
    lf__gemm(pool, t->du, dy, t->abt, LF_DTYPE_F32, NULL, N, r, out, t->mm, false);
    for (int64_t i = 0; i < N * r; i++) t->du[i] *= d->scale;
    lf__transpose(pool, t->dut, t->du, N, r);  // dA[r, in] += du^T dropout(x)
    lf__transpose(pool, t->xdt, lf__lora_input(t, d, l, p, x, N * in), N, in);
    lf__gemm(pool, d->dA, t->dut, t->xdt, LF_DTYPE_F32, NULL, r, in, N, t->mm, true);
    lf__transpose(pool, t->abt, d->A, r, in);  // dx += (du A) * the dropout mask
    if (d->dropout <= 0) {
        lf__gemm(pool, dx, t->du, t->abt, LF_DTYPE_F32, NULL, N, in, r, t->mm, true);
        return;
    }
    lf__gemm(pool, t->xd, t->du, t->abt, LF_DTYPE_F32, NULL, N, in, r, t->mm, false);
    for (int64_t i = 0; i < N * in; i++) dx[i] += t->xd[i] * lf__lora_keep(t, l, p, i, d->dropout);
}

// Layer l's forward from its residual input x_in[l] to x_in[l + 1] (x_out after the last),
// keeping what its backward needs in the layer's slots (slot 0 for every layer when
// checkpointing: the backward pass then calls this again to recompute them).
static void lf__tlayer_forward(lf_model *m, lf__train *t, int l) {
    const lf_model_config *c = &m->cfg;
    const lf_layer *ly = &m->layers[l];
    int B = t->B, T = t->T;
    int64_t N = (int64_t)B * T, C = c->C, FF = c->FF, sl = t->checkpointing ? 0 : l;
    float *x = t->x_in + l * N * C, *xn1 = t->xn1 + sl * N * C, *q = t->q + sl * N * c->NH * c->HS,
          *k = t->k + sl * N * c->NKV * c->HS, *v = t->v + sl * N * c->NKV * c->HS, *att = t->att + sl * N * c->NH * c->HS,
          *xm = t->x_mid + sl * N * C, *xn2 = t->xn2 + sl * N * C, *gate = t->gate + sl * N * FF, *up = t->up + sl * N * FF,
          *h = t->h + sl * N * FF;
    lf__rmsnorm_forward(xn1, t->rstd1 + sl * N, x, ly->attn_norm, N, C, c->eps);
    lf__tproj_forward(m, t, l, LF_PROJ_Q, q, xn1);
    lf__tproj_forward(m, t, l, LF_PROJ_K, k, xn1);
    lf__tproj_forward(m, t, l, LF_PROJ_V, v, xn1);
    lf__rope_forward(q, m->rope_cos, m->rope_sin, t->pos, N, c->NH, c->HS);
    lf__rope_forward(k, m->rope_cos, m->rope_sin, t->pos, N, c->NKV, c->HS);
    lf__tattn_job aj = {att, t->probs + (size_t)sl * (size_t)B * (size_t)c->NH * (size_t)T * (size_t)T, q, k, v,
                        NULL, NULL, NULL, NULL, t->lo, c, l, B, T};
    lf_parallel_for(m->pool, (int64_t)B * c->NH * T, lf__tattn_fwd, &aj);
    lf__tproj_forward(m, t, l, LF_PROJ_O, xm, att);
    for (int64_t i = 0; i < N * C; i++) xm[i] += x[i];
    lf__rmsnorm_forward(xn2, t->rstd2 + sl * N, xm, ly->mlp_norm, N, C, c->eps);
    lf__tproj_forward(m, t, l, LF_PROJ_GATE, gate, xn2);
    lf__tproj_forward(m, t, l, LF_PROJ_UP, up, xn2);
    lf__swiglu_forward(h, gate, up, N * FF);
    float *xo = l + 1 < c->L ? t->x_in + (l + 1) * N * C : t->x_out;
    lf__tproj_forward(m, t, l, LF_PROJ_DOWN, xo, h);
    for (int64_t i = 0; i < N * C; i++) xo[i] += xm[i];
}

// The loss of a micro-batch and, with backward, its gradients; logp_out (may be NULL) gets every
// position's log p(target). Evaluation (no backward) runs without adapter dropout and leaves the
// dropout stream where it was.
static lf_status lf__train_run(lf_model *m, const lf_train_batch *b, float *loss, int *scored, float *logp_out, bool backward) {
    lf__train *t = m->train_;
    if (!t) return lf__fail(LF_ERR_ARG, "train_grads: call lf_model_train_begin first");
    const lf_model_config *c = &m->cfg;
    int B = t->B, T = t->T, L = c->L;
    int64_t N = (int64_t)B * T, C = c->C, FF = c->FF, V = c->V;
    const int32_t *tokens = b->tokens, *labels = b->labels;
    int n_valid = 0;
    for (int64_t i = 0; i < N; i++) {
        int32_t p = b->pos ? b->pos[i] : (int32_t)(i % T);
        if (tokens[i] < 0 || tokens[i] >= c->V) return lf__fail(LF_ERR_ARG, "train_grads: token %lld is id %d, outside [0, %d)", (long long)i, tokens[i], c->V);
        if (labels[i] != -100 && (labels[i] < 0 || labels[i] >= c->V))
            return lf__fail(LF_ERR_ARG, "train_grads: label %lld is %d, neither -100 nor in [0, %d)", (long long)i, labels[i], c->V);
        if (p != 0 && (i % T == 0 || p != t->pos[i - 1] + 1))
            return lf__fail(LF_ERR_ARG, "train_grads: position %lld is %d (a row starts at 0; then 0 or the previous + 1)", (long long)i, p);
        t->pos[i] = p;
        t->lo[i] = p == 0 ? (int32_t)(i % T) : t->lo[i - 1];
    }
    for (int64_t i = 0; i < N; i++) {  // position t predicts label t + 1 of the same sample
        t->targets[i] = i % T == T - 1 || t->pos[i + 1] == 0 ? -100 : labels[i + 1];
        n_valid += t->targets[i] != -100;
    }
    lf_pool *pool = m->pool;
    t->eval = !backward;
    if (scored) *scored = n_valid;
    // forward
    for (int64_t i = 0; i < N; i++) memcpy(t->x_in + i * C, (const float *)m->embed.data + (int64_t)tokens[i] * C, (size_t)C * 4);
    for (int l = 0; l < L; l++) lf__tlayer_forward(m, t, l);
    lf__rmsnorm_forward(t->xnf, t->rstdf, t->x_out, m->final_norm, N, C, c->eps);
    // feature losses: their gradients wait in dfeat until the backward reaches their layers
    float *dfeat = NULL;
    int n_feat = 0;
    double feat = 0;
    for (int l = 0; b->feature && l < L; l++) n_feat += b->feature_layers[l] != 0;
    if (n_feat && !(dfeat = (float *)lf__calloc((size_t)n_feat * (size_t)(N * C), sizeof(float), "feature gradients"))) return LF_ERR_NOMEM;
    for (int l = 0, j = 0; n_feat && l < L; l++)
        if (b->feature_layers[l]) feat += b->feature(b->feature_user, l, l + 1 < L ? t->x_in + (l + 1) * N * C : t->x_out, dfeat + (j++) * N * C, N,
                                                     (int)C, backward);
    // loss and the head's backward, LF__CE_ROWS rows at a time. An objective needs every
    // position's log p(target) first: one pass for those, then the gradient pass recomputes the
    // logits (d loss / d logits = dlogp * (onehot - softmax), cross-entropy's form per row).
    int n_div = b->n_scored > 0 ? b->n_scored : n_valid;
    float *dhead = lf__train_grad_of(t, m->lm_head.data), scale = n_div ? 1.0f / (float)n_div : 0.0f;
    bool by_logp = (b->objective && !b->head) || logp_out;
    double total = 0;
    if (backward && (!t->lora || !t->head_t_ready)) {  // shared by every chunk's dx; a frozen head needs it once
        lf__transpose(pool, t->head_t, (const float *)m->lm_head.data, V, C);
        t->head_t_ready = true;
    }
    for (int64_t r0 = 0; by_logp && r0 < N; r0 += LF__CE_ROWS) {
        int64_t rows = LF__MIN(LF__CE_ROWS, N - r0);
        lf__matmul(pool, t->logits, t->xnf + r0 * C, m->lm_head.data, LF_DTYPE_F32, NULL, rows, V, C, t->mm);
        lf__crossentropy_backward(t->logits, t->losses, t->targets + r0, NULL, rows, V, 0.0f);
        for (int64_t i = 0; i < rows; i++) t->logp[r0 + i] = -t->losses[i];
    }
    if (logp_out) memcpy(logp_out, t->logp, (size_t)N * sizeof(float));
    if (b->objective) {
        memset(t->dlogp, 0, (size_t)N * sizeof(float));
        *loss = b->objective(b->objective_user, t->logp, t->dlogp, B, T);
        for (int64_t i = 0; i < N; i++) t->dlogp[i] = t->targets[i] < 0 ? 0.0f : -t->dlogp[i];  // the rows' scales
    }
    for (int64_t r0 = 0; (!by_logp || (b->objective && backward)) && r0 < N; r0 += LF__CE_ROWS) {
        int64_t rows = LF__MIN(LF__CE_ROWS, N - r0);
        lf__matmul(pool, t->logits, t->xnf + r0 * C, m->lm_head.data, LF_DTYPE_F32, NULL, rows, V, C, t->mm);
        if (b->head) total += b->head(b->head_user, r0, (int)rows, t->logits, t->targets + r0, (int)V, backward);
        else lf__crossentropy_backward(t->logits, t->losses, t->targets + r0, b->objective ? t->dlogp + r0 : NULL, rows, V, scale);
        for (int64_t i = 0; i < rows && !b->head; i++) total += t->losses[i];
        if (backward)
            lf__matmul_backward(pool, t->dxn + r0 * C, dhead, NULL, t->logits, t->xnf + r0 * C, (const float *)m->lm_head.data,
                                t->head_t, rows, V, C, t->bwd_head);
    }
    if (b->head) *loss = (float)total;
    else if (!b->objective) *loss = n_valid ? (float)(total / n_valid) : 0.0f;
    *loss += (float)feat;
    if (!backward) return LF_FREE(dfeat), LF_OK;
    // backward
    memset(t->dx, 0, (size_t)(N * C) * sizeof(float));
    lf__rmsnorm_backward(t->dx, lf__train_grad_of(t, m->final_norm), t->dxn, t->x_out, m->final_norm, t->rstdf, N, C);
    for (int l = L - 1, j = n_feat - 1; l >= 0; l--) {
        const lf_layer *ly = &m->layers[l];
        if (n_feat && b->feature_layers[l]) lf__axpy(t->dx, 1.0f, dfeat + (j--) * N * C, N * C);  // d loss / d (layer l's output)
        if (t->checkpointing) lf__tlayer_forward(m, t, l);  // recompute what the slots held
        int64_t sl = t->checkpointing ? 0 : l;
        float *x = t->x_in + l * N * C, *xn1 = t->xn1 + sl * N * C, *q = t->q + sl * N * c->NH * c->HS,
              *k = t->k + sl * N * c->NKV * c->HS, *v = t->v + sl * N * c->NKV * c->HS, *att = t->att + sl * N * c->NH * c->HS,
              *xm = t->x_mid + sl * N * C, *xn2 = t->xn2 + sl * N * C, *gate = t->gate + sl * N * FF, *up = t->up + sl * N * FF,
              *h = t->h + sl * N * FF, *rstd1 = t->rstd1 + sl * N, *rstd2 = t->rstd2 + sl * N;
        // MLP: dx (the residual gradient) flows into h, then gate/up, then the norm
        lf__tproj_backward(m, t, l, LF_PROJ_DOWN, t->dh, t->dx, h);
        lf__swiglu_backward(t->dgate, t->dup, t->dh, gate, up, N * FF);
        lf__tproj_backward(m, t, l, LF_PROJ_GATE, t->dxn, t->dgate, xn2);
        lf__tproj_backward(m, t, l, LF_PROJ_UP, t->dtmp, t->dup, xn2);
        for (int64_t i = 0; i < N * C; i++) t->dxn[i] += t->dtmp[i];
        lf__rmsnorm_backward(t->dx, lf__train_grad_of(t, ly->mlp_norm), t->dxn, xm, ly->mlp_norm, rstd2, N, C);
        // attention
        lf__tproj_backward(m, t, l, LF_PROJ_O, t->datt, t->dx, att);
        lf__tattn_job aj = {NULL, t->probs + (size_t)sl * (size_t)B * (size_t)c->NH * (size_t)T * (size_t)T, q, k, v,
                            t->dq, t->dk, t->dv, t->datt, t->lo, c, l, B, T};
        lf_parallel_for(pool, (int64_t)B * c->NKV, lf__tattn_bwd, &aj);
        lf__rope_backward(t->dq, m->rope_cos, m->rope_sin, t->pos, N, c->NH, c->HS);
        lf__rope_backward(t->dk, m->rope_cos, m->rope_sin, t->pos, N, c->NKV, c->HS);
        lf__tproj_backward(m, t, l, LF_PROJ_Q, t->dxn, t->dq, xn1);
        lf__tproj_backward(m, t, l, LF_PROJ_K, t->dtmp, t->dk, xn1);
        for (int64_t i = 0; i < N * C; i++) t->dxn[i] += t->dtmp[i];
        lf__tproj_backward(m, t, l, LF_PROJ_V, t->dtmp, t->dv, xn1);
        for (int64_t i = 0; i < N * C; i++) t->dxn[i] += t->dtmp[i];
        lf__rmsnorm_backward(t->dx, lf__train_grad_of(t, ly->attn_norm), t->dxn, x, ly->attn_norm, rstd1, N, C);
    }
    float *demb = lf__train_grad_of(t, m->embed.data);
    if (demb) lf__embedding_backward(demb, t->dx, tokens, N, C);
    t->calls++;
    LF_FREE(dfeat);
    return LF_OK;
}

LF_API lf_status lf_model_train_grads(lf_model *m, const lf_train_batch *b, float *loss) {
    return lf__train_run(m, b, loss, NULL, NULL, true);
}

LF_API lf_status lf_model_train_eval(lf_model *m, const lf_train_batch *b, float *loss, int *n_scored) {
    return lf__train_run(m, b, loss, n_scored, NULL, false);
}

LF_API lf_status lf_model_train_logps(lf_model *m, const lf_train_batch *b, float *logp) {
    float loss;
    lf_train_batch plain = *b;
    plain.objective = NULL, plain.head = NULL, plain.feature = NULL;
    return lf__train_run(m, &plain, &loss, NULL, logp, false);
}

LF_API void lf_model_train_rng(lf_model *m, uint64_t seed, uint64_t calls) {
    if (m->train_) m->train_->seed = seed, m->train_->calls = calls;
}

LF_API uint64_t lf_model_train_calls(const lf_model *m) { return m->train_ ? m->train_->calls : 0; }

// -- 6.4 saving

#ifndef LF_NO_STDIO
// Copies dir/name to out/name when it exists.
static lf_status lf__copy_file(const char *dir, const char *out, const char *name) {
    char *src = lf_path_join(dir, name), *dst = lf_path_join(out, name), *data = NULL;
    size_t len = 0;
    lf_status s = src && dst ? LF_OK : LF_ERR_NOMEM;
    if (s == LF_OK && lf_path_exists(src) && (s = lf_file_read(src, 0, &data, &len)) == LF_OK)
        s = lf_file_write_atomic(dst, data, len);
    LF_FREE(src), LF_FREE(dst), LF_FREE(data);
    return s;
}

// Copies a model directory's files other than the weights (those that exist).
static lf_status lf__copy_model_files(const char *dir, const char *out) {
    static const char *files[] = {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                                  "special_tokens_map.json"};
    lf_status s = LF_OK;
    for (size_t i = 0; s == LF_OK && i < sizeof files / sizeof *files; i++) s = lf__copy_file(dir, out, files[i]);
    return s;
}

typedef struct lf__saver {
    const lf_model *m;
    lf_dtype dtype;        // wanted; INVALID: the checkpoint's
    int n;
    lf_st_entry *e;
    void **owned;          // conversions
    char (*names)[112];
} lf__saver;

// Adds one tensor, converted when its data's dtype is not the wanted one.
static LF__PRINTF(6, 7) lf_status lf__saver_add(lf__saver *w, const void *data, lf_dtype dt, int64_t d0, int64_t d1,
                                                const char *fmt, ...) {
    char *name = w->names[w->n];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof w->names[0], fmt, ap);
    va_end(ap);
    const lf_st_tensor *src = lf_st_set_find(&w->m->st, name);
    lf_dtype want = w->dtype ? w->dtype : src ? src->dtype : LF_DTYPE_F32;
    int64_t k = d0 * (d1 ? d1 : 1);
    lf_st_entry *e = &w->e[w->n];
    e->name = name, e->dtype = want, e->ndim = d1 ? 2 : 1, e->shape[0] = d0, e->shape[1] = d1, e->data = data;
    if (want != dt) {
        float *f = (float *)lf__alloc((size_t)k * sizeof(float), "tensor conversion");
        if (!f) return LF_ERR_NOMEM;
        w->owned[w->n] = f, e->data = f;
        lf_convert_to_f32(f, data, dt, k);
        for (int64_t i = 0; want != LF_DTYPE_F32 && i < k; i++)  // in place: element i is read before written
            ((uint16_t *)f)[i] = want == LF_DTYPE_BF16 ? lf_f32_to_bf16(f[i]) : lf_f32_to_f16(f[i]);
    }
    w->n++;
    return LF_OK;
}

// Adds a quantized projection's tensors under prefix ("model.layers.0.self_attn.q_proj") in
// some layout (section 11); NULL: projections are written dequantized.
typedef lf_status (*lf__qsave_fn)(lf__saver *w, const lf_qtensor *q, const char *prefix, int layout);

// lf_model_save's body; with qsave, quantized projections go through it, the tensors file gets
// metadata meta_kv[n_meta] and config.json gets "quantization_config": qconfig (a JSON object).
static lf_status lf__model_write(const lf_model *m, const char *dir, lf_dtype dtype, lf__qsave_fn qsave, int layout,
                                 const char *const *meta_kv, int n_meta, const char *qconfig);

LF_API lf_status lf_model_save(const lf_model *m, const char *dir, lf_dtype dtype) {
    const char *meta[2] = {"format", "pt"};
    return lf__model_write(m, dir, dtype, NULL, 0, meta, 1, NULL);
}

// The end of the JSON value starting at text[i] (an object, array, string or scalar).
static size_t lf__json_value_end(const char *text, size_t len, size_t i) {
    int depth = 0;
    bool str = false;
    for (; i < len; i++) {
        char ch = text[i];
        if (str) {
            if (ch == '\\') i++;
            else if (ch == '"') {
                str = false;
                if (depth == 0) return i + 1;
            }
        } else if (ch == '"') str = true;
        else if (ch == '{' || ch == '[') depth++;
        else if (ch == '}' || ch == ']') {
            if (--depth == 0) return i + 1;
            if (depth < 0) return i;
        } else if (depth == 0 && (ch == ',' || ch == '\n')) return i;
    }
    return len;
}

// config.json of the model written to dir without its "quantization_config" and, when qconfig
// is given, with "quantization_config": qconfig (a JSON object) before the closing brace.
static lf_status lf__write_config_q(const lf_model *m, const char *dir, const char *qconfig) {
    char *src = lf_path_join(m->dir, "config.json"), *dst = lf_path_join(dir, "config.json"), *text = NULL;
    size_t len = 0;
    lf__buf out = LF__ZERO;
    lf_status s = src && dst ? lf_file_read(src, LF_MAX_JSON_BYTES, &text, &len) : LF_ERR_NOMEM;
    if (s == LF_OK) {
        const char *key = strstr(text, "\"quantization_config\"");
        size_t cut0 = len, cut1 = len;
        if (key) {  // from the comma before the key (or after the value) to the end of the value
            size_t k = (size_t)(key - text), v = k + strlen("\"quantization_config\"");
            while (v < len && (text[v] == ' ' || text[v] == ':' || text[v] == '\n' || text[v] == '\t' || text[v] == '\r')) v++;
            cut1 = lf__json_value_end(text, len, v);
            cut0 = k;
            while (cut0 > 0 && text[cut0 - 1] != ',' && text[cut0 - 1] != '{') cut0--;
            if (cut0 > 0 && text[cut0 - 1] == ',') cut0--;
            else  // the first key: drop the comma after the value instead
                while (cut1 < len && (text[cut1] == ',' || text[cut1] == ' ' || text[cut1] == '\n' || text[cut1] == '\r')) cut1++;
        }
        lf__buf_put(&out, text, key ? cut0 : len);
        if (key) lf__buf_put(&out, text + cut1, len - cut1);
        if (qconfig) {
            size_t end = out.len;
            while (end > 0 && out.data[end - 1] != '}') end--;
            if (end == 0) s = lf__fail(LF_ERR_FORMAT, "%s: not a JSON object", src);
            else {
                size_t k = end - 1;  // the closing brace; the text before it ends with a value or '{'
                while (k > 0 && (out.data[k - 1] == ' ' || out.data[k - 1] == '\n' || out.data[k - 1] == '\r' || out.data[k - 1] == '\t')) k--;
                bool empty = out.data[k - 1] == '{';
                out.len = k;
                lf__buf_printf(&out, "%s\n  \"quantization_config\": %s\n}\n", empty ? "" : ",", qconfig);
            }
        }
        if (s == LF_OK) s = out.failed ? LF_ERR_NOMEM : lf_file_write_atomic(dst, out.data, out.len);
    }
    LF_FREE(src), LF_FREE(dst), LF_FREE(text), LF_FREE(out.data);
    return s;
}

static lf_status lf__model_write(const lf_model *m, const char *dir, lf_dtype dtype, lf__qsave_fn qsave, int layout,
                                 const char *const *meta_kv, int n_meta, const char *qconfig) {
    if (m->lora_r) return lf__fail(LF_ERR_ARG, "model_save: adapters are attached (lf_lora_merge them first, or lf_lora_save them)");
    if (dtype != LF_DTYPE_INVALID && dtype != LF_DTYPE_F32 && dtype != LF_DTYPE_BF16 && dtype != LF_DTYPE_F16)
        return lf__fail(LF_ERR_ARG, "model_save: dtype %s (F32, BF16 or F16)", lf_dtype_name(dtype));
    lf_status s = lf_dir_make(dir);
    if (s != LF_OK) return s;
    char a[PATH_MAX], b[PATH_MAX];
    if (realpath(dir, a) && realpath(m->dir, b) && strcmp(a, b) == 0)
        return lf__fail(LF_ERR_ARG, "model_save: %s is the model's own directory (its weights are mapped from there)", dir);
    const lf_model_config *c = &m->cfg;
    size_t cap = 3 + (size_t)c->L * (5 * LF_PROJ_COUNT + 2);
    lf__saver w = {m, dtype, 0, (lf_st_entry *)lf__calloc(cap, sizeof(lf_st_entry), "tensor list"),
                   (void **)lf__calloc(cap, sizeof(void *), "tensor list"), NULL};
    w.names = w.e && w.owned ? (char(*)[112])lf__alloc(cap * sizeof *w.names, "tensor names") : NULL;
    s = w.names ? LF_OK : LF_ERR_NOMEM;
    if (s == LF_OK) s = lf__saver_add(&w, m->embed.data, m->embed.dtype, c->V, c->C, "model.embed_tokens.weight");
    for (int l = 0; l < c->L && s == LF_OK; l++) {
        const lf_layer *ly = &m->layers[l];
        for (int p = 0; p < LF_PROJ_COUNT && s == LF_OK; p++) {
            const char *pn = lf_proj_name((lf_proj)p);
            if (ly->q[p] && qsave) {
                char prefix[96];
                snprintf(prefix, sizeof prefix, "model.layers.%d.%s", l, pn);
                if ((s = qsave(&w, ly->q[p], prefix, layout)) == LF_OK && ly->b[p])
                    s = lf__saver_add(&w, ly->b[p], LF_DTYPE_F32, ly->w[p].shape[0], 0, "model.layers.%d.%s.bias", l, pn);
                continue;
            }
            float *deq = NULL;  // a quantized weight is written dequantized
            if (ly->q[p] && !(deq = (float *)lf__alloc((size_t)lf_tensor_numel(&ly->w[p]) * sizeof(float), "dequantized weight")))
                s = LF_ERR_NOMEM;
            if (deq) lf_qtensor_dequantize(ly->q[p], deq);
            if (s == LF_OK)
                s = lf__saver_add(&w, deq ? deq : ly->w[p].data, deq ? LF_DTYPE_F32 : ly->w[p].dtype, ly->w[p].shape[0],
                                  ly->w[p].shape[1], "model.layers.%d.%s.weight", l, lf_proj_name((lf_proj)p));
            if (deq && s == LF_OK && !w.owned[w.n - 1]) w.owned[w.n - 1] = deq;  // written as it is
            else LF_FREE(deq);
            if (s == LF_OK && ly->b[p]) s = lf__saver_add(&w, ly->b[p], LF_DTYPE_F32, ly->w[p].shape[0], 0, "model.layers.%d.%s.bias", l, pn);
        }
        if (s == LF_OK) s = lf__saver_add(&w, ly->attn_norm, LF_DTYPE_F32, c->C, 0, "model.layers.%d.input_layernorm.weight", l);
        if (s == LF_OK) s = lf__saver_add(&w, ly->mlp_norm, LF_DTYPE_F32, c->C, 0, "model.layers.%d.post_attention_layernorm.weight", l);
    }
    if (s == LF_OK) s = lf__saver_add(&w, m->final_norm, LF_DTYPE_F32, c->C, 0, "model.norm.weight");
    if (s == LF_OK && !c->tied) s = lf__saver_add(&w, m->lm_head.data, m->lm_head.dtype, c->V, c->C, "lm_head.weight");
    char *path = s == LF_OK ? lf_path_join(dir, "model.safetensors") : NULL;
    if (s == LF_OK) s = path ? lf_st_write(path, w.e, w.n, meta_kv, n_meta) : LF_ERR_NOMEM;
    if (s == LF_OK) s = lf__copy_model_files(m->dir, dir);
    if (s == LF_OK && (qconfig || m->qw_)) s = lf__write_config_q(m, dir, qconfig);  // a quantized source's goes
    for (int i = 0; w.owned && i < w.n; i++) LF_FREE(w.owned[i]);
    LF_FREE(path), LF_FREE(w.e), LF_FREE(w.owned), LF_FREE(w.names);
    return s;
}
// lf_model_init's tensors: kind 0 normal(0, range), 1 zeros, 2 ones.
typedef struct lf__initw {
    lf_st_entry *e;
    char (*names)[112];
    float **vals;
    int n;
    double range;
    lf_rng rng;
} lf__initw;

static LF__PRINTF(5, 6) lf_status lf__initw_add(lf__initw *w, int kind, int64_t d0, int64_t d1, const char *fmt, ...) {
    int64_t k = d0 * (d1 ? d1 : 1);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->names[w->n], sizeof w->names[0], fmt, ap);
    va_end(ap);
    float *v = w->vals[w->n] = (float *)lf__alloc((size_t)k * sizeof(float), "initial weights");
    if (!v) return LF_ERR_NOMEM;
    for (int64_t i = 0; i < k; i++) v[i] = kind ? (float)(kind - 1) : (float)w->range * lf_rng_normal(&w->rng);
    lf_st_entry *e = &w->e[w->n++];
    e->name = w->names[w->n - 1], e->dtype = LF_DTYPE_F32, e->ndim = d1 ? 2 : 1, e->shape[0] = d0, e->shape[1] = d1, e->data = v;
    return LF_OK;
}

LF_API lf_status lf_model_init(const char *config_dir, const char *out_dir, uint64_t seed) {
    char *path = lf_path_join(config_dir, "config.json"), *text = NULL;
    size_t len = 0;
    lf_status s = path ? lf_file_read(path, LF_MAX_JSON_BYTES, &text, &len) : LF_ERR_NOMEM;
    lf_model_config c;
    lf_doc doc = LF__ZERO;
    double range = 0.02;
    if (s == LF_OK) s = lf_model_config_parse(&c, text, len, path);
    if (s == LF_OK) s = lf_json_parse(&doc, text, len, path);
    if (s == LF_OK) s = lf_cfg_num(&doc, doc.root, "initializer_range", false, &range);
    lf_doc_deinit(&doc), LF_FREE(text), LF_FREE(path);
    if (s != LF_OK) return s;
    if (!(range > 0)) return lf__fail(LF_ERR_CONFIG, "%s/config.json: initializer_range must be > 0", config_dir);
    if ((s = lf_dir_make(out_dir)) != LF_OK) return s;
    int64_t C = c.C, Q = (int64_t)c.NH * c.HS, KV = (int64_t)c.NKV * c.HS, FF = c.FF;
    int64_t out[LF_PROJ_COUNT] = {Q, KV, KV, C, FF, FF, C}, in[LF_PROJ_COUNT] = {C, C, C, Q, C, C, FF};
    bool bias[LF_PROJ_COUNT] = {c.qkv_bias, c.qkv_bias, c.qkv_bias, c.o_bias, c.mlp_bias, c.mlp_bias, c.mlp_bias};
    size_t cap = 3 + (size_t)c.L * (2 * LF_PROJ_COUNT + 2);
    lf_st_entry *e = (lf_st_entry *)lf__calloc(cap, sizeof *e, "tensor list");
    char(*names)[112] = e ? (char(*)[112])lf__alloc(cap * sizeof *names, "tensor names") : NULL;
    float **vals = names ? (float **)lf__calloc(cap, sizeof *vals, "tensor list") : NULL;
    lf__initw w = {e, names, vals, 0, range, {{0, 0, 0, 0}}};
    lf_rng_seed(&w.rng, seed);
    s = vals ? LF_OK : LF_ERR_NOMEM;
    if (s == LF_OK) s = lf__initw_add(&w, 0, c.V, C, "model.embed_tokens.weight");
    for (int l = 0; l < c.L && s == LF_OK; l++) {
        for (int p = 0; p < LF_PROJ_COUNT && s == LF_OK; p++) {
            s = lf__initw_add(&w, 0, out[p], in[p], "model.layers.%d.%s.weight", l, lf_proj_name((lf_proj)p));
            if (bias[p] && s == LF_OK) s = lf__initw_add(&w, 1, out[p], 0, "model.layers.%d.%s.bias", l, lf_proj_name((lf_proj)p));
        }
        if (s == LF_OK) s = lf__initw_add(&w, 2, C, 0, "model.layers.%d.input_layernorm.weight", l);
        if (s == LF_OK) s = lf__initw_add(&w, 2, C, 0, "model.layers.%d.post_attention_layernorm.weight", l);
    }
    if (s == LF_OK) s = lf__initw_add(&w, 2, C, 0, "model.norm.weight");
    if (s == LF_OK && !c.tied) s = lf__initw_add(&w, 0, c.V, C, "lm_head.weight");
    int n = w.n;
    const char *meta[2] = {"format", "pt"};
    path = s == LF_OK ? lf_path_join(out_dir, "model.safetensors") : NULL;
    if (s == LF_OK) s = path ? lf_st_write(path, e, n, meta, 1) : LF_ERR_NOMEM;
    if (s == LF_OK) s = lf__copy_model_files(config_dir, out_dir);
    for (int i = 0; vals && i < n; i++) LF_FREE(vals[i]);
    LF_FREE(path), LF_FREE(e), LF_FREE(names), LF_FREE(vals);
    return s;
}
#endif

// == 7. lora (impl) ==============================================================================

typedef struct lf__lora {
    lf_lora_desc d;
    char targets[256];      // d.target_modules points here
    lf_lowrank *mods;       // [L, 7]; unused entries have r == 0
    float *vals;            // every A and B
} lf__lora;

static const char *lf__proj_short(int p) { return strchr(lf_proj_name((lf_proj)p), '.') + 1; }

LF_API lf_lora_desc lf_lora_desc_default(void) {
    lf_lora_desc d;
    memset(&d, 0, sizeof d);
    d.r = 8, d.alpha = 16, d.dropout = 0.05f, d.target_modules = "q_proj,k_proj,v_proj,o_proj";
    return d;
}

static void lf__lora_free(lf_model *m) {
    lf__lora *a = m->lora_;
    if (!a) return;
    for (int l = 0; m->layers && l < m->cfg.L; l++)
        for (int p = 0; p < LF_PROJ_COUNT; p++) m->layers[l].lora[p] = NULL;
    LF_FREE(a->mods), LF_FREE(a->vals);
    LF_FREE(a);
    m->lora_ = NULL, m->lora_r = 0;
}

// Which projections a target_modules list names: a bit per lf_proj.
static lf_status lf__lora_targets(const char *list, unsigned *mask) {
    *mask = 0;
    for (const char *s = list; *s;) {
        size_t n = strcspn(s, ", ");
        if (n == 10 && strncmp(s, "all-linear", 10) == 0) *mask = (1u << LF_PROJ_COUNT) - 1;
        else if (n) {
            int p = 0;
            while (p < LF_PROJ_COUNT && !(strlen(lf__proj_short(p)) == n && strncmp(s, lf__proj_short(p), n) == 0)) p++;
            if (p == LF_PROJ_COUNT)
                return lf__fail(LF_ERR_CONFIG, "lora.target_modules: '%.*s' is not one of q_proj k_proj v_proj o_proj "
                                               "gate_proj up_proj down_proj all-linear", (int)n, s);
            *mask |= 1u << p;
        }
        s += n + strspn(s + n, ", ");
    }
    return *mask ? LF_OK : lf__fail(LF_ERR_CONFIG, "lora.target_modules: empty");
}

// Allocates adapters of rank d->r on the projections of mask[l] for each layer l.
static lf_status lf__lora_make(lf_model *m, const lf_lora_desc *d, const unsigned *mask) {
    if (m->lora_) return lf__fail(LF_ERR_ARG, "lora: the model has adapters already");
    if (m->train_) return lf__fail(LF_ERR_ARG, "lora: attach adapters before lf_model_train_begin");
    const lf_model_config *c = &m->cfg;
    if (d->r <= 0 || d->r > LF__MIN(c->C, c->FF)) return lf__fail(LF_ERR_CONFIG, "lora.r: %d, must be in [1, %d]", d->r, LF__MIN(c->C, c->FF));
    if (!(d->alpha > 0)) return lf__fail(LF_ERR_CONFIG, "lora.lora_alpha: must be > 0, got %g", d->alpha);
    if (!(d->dropout >= 0 && d->dropout < 1)) return lf__fail(LF_ERR_CONFIG, "lora.lora_dropout: must be in [0, 1), got %g", d->dropout);
    lf__lora *a = (lf__lora *)lf__calloc(1, sizeof *a, "adapters");
    if (!a) return LF_ERR_NOMEM;
    a->d = *d;
    snprintf(a->targets, sizeof a->targets, "%s", d->target_modules ? d->target_modules : "");
    a->d.target_modules = a->targets;
    int64_t total = 0;
    for (int l = 0; l < c->L; l++)
        for (int p = 0; p < LF_PROJ_COUNT; p++)
            if (mask[l] >> p & 1) total += (int64_t)d->r * (m->layers[l].w[p].shape[0] + m->layers[l].w[p].shape[1]);
    a->mods = (lf_lowrank *)lf__calloc((size_t)c->L * LF_PROJ_COUNT, sizeof(lf_lowrank), "adapter table");
    a->vals = a->mods ? (float *)lf__calloc((size_t)total, sizeof(float), "adapter weights") : NULL;
    if (!a->vals) {
        LF_FREE(a->mods), LF_FREE(a);
        return LF_ERR_NOMEM;
    }
    float scale = d->use_rslora ? d->alpha / sqrtf((float)d->r) : d->alpha / (float)d->r, *cur = a->vals;
    m->lora_ = a;
    for (int l = 0; l < c->L; l++)
        for (int p = 0; p < LF_PROJ_COUNT; p++) {
            if (!(mask[l] >> p & 1)) continue;
            lf_lowrank *k = &a->mods[l * LF_PROJ_COUNT + p];
            k->r = d->r, k->scale = scale, k->dropout = d->dropout, k->A = cur;
            cur += (int64_t)d->r * m->layers[l].w[p].shape[1];
            k->B = cur;
            cur += (int64_t)d->r * m->layers[l].w[p].shape[0];
            m->layers[l].lora[p] = k;
        }
    m->lora_r = d->r;
    lf_status s = lf__model_plan(m);
    if (s != LF_OK) lf__lora_free(m), lf__model_plan(m);
    return s;
}

LF_API lf_status lf_lora_attach(lf_model *m, const lf_lora_desc *d) {
    unsigned mask;
    lf_status s = lf__lora_targets(d->target_modules ? d->target_modules : "", &mask);
    if (s != LF_OK) return s;
    unsigned *masks = (unsigned *)lf__alloc((size_t)m->cfg.L * sizeof(unsigned), "adapter targets");
    if (!masks) return LF_ERR_NOMEM;
    for (int l = 0; l < m->cfg.L; l++) masks[l] = mask;
    s = lf__lora_make(m, d, masks);
    LF_FREE(masks);
    if (s != LF_OK) return s;
    // PEFT's init: A ~ kaiming_uniform_(a = sqrt(5)), i.e. uniform in +-1/sqrt(in); B = 0
    lf_rng rng;
    lf_rng_seed(&rng, d->seed);
    for (int l = 0; l < m->cfg.L; l++)
        for (int p = 0; p < LF_PROJ_COUNT; p++) {
            lf_lowrank *k = m->layers[l].lora[p];
            if (!k) continue;
            int64_t in = m->layers[l].w[p].shape[1];
            float bound = 1.0f / sqrtf((float)in);
            for (int64_t i = 0; i < k->r * in; i++) k->A[i] = (2.0f * lf_rng_float(&rng) - 1.0f) * bound;
        }
    return LF_OK;
}

LF_API void lf_lora_enable(lf_model *m, bool enabled) { m->lora_off = !enabled; }

LF_API lf_lora_desc lf_lora_get_desc(const lf_model *m) {
    lf_lora_desc d;
    memset(&d, 0, sizeof d);
    return m->lora_ ? m->lora_->d : d;
}

LF_API lf_status lf_lora_merge(lf_model *m) {
    if (!m->lora_) return lf__fail(LF_ERR_ARG, "lora_merge: the model has no adapters");
    if (m->train_) return lf__fail(LF_ERR_ARG, "lora_merge: the model is training");
    int64_t total = 0, most_in = 0, most = 0;
    for (int l = 0; l < m->cfg.L; l++)
        for (int p = 0; p < LF_PROJ_COUNT; p++)
            if (m->layers[l].lora[p]) {
                int64_t n = lf_tensor_numel(&m->layers[l].w[p]);
                total += n, most = LF__MAX(most, n), most_in = LF__MAX(most_in, m->layers[l].w[p].shape[1]);
            }
    // everything up front: the model is merged whole or left as it was
    float *merged = (float *)lf__alloc((size_t)total * sizeof(float), "merged weights");
    float *at = merged ? (float *)lf__alloc((size_t)(most_in * m->lora_r) * sizeof(float), "merge scratch") : NULL;
    float *wf = at ? (float *)lf__alloc((size_t)most * sizeof(float), "merge scratch") : NULL;
    int64_t rows = LF__MAX(LF__MAX(m->cfg.C, m->cfg.FF), (int64_t)m->cfg.NH * m->cfg.HS);
    void *mm = wf ? lf__alloc(lf__matmul_scratch(rows, m->lora_r, lf_pool_size(m->pool)), "merge scratch") : NULL;
    if (!mm || !lf__grow((void **)&m->blocks_, &m->blocks_cap_, (size_t)m->n_blocks_ + 1, sizeof(void *), "weight blocks")) {
        LF_FREE(merged), LF_FREE(at), LF_FREE(wf), LF_FREE(mm);
        return LF_ERR_NOMEM;
    }
    float *cur = merged;
    for (int l = 0; l < m->cfg.L; l++)
        for (int p = 0; p < LF_PROJ_COUNT; p++) {
            lf_lowrank *k = m->layers[l].lora[p];
            lf_tensor *w = &m->layers[l].w[p];
            if (!k) continue;
            int64_t out = w->shape[0], in = w->shape[1], n = out * in;
            lf__transpose(m->pool, at, k->A, k->r, in);  // delta = B A, then * scale, then + W (PEFT's order)
            lf__gemm(m->pool, cur, k->B, at, LF_DTYPE_F32, NULL, out, in, k->r, mm, false);
            if (m->layers[l].q[p]) lf_qtensor_dequantize(m->layers[l].q[p], wf), m->layers[l].q[p] = NULL;
            else lf_convert_to_f32(wf, w->data, w->dtype, n);
            for (int64_t i = 0; i < n; i++) cur[i] = cur[i] * k->scale + wf[i];
            w->data = cur, w->dtype = LF_DTYPE_F32;
            cur += n;
        }
    LF_FREE(at), LF_FREE(wf), LF_FREE(mm);
    m->blocks_[m->n_blocks_++] = merged;  // the model's weights point into it now
    lf__lora_free(m);                     // the adapters are gone: the model can take new ones
    return LF_OK;
}

#ifndef LF_NO_STDIO
// "base_model.model.model.layers.<l>.<proj>.lora_<A|B>.weight" -> l, proj, 0 for A / 1 for B.
static bool lf__lora_key(const char *key, int L, int *l, int *p, int *ab) {
    const char *pre = "base_model.model.model.layers.";
    if (strncmp(key, pre, strlen(pre)) != 0) return false;
    char *end;
    long v = strtol(key + strlen(pre), &end, 10);
    if (end == key + strlen(pre) || *end != '.' || v < 0 || v >= L) return false;
    for (int i = 0; i < LF_PROJ_COUNT; i++) {
        size_t n = strlen(lf_proj_name((lf_proj)i));
        if (strncmp(end + 1, lf_proj_name((lf_proj)i), n) != 0) continue;
        const char *rest = end + 1 + n;
        if (strcmp(rest, ".lora_A.weight") && strcmp(rest, ".lora_B.weight")) return false;
        *l = (int)v, *p = i, *ab = rest[6] == 'B';
        return true;
    }
    return false;
}

// adapter_config.json's settings (PEFT's LoraConfig) into d; what we do not implement is refused
// by name. The targets come from the tensors, not from here.
static lf_status lf__lora_config(const lf_doc *doc, lf_lora_desc *d) {
    const lf_node *r = doc->root;
    int64_t rank = 0;
    double alpha = 0, dropout = 0;
    bool rs = false, dora = false, fifo = false;
    const char *type = NULL, *bias = NULL;
    lf_status s = r && r->type == LF_NODE_OBJECT ? LF_OK : lf__fail(LF_ERR_FORMAT, "%s: not a JSON object", doc->name);
    if (s == LF_OK) s = lf_cfg_str(doc, r, "peft_type", false, &type);
    if (s == LF_OK) s = lf_cfg_int(doc, r, "r", true, 1, 1 << 16, &rank);
    if (s == LF_OK) s = lf_cfg_num(doc, r, "lora_alpha", true, &alpha);
    if (s == LF_OK) s = lf_cfg_num(doc, r, "lora_dropout", false, &dropout);
    if (s == LF_OK) s = lf_cfg_bool(doc, r, "use_rslora", false, &rs);
    if (s == LF_OK) s = lf_cfg_bool(doc, r, "use_dora", false, &dora);
    if (s == LF_OK) s = lf_cfg_bool(doc, r, "fan_in_fan_out", false, &fifo);
    if (s == LF_OK) s = lf_cfg_str(doc, r, "bias", false, &bias);
    if (s == LF_OK && type && strcmp(type, "LORA") != 0) s = lf__fail(LF_ERR_UNSUPPORTED, "%s: peft_type %s (LORA expected)", doc->name, type);
    if (s == LF_OK && (dora || fifo || (bias && strcmp(bias, "none") != 0)))
        s = lf__fail(LF_ERR_UNSUPPORTED, "%s: %s", doc->name, dora ? "use_dora" : fifo ? "fan_in_fan_out" : "bias other than none");
    static const char *pattern_keys[] = {"rank_pattern", "alpha_pattern", "modules_to_save", "layers_to_transform"};
    for (int i = 0; s == LF_OK && i < 4; i++) {
        const lf_node *n = lf_node_get(r, pattern_keys[i]);
        if (n && n->type != LF_NODE_NULL && n->n > 0) s = lf__fail(LF_ERR_UNSUPPORTED, "%s: %s is not supported", doc->name, pattern_keys[i]);
    }
    d->r = (int)rank, d->alpha = (float)alpha, d->dropout = (float)dropout, d->use_rslora = rs, d->target_modules = "";
    return s;
}

LF_API lf_status lf_lora_load(lf_model *m, const char *dir) {
    if (m->lora_) return lf__fail(LF_ERR_ARG, "lora_load: the model has adapters already");
    if (m->train_) return lf__fail(LF_ERR_ARG, "lora_load: load adapters before lf_model_train_begin");
    char *cfg_path = lf_path_join(dir, "adapter_config.json"), *st_path = lf_path_join(dir, "adapter_model.safetensors");
    lf_doc doc = LF__ZERO;
    lf_st_file f = LF__ZERO;
    unsigned *masks = (unsigned *)lf__calloc((size_t)m->cfg.L, sizeof(unsigned), "adapter targets");
    lf_status s = cfg_path && st_path && masks ? lf_json_load(&doc, cfg_path) : LF_ERR_NOMEM;
    lf_lora_desc d = lf_lora_desc_default();
    if (s == LF_OK) s = lf__lora_config(&doc, &d);
    if (s == LF_OK) s = lf_st_open(&f, st_path);
    // the tensors say which projections are adapted; each needs both A and B
    for (int i = 0; s == LF_OK && i < f.n; i++) {
        int l, p, ab;
        if (!lf__lora_key(f.tensors[i].name, m->cfg.L, &l, &p, &ab))
            s = lf__fail(LF_ERR_UNSUPPORTED, "%s: tensor '%s' is not a lora_A/lora_B of a layer projection", st_path, f.tensors[i].name);
        else masks[l] |= 1u << p;
    }
    if (s == LF_OK) s = lf__lora_make(m, &d, masks);
    char name[160];
    for (int l = 0; s == LF_OK && l < m->cfg.L; l++)
        for (int p = 0; s == LF_OK && p < LF_PROJ_COUNT; p++) {
            lf_lowrank *k = m->layers[l].lora[p];
            if (!k) continue;
            for (int ab = 0; ab < 2 && s == LF_OK; ab++) {
                snprintf(name, sizeof name, "base_model.model.model.layers.%d.%s.lora_%c.weight", l, lf_proj_name((lf_proj)p), "AB"[ab]);
                const lf_st_tensor *t = lf_st_find(&f, name);
                int64_t d0 = ab ? m->layers[l].w[p].shape[0] : k->r, d1 = ab ? k->r : m->layers[l].w[p].shape[1];
                if (!t) s = lf__fail(LF_ERR_FORMAT, "%s: '%s' is missing (lora_A and lora_B come in pairs)", st_path, name);
                else if (t->ndim != 2 || t->shape[0] != d0 || t->shape[1] != d1)
                    s = lf__fail(LF_ERR_SHAPE, "%s: '%s' is not [%lld, %lld] (r = %d)", st_path, name, (long long)d0, (long long)d1, k->r);
                else if (t->dtype != LF_DTYPE_F32 && t->dtype != LF_DTYPE_BF16 && t->dtype != LF_DTYPE_F16)
                    s = lf__fail(LF_ERR_UNSUPPORTED, "%s: '%s' has dtype %s", st_path, name, lf_dtype_name(t->dtype));
                else lf_convert_to_f32(ab ? k->B : k->A, t->data, t->dtype, d0 * d1);
            }
        }
    if (s != LF_OK && m->lora_) lf__lora_free(m), lf__model_plan(m);  // only this call's: refused above otherwise
    if (s == LF_OK) {  // the targets, as PEFT lists them
        char *cur = m->lora_->targets;
        unsigned all = 0;
        for (int l = 0; l < m->cfg.L; l++) all |= masks[l];
        for (int p = 0; p < LF_PROJ_COUNT; p++)
            if (all >> p & 1) cur += sprintf(cur, "%s%s", cur > m->lora_->targets ? "," : "", lf__proj_short(p));
    }
    lf_st_close(&f);
    lf_doc_deinit(&doc);
    LF_FREE(cfg_path), LF_FREE(st_path), LF_FREE(masks);
    return s;
}

LF_API lf_status lf_lora_save(const lf_model *m, const char *dir) {
    const lf__lora *a = m->lora_;
    if (!a || !a->vals) return lf__fail(LF_ERR_ARG, "lora_save: the model has no adapters");
    lf_status s = lf_dir_make(dir);
    if (s != LF_OK) return s;
    int n = 0;
    unsigned all = 0;
    lf_st_entry *e = (lf_st_entry *)lf__calloc((size_t)m->cfg.L * LF_PROJ_COUNT * 2, sizeof *e, "tensor list");
    char(*names)[160] = e ? (char(*)[160])lf__alloc((size_t)m->cfg.L * LF_PROJ_COUNT * 2 * sizeof *names, "tensor names") : NULL;
    if (!names) s = LF_ERR_NOMEM;
    for (int l = 0; s == LF_OK && l < m->cfg.L; l++)
        for (int p = 0; p < LF_PROJ_COUNT; p++) {
            const lf_lowrank *k = m->layers[l].lora[p];
            if (!k) continue;
            all |= 1u << p;
            for (int ab = 0; ab < 2; ab++, n++) {
                snprintf(names[n], sizeof names[n], "base_model.model.model.layers.%d.%s.lora_%c.weight", l, lf_proj_name((lf_proj)p), "AB"[ab]);
                e[n].name = names[n], e[n].dtype = LF_DTYPE_F32, e[n].ndim = 2, e[n].data = ab ? k->B : k->A;
                e[n].shape[0] = ab ? m->layers[l].w[p].shape[0] : k->r, e[n].shape[1] = ab ? k->r : m->layers[l].w[p].shape[1];
            }
        }
    const char *meta[2] = {"format", "pt"};
    char *path = s == LF_OK ? lf_path_join(dir, "adapter_model.safetensors") : NULL;
    if (s == LF_OK) s = path ? lf_st_write(path, e, n, meta, 1) : LF_ERR_NOMEM;
    lf__buf b = LF__ZERO;  // the fields PEFT's LoraConfig reads, with its defaults for the rest
    lf__buf_puts(&b, "{\n  \"peft_type\": \"LORA\",\n  \"task_type\": \"CAUSAL_LM\",\n  \"base_model_name_or_path\": ");
    lf__buf_json_str(&b, m->dir, strlen(m->dir));
    char f1[32], f2[32];
    lf__buf_printf(&b, ",\n  \"r\": %d,\n  \"lora_alpha\": %s,\n  \"lora_dropout\": %s,\n  \"use_rslora\": %s,\n", a->d.r,
                   lf__fstr(f1, a->d.alpha), lf__fstr(f2, a->d.dropout), a->d.use_rslora ? "true" : "false");
    lf__buf_puts(&b, "  \"target_modules\": [");
    for (int p = 0, k = 0; p < LF_PROJ_COUNT; p++)
        if (all >> p & 1) lf__buf_printf(&b, "%s\"%s\"", k++ ? ", " : "", lf__proj_short(p));
    lf__buf_puts(&b, "],\n  \"bias\": \"none\",\n  \"fan_in_fan_out\": false,\n  \"use_dora\": false,\n  \"init_lora_weights\": true,\n"
                     "  \"inference_mode\": true,\n  \"modules_to_save\": null,\n  \"layers_to_transform\": null,\n"
                     "  \"rank_pattern\": {},\n  \"alpha_pattern\": {}\n}\n");
    char *cfg = s == LF_OK ? lf_path_join(dir, "adapter_config.json") : NULL;
    if (s == LF_OK) s = b.failed || !cfg ? LF_ERR_NOMEM : lf_file_write_atomic(cfg, b.data, b.len);
    LF_FREE(b.data), LF_FREE(cfg), LF_FREE(path), LF_FREE(e), LF_FREE(names);
    path = NULL;
    return s;
}
#endif

// == 8. train (impl) =============================================================================

// -- 8.1 AdamW and schedules

LF_API lf_optim_desc lf_optim_desc_default(void) {
    lf_optim_desc d;
    memset(&d, 0, sizeof d);
    d.learning_rate = 2e-5f, d.beta1 = 0.9f, d.beta2 = 0.999f, d.eps = 1e-8f, d.weight_decay = 0.01f;
    d.max_grad_norm = 1.0f, d.schedule = LF_SCHED_COSINE, d.warmup_ratio = 0.1f;
    return d;
}

LF_API lf_status lf_optim_init(lf_optim *o, const lf_model *m, const lf_optim_desc *d) {
    memset(o, 0, sizeof *o);
    if (!m->train_) return lf__fail(LF_ERR_ARG, "optim_init: the model is not in training mode (lf_model_train_begin)");
    o->d = *d;
    if (o->d.schedule == LF_SCHED_DEFAULT) o->d.schedule = LF_SCHED_COSINE;
    if (!(d->learning_rate > 0)) return lf__fail(LF_ERR_CONFIG, "training.learning_rate: must be > 0, got %g", d->learning_rate);
    if (!(d->beta1 >= 0 && d->beta1 < 1) || !(d->beta2 >= 0 && d->beta2 < 1))
        return lf__fail(LF_ERR_CONFIG, "training.adam_beta1/adam_beta2: must be in [0, 1), got %g, %g", d->beta1, d->beta2);
    if (!(d->eps > 0)) return lf__fail(LF_ERR_CONFIG, "training.adam_epsilon: must be > 0, got %g", d->eps);
    if (!(d->weight_decay >= 0)) return lf__fail(LF_ERR_CONFIG, "training.weight_decay: must be >= 0, got %g", d->weight_decay);
    if (!(d->max_grad_norm >= 0)) return lf__fail(LF_ERR_CONFIG, "training.max_grad_norm: must be >= 0, got %g", d->max_grad_norm);
    if (!(d->warmup_ratio >= 0 && d->warmup_ratio <= 1) || d->warmup_steps < 0)
        return lf__fail(LF_ERR_CONFIG, "training.warmup_ratio: must be in [0, 1], got %g", d->warmup_ratio);
    if ((o->d.schedule == LF_SCHED_COSINE || o->d.schedule == LF_SCHED_LINEAR) && d->total_steps <= 0)
        return lf__fail(LF_ERR_CONFIG, "training: the %s schedule needs total_steps > 0", o->d.schedule == LF_SCHED_COSINE ? "cosine" : "linear");
    if (o->d.warmup_steps == 0) o->d.warmup_steps = (int)ceil((double)o->d.warmup_ratio * d->total_steps);
    o->n = m->train_->n_train;
    o->m = (float *)lf__calloc((size_t)o->n, sizeof(float), "AdamW first moments");
    o->v = o->m ? (float *)lf__calloc((size_t)o->n, sizeof(float), "AdamW second moments") : NULL;
    if (!o->v) return lf_optim_deinit(o), LF_ERR_NOMEM;
    return LF_OK;
}

LF_API void lf_optim_deinit(lf_optim *o) {
    LF_FREE(o->m);
    LF_FREE(o->v);
    memset(o, 0, sizeof *o);
}

// transformers' lr_lambda of each schedule, times the base rate
LF_API float lf_optim_lr(const lf_optim *o, int64_t step) {
    double w = o->d.warmup_steps, T = o->d.total_steps, s = (double)step, f;
    if (o->d.schedule != LF_SCHED_CONSTANT && s < w) f = s / LF__MAX(1.0, w);
    else if (o->d.schedule == LF_SCHED_COSINE) f = LF__MAX(0.0, 0.5 * (1.0 + cos(M_PI * (s - w) / LF__MAX(1.0, T - w))));
    else if (o->d.schedule == LF_SCHED_LINEAR) f = LF__MAX(0.0, (T - s) / LF__MAX(1.0, T - w));
    else f = 1.0;
    return (float)(o->d.learning_rate * f);
}

LF_API lf_status lf_optim_step(lf_optim *o, lf_model *m, float *grad_norm) {
    lf__train *t = m->train_;
    if (!t || !o->m) return lf__fail(LF_ERR_ARG, "optim_step: no training state (lf_model_train_begin, lf_optim_init)");
    // clip_grad_norm_: the norm of the per-tensor norms, each summed in f32 like torch
    float sq = 0;
    for (int i = 0; i < t->n_params; i++) {
        float s = 0;
        for (int64_t k = 0; k < t->params[i].n; k++) s += t->params[i].g[k] * t->params[i].g[k];
        sq += s;
    }
    float norm = sqrtf(sq), clip = 1.0f;
    if (grad_norm) *grad_norm = norm;
    if (o->d.max_grad_norm > 0) clip = LF__MIN(1.0f, o->d.max_grad_norm / (norm + 1e-6f));
    float lr = lf_optim_lr(o, o->step);
    o->step++;
    float b1 = o->d.beta1, b2 = o->d.beta2;  // bias corrections in double, as torch takes them from Python
    double bc1 = 1.0 - pow(b1, (double)o->step), bc2 = 1.0 - pow(b2, (double)o->step);
    float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    for (int i = 0; i < t->n_params; i++) {
        lf__param *p = &t->params[i];
        float *mm = o->m + p->off, *vv = o->v + p->off;
        bool decay = !strstr(p->name, "bias") && !strstr(p->name, "norm");  // HF Trainer's groups
        float keep = decay ? 1.0f - lr * o->d.weight_decay : 1.0f;
        for (int64_t k = 0; k < p->n; k++) {
            float g = p->g[k] * clip;
            p->p[k] *= keep;
            mm[k] += (1.0f - b1) * (g - mm[k]);  // torch's lerp_
            vv[k] = vv[k] * b2 + (1.0f - b2) * g * g;
            p->p[k] -= step_size * (mm[k] / (sqrtf(vv[k]) / bc2_sqrt + o->d.eps));  // torch's addcdiv_
        }
    }
    return LF_OK;
}

// -- 8.2 the training config

// A string field that must be one of names[n]; *out gets its index.
static lf_status lf__cfg_enum(const lf_doc *d, const lf_node *obj, const char *key, const char *const *names, int n, int *out) {
    const char *v = NULL;
    lf_status s = lf_cfg_str(d, obj, key, false, &v);
    if (s != LF_OK || !v) return s;
    for (int i = 0; i < n; i++)
        if (strcmp(v, names[i]) == 0) return *out = i, LF_OK;
    lf__buf b = LF__ZERO;
    for (int i = 0; i < n; i++) lf__buf_printf(&b, "%s%s", i ? ", " : "", names[i]);
    s = lf__fail(LF_ERR_CONFIG, "%s: %s: '%s' is not one of %s", d->name, key, v, b.data ? b.data : "");
    LF_FREE(b.data);
    return s;
}

// An int field within [lo, hi].
static lf_status lf__cfg_i(const lf_doc *d, const lf_node *obj, const char *key, int64_t lo, int64_t hi, int *out) {
    int64_t v = *out;
    lf_status s = lf_cfg_int(d, obj, key, false, lo, hi, &v);
    *out = (int)v;
    return s;
}

// A number field within [lo, hi] (hi_open: below hi).
static lf_status lf__cfg_f(const lf_doc *d, const lf_node *obj, const char *key, double lo, double hi, bool hi_open, float *out) {
    double v = *out;
    lf_status s = lf_cfg_num(d, obj, key, false, &v);
    if (s == LF_OK && (!(v >= lo) || (hi_open ? !(v < hi) : !(v <= hi))))
        s = lf__fail(LF_ERR_CONFIG, "%s: %s: %g is outside [%g, %g%c", d->name, key, v, lo, hi, hi_open ? ')' : ']');
    *out = (float)v;
    return s;
}

LF_API lf_status lf_train_config_read(lf_train_config *c, const lf_doc *doc) {
    memset(c, 0, sizeof *c);
    c->num_epochs = 3, c->max_steps = -1, c->batch_size = 4, c->grad_accum = 4, c->optim = lf_optim_desc_default();
    c->save_steps = 500, c->save_total_limit = 3, c->logging_steps = 10, c->eval_steps = 500, c->seed = 42, c->bf16 = true;
    c->lora_desc = lf_lora_desc_default();
    const lf_node *r = doc->root, *mo = lf_node_get(r, "model"), *tr = lf_node_get(r, "training"), *lo = lf_node_get(r, "lora"),
                  *qu = lf_node_get(r, "quantization");
    const lf_node *secs[4] = {mo, tr, lo, qu};
    static const char *sec_names[4] = {"model", "training", "lora", "quantization"};
    for (int i = 0; i < 4; i++)
        if (secs[i] && secs[i]->type != LF_NODE_OBJECT && secs[i]->type != LF_NODE_NULL)
            return lf__fail(LF_ERR_CONFIG, "%s: '%s' must be a mapping", doc->name, sec_names[i]);
    static const char *k_model[] = {"name", "revision", "adapter"};
    static const char *k_train[] = {"model_name", "output_dir", "num_epochs", "max_steps", "per_device_batch_size",
                                    "gradient_accumulation_steps", "learning_rate", "weight_decay", "warmup_ratio", "warmup_steps",
                                    "max_grad_norm", "fp16", "bf16", "optim", "lr_scheduler_type", "adam_beta1", "adam_beta2",
                                    "adam_epsilon", "save_steps", "save_total_limit", "logging_steps", "report_to", "eval_steps",
                                    "eval_strategy", "early_stopping_patience", "early_stopping_threshold", "seed",
                                    "gradient_checkpointing", "threads"};
    static const char *k_lora[] = {"enabled", "r", "alpha", "lora_alpha", "dropout", "lora_dropout", "target_modules", "bias",
                                   "task_type", "use_rslora", "modules_to_save"};
    static const char *k_quant[] = {"enabled", "bits", "type", "double_quant"};
    lf_status s = lf_cfg_keys(doc, mo, "model", k_model, 3);
    if (s == LF_OK) s = lf_cfg_keys(doc, tr, "training", k_train, (int)(sizeof k_train / sizeof *k_train));
    if (s == LF_OK) s = lf_cfg_keys(doc, lo, "lora", k_lora, (int)(sizeof k_lora / sizeof *k_lora));
    if (s == LF_OK) s = lf_cfg_keys(doc, qu, "quantization", k_quant, 4);
    if (s != LF_OK) return s;
    // each section's messages read "file: section: key ..."
    lf_doc dm = *doc, dt = *doc, dl = *doc, dq = *doc;
    snprintf(dm.name, sizeof dm.name, "%.200s: model", doc->name), snprintf(dt.name, sizeof dt.name, "%.200s: training", doc->name);
    snprintf(dl.name, sizeof dl.name, "%.200s: lora", doc->name), snprintf(dq.name, sizeof dq.name, "%.200s: quantization", doc->name);
    const char *rev = NULL, *model_name = NULL;
    if ((s = lf_cfg_str(&dm, mo, "name", false, &c->model)) != LF_OK || (s = lf_cfg_str(&dm, mo, "revision", false, &rev)) != LF_OK ||
        (s = lf_cfg_str(&dm, mo, "adapter", false, &c->adapter)) != LF_OK ||
        (s = lf_cfg_str(&dt, tr, "model_name", false, &model_name)) != LF_OK)
        return s;
    if (c->model && model_name && strcmp(c->model, model_name) != 0)
        return lf__fail(LF_ERR_CONFIG, "%s: model.name '%s' and training.model_name '%s' disagree", doc->name, c->model, model_name);
    c->model = c->model ? c->model : model_name;
    if (!c->model) return lf__fail(LF_ERR_CONFIG, "%s: model.name: required (a HuggingFace model directory)", doc->name);
    // training
    static const char *optims[] = {"adamw_torch", "adamw_torch_fused", "adamw"};
    static const char *scheds[] = {"cosine", "linear", "constant", "constant_with_warmup"};
    static const char *evals[] = {"steps", "epoch", "no"};
    int optim = 0, sched = 0, eval = 0;
    int64_t seed = 42;
    bool fp16 = false;
    const lf_node *rt = lf_node_get(tr, "report_to");
    if ((s = lf_cfg_str(&dt, tr, "output_dir", true, &c->output_dir)) != LF_OK ||
        (s = lf__cfg_i(&dt, tr, "num_epochs", 1, 1 << 20, &c->num_epochs)) != LF_OK ||
        (s = lf__cfg_i(&dt, tr, "max_steps", -1, INT32_MAX, &c->max_steps)) != LF_OK ||
        (s = lf__cfg_i(&dt, tr, "per_device_batch_size", 1, 1 << 16, &c->batch_size)) != LF_OK ||
        (s = lf__cfg_i(&dt, tr, "gradient_accumulation_steps", 1, 1 << 16, &c->grad_accum)) != LF_OK ||
        (s = lf__cfg_f(&dt, tr, "learning_rate", 0, 1, false, &c->optim.learning_rate)) != LF_OK ||
        (s = lf__cfg_f(&dt, tr, "weight_decay", 0, 1, false, &c->optim.weight_decay)) != LF_OK ||
        (s = lf__cfg_f(&dt, tr, "warmup_ratio", 0, 1, false, &c->optim.warmup_ratio)) != LF_OK ||
        (s = lf__cfg_i(&dt, tr, "warmup_steps", 0, INT32_MAX, &c->optim.warmup_steps)) != LF_OK ||
        (s = lf__cfg_f(&dt, tr, "max_grad_norm", 0, 1e9, false, &c->optim.max_grad_norm)) != LF_OK ||
        (s = lf__cfg_f(&dt, tr, "adam_beta1", 0, 1, true, &c->optim.beta1)) != LF_OK ||
        (s = lf__cfg_f(&dt, tr, "adam_beta2", 0, 1, true, &c->optim.beta2)) != LF_OK ||
        (s = lf__cfg_f(&dt, tr, "adam_epsilon", 1e-30, 1, false, &c->optim.eps)) != LF_OK ||
        (s = lf_cfg_bool(&dt, tr, "fp16", false, &fp16)) != LF_OK || (s = lf_cfg_bool(&dt, tr, "bf16", false, &c->bf16)) != LF_OK ||
        (s = lf__cfg_enum(&dt, tr, "optim", optims, 3, &optim)) != LF_OK ||
        (s = lf__cfg_enum(&dt, tr, "lr_scheduler_type", scheds, 4, &sched)) != LF_OK ||
        (s = lf__cfg_i(&dt, tr, "save_steps", 1, INT32_MAX, &c->save_steps)) != LF_OK ||
        (s = lf__cfg_i(&dt, tr, "save_total_limit", 0, INT32_MAX, &c->save_total_limit)) != LF_OK ||
        (s = lf__cfg_i(&dt, tr, "logging_steps", 1, INT32_MAX, &c->logging_steps)) != LF_OK ||
        (s = lf__cfg_i(&dt, tr, "eval_steps", 1, INT32_MAX, &c->eval_steps)) != LF_OK ||
        (s = lf__cfg_enum(&dt, tr, "eval_strategy", evals, 3, &eval)) != LF_OK ||
        (s = lf__cfg_i(&dt, tr, "early_stopping_patience", 0, INT32_MAX, &c->early_stopping_patience)) != LF_OK ||
        (s = lf__cfg_f(&dt, tr, "early_stopping_threshold", 0, 1e9, false, &c->early_stopping_threshold)) != LF_OK ||
        (s = lf_cfg_int(&dt, tr, "seed", false, 0, (int64_t)1 << 53, &seed)) != LF_OK ||
        (s = lf_cfg_bool(&dt, tr, "gradient_checkpointing", false, &c->gradient_checkpointing)) != LF_OK ||
        (s = lf__cfg_i(&dt, tr, "threads", 0, 4096, &c->threads)) != LF_OK)
        return s;
    if (fp16 && c->bf16) return lf__fail(LF_ERR_CONFIG, "%s: fp16 and bf16 cannot both be true", dt.name);
    for (int i = 0; rt && rt->type == LF_NODE_ARRAY && i < rt->n; i++)  // metrics.jsonl is always written
        if (rt->kids[i].type != LF_NODE_STRING) return lf__fail(LF_ERR_CONFIG, "%s: report_to: a list of names", dt.name);
    c->optim.schedule = (lf_sched)(sched + 1), c->eval_strategy = (lf_eval_strategy)eval, c->seed = (uint64_t)seed;
    // lora: enabled when it says so, or when it sets anything but enabled: false
    bool en = lo && lo->type == LF_NODE_OBJECT && lo->n > 0;
    const lf_node *tm = lf_node_get(lo, "target_modules"), *ms = lf_node_get(lo, "modules_to_save");
    const char *bias = NULL, *task = NULL;
    int64_t rank = c->lora_desc.r;
    if ((s = lf_cfg_bool(&dl, lo, "enabled", false, &en)) != LF_OK || (s = lf_cfg_int(&dl, lo, "r", false, 1, 1 << 16, &rank)) != LF_OK ||
        (s = lf__cfg_f(&dl, lo, "alpha", 1e-9, 1e9, false, &c->lora_desc.alpha)) != LF_OK ||
        (s = lf__cfg_f(&dl, lo, "lora_alpha", 1e-9, 1e9, false, &c->lora_desc.alpha)) != LF_OK ||
        (s = lf__cfg_f(&dl, lo, "dropout", 0, 1, true, &c->lora_desc.dropout)) != LF_OK ||
        (s = lf__cfg_f(&dl, lo, "lora_dropout", 0, 1, true, &c->lora_desc.dropout)) != LF_OK ||
        (s = lf_cfg_str(&dl, lo, "bias", false, &bias)) != LF_OK || (s = lf_cfg_str(&dl, lo, "task_type", false, &task)) != LF_OK ||
        (s = lf_cfg_bool(&dl, lo, "use_rslora", false, &c->lora_desc.use_rslora)) != LF_OK)
        return s;
    if (lf_node_get(lo, "alpha") && lf_node_get(lo, "lora_alpha")) return lf__fail(LF_ERR_CONFIG, "%s: alpha and lora_alpha: give one", dl.name);
    if (lf_node_get(lo, "dropout") && lf_node_get(lo, "lora_dropout")) return lf__fail(LF_ERR_CONFIG, "%s: dropout and lora_dropout: give one", dl.name);
    if (bias && strcmp(bias, "none") != 0) return lf__fail(LF_ERR_CONFIG, "%s: bias: only 'none' is supported, got '%s'", dl.name, bias);
    if (task && strcmp(task, "CAUSAL_LM") != 0) return lf__fail(LF_ERR_CONFIG, "%s: task_type: only CAUSAL_LM, got '%s'", dl.name, task);
    if (ms && ms->type != LF_NODE_NULL && ms->n > 0) return lf__fail(LF_ERR_CONFIG, "%s: modules_to_save: not supported", dl.name);
    c->lora = en, c->lora_desc.r = (int)rank, c->lora_desc.seed = c->seed;
    if (tm && tm->type == LF_NODE_STRING) snprintf(c->targets_, sizeof c->targets_, "%s", tm->str);
    else if (tm && tm->type == LF_NODE_ARRAY) {
        size_t at = 0;
        for (int i = 0; i < tm->n; i++) {
            if (tm->kids[i].type != LF_NODE_STRING) return lf__fail(LF_ERR_CONFIG, "%s: target_modules: a list of module names", dl.name);
            at += (size_t)snprintf(c->targets_ + at, sizeof c->targets_ - LF__MIN(at, sizeof c->targets_), "%s%s", i ? "," : "", tm->kids[i].str);
            if (at >= sizeof c->targets_) return lf__fail(LF_ERR_CONFIG, "%s: target_modules: too long", dl.name);
        }
    } else if (tm && tm->type != LF_NODE_NULL) return lf__fail(LF_ERR_CONFIG, "%s: target_modules: a list or a string", dl.name);
    else snprintf(c->targets_, sizeof c->targets_, "%s", c->lora_desc.target_modules);
    c->lora_desc.target_modules = c->targets_;
    unsigned mask;
    if (c->lora && (s = lf__lora_targets(c->targets_, &mask)) != LF_OK) return lf__wrap(s, "%s", doc->name);
    // quantization (QLoRA's frozen base)
    bool qen = qu && qu->type == LF_NODE_OBJECT && qu->n > 0, dq_ = true;
    int64_t bits = 4;
    static const char *qtypes[] = {"nf4", "int8"};
    int qt = -1;
    if ((s = lf_cfg_bool(&dq, qu, "enabled", false, &qen)) != LF_OK || (s = lf_cfg_int(&dq, qu, "bits", false, 4, 8, &bits)) != LF_OK ||
        (s = lf__cfg_enum(&dq, qu, "type", qtypes, 2, &qt)) != LF_OK || (s = lf_cfg_bool(&dq, qu, "double_quant", false, &dq_)) != LF_OK)
        return s;
    if (bits != 4 && bits != 8) return lf__fail(LF_ERR_CONFIG, "%s: bits: 4 (nf4) or 8 (int8), got %lld", dq.name, (long long)bits);
    if (qt >= 0 && (qt == 0) != (bits == 4)) return lf__fail(LF_ERR_CONFIG, "%s: type %s with bits %lld", dq.name, qtypes[qt], (long long)bits);
    c->lora = c->lora || c->adapter;
    if (qen && !c->lora) return lf__fail(LF_ERR_CONFIG, "%s: a quantized base trains only adapters: enable lora (QLoRA)", dq.name);
    c->quant_bits = qen ? (int)bits : 0, c->double_quant = dq_;
    return LF_OK;
}

LF_API char *lf_train_config_yaml(const lf_train_config *c) {
    static const char *scheds[] = {"cosine", "cosine", "linear", "constant", "constant_with_warmup"}, *evals[] = {"steps", "epoch", "no"};
    const lf_optim_desc *o = &c->optim;
    char f[8][32];
    lf__buf b = LF__ZERO;
    lf__buf_puts(&b, "model:\n  name: ");
    lf__buf_json_str(&b, c->model, strlen(c->model));
    if (c->adapter) lf__buf_puts(&b, "\n  adapter: "), lf__buf_json_str(&b, c->adapter, strlen(c->adapter));
    lf__buf_puts(&b, "\ntraining:\n  output_dir: ");
    lf__buf_json_str(&b, c->output_dir, strlen(c->output_dir));
    lf__buf_printf(&b, "\n  num_epochs: %d\n  max_steps: %d\n  per_device_batch_size: %d\n  gradient_accumulation_steps: %d\n",
                   c->num_epochs, c->max_steps, c->batch_size, c->grad_accum);
    lf__buf_printf(&b, "  learning_rate: %s\n  weight_decay: %s\n  warmup_ratio: %s\n  warmup_steps: %d\n  max_grad_norm: %s\n",
                   lf__fstr(f[0], o->learning_rate), lf__fstr(f[1], o->weight_decay), lf__fstr(f[2], o->warmup_ratio), o->warmup_steps,
                   lf__fstr(f[3], o->max_grad_norm));
    lf__buf_printf(&b, "  optim: adamw_torch\n  lr_scheduler_type: %s\n  adam_beta1: %s\n  adam_beta2: %s\n  adam_epsilon: %s\n",
                   scheds[o->schedule], lf__fstr(f[0], o->beta1), lf__fstr(f[1], o->beta2), lf__fstr(f[2], o->eps));
    lf__buf_printf(&b, "  bf16: %s\n  save_steps: %d\n  save_total_limit: %d\n  logging_steps: %d\n  eval_steps: %d\n  eval_strategy: %s\n",
                   c->bf16 ? "true" : "false", c->save_steps, c->save_total_limit, c->logging_steps, c->eval_steps, evals[c->eval_strategy]);
    lf__buf_printf(&b, "  early_stopping_patience: %d\n  early_stopping_threshold: %s\n  seed: %llu\n  gradient_checkpointing: %s\n  threads: %d\n",
                   c->early_stopping_patience, lf__fstr(f[0], c->early_stopping_threshold), (unsigned long long)c->seed,
                   c->gradient_checkpointing ? "true" : "false", c->threads);
    const lf_lora_desc *l = &c->lora_desc;
    lf__buf_printf(&b, "lora:\n  enabled: %s\n  r: %d\n  lora_alpha: %s\n  lora_dropout: %s\n  use_rslora: %s\n  target_modules: [%s]\n",
                   c->lora ? "true" : "false", l->r, lf__fstr(f[0], l->alpha), lf__fstr(f[1], l->dropout), l->use_rslora ? "true" : "false",
                   l->target_modules);
    lf__buf_printf(&b, "quantization:\n  enabled: %s\n  bits: %d\n  double_quant: %s\n", c->quant_bits ? "true" : "false",
                   c->quant_bits ? c->quant_bits : 4, c->double_quant ? "true" : "false");
    if (b.failed) LF_FREE(b.data), b.data = NULL;
    return b.data;
}

// -- 8.3 checkpoints
//
// ON CHECKPOINTS: a checkpoint is a directory that exists complete or not at all. Its files are
// written into dir.tmp-PID with lf_file_write_atomic (each fsynced), SHA256SUMS last, and the
// directory is then renamed into place and its parent fsynced. Loading checks every checksum
// before anything is read, so a damaged or truncated file is reported, never trained on.

#ifndef LF_NO_STDIO
// Removes a directory and the files in it (checkpoints are flat).
static lf_status lf__rmdir_flat(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? LF_OK : lf__fail(LF_ERR_IO, "%s: %s", dir, strerror(errno));
    lf_status s = LF_OK;
    for (struct dirent *e; s == LF_OK && (e = readdir(d));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char *p = lf_path_join(dir, e->d_name);
        if (!p) s = LF_ERR_NOMEM;
        else if (unlink(p) != 0) s = lf__fail(LF_ERR_IO, "%s: cannot remove: %s", p, strerror(errno));
        LF_FREE(p);
    }
    closedir(d);
    if (s == LF_OK && rmdir(dir) != 0) s = lf__fail(LF_ERR_IO, "%s: cannot remove: %s", dir, strerror(errno));
    return s;
}

// The SHA-256 of a file, streamed.
static lf_status lf__sha256_file(const char *path, char hex[65]) {
    FILE *f = fopen(path, "rb");
    if (!f) return lf__fail(LF_ERR_IO, "%s: %s", path, strerror(errno));
    lf_sha256 c;
    lf_sha256_init(&c);
    unsigned char buf[1 << 16];
    for (size_t n; (n = fread(buf, 1, sizeof buf, f)) > 0;) lf_sha256_update(&c, buf, n);
    bool bad = ferror(f) != 0;
    fclose(f);
    if (bad) return lf__fail(LF_ERR_IO, "%s: read error", path);
    lf_sha256_final(&c, hex);
    return LF_OK;
}

// The extra parameters (lf_model_train_extra), by name, into dir/extra.safetensors.
static lf_status lf__ckpt_extra_save(const lf_model *m, const char *dir) {
    lf_st_entry *e = (lf_st_entry *)lf__calloc((size_t)m->n_extra_, sizeof *e, "extra tensors");
    char *path = e ? lf_path_join(dir, "extra.safetensors") : NULL;
    lf_status s = path ? LF_OK : LF_ERR_NOMEM;
    for (int i = 0; s == LF_OK && i < m->n_extra_; i++)
        e[i].name = m->extra_[i].name, e[i].dtype = LF_DTYPE_F32, e[i].ndim = 1, e[i].shape[0] = m->extra_[i].n, e[i].data = m->extra_[i].p;
    if (s == LF_OK) s = lf_st_write(path, e, m->n_extra_, NULL, 0);
    LF_FREE(path), LF_FREE(e);
    return s;
}

LF_API lf_status lf_ckpt_save(const char *dir, const lf_model *m, const lf_optim *o, const lf_train_state *st) {
    const lf__train *t = m->train_;
    if (!t || !o->m) return lf__fail(LF_ERR_ARG, "ckpt_save: the model is not training");
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.tmp-%d", dir, (int)getpid());
    lf_status s = lf__rmdir_flat(tmp);  // a leftover of a run that died here
    if (s == LF_OK) s = t->lora ? lf_lora_save(m, tmp) : lf_model_save(m, tmp, LF_DTYPE_F32);
    if (s == LF_OK && m->n_extra_) s = lf__ckpt_extra_save(m, tmp);
    // the moments, one pair of tensors per parameter
    lf_st_entry *e = s == LF_OK ? (lf_st_entry *)lf__calloc((size_t)t->n_params * 2, sizeof *e, "optimizer tensors") : NULL;
    char(*names)[176] = e ? (char(*)[176])lf__alloc((size_t)t->n_params * 2 * sizeof *names, "optimizer names") : NULL;
    if (s == LF_OK && !names) s = LF_ERR_NOMEM;
    for (int i = 0; s == LF_OK && i < t->n_params; i++)
        for (int k = 0; k < 2; k++) {
            lf_st_entry *x = &e[2 * i + k];
            snprintf(names[2 * i + k], sizeof names[0], "%s.%s", k ? "exp_avg_sq" : "exp_avg", t->params[i].name);
            x->name = names[2 * i + k], x->dtype = LF_DTYPE_F32, x->ndim = 1, x->shape[0] = t->params[i].n;
            x->data = (k ? o->v : o->m) + t->params[i].off;
        }
    char *path = NULL;
    if (s == LF_OK) s = (path = lf_path_join(tmp, "optimizer.safetensors")) ? lf_st_write(path, e, 2 * t->n_params, NULL, 0) : LF_ERR_NOMEM;
    LF_FREE(path), LF_FREE(e), LF_FREE(names);
    path = NULL;
    lf__buf b = LF__ZERO;
    lf__buf_printf(&b, "{\n  \"format\": \"largeforge-checkpoint\",\n  \"version\": 1,\n  \"mode\": \"%s\",\n", t->lora ? "lora" : "full");
    lf__buf_printf(&b, "  \"global_step\": %lld,\n  \"optimizer_step\": %lld,\n  \"epoch\": %lld,\n  \"data_index\": %lld,\n  \"tokens\": %lld,\n",
                   (long long)st->step, (long long)o->step, (long long)st->epoch, (long long)st->index, (long long)st->tokens);
    lf__buf_printf(&b, "  \"dropout_seed\": \"%llu\",\n  \"dropout_calls\": \"%llu\",\n  \"best_eval_loss\": %.17g,\n  \"bad_evals\": %d,\n",
                   (unsigned long long)st->seed, (unsigned long long)st->calls, st->best_eval < HUGE_VAL ? st->best_eval : -1.0, st->bad_evals);
    lf__buf_printf(&b, "  \"log_loss\": %.17g,\n  \"log_steps\": %d,\n  \"log_micro\": %d,\n  \"log_metrics\": [", st->log_loss,
                   st->log_steps, st->log_micro);
    for (int i = 0; i < LF_TRAIN_LOG_METRICS; i++) lf__buf_printf(&b, "%s%.17g", i ? ", " : "", st->log_metrics[i]);
    lf__buf_puts(&b, "]\n}\n");
    if (s == LF_OK) s = b.failed || !(path = lf_path_join(tmp, "trainer_state.json")) ? LF_ERR_NOMEM : lf_file_write_atomic(path, b.data, b.len);
    LF_FREE(path), LF_FREE(b.data);
    path = NULL;
    // checksums of everything, last: a checkpoint without them is incomplete
    memset(&b, 0, sizeof b);
    DIR *d = s == LF_OK ? opendir(tmp) : NULL;
    if (s == LF_OK && !d) s = lf__fail(LF_ERR_IO, "%s: %s", tmp, strerror(errno));
    for (struct dirent *de; s == LF_OK && (de = readdir(d));) {
        char hex[65];
        if (de->d_name[0] == '.') continue;
        if (!(path = lf_path_join(tmp, de->d_name))) s = LF_ERR_NOMEM;
        else if ((s = lf__sha256_file(path, hex)) == LF_OK) lf__buf_printf(&b, "%s  %s\n", hex, de->d_name);
        LF_FREE(path);
        path = NULL;
    }
    if (d) closedir(d);
    if (s == LF_OK) s = b.failed || !(path = lf_path_join(tmp, "SHA256SUMS")) ? LF_ERR_NOMEM : lf_file_write_atomic(path, b.data, b.len);
    LF_FREE(path), LF_FREE(b.data);
    if (s == LF_OK) s = lf__rmdir_flat(dir);  // a checkpoint of the same step from before a resume
    if (s == LF_OK && rename(tmp, dir) != 0) s = lf__fail(LF_ERR_IO, "%s: cannot rename to %s: %s", tmp, dir, strerror(errno));
    if (s == LF_OK) {  // make the rename durable
        char parent[PATH_MAX];
        snprintf(parent, sizeof parent, "%s", dir);
        char *slash = strrchr(parent, '/');
        if (slash) *slash = 0;
        int fd = open(slash ? parent : ".", O_RDONLY);
        if (fd >= 0) fsync(fd), close(fd);
    } else lf__rmdir_flat(tmp);
    return s;
}

// Checks SHA256SUMS against every file it lists, and that it lists the files a checkpoint needs.
static lf_status lf__ckpt_verify(const char *dir, bool lora, bool extra) {
    char *path = lf_path_join(dir, "SHA256SUMS"), *text = NULL;
    size_t len = 0;
    lf_status s = path ? lf_file_read(path, 1 << 20, &text, &len) : LF_ERR_NOMEM;
    if (s != LF_OK) {
        LF_FREE(path);
        return s == LF_ERR_IO ? lf__fail(LF_ERR_FORMAT, "%s: no SHA256SUMS: an incomplete checkpoint", dir) : s;
    }
    const char *need[4] = {lora ? "adapter_model.safetensors" : "model.safetensors", "optimizer.safetensors", "trainer_state.json",
                           extra ? "extra.safetensors" : "trainer_state.json"};
    unsigned found = 0;
    for (char *line = text, *next; s == LF_OK && *line; line = next) {
        next = strchr(line, '\n');
        next = next ? (*next = 0, next + 1) : line + strlen(line);
        if (strlen(line) < 67 || line[64] != ' ' || line[65] != ' ') {
            s = lf__fail(LF_ERR_FORMAT, "%s: a malformed line", path);
            break;
        }
        char hex[65], *file = lf_path_join(dir, line + 66);
        if (!file) s = LF_ERR_NOMEM;
        else if ((s = lf__sha256_file(file, hex)) != LF_OK) s = lf__fail(LF_ERR_FORMAT, "%s: missing or unreadable (a damaged checkpoint)", file);
        else if (memcmp(hex, line, 64) != 0) s = lf__fail(LF_ERR_FORMAT, "%s: checksum mismatch (a damaged checkpoint)", file);
        for (int i = 0; i < 4; i++) found |= (unsigned)(strcmp(line + 66, need[i]) == 0) << i;
        LF_FREE(file);
    }
    if (s == LF_OK && found != 15)
        s = lf__fail(LF_ERR_FORMAT, "%s: does not list %s, %s, %s%s%s", path, need[0], need[1], need[2], extra ? " and " : "", extra ? need[3] : "");
    LF_FREE(path), LF_FREE(text);
    return s;
}

// Copies the tensors of a safetensors file into the parameters [i0, i1) of the same names.
static lf_status lf__ckpt_read(const char *path, lf__train *t, float *base, const char *prefix, int i0, int i1) {
    lf_st_file f;
    lf_status s = lf_st_open(&f, path);
    char name[200];
    for (int i = i0; s == LF_OK && i < i1; i++) {
        const lf__param *p = &t->params[i];
        snprintf(name, sizeof name, "%s%s", prefix, p->name);
        const lf_st_tensor *x = lf_st_find(&f, name);
        if (!x) s = lf__fail(LF_ERR_SHAPE, "%s: no tensor '%s' (a checkpoint of another model or adapter?)", path, name);
        else if (x->dtype != LF_DTYPE_F32 || (int64_t)((x->end - x->begin) / 4) != p->n)
            s = lf__fail(LF_ERR_SHAPE, "%s: '%s' is not %lld F32 values", path, name, (long long)p->n);
        else memcpy(base ? base + p->off : p->p, x->data, (size_t)p->n * sizeof(float));
    }
    lf_st_close(&f);
    return s;
}

LF_API lf_status lf_ckpt_load(const char *dir, lf_model *m, lf_optim *o, lf_train_state *st) {
    lf__train *t = m->train_;
    if (!t || !o->m) return lf__fail(LF_ERR_ARG, "ckpt_load: the model is not training (lf_model_train_begin, lf_optim_init)");
    lf_status s = lf__ckpt_verify(dir, t->lora, m->n_extra_ > 0);
    int np = t->n_params, nm = np - m->n_extra_;  // the model's parameters, then the extras
    if (s != LF_OK) return s;
    lf_doc doc = LF__ZERO;
    char *path = lf_path_join(dir, "trainer_state.json");
    s = path ? lf_json_load(&doc, path) : LF_ERR_NOMEM;
    const char *mode = NULL, *seed = NULL, *calls = NULL;
    int64_t step = 0, ostep = 0, epoch = 0, index = 0, tokens = 0, bad = 0, log_steps = 0, log_micro = 0;
    double best = -1, log_loss = 0, log_metrics[LF_TRAIN_LOG_METRICS];
    if (s == LF_OK && ((s = lf_cfg_str(&doc, doc.root, "mode", true, &mode)) != LF_OK ||
                       (s = lf_cfg_int(&doc, doc.root, "global_step", true, 0, INT64_MAX, &step)) != LF_OK ||
                       (s = lf_cfg_int(&doc, doc.root, "optimizer_step", true, 0, INT64_MAX, &ostep)) != LF_OK ||
                       (s = lf_cfg_int(&doc, doc.root, "epoch", true, 0, INT64_MAX, &epoch)) != LF_OK ||
                       (s = lf_cfg_int(&doc, doc.root, "data_index", true, 0, INT64_MAX, &index)) != LF_OK ||
                       (s = lf_cfg_int(&doc, doc.root, "tokens", true, 0, INT64_MAX, &tokens)) != LF_OK ||
                       (s = lf_cfg_str(&doc, doc.root, "dropout_seed", true, &seed)) != LF_OK ||
                       (s = lf_cfg_str(&doc, doc.root, "dropout_calls", true, &calls)) != LF_OK ||
                       (s = lf_cfg_num(&doc, doc.root, "best_eval_loss", true, &best)) != LF_OK ||
                       (s = lf_cfg_int(&doc, doc.root, "bad_evals", true, 0, INT32_MAX, &bad)) != LF_OK ||
                       (s = lf_cfg_num(&doc, doc.root, "log_loss", true, &log_loss)) != LF_OK ||
                       (s = lf_cfg_int(&doc, doc.root, "log_steps", true, 0, INT32_MAX, &log_steps)) != LF_OK ||
                       (s = lf_cfg_int(&doc, doc.root, "log_micro", true, 0, INT32_MAX, &log_micro)) != LF_OK))
        s = lf__wrap(s, "checkpoint");
    const lf_node *lm = s == LF_OK ? lf_node_get(doc.root, "log_metrics") : NULL;
    if (s == LF_OK && (!lm || lm->type != LF_NODE_ARRAY || lm->n != LF_TRAIN_LOG_METRICS))
        s = lf__fail(LF_ERR_FORMAT, "%s: log_metrics: expected an array of %d numbers", doc.name, LF_TRAIN_LOG_METRICS);
    for (int i = 0; s == LF_OK && i < LF_TRAIN_LOG_METRICS; i++) {
        if (lm->kids[i].type != LF_NODE_NUMBER) s = lf__fail(LF_ERR_FORMAT, "%s: log_metrics[%d]: expected a number", doc.name, i);
        else log_metrics[i] = lm->kids[i].num;
    }
    if (s == LF_OK && strcmp(mode, t->lora ? "lora" : "full") != 0)
        s = lf__fail(LF_ERR_SHAPE, "%s: a %s checkpoint, but this run trains %s", path, mode, t->lora ? "adapters (lora)" : "the full model");
    LF_FREE(path);
    path = s == LF_OK ? lf_path_join(dir, t->lora ? "adapter_model.safetensors" : "model.safetensors") : NULL;
    if (s == LF_OK) s = path ? lf__ckpt_read(path, t, NULL, "", 0, nm) : LF_ERR_NOMEM;
    LF_FREE(path);
    path = s == LF_OK && nm < np ? lf_path_join(dir, "extra.safetensors") : NULL;
    if (s == LF_OK && nm < np) s = path ? lf__ckpt_read(path, t, NULL, "", nm, np) : LF_ERR_NOMEM;
    LF_FREE(path);
    path = s == LF_OK ? lf_path_join(dir, "optimizer.safetensors") : NULL;
    if (s == LF_OK) s = path ? lf__ckpt_read(path, t, o->m, "exp_avg.", 0, np) : LF_ERR_NOMEM;
    if (s == LF_OK) s = lf__ckpt_read(path, t, o->v, "exp_avg_sq.", 0, np);
    LF_FREE(path);
    if (s == LF_OK) {
        st->step = step, st->epoch = epoch, st->index = index, st->tokens = tokens, st->bad_evals = (int)bad;
        st->log_loss = log_loss, st->log_steps = (int)log_steps, st->log_micro = (int)log_micro;
        memcpy(st->log_metrics, log_metrics, sizeof log_metrics);
        st->seed = strtoull(seed, NULL, 10), st->calls = strtoull(calls, NULL, 10), st->best_eval = best < 0 ? HUGE_VAL : best;
        o->step = ostep;
        lf_model_train_rng(m, st->seed, st->calls);
    }
    lf_doc_deinit(&doc);
    return s;
}

// The step numbers of run_dir/checkpoints/step-N, ascending (free with lf_free).
static lf_status lf__ckpt_list(const char *run_dir, int64_t **steps, int *n) {
    *steps = NULL, *n = 0;
    char *cdir = lf_path_join(run_dir, "checkpoints");
    if (!cdir) return LF_ERR_NOMEM;
    DIR *d = opendir(cdir);
    LF_FREE(cdir);
    if (!d) return LF_OK;
    size_t cap = 0;
    lf_status s = LF_OK;
    for (struct dirent *e; s == LF_OK && (e = readdir(d));) {
        char *end;
        if (strncmp(e->d_name, "step-", 5) != 0) continue;
        long long v = strtoll(e->d_name + 5, &end, 10);
        if (end == e->d_name + 5 || *end || v < 0) continue;  // step-N.tmp-PID and others
        if (!lf__grow((void **)steps, &cap, (size_t)*n + 1, sizeof **steps, "checkpoint list")) s = LF_ERR_NOMEM;
        else (*steps)[(*n)++] = v;
    }
    closedir(d);
    for (int i = 1; i < *n; i++)  // insertion sort: a handful of entries
        for (int j = i; j > 0 && (*steps)[j - 1] > (*steps)[j]; j--) {
            int64_t x = (*steps)[j];
            (*steps)[j] = (*steps)[j - 1], (*steps)[j - 1] = x;
        }
    return s;
}

LF_API lf_status lf_ckpt_latest(const char *run_dir, char *out, size_t cap) {
    int64_t *steps;
    int n;
    lf_status s = lf__ckpt_list(run_dir, &steps, &n);
    if (s == LF_OK && n == 0) s = lf__fail(LF_ERR_IO, "%s/checkpoints: no checkpoint to resume from", run_dir);
    if (s == LF_OK) snprintf(out, cap, "%s/checkpoints/step-%lld", run_dir, (long long)steps[n - 1]);
    LF_FREE(steps);
    return s;
}

LF_API lf_status lf_ckpt_prune(const char *run_dir, int keep) {
    int64_t *steps;
    int n;
    lf_status s = lf__ckpt_list(run_dir, &steps, &n);
    char path[PATH_MAX];
    for (int i = 0; s == LF_OK && keep > 0 && i < n - keep; i++) {
        snprintf(path, sizeof path, "%s/checkpoints/step-%lld", run_dir, (long long)steps[i]);
        s = lf__rmdir_flat(path);
    }
    LF_FREE(steps);
    return s;
}
#endif

// == 9. objectives (impl) ========================================================================

// -- 9.1 SFT samples

LF_API void lf_sft_sample_deinit(lf_sft_sample *s) {
    LF_FREE(s->tokens);
    LF_FREE(s->labels);
    memset(s, 0, sizeof *s);
}

static size_t lf__lcp_ids(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    size_t i = 0, n = LF__MIN(na, nb);
    while (i < n && a[i] == b[i]) i++;
    return i;
}

// Renders msgs[0..n) and encodes the text.
static lf_status lf__sft_render_ids(const lf_sft_desc *d, const lf_chat_msg *msgs, int n, unsigned flags, bool add_special,
                                    int32_t **ids, size_t *n_ids) {
    char *text;
    size_t len;
    *ids = NULL, *n_ids = 0;
    lf_status s = lf_chat_render(d->tok, d->chat, msgs, n, flags, &text, &len);
    if (s != LF_OK) return s;
    s = lf_tok_encode(d->tok, text, len, add_special, ids, n_ids);
    LF_FREE(text);
    return s;
}

// Where turn i's render (f, ending with the turn) lines up with full[a..): the end e whose
// preceding tokens share the longest suffix with f (the first such e; the turn is no longer
// than f). Only templates that render a last turn unlike the same turn followed by more need
// this (see ON SFT LABELS).
static size_t lf__sft_realign(const int32_t *f, size_t nf, const int32_t *full, size_t n, size_t a) {
    size_t best = a, best_k = 0;
    for (size_t e = a + 1; e <= n && e - a <= nf; e++) {
        size_t k = 0;
        while (k < nf && k < e - a && f[nf - 1 - k] == full[e - 1 - k]) k++;
        if (k > best_k) best = e, best_k = k;
    }
    return best;
}

// Shared tail: cut at max_length and count what is trained.
static void lf__sft_finish(const lf_sft_desc *d, lf_sft_sample *out) {
    if (d->max_length > 0 && out->n > d->max_length) out->n = d->max_length, out->truncated = true;
    out->n_trained = 0;
    for (int t = 0; t < out->n; t++) out->n_trained += out->labels[t] != LF_IGNORE_INDEX;
}

static lf_status lf__sft_check(const lf_sft_desc *d, lf_sft_sample *out) {
    memset(out, 0, sizeof *out);
    if (!d || !d->tok) return lf__fail(LF_ERR_ARG, "lf_sft_desc: tok is required");
    if (d->max_length < 0) return lf__fail(LF_ERR_ARG, "lf_sft_desc: max_length must be >= 0, got %d", d->max_length);
    return LF_OK;
}

// Hands ids to out (lf_sft_sample_deinit frees them from here on) and sets every label to
// ignored. Samples past INT_MAX tokens are refused rather than wrapped.
static lf_status lf__sft_take(lf_sft_sample *out, int32_t *ids, size_t n) {
    out->tokens = ids;
    if (n > (size_t)INT_MAX - 1)
        return lf__fail(LF_ERR_CAPACITY, "sft: a sample of %zu tokens is over the limit of %d", n, INT_MAX - 1);
    out->n = (int)n;
    out->labels = (int32_t *)lf__alloc((n ? n : 1) * sizeof(int32_t), "sft labels");
    if (!out->labels) return LF_ERR_NOMEM;
    for (size_t t = 0; t < n; t++) out->labels[t] = LF_IGNORE_INDEX;
    return LF_OK;
}

LF_API lf_status lf_sft_encode_chat(const lf_sft_desc *d, const lf_chat_msg *msgs, int n, int n_prompt,
                                    lf_sft_sample *out) {
    lf_status s = lf__sft_check(d, out);
    if (s != LF_OK) return s;
    if (n <= 0 || !msgs || n_prompt < 0 || n_prompt > n)
        return lf__fail(LF_ERR_ARG, "lf_sft_encode_chat: bad conversation (n = %d, n_prompt = %d)", n, n_prompt);
    lf_chat_template eff = d->chat != LF_CHAT_DEFAULT ? d->chat : d->tok->chat;
    bool add_special = eff == LF_CHAT_DEFAULT || eff == LF_CHAT_PLAIN;
    unsigned flags = d->chat_flags & ~(unsigned)LF_CHAT_GENERATION_PROMPT;
    int32_t *full, *p = NULL, *f = NULL;
    size_t nfull, np = 0, nf = 0;
    s = lf__sft_render_ids(d, msgs, n, flags, add_special, &full, &nfull);
    if (s == LF_OK) s = lf__sft_take(out, full, nfull);
    for (int i = n_prompt; s == LF_OK && i < n; i++) {
        if (strcmp(msgs[i].role, "assistant") != 0) continue;
        if (i == 0) {
            s = lf__fail(LF_ERR_FORMAT, "messages[0]: a conversation cannot start with an assistant turn "
                                        "(the turn would have no prompt)");
            break;
        }
        s = lf__sft_render_ids(d, msgs, i, flags | LF_CHAT_GENERATION_PROMPT, add_special, &p, &np);
        if (s == LF_OK) s = lf__sft_render_ids(d, msgs, i + 1, flags, add_special, &f, &nf);
        if (s == LF_OK) {
            size_t a = lf__lcp_ids(p, np, full, nfull), b = nf;
            out->prefix_mismatch += a < np;
            if (lf__lcp_ids(f, nf, full, nfull) < nf) b = lf__sft_realign(f, nf, full, nfull, a), out->realigned++;
            for (size_t t = a; t < b; t++) out->labels[t] = full[t];
        }
        LF_FREE(p), LF_FREE(f);
        p = f = NULL;
    }
    if (s != LF_OK) return lf_sft_sample_deinit(out), s;  // full is NULL or owned by out
    lf__sft_finish(d, out);
    return LF_OK;
}

LF_API lf_status lf_sft_encode_text(const lf_sft_desc *d, const char *prompt, const char *text, lf_sft_sample *out) {
    lf_status s = lf__sft_check(d, out);
    if (s != LF_OK) return s;
    if (!text) return lf__fail(LF_ERR_ARG, "lf_sft_encode_text: text is NULL");
    int32_t eos = d->tok->eos_id;
    if (eos < 0)
        return lf__fail(LF_ERR_CONFIG, "%s: the tokenizer has no eos_token, which text samples end with", d->tok->name);
    size_t lp = prompt ? strlen(prompt) : 0, lt = strlen(text), np = 0, nfull;
    int32_t *p = NULL, *full;
    char *joined = (char *)lf__alloc(lp + lt + 1, "sft text");
    if (!joined) return LF_ERR_NOMEM;
    if (lp) memcpy(joined, prompt, lp);
    memcpy(joined + lp, text, lt + 1);
    s = lf_tok_encode(d->tok, joined, lp + lt, true, &full, &nfull);
    LF_FREE(joined);
    if (s == LF_OK && (nfull == 0 || full[nfull - 1] != eos)) {  // room for the EOS id
        int32_t *g = (int32_t *)LF_REALLOC(full, (nfull + 1) * sizeof(int32_t));
        if (!g) s = lf__fail(LF_ERR_NOMEM, "out of memory appending EOS to an sft sample");
        else full = g, full[nfull++] = eos;
    }
    if (s != LF_OK) return LF_FREE(full), s;
    s = lf__sft_take(out, full, nfull);
    if (s == LF_OK && prompt) s = lf_tok_encode(d->tok, prompt, lp, true, &p, &np);
    if (s != LF_OK) return LF_FREE(p), lf_sft_sample_deinit(out), s;
    size_t a = prompt ? lf__lcp_ids(p, np, full, nfull) : 0;
    out->prefix_mismatch = a < np;
    for (size_t t = a; t < nfull; t++) out->labels[t] = full[t];
    LF_FREE(p);
    lf__sft_finish(d, out);
    return LF_OK;
}

// -- 9.2 preference losses

LF_API lf_dpo_desc lf_dpo_desc_default(void) {
    lf_dpo_desc d;
    memset(&d, 0, sizeof d);
    d.beta = 0.1f, d.loss_type = LF_PREF_SIGMOID;
    return d;
}


// The dpo section, or (orpo) the orpo section's beta and lengths.
static lf_status lf__pref_config_read(lf_dpo_config *c, const lf_doc *doc, bool orpo) {
    memset(c, 0, sizeof *c);
    c->loss = lf_dpo_desc_default(), c->max_prompt_length = 512, c->max_length = 1024;
    const char *sec = orpo ? "orpo" : "dpo";
    const lf_node *n = lf_node_get(doc->root, sec);
    if (n && n->type != LF_NODE_OBJECT && n->type != LF_NODE_NULL) return lf__fail(LF_ERR_CONFIG, "%s: '%s' must be a mapping", doc->name, sec);
    static const char *known[] = {"beta", "max_prompt_length", "max_length", "loss_type", "label_smoothing", "reference_free",
                                  "precompute_ref_log_probs"};
    static const char *types[] = {"sigmoid", "hinge", "ipo"};
    lf_status s = lf_cfg_keys(doc, n, sec, known, orpo ? 3 : (int)(sizeof known / sizeof *known));
    lf_doc sub = *doc;
    snprintf(sub.name, sizeof sub.name, "%.200s: %s", doc->name, sec);
    int lt = 0;
    if (s == LF_OK) s = lf__cfg_f(&sub, n, "beta", 1e-9, 1e9, false, &c->loss.beta);
    if (s == LF_OK) s = lf__cfg_enum(&sub, n, "loss_type", types, 3, &lt);
    if (s == LF_OK) s = lf__cfg_f(&sub, n, "label_smoothing", 0, 0.5, true, &c->loss.label_smoothing);
    if (s == LF_OK) s = lf_cfg_bool(&sub, n, "reference_free", false, &c->loss.reference_free);
    if (s == LF_OK) s = lf__cfg_i(&sub, n, "max_prompt_length", 1, 1 << 20, &c->max_prompt_length);
    if (s == LF_OK) s = lf__cfg_i(&sub, n, "max_length", 2, 1 << 20, &c->max_length);
    if (s == LF_OK) s = lf_cfg_bool(&sub, n, "precompute_ref_log_probs", false, &c->precompute_ref_log_probs);
    if (s == LF_OK && c->max_prompt_length >= c->max_length)
        s = lf__fail(LF_ERR_CONFIG, "%s: max_prompt_length %d must be below max_length %d", sub.name, c->max_prompt_length, c->max_length);
    c->loss.loss_type = (lf_pref_loss)lt;
    return s;
}

LF_API lf_status lf_dpo_config_read(lf_dpo_config *c, const lf_doc *doc) { return lf__pref_config_read(c, doc, false); }
LF_API lf_status lf_orpo_config_read(lf_dpo_config *c, const lf_doc *doc) { return lf__pref_config_read(c, doc, true); }

// log(sigmoid(x)) without overflow on either side.
static double lf__logsigmoid(double x) { return x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x)); }

// The rewards and log-prob means TRL logs, over pairs with rewards wc[i], wr[i].
static void lf__pref_stats(lf_pref_stats *s, const lf_pref_pairs *p, int i, double wc, double wr) {
    double n = p->n;
    s->rewards_chosen += wc / n, s->rewards_rejected += wr / n, s->accuracies += (wc > wr) / n, s->margins += (wc - wr) / n;
    s->logps_chosen += p->pc[i] / n, s->logps_rejected += p->pr[i] / n;
}

LF_API lf_status lf_dpo_loss(const lf_dpo_desc *d, const lf_pref_pairs *p, double *dpc, double *dpr, lf_pref_stats *st) {
    if (!(d->beta > 0)) return lf__fail(LF_ERR_CONFIG, "dpo.beta: must be > 0, got %g", (double)d->beta);
    if (!(d->label_smoothing >= 0 && d->label_smoothing < 0.5f))
        return lf__fail(LF_ERR_CONFIG, "dpo.label_smoothing: must be in [0, 0.5), got %g", (double)d->label_smoothing);
    if ((unsigned)d->loss_type > LF_PREF_IPO) return lf__fail(LF_ERR_CONFIG, "dpo.loss_type: unknown value %d", (int)d->loss_type);
    if (p->n <= 0) return lf__fail(LF_ERR_ARG, "dpo_loss: no pairs");
    if (!d->reference_free && (!p->rc || !p->rr)) return lf__fail(LF_ERR_ARG, "dpo_loss: reference log-probs are required");
    double beta = d->beta, ls = d->label_smoothing, n = p->n;
    lf_pref_stats s;
    memset(&s, 0, sizeof s);
    for (int i = 0; i < p->n; i++) {
        double rc = p->rc ? p->rc[i] : 0, rr = p->rr ? p->rr[i] : 0, zc = p->pc[i] - (d->reference_free ? 0 : rc),
               zr = p->pr[i] - (d->reference_free ? 0 : rr), tc = 1, tr = 1, loss, dz;  // dz: d loss / d z
        if (d->loss_type == LF_PREF_IPO) tc = p->nc ? LF__MAX(1, p->nc[i]) : 1, tr = p->nr ? LF__MAX(1, p->nr[i]) : 1;
        double z = zc / tc - zr / tr;
        if (d->loss_type == LF_PREF_SIGMOID) {
            loss = -lf__logsigmoid(beta * z) * (1 - ls) - lf__logsigmoid(-beta * z) * ls;
            dz = -beta * (1 - ls) * exp(lf__logsigmoid(-beta * z)) + beta * ls * exp(lf__logsigmoid(beta * z));
        } else if (d->loss_type == LF_PREF_HINGE) {
            loss = LF__MAX(0.0, 1 - beta * z);
            dz = 1 - beta * z > 0 ? -beta : 0;
        } else {
            double e = z - 1 / (2 * beta);
            loss = e * e, dz = 2 * e;
        }
        if (dpc) dpc[i] = dz / tc / n;
        if (dpr) dpr[i] = -dz / tr / n;
        s.loss += loss / n;
        lf__pref_stats(&s, p, i, beta * (p->pc[i] - rc), beta * (p->pr[i] - rr));
    }
    if (st) *st = s;
    return LF_OK;
}

// log(1 - e^x) for x < 0, accurate at both ends.
static double lf__log1mexp(double x) { return x < -0.6931471805599453 ? log1p(-exp(x)) : log(-expm1(x)); }

LF_API lf_status lf_orpo_loss(float beta_f, const lf_pref_pairs *p, double *dpc, double *dpr, lf_pref_stats *st) {
    if (!(beta_f > 0)) return lf__fail(LF_ERR_CONFIG, "orpo.beta: must be > 0, got %g", (double)beta_f);
    if (p->n <= 0) return lf__fail(LF_ERR_ARG, "orpo_loss: no pairs");
    double beta = beta_f, n = p->n;
    lf_pref_stats s;
    memset(&s, 0, sizeof s);
    for (int i = 0; i < p->n; i++) {
        double pc = p->pc[i], pr = p->pr[i];
        if (!(pc < 0) || !(pr < 0)) return lf__fail(LF_ERR_ARG, "orpo_loss: pair %d: log-probs must be < 0, got %g and %g", i, pc, pr);
        double lo = (pc - pr) - (lf__log1mexp(pc) - lf__log1mexp(pr)), ls = lf__logsigmoid(lo), sg = exp(lf__logsigmoid(-lo));
        // d log odds(p) / dp = 1 / (1 - e^p)
        if (dpc) dpc[i] = -beta * sg / -expm1(pc) / n;
        if (dpr) dpr[i] = beta * sg / -expm1(pr) / n;
        s.loss -= beta * ls / n, s.log_odds_ratio += ls / n, s.log_odds_chosen += lo / n;
        lf__pref_stats(&s, p, i, beta * pc, beta * pr);
    }
    if (st) *st = s;
    return LF_OK;
}

// The preference objectives on section 6's head: the log-probs of each row's completion summed
// (DPO) or averaged (ORPO) over its scored positions, the loss over the pairs (row i, i + B/2)
// that hold data (a last batch pads with empty pairs), each row's gradient spread over its
// positions. ORPO's NLL also scores the chosen rows' prompts (see lf_orpo_grads).
typedef struct lf__pref_obj {
    const lf_dpo_desc *d;    // DPO; NULL: ORPO with beta
    float beta;
    double weight;           // the gradient's weight
    const double *ref;       // [B] the reference's sums (DPO)
    int counts[512];         // [B] completion positions per row
    int first[512];          // [B] the first completion position (index into logp)
    int32_t *labels;         // ORPO: [B, T] the chosen rows' labels extended over their prompts
    lf_pref_stats st;
    lf_status status;
} lf__pref_obj;

static float lf__pref_objective(void *user, const float *logp, float *dlogp, int B, int T) {
    lf__pref_obj *o = (lf__pref_obj *)user;
    int P = B / 2, n = 0, idx[256], nc[256], nr[256];
    double pc[256], pr[256], rc[256], rr[256], gc[256], gr[256], nll = 0;
    int64_t nll_n = 0;
    for (int i = 0; i < P; i++) {
        if (!o->counts[i] && !o->counts[i + P]) continue;  // padding
        double S[2] = {0, 0};
        for (int h = 0; h < 2; h++)
            for (int t = 0; t < T; t++) {
                double v = logp[(size_t)(i + h * P) * (size_t)T + (size_t)t];
                if (t >= o->first[i + h * P]) S[h] += v;
                if (!h) nll -= v, nll_n += v != 0;
            }
        idx[n] = i, nc[n] = o->counts[i], nr[n] = o->counts[i + P];
        pc[n] = o->d ? S[0] : S[0] / LF__MAX(1, nc[n]), pr[n] = o->d ? S[1] : S[1] / LF__MAX(1, nr[n]);
        if (!o->d) pc[n] = LF__MIN(pc[n], -1e-7), pr[n] = LF__MIN(pr[n], -1e-7);  // a sure f32 row has log p 0: odds infinite
        rc[n] = o->ref ? o->ref[i] : 0, rr[n] = o->ref ? o->ref[i + P] : 0;
        n++;
    }
    memset(&o->st, 0, sizeof o->st);
    if (!n) return 0;
    lf_pref_pairs pp = {n, pc, pr, o->ref ? rc : NULL, o->ref ? rr : NULL, nc, nr};
    o->status = o->d ? lf_dpo_loss(o->d, &pp, gc, gr, &o->st) : lf_orpo_loss(o->beta, &pp, gc, gr, &o->st);
    if (o->status != LF_OK) return 0;
    if (!o->d) o->st.nll_loss = nll_n ? nll / (double)nll_n : 0, o->st.loss += o->st.nll_loss;
    for (int j = 0; j < n; j++)  // ORPO: d average / d logp = 1 / tokens; the NLL's mean on every chosen target
        for (int h = 0; h < 2; h++) {
            int r = idx[j] + h * P;
            double w = h ? gr[j] / (o->d ? 1 : LF__MAX(1, nr[j])) : gc[j] / (o->d ? 1 : LF__MAX(1, nc[j]));
            double nw = !o->d && !h ? 1.0 / (double)nll_n : 0;
            for (int t = 0; t < T; t++) dlogp[(size_t)r * (size_t)T + (size_t)t] = (float)(o->weight * ((t >= o->first[r] ? w : 0) - nw));
        }
    return (float)o->st.loss;
}

// Checks the micro-batch and finds each row's completion: its scored positions (as the model
// shifts labels), from the first to the last.
static lf_status lf__pref_begin(lf_model *m, const lf_train_batch *b, const char *what, lf__pref_obj *o) {
    lf__train *t = m->train_;
    if (!t) return lf__fail(LF_ERR_ARG, "%s: call lf_model_train_begin first", what);
    int B = t->B, T = t->T;
    if (B % 2 || B > 512) return lf__fail(LF_ERR_ARG, "%s: %d rows: an even count of at most 512 (chosen, then rejected)", what, B);
    for (int r = 0; r < B; r++) {
        o->counts[r] = 0, o->first[r] = T;
        for (int i = 0; i + 1 < T; i++) {
            size_t k = (size_t)r * (size_t)T + (size_t)i;
            bool scored = b->labels[k + 1] != -100 && (!b->pos || b->pos[k + 1] != 0);
            o->counts[r] += scored;
            if (scored && o->first[r] == T) o->first[r] = i;
        }
    }
    return LF_OK;
}

static lf_status lf__pref_run(lf_model *m, const lf_train_batch *b, lf__pref_obj *o, lf_pref_stats *st) {
    lf_train_batch pb = *b;
    pb.objective = lf__pref_objective, pb.objective_user = o;
    if (o->labels) pb.labels = o->labels;
    float loss;
    int n;
    lf_status s = o->weight != 0 ? lf_model_train_grads(m, &pb, &loss) : lf_model_train_eval(m, &pb, &loss, &n);
    if (s == LF_OK) s = o->status;
    if (s == LF_OK && st) *st = o->st;
    return s;
}

LF_API lf_status lf_dpo_ref_logps(lf_model *m, const lf_train_batch *b, double *ref) {
    lf__train *t = m->train_;
    if (!t) return lf__fail(LF_ERR_ARG, "dpo_ref_logps: call lf_model_train_begin first");
    int B = t->B, T = t->T;
    float *lp = (float *)lf__alloc((size_t)B * (size_t)T * sizeof(float), "reference log-probs");
    if (!lp) return LF_ERR_NOMEM;
    bool off = m->lora_off;
    lf_lora_enable(m, false);
    lf_status s = lf_model_train_logps(m, b, lp);
    lf_lora_enable(m, !off);
    for (int r = 0; r < B; r++) {
        ref[r] = 0;
        for (int i = 0; i < T; i++) ref[r] += lp[(size_t)r * (size_t)T + (size_t)i];
    }
    LF_FREE(lp);
    return s;
}

LF_API lf_status lf_dpo_grads(lf_model *m, const lf_dpo_desc *d, const lf_train_batch *b, const double *ref, float weight,
                              lf_pref_stats *st) {
    lf__pref_obj *o = (lf__pref_obj *)lf__calloc(1, sizeof *o, "dpo objective");
    if (!o) return LF_ERR_NOMEM;
    double refs[512];
    lf_status s = lf__pref_begin(m, b, "dpo_grads", o);
    if (s == LF_OK && !ref && !d->reference_free && !m->lora_r)
        s = lf__fail(LF_ERR_ARG, "dpo_grads: no reference log-probs, and no adapters to switch off for them");
    if (s == LF_OK && !ref && !d->reference_free) s = lf_dpo_ref_logps(m, b, refs), ref = refs;
    o->d = d, o->ref = ref, o->weight = weight;
    if (s == LF_OK) s = lf__pref_run(m, b, o, st);
    LF_FREE(o);
    return s;
}

LF_API lf_status lf_orpo_grads(lf_model *m, float beta, const lf_train_batch *b, float weight, lf_pref_stats *st) {
    lf__pref_obj *o = (lf__pref_obj *)lf__calloc(1, sizeof *o, "orpo objective");
    if (!o) return LF_ERR_NOMEM;
    lf_status s = lf__pref_begin(m, b, "orpo_grads", o);
    int64_t B = s == LF_OK ? m->train_->B : 0, T = s == LF_OK ? m->train_->T : 0;
    if (s == LF_OK && !(o->labels = (int32_t *)lf__alloc((size_t)(B * T) * sizeof(int32_t), "orpo labels"))) s = LF_ERR_NOMEM;
    if (s == LF_OK) {  // the chosen rows score their prompts too: every token of the sample up to the completion's end
        memcpy(o->labels, b->labels, (size_t)(B * T) * sizeof(int32_t));
        for (int64_t r = 0; r < B / 2; r++) {
            int64_t start = 0, end = -1, i = 0;
            for (; i < T && b->labels[r * T + i] == -100; i++)
                if (b->pos && b->pos[r * T + i] == 0) start = i;  // packed: the sample holding the completion
            for (; i < T; i++)
                if (b->labels[r * T + i] != -100) end = i;
            for (i = start; i <= end; i++) o->labels[r * T + i] = b->tokens[r * T + i];
        }
    }
    o->beta = beta, o->weight = weight;
    if (s == LF_OK) s = lf__pref_run(m, b, o, st);
    LF_FREE(o->labels);
    LF_FREE(o);
    return s;
}

// -- 9.3 distillation

LF_API lf_kd_desc lf_kd_desc_default(void) {
    lf_kd_desc d = {0.5f, 2.0f};
    return d;
}

static lf_status lf__kd_check(const lf_kd_desc *d, const lf_kd_targets *t, int V) {
    if (!(d->alpha >= 0 && d->alpha <= 1)) return lf__fail(LF_ERR_CONFIG, "distill.alpha: must be in [0, 1], got %g", (double)d->alpha);
    if (!(d->temperature > 0)) return lf__fail(LF_ERR_CONFIG, "distill.temperature: must be > 0, got %g", (double)d->temperature);
    if (t->k < 1 || t->k > V) return lf__fail(LF_ERR_ARG, "kd: top-k %d outside [1, %d]", t->k, V);
    return LF_OK;
}

// One position: its CE and KL (above), and with scale != 0 the row S overwritten by
// scale * d loss / d S. Returns false for an id outside [0, V).
static bool lf__kd_row(const lf_kd_desc *d, float *S, int32_t y, const int32_t *ids, const float *lp, int k, int V, double scale,
                       double *ce, double *kl) {
    double T = d->temperature, a = d->alpha, m = S[0], mt, z = 0, zt = 0, pm = -HUGE_VAL, zp = 0;
    for (int v = 1; v < V; v++) m = fmax(m, S[v]);
    mt = m / T;
    for (int v = 0; v < V; v++) z += exp(S[v] - m), zt += exp(S[v] / T - mt);
    double lse = m + log(z), lset = mt + log(zt);
    for (int j = 0; j < k; j++) {
        if (ids[j] < 0 || ids[j] >= V) return false;
        pm = fmax(pm, lp[j] / T);
    }
    for (int j = 0; j < k; j++) zp += exp(lp[j] / T - pm);
    double lzp = pm + log(zp), sum = 0;
    for (int j = 0; j < k; j++) {  // p log p - p log q
        double lpj = lp[j] / T - lzp;
        sum += exp(lpj) * (lpj - (S[ids[j]] / T - lset));
    }
    *ce = lse - S[y], *kl = sum;
    if (scale == 0) return true;
    for (int v = 0; v < V; v++) S[v] = (float)(scale * (a * exp(S[v] - lse) + (1 - a) * T * exp(S[v] / T - lset)));
    S[y] -= (float)(scale * a);
    for (int j = 0; j < k; j++) S[ids[j]] -= (float)(scale * (1 - a) * T * exp(lp[j] / T - lzp));
    return true;
}

// The rows of a chunk: their summed loss (alpha CE + (1 - alpha) T^2 KL) times scale.
static lf_status lf__kd_rows(const lf_kd_desc *d, float *S, const int32_t *y, int64_t p0, int rows, int V, const lf_kd_targets *t,
                             double scale, bool grad, lf_kd_stats *st) {
    double T = d->temperature;
    for (int i = 0; i < rows; i++) {
        float *row = S + (size_t)i * (size_t)V;
        double ce, kl;
        if (y[i] < 0) {
            if (grad) memset(row, 0, (size_t)V * sizeof(float));
            continue;
        }
        if (y[i] >= V) return lf__fail(LF_ERR_ARG, "kd: target %d at position %lld is outside [0, %d)", y[i], (long long)(p0 + i), V);
        size_t o = (size_t)(p0 + i) * (size_t)t->k;
        if (!lf__kd_row(d, row, y[i], t->ids + o, t->logp + o, t->k, V, grad ? scale : 0, &ce, &kl))
            return lf__fail(LF_ERR_ARG, "kd: a teacher id at position %lld is outside [0, %d)", (long long)(p0 + i), V);
        st->ce += ce, st->kl += kl, st->n++;
        st->loss += scale * (d->alpha * ce + (1 - d->alpha) * T * T * kl);
    }
    return LF_OK;
}

LF_API lf_status lf_kd_loss(const lf_kd_desc *d, const float *S, const int32_t *y, int N, int V, const lf_kd_targets *t, int n_div,
                            float *dS, lf_kd_stats *st) {
    lf_status s = lf__kd_check(d, t, V);
    if (s != LF_OK) return s;
    int n = 0;
    for (int i = 0; i < N; i++) n += y[i] != LF_IGNORE_INDEX;
    lf_kd_stats acc = {0, 0, 0, 0, 0};
    float *row = (float *)lf__alloc((size_t)V * sizeof(float), "kd row");
    if (!row) return LF_ERR_NOMEM;
    double scale = n_div > 0 ? 1.0 / n_div : n ? 1.0 / n : 0;
    for (int i = 0; i < N && s == LF_OK; i++) {
        memcpy(row, S + (size_t)i * (size_t)V, (size_t)V * sizeof(float));
        s = lf__kd_rows(d, row, y + i, i, 1, V, t, scale, dS != NULL, &acc);
        if (dS) memcpy(dS + (size_t)i * (size_t)V, row, (size_t)V * sizeof(float));
    }
    LF_FREE(row);
    if (acc.n) acc.ce /= (double)acc.n, acc.kl /= (double)acc.n;
    if (s == LF_OK && st) *st = acc;
    return s;
}

// A heap of the k largest (value, id) pairs seen: the smallest on top; of equal values the
// larger id goes first, so the lowest ids stay.
typedef struct lf__kd_cand {
    float v;
    int32_t id;
} lf__kd_cand;
static bool lf__kd_cand_less(const lf__kd_cand *a, const lf__kd_cand *b) { return a->v < b->v || (a->v == b->v && a->id > b->id); }
LF__HEAP_DEFINE(lf__kd_heap, lf__kd_cand, lf__kd_cand_less)

LF_API lf_status lf_kd_teacher_topk(lf_model *teacher, lf_kv *kv, const int32_t *tokens, int n, int k, int32_t *ids, float *logp,
                                    float *const *hidden) {
    int V = teacher->cfg.V, chunk = teacher->max_tokens;
    if (k < 1 || k > V) return lf__fail(LF_ERR_ARG, "kd: top-k %d outside [1, %d]", k, V);
    float *logits = (float *)lf__alloc((size_t)chunk * (size_t)V * sizeof(float), "teacher logits");
    lf__kd_cand *h = (lf__kd_cand *)lf__alloc((size_t)k * sizeof *h, "top-k heap");
    int8_t *all = (int8_t *)lf__alloc((size_t)chunk, "logit flags");
    int32_t *pos = (int32_t *)lf__alloc((size_t)chunk * sizeof(int32_t), "positions");
    float **hid = hidden ? (float **)lf__calloc((size_t)teacher->cfg.L, sizeof(float *), "hidden views") : NULL;
    lf_status s = logits && h && all && pos && (hid || !hidden) ? LF_OK : LF_ERR_NOMEM;
    if (s == LF_OK) memset(all, 1, (size_t)chunk);
    lf_kv_seq_truncate(kv, 0, 0);
    for (int p0 = 0; s == LF_OK && p0 < n; p0 += chunk) {
        int c = LF__MIN(chunk, n - p0);
        for (int i = 0; i < c; i++) pos[i] = p0 + i;
        for (int l = 0; hid && l < teacher->cfg.L; l++) hid[l] = hidden[l] ? hidden[l] + (size_t)p0 * (size_t)teacher->cfg.C : NULL;
        lf_batch b = {c, tokens + p0, pos, NULL, all, hid};
        s = lf_model_forward(teacher, kv, &b, logits);
        for (int i = 0; s == LF_OK && i < c; i++) {
            const float *z = logits + (size_t)i * (size_t)V;
            double m = z[0], sum = 0;
            for (int v = 1; v < V; v++) m = fmax(m, z[v]);
            for (int v = 0; v < V; v++) sum += exp(z[v] - m);
            float lse = (float)(m + log(sum));
            int32_t *oi = ids + (size_t)(p0 + i) * (size_t)k;
            float *ol = logp + (size_t)(p0 + i) * (size_t)k;
            if (k == V) {
                for (int v = 0; v < V; v++) oi[v] = v, ol[v] = z[v] - lse;
                continue;
            }
            size_t nh = 0;
            for (int v = 0; v < V; v++) {
                lf__kd_cand x = {z[v], v};
                if (nh < (size_t)k) lf__kd_heap_up(h, nh++, x);
                else if (lf__kd_cand_less(&h[0], &x)) lf__kd_heap_pop(h, &nh), lf__kd_heap_up(h, nh++, x);
            }
            for (int j = k - 1; j >= 0; j--) {  // smallest first off the heap: fill from the end
                lf__kd_cand x = lf__kd_heap_pop(h, &nh);
                oi[j] = x.id, ol[j] = x.v - lse;
            }
        }
    }
    LF_FREE(logits), LF_FREE(h), LF_FREE(all), LF_FREE(pos), LF_FREE(hid);
    return s;
}

LF_API void lf_kd_feature_loss(const float *hs, const float *ht, const float *W, const uint8_t *mask, int64_t N, int Cs, int Ct,
                               double scale, double *loss, float *dhs, float *dW) {
    int64_t M = 0;
    double sum = 0, r[4096];  // one row's residual W h_s - h_t (Ct is at most 4096: lf_kd_grads checks)
    for (int64_t i = 0; i < N; i++) M += mask[i] != 0;
    double c = M ? 2.0 * scale / ((double)Ct * (double)M) : 0;
    for (int64_t i = 0; i < N; i++) {
        if (!mask[i]) continue;
        const float *x = hs + i * Cs, *y = ht + i * Ct;
        for (int o = 0; o < Ct; o++) {
            double p = 0;
            if (W)
                for (int k = 0; k < Cs; k++) p += (double)W[(size_t)o * (size_t)Cs + (size_t)k] * x[k];
            else p = x[o];
            r[o] = p - y[o], sum += r[o] * r[o];
        }
        for (int o = 0; o < Ct && (dhs || dW); o++) {
            if (!W) {
                if (dhs) dhs[i * Cs + o] += (float)(c * r[o]);
                continue;
            }
            for (int k = 0; k < Cs; k++) {
                if (dhs) dhs[i * Cs + k] += (float)(c * r[o] * W[(size_t)o * (size_t)Cs + (size_t)k]);
                if (dW) dW[(size_t)o * (size_t)Cs + (size_t)k] += (float)(c * r[o] * x[k]);
            }
        }
    }
    *loss = M ? sum / ((double)Ct * (double)M) : 0;
}

typedef struct lf__kd_head {
    const lf_kd_desc *d;
    const lf_kd_targets *t;
    const lf_kd_features *f;
    lf_model *m;
    double scale, share;  // the logits' divisor; this micro-batch's share of the step (features)
    lf_kd_stats st;
    lf_status status;
} lf__kd_head;

static double lf__kd_feature_fn(void *user, int layer, const float *h, float *dh, int64_t N, int C, bool backward) {
    lf__kd_head *k = (lf__kd_head *)user;
    const lf_kd_features *f = k->f;
    double total = 0;
    for (int j = 0; j < f->n; j++) {
        if (f->student_layer[j] != layer) continue;
        const float *g = f->proj[j] && backward ? lf_model_grad(k->m, f->proj_name[j], NULL) : NULL;
        double loss;
        lf_kd_feature_loss(h, f->teacher_hidden[j], f->proj[j], f->mask, N, C, f->Ct, k->share * f->weight, &loss, backward ? dh : NULL,
                           (float *)(uintptr_t)g);  // the extra parameter's own gradient
        total += k->share * f->weight * loss;
    }
    k->st.feat += total;
    return total;
}

static double lf__kd_head_fn(void *user, int64_t p0, int rows, float *logits, const int32_t *targets, int V, bool backward) {
    lf__kd_head *h = (lf__kd_head *)user;
    double before = h->st.loss;
    if (h->status == LF_OK) h->status = lf__kd_rows(h->d, logits, targets, p0, rows, V, h->t, h->scale, backward, &h->st);
    if (h->status != LF_OK && backward) memset(logits, 0, (size_t)rows * (size_t)V * sizeof(float));
    return h->st.loss - before;
}

static lf_status lf__kd_run(lf_model *m, const lf_kd_desc *d, const lf_train_batch *b, const lf_kd_targets *t, const lf_kd_features *f,
                            lf_kd_stats *st, bool grads) {
    if (!m->train_) return lf__fail(LF_ERR_ARG, "kd: call lf_model_train_begin first");
    lf_status s = lf__kd_check(d, t, m->cfg.V);
    if (s != LF_OK) return s;
    int8_t *layers = NULL;
    if (f && f->n > 0) {
        if (f->Ct < 1 || f->Ct > 4096) return lf__fail(LF_ERR_ARG, "kd features: the teacher's width %d is outside [1, 4096]", f->Ct);
        if (!(layers = (int8_t *)lf__calloc((size_t)m->cfg.L, 1, "feature layers"))) return LF_ERR_NOMEM;
        for (int j = 0; j < f->n && s == LF_OK; j++) {
            if (f->student_layer[j] < 0 || f->student_layer[j] >= m->cfg.L)
                s = lf__fail(LF_ERR_ARG, "kd features: student layer %d is outside [0, %d)", f->student_layer[j], m->cfg.L);
            else if (!f->proj[j] && f->Ct != m->cfg.C)
                s = lf__fail(LF_ERR_ARG, "kd features: widths %d and %d differ: a projection is needed", m->cfg.C, f->Ct);
            else if (f->proj[j] && grads && !lf_model_grad(m, f->proj_name[j], NULL))
                s = lf__fail(LF_ERR_ARG, "kd features: no trainable parameter '%s' (lf_model_train_extra)", f->proj_name[j]);
            else layers[f->student_layer[j]] = 1;
        }
    }
    lf__kd_head h = {d, t, f, m, 0, 0, {0, 0, 0, 0, 0}, LF_OK};
    int n = 0;
    for (int64_t i = 0, N = (int64_t)m->train_->B * m->train_->T; i + 1 < N; i++)  // the targets, as the model shifts labels
        n += (i + 1) % m->train_->T != 0 && b->labels[i + 1] != LF_IGNORE_INDEX && (!b->pos || b->pos[i + 1] != 0);
    h.scale = b->n_scored > 0 ? 1.0 / b->n_scored : n ? 1.0 / n : 0;
    h.share = n * h.scale;
    lf_train_batch kb = *b;
    kb.head = lf__kd_head_fn, kb.head_user = &h;
    if (layers) kb.feature = lf__kd_feature_fn, kb.feature_layers = layers, kb.feature_user = &h;
    float loss;
    int scored;
    if (s == LF_OK) s = grads ? lf_model_train_grads(m, &kb, &loss) : lf_model_train_eval(m, &kb, &loss, &scored);
    if (s == LF_OK) s = h.status;
    if (h.st.n) h.st.ce /= (double)h.st.n, h.st.kl /= (double)h.st.n;
    h.st.loss += h.st.feat;
    if (s == LF_OK && st) *st = h.st;
    LF_FREE(layers);
    return s;
}

LF_API lf_status lf_kd_grads(lf_model *m, const lf_kd_desc *d, const lf_train_batch *b, const lf_kd_targets *t, const lf_kd_features *f,
                             lf_kd_stats *st) {
    return lf__kd_run(m, d, b, t, f, st, true);
}
LF_API lf_status lf_kd_eval(lf_model *m, const lf_kd_desc *d, const lf_train_batch *b, const lf_kd_targets *t, const lf_kd_features *f,
                            lf_kd_stats *st) {
    return lf__kd_run(m, d, b, t, f, st, false);
}

LF_API lf_status lf_kd_config_read(lf_kd_config *c, const lf_doc *doc) {
    memset(c, 0, sizeof *c);
    c->kd = lf_kd_desc_default();
    const lf_node *n = lf_node_get(doc->root, "distill");
    if (n && n->type != LF_NODE_OBJECT && n->type != LF_NODE_NULL) return lf__fail(LF_ERR_CONFIG, "%s: 'distill' must be a mapping", doc->name);
    static const char *known[] = {"teacher", "temperature", "alpha", "top_k", "teacher_quantization", "logits_file", "feature_layers",
                                  "feature_weight"};
    static const char *quants[] = {"none", "nf4", "int8"};
    lf_status s = lf_cfg_keys(doc, n, "distill", known, (int)(sizeof known / sizeof *known));
    lf_doc sub = *doc;
    snprintf(sub.name, sizeof sub.name, "%.200s: distill", doc->name);
    int q = 0;
    if (s == LF_OK) s = lf_cfg_str(&sub, n, "teacher", false, &c->teacher);
    if (s == LF_OK) s = lf_cfg_str(&sub, n, "logits_file", false, &c->logits_file);
    if (s == LF_OK) s = lf__cfg_f(&sub, n, "temperature", 1e-6, 1e6, false, &c->kd.temperature);
    if (s == LF_OK) s = lf__cfg_f(&sub, n, "alpha", 0, 1, false, &c->kd.alpha);
    if (s == LF_OK) s = lf__cfg_i(&sub, n, "top_k", 0, 1 << 24, &c->top_k);
    if (s == LF_OK) s = lf__cfg_enum(&sub, n, "teacher_quantization", quants, 3, &q);
    if (s == LF_OK && !c->teacher && !c->logits_file)
        s = lf__fail(LF_ERR_CONFIG, "%s: teacher (a model directory) or logits_file (from largeforge generate logits): one is required", sub.name);
    c->feature_weight = 1.0f;
    if (s == LF_OK) s = lf__cfg_f(&sub, n, "feature_weight", 0, 1e6, false, &c->feature_weight);
    const lf_node *fl = lf_node_get(n, "feature_layers");
    if (s == LF_OK && fl && fl->type != LF_NODE_NULL && (fl->type != LF_NODE_ARRAY || fl->n > 16))
        s = lf__fail(LF_ERR_CONFIG, "%s: feature_layers: a list of at most 16 [student layer, teacher layer] pairs", sub.name);
    for (int i = 0; s == LF_OK && fl && fl->type == LF_NODE_ARRAY && i < fl->n; i++) {
        const lf_node *e = &fl->kids[i];
        bool ok = e->type == LF_NODE_ARRAY && e->n == 2;
        for (int j = 0; ok && j < 2; j++) {
            double v = e->kids[j].num;
            ok = e->kids[j].type == LF_NODE_NUMBER && v >= 0 && v < 4096 && v == floor(v);
            if (ok) c->feature_layers[i][j] = (int)v;
        }
        for (int j = 0; ok && j < i; j++) ok = c->feature_layers[j][1] != c->feature_layers[i][1];
        if (!ok) s = lf__fail(LF_ERR_CONFIG, "%s: feature_layers[%d]: a pair [student layer, teacher layer] of layer numbers, the teacher's not used twice", sub.name, i);
        c->n_features = i + 1;
    }
    if (s == LF_OK && c->n_features && c->logits_file)
        s = lf__fail(LF_ERR_CONFIG, "%s: feature_layers need the teacher loaded: logits_file holds no hidden states", sub.name);
    c->teacher_quant_bits = q == 1 ? 4 : q == 2 ? 8 : 0;
    return s;
}

// == 10. data (impl) =============================================================================

#ifndef LF_MAX_DATA_RECORD_BYTES
#define LF_MAX_DATA_RECORD_BYTES ((size_t)64 << 20)  // longest JSONL line / array record / .txt file
#endif
#define LF__DR_CHUNK ((size_t)1 << 16)               // file read size

// -- 10.1 formats

static const char *const lf__data_format_names[] = {"auto", "alpaca", "sharegpt", "messages", "prompt_completion",
                                                    "dpo", "text"};

LF_API const char *lf_data_format_name(lf_data_format f) {
    return (unsigned)f < 7 ? lf__data_format_names[f] : "unknown";
}

LF_API lf_status lf_data_format_from_name(const char *name, lf_data_format *out) {
    for (int i = 0; name && i < 7; i++)
        if (strcmp(name, lf__data_format_names[i]) == 0) return *out = (lf_data_format)i, LF_OK;
    return lf__fail(LF_ERR_ARG, "unknown dataset format '%s' (expected auto, alpaca, sharegpt, messages, prompt_completion, "
                    "dpo or text)", name ? name : "(null)");
}

// The format a record's keys say (LF_DATA_AUTO: none); the order settles records with several.
static lf_data_format lf__data_detect(const lf_node *o) {
    if (lf_node_get(o, "conversations")) return LF_DATA_SHAREGPT;
    if (lf_node_get(o, "messages")) return LF_DATA_MESSAGES;
    if (lf_node_get(o, "chosen") && lf_node_get(o, "rejected")) return LF_DATA_DPO;
    if (lf_node_get(o, "instruction") && lf_node_get(o, "output")) return LF_DATA_ALPACA;
    if (lf_node_get(o, "prompt") && lf_node_get(o, "completion")) return LF_DATA_PROMPT_COMPLETION;
    if (lf_node_get(o, "text")) return LF_DATA_TEXT;
    return LF_DATA_AUTO;
}

static const char *lf__json_type_name(const lf_node *n) {
    static const char *const t[] = {"null", "boolean", "number", "string", "array", "object"};
    return t[n->type];
}

// -- 10.2 the reader
//
// ON THE READER: bytes come from a file through a 64 KiB buffer, or straight from memory. A
// JSON Lines record is one line; a JSON array's records are cut out by counting brackets
// outside strings, so neither form is ever held whole. Each record's text (at most
// max_record_bytes) is parsed by lf_json_parse into r->doc_, which the record's strings point
// into until the next call. Errors inside a record leave the reader at the next record.

enum { LF__DR_JSONL = 1, LF__DR_ARRAY = 2, LF__DR_TXT = 3 };
enum { LF__DR_FIRST = 0, LF__DR_MORE = 1, LF__DR_DONE = 2, LF__DR_BROKEN = 3 };

// Makes unread bytes available: 1 when there are some, 0 at the end, -1 on a read error.
static int lf__dr_fill(lf_data_reader *r) {
    if (r->src_pos_ < r->src_len_) return 1;
#ifndef LF_NO_STDIO
    if (r->file_) {
        size_t n = fread(r->buf_, 1, LF__DR_CHUNK, (FILE *)r->file_);
        if (n == 0 && ferror((FILE *)r->file_)) {
            lf__fail(LF_ERR_IO, "%s: read error near line %lld", r->name, (long long)r->line_);
            return -1;
        }
        r->src_ = r->buf_, r->src_len_ = n, r->src_pos_ = 0;
        return n > 0;
    }
#endif
    return 0;
}

// The next byte without taking it; -1 at the end, -2 on a read error.
static int lf__dr_peek(lf_data_reader *r) {
    int f = lf__dr_fill(r);
    return f > 0 ? r->src_[r->src_pos_] : f == 0 ? -1 : -2;
}

static int lf__dr_get(lf_data_reader *r) {
    int c = lf__dr_peek(r);
    if (c >= 0) {
        r->src_pos_++;
        if (c == '\n') r->line_++;
    }
    return c;
}

static bool lf__dr_space(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Skips whitespace; returns the next byte (not taken), -1 at the end, -2 on a read error.
static int lf__dr_skip_space(lf_data_reader *r) {
    int c;
    while ((c = lf__dr_peek(r)) >= 0 && lf__dr_space(c)) lf__dr_get(r);
    return c;
}

// Appends to the record text; false (message set) when out of memory.
static bool lf__dr_put(lf_data_reader *r, const void *p, size_t n) {
    if (!lf__grow((void **)&r->text_, &r->text_cap_, r->text_len_ + n + 1, 1, "dataset record")) return false;
    memcpy(r->text_ + r->text_len_, p, n);
    r->text_len_ += n;
    r->text_[r->text_len_] = 0;
    return true;
}

static void lf__dr_char(char *out, size_t n, int c) {
    if (c > 0x20 && c < 0x7F) snprintf(out, n, "'%c'", c);
    else snprintf(out, n, "byte 0x%02X", (unsigned)c);
}

static lf_status lf__dr_start(lf_data_reader *r, const char *name, lf_data_format format, size_t max_bytes) {
    snprintf(r->name, sizeof r->name, "%s", name ? name : "<data>");
    r->max_bytes_ = max_bytes ? max_bytes : LF_MAX_DATA_RECORD_BYTES;
    r->line_ = 1;
    if ((unsigned)format > LF_DATA_TEXT) return lf__fail(LF_ERR_ARG, "%s: unknown dataset format %d", r->name, (int)format);
    r->format = format;
    size_t nl = strlen(r->name);
    if (nl >= 4 && strcmp(r->name + nl - 4, ".txt") == 0) {
        if (format != LF_DATA_AUTO && format != LF_DATA_TEXT)
            return lf__fail(LF_ERR_ARG, "%s: a .txt file is one text document; format '%s' needs .jsonl or .json", r->name,
                            lf_data_format_name(format));
        r->kind_ = LF__DR_TXT;
        int f;
        while ((f = lf__dr_fill(r)) > 0) {
            size_t n = r->src_len_ - r->src_pos_;
            if (r->text_len_ + n > r->max_bytes_)
                return lf__fail(LF_ERR_FORMAT, "%s: larger than the limit of %zu bytes for one document (max_record_bytes); "
                                "split it, or use JSON Lines with a \"text\" field", r->name, r->max_bytes_);
            if (!lf__dr_put(r, r->src_ + r->src_pos_, n)) return LF_ERR_NOMEM;
            r->src_pos_ = r->src_len_;
        }
        if (f < 0) return LF_ERR_IO;
        if (r->text_len_ == 0) return lf__fail(LF_ERR_FORMAT, "%s: empty file (no records)", r->name);
        size_t bad = lf__utf8_check((const unsigned char *)r->text_, r->text_len_);
        if (bad != r->text_len_) {
            int line, col;
            lf__line_col(r->text_, bad, &line, &col);
            return lf__fail(LF_ERR_FORMAT, "%s:%d: invalid UTF-8 at column %d (byte %zu)", r->name, line, col, bad);
        }
        return LF_OK;
    }
    if (lf__dr_fill(r) < 0) return LF_ERR_IO;
    if (r->src_len_ - r->src_pos_ >= 3 && memcmp(r->src_ + r->src_pos_, "\xEF\xBB\xBF", 3) == 0) r->src_pos_ += 3;
    int c = lf__dr_skip_space(r);
    if (c == -2) return LF_ERR_IO;
    if (c == -1) return lf__fail(LF_ERR_FORMAT, "%s: empty file (no records)", r->name);
    if (c == '{') r->kind_ = LF__DR_JSONL;
    else if (c == '[') r->kind_ = LF__DR_ARRAY, lf__dr_get(r);
    else {
        char ch[16];
        lf__dr_char(ch, sizeof ch, c);
        return lf__fail(LF_ERR_FORMAT, "%s:%lld: expected JSON Lines (one object per line) or a JSON array of objects, "
                        "found %s", r->name, (long long)r->line_, ch);
    }
    return LF_OK;
}

#ifndef LF_NO_STDIO
LF_API lf_status lf_data_open(lf_data_reader *r, const char *path, lf_data_format format, size_t max_record_bytes) {
    memset(r, 0, sizeof *r);
    if (!path) return lf__fail(LF_ERR_ARG, "lf_data_open: path is NULL");
    FILE *f = fopen(path, "rb");
    if (!f) return lf__fail(LF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    r->file_ = f;
    r->buf_ = (unsigned char *)lf__alloc(LF__DR_CHUNK, "dataset read buffer");
    lf_status s = r->buf_ ? lf__dr_start(r, path, format, max_record_bytes) : LF_ERR_NOMEM;
    if (s != LF_OK) lf_data_close(r);
    return s;
}
#endif

LF_API lf_status lf_data_open_memory(lf_data_reader *r, const void *data, size_t len, const char *name,
                                     lf_data_format format, size_t max_record_bytes) {
    memset(r, 0, sizeof *r);
    if (!data && len) return lf__fail(LF_ERR_ARG, "lf_data_open_memory: data is NULL");
    r->src_ = (const unsigned char *)data, r->src_len_ = len;
    lf_status s = lf__dr_start(r, name, format, max_record_bytes);
    if (s != LF_OK) lf_data_close(r);
    return s;
}

LF_API void lf_data_close(lf_data_reader *r) {
#ifndef LF_NO_STDIO
    if (r->file_) fclose((FILE *)r->file_);
#endif
    LF_FREE(r->buf_);
    LF_FREE(r->text_);
    LF_FREE(r->joined_);
    LF_FREE(r->msgs_);
    lf_doc_deinit(&r->doc_);
    memset(r, 0, sizeof *r);
}

// Reads one line into text_ (without '\n' and a trailing '\r'); *got false at the end. A line
// over the limit is read to its end (so the next call goes on after it) and reported.
static lf_status lf__dr_line(lf_data_reader *r, bool *got) {
    bool over = false;
    int f;
    *got = false;
    r->text_len_ = 0;
    while ((f = lf__dr_fill(r)) > 0) {
        const unsigned char *p = r->src_ + r->src_pos_;
        size_t avail = r->src_len_ - r->src_pos_;
        const unsigned char *nl = (const unsigned char *)memchr(p, '\n', avail);
        size_t take = nl ? (size_t)(nl - p) : avail;
        *got = true;
        if (!over && r->text_len_ + take > r->max_bytes_) over = true;
        if (!over && !lf__dr_put(r, p, take)) return LF_ERR_NOMEM;
        r->src_pos_ += take + (nl != NULL);
        if (nl) break;
    }
    if (f < 0) return LF_ERR_IO;
    if (over) {
        r->text_len_ = 0;
        return lf__fail(LF_ERR_FORMAT, "%s:%lld: line longer than the limit of %zu bytes (max_record_bytes)", r->name,
                        (long long)r->line_++, r->max_bytes_);
    }
    if (r->text_len_ && r->text_[r->text_len_ - 1] == '\r') r->text_[--r->text_len_] = 0;
    return LF_OK;
}

// Cuts the next record out of a JSON array into text_; *line0 gets its first line, *got false
// after the closing ']'. Structural errors (no '{', no ',' or ']', an unterminated record)
// break the reader; a record over the limit is skipped to its end and reported.
static lf_status lf__dr_array_item(lf_data_reader *r, bool *got, int64_t *line0) {
    char ch[16] = "";
    *got = false;
    r->text_len_ = 0;
    if (r->state_ == LF__DR_DONE) return LF_OK;
    int c = lf__dr_skip_space(r);
    if (c >= 0) lf__dr_char(ch, sizeof ch, c);
    if (c == -2) return LF_ERR_IO;
    if (c == ']') {  // the end: only whitespace may follow
        lf__dr_get(r);
        r->state_ = LF__DR_DONE;
        if ((c = lf__dr_skip_space(r)) == -2) return LF_ERR_IO;
        if (c == -1) return LF_OK;
        lf__dr_char(ch, sizeof ch, c);
        r->state_ = LF__DR_BROKEN;
        return lf__fail(LF_ERR_FORMAT, "%s:%lld: data after the closing ']': %s", r->name, (long long)r->line_, ch);
    }
    if (r->state_ == LF__DR_MORE) {
        if (c != ',') {
            r->state_ = LF__DR_BROKEN;
            if (c == -1)
                return lf__fail(LF_ERR_FORMAT, "%s:%lld: the array is not closed with ']'", r->name, (long long)r->line_);
            return lf__fail(LF_ERR_FORMAT, "%s:%lld: expected ',' or ']' after a record, found %s", r->name,
                            (long long)r->line_, ch);
        }
        lf__dr_get(r);
        if ((c = lf__dr_skip_space(r)) == -2) return LF_ERR_IO;
        if (c >= 0) lf__dr_char(ch, sizeof ch, c);
    }
    if (c != '{') {
        r->state_ = LF__DR_BROKEN;
        if (c == -1) return lf__fail(LF_ERR_FORMAT, "%s:%lld: the array is not closed with ']'", r->name, (long long)r->line_);
        return lf__fail(LF_ERR_FORMAT, "%s:%lld: a record must be a JSON object, found %s", r->name, (long long)r->line_, ch);
    }
    *line0 = r->line_;
    int depth = 0;
    bool in_str = false, esc = false, over = false;
    for (;;) {
        c = lf__dr_get(r);
        if (c < 0) {
            r->state_ = LF__DR_BROKEN;
            if (c == -2) return LF_ERR_IO;
            return lf__fail(LF_ERR_FORMAT, "%s:%lld: the record starting here is not closed before the end of the file",
                            r->name, (long long)*line0);
        }
        char b = (char)c;
        if (!over && r->text_len_ + 1 > r->max_bytes_) over = true;
        if (!over && !lf__dr_put(r, &b, 1)) return LF_ERR_NOMEM;
        if (in_str) {
            if (esc) esc = false;
            else if (c == '\\') esc = true;
            else if (c == '"') in_str = false;
        } else if (c == '"') in_str = true;
        else if (c == '{' || c == '[') depth++;
        else if ((c == '}' || c == ']') && --depth == 0) break;
    }
    r->state_ = LF__DR_MORE;
    *got = true;
    if (over)
        return lf__fail(LF_ERR_FORMAT, "%s:%lld: record longer than the limit of %zu bytes (max_record_bytes)", r->name,
                        (long long)*line0, r->max_bytes_);
    return LF_OK;
}

// Offset of the first \u0000 escape inside a string of JSON text, or n: cJSON keeps C strings,
// so it would cut the string there without a word.
static size_t lf__json_find_nul(const char *s, size_t n) {
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        if (!in_str) {
            in_str = s[i] == '"';
            continue;
        }
        if (s[i] == '"') in_str = false;
        else if (s[i] == '\\' && i + 1 < n) {
            if (s[i + 1] == 'u' && i + 5 < n && memcmp(s + i + 2, "0000", 4) == 0) return i;
            i++;
        }
    }
    return n;
}

// Error prefix for the current record: "file:line: field 'x': ".
static LF__PRINTF(3, 4) lf_status lf__dr_fail(const lf_data_reader *r, const char *field, const char *fmt, ...) {
    char msg[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (field) return lf__fail(LF_ERR_FORMAT, "%s:%lld: field '%s': %s", r->name, (long long)r->rec.line, field, msg);
    return lf__fail(LF_ERR_FORMAT, "%s:%lld: %s", r->name, (long long)r->rec.line, msg);
}

// A missing field; says what the record looks like when that is another format.
static lf_status lf__dr_missing(const lf_data_reader *r, const char *field, const lf_node *obj) {
    lf_data_format seen = lf__data_detect(obj);
    const char *looks = seen == LF_DATA_AUTO ? "no known format" : lf_data_format_name(seen);
    if (obj != r->doc_.root || seen == r->format) return lf__dr_fail(r, field, "missing");
    if (r->format_line > 0)
        return lf__dr_fail(r, field, "missing (the file is %s, from line %lld; this record looks like %s)",
                           lf_data_format_name(r->format), (long long)r->format_line, looks);
    return lf__dr_fail(r, field, "missing (the format asked for is %s; this record looks like %s)",
                       lf_data_format_name(r->format), looks);
}

// obj[key] as a UTF-8 string; absent or null: an error when required, else *out NULL.
static lf_status lf__dr_str(const lf_data_reader *r, const lf_node *obj, const char *key, const char *field, bool required,
                            const char **out, size_t *len) {
    const lf_node *n = lf_node_get(obj, key);
    *out = NULL;
    if (!n || n->type == LF_NODE_NULL) return required ? lf__dr_missing(r, field, obj) : LF_OK;
    if (n->type != LF_NODE_STRING) return lf__dr_fail(r, field, "expected a string, got %s", lf__json_type_name(n));
    size_t bad = lf__utf8_check((const unsigned char *)n->str, n->len);
    if (bad != n->len) return lf__dr_fail(r, field, "invalid UTF-8 at byte %zu of the string", bad);
    *out = n->str;
    if (len) *len = n->len;
    return LF_OK;
}

// Appends the messages of list `key` (OpenAI {role, content} or ShareGPT {from, value}) to
// msgs_ at *used.
static lf_status lf__dr_msgs(lf_data_reader *r, const lf_node *arr, const char *key, bool sharegpt, int *used) {
    static const char *const roles[] = {"system", "user", "assistant", "tool"};
    static const char *const from[] = {"system", "human", "gpt", "user", "assistant"};
    static const int from_role[] = {0, 1, 2, 1, 2};
    if (arr->type != LF_NODE_ARRAY) return lf__dr_fail(r, key, "expected a list of messages, got %s", lf__json_type_name(arr));
    if (arr->n == 0) return lf__dr_fail(r, key, "an empty list of messages");
    if (!lf__grow((void **)&r->msgs_, &r->msgs_cap_, (size_t)*used + (size_t)arr->n, sizeof(lf_chat_msg), "dataset messages"))
        return LF_ERR_NOMEM;
    const char *rk = sharegpt ? "from" : "role", *ck = sharegpt ? "value" : "content";
    for (int i = 0; i < arr->n; i++) {
        const lf_node *m = &arr->kids[i];
        char fr[96], fc[96];
        snprintf(fr, sizeof fr, "%s[%d].%s", key, i, rk);
        snprintf(fc, sizeof fc, "%s[%d].%s", key, i, ck);
        if (m->type != LF_NODE_OBJECT) {
            snprintf(fr, sizeof fr, "%s[%d]", key, i);
            return lf__dr_fail(r, fr, "expected an object, got %s", lf__json_type_name(m));
        }
        const char *role, *content;
        lf_status s = lf__dr_str(r, m, rk, fr, true, &role, NULL);
        if (s == LF_OK) s = lf__dr_str(r, m, ck, fc, true, &content, NULL);
        if (s != LF_OK) return s;
        int k = -1;
        for (int j = 0; j < (sharegpt ? 5 : 4) && k < 0; j++)
            if (strcmp(role, sharegpt ? from[j] : roles[j]) == 0) k = sharegpt ? from_role[j] : j;
        if (k < 0)
            return lf__dr_fail(r, fr, "unknown role '%.40s' (expected %s)", role,
                               sharegpt ? "human, gpt or system" : "system, user, assistant or tool");
        lf_chat_msg *out = &r->msgs_[(*used)++];
        memset(out, 0, sizeof *out);
        out->role = roles[k], out->content = content;
    }
    return LF_OK;
}

// A string-or-messages field: the string, or its messages appended at *used (*n_msgs of them).
static lf_status lf__dr_part(lf_data_reader *r, const lf_node *obj, const char *key, bool *is_list, lf_data_field *f,
                             int *used) {
    const lf_node *n = lf_node_get(obj, key);
    memset(f, 0, sizeof *f);
    if (!n || n->type == LF_NODE_NULL) return lf__dr_missing(r, key, obj);
    if (n->type != LF_NODE_STRING && n->type != LF_NODE_ARRAY)
        return lf__dr_fail(r, key, "expected a string or a list of messages, got %s", lf__json_type_name(n));
    bool list = n->type == LF_NODE_ARRAY;
    if (*is_list != list && f != &r->rec.prompt)
        return lf__dr_fail(r, key, "is %s but 'prompt' is %s: a record's fields must all be strings or all be lists",
                           list ? "a list" : "a string", list ? "a string" : "a list");
    *is_list = list;
    if (!list) return lf__dr_str(r, obj, key, key, true, &f->text, NULL);
    int before = *used;
    lf_status s = lf__dr_msgs(r, n, key, false, used);
    f->n_msgs = *used - before;
    return s;
}

// Parses text_ (the record at rec.line) into rec.
static lf_status lf__dr_record(lf_data_reader *r) {
    lf_data_record *rec = &r->rec;
    size_t nul = lf__json_find_nul(r->text_, r->text_len_);
    if (nul < r->text_len_) {
        int line, col;
        lf__line_col(r->text_, nul, &line, &col);
        return lf__fail(LF_ERR_FORMAT, "%s:%lld: \\u0000 in a string is not supported (column %d)", r->name,
                        (long long)rec->line + line - 1, col);
    }
    lf_status s = lf_json_parse(&r->doc_, r->text_, r->text_len_, r->name);
    if (s != LF_OK) {
        const char *at = strstr(lf__err, " at line ");
        int line, col;
        if (s != LF_ERR_FORMAT || !at || sscanf(at, " at line %d, column %d", &line, &col) != 2)
            return lf__wrap(s, "%s:%lld", r->name, (long long)rec->line);
        bool trailing = strstr(lf__err, "trailing data") != NULL;
        if (r->kind_ == LF__DR_ARRAY && line > 1)
            return lf__fail(LF_ERR_FORMAT, "%s:%lld: invalid JSON at column %d (in the record starting at line %lld)",
                            r->name, (long long)rec->line + line - 1, col, (long long)rec->line);
        return lf__fail(LF_ERR_FORMAT, "%s:%lld: %s at column %d%s", r->name, (long long)rec->line + line - 1,
                        trailing ? "more after the record's object" : "invalid JSON", col,
                        r->kind_ == LF__DR_JSONL && rec->index == 0
                            ? " (JSON Lines hold one record per line; a file may instead be one JSON array of records)" : "");
    }
    const lf_node *o = r->doc_.root;
    if (o->type != LF_NODE_OBJECT) return lf__dr_fail(r, NULL, "a record must be a JSON object, got %s", lf__json_type_name(o));
    if (r->format == LF_DATA_AUTO) {
        r->format = lf__data_detect(o);
        if (r->format == LF_DATA_AUTO) {
            char keys[256] = "";
            size_t k = 0;
            for (int i = 0; i < o->n && k + 4 < sizeof keys; i++)
                k += (size_t)snprintf(keys + k, sizeof keys - k, "%s'%.40s'", i ? ", " : "", o->kids[i].key);
            if (k >= sizeof keys) k = sizeof keys - 1;
            return lf__dr_fail(r, NULL, "cannot tell the dataset format from the keys %s: expected instruction+output "
                               "(alpaca), conversations (sharegpt), messages, prompt+completion, prompt+chosen+rejected "
                               "(dpo) or text", o->n ? keys : "(none)");
        }
        r->format_line = rec->line;
    }
    rec->format = r->format;
    int used = 0;
    bool list = false;
    switch (r->format) {
    case LF_DATA_ALPACA: {
        const char *ins, *input, *output;
        size_t li = 0, ln = 0;
        s = lf__dr_str(r, o, "instruction", "instruction", true, &ins, &li);
        if (s == LF_OK) s = lf__dr_str(r, o, "input", "input", false, &input, &ln);
        if (s == LF_OK) s = lf__dr_str(r, o, "output", "output", true, &output, NULL);
        if (s != LF_OK) return s;
        const char *user = ins;
        if (input && ln) {  // Stanford Alpaca's join
            if (!lf__grow((void **)&r->joined_, &r->joined_cap_, li + ln + 3, 1, "dataset record")) return LF_ERR_NOMEM;
            memcpy(r->joined_, ins, li);
            memcpy(r->joined_ + li, "\n\n", 2);
            memcpy(r->joined_ + li + 2, input, ln + 1);
            user = r->joined_;
        }
        if (!lf__grow((void **)&r->msgs_, &r->msgs_cap_, 2, sizeof(lf_chat_msg), "dataset messages")) return LF_ERR_NOMEM;
        memset(r->msgs_, 0, 2 * sizeof(lf_chat_msg));
        r->msgs_[0].role = "user", r->msgs_[0].content = user;
        r->msgs_[1].role = "assistant", r->msgs_[1].content = output;
        used = 2;
        break;
    }
    case LF_DATA_SHAREGPT:
    case LF_DATA_MESSAGES: {
        const char *key = r->format == LF_DATA_SHAREGPT ? "conversations" : "messages";
        const lf_node *arr = lf_node_get(o, key);
        if (!arr || arr->type == LF_NODE_NULL) return lf__dr_missing(r, key, o);
        s = lf__dr_msgs(r, arr, key, r->format == LF_DATA_SHAREGPT, &used);
        if (s != LF_OK) return s;
        break;
    }
    case LF_DATA_PROMPT_COMPLETION:
        s = lf__dr_part(r, o, "prompt", &list, &rec->prompt, &used);
        if (s == LF_OK) s = lf__dr_part(r, o, "completion", &list, &rec->completion, &used);
        if (s != LF_OK) return s;
        break;
    case LF_DATA_DPO:
        s = lf__dr_part(r, o, "prompt", &list, &rec->prompt, &used);
        if (s == LF_OK) s = lf__dr_part(r, o, "chosen", &list, &rec->chosen, &used);
        if (s == LF_OK) s = lf__dr_part(r, o, "rejected", &list, &rec->rejected, &used);
        if (s != LF_OK) return s;
        break;
    case LF_DATA_TEXT:
        s = lf__dr_str(r, o, "text", "text", true, &rec->text, &rec->text_len);
        if (s != LF_OK) return s;
        break;
    default: return lf__fail(LF_ERR_ARG, "%s: unknown dataset format %d", r->name, (int)r->format);
    }
    if (r->format == LF_DATA_DPO) {  // msgs_ holds prompt, chosen, rejected in turn
        rec->prompt.msgs = rec->prompt.n_msgs ? r->msgs_ : NULL;
        rec->chosen.msgs = rec->chosen.n_msgs ? r->msgs_ + rec->prompt.n_msgs : NULL;
        rec->rejected.msgs = rec->rejected.n_msgs ? r->msgs_ + rec->prompt.n_msgs + rec->chosen.n_msgs : NULL;
    } else if (used) {
        rec->msgs = r->msgs_, rec->n_msgs = used;
        if (rec->prompt.n_msgs) rec->prompt.msgs = r->msgs_, rec->completion.msgs = r->msgs_ + rec->prompt.n_msgs;
    }
    return LF_OK;
}

LF_API lf_status lf_data_next(lf_data_reader *r, const lf_data_record **rec) {
    *rec = NULL;
    if (!r->kind_) return lf__fail(LF_ERR_ARG, "lf_data_next: the reader is not open");
    if (r->state_ == LF__DR_BROKEN) return lf__fail(LF_ERR_FORMAT, "%s: reading stopped after an error", r->name);
    lf_doc_deinit(&r->doc_);
    memset(&r->rec, 0, sizeof r->rec);
    r->rec.file = r->name;
    lf_status s = LF_OK;
    bool got = false;
    if (r->kind_ == LF__DR_TXT) {
        if (r->state_ == LF__DR_DONE) return LF_OK;
        r->state_ = LF__DR_DONE;
        r->format = LF_DATA_TEXT, r->format_line = 1;
        r->rec.format = LF_DATA_TEXT, r->rec.line = 1, r->rec.index = r->index_++;
        r->rec.text = r->text_, r->rec.text_len = r->text_len_;
        *rec = &r->rec;
        return LF_OK;
    }
    if (r->kind_ == LF__DR_JSONL) {
        for (;;) {
            r->rec.line = r->line_;
            s = lf__dr_line(r, &got);
            if (s == LF_ERR_FORMAT) r->index_++;
            if (s != LF_OK || !got) break;
            r->line_++;
            size_t i = 0;
            while (i < r->text_len_ && lf__dr_space(r->text_[i])) i++;
            if (i < r->text_len_) break;
        }
    } else {
        s = lf__dr_array_item(r, &got, &r->rec.line);
        if (s == LF_ERR_FORMAT && got) r->index_++;
    }
    if (s != LF_OK) return s;
    if (!got) {
        if (r->index_ == 0) return lf__fail(LF_ERR_FORMAT, "%s: no records", r->name);
        return LF_OK;
    }
    r->rec.index = r->index_++;
    s = lf__dr_record(r);
    if (s != LF_OK) {
        lf_doc_deinit(&r->doc_);
        memset(&r->rec, 0, sizeof r->rec);
        return s;
    }
    *rec = &r->rec;
    return LF_OK;
}

// -- 10.3 split and encoding

LF_API bool lf_data_is_validation(uint64_t seed, int64_t index, double ratio) {
    if (!(ratio > 0)) return false;
    uint64_t h = lf__hash_u64(lf__hash_u64(seed ^ 0x6C6664617461ull) ^ (uint64_t)index);  // "lfdata"
    return (double)(h >> 11) * (1.0 / 9007199254740992.0) < ratio;
}

LF_API lf_status lf_data_encode(const lf_sft_desc *d, const lf_data_record *rec, lf_sft_sample *out) {
    lf_status s;
    memset(out, 0, sizeof *out);
    switch (rec->format) {
    case LF_DATA_ALPACA:
    case LF_DATA_SHAREGPT:
    case LF_DATA_MESSAGES: s = lf_sft_encode_chat(d, rec->msgs, rec->n_msgs, 0, out); break;
    case LF_DATA_PROMPT_COMPLETION:
        s = rec->prompt.text ? lf_sft_encode_text(d, rec->prompt.text, rec->completion.text, out)
                             : lf_sft_encode_chat(d, rec->msgs, rec->n_msgs, rec->prompt.n_msgs, out);
        break;
    case LF_DATA_TEXT: s = lf_sft_encode_text(d, NULL, rec->text, out); break;
    case LF_DATA_DPO:
        return lf__fail(LF_ERR_UNSUPPORTED, "%s:%lld: dpo records are for the preference objectives, not SFT",
                        rec->file ? rec->file : "<data>", (long long)rec->line);
    default: return lf__fail(LF_ERR_ARG, "lf_data_encode: unknown format %d", (int)rec->format);
    }
    if (s != LF_OK) lf__wrap(s, "%s:%lld", rec->file ? rec->file : "<data>", (long long)rec->line);
    return s;
}

// One completion of a DPO record after its prompt.
static lf_status lf__dpo_encode_one(const lf_sft_desc *d, const lf_data_field *prompt, const lf_data_field *c, lf_sft_sample *out) {
    if (prompt->text && c->text) return lf_sft_encode_text(d, prompt->text, c->text, out);
    if (!prompt->msgs || !c->msgs) return lf__fail(LF_ERR_FORMAT, "prompt and completions must be all strings or all message lists");
    lf_chat_msg *msgs = (lf_chat_msg *)lf__alloc((size_t)(prompt->n_msgs + c->n_msgs) * sizeof *msgs, "preference messages");
    if (!msgs) return LF_ERR_NOMEM;
    memcpy(msgs, prompt->msgs, (size_t)prompt->n_msgs * sizeof *msgs);
    memcpy(msgs + prompt->n_msgs, c->msgs, (size_t)c->n_msgs * sizeof *msgs);
    lf_status s = lf_sft_encode_chat(d, msgs, prompt->n_msgs + c->n_msgs, prompt->n_msgs, out);
    LF_FREE(msgs);
    return s;
}

// Drops a sample's first `cut` tokens (the start of its prompt), then cuts it at max_length.
static void lf__pair_truncate(const lf_sft_desc *d, lf_sft_sample *x, int cut) {
    if (cut > 0) {
        memmove(x->tokens, x->tokens + cut, (size_t)(x->n - cut) * sizeof(int32_t));
        memmove(x->labels, x->labels + cut, (size_t)(x->n - cut) * sizeof(int32_t));
        x->n -= cut, x->truncated = true;
    }
    lf__sft_finish(d, x);
}

LF_API lf_status lf_data_encode_pair(const lf_sft_desc *d, const lf_data_record *rec, lf_sft_sample *chosen,
                                     lf_sft_sample *rejected) {
    memset(chosen, 0, sizeof *chosen), memset(rejected, 0, sizeof *rejected);
    if (rec->format != LF_DATA_DPO)
        return lf__fail(LF_ERR_ARG, "%s:%lld: not a preference pair (the format is %s)", rec->file ? rec->file : "<data>",
                        (long long)rec->line, lf_data_format_name(rec->format));
    if (d->max_prompt_length < 0)
        return lf__fail(LF_ERR_ARG, "lf_sft_desc: max_prompt_length must be >= 0, got %d", d->max_prompt_length);
    lf_sft_desc whole = *d;  // truncated below, the pair together
    whole.max_length = 0;
    lf_status s = lf__dpo_encode_one(&whole, &rec->prompt, &rec->chosen, chosen);
    if (s == LF_OK) s = lf__dpo_encode_one(&whole, &rec->prompt, &rec->rejected, rejected);
    if (s == LF_OK) {  // the prompt: the tokens before the first trained one, shared by both
        int pc = 0, pr = 0;
        while (pc < chosen->n && chosen->labels[pc] == LF_IGNORE_INDEX) pc++;
        while (pr < rejected->n && rejected->labels[pr] == LF_IGNORE_INDEX) pr++;
        int p = LF__MIN(pc, pr), cut = d->max_prompt_length > 0 ? LF__MAX(0, p - d->max_prompt_length) : 0;
        lf__pair_truncate(d, chosen, cut), lf__pair_truncate(d, rejected, cut);
    }
    if (s != LF_OK) {
        lf_sft_sample_deinit(chosen), lf_sft_sample_deinit(rejected);
        lf__wrap(s, "%s:%lld", rec->file ? rec->file : "<data>", (long long)rec->line);
    }
    return s;
}

// -- 10.4 datasets and their cache

#ifndef LF_NO_STDIO

#define LF__DS_MAGIC "LFDS"
#define LF__DS_VERSION 1u          // the file layout
#define LF__DS_ENCODING 1u         // what lf_data_encode makes of a record: bump when it changes
#define LF__DS_HEADER 256

// Header fields at these byte offsets: integers are 8-byte little-endian, key and checksum
// SHA-256 hex; the stats are 8 integers from LF__DSH_STATS; the rest is zero.
enum { LF__DSH_VERSION = 8, LF__DSH_N = 16, LF__DSH_TOKENS = 24, LF__DSH_FORMAT = 32, LF__DSH_STATS = 40,
       LF__DSH_KEY = 104, LF__DSH_SUM = 168 };

static void lf__put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint64_t lf__get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static void lf__ds_stats_io(lf_data_stats *st, unsigned char *put, const unsigned char *get) {
    int64_t *f[] = {&st->records, &st->samples, &st->tokens, &st->trained_tokens, &st->truncated, &st->dropped,
                    &st->prefix_mismatch, &st->realigned};
    for (int i = 0; i < 8; i++) {
        if (put) lf__put_u64(put + LF__DSH_STATS + 8 * i, (uint64_t)*f[i]);
        else *f[i] = (int64_t)lf__get_u64(get + LF__DSH_STATS + 8 * i);
    }
}

// SHA-256 of an image but for its checksum field.
static void lf__ds_checksum(const unsigned char *img, size_t len, char hex[65]) {
    lf_sha256 c;
    lf_sha256_init(&c);
    lf_sha256_update(&c, img, LF__DSH_SUM);
    lf_sha256_update(&c, img + LF__DSH_SUM + 64, len - LF__DSH_SUM - 64);
    lf_sha256_final(&c, hex);
}

// Checks a whole cache file: header, sizes, checksum, offsets, record indices, ids and labels.
static lf_status lf__ds_check(const char *what, const unsigned char *img, size_t len, const char *key, int32_t n_vocab) {
    if (len < LF__DS_HEADER || memcmp(img, LF__DS_MAGIC, 4) != 0)
        return lf__fail(LF_ERR_FORMAT, "%s: not a LargeForge dataset cache (bad magic or size)", what);
    uint64_t version = lf__get_u64(img + LF__DSH_VERSION);
    if (version != LF__DS_VERSION)
        return lf__fail(LF_ERR_FORMAT, "%s: cache version %llu, expected %u", what, (unsigned long long)version,
                        LF__DS_VERSION);
    if (memcmp(img + LF__DSH_KEY, key, 64) != 0) return lf__fail(LF_ERR_FORMAT, "%s: the key inside is not its name", what);
    uint64_t n = lf__get_u64(img + LF__DSH_N), nt = lf__get_u64(img + LF__DSH_TOKENS);
    uint64_t fmt = lf__get_u64(img + LF__DSH_FORMAT), records = lf__get_u64(img + LF__DSH_STATS);
    size_t data, idx, want;
    if (n > ((uint64_t)1 << 40) || nt > ((uint64_t)1 << 50) || !lf__mul_ok((size_t)nt, 8, &data) ||
        !lf__mul_ok((size_t)n, 16, &idx) || !lf__add_ok(data, idx, &want) || !lf__add_ok(want, LF__DS_HEADER + 8, &want) ||
        want != len || fmt < 1 || fmt > LF_DATA_TEXT || (fmt == LF_DATA_DPO && n % 2))
        return lf__fail(LF_ERR_FORMAT, "%s: the counts in the header (%llu samples, %llu tokens) do not match the file size "
                        "%zu", what, (unsigned long long)n, (unsigned long long)nt, len);
    char sum[65];
    lf__ds_checksum(img, len, sum);
    if (memcmp(sum, img + LF__DSH_SUM, 64) != 0)
        return lf__fail(LF_ERR_FORMAT, "%s: checksum mismatch: the file is damaged", what);
    const int32_t *d32 = (const int32_t *)(const void *)(img + LF__DS_HEADER);
    const int64_t *off = (const int64_t *)(const void *)(img + LF__DS_HEADER + data), *rec = off + n + 1;
    if (off[0] != 0 || off[n] != (int64_t)nt) return lf__fail(LF_ERR_FORMAT, "%s: bad sample offsets", what);
    for (uint64_t i = 0; i < n; i++) {
        bool paired = fmt == LF_DATA_DPO && i % 2 == 1;  // the rejected sample of a pair: the chosen one's record
        if (off[i + 1] <= off[i] || rec[i] < 0 || (uint64_t)rec[i] >= records ||
            (i > 0 && (paired ? rec[i] != rec[i - 1] : rec[i] <= rec[i - 1])))
            return lf__fail(LF_ERR_FORMAT, "%s: sample %llu: bad offsets or record index", what, (unsigned long long)i);
        int64_t m = off[i + 1] - off[i];
        const int32_t *t = d32 + 2 * off[i], *l = t + m;
        for (int64_t j = 0; j < m; j++)
            if (t[j] < 0 || t[j] >= n_vocab || (l[j] != LF_IGNORE_INDEX && l[j] != t[j]))
                return lf__fail(LF_ERR_FORMAT, "%s: sample %llu, token %lld: id %d or label %d out of place", what,
                                (unsigned long long)i, (long long)j, t[j], l[j]);
    }
    return LF_OK;
}

// Points ds's arrays into an image laid out as a cache file.
static void lf__ds_attach(lf_dataset *ds, const unsigned char *img) {
    int64_t n = (int64_t)lf__get_u64(img + LF__DSH_N), nt = (int64_t)lf__get_u64(img + LF__DSH_TOKENS);
    ds->format = (lf_data_format)lf__get_u64(img + LF__DSH_FORMAT);
    ds->n = n;
    ds->data_ = (const int32_t *)(const void *)(img + LF__DS_HEADER);
    ds->offsets = (const int64_t *)(const void *)(img + LF__DS_HEADER + 8 * (size_t)nt);
    ds->record = ds->offsets + n + 1;
    lf__ds_stats_io(&ds->stats, NULL, img);
}

// The cache key of a desc (see ON THE CACHE), as 64 hex digits: SHA-256 over the settings and
// the SHA-256 of each file (lf__sha256_file, section 8).
static lf_status lf__ds_key(const lf_dataset_desc *d, char key[65]) {
    lf_sha256 c;
    lf_sha256_init(&c);
    lf_sha256_update(&c, "largeforge dataset " LF_VERSION_STRING, strlen("largeforge dataset " LF_VERSION_STRING));
    uint64_t fields[] = {LF__DS_ENCODING, (uint64_t)d->format, (uint64_t)d->chat, (uint64_t)d->tok->chat, d->chat_flags,
                         (uint64_t)d->max_length, (uint64_t)d->max_prompt_length};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        unsigned char b[8];
        lf__put_u64(b, fields[i]);
        lf_sha256_update(&c, b, 8);
    }
    bool dir = lf_path_is_dir(d->tokenizer_path);
    char *files[3] = {NULL, dir ? lf_path_join(d->tokenizer_path, "tokenizer.json") : NULL,
                      dir ? lf_path_join(d->tokenizer_path, "tokenizer_config.json") : NULL};
    lf_status s = dir && (!files[1] || !files[2]) ? LF_ERR_NOMEM : LF_OK;
    for (int i = 0; i < 3 && s == LF_OK; i++) {
        const char *path = i == 0 ? d->path : i == 1 && !dir ? d->tokenizer_path : files[i];
        char hex[65] = "none";  // no tokenizer_config.json (a tokenizer.json path, or none beside it)
        if (path && (i < 2 || lf_path_exists(path))) s = lf__sha256_file(path, hex);
        lf_sha256_update(&c, hex, sizeof hex);
    }
    LF_FREE(files[1]), LF_FREE(files[2]);
    if (s == LF_OK) lf_sha256_final(&c, key);
    return s;
}

static lf_status lf__ds_load_cache(lf_dataset *ds, const char *key, int32_t n_vocab) {
    lf_status s = lf_mmap_open(&ds->map_, ds->cache_path);
    if (s == LF_OK) s = lf__ds_check(ds->cache_path, ds->map_.data, ds->map_.size, key, n_vocab);
    if (s == LF_OK) lf__ds_attach(ds, ds->map_.data);
    else lf_mmap_close(&ds->map_);
    return s;
}

// Where lf__ds_build puts the image: memory, or (with a cache) a file, so that a dataset larger
// than memory streams from the reader to the disk and is then mapped.
typedef struct lf__ds_sink {
    lf__buf *mem;
    FILE *f;
    const char *path;
    size_t len;
} lf__ds_sink;

static lf_status lf__ds_put(lf__ds_sink *k, const void *p, size_t n) {
    k->len += n;
    if (k->mem) return lf__buf_put(k->mem, p, n), k->mem->failed ? LF_ERR_NOMEM : LF_OK;
    return fwrite(p, 1, n, k->f) == n ? LF_OK : lf__fail(LF_ERR_IO, "%s: write error: %s", k->path, strerror(errno));
}

// A file image's checksum, read back in pieces (the header is written last).
static lf_status lf__ds_file_checksum(lf__ds_sink *k, const unsigned char *header, char hex[65]) {
    lf_sha256 c;
    lf_sha256_init(&c);
    lf_sha256_update(&c, header, LF__DSH_SUM);
    lf_sha256_update(&c, header + LF__DSH_SUM + 64, LF__DS_HEADER - LF__DSH_SUM - 64);
    if (fflush(k->f) != 0 || fseek(k->f, LF__DS_HEADER, SEEK_SET) != 0) return lf__fail(LF_ERR_IO, "%s: %s", k->path, strerror(errno));
    unsigned char buf[1 << 16];
    for (size_t n; (n = fread(buf, 1, sizeof buf, k->f)) > 0;) lf_sha256_update(&c, buf, n);
    if (ferror(k->f)) return lf__fail(LF_ERR_IO, "%s: read error", k->path);
    lf_sha256_final(&c, hex);
    return LF_OK;
}

// Reads and encodes every record into one image laid out as the cache file, in k.
static lf_status lf__ds_build(const lf_dataset_desc *d, const char *key, lf__ds_sink *k) {
    lf_data_reader r;
    lf_sft_desc sd;
    memset(&r, 0, sizeof r);
    memset(&sd, 0, sizeof sd);
    sd.tok = d->tok, sd.chat = d->chat, sd.chat_flags = d->chat_flags, sd.max_length = d->max_length;
    sd.max_prompt_length = d->max_prompt_length;
    int64_t *off = NULL, *rec_idx = NULL;
    size_t cap_off = 0, cap_rec = 0;
    lf_data_stats st;
    memset(&st, 0, sizeof st);
    unsigned char h[LF__DS_HEADER];
    memset(h, 0, sizeof h);
    lf_status s = lf__ds_put(k, h, sizeof h);
    if (s == LF_OK) s = lf_data_open(&r, d->path, d->format, d->max_record_bytes);
    if (s == LF_OK && lf__grow((void **)&off, &cap_off, 1, sizeof *off, "dataset offsets")) off[0] = 0;
    else if (s == LF_OK) s = LF_ERR_NOMEM;
    // a bad record does not stop the reading: the first one's message and the lines of the
    // next ones are reported together at the end
    char first_err[1100] = "";
    int64_t bad = 0, bad_lines[8];
    while (s == LF_OK) {
        const lf_data_record *rec;
        lf_sft_sample smp[2];  // a DPO record's pair; one sample otherwise
        int n_smp = 1;
        s = lf_data_next(&r, &rec);
        if (s == LF_OK && !rec) break;
        if (s == LF_OK && rec->format == LF_DATA_DPO) st.records++, n_smp = 2, s = lf_data_encode_pair(&sd, rec, &smp[0], &smp[1]);
        else if (s == LF_OK) st.records++, s = lf_data_encode(&sd, rec, &smp[0]);
        if (s == LF_ERR_FORMAT || s == LF_ERR_ARG) {
            if (r.state_ == LF__DR_BROKEN) break;  // the file cannot be read on
            size_t nl = strlen(r.name);
            if (!bad++) snprintf(first_err, sizeof first_err, "%.1024s", lf__err);  // "file:line: ..."
            else if (bad <= 9) bad_lines[bad - 2] = strncmp(lf__err, r.name, nl) == 0 && lf__err[nl] == ':' ? strtoll(lf__err + nl + 1, NULL, 10) : 0;
            s = LF_OK;
            continue;
        }
        if (s != LF_OK) break;
        bool keep = true;
        for (int j = 0; j < n_smp; j++) {
            st.truncated += smp[j].truncated, st.prefix_mismatch += smp[j].prefix_mismatch, st.realigned += smp[j].realigned;
            keep = keep && smp[j].n_trained > 0;
        }
        st.dropped += !keep;
        for (int j = 0; j < n_smp && keep && s == LF_OK; j++) {
            s = lf__ds_put(k, smp[j].tokens, (size_t)smp[j].n * sizeof(int32_t));
            if (s == LF_OK) s = lf__ds_put(k, smp[j].labels, (size_t)smp[j].n * sizeof(int32_t));
            size_t i = (size_t)st.samples;
            if (s == LF_OK && (!lf__grow((void **)&off, &cap_off, i + 2, sizeof *off, "dataset offsets") ||
                               !lf__grow((void **)&rec_idx, &cap_rec, i + 1, sizeof *rec_idx, "dataset offsets")))
                s = LF_ERR_NOMEM;
            if (s == LF_OK) {
                off[i + 1] = off[i] + smp[j].n, rec_idx[i] = rec->index;
                st.samples++, st.tokens += smp[j].n, st.trained_tokens += smp[j].n_trained;
            }
        }
        for (int j = 0; j < n_smp; j++) lf_sft_sample_deinit(&smp[j]);
    }
    lf_data_format fmt = r.format;
    lf_data_close(&r);
    if (s == LF_OK && bad) {
        lf__buf m = LF__ZERO;
        lf__buf_puts(&m, first_err);
        if (bad > 1) lf__buf_printf(&m, " (and %lld more bad records, at lines", (long long)(bad - 1));
        for (int64_t i = 0; i < LF__MIN(bad - 1, 8); i++) lf__buf_printf(&m, "%s %lld", i ? "," : "", (long long)bad_lines[i]);
        if (bad > 1) lf__buf_puts(&m, bad > 9 ? ", ...)" : ")");
        s = lf__fail(LF_ERR_FORMAT, "%s", m.data ? m.data : first_err);
        LF_FREE(m.data);
    }
    if (s == LF_OK && st.samples == 0)
        s = lf__fail(LF_ERR_FORMAT, "%s: none of its %lld records has a token to train on (no assistant turn, or all cut "
                     "at max_length %d)", d->path, (long long)st.records, d->max_length);
    if (s == LF_OK) s = lf__ds_put(k, off, (size_t)(st.samples + 1) * sizeof *off);
    if (s == LF_OK) s = lf__ds_put(k, rec_idx, (size_t)st.samples * sizeof *rec_idx);
    LF_FREE(off), LF_FREE(rec_idx);
    if (s != LF_OK) return s;
    memcpy(h, LF__DS_MAGIC, 4);
    lf__put_u64(h + LF__DSH_VERSION, LF__DS_VERSION);
    lf__put_u64(h + LF__DSH_N, (uint64_t)st.samples);
    lf__put_u64(h + LF__DSH_TOKENS, (uint64_t)st.tokens);
    lf__put_u64(h + LF__DSH_FORMAT, (uint64_t)fmt);
    lf__ds_stats_io(&st, h, NULL);
    if (key) memcpy(h + LF__DSH_KEY, key, 64);
    if (k->mem) {
        memcpy(k->mem->data, h, sizeof h);
        return LF_OK;
    }
    char sum[65];  // a file: its checksum, then the header in place
    if ((s = lf__ds_file_checksum(k, h, sum)) != LF_OK) return s;
    memcpy(h + LF__DSH_SUM, sum, 64);
    if (fseek(k->f, 0, SEEK_SET) != 0 || fwrite(h, 1, sizeof h, k->f) != sizeof h || fflush(k->f) != 0 || fsync(fileno(k->f)) != 0)
        return lf__fail(LF_ERR_IO, "%s: write error: %s", k->path, strerror(errno));
    return LF_OK;
}

// Builds the cache file: encoded straight into path.tmp-PID, renamed into place when complete.
static lf_status lf__ds_write_cache(const lf_dataset_desc *d, const char *key, const char *path) {
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp-%d", path, (int)getpid());
    lf__ds_sink k = {NULL, fopen(tmp, "w+b"), tmp, 0};
    if (!k.f) return lf__fail(LF_ERR_IO, "%s: %s", tmp, strerror(errno));
    lf_status s = lf__ds_build(d, key, &k);
    if (fclose(k.f) != 0 && s == LF_OK) s = lf__fail(LF_ERR_IO, "%s: %s", tmp, strerror(errno));
    if (s == LF_OK && rename(tmp, path) != 0) s = lf__fail(LF_ERR_IO, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    if (s != LF_OK) remove(tmp);
    return s;
}

static lf_status lf__ds_split(lf_dataset *ds, const lf_dataset_desc *d) {
    ds->split_ = (int64_t *)lf__calloc((size_t)ds->n, sizeof(int64_t), "dataset split");
    if (!ds->split_) return LF_ERR_NOMEM;
    for (int64_t i = 0; i < ds->n; i++) ds->n_val += lf_data_is_validation(d->seed, ds->record[i], d->validation_split);
    ds->n_train = ds->n - ds->n_val;
    int64_t *tr = ds->split_, *va = ds->split_ + ds->n_train;
    for (int64_t i = 0, a = 0, b = 0; i < ds->n; i++) {
        if (lf_data_is_validation(d->seed, ds->record[i], d->validation_split)) va[b++] = i;
        else tr[a++] = i;
    }
    ds->train = tr, ds->val = va;
    return LF_OK;
}

LF_API lf_status lf_dataset_open(lf_dataset *ds, const lf_dataset_desc *d) {
    memset(ds, 0, sizeof *ds);
    if (!d || !d->path) return lf__fail(LF_ERR_CONFIG, "data.path: required");
    if (!d->tok) return lf__fail(LF_ERR_CONFIG, "data: a tokenizer is required");
    if (!(d->validation_split >= 0 && d->validation_split < 1))
        return lf__fail(LF_ERR_CONFIG, "data.validation_split: must be in [0, 1), got %g", d->validation_split);
    if (d->max_length < 0) return lf__fail(LF_ERR_CONFIG, "data.max_length: must be >= 0, got %d", d->max_length);
    if (d->max_prompt_length < 0)
        return lf__fail(LF_ERR_CONFIG, "data.max_prompt_length: must be >= 0, got %d", d->max_prompt_length);
    if ((unsigned)d->format > LF_DATA_TEXT) return lf__fail(LF_ERR_CONFIG, "data.format: unknown value %d", (int)d->format);
    if (d->cache_dir && !d->tokenizer_path)
        return lf__fail(LF_ERR_CONFIG, "data.cache_dir: needs the tokenizer's path (tokenizer_path), whose bytes key the "
                        "cache");
    ds->eos_id = d->tok->eos_id;
    char key[65];
    lf_status s = LF_OK;
    if (d->cache_dir) {
        s = lf__ds_key(d, key);
        if (s != LF_OK) return s;
        if ((size_t)snprintf(ds->cache_path, sizeof ds->cache_path, "%s/%s.lfds", d->cache_dir, key) >= sizeof ds->cache_path)
            return lf__fail(LF_ERR_CONFIG, "data.cache_dir: path too long");
        if (!lf_path_is_dir(d->cache_dir) && mkdir(d->cache_dir, 0755) != 0 && errno != EEXIST)
            return lf__fail(LF_ERR_IO, "%s: cannot create the cache directory: %s", d->cache_dir, strerror(errno));
        ds->cache = LF_DATASET_CACHE_WRITTEN;
        if (lf_path_exists(ds->cache_path)) {
            s = lf__ds_load_cache(ds, key, d->tok->n_vocab);
            if (s == LF_OK) ds->cache = LF_DATASET_CACHE_HIT;
            else if (s == LF_ERR_FORMAT || s == LF_ERR_IO) {  // damaged: say so and rebuild it
                size_t k = LF__MIN(strlen(lf__err), sizeof ds->cache_error - 1);
                memcpy(ds->cache_error, lf__err, k), ds->cache_error[k] = 0;
                lf__log(LF_LOG_WARN, "data", "rebuilding the dataset cache: %s", lf__err);
                ds->cache = LF_DATASET_CACHE_REBUILT;
                s = LF_OK;
            }
        }
    }
    if (s == LF_OK && ds->cache != LF_DATASET_CACHE_HIT && d->cache_dir) {  // streamed to disk, then mapped
        s = lf__ds_write_cache(d, key, ds->cache_path);
        if (s == LF_OK) s = lf__ds_load_cache(ds, key, d->tok->n_vocab);
    } else if (s == LF_OK && ds->cache != LF_DATASET_CACHE_HIT) {  // in memory
        lf__buf img = LF__ZERO;
        lf__ds_sink k = {&img, NULL, d->path, 0};
        s = lf__ds_build(d, NULL, &k);
        if (s == LF_OK) ds->mem_ = img.data, lf__ds_attach(ds, (const unsigned char *)img.data);
        else LF_FREE(img.data);
    }
    if (s == LF_OK) s = lf__ds_split(ds, d);
    if (s != LF_OK) lf_dataset_close(ds);
    return s;
}
#endif  // LF_NO_STDIO

LF_API void lf_dataset_close(lf_dataset *ds) {
#ifndef LF_NO_STDIO
    lf_mmap_close(&ds->map_);
#endif
    LF_FREE(ds->mem_);
    LF_FREE(ds->split_);
    memset(ds, 0, sizeof *ds);
}

LF_API void lf_dataset_sample(const lf_dataset *ds, int64_t i, const int32_t **tokens, const int32_t **labels, int *n) {
    int64_t off = ds->offsets[i], m = ds->offsets[i + 1] - off;
    *tokens = ds->data_ + 2 * off, *labels = *tokens + m, *n = (int)m;
}

// -- 10.5 batches

LF_API lf_batch_desc lf_batch_desc_default(void) {
    lf_batch_desc d;
    memset(&d, 0, sizeof d);
    d.shuffle = true, d.pad_id = -1;
    return d;
}

// The split's sample indices and count.
static const int64_t *lf__batch_items(const lf_batcher *b, int64_t *n) {
    bool val = b->d.split == LF_SPLIT_VALIDATION;
    *n = val ? b->ds->n_val : b->ds->n_train;
    return val ? b->ds->val : b->ds->train;
}

LF_API lf_status lf_batcher_init(lf_batcher *b, const lf_dataset *ds, const lf_batch_desc *d) {
    memset(b, 0, sizeof *b);
    if (!ds || !d) return lf__fail(LF_ERR_ARG, "lf_batcher_init: NULL dataset or desc");
    if (d->B <= 0 || d->T <= 0) return lf__fail(LF_ERR_CONFIG, "batch: B and T must be > 0, got %d and %d", d->B, d->T);
    if ((unsigned)d->pack > LF_PACK_CONCAT) return lf__fail(LF_ERR_CONFIG, "batch.pack: unknown mode %d", (int)d->pack);
    if ((unsigned)d->split > LF_SPLIT_VALIDATION)
        return lf__fail(LF_ERR_CONFIG, "batch.split: unknown split %d", (int)d->split);
    if (d->pad_id < -1) return lf__fail(LF_ERR_CONFIG, "batch.pad_id: must be -1 or an id, got %d", d->pad_id);
    b->d = *d, b->ds = ds, b->order_epoch_ = -1;
    if (b->d.pad_id < 0) b->d.pad_id = ds->eos_id >= 0 ? ds->eos_id : 0;
    int64_t n;
    const int64_t *items = lf__batch_items(b, &n);
    if (n == 0)
        return lf__fail(LF_ERR_ARG, "the %s split of the dataset is empty",
                        d->split == LF_SPLIT_VALIDATION ? "validation" : "train");
    b->n = n;
    if (ds->format == LF_DATA_DPO) {
        if (d->pack != LF_PACK_NONE || d->B % 2)
            return lf__fail(LF_ERR_CONFIG, "batch: preference pairs need an even B (chosen and rejected rows) and no packing, "
                            "got B = %d, pack %d", d->B, (int)d->pack);
        b->n = n / 2;
    }
    if (!(b->sample = (int64_t *)lf__calloc((size_t)d->B, sizeof(int64_t), "batch rows"))) return LF_ERR_NOMEM;
    if (d->pack == LF_PACK_CONCAT) {
        b->cum_ = (int64_t *)lf__calloc((size_t)n + 1, sizeof(int64_t), "batch offsets");
        if (!b->cum_) return LF_ERR_NOMEM;
        for (int64_t i = 0; i < n; i++) b->cum_[i + 1] = b->cum_[i] + (ds->offsets[items[i] + 1] - ds->offsets[items[i]]);
        b->n = b->cum_[n] / d->T;
        if (b->n == 0) {
            lf_batcher_deinit(b);
            return lf__fail(LF_ERR_ARG, "the split holds %lld tokens, fewer than one block of T = %d",
                            (long long)b->cum_[n], d->T);
        }
    }
    return LF_OK;
}

LF_API void lf_batcher_deinit(lf_batcher *b) {
    LF_FREE(b->sample);
    LF_FREE(b->order_);
    LF_FREE(b->cum_);
    memset(b, 0, sizeof *b);
}

LF_API lf_status lf_batcher_seek(lf_batcher *b, int64_t epoch, int64_t index) {
    if (epoch < 0 || index < 0 || index > b->n)
        return lf__fail(LF_ERR_ARG, "lf_batcher_seek: position (%lld, %lld) outside epochs of %lld items", (long long)epoch,
                        (long long)index, (long long)b->n);
    b->epoch = epoch, b->index = index;
    if (index == b->n) b->epoch++, b->index = 0;
    return LF_OK;
}

// Epoch e's order of the n items into order: a Fisher-Yates shuffle seeded by (seed, e).
static void lf__batch_order(const lf_batcher *b, int64_t epoch, int64_t *order) {
    for (int64_t i = 0; i < b->n; i++) order[i] = i;
    if (!b->d.shuffle) return;
    lf_rng rng;
    lf_rng_seed(&rng, lf__hash_u64(b->d.seed ^ 0x6C66626174636821ull) + (uint64_t)epoch);
    for (int64_t i = b->n - 1; i > 0; i--) {
        int64_t j = (int64_t)(lf_rng_u64(&rng) % (uint64_t)(i + 1)), t = order[i];
        order[i] = order[j], order[j] = t;
    }
}

// Length of item i (a sample index into the split) once cut at T.
static int lf__batch_len(const lf_batcher *b, const int64_t *items, int64_t i) {
    int64_t s = items[i], m = b->ds->offsets[s + 1] - b->ds->offsets[s];
    return (int)LF__MIN(m, (int64_t)b->d.T);
}

// Lays out one batch from order[*index..): rows filled, *index advanced. With out NULL only counts.
static int lf__batch_fill(const lf_batcher *b, const int64_t *order, int64_t *index, int32_t *tokens, int32_t *labels,
                          int32_t *pos) {
    int B = b->d.B, T = b->d.T, rows = 0;
    int64_t n_items;
    const int64_t *items = lf__batch_items(b, &n_items);
    bool pairs = b->ds->format == LF_DATA_DPO;
    if (tokens)
        for (int r = 0; r < B; r++) b->sample[r] = -1;
    for (int r = 0; r < (pairs ? B / 2 : B); r++) {
        if (pairs) {  // pair `it`: its chosen sample in row r, its rejected one in row r + B/2
            if (*index == b->n) break;
            int64_t it = order[(*index)++];
            for (int h = 0; h < 2 && tokens; h++) {
                int64_t smp = items[2 * it + h];
                size_t o = (size_t)(r + h * B / 2) * (size_t)T;
                const int32_t *st, *sl;
                int m;
                lf_dataset_sample(b->ds, smp, &st, &sl, &m);
                m = LF__MIN(m, T);
                memcpy(tokens + o, st, (size_t)m * sizeof(int32_t));
                memcpy(labels + o, sl, (size_t)m * sizeof(int32_t));
                for (int t = 0; t < T; t++) pos[o + (size_t)t] = t;
                for (int t = m; t < T; t++) tokens[o + (size_t)t] = b->d.pad_id, labels[o + (size_t)t] = LF_IGNORE_INDEX;
                b->sample[r + h * B / 2] = smp;
            }
            rows += 2;
            continue;
        }
        int fill = 0;
        int32_t *tk = tokens ? tokens + (size_t)r * (size_t)T : NULL, *lb = tk ? labels + (size_t)r * (size_t)T : NULL;
        int32_t *ps = tk ? pos + (size_t)r * (size_t)T : NULL;
        while (*index < b->n) {
            int64_t it = order[*index];
            if (b->d.pack == LF_PACK_CONCAT) {  // block `it` of the concatenation
                if (tk) {
                    int64_t g = it * T, k = 0;
                    size_t lo = 0, hi = (size_t)n_items;  // the sample holding token g
                    while (hi - lo > 1) {
                        size_t mid = (lo + hi) / 2;
                        if (b->cum_[mid] <= g) lo = mid;
                        else hi = mid;
                    }
                    for (size_t s = lo; k < T; s++) {
                        const int32_t *st, *sl;
                        int m;
                        lf_dataset_sample(b->ds, items[s], &st, &sl, &m);
                        int64_t from = g + k - b->cum_[s], take = LF__MIN((int64_t)m - from, (int64_t)T - k);
                        memcpy(tk + k, st + from, (size_t)take * sizeof(int32_t));
                        memcpy(lb + k, sl + from, (size_t)take * sizeof(int32_t));
                        k += take;
                    }
                    for (int t = 0; t < T; t++) ps[t] = t;
                }
                fill = T, ++*index;
                break;
            }
            int len = lf__batch_len(b, items, it);
            if (fill > 0 && fill + len > T) break;
            if (tk) {
                const int32_t *st, *sl;
                int m;
                if (fill == 0) b->sample[r] = items[it];
                lf_dataset_sample(b->ds, items[it], &st, &sl, &m);
                memcpy(tk + fill, st, (size_t)len * sizeof(int32_t));
                memcpy(lb + fill, sl, (size_t)len * sizeof(int32_t));
                for (int t = 0; t < len; t++) ps[fill + t] = t;
                if (b->d.pack == LF_PACK_SAMPLES) lb[fill] = LF_IGNORE_INDEX;
            }
            fill += len, ++*index;
            if (b->d.pack == LF_PACK_NONE) break;
        }
        if (fill == 0) break;
        rows++;
        if (tk)
            for (int t = fill; t < T; t++) {  // padding: NONE continues the positions, SAMPLES starts a run
                tk[t] = b->d.pad_id, lb[t] = LF_IGNORE_INDEX;
                ps[t] = b->d.pack == LF_PACK_NONE ? t : t - fill;
            }
        if (*index == b->n) break;
    }
    if (tokens)
        for (int r = 0; r < B; r++)  // the rows left empty (pairs: in each half)
            for (int t = 0; t < T && (pairs ? r % (B / 2) >= rows / 2 : r >= rows); t++) {
                size_t k = (size_t)r * (size_t)T + (size_t)t;
                tokens[k] = b->d.pad_id, labels[k] = LF_IGNORE_INDEX, pos[k] = t;
            }
    return rows;
}

LF_API lf_status lf_batcher_next(lf_batcher *b, int32_t *tokens, int32_t *labels, int32_t *pos, int *rows) {
    *rows = 0;
    if (!b->ds) return lf__fail(LF_ERR_ARG, "lf_batcher_next: the batcher is not initialized");
    if (!b->order_) {
        b->order_ = (int64_t *)lf__calloc((size_t)b->n, sizeof(int64_t), "batch order");
        if (!b->order_) return LF_ERR_NOMEM;
    }
    if (b->order_epoch_ != b->epoch) lf__batch_order(b, b->epoch, b->order_), b->order_epoch_ = b->epoch;
    *rows = lf__batch_fill(b, b->order_, &b->index, tokens, labels, pos);
    if (b->index == b->n) b->epoch++, b->index = 0;
    return LF_OK;
}

LF_API lf_status lf_batcher_count(const lf_batcher *b, int64_t epoch, int64_t *batches, int64_t *rows) {
    *batches = *rows = 0;
    if (!b->ds) return lf__fail(LF_ERR_ARG, "lf_batcher_count: the batcher is not initialized");
    int64_t *order = (int64_t *)lf__calloc((size_t)b->n, sizeof(int64_t), "batch order");
    if (!order) return LF_ERR_NOMEM;
    lf__batch_order(b, epoch, order);
    for (int64_t index = 0; index < b->n; ++*batches) *rows += lf__batch_fill(b, order, &index, NULL, NULL, NULL);
    LF_FREE(order);
    return LF_OK;
}

// -- 10.6 the data section of a config

LF_API lf_status lf_data_config_read(lf_data_config *d, const lf_doc *doc) {
    memset(d, 0, sizeof *d);
    d->max_length = 512;
    const lf_node *s = lf_node_get(doc->root, "data");
    static const char *known[] = {"train_file", "validation_file", "format", "validation_split", "max_length", "packing",
                                  "template", "cache_dir"};
    lf_status st = lf_cfg_keys(doc, s, "data", known, (int)(sizeof known / sizeof *known));
    lf_doc sub = *doc;
    snprintf(sub.name, sizeof sub.name, "%.200s: data", doc->name);
    const char *fmt = NULL, *tmpl = NULL;
    int64_t ml = d->max_length;
    if (st == LF_OK && (!s || s->type != LF_NODE_OBJECT)) st = lf__fail(LF_ERR_CONFIG, "%s: 'data' section with train_file: required", doc->name);
    if (st == LF_OK) st = lf_cfg_str(&sub, s, "train_file", true, &d->train_file);
    if (st == LF_OK) st = lf_cfg_str(&sub, s, "validation_file", false, &d->validation_file);
    if (st == LF_OK) st = lf_cfg_str(&sub, s, "cache_dir", false, &d->cache_dir);
    if (st == LF_OK) st = lf_cfg_str(&sub, s, "format", false, &fmt);
    if (st == LF_OK) st = lf_cfg_str(&sub, s, "template", false, &tmpl);
    if (st == LF_OK) st = lf_cfg_num(&sub, s, "validation_split", false, &d->validation_split);
    if (st == LF_OK) st = lf_cfg_int(&sub, s, "max_length", false, 2, 1 << 20, &ml);
    if (st == LF_OK) st = lf_cfg_bool(&sub, s, "packing", false, &d->packing);
    if (st == LF_OK && fmt && lf_data_format_from_name(fmt, &d->format) != LF_OK)
        st = lf__fail(LF_ERR_CONFIG, "%s: format: '%s' is not auto, alpaca, sharegpt, messages, prompt_completion, text", sub.name, fmt);
    if (st == LF_OK && tmpl && lf_chat_template_from_name(tmpl, &d->chat) != LF_OK)
        st = lf__fail(LF_ERR_CONFIG, "%s: template: '%s' is not default, chatml, llama3, llama2, mistral, plain", sub.name, tmpl);
    if (st == LF_OK && !(d->validation_split >= 0 && d->validation_split < 1))
        st = lf__fail(LF_ERR_CONFIG, "%s: validation_split: %g is outside [0, 1)", sub.name, d->validation_split);
    if (st == LF_OK && d->validation_file && d->validation_split > 0)
        st = lf__fail(LF_ERR_CONFIG, "%s: validation_file and validation_split: give one", sub.name);
    d->max_length = (int)ml;
    return st;
}

// -- 10.7 teacher targets for offline distillation

#ifndef LF_NO_STDIO
// The SHA-256 of a dataset's tokens, sample by sample (each prefixed by its length).
static void lf__ds_digest(const lf_dataset *ds, char hex[65]) {
    lf_sha256 c;
    lf_sha256_init(&c);
    for (int64_t i = 0; i < ds->n; i++) {
        const int32_t *t, *l;
        int n;
        lf_dataset_sample(ds, i, &t, &l, &n);
        unsigned char len[8];
        lf__put_u64(len, (uint64_t)n);
        lf_sha256_update(&c, len, 8);
        lf_sha256_update(&c, t, (size_t)n * sizeof(int32_t));
    }
    lf_sha256_final(&c, hex);
}

LF_API lf_status lf_kd_targets_write(const char *path, const lf_dataset *ds, lf_model *teacher, lf_kv *kv, int k, const char *teacher_name,
                                     void (*progress)(void *user, int64_t done, int64_t total), void *user) {
    int64_t P = ds->offsets[ds->n];
    size_t cells;
    if (k < 1 || k > teacher->cfg.V) return lf__fail(LF_ERR_ARG, "kd targets: top-k %d outside [1, %d]", k, teacher->cfg.V);
    if (!lf__mul_ok((size_t)P, (size_t)k, &cells) || cells > SIZE_MAX / 8)
        return lf__fail(LF_ERR_CAPACITY, "kd targets: %lld positions of %d", (long long)P, k);
    int32_t *ids = (int32_t *)lf__alloc((cells ? cells : 1) * sizeof(int32_t), "teacher ids");
    float *logp = (float *)lf__alloc((cells ? cells : 1) * sizeof(float), "teacher log-probs");
    lf_status s = ids && logp ? LF_OK : LF_ERR_NOMEM;
    for (int64_t i = 0; s == LF_OK && i < ds->n; i++) {
        const int32_t *t, *l;
        int n;
        lf_dataset_sample(ds, i, &t, &l, &n);
        size_t o = (size_t)ds->offsets[i] * (size_t)k;
        s = lf_kd_teacher_topk(teacher, kv, t, n, k, ids + o, logp + o, NULL);
        if (s != LF_OK) lf__wrap(s, "kd targets: sample %lld", (long long)i);
        if (progress) progress(user, i + 1, ds->n);
    }
    char hex[65], kbuf[16];
    lf__ds_digest(ds, hex);
    snprintf(kbuf, sizeof kbuf, "%d", k);
    const char *meta[] = {"format", "largeforge-kd-targets", "k", kbuf, "teacher", teacher_name ? teacher_name : "", "dataset", hex};
    lf_st_entry e[3] = {{"ids", LF_DTYPE_I32, 2, {P, k}, ids}, {"logp", LF_DTYPE_F32, 2, {P, k}, logp},
                        {"offsets", LF_DTYPE_I64, 1, {ds->n + 1}, ds->offsets}};
    if (s == LF_OK) s = lf_st_write(path, e, 3, meta, 4);
    LF_FREE(ids), LF_FREE(logp);
    return s;
}

LF_API lf_status lf_kd_file_open(lf_kd_file *f, const char *path, const lf_dataset *ds) {
    memset(f, 0, sizeof *f);
    lf_status s = lf_st_open(&f->st, path);
    if (s != LF_OK) return s;
    const char *fmt = lf_st_meta(&f->st, "format"), *kk = lf_st_meta(&f->st, "k"), *dig = lf_st_meta(&f->st, "dataset");
    const lf_st_tensor *ids = lf_st_find(&f->st, "ids"), *lp = lf_st_find(&f->st, "logp"), *off = lf_st_find(&f->st, "offsets");
    char hex[65];
    lf__ds_digest(ds, hex);
    f->k = kk ? atoi(kk) : 0, f->n = ds->n;
    if (!fmt || strcmp(fmt, "largeforge-kd-targets") != 0 || !dig || f->k < 1 || !ids || !lp || !off)
        s = lf__fail(LF_ERR_FORMAT, "%s: not a teacher targets file (largeforge generate logits writes them)", path);
    else if (strcmp(dig, hex) != 0)
        s = lf__fail(LF_ERR_FORMAT, "%s: made for another dataset (or another tokenizer, template or max_length): its tokens differ", path);
    else if (ids->dtype != LF_DTYPE_I32 || lp->dtype != LF_DTYPE_F32 || off->dtype != LF_DTYPE_I64 || ids->ndim != 2 || lp->ndim != 2 ||
             off->ndim != 1 || ids->shape[1] != f->k || lp->shape[0] != ids->shape[0] || lp->shape[1] != f->k || off->shape[0] != ds->n + 1)
        s = lf__fail(LF_ERR_FORMAT, "%s: the shapes of ids, logp and offsets do not fit k %d and %lld samples", path, f->k, (long long)ds->n);
    else if (memcmp(off->data, ds->offsets, (size_t)(ds->n + 1) * sizeof(int64_t)) != 0 || ds->offsets[ds->n] != ids->shape[0])
        s = lf__fail(LF_ERR_FORMAT, "%s: its offsets are not the dataset's", path);
    for (int64_t i = 0; s == LF_OK && i < ids->shape[0] * f->k; i++)
        if (((const int32_t *)ids->data)[i] < 0) s = lf__fail(LF_ERR_FORMAT, "%s: ids[%lld] is negative", path, (long long)i);
    if (s != LF_OK) return lf_kd_file_close(f), s;
    f->offsets = ds->offsets, f->ids = (const int32_t *)ids->data, f->logp = (const float *)lp->data;
    return LF_OK;
}

LF_API void lf_kd_file_close(lf_kd_file *f) {
    lf_st_close(&f->st);
    memset(f, 0, sizeof *f);
}
#endif

// -- 10.8 synthetic data: quality filters and near-duplicates

#define LF__SYN_MAX_GRAM 64
#define LF__M61 ((1ull << 61) - 1)

static bool lf__syn_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
static bool lf__syn_punct(unsigned char c) {
    return c >= '!' && c <= '~' && !(c >= '0' && c <= '9') && !((c | 32) >= 'a' && (c | 32) <= 'z');
}

// Walks a text's n-grams of words (chars: of code points, whitespace left out), see ON WORDS.
typedef struct lf__grams {
    const char *s;
    size_t len, pos;
    int n;
    bool chars, whole_short;  // whole_short: a text of fewer than n units (but some) is one gram
    int64_t units;
    uint64_t ring[LF__SYN_MAX_GRAM];  // the last n units' hashes
} lf__grams;

// The next unit's hash; false at the end.
static bool lf__grams_unit(lf__grams *g, uint64_t *u) {
    const unsigned char *s = (const unsigned char *)g->s;
    for (;;) {
        size_t i = g->pos, j;
        while (i < g->len && lf__syn_space(s[i])) i++;
        if (i == g->len) return g->pos = i, false;
        if (g->chars) {
            uint64_t v = s[i];
            for (j = i + 1; j < g->len && j < i + 4 && s[i] >= 0xC0 && (s[j] & 0xC0) == 0x80; j++) v = v << 8 | s[j];
            g->pos = j, *u = v;
            return true;
        }
        for (j = i; j < g->len && !lf__syn_space(s[j]); j++) {}
        g->pos = j;
        while (i < j && lf__syn_punct(s[i])) i++;
        while (j > i && lf__syn_punct(s[j - 1])) j--;
        if (i == j) continue;  // all punctuation
        uint64_t h = 0xCBF29CE484222325ull;  // FNV-1a of the lower-cased word
        for (; i < j; i++) h = (h ^ (s[i] >= 'A' && s[i] <= 'Z' ? s[i] | 32u : s[i])) * 0x100000001B3ull;
        *u = h;
        return true;
    }
}

// The next n-gram's hash; false at the end.
static bool lf__grams_next(lf__grams *g, uint64_t *h) {
    uint64_t u;
    int m = g->n;
    for (;;) {
        if (lf__grams_unit(g, &u)) {
            g->ring[g->units++ % g->n] = u;
            if (g->units >= g->n) break;
        } else if (g->whole_short && g->units > 0 && g->units < g->n) {
            m = (int)g->units, g->whole_short = false;
            break;
        } else return false;
    }
    uint64_t x = (uint64_t)m;
    for (int64_t i = g->units - m; i < g->units; i++) x = lf__hash_u64(x ^ g->ring[i % g->n]);
    *h = x;
    return true;
}

static int64_t lf__grams_count_units(const char *s, size_t len, bool chars) {
    lf__grams g = {s, len, 0, 1, chars, false, 0, {0}};
    uint64_t u;
    int64_t n = 0;
    while (lf__grams_unit(&g, &u)) n++;
    return n;
}

// (a * x + b) mod 2^61 - 1 for a, x, b < 2^61, in 64-bit pieces (2^61 = 1, 2^64 = 8 mod p).
static uint64_t lf__m61_muladd(uint64_t a, uint64_t x, uint64_t b) {
    uint64_t ah = a >> 32, al = a & 0xFFFFFFFFu, xh = x >> 32, xl = x & 0xFFFFFFFFu;
    uint64_t mid = ah * xl + al * xh, lo = al * xl;
    uint64_t s = (ah * xh << 3) + (mid >> 29) + ((mid & ((1u << 29) - 1)) << 32) + (lo & LF__M61) + (lo >> 61) + b;
    s = (s & LF__M61) + (s >> 61);
    return s >= LF__M61 ? s - LF__M61 : s;
}

LF_API void lf_dedup_signature(const lf_dedup *dd, const char *text, size_t len, uint32_t *sig) {
    int P = dd->d.num_perm;
    const uint64_t *a = dd->perm_, *b = dd->perm_ + P;
    for (int p = 0; p < P; p++) sig[p] = 0xFFFFFFFFu;
    lf__grams g = {text, text ? len : 0, 0, dd->d.shingle, false, true, 0, {0}};
    uint64_t h;
    while (lf__grams_next(&g, &h)) {
        uint64_t x = (h & LF__M61) + (h >> 61);
        if (x >= LF__M61) x -= LF__M61;
        for (int p = 0; p < P; p++) {
            uint32_t v = (uint32_t)lf__m61_muladd(a[p], x, b[p]);
            if (v < sig[p]) sig[p] = v;
        }
    }
}

LF_API double lf_dedup_similarity(const lf_dedup *dd, const uint32_t *a, const uint32_t *b) {
    int eq = 0;
    for (int p = 0; p < dd->d.num_perm; p++) eq += a[p] == b[p];
    return (double)eq / dd->d.num_perm;
}

LF_API lf_status lf_dedup_init(lf_dedup *dd, const lf_dedup_desc *desc) {
    memset(dd, 0, sizeof *dd);
    lf_dedup_desc d;
    if (desc) d = *desc;
    else memset(&d, 0, sizeof d);
    if (!d.shingle) d.shingle = 5;
    if (!d.num_perm) d.num_perm = 128;
    if (d.threshold == 0) d.threshold = 0.85;
    if (d.shingle < 1 || d.shingle > LF__SYN_MAX_GRAM)
        return lf__fail(LF_ERR_CONFIG, "dedup.shingle: must be in [1, %d], got %d", LF__SYN_MAX_GRAM, d.shingle);
    if (d.num_perm < 1 || d.num_perm > 65536)
        return lf__fail(LF_ERR_CONFIG, "dedup.num_perm: must be in [1, 65536], got %d", d.num_perm);
    if (!(d.threshold > 0 && d.threshold <= 1))
        return lf__fail(LF_ERR_CONFIG, "dedup.threshold: must be in (0, 1], got %g", d.threshold);
    if (d.bands < 0 || d.bands > d.num_perm)
        return lf__fail(LF_ERR_CONFIG, "dedup.bands: must be in [1, num_perm = %d], got %d", d.num_perm, d.bands);
    for (int b = 1; !d.bands; b++)
        if (b == d.num_perm || (d.num_perm % b == 0 && 1 - pow(1 - pow(d.threshold, d.num_perm / b), b) >= 0.99)) d.bands = b;
    if (!(dd->perm_ = (uint64_t *)lf__calloc(2 * (size_t)d.num_perm, 8, "MinHash permutations"))) return LF_ERR_NOMEM;
    lf_rng r;
    lf_rng_seed(&r, d.seed);
    for (int p = 0; p < d.num_perm; p++) {
        dd->perm_[p] = 1 + lf_rng_u64(&r) % (LF__M61 - 1);
        dd->perm_[d.num_perm + p] = lf_rng_u64(&r) % LF__M61;
    }
    dd->d = d;
    return LF_OK;
}

LF_API void lf_dedup_deinit(lf_dedup *dd) {
    LF_FREE(dd->perm_), LF_FREE(dd->sig_), LF_FREE(dd->id_), LF_FREE(dd->tab_);
    memset(dd, 0, sizeof *dd);
}

// Band b's 32-bit key (kept in a slot's high half) and its first slot.
static uint32_t lf__dedup_key(const lf_dedup *dd, const uint32_t *sig, int b) {
    int r = dd->d.num_perm / dd->d.bands;
    return (uint32_t)(lf__hash_u64(lf__hash_bytes((const char *)(sig + b * r), (size_t)r * 4) + (uint64_t)b) >> 32);
}
static size_t lf__dedup_slot(const lf_dedup *dd, uint32_t key) { return (size_t)lf__hash_u64(key) & (dd->tab_cap_ - 1); }

// Doubles the band table until n_kept + 1 texts fit at most half full.
static lf_status lf__dedup_reserve(lf_dedup *dd) {
    size_t need = (dd->tab_n_ + (size_t)dd->d.bands) * 2, cap = dd->tab_cap_ ? dd->tab_cap_ : 64;
    if (need <= dd->tab_cap_) return LF_OK;
    while (cap < need) cap *= 2;
    uint64_t *t = (uint64_t *)lf__calloc(cap, 8, "near-duplicate band table"), *old = dd->tab_;
    if (!t) return LF_ERR_NOMEM;
    size_t old_cap = dd->tab_cap_;
    dd->tab_ = t, dd->tab_cap_ = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i]) {
            size_t j = lf__dedup_slot(dd, (uint32_t)(old[i] >> 32));
            while (t[j]) j = (j + 1) & (cap - 1);
            t[j] = old[i];
        }
    LF_FREE(old);
    return LF_OK;
}

LF_API lf_status lf_dedup_add(lf_dedup *dd, const char *text, size_t len, int64_t *dup_of) {
    *dup_of = -1;
    if (!text && len) return lf__fail(LF_ERR_ARG, "lf_dedup_add: text is NULL with len %zu", len);
    size_t k = (size_t)dd->n_kept, P = (size_t)dd->d.num_perm;
    if (k >= UINT32_MAX - 1) return lf__fail(LF_ERR_CAPACITY, "lf_dedup_add: %zu texts kept, the most a set holds", k);
    if (!lf__grow((void **)&dd->sig_, &dd->sig_cap_, k + 1, P * 4, "MinHash signatures") ||
        !lf__grow((void **)&dd->id_, &dd->id_cap_, k + 1, 8, "near-duplicate ids"))
        return LF_ERR_NOMEM;
    lf_status s = lf__dedup_reserve(dd);
    if (s != LF_OK) return s;
    uint32_t *sig = dd->sig_ + k * P;
    lf_dedup_signature(dd, text, len, sig);
    double best = 0;
    for (int b = 0; b < dd->d.bands; b++) {
        uint32_t key = lf__dedup_key(dd, sig, b);
        for (size_t i = lf__dedup_slot(dd, key); dd->tab_[i]; i = (i + 1) & (dd->tab_cap_ - 1)) {
            if ((uint32_t)(dd->tab_[i] >> 32) != key) continue;
            size_t c = (uint32_t)dd->tab_[i] - 1;
            double sim = lf_dedup_similarity(dd, sig, dd->sig_ + c * P);
            if (sim >= dd->d.threshold && (sim > best || (sim == best && dd->id_[c] < *dup_of)))
                best = sim, *dup_of = dd->id_[c];
        }
    }
    if (*dup_of < 0) {
        for (int b = 0; b < dd->d.bands; b++) {
            uint32_t key = lf__dedup_key(dd, sig, b);
            size_t i = lf__dedup_slot(dd, key);
            while (dd->tab_[i]) i = (i + 1) & (dd->tab_cap_ - 1);
            dd->tab_[i] = (uint64_t)key << 32 | (k + 1);
        }
        dd->tab_n_ += (size_t)dd->d.bands;
        dd->id_[k] = dd->n_added, dd->n_kept++;
    }
    dd->n_added++;
    return LF_OK;
}

LF_API const char *lf_quality_name(lf_quality q) {
    static const char *const names[] = {"ok", "empty", "too_short", "too_long", "repetitive", "unfinished"};
    return (unsigned)q < 6 ? names[q] : "unknown";
}

// The share of n-grams equal to an earlier one (see ON QUALITY); 0 when there are none.
static lf_status lf__quality_repeats(const char *text, size_t len, int n, double *frac) {
    bool chars = lf__grams_count_units(text, len, false) < 2 * n;
    if (chars) n *= 2;
    int64_t grams = lf__grams_count_units(text, len, chars) - n + 1;
    *frac = 0;
    if (grams < 2) return LF_OK;
    size_t cap = 64, mask, seen = 0;
    while (cap < 2 * (size_t)grams) cap *= 2;
    uint64_t *set = (uint64_t *)lf__calloc(cap, 8, "repeated n-gram set"), h;
    if (!set) return LF_ERR_NOMEM;
    mask = cap - 1;
    lf__grams g = {text, len, 0, n, chars, false, 0, {0}};
    while (lf__grams_next(&g, &h)) {
        if (!h) h = 1;  // 0 marks an empty slot
        size_t i = (size_t)h & mask;
        while (set[i] && set[i] != h) i = (i + 1) & mask;
        seen += set[i] == h;
        set[i] = h;
    }
    LF_FREE(set);
    *frac = (double)seen / (double)grams;
    return LF_OK;
}

LF_API lf_status lf_quality_check(const lf_quality_desc *desc, const char *text, size_t len, int64_t n_tokens,
                                  bool finished, lf_quality *verdict) {
    lf_quality_desc d;
    if (desc) d = *desc;
    else memset(&d, 0, sizeof d);
    if (!d.min_tokens) d.min_tokens = 1;
    if (!d.repeat_ngram) d.repeat_ngram = 3;
    if (d.max_repeat_fraction == 0) d.max_repeat_fraction = 0.3;
    *verdict = LF_QUALITY_OK;
    if (d.min_tokens < 0) return lf__fail(LF_ERR_CONFIG, "quality.min_tokens: must be >= 0, got %d", d.min_tokens);
    if (d.max_tokens < 0 || (d.max_tokens && d.max_tokens < d.min_tokens))
        return lf__fail(LF_ERR_CONFIG, "quality.max_tokens: must be 0 or >= min_tokens = %d, got %d", d.min_tokens,
                        d.max_tokens);
    if (d.repeat_ngram < 1 || d.repeat_ngram > LF__SYN_MAX_GRAM / 2)
        return lf__fail(LF_ERR_CONFIG, "quality.repeat_ngram: must be in [1, %d], got %d", LF__SYN_MAX_GRAM / 2,
                        d.repeat_ngram);
    if (!(d.max_repeat_fraction > 0 && d.max_repeat_fraction <= 1))
        return lf__fail(LF_ERR_CONFIG, "quality.max_repeat_fraction: must be in (0, 1], got %g", d.max_repeat_fraction);
    if (!text && len) return lf__fail(LF_ERR_ARG, "lf_quality_check: text is NULL with len %zu", len);
    if (n_tokens < 0) return lf__fail(LF_ERR_ARG, "lf_quality_check: n_tokens %lld < 0", (long long)n_tokens);
    size_t i = 0;
    while (i < len && lf__syn_space((unsigned char)text[i])) i++;
    double frac = 0;
    if (i == len) return *verdict = LF_QUALITY_EMPTY, LF_OK;
    if (n_tokens < d.min_tokens) return *verdict = LF_QUALITY_TOO_SHORT, LF_OK;
    if (d.max_tokens && n_tokens > d.max_tokens) return *verdict = LF_QUALITY_TOO_LONG, LF_OK;
    lf_status s = lf__quality_repeats(text, len, d.repeat_ngram, &frac);
    if (s != LF_OK) return s;
    if (frac > d.max_repeat_fraction) *verdict = LF_QUALITY_REPETITIVE;
    else if (!finished && !d.allow_unfinished) *verdict = LF_QUALITY_UNFINISHED;
    return LF_OK;
}

// == 11. quant (impl) ============================================================================

// -- 11.1 GPTQ

#define LF__GPTQ_BLOCK 128

// In-place lower Cholesky factor of the SPD matrix a [n, n] (the upper triangle is left as is).
static bool lf__cholesky(double *a, int64_t n) {
    for (int64_t j = 0; j < n; j++) {
        double d = a[j * n + j];
        for (int64_t k = 0; k < j; k++) d -= a[j * n + k] * a[j * n + k];
        if (!(d > 0)) return false;
        d = sqrt(d);
        a[j * n + j] = d;
        for (int64_t i = j + 1; i < n; i++) {
            double v = a[i * n + j];
            for (int64_t k = 0; k < j; k++) v -= a[i * n + k] * a[j * n + k];
            a[i * n + j] = v / d;
        }
    }
    return true;
}

// h [n, n] (SPD) becomes U, the upper Cholesky factor of h^-1 (h^-1 = U^T U), as auto_gptq's
// cholesky -> cholesky_inverse -> cholesky(upper=True). t is scratch [n, n].
static bool lf__gptq_hinv(double *h, double *t, int64_t n) {
    if (!lf__cholesky(h, n)) return false;
    // t = L^-1 (lower), by forward substitution column by column
    memset(t, 0, (size_t)(n * n) * sizeof(double));
    for (int64_t j = 0; j < n; j++) {
        t[j * n + j] = 1.0 / h[j * n + j];
        for (int64_t i = j + 1; i < n; i++) {
            double v = 0;
            for (int64_t k = j; k < i; k++) v += h[i * n + k] * t[k * n + j];
            t[i * n + j] = -v / h[i * n + i];
        }
    }
    // h = L^-T L^-1 = h^-1 (symmetric: the lower triangle, then mirrored)
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j <= i; j++) {
            double v = 0;
            for (int64_t k = i; k < n; k++) v += t[k * n + i] * t[k * n + j];
            h[i * n + j] = h[j * n + i] = v;
        }
    if (!lf__cholesky(h, n)) return false;
    for (int64_t i = 0; i < n; i++)  // U = L^T
        for (int64_t j = 0; j < n; j++) t[i * n + j] = j >= i ? h[j * n + i] : 0.0;
    memcpy(h, t, (size_t)(n * n) * sizeof(double));
    return true;
}

static int lf__q4_code_d(double x, float s, int z) {
    double c = rint(x / s) + z;
    return c < 0 ? 0 : c > 15 ? 15 : (int)c;
}

typedef struct lf__gptq_job {
    double *W, *W1, *err;          // [rows, cols] outer weight, [rows, blk] the block's, [rows, blk] errors
    const double *U;               // [cols, cols]
    const int64_t *perm;
    lf__q4_build *b;
    int64_t cols, i1, cnt;
    int g;
    bool asym;
} lf__gptq_job;

// Rows [r0, r1) of one block: each column quantized, its error fed to the block's later columns.
static void lf__gptq_rows(void *arg, int64_t r0, int64_t r1, int tid) {
    (void)tid;
    const lf__gptq_job *J = (const lf__gptq_job *)arg;
    int64_t cols = J->cols, ng = cols / J->g;
    for (int64_t r = r0; r < r1; r++) {
        double *w1 = J->W1 + r * J->cnt, *e = J->err + r * J->cnt;
        const double *wo = J->W + r * cols;
        for (int64_t i = 0; i < J->cnt; i++) {
            int64_t col = J->i1 + i, grp = col / J->g;
            if (J->g < cols && col % J->g == 0) {  // params from the outer weight, as auto_gptq
                double lo = wo[col], hi = wo[col];
                for (int64_t k = col; k < col + J->g; k++) lo = LF__MIN(lo, wo[k]), hi = LF__MAX(hi, wo[k]);
                int z;
                lf__q4_range_params(lo, hi, J->asym, false, &J->b->scales[r * ng + grp], &z);
                J->b->zeros[r * ng + grp] = (unsigned char)z;
            }
            float s = J->b->scales[r * ng + grp];
            int z = J->b->zeros[r * ng + grp], c = lf__q4_code_d(w1[i], s, z);
            lf__q4_set(J->b, cols, r, J->perm[col], c);
            double q = (double)s * (double)(c - z), d = J->U[col * cols + col], er = (w1[i] - q) / d;
            e[i] = er;
            for (int64_t j = i + 1; j < J->cnt; j++) w1[j] -= er * J->U[col * cols + J->i1 + j];
        }
    }
}

// The outer weight's columns after the block: W[:, i2:] -= err . U[i1:i2, i2:].
static void lf__gptq_rest(void *arg, int64_t r0, int64_t r1, int tid) {
    (void)tid;
    const lf__gptq_job *J = (const lf__gptq_job *)arg;
    int64_t cols = J->cols, i2 = J->i1 + J->cnt;
    for (int64_t r = r0; r < r1; r++)
        for (int64_t i = 0; i < J->cnt; i++) {
            double er = J->err[r * J->cnt + i];
            const double *u = J->U + (J->i1 + i) * cols;
            double *w = J->W + r * cols;
            for (int64_t j = i2; j < cols; j++) w[j] -= er * u[j];
        }
}

static lf_status lf__gptq(lf_pool *pool, lf_qtensor *out, const float *W, int64_t rows, int64_t cols, const double *H,
                          const lf_gptq_desc *d) {
    memset(out, 0, sizeof *out);
    int g = d->group_size == -1 ? (int)cols : d->group_size ? d->group_size : 128;
    double damp = d->damp_percent ? d->damp_percent : 0.01;
    if (rows <= 0 || cols <= 0 || cols > (1 << 20))
        return lf__fail(LF_ERR_ARG, "gptq: shape [%lld, %lld]", (long long)rows, (long long)cols);
    if (!lf__q4_group_ok(g, cols))
        return lf__fail(LF_ERR_ARG, "gptq: group_size %d does not divide rows of %lld values (a power of two from 16, "
                        "or -1)", d->group_size, (long long)cols);
    if (!(damp > 0 && damp < 1)) return lf__fail(LF_ERR_ARG, "gptq: damp_percent must be in (0, 1), got %g", damp);
    for (int64_t i = 0; i < rows * cols; i++)
        if (!isfinite(W[i])) return lf__fail(LF_ERR_ARG, "gptq: W[%lld] is %g", (long long)i, (double)W[i]);
    for (int64_t i = 0; i < cols * cols; i++)
        if (!isfinite(H[i])) return lf__fail(LF_ERR_ARG, "gptq: H[%lld] is %g", (long long)i, H[i]);
    size_t nc = (size_t)cols;
    double *h = (double *)lf__alloc(nc * nc * sizeof(double), "gptq hessian");
    double *t = h ? (double *)lf__alloc(nc * nc * sizeof(double), "gptq hessian inverse") : NULL;
    double *Wd = t ? (double *)lf__alloc((size_t)rows * nc * sizeof(double), "gptq weight") : NULL;
    double *W1 = Wd ? (double *)lf__alloc((size_t)rows * LF__GPTQ_BLOCK * 2 * sizeof(double), "gptq block") : NULL;
    int64_t *perm = W1 ? (int64_t *)lf__alloc(nc * sizeof(int64_t), "gptq permutation") : NULL;
    lf__q4_build b;
    double mean = 0;
    lf_status st = perm ? lf__q4_alloc(out, &b, rows, cols, g, d->desc_act && g < cols) : LF_ERR_NOMEM;
    if (st != LF_OK) goto done;
    // one group per row: the parameters of the weight as given (before dead columns are zeroed)
    if (g == cols)
        for (int64_t r = 0; r < rows; r++) {
            double lo = W[r * cols], hi = lo;
            for (int64_t k = 0; k < cols; k++) lo = LF__MIN(lo, W[r * cols + k]), hi = LF__MAX(hi, W[r * cols + k]);
            int z;
            lf__q4_range_params(lo, hi, d->asym, false, &b.scales[r], &z);
            b.zeros[r] = (unsigned char)z;
        }
    // act order: columns by decreasing diagonal, ties in index order (a stable sort)
    for (int64_t i = 0; i < cols; i++) perm[i] = i;
    if (d->desc_act)
        for (int64_t i = 1; i < cols; i++) {  // insertion sort: stable, and cols is at most a few thousand
            int64_t p = perm[i], j = i;
            for (; j > 0 && H[perm[j - 1] * cols + perm[j - 1]] < H[p * cols + p]; j--) perm[j] = perm[j - 1];
            perm[j] = p;
        }
    for (int64_t i = 0; i < cols; i++) {
        for (int64_t j = 0; j < cols; j++) h[i * cols + j] = H[perm[i] * cols + perm[j]];
        bool dead = h[i * cols + i] == 0;  // a column no input ever reached: weight 0, H 1
        if (dead) h[i * cols + i] = 1;
        for (int64_t r = 0; r < rows; r++) Wd[r * cols + i] = dead ? 0.0 : (double)W[r * cols + perm[i]];
        mean += h[i * cols + i];
    }
    mean = damp * mean / (double)cols;
    for (int64_t i = 0; i < cols; i++) h[i * cols + i] += mean;
    if (!lf__gptq_hinv(h, t, cols)) {
        st = lf__fail(LF_ERR_ARG, "gptq: the Hessian [%lld, %lld] is not positive definite after damping by %g of its "
                      "mean diagonal (raise damp_percent)", (long long)cols, (long long)cols, damp);
        goto done;
    }
    if (b.g_idx)
        for (int64_t i = 0; i < cols; i++) b.g_idx[perm[i]] = (int32_t)(i / g);
    for (int64_t i1 = 0; i1 < cols; i1 += LF__GPTQ_BLOCK) {
        lf__gptq_job J = {Wd, W1, W1 + (size_t)rows * LF__GPTQ_BLOCK, h, perm, &b, cols, i1,
                          LF__MIN(LF__GPTQ_BLOCK, cols - i1), g, d->asym};
        for (int64_t r = 0; r < rows; r++) memcpy(W1 + r * J.cnt, Wd + r * cols + i1, (size_t)J.cnt * sizeof(double));
        lf_parallel_for(pool, rows, lf__gptq_rows, &J);
        if (i1 + J.cnt < cols) lf_parallel_for(pool, rows, lf__gptq_rest, &J);
    }
done:
    if (st != LF_OK) lf_qtensor_deinit(out);
    LF_FREE(h), LF_FREE(t), LF_FREE(Wd), LF_FREE(W1), LF_FREE(perm);
    return st;
}

LF_API lf_status lf_gptq(lf_qtensor *out, const float *W, int64_t rows, int64_t cols, const double *H,
                         const lf_gptq_desc *d) {
    if (!out || !W || !H || !d) return lf__fail(LF_ERR_ARG, "gptq: %s is NULL", !out ? "out" : !W ? "W" : !H ? "H" : "d");
    return lf__gptq(NULL, out, W, rows, cols, H, d);
}

// -- 11.2 calibration and the model-level quantizers
//
// ON THE SECOND MOMENT: every search here minimizes, and the report gives, the squared error of
// a projection's outputs over the calibration tokens, ||X D^T||^2 for a weight change D. That is
// trace(D H D^T) with H = X^T X, so a pass over the samples sums H per input group (what GPTQ
// needs anyway) and no token's inputs are kept: every error counts every token, at a cost that
// does not grow with their number.

typedef struct lf__calib {
    lf_model *m;
    const lf_quant_desc *d;
    lf_kv kv;
    float *hidden;                // [tokens, C] each sample's residual stream entering the current layer
    int64_t *start;               // [n_samples] its first row
    int64_t tokens;
    int64_t width[LF__IN_COUNT];
    float *cap[LF__IN_COUNT];     // [max_len, width] one sample's inputs
    float *H[LF__IN_COUNT];       // [width, width] sum of x x^T
    double *xabs[LF__IN_COUNT];   // AWQ: [width] sum of |x|
    float *xt;                    // [max width, max_len] transposed inputs
    void *mm;                     // GEMM scratch
    float *dw, *e, *t;            // [max out, max in] a weight difference, its product with H, a weight
} lf__calib;

static int lf__proj_group(lf_proj p) {
    return p <= LF_PROJ_V ? LF__IN_QKV : p == LF_PROJ_O ? LF__IN_O : p == LF_PROJ_DOWN ? LF__IN_DOWN : LF__IN_GATE_UP;
}

// Layer l over every sample: H (and AWQ's sum |x|) of the groups in mask summed from zero, the
// residual streams advanced to the layer's output when advance.
static void lf__calib_pass(lf__calib *K, int l, unsigned mask, bool advance) {
    lf_model *m = K->m;
    int64_t C = m->cfg.C;
    lf__acts a;
    lf__acts_plan(m, &a, m->acts_.base);
    for (int g = 0; g < LF__IN_COUNT; g++)
        if (mask >> g & 1) {
            memset(K->H[g], 0, (size_t)(K->width[g] * K->width[g]) * sizeof(float));
            if (K->xabs[g]) memset(K->xabs[g], 0, (size_t)K->width[g] * sizeof(double));
        }
    for (int s = 0; s < K->d->n_samples; s++) {
        int n = K->d->sample_len[s];
        float *h = K->hidden + K->start[s] * C, *capture[LF__IN_COUNT];
        memcpy(a.x, h, (size_t)(n * C) * sizeof(float));
        for (int i = 0; i < n; i++) a.pos[i] = i, a.seq[i] = 0;
        for (int g = 0; g < LF__IN_COUNT; g++) capture[g] = mask >> g & 1 ? K->cap[g] : NULL;
        lf__layer_forward(m, &K->kv, l, &a, n, a.pos, a.seq, capture);
        for (int g = 0; g < LF__IN_COUNT; g++) {
            if (!capture[g]) continue;
            int64_t w = K->width[g];
            lf__transpose(m->pool, K->xt, capture[g], n, w);
            lf__gemm(m->pool, K->H[g], K->xt, K->xt, LF_DTYPE_F32, NULL, w, w, n, K->mm, true);
            if (K->xabs[g])
                for (int64_t i = 0; i < n * w; i++) K->xabs[g][i % w] += fabsf(capture[g][i]);
        }
        if (advance) memcpy(h, a.x, (size_t)(n * C) * sizeof(float));
    }
}

// Weight p of layer l in f32 (the mapped original).
static void lf__proj_f32(const lf_model *m, int l, lf_proj p, float *dst) {
    const lf_tensor *w = &m->layers[l].w[p];
    lf_convert_to_f32(dst, w->data, w->dtype, lf_tensor_numel(w));
}

// trace(D H D^T) for D [out, in] in K->dw, H the group's sum of x x^T: the squared output error.
static double lf__calib_sq(lf__calib *K, int g, int64_t out) {
    int64_t in = K->width[g];
    lf__matmul(K->m->pool, K->e, K->dw, K->H[g], LF_DTYPE_F32, NULL, out, in, in, K->mm);  // H is symmetric
    double s = 0;
    for (int64_t i = 0; i < out * in; i++) s += (double)K->e[i] * K->dw[i];
    return s;
}

// The relative output error of q against w [out, in] on the group's inputs:
// trace((Wq - W) H (Wq - W)^T) / trace(W H W^T). cols_scale (AWQ's s, or NULL) undoes a scaling
// of the inputs: both weights are then divided by it column-wise before the comparison.
static double lf__calib_err(lf__calib *K, int g, const float *w, const lf_qtensor *q, const float *cols_scale) {
    int64_t out = q->rows, in = q->cols;
    lf_qtensor_dequantize(q, K->dw);
    for (int64_t i = 0; i < out * in; i++) K->dw[i] -= w[i];
    if (cols_scale)
        for (int64_t i = 0; i < out * in; i++) K->dw[i] *= cols_scale[i % in];
    double num = lf__calib_sq(K, g, out);
    for (int64_t i = 0; i < out * in; i++) K->dw[i] = cols_scale ? w[i] * cols_scale[i % in] : w[i];
    double den = lf__calib_sq(K, g, out);
    return den > 0 ? num / den : 0.0;
}

// AWQ's group-wise fake quantization of one row range: dst = dequant(quant(src)) in groups of g.
static void lf__awq_fake(float *dst, const float *src, int64_t n, int g) {
    for (int64_t k0 = 0; k0 < n; k0 += g) {
        float lo = src[k0], hi = src[k0], s;
        int z;
        for (int64_t i = k0; i < k0 + g; i++) lo = LF__MIN(lo, src[i]), hi = LF__MAX(hi, src[i]);
        lf__q4_range_params(lo, hi, true, true, &s, &z);
        for (int64_t i = k0; i < k0 + g; i++) dst[i] = (float)(lf_q4_code(src[i], s, z) - z) * s;
    }
}

// AWQ's scale search for the projections ps[0..np) sharing input group gi (weights wf[p], f32,
// [out_p, in]): s [in] gets the scales whose Q(W s) / s has the least output error, summed.
static void lf__awq_search(lf__calib *K, int gi, float **wf, const lf_proj *ps, int np, int g, float *s, float *cand) {
    const lf_model *m = K->m;
    int64_t in = K->width[gi], total = 0;
    double *xm = K->xabs[gi], best = INFINITY;
    float *wmean = K->t;  // scratch until the candidates are tried
    for (int i = 0; i < np; i++) total += m->layers[0].w[ps[i]].shape[0];
    memset(wmean, 0, (size_t)in * sizeof(float));
    for (int i = 0; i < np; i++) {  // mean over all rows of |w| / max |w| of its (row, group)
        int64_t out = m->layers[0].w[ps[i]].shape[0];
        for (int64_t r = 0; r < out; r++)
            for (int64_t k0 = 0; k0 < in; k0 += g) {
                const float *w = wf[ps[i]] + r * in + k0;
                float mx = 0;
                for (int k = 0; k < g; k++) mx = LF__MAX(mx, fabsf(w[k]));
                for (int k = 0; k < g && mx > 0; k++) wmean[k0 + k] += fabsf(w[k]) / mx;
            }
    }
    double *ratio_s = (double *)K->e;  // [in] the candidate scales in double, before they become f32
    for (int step = 0; step < 20; step++) {
        double ratio = step / 20.0, mx = 0, mn = INFINITY, loss = 0;
        for (int64_t k = 0; k < in; k++) {
            double v = pow(xm[k] / (double)K->tokens, ratio) / (pow((double)wmean[k] / (double)total, 1 - ratio) + 1e-4);
            ratio_s[k] = LF__MAX(v, 1e-4);
            mx = LF__MAX(mx, ratio_s[k]), mn = LF__MIN(mn, ratio_s[k]);
        }
        double norm = sqrt(mx * mn);
        for (int64_t k = 0; k < in; k++) cand[k] = isfinite(ratio_s[k] / norm) ? (float)(ratio_s[k] / norm) : 1.0f;
        for (int i = 0; i < np; i++) {  // Q(W s) / s - W, its output error
            int64_t out = m->layers[0].w[ps[i]].shape[0];
            const float *w = wf[ps[i]];
            for (int64_t r = 0; r < out; r++) {
                float *dr = K->dw + r * in;
                for (int64_t k = 0; k < in; k++) dr[k] = w[r * in + k] * cand[k];
                lf__awq_fake(dr, dr, in, g);
                for (int64_t k = 0; k < in; k++) dr[k] = dr[k] / cand[k] - w[r * in + k];
            }
            loss += lf__calib_sq(K, gi, out);
        }
        if (loss < best) best = loss, memcpy(s, cand, (size_t)in * sizeof(float));
    }
    if (!(best < INFINITY))
        for (int64_t k = 0; k < in; k++) s[k] = 1;
}

// AWQ's clipping search on wf [out, in] (scaled by s): per (row, group) the range
// max|w| (1 - i/20), i < 10, whose fake-quantized group has the least output error over the
// calibration tokens (inputs x / s: H[a][b] / (s_a s_b)); w is clamped to it.
static void lf__awq_clip(lf__calib *K, int gi, float *wf, int64_t out, int64_t in, const float *s, int g) {
    const float *H = K->H[gi];
    float *t = K->t, *q = K->t + g, *d = K->t + 2 * g;
    for (int64_t r = 0; r < out; r++)
        for (int64_t k0 = 0; k0 < in; k0 += g) {
            float *w = wf + r * in + k0, mx = 0, best_mx = 0;
            double best = INFINITY;
            for (int k = 0; k < g; k++) mx = LF__MAX(mx, fabsf(w[k]));
            for (int i = 0; i < 10; i++) {
                float lim = mx * (1.0f - (float)i / 20.0f);
                for (int k = 0; k < g; k++) t[k] = LF__MIN(LF__MAX(w[k], -lim), lim);
                lf__awq_fake(q, t, g, g);
                for (int k = 0; k < g; k++) d[k] = (q[k] - w[k]) / s[k0 + k];
                double err = 0;
                for (int a = 0; a < g; a++) {
                    const float *hr = H + (k0 + a) * in + k0;
                    float acc = 0;
                    for (int b = 0; b < g; b++) acc += hr[b] * d[b];
                    err += (double)acc * d[a];
                }
                if (err < best) best = err, best_mx = lim;
            }
            for (int k = 0; k < g; k++) w[k] = LF__MIN(LF__MAX(w[k], -best_mx), best_mx);
        }
}

// Layer l of an AWQ run: scales searched and moved into the norms and the previous projections,
// ranges clipped, then AWQ's round-to-nearest. s[gi] gets each input group's scales.
static lf_status lf__awq_layer(lf__calib *K, int l, float **wf, float **s, lf_qtensor *q, double *err) {
    lf_model *m = K->m;
    lf_layer *ly = &m->layers[l];
    int64_t C = m->cfg.C, HQ = (int64_t)m->cfg.NH * m->cfg.HS;
    int gq = K->d->q.blocksize;  // -1: one group per row
    static const lf_proj qkv[3] = {LF_PROJ_Q, LF_PROJ_K, LF_PROJ_V}, o[1] = {LF_PROJ_O}, gu[2] = {LF_PROJ_GATE, LF_PROJ_UP},
                         dn[1] = {LF_PROJ_DOWN};
    bool vo = ly->w[LF_PROJ_V].shape[0] == HQ;  // v's outputs are o's inputs only without GQA
    for (int gi = 0; gi < LF__IN_COUNT; gi++) {
        int64_t in = K->width[gi];
        int g = gq > 0 ? gq : (int)in;
        for (int64_t k = 0; k < in; k++) s[gi][k] = 1;
        if (gi == LF__IN_O && !vo) continue;
        const lf_proj *ps = gi == LF__IN_QKV ? qkv : gi == LF__IN_O ? o : gi == LF__IN_GATE_UP ? gu : dn;
        int np = gi == LF__IN_QKV ? 3 : gi == LF__IN_GATE_UP ? 2 : 1;
        lf__awq_search(K, gi, wf, ps, np, g, s[gi], s[LF__IN_COUNT]);
        for (int i = 0; i < np; i++)
            for (int64_t r = 0; r < ly->w[ps[i]].shape[0]; r++)
                for (int64_t k = 0; k < in; k++) wf[ps[i]][r * in + k] *= s[gi][k];
        // the previous operation divides by the scales, so the model's function is unchanged
        float *prev_norm = gi == LF__IN_QKV ? (float *)ly->attn_norm : gi == LF__IN_GATE_UP ? (float *)ly->mlp_norm : NULL;
        lf_proj prev = gi == LF__IN_O ? LF_PROJ_V : LF_PROJ_UP;
        if (prev_norm)
            for (int64_t k = 0; k < C; k++) prev_norm[k] /= s[gi][k];
        else
            for (int64_t r = 0; r < in; r++) {
                for (int64_t k = 0; k < ly->w[prev].shape[1]; k++) wf[prev][r * ly->w[prev].shape[1] + k] /= s[gi][r];
                if (ly->b[prev]) ((float *)ly->b[prev])[r] /= s[gi][r];
            }
    }
    for (int p = 0; p < LF_PROJ_COUNT; p++) {
        const lf_tensor *w = &ly->w[p];
        int gi = lf__proj_group((lf_proj)p), g = gq > 0 ? gq : (int)w->shape[1];
        float *ref = K->t + 3 * (int64_t)g;  // the scaled weight before clipping: the report's reference
        if (err) memcpy(ref, wf[p], (size_t)lf_tensor_numel(w) * sizeof(float));
        if (!K->d->no_clip && p != LF_PROJ_Q && p != LF_PROJ_K) lf__awq_clip(K, gi, wf[p], w->shape[0], w->shape[1], s[gi], g);
        lf_status st = lf__q4_quantize(&q[p], wf[p], w->shape[0], w->shape[1], g, true, true);
        if (st != LF_OK) return st;
        if (err) {  // inputs are x / s now: compare in the unscaled inputs' terms
            for (int64_t k = 0; k < w->shape[1]; k++) s[LF__IN_COUNT][k] = 1.0f / s[gi][k];
            err[p] = lf__calib_err(K, gi, ref, &q[p], s[LF__IN_COUNT]);
        }
    }
    return LF_OK;
}

static void lf__calib_free(lf__calib *K) {
    lf_kv_deinit(&K->kv);
    LF_FREE(K->hidden), LF_FREE(K->start), LF_FREE(K->xt), LF_FREE(K->mm), LF_FREE(K->dw), LF_FREE(K->e), LF_FREE(K->t);
    for (int g = 0; g < LF__IN_COUNT; g++) LF_FREE(K->cap[g]), LF_FREE(K->H[g]), LF_FREE(K->xabs[g]);
}

// Checks the samples, sizes every buffer, and fills the residual streams with the embeddings.
static lf_status lf__calib_init(lf__calib *K, lf_model *m, const lf_quant_desc *d) {
    memset(K, 0, sizeof *K);
    K->m = m, K->d = d;
    const lf_model_config *c = &m->cfg;
    int max_len = 0;
    for (int s = 0; s < d->n_samples; s++) {
        int n = d->sample_len ? d->sample_len[s] : 0;
        if (!d->samples || !d->samples[s] || n < 1 || n > m->max_tokens)
            return lf__fail(LF_ERR_ARG, "quant: calibration sample %d has %d tokens (1 to max_tokens %d)", s, n, m->max_tokens);
        for (int i = 0; i < n; i++)
            if (d->samples[s][i] < 0 || d->samples[s][i] >= c->V)
                return lf__fail(LF_ERR_ARG, "quant: calibration sample %d, token %d is id %d, outside [0, %d)", s, i,
                                d->samples[s][i], c->V);
        K->tokens += n, max_len = LF__MAX(max_len, n);
    }
    int64_t C = c->C, HQ = (int64_t)c->NH * c->HS, KV = (int64_t)c->NKV * c->HS, FF = c->FF;
    int64_t w[LF__IN_COUNT] = {C, HQ, C, FF}, maxw = LF__MAX(LF__MAX(C, HQ), FF), maxout = LF__MAX(LF__MAX(HQ, KV), LF__MAX(FF, C));
    memcpy(K->width, w, sizeof w);
    int threads = lf_pool_size(m->pool);
    lf_status st = lf_kv_init(&K->kv, m, 1, max_len);
    if (st != LF_OK) return st;
    size_t mat = (size_t)maxw * (size_t)maxout * sizeof(float);
    K->hidden = (float *)lf__alloc((size_t)K->tokens * (size_t)C * sizeof(float), "calibration residual streams");
    K->start = (int64_t *)lf__alloc((size_t)d->n_samples * sizeof(int64_t), "calibration offsets");
    K->xt = (float *)lf__alloc((size_t)maxw * (size_t)max_len * sizeof(float), "calibration inputs (transposed)");
    K->mm = lf__alloc(LF__MAX(lf__matmul_scratch(maxw, max_len, threads), lf__matmul_scratch(maxout, maxw, threads)),
                      "calibration matmul scratch");
    K->dw = (float *)lf__alloc(mat, "weight difference");
    K->e = (float *)lf__alloc(LF__MAX(mat, (size_t)maxw * sizeof(double)), "weight difference product");
    K->t = (float *)lf__alloc(mat + (size_t)maxw * 3 * sizeof(float), "quantization scratch");
    if (!K->hidden || !K->start || !K->xt || !K->mm || !K->dw || !K->e || !K->t) return LF_ERR_NOMEM;
    for (int g = 0; g < LF__IN_COUNT; g++) {
        K->cap[g] = (float *)lf__alloc((size_t)max_len * (size_t)w[g] * sizeof(float), "calibration inputs");
        K->H[g] = (float *)lf__alloc((size_t)w[g] * (size_t)w[g] * sizeof(float), "input second moments");
        if (d->method == LF_QUANT_AWQ) K->xabs[g] = (double *)lf__alloc((size_t)w[g] * sizeof(double), "awq input magnitudes");
        if (!K->cap[g] || !K->H[g] || (d->method == LF_QUANT_AWQ && !K->xabs[g])) return LF_ERR_NOMEM;
    }
    int64_t t = 0;
    for (int s = 0; s < d->n_samples; s++) {
        K->start[s] = t;
        for (int i = 0; i < d->sample_len[s]; i++, t++)
            lf_convert_to_f32(K->hidden + t * C, (const unsigned char *)m->embed.data + (size_t)d->samples[s][i] * (size_t)C *
                                                                              lf_dtype_size(m->embed.dtype), m->embed.dtype, C);
    }
    return LF_OK;
}

// Layer l of a GPTQ run: per input group (all four at once without true_sequential) a pass
// sums H, then the group's projections are quantized and take their place, so the next
// group's inputs come through them.
static lf_status lf__gptq_layer(lf__calib *K, int l, float **wf, lf_qtensor *q, double *err, double *hd) {
    lf_model *m = K->m;
    lf_layer *ly = &m->layers[l];
    lf_gptq_desc gd = K->d->gptq;
    gd.group_size = K->d->q.blocksize, gd.asym = K->d->q.asym;
    for (int stage = 0; stage < LF__IN_COUNT; stage++) {
        unsigned mask = K->d->no_true_sequential ? (stage ? 0u : 15u) : 1u << stage;
        if (!mask) break;
        lf__calib_pass(K, l, mask, false);
        for (int p = 0; p < LF_PROJ_COUNT; p++) {
            int g = lf__proj_group((lf_proj)p);
            if (!(mask >> g & 1)) continue;
            int64_t in = K->width[g], out = ly->w[p].shape[0];
            for (int64_t i = 0; i < in * in; i++) hd[i] = 2.0 * K->H[g][i] / (double)K->tokens;
            lf_status st = lf__gptq(m->pool, &q[p], wf[p], out, in, hd, &gd);
            if (st != LF_OK) return lf__wrap(st, "layer %d %s", l, lf_proj_name((lf_proj)p));
            if (err) err[p] = lf__calib_err(K, g, wf[p], &q[p], NULL);
            ly->q[p] = &q[p];
        }
    }
    return LF_OK;
}

LF_API lf_status lf_quant_model(lf_model *m, const lf_quant_desc *d, double *err) {
    if (!m || !d) return lf__fail(LF_ERR_ARG, "quant: %s is NULL", !m ? "m" : "d");
    if (m->train_ || m->qw_ || m->lora_)
        return lf__fail(LF_ERR_ARG, "quant: the model is %s", m->train_ ? "training" : m->qw_ ? "quantized already" :
                        "adapted (merge its adapters first)");
    if ((unsigned)d->method > LF_QUANT_AWQ) return lf__fail(LF_ERR_ARG, "quant: d.method %d is not RTN, GPTQ or AWQ", (int)d->method);
    const lf_model_config *c = &m->cfg;
    lf_quant_desc dd = *d;
    if (d->method != LF_QUANT_RTN) {
        if (d->q.type != LF_QTYPE_Q4) return lf__fail(LF_ERR_ARG, "quant: GPTQ and AWQ make Q4 weights (d.q.type %d)", (int)d->q.type);
        if (d->n_samples < 1) return lf__fail(LF_ERR_ARG, "quant: GPTQ and AWQ need calibration samples");
        if (d->method == LF_QUANT_AWQ) dd.q.asym = true;
    }
    if (dd.q.type == LF_QTYPE_Q4) {
        int g = dd.q.blocksize ? dd.q.blocksize : 128;
        int64_t ins[4] = {c->C, (int64_t)c->NH * c->HS, c->FF, 0};
        for (int i = 0; i < 3; i++)
            if (!lf__q4_group_ok(g == -1 ? (int)ins[i] : g, ins[i]))
                return lf__fail(LF_ERR_ARG, "quant: group size %d does not divide the projections' inputs of %lld", g, (long long)ins[i]);
        dd.q.blocksize = g;
    }
    if (err)
        for (int i = 0; i < c->L * LF_PROJ_COUNT; i++) err[i] = NAN;
    if (d->method == LF_QUANT_RTN && d->n_samples == 0) return lf_model_quantize(m, &dd.q);
    lf__calib K;
    lf_status st = lf__calib_init(&K, m, &dd);
    int64_t maxin = LF__MAX(LF__MAX(c->C, (int64_t)c->NH * c->HS), c->FF), maxel = 0;
    for (int p = 0; p < LF_PROJ_COUNT; p++) maxel = LF__MAX(maxel, lf_tensor_numel(&m->layers[0].w[p]));
    float *wf[LF_PROJ_COUNT] = {0}, *s[LF__IN_COUNT + 1] = {0};
    double *hd = NULL;
    if (st == LF_OK) {
        m->qw_ = (lf_qtensor *)lf__calloc((size_t)c->L * LF_PROJ_COUNT, sizeof(lf_qtensor), "quantized weights");
        for (int p = 0; p < LF_PROJ_COUNT && m->qw_; p++)
            if (!(wf[p] = (float *)lf__alloc((size_t)maxel * sizeof(float), "weight being quantized"))) st = LF_ERR_NOMEM;
        for (int g = 0; g <= LF__IN_COUNT && d->method == LF_QUANT_AWQ; g++)  // the last: scratch
            if (!(s[g] = (float *)lf__alloc((size_t)maxin * sizeof(float), "awq scales"))) st = LF_ERR_NOMEM;
        if (d->method == LF_QUANT_GPTQ && !(hd = (double *)lf__alloc((size_t)(maxin * maxin) * sizeof(double), "gptq hessian")))
            st = LF_ERR_NOMEM;
        if (!m->qw_) st = LF_ERR_NOMEM;
    }
    for (int l = 0; l < c->L && st == LF_OK; l++) {
        lf_qtensor *q = m->qw_ + l * LF_PROJ_COUNT;
        double *e = err ? err + l * LF_PROJ_COUNT : NULL;
        for (int p = 0; p < LF_PROJ_COUNT; p++) lf__proj_f32(m, l, (lf_proj)p, wf[p]);
        if (d->method == LF_QUANT_GPTQ) st = lf__gptq_layer(&K, l, wf, q, e, hd);
        else if (d->method == LF_QUANT_AWQ) {
            lf__calib_pass(&K, l, 15u, true);  // AWQ: the next layer's inputs from this one unquantized
            st = lf__awq_layer(&K, l, wf, s, q, e);
        } else {
            lf__calib_pass(&K, l, 15u, false);
            for (int p = 0; p < LF_PROJ_COUNT && st == LF_OK; p++) {
                const lf_tensor *w = &m->layers[l].w[p];
                if ((st = lf_qtensor_quantize(&q[p], wf[p], w->shape[0], w->shape[1], &dd.q)) == LF_OK && e)
                    e[p] = lf__calib_err(&K, lf__proj_group((lf_proj)p), wf[p], &q[p], NULL);
            }
        }
        if (st != LF_OK) break;
        for (int p = 0; p < LF_PROJ_COUNT; p++) lf__proj_quantized(m, l, (lf_proj)p, &q[p]);
        if (d->method != LF_QUANT_AWQ) lf__calib_pass(&K, l, 0, true);
        if (d->progress && d->progress(d->user, l + 1, c->L)) st = lf__fail(LF_ERR_CANCELLED, "quant: cancelled after layer %d", l);
    }
    lf__calib_free(&K);
    for (int p = 0; p < LF_PROJ_COUNT; p++) LF_FREE(wf[p]);
    for (int g = 0; g <= LF__IN_COUNT; g++) LF_FREE(s[g]);
    LF_FREE(hd);
    return st == LF_OK ? st : lf__wrap(st, "quant (the model is unusable now; close it)");
}

#ifndef LF_NO_STDIO
// -- 11.3 quantized checkpoints
//
// ON THE LAYOUTS: a quantized projection <prefix> = "model.layers.N.self_attn.q_proj" is stored
//  - LargeForge's (metadata format "largeforge-quant", format_version "1", quant_type): <prefix>.qweight
//    as held in memory (Q4: U8 [out, in / 2]; Q8_0, Q4_0: U8 [out, in / 32 * block bytes]; int8:
//    I8 [out, in]; NF4: U8 [ceil(out * in / 2)]), its scales (Q4: <prefix>.scales F16 [out, groups]
//    and <prefix>.qzeros U8 [out, groups], <prefix>.g_idx I32 [in] under act order; int8:
//    <prefix>.scales F32 [out]; NF4: <prefix>.absmax F32 [blocks], double quantization undone)
//  - GPTQ's (auto_gptq v1, as transformers/optimum and vLLM read it): qweight I32 [in / 8, out],
//    value k of a word in bits 4k..4k+3 along the input dimension; qzeros I32 [groups, out / 8]
//    holding zero - 1 along the output dimension; scales F16 [groups, out]; g_idx I32 [in]
//  - AWQ's GEMM: qweight I32 [in, out / 8] with output 8j + {0,2,4,6,1,3,5,7}[k] of word j in
//    bits 4k; qzeros I32 [groups, out / 8] in the same order; scales F16 [groups, out]
// Both foreign layouts dequantize to exactly our Q4 weights (tests/ref/read_quant.py reads them
// independently). GPTQ's v1 zero - 1 cannot hold a zero of 0, so such a weight (asymmetric
// groups with no negative value) is refused for that layout.

static lf_status lf__qsave_add(lf__saver *w, void *owned, const void *data, lf_dtype dt, int ndim, int64_t d0, int64_t d1,
                               const char *prefix, const char *suffix) {
    if (!data) return LF_ERR_NOMEM;
    lf_st_entry *e = &w->e[w->n];
    snprintf(w->names[w->n], sizeof w->names[0], "%s%s", prefix, suffix);
    e->name = w->names[w->n], e->dtype = dt, e->ndim = ndim, e->shape[0] = d0, e->shape[1] = d1, e->data = data;
    w->owned[w->n++] = owned;
    return LF_OK;
}

static lf_status lf__qsave(lf__saver *w, const lf_qtensor *q, const char *prefix, int layout) {
    int64_t R = q->rows, K = q->cols, n = R * K;
    if (layout == LF_QLAYOUT_LARGEFORGE) {
        lf_status s;
        if (q->type == LF_QTYPE_INT8) {
            if ((s = lf__qsave_add(w, NULL, q->q, LF_DTYPE_I8, 2, R, K, prefix, ".qweight")) != LF_OK) return s;
            return lf__qsave_add(w, NULL, q->absmax, LF_DTYPE_F32, 1, R, 0, prefix, ".scales");
        }
        if (q->type == LF_QTYPE_Q8_0 || q->type == LF_QTYPE_Q4_0)
            return lf__qsave_add(w, NULL, q->q, LF_DTYPE_U8, 2, R, K / 32 * (q->type == LF_QTYPE_Q8_0 ? LF_Q8_0_BYTES : LF_Q4_0_BYTES),
                                 prefix, ".qweight");
        if (q->type == LF_QTYPE_NF4) {
            int64_t nb = (n + q->blocksize - 1) / q->blocksize;
            float *am = (float *)lf__alloc((size_t)nb * sizeof(float), "nf4 absmax");
            for (int64_t b = 0; am && b < nb; b++) am[b] = lf__nf4_scale(q, b);
            if ((s = lf__qsave_add(w, NULL, q->q, LF_DTYPE_U8, 1, (n + 1) / 2, 0, prefix, ".qweight")) != LF_OK) return LF_FREE(am), s;
            return lf__qsave_add(w, am, am, LF_DTYPE_F32, 1, nb, 0, prefix, ".absmax");
        }
        int64_t G = K / q->blocksize;
        uint16_t *sc = (uint16_t *)lf__alloc((size_t)(R * G) * 2, "q4 scales");
        for (int64_t i = 0; sc && i < R * G; i++) sc[i] = lf_f32_to_f16(q->absmax[i]);
        if ((s = lf__qsave_add(w, NULL, q->q, LF_DTYPE_U8, 2, R, K / 2, prefix, ".qweight")) != LF_OK ||
            (s = lf__qsave_add(w, sc, sc, LF_DTYPE_F16, 2, R, G, prefix, ".scales")) != LF_OK ||
            (s = lf__qsave_add(w, NULL, q->zeros, LF_DTYPE_U8, 2, R, G, prefix, ".qzeros")) != LF_OK)
            return s;
        return q->g_idx ? lf__qsave_add(w, NULL, q->g_idx, LF_DTYPE_I32, 1, K, 0, prefix, ".g_idx") : LF_OK;
    }
    if (q->type != LF_QTYPE_Q4)
        return lf__fail(LF_ERR_ARG, "quant save: %s is not Q4: only Q4 weights go to the %s layout", prefix,
                        layout == LF_QLAYOUT_GPTQ ? "GPTQ" : "AWQ");
    if (R % 8 || K % 8) return lf__fail(LF_ERR_ARG, "quant save: %s [%lld, %lld]: both sides must be multiples of 8", prefix, (long long)R, (long long)K);
    if (layout == LF_QLAYOUT_AWQ && q->g_idx) return lf__fail(LF_ERR_ARG, "quant save: %s has an act order (g_idx), which AWQ's layout cannot hold", prefix);
    int64_t G = K / q->blocksize;
    bool gptq = layout == LF_QLAYOUT_GPTQ;
    static const int awq_slot[8] = {0, 4, 1, 5, 2, 6, 3, 7};  // output 8j + r sits in slot awq_slot[r] (the order's inverse)
    uint32_t *qw = (uint32_t *)lf__calloc((size_t)n / 8, 4, "packed weight"), *qz = (uint32_t *)lf__calloc((size_t)(G * R) / 8, 4, "packed zeros");
    uint16_t *sc = (uint16_t *)lf__alloc((size_t)(G * R) * 2, "scales");
    int32_t *gi = gptq ? (int32_t *)lf__alloc((size_t)K * 4, "g_idx") : NULL;
    lf_status s = qw && qz && sc && (gi || !gptq) ? LF_OK : LF_ERR_NOMEM;
    for (int64_t o = 0; s == LF_OK && o < R; o++) {
        for (int64_t i = 0; i < K; i++) {
            uint32_t c = q->q[(o * K + i) / 2] >> ((o * K + i) & 1 ? 4 : 0) & 15;
            if (gptq) qw[(i / 8) * R + o] |= c << (4 * (i % 8));
            else qw[i * (R / 8) + o / 8] |= c << (4 * awq_slot[o % 8]);
        }
        for (int64_t g = 0; g < G; g++) {
            int z = q->zeros[o * G + g];
            sc[g * R + o] = lf_f32_to_f16(q->absmax[o * G + g]);
            if (gptq && z == 0) {
                s = lf__fail(LF_ERR_ARG, "quant save: %s row %lld group %lld has zero point 0, which GPTQ's v1 layout (zero - 1) "
                             "cannot store; quantize symmetrically for this layout", prefix, (long long)o, (long long)g);
                break;
            }
            qz[g * (R / 8) + o / 8] |= (uint32_t)(gptq ? z - 1 : z) << (4 * (gptq ? o % 8 : awq_slot[o % 8]));
        }
    }
    if (s == LF_OK && gptq)
        for (int64_t i = 0; i < K; i++) gi[i] = q->g_idx ? q->g_idx[i] : (int32_t)(i / q->blocksize);
    if (s == LF_OK) s = lf__qsave_add(w, qw, qw, LF_DTYPE_I32, 2, gptq ? K / 8 : K, gptq ? R : R / 8, prefix, ".qweight");
    else LF_FREE(qw);
    if (s == LF_OK) s = lf__qsave_add(w, qz, qz, LF_DTYPE_I32, 2, G, R / 8, prefix, ".qzeros");
    else LF_FREE(qz);
    if (s == LF_OK) s = lf__qsave_add(w, sc, sc, LF_DTYPE_F16, 2, G, R, prefix, ".scales");
    else LF_FREE(sc);
    if (s == LF_OK && gptq) s = lf__qsave_add(w, gi, gi, LF_DTYPE_I32, 1, K, 0, prefix, ".g_idx");
    else LF_FREE(gi);
    return s;
}

LF_API lf_status lf_quant_save(const lf_model *m, const char *dir, lf_quant_layout layout, const lf_quant_desc *d) {
    if (!m || !dir) return lf__fail(LF_ERR_ARG, "quant save: %s is NULL", !m ? "m" : "dir");
    if (!m->qw_ || !m->layers[0].q[0]) return lf__fail(LF_ERR_ARG, "quant save: the model is not quantized");
    if ((unsigned)layout > LF_QLAYOUT_AWQ) return lf__fail(LF_ERR_ARG, "quant save: layout %d", (int)layout);
    static const char *methods[] = {"rtn", "gptq", "awq"};
    const lf_qtensor *q = m->layers[0].q[0];
    int bits = q->type == LF_QTYPE_INT8 || q->type == LF_QTYPE_Q8_0 ? 8 : 4;
    int g = q->type == LF_QTYPE_Q4 && q->blocksize == q->cols ? -1 : q->blocksize;
    bool sym = true, act = q->g_idx != NULL;
    for (int64_t i = 0; q->zeros && i < q->rows * (q->cols / q->blocksize); i++) sym &= q->zeros[i] == 8;
    char qc[512], gs[16];
    const char *method = d ? methods[LF__MIN((unsigned)d->method, 2u)] : "rtn";
    if (layout == LF_QLAYOUT_GPTQ)
        snprintf(qc, sizeof qc, "{\"quant_method\": \"gptq\", \"bits\": 4, \"group_size\": %d, \"desc_act\": %s, \"sym\": %s, "
                 "\"damp_percent\": %g, \"true_sequential\": %s, \"static_groups\": false, \"checkpoint_format\": \"gptq\"}",
                 g, act ? "true" : "false", sym ? "true" : "false", d && d->gptq.damp_percent ? d->gptq.damp_percent : 0.01,
                 d && d->no_true_sequential ? "false" : "true");
    else if (layout == LF_QLAYOUT_AWQ)
        snprintf(qc, sizeof qc, "{\"quant_method\": \"awq\", \"bits\": 4, \"group_size\": %d, \"zero_point\": true, "
                 "\"version\": \"gemm\", \"modules_to_not_convert\": null}", g);
    else
        snprintf(qc, sizeof qc, "{\"quant_method\": \"largeforge\", \"format_version\": 1, \"quant_type\": \"%s\", \"bits\": %d, "
                 "\"group_size\": %d, \"sym\": %s, \"desc_act\": %s, \"method\": \"%s\"}", lf_qtype_name(q->type), bits, g,
                 sym ? "true" : "false", act ? "true" : "false", method);
    snprintf(gs, sizeof gs, "%d", g);
    const char *meta[] = {"format", layout == LF_QLAYOUT_LARGEFORGE ? "largeforge-quant" : "pt", "format_version", "1",
                          "quant_type", lf_qtype_name(q->type), "group_size", gs, "method", method};
    return lf__model_write(m, dir, LF_DTYPE_INVALID, lf__qsave, (int)layout, meta, layout == LF_QLAYOUT_LARGEFORGE ? 5 : 1, qc);
}
#endif

#ifndef LF_NO_STDIO
// -- 11.4 GGUF export

// GGUF value types and the ggml tensor types we write (gguf.h, ggml.h); llama.cpp's token types
// (llama_token_type).
enum { LF__GGUF_U32 = 4, LF__GGUF_I32 = 5, LF__GGUF_F32 = 6, LF__GGUF_BOOL = 7, LF__GGUF_STR = 8, LF__GGUF_ARR = 9 };
enum { LF__GGML_F32 = 0, LF__GGML_F16 = 1, LF__GGML_Q4_0 = 2, LF__GGML_Q8_0 = 8, LF__GGML_BF16 = 30 };
enum { LF__TT_NORMAL = 1, LF__TT_CONTROL = 3, LF__TT_USER = 4, LF__TT_UNUSED = 5, LF__TT_BYTE = 6 };
#define LF__GGUF_ALIGN 32

// The key-value section, built in memory: it is small next to the tensors.
typedef struct lf__gguf_kv {
    lf__buf b;
    uint64_t n;
} lf__gguf_kv;

static void lf__gguf_u32(lf__buf *b, uint32_t v) {
    unsigned char p[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16), (unsigned char)(v >> 24)};
    lf__buf_put(b, p, 4);
}
static void lf__gguf_u64(lf__buf *b, uint64_t v) {
    unsigned char p[8];
    lf__put_u64(p, v);
    lf__buf_put(b, p, 8);
}
static void lf__gguf_f32v(lf__buf *b, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    lf__gguf_u32(b, u);
}
static void lf__gguf_strv(lf__buf *b, const char *s, size_t n) {
    lf__gguf_u64(b, n);
    lf__buf_put(b, s, n);
}
static void lf__gguf_key(lf__gguf_kv *g, const char *key, uint32_t type) {
    lf__gguf_strv(&g->b, key, strlen(key));
    lf__gguf_u32(&g->b, type);
    g->n++;
}
static void lf__gguf_kv_str(lf__gguf_kv *g, const char *key, const char *s, size_t n) {
    lf__gguf_key(g, key, LF__GGUF_STR);
    lf__gguf_strv(&g->b, s, n);
}
static void lf__gguf_kv_u32(lf__gguf_kv *g, const char *key, uint32_t v) {
    lf__gguf_key(g, key, LF__GGUF_U32);
    lf__gguf_u32(&g->b, v);
}
static void lf__gguf_kv_i32(lf__gguf_kv *g, const char *key, int32_t v) {
    lf__gguf_key(g, key, LF__GGUF_I32);
    lf__gguf_u32(&g->b, (uint32_t)v);
}
static void lf__gguf_kv_f32(lf__gguf_kv *g, const char *key, float v) {
    lf__gguf_key(g, key, LF__GGUF_F32);
    lf__gguf_f32v(&g->b, v);
}
static void lf__gguf_kv_bool(lf__gguf_kv *g, const char *key, bool v) {
    lf__gguf_key(g, key, LF__GGUF_BOOL);
    lf__buf_putc(&g->b, v ? 1 : 0);
}
// An array key; the caller appends the n items.
static void lf__gguf_kv_arr(lf__gguf_kv *g, const char *key, uint32_t item_type, uint64_t n) {
    lf__gguf_key(g, key, LF__GGUF_ARR);
    lf__gguf_u32(&g->b, item_type);
    lf__gguf_u64(&g->b, n);
}
// "<arch>.<key>"
static void lf__gguf_kv_arch_u32(lf__gguf_kv *g, const char *arch, const char *key, uint32_t v) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    lf__gguf_kv_u32(g, k, v);
}
static void lf__gguf_kv_arch_f32(lf__gguf_kv *g, const char *arch, const char *key, float v) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    lf__gguf_kv_f32(g, k, v);
}

// -- the tokenizer

// Added tokens that convert marks control although tokenizer.json does not call them special
// (TextModel.does_token_look_special).
static bool lf__gguf_looks_special(const char *s) {
    size_t n = strlen(s);
    static const char *const exact[] = {"<pad>", "<mask>", "<2mass>", "[@BOS@]"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, exact[i]) == 0) return true;
    if (n >= 4 && !strncmp(s, "<|", 2) && !strcmp(s + n - 2, "|>")) return true;
    if (n >= 8 && !strncmp(s, "<\xEF\xBD\x9C", 4) && !strcmp(s + n - 4, "\xEF\xBD\x9C>")) return true;  // <｜...｜>
    return n >= 8 && !strncmp(s, "<unused", 7) && s[n - 1] == '>';
}

// A node's "type" equals t.
static bool lf__gguf_is(const lf_node *n, const char *t) {
    const lf_node *ty = n && n->type == LF_NODE_OBJECT ? lf_node_get(n, "type") : NULL;
    return ty && ty->type == LF_NODE_STRING && strcmp(ty->str, t) == 0;
}
// A bool field with tokenizers' default when absent.
static bool lf__gguf_flag(const lf_node *n, const char *key, bool dflt) {
    const lf_node *v = lf_node_get(n, key);
    return v && v->type == LF_NODE_BOOL ? v->num != 0 : dflt;
}

// The pre-tokenizer regexes llama.cpp implements, as tokenizer.json spells them.
#define LF__RE_LLAMA3 "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define LF__RE_QWEN2 "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

// A string field equals v.
static bool lf__gguf_str_is(const lf_node *n, const char *key, const char *v) {
    const lf_node *x = lf_node_get(n, key);
    return x && x->type == LF_NODE_STRING && strcmp(x->str, v) == 0;
}

// tokenizer.ggml.model and .pre from tokenizer.json's model, normalizer and pre_tokenizer;
// *spm_prefix: SentencePiece-style with a "▁" put before the text.
static lf_status lf__gguf_tok_kind(const char *file, const lf_node *root, const char **model, const char **pre,
                                   bool *spm_prefix) {
    const lf_node *mdl = lf_node_get(root, "model"), *norm = lf__tj_get(root, "normalizer"), *pt = lf__tj_get(root, "pre_tokenizer");
    bool byte_fallback = lf__gguf_flag(mdl, "byte_fallback", false), ignore_merges = lf__gguf_flag(mdl, "ignore_merges", false);
    const lf_node *nlist = lf__gguf_is(norm, "Sequence") ? lf_node_get(norm, "normalizers") : NULL;
    int nn = nlist && nlist->type == LF_NODE_ARRAY ? nlist->n : norm ? 1 : 0;
    bool prepend = false, replace = false, other = false;  // other: a normalizer llama.cpp does not apply (NFC aside)
    for (int i = 0; i < nn; i++) {
        const lf_node *x = nlist ? &nlist->kids[i] : norm;
        if (lf__gguf_is(x, "Prepend") && lf__gguf_str_is(x, "prepend", "\xE2\x96\x81")) prepend = true;
        else if (lf__gguf_is(x, "Replace") && lf__gguf_str_is(lf_node_get(x, "pattern"), "String", " ") && lf__gguf_str_is(x, "content", "\xE2\x96\x81"))
            replace = true;
        else if (!lf__gguf_is(x, "NFC")) other = true;
    }
    bool metaspace = lf__gguf_is(pt, "Metaspace") && !lf__gguf_flag(pt, "split", true);
    if (byte_fallback && (replace || metaspace) && (!pt || metaspace) && !other) {  // llama.cpp's SentencePiece tokenizer
        const lf_node *ps = metaspace ? lf_node_get(pt, "prepend_scheme") : NULL;
        *model = "llama", *pre = "default";
        *spm_prefix = prepend || (metaspace && (ps && ps->type == LF_NODE_STRING ? strcmp(ps->str, "never") != 0
                                                                                   : lf__gguf_flag(pt, "add_prefix_space", true)));
        return LF_OK;
    }
    *model = "gpt2", *spm_prefix = false;
    if (other || prepend || replace)
        return lf__fail(LF_ERR_UNSUPPORTED, "%s: normalizer: llama.cpp's BPE tokenizer normalizes nothing (only NFC is let through)", file);
    const lf_node *plist = lf__gguf_is(pt, "Sequence") ? lf_node_get(pt, "pretokenizers") : NULL;
    const lf_node *p0 = plist && plist->type == LF_NODE_ARRAY && plist->n == 2 ? &plist->kids[0] : NULL, *p1 = p0 ? &plist->kids[1] : NULL;
    const lf_node *re = p0 ? lf_node_get(lf_node_get(p0, "pattern"), "Regex") : NULL;
    const char *rx = re && re->type == LF_NODE_STRING ? re->str : "";
    bool bl_regex = lf__gguf_is(p1, "ByteLevel") && !lf__gguf_flag(p1, "add_prefix_space", true) && lf__gguf_flag(p1, "use_regex", true);
    bool split = lf__gguf_is(p0, "Split") && !lf__gguf_flag(p0, "invert", false) && lf__gguf_str_is(p0, "behavior", "Isolated") &&
                 lf__gguf_is(p1, "ByteLevel") && !lf__gguf_flag(p1, "add_prefix_space", true) && !lf__gguf_flag(p1, "use_regex", true);
    *pre = NULL;
    if (lf__gguf_is(pt, "ByteLevel") && lf__gguf_flag(pt, "use_regex", true) && !lf__gguf_flag(pt, "add_prefix_space", true))
        *pre = ignore_merges ? NULL : "gpt-2";
    else if (split && strcmp(rx, LF__RE_LLAMA3) == 0) *pre = ignore_merges ? "llama-bpe" : "dbrx";
    else if (split && strcmp(rx, LF__RE_QWEN2) == 0) *pre = ignore_merges ? NULL : "qwen2";
    else if (lf__gguf_is(p0, "Digits") && lf__gguf_flag(p0, "individual_digits", false) && bl_regex)
        *pre = ignore_merges ? NULL : "smollm";
    if (!*pre)
        return lf__fail(LF_ERR_UNSUPPORTED, "%s: pre_tokenizer: no llama.cpp pre-tokenizer splits text this way%s (known: ByteLevel "
                        "with GPT-2's regex, Split with Llama-3's or Qwen2's regex + ByteLevel, Digits + ByteLevel; or "
                        "SentencePiece-style BPE with byte_fallback)", file, ignore_merges ? " with model.ignore_merges" : "");
    return LF_OK;
}

// The id of a tokenizer_config.json *_token (a string or {"content": ...}); -1 when absent.
static lf_status lf__gguf_special(const lf_tokenizer *t, const char *file, const lf_node *cfg, const char *key, int32_t *id) {
    const lf_node *n = lf__tj_get(cfg, key), *c = n;
    lf__tj j = {file, NULL};
    *id = -1;
    if (!n) return LF_OK;
    lf_status s = LF_OK;
    if (n->type == LF_NODE_OBJECT) s = lf__tj_str(&j, key, n, "content", true, &c);
    else if (n->type != LF_NODE_STRING) return lf__fail(LF_ERR_FORMAT, "%s: %s: must be a string or an object", file, key);
    if (s != LF_OK || !c) return s;
    if ((*id = lf_tok_find(t, c->str)) < 0) return lf__fail(LF_ERR_FORMAT, "%s: %s: '%.100s' is not a token", file, key, c->str);
    return LF_OK;
}

// What the post-processor adds around a text: *bos / *eos the id it puts first / last (-1: none);
// *known false when it says nothing (no post-processor, or one we do not read).
static lf_status lf__gguf_post(const lf_tokenizer *t, const char *file, const lf_node *pp, int32_t *bos, int32_t *eos, bool *known) {
    lf__tj j = {file, NULL};
    *bos = *eos = -1, *known = false;
    const lf_node *list = lf__gguf_is(pp, "Sequence") ? lf_node_get(pp, "processors") : NULL;
    int n = list && list->type == LF_NODE_ARRAY ? list->n : pp && pp->type == LF_NODE_OBJECT ? 1 : 0;
    for (int i = 0; i < n; i++) {
        const lf_node *p = list ? &list->kids[i] : pp, *single = lf_node_get(p, "single");
        if (lf__gguf_is(p, "ByteLevel")) *known = true;
        if (!lf__gguf_is(p, "TemplateProcessing")) continue;
        *known = true;
        if (!single || single->type != LF_NODE_ARRAY || single->n == 0)
            return lf__fail(LF_ERR_FORMAT, "%s: post_processor: TemplateProcessing.single: must be a non-empty array", file);
        for (int end = 0; end < 2; end++) {
            const lf_node *sp = lf_node_get(&single->kids[end ? single->n - 1 : 0], "SpecialToken"), *idn;
            if (!sp || single->n < 2) continue;
            lf_status s = lf__tj_str(&j, "post_processor.single[].SpecialToken", sp, "id", true, &idn);
            int32_t id = s == LF_OK && idn ? lf_tok_find(t, idn->str) : -1;
            if (s != LF_OK) return s;
            if (id < 0) return lf__fail(LF_ERR_FORMAT, "%s: post_processor: special token '%.100s' is not a token", file, idn->str);
            *(end ? eos : bos) = id;
        }
    }
    return LF_OK;
}

// The tokenizer as it goes into the file: read and checked first, then written.
typedef struct lf__gguf_vocab {
    lf_tokenizer tok;
    lf_doc tj, tc;                 // tokenizer.json, tokenizer_config.json (root NULL when absent)
    char *tj_path, *tc_path, *jinja_path, *jinja;
    size_t jinja_len;
    const char *model, *pre;       // tokenizer.ggml.model / .pre
    bool spm, spm_prefix;
    uint8_t *added;                // [V] 1 added token, 2 added and special; | 4 matched on normalized text
    float *scores;                 // [V] SentencePiece-style only
    const lf_node *merges, *tmpl;  // model.merges; tokenizer_config.json's chat_template
    int32_t bos, eos, unk, pad;    // -1: none
    bool add_bos, add_eos;
} lf__gguf_vocab;

static void lf__gguf_vocab_free(lf__gguf_vocab *v) {
    lf_tok_close(&v->tok);
    lf_doc_deinit(&v->tj), lf_doc_deinit(&v->tc);
    LF_FREE(v->added), LF_FREE(v->scores), LF_FREE(v->jinja);
    LF_FREE(v->tj_path), LF_FREE(v->tc_path), LF_FREE(v->jinja_path);
}

// A merge's two halves (lf_tok_open checked its form).
static void lf__gguf_merge(const lf_node *mg, const char **a, size_t *la, const char **b, size_t *lb) {
    if (mg->type == LF_NODE_STRING) {
        const char *sp = strchr(mg->str, ' ');
        *a = mg->str, *la = (size_t)(sp - mg->str), *b = sp + 1, *lb = mg->len - *la - 1;
    } else *a = mg->kids[0].str, *la = mg->kids[0].len, *b = mg->kids[1].str, *lb = mg->kids[1].len;
}

// Reads the tokenizer of dir for a model of vocab_size V.
static lf_status lf__gguf_vocab_read(lf__gguf_vocab *v, const lf_model *m, const char *dir) {
    const int32_t V = m->cfg.V;
    memset(v, 0, sizeof *v);
    v->bos = v->eos = v->unk = v->pad = -1;
    v->tj_path = lf_path_join(dir, "tokenizer.json"), v->tc_path = lf_path_join(dir, "tokenizer_config.json");
    v->jinja_path = lf_path_join(dir, "chat_template.jinja");
    const char *tjf = v->tj_path, *tcf = v->tc_path;
    lf_status s = tjf && tcf && v->jinja_path ? LF_OK : LF_ERR_NOMEM;
    if (s == LF_OK && !lf_path_exists(tjf))
        s = lf__fail(LF_ERR_IO, "%s: missing (the tokenizer goes into the GGUF file: pass desc.tokenizer_dir)", tjf);
    if (s == LF_OK) s = lf_tok_open(&v->tok, dir);
    if (s == LF_OK) s = lf_json_load(&v->tj, tjf);
    if (s == LF_OK && lf_path_exists(tcf)) s = lf_json_load(&v->tc, tcf);
    if (s == LF_OK && lf_path_exists(v->jinja_path)) s = lf_file_read(v->jinja_path, LF_MAX_JSON_BYTES, &v->jinja, &v->jinja_len);
    if (s == LF_OK && v->jinja && lf__utf8_check((const unsigned char *)v->jinja, v->jinja_len) != v->jinja_len)
        s = lf__fail(LF_ERR_FORMAT, "%s: invalid UTF-8", v->jinja_path);
    if (s == LF_OK && v->tok.n_vocab > V)
        s = lf__fail(LF_ERR_FORMAT, "%s: %d token ids, more than config.json's vocab_size %d", tjf, v->tok.n_vocab, V);
    const lf_node *root = v->tj.root, *cfg = v->tc.root;
    if (s == LF_OK && cfg && cfg->type != LF_NODE_OBJECT) s = lf__fail(LF_ERR_FORMAT, "%s: must be a JSON object", tcf);
    if (s == LF_OK) s = lf__gguf_tok_kind(tjf, root, &v->model, &v->pre, &v->spm_prefix);
    if (s != LF_OK) return s;
    v->spm = strcmp(v->model, "llama") == 0;
    if (!(v->added = (uint8_t *)lf__calloc((size_t)V, 1, "token types"))) return LF_ERR_NOMEM;
    const lf_node *at = lf_node_get(root, "added_tokens");
    for (int i = 0; at && at->type == LF_NODE_ARRAY && i < at->n; i++) {
        const lf_node *idn = lf_node_get(&at->kids[i], "id");  // lf_tok_open checked the entries
        if (idn && idn->type == LF_NODE_NUMBER && idn->num >= 0 && idn->num < V)
            v->added[(int32_t)idn->num] = (uint8_t)(1 + lf__gguf_flag(&at->kids[i], "special", false) +
                                                    4 * lf__gguf_flag(&at->kids[i], "normalized", true));
    }
    v->merges = lf_node_get(lf_node_get(root, "model"), "merges");
    int n_merges = v->merges && v->merges->type == LF_NODE_ARRAY ? v->merges->n : 0;
    if (v->spm) {  // a piece's score: minus the rank of the first merge that makes it
        if (!(v->scores = (float *)lf__alloc((size_t)V * sizeof(float), "token scores"))) return LF_ERR_NOMEM;
        for (int32_t i = 0; i < V; i++) v->scores[i] = v->added[i] ? -1000.0f : -(float)n_merges - 1.0f;
        char cat[2 * LF_MAX_TOKEN_BYTES + 1];
        for (int i = n_merges - 1; i >= 0; i--) {
            const char *a, *b;
            size_t la, lb;
            lf__gguf_merge(&v->merges->kids[i], &a, &la, &b, &lb);
            if (la + lb >= sizeof cat) continue;
            memcpy(cat, a, la), memcpy(cat + la, b, lb), cat[la + lb] = 0;
            int32_t id = lf_tok_find(&v->tok, cat);
            if (id >= 0 && !v->added[id]) v->scores[id] = -(float)i - 1.0f;
        }
    }
    // special ids: tokenizer_config.json, else config.json; the post-processor must agree
    lf__tj jc = {tcf, NULL}, jt = {tjf, NULL};
    if (cfg && ((s = lf__gguf_special(&v->tok, tcf, cfg, "bos_token", &v->bos)) != LF_OK ||
                (s = lf__gguf_special(&v->tok, tcf, cfg, "eos_token", &v->eos)) != LF_OK ||
                (s = lf__gguf_special(&v->tok, tcf, cfg, "unk_token", &v->unk)) != LF_OK ||
                (s = lf__gguf_special(&v->tok, tcf, cfg, "pad_token", &v->pad)) != LF_OK ||
                (s = lf__tj_bool(&jc, "", cfg, "add_bos_token", &v->add_bos)) != LF_OK ||
                (s = lf__tj_bool(&jc, "", cfg, "add_eos_token", &v->add_eos)) != LF_OK))
        return s;
    if (v->bos < 0 && m->cfg.bos_id >= 0 && m->cfg.bos_id < V) v->bos = m->cfg.bos_id;
    if (v->eos < 0 && m->cfg.n_eos > 0 && m->cfg.eos_ids[0] < V) v->eos = m->cfg.eos_ids[0];
    if (v->unk < 0) {
        const lf_node *u = NULL;
        if ((s = lf__tj_str(&jt, "model", lf_node_get(root, "model"), "unk_token", false, &u)) != LF_OK) return s;
        if (u) v->unk = lf_tok_find(&v->tok, u->str);
    }
    int32_t pp_bos, pp_eos;
    bool pp_known;
    if ((s = lf__gguf_post(&v->tok, tjf, lf_node_get(root, "post_processor"), &pp_bos, &pp_eos, &pp_known)) != LF_OK) return s;
    if (pp_known) {  // what encode(add_special_tokens=True) really adds
        bool bad_bos = pp_bos >= 0 && v->bos >= 0 && pp_bos != v->bos, bad_eos = pp_eos >= 0 && v->eos >= 0 && pp_eos != v->eos;
        if (bad_bos || bad_eos)  // llama.cpp adds the bos_token_id / eos_token_id: it cannot add another
            return lf__fail(LF_ERR_UNSUPPORTED, "%s: post_processor: adds '%s', but the %s token is '%s'", tjf,
                            lf_tok_piece(&v->tok, bad_bos ? pp_bos : pp_eos), bad_bos ? "bos" : "eos",
                            lf_tok_piece(&v->tok, bad_bos ? v->bos : v->eos));
        if (pp_bos >= 0) v->bos = pp_bos;
        if (pp_eos >= 0) v->eos = pp_eos;
        v->add_bos = pp_bos >= 0, v->add_eos = pp_eos >= 0;
    }
    v->tmpl = cfg ? lf_node_get(cfg, "chat_template") : NULL;
    if (v->tmpl && v->tmpl->type == LF_NODE_NULL) v->tmpl = NULL;
    if (v->tmpl && v->tmpl->type != LF_NODE_STRING && v->tmpl->type != LF_NODE_ARRAY)
        return lf__fail(LF_ERR_FORMAT, "%s: chat_template: must be a string or a list of {name, template}", tcf);
    for (int i = 0; v->tmpl && v->tmpl->type == LF_NODE_ARRAY && i < v->tmpl->n; i++) {
        const lf_node *nm, *tx;
        char path[32];
        snprintf(path, sizeof path, "chat_template[%d]", i);
        if ((s = lf__tj_str(&jc, path, &v->tmpl->kids[i], "name", true, &nm)) != LF_OK ||
            (s = lf__tj_str(&jc, path, &v->tmpl->kids[i], "template", true, &tx)) != LF_OK)
            return s;
        if (nm->len > 200) return lf__fail(LF_ERR_FORMAT, "%s: %s.name: over 200 bytes", tcf, path);
    }
    return LF_OK;
}

// Everything under tokenizer.*, V ids long.
static void lf__gguf_vocab_put(lf__gguf_kv *g, const lf__gguf_vocab *v, int32_t V) {
    lf__gguf_kv_str(g, "tokenizer.ggml.model", v->model, strlen(v->model));
    lf__gguf_kv_str(g, "tokenizer.ggml.pre", v->pre, strlen(v->pre));
    lf__gguf_kv_arr(g, "tokenizer.ggml.tokens", LF__GGUF_STR, (uint64_t)V);
    for (int32_t i = 0; i < V; i++) {
        const char *p = lf_tok_piece(&v->tok, i);
        char pad[32];
        if (!p) snprintf(pad, sizeof pad, "[PAD%d]", (int)i), p = pad;
        // llama.cpp matches user-defined tokens in the raw text: one HF matches in the normalized
        // text of a SentencePiece-style tokenizer gets its "▁" back as " "
        if (v->spm && v->added[i] == (1 | 4) && !lf__gguf_looks_special(p)) {
            size_t n = 0;
            for (const char *c = p; *c; n++) c += strncmp(c, "\xE2\x96\x81", 3) ? 1 : 3;
            lf__gguf_u64(&g->b, n);
            for (const char *c = p; *c;)
                if (strncmp(c, "\xE2\x96\x81", 3)) lf__buf_putc(&g->b, *c++);
                else lf__buf_putc(&g->b, ' '), c += 3;
        } else lf__gguf_strv(&g->b, p, strlen(p));
    }
    lf__gguf_kv_arr(g, "tokenizer.ggml.token_type", LF__GGUF_I32, (uint64_t)V);
    for (int32_t i = 0; i < V; i++) {
        const char *p = lf_tok_piece(&v->tok, i);
        bool byte = v->spm && p && strlen(p) == 6 && !strncmp(p, "<0x", 3) && lf__hexval(p[3]) >= 0 && lf__hexval(p[4]) >= 0 && p[5] == '>';
        int type = !p ? LF__TT_UNUSED
                 : (v->added[i] & 3) == 2 || (v->added[i] && lf__gguf_looks_special(p)) ? LF__TT_CONTROL
                 : v->added[i] ? LF__TT_USER
                 : byte ? LF__TT_BYTE : LF__TT_NORMAL;
        lf__gguf_u32(&g->b, (uint32_t)type);
    }
    if (v->spm) {
        lf__gguf_kv_arr(g, "tokenizer.ggml.scores", LF__GGUF_F32, (uint64_t)V);
        for (int32_t i = 0; i < V; i++) lf__gguf_f32v(&g->b, v->scores[i]);
        lf__gguf_kv_bool(g, "tokenizer.ggml.add_space_prefix", v->spm_prefix);
    } else {  // "a b"; a [a, b] pair with spaces in it gets them as U+0120, as gguf-py writes it
        int n_merges = v->merges && v->merges->type == LF_NODE_ARRAY ? v->merges->n : 0;
        lf__gguf_kv_arr(g, "tokenizer.ggml.merges", LF__GGUF_STR, (uint64_t)n_merges);
        for (int i = 0; i < n_merges; i++) {
            const char *h[2];
            size_t hl[2], n = 1;
            lf__gguf_merge(&v->merges->kids[i], &h[0], &hl[0], &h[1], &hl[1]);
            for (int k = 0; k < 2; k++)
                for (size_t c = 0; c < hl[k]; c++) n += h[k][c] == ' ' ? 2 : 1;
            lf__gguf_u64(&g->b, n);
            for (int k = 0; k < 2; k++) {
                if (k) lf__buf_putc(&g->b, ' ');
                for (size_t c = 0; c < hl[k]; c++)
                    if (h[k][c] == ' ') lf__buf_put(&g->b, "\xC4\xA0", 2);
                    else lf__buf_putc(&g->b, h[k][c]);
            }
        }
    }
    if (v->bos >= 0) lf__gguf_kv_u32(g, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos);
    if (v->eos >= 0) lf__gguf_kv_u32(g, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos);
    if (v->unk >= 0) lf__gguf_kv_u32(g, "tokenizer.ggml.unknown_token_id", (uint32_t)v->unk);
    if (v->pad >= 0) lf__gguf_kv_u32(g, "tokenizer.ggml.padding_token_id", (uint32_t)v->pad);
    lf__gguf_kv_bool(g, "tokenizer.ggml.add_bos_token", v->add_bos);
    lf__gguf_kv_bool(g, "tokenizer.ggml.add_eos_token", v->add_eos);
    const lf_node *t = v->tmpl;
    if (t && t->type == LF_NODE_STRING) lf__gguf_kv_str(g, "tokenizer.chat_template", t->str, t->len);
    for (int i = 0; t && t->type == LF_NODE_ARRAY && i < t->n; i++) {  // "default" and named ones, as gguf-py
        const lf_node *nm = lf_node_get(&t->kids[i], "name"), *tx = lf_node_get(&t->kids[i], "template");
        char key[256];
        if (strcmp(nm->str, "default") == 0) snprintf(key, sizeof key, "tokenizer.chat_template");
        else snprintf(key, sizeof key, "tokenizer.chat_template.%s", nm->str);
        lf__gguf_kv_str(g, key, tx->str, tx->len);
    }
    if (!t && v->jinja) lf__gguf_kv_str(g, "tokenizer.chat_template", v->jinja, v->jinja_len);
}

// -- the tensors

// One tensor of the file: where its values come from and how they are stored.
typedef struct lf__gguf_t {
    char name[64];
    int ggml;                 // LF__GGML_*
    bool vec;                 // 1-d [rows * cols]
    int64_t rows, cols;       // [rows, cols]; GGUF ne = {cols, rows}
    const lf_tensor *w;       // values: a weight view (F32, BF16, F16),
    const lf_qtensor *q;      // a quantized weight,
    const float *f;           // or f32 values
    int64_t head_rows;        // > 0: llama's rotary row order within groups of this many rows
    uint64_t off, bytes;      // in the data section
} lf__gguf_t;

static uint64_t lf__gguf_nbytes(int ggml, uint64_t n) {
    switch (ggml) {
    case LF__GGML_F32: return 4 * n;
    case LF__GGML_Q8_0: return n / 32 * LF_Q8_0_BYTES;
    case LF__GGML_Q4_0: return n / 32 * LF_Q4_0_BYTES;
    default: return 2 * n;  // F16, BF16
    }
}
static lf_qtype lf__gguf_qtype(int ggml) {
    return ggml == LF__GGML_Q8_0 ? LF_QTYPE_Q8_0 : ggml == LF__GGML_Q4_0 ? LF_QTYPE_Q4_0 : LF_QTYPE_NONE;
}

// convert's LlamaModel.permute on rows of `row` bytes: within each group of h rows (a head),
// row 2i + j comes from row j * h/2 + i.
static void lf__gguf_permute(unsigned char *dst, const unsigned char *src, int64_t rows, size_t row, int64_t h) {
    for (int64_t g = 0; g < rows; g += h)
        for (int64_t i = 0; i < h / 2; i++)
            for (int64_t j = 0; j < 2; j++)
                memcpy(dst + (size_t)(g + 2 * i + j) * row, src + (size_t)(g + j * (h / 2) + i) * row, row);
}

// n f32 values into ggml type `ggml`.
static lf_status lf__gguf_encode(int ggml, unsigned char *dst, const float *src, int64_t n) {
    switch (ggml) {
    case LF__GGML_F32: memcpy(dst, src, (size_t)n * 4); return LF_OK;
    case LF__GGML_F16:
    case LF__GGML_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = ggml == LF__GGML_F16 ? lf_f32_to_f16(src[i]) : lf_f32_to_bf16(src[i]);
            dst[2 * i] = (unsigned char)h, dst[2 * i + 1] = (unsigned char)(h >> 8);
        }
        return LF_OK;
    default: return lf_ggml_quantize(lf__gguf_qtype(ggml), dst, src, n);
    }
}

// Scratch for lf__gguf_emit: a chunk of rows in f32 twice (read, reordered) and encoded.
typedef struct lf__gguf_scratch {
    float *a, *b;        // [chunk] values
    unsigned char *out;  // [chunk * 4] bytes
} lf__gguf_scratch;

#define LF__GGUF_CHUNK ((int64_t)1 << 20)  // f32 values converted at a time

// Rows per chunk: whole head groups, about LF__GGUF_CHUNK values.
static int64_t lf__gguf_chunk_rows(const lf__gguf_t *t) {
    int64_t g = t->head_rows > 0 ? t->head_rows : 1, r = LF__MAX(g, LF__GGUF_CHUNK / LF__MAX(t->cols, 1) / g * g);
    return LF__MIN(r, t->rows);
}

// Streams t's data into f.
static lf_status lf__gguf_emit(lf__afile *f, const lf__gguf_t *t, lf__gguf_scratch *sc) {
    const lf_qtensor *q = t->q;
    float *full = NULL;  // a quantized weight going into another type: its f32 values
    const void *src = t->f;
    lf_dtype dt = LF_DTYPE_F32;
    lf_status s = LF_OK;
    if (t->w) src = t->w->data, dt = t->w->dtype;
    bool raw = q && q->type == lf__gguf_qtype(t->ggml);  // the same blocks: copied as they are
    if (q && !raw) {
        if (!(full = (float *)lf__alloc((size_t)(t->rows * t->cols) * sizeof(float), "dequantized weight"))) return LF_ERR_NOMEM;
        if ((s = lf_qtensor_dequantize(q, full)) != LF_OK) return LF_FREE(full), s;
        src = full;
    }
    size_t esz = lf_dtype_size(dt), qrow = (size_t)lf__gguf_nbytes(t->ggml, (uint64_t)t->cols);
    int64_t step = lf__gguf_chunk_rows(t);
    for (int64_t r0 = 0; r0 < t->rows && s == LF_OK; r0 += step) {
        int64_t n = LF__MIN(step, t->rows - r0), k = n * t->cols;
        if (raw) {  // rows of qrow bytes
            const unsigned char *rows = q->q + (size_t)r0 * qrow;
            if (t->head_rows > 0) lf__gguf_permute(sc->out, rows, n, qrow, t->head_rows), rows = sc->out;
            s = lf__afile_write(f, rows, (size_t)n * qrow);
            continue;
        }
        const unsigned char *in = (const unsigned char *)src + (size_t)(r0 * t->cols) * esz;
        float *x = sc->a;
        if ((s = lf_convert_to_f32(x, in, dt, k)) != LF_OK) break;
        if (t->head_rows > 0)
            lf__gguf_permute((unsigned char *)sc->b, (const unsigned char *)x, n, (size_t)t->cols * 4, t->head_rows), x = sc->b;
        if ((s = lf__gguf_encode(t->ggml, sc->out, x, k)) == LF_OK) s = lf__afile_write(f, sc->out, (size_t)lf__gguf_nbytes(t->ggml, (uint64_t)k));
    }
    LF_FREE(full);
    return s == LF_OK ? s : lf__wrap(s, "tensor %s", t->name);
}

// Writes header, key-values and tensors [n] (offsets set here) to path.
static lf_status lf__gguf_file(const char *path, lf__gguf_kv *g, lf__gguf_t *ts, int n) {
    lf__buf info = LF__ZERO;
    uint64_t off = 0;
    size_t most = 1;
    for (int i = 0; i < n; i++) {
        lf__gguf_t *t = &ts[i];
        t->off = off, t->bytes = lf__gguf_nbytes(t->ggml, (uint64_t)(t->rows * t->cols));
        off += (t->bytes + LF__GGUF_ALIGN - 1) / LF__GGUF_ALIGN * LF__GGUF_ALIGN;
        most = LF__MAX(most, (size_t)(lf__gguf_chunk_rows(t) * t->cols));
        lf__gguf_strv(&info, t->name, strlen(t->name));
        lf__gguf_u32(&info, t->vec ? 1 : 2);
        lf__gguf_u64(&info, (uint64_t)(t->vec ? t->rows * t->cols : t->cols));
        if (!t->vec) lf__gguf_u64(&info, (uint64_t)t->rows);
        lf__gguf_u32(&info, (uint32_t)t->ggml);
        lf__gguf_u64(&info, t->off);
    }
    lf__gguf_scratch sc;
    sc.a = (float *)lf__alloc(most * sizeof(float), "conversion scratch");
    sc.b = sc.a ? (float *)lf__alloc(most * sizeof(float), "conversion scratch") : NULL;
    sc.out = sc.b ? (unsigned char *)lf__alloc(most * sizeof(float), "conversion scratch") : NULL;
    lf__afile f;
    lf_status s = info.failed || g->b.failed || !sc.out ? LF_ERR_NOMEM : lf__afile_open(&f, path, (size_t)1 << 20);
    if (s == LF_OK) {
        unsigned char head[24] = {'G', 'G', 'U', 'F', 3, 0, 0, 0};  // magic, version 3
        lf__put_u64(head + 8, (uint64_t)n);
        lf__put_u64(head + 16, g->n);
        if ((s = lf__afile_write(&f, head, sizeof head)) == LF_OK && (s = lf__afile_write(&f, g->b.data, g->b.len)) == LF_OK &&
            (s = lf__afile_write(&f, info.data, info.len)) == LF_OK)
            s = lf__afile_pad(&f, LF__GGUF_ALIGN);
        for (int i = 0; i < n && s == LF_OK; i++)
            if ((s = lf__gguf_emit(&f, &ts[i], &sc)) == LF_OK) s = lf__afile_pad(&f, LF__GGUF_ALIGN);
        s = s == LF_OK ? lf__afile_commit(&f, path) : (lf__afile_abort(&f), s);
    }
    LF_FREE(info.data), LF_FREE(sc.a), LF_FREE(sc.b), LF_FREE(sc.out);
    return s;
}

// The next entry of ts, named.
static LF__PRINTF(3, 4) lf__gguf_t *lf__gguf_add(lf__gguf_t *ts, int *n, const char *fmt, ...) {
    lf__gguf_t *t = &ts[(*n)++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    return t;
}

static const char *const lf__gguf_proj[LF_PROJ_COUNT] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};

// general.* shared by models and adapters.
static lf_status lf__gguf_general(lf__gguf_kv *g, const lf_model *m, const lf_gguf_desc *d, const char *arch, const char *type) {
    lf__gguf_kv_str(g, "general.architecture", arch, strlen(arch));
    lf__gguf_kv_str(g, "general.type", type, strlen(type));
    const char *name = d->name;
    size_t n = name ? strlen(name) : 0;
    if (!name) {  // the directory's last component
        const char *dir = m->dir ? m->dir : "model";
        size_t e = strlen(dir);
        while (e > 1 && dir[e - 1] == '/') e--;
        size_t b = e;
        while (b > 0 && dir[b - 1] != '/') b--;
        name = dir + b, n = e - b;
    }
    if (lf__utf8_check((const unsigned char *)name, n) != n)
        return lf__fail(LF_ERR_ARG, "general.name '%.*s' is not valid UTF-8 (set desc.name)", (int)LF__MIN(n, 200), name);
    lf__gguf_kv_str(g, "general.name", name, n);
    return LF_OK;
}

// general.sampling.* from the model's generation_config.json, as gguf-py's Metadata reads it:
// llama.cpp takes them as the default sampling settings.
static lf_status lf__gguf_sampling(lf__gguf_kv *g, const char *dir) {
    static const char *const from[] = {"top_k", "top_p", "min_p", "temperature", "repetition_penalty"};
    static const char *const to[] = {"general.sampling.top_k", "general.sampling.top_p", "general.sampling.min_p",
                                     "general.sampling.temp", "general.sampling.penalty_repeat"};
    char *path = lf_path_join(dir, "generation_config.json");
    lf_doc doc = LF__ZERO;
    lf_status s = !path ? LF_ERR_NOMEM : lf_path_exists(path) ? lf_json_load(&doc, path) : LF_OK;
    if (s == LF_OK && doc.root && doc.root->type != LF_NODE_OBJECT) s = lf__fail(LF_ERR_FORMAT, "%s: must be a JSON object", path);
    for (int i = 0; s == LF_OK && doc.root && i < 5; i++) {
        int64_t k = -1;
        double v = NAN;
        if (i == 0 && (s = lf_cfg_int(&doc, doc.root, from[i], false, 0, INT32_MAX, &k)) == LF_OK && k >= 0) lf__gguf_kv_i32(g, to[i], (int32_t)k);
        if (i > 0 && (s = lf_cfg_num(&doc, doc.root, from[i], false, &v)) == LF_OK && v == v) lf__gguf_kv_f32(g, to[i], (float)v);
    }
    lf_doc_deinit(&doc);
    LF_FREE(path);
    return s;
}

static lf_status lf__gguf_check(const lf_model *m, const char *path, const lf_gguf_desc *d, const char *fn) {
    if (!m || !m->layers || !path) return lf__fail(LF_ERR_ARG, "%s: %s", fn, !path ? "path is NULL" : "the model is NULL or closed");
    if ((unsigned)d->type > LF_GGUF_Q4_0) return lf__fail(LF_ERR_ARG, "%s: desc.type: %d is not an lf_gguf_type", fn, (int)d->type);
    return LF_OK;
}

LF_API lf_status lf_gguf_write(const lf_model *m, const char *path, const lf_gguf_desc *desc) {
    lf_gguf_desc d;
    memset(&d, 0, sizeof d);
    if (desc) d = *desc;
    lf_status s = lf__gguf_check(m, path, &d, "gguf_write");
    if (s != LF_OK) return s;
    const lf_model_config *c = &m->cfg;
    bool llama = c->arch != LF_ARCH_QWEN2;
    const char *arch = llama ? "llama" : "qwen2";
    if (!llama && (int64_t)c->NH * c->HS != c->C)
        return lf__fail(LF_ERR_UNSUPPORTED, "gguf_write: llama.cpp's qwen2 needs heads * head_dim == hidden_size (%d * %d != %d)", c->NH, c->HS, c->C);
    if (!llama && c->rope_type == LF_ROPE_LLAMA3)
        return lf__fail(LF_ERR_UNSUPPORTED, "gguf_write: llama.cpp's qwen2 has no llama3 rope scaling (rope_freqs)");
    if (!d.tokenizer_dir && !m->dir) return lf__fail(LF_ERR_ARG, "gguf_write: desc.tokenizer_dir is required (the model has no directory)");
    if (d.type == LF_GGUF_DEFAULT) d.type = m->embed.dtype == LF_DTYPE_BF16 ? LF_GGUF_BF16 : LF_GGUF_F16;
    static const int ggml_of[] = {0, LF__GGML_F32, LF__GGML_F16, LF__GGML_BF16, LF__GGML_Q8_0, LF__GGML_Q4_0};
    static const uint32_t ftype_of[] = {0, 0, 1, 32, 7, 2};  // llama_ftype: ALL_F32, MOSTLY_F16, _BF16, _Q8_0, _Q4_0
    int wt = ggml_of[d.type], et = wt == LF__GGML_Q4_0 ? LF__GGML_Q8_0 : wt;  // projections, embeddings

    // the tensor list: token_embd, [rope_freqs], blocks, output_norm, [output]
    int n = 0, cap = 4 + c->L * (2 + 2 * LF_PROJ_COUNT);
    lf__gguf_t *ts = (lf__gguf_t *)lf__calloc((size_t)cap, sizeof *ts, "GGUF tensor list");
    float *freqs = (float *)lf__alloc((size_t)(c->HS / 2) * sizeof(float), "rope factors");
    lf__gguf_kv g;
    memset(&g, 0, sizeof g);
    if (!ts || !freqs) {
        LF_FREE(ts), LF_FREE(freqs);
        return LF_ERR_NOMEM;
    }
    lf__gguf_t *t = lf__gguf_add(ts, &n, "token_embd.weight");
    t->w = &m->embed, t->rows = c->V, t->cols = c->C, t->ggml = et;
    if (c->rope_type == LF_ROPE_LLAMA3) {  // convert's generate_extra_tensors, in f32 as torch computes it
        float lo_wl = (float)(c->rope_original_max_pos / c->rope_low_freq_factor),
              hi_wl = (float)(c->rope_original_max_pos / c->rope_high_freq_factor);
        for (int i = 0; i < c->HS / 2; i++) {
            float f = 1.0f / powf((float)c->rope_theta, (float)(2 * i) / (float)c->HS), wl = (float)(2 * M_PI) / f;
            float smooth = ((float)c->rope_original_max_pos / wl - (float)c->rope_low_freq_factor) /
                           (float)(c->rope_high_freq_factor - c->rope_low_freq_factor);
            freqs[i] = wl < hi_wl ? 1.0f : wl > lo_wl ? (float)c->rope_factor : 1.0f / ((1.0f - smooth) / (float)c->rope_factor + smooth);
        }
        t = lf__gguf_add(ts, &n, "rope_freqs.weight");
        t->f = freqs, t->vec = true, t->rows = c->HS / 2, t->cols = 1, t->ggml = LF__GGML_F32;
    }
    for (int l = 0; l < c->L; l++) {
        const lf_layer *ly = &m->layers[l];
        t = lf__gguf_add(ts, &n, "blk.%d.attn_norm.weight", l);
        t->f = ly->attn_norm, t->vec = true, t->rows = 1, t->cols = c->C, t->ggml = LF__GGML_F32;
        for (int p = 0; p < LF_PROJ_COUNT; p++) {
            int64_t heads = !llama ? 0 : p == LF_PROJ_Q ? c->NH : p == LF_PROJ_K ? c->NKV : 0;
            t = lf__gguf_add(ts, &n, "blk.%d.%s.weight", l, lf__gguf_proj[p]);
            t->w = ly->q[p] ? NULL : &ly->w[p], t->q = ly->q[p];
            t->rows = ly->w[p].shape[0], t->cols = ly->w[p].shape[1];
            t->ggml = wt;
            t->head_rows = heads ? t->rows / heads : 0;
            if (ly->b[p]) {
                lf__gguf_t *b = lf__gguf_add(ts, &n, "blk.%d.%s.bias", l, lf__gguf_proj[p]);
                b->f = ly->b[p], b->vec = true, b->rows = t->rows, b->cols = 1, b->ggml = LF__GGML_F32, b->head_rows = t->head_rows;
            }
        }
        t = lf__gguf_add(ts, &n, "blk.%d.ffn_norm.weight", l);
        t->f = ly->mlp_norm, t->vec = true, t->rows = 1, t->cols = c->C, t->ggml = LF__GGML_F32;
    }
    t = lf__gguf_add(ts, &n, "output_norm.weight");
    t->f = m->final_norm, t->vec = true, t->rows = 1, t->cols = c->C, t->ggml = LF__GGML_F32;
    if (!c->tied) {
        t = lf__gguf_add(ts, &n, "output.weight");
        t->w = &m->lm_head, t->rows = c->V, t->cols = c->C, t->ggml = et;
    }
    for (int i = 0; i < n; i++)  // quantized rows are whole blocks of 32; else F16, as gguf-py falls back
        if (lf__gguf_qtype(ts[i].ggml) && ts[i].cols % 32) ts[i].ggml = LF__GGML_F16;

    s = lf__gguf_general(&g, m, &d, arch, "model");
    if (s == LF_OK && m->dir) s = lf__gguf_sampling(&g, m->dir);
    if (s == LF_OK) {
        lf__gguf_kv_u32(&g, "general.file_type", ftype_of[d.type]);
        lf__gguf_kv_u32(&g, "general.quantization_version", 2);
        lf__gguf_kv_arch_u32(&g, arch, "block_count", (uint32_t)c->L);
        lf__gguf_kv_arch_u32(&g, arch, "context_length", (uint32_t)c->max_pos);
        lf__gguf_kv_arch_u32(&g, arch, "embedding_length", (uint32_t)c->C);
        lf__gguf_kv_arch_u32(&g, arch, "feed_forward_length", (uint32_t)c->FF);
        lf__gguf_kv_arch_u32(&g, arch, "attention.head_count", (uint32_t)c->NH);
        lf__gguf_kv_arch_u32(&g, arch, "attention.head_count_kv", (uint32_t)c->NKV);
        lf__gguf_kv_arch_f32(&g, arch, "rope.freq_base", (float)c->rope_theta);
        lf__gguf_kv_arch_f32(&g, arch, "attention.layer_norm_rms_epsilon", c->eps);
        lf__gguf_kv_arch_u32(&g, arch, "attention.key_length", (uint32_t)c->HS);
        lf__gguf_kv_arch_u32(&g, arch, "attention.value_length", (uint32_t)c->HS);
        if (llama) {
            lf__gguf_kv_arch_u32(&g, arch, "vocab_size", (uint32_t)c->V);
            lf__gguf_kv_arch_u32(&g, arch, "rope.dimension_count", (uint32_t)c->HS);
        }
        if (c->rope_type == LF_ROPE_LINEAR) {
            char k[64];
            snprintf(k, sizeof k, "%s.rope.scaling.type", arch);
            lf__gguf_kv_str(&g, k, "linear", 6);
            lf__gguf_kv_arch_f32(&g, arch, "rope.scaling.factor", (float)c->rope_factor);
        }
        lf__gguf_vocab v;
        if ((s = lf__gguf_vocab_read(&v, m, d.tokenizer_dir ? d.tokenizer_dir : m->dir)) == LF_OK) lf__gguf_vocab_put(&g, &v, c->V);
        lf__gguf_vocab_free(&v);
    }
    if (s == LF_OK) s = lf__gguf_file(path, &g, ts, n);
    LF_FREE(g.b.data), LF_FREE(ts), LF_FREE(freqs);
    return s == LF_OK ? s : lf__wrap(s, "gguf_write %s", path);
}

LF_API lf_status lf_gguf_write_lora(const lf_model *m, const char *path, const lf_gguf_desc *desc) {
    lf_gguf_desc d;
    memset(&d, 0, sizeof d);
    if (desc) d = *desc;
    lf_status s = lf__gguf_check(m, path, &d, "gguf_write_lora");
    if (s != LF_OK) return s;
    if (!m->lora_) return lf__fail(LF_ERR_ARG, "gguf_write_lora: the model has no adapters");
    if (d.type > LF_GGUF_BF16) return lf__fail(LF_ERR_ARG, "gguf_write_lora: desc.type: adapters are written in F32, F16 or BF16");
    const lf_model_config *c = &m->cfg;
    bool llama = c->arch != LF_ARCH_QWEN2;
    const char *arch = llama ? "llama" : "qwen2";
    static const int ggml_of[] = {LF__GGML_F32, LF__GGML_F32, LF__GGML_F16, LF__GGML_BF16};
    int n = 0;
    lf__gguf_t *ts = (lf__gguf_t *)lf__calloc((size_t)c->L * LF_PROJ_COUNT * 2, sizeof *ts, "GGUF tensor list");
    if (!ts) return LF_ERR_NOMEM;
    for (int l = 0; l < c->L; l++)
        for (int p = 0; p < LF_PROJ_COUNT; p++) {
            const lf_lowrank *k = m->layers[l].lora[p];
            if (!k) continue;
            int64_t out = m->layers[l].w[p].shape[0], in = m->layers[l].w[p].shape[1];
            int64_t heads = !llama ? 0 : p == LF_PROJ_Q ? c->NH : p == LF_PROJ_K ? c->NKV : 0;
            for (int ab = 0; ab < 2; ab++) {  // A [r, in], B [out, r] with the weight's row order
                lf__gguf_t *t = lf__gguf_add(ts, &n, "blk.%d.%s.weight.lora_%c", l, lf__gguf_proj[p], "ab"[ab]);
                t->f = ab ? k->B : k->A, t->rows = ab ? out : k->r, t->cols = ab ? k->r : in;
                t->ggml = ggml_of[d.type], t->head_rows = ab && heads ? out / heads : 0;
            }
        }
    lf_lora_desc ld = lf_lora_get_desc(m);
    lf__gguf_kv g;
    memset(&g, 0, sizeof g);
    s = lf__gguf_general(&g, m, &d, arch, "adapter");
    if (s == LF_OK) {
        lf__gguf_kv_str(&g, "adapter.type", "lora", 4);
        // llama.cpp scales by alpha / r: rsLoRA's alpha / sqrt(r) needs alpha * sqrt(r) here
        lf__gguf_kv_f32(&g, "adapter.lora.alpha", ld.use_rslora ? ld.alpha * sqrtf((float)ld.r) : ld.alpha);
        lf__gguf_kv_u32(&g, "general.quantization_version", 2);
        s = lf__gguf_file(path, &g, ts, n);
    }
    LF_FREE(g.b.data), LF_FREE(ts);
    return s == LF_OK ? s : lf__wrap(s, "gguf_write_lora %s", path);
}
#endif  // LF_NO_STDIO

// == 12. generate (impl) =========================================================================

LF_API lf_gen_desc lf_gen_desc_default(void) {
    lf_gen_desc d;
    memset(&d, 0, sizeof d);
    d.sampling.temperature = 0.7f;
    d.sampling.top_k = 50;
    d.sampling.top_p = 0.9f;
    d.sampling.min_p = 0.0f;
    d.sampling.repetition_penalty = 1.0f;
    d.max_tokens = 256;
    return d;
}

#ifndef LF_NO_STDIO
// Reads eos ids (an integer or a list) from a config document into d.
static lf_status lf__gen_eos(lf_gen_desc *d, const lf_doc *doc) {
    const lf_node *e = lf_node_get(doc->root, "eos_token_id");
    if (!e || e->type == LF_NODE_NULL) return LF_OK;
    int n = e->type == LF_NODE_ARRAY ? e->n : 1;
    if (e->type != LF_NODE_ARRAY && e->type != LF_NODE_NUMBER)
        return lf__fail(LF_ERR_CONFIG, "%s: field 'eos_token_id' must be an integer or a list", doc->name);
    d->n_eos = 0;
    for (int i = 0; i < n && d->n_eos < 8; i++) {
        uint64_t v;
        if (!lf__node_u64(e->type == LF_NODE_ARRAY ? &e->kids[i] : e, &v) || v > INT32_MAX)
            return lf__fail(LF_ERR_CONFIG, "%s: eos_token_id must hold token ids", doc->name);
        d->eos_ids[d->n_eos++] = (int32_t)v;
    }
    return LF_OK;
}

LF_API lf_status lf_gen_desc_load(lf_gen_desc *d, const char *model_dir) {
    char *path = lf_path_join(model_dir, "generation_config.json");
    if (!path) return LF_ERR_NOMEM;
    lf_status s = LF_OK;
    if (lf_path_exists(path)) {
        lf_doc doc;
        s = lf_json_load(&doc, path);
        if (s == LF_OK) {
            const lf_node *r = doc.root;
            bool sample = true;
            double t = d->sampling.temperature, p = d->sampling.top_p, mp = d->sampling.min_p,
                   rp = d->sampling.repetition_penalty;
            int64_t k = d->sampling.top_k;
            lf_gen_desc g = *d;  // d changes only when the whole file reads well
            if ((s = lf_cfg_bool(&doc, r, "do_sample", false, &sample)) == LF_OK &&
                (s = lf_cfg_num(&doc, r, "temperature", false, &t)) == LF_OK &&
                (s = lf_cfg_num(&doc, r, "top_p", false, &p)) == LF_OK &&
                (s = lf_cfg_num(&doc, r, "min_p", false, &mp)) == LF_OK &&
                (s = lf_cfg_num(&doc, r, "repetition_penalty", false, &rp)) == LF_OK &&
                (s = lf_cfg_int(&doc, r, "top_k", false, 0, INT32_MAX, &k)) == LF_OK &&
                (s = lf__gen_eos(&g, &doc)) == LF_OK) {
                g.sampling.temperature = sample ? (float)t : 0.0f;
                g.sampling.top_p = (float)p, g.sampling.min_p = (float)mp;
                g.sampling.repetition_penalty = (float)rp, g.sampling.top_k = (int)k;
                *d = g;
            }
        }
        lf_doc_deinit(&doc);
    }
    LF_FREE(path);
    return s;
}
#endif

LF_API lf_status lf_gen_desc_from_config(lf_gen_desc *d, const lf_doc *doc) {
    const lf_node *g = lf_node_get(doc->root, "generation");
    if (!g || g->type == LF_NODE_NULL) return LF_OK;
    if (g->type != LF_NODE_OBJECT) return lf__fail(LF_ERR_CONFIG, "%s: 'generation' must be a mapping", doc->name);
    static const char *known[] = {"max_tokens", "temperature", "top_k", "top_p", "min_p", "repetition_penalty", "seed",
                                  "stop", "ignore_eos"};
    lf_status s = lf_cfg_keys(doc, g, "generation", known, (int)(sizeof known / sizeof *known));
    if (s != LF_OK) return s;
    lf_doc sub = *doc;  // messages say "file: generation: field ..."
    snprintf(sub.name, sizeof sub.name, "%.200s: generation", doc->name);
    lf_gen_desc n = *d;
    int64_t mt = n.max_tokens, tk = n.sampling.top_k, seed = (int64_t)(n.sampling.seed & 0x1fffffffffffffull);
    double t = n.sampling.temperature, tp = n.sampling.top_p, mp = n.sampling.min_p, rp = n.sampling.repetition_penalty;
    if ((s = lf_cfg_int(&sub, g, "max_tokens", false, 0, INT32_MAX, &mt)) != LF_OK ||
        (s = lf_cfg_int(&sub, g, "top_k", false, 0, INT32_MAX, &tk)) != LF_OK ||
        (s = lf_cfg_int(&sub, g, "seed", false, 0, (int64_t)1 << 53, &seed)) != LF_OK ||
        (s = lf_cfg_num(&sub, g, "temperature", false, &t)) != LF_OK ||
        (s = lf_cfg_num(&sub, g, "top_p", false, &tp)) != LF_OK ||
        (s = lf_cfg_num(&sub, g, "min_p", false, &mp)) != LF_OK ||
        (s = lf_cfg_num(&sub, g, "repetition_penalty", false, &rp)) != LF_OK ||
        (s = lf_cfg_bool(&sub, g, "ignore_eos", false, &n.ignore_eos)) != LF_OK)
        return s;
    if (t < 0) return lf__fail(LF_ERR_CONFIG, "%s: field 'temperature' must be >= 0, got %g", sub.name, t);
    if (!(tp > 0 && tp <= 1)) return lf__fail(LF_ERR_CONFIG, "%s: field 'top_p' must be in (0, 1], got %g", sub.name, tp);
    if (!(mp >= 0 && mp <= 1)) return lf__fail(LF_ERR_CONFIG, "%s: field 'min_p' must be in [0, 1], got %g", sub.name, mp);
    if (!(rp > 0)) return lf__fail(LF_ERR_CONFIG, "%s: field 'repetition_penalty' must be > 0, got %g", sub.name, rp);
    const lf_node *st = lf_node_get(g, "stop");
    if (st && st->type != LF_NODE_NULL) {
        if (st->type != LF_NODE_ARRAY) return lf__fail(LF_ERR_CONFIG, "%s: field 'stop' must be a list of strings", sub.name);
        if (st->n > LF_MAX_STOP) return lf__fail(LF_ERR_CONFIG, "%s: field 'stop' holds more than %d strings", sub.name, LF_MAX_STOP);
        for (int i = 0; i < st->n; i++) {
            if (st->kids[i].type != LF_NODE_STRING || st->kids[i].len == 0)
                return lf__fail(LF_ERR_CONFIG, "%s: stop[%d] must be a non-empty string", sub.name, i);
            n.stop_[i] = st->kids[i].str;
        }
        n.n_stop = st->n;
    }
    n.max_tokens = (int)mt, n.sampling.top_k = (int)tk, n.sampling.seed = (uint64_t)seed;
    n.sampling.temperature = (float)t, n.sampling.top_p = (float)tp, n.sampling.min_p = (float)mp;
    n.sampling.repetition_penalty = (float)rp;
    bool own_stop = st && st->type != LF_NODE_NULL;
    *d = n;
    if (own_stop) d->stop = d->stop_;  // d's own copy of the pointers, not n's
    return LF_OK;
}

LF_API void lf_gen_result_deinit(lf_gen_result *r) {
    LF_FREE(r->text);
    LF_FREE(r->ids);
    LF_FREE(r->logprobs);
    memset(r, 0, sizeof *r);
}

// -- 12.1 sampling

static int32_t lf__argmax(const float *x, int n) {  // NaN never wins over a number
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best] || (x[best] != x[best] && x[i] == x[i])) best = i;
    return best;
}

// A max-heap of token ids keyed by logit (ties: the lower id first, so draws are deterministic).
static bool lf__logit_before(const float *key, int32_t a, int32_t b) {
    return key[a] > key[b] || (key[a] == key[b] && a < b);
}
static void lf__logit_sift(int32_t *h, int n, int i, const float *key) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && lf__logit_before(key, h[l], h[m])) m = l;
        if (r < n && lf__logit_before(key, h[r], h[m])) m = r;
        if (m == i) return;
        int32_t t = h[i];
        h[i] = h[m], h[m] = t, i = m;
    }
}
// Moves the best id of h[0, *n) to h[*n - 1] and shrinks the heap.
static void lf__logit_pop(int32_t *h, int *n, const float *key) {
    int32_t t = h[0];
    h[0] = h[*n - 1], h[*n - 1] = t;
    (*n)--;
    lf__logit_sift(h, *n, 0, key);
}

LF_API int32_t lf_sample(const lf_sampler *s, float *logits, int V, const int32_t *history, int n_history,
                         lf_rng *rng, int32_t *work) {
    if (s->repetition_penalty > 0 && s->repetition_penalty != 1.0f) {
        memset(work, 0, (size_t)V * sizeof *work);  // each distinct id is penalized once
        for (int i = 0; i < n_history; i++) {
            int32_t t = history[i];
            if (t < 0 || t >= V || work[t]) continue;
            work[t] = 1;
            logits[t] = logits[t] > 0 ? logits[t] / s->repetition_penalty : logits[t] * s->repetition_penalty;
        }
    }
    if (!(s->temperature > 0)) return lf__argmax(logits, V);
    float mx = -INFINITY;
    for (int i = 0; i < V; i++) mx = logits[i] > mx ? logits[i] : mx;
    // Candidates: tokens within e^-30 of the best carry all the probability that matters. They
    // come out of a heap best-first, only as far as top-k, top-p and min-p need.
    float inv_t = 1.0f / s->temperature, floor_logit = mx - 30.0f * s->temperature;
    int n = 0;
    double total = 0;
    for (int i = 0; i < V; i++) {
        total += exp((double)((logits[i] - mx) * inv_t));
        if (logits[i] >= floor_logit) work[n++] = i;
    }
    if (n == 0) return lf__argmax(logits, V);  // no finite logit: nothing to sample from
    for (int i = n / 2 - 1; i >= 0; i--) lf__logit_sift(work, n, i, logits);
    int hn = n, kmax = s->top_k > 0 ? LF__MIN(s->top_k, n) : n;
#define LF__RANKED(i) work[n - 1 - (i)]  // the i-th best id once popped
    if (s->top_k > 0) {  // top-k renormalizes before top-p sees the probabilities
        total = 0;
        for (int i = 0; i < kmax; i++) lf__logit_pop(work, &hn, logits), total += exp((double)((logits[LF__RANKED(i)] - mx) * inv_t));
    }
    double cum = 0, min_logp = s->min_p > 0 ? log((double)s->min_p) : -INFINITY;
    int keep = 0;
    while (keep < kmax) {
        if (n - hn == keep) lf__logit_pop(work, &hn, logits);
        double lp = (double)((logits[LF__RANKED(keep)] - mx) * inv_t);
        // top-p keeps a token while the mass ranked above it is < top_p; min-p drops tokens
        // below min_p x the top probability
        if (keep > 0 && (cum >= (double)s->top_p * total || lp < min_logp)) break;
        cum += exp(lp), keep++;
    }
    double r = (double)lf_rng_float(rng) * cum;
    for (int i = 0; i < keep; i++) {
        r -= exp((double)((logits[LF__RANKED(i)] - mx) * inv_t));
        if (r < 0) return LF__RANKED(i);
    }
    return LF__RANKED(keep - 1);
#undef LF__RANKED
}

// -- 12.2 the generation loop
//
// ON STOP STRINGS: text reaches the callback only once it is final: a tail that could still grow
// into a stop string is held back, and a stop string itself is never emitted.

static size_t lf__stop_holdback(const char *text, size_t len, const char *const *stop, int n_stop) {
    size_t hold = 0;
    for (int i = 0; i < n_stop; i++) {
        size_t sl = strlen(stop[i]);
        for (size_t k = LF__MIN(sl - 1, len); k > hold; k--)
            if (memcmp(text + len - k, stop[i], k) == 0) {
                hold = k;
                break;
            }
    }
    return hold;
}

// Cuts text at the leftmost stop string that starts at or after emitted - its length (earlier
// text was checked already); true if one was found.
static bool lf__stop_cut(lf__buf *text, size_t emitted, const char *const *stop, int n_stop) {
    size_t cut = SIZE_MAX;
    for (int i = 0; i < n_stop && text->data; i++) {
        size_t sl = strlen(stop[i]);
        for (size_t k = emitted > sl ? emitted - sl : 0; k + sl <= text->len && k < cut; k++)
            if (memcmp(text->data + k, stop[i], sl) == 0) cut = k;
    }
    if (cut == SIZE_MAX) return false;
    text->len = cut, text->data[cut] = 0;
    return true;
}

// One sequence at a time: lf_generate and lf_generate_batch share these, so every rule per token
// (EOS, stop strings and their holdback, the callback, the limits) is written once.

typedef struct lf__gen_seq {
    const lf_gen_desc *d;
    const lf_sampler *smp;
    lf_gen_result *res;
    const int32_t *eos;
    int n_eos, n_prompt, cap;  // cap: the most tokens it may generate
    int32_t *hist;             // [n_prompt + cap] the prompt, then the generated ids
    lf_rng rng;
    lf_tok_stream ts;
    lf__buf text;
    size_t emitted;            // bytes of text handed to on_token
    bool hit_stop, cb_stop;
    uint64_t t0, t1;           // the prefill's start and end
    float *raw;                // logprobs: the logits before sampling changes them [V]
} lf__gen_seq;

// Checks one request and sets q up (res zeroed, the history allocated). Nothing to undo on failure.
static lf_status lf__gen_seq_init(lf__gen_seq *q, const lf_model *m, const lf_kv *kv, const lf_tokenizer *tok,
                                  const int32_t *prompt, int n_prompt, const lf_gen_desc *d, const lf_sampler *smp,
                                  lf_gen_result *res) {
    memset(q, 0, sizeof *q);
    memset(res, 0, sizeof *res);
    if (n_prompt <= 0) return lf__fail(LF_ERR_ARG, "generate: empty prompt");
    if (n_prompt >= kv->max_seq_len)
        return lf__fail(LF_ERR_CAPACITY, "generate: prompt of %d tokens does not fit the context of %d", n_prompt,
                        kv->max_seq_len);
    for (int i = 0; i < d->n_stop; i++)
        if (!d->stop[i] || !d->stop[i][0]) return lf__fail(LF_ERR_ARG, "generate: stop string %d is empty", i);
    q->d = d, q->smp = smp, q->res = res, q->n_prompt = n_prompt;
    q->eos = d->n_eos > 0 ? d->eos_ids : m->cfg.eos_ids;  // default: config.json's
    q->n_eos = d->n_eos > 0 ? d->n_eos : m->cfg.n_eos;
    q->cap = LF__MIN(d->max_tokens, kv->max_seq_len - n_prompt);
    size_t hist_n = (size_t)n_prompt + (size_t)LF__MAX(q->cap, 0);
    if (d->top_logprobs < 0 || d->top_logprobs > 20)
        return lf__fail(LF_ERR_ARG, "generate: top_logprobs %d outside [0, 20]", d->top_logprobs);
    if (!(q->hist = (int32_t *)lf__alloc(hist_n * sizeof(int32_t), "generation history"))) return LF_ERR_NOMEM;
    memcpy(q->hist, prompt, (size_t)n_prompt * sizeof(int32_t));
    if (d->logprobs || d->top_logprobs) {  // one block: logprobs, top logprobs, top ids, then raw logits
        size_t cap = (size_t)LF__MAX(q->cap, 0), nt = (size_t)d->top_logprobs;
        res->logprobs = (float *)lf__alloc((cap * (1 + 2 * nt) + (size_t)m->cfg.V) * sizeof(float), "generation logprobs");
        if (!res->logprobs) return LF_FREE(q->hist), LF_ERR_NOMEM;
        res->top_logprobs = res->logprobs + cap, res->top_ids = (int32_t *)(res->top_logprobs + cap * nt);
        res->n_top = (int)nt, q->raw = (float *)(res->top_ids + cap * nt);
    }
    lf_rng_seed(&q->rng, smp->seed);
    lf_tok_stream_init(&q->ts, tok, true);
    q->t0 = q->t1 = lf_time_ns();
    res->n_prompt = n_prompt;
    return LF_OK;
}

// Prefills prompt [n_prompt] into KV slot seq from position 0 in chunks of max_tokens; logits [V]
// get the last token's. work: [2 * max_tokens] for positions and slots.
static lf_status lf__gen_prefill(lf_model *m, lf_kv *kv, int seq, const int32_t *prompt, int n_prompt, int32_t *work,
                                 float *logits) {
    lf_status s = LF_OK;
    kv->len[seq] = 0;
    for (int i = 0; i < n_prompt && s == LF_OK; i += m->max_tokens) {
        int n = LF__MIN(m->max_tokens, n_prompt - i);
        int32_t *pos = work, *slot = work + n;
        for (int j = 0; j < n; j++) pos[j] = i + j, slot[j] = seq;
        lf_batch b = {n, prompt + i, pos, slot, NULL, NULL};
        s = lf_model_forward(m, kv, &b, logits);
    }
    return s;
}

// lp = log softmax(x)[id]; the n best ids (ties: the lower id first) and theirs.
static void lf__gen_logprobs(const float *x, int V, int32_t id, int n, float *lp, float *top, int32_t *top_ids) {
    float mx = x[0];
    for (int i = 1; i < V; i++) mx = x[i] > mx ? x[i] : mx;
    double z = 0;
    for (int i = 0; i < V; i++) z += exp((double)(x[i] - mx));
    double lz = (double)mx + log(z);
    *lp = (float)((double)x[id] - lz);
    for (int k = 0; k < n; k++) {  // n <= 20 passes, each for the best after the one before
        int32_t best = -1;
        for (int i = 0; i < V; i++) {
            bool after = k == 0 || x[i] < x[top_ids[k - 1]] || (x[i] == x[top_ids[k - 1]] && i > top_ids[k - 1]);
            if (after && (best < 0 || x[i] > x[best])) best = i;
        }
        top_ids[k] = best < 0 ? 0 : best, top[k] = (float)((double)x[top_ids[k]] - lz);
    }
}

// Draws q's next token from logits [V] (changed in place) and applies the stop rules; stop(user)
// is asked first, as d->should_stop before every token. *done when the sequence has ended
// (res->finish set); else its newest id is to run at position n_prompt + n_gen - 1.
static lf_status lf__gen_seq_step(lf__gen_seq *q, float *logits, int V, int32_t *work, bool (*stop)(void *), void *user,
                                  bool *done) {
    lf_gen_result *res = q->res;
    const lf_gen_desc *d = q->d;
    *done = true;
    if (res->n_gen >= q->cap) return res->finish = LF_FINISH_LENGTH, LF_OK;
    if (stop && stop(user)) {
        res->finish = LF_FINISH_CANCELLED;
        return lf__fail(LF_ERR_CANCELLED, "generate: cancelled after %d tokens", res->n_gen);
    }
    if (q->raw) memcpy(q->raw, logits, (size_t)V * sizeof(float));
    int32_t id = lf_sample(q->smp, logits, V, q->hist, q->n_prompt + res->n_gen, &q->rng, work);
    if (q->raw) lf__gen_logprobs(q->raw, V, id, res->n_top, res->logprobs + res->n_gen,
                                 res->top_logprobs + (size_t)res->n_gen * (size_t)res->n_top,
                                 res->top_ids + (size_t)res->n_gen * (size_t)res->n_top);
    q->hist[q->n_prompt + res->n_gen++] = id;
    for (int i = 0; i < q->n_eos && !d->ignore_eos; i++)
        if (id == q->eos[i]) return res->finish = LF_FINISH_STOP, LF_OK;
    const char *piece;
    size_t plen = 0;
    lf_status s = lf_tok_stream_push(&q->ts, id, &piece, &plen);
    if (s != LF_OK) return s;
    lf__buf_put(&q->text, piece, plen);
    if (q->text.failed) return LF_ERR_NOMEM;
    bool stopped = q->hit_stop = lf__stop_cut(&q->text, q->emitted, d->stop, d->n_stop);
    size_t final_len = stopped ? q->text.len
                               : q->text.len - lf__stop_holdback(q->text.data ? q->text.data : "", q->text.len, d->stop, d->n_stop);
    if (final_len > q->emitted && d->on_token && !d->on_token(d->user, id, q->text.data + q->emitted, final_len - q->emitted))
        stopped = q->cb_stop = true;
    q->emitted = LF__MAX(q->emitted, final_len);
    // at the limit: no forward pass for a token never used
    if (stopped || res->n_gen >= q->cap) return res->finish = stopped ? LF_FINISH_STOP : LF_FINISH_LENGTH, LF_OK;
    *done = false;
    return LF_OK;
}

// Ends q with status s: bytes the stream still holds, and text held back for a stop string that
// never came, are final now (unless the callback asked to stop); text and ids move into res.
static lf_status lf__gen_seq_finish(lf__gen_seq *q, lf_status s) {
    lf_gen_result *res = q->res;
    const lf_gen_desc *d = q->d;
    if (s == LF_OK && !q->hit_stop) {
        const char *tail;
        size_t tlen = 0;
        if ((s = lf_tok_stream_flush(&q->ts, &tail, &tlen)) == LF_OK) lf__buf_put(&q->text, tail, tlen);
        if (q->text.failed) s = LF_ERR_NOMEM;
        if (s == LF_OK && lf__stop_cut(&q->text, q->emitted, d->stop, d->n_stop)) res->finish = LF_FINISH_STOP;
        if (s == LF_OK && !q->cb_stop && d->on_token && q->text.len > q->emitted)
            d->on_token(d->user, -1, q->text.data + q->emitted, q->text.len - q->emitted);
    }
    lf_tok_stream_deinit(&q->ts);
    res->prompt_s = (double)(q->t1 - q->t0) * 1e-9;
    res->gen_s = (double)(lf_time_ns() - q->t1) * 1e-9;
    res->ids = q->hist;
    memmove(q->hist, q->hist + q->n_prompt, (size_t)res->n_gen * sizeof(int32_t));
    if (!q->text.data) lf__buf_put(&q->text, "", 0);
    res->text = q->text.data, res->len = q->text.len;
    return s;
}

LF_API lf_status lf_generate(lf_model *m, lf_kv *kv, int seq, const lf_tokenizer *tok, const int32_t *prompt,
                             int n_prompt, const lf_gen_desc *d, lf_gen_result *res) {
    memset(res, 0, sizeof *res);
    if (seq < 0 || seq >= kv->max_seqs) return lf__fail(LF_ERR_ARG, "generate: KV slot %d outside [0, %d)", seq, kv->max_seqs);
    int V = m->cfg.V;
    // work: sampling scratch [V], and positions + slots [2, max_tokens] during prefill
    int32_t *work = (int32_t *)lf__alloc((size_t)LF__MAX(V, 2 * m->max_tokens) * sizeof(int32_t), "sampling scratch");
    float *logits = (float *)lf__alloc((size_t)V * sizeof(float), "logits");
    lf__gen_seq q;
    lf_status s = work && logits ? lf__gen_seq_init(&q, m, kv, tok, prompt, n_prompt, d, &d->sampling, res) : LF_ERR_NOMEM;
    if (s != LF_OK) {
        LF_FREE(work), LF_FREE(logits);
        return s;
    }
    s = lf__gen_prefill(m, kv, seq, prompt, n_prompt, work, logits);
    q.t1 = lf_time_ns();
    for (bool done = false; s == LF_OK && (s = lf__gen_seq_step(&q, logits, V, work, d->should_stop, d->user, &done)) == LF_OK && !done;) {
        int32_t pos = n_prompt + res->n_gen - 1, id = q.hist[pos];
        lf_batch b = {1, &id, &pos, &seq, NULL, NULL};
        s = lf_model_forward(m, kv, &b, logits);
    }
    s = lf__gen_seq_finish(&q, s);
    LF_FREE(work), LF_FREE(logits);
    return s;
}

// -- 12.3 batches

LF_API uint64_t lf_gen_seed(uint64_t seed, uint64_t index) {
    return lf__hash_u64(seed ^ lf__hash_u64(index + 0x9E3779B97F4A7C15ull));
}

// should_stop asked at most once per step: every sequence of a step sees the same answer, and
// once true it stays true.
typedef struct lf__gen_cancel {
    const lf_gen_desc *d;
    int state;  // -1 not asked in this step, 0 no, 1 cancelled
} lf__gen_cancel;
static bool lf__gen_cancel_ask(void *user) {
    lf__gen_cancel *c = (lf__gen_cancel *)user;
    if (c->state < 0) c->state = c->d->should_stop && c->d->should_stop(c->d->user);
    return c->state == 1;
}

// Copies positions [0, n) of KV slot from into slot to (lf_kv's layout: [L, max_seqs, max_seq_len, width]).
static void lf__gen_item_done(lf_gen_item *it, lf_status s, void (*on_done)(void *, int), void *user, int i) {
    it->status = s;
    snprintf(it->error, sizeof it->error, "%.255s", s == LF_OK ? "" : lf_last_error());
    if (on_done) on_done(user, i);
}

LF_API lf_status lf_generate_batch(lf_model *m, lf_kv *kv, const lf_tokenizer *tok, const lf_gen_desc *d,
                                   lf_gen_item *items, int n, void (*on_done)(void *user, int i)) {
    if (n < 0 || (n > 0 && !items)) return lf__fail(LF_ERR_ARG, "generate_batch: bad item array (n = %d)", n);
    for (int i = 0; i < n; i++) memset(&items[i].res, 0, sizeof items[i].res), items[i].status = LF_OK, items[i].error[0] = 0;
    int V = m->cfg.V, W = LF__MIN(kv->max_seqs, m->max_tokens), next = 0, active = 0;
    size_t nw = (size_t)LF__MAX(V, 2 * m->max_tokens);
    // per slot: its sequence, item (-1: free) and current logits (its row of pre after the
    // prefill, of step after a decoding step); work: sampling scratch; the step's batch
    lf__gen_seq *q = (lf__gen_seq *)lf__calloc((size_t)W, sizeof *q, "batch sequences");
    float **lg = (float **)lf__calloc((size_t)W, sizeof *lg, "batch logits rows");
    float *pre = (float *)lf__calloc((size_t)W * (size_t)V, sizeof(float), "batch logits");
    float *step = (float *)lf__calloc((size_t)W * (size_t)V, sizeof(float), "batch logits");
    int32_t *work = (int32_t *)lf__calloc(nw + 5 * (size_t)W, sizeof(int32_t), "batch scratch");
    int8_t *flags = (int8_t *)lf__alloc((size_t)W, "batch logits flags");
    lf_status s = q && lg && pre && step && work && flags ? LF_OK : LF_ERR_NOMEM;
    int32_t *toks = work ? work + nw : NULL, *pos = toks ? toks + W : NULL, *seqs = pos ? pos + W : NULL;
    int32_t *item = seqs ? seqs + W : NULL, *fresh = item ? item + W : NULL;  // fresh: prefilled in this step
    lf_gen_desc bd = *d;
    bd.on_token = NULL;
    lf__gen_cancel cc = {d, 0};
    if (s == LF_OK) memset(flags, 1, (size_t)W);
    for (int k = 0; item && k < W; k++) item[k] = -1;
    while (s == LF_OK && cc.state != 1 && (active > 0 || next < n)) {
        cc.state = -1;
        memset(fresh, 0, (size_t)W * sizeof *fresh);
        // start prompts in the free slots; one that fails leaves its slot to the next
        for (int k = 0; s == LF_OK && k < W && next < n && !(active < W && lf__gen_cancel_ask(&cc)); k++) {
            if (item[k] >= 0) continue;
            int i = next++;
            lf_gen_item *it = &items[i];
            lf_status e = lf__gen_seq_init(&q[k], m, kv, tok, it->prompt, it->n_prompt, &bd, &it->sampling, &it->res);
            bool inited = e == LF_OK;
            int same = -1;  // a slot prefilled with the same prompt in this step lends its cache and logits
            for (int o = 0; inited && o < W && same < 0; o++)
                if (fresh[o] && q[o].n_prompt == it->n_prompt && !memcmp(q[o].hist, it->prompt, (size_t)it->n_prompt * sizeof(int32_t)))
                    same = o;
            lg[k] = pre + (size_t)k * (size_t)V;
            if (same >= 0) lf_kv_seq_copy(kv, same, k, it->n_prompt), memcpy(lg[k], lg[same], (size_t)V * sizeof(float));
            else if (inited) e = lf__gen_prefill(m, kv, k, it->prompt, it->n_prompt, work, lg[k]);
            if (e == LF_OK) {
                q[k].t1 = lf_time_ns(), fresh[k] = 1, item[k] = i, active++;
                continue;
            }
            if (inited) e = lf__gen_seq_finish(&q[k], e);
            if (e == LF_ERR_NOMEM) s = e;
            lf__gen_item_done(it, e, on_done, d->user, i);
            k--;  // the slot is still free
        }
        // one step: each active sequence draws a token; those that go on run it together
        int rows = 0;
        for (int k = 0; s == LF_OK && k < W; k++) {
            if (item[k] < 0) continue;
            bool done;
            lf_status e = lf__gen_seq_step(&q[k], lg[k], V, work, lf__gen_cancel_ask, &cc, &done);
            if (!done) {
                int p = q[k].n_prompt + q[k].res->n_gen - 1;
                toks[rows] = q[k].hist[p], pos[rows] = p, seqs[rows] = k, lg[k] = step + (size_t)rows++ * (size_t)V;
                continue;
            }
            if ((e = lf__gen_seq_finish(&q[k], e)) == LF_ERR_NOMEM) s = e;
            lf__gen_item_done(&items[item[k]], e, on_done, d->user, item[k]);
            item[k] = -1, active--;
        }
        if (s == LF_OK && rows > 0) {
            lf_batch b = {rows, toks, pos, seqs, flags, NULL};
            s = lf_model_forward(m, kv, &b, step);
        }
    }
    // a failed or cancelled run: what is unfinished or never started ends with its status
    if (s == LF_OK && cc.state == 1) s = lf__fail(LF_ERR_CANCELLED, "generate: cancelled");
    char msg[sizeof lf__err];
    snprintf(msg, sizeof msg, "%s", lf_last_error());
    for (int k = 0; s != LF_OK && item && k < W; k++)
        if (item[k] >= 0) {
            lf__gen_seq_finish(&q[k], s);
            if (s == LF_ERR_CANCELLED) q[k].res->finish = LF_FINISH_CANCELLED;
            lf__fail(s, "%s", msg), lf__gen_item_done(&items[item[k]], s, on_done, d->user, item[k]);
        }
    for (; s != LF_OK && next < n; next++) {
        if (s == LF_ERR_CANCELLED) items[next].res.finish = LF_FINISH_CANCELLED;
        lf__fail(s, "%s", msg), lf__gen_item_done(&items[next], s, on_done, d->user, next);
    }
    if (s != LF_OK) lf__fail(s, "%s", msg);
    LF_FREE(q), LF_FREE(lg), LF_FREE(pre), LF_FREE(step), LF_FREE(work), LF_FREE(flags);
    return s;
}

// -- 12.4 scoring

// log softmax(x)[t] over V, in double.
static double lf__logp_of(const float *x, int V, int32_t t) {
    float mx = x[0];
    for (int i = 1; i < V; i++) mx = x[i] > mx ? x[i] : mx;
    double z = 0;
    for (int i = 0; i < V; i++) z += exp((double)(x[i] - mx));
    return (double)(x[t] - mx) - log(z);
}

LF_API lf_status lf_score_logprobs(lf_model *m, lf_kv *kv, int seq, const int32_t *prompt, int n_prompt,
                                   const int32_t *const *resp, const int *n_resp, int n, double *sum) {
    int V = m->cfg.V, T = m->max_tokens;
    if (n_prompt <= 0 || n < 0) return lf__fail(LF_ERR_ARG, "score: empty prompt (%d tokens) or bad count %d", n_prompt, n);
    if (seq < 0 || seq >= kv->max_seqs) return lf__fail(LF_ERR_ARG, "score: KV slot %d outside [0, %d)", seq, kv->max_seqs);
    for (int i = 0; i < n; i++) {  // everything is checked before any work
        sum[i] = 0;
        if (n_resp[i] <= 0) return lf__fail(LF_ERR_ARG, "score: response %d is empty", i);
        if ((int64_t)n_prompt + n_resp[i] - 1 > kv->max_seq_len)
            return lf__fail(LF_ERR_CAPACITY, "score: %d prompt and %d response tokens do not fit the context of %d", n_prompt,
                            n_resp[i], kv->max_seq_len);
        for (int t = 0; t < n_resp[i]; t++)
            if (resp[i][t] < 0 || resp[i][t] >= V)
                return lf__fail(LF_ERR_ARG, "score: response %d token %d is id %d, outside [0, %d)", i, t, resp[i][t], V);
    }
    float *logits = (float *)lf__calloc((size_t)T * (size_t)V, sizeof(float), "scoring logits");
    float *first = (float *)lf__calloc((size_t)V, sizeof(float), "scoring logits");
    int32_t *work = (int32_t *)lf__calloc(2 * (size_t)T, sizeof(int32_t), "scoring positions");
    int8_t *flags = (int8_t *)lf__alloc((size_t)T, "scoring flags");
    lf_status s = logits && first && work && flags ? LF_OK : LF_ERR_NOMEM;
    if (s == LF_OK) memset(flags, 1, (size_t)T), s = lf__gen_prefill(m, kv, seq, prompt, n_prompt, work, first);
    for (int i = 0; s == LF_OK && i < n; i++) {
        const int32_t *r = resp[i];
        sum[i] = lf__logp_of(first, V, r[0]);
        // r[t] at position n_prompt + t predicts r[t + 1]; writing n_prompt forgets the last response
        for (int t = 0; s == LF_OK && t < n_resp[i] - 1; t += T) {
            int k = LF__MIN(T, n_resp[i] - 1 - t);
            int32_t *pos = work, *slot = work + k;
            for (int j = 0; j < k; j++) pos[j] = n_prompt + t + j, slot[j] = seq;
            lf_batch b = {k, r + t, pos, slot, flags, NULL};
            if ((s = lf_model_forward(m, kv, &b, logits)) == LF_OK)
                for (int j = 0; j < k; j++) sum[i] += lf__logp_of(logits + (size_t)j * (size_t)V, V, r[t + j + 1]);
        }
    }
    LF_FREE(logits), LF_FREE(first), LF_FREE(work), LF_FREE(flags);
    return s;
}

// -- 12.5 synthetic data: prompts, answers, filters

LF_API const char *lf_synth_verdict_name(lf_synth_verdict v) {
    static const char *const names[] = {"kept", "failed", "filtered", "duplicate", "no_pair"};
    return (unsigned)v < 5 ? names[v] : "unknown";
}

static void lf__synth_trim(const char *s, size_t n, const char **out, size_t *len) {
    while (n && lf__syn_space((unsigned char)*s)) s++, n--;
    while (n && lf__syn_space((unsigned char)s[n - 1])) n--;
    *out = s, *len = n;
}

// A run: the resolved desc, the KV cache, scratch for drawing demonstrations, the dedup set.
typedef struct lf__synth {
    const lf_synth_desc *d;
    lf_gen_desc g;                      // resolved; stops: the caller's, then the plain format's
    const char *stops[LF_MAX_STOP + 2];
    bool fewshot, add_special;
    lf_chat_template tmpl;
    int batch, k, ctx;                  // k: answers per prompt; ctx: the KV cache's context
    float t_lo, t_hi;
    double timeout_s;
    lf_kv kv;
    lf_dedup dd;
    int *draw;                          // [n_demos]
    lf_synth_result *out;
    int done, total;                    // progress: items finished, of
} lf__synth;

static void lf__synth_close(lf__synth *c) {
    lf_kv_deinit(&c->kv);
    lf_dedup_deinit(&c->dd);
    LF_FREE(c->draw);
}

// Resolves and checks d (one place for every default), without the KV cache and the records.
static lf_status lf__synth_resolve(lf__synth *c, const lf_synth_desc *d) {
    memset(c, 0, sizeof *c);
    c->d = d;
    if (!d || !d->model || !d->tok) return lf__fail(LF_ERR_ARG, "synth: desc.model and desc.tok are required");
    c->g = d->gen ? *d->gen : lf_gen_desc_default();
    if (c->g.n_eos == 0 && d->model->cfg.n_eos == 0 && d->tok->eos_id >= 0) c->g.eos_ids[c->g.n_eos++] = d->tok->eos_id;
    c->batch = d->batch_size ? d->batch_size : 8;
    c->k = d->num_responses ? d->num_responses : 2;
    c->t_lo = d->temperature_range[0], c->t_hi = d->temperature_range[1];
    if (c->t_lo == 0 && c->t_hi == 0) c->t_lo = 0.5f, c->t_hi = 1.0f;
    c->timeout_s = d->verify_timeout_s ? d->verify_timeout_s : 10;
    if (c->batch < 1 || c->batch > 4096) return lf__fail(LF_ERR_CONFIG, "synth.batch_size: must be in [1, 4096], got %d", c->batch);
    if (c->g.n_stop < 0 || c->g.n_stop > LF_MAX_STOP || (c->g.n_stop && !c->g.stop))
        return lf__fail(LF_ERR_CONFIG, "synth: gen.n_stop must be in [0, %d], got %d", LF_MAX_STOP, c->g.n_stop);
    if (c->g.max_tokens < 1) return lf__fail(LF_ERR_CONFIG, "synth: gen.max_tokens must be >= 1, got %d", c->g.max_tokens);
    if (d->shots < 0 || d->n_demos < 0) return lf__fail(LF_ERR_CONFIG, "synth.shots: must be >= 0, got %d", d->shots);
    if (c->k < 2 || c->k > 64) return lf__fail(LF_ERR_CONFIG, "synth.num_responses: must be in [2, 64], got %d", c->k);
    if (!(c->t_lo >= 0 && c->t_lo <= c->t_hi))
        return lf__fail(LF_ERR_CONFIG, "synth.temperature_range: must be 0 <= low <= high, got [%g, %g]", (double)c->t_lo, (double)c->t_hi);
    if ((unsigned)d->verify > LF_VERIFY_COMMAND) return lf__fail(LF_ERR_CONFIG, "synth.verify: unknown verifier %d", (int)d->verify);
    if (d->verify == LF_VERIFY_COMMAND && (!d->verify_argv || !d->verify_argv[0] || !d->verify_argv[0][0]))
        return lf__fail(LF_ERR_CONFIG, "synth.verify_argv: the command verifier needs a program");
    if (!(c->timeout_s > 0)) return lf__fail(LF_ERR_CONFIG, "synth.verify_timeout_s: must be > 0, got %g", c->timeout_s);
    if (d->negatives & ~(unsigned)(LF_SYNTH_NEG_TRUNCATED | LF_SYNTH_NEG_OTHER))
        return lf__fail(LF_ERR_CONFIG, "synth.negatives: unknown flags 0x%x", d->negatives);
    lf_quality qv;  // the quality desc is checked here, not at the first answer
    lf_status s = lf_quality_check(&d->quality, "x", 1, 1, true, &qv);
    if (s == LF_OK) s = lf_dedup_init(&c->dd, &d->dedup);
    if (s != LF_OK) return lf__wrap(s, "synth");
    // base or instruct (ON SYNTHETIC DATA)
    bool has_tmpl = d->tok->chat != LF_CHAT_DEFAULT || (d->tok->impl_ && d->tok->impl_->chat_unknown);
    c->fewshot = d->prompting == LF_SYNTH_PROMPT_FEWSHOT ||
                 (d->prompting == LF_SYNTH_PROMPT_AUTO && (d->chat == LF_CHAT_PLAIN || (d->chat == LF_CHAT_DEFAULT && !has_tmpl)));
    c->tmpl = c->fewshot ? LF_CHAT_PLAIN : d->chat;
    c->add_special = c->tmpl == LF_CHAT_PLAIN || (c->tmpl == LF_CHAT_DEFAULT && !has_tmpl);  // as lf_data_encode
    for (int i = 0; i < c->g.n_stop; i++) c->stops[i] = c->g.stop[i];
    if (c->add_special) c->stops[c->g.n_stop++] = "\nEND", c->stops[c->g.n_stop++] = "\nInstruction:";  // the plain format's turn ends
    c->g.stop = c->stops;
    if (c->fewshot && d->n_demos > 0) {
        if (!d->demos) return lf__fail(LF_ERR_ARG, "synth: desc.demos is NULL with n_demos %d", d->n_demos);
        for (int i = 0; i < d->n_demos; i++)
            if (!d->demos[i].instruction || !d->demos[i].reference)
                return lf__fail(LF_ERR_ARG, "synth: demonstration %d needs an instruction and an answer (reference)", i);
        if (!(c->draw = (int *)lf__calloc((size_t)d->n_demos, sizeof(int), "demonstration draws"))) return LF_ERR_NOMEM;
    }
    return LF_OK;
}

static bool lf__synth_blank(const char *s) {
    const char *t;
    size_t n;
    lf__synth_trim(s, strlen(s), &t, &n);
    return n == 0;
}

// Prompt index's text and ids (ON SYNTHETIC DATA); fewer: demonstrations were dropped to fit.
static lf_status lf__synth_prompt(lf__synth *c, int index, const char *instruction, char **text, size_t *tlen,
                                  int32_t **ids, int *n_ids, bool *fewer) {
    const lf_synth_desc *d = c->d;
    *text = NULL, *fewer = false, *ids = NULL, *n_ids = 0;
    if (!instruction || lf__synth_blank(instruction)) return lf__fail(LF_ERR_ARG, "synth: prompt %d is empty", index);
    lf_rng r;  // the demonstrations' stream, not the sampler's
    lf_rng_seed(&r, lf_gen_seed(c->g.sampling.seed, (uint64_t)index) ^ 0xD1B54A32D192ED03ull);
    int shots = 0;
    if (c->fewshot && d->n_demos > 0) {  // a partial Fisher-Yates shuffle, skipping the prompt itself
        int want = d->shots ? d->shots : 3 + (int)(lf_rng_u64(&r) & 1);
        for (int i = 0; i < d->n_demos; i++) c->draw[i] = i;
        for (int i = 0; i < d->n_demos && shots < want; i++) {
            int j = i + (int)(lf_rng_u64(&r) % (uint64_t)(d->n_demos - i)), t = c->draw[i];
            c->draw[i] = c->draw[j], c->draw[j] = t;
            if (strcmp(d->demos[c->draw[i]].instruction, instruction) != 0) c->draw[shots++] = c->draw[i];
        }
    }
    lf_chat_msg *msgs = (lf_chat_msg *)lf__calloc(2 * (size_t)shots + 2, sizeof *msgs, "synthetic prompt");
    if (!msgs) return LF_ERR_NOMEM;
    lf_status s = LF_OK;
    for (int asked = shots;; shots--) {  // drop demonstrations, last first, until the answer fits
        int n = 0;
        if (d->system) msgs[n].role = "system", msgs[n++].content = d->system;
        for (int i = 0; i < shots; i++) {
            const lf_synth_prompt *e = &d->demos[c->draw[i]];
            msgs[n].role = "user", msgs[n++].content = e->instruction;
            msgs[n].role = "assistant", msgs[n++].content = e->reference;
        }
        msgs[n].role = "user", msgs[n++].content = instruction;
        if ((s = lf_chat_render(d->tok, c->tmpl, msgs, n, LF_CHAT_GENERATION_PROMPT, text, tlen)) != LF_OK) break;
        size_t ni;
        if ((s = lf_tok_encode(d->tok, *text, *tlen, c->add_special, ids, &ni)) != LF_OK) break;
        if (ni > INT32_MAX / 2) s = lf__fail(LF_ERR_CAPACITY, "synth: prompt %d has %zu tokens", index, ni);
        *n_ids = (int)ni, *fewer = shots < asked;
        if (s != LF_OK || shots == 0 || (int64_t)ni + c->g.max_tokens <= c->ctx) break;
        lf_free(*ids), lf_free(*text), *ids = NULL, *text = NULL;
    }
    LF_FREE(msgs);
    if (s != LF_OK) {
        lf_free(*text), lf_free(*ids), *text = NULL, *ids = NULL, *n_ids = 0;
        if (s != LF_ERR_NOMEM) s = lf__wrap(s, "synth: prompt %d", index);
    }
    return s;
}

LF_API lf_status lf_synth_render(const lf_synth_desc *d, int index, const char *instruction, char **text, size_t *len) {
    lf__synth c;
    bool fewer;
    int32_t *ids;
    int n;
    *text = NULL, *len = 0;
    lf_status s = lf__synth_resolve(&c, d);
    if (s == LF_OK) c.ctx = d->model->max_seq_len, s = lf__synth_prompt(&c, index, instruction, text, len, &ids, &n, &fewer);
    if (s == LF_OK) lf_free(ids);
    lf__synth_close(&c);
    return s;
}

LF_API void lf_synth_result_deinit(lf_synth_result *r) {
    for (int i = 0; r->recs && i < r->n; i++) {
        lf_synth_record *e = &r->recs[i];
        LF_FREE(e->error), LF_FREE(e->instruction), LF_FREE(e->output), LF_FREE(e->rejected);
    }
    LF_FREE(r->recs), LF_FREE(r->system);
    memset(r, 0, sizeof *r);
}

// Marks e FAILED with status s and the current message (logged without the prompt text).
static lf_status lf__synth_fail(lf_synth_record *e, lf_status s) {
    e->verdict = LF_SYNTH_FAILED, e->status = s;
    LF_FREE(e->error);
    lf__log(LF_LOG_WARN, "synth", "prompt %d failed: %s: %s", e->index, lf_status_str(s), lf_last_error());
    return (e->error = lf__strndup(lf_last_error(), strlen(lf_last_error()), "synthetic record")) ? LF_OK : LF_ERR_NOMEM;
}

// Sets up the run: the desc, the records (one per prompt, plus room for extra pairs), the KV cache.
static lf_status lf__synth_open(lf__synth *c, const lf_synth_desc *d, const lf_synth_prompt *prompts, int n, bool prefs,
                                lf_synth_result *out) {
    memset(out, 0, sizeof *out);
    lf_status s = lf__synth_resolve(c, d);
    if (s == LF_OK && (n < 0 || (n > 0 && !prompts))) s = lf__fail(LF_ERR_ARG, "synth: bad prompt array (n = %d)", n);
    if (s == LF_OK && (int64_t)n * c->k * 3 > INT32_MAX) s = lf__fail(LF_ERR_CAPACITY, "synth: %d prompts are too many for one run", n);
    if (s != LF_OK) return lf__synth_close(c), s;
    int extra = prefs ? (d->negatives & LF_SYNTH_NEG_TRUNCATED ? 1 : 0) + (d->negatives & LF_SYNTH_NEG_OTHER ? 1 : 0) : 0;
    c->out = out, c->total = prefs ? n * c->k : n;
    out->preferences = prefs, out->fewshot = c->fewshot;
    out->recs = (lf_synth_record *)lf__calloc((size_t)n * (size_t)(1 + extra) + 1, sizeof *out->recs, "synthetic records");
    if (!out->recs || (d->system && !(out->system = lf__strndup(d->system, strlen(d->system), "system prompt"))))
        s = LF_ERR_NOMEM;
    for (int i = 0; s == LF_OK && i < n; i++) {
        lf_synth_record *e = &out->recs[out->n++];
        const char *ins = prompts[i].instruction ? prompts[i].instruction : "";
        e->index = i, e->dup_of = -1;
        if (!(e->instruction = lf__strndup(ins, strlen(ins), "synthetic record"))) s = LF_ERR_NOMEM;
    }
    if (s == LF_OK) s = lf_kv_init(&c->kv, d->model, c->batch, 0);
    c->ctx = c->kv.max_seq_len;
    if (s != LF_OK) lf_synth_result_deinit(out), lf__synth_close(c);
    return s;
}

static void lf__synth_on_done(void *user, int i) {
    lf__synth *c = (lf__synth *)user;
    (void)i;
    c->done++;
    if (c->d->progress) c->d->progress(c->d->user, c->done, c->total);
}
static bool lf__synth_should_stop(void *user) {
    const lf_synth_desc *d = ((lf__synth *)user)->d;
    return d->should_stop && d->should_stop(d->user);
}

// Prompt ids for every prompt (failures recorded), items pointing at them: k per prompt, response j
// of prompt i at item i * k + j.
static lf_status lf__synth_items(lf__synth *c, const lf_synth_prompt *prompts, int n, int k, int32_t **ids, int *n_ids,
                                 lf_gen_item *items) {
    lf_status s = LF_OK;
    for (int i = 0; s == LF_OK && i < n; i++) {
        char *text;
        size_t tl;
        bool fewer;
        lf_status e = lf__synth_prompt(c, i, prompts[i].instruction, &text, &tl, &ids[i], &n_ids[i], &fewer);
        lf_free(text);
        c->out->sum.fewer_shots += fewer;
        if (e == LF_ERR_NOMEM) s = e;
        else if (e != LF_OK) {
            s = lf__synth_fail(&c->out->recs[i], e);
            for (int j = 0; j < k; j++) lf__synth_on_done(c, i);
        }
        for (int j = 0; j < k; j++) {  // a failed prompt's items stay empty and are left out
            lf_gen_item *it = &items[i * k + j];
            it->prompt = ids[i], it->n_prompt = n_ids[i];
            it->sampling = c->g.sampling;
            it->sampling.seed = k == 1 ? lf_gen_seed(c->g.sampling.seed, (uint64_t)i)
                                       : lf_gen_seed(lf_gen_seed(c->g.sampling.seed, (uint64_t)i), (uint64_t)j);
            if (k > 1) it->sampling.temperature = c->t_lo + (c->t_hi - c->t_lo) * (float)j / (float)(k - 1);
        }
    }
    return s;
}

// Runs the items of prompts that did not fail, in one batch.
static lf_status lf__synth_run(lf__synth *c, lf_gen_item *items, int n_items, int k) {
    lf_gen_item *run = (lf_gen_item *)lf__calloc((size_t)n_items + 1, sizeof *run, "synthetic batch");
    int *from = (int *)lf__calloc((size_t)n_items + 1, sizeof(int), "synthetic batch");
    int m = 0;
    lf_status s = run && from ? LF_OK : LF_ERR_NOMEM;
    for (int i = 0; s == LF_OK && i < n_items; i++)
        if (c->out->recs[i / k].verdict != LF_SYNTH_FAILED) from[m] = i, run[m++] = items[i];
    lf_gen_desc g = c->g;
    g.should_stop = lf__synth_should_stop, g.user = c;
    if (s == LF_OK) s = lf_generate_batch(c->d->model, &c->kv, c->d->tok, &g, run, m, lf__synth_on_done);
    for (int i = 0; run && from && i < m; i++) items[from[i]] = run[i];
    LF_FREE(run), LF_FREE(from);
    return s;
}

// The answer's tokens (without special tokens).
static lf_status lf__synth_count(const lf__synth *c, const char *a, size_t len, int *n) {
    int32_t *ids;
    size_t ni;
    lf_status s = lf_tok_encode(c->d->tok, a, len, false, &ids, &ni);
    lf_free(ids);
    *n = (int)LF__MIN(ni, (size_t)INT32_MAX);
    return s;
}

// Removes e when "instruction\nanswer" is a near-duplicate of an earlier kept record's; kept[]
// maps the dedup set's adds to records.
static lf_status lf__synth_dedup(lf__synth *c, lf_synth_record *e, int *kept) {
    if (c->d->keep_duplicates || e->verdict != LF_SYNTH_KEPT) return LF_OK;
    lf__buf b = LF__ZERO;
    lf__buf_puts(&b, e->instruction), lf__buf_putc(&b, '\n'), lf__buf_puts(&b, e->output);
    int64_t dup;
    lf_status s = b.failed ? LF_ERR_NOMEM : lf_dedup_add(&c->dd, b.data, b.len, &dup);
    LF_FREE(b.data);
    if (s == LF_OK && dup >= 0) e->verdict = LF_SYNTH_DUPLICATE, e->dup_of = kept[dup];
    else if (s == LF_OK) kept[c->dd.n_added - 1] = (int)(e - c->out->recs);
    return s;
}

static void lf__synth_summarize(lf__synth *c, uint64_t t0, const lf_gen_item *items, int n_items) {
    lf_synth_summary *u = &c->out->sum;
    lf_synth_result *r = c->out;
    u->records = r->n, u->seconds = (double)(lf_time_ns() - t0) * 1e-9;
    for (int i = 0; i < n_items; i++) u->generated_tokens += items[i].res.n_gen;
    for (int i = 0; i < r->n; i++) {
        const lf_synth_record *e = &r->recs[i];
        u->kept += e->verdict == LF_SYNTH_KEPT, u->failed += e->verdict == LF_SYNTH_FAILED;
        u->filtered += e->verdict == LF_SYNTH_FILTERED, u->duplicates += e->verdict == LF_SYNTH_DUPLICATE;
        u->no_pair += e->verdict == LF_SYNTH_NO_PAIR, u->extra_pairs += e->kind != 0 && e->verdict == LF_SYNTH_KEPT;
        if (e->verdict == LF_SYNTH_FILTERED && (unsigned)e->quality < 6) u->filtered_by[e->quality]++;
    }
}

// Frees the run; a result ending in an error other than a cancellation is emptied.
static lf_status lf__synth_end(lf__synth *c, lf_status s, lf_gen_item *items, int n_items, int32_t **ids, int n) {
    for (int i = 0; items && i < n_items; i++) lf_gen_result_deinit(&items[i].res);
    for (int i = 0; ids && i < n; i++) lf_free(ids[i]);
    LF_FREE(items), LF_FREE(ids);
    if (s != LF_OK && s != LF_ERR_CANCELLED) lf_synth_result_deinit(c->out);
    lf__synth_close(c);
    return s;
}

// e FAILED with the status and message of its generation (a cancelled run's unfinished prompts too).
static lf_status lf__synth_item_failed(lf_synth_record *e, const lf_gen_item *it) {
    lf__fail(it->status, "%s", it->error);
    return lf__synth_fail(e, it->status);
}

LF_API lf_status lf_synth_generate(const lf_synth_desc *d, const lf_synth_prompt *prompts, int n, lf_synth_result *out) {
    lf__synth c;
    uint64_t t0 = lf_time_ns();
    lf_status s = lf__synth_open(&c, d, prompts, n, false, out);
    if (s != LF_OK) return s;
    lf_gen_item *items = (lf_gen_item *)lf__calloc((size_t)n + 1, sizeof *items, "synthetic items");
    int32_t **ids = (int32_t **)lf__calloc((size_t)n + 1, sizeof *ids, "synthetic prompts");
    int *n_ids = (int *)lf__calloc((size_t)n + 1, sizeof(int), "synthetic prompts");
    int *kept = (int *)lf__calloc((size_t)n + 1, sizeof(int), "dedup map");
    if (!items || !ids || !n_ids || !kept) s = LF_ERR_NOMEM;
    if (s == LF_OK) s = lf__synth_items(&c, prompts, n, 1, ids, n_ids, items);
    if (s == LF_OK) s = lf__synth_run(&c, items, n, 1);
    lf_status run = s;  // a cancelled run still judges what it made
    if (s == LF_ERR_CANCELLED) s = LF_OK;
    for (int i = 0; s == LF_OK && i < n; i++) {
        lf_synth_record *e = &out->recs[i];
        const lf_gen_item *it = &items[i];
        const char *a;
        size_t len;
        if (e->verdict == LF_SYNTH_FAILED) continue;
        if (it->status != LF_OK) {
            s = lf__synth_item_failed(e, it);
            continue;
        }
        lf__synth_trim(it->res.text, it->res.len, &a, &len);
        e->finish = it->res.finish;
        lf_status ce = d->check ? d->check(d->user, i, it->res.text, it->res.len) : LF_OK;
        if (ce == LF_ERR_NOMEM) s = ce;
        else if (ce != LF_OK) {
            s = lf__synth_fail(e, ce);
            continue;
        }
        if (s == LF_OK && !(e->output = lf__strndup(a, len, "synthetic answer"))) s = LF_ERR_NOMEM;
        if (s == LF_OK) s = lf__synth_count(&c, a, len, &e->n_tokens);
        if (s == LF_OK) s = lf_quality_check(&d->quality, a, len, e->n_tokens, e->finish == LF_FINISH_STOP, &e->quality);
        if (s == LF_OK && e->quality != LF_QUALITY_OK) e->verdict = LF_SYNTH_FILTERED;
        if (s == LF_OK) s = lf__synth_dedup(&c, e, kept);
    }
    if (s == LF_OK) lf__synth_summarize(&c, t0, items, n), out->sum.prompts = n;
    LF_FREE(n_ids), LF_FREE(kept);
    return lf__synth_end(&c, s == LF_OK ? run : s, items, n, ids, n);
}

// -- 12.6 verifiers

// Whether answer a passes the regex reference pat [n] (ON SYNTHETIC DATA: ^ and $ anchor the
// whole pattern): 1 yes, 0 no, < 0 a status (a bad pattern).
static int lf__verify_regex(const char *pat, size_t n, const char *a, size_t len, int index) {
    size_t bs = 0;
    bool start = n && pat[0] == '^';
    while (bs + 1 < n && pat[n - 2 - bs] == '\\') bs++;
    bool end = n > (size_t)start && pat[n - 1] == '$' && bs % 2 == 0;
    lf__buf p = LF__ZERO;
    lf__buf_puts(&p, "(?:"), lf__buf_put(&p, pat + start, n - start - end), lf__buf_puts(&p, end ? ")(?![\\s\\S])" : ")");
    if (p.failed) return LF_ERR_NOMEM;
    char where[64];
    snprintf(where, sizeof where, "reference of prompt %d", index);
    lf__re re;
    int r = lf__re_compile(&re, p.data, p.len, false, "regex verifier", where);
    LF_FREE(p.data);
    if (r != LF_OK) return r;
    lf__re_ctx x;
    memset(&x, 0, sizeof x);
    x.re = &re, x.s = (const unsigned char *)a, x.n = len;
    size_t ms, me;
    if (start) x.budget = ((uint64_t)1 << 20) + 256 * (uint64_t)len, r = lf__re_run(&x, 0, 0, &me);
    else r = lf__re_find(&x, 0, &ms, &me);
    LF_FREE(x.stk);
    lf__re_free(&re);
    return r;
}

#ifndef LF_NO_STDIO
#ifdef LF_NO_THREADS
#define LF__SIGMASK sigprocmask
#else
#define LF__SIGMASK pthread_sigmask
#endif

// Runs argv (no shell) with the answer on stdin and LF_PROMPT, LF_REFERENCE in its environment:
// 1 exit 0, 0 anything else or past timeout_s (*timed_out; its process group is killed), < 0 a
// status (it cannot start).
static int lf__verify_command(const char *const *argv, const char *prompt, const char *ref, const char *a, size_t len,
                              double timeout_s, bool *timed_out) {
    *timed_out = false;
    size_t ne = 0;
    while (environ && environ[ne]) ne++;
    char **env = (char **)lf__calloc(ne + 3, sizeof(char *), "verifier environment");
    lf__buf pv = LF__ZERO, rv = LF__ZERO;
    lf__buf_puts(&pv, "LF_PROMPT="), lf__buf_puts(&pv, prompt), lf__buf_puts(&rv, "LF_REFERENCE="), lf__buf_puts(&rv, ref);
    if (!env || pv.failed || rv.failed) return LF_FREE(env), LF_FREE(pv.data), LF_FREE(rv.data), LF_ERR_NOMEM;
    size_t k = 0;
    for (size_t i = 0; i < ne; i++)
        if (strncmp(environ[i], "LF_PROMPT=", 10) != 0 && strncmp(environ[i], "LF_REFERENCE=", 13) != 0) env[k++] = environ[i];
    env[k++] = pv.data, env[k++] = rv.data, env[k] = NULL;
    int fd[2] = {-1, -1}, r = 0;
    pid_t pid = 0;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, pipe_set, old;
    sigemptyset(&none), sigemptyset(&pipe_set), sigaddset(&pipe_set, SIGPIPE);
    posix_spawn_file_actions_init(&fa), posix_spawnattr_init(&at);
    if (pipe(fd) != 0) r = lf__fail(LF_ERR_IO, "verifier: pipe: %s", strerror(errno));
    else {
        fcntl(fd[0], F_SETFD, FD_CLOEXEC), fcntl(fd[1], F_SETFD, FD_CLOEXEC), fcntl(fd[1], F_SETFL, O_NONBLOCK);
        posix_spawn_file_actions_adddup2(&fa, fd[0], 0);
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        posix_spawnattr_setpgroup(&at, 0), posix_spawnattr_setsigmask(&at, &none), posix_spawnattr_setsigdefault(&at, &pipe_set);
        int e = posix_spawnp(&pid, argv[0], &fa, &at, (char *const *)argv, env);
        if (e != 0) r = lf__fail(LF_ERR_IO, "verifier: cannot run '%s': %s", argv[0], strerror(e));
        close(fd[0]);
    }
    posix_spawn_file_actions_destroy(&fa), posix_spawnattr_destroy(&at);
    LF_FREE(env), LF_FREE(pv.data), LF_FREE(rv.data);
    if (r < 0) {
        if (fd[1] >= 0) close(fd[1]);
        return r;
    }
    // write the answer without blocking past the deadline; a child that exits unread gives EPIPE,
    // whose SIGPIPE stays blocked on this thread and is taken back before unblocking
    uint64_t deadline = lf_time_ns() + (uint64_t)(timeout_s * 1e9);
    sigset_t pending;
    sigpending(&pending);
    bool had_pipe = sigismember(&pending, SIGPIPE), broke = false;
    LF__SIGMASK(SIG_BLOCK, &pipe_set, &old);
    for (size_t off = 0; off < len && !*timed_out;) {
        ssize_t w = write(fd[1], a + off, len - off);
        if (w > 0) off += (size_t)w;
        else if (w < 0 && errno == EPIPE) broke = true, off = len;
        else if (w < 0 && errno != EAGAIN && errno != EINTR) off = len;
        else {
            struct pollfd p = {fd[1], POLLOUT, 0};
            uint64_t now = lf_time_ns();
            if (now >= deadline) *timed_out = true;
            else poll(&p, 1, (int)LF__MIN((deadline - now) / 1000000 + 1, 1000));
        }
    }
    close(fd[1]);
    if (broke && !had_pipe) {
        struct timespec zero = {0, 0};
        sigtimedwait(&pipe_set, NULL, &zero);
    }
    LF__SIGMASK(SIG_SETMASK, &old, NULL);
    int st = 0;
    for (long nap = 1000000; !*timed_out;) {  // wait, napping 1 ms growing to 20 ms
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid || (w < 0 && errno != EINTR)) break;
        if (lf_time_ns() >= deadline) *timed_out = true;
        else {
            struct timespec ts = {0, nap};
            nanosleep(&ts, NULL);
            nap = LF__MIN(nap * 2, 20000000L);
        }
    }
    if (*timed_out) {
        kill(-pid, SIGKILL);
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
        return 0;
    }
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}
#endif

// Whether answer a passes p's reference: 1 yes, 0 no, < 0 a status.
static int lf__synth_verify(lf__synth *c, const lf_synth_prompt *p, int index, const char *a, size_t len) {
    const lf_synth_desc *d = c->d;
    const char *t, *ref;
    size_t n, rn;
    lf__synth_trim(a, len, &t, &n);
    lf__synth_trim(p->reference, strlen(p->reference), &ref, &rn);
    switch (d->verify) {
    case LF_VERIFY_EXACT:
        if (d->verify_first_line) {
            const char *nl = (const char *)memchr(t, '\n', n);
            if (nl) lf__synth_trim(t, (size_t)(nl - t), &t, &n);
        }
        return n == rn && memcmp(t, ref, n) == 0;
    case LF_VERIFY_REGEX: return lf__verify_regex(ref, rn, t, n, index);
    default: {
#ifndef LF_NO_STDIO
        bool late;
        int r = lf__verify_command(d->verify_argv, p->instruction, p->reference, t, n, c->timeout_s, &late);
        c->out->sum.verify_timeouts += late;
        return r;
#else
        return lf__fail(LF_ERR_UNSUPPORTED, "verifier: commands need stdio (built with LF_NO_STDIO)");
#endif
    }
    }
}

// -- 12.7 preference pairs

// One answer of a prompt.
typedef struct lf__synth_cand {
    const char *text;  // trimmed, len bytes
    size_t len;
    bool gen;          // generated, and desc.check let it through
    bool ok;           // gen, distinct from an earlier answer, scored
    bool accepted;     // the verifier's verdict (true without one)
    lf_quality quality;
    int n_tokens;
    double score;      // length-normalized log-probability
} lf__synth_cand;

// The length-normalized log-probabilities of answers a[n] after the prompt, all in one scoring
// call (ON SYNTHETIC DATA); scored[i] false for an answer without tokens or too long for the context.
static lf_status lf__synth_score(lf__synth *c, const int32_t *prompt, int n_prompt, const char *const *a, const size_t *len,
                                 int n, double *score, bool *scored) {
    int32_t **ids = (int32_t **)lf__calloc((size_t)n + 1, sizeof *ids, "scoring");
    int *ni = (int *)lf__calloc(2 * (size_t)n + 1, sizeof(int), "scoring"), *at = ni ? ni + n : NULL, m = 0;
    double *sums = (double *)lf__calloc((size_t)n + 1, sizeof(double), "scoring");
    lf_status s = ids && ni && sums ? LF_OK : LF_ERR_NOMEM;
    for (int i = 0; s == LF_OK && i < n; i++) {
        lf__buf b = LF__ZERO;
        size_t k = 0;
        if (c->fewshot) lf__buf_putc(&b, ' ');
        lf__buf_put(&b, a[i], len[i]);
        s = b.failed ? LF_ERR_NOMEM : lf_tok_encode(c->d->tok, b.data, b.len, false, &ids[m], &k);
        LF_FREE(b.data);
        scored[i] = s == LF_OK && k > 0 && (int64_t)n_prompt + (int64_t)k - 1 <= c->ctx;
        if (scored[i]) ni[m] = (int)k, at[m++] = i;
        else if (s == LF_OK) lf_free(ids[m]), ids[m] = NULL;
    }
    if (s == LF_OK && m > 0) s = lf_score_logprobs(c->d->model, &c->kv, 0, prompt, n_prompt, (const int32_t *const *)ids, ni, m, sums);
    for (int j = 0; s == LF_OK && j < m; j++) score[at[j]] = sums[j] / ni[j];
    for (int j = 0; ids && j <= m; j++) lf_free(ids[j]);
    LF_FREE(ids), LF_FREE(ni), LF_FREE(sums);
    return s;
}

// Reads, scores and verifies prompt i's k answers (items[0, k)) into cd.
static lf_status lf__synth_candidates(lf__synth *c, const lf_synth_prompt *p, int i, const int32_t *prompt, int n_prompt,
                                      const lf_gen_item *items, lf__synth_cand *cd, bool verify, lf_synth_record *e) {
    const lf_synth_desc *d = c->d;
    const char *txt[64];
    size_t len[64];
    double score[64];
    bool scored[64];
    int at[64], m = 0;
    lf_status s = LF_OK;
    for (int j = 0; s == LF_OK && j < c->k; j++) {
        lf__synth_cand *x = &cd[j];
        memset(x, 0, sizeof *x);
        lf_status ce = items[j].status != LF_OK ? lf__fail(items[j].status, "%s", items[j].error)
                       : d->check                ? d->check(d->user, i, items[j].res.text, items[j].res.len)
                                                 : LF_OK;
        if (ce == LF_ERR_NOMEM) return ce;
        if (ce != LF_OK) {  // the first failure is the prompt's, should every answer fail
            if (e->status == LF_OK) s = lf__synth_fail(e, ce);
            continue;
        }
        lf__synth_trim(items[j].res.text, items[j].res.len, &x->text, &x->len);
        x->gen = true;
        bool dup = false;
        for (int t = 0; t < j && !dup; t++) dup = cd[t].gen && cd[t].len == x->len && memcmp(cd[t].text, x->text, x->len) == 0;
        if ((s = lf__synth_count(c, x->text, x->len, &x->n_tokens)) == LF_OK)
            s = lf_quality_check(&d->quality, x->text, x->len, x->n_tokens, items[j].res.finish == LF_FINISH_STOP, &x->quality);
        if (!dup) txt[m] = x->text, len[m] = x->len, at[m++] = j;
    }
    if (s == LF_OK && m > 0) s = lf__synth_score(c, prompt, n_prompt, txt, len, m, score, scored);
    for (int t = 0; s == LF_OK && t < m; t++) {
        lf__synth_cand *x = &cd[at[t]];
        if (!scored[t]) continue;
        int r = verify ? lf__synth_verify(c, p, i, x->text, x->len) : 1;
        if (r == LF_ERR_NOMEM || r == LF_ERR_IO) return (lf_status)r;
        if (r < 0) return memset(cd, 0, (size_t)c->k * sizeof *cd), lf__synth_fail(e, (lf_status)r);  // a bad pattern fails the prompt
        x->score = score[t], x->accepted = r == 1, x->ok = true;
    }
    return s;
}

// Judges prompt i's answers into record e (ON SYNTHETIC DATA: chosen and rejected).
static lf_status lf__synth_pair(lf__synth *c, const lf_synth_prompt *p, int i, const int32_t *prompt, int n_prompt,
                                const lf_gen_item *items, lf__synth_cand *cd, lf_synth_record *e) {
    bool verify = c->d->verify != LF_VERIFY_NONE && p->reference;
    lf_status s = lf__synth_candidates(c, p, i, prompt, n_prompt, items, cd, verify, e);
    if (s != LF_OK) return s;
    int best = -1, worst = -1, gen = 0, ok = 0, accepted = 0;
    for (int j = 0; j < c->k; j++) {
        const lf__synth_cand *x = &cd[j];
        gen += x->gen, ok += x->ok, accepted += x->ok && x->accepted;
        if (x->ok && x->accepted && x->quality == LF_QUALITY_OK && (best < 0 || x->score > cd[best].score)) best = j;
    }
    for (int j = 0; j < c->k; j++) {  // verifying: the best-scored refused answer; else the worst-scored other one
        const lf__synth_cand *x = &cd[j];
        if (x->ok && j != best && !(verify && x->accepted) &&
            (worst < 0 || (verify ? x->score > cd[worst].score : x->score < cd[worst].score)))
            worst = j;
    }
    if (gen == 0) return LF_OK;  // every answer failed: e is FAILED with the first failure
    LF_FREE(e->error), e->error = NULL, e->status = LF_OK, e->verdict = LF_SYNTH_KEPT;
    const char *why = NULL;
    if (best < 0 && verify && accepted == 0 && ok > 0) why = "no answer passed the verifier";
    else if (best < 0) {  // every candidate for chosen fails the quality filter
        for (int j = 0; j < c->k && e->verdict == LF_SYNTH_KEPT; j++)
            if (cd[j].gen && cd[j].quality != LF_QUALITY_OK && (!verify || cd[j].accepted || !cd[j].ok))
                e->verdict = LF_SYNTH_FILTERED, e->quality = cd[j].quality;
        if (e->verdict == LF_SYNTH_FILTERED) return LF_OK;
        why = "no answer could be scored";
    } else if (worst < 0)
        why = verify ? "every answer passed the verifier" : "fewer than two distinct answers";
    if (why) {
        e->verdict = LF_SYNTH_NO_PAIR;
        return (e->error = lf__strndup(why, strlen(why), "synthetic record")) ? LF_OK : LF_ERR_NOMEM;
    }
    e->chosen_score = cd[best].score, e->rejected_score = cd[worst].score, e->n_tokens = cd[best].n_tokens;
    e->finish = items[best].res.finish;
    if (!(e->output = lf__strndup(cd[best].text, cd[best].len, "chosen answer")) ||
        !(e->rejected = lf__strndup(cd[worst].text, cd[worst].len, "rejected answer")))
        return LF_ERR_NOMEM;
    return LF_OK;
}

// Extra negatives for every kept pair (ON SYNTHETIC DATA), each prompt's scored in one call.
static lf_status lf__synth_extras(lf__synth *c, int n, int32_t **ids, const int *n_ids) {
    lf_synth_result *r = c->out;
    lf_status s = LF_OK;
    for (int i = 0; s == LF_OK && i < n; i++) {
        const lf_synth_record *e = &r->recs[i];
        const char *neg[2];
        size_t len[2];
        int kind[2], m = 0;
        if (e->verdict != LF_SYNTH_KEPT) continue;
        if (c->d->negatives & LF_SYNTH_NEG_TRUNCATED) {  // the first half of its words
            const char *t = e->output;
            size_t words = 0, end = strlen(t);
            for (size_t j = 0; j < end; j++) words += !lf__syn_space((unsigned char)t[j]) && (j == 0 || lf__syn_space((unsigned char)t[j - 1]));
            for (size_t j = 0, w = 0; j < end && words >= 2; j++)
                if (!lf__syn_space((unsigned char)t[j]) && (j + 1 == end || lf__syn_space((unsigned char)t[j + 1])) && ++w == words / 2) {
                    neg[m] = t, len[m] = j + 1, kind[m++] = LF_SYNTH_NEG_TRUNCATED;
                    break;
                }
        }
        if (c->d->negatives & LF_SYNTH_NEG_OTHER) {  // another kept prompt's chosen answer
            lf_rng g;
            lf_rng_seed(&g, lf_gen_seed(c->g.sampling.seed, (uint64_t)i) ^ 0x9FB21C651E98DF25ull);
            int start = (int)(lf_rng_u64(&g) % (uint64_t)n);
            for (int t = 0; t < n; t++) {
                const lf_synth_record *o = &r->recs[(start + t) % n];
                if (o->verdict == LF_SYNTH_KEPT && o != e && strcmp(o->output, e->output) != 0) {
                    neg[m] = o->output, len[m] = strlen(o->output), kind[m++] = LF_SYNTH_NEG_OTHER;
                    break;
                }
            }
        }
        double score[2];
        bool scored[2];
        if (m > 0) s = lf__synth_score(c, ids[i], n_ids[i], neg, len, m, score, scored);
        for (int j = 0; s == LF_OK && j < m; j++) {
            if (!scored[j]) continue;
            lf_synth_record *x = &r->recs[r->n++];
            *x = *e;
            x->kind = kind[j], x->rejected_score = score[j];
            x->instruction = lf__strndup(e->instruction, strlen(e->instruction), "synthetic record");
            x->output = lf__strndup(e->output, strlen(e->output), "chosen answer");
            x->rejected = lf__strndup(neg[j], len[j], "rejected answer");
            if (!x->instruction || !x->output || !x->rejected) s = LF_ERR_NOMEM;
        }
    }
    return s;
}

LF_API lf_status lf_synth_preferences(const lf_synth_desc *d, const lf_synth_prompt *prompts, int n,
                                      lf_synth_result *out) {
    lf__synth c;
    uint64_t t0 = lf_time_ns();
    lf_status s = lf__synth_open(&c, d, prompts, n, true, out);
    if (s != LF_OK) return s;
    int k = c.k, n_items = n * k;
    lf_gen_item *items = (lf_gen_item *)lf__calloc((size_t)n_items + 1, sizeof *items, "synthetic items");
    int32_t **ids = (int32_t **)lf__calloc((size_t)n + 1, sizeof *ids, "synthetic prompts");
    int *n_ids = (int *)lf__calloc((size_t)n + 1, sizeof(int), "synthetic prompts");
    int *kept = (int *)lf__calloc((size_t)n + 1, sizeof(int), "dedup map");
    lf__synth_cand *cd = (lf__synth_cand *)lf__calloc((size_t)k, sizeof *cd, "preference candidates");
    if (!items || !ids || !n_ids || !kept || !cd) s = LF_ERR_NOMEM;
    if (s == LF_OK) s = lf__synth_items(&c, prompts, n, k, ids, n_ids, items);
    if (s == LF_OK) s = lf__synth_run(&c, items, n_items, k);
    lf_status run = s;
    if (s == LF_ERR_CANCELLED) s = LF_OK;
    for (int i = 0; s == LF_OK && i < n; i++) {
        lf_synth_record *e = &out->recs[i];
        if (e->verdict == LF_SYNTH_FAILED) continue;
        s = lf__synth_pair(&c, &prompts[i], i, ids[i], n_ids[i], items + (size_t)i * (size_t)k, cd, e);
        if (s == LF_OK) s = lf__synth_dedup(&c, e, kept);
    }
    if (s == LF_OK && run == LF_OK) s = lf__synth_extras(&c, n, ids, n_ids);
    if (s == LF_OK) lf__synth_summarize(&c, t0, items, n_items), out->sum.prompts = n;
    LF_FREE(n_ids), LF_FREE(kept), LF_FREE(cd);
    return lf__synth_end(&c, s == LF_OK ? run : s, items, n_items, ids, n);
}

// -- 12.8 output, prompts files, config

LF_API lf_status lf_synth_format_from_name(const char *name, lf_synth_format *out) {
    static const char *const names[] = {"default", "alpaca", "messages", "dpo", "dpo_messages"};
    for (int i = 0; name && i < 5; i++)
        if (strcmp(name, names[i]) == 0) return *out = (lf_synth_format)i, LF_OK;
    return lf__fail(LF_ERR_ARG, "unknown synthetic data format '%s' (expected alpaca, messages, dpo or dpo_messages)",
                    name ? name : "(null)");
}

// {"role": role, "content": text}
static void lf__synth_msg(lf__buf *b, const char *role, const char *text) {
    lf__buf_printf(b, "{\"role\": \"%s\", \"content\": ", role);
    lf__buf_json_str(b, text, strlen(text));
    lf__buf_putc(b, '}');
}
static void lf__synth_field(lf__buf *b, const char *key, const char *text, bool last) {
    lf__buf_printf(b, "\"%s\": ", key);
    lf__buf_json_str(b, text, strlen(text));
    lf__buf_puts(b, last ? "}" : ", ");
}

LF_API lf_status lf_synth_serialize(const lf_synth_result *r, lf_synth_format f, bool json_array, char **out, size_t *len) {
    *out = NULL, *len = 0;
    if (f == LF_SYNTH_FORMAT_DEFAULT) f = r->preferences ? LF_SYNTH_DPO : LF_SYNTH_ALPACA;
    bool pref = f == LF_SYNTH_DPO || f == LF_SYNTH_DPO_MESSAGES;
    if ((unsigned)f > LF_SYNTH_DPO_MESSAGES || pref != r->preferences)
        return lf__fail(LF_ERR_ARG, "synth: format %d does not hold %s", (int)f, r->preferences ? "preference pairs" : "instruction data");
    lf__buf b = LF__ZERO;
    const char *sys = r->system;
    int written = 0;
    if (json_array) lf__buf_putc(&b, '[');
    for (int i = 0; i < r->n; i++) {
        const lf_synth_record *e = &r->recs[i];
        if (e->verdict != LF_SYNTH_KEPT) continue;
        if (json_array) lf__buf_puts(&b, written++ ? ",\n" : "\n");
        lf__buf_putc(&b, '{');
        if (f == LF_SYNTH_ALPACA) {
            lf__synth_field(&b, "instruction", e->instruction, false);
            lf__synth_field(&b, "input", "", false);
            lf__synth_field(&b, "output", e->output, true);
        } else if (f == LF_SYNTH_DPO) {
            lf__synth_field(&b, "prompt", e->instruction, false);
            lf__synth_field(&b, "chosen", e->output, false);
            lf__synth_field(&b, "rejected", e->rejected, true);
        } else {
            lf__buf_puts(&b, f == LF_SYNTH_MESSAGES ? "\"messages\": [" : "\"prompt\": [");
            if (sys) lf__synth_msg(&b, "system", sys), lf__buf_puts(&b, ", ");
            lf__synth_msg(&b, "user", e->instruction);
            lf__buf_puts(&b, f == LF_SYNTH_MESSAGES ? ", " : "], \"chosen\": [");
            lf__synth_msg(&b, "assistant", e->output);
            if (f == LF_SYNTH_DPO_MESSAGES) lf__buf_puts(&b, "], \"rejected\": ["), lf__synth_msg(&b, "assistant", e->rejected);
            lf__buf_puts(&b, "]}");
        }
        if (!json_array) lf__buf_putc(&b, '\n');
    }
    if (json_array) lf__buf_puts(&b, "\n]\n");
    if (!b.data) lf__buf_put(&b, "", 0);
    if (b.failed) return LF_FREE(b.data), LF_ERR_NOMEM;
    *out = b.data, *len = b.len;
    return LF_OK;
}

#ifndef LF_NO_STDIO
LF_API lf_status lf_synth_write(const lf_synth_result *r, lf_synth_format f, bool json_array, const char *path) {
    char *text;
    size_t len;
    lf_status s = lf_synth_serialize(r, f, json_array, &text, &len);
    if (s == LF_OK) s = lf_file_write_atomic(path, text, len);
    lf_free(text);
    return s;
}

// Takes one prompt record into the pool: instruction (+ input) or prompt, reference or output.
// Offsets into the pool are kept (it moves as it grows); SIZE_MAX: no reference.
static lf_status lf__synth_take(const lf_node *o, const char *where, lf__buf *pool, size_t *ins, size_t *ref) {
    static const char *const keys[] = {"instruction", "input", "prompt", "reference", "output"};
    const lf_node *f[5];
    if (o->type == LF_NODE_STRING) {  // a bare string is a prompt
        *ins = pool->len, *ref = SIZE_MAX;
        lf__buf_put(pool, o->str, o->len), lf__buf_putc(pool, 0);
        return pool->failed ? LF_ERR_NOMEM : LF_OK;
    }
    if (o->type != LF_NODE_OBJECT) return lf__fail(LF_ERR_FORMAT, "%s: expected an object or a string, got %s", where, lf__json_type_name(o));
    for (int i = 0; i < 5; i++)
        if ((f[i] = lf_node_get(o, keys[i])) && f[i]->type != LF_NODE_STRING && f[i]->type != LF_NODE_NULL)
            return lf__fail(LF_ERR_FORMAT, "%s: field '%s': expected a string, got %s", where, keys[i], lf__json_type_name(f[i]));
        else if (f[i] && f[i]->type == LF_NODE_NULL) f[i] = NULL;
    const lf_node *in = f[0] ? f[0] : f[2], *rf = f[3] ? f[3] : f[4];
    if (!in) return lf__fail(LF_ERR_FORMAT, "%s: a prompt record needs 'instruction' or 'prompt'", where);
    *ins = pool->len;
    lf__buf_put(pool, in->str, in->len);
    if (f[0] && f[1] && f[1]->len) lf__buf_puts(pool, "\n\n"), lf__buf_put(pool, f[1]->str, f[1]->len);
    lf__buf_putc(pool, 0);
    *ref = rf ? pool->len : SIZE_MAX;
    if (rf) lf__buf_put(pool, rf->str, rf->len), lf__buf_putc(pool, 0);
    return pool->failed ? LF_ERR_NOMEM : LF_OK;
}

LF_API lf_status lf_synth_load(lf_synth_prompts *p, const char *path) {
    memset(p, 0, sizeof *p);
    char *text = NULL, where[1100];
    size_t len = 0, n = 0, cap = 0, *off = NULL;  // off: [2n] instruction, reference offsets
    lf__buf pool = LF__ZERO;
    lf_status s = lf_file_read(path, 0, &text, &len);
    size_t pl = strlen(path), at = 0;
    while (at < len && lf__syn_space((unsigned char)text[at])) at++;
    bool txt = pl >= 4 && strcmp(path + pl - 4, ".txt") == 0, array = !txt && at < len && text[at] == '[';
    lf_doc doc;
    memset(&doc, 0, sizeof doc);
    if (s == LF_OK && array && (s = lf_json_parse(&doc, text, len, path)) == LF_OK && doc.root->type != LF_NODE_ARRAY)
        s = lf__fail(LF_ERR_FORMAT, "%s: expected an array of objects", path);
    int64_t line = 0;
    for (size_t i = 0; s == LF_OK && (array ? i < (size_t)doc.root->n : i < len);) {
        const char *l = text + i, *nl = array ? NULL : (const char *)memchr(l, '\n', len - i);
        size_t ll = array ? 0 : nl ? (size_t)(nl - l) : len - i, a;
        line++;
        if (!lf__grow((void **)&off, &cap, 2 * n + 2, sizeof *off, "prompts")) {
            s = LF_ERR_NOMEM;
            break;
        }
        if (array) {
            snprintf(where, sizeof where, "%s: item %zu", path, i);
            s = lf__synth_take(&doc.root->kids[i], where, &pool, &off[2 * n], &off[2 * n + 1]);
            i++, n++;
            continue;
        }
        i += ll + 1;
        const char *t;
        lf__synth_trim(l, ll, &t, &a);
        if (a == 0) continue;  // blank lines separate nothing
        if (txt) {
            while (ll && l[ll - 1] == '\r') ll--;
            off[2 * n] = pool.len, off[2 * n + 1] = SIZE_MAX, n++;
            lf__buf_put(&pool, l, ll), lf__buf_putc(&pool, 0);
            if (pool.failed) s = LF_ERR_NOMEM;
            continue;
        }
        lf_doc ld;
        snprintf(where, sizeof where, "%s:%lld", path, (long long)line);
        if ((s = lf_json_parse(&ld, l, ll, where)) == LF_OK) s = lf__synth_take(ld.root, where, &pool, &off[2 * n], &off[2 * n + 1]);
        lf_doc_deinit(&ld);
        n++;
    }
    lf_doc_deinit(&doc);
    if (s == LF_OK && n > INT32_MAX) s = lf__fail(LF_ERR_CAPACITY, "%s: more than %d prompts", path, INT32_MAX);
    if (s == LF_OK && !(p->items = (lf_synth_prompt *)lf__calloc(n + 1, sizeof *p->items, "prompts"))) s = LF_ERR_NOMEM;
    for (size_t i = 0; s == LF_OK && i < n; i++) {
        p->items[i].instruction = pool.data + off[2 * i];
        p->items[i].reference = off[2 * i + 1] == SIZE_MAX ? NULL : pool.data + off[2 * i + 1];
    }
    if (s == LF_OK) p->n = (int)n, p->mem_ = pool.data;
    else LF_FREE(pool.data), LF_FREE(p->items), p->items = NULL;
    LF_FREE(off), LF_FREE(text);
    return s;
}
#endif

LF_API void lf_synth_prompts_deinit(lf_synth_prompts *p) {
    LF_FREE(p->items), LF_FREE(p->mem_);
    memset(p, 0, sizeof *p);
}

// The config's section key as a sub-document name ("file: synth.quality") for messages.
static lf_doc lf__cfg_sub(const lf_doc *doc, const char *section) {
    lf_doc s = *doc;
    snprintf(s.name, sizeof s.name, "%.200s: %s", doc->name, section);
    return s;
}

LF_API lf_status lf_synth_config_read(lf_synth_config *c, const lf_doc *doc) {
    static const char *const mk[] = {"name", "base", "template", "threads"};
    static const char *const sk[] = {"prompts", "output", "format", "json", "system", "batch_size", "demonstrations",
                                     "shots", "quality", "dedup", "preferences"};
    static const char *const qk[] = {"min_tokens", "max_tokens", "repeat_ngram", "max_repeat_fraction", "allow_unfinished"};
    static const char *const dk[] = {"enabled", "threshold", "shingle", "num_perm", "bands", "seed"};
    static const char *const pk[] = {"num_responses", "temperature_range", "negatives", "verifier", "first_line", "command",
                                     "timeout"};
    memset(c, 0, sizeof *c);
    lf_synth_desc *d = &c->desc;
    const lf_node *mo = lf_node_get(doc->root, "model"), *sy = lf_node_get(doc->root, "synth");
    const lf_node *qo = lf_node_get(sy, "quality"), *dd = lf_node_get(sy, "dedup"), *po = lf_node_get(sy, "preferences");
    lf_doc m = lf__cfg_sub(doc, "model"), y = lf__cfg_sub(doc, "synth"), q = lf__cfg_sub(doc, "synth.quality");
    lf_doc u = lf__cfg_sub(doc, "synth.dedup"), p = lf__cfg_sub(doc, "synth.preferences");
    const char *tmpl = NULL, *fmt = NULL, *ver = NULL;
    int64_t th = 0, bs = 0, sh = 0, mn = 0, mx = 0, rn = 0, sg = 0, np = 0, bands = 0, seed = 0, nr = 0;
    double thr = 0, tmo = 0;
    bool dedup_on = true;
    const lf_node *base = lf_node_get(mo, "base");
    lf_status s = lf_cfg_keys(doc, mo, "model", mk, 4);
    if (s == LF_OK) s = lf_cfg_keys(doc, sy, "synth", sk, 11);
    if (s == LF_OK) s = lf_cfg_keys(doc, qo, "synth.quality", qk, 5);
    if (s == LF_OK) s = lf_cfg_keys(doc, dd, "synth.dedup", dk, 6);
    if (s == LF_OK) s = lf_cfg_keys(doc, po, "synth.preferences", pk, 7);
    if (s == LF_OK) s = lf_cfg_str(&m, mo, "name", false, &c->model);
    if (s == LF_OK) s = lf_cfg_str(&m, mo, "template", false, &tmpl);
    if (s == LF_OK) s = lf_cfg_int(&m, mo, "threads", false, 0, 4096, &th);
    if (s == LF_OK && base && base->type != LF_NODE_NULL) {
        bool b = false;
        if ((s = lf_cfg_bool(&m, mo, "base", false, &b)) == LF_OK) d->prompting = b ? LF_SYNTH_PROMPT_FEWSHOT : LF_SYNTH_PROMPT_CHAT;
    }
    if (s == LF_OK) s = lf_cfg_str(&y, sy, "prompts", false, &c->prompts);
    if (s == LF_OK) s = lf_cfg_str(&y, sy, "output", false, &c->output);
    if (s == LF_OK) s = lf_cfg_str(&y, sy, "format", false, &fmt);
    if (s == LF_OK) s = lf_cfg_bool(&y, sy, "json", false, &c->json);
    if (s == LF_OK) s = lf_cfg_str(&y, sy, "system", false, &d->system);
    if (s == LF_OK) s = lf_cfg_int(&y, sy, "batch_size", false, 1, 4096, &bs);
    if (s == LF_OK) s = lf_cfg_str(&y, sy, "demonstrations", false, &c->demonstrations);
    if (s == LF_OK) s = lf_cfg_int(&y, sy, "shots", false, 0, 64, &sh);
    if (s == LF_OK) s = lf_cfg_int(&q, qo, "min_tokens", false, 0, INT32_MAX, &mn);
    if (s == LF_OK) s = lf_cfg_int(&q, qo, "max_tokens", false, 0, INT32_MAX, &mx);
    if (s == LF_OK) s = lf_cfg_int(&q, qo, "repeat_ngram", false, 1, 32, &rn);
    if (s == LF_OK) s = lf_cfg_num(&q, qo, "max_repeat_fraction", false, &d->quality.max_repeat_fraction);
    if (s == LF_OK) s = lf_cfg_bool(&q, qo, "allow_unfinished", false, &d->quality.allow_unfinished);
    if (s == LF_OK) s = lf_cfg_bool(&u, dd, "enabled", false, &dedup_on);
    if (s == LF_OK) s = lf_cfg_num(&u, dd, "threshold", false, &thr);
    if (s == LF_OK) s = lf_cfg_int(&u, dd, "shingle", false, 1, 64, &sg);
    if (s == LF_OK) s = lf_cfg_int(&u, dd, "num_perm", false, 1, 65536, &np);
    if (s == LF_OK) s = lf_cfg_int(&u, dd, "bands", false, 0, 65536, &bands);
    if (s == LF_OK) s = lf_cfg_int(&u, dd, "seed", false, 0, (int64_t)1 << 53, &seed);
    if (s == LF_OK) s = lf_cfg_int(&p, po, "num_responses", false, 2, 64, &nr);
    if (s == LF_OK) s = lf_cfg_str(&p, po, "verifier", false, &ver);
    if (s == LF_OK) s = lf_cfg_bool(&p, po, "first_line", false, &d->verify_first_line);
    if (s == LF_OK) s = lf_cfg_num(&p, po, "timeout", false, &tmo);
    if (s != LF_OK) return s;
    if (tmpl && lf_chat_template_from_name(tmpl, &d->chat) != LF_OK)
        return lf__fail(LF_ERR_CONFIG, "%s: template: '%s' is not default, chatml, llama3, llama2, mistral, plain", m.name, tmpl);
    if (fmt && (lf_synth_format_from_name(fmt, &c->format) != LF_OK))
        return lf__fail(LF_ERR_CONFIG, "%s: format: '%s' is not alpaca, messages, dpo or dpo_messages", y.name, fmt);
    if (qo && lf_node_get(qo, "max_repeat_fraction") && !(d->quality.max_repeat_fraction > 0 && d->quality.max_repeat_fraction <= 1))
        return lf__fail(LF_ERR_CONFIG, "%s: max_repeat_fraction: must be in (0, 1], got %g", q.name, d->quality.max_repeat_fraction);
    if (dd && lf_node_get(dd, "threshold") && !(thr > 0 && thr <= 1))
        return lf__fail(LF_ERR_CONFIG, "%s: threshold: must be in (0, 1], got %g", u.name, thr);
    if (po && lf_node_get(po, "timeout") && !(tmo > 0)) return lf__fail(LF_ERR_CONFIG, "%s: timeout: must be > 0, got %g", p.name, tmo);
    static const char *const vn[] = {"none", "exact", "regex", "command"};
    for (int i = 0; ver && i < 4; i++)
        if (strcmp(ver, vn[i]) == 0) d->verify = (lf_verify)i, ver = NULL;
    if (ver) return lf__fail(LF_ERR_CONFIG, "%s: verifier: '%s' is not none, exact, regex or command", p.name, ver);
    const lf_node *tr = lf_node_get(po, "temperature_range"), *ng = lf_node_get(po, "negatives"), *cm = lf_node_get(po, "command");
    if (tr && tr->type != LF_NODE_NULL) {
        if (tr->type != LF_NODE_ARRAY || tr->n != 2 || tr->kids[0].type != LF_NODE_NUMBER || tr->kids[1].type != LF_NODE_NUMBER ||
            !(tr->kids[0].num >= 0 && tr->kids[0].num <= tr->kids[1].num))
            return lf__fail(LF_ERR_CONFIG, "%s: temperature_range: must be [low, high] with 0 <= low <= high", p.name);
        d->temperature_range[0] = (float)tr->kids[0].num, d->temperature_range[1] = (float)tr->kids[1].num;
    }
    for (int i = 0; ng && ng->type != LF_NODE_NULL && i < (ng->type == LF_NODE_ARRAY ? ng->n : 1); i++) {
        const lf_node *v = ng->type == LF_NODE_ARRAY ? &ng->kids[i] : ng;
        if (v->type == LF_NODE_STRING && strcmp(v->str, "truncated") == 0) d->negatives |= LF_SYNTH_NEG_TRUNCATED;
        else if (v->type == LF_NODE_STRING && strcmp(v->str, "other_prompt") == 0) d->negatives |= LF_SYNTH_NEG_OTHER;
        else return lf__fail(LF_ERR_CONFIG, "%s: negatives: expected a list of truncated, other_prompt", p.name);
    }
    if (cm && cm->type != LF_NODE_NULL) {
        if (cm->type != LF_NODE_ARRAY || cm->n > LF_MAX_VERIFY_ARGS)
            return lf__fail(LF_ERR_CONFIG, "%s: command: must be a list of at most %d strings (program, arguments)", p.name, LF_MAX_VERIFY_ARGS);
        for (int i = 0; i < cm->n; i++) {
            if (cm->kids[i].type != LF_NODE_STRING) return lf__fail(LF_ERR_CONFIG, "%s: command[%d]: must be a string", p.name, i);
            c->argv_[i] = cm->kids[i].str;
        }
        d->verify_argv = c->argv_;
    }
    if (d->verify == LF_VERIFY_COMMAND && !(c->argv_[0] && c->argv_[0][0]))
        return lf__fail(LF_ERR_CONFIG, "%s: command: the command verifier needs [program, args...]", p.name);
    c->threads = (int)th, d->batch_size = (int)bs, d->shots = (int)sh, d->verify_timeout_s = tmo, d->num_responses = (int)nr;
    d->quality.min_tokens = (int)mn, d->quality.max_tokens = (int)mx, d->quality.repeat_ngram = (int)rn;
    d->dedup.threshold = thr, d->dedup.shingle = (int)sg, d->dedup.num_perm = (int)np, d->dedup.bands = (int)bands;
    d->dedup.seed = (uint64_t)seed, d->keep_duplicates = !dedup_on;
    return LF_OK;
}

// -- 12.6 the serving engine

#ifndef LF_NO_THREADS
#define LF__LOCK(e) pthread_mutex_lock(&(e)->mu)
#define LF__UNLOCK(e) pthread_mutex_unlock(&(e)->mu)
#else
#define LF__LOCK(e) ((void)0)
#define LF__UNLOCK(e) ((void)0)
#endif

typedef struct lf__ereq {
    uint64_t id, t_submit;
    lf_engine_req r;           // r.prompt and r.gen.stop point into mem
    void *mem;
    lf__gen_seq q;             // once admitted
    lf_gen_result res;
    int slot;                  // KV slot once admitted, else -1
    int done;                  // prompt positions in the cache (mapped or computed)
    int cached;                // leading blocks registered in (or mapped from) the prefix cache
    bool cancel, sampled;      // cancel asked; a token was drawn (it decodes now)
    float *logits;             // this step's row, when it has one
    struct lf__ereq *next;
} lf__ereq;

// The prefix cache: an entry per KV block id, chained in hash buckets. A cached block's content
// is its LF_KV_BLOCK prompt tokens after the cached block `parent` (-1: the prompt's start), so
// equal keys mean equal prefixes; the cache holds one reference of the block.
typedef struct lf__pentry {
    int32_t parent, next;      // next: the bucket chain
    bool cached;
    uint64_t hash, tick;
    int32_t toks[LF_KV_BLOCK];
} lf__pentry;

struct lf_engine {
    lf_engine_desc d;
    lf_model *m;
    lf_kv kv;
    int V, chunk;
    lf__ereq **slot;           // [max_batch] the request in each KV slot
    lf__ereq *wait, *wait_tail;  // admission order
    int n_wait, n_run;
    lf__pentry *pc;            // [n_blocks]
    int32_t *bucket;           // [n_bucket]
    uint64_t n_bucket, tick;
    int32_t *toks, *pos, *seqs, *work;  // the step's batch; sampling scratch [V]
    int8_t *flags;
    float *logits;             // [max_batch, V]
    lf__ereq **row_req;        // [max_batch] the request of each logits row
    lf_engine_stats acc;       // the engine thread's counts, published into st after each step
#ifndef LF_NO_THREADS
    pthread_mutex_t mu;
    pthread_cond_t cv;
#endif
    // guarded by mu: submissions not yet seen by the engine's thread, cancellations, stop
    lf__ereq *inbox, *inbox_tail;
    uint64_t *cancels, next_id;
    int n_cancels, cap_cancels;
    bool stop;
    lf_engine_stats st;
};

static uint64_t lf__pc_hash(int32_t parent, const int32_t *toks) {
    uint64_t h = lf__hash_u64((uint64_t)(uint32_t)parent + 0x51ED27ull);
    for (int i = 0; i < LF_KV_BLOCK; i++) h = lf__hash_u64(h ^ (uint32_t)toks[i]);
    return h;
}

static int32_t lf__pc_find(lf_engine *e, int32_t parent, const int32_t *toks) {
    uint64_t h = lf__pc_hash(parent, toks);
    for (int32_t b = e->bucket[h & (e->n_bucket - 1)]; b >= 0; b = e->pc[b].next)
        if (e->pc[b].hash == h && e->pc[b].parent == parent && !memcmp(e->pc[b].toks, toks, sizeof e->pc[b].toks)) return b;
    return -1;
}

static void lf__pc_insert(lf_engine *e, int32_t b, int32_t parent, const int32_t *toks) {
    if (e->pc[b].cached || lf__pc_find(e, parent, toks) >= 0) return;  // the same prefix computed twice: keep one
    lf__pentry *p = &e->pc[b];
    p->parent = parent, p->hash = lf__pc_hash(parent, toks), p->cached = true, p->tick = ++e->tick;
    memcpy(p->toks, toks, sizeof p->toks);
    int32_t *head = &e->bucket[p->hash & (e->n_bucket - 1)];
    p->next = *head, *head = b;
    e->kv.ref[b]++, e->acc.kv_blocks_cached++;
}

// Drops block b from the cache, and the blocks cached after it (their key names b, whose id
// will hold other tokens); none of them is in use, since a request holds whole chains.
static void lf__pc_evict(lf_engine *e, int32_t b) {
    lf__pentry *p = &e->pc[b];
    int32_t *at = &e->bucket[p->hash & (e->n_bucket - 1)];
    while (*at != b) at = &e->pc[*at].next;
    *at = p->next, p->cached = false, e->acc.kv_blocks_cached--;
    lf__kv_unref(&e->kv, b);
    for (int32_t c = 0; c < e->kv.n_blocks; c++)
        if (e->pc[c].cached && e->pc[c].parent == b) lf__pc_evict(e, c);
}

// Frees cached blocks no request uses, least recently used first, until n blocks are free.
static bool lf__pc_make_room(lf_engine *e, int n) {
    while (e->kv.n_free < n) {
        int32_t best = -1;
        for (int32_t b = 0; b < e->kv.n_blocks; b++)
            if (e->pc[b].cached && e->kv.ref[b] == 1 && (best < 0 || e->pc[b].tick < e->pc[best].tick)) best = b;
        if (best < 0) return false;
        lf__pc_evict(e, best);
    }
    return true;
}

// Positions a request may fill: its prompt and every token it may generate.
static int lf__ereq_positions(const lf_engine *e, const lf__ereq *q) {
    return LF__MIN(q->r.n_prompt + q->r.gen.max_tokens, e->kv.max_seq_len);
}

static void lf__ereq_end(lf_engine *e, lf__ereq *q, lf_status s) {
    if (q->slot >= 0) {
        s = lf__gen_seq_finish(&q->q, s);
        if (s == LF_ERR_CANCELLED) q->res.finish = LF_FINISH_CANCELLED;
        lf_kv_seq_release(&e->kv, q->slot);
        e->slot[q->slot] = NULL, e->n_run--;
    }
    if (q->r.on_done) q->r.on_done(q->r.user, q->id, s, &q->res);
    lf_gen_result_deinit(&q->res);
    LF_FREE(q->mem), LF_FREE(q);
}

static void lf__engine_free(lf_engine *e) {
    lf_kv_deinit(&e->kv);
    LF_FREE(e->slot), LF_FREE(e->pc), LF_FREE(e->bucket), LF_FREE(e->toks), LF_FREE(e->flags), LF_FREE(e->logits);
    LF_FREE(e->row_req), LF_FREE(e->cancels);
#ifndef LF_NO_THREADS
    pthread_mutex_destroy(&e->mu), pthread_cond_destroy(&e->cv);
#endif
    LF_FREE(e);
}

LF_API lf_status lf_engine_create(lf_engine **out, const lf_engine_desc *desc) {
    *out = NULL;
    if (!desc || !desc->model || !desc->tok) return lf__fail(LF_ERR_ARG, "engine: desc%s is NULL", !desc ? "" : !desc->model ? ".model" : ".tok");
    lf_engine_desc d = *desc;
    lf_model *m = d.model;
    if (d.max_batch < 0 || d.prefill_chunk < 0 || d.max_queue < 0 || d.queue_timeout_s < 0)
        return lf__fail(LF_ERR_ARG, "engine: desc.%s is negative", d.max_batch < 0 ? "max_batch" : d.prefill_chunk < 0 ?
                        "prefill_chunk" : d.max_queue < 0 ? "max_queue" : "queue_timeout_s");
    if (m->train_) return lf__fail(LF_ERR_ARG, "engine: the model is training");
    d.max_batch = d.max_batch ? d.max_batch : 16;
    d.max_seq_len = d.max_seq_len ? d.max_seq_len : m->max_seq_len;
    d.prefill_chunk = d.prefill_chunk ? d.prefill_chunk : 256;
    d.max_queue = d.max_queue ? d.max_queue : 64;
    d.queue_timeout_s = d.queue_timeout_s > 0 ? d.queue_timeout_s : 30;
    if (d.max_batch >= m->max_tokens)
        return lf__fail(LF_ERR_ARG, "engine: desc.max_batch %d leaves no room for prompt tokens in the model's max_tokens %d",
                        d.max_batch, m->max_tokens);
    size_t block = lf_kv_block_bytes(m), per_seq = (size_t)((d.max_seq_len + LF_KV_BLOCK - 1) / LF_KV_BLOCK);
    size_t blocks = d.kv_budget_bytes ? d.kv_budget_bytes / block : (size_t)d.max_batch * per_seq;
    if (blocks < 1 || blocks > INT32_MAX / 2)
        return lf__fail(LF_ERR_ARG, "engine: desc.kv_budget_bytes %zu holds %zu blocks of %zu bytes (1 to 2^30)",
                        d.kv_budget_bytes, blocks, block);
    lf_engine *e = (lf_engine *)lf__calloc(1, sizeof *e, "engine");
    if (!e) return LF_ERR_NOMEM;
#ifndef LF_NO_THREADS
    pthread_mutex_init(&e->mu, NULL), pthread_cond_init(&e->cv, NULL);
#endif
    e->d = d, e->m = m, e->V = m->cfg.V, e->chunk = LF__MIN(d.prefill_chunk, m->max_tokens - d.max_batch);
    lf_status s = lf_kv_init_paged(&e->kv, m, (int)blocks, d.max_batch, d.max_seq_len);
    for (e->n_bucket = 16; e->n_bucket < 2 * blocks; e->n_bucket *= 2) {}
    size_t rows = (size_t)m->max_tokens, B = (size_t)d.max_batch;
    if (s == LF_OK) {
        e->slot = (lf__ereq **)lf__calloc(B, sizeof *e->slot, "engine slots");
        e->pc = (lf__pentry *)lf__calloc(blocks, sizeof *e->pc, "prefix cache");
        e->bucket = (int32_t *)lf__alloc(e->n_bucket * sizeof(int32_t), "prefix cache buckets");
        e->toks = (int32_t *)lf__alloc((3 * rows + (size_t)e->V) * sizeof(int32_t), "engine batch");
        e->flags = (int8_t *)lf__alloc(rows, "engine logits flags");
        e->logits = (float *)lf__alloc(B * (size_t)e->V * sizeof(float), "engine logits");
        e->row_req = (lf__ereq **)lf__calloc(B, sizeof *e->row_req, "engine rows");
        if (!e->slot || !e->pc || !e->bucket || !e->toks || !e->flags || !e->logits || !e->row_req) s = LF_ERR_NOMEM;
    }
    if (s != LF_OK) {
        lf__engine_free(e);
        return s;
    }
    e->pos = e->toks + rows, e->seqs = e->pos + rows, e->work = e->seqs + rows;
    memset(e->bucket, 0xff, e->n_bucket * sizeof(int32_t));
    e->acc.max_batch = e->st.max_batch = d.max_batch, e->acc.kv_blocks = e->st.kv_blocks = (int)blocks;
    *out = e;
    return LF_OK;
}

LF_API lf_status lf_engine_submit(lf_engine *e, const lf_engine_req *r, uint64_t *id) {
    if (!e || !r || !id) return lf__fail(LF_ERR_ARG, "engine submit: %s is NULL", !e ? "e" : !r ? "r" : "id");
    if (r->n_prompt < 1 || !r->prompt) return lf__fail(LF_ERR_ARG, "engine submit: empty prompt");
    for (int i = 0; i < r->n_prompt; i++)
        if (r->prompt[i] < 0 || r->prompt[i] >= e->V)
            return lf__fail(LF_ERR_ARG, "engine submit: prompt token %d is id %d, outside [0, %d)", i, r->prompt[i], e->V);
    if (r->gen.max_tokens < 0 || r->gen.n_stop < 0 || r->gen.n_stop > LF_MAX_STOP || (r->gen.n_stop && !r->gen.stop))
        return lf__fail(LF_ERR_ARG, "engine submit: gen.%s is out of range", r->gen.max_tokens < 0 ? "max_tokens" : "n_stop");
    if (r->n_prompt >= e->kv.max_seq_len)
        return lf__fail(LF_ERR_CAPACITY, "engine submit: a prompt of %d tokens leaves no room in the context of %d",
                        r->n_prompt, e->kv.max_seq_len);
    size_t sbytes = 0;
    for (int i = 0; i < r->gen.n_stop; i++) {
        if (!r->gen.stop[i] || !r->gen.stop[i][0]) return lf__fail(LF_ERR_ARG, "engine submit: stop string %d is empty", i);
        sbytes += strlen(r->gen.stop[i]) + 1;
    }
    lf__ereq *q = (lf__ereq *)lf__calloc(1, sizeof *q, "engine request");
    void *mem = q ? lf__alloc((size_t)r->n_prompt * sizeof(int32_t) + sbytes, "engine request prompt") : NULL;
    if (!mem) return LF_FREE(q), LF_ERR_NOMEM;
    q->r = *r, q->mem = mem, q->slot = -1, q->t_submit = lf_time_ns();
    memcpy(mem, r->prompt, (size_t)r->n_prompt * sizeof(int32_t));
    q->r.prompt = (const int32_t *)mem;
    char *sp = (char *)mem + (size_t)r->n_prompt * sizeof(int32_t);
    for (int i = 0; i < r->gen.n_stop; i++) {
        size_t n = strlen(r->gen.stop[i]) + 1;
        q->r.gen.stop_[i] = (const char *)memcpy(sp, r->gen.stop[i], n), sp += n;
    }
    q->r.gen.stop = q->r.gen.stop_, q->r.gen.user = r->user, q->r.gen.should_stop = NULL;
    if ((size_t)(q->r.n_prompt + q->r.gen.max_tokens) > (size_t)e->kv.max_seq_len)
        q->r.gen.max_tokens = e->kv.max_seq_len - q->r.n_prompt;
    int need = (lf__ereq_positions(e, q) + LF_KV_BLOCK - 1) / LF_KV_BLOCK;
    if (need > e->kv.n_blocks) {
        LF_FREE(mem), LF_FREE(q);
        return lf__fail(LF_ERR_CAPACITY, "engine submit: %d prompt + %d new tokens need %d KV blocks, the budget holds %d",
                        r->n_prompt, r->gen.max_tokens, need, e->kv.n_blocks);
    }
    LF__LOCK(e);
    *id = q->id = ++e->next_id;
    if (e->inbox_tail) e->inbox_tail->next = q;
    else e->inbox = q;
    e->inbox_tail = q;
#ifndef LF_NO_THREADS
    pthread_cond_signal(&e->cv);
#endif
    LF__UNLOCK(e);
    return LF_OK;
}

LF_API void lf_engine_cancel(lf_engine *e, uint64_t id) {
    if (!e) return;
    LF__LOCK(e);
    if (e->n_cancels == e->cap_cancels) {
        int cap = e->cap_cancels ? 2 * e->cap_cancels : 16;
        uint64_t *c = (uint64_t *)LF_REALLOC(e->cancels, (size_t)cap * sizeof *c);
        if (c) e->cancels = c, e->cap_cancels = cap;
    }
    if (e->n_cancels < e->cap_cancels) e->cancels[e->n_cancels++] = id;  // out of memory: the request runs on
#ifndef LF_NO_THREADS
    pthread_cond_signal(&e->cv);
#endif
    LF__UNLOCK(e);
}

LF_API void lf_engine_stop(lf_engine *e) {
    if (!e) return;
    LF__LOCK(e);
    e->stop = true;
#ifndef LF_NO_THREADS
    pthread_cond_signal(&e->cv);
#endif
    LF__UNLOCK(e);
}

LF_API void lf_engine_get_stats(lf_engine *e, lf_engine_stats *st) {
    LF__LOCK(e);
    *st = e->st;
    LF__UNLOCK(e);
}

static bool lf__ereq_stop(void *user) { return ((lf__ereq *)user)->cancel; }

// New requests join the queue, cancellations mark their requests.
static void lf__engine_inbox(lf_engine *e) {
    LF__LOCK(e);
    lf__ereq *in = e->inbox;
    uint64_t *cancels = e->cancels;
    int nc = e->n_cancels;
    e->inbox = e->inbox_tail = NULL;
    e->cancels = NULL, e->n_cancels = e->cap_cancels = 0;
    LF__UNLOCK(e);
    while (in) {
        lf__ereq *q = in;
        in = in->next, q->next = NULL;
        if (e->wait_tail) e->wait_tail->next = q;
        else e->wait = q;
        e->wait_tail = q, e->n_wait++;
    }
    for (int i = 0; i < nc; i++) {
        for (int k = 0; k < e->d.max_batch; k++)
            if (e->slot[k] && e->slot[k]->id == cancels[i]) e->slot[k]->cancel = true;
        for (lf__ereq *q = e->wait; q; q = q->next)
            if (q->id == cancels[i]) q->cancel = true;
    }
    LF_FREE(cancels);
}

// Waiting requests that were cancelled or waited too long end; then the queue's head joins while
// a slot is free and its blocks fit (FIFO: the head is never overtaken).
static void lf__engine_admit(lf_engine *e) {
    uint64_t now = lf_time_ns(), limit = (uint64_t)(e->d.queue_timeout_s * 1e9);
    for (lf__ereq **at = &e->wait; *at;) {
        lf__ereq *q = *at;
        bool late = now - q->t_submit > limit;
        if (!q->cancel && !late) {
            at = &q->next;
            continue;
        }
        *at = q->next, e->n_wait--;
        if (e->wait_tail == q) e->wait_tail = NULL;
        lf__ereq_end(e, q, q->cancel ? lf__fail(LF_ERR_CANCELLED, "engine: cancelled while waiting")
                                     : lf__fail(LF_ERR_BUSY, "engine: no room for %.1f s", e->d.queue_timeout_s));
    }
    if (!e->wait_tail)
        for (lf__ereq *q = e->wait; q; q = q->next) e->wait_tail = q;
    while (e->wait && e->n_run < e->d.max_batch) {
        lf__ereq *q = e->wait;
        int k = 0;
        while (e->slot[k]) k++;
        // map the cached blocks of the prompt's start (never its last token: its logits are needed)
        int32_t *tab = e->kv.table + (size_t)k * (size_t)e->kv.blocks_per_seq, parent = -1;
        int hits = 0;
        for (; !e->d.no_prefix_cache && (hits + 1) * LF_KV_BLOCK < q->r.n_prompt; hits++) {
            int32_t b = lf__pc_find(e, parent, q->r.prompt + hits * LF_KV_BLOCK);
            if (b < 0) break;
            tab[hits] = parent = b, e->kv.ref[b]++, e->pc[b].tick = ++e->tick;
        }
        e->kv.len[k] = hits * LF_KV_BLOCK;
        int total = lf__ereq_positions(e, q), need = (total + LF_KV_BLOCK - 1) / LF_KV_BLOCK - hits;
        lf_status s = lf__pc_make_room(e, need) ? lf_kv_reserve(&e->kv, k, total) : LF_ERR_CAPACITY;
        if (s != LF_OK) {  // not now: what was mapped goes back
            lf_kv_seq_release(&e->kv, k);
            break;
        }
        e->wait = q->next, e->n_wait--;
        if (!e->wait) e->wait_tail = NULL;
        q->next = NULL;
        s = lf__gen_seq_init(&q->q, e->m, &e->kv, e->d.tok, q->r.prompt, q->r.n_prompt, &q->r.gen, &q->r.gen.sampling, &q->res);
        if (s != LF_OK) {
            lf_kv_seq_release(&e->kv, k);
            lf__ereq_end(e, q, s);
            continue;
        }
        q->slot = k, q->done = q->cached = hits, q->done *= LF_KV_BLOCK, e->slot[k] = q, e->n_run++;
        e->acc.cached_prompt_tokens += q->done;
    }
    if (e->n_wait <= e->d.max_queue) return;  // past max_queue waiting, the newest are refused
    lf__ereq *q = e->wait;
    for (int i = 1; i < e->d.max_queue; i++) q = q->next;
    lf__ereq *over = e->d.max_queue ? q->next : e->wait;
    if (e->d.max_queue) q->next = NULL, e->wait_tail = q;
    else e->wait = e->wait_tail = NULL;
    e->n_wait = e->d.max_queue;
    while (over) {
        q = over, over = over->next;
        lf__ereq_end(e, q, lf__fail(LF_ERR_BUSY, "engine: %d requests are waiting already", e->d.max_queue));
    }
}

LF_API lf_status lf_engine_step(lf_engine *e, bool *busy) {
    lf__engine_inbox(e);
    lf__engine_admit(e);
    int B = e->d.max_batch, n = 0, n_dec = 0, rows = 0;
    // decoding rows first (one token each), then prompt chunks in admission order
    for (int k = 0; k < B; k++) {
        lf__ereq *q = e->slot[k];
        if (!q || !q->sampled) continue;
        int p = q->r.n_prompt + q->res.n_gen - 1;
        e->toks[n] = q->q.hist[p], e->pos[n] = p, e->seqs[n] = k, e->flags[n++] = 1;
        q->logits = e->logits + (size_t)rows * (size_t)e->V, e->row_req[rows++] = q;
    }
    n_dec = n;
    for (int budget = e->chunk; budget > 0;) {
        lf__ereq *q = NULL;  // the earliest-submitted request still prefilling
        for (int k = 0; k < B; k++)
            if (e->slot[k] && e->slot[k]->done < e->slot[k]->r.n_prompt && (!q || e->slot[k]->id < q->id)) q = e->slot[k];
        if (!q) break;
        int take = LF__MIN(budget, q->r.n_prompt - q->done);
        for (int i = 0; i < take; i++, n++)
            e->toks[n] = q->r.prompt[q->done + i], e->pos[n] = q->done + i, e->seqs[n] = q->slot, e->flags[n] = 0;
        q->done += take, budget -= take;
        if (q->done == q->r.n_prompt) {
            e->flags[n - 1] = 1, q->logits = e->logits + (size_t)rows * (size_t)e->V, e->row_req[rows++] = q;
            q->q.t1 = lf_time_ns();
        }
        e->acc.prompt_tokens += take;
    }
    lf_status s = LF_OK;
    if (n > 0) {
        lf_batch b = {n, e->toks, e->pos, e->seqs, e->flags, NULL};
        s = lf__model_forward(e->m, &e->kv, &b, e->logits, n_dec);
        e->acc.steps++;
    }
    if (s != LF_OK) {  // the cache no longer matches the requests: end them all
        char msg[sizeof lf__err];
        snprintf(msg, sizeof msg, "%s", lf_last_error());
        for (int k = 0; k < B; k++)
            if (e->slot[k]) lf__ereq_end(e, e->slot[k], lf__fail(s, "engine: %s", msg));
        lf__fail(s, "engine: %s", msg);
    }
    // prompt blocks computed in this step join the prefix cache
    for (int k = 0; s == LF_OK && !e->d.no_prefix_cache && k < B; k++) {
        lf__ereq *q = e->slot[k];
        if (!q) continue;
        const int32_t *tab = e->kv.table + (size_t)k * (size_t)e->kv.blocks_per_seq;
        for (; (q->cached + 1) * LF_KV_BLOCK <= q->done; q->cached++)
            lf__pc_insert(e, tab[q->cached], q->cached ? tab[q->cached - 1] : -1, q->r.prompt + q->cached * LF_KV_BLOCK);
    }
    for (int i = 0; s == LF_OK && i < rows; i++) {
        lf__ereq *q = e->row_req[i];
        bool done;
        lf_status st = lf__gen_seq_step(&q->q, q->logits, e->V, e->work, lf__ereq_stop, q, &done);
        q->sampled = true, e->acc.generated_tokens += st == LF_OK;
        if (done) lf__ereq_end(e, q, st);
    }
    for (int k = 0; k < B; k++)  // cancelled while prefilling
        if (e->slot[k] && e->slot[k]->cancel && !e->slot[k]->sampled)
            lf__ereq_end(e, e->slot[k], lf__fail(LF_ERR_CANCELLED, "engine: cancelled"));
    int used = 0;
    for (int k = 0; k < B; k++)
        for (int j = 0; e->slot[k] && j < e->kv.blocks_per_seq; j++) used += e->kv.table[(size_t)k * (size_t)e->kv.blocks_per_seq + (size_t)j] >= 0;
    e->acc.running = e->n_run, e->acc.waiting = e->n_wait, e->acc.kv_blocks_used = used;
    LF__LOCK(e);
    e->st = e->acc;
    *busy = e->n_run > 0 || e->n_wait > 0 || e->inbox;
    LF__UNLOCK(e);
    return s;
}

// Every request, running, waiting or just submitted, ends cancelled.
static void lf__engine_end_all(lf_engine *e, const char *why) {
    lf__engine_inbox(e);
    for (int k = 0; k < e->d.max_batch; k++)
        if (e->slot[k]) lf__ereq_end(e, e->slot[k], lf__fail(LF_ERR_CANCELLED, "engine: %s", why));
    while (e->wait) {
        lf__ereq *q = e->wait;
        e->wait = q->next, e->n_wait--;
        lf__ereq_end(e, q, lf__fail(LF_ERR_CANCELLED, "engine: %s", why));
    }
    e->wait_tail = NULL;
}

LF_API lf_status lf_engine_run(lf_engine *e) {
    lf_status s = LF_OK;
    for (;;) {
        bool busy = false;
        lf_status st = lf_engine_step(e, &busy);
        if (st != LF_OK) s = st;
        LF__LOCK(e);
        bool stop = e->stop;
#ifndef LF_NO_THREADS
        while (!busy && !e->stop && !e->inbox && !e->n_cancels) pthread_cond_wait(&e->cv, &e->mu);
        stop = e->stop;
#else
        stop = stop || !busy;
#endif
        LF__UNLOCK(e);
        if (stop) break;
    }
    lf__engine_end_all(e, "stopped");
    return s;
}

LF_API void lf_engine_destroy(lf_engine *e) {
    if (!e) return;
    lf__engine_end_all(e, "closed");
    lf__engine_free(e);
}

#endif // LF__IMPLEMENTATION_ONCE
#endif // LARGEFORGE_IMPLEMENTATION

/*
MIT License

Copyright (c) 2026 the LargeForge authors

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
associated documentation files (the "Software"), to deal in the Software without restriction,
including without limitation the rights to use, copy, modify, merge, publish, distribute,
sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT
NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM,
DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT
OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
*/
