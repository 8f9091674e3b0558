"""One renderer for every command: ``--format table|md|json|csv`` and ``-o FILE``.

Library functions return :class:`Report` objects (named tables plus notes); only the CLI
renders them. A table is a polars frame or plain rows (a list of dicts with the same keys):
rows render without polars, for the launcher on a GPU image that has none. Column names carry
their unit as a suffix, and the suffix decides how a human-readable format shows the value:

====================  =====================================  ==========================
suffix                meaning (JSON/CSV keep the raw value)  table / md shows
====================  =====================================  ==========================
``_ns``               integer nanoseconds                    ms or µs (unit in header)
``_pct``              percent                                one decimal
``_flops``            floating-point operations (a count)    GFLOP
``_bytes``            bytes (a count)                        MB (10^6)
``_tflops``           TFLOP/s (a rate)                       two decimals
``_gbps``             GB/s (10^9 bytes per second)           one decimal
``_flop_per_byte``    arithmetic intensity                   one decimal
====================  =====================================  ==========================
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import ctypes.util
import errno
import functools
import io
import itertools
import json
import math
import os
import re
import shutil
import stat
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

from .errors import OutputFileError
from .vocab import TIME_BASE_BY_KEY

if TYPE_CHECKING:  # polars is only touched through the frames callers pass in, so importing
    # the CLI (e.g. `dsocr-nsys profile` on a GPU box) does not need it.
    import polars as pl

FORMATS = ("table", "md", "json", "csv")

# suffix -> (header unit, divisor, decimals); ``_ns`` is handled apart (ms or µs per column).
_SCALED: dict[str, tuple[str, float, int]] = {
    "_pct": ("%", 1.0, 1),
    "_flops": ("GFLOP", 1e9, 2),
    "_bytes": ("MB", 1e6, 2),
    "_tflops": ("TFLOP/s", 1.0, 2),
    "_gbps": ("GB/s", 1.0, 1),
    "_flop_per_byte": ("FLOP/B", 1.0, 1),
}


@dataclass
class Report:
    """What a command produces: named tables (first is the main one), notes and metadata.

    ``meta`` holds scalars (paths, versions, the GPU) that JSON output carries as-is and the
    human formats print above the tables.
    """

    tables: dict[str, pl.DataFrame | list[dict[str, Any]]]
    notes: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    title: str = ""
    #: Column names that are data (run labels), printed as written, never sentence-cased.
    verbatim: frozenset[str] = frozenset()


def _time_unit(values: list[Any]) -> tuple[str, float]:
    """ms when the values' median magnitude is at least 1 ms, else µs."""
    nonnull = [abs(v) for v in values if v is not None]
    if nonnull and float(statistics.median(nonnull)) >= 1e6:
        return "ms", 1e6
    return "µs", 1e3


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _columns(table: pl.DataFrame | list[dict[str, Any]]) -> list[tuple[str, list[Any], bool]]:
    """(name, values, numeric) per column of a polars frame or of plain rows; a plain column
    is numeric when it holds at least one number and nothing else but nulls."""
    if isinstance(table, list):
        names = list(table[0]) if table else []
        out = []
        for name in names:
            values = [row.get(name) for row in table]
            present = [v for v in values if v is not None]
            out.append((name, values, bool(present) and all(_is_number(v) for v in present)))
        return out
    return [(c, table[c].to_list(), table[c].dtype.is_numeric()) for c in table.columns]


def _height(table: pl.DataFrame | list[dict[str, Any]]) -> int:
    return len(table) if isinstance(table, list) else table.height


