"""``dsocr-nsys profile``: run the inference entry point under ``nsys profile``, export the
report to SQLite, and leave a run folder with ``run.json``.

The inference runs in a child process (``python -m dsocr_nsys.launch infer``) so nsys traces
the model alone; the child writes its result and environment to ``result.json``, from which
this parent assembles ``run.json`` without parsing any output.

With a command of the user's own (``--command '...'`` or ``-- CMD ARGS``) that command is the
child instead: same nsys flags (plus CUDA-graph node tracing, in case it replays graphs), same
run folder; ``run.json`` records the command, and the static file is the user's to give.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import errors
from ..errors import DsocrError, InputFileError
from ..hw import launch as hw_launch
from . import runinfo
from .nsys import NSYS, NsysStepError, export_argv, find_tool, nsys_version, profile_argv, run_step
from .options import LaunchOptions

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ProfileRequest:
    """Everything ``profile`` needs besides the inference options."""

    out: Path
    gpu: str | None = None
    nsys: str | None = None
    extra_nsys_args: tuple[str, ...] = ()
    use_nsys: bool = True
    static: bool = True
    command: tuple[str, ...] = ()  # a program of the user's own instead of our inference
    ncu: bool = False
    ncu_path: str | None = None
    ncu_new_tokens: int = 2
    calibrate: bool = True


def infer_argv(options: LaunchOptions, result_json: Path) -> list[str]:
    """The inner inference command: this interpreter, the polars-free entry point."""
    return [
        sys.executable,
        "-m",
        "dsocr_nsys.launch",
        "infer",
        *options.to_argv(),
        f"--result-json={result_json}",
    ]


def _child_env(environ: Mapping[str, str]) -> dict[str, str]:
    env = dict(environ)
    env["PYTHONUNBUFFERED"] = "1"  # progress lines arrive as they are written
    # The child must import this very package, also when it runs from a source tree.
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _read_inner(result_json: Path, status: int, step: str, log: Path) -> dict[str, Any]:
    """The inner process's result; its error re-raised as the same typed error."""
    inner: dict[str, Any] = {}
    if result_json.is_file():
        try:
            inner = json.loads(result_json.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            inner = {}
    error = inner.get("error")
    if error:
        cls = getattr(errors, str(error.get("type")), None)
        if not (isinstance(cls, type) and issubclass(cls, DsocrError)):
            cls = DsocrError
        raise cls(f"{error.get('message')} (log: {log})")
    if status != 0 or "result" not in inner:
        what = f"exit status {status}" if status != 0 else "no result written"
        raise NsysStepError(f"{step} failed ({what}); see its log: {log}")
    return inner


def profile_run(
    options: LaunchOptions,
    request: ProfileRequest,
    progress: Progress | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Run the profile and return the ``run.json`` record (also written to the run folder).

    Raises ``ToolNotFoundError`` (no nsys), ``InputFileError`` (bad inputs), the inner
    process's ``ModelError`` (bad mode, OOM), or :class:`NsysStepError` (a step failed)."""
    environ = os.environ if environ is None else environ
    say = progress or (lambda _msg: None)
    own = bool(request.command)
    if own and request.ncu:
        raise DsocrError(
            "--ncu replays our inference under Nsight Compute and does not apply to --command "
            "/ -- CMD; run ncu on your program yourself"
        )
    if own and options != LaunchOptions():
        raise DsocrError(
            "the inference options (--mode, --max-new-tokens, ...) configure our model and do "
            "not apply to --command / -- CMD; give your program its own arguments"
        )
    options.validate()
    if request.gpu is not None:  # a name mfu cannot use would fail only after the GPU run
        from ..mfu.peaks import validate_gpu_name

        validate_gpu_name(request.gpu)
    nsys = find_tool(NSYS, request.nsys, environ) if request.use_nsys else None
    run_dir = request.out
    if run_dir.exists() and not run_dir.is_dir():
        raise InputFileError(f"--out {run_dir} exists and is not a folder; choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    started = runinfo.utc_now()
    version = nsys_version(nsys) if nsys else None
    if version:
        say(f"nsys: {nsys} ({version})")

    # The child's own "Error: ..." line stays in its log: the parent re-raises that error with
    # the log's path, so the user sees it once.
    def child_say(line: str) -> None:
        if not line.startswith("Error: "):
            say(line)

    result_json = run_dir / runinfo.RESULT_JSON
    result_json.unlink(missing_ok=True)
    app = list(request.command) if own else infer_argv(options, result_json)
    env = _child_env(environ)
    commands: dict[str, list[str] | None] = {
        "infer": None if own else app,
        "command": app if own else None,
        "profile": None,
        "export": None,
    }
    rep, sqlite = run_dir / runinfo.NSYS_REP, run_dir / runinfo.SQLITE

    if nsys is None:
        log = run_dir / runinfo.INFER_LOG
        say(f"running {'your command' if own else 'inference'} without nsys (log: {log})")
        status = run_step(app, log, child_say, env)
        inner = (
            _read_own(status, log) if own else _read_inner(result_json, status, "inference", log)
        )
    else:
        for stale in (rep, sqlite):
            stale.unlink(missing_ok=True)
        log = run_dir / runinfo.PROFILE_LOG
        argv = profile_argv(
            nsys,
            run_dir / runinfo.REPORT_BASE,
            app,
            request.extra_nsys_args,
            graphs=own or options.decode == "cuda-graph",
        )
        commands["profile"] = argv
        say(f"nsys profile → {rep} (log: {log})")
        status = run_step(argv, log, child_say, env)
        if own:
            inner = _read_own(status, log)
        else:
            inner = _read_inner(result_json, status, "nsys profile", log)
        if not rep.is_file():
            raise NsysStepError(f"nsys profile wrote no {rep}; see its log: {log}")
        log = run_dir / runinfo.EXPORT_LOG
        argv = export_argv(nsys, rep, sqlite)
        commands["export"] = argv
        say(f"nsys export → {sqlite} (log: {log})")
        status = run_step(argv, log, say, env)
        if status != 0:
            raise NsysStepError(f"nsys export failed (exit status {status}); see its log: {log}")
        if not sqlite.is_file():
            raise NsysStepError(f"nsys export wrote no {sqlite}; see its log: {log}")

    if own:
        say("your command: no static file written; run `dsocr-nsys static` for its configuration")
    elif request.static:
        commands["static"] = _write_static(options, inner, run_dir, env, say)
    # Hardware steps (dsocr_nsys.hw.launch), after the traced run: best effort, one line each.
    hw: dict[str, Any] = {}
    if request.ncu:
        hw["ncu"] = hw_launch.ncu_step(
            options, run_dir, infer_argv, env, say, request.ncu_path, request.ncu_new_tokens
        )
    if request.calibrate:
        hw["calibration"] = hw_launch.calibrate_step(options, run_dir, env, say)

    files = {
        name: fname
        for name, fname in (
            ("nsys_rep", runinfo.NSYS_REP),
            ("sqlite", runinfo.SQLITE),
            ("result", runinfo.RESULT_JSON),
            ("profile_log", runinfo.PROFILE_LOG),
            ("export_log", runinfo.EXPORT_LOG),
            ("infer_log", runinfo.INFER_LOG),
            ("static", runinfo.STATIC_JSON),
            ("static_md", "static_compute.md"),
            ("static_log", runinfo.STATIC_LOG),
            ("ncu_csv", hw_launch.NCU_CSV),
            ("ncu_log", hw_launch.NCU_LOG),
            ("hw_flops", hw_launch.HW_JSON),
            ("calibrate_log", hw_launch.CALIBRATE_LOG),
        )
        if (run_dir / fname).is_file()
    }
    record = runinfo.build_run_record(
        options={} if own else options.as_record(),
        inner=inner,
        gpu_arg=request.gpu,
        nsys_version=version,
        commands=commands,
        files=files,
        driver=runinfo.nvidia_smi_query("driver_version"),
        started=started,
        finished=runinfo.utc_now(),
    )
    record.update(hw)
    runinfo.write_json_atomic(run_dir / runinfo.RUN_JSON, record)
    runinfo.point_latest(run_dir)
    say(f"wrote {run_dir / runinfo.RUN_JSON}")
    return record


def _read_own(status: int, log: Path) -> dict[str, Any]:
    """A command of the user's own writes no result: only its exit status counts."""
    if status != 0:
        raise NsysStepError(f"your command failed (exit status {status}); see its log: {log}")
    # No result of ours to read the GPU from: the driver's own name for it (run.json gpu.name).
    return {"environment": {"gpu_name": runinfo.nvidia_smi_query("name")}}


def _write_static(
    options: LaunchOptions,
    inner: Mapping[str, Any],
    run_dir: Path,
    env: Mapping[str, str],
    say: Progress,
) -> list[str]:
    """Best effort: ``dsocr-nsys static`` for the configuration just traced, into the run
    folder (``make report`` runs it later where this fails, e.g. on an image without polars).
    Returns its argv."""
    from .report import static_argv

    result = inner.get("result") or {}
    asked = options.as_record()
    fields = {
        "preset": options.preset,
        "mode": options.mode,
        "max_new_tokens": options.max_new_tokens,
        "plan": result.get("plan") or {},
        "options": asked,
        **runinfo.run_variant(asked, result),
    }
    output = run_dir / runinfo.STATIC_JSON
    argv = static_argv(fields, output, (sys.executable, "-m", "dsocr_nsys.cli"))
    log = run_dir / runinfo.STATIC_LOG
    say(f"static compute → {output} (log: {log})")
    status = run_step(argv, log, say, env)
    if status != 0:
        output.unlink(missing_ok=True)
        say(
            f"warning: static compute failed (exit status {status}; see {log}); "
            "make report will run it again"
        )
    return argv


def default_out(
    options: LaunchOptions, runs_dir: Path = Path("runs"), command: Sequence[str] = ()
) -> Path:
    """``runs/<mode>-<tokens>`` (the Makefile's ``RUN`` default), with the preset when tiny,
    the variant when not the default (``-cuda-graph``, ``-compile``, ``-b16``); for a command
    of the user's own ``runs/cmd-<name of its script or program>``."""
    if command:
        script = next((Path(w).stem for w in command if w.endswith(".py")), Path(command[0]).name)
        return runs_dir / f"cmd-{script}"
    prefix = "tiny-" if options.preset == "tiny" else ""
    suffix = "-cuda-graph" if options.decode == "cuda-graph" else ""
    suffix += "-compile" if options.compile else ""
    suffix += f"-b{options.batch}" if options.batch != 1 else ""
    return runs_dir / f"{prefix}{options.mode}-{options.max_new_tokens}{suffix}"


def summary_rows(record: Mapping[str, Any], run_dir: Path) -> list[dict[str, Any]]:
    """One row per file of the run folder, with its size in bytes (for the CLI summary)."""
    rows = []
    for key, name in sorted((record.get("files") or {}).items()):
        path = run_dir / name
        size = path.stat().st_size if path.exists() else None
        rows.append({"file": key, "path": str(path), "size_bytes": size})
    return rows


def extra_args(values: Sequence[str]) -> tuple[str, ...]:
    """Flatten repeated ``--extra-nsys-args`` values, each split by shell rules."""
    from .nsys import split_extra

    words: list[str] = []
    for value in values:
        words += split_extra(value)
    return tuple(words)


def profile_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Click options of ``profile`` beyond the inference options."""
    import click

    specs = [
        click.option(
            "--out",
            type=click.Path(path_type=Path, file_okay=False),
            default=None,
            help="Run folder (default: runs/<mode>-<max-new-tokens>).",
        ),
        click.option(
            "--gpu",
            default=None,
            help="GPU name for the MFU step (peak figures), recorded in run.json.",
        ),
        click.option(
            "--nsys",
            "nsys_path",
            default=None,
            help="Path to the nsys binary (default: $NSYS, else nsys on PATH).",
        ),
        click.option(
            "--extra-nsys-args",
            multiple=True,
            help="More 'nsys profile' options (shell-quoted); one that we also set replaces ours.",
        ),
        click.option(
            "--static/--no-static",
            "with_static",
            default=True,
            show_default=True,
            help="Also write static_compute.json for this configuration (dsocr-nsys static).",
        ),
        click.option(
            "--ncu",
            "with_ncu",
            is_flag=True,
            default=False,
            help="After the nsys run, run Nsight Compute on a short request of the same "
            "configuration: ncu.csv and hw_flops.json (tensor-core FLOPs per stage).",
        ),
        click.option(
            "--ncu-new-tokens",
            type=click.IntRange(min=1),
            default=2,
            show_default=True,
            help="New tokens of the --ncu request (no warm-up, one repeat).",
        ),
        click.option("--ncu-path", default=None, help="Path to ncu (default: $NCU, else PATH)."),
        click.option(
            "--calibrate/--no-calibrate",
            "with_calibrate",
            default=True,
            show_default=True,
            help="Measure the GPU's BF16 GEMM and copy ceilings after the run (run.json).",
        ),
        click.option(
            "--no-nsys",
            is_flag=True,
            default=False,
            help="Run the inference without nsys (checks the pipeline; no trace).",
        ),
        click.option(
            "--command",
            "command_text",
            default=None,
            metavar="'CMD ARGS'",
            help="Profile this program of yours instead of our inference (shell-quoted; or "
            "give it after --: profile [OPTIONS] -- CMD ARGS).",
        ),
        click.argument("command_args", nargs=-1, type=click.UNPROCESSED),
    ]
    for spec in reversed(specs):
        func = spec(func)
    return func


def request_from_kwargs(kwargs: dict[str, Any], options: LaunchOptions) -> ProfileRequest:
    """Pop the :func:`profile_options` keyword arguments into a :class:`ProfileRequest`."""
    from .nsys import split_extra

    out = kwargs.pop("out")
    text, args = kwargs.pop("command_text"), tuple(kwargs.pop("command_args"))
    if text is not None and args:
        raise DsocrError("give your command once: --command '...' or after --, not both")
    command = tuple(split_extra(text, "--command")) if text is not None else args
    if text is not None and not command:
        raise DsocrError("--command is empty; give the program to profile, e.g. 'python x.py'")
    return ProfileRequest(
        out=out if out is not None else default_out(options, command=command),
        gpu=kwargs.pop("gpu"),
        nsys=kwargs.pop("nsys_path"),
        extra_nsys_args=extra_args(kwargs.pop("extra_nsys_args")),
        use_nsys=not kwargs.pop("no_nsys"),
        static=kwargs.pop("with_static"),
        command=command,
        ncu=kwargs.pop("with_ncu"),
        ncu_path=kwargs.pop("ncu_path"),
        ncu_new_tokens=kwargs.pop("ncu_new_tokens"),
        calibrate=kwargs.pop("with_calibrate"),
    )
