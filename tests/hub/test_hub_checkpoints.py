"""push_to_hub while a run trains (hub_strategy) and resume_from: hub, through the local Hub server over HTTP.

A run interrupted after epoch 1 on one folder resumes from the checkpoint it pushed into a fresh folder (another
machine) and ends with the uninterrupted run's weights; every push carries the SURGELLM card, the processor and the
lexicon, and no file naming the machine. huggingface_hub reads HF_ENDPOINT at import, so the runs that talk to the
Hub run in fresh processes (`HubSession.run_python`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import load_file

from surgellm_hf.training import load_run_config, train_run
from tests._helpers import write_run_config

REPO = "tester/surge-resume"
STEPS_PER_EPOCH = 6  # 48 + 48 training rows in batches of 16

TRAIN = """
import json, sys
import torch
torch.set_num_threads(min(2, torch.get_num_threads()))  # as conftest sets it for the reference run here
import surgellm_hf.training.run as training_run
from surgellm_hf import train_run
from surgellm_hf.training import load_run_config

STOP = {stop}
if STOP is not None:  # Ctrl-C when about to train step STOP + 1
    class Interrupted(training_run.SurgeTrainer):
        def training_step(self, model, inputs, num_items_in_batch=None):
            if self.state.global_step >= STOP:
                raise KeyboardInterrupt
            return super().training_step(model, inputs, num_items_in_batch)

    training_run.SurgeTrainer = Interrupted
cfg = load_run_config({config!r}, {overrides!r})
try:
    run = train_run(cfg)
except KeyboardInterrupt:
    result("interrupted")
except ValueError as err:
    result("refused: " + str(err))
else:
    result(json.loads((run / "metrics.json").read_text()))
