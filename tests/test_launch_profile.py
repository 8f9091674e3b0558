"""``dsocr-nsys profile`` / ``infer`` end to end on a CPU: the real tiny model runs in the real
inner process; nsys itself is not installed here, so a stand-in executable plays its part
(it runs the application it is given, then writes placeholder report/export files, or fails
on request). The argv it receives is the exact one a real nsys would get."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import dsocr_nsys.launch.profile as profile_mod
from dsocr_nsys.cli import cli
from dsocr_nsys.launch.nsys import INSTALL_HINT, export_argv, profile_argv
from dsocr_nsys.launch.options import LaunchOptions
from dsocr_nsys.launch.report import static_argv
from dsocr_nsys.model.inputs import plan_request

FAKE_NSYS = """\
#!{python}
import os, subprocess, sys
args = sys.argv[1:]
if args[:1] == ["--version"]:
    print("NVIDIA Nsight Systems version 2099.1.1.0-standin")
    sys.exit(0)
cmd, rest = args[0], args[1:]
i, opts = 0, {{}}
while i < len(rest) and rest[i].startswith("-"):
    key, _, value = rest[i].partition("=")
    opts[key] = value
    i += 1
fail = os.environ.get("STANDIN_FAIL", "")
if cmd == "profile":
    if fail == "profile":
        print("standin: profile failed")
        sys.exit(1)
    status = subprocess.call(rest[i:])
    if fail != "no-report":
        open(opts["--output"] + ".nsys-rep", "w").write("report")
    sys.exit(status)
if cmd == "export":
    if fail == "export":
        print("standin: export failed")
        sys.exit(1)
    if fail != "no-export":
        open(opts["--output"], "w").write("sqlite")
    sys.exit(0)
