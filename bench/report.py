"""Turning the benchmark's measurements into the printed tables, and py-spy's
collapsed stacks into a short where-the-time-goes summary."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from statistics import mean, median
from typing import Any

from bench.procs import Measured
from bench.scenarios import SLOW, SLOW_WIDE, Mode

MB = 1024 * 1024


@dataclass
class Summary:
    """One target's measurements of one scenario, averaged over the rounds."""

    throughput: float
    ttft_p50_ms: float
    ttft_p99_ms: float
    latency_p50_ms: float
    latency_p99_ms: float
    completed: int
    errors: int
    tokens_mean: float
    loadgen_cpu_share: float
    backend_cpu_s: float
    cpu_ms_per_request: float | None
    rss_peak_mb: float | None
    server_busy: float | None  # Portico's share of its core
    others_busy: float  # other processes' share of Portico's core


def summarise(runs: list[Measured]) -> Summary:
    def avg(name: str) -> float:
        return mean(run.load[name] for run in runs)

    cpu = [
        run.server_cpu_ms_per_request
        for run in runs
        if run.server_cpu_ms_per_request is not None
    ]
    rss = [run.server_rss_peak for run in runs if run.server_rss_peak]
    busy = [run.server_busy for run in runs if run.server_busy is not None]
    return Summary(
        throughput=avg("throughput"),
        ttft_p50_ms=avg("ttft_p50_ms"),
        ttft_p99_ms=avg("ttft_p99_ms"),
        latency_p50_ms=avg("latency_p50_ms"),
        latency_p99_ms=avg("latency_p99_ms"),
        completed=sum(run.load["completed"] for run in runs),
        errors=sum(run.load["errors"] for run in runs),
        tokens_mean=avg("tokens_mean"),
        loadgen_cpu_share=max(run.load["cpu_share"] for run in runs),
        backend_cpu_s=sum(run.backend_cpu_s for run in runs),
        cpu_ms_per_request=mean(cpu) if cpu else None,
        rss_peak_mb=max(rss) / MB if rss else None,
        server_busy=mean(busy) if busy else None,
        others_busy=mean(
            max(0.0, run.portico_core_busy - (run.server_busy or 0.0)) for run in runs
        ),
    )


