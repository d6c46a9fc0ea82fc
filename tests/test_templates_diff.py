#!/usr/bin/env python3
"""test_templates_diff - differential test of our chat-template interpreter
(build/bin/nimreward-template) against Jinja itself (tests/jinja_reference.py,
configured as transformers configures it).

For every template in ../shared/fixtures/templates/:
  - the rows of reference/templates.jsonl for that template (written by
    transformers) are fed to the tool and compared with the file directly;
  - RM_N (default 60; RM_QUICK=1: 15) generated conversations
    (tests/gen_conversations.py) are rendered by Jinja and by the tool.
All lines for a template go to one process call of the tool. A rendered
string must be byte-identical; where Jinja refused, the tool must refuse.
The reference module itself is also checked against the 110 fixture rows.

Seed: printed; RM_SEED=N replays. BUILD (default "build") locates the tool.
RM_DIFF_DUMP=FILE writes every mismatch as JSONL (for triage).
RM_TEMPLATES=substr1,substr2 limits the templates run.
Last line: "test_templates_diff: N passed, N failed" (one check per row).
"""

import json
import os
import random
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import gen_conversations  # noqa: E402
import jinja_reference  # noqa: E402

REPO_ROOT = os.path.dirname(HERE)

# The special tokens each model's tokenizer passes (from the fixture rows where
# they exist, else from the model's tokenizer_config.json).
TOKENS = {
    "ByteDance-Seed-OSS": ("<seed:bos>", "<seed:eos>"),
    "CohereForAI-c4ai-command-r-plus-tool_use": ("<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>"),
    "CohereForAI-c4ai-command-r7b-12-2024-tool_use": ("<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>"),
    "Mistral-Small-3.2-24B-Instruct-2506": ("<s>", "</s>"),
    "NVIDIA-Nemotron-Nano-v2": ("<s>", "</s>"),
    "NousResearch-Hermes-3-Llama-3.1-8B-tool_use": ("<|begin_of_text|>", "<|im_end|>"),
    "Qwen-QwQ-32B": ("", "<|im_end|>"),
    "Qwen-Qwen2.5-7B-Instruct": ("", "<|im_end|>"),
    "Qwen-Qwen3-0.6B": ("", "<|im_end|>"),
    "deepseek-ai-DeepSeek-R1-Distill-Llama-8B": ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    "deepseek-ai-DeepSeek-V3.1": ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    "fireworks-ai-llama-3-firefunction-v2": ("<|begin_of_text|>", "<|eot_id|>"),
    "google-gemma-2-2b-it": ("<bos>", "<eos>"),
    "ibm-granite-granite-3.3-2B-Instruct": ("<|end_of_text|>", "<|end_of_text|>"),
    "llama-cpp-deepseek-r1": ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    "meetkai-functionary-medium-v3.2": ("<|begin_of_text|>", "<|eot_id|>"),
    "meta-llama-Llama-3.1-8B-Instruct": ("<|begin_of_text|>", "<|eot_id|>"),
    "meta-llama-Llama-3.2-3B-Instruct": ("<|begin_of_text|>", "<|eot_id|>"),
    "microsoft-Phi-3.5-mini-instruct": ("<s>", "<|endoftext|>"),
    "mistralai-Mistral-Nemo-Instruct-2407": ("<s>", "</s>"),
    "moonshotai-Kimi-K2": ("[BOS]", "[EOS]"),
    "openai-gpt-oss-120b": ("<|startoftext|>", "<|return|>"),
    "unsloth-mistral-Devstral-Small-2507": ("<s>", "</s>"),
}

MAX_DETAILED = int(os.environ.get("RM_DIFF_MAX_REPORTS", "40"))  # detailed reports in all
MAX_DETAILED_PER_TEMPLATE = 4
TOOL_TIMEOUT = 300


class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.detailed = 0
        self.per_template = {}
        self.dump = None
        path = os.environ.get("RM_DIFF_DUMP")
        if path:
            self.dump = open(path, "w", encoding="utf-8")

    def ok(self):
        self.passed += 1

    def fail(self, template, where, text, record=None):
        self.failed += 1
        n = self.per_template.get(template, 0) + 1
        self.per_template[template] = n
        if n <= MAX_DETAILED_PER_TEMPLATE and self.detailed < MAX_DETAILED:
            self.detailed += 1
            print("MISMATCH %s %s: %s" % (template, where, text), file=sys.stderr)
        if self.dump is not None and record is not None:
            record = dict(record, template=template, where=where, summary=text)
            self.dump.write(json.dumps(record, ensure_ascii=False) + "\n")


def first_difference(a, b):
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def describe_difference(expected, got):
    """One diff-friendly line: the first differing offset with context."""
    i = first_difference(expected, got)
    lo = max(0, i - 30)
    return ("first difference at char %d (expected %d chars, got %d):\n"
            "    expected ...%r...\n"
            "    got      ...%r..." % (i, len(expected), len(got), expected[lo:i + 40], got[lo:i + 40]))


def resolve_tool():
    build = os.environ.get("BUILD", "build")
    if not os.path.isabs(build):
        build = os.path.join(REPO_ROOT, build)
    return os.path.join(build, "bin", "nimreward-template")


