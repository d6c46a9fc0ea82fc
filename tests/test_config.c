/*
 * test_config.c - config.json: the four fixture configs in both layouts,
 * defaults, and each kind of bad input with its status and a message naming
 * the file and field; plus an allocation-failure sweep.
 */
#include "config.h"
#include "test.h"

#include <math.h>

/* Parses `json` under the name "cfg-test.json"; returns the status. */
static rm_status parse(rm_config *c, const char *json, rm_err *e) {
    memset(e, 0, sizeof *e);
    return rm_config_parse(c, json, strlen(json), "cfg-test.json", e);
}

/* Expects `json` to fail with `want`, with every substring in the message. */
static void expect_fail(const char *what, const char *json, rm_status want, const char *sub1, const char *sub2) {
    rm_config c;
    rm_err e;
    rm_status st = parse(&c, json, &e);
    CHECK(st == want, "%s: status %d, want %d (%s)", what, st, want, e.msg);
    CHECK(strstr(e.msg, "cfg-test.json") != NULL, "%s: message does not name the file: %s", what, e.msg);
    if (sub1) CHECK(strstr(e.msg, sub1) != NULL, "%s: message lacks \"%s\": %s", what, sub1, e.msg);
    if (sub2) CHECK(strstr(e.msg, sub2) != NULL, "%s: message lacks \"%s\": %s", what, sub2, e.msg);
    if (st == RM_OK) rm_config_free(&c);
}

/* A minimal valid Llama config with `extra` fields spliced in at the front
 * (a later duplicate key would be refused, so extra replaces by omission). */
static char *llama_json(const char *extra, const char *omit) {
    static char buf[8192];
    const char *fields[] = {
        "\"architectures\": [\"LlamaForSequenceClassification\"]",
        "\"hidden_size\": 64", "\"num_hidden_layers\": 2", "\"num_attention_heads\": 4",
        "\"intermediate_size\": 128", "\"vocab_size\": 1000", "\"hidden_act\": \"silu\"",
        "\"rms_norm_eps\": 1e-05",
    };
    size_t off = (size_t)snprintf(buf, sizeof buf, "{%s", extra ? extra : "");
    int first = 1;    /* extra, when given, ends with ", " */
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (omit && strstr(fields[i], omit)) continue;
        off += (size_t)snprintf(buf + off, sizeof buf - off, "%s%s", first ? "" : ", ", fields[i]);
        first = 0;
    }
    snprintf(buf + off, sizeof buf - off, "}");
    return buf;
}

