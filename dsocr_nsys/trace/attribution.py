"""The engine's interval work in numpy: which runtime call launched each GPU operation, which
NVTX ranges hold it (nsys' projection), and how long each range and each GPU was busy.

DuckDB reads the export (``sql/trace_ops_*.sql``, ``sql/trace_runtime_calls.sql``); what
follows is three sorts of nearly sorted columns and prefix sums over them, work that DuckDB's
hash joins and windows did in about 6x the CPU time (3.0 against 0.5 s on a 1.5 M-kernel
export; docs/benchmarks.md, "Third pass"). The definitions are those of nsys stats'
``nvtx_gpu_proj_trace``; docs/trace-engine.md gives them, and the golden tests pin them to
nsys' own output.

Times are integer ns throughout; arrays are int64 unless said.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..errors import TraceContentError

#: An operation's kind, as its op_id says it: the bits above 40 hold the per-kind offset that
#: trace_ops_*.sql add to the source rowid (trace_ops.sql names them for SQL).
KIND_SHIFT = 40
KERNEL, MEMCPY, MEMSET, GRAPH = 0, 1, 2, 4
OP_KINDS: dict[str, int] = {"kernel": KERNEL, "memcpy": MEMCPY, "memset": MEMSET, "graph": GRAPH}
#: globalTid = pid << 24 | tid: the process part, as nsys joins an operation to its call.
_THREAD_BITS = 24
_CORRELATION_LIMIT = 1 << 32  # CUPTI correlation ids are uint32


@dataclass
class Launches:
    """The (operation, launching call) pairs: ``op`` indexes the ops arrays; ``global_tid``,
    ``start_ns``, ``end_ns``, ``correlation_id`` describe the runtime call. Usually one pair per
    operation that a call of the trace launched; operations whose call is missing have none."""

    op: np.ndarray
    global_tid: np.ndarray
    start_ns: np.ndarray
    end_ns: np.ndarray
    correlation_id: np.ndarray


def _dedupe(
    key: np.ndarray, tid: np.ndarray, start: np.ndarray, end: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Merge the runtime rows of one thread that share a key into one call (its latest start,
    earliest end: the outer call around a nested versioned entry), as nsys 2022 exports record
    every launch twice. Returns (row, key) sorted by key: for each call kept, the row it takes
    its thread from, and merged start/end."""
    order = np.lexsort((tid, key))
    k, t = key[order], tid[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (k[1:] != k[:-1]) | (t[1:] != t[:-1])
    cuts = np.flatnonzero(first)
    merged_start = np.maximum.reduceat(start[order], cuts)
    merged_end = np.minimum.reduceat(end[order], cuts)
    return order[cuts], k[cuts], merged_start, merged_end


def _repeats(sorted_values: np.ndarray) -> bool:
    return bool(len(sorted_values) > 1 and np.any(sorted_values[1:] == sorted_values[:-1]))


def join_launches(ops: dict[str, np.ndarray], calls: dict[str, np.ndarray]) -> Launches:
    """Pair each GPU operation with the runtime call that launched it: equal correlationId and
    process (``ops.global_pid`` = the call's globalTid with its 24 thread bits cleared), as
    nsys joins them. ``calls``: the runtime table's correlationId, globalTid, start, end.

    Method: one key per (process, correlation id), the calls' keys sorted (nearly sorted
    already: timsort's few merges), one binary search per operation."""
    r_corr, r_tid = calls["correlationId"], calls["globalTid"]
    r_start, r_end = calls["start"], calls["end"]
    if len(r_corr) and (r_corr.min() < 0 or r_corr.max() >= _CORRELATION_LIMIT):
        raise TraceContentError(
            "correlation ids outside 0..2^32-1 (CUPTI writes uint32): the export is damaged"
        )
    # an operation's key: -1 where no call can match (no correlation id: -1 from NULL)
    o_corr, o_pid = ops["correlation_id"], ops["global_pid"]
    # the process bits are the high bits: equal in the least and greatest globalTid, equal in all
    if len(r_tid) and r_tid.min() >> _THREAD_BITS == r_tid.max() >> _THREAD_BITS:
        r_key = r_corr  # one process: the correlation id is the key
        o_key = np.where(o_pid == (r_tid[0] >> _THREAD_BITS) << _THREAD_BITS, o_corr, -1)
    else:  # a dense code per process in the high bits
        r_pid = (r_tid >> _THREAD_BITS) << _THREAD_BITS
        pids = np.unique(r_pid)
        o_code = np.minimum(np.searchsorted(pids, o_pid), max(len(pids) - 1, 0))
        usable = (o_corr >= 0) & (o_corr < _CORRELATION_LIMIT)
        usable &= pids[o_code] == o_pid if len(pids) else False
        r_key = (np.searchsorted(pids, r_pid).astype(np.int64) << 32) | r_corr
        o_key = np.where(usable, (o_code.astype(np.int64) << 32) | o_corr, -1)

    order = np.argsort(r_key, kind="stable")
    sorted_key = r_key[order]
    at = order  # where each sorted call's start and end are
    repeats = _repeats(sorted_key)
    if repeats:
        order, sorted_key, r_start, r_end = _dedupe(r_key, r_tid, r_start, r_end)
        at = np.arange(len(order))  # the merged starts and ends are in key order
        repeats = _repeats(sorted_key)  # one (process, correlation id) on several threads
    lo = np.searchsorted(sorted_key, o_key, "left")
    if len(sorted_key):
        found = (sorted_key.take(lo, mode="clip") == o_key) & (o_key >= 0)
    else:
        found = np.zeros(len(o_key), dtype=bool)
    if not repeats:
        op = np.flatnonzero(found)
        row = lo[op]
    else:  # the op belongs to each of its calls
        counts = np.where(found, np.searchsorted(sorted_key, o_key, "right") - lo, 0)
        op = np.repeat(np.arange(len(counts)), counts)
        offsets = np.cumsum(counts) - counts
        row = np.repeat(lo - offsets, counts) + np.arange(counts.sum())
    call = order[row]
    where = call if at is order else at[row]
    return Launches(
        op=op,
        global_tid=r_tid[call],
        start_ns=r_start[where],
        end_ns=r_end[where],
        correlation_id=o_corr[op],  # equal to the call's
    )


@dataclass
class Sweep:
    """Every operation of the trace, per device, in (start) order, swept once.

    ``pos``: each operation's place in the sweep (devices one after another); ``share_cum``:
    prefix sums of ``busy_add`` in sweep order (length n + 1), where ``busy_add`` is the part of
    an operation past the furthest end of all operations before it on its device, so that the
    device's busy time (the union of its operation intervals) is the sum of its shares;
    ``opens``: in sweep order, nothing before the operation reaches past its start.
    ``busy_ns``: per device id, its busy time. An operation with end < start (never in nsys
    output) counts as zero-length."""

    pos: np.ndarray
    share_cum: np.ndarray
    opens: np.ndarray
    busy_ns: dict[int, int] = field(default_factory=dict)


def sweep(ops: dict[str, np.ndarray]) -> Sweep:
    """Sweep each device's operations in start order (see :class:`Sweep`)."""
    start = ops["start_ns"]
    end = np.maximum(ops["end_ns"], start)
    device = ops["device_id"]
    n = len(start)
    pos = np.empty(n, dtype=np.int64)
    shares = np.empty(n, dtype=np.int64)
    opens = np.empty(n, dtype=bool)
    busy: dict[int, int] = {}
    devices = np.unique(device) if n and device.min() != device.max() else device[:1]
    at = 0
    for dev in devices:
        members = np.flatnonzero(device == dev) if len(devices) > 1 else np.arange(n)
        # stable: nsys writes rows nearly in time order, which timsort merges in few passes
        order = members[np.argsort(start[members], kind="stable")]
        s, e = start[order], end[order]
        reach = np.empty_like(e)
        reach[0] = np.iinfo(np.int64).min
        np.maximum.accumulate(e[:-1], out=reach[1:])
        share = np.maximum(0, e - np.maximum(s, reach))
        span = slice(at, at + len(order))
        pos[order] = np.arange(span.start, span.stop)
        shares[span] = share
        opens[span] = reach <= s
        busy[int(dev)] = int(share.sum())
        at += len(order)
    share_cum = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(shares, out=share_cum[1:])
    return Sweep(pos=pos, share_cum=share_cum, opens=opens, busy_ns=busy)


def _slice_bounds(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``reduceat`` indices for the slices [lo[i], hi[i]) (each non-empty, ``lo`` ascending):
    ``ufunc.reduceat(values, bounds)[0::2]`` is ``ufunc.reduce(values[lo[i]:hi[i]])`` for every
    i, in O(len(values) + total slice length). ``values`` must reach one past the last ``hi``
    (reduceat's indices are in range): gather it through an index padded with one element."""
    bounds = np.empty(2 * len(lo), dtype=np.int64)
    bounds[0::2] = lo
    bounds[1::2] = hi
    return bounds


def _prefix(values: np.ndarray) -> np.ndarray:
    out = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(values, out=out[1:])
    return out


def _union_ns(start: np.ndarray, end: np.ndarray) -> int:
    """Length of the union of the intervals [start, end) (end < start counts as empty): with
    s_(k), e_(k) the k-th smallest start and end, the span minus the gaps s_(k+1) - e_(k)."""
    s = np.sort(start)
    e = np.sort(np.maximum(end, start))
    return int(e[-1] - s[0] - np.maximum(0, s[1:] - e[:-1]).sum())


@dataclass
class RangeOps:
    """Which operations each NVTX range holds: for range i of ``range_id``, the op indices
    ``members[thread[i]][lo[i]:hi[i]]``, or ``explicit[range_id]`` where the range's operations
    are not one slice (a thread whose calls overlap)."""

    range_id: np.ndarray
    thread: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    members: list[np.ndarray]
    explicit: dict[int, np.ndarray]

    def ops_of(self, range_ids: np.ndarray) -> np.ndarray:
        """The op indices (each once) of the ranges ``range_ids``."""
        wanted = np.isin(self.range_id, range_ids)
        chosen = set(range_ids.tolist())
        parts = [
            self.members[t][lo:hi]
            for t, lo, hi in zip(self.thread[wanted], self.lo[wanted], self.hi[wanted], strict=True)
        ]
        parts += [v for k, v in self.explicit.items() if k in chosen]
        return np.unique(np.concatenate(parts)) if parts else np.empty(0, dtype=np.int64)


METRIC_COLUMNS = (
    "range_id", "gpu_start_ns", "gpu_end_ns", "gpu_launches", "gpu_ops", "kernels", "memcpys",
    "memsets", "graph_launches", "kernel_ns", "graph_ns", "busy_ns",
)  # fmt: skip
_COUNTED = (
    ("kernels", KERNEL),
    ("memcpys", MEMCPY),
    ("memsets", MEMSET),
    ("graph_launches", GRAPH),
)
_SUMMED = (("kernel_ns", KERNEL), ("graph_ns", GRAPH))


class _Rows:
    """Columns gathered in parts, one part per thread (or per range on the slow path)."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.parts: dict[str, list[np.ndarray]] = {name: [] for name in names}

    def add(self, **columns: np.ndarray) -> None:
        for name, values in columns.items():
            self.parts[name].append(np.asarray(values, dtype=np.int64).reshape(-1))

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            name: np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
            for name, parts in self.parts.items()
        }


def _by_thread(
    ranges: dict[str, np.ndarray], launches: Launches
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """For each thread that holds ranges and launched work: its range rows (by start) and its
    (operation, call) pairs, sorted by call start (calls of one start by correlation id, so a
    call's operations stay together)."""
    pair_order = np.argsort(launches.global_tid, kind="stable")
    pair_tid = launches.global_tid[pair_order]
    range_order = np.lexsort((ranges["start_ns"], ranges["global_tid"]))
    range_tid = ranges["global_tid"][range_order]
    cuts = np.flatnonzero(np.r_[True, range_tid[1:] != range_tid[:-1]]) if len(range_tid) else []
    for first, last in zip(cuts, [*cuts[1:], len(range_tid)], strict=True):
        tid = range_tid[first]
        pick = pair_order[
            np.searchsorted(pair_tid, tid, "left") : np.searchsorted(pair_tid, tid, "right")
        ]
        if not len(pick):
            continue
        c_start = launches.start_ns[pick]
        pairs = pick[np.argsort(c_start, kind="stable")]
        c_start, corr = launches.start_ns[pairs], launches.correlation_id[pairs]
        if np.any((c_start[1:] == c_start[:-1]) & (corr[1:] != corr[:-1])):  # two calls, one ns
            pairs = pick[np.lexsort((launches.correlation_id[pick], launches.start_ns[pick]))]
        yield range_order[first:last], pairs


def range_metrics(
    ops: dict[str, np.ndarray],
    launches: Launches,
    ranges: dict[str, np.ndarray],
    swept: Sweep,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], RangeOps]:
    """Per NVTX range with GPU work: the columns of trace_ranges.sql that come from its
    operations (METRIC_COLUMNS; see that file's header), the (range, device) pairs, and which
    operations each range holds. ``ranges``: range_id, global_tid, start_ns, end_ns.

    An operation belongs to every range on its launching thread that contains the call:
    range.start <= call.start and call.end <= range.end (nsys' projection). A thread's calls,
    sorted by start, never overlap, so their ends are sorted too and each range holds one slice
    of them, found by two binary searches; over the slices, prefix sums give the counts and
    kernel time, one ``reduceat`` each the first start, last end, devices and sweep places.
    Busy time: a range whose operations are the consecutive places i..j of one device's sweep,
    nothing before i reaching past its start, is busy for their shares' sum (what came before
    ends by the range's first start); any other range (several GPUs, other work interleaved on
    its GPU) takes the order-statistics union of its own operations (:func:`_union_ns`).
    """
    metrics, devices = _Rows(METRIC_COLUMNS), _Rows(("range_id", "device_id"))
    placed = _Rows(("range_id", "thread", "lo", "hi"))
    members: list[np.ndarray] = []
    explicit: dict[int, np.ndarray] = {}
    for rows, pairs in _by_thread(ranges, launches):
        rid, r_start, r_end = (ranges[k][rows] for k in ("range_id", "start_ns", "end_ns"))
        op = launches.op[pairs]
        c_start, c_end = launches.start_ns[pairs], launches.end_ns[pairs]
        lo = np.searchsorted(c_start, r_start, "left")
        if np.all(c_end[1:] >= c_end[:-1]):
            hi = np.maximum(lo, np.searchsorted(c_end, r_end, "right"))
        else:  # overlapping calls on one thread (never seen from CUDA): test each candidate
            below = np.searchsorted(c_start, r_end, "right")
            for i in np.flatnonzero(below > lo):
                inside = lo[i] + np.flatnonzero(c_end[lo[i] : below[i]] <= r_end[i])
                if len(inside):
                    explicit[int(rid[i])] = op[inside]
            hi = lo  # no slices on this thread
        keep = hi > lo
        if not keep.any():
            continue
        placed.add(
            range_id=rid[keep],
            thread=np.full(int(keep.sum()), len(members)),
            lo=lo[keep],
            hi=hi[keep],
        )
        members.append(op)
        _slice_metrics(
            metrics,
            devices,
            ops,
            swept,
            op,
            launches.correlation_id[pairs],
            rid[keep],
            lo[keep],
            hi[keep],
        )
    for range_id, ids in explicit.items():
        _one_range(metrics, devices, ops, range_id, ids)
    where = placed.arrays()
    return metrics.arrays(), devices.arrays(), RangeOps(**where, members=members, explicit=explicit)


def _slice_metrics(
    metrics: _Rows,
    devices: _Rows,
    ops: dict[str, np.ndarray],
    swept: Sweep,
    op: np.ndarray,
    corr: np.ndarray,
    rid: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
) -> None:
    """The metrics of ranges ``rid`` whose operations are ``op[lo:hi]`` (one thread's
    operations in call order, ``corr`` their calls' correlation ids; ``lo`` ascending)."""
    padded = np.append(op, op[-1])  # gathers one past the end, for reduceat (_slice_bounds)
    bounds = _slice_bounds(lo, hi)
    start, end = ops["start_ns"][padded], ops["end_ns"][padded]
    kind = ops["kind"][op]
    new_call = np.ones(len(op), dtype=np.int64)
    new_call[1:] = corr[1:] != corr[:-1]
    calls = _prefix(new_call)  # a slice never splits a call: its operations share its times
    columns = {
        "range_id": rid,
        "gpu_ops": hi - lo,
        "gpu_launches": calls[hi] - calls[lo] + 1 - new_call[lo],
        "gpu_start_ns": np.minimum.reduceat(start, bounds)[0::2],
        "gpu_end_ns": np.maximum.reduceat(end, bounds)[0::2],
    }
    # Operations other than kernels are few (copies, memsets, whole graphs): counted and timed
    # through their places, leaving one prefix sum over all operations (their time).
    duration = end[:-1] - start[:-1]
    other = np.flatnonzero(kind != KERNEL)
    o_lo, o_hi = np.searchsorted(other, lo), np.searchsorted(other, hi)
    o_kind, o_duration = kind[other], duration[other]
    for name, code in _COUNTED:
        if code != KERNEL:
            counted = _prefix(o_kind == code)
            columns[name] = counted[o_hi] - counted[o_lo]
    columns["kernels"] = hi - lo - (o_hi - o_lo)
    for name, code in _SUMMED:
        if code != KERNEL:
            summed = _prefix(np.where(o_kind == code, o_duration, 0))
            columns[name] = summed[o_hi] - summed[o_lo]
    total, o_total = _prefix(duration), _prefix(o_duration)
    columns["kernel_ns"] = total[hi] - total[lo] - (o_total[o_hi] - o_total[o_lo])
    if len(swept.busy_ns) == 1:  # one GPU in the whole trace
        device = None
        d_min = np.full(len(lo), next(iter(swept.busy_ns)))
        one_gpu = np.ones(len(lo), dtype=bool)
    else:
        device = ops["device_id"][padded]
        d_min = np.minimum.reduceat(device, bounds)[0::2]
        one_gpu = d_min == np.maximum.reduceat(device, bounds)[0::2]
    place = swept.pos[padded]
    p_min = np.minimum.reduceat(place, bounds)[0::2]
    p_max = np.maximum.reduceat(place, bounds)[0::2]
    busy = swept.share_cum[p_max + 1] - swept.share_cum[p_min]
    for i in np.flatnonzero(~(one_gpu & (p_max - p_min + 1 == hi - lo) & swept.opens[p_min])):
        busy[i] = _union_ns(start[lo[i] : hi[i]], end[lo[i] : hi[i]])
    columns["busy_ns"] = busy
    metrics.add(**columns)
    devices.add(range_id=rid[one_gpu], device_id=d_min[one_gpu])
    for i in np.flatnonzero(~one_gpu):
        assert device is not None
        ids = np.unique(device[lo[i] : hi[i]])
        devices.add(range_id=np.full(len(ids), rid[i]), device_id=ids)


def _one_range(
    metrics: _Rows, devices: _Rows, ops: dict[str, np.ndarray], range_id: int, ids: np.ndarray
) -> None:
    """One range's metrics from its operation indices ``ids`` (the general, slow path)."""
    start, end, kind = ops["start_ns"][ids], ops["end_ns"][ids], ops["kind"][ids]
    columns = {
        "range_id": range_id,
        "gpu_start_ns": start.min(),
        "gpu_end_ns": end.max(),
        # one thread's calls: a correlation id is one call
        "gpu_launches": len(np.unique(ops["correlation_id"][ids])),
        "gpu_ops": len(ids),
        "busy_ns": _union_ns(start, end),
    }
    for name, code in _COUNTED:
        columns[name] = (kind == code).sum()
    for name, code in _SUMMED:
        columns[name] = (end - start)[kind == code].sum()
    metrics.add(**columns)
    on = np.unique(ops["device_id"][ids])
    devices.add(range_id=np.full(len(on), range_id), device_id=on)
