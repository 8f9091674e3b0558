"""Fixtures shared by several test modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def one_cpu_thread() -> Iterator[None]:
    """Tiny model graphs are op-overhead bound: one intra-op thread is faster on a shared CPU.

    Used by the model test modules through ``pytestmark``; torch is imported here, not at
    collection, so the trace tests do not pay for it.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
