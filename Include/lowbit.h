/*
 * lowbit.h — the stable C interface of liblowbit: low-bit LLM weights on CPUs.
 *
 * Conventions (every function follows them unless its comment says otherwise):
 *  - Every function that can fail returns a lowbit_status; LOWBIT_OK (0) is success. Results come
 *    back through out-pointers, which are written only on success: a failed call changes nothing.
 *  - lowbit_last_error() gives the reason for the latest failure on the calling thread.
 *  - Array arguments come with their length in elements (`*_len`), checked before any use.
 *  - Handles are opaque. Every lowbit_matrix made by a lowbit_matrix_* constructor is released with
 *    lowbit_matrix_free; free accepts NULL.
 *  - Threads: functions taking a `const lowbit_matrix *` may run concurrently on the same matrix
 *    from any number of threads and give the same results as one at a time (scratch memory is per
 *    thread, never shared through the matrix). Freeing a matrix while another thread still uses
 *    it is the caller's error and is undefined.
 *  - Nothing here aborts or throws: NULL pointers, non-positive sizes, overflowing sizes, short
 *    buffers, unsupported options and malformed files all come back as a status.
 *  - Versions: a function without a "Since" note appeared in 0.1. Calls that may change between
 *    versions are declared only when LOWBIT_EXPERIMENTAL is defined (the section at the end).
 */
#ifndef LOWBIT_H
#define LOWBIT_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#if defined(_WIN32)
#  define LOWBIT_API __declspec(dllimport)
#else
#  define LOWBIT_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- versions ------------------------------------------------------------------------------ */

#define LOWBIT_VERSION_MAJOR 0
#define LOWBIT_VERSION_MINOR 2
#define LOWBIT_VERSION_PATCH 0
/* MAJOR * 10000 + MINOR * 100 + PATCH: compare with lowbit_version_number() to check that the
 * library loaded at run time is the one this header describes. */
#define LOWBIT_VERSION_NUMBER (LOWBIT_VERSION_MAJOR * 10000 + LOWBIT_VERSION_MINOR * 100 + LOWBIT_VERSION_PATCH)

/* Version of the loaded library, as LOWBIT_VERSION_NUMBER. */
LOWBIT_API uint32_t lowbit_version_number(void);
/* "MAJOR.MINOR.PATCH"; static storage, never NULL. */
LOWBIT_API const char *lowbit_version_string(void);

/* ---- status and errors --------------------------------------------------------------------- */

typedef int32_t lowbit_status;
enum {
    LOWBIT_OK = 0,
    LOWBIT_ERROR_NULL_POINTER = 1,     /* a required pointer is NULL */
    LOWBIT_ERROR_INVALID_ARGUMENT = 2, /* a value is out of range (size <= 0, NaN weight, ...) */
    LOWBIT_ERROR_UNSUPPORTED = 3,      /* bit width, group size or option not supported */
    LOWBIT_ERROR_SIZE_MISMATCH = 4,    /* a buffer is shorter than the shape needs */
    LOWBIT_ERROR_OVERFLOW = 5,         /* a size computation overflows */
    LOWBIT_ERROR_OUT_OF_MEMORY = 6,
    LOWBIT_ERROR_IO = 7,               /* a file could not be read or written */
    LOWBIT_ERROR_BAD_FORMAT = 8,       /* a file is malformed, truncated or corrupt */
    LOWBIT_ERROR_INTERNAL = 9
};

/* A short fixed description of a status; static storage, never NULL (unknown codes included). */
LOWBIT_API const char *lowbit_status_string(lowbit_status status);
/* The message of the latest failed call on this thread ("" if none failed), e.g.
 * "cols 4095 is not a multiple of group size 128". Valid until the next lowbit call on this
 * thread; successful calls leave it unchanged. Never NULL. */
LOWBIT_API const char *lowbit_last_error(void);

/* ---- runtime ------------------------------------------------------------------------------- */

/* Threads used by products and quantizers, process-wide; 0 = one per CPU (the default).
 * Each kernel family gives bit-identical results for every thread count; LOWBIT_KERNEL_AUTO
 * measures per thread count and may pick another family at another count, and families round
 * differently in the last bits. Fails for threads < 0 or > 1024. */
