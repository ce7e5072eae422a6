"""Serve a saved fastnn model over HTTP with JSON (Starlette + uvicorn).

    pip install "fastnn-toolkit[serve]"
    python examples/serve.py digits.fastnn --host 127.0.0.1 --port 8000

    POST /predict  {"instances": [[...], ...]}  ->  {"probabilities": [[...], ...]}
    GET  /health                                 ->  {"status": "ok", "input_shape": ..., ...}

The model is loaded once, folded into an inference plan
(``model.compile_for_inference()``: batch norm folded into the Dense weights,
dropout gone) and called from Starlette's worker threads; fastnn's kernels
release the GIL, so requests really run in parallel. The event loop only
reads request bodies: decoding the JSON into an array runs in a small pool of
processes (``--decode-workers``; ``json.loads`` holds the GIL, so a thread
would still stall the loop), the forward pass and the answer's JSON in
Starlette's thread pool, and a byte budget (``--max-inflight-bytes``) bounds
how many bodies are in memory at once.
Every bad request (malformed JSON, strings or booleans where numbers belong,
wrong shape, NaN or infinity, too large a batch or body) gets a 4xx answer
with a message saying what is wrong; the server keeps serving.

Each worker process uses ``--threads`` threads for its kernels and BLAS
(default 1): with many requests in flight, one thread per request beats
letting OpenMP, BLAS and the server's threads fight over the same cores
(see docs/deploying.md).
"""
import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import multiprocessing
import os
import socket

import numpy
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import fastnn
from fastnn.models import data, load_model


# Bodies up to this size are decoded in the thread pool: their json.loads holds the GIL
# for a millisecond or two, less than a trip to a decode process costs.
DECODE_IN_THREAD_BYTES = 64 << 10


class BadRequest(Exception):
    """A client error: answered with ``status`` and ``message``, never a 5xx."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


def create_app(model_path, max_batch=1024, max_body_bytes=16 << 20, max_inflight_bytes=None,
               decode_workers=None):
    """A Starlette app answering /predict and /health for the model at ``model_path``.

    Args:
        max_inflight_bytes: request bytes being read, decoded and predicted at once
            (default four bodies of ``max_body_bytes``): a request whose body does not
            fit waits for others to finish, so memory stays bounded however many
            large bodies arrive together.
        decode_workers: processes that decode request bodies over
            ``DECODE_IN_THREAD_BYTES`` (JSON to array; default ``min(4, cores)``).
            ``json.loads`` holds the GIL for its whole run (0.7 s for 16 MB), so in a
            thread it would still stall the event loop; 0 decodes every body in the
            thread pool.
    """
    decoder = _decode_pool(decode_workers)  # forked first, while the process is small
    model = load_model(model_path, compile=False)
    plan = model.compile_for_inference()
    input_shape = list(model.input_shape[1:])
    budget = ByteBudget(max_inflight_bytes or 4 * max_body_bytes)

    async def health(request):
        return JSONResponse({"status": "ok", "input_shape": input_shape,
                             "output_shape": list(model.output_shape[1:]),
                             "max_batch": max_batch})

    async def decode(body):
        args = (body, plan.input_shape, plan.dtype, max_batch)
        if decoder is None or len(body) <= DECODE_IN_THREAD_BYTES:
            return await run_in_threadpool(_decode, *args)
        return await asyncio.get_running_loop().run_in_executor(decoder, _decode, *args)

    async def predict(request):
        try:
            declared = _declared_length(request, max_body_bytes)
            async with budget.hold(max_body_bytes if declared is None else declared):
                body = await _read_body(request, max_body_bytes)
                # Only the body is read on the event loop: decoding runs in the decode
                # processes, the forward pass and the answer's JSON in the thread pool.
                outcome = await decode(body)
                del body
                if outcome[0] == "error":
                    raise BadRequest(*outcome[1:])
                content = await run_in_threadpool(_probabilities, plan, outcome[1])
                status = 200
        except BadRequest as exc:
            status, content = exc.status, _error(exc.message)
        return Response(content, status_code=status, media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        if decoder is not None:
            decoder.shutdown(cancel_futures=True)

    return Starlette(routes=[Route("/health", health, methods=["GET"]),
                             Route("/predict", predict, methods=["POST"])], lifespan=lifespan)


def _decode_pool(workers):
    """A started process pool for ``_decode`` (None for ``workers=0``).

    Workers are forked (where the platform can) before the model is loaded and
    before the server starts any thread, and all at once, so no fork happens
    while other threads hold locks.
    """
    workers = min(4, os.cpu_count() or 1) if workers is None else int(workers)
    if workers <= 0:
        return None
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=context)
    pool.submit(int).result()  # with "fork" this starts every worker now
    return pool


class ByteBudget:
    """At most ``limit`` bytes held at once; ``hold(n)`` waits until ``n`` more fit.

    A request larger than the whole budget holds all of it (it runs alone).
    """

    def __init__(self, limit):
        self.limit, self.used = int(limit), 0
        self._changed = None  # created on first use, inside the server's event loop

    @contextlib.asynccontextmanager
    async def hold(self, n):
        n = min(int(n), self.limit)
        if self._changed is None:
            self._changed = asyncio.Condition()
        async with self._changed:
            await self._changed.wait_for(lambda: self.used + n <= self.limit)
            self.used += n
        try:
            yield
        finally:
            async with self._changed:
                self.used -= n
                self._changed.notify_all()


def _declared_length(request, max_body_bytes):
    declared = request.headers.get("content-length")
    if declared is None:
        return None
    if not declared.isdigit() or int(declared) > max_body_bytes:
        raise BadRequest(413, f"request body larger than {max_body_bytes} bytes")
    return int(declared)


async def _read_body(request, max_body_bytes):
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_body_bytes:
            raise BadRequest(413, f"request body larger than {max_body_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _decode(body, input_shape, dtype, max_batch):
    """``("ok", array)`` or ``("error", status, message)`` for one request body.

    Runs in a decode process (or a worker thread): plain tuples cross the process
    boundary where an exception with extra fields would not.
    """
    try:
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise BadRequest(400, f"malformed JSON: {exc}") from None
        x = _instances(payload, max_batch)
        del payload
        return "ok", data.check_x(x, input_shape, dtype, what="instances")
    except BadRequest as exc:
        return "error", exc.status, exc.message
    except ValueError as exc:  # wrong shape, NaN/inf: check_x names the problem
        return "error", 400, str(exc)


def _probabilities(plan, x):
    """The answer's JSON bytes for a checked batch: runs in a worker thread."""
    return json.dumps({"probabilities": plan(x).tolist()}).encode()


