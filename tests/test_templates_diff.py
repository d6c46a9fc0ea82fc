#!/usr/bin/env python3
"""test_templates_diff - differential test of our chat-template interpreter
(build/bin/nimreward-template) against Jinja itself (tests/jinja_reference.py,
configured as transformers configures it).

For every template in ../shared/fixtures/templates/:
  - the rows of reference/templates.jsonl for that template (written by
    transformers) are fed to the tool and compared with the file directly;
  - RM_N (default 60; RM_QUICK=1: 15) generated conversations
    (tests/gen_conversations.py) are rendered by Jinja and by the tool;
    most with tools and documents None (transformers' default), every
    fourth with tools=[] and documents=[] so that the tool-use templates,
    which refuse tools=None, have their message paths compared as well.
All lines for a template go to one process call of the tool. A rendered
string must be byte-identical; where Jinja refused, the tool must refuse.
The reference module itself is also checked against the 110 fixture rows,
and ~45 small feature probes (PROBES below) are rendered by both.

Seed: printed; RM_SEED=N replays. BUILD (default "build") locates the tool.
RM_DIFF_DUMP=FILE writes every mismatch as JSONL (for triage).
RM_TEMPLATES=substr1,substr2 limits the templates run.
Last line: "test_templates_diff: N passed, N failed" (one check per row,
plus one failure per template whose tool process misbehaved: exit status
other than 0 / 3-with-error-lines, or a wrong number of output lines).
"""

import json
import os
import random
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import gen_conversations  # noqa: E402
import jinja_reference  # noqa: E402
from testlib import no_fixtures, skip  # noqa: E402

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