LOWBIT_API lowbit_status lowbit_set_threads(int32_t threads);
/* The number of threads products will use now. */
LOWBIT_API int32_t lowbit_get_threads(void);
/* The SIMD tier the kernels run at: "portable", "avx2" or "avx512" (the best this CPU runs, or
 * the lower one LOWBIT_SIMD names); static storage. */
LOWBIT_API const char *lowbit_simd_tier(void);

/* ---- low-bit matrices ---------------------------------------------------------------------- */

/* A quantized weight matrix W of rows x cols, for products y = W·x. Weights are quantized in
 * groups of `group_size` consecutive columns (32, 64 or 128; cols must be a multiple): per group
 * a scale d and offset m, per weight a code q, w = d·q + m. */
#ifdef LOWBIT_ABI_CHECK
typedef void lowbit_matrix; /* see Tests/abi: lets the Swift-emitted prototypes be compared */
#else
typedef struct lowbit_matrix lowbit_matrix;
#endif

/* Weight bit widths: 1, 2, 3, 4, or ternary {-1, 0, +1} (1.58 bits, stored in 2). */
#define LOWBIT_BITS_TERNARY 158
/* BitMoD mixed data types, 3 or 4 bits: each group picks, by least squared error, the integer
 * grid or a float grid (FP3 / FP4-E2M1) with one extra value (+-3, +-6 / +-10, +-16). Products
 * run on every kernel family. */
#define LOWBIT_BITS_MIXED3 203
#define LOWBIT_BITS_MIXED4 204

/* Flags of lowbit_matrix_quantize. */
#define LOWBIT_QUANT_SYMMETRIC 1u      /* balanced levels around zero, no zero point */

/* act_bits value for float activations (dequant family). */
#define LOWBIT_ACT_FLOAT 32

/* Kernel families of a product. */
typedef int32_t lowbit_kernel;
enum {
    LOWBIT_KERNEL_AUTO = 0,       /* the family this library picks for the shape and N */
    LOWBIT_KERNEL_LUT = 1,        /* T-MAC table lookup, int8 tables */
    LOWBIT_KERNEL_BIT_SERIAL = 2, /* weight x activation bit planes, AND + popcount */
    LOWBIT_KERNEL_DEQUANT = 3,    /* unpack codes to int8 (x int8 activations) or float */
    LOWBIT_KERNEL_REFERENCE = 4   /* plain Float64 sums; slow, the spec */
};
/* The name of a lowbit_kernel value ("auto", "lut", ...), or NULL for a value no family has:
 * the values are small and dense, so trying 0 to 63 finds every family. Static storage. */
LOWBIT_API const char *lowbit_kernel_name(lowbit_kernel kernel);

/* Quantizes row-major float32 weights (rows x cols, weights_len >= rows*cols, all finite).
 * bits: 1..4, LOWBIT_BITS_TERNARY or LOWBIT_BITS_MIXED3/4; flags: 0 or LOWBIT_QUANT_SYMMETRIC
 * (ternary is always symmetric; mixed types ignore it). On success *out owns a new matrix. */
LOWBIT_API lowbit_status lowbit_matrix_quantize(const float *weights, int64_t weights_len, int64_t rows, int64_t cols,
                                                int32_t bits, int32_t group_size, uint32_t flags, lowbit_matrix **out);

/* Flags of lowbit_matrix_from_gptq. */
#define LOWBIT_GPTQ_ZEROS_EXACT 1u     /* qzeros hold z itself ("gptq_v2"); default: z - 1 (v1) */

/* Imports GPTQ/AWQ-style int32-packed weights without requantizing, W = rows (out_features) x
 * cols (in_features), bits 1, 2 or 4, pack = 32 / bits:
 *   qweight [cols/pack][rows]: bits t*b..(t+1)*b-1 of qweight[i][j] are q[j][i*pack + t]
 *   qzeros  [cols/group_size][rows/pack], packed the same way along rows
 *   scales  [cols/group_size][rows] float32
 * and w = scale * (q - z). rows must be a multiple of pack. */
LOWBIT_API lowbit_status lowbit_matrix_from_gptq(const int32_t *qweight, int64_t qweight_len,
                                                 const int32_t *qzeros, int64_t qzeros_len,
                                                 const float *scales, int64_t scales_len,
                                                 int64_t rows, int64_t cols, int32_t bits, int32_t group_size,
                                                 uint32_t flags, lowbit_matrix **out);

