"""One OCR request end to end: build the model, prefill with the image, greedy decode with a KV
cache, NVTX ranges around each stage. :func:`run_inference` is the launcher's entry point.

Token convention (as Hugging Face ``generate``): the prefill's last logits give generated token 1;
each of the following ``max_new_tokens - 1`` decode steps feeds the previous token and yields the
next, so ``decode_steps = max_new_tokens - 1``. End-of-sequence is ignored: exactly
``max_new_tokens`` tokens are generated.

NVTX (domain ``dsocr``, integer payloads):

* ``request`` (payload: repeat index, from 0) around each timed iteration; untimed warmup
  iterations are wrapped in ``warmup`` (payload: warmup index) and carry no inner ranges.
* ``prefill`` (payload: prefill sequence length of one page) around the vision encoders, the LLM
  forward over the prompt and the choice of token 1; nested in it ``sam``, ``clip``,
  ``projector`` (payload: number of views, all pages of the batch together).
* ``decode`` (payload: context length of one sequence = KV positions holding real tokens, the
  new token included = prefill_len + step, step from 1) around each decode step.

With ``batch`` N every request carries N pages (the same page N times): vision runs over N times
the views, prefill and decode over N sequences of the same length; the payloads keep the
meanings above and the batch is recorded in run.json and the static file's config.

Decode variants (:class:`Decoder`): ``eager`` with the context-length cache (today's path), or
the static-shape step (whole cache, masked; position on the device) run eagerly, compiled, or
captured once into a CUDA graph and replayed per token. Compilation and capture happen in
:meth:`Decoder.prepare`, before any warm-up or timed request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import ModelError
from ..settings import (
    DECODE_MODES,
    MOE_IMPLS,
    InferenceSettings,
    decode_attention,
    resolved_moe,
    variant,
    variant_problem,
)
from .config import LlmConfig, get_config
from .deepseek_ocr import DeepseekOCR, build_model, parameter_counts, resolve_dtype
from .inputs import RequestPlan, load_image, plan_request, prepare_pixels, prompt_ids
from .llm import KVCache, MoE, set_moe_impl
from .ranges import Ranges

COMPILE_MODE = "default"  # torch.compile's mode for the decode step (recorded in run.json)
GRAPH_WARMUP_STEPS = 3  # eager steps on a side stream before capture (PyTorch's recipe)

Progress = Callable[[str], None]


@dataclass
class InferenceResult:
    """What ran and how long it took.

    ``timings_s``: wall seconds per timed repeat (device synchronised at both ends);
    ``prefill_s``: host wall seconds from request start until token 1 was issued, per repeat
    (no extra sync; the MoE routing syncs keep the device within one layer + lm_head of it);
    ``generated_tokens``: the ids of the last repeat (identical across repeats: greedy), of the
    first page when the batch has several (every page is the same page);
    ``variant``: decode, moe, compile, batch, decode_attention (:func:`settings.variant`);
    ``prepare_s``: host seconds of :meth:`Decoder.prepare` (compilation, graph capture).
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
    variant: dict[str, Any] = field(default_factory=dict)
    prepare_s: float = 0.0

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
            "variant": dict(self.variant),
            "prepare_s": self.prepare_s,
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
    if s.batch < 1:
        raise ModelError(f"--batch must be at least 1, got {s.batch}")
    if s.decode not in DECODE_MODES:
        raise ModelError(f"unknown --decode {s.decode!r}; choose one of: {', '.join(DECODE_MODES)}")
    if s.moe is not None and s.moe not in MOE_IMPLS:
        raise ModelError(f"unknown --moe {s.moe!r}; choose one of: {', '.join(MOE_IMPLS)}")
    problem = variant_problem(s)
    if problem:
        raise ModelError(problem)


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
    """The prefill input (P, prefill_tokens, hidden) of P pages (``global_view`` (P, 3, S, S),
    ``crops`` (P * n, 3, c, c)): BOS, image embeddings, text embeddings."""
    image_embeds = model.encode_pages(
        global_view, crops, plan.crop_grid, stage=ranges if ranges is not None else Ranges(False)
    )
    if image_embeds.shape[1] != plan.image_tokens:
        raise ModelError(
            f"internal: {image_embeds.shape[1]} image embeddings, plan says {plan.image_tokens}"
        )
    pages = image_embeds.shape[0]
    ids = torch.tensor([model.cfg.llm.bos_token_id, *text_ids], device=global_view.device)
    text_embeds = model.llm.embed_tokens(ids)[None].expand(pages, -1, -1)
    return torch.cat([text_embeds[:, :1], image_embeds, text_embeds[:, 1:]], dim=1)


