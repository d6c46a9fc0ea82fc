"""gen_conversations - a seeded generator of chat conversations that probe the
corners of chat templates: empty and whitespace-only content, every kind of
whitespace Python's str.strip() removes, multi-line text, Unicode (CJK, emoji
with joiners, RTL, combining marks), text that looks like Jinja or like
special tokens, <think> blocks, quotes and backslashes, very long content.

Only text messages (role + content). Conversations are an optional system
message then 1..8 messages alternating user/assistant; a small share breaks
the alternation on purpose (assistant first, two users in a row, a lone
assistant) so the templates' raise_exception paths run too.

    rng = random.Random(seed)
    conv = conversation(rng)   # {"messages": [...], "add_generation_prompt": bool, "now": "..."}

`python3 tests/gen_conversations.py [N] [SEED]` prints N conversations as JSONL.
"""

import datetime
import json
import random
import sys

# Whitespace that str.strip() / Jinja's trim remove, beyond ASCII: NEL, NBSP,
# ogham space, en/em spaces, line/paragraph separators, narrow NBSP, ideographic
# space, and the ASCII file/group/record/unit separators.
UNICODE_SPACES = ["\x85", "\xa0", "\u1680", "\u2002", "\u2003", "\u2009", "\u200a", "\u2028",
                  "\u2029", "\u202f", "\u205f", "\u3000", "\x1c", "\x1d", "\x1e", "\x1f"]
ASCII_SPACES = [" ", "\t", "\n", "\r", "\r\n", "\x0b", "\x0c"]

WORDS = ["the", "model", "answer", "is", "Paris", "prime", "17", "why", "because", "rewards",
         "score", "a", "of", "to", "in", "hello", "world", "please", "explain", "step", "x", "y",
         "3.14", "-1", "0", "True", "None", "null", "e.g.", "i.e.", "(ok)", "[sic]", "well,", "ok."]

UNICODE = ["你好，世界", "日本語のテキスト", "한국어 문장", "中文標點：「」『』。",
           "👩‍👩‍👧‍👦", "🏳️‍🌈", "👍🏽", "🧑‍💻", "❤️", "🇫🇷", "😀",
           "مرحبا بالعالم", "שָׁלוֹם", "\u202eRTL override\u202c", "\u200fRLM\u200e",
           "e\u0301", "n\u0303", "Z\u0324\u0354\u0367\u0311\u0313", "\u0915\u094d\u0937",
           "ﬁ ligature", "Ω≈ç√∫", "\u200b zero\u200bwidth", "\ufeffBOM", "ｆｕｌｌｗｉｄｔｈ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
           "Ελληνικά", "Кириллица", "ß→SS", "İstanbul", "ǅ titlecase"]

JINJA_LIKE = ["{{ x }}", "{{x}}", "{% if %}", "{% endif %}", "{%- for m in messages -%}", "{#", "#}",
              "{# comment #}", "{{ messages[0]['content'] }}", "{% raw %}", "{% endraw %}", "}}", "{{",
              "%}", "{%", "{{- bos_token -}}", "{% set x = 1 %}", "{{ '\\n' }}", "{{ raise_exception('no') }}"]

SPECIAL_TOKENS = ["<|eot_id|>", "<|im_end|>", "<|im_start|>", "<|start_header_id|>", "<|end_header_id|>",
                  "<|begin_of_text|>", "</s>", "<s>", "[INST]", "[/INST]", "<end_of_turn>",
                  "<start_of_turn>", "<｜end▁of▁sentence｜>", "<｜Assistant｜>", "<|end|>", "<|assistant|>",
                  "<|endoftext|>", "<SPECIAL_12>", "<|channel|>", "<|return|>", "[TOOL_CALLS]",
                  "<tool_call>", "</tool_call>", "<|START_OF_TURN_TOKEN|>", "<seed:eos>", "<|im_middle|>"]

QUOTES = ['"', "'", "\\", "\\n", "\\\\", "\\u0041", '\\"', "`code`", "```python\nprint('hi')\n```",
          "'single' \"double\"", "C:\\path\\to\\file", "a\\tb", "%s %d %%", "$HOME", "&amp; <b>bold</b> &lt;"]

CONTROL = ["\x01", "\x1b[31m", "\x7f", "\x08"]

THINK = ["<think>\nLet me think step by step.\n</think>\n\n",
         "<think>reasoning</think>",
         "<think>\n\n</think>\n\n",
         "<think></think>",
         "  <think>\nindented\n</think>  ",
         "</think>",
         "<think>",
         "<think>a</think>b</think>c",
         "<think>\nfirst\n</think>\nmiddle\n<think>\nsecond\n</think>\n",
         "</think>\n\n"]