/* Imports ternary weights: values int8 in {-1, 0, +1}, row-major rows x cols; scales_len is 1
 * (per tensor), rows (per row) or rows*cols/group_size (per group); w = scale * value. */
LOWBIT_API lowbit_status lowbit_matrix_from_ternary(const int8_t *values, int64_t values_len,
                                                    const float *scales, int64_t scales_len,
                                                    int64_t rows, int64_t cols, int32_t group_size,
                                                    lowbit_matrix **out);

/* Releases a matrix; NULL is accepted and ignored. */
LOWBIT_API void lowbit_matrix_free(lowbit_matrix *m);

/* Shape and format. Any out-pointer may be NULL to skip that field. bits is 1..4,
 * LOWBIT_BITS_TERNARY or LOWBIT_BITS_MIXED3/4; flags has LOWBIT_QUANT_SYMMETRIC for symmetric matrices. */
LOWBIT_API lowbit_status lowbit_matrix_describe(const lowbit_matrix *m, int64_t *rows, int64_t *cols,
                                                int32_t *bits, int32_t *group_size, uint32_t *flags);

/* Bytes of memory the matrix holds now: codes, group parameters and kernel layouts packed so far. */
LOWBIT_API lowbit_status lowbit_matrix_nbytes(const lowbit_matrix *m, uint64_t *out);

/* Y = X·Wᵀ: x is n x cols row-major (x_len >= n*cols), y is n x rows (y_len >= n*rows), n >= 1.
 * kernel: a lowbit_kernel. act_bits: activation precision, 0 = the family's default:
 * LOWBIT_KERNEL_BIT_SERIAL takes 2, 4 or 8 (default 8); LOWBIT_KERNEL_DEQUANT takes 8 (int8, the
 * default and fast path), 16 (two int8 passes: x, then its rounding residual; error ~1e-7 where
 * int8 gives ~4e-5, at about twice the work) or LOWBIT_ACT_FLOAT (float activations, no rounding,
 * about 3 times the int8 path's time); LOWBIT_KERNEL_AUTO measures its pick at 8 and runs the one
 * family with any other precision (2, 4: bit-serial; 16, LOWBIT_ACT_FLOAT: dequant); LUT and
 * reference ignore it. Activations must be finite. Allocates only the calling
 * thread's reusable workspace (first use, or a larger product than before). The first LUT
 * product packs the LUT layout once (see lowbit_matrix_prepare). Thread-safe on one matrix. */
LOWBIT_API lowbit_status lowbit_matrix_matmul(const lowbit_matrix *m, const float *x, int64_t x_len, int64_t n,
                                              float *y, int64_t y_len, lowbit_kernel kernel, int32_t act_bits);

/* Packs the weight layout a kernel family needs now instead of at its first product. */
LOWBIT_API lowbit_status lowbit_matrix_prepare(const lowbit_matrix *m, lowbit_kernel kernel);

/* The family LOWBIT_KERNEL_AUTO runs for n activation rows: the one measured fastest on this
 * machine for the matrix's shape and type, n's bucket (1, 2, <=4, <=8, ... <=128, more), the
 * thread count and the SIMD tier. The first query or auto product of a new combination measures (a few products on
 * synthetic activations, once per process unless a calibration file is loaded). */
LOWBIT_API lowbit_status lowbit_matrix_auto_kernel(const lowbit_matrix *m, int64_t n, lowbit_kernel *out);

/* Writes the auto-kernel measurements made so far to a text file (atomically). */
LOWBIT_API lowbit_status lowbit_calibration_save(const char *path);
/* Adds the measurements of a file written by lowbit_calibration_save or `lowbit bench
 * --calibrate PATH`; a malformed file is an error and changes nothing. */
LOWBIT_API lowbit_status lowbit_calibration_load(const char *path);

/* The float weights the matrix stands for, row-major into out (out_len >= rows*cols). */
LOWBIT_API lowbit_status lowbit_matrix_dequantize(const lowbit_matrix *m, float *out, int64_t out_len);

/* Saves to a file (written to a temporary name, then renamed: never a half-written file). */
LOWBIT_API lowbit_status lowbit_matrix_save(const lowbit_matrix *m, const char *path);
/* Loads a file written by lowbit_matrix_save, validating every field and checksum. */
LOWBIT_API lowbit_status lowbit_matrix_load(const char *path, lowbit_matrix **out);

