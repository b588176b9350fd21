/* BitStack from C: build a stack of two matrices, open it at the smallest budget, then grow and
 * shrink the budget between products and watch the error of y = W·x and the bytes held. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "lowbit.h"

#define R 256
#define C 512

static void on_progress(void *user, int64_t done, int64_t total) {
    (void)user;
    if (done == total) printf("decomposed %lld blocks\n", (long long)total);
}

static double rel_err(const float *y, const double *ref, int n) {
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) { num += (y[i] - ref[i]) * (y[i] - ref[i]); den += ref[i] * ref[i]; }
    return num / den;
}

int main(void) {
    static float w1[R * C], w2[R * C], x[C], y[R];
    static double ref[R];
    unsigned s = 7;
    for (int i = 0; i < R * C; i++) {
        s = s * 1103515245u + 12345u; w1[i] = ((s >> 8) % 2001 - 1000) / 1000.0f;
        s = s * 1103515245u + 12345u; w2[i] = ((s >> 8) % 2001 - 1000) / 1000.0f;
    }
    for (int i = 0; i < C; i++) x[i] = cosf(0.05f * i);
    for (int r = 0; r < R; r++) { ref[r] = 0; for (int c = 0; c < C; c++) ref[r] += (double)w1[r * C + c] * x[c]; }

    const char *names[] = {"layer0.w", "layer1.w"};
    const float *weights[] = {w1, w2};
    int64_t rows[] = {R, R}, cols[] = {C, C};
    const char *path = "build/example.lbs";
    lowbit_status st = lowbit_stack_build(path, 2, names, weights, rows, cols, NULL, NULL, NULL, 8, 16, 0, on_progress,
                                          NULL);
    if (st != LOWBIT_OK) { fprintf(stderr, "build: %s\n", lowbit_last_error()); return 1; }

    lowbit_stack *stack = NULL;
    if (lowbit_stack_open(path, 1, &stack) != LOWBIT_ERROR_INVALID_ARGUMENT) {
        fprintf(stderr, "a 1-byte budget must fail\n"); return 1;
    }
    printf("1-byte budget refused: %s\n", lowbit_last_error());
    uint64_t resident, minimum, total, bytes_read;
    if (lowbit_stack_open(path, UINT64_MAX, &stack) != LOWBIT_OK) {
        fprintf(stderr, "open: %s\n", lowbit_last_error()); return 1;
    }
    lowbit_stack_info(stack, NULL, &minimum, &total, NULL);

    double previous = INFINITY;
    int ok = 1;
    uint64_t budgets[] = {minimum, minimum + (total - minimum) / 3, total, minimum + (total - minimum) / 3, minimum};
    for (int i = 0; i < 5; i++) {
        if (lowbit_stack_set_budget(stack, budgets[i]) != LOWBIT_OK) {
            fprintf(stderr, "%s\n", lowbit_last_error()); return 1;
        }
        if (lowbit_stack_matmul(stack, "layer0.w", x, C, 1, y, R) != LOWBIT_OK) {
            fprintf(stderr, "%s\n", lowbit_last_error()); return 1;
        }
        int32_t resident_blocks, total_blocks;
        lowbit_stack_tensor(stack, "layer0.w", NULL, NULL, NULL, &resident_blocks, &total_blocks);
        lowbit_stack_info(stack, &resident, NULL, NULL, &bytes_read);
        double e = rel_err(y, ref, R);
        printf("budget %7llu: resident %7llu bytes, layer0.w %d/%d blocks, error %.4f, read so far %llu\n",
               (unsigned long long)budgets[i], (unsigned long long)resident, resident_blocks, total_blocks, e,
               (unsigned long long)bytes_read);
        ok &= resident <= budgets[i];
        if (i <= 2) { ok &= e < previous; previous = e; }
    }
    lowbit_stack_close(stack);
    printf("%s\n", ok ? "stack budget example ok" : "FAILED");
    return ok ? 0 : 1;
}
