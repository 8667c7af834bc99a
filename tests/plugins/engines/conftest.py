"""Engine tests train tiny networks: one torch thread is faster for them than
two, and far faster when other work shares the 2 cores (OpenMP threads spin)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
