"""The `surgellm` command line: train, evaluate, calibrate, predict, export, serve, compare, extract-lexicon, tune, push.

Errors print one readable line to stderr and exit non-zero (2 for bad input, 1 otherwise); set
SURGELLM_DEBUG=1 to see the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .encoders import BUNDLED_ENCODER
from .training.run_lock import RunFolderBusyError, refuse_if_in_use


class CLIError(Exception):
    """A user-facing error: printed as one line."""


def _cmd_train(args: argparse.Namespace) -> int:
    from .training import check_run_dir, load_run_config, resolve_precision
    from .training.tracking import check_report_to
    from .workflow import train_run

    sweep = [
        [
            *args.overrides,
            *([f"variant={v}"] if v else []),
            *([f"seed={s}"] if s is not None else []),
            *(["overwrite=true"] if args.overwrite else []),
        ]
        for v in (args.variants or [None])
        for s in (args.seeds or [None])
    ]
    configs = [load_run_config(args.config, overrides) for overrides in sweep]  # every config checked first
    folders: dict[Path, str] = {}
    for cfg, overrides in zip(configs, sweep):
        if cfg.run_dir in folders:
            raise CLIError(
                f"two runs of the sweep ({folders[cfg.run_dir]} and {' '.join(overrides)}) would share the run "
                f"folder {cfg.run_dir}; put {{variant}} and {{seed}} in output_dir"
            )
        folders[cfg.run_dir] = " ".join(overrides) or "the config"
    statuses = []
    for cfg in configs:  # every run folder checked before any run trains
        resolve_precision(cfg.mixed_precision)
        check_report_to(cfg.report_to)
        refuse_if_in_use(cfg.run_dir)  # before its content is read: another process may be writing it
        statuses.append(check_run_dir(cfg))
    for cfg, status in zip(configs, statuses):
        run_dir = train_run(cfg)
        if int(os.environ.get("RANK", "0")) == 0:
            done = "Run already finished (nothing trained)" if status == "finished" else "Run finished"
            print(f"{done}. Report: {run_dir / 'report.md'}  ({_run_folder_summary(run_dir)})")
    _end_process_group()
    return 0


def _end_process_group() -> None:
    """Destroy the process group a launcher started (as `Accelerator.end_training` does), so the backend's threads
    end before interpreter exit instead of in whatever order its teardown reaches them."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.0f} MB" if n_bytes >= 1e6 else f"{n_bytes / 1e3:.0f} kB"


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def _run_folder_summary(run_dir: Path) -> str:
    """What a finished run folder keeps: its size, and whether its checkpoints are kept (and how large)."""
    checkpoints = run_dir / "checkpoints"
    kept = _folder_bytes(checkpoints) if checkpoints.is_dir() else 0
    total = _folder_bytes(run_dir)
    where = f"model + processor: {run_dir}, {_size(total - kept)}"
    if checkpoints.is_dir():
        return f"{where}; checkpoints kept: {_size(kept)}"
    return f"{where}; no checkpoints kept"


def _run_data_section(run_dir: Path) -> dict:
    metrics = run_dir / "metrics.json"
    if not metrics.is_file():
        raise CLIError(f"{run_dir} has no metrics.json; pass --data to say which data to score")
    data = json.loads(metrics.read_text()).get("run_config", {}).get("data")
    if not data:
        raise CLIError(f"{metrics} records no data section; pass --data")
    return data


