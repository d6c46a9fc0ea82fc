"""Finding and loading libnimreward, and the ctypes mirror of the structs in
include/nimreward.h. Everything here is private to the package; the one
loaded library is `lib`, the file it came from `path`.

Lookup order (the first that exists and loads wins; NIMREWARD_LIB must load):
  1. NIMREWARD_LIB, a path to libnimreward.so.0
  2. the copy bundled into this package by `pip install` (nimreward/lib/)
  3. the repository's build/lib, when the package runs from its source tree
  4. the system loader path (libnimreward.so.0 after `make install`)
"""
from __future__ import annotations

import ctypes
import os

_c = ctypes

# The library's ABI major (the soname) and the oldest minor with every field mirrored below.
ABI_MAJOR = 0
ABI_MINOR_NEEDED = 2
SONAME = f"libnimreward.so.{ABI_MAJOR}"


# ---------------------------------------------------------------- the structs, field for field


class Params(_c.Structure):
    """rm_params. Fields are appended by the library, never reordered: mirror the header's order."""

    _fields_ = [
        ("struct_size", _c.c_size_t),
        ("device", _c.c_int),
        ("n_threads", _c.c_int),
        ("head", _c.c_int),
        ("logits_begin", _c.c_int64),
        ("logits_end", _c.c_int64),
        ("score_names", _c.c_char_p),
        ("yes_token", _c.c_char_p),
        ("no_token", _c.c_char_p),
        ("content_special_tokens", _c.c_int),
        ("now", _c.c_char_p),
        ("max_tokens", _c.c_int64),
        ("chat_template", _c.c_char_p),
        # Since 0.2.
        ("dtype", _c.c_int),
        ("gpu", _c.c_int),
        ("max_device_bytes", _c.c_size_t),
        ("tp", _c.c_int),
        ("gpus", _c.POINTER(_c.c_int)),
        ("n_gpus", _c.c_size_t),
        ("rank", _c.c_int),
        ("world_size", _c.c_int),
        ("local_rank", _c.c_int),
        ("nccl_id", _c.c_ubyte * 128),
        ("has_nccl_id", _c.c_int),
        ("tp_timeout_s", _c.c_double),
    ]


class Message(_c.Structure):
    """rm_message; an array's stride is its first element's struct_size."""

    _fields_ = [("struct_size", _c.c_size_t), ("role", _c.c_char_p), ("content", _c.c_char_p)]


class Item(_c.Structure):
    """rm_item."""

    _fields_ = [
        ("struct_size", _c.c_size_t),
        ("messages", _c.POINTER(Message)),
        ("n_messages", _c.c_size_t),
        ("principles", _c.POINTER(_c.c_char_p)),
        ("n_principles", _c.c_size_t),
    ]


class Scores(_c.Structure):
    """rm_scores, owned by the library (read only, freed with rm_scores_free)."""

    _fields_ = [
        ("struct_size", _c.c_size_t),
        ("status", _c.c_int),
        ("error", _c.c_char_p),
        ("n_scores", _c.c_size_t),
        ("names", _c.POINTER(_c.c_char_p)),
        ("values", _c.POINTER(_c.c_double)),
        ("n_sequences", _c.c_size_t),
        ("seq_offsets", _c.POINTER(_c.c_size_t)),
        ("tokens", _c.POINTER(_c.c_int32)),
    ]


class Counters(_c.Structure):
    """rm_counters; the caller sets struct_size."""

    _fields_ = [
        ("struct_size", _c.c_size_t),
        ("forward_passes", _c.c_uint64),
        ("sequences", _c.c_uint64),
        ("tokens_input", _c.c_uint64),
        ("tokens_computed", _c.c_uint64),
        ("tokens_last_layer", _c.c_uint64),
        ("lm_head_rows", _c.c_uint64),
        ("weight_bytes_mapped", _c.c_uint64),
        ("weight_bytes_read", _c.c_uint64),
    ]


# ---------------------------------------------------------------- finding the library


def bundled_path() -> str:
    """Where `pip install` puts the library: beside this file, in lib/ (the CUDA module in lib/nimreward/,
    where the library looks for it)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib", SONAME)


def repository_path() -> str:
    """The source tree's build: this file is <repo>/python/nimreward/_lib.py."""
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.normpath(os.path.join(here, "..", "..", "build", "lib", SONAME))


