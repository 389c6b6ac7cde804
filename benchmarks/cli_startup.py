"""How long ``vae-keras --help`` takes, against an interpreter that does nothing.

The command line builds its parser without loading TensorFlow (seconds on a
CPU), so ``--help`` and a usage error should cost about what Python's own
start-up does. This script runs ``python -m vae_keras --help`` (and ``train
--help``) and ``python -c pass`` in fresh processes, interleaved (A B A B ...)
so that a slow moment of a shared machine hits both sides of a pair, and prints
the median time of each and the median of the paired ratios.

    python benchmarks/cli_startup.py              # 20 rounds
    python benchmarks/cli_startup.py --rounds 50
"""

import argparse
import statistics
import subprocess
import sys
import time

BASELINE = ("python -c pass", ["-c", "pass"])
COMMANDS = [
    ("vae-keras --help", ["-m", "vae_keras", "--help"]),
    ("vae-keras train --help", ["-m", "vae_keras", "train", "--help"]),
]


def seconds(arguments):
    """Wall-clock seconds of one fresh ``python <arguments>``, which must exit 0."""
    start = time.perf_counter()
    subprocess.run([sys.executable, *arguments], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="pairs per command (default: 20)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")

    for _, arguments in [BASELINE] + COMMANDS:  # warm the file cache: not a measurement
        seconds(arguments)
    times = {name: [] for name, _ in [BASELINE] + COMMANDS}
    ratios = {name: [] for name, _ in COMMANDS}
    for _ in range(args.rounds):
        for name, arguments in COMMANDS:
            command, baseline = seconds(arguments), seconds(BASELINE[1])
            times[name].append(command)
            times[BASELINE[0]].append(baseline)
            ratios[name].append(command / baseline)

    print(f"{args.rounds} rounds, interleaved; {sys.executable}")
    print(f"{'command':<26}{'median s':>10}{'min s':>9}{'median ratio to python -c pass':>33}")
    for name, values in times.items():
        ratio = f"{statistics.median(ratios[name]):.2f}x" if name in ratios else "1 (baseline)"
        print(f"{name:<26}{statistics.median(values):>10.3f}{min(values):>9.3f}{ratio:>33}")


if __name__ == "__main__":
    main()
