/*
 * nimreward.h - libnimreward, an embeddable C library that serves LLM reward models.
 *
 * This header is the contract: anything not declared here is not API.
 * Every symbol starts with rm_ / RM_. Only <stddef.h> and <stdint.h> are included.
 *
 * Strings are UTF-8 and NUL-terminated unless a length is given.
 *
 * Threads: an rm_model is immutable after rm_load(). Any number of threads may
 * call the scoring and introspection functions on one model at once. On the
 * CPU each call uses its own scratch memory; on CUDA the device's activation
 * memory is allocated once at load, so concurrent calls queue for it and run
 * one forward pass at a time. Either way each call's scores are bitwise those
 * of the same call made alone. rm_free() must not race with any other call on
 * the same model. The last-error message is kept per model and per thread.
 *
 * CUDA errors: every CUDA or cuBLAS failure is RM_ERR_DEVICE with a message
 * naming the call. Some CUDA errors (an illegal address, a kernel fault, an
 * uncorrectable ECC error) are sticky: they poison the whole CUDA context of
 * the process on that GPU, so from then on every model on that GPU returns
 * RM_ERR_DEVICE with the first fault's message until the process exits (the
 * CUDA runtime offers no way back). Models on other GPUs and on the CPU carry
 * on. The library never exits or aborts.
 *
 * ABI: soname libnimreward.so.RM_VERSION_MAJOR. A minor release may add
 * functions and append enum values and struct fields (structs carry their
 * size); it never changes a signature, a meaning, a value or a layout.
 */
#ifndef NIMREWARD_H
#define NIMREWARD_H

#include <stddef.h>
#include <stdint.h>

#define RM_VERSION_MAJOR 0
#define RM_VERSION_MINOR 2
#define RM_VERSION_PATCH 0
#define RM_VERSION_NUMBER (RM_VERSION_MAJOR * 10000 + RM_VERSION_MINOR * 100 + RM_VERSION_PATCH)
#define RM_VERSION_STRING "0.2.0"

#if defined(_WIN32)
#  define RM_API __declspec(dllexport)
#elif defined(__GNUC__)
#  define RM_API __attribute__((visibility("default")))
#else
#  define RM_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- types */

/* Opaque handles. */
typedef struct rm_model rm_model;         /* a loaded reward model */
typedef struct rm_tokenizer rm_tokenizer; /* a stand-alone tokenizer (tokenizer.json) */

/* Status codes. Values never change meaning; new ones are appended. */
typedef enum rm_status {
    RM_OK = 0,
    RM_ERR_INVALID_ARG = 1,   /* a NULL pointer, a bad parameter, a bad request */
    RM_ERR_IO = 2,            /* a file is missing or cannot be read */
    RM_ERR_FORMAT = 3,        /* a file is malformed or truncated (JSON, safetensors) */
    RM_ERR_SHAPE = 4,         /* a tensor's dtype or shape does not match the config */
    RM_ERR_UNSUPPORTED = 5,   /* unknown architecture, activation, rope type, ... */
    RM_ERR_TEMPLATE = 6,      /* chat template: syntax, unsupported construct, raise_exception */
    RM_ERR_UTF8 = 7,          /* input text is not valid UTF-8 */
    RM_ERR_TOO_LONG = 8,      /* input longer than the model's context or a set bound */
    RM_ERR_NOMEM = 9,         /* an allocation failed */
    RM_ERR_LIMIT = 10,        /* a resource bound was hit (header size, nesting, loop count) */
    RM_ERR_DEVICE = 11,       /* device fault (a CUDA or cuBLAS call failed, named in the message);
                                 sticky on the model until rm_free(), and on every model of that GPU
                                 when CUDA's error is sticky (see "CUDA errors" above) */
    RM_ERR_INTERNAL = 12      /* a bug in libnimreward: please report it */
} rm_status;

/* Where the forward pass runs. */
typedef enum rm_device {
    RM_DEVICE_AUTO = 0,       /* CUDA when the CUDA module loads and finds a usable GPU, else CPU */
    RM_DEVICE_CPU = 1,
    RM_DEVICE_CUDA = 2
} rm_device;