def _open() -> tuple[ctypes.CDLL, str]:
    explicit = os.environ.get("NIMREWARD_LIB")
    if explicit:
        try:
            return _c.CDLL(explicit), explicit
        except OSError as e:
            raise ImportError(f"NIMREWARD_LIB={explicit} cannot be loaded: {e}") from None
    tried = []
    for path in (bundled_path(), repository_path()):
        if not os.path.exists(path):
            tried.append(f"{path}: not there")
            continue
        try:
            return _c.CDLL(path), path
        except OSError as e:   # e.g. a dependency (libopenblas) missing: say so, but try the next place
            tried.append(f"{path}: {e}")
    try:
        return _c.CDLL(SONAME), SONAME
    except OSError as e:
        tried.append(f"{SONAME} on the loader path: {e}")
    raise ImportError("libnimreward not found. Build it with `make` in the repository, install the package with "
                      "`pip install ./python`, or set NIMREWARD_LIB. Tried:\n  " + "\n  ".join(tried))


def _declare(lib: ctypes.CDLL) -> None:
    """Prototypes for every function the package calls (ctypes would otherwise assume int everywhere)."""
    P, vp, sz = _c.POINTER, _c.c_void_p, _c.c_size_t
    protos = {
        "rm_params_init_size": (None, [P(Params), _c.c_size_t]),
        "rm_load": (_c.c_int, [_c.c_char_p, P(Params), P(vp), _c.c_char_p, sz]),
        "rm_free": (None, [vp]),
        "rm_score_batch": (_c.c_int, [vp, P(Item), sz, P(P(Scores))]),
        "rm_scores_free": (None, [P(Scores)]),
        "rm_render": (_c.c_int, [vp, P(Message), sz, _c.c_int, P(vp), P(sz)]),
        "rm_tokenize_messages": (_c.c_int, [vp, P(Message), sz, _c.c_int, P(P(_c.c_int32)), P(sz)]),
        "rm_model_tokenizer": (vp, [vp]),
        "rm_tokenize": (_c.c_int, [vp, _c.c_char_p, sz, P(P(_c.c_int32)), P(sz), _c.c_char_p, sz]),
        "rm_ids_free": (None, [P(_c.c_int32)]),
        "rm_string_free": (None, [vp]),
        "rm_model_head": (_c.c_int, [vp]),
        "rm_model_n_scores": (sz, [vp]),
        "rm_model_score_name": (_c.c_char_p, [vp, sz]),
        "rm_model_architecture": (_c.c_char_p, [vp]),
        "rm_model_n_ctx": (_c.c_int64, [vp]),
        "rm_model_n_layers": (_c.c_int, [vp]),
        "rm_model_device": (_c.c_int, [vp]),
        "rm_model_dtype": (_c.c_int, [vp]),
        "rm_model_counters": (_c.c_int, [vp, P(Counters)]),
        "rm_model_counters_reset": (None, [vp]),
        "rm_errmsg": (_c.c_char_p, [vp]),
        "rm_status_string": (_c.c_char_p, [_c.c_int]),
        "rm_version_number": (_c.c_uint, []),
        "rm_version_string": (_c.c_char_p, []),
    }
    for name, (restype, argtypes) in protos.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes


def _check_version(lib: ctypes.CDLL, path: str) -> None:
    """Fields of rm_params a library does not know are never read: refuse an older one rather than
    accept dtype= and the device parameters and silently ignore them."""
    lib.rm_version_number.restype, lib.rm_version_number.argtypes = _c.c_uint, []
    lib.rm_version_string.restype, lib.rm_version_string.argtypes = _c.c_char_p, []
    number = lib.rm_version_number()
    major, minor = number // 10000, number // 100 % 100
    if major != ABI_MAJOR or minor < ABI_MINOR_NEEDED:
        raise ImportError(f"{path} is libnimreward {lib.rm_version_string().decode()}; this package needs "
                          f"{ABI_MAJOR}.{ABI_MINOR_NEEDED} or a later {ABI_MAJOR}.x")


lib, path = _open()
_check_version(lib, path)   # first: an older library may lack functions _declare names
_declare(lib)


def default_params() -> Params:
    """rm_params_init_size()'s defaults in our mirror: the library writes no more than our size and
    sets struct_size to what both know."""
    p = Params()
    lib.rm_params_init_size(_c.byref(p), _c.sizeof(Params))
    return p


def status_string(status: int) -> str:
    text: bytes = lib.rm_status_string(status)
    return text.decode()