@dataclass
class Row:
    label: str
    direct: str
    portico: str
    value: str
    target: str
    ok: bool | None  # None: informational

    @property
    def verdict(self) -> str:
        return {True: "yes", False: "MISSED", None: ""}[self.ok]


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def target_rows(
    s: dict[str, dict[str, Summary]],
    *,
    server: str,
    delay_ms: int,
    slow: int,
    slow_wide: int,
    fast: int,
    json_concurrency: int,
    floor: str = "floor",
) -> list[Row]:
    """The issue's targets (#17, "Speed at scale"), for `server`: throughput
    and first-token p99 against direct, CPU against the floor's in the same
    run (a bare uvicorn + aiohttp relay: what the stack itself costs here)."""
    fast_label = f"no delay, {fast} streams"
    json_label = f"non-streaming, {json_concurrency} concurrent"
    d0, p0 = s["stream_fast"]["direct"], s["stream_fast"][server]
    dj, pj = s["json"]["direct"], s["json"][server]
    dl, pl = s["latency"]["direct"], s["latency"][server]
    dls, pls = s["latency_stream"]["direct"], s["latency_stream"][server]
    rows: list[Row] = []
    for scenario, streams in ((SLOW, slow), (SLOW_WIDE, slow_wide)):
        label = f"{delay_ms} ms/token, {streams} streams"
        direct, proxy = s[scenario]["direct"], s[scenario][server]
        rows += [
            _throughput_row(f"{label}: throughput", direct, proxy, 0.97),
            Row(
                f"{label}: first-token p99",
                f"{direct.ttft_p99_ms:.1f} ms",
                f"{proxy.ttft_p99_ms:.1f} ms",
                f"{_ratio(proxy.ttft_p99_ms, direct.ttft_p99_ms):.2f}x",
                "<= 2x",
                _ratio(proxy.ttft_p99_ms, direct.ttft_p99_ms) <= 2,
            ),
            _floor_row(f"{label}: CPU per stream", proxy, s[scenario].get(floor), 1.3),
        ]
    rows += [
        _floor_row(
            f"{fast_label}: CPU per stream", p0, s["stream_fast"].get(floor), 1.3
        ),
        _floor_row(f"{json_label}: CPU per request", pj, s["json"].get(floor), 2.0),
        _added_row("added latency, 1 client, non-stream p50", dl, pl, 1.0),
        Row(
            "added first-token latency, 1 client, stream p50",
            f"{dls.ttft_p50_ms:.2f} ms",
            f"{pls.ttft_p50_ms:.2f} ms",
            f"+{pls.ttft_p50_ms - dls.ttft_p50_ms:.2f} ms",
            "",
            None,
        ),
    ]
    wide = s[SLOW_WIDE][server]
    rows.append(
        Row(
            f"RSS of the worker at {slow_wide} streams",
            "",
            f"{wide.rss_peak_mb or 0:.0f} MB",
            f"{wide.rss_peak_mb or 0:.0f} MB",
            "<= 110 MB",
            (wide.rss_peak_mb or 0) <= 110,
        )
    )
    # Informational: the two figures the floor ratios stand on.
    rows.append(
        Row(
            f"no delay, {fast} streams: throughput",
            f"{d0.throughput:.1f}/s",
            f"{p0.throughput:.1f}/s",
            f"{_ratio(p0.throughput, d0.throughput):.2f}x",
            "",
            None,
        )
    )
    rows.append(
        Row(
            f"{json_label}: throughput",
            f"{dj.throughput:.1f}/s",
            f"{pj.throughput:.1f}/s",
            f"{_ratio(pj.throughput, dj.throughput):.2f}x",
            "",
            None,
        )
    )
    return rows


def metering_row(pairs: list[list[dict[str, Any]]], fast: int) -> Row:
    """Metering's cost: the median of the pairs' throughput ratios. A run here
    is sometimes slowed by up to 40 % by something outside it, at random for
    either side; the two runs of a pair mostly share those conditions, and the
    median drops the pairs that did not."""
    ratios = [on["load"]["throughput"] / off["load"]["throughput"] for on, off in pairs]
    cost = 1 - median(ratios)
    on_tp = median(on["load"]["throughput"] for on, _ in pairs)
    off_tp = median(off["load"]["throughput"] for _, off in pairs)
    return Row(
        f"metering on vs off (no delay, {fast} streams, {len(pairs)} pairs, median)",
        f"off {off_tp:.0f}/s",
        f"on {on_tp:.0f}/s",
        f"cost {cost:+.1%}",
        "<= 10%",
        cost <= 0.10,
    )


def metering_detail(pairs: list[list[dict[str, Any]]]) -> list[str]:
    """Each pair's figures, and the best run of each side."""
    lines = ["Metering pairs (throughput; server CPU per stream):"]
    for index, (on, off) in enumerate(pairs, start=1):
        ratio = on["load"]["throughput"] / off["load"]["throughput"]
        lines.append(
            f"  pair {index}: on {on['load']['throughput']:.0f}/s "
            f"{on['server_cpu_ms_per_request'] or 0:.3f} ms, "
            f"off {off['load']['throughput']:.0f}/s "
            f"{off['server_cpu_ms_per_request'] or 0:.3f} ms, cost {1 - ratio:+.1%}"
        )
    on_best = max(on["load"]["throughput"] for on, _ in pairs)
    off_best = max(off["load"]["throughput"] for _, off in pairs)
    lines.append(
        f"  best run of each side: on {on_best:.0f}/s, off {off_best:.0f}/s "
        f"(cost {1 - _ratio(on_best, off_best):+.1%}; meaningful only when both "
        "sides had an undisturbed run)"
    )
    return lines