/* ---- BitStack: memory-elastic weights ----------------------------------------------------- */

/* A stack file opened under a memory budget: each weight matrix is a sum of ~1-bit residual
 * blocks (signs x rank-k factors), stacked by importance; the longest prefix of the stack that
 * fits the budget is held in memory, every tensor at least its first block. */
#ifdef LOWBIT_ABI_CHECK
typedef void lowbit_stack;
#else
typedef struct lowbit_stack lowbit_stack;
#endif

/* Progress of long work: `done` of `total` steps (blocks, for lowbit_stack_build). */
typedef void (*lowbit_progress_fn)(void *user, int64_t done, int64_t total);

/* Decomposes `count` named float32 matrices (weights[i]: rows[i] x cols[i], row-major, cols a
 * multiple of 32) into `blocks` blocks each (1..64, typically 16) and writes the stack file
 * atomically. max_rank: largest rank k (e.g. 16); factor_share: largest share of a block the
 * Float16 factors may take (0 = the default 0.25; >= 1 = no cap), which picks k per matrix.
 * calibration (nullable, or per-tensor nullable): calibration_samples[i] x cols[i] activations for
 * activation-aware scaling. Blocks are stored in level rounds: every tensor gets block i before
 * any gets block i + 1. sensitivity (nullable): per-tensor weights that order each round, by
 * sensitivity x the error energy a block removes / its bytes (e.g. the loss change when the
 * tensor loses a block, per unit of that energy); NULL: tensor order. progress (nullable) is
 * called after each block, on the calling thread. */
LOWBIT_API lowbit_status lowbit_stack_build(const char *path, int32_t count, const char *const *names,
                                            const float *const *weights, const int64_t *rows, const int64_t *cols,
                                            const float *const *calibration, const int64_t *calibration_samples,
                                            const double *sensitivity, int32_t blocks, int32_t max_rank,
                                            double factor_share, lowbit_progress_fn progress, void *user);

/* Opens a stack file under `budget` bytes (validating its header and index; each block's checksum
 * is checked when the block is read). A budget below the minimum (every tensor at one block plus
 * the index) is LOWBIT_ERROR_INVALID_ARGUMENT, and the message says the minimum. */
LOWBIT_API lowbit_status lowbit_stack_open(const char *path, uint64_t budget, lowbit_stack **out);
/* Closes a stack; NULL is accepted. Not while another thread uses it. */
LOWBIT_API void lowbit_stack_close(lowbit_stack *s);
/* Changes the budget: reads only the blocks a larger budget adds, releases only the tail for a
 * smaller one. Safe while other threads run lowbit_stack_matmul on the same stack: each product
 * sees one consistent set of blocks, and memory is freed only after the products using it end. */
LOWBIT_API lowbit_status lowbit_stack_set_budget(lowbit_stack *s, uint64_t budget);
/* Sizes in bytes; any out-pointer may be NULL. resident: held now (never above the budget);
 * minimum: the smallest valid budget; total: with every block; read: block bytes read so far. */
LOWBIT_API lowbit_status lowbit_stack_info(const lowbit_stack *s, uint64_t *resident, uint64_t *minimum,
                                           uint64_t *total, uint64_t *read);
/* A tensor's shape, rank and blocks (resident now, and in the file); out-pointers may be NULL. */
LOWBIT_API lowbit_status lowbit_stack_tensor(const lowbit_stack *s, const char *name, int64_t *rows, int64_t *cols,
                                             int32_t *rank, int32_t *blocks_resident, int32_t *blocks_total);
/* Y = X·Wᵀ for tensor `name` with its resident blocks (x: n x cols, y: n x rows). For n < 16 each
 * block is a 1-bit LUT product with n·rank activation rows, W never rebuilt; from n = 16 on, W is
 * rebuilt in Float32 slices of at most half of L2 per thread (the whole of W never at once) and
 * multiplied in Float32. Thread-safe. */
LOWBIT_API lowbit_status lowbit_stack_matmul(const lowbit_stack *s, const char *name, const float *x, int64_t x_len,
                                             int64_t n, float *y, int64_t y_len);

