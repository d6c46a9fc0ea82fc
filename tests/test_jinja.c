/*
 * test_jinja - the chat-template interpreter, construct by construct.
 *
 *  - render_cases: templates and the exact text Jinja2 3.1.6 renders for them
 *    in transformers' environment (ImmutableSandboxedEnvironment,
 *    trim_blocks, lstrip_blocks, loopcontrols, json.dumps tojson), with the
 *    messages below; refused_cases: templates Jinja refuses. (The tables were
 *    produced by running Jinja itself; tests/test_templates_diff.py keeps
 *    comparing the two live.)
 *  - errors name the template line and the construct;
 *  - limits: loops, recursion, output, memory, parser nesting end in
 *    RM_ERR_LIMIT / RM_ERR_TEMPLATE, never a hang or a crash;
 *  - the content mask survives string operations;
 *  - one template renders from several threads at once;
 *  - every allocation failure during parse and render is reported, not a crash.
 */
#include <pthread.h>
#include <jansson.h>

#include "jinja.h"
#include "test.h"

static const rm_chat_message default_msgs[] = {
    {"user", 4, "Hello  World", 12},
    {"assistant", 9, " a\nb ", 5},
};

typedef struct result {
    rm_status st;
    char *text;
    size_t len;
    uint8_t *mask;
    rm_err err;
} result;

static result render_with(const char *src, const rm_chat_message *msgs, size_t n, const rm_render_opts *opts) {
    result r = {0};
    rm_template *t = NULL;
    r.st = rm_template_parse(&t, src, strlen(src), &r.err);
    if (r.st == RM_OK) r.st = rm_template_render(t, msgs, n, opts, &r.text, &r.len, &r.mask, &r.err);
    rm_template_free(t);
    return r;
}

static result render(const char *src) {
    rm_render_opts o = {0};
    o.bos_token = "<s>";
    o.eos_token = "</s>";
    o.add_generation_prompt = 1;
    o.now = "2026-11-26T09:30:00";
    return render_with(src, default_msgs, 2, &o);
}

static void result_free(result *r) {
    rm_mfree(r->text);
    rm_mfree(r->mask);
    memset(r, 0, sizeof *r);
}