# Small templates that exercise Jinja semantics the 23 published templates
# touch little or not at all (Python reprs of values, number formatting,
# string methods on Unicode, filters, tests, loops, macros, whitespace
# control). Jinja is the oracle: nothing here states an expected output.
# One template per line; the whole block is also run once as a single
# template with LF and with CRLF line ends.
PROBES = r"""
{{ [1, 'a', "b'c", 'd"e', none, true, 2.5, 1e20, 1e-7, 'é', '\n', '\x7f', '\u2028'] }}
{{ {'a': 'x', 1: [2], none: true} }}
{{ ('a',) }}{{ () }}{{ (1, 'b') }}
{{ [1,2]|string }}{{ 'a'|string }}{{ none|string }}{{ true|string }}
{{ 1/3 }} {{ 2/2 }} {{ 10/4 }} {{ 1e16 }} {{ 1e15 }} {{ 123456789.0 * 10 }} {{ 0.1 + 0.2 }} {{ -0.0 }} {{ 1e300*1e10 }}
{{ 7 // -2 }} {{ -7 % 3 }} {{ 7.5 // 2 }} {{ 2 ** -1 }}
{{ '%s|%r|%d|%5.2f|%x|%%' % ('a', 'b', 3, 3.14159, 255) }}
{{ '%s' % none }}{{ '%s and %s' % ('x', [1]) }}
{{ 3.7|int }} {{ '42'|int }} {{ 'x'|int }} {{ '3.5'|float }} {{ 2.5|round }} {{ 3.5|round }} {{ 2.567|round(2) }} {{ 5|float }}
{{ 'Hello World'.split() }}{{ '  a  b '.split(' ') }}{{ 'a,b,,c'.split(',') }}{{ 'a b c'.split(none, 1) }}{{ 'a\u3000b'.split() }}
{{ 'abc'.rsplit('b') if false else '' }}{{ 'xxaxx'.strip('x') }}{{ '\u3000 a \xa0'.strip() }}|{{ ' a '|trim }}|{{ 'ab'|trim('a') }}
{{ 'ß'.upper() }} {{ 'İ'.lower() }} {{ 'hello world'.title() }} {{ "they're bill's".title() }} {{ 'aBC dEF'|capitalize }} {{ 'ǅ'.lower() }}
{{ 'é中😀'|length }} {{ 'é中😀'[1] }} {{ 'é中😀'[::-1] }} {{ 'abcdef'[1:5:2] }} {{ 'abc'[-5:2] }} {{ [1,2,3][-1:] }}
{{ 'a' in 'cat' }} {{ 1 in [1,2] }} {{ 'a' in {'a':1} }} {{ 'x' not in 'abc' }}
{{ none ~ 'a' ~ 1 ~ [1] ~ true }}
{{ [3,1,2]|sort }} {{ ['b','A','a']|sort }} {{ [3,1,2]|sort(reverse=true) }} {{ [{'n':2},{'n':1}]|sort(attribute='n') }}
{{ {'b':1,'a':2}|dictsort }} {{ {'b':1,'A':2,'a':3}|dictsort }} {{ {'b':1,'a':2}|dictsort(by='value') }}
{{ [1,2,1,'a','A']|unique|list }} {{ [1,2,3]|sum }} {{ [1,2,3]|max }} {{ ['b','a']|min }} {{ [1,[2]]|length }}
{{ [1,2,3]|join }} {{ [1,2,3]|join('-') }} {{ messages|map(attribute='role')|join(',') }} {{ messages|map('upper')|list if false else '' }}
{% for x in [] %}a{% else %}empty{% endfor %}
{% for x in [1,2,3] %}{{ loop.cycle('a','b') }}{{ loop.revindex }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{% endfor %}
{% for a, b in [[1,2],[3,4]] %}{{ a }}{{ b }}{% endfor %}{% for k, v in {'x':1}.items() %}{{ k }}{{ v }}{% endfor %}
{% for x in [1,2,3] if x > 1 %}{{ loop.index }}/{{ loop.length }}{% endfor %}
{% for x in [[1,[2]],[3]] recursive %}[{% if x is iterable %}{{ loop(x) }}{% else %}{{ x }}{% endif %}]{% endfor %}
{% macro m(a, b='d', c=none) %}{{ a }}{{ b }}{{ c }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1) }}{{ m(1, 2, 3) }}{{ m(1, c=5) }}
{% macro w() %}<{{ caller() }}>{% endmacro %}{% call w() %}inner{% endcall %}
{% set ns = namespace(a=1, b=[]) %}{% set ns.a = ns.a + 1 %}{{ ns.a }}{{ ns.b }}{{ ns }}
{% filter upper %}abc{{ 'd' }}{% endfilter %}
{% set x %}  block {{ 1 }} {% endset %}[{{ x }}]
{{ 'a' if false }}|{{ none }}|{{ undefined_thing }}|{{ none is none }}
{{ 1 == 1.0 }} {{ 'a' < 'b' }} {{ [1,2] == [1,2] }} {{ 1 < 2 < 3 }} {{ true + 1 }} {{ 'ab' * 3 }} {{ [1] + [2] }} {{ [0] * 3 }}
{{ {'a':1}.get('a') }}{{ {'a':1}.get('b') }}{{ {'a':1}['a'] }}{{ {'a':1}.a }}
{{ messages[0] }}
{{ messages[0]|tojson }} {{ messages|tojson(indent=2) }} {{ 'é\n"\\\x01\x7f'|tojson }} {{ 1.0|tojson }} {{ 1e100|tojson }} {{ {'b':1,'a':2}|tojson(sort_keys=true) }} {{ none|tojson }} {{ (1,2)|tojson }}
{{ "it's" }} {{ 'say "hi"' }} {{ '\t\x41\u00e9' }} {{ '\\' }}
{{ range(5)|list }} {{ range(1, 10, 3)|list }} {{ range(0)|list }} {{ range(3)|reverse|list }} {{ 'abc'|reverse }} {{ [1,2]|reverse|list }}
{{ 'abc'|replace('b', 'X', 1) }} {{ 'aaa'|replace('a', 'b', 2) }} {{ 'abc'|center(9) }}|{{ 'a\nb'|indent(2) }}|{{ 'a\nb'|indent(2, true) }}|{{ 'a\n\nb'|indent }}
{{ 'one two three'|wordcount }} {{ 'x'|default('y') }} {{ ''|default('y') }} {{ ''|default('y', true) }} {{ undefined_thing|default('u') }}
{{ messages|selectattr('role', 'eq', 'user')|list|length }} {{ messages|rejectattr('role', 'in', ['user', 'system'])|map(attribute='role')|first }}
{{ [1,2,3,4]|batch(3)|list }} {{ [1,2,3,4]|slice(3)|list }} {{ ['a','b']|first }} {{ []|first }} {{ 'abc'|last }}
{{ 'a' is string }} {{ 1 is number }} {{ 1.0 is integer }} {{ true is boolean }} {{ 1 is sameas 1 }} {{ [] is sequence }} {{ {} is mapping }} {{ 'x' is iterable }} {{ 3 is odd }}
""".strip("\n").split("\n")

