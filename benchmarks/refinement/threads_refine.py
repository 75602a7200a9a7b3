"""Where does the thread count enter a refined build, and what would one order cost?

Part 1: a random Whisper at whisper-tiny.en's width (one block each side, the real 51,865-token
vocabulary), GPTQ + end-to-end DWQ (8 steps, 4 clips), built at 1 and at 2 threads in one process;
the number of group scales that differ, with the thread count fixed in more and more places
(patched here, not in the package):
  none       as the package runs it
  decoder    + the decoder's forward and backward pass and the KL on one thread (the encoder's
             output marked so its backward pass goes back to every thread)
  attention  + the backward pass of the encoder's attention on one thread
Part 2 (`cost`): what part 1's last fix costs: an encoder forward + backward pass at 2 threads
(random weights, whisper-tiny.en and whisper-base shapes, one 30-s window), with the attention's
backward pass on 2 threads and on one, interleaved, medians of 5.

    python benchmarks/refinement/threads_refine.py [none|decoder|attention|cost]...
"""

import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from asrquant.models.whisper import calib as cal
from asrquant.models.whisper import model as wm
from asrquant.models.whisper.model import Whisper, WhisperDims
from asrquant.quant import refine
from asrquant.quant.calibrate import CalibSample, quantize_model, quantized_weights
from asrquant.quant.recipe import parse_recipe
from asrquant.quant.threads import one_cpu_thread

CPU = torch.device("cpu")


class Threads(torch.autograd.Function):
    """Identity; its backward sets the thread count for the nodes after it (what made the input)."""

    @staticmethod
    def forward(ctx, x, n):
        ctx.n = n
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        torch.set_num_threads(ctx.n)
        return grad, None


def decoder_on_one_thread():
    lff, kl = cal.logits_from_features, refine.kl_per_position

    def logits(model, sample, device=None):
        n = torch.get_num_threads()
        feats = Threads.apply(cal.encoder_features(model, sample, device), n)
        with one_cpu_thread(CPU):
            return Threads.apply(lff(model, sample, feats, device), 1)

    def loss(x, teacher):
        with one_cpu_thread(CPU):
            return Threads.apply(kl(x, teacher), 1)
    cal.teacher_forced_logits, refine.kl_per_position = logits, loss


class AttentionBackwardOnOneThread:
    def __getattr__(self, name):
        return getattr(F, name)

    @staticmethod
    def scaled_dot_product_attention(q, k, v, attn_mask=None):
        if not q.requires_grad:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        n = torch.get_num_threads()
        q, k, v = (Threads.apply(t, n) for t in (q, k, v))
        return Threads.apply(F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask), 1)


def builds_differ() -> int:
    dims = WhisperDims(n_mels=80, n_audio_ctx=1500, n_audio_state=384, n_audio_head=6, n_audio_layer=1,
                       n_vocab=51865, n_text_ctx=448, n_text_state=384, n_text_head=6, n_text_layer=1)
    rng = np.random.default_rng(0)
    clips = [CalibSample(rng.standard_normal((80, 3000)).astype(np.float32),
                         rng.integers(0, 51865, size=12).astype(np.int64)) for _ in range(4)]
    r = parse_recipe('[calibration]\nclips = 4\n[[rules]]\nbits = 4\ngroup_size = 32\nscale_dtype = "float16"\n'
                     'algorithm = "gptq"\nrefine = "dwq"\nrefine_options = { level = "e2e", steps = 8 }\n')
    builds = []
    for n in (1, 2):
        torch.set_num_threads(n)
        torch.manual_seed(0)
        model = Whisper(dims).float()
        with torch.no_grad():  # as the tests' random Whisper: the decoder's tables drawn, not zero
            model.decoder.positional_embedding.normal_(0, 0.02)
            model.decoder.token_embedding.weight.normal_(0, 0.5)
        quantize_model(model, r, clips, device="cpu", progress=False)
        builds.append(quantized_weights(model))
    return sum(int((qw.scales != builds[1][k].scales).sum()) for k, qw in builds[0].items())


def cost() -> None:
    torch.set_num_threads(2)
    for name, width, heads, layers in (("whisper-tiny.en", 384, 6, 4), ("whisper-base", 512, 8, 6)):
        torch.manual_seed(0)
        m = Whisper(WhisperDims(n_mels=80, n_audio_ctx=1500, n_audio_state=width, n_audio_head=heads,
                                n_audio_layer=layers, n_vocab=100, n_text_ctx=32, n_text_state=width,
                                n_text_head=heads, n_text_layer=1)).float()
        mel = torch.randn(1, 80, 3000)
        times = {"2 threads": [], "one thread": []}
        for _ in range(5):
            for key, f in (("2 threads", F), ("one thread", AttentionBackwardOnOneThread())):
                wm.F = f
                m.zero_grad()
                t = time.perf_counter()
                (m.encoder(mel) * 0.01).sum().backward()
                torch.set_num_threads(2)
                times[key].append(time.perf_counter() - t)
        wm.F = F
        a, b = (statistics.median(times[k]) for k in times)
        print(f"{name}: encoder forward + backward, attention backward on 2 threads {a:.3f} s, "
              f"on one {b:.3f} s: x{b / a:.2f}")


patched = False
for step in sys.argv[1:] or ["none", "decoder", "attention", "cost"]:
    if step == "cost":
        cost()
        continue
    if step in ("decoder", "attention") and not patched:
        decoder_on_one_thread()
        patched = True
    if step == "attention":
        wm.F = AttentionBackwardOnOneThread()
    print(f"{step}: group scales that differ between 1 and 2 threads: {builds_differ()}", flush=True)
