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
//    2. config       JSON into one tree of lf_node; typed field readers with named errors
//    3. tensor       dtypes, conversions, CPU kernels (matmul, norms, rope, softmax, swiglu)
//    4. safetensors  mmap reader with a validated header, sharded index, writer
//    5. tokenizer    HF tokenizer.json (byte-level and SentencePiece-style BPE), chat templates
//    6. model        Llama-family config and weights, batched forward with a KV cache
//   12. generate     sampling, stop strings, streaming generation
//
// CONFIGURATION MACROS          default      define where
//   LF_API                       extern       everywhere       decoration of public functions
//   LF_STATIC                    off          everywhere       make the whole API static
//   LF_MALLOC/LF_REALLOC/LF_FREE libc         impl file only   all three or none
//   LF_ASSERT(c)                 assert(c)    impl file only   internal invariants only
//   LF_NO_STDIO                  off          everywhere       drop path-based APIs (memory ones stay)
//   LF_NO_THREADS                off          everywhere       the pool runs all work inline
//   LF_MAX_JSON_BYTES            1 GiB        impl file only   largest JSON document accepted
//   LF_MAX_ST_HEADER_BYTES       100 MiB      impl file only   largest safetensors header
//   LF_MAX_DIMS                  4            everywhere       largest tensor rank
//   LF_MAX_SHARDS                1024         impl file only   largest sharded checkpoint
//
// CONVENTIONS
//   names    lf_module_verb (modules: pool arena rng json node st tok chat model kv gen),
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
    LF_ERR_CANCELLED = -11    // a should_stop callback asked to stop
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

// Thread pool. lf_parallel_for splits [0, n) into one contiguous range per thread (the same
// split for the same n and thread count), so results are bit-identical run to run. The
// calling thread works as thread 0. fn must not call lf_parallel_for on the same pool.
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
// Writes path.tmp.<pid>, fsyncs it, renames it over path and fsyncs the directory: a reader
// sees the old file or the new one, never a torn one.
LF_API lf_status lf_file_write_atomic(const char *path, const void *data, size_t len);
LF_API bool lf_path_exists(const char *path);
LF_API bool lf_path_is_dir(const char *path);
// Joins a and b with '/'; free with lf_free.
LF_API char *lf_path_join(const char *a, const char *b);

// == 2. config (API) =============================================================================

// One tree for every JSON (and, later, YAML) document. Nodes and strings live in the document.
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

// == 3. tensor (API) =============================================================================

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

// out[N, M] = x[N, K] . w[M, K]^T (+ bias[M]); w in F32, BF16 or F16; split over the pool by
// output column, so results do not depend on the thread count.
LF_API lf_status lf_matmul(lf_pool *pool, float *out, const float *x, const lf_tensor *w,
                           const float *bias, int64_t N);

// == 4. safetensors (API) ========================================================================

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

// == 6. model (API) ==============================================================================

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
    lf_pool *pool;       // optional: share a pool (kept, not owned); default: the model makes one
} lf_model_desc;

typedef struct lf_layer {
    lf_tensor wq, wk, wv, wo;            // [NH*HS, C], [NKV*HS, C] x2, [C, NH*HS]
    lf_tensor w_gate, w_up, w_down;      // [FF, C] x2, [C, FF]
    const float *attn_norm, *mlp_norm;   // [C]
    const float *bq, *bk, *bv, *bo;      // NULL when the model has no such bias
    const float *b_gate, *b_up, *b_down;
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
} lf_model;

// lf_model_open — load config.json and the safetensors weights of a model directory.
//   returns  LF_OK | LF_ERR_IO | LF_ERR_FORMAT | LF_ERR_CONFIG (field named) |
//            LF_ERR_UNSUPPORTED (architecture, dtype) | LF_ERR_SHAPE (tensor named)
//   threads  safe on distinct objects
LF_API lf_status lf_model_open(lf_model *m, const lf_model_desc *desc);
LF_API void lf_model_close(lf_model *m);
LF_API int64_t lf_model_n_params(const lf_model *m);
LF_API size_t lf_model_weight_bytes(const lf_model *m);

// The KV cache: max_seqs independent sequences ("slots") of up to max_seq_len positions.
typedef struct lf_kv {
    int L, max_seqs, max_seq_len, width;  // width = NKV*HS
    float *k, *v;                         // [L, max_seqs, max_seq_len, width]
    int32_t *len;                         // [max_seqs] positions filled
} lf_kv;
LF_API lf_status lf_kv_init(lf_kv *kv, const lf_model *m, int max_seqs, int max_seq_len);  // 0: defaults 1, m->max_seq_len
LF_API void lf_kv_deinit(lf_kv *kv);
LF_API void lf_kv_seq_truncate(lf_kv *kv, int seq, int len);  // forget positions >= len

