"""What an idle `relreq serve` costs the machine: CPU, memory and processes, beside the machine doing nothing.

    .venv/bin/python bench/idle_bench.py [--seconds 60] [--warmup 90] [--baseline 30] [-- SERVE ARGS...]

1. Baseline: the machine's busy share (/proc/stat) over `--baseline` seconds with nothing of ours running.
2. Starts `relreq serve` (plus SERVE ARGS, e.g. `--no-workers`) on a temporary RR_DATA_DIR with free
   ports, waits until /healthz answers, then `--warmup` seconds (first-start work: migrations, the Prefect
   server's own, deployments, the first minute's sweeps).
3. Measures over `--seconds`, sampling every `--interval` seconds, the whole tree: `relreq serve` and
   every descendant, plus the embedded Postgres (its postmaster is started by `pg_ctl` and is nobody's
   child: found through `postgres/postmaster.pid` in the data dir) and its backends.
   - CPU: utime + stime + cutime + cstime summed over the tree, first sample to last (processes that
     start and end in between — a flow run's engine process — are counted through their parent's
     cutime/cstime), as a share of the machine (all cores) and of one core;
   - memory: PSS (/proc/PID/smaps_rollup: shared pages split between the processes sharing them, so the
     sum is what the tree really holds) and RSS (pages counted once per process), mean over the samples;
   - processes: mean and max count.
Prints a table and, per command line, the mean PSS and CPU share of each kind of process.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devservers import free_port  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1


def machine_busy(seconds: float) -> float:
    """The machine's busy share over `seconds` (every core; iowait counted as idle)."""

    def read() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields[:8]), idle

    total0, idle0 = read()
    time.sleep(seconds)
    total1, idle1 = read()
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


def _stat(pid: int) -> tuple[int, int] | None:
    """(ppid, utime+stime+cutime+cstime in ticks), or None for a process that is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) ": state is fields[0]
    return int(fields[1]), sum(int(x) for x in fields[11:15])


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat:
                children[stat[0]].append(int(entry))
    return children


def tree(roots: list[int]) -> list[int]:
    children, seen, todo = _children(), [], list(roots)
    while todo:
        pid = todo.pop()
        if pid not in seen and Path(f"/proc/{pid}").exists():
            seen.append(pid)
            todo.extend(children.get(pid, []))
    return seen


def postmaster(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postgres" / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


def _session(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


def forked_kind(pid: int) -> str:
    if _session(pid) != pid:
        return "API process"
    try:
        log = Path(os.readlink(f"/proc/{pid}/fd/2")).name
    except OSError:
        return "?"
    return {"prefect-server.log": "Prefect server", "flows.log": "flow worker"}.get(log, log)


def memory_kib(pid: int) -> tuple[int, int]:
    """(PSS, RSS) in KiB; (0, 0) for a process that is gone or not readable."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0, 0
    values = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("Pss:", "Rss:"):
            values[parts[0]] = int(parts[1])
    return values.get("Pss:", 0), values.get("Rss:", 0)