def _word_run(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _fragment(rng, role):
    kind = rng.choices(
        ["words", "unicode", "jinja", "special", "quotes", "newlines", "spaces", "control", "think"],
        weights=[30, 12, 7, 7, 7, 10, 8, 2, 10 if role == "assistant" else 2])[0]
    if kind == "words":
        return _word_run(rng, rng.randint(1, 12))
    if kind == "unicode":
        return rng.choice(UNICODE)
    if kind == "jinja":
        return rng.choice(JINJA_LIKE)
    if kind == "special":
        return rng.choice(SPECIAL_TOKENS)
    if kind == "quotes":
        return rng.choice(QUOTES)
    if kind == "newlines":
        return rng.choice(["\n", "\n\n", "\r\n", "\n\n\n", "\n \n"])
    if kind == "spaces":
        return "".join(rng.choice(ASCII_SPACES + UNICODE_SPACES) for _ in range(rng.randint(1, 3)))
    if kind == "control":
        return rng.choice(CONTROL)
    return rng.choice(THINK)


def content(rng, role):
    """One message's content."""
    shape = rng.choices(["empty", "blank", "short", "mixed", "multiline", "padded", "think", "long"],
                        weights=[4, 5, 20, 30, 12, 10, 12 if role == "assistant" else 2, 3])[0]
    if shape == "empty":
        return ""
    if shape == "blank":
        pool = ASCII_SPACES if rng.random() < 0.6 else ASCII_SPACES + UNICODE_SPACES
        return "".join(rng.choice(pool) for _ in range(rng.randint(1, 6)))
    if shape == "short":
        return _word_run(rng, rng.randint(1, 8))
    if shape == "mixed":
        sep = rng.choice(["", " ", " ", "\n"])
        return sep.join(_fragment(rng, role) for _ in range(rng.randint(1, 8)))
    if shape == "multiline":
        lines = [_word_run(rng, rng.randint(0, 6)) for _ in range(rng.randint(2, 7))]
        return "\n".join(lines) + rng.choice(["", "\n", "\n\n"])
    if shape == "padded":
        pad = lambda: "".join(rng.choice(ASCII_SPACES + UNICODE_SPACES[:4]) for _ in range(rng.randint(1, 4)))
        return pad() + " ".join(_fragment(rng, role) for _ in range(rng.randint(1, 4))) + pad()
    if shape == "think":
        reasoning = "\n".join(_word_run(rng, rng.randint(1, 8)) for _ in range(rng.randint(0, 3)))
        answer = " ".join(_fragment(rng, role) for _ in range(rng.randint(1, 3)))
        form = rng.randrange(4)
        if form == 0:
            return "<think>\n%s\n</think>\n\n%s" % (reasoning, answer)
        if form == 1:
            return "<think>%s</think>%s" % (reasoning, answer)
        if form == 2:
            return "%s\n</think>\n\n%s" % (reasoning, answer)  # closing tag only, as R1 emits
        return rng.choice(THINK) + answer
    # long: 4..40 KB of repeated varied text
    unit = " ".join(_fragment(rng, role) for _ in range(8)) + "\n"
    return unit * max(1, rng.randint(4000, 40000) // max(1, len(unit)))


def _now(rng):
    start = datetime.datetime(2000, 1, 1)
    t = start + datetime.timedelta(seconds=rng.randrange(100 * 365 * 86400))
    return t.strftime("%Y-%m-%dT%H:%M:%S")


def conversation(rng):
    """One conversation dict: messages, add_generation_prompt, now."""
    msgs = []
    if rng.random() < 0.4:
        msgs.append({"role": "system", "content": content(rng, "system")})
    n = rng.randint(1, 8)
    first = "user"
    odd = rng.random()
    if odd < 0.04:
        first = "assistant"
    for i in range(n):
        role = first if i % 2 == 0 else ("assistant" if first == "user" else "user")
        msgs.append({"role": role, "content": content(rng, role)})
    if 0.04 <= odd < 0.07 and len(msgs) >= 1:
        # two messages of the same role in a row
        k = rng.randrange(len(msgs))
        msgs.insert(k, {"role": msgs[k]["role"], "content": content(rng, msgs[k]["role"])})
    return {"messages": msgs, "add_generation_prompt": rng.random() < 0.5, "now": _now(rng)}


def conversations(rng, n):
    return [conversation(rng) for _ in range(n)]


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else random.SystemRandom().randrange(2**32)
    print("gen_conversations: seed %d" % seed, file=sys.stderr)
    r = random.Random(seed)
    for c in conversations(r, count):
        print(json.dumps(c, ensure_ascii=False))
