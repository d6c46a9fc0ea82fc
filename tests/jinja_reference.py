"""jinja_reference - the chat-template renderer of Hugging Face transformers,
rebuilt from jinja2 alone, so tests can compare our C interpreter with Jinja
itself without installing transformers.

It mirrors transformers' `_compile_jinja_template` / `render_jinja_template`
(utils/chat_template_utils.py):
  - ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
    extensions=[loopcontrols]) (transformers' AssistantTracker extension only
    adds the `{% generation %}` tag, which none of our templates use);
  - filters["tojson"] replaced by a plain json.dumps (no HTML escaping,
    ensure_ascii off, keys in insertion order);
  - globals raise_exception (TemplateError with the template's message) and
    strftime_now (the clock, here fixed by the caller's `now`);
  - render(messages=..., tools=None, documents=None, add_generation_prompt=...,
    bos_token=..., eos_token=...): transformers passes tools and documents
    explicitly, so a template iterating `tools` fails with TypeError
    (NoneType is not iterable) rather than seeing an empty Undefined.
This reproduces every row of ../shared/fixtures/reference/templates.jsonl
(see check_reference_rows below; `python3 tests/jinja_reference.py` runs it).
"""

import datetime
import json
import os
import sys

import jinja2
import jinja2.ext
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fixtures_dir():
    """The shared fixtures directory (RM_FIXTURES overrides, as in tests/test.h)."""
    return os.environ.get("RM_FIXTURES") or os.path.join(REPO_ROOT, "..", "shared", "fixtures")


def templates_dir():
    return os.path.join(fixtures_dir(), "templates")


def template_path(name):
    return os.path.join(templates_dir(), name + ".jinja")


def _raise_exception(message):
    raise TemplateError(message)


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    # transformers' override: Jinja's own tojson escapes <, >, &, ' for HTML.
    # With indent and separators None, json.dumps uses (",", ": "); without
    # indent it uses (", ", ": ").
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _parse_now(now):
    if now is None:
        return None
    return datetime.datetime.strptime(now, "%Y-%m-%dT%H:%M:%S")


# The clock strftime_now reads: a fixed datetime for the render in progress,
# or None for the real clock. (Rendering is single-threaded here.)
_clock = {"now": None}


def make_environment():
    """An environment configured as transformers configures it."""

    def strftime_now(fmt):
        fixed = _clock["now"]
        return (fixed if fixed is not None else datetime.datetime.now()).strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


_env = make_environment()
_compiled = {}


def compile_template(source):
    """Compiles (cached per source). Raises TemplateSyntaxError."""
    t = _compiled.get(source)
    if t is None:
        t = _env.from_string(source)
        _compiled[source] = t
    return t


def render(source, messages, add_generation_prompt=False, bos_token=None, eos_token=None, now=None,
           tools=None, documents=None):
    """Returns {"rendered": str} or {"error": "ExceptionType: message"}, like
    the fixture rows. Any exception Jinja raises while compiling or rendering
    is a refusal (transformers would propagate it). tools / documents are
    what apply_chat_template(tools=..., documents=...) would pass (None by
    default, as for a plain conversation)."""
    kwargs = {}
    # transformers passes the tokenizer's special tokens; a missing one is
    # simply not passed (then undefined in the template).
    if bos_token is not None:
        kwargs["bos_token"] = bos_token
    if eos_token is not None:
        kwargs["eos_token"] = eos_token
    try:
        _clock["now"] = _parse_now(now)
        t = compile_template(source)
        out = t.render(messages=messages, tools=tools, documents=documents,
                       add_generation_prompt=add_generation_prompt, **kwargs)
    except Exception as e:  # noqa: BLE001 - every failure is a refusal
        return {"error": "%s: %s" % (type(e).__name__, e)}
    return {"rendered": out}


def render_row(row, source=None):
    """Renders a fixture-shaped row ({template, messages, add_generation_prompt,
    bos_token, eos_token, now})."""
    if source is None:
        with open(template_path(row["template"]), encoding="utf-8") as f:
            source = f.read()
    return render(source, row["messages"], bool(row.get("add_generation_prompt", False)),
                  row.get("bos_token"), row.get("eos_token"), row.get("now"))


def reference_rows():
    path = os.path.join(fixtures_dir(), "reference", "templates.jsonl")
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def check_reference_rows(verbose=True):
    """Renders every fixture row; returns (agree, disagree)."""
    agree = disagree = 0
    for i, row in enumerate(reference_rows()):
        got = render_row(row)
        if "error" in row:
            ok = "error" in got
        else:
            ok = got.get("rendered") == row["rendered"]
        if ok:
            agree += 1
        else:
            disagree += 1
            if verbose:
                print("row %d (%s): expected %r, got %r" % (i, row["template"],
                      row.get("rendered", row.get("error"))[:200], str(got)[:200]), file=sys.stderr)
    return agree, disagree


if __name__ == "__main__":
    a, d = check_reference_rows()
    print("jinja_reference: %d rows agree, %d disagree" % (a, d))
    sys.exit(1 if d else 0)
