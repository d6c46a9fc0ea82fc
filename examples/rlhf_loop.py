#!/usr/bin/env python3
"""rlhf_loop.py - an RLHF-style loop that scores a batch of rollouts per step
through nimreward.reward_function, called the way TRL's GRPOTrainer calls its
reward functions (conversational prompts and completions, extra keyword
arguments).

The policy is deliberately tiny so that the example runs anywhere: for each
prompt it picks one of a few candidate answers through a softmax over
learnable preferences. Each step samples GROUP rollouts per prompt, scores all
of them in one call, and moves the preferences by GRPO's group-relative
advantage. The expected reward rises as the policy learns what the reward
model prefers.

    python examples/rlhf_loop.py --model DIR [--name SCORE] [--principle TEXT]
                                 [--steps N] [--group G] [--seed S] [--json]

--json prints one JSON object per step (its rollouts and rewards) and a last
one with the expected reward before and after.
"""
import argparse
import json
import math
import os
import random
import sys

try:
    import nimreward
except ImportError:   # run from a source checkout without `pip install ./python`
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
    import nimreward

# Prompts with candidate answers: the "actions" the policy chooses between.
TASKS = [
    ("I am going to Paris, what should I see?",
     ["The Louvre, the Eiffel Tower, Montmartre and a walk along the Seine.",
      "Paris is a city in France.",
      "I would rather not say.",
      "Go to the Eiffel Tower. Then go home."]),
    ("Is 17 a prime number?",
     ["Yes: 17 has no divisor other than 1 and itself.",
      "No, 17 = 3 x 6.",
      "Numbers are hard.",
      "Yes."]),
    ("Write a haiku about autumn.",
     ["Red leaves drift and fall / the cold wind hums through bare trees / the year exhales slow",
      "Autumn is a season.",
      "Leaves.",
      "I cannot write poems, but autumn follows summer."]),
]


def softmax(xs):
    top = max(xs)
    es = [math.exp(x - top) for x in xs]
    total = sum(es)
    return [e / total for e in es]


def conversation_turns(question, answer):
    """TRL's conversational format: the prompt a list of messages, the completion the assistant's."""
    return [{"role": "user", "content": question}], [{"role": "assistant", "content": answer}]


def expected_reward(prefs, table):
    """The policy's mean reward over the prompts, from every candidate's score."""
    return sum(sum(p * r for p, r in zip(softmax(prefs[t]), table[t])) for t in range(len(TASKS))) / len(TASKS)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a Hugging Face reward model directory")
    ap.add_argument("--name", help="the score to optimise (required when the model gives several)")
    ap.add_argument("--principle", help="score a principle (principle models, e.g. Nemotron-Reward-Principle)")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--group", type=int, default=4, help="rollouts per prompt per step (GRPO's group)")
    ap.add_argument("--lr", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="one JSON object per step")
    args = ap.parse_args()

    rng = random.Random(args.seed)
    prefs = [[0.0] * len(answers) for _, answers in TASKS]
    with nimreward.RewardModel(args.model, threads=args.threads) as model:
        reward = nimreward.reward_function(model, name=args.name,
                                           principles=[args.principle] if args.principle else None)
        # Every candidate's reward, only to report the policy's expected reward (the loop never reads it).
        pairs = [conversation_turns(q, a) for q, answers in TASKS for a in answers]
        flat = reward([p for p, _ in pairs], [c for _, c in pairs])
        table, k = [], 0
        for _, answers in TASKS:
            table.append(flat[k:k + len(answers)])
            k += len(answers)
        before = expected_reward(prefs, table)
        if not args.json:
            print(f"{model!r}\nreward function {reward.__name__}; expected reward before: {before:.6f}")

        for step in range(args.steps):
            prompts, completions, picks = [], [], []
            for t, (question, answers) in enumerate(TASKS):
                probs = softmax(prefs[t])
                for _ in range(args.group):
                    a = rng.choices(range(len(answers)), weights=probs)[0]
                    prompt, completion = conversation_turns(question, answers[a])
                    prompts.append(prompt)
                    completions.append(completion)
                    picks.append((t, a))
            # One call scores the whole step's batch; TRL passes extra columns, which are ignored.
            rewards = reward(prompts=prompts, completions=completions, trainer_state={"global_step": step})
            # GRPO: each rollout's advantage is its reward against its own prompt's group.
            for t in range(len(TASKS)):
                group = [i for i, (pt, _) in enumerate(picks) if pt == t]
                rs = [rewards[i] for i in group]
                mean = sum(rs) / len(rs)
                std = math.sqrt(sum((r - mean) ** 2 for r in rs) / len(rs))
                probs = softmax(prefs[t])
                for i in group:
                    advantage = (rewards[i] - mean) / (std + 1e-4)
                    a = picks[i][1]
                    for k in range(len(probs)):   # d log softmax(a) / d pref_k = [k == a] - p_k
                        prefs[t][k] += args.lr * advantage * ((k == a) - probs[k]) / args.group
            now = expected_reward(prefs, table)
            if args.json:
                print(json.dumps({"step": step, "prompts": [p[0]["content"] for p in prompts],
                                  "completions": [c[0]["content"] for c in completions], "rewards": rewards,
                                  "expected_reward": now}))
            else:
                print(f"step {step}: {len(rewards)} rollouts, mean reward {sum(rewards) / len(rewards):+.6f}, "
                      f"expected reward {now:+.6f}")
        after = expected_reward(prefs, table)
        if args.json:
            print(json.dumps({"reward_function": reward.__name__, "expected_reward_before": before,
                              "expected_reward_after": after}))
        else:
            print(f"expected reward after {args.steps} steps: {after:.6f} (before: {before:.6f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
