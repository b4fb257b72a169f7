"""The soak's verdicts and pictures: the books (one usage record per metered
answer, matched by request id), memory growth after the warm-up, the printed
summary and the plot."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from bench.soakload import Tally

RSS_GROWTH_LIMIT_MB_PER_HOUR = 5.0


def books_check(database_url: str, tally: Tally) -> dict[str, Any]:
    """The usage table against the answers: every metered answer has exactly
    one record, and no record exists that no answer accounts for."""
    import psycopg

    with psycopg.connect(database_url) as connection:
        stored = {
            row[0]
            for row in connection.execute("SELECT request_id FROM usage_usagerecord")
        }
    missing = tally.metered_ids - stored
    unexplained = stored - tally.metered_ids
    return {
        "requests": tally.requests,
        "metered_answers": len(tally.metered_ids),
        "usage_records": len(stored),
        "missing": len(missing),
        "missing_examples": sorted(missing)[:5],
        # Requests whose answer never began may still have reached Portico.
        "unexplained": len(unexplained),
        "unanswered_requests": tally.unanswered,
        "unmetered_answers": tally.unmetered,
        "exact": not missing and len(unexplained) <= tally.unanswered,
    }


def _slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (minute, MB) points, in MB per hour."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if not spread:
        return 0.0
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread
    return slope * 60


def rss_growth(
    samples: list[dict[str, Any]],
    *,
    warmup_minutes: float,
    events: list[dict[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per process: RSS at the end of the warm-up, at the end, and the
    fitted growth per hour after the warm-up (the final, idle sample is
    left out: it is taken after the load stopped).

    An outage steps memory up once (the meter holds the records it cannot
    write, the allocator keeps the arenas after), which a straight line over
    the whole run reads as growth. So the steady stretches between events are
    also fitted one by one, and each event's step is given: a leak climbs
    within a stretch, a high-water mark does not."""
    events = events or []
    during = [s for s in samples[:-1] if s["minute"] >= warmup_minutes]
    cuts = [warmup_minutes, *(e["minute"] for e in events), float("inf")]
    growth: dict[str, dict[str, Any]] = {}
    names = list(samples[0]["workers"]) if samples else []
    for name in names:
        points = [(s["minute"], s["workers"][name]["rss_mb"]) for s in during]
        if not points:
            continue
        per_hour = _slope_per_hour(points)
        stretches = []
        for index, (start, end) in enumerate(itertools.pairwise(cuts)):
            settle = 1.0 if index else 0.0  # a minute for a recovery to settle
            inside = [p for p in points if start + settle <= p[0] < end]
            if len(inside) >= 5:
                stretches.append(
                    {
                        "from_minute": inside[0][0],
                        "to_minute": inside[-1][0],
                        "mb_per_hour": round(_slope_per_hour(inside), 2),
                    }
                )
        steps = []
        for event in events:
            before = [y for x, y in points if x < event["minute"]]
            after = [
                y for x, y in points if event["minute"] + 1 <= x < event["minute"] + 3
            ]
            if before and after:
                steps.append(
                    {"what": event["what"], "mb": round(max(after) - before[-1], 1)}
                )
        steady = max((s["mb_per_hour"] for s in stretches), default=per_hour)
        growth[name] = {
            "after_warmup_mb": points[0][1],
            "end_mb": points[-1][1],
            "peak_mb": max(y for _, y in points),
            "mb_per_hour": round(per_hour, 2),
            "stretches": stretches,
            "steps": steps,
            "steady_mb_per_hour": round(steady, 2),
            "met": per_hour <= RSS_GROWTH_LIMIT_MB_PER_HOUR,
            "steady_met": steady <= RSS_GROWTH_LIMIT_MB_PER_HOUR,
        }
    return growth


