"""One OCR request end to end: build the model, prefill with the image, greedy decode with a KV
cache, NVTX ranges around each stage. :func:`run_inference` is the launcher's entry point.

Token convention (as Hugging Face ``generate``): the prefill's last logits give generated token 1;
each of the following ``max_new_tokens - 1`` decode steps feeds the previous token and yields the
next, so ``decode_steps = max_new_tokens - 1``. End-of-sequence is ignored: exactly
``max_new_tokens`` tokens are generated.

NVTX (domain ``dsocr``, integer payloads):

* ``request`` (payload: repeat index, from 0) around each timed iteration; untimed warmup
  iterations are wrapped in ``warmup`` (payload: warmup index) and carry no inner ranges.
* ``prefill`` (payload: prefill sequence length) around the vision encoders, the LLM forward over
  the prompt and the choice of token 1; nested in it ``sam``, ``clip``, ``projector`` (payload:
  number of views).
* ``decode`` (payload: context length = KV positions attended, the new token included =
  prefill_len + step, step from 1) around each decode step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import ModelError
from ..settings import InferenceSettings
from .config import get_config
from .deepseek_ocr import DeepseekOCR, build_model, parameter_counts, resolve_dtype
from .inputs import RequestPlan, load_image, plan_request, prepare_pixels, prompt_ids
from .llm import KVCache
from .ranges import Ranges

Progress = Callable[[str], None]


@dataclass
class InferenceResult:
    """What ran and how long it took.

    ``timings_s``: wall seconds per timed repeat (device synchronised at both ends);
    ``prefill_s``: host wall seconds from request start until token 1 was issued, per repeat
    (no extra sync; the MoE routing syncs keep the device within one layer + lm_head of it);
    ``generated_tokens``: the ids of the last repeat (identical across repeats: greedy).
    """

    plan: RequestPlan
    prefill_tokens: int
    decode_steps: int
    generated_tokens: list[int]
    timings_s: list[float]
    prefill_s: list[float]
    model_config: dict[str, Any]
    parameter_counts: dict[str, int]
    prompt_source: str
    device: str
    dtype: str
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def timings(self) -> list[float]:
        """Alias of ``timings_s`` (wall seconds per repeat)."""
        return self.timings_s

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON description of the run (for run.json)."""
        return {
            "plan": self.plan.to_dict(),
            "prefill_tokens": self.prefill_tokens,
            "decode_steps": self.decode_steps,
            "generated_tokens": list(self.generated_tokens),
            "timings_s": list(self.timings_s),
            "prefill_s": list(self.prefill_s),
            "model_config": self.model_config,
            "parameter_counts": dict(self.parameter_counts),
            "prompt_source": self.prompt_source,
            "device": self.device,
            "dtype": self.dtype,
            "settings": dict(self.settings),
        }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _check_settings(s: InferenceSettings) -> None:
    if s.max_new_tokens < 1:
        raise ModelError(f"--max-new-tokens must be at least 1, got {s.max_new_tokens}")
    if s.repeats < 1:
        raise ModelError(f"--repeats must be at least 1, got {s.repeats}")
    if s.warmup < 0:
        raise ModelError(f"--warmup must be 0 or more, got {s.warmup}")


def _resolve_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ModelError(f"unknown device {name!r}; use cuda, cuda:N or cpu") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelError("CUDA is not available here; run on a GPU machine or pass --device cpu")
    if device.type == "meta":
        raise ModelError("cannot run inference on the meta device; use cuda or cpu")
    return device


def prompt_embeds(
    model: DeepseekOCR,
    plan: RequestPlan,
    global_view: torch.Tensor,
    crops: torch.Tensor | None,
    text_ids: list[int],
    ranges: Ranges | None = None,
) -> torch.Tensor:
    """The prefill input (1, prefill_tokens, hidden): BOS, image embeddings, text embeddings."""
    image_embeds = model.encode_images(
        global_view, crops, plan.crop_grid, stage=ranges if ranges is not None else Ranges(False)
    )
    if image_embeds.shape[0] != plan.image_tokens:
        raise ModelError(
            f"internal: {image_embeds.shape[0]} image embeddings, plan says {plan.image_tokens}"
        )
    ids = torch.tensor([model.cfg.llm.bos_token_id, *text_ids], device=global_view.device)
    text_embeds = model.llm.embed_tokens(ids)
    return torch.cat([text_embeds[:1], image_embeds, text_embeds[1:]], dim=0)[None]


@torch.inference_mode()
def generate(
    model: DeepseekOCR,
    plan: RequestPlan,
    global_view: torch.Tensor,
    crops: torch.Tensor | None,
    text_ids: list[int],
    max_new_tokens: int,
    ranges: Ranges,
    progress: Progress | None = None,
    progress_every: int = 64,
) -> tuple[torch.Tensor, float]:
    """One request: prefill then ``max_new_tokens - 1`` cached decode steps.

    Returns the generated ids (max_new_tokens,) on the device and the host wall seconds until
    token 1 was issued (no extra sync: the MoE layers' routing syncs already bound it closely).
    """
    cfg = model.cfg.llm
    device = global_view.device
    prefill_len = plan.prefill_tokens
    start = time.perf_counter()
    with ranges("prefill", prefill_len):
        embeds = prompt_embeds(model, plan, global_view, crops, text_ids, ranges)
        cache = KVCache(cfg, 1, prefill_len + max_new_tokens, device, embeds.dtype)
        logits = model.llm(embeds, cache=cache, start=0)
        token = logits[:, -1].argmax(dim=-1)  # (1,)
    prefill_s = time.perf_counter() - start
    out = torch.empty(max_new_tokens, dtype=torch.long, device=device)
    out[0] = token[0]
    for step in range(1, max_new_tokens):
        context = prefill_len + step
        with ranges("decode", context):
            emb = model.llm.embed_tokens(token)[None]  # (1, 1, hidden)
            logits = model.llm(emb, cache=cache, start=context - 1)
            token = logits[:, -1].argmax(dim=-1)
            out[step] = token[0]
        if progress is not None and step % progress_every == 0:
            progress(f"  decoded {step + 1}/{max_new_tokens} tokens")
    return out, prefill_s