// A batch of tokens from one or more sequences (each sequence's positions in increasing order).
// A token at position p of sequence s attends to positions [0, p] of s: those written by
// earlier calls and by this one. Writing position p forgets the positions after it.
typedef struct lf_batch {
    int n;
    const int32_t *tokens;  // [n] ids in [0, V)
    const int32_t *pos;     // [n] position within its sequence; NULL: 0..n-1
    const int32_t *seq;     // [n] KV slot; NULL: all 0
    const int8_t *logits;   // [n] 1 = return this token's logits; NULL: only the last token
} lf_batch;

// lf_model_forward — run the transformer over a batch, filling the KV cache.
//   logits   [rows, V] f32 out, one row per token whose logits flag is set, in batch order
//   returns  LF_OK | LF_ERR_ARG (bad id, position or slot; message names the index) |
//            LF_ERR_CAPACITY (n > max_tokens, position >= max_seq_len)
//   threads  not safe on the same m or kv
LF_API lf_status lf_model_forward(lf_model *m, lf_kv *kv, const lf_batch *b, float *logits);

#ifdef __cplusplus
}
#endif
#endif // LARGEFORGE_H

// ================================================================================================
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
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif
#ifndef LF_NO_THREADS
#include <pthread.h>
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

// -- 1.4 thread pool
//
// ON THE POOL: decode calls lf_parallel_for a few hundred times per token, so waking workers
// must cost microseconds: workers spin on a generation counter for a while before sleeping on
// a condition variable. Work is split statically, never stolen, so the same thread count gives
// the same partition and bit-identical reductions.

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
    int stop;                      // guarded by mu; read atomically by spinners
    uint64_t gen;                  // job generation, bumped by the caller
    int pending;                   // workers still running the current job
    lf_range_fn fn;
    void *arg;
    int64_t njobs;
#endif
};

static void lf__pool_range(int64_t n, int nt, int tid, int64_t *b, int64_t *e) {
    int64_t q = n / nt, r = n % nt;
    *b = tid * q + LF__MIN(tid, r);
    *e = *b + q + (tid < r);
}

#ifndef LF_NO_THREADS
typedef struct lf__worker_arg {
    lf_pool *p;
    int tid;
} lf__worker_arg;

static void *lf__pool_worker(void *va) {
    lf__worker_arg wa = *(lf__worker_arg *)va;
    LF_FREE(va);
    lf_pool *p = wa.p;
    uint64_t seen = 0;
    for (;;) {
        uint64_t g = 0;
        for (int spin = 0; spin < 200000; spin++) {  // ~ a millisecond of spinning, then sleep
            g = __atomic_load_n(&p->gen, __ATOMIC_ACQUIRE);
            if (g != seen || __atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) break;
#if defined(__x86_64__)
            _mm_pause();
#endif
        }
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            while ((g = p->gen) == seen && !p->stop) pthread_cond_wait(&p->cv, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) return NULL;
        seen = g;
        int64_t b, e;
        lf__pool_range(p->njobs, p->n, wa.tid, &b, &e);
        if (b < e) p->fn(p->arg, b, e, wa.tid);
        __atomic_sub_fetch(&p->pending, 1, __ATOMIC_ACQ_REL);
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
    p->fn = fn, p->arg = arg, p->njobs = n;
    __atomic_store_n(&p->pending, p->n - 1, __ATOMIC_RELEASE);
    pthread_mutex_lock(&p->mu);
    __atomic_add_fetch(&p->gen, 1, __ATOMIC_ACQ_REL);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    int64_t b, e;
    lf__pool_range(n, p->n, 0, &b, &e);
    if (b < e) fn(arg, b, e, 0);
    while (__atomic_load_n(&p->pending, __ATOMIC_ACQUIRE) > 0) {
#if defined(__x86_64__)
        _mm_pause();
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

LF_API lf_status lf_file_write_atomic(const char *path, const void *data, size_t len) {
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp)
        return lf__fail(LF_ERR_ARG, "path too long: %s", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return lf__fail(LF_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    const char *p = (const char *)data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return lf__fail(LF_ERR_IO, "%s: write failed: %s", tmp, strerror(e));
        }
        p += w, left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        unlink(tmp);
        return lf__fail(LF_ERR_IO, "%s: fsync/close failed: %s", tmp, strerror(errno));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return lf__fail(LF_ERR_IO, "%s: rename to %s failed: %s", tmp, path, strerror(e));
    }
    // fsync the directory so the rename itself survives a crash
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *(slash == dir ? slash + 1 : slash) = 0;
    else strcpy(dir, ".");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) fsync(dfd), close(dfd);
    return LF_OK;
}

LF_API bool lf_path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}
LF_API bool lf_path_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
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
    if (off < len && text[off] != 0) {
        cJSON_Delete(j);
        int line, col;
        lf__line_col(text, off, &line, &col);
        return lf__fail(LF_ERR_FORMAT, "%s: trailing data after JSON value at line %d, column %d (byte %zu)",
                        doc->name, line, col, off);
    }
    size_t nodes = 0, bytes = 0, total;
    lf__json_count(j, &nodes, &bytes);
    if (!lf__mul_ok(nodes, sizeof(lf_node), &total) || !lf__add_ok(total, bytes, &total)) {
        cJSON_Delete(j);
        return lf__fail(LF_ERR_NOMEM, "%s: JSON tree too large", doc->name);
    }
    doc->mem_ = lf__alloc(total, "JSON tree");
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

