"""`SurgeTrainingArguments`: a Python user of `SurgeTrainer` gets what `surgellm train` gets (batches, learning rates
of the parameter groups, class weights), the command line parses the new fields, and they survive serialisation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.utils.class_weight import compute_class_weight
from transformers import HfArgumentParser, TrainerCallback, TrainingArguments

from surgellm_hf import SurgeForSequenceClassification, SurgeProcessor, SurgeTrainingArguments, load_folder
from surgellm_hf.data import SurgeDataCollator, encode_split
from surgellm_hf.training import RunConfig, SurgeTrainer, load_run_config, train_run, training_arguments
from tests._helpers import QUICKSTART_DATA, write_run_config

ROWS = {"reviews": 40, "register": 12}  # unequal sizes, so temperature sampling moves batches between tasks
SETTINGS = {
    "task_sampling": "temperature",
    "temperature": 3.0,
    "module_lr_scale": 10.0,
    "class_weights": {"reviews": "balanced", "register": [1.0, 2.5]},
}


def _small_folder(root: Path) -> Path:
    """The quickstart tasks cut to `ROWS` training rows (8 validation and test rows each)."""
    for task, n in ROWS.items():
        (root / task).mkdir(parents=True)
        for split, rows in (("train", n), ("validation", 8), ("test", 8)):
            lines = (QUICKSTART_DATA / task / f"{split}.jsonl").read_text().splitlines(keepends=True)
            (root / task / f"{split}.jsonl").write_text("".join(lines[:rows]))
    return root


def _train_labels(folder: Path, task: str) -> list[int]:
    return [json.loads(line)["label"] for line in (folder / task / "train.jsonl").read_text().splitlines()]


def _adams_counts(sizes: list[int], temperature: float, total: int) -> list[int]:
    """Batches per task under temperature sampling, by brute force: ceil(n_t^(1/T) / d) for a divisor d whose counts
    fill the epoch (scanned from large to small, independent of the sampler's heap)."""
    weights = [n ** (1 / temperature) for n in sizes]
    for d in np.geomspace(max(weights), min(weights) / (4 * total), 200_000):
        counts = [math.ceil(w / d) for w in weights]
        if sum(counts) == total:
            return counts
    raise AssertionError("no divisor fills the epoch")


class _Capture(TrainerCallback):
    """What the Trainer of `surgellm train` trains with, seen at the start of training."""

    def on_train_begin(self, args, state, control, model=None, optimizer=None, train_dataloader=None, **kw):
        names = {id(p): n for n, p in model.named_parameters()}
        self.args = args
        # the scheduler has set lr to the warm-up's 0; initial_lr is the group's own rate
        self.lrs = {names[id(p)]: g["initial_lr"] for g in optimizer.param_groups for p in g["params"]}
        self.batches = train_dataloader.batch_sampler.batches()
        data = train_dataloader.dataset
        self.labels = (list(data["task_ids"]), list(data["labels"]))


def test_a_python_user_gets_what_surgellm_train_gets(tmp_path, tiny_bert_with_tokenizer):
    folder = _small_folder(tmp_path / "data")
    config = write_run_config(
        tmp_path,
        tiny_bert_with_tokenizer,
        data={"folder": str(folder), "max_rows": None},
        batch_size=8,
        **SETTINGS,
    )
    capture = _Capture()
    run = train_run(load_run_config(config), callbacks=[capture])

    # the Python route: the same data, processor and model, SurgeTrainingArguments, no run config
    processor = SurgeProcessor.from_pretrained(run)
    model = SurgeForSequenceClassification.from_pretrained(run)
    train = encode_split(load_folder(folder, tasks=list(ROWS)), processor, "train")
    args = SurgeTrainingArguments(
        output_dir=str(tmp_path / "python"),
        learning_rate=1e-3,
        per_device_train_batch_size=8,
        weight_decay=0.01,
        seed=0,
        use_cpu=True,
        report_to="none",
        **SETTINGS,
    )
    trainer = SurgeTrainer(
        model=model, args=args, train_dataset=train, data_collator=SurgeDataCollator(processor.tokenizer)
    )

    # the settings reached both Trainers through their arguments
    assert {k: getattr(capture.args, k) for k in SETTINGS} == SETTINGS
    assert (trainer.task_sampling, trainer.temperature, trainer.module_lr_scale) == ("temperature", 3.0, 10.0)

    # batches: the same epoch, task-homogeneous, each task's count the temperature rule's (brute force)
    batches = trainer.get_train_dataloader().batch_sampler.batches()
    assert batches == capture.batches
    task_ids = np.asarray(train["task_ids"])
    assert all(len(set(task_ids[b])) == 1 for b in batches)
    total = sum(math.ceil(n / 8) for n in ROWS.values())
    counts = [sum(task_ids[b[0]] == t for b in batches) for t in range(len(ROWS))]
    assert (
        counts == _adams_counts(list(ROWS.values()), 3.0, total) != [math.ceil(n / 8) for n in ROWS.values()]
    )

    # learning rates: the encoder at learning_rate, the SURGELLM modules and heads at 10x
    trainer.create_optimizer()
    names = {id(p): n for n, p in model.named_parameters()}
    lrs = {names[id(p)]: g["lr"] for g in trainer.optimizer.param_groups for p in g["params"]}
    expected = {
        n: 1e-3 if n.startswith("surge.encoder.") else 1e-2
        for n, p in model.named_parameters()
        if p.requires_grad
    }
    assert lrs == capture.lrs
    assert lrs.keys() == expected.keys() and all(lrs[n] == pytest.approx(v) for n, v in expected.items())

    # class weights: reviews balanced as scikit-learn computes it, register as given; task order reviews, register
    balanced = compute_class_weight(
        "balanced", classes=np.arange(2), y=np.array(_train_labels(folder, "reviews"))
    )
    torch.testing.assert_close(
        trainer.class_weights, torch.tensor([balanced.tolist(), [1.0, 2.5]], dtype=torch.float32)
    )
    saved = json.loads((run / "run_config.json").read_text())[
        "class_weights"
    ]  # what `surgellm train` resolved
    np.testing.assert_allclose(saved["reviews"], balanced)
    assert saved["register"] == [1.0, 2.5]
    assert capture.labels == (list(train["task_ids"]), list(train["labels"]))  # the labels both weighted from


def test_the_command_line_parses_the_new_fields_and_serialisation_keeps_them(tmp_path):
    parser = HfArgumentParser(SurgeTrainingArguments)
    (args,) = parser.parse_args_into_dataclasses(
        [
            *("--output_dir", str(tmp_path), "--report_to", "none", "--use_cpu"),
            *("--task_sampling", "temperature", "--temperature", "3", "--module_lr_scale", "10"),
            *("--class_weights", '{"reviews": "balanced", "register": [1.0, 2.5]}'),
        ]
    )
    assert {k: getattr(args, k) for k in SETTINGS} == SETTINGS
    assert isinstance(args.temperature, float)
    saved = json.loads(args.to_json_string())
    assert {k: saved[k] for k in SETTINGS} == SETTINGS == {k: args.to_dict()[k] for k in SETTINGS}
    (again,) = parser.parse_dict(saved)
    assert {k: getattr(again, k) for k in SETTINGS} == SETTINGS
    (balanced,) = parser.parse_args_into_dataclasses(
        ["--output_dir", str(tmp_path), "--class_weights", "balanced"]
    )
    assert balanced.class_weights == "balanced" and balanced.task_sampling == "proportional"
    with pytest.raises(SystemExit):
        parser.parse_args_into_dataclasses(["--output_dir", str(tmp_path), "--task_sampling", "uniform"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"task_sampling": "uniform"},
            "`task_sampling` must be one of ['proportional', 'equal', 'temperature']",
        ),
        ({"temperature": 0}, "`temperature` must be a positive number, got 0"),
        ({"module_lr_scale": float("nan")}, "`module_lr_scale` must be a finite number > 0, got nan"),
        ({"class_weights": "inverse"}, "`class_weights` must be null, 'balanced' or {task:"),
        (
            {"class_weights": {"reviews": [1, -2]}},
            "class_weights of task 'reviews' must be finite numbers > 0",
        ),
    ],
)
def test_bad_values_are_refused_as_the_run_config_refuses_them(tmp_path, kwargs, message):
    with pytest.raises(ValueError) as err:
        SurgeTrainingArguments(output_dir=str(tmp_path), report_to="none", **kwargs)
    assert str(err.value).startswith(message)


