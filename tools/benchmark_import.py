"""Measure what ``import mmdeploy`` (and loading the plugins) costs, in fresh interpreters.

    .venv/bin/python tools/benchmark_import.py [--runs 7]

Prints the median and the spread of the wall time over the runs. The tests check what is imported
(tests/plugins/test_import_cost.py); the time depends on the machine and its load, so it is measured
here instead.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

SNIPPETS = {
    'import mmdeploy': 'import mmdeploy',
    'import mmdeploy + load the plugins': 'import mmdeploy\nfrom mmdeploy.plugins import get_registry\n'
                                          'get_registry()',
}
TIMED = '''
import json, time
start = time.perf_counter()
{code}
print(json.dumps(time.perf_counter() - start))
'''


def measure(code: str, runs: int) -> list:
    """Seconds ``code`` takes in each of ``runs`` fresh interpreters."""
    seconds = []
    for _ in range(runs):
        proc = subprocess.run([sys.executable, '-c', TIMED.format(code=code)], capture_output=True, text=True,
                              check=True)
        seconds.append(json.loads(proc.stdout.splitlines()[-1]))
    return seconds


def main() -> None:
    """Print one line per measured snippet."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--runs', type=int, default=7, help='fresh interpreters per snippet (default 7)')
    args = parser.parse_args()
    for title, code in SNIPPETS.items():
        seconds = measure(code, args.runs)
        print(f'{title}: median {statistics.median(seconds) * 1000:.1f} ms '
              f'(min {min(seconds) * 1000:.1f}, max {max(seconds) * 1000:.1f}, {args.runs} runs)')


if __name__ == '__main__':
    main()