static void test_fixture_configs(void) {
    rm_config c;
    rm_err e = {0};
    char path[4096];

    snprintf(path, sizeof path, "%s", fixture("models/tiny-llama3-seqcls/config.json"));
    rm_status st = rm_config_load(&c, path, &e);
    CHECK(st == RM_OK, "llama3-seqcls: %s", e.msg);
    if (st == RM_OK) {
        CHECK(c.arch == RM_ARCH_LLAMA_SEQCLS && !c.is_causal_lm, "arch %d", c.arch);
        CHECK(strcmp(c.architecture, "LlamaForSequenceClassification") == 0, "%s", c.architecture);
        CHECK(c.hidden == 32 && c.head_dim == 16 && c.n_heads == 2 && c.n_kv_heads == 1, "sizes %lld %lld %lld %lld",
              (long long)c.hidden, (long long)c.head_dim, (long long)c.n_heads, (long long)c.n_kv_heads);
        CHECK(c.n_layers == 2 && c.ffn == 96 && c.vocab == 128256 && c.max_pos == 131072, "sizes");
        CHECK(c.rope_type == RM_ROPE_LLAMA3 && c.rope_factor == 8.0 && c.rope_low_freq_factor == 1.0 &&
                  c.rope_high_freq_factor == 4.0 && c.rope_orig_max_pos == 8192 && c.rope_theta == 500000.0,
              "rope %d %g %g %g %lld %g", c.rope_type, c.rope_factor, c.rope_low_freq_factor,
              c.rope_high_freq_factor, (long long)c.rope_orig_max_pos, c.rope_theta);
        const char *want[] = {"helpfulness", "correctness", "coherence", "complexity", "verbosity"};
        CHECK(c.n_labels == 5, "n_labels %lld", (long long)c.n_labels);
        for (int i = 0; i < 5 && i < c.n_labels; i++)
            CHECK(strcmp(c.labels[i], want[i]) == 0, "label %d = %s", i, c.labels[i]);
        CHECK(c.rms_eps == 1e-5 && c.pad_token_id == 128004, "eps %g pad %lld", c.rms_eps, (long long)c.pad_token_id);
        CHECK(!c.qkv_bias && !c.o_bias && !c.mlp_bias && !c.qk_norm && !c.tie_embeddings, "flags");
        CHECK(strcmp(c.dtype, "bfloat16") == 0, "dtype %s", c.dtype);
        rm_config_free(&c);
    }

    snprintf(path, sizeof path, "%s", fixture("models/tiny-llama3-causal/config.json"));
    st = rm_config_load(&c, path, &e);
    CHECK(st == RM_OK, "llama3-causal: %s", e.msg);
    if (st == RM_OK) {
        CHECK(c.arch == RM_ARCH_LLAMA_CAUSAL && c.is_causal_lm, "arch");
        CHECK(c.hidden == 32 && c.n_heads == 4 && c.head_dim == 8 && c.n_kv_heads == 2 && c.n_layers == 3,
              "head_dim from hidden/heads: %lld", (long long)c.head_dim);
        CHECK(c.rope_type == RM_ROPE_LLAMA3 && c.rope_factor == 8.0 && c.rope_theta == 500000.0 &&
                  c.rope_orig_max_pos == 8192,
              "old-layout rope");
        CHECK(!c.tie_embeddings && strcmp(c.dtype, "bfloat16") == 0, "tie/dtype");
        rm_config_free(&c);
    }

    snprintf(path, sizeof path, "%s", fixture("models/tiny-qwen3-seqcls/config.json"));
    st = rm_config_load(&c, path, &e);
    CHECK(st == RM_OK, "qwen3: %s", e.msg);
    if (st == RM_OK) {
        CHECK(c.arch == RM_ARCH_QWEN3_SEQCLS && c.qk_norm && !c.qkv_bias && !c.o_bias, "qwen3 flags");
        CHECK(c.hidden == 32 && c.n_heads == 4 && c.head_dim == 16 && c.n_kv_heads == 2, "qwen3 sizes");
        CHECK(c.rope_type == RM_ROPE_DEFAULT && c.rope_theta == 1000000.0, "qwen3 rope %g", c.rope_theta);
        CHECK(c.n_labels == 1 && strcmp(c.labels[0], "LABEL_0") == 0, "qwen3 labels");
        CHECK(c.tie_embeddings == 1 && c.rms_eps == 1e-6, "qwen3 tie/eps");
        rm_config_free(&c);
    }

    snprintf(path, sizeof path, "%s", fixture("models/tiny-qwen2-seqcls/config.json"));
    st = rm_config_load(&c, path, &e);
    CHECK(st == RM_OK, "qwen2: %s", e.msg);
    if (st == RM_OK) {
        CHECK(c.arch == RM_ARCH_QWEN2_SEQCLS && c.qkv_bias && !c.o_bias && !c.qk_norm && !c.mlp_bias, "qwen2 flags");
        CHECK(c.head_dim == 8 && c.rope_type == RM_ROPE_DEFAULT && c.rope_theta == 1000000.0, "qwen2 rope/head_dim");
        CHECK(c.n_labels == 2 && strcmp(c.labels[0], "reward") == 0 && strcmp(c.labels[1], "safety") == 0,
              "qwen2 labels");
        rm_config_free(&c);
    }
}

