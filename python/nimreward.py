"""Python bindings for libnimreward (ctypes; no compiled extension).

    from nimreward import RewardModel
    with RewardModel("/models/Skywork-Reward-V2-Llama-3.1-8B") as rm:
        rm.score("What is 2+2?", "4")                      # {"LABEL_0": 3.21}
        rm.score_batch([{"prompt": "...", "response": "..."}, {"messages": [...]}])
        rm.score_messages(msgs, principles=["is correct"])  # principle head

The library is found through NIMREWARD_LIB, else next to this file's
repository build (build/lib), else the system's loader path.
"""
import ctypes
import os

_c = ctypes


class _Params(_c.Structure):
    _fields_ = [("struct_size", _c.c_size_t), ("device", _c.c_int), ("n_threads", _c.c_int), ("head", _c.c_int),
                ("logits_begin", _c.c_int64), ("logits_end", _c.c_int64), ("score_names", _c.c_char_p),
                ("yes_token", _c.c_char_p), ("no_token", _c.c_char_p), ("content_special_tokens", _c.c_int),
                ("now", _c.c_char_p), ("max_tokens", _c.c_int64), ("chat_template", _c.c_char_p)]


class _Message(_c.Structure):
    _fields_ = [("struct_size", _c.c_size_t), ("role", _c.c_char_p), ("content", _c.c_char_p)]

    def __init__(self, role, content):
        super().__init__(_c.sizeof(_Message), role, content)


class _Item(_c.Structure):
    _fields_ = [("struct_size", _c.c_size_t), ("messages", _c.POINTER(_Message)), ("n_messages", _c.c_size_t),
                ("principles", _c.POINTER(_c.c_char_p)), ("n_principles", _c.c_size_t)]


class _Scores(_c.Structure):
    _fields_ = [("struct_size", _c.c_size_t), ("status", _c.c_int), ("error", _c.c_char_p),
                ("n_scores", _c.c_size_t), ("names", _c.POINTER(_c.c_char_p)), ("values", _c.POINTER(_c.c_double)),
                ("n_sequences", _c.c_size_t), ("seq_offsets", _c.POINTER(_c.c_size_t)),
                ("tokens", _c.POINTER(_c.c_int32))]


DEVICES = {"auto": 0, "cpu": 1, "cuda": 2}


def _load_library():
    candidates = [os.environ.get("NIMREWARD_LIB")]
    here = os.path.dirname(os.path.abspath(__file__))
    candidates.append(os.path.join(here, "..", os.environ.get("BUILD", "build"), "lib", "libnimreward.so"))
    candidates.append("libnimreward.so.0")
    for path in candidates:
        if path and (os.path.exists(path) or "/" not in path):
            try:
                return _c.CDLL(path)
            except OSError:
                continue
    raise OSError("libnimreward not found: build it with `make` or set NIMREWARD_LIB")


_lib = _load_library()
_lib.rm_params_init.argtypes = [_c.POINTER(_Params)]
_lib.rm_item_init.argtypes = [_c.POINTER(_Item)]
_lib.rm_load.argtypes = [_c.c_char_p, _c.POINTER(_Params), _c.POINTER(_c.c_void_p), _c.c_char_p, _c.c_size_t]
_lib.rm_free.argtypes = [_c.c_void_p]
_lib.rm_score_batch.argtypes = [_c.c_void_p, _c.POINTER(_Item), _c.c_size_t, _c.POINTER(_c.POINTER(_Scores))]
_lib.rm_scores_free.argtypes = [_c.POINTER(_Scores)]
_lib.rm_errmsg.argtypes = [_c.c_void_p]
_lib.rm_errmsg.restype = _c.c_char_p
_lib.rm_status_string.restype = _c.c_char_p
_lib.rm_version_string.restype = _c.c_char_p
_lib.rm_render.argtypes = [_c.c_void_p, _c.POINTER(_Message), _c.c_size_t, _c.c_int, _c.POINTER(_c.c_void_p),
                           _c.POINTER(_c.c_size_t)]
_lib.rm_string_free.argtypes = [_c.c_void_p]

__version__ = _lib.rm_version_string().decode()


class RewardError(RuntimeError):
    """A libnimreward call failed; .status is the rm_status code."""

    def __init__(self, status, message):
        super().__init__(f"{message} ({_lib.rm_status_string(status).decode()})")
        self.status = status


