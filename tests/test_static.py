"""Static compute: three sources agree, known totals, bytes, the JSON contract, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from dsocr_nsys.cli import cli
from dsocr_nsys.errors import StaticFileError
from dsocr_nsys.model.config import get_config
from dsocr_nsys.static import formulas as F
from dsocr_nsys.static.compute import (
    STAGES,
    StaticOptions,
    _known_checks,
    compute_static,
    decode_context,
    document_tables,
    known_totals,
    write_static,
)
from dsocr_nsys.static.format import load_static, parse_static

FULL = get_config("full")
G = 1e9


@pytest.fixture(scope="module")
def full() -> dict:
    """The full model, gundam with 6 crops (the benchmark configuration; ~20 s)."""
    return compute_static(StaticOptions(preset="full", mode="gundam", crops=6)).document


@pytest.fixture(scope="module")
def tiny() -> dict:
    return compute_static(StaticOptions(preset="tiny", mode="gundam", crops=3)).document


# --- closed-form known totals (2 FLOPs per MAC) ---------------------------------------------


def test_sam_reference_totals() -> None:
    """Published back-of-envelope totals use the unpadded grid for SAM's linear layers."""
    assert round(2 * F.sam_reference_macs(1024, FULL.sam) / G) == 947  # "≈ 946" (946.56)
    assert round(2 * F.sam_reference_macs(640, FULL.sam) / G) == 319


def test_sam_as_run_adds_window_padding() -> None:
    """What the model runs: qkv/proj over 25 windows x 196 = 4900 tokens (not 4096) in each of
    the 8 windowed blocks at 1024 px; 9 x 196 = 1764 (not 1600) at 640 px."""
    for size, tokens, padded in ((1024, 4096, 4900), (640, 1600, 1764)):
        extra = 8 * (padded - tokens) * 768 * 4 * 768
        run = F.total_macs(F.sam_terms(size, size, FULL.sam))
        assert run - F.sam_reference_macs(size, FULL.sam) == extra
    assert 2 * F.total_macs(F.sam_terms(1024, 1024, FULL.sam)) == 976_909_172_736


def test_clip_totals() -> None:
    assert round(2 * F.total_macs(F.clip_terms(257, FULL.clip)) / G) == 162
    assert round(2 * F.total_macs(F.clip_terms(101, FULL.clip)) / G) == 62
    # 101 tokens = CLS + the 10 x 10 grid of a 640 crop
    assert F.sam_out_grid(640, 640, FULL.sam) == (10, 10)
    assert F.sam_out_grid(1024, 1024, FULL.sam) == (16, 16)


def test_llm_per_token_figures() -> None:
    lin = 2 * F.total_macs(F.llm_linear_terms(1, FULL.llm))
    assert round(lin / G, 2) == 0.82
    assert round(2 * F.total_macs(F.lm_head_terms(1, FULL.llm)) / G, 2) == 0.33
    assert 2 * F.decode_attention_macs_per_context(FULL.llm) == 61_440
    # decode step = linear + lm_head + 61,440 per unit of context
    step = 2 * F.total_macs(F.decode_terms(1000, FULL.llm))
    assert step == lin + 2 * 1280 * 129_280 + 61_440 * 1000


def test_causal_pairs() -> None:
    assert F.causal_pairs(4, 4) == 10
    assert F.causal_pairs(1, 7) == 1  # top-left aligned, as torch's is_causal
    assert F.causal_pairs(5, 3) == 6 + 2 * 3


# --- the three sources ----------------------------------------------------------------------


@pytest.mark.parametrize("which", ["tiny", "full"])
def test_three_sources_agree(which: str, request: pytest.FixtureRequest) -> None:
    doc = request.getfixturevalue(which)
    for name in STAGES:
        src = doc["stages"][name]["sources"]
        ref = src["formula"]["flops"]
        for other in ("fvcore", "flop_counter"):
            got = src[other]["flops"]
            assert abs(got - ref) <= 0.01 * ref, f"{which} {name}: {other} {got} vs formula {ref}"
        assert src["fvcore"]["flops"] == 2 * src["fvcore"]["macs"]
        # in fact exact: every operator with a contraction has an exact handle in each source
        assert src["fvcore"]["flops"] == ref == src["flop_counter"]["flops"], (which, name)
        assert src["fvcore"]["params"] == doc["stages"][name]["params"]  # parameter_count
        # activations: fvcore's ActivationCountAnalysis equals the formula's outputs
        assert src["fvcore"]["activations"] == doc["stages"][name]["activations"]


