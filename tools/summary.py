#!/usr/bin/env python3
"""Merges the target tables of the benchmarks' --table-out reports into one
short table for the terminal (what `tools/dev.sh main` prints).

    tools/summary.py [--out SUMMARY.md] REPORT.md...

Each REPORT.md is a bench's --table-out file (channel_bench, kv_bench,
sync_bench). In each, the first markdown table after a "### Targets" heading
whose header names the columns `target`, `ratio`, `goal` and `result` is
read; every other column is left to the full report. A row whose result is
"not measured yet" (the bench has no rows for it) or has no value (n/a: its
rows did not run, e.g. a baseline library missing at build time) is not
printed as a row but named in a note below the table. A row with an error is
printed as ERROR with the message.

python3 standard library only.
"""
import argparse
import os
import re
import subprocess
import sys

COLUMNS = ("target", "ratio", "goal", "result")


def cpu_model():
    """lscpu's "Model name" (falls back to /proc/cpuinfo), and the CPU count."""
    name = None
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if not name:
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        name = line.split(":", 1)[1].strip()
                        break
        except OSError:
            pass
    return name or "unknown", len(os.sched_getaffinity(0))


def cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def read_targets(path):
    """(bench name, [row dict]) from one --table-out report."""
    with open(path) as f:
        lines = f.read().splitlines()
    bench = os.path.splitext(os.path.basename(path))[0]
    for line in lines:
        m = re.match(r"^## sleet (\S+)", line)
        if m:
            bench = m.group(1).rstrip(":")
            break
    rows, in_targets, header = [], False, None
    for line in lines:
        if line.startswith("#"):
            if header is not None:
                break  # the targets table ended at the next heading
            in_targets = line.strip() == "### Targets"
            continue
        if not in_targets:
            continue
        if not line.startswith("|"):
            if header is not None and rows:
                break
            continue
        c = cells(line)
        if header is None:
            if all(k in c for k in COLUMNS):
                header = c
            continue
        if all(set(x) <= set("-: ") for x in c):
            continue  # the |---| line
        rows.append(dict(zip(header, c)))
    return bench, rows


def short_ratio(text):
    """'0.78x (3 pairs, 0.12x-1.18x)' -> '0.78x [0.12-1.18]'."""
    text = text.replace("*", "").strip()
    head, _, rest = text.partition("(")
    head = head.strip()
    nums = re.findall(r"\d+(?:\.\d+)?(?:e[-+]?\d+)?", rest)
    if rest and len(nums) >= 2:
        return f"{head} [{nums[-2]}-{nums[-1]}]"
    return head


def verdict(row):
    """PASS / MISS / ERROR: message / None (no value)."""
    result = row.get("result", "").replace("*", "").strip()
    if result.startswith("PASS"):
        return "PASS"
    if result.startswith("MISS"):
        return "MISS"
    for k, v in row.items():
        if v.startswith("error:"):
            return "ERROR " + v[len("error:"):].strip()
    if result.startswith("not measured"):
        return "not measured"
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reports", nargs="+")
    ap.add_argument("--out", help="also write the merged table as markdown to this file")
    args = ap.parse_args()

    table, not_measured, no_value = [], [], []
    for path in args.reports:
        try:
            bench, rows = read_targets(path)
        except OSError as e:
            print(f"summary.py: cannot read {path}: {e.strerror}", file=sys.stderr)
            return 1
        if not rows:
            print(f"summary.py: no '### Targets' table in {path}", file=sys.stderr)
            return 1
        short = bench.replace("_bench", "")
        for r in rows:
            v = verdict(r)
            if v == "not measured":
                not_measured.append(f"{short}: {r['target']} ({r['goal']})")
            elif v is None:
                no_value.append(f"{short}: {r['target']}")
            else:
                table.append((short, r["target"], short_ratio(r["ratio"]), r["goal"], v))

    cpu, ncpu = cpu_model()
    out = [f"CPU: {cpu}, {ncpu} CPUs usable. Quick runs: few rounds, short; ratio = median [range over rounds]."]
    head = ("bench", "target", "ratio", "goal", "result")
    widths = [max(len(head[i]), *(len(t[i]) for t in table)) if table else len(head[i]) for i in range(5)]
    fmt_row = lambda t: "  ".join(str(x).ljust(w) for x, w in zip(t, widths)).rstrip()
    out.append(fmt_row(head))
    out += [fmt_row(t) for t in table]
    passed = sum(1 for t in table if t[4] == "PASS")
    missed = sum(1 for t in table if t[4] == "MISS")
    errors = sum(1 for t in table if t[4].startswith("ERROR"))
    out.append(f"{passed} pass, {missed} miss" + (f", {errors} error" if errors else "") + f" of {len(table)} targets")
    if not_measured:
        out.append("not measured yet (no bench rows): " + "; ".join(not_measured))
    if no_value:
        out.append("omitted, no value in this run (see the full reports; a full run: the bench without --quick): "
                   + "; ".join(no_value))
    print("\n".join(out))

    if args.out:
        md = [f"# sleet quick summary", "", out[0], "", "| " + " | ".join(head) + " |", "|---" * 5 + "|"]
        md += ["| " + " | ".join(t) + " |" for t in table]
        md += [""] + out[len(table) + 2:]
        with open(args.out, "w") as f:
            f.write("\n".join(md) + "\n")
    return 2 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