static const struct { const char *src, *want; } render_cases[] = {
    {"{{ 1 + 2 }}|{{ 7 // 2 }}|{{ -7 // 2 }}|{{ 7 % -3 }}|{{ 2 ** 10 }}|{{ 2 ** -1 }}|{{ 7 / 2 }}|{{ 1.5 * 2 }}",
     "3|3|-4|-2|1024|0.5|3.5|3.0"},
    {"{{ 1e16 }} {{ 1e15 }} {{ 0.1 + 0.2 }} {{ 1/3 }} {{ 100.0 }} {{ 1e-5 }} {{ 0.0001 }} {{ -0.0 }} {{ 2.5e-10 }} {{ 123456789012345678.0 }}",
     "1e+16 1000000000000000.0 0.30000000000000004 0.3333333333333333 100.0 1e-05 0.0001 -0.0 2.5e-10 1.2345678901234568e+17"},
    {"{{ 'a' ~ 1 ~ none ~ true }}|{{ undefined_x ~ 'y' }}",
     "a1NoneTrue|y"},
    {"{{ 'abc'[1] }}{{ 'abc'[-1] }}{{ 'abc'[::-1] }}{{ 'abcdef'[1:4] }}{{ 'abcdef'[::2] }}{{ 'h\xc3\xa9llo'[1:3] }}{{ 'h\xc3\xa9llo'[::-1] }}",
     "bccbabcdace\xc3\xa9loll\xc3\xa9h"},
    {"{{ [1,2,3][1:] }}{{ [1,2,3][-2:] }}{{ (1,2,3)[::-1] }}{{ [1,2,3][5:] }}",
     "[2, 3][2, 3](3, 2, 1)[]"},
    {"{{ x }}|{{ x is defined }}|{{ none }}|{{ true }}|{{ [none, true, 'a', \"b'c\", 1.0] }}|{{ {'a': [1, (2,)], 1: none} }}",
     "|False|None|True|[None, True, 'a', \"b'c\", 1.0]|{'a': [1, (2,)], 1: None}"},
    {"{% for m in messages %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}|{% endfor %}",
     "1021TrueFalse2|2110FalseTrue2|"},
    {"{% for m in messages %}{{ loop.previtem.role if loop.previtem is defined else 'none' }}-{{ loop.nextitem.role if loop.nextitem is defined else 'none' }}{{ loop.cycle('a','b') }} {% endfor %}",
     "none-assistanta user-noneb "},
    {"{% for x in [] %}a{% else %}empty{% endfor %}",
     "empty"},
    {"{% for x in [1,2,3,4] if x is even %}{{ x }}{{ loop.length }}{% endfor %}",
     "2242"},
    {"{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}",
     "a=1;b=2;"},
    {"{% for k in {'a': 1, 'b': 2} %}{{ k }}{% endfor %}",
     "ab"},
    {"{% for a, b in [(1,2),(3,4)] %}{{ a + b }}{% endfor %}",
     "37"},
    {"{% for c in 'h\xc3\xa9y' %}[{{ c }}]{% endfor %}",
     "[h][\xc3\xa9][y]"},
    {"{% set x = 1 %}{% for i in [1,2] %}{{ x }}{% set x = 2 %}{{ x }}{% endfor %}{{ x }}",
     "12121"},
    {"{% set ns = namespace(a=1) %}{% for i in [1,2] %}{% set ns.a = ns.a + i %}{% endfor %}{{ ns.a }}",
     "4"},
    {"{% set x %}hello {{ 'world' }}{% endset %}{{ x | upper }}",
     "HELLO WORLD"},
    {"{% set a, b = 1, 2 %}{{ a }}{{ b }}",
     "12"},
    {"{% macro m(a, b='B', c=none) %}{{ a }}{{ b }}{{ c }}{% endmacro %}{{ m(1) }}|{{ m(1, 2) }}|{{ m(1, c=3) }}|{{ m() }}",
     "1BNone|12None|1B3|BNone"},
    {"{% macro m(a) %}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, x=4) }}",
     "(2, 3){'x': 4}"},
    {"{% macro m() %}[{{ caller() }}]{% endmacro %}{% call m() %}inside{% endcall %}",
     "[inside]"},
    {"{% macro m(x) %}[{{ caller(x) }}]{% endmacro %}{% call(y) m(5) %}got {{ y }}{% endcall %}",
     "[got 5]"},
    {"{% filter upper %}abc {{ 'def' }}{% endfilter %}",
     "ABC DEF"},
    {"{% for i in range(10) %}{% if i == 3 %}{% continue %}{% endif %}{% if i == 6 %}{% break %}{% endif %}{{ i }}{% endfor %}",
     "01245"},
    {"{% raw %}{{ not evaluated }}{% endraw %}",
     "{{ not evaluated }}"},
    {"{# comment #}x{#- c -#}  y",
     "xy"},
    {"{{ [1,2,3] | join(',') }}|{{ messages | map(attribute='role') | join(', ') }}|{{ messages | selectattr('role', 'equalto', 'user') | list | length }}",
     "1,2,3|user, assistant|1"},
    {"{{ messages | rejectattr('role', 'equalto', 'user') | map(attribute='content') | list }}",
     "[' a\\nb ']"},
    {"{{ [3,1,2] | sort }}{{ [3,1,2] | sort(reverse=true) }}{{ ['b','A','a'] | sort }}{{ ['b','A','a'] | sort(case_sensitive=true) }}",
     "[1, 2, 3][3, 2, 1]['A', 'a', 'b']['A', 'a', 'b']"},
    {"{{ [1,2,2,3,1] | unique | list }}{{ ['a','A','b'] | unique | list }}",
     "[1, 2, 3]['a', 'b']"},
    {"{{ {'b':1,'a':2} | dictsort }}{{ {'b':1,'a':2} | dictsort(by='value') }}",
     "[('a', 2), ('b', 1)][('b', 1), ('a', 2)]"},
    {"{{ '  x  ' | trim }}|{{ 'xxhixx' | trim('x') }}|{{ 'abc' | upper }}|{{ 'ABC' | lower }}|{{ 'hello world' | title }}|{{ 'hELLO' | capitalize }}",
     "x|hi|ABC|abc|Hello World|Hello"},
    {"{{ 'a\\nb\\n\\nc' | indent }}|{{ 'a\\nb\\n\\nc' | indent(2, true) }}|{{ 'a\\nb\\n\\nc' | indent(2, first=true, blank=true) }}|{{ 'a' | indent('--', true) }}",
     "a\n    b\n\n    c|  a\n  b\n\n  c|  a\n  b\n  \n  c|--a"},
    {"{{ none | default('d') }}|{{ x | default('d') }}|{{ '' | default('d') }}|{{ '' | default('d', true) }}|{{ x | d('z') }}",
     "None|d||d|z"},
    {"{{ [1,2,3] | first }}{{ [1,2,3] | last }}{{ [] | first }}{{ 'abc' | first }}{{ 'abc' | last }}",
     "13ac"},
    {"{{ [1,2,3] | sum }}{{ [1,2,3] | min }}{{ [1,2,3] | max }}{{ [1.5, 2] | sum }}{{ [] | sum }}",
     "6133.50"},
    {"{{ -3 | abs }}{{ 2.5 | round }}{{ 3.5 | round }}{{ 2.675 | round(2) }}{{ 3.7 | round(0, 'floor') }}{{ 3.2 | round(method='ceil') }}{{ 5 | round }}",
     "32.04.02.673.04.05"},
    {"{{ '42' | int }}{{ '4.7' | int }}{{ 'x' | int }}{{ 'x' | int(7) }}{{ 4.7 | int }}{{ '0x1A' | int(0, 16) }}{{ '3.5' | float }}{{ 'x' | float }}{{ 3 | float }}",
     "424074263.50.03.0"},
    {"{{ [1,2,3] | length }}{{ 'h\xc3\xa9llo' | length }}{{ {'a':1} | length }}{{ x | length }}{{ [1,2] | count }}",
     "35102"},
    {"{{ 'a,b,,c'.split(',') }}{{ ' a  b '.split() }}{{ 'a b c'.split(' ', 1) }}{{ 'a b c'.rsplit(' ', 1) }}{{ '  a  b  '.split(None, 1) }}{{ '  a  b  '.rsplit(None, 1) }}",
     "['a', 'b', '', 'c']['a', 'b']['a', 'b c']['a b', 'c']['a', 'b  ']['  a', 'b']"},
    {"{{ '  x '.strip() }}|{{ '  x '.lstrip() }}|{{ '  x '.rstrip() }}|{{ 'xyhiyx'.strip('xy') }}",
     "x|x |  x|hi"},
    {"{{ 'hello'.startswith('he') }}{{ 'hello'.endswith(('x','lo')) }}{{ 'hello'.replace('l','L') }}{{ 'hello'.replace('l','L',1) }}{{ 'abc'.replace('','-') }}",
     "TrueTrueheLLoheLlo-a-b-c-"},
    {"{{ 'hello'.find('l') }}{{ 'hello'.rfind('l') }}{{ 'hello'.find('z') }}{{ 'hello'.count('l') }}{{ 'hello world'.title() }}{{ 'HELLO'.capitalize() }}{{ 'a1b2'.upper() }}",
     "23-12Hello WorldHelloA1B2"},
    {"{{ '-'.join(['a','b']) }}{{ 'a\\nb\\r\\nc'.splitlines() }}{{ '12'.isdigit() }}{{ 'ab'.isalpha() }}{{ '{} and {}'.format(1, 'x') }}{{ '{0}{name}'.format(1, name='n') }}",
     "a-b['a', 'b', 'c']TrueTrue1 and x1n"},
    {"{{ {'a':1}.get('a') }}{{ {'a':1}.get('b') }}{{ {'a':1}.get('b', 2) }}{{ {'a':1}.keys() }}{{ {'a':1}.values() }}{{ {'a':1}.items() | list }}",
     "1None2dict_keys(['a'])dict_values([1])[('a', 1)]"},
    {"{{ [1,2,3].index(2) }}{{ [1,2,2].count(2) }}",
     "12"},
    {"{{ none.y }}|{{ none.y is defined }}",
     "|False"},
    {"{% for x in undefined_thing %}a{% endfor %}ok",
     "ok"},
    {"{{ 'abc' is string }}{{ 1 is number }}{{ true is number }}{{ 1 is integer }}{{ 1.0 is float }}{{ none is none }}{{ {} is mapping }}{{ [] is iterable }}{{ 'a' is iterable }}{{ 1 is iterable }}{{ [] is sequence }}{{ 'a' is sequence }}",
     "TrueTrueTrueTrueTrueTrueTrueTrueTrueFalseTrueTrue"},
    {"{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ 'abc' is lower }}{{ 'ABC' is upper }}{{ 1 is equalto 1 }}{{ 1 is eq 2 }}{{ 'a' is in 'abc' }}{{ 2 is in [1,2] }}{{ none is sameas none }}{{ true is true }}{{ false is false }}{{ true is boolean }}",
     "TrueTrueTrueTrueTrueTrueFalseTrueTrueTrueTrueTrueTrue"},
    {"{{ x is not defined }}{{ x is undefined }}{{ 1 is gt 0 }}{{ 1 is lt 0 }}{{ 1 is ge 1 }}{{ 'upper' is filter }}{{ 'odd' is test }}{{ 'nope' is filter }}",
     "TrueTrueTrueFalseTrueTrueTrueFalse"},
    {"{{ 1 if true }}|{{ 1 if false }}|{{ 1 if false else 2 }}|{{ 'a' if x is defined else 'b' }}",
     "1||2|b"},
    {"{{ 1 == 1.0 }}{{ 'a' != 'b' }}{{ [1,2] == [1,2] }}{{ (1,2) == [1,2] }}{{ {'a':1} == {'a':1} }}{{ 1 < 2 < 3 }}{{ 3 > 2 > 2 }}{{ 'a' < 'b' }}{{ [1,2] < [1,3] }}",
     "TrueTrueTrueFalseTrueTrueFalseTrueTrue"},
    {"{{ 'a' in 'abc' }}{{ 'z' not in 'abc' }}{{ 1 in [1,2] }}{{ 'a' in {'a':1} }}{{ 1 in x }}",
     "TrueTrueTrueTrueFalse"},
    {"{{ not true }}{{ not none }}{{ true and 'x' }}{{ false or 'y' }}{{ none or [] }}{{ 0 and 1 }}",
     "FalseTruexy[]0"},
    {"{{ -2 ** 2 }}{{ (-2) ** 2 }}{{ 2 ** 3 ** 2 }}{{ -1 | abs }}{{ 10 - 2 - 3 }}{{ 2 * 3 + 4 }}{{ 2 + 3 * 4 }}{{ 'ab' * 3 }}{{ [0] * 3 }}",
     "4464151014ababab[0, 0, 0]"},
    {"{{ messages[0].role }}{{ messages[0]['content'] }}{{ messages[-1].content }}{{ messages[5] }}{{ messages[0].nope }}{{ messages[0]['nope'] is defined }}",
     "userHello  World a\nb False"},
    {"{{ messages[0].items() | list }}{{ messages | length }}{{ messages | tojson }}{{ messages[0] | tojson(indent=2) }}",
     "[('role', 'user'), ('content', 'Hello  World')]2[{\"role\": \"user\", \"content\": \"Hello  World\"}, {\"role\": \"assistant\", \"content\": \" a\\nb \"}]{\n  \"role\": \"user\",\n  \"content\": \"Hello  World\"\n}"},
    {"{{ {'a': '\xc3\xa9\"\\\\\\n\\t', 'b': [1, 2.5, none, true]} | tojson }}|{{ [] | tojson(indent=2) }}|{{ {} | tojson(indent=2) }}|{{ {'a':{'b':[]}} | tojson(indent=4) }}",
     "{\"a\": \"\xc3\xa9\\\"\\\\\\n\\t\", \"b\": [1, 2.5, null, true]}|[]|{}|{\n    \"a\": {\n        \"b\": []\n    }\n}"},
    {"{{ {'b':1,'a':2} | tojson(sort_keys=true) }}{{ {1:2} | tojson }}",
     "{\"a\": 2, \"b\": 1}{\"1\": 2}"},
    {"{{ '<a href=\"x\">&</a>' | e }}{{ '<b>' | escape | escape }}{{ '<x>' | safe }}{{ ('<y>' | safe) + '<z>' }}",
     "&lt;a href=&#34;x&#34;&gt;&amp;&lt;/a&gt;&lt;b&gt;<x><y>&lt;z&gt;"},
    {"{{ [1,2,3,4,5] | batch(2) | list }}{{ [1,2,3,4,5] | batch(2, 0) | list }}{{ [1,2,3,4,5] | slice(2) | list }}",
     "[[1, 2], [3, 4], [5]][[1, 2], [3, 4], [5, 0]][[1, 2, 3], [4, 5]]"},
    {"{{ [1,2] | reverse | list }}{{ 'abc' | reverse }}{{ {'a':1,'b':2} | reverse | list }}{{ {'a':1} | items | list }}{{ x | items | list }}",
     "[2, 1]cba['b', 'a'][('a', 1)][]"},
    {"{{ 'abc' | list }}{{ {'a':1} | list }}{{ (1,2) | list }}{{ 12 | string }}{{ none | string }}{{ [1] | string }}",
     "['a', 'b', 'c']['a'][1, 2]12None[1]"},
    {"{{ [1,2] | map('string') | join('-') }}{{ ['a','b'] | map('upper') | list }}{{ [{'a':1},{'b':2}] | map(attribute='a', default='D') | list }}",
     "1-2['A', 'B'][1, 'D']"},
    {"{{ [1,0,2] | select | list }}{{ [1,0,2] | reject | list }}{{ [1,2,3,4] | select('odd') | list }}{{ [1,2,3] | select('gt', 1) | list }}{{ [1,2,3] | reject('in', [2]) | list }}",
     "[1, 2][0][1, 3][2, 3][1, 3]"},
    {"{{ '%s is %d' | format('x', 3) }}{{ '%05.2f' % 3.14159 }}{{ '%-4s|' % 'ab' }}{{ '%(a)s' % {'a': 1} }}{{ 'x%%y' % () }}",
     "x is 303.14ab  |1x%y"},
    {"{{ dict(a=1, b=2) }}{{ namespace(x=1).x }}{{ range(5) | list }}{{ range(1, 10, 3) | list }}{{ range(5, 0, -2) | list }}",
     "{'a': 1, 'b': 2}1[0, 1, 2, 3, 4][1, 4, 7][5, 3, 1]"},
    {"{{ \"single 'quote'\" }}{{ 'dbl \"q\"' }}{{ 'esc \\x41\\u00e9\\101\\n' }}{{ 'a' 'b' \"c\" }}",
     "single 'quote'dbl \"q\"esc A\xc3\xa9""A\nabc"},
    {"{{ [1,2,3,] }}{{ {'a':1,} }}{{ (1,) }}{{ () }}",
     "[1, 2, 3]{'a': 1}(1,)()"},
    {"{% if false %}{{ x|nofilter }}{% endif %}ok",
     "ok"},
    {"{% if false %}{% if x is nosuchtest %}{% endif %}{% endif %}ok2",
     "ok2"},
    {"{% set ns = namespace(d={}) %}{{ ns.d }}{{ ns }}",
     "{}<Namespace {'d': {}}>"},
    {"{{ messages[0] | dictsort }}",
     "[('content', 'Hello  World'), ('role', 'user')]"},
    {"{{ (messages | first).content }}{{ (messages | last).role }}",
     "Hello  Worldassistant"},
    {"{{ messages|selectattr('role','eq','user')|first }}",
     "{'role': 'user', 'content': 'Hello  World'}"},
    {"{% if messages|selectattr('role','eq','system') %}truthy{% endif %}",
     "truthy"},
    {"{{ (messages|map(attribute='role'))[0] }}",
     ""},
    {"{{ {'a': 1}['a'] }}{{ {'a': 1}.a }}{{ {1: 'x'}[1] }}{{ {1: 'x'}[1.0] }}{{ {true: 'x'}[1] }}",
     "11xxx"},
    {"  {{ i }}",
     "  "},
    {"a\n  {% if true %}\n  x\n  {% endif %}\nb",
     "a\n  x\nb"},
    {"a\n  {%- if true %}\n  x\n  {% endif -%}\nb",
     "a  x\nb"},
    {"a\n  {%+ if true %}\n  x\n  {% endif +%}\nb",
     "a\n    x\n\nb"},
    {"  {# c #}\nx",
     "x"},
    {"  {{ 'v' }}\nx",
     "  v\nx"},
    {"x  {% if true %}y{% endif %}  \n z",
     "x  y  \n z"},
    {"\t {% if true %} \n{% endif %}",
     " \n"},
    {"a {%- if true -%} b {%- endif -%} c",
     "abc"},
    {"a {{- 'b' -}} c",
     "abc"},
    {"line1\n{% for i in [1,2] %}\n  item {{ i }}\n{% endfor %}\nend\n",
     "line1\n  item 1\n  item 2\nend"},
    {"{% for i in [1,2] %}{{ i }}\n{% endfor %}",
     "1\n2\n"},
    {"a\r\nb\r\n{% if true %}\r\nc\r\n{% endif %}\r\n",
     "a\nb\nc\n"},
    {"trailing\n\n",
     "trailing\n"},
    {"{% raw %}\n  {{ x }}\n{% endraw %}\n",
     "\n  {{ x }}\n"},
    {"  {% raw %}x{% endraw %}  \ny",
     "x  \ny"},
    {"{% raw -%}   x   {%- endraw %}",
     "x"},
    {"{#- x -#}   y",
     "y"},
    {"a\n  {#- c #}\nb",
     "ab"},
    {"{% set x = 'a' %}\n\n   {{ x }}",
     "\n   a"},
    {"\xe3\x80\x80{% if true %}x{% endif %}",
     "x"},
    {"a\n\xe3\x80\x80 {% if true %}x{% endif %}",
     "a\nx"},
    {"x {%- if true %}\xe3\x80\x80\n y{% endif %}",
     "x\xe3\x80\x80\n y"},
    {"{{ '{{' }}{{ '}}' }}{{ {'a': {'b': 1}} }}",
     "{{}}{'a': {'b': 1}}"},
    {"{% if true %}{% endif %}\n\n",
     ""},
    {"{%if true%}x{%endif%}",
     "x"},
    {"{{'a'}}{{\"b\"}}",
     "ab"},
    {"{% set x = 5 -%}\n\n  {{ x }}",
     "5"},
    {"{%- macro m() -%}\n  body\n{%- endmacro -%}\n[{{ m() }}]",
     "[body]"},
    {"{% macro m() %}\n  body\n{% endmacro %}\n[{{ m() }}]",
     "[  body\n]"},
    {"x\n{%- for m in messages %}\n{{ m.role }}\n{%- endfor %}\n",
     "xuserassistant"},
    {"{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] | trim + '<|im_end|>' + '\\n' }}{% endfor %}",
     "<|im_start|>user\nHello  World<|im_end|>\n<|im_start|>assistant\na\nb<|im_end|>\n"},
    {"{{ messages[0]['content'] | trim | replace('o', '0') | upper }}",
     "HELL0  W0RLD"},
    {"{% if messages[0].role == 'user' and not (messages | length > 5) %}yes{% endif %}",
     "yes"},
    {"{% set content = messages[1].content %}{{ content.split('\\n')[-1] }}|{{ content.strip().split()[0] }}",
     "b |a"},
    {"{{ 'x' if messages else 'y' }}{{ 'a' if [] else 'b' }}",
     "xb"},
    {"{{ (1, 2) | tojson }}{{ 1e100 | tojson }}{{ 1.5e-7 | tojson }}",
     "[1, 2]1e+1001.5e-07"},
    {"{{ 123456789.123456789 }}{{ 5e-324 }}{{ 1.7976931348623157e308 }}{{ 0.1 }}{{ 1/7 }}{{ 2.0 ** 60 }}{{ 2 ** 62 }}",
     "123456789.123456795e-3241.7976931348623157e+3080.10.142857142857142851.152921504606847e+184611686018427387904"},
    {"{{ 3.0 // 2 }}{{ -3.5 // 2 }}{{ -3.5 % 2 }}{{ 3 % 2.5 }}{{ 7 // -2.0 }}",
     "1.0-2.00.50.5-4.0"},
    {"{{ 'Hello World'.swapcase() }}{{ '\xc3\x9f'.upper() }}{{ '\xc3\x89""COLE'.lower() }}{{ '\xc3\xa9lan vital'.title() }}{{ '\xc3\xa9lan' | capitalize }}",
     "hELLO wORLDSS\xc3\xa9""cole\xc3\x89lan Vital\xc3\x89lan"},
    {"{{ 'a-b c(d' | title }}{{ 'hello.world' | title }}{{ \"they're\" | title }}{{ \"they're\".title() }}",
     "A-B C(DHello.worldThey'reThey'Re"},
    {"{{ 'x'.center(5, '*') }}{{ 'x'.ljust(3, '-') }}{{ 'x'.rjust(3) }}{{ '-5'.zfill(4) }}{{ 'a=b=c'.partition('=') }}{{ 'a=b=c'.rpartition('=') }}",
     "**x**x--  x-005('a', '=', 'b=c')('a=b', '=', 'c')"},
    {"{{ 'abc'.removeprefix('a') }}{{ 'abc'.removesuffix('c') }}{{ 'abc'.index('c') }}",
     "bcab2"},
    {"{{ '   '.isspace() }}{{ 'aB'.islower() }}{{ 'AB1'.isupper() }}{{ ''.isdigit() }}",
     "TrueFalseTrueFalse"},
    {"{% for i in range(3) %}{% for j in range(2) %}{{ loop.index }}{{ loop.depth }}{% endfor %}{{ loop.index }};{% endfor %}",
     "11211;11212;11213;"},
    {"{% for x in [1,2,3] recursive %}{{ x }}{% endfor %}",
     "123"},
    {"{% for x in [[1,[2]],[3]] recursive %}({% if x is iterable %}{{ loop(x) }}{% else %}{{ x }}{{ loop.depth }}{% endif %}){% endfor %}",
     "((12)((23)))((32))"},
    {"{% for x in [1,1,2,2,1] %}{% if loop.changed(x) %}{{ x }}{% endif %}{% endfor %}",
     "121"},
    {"{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}{{ a }}",
     "3"},
    {"{% set x = 1 %}{% if true %}{% set x = 2 %}{% endif %}{{ x }}",
     "2"},
    {"{% macro m() %}{% set y = 5 %}{{ y }}{% endmacro %}{{ m() }}{{ y }}",
     "5"},
    {"{% set g = 1 %}{% macro m() %}{{ g }}{% endmacro %}{% set g = 2 %}{{ m() }}",
     "2"},
    {"{% macro outer() %}{% macro inner() %}I{% endmacro %}{{ inner() }}O{% endmacro %}{{ outer() }}",
     "IO"},
    {"{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(5) }}",
     "54321"},
    {"{% macro m(a, b) %}{{ a }}{{ b }}{% endmacro %}{{ m(b=1, a=2) }}",
     "21"},
    {"{% set l = [1,2] %}{% set l2 = l + [3] %}{{ l }}{{ l2 }}",
     "[1, 2][1, 2, 3]"},
    {"{{ [1,2,3] | select('>', 1) | list }}{{ ['a', 'B'] | map('lower') | join }}",
     "[2, 3]ab"},
    {"{{ [{'n': 'b'}, {'n': 'a'}] | sort(attribute='n') | map(attribute='n') | join }}",
     "ab"},
    {"{{ [{'n': 'b', 'm': 1}, {'n': 'a', 'm': 1}] | sort(attribute='m,n') | map(attribute='n') | join }}",
     "ab"},
    {"{{ [{'a': {'b': 5}}] | map(attribute='a.b') | list }}{{ [[1,2]] | map(attribute='1') | list }}",
     "[5][2]"},
    {"{{ {'a': 1} | dictsort(reverse=true) }}{{ {'B': 1, 'a': 2} | dictsort }}{{ {'B': 1, 'a': 2} | dictsort(true) }}",
     "[('a', 1)][('a', 2), ('B', 1)][('B', 1), ('a', 2)]"},
    {"{{ [3, 1, 2] | max }}{{ ['b', 'A', 'c'] | max }}{{ ['b', 'A', 'c'] | min(case_sensitive=true) }}{{ [] | max }}",
     "3cA"},
    {"{{ 'abc' | join('-') }}{{ [1, none, true] | join }}",
     "a-b-c1NoneTrue"},
    {"{{ messages | join(', ', attribute='role') }}",
     "user, assistant"},
    {"{{ 'abc' is sequence }}{{ {} is sequence }}{{ x is sequence }}{{ x is iterable }}{{ x is callable }}{{ range is callable }}{{ 'a' is callable }}",
     "TrueTrueTrueTrueTrueTrueFalse"},
    {"{{ loop is defined }}",
     "False"},
    {"{{ namespace }}",
     "<class 'jinja2.utils.Namespace'>"},
    {"{{ '%d items' % 3 }}{{ '%s' % [1,2] }}{{ '%s-%s' % (1, 2) }}{{ '%r' % 'x' }}{{ '%x' % 255 }}{{ '%5.1f|' % 2.25 }}{{ '%c' % 65 }}",
     "3 items[1, 2]1-2'x'ff  2.2|A"},
    {"{{ ('%200d' % 7) | length }}{{ ('%-150.3f|' % 2.5)[-6:] }}",   /* wider than any fixed buffer */
     "200     |"},
    {"{{ 'a' ~ [1] ~ {'k': 'v'} }}",
     "a[1]{'k': 'v'}"},
    {"{{ '\\u00e9\\n\\t\\\\' }}|{{ '\\q\\d' }}|{{ '\\x41' }}|{{ '\\101' }}|{{ \"\\\"\" }}",
     "\xc3\xa9\n\t\\|\\q\\d|A|A|\""},
    {"{{ messages.0.role }}",
     "user"},
    {"{% set x = [1,2,3] %}{{ x[1:] | length }}{{ x[:-1] }}{{ x[::-1] }}{{ x[::2] }}{{ x[-100:100] }}{{ x[2:0:-1] }}",
     "2[1, 2][3, 2, 1][1, 3][1, 2, 3][3, 2]"},
    {"{{ 'abc'[1:][0] }}{{ 'abc'[10] }}|{{ 'abc'[10] is defined }}",
     "b|False"},
    {"{{ none[1:] }}|",
     "|"},
    {"{{ {'a':1}['b'] }}|{{ {'a':1}[1] }}|{{ [1][7] }}",
     "||"},
    {"{{ (none).a }}{{ (1).a }}",
     ""},
    {"{{ messages[0].get('role') }}{{ messages[0].get('zz', 'dflt') }}",
     "userdflt"},
    {"{{ messages[0].keys() | list }}{{ messages[0].values() | list }}{{ messages[0] | length }}",
     "['role', 'content']['user', 'Hello  World']2"},
    {"{{ messages | map(attribute='role') | list | length }}",
     "2"},
    {"{% for a, b in messages[0].items() %}{{ a }}:{{ b }} {% endfor %}",
     "role:user content:Hello  World "},
    {"{% for a in [1] %}{% set a = 5 %}{{ a }}{% endfor %}",
     "5"},
    {"{{ range(3) }}",
     "range(0, 3)"},
    {"{{ 'The Title' | lower | replace(' ', '_') | center(13) }}",
     "  the_title  "},
    {"{% filter trim %}   spaced   {% endfilter %}|{% filter indent(2, true) %}a\nb{% endfilter %}",
     "spaced|  a\n  b"},
    {"{% set x | upper %}abc{% endset %}{{ x }}",
     "ABC"},
    {"{% set ns = namespace(items=[]) %}{% for i in range(3) %}{% set ns.items = ns.items + [i] %}{% endfor %}{{ ns.items }}",
     "[0, 1, 2]"},
    {"{% set ns = namespace(found=false) %}{% for m in messages %}{% if m.role == 'assistant' %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.found }}",
     "True"},
    {"{{ messages[0].content[:3] }}{{ messages[0].content[-3:] }}{{ (messages[0].content | length) }}",
     "Helrld12"},
    {"{{ messages|tojson(indent=2) }}",
     "[\n  {\n    \"role\": \"user\",\n    \"content\": \"Hello  World\"\n  },\n  {\n    \"role\": \"assistant\",\n    \"content\": \" a\\nb \"\n  }\n]"},
    {"{{ messages|tojson(separators=(',', ':')) }}",
     "[{\"role\":\"user\",\"content\":\"Hello  World\"},{\"role\":\"assistant\",\"content\":\" a\\nb \"}]"},
    {"{{ messages|tojson(ensure_ascii=true) }}{{ '\xc3\xa9\xf0\x9f\x98\x80' | tojson(ensure_ascii=true) }}",
     "[{\"role\": \"user\", \"content\": \"Hello  World\"}, {\"role\": \"assistant\", \"content\": \" a\\nb \"}]\"\\u00e9\\ud83d\\ude00\""},
    {"{{ '\xf0\x9f\x98\x80\xc3\xa9' | tojson }}{{ '\x7f\x1f' | tojson }}",
     "\"\xf0\x9f\x98\x80\xc3\xa9\"\"\x7f\\u001f\""},
    {"{{ 1 | tojson(indent='\\t') }}{{ [1] | tojson(indent='\\t') }}{{ [1,[2]] | tojson(indent=0) }}",
     "1[\n\t1\n][\n1,\n[\n2\n]\n]"},
    {"{{ {none: 1, true: 2, 1.5: 3} | tojson }}",
     "{\"null\": 1, \"true\": 2, \"1.5\": 3}"},
    {"{% macro m() %}{{ g }}{% endmacro %}{{ m() }}{% set g = 2 %}{{ m() }}",
     "2"},
    {"{% set g = 1 %}{% macro m() %}{{ g }}{% endmacro %}{% for i in [1] %}{% set g = 5 %}{{ m() }}{% endfor %}",
     "1"},
    {"{% for i in [1,2] %}{% macro m() %}{{ i }}{% endmacro %}{{ m() }}{% endfor %}",
     "12"},
    {"{% macro m() %}{{ x }}{% set x = 3 %}{{ x }}{% endmacro %}{% set x = 1 %}{{ m() }}",
     "13"},
    {"{{ x }}{% set x = 1 %}{{ x }}",
     "1"},
    {"{% for x in [1] %}{{ loop.index }}{% for y in [1,2] if loop is defined %}{{ y }}{% endfor %}{% endfor %}",
     "112"},
    {"{% set x = 1 %}{% for x in [5] %}{{ x }}{% endfor %}{{ x }}",
     "51"},
    {"{% for i in [1,2] %}{% if i == 1 %}{% set a = 'one' %}{% endif %}{{ a }}|{% endfor %}",
     "one||"},
    {"{% set x = 0 %}{% with %}{% set x = 1 %}{{ x }}{% endwith %}{{ x }}",
     "10"},
    {"{% set items = [1,2] %}{% for i in items %}{% set items = [9] %}{{ items }}{% endfor %}{{ items }}",
     "[9][9][1, 2]"},
    {"{% for i in range(2) %}{% set ns = namespace(c=i) %}{{ ns.c }}{% endfor %}",
     "01"},
    {"{% set ns = namespace(a=1) %}{% macro m() %}{% set ns.a = 5 %}{% endmacro %}{{ m() }}{{ ns.a }}",
     "5"},
    {"{% for a in [1] %}{% for b in [2] %}{{ a }}{{ b }}{% endfor %}{% endfor %}",
     "12"},
    {"{% if true %}{% set y = 3 %}{% endif %}{{ y }}",
     "3"},
    {"{% for i in [1] %}{% set y = 3 %}{% endfor %}{{ y }}",
     ""},
    {"{% macro m(caller=none) %}{{ caller }}{% endmacro %}{{ m() }}",
     "None"},
    {"{% macro m() %}{{ caller is defined }}{% endmacro %}{{ m() }}",
     "False"},
    {"{% macro m() %}{{ varargs | length }}{% endmacro %}{{ m(1,2,3) }}",
     "3"},
    {"{% set m = 1 %}{% macro m() %}x{% endmacro %}{{ m() }}",
     "x"},
    {"{% for i in [3,4] %}{{ loop.cycle('x') }}{{ loop.changed(i) }}{% endfor %}",
     "xTruexTrue"},
    {"{% for m in messages %}{% if loop.first %}F{% endif %}{% if loop.last %}L{% endif %}{% endfor %}",
     "FL"},
    {"{% for i in [] %}{% else %}{{ i }}{% endfor %}",
     ""},
    {"{% for i in [1] %}{% else %}no{% endfor %}",
     ""},
    {"{% set x = [1,2,3] %}{% for i in x if i > 1 %}{{ loop.index }}/{{ loop.length }}{% else %}none{% endfor %}",
     "1/22/2"},
    {"{% for i in [1,2,3] if i > 5 %}{{ i }}{% else %}none{% endfor %}",
     "none"},
    {"{{ (messages | selectattr('role', 'equalto', 'user') | list)[0].content }}",
     "Hello  World"},
    {"{{ messages | selectattr('content') | list | length }}{{ messages | rejectattr('content', 'none') | list | length }}",
     "22"},
    {"{{ messages | map(attribute='role') | unique | list }}{{ messages | map(attribute='role') | reverse | list }}",
     "['user', 'assistant']['assistant', 'user']"},
    {"{{ messages | groupby('role') | list }}",
     "[('assistant', [{'role': 'assistant', 'content': ' a\\nb '}]), ('user', [{'role': 'user', 'content': 'Hello  World'}])]"},
    {"{% set d = {'a': 1} %}{{ d.a }}{{ d['a'] }}{{ d.get('a') }}{{ d.items() | list }}{{ 'a' in d }}",
     "111[('a', 1)]True"},
    {"{{ ['a', 'b'] | join(attribute=0) }}",
     "ab"},
    {"{{ 1 if 2 if 0 else 3 }}{{ 'x' if true if false else 'y' }}",
     "3y"},
    {"{{ not 1 == 2 }}{{ not 1 in [1] }}{{ 1 not in [1] }}{{ not (1 in [1]) and true }}",
     "TrueFalseFalseFalse"},
    {"{{ 3 - 2 | abs }}{{ (3 - 5) | abs }}{{ -3 | abs }}",
     "123"},
    {"{{ [1,2] is iterable and [1] }}{{ 1 is number and 2 }}",
     "[1]2"},
    {"{{ 'a' 'b' }}{{ 'x' ~ 'y' ~ 'z' }}",
     "abxyz"},
    {"{{ {'a': 1, 'a': 2} }}{{ {1: 'a', 1.0: 'b', true: 'c'} }}",
     "{'a': 2}{1: 'c'}"},
    {"{{ (1, 2) + (3,) }}{{ [1] * 0 }}{{ 'ab' * -1 }}{{ 3 * 'ab' }}",
     "(1, 2, 3)[]ababab"},
    {"{{ 10 // 3 }}{{ 10 % 3 }}{{ -10 // 3 }}{{ -10 % 3 }}{{ 10.5 // 3 }}{{ 2 ** 0.5 }}{{ 4 ** 0.5 }}{{ 0 ** 0 }}",
     "31-423.01.41421356237309512.01"},
    {"{{ 1.0 == 1 }}{{ 1 is sameas 1 }}{{ 0.1 * 3 }}{{ 1e22 }}{{ 1e21 }}{{ 123e-20 }}{{ 1.5e300 * 1e10 }}{{ -1e400 }}",
     "TrueTrue0.300000000000000041e+221e+211.23e-18inf-inf"},
    {"{{ (1.5e300 * 1e300) | tojson }}{{ 1e400 is number }}",
     "InfinityTrue"},
    {"{{ 9223372036854775807 }}{{ -9223372036854775807 - 1 }}",
     "9223372036854775807-9223372036854775808"},
    {"{{ true + true }}{{ true * 3 }}{{ 1 + 1.5 }}{{ true / 2 }}{{ 7 // true }}",
     "232.50.57"},
    {"{{ [true, 1, 1.0] | unique | list }}{{ [1, true] | sum }}",
     "[True]2"},
    {"{{ 'abc' > 'abd' }}{{ 'B' < 'a' }}{{ '\xc3\xa9' > 'z' }}{{ (1, 2) < (1, 3) }}{{ [2] > [1, 5] }}",
     "FalseTrueTrueTrueTrue"},
    {"{{ none == none }}{{ none != 0 }}{{ x == x }}{{ x == none }}{{ undefined_a == undefined_b }}",
     "TrueTrueTrueFalseTrue"},
    {"{{ x | upper }}|{{ x | trim }}|{{ x | string }}|{{ x | list }}|{{ x | join }}|{{ x | default(5) }}|{{ x | first }}",
     "|||[]||5|"},
    {"{{ x | replace('a','b') }}",
     ""},
    {"{{ x | sort }}{{ x | unique | list }}{{ x | batch(2) | list }}{{ x | select | list }}{{ x | map('upper') | list }}",
     "[][][][][]"},
    {"{{ x | items | list }}{{ x | length }}{{ x | count }}{{ x | wordcount }}{{ x | capitalize }}{{ x | title }}{{ x | lower }}{{ x | center(3) }}",
     "[]000   "},
    {"{{ x | sum }}{{ x | min }}{{ x | max }}",
     "0"},
    {"{{ x | e }}{{ x | safe }}",
     ""},
    {"{{ x.__class__ }}{{ ''.__class__ }}",
     ""},
    {"{{ 2.0 is odd }}{{ 3.0 is odd }}{{ 4.5 is divisibleby 1.5 }}",
     "FalseTrueTrue"},
    {"{{ none | string | length }}{{ none | default('d') }}{{ none | d('d', true) }}",
     "4Noned"},
    {"{{ [none] | join(',') }}{{ [none, 1] | select | list }}",
     "None[1]"},
    {"{{ messages[0] | items | list }}",
     "[('role', 'user'), ('content', 'Hello  World')]"},
    {"{{ messages[0].content.split('  ') }}{{ messages[0].content.split(' ', -1) }}{{ messages[0].content.rsplit(maxsplit=1) }}",
     "['Hello', 'World']['Hello', '', 'World']['Hello', 'World']"},
    {"{{ 'a\\tb\\nc  d'.split() }}{{ '\\u3000a\\u3000'.split() }}{{ 'a\\u00a0b'.split() }}{{ 'a\\x1cb'.split() }}",
     "['a', 'b', 'c', 'd']['a']['a', 'b']['a', 'b']"},
    {"{{ '\\u3000x\\u3000' | trim }}|{{ '\\u00a0x' | trim }}|{{ '\\x1fx' | trim }}",
     "x|x|x"},
    {"{{ 'a\\x0bb\\x0cc\\x1cd\\x1de\\x1ef\\x85g\\u2028h\\u2029i'.splitlines() }}",
     "['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i']"},
    {"{{ 'x\\n\\ny\\n' | indent(2) }}|{{ '' | indent(2, true) }}|{{ '\\n' | indent(2, true, true) }}",
     "x\n\n  y\n|  |  \n  "},
    {"{{ '\xc3\xa9' | center(4, ) }}{{ 'ab'.center(5) }}|{{ 'ab'.center(6) }}|{{ 'abc'.center(6) }}|",
     " \xc3\xa9    ab |  ab  | abc  |"},
    {"{% for g in messages | groupby('role') %}{{ g.grouper }}={{ g.list | length }};{% endfor %}",
     "assistant=1;user=1;"},
    {"{% for k, items in [{'a':'X'},{'a':'x'},{'a':'y'},{'b':1}] | groupby('a', default='z') %}{{ k }}:{{ items|length }} {% endfor %}",
     "X:2 y:1 z:1 "},
    {"{{ [{'a':'X'},{'a':'x'}] | groupby('a', case_sensitive=true) }}",
     "[('X', [{'a': 'X'}]), ('x', [{'a': 'x'}])]"},
};

