"""The benchmark report: Markdown tables of figures and ratios, and a PNG chart of ratios."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# (key, label, higher is better, target ratio vs sqla+ on PostgreSQL / SQLite or None)
BRIDGE_ROWS: list[tuple[str, str]] = [
    ("bridge_tick1_per_s", "tick mode, 1 message a tick, tick every 0.05 s"),
    ("bridge_tick100_per_s", "tick mode, up to 100 messages a tick"),
    ("bridge_worker_per_s", "worker mode, 2 processes"),
]

ROWS: list[tuple[str, str, bool]] = [
    ("publish_per_s", "publish, msg/s", True),
    ("drain_per_s", "drain 5,000 trivial tasks, tasks/s", True),
    ("sleepy_s", "200 × 50 ms tasks on 2 processes, s (ideal 5)", False),
    ("latency_p50_ms", "enqueue→start p50 at 20 msg/s, ms", False),
    ("latency_p99_ms", "enqueue→start p99 at 20 msg/s, ms", False),
    ("idle_queries_per_s", "idle worker, transactions/s", False),
    ("consume_fresh_per_s", "consume+ack, fresh tables, msg/s", True),
    ("consume_after_history_per_s", "consume+ack after 300,000 passed, msg/s", True),
]


# The side-by-side comparison (bench/comparison.py): (key, label, higher is better).
COMPARISON_ROWS: list[tuple[str, str, bool]] = [
    ("publish_per_s", "publish one by one, msg/s", True),
    (
        "publish_unflushed_per_s",
        'publish one by one, linkmq+ not waiting for the WAL flush (`publish_synchronous_commit="off"`), msg/s',
        True,
    ),
    ("bulk_per_s", "publish in bulk, msg/s", True),
    ("bulk_group_per_s", "publish in bulk as a Celery group, msg/s", True),
    ("drain_per_s", "drain {drain:,} trivial tasks, tasks/s", True),
    ("latency_p50_ms", "enqueue→start p50 at 20 msg/s, ms", False),
    ("latency_p99_ms", "enqueue→start p99 at 20 msg/s, ms", False),
    (
        "crash_lost",
        "SIGKILL mid-task: of {crash_tasks} tasks, not run again within {crash_budget_s:.0f} s",
        False,
    ),
]
OURS = "linkmq+ PostgreSQL"
# Rows of linkmq+ alone, set beside another row's figure of each peer.
PEERS_FIGURE = {"publish_unflushed_per_s": "publish_per_s"}

SHORT_LABELS = {"drain_per_s": "drain 5,000", "consume_after_history_per_s": "consume after 300k"}
PEERS_SHORT_LABELS = {"publish_unflushed_per_s": "publish one by one, no WAL flush wait"}


def _ratio(ours: float | None, theirs: float | None, higher_is_better: bool) -> str:
    ratio = _ratio_value(ours, theirs, higher_is_better)
    if not ratio:
        return "–"
    # Two significant digits below a tenth: a bulk path 20 times faster is not "0.0".
    return f"{ratio:.2g}×" if ratio < 0.1 else f"{ratio:,.1f}×"


def _ratio_value(ours: float | None, theirs: float | None, higher_is_better: bool) -> float:
    """linkmq+'s figure against another's, above 1 linkmq+ is better; 0 where one is missing."""
    if not ours or not theirs:
        return 0.0
    return ours / theirs if higher_is_better else theirs / ours


def _cell(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def table(report: dict[str, Any]) -> str:
    results: dict[str, dict[str, float]] = report["results"]
    lines = [
        f"Benchmark {report['when']} on {report['machine']}; "
        f"celery {report['versions']['celery']}, kombu {report['versions']['kombu']}, "
        f"SQLAlchemy {report['versions']['sqlalchemy']}{' (quick)' if report['quick'] else ''}.",
        "",
    ]
    redis = results.get("Redis", {})
    for database in ("PostgreSQL", "SQLite"):
        ours = results.get(f"linkmq+ {database}", {})
        theirs = results.get(f"sqla+ {database}", {})
        if not ours:
            continue
        lines += [
            f"**{database}**",
            "",
            "| measure | sqla+ | linkmq+ | linkmq+ vs sqla+ | Redis |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for key, label, higher in ROWS:
            if key not in ours and key not in theirs:
                continue
            lines.append(
                f"| {label} | {_cell(theirs.get(key))} | {_cell(ours.get(key))} | "
                f"{_ratio(ours.get(key), theirs.get(key), higher)} | {_cell(redis.get(key))} |"
            )
        if "ceiling_per_s" in ours:
            share = ours["publish_per_s"] / ours["ceiling_per_s"]
            lines += [
                "",
                f"Publish ceiling (Celery's own publish {ours['celery_publish_per_s']:,.0f}/s plus one raw "
                f"INSERT+COMMIT {ours['raw_insert_per_s']:,.0f}/s): {ours['ceiling_per_s']:,.0f}/s; "
                f"linkmq+ reaches {share:.0%} of it.",
            ]
        if "consume_after_history_per_s" in ours:
            kept = ours["consume_after_history_per_s"] / ours["consume_fresh_per_s"]
            lines.append(f"linkmq+ consume rate after the history: {kept:.0%} of fresh.")
        bridge = [(label, ours[key]) for key, label in BRIDGE_ROWS if key in ours]
        if bridge:
            lines += [
                "",
                "| workflow messages end to end (engine in the loop) | msg/s |",
                "| --- | ---: |",
            ]
            lines += [f"| {label} | {_cell(value)} |" for label, value in bridge]
        lines.append("")
    lines += comparison_table(report)
    lines += backlog_lines(report)
    return "\n".join(lines).rstrip()


def comparison_table(report: dict[str, Any]) -> list[str]:
    """linkmq+ and its peers: each figure the median of the rounds; beside each peer's figure,
    linkmq+'s ratio to it (above 1, linkmq+ is better)."""
    if "comparison" not in report:
        return []
    compared = report["comparison"]
    results: dict[str, dict[str, float]] = compared["results"]
    ours = results.get(OURS, {})
    peers = [name for name in results if name != OURS]
    lines = [
        f"**Side by side with the peers** (medians of {compared['repeat']} rounds, systems "
        f"rotated; 2 worker processes each; publish {compared['counts']['publish']:,} tasks). "
        "×: linkmq+ against that peer, above 1× linkmq+ is better.",
        "",
        f"| measure | {OURS} | " + " | ".join(peers) + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in peers) + " |",
    ]
    for key, label, higher in COMPARISON_ROWS:
        if key not in ours:
            continue
        cells = []
        for peer in peers:
            theirs = results[peer].get(PEERS_FIGURE.get(key, key))
            if theirs is None:  # not measured: a system without that API (bulk)
                cells.append("–")
            elif key == "crash_lost":  # a count: no ratio to 0
                cells.append(f"{theirs:g}")
            else:
                cells.append(f"{_cell(theirs)} ({_ratio(ours[key], theirs, higher)})")
        ours_cell = f"{ours[key]:g}" if key == "crash_lost" else _cell(ours[key])
        lines.append(
            f"| {label.format(**compared['counts'])} | {ours_cell} | " + " | ".join(cells) + " |"
        )
    lines += [f"- {note}" for note in compared.get("notes", []) + _cut_short(compared)]
    lines.append("")
    return lines


