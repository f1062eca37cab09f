"""Code concepts, hand-checked spans on a Python and a C snippet; literals excluded when fixed."""

from __future__ import annotations

import pytest

from moelens.data.concepts import get_concept, list_concepts

PY = '''import os
from typing import List
MAX_SIZE = 10

@dataclass
class Foo(Base):
    def run(self, x=None):
        # loop over items for real
        for i in range(len(x)):
            if x[i] is True and y != 2:
                self.log("for while", i)
        items = [1, [2, 3]]
        f = lambda a: a // 2
        try:
            await go()
        except ValueError:
            raise
'''

C = '''#include <stdio.h>
/* a comment for you */
static int add(int a, int b)
{
    if (a >= b) return a->next; // while here
    x += 1;
    return NULL;
}
'''

EXPECTED = {
    "function_def": (["def run"], ["add"]),
    "function_call": (["range", "len", "go"], []),
    "assignment": (["=", "=", "=", "="], ["+="]),
    "class_def": (["class Foo"], []),
    "import": (["import os", "from typing import List"], ["#include <stdio.h>"]),
    "comment_marker": (["#"], ["/*", "*/", "//"]),
    "string_literal": (['"for while"'], []),
    "control_flow_keyword": (["for", "if", "try", "except", "raise"], ["if", "return", "return"]),
    "loop": (["for"], []),
    "conditional": (["if"], ["if"]),
    "exception_handling": (["try", "except", "raise"], []),
    "array_literal": (["[1, [2, 3]]", "[2, 3]"], []),
    "method_call": ([".log"], []),
    "lambda_arrow": (["lambda"], []),
    "operator": (["!=", "//"], [">="]),
    "all_caps_constant": (["MAX_SIZE"], ["NULL"]),
    "boolean_literal": (["True"], []),
    "null_literal": (["None"], ["NULL"]),
    "decorator": (["@dataclass"], []),
    "async_await": (["await"], []),
}


def spans(name, text, variant="fixed"):
    return [text[s:e] for s, e in get_concept(name, variant).label(text)]


def test_every_code_concept_is_checked():
    assert set(EXPECTED) == {c.name for c in list_concepts("code")}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_code_concept_spans(name):
    py, c = EXPECTED[name]
    assert spans(name, PY) == py
    assert spans(name, C) == c


def test_fixed_ignores_keywords_in_comments_and_strings_paper_does_not():
    assert spans("loop", PY, "paper") == ["for", "for", "for", "while"]
    assert spans("loop", C, "paper") == ["for", "while"]


def test_arrow_after_parameter_list_only():
    js = "const f = (a, b) => a + b; g = (x) -> x; p->next;"
    assert spans("lambda_arrow", js) == ["=>", "->"]


def test_paper_window_last_300_characters():
    text = "for x in y:\n    pass\n" + "z = 1\n" * 60
    assert spans("loop", text) == ["for"]
    assert spans("loop", text, "paper") == []
    assert get_concept("loop", "paper").window_span(text) == (len(text) - 300, len(text))


def test_long_declarator_lines_do_not_backtrack_exponentially():
    # used to hang: overlapping character classes in the C definition pattern
    line = "static " + "unsigned * & " * 40 + "name(int a;\n"
    assert spans("function_def", line * 3) == []
    assert spans("function_def", "unsigned long * make(int a)\n{\n}") == ["make"]
