"""The project's one vocabulary: stage names and their nesting, the NVTX domain and event
types, and the time bases every frame, table, plot and format is built from.

Every layer (launcher, trace engine, static compute, MFU, compare, hardware FLOPs) imports
its names from here, so a stage or a time base is spelled once. Adding a time base means a
row in :data:`TIME_BASES`, the SQL that computes it and its test; nothing else.

Naming scheme for time columns (docs/trace-engine.md, "Column names"):

- one NVTX range instance: ``{base}_ns`` (``busy_ns``, ``proj_ns``, ``kernel_ns``,
  ``cpu_ns``, ``idle_ns``);
- one stage (aggregated instances): ``{base}_{stat}_ns`` with ``stat`` one of
  :data:`STATS` (``busy_total_ns``, ``busy_median_ns``, ...);
- rates on a base: ``{base}_tflops``, ``mfu_{base}_pct``, ``{base}_gbps``, ``mbu_{base}_pct``.
"""

from __future__ import annotations

from dataclasses import dataclass

# --- NVTX --------------------------------------------------------------------------------

#: The NVTX domain of the launcher's ranges (and of :func:`dsocr_nsys.instrument`).
NVTX_DOMAIN = "dsocr"


class NvtxEventType:
    """``NVTX_EVENTS.eventType`` values, as Nsight Systems' own stats scripts name them."""

    PUSH_POP_RANGE = 59  # NvtxPushPopRange
    START_END_RANGE = 60  # NvtxStartEndRange
    NVTXT_PUSH_POP_RANGE = 70  # NvtxtPushPopRange (ranges recorded through NVTX text files)
    NVTXT_START_END_RANGE = 71  # NvtxtStartEndRange
    DOMAIN_CREATE = 75  # NvtxDomainCreate: names a domainId for one process


# --- stages ------------------------------------------------------------------------------

REQUEST = "request"
WARMUP = "warmup"
SAM = "sam"
CLIP = "clip"
PROJECTOR = "projector"
VISION = "vision"
PREFILL = "prefill"
LLM_PREFILL = "llm_prefill"
DECODE = "decode"

#: The vision encoder's NVTX stages, in pipeline order; nested inside ``prefill``.
VISION_PARTS = (SAM, CLIP, PROJECTOR)
#: Stages the launcher opens as NVTX ranges inside each request, in pipeline order.
NVTX_STAGES = (SAM, CLIP, PROJECTOR, PREFILL, DECODE)
#: Every NVTX range name the launcher emits (``request`` and ``warmup`` wrap the stages).
RANGE_NAMES = (REQUEST, WARMUP, *NVTX_STAGES)


@dataclass(frozen=True)
class Stage:
    """One row a per-stage report can hold.

    ``kind``: ``range`` (an NVTX range of that name), ``sum`` (the sum of ``parts``),
    ``difference`` (``parts[0]`` minus the ``parts[1:]`` nested in it) or ``request`` (the
    whole request: its ``request`` ranges, else the top-level stages). ``parent``: the range it
    is nested in at run time, if any.
    """

    name: str
    kind: str
    description: str
    parts: tuple[str, ...] = ()
    parent: str | None = None


STAGES: tuple[Stage, ...] = (
    Stage(SAM, "range", "SAM ViT-B image encoder over every view", parent=PREFILL),
    Stage(CLIP, "range", "CLIP-L encoder on SAM's features", parent=PREFILL),
    Stage(PROJECTOR, "range", "linear projector to the LLM's width", parent=PREFILL),
    Stage(VISION, "sum", "sam + clip + projector", parts=VISION_PARTS, parent=PREFILL),
    Stage(PREFILL, "range", "the prefill NVTX range as measured: vision nested in it + LLM"),
    Stage(
        LLM_PREFILL,
        "difference",
        "prefill minus its nested vision ranges: the LLM forward over the prompt",
        parts=(PREFILL, *VISION_PARTS),
    ),
    Stage(DECODE, "range", "one range per generated token after the first"),
    Stage(REQUEST, "request", "the whole request (request ranges, else top-level stages)"),
)
STAGE_BY_NAME = {s.name: s for s in STAGES}
#: Report row order.
STAGE_ORDER = tuple(s.name for s in STAGES)
#: Rows a report derives from other rows (never looked up as an NVTX range).
DERIVED_STAGES = tuple(s.name for s in STAGES if s.kind in ("sum", "difference"))


