/* Quantize a float matrix to 2 bits and multiply with every kernel family; print the error of
 * each against a double-precision product of the dequantized weights. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "lowbit.h"

#define ROWS 256
#define COLS 512

static double rel_err(const float *y, const double *ref, int n) {
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) { num += (y[i] - ref[i]) * (y[i] - ref[i]); den += ref[i] * ref[i]; }
    return num / den;
}

int main(void) {
    if (lowbit_version_number() != LOWBIT_VERSION_NUMBER) {
        fprintf(stderr, "header %d does not match library %u\n", LOWBIT_VERSION_NUMBER, lowbit_version_number());
        return 1;
    }
    float *w = malloc(sizeof(float) * ROWS * COLS), *wq = malloc(sizeof(float) * ROWS * COLS);
    float x[COLS], y[ROWS];
    double ref[ROWS];
    unsigned s = 12345;
    for (int i = 0; i < ROWS * COLS; i++) { s = s * 1103515245u + 12345u; w[i] = ((s >> 8) % 2001 - 1000) / 20000.0f; }
    for (int i = 0; i < COLS; i++) x[i] = sinf(0.1f * i) + 0.5f;

    lowbit_matrix *m = NULL;
    lowbit_status st = lowbit_matrix_quantize(w, ROWS * COLS, ROWS, COLS, 2, 128, 0, &m);
    if (st != LOWBIT_OK) { fprintf(stderr, "quantize: %s\n", lowbit_last_error()); return 1; }
    uint64_t bytes = 0;
    lowbit_matrix_nbytes(m, &bytes);
    lowbit_matrix_dequantize(m, wq, ROWS * COLS);
    for (int r = 0; r < ROWS; r++) {
        ref[r] = 0;
        for (int c = 0; c < COLS; c++) ref[r] += (double)wq[r * COLS + c] * x[c];
    }
    printf("lowbit %s (%s): %dx%d 2-bit, %llu bytes\n", lowbit_version_string(), lowbit_simd_tier(), ROWS, COLS,
           (unsigned long long)bytes);
    const char *names[] = {"auto", "lut", "bitserial", "dequant", "reference"};
    int ok = 1;
    for (lowbit_kernel k = LOWBIT_KERNEL_AUTO; k <= LOWBIT_KERNEL_REFERENCE; k++) {
        st = lowbit_matrix_matmul(m, x, COLS, 1, y, ROWS, k, 0);
        if (st != LOWBIT_OK) { fprintf(stderr, "matmul: %s\n", lowbit_last_error()); ok = 0; continue; }
        double e = rel_err(y, ref, ROWS);
        int pass = e <= 5e-4;
        ok &= pass;
        printf("%-10s error %.2e %s\n", names[k], e, pass ? "ok" : "TOO LARGE");
    }
    lowbit_matrix_free(m);
    free(w);
    free(wq);
    return ok ? 0 : 1;
}