def _throughput_row(
    label: str, direct: Summary, proxy: Summary, at_least: float
) -> Row:
    ratio = _ratio(proxy.throughput, direct.throughput)
    return Row(
        label,
        f"{direct.throughput:.1f}/s",
        f"{proxy.throughput:.1f}/s",
        f"{ratio:.2f}x",
        f">= {at_least}x",
        ratio >= at_least,
    )


def _floor_row(
    label: str, proxy: Summary, floor: Summary | None, at_most: float
) -> Row:
    """CPU per answer against the floor's in the same run. Without a floor
    (`--servers` left it out) the figure is shown and not judged; nor is it
    where the floor's CPU read as zero (a smoke run: clock ticks of 10 ms)."""
    value = proxy.cpu_ms_per_request or 0.0
    target = f"<= {at_most}x floor"
    if floor is None or floor.cpu_ms_per_request is None:
        return Row(label, "no floor", f"{value:.3f} ms", "", target, None)
    floor_ms = floor.cpu_ms_per_request
    if not floor_ms:
        return Row(label, "floor 0.000 ms", f"{value:.3f} ms", "-", target, None)
    ratio = value / floor_ms
    return Row(
        label,
        f"floor {floor_ms:.3f} ms",
        f"{value:.3f} ms",
        f"{ratio:.2f}x",
        target,
        ratio <= at_most,
    )


def _added_row(label: str, direct: Summary, proxy: Summary, at_most_ms: float) -> Row:
    added = proxy.latency_p50_ms - direct.latency_p50_ms
    return Row(
        label,
        f"{direct.latency_p50_ms:.2f} ms",
        f"{proxy.latency_p50_ms:.2f} ms",
        f"+{added:.2f} ms",
        f"<= {at_most_ms} ms",
        added <= at_most_ms,
    )


def table(rows: list[Row], headers: tuple[str, ...]) -> str:
    cells = [headers] + [
        (r.label, r.direct, r.portico, r.value, r.target, r.verdict) for r in rows
    ]
    return _aligned(cells, rule=True)


def server_table(s: dict[str, dict[str, Summary]], servers: list[str]) -> str:
    """The same scenarios under each server, side by side."""
    lines = []
    for scenario, words in ((SLOW, "slow streams"), (SLOW_WIDE, "slow, wide")):
        if scenario not in s:
            continue
        lines += [
            (f"streams/s, {words}", scenario, "throughput", "{:.1f}/s"),
            (f"first-token p50, {words}", scenario, "ttft_p50_ms", "{:.1f} ms"),
            (f"first-token p99, {words}", scenario, "ttft_p99_ms", "{:.1f} ms"),
            (f"CPU per stream, {words}", scenario, "cpu_ms_per_request", "{:.3f} ms"),
            (f"RSS peak, {words}", scenario, "rss_peak_mb", "{:.0f} MB"),
        ]
    lines += [
        ("streams/s, no delay", "stream_fast", "throughput", "{:.1f}/s"),
        ("first-token p99, no delay", "stream_fast", "ttft_p99_ms", "{:.1f} ms"),
        ("CPU per stream, no delay", "stream_fast", "cpu_ms_per_request", "{:.3f} ms"),
        ("requests/s, non-streaming", "json", "throughput", "{:.1f}/s"),
        ("CPU per request, non-streaming", "json", "cpu_ms_per_request", "{:.3f} ms"),
        ("latency p50, 1 client, non-stream", "latency", "latency_p50_ms", "{:.2f} ms"),
    ]

    def cell(scenario: str, server: str, attr: str, spec: str) -> str:
        value = getattr(s[scenario][server], attr)
        return "-" if value is None else spec.format(value)

    cells = [("", *servers)] + [
        (label, *(cell(scenario, server, attr, spec) for server in servers))
        for label, scenario, attr, spec in lines
    ]
    return _aligned(cells)