// Looks a field up; *out NULL when absent or null (an error if required).
static lf_status lf__cfg_field(const lf_doc *d, const lf_node *obj, const char *key, bool required,
                               const lf_node **out) {
    const lf_node *n = lf_node_get(obj, key);
    *out = n && n->type != LF_NODE_NULL ? n : NULL;
    if (!*out && required) return lf__fail(LF_ERR_CONFIG, "%s: missing required field '%s'", d->name, key);
    return LF_OK;
}

LF_API lf_status lf_cfg_int(const lf_doc *d, const lf_node *obj, const char *key, bool required,
                            int64_t lo, int64_t hi, int64_t *out) {
    const lf_node *n;
    lf_status s = lf__cfg_field(d, obj, key, required, &n);
    if (s != LF_OK || !n) return s;
    if (n->type != LF_NODE_NUMBER)
        return lf__fail(LF_ERR_CONFIG, "%s: field '%s' must be an integer, got %s", d->name, key,
                        lf__node_type_name(n->type));
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
    lf_status s = lf__cfg_field(d, obj, key, required, &n);
    if (s != LF_OK || !n) return s;
    if (n->type != LF_NODE_NUMBER)
        return lf__fail(LF_ERR_CONFIG, "%s: field '%s' must be a number, got %s", d->name, key,
                        lf__node_type_name(n->type));
    *out = n->num;
    return LF_OK;
}

LF_API lf_status lf_cfg_bool(const lf_doc *d, const lf_node *obj, const char *key, bool required, bool *out) {
    const lf_node *n;
    lf_status s = lf__cfg_field(d, obj, key, required, &n);
    if (s != LF_OK || !n) return s;
    if (n->type != LF_NODE_BOOL)
        return lf__fail(LF_ERR_CONFIG, "%s: field '%s' must be true or false, got %s", d->name, key,
                        lf__node_type_name(n->type));
    *out = n->num != 0;
    return LF_OK;
}

LF_API lf_status lf_cfg_str(const lf_doc *d, const lf_node *obj, const char *key, bool required, const char **out) {
    const lf_node *n;
    lf_status s = lf__cfg_field(d, obj, key, required, &n);
    if (s != LF_OK || !n) return s;
    if (n->type != LF_NODE_STRING)
        return lf__fail(LF_ERR_CONFIG, "%s: field '%s' must be a string, got %s", d->name, key,
                        lf__node_type_name(n->type));
    *out = n->str;
    return LF_OK;
}

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
// ON THE MATMUL: out[N, M] = x[N, K] . w[M, K]^T. Both operands are K-contiguous, so a tile of
// NR rows x MR columns keeps NR*MR vector accumulators running along K and reduces each one
// horizontally at the end. Decode (N = 1) is bound by reading w: the tile streams MR rows of w
// at once. The tile sizes and the dtype are compile-time constants after inlining, so each
// (dtype, NR, MR) gets its own straight-line loop without a copy of the source.

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define LF__AVX512 1
LF__INLINE __m512 lf__load16(const void *p, lf_dtype dt, int64_t k, __mmask16 m) {
    switch (dt) {
    case LF_DTYPE_BF16:
        return _mm512_castsi512_ps(
            _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, (const uint16_t *)p + k)), 16));
    case LF_DTYPE_F16: return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)p + k));
    default: return _mm512_maskz_loadu_ps(m, (const float *)p + k);
    }
}

