"""RewardModel: one loaded reward model, over the C ABI of include/nimreward.h.

Threads: scoring, rendering and tokenizing may run from any number of Python
threads at once; ctypes releases the GIL for the length of each C call and the
C model is immutable after load. close() waits for the calls in flight and
then frees the model; later calls raise InvalidArgumentError.
"""
from __future__ import annotations

import ctypes
import os
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal, Optional, Union, cast

from . import _lib
from ._distributed import NCCL_ID_BYTES, nccl_id_from_torch
from .errors import InvalidArgumentError, InvalidUTF8Error, RewardError, error_for

_c = ctypes

Device = Literal["auto", "cpu", "cuda"]
DType = Literal["auto", "fp32", "bf16", "fp8"]
Head = Literal["auto", "classifier", "logits", "principle"]
Message = Mapping[str, Any]            # {"role": str, "content": str}; other keys are ignored
Item = Mapping[str, Any]               # {"prompt", "response"} or {"messages"}, optionally "principles"
Scores = dict[str, float]

# The header's enums, by the names the tools use (--device, --dtype).
DEVICES: dict[str, int] = {"auto": 0, "cpu": 1, "cuda": 2}
DTYPES: dict[str, int] = {"auto": 0, "fp32": 1, "bf16": 2, "fp8": 3}
HEADS: dict[str, int] = {"auto": 0, "classifier": 1, "logits": 2, "principle": 3}


def _name_of(table: dict[str, int], value: int) -> str:
    return next((k for k, v in table.items() if v == value), str(value))


def _choice(table: dict[str, int], value: str, what: str) -> int:
    if value not in table:
        raise InvalidArgumentError(1, f"{what}={value!r}: expected one of {', '.join(table)}")
    return table[value]


def _utf8(text: Any, what: str, c_string: bool = True) -> bytes:
    """text as UTF-8 bytes for the library. A C string ends at NUL, so a NUL inside would silently cut
    the text: refused. A str with lone surrogates has no UTF-8 form: InvalidUTF8Error, as the library
    says of bad bytes."""
    if not isinstance(text, str):
        raise InvalidArgumentError(1, f"{what} must be a str, not {type(text).__name__}")
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidUTF8Error(7, f"{what}: character {e.start} ({text[e.start]!r}) has no UTF-8 form") from None
    if c_string and b"\0" in data:
        raise InvalidArgumentError(1, f"{what} contains a NUL character at byte {data.index(0)}")
    return data


def _optional_utf8(text: Optional[str], what: str) -> Optional[bytes]:
    return None if text is None else _utf8(text, what)


class _MessageArray:
    """A conversation as a C rm_message array, holding the bytes it points to."""

    def __init__(self, messages: Sequence[Message], where: str) -> None:
        if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
            raise InvalidArgumentError(1, f"{where}: messages must be a list of {{'role', 'content'}}, "
                                          f"not {type(messages).__name__}")
        self.strings: list[bytes] = []
        self.array = (_lib.Message * max(1, len(messages)))()
        for i, m in enumerate(messages):
            if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
                raise InvalidArgumentError(1, f"{where}: message {i} must be a mapping with 'role' and 'content'")
            role = _utf8(m["role"], f"{where}: message {i} role")
            content = _utf8(m["content"], f"{where}: message {i} content")
            self.strings += [role, content]
            self.array[i] = _lib.Message(_c.sizeof(_lib.Message), role, content)
        self.count = len(messages)


def _item_messages(item: Item, where: str) -> Sequence[Message]:
    if not isinstance(item, Mapping):
        raise InvalidArgumentError(1, f"{where} must be a mapping, not {type(item).__name__}")
    if "messages" in item:
        return cast(Sequence[Message], item["messages"])
    if "prompt" in item and "response" in item:
        return [{"role": "user", "content": item["prompt"]}, {"role": "assistant", "content": item["response"]}]
    raise InvalidArgumentError(1, f"{where} has neither 'messages' nor 'prompt' and 'response'")


def _free_handle(handle: int) -> None:
    _lib.lib.rm_free(handle)


