"""Finding Nsight Systems, building its command lines, and running a step with its log.

The command lines are built by pure functions (:func:`profile_argv`, :func:`export_argv`) so
the exact argv is tested. The flags are the long ``--name=value`` forms that every nsys CLI
from 2022.1 to 2025.x accepts.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import DsocrError, ToolNotFoundError

INSTALL_HINT = (
    "install Nsight Systems (https://developer.nvidia.com/nsight-systems, or the CUDA "
    "toolkit's nsight-systems package) or set NSYS=/path/to/nsys"
)

# What we trace and what we switch off, in nsys's own option names:
# - CUDA API + GPU activity and NVTX ranges are all the trace engine reads;
# - CPU IP/backtrace sampling and OS context-switch tracing add a sampling thread and many
#   rows per second that nothing downstream uses, and perturb the host-bound decode loop;
# - force-overwrite so that re-running into the same run folder replaces the old report.
PROFILE_DEFAULTS: tuple[tuple[str, str], ...] = (
    ("--trace", "cuda,nvtx"),
    ("--sample", "none"),
    ("--cpuctxsw", "none"),
    ("--force-overwrite", "true"),
)

# A CUDA graph's kernels as kernel rows, one per node, each tied to its cudaGraphLaunch (the
# default, ``graph``, records one row per graph launch and no kernels): added for
# ``--decode cuda-graph``, so the trace engine sees the decode step's kernels.
GRAPH_NODE_TRACE = ("--cuda-graph-trace", "node")

# Short spellings of the options above, so an --extra-nsys-args override replaces ours
# instead of repeating an option (which nsys rejects).
_SHORT = {"-t": "--trace", "-s": "--sample", "-f": "--force-overwrite", "-o": "--output"}


class NsysStepError(DsocrError):
    """An nsys step (profile or export) failed or left no output; names the step and its log."""


@dataclass(frozen=True)
class Tool:
    """An NVIDIA command-line tool the launcher runs: its binary's name, product name, the
    option and environment variable that point at it, and how to install it."""

    binary: str
    product: str
    option: str
    env: str
    install_hint: str


NSYS = Tool("nsys", "Nsight Systems", "--nsys", "NSYS", INSTALL_HINT)


def find_tool(
    tool: Tool, explicit: str | os.PathLike[str] | None, environ: Mapping[str, str]
) -> Path:
    """The tool's binary: ``explicit`` (its option), else its environment variable, else the
    binary on ``$PATH``. Raises :class:`ToolNotFoundError` with one line saying how to get it."""
    for origin, value in ((tool.option, explicit), (tool.env, environ.get(tool.env) or None)):
        if value is None:
            continue
        path = Path(value)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise ToolNotFoundError(
            f"{tool.binary} not found at {value} (from {origin}); {tool.install_hint}"
        )
    found = shutil.which(tool.binary, path=environ.get("PATH", os.defpath))
    if found is None:
        raise ToolNotFoundError(
            f"{tool.product} ({tool.binary}) not found on PATH; {tool.install_hint}"
        )
    return Path(found)


def nsys_version(nsys: Path) -> str:
    """``nsys --version``'s line (e.g. ``NVIDIA Nsight Systems version 2025.3.1.0``), or
    ``"unknown"`` when it does not answer."""
    try:
        done = subprocess.run(
            [str(nsys), "--version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = [ln.strip() for ln in (done.stdout + done.stderr).splitlines() if ln.strip()]
    return next((ln for ln in lines if "version" in ln.lower()), lines[0] if lines else "unknown")


def _option_names(args: Sequence[str]) -> set[str]:
    """Long names of the options in ``args`` (``--sample=cpu``, ``--sample cpu``, ``-s cpu``)."""
    names = set()
    for arg in args:
        if arg.startswith("--"):
            names.add(arg.split("=", 1)[0])
        elif arg in _SHORT:
            names.add(_SHORT[arg])
    return names


def profile_argv(
    nsys: str | os.PathLike[str],
    report_base: str | os.PathLike[str],
    app_argv: Sequence[str],
    extra: Sequence[str] = (),
    graphs: bool = False,
) -> list[str]:
    """``nsys profile`` around ``app_argv``, writing ``<report_base>.nsys-rep``.

    ``graphs``: the app replays CUDA graphs; trace their nodes (:data:`GRAPH_NODE_TRACE`).

    ``extra`` (user options) comes after our defaults; a default whose option ``extra`` also
    names is dropped, so ``--extra-nsys-args '--sample=process-tree'`` turns sampling back on.
    ``--output`` is ours alone (the run folder's layout depends on it)."""
    overridden = _option_names(extra)
    if "--output" in overridden:
        raise DsocrError("--extra-nsys-args may not set --output/-o; use --out RUN instead")
    argv = [str(nsys), "profile"]
    defaults = PROFILE_DEFAULTS + ((GRAPH_NODE_TRACE,) if graphs else ())
    argv += [f"{name}={value}" for name, value in defaults if name not in overridden]
    argv += list(extra)
    argv.append(f"--output={report_base}")
    argv += list(app_argv)
    return argv


def export_argv(
    nsys: str | os.PathLike[str], report: str | os.PathLike[str], sqlite: str | os.PathLike[str]
) -> list[str]:
    """``nsys export`` of ``report`` (.nsys-rep) to the SQLite file ``sqlite``."""
    return [
        str(nsys),
        "export",
        "--type=sqlite",
        "--force-overwrite=true",
        f"--output={sqlite}",
        str(report),
    ]


def split_extra(text: str | None, option: str = "--extra-nsys-args") -> list[str]:
    """``--extra-nsys-args`` (or ``--command``, named by ``option``) as argv words, by shell
    quoting rules; :class:`DsocrError` for unbalanced quotes."""
    try:
        return shlex.split(text) if text else []
    except ValueError as exc:  # "No closing quotation", "No escaped character"
        raise DsocrError(
            f"{option} {text!r}: {str(exc).lower()}; balance its quotes (it is split by shell "
            "rules)"
        ) from None


def run_step(
    argv: Sequence[str],
    log_path: Path,
    progress: Callable[[str], None] | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """Run ``argv``, stdout and stderr merged, each line to ``log_path`` and to ``progress``
    as it arrives. Returns the exit status (a command that cannot start: 127)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w", encoding="utf-8") as log:
        log.write("$ " + shlex.join(str(a) for a in argv) + "\n")
        log.flush()
        try:
            proc = subprocess.Popen(
                [str(a) for a in argv],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                errors="replace",
                bufsize=1,
                env=dict(env) if env is not None else None,
            )
        except OSError as exc:
            log.write(f"cannot start: {exc}\n")
            return 127
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                log.write(line)
                log.flush()
                if progress is not None:
                    progress(line.rstrip("\n"))
        except BaseException:
            # Interrupted (Ctrl-C): end the child we started, then let the interrupt go on.
            proc.terminate()
            proc.wait()
            raise
        status = proc.wait()
        log.write(f"[exit status {status}]\n")
    return status
