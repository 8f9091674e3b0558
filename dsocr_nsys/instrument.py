"""Our NVTX stage ranges on a DeepSeek-OCR model the user runs themselves:
``handle = dsocr_nsys.instrument(model)`` ... ``handle.remove()``.

Two module layouts are recognised:

* the published one (Hugging Face ``DeepseekOCRForCausalLM``): ``model.sam_model``,
  ``model.vision_model``, ``model.projector``, ``model.layers`` and ``lm_head`` on the object
  whose ``forward`` runs one LLM step (its inner ``model`` runs the vision encoders on the
  prompt step, so they nest in ``prefill``);
* ours (:class:`dsocr_nsys.model.DeepseekOCR`): ``sam``, ``clip``, ``projector``, ``llm``.

Forward pre-hooks push and forward hooks pop the ranges (domain ``dsocr``, names from
:mod:`dsocr_nsys.vocab`, integer payloads as the launcher's):

* ``sam``, ``clip``, ``projector``: one range per call of the encoder, payload = the views in
  that call (its input's batch size). The launcher opens one range per stage over all views;
  with crops (gundam) a model that calls an encoder once for the crops and once for the global
  view gets two ranges per stage, whose payloads add up to the launcher's.
* ``prefill``: around an LLM forward over a prompt (no cached positions yet), payload = its
  sequence length; ``decode``: around each later forward, payload = the context length (cached
  positions + the new token), as the launcher's. A static-shape step (our ``--decode`` variants
  other than eager: the position is a device tensor) is counted from the prompt step on, as
  reading the tensor would wait for the device; steps replayed from a CUDA graph run no
  Python, so no hook sees them.

In our layout the vision encoders run before the LLM forward (the launcher's ``prompt_embeds``),
so their ranges are ``prefill``'s siblings, not nested in it; the published layout nests them
exactly as the launcher does. Hooks read shapes and the cache length only (no device sync).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import DsocrError
from .vocab import CLIP, DECODE, PREFILL, PROJECTOR, SAM

RangeFactory = Callable[[str, int], contextlib.AbstractContextManager[None]]

# (stage, our attribute, the published attribute under ``model``)
_VISION = (
    (SAM, "sam", "sam_model"),
    (CLIP, "clip", "vision_model"),
    (PROJECTOR, "projector", "projector"),
)


@dataclass
class Instrumentation:
    """The hooks :func:`instrument` added; :meth:`remove` takes them all off again."""

    layout: str
    handles: list[Any] = field(default_factory=list)
    open_ranges: list[contextlib.AbstractContextManager[None]] = field(default_factory=list)
    positions: int = 0  # positions the LLM step has run over since the last prompt step

    def remove(self) -> None:
        """Remove every hook (and close any range a failed forward left open)."""
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
        while self.open_ranges:
            self.open_ranges.pop().__exit__(None, None, None)


def _batch_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    first = args[0] if args else next(iter(kwargs.values()), None)
    shape = getattr(first, "shape", None)
    return int(shape[0]) if shape else 0


def _published_lengths(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[int, int]:
    """(new positions, cached positions) of a Hugging Face causal-LM forward."""
    ids = kwargs.get("input_ids", args[0] if args else None)
    if ids is None:
        ids = kwargs.get("inputs_embeds")
    new = int(ids.shape[1]) if ids is not None and len(ids.shape) > 1 else 0
    past = kwargs.get("past_key_values")
    if past is None:
        cached = 0
    elif hasattr(past, "get_seq_length"):
        cached = int(past.get_seq_length())
    else:  # the legacy tuple of (key, value) per layer: (batch, heads, positions, head_dim)
        cached = int(past[0][0].shape[-2]) if len(past) and past[0] is not None else 0
    return new, cached


def _our_lengths(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[int, int | None]:
    """(new positions, cached positions) of :meth:`DeepseekLM.forward`; cached None when
    ``start`` is a device tensor (the static-shape decode step), whose value is not read:
    that would wait for the device."""
    embeds = kwargs.get("inputs_embeds", args[0] if args else None)
    start = kwargs.get("start", args[2] if len(args) > 2 else 0)
    return int(embeds.shape[1]), start if isinstance(start, int) else None


def _layout(model: Any) -> tuple[str, Any, Any, Callable[..., tuple[int, int | None]]]:
    """(layout name, object holding the vision modules, the LLM step module, its lengths)."""
    if all(hasattr(model, a) for a in ("sam", "clip", "projector", "llm")):
        return "ours", model, model.llm, _our_lengths
    inner = getattr(model, "model", None)
    if inner is not None and hasattr(model, "lm_head") and hasattr(inner, "sam_model"):
        return "published", inner, model, _published_lengths
    raise DsocrError(
        f"instrument: {type(model).__name__} has neither the published DeepSeek-OCR layout "
        "(model.sam_model, model.vision_model, model.projector, model.layers, lm_head) nor "
        "ours (sam, clip, projector, llm); pass the DeepseekOCRForCausalLM (or our DeepseekOCR)"
    )


def instrument(model: Any, ranges: RangeFactory | None = None) -> Instrumentation:
    """Add the launcher's NVTX stage ranges to ``model``; returns the handle to remove them.

    ``ranges``: ``(name, payload) -> context manager`` (default: NVTX ranges in the ``dsocr``
    domain, :class:`dsocr_nsys.model.ranges.Ranges`; tests pass a recorder). Raises
    :class:`DsocrError` for a model of neither layout."""
    layout, vision_root, step, lengths = _layout(model)
    if ranges is None:
        from .model.ranges import Ranges

        ranges = Ranges(True)
    handle = Instrumentation(layout)
    factory = ranges

    def push(name: str, payload: int) -> None:
        cm = factory(name, payload)
        cm.__enter__()
        handle.open_ranges.append(cm)

    def pop(*_args: Any) -> None:
        if handle.open_ranges:
            handle.open_ranges.pop().__exit__(None, None, None)

    for stage, ours, theirs in _VISION:
        module = getattr(vision_root, ours if layout == "ours" else theirs)

        def vision_pre(_m: Any, args: Any, kwargs: Any, stage: str = stage) -> None:
            push(stage, _batch_of(args, kwargs))

        handle.handles.append(module.register_forward_pre_hook(vision_pre, with_kwargs=True))
        handle.handles.append(module.register_forward_hook(pop))

    def step_pre(_m: Any, args: Any, kwargs: Any) -> None:
        new, cached = lengths(args, kwargs)
        if cached is None:  # position on the device: the positions seen since the prompt step
            cached = handle.positions
        if cached == 0:
            push(PREFILL, new)
        else:
            push(DECODE, cached + new)
        handle.positions = cached + new

    handle.handles.append(step.register_forward_pre_hook(step_pre, with_kwargs=True))
    handle.handles.append(step.register_forward_hook(pop))
    return handle