def run_tool(tool, template_file, lines):
    """Feeds the lines to one process; returns (outputs or None, problem text)."""
    data = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines).encode("utf-8")
    try:
        p = subprocess.run([tool, "--template", template_file], input=data, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=TOOL_TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, "tool timed out after %ds" % TOOL_TIMEOUT
    except OSError as e:
        return None, "cannot run tool: %s" % e
    outs = []
    for k, raw in enumerate(p.stdout.split(b"\n")):
        if not raw.strip():
            continue
        try:
            outs.append(json.loads(raw.decode("utf-8")))
        except (UnicodeDecodeError, ValueError) as e:
            outs.append({"_bad": "output line %d is not JSON (%s): %r" % (k + 1, e, raw[:120])})
    problem = ""
    if p.returncode != 0:
        problem = "tool exited %d; stderr: %s" % (p.returncode, p.stderr.decode("utf-8", "replace")[-400:])
    if len(outs) != len(lines):
        problem += "%stool gave %d output lines for %d inputs" % ("; " if problem else "", len(outs), len(lines))
    return outs, problem


def compare(report, template, where, expected, got, conv):
    record = {"input": conv, "expected": expected, "got": got}
    if got is None:
        report.fail(template, where, "no output line from the tool", record)
        return
    if "_bad" in got:
        report.fail(template, where, got["_bad"], record)
        return
    if "error" in expected:
        if "error" in got:
            report.ok()
        else:
            report.fail(template, where, "Jinja refused (%s) but the tool rendered %d chars"
                        % (expected["error"][:160], len(got.get("rendered", ""))), record)
        return
    if "rendered" not in got:
        report.fail(template, where, "tool refused: %s" % str(got.get("error", got))[:300], record)
        return
    if not isinstance(got["rendered"], str) or got["rendered"] != expected["rendered"]:
        report.fail(template, where, describe_difference(expected["rendered"], str(got["rendered"])), record)
        return
    report.ok()


def main():
    seed_env = os.environ.get("RM_SEED")
    seed = int(seed_env) if seed_env else random.SystemRandom().randrange(2**31)
    quick = os.environ.get("RM_QUICK", "0") not in ("", "0")
    n_gen = int(os.environ.get("RM_N", "15" if quick else "60"))
    only = [s for s in os.environ.get("RM_TEMPLATES", "").split(",") if s]
    print("test_templates_diff: seed %d (RM_SEED=%d replays), %d conversations per template" % (seed, seed, n_gen))
    report = Report()

    # 1. The reference module reproduces transformers' own rows.
    ref_rows = jinja_reference.reference_rows()
    for i, row in enumerate(ref_rows):
        got = jinja_reference.render_row(row)
        expected = {"error": row["error"]} if "error" in row else {"rendered": row["rendered"]}
        compare(report, "jinja_reference:" + row["template"], "fixture row %d" % i, expected, got, row)

    tool = resolve_tool()
    if not os.path.exists(tool):
        print("test_templates_diff: %s does not exist (build it: make %s)" % (tool, os.path.relpath(tool, REPO_ROOT)),
              file=sys.stderr)
        report.failed += 1
        print("test_templates_diff: %d passed, %d failed" % (report.passed, report.failed))
        return 1

    names = sorted(f[:-len(".jinja")] for f in os.listdir(jinja_reference.templates_dir()) if f.endswith(".jinja"))
    if only:
        names = [n for n in names if any(s in n for s in only)]
    summary = []
    for name in names:
        path = jinja_reference.template_path(name)
        with open(path, encoding="utf-8") as f:
            source = f.read()
        bos, eos = TOKENS.get(name, ("<s>", "</s>"))
        lines, expected, where = [], [], []
        # 2. transformers' rows for this template, compared with the file directly.
        for i, row in enumerate(ref_rows):
            if row["template"] != name:
                continue
            lines.append({k: row[k] for k in ("messages", "add_generation_prompt", "bos_token", "eos_token", "now")})
            expected.append({"error": row["error"]} if "error" in row else {"rendered": row["rendered"]})
            where.append("fixture row %d" % i)
        # 3. generated conversations, rendered by Jinja.
        rng = random.Random("%d:%s" % (seed, name))
        for k, conv in enumerate(gen_conversations.conversations(rng, n_gen)):
            line = {"messages": conv["messages"], "add_generation_prompt": conv["add_generation_prompt"],
                    "bos_token": bos, "eos_token": eos, "now": conv["now"]}
            lines.append(line)
            expected.append(jinja_reference.render(source, line["messages"], line["add_generation_prompt"],
                                                   bos, eos, line["now"]))
            where.append("conversation %d" % k)
        t0 = time.time()
        outs, problem = run_tool(tool, path, lines)
        dt = time.time() - t0
        before = report.failed
        if outs is None:
            for w, line, e in zip(where, lines, expected):
                report.fail(name, w, problem, {"input": line, "expected": e, "got": None})
        else:
            if problem:
                print("PROBLEM %s: %s" % (name, problem), file=sys.stderr)
            for idx, (w, line, e) in enumerate(zip(where, lines, expected)):
                compare(report, name, w, e, outs[idx] if idx < len(outs) else None, line)
        n_err = sum(1 for e in expected if "error" in e)
        summary.append("  %-48s %3d rows (%3d refused by Jinja)  %3d mismatches  %.2fs"
                       % (name, len(lines), n_err, report.failed - before, dt))
    print("\n".join(summary), file=sys.stderr)
    if report.failed > report.detailed:
        print("(%d mismatches not shown in detail; RM_DIFF_DUMP=FILE writes them all)"
              % (report.failed - report.detailed), file=sys.stderr)
    print("test_templates_diff: %d passed, %d failed" % (report.passed, report.failed))
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
