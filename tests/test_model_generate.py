"""run_inference end to end on the tiny preset (CPU), the KV cache against full recompute, and
the NVTX ranges (names, payloads, nesting; none at all when disabled)."""

from __future__ import annotations

from pathlib import Path

import nvtx
import pytest
import torch

from dsocr_nsys.errors import InputFileError, ModelError
from dsocr_nsys.model import InferenceSettings, build_model, get_config, plan_request, run_inference
from dsocr_nsys.model.generate import generate, prompt_embeds
from dsocr_nsys.model.inputs import FALLBACK_PROMPT_IDS, default_image, prepare_pixels
from dsocr_nsys.model.llm import KVCache
from dsocr_nsys.model.ranges import Ranges

pytestmark = pytest.mark.usefixtures("one_cpu_thread")  # tests/conftest.py


def _settings(**kw) -> InferenceSettings:
    base = dict(preset="tiny", device="cpu", dtype="float32", warmup=0, max_new_tokens=4)
    base.update(kw)
    return InferenceSettings(**base)


@pytest.mark.parametrize(("mode", "prefill"), [("base", 282), ("gundam", 912)])
def test_run_inference_tiny_cpu(mode: str, prefill: int) -> None:
    messages: list[str] = []
    result = run_inference(_settings(mode=mode, nvtx=False), progress=messages.append)
    assert result.plan == plan_request(mode)
    assert result.prefill_tokens == result.plan.prefill_tokens == prefill
    assert result.decode_steps == 3
    assert len(result.generated_tokens) == 4
    assert all(0 <= t < get_config("tiny").llm.vocab_size for t in result.generated_tokens)
    assert len(result.timings_s) == 1 and result.timings_s[0] > 0
    assert result.prompt_source == "fixed"
    assert result.model_config["llm"]["shared_intermediate"] == 64
    assert result.parameter_counts["total"] == sum(
        result.parameter_counts[k] for k in ("sam", "clip", "projector", "llm", "layout")
    )
    assert messages[0].startswith("Building DeepSeek-OCR (tiny, random weights) on cpu")
    assert any(m.startswith("Repeat 1/1:") for m in messages)


@torch.no_grad()
def test_kv_cache_decode_equals_full_recompute() -> None:
    model = build_model(get_config("tiny"), "cpu", torch.float32, seed=1)
    img = default_image()
    plan = plan_request("tiny", img.size)
    glob, _ = prepare_pixels(img, plan)
    text = [i % 512 for i in FALLBACK_PROMPT_IDS]
    steps = 5
    tokens, _ = generate(model, plan, glob, None, text, steps, Ranges(False))
    embeds = prompt_embeds(model, plan, glob, None, text)
    llm = model.llm
    cache = KVCache(llm.cfg, 1, plan.prefill_tokens + steps, "cpu", torch.float32)
    cached = [llm(embeds, cache=cache)]
    for k in range(1, steps):
        start = plan.prefill_tokens + k - 1
        cached.append(llm(llm.embed_tokens(tokens[k - 1 : k])[None], cache=cache, start=start))
    for k in range(steps):
        prefix = torch.cat([embeds, llm.embed_tokens(tokens[:k])[None]], dim=1)
        full = llm(prefix, last_only=False)
        assert torch.allclose(cached[k][0, -1], full[0, -1], atol=1e-4, rtol=1e-4)
        assert int(full[0, -1].argmax()) == int(tokens[k])
    # Two new tokens after a cached prefix (offset causal mask) equal the full forward too.
    cache = KVCache(llm.cfg, 1, plan.prefill_tokens + 2, "cpu", torch.float32)
    llm(embeds, cache=cache)
    two = llm(
        llm.embed_tokens(tokens[:2])[None], cache=cache, start=plan.prefill_tokens, last_only=False
    )
    full = llm(torch.cat([embeds, llm.embed_tokens(tokens[:2])[None]], dim=1), last_only=False)
    assert torch.allclose(two[0], full[0, -2:], atol=1e-4, rtol=1e-4)


