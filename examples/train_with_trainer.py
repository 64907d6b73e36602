"""SURGELLM with the plain Python API and `transformers.Trainer`, without the `surgellm` CLI.

python examples/train_with_trainer.py [--encoder PATH_OR_HUB_ID] [--data FOLDER] [--out DIR] [--epochs N]

Defaults: the bundled all-MiniLM-L6-v2 and the quickstart data next to this file. Steps: load tasks, build the
processor (curated lexicon, compact prefix) and the model, encode with `datasets.map`, fit the IWN statistics on
the training features, train with task-balanced batches and early stopping, save model + processor together.
`SurgeTrainingArguments` carries what `surgellm train` reads from a run config besides the Trainer's own arguments:
`task_sampling`, `temperature`, `module_lr_scale` and `class_weights`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from surgellm_hf import (
    Lexicon,
    SurgeForSequenceClassification,
    SurgeProcessor,
    SurgeTrainingArguments,
    load_folder,
)
from surgellm_hf.data import SurgeDataCollator, encode_split
from surgellm_hf.encoders import resolve_encoder
from surgellm_hf.training import (
    SurgeEarlyStoppingCallback,
    SurgeTrainer,
    build_compute_metrics,
    early_stopping_arguments,
)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="bundled:all-MiniLM-L6-v2")
    parser.add_argument("--data", default=str(Path(__file__).parent / "data" / "quickstart"))
    parser.add_argument("--out", default="runs/python-api")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--max-rows", type=int, default=None, help="rows per split and task (for a quick try)"
    )
    args = parser.parse_args(argv)

    encoder = resolve_encoder(args.encoder)
    data = load_folder(args.data)
    if args.max_rows:
        data = data.subsample(args.max_rows)
    lexicon = Lexicon.curated()
    processor = SurgeProcessor.from_encoder_pretrained(
        encoder, lexicon=lexicon, tasks=data.task_names, prefix="tokens"
    )
    model = SurgeForSequenceClassification.from_encoder_pretrained(
        encoder,
        tasks=data.tasks_config(),
        norm="iwn",
        num_features=lexicon.num_features,
        feature_names=lexicon.feature_names,
    )
    processor.prepare_model(model)  # room for the compact prefix's added tokens

    train = encode_split(
        data, processor, "train"
    )  # datasets.map(processor, batched=True) per task, concatenated
    validation = encode_split(data, processor, "validation")
    model.fit_feature_normalizer(np.asarray(train["lexical_features"]), train["labels"], train["task_ids"])

    training_args = SurgeTrainingArguments(
        output_dir=str(Path(args.out) / "checkpoints"),
        num_train_epochs=args.epochs,
        learning_rate=1e-4,
        per_device_train_batch_size=32,
        warmup_steps=0.06,
        weight_decay=0.01,
        label_names=["labels", "task_ids"],  # task ids reach compute_metrics with the labels
        ddp_find_unused_parameters=True,
        report_to=[],
        save_total_limit=2,
        task_sampling="proportional",  # or equal, or temperature (with temperature=T)
        module_lr_scale=1.0,  # the SURGELLM modules and heads at this multiple of learning_rate
        class_weights=None,  # or "balanced", or {task: [one weight per label]}
        **early_stopping_arguments("avg_macro_f1"),
    )
    trainer = SurgeTrainer(  # task-homogeneous, task-balanced training batches
        model=model,
        args=training_args,
        train_dataset=train,
        eval_dataset=validation,
        data_collator=SurgeDataCollator(processor.tokenizer),
        compute_metrics=build_compute_metrics(model.config.tasks),
        callbacks=[SurgeEarlyStoppingCallback(patience=2)],
    )
    trainer.train()
    print(trainer.evaluate())
    out = Path(args.out)
    trainer.model.save_pretrained(out)
    processor.save_pretrained(out)
    print(f"Saved model and processor to {out}")
    return out


if __name__ == "__main__":
    main()
