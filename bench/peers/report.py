#!/usr/bin/env python3
"""Turns a peers_bench results file (CSV) into a markdown table of ratios and
two PNG plots drawn by gnuplot.

    bench/peers/report.py RESULTS.csv [--out-prefix PREFIX] [--summary]

writes PREFIX.md, PREFIX-throughput.png and PREFIX-roundtrip.png (PREFIX
defaults to the results file without .csv) and prints their names; with
--summary it prints one compact table of the ratios instead (what
`tools/dev.sh main` shows). Ratios put sleet at 1.00:
for throughput and the key-value store a ratio is peer rate / sleet rate
(below 1.00: the peer is slower), for round trips it is peer time / sleet time
(above 1.00: the peer is slower).
"""
import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile

PAYLOADS = [8, 64, 1024, 4096]


def read_results(path):
    meta, mechanisms, skipped, rows = {}, {}, {}, []
    with open(path, newline="") as f:
        lines = []
        for line in f:
            if line.startswith("#"):
                body = line[1:].strip()
                key, _, value = body.partition(": ")
                if key.startswith("mechanism "):
                    mechanisms[key[len("mechanism "):]] = value
                elif key.startswith("skipped "):
                    skipped[key[len("skipped "):]] = value
                elif value:
                    meta[key] = value
            elif line.strip():
                lines.append(line)
    for r in csv.DictReader(lines):
        r["payload_bytes"] = int(r["payload_bytes"])
        for k in ("value", "ratio_vs_sleet", "ratio_min", "ratio_max"):
            r[k] = float(r[k]) if r[k] else None
        rows.append(r)
    if not rows:
        sys.exit(f"report.py: no results in {path}")
    return meta, mechanisms, skipped, rows


def fmt_value(unit, v):
    if v is None:
        return "failed"
    if unit == "ns":
        if v >= 1e6:
            return f"{v / 1e6:.2f} ms"
        return f"{v / 1e3:.2f} us" if v >= 1e3 else f"{v:.0f} ns"
    return f"{v / 1e6:.2f} M/s" if v >= 1e6 else f"{v / 1e3:.1f} k/s"


def fmt_ratio(x):
    return f"{x:.2g}" if x < 0.1 else f"{x:.2f}" if x < 10 else f"{x:.0f}"


def fmt_cell(r, ranges):
    if r["value"] is None:
        return "failed"
    value = fmt_value(r["unit"], r["value"])
    if r["mechanism"] == "sleet":
        return f"**1.00** ({value})"
    if r["ratio_vs_sleet"] is None:
        return value
    ratio = f"**{fmt_ratio(r['ratio_vs_sleet'])}**"
    if ranges and r["ratio_min"] is not None and r["ratio_min"] != r["ratio_max"]:
        ratio += f" [{fmt_ratio(r['ratio_min'])}–{fmt_ratio(r['ratio_max'])}]"
    return f"{ratio} ({value})"


def order(mechs):
    # sleet first, then the order of the results file's legend
    return sorted(mechs, key=lambda m: (m != "sleet", m != "sleet-nospin", MECH_ORDER.get(m, 99), m))


MECH_ORDER = {}


def table(rows, workload, columns, col_key, header, ranges):
    sel = [r for r in rows if r["workload"] in workload]
    mechs = order({r["mechanism"] for r in sel})
    out = ["| mechanism | " + " | ".join(header) + " |", "|---|" + "---|" * len(header)]
    for m in mechs:
        cells = []
        for c in columns:
            hit = [r for r in sel if r["mechanism"] == m and col_key(r) == c]
            cells.append(fmt_cell(hit[0], ranges) if hit else "–")
        out.append(f"| {m} | " + " | ".join(cells) + " |")
    return out