def run_inference(settings: InferenceSettings, progress: Progress | None = None) -> InferenceResult:
    """Build the model, plan and prepare the request, run warmups and timed repeats.

    ModelError for a bad mode/preset/dtype/device, unreadable weights, or CUDA running out of
    memory; InputFileError for a missing image.
    """
    say = progress or (lambda _m: None)
    _check_settings(settings)
    cfg = get_config(settings.preset)
    dtype = resolve_dtype(settings.dtype)
    image = load_image(settings.image)
    text_ids, prompt_source = prompt_ids(settings.weights, cfg.llm.vocab_size)
    plan = plan_request(settings.mode, image.size, settings.crops, text_tokens=len(text_ids))
    window = cfg.llm.max_position_embeddings
    if plan.prefill_tokens + settings.max_new_tokens > window:
        raise ModelError(
            f"prefill {plan.prefill_tokens} + {settings.max_new_tokens} new tokens exceeds the "
            f"model's {window}-position context; use fewer tokens or a smaller mode"
        )
    device = _resolve_device(settings.device)
    try:
        return _run(settings, plan, image, text_ids, prompt_source, cfg, dtype, device, say)
    except torch.cuda.OutOfMemoryError:  # torch.OutOfMemoryError in torch >= 2.5
        raise ModelError(
            f"CUDA out of memory running mode {settings.mode!r} with {settings.max_new_tokens} "
            "new tokens; try a smaller mode (base/small/tiny), fewer crops or fewer tokens"
        ) from None


def _run(
    settings: InferenceSettings,
    plan: RequestPlan,
    image: Any,
    text_ids: list[int],
    prompt_source: str,
    cfg: Any,
    dtype: torch.dtype,
    device: torch.device,
    say: Progress,
) -> InferenceResult:
    source = f"weights from {settings.weights}" if settings.weights else "random weights"
    say(f"Building DeepSeek-OCR ({settings.preset}, {source}) on {device} in {settings.dtype}...")
    t0 = time.perf_counter()
    model = build_model(cfg, device, dtype, settings.seed, settings.weights)
    _sync(device)
    counts = parameter_counts(model)
    say(f"Model ready: {counts['total']:,} parameters in {time.perf_counter() - t0:.1f} s")
    global_view, crops = prepare_pixels(image, plan)
    global_view = global_view.to(device=device, dtype=dtype)
    crops = crops.to(device=device, dtype=dtype) if crops is not None else None
    say(
        f"Request: mode {plan.mode}, {plan.num_views} view(s), {plan.image_tokens} image tokens, "
        f"prefill {plan.prefill_tokens} tokens, {settings.max_new_tokens} new tokens"
    )
    ranges = Ranges(settings.nvtx)
    quiet = ranges.off()
    every = max(1, min(64, settings.max_new_tokens // 4))
    for i in range(settings.warmup):
        say(f"Warmup {i + 1}/{settings.warmup}...")
        with ranges("warmup", i):
            generate(model, plan, global_view, crops, text_ids, settings.max_new_tokens, quiet)
            _sync(device)
    timings: list[float] = []
    prefill_times: list[float] = []
    tokens = torch.empty(0)
    for r in range(settings.repeats):
        say(f"Repeat {r + 1}/{settings.repeats}...")
        _sync(device)
        t_start = time.perf_counter()
        with ranges("request", r):
            tokens, prefill_s = generate(
                model,
                plan,
                global_view,
                crops,
                text_ids,
                settings.max_new_tokens,
                ranges,
                progress=say,
                progress_every=every,
            )
            _sync(device)
        timings.append(time.perf_counter() - t_start)
        prefill_times.append(prefill_s)
        say(f"Repeat {r + 1}/{settings.repeats}: {timings[-1]:.3f} s")
    return InferenceResult(
        plan=plan,
        prefill_tokens=plan.prefill_tokens,
        decode_steps=settings.max_new_tokens - 1,
        generated_tokens=[int(t) for t in tokens.tolist()],
        timings_s=timings,
        prefill_s=prefill_times,
        model_config=cfg.to_dict(),
        parameter_counts=counts,
        prompt_source=prompt_source,
        device=str(device),
        dtype=settings.dtype,
        settings={
            "preset": settings.preset,
            "mode": settings.mode,
            "image": str(settings.image) if settings.image else None,
            "weights": str(settings.weights) if settings.weights else None,
            "max_new_tokens": settings.max_new_tokens,
            "warmup": settings.warmup,
            "repeats": settings.repeats,
            "device": settings.device,
            "dtype": settings.dtype,
            "nvtx": settings.nvtx,
            "seed": settings.seed,
            "crops": settings.crops,
        },
    )