class _RecordingDomain:
    """Stands in for nvtx's domain handle and records the push/pop sequence."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str | None, int | None]] = []

    def get_event_attributes(self, message=None, color=None, category=None, payload=None):
        return (message, payload)

    def push_range(self, attributes=None, **_kw) -> None:
        self.events.append(("push", *attributes))

    def pop_range(self) -> None:
        self.events.append(("pop", None, None))


def test_nvtx_ranges_names_payloads_and_nesting(monkeypatch) -> None:
    domain = _RecordingDomain()
    names: list[str] = []

    def fake_get_domain(name):
        names.append(name)
        return domain

    monkeypatch.setattr(nvtx, "get_domain", fake_get_domain)
    result = run_inference(_settings(mode="tiny", warmup=1, repeats=2, max_new_tokens=3))
    assert names == ["dsocr"]
    prefill = result.plan.prefill_tokens  # 82
    request = [
        ("prefill", prefill),
        ("sam", 1),
        ("clip", 1),
        ("projector", 1),
        ("decode", prefill + 1),
        ("decode", prefill + 2),
    ]
    # Pushes in order, with nesting depth: warmup has no inner ranges.
    pushes, depth, seen = [], 0, []
    for kind, name, payload in domain.events:
        if kind == "push":
            pushes.append((name, payload))
            seen.append((name, depth))
            depth += 1
        else:
            depth -= 1
    assert depth == 0
    assert pushes == [("warmup", 0), ("request", 0), *request, ("request", 1), *request]
    depth_of = dict(seen)
    assert depth_of["request"] == 0 and depth_of["prefill"] == 1 and depth_of["decode"] == 1
    assert depth_of["sam"] == depth_of["clip"] == depth_of["projector"] == 2


def test_nvtx_off_makes_no_calls_and_gives_identical_tokens(monkeypatch) -> None:
    on = run_inference(_settings(mode="tiny", max_new_tokens=6, nvtx=True))

    def forbidden(_name):
        raise AssertionError("nvtx called with nvtx=False")

    monkeypatch.setattr(nvtx, "get_domain", forbidden)
    off = run_inference(_settings(mode="tiny", max_new_tokens=6, nvtx=False))
    assert on.generated_tokens == off.generated_tokens
    assert len(off.generated_tokens) == 6 and off.decode_steps == 5


def test_bad_inputs_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="unknown mode 'huge'; choose one of"):
        run_inference(_settings(mode="huge"))
    with pytest.raises(InputFileError, match="does not exist"):
        run_inference(_settings(image=tmp_path / "missing.png"))
    with pytest.raises(ModelError, match="--max-new-tokens must be at least 1"):
        run_inference(_settings(max_new_tokens=0))
    with pytest.raises(
        ModelError, match=r"prefill 282 \+ 8000 new tokens exceeds the model's 8192"
    ):
        run_inference(_settings(max_new_tokens=8000))
    with pytest.raises(ModelError, match="unknown dtype 'int3'"):
        run_inference(_settings(dtype="int3"))
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="CUDA is not available here"):
            run_inference(_settings(device="cuda"))


def test_out_of_memory_becomes_model_error(monkeypatch) -> None:
    import dsocr_nsys.model.generate as gen

    def oom(*_a, **_k):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(gen, "build_model", oom)
    with pytest.raises(ModelError, match=r"CUDA out of memory running mode 'base'.*smaller mode"):
        run_inference(_settings(mode="base"))


def test_run_with_a_real_image_and_weights(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from dsocr_nsys.model.deepseek_ocr import checkpoint_name

    source = build_model(get_config("tiny"), "cpu", seed=5)
    save_file(
        {checkpoint_name(n): p.detach().contiguous() for n, p in source.named_parameters()},
        str(tmp_path / "model.safetensors"),
    )
    image = tmp_path / "page.png"
    default_image().resize((400, 300)).save(image)
    a = run_inference(_settings(mode="small", image=image, weights=tmp_path, seed=0))
    b = run_inference(_settings(mode="small", image=image, seed=5))
    assert a.plan.image_size == (400, 300)
    assert a.generated_tokens == b.generated_tokens  # loaded weights == the seed-5 weights
