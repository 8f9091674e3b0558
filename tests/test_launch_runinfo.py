"""dsocr_nsys.launch.runinfo: run.json assembly (pure), JSON conversion, the latest pointer."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from dsocr_nsys import __version__
from dsocr_nsys.launch.runinfo import (
    NSYS_REP,
    SQLITE,
    build_run_record,
    nsys_rep_for,
    point_latest,
    resolve_latest,
    to_jsonable,
    wall_timings,
    write_json_atomic,
)
from dsocr_nsys.model.inputs import plan_request

OPTIONS = {
    "preset": "full",
    "mode": "gundam",
    "image": None,
    "weights": None,
    "max_new_tokens": 64,
    "warmup": 1,
    "repeats": 2,
    "device": "cuda",
    "dtype": "bfloat16",
    "nvtx": True,
    "seed": 0,
    "crops": None,
}


def _inner() -> dict:
    plan = plan_request("gundam", (1240, 1754), None, text_tokens=8)
    return {
        "result": {
            "plan": to_jsonable(plan),
            "prefill_tokens": plan.prefill_tokens,
            "decode_steps": 63,
            "generated_tokens": [5] * 64,
            "timings_s": [0.5, 0.25],
            "prefill_s": [0.125, 0.0625],
            "model_config": {"preset": "full"},
        },
        "environment": {
            "python": "3.12.3",
            "torch": "2.11.0+cu130",
            "torch_cuda": "13.0",
            "cudnn": 91000,
            "transformers": "5.17.0",
            "nvtx": "0.2.17",
            "gpu_name": "NVIDIA H100 80GB HBM3",
            "gpu_capability": "9.0",
            "gpu_multiprocessors": 132,
            "gpu_memory_bytes": 85_520_809_984,
            "platform": "Linux",
        },
    }


def test_wall_timings_integer_ns() -> None:
    assert wall_timings({"timings_s": [0.5, 0.25], "prefill_s": [0.125, 0.0625]}) == {
        "request_ns": [500_000_000, 250_000_000],
        "prefill_ns": [125_000_000, 62_500_000],
        "decode_ns": [375_000_000, 187_500_000],
    }
    assert wall_timings({}) == {"request_ns": [], "prefill_ns": [], "decode_ns": []}


def test_build_run_record_fields() -> None:
    inner = _inner()
    plan = plan_request("gundam", (1240, 1754), None, text_tokens=8)
    commands = {"infer": ["python", "-m", "x"], "profile": ["nsys", "profile"], "export": None}
    record = build_run_record(
        options=OPTIONS,
        inner=inner,
        gpu_arg="h100",
        nsys_version="NVIDIA Nsight Systems version 2025.3.1.0",
        commands=commands,
        files={"sqlite": "trace.sqlite"},
        driver="580.159.04",
        started="2026-11-23T20:00:00Z",
        finished="2026-11-23T20:01:00Z",
    )
    assert record["schema"] == "dsocr-nsys/run" and record["schema_version"] == 1
    assert (record["mode"], record["preset"], record["max_new_tokens"]) == ("gundam", "full", 64)
    # views and crops come from the model's plan, not from the (unset) --crops option
    assert record["views"] == plan.num_views == plan.crops + 1
    assert record["crops"] == plan.crops >= 2
    assert record["prefill_tokens"] == plan.prefill_tokens
    assert record["decode_steps"] == 63
    assert record["timings"]["request_ns"] == [500_000_000, 250_000_000]
    assert record["timings"]["decode_ns"] == [375_000_000, 187_500_000]
    assert record["plan"]["num_views"] == plan.num_views
    assert record["model_config"] == {"preset": "full"}
    assert record["gpu"] == {
        "name": "NVIDIA H100 80GB HBM3",
        "mfu_name": "h100",
        "capability": "9.0",
        "multiprocessors": 132,
        "memory_bytes": 85_520_809_984,
    }
    assert record["versions"] == {
        "dsocr_nsys": __version__,
        "python": "3.12.3",
        "torch": "2.11.0+cu130",
        "transformers": "5.17.0",
        "nvtx": "0.2.17",
        "cuda": "13.0",
        "cudnn": 91000,
        "driver": "580.159.04",
        "nsys": "NVIDIA Nsight Systems version 2025.3.1.0",
    }
    assert record["commands"] == commands
    assert record["files"] == {"sqlite": "trace.sqlite"}
    assert (record["started"], record["finished"]) == (
        "2026-11-23T20:00:00Z",
        "2026-11-23T20:01:00Z",
    )
    assert record["result"]["generated_tokens"] == [5] * 64
    json.dumps(record)  # plain JSON throughout


def test_build_run_record_crops_falls_back_to_option() -> None:
    record = build_run_record(
        options={**OPTIONS, "crops": 3},
        inner={"result": {}},
        gpu_arg=None,
        nsys_version=None,
        commands={},
        files={},
        driver=None,
        started="a",
        finished="b",
    )
    assert (record["crops"], record["views"], record["gpu"]["name"]) == (3, None, None)


def test_to_jsonable() -> None:
    @dataclass
    class Inner:
        path: Path
        pair: tuple[int, int]

    value = {"x": Inner(Path("/a/b"), (1, 2)), 3: {1.5}}
    assert to_jsonable(value) == {"x": {"path": "/a/b", "pair": [1, 2]}, "3": [1.5]}


def test_write_json_atomic_is_readable_by_others(tmp_path: Path) -> None:
    path = write_json_atomic(tmp_path / "d" / "run.json", {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in path.parent.iterdir()] == ["run.json"]


def test_point_latest_moves_with_each_run(tmp_path: Path) -> None:
    first, second = tmp_path / "base-32", tmp_path / "gundam-64"
    first.mkdir()
    second.mkdir()
    pointer = point_latest(first)
    assert pointer == tmp_path / "latest" and os.readlink(pointer) == "base-32"
    assert resolve_latest(tmp_path) == first.resolve()
    point_latest(second)
    assert os.readlink(pointer) == "gundam-64"
    assert resolve_latest(tmp_path) == second.resolve()


def test_resolve_latest_text_pointer(tmp_path: Path) -> None:
    (tmp_path / "latest").write_text("base-32\n")
    assert resolve_latest(tmp_path) == tmp_path / "base-32"


def test_nsys_rep_beside_an_export() -> None:
    """A run folder's export and report share their stem; so does any export nsys wrote."""
    assert nsys_rep_for(Path("runs/base-32") / SQLITE) == Path("runs/base-32") / NSYS_REP
    assert nsys_rep_for(Path("x/h100.sqlite")) == Path("x/h100.nsys-rep")