# --- time bases --------------------------------------------------------------------------


@dataclass(frozen=True)
class TimeBase:
    """One way of measuring how long a stage took.

    ``key`` names the columns (see the module docstring), ``label`` is the human name in
    tables and plots, ``nsys`` the Nsight Systems report column it equals (``None`` when it
    has none), ``departs`` how and why ours differs, if it does. ``gpu``: measured on the GPU
    (statistics over instances that launched GPU work) rather than on the CPU range.
    ``rate``: a denominator for achieved TFLOP/s, MFU, GB/s and MBU.
    """

    key: str
    label: str
    unit: str
    definition: str
    nsys: str | None
    departs: str | None
    gpu: bool
    rate: bool

    @property
    def column(self) -> str:
        """Per-instance column (ranges frame): ``busy_ns``."""
        return f"{self.key}_ns"

    def stat(self, stat: str) -> str:
        """Per-stage column: ``busy_total_ns``, ``busy_median_ns``, ..."""
        if stat not in STATS:
            raise ValueError(f"unknown statistic {stat!r}; expected one of {', '.join(STATS)}")
        return f"{self.key}_{stat}_ns"

    @property
    def total(self) -> str:
        """Per-stage total over the counted instances: ``busy_total_ns``."""
        return self.stat("total")

    @property
    def tflops(self) -> str:
        """Achieved TFLOP/s on this base: ``busy_tflops``."""
        return f"{self.key}_tflops"

    @property
    def mfu_pct(self) -> str:
        """MFU on this base, percent: ``mfu_busy_pct``."""
        return f"mfu_{self.key}_pct"

    @property
    def gbps(self) -> str:
        """Achieved GB/s on this base: ``busy_gbps``."""
        return f"{self.key}_gbps"

    @property
    def mbu_pct(self) -> str:
        """MBU on this base, percent: ``mbu_busy_pct``."""
        return f"mbu_{self.key}_pct"


#: Statistics over a stage's instances (median averages the two middle values, as nsys).
STATS = ("total", "mean", "median", "min", "max", "p90")

# Time-base keys, for code that means one base in particular (the roofline uses busy time).
BUSY, PROJ, KERNEL, CPU, IDLE = "busy", "proj", "kernel", "cpu", "idle"

TIME_BASES: tuple[TimeBase, ...] = (
    TimeBase(
        BUSY,
        "GPU busy",
        "ns",
        "length of the union of the range's GPU operation intervals (overlap counted once)",
        None,
        "nsys has no union; it is the time the GPU did the range's work",
        gpu=True,
        rate=True,
    ),
    TimeBase(
        PROJ,
        "GPU span",
        "ns",
        "first GPU operation start to last operation end (the range projected on the GPU)",
        "nvtx_gpu_proj_sum Total Proj Time / nvtx_gpu_proj_trace Projected Duration",
        None,
        gpu=True,
        rate=True,
    ),
    TimeBase(
        KERNEL,
        "kernel sum",
        "ns",
        "sum of the range's kernel durations (overlapping kernels counted twice)",
        "nvtx_kern_sum Total Time, summed over the range's kernels",
        None,
        gpu=True,
        rate=True,
    ),
    TimeBase(
        CPU,
        "CPU range",
        "ns",
        "the NVTX range's own duration on the CPU thread",
        "nvtx_sum Total Time",
        None,
        gpu=False,
        rate=True,
    ),
    TimeBase(
        IDLE,
        "GPU idle",
        "ns",
        "GPU span minus GPU busy: gaps inside the projected span (launch-bound time)",
        None,
        "derived: proj - busy",
        gpu=True,
        rate=False,
    ),
)
TIME_BASE_BY_KEY = {b.key: b for b in TIME_BASES}
#: The bases rates are computed on, in table order.
RATE_BASES = tuple(b for b in TIME_BASES if b.rate)


def time_base(key: str) -> TimeBase:
    """The :class:`TimeBase` named ``key`` (ValueError for an unknown key)."""
    try:
        return TIME_BASE_BY_KEY[key]
    except KeyError:
        known = ", ".join(TIME_BASE_BY_KEY)
        raise ValueError(f"unknown time base {key!r}; expected one of {known}") from None
