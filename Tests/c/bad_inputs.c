/* Every exported function of lowbit.h against bad input: NULL, zero, negative, huge, short,
 * non-finite, wrong file type. Each call must return its documented status with a message and
 * leave every out-pointer and output buffer as it was. Run with the model's path as argv[1]
 * (the model calls are skipped without it) and built with -fsanitize=address.
 */
#define _DEFAULT_SOURCE
#define LOWBIT_EXPERIMENTAL /* lowbit_model_trace */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lowbit.h"

static int failures = 0, checks = 0;

static void expect(const char *what, lowbit_status got, lowbit_status want) {
    checks++;
    const char *message = lowbit_last_error();
    if (got != want || (want != LOWBIT_OK && message[0] == '\0')) {
        failures++;
        printf("FAIL %-44s got %s, want %s: %s\n", what, lowbit_status_string(got), lowbit_status_string(want),
               message);
    }
}

static void expect_true(const char *what, int condition) {
    checks++;
    if (!condition) {
        failures++;
        printf("FAIL %s\n", what);
    }
}

#define SENTINEL ((void *)0x5a5a5a5a)

static char temp_dir[] = "/tmp/lowbit-bad-inputs-XXXXXX";

static const char *temp_file(const char *name, const void *bytes, size_t count) {
    static char path[4][256];
    static int next = 0;
    char *p = path[next++ % 4];
    snprintf(p, 256, "%s/%s", temp_dir, name);
    if (bytes != NULL) {
        FILE *f = fopen(p, "wb");
        if (f == NULL || fwrite(bytes, 1, count, f) != count) {
            perror(p);
            exit(2);
        }
        fclose(f);
    }
    return p;
}

/* Files of every wrong kind: missing, a directory, a FIFO (a plain open would block), a device,
 * an empty file and text. Every loader must refuse each quickly with IO or BAD_FORMAT; an empty
 * file is `empty` (a calibration file without measurements is valid). */
