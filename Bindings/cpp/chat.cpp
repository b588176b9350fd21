// Streaming chat: each line typed is a user turn; the reply is printed token by token as it comes,
// and the context keeps the conversation, so each turn runs only its new tokens.
// Ctrl-C stops the reply under way (a second Ctrl-C, at the prompt, ends the program).
//   chat MODEL.gguf [--stop-after N] [--say TEXT]...
// --say gives the user turns on the command line instead of standard input; --stop-after stops
// every reply after N tokens from the callback, as a program that has seen enough would.
#include "lowbit.hpp"

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

static std::atomic<bool> interrupted{false};

int main(int argc, char **argv) {
    if (argc < 2) {
        std::cerr << "usage: chat MODEL.gguf [--stop-after N] [--say TEXT]...\n";
        return 2;
    }
    long stop_after = -1;
    std::vector<std::string> said;
    for (int i = 2; i < argc; i++) {
        std::string option = argv[i];
        if (i + 1 >= argc || (option != "--stop-after" && option != "--say")) {
            std::cerr << "chat: unknown or incomplete option " << option << "\n";
            return 2;
        }
        if (option == "--stop-after") stop_after = std::strtol(argv[++i], nullptr, 10);
        else said.push_back(argv[++i]);
    }
    std::signal(SIGINT, [](int) { interrupted = true; });
    try {
        lowbit::Model model(argv[1]);
        lowbit::Context context(model);
        std::vector<lowbit::Message> conversation;
        size_t next_said = 0;
        for (;;) {
            std::string line;
            if (said.empty()) {
                std::cout << "> " << std::flush;
                if (!std::getline(std::cin, line) || interrupted.exchange(false)) break;
            } else {
                if (next_said == said.size()) break;
                line = said[next_said++];
                std::cout << "> " << line << "\n";
            }
            conversation.push_back({"user", line});
            std::string reply;
            long tokens = 0;
            context.chat(conversation, 256, [&](std::string_view piece) {
                std::cout << piece << std::flush;
                reply += piece;
                return !interrupted.exchange(false) && ++tokens != stop_after;
            });
            std::cout << (tokens == stop_after ? " [stopped after " + std::to_string(tokens) + " tokens]" : "")
                      << "\n";
            conversation.push_back({"assistant", reply});
        }
    } catch (const lowbit::Error &e) {
        std::cerr << "chat: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
