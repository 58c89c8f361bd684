#!/usr/bin/env python3
"""Renders bench/compare.sh results (JSON lines) as markdown tables with Warren/RabbitMQ ratios.

Usage: bench/table.py results.jsonl [meta.json]

Ratios are oriented so that > 1 means Warren is better: Warren/RabbitMQ for throughput,
RabbitMQ/Warren for CPU per message, latency, memory and restart time. With several rounds the
median of each figure is used.
"""
import json
import statistics
import sys


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    return rows


def get(d, path):
    for key in path.split("."):
        if not isinstance(d, dict) or d.get(key) is None:
            return None
        d = d[key]
    return d


def median(rows, label, broker, path):
    mine = [r for r in rows if r.get("label") == label and r.get("target") == broker]
    vals = [get(r, path) for r in mine]
    vals = [v for v in vals if isinstance(v, (int, float))]
    if vals:
        return statistics.median(vals)
    errors = [r["error"] for r in mine if r.get("error")]
    return f"failed: {errors[0]}" if errors else None


def fmt(v, unit):
    if v is None:
        return "–"
    if isinstance(v, str):
        return v
    if unit == "msg/s":
        return f"{v:,.0f}"
    if unit == "MiB":
        return f"{v / 1024:.1f}"
    if unit == "µs":
        return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"
    if unit == "µs/msg":
        return f"{v:.2f}"
    if unit == "%":
        return f"{v:.0f}"
    if unit == "s":
        return f"{v:.2f}"
    return f"{v}"


# (scenario label, metric name, json path, unit, higher is better, target from issue 4)
METRICS = [
    ("idle", "idle RSS", "idle_rss_kib", "MiB", False, "<= 16 MB"),
    ("autoack", "deliveries/s", "consume_rate", "msg/s", True, ">= 6x"),
    ("autoack", "broker CPU per msg", "broker.cpu_us_per_msg", "µs/msg", False, "<= 1/20"),
    ("autoack", "e2e p99", "e2e_latency.p99_us", "µs", False, ""),
    ("manual-ack", "deliveries/s", "consume_rate", "msg/s", True, ""),
    ("manual-ack", "broker CPU per msg", "broker.cpu_us_per_msg", "µs/msg", False, "<= 1/20"),
    ("persistent", "confirms/s", "confirm_rate", "msg/s", True, ">= 6x"),
    ("persistent", "confirm p99", "confirm_latency.p99_us", "µs", False, "<= 1/5"),
    ("persistent", "broker CPU per msg", "broker.cpu_us_per_msg", "µs/msg", False, ""),
    ("fanout", "deliveries/s", "consume_rate", "msg/s", True, ">= 6x"),
    ("fanout", "broker CPU per delivery", "broker.cpu_us_per_msg", "µs/msg", False, ""),
    ("rate", "e2e p50", "e2e_latency.p50_us", "µs", False, ""),
    ("rate", "e2e p99", "e2e_latency.p99_us", "µs", False, "<= 1/5"),
    ("rate", "e2e p99.9", "e2e_latency.p999_us", "µs", False, ""),
    ("rate", "broker CPU per msg", "broker.cpu_us_per_msg", "µs/msg", False, ""),
    ("store", "publish+confirm rate", "confirm_rate", "msg/s", True, ""),
    ("store-rss", "RSS with queue full", "rss_kib", "MiB", False, "<= 64 MB (1M)"),
    ("store-restart", "restart until all queued", "restart_s", "s", False, "<= 5 s (10M)"),
    ("store-restart", "RSS after restart", "rss_after_kib", "MiB", False, ""),
]


def ratio(w, r, higher_better):
    if not isinstance(w, (int, float)) or not isinstance(r, (int, float)):
        return "–"
    if w is None or r is None or w == 0 or r == 0:
        return "–"
    x = w / r if higher_better else r / w
    return f"{x:.1f}x"


def main():
    rows = load(sys.argv[1])
    if len(sys.argv) > 2:
        meta = json.load(open(sys.argv[2])).get("meta", {})
        print(
            f"Run {meta.get('date')} on {meta.get('nproc')} x {meta.get('cpu')}, "
            f"{meta.get('duration')} s per run, {meta.get('rounds')} round(s), medians.\n"
        )
    print("| scenario | metric | Warren | RabbitMQ | ratio (>1: Warren better) | target |")
    print("|---|---|---:|---:|---:|---|")
    for label, name, path, unit, higher, target in METRICS:
        w = median(rows, label, "warren", path)
        r = median(rows, label, "rabbitmq", path)
        if w is None and r is None:
            if not any(x.get("label") == label for x in rows):
                continue
        print(
            f"| {label} | {name} ({unit}) | {fmt(w, unit)} | {fmt(r, unit)} | "
            f"{ratio(w, r, higher)} | {target} |"
        )
    print()
    print(
        "| run | broker | publish/s | deliver/s | confirm/s | e2e p50/p99/p99.9 µs | "
        "confirm p50/p99 µs | broker CPU % | broker µs/msg | broker RSS peak MiB | tool µs/msg |"
    )
    print("|---|---|---:|---:|---:|---|---|---:|---:|---:|---:|")
    for r in rows:
        if "publish_rate" not in r:
            continue

        def lat(key, qs):
            return "/".join(fmt(get(r, f"{key}.{q}"), "µs") for q in qs)

        print(
            f"| {r.get('label')} | {r.get('target')} | {fmt(r['publish_rate'], 'msg/s')} | "
            f"{fmt(r['consume_rate'], 'msg/s')} | {fmt(r['confirm_rate'], 'msg/s')} | "
            f"{lat('e2e_latency', ['p50_us', 'p99_us', 'p999_us'])} | "
            f"{lat('confirm_latency', ['p50_us', 'p99_us'])} | "
            f"{fmt(get(r, 'broker.cpu_pct'), '%')} | "
            f"{fmt(get(r, 'broker.cpu_us_per_msg'), 'µs/msg')} | "
            f"{fmt(get(r, 'broker.rss_peak_kib'), 'MiB')} | "
            f"{fmt(r.get('tool_cpu_us_per_msg'), 'µs/msg')} |"
        )


if __name__ == "__main__":
    main()
