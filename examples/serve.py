"""Serve a saved fastnn model over HTTP with JSON (Starlette + uvicorn).

    pip install "fastnn-toolkit[serve]"
    python examples/serve.py digits.fastnn --host 127.0.0.1 --port 8000

    POST /predict  {"instances": [[...], ...]}  ->  {"probabilities": [[...], ...]}
    GET  /health                                 ->  {"status": "ok", "input_shape": ..., ...}

The model is loaded once, folded into an inference plan
(``model.compile_for_inference()``: batch norm folded into the Dense weights,
dropout gone) and called from Starlette's worker threads; fastnn's kernels
release the GIL, so requests really run in parallel. Every bad request
(malformed JSON, wrong shape, NaN or infinity, too large a batch or body) gets
a 4xx answer with a message saying what is wrong; the server keeps serving.

Each worker process uses ``--threads`` threads for its kernels and BLAS
(default 1): with many requests in flight, one thread per request beats
letting OpenMP, BLAS and the server's threads fight over the same cores
(see docs/deploying.md).
"""
import argparse
import json
import socket

import numpy
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.routing import Route

import fastnn
from fastnn.models import data, load_model


class BadRequest(Exception):
    """A client error: answered with ``status`` and ``message``, never a 5xx."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


def create_app(model_path, max_batch=1024, max_body_bytes=16 << 20):
    """A Starlette app answering /predict and /health for the model at ``model_path``."""
    model = load_model(model_path, compile=False)
    plan = model.compile_for_inference()
    input_shape = list(model.input_shape[1:])

    async def health(request):
        return JSONResponse({"status": "ok", "input_shape": input_shape,
                             "output_shape": list(model.output_shape[1:]),
                             "max_batch": max_batch})

    async def predict(request):
        try:
            x = _instances(await _json_body(request, max_body_bytes), max_batch)
            x = data.check_x(x, plan.input_shape, plan.dtype, what="instances")
        except BadRequest as exc:
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        except ValueError as exc:  # wrong shape, NaN/inf: check_x names the problem
            return JSONResponse({"error": str(exc)}, status_code=400)
        probabilities = await run_in_threadpool(plan, x)
        return JSONResponse({"probabilities": probabilities.tolist()})

    return Starlette(routes=[Route("/health", health, methods=["GET"]),
                             Route("/predict", predict, methods=["POST"])])


async def _json_body(request, max_body_bytes):
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > max_body_bytes):
        raise BadRequest(413, f"request body larger than {max_body_bytes} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_body_bytes:
            raise BadRequest(413, f"request body larger than {max_body_bytes} bytes")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(400, f"malformed JSON: {exc}") from None


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
    try:
        x = numpy.array(instances, dtype="float32")
    except (TypeError, ValueError, OverflowError):
        raise BadRequest(400, '"instances" must be lists of numbers, all of the same '
                              'length') from None
    return x


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a .fastnn file written by model.save()")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--threads", type=int, default=1,
                        help="kernel + BLAS threads for this process (default 1)")
    parser.add_argument("--max-batch", type=int, default=1024)
    parser.add_argument("--no-access-log", action="store_true")
    args = parser.parse_args(argv)

    import uvicorn
    fastnn.set_num_threads(args.threads)
    app = create_app(args.model, max_batch=args.max_batch)
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
