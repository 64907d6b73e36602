"""`surgellm serve MODEL`: a run folder (PyTorch) or an exported folder (ONNX Runtime) behind an HTTP API, on LitServe.

LitServe (FastAPI + uvicorn) brings the request batching, the worker processes and the OpenAPI docs; this module
adds SURGELLM's request schema, routes and limits. Install with ``pip install "surgellm_hf[serve]"``.

- ``POST /predict`` ``{"inputs": text | [texts], "task": name | "all" | null, "text_pair": text | [texts],
  "explain": bool, "threshold": number | {task: number | [one per label]}}`` returns the JSON list of
  `predict_texts` records, the records `surgellm predict` writes (byte for byte, less the input row's own fields).
- ``GET /health`` (200 once a worker has loaded the model, never behind the API key), ``GET /info`` (tasks in order,
  label names, problem types, thresholds, temperatures, encoder, versions, limits), ``GET /metrics`` (Prometheus text:
  requests and errors by path and status, request latency, requests and texts per model batch), ``GET /docs``.
- A request is checked in the HTTP process before it reaches a worker (`PredictRequest`: malformed JSON, unknown
  fields or tasks, a pair task without ``text_pair``, too many inputs, bad thresholds): a 422 whose JSON names the
  problem, and a bad request never fails the requests batched with it. A body over ``--max-body-bytes`` is a 413,
  a missing or wrong bearer token (with ``--api-key-env VAR``) a 401.
- Worker processes (``--workers``) each load the model in `SurgeLitAPI.setup`; LitServe gathers up to
  ``--max-batch-size`` requests (waiting at most ``--batch-timeout`` seconds) and the worker scores all their texts
  together (`predict_records`: length-sorted batches of ``--batch-size``), each request's records returned to it.
- SIGTERM or Ctrl-C: no new connections; requests in flight finish (uvicorn's graceful shutdown), then the workers
  stop and the process exits 0.

Not ``from __future__ import annotations``: LitServe reads `SurgeLitAPI.decode_request`'s annotation as the request
type FastAPI validates.
"""

import contextlib
import json
import os
import secrets
import signal
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import litserve as ls
from fastapi import HTTPException
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.responses import JSONResponse, Response

from ..atomic_io import atomic_write_text
from .limits import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_INPUTS
from .runtime import ALL_TASKS, TaskScoring

INFO_FILE = "model_info.json"
METRICS_DIR = "prometheus"

_STATE: dict[str, Any] = {}
"""This server's settings, set by `build_server` in the main process before LitServe forks its HTTP process."""


# ---------------------------------------------------------------------------------------------------- the model


def model_info(predictor: Any) -> dict[str, Any]:
    """What ``/info`` shows of a loaded predictor (`TorchPredictor` or `OnnxSurgeClassifier`)."""
    scoring: TaskScoring = predictor.scoring
    pair_tasks = list(getattr(predictor.processor, "pair_tasks", None) or [])
    config = getattr(predictor, "model", None)
    if config is not None:
        config = config.config
        encoder = config.encoder_name_or_path or config.encoder_config.model_type
        backend = "pytorch"
    else:
        encoder = predictor.config.get("encoder_model_type")
        backend = "onnxruntime-int8" if predictor.quantized else "onnxruntime-fp32"
    return {
        "backend": backend,
        "encoder": encoder,
        "default_task": predictor.default_task,
        "tasks": [
            {
                "name": name,
                "num_labels": count,
                "label_names": scoring.label_names[name],
                "problem_type": scoring.problem_types[name],
                "threshold": scoring.thresholds.get(name),
                "temperature": scoring.temperatures.get(name),
                "text_pair": name in pair_tasks,
            }
            for name, count in scoring.tasks.items()
        ],
        "prefix": getattr(predictor.processor, "prefix", None),
        "all_tasks_in_one_pass": bool(predictor.all_tasks_in_one_pass),
        "explanations": callable(getattr(predictor, "explain", None)),
    }


