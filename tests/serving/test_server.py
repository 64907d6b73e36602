"""`surgellm serve` (issue 19, part 1): the real server in a subprocess on a free loopback port, talked to over HTTP
with httpx. Records equal `surgellm predict`'s byte for byte; concurrent requests of different tasks come back to
their callers; bad requests get a 4xx naming the problem and the server keeps serving; the API key; /info,
/metrics, /docs; SIGTERM with a request in flight: it completes, then the process exits 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from surgellm_hf import SurgeForSequenceClassification, SurgeProcessor
from surgellm_hf.cli import main
from surgellm_hf.inference import load_run_model, predict_texts
from surgellm_hf.serving.streaming import output_row
from tests._helpers import free_port
from tests._serving_utils import TEXTS

httpx = pytest.importorskip("httpx")
pytest.importorskip("litserve")

TASKS = {"sst2": 2, "topics": 3, "nli": 2}  # not alphabetical; a multi-label task; a sentence-pair task
TYPES = {"topics": "multi_label"}
LABELS = {"sst2": ["negative", "positive"], "topics": ["sports", "politics", "tech"], "nli": ["no", "yes"]}
KEY = "s3cret-key"
MAX_INPUTS = 4000
MAX_BODY = 1_000_000


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_bert_with_tokenizer) -> Path:
    """A saved model with a single-label, a multi-label and a sentence-pair task (heads spread to O(1) logits)."""
    torch.manual_seed(0)
    model = SurgeForSequenceClassification.from_encoder_pretrained(
        tiny_bert_with_tokenizer,
        tasks=TASKS,
        task_problem_types=TYPES,
        task_label_names=LABELS,
        norm="standard",
    )
    processor = SurgeProcessor.from_encoder_pretrained(
        tiny_bert_with_tokenizer, tasks=list(TASKS), prefix=None, pair_tasks=["nli"], max_length=64
    )
    fit = [list(TASKS)[i % 3] for i in range(12)]
    model.fit_feature_normalizer(processor.lexicon.featurize([TEXTS[i % 8] for i in range(12)]), None, fit)
    with torch.no_grad():
        for head in model.heads:
            head[-1].weight.mul_(40.0)
    folder = tmp_path_factory.mktemp("served") / "run"
    model.eval().save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


class Server:
    """`surgellm serve` in a subprocess; `url`, `proc`, and an httpx client with the API key."""

    def __init__(self, run_dir: Path, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "SURGE_TEST_KEY": KEY, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
        self.log = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "surgellm_hf.cli",
                "serve",
                str(run_dir),
                "--port",
                str(self.port),
                "--max-inputs",
                str(MAX_INPUTS),
                "--max-body-bytes",
                str(MAX_BODY),
                "--api-key-env",
                "SURGE_TEST_KEY",
                "--max-batch-size",
                "8",
                "--batch-timeout",
                "0.02",
                "--threads",
                "1",
            ],  # fmt: skip
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.client = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:  # bounded polling of /health, no fixed sleep
            assert self.proc.poll() is None, Path(log).read_text()[-3000:]
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError("the server did not become healthy:\n" + Path(log).read_text()[-3000:])

    def predict(self, body: dict) -> httpx.Response:
        return self.client.post("/predict", json=body)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.client.close()
        self.log.close()


@pytest.fixture(scope="module")
def server(run_dir, tmp_path_factory):
    s = Server(run_dir, tmp_path_factory.mktemp("server_log") / "server.log")
    yield s
    s.stop()


def _cli_lines(run_dir: Path, rows: list[dict], tmp: Path, *options: str) -> list[str]:
    (tmp / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    argv = ["predict", str(run_dir), "--input", str(tmp / "in.jsonl"), "--output", str(tmp / "out.jsonl")]
    assert main([*argv, "--no-progress", *options]) == 0
    return (tmp / "out.jsonl").read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize(
    ("task", "pairs", "options"),
    [
        ("sst2", False, {}),
        ("topics", False, {"explain": True}),
        ("nli", True, {}),
        ("topics", False, {"threshold": 0.3}),
    ],
)
def test_records_equal_surgellm_predict_byte_for_byte(server, run_dir, tmp_path, task, pairs, options):
    texts = [*TEXTS, *(f"{t} again, {i} times" for i, t in enumerate(TEXTS))]
    rows = [{"text": t, **({"text_pair": TEXTS[-1 - i % 8]} if pairs else {})} for i, t in enumerate(texts)]
    flags = [
        *(["--explain"] if options.get("explain") else []),
        *(["--threshold", "0.3"] if "threshold" in options else []),
    ]
    lines = _cli_lines(run_dir, rows, tmp_path, "--task", task, *flags)
    body = {"inputs": texts, "task": task, **options}
    if pairs:
        body["text_pair"] = [r["text_pair"] for r in rows]
    response = server.predict(body)
    assert response.status_code == 200, response.text
    records = response.json()
    assert [json.dumps(output_row(row, rec), ensure_ascii=False) for row, rec in zip(rows, records)] == lines
    if task == "topics" and "threshold" not in options:
        assert all("explanation" in r for r in records)


def test_every_task_and_a_single_text(server, run_dir):
    model, processor = load_run_model(run_dir)
    response = server.predict({"inputs": TEXTS[0], "task": "sst2"})
    assert response.status_code == 200
    (record,) = response.json()
    (expected,) = predict_texts(model, processor, [TEXTS[0]], tasks="sst2")
    assert record == json.loads(json.dumps(expected))
    # a model with a pair task has no 'all' (a pair needs its second text): refused with the reason
    response = server.predict({"inputs": TEXTS[:2], "task": "all"})
    assert response.status_code == 422 and "sentence-pair" in response.text


def test_concurrent_requests_of_different_tasks_come_back_to_their_callers(server, run_dir):
    model, processor = load_run_model(run_dir)
    jobs = []
    for i in range(24):
        task = list(TASKS)[i % 3]
        texts = [f"{TEXTS[(i + k) % 8]} ({i}/{k})" for k in range(1 + i % 4)]
        body = {"inputs": texts, "task": task}
        if task == "nli":
            body["text_pair"] = [TEXTS[(i + 3 + k) % 8] for k in range(len(texts))]
        jobs.append(body)
    answers: dict[int, httpx.Response] = {}

    def send(i: int) -> None:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120) as c:
            answers[i] = c.post("/predict", json=jobs[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, body in enumerate(jobs):
        assert answers[i].status_code == 200, answers[i].text
        got = answers[i].json()
        want = predict_texts(
            model, processor, body["inputs"], tasks=body["task"], text_pairs=body.get("text_pair")
        )
        assert [r["task"] for r in got] == [body["task"]] * len(body["inputs"])
        for g, w in zip(got, want):
            assert list(g["scores"]) == list(w["scores"])
            np.testing.assert_allclose(list(g["scores"].values()), list(w["scores"].values()), atol=1e-5)
    batches = server.client.get("/metrics").text
    batched = [ln for ln in batches.splitlines() if ln.startswith("surgellm_batch_requests_count")]
    requests = [ln for ln in batches.splitlines() if ln.startswith("surgellm_batch_requests_sum")]
    assert (
        batched and requests and float(batched[0].split()[-1]) < float(requests[0].split()[-1])
    )  # some batching


@pytest.mark.parametrize(
    ("send", "status", "words"),
    [
        (lambda c: c.post("/predict", content=b'{"inputs": "x"', headers={"Content-Type": "application/json"}), 422, ["json_invalid"]),
        (lambda c: c.post("/predict", json={"inputs": "x", "task": "nosuch"}), 422, ["unknown task 'nosuch'", "sst2"]),
        (lambda c: c.post("/predict", json={"inputs": ["a", "b"], "task": "nli"}), 422, ["task 'nli' takes sentence pairs", "text_pair"]),
        (lambda c: c.post("/predict", json={"inputs": ["a"] * (MAX_INPUTS + 1)}), 422, [f"too many inputs: {MAX_INPUTS + 1}", "--max-inputs"]),
        (lambda c: c.post("/predict", json={"inputs": "x" * (MAX_BODY + 10)}), 413, ["over the limit of 1000000 bytes"]),
        (lambda c: c.post("/predict", json={"inputs": "x", "colour": "red"}), 422, ["extra_forbidden", "colour"]),
        (lambda c: c.post("/predict", json={"inputs": "x", "threshold": {"sst2": 0.5}}), 422, ["not multi-label", "sst2"]),
        (lambda c: c.post("/predict", json={"inputs": "x", "threshold": 1.5}), 422, ["threshold of task 'topics'"]),
        (lambda c: c.post("/predict", json={"inputs": []}), 422, ["inputs is an empty list"]),
        (lambda c: c.post("/predict", content=b"inputs=x"), 415, ["Content-Type: application/json"]),
    ],
)  # fmt: skip
def test_bad_requests_get_a_4xx_naming_the_problem_and_the_server_keeps_serving(server, send, status, words):
    response = send(server.client)
    assert response.status_code == status, response.text
    assert "detail" in response.json()
    for word in words:
        assert word in response.text
    assert server.predict({"inputs": ["still here"], "task": "sst2"}).status_code == 200


def test_the_api_key_is_required_except_for_health(server):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
        response = httpx.post(f"{server.url}/predict", json={"inputs": "x"}, headers=headers)
        assert response.status_code == 401 and "Authorization: Bearer" in response.json()["detail"]
        assert httpx.get(f"{server.url}/info", headers=headers).status_code == 401
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_info_metrics_and_docs(server):
    info = server.client.get("/info").json()
    assert [t["name"] for t in info["tasks"]] == list(TASKS)
    assert [t["label_names"] for t in info["tasks"]] == list(LABELS.values())
    assert [t["problem_type"] for t in info["tasks"]] == ["single_label", "multi_label", "single_label"]
    assert [t["threshold"] for t in info["tasks"]] == [None, 0.5, None]
    assert [t["text_pair"] for t in info["tasks"]] == [False, False, True]
    assert (
        info["backend"] == "pytorch"
        and info["versions"]["surgellm_hf"]
        and info["limits"]["max_inputs"] == MAX_INPUTS
    )
    metrics = server.client.get("/metrics").text
    assert 'surgellm_http_requests_total{path="/predict",status="200"}' in metrics
    assert 'surgellm_http_errors_total{path="/predict",status="422"}' in metrics
    assert "surgellm_http_request_seconds_bucket" in metrics and "surgellm_batch_texts_bucket" in metrics
    assert server.client.get("/docs").status_code == 200
    schema = server.client.get("/openapi.json").json()
    assert {"inputs", "task", "text_pair", "explain", "threshold"} <= set(
        schema["components"]["schemas"]["PredictRequest"]["properties"]
    )


def test_an_onnx_export_is_served_with_the_records_of_predict(run_dir, tmp_path):
    assert main(["export", str(run_dir), "--output", str(tmp_path / "onnx")]) == 0
    onnx = Server(tmp_path / "onnx", tmp_path / "onnx-server.log")
    try:
        assert onnx.client.get("/info").json()["backend"] == "onnxruntime-fp32"
        for task, pairs in (("topics", False), ("nli", True)):
            rows = [
                {"text": t, **({"text_pair": TEXTS[-1 - i]} if pairs else {})} for i, t in enumerate(TEXTS)
            ]
            lines = _cli_lines(tmp_path / "onnx", rows, tmp_path, "--task", task)
            body = {
                "inputs": TEXTS,
                "task": task,
                **({"text_pair": [r["text_pair"] for r in rows]} if pairs else {}),
            }
            records = onnx.predict(body).json()
            assert [
                json.dumps(output_row(row, rec), ensure_ascii=False) for row, rec in zip(rows, records)
            ] == lines
        response = onnx.predict({"inputs": "x", "explain": True})
        assert response.status_code == 422 and "explanations need the PyTorch model" in response.text
    finally:
        onnx.stop()
    assert onnx.proc.returncode == 0


def test_sigterm_lets_the_request_in_flight_finish_then_exits_0(server):
    """Last in this module: it stops the server."""
    texts = [f"{TEXTS[i % 8]} {' '.join(['word'] * 25)} {i}" for i in range(MAX_INPUTS)]
    result: dict = {}

    def slow() -> None:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=300) as c:
            result["response"] = c.post("/predict", json={"inputs": texts, "task": "topics", "explain": True})

    def texts_in_workers() -> float:
        lines = server.client.get("/metrics").text.splitlines()
        return sum(float(ln.split()[-1]) for ln in lines if ln.startswith("surgellm_batch_texts_sum"))

    seen = texts_in_workers()
    thread = threading.Thread(target=slow)
    thread.start()
    deadline = time.monotonic() + 60
    while texts_in_workers() < seen + MAX_INPUTS:  # the request has reached a worker
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.05)
    server.proc.send_signal(signal.SIGTERM)
    thread.join(timeout=300)
    response = result["response"]
    assert response.status_code == 200 and len(response.json()) == MAX_INPUTS
    assert server.proc.wait(timeout=60) == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.url}/health", timeout=2)