class RewardModel:
    """A loaded reward model. Use as a context manager or call close(); the model is also freed when
    the object is garbage-collected.

        with RewardModel("/models/Skywork-Reward-V2-Llama-3.1-8B", threads=8) as rm:
            rm.score("What is 2+2?", "4")                                   # {"LABEL_0": 3.21}
            rm.score_batch([{"prompt": p, "response": r} for r in rollouts])
            rm.score_messages(msgs, principles=["the answer is correct"])    # principle head

    Every keyword is a field of rm_params (include/nimreward.h): device "auto" | "cpu" | "cuda";
    dtype "auto" (fp32 on the CPU, bf16 on CUDA) | "fp32" | "bf16" | "fp8"; gpu the CUDA ordinal;
    max_device_bytes the device memory the model may hold (0: free memory less a margin); threads the
    CPU threads (0: all cores); logits_range (begin, end) rows of lm_head for the logits head; names
    the score names (a list or "a,b,..."); now "YYYY-MM-DDTHH:MM:SS" fixing strftime_now;
    content_special_tokens as transformers (see the header); chat_template a template's text; head
    "auto" | "classifier" | "logits" | "principle"; max_tokens the longest input accepted (0: the
    context); yes_token / no_token the principle head's vocabulary entries; tp the tensor-parallel
    ranks (0: not split; docs/parallel.md): this process runs them all as threads, or one of them when
    the job runs a process per GPU (torchrun, Slurm, MPI: rank and world size from its variables);
    nccl_id NCCL's 128-byte unique id for such a job, made by rank 0 and handed to every rank. When it
    is not given and torch.distributed is initialised with tp processes, rank 0's id is broadcast
    over it (every rank must then load the model at the same point).
    """

    def __init__(self, path: Union[str, bytes, os.PathLike[str], os.PathLike[bytes]], device: Device = "auto", threads: int = 0,
                 logits_range: Optional[tuple[int, int]] = None,
                 names: Union[str, Sequence[str], None] = None, now: Optional[str] = None,
                 content_special_tokens: bool = False, chat_template: Optional[str] = None, *,
                 dtype: DType = "auto", gpu: int = 0, max_device_bytes: int = 0, head: Head = "auto",
                 max_tokens: int = 0, yes_token: Optional[str] = None, no_token: Optional[str] = None,
                 tp: int = 0, nccl_id: Optional[bytes] = None) -> None:
        self._handle: Optional[int] = None
        self._lock = threading.Condition()
        self._active = 0
        self.path = os.fsdecode(path)
        p = _lib.default_params()
        p.device = _choice(DEVICES, device, "device")
        p.dtype = _choice(DTYPES, dtype, "dtype")
        p.head = _choice(HEADS, head, "head")
        for what, value in (("threads", threads), ("gpu", gpu), ("max_device_bytes", max_device_bytes),
                            ("max_tokens", max_tokens), ("tp", tp)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidArgumentError(1, f"{what}={value!r}: expected an int >= 0")
        p.n_threads, p.gpu, p.max_device_bytes, p.max_tokens = threads, gpu, max_device_bytes, max_tokens
        p.tp = tp
        if nccl_id is None:
            nccl_id = nccl_id_from_torch(tp, device)
        if nccl_id is not None:
            if not isinstance(nccl_id, (bytes, bytearray)) or len(nccl_id) != NCCL_ID_BYTES:
                raise InvalidArgumentError(1, f"nccl_id: expected {NCCL_ID_BYTES} bytes")
            _c.memmove(p.nccl_id, bytes(nccl_id), NCCL_ID_BYTES)
            p.has_nccl_id = 1
        if logits_range is not None:
            begin, end = logits_range
            if not 0 <= begin < end:
                raise InvalidArgumentError(1, f"logits_range={logits_range!r}: expected (begin, end), 0 <= begin < end")
            p.logits_begin, p.logits_end = begin, end
        if names is not None and not isinstance(names, str):
            if not isinstance(names, Sequence) or not all(isinstance(n, str) for n in names):
                raise InvalidArgumentError(1, f"names={names!r}: expected a list of str or 'a,b,...'")
            names = ",".join(names)
        # The library copies every string during rm_load; these keep them alive until then.
        strings = {"score_names": _optional_utf8(names, "names"), "now": _optional_utf8(now, "now"),
                   "chat_template": _optional_utf8(chat_template, "chat_template"),
                   "yes_token": _optional_utf8(yes_token, "yes_token"),
                   "no_token": _optional_utf8(no_token, "no_token")}
        for field, text in strings.items():
            setattr(p, field, text)
        p.content_special_tokens = int(bool(content_special_tokens))
        handle = _c.c_void_p()
        err = _c.create_string_buffer(2048)
        c_path = os.fsencode(path)   # the file system's bytes, whatever their encoding
        if b"\0" in c_path:
            raise InvalidArgumentError(1, f"path {self.path!r} contains a NUL character")
        status = _lib.lib.rm_load(c_path, _c.byref(p), _c.byref(handle), err, len(err))
        if status:
            raise error_for(status, err.value.decode("utf-8", "replace"))
        self._handle = cast(int, handle.value)   # set by a successful rm_load
        self._finalizer = weakref.finalize(self, _free_handle, self._handle)
        # Not at interpreter exit: a daemon thread may still be inside a call then, and the process's
        # end releases everything anyway.
        self._finalizer.atexit = False
        lib, h = _lib.lib, self._handle
        self._names = [lib.rm_model_score_name(h, i).decode() for i in range(lib.rm_model_n_scores(h))]

    # ------------------------------------------------------------ lifetime

    @contextmanager
    def _use(self) -> Iterator[int]:
        """The handle for one call; close() waits until no call holds it."""
        with self._lock:
            if self._handle is None:
                raise InvalidArgumentError(1, f"{self.path}: the model is closed")
            self._active += 1
        try:
            yield self._handle
        finally:
            with self._lock:
                self._active -= 1
                if not self._active:
                    self._lock.notify_all()

    def close(self) -> None:
        """Frees the model once the calls in flight have returned. Closing twice is a no-op."""
        with self._lock:
            if self._handle is None:
                return
            self._handle = None      # no new call starts
            self._lock.wait_for(lambda: self._active == 0)
        self._finalizer()

    @property
    def closed(self) -> bool:
        return self._handle is None

    def __enter__(self) -> RewardModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _error(self, status: int, handle: int) -> RewardError:
        # rm_errmsg is per thread: read right after the failing call, on the same thread.
        return error_for(status, _lib.lib.rm_errmsg(handle).decode("utf-8", "replace"))

    # ------------------------------------------------------------ introspection

    @property
    def names(self) -> list[str]:
        """The score names, in order ([] for the principle head, whose scores are named after the
        principles)."""
        return list(self._names)

    def _query(self, fn: str) -> Any:
        with self._use() as h:
            return getattr(_lib.lib, fn)(h)

    @property
    def head(self) -> str:
        return _name_of(HEADS, self._query("rm_model_head"))

    @property
    def device(self) -> str:
        return _name_of(DEVICES, self._query("rm_model_device"))

    @property
    def dtype(self) -> str:
        return _name_of(DTYPES, self._query("rm_model_dtype"))

    @property
    def architecture(self) -> str:
        return str(self._query("rm_model_architecture").decode())

    @property
    def n_ctx(self) -> int:
        """The longest input accepted, in tokens."""
        return int(self._query("rm_model_n_ctx"))

    @property
    def n_layers(self) -> int:
        return int(self._query("rm_model_n_layers"))

    def counters(self) -> dict[str, int]:
        """The work counters since load or reset_counters() (rm_counters: forward_passes, sequences,
        tokens_input, tokens_computed, ...)."""
        c = _lib.Counters(struct_size=_c.sizeof(_lib.Counters))
        with self._use() as h:
            status = _lib.lib.rm_model_counters(h, _c.byref(c))
            if status:
                raise self._error(status, h)
        names = [field[0] for field in _lib.Counters._fields_ if field[0] != "struct_size"]
        return {name: int(getattr(c, name)) for name in names}

    def reset_counters(self) -> None:
        self._query("rm_model_counters_reset")

    def __repr__(self) -> str:
        if self.closed:
            return f"<RewardModel {self.path!r} closed>"
        return (f"<RewardModel {self.path!r} {self.architecture} head={self.head} device={self.device} "
                f"dtype={self.dtype} names={self._names}>")

    # ------------------------------------------------------------ scoring

    def score(self, prompt: str, response: str, principles: Optional[Sequence[str]] = None) -> Scores:
        """Scores `response` as the assistant's answer to the user's `prompt`: {name: value}."""
        return cast(Scores, self.score_batch([{"prompt": prompt, "response": response, "principles": principles}])[0])

    def score_messages(self, messages: Sequence[Message], principles: Optional[Sequence[str]] = None) -> Scores:
        """Scores a whole conversation: {name: value} (with principles, one score per principle)."""
        return cast(Scores, self.score_batch([{"messages": messages, "principles": principles}])[0])

    def score_batch(self, items: Sequence[Item], return_errors: bool = False) -> list[Union[Scores, RewardError]]:
        """Scores many conversations in one packed pass (rm_score_batch); a prompt shared by several
        items is computed once. Each item is {"prompt", "response"} or {"messages"}, optionally with
        "principles". Returns a list of {name: value} in order. An item that fails raises its
        RewardError subclass, or with return_errors=True stands in the list as that exception while
        the others are scored."""
        n = len(items)
        c_items = (_lib.Item * max(1, n))()
        keep: list[object] = []
        for i, item in enumerate(items):
            where = f"item {i}"
            msgs = _MessageArray(_item_messages(item, where), where)
            principles = item.get("principles") or []
            if isinstance(principles, (str, bytes)):
                raise InvalidArgumentError(1, f"{where}: principles must be a list of str, not one string")
            encoded = [_utf8(t, f"{where}: principle {k}") for k, t in enumerate(principles)]
            parr = (_c.c_char_p * max(1, len(encoded)))(*encoded)
            keep += [msgs, encoded, parr]
            c_items[i] = _lib.Item(_c.sizeof(_lib.Item), msgs.array, msgs.count, parr, len(encoded))
        out = (_c.POINTER(_lib.Scores) * max(1, n))()
        with self._use() as h:
            status = _lib.lib.rm_score_batch(h, c_items, n, out)
            if status and (n == 0 or not out[0]):   # the whole call failed: no result was made
                raise self._error(status, h)
        results: list[Union[Scores, RewardError]] = []
        try:
            for i in range(n):
                s = out[i].contents
                if s.status:
                    e = error_for(s.status, f"item {i}: " + s.error.decode("utf-8", "replace"))
                    if not return_errors:
                        raise e
                    results.append(e)
                else:
                    results.append({s.names[k].decode(): s.values[k] for k in range(s.n_scores)})
        finally:
            for i in range(n):
                _lib.lib.rm_scores_free(out[i])
        return results

    # ------------------------------------------------------------ prompts and tokens

    def render(self, messages: Sequence[Message], add_generation_prompt: bool = False) -> str:
        """The prompt the model sees, as transformers' apply_chat_template(tokenize=False)."""
        msgs = _MessageArray(messages, "render")
        ptr, n = _c.c_void_p(), _c.c_size_t()
        with self._use() as h:
            status = _lib.lib.rm_render(h, msgs.array, msgs.count, int(add_generation_prompt), _c.byref(ptr),
                                        _c.byref(n))
            if status:
                raise self._error(status, h)
        try:
            return _c.string_at(ptr, n.value).decode("utf-8")
        finally:
            _lib.lib.rm_string_free(ptr)

    def tokenize_messages(self, messages: Sequence[Message], add_generation_prompt: bool = False) -> list[int]:
        """The token ids the model sees for the conversation (rendered, then tokenized with the
        template's special tokens recognised), as transformers' apply_chat_template(tokenize=True)."""
        msgs = _MessageArray(messages, "tokenize_messages")
        ids, n = _c.POINTER(_c.c_int32)(), _c.c_size_t()
        with self._use() as h:
            status = _lib.lib.rm_tokenize_messages(h, msgs.array, msgs.count, int(add_generation_prompt),
                                                   _c.byref(ids), _c.byref(n))
            if status:
                raise self._error(status, h)
        try:
            return ids[:n.value]
        finally:
            _lib.lib.rm_ids_free(ids)

    def tokenize(self, text: str) -> list[int]:
        """`text` encoded as plain text with the model's tokenizer: no BOS, special-token strings are
        ordinary characters (any character may appear, NUL included)."""
        data = _utf8(text, "text", c_string=False)
        ids, n = _c.POINTER(_c.c_int32)(), _c.c_size_t()
        err = _c.create_string_buffer(1024)
        with self._use() as h:
            tok = _lib.lib.rm_model_tokenizer(h)
            status = _lib.lib.rm_tokenize(tok, data, len(data), _c.byref(ids), _c.byref(n), err, len(err))
        if status:
            raise error_for(status, err.value.decode("utf-8", "replace"))
        try:
            return ids[:n.value]
        finally:
            _lib.lib.rm_ids_free(ids)
