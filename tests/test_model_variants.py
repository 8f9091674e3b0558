"""The inference variants on the tiny preset (CPU): the device-side MoE equals the host-sync
loop, the static-shape (padded-cache) decode step equals the context-length one, a batch of
pages equals each page alone, torch.compile gives the eager tokens, and CUDA graphs refuse a
CPU in one line."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from dsocr_nsys.errors import ModelError
from dsocr_nsys.launch.__main__ import main as launch_main
from dsocr_nsys.model import InferenceSettings, build_model, get_config, plan_request, run_inference
from dsocr_nsys.model.generate import Decoder, generate, page_inputs
from dsocr_nsys.model.inputs import FALLBACK_PROMPT_IDS, default_image
from dsocr_nsys.model.llm import MoE, set_moe_impl
from dsocr_nsys.model.ranges import Ranges
from dsocr_nsys.settings import decode_attention, resolved_moe, variant

pytestmark = pytest.mark.usefixtures("one_cpu_thread")  # tests/conftest.py

TEXT = [i % 512 for i in FALLBACK_PROMPT_IDS]


def _settings(**kw) -> InferenceSettings:
    base = dict(preset="tiny", mode="tiny", device="cpu", dtype="float32", warmup=0, nvtx=False)
    base.update(kw)
    return InferenceSettings(**base)


@pytest.fixture(scope="module")
def tiny():
    return build_model(get_config("tiny"), "cpu", torch.float32, seed=4)


def _moe(model) -> MoE:
    return next(m for m in model.modules() if isinstance(m, MoE))


@pytest.mark.parametrize("tokens", [1, 2, 7])
@pytest.mark.parametrize(
    ("dtype", "kernel", "atol"),
    [(torch.float32, "gather_bmm", 1e-6), (torch.bfloat16, "grouped_mm", 0.0)],
)
@torch.no_grad()
def test_device_moe_equals_the_loop(
    tokens: int, dtype: torch.dtype, kernel: str, atol: float
) -> None:
    model = build_model(get_config("tiny"), "cpu", dtype, seed=7)
    moe = _moe(model)
    x = torch.randn(1, tokens, model.cfg.llm.hidden, generator=torch.Generator().manual_seed(1))
    x = x.to(dtype)
    moe.impl = "loop"
    loop = moe(x).float()
    moe.impl = "device"
    assert moe.device_kernel == kernel
    device = moe(x).float()
    assert torch.allclose(device, loop, atol=atol, rtol=1e-5)
    other = "gather_bmm" if kernel == "grouped_mm" else "grouped_mm"
    if other == "grouped_mm" and dtype != torch.bfloat16:
        return  # torch's grouped GEMM is bfloat16-only (float32 runs only in eager on a CPU)
    moe.kernel = other
    assert torch.allclose(moe(x).float(), loop, atol=1e-2 if dtype == torch.bfloat16 else atol)


def test_stacked_experts_are_the_parameters(tiny) -> None:
    moe = _moe(tiny)
    inter = tiny.cfg.llm.moe_intermediate
    assert moe.w13 is not None and moe.w2 is not None
    assert moe.w13.shape == (tiny.cfg.llm.routed_experts, 2 * inter, tiny.cfg.llm.hidden)
    e3 = moe.experts[3]
    assert e3.gate_proj.weight.data_ptr() == moe.w13[3].data_ptr()
    assert e3.up_proj.weight.data_ptr() == moe.w13[3, inter:].data_ptr()
    assert e3.down_proj.weight.data_ptr() == moe.w2[3].data_ptr()
    meta = build_model(get_config("tiny"), "meta")
    assert [n for n, _ in tiny.named_parameters()] == [n for n, _ in meta.named_parameters()]


@pytest.mark.parametrize("moe", ["loop", "device"])
def test_static_cache_decode_equals_dynamic(tiny, moe: str) -> None:
    """The padded-cache step (position on the device, whole cache masked) gives the tokens and
    the logits of the context-length step."""
    set_moe_impl(tiny, moe)
    try:
        plan = plan_request("tiny", default_image().size)
        glob, _ = page_inputs(default_image(), plan, 1, torch.device("cpu"), torch.float32)
        steps = 6
        dynamic, _ = generate(tiny, plan, glob, None, TEXT, steps, Ranges(False))
        decoder = Decoder(
            tiny, 1, plan.prefill_tokens + steps, torch.device("cpu"), torch.float32, static=True
        )
        assert decoder.static and decoder.prepare() == 0.0
        static, _ = generate(tiny, plan, glob, None, TEXT, steps, Ranges(False), decoder=decoder)
        assert static.tolist() == dynamic.tolist()
        # The logits of one step, both ways, after the same prefill.
        emb = prompt_embeds_for(tiny, plan, glob)
        cache = decoder.new_cache()
        first = tiny.llm(emb, cache=cache, start=0)[:, -1].argmax(-1)
        decoder.start(first, plan.prefill_tokens)
        with torch.inference_mode():
            padded = tiny.llm(tiny.llm.embed_tokens(first)[:, None], cache=cache, start=decoder.pos)
            fresh = Decoder(
                tiny, 1, plan.prefill_tokens + steps, torch.device("cpu"), torch.float32
            ).new_cache()
            tiny.llm(emb, cache=fresh, start=0)
            context = tiny.llm(
                tiny.llm.embed_tokens(first)[:, None], cache=fresh, start=plan.prefill_tokens
            )
        assert torch.allclose(padded, context, atol=1e-5, rtol=1e-5)
    finally:
        set_moe_impl(tiny, "loop")


@torch.inference_mode()
def prompt_embeds_for(model, plan, glob):
    from dsocr_nsys.model.generate import prompt_embeds

    return prompt_embeds(model, plan, glob, None, TEXT)


@pytest.mark.parametrize("mode", ["tiny", "gundam"])
def test_batch_of_pages_equals_each_page(tiny, mode: str) -> None:
    plan = plan_request(mode, default_image().size, 2 if mode == "gundam" else None)
    cpu = torch.device("cpu")
    one = page_inputs(default_image(), plan, 1, cpu, torch.float32)
    three = page_inputs(default_image(), plan, 3, cpu, torch.float32)
    single, _ = generate(tiny, plan, *one, TEXT, 3, Ranges(False))
    batch, _ = generate(tiny, plan, *three, TEXT, 3, Ranges(False))
    assert batch.shape == (3, 3)
    assert all(row == single.tolist() for row in batch.tolist())


def test_run_inference_records_the_variant() -> None:
    result = run_inference(_settings(max_new_tokens=3, batch=2, moe="device"))
    assert result.variant == {
        "decode": "eager",
        "moe": "device",
        "compile": False,
        "batch": 2,
        "decode_attention": "context",
        "compile_mode": None,
        "moe_kernel": "gather_bmm",
    }
    assert result.to_dict()["variant"] == result.variant
    assert len(result.generated_tokens) == 3


def test_compiled_decode_gives_the_eager_tokens() -> None:
    """torch.compile of the static-shape step (compiled in prepare, before the request)."""
    eager = run_inference(_settings(max_new_tokens=4))
    compiled = run_inference(_settings(max_new_tokens=4, compile=True))
    assert compiled.generated_tokens == eager.generated_tokens
    assert compiled.variant["decode_attention"] == "padded_cache"
    assert compiled.variant["compile_mode"] == "default"
    assert compiled.variant["moe"] == "device" and compiled.prepare_s > 0


def test_variant_defaults() -> None:
    assert variant(InferenceSettings()) == {
        "decode": "eager",
        "moe": "loop",
        "compile": False,
        "batch": 1,
        "decode_attention": "context",
    }
    graph = InferenceSettings(decode="cuda-graph")
    assert (resolved_moe(graph), decode_attention(graph)) == ("device", "padded_cache")
    assert resolved_moe(InferenceSettings(compile=True)) == "device"
    assert resolved_moe(InferenceSettings(compile=True, moe="loop")) == "loop"


def test_cuda_graph_on_a_cpu_is_one_line_exit_2() -> None:
    with pytest.raises(ModelError, match="needs a CUDA device"):
        run_inference(_settings(decode="cuda-graph"))
    args = ["infer", "--preset=tiny", "--mode=tiny", "--device=cpu", "--decode=cuda-graph"]
    result = CliRunner().invoke(launch_main, args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines == [
        "Error: --decode cuda-graph needs a CUDA device, not cpu; use --decode eager on a CPU "
        "(--compile works there)"
    ]


def test_cuda_graph_with_the_loop_moe_is_refused() -> None:
    with pytest.raises(ModelError, match="cannot capture --moe loop"):
        run_inference(_settings(device="cuda", decode="cuda-graph", moe="loop"))


def test_bad_batch() -> None:
    with pytest.raises(ModelError, match="--batch must be at least 1"):
        run_inference(_settings(batch=0))
