"""The paper's 20 code concepts.

Each concept is a pattern over source text (Python, C, JavaScript, Java shapes) labelling the
characters that carry the concept: the keyword and name of a definition, the name of a called
function, the operator of an assignment, and so on. Fixed vs paper:

- fixed: a match overlapping a string literal or comment does not count (``for`` in a comment
  is not a loop); string literals and comment markers come from the lexer in ``code_lex``;
- paper: the same patterns on the raw text, looking only at the last 300 characters of each
  document (``Window("last", 300)``), as the paper did.
"""

from __future__ import annotations

import re

from moelens.data.concepts import code_lex
from moelens.data.concepts.labelling import outside, regex_spans
from moelens.data.concepts.registry import Span, Window, define

GROUP = "code"
PAPER_WINDOW = Window("last", 300)

_KEYWORDS = ("if elif else for while do switch case default break continue return goto try "
             "except finally catch throw raise yield pass def class function func fn fun lambda "
             "import from with as in is not and or new delete sizeof typeof struct union enum "
             "await async assert del global nonlocal print").split()
_NOT_KEYWORD = r"(?!(?:" + "|".join(_KEYWORDS) + r")\b)"
_IDENT = r"[A-Za-z_]\w*"

# name -> (description, pattern, group, flags)
PATTERNS: dict[str, tuple[str, str, int, int]] = {
    "function_def": ("a function definition: keyword and name, or a C-style definition's name",
                     r"\b(?:def|function|func|fn|fun)[ \t]+" + _IDENT
                     # C-like: type words and separators are disjoint classes, so the match
                     # cannot backtrack exponentially; parameters hold no nested parentheses
                     + r"|^[ \t]*(?:[A-Za-z_][\w:]*(?:<[^<>\n]*>)?[ \t*&]+)+(" + _NOT_KEYWORD
                     + _IDENT + r")[ \t]*\([^;{}()]*\)[ \t\n]*(?:const[ \t]*)?\{", 0, re.M),
    "function_call": ("the name of a called function (not a method, not a definition)",
                      r"(?<![\w.>])(?<!def )(?<!function )(?<!class )(" + _NOT_KEYWORD + _IDENT
                      + r")[ \t]*\(", 1, 0),
    "assignment": ("an assignment operator (=, +=, :=, ...)",
                   r"(?<![=!<>])(?:<<|>>|\*\*|//|[-+*/%&|^:@])?=(?![=>])", 0, 0),
    "class_def": ("a class, struct, interface or enum definition: keyword and name",
                  r"\b(?:class|struct|interface|enum)[ \t]+" + _IDENT, 0, 0),
    "import": ("an import statement or #include line",
               r"^[ \t]*(?:import[ \t]+\S.*|from[ \t]+[\w.]+[ \t]+import\b.*|#[ \t]*include\b.*"
               r"|using[ \t]+[\w.:]+;|use[ \t]+[\w:]+.*;)$|\brequire\([^)]*\)", 0, re.M),
    "control_flow_keyword": ("a control-flow keyword",
                             r"\b(?:if|elif|else|for|while|do|switch|case|break|continue|return"
                             r"|goto|try|except|finally|catch|throw|raise|yield|pass)\b", 0, 0),
    "loop": ("a loop keyword", r"\b(?:for|while|do|foreach)\b", 0, 0),
    "conditional": ("a conditional keyword", r"\b(?:if|elif|else|switch|case)\b", 0, 0),
    "exception_handling": ("an exception-handling keyword",
                           r"\b(?:try|except|finally|catch|throw|throws|raise)\b", 0, 0),
    "method_call": ("a method call: the dot or arrow and the method name",
                    r"(?:\.|->)[ \t]*" + _IDENT + r"(?=[ \t]*\()", 0, 0),
    "lambda_arrow": ("lambda keyword, => arrow, or -> after a parameter list",
                     r"\blambda\b|=>|(?<=\))->|(?<=\)[ \t])->", 0, 0),
    "operator": ("an arithmetic, comparison, logical or bitwise operator",
                 r"==|!=|<=|>=|&&|\|\||<<|>>|\*\*|//|(?<![-=])>(?!=)|<(?!=)|[-+*/%!&|^~](?![=>])",
                 0, 0),
    "all_caps_constant": ("an ALL_CAPS constant name",
                          r"\b(?=[A-Z0-9_]*[A-Z][A-Z0-9_]*[A-Z0-9_]\b)[A-Z_][A-Z0-9_]+\b", 0, 0),
    "boolean_literal": ("a boolean literal", r"\b(?:True|False|true|false)\b", 0, 0),
    "null_literal": ("a null literal", r"\b(?:None|null|NULL|nil|nullptr|undefined)\b", 0, 0),
    "decorator": ("a decorator or annotation at the start of a line",
                  r"^[ \t]*(@[A-Za-z_][\w.]*)", 1, re.M),
    "async_await": ("async or await", r"\b(?:async|await)\b", 0, 0),
}
_COMPILED = {k: re.compile(p, f) for k, (_, p, _, f) in PATTERNS.items()}


