"""dsocr_nsys.launch.options: the inference options and their round trip through argv."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from dsocr_nsys.errors import InputFileError
from dsocr_nsys.launch.options import (
    LaunchOptions,
    inference_options,
    options_from_kwargs,
)
from dsocr_nsys.model.generate import InferenceSettings


@click.command()
@inference_options
def _echo(**kwargs: Any) -> None:
    click.echo(repr(options_from_kwargs(kwargs)))


def _parse(argv: list[str]) -> LaunchOptions:
    captured: list[LaunchOptions] = []

    @click.command()
    @inference_options
    def cmd(**kwargs: Any) -> None:
        captured.append(options_from_kwargs(kwargs))

    result = CliRunner().invoke(cmd, argv, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return captured[0]


def test_fields_and_defaults_mirror_inference_settings() -> None:
    ours = {f.name: f.default for f in fields(LaunchOptions)}
    theirs = {f.name: f.default for f in fields(InferenceSettings)}
    assert ours == theirs


def test_cli_defaults_are_the_settings_defaults() -> None:
    assert _parse([]) == LaunchOptions()


def test_to_argv_exact(tmp_path: Path) -> None:
    image = tmp_path / "page.png"
    opts = LaunchOptions(mode="gundam", crops=4, image=image, max_new_tokens=64, nvtx=False)
    assert opts.to_argv() == [
        "--preset=full",
        "--mode=gundam",
        "--max-new-tokens=64",
        "--warmup=1",
        "--repeats=1",
        "--device=cuda",
        "--dtype=bfloat16",
        "--seed=0",
        "--crops=4",
        f"--image={image.resolve()}",
        "--no-nvtx",
        "--decode=eager",
        "--batch=1",
    ]


def test_to_argv_variants() -> None:
    opts = LaunchOptions(decode="cuda-graph", moe="device", compile=True, batch=16)
    assert opts.to_argv()[-4:] == ["--decode=cuda-graph", "--moe=device", "--compile", "--batch=16"]


def test_argv_round_trip(tmp_path: Path) -> None:
    opts = LaunchOptions(
        preset="tiny",
        mode="small",
        image=(tmp_path / "p.png").resolve(),
        weights=tmp_path.resolve(),
        max_new_tokens=7,
        warmup=0,
        repeats=3,
        device="cpu",
        dtype="float32",
        nvtx=False,
        seed=5,
        crops=2,
        moe="device",
        compile=True,
        batch=3,
    )
    assert _parse(opts.to_argv()) == opts


def test_to_settings_is_the_models_dataclass() -> None:
    settings = LaunchOptions(preset="tiny", max_new_tokens=3).to_settings()
    assert isinstance(settings, InferenceSettings)
    assert (settings.preset, settings.max_new_tokens, settings.nvtx) == ("tiny", 3, True)


def test_bad_mode_is_a_one_line_usage_error() -> None:
    result = CliRunner().invoke(_echo, ["--mode", "huge"])
    assert result.exit_code == 2
    assert "Invalid value for '--mode': 'huge' is not one of" in result.output


def test_validate_missing_image_and_weights(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"^image not found: .*absent\.png; pass an existing"):
        LaunchOptions(image=tmp_path / "absent.png").validate()
    with pytest.raises(InputFileError, match=r"^weights folder not found"):
        LaunchOptions(weights=tmp_path / "nope").validate()
    LaunchOptions(weights=tmp_path).validate()  # an existing folder passes