def _info() -> dict[str, Any]:
    """The model info the first ready worker wrote (read once per HTTP process)."""
    if "info" not in _STATE:
        path = Path(_STATE["state_dir"]) / INFO_FILE
        _STATE["info"] = json.loads(path.read_text(encoding="utf-8"))
    return _STATE["info"]


def _scoring(info: Mapping[str, Any]) -> TaskScoring:
    tasks = info["tasks"]
    return TaskScoring(
        {t["name"]: t["num_labels"] for t in tasks},
        {t["name"]: t["label_names"] for t in tasks},
        {t["name"]: t["problem_type"] for t in tasks},
        {t["name"]: t["threshold"] for t in tasks if t["threshold"] is not None},
    )


# ---------------------------------------------------------------------------------------------------- requests


class PredictRequest(BaseModel):
    """The body of ``POST /predict``; checked against the served model before it reaches a worker."""

    model_config = ConfigDict(extra="forbid")

    inputs: str | list[str] = Field(description="one text, or a list of texts")
    task: str | None = Field(
        default=None, description="a task name of the model, 'all' (every task), or null (the default task)"
    )
    text_pair: str | list[str] | None = Field(
        default=None, description="the second text of each sentence pair (pair tasks only), as `inputs`"
    )
    explain: bool = Field(default=False, description="add each record's explanation (PyTorch models only)")
    threshold: float | dict[str, float | list[float]] | None = Field(
        default=None, description="multi-label decision threshold for this request: a number or {task: value}"
    )

    @model_validator(mode="after")
    def _check_against_the_model(self) -> "PredictRequest":
        info = _info()
        texts = [self.inputs] if isinstance(self.inputs, str) else self.inputs
        limit = _STATE.get("max_inputs", DEFAULT_MAX_INPUTS)
        if not texts:
            raise ValueError("inputs is an empty list; send at least one text")
        if len(texts) > limit:
            raise ValueError(f"too many inputs: {len(texts)}, at most {limit} per request (--max-inputs)")
        names = [t["name"] for t in info["tasks"]]
        task = self.task if self.task is not None else info["default_task"]
        if task != ALL_TASKS and task not in names:
            raise ValueError(f"unknown task {task!r}; tasks of this model: {names} (or 'all')")
        pair_tasks = [t["name"] for t in info["tasks"] if t["text_pair"]]
        if task == ALL_TASKS and pair_tasks:
            raise ValueError(
                f"task 'all' is not served for a model with sentence-pair tasks ({pair_tasks}): a pair task needs "
                "the second text of each pair; name the task"
            )
        if task == ALL_TASKS and self.text_pair is not None:
            raise ValueError(
                "task 'all' takes no text_pair: a sentence pair fits only the pair tasks; name the task"
            )
        if task in pair_tasks and self.text_pair is None:
            raise ValueError(
                f"task {task!r} takes sentence pairs: send text_pair (the second text of each pair)"
            )
        if task not in pair_tasks and task != ALL_TASKS and self.text_pair is not None:
            raise ValueError(f"task {task!r} takes single texts, not text_pair (pair tasks: {pair_tasks})")
        if self.text_pair is not None:
            pairs = [self.text_pair] if isinstance(self.text_pair, str) else self.text_pair
            if isinstance(self.inputs, str) != isinstance(self.text_pair, str) or len(pairs) != len(texts):
                raise ValueError(f"text_pair must match inputs: one second text per input ({len(texts)})")
        if self.explain and not info["explanations"]:
            raise ValueError(f"explanations need the PyTorch model; this server runs {info['backend']}")
        if self.threshold is not None:
            _scoring(info).with_thresholds(self.threshold)
        return self


# ---------------------------------------------------------------------------------------------------- the API