def _messages(item):
    if "messages" in item:
        return [(m["role"], m["content"]) for m in item["messages"]]
    return [("user", item["prompt"]), ("assistant", item["response"])]


class RewardModel:
    """A loaded reward model. Thread-safe for scoring; close() (or `with`) frees it."""

    def __init__(self, path, device="auto", threads=0, logits_range=None, names=None, now=None,
                 content_special_tokens=False, chat_template=None):
        # rm_params_init fills the library's rm_params, which may be larger than this mirror: give it room,
        # keep the fields we know, and tell rm_load our size (the struct_size rule).
        scratch = (_c.c_char * 4096)()
        _lib.rm_params_init(_c.cast(scratch, _c.POINTER(_Params)))
        p = _Params()
        _c.memmove(_c.addressof(p), scratch, _c.sizeof(_Params))
        p.struct_size = _c.sizeof(_Params)
        p.device = DEVICES[device]
        p.n_threads = threads
        if logits_range:
            p.logits_begin, p.logits_end = logits_range
        self._keep = [s.encode() if s else None for s in (names, now, chat_template)]
        p.score_names, p.now, p.chat_template = self._keep
        p.content_special_tokens = int(content_special_tokens)
        handle = _c.c_void_p()
        err = _c.create_string_buffer(1024)
        st = _lib.rm_load(os.fsencode(path), _c.byref(p), _c.byref(handle), err, len(err))
        if st:
            raise RewardError(st, err.value.decode(errors="replace"))
        self._h = handle

    def close(self):
        if getattr(self, "_h", None):
            _lib.rm_free(self._h)
            self._h = None

    __del__ = close

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def score(self, prompt, response, principles=None):
        """Scores one response: {name: value}."""
        return self.score_batch([{"prompt": prompt, "response": response, "principles": principles}])[0]

    def score_messages(self, messages, principles=None):
        return self.score_batch([{"messages": messages, "principles": principles}])[0]

    def score_batch(self, items, return_errors=False):
        """Scores many conversations in one packed pass. Each item is {"prompt", "response"} or
        {"messages"}, optionally with "principles". Returns a list of {name: value}; a bad item
        raises RewardError, or with return_errors=True gives a RewardError in its place."""
        n = len(items)
        c_items = (_Item * n)()
        keep = []
        for i, item in enumerate(items):
            msgs = _messages(item)
            arr = (_Message * len(msgs))(*[_Message(r.encode(), c.encode()) for r, c in msgs])
            principles = item.get("principles") or []
            parr = (_c.c_char_p * max(1, len(principles)))(*[p.encode() for p in principles])
            keep += [arr, parr]
            _lib.rm_item_init(_c.byref(c_items[i]))
            c_items[i].messages = arr
            c_items[i].n_messages = len(msgs)
            c_items[i].principles = parr
            c_items[i].n_principles = len(principles)
        out = (_c.POINTER(_Scores) * max(1, n))()
        st = _lib.rm_score_batch(self._h, c_items, n, out)
        if st and (n == 0 or not out[0]):
            raise RewardError(st, _lib.rm_errmsg(self._h).decode(errors="replace"))
        results = []
        try:
            for i in range(n):
                s = out[i].contents
                if s.status:
                    e = RewardError(s.status, s.error.decode(errors="replace"))
                    if not return_errors:
                        raise e
                    results.append(e)
                else:
                    results.append({s.names[k].decode(): s.values[k] for k in range(s.n_scores)})
        finally:
            for i in range(n):
                _lib.rm_scores_free(out[i])
        return results

    def render(self, messages, add_generation_prompt=False):
        """The prompt the model sees, as transformers' apply_chat_template(tokenize=False)."""
        arr = (_Message * len(messages))(*[_Message(m["role"].encode(), m["content"].encode()) for m in messages])
        ptr, n = _c.c_void_p(), _c.c_size_t()
        st = _lib.rm_render(self._h, arr, len(messages), int(add_generation_prompt), _c.byref(ptr), _c.byref(n))
        if st:
            raise RewardError(st, _lib.rm_errmsg(self._h).decode(errors="replace"))
        try:
            return _c.string_at(ptr, n.value).decode()
        finally:
            _lib.rm_string_free(ptr)
