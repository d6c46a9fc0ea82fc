/*
 * api_tokenizer.c - the public stand-alone tokenizer functions of nimreward.h,
 * thin wrappers over tokenizer.h that copy messages out and hand out arrays
 * the caller frees with rm_ids_free().
 */
#include <stdio.h>
#include <string.h>

#include "tokenizer.h"

static void copy_message(char *errmsg, size_t size, const rm_err *err) {
    if (errmsg && size > 0) snprintf(errmsg, size, "%s", err->msg);
}

rm_status rm_tokenizer_load(const char *path, rm_tokenizer **out, char *errmsg, size_t errmsg_size) {
    rm_err err = {0};
    rm_status st;
    if (out) *out = NULL;
    if (!path || !out) st = rm_fail(&err, RM_ERR_INVALID_ARG, "rm_tokenizer_load: %s is NULL", path ? "out" : "path");
    else st = rm_tok_load(out, path, &err);
    if (st != RM_OK) copy_message(errmsg, errmsg_size, &err);
    else if (errmsg && errmsg_size) errmsg[0] = 0;
    return st;
}

void rm_tokenizer_free(rm_tokenizer *tok) { rm_tok_free(tok); }

rm_status rm_tokenize(const rm_tokenizer *tok, const char *text, size_t len, int32_t **ids, size_t *n_ids,
                      char *errmsg, size_t errmsg_size) {
    rm_err err = {0};
    rm_ids v = {0};
    rm_status st;
    if (ids) *ids = NULL;
    if (n_ids) *n_ids = 0;
    if (!tok || !ids || !n_ids || (!text && len)) {
        st = rm_fail(&err, RM_ERR_INVALID_ARG, "rm_tokenize: %s is NULL",
                     !tok ? "tok" : !ids ? "ids" : !n_ids ? "n_ids" : "text");
    } else if ((st = rm_tok_encode(tok, text, len, NULL, 0, &v, &err)) == RM_OK) {
        /* Always a pointer the caller can free, even for no ids. */
        if (!v.data && !(v.data = rm_malloc(sizeof(int32_t))))
            st = rm_fail(&err, RM_ERR_NOMEM, "rm_tokenize: out of memory");
        else {
            *ids = v.data;
            *n_ids = v.len;
        }
    }
    if (st != RM_OK) {
        rm_ids_release(&v);
        copy_message(errmsg, errmsg_size, &err);
    } else if (errmsg && errmsg_size) {
        errmsg[0] = 0;
    }
    return st;
}

int32_t rm_token_id(const rm_tokenizer *tok, const char *token) {
    return tok && token ? rm_tok_id(tok, token, strlen(token)) : -1;
}

void rm_ids_free(int32_t *ids) { rm_mfree(ids); }
