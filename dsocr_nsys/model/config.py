"""Architecture hyper-parameters of DeepSeek-OCR, as presets.

``full`` is the published model (values from its ``config.json`` and encoder code); ``tiny`` keeps
the same topology -- every block type, the SAM window/global pattern, a dense first LLM layer,
MoE layers with shared experts and top-k routing -- at widths small enough for a CPU test.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import ModelError


@dataclass(frozen=True)
class SamConfig:
    """SAM ViT-B image encoder plus DeepSeek-OCR's 16x token compressor (net_2, net_3)."""

    width: int = 768
    depth: int = 12
    heads: int = 12
    mlp_dim: int = 3072
    patch_size: int = 16
    # The grid the absolute position embedding is stored for (1024 px / 16 px).
    pos_grid: int = 64
    window_size: int = 14
    global_attn_indexes: tuple[int, ...] = (2, 5, 8, 11)
    neck_channels: int = 256
    downsample_channels: tuple[int, int] = (512, 1024)
    norm_eps: float = 1e-6


@dataclass(frozen=True)
class ClipConfig:
    """CLIP-L/14-224 vision transformer, fed SAM's features as its patch embeddings."""

    width: int = 1024
    layers: int = 24
    heads: int = 16
    mlp_dim: int = 4096
    patch_size: int = 14
    # 224 px / 14 px = 16: 16 x 16 = 256 patch positions + 1 CLS = 257 position embeddings.
    pos_grid: int = 16
    norm_eps: float = 1e-5


@dataclass(frozen=True)
class LlmConfig:
    """DeepSeek-3B-MoE decoder (DeepseekV2 without MLA)."""

    hidden: int = 1280
    layers: int = 12
    heads: int = 10
    head_dim: int = 128
    dense_intermediate: int = 6848
    first_k_dense: int = 1
    routed_experts: int = 64
    experts_per_token: int = 6
    moe_intermediate: int = 896
    shared_experts: int = 2
    vocab_size: int = 129280
    rope_theta: float = 10000.0
    norm_eps: float = 1e-6
    bos_token_id: int = 0
    eos_token_id: int = 1
    max_position_embeddings: int = 8192

    @property
    def shared_intermediate(self) -> int:
        """The shared experts run as one SwiGLU whose width is their sum (2 x 896 = 1792)."""
        return self.shared_experts * self.moe_intermediate


@dataclass(frozen=True)
class ModelConfig:
    """The whole model: vision encoders, projector and language model."""

    preset: str
    sam: SamConfig = field(default_factory=SamConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    llm: LlmConfig = field(default_factory=LlmConfig)

    @property
    def projector_in(self) -> int:
        """Projector input width: CLIP features concatenated with SAM's compressed features."""
        return self.clip.width + self.sam.downsample_channels[-1]

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON description (for run.json)."""
        out = asdict(self)
        out["llm"]["shared_intermediate"] = self.llm.shared_intermediate
        out["projector"] = {"in_features": self.projector_in, "out_features": self.llm.hidden}
        return out


_TINY = ModelConfig(
    preset="tiny",
    sam=SamConfig(
        width=32,
        heads=2,
        mlp_dim=64,
        neck_channels=16,
        downsample_channels=(32, 64),
    ),
    clip=ClipConfig(width=64, layers=2, heads=4, mlp_dim=128),
    llm=LlmConfig(
        hidden=64,
        layers=3,
        heads=4,
        head_dim=16,
        dense_intermediate=128,
        routed_experts=8,
        experts_per_token=3,
        moe_intermediate=32,
        shared_experts=2,
        vocab_size=512,
    ),
)

PRESETS: dict[str, ModelConfig] = {"full": ModelConfig(preset="full"), "tiny": _TINY}


def get_config(preset: str) -> ModelConfig:
    """The configuration of a named preset; ModelError listing the presets otherwise."""
    try:
        return PRESETS[preset]
    except KeyError:
        raise ModelError(
            f"unknown model preset {preset!r}; choose one of: {', '.join(PRESETS)}"
        ) from None
