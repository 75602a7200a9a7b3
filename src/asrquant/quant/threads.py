"""Work that runs on one CPU thread whatever ``--threads`` says, and why."""

from __future__ import annotations

import contextlib

import torch


@contextlib.contextmanager
def one_cpu_thread(device: torch.device):
    """Run the block on one intra-op thread (nothing changes on a GPU). Two reasons use it:

    - speed: GPTQ's column loop and AWQ's search are thousands of tiny ops where thread hand-offs
      cost more than the work, and on a busy machine a multi-threaded tiny op waits for a
      descheduled peer;
    - one build at any thread count: a multi-threaded GEMM splits a long sum (a Hessian over
      thousands of frames) or takes another kernel for a product over a few tokens, and GPTQ's
      roundings follow the last bits; summed on one thread, they are the same at any --threads.
    """
    if device.type != "cpu":
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)
