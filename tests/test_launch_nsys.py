"""dsocr_nsys.launch.nsys: finding nsys, the exact command lines, running a step with its log."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from dsocr_nsys.errors import DsocrError, ToolNotFoundError
from dsocr_nsys.launch.nsys import (
    INSTALL_HINT,
    NSYS,
    export_argv,
    find_tool,
    profile_argv,
    run_step,
    split_extra,
)

APP = ["/usr/bin/python3", "-m", "dsocr_nsys.launch", "infer", "--mode=base"]


def _executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\necho 'NVIDIA Nsight Systems version 2025.3.1.0'\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_profile_argv_exact() -> None:
    assert profile_argv("/opt/nsys", "runs/base-32/trace", APP) == [
        "/opt/nsys",
        "profile",
        "--trace=cuda,nvtx",
        "--sample=none",
        "--cpuctxsw=none",
        "--force-overwrite=true",
        "--output=runs/base-32/trace",
        *APP,
    ]


def test_profile_argv_extra_replaces_our_option_of_the_same_name() -> None:
    extra = split_extra("--sample=process-tree -t cuda,nvtx,osrt --cuda-graph-trace=node")
    assert extra == ["--sample=process-tree", "-t", "cuda,nvtx,osrt", "--cuda-graph-trace=node"]
    assert profile_argv("nsys", "r/trace", APP, extra) == [
        "nsys",
        "profile",
        "--cpuctxsw=none",
        "--force-overwrite=true",
        "--sample=process-tree",
        "-t",
        "cuda,nvtx,osrt",
        "--cuda-graph-trace=node",
        "--output=r/trace",
        *APP,
    ]


@pytest.mark.parametrize("extra", [["-o", "x"], ["--output=x"], ["--output", "x"]])
def test_profile_argv_output_is_ours(extra: list[str]) -> None:
    with pytest.raises(DsocrError, match="--out RUN"):
        profile_argv("nsys", "r/trace", APP, extra)


def test_export_argv_exact() -> None:
    assert export_argv("/opt/nsys", "r/trace.nsys-rep", "r/trace.sqlite") == [
        "/opt/nsys",
        "export",
        "--type=sqlite",
        "--force-overwrite=true",
        "--output=r/trace.sqlite",
        "r/trace.nsys-rep",
    ]


def test_find_nsys_order(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    on_path = _executable(tmp_path / "bin" / "nsys")
    from_env = _executable(tmp_path / "env-nsys")
    explicit = _executable(tmp_path / "explicit-nsys")
    env = {"PATH": str(tmp_path / "bin"), "NSYS": str(from_env)}
    assert find_tool(NSYS, explicit, env) == explicit
    assert find_tool(NSYS, None, env) == from_env
    assert find_tool(NSYS, None, {"PATH": str(tmp_path / "bin")}) == on_path


def test_find_nsys_missing_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(ToolNotFoundError) as info:
        find_tool(NSYS, None, {"PATH": str(tmp_path)})
    message = str(info.value)
    assert "\n" not in message
    assert message == f"Nsight Systems (nsys) not found on PATH; {INSTALL_HINT}"
    assert "NSYS=/path/to/nsys" in message


def test_find_nsys_bad_env_path_names_it(tmp_path: Path) -> None:
    with pytest.raises(ToolNotFoundError, match=r"nsys not found at /no/such/nsys \(from NSYS\)"):
        find_tool(NSYS, None, {"NSYS": "/no/such/nsys", "PATH": str(tmp_path)})
    not_executable = tmp_path / "nsys"
    not_executable.write_text("")
    with pytest.raises(ToolNotFoundError, match=r"\(from --nsys\)"):
        find_tool(NSYS, not_executable, {})


def test_run_step_streams_lines_to_log_and_progress(tmp_path: Path) -> None:
    seen: list[str] = []
    code = "import sys; print('one'); print('two', file=sys.stderr); sys.exit(3)"
    log = tmp_path / "sub" / "step.log"
    status = run_step([sys.executable, "-c", code], log, seen.append, dict(os.environ))
    assert status == 3
    assert sorted(seen) == ["one", "two"]
    text = log.read_text().splitlines()
    assert text[0].startswith("$ ") and text[0].endswith("sys.exit(3)'")
    assert sorted(text[1:3]) == ["one", "two"]
    assert text[-1] == "[exit status 3]"


def test_run_step_missing_program(tmp_path: Path) -> None:
    assert run_step([str(tmp_path / "absent")], tmp_path / "x.log") == 127
    assert "cannot start" in (tmp_path / "x.log").read_text()
