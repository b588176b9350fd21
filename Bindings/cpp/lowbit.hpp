// lowbit.hpp: a header-only C++20 face for lowbit.h. Handles are owned by move-only classes that
// free them when they go (RAII); failures throw lowbit::Error with the status and the library's
// message; arrays travel as std::span, their lengths passed on for the library to check.
#pragma once

#include <lowbit.h>

#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace lowbit {

class Error : public std::runtime_error {
public:
    Error(lowbit_status status, const std::string &what)
        : std::runtime_error(what + ": " + lowbit_last_error()), status_(status) {}
    lowbit_status status() const { return status_; }

private:
    lowbit_status status_;
};

inline void check(lowbit_status status, const char *what) {
    if (status != LOWBIT_OK) throw Error(status, what);
}

// Owns one handle of type T, released by Free.
template <typename T, void (*Free)(T *)>
using Handle = std::unique_ptr<T, std::integral_constant<decltype(Free), Free>>;

// A quantized weight matrix: Y = X·Wᵀ for n rows of activations.
class Matrix {
public:
    static Matrix quantize(std::span<const float> weights, int64_t rows, int64_t cols, int32_t bits,
                           int32_t group_size = 128) {
        lowbit_matrix *m = nullptr;
        check(lowbit_matrix_quantize(weights.data(), static_cast<int64_t>(weights.size()), rows, cols, bits,
                                     group_size, 0, &m),
              "lowbit_matrix_quantize");
        return Matrix(m);
    }

    // y (n x rows) = x (n x cols) · Wᵀ.
    void multiply(std::span<const float> x, int64_t n, std::span<float> y,
                  lowbit_kernel kernel = LOWBIT_KERNEL_AUTO) const {
        check(lowbit_matrix_matmul(handle_.get(), x.data(), static_cast<int64_t>(x.size()), n, y.data(),
                                   static_cast<int64_t>(y.size()), kernel, 0),
              "lowbit_matrix_matmul");
    }

    std::pair<int64_t, int64_t> shape() const {
        int64_t rows = 0, cols = 0;
        check(lowbit_matrix_describe(handle_.get(), &rows, &cols, nullptr, nullptr, nullptr), "lowbit_matrix_describe");
        return {rows, cols};
    }

private:
    explicit Matrix(lowbit_matrix *m) : handle_(m) {}
    Handle<lowbit_matrix, lowbit_matrix_free> handle_;
};

struct Message {
    std::string role, content;
};

// A GGUF model. Its member functions may be called from several threads at once.
class Model {
public:
    static lowbit_model_params default_params() {
        lowbit_model_params params;
        check(lowbit_model_default_params(&params), "lowbit_model_default_params");
        return params;
    }

    explicit Model(const std::string &path, const lowbit_model_params &params = default_params()) {
        lowbit_model *m = nullptr;
        check(lowbit_model_load(path.c_str(), &params, &m), "lowbit_model_load");
        handle_.reset(m);
    }

    std::vector<int32_t> tokenize(const std::string &text, bool add_special = true, bool parse_special = false) const {
        int64_t n = 0;
        lowbit_tokenize(get(), text.c_str(), add_special, parse_special, nullptr, 0, &n);  // asks for the count
        std::vector<int32_t> tokens(static_cast<size_t>(n));
        check(lowbit_tokenize(get(), text.c_str(), add_special, parse_special, tokens.data(), n, &n),
              "lowbit_tokenize");
        return tokens;
    }

    std::string detokenize(std::span<const int32_t> tokens) const {
        return text_of([&](char *out, int64_t len, int64_t *written) {
            return lowbit_detokenize(get(), tokens.data(), static_cast<int64_t>(tokens.size()), out, len, written);
        }, "lowbit_detokenize");
    }

    std::string chat_template(std::span<const Message> messages, bool add_generation_prompt = true) const {
        auto c = c_messages(messages);
        return text_of([&](char *out, int64_t len, int64_t *written) {
            return lowbit_chat_template(get(), c.data(), static_cast<int64_t>(c.size()), add_generation_prompt, out,
                                        len, written);
        }, "lowbit_chat_template");
    }

    int32_t vocab_size() const {
        int32_t v = 0;
        check(lowbit_model_vocab_size(get(), &v), "lowbit_model_vocab_size");
        return v;
    }

    const lowbit_model *get() const { return handle_.get(); }

    static std::vector<lowbit_chat_message> c_messages(std::span<const Message> messages) {
        std::vector<lowbit_chat_message> c;
        for (const auto &m : messages) c.push_back({m.role.c_str(), m.content.c_str()});
        return c;
    }

private:
    // Text from a call with the out / out_len / written convention: size first, then the text.
    template <typename Call>
    static std::string text_of(Call call, const char *what) {
        int64_t needed = 0;
        call(nullptr, 0, &needed);
        std::string text(static_cast<size_t>(needed), '\0');
        int64_t written = 0;
        check(call(text.data(), needed, &written), what);
        text.resize(static_cast<size_t>(written));
        return text;
    }

    Handle<lowbit_model, lowbit_model_close> handle_;
};

// A context: a KV cache of its own over a model. One thread at a time; the model must outlive it.
class Context {
public:
    // Called with each token's text as it comes; return false to stop.
    using OnText = std::function<bool(std::string_view piece)>;

    explicit Context(const Model &model, int32_t n_ctx = 0) {
        lowbit_context *c = nullptr;
        check(lowbit_context_new(model.get(), n_ctx, &c), "lowbit_context_new");
        handle_.reset(c);
    }

    // Logits after the last of `tokens`, run after those the context holds.
    std::vector<float> eval(std::span<const int32_t> tokens, int32_t vocab_size) {
        std::vector<float> logits(static_cast<size_t>(vocab_size));
        check(lowbit_context_eval(handle_.get(), tokens.data(), static_cast<int64_t>(tokens.size()), 0, logits.data(),
                                  static_cast<int64_t>(logits.size())),
              "lowbit_context_eval");
        return logits;
    }

    // One chat turn, streamed through on_text; returns the number of tokens generated.
    int64_t chat(std::span<const Message> messages, int32_t max_tokens, const OnText &on_text,
                 const lowbit_sampler_params *sampling = nullptr) {
        auto c = Model::c_messages(messages);
        int64_t generated = 0;
        Stream stream{&on_text, nullptr};
        lowbit_status status = lowbit_context_chat(handle_.get(), c.data(), static_cast<int64_t>(c.size()),
                                                   max_tokens, sampling, &Context::forward, &stream, &generated);
        if (stream.error) std::rethrow_exception(stream.error);
        check(status, "lowbit_context_chat");
        return generated;
    }

    void truncate(int64_t n) { check(lowbit_context_truncate(handle_.get(), n), "lowbit_context_truncate"); }

private:
    // The callback's exception is carried past the library (C frames must not unwind) and
    // rethrown once the call has returned.
    struct Stream {
        const OnText *on_text;
        std::exception_ptr error;
    };

    static int32_t forward(void *user, int32_t, const char *piece, int64_t length) {
        auto *stream = static_cast<Stream *>(user);
        try {
            return (*stream->on_text)(std::string_view(piece, static_cast<size_t>(length))) ? 1 : 0;
        } catch (...) {
            stream->error = std::current_exception();
            return 0;
        }
    }

    Handle<lowbit_context, lowbit_context_free> handle_;
};

}  // namespace lowbit
