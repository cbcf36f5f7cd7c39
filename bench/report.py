"""The benchmark report: a Markdown table of figures and ratios, and a PNG chart of ratios."""

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


SHORT_LABELS = {"drain_per_s": "drain 5,000", "consume_after_history_per_s": "consume after 300k"}


def _ratio(ours: float | None, theirs: float | None, higher_is_better: bool) -> str:
    if not ours or not theirs:
        return "–"
    ratio = ours / theirs if higher_is_better else theirs / ours
    return f"{ratio:.1f}×"


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
    return "\n".join(lines).rstrip()


def chart(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results: dict[str, dict[str, float]] = report["results"]
    labels, postgres, sqlite = [], [], []
    for key, label, higher in ROWS:
        values = []
        for database in ("PostgreSQL", "SQLite"):
            ours = results.get(f"linkmq+ {database}", {}).get(key)
            theirs = results.get(f"sqla+ {database}", {}).get(key)
            values.append((ours / theirs if higher else theirs / ours) if ours and theirs else 0.0)
        labels.append(SHORT_LABELS.get(key, label.split(",")[0]))
        postgres.append(values[0])
        sqlite.append(values[1])
    figure, axis = plt.subplots(figsize=(10, 5))
    positions = range(len(labels))
    axis.bar([p - 0.2 for p in positions], postgres, width=0.4, label="PostgreSQL")
    axis.bar([p + 0.2 for p in positions], sqlite, width=0.4, label="SQLite")
    axis.axhline(1.0, color="black", linewidth=0.8)
    axis.set_yscale("log")
    axis.set_xticks(list(positions), labels, rotation=30, ha="right")
    axis.set_ylabel("linkmq+ / sqla+ (higher is better, log scale)")
    axis.set_title(f"linkmq+ against kombu's sqla+ — {report['when']}")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