def test_training_arguments_map_the_run_config(tmp_path):
    cfg = RunConfig(data={"folder": "x"}, output_dir=str(tmp_path / "{variant}"), **SETTINGS)
    args = training_arguments(cfg, num_tasks=2)
    assert isinstance(args, SurgeTrainingArguments)
    assert {k: getattr(args, k) for k in SETTINGS} == SETTINGS
    frozen = RunConfig(data={"folder": "x"}, freeze_encoder=True, prefix_style="text")
    assert training_arguments(frozen, num_tasks=2).module_lr_scale == 100.0  # the resolved default
    plain = training_arguments(RunConfig(data={"folder": "x"}), num_tasks=2)
    assert (plain.task_sampling, plain.module_lr_scale, plain.class_weights) == ("proportional", 1.0, None)


def _model(tiny_bert_with_tokenizer) -> SurgeForSequenceClassification:
    return SurgeForSequenceClassification.from_encoder_pretrained(
        str(tiny_bert_with_tokenizer), tasks={"reviews": 2, "register": 2}, norm="iwn", num_features=16
    )


def test_plain_training_arguments_and_the_old_keywords_still_work(tmp_path, tiny_bert_with_tokenizer):
    model = _model(tiny_bert_with_tokenizer)
    plain = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    trainer = SurgeTrainer(model=model, args=plain)
    assert (trainer.task_sampling, trainer.module_lr_scale, trainer.class_weights) == (
        "proportional",
        1.0,
        None,
    )
    table = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    with pytest.warns(FutureWarning, match="set them on SurgeTrainingArguments"):
        old = SurgeTrainer(
            model=model, args=plain, module_lr_scale=5.0, task_sampling="equal", class_weights=table
        )
    assert (old.task_sampling, old.module_lr_scale) == ("equal", 5.0)
    torch.testing.assert_close(old.class_weights, table)


def test_balanced_weights_need_the_training_data_and_weights_must_fit_the_tasks(
    tmp_path, tiny_bert_with_tokenizer
):
    model = _model(tiny_bert_with_tokenizer)
    args = SurgeTrainingArguments(
        output_dir=str(tmp_path), report_to="none", use_cpu=True, class_weights="balanced"
    )
    with pytest.raises(ValueError, match="pass SurgeTrainer a train_dataset"):
        SurgeTrainer(model=model, args=args)
    wrong = SurgeTrainingArguments(
        output_dir=str(tmp_path), report_to="none", use_cpu=True, class_weights={"register": [1.0, 2.0, 3.0]}
    )
    with pytest.raises(ValueError, match="class_weights of task 'register' has 3 value"):
        SurgeTrainer(model=model, args=wrong)
