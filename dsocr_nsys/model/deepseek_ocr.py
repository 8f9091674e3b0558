"""The whole DeepSeek-OCR graph: SAM -> CLIP -> projector -> image-token layout -> MoE LLM.

Top-level submodules: ``sam`` (:class:`SamEncoder`), ``clip`` (:class:`ClipEncoder`),
``projector`` (``layers``: Linear 2048 -> 1280), ``llm`` (:class:`DeepseekLM`), and the two learned
layout vectors ``image_newline`` and ``view_seperator`` (spelling as in the checkpoint), which
belong to no stage.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn

from ..errors import ModelError
from .clip import ClipEncoder
from .config import ModelConfig
from .llm import DeepseekLM, MoE, RMSNorm
from .sam import LayerNorm2d, SamEncoder

# Opens an NVTX range (name, integer payload) for the vision stages; a no-op by default.
StageRange = Callable[[str, int], contextlib.AbstractContextManager[None]]


@contextlib.contextmanager
def _no_range(_name: str, _payload: int) -> Iterator[None]:
    yield


class Projector(nn.Module):
    """Linear map from concatenated [CLIP, SAM] features (2048) to the LLM width (1280)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.layers = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class DeepseekOCR(nn.Module):
    """DeepSeek-OCR with random or loaded weights; see :func:`build_model`."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.sam = SamEncoder(cfg.sam)
        self.clip = ClipEncoder(cfg.clip)
        self.projector = Projector(cfg.projector_in, cfg.llm.hidden)
        self.llm = DeepseekLM(cfg.llm)
        self.image_newline = nn.Parameter(torch.zeros(cfg.llm.hidden))
        self.view_seperator = nn.Parameter(torch.zeros(cfg.llm.hidden))

    def encode_images(
        self,
        global_view: torch.Tensor,
        crops: torch.Tensor | None = None,
        crop_grid: tuple[int, int] | None = None,
        stage: StageRange = _no_range,
    ) -> torch.Tensor:
        """Image embeddings of one page in DeepSeek-OCR's layout: (image_tokens, hidden).

        ``global_view`` is (1, 3, S, S); ``crops`` (n, 3, c, c) in row-major order of
        ``crop_grid`` = (columns, rows). Layout: the crops tiled into one grid with an
        ``image_newline`` after each row, then the global view with a newline after each row,
        then one ``view_seperator``. See :meth:`encode_pages` for several pages.
        """
        return self.encode_pages(global_view, crops, crop_grid, stage)[0]

    def encode_pages(
        self,
        global_views: torch.Tensor,
        crops: torch.Tensor | None = None,
        crop_grid: tuple[int, int] | None = None,
        stage: StageRange = _no_range,
    ) -> torch.Tensor:
        """Image embeddings of P pages of the same plan: (P, image_tokens, hidden).

        ``global_views`` is (P, 3, S, S); ``crops`` (P * n, 3, c, c), page by page. Each stage
        runs over the views of all pages inside one ``stage`` range (payload: number of views,
        all pages); crops and global views differ in size, so each stage is two batched calls
        when there are crops.
        """
        pages = global_views.shape[0]
        batches = [crops, global_views] if crops is not None else [global_views]
        views = sum(b.shape[0] for b in batches)
        with stage("sam", views):
            sam_out = [self.sam(b) for b in batches]  # (n, C, q, q)
        with stage("clip", views):
            clip_out = [self.clip(s) for s in sam_out]  # (n, 1 + q*q, W)
        with stage("projector", views):
            feats = [
                self.projector(torch.cat([c[:, 1:], s.flatten(2).transpose(1, 2)], dim=-1))
                for c, s in zip(clip_out, sam_out, strict=True)
            ]
        hidden = feats[0].shape[-1]
        newline = self.image_newline.to(feats[0].dtype)
        glob_all = feats[-1]
        q_glob = math.isqrt(glob_all.shape[1])
        out = []
        for page in range(pages):
            parts = []
            if crops is not None:
                if crop_grid is None:
                    raise ModelError("internal: crops given without their grid")
                cols, rows = crop_grid
                n = cols * rows
                local = feats[0][page * n : (page + 1) * n]
                q = math.isqrt(local.shape[1])
                local = local.view(rows, cols, q, q, hidden).permute(0, 2, 1, 3, 4)
                local = local.reshape(rows * q, cols * q, hidden)
                parts.append(_with_newlines(local, newline))
            glob = glob_all[page]
            parts.append(_with_newlines(glob.view(q_glob, q_glob, hidden), newline))
            parts.append(self.view_seperator.to(glob.dtype)[None, :])
            out.append(torch.cat(parts, dim=0))
        return torch.stack(out)


def _with_newlines(grid: torch.Tensor, newline: torch.Tensor) -> torch.Tensor:
    """(rows, cols, hidden) -> (rows * (cols + 1), hidden) with a newline ending each row."""
    rows = grid.shape[0]
    col = newline[None, None, :].expand(rows, 1, -1)
    return torch.cat([grid, col], dim=1).reshape(-1, grid.shape[-1])


# --- parameter counts -----------------------------------------------------------------------


def parameter_counts(model: DeepseekOCR) -> dict[str, int]:
    """Parameter counts: ``sam``, ``clip``, ``projector``, ``llm``, ``layout`` (image_newline +
    view_seperator) and ``total``. Works on the meta device."""
    counts = {
        name: sum(p.numel() for p in getattr(model, name).parameters())
        for name in ("sam", "clip", "projector", "llm")
    }
    counts["layout"] = model.image_newline.numel() + model.view_seperator.numel()
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts


# --- construction, initialisation, checkpoint loading ---------------------------------------

_DTYPES = {
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "float32": torch.float32,
    "fp32": torch.float32,
}


def resolve_dtype(name: str) -> torch.dtype:
    """torch dtype for a name (bfloat16, float16, float32); ModelError otherwise."""
    try:
        return _DTYPES[name]
    except KeyError:
        raise ModelError(
            f"unknown dtype {name!r}; choose one of: bfloat16, float16, float32"
        ) from None


def build_model(
    cfg: ModelConfig,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    weights: Path | None = None,
) -> DeepseekOCR:
    """Build the model on ``device`` (``meta`` allowed: shapes only, no memory).

    Parameters are allocated once, directly in ``dtype`` on ``device``, then either filled from a
    safetensors checkpoint directory (``weights``) or initialised randomly and deterministically
    from ``seed``: normal(0, 0.02) for weights and embeddings, zeros for biases, ones for norm
    scales. The routed experts' weights live in stacked tensors (:meth:`MoE.stack_experts`), so
    do not move the model afterwards (``.to``): build it where it runs. Eval mode.
    """
    with torch.device("meta"):
        model = DeepseekOCR(cfg)
    model.eval()
    device = torch.device(device)
    if device.type == "meta":
        return model.to(dtype) if dtype != torch.float32 else model
    model._apply(lambda t: torch.empty_like(t, device=device, dtype=dtype))
    for module in model.modules():
        if isinstance(module, MoE):
            module.stack_experts()  # before filling: the experts' parameters become views
    if weights is not None:
        load_weights(model, weights)
    else:
        init_random(model, seed)
    return model


@torch.no_grad()
def init_random(model: nn.Module, seed: int) -> None:
    """Deterministic random initialisation (same seed, device and dtype -> same weights)."""
    first = next(model.parameters())
    gen = torch.Generator(device=first.device).manual_seed(seed)
    norm_params: set[int] = set()
    for module in model.modules():
        if isinstance(module, (nn.LayerNorm, LayerNorm2d, RMSNorm)):
            module.weight.fill_(1.0)
            norm_params.add(id(module.weight))
            bias = getattr(module, "bias", None)
            if bias is not None:
                bias.zero_()
                norm_params.add(id(bias))
    for name, param in model.named_parameters():
        if id(param) in norm_params:
            continue
        if name.endswith(".bias"):
            param.zero_()
        else:
            param.normal_(0.0, 0.02, generator=gen)


# Our parameter-name prefix -> the published checkpoint's prefix (first match wins).
_CHECKPOINT_PREFIXES: tuple[tuple[str, str], ...] = (
    ("sam.", "model.sam_model."),
    ("clip.", "model.vision_model."),
    ("projector.", "model.projector."),
    ("llm.lm_head.", "lm_head."),
    ("llm.", "model."),
    ("image_newline", "model.image_newline"),
    ("view_seperator", "model.view_seperator"),
)


def checkpoint_name(name: str) -> str:
    """The published checkpoint's tensor name for one of our parameter names."""
    for ours, theirs in _CHECKPOINT_PREFIXES:
        if name.startswith(ours):
            return theirs + name[len(ours) :]
    raise ModelError(f"internal: no checkpoint name for parameter {name!r}")


