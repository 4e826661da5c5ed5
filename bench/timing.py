"""Latency sampling shared by the benchmarks: interleaved, warmed up, percentiles."""

import math
import time


def percentile(samples, fraction):
    """Nearest-rank percentile of ``samples`` (seconds), e.g. fraction=0.95."""
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def compare_interleaved(inputs, contenders, *, rounds=3, warmup_rounds=1):
    """Time every contender on every input, alternating who goes first.

    ``contenders`` maps a name to ``fn(input)``. Each input is run by every
    contender once per round, in an order that rotates with the input, so
    caches and machine noise favour nobody. Returns {name: [seconds, ...]}.
    """
    names = list(contenders)
    for _ in range(warmup_rounds):
        for item in inputs:
            for name in names:
                contenders[name](item)
    samples = {name: [] for name in names}
    for round_number in range(rounds):
        for index, item in enumerate(inputs):
            shift = (index + round_number) % len(names)
            for name in names[shift:] + names[:shift]:
                started = time.perf_counter()
                contenders[name](item)
                samples[name].append(time.perf_counter() - started)
    return samples


def ms(seconds):
    return round(seconds * 1000, 2)
