/*
 * score.cpp - libnimreward from C++17: the handles owned by unique_ptr, the
 * conversations built with RM_MESSAGE (the header's C++ form), every response
 * scored in one rm_score_batch call, each printed as NIM prints scores,
 * name:score,name:score, with the shortest digits that read back exactly.
 *
 *   c++ -std=c++17 score.cpp $(pkg-config --cflags --libs nimreward) -o score_cpp
 *   ./score_cpp /path/to/model "What is 2+2?" "4" "5"
 */
#include <charconv>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "nimreward.h"

namespace {

using model_ptr = std::unique_ptr<rm_model, decltype(&rm_free)>;
using scores_ptr = std::unique_ptr<rm_scores, decltype(&rm_scores_free)>;

model_ptr load(const char *path) {
    char err[1024];
    rm_model *model = nullptr;
    rm_status st = rm_load(path, nullptr, &model, err, sizeof err);   // nullptr: the default rm_params
    if (st != RM_OK) throw std::runtime_error(std::string("rm_load: ") + err + " (" + rm_status_string(st) + ")");
    return model_ptr(model, rm_free);
}

// The shortest decimal form that reads back to the same double (as the tools and the server print).
std::string shortest(double value) {
    char buf[32];
    auto res = std::to_chars(buf, buf + sizeof buf, value);
    return std::string(buf, res.ptr);
}

std::string nim_content(const rm_scores &s) {
    std::string out;
    for (size_t k = 0; k < s.n_scores; k++) {
        if (k) out += ',';
        out += s.names[k];
        out += ':';
        out += shortest(s.values[k]);
    }
    return out;
}

// Scores each response as the assistant's answer to `prompt`, all in one batch.
std::vector<scores_ptr> score_all(rm_model &model, const std::string &prompt, const std::vector<std::string> &responses) {
    std::vector<std::vector<rm_message>> conversations;   // items point into the inner vectors' arrays
    std::vector<rm_item> items(responses.size());
    for (size_t i = 0; i < responses.size(); i++) {
        conversations.push_back({RM_MESSAGE("user", prompt.c_str()), RM_MESSAGE("assistant", responses[i].c_str())});
        rm_item_init(&items[i]);
        items[i].messages = conversations.back().data();
        items[i].n_messages = conversations.back().size();
    }
    std::vector<rm_scores *> out(items.size(), nullptr);
    rm_status st = rm_score_batch(&model, items.data(), items.size(), out.data());
    std::vector<scores_ptr> results;
    for (rm_scores *s : out) results.emplace_back(s, rm_scores_free);   // owned before anything can throw
    if (st != RM_OK && (out.empty() || !out[0]))
        throw std::runtime_error(std::string("rm_score_batch: ") + rm_errmsg(&model));
    return results;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 4) {
        std::fprintf(stderr, "usage: %s MODEL_DIR PROMPT RESPONSE [RESPONSE...]\n", argv[0]);
        return 2;
    }
    try {
        model_ptr model = load(argv[1]);
        std::vector<std::string> responses(argv + 3, argv + argc);
        std::vector<scores_ptr> scores = score_all(*model, argv[2], responses);
        int failed = 0;
        for (size_t i = 0; i < scores.size(); i++) {
            if (scores[i]->status != RM_OK) {
                std::printf("response %zu: error: %s\n", i + 1, scores[i]->error);
                failed++;
            } else {
                std::printf("response %zu: %s\n", i + 1, nim_content(*scores[i]).c_str());
            }
        }
        return failed ? 1 : 0;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
}