def kind(pid: int) -> str:
    """A short name for a process: its command line, shortened to what tells processes apart."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    words = [a.decode(errors="replace") for a in argv if a]
    if not words:
        return "?"
    if words[0].startswith("postgres"):
        return " ".join(words)[:60]  # "postgres: checkpointer", "postgres: postgres rr idle", …
    if "-m" in words:
        return "python -m " + " ".join(words[words.index("-m") + 1 :])[:50]
    if "-c" in words:  # multiprocessing's spawned children
        return "python -c " + words[words.index("-c") + 1][:40]
    return " ".join(Path(words[0]).name if i == 0 else w for i, w in enumerate(words[:4]))[:60]


def measure(roots, *, seconds: float, interval: float) -> dict:
    def sample() -> dict[int, tuple[int, str, int, int]]:
        top = roots()
        out = {}
        for pid in tree(top):
            stat = _stat(pid)
            if stat:
                name = kind(pid)
                if pid not in top and name == kind(top[0]):
                    # `serve` forks its API processes, the Prefect server and its flow worker: same command line,
                    # told apart here (the last two start a session of their own and log to a file of their own)
                    name = f"{forked_kind(pid)} (forked by serve)"
                out[pid] = (stat[1], name, *memory_kib(pid))
        return out

    samples, started = [sample()], time.monotonic()
    while time.monotonic() - started < seconds:
        time.sleep(interval)
        samples.append(sample())
    elapsed = time.monotonic() - started
    first, last = samples[0], samples[-1]
    ticks = sum(s[0] for s in last.values()) - sum(s[0] for s in first.values())
    by_kind: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])  # PSS sum over samples, count, ticks
    for snap in samples:
        for _pid, (_, name, pss, _) in snap.items():
            by_kind[name][0] += pss
            by_kind[name][1] += 1
    for pid, (t, name, _, _) in last.items():
        by_kind[name][2] += t - (first[pid][0] if pid in first else 0)
    n = len(samples)
    return {
        "elapsed": elapsed,
        "cpu_machine": ticks / TICKS / elapsed / CORES,
        "cpu_core": ticks / TICKS / elapsed,
        "pss_mib": sum(sum(s[2] for s in snap.values()) for snap in samples) / n / 1024,
        "rss_mib": sum(sum(s[3] for s in snap.values()) for snap in samples) / n / 1024,
        "procs_mean": sum(len(snap) for snap in samples) / n,
        "procs_max": max(len(snap) for snap in samples),
        "kinds": {name: (v[0] / n / 1024, v[1] / n, v[2] / TICKS / elapsed / CORES) for name, v in by_kind.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=90)
    parser.add_argument("--baseline", type=float, default=30)
    parser.add_argument("--interval", type=float, default=5)
    parser.add_argument("serve_args", nargs="*", help="extra arguments for `relreq serve` (after --)")
    args = parser.parse_args()

    baseline = machine_busy(args.baseline) if args.baseline > 0 else None
    # not under /root or a 0700 tmp dir: the embedded server runs as its own system user
    data_dir = Path(tempfile.mkdtemp(prefix="rr-idle-bench-"))
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("RR_", "PREFECT_"))},
        "RR_DATA_DIR": str(data_dir),
        "RR_PREFECT_PORT": str(free_port()),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    relreq = str(Path(sys.executable).parent / "relreq")
    serve = subprocess.Popen(
        [relreq, "serve", "--port", str(port), *args.serve_args],
        env=env,
        stdout=(data_dir / "serve.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            if serve.poll() is not None:
                raise SystemExit(f"relreq serve exited with {serve.returncode}; see {data_dir / 'serve.log'}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"relreq serve not healthy after 180 s; see {data_dir / 'serve.log'}")
            time.sleep(0.5)
        print(f"healthy; warming up for {args.warmup:.0f} s", file=sys.stderr)
        time.sleep(args.warmup)

        def roots() -> list[int]:
            pm = postmaster(data_dir)
            return [serve.pid] + ([pm] if pm else [])

        result = measure(roots, seconds=args.seconds, interval=args.interval)
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        try:
            serve.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait(10)
        time.sleep(1)
        shutil.rmtree(data_dir, ignore_errors=True)

    print(
        f"\nidle `relreq serve {' '.join(args.serve_args)}`".rstrip() + f" over {result['elapsed']:.0f} s, "
        f"{CORES} cores, after a {args.warmup:.0f} s warm-up\n"
    )
    print("| what | value |\n|---|---|")
    if baseline is not None:
        print(f"| machine busy, nothing of ours running ({args.baseline:.0f} s) | {baseline:.1%} |")
    print(f"| CPU of the tree, share of the machine | {result['cpu_machine']:.2%} |")
    print(f"| CPU of the tree, share of one core | {result['cpu_core']:.2%} |")
    print(f"| memory, PSS sum | {result['pss_mib']:.0f} MiB |")
    print(f"| memory, RSS sum | {result['rss_mib']:.0f} MiB |")
    print(f"| processes (mean / max) | {result['procs_mean']:.1f} / {result['procs_max']} |")
    print("\n| process | PSS MiB | count | CPU (machine) |\n|---|---|---|---|")
    for name, (pss, count, cpu) in sorted(result["kinds"].items(), key=lambda kv: -kv[1][0]):
        print(f"| {name} | {pss:.0f} | {count:.1f} | {cpu:.2%} |")


if __name__ == "__main__":
    main()
