"""The decoding loop, apart from any model: greedy and beam search over numpy logits.

A model family supplies a :class:`Session` (its forward passes: torch, onnxruntime, ...) and
:class:`LogitRules` (which tokens may never appear, which may not come first, the end token);
this module owns everything else: search, the maximum length and the loop guard. It imports
numpy only, so the torch-free runtime shares it with the torch reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

STOP_EOT, STOP_LOOP, STOP_MAX_LENGTH = "eot", "loop", "max_length"


class Session(Protocol):
    """One model's decoder passes. ``enc`` is whatever the family's encoder returned."""

    max_positions: int  # prompt + generated tokens may not exceed this

    def prefill(self, enc: Any, prompt: np.ndarray, batch: int) -> tuple[np.ndarray, Any]:
        """Run the prompt [T] for ``batch`` identical rows -> (last-position logits [batch, V], cache)."""

    def step(self, tokens: np.ndarray, cache: Any) -> tuple[np.ndarray, Any]:
        """Feed one token per row [batch] -> (logits [batch, V], cache)."""

    def reorder(self, cache: Any, rows: np.ndarray) -> Any:
        """Keep cache rows ``rows`` (beam search): row i of the result is old row rows[i]."""


@dataclass(frozen=True)
class LogitRules:
    eot: int
    suppress: tuple[int, ...] = ()  # never emitted
    suppress_begin: tuple[int, ...] = ()  # not emitted as the first token (blank, end)
    suppress_from: int | None = None  # every id >= this is suppressed (e.g. Whisper timestamps)

    def apply(self, logits: np.ndarray, first: bool) -> np.ndarray:
        logits = logits.astype(np.float32, copy=True)
        if self.suppress:
            logits[:, list(self.suppress)] = -np.inf
        if first and self.suppress_begin:
            logits[:, list(self.suppress_begin)] = -np.inf
        if self.suppress_from is not None:
            logits[:, self.suppress_from :] = -np.inf
        return logits


@dataclass(frozen=True)
class DecodeOptions:
    beam_size: int = 1
    max_new_tokens: int = 224  # openai-whisper's default sample_len: n_text_ctx // 2
    loop_guard: bool = True
    patience: float = 1.0


@dataclass
class DecodeResult:
    tokens: list[int]  # generated tokens, without the prompt and the end token
    stopped: str  # STOP_EOT | STOP_LOOP | STOP_MAX_LENGTH
    logprob: float = 0.0
    extra: dict = field(default_factory=dict)


def find_loop(tokens: list[int], max_period: int = 32, min_repeats: int = 4, min_span: int = 16) -> int:
    """Period of a degenerate repetition at the end of ``tokens``, or 0.

    A loop is the same n-gram (n <= max_period) repeated back to back at least ``min_repeats``
    times and over at least ``min_span`` tokens: 16 copies of one token, 4 of a 4-token phrase.
    Real speech rarely repeats that much; a decoder stuck in a loop always does.
    """
    n = len(tokens)
    for period in range(1, max_period + 1):
        span = period * max(min_repeats, -(-min_span // period))
        if span > n:
            break
        tail = tokens[n - span :]
        if tail[period:] == tail[:-period]:
            return period
    return 0


def loop_end(tokens: list[int]) -> int:
    """How many of ``tokens`` a greedy decoding with the loop guard keeps: the length at which
    :func:`find_loop` first fires (the guard's stop), or 0 where it never does. The bench cuts a
    peer's tokens there, so a peer that loops is judged as our decoding is."""
    for n in range(1, len(tokens) + 1):
        if find_loop(tokens[:n]):
            return n
    return 0


def log_softmax(x: np.ndarray) -> np.ndarray:
    m = np.max(x, axis=-1, keepdims=True)
    z = x - m
    return z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))