class SurgeLitAPI(ls.LitAPI):
    """SURGELLM behind LitServe: each worker process loads the model once (`setup`) and scores batches of
    requests (`predict`); answers are the bytes of the JSON record lists."""

    def __init__(
        self,
        model_path: str,
        state_dir: str,
        *,
        quantized: bool = False,
        threads: int | None = None,
        batch_size: int = 32,
        max_batch_size: int = 16,
        batch_timeout: float = 0.005,
    ):
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout, api_path="/predict")
        self.model_path, self.state_dir = str(model_path), str(state_dir)
        self.quantized, self.threads, self.batch_size = quantized, threads, batch_size

    def setup(self, device: str) -> None:
        """Load the model in this worker and publish what ``/info`` shows."""
        from .streaming import load_predictor

        self.predictor = load_predictor(self.model_path, quantized=self.quantized, num_threads=self.threads)
        atomic_write_text(Path(self.state_dir) / INFO_FILE, json.dumps(model_info(self.predictor)))
        self.metrics = _worker_metrics()

    def decode_request(self, request: PredictRequest, **kwargs: Any) -> dict[str, Any]:
        return request.model_dump()

    def batch(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return inputs

    def predict(self, batch: Any, **kwargs: Any) -> list[Response]:
        """One answer per request; requests asking the same way (task 'all' or not, explain, threshold) are
        scored together. A group that fails is scored request by request, so an error answers only its request."""
        requests = batch if isinstance(batch, list) else [batch]
        self.metrics["requests"].observe(len(requests))
        self.metrics["texts"].observe(
            sum(1 if isinstance(r["inputs"], str) else len(r["inputs"]) for r in requests)
        )
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            key = (r["task"] == ALL_TASKS, r["explain"], json.dumps(r["threshold"], sort_keys=True))
            groups.setdefault(key, []).append(i)
        answers: list[Response | None] = [None] * len(requests)
        for indices in groups.values():
            try:
                for i, records in zip(indices, self._score([requests[i] for i in indices])):
                    answers[i] = _records_response(records)
            except Exception:  # noqa: BLE001 - answer each request on its own below
                for i in indices:
                    answers[i] = self._answer_alone(requests[i])
        return answers  # type: ignore[return-value]

    def unbatch(self, output: list[Response]) -> list[Response]:
        return output

    def encode_response(self, output: Response, **kwargs: Any) -> Response:
        return (
            output[0] if isinstance(output, list) else output
        )  # --max-batch-size 1: predict got one request

    def _answer_alone(self, request: dict[str, Any]) -> Response:
        try:
            return _records_response(self._score([request])[0])
        except (ValueError, TypeError, KeyError) as err:
            return JSONResponse({"detail": str(err)}, status_code=400)
        except Exception as err:  # noqa: BLE001 - the server keeps serving; the client learns what failed
            return JSONResponse({"detail": f"{type(err).__name__}: {err}"}, status_code=500)

    def _score(self, requests: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """Each request's records, from one `predict` call over all their texts."""
        first = requests[0]
        every = first["task"] == ALL_TASKS
        texts: list[str] = []
        tasks: list[str] = []
        pairs: list[str | None] = []
        counts = []
        for r in requests:
            items = [r["inputs"]] if isinstance(r["inputs"], str) else list(r["inputs"])
            second = r["text_pair"]
            second = [second] if isinstance(second, str) else list(second or [None] * len(items))
            texts += items
            pairs += second
            tasks += [r["task"] or self.predictor.default_task] * len(items)
            counts.append(len(items))
        records = self.predictor.predict(
            texts,
            ALL_TASKS if every else tasks,
            self.batch_size,
            pairs if any(p is not None for p in pairs) else None,
            first["threshold"],
            first["explain"],
        )
        out, start = [], 0
        for n in counts:
            out.append(records[start : start + n])
            start += n
        return out


def _records_response(records: list[dict[str, Any]]) -> Response:
    """The JSON list of records, each serialized as `surgellm predict` writes its lines."""
    body = "[" + ",".join(json.dumps(r, ensure_ascii=False) for r in records) + "]"
    return Response(content=body.encode("utf-8"), media_type="application/json")


# ---------------------------------------------------------------------------------------------------- HTTP layers


class BearerAuthMiddleware:
    """401 for a request without ``Authorization: Bearer <key>`` (every path but ``/health``)."""

    def __init__(self, app: Any, api_key: str):
        self.app, self.api_key = app, api_key.encode("utf-8")

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] == "/health":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = given.partition(b" ")
        if scheme.lower() != b"bearer" or not secrets.compare_digest(token.strip(), self.api_key):
            response = JSONResponse(
                {"detail": "missing or wrong API key: send the header 'Authorization: Bearer <key>'"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class JsonBodyMiddleware:
    """415 for a ``POST /predict`` whose Content-Type is not JSON (a form-encoded body, e.g. ``curl -d`` without
    ``-H 'Content-Type: application/json'``, would otherwise fail validation with an unclear message)."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/predict":
            kind = dict(scope["headers"]).get(b"content-type", b"").decode("latin-1")
            if not kind.split(";")[0].strip().lower().endswith("json"):
                detail = (
                    "POST /predict takes a JSON body: send the header 'Content-Type: application/json' "
                    f"(got {kind or 'none'!r})"
                )
                await JSONResponse({"detail": detail}, status_code=415)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """413 for a request body over `max_bytes`: by its Content-Length before reading it, or while it streams."""

    def __init__(self, app: Any, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    def _too_large(self) -> str:
        return f"request body over the limit of {self.max_bytes} bytes (--max-body-bytes)"

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await JSONResponse({"detail": self._too_large()}, status_code=413)(scope, receive, send)
            return
        seen = 0

        async def limited() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise HTTPException(status_code=413, detail=self._too_large())
            return message

        await self.app(scope, limited, send)


class MetricsMiddleware:
    """Counts requests and errors by path and status and times them (Prometheus, multiprocess mode)."""

    def __init__(self, app: Any):
        self.app = app
        metrics = _http_metrics()
        self.requests, self.errors, self.latency = metrics["requests"], metrics["errors"], metrics["latency"]

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        import time

        status = [500]

        async def send_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        path = scope["path"] if scope["path"] in _ROUTES else "other"
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_status)
        finally:
            self.latency.labels(path).observe(time.perf_counter() - start)
            self.requests.labels(path, str(status[0])).inc()
            if status[0] >= 400:
                self.errors.labels(path, str(status[0])).inc()


_ROUTES = ("/predict", "/health", "/info", "/metrics", "/docs", "/openapi.json")


def _http_metrics() -> dict[str, Any]:
    """The HTTP process's metrics, made once (the middleware stack may be built more than once)."""
    if "http_metrics" not in _STATE:
        from prometheus_client import Counter, Histogram

        _STATE["http_metrics"] = {
            "requests": Counter("surgellm_http_requests", "HTTP requests", ["path", "status"]),
            "errors": Counter(
                "surgellm_http_errors", "HTTP requests answered 4xx or 5xx", ["path", "status"]
            ),
            "latency": Histogram(
                "surgellm_http_request_seconds",
                "HTTP request latency (seconds)",
                ["path"],
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            ),
        }
    return _STATE["http_metrics"]


def _worker_metrics() -> dict[str, Any]:
    from prometheus_client import Histogram

    sizes = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
    return {
        "requests": Histogram(
            "surgellm_batch_requests", "requests scored together by a worker", buckets=sizes
        ),
        "texts": Histogram("surgellm_batch_texts", "texts scored together by a worker", buckets=sizes),
    }


def _metrics_response() -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return Response(content=generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for dist in ("surgellm_hf", "litserve", "torch", "transformers", "onnxruntime"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[dist] = md.version(dist)
    return out


# ---------------------------------------------------------------------------------------------------- the server


class _SurgeLitServer(ls.LitServer):
    def _perform_graceful_shutdown(self, manager: Any, uvicorn_workers: Any, shutdown_reason: str = "normal"):
        """LitServe's shutdown (the HTTP processes finish their requests, then the workers stop), once: its worker
        monitor thread would otherwise take the stopped workers for a crash and shut down a second time."""
        if getattr(self, "_stopping", False):
            return
        self._stopping = True
        super()._perform_graceful_shutdown(manager, uvicorn_workers, shutdown_reason)


def build_server(
    model_path: str | os.PathLike,
    *,
    workers: int = 1,
    max_batch_size: int = 16,
    batch_timeout: float = 0.005,
    batch_size: int = 32,
    max_inputs: int = DEFAULT_MAX_INPUTS,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    api_key: str | None = None,
    quantized: bool = False,
    threads: int | None = None,
    timeout: float = 60.0,
    state_dir: str | os.PathLike | None = None,
) -> ls.LitServer:
    """The LitServer of `model_path` (nothing loads until `run`); every argument checked first."""
    from .streaming import check_positive

    for name, value in (
        ("--workers", workers),
        ("--max-batch-size", max_batch_size),
        ("--batch-size", batch_size),
        ("--max-inputs", max_inputs),
        ("--max-body-bytes", max_body_bytes),
    ):
        check_positive(name, value)
    if threads is not None:
        check_positive("--threads", threads)
    if not batch_timeout > 0:
        raise ValueError(f"--batch-timeout must be > 0 seconds, got {batch_timeout}")
    if not timeout > 0:
        raise ValueError(f"--timeout must be > 0 seconds, got {timeout}")
    path = Path(model_path)
    if not path.is_dir():
        raise FileNotFoundError(f"model folder not found: {path}")
    state = Path(state_dir or tempfile.mkdtemp(prefix="surgellm-serve-"))
    (state / METRICS_DIR).mkdir(parents=True, exist_ok=True)
    _STATE.update(state_dir=str(state), max_inputs=max_inputs)
    _STATE.pop("info", None)
    if threads is None:
        threads = max(1, (os.cpu_count() or 1) // workers)
    api = SurgeLitAPI(
        str(path),
        str(state),
        quantized=quantized,
        threads=threads,
        batch_size=batch_size,
        max_batch_size=max_batch_size,
        batch_timeout=batch_timeout,
    )
    middlewares: list[Any] = []
    if api_key:
        middlewares.append((BearerAuthMiddleware, {"api_key": api_key}))
    middlewares += [
        JsonBodyMiddleware,
        (BodyLimitMiddleware, {"max_bytes": max_body_bytes}),
        MetricsMiddleware,
    ]
    server = _SurgeLitServer(
        api,
        accelerator="cpu",
        devices=1,
        workers_per_device=workers,
        timeout=timeout,
        info_path="/litserve/info",
        middlewares=middlewares,
    )
    limits = {
        "max_inputs": max_inputs,
        "max_body_bytes": max_body_bytes,
        "max_batch_size": max_batch_size,
        "batch_timeout_s": batch_timeout,
        "batch_size": batch_size,
        "workers": workers,
        "threads_per_worker": threads,
        "timeout_s": timeout,
    }

    @server.app.get("/info")
    def info() -> dict[str, Any]:
        """The served model: tasks in order (labels, problem types, thresholds, temperatures), encoder, versions."""
        return {**_info(), "model_path": str(path), "versions": _versions(), "limits": limits}

    @server.app.get("/metrics")
    def metrics() -> Response:
        """Prometheus metrics of every process of this server."""
        return _metrics_response()

    return server


def serve(model_path: str | os.PathLike, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "warning",
          **options: Any) -> int:  # fmt: skip
    """Run the server until SIGTERM / Ctrl-C (`build_server` options); returns 0 after a graceful shutdown."""
    with tempfile.TemporaryDirectory(prefix="surgellm-serve-") as state:
        # prometheus_client reads its multiprocess folder when it is imported: before anything imports it
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(Path(state) / METRICS_DIR)
        server = build_server(model_path, state_dir=state, **options)

        def stop(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt  # LitServer.run's graceful shutdown

        signal.signal(signal.SIGTERM, stop)
        print(
            f"surgellm serve: {model_path} on http://{host}:{port} (docs: /docs)", file=sys.stderr, flush=True
        )
        server.run(host=host, port=port, log_level=log_level, generate_client_file=False, num_api_servers=1)
    return 0


__all__ = ["PredictRequest", "SurgeLitAPI", "build_server", "model_info", "serve"]