def _aligned(cells: list[tuple[str, ...]], *, rule: bool = False) -> str:
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = []
    for index, row in enumerate(cells):
        lines.append(
            "  ".join(
                text.ljust(width) if i == 0 else text.rjust(width)
                for i, (text, width) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
        if rule and index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def profile_top(path: Path, *, limit: int = 25) -> str:
    """Self and inclusive share of samples per function, from py-spy's raw
    (collapsed) output: one `frame;frame;... count` line per stack."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = [_short(frame) for frame in stack.split(";")]
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    if not total:
        return f"{path.name}: no samples"
    out = [f"{path.name}: {total} samples", "  self%  incl%  function (file)"]
    for frame, samples in own.most_common(limit):
        out.append(
            f"  {samples / total:5.1%}  {inclusive[frame] / total:5.1%}  {frame}"
        )
    return "\n".join(out)


def _short(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    file = match["file"]
    for marker in ("site-packages/", "lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    else:
        file = Path(file).name if "/" in file else file
    return f"{match['function']} ({file})"


def as_jsonable(summaries: dict[str, dict[str, Summary]]) -> dict[str, Any]:
    from dataclasses import asdict

    return {
        scenario: {target: asdict(summary) for target, summary in targets.items()}
        for scenario, targets in summaries.items()
    }


def printed(outcome: dict[str, Any], mode: Mode) -> str:
    summaries: dict[str, dict[str, Summary]] = outcome["summaries"]
    pinning = (
        "fake backend + load generator pinned to core 0, Portico to core 1 (taskset)"
        if outcome["pinned"]
        else "no taskset or fewer than 2 cores: processes NOT pinned"
    )
    lines = [
        f"Portico proxy benchmark, mode {outcome['mode']}: {outcome['machine']}",
        pinning,
        "one Portico worker (uvicorn, uvloop + httptools, no access log), "
        "PostgreSQL + Redis, metering on; 64-token answers",
        f"load average before {outcome['load_average']['before']}, "
        f"after {outcome['load_average']['after']}; "
        f"{outcome['seconds']} s; {mode.rounds} round(s) per scenario, averaged",
    ]
    if mode.requests is not None:
        lines.append("SMOKE MODE: a few requests each; the numbers mean nothing")
    rows = target_rows(
        summaries,
        server="uvicorn",
        delay_ms=mode.delay_ms,
        slow=mode.slow_streams,
        slow_wide=mode.slow_streams_wide,
        fast=mode.fast_streams,
        json_concurrency=mode.json_concurrency,
    )
    pairs = outcome.get("metering") or []
    if pairs:
        rows.append(metering_row(pairs, mode.fast_streams))
    headers = ("uvicorn", "direct / floor", "portico", "measured", "target", "met")
    lines += ["", table(rows, headers)]
    if pairs:
        lines += ["", *metering_detail(pairs)]
    servers = [
        name for name in outcome["servers"] if not name.endswith(("-meter", "-nometer"))
    ]
    if len(servers) > 1:
        lines += ["", "Server choice (same scenarios, one worker each):"]
        lines.append(server_table(summaries, servers))
    # Short runs (smoke) measure the generator's start-up, not its load.
    loadgen = max(
        (
            run["load"]["cpu_share"]
            for targets in outcome["runs"].values()
            for runs in targets.values()
            for run in runs
            if run["load"]["window_s"] >= 1
        ),
        default=0.0,
    )
    errors = sum(
        summary.errors for targets in summaries.values() for summary in targets.values()
    )
    lines += ["", "Portico's core during its runs (others: the rest of this machine):"]
    for scenario, targets in summaries.items():
        shares = [
            f"{name} {summary.server_busy:.0%} (others {summary.others_busy:.0%})"
            for name, summary in targets.items()
            if summary.server_busy is not None
        ]
        lines.append(f"  {scenario:15} " + ", ".join(shares))
    lines += [
        "",
        f"load generator: at most {loadgen:.0%} of its core in any run"
        + (" (near saturation: numbers are suspect)" if loadgen > 0.85 else ""),
        f"failed or incomplete answers: {errors}",
    ]
    for name, count in outcome["logged_errors"].items():
        if count:
            lines.append(
                f"WARNING: {name} logged {count} errors while measured: "
                f"see {outcome['logs'][name]}"
            )
    return "\n".join(lines)