LF__INLINE void lf__mm_tile(const int NR, const int MR, const lf_dtype dt, float *out, int64_t ldo,
                            const float *x, const unsigned char *w, int64_t K, size_t wrow) {
    __m512 acc[4][6];
    for (int r = 0; r < NR; r++)
        for (int c = 0; c < MR; c++) acc[r][c] = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k += 16) {
        __mmask16 m = K - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (K - k)) - 1);
        __m512 xv[4], wv[6];
        for (int r = 0; r < NR; r++) xv[r] = _mm512_maskz_loadu_ps(m, x + r * K + k);
        for (int c = 0; c < MR; c++) wv[c] = lf__load16(w + (size_t)c * wrow, dt, k, m);
        for (int r = 0; r < NR; r++)
            for (int c = 0; c < MR; c++) acc[r][c] = _mm512_fmadd_ps(xv[r], wv[c], acc[r][c]);
    }
    for (int r = 0; r < NR; r++)
        for (int c = 0; c < MR; c++) out[r * ldo + c] = _mm512_reduce_add_ps(acc[r][c]);
}
#else
LF__INLINE float lf__load1(const void *p, lf_dtype dt, int64_t k) {
    switch (dt) {
    case LF_DTYPE_BF16: return lf_bf16_to_f32(((const uint16_t *)p)[k]);
    case LF_DTYPE_F16: return lf_f16_to_f32(((const uint16_t *)p)[k]);
    default: return ((const float *)p)[k];
    }
}
// Portable tile: 8 partial sums per output so the compiler can vectorize along K.
LF__INLINE void lf__mm_tile(const int NR, const int MR, const lf_dtype dt, float *out, int64_t ldo,
                            const float *x, const unsigned char *w, int64_t K, size_t wrow) {
    for (int r = 0; r < NR; r++)
        for (int c = 0; c < MR; c++) {
            const void *wr = w + (size_t)c * wrow;
            float s[8] = {0};
            int64_t k = 0;
            for (; k + 8 <= K; k += 8)
                for (int l = 0; l < 8; l++) s[l] += x[r * K + k + l] * lf__load1(wr, dt, k + l);
            for (; k < K; k++) s[0] += x[r * K + k] * lf__load1(wr, dt, k);
            out[r * ldo + c] = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
        }
}
#endif

#define LF__MM_NR 4   // rows (tokens) per tile
#define LF__MM_MR 6   // columns (outputs) per tile
#define LF__MM_NB 64  // rows per block: keeps x's block in L2 while w's tile is reused

typedef struct lf__mm_job {
    float *out;
    const float *x, *bias;
    const unsigned char *w;
    lf_dtype dt;
    int64_t N, M, K;
} lf__mm_job;

// Columns [c0, c1) of rows [n0, n1); c1 - c0 is LF__MM_MR or 1.
LF__INLINE void lf__mm_cols(const lf_dtype dt, const lf__mm_job *j, int64_t n0, int64_t n1, int64_t c0, int mr) {
    size_t wrow = (size_t)j->K * lf_dtype_size(dt);
    const unsigned char *w = j->w + (size_t)c0 * wrow;
    int64_t n = n0;
    for (; n + 4 <= n1; n += 4) {
        float *o = j->out + n * j->M + c0;
        const float *x = j->x + n * j->K;
        if (mr == LF__MM_MR) lf__mm_tile(4, LF__MM_MR, dt, o, j->M, x, w, j->K, wrow);
        else lf__mm_tile(4, 1, dt, o, j->M, x, w, j->K, wrow);
    }
    for (; n < n1; n++) {
        float *o = j->out + n * j->M + c0;
        const float *x = j->x + n * j->K;
        if (mr == LF__MM_MR) lf__mm_tile(1, LF__MM_MR, dt, o, j->M, x, w, j->K, wrow);
        else lf__mm_tile(1, 1, dt, o, j->M, x, w, j->K, wrow);
    }
}

