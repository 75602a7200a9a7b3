"""Which of whisper-tiny.en's float passes give other bits at 1 and at 2 threads: the encoder on a
batch of four random 30-s log-mels (convolutions, each block's norm, projections, attention and
MLP, the final norm), then decoder block 0's cross-attention over five tokens (keys, values,
query, attention). Prints each tensor, whether it is identical, and the largest difference.

    python benchmarks/refinement/threads_ops.py
"""

import torch
import torch.nn.functional as F

from asrquant.models.whisper.load import load

model = load("whisper-tiny.en").model.eval()
torch.manual_seed(0)
mel = torch.randn(4, 80, 3000)
tokens = torch.tensor([[50257, 50362, 440, 1049, 318]])
runs = {}
for threads in (1, 2):
    torch.set_num_threads(threads)
    out = {}
    with torch.no_grad():
        enc = model.encoder
        x = out["conv1"] = F.gelu(enc.conv1(mel))
        x = out["conv2"] = F.gelu(enc.conv2(x)).transpose(1, 2)
        x = x + enc.positional_embedding[: x.shape[1]]
        for i, b in enumerate(enc.blocks):
            h = out[f"b{i}.ln"] = b.attn_ln(x)
            q = out[f"b{i}.q"] = b.attn.query(h)
            k = out[f"b{i}.k"] = b.attn.key(h)
            v = out[f"b{i}.v"] = b.attn.value(h)
            x = out[f"b{i}.attn"] = x + b.attn.attend(q, k, v, None)
            x = out[f"b{i}.mlp"] = x + b.mlp(b.mlp_ln(x))
        a = out["ln_post"] = enc.ln_post(x)[:1]
        blk = model.decoder.blocks[0]
        h = model.decoder.token_embedding(tokens) + model.decoder.positional_embedding[: tokens.shape[1]]
        ck = out["cross.k"] = blk.cross_attn.key(a)
        cv = out["cross.v"] = blk.cross_attn.value(a)
        cq = out["cross.q"] = blk.cross_attn.query(blk.cross_attn_ln(h))
        heads = blk.cross_attn.n_head
        split = lambda t: t.view(1, t.shape[1], heads, -1).transpose(1, 2)  # noqa: E731
        out["cross.attention"] = F.scaled_dot_product_attention(split(cq), split(ck), split(cv))
    runs[threads] = out
for name, t1 in runs[1].items():
    t2 = runs[2][name]
    print(f"{name}: identical {torch.equal(t1, t2)}, largest difference {(t1 - t2).abs().max().item():.3g}")