static const char *const refused_cases[] = {
    "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, 2) }}", /* TypeError */
    "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, b=2) }}", /* TypeError */
    "{{ [1].append(2) }}", /* SecurityError */
    "{{ {'a':1}.update({'b':2}) }}", /* SecurityError */
    "{{ x.y }}", /* UndefinedError */
    "{{ x + 1 }}", /* UndefinedError */
    "{{ 'a' + 1 }}", /* TypeError */
    "{{ 1 + 'a' }}", /* TypeError */
    "{{ 1 < 'a' }}", /* TypeError */
    "{% for x in none %}{% endfor %}", /* TypeError */
    "{{ raise_exception('custom message') }}", /* TemplateError */
    "{{ 1 / 0 }}", /* ZeroDivisionError */
    "{{ 1 in none }}", /* TypeError */
    "{{ 'x' | tojson }}{{ 1.0 | tojson }}{{ x | tojson }}", /* TypeError */
    "{{ 'hello  world foo' | wordcount }}{{ 'ab' | center(6) }}|{{ 'hello world' | truncate(8) }}|{{ 'hello world' | truncate(8, true) }}|{{ 'x' * 300 | truncate | length }}", /* TypeError */
    "{{ range(200000) | length }}", /* OverflowError */
    "{{ foo(1) }}", /* UndefinedError */
    "{{ 'abc'.nope() }}", /* UndefinedError */
    "{{ x|nofilter }}", /* TemplateAssertionError */
    "{% if x is nosuchtest %}{% endif %}", /* TemplateRuntimeError */
    "{% include 'x' %}", /* TypeError */
    "{% for %}", /* TemplateSyntaxError */
    "{% if true %}unclosed", /* TemplateSyntaxError */
    "{{ 'unclosed", /* TemplateSyntaxError */
    "{{ 1 + }}", /* TemplateSyntaxError */
    "{% endfor %}", /* TemplateSyntaxError */
    "{% break %}", /* SyntaxError */
    "{{ loop.index }}", /* UndefinedError */
    "{% set ns = namespace() %}{% set ns.a.b = 1 %}", /* TemplateSyntaxError */
    "{% set x = 1 %}{% set x.y = 2 %}", /* TemplateRuntimeError */
    "{{ messages|selectattr('role','eq','user')|length }}", /* TypeError */
    "{{ [1, 2] + [3] }}{{ (1,) + (2,) }}{{ [1] + (2,) }}", /* TypeError */
    "{{ 'a' < 1 }}", /* TypeError */
    "{{ x() }}", /* UndefinedError */
    "{{ 1() }}", /* TypeError */
    "{%- for i in range(3) -%}", /* TemplateSyntaxError */
    "{%- endfor %}", /* TemplateSyntaxError */
    "{{ x | tojson }}", /* TypeError */
    "{{ 'abc'.index('z') }}", /* ValueError */
    "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(a=1, a=2) }}", /* SyntaxError */
    "{{ [1, 'a'] | sort }}", /* TypeError */
    "{{ 1 | first }}", /* TypeError */
    "{{ 1 is divisibleby 0 }}", /* ZeroDivisionError */
    "{{ '%s %s' % (1,) }}", /* TypeError */
    "{{ '%s' % (1, 2) }}", /* TypeError */
    "{{ 0x1f }}{{ 0o17 }}{{ 0b101 }}{{ 1_000 }}{{ 1_0.5 }}{{ 1e3 }}{{ 1E-2 }}{{ .5 if false else 0 }}", /* TemplateSyntaxError */
    "{{ 007 }}", /* TemplateSyntaxError */
    "{{ x.0 }}{{ [5,6].1 }}", /* UndefinedError */
    "{{ [1,2][0:1:0] }}", /* ValueError */
    "{{ {'a':1}['b'].c }}", /* UndefinedError */
    "{{ [1][7].c }}", /* UndefinedError */
    "{{ none.a.b }}", /* UndefinedError */
    "{{ undefined_fn() }}", /* UndefinedError */
    "{{ messages[0].items() | length }}{{ messages | map(attribute='role') | length }}", /* TypeError */
    "{% for a, b in [[1,2,3]] %}{% endfor %}", /* ValueError */
    "{% for a, b in [[1]] %}{% endfor %}", /* ValueError */
    "{{ {(1,2): 3} | tojson }}", /* TypeError */
    "{{ [x] | tojson }}", /* TypeError */
    "{{ {'a': namespace()} | tojson }}", /* TypeError */
    "{{ m() }}{% macro m() %}x{% endmacro %}", /* UndefinedError */
    "{{ 1 ~ 2 + 3 }}{{ 'a' ~ 'b' | upper }}{{ -1 ~ 2 }}", /* TypeError */
    "{{ 2 * -3 }}{{ 2 - -3 }}{{ -(2) }}{{ +3 }}{{ - 'a' | length }}", /* TypeError */
    "{{ x < 1 }}", /* UndefinedError */
    "{{ x | int }}", /* UndefinedError */
    "{{ x | float }}", /* UndefinedError */
    "{{ x | abs }}", /* TypeError */
    "{{ x | indent }}", /* UndefinedError */
    "{{ x | dictsort }}", /* UndefinedError */
    "{{ x | tojson }}", /* TypeError */
    "{{ x | round }}", /* TypeError */
    "{{ ''.__class__.__mro__ }}", /* SecurityError */
    "{{ messages.__len__() }}", /* SecurityError */
    "{{ x is lower }}{{ x is upper }}{{ x is string }}{{ x is none }}{{ x is mapping }}{{ x is odd }}", /* UndefinedError */
    "{{ 'a' is odd }}", /* TypeError */
    "{{ none | length }}", /* TypeError */
    "{{ [{'a':1},{'a':'x'}] | groupby('a') }}", /* TypeError */
};