/* ---- the Llama runner ---------------------------------------------------------------------- */

/* A Llama-family GGUF model (architectures llama, qwen2, qwen3 with a byte-level BPE tokenizer, as
 * SmolLM2, Llama 3, Qwen2, Qwen3, or SentencePiece's, as Llama 2 and Mistral; another architecture
 * or tokenizer model is LOWBIT_ERROR_UNSUPPORTED) whose linear layers are lowbit matrices.
 * Calls on one model may run from several threads at once (each generation has its own cache);
 * closing it while another thread uses it is the caller's error. */
#ifdef LOWBIT_ABI_CHECK
typedef void lowbit_model;
#else
typedef struct lowbit_model lowbit_model;
#endif

/* How the linear layers are held. */
typedef int32_t lowbit_weights;
enum {
    LOWBIT_WEIGHTS_REFERENCE = 0,   /* the file's weights dequantized to float32 */
    LOWBIT_WEIGHTS_FILE = 1,        /* the file's own blocks, not requantized: Q4_0/Q4_1/Q4_K,
                                       Q5_0/Q5_1/Q5_K and TQ1_0/TQ2_0 as lowbit codes, Q8_0 and
                                       Q2_K/Q3_K/Q6_K/IQ4 as their blocks on kernels of their own,
                                       float types as float32 (since 0.2) */
    LOWBIT_WEIGHTS_Q4_1 = 1,        /* LOWBIT_WEIGHTS_FILE's name in 0.1 */
    LOWBIT_WEIGHTS_REQUANTIZED = 2, /* requantized to `bits` (1..4, LOWBIT_BITS_TERNARY), `group_size` */
    LOWBIT_WEIGHTS_STACK = 3        /* a BitStack file (`stack_path`) under `budget` bytes */
};

/* Options of lowbit_model_load. `size` is sizeof(lowbit_model_params) as the caller's header
 * declares it: fields a later version appends are then left at their defaults for older callers.
 * Fill with lowbit_model_default_params, then change what you need. Since 0.2. */
#ifdef LOWBIT_ABI_CHECK
typedef void lowbit_model_params;
#else
typedef struct lowbit_model_params {
    size_t size;
    lowbit_weights weights;       /* default LOWBIT_WEIGHTS_FILE */
    int32_t bits;                 /* REQUANTIZED: 1..4, LOWBIT_BITS_TERNARY (default 4) */
    int32_t group_size;           /* REQUANTIZED: 32, 64 or 128 (default 64) */
    lowbit_kernel kernel;         /* FILE and REQUANTIZED (default LOWBIT_KERNEL_AUTO) */
    const char *stack_path;       /* STACK: the BitStack file */
    uint64_t budget;              /* STACK: bytes of weights to hold; FILE: an elastic model file's
                                     (0: its largest level; since 0.2) */
    const char *calibration_text; /* REQUANTIZED: NULL, or UTF-8 text to calibrate on (see below) */
    int32_t act_bits;             /* FILE: 8, 16 or 32; 0 = the kernel's default (see below) */
} lowbit_model_params;
#endif

/* Writes the defaults (and out->size) to *out. Since 0.2. */
LOWBIT_API lowbit_status lowbit_model_default_params(lowbit_model_params *out);
/* Loads a GGUF model as `params` says (NULL: the defaults). FILE with kernel auto or dequant runs
 * 16-bit activations (act_bits 16 of lowbit_matrix_matmul), so it agrees with the reference model
 * token by token; with lut or bitserial, int8 activations as llama.cpp rounds them. A calibration
 * text (at least 16 tokens, the first 1024 used; not the text you evaluate on) requantizes on the
 * activations each layer sees there: input-channel scales searched per layer, then rounding with
 * error feedback; it takes seconds to tens of seconds. A lowbit model file (`lowbit quantize`)
 * loads with FILE as it is: its matrices on the kernel asked for (auto: measured) with int8
 * activations. Since 0.2. */
LOWBIT_API lowbit_status lowbit_model_load(const char *path, const lowbit_model_params *params, lowbit_model **out);

/* lowbit_model_load with the fields as arguments (group_size 0 = 64), from 0.1. */
LOWBIT_API lowbit_status lowbit_model_open(const char *path, lowbit_weights weights, int32_t bits, int32_t group_size,
                                           lowbit_kernel kernel, const char *stack_path, uint64_t budget,
                                           lowbit_model **out);