static void test_defaults(void) {
    rm_config c;
    rm_err e;
    rm_status st = parse(&c, llama_json(NULL, NULL), &e);
    CHECK(st == RM_OK, "minimal: %s", e.msg);
    if (st == RM_OK) {
        CHECK(c.n_kv_heads == 4 && c.head_dim == 16, "kv heads default %lld, head_dim %lld", (long long)c.n_kv_heads,
              (long long)c.head_dim);
        CHECK(c.rope_type == RM_ROPE_DEFAULT && c.rope_theta == 10000.0, "rope default");
        CHECK(c.n_labels == 2 && strcmp(c.labels[0], "LABEL_0") == 0 && strcmp(c.labels[1], "LABEL_1") == 0,
              "default labels");
        CHECK(c.pad_token_id == -1 && c.max_pos == 2048 && c.dtype[0] == 0, "pad/max_pos/dtype defaults");
        rm_config_free(&c);
    }
    st = parse(&c, llama_json("\"hidden_act\": \"swish\", \"use_sliding_window\": false, \"sliding_window\": null, "
                              "\"layer_types\": [\"full_attention\", \"full_attention\"], ", "hidden_act"), &e);
    CHECK(st == RM_OK, "swish / full attention layers: %s", e.msg);
    if (st == RM_OK) rm_config_free(&c);
    /* hidden_act absent: transformers' default is silu. */
    st = parse(&c, llama_json(NULL, "hidden_act"), &e);
    CHECK(st == RM_OK, "no hidden_act: %s", e.msg);
    if (st == RM_OK) rm_config_free(&c);

    st = parse(&c, llama_json("\"pad_token_id\": -1, ", NULL), &e);
    CHECK(st == RM_OK && c.pad_token_id == -1, "pad_token_id -1: %s", e.msg);
    if (st == RM_OK) rm_config_free(&c);
    st = parse(&c, llama_json("\"num_labels\": 3, \"pad_token_id\": null, \"head_dim\": null, ", NULL), &e);
    CHECK(st == RM_OK && c.n_labels == 3 && strcmp(c.labels[2], "LABEL_2") == 0 && c.pad_token_id == -1 &&
              c.head_dim == 16,
          "num_labels 3 / nulls: %s", e.msg);
    if (st == RM_OK) rm_config_free(&c);

    /* id2label keys out of order: labels come out in index order, verbatim. */
    st = parse(&c, llama_json("\"id2label\": {\"1\": \"b \\u00e9\", \"0\": \"a\", \"2\": \"\"}, ", NULL), &e);
    CHECK(st == RM_OK && c.n_labels == 3, "id2label: %s", e.msg);
    if (st == RM_OK) {
        CHECK(strcmp(c.labels[0], "a") == 0 && strcmp(c.labels[1], "b \xc3\xa9") == 0 && c.labels[2][0] == 0,
              "id2label order");
        rm_config_free(&c);
    }

    /* Huge integers elsewhere (as tokenizer_config.json carries) are harmless. */
    st = parse(&c, llama_json("\"model_max_length\": 1000000000000000019884624838656, ", NULL), &e);
    CHECK(st == RM_OK, "huge unrelated integer: %s", e.msg);
    if (st == RM_OK) rm_config_free(&c);

    /* Old layout with "type" instead of "rope_type"; llama attention_bias and mlp_bias. */
    st = parse(&c,
               llama_json("\"rope_theta\": 500000.0, \"rope_scaling\": {\"type\": \"llama3\", \"factor\": 32, "
                          "\"low_freq_factor\": 1, \"high_freq_factor\": 4, \"original_max_position_embeddings\": 8192}, "
                          "\"attention_bias\": true, \"mlp_bias\": true, \"num_key_value_heads\": 2, ",
                          NULL),
               &e);
    CHECK(st == RM_OK, "old llama3 'type': %s", e.msg);
    if (st == RM_OK) {
        CHECK(c.rope_type == RM_ROPE_LLAMA3 && c.rope_factor == 32 && c.rope_theta == 500000.0, "type llama3");
        CHECK(c.qkv_bias && c.o_bias && c.mlp_bias && c.n_kv_heads == 2, "llama biases");
        rm_config_free(&c);
    }
    /* Newer layout without rope_theta inside: the top-level one still counts. */
    st = parse(&c, llama_json("\"rope_theta\": 1234.5, \"rope_parameters\": {\"rope_type\": \"default\"}, ", NULL), &e);
    CHECK(st == RM_OK && c.rope_theta == 1234.5, "rope_parameters without theta: %s", e.msg);
    if (st == RM_OK) rm_config_free(&c);

    /* Qwen2 ignores attention_bias for o and mlp_bias; Qwen3 attention_bias covers o. */
    st = parse(&c,
               "{\"architectures\": [\"Qwen2ForSequenceClassification\"], \"hidden_size\": 32, \"num_hidden_layers\": 1,"
               " \"num_attention_heads\": 4, \"intermediate_size\": 8, \"vocab_size\": 10, \"mlp_bias\": true}",
               &e);
    CHECK(st == RM_OK && c.qkv_bias && !c.o_bias && !c.mlp_bias && c.max_pos == 32768, "qwen2 defaults: %s", e.msg);
    if (st == RM_OK) rm_config_free(&c);
    st = parse(&c,
               "{\"architectures\": [\"Qwen3ForSequenceClassification\"], \"hidden_size\": 32, \"num_hidden_layers\": 1,"
               " \"num_attention_heads\": 4, \"intermediate_size\": 8, \"vocab_size\": 10, \"attention_bias\": true}",
               &e);
    CHECK(st == RM_OK && c.qkv_bias && c.o_bias && c.qk_norm, "qwen3 attention_bias: %s", e.msg);
    if (st == RM_OK) rm_config_free(&c);
}

