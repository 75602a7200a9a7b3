"""EncoderBlock.forward_at: the block's output at chosen frames, as the whole forward gives them
(a refinement's step trains on a few frames of a 30-s window without running the rest)."""

import torch

from asrquant.models.whisper.model import EncoderBlock


def test_forward_at_is_forward_at_those_positions():
    torch.manual_seed(0)
    block = EncoderBlock(64, 4).eval()
    x = torch.randn(2, 50, 64)
    pos = torch.tensor([0, 3, 17, 49])
    with torch.no_grad():
        torch.testing.assert_close(block.forward_at(x, pos), block(x)[:, pos], rtol=1e-5, atol=1e-5)
