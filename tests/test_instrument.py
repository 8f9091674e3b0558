"""dsocr_nsys.instrument on our graph, in our layout and in the published (Hugging Face) one:
the NVTX ranges it opens, checked without a trace against what the launcher emits, through the
same NVTX calls (nvtx's domain replaced by a recorder)."""

from __future__ import annotations

from typing import Any

import nvtx
import pytest
import torch
from torch import nn

import dsocr_nsys
from dsocr_nsys.errors import DsocrError
from dsocr_nsys.model import build_model, get_config, plan_request
from dsocr_nsys.model.generate import Decoder, generate, prompt_embeds
from dsocr_nsys.model.inputs import FALLBACK_PROMPT_IDS, default_image, prepare_pixels
from dsocr_nsys.model.llm import KVCache
from dsocr_nsys.model.ranges import Ranges

pytestmark = pytest.mark.usefixtures("one_cpu_thread")  # tests/conftest.py

STEPS = 4  # new tokens: prefill gives 1, then 3 decode forwards


class _RecordingDomain:
    """nvtx's domain handle, recording (push, name, payload) / (pop,)."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def get_event_attributes(self, message=None, color=None, category=None, payload=None):
        return (message, payload)

    def push_range(self, attributes=None, **_kw) -> None:
        self.events.append(("push", *attributes))

    def pop_range(self) -> None:
        self.events.append(("pop",))


@pytest.fixture
def domain(monkeypatch: pytest.MonkeyPatch) -> _RecordingDomain:
    recorder = _RecordingDomain()
    monkeypatch.setattr(nvtx, "get_domain", lambda name: recorder)
    return recorder


@pytest.fixture(scope="module")
def tiny() -> dict[str, Any]:
    model = build_model(get_config("tiny"), "cpu", torch.float32, seed=2)
    image = default_image()
    plan = plan_request("tiny", image.size)
    glob, _ = prepare_pixels(image, plan)
    return {
        "model": model,
        "plan": plan,
        "glob": glob,
        "text": [i % 512 for i in FALLBACK_PROMPT_IDS],
    }


class _Cache:
    """What a Hugging Face cache shows the hook: ``get_seq_length()``."""

    def __init__(self, kv: KVCache) -> None:
        self.kv, self.length = kv, 0

    def get_seq_length(self) -> int:
        return self.length


class _PublishedInner(nn.Module):
    """The published ``DeepseekOCRModel`` layout over our modules: the prompt step runs the
    vision encoders inside the LLM forward, as the reference code does."""

    def __init__(self, ours: Any, plan: Any, glob: torch.Tensor, text: list[int]) -> None:
        super().__init__()
        self.sam_model, self.vision_model, self.projector = ours.sam, ours.clip, ours.projector
        self.layers = ours.llm.layers
        self.ours, self.plan, self.glob, self.text = ours, plan, glob, text

    def forward(self, input_ids: torch.Tensor, past_key_values: _Cache) -> torch.Tensor:
        llm = self.ours.llm
        if past_key_values.length == 0:
            embeds = prompt_embeds(self.ours, self.plan, self.glob, None, self.text)
        else:
            embeds = llm.embed_tokens(input_ids)
        start = past_key_values.length
        past_key_values.length += input_ids.shape[1]
        return llm(embeds, cache=past_key_values.kv, start=start)


class _PublishedTop(nn.Module):
    """``DeepseekOCRForCausalLM``'s layout: ``model`` plus ``lm_head`` (ours, reused inside)."""

    def __init__(self, inner: _PublishedInner) -> None:
        super().__init__()
        self.model, self.lm_head = inner, inner.ours.llm.lm_head

    def forward(self, input_ids: torch.Tensor, past_key_values: _Cache) -> torch.Tensor:
        return self.model(input_ids, past_key_values)


def _launcher_events(tiny: dict[str, Any], domain: _RecordingDomain) -> list[tuple[Any, ...]]:
    domain.events.clear()
    generate(tiny["model"], tiny["plan"], tiny["glob"], None, tiny["text"], STEPS, Ranges(True))
    return list(domain.events)


@torch.inference_mode()
def _published_loop(top: _PublishedTop, prefill: int) -> list[int]:
    cfg = top.model.ours.cfg.llm
    cache = _Cache(KVCache(cfg, 1, prefill + STEPS, "cpu", torch.float32))
    logits = top(torch.zeros(1, prefill, dtype=torch.long), past_key_values=cache)
    tokens = [int(logits[0, -1].argmax())]
    for _ in range(1, STEPS):
        logits = top(torch.tensor([[tokens[-1]]]), past_key_values=cache)
        tokens.append(int(logits[0, -1].argmax()))
    return tokens


