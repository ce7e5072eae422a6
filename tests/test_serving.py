"""examples/serve.py under load: no 5xx, answers equal direct predictions, 4xx for bad input,
request parsing off the event loop and a bounded number of body bytes in flight."""
import asyncio
import importlib.util
import json
import selectors
import subprocess
import sys
import threading
import time

import numpy
import pytest

pytest.importorskip("starlette", reason="the serving example needs fastnn-toolkit[serve]")
pytest.importorskip("uvicorn", reason="the serving example needs fastnn-toolkit[serve]")
httpx = pytest.importorskip("httpx",
                            reason="the serving test needs httpx (fastnn-toolkit[serve])")

import fastnn  # noqa: E402
from fastnn import layers  # noqa: E402
from fastnn.models import load_model  # noqa: E402
from fastnn.utils import set_random_seed  # noqa: E402

N_CLIENTS, REQUESTS_PER_CLIENT, N_FEATURES = 8, 250, 16


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A small trained classifier saved to a file."""
    set_random_seed(0)
    model = fastnn.Sequential([layers.Dense(64, activation="relu", input_shape=(N_FEATURES,)),
                               layers.BatchNormalization(), layers.Dropout(0.2),
                               layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    x = numpy.random.default_rng(0).normal(size=(256, N_FEATURES)).astype("float32")
    model.fit(x, (x[:, :10].argmax(axis=1)), epochs=2, verbose=0)
    path = tmp_path_factory.mktemp("serve") / "model.fastnn"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def server(model_file, repo_root, subprocess_env):
    """(base URL, model path): the example server in its own process on a free port."""
    path = model_file
    proc = subprocess.Popen(
        [sys.executable, str(repo_root / "examples" / "serve.py"), str(path), "--port", "0",
         "--max-batch", "64", "--no-access-log"],
        stdout=subprocess.PIPE, text=True, env=subprocess_env)
    try:
        url = _wait_for_banner(proc, timeout=60)
        yield url, path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_for_banner(proc, timeout):
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if selector.select(timeout=0.5):
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("serving "):
                return line.split(" on ", 1)[1].strip()
    raise RuntimeError(f"the server did not start (exit code {proc.poll()})")


def test_health(server):
    url, _ = server
    answer = httpx.get(url + "/health", timeout=10)
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "input_shape": [N_FEATURES],
                             "output_shape": [10], "max_batch": 64}


def test_concurrent_load_matches_direct_predict(server):
    url, path = server
    model = load_model(path)
    plan = model.compile_for_inference()
    rng = numpy.random.default_rng(1)
    batches = [[rng.normal(size=(1 + (c + i) % 4, N_FEATURES)).astype("float32")
                for i in range(REQUESTS_PER_CLIENT)] for c in range(N_CLIENTS)]
    answers = [[None] * REQUESTS_PER_CLIENT for _ in range(N_CLIENTS)]
    latencies = [[0.0] * REQUESTS_PER_CLIENT for _ in range(N_CLIENTS)]
    errors = []

    def client(c):
        try:
            with httpx.Client(base_url=url, timeout=30) as session:
                for i, x in enumerate(batches[c]):
                    start = time.perf_counter()
                    reply = session.post("/predict", json={"instances": x.tolist()})
                    latencies[c][i] = time.perf_counter() - start
                    answers[c][i] = (reply.status_code, reply.json())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(N_CLIENTS)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    wall = time.perf_counter() - start
    assert not errors, errors[:3]
    statuses = [status for per_client in answers for status, _ in per_client]
    assert statuses.count(200) == N_CLIENTS * REQUESTS_PER_CLIENT, set(statuses)
    for c in range(N_CLIENTS):
        for x, (_, body) in zip(batches[c], answers[c]):
            got = numpy.array(body["probabilities"], dtype="float32")
            numpy.testing.assert_array_equal(got, plan(x))
            numpy.testing.assert_allclose(got, model.predict(x), rtol=1e-5, atol=1e-6)
    ms = numpy.array(latencies).ravel() * 1000
    total = N_CLIENTS * REQUESTS_PER_CLIENT
    print(f"\n{total} requests from {N_CLIENTS} clients in {wall:.2f} s: "
          f"{total / wall:.0f} req/s, p50 {numpy.percentile(ms, 50):.2f} ms, "
          f"p99 {numpy.percentile(ms, 99):.2f} ms")


BAD_REQUESTS = {
    "malformed JSON": (b'{"instances": [[1, 2', 400, "malformed JSON"),
    "not an object": (b"[1, 2, 3]", 400, "JSON object"),
    "no instances": (b'{"inputs": [[0]]}', 400, "instances"),
    "empty batch": (b'{"instances": []}', 400, "non-empty"),
    "ragged rows": (json.dumps({"instances": [[0.0] * N_FEATURES, [0.0]]}).encode(), 400,
                    "same length"),
    "words": (json.dumps({"instances": [["a"] * N_FEATURES]}).encode(), 400, "numbers"),
    "numeric strings": (json.dumps({"instances": [["1.5"] + [0.0] * (N_FEATURES - 1)]}).encode(),
                        400, "numbers"),
    "booleans": (json.dumps({"instances": [[True] + [0.0] * (N_FEATURES - 1)]}).encode(), 400,
                 "booleans"),
    "null": (json.dumps({"instances": [[None] + [0.0] * (N_FEATURES - 1)]}).encode(), 400,
             "numbers"),
    "a boolean row": (json.dumps({"instances": [[0.0] * N_FEATURES, True]}).encode(), 400,
                      "numbers"),
    "wrong width": (json.dumps({"instances": [[0.0] * 5]}).encode(), 400,
                    f"expects {N_FEATURES}"),
    "one flat sample": (json.dumps({"instances": [0.0] * N_FEATURES}).encode(), 400,
                        "shape"),
    "NaN": (('{"instances": [[NaN' + ", 0" * (N_FEATURES - 1) + "]]}").encode(), 400, "NaN"),
    "overflow to inf": (('{"instances": [[1e999' + ", 0" * (N_FEATURES - 1) + "]]}").encode(),
                        400, "infinite"),
    "too large a batch": (json.dumps({"instances": [[0.0] * N_FEATURES] * 65}).encode(), 413,
                          "limit of 64"),
}


@pytest.mark.parametrize("name", sorted(BAD_REQUESTS))
def test_bad_requests_get_a_clear_4xx_and_the_server_keeps_serving(server, name):
    url, _ = server
    body, status, message = BAD_REQUESTS[name]
    reply = httpx.post(url + "/predict", content=body, timeout=10,
                       headers={"content-type": "application/json"})
    assert reply.status_code == status, reply.text
    assert message in reply.json()["error"]
    good = httpx.post(url + "/predict", json={"instances": [[0.5] * N_FEATURES]}, timeout=10)
    assert good.status_code == 200 and len(good.json()["probabilities"][0]) == 10


def test_body_size_limit(server):
    url, _ = server
    reply = httpx.post(url + "/predict", content=b" " * ((16 << 20) + 1), timeout=30)
    assert reply.status_code == 413 and "larger than" in reply.json()["error"]


# ----------------------------------------------------------------- in-process checks
@pytest.fixture(scope="module")
def serve_module(repo_root):
    spec = importlib.util.spec_from_file_location("fastnn_example_serve",
                                                  repo_root / "examples" / "serve.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _post_all(app, bodies):
    """Send ``bodies`` to /predict at once (in-process ASGI); the replies, in order."""
    async def run():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test",
                                     timeout=60) as client:
            return await asyncio.gather(*[
                client.post("/predict", content=body,
                            headers={"content-type": "application/json"})
                for body in bodies])
    return asyncio.run(run())


def test_bodies_are_parsed_in_the_worker_pool_not_on_the_event_loop(serve_module, model_file,
                                                                      monkeypatch):
    """With decode_workers=0 decoding runs in the thread pool (by default in processes)."""
    app = serve_module.create_app(model_file, decode_workers=0)
    threads = {}
    real_loads, real_instances = json.loads, serve_module._instances

    def loads(*args, **kwargs):
        threads.setdefault("json.loads", set()).add(threading.get_ident())
        return real_loads(*args, **kwargs)

    def instances(*args, **kwargs):
        threads.setdefault("to array", set()).add(threading.get_ident())
        return real_instances(*args, **kwargs)

    monkeypatch.setattr(serve_module.json, "loads", loads)
    monkeypatch.setattr(serve_module, "_instances", instances)
    loop_thread = []

    async def run():
        loop_thread.append(threading.get_ident())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post("/predict", json={"instances": [[0.5] * N_FEATURES]})

    reply = asyncio.run(run())
    assert reply.status_code == 200, reply.text
    assert set(threads) == {"json.loads", "to array"}
    for what, idents in threads.items():
        assert loop_thread[0] not in idents, f"{what} ran on the event loop"


def test_body_bytes_in_flight_are_bounded(serve_module, model_file, monkeypatch):
    body = json.dumps({"instances": [[0.25] * N_FEATURES] * 8}).encode()
    app = serve_module.create_app(model_file, max_inflight_bytes=2 * len(body),
                                  decode_workers=0)
    running, peak = [0], [0]
    lock = threading.Lock()
    real_decode = serve_module._decode

    def decode(*args):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1
        return real_decode(*args)

    monkeypatch.setattr(serve_module, "_decode", decode)
    replies = _post_all(app, [body] * 6)
    assert [r.status_code for r in replies] == [200] * 6
    assert peak[0] == 2, peak[0]


def test_health_answers_while_large_bodies_are_decoded(server):
    """Eight ~16 MB bodies at once: /health must not wait for their JSON decoding.

    Measured on 2 cores: decoding on the event loop held /health for 1.9-2.4 parse
    times; decoded in worker processes, 0.2 parse times (1.25 with the machine
    loaded by other jobs)."""
    url, _ = server
    padding = [0.123456789] * 1_000_000  # valid JSON the service must parse, then ignore
    body = json.dumps({"pad": padding, "instances": [[0.5] * N_FEATURES]}).encode()
    assert len(body) < 16 << 20
    start = time.perf_counter()
    json.loads(body)
    parse_seconds = time.perf_counter() - start
    replies, health = [], []
    done = threading.Event()

    def post():
        replies.append(httpx.post(url + "/predict", content=body, timeout=120,
                                  headers={"content-type": "application/json"}).status_code)

    def poll():
        with httpx.Client(timeout=60) as session:
            while not done.is_set():
                begin = time.perf_counter()
                session.get(url + "/health")
                health.append(time.perf_counter() - begin)
                time.sleep(0.02)

    posters = [threading.Thread(target=post) for _ in range(8)]
    poller = threading.Thread(target=poll)
    poller.start()
    for t in posters:
        t.start()
    for t in posters:
        t.join(timeout=120)
    done.set()
    poller.join(timeout=60)
    assert replies == [200] * 8
    assert len(health) >= 3
    assert max(health) < max(0.3, 1.2 * parse_seconds), (max(health), parse_seconds)
