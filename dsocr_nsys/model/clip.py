"""CLIP-L/14 vision transformer as DeepSeek-OCR uses it: SAM's features are its patch embeddings.

Submodule names follow the published checkpoint (``model.vision_model.*``):
``embeddings.{class_embedding,patch_embedding,position_embedding}``, ``pre_layrnorm``,
``transformer.layers.{i}.{layer_norm1,self_attn.qkv_proj,self_attn.out_proj,layer_norm2,mlp.fc1,
mlp.fc2}``. The patch convolution is a real parameter (it is in the checkpoint and the parameter
count) but DeepSeek-OCR never runs it. There is no post-LayerNorm.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ClipConfig


class ClipEmbeddings(nn.Module):
    def __init__(self, cfg: ClipConfig) -> None:
        super().__init__()
        self.pos_grid = cfg.pos_grid
        self.class_embedding = nn.Parameter(torch.zeros(cfg.width))
        # Unused at inference (SAM supplies the patch embeddings); kept for the checkpoint.
        self.patch_embedding = nn.Conv2d(
            3, cfg.width, kernel_size=cfg.patch_size, stride=cfg.patch_size, bias=False
        )
        self.position_embedding = nn.Embedding(cfg.pos_grid * cfg.pos_grid + 1, cfg.width)

    def _positions(self, grid_h: int, grid_w: int) -> torch.Tensor:
        table = self.position_embedding.weight
        if grid_h == self.pos_grid and grid_w == self.pos_grid:
            return table
        # CLS position kept; the 16x16 patch positions bicubic-resized to the feature grid.
        cls_pos, patch_pos = table[:1], table[1:]
        g = self.pos_grid
        patch_pos = patch_pos.reshape(1, g, g, -1).permute(0, 3, 1, 2).float()
        patch_pos = F.interpolate(
            patch_pos, size=(grid_h, grid_w), mode="bicubic", antialias=True, align_corners=False
        )
        patch_pos = patch_pos.to(table.dtype).permute(0, 2, 3, 1).reshape(grid_h * grid_w, -1)
        return torch.cat([cls_pos, patch_pos], dim=0)

    def forward(self, patch_embeds: torch.Tensor) -> torch.Tensor:
        """(B, width, h, w) SAM features -> (B, 1 + h*w, width) with CLS and positions."""
        b, _, gh, gw = patch_embeds.shape
        tokens = patch_embeds.flatten(2).transpose(1, 2)
        cls = self.class_embedding.to(tokens.dtype).expand(b, 1, -1)
        x = torch.cat([cls, tokens], dim=1)
        return x + self._positions(gh, gw).unsqueeze(0)


class ClipAttention(nn.Module):
    def __init__(self, cfg: ClipConfig) -> None:
        super().__init__()
        self.heads = cfg.heads
        self.head_dim = cfg.width // cfg.heads
        self.qkv_proj = nn.Linear(cfg.width, 3 * cfg.width)
        self.out_proj = nn.Linear(cfg.width, cfg.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.qkv_proj(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, -1))


class ClipMlp(nn.Module):
    def __init__(self, cfg: ClipConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(cfg.width, cfg.mlp_dim)
        self.fc2 = nn.Linear(cfg.mlp_dim, cfg.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        return self.fc2(h * torch.sigmoid(1.702 * h))  # quick-GELU


class ClipLayer(nn.Module):
    def __init__(self, cfg: ClipConfig) -> None:
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(cfg.width, eps=cfg.norm_eps)
        self.self_attn = ClipAttention(cfg)
        self.layer_norm2 = nn.LayerNorm(cfg.width, eps=cfg.norm_eps)
        self.mlp = ClipMlp(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class ClipTransformer(nn.Module):
    def __init__(self, cfg: ClipConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(ClipLayer(cfg) for _ in range(cfg.layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class ClipEncoder(nn.Module):
    """(B, width, h, w) SAM features -> (B, 1 + h*w, width) hidden states (CLS first)."""

    def __init__(self, cfg: ClipConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embeddings = ClipEmbeddings(cfg)
        self.pre_layrnorm = nn.LayerNorm(cfg.width, eps=cfg.norm_eps)
        self.transformer = ClipTransformer(cfg)

    def forward(self, sam_features: torch.Tensor) -> torch.Tensor:
        return self.transformer(self.pre_layrnorm(self.embeddings(sam_features)))