def _pattern_spans(name: str, text: str) -> list[Span]:
    return regex_spans(_COMPILED[name], text, PATTERNS[name][2])


def _function_def(text: str) -> list[Span]:
    """Keyword + name (``def f``) or, for C-like definitions, the function name (group 1)."""
    out = []
    for m in _COMPILED["function_def"].finditer(text):
        span = m.span(1) if m.group(1) else m.span()
        out.append(span)
    return out


def _function_call(text: str) -> list[Span]:
    """Called names, minus the names of C-style definitions (``int add(int a) {``)."""
    defined = set(_function_def(text))
    return [s for s in _pattern_spans("function_call", text) if s not in defined]


def _raw(name: str):
    if name == "function_def":
        return _function_def
    if name == "function_call":
        return _function_call
    return lambda text: _pattern_spans(name, text)


def _code_only(name: str):
    raw = _raw(name)

    def label(text: str) -> list[Span]:
        lexed = code_lex.lex(text)
        skip = lexed.literals if name != "import" else sorted(lexed.strings + lexed.comments)
        return outside(raw(text), skip)

    return label


def string_literal(text: str) -> list[Span]:
    return list(code_lex.lex(text).strings)


def comment_marker(text: str) -> list[Span]:
    return list(code_lex.lex(text).markers)


def _array_literal(text: str) -> list[Span]:
    """A bracketed list literal (balanced), not an index: ``[`` after no name, ``)`` or ``]``."""
    out, stack = [], []
    for i, c in enumerate(text):
        if c == "[":
            j = i - 1
            while j >= 0 and text[j] in " \t":
                j -= 1
            stack.append((i, j < 0 or not (text[j].isalnum() or text[j] in "_)]}\"'")))
        elif c == "]" and stack:
            start, literal = stack.pop()
            if literal:
                out.append((start, i + 1))
    return out


def _array_code_only(text: str) -> list[Span]:
    literals = code_lex.lex(text).literals
    return outside(_array_literal(text), literals)


_ORDER = ["function_def", "function_call", "assignment", "class_def", "import", "comment_marker",
          "string_literal", "control_flow_keyword", "loop", "conditional", "exception_handling",
          "array_literal", "method_call", "lambda_arrow", "operator", "all_caps_constant",
          "boolean_literal", "null_literal", "decorator", "async_await"]

for _name in _ORDER:
    if _name == "string_literal":
        define(GROUP, _name, "a string literal, quotes included", string_literal,
               paper_window=PAPER_WINDOW)
    elif _name == "comment_marker":
        define(GROUP, _name, "a comment marker (#, //, /*, */)", comment_marker,
               paper_window=PAPER_WINDOW)
    elif _name == "array_literal":
        define(GROUP, _name, "a bracketed array/list literal", _array_code_only,
               paper=_array_literal, paper_window=PAPER_WINDOW)
    else:
        define(GROUP, _name, PATTERNS[_name][0], _code_only(_name), paper=_raw(_name),
               paper_window=PAPER_WINDOW)