LF__INLINE void lf__mm_range(const lf_dtype dt, const lf__mm_job *j, int64_t t0, int64_t t1) {
    int64_t full = j->M / LF__MM_MR;  // tiles t < full are MR wide; the last tile holds the rest
    for (int64_t n0 = 0; n0 < j->N; n0 += LF__MM_NB) {
        int64_t n1 = LF__MIN(j->N, n0 + LF__MM_NB);
        for (int64_t t = t0; t < t1; t++) {
            if (t < full) lf__mm_cols(dt, j, n0, n1, t * LF__MM_MR, LF__MM_MR);
            else
                for (int64_t c = full * LF__MM_MR; c < j->M; c++) lf__mm_cols(dt, j, n0, n1, c, 1);
        }
    }
}

static void lf__mm_worker(void *arg, int64_t t0, int64_t t1, int tid) {
    (void)tid;
    const lf__mm_job *j = (const lf__mm_job *)arg;
    switch (j->dt) {
    case LF_DTYPE_BF16: lf__mm_range(LF_DTYPE_BF16, j, t0, t1); break;
    case LF_DTYPE_F16: lf__mm_range(LF_DTYPE_F16, j, t0, t1); break;
    default: lf__mm_range(LF_DTYPE_F32, j, t0, t1); break;
    }
    if (j->bias)
        for (int64_t n = 0; n < j->N; n++) {
            int64_t c0 = t0 * LF__MM_MR, c1 = LF__MIN(t1 * LF__MM_MR, j->M);
            for (int64_t c = c0; c < c1; c++) j->out[n * j->M + c] += j->bias[c];
        }
}

// The kernel-level entry: shapes already checked.
static void lf__matmul(lf_pool *pool, float *out, const float *x, const void *w, lf_dtype dt,
                       const float *bias, int64_t N, int64_t M, int64_t K) {
    lf__mm_job j = {out, x, bias, (const unsigned char *)w, dt, N, M, K};
    int64_t tiles = M / LF__MM_MR + (M % LF__MM_MR != 0);
    lf_parallel_for(pool, tiles, lf__mm_worker, &j);
}

LF_API lf_status lf_matmul(lf_pool *pool, float *out, const float *x, const lf_tensor *w,
                           const float *bias, int64_t N) {
    if (w->ndim != 2) return lf__fail(LF_ERR_SHAPE, "matmul: weight '%s' must be 2-d", w->name ? w->name : "?");
    if (w->dtype != LF_DTYPE_F32 && w->dtype != LF_DTYPE_BF16 && w->dtype != LF_DTYPE_F16)
        return lf__fail(LF_ERR_UNSUPPORTED, "matmul: weight '%s' has dtype %s", w->name ? w->name : "?",
                        lf_dtype_name(w->dtype));
    lf__matmul(pool, out, x, w->data, w->dtype, bias, N, w->shape[0], w->shape[1]);
    return LF_OK;
}

// -- 3.2 elementwise ops and norms

// out[N, C] = x / sqrt(mean(x^2) + eps) * w, in f32 as transformers' LlamaRMSNorm does.
static void lf__rmsnorm_forward(float *out, const float *x, const float *w, int64_t N, int64_t C, float eps) {
    for (int64_t n = 0; n < N; n++) {
        const float *xr = x + n * C;
        float *o = out + n * C;
        float ss = 0;
        for (int64_t i = 0; i < C; i++) ss += xr[i] * xr[i];
        float rstd = 1.0f / sqrtf(ss / (float)C + eps);
        for (int64_t i = 0; i < C; i++) o[i] = w[i] * (xr[i] * rstd);
    }
}

// RoPE in HF's rotate_half layout: the pair (i, i + HS/2) rotates by angle pos * inv_freq[i].
// x [N, H, HS]; cos/sin tables [max_pos, HS/2]; pos [N].
static void lf__rope_forward(float *x, const float *cos_t, const float *sin_t, const int32_t *pos,
                             int64_t N, int64_t H, int64_t HS) {
    int64_t half = HS / 2;
    for (int64_t n = 0; n < N; n++) {
        const float *c = cos_t + (int64_t)pos[n] * half, *s = sin_t + (int64_t)pos[n] * half;
        for (int64_t h = 0; h < H; h++) {
            float *v = x + (n * H + h) * HS;
            for (int64_t i = 0; i < half; i++) {
                float a = v[i], b = v[i + half];
                v[i] = a * c[i] - b * s[i];
                v[i + half] = b * c[i] + a * s[i];
            }
        }
    }
}