def _cut_short(compared: dict[str, Any]) -> list[str]:
    """A note for each system whose drain or latency run ended before all its tasks ran."""
    counts = compared["counts"]
    notes = []
    for name, figures in compared["results"].items():
        if figures.get("drained", counts["drain"] + 1) < counts["drain"] + 1:
            notes.append(
                f"{name}: the drain was cut at its time budget after {figures['drained']:,.0f} "
                f"of {counts['drain'] + 1:,} tasks (median); its rate is over those."
            )
        if figures.get("latency_n", counts["latency"]) < counts["latency"]:
            notes.append(
                f"{name}: {figures['latency_n']:,.0f} of {counts['latency']:,} tasks had started "
                "30 s after the last publish (median); its latency is over those, the others "
                "waited longer."
            )
    return notes


def backlog_lines(report: dict[str, Any]) -> list[str]:
    if "backlog" not in report:
        return []
    figures = report["backlog"]
    lines = [
        f"**Backlog** (linkmq+ PostgreSQL, {figures['backlog']:,.0f} tasks waiting, written in "
        f"{figures['backlog_fill_s']:.0f} s; medians of {figures['trials']:.0f} rounds):",
        "",
        "| measure | empty queue | with the backlog | kept |",
        "| --- | ---: | ---: | ---: |",
    ]
    for key, label in (
        ("claim_ack", "claim+ack (kombu), msg/s"),
        ("drain", "worker drain, tasks/s"),
    ):
        empty, full = figures[f"{key}_empty_per_s"], figures[f"{key}_backlog_per_s"]
        lines.append(f"| {label} | {_cell(empty)} | {_cell(full)} | {full / empty:.0%} |")
    lines.append("")
    return lines