/* lowbit_model_load of a calibrated requantization with the fields as arguments, from 0.1. */
LOWBIT_API lowbit_status lowbit_model_open_calibrated(const char *path, int32_t bits, int32_t group_size,
                                                      lowbit_kernel kernel, const char *calibration_text,
                                                      lowbit_model **out);
/* Writes a lowbit model file (docs/FORMATS.md) made from the GGUF model at `path` to out_path,
 * which lowbit_model_load opens with LOWBIT_WEIGHTS_FILE without quantizing again. Either every
 * linear layer at `bits` (group_size 0 = 64; the output at 4 bits or more) with target_bytes 0,
 * or bits 0 and target_bytes > 0: each layer and the output at its own width (2-4 bits) and group
 * size so that the weights take at most target_bytes, chosen by sensitivities measured on
 * calibration_text (required then, at least 1040 tokens long). A calibration text calibrates
 * the matrices as in lowbit_model_open_calibrated; NULL rounds them plainly. Seconds for `bits`,
 * minutes for a target size on SmolLM2-135M. Since 0.2. */
LOWBIT_API lowbit_status lowbit_model_quantize(const char *path, const char *out_path, int32_t bits, int32_t group_size,
                                               uint64_t target_bytes, const char *calibration_text);
/* Writes an elastic model file to out_path: the target-size model of `levels` sizes evenly spaced
 * from min_bytes to max_bytes (levels 0: one per MiB, 2 to 64; at most 4096) in one file, each
 * linear layer stored at every precision a size gives it (a size that scores no better on held-out
 * calibration text than a smaller one is left out). lowbit_model_load opens it with
 * LOWBIT_WEIGHTS_FILE and `budget` (0: its largest level), holding the largest level that fits;
 * lowbit_model_set_budget moves between levels reading only the layers that change.
 * calibration_text is required (at least 1040 tokens). Minutes on SmolLM2-135M. Since 0.2. */
LOWBIT_API lowbit_status lowbit_model_quantize_elastic(const char *path, const char *out_path, uint64_t min_bytes,
                                                       uint64_t max_bytes, int32_t levels,
                                                       const char *calibration_text);
/* Releases a model; NULL is accepted. */
LOWBIT_API void lowbit_model_close(lowbit_model *m);
/* Generates up to max_tokens tokens after `prompt` (chat != 0: in the model's chat template;
 * temperature 0: greedy) and writes the continuation, UTF-8 and NUL-terminated, to out. If out_len
 * is too small (0 included, where out may be NULL) the call fails with LOWBIT_ERROR_SIZE_MISMATCH
 * and *written (if not NULL) holds the bytes needed including the NUL; on success *written is the
 * length without the NUL. A negative out_len is LOWBIT_ERROR_INVALID_ARGUMENT. */
LOWBIT_API lowbit_status lowbit_model_generate(const lowbit_model *m, const char *prompt, int32_t chat,
                                               int32_t max_tokens,
                                               float temperature, float top_p, uint64_t seed,
                                               char *out, int64_t out_len, int64_t *written);
/* Perplexity of `text` by llama-perplexity's protocol: chunks of ctx tokens (chunks 0 = all),
 * each scored on its second half. */
LOWBIT_API lowbit_status lowbit_model_perplexity(const lowbit_model *m, const char *text, int32_t ctx, int32_t chunks,
                                                 double *out);
/* Changes the budget of a BitStack model (see lowbit_stack_set_budget) or of an elastic model file
 * (the largest level that fits; only the layers that change are read; products running on other
 * threads finish on the weights they started with; an error changes nothing); other models: an
 * error. */
LOWBIT_API lowbit_status lowbit_model_set_budget(lowbit_model *m, uint64_t budget);
/* Bytes of weights the model holds now. */
LOWBIT_API lowbit_status lowbit_model_weight_bytes(const lowbit_model *m, uint64_t *out);

/* ---- tokens, chat templates, contexts -------------------------------------------------------- */

/* The model's vocabulary size and the longest context it was trained for. Since 0.2. */
LOWBIT_API lowbit_status lowbit_model_vocab_size(const lowbit_model *m, int32_t *out);
LOWBIT_API lowbit_status lowbit_model_context_length(const lowbit_model *m, int32_t *out);

