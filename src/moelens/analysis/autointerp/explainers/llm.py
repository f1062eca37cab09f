"""The LLM explainer: the paper's expert prompt or a delphi-style neuron prompt, to any client.

With a chat endpoint the answer is asked for as JSON (``response_format``). A local model is
made to continue a prefilled ``{"explanation": "`` (or ``{"hypothesis": "``), which keeps a
small model in the format; its answer ends at the first closing quote. An answer without a
usable explanation is a failure: recorded with the raw text, and the unit's scores that need
an explanation are failures too.
"""

from __future__ import annotations

from moelens.analysis.autointerp import prompts
from moelens.analysis.autointerp.explainers.base import Explainer, Explanation


def parse_prefilled(text: str | None, prefill: str) -> str | None:
    """The explanation from an answer that continued ``prefill``; None if it never closed."""
    found = prompts.parse_explanation(text)
    if found is not None or not text or not text.startswith(prefill):
        return found
    rest = text[len(prefill):]
    end = rest.find('"')
    value = " ".join(rest[:end].split()) if end >= 0 else ""
    return value or None


class LLMExplainer(Explainer):
    name = "llm"

    def __init__(self, client, expert_level: bool, highlight: float = 0.3, prefill: bool = False):
        self.client = client
        self.expert_level = expert_level
        self.highlight = highlight
        self.prefill = prefill

    async def explain(self, examples, promoted=None):
        windows = examples.explain
        top = max((w.max_act for w in windows), default=0.0)
        messages = prompts.explain_messages(windows, top, self.highlight, self.expert_level, promoted)
        if self.prefill:
            start = prompts.explanation_prefill(self.expert_level)
            done = await self.client.chat(messages, prefill=start)
            text = parse_prefilled(done.text, start) if done.ok else None
        else:
            done = await self.client.chat(messages)
            text = prompts.parse_explanation(done.text) if done.ok else None
        failure = done.failure or (None if text is not None else "no explanation in the answer")
        return Explanation(text, None, messages, done.text, failure if text is None else None)
