"""Word (or character) errors per clip, corpus WER, agreement, and bootstrap intervals.

Edit distance is a plain dynamic programme over token lists: transcripts are tens to hundreds
of tokens, so it costs microseconds to milliseconds, and jiwer / rapidfuzz would add a
dependency for no gain.

Rates are fractions (0.05 = 5 %), not percentage points, except where a name says `pp`.
A clip with an empty reference divides by 1 instead of 0: its error rate is the number of
inserted words, so an empty reference with an empty hypothesis scores agreement 1.0 and a
hallucinated sentence on silence scores 1 - n (a large negative agreement, never NaN).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .text import normalize


def edit_distance(ref: Sequence, hyp: Sequence) -> int:
    """Levenshtein distance: the fewest substitutions, deletions and insertions turning ref into hyp
    (words, characters or token ids)."""
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        current = [i]
        for j, h in enumerate(hyp, start=1):
            current.append(min(previous[j] + 1,  # deletion of r
                               current[j - 1] + 1,  # insertion of h
                               previous[j - 1] + (r != h)))  # match or substitution
        previous = current
    return previous[-1]


def error_rate(errors: float, ref_words: float) -> float:
    """errors / ref_words, dividing by 1 when the reference is empty (see the module note)."""
    return errors / max(ref_words, 1)


@dataclass(frozen=True)
class ClipScore:
    errors: int
    ref_words: int  # reference tokens: words, or characters for Chinese
    hyp_words: int
    agreement: float  # 1 - errors / ref_words; below 0 when the hypothesis inserts a lot

    @property
    def wer(self) -> float:
        return error_rate(self.errors, self.ref_words)


def score(ref: str, hyp: str, lang: str) -> ClipScore:
    """Score one transcript against its reference after normalisation for `lang`."""
    ref_tokens = normalize(ref, lang)
    hyp_tokens = normalize(hyp, lang)
    errors = edit_distance(ref_tokens, hyp_tokens)
    return ClipScore(errors, len(ref_tokens), len(hyp_tokens), 1.0 - error_rate(errors, len(ref_tokens)))


def corpus_wer(scores: Sequence[ClipScore]) -> float:
    """All errors over all reference words (long clips weigh more than short ones)."""
    return error_rate(sum(s.errors for s in scores), sum(s.ref_words for s in scores))


def mean_agreement(scores: Sequence[ClipScore]) -> float:
    """The average of per-clip agreement (every clip weighs the same)."""
    if not scores:
        raise ValueError("mean_agreement of no clips")
    return float(np.mean([s.agreement for s in scores]))


def bootstrap_ci(
    per_clip_errors_a: Sequence[float],
    per_clip_refs: Sequence[float],
    per_clip_errors_b: Sequence[float] | None = None,
    n: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """(low, high): a 1 - alpha percentile bootstrap interval over clips of the corpus WER of
    system a, or, when b is given, of the paired difference WER(b) - WER(a). Each resample
    draws the same clip indices for both systems, so what the two share (hard clips) cancels.
    """
    errors_a = np.asarray(per_clip_errors_a, dtype=np.float64)
    refs = np.asarray(per_clip_refs, dtype=np.float64)
    errors_b = None if per_clip_errors_b is None else np.asarray(per_clip_errors_b, dtype=np.float64)
    if errors_a.ndim != 1 or errors_a.size == 0:
        raise ValueError("bootstrap_ci needs a non-empty list of per-clip errors")
    if refs.shape != errors_a.shape or (errors_b is not None and errors_b.shape != errors_a.shape):
        raise ValueError("bootstrap_ci: per-clip lists differ in length")
    if n < 1 or not 0.0 < alpha < 1.0:
        raise ValueError(f"bootstrap_ci: need n >= 1 and 0 < alpha < 1, got n={n}, alpha={alpha}")

    def statistic(idx: np.ndarray) -> np.ndarray:
        # idx: [resamples, clips] -> one corpus WER (or difference) per resample.
        ref_total = np.maximum(refs[idx].sum(axis=-1), 1.0)
        wer_a = errors_a[idx].sum(axis=-1) / ref_total
        return wer_a if errors_b is None else errors_b[idx].sum(axis=-1) / ref_total - wer_a

    clips = errors_a.size
    rng = np.random.default_rng(seed)
    # Resample in blocks so that memory stays near 4M indices however many clips there are.
    block = max(1, 4_000_000 // clips)
    stats = np.concatenate([statistic(rng.integers(0, clips, size=(min(block, n - start), clips)))
                            for start in range(0, n, block)])
    low, high = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def words_for_delta(delta_pp: float, total_ref_words: int) -> float:
    """How many words a WER change of `delta_pp` percentage points is on a set of that size
    (on vitw8's 123 words, 1 pp is 1.23 words; one word is 0.81 pp)."""
    return delta_pp / 100.0 * total_ref_words
