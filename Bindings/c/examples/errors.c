/* Every kind of bad input comes back as a status with a message, and changes nothing. */
#include <stdio.h>
#include <string.h>

#include "lowbit.h"

static int failures = 0;

static void expect(const char *what, lowbit_status got, lowbit_status want) {
    int ok = got == want;
    failures += !ok;
    printf("%-34s %-24s %s%s\n", what, lowbit_status_string(got), ok ? "" : "UNEXPECTED: ",
           got == LOWBIT_OK ? "" : lowbit_last_error());
}

int main(void) {
    static float w[4 * 128], x[128], y[4];
    lowbit_matrix *m = NULL;
    for (int i = 0; i < 4 * 128; i++) w[i] = (float)(i % 7) - 3.0f;
    for (int i = 0; i < 128; i++) x[i] = 1.0f;

    expect("NULL weights", lowbit_matrix_quantize(NULL, 512, 4, 128, 4, 64, 0, &m), LOWBIT_ERROR_NULL_POINTER);
    expect("NULL out", lowbit_matrix_quantize(w, 512, 4, 128, 4, 64, 0, NULL), LOWBIT_ERROR_NULL_POINTER);
    expect("zero rows", lowbit_matrix_quantize(w, 512, 0, 128, 4, 64, 0, &m), LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("negative cols", lowbit_matrix_quantize(w, 512, 4, -128, 4, 64, 0, &m), LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("overflowing shape", lowbit_matrix_quantize(w, 512, INT64_MAX / 2, 1024, 4, 64, 0, &m),
           LOWBIT_ERROR_OVERFLOW);
    expect("5-bit weights", lowbit_matrix_quantize(w, 512, 4, 128, 5, 64, 0, &m), LOWBIT_ERROR_UNSUPPORTED);
    expect("group size 48", lowbit_matrix_quantize(w, 512, 4, 96, 4, 48, 0, &m), LOWBIT_ERROR_UNSUPPORTED);
    expect("cols not a multiple of group", lowbit_matrix_quantize(w, 512, 4, 96, 4, 64, 0, &m),
           LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("short weight buffer", lowbit_matrix_quantize(w, 511, 4, 128, 4, 64, 0, &m), LOWBIT_ERROR_SIZE_MISMATCH);
    expect("GPTQ 3-bit", lowbit_matrix_from_gptq((int32_t *)w, 10, (int32_t *)w, 10, w, 10, 32, 32, 3, 32, 0, &m),
           LOWBIT_ERROR_UNSUPPORTED);
    if (m != NULL) { printf("a failed call wrote *out\n"); return 1; }

    expect("mixed 2-bit types", lowbit_matrix_quantize(w, 512, 4, 128, 202, 64, 0, &m), LOWBIT_ERROR_UNSUPPORTED);
    lowbit_model *model = NULL;
    expect("NULL calibration text", lowbit_model_open_calibrated("m.gguf", 4, 64, LOWBIT_KERNEL_AUTO, NULL, &model),
           LOWBIT_ERROR_NULL_POINTER);
    expect("NULL model vocab_size", lowbit_model_vocab_size(NULL, NULL), LOWBIT_ERROR_NULL_POINTER);
    expect("missing model file",
           lowbit_model_open_calibrated("/nonexistent.gguf", 4, 64, LOWBIT_KERNEL_AUTO, "text", &model),
           LOWBIT_ERROR_IO);
    expect("valid mixed 4-bit", lowbit_matrix_quantize(w, 512, 4, 128, LOWBIT_BITS_MIXED4, 64, 0, &m), LOWBIT_OK);
    lowbit_matrix_free(m);
    expect("valid quantize", lowbit_matrix_quantize(w, 512, 4, 128, 3, 64, LOWBIT_QUANT_SYMMETRIC, &m), LOWBIT_OK);
    for (int i = 0; i < 4; i++) y[i] = 42.0f;
    expect("NULL matrix", lowbit_matrix_matmul(NULL, x, 128, 1, y, 4, LOWBIT_KERNEL_LUT, 0), LOWBIT_ERROR_NULL_POINTER);
    expect("short x", lowbit_matrix_matmul(m, x, 127, 1, y, 4, LOWBIT_KERNEL_LUT, 0), LOWBIT_ERROR_SIZE_MISMATCH);
    expect("short y", lowbit_matrix_matmul(m, x, 128, 1, y, 3, LOWBIT_KERNEL_LUT, 0), LOWBIT_ERROR_SIZE_MISMATCH);
    expect("n = 0", lowbit_matrix_matmul(m, x, 128, 0, y, 4, LOWBIT_KERNEL_LUT, 0), LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("unknown kernel", lowbit_matrix_matmul(m, x, 128, 1, y, 4, 99, 0), LOWBIT_ERROR_INVALID_ARGUMENT);
    expect("3 activation bits", lowbit_matrix_matmul(m, x, 128, 1, y, 4, LOWBIT_KERNEL_BIT_SERIAL, 3),
           LOWBIT_ERROR_UNSUPPORTED);
    for (int i = 0; i < 4; i++) if (y[i] != 42.0f) { printf("a failed product wrote y\n"); return 1; }
    expect("valid product", lowbit_matrix_matmul(m, x, 128, 1, y, 4, LOWBIT_KERNEL_AUTO, 0), LOWBIT_OK);
    expect("load missing file", lowbit_matrix_load("/nonexistent/m.lbm", &m), LOWBIT_ERROR_IO);
    expect("load a non-matrix file", lowbit_matrix_load(__FILE__, &m), LOWBIT_ERROR_BAD_FORMAT);
    expect("negative thread count", lowbit_set_threads(-3), LOWBIT_ERROR_INVALID_ARGUMENT);
    lowbit_matrix_free(m);
    lowbit_matrix_free(NULL);
    printf("%s\n", failures ? "FAILED" : "all errors reported as expected");
    return failures ? 1 : 0;
}
