/* A two-turn chat on a context, streamed token by token, then the checks an embedding program
 * relies on: text survives tokenize + detokenize, and the context reused for the second turn
 * gives the same logits as a fresh context given the whole conversation at once.
 * Usage: chat_context MODEL.gguf
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lowbit.h"

#define CHECK(call)                                                                        \
    do {                                                                                   \
        if ((call) != LOWBIT_OK) {                                                         \
            fprintf(stderr, "%s: %s\n", #call, lowbit_last_error());                       \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)

/* Collects the reply and prints each piece as it comes. */
struct reply {
    char text[4096];
    size_t length;
};

static int32_t on_token(void *user, int32_t token, const char *piece, int64_t piece_len) {
    (void)token;
    struct reply *r = user;
    fwrite(piece, 1, (size_t)piece_len, stdout);
    fflush(stdout);
    if (r->length + (size_t)piece_len >= sizeof r->text) return 0; /* full: stop */
    memcpy(r->text + r->length, piece, (size_t)piece_len);
    r->length += (size_t)piece_len;
    r->text[r->length] = '\0';
    return 1;
}

/* The conversation's tokens: messages in the chat template, assistant's turn opened. */
static int32_t *conversation_tokens(lowbit_model *m, const lowbit_chat_message *messages, int64_t count,
                                    int64_t *n) {
    int64_t needed = 0;
    lowbit_chat_template(m, messages, count, 1, NULL, 0, &needed); /* asks for the size */
    char *text = malloc((size_t)needed);
    CHECK(lowbit_chat_template(m, messages, count, 1, text, needed, NULL));
    lowbit_tokenize(m, text, 1, 1, NULL, 0, n);
    int32_t *tokens = malloc(sizeof(int32_t) * (size_t)*n);
    CHECK(lowbit_tokenize(m, text, 1, 1, tokens, *n, n));
    free(text);
    return tokens;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    lowbit_model_params params;
    CHECK(lowbit_model_default_params(&params)); /* the file's own Q4_1 blocks */
    lowbit_model *model = NULL;
    CHECK(lowbit_model_load(argv[1], &params, &model));

    /* Tokens and back. */
    const char *sample = "Low-bit weights, naïve café: 12345 tokens!";
    int64_t n = 0;
    lowbit_tokenize(model, sample, 0, 0, NULL, 0, &n);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)n);
    CHECK(lowbit_tokenize(model, sample, 0, 0, ids, n, &n));
    char back[256];
    CHECK(lowbit_detokenize(model, ids, n, back, sizeof back, NULL));
    int ok = strcmp(back, sample) == 0;
    printf("tokenize: %lld tokens, round trip %s\n", (long long)n, ok ? "ok" : "DIFFERS");
    free(ids);

    /* Two turns on one context; the second runs only what follows the first. */
    lowbit_context *context = NULL;
    CHECK(lowbit_context_new(model, 1024, &context));
    lowbit_chat_message turn[3] = {{"user", "What is the capital of France?"}, {"assistant", ""},
                                   {"user", "And of Italy?"}};
    struct reply first = {.length = 0};
    printf("assistant: ");
    CHECK(lowbit_context_chat(context, turn, 1, 32, NULL, on_token, &first, NULL));
    printf("\n");
    int64_t first_prompt = 0, held_first = 0;
    free(conversation_tokens(model, turn, 1, &first_prompt));
    int32_t *holding = malloc(sizeof(int32_t) * 1024);
    CHECK(lowbit_context_tokens(context, holding, 1024, &held_first));
    turn[1].content = first.text;
    struct reply second = {.length = 0};
    printf("assistant: ");
    CHECK(lowbit_context_chat(context, turn, 3, 32, NULL, on_token, &second, NULL));
    printf("\n");

    /* What the second turn found held: at least the whole first prompt. */
    int64_t count = 0;
    int32_t *prompt = conversation_tokens(model, turn, 3, &count);
    int64_t shared = 0;
    while (shared < held_first && shared < count && holding[shared] == prompt[shared]) shared++;
    /* The logits after the second prompt, from the context (its last token run again, on keys and
     * values the first turn computed) and from a fresh context: the same, bit for bit. */
    int32_t vocabulary = 0;
    CHECK(lowbit_model_vocab_size(model, &vocabulary));
    float *reused = malloc(sizeof(float) * (size_t)vocabulary), *fresh = malloc(sizeof(float) * (size_t)vocabulary);
    CHECK(lowbit_context_truncate(context, count - 1));
    CHECK(lowbit_context_eval(context, prompt + count - 1, 1, 0, reused, vocabulary));
    lowbit_context *clean = NULL;
    CHECK(lowbit_context_new(model, 1024, &clean));
    CHECK(lowbit_context_eval(clean, prompt, count, 0, fresh, vocabulary));
    int same = memcmp(reused, fresh, sizeof(float) * (size_t)vocabulary) == 0;
    printf("second turn: %lld of its %lld prompt tokens were held from the first; logits %s a fresh context's\n",
           (long long)shared, (long long)count, same ? "equal" : "DIFFER FROM");
    ok &= same && shared >= first_prompt && first.length > 0 && second.length > 0;

    free(prompt);
    free(holding);
    free(reused);
    free(fresh);
    lowbit_context_free(clean);
    lowbit_context_free(context);
    lowbit_model_close(model);
    printf("chat context example %s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
