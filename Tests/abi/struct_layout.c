/* Prints the size and field offsets of the option structs of Include/lowbit.h, in the names and
 * order of the ModelParams and SamplerParams tables in Sources/LowBitC/ContextShims.swift, which
 * read the structs by offset; Tests/abi/check.sh compares the two. */
#include <stddef.h>
#include <stdio.h>
#include "lowbit.h"

#define FIELD(type, name, member) printf(" %s %zu", name, offsetof(type, member))

int main(void) {
    printf("ModelParams size %zu", sizeof(lowbit_model_params));
    FIELD(lowbit_model_params, "weights", weights);
    FIELD(lowbit_model_params, "bits", bits);
    FIELD(lowbit_model_params, "groupSize", group_size);
    FIELD(lowbit_model_params, "kernel", kernel);
    FIELD(lowbit_model_params, "stackPath", stack_path);
    FIELD(lowbit_model_params, "budget", budget);
    FIELD(lowbit_model_params, "calibrationText", calibration_text);
    FIELD(lowbit_model_params, "activationBits", act_bits);
    printf("\nSamplerParams size %zu", sizeof(lowbit_sampler_params));
    FIELD(lowbit_sampler_params, "temperature", temperature);
    FIELD(lowbit_sampler_params, "topK", top_k);
    FIELD(lowbit_sampler_params, "topP", top_p);
    FIELD(lowbit_sampler_params, "repetitionPenalty", repetition_penalty);
    FIELD(lowbit_sampler_params, "repetitionWindow", repetition_window);
    FIELD(lowbit_sampler_params, "seed", seed);
    printf("\nChatMessage size %zu role %zu content %zu\n", sizeof(lowbit_chat_message),
           offsetof(lowbit_chat_message, role), offsetof(lowbit_chat_message, content));
    return 0;
}
