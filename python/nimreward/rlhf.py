"""reward_function: a RewardModel as a reward function of the form TRL's
GRPOTrainer (and loops written like it) call:

    f(prompts, completions, **kwargs) -> list[float]

prompts and completions are parallel lists. Each element is either a plain
string (TRL's standard format: the prompt is the user's turn, the completion
the assistant's answer) or a list of {"role", "content"} messages (TRL's
conversational format: a prompt is the conversation so far, a completion a
list holding the assistant's message). Extra keyword arguments (TRL passes
completion_ids, trainer_state and the data set's other columns) are ignored.
All the pairs are scored in one rm_score_batch call; the function's __name__
is nimreward_<score name>, which TRL logs the reward under.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Callable, Literal, Optional, Union

from .errors import InvalidArgumentError, RewardError
from .model import Message, RewardModel

Turns = Union[str, Sequence[Message]]
RewardFunction = Callable[..., list[Optional[float]]]


def _turns(value: Any, role: str, where: str) -> list[Message]:
    """A prompt or completion as messages: a string is one turn of `role`."""
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if isinstance(value, Sequence) and not isinstance(value, bytes):
        return list(value)
    raise InvalidArgumentError(1, f"{where} must be a str or a list of messages, not {type(value).__name__}")


def _principle_table(principles: Union[Sequence[str], Mapping[str, str]]) -> dict[str, str]:
    """{score name: principle text}. The library names a principle's score after its text; a mapping
    gives shorter names (for __name__ and the trainer's logs)."""
    if isinstance(principles, Mapping):
        table = dict(principles)
    elif isinstance(principles, Sequence) and not isinstance(principles, (str, bytes)):
        table = {p: p for p in principles}
    else:
        raise InvalidArgumentError(1, "principles must be a list of str or a {name: text} mapping, not "
                                      f"{type(principles).__name__}")
    if not table or not all(isinstance(k, str) and isinstance(v, str) for k, v in table.items()):
        raise InvalidArgumentError(1, "principles must hold at least one principle, every name and text a str")
    return table


def reward_function(model: RewardModel, name: Optional[str] = None,
                    principles: Union[Sequence[str], Mapping[str, str], None] = None, *,
                    on_error: Literal["raise", "none"] = "raise") -> RewardFunction:
    """A reward function reading the score `name` of `model`.

    name is required when the model (or the list of principles) gives more than one score. With
    principles (a principle model, e.g. Nemotron-Reward-Principle), the scores are the principles:
    a list of texts (each named after its text) or {name: text}; only the chosen one is computed.
    on_error="raise" (default) raises the first failing pair's RewardError subclass (e.g. a rollout
    longer than the model's context: TooLongError); "none" gives None for that pair, which TRL
    counts as "no reward from this function" (NaN), and scores the others.
    """
    if not isinstance(model, RewardModel):
        raise InvalidArgumentError(1, f"model must be a nimreward.RewardModel, not {type(model).__name__}")
    if on_error not in ("raise", "none"):
        raise InvalidArgumentError(1, f"on_error={on_error!r}: expected 'raise' or 'none'")
    table = _principle_table(principles) if principles is not None else None
    if table is not None and model.head == "classifier":
        raise InvalidArgumentError(1, f"{model.path}: principles need a causal LM reward model; this one has a "
                                      "classification head")
    available = list(table) if table is not None else model.names
    if not available:
        raise InvalidArgumentError(1, f"{model.path} scores principles only: pass principles=[...]")
    if name is None:
        if len(available) > 1:
            raise InvalidArgumentError(1, f"{model.path} gives {len(available)} scores; pick one with name= "
                                          f"(one of {', '.join(available)})")
        name = available[0]
    elif name not in available:
        raise InvalidArgumentError(1, f"name={name!r} is not a score of {model.path} (one of {', '.join(available)})")
    chosen = [table[name]] if table is not None else None   # the one principle computed
    key = table[name] if table is not None else name        # a principle's score is named after its text
    return_errors = on_error == "none"

    def reward(prompts: Sequence[Turns], completions: Sequence[Turns], **kwargs: Any) -> list[Optional[float]]:
        if len(prompts) != len(completions):
            raise InvalidArgumentError(1, f"{len(prompts)} prompts but {len(completions)} completions")
        items = []
        for i, (prompt, completion) in enumerate(zip(prompts, completions)):
            messages = _turns(prompt, "user", f"prompt {i}") + _turns(completion, "assistant", f"completion {i}")
            items.append({"messages": messages, "principles": chosen})
        results = model.score_batch(items, return_errors=return_errors)
        return [None if isinstance(r, RewardError) else r[key] for r in results]

    reward.__name__ = reward.__qualname__ = f"nimreward_{name}"
    reward.__doc__ = f"The score {name!r} of {model.path} for each (prompt, completion) pair."
    return reward
