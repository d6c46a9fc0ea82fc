"""nimreward: LLM reward models in-process, over libnimreward's C ABI (ctypes;
no compiled extension).

    from nimreward import RewardModel, reward_function
    with RewardModel("/models/Skywork-Reward-V2-Llama-3.1-8B", threads=8) as rm:
        rm.score("What is 2+2?", "4")                                   # {"LABEL_0": 3.21}
        rm.score_batch([{"prompt": p, "response": r} for r in rollouts])
        reward = reward_function(rm)                                    # TRL GRPOTrainer's contract
        reward(prompts, completions)                                    # [3.21, ...]

The library is looked up in NIMREWARD_LIB, the copy bundled by `pip install`,
the repository's build/lib, then the system loader path (nimreward.library_path
tells which). docs/python.md has the whole API.
"""
from . import _lib
from .errors import (DeviceError, FileAccessError, FormatError, InternalError, InvalidArgumentError,
                     InvalidUTF8Error, LimitError, OutOfMemoryError, RewardError, ShapeError, TemplateError,
                     TooLongError, UnsupportedError)
from .model import DEVICES, DTYPES, HEADS, RewardModel
from .rlhf import reward_function

__version__: str = _lib.lib.rm_version_string().decode()
library_path: str = _lib.path

__all__ = [
    "RewardModel", "reward_function", "RewardError", "InvalidArgumentError", "FileAccessError", "FormatError",
    "ShapeError", "UnsupportedError", "TemplateError", "InvalidUTF8Error", "TooLongError", "OutOfMemoryError",
    "LimitError", "DeviceError", "InternalError", "DEVICES", "DTYPES", "HEADS", "library_path", "__version__",
]