def _data_section(folder: str | None, run_dir: Path, model, processor, split: str) -> dict:
    """The data a command scores: `folder` laid out as <task>/<split> (only `split` required), else the run's own
    data section (metrics.json)."""
    if not folder:
        return _run_data_section(run_dir)
    root = Path(folder)
    tasks = [t for t in model.config.task_names if (root / t).is_dir()]
    if not tasks:
        raise CLIError(f"no folder for any of the model's tasks {model.config.task_names} under {root}")
    return {
        "folder": folder,
        "tasks": tasks,
        "splits": [split],
        "required": [split],
        "label_names": {t: model.config.label_names(t) for t in tasks},  # the model knows its classes
        "problem_types": {t: model.config.task_problem_types[t] for t in tasks},
        # sentence-pair tasks read their second text from a `text_pair` column
        "text_pair_column": {t: "text_pair" for t in processor.pair_tasks if t in tasks},
    }


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .data import SurgeDataCollator, encode_split, load_run_data
    from .evaluation import evaluate_predictions, predict_split, summarize_tasks
    from .inference import load_run_model

    run_dir = Path(args.run_dir)
    model, processor = load_run_model(run_dir)
    # only the scored split must exist: a held-back test folder needs no train files
    data = _data_section(args.data, run_dir, model, processor, args.split)
    task_data = load_run_data(data)
    unknown = [t for t in task_data.task_names if t not in model.config.tasks]
    if unknown:
        raise CLIError(
            f"data has task(s) {unknown} the model was not trained on; model tasks: {model.config.task_names}"
        )
    present = [t for t in task_data.task_names if args.split in task_data[t]]
    if not present:
        raise CLIError(f"no task of the data has a {args.split!r} split")
    ds = encode_split(task_data, processor, args.split)
    pred = predict_split(model, ds, SurgeDataCollator(processor.tokenizer), args.batch_size)
    config = model.config
    metrics, _ = evaluate_predictions(
        pred,
        config.tasks,
        None,
        config.task_problem_types,
        config.task_thresholds,
        temperatures=config.task_temperatures,
    )
    result = {"split": args.split, "tasks": metrics, **summarize_tasks(metrics)}
    text = json.dumps(result, indent=2)
    if args.output:
        from .atomic_io import atomic_write_text

        atomic_write_text(args.output, text + "\n")
    print(text)
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from .calibration import calibrate_run
    from .inference import load_run_model

    run_dir = Path(args.run_dir)
    refuse_if_in_use(run_dir)  # a run still training there would overwrite the config
    model, processor = load_run_model(run_dir)
    data = _data_section(args.data, run_dir, model, processor, args.split)
    section = calibrate_run(run_dir, data, args.split, args.batch_size, loaded=(model, processor))
    for task, temperature in section["temperatures"].items():
        scores = section["tasks"][task][args.split]
        line = (
            f"{task}: temperature {temperature:.3f}; ECE {scores['before']['ece']:.4f} -> "
            f"{scores['after']['ece']:.4f}, Brier {scores['before']['brier']:.4f} -> {scores['after']['brier']:.4f}"
        )
        if task in section["thresholds"]:
            line += "; thresholds " + ", ".join(f"{v:.3f}" for v in section["thresholds"][task])
        print(line + f" (on {args.split})")
    print(f"Calibrated {run_dir}: stored in its config; metrics.json and report.md updated")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from .evaluation import compare_runs, gate_values_from_runs, load_run, render_markdown_table, write_report

    records = [load_run(p) for p in args.run_dirs]
    split = args.split
    if split is None:
        split = "test" if all(all("test" in s for s in r.tasks.values()) for r in records) else "validation"
    variants = {r.variant for r in records}
    baseline = args.baseline if args.baseline in variants else None
    if args.baseline and args.baseline != "baseline" and baseline is None:
        raise CLIError(
            f"baseline variant {args.baseline!r} is not among the runs' variants {sorted(variants)}"
        )
    comparison = compare_runs(records, baseline=baseline, split=split, n_resamples=args.n_resamples)
    gates = gate_values_from_runs(records, split)
    path = write_report(comparison, args.output, gates or None, title="SURGELLM comparison")
    print(render_markdown_table(comparison))
    print(f"Report: {path}")
    return 0


def _cmd_extract(args: argparse.Namespace) -> int:
    from .data import load_run_data
    from .encoders import resolve_encoder
    from .training import extract_lexicon_from_data

    task_data = load_run_data({"folder": args.data, **({"tasks": args.tasks} if args.tasks else {})})
    lexicon = extract_lexicon_from_data(
        task_data, resolve_encoder(args.encoder), seed=args.seed, k=args.k, top_n=args.top_n
    )
    lexicon.to_json(args.output)
    print(
        f"Wrote {lexicon.n_groups} groups ({sum(len(v) for v in lexicon.groups.values())} entries) to {args.output}"
    )
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:
    try:
        import optuna
    except ImportError:
        raise CLIError('surgellm tune needs Optuna: pip install "surgellm_hf[tune]"') from None
    from .tune import run_study

    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=args.startup_trials)
        if args.pruner == "median"
        else optuna.pruners.NopPruner()
    )
    result = run_study(
        args.config,
        args.space,
        args.trials,
        overrides=args.overrides,
        study_name=args.study_name,
        storage=args.storage,
        output=args.output,
        pruner=pruner,
    )
    states = [t.state.name for t in result.study.trials]
    counts = ", ".join(f"{states.count(s)} {s.lower()}" for s in dict.fromkeys(states))
    best = (
        f"best: trial {result.study.best_trial.number} (validation avg_macro_f1 {result.study.best_value:.4f}), "
        f"{result.best_config}"
        if result.best_config
        else "no trial completed"
    )
    print(
        f"Study {result.study.study_name!r}: {len(states)} trials ({counts}); {best}; table: {result.table}"
    )
    return 0


