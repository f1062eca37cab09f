"""Every prompt moelens sends to a language model, and the parsers of their answers.

Two explainer prompts: the expert-level paper's (snippets with the expert's routed tokens marked,
the top tokens' scores and the expert's promoted tokens; one hypothesis of 3-12 words, as JSON)
and a delphi-style neuron prompt (highlighted tokens with their activation on a 0-10 scale; a
concise explanation, as JSON). Judge prompts: detection, fuzzing, binary (the paper's scorer),
intruder and simulation. The wording is moelens's own.

Marked tokens are written ``<<like this>>`` (adjacent marked tokens merged). Activations shown
to a model are integers 0-10: ceil(10 · a / max), clamped, with ``max`` the unit's largest
activation in the explainer set.

Every parser returns ``None`` on an unusable answer; the caller records a failure (never a
guess, never a 0 or a 1).
"""

from __future__ import annotations

import json
import math
import re

from moelens.analysis.autointerp.corpus import Window

OPEN, CLOSE = "<<", ">>"


def scale(acts: list[float], top: float) -> list[int]:
    """Activations as integers 0..10 relative to ``top``."""
    if top <= 0:
        return [0 for _ in acts]
    return [min(10, max(0, math.ceil(10 * a / top))) for a in acts]


def marked(window: Window, indices: list[int] | None) -> str:
    """The window's text with the tokens at ``indices`` wrapped in << >>."""
    chosen = set(indices or [])
    out, inside = [], False
    for i, piece in enumerate(window.tokens):
        if i in chosen and not inside:
            lead = piece[: len(piece) - len(piece.lstrip())] if piece.strip() else ""
            out.append(lead + OPEN + piece[len(lead):])
            inside = True
        elif i not in chosen and inside:
            out.append(CLOSE + piece)
            inside = False
        else:
            out.append(piece)
    if inside:
        out.append(CLOSE)
    return "".join(out).replace("\n", "\\n")


def plain(window: Window) -> str:
    return window.text.replace("\n", "\\n")


# ------------------------------------------------------------------ explainers

NEURON_SYSTEM = (
    "You study one unit of a neural language model. You will see text excerpts in which the tokens "
    "where the unit is active are wrapped in << >>, followed by those tokens with the unit's "
    "activation on a scale of 0 to 10. Find what the marked tokens have in common, and what in "
    "their context makes the unit fire. Be concise and concrete: name tokens, token kinds or "
    "contexts. Give one explanation only, no alternatives. Reply with JSON only: "
    '{"explanation": "<a short phrase>"}'
)
NEURON_SHOT_USER = (
    "Excerpt 1: the results (see <<Table>> 2) show\nActive tokens: Table (9)\n\n"
    "Excerpt 2: as listed in <<Figure>> 4, the\nActive tokens: Figure (10)\n\n"
    "Excerpt 3: compare <<Section>> 3.1 for\nActive tokens: Section (6)"
)
NEURON_SHOT_ANSWER = '{"explanation": "the word naming a numbered part of a paper (Table, Figure, Section) before its number"}'

EXPERT_SYSTEM = (
    "You analyse one expert of a mixture-of-experts language model. The router sends some tokens "
    "to this expert; in each snippet below, those tokens are wrapped in << >>. You also get the "
    "tokens with the highest routing scores and the tokens the expert's output promotes. State "
    "one hypothesis of 3 to 12 words about the expert's role, such as 'closing brackets inside "
    "LaTeX math'. Reply with JSON only: {\"hypothesis\": \"...\"}"
)


def explain_messages(windows: list[Window], top: float, highlight: float, expert: bool,
                     promoted: list[str] | None = None, top_tokens: int = 10) -> list[dict]:
    """Chat messages for one explanation (expert-level paper prompt, or delphi-style neuron prompt)."""
    blocks = []
    for i, w in enumerate(windows, 1):
        hi = w.highlighted(highlight)
        levels = scale(w.acts, top)
        line = f"Excerpt {i}: {marked(w, hi)}"
        if not expert:
            pairs = ", ".join(f"{w.tokens[j].strip() or repr(w.tokens[j])} ({levels[j]})" for j in hi)
            line += f"\nActive tokens: {pairs}"
        blocks.append(line)
    user = "\n\n".join(blocks)
    if expert:
        scored = sorted(((a, w.tokens[j]) for w in windows for j, a in enumerate(w.acts) if a > 0),
                        key=lambda t: -t[0])[:top_tokens]
        levels = scale([a for a, _ in scored], top)
        user += "\n\nHighest-scoring tokens: " + ", ".join(
            f"{t.strip() or repr(t)} ({s})" for (_, t), s in zip(scored, levels))
        if promoted:
            user += "\nTokens the expert's output promotes: " + ", ".join(repr(t) for t in promoted)
        return [{"role": "system", "content": EXPERT_SYSTEM}, {"role": "user", "content": user}]
    return [{"role": "system", "content": NEURON_SYSTEM},
            {"role": "user", "content": NEURON_SHOT_USER},
            {"role": "assistant", "content": NEURON_SHOT_ANSWER},
            {"role": "user", "content": user}]