typedef int32_t lowbit_special_token;
enum {
    LOWBIT_TOKEN_BOS = 0,         /* beginning of sequence */
    LOWBIT_TOKEN_EOS = 1,         /* end of sequence */
    LOWBIT_TOKEN_END_OF_TURN = 2  /* the file's eot token, ChatML's <|im_end|> or Llama 3's <|eot_id|> */
};
/* The id of a special token, or -1 when the model has none. Since 0.2. */
LOWBIT_API lowbit_status lowbit_model_special_token(const lowbit_model *m, lowbit_special_token which, int32_t *out);

/* Token ids of UTF-8 `text`. add_special != 0: BOS first where the model asks for it;
 * parse_special != 0: control-token text such as <|im_start|> becomes those tokens. *n_tokens
 * receives the count; if tokens_len is smaller (0 included, where tokens may be NULL) the call
 * fails with LOWBIT_ERROR_SIZE_MISMATCH and writes no token. Since 0.2. */
LOWBIT_API lowbit_status lowbit_tokenize(const lowbit_model *m, const char *text, int32_t add_special,
                                         int32_t parse_special, int32_t *tokens, int64_t tokens_len,
                                         int64_t *n_tokens);
/* The text of tokens[0..n) as one text, NUL-terminated, with lowbit_model_generate's
 * out/out_len/written rules (bytes that are not valid UTF-8 become U+FFFD): a SentencePiece
 * model's space before the first word, which lowbit_tokenize puts there, is left out, as
 * SentencePiece decodes. Since 0.2. */
LOWBIT_API lowbit_status lowbit_detokenize(const lowbit_model *m, const int32_t *tokens, int64_t n,
                                           char *out, int64_t out_len, int64_t *written);

/* One message of a conversation; role is a word such as "system", "user" or "assistant". */
#ifdef LOWBIT_ABI_CHECK
typedef void lowbit_chat_message;
#else
typedef struct lowbit_chat_message {
    const char *role;
    const char *content;
} lowbit_chat_message;
#endif
/* messages[0..n) in the model's chat template (ChatML, with the template's default system message
 * when the first message is not one; Llama 3's role headers; Llama 2's and Mistral's [INST]
 * turns; others are LOWBIT_ERROR_UNSUPPORTED), and the assistant's turn opened when
 * add_generation_prompt != 0 ([INST] prompts end where the reply begins either way). Output
 * rules as lowbit_detokenize.
 * Since 0.2. */
LOWBIT_API lowbit_status lowbit_chat_template(const lowbit_model *m, const lowbit_chat_message *messages, int64_t n,
                                              int32_t add_generation_prompt, char *out, int64_t out_len,
                                              int64_t *written);

/* How tokens are drawn from logits: greedy at temperature 0; otherwise from the softmax at that
 * temperature over the top_k likeliest tokens (0: all) and the smallest set of them whose
 * probability reaches top_p. Tokens among the last repetition_window of the context have their
 * logit divided by repetition_penalty (multiplied, where negative; 1: off). The same seed, params
 * and context give the same tokens. `size` as in lowbit_model_params. Since 0.2. */
#ifdef LOWBIT_ABI_CHECK
typedef void lowbit_sampler_params;
#else
typedef struct lowbit_sampler_params {
    size_t size;
    float temperature;          /* 0..100, default 0 */
    int32_t top_k;              /* default 0 */
    float top_p;                /* (0, 1], default 1 */
    float repetition_penalty;   /* (0, 100], default 1 */
    int32_t repetition_window;  /* default 64 */
    uint64_t seed;              /* default 1 */
} lowbit_sampler_params;
#endif
/* Writes the defaults (and out->size) to *out. Since 0.2. */
LOWBIT_API lowbit_status lowbit_sampler_default_params(lowbit_sampler_params *out);

/* A context: a model with a KV cache of its own, holding the tokens of one conversation or
 * document. Every call on a context changes it only on success. Thread rules: one thread at a
 * time per context; contexts of one model may run on different threads at once; the model
 * must outlive its contexts. */
#ifdef LOWBIT_ABI_CHECK
typedef void lowbit_context;
#else
typedef struct lowbit_context lowbit_context;
#endif

