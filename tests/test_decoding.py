"""The decoding loop on a scripted session: greedy, beam, rules, loop guard, maximum length."""

import numpy as np
import pytest

from asrquant.decoding import (
    STOP_EOT,
    STOP_LOOP,
    STOP_MAX_LENGTH,
    DecodeOptions,
    LogitRules,
    decode,
    find_loop,
    loop_end,
)

V, EOT = 10, 9


class ScriptedSession:
    """Logits are a function of the tokens so far (the cache is the token history)."""

    max_positions = 64

    def __init__(self, table):
        self.table = table  # history tuple (after the prompt) -> logits [V]
        self.calls = 0

    def _logits(self, hist):
        return np.asarray(self.table(tuple(hist)), dtype=np.float32)

    def prefill(self, enc, prompt, batch):
        hist = [[] for _ in range(batch)]
        return np.stack([self._logits(h) for h in hist]), hist

    def step(self, tokens, cache):
        self.calls += 1
        cache = [h + [int(t)] for h, t in zip(cache, tokens)]
        return np.stack([self._logits(h) for h in cache]), cache

    def reorder(self, cache, rows):
        return [list(cache[r]) for r in rows]


def logits_for(prefs):
    out = np.full(V, -10.0)
    for tok, val in prefs.items():
        out[tok] = val
    return out


def test_greedy_follows_argmax_and_stops_at_eot():
    seq = [3, 4, 5]
    s = ScriptedSession(lambda h: logits_for({seq[len(h)] if len(h) < 3 else EOT: 5.0}))
    r = decode(s, None, [0], LogitRules(eot=EOT), DecodeOptions())
    assert r.tokens == seq and r.stopped == STOP_EOT


def test_rules_suppress_everywhere_at_begin_and_from():
    s = ScriptedSession(lambda h: logits_for({1: 9.0, 2: 8.0, 3: 7.0, 8: 10.0, EOT: 6.0 if h else -20}))
    rules = LogitRules(eot=EOT, suppress=(1,), suppress_begin=(2,), suppress_from=8)
    r = decode(s, None, [0], rules, DecodeOptions(max_new_tokens=2))
    # position 0: 8 (>= suppress_from), 1 (always) and 2 (begin) are out -> 3; position 1: 2 allowed
    assert r.tokens == [3, 2] and r.stopped == STOP_MAX_LENGTH


def test_loop_guard_stops_and_flags_a_repetition():
    s = ScriptedSession(lambda h: logits_for({[5, 6][len(h) % 2]: 5.0}))
    r = decode(s, None, [0], LogitRules(eot=EOT), DecodeOptions(max_new_tokens=100))
    assert r.stopped == STOP_LOOP
    assert r.tokens[:4] == [5, 6, 5, 6] and len(r.tokens) == 16  # 8 copies of a 2-token phrase
    r = decode(s, None, [0], LogitRules(eot=EOT), DecodeOptions(max_new_tokens=100, loop_guard=False))
    assert r.stopped == STOP_MAX_LENGTH and len(r.tokens) == 63  # bounded by max_positions - prompt


@pytest.mark.parametrize("tokens,period", [
    ([1] * 16, 1), ([1] * 15, 0), ([7, 1, 2, 3, 4] * 4, 5), ([1, 2, 3, 4] * 3, 0),
    ([9, 9] + [1, 2, 3] * 6, 3), (list(range(40)), 0),
])
def test_find_loop(tokens, period):
    assert find_loop(tokens) == period


def test_beam_finds_the_better_sequence_greedy_misses():
    # Greedy takes 1 (p~0.55) then a flat distribution; beam prefers 2 then a confident 3 and EOT.
    def table(h):
        if not h:
            return np.log([1e-6] + [0.55, 0.45] + [1e-6] * 7)
        if h == (1,):
            return np.log([0.125] * 8 + [1e-6, 0.125])
        if h == (2,):
            return np.log([1e-6] * 3 + [0.98] + [1e-6] * 5 + [0.02])
        return logits_for({EOT: 10.0})

    greedy = decode(ScriptedSession(table), None, [0], LogitRules(eot=EOT), DecodeOptions())
    beam = decode(ScriptedSession(table), None, [0], LogitRules(eot=EOT), DecodeOptions(beam_size=3))
    assert greedy.tokens[0] == 1
    assert beam.tokens == [2, 3] and beam.stopped == STOP_EOT


def test_beam_of_one_equals_greedy():
    rng = np.random.default_rng(0)
    cache = {}

    def table(h):
        if h not in cache:
            cache[h] = rng.normal(size=V) + (3.0 if len(h) > 6 else 0) * np.eye(V)[EOT]
        return cache[h]

    g = decode(ScriptedSession(table), None, [0], LogitRules(eot=EOT), DecodeOptions(beam_size=1))
    b = decode(ScriptedSession(table), None, [0], LogitRules(eot=EOT), DecodeOptions(beam_size=2, patience=0.5))
    assert g.tokens == b.tokens


@pytest.mark.parametrize("stream", [
    [1, 2, 3] + [5] * 40, [8, 7] + [5, 6] * 30, [4] + [1, 2, 3, 4, 5, 6, 7] * 9 + [8, 8], list(range(9)) * 7,
])
def test_loop_end_is_where_the_greedy_guard_stops(stream):
    """A peer's tokens are cut where our greedy decoding, given the same tokens, stops at its guard."""
    s = ScriptedSession(lambda h: logits_for({stream[len(h)] if len(h) < len(stream) else EOT: 5.0}))
    r = decode(s, None, [0], LogitRules(eot=EOT), DecodeOptions(max_new_tokens=len(stream) + 1))
    assert r.stopped == STOP_LOOP and loop_end(stream) == len(r.tokens)
    assert r.tokens == stream[: loop_end(stream)]


def test_loop_end_is_zero_without_a_loop():
    assert loop_end(list(range(40))) == 0 and loop_end([]) == 0 and loop_end([1] * 15) == 0
