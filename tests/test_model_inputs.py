"""Resolution modes, DeepSeek-OCR's crop tiling rule, token counts, pixels and prompt ids."""

from __future__ import annotations

import numpy as np
import pytest

from dsocr_nsys.errors import InputFileError, ModelError
from dsocr_nsys.model.inputs import (
    DEFAULT_IMAGE_SIZE,
    FALLBACK_PROMPT_IDS,
    MODES,
    default_image,
    load_image,
    plan_request,
    prepare_pixels,
    prompt_ids,
    select_crop_grid,
    tokens_per_side,
)


@pytest.mark.parametrize(
    ("size", "q"), [(512, 8), (640, 10), (1024, 16), (1280, 20), (1000, 16), (1025, 17)]
)
def test_tokens_per_side_is_ceil_of_size_over_64(size: int, q: int) -> None:
    assert tokens_per_side(size) == q


# (width, height) -> (columns, rows), worked by hand from the rule in select_crop_grid's docstring.
@pytest.mark.parametrize(
    ("size", "grid"),
    [
        ((1240, 1754), (2, 3)),  # A4 portrait, aspect 0.707: 2/3 (0.667) beats 3/4 (product 12)
        ((1754, 1240), (3, 2)),  # A4 landscape, aspect 1.414: 3/2
        ((3000, 1000), (3, 1)),  # exact 3:1
        ((500, 4000), (1, 8)),  # exact 1:8
        ((1000, 1000), (2, 2)),  # square tie 2x2 vs 3x3: 1e6 px <= half of 9 crops -> keep 2x2
        ((2000, 2000), (3, 3)),  # square tie, 4e6 px > 0.5 * 640^2 * 9 -> the larger 3x3
        ((600, 800), (2, 3)),  # aspect 0.75: 2/3 (diff 0.083) beats 1/1-excluded and 2/2
    ],
)
def test_crop_grid_follows_aspect_ratio_rule(size: tuple[int, int], grid: tuple[int, int]) -> None:
    assert select_crop_grid(*size) == grid


@pytest.mark.parametrize(
    ("mode", "image_tokens"),
    [
        ("tiny", 8 * 9 + 1),  # 73
        ("small", 10 * 11 + 1),  # 111
        ("base", 16 * 17 + 1),  # 273
        ("large", 20 * 21 + 1),  # 421
        # 2x3 crops tiled into a 30x20 grid + newline per row, then the global 16x16 (+16), sep
        ("gundam", 30 * 21 + 16 * 17 + 1),  # 903
    ],
)
def test_image_and_prefill_tokens_per_mode(mode: str, image_tokens: int) -> None:
    plan = plan_request(mode, DEFAULT_IMAGE_SIZE)
    assert plan.image_tokens == image_tokens
    assert plan.text_tokens == len(FALLBACK_PROMPT_IDS) == 8
    assert plan.prefill_tokens == 1 + image_tokens + 8


def test_gundam_plan_on_a4_lists_crops_then_global_view() -> None:
    plan = plan_request("gundam", (1240, 1754))
    assert plan.crops == 6
    assert plan.crop_grid == (2, 3)
    assert plan.views == (640,) * 6 + (1024,)
    assert plan.num_views == 7
    assert plan.view_token_grids == (10,) * 6 + (16,)
    assert plan.to_dict()["num_views"] == 7


def test_gundam_small_image_runs_global_view_only() -> None:
    plan = plan_request("gundam", (600, 640))
    assert plan.crops == 0 and plan.crop_grid is None and plan.views == (1024,)
    assert plan.image_tokens == 273


def test_forced_crop_count_and_grid() -> None:
    plan = plan_request("gundam", (1240, 1754), crops=4)
    assert plan.crop_grid == (2, 2)
    assert plan.image_tokens == 20 * 21 + 273
    plan = plan_request("gundam", (1240, 1754), crops=(1, 3))
    assert plan.crops == 3 and plan.image_tokens == 30 * 11 + 273


def test_plan_errors_are_model_errors_naming_the_fix() -> None:
    with pytest.raises(ModelError, match="unknown mode 'huge'; choose one of: tiny, small, base"):
        plan_request("huge")
    with pytest.raises(ModelError, match="gundam mode only"):
        plan_request("base", crops=4)
    with pytest.raises(ModelError, match=r"--crops must be 2\.\.9"):
        plan_request("gundam", crops=12)
    assert set(MODES) == {"tiny", "small", "base", "large", "gundam"}


def test_default_image_is_a4_portrait_and_deterministic() -> None:
    a, b = default_image(), default_image()
    assert a.size == DEFAULT_IMAGE_SIZE
    assert a.tobytes() == b.tobytes()
    # Mostly white page with dark text: neither blank nor black.
    grey = a.convert("L")
    dark = float((np.asarray(grey) < 128).mean())
    assert 0.005 < dark < 0.3


def test_missing_image_is_an_input_file_error(tmp_path) -> None:
    with pytest.raises(InputFileError, match="does not exist"):
        load_image(tmp_path / "nope.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(InputFileError, match="cannot read image"):
        load_image(bad)


def test_loaded_image_round_trips(tmp_path) -> None:
    path = tmp_path / "page.png"
    default_image().resize((620, 877)).save(path)
    assert load_image(path).size == (620, 877)


def test_pixels_shapes_and_normalisation() -> None:
    img = default_image()
    plan = plan_request("gundam", img.size)
    glob, crops = prepare_pixels(img, plan)
    assert tuple(glob.shape) == (1, 3, 1024, 1024)
    assert tuple(crops.shape) == (6, 3, 640, 640)
    # mean = std = 0.5: white -> 1.0, padding (mean colour 127) -> about 0.
    assert float(glob.max()) == pytest.approx(1.0)
    assert float(glob[0, 0, 512, 2]) == pytest.approx((127 / 255 - 0.5) / 0.5, abs=1e-6)
    glob, crops = prepare_pixels(img, plan_request("small", img.size))
    assert tuple(glob.shape) == (1, 3, 640, 640) and crops is None


def test_prompt_ids_without_tokenizer_are_fixed_and_fit_the_vocab() -> None:
    ids, source = prompt_ids(None, 129280)
    assert source == "fixed" and ids == list(FALLBACK_PROMPT_IDS)
    ids, _ = prompt_ids(None, 512)
    assert len(ids) == 8 and max(ids) < 512