/* A context of up to n_ctx tokens (0: the model's context length). Its cache grows with the
 * tokens it holds. Since 0.2. */
LOWBIT_API lowbit_status lowbit_context_new(const lowbit_model *m, int32_t n_ctx, lowbit_context **out);
/* Releases a context; NULL is accepted. Since 0.2. */
LOWBIT_API void lowbit_context_free(lowbit_context *c);
/* Runs tokens[0..n) after the tokens the context holds. logits (may be NULL with logits_len 0)
 * receives the vocabulary's logits after the last token, or after each of them (all_logits != 0:
 * n x vocab floats, row-major); a short logits buffer fails before anything runs. Since 0.2. */
LOWBIT_API lowbit_status lowbit_context_eval(lowbit_context *c, const int32_t *tokens, int64_t n, int32_t all_logits,
                                             float *logits, int64_t logits_len);
/* The tokens the context holds: *n receives their count, tokens[0..count) the ids (the
 * lowbit_tokenize rules for a short buffer). Since 0.2. */
LOWBIT_API lowbit_status lowbit_context_tokens(const lowbit_context *c, int32_t *tokens, int64_t tokens_len,
                                               int64_t *n);
/* Keeps the first n tokens the context holds (0: empty, as new). Since 0.2. */
LOWBIT_API lowbit_status lowbit_context_truncate(lowbit_context *c, int64_t n);
/* A token drawn from the logits after the context's last token, by `params` (NULL: greedy). The
 * random state lives in the context: it goes on from call to call while the params stay the same,
 * and restarts from params->seed when they change. Since 0.2. */
LOWBIT_API lowbit_status lowbit_context_sample(lowbit_context *c, const lowbit_sampler_params *params, int32_t *token);

/* Called with each generated token and the text it completes (UTF-8, piece_len bytes and a NUL;
 * empty while a character is split across tokens), on the calling thread. Return nonzero to go on,
 * 0 to stop. */
typedef int32_t (*lowbit_token_fn)(void *user, int32_t token, const char *piece, int64_t piece_len);
/* Makes the context hold prompt[0..n) (running only what follows the longest prefix it already
 * holds), then generates up to max_tokens tokens by `params` (NULL: greedy), each passed to
 * on_token (may be NULL) and run into the context before the next is drawn. Stops at an
 * end-of-sequence or end-of-turn token (not passed on), when on_token returns 0, or when the
 * context is full. *generated (may be NULL) receives the count passed to on_token. Since 0.2. */
LOWBIT_API lowbit_status lowbit_context_generate(lowbit_context *c, const int32_t *prompt, int64_t n,
                                                 int32_t max_tokens, const lowbit_sampler_params *params,
                                                 lowbit_token_fn on_token, void *user, int64_t *generated);
/* One chat turn: messages[0..n) in the chat template with the assistant's turn opened, then
 * lowbit_context_generate. Passing the reply back as the last assistant message of the next turn
 * (followed by the new user message) reuses the context up to it. Since 0.2. */
LOWBIT_API lowbit_status lowbit_context_chat(lowbit_context *c, const lowbit_chat_message *messages, int64_t n,
                                             int32_t max_tokens, const lowbit_sampler_params *params,
                                             lowbit_token_fn on_token, void *user, int64_t *generated);

/* ---- experimental ---------------------------------------------------------------------------- */

/* Calls that may change or go in any version: define LOWBIT_EXPERIMENTAL before including this
 * header to use them, and build against the exact version you run. */
#if defined(LOWBIT_EXPERIMENTAL) || defined(LOWBIT_ABI_CHECK)
/* Runs token ids tokens[0..n) from an empty context and writes the hidden states after the
 * embedding and after each layer: (layers + 1) x n x hidden floats, row-major (out_len at least
 * that; *layers and *hidden, if not NULL, receive the sizes, also when out_len is too small and
 * the call fails with LOWBIT_ERROR_SIZE_MISMATCH). For checking the forward pass against an
 * independent implementation layer by layer. */
LOWBIT_API lowbit_status lowbit_model_trace(const lowbit_model *m, const int32_t *tokens, int64_t n,
                                            float *out, int64_t out_len, int32_t *layers, int32_t *hidden);
#endif

#ifdef __cplusplus
}
#endif
#endif /* LOWBIT_H */