def _cmd_push(args: argparse.Namespace) -> int:
    from .hub import publish_run

    url = publish_run(args.run_dir, args.repo_id, private=args.private, adapter_only=args.adapter_only)
    print(f"Pushed {args.run_dir} to {url}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `surgellm`."""
    from .serving.cli import add_export_command, add_predict_arguments, add_serve_command, cmd_predict

    parser = argparse.ArgumentParser(prog="surgellm", description="SURGELLM on Hugging Face transformers.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train one run from a YAML config")
    p.add_argument("--config", required=True, help="run config YAML (see examples/quickstart.yaml)")
    p.add_argument(
        "overrides",
        nargs="*",
        help="key=value overrides, e.g. seed=1 variant=baseline data.max_rows.train=200",
    )
    p.add_argument("--seeds", nargs="+", type=int, help="train one run per seed, e.g. --seeds 0 1 2")
    p.add_argument(
        "--variants", nargs="+", help="train one run per variant, e.g. --variants baseline G FULL IWN"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="delete what a previous run wrote in the run folder and start fresh (files no run writes are kept; "
        "without it, a folder holding a run of another configuration is refused)",
    )
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="score a saved run on a data folder")
    p.add_argument("run_dir")
    p.add_argument("--data", help="folder laid out as <task>/<split>.jsonl (default: the run's own data)")
    p.add_argument("--split", default="test")
    p.add_argument("--output", help="also write the metrics JSON here")
    p.add_argument("--batch-size", type=int, default=64)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser(
        "calibrate",
        help="fit a temperature per classification task and a threshold per multi-label label on a split",
        description="Temperature scaling by NLL per classification task, and per-label thresholds maximising each "
        "label's F1 for multi-label tasks, fitted on --split of the run's data; stored in the run's config (used "
        "by predict, export, serve and the pipeline), with ECE and Brier before/after in metrics.json and "
        "report.md.",
    )
    p.add_argument("run_dir", help="run folder (full, frozen-encoder, LoRA run or a `save_adapter` folder)")
    p.add_argument("--split", default="validation", help="split to fit on (default: validation)")
    p.add_argument("--data", help="folder laid out as <task>/<split>.jsonl (default: the run's own data)")
    p.add_argument("--batch-size", type=int, default=64)
    p.set_defaults(func=_cmd_calibrate)

    p = sub.add_parser(
        "predict",
        help="classify texts (JSONL/CSV/TSV/text, streamed) with a run folder or an ONNX export",
    )
    add_predict_arguments(p)
    p.set_defaults(func=cmd_predict)

    add_export_command(sub)
    add_serve_command(sub)

    p = sub.add_parser("compare", help="compare runs or seeds: mean ± SD, Welch + BH, bootstrap CIs, plots")
    p.add_argument("run_dirs", nargs="+")
    p.add_argument("--baseline", default="baseline", help="variant the others are tested against")
    p.add_argument("--split", default=None, help="default: test where every run has it, else validation")
    p.add_argument("--output", default="comparison", help="folder for report.md and the plots")
    p.add_argument("--n-resamples", type=int, default=2000)
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser(
        "extract-lexicon", help="extract a lexicon from training data (docs/method.md#lexicon-extraction)"
    )
    p.add_argument("--data", required=True, help="folder laid out as <task>/train.jsonl")
    p.add_argument("--tasks", nargs="*", help="task folders to use (default: all)")
    p.add_argument("--output", required=True, help="lexicon JSON to write")
    p.add_argument("--encoder", default=BUNDLED_ENCODER)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--top-n", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_extract)

    p = sub.add_parser(
        "tune", help="search a run config's hyperparameters with Optuna (each trial a run folder)"
    )
    p.add_argument("--config", required=True, help="the base run config YAML")
    p.add_argument(
        "--space", required=True, help="search-space YAML: run-config keys and their ranges or choices"
    )
    p.add_argument(
        "--trials",
        type=int,
        required=True,
        help="finished trials the study should hold (a resumed study runs the rest)",
    )
    p.add_argument("--study-name", help="default: the config file's name")
    p.add_argument(
        "--storage", help="Optuna storage URL, e.g. sqlite:///tune.db (default: tune.db in the output folder)"
    )
    p.add_argument("--output", help="folder of the studies (default: the base run folder's path + -tune)")
    p.add_argument(
        "--pruner",
        choices=["median", "none"],
        default="median",
        help="median: stop a trial whose epoch score is below the median of earlier trials' at that epoch",
    )
    p.add_argument("--startup-trials", type=int, default=5, help="trials the median pruner waits for")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the base config")
    p.set_defaults(func=_cmd_tune)

    p = sub.add_parser("push", help="publish a run folder (model, processor, lexicon, card) to the Hub")
    p.add_argument("run_dir")
    p.add_argument("repo_id")
    p.add_argument("--private", action="store_true")
    p.add_argument(
        "--adapter-only", action="store_true", help="push only the adapter weights (frozen-encoder runs)"
    )
    p.set_defaults(func=_cmd_push)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run a subcommand; user errors become one line on stderr and a non-zero exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "train":  # progress bars belong to training; elsewhere they only clutter the output
        import datasets
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        datasets.disable_progress_bars()
    try:
        return args.func(args)
    except (
        CLIError,
        RunFolderBusyError,
        ValueError,
        TypeError,
        KeyError,
        FileNotFoundError,
        NotADirectoryError,
        PermissionError,
        ImportError,
    ) as err:
        if os.environ.get("SURGELLM_DEBUG"):
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"surgellm {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"surgellm {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the CLI promises one line, never a traceback
        if os.environ.get("SURGELLM_DEBUG"):
            raise
        print(
            f"surgellm {args.command}: error: {type(err).__name__}: {err} (SURGELLM_DEBUG=1 shows details)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