# Words a header spells the way the field does (sentence case would give "Gpu", "Mfu").
_SPELLED = {
    "gpu": "GPU",
    "gpus": "GPUs",
    "cpu": "CPU",
    "mfu": "MFU",
    "mbu": "MBU",
    "hfu": "HFU",
    "hw": "HW",
    "flop": "FLOP",
    "flops": "FLOPs",
    "tflop": "TFLOP",
    "bf16": "BF16",
    "fp16": "FP16",
    "fp32": "FP32",
    "fp8": "FP8",
    "tf32": "TF32",
    "ci": "CI",
    "cuda": "CUDA",
    "ncu": "ncu",
    "nsys": "nsys",
    "nsight": "Nsight",
    "kv": "KV",
    "id": "ID",
    "ids": "IDs",
    "pid": "PID",
    "tid": "TID",
    "sm": "SM",
    "sms": "SMs",
    "nvtx": "NVTX",
    "hbm": "HBM",
    "fvcore": "fvcore",
}


def _label(name: str, *, time_bases: bool = False) -> str:
    """Header text for a column name: words in sentence case, acronyms as spelled. With
    ``time_bases`` (a numeric column), a time-base key among the words reads as its vocabulary
    label (``busy_total`` -> "GPU busy total", ``mfu_proj`` -> "MFU GPU span"), as the
    ``time_base`` column's values do; ``gpu_idle`` already says it."""
    words = name.replace("_", " ").split()
    if time_bases:
        for i, word in enumerate(words):
            base = TIME_BASE_BY_KEY.get(word)
            if base is not None and (i == 0 or words[i - 1] != "gpu"):
                words[i : i + 1] = base.label.split()
                break
    words = [_SPELLED.get(w.lower(), w) for w in words]
    if words and words[0] not in _SPELLED.values():
        words[0] = words[0][:1].upper() + words[0][1:]
    return (
        " ".join(words).replace("Nsight systems", "Nsight Systems").replace("nsys rep", ".nsys-rep")
    )


def _is_duration(name: str) -> bool:
    """An ``_ns`` column that is a length of time (not a position on the timeline)."""
    return name.endswith("_ns") and not name.endswith("start_ns")


def humanize(
    frame: pl.DataFrame | list[dict[str, Any]],
    verbatim: frozenset[str] = frozenset(),
) -> tuple[list[str], list[list[str]], list[bool]]:
    """Headers, string cells and right-alignment flags for a human-readable table.

    The table's durations share one unit (ms or µs, from the median of them all), so columns
    that are compared (baseline, value, delta) read in the same unit; timeline positions
    (``*start_ns``) pick theirs per column. ``verbatim`` names headers printed as written."""
    headers: list[str] = []
    columns: list[list[str]] = []
    numeric: list[bool] = []
    cols = _columns(frame)
    durations = [v for n, vs, num in cols if num and _is_duration(n) for v in vs]
    for name, values, is_num in cols:
        scale: tuple[str, float, int] | None = None
        base = name
        if is_num and name.endswith("_ns"):
            unit, div = _time_unit(durations if _is_duration(name) else values)
            scale, base = (unit, div, 3 if unit == "ms" else 1), name[:-3]
        elif is_num:
            for suffix, spec in _SCALED.items():
                if name.endswith(suffix):
                    scale, base = spec, name[: -len(suffix)]
                    break
        label = name if name in verbatim else _label(base, time_bases=is_num)
        headers.append(f"{label} ({scale[0]})" if scale else label)
        # identifiers read as written (PID 12345, not 12,345)
        ident = name in ("id", "pid", "tid") or name.endswith(("_id", "_ids"))
        cells = []
        for value in values:
            cells.append(str(value) if ident and value is not None else _cell(value, scale))
        columns.append(cells)
        numeric.append(is_num)
    rows = [list(r) for r in zip(*columns, strict=True)] if columns else []
    return headers, rows, numeric


