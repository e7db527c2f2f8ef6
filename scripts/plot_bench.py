#!/usr/bin/env python3
"""Plots what `cargo xtask bench` measured, from the CSV files it writes beside its results.

    plot_bench.py PREFIX [--only sched]

reads PREFIX-bringup.csv, PREFIX-linux.csv, PREFIX-throughput.csv and PREFIX-sched.csv and writes
PREFIX-bringup.png (bring-up latency vs CPU count, one panel per accelerator, each strategy and
delay policy with the wake-up floor, the Linux guest's best configuration and the computed waits
of a 10 ms / 200 µs sequential bring-up) and PREFIX-throughput.png (allocation and lock
throughput vs working CPUs) and PREFIX-sched.png (the scheduler: speedup against 1 vCPU per
workload and accelerator, and the host run's times against the sequential code, multicore::sched
beside rayon). With `--only sched`, the scheduler plot alone.
"""

import csv
import sys

import matplotlib

matplotlib.use("Agg")  # no display: write files only
import matplotlib.pyplot as plt  # noqa: E402


def read(path):
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except FileNotFoundError:
        return []


def plot_bringup(prefix):
    rows = read(prefix + "-bringup.csv")
    linux = read(prefix + "-linux.csv")
    accels = sorted({r["accel"] for r in rows})
    fig, axes = plt.subplots(1, len(accels), figsize=(6.5 * len(accels), 5), squeeze=False)
    for ax, accel in zip(axes[0], accels):
        mine = [r for r in rows if r["accel"] == accel]
        combos = sorted({(r["strategy"], r["delays"]) for r in mine})
        for strategy, delays in combos:
            pts = sorted(
                (int(r["cpus"]), float(r["median_us"]) / 1e3)
                for r in mine
                if (r["strategy"], r["delays"]) == (strategy, delays)
            )
            ax.plot(*zip(*pts), marker="o", label=f"{strategy}, {delays} delays")
        # The floor is measured in every boot; the default strategy's boots give one curve.
        floor = sorted(
            (int(r["cpus"]), float(r["floor_us"]) / 1e3)
            for r in mine
            if (r["strategy"], r["delays"]) == ("parallel", "fast")
        )
        if floor:
            ax.plot(*zip(*floor), "k--", label="wake-up floor (measured)")
        ns = sorted({int(r["cpus"]) for r in mine})
        ax.plot(ns, [(n - 1) * 10.4 for n in ns], ":", color="grey",
                label="10 ms + 2×200 µs sequential waits (computed)")
        lx = sorted(
            (int(r["cpus"]), float(r["median_ms"]))
            for r in linux
            if r["accel"] == accel
        )
        if lx:
            ax.plot(*zip(*lx), marker="s", color="tab:red", label="Linux guest, best config")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("CPUs (-smp)")
        ax.set_ylabel("first INIT to last AP check-in (ms, median)")
        ax.set_title(f"Bring-up under {accel}, -M microvm")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(prefix + "-bringup.png", dpi=110)


def plot_throughput(prefix):
    rows = read(prefix + "-throughput.csv")
    if not rows:
        return
    accels = sorted({r["accel"] for r in rows})
    fig, axes = plt.subplots(2, len(accels), figsize=(6.5 * len(accels), 8), squeeze=False)
    for col, accel in enumerate(accels):
        mine = [r for r in rows if r["accel"] == accel]
        # The largest VM of each accelerator has every working-CPU count (1, 2, all).
        vm = max(int(r["vm_cpus"]) for r in mine)
        mine = [r for r in mine if int(r["vm_cpus"]) == vm]
        for row, kind in enumerate(["alloc", "lock"]):
            ax = axes[row][col]
            for name in sorted({r["name"] for r in mine if r["name"].startswith(kind)}):
                pts = sorted(
                    (int(r["working"]), float(r["mops"])) for r in mine if r["name"] == name
                )
                ax.plot(*zip(*pts), marker="o", label=name)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("CPUs working at once")
            ax.set_ylabel("million operations per second (all CPUs)")
            ax.set_title(f"{'Allocation' if kind == 'alloc' else 'Locks'}, {accel}, -smp {vm}")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(prefix + "-throughput.png", dpi=110)


def plot_sched(prefix):
    rows = read(prefix + "-sched.csv")
    if not rows:
        return
    # The reference boot `1 maxcpus=2` is in the table, not on the curves.
    guest = [r for r in rows if r["where"] == "guest" and r["cpus"].isdigit()]
    host = [r for r in rows if r["where"] == "host"]
    accels = sorted({r["accel"] for r in guest})
    panels = len(accels) + (1 if host else 0)
    fig, axes = plt.subplots(1, max(panels, 1), figsize=(6 * max(panels, 1), 5), squeeze=False)
    for ax, accel in zip(axes[0], accels):
        mine = [r for r in guest if r["accel"] == accel]
        ns = sorted({int(r["cpus"]) for r in mine})
        for name in sorted({r["workload"] for r in mine}):
            # A speedup of 0: no 1-vCPU boot to compare with (the smoke run's KVM point).
            pts = sorted(
                (int(r["cpus"]), float(r["speedup"]))
                for r in mine
                if r["workload"] == name and float(r["speedup"]) > 0
            )
            if pts:
                ax.plot(*zip(*pts), marker="o", label=name)
        ax.plot(ns, [min(n, 2) for n in ns], "k--", label="ideal on 2 host cores")
        ax.axhline(1.9, color="grey", linestyle=":", label="target 1 → 2 vCPUs (1.9×)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(ns)
        ax.set_xticklabels([str(n) for n in ns])
        ax.set_xlabel("vCPUs (-smp), 2 host cores")
        ax.set_ylabel("speedup against 1 vCPU (median run)")
        title = f"Scheduler in the guest, {accel}"
        if accel == "KVM":
            title += " (ring 0 emulated, tiny sizes)"
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    if host:
        ax = axes[0][len(accels)]
        names = [n for n in dict.fromkeys(r["workload"] for r in host)]
        contenders = [("multicore", "1"), ("rayon", "1"), ("multicore", "2"), ("rayon", "2")]
        width = 0.8 / len(contenders)
        for i, (imp, threads) in enumerate(contenders):
            ys = []
            for name in names:
                # Host rows carry the implementation in `accel` and the threads in `cpus`.
                key = (imp, threads, name)
                r = next((r for r in host if (r["accel"], r["cpus"], r["workload"]) == key), None)
                ys.append(float(r["speedup"]) if r else 0.0)
            ax.bar([x + i * width for x in range(len(names))], ys, width, label=f"{imp}, {threads} thread(s)")
        ax.set_xticks([x + 0.4 - width / 2 for x in range(len(names))])
        ax.set_xticklabels(names)
        ax.set_ylabel("speedup against the sequential code (median run)")
        ax.set_title("Host: multicore::sched on threads vs rayon")
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(prefix + "-sched.png", dpi=110)


def main():
    args = sys.argv[1:]
    if len(args) == 3 and args[1:] == ["--only", "sched"]:
        plot_sched(args[0])
        return
    if len(args) != 1:
        sys.exit("usage: plot_bench.py PREFIX [--only sched]")
    plot_bringup(args[0])
    plot_throughput(args[0])
    plot_sched(args[0])


if __name__ == "__main__":
    main()