class Decoder:
    """The decode machinery of one model build for requests of ``batch`` sequences of at most
    ``max_len`` positions.

    ``static`` False (``decode_attention: context``): a fresh cache per request, each step
    attends the real context (today's eager path). ``static`` True (``padded_cache``): one
    persistent cache, the position lives in a device tensor, each step attends the whole cache
    masked; the step (:meth:`_advance`) is run eagerly, compiled (``compile``), or captured into
    a ``torch.cuda.CUDAGraph`` (``graph``) and replayed.
    """

    def __init__(
        self,
        model: DeepseekOCR,
        batch: int,
        max_len: int,
        device: torch.device,
        dtype: torch.dtype,
        *,
        static: bool = False,
        compile: bool = False,
        graph: bool = False,
    ) -> None:
        self.model = model
        self.cfg: LlmConfig = model.cfg.llm
        self.batch, self.max_len = batch, max_len
        self.device, self.dtype = device, dtype
        self.static = static or compile or graph
        self.graph: torch.cuda.CUDAGraph | None = None
        self._want_graph = graph
        self._compiled = compile
        self.cache: KVCache | None = None
        self.token = torch.zeros(batch, dtype=torch.long, device=device)
        self.pos = torch.zeros((), dtype=torch.long, device=device)
        self._body: Callable[[], None] = self._advance
        if self.static:
            self.cache = KVCache(self.cfg, batch, max_len, device, dtype)
            for buf in (*self.cache.k, *self.cache.v):
                buf.zero_()  # capture-time warm-up steps read it: keep it finite
        if compile:
            self._body = torch.compile(self._advance, mode=COMPILE_MODE, dynamic=False)

    def _advance(self) -> None:
        """One static-shape decode step: feed ``token`` at ``pos``, leave the next token in
        ``token`` and ``pos + 1`` in ``pos`` (all on the device)."""
        llm = self.model.llm
        emb = llm.embed_tokens(self.token)[:, None]  # (B, 1, hidden)
        logits = llm(emb, cache=self.cache, start=self.pos)
        self.token.copy_(logits[:, -1].argmax(dim=-1))
        self.pos.add_(1)

    @torch.inference_mode()
    def prepare(self, say: Progress | None = None) -> float:
        """Compile (first calls) and capture, outside any request; returns host seconds."""
        if not (self._want_graph or self._compiled):
            return 0.0  # nothing to build: the eager step runs as it is
        say = say or (lambda _m: None)
        t0 = time.perf_counter()
        steps = GRAPH_WARMUP_STEPS
        if self._want_graph:
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for _ in range(steps):
                    self._body()
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self._body()
            self.graph = graph
        else:
            for _ in range(steps):
                self._body()
        _sync(self.device)
        seconds = time.perf_counter() - t0
        what = "captured the decode step" if self._want_graph else "compiled the decode step"
        say(f"Decoder: {what} in {seconds:.1f} s")
        return seconds

    def new_cache(self) -> KVCache:
        """The cache a request's prefill writes: the persistent one, or a fresh one."""
        if self.cache is not None:
            return self.cache
        return KVCache(self.cfg, self.batch, self.max_len, self.device, self.dtype)

    def start(self, token: torch.Tensor, prefill_len: int) -> None:
        """Before the first static step: token 1 (B,) and its position."""
        self.token.copy_(token)
        self.pos.fill_(prefill_len)

    def step(self, token: torch.Tensor, cache: KVCache, context: int) -> torch.Tensor:
        """Decode step ``context - prefill_len``: the next token (B,) on the device."""
        if not self.static:
            emb = self.model.llm.embed_tokens(token)[:, None]  # (B, 1, hidden)
            logits = self.model.llm(emb, cache=cache, start=context - 1)
            return logits[:, -1].argmax(dim=-1)
        if self.graph is not None:
            self.graph.replay()
        else:
            self._body()
        return self.token


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
    decoder: Decoder | None = None,
    mark: Callable[[str], None] | None = None,
) -> tuple[torch.Tensor, float]:
    """One request: prefill then ``max_new_tokens - 1`` cached decode steps, for the pages of
    ``global_view`` (P, 3, S, S).

    Returns the generated ids (P, max_new_tokens) on the device -- (max_new_tokens,) when P is
    1 -- and the host wall seconds until token 1 was issued (no extra sync: the MoE layers'
    routing syncs bound it closely with ``--moe loop``; with ``device`` the host runs ahead).
    ``decoder``: the variant's :class:`Decoder` (default: eager, context attention).
    ``mark``: called with ``"prefill"`` once token 1 is issued and ``"decode"`` after the last
    step (the benchmark records CUDA events there).
    """
    device = global_view.device
    pages = global_view.shape[0]
    prefill_len = plan.prefill_tokens
    if decoder is None:
        decoder = Decoder(model, pages, prefill_len + max_new_tokens, device, global_view.dtype)
    start = time.perf_counter()
    with ranges("prefill", prefill_len):
        embeds = prompt_embeds(model, plan, global_view, crops, text_ids, ranges)
        cache = decoder.new_cache()
        logits = model.llm(embeds, cache=cache, start=0)
        token = logits[:, -1].argmax(dim=-1)  # (P,)
    prefill_s = time.perf_counter() - start
    if mark is not None:
        mark("prefill")
    out = torch.empty(pages, max_new_tokens, dtype=torch.long, device=device)
    out[:, 0] = token
    if decoder.static:
        decoder.start(token, prefill_len)
    for step in range(1, max_new_tokens):
        context = prefill_len + step
        with ranges("decode", context):
            token = decoder.step(token, cache, context)
            out[:, step] = token
        if progress is not None and step % progress_every == 0:
            progress(f"  decoded {step + 1}/{max_new_tokens} tokens")
    if mark is not None:
        mark("decode")
    return (out[0] if pages == 1 else out), prefill_s


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
    set_moe_impl(model, resolved_moe(settings))
    _sync(device)
    counts = parameter_counts(model)
    say(f"Model ready: {counts['total']:,} parameters in {time.perf_counter() - t0:.1f} s")
    pages = settings.batch
    global_view, crops = page_inputs(image, plan, pages, device, dtype)
    say(
        f"Request: mode {plan.mode}, {plan.num_views} view(s), {plan.image_tokens} image tokens, "
        f"prefill {plan.prefill_tokens} tokens, {settings.max_new_tokens} new tokens, "
        f"batch {pages}; variant {_variant_line(settings)}"
    )
    decoder = make_decoder(model, settings, plan, device, dtype)
    prepare_s = decoder.prepare(say)
    ranges = Ranges(settings.nvtx)
    quiet = ranges.off()
    every = max(1, min(64, settings.max_new_tokens // 4))
    for i in range(settings.warmup):
        say(f"Warmup {i + 1}/{settings.warmup}...")
        with ranges("warmup", i):
            generate(
                model,
                plan,
                global_view,
                crops,
                text_ids,
                settings.max_new_tokens,
                quiet,
                decoder=decoder,
            )
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
                decoder=decoder,
            )
            _sync(device)
        timings.append(time.perf_counter() - t_start)
        prefill_times.append(prefill_s)
        say(f"Repeat {r + 1}/{settings.repeats}: {timings[-1]:.3f} s")
    return InferenceResult(
        plan=plan,
        prefill_tokens=plan.prefill_tokens,
        decode_steps=settings.max_new_tokens - 1,
        generated_tokens=[int(t) for t in tokens.reshape(pages, -1)[0].tolist()],
        timings_s=timings,
        prefill_s=prefill_times,
        model_config=cfg.to_dict(),
        parameter_counts=counts,
        prompt_source=prompt_source,
        device=str(device),
        dtype=settings.dtype,
        settings=settings.as_record(),
        variant={
            **variant(settings),
            "compile_mode": COMPILE_MODE if settings.compile else None,
            "moe_kernel": moe_kernel(model) if resolved_moe(settings) == "device" else None,
        },
        prepare_s=prepare_s,
    )


def page_inputs(
    image: Any, plan: RequestPlan, pages: int, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The pixels of ``pages`` copies of the page: global views (P, 3, S, S) and crops
    (P * n, 3, c, c) or None, on ``device`` in ``dtype``."""
    global_view, crops = prepare_pixels(image, plan)
    global_view = global_view.to(device=device, dtype=dtype).expand(pages, -1, -1, -1)
    if crops is not None:
        crops = crops.to(device=device, dtype=dtype).repeat(pages, 1, 1, 1)
    return global_view, crops


def make_decoder(
    model: DeepseekOCR,
    settings: InferenceSettings,
    plan: RequestPlan,
    device: torch.device,
    dtype: torch.dtype,
) -> Decoder:
    """The :class:`Decoder` of the settings' variant (set the model's MoE first:
    :func:`set_moe_impl`); call its :meth:`Decoder.prepare` before the first request."""
    return Decoder(
        model,
        settings.batch,
        plan.prefill_tokens + settings.max_new_tokens,
        device,
        dtype,
        static=decode_attention(settings) == "padded_cache",
        compile=settings.compile,
        graph=settings.decode == "cuda-graph",
    )


def moe_kernel(model: DeepseekOCR) -> str | None:
    """The routed-expert kernel of the model's ``device`` MoE path (None: no MoE layer)."""
    moe = next((m for m in model.modules() if isinstance(m, MoE)), None)
    return moe.device_kernel if moe is not None else None


def _variant_line(settings: InferenceSettings) -> str:
    v = variant(settings)
    return ", ".join(f"{k} {v[k]}" for k in ("decode", "moe", "compile", "decode_attention"))