// out[N, FF] = silu(gate) * up
static void lf__swiglu_forward(float *out, const float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

// In place over x[n]: softmax with the max subtracted, sums in f32.
static void lf__softmax_inplace(float *x, int64_t n) {
    float mx = -INFINITY, sum = 0;
    for (int64_t i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    for (int64_t i = 0; i < n; i++) sum += (x[i] = expf(x[i] - mx));
    float inv = 1.0f / sum;
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
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
    lf_status s = lf__model_tensor(m, &m->embed, "model.embed_tokens.weight", c->V, C);
    if (s == LF_OK) s = lf__model_vec(m, &m->final_norm, &cur, "model.norm.weight", C);
    if (s == LF_OK) {
        if (c->tied) m->lm_head = m->embed;
        else s = lf__model_tensor(m, &m->lm_head, "lm_head.weight", c->V, C);
    }
    char name[160];
#define LF__W(field, suffix, d0, d1)                                          \
    ((void)snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix),     \
     (s = lf__model_tensor(m, &ly->field, name, d0, d1)) != LF_OK)
#define LF__V(field, suffix, d0)                                              \
    ((void)snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix),     \
     (s = lf__model_vec(m, &ly->field, &cur, name, d0)) != LF_OK)
    for (int l = 0; l < c->L && s == LF_OK; l++) {
        lf_layer *ly = &m->layers[l];
        if (LF__W(wq, "self_attn.q_proj.weight", Q, C) || LF__W(wk, "self_attn.k_proj.weight", KV, C) ||
            LF__W(wv, "self_attn.v_proj.weight", KV, C) || LF__W(wo, "self_attn.o_proj.weight", C, Q) ||
            LF__W(w_gate, "mlp.gate_proj.weight", FF, C) || LF__W(w_up, "mlp.up_proj.weight", FF, C) ||
            LF__W(w_down, "mlp.down_proj.weight", C, FF) || LF__V(attn_norm, "input_layernorm.weight", C) ||
            LF__V(mlp_norm, "post_attention_layernorm.weight", C))
            break;
        if (c->qkv_bias && (LF__V(bq, "self_attn.q_proj.bias", Q) || LF__V(bk, "self_attn.k_proj.bias", KV) ||
                            LF__V(bv, "self_attn.v_proj.bias", KV)))
            break;
        if (c->o_bias && LF__V(bo, "self_attn.o_proj.bias", C)) break;
        if (c->mlp_bias && (LF__V(b_gate, "mlp.gate_proj.bias", FF) || LF__V(b_up, "mlp.up_proj.bias", FF) ||
                            LF__V(b_down, "mlp.down_proj.bias", C)))
            break;
    }
#undef LF__W
#undef LF__V
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
    int32_t *pos, *seq, *undo;  // default positions and slots; old KV lengths for rollback
} lf__acts;

static size_t lf__acts_plan(const lf_model *m, lf__acts *a, unsigned char *base) {
    const lf_model_config *c = &m->cfg;
    size_t N = (size_t)m->max_tokens, off = 0;
    size_t sizes[13] = {N * (size_t)c->C, N * (size_t)c->C, N * (size_t)c->NH * (size_t)c->HS,
                        N * (size_t)c->NKV * (size_t)c->HS, N * (size_t)c->NKV * (size_t)c->HS,
                        N * (size_t)c->NH * (size_t)c->HS, N * (size_t)c->FF, N * (size_t)c->FF, N * (size_t)c->C,
                        (size_t)lf_pool_size(m->pool) * (size_t)m->max_seq_len, N, N, N};
    void **slots[13] = {(void **)&a->x,    (void **)&a->xn,   (void **)&a->q,      (void **)&a->k,
                        (void **)&a->v,    (void **)&a->att,  (void **)&a->gate,   (void **)&a->up,
                        (void **)&a->rows, (void **)&a->scores, (void **)&a->pos, (void **)&a->seq,
                        (void **)&a->undo};
    for (int i = 0; i < 13; i++) {
        *slots[i] = base ? base + off : NULL;
        off += (sizes[i] * 4 + 63) & ~(size_t)63;  // every slot holds 4-byte elements
    }
    return off;
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
    lf__acts plan;
    if (s == LF_OK) s = lf_arena_init(&m->acts_, lf__acts_plan(m, &plan, NULL), "activations");
    if (s != LF_OK) lf_model_close(m);
    return s;
}
#endif

LF_API void lf_model_close(lf_model *m) {
    if (m->own_pool) lf_pool_destroy(m->pool);
    lf_st_set_close(&m->st);
    LF_FREE(m->small_);
    LF_FREE(m->layers);
    lf_arena_deinit(&m->acts_);
    memset(m, 0, sizeof *m);
}