static void test_errors(void) {
    rm_config c;
    rm_err e = {0};
    rm_status st = rm_config_load(&c, "/nonexistent-dir-rm/config.json", &e);
    CHECK(st == RM_ERR_IO && strstr(e.msg, "/nonexistent-dir-rm/config.json"), "missing file: %d %s", st, e.msg);

    expect_fail("unknown arch", llama_json("\"architectures\": [\"MistralForCausalLM\"], ", "architectures"),
                RM_ERR_UNSUPPORTED, "MistralForCausalLM", NULL);
    expect_fail("no architectures", llama_json(NULL, "architectures"), RM_ERR_FORMAT, "architectures", NULL);
    expect_fail("architectures not array", llama_json("\"architectures\": \"LlamaForCausalLM\", ", "architectures"),
                RM_ERR_FORMAT, "architectures", NULL);
    expect_fail("gelu", llama_json("\"hidden_act\": \"gelu\", ", "hidden_act"), RM_ERR_UNSUPPORTED, "hidden_act", "gelu");
    expect_fail("string size", llama_json("\"hidden_size\": \"64\", ", "hidden_size"), RM_ERR_FORMAT, "hidden_size",
                "string");
    expect_fail("fractional size", llama_json("\"hidden_size\": 64.5, ", "hidden_size"), RM_ERR_FORMAT, "hidden_size",
                NULL);
    expect_fail("zero size", llama_json("\"hidden_size\": 0, ", "hidden_size"), RM_ERR_FORMAT, "hidden_size", NULL);
    expect_fail("negative layers", llama_json("\"num_hidden_layers\": -2, ", "num_hidden_layers"), RM_ERR_FORMAT,
                "num_hidden_layers", NULL);
    expect_fail("absurd vocab", llama_json("\"vocab_size\": 100000000000000, ", "vocab_size"), RM_ERR_LIMIT,
                "vocab_size", NULL);
    expect_fail("absurd hidden 1e300", llama_json("\"hidden_size\": 1e300, ", "hidden_size"), RM_ERR_LIMIT,
                "hidden_size", NULL);
    expect_fail("missing intermediate_size", llama_json(NULL, "intermediate_size"), RM_ERR_FORMAT,
                "intermediate_size", "missing");
    expect_fail("heads % kv", llama_json("\"num_key_value_heads\": 3, ", NULL), RM_ERR_FORMAT, "num_key_value_heads",
                NULL);
    expect_fail("kv > heads", llama_json("\"num_key_value_heads\": 8, ", NULL), RM_ERR_FORMAT, "num_key_value_heads",
                NULL);
    expect_fail("hidden % heads without head_dim", llama_json("\"hidden_size\": 66, ", "hidden_size"), RM_ERR_FORMAT,
                "head_dim", NULL);
    expect_fail("rope yarn", llama_json("\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4}, ", NULL),
                RM_ERR_UNSUPPORTED, "yarn", "rope_scaling");
    expect_fail("rope linear (old 'type')", llama_json("\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2}, ", NULL),
                RM_ERR_UNSUPPORTED, "linear", NULL);
    expect_fail("rope dynamic (new)", llama_json("\"rope_parameters\": {\"rope_type\": \"dynamic\", \"rope_theta\": 1e4}, ", NULL),
                RM_ERR_UNSUPPORTED, "dynamic", "rope_parameters");
    expect_fail("llama3 without factor",
                llama_json("\"rope_parameters\": {\"rope_type\": \"llama3\", \"low_freq_factor\": 1, "
                           "\"high_freq_factor\": 4, \"original_max_position_embeddings\": 8192}, ", NULL),
                RM_ERR_FORMAT, "rope_parameters.factor", NULL);
    expect_fail("llama3 high <= low",
                llama_json("\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8, \"low_freq_factor\": 4, "
                           "\"high_freq_factor\": 4, \"original_max_position_embeddings\": 8192}, ", NULL),
                RM_ERR_FORMAT, "high_freq_factor", NULL);
    expect_fail("rope_scaling string", llama_json("\"rope_scaling\": \"llama3\", ", NULL), RM_ERR_FORMAT,
                "rope_scaling", NULL);
    expect_fail("negative theta", llama_json("\"rope_theta\": -1, ", NULL), RM_ERR_FORMAT, "rope_theta", NULL);
    expect_fail("partial rotary", llama_json("\"rope_parameters\": {\"rope_type\": \"default\", \"partial_rotary_factor\": 0.5}, ", NULL),
                RM_ERR_UNSUPPORTED, "partial_rotary_factor", NULL);
    expect_fail("bool as string", llama_json("\"attention_bias\": \"yes\", ", NULL), RM_ERR_FORMAT, "attention_bias",
                NULL);
    expect_fail("eps string", llama_json("\"rms_norm_eps\": \"1e-5\", ", "rms_norm_eps"), RM_ERR_FORMAT,
                "rms_norm_eps", NULL);
    expect_fail("id2label bad key", llama_json("\"id2label\": {\"0\": \"a\", \"7\": \"b\"}, ", NULL), RM_ERR_FORMAT,
                "id2label", "\"7\"");
    expect_fail("id2label padded key", llama_json("\"id2label\": {\"00\": \"a\"}, ", NULL), RM_ERR_FORMAT, "id2label",
                NULL);
    expect_fail("id2label non-string", llama_json("\"id2label\": {\"0\": 5}, ", NULL), RM_ERR_FORMAT, "id2label.0",
                NULL);
    expect_fail("id2label array", llama_json("\"id2label\": [\"a\"], ", NULL), RM_ERR_FORMAT, "id2label", NULL);
    expect_fail("num_labels absurd", llama_json("\"num_labels\": 1000000000, ", NULL), RM_ERR_LIMIT, "num_labels",
                NULL);
    expect_fail("invalid JSON", "{\"hidden_size\": 32,,}", RM_ERR_FORMAT, "line 1", NULL);
    expect_fail("not an object", "[1, 2]", RM_ERR_FORMAT, "object", NULL);
    expect_fail("empty", "", RM_ERR_FORMAT, NULL, NULL);
    expect_fail("duplicate key", llama_json("\"hidden_size\": 64, ", NULL), RM_ERR_FORMAT, "duplicate", NULL);
    expect_fail("sliding window", llama_json("\"use_sliding_window\": true, ", NULL), RM_ERR_UNSUPPORTED,
                "use_sliding_window", NULL);
    expect_fail("layer_types", llama_json("\"layer_types\": [\"full_attention\", \"sliding_attention\"], ", NULL),
                RM_ERR_UNSUPPORTED, "layer_types[1]", "sliding_attention");
    expect_fail("pad_token_id string", llama_json("\"pad_token_id\": \"0\", ", NULL), RM_ERR_FORMAT, "pad_token_id",
                NULL);
}