static void test_render_cases(void) {
    for (size_t i = 0; i < sizeof render_cases / sizeof render_cases[0]; i++) {
        result r = render(render_cases[i].src);
        CHECK(r.st == RM_OK && r.len == strlen(render_cases[i].want) && memcmp(r.text, render_cases[i].want, r.len) == 0,
              "case %zu: %s\n  want: %s\n  got:  %s", i, render_cases[i].src, render_cases[i].want,
              r.st == RM_OK ? r.text : r.err.msg);
        result_free(&r);
    }
    for (size_t i = 0; i < sizeof refused_cases / sizeof refused_cases[0]; i++) {
        result r = render(refused_cases[i]);
        CHECK(r.st != RM_OK, "rendered what Jinja refuses: %s -> %s", refused_cases[i], r.text ? r.text : "");
        CHECK(r.st == RM_OK || r.err.msg[0], "refusal without a message: %s", refused_cases[i]);
        result_free(&r);
    }
}

/* Errors name the line and the construct. */
static void test_errors(void) {
    static const struct {
        const char *src;
        rm_status st;
        const char *substr[2];
    } cases[] = {
        {"line1\n{{ x|nofilter }}", RM_ERR_TEMPLATE, {"template line 2", "No filter named 'nofilter'"}},
        {"a\n\n{% include 'x.jinja' %}", RM_ERR_TEMPLATE, {"template line 3", "'include' statement is not supported"}},
        {"{% extends 'base' %}", RM_ERR_TEMPLATE, {"line 1", "'extends'"}},
        {"{% import 'm' as m %}", RM_ERR_TEMPLATE, {"line 1", "'import'"}},
        {"{% from 'm' import x %}", RM_ERR_TEMPLATE, {"line 1", "'from'"}},
        {"{% block b %}{% endblock %}", RM_ERR_TEMPLATE, {"line 1", "'block'"}},
        {"{% for x in y %}\n\n", RM_ERR_TEMPLATE, {"Unexpected end of template", "'endfor'"}},
        {"ok\n{{ 1 + }}", RM_ERR_TEMPLATE, {"template line 2", "syntax error"}},
        {"{% frobnicate %}", RM_ERR_TEMPLATE, {"line 1", "unknown tag 'frobnicate'"}},
        {"{{ 'abc'.nope() }}", RM_ERR_TEMPLATE, {"UndefinedError", "'str object' has no attribute 'nope'"}},
        {"\n{% for m in none %}{% endfor %}", RM_ERR_TEMPLATE, {"template line 2", "'NoneType' object is not iterable"}},
        {"\n\n{{ [1] | join(',', 'a', 3) }}", RM_ERR_TEMPLATE, {"template line 3", "join takes at most 2"}},
        {"{{ 'a' + 1 }}", RM_ERR_TEMPLATE, {"TypeError", "can only concatenate str (not \"int\") to str"}},
        {"{{ [].append(1) }}", RM_ERR_TEMPLATE, {"SecurityError", "'append' of 'list' object is unsafe"}},
        {"{{ x.y }}", RM_ERR_TEMPLATE, {"UndefinedError", "'x' is undefined"}},
        {"{{ messages[0].zz.y }}", RM_ERR_TEMPLATE, {"UndefinedError", "'dict object' has no attribute 'zz'"}},
        {"{{ 1 is nosuch }}", RM_ERR_TEMPLATE, {"line 1", "No test named 'nosuch'"}},
        {"{% if true %}\n{{ x|nofilter }}{% endif %}", RM_ERR_TEMPLATE, {"template line 2", "No filter named 'nofilter' found"}},
        {"{{ 'a' | indent(x=1) }}", RM_ERR_TEMPLATE, {"indent", "unexpected keyword argument 'x'"}},
        {"{% for i in [1] %}{% macro m() %}{% break %}{% endmacro %}{% endfor %}", RM_ERR_TEMPLATE, {"line 1", "'break' outside loop"}},
        {"{{ '\\N{EM DASH}' }}", RM_ERR_TEMPLATE, {"line 1", "not supported"}},
        {"{{ 1 / 0 }}", RM_ERR_TEMPLATE, {"ZeroDivisionError", "division by zero"}},
        {"{{ x | random }}", RM_ERR_TEMPLATE, {"random", "not supported"}},
        {"{% set x = 1 %}{% set x.y = 2 %}", RM_ERR_TEMPLATE, {"line 1", "non-namespace object"}},
        {"{{ lipsum() }}", RM_ERR_TEMPLATE, {"lipsum", "not supported"}},
        {"{{ 'é\xff' }}", RM_ERR_TEMPLATE, {"invalid UTF-8", "byte 6"}},
        {"{# never closed", RM_ERR_TEMPLATE, {"line 1", "Missing end of comment tag"}},
        {"{% raw %} never closed", RM_ERR_TEMPLATE, {"line 1", "Missing end of raw directive"}},
        {"{{ 99999999999999999999 }}", RM_ERR_TEMPLATE, {"line 1", "64 bits"}},
        {"{{ 9223372036854775807 + 1 }}", RM_ERR_TEMPLATE, {"OverflowError", "64 bits"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        result r = render(cases[i].src);
        CHECK(r.st == cases[i].st, "%s: status %d, want %d (%s)", cases[i].src, r.st, cases[i].st, r.err.msg);
        for (int k = 0; k < 2; k++)
            CHECK(r.st != RM_OK && strstr(r.err.msg, cases[i].substr[k]), "%s: message '%s' lacks '%s'", cases[i].src,
                  r.err.msg, cases[i].substr[k]);
        result_free(&r);
    }
    /* raise_exception gives the template's own message, nothing added */
    result r = render("{% if messages[0].role == 'user' %}{{ raise_exception('Roles must alternate user/assistant') }}{% endif %}");
    CHECK(r.st == RM_ERR_TEMPLATE && strcmp(r.err.msg, "Roles must alternate user/assistant") == 0, "raise_exception: %s",
          r.err.msg);
    result_free(&r);
}

static rm_status render_limited(const char *src, rm_jinja_limits lim, rm_err *err) {
    rm_render_opts o = {0};
    o.limits = &lim;
    rm_template *t = NULL;
    char *out = NULL;
    rm_status st = rm_template_parse(&t, src, strlen(src), err);
    if (st == RM_OK) st = rm_template_render(t, default_msgs, 2, &o, &out, NULL, NULL, err);
    rm_mfree(out);
    rm_template_free(t);
    return st;
}

static char *repeat_str(const char *head, const char *unit, size_t n, const char *tail) {
    size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
    char *s = malloc(hl + ul * n + tl + 1);
    memcpy(s, head, hl);
    for (size_t i = 0; i < n; i++) memcpy(s + hl + i * ul, unit, ul);
    memcpy(s + hl + ul * n, tail, tl + 1);
    return s;
}

/* A hostile template ends in an error, never a hang or a crash. */
static void test_limits(void) {
    rm_err err;
    rm_jinja_limits small = {.max_steps = 200000};
    rm_status st = render_limited("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", small, &err);
    CHECK(st == RM_ERR_LIMIT && strstr(err.msg, "steps"), "nested loops: %d %s", st, err.msg);

    rm_jinja_limits dflt = {0};
    st = render_limited("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", dflt, &err);
    CHECK(st == RM_ERR_LIMIT && strstr(err.msg, "macro calls nested more than 200"), "recursion: %d %s", st, err.msg);
    rm_jinja_limits shallow = {.max_depth = 5};
    st = render_limited("{% macro f(n) %}{% if n %}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(10) }}", shallow, &err);
    CHECK(st == RM_ERR_LIMIT, "max_depth 5: %d %s", st, err.msg);
    st = render_limited("{% macro f(n) %}{% if n %}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(4) }}", shallow, &err);
    CHECK(st == RM_OK, "max_depth 5, depth 4: %d %s", st, err.msg);

    rm_jinja_limits out_1m = {.max_output = 1 << 20};
    st = render_limited("{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}", out_1m, &err);
    CHECK(st == RM_ERR_LIMIT && strstr(err.msg, "output bound"), "output: %d %s", st, err.msg);
    st = render_limited("{{ 'x' * 100000000000 }}", dflt, &err);
    CHECK(st == RM_ERR_LIMIT, "huge repeat: %d %s", st, err.msg);
    st = render_limited("{% set ns = namespace(s='ab') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", dflt, &err);
    CHECK(st == RM_ERR_LIMIT, "doubling string: %d %s", st, err.msg);
    st = render_limited("{% set ns = namespace(s='') %}{% for i in range(100000) %}{% for j in range(100) %}"
                        "{% set ns.s = ns.s ~ 'xxxxxxxxxxxxxxxx' %}{% endfor %}{% endfor %}", dflt, &err);
    CHECK(st == RM_ERR_LIMIT, "quadratic string building: %d %s", st, err.msg);
    st = render_limited("{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = ns.l + [ns.l] %}{% endfor %}",
                        dflt, &err);
    CHECK(st == RM_ERR_LIMIT, "quadratic list building: %d %s", st, err.msg);
    rm_jinja_limits mem = {.max_memory = 1 << 20};
    st = render_limited("{% set ns = namespace(l=[]) %}{% for i in range(50000) %}{% set ns.l = ns.l + [i] %}{% endfor %}",
                        mem, &err);
    CHECK(st == RM_ERR_LIMIT && strstr(err.msg, "memory"), "memory bound: %d %s", st, err.msg);
    st = render_limited("{{ range(100001) | length }}", dflt, &err);
    CHECK(st == RM_ERR_TEMPLATE && strstr(err.msg, "MAX_RANGE"), "range: %d %s", st, err.msg);

    /* deep data: printing refuses past the nesting bound; freeing is iterative */
    st = render_limited("{% set ns = namespace(x=[]) %}{% for i in range(20000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x }}",
                        dflt, &err);
    CHECK(st == RM_ERR_LIMIT && strstr(err.msg, "nested"), "deep list: %d %s", st, err.msg);
    st = render_limited("{% set ns = namespace(x=[]) %}{% for i in range(20000) %}{% set ns.x = [ns.x] %}{% endfor %}ok",
                        dflt, &err);
    CHECK(st == RM_OK, "deep list freed: %d %s", st, err.msg);
    /* cycles (a namespace holding itself, macros and their scope) are swept */
    st = render_limited("{% set ns = namespace() %}{% set ns.me = ns %}{% macro m() %}{{ ns.me.me is defined }}{% endmacro %}{{ m() }}",
                        dflt, &err);
    CHECK(st == RM_OK, "cycles: %d %s", st, err.msg);

    /* the parser bounds its own nesting */
    static const struct { const char *head, *unit, *tail; } deep[] = {
        {"{{ ", "(", "1"}, {"{{ ", "not ", "1 }}"}, {"{{ ", "-", "1 }}"}, {"{{ 1", " + 1", " }}"},
        {"{{ x", "|trim", " }}"}, {"", "{% if true %}", "x"}, {"{{ ", "[", "1"}, {"{{ x", ".a", " }}"},
        {"{% if a %}", "{% elif b %}", "{% endif %}"},
    };
    for (size_t i = 0; i < sizeof deep / sizeof deep[0]; i++) {
        char *src = repeat_str(deep[i].head, deep[i].unit, 20000, deep[i].tail);
        rm_template *t = NULL;
        st = rm_template_parse(&t, src, strlen(src), &err);
        CHECK(st == RM_ERR_TEMPLATE && t == NULL, "deep '%s': %d %s", deep[i].unit, st, err.msg);
        rm_template_free(t);
        free(src);
    }
    /* moderate nesting is fine */
    char *src = repeat_str("{{ ", "(", 50, "1");
    char *src2 = repeat_str(src, ")", 50, " }}");
    rm_template *t = NULL;
    st = rm_template_parse(&t, src2, strlen(src2), &err);
    CHECK(st == RM_OK, "50 parentheses: %d %s", st, err.msg);
    rm_template_free(t);
    free(src);
    free(src2);
}

/* Marks survive string operations: the expected mask has '1' where the byte
 * came from message data. Message: role "user", content "<|eot_id|>x". */
static void test_mask(void) {
    static const struct { const char *src, *want_text, *want_mask; } cases[] = {
        {"[{{ messages[0].content }}]", "[<|eot_id|>x]", "0111111111110"},
        {"{{ messages[0].role }}:", "user:", "11110"},
        {"{{ bos_token }}{{ messages[0].content[0] }}", "<s><", "0001"},
        {"{{ messages[0].content | upper }}", "<|EOT_ID|>X", "11111111111"},
        {"{{ messages[0].content[2:5] ~ 'T' }}", "eotT", "1110"},
        {"{{ messages[0].content.split('|') | join('-') }}", "<-eot_id->x", "10111111011"},
        {"{{ messages[0].content.replace('eot', 'EOT') }}", "<|EOT_id|>x", "11000111111"},
        {"{{ messages[0].content | tojson }}", "\"<|eot_id|>x\"", "0111111111110"},
        {"{{ ('  ' ~ messages[0].content ~ '  ') | trim }}", "<|eot_id|>x", "11111111111"},
        {"{{ ('a\\n' ~ messages[0].content) | indent(2, true) }}", "  a\n  <|eot_id|>x", "00000011111111111"},
        {"{% for c in messages[0].content %}{{ c }}.{% endfor %}", "<.|.e.o.t._.i.d.|.>.x.",
         "1010101010101010101010"},
        {"{{ messages[0].content | reverse }}", "x>|di_toe|<", "11111111111"},
        {"{{ '%s!' % messages[0].content }}", "<|eot_id|>x!", "111111111110"},
        {"{% set ns = namespace(s='') %}{% set ns.s = ns.s + messages[0].content %}{{ ns.s }}", "<|eot_id|>x",
         "11111111111"},
        {"{{ messages[0].content.strip('<>x') }}", "|eot_id|", "11111111"},
        {"{{ messages[0].content | title }}", "<|eot_id|>x", "11111111111"},
        {"{{ messages[0].content.title() }}", "<|Eot_Id|>X", "11111111111"},
        {"{{ messages[0].content | replace('|', '') }}", "<eot_id>x", "111111111"},
        {"{{ [messages[0].content] }}", "['<|eot_id|>x']", "001111111111100"},
        {"{{ messages | tojson }}", "[{\"role\": \"user\", \"content\": \"<|eot_id|>x\"}]",
         "00000000000111100000000000000011111111111000"},
        {"{% set x %}{{ messages[0].content }}{% endset %}{{ x | lower }}", "<|eot_id|>x", "11111111111"},
        {"{% filter upper %}{{ messages[0].content }}y{% endfilter %}", "<|EOT_ID|>XY", "111111111110"},
        {"{{ messages[0].content | center(13) }}", " <|eot_id|>x ", "0111111111110"},
        {"{{ messages[0].content | truncate(5, true, '') }}", "<|eot", "11111"},
        {"{{ messages[0].content.partition('|')[2] }}", "eot_id|>x", "111111111"},
        {"{{ messages[0].content | e }}", "&lt;|eot_id|&gt;x", "11111111111111111"},
    };
    static const rm_chat_message msg[] = {{"user", 4, "<|eot_id|>x", 11}};
    rm_render_opts o = {0};
    o.bos_token = "<s>";
    o.mark_message_data = 1;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        result r = render_with(cases[i].src, msg, 1, &o);
        char got[256] = "";
        for (size_t k = 0; r.st == RM_OK && k < r.len && k < sizeof got - 1; k++) got[k] = r.mask[k] ? '1' : '0';
        CHECK(r.st == RM_OK && strcmp(r.text, cases[i].want_text) == 0 && strcmp(got, cases[i].want_mask) == 0,
              "mask %s: text '%s' mask %s, want '%s' %s (%s)", cases[i].src, r.text ? r.text : "", got,
              cases[i].want_text, cases[i].want_mask, r.err.msg);
        result_free(&r);
    }
    /* marking off: the mask is all zero */
    o.mark_message_data = 0;
    result r = render_with("{{ messages[0].content }}", msg, 1, &o);
    int zero = r.st == RM_OK;
    for (size_t k = 0; zero && k < r.len; k++) zero &= r.mask[k] == 0;
    CHECK(zero, "unmarked render has a mark");
    result_free(&r);
}

/* JSON variables: messages with any keys, tools, extra variables. */
static void test_json(void) {
    rm_global_init();
    const char *src =
        "{% for m in messages %}{{ m.role }}:{{ m.content }}{% if m.tool_calls %}{{ m.tool_calls | tojson }}{% endif %}"
        "{% if m.reasoning_content is defined %}<think>{{ m.reasoning_content }}</think>{% endif %};{% endfor %}"
        "{{ tools | length if tools else 'no tools' }}|{{ enable_thinking }}|{{ bos_token }}|{{ 1.0 }}{{ n }}{{ nothing }}";
    const char *vars =
        "{\"messages\": [{\"role\": \"assistant\", \"content\": null, \"reasoning_content\": \"hm\","
        " \"tool_calls\": [{\"name\": \"f\", \"arguments\": {\"z\": 1, \"a\": 2.0}}]}],"
        " \"tools\": [{\"name\": \"f\"}, {\"name\": \"g\"}], \"enable_thinking\": false, \"n\": 3, \"unused\": 1}";
    json_error_t je;
    json_t *j = json_loads(vars, 0, &je);
    rm_template *t = NULL;
    rm_err err;
    char *out = NULL;
    rm_render_opts o = {0};
    o.bos_token = "<B>";
    CHECK(j && rm_template_parse(&t, src, strlen(src), &err) == RM_OK, "setup: %s", err.msg);
    rm_status st = rm_template_render_json(t, j, &o, &out, NULL, NULL, &err);
    const char *want = "assistant:None[{\"name\": \"f\", \"arguments\": {\"z\": 1, \"a\": 2.0}}]<think>hm</think>;2|False|<B>|1.03";
    CHECK(st == RM_OK && strcmp(out, want) == 0, "json vars: %s", st == RM_OK ? out : err.msg);
    rm_mfree(out);
    /* without tools: None, as transformers passes it */
    json_object_del(j, "tools");
    st = rm_template_render_json(t, j, &o, &out, NULL, NULL, &err);
    CHECK(st == RM_OK && strstr(out, "no tools|"), "json without tools: %s", st == RM_OK ? out : err.msg);
    rm_mfree(out);
    json_t *arr = json_array();
    CHECK(rm_template_render_json(t, arr, &o, &out, NULL, NULL, &err) == RM_ERR_INVALID_ARG, "not an object");
    json_decref(arr);
    json_decref(j);
    rm_template_free(t);

    /* marks in JSON mode: string values inside messages, never their keys */
    const char *src2 = "{{ messages[0] | tojson }}{{ messages[0].content }}{{ extra }}";
    json_t *j2 = json_loads("{\"messages\": [{\"role\": \"user\", \"content\": \"ab\"}], \"extra\": \"zz\"}", 0, &je);
    uint8_t *mask = NULL;
    size_t len = 0;
    o.mark_message_data = 1;
    CHECK(rm_template_parse(&t, src2, strlen(src2), &err) == RM_OK, "parse: %s", err.msg);
    st = rm_template_render_json(t, j2, &o, &out, &len, &mask, &err);
    char got[128] = "";
    for (size_t k = 0; st == RM_OK && k < len && k < sizeof got - 1; k++) got[k] = mask[k] ? '1' : '0';
    CHECK(st == RM_OK && strcmp(out, "{\"role\": \"user\", \"content\": \"ab\"}abzz") == 0 &&
              strcmp(got, "0000000000111100000000000000011001100") == 0,
          "json marks: %s %s", st == RM_OK ? out : err.msg, got);
    rm_mfree(out);
    rm_mfree(mask);
    json_decref(j2);
    rm_template_free(t);
}

static void test_strftime(void) {
    rm_render_opts o = {0};
    o.now = "2026-11-26T09:30:05";
    result r = render_with("{{ strftime_now('%d %b %Y %H:%M:%S %A %j') }}", NULL, 0, &o);
    CHECK(r.st == RM_OK && strcmp(r.text, "26 Nov 2026 09:30:05 Thursday 330") == 0, "strftime: %s", r.text ? r.text : r.err.msg);
    result_free(&r);
    o.now = NULL;
    r = render_with("{{ strftime_now('%Y') | int > 2000 }}", NULL, 0, &o);
    CHECK(r.st == RM_OK && strcmp(r.text, "True") == 0, "real clock: %s", r.text ? r.text : r.err.msg);
    result_free(&r);
}

/* One template, many threads. */
typedef struct thread_arg {
    const rm_template *t;
    const char *want;
    int bad;
} thread_arg;

static void *render_many(void *p) {
    thread_arg *a = p;
    rm_render_opts o = {0};
    o.bos_token = "<s>";
    o.mark_message_data = 1;
    for (int i = 0; i < 300; i++) {
        char *out = NULL;
        uint8_t *mask = NULL;
        rm_err err;
        if (rm_template_render(a->t, default_msgs, 2, &o, &out, NULL, &mask, &err) != RM_OK || strcmp(out, a->want) != 0)
            a->bad++;
        rm_mfree(out);
        rm_mfree(mask);
    }
    return NULL;
}

static void test_threads(void) {
    const char *src = "{% macro fmt(m) %}<{{ m.role | upper }}>{{ m.content | trim }}{% endmacro %}{{ bos_token }}"
                      "{% for m in messages %}{{ fmt(m) }}{{ loop.index }}{% endfor %}{{ messages | tojson }}";
    rm_template *t = NULL;
    rm_err err;
    CHECK(rm_template_parse(&t, src, strlen(src), &err) == RM_OK, "parse: %s", err.msg);
    const char *want = "<s><USER>Hello  World1<ASSISTANT>a\nb2[{\"role\": \"user\", \"content\": \"Hello  World\"}, "
                       "{\"role\": \"assistant\", \"content\": \" a\\nb \"}]";
    thread_arg args[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thread_arg){t, want, 0};
        pthread_create(&th[i], NULL, render_many, &args[i]);
    }
    int bad = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        bad += args[i].bad;
    }
    CHECK(bad == 0, "%d renders differed across threads", bad);
    rm_template_free(t);
}