/* The arithmetic of the forward pass's weights and matrix products. */
typedef enum rm_dtype {
    RM_DTYPE_AUTO = 0,        /* fp32 on the CPU (fidelity first), bf16 on CUDA */
    RM_DTYPE_FP32 = 1,        /* CPU only */
    RM_DTYPE_BF16 = 2,        /* bf16 weights, fp32 accumulation */
    RM_DTYPE_FP8 = 3          /* e4m3 projections with per-channel / per-token scales; CUDA,
                                 compute capability 8.9 or later */
} rm_dtype;

/* How scores are read at the last position. */
typedef enum rm_head {
    RM_HEAD_AUTO = 0,         /* *ForSequenceClassification -> CLASSIFIER; *ForCausalLM -> LOGITS
                                 (or PRINCIPLE when principles are given) */
    RM_HEAD_CLASSIFIER = 1,   /* the `score` head; names from id2label */
    RM_HEAD_LOGITS = 2,       /* lm_head rows [logits_begin, logits_end) (Nemotron-Reward) */
    RM_HEAD_PRINCIPLE = 3     /* logit(Yes) - logit(No) per principle (Nemotron-Reward-Principle) */
} rm_head;

/* Load parameters. Initialise with rm_params_init() and then set fields:
 * fields beyond struct_size are never read, so old callers keep working. */
typedef struct rm_params {
    size_t struct_size;       /* sizeof(rm_params), set by rm_params_init() */
    int device;               /* rm_device; default AUTO */
    int n_threads;            /* CPU threads; 0 = all online cores */
    int head;                 /* rm_head; default AUTO */
    int64_t logits_begin;     /* LOGITS head range [begin, end); -1 = from NIM_REWARD_LOGITS_RANGE,
                                 else 0,1 */
    int64_t logits_end;
    const char *score_names;  /* comma-separated names for the scores; NULL = NIM_REWARD_MODEL_STRING,
                                 else id2label / "reward" / "logit_<i>". Copied by rm_load(). */
    const char *yes_token;    /* PRINCIPLE head: vocabulary entries compared; NULL = "Yes" / "No" */
    const char *no_token;
    int content_special_tokens; /* 0 (default): message content is always plain text, so a
                                   "<|eot_id|>" written by a user or policy is those characters,
                                   never the control token. 1: transformers' exact behaviour
                                   (special-token strings in content become control tokens). */
    const char *now;          /* "YYYY-MM-DDTHH:MM:SS" fixing the clock behind strftime_now for
                                 reproducible prompts; NULL = the real clock. Copied. */
    int64_t max_tokens;       /* refuse inputs longer than this; 0 = the model's context */
    const char *chat_template; /* a Jinja template (the text, not a path) replacing the checkpoint's;
                                  NULL = the checkpoint's own. Copied. */
    /* Since 0.2. */
    int dtype;                /* rm_dtype; default AUTO. A dtype the device cannot run is refused. */
    int gpu;                  /* CUDA device ordinal; default 0 */
    size_t max_device_bytes;  /* CUDA: device memory the model may hold; 0 = the free memory less
                                 a margin (see docs/cuda.md); with tp, per rank */
    /* Since 0.2. Tensor parallelism: the model split over ranks (docs/parallel.md). */
    int tp;                   /* ranks; 0 = not split (a pack: its own tp). With tp >= 1 the ranks run
                                 as threads of this process (world size 1), or one per process
                                 (world size = tp), each with the weights of its rank only. */
    const int *gpus;          /* CUDA: the device of each rank this process runs (n_gpus entries; a
                                 device may repeat: ranks then share it); NULL = ranks 0 .. tp-1 on
                                 devices 0 .. tp-1, or the local rank's device with one per process.
                                 Copied. */
    size_t n_gpus;
    int rank;                 /* this process's rank, one process per rank; -1 (default) = RANK,
                                 SLURM_PROCID or OMPI_COMM_WORLD_RANK */
    int world_size;           /* processes of the tensor-parallel group; 0 (default) = WORLD_SIZE,
                                 SLURM_NTASKS or OMPI_COMM_WORLD_SIZE, else 1. The environment is read
                                 only when tp >= 1, and never written. */
    int local_rank;           /* the process's index on its host (its GPU); -1 (default) = LOCAL_RANK,
                                 SLURM_LOCALID or OMPI_COMM_WORLD_LOCAL_RANK, else the rank */
    unsigned char nccl_id[128]; /* NCCL's unique id (ncclUniqueId): rank 0 makes it, the caller hands
                                   it to every rank (e.g. a broadcast over torch.distributed) */
    int has_nccl_id;          /* 1: nccl_id is set; 0: NCCL's own bootstrap, which needs NCCL_COMM_ID
                                 exported by the user (host:port, not the launcher's MASTER_PORT) */
    double tp_timeout_s;      /* a rank waiting longer than this for the others fails, and every rank
                                 returns an error; 0 = 300 s */
} rm_params;

