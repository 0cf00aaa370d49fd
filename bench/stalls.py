"""Event-loop stalls of a server process, from a py-spy recording: what held the loop, and for how long.

`record(pids, seconds, directory)` runs `py-spy record --idle --format speedscope` on each process (a uvicorn
worker) while the caller does its work; `stalls(path, threshold)` reads one recording back as a time line of
samples, finds the runs of consecutive samples in which the event loop's thread was busy (not waiting in the
loop's selector), and for each run longer than the threshold gives its duration and the code frames that
appeared in most of its samples: what held the loop.

    .venv/bin/python bench/stalls.py /tmp/prof/worker-123.json --threshold-ms 20
"""
from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# Frames shown as what held the loop: the project's code and the libraries it drives.
SHOWN = ("/app/", "/graphql_schema/", "/strawberry/", "/graphql/", "/asyncpg/", "/tortoise/", "/starlette/")


@dataclass
class Stall:
    seconds: float
    frames: list[tuple[str, float]]  # (frame, share of the stall's samples it appears in)


def record(pids: list[int], directory: Path, rate: int = 250) -> list[subprocess.Popen[bytes]]:
    if shutil.which("py-spy") is None and not (Path(sys.executable).parent / "py-spy").exists():
        raise SystemExit("--profile-dir needs py-spy: .venv/bin/pip install py-spy")
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    directory.mkdir(parents=True, exist_ok=True)
    return [subprocess.Popen([spy, "record", "--idle", "--nonblocking", "-r", str(rate), "--format", "speedscope",
                              "-o", str(directory / f"worker-{pid}.json"), "-p", str(pid)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for pid in pids]


def stop(recorders: list[subprocess.Popen[bytes]]) -> None:
    for recorder in recorders:
        recorder.send_signal(2)  # SIGINT: py-spy writes its file and exits
    for recorder in recorders:
        recorder.wait(timeout=60)


def stalls(path: Path, threshold: float) -> list[Stall]:
    data = json.loads(path.read_text())
    frames = data["shared"]["frames"]
    names = [f"{Path(f.get('file', '?')).name}:{f['name']}" for f in frames]
    shown = [any(part in f.get("file", "") for part in SHOWN) for f in frames]
    found: list[Stall] = []
    for profile in data["profiles"]:
        if "MainThread" not in profile.get("name", "") and len(data["profiles"]) > 1:
            continue
        # The loop waiting for work: its selector is C code (uvloop's), so a waiting sample's innermost Python frame
        # is the one that started the loop, and it is the most common innermost frame of a server's samples.
        leaves = collections.Counter(sample[-1] for sample in profile["samples"] if sample)
        idle = leaves.most_common(1)[0][0] if leaves else -1
        run: list[list[int]] = []
        run_seconds = 0.0
        for sample, weight in zip(profile["samples"], profile["weights"], strict=True):
            if sample and sample[-1] != idle:
                run.append(sample)
                run_seconds += weight
                continue
            if run and run_seconds >= threshold:
                found.append(_describe(run, run_seconds, names, shown))
            run, run_seconds = [], 0.0
        if run and run_seconds >= threshold:
            found.append(_describe(run, run_seconds, names, shown))
    return found


def _describe(run: list[list[int]], seconds: float, names: list[str], shown: list[bool]) -> Stall:
    """The stall's frames of interest that appear in at least a fifth of its samples, the deepest first (the code
    closest to the work)."""
    counts: collections.Counter[int] = collections.Counter()
    depth: dict[int, int] = {}
    for sample in run:
        counts.update(set(sample))
        for level, frame in enumerate(sample):
            depth[frame] = max(depth.get(frame, 0), level)
    common = [frame for frame, n in counts.items() if shown[frame] and n >= len(run) / 5]
    common.sort(key=lambda frame: -depth[frame])
    return Stall(seconds, [(names[frame], counts[frame] / len(run)) for frame in common])


def report(directory: Path, threshold: float) -> list[str]:
    lines = []
    for path in sorted(directory.glob("worker-*.json")):
        found = sorted(stalls(path, threshold), key=lambda s: -s.seconds)
        lines.append(f"  {path.name}: {len(found)} stalls of {threshold * 1000:.0f} ms or more"
                     + (f", longest {found[0].seconds * 1000:.0f} ms" if found else ""))
        for stall in found[:5]:
            frames = "; ".join(f"{name} {share:.0%}" for name, share in stall.frames[:8])
            lines.append(f"    {stall.seconds * 1000:5.0f} ms: {frames}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path, help="a speedscope file of py-spy record --idle, or a folder of them")
    parser.add_argument("--threshold-ms", type=float, default=20.0)
    args = parser.parse_args()
    directory = args.path if args.path.is_dir() else args.path.parent
    print("\n".join(report(directory, args.threshold_ms / 1000)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
