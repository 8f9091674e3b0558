"""Fixtures shared by several test modules."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

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


@pytest.fixture
def read_only_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``chmod 555`` folder under tmp_path that this user cannot write into.

    An unprivileged user is stopped by the mode itself. The tests run as root here, and root
    writes anywhere, so for root :func:`os.access` (what the output check asks) is made to
    answer for that folder as it does for an unprivileged user: no."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if os.geteuid() == 0:
        real_access = os.access
        monkeypatch.setattr(
            os, "access", lambda p, mode: False if Path(p) == ro else real_access(p, mode)
        )
    return ro
