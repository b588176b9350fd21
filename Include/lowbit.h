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
#define LOWBIT_VERSION_MINOR 1
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
 * machine for the matrix's shape and type, n's bucket (1, 2, <=4, <=8, ... <=128, more) and the
 * thread count. The first query or auto product of a new combination measures (a few products on
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

/* A Llama-architecture GGUF model (SmolLM2 and kin) whose linear layers are lowbit matrices.
 * Calls on one model may run from several threads at once (each generation has its own cache);
 * closing it while another thread uses it is the caller's error. */
#ifdef LOWBIT_ABI_CHECK
typedef void lowbit_model;
#else
typedef struct lowbit_model lowbit_model;
#endif

/* How the linear layers are held (lowbit_model_open's `weights`). */
enum {
    LOWBIT_WEIGHTS_REFERENCE = 0,   /* the file's weights dequantized to float32 */
    LOWBIT_WEIGHTS_Q4_1 = 1,        /* the file's own Q4_1 blocks, not requantized */
    LOWBIT_WEIGHTS_REQUANTIZED = 2, /* requantized to `bits` (1..4, LOWBIT_BITS_TERNARY), `group_size` */
    LOWBIT_WEIGHTS_STACK = 3        /* a BitStack file (`stack_path`) under `budget` bytes */
};

/* Loads a GGUF model. bits and group_size matter for LOWBIT_WEIGHTS_REQUANTIZED (group_size 0 =
 * 64), kernel for the lowbit modes, stack_path and budget for LOWBIT_WEIGHTS_STACK.
 * LOWBIT_WEIGHTS_Q4_1 with kernel auto or dequant runs 16-bit activations (act_bits 16 of
 * lowbit_matrix_matmul), so it agrees with the reference model token by token; with lut or
 * bitserial, int8 activations as llama.cpp rounds them. */
LOWBIT_API lowbit_status lowbit_model_open(const char *path, int32_t weights, int32_t bits, int32_t group_size,
                                           lowbit_kernel kernel, const char *stack_path, uint64_t budget,
                                           lowbit_model **out);
/* Loads a GGUF model requantized to `bits` / `group_size`, calibrated on the activations each
 * linear layer sees on `calibration_text` (UTF-8, at least 16 tokens, the first 1024 used; use
 * text other than what you evaluate on): input-channel scales searched per layer (AWQ style),
 * then rounding with error feedback (GPTQ style). Takes seconds to tens of seconds. */
LOWBIT_API lowbit_status lowbit_model_open_calibrated(const char *path, int32_t bits, int32_t group_size,
                                                      lowbit_kernel kernel, const char *calibration_text,
                                                      lowbit_model **out);
/* Releases a model; NULL is accepted. */
LOWBIT_API void lowbit_model_close(lowbit_model *m);
/* Generates up to max_tokens tokens after `prompt` (chat != 0: in the model's chat template;
 * temperature 0: greedy) and writes the continuation, UTF-8 and NUL-terminated, to out. If out_len
 * is too small (0 included, where out may be NULL) the call fails with LOWBIT_ERROR_SIZE_MISMATCH
 * and *written (if not NULL) holds the bytes needed including the NUL; on success *written is the
 * length without the NUL. A negative out_len is LOWBIT_ERROR_INVALID_ARGUMENT. */
LOWBIT_API lowbit_status lowbit_model_generate(const lowbit_model *m, const char *prompt, int32_t chat, int32_t max_tokens,
                                               float temperature, float top_p, uint64_t seed,
                                               char *out, int64_t out_len, int64_t *written);
/* Perplexity of `text` by llama-perplexity's protocol: chunks of ctx tokens (chunks 0 = all),
 * each scored on its second half. */
LOWBIT_API lowbit_status lowbit_model_perplexity(const lowbit_model *m, const char *text, int32_t ctx, int32_t chunks,
                                                 double *out);
/* Runs token ids tokens[0..n) from an empty context and writes the hidden states after the
 * embedding and after each layer: (layers + 1) x n x hidden floats, row-major (out_len at least
 * that; *layers and *hidden, if not NULL, receive the sizes, also when out_len is too small and
 * the call fails with LOWBIT_ERROR_SIZE_MISMATCH). For checking the forward pass against an
 * independent implementation layer by layer. */
LOWBIT_API lowbit_status lowbit_model_trace(const lowbit_model *m, const int32_t *tokens, int64_t n,
                                            float *out, int64_t out_len, int32_t *layers, int32_t *hidden);
/* Changes the budget of a BitStack model (see lowbit_stack_set_budget); other models: an error. */
LOWBIT_API lowbit_status lowbit_model_set_budget(lowbit_model *m, uint64_t budget);
/* Bytes of weights the model holds now. */
LOWBIT_API lowbit_status lowbit_model_weight_bytes(const lowbit_model *m, uint64_t *out);

#ifdef __cplusplus
}
#endif
#endif /* LOWBIT_H */