"""


def _train(session, config: Path, overrides: list[str], stop: int | None = None):
    return session.run_python(
        TRAIN.format(stop=stop, config=str(config), overrides=overrides), surgellm=True, timeout=600
    )


def _card(hub, repo: str) -> ModelCard:
    return ModelCard(hub.read(repo, "README.md").decode("utf-8"))


def _eval_results(card: ModelCard) -> dict[tuple[str, str, str | None], float]:
    return {
        (r.dataset_name, r.metric_type, r.metric_config): r.metric_value for r in card.data.eval_results or []
    }


def test_interrupted_run_resumes_from_the_hub_in_a_fresh_folder(
    tmp_path, hub_server, tiny_bert_with_tokenizer
):
    hub = hub_server.hub
    config = write_run_config(
        tmp_path,
        tiny_bert_with_tokenizer,
        epochs=3,
        push_to_hub=True,
        hub_model_id=REPO,
        hub_strategy="checkpoint",
        keep_checkpoints=True,
    )
    # the uninterrupted run, on this machine and without the Hub (the hub keys change nothing it computes)
    reference = train_run(
        load_run_config(config, ["push_to_hub=false", f"output_dir={tmp_path / 'reference'}"])
    )

    first = tmp_path / "first"
    assert _train(hub_server, config, [f"output_dir={first}"], stop=STEPS_PER_EPOCH + 2) == "interrupted"
    assert hub.commits(REPO) == ["initial commit", "Training in progress, epoch 1"]
    files = set(hub.files(REPO))
    assert {"README.md", "config.json", "model.safetensors", "lexicon.json", "processor_config.json"} <= files
    assert {"modeling_surge.py", "tokenizer.json", "last-checkpoint/surgellm_run_settings.json"} <= files
    assert {"last-checkpoint/optimizer.pt", "last-checkpoint/model.safetensors"} <= files
    assert not any(f.endswith("training_args.bin") or f.startswith("best-checkpoint/") for f in files)
    pushed_state = json.loads(hub.read(REPO, "last-checkpoint/trainer_state.json"))
    local_state = json.loads((first / "checkpoints/checkpoint-6/trainer_state.json").read_text())
    assert pushed_state["global_step"] == 6 and pushed_state["best_model_checkpoint"] == "checkpoint-6"
    assert pushed_state["log_history"] == local_state["log_history"]
    for name in files - {".gitattributes"}:  # no pushed file names this machine's folders
        text = hub.read(REPO, name).decode("utf-8", errors="replace")
        assert str(tmp_path) not in text, name
    # the in-progress card is the SURGELLM card, with the epoch-1 validation scores of the pushed weights
    card = _card(hub, REPO)
    assert "Training in progress: epoch 1 of 3." in card.text and "SURGELLM" in card.text
    epoch1 = next(h for h in local_state["log_history"] if "eval_avg_macro_f1" in h)
    assert _eval_results(card) == {
        (task, metric, config): round(epoch1[f"eval_{task}_{key}"], 4)
        for task in ("reviews", "register")
        for key, metric, config in (("macro_f1", "f1", "macro"), ("accuracy", "accuracy", None))
    }
    assert {r.dataset_split for r in card.data.eval_results} == {"validation"}

    # a configuration that differs is refused before anything is downloaded or written
    other = tmp_path / "other"
    refused = _train(hub_server, config, [f"output_dir={other}", "resume_from=hub", "learning_rate=0.5"])
    assert refused.startswith(
        "refused: resume_from: hub: the checkpoint in tester/surge-resume is of a different"
    )
    assert "learning_rate: saved 0.001, requested 0.5" in refused
    assert not (other / "checkpoints").exists() and not (other / "run_config.json").exists()

    # a fresh folder (a new machine) resumes from the Hub's last-checkpoint and ends where the reference ended
    second = tmp_path / "second"
    metrics = _train(hub_server, config, [f"output_dir={second}", "resume_from=hub"])
    want = json.loads((reference / "metrics.json").read_text())
    assert metrics["training"]["resumed_from"] == str(second / "checkpoints" / "checkpoint-6")
    for key in ("global_steps", "epochs_run", "best_epoch"):
        assert metrics["training"][key] == want["training"][key], key
    got, ref = load_file(second / "model.safetensors"), load_file(reference / "model.safetensors")
    assert got.keys() == ref.keys()
    for key in ref:  # exactly: same data order, optimizer, scheduler and RNG states, same thread count
        assert torch.equal(got[key], ref[key]), key
    for task, by_split in want["tasks"].items():
        for split, values in by_split.items():
            assert metrics["tasks"][task][split] == pytest.approx(values, abs=1e-4, nan_ok=True), (
                task,
                split,
            )

    # the end of training replaces the in-progress card with the run's, whose metadata matches its metrics.json
    assert hub.commits(REPO)[-3:] == [
        "Training in progress, epoch 2",
        "Training in progress, epoch 3",
        "End of training",
    ]
    card = _card(hub, REPO)
    assert "Training in progress" not in card.text
    assert _eval_results(card) == {
        (task, metric, config): round(metrics["tasks"][task]["test"][key], 4)
        for task in ("reviews", "register")
        for key, metric, config in (("macro_f1", "f1", "macro"), ("accuracy", "accuracy", None))
    }
    assert json.loads(hub.read(REPO, "surgellm_run.json"))["training"]["global_steps"] == 18


def test_every_save_and_all_checkpoints_push_what_the_strategy_names(
    tmp_path, hub_server, tiny_bert_with_tokenizer
):
    hub = hub_server.hub
    for strategy in ("every_save", "all_checkpoints"):
        repo = f"tester/surge-{strategy.replace('_', '-')}"
        config = write_run_config(
            tmp_path, tiny_bert_with_tokenizer, f"{strategy}.yaml", epochs=2, push_to_hub=True,
            hub_model_id=repo, hub_strategy=strategy, output_dir=str(tmp_path / strategy),
        )  # fmt: skip
        metrics = _train(hub_server, config, [])
        assert hub.commits(repo) == [
            "initial commit",
            "Training in progress, epoch 1",
            "Training in progress, epoch 2",
            "End of training",
        ]
        checkpoints = {f.split("/")[0] for f in hub.files(repo) if "/" in f}
        assert checkpoints == (set() if strategy == "every_save" else {"checkpoint-6", "checkpoint-12"})
        assert not (tmp_path / strategy / "checkpoints").exists()  # a finished run keeps none by default
        card = _card(hub, repo)
        assert (
            card.data.library_name == "transformers" and card.data.license is None
        )  # the tiny encoder has none
        assert _eval_results(card)[("reviews", "f1", "macro")] == round(
            metrics["tasks"]["reviews"]["test"]["macro_f1"], 4
        )


def test_a_resume_from_the_hub_ends_with_the_best_epoch_when_it_was_not_the_last(
    tmp_path, hub_server, tiny_bert_with_tokenizer
):
    """Interrupted after an epoch that did not improve: the Hub holds last-checkpoint/ and best-checkpoint/, and
    the run resumed in a fresh folder stops where the reference stops, with the best epoch's weights."""
    from tests._early_stopping_reference import EarlyStopper

    hub, repo = hub_server.hub, "tester/surge-best"
    config = write_run_config(
        tmp_path, tiny_bert_with_tokenizer, epochs=6, patience=2, push_to_hub=True, hub_model_id=repo,
        hub_strategy="checkpoint",
    )  # fmt: skip
    reference = train_run(
        load_run_config(config, ["push_to_hub=false", f"output_dir={tmp_path / 'reference'}"])
    )
    ref = json.loads((reference / "metrics.json").read_text())
    stopper, stop_epoch = EarlyStopper(2), None
    for epoch, h in enumerate(ref["validation_history"], 1):
        if stopper.update(h["avg_macro_f1"]):
            stop_epoch = epoch
            break
    best_epoch = stopper.best_step + 1
    assert stop_epoch is not None and stop_epoch - 1 > best_epoch, ref["validation_history"]  # the scenario

    stop = (stop_epoch - 1) * STEPS_PER_EPOCH
    assert _train(hub_server, config, [f"output_dir={tmp_path / 'first'}"], stop=stop + 1) == "interrupted"
    last = json.loads(hub.read(repo, "last-checkpoint/trainer_state.json"))
    best = json.loads(hub.read(repo, "best-checkpoint/trainer_state.json"))
    assert (last["global_step"], best["global_step"]) == (stop, best_epoch * STEPS_PER_EPOCH)
    assert last["best_model_checkpoint"] == f"checkpoint-{best_epoch * STEPS_PER_EPOCH}"
    # the repo's root holds the best weights so far, as the card's validation scores say
    root, best_weights = (
        load_file_bytes(hub, repo, "model.safetensors"),
        load_file_bytes(hub, repo, "best-checkpoint/model.safetensors"),
    )
    assert root.keys() == best_weights.keys() and all(torch.equal(root[k], best_weights[k]) for k in root)

    second = tmp_path / "second"
    metrics = _train(hub_server, config, [f"output_dir={second}", "resume_from=hub"])
    for key in ("global_steps", "epochs_run", "best_epoch"):
        assert metrics["training"][key] == ref["training"][key], key
    got, want = load_file(second / "model.safetensors"), load_file(reference / "model.safetensors")
    assert all(torch.equal(got[k], want[k]) for k in want)


def load_file_bytes(hub, repo: str, path: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load

    return load(hub.read(repo, path))