def _name_list(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(sorted(names)[:limit])
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return shown + more


@torch.no_grad()
def load_weights(model: DeepseekOCR, directory: Path) -> None:
    """Fill ``model`` from the ``*.safetensors`` files in ``directory`` (published names).

    ModelError, naming the tensors, when the directory is missing, holds no safetensors, lacks a
    tensor the model needs, has one it does not know, or has one of another shape.
    """
    from safetensors import safe_open

    directory = Path(directory)
    if not directory.is_dir():
        raise ModelError(f"weights directory {directory} does not exist; pass a local checkpoint")
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise ModelError(
            f"no *.safetensors files in {directory}; pass the directory of a DeepSeek-OCR "
            "checkpoint"
        )
    params = {checkpoint_name(n): p for n, p in model.named_parameters()}
    seen: set[str] = set()
    unexpected: list[str] = []
    wrong_shape: list[str] = []
    for file in files:
        with safe_open(str(file), framework="pt", device="cpu") as handle:
            for key in handle.keys():  # noqa: SIM118 (safe_open is not a dict)
                param = params.get(key)
                if param is None:
                    unexpected.append(key)
                    continue
                tensor = handle.get_tensor(key)
                if tuple(tensor.shape) != tuple(param.shape):
                    wrong_shape.append(f"{key} {tuple(tensor.shape)} (model: {tuple(param.shape)})")
                    continue
                param.copy_(tensor.to(device=param.device, dtype=param.dtype))
                seen.add(key)
    missing = [k for k in params if k not in seen and k not in {w.split()[0] for w in wrong_shape}]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensor(s): {_name_list(missing)}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} tensor(s): {_name_list(unexpected)}")
    if wrong_shape:
        problems.append(f"{len(wrong_shape)} of another shape: {_name_list(wrong_shape)}")
    if problems:
        raise ModelError(
            f"checkpoint {directory} does not match the {model.cfg.preset!r} preset: "
            + "; ".join(problems)
            + " -- use a DeepSeek-OCR checkpoint (or the matching --preset)"
        )