/* One chat message. Messages travel in arrays: every element of one array
 * carries the same struct_size, which is also the array's stride, so the
 * struct can grow. Fill with RM_MESSAGE(role, content), in C and C++ alike. */
typedef struct rm_message {
    size_t struct_size;       /* sizeof(rm_message) */
    const char *role;         /* "system", "user", "assistant", ... */
    const char *content;
} rm_message;
#ifdef __cplusplus
/* C++ has no compound literals: the same value by aggregate initialisation. */
#  define RM_MESSAGE(role, content) (rm_message{sizeof(rm_message), (role), (content)})
#else
#  define RM_MESSAGE(role, content) ((rm_message){sizeof(rm_message), (role), (content)})
#endif

/* One conversation to score. Initialise with rm_item_init(). */
typedef struct rm_item {
    size_t struct_size;
    const rm_message *messages;
    size_t n_messages;
    const char *const *principles; /* PRINCIPLE head: one score per principle, named after it */
    size_t n_principles;
} rm_item;

/* The result of scoring one conversation. Owned by the library: free with
 * rm_scores_free(). All arrays stay valid until then. */
typedef struct rm_scores {
    size_t struct_size;
    rm_status status;         /* RM_OK, or why this item failed (then n_scores is 0) */
    const char *error;        /* message when status != RM_OK, else "" */
    size_t n_scores;
    const char *const *names; /* n_scores names */
    const double *values;     /* n_scores values */
    size_t n_sequences;       /* token sequences the model saw: 1, or one per principle */
    const size_t *seq_offsets; /* n_sequences + 1 offsets into tokens */
    const int32_t *tokens;    /* all sequences, concatenated */
} rm_scores;

/* Work counters, accumulated over all scoring calls since load or reset. */
typedef struct rm_counters {
    size_t struct_size;       /* set by the caller to sizeof(rm_counters) */
    uint64_t forward_passes;  /* engine calls */
    uint64_t sequences;       /* sequences scored */
    uint64_t tokens_input;    /* tokens in the sequences, counting shared prefixes each time */
    uint64_t tokens_computed; /* token rows computed, summed over layers */
    uint64_t tokens_last_layer; /* token rows computed in the last layer */
    uint64_t lm_head_rows;    /* rows of lm_head / score read and multiplied */
    uint64_t weight_bytes_mapped; /* bytes of weight files mapped */
    uint64_t weight_bytes_read;   /* bytes of weights read by the engine */
} rm_counters;

/* Device memory a model holds, all of it allocated by rm_load() (nothing is
 * allocated while scoring). Zero on the CPU. Since 0.2. */
typedef struct rm_memory {
    size_t struct_size;       /* set by the caller to sizeof(rm_memory) */
    uint64_t weight_bytes;    /* weights on the device (bf16, or FP8 projections plus their scales) */
    uint64_t activation_bytes; /* the activation arena: one forward pass's working memory */
    uint64_t workspace_bytes; /* GEMM workspace and per-pass index arrays */
    uint64_t budget_bytes;    /* max_device_bytes as resolved at load (0 on the CPU) */
    uint64_t peak_load_bytes; /* most bytes held during rm_load() (load staging included) */
    uint64_t tokens_per_pass; /* token rows one forward pass computes at most; longer batches are split
                                 into passes, and one sequence longer than this is refused */
} rm_memory;

