/*
 * tokenizer.h - byte-level BPE as described by a Hugging Face tokenizer.json
 * (model.type "BPE" with byte_level pre-tokenization; the Split-regex
 * pre-tokenizer of Llama 3 / Qwen; merges in either the "a b" string form or
 * the [a, b] pair form; ignore_merges; added and special tokens).
 * The struct rm_tokenizer is the public opaque type of nimreward.h.
 */
#ifndef RM_TOKENIZER_H
#define RM_TOKENIZER_H

#include "common.h"

/* Loads tokenizer.json at `path`. Errors name the file and field. */
RM_INTERNAL rm_status rm_tok_load(rm_tokenizer **out, const char *path, rm_err *err);
/* The same from text in memory (fuzzing); `name` is used in messages. */
RM_INTERNAL rm_status rm_tok_parse(rm_tokenizer **out, const char *json, size_t len, const char *name,
                                   rm_err *err);
RM_INTERNAL void rm_tok_free(rm_tokenizer *tok);

/* Encodes len bytes of text and appends the ids to `out`.
 * parse_special = 0: everything is plain text (tiktoken's encode_ordinary).
 * parse_special = 1: added/special tokens written in the text become their
 *   ids, except where a byte of the match has plain_mask[i] != 0 (bytes that
 *   came from message content); plain_mask may be NULL (recognise everywhere).
 * Invalid UTF-8 is RM_ERR_UTF8 naming the byte offset. No BOS is added. */
RM_INTERNAL rm_status rm_tok_encode(const rm_tokenizer *tok, const char *text, size_t len,
                                    const uint8_t *plain_mask, int parse_special, rm_ids *out,
                                    rm_err *err);

/* The id of a vocabulary or added token written exactly as `token`
 * (e.g. "Yes", "<|eot_id|>"; byte-level form, so "Ġ" for a leading space), or -1. */
RM_INTERNAL int32_t rm_tok_id(const rm_tokenizer *tok, const char *token, size_t len);
/* The text of token `id` as stored in the vocabulary, or NULL. */
RM_INTERNAL const char *rm_tok_str(const rm_tokenizer *tok, int32_t id);
RM_INTERNAL int32_t rm_tok_vocab_size(const rm_tokenizer *tok);   /* highest id + 1 */

/* Added by the tokenizer's owner. */
/* Appends the bytes the ids stand for to `out` (byte-level tokens as their raw
 * bytes, added tokens as their text): the inverse of rm_tok_encode. The bytes
 * of a partial sequence may be incomplete UTF-8. An unknown id is
 * RM_ERR_INVALID_ARG naming its position. */
RM_INTERNAL rm_status rm_tok_decode(const rm_tokenizer *tok, const int32_t *ids, size_t n, rm_buf *out,
                                    rm_err *err);
/* 1 when `id` is an entry of added_tokens (and *special set to its flag when not NULL). */
RM_INTERNAL int rm_tok_is_added(const rm_tokenizer *tok, int32_t id, int *special);

#endif