def _cell(value: Any, scale: tuple[str, float, int] | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if scale is not None:
        scaled = value / scale[1]
        # Keep two significant digits of small non-zero figures (a 0.04 % decode MFU must not
        # read as 0.0).
        digits = scale[2]
        if scaled and abs(scaled) < 10.0**-digits * 10:
            digits = max(digits, 1 - math.floor(math.log10(abs(scaled))))
        return f"{scaled:,.{digits}f}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1_000 else f"{value:.4g}"
    return str(value)


# Demangled C++ noise that repeats across kernels and tells them apart by nothing.
_NAMESPACE = re.compile(
    r"(?:\b(?:at::native::|at::cuda::detail::|at::cuda::|at::|c10::|std::|binary_internal::|"
    r"templates::cuda::|memory::)|<unnamed>::)"
)
_NOARG_LAMBDA = re.compile(r"::\[lambda\(\) \(instance \d+\)\]::operator \(\)\(\) const")
_LAMBDA = re.compile(r"\[lambda\(([^()]*)\) \(instance \d+\)\]")
_CAST = re.compile(r"\((?:unsigned int|unsigned long|unsigned char|int|long|bool|char)\)(?=-?\d)")
_PARAMS = re.compile(r"(?<!lambda)(?<=[\w>])\([^()]*\)")
# TensorIterator plumbing after the functor: the same for every elementwise kernel
_PLUMBING = re.compile(
    r", (?:array<char \*, \d+>|TrivialOffsetCalculator<[^<>]*>|OffsetCalculator<[^<>]*>|"
    r"LoadWithCast<\d+>|StoreWithCast<\d+>|LoadWithoutCast|StoreWithoutCast)|::lambda\(int\)"
)


def simplify_kernel_name(name: str) -> str:
    """A demangled kernel name without what repeats across kernels: namespaces, ``void``,
    integer casts, argument lists, the dispatch lambdas' ``operator ()() const`` chain and
    the TensorIterator plumbing. Keeps the kernel template, its numbers, the functor and the
    element type (``lambda(float)``)."""
    text = name[5:] if name.startswith("void ") else name
    text = _NAMESPACE.sub("", text)
    text = _NOARG_LAMBDA.sub("", text)
    text = _LAMBDA.sub(r"lambda(\1)", text)
    text = _CAST.sub("", text)
    previous = None
    while previous != text:  # innermost argument lists first
        previous, text = text, _PARAMS.sub("", text)
    text = _PLUMBING.sub("", text)
    return text.replace("void ", "").replace("::lambda", " lambda")


def _cut_middle(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    head = width // 3
    return text[:head] + "…" + text[len(text) - (width - head - 1) :]


def shorten_names(names: list[str], width: int) -> list[str]:
    """Names that fit ``width`` characters and stay told apart: kernel names simplified
    (:func:`simplify_kernel_name`), then cut from the middle, so the start (the kernel) and
    the end (the functor, the element type) stay. Two different names never read the same:
    a clash keeps the uncut form, and a clash left after that gets ``#n``."""
    simple = [simplify_kernel_name(n) if ("(" in n or "::" in n) else n for n in names]
    out = [_cut_middle(t, width) for t in simple]
    owners: dict[str, set[str]] = {}
    for name, short in zip(names, out, strict=True):
        owners.setdefault(short, set()).add(name)
    out = [t if len(owners[o]) > 1 else o for t, o in zip(simple, out, strict=True)]
    order: dict[str, list[str]] = {}
    for name, short in zip(names, out, strict=True):
        if name not in order.setdefault(short, []):
            order[short].append(name)
    return [
        o if len(order[o]) == 1 else f"{o} #{order[o].index(n) + 1}"
        for n, o in zip(names, out, strict=True)
    ]


def _text_table(
    frame: pl.DataFrame | list[dict[str, Any]],
    markdown: bool,
    verbatim: frozenset[str] = frozenset(),
) -> str:
    headers, rows, numeric = humanize(frame, verbatim)
    if markdown:
        esc = [h.replace("|", "\\|") for h in headers]
        out = ["| " + " | ".join(esc) + " |"]
        out.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
        for row in rows:
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
        return "\n".join(out)
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if n else c.ljust(w) for c, w, n in zip(cells, widths, numeric, strict=True)
        ).rstrip()

    out = [line(headers), "  ".join("-" * w for w in widths)]
    out.extend(line(r) for r in rows)
    return "\n".join(out)


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def render(report: Report, fmt: str) -> str:
    """Render a report as text in one of :data:`FORMATS`.

    ``csv`` holds one table only: the report's first (main) table.
    """
    if fmt == "json":
        payload: dict[str, Any] = dict(report.meta)
        payload.update(
            {
                name: frame if isinstance(frame, list) else frame.to_dicts()
                for name, frame in report.tables.items()
            }
        )
        if report.notes:
            payload["notes"] = report.notes
        return json.dumps(payload, indent=2, default=_json_default) + "\n"
    if fmt == "csv":
        frame = next(iter(report.tables.values()))
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        columns = _columns(frame)
        writer.writerow([name for name, _values, _num in columns])
        writer.writerows(zip(*(values for _name, values, _num in columns), strict=True))
        return buf.getvalue()
    if fmt not in ("table", "md"):
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    md = fmt == "md"
    parts: list[str] = []
    if report.title:
        parts.append(f"# {report.title}" if md else report.title)
    if report.meta:
        parts.append(
            "\n".join(
                f"- **{_label(k)}**: {v}" if md else f"{_label(k)}: {v}"
                for k, v in report.meta.items()
                if not isinstance(v, (dict, list))
            )
        )
    multi = len(report.tables) > 1
    for name, frame in report.tables.items():
        if multi:
            parts.append(f"## {_label(name)}" if md else f"[{_label(name)}]")
        parts.append(_text_table(frame, md, report.verbatim) if _height(frame) else "(no rows)")
    if report.notes:
        parts.append("\n".join(f"- {n}" if md else f"note: {n}" for n in report.notes))
    return "\n\n".join(p for p in parts if p) + "\n"


# Temporary names of an output in progress: ``.NAME.dsocr-tmp-PID-N`` beside the output. A
# later run of the same output removes those whose process is gone (a kill between the write
# and the rename leaves one behind), so no stray file outlives the next run.
_TMP_TAG = "dsocr-tmp"
_tmp_counter = itertools.count()
_tmp_live: set[str] = set()  # this process's temporaries being written (threads)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _tmp_name(target: Path) -> Path:
    name = f".{target.name}.{_TMP_TAG}-{os.getpid()}-{next(_tmp_counter)}"
    return target.with_name(name)


def clean_stale_temporaries(target: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporaries that earlier, killed runs left beside ``target`` (files or
    folders named ``.NAME.dsocr-tmp-PID-N`` whose process no longer runs, or this process's
    own from before a PID was reused). Returns the paths removed."""
    out = Path(target)
    pattern = re.compile(rf"^\.{re.escape(out.name)}\.{_TMP_TAG}-(\d+)-\d+$")
    removed: list[Path] = []
    try:
        entries = list(os.scandir(out.parent))
    except OSError:
        return removed
    for entry in entries:
        m = pattern.match(entry.name)
        if not m or entry.path in _tmp_live:
            continue
        pid = int(m.group(1))
        if pid != os.getpid() and _pid_alive(pid):
            continue  # a concurrent run is writing it
        path = Path(entry.path)
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:
            continue
        removed.append(path)
    return removed


def _resolve_output(path: str | os.PathLike[str]) -> Path:
    """The path to write: a symlink's target (written through, as ``open()`` does)."""
    target = Path(path)
    return Path(os.path.realpath(target)) if target.is_symlink() else target


def write_atomic(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename,
    so a reader never sees a half-written file. Returns the path written.

    The file gets what a plain ``open(path, "w")`` would give: a new file the mode
    0666 minus the umask, an existing one keeps its mode (and owner, where allowed); a
    symlink is written through to its target. Raises :class:`OutputFileError` (one line)
    when the folder cannot be written."""
    target = _resolve_output(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_temporaries(target)
        try:
            old: os.stat_result | None = os.stat(target)
        except FileNotFoundError:
            old = None
        tmp = _tmp_name(target)
        _tmp_live.add(str(tmp))
        try:
            # 0o666 through os.open: the kernel applies the umask, as for open().
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            with os.fdopen(fd, "wb") as fh:
                if old is not None:
                    os.fchmod(fh.fileno(), stat.S_IMODE(old.st_mode))
                    with contextlib.suppress(OSError):  # only root may give a file away
                        os.fchown(fh.fileno(), old.st_uid, old.st_gid)
                fh.write(payload)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        finally:
            _tmp_live.discard(str(tmp))
    except OSError as exc:
        raise OutputFileError(_os_message(exc, target)) from None
    return target


def _os_message(exc: OSError, target: Path) -> str:
    reason = exc.strerror or str(exc)
    return f"cannot write {target}: {reason}; choose another -o path or fix its permissions"


def write_dir_atomic(path: str | os.PathLike[str], files: Mapping[str, str | bytes]) -> list[Path]:
    """Write a whole set of files as the folder ``path``: into a temporary sibling folder
    first, then swapped in at once (``renameat2(RENAME_EXCHANGE)`` where the kernel has it,
    else two renames), so a reader sees the old set or the new one, never a mix.

    Files already in the folder that the set does not name are kept (hard-linked into the new
    folder). Returns the paths of the set's files. Raises :class:`OutputFileError`."""
    target = _resolve_output(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_temporaries(target)
        tmp = _tmp_name(target)
        _tmp_live.add(str(tmp))
        try:
            os.mkdir(tmp)  # 0o777 minus the umask, as mkdir(1)
            for name, data in files.items():
                with open(tmp / name, "wb") as fh:
                    fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            if target.is_dir():
                os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
                for entry in os.scandir(target):
                    if entry.name not in files and entry.is_file(follow_symlinks=False):
                        os.link(entry.path, tmp / entry.name, follow_symlinks=False)
                _exchange(tmp, target)
                shutil.rmtree(tmp)  # now the old set
            else:
                os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            _tmp_live.discard(str(tmp))
    except OSError as exc:
        raise OutputFileError(_os_message(exc, target)) from None
    return [target / name for name in files]


_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(new: Path, old: Path) -> None:
    """Swap two folders atomically (Linux renameat2), else move ``old`` aside and ``new`` in
    (a kill between the two renames leaves the old set under the temporary name, which the
    next run removes)."""
    libc_name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(libc_name, use_errno=True) if libc_name else None
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is not None:
        at_fdcwd = -100
        if renameat2(at_fdcwd, os.fsencode(new), at_fdcwd, os.fsencode(old), _RENAME_EXCHANGE) == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
            raise OSError(err, os.strerror(err), str(old))
    aside = _tmp_name(old)
    os.rename(old, aside)
    os.rename(new, old)
    os.rename(aside, new)


def emit(report: Report, fmt: str, output: str | None) -> None:
    """Render and send to stdout, or atomically to ``output``."""
    text = render(report, fmt)
    if output:
        write_atomic(output, text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


F = TypeVar("F", bound=Callable[..., Any])

# The format an -o file name asks for when -f is not given (other suffixes: a text table).
FORMAT_BY_SUFFIX = {".json": "json", ".csv": "csv", ".md": "md", ".txt": "table"}


def resolve_format(fmt: str | None, output: str | os.PathLike[str] | None) -> str:
    """The format to write: ``-f`` when given, else the one ``-o``'s suffix names
    (:data:`FORMAT_BY_SUFFIX`), else ``table``. A ``-f`` that contradicts the suffix
    (``-f csv -o x.json``) is a usage error, so no file ever holds another format than its
    name says."""
    suffix = Path(output).suffix.lower() if output else ""
    implied = FORMAT_BY_SUFFIX.get(suffix)
    if fmt is None:
        return implied or "table"
    if implied is not None and implied != fmt and suffix != ".txt":
        raise click.UsageError(
            f"-f {fmt} but -o {output} ends in {suffix} ({implied}); drop -f to write "
            f"{implied}, or name the file *.{'md' if fmt == 'md' else fmt}"
        )
    return fmt


def check_output_dir_name(fmt: str | None, output: str | os.PathLike[str]) -> None:
    """A command whose ``-o`` is a folder writes every format into it, so ``-f`` beside it,
    or a folder named like a file (``-o x.json``), asks for what it will not do: a usage
    error, before any work."""
    suffix = Path(output).suffix.lower()
    if fmt is not None:
        raise click.UsageError(
            f"-f {fmt} with -o {output}: -o writes a folder holding every format; drop -f, "
            f"or drop -o to print {fmt}"
        )
    if suffix in FORMAT_BY_SUFFIX:
        raise click.UsageError(
            f"-o {output} names a {suffix} file, but -o is a folder here (every format is "
            f"written into it); give a folder name, or -f {FORMAT_BY_SUFFIX[suffix]} without "
            "-o to print one format"
        )


def check_output(path: str | os.PathLike[str], *, directory: bool = False) -> str | None:
    """Why ``path`` cannot be written as ``-o`` (a file, or a folder of files when
    ``directory``), or None when it can. Checked before a command does its work, so a long
    run never ends on an unwritable path.

    Uses :func:`os.access` on the nearest existing folder (root passes every permission
    check there, as it does when writing)."""
    target = _resolve_output(path)
    if target.exists():
        if directory and not target.is_dir():
            return f"{path} exists and is not a folder; give a folder for the output set"
        if not directory and target.is_dir():
            return f"{path} is a folder; give a file name (e.g. {Path(path) / 'out.json'})"
        if not directory and not os.access(target, os.W_OK):
            return f"{path} is read-only; choose another -o path or make it writable"
        if directory:
            foreign = [e.name for e in os.scandir(target) if e.is_dir(follow_symlinks=False)]
            if foreign:
                return (
                    f"{path} holds folders ({', '.join(sorted(foreign)[:3])}) that the output "
                    "set would replace; give an empty or new folder"
                )
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return f"{folder} is not a folder, so {path} cannot be created; choose another -o path"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot write into {folder} (permission denied); choose another -o path"
    return None


def _check_output_option(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value is None:
        return value
    directory = isinstance(param.type, click.Path) and not param.type.file_okay
    problem = check_output(value, directory=directory)
    if problem:
        raise click.BadParameter(problem, ctx=ctx, param=param)
    return value


def output_options(
    func: F | None = None, *, directory: bool = False, help: str | None = None
) -> Any:
    """The shared ``--format`` / ``-o`` options; the command receives ``fmt`` and ``output``.

    ``@output_options`` gives ``-o FILE``; ``@output_options(directory=True, help=...)`` gives
    ``-o DIR`` for a command that writes a folder of files (``help`` says which). ``-o`` is
    checked for writability while the options are parsed (before the work); for a file,
    ``fmt`` is :func:`resolve_format` of both (``-o x.csv`` alone writes CSV)."""

    def decorate(f: F) -> F:
        @functools.wraps(f)
        def with_format(*args: Any, fmt: str | None, output: str | None, **kwargs: Any) -> Any:
            if directory and output:
                check_output_dir_name(fmt, output)
            fmt = resolve_format(fmt, None if directory else output)
            return f(*args, fmt=fmt, output=output, **kwargs)

        if directory:
            out_type = click.Path(file_okay=False)
            out_help = help or "Write into this directory instead of printing."
        else:
            out_type = click.Path(dir_okay=False)
            out_help = help or (
                "Write to this file (atomically) instead of stdout; its suffix (.json, .csv, "
                ".md; else a table) sets the format when -f is not given."
            )
        wrapped = click.option(
            "-o",
            "--output",
            type=out_type,
            default=None,
            callback=_check_output_option,
            help=out_help,
        )(with_format)
        wrapped = click.option(
            "-f",
            "--format",
            "fmt",
            type=click.Choice(FORMATS),
            default=None,
            help="table (default)/md show readable units (ms, µs) in headers; json/csv carry "
            "integer ns.",
        )(wrapped)
        return cast(F, wrapped)

    return decorate(func) if func is not None else decorate