/* Every allocation failing in turn: NOMEM each time, never a crash or leak. */
static void test_alloc_failures(void) {
    char *text;
    size_t len;
    rm_err e;
    char path[4096];
    snprintf(path, sizeof path, "%s", fixture("models/tiny-llama3-seqcls/config.json"));
    if (rm_read_file(path, 0, &text, &len, &e) != RM_OK) {
        CHECK(0, "read %s", e.msg);
        return;
    }
    int bad = 0, points = 0;
    for (int64_t k = 0; k < 10000; k++) {
        rm_config c;
        rm_alloc_fail_after(k);
        rm_status st = rm_config_parse(&c, text, len, "config.json", &e);
        rm_alloc_fail_after(-1);
        if (st == RM_OK) {
            rm_config_free(&c);
            break;
        }
        points++;
        if (st != RM_ERR_NOMEM) {
            bad++;
            fprintf(stderr, "alloc failure %lld: status %d: %s\n", (long long)k, st, e.msg);
        }
    }
    CHECK(points > 5 && bad == 0, "%d of %d allocation-failure points gave a status other than NOMEM", bad, points);
    rm_mfree(text);
}

int main(void) {
    if (test_have_fixtures()) {
        test_fixture_configs();
        test_alloc_failures();
    } else {
        test_skip_fixtures(2);
    }
    test_defaults();
    test_errors();
    return test_summary("test_config");
}
