// A 4-bit matrix times a batch of activations through std::span, checked against the float
// product of the same weights.
#include "lowbit.hpp"

#include <cmath>
#include <cstdio>
#include <vector>

int main() {
    const int64_t rows = 96, cols = 256, n = 3;
    std::vector<float> w(rows * cols), x(n * cols), y(n * rows);
    for (size_t i = 0; i < w.size(); i++) w[i] = std::sin(0.37f * static_cast<float>(i)) * 0.05f;
    for (size_t i = 0; i < x.size(); i++) x[i] = std::cos(0.11f * static_cast<float>(i));
    try {
        auto m = lowbit::Matrix::quantize(w, rows, cols, 4, 64);
        m.multiply(x, n, y);
        double error = 0, norm = 0;
        for (int64_t r = 0; r < n; r++) {
            for (int64_t o = 0; o < rows; o++) {
                double exact = 0;
                for (int64_t c = 0; c < cols; c++) exact += double(w[o * cols + c]) * x[r * cols + c];
                error += (y[r * rows + o] - exact) * (y[r * rows + o] - exact);
                norm += exact * exact;
            }
        }
        // 4-bit groups of 64 leave a few percent of relative error on such smooth weights; 10% is a broken product.
        double relative = std::sqrt(error / norm);
        std::printf("product %lldx%lld x %lld rows: relative error %.4f %s\n", (long long)rows, (long long)cols,
                    (long long)n, relative, relative < 0.1 ? "ok" : "TOO LARGE");
        try {
            m.multiply(std::span(x).first(cols - 1), n, y);  // too short: the library says so
            std::printf("short activations accepted: FAILED\n");
            return 1;
        } catch (const lowbit::Error &e) {
            std::printf("short activations refused (status %d)\n", e.status());
        }
        return relative < 0.1 ? 0 : 1;
    } catch (const lowbit::Error &e) {
        std::fprintf(stderr, "product: %s\n", e.what());
        return 1;
    }
}