def markdown(meta, mechanisms, skipped, rows, plots):
    rounds = max(int(r["rounds"]) for r in rows)
    ranges = rounds > 1
    out = [
        f"# Peer comparison, {meta.get('date', '?')[:10]}",
        "",
        f"Machine: {meta.get('cpu', '?')}, {meta.get('cpus', '?')} CPUs, {meta.get('kernel', '?')}, "
        f"{meta.get('compiler', '?')}. Run: {meta.get('mode', '?')}; sender and receiver pinned to different "
        f"CPUs: {meta.get('pinned', '?')}. Produced by `bench/peers/peers_bench --out` and "
        "`bench/peers/report.py`.",
        "",
        "Every cell is a ratio against sleet in the same round (sleet = **1.00**), the median over rounds"
        + (" with its range in brackets" if ranges else "")
        + ", then the measured value. All numbers are between two real processes (fork).",
        "",
        "## One-way throughput",
        "",
        "Messages per second from one sender process to one receiver process. "
        "**Ratio = peer rate / sleet rate: below 1.00 means slower than sleet.**",
        "",
    ]
    out += table(rows, ("throughput",), PAYLOADS, lambda r: r["payload_bytes"], [f"{p} B" for p in PAYLOADS], ranges)
    out += [
        "",
        "## Round trip",
        "",
        "Mean time of one ping-pong (a message there and the same size back). "
        "**Ratio = peer time / sleet time: above 1.00 means slower than sleet.**",
        "",
    ]
    out += table(rows, ("roundtrip",), PAYLOADS, lambda r: r["payload_bytes"], [f"{p} B" for p in PAYLOADS], ranges)
    out += [
        "",
        "## Key-value store",
        "",
        "Operations per second from a second process after the parent loaded 20,000 keys "
        "(16-byte keys, 64-byte values, random keys). "
        "**Ratio = peer rate / sleet rate: below 1.00 means slower than sleet.**",
        "",
    ]
    out += table(rows, ("kv_get", "kv_set"), ["kv_get", "kv_set"], lambda r: r["workload"], ["get", "set"], ranges)
    out += ["", "## Mechanisms", ""]
    for m in order(mechanisms):
        out.append(f"- **{m}**: {mechanisms[m]}")
    for m, why in skipped.items():
        out.append(f"- **{m}**: skipped: {why}")
    failed = [r for r in rows if r["status"] != "ok"]
    for r in failed:
        out.append(f"- failed: {r['mechanism']} {r['workload']} {r['payload_bytes']} B: {r['status']}")
    if plots:
        out += ["", "## Plots", ""]
        for title, path in plots:
            out.append(f"![{title}]({os.path.basename(path)})")
    return "\n".join(out) + "\n"


def short_value(unit, v):
    if v is None:
        return "failed"
    if unit == "ns":
        return f"{v / 1e6:.3g}ms" if v >= 1e6 else f"{v / 1e3:.3g}us" if v >= 1e3 else f"{v:.0f}ns"
    return f"{v / 1e6:.3g}M" if v >= 1e6 else f"{v / 1e3:.3g}k"


def summary(meta, skipped, rows):
    """One compact table for a terminal: a row per mechanism, a column per
    workload and payload; sleet's row holds its values, the others ratios."""
    cols = [("throughput", p) for p in PAYLOADS] + [("roundtrip", p) for p in PAYLOADS]
    cols += [("kv_get", None), ("kv_set", None)]  # three groups: 4, 4, 2 columns
    mechs = order({r["mechanism"] for r in rows})

    def cell(m, workload, payload):
        hit = [r for r in rows if r["mechanism"] == m and r["workload"] == workload
               and (payload is None or r["payload_bytes"] == payload)]
        if not hit:
            return "-"
        r = hit[0]
        if r["value"] is None:
            return "failed"
        if m == "sleet" or r["ratio_vs_sleet"] is None:
            return short_value(r["unit"], r["value"])
        return fmt_ratio(r["ratio_vs_sleet"])

    grid = [[m] + [cell(m, w, p) for w, p in cols] for m in mechs]
    width = max(7, *(len(c) for g in grid for c in g[1:]))
    name_w = max(len("mechanism"), *(len(m) for m in mechs))
    groups = [("one-way throughput, msgs/s", 4), ("round trip, mean", 4), ("kv ops/s", 2)]
    block_w = [n * (width + 1) - 1 for _, n in groups]

    def line(first, cs):
        blocks, i = [], 0
        for _, n in groups:
            blocks.append(" ".join(c.rjust(width) for c in cs[i:i + n]))
            i += n
        return (first.ljust(name_w) + " " + " | ".join(blocks)).rstrip()

    head = " " * (name_w + 1) + "   ".join(t.center(w) for (t, _), w in zip(groups, block_w))
    out = [f"Peers ({meta.get('mode', '?')}): sleet's row = its values, other cells = peer / sleet, same round;",
           "throughput and kv: below 1 = slower than sleet; round trip (time): above 1 = slower than sleet.",
           head.rstrip(), line("mechanism", [f"{p} B" for p in PAYLOADS] * 2 + ["get", "set"])]
    out += [line(g[0], g[1:]) for g in grid]
    for m, why in skipped.items():
        out.append(f"skipped {m}: {why}")
    for r in rows:
        if r["status"] != "ok":
            out.append(f"failed: {r['mechanism']} {r['workload']} {r['payload_bytes']} B: {r['status']}")
    return "\n".join(out)


