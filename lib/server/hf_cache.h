/*
 * hf_cache.h - "hf://org/name" resolved in the local Hugging Face cache, the
 * way huggingface_hub lays it out; nothing is fetched.
 *
 *   cache root: $HF_HUB_CACHE, else $HF_HOME/hub, else
 *               $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub
 *   model:      <root>/models--org--name/snapshots/<the commit refs/main names>/
 */
#ifndef RM_SERVER_HF_CACHE_H
#define RM_SERVER_HF_CACHE_H

#include <stddef.h>

#define SRV_HF_PREFIX "hf://"

/* 1 when s starts with hf:// */
int srv_hf_is_uri(const char *s);

/* The cache root as above (malloc'ed), or NULL when no variable gives one. */
char *srv_hf_cache_root(void);

/* Resolves uri to its snapshot directory (malloc'ed). *repo_id gets "org/name"
 * (malloc'ed). On failure returns NULL and err says what is missing: the
 * model not downloaded, no refs/main, the snapshot it names absent. */
char *srv_hf_resolve(const char *uri, char **repo_id, char *err, size_t n);

#endif