LF_API int64_t lf_model_n_params(const lf_model *m) {
    int64_t n = 0;
    for (int i = 0; i < m->st.n; i++)
        for (int j = 0; j < m->st.files[i].n; j++) {
            const lf_st_tensor *t = &m->st.files[i].tensors[j];
            int64_t k = 1;
            for (int d = 0; d < t->ndim; d++) k *= t->shape[d];
            n += k;
        }
    return n;
}

LF_API size_t lf_model_weight_bytes(const lf_model *m) {
    size_t n = 0;
    for (int i = 0; i < m->st.n; i++)
        for (int j = 0; j < m->st.files[i].n; j++) n += (size_t)(m->st.files[i].tensors[j].end - m->st.files[i].tensors[j].begin);
    return n;
}

LF_API lf_status lf_kv_init(lf_kv *kv, const lf_model *m, int max_seqs, int max_seq_len) {
    memset(kv, 0, sizeof *kv);
    if (max_seqs <= 0) max_seqs = 1;
    if (max_seq_len <= 0) max_seq_len = m->max_seq_len;
    if (max_seq_len > m->max_seq_len)
        return lf__fail(LF_ERR_CAPACITY, "KV cache: max_seq_len %d is over the model's max_seq_len %d", max_seq_len,
                        m->max_seq_len);
    kv->L = m->cfg.L, kv->max_seqs = max_seqs, kv->max_seq_len = max_seq_len, kv->width = m->cfg.NKV * m->cfg.HS;
    size_t n;
    if (!lf__mul_ok((size_t)kv->L * (size_t)max_seqs, (size_t)max_seq_len * (size_t)kv->width, &n))
        return lf__fail(LF_ERR_NOMEM, "KV cache: size overflow");
    kv->k = (float *)lf__calloc(n, sizeof(float), "KV cache (keys)");
    kv->v = kv->k ? (float *)lf__calloc(n, sizeof(float), "KV cache (values)") : NULL;
    kv->len = kv->v ? (int32_t *)lf__calloc((size_t)max_seqs, sizeof(int32_t), "KV cache lengths") : NULL;
    if (!kv->len) {
        lf_kv_deinit(kv);
        return LF_ERR_NOMEM;
    }
    return LF_OK;
}

LF_API void lf_kv_deinit(lf_kv *kv) {
    LF_FREE(kv->k);
    LF_FREE(kv->v);
    LF_FREE(kv->len);
    memset(kv, 0, sizeof *kv);
}

LF_API void lf_kv_seq_truncate(lf_kv *kv, int seq, int len) {
    if (seq >= 0 && seq < kv->max_seqs && len >= 0 && len < kv->len[seq]) kv->len[seq] = len;
}

// -- 6.1 attention over the cache

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
    for (int64_t j = j0; j < j1; j++) {
        int64_t i = j / NH;
        int h = (int)(j % NH), p = J->pos[i], lo = 0;
        if (c->sliding_window > 0 && J->layer >= c->window_from_layer && p - c->sliding_window + 1 > 0)
            lo = p - c->sliding_window + 1;  // transformers keeps key k when q - k < window
        size_t slot = ((size_t)J->layer * (size_t)J->kv->max_seqs + (size_t)J->seq[i]) * (size_t)J->kv->max_seq_len;
        const float *K = J->kv->k + slot * (size_t)W + (size_t)(h / group) * (size_t)HS;
        const float *V = J->kv->v + slot * (size_t)W + (size_t)(h / group) * (size_t)HS;
        const float *q = J->q + (i * NH + h) * HS;
        float *o = J->out + (i * NH + h) * HS;
        for (int t = lo; t <= p; t++) sc[t - lo] = lf__dot(q, K + (size_t)t * (size_t)W, HS) * scale;
        lf__softmax_inplace(sc, p - lo + 1);
        memset(o, 0, (size_t)HS * sizeof(float));
        for (int t = lo; t <= p; t++) lf__axpy(o, sc[t - lo], V + (size_t)t * (size_t)W, HS);
    }
}

// -- 6.2 the forward pass