/* ---------------------------------------------------------------- parameters */

/* Fills the first `size` bytes of *params (size = the caller's
 * sizeof(rm_params)) with the defaults and sets struct_size to
 * min(size, the library's own sizeof): a caller built against an older,
 * smaller rm_params is never written past its end, and a newer, larger one
 * keeps its extra fields zeroed. Bindings that mirror the struct (ctypes)
 * call this with their mirror's size. Since 0.2. */
RM_API void rm_params_init_size(rm_params *params, size_t size);
/* Fills *params with the defaults and sets struct_size. Since 0.1: the
 * symbol fills the 0.1 fields only (a binary built against 0.1 has that
 * struct); compiled against this header, the macro below calls
 * rm_params_init_size with the struct's size. */
RM_API void rm_params_init(rm_params *params);
#define rm_params_init(params) rm_params_init_size((params), sizeof *(params))
/* Sets struct_size and zeroes the rest. Since 0.1. */
RM_API void rm_item_init(rm_item *item);

/* ---------------------------------------------------------------- lifecycle */

/* Tensor parallelism, one process per rank (rm_params.tp with a world size
 * of tp, e.g. under torchrun): every process of the group must make the same
 * calls (rm_load, each scoring call, rm_free) in the same order with the
 * same inputs; each rank computes its part of every forward pass and all of
 * them return the same scores. Inputs are not broadcast: each rank passes
 * its own copy, and every forward pass checks that the ranks' token
 * sequences agree (a 64-bit fingerprint), failing on every rank with
 * RM_ERR_INVALID_ARG when they do not. A rank that fails, or stops, makes
 * every rank's call return an error within rm_params.tp_timeout_s. With
 * the ranks as threads of one process (world size 1) the calls are simply
 * serialised across the ranks and any thread may call.
 *
 * Loads the Hugging Face model directory `path` (config.json, safetensors,
 * tokenizer.json, tokenizer_config.json / chat_template.jinja), or a model
 * pack written by nimreward-pack (recognised by its nimreward-pack.json).
 * params may be NULL for the defaults. On success *out is a new model; free
 * it with rm_free(). On failure *out is NULL and, when errmsg is not NULL and
 * errmsg_size > 0, a message naming the file and field is copied there.
 * Thread-safe. Since 0.1. */
RM_API rm_status rm_load(const char *path, const rm_params *params, rm_model **out,
                         char *errmsg, size_t errmsg_size);

/* Frees the model. NULL is a no-op. Since 0.1. */
RM_API void rm_free(rm_model *model);

/* ---------------------------------------------------------------- scoring */

/* Scores `response` as the assistant's answer to the user's `prompt`.
 * On RM_OK *out holds the scores; on failure *out is NULL and rm_errmsg()
 * tells why. Free *out with rm_scores_free(). Thread-safe. Since 0.1. */
RM_API rm_status rm_score(rm_model *model, const char *prompt, const char *response,
                          rm_scores **out);

/* Scores a whole conversation. Same ownership as rm_score(). Since 0.1. */
RM_API rm_status rm_score_messages(rm_model *model, const rm_message *messages,
                                   size_t n_messages, rm_scores **out);

/* Scores one item (a conversation, with principles for the PRINCIPLE head).
 * Same ownership as rm_score(). Since 0.1. */
RM_API rm_status rm_score_item(rm_model *model, const rm_item *item, rm_scores **out);

/* Scores n_items conversations in one packed forward pass.
 * out is the caller's array of n_items pointers; every out[i] is set (free
 * each with rm_scores_free()), carrying its own status, so one bad item does
 * not fail the others. Returns RM_OK when every item scored, otherwise the
 * status of the first item that failed (or of a failure of the whole call, in
 * which case every out[i] is NULL). Thread-safe. Since 0.1. */
RM_API rm_status rm_score_batch(rm_model *model, const rm_item *items, size_t n_items,
                                rm_scores **out);