def plot(rows, workload, png, title, ylabel):
    gnuplot = shutil.which("gnuplot")
    if gnuplot is None:
        print("report.py: gnuplot not found (Debian package gnuplot-nox); no plots", file=sys.stderr)
        return False
    sel = [r for r in rows if r["workload"] == workload and r["value"] is not None]
    mechs = order({r["mechanism"] for r in sel})
    with tempfile.TemporaryDirectory() as tmp:
        series = []
        for i, m in enumerate(mechs):
            path = os.path.join(tmp, f"{i}.dat")
            with open(path, "w") as f:
                for r in sorted((r for r in sel if r["mechanism"] == m), key=lambda r: r["payload_bytes"]):
                    f.write(f"{r['payload_bytes']} {r['value']}\n")
            width = 3 if m == "sleet" else 1.5
            series.append(f"'{path}' using 1:2 with linespoints lw {width} pt 7 ps 0.8 title '{m}'")
        script = "\n".join([
            "set terminal pngcairo size 900,560 font 'sans,11'",
            f"set output '{png}'",
            f"set title '{title}'",
            "set logscale xy",
            "set xtics (8, 64, 1024, 4096)",
            "set xrange [6:5500]",
            "set xlabel 'payload (bytes)'",
            f"set ylabel '{ylabel}'",
            "set format y '10^{%L}'",
            "set grid xtics ytics mytics",
            "set key outside right top",
            "plot " + ", \\\n     ".join(series),
        ])
        subprocess.run([gnuplot], input=script, text=True, check=True)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    ap.add_argument("--out-prefix")
    ap.add_argument("--summary", action="store_true", help="print one compact ratio table, not the file names")
    args = ap.parse_args()
    meta, mechanisms, skipped, rows = read_results(args.results)
    for i, m in enumerate(mechanisms):
        MECH_ORDER[m] = i
    prefix = args.out_prefix or (args.results[:-4] if args.results.endswith(".csv") else args.results)
    machine = f"{meta.get('cpu', '?')}, {meta.get('cpus', '?')} CPUs, {meta.get('date', '?')[:10]}"
    plots = []
    png = f"{prefix}-throughput.png"
    if plot(rows, "throughput", png, f"One-way throughput between two processes ({machine})", "messages/s"):
        plots.append(("throughput vs payload", png))
    png = f"{prefix}-roundtrip.png"
    if plot(rows, "roundtrip", png, f"Round trip between two processes ({machine})", "round trip (ns)"):
        plots.append(("round trip vs payload", png))
    with open(f"{prefix}.md", "w") as f:
        f.write(markdown(meta, mechanisms, skipped, rows, plots))
    if args.summary:
        print(summary(meta, skipped, rows))
    else:
        print(f"{prefix}.md" + "".join(f", {p}" for _, p in plots))


if __name__ == "__main__":
    main()