sys.exit(3)
"""

TINY = [
    "--preset=tiny",
    "--mode=tiny",
    "--device=cpu",
    "--dtype=float32",
    "--max-new-tokens=3",
    "--warmup=0",
]


@pytest.fixture(scope="module")
def nsys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bin") / "nsys"
    path.write_text(FAKE_NSYS.format(python=sys.executable))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def done(nsys: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """One real profile run (tiny model, CPU) through the stand-in nsys."""
    run = tmp_path_factory.mktemp("runs") / "tiny-3"
    args = ["profile", *TINY, f"--nsys={nsys}", "--gpu=h100", f"--out={run}", "-f", "json"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    return run, result


def test_profile_exit_and_summary(done: tuple[Path, object]) -> None:
    run, result = done
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["run"] == str(run)
    assert summary["mfu_gpu"] == "h100"
    assert summary["nsys"] == "NVIDIA Nsight Systems version 2099.1.1.0-standin"
    assert {row["file"] for row in summary["files"]} == {
        "nsys_rep",
        "sqlite",
        "result",
        "profile_log",
        "export_log",
        "static",
        "static_md",
        "static_log",
    }


def test_profile_run_json(done: tuple[Path, object], nsys: Path) -> None:
    run, _ = done
    record = json.loads((run / "run.json").read_text())
    plan = plan_request("tiny", (1240, 1754), None, text_tokens=8)
    assert (record["mode"], record["preset"], record["views"], record["crops"]) == (
        "tiny",
        "tiny",
        1,
        0,
    )
    assert record["prefill_tokens"] == plan.prefill_tokens
    assert record["decode_steps"] == 2  # max_new_tokens - 1: token 1 comes from the prefill
    assert record["max_new_tokens"] == 3
    assert record["model_config"]["preset"] == "tiny"
    assert len(record["timings"]["request_ns"]) == 1 and record["timings"]["request_ns"][0] > 0
    assert record["gpu"]["mfu_name"] == "h100" and record["gpu"]["name"] is None  # CPU run
    assert record["versions"]["torch"] and record["versions"]["nsys"].endswith("-standin")
    # The exact command lines, as built by the pure functions.
    options = LaunchOptions(**{**record["options"], "image": None, "weights": None})
    app = profile_mod.infer_argv(options, run / "result.json")
    assert record["commands"]["infer"] == app
    assert record["commands"]["profile"] == profile_argv(nsys, run / "trace", app)
    assert record["commands"]["export"] == export_argv(
        nsys, run / "trace.nsys-rep", run / "trace.sqlite"
    )
    assert os.readlink(run.parent / "latest") == run.name


def test_profile_writes_static_compute_for_the_traced_configuration(
    done: tuple[Path, object],
) -> None:
    run, _ = done
    record = json.loads((run / "run.json").read_text())
    static = run / "static_compute.json"
    argv = static_argv(record, static, (sys.executable, "-m", "dsocr_nsys.cli"))
    assert record["commands"]["static"] == argv
    assert argv[3:] == [
        "static",
        "--preset=tiny",
        "--mode=tiny",
        "--image-size=1240x1754",
        "--max-new-tokens=3",
        "--dtype=float32",
        "--decode=eager",
        "--moe=loop",
        "--batch=1",
        "-o",
        str(static),
    ]
    doc = json.loads(static.read_text())
    assert doc["schema_version"] == 1
    variant = {k: record[k] for k in ("decode", "moe", "compile", "batch", "decode_attention")}
    assert variant == {
        "decode": "eager",
        "moe": "loop",
        "compile": False,
        "batch": 1,
        "decode_attention": "context",
    }
    assert {k: doc["config"][k] for k in variant} == variant  # what mfu compares


def test_profile_logs_keep_the_inner_progress(done: tuple[Path, object]) -> None:
    run, result = done
    log = (run / "nsys-profile.log").read_text()
    assert "Building DeepSeek-OCR (tiny, random weights) on cpu" in log
    assert log.splitlines()[-1] == "[exit status 0]"
    assert "Building DeepSeek-OCR" in result.stderr  # streamed as progress too


def test_no_nsys_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["profile", *TINY, f"--out={tmp_path / 'r'}"],
        env={"NSYS": None, "PATH": str(tmp_path)},
    )
    assert result.exit_code == 2
    assert result.stderr == f"Error: Nsight Systems (nsys) not found on PATH; {INSTALL_HINT}\n"
    assert not (tmp_path / "r").exists()


def test_missing_image(tmp_path: Path, nsys: Path) -> None:
    result = CliRunner().invoke(
        cli, ["profile", *TINY, f"--nsys={nsys}", f"--image={tmp_path / 'page.png'}"]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: image not found: ")
    assert result.stderr.count("\n") == 1


def test_bad_mode(nsys: Path) -> None:
    result = CliRunner().invoke(cli, ["profile", "--mode=huge", f"--nsys={nsys}"])
    assert result.exit_code == 2
    assert "'huge' is not one of 'tiny', 'small', 'base', 'large', 'gundam'" in result.stderr


def test_nsys_profile_failure_names_step_and_log(tmp_path: Path, nsys: Path) -> None:
    run = tmp_path / "r"
    result = CliRunner().invoke(
        cli, ["profile", *TINY, f"--nsys={nsys}", f"--out={run}"], env={"STANDIN_FAIL": "profile"}
    )
    assert result.exit_code == 2
    log = run / "nsys-profile.log"
    assert result.stderr.endswith(
        f"Error: nsys profile failed (exit status 1); see its log: {log}\n"
    )
    assert "standin: profile failed" in log.read_text()
    assert not (run / "run.json").exists()


@pytest.fixture
def quick_inner(done: tuple[Path, object], monkeypatch: pytest.MonkeyPatch) -> None:
    """The inner process replaced by one that writes the real run's result.json (for the
    export-side failures, which do not depend on what the model did)."""
    source = done[0] / "result.json"

    def argv(_options: LaunchOptions, path: Path) -> list[str]:
        code = f"import shutil; shutil.copy({str(source)!r}, {str(path)!r})"
        return [sys.executable, "-c", code]

    monkeypatch.setattr(profile_mod, "infer_argv", argv)


@pytest.mark.parametrize(
    ("fail", "message"),
    [
        ("export", "nsys export failed (exit status 1); see its log: {run}/nsys-export.log"),
        (
            "no-export",
            "nsys export wrote no {run}/trace.sqlite; see its log: {run}/nsys-export.log",
        ),
        (
            "no-report",
            "nsys profile wrote no {run}/trace.nsys-rep; see its log: {run}/nsys-profile.log",
        ),
    ],
)
def test_export_side_failures(
    quick_inner: None, tmp_path: Path, nsys: Path, fail: str, message: str
) -> None:
    run = tmp_path / "r"
    result = CliRunner().invoke(
        cli, ["profile", *TINY, f"--nsys={nsys}", f"--out={run}"], env={"STANDIN_FAIL": fail}
    )
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == "Error: " + message.format(run=run)


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="needs a machine without CUDA")
def test_inner_model_error_reaches_the_user(tmp_path: Path) -> None:
    """A typed error inside the inner process (here: no CUDA) comes back as the same one line."""
    run = tmp_path / "r"
    args = ["profile", "--preset=tiny", "--mode=tiny", "--device=cuda", "--no-nsys", f"--out={run}"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "Error: CUDA is not available here; run on a GPU machine or pass --device cpu "
        f"(log: {run}/infer.log)"
    )


def test_infer_command_json(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    result = CliRunner().invoke(
        cli, ["infer", *TINY, f"--result-json={out}", "-f", "json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    [row] = summary["requests"]
    assert row["decode_steps"] == 2 and row["prefill_tokens"] == summary["prefill_tokens"]
    assert row["request_ns"] == row["prefill_ns"] + row["decode_ns"]
    assert row["decode_step_ns"] == row["decode_ns"] // 2
    payload = json.loads(out.read_text())
    assert payload["result"]["decode_steps"] == 2
    assert round(payload["result"]["timings_s"][0] * 1e9) == row["request_ns"]
    assert payload["environment"]["torch"]


def test_infer_batch_counts_every_pages_tokens(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["infer", *TINY, "--batch=2", "--moe=device", "-f", "json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)["requests"]
    assert row["batch"] == 2
    assert row["decode_tokens_per_s"] == pytest.approx(2 * 2 / (row["decode_ns"] / 1e9))


def test_profile_cuda_graph_adds_node_tracing() -> None:
    argv = profile_argv("nsys", "r/trace", ["app"], graphs=True)
    assert argv[:7] == [
        "nsys",
        "profile",
        "--trace=cuda,nvtx",
        "--sample=none",
        "--cpuctxsw=none",
        "--force-overwrite=true",
        "--cuda-graph-trace=node",
    ]
    ours = profile_argv("nsys", "r/trace", ["app"], ["--cuda-graph-trace=graph"], graphs=True)
    assert ours.count("--cuda-graph-trace=graph") == 1 and "--cuda-graph-trace=node" not in ours


@pytest.mark.parametrize("style", ["command", "dashdash"])
def test_profile_own_command(tmp_path: Path, nsys: Path, style: str) -> None:
    """Any program under the same nsys flags and run folder; run.json records its argv."""
    run = tmp_path / "own"
    program = [sys.executable, "-c", "print('my inference')"]
    args = ["profile", f"--nsys={nsys}", "--gpu=h200", f"--out={run}"]
    if style == "command":
        args += ["--command", " ".join(shlex.quote(w) for w in program)]
    else:
        args += ["--", *program]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    record = json.loads((run / "run.json").read_text())
    assert record["command"] == program == record["commands"]["command"]
    assert record["commands"]["infer"] is None and record["commands"].get("static") is None
    assert record["commands"]["profile"] == profile_argv(nsys, run / "trace", program, graphs=True)
    assert (record["mode"], record["decode"], record["batch"]) == (None, None, None)
    assert "my inference" in (run / "nsys-profile.log").read_text()
    assert (run / "trace.sqlite").is_file() and not (run / "static_compute.json").exists()
    # the summary shows the program and no empty fields of ours (mode, views, tokens)
    summary = result.stdout
    assert f"Command: {shlex.join(program)}" in summary
    assert "None" not in summary and "Mode:" not in summary


def test_profile_own_command_failure_and_misuse(tmp_path: Path, nsys: Path) -> None:
    fail = [sys.executable, "-c", "import sys; sys.exit(4)"]
    run = tmp_path / "f"
    result = CliRunner().invoke(cli, ["profile", f"--nsys={nsys}", f"--out={run}", "--", *fail])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        f"Error: your command failed (exit status 4); see its log: {run}/nsys-profile.log"
    )
    mixed = CliRunner().invoke(cli, ["profile", "--mode=gundam", f"--nsys={nsys}", "--", "x"])
    assert mixed.exit_code == 2
    assert mixed.stderr.startswith("Error: the inference options (--mode, --max-new-tokens, ...)")
    both = CliRunner().invoke(cli, ["profile", "--command", "a", "--", "b"])
    assert both.exit_code == 2
    assert "give your command once" in both.stderr
    assert profile_mod.default_out(LaunchOptions(), command=["python", "my_infer.py"]) == Path(
        "runs/cmd-my_infer"
    )
    assert profile_mod.default_out(LaunchOptions(decode="cuda-graph", batch=4)) == Path(
        "runs/base-32-cuda-graph-b4"
    )


def test_gpu_name_checked_before_anything_runs(tmp_path: Path) -> None:
    """`make profile GPU=...` with a name mfu cannot use fails at once, not after the GPU run;
    the spellings users type pass (then the missing nsys is the error)."""
    env = {"NSYS": None, "PATH": str(tmp_path)}
    for bad, needle in (("MI300X", "is not in the peak table"), ("", "names no GPU")):
        result = CliRunner().invoke(
            cli, ["profile", *TINY, f"--gpu={bad}", f"--out={tmp_path / 'r'}"], env=env
        )
        assert result.exit_code == 2 and needle in result.stderr
        assert result.stderr.count("\n") == 1
    for good in ("rtx5090", "RTX 5090", "rtx-5090", "h100sxm", "H100-SXM", "h100"):
        result = CliRunner().invoke(
            cli, ["profile", *TINY, f"--gpu={good}", f"--out={tmp_path / 'r'}"], env=env
        )
        assert "Nsight Systems (nsys) not found" in result.stderr, good
    assert not (tmp_path / "r").exists()


def test_gpu_check_imports_no_polars() -> None:
    """The GPU image runs `python -m dsocr_nsys.launch profile` without polars."""
    code = (
        "import sys; from dsocr_nsys.mfu.peaks import validate_gpu_name; "
        "validate_gpu_name('rtx5090'); assert 'polars' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])
