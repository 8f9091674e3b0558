"""Request inputs: resolution modes, gundam tiling, image token counts, prompt and pixels.

:func:`plan_request` is pure (no torch, no model): static compute and the MFU check call it to get
the same views and token counts the launcher runs.

Token layout (DeepSeek-OCR): a view of ``S`` pixels becomes a ``q x q`` grid of image tokens with
``q = ceil(S / 16 / 4)`` (16 px patches, then the 4x compressor); each grid row is followed by one
``image_newline`` token. Gundam tiles its crops into one ``(rows*q) x (cols*q)`` grid (newline per
tiled row) placed before the global view; one ``view_seperator`` ends the image. The prompt is
BOS + image tokens + the tokens of ``"\\n<|grounding|>Convert the document to markdown."``.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import InputFileError, ModelError

PATCH = 16
COMPRESSION = 4
# (global view size, crop size or None); gundam crops when the image exceeds one crop.
MODES: dict[str, tuple[int, int | None]] = {
    "tiny": (512, None),
    "small": (640, None),
    "base": (1024, None),
    "large": (1280, None),
    "gundam": (1024, 640),
}
MIN_CROPS = 2
MAX_CROPS = 9
# Image normalisation (DeepSeek-OCR: mean = std = 0.5 per channel); padding uses the mean colour.
IMAGE_MEAN = (0.5, 0.5, 0.5)
IMAGE_STD = (0.5, 0.5, 0.5)

PROMPT_TEXT = "\n<|grounding|>Convert the document to markdown."
# Stand-in ids when no tokenizer is available: the DeepSeek-OCR tokenizer splits PROMPT_TEXT
# into 8 tokens ("\n", "<|grounding|>" = 128820, "Convert", " the", " document", " to",
# " markdown", "."). Only the grounding id is the real one; the length is what matters.
FALLBACK_PROMPT_IDS: tuple[int, ...] = (201, 128820, 20448, 270, 3830, 304, 66015, 16)
BOS_ID = 0
# The generated default page: A4 portrait at 150 dpi.
DEFAULT_IMAGE_SIZE = (1240, 1754)


def tokens_per_side(view_size: int) -> int:
    """Image-token grid side of a square view: ceil(size / 16 / 4)."""
    return math.ceil(view_size / PATCH / COMPRESSION)


def _candidate_grids(min_num: int, max_num: int) -> list[tuple[int, int]]:
    """(cols, rows) with min_num <= cols*rows <= max_num, ordered by crop count (then cols)."""
    grids = {
        (i, j)
        for n in range(min_num, max_num + 1)
        for i in range(1, n + 1)
        for j in range(1, n + 1)
        if min_num <= i * j <= max_num
    }
    return sorted(grids, key=lambda g: (g[0] * g[1], g[0]))


def select_crop_grid(
    width: int,
    height: int,
    crop_size: int = 640,
    min_num: int = MIN_CROPS,
    max_num: int = MAX_CROPS,
) -> tuple[int, int]:
    """DeepSeek-OCR's aspect-ratio tiling rule: the (cols, rows) grid for a width x height image.

    Candidates are grids with ``min_num <= cols*rows <= max_num`` in increasing crop count. The
    grid whose aspect ratio cols/rows is closest to width/height wins; on an exact tie a later
    (larger) grid replaces the current one only if the image has more than half the pixels of
    that grid at full crop resolution (``w*h > 0.5 * crop_size**2 * cols*rows``).
    """
    aspect = width / height
    area = width * height
    best, best_diff = (1, 1), float("inf")
    for cols, rows in _candidate_grids(min_num, max_num):
        diff = abs(aspect - cols / rows)
        if diff < best_diff:
            best, best_diff = (cols, rows), diff
        elif diff == best_diff and area > 0.5 * crop_size * crop_size * cols * rows:
            best = (cols, rows)
    return best


def _grid_for_count(width: int, height: int, crops: int, crop_size: int) -> tuple[int, int]:
    """The grid with exactly ``crops`` tiles whose aspect ratio best fits the image."""
    return select_crop_grid(width, height, crop_size, min_num=crops, max_num=crops)


@dataclass(frozen=True)
class RequestPlan:
    """What one OCR request feeds the model; every count derives from mode and image size.

    ``views`` lists view sizes (square, pixels) in token order: the crops, then the global view.
    ``crop_grid`` is (columns, rows) or None without crops. ``image_tokens`` counts every image
    position (grid tokens + newlines + the separator); ``prefill_tokens`` is the whole prompt
    (BOS + image tokens + text tokens).
    """

    mode: str
    image_size: tuple[int, int]
    global_size: int
    crop_size: int | None
    crops: int
    crop_grid: tuple[int, int] | None
    views: tuple[int, ...]
    image_tokens: int
    text_tokens: int
    prefill_tokens: int

    @property
    def num_views(self) -> int:
        """Views through SAM/CLIP/projector (crops + 1 global)."""
        return len(self.views)

    @property
    def view_token_grids(self) -> tuple[int, ...]:
        """q (image-token grid side) per view, same order as ``views``."""
        return tuple(tokens_per_side(v) for v in self.views)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["num_views"] = self.num_views
        out["view_token_grids"] = list(self.view_token_grids)
        return out


def plan_request(
    mode: str,
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    crops: int | tuple[int, int] | None = None,
    text_tokens: int = len(FALLBACK_PROMPT_IDS),
) -> RequestPlan:
    """Plan a request: views, crop grid and token counts for ``mode`` on a (width, height) image.

    ``crops`` (gundam only) forces the crop count (2..9; the grid is the best-fitting one with
    that many tiles) or, as a (columns, rows) tuple, the grid itself. Gundam does not crop an
    image that fits in one crop (both sides <= 640): it runs the global view alone.
    """
    if mode not in MODES:
        raise ModelError(f"unknown mode {mode!r}; choose one of: {', '.join(MODES)}")
    global_size, crop_size = MODES[mode]
    width, height = int(image_size[0]), int(image_size[1])
    if width <= 0 or height <= 0:
        raise ModelError(f"image size must be positive, got {width}x{height}")
    grid: tuple[int, int] | None = None
    if crop_size is None:
        if crops is not None:
            raise ModelError(f"crops apply to gundam mode only, not {mode!r}; drop --crops")
    elif crops is not None:
        if isinstance(crops, tuple):
            grid = (int(crops[0]), int(crops[1]))
            if not MIN_CROPS <= grid[0] * grid[1] <= MAX_CROPS or min(grid) < 1:
                raise ModelError(
                    f"crop grid {grid[0]}x{grid[1]} must hold {MIN_CROPS}..{MAX_CROPS} crops"
                )
        else:
            if not MIN_CROPS <= int(crops) <= MAX_CROPS:
                raise ModelError(f"--crops must be {MIN_CROPS}..{MAX_CROPS}, got {crops}")
            grid = _grid_for_count(width, height, int(crops), crop_size)
    elif width > crop_size or height > crop_size:
        grid = select_crop_grid(width, height, crop_size)

    n_crops = grid[0] * grid[1] if grid else 0
    views = (crop_size,) * n_crops + (global_size,) if grid and crop_size else (global_size,)
    qg = tokens_per_side(global_size)
    image_tokens = qg * (qg + 1) + 1
    if grid and crop_size:
        qc = tokens_per_side(crop_size)
        cols, rows = grid
        image_tokens += (rows * qc) * (cols * qc + 1)
    return RequestPlan(
        mode=mode,
        image_size=(width, height),
        global_size=global_size,
        crop_size=crop_size if grid else None,
        crops=n_crops,
        crop_grid=grid,
        views=views,
        image_tokens=image_tokens,
        text_tokens=text_tokens,
        prefill_tokens=1 + image_tokens + text_tokens,
    )


# --- images -----------------------------------------------------------------------------------


def default_image() -> Any:
    """A deterministic document-like page (PIL RGB, A4 portrait): a title, paragraphs, a table."""
    from PIL import Image, ImageDraw

    width, height = DEFAULT_IMAGE_SIZE
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    rng = random.Random(0)
    words = ("model", "reads", "page", "pixels", "writes", "markdown", "layout", "tables")
    words += ("figures", "formulas", "headings", "lists", "optical", "compression", "vision")
    y = 90
    draw.rectangle((100, y, 900, y + 36), fill="black")  # title bar
    y += 90
    while y < height - 120:
        if rng.random() < 0.12:  # a small table
            for r in range(4):
                for c in range(4):
                    x0, y0 = 100 + c * 260, y + r * 40
                    draw.rectangle((x0, y0, x0 + 260, y0 + 40), outline="black", width=2)
                    draw.text((x0 + 10, y0 + 12), rng.choice(words), fill="black")
            y += 200
            continue
        for _ in range(rng.randint(3, 7)):  # a paragraph
            line = " ".join(rng.choice(words) for _ in range(rng.randint(12, 18)))
            draw.text((100, y), line, fill="black")
            y += 26
        y += 30
    return img


def load_image(path: Path | None) -> Any:
    """The image at ``path`` as PIL RGB, or the generated default page when ``path`` is None."""
    if path is None:
        return default_image()
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"image {path} does not exist; pass an existing PNG/JPEG file")
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise InputFileError(f"cannot read image {path} ({exc}); pass a PNG or JPEG file") from None


def _to_tensor(img: Any) -> Any:
    import numpy as np
    import torch

    arr = np.asarray(img, dtype=np.float32) / 255.0
    t = torch.from_numpy(arr).permute(2, 0, 1)
    mean = torch.tensor(IMAGE_MEAN)[:, None, None]
    std = torch.tensor(IMAGE_STD)[:, None, None]
    return (t - mean) / std


def _pad_square(img: Any, size: int) -> Any:
    """Resize keeping aspect ratio to fit size x size, centred on the mean colour."""
    from PIL import ImageOps

    fill = tuple(int(m * 255) for m in IMAGE_MEAN)
    return ImageOps.pad(img, (size, size), color=fill)


def prepare_pixels(img: Any, plan: RequestPlan) -> tuple[Any, Any | None]:
    """Normalised pixel tensors for ``plan``: global (1, 3, S, S) and crops (n, 3, c, c) or None.

    Views up to 640 px are a plain resize; larger global views are padded to a square. Crops
    come from the image resized to (cols*640, rows*640), cut row-major.
    """
    import torch
    from PIL import Image

    size = plan.global_size
    if plan.crops == 0 and size <= 640:
        glob = img.resize((size, size), Image.BICUBIC)
    else:
        glob = _pad_square(img, size)
    global_t = _to_tensor(glob).unsqueeze(0)
    if not plan.crops:
        return global_t, None
    assert plan.crop_grid is not None and plan.crop_size is not None
    cols, rows = plan.crop_grid
    c = plan.crop_size
    tiled = img.resize((cols * c, rows * c), Image.BICUBIC)
    crops = [
        _to_tensor(tiled.crop((x * c, y * c, (x + 1) * c, (y + 1) * c)))
        for y in range(rows)
        for x in range(cols)
    ]
    return global_t, torch.stack(crops)


# --- prompt -------------------------------------------------------------------------------------


def prompt_ids(weights: Path | None, vocab_size: int) -> tuple[list[int], str]:
    """Text token ids after the image and where they came from ("tokenizer" or "fixed").

    With a checkpoint directory holding ``tokenizer.json`` the real tokenizer encodes
    :data:`PROMPT_TEXT`; otherwise the fixed stand-in ids (same length), reduced modulo the
    vocabulary for small presets.
    """
    if weights is not None and (Path(weights) / "tokenizer.json").is_file():
        try:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(str(weights), local_files_only=True)
            ids = list(tok.encode(PROMPT_TEXT, add_special_tokens=False))
            return ids, "tokenizer"
        except Exception as exc:  # a broken tokenizer should not look like a model error
            raise ModelError(
                f"cannot load the tokenizer in {weights} ({exc}); remove tokenizer.json to use "
                "fixed prompt ids"
            ) from None
    return [i % vocab_size for i in FALLBACK_PROMPT_IDS], "fixed"