def decode(session: Session, enc: Any, prompt: list[int], rules: LogitRules, opts: DecodeOptions) -> DecodeResult:
    budget = min(opts.max_new_tokens, session.max_positions - len(prompt))
    if budget <= 0:
        raise ValueError(f"prompt of {len(prompt)} tokens leaves no room in {session.max_positions} positions")
    if opts.beam_size <= 1:
        return _greedy(session, enc, prompt, rules, opts, budget)
    return _beam(session, enc, prompt, rules, opts, budget)


def _greedy(session, enc, prompt, rules, opts, budget) -> DecodeResult:
    logits, cache = session.prefill(enc, np.asarray(prompt, dtype=np.int64), 1)
    tokens: list[int] = []
    total = 0.0
    for i in range(budget):
        scores = log_softmax(rules.apply(logits, first=i == 0))[0]
        token = int(np.argmax(scores))
        total += float(scores[token])
        if token == rules.eot:
            return DecodeResult(tokens, STOP_EOT, total)
        tokens.append(token)
        if opts.loop_guard and find_loop(tokens):
            return DecodeResult(tokens, STOP_LOOP, total)
        if i + 1 < budget:
            logits, cache = session.step(np.array([token], dtype=np.int64), cache)
    return DecodeResult(tokens, STOP_MAX_LENGTH, total)


def _beam(session, enc, prompt, rules, opts, budget) -> DecodeResult:
    """Beam search as openai-whisper runs it: keep ``beam`` live hypotheses, collect finished
    ones until ``beam * patience`` are done, rank by log probability / length."""
    beam = opts.beam_size
    logits, cache = session.prefill(enc, np.asarray(prompt, dtype=np.int64), beam)
    seqs: list[list[int]] = [[] for _ in range(beam)]
    sums = np.zeros(beam)
    finished: list[DecodeResult] = []
    want = max(1, round(beam * opts.patience))
    for i in range(budget):
        scores = log_softmax(rules.apply(logits, first=i == 0))
        # All rows are identical before the first step: expand row 0 only, or the beam fills with copies.
        rows = range(1) if i == 0 else range(beam)
        candidates = []
        for r in rows:
            top = np.argpartition(-scores[r], beam)[: beam + 1]
            candidates += [(sums[r] + scores[r, t], r, int(t)) for t in top]
        candidates.sort(key=lambda c: -c[0])
        keep_rows, keep_tokens, new_sums, new_seqs = [], [], [], []
        for total, r, t in candidates:
            if t == rules.eot:
                if len(finished) < want:
                    finished.append(DecodeResult(seqs[r], STOP_EOT, float(total)))
                continue
            seq = seqs[r] + [t]
            if opts.loop_guard and find_loop(seq):
                if len(finished) < want:
                    finished.append(DecodeResult(seq, STOP_LOOP, float(total)))
                continue
            keep_rows.append(r)
            keep_tokens.append(t)
            new_sums.append(total)
            new_seqs.append(seq)
            if len(keep_rows) == beam:
                break
        if len(finished) >= want or not keep_rows or i + 1 == budget:
            seqs, sums = new_seqs, np.array(new_sums)
            break
        while len(keep_rows) < beam:  # fewer live candidates than beams: pad with the best
            keep_rows.append(keep_rows[0]), keep_tokens.append(keep_tokens[0])
            new_sums.append(-np.inf), new_seqs.append(new_seqs[0])
        cache = session.reorder(cache, np.asarray(keep_rows))
        seqs, sums = new_seqs, np.asarray(new_sums)
        logits, cache = session.step(np.asarray(keep_tokens, dtype=np.int64), cache)
    # Out of budget before enough hypotheses ended: the best live ones count, flagged as such.
    for v, s in sorted(zip(sums, seqs), key=lambda c: -c[0]):
        if len(finished) >= want or not np.isfinite(v):
            break
        finished.append(DecodeResult(s, STOP_MAX_LENGTH, float(v)))
    return max(finished, key=lambda r: r.logprob / max(1, len(r.tokens)))