def test_published_layout_emits_the_launchers_ranges(tiny, domain) -> None:
    expected = _launcher_events(tiny, domain)
    prefill = tiny["plan"].prefill_tokens
    assert expected[:2] == [("push", "prefill", prefill), ("push", "sam", 1)]
    top = _PublishedTop(_PublishedInner(tiny["model"], tiny["plan"], tiny["glob"], tiny["text"]))
    domain.events.clear()
    handle = dsocr_nsys.instrument(top)
    assert handle.layout == "published"
    tokens = _published_loop(top, prefill)
    assert domain.events == expected  # same names, payloads, order and nesting
    ours, _ = generate(
        tiny["model"], tiny["plan"], tiny["glob"], None, tiny["text"], STEPS, Ranges(False)
    )
    assert tokens == ours.tolist()  # the adapter runs the same model
    handle.remove()
    domain.events.clear()
    _published_loop(top, prefill)
    assert domain.events == []


def test_our_layout_ranges_vision_before_prefill(tiny, domain) -> None:
    """Ours computes the image embeddings before the LLM forward: the same ranges and payloads,
    vision as prefill's siblings (module docstring)."""
    launcher = _launcher_events(tiny, domain)
    handle = dsocr_nsys.instrument(tiny["model"])
    assert handle.layout == "ours"
    domain.events.clear()
    try:
        generate(
            tiny["model"], tiny["plan"], tiny["glob"], None, tiny["text"], STEPS, Ranges(False)
        )
    finally:
        handle.remove()
    prefill = tiny["plan"].prefill_tokens
    vision = [e for stage in ("sam", "clip", "projector") for e in (("push", stage, 1), ("pop",))]
    decode = [e for k in range(1, STEPS) for e in (("push", "decode", prefill + k), ("pop",))]
    assert domain.events == [*vision, ("push", "prefill", prefill), ("pop",), *decode]
    pushes = sorted(e for e in domain.events if e[0] == "push")
    assert pushes == sorted(e for e in launcher if e[0] == "push")  # the launcher's payloads


def test_static_shape_decode_steps_are_decode(tiny, domain) -> None:
    """The static-shape step (position in a device tensor, as --decode cuda-graph and
    --compile run it) gives the eager step's ranges and payloads: counted from the prompt
    step, never read from the device."""
    launcher = _launcher_events(tiny, domain)
    prefill = tiny["plan"].prefill_tokens
    decoder = Decoder(tiny["model"], 1, prefill + STEPS, torch.device("cpu"), torch.float32,
                      static=True)  # fmt: skip
    handle = dsocr_nsys.instrument(tiny["model"])
    domain.events.clear()
    try:
        for _ in range(2):  # a second request starts again from its prompt step
            generate(tiny["model"], tiny["plan"], tiny["glob"], None, tiny["text"], STEPS,
                     Ranges(False), decoder=decoder)  # fmt: skip
    finally:
        handle.remove()
    steps = [e for e in domain.events if e[0] == "push" and e[1] in ("prefill", "decode")]
    expected = [e for e in launcher if e[0] == "push" and e[1] in ("prefill", "decode")]
    assert steps == expected * 2
    assert expected[0] == ("push", "prefill", prefill) and expected[-1][2] == prefill + STEPS - 1


def test_remove_closes_a_range_left_open(domain) -> None:
    model = build_model(get_config("tiny"), "meta")
    handle = dsocr_nsys.instrument(model)
    assert len(handle.handles) == 8  # pre + post hook on sam, clip, projector, llm
    with pytest.raises(RuntimeError):  # meta tensors: the forward fails after the pre-hook
        model.sam(torch.empty(2, 3, 64, 64))
    assert domain.events == [("push", "sam", 2)]
    handle.remove()
    assert domain.events == [("push", "sam", 2), ("pop",)]
    assert not model.sam._forward_pre_hooks and not model.llm._forward_hooks


def test_unknown_layout_is_one_clear_error() -> None:
    with pytest.raises(DsocrError, match="neither the published DeepSeek-OCR layout"):
        dsocr_nsys.instrument(nn.Linear(2, 2))


def test_published_cache_lengths() -> None:
    """The cached length from a Hugging Face cache object, a legacy tuple, or none."""
    from dsocr_nsys.instrument import _published_lengths

    ids = torch.zeros(1, 5, dtype=torch.long)
    kv = torch.empty(1, 10, 7, 128)  # (batch, heads, positions, head_dim)
    assert _published_lengths((ids,), {}) == (5, 0)
    assert _published_lengths((), {"input_ids": ids[:, :1], "past_key_values": ((kv, kv),)}) == (
        1,
        7,
    )
    cache = _Cache(None)  # type: ignore[arg-type]
    cache.length = 9
    assert _published_lengths(
        (), {"inputs_embeds": torch.empty(2, 1, 4), "past_key_values": cache}
    ) == (1, 9)