def explanation_prefill(expert: bool) -> str:
    """The start of the answer a local model is made to continue (it keeps the JSON form)."""
    return '{"hypothesis": "' if expert else '{"explanation": "'


def _json_object(text: str) -> dict | None:
    """The last JSON object in ``text`` (models often wrap it in prose or code fences)."""
    if not text:
        return None
    for m in reversed(list(re.finditer(r"\{", text))):
        depth = 0
        for j in range(m.start(), len(text)):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            if depth == 0:
                try:
                    obj = json.loads(text[m.start():j + 1])
                except json.JSONDecodeError:
                    break
                return obj if isinstance(obj, dict) else None
    return None


def parse_explanation(text: str | None) -> str | None:
    """The explanation from a JSON answer; None when there is none (a failure)."""
    obj = _json_object(text or "")
    if obj is None:
        return None
    for key in ("explanation", "hypothesis"):
        value = obj.get(key)
        if isinstance(value, str) and value.strip():
            return " ".join(value.split())
    return None


# ------------------------------------------------------------------ judges

TASKS = {
    "detection": ("Here is an explanation of when a unit of a language model is active:\n{expl}\n\n"
                  "For each numbered text below, decide whether it contains something the "
                  "explanation describes (1) or not (0)."),
    "fuzzing": ("Here is an explanation of when a unit of a language model is active:\n{expl}\n\n"
                "In each numbered text below some tokens are wrapped in << >>. Answer 1 if every "
                "marked token is an instance of what the explanation describes, else 0."),
    "binary": ("Hypothesis about an expert of a mixture-of-experts model:\n{expl}\n\n"
               "In each numbered snippet below, the tokens sent to an expert are wrapped in << >>. "
               "Answer 1 if the marked tokens fit the hypothesis, else 0."),
}
SYSTEM_JUDGE = "You are a careful, literal judge of explanations of neural network units."


def judge_messages(task: str, explanation: str, texts: list[str]) -> list[dict]:
    """A batch prompt: answers as JSON ``{"answers": [0 or 1, ...]}`` in order."""
    body = "\n".join(f"{i}. {t}" for i, t in enumerate(texts, 1))
    user = (TASKS[task].format(expl=explanation) + f"\n\n{body}\n\nReply with JSON only: "
            f'{{"answers": [...]}} with {len(texts)} numbers, 1 or 0, in order.')
    return [{"role": "system", "content": SYSTEM_JUDGE}, {"role": "user", "content": user}]


def judge_one_messages(task: str, explanation: str, text: str) -> list[dict]:
    """One text at a time, for reading P("1") / (P("0") + P("1")) from the next token."""
    user = (TASKS[task].format(expl=explanation).replace("each numbered text below", "the text below")
            .replace("each numbered snippet below", "the snippet below")
            + f"\n\nText: {text}\n\nAnswer with a single digit, 1 or 0.")
    return [{"role": "system", "content": SYSTEM_JUDGE}, {"role": "user", "content": user}]


def parse_answers(text: str | None, n: int) -> list[int] | None:
    obj = _json_object(text or "")
    if obj is None or not isinstance(obj.get("answers"), list) or len(obj["answers"]) != n:
        return None
    out = []
    for a in obj["answers"]:
        if a in (0, 1, "0", "1", True, False) and not isinstance(a, float):
            out.append(int(a))
        else:
            return None
    return out


def intruder_messages(texts: list[str], one_token: bool = False) -> list[dict]:
    body = "\n".join(f"{i}. {t}" for i, t in enumerate(texts, 1))
    ask = ("Answer with the number of the odd one out, a single digit." if one_token else
           'Reply with JSON only: {"intruder": <number>}.')
    user = ("Below are numbered texts with some tokens wrapped in << >>. In all but one of them the "
            "marked tokens share a common pattern; one text was put in at random.\n\n"
            f"{body}\n\n{ask}")
    return [{"role": "system", "content": SYSTEM_JUDGE}, {"role": "user", "content": user}]


def parse_intruder(text: str | None, n: int) -> int | None:
    """0-based index of the intruder; None when the answer is unusable."""
    obj = _json_object(text or "")
    value = obj.get("intruder") if obj else None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    try:
        k = int(value)
    except ValueError:
        return None
    return k - 1 if 1 <= k <= n else None


SIM_DIGITS = [str(d) for d in range(10)]


def simulation_messages(explanation: str) -> list[dict]:
    user = ("A unit of a language model is explained as:\n" + explanation + "\n\nFor every token of "
            "the text that follows, write the unit's activation on that token, from 0 (inactive) to "
            "9 (most active), one token per line as: token = activation.")
    return [{"role": "system", "content": SYSTEM_JUDGE}, {"role": "user", "content": user}]


def simulation_lines(window: Window) -> tuple[str, list[int]]:
    """The teacher-forced answer (every slot written as '0') and the character index of each slot."""
    text, slots = "", []
    for piece in window.tokens:
        text += json.dumps(piece) + " = "
        slots.append(len(text))
        text += "0\n"
    return text, slots
