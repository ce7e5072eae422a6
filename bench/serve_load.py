"""Load examples/serve.py with concurrent large bodies; report latency and server memory.

    python bench/serve_load.py                       # 16 clients x one 16 MB body each
    python bench/serve_load.py --server old_serve.py # the same load against another version

Starts the service on 127.0.0.1 (a free port, its own process), then 16 client threads
post one ~16 MB JSON body each at the same moment (1,000 rows x 784 features), while a
17th thread polls GET /health every 50 ms. Reports the /predict latencies (p50, p99,
max), the /health latencies during the load, and the server's resident memory before
the load and at its peak (VmHWM), and each decode worker's peak (their pages shared
with the server at the fork count in both). Loopback only. The figures are in docs/deploying.md.
"""
import argparse
import json
import os
import selectors
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy

from _repo import child_env, use_checkout_if_not_installed

ROOT = Path(__file__).resolve().parent.parent
use_checkout_if_not_installed()

import httpx

import fastnn
from fastnn import layers


def body_of(rows, features, seed=0):
    x = numpy.random.default_rng(seed).normal(size=(rows, features)).astype("float32")
    return json.dumps({"instances": x.tolist()}).encode()


def memory_kib(pid, field):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def children(pid):
    """Process ids of ``pid``'s children (the decode workers)."""
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            found += [int(c) for c in f.read().split()]
    return found


def start_server(script, model_path, extra):
    proc = subprocess.Popen(
        [sys.executable, str(script), str(model_path), "--port", "0", "--max-batch", "1024",
         "--no-access-log", *extra], stdout=subprocess.PIPE, text=True,
        env=child_env())
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if selector.select(timeout=0.5):
            line = proc.stdout.readline()
            if line.startswith("serving "):
                return proc, line.split(" on ", 1)[1].strip()
            if not line:
                break
    proc.kill()
    raise RuntimeError("the server did not start")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=str(ROOT / "examples" / "serve.py"))
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--features", type=int, default=784)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("server_args", nargs="*", help="extra arguments for the server")
    args = parser.parse_args(argv)

    fastnn.utils.set_random_seed(0)
    model = fastnn.Sequential([layers.Dense(128, activation="relu",
                                            input_shape=(args.features,)),
                               layers.Dense(10, activation="softmax")])
    model.build()
    body = body_of(args.rows, args.features)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.fastnn"
        model.save(path)
        proc, url = start_server(args.server, path, args.server_args)
        try:
            rss_before = memory_kib(proc.pid, "VmRSS")
            latencies, health, statuses = [], [], []
            for _ in range(args.rounds):
                go = threading.Barrier(args.clients + 1)
                done = threading.Event()

                def client(go=go):
                    with httpx.Client(timeout=600) as session:
                        go.wait()
                        start = time.perf_counter()
                        reply = session.post(url + "/predict", content=body,
                                             headers={"content-type": "application/json"})
                        latencies.append(time.perf_counter() - start)
                        statuses.append(reply.status_code)

                def prober(done=done):
                    with httpx.Client(timeout=600) as session:
                        while not done.is_set():
                            start = time.perf_counter()
                            session.get(url + "/health")
                            health.append(time.perf_counter() - start)
                            time.sleep(0.05)

                threads = [threading.Thread(target=client) for _ in range(args.clients)]
                for t in threads:
                    t.start()
                probe = threading.Thread(target=prober)
                go.wait()
                probe.start()
                for t in threads:
                    t.join()
                done.set()
                probe.join()
            rss_peak = memory_kib(proc.pid, "VmHWM")
            workers = [memory_kib(child, "VmHWM") for child in children(proc.pid)]
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    ms = numpy.array(latencies) * 1e3
    hs = numpy.array(health) * 1e3
    report = {"server": str(args.server), "clients": args.clients,
              "body_mb": round(len(body) / 1e6, 2), "requests": len(latencies),
              "statuses": sorted(set(statuses)),
              "p50_ms": round(float(numpy.percentile(ms, 50))),
              "p99_ms": round(float(numpy.percentile(ms, 99))), "max_ms": round(float(ms.max())),
              "health_p50_ms": round(float(numpy.percentile(hs, 50)), 1),
              "health_max_ms": round(float(hs.max()), 1),
              "server_rss_before_mib": round(rss_before / 1024),
              "server_rss_peak_mib": round(rss_peak / 1024),
              "decode_workers_rss_peak_mib": [round(kib / 1024) for kib in workers]}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
