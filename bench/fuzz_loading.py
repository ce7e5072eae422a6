"""Fuzz load_model at scale and report the figures docs/saving.md quotes.

    python bench/fuzz_loading.py --files 2000

Mutates a small saved model (bytes flipped, truncated, spliced, inserted; config.json
values replaced or deleted), adds the crafted hostile files of tests/test_saving.py
(huge input shapes, 200,000 entries, deep and wide config.json, a shifted .npy header,
a second zip appended, ...) and loads them all in child processes whose address space
is capped (RLIMIT_AS, 512 MiB above the warmed-up size). Prints: files tried, refused,
loaded, any other outcome (a crash, out of memory, a refusal that moved the random
stream), the worst load time and the worst traced peak allocation of one load, and
the children's peak RSS. Linux only (RLIMIT_AS, /proc).
"""
import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy

from _repo import use_checkout_if_not_installed

ROOT = Path(__file__).resolve().parent.parent
use_checkout_if_not_installed()
sys.path.insert(0, str(ROOT / "tests"))

import test_saving as harness  # the test suite's load harness and files

import fastnn


def mutate_bytes(rng, blob):
    blob = bytearray(blob)
    kind = rng.choice(["flip", "truncate", "splice", "insert"])
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            blob[rng.randrange(len(blob))] = rng.randrange(256)
    elif kind == "truncate":
        blob = blob[:rng.randrange(len(blob))]
    elif kind == "splice":
        a = rng.randrange(len(blob) + 1)
        b = rng.randint(a, len(blob))
        blob[a:b] = bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
    else:
        pos = rng.randrange(len(blob) + 1)
        blob[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    return bytes(blob)


JUNK = [None, True, -1, 0, 1, 2 ** 31, 2 ** 40, 1e308, float("nan"), "", "Dense", "relu",
        "float64", "Adam", "m", [], {}, [2 ** 28], {"class_name": "Dense"}, [[[[[]]]]]]


def mutate_config(rng, source, out):
    config = harness._config(source)
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in harness._paths(config) if p]
        where = rng.choice(paths)
        node = config
        for key in where[:-1]:
            node = node[key]
        if rng.random() < 0.3 and isinstance(node, dict):
            del node[where[-1]]
        else:
            node[where[-1]] = rng.choice(JUNK)
    return harness._rezip(source, out, config)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000, help="mutated files (default 2000)")
    parser.add_argument("--batch", type=int, default=250, help="files per child process")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = harness.make_model("adam")
        x, y = harness.make_data(32)
        model.fit(x, y, epochs=1, batch_size=16, verbose=0)
        source = tmp / "source.fastnn"
        model.save(source)
        blob = source.read_bytes()
        files = harness.hostile_files(tmp / "hostile", source)
        for i in range(args.files):
            path = tmp / f"f{i}.fastnn"
            if i % 2:
                mutate_config(rng, source, path)
            else:
                path.write_bytes(mutate_bytes(rng, blob))
            files.append(path)
        start = time.perf_counter()
        results, rss = [], 0
        for first in range(0, len(files), args.batch):
            batch, batch_rss = harness.run_loads(files[first:first + args.batch], source,
                                                 timeout=3600)
            results += batch
            rss = max(rss, batch_rss)
        wall = time.perf_counter() - start
    outcomes = {}
    for _, outcome, _, _ in results:
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    slowest = max(results, key=lambda r: r[2])
    largest = max(results, key=lambda r: r[3])
    report = {"fastnn": fastnn.__version__, "files": len(results), "outcomes": outcomes,
              "worst_load_s": round(slowest[2], 4), "worst_load_file": Path(slowest[0]).name,
              "worst_peak_mib": round(largest[3] / 2 ** 20, 2),
              "worst_peak_file": Path(largest[0]).name,
              "median_load_ms": round(float(numpy.median([r[2] for r in results])) * 1e3, 3),
              "child_max_rss_mib": round(rss / 2 ** 20, 1), "wall_s": round(wall, 1)}
    print(json.dumps(report, indent=1))
    return 0 if set(outcomes) <= {"loaded", "refused"} else 1


if __name__ == "__main__":
    sys.exit(main())
