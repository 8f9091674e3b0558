"""SAM ViT-B image encoder with DeepSeek-OCR's convolutional 16x token compressor.

Submodule names follow the published checkpoint (``model.sam_model.*``): ``patch_embed.proj``,
``pos_embed``, ``blocks.{i}.{norm1,attn.qkv,attn.proj,attn.rel_pos_h,attn.rel_pos_w,norm2,
mlp.lin1,mlp.lin2}``, ``neck.{0..3}``, ``net_2``, ``net_3``.

Attention goes through ``scaled_dot_product_attention``; SAM's decomposed relative position
term (computed from the unscaled queries, as in SAM) enters as an additive float ``attn_mask``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import SamConfig


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of an NCHW tensor (SAM's neck norm)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class PatchEmbed(nn.Module):
    """16x16 stride-16 convolution: (B, 3, H, W) -> (B, H/16, W/16, width)."""

    def __init__(self, cfg: SamConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, cfg.width, kernel_size=cfg.patch_size, stride=cfg.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


class SamMlp(nn.Module):
    def __init__(self, width: int, mlp_dim: int) -> None:
        super().__init__()
        self.lin1 = nn.Linear(width, mlp_dim)
        self.lin2 = nn.Linear(mlp_dim, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(F.gelu(self.lin1(x)))


def _rel_pos_table(q_size: int, k_size: int, rel_pos: torch.Tensor) -> torch.Tensor:
    """Relative-position embeddings for every (query, key) offset: (q_size, k_size, head_dim).

    The stored table has ``2*size-1`` rows; for another grid it is linearly resized (as SAM does).
    """
    max_dist = 2 * max(q_size, k_size) - 1
    if rel_pos.shape[0] != max_dist:
        rel_pos = (
            F.interpolate(
                rel_pos.float().t().unsqueeze(0), size=max_dist, mode="linear", align_corners=False
            )
            .squeeze(0)
            .t()
            .to(rel_pos.dtype)
        )
    q_coords = torch.arange(q_size, device=rel_pos.device)[:, None] * max(k_size / q_size, 1.0)
    k_coords = torch.arange(k_size, device=rel_pos.device)[None, :] * max(q_size / k_size, 1.0)
    rel = (q_coords - k_coords) + (k_size - 1) * max(q_size / k_size, 1.0)
    return rel_pos[rel.long()]


class SamAttention(nn.Module):
    """Multi-head attention with decomposed relative position (``rel_pos_h``, ``rel_pos_w``)."""

    def __init__(self, cfg: SamConfig, rel_size: int) -> None:
        super().__init__()
        self.heads = cfg.heads
        self.head_dim = cfg.width // cfg.heads
        self.qkv = nn.Linear(cfg.width, 3 * cfg.width, bias=True)
        self.proj = nn.Linear(cfg.width, cfg.width)
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * rel_size - 1, self.head_dim))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * rel_size - 1, self.head_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        n = h * w
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (b, heads, n, head_dim)
        # Decomposed relative position bias from the unscaled queries.
        r_q = q.reshape(b * self.heads, h, w, self.head_dim)
        rh = _rel_pos_table(h, h, self.rel_pos_h)
        rw = _rel_pos_table(w, w, self.rel_pos_w)
        rel_h = torch.einsum("bhwc,hkc->bhwk", r_q, rh)
        rel_w = torch.einsum("bhwc,wkc->bhwk", r_q, rw)
        bias = (rel_h[:, :, :, :, None] + rel_w[:, :, :, None, :]).reshape(b, self.heads, n, n)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        out = out.transpose(1, 2).reshape(b, h, w, -1)
        return self.proj(out)


def _window_partition(x: torch.Tensor, window: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad (B, H, W, C) to a multiple of ``window`` and cut it into (B*nW, window, window, C)."""
    b, h, w, c = x.shape
    pad_h = (window - h % window) % window
    pad_w = (window - w % window) % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    x = x.view(b, hp // window, window, wp // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, c), (hp, wp)


def _window_unpartition(
    windows: torch.Tensor, window: int, padded: tuple[int, int], size: tuple[int, int]
) -> torch.Tensor:
    hp, wp = padded
    h, w = size
    b = windows.shape[0] // ((hp // window) * (wp // window))
    x = windows.view(b, hp // window, wp // window, window, window, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, -1)
    return x[:, :h, :w, :].contiguous()


class SamBlock(nn.Module):
    """Pre-norm transformer block; windowed (``window > 0``) or global attention."""

    def __init__(self, cfg: SamConfig, window: int) -> None:
        super().__init__()
        self.window = window
        self.norm1 = nn.LayerNorm(cfg.width, eps=cfg.norm_eps)
        self.attn = SamAttention(cfg, rel_size=window if window > 0 else cfg.pos_grid)
        self.norm2 = nn.LayerNorm(cfg.width, eps=cfg.norm_eps)
        self.mlp = SamMlp(cfg.width, cfg.mlp_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.window > 0:
            h, w = x.shape[1], x.shape[2]
            x, padded = _window_partition(x, self.window)
            x = self.attn(x)
            x = _window_unpartition(x, self.window, padded, (h, w))
        else:
            x = self.attn(x)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class SamEncoder(nn.Module):
    """(B, 3, S, S) pixels -> (B, downsample_channels[-1], S/64, S/64) features."""

    def __init__(self, cfg: SamConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.patch_embed = PatchEmbed(cfg)
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.pos_grid, cfg.pos_grid, cfg.width))
        self.blocks = nn.ModuleList(
            SamBlock(cfg, window=0 if i in cfg.global_attn_indexes else cfg.window_size)
            for i in range(cfg.depth)
        )
        c = cfg.neck_channels
        self.neck = nn.Sequential(
            nn.Conv2d(cfg.width, c, kernel_size=1, bias=False),
            LayerNorm2d(c, eps=cfg.norm_eps),
            nn.Conv2d(c, c, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(c, eps=cfg.norm_eps),
        )
        d2, d3 = cfg.downsample_channels
        self.net_2 = nn.Conv2d(c, d2, kernel_size=3, stride=2, padding=1, bias=False)
        self.net_3 = nn.Conv2d(d2, d3, kernel_size=3, stride=2, padding=1, bias=False)

    def _pos_embed(self, h: int, w: int) -> torch.Tensor:
        pos = self.pos_embed
        if pos.shape[1] == h and pos.shape[2] == w:
            return pos
        # Other resolutions: bicubic resize of the 64x64 table (antialiased when shrinking).
        pos = F.interpolate(
            pos.permute(0, 3, 1, 2).float(),
            size=(h, w),
            mode="bicubic",
            antialias=True,
            align_corners=False,
        )
        return pos.to(self.pos_embed.dtype).permute(0, 2, 3, 1)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(pixels)
        x = x + self._pos_embed(x.shape[1], x.shape[2])
        for block in self.blocks:
            x = block(x)
        x = self.neck(x.permute(0, 3, 1, 2))
        return self.net_3(self.net_2(x))