WHITESPACE_PROBE = r"""x  {%- if true %} a {% endif -%}  y
  {% if true %}
    indented
  {% endif %}
  {# comment #}
line {{ 'v' }}  
{%+ if true %}keep{% endif %}
{% raw %}{{ raw }}{% endraw %}
{{- ' lead' }}
"""

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
    # The tool's contract: exit 0 when every line rendered, 3 when some gave
    # error lines; anything else (a crash, a fatal error) is a problem.
    any_error = any("error" in o for o in outs)
    if p.returncode != (3 if any_error else 0):
        problem = "tool exited %d (expected %d); stderr: %s" % (p.returncode, 3 if any_error else 0,
                                                               p.stderr.decode("utf-8", "replace")[-400:])
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
    if no_fixtures():   # the templates and transformers' renderings are fixtures
        return skip("test_templates_diff", 1, no_fixtures())
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
            extra = {}
            if k % 4 == 3:
                # Every fourth line passes tools=[] and documents=[] (as
                # apply_chat_template(tools=[], documents=[]) would), so the
                # templates that refuse tools=None get their message paths
                # compared too.
                extra = {"tools": [], "documents": []}
                line.update(extra)
            lines.append(line)
            expected.append(jinja_reference.render(source, line["messages"], line["add_generation_prompt"],
                                                   bos, eos, line["now"], **extra))
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
                # Counted once per template: the lines themselves are checked below.
                report.fail(name, "tool process", problem)
            for idx, (w, line, e) in enumerate(zip(where, lines, expected)):
                compare(report, name, w, e, outs[idx] if idx < len(outs) else None, line)
        n_err = sum(1 for e in expected if "error" in e)
        summary.append("  %-48s %3d rows (%3d refused by Jinja)  %3d mismatches  %.2fs"
                       % (name, len(lines), n_err, report.failed - before, dt))
    # 4. Feature probes: small templates, one tool process each.
    if not only:
        before = report.failed
        probe_msgs = [{"role": "system", "content": " sys "}, {"role": "user", "content": "Héllo\n{{x}}"},
                      {"role": "assistant", "content": "<think>r</think>ans"}]
        line = {"messages": probe_msgs, "add_generation_prompt": False, "bos_token": "<s>", "eos_token": "</s>",
                "now": "2026-11-26T09:30:00"}
        whole = "\n".join(PROBES) + "\n" + WHITESPACE_PROBE
        cases = [("probe %d" % i, src) for i, src in enumerate(PROBES)]
        cases += [("whitespace probe", WHITESPACE_PROBE), ("all probes, LF", whole),
                  ("all probes, CRLF", whole.replace("\n", "\r\n"))]
        with tempfile.TemporaryDirectory() as tmp:
            for where_, src in cases:
                path = os.path.join(tmp, "probe.jinja")
                with open(path, "w", encoding="utf-8", newline="") as f:
                    f.write(src)
                exp = jinja_reference.render(src, probe_msgs, False, "<s>", "</s>", line["now"])
                outs, problem = run_tool(tool, path, [line])
                got = outs[0] if outs else None
                if got is None and "exited 2" in problem:
                    got = {"error": "template did not parse: " + problem}  # a parse refusal is a refusal
                elif problem and got is not None:
                    report.fail("probes", where_ + " (tool process)", problem)
                compare(report, "probes", where_, exp, got, {"template": src, "line": line})
        summary.append("  %-48s %3d rows                     %3d mismatches" % ("feature probes", len(cases),
                                                                                report.failed - before))
    print("\n".join(summary), file=sys.stderr)
    if report.failed > report.detailed:
        print("(%d mismatches not shown in detail; RM_DIFF_DUMP=FILE writes them all)"
              % (report.failed - report.detailed), file=sys.stderr)
    print("test_templates_diff: %d passed, %d failed" % (report.passed, report.failed))
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
