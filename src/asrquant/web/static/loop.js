// The loop guard of asrquant's Python runner (asrquant.decoding.find_loop), ported rule for rule,
// and a transformers.js logits processor that applies it during generation: once the generated
// tokens end in a loop (or reach the token budget) it leaves only the end token, so generate()
// stops where the runner stops, and it records why the window ended ("eot", "loop", "max_length").
import { LogitsProcessor } from '/vendor/transformers/transformers.js';

// Period of a degenerate repetition at the end of `tokens`, or 0: the same n-gram (n <= maxPeriod)
// repeated back to back at least minRepeats times and over at least minSpan tokens.
export function findLoop(tokens, maxPeriod = 32, minRepeats = 4, minSpan = 16) {
  const n = tokens.length;
  for (let period = 1; period <= maxPeriod; period++) {
    const span = period * Math.max(minRepeats, Math.ceil(minSpan / period));
    if (span > n) break;                       // as the runner: stop at the first period too long
    let same = true;
    for (let i = n - span + period; i < n && same; i++) same = tokens[i] === tokens[i - period];
    if (same) return period;
  }
  return 0;
}

// One per 30 s window (transformers.js' Whisper generate() appends to the list it is given).
// generate() must be allowed one token more than `budget`: the forced end token.
export class LoopGuard extends LogitsProcessor {
  constructor(eot, budget) {
    super();
    this.eot = eot;
    this.budget = budget;
    this.promptLength = null;
    this.stop = 'eot';
  }

  _call(inputIds, logits) {
    for (let b = 0; b < inputIds.length; b++) {
      const ids = inputIds[b];
      if (this.promptLength === null) this.promptLength = ids.length;   // first step: the prompt only
      const generated = ids.slice(this.promptLength).map(Number);
      let stop = null;
      if (generated.length && findLoop(generated)) stop = 'loop';
      else if (generated.length >= this.budget) stop = 'max_length';
      if (stop === null) continue;
      this.stop = stop;
      const row = /** @type {Float32Array} */ (logits[b].data);
      row.fill(-Infinity);
      row[this.eot] = 0;
    }
    return logits;
  }
}