LF_API lf_status lf_model_forward(lf_model *m, lf_kv *kv, const lf_batch *b, float *logits) {
    const lf_model_config *c = &m->cfg;
    int n = b->n;
    if (n <= 0) return lf__fail(LF_ERR_ARG, "forward: empty batch");
    if (n > m->max_tokens)
        return lf__fail(LF_ERR_CAPACITY, "forward: %d tokens in one batch, max_tokens is %d", n, m->max_tokens);
    if (kv->L != c->L || kv->width != c->NKV * c->HS) return lf__fail(LF_ERR_ARG, "forward: KV cache made for another model");
    lf__acts a;
    lf__acts_plan(m, &a, m->acts_.base);
    const int32_t *P = b->pos, *S = b->seq;
    if (!P)
        for (int i = 0; i < n; i++) a.pos[i] = i;
    if (!S) memset(a.seq, 0, (size_t)n * sizeof(int32_t));
    P = P ? P : a.pos, S = S ? S : a.seq;
    // validate every token before the cache changes; writing position p forgets what followed it
    lf_status s = LF_OK;
    int i = 0;
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
        else
            a.undo[i] = kv->len[S[i]], kv->len[S[i]] = P[i] + 1;
    }
    if (s != LF_OK) {
        for (i -= 2; i >= 0; i--) kv->len[S[i]] = a.undo[i];
        return s;
    }
    int64_t C = c->C, QW = (int64_t)c->NH * c->HS, KW = kv->width, FF = c->FF;
    // embedding rows
    for (i = 0; i < n; i++)
        lf_convert_to_f32(a.x + i * C, (const unsigned char *)m->embed.data + (size_t)b->tokens[i] * (size_t)C *
                                                                                   lf_dtype_size(m->embed.dtype),
                          m->embed.dtype, C);
    for (int l = 0; l < c->L; l++) {
        const lf_layer *ly = &m->layers[l];
        lf__rmsnorm_forward(a.xn, a.x, ly->attn_norm, n, C, c->eps);
        lf__matmul(m->pool, a.q, a.xn, ly->wq.data, ly->wq.dtype, ly->bq, n, QW, C);
        lf__matmul(m->pool, a.k, a.xn, ly->wk.data, ly->wk.dtype, ly->bk, n, KW, C);
        lf__matmul(m->pool, a.v, a.xn, ly->wv.data, ly->wv.dtype, ly->bv, n, KW, C);
        lf__rope_forward(a.q, m->rope_cos, m->rope_sin, P, n, c->NH, c->HS);
        lf__rope_forward(a.k, m->rope_cos, m->rope_sin, P, n, c->NKV, c->HS);
        for (i = 0; i < n; i++) {
            size_t row = (((size_t)l * (size_t)kv->max_seqs + (size_t)S[i]) * (size_t)kv->max_seq_len + (size_t)P[i]) *
                         (size_t)KW;
            memcpy(kv->k + row, a.k + i * KW, (size_t)KW * sizeof(float));
            memcpy(kv->v + row, a.v + i * KW, (size_t)KW * sizeof(float));
        }
        lf__attn_job aj = {m, kv, l, n, P, S, a.q, a.att, a.scores};
        lf_parallel_for(m->pool, (int64_t)n * c->NH, lf__attn_worker, &aj);
        lf__matmul(m->pool, a.xn, a.att, ly->wo.data, ly->wo.dtype, ly->bo, n, C, QW);
        for (int64_t i = 0; i < n * C; i++) a.x[i] += a.xn[i];
        lf__rmsnorm_forward(a.xn, a.x, ly->mlp_norm, n, C, c->eps);
        lf__matmul(m->pool, a.gate, a.xn, ly->w_gate.data, ly->w_gate.dtype, ly->b_gate, n, FF, C);
        lf__matmul(m->pool, a.up, a.xn, ly->w_up.data, ly->w_up.dtype, ly->b_up, n, FF, C);
        lf__swiglu_forward(a.gate, a.gate, a.up, n * FF);
        lf__matmul(m->pool, a.xn, a.gate, ly->w_down.data, ly->w_down.dtype, ly->b_down, n, C, FF);
        for (int64_t i = 0; i < n * C; i++) a.x[i] += a.xn[i];
    }
    // final norm and lm_head on the rows that want logits only
    int rows = 0;
    for (i = 0; i < n; i++)
        if (b->logits ? b->logits[i] != 0 : i == n - 1) memcpy(a.rows + rows++ * C, a.x + i * C, (size_t)C * sizeof(float));
    lf__rmsnorm_forward(a.xn, a.rows, m->final_norm, rows, C, c->eps);
    lf__matmul(m->pool, logits, a.xn, m->lm_head.data, m->lm_head.dtype, NULL, rows, c->V, C);
    return LF_OK;
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