def _error(message):
    return json.dumps({"error": message}).encode()


def _instances(payload, max_batch):
    """The ``instances`` of a request as a float array (shape checks come after)."""
    if not isinstance(payload, dict) or "instances" not in payload:
        raise BadRequest(400, 'the body must be a JSON object {"instances": [[...], ...]}')
    instances = payload["instances"]
    if not isinstance(instances, list) or not instances:
        raise BadRequest(400, '"instances" must be a non-empty list of samples')
    if len(instances) > max_batch:
        raise BadRequest(413, f"{len(instances)} instances exceed the limit of {max_batch} "
                              f"per request")
    if not _only_numbers(instances):
        raise BadRequest(400, '"instances" must be lists of numbers (not strings, booleans '
                              'or null)')
    try:
        x = numpy.array(instances, dtype="float32")
    except (TypeError, ValueError, OverflowError):
        raise BadRequest(400, '"instances" must be lists of numbers, all of the same '
                              'length') from None
    return x


_NUMBERS = {int, float}


def _only_numbers(node):
    """False if any leaf of the nested lists ``node`` is not a JSON number.

    NumPy would turn "1.5" and true into numbers; they are refused here. The
    type test runs per list in C (``set(map(type, ...))``), so a 16 MB body
    takes milliseconds. Ragged nesting is left to the array conversion.
    """
    kinds = set(map(type, node))
    if kinds <= _NUMBERS:
        return True
    if not kinds <= _NUMBERS | {list}:
        return False
    return all(_only_numbers(child) for child in node if type(child) is list)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a .fastnn file written by model.save()")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--threads", type=int, default=1,
                        help="kernel + BLAS threads for this process (default 1)")
    parser.add_argument("--max-batch", type=int, default=1024)
    parser.add_argument("--max-body-bytes", type=int, default=16 << 20)
    parser.add_argument("--max-inflight-bytes", type=int, default=None,
                        help="request bytes read, parsed or predicted at once "
                             "(default 4 x --max-body-bytes)")
    parser.add_argument("--decode-workers", type=int, default=None,
                        help="processes decoding JSON bodies (default min(4, cores); "
                             "0: decode in the thread pool)")
    parser.add_argument("--no-access-log", action="store_true")
    args = parser.parse_args(argv)

    import uvicorn
    fastnn.set_num_threads(args.threads)
    app = create_app(args.model, max_batch=args.max_batch, max_body_bytes=args.max_body_bytes,
                     max_inflight_bytes=args.max_inflight_bytes,
                     decode_workers=args.decode_workers)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this: without it, Nagle holds the response body
    # until the client's delayed ACK of the headers, ~40 ms per request.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((args.host, args.port))
    sock.listen(2048)  # connections queue from now on, before uvicorn's loop is up
    host, port = sock.getsockname()[:2]
    print(f"serving {args.model} on http://{host}:{port}", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=not args.no_access_log)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