/* Frees a result. NULL is a no-op. Since 0.1. */
RM_API void rm_scores_free(rm_scores *scores);

/* ---------------------------------------------------------------- prompts and tokens */

/* Renders the conversation with the model's chat template, as transformers'
 * apply_chat_template(tokenize=False) does. *out is malloc'ed (free with
 * rm_string_free()), *out_len its length. Thread-safe. Since 0.1. */
RM_API rm_status rm_render(rm_model *model, const rm_message *messages, size_t n_messages,
                           int add_generation_prompt, char **out, size_t *out_len);

/* Token ids the model would see for the conversation (rendered, then tokenized
 * with the template's special tokens recognised). *ids is malloc'ed (free with
 * rm_ids_free()). Thread-safe. Since 0.1. */
RM_API rm_status rm_tokenize_messages(rm_model *model, const rm_message *messages,
                                      size_t n_messages, int add_generation_prompt,
                                      int32_t **ids, size_t *n_ids);

/* Loads a stand-alone tokenizer from a tokenizer.json file. Free with
 * rm_tokenizer_free(). Since 0.1. */
RM_API rm_status rm_tokenizer_load(const char *path, rm_tokenizer **out,
                                   char *errmsg, size_t errmsg_size);
RM_API void rm_tokenizer_free(rm_tokenizer *tok);
/* The tokenizer a model uses; owned by the model. Since 0.1. */
RM_API const rm_tokenizer *rm_model_tokenizer(const rm_model *model);

/* Encodes `text` (len bytes) as plain text: no BOS, special-token strings not
 * parsed. *ids is malloc'ed (free with rm_ids_free()). Thread-safe. Since 0.1. */
RM_API rm_status rm_tokenize(const rm_tokenizer *tok, const char *text, size_t len,
                             int32_t **ids, size_t *n_ids, char *errmsg, size_t errmsg_size);
/* The id of the vocabulary entry `token` (e.g. "Yes"), or -1. Since 0.1. */
RM_API int32_t rm_token_id(const rm_tokenizer *tok, const char *token);

RM_API void rm_ids_free(int32_t *ids);
RM_API void rm_string_free(char *s);

/* ---------------------------------------------------------------- introspection */

RM_API rm_head rm_model_head(const rm_model *model);       /* the head in use, never AUTO */
RM_API size_t rm_model_n_scores(const rm_model *model);    /* 0 for the PRINCIPLE head */
RM_API const char *rm_model_score_name(const rm_model *model, size_t i); /* NULL past the end */
RM_API const char *rm_model_architecture(const rm_model *model);
RM_API int64_t rm_model_n_ctx(const rm_model *model);      /* longest input accepted */
RM_API int rm_model_n_layers(const rm_model *model);
RM_API rm_device rm_model_device(const rm_model *model);   /* never AUTO */
RM_API rm_dtype rm_model_dtype(const rm_model *model);     /* the dtype chosen, never AUTO; since 0.2 */

/* Copies the device memory report (up to memory->struct_size bytes).
 * Thread-safe. Since 0.2. */
RM_API rm_status rm_model_memory(const rm_model *model, rm_memory *memory);

/* Copies the counters (up to counters->struct_size bytes). Since 0.1. */
RM_API rm_status rm_model_counters(const rm_model *model, rm_counters *counters);
/* Token rows computed in each layer: copies min(n, layers) values. Since 0.1. */
RM_API rm_status rm_model_layer_tokens(const rm_model *model, uint64_t *out, size_t n);
RM_API void rm_model_counters_reset(rm_model *model);

/* ---------------------------------------------------------------- errors and version */

/* The last error message of this thread's last failed call on the model, or ""
 * (valid until this thread's next call on the model). Since 0.1. */
RM_API const char *rm_errmsg(const rm_model *model);
/* A static description of a status code. Since 0.1. */
RM_API const char *rm_status_string(rm_status status);

RM_API unsigned rm_version_number(void);   /* RM_VERSION_NUMBER of the library linked */
RM_API const char *rm_version_string(void);

#ifdef __cplusplus
}
#endif
#endif /* NIMREWARD_H */