@pytest.mark.parametrize("mode", ["tiny", "large"])
def test_sources_exact_other_grids(mode: str) -> None:
    """512 px (32x32 grid, padded to 42: 9 windows) and 1280 px (80x80, padded to 84: 36
    windows, rel-pos tables resized 127 -> 159): the three sources agree exactly."""
    doc = compute_static(StaticOptions(preset="tiny", mode=mode, max_new_tokens=2)).document
    for name in STAGES:
        src = doc["stages"][name]["sources"]
        assert src["fvcore"]["flops"] == src["formula"]["flops"] == src["flop_counter"]["flops"], (
            f"{mode} {name}: {src}"
        )


def test_full_stage_figures(full: dict) -> None:
    s = full["stages"]
    cfg = full["config"]
    assert cfg["views"] == 7 and cfg["crops"] == 6
    assert cfg["prefill_tokens"] == 912 and cfg["image_tokens"] == 903
    assert cfg["decode_steps"] == 255 and cfg["decode_context_tokens"] == 912 + 128
    # per instance: one sam range covers the global view and the 6 crops
    sam_1024 = 2 * F.total_macs(F.sam_terms(1024, 1024, FULL.sam))
    sam_640 = 2 * F.total_macs(F.sam_terms(640, 640, FULL.sam))
    assert s["sam"]["flops"] == sam_1024 + 6 * sam_640
    assert round(s["clip"]["flops"] / G) == round(161.716 + 6 * 62.005)
    assert s["projector"]["flops"] == 2 * (256 + 600) * 2048 * 1280
    assert s["vision"]["flops"] == sum(s[k]["flops"] for k in ("sam", "clip", "projector"))
    assert s["prefill"]["flops"] == s["vision"]["flops"] + s["prefill"]["llm_flops"]
    # prefill LLM: 912 tokens of linear work, causal pairs, lm_head on the last position only
    lin = 2 * F.total_macs(F.llm_linear_terms(1, FULL.llm))
    expect = 912 * lin + 61_440 * (912 * 913 // 2) + 2 * 1280 * 129_280
    assert s["prefill"]["llm_flops"] == expect
    # MoE counts the experts used, never all 64
    assert (
        s["prefill"]["operators"]["matmul"] < 2 * 912 * 0.5e9 + s["vision"]["operators"]["matmul"]
    )
    # prefill reads every LLM weight (all 64 experts are chosen by some of 912 tokens) but only
    # the 9 embedding rows of the text tokens; vision weights once per call (crops, global)
    assert s["prefill"]["experts_touched_per_layer"] == 64.0
    llm_read = s["decode"]["params"] - (129_280 - 9) * 1280
    assert s["prefill"]["weight_bytes"] == s["vision"]["weight_bytes"] + 2 * llm_read
    assert s["sam"]["weight_bytes"] == 2 * 2 * s["sam"]["params"]
    assert s["prefill"]["kv_write_bytes"] == 2 * 12 * 1280 * 912 * 2
    assert s["sam"]["unsupported_ops"]  # listed, not hidden
    assert "aten::scaled_dot_product_attention" not in s["sam"]["unsupported_ops"]


def test_full_decode_coefficients_and_bytes(full: dict) -> None:
    d = full["stages"]["decode"]
    c = d["per_step"]
    assert c["flops_per_context"] == 61_440
    assert d["flops"] == c["flops_base"] + c["flops_per_context"] * 1040
    assert d["bytes"] == c["bytes_base"] + c["bytes_per_context"] * 1040
    # KV read per step: 2 (K,V) x 12 layers x 1280 x ctx x 2 bytes
    assert c["bytes_per_context"] == 2 * 12 * 1280 * 2
    assert d["kv_read_bytes"] == 2 * 12 * 1280 * 1040 * 2
    assert d["kv_write_bytes"] == 2 * 12 * 1280 * 2
    # weights touched: everything but 58 unused experts x 11 layers and the embedding table
    llm_params = 2_935_000_000  # ~2.935 B
    active = d["params_active"]
    unused = 11 * 58 * 3 * 1280 * 896 + 129_280 * 1280 - 1280
    assert abs(d["params"] - unused - active) == 0
    assert abs(d["params"] - llm_params) < 1e6
    assert d["weight_bytes"] == 2 * active
    # total over the run = sum of per-step figures at contexts 913..1167
    total = sum(c["flops_base"] + c["flops_per_context"] * (912 + j) for j in range(1, 256))
    assert d["total_flops"] == total


def test_params_match_model(full: dict) -> None:
    s = full["stages"]
    assert s["sam"]["params"] == 95_569_152 or round(s["sam"]["params"] / 1e6, 2) == 95.57
    assert round(s["clip"]["params"] / 1e6, 2) == 303.18
    assert round(s["projector"]["params"] / 1e6, 2) == 2.62
    assert s["prefill"]["params"] == 3_336_106_240


def test_context_modes() -> None:
    assert decode_context("auto", None, 912, 256, 8192) == 1040
    assert decode_context("fixed", 500, 912, 256, 8192) == 500
    assert decode_context("max", None, 912, 256, 8192) == 8192


# --- the JSON contract and the CLI ----------------------------------------------------------


def test_write_then_load(tmp_path: Path) -> None:
    result = compute_static(StaticOptions(preset="tiny", mode="base", max_new_tokens=8))
    paths = write_static(result, tmp_path / "static_compute.json")
    loaded = load_static(paths[0])
    assert paths[1].name == "static_compute.md" and "| sam |" in paths[1].read_text()
    assert set(loaded.stages) == set(STAGES)
    dec = loaded.stage("decode")
    assert dec.per_step is not None
    assert dec.per_step.flops(loaded.config["decode_context_tokens"]) == dec.flops
    assert loaded.config["decode_steps"] == 7


def test_cli_writes_json_and_md(tmp_path: Path) -> None:
    out = tmp_path / "sc.json"
    res = CliRunner().invoke(
        cli,
        [
            "static",
            "--preset",
            "tiny",
            "--mode",
            "small",
            "--max-new-tokens",
            "4",
            "--context-mode",
            "fixed",
            "--context",
            "300",
            "-o",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert doc["config"]["decode_context_mode"] == "fixed"
    assert doc["config"]["decode_context_tokens"] == 300
    assert (tmp_path / "sc.md").is_file()


def test_cli_table_to_stdout() -> None:
    res = CliRunner().invoke(
        cli, ["static", "--preset", "tiny", "--mode", "tiny", "--formulas-only", "-f", "csv"]
    )
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[0].startswith("stage,params_M,per_instance_flops")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--mode", "huge"], "unknown mode"),
        (["--mode", "gundam", "--crops", "12"], "2..9"),
        (["--mode", "gundam", "--crops", "1"], "2..9"),
        (["--mode", "base", "--crops", "3"], "gundam mode only"),
        (["--max-new-tokens", "-1"], "--max-new-tokens"),
        (["--context-mode", "fixed"], "--context N"),
        (["--context-mode", "fixed", "--context", "-5"], "--context"),
        (["--context-mode", "sometimes"], "context mode"),
        (["--image-size", "12by7"], "WxH"),
        (["--preset", "huge"], "preset"),
    ],
)
def test_cli_bad_input(args: list[str], needle: str) -> None:
    res = CliRunner().invoke(cli, ["static", "--preset", "tiny", "--formulas-only", *args])
    assert res.exit_code == 2
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error:") and needle in err[0], res.stderr


def test_tables_are_read_from_the_document() -> None:
    """The shown tables are a view of the written document: a reader of the JSON file gets
    the same tables back."""
    result = compute_static(StaticOptions(preset="tiny", mode="base", max_new_tokens=4))
    reread = document_tables(json.loads(json.dumps(result.document)))
    assert list(reread) == list(result.tables) == ["stages", "agreement", "operators", "checks"]
    for name, frame in result.tables.items():
        assert reread[name].equals(frame), name


def test_known_totals_are_one_data_table_with_sources() -> None:
    rows = known_totals()
    assert [r["expected"] for r in rows] == ["946", "319", "162", "62", "0.82", "0.33", "61440"]
    assert all(r["source"] for r in rows)
    checks = _known_checks(FULL, "full")
    assert [c["check"] for c in checks] == [r["check"] for r in rows]
    sam_1024 = checks[0]
    assert sam_1024["expected_gflops"] == 946.0
    assert sam_1024["reference_convention_gflops"] == 946.559  # docs: 946.56 unpadded
    assert sam_1024["model_runs_gflops"] == 976.909 and "window-padded" in sam_1024["why"]


def test_cli_output_suffix_sets_the_format(tmp_path: Path) -> None:
    """-o x.csv writes CSV (it once wrote JSON into it); -o x.json the static document."""
    base = ["static", "--preset", "tiny", "--mode", "tiny", "--formulas-only"]
    res = CliRunner().invoke(cli, [*base, "-o", str(tmp_path / "s.csv")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "s.csv").read_text().startswith("stage,params_M,per_instance_flops")
    res = CliRunner().invoke(cli, [*base, "-f", "csv", "-o", str(tmp_path / "s.json")])
    assert res.exit_code == 2 and "-f csv but -o" in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.csv"]
    res = CliRunner().invoke(cli, [*base, "-o", str(tmp_path / "s.json")])
    assert json.loads((tmp_path / "s.json").read_text())["schema_version"] == 1


@pytest.mark.parametrize("flops", [2**63 - 1, 1e30, 2**53 + 1])
def test_schema_bounds_counts(flops: float) -> None:
    doc = {"schema_version": 1, "stages": {"sam": {"flops": flops}}}
    with pytest.raises(StaticFileError, match="is greater than the maximum of 9007199254740992"):
        parse_static(doc)
    doc["stages"]["sam"]["flops"] = 2**53
    assert parse_static(doc).stages["sam"].flops == 2**53