/* Every allocation failure is reported (RM_ERR_NOMEM), never a crash. */
static void test_alloc_failures(void) {
    const char *src = "{%- set ns = namespace(n=0) -%}{% macro m(x, y='d') %}[{{ x | upper }}{{ y }}]{% endmacro %}"
                      "{% for msg in messages if msg.role != 'z' %}{{ m(msg.content.split()[0]) }}{% set ns.n = ns.n + 1 %}"
                      "{{ loop.index }}{% endfor %}{{ messages | tojson(indent=2) }}{{ ns.n }}{{ range(3) | list }}";
    rm_render_opts o = {0};
    o.mark_message_data = 1;
    uint64_t before = rm_alloc_count();
    result ok = render_with(src, default_msgs, 2, &o);
    uint64_t total = rm_alloc_count() - before;
    CHECK(ok.st == RM_OK, "baseline: %s", ok.err.msg);
    int bad = 0;
    for (uint64_t n = 0; n < total + 5; n++) {
        rm_alloc_fail_after((int64_t)n);
        result r = render_with(src, default_msgs, 2, &o);
        rm_alloc_fail_after(-1);
        if (r.st == RM_OK) bad += strcmp(r.text, ok.text) != 0;
        else if (r.st != RM_ERR_NOMEM) {
            bad++;
            fprintf(stderr, "allocation %llu failed: status %d %s\n", (unsigned long long)n, r.st, r.err.msg);
        }
        result_free(&r);
    }
    CHECK(bad == 0, "%d of %llu allocation failures misreported", bad, (unsigned long long)total);
    result_free(&ok);
}

int main(void) {
    test_render_cases();
    test_errors();
    test_limits();
    test_mask();
    test_json();
    test_strftime();
    test_threads();
    test_alloc_failures();
    return test_summary("test_jinja");
}