def printed(summary: dict[str, Any]) -> str:
    books = summary["books"]
    final = summary["final"]
    lines = [
        f"Soak, {summary['minutes']} min: {summary['machine']}",
        "events: "
        + ", ".join(f"{e['what']} at min {e['minute']}" for e in summary["events"]),
        f"requests sent {books['requests']}, metered answers "
        f"{books['metered_answers']}, usage records {books['usage_records']}: "
        f"missing {books['missing']}, unexplained {books['unexplained']} "
        f"(requests never answered {books['unanswered_requests']}, refused "
        f"before the key was known {books['unmetered_answers']}) -> "
        + ("EXACT" if books["exact"] else "MISMATCH"),
        f"meters drained at the end: {summary['drained']}",
        "outcomes: "
        + ", ".join(f"{k} {v}" for k, v in sorted(summary["outcomes"].items())),
    ]
    for name, worker in final["workers"].items():
        connections = worker["connections"]
        lines.append(
            f"{name} at the end (idle): connections {connections}, slot leases "
            f"{worker.get('portico_slot_leases_held')}, buffer "
            f"{worker.get('portico_usage_buffer_records')}"
        )
    lines.append(
        f"Redis at the end: {final['redis']['clients']} clients, "
        f"{final['redis']['slots_held']} slots held"
    )
    for name, growth in summary["rss_growth"].items():
        lines.append(
            f"{name} RSS: {growth['after_warmup_mb']} MB after warm-up, "
            f"{growth['end_mb']} MB at the end, peak {growth['peak_mb']} MB, "
            f"fitted {growth['mb_per_hour']:+.2f} MB/hour over the run (limit "
            f"{RSS_GROWTH_LIMIT_MB_PER_HOUR}) " + ("met" if growth["met"] else "MISSED")
        )
        if growth.get("stretches"):
            stretches = ", ".join(
                f"min {s['from_minute']:.0f}-{s['to_minute']:.0f} "
                f"{s['mb_per_hour']:+.2f}"
                for s in growth["stretches"]
            )
            steps = ", ".join(f"{s['what']} {s['mb']:+.1f} MB" for s in growth["steps"])
            lines.append(
                f"  between events (MB/hour): {stretches}; steps at events: "
                f"{steps or 'none'} -> steady growth "
                f"{growth['steady_mb_per_hour']:+.2f} MB/hour "
                + ("met" if growth["steady_met"] else "MISSED")
            )
    return "\n".join(lines)


def plot(summary: dict[str, Any], path: Path) -> None:
    """Four panels over the minutes: each worker's RSS, its connections (and
    Redis's clients), its event-loop lag beside the machine's load average,
    and its usage buffer beside the requests answered."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = summary["samples"][:-1]  # the last one is after the load
    minutes = [s["minute"] for s in samples]
    workers = list(samples[0]["workers"]) if samples else []
    figure, axes = plt.subplots(4, 1, figsize=(9, 10), sharex=True)
    for name in workers:
        rows = [s["workers"][name] for s in samples]
        axes[0].plot(minutes, [r["rss_mb"] for r in rows], label=f"{name} RSS")
        axes[1].plot(
            minutes,
            [sum(r["connections"].values()) for r in rows],
            label=f"{name} TCP connections",
        )
        axes[2].plot(
            minutes,
            [1000 * r.get("portico_event_loop_lag_p99_seconds", 0.0) for r in rows],
            label=f"{name} loop lag p99",
        )
        axes[3].plot(
            minutes,
            [r.get("portico_usage_buffer_records", 0.0) for r in rows],
            label=f"{name} usage buffer",
        )
    axes[1].plot(
        minutes,
        [s["redis"]["clients"] or 0 for s in samples],
        label="Redis clients (all processes)",
        ls="--",
    )
    load = axes[2].twinx()
    load.plot(
        minutes,
        [float(s["load_average"].split()[0]) for s in samples],
        color="grey",
        ls=":",
        label="machine load average (1 min)",
    )
    load.set_ylabel("load")
    load.legend(fontsize=7, loc="upper right")
    answered = axes[3].twinx()
    answered.plot(
        minutes,
        [sum(s["requests"].values()) for s in samples],
        color="grey",
        ls=":",
        label="requests in the minute",
    )
    answered.set_ylabel("requests")
    answered.legend(fontsize=7, loc="upper right")
    labels = ("RSS, MB", "open", "lag, ms", "records waiting")
    for axis, label in zip(axes, labels, strict=True):
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="upper left")
        for event in summary["events"]:
            axis.axvline(event["minute"], color="grey", lw=0.8, ls=":")
    for event in summary["events"]:
        axes[0].annotate(
            f" {event['what']} restart",
            (event["minute"], 0.02),
            xycoords=("data", "axes fraction"),
            fontsize=7,
        )
    axes[-1].set_xlabel("minutes")
    figure.suptitle(f"Portico soak, {summary['minutes']:g} minutes")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
