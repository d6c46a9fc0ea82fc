"""The exceptions: RewardError, and one subclass per rm_status so a caller can
catch exactly the failure it handles. Where a built-in exception means the
same thing the subclass also derives from it (a missing model is an OSError,
a bad argument a ValueError), so generic handlers keep working."""
from __future__ import annotations

from . import _lib


class RewardError(RuntimeError):
    """A libnimreward call failed. .status is the rm_status code, .message the library's message
    (naming the file, field or item), str() both."""

    status: int = 0

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{message} ({_lib.status_string(status)})")
        self.status = status
        self.message = message

    def __reduce__(self) -> tuple[type[RewardError], tuple[int, str]]:   # picklable (multiprocessing), though __init__ takes two arguments
        return (type(self), (self.status, self.message))


class InvalidArgumentError(RewardError, ValueError):
    """RM_ERR_INVALID_ARG: a bad parameter or request (e.g. principles on a classification model)."""


class FileAccessError(RewardError, OSError):
    """RM_ERR_IO: a file of the model is missing or cannot be read."""


class FormatError(RewardError):
    """RM_ERR_FORMAT: a file is malformed or truncated (JSON, safetensors)."""


class ShapeError(RewardError):
    """RM_ERR_SHAPE: a tensor's dtype or shape does not match the config."""


class UnsupportedError(RewardError):
    """RM_ERR_UNSUPPORTED: an architecture, feature, device or dtype this build cannot run."""


class TemplateError(RewardError):
    """RM_ERR_TEMPLATE: the chat template failed (syntax, unsupported construct, raise_exception)."""


class InvalidUTF8Error(RewardError, UnicodeError):
    """RM_ERR_UTF8: text that is not valid UTF-8 (from Python: a str holding lone surrogates)."""


class TooLongError(RewardError):
    """RM_ERR_TOO_LONG: an input longer than the model's context or max_tokens."""


class OutOfMemoryError(RewardError, MemoryError):
    """RM_ERR_NOMEM: an allocation failed."""


class LimitError(RewardError):
    """RM_ERR_LIMIT: a resource bound was hit (header size, nesting, loop count)."""


class DeviceError(RewardError):
    """RM_ERR_DEVICE: a device fault; the model keeps reporting it until closed."""


class InternalError(RewardError):
    """RM_ERR_INTERNAL: a bug in libnimreward."""


# rm_status -> class; the values are the header's and never change meaning.
BY_STATUS: dict[int, type[RewardError]] = {
    1: InvalidArgumentError,
    2: FileAccessError,
    3: FormatError,
    4: ShapeError,
    5: UnsupportedError,
    6: TemplateError,
    7: InvalidUTF8Error,
    8: TooLongError,
    9: OutOfMemoryError,
    10: LimitError,
    11: DeviceError,
    12: InternalError,
}
for _status, _cls in BY_STATUS.items():
    _cls.status = _status


def error_for(status: int, message: str) -> RewardError:
    """The exception for a status (plain RewardError for a status newer than this package)."""
    return BY_STATUS.get(status, RewardError)(status, message)