static void wrong_files(const char *kind, lowbit_status (*load)(const char *), lowbit_status empty) {
    const char *fifo = temp_file("fifo", NULL, 0);
    unlink(fifo);
    if (mkfifo(fifo, 0600) != 0) {
        perror("mkfifo");
        exit(2);
    }
    const char *text = "not a lowbit file\n";
    struct {
        const char *what, *path;
        lowbit_status want;
    } cases[] = {
        {"missing", "/nonexistent/lowbit-file", LOWBIT_ERROR_IO},
        {"directory", temp_dir, LOWBIT_ERROR_IO},
        {"FIFO", fifo, LOWBIT_ERROR_IO},
        {"device", "/dev/zero", LOWBIT_ERROR_IO},
        {"empty", temp_file("empty", "", 0), empty},
        {"text", temp_file("text", text, strlen(text)), LOWBIT_ERROR_BAD_FORMAT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char what[128];
        snprintf(what, sizeof what, "%s: %s file", kind, cases[i].what);
        expect(what, load(cases[i].path), cases[i].want);
    }
    unlink(fifo);
}

static lowbit_matrix *loaded_matrix = SENTINEL;
static lowbit_status load_matrix(const char *path) { return lowbit_matrix_load(path, &loaded_matrix); }
static lowbit_stack *opened_stack = SENTINEL;
static lowbit_status open_stack(const char *path) { return lowbit_stack_open(path, UINT64_MAX, &opened_stack); }
static lowbit_model *opened_model = SENTINEL;
static lowbit_status open_model(const char *path) {
    return lowbit_model_open(path, LOWBIT_WEIGHTS_REFERENCE, 0, 0, LOWBIT_KERNEL_AUTO, NULL, 0, &opened_model);
}

static void runtime_calls(void) {
    expect_true("version number", lowbit_version_number() == LOWBIT_VERSION_NUMBER);
    expect_true("version string", strlen(lowbit_version_string()) >= 5);
    expect_true("status strings for unknown codes",
                lowbit_status_string(-1) != NULL && lowbit_status_string(1000) != NULL);
    int32_t threads = lowbit_get_threads();
    expect("threads -1", lowbit_set_threads(-1), LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("threads 1025", lowbit_set_threads(1025), LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("threads INT32_MIN", lowbit_set_threads(INT32_MIN), LOWBIT_ERROR_INVALID_ARGUMENT);
    expect_true("failed set_threads changes nothing", lowbit_get_threads() == threads);
    expect_true("tier", lowbit_simd_tier() != NULL);
    expect_true("kernel names", lowbit_kernel_name(LOWBIT_KERNEL_LUT) != NULL
                && strcmp(lowbit_kernel_name(LOWBIT_KERNEL_LUT), "lut") == 0
                && strcmp(lowbit_kernel_name(LOWBIT_KERNEL_AUTO), "auto") == 0);
    expect_true("no name for unknown kernels", lowbit_kernel_name(-1) == NULL && lowbit_kernel_name(INT32_MIN) == NULL
                && lowbit_kernel_name(1000) == NULL);
    expect("calibration_save NULL", lowbit_calibration_save(NULL), LOWBIT_ERROR_NULL_POINTER);
    expect("calibration_save into a missing folder", lowbit_calibration_save("/nonexistent/dir/c.txt"),
           LOWBIT_ERROR_IO);
    expect("calibration_load NULL", lowbit_calibration_load(NULL), LOWBIT_ERROR_NULL_POINTER);
    const char *huge = "1 1 32 99999999999 1 1 lut\n";
    expect("calibration_load number beyond int32",
           lowbit_calibration_load(temp_file("calibration", huge, strlen(huge))), LOWBIT_ERROR_BAD_FORMAT);
    wrong_files("calibration_load", lowbit_calibration_load, LOWBIT_OK);
}

static void matrix_calls(void) {
    enum { ROWS = 4, COLS = 128 };
    static float w[ROWS * COLS], x[2 * COLS], y[2 * ROWS];
    for (int i = 0; i < ROWS * COLS; i++)
        w[i] = (float)((i * 7) % 13) - 6.0f;
    for (int i = 0; i < 2 * COLS; i++)
        x[i] = 0.5f;
    lowbit_matrix *m = SENTINEL;
    expect("quantize NULL weights", lowbit_matrix_quantize(NULL, ROWS * COLS, ROWS, COLS, 4, 64, 0, &m),
           LOWBIT_ERROR_NULL_POINTER);
    expect("quantize NULL out", lowbit_matrix_quantize(w, ROWS * COLS, ROWS, COLS, 4, 64, 0, NULL),
           LOWBIT_ERROR_NULL_POINTER);
    expect("quantize zero rows", lowbit_matrix_quantize(w, ROWS * COLS, 0, COLS, 4, 64, 0, &m),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("quantize negative cols", lowbit_matrix_quantize(w, ROWS * COLS, ROWS, -COLS, 4, 64, 0, &m),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("quantize negative length", lowbit_matrix_quantize(w, -1, ROWS, COLS, 4, 64, 0, &m),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("quantize huge shape", lowbit_matrix_quantize(w, INT64_MAX, INT64_MAX, INT64_MAX, 4, 64, 0, &m),
           LOWBIT_ERROR_OVERFLOW);
    expect("quantize short weights", lowbit_matrix_quantize(w, ROWS * COLS - 1, ROWS, COLS, 4, 64, 0, &m),
           LOWBIT_ERROR_SIZE_MISMATCH);
    expect("quantize 0 bits", lowbit_matrix_quantize(w, ROWS * COLS, ROWS, COLS, 0, 64, 0, &m),
           LOWBIT_ERROR_UNSUPPORTED);
    expect("quantize group 0", lowbit_matrix_quantize(w, ROWS * COLS, ROWS, COLS, 4, 0, 0, &m),
           LOWBIT_ERROR_UNSUPPORTED);
    expect("quantize unknown flags", lowbit_matrix_quantize(w, ROWS * COLS, ROWS, COLS, 4, 64, 0x80, &m),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    w[17] = NAN;
    expect("quantize NaN weight", lowbit_matrix_quantize(w, ROWS * COLS, ROWS, COLS, 4, 64, 0, &m),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    w[17] = INFINITY;
    expect("quantize infinite weight", lowbit_matrix_quantize(w, ROWS * COLS, ROWS, COLS, 4, 64, 0, &m),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    w[17] = 3e38f;
    expect("quantize weight near FLT_MAX", lowbit_matrix_quantize(w, ROWS * COLS, ROWS, COLS, 2, 32, 0, &m),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    w[17] = 1.0f;
    expect("gptq NULL", lowbit_matrix_from_gptq(NULL, 0, NULL, 0, NULL, 0, 32, 32, 4, 32, 0, &m),
           LOWBIT_ERROR_NULL_POINTER);
    int32_t q[64] = {0};
    expect("gptq short qweight", lowbit_matrix_from_gptq(q, 1, q, 64, w, 64, 32, 32, 4, 32, 0, &m),
           LOWBIT_ERROR_SIZE_MISMATCH);
    expect("gptq huge shape", lowbit_matrix_from_gptq(q, 64, q, 64, w, 64, INT64_MAX, INT64_MAX, 4, 32, 0, &m),
           LOWBIT_ERROR_OVERFLOW);
    int8_t t[64] = {0};
    expect("ternary NULL", lowbit_matrix_from_ternary(NULL, 0, NULL, 0, 1, 32, 32, &m), LOWBIT_ERROR_NULL_POINTER);
    t[3] = 2;
    expect("ternary value 2", lowbit_matrix_from_ternary(t, 64, w, 2, 2, 32, 32, &m), LOWBIT_ERROR_INVALID_ARGUMENT);
    expect_true("failed constructors leave *out", m == SENTINEL);

    expect("quantize valid", lowbit_matrix_quantize(w, ROWS * COLS, ROWS, COLS, 3, 64, 0, &m), LOWBIT_OK);
    int64_t rows = -7;
    expect("describe NULL", lowbit_matrix_describe(NULL, &rows, NULL, NULL, NULL, NULL), LOWBIT_ERROR_NULL_POINTER);
    expect_true("failed describe leaves rows", rows == -7);
    uint64_t bytes = 7;
    expect("nbytes NULL matrix", lowbit_matrix_nbytes(NULL, &bytes), LOWBIT_ERROR_NULL_POINTER);
    expect("nbytes NULL out", lowbit_matrix_nbytes(m, NULL), LOWBIT_ERROR_NULL_POINTER);
    for (int i = 0; i < 2 * ROWS; i++)
        y[i] = 42.0f;
    expect("matmul NULL matrix", lowbit_matrix_matmul(NULL, x, COLS, 1, y, ROWS, LOWBIT_KERNEL_LUT, 0),
           LOWBIT_ERROR_NULL_POINTER);
    expect("matmul NULL x", lowbit_matrix_matmul(m, NULL, COLS, 1, y, ROWS, LOWBIT_KERNEL_LUT, 0),
           LOWBIT_ERROR_NULL_POINTER);
    expect("matmul NULL y", lowbit_matrix_matmul(m, x, COLS, 1, NULL, ROWS, LOWBIT_KERNEL_LUT, 0),
           LOWBIT_ERROR_NULL_POINTER);
    expect("matmul n 0", lowbit_matrix_matmul(m, x, COLS, 0, y, ROWS, LOWBIT_KERNEL_LUT, 0),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("matmul n -1", lowbit_matrix_matmul(m, x, COLS, -1, y, ROWS, LOWBIT_KERNEL_LUT, 0),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("matmul n huge", lowbit_matrix_matmul(m, x, INT64_MAX, INT64_MAX, y, INT64_MAX, LOWBIT_KERNEL_LUT, 0),
           LOWBIT_ERROR_OVERFLOW);
    expect("matmul short x", lowbit_matrix_matmul(m, x, 2 * COLS - 1, 2, y, 2 * ROWS, LOWBIT_KERNEL_LUT, 0),
           LOWBIT_ERROR_SIZE_MISMATCH);
    expect("matmul short y", lowbit_matrix_matmul(m, x, 2 * COLS, 2, y, 2 * ROWS - 1, LOWBIT_KERNEL_LUT, 0),
           LOWBIT_ERROR_SIZE_MISMATCH);
    expect("matmul negative y_len", lowbit_matrix_matmul(m, x, COLS, 1, y, -5, LOWBIT_KERNEL_LUT, 0),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("matmul kernel 99", lowbit_matrix_matmul(m, x, COLS, 1, y, ROWS, 99, 0), LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("matmul kernel -1", lowbit_matrix_matmul(m, x, COLS, 1, y, ROWS, -1, 0), LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("matmul act_bits 3", lowbit_matrix_matmul(m, x, COLS, 1, y, ROWS, LOWBIT_KERNEL_DEQUANT, 3),
           LOWBIT_ERROR_UNSUPPORTED);
    x[5] = NAN;
    expect("matmul NaN activation", lowbit_matrix_matmul(m, x, COLS, 1, y, ROWS, LOWBIT_KERNEL_LUT, 0),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    x[5] = 0.5f;
    int unchanged = 1;
    for (int i = 0; i < 2 * ROWS; i++)
        unchanged &= y[i] == 42.0f;
    expect_true("failed products leave y", unchanged);
    expect("prepare NULL", lowbit_matrix_prepare(NULL, LOWBIT_KERNEL_LUT), LOWBIT_ERROR_NULL_POINTER);
    expect("prepare kernel 7", lowbit_matrix_prepare(m, 7), LOWBIT_ERROR_INVALID_ARGUMENT);
    lowbit_kernel k = 77;
    expect("auto_kernel n 0", lowbit_matrix_auto_kernel(m, 0, &k), LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("auto_kernel NULL out", lowbit_matrix_auto_kernel(m, 1, NULL), LOWBIT_ERROR_NULL_POINTER);
    expect_true("failed auto_kernel leaves out", k == 77);
    expect("dequantize short", lowbit_matrix_dequantize(m, y, 3), LOWBIT_ERROR_SIZE_MISMATCH);
    expect("dequantize NULL", lowbit_matrix_dequantize(m, NULL, ROWS * COLS), LOWBIT_ERROR_NULL_POINTER);
    expect("save NULL path", lowbit_matrix_save(m, NULL), LOWBIT_ERROR_NULL_POINTER);
    expect("save NULL matrix", lowbit_matrix_save(NULL, "/tmp/x.lbm"), LOWBIT_ERROR_NULL_POINTER);
    expect("save into a missing folder", lowbit_matrix_save(m, "/nonexistent/dir/m.lbm"), LOWBIT_ERROR_IO);
    expect("load NULL path", lowbit_matrix_load(NULL, &loaded_matrix), LOWBIT_ERROR_NULL_POINTER);
    expect("load NULL out", lowbit_matrix_load("/tmp/x.lbm", NULL), LOWBIT_ERROR_NULL_POINTER);
    wrong_files("matrix_load", load_matrix, LOWBIT_ERROR_BAD_FORMAT);
    /* A saved matrix with one byte changed anywhere: BAD_FORMAT, never a crash. */
    const char *saved = temp_file("m.lbm", NULL, 0);
    expect("save valid", lowbit_matrix_save(m, saved), LOWBIT_OK);
    FILE *f = fopen(saved, "rb");
    static unsigned char file[4096];
    size_t size = fread(file, 1, sizeof file, f);
    fclose(f);
    int rejected = 0;
    for (size_t i = 0; i < size; i += 7) {
        file[i] ^= 0x40;
        rejected += load_matrix(temp_file("flipped.lbm", file, size)) == LOWBIT_ERROR_BAD_FORMAT;
        file[i] ^= 0x40;
    }
    expect_true("every flipped byte of a matrix file rejected", rejected == (int)((size + 6) / 7));
    expect_true("failed loads leave *out", loaded_matrix == SENTINEL);
    lowbit_matrix_free(m);
    lowbit_matrix_free(NULL);
}

static void stack_calls(void) {
    enum { ROWS = 16, COLS = 64 };
    static float w[ROWS * COLS], x[COLS], y[ROWS];
    for (int i = 0; i < ROWS * COLS; i++)
        w[i] = sinf((float)i);
    const char *names[] = {"a"};
    const float *weights[] = {w};
    int64_t rows[] = {ROWS}, cols[] = {COLS}, bad_cols[] = {COLS + 1}, zero[] = {0};
    const char *path = temp_file("s.lbs", NULL, 0);
    expect("stack_build NULL path",
           lowbit_stack_build(NULL, 1, names, weights, rows, cols, NULL, NULL, NULL, 2, 2, 0, NULL, NULL),
           LOWBIT_ERROR_NULL_POINTER);
    expect("stack_build count 0",
           lowbit_stack_build(path, 0, names, weights, rows, cols, NULL, NULL, NULL, 2, 2, 0, NULL, NULL),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("stack_build NULL names",
           lowbit_stack_build(path, 1, NULL, weights, rows, cols, NULL, NULL, NULL, 2, 2, 0, NULL, NULL),
           LOWBIT_ERROR_NULL_POINTER);
    expect("stack_build zero rows",
           lowbit_stack_build(path, 1, names, weights, zero, cols, NULL, NULL, NULL, 2, 2, 0, NULL, NULL),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("stack_build cols not x32",
           lowbit_stack_build(path, 1, names, weights, rows, bad_cols, NULL, NULL, NULL, 2, 2, 0, NULL, NULL),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("stack_build blocks 0",
           lowbit_stack_build(path, 1, names, weights, rows, cols, NULL, NULL, NULL, 0, 2, 0, NULL, NULL),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("stack_build NaN share",
           lowbit_stack_build(path, 1, names, weights, rows, cols, NULL, NULL, NULL, 2, 2, NAN, NULL, NULL),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    w[3] = INFINITY;
    expect("stack_build infinite weight",
           lowbit_stack_build(path, 1, names, weights, rows, cols, NULL, NULL, NULL, 2, 2, 0, NULL, NULL),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    w[3] = 0.5f;
    expect_true("failed builds write no file", access(path, F_OK) != 0);
    expect("stack_open NULL out", lowbit_stack_open("/tmp/x.lbs", 1, NULL), LOWBIT_ERROR_NULL_POINTER);
    wrong_files("stack_open", open_stack, LOWBIT_ERROR_BAD_FORMAT);
    expect("stack_build valid",
           lowbit_stack_build(path, 1, names, weights, rows, cols, NULL, NULL, NULL, 2, 2, 0, NULL, NULL), LOWBIT_OK);
    lowbit_stack *s = SENTINEL;
    expect("stack_open budget 1", lowbit_stack_open(path, 1, &s), LOWBIT_ERROR_INVALID_ARGUMENT);
    expect_true("failed open leaves *out", s == SENTINEL);
    expect("stack_open valid", lowbit_stack_open(path, UINT64_MAX, &s), LOWBIT_OK);
    uint64_t resident = 0, after = 0;
    expect("stack_info", lowbit_stack_info(s, &resident, NULL, NULL, NULL), LOWBIT_OK);
    expect("stack_set_budget 0", lowbit_stack_set_budget(s, 0), LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("stack_set_budget NULL", lowbit_stack_set_budget(NULL, 1 << 20), LOWBIT_ERROR_NULL_POINTER);
    lowbit_stack_info(s, &after, NULL, NULL, NULL);
    expect_true("failed budget changes leave the resident blocks", after == resident);
    expect("stack_info NULL", lowbit_stack_info(NULL, NULL, NULL, NULL, NULL), LOWBIT_ERROR_NULL_POINTER);
    int64_t r = -1;
    expect("stack_tensor unknown", lowbit_stack_tensor(s, "nope", &r, NULL, NULL, NULL, NULL),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("stack_tensor NULL name", lowbit_stack_tensor(s, NULL, &r, NULL, NULL, NULL, NULL),
           LOWBIT_ERROR_NULL_POINTER);
    expect_true("failed stack_tensor leaves rows", r == -1);
    for (int i = 0; i < COLS; i++)
        x[i] = 1.0f;
    for (int i = 0; i < ROWS; i++)
        y[i] = 42.0f;
    expect("stack_matmul n 0", lowbit_stack_matmul(s, "a", x, COLS, 0, y, ROWS), LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("stack_matmul n 2^31", lowbit_stack_matmul(s, "a", x, INT64_MAX, (int64_t)1 << 31, y, INT64_MAX),
           LOWBIT_ERROR_OVERFLOW);
    expect("stack_matmul short x", lowbit_stack_matmul(s, "a", x, COLS - 1, 1, y, ROWS), LOWBIT_ERROR_SIZE_MISMATCH);
    expect("stack_matmul short y", lowbit_stack_matmul(s, "a", x, COLS, 1, y, ROWS - 1), LOWBIT_ERROR_SIZE_MISMATCH);
    expect("stack_matmul unknown tensor", lowbit_stack_matmul(s, "b", x, COLS, 1, y, ROWS),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    x[1] = NAN;
    expect("stack_matmul NaN activation", lowbit_stack_matmul(s, "a", x, COLS, 1, y, ROWS),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    int unchanged = 1;
    for (int i = 0; i < ROWS; i++)
        unchanged &= y[i] == 42.0f;
    expect_true("failed stack products leave y", unchanged);
    lowbit_stack_close(s);
    lowbit_stack_close(NULL);
}

static int32_t count_tokens(void *user, int32_t token, const char *piece, int64_t piece_len) {
    (void)token;
    (void)piece;
    (void)piece_len;
    return ++*(int *)user < 3;
}

/* The embedding calls: option structs, tokens, chat templates and contexts. */
static void context_calls(lowbit_model *m) {
    lowbit_model_params params;
    expect("model_default_params NULL", lowbit_model_default_params(NULL), LOWBIT_ERROR_NULL_POINTER);
    expect("model_default_params", lowbit_model_default_params(&params), LOWBIT_OK);
    expect_true("model params size", params.size == sizeof params && params.weights == LOWBIT_WEIGHTS_Q4_1);
    lowbit_model *loaded = SENTINEL;
    params.size = 3;
    expect("model_load size 3", lowbit_model_load("/tmp/x.gguf", &params, &loaded), LOWBIT_ERROR_INVALID_ARGUMENT);
    params.size = 1 << 20;
    expect("model_load size 1 MiB", lowbit_model_load("/tmp/x.gguf", &params, &loaded), LOWBIT_ERROR_INVALID_ARGUMENT);
    lowbit_model_default_params(&params);
    params.weights = 7;
    expect("model_load weights 7", lowbit_model_load("/tmp/x.gguf", &params, &loaded), LOWBIT_ERROR_INVALID_ARGUMENT);
    params.weights = LOWBIT_WEIGHTS_REQUANTIZED;
    params.group_size = 48;
    expect("model_load group 48", lowbit_model_load("/tmp/x.gguf", &params, &loaded), LOWBIT_ERROR_UNSUPPORTED);
    params.weights = LOWBIT_WEIGHTS_Q4_1;
    params.kernel = LOWBIT_KERNEL_LUT;
    params.act_bits = 16;
    expect("model_load lut at 16 bits", lowbit_model_load("/tmp/x.gguf", &params, &loaded), LOWBIT_ERROR_UNSUPPORTED);
    params.weights = LOWBIT_WEIGHTS_STACK;
    expect("model_load stack without path", lowbit_model_load("/tmp/x.gguf", &params, &loaded),
           LOWBIT_ERROR_NULL_POINTER);
    expect("model_load NULL path", lowbit_model_load(NULL, NULL, &loaded), LOWBIT_ERROR_NULL_POINTER);
    expect("model_load NULL out", lowbit_model_load("/tmp/x.gguf", NULL, NULL), LOWBIT_ERROR_NULL_POINTER);
    expect("model_load missing file", lowbit_model_load("/tmp/lowbit-no-such.gguf", NULL, &loaded), LOWBIT_ERROR_IO);
    expect_true("failed loads leave *out", loaded == SENTINEL);

    int32_t value = -7;
    expect("vocab_size NULL model", lowbit_model_vocab_size(NULL, &value), LOWBIT_ERROR_NULL_POINTER);
    expect("context_length NULL out", lowbit_model_context_length(m, NULL), LOWBIT_ERROR_NULL_POINTER);
    expect("special_token 9", lowbit_model_special_token(m, 9, &value), LOWBIT_ERROR_INVALID_ARGUMENT);
    expect_true("failed calls leave the value", value == -7);

    int32_t tokens[4] = {-9, -9, -9, -9};
    int64_t n = -1;
    expect("tokenize NULL text", lowbit_tokenize(m, NULL, 1, 0, tokens, 4, &n), LOWBIT_ERROR_NULL_POINTER);
    expect("tokenize NULL n", lowbit_tokenize(m, "Hi", 1, 0, tokens, 4, NULL), LOWBIT_ERROR_NULL_POINTER);
    expect("tokenize tokens_len -1", lowbit_tokenize(m, "Hi", 1, 0, tokens, -1, &n), LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("tokenize short buffer", lowbit_tokenize(m, "one two three four five", 1, 0, tokens, 4, &n),
           LOWBIT_ERROR_SIZE_MISMATCH);
    expect_true("short buffer gives the count, writes no token", n > 4 && tokens[0] == -9);
    char text[8] = "XXXXXXX";
    int64_t written = -1;
    int32_t outside[1] = {1 << 30};
    expect("detokenize token outside", lowbit_detokenize(m, outside, 1, text, 8, &written),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("detokenize n -1", lowbit_detokenize(m, outside, -1, text, 8, &written), LOWBIT_ERROR_INVALID_ARGUMENT);
    expect_true("failed detokenize leaves out", strcmp(text, "XXXXXXX") == 0 && written == -1);
    lowbit_chat_message messages[2] = {{"user", "Hi"}, {NULL, "x"}};
    expect("chat_template NULL role", lowbit_chat_template(m, messages, 2, 1, text, 8, &written),
           LOWBIT_ERROR_NULL_POINTER);
    messages[1].role = "not a word";
    expect("chat_template bad role", lowbit_chat_template(m, messages, 2, 1, text, 8, &written),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("chat_template n 0", lowbit_chat_template(m, messages, 0, 1, text, 8, &written),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("chat_template short out", lowbit_chat_template(m, messages, 1, 1, text, 8, &written),
           LOWBIT_ERROR_SIZE_MISMATCH);
    expect_true("short out is not written", strcmp(text, "XXXXXXX") == 0 && written > 8);

    lowbit_context *c = SENTINEL;
    expect("context_new NULL model", lowbit_context_new(NULL, 0, &c), LOWBIT_ERROR_NULL_POINTER);
    expect("context_new n_ctx -1", lowbit_context_new(m, -1, &c), LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("context_new n_ctx too long", lowbit_context_new(m, INT32_MAX, &c), LOWBIT_ERROR_INVALID_ARGUMENT);
    expect_true("failed context_new leaves *out", c == SENTINEL);
    expect("context_new", lowbit_context_new(m, 8, &c), LOWBIT_OK);
    int32_t vocab = 0;
    lowbit_model_vocab_size(m, &vocab);
    float *logits = malloc(sizeof(float) * (size_t)vocab);
    logits[0] = 42;
    int32_t good[3] = {1, 2, 3};
    expect("context_eval NULL tokens", lowbit_context_eval(c, NULL, 3, 0, logits, vocab), LOWBIT_ERROR_NULL_POINTER);
    expect("context_eval n 0", lowbit_context_eval(c, good, 0, 0, logits, vocab), LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("context_eval short logits", lowbit_context_eval(c, good, 3, 0, logits, vocab - 1),
           LOWBIT_ERROR_SIZE_MISMATCH);
    expect("context_eval all_logits short", lowbit_context_eval(c, good, 3, 1, logits, vocab),
           LOWBIT_ERROR_SIZE_MISMATCH);
    expect("context_eval token outside", lowbit_context_eval(c, outside, 1, 0, logits, vocab),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    int32_t nine[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    expect("context_eval past n_ctx", lowbit_context_eval(c, nine, 9, 0, logits, vocab), LOWBIT_ERROR_INVALID_ARGUMENT);
    expect_true("failed evals leave logits", logits[0] == 42);
    int32_t token = -7;
    expect("context_sample before eval", lowbit_context_sample(c, NULL, &token), LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("context_truncate 1 of 0", lowbit_context_truncate(c, 1), LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("context_eval", lowbit_context_eval(c, good, 3, 0, NULL, 0), LOWBIT_OK);
    lowbit_sampler_params sampling;
    expect("sampler_default_params", lowbit_sampler_default_params(&sampling), LOWBIT_OK);
    sampling.temperature = NAN;
    expect("context_sample NaN temperature", lowbit_context_sample(c, &sampling, &token),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    lowbit_sampler_default_params(&sampling);
    sampling.top_p = 0;
    expect("context_sample top_p 0", lowbit_context_sample(c, &sampling, &token), LOWBIT_ERROR_INVALID_ARGUMENT);
    lowbit_sampler_default_params(&sampling);
    sampling.size = 0;
    expect("context_sample size 0", lowbit_context_sample(c, &sampling, &token), LOWBIT_ERROR_INVALID_ARGUMENT);
    expect_true("failed samples leave token", token == -7);
    expect("context_truncate -1", lowbit_context_truncate(c, -1), LOWBIT_ERROR_INVALID_ARGUMENT);
    int64_t held = -1;
    expect("context_tokens short", lowbit_context_tokens(c, tokens, 2, &held), LOWBIT_ERROR_SIZE_MISMATCH);
    expect_true("failed calls leave the context", held == 3 && tokens[0] == -9);
    expect("context_generate NULL prompt", lowbit_context_generate(c, NULL, 1, 4, NULL, NULL, NULL, NULL),
           LOWBIT_ERROR_NULL_POINTER);
    expect("context_generate max -1", lowbit_context_generate(c, good, 3, -1, NULL, NULL, NULL, NULL),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("context_generate past n_ctx", lowbit_context_generate(c, nine, 9, 1, NULL, NULL, NULL, NULL),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("context_chat bad role", lowbit_context_chat(c, messages, 2, 4, NULL, NULL, NULL, NULL),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("context_tokens", lowbit_context_tokens(c, tokens, 4, &held), LOWBIT_OK);
    expect_true("failed generations leave the context", held == 3 && tokens[0] == 1 && tokens[2] == 3);
    int calls = 0;
    int64_t generated = -1;
    expect("context_generate stops when asked",
           lowbit_context_generate(c, good, 3, 8, NULL, count_tokens, &calls, &generated), LOWBIT_OK);
    expect_true("the callback stopped it at 3", calls == 3 && generated == 3);
    free(logits);
    lowbit_context_free(c);
    lowbit_context_free(NULL);
}

static void model_calls(const char *model_path) {
    lowbit_model *m = SENTINEL;
    expect("model_open NULL path", lowbit_model_open(NULL, 0, 0, 0, 0, NULL, 0, &m), LOWBIT_ERROR_NULL_POINTER);
    expect("model_open NULL out", lowbit_model_open("/tmp/x.gguf", 0, 0, 0, 0, NULL, 0, NULL),
           LOWBIT_ERROR_NULL_POINTER);
    expect("model_open weights 9", lowbit_model_open("/tmp/x.gguf", 9, 0, 0, 0, NULL, 0, &m),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("model_open stack without path",
           lowbit_model_open("/tmp/x.gguf", LOWBIT_WEIGHTS_STACK, 0, 0, 0, NULL, 0, &m), LOWBIT_ERROR_NULL_POINTER);
    expect("model_open_calibrated NULL text", lowbit_model_open_calibrated("/tmp/x.gguf", 4, 64, 0, NULL, &m),
           LOWBIT_ERROR_NULL_POINTER);
    wrong_files("model_open", open_model, LOWBIT_ERROR_BAD_FORMAT);
    expect("model_quantize NULL path", lowbit_model_quantize(NULL, "/tmp/x.gguf", 4, 64, 0, NULL),
           LOWBIT_ERROR_NULL_POINTER);
    expect("model_quantize NULL out_path", lowbit_model_quantize("/tmp/x.gguf", NULL, 4, 64, 0, NULL),
           LOWBIT_ERROR_NULL_POINTER);
    expect("model_quantize bits and target", lowbit_model_quantize("/tmp/x.gguf", "/tmp/y.gguf", 4, 64, 1 << 20, NULL),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("model_quantize target without text", lowbit_model_quantize("/tmp/x.gguf", "/tmp/y.gguf", 0, 0, 1 << 20,
                                                                        NULL), LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("model_quantize group size 48", lowbit_model_quantize("/tmp/x.gguf", "/tmp/y.gguf", 4, 48, 0, NULL),
           LOWBIT_ERROR_UNSUPPORTED);
    expect("model_quantize_elastic NULL path",
           lowbit_model_quantize_elastic(NULL, "/tmp/y.gguf", 1 << 20, 2 << 20, 0, "text"), LOWBIT_ERROR_NULL_POINTER);
    expect("model_quantize_elastic NULL text",
           lowbit_model_quantize_elastic("/tmp/x.gguf", "/tmp/y.gguf", 1 << 20, 2 << 20, 0, NULL),
           LOWBIT_ERROR_NULL_POINTER);
    expect("model_quantize_elastic min above max",
           lowbit_model_quantize_elastic("/tmp/x.gguf", "/tmp/y.gguf", 2 << 20, 1 << 20, 0, "text"),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("model_quantize_elastic levels -1",
           lowbit_model_quantize_elastic("/tmp/x.gguf", "/tmp/y.gguf", 1 << 20, 2 << 20, -1, "text"),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("model_quantize_elastic 5000 levels",
           lowbit_model_quantize_elastic("/tmp/x.gguf", "/tmp/y.gguf", 1 << 20, 2 << 20, 5000, "text"),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("generate NULL model", lowbit_model_generate(NULL, "hi", 0, 4, 0, 1, 0, NULL, 0, NULL),
           LOWBIT_ERROR_NULL_POINTER);
    expect("perplexity NULL model", lowbit_model_perplexity(NULL, "hi", 64, 1, NULL), LOWBIT_ERROR_NULL_POINTER);
    expect("set_budget NULL model", lowbit_model_set_budget(NULL, 1), LOWBIT_ERROR_NULL_POINTER);
    expect("weight_bytes NULL model", lowbit_model_weight_bytes(NULL, NULL), LOWBIT_ERROR_NULL_POINTER);
    expect_true("failed opens leave *out", m == SENTINEL && opened_model == SENTINEL);
    if (model_path == NULL) {
        printf("model calls on a real model skipped (no model path given)\n");
        return;
    }
    /* A stack whose tensors are not the model's: refused when the model opens. */
    const char *foreign = temp_file("s.lbs", NULL, 0);
    expect("model_open with a foreign stack",
           lowbit_model_open(model_path, LOWBIT_WEIGHTS_STACK, 0, 0, 0, foreign, UINT64_MAX, &m),
           LOWBIT_ERROR_BAD_FORMAT);
    expect("model_open q4_1", lowbit_model_open(model_path, LOWBIT_WEIGHTS_Q4_1, 0, 0, LOWBIT_KERNEL_AUTO, NULL, 0, &m),
           LOWBIT_OK);
    char out[8] = "XXXXXXX";
    int64_t written = -1;
    expect("generate out_len -1", lowbit_model_generate(m, "Hi", 0, 4, 0, 1, 0, out, -1, &written),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    expect_true("negative out_len leaves written", written == -1);
    expect("generate size query", lowbit_model_generate(m, "Hi", 0, 4, 0, 1, 0, NULL, 0, &written),
           LOWBIT_ERROR_SIZE_MISMATCH);
    expect_true("size query gives the bytes needed", written >= 1);
    int64_t needed = written;
    expect("generate out_len 1", lowbit_model_generate(m, "Hi", 0, 4, 0, 1, 0, out, 1, &written),
           LOWBIT_ERROR_SIZE_MISMATCH);
    expect_true("short out is not written", strcmp(out, "XXXXXXX") == 0 && written == needed);
    expect("generate NULL prompt", lowbit_model_generate(m, NULL, 0, 4, 0, 1, 0, out, 8, &written),
           LOWBIT_ERROR_NULL_POINTER);
    expect("generate NaN temperature", lowbit_model_generate(m, "Hi", 0, 4, NAN, 1, 0, out, 8, &written),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("generate negative max_tokens", lowbit_model_generate(m, "Hi", 0, -4, 0, 1, 0, out, 8, &written),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    double ppl = -1;
    expect("perplexity ctx 0", lowbit_model_perplexity(m, "Hello there", 0, 1, &ppl), LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("perplexity chunks -1", lowbit_model_perplexity(m, "Hello there", 64, -1, &ppl),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    expect_true("failed perplexity leaves out", ppl == -1);
    expect("set_budget on a static model", lowbit_model_set_budget(m, 1 << 30), LOWBIT_ERROR_INVALID_ARGUMENT);
    int32_t tokens[2] = {1, 2}, layers = -1;
    float state[4];
    expect("trace n 0", lowbit_model_trace(m, tokens, 0, state, 4, &layers, NULL), LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("trace short out", lowbit_model_trace(m, tokens, 2, state, 4, &layers, NULL), LOWBIT_ERROR_SIZE_MISMATCH);
    static float states[31 * 2 * 576];
    int32_t outside[2] = {1, 1 << 30};
    expect("trace token outside the vocabulary",
           lowbit_model_trace(m, outside, 2, states, sizeof states / sizeof states[0], NULL, NULL),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    context_calls(m);
    lowbit_model_close(m);
    lowbit_model_close(NULL);
}

int main(int argc, char **argv) {
    if (mkdtemp(temp_dir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    runtime_calls();
    matrix_calls();
    stack_calls();
    model_calls(argc > 1 ? argv[1] : NULL);
    char command[300];
    snprintf(command, sizeof command, "rm -rf '%s'", temp_dir);
    if (system(command) != 0) printf("could not remove %s\n", temp_dir);
    printf("%d bad-input checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