def chart(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        draw
        for draw, wanted in (
            (_brokers_panel, report["results"]),
            (_peers_panel, report.get("comparison")),
        )
        if wanted
    ]
    figure, axes = plt.subplots(len(panels), 1, figsize=(10, 5 * len(panels)), squeeze=False)
    for draw, axis in zip(panels, axes[:, 0], strict=True):
        draw(report, axis)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _ratio_bars(axis: Any, labels: list[str], series: dict[str, list[float]]) -> None:
    width = 0.8 / len(series)
    for number, (name, values) in enumerate(series.items()):
        offset = (number - (len(series) - 1) / 2) * width
        axis.bar([p + offset for p in range(len(labels))], values, width=width, label=name)
    axis.axhline(1.0, color="black", linewidth=0.8)
    axis.set_yscale("log")
    axis.set_xticks(list(range(len(labels))), labels, rotation=30, ha="right")
    axis.legend()


def _brokers_panel(report: dict[str, Any], axis: Any) -> None:
    results: dict[str, dict[str, float]] = report["results"]
    labels: list[str] = []
    series: dict[str, list[float]] = {"PostgreSQL": [], "SQLite": []}
    for key, label, higher in ROWS:
        for database, values in series.items():
            ours = results.get(f"linkmq+ {database}", {}).get(key)
            theirs = results.get(f"sqla+ {database}", {}).get(key)
            values.append((ours / theirs if higher else theirs / ours) if ours and theirs else 0.0)
        labels.append(SHORT_LABELS.get(key, label.split(",")[0]))
    _ratio_bars(axis, labels, series)
    axis.set_ylabel("linkmq+ / sqla+ (higher is better, log scale)")
    axis.set_title(f"linkmq+ against kombu's sqla+ — {report['when']}")


def _peers_panel(report: dict[str, Any], axis: Any) -> None:
    compared = report["comparison"]
    results: dict[str, dict[str, float]] = compared["results"]
    ours = results.get(OURS, {})
    rows = [(key, label, higher) for key, label, higher in COMPARISON_ROWS if key != "crash_lost"]
    labels = [
        PEERS_SHORT_LABELS.get(key) or label.format(**compared["counts"]).rsplit(", ", 1)[0]
        for key, label, _ in rows
    ]
    series = {
        peer: [
            _ratio_value(ours.get(key), theirs.get(PEERS_FIGURE.get(key, key)), higher)
            for key, _, higher in rows
        ]
        for peer, theirs in results.items()
        if peer != OURS
    }
    _ratio_bars(axis, labels, series)
    axis.set_ylabel("linkmq+ / peer (higher is better, log scale)")
    axis.set_title(
        f"linkmq+ PostgreSQL against its peers, medians of {compared['repeat']} rounds — "
        f"{report['when']}"
    )
