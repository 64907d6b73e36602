"""Quality benchmark (issue 6.1): every variant of docs/method.md#variants over seeds on a four-task data folder.

Trains one run per (variant label, seed) with `train_run(RunConfig(...))` and the bundled all-MiniLM-L6-v2, into
`<out>/runs/<label>-seed<k>` (a finished run is reused only when its saved run_config.json has the requested settings,
so an interrupted benchmark resumes; a run of other settings is refused, or retrained with --overwrite), then
compares the labels with `evaluation.compare_runs` (mean ± SD over seeds, bootstrap CIs, Welch + Benjamini–Hochberg
against the baseline) and writes `<out>/results.json`, `<out>/results.md` and `<out>/task_f1_by_variant.png`.

Variant labels: baseline, S, G, FULL, IWN (the paper's rows, curated lexicon) and IWN-random / IWN-extracted (IWN
with the random-lexicon control / the lexicon extracted from the training split). A label is `<variant>` followed by
`-<part>`s that set one run setting each, so one --out holds the settings side by side: a lexicon (curated,
extracted, random), a prefix style (text, tokens, soft, or soft1 / soft2 for a soft prefix of 1 / 2 tokens),
`long<K>` (long_text with K windows; `long` alone: 4) and `x<scale>` (module_lr_scale), e.g. IWN-soft-long4,
IWN-tokens, IWN-x10. A part overrides the flag (--prefix-style, --long-text, --module-lr-scale) for that label.

Select on one split, report on another: --selection-split F carves a stratified slice F of each task's training
rows (seed --selection-seed) for early stopping; validation is then only reported. --pairs A:B ... adds Welch
differences with their CIs between labels (e.g. prefix styles), BH-corrected over all pairs.

    python benchmarks/quality.py [--data ../shared/data] [--out DIR] [--variants ...] [--seeds 0 1 2]
        [--max-train-rows N] [--max-eval-rows N] [--max-length L] [--epoch-scale X | --epochs N] [--threads 2]
        [--selection-split F [--selection-seed S]] [--long-text K --long-text-stride S --long-text-pool P]
        [--prefix-style text|tokens|soft --soft-prefix-length k] [--pairs A:B ...] [--overwrite]
    python benchmarks/quality.py --aggregate-only --out DIR      # tables and plot from the runs already there
    python benchmarks/quality.py --score RUN_DIR --data FOLDER [--split test] [--output scores.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import re
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data"
DEFAULT_LABELS = ("baseline", "G", "FULL", "IWN", "IWN-random", "IWN-extracted")
REPORTED_METRICS = ("macro_f1", "accuracy", "roc_auc")
DETAIL_METRIC = "macro_f1"
SINGLE_PREFIX = "single-"
FROZEN_LABELS = ("baseline", "G", "S", "FULL", "IWN", "IWN-random", "IWN-extracted")


PREFIX_PARTS = {"text": ("text", None), "tokens": ("tokens", None), "soft": ("soft", None),
                "soft1": ("soft", 1), "soft2": ("soft", 2)}  # fmt: skip
DEFAULT_LONG_CHUNKS = 4


def label_settings(label: str) -> dict[str, Any]:
    """What a label sets: variant and lexicon always; prefix_style, soft_prefix_length, long_chunks and
    module_lr_scale where a part names them (see the module docstring). `IWN-soft-long4` -> {variant: IWN, lexicon:
    curated, prefix_style: soft, long_chunks: 4}."""
    from surgellm_hf.training import LEXICON_CHOICES, get_variant

    if label.startswith(SINGLE_PREFIX):  # single-<task>: the plain single-task reference (baseline, one task)
        return {"variant": "baseline", "lexicon": "curated"}
    name, *parts = label.split("-")
    out: dict[str, Any] = {"variant": get_variant(name).name, "lexicon": "curated"}
    seen: set[str] = set()
    for part in parts:
        if part in LEXICON_CHOICES:
            kind, values = "lexicon", {"lexicon": part}
        elif part in PREFIX_PARTS:
            style, k = PREFIX_PARTS[part]
            kind, values = "prefix", {"prefix_style": style, **({"soft_prefix_length": k} if k else {})}
        elif m := re.fullmatch(r"long(\d*)", part):
            kind, values = "long", {"long_chunks": int(m.group(1) or DEFAULT_LONG_CHUNKS)}
            if values["long_chunks"] < 1:
                raise ValueError(f"label {label!r}: long<K> needs K >= 1, got {part!r}")
        elif m := re.fullmatch(r"x(\d+(?:\.\d+)?)", part):
            kind, values = "lr", {"module_lr_scale": float(m.group(1))}
        else:
            raise ValueError(
                f"label {label!r}: part {part!r} is none of a lexicon {LEXICON_CHOICES}, a prefix style "
                f"{tuple(PREFIX_PARTS)}, long<K> or x<module lr scale>"
            )
        if kind in seen:
            raise ValueError(f"label {label!r} sets its {kind} twice")
        seen.add(kind)
        out.update(values)
    return out


def parse_label(label: str) -> tuple[str, str]:
    """`IWN-random` -> ("IWN", "random"); a plain variant name uses the curated lexicon."""
    settings = label_settings(label)
    return settings["variant"], settings["lexicon"]


def resolved_settings(label: str, args: argparse.Namespace) -> dict[str, Any]:
    """The settings a label's runs train with: its own parts, else the flags (prefix style, soft prefix length,
    long_text, module learning-rate scale)."""
    own = label_settings(label)
    chunks = own.get("long_chunks", args.long_text)
    long_text = (
        {"max_chunks": chunks, "stride": args.long_text_stride, "pool": args.long_text_pool}
        if chunks > 1
        else None
    )
    return {
        "prefix_style": own.get("prefix_style", args.prefix_style),
        "soft_prefix_length": own.get("soft_prefix_length", args.soft_prefix_length),
        "long_text": long_text,
        "module_lr_scale": own.get("module_lr_scale", args.module_lr_scale),
    }


def selection_split(args: argparse.Namespace) -> dict[str, Any] | None:
    """RunConfig.selection_split of every run: {fraction, seed} with --selection-split, else None."""
    if args.selection_split is None:
        return None
    return {"fraction": args.selection_split, "seed": args.selection_seed}


def variant_epochs(variant: str, args: argparse.Namespace) -> tuple[int, bool]:
    """Epoch budget of one run and whether it is the equal-budget control."""
    from surgellm_hf.training import get_variant

    if args.epochs is not None:
        return args.epochs, True
    return max(
        1, math.floor(get_variant(variant).epochs * args.epoch_scale + 0.5)
    ), False  # half up, not to even


def variant_lr(variant: str, args: argparse.Namespace) -> float:
    """Learning rate of one run: --learning-rate, else the paper's per-variant rate times --lr-scale."""
    from surgellm_hf.training import get_variant

    if args.learning_rate is not None:
        return args.learning_rate
    return get_variant(variant).learning_rate * args.lr_scale


def run_config(label: str, seed: int, args: argparse.Namespace):
    """The RunConfig of one benchmark run."""
    from surgellm_hf.training import RunConfig

    variant, lexicon = parse_label(label)
    epochs, equal = variant_epochs(variant, args)
    max_rows = {"train": args.max_train_rows, "validation": args.max_eval_rows, "test": args.max_eval_rows}
    data: dict[str, Any] = {"folder": str(args.data), "max_rows": {k: v for k, v in max_rows.items() if v}}
    if label.startswith(SINGLE_PREFIX):
        data["tasks"] = [label[len(SINGLE_PREFIX) :]]
    elif args.tasks:
        data["tasks"] = list(args.tasks)
    extra: dict[str, Any] = {}
    if args.protocol == "frozen":
        lexicon = getattr(args, "lexicon_files", {}).get(lexicon, lexicon)
        extra = {
            "freeze_encoder": True,
            "encoder_cache_dir": str(args.encoder_cache_dir),
            "patience": args.patience,
        }
    settings = resolved_settings(label, args)
    if settings["module_lr_scale"] is not None:
        extra["module_lr_scale"] = settings["module_lr_scale"]
    if settings["long_text"] is not None:
        extra["long_text"] = settings["long_text"]
    if settings["prefix_style"] == "soft":
        extra["soft_prefix_length"] = settings["soft_prefix_length"]
    if args.selection_split is not None:
        extra["selection_split"] = selection_split(args)
    if args.task_sampling != "proportional":
        extra["task_sampling"] = args.task_sampling
        extra["temperature"] = args.temperature
    return RunConfig(
        data=data,
        **extra,
        output_dir=str(args.out / "runs" / f"{label}-seed{seed}"),
        encoder=args.encoder,
        variant=variant,
        epochs=epochs,
        equal_budget=equal,
        learning_rate=variant_lr(variant, args),
        lexicon=lexicon,
        prefix_style=settings["prefix_style"],
        seed=seed,
        batch_size=args.batch_size,
        max_length=args.max_length,
        eval_batch_size=args.eval_batch_size,
        logging_steps=50,
        disable_tqdm=True,
    )


def plan_runs(args: argparse.Namespace) -> list[tuple[str, Any, str]]:
    """(label, RunConfig, status) of every requested run, checked before any trains: a finished run is reused only
    when its saved settings equal the requested ones; another configuration's run is refused (--overwrite: retrained)."""
    from surgellm_hf.training import check_run_dir

    plan, refused = [], []
    for seed in args.seeds:  # seeds outermost so a cut-short benchmark has every label
        for label in args.variants:
            cfg = run_config(label, seed, args)
            try:
                status = check_run_dir(cfg)
            except ValueError as err:
                if not args.overwrite:
                    refused.append(str(err))
                    continue
                cfg.overwrite, status = True, "overwrite"
            plan.append((label, cfg, status))
    if refused:
        raise SystemExit(
            "[quality] refused, nothing trained: "
            + " | ".join(refused)
            + " (--overwrite retrains these runs; or choose another --out)"
        )
    return plan


def train_all(args: argparse.Namespace, plan: list[tuple[str, Any, str]]) -> None:
    """Train every planned run that is not finished with the requested settings."""
    from surgellm_hf.training import train_run

    for label, cfg, status in plan:
        done = cfg.run_dir / "metrics.json"
        if status == "finished":
            print(f"[quality] reuse {cfg.run_dir.name}: finished with the requested settings", flush=True)
            continue
        print(f"[quality] train {cfg.run_dir.name}: {cfg.num_epochs} epochs, lr {cfg.lr}", flush=True)
        start = time.perf_counter()
        run_dir = train_run(cfg)
        wall = time.perf_counter() - start
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # only needed to resume a broken run
        if args.drop_models:
            for f in run_dir.glob("*.safetensors"):
                f.unlink()
        record = json.loads(done.read_text())
        record["benchmark"] = {"label": label, "wall_s": round(wall, 1)}
        done.write_text(json.dumps(record, indent=2) + "\n")
        print(
            f"[quality] done {run_dir.name} in {wall:.0f} s: validation avg macro-F1 "
            f"{record['avg_macro_f1'].get('validation')}",
            flush=True,
        )


def _same_path(a: Any, b: Any) -> bool:
    return a is not None and b is not None and Path(a).resolve() == Path(b).resolve()


def _upgrade_budget(old: dict[str, Any]) -> dict[str, Any]:
    """A budget.json written before `equal_budget` and `labels` existed, in today's shape."""
    old = dict(old)
    if "equal_budget" not in old:
        old["equal_budget"] = isinstance(
            old.get("epochs"), str
        )  # it read "N for every variant (equal budget)"
        if old["equal_budget"]:
            n = int(str(old["epochs"]).split()[0])
            old["epochs"] = dict.fromkeys(old.get("learning_rate", {}), n)
    old.setdefault("labels", list(old.get("learning_rate", {})))
    old.setdefault("task_sampling", "proportional")
    old.setdefault("selection_split", None)  # written before these settings existed: they were off
    old.setdefault("long_text", long_text_default(1, 0, "mean"))
    old.setdefault("soft_prefix_length", 2)
    return old


def long_text_default(chunks: int, stride: int, pool: str) -> dict[str, Any]:
    """budget.json's folder-wide long_text flags (a label's long<K> part overrides max_chunks)."""
    return {"max_chunks": chunks, "stride": stride, "pool": pool}


FOLDER_SETTINGS = (
    "data",
    "encoder",
    "max_train_rows_per_task",
    "max_eval_rows_per_task",
    "max_length",
    "batch_size",
    "prefix_style",
    "equal_budget",
    "task_sampling",
    "selection_split",
    "long_text",
    "soft_prefix_length",
)
"""budget.json keys that hold for every run under one --out: a different value needs another --out."""


def merge_budget(old: dict[str, Any] | None, new: dict[str, Any], overwrite: bool = False) -> dict[str, Any]:
    """budget.json for --out: `new` when there is none; else the old one extended by the new labels and seeds.

    Raises SystemExit naming the keys when a folder-wide setting differs, or a label's epochs / learning rate
    (allowed with `overwrite`: its runs are retrained), so a control run into an existing --out can never
    relabel the runs already there.
    """
    if old is None:
        return new
    old, new = _upgrade_budget(old), _upgrade_budget(new)  # keys a budget lacks hold their "off" value
    diffs = [
        f"{k}: {old.get(k)!r} there, {new.get(k)!r} now"
        for k in FOLDER_SETTINGS
        if (_same_path(old.get(k), new.get(k)) if k == "data" else old.get(k) == new.get(k)) is False
    ]
    for key in ("epochs", "learning_rate", "label_settings"):
        before = old.get(key) if isinstance(old.get(key), dict) and not overwrite else {}
        diffs += [
            f"{key} of {lab}: {before[lab]!r} there, {value!r} now"
            for lab, value in new.get(key, {}).items()
            if lab in before and before[lab] != value
        ]
    if diffs:
        raise SystemExit(
            "[quality] the --out folder holds runs of other settings (budget.json: "
            + "; ".join(diffs)
            + "); choose another --out"
            + (
                ""
                if overwrite
                else " (--overwrite retrains a label's runs at new epochs / learning rate / settings)"
            )
        )
    merged = {
        **old,
        "command": new["command"],
        "machine": new["machine"],
        "torch_threads": new["torch_threads"],
    }
    merged["labels"] = list(dict.fromkeys([*old.get("labels", []), *new["labels"]]))
    merged["seeds"] = list(dict.fromkeys([*old.get("seeds", []), *new["seeds"]]))
    for key in ("epochs", "learning_rate", "label_settings"):
        merged[key] = {**old.get(key, {}), **new.get(key, {})}
    return merged


def collect_runs(out: Path, labels: list[str] | None) -> dict[str, list[Any]]:
    """Finished runs under `<out>/runs`, grouped by benchmark label (in the requested order)."""
    from surgellm_hf.evaluation import load_run

    grouped: dict[str, list[Any]] = {}
    for metrics in sorted((out / "runs").glob("*/metrics.json")):
        record = load_run(metrics.parent)
        label = record.extra.get("benchmark", {}).get("label") or metrics.parent.name.rpartition("-seed")[0]
        grouped.setdefault(label, []).append(record)
    order = labels or [lab for lab in DEFAULT_LABELS if lab in grouped] + sorted(
        set(grouped) - set(DEFAULT_LABELS)
    )
    return {lab: sorted(grouped[lab], key=lambda r: r.seed) for lab in order if lab in grouped}


def check_budgets(grouped: dict[str, list[Any]]) -> None:
    """Refuse to pool runs of one label trained at different epoch budgets or learning rates."""
    for label, records in grouped.items():
        budgets = {
            (
                r.extra.get("training", {}).get("epochs_budget"),
                r.extra.get("training", {}).get("learning_rate"),
            )
            for r in records
        }
        if len(budgets) > 1:
            raise SystemExit(
                f"[quality] runs of {label} were trained at different (epochs, learning rate) {sorted(budgets, key=str)}: "
                "retrain them with one budget (--overwrite) or aggregate another --out"
            )


def _cells_json(comparison) -> dict[str, Any]:
    keep = ("mean", "sd", "n", "values", "ci_low", "ci_high", "diff", "p", "p_adj", "reject")
    return {
        v: {col: {k: comparison.cells[v][col].get(k) for k in keep} for col in comparison.columns}
        for v in comparison.variants
    }


def _short_table(comparison) -> str:
    c = comparison
    lines = [
        f"{c.metric} on {c.split}: mean ± SD over seeds (* = BH-significant vs {c.baseline!r})",
        "",
        "| variant | " + " | ".join(c.columns) + " |",
        "|---|" + "---:|" * len(c.columns),
    ]
    for v in c.variants:
        cells = [c.cells[v][col] for col in c.columns]
        lines.append(
            f"| {v} | "
            + " | ".join(f"{x['mean']:.3f} ± {x['sd']:.3f}{'*' if x.get('reject') else ''}" for x in cells)
            + " |"
        )
    return "\n".join(lines) + "\n"


def aggregate(args: argparse.Namespace, budget: dict[str, Any]) -> None:
    """results.json, results.md and the macro-F1 plot from every finished run under `<out>/runs`."""
    import numpy as np

    from surgellm_hf.evaluation import (
        compare_pairs,
        compare_runs,
        plot_task_f1_by_variant,
        render_markdown_table,
    )

    grouped = collect_runs(args.out, args.variants if not args.all_labels else None)
    if not grouped:
        raise SystemExit(f"no finished runs under {args.out / 'runs'}")
    singles = {lab: rs for lab, rs in grouped.items() if lab.startswith(SINGLE_PREFIX)}
    grouped = {lab: rs for lab, rs in grouped.items() if not lab.startswith(SINGLE_PREFIX)}
    check_budgets(grouped)
    records = [r for rs in grouped.values() for r in rs]
    splits = [s for s in ("validation", "test") if all(s in t for r in records for t in r.tasks.values())]
    baseline = "baseline" if "baseline" in grouped else None
    comparisons = {
        split: {
            m: compare_runs(grouped, baseline=baseline, split=split, metric=m, n_resamples=args.n_resamples)
            for m in REPORTED_METRICS
        }
        for split in splits
    }
    pairs = [p for p in parse_pairs(args.pairs) if p[0] in grouped and p[1] in grouped]
    pair_comparisons = {
        split: compare_pairs(grouped, pairs, split=split, metric=DETAIL_METRIC) for split in splits if pairs
    }
    runs = []
    for label, recs in {**grouped, **singles}.items():
        for r in recs:
            training = r.extra.get("training", {})
            runs.append(
                {
                    "label": label,
                    "variant": r.variant,
                    "lexicon": r.extra.get("lexicon", {}).get("choice"),
                    "seed": r.seed,
                    "wall_s": r.extra.get("benchmark", {}).get("wall_s"),
                    "epochs_budget": training.get("epochs_budget"),
                    "epochs_run": training.get("epochs_run"),
                    "best_validation_avg_macro_f1": training.get("best_validation_avg_macro_f1"),
                    "selected_on": training.get("selected_on", "validation"),
                    "selection_avg_macro_f1": (r.extra.get("selection") or {}).get("avg_macro_f1"),
                    "avg_macro_f1": r.avg_macro_f1,
                    "tasks": {
                        t: {s: {m: by_split[s].get(m) for m in (*REPORTED_METRICS, "n")} for s in by_split}
                        for t, by_split in r.tasks.items()
                    },
                    "mean_gate": {
                        t: float(np.mean(p["validation"]["gate"]))
                        for t, p in r.predictions.items()
                        if p.get("validation", {}).get("gate") is not None
                    },
                    "gate_sd": {  # spread of the per-example mean gate over the validation examples
                        t: float(np.std(p["validation"]["gate"]))
                        for t, p in r.predictions.items()
                        if p.get("validation", {}).get("gate") is not None
                    },
                }
            )
    result = {
        "benchmark": "quality",
        "budget": budget,
        "labels": list(grouped),  # the row order of every table (dict keys below carry no order)
        "tasks": list(records[0].tasks),
        "splits": splits,
        "runs": runs,
        "comparisons": {s: {m: _cells_json(c) for m, c in by_m.items()} for s, by_m in comparisons.items()},
        "single_task_references": single_task_table(singles, splits),
        "gates": gate_table(runs),
        "pairs": {split: _pairs_json(c) for split, c in pair_comparisons.items()},
    }
    (args.out / "results.json").write_text(json.dumps(result, indent=2, default=_json_default) + "\n")
    main_split = "test" if "test" in splits else "validation"
    plot_task_f1_by_variant(comparisons[main_split][DETAIL_METRIC], args.out / "task_f1_by_variant.png")
    md = [
        "# Quality benchmark: SURGELLM variants on the four tasks",
        "",
        f"Command: `{budget['command']}`",
        "",
        "Budget: "
        + ", ".join(f"{k}={v}" for k, v in budget.items() if k not in ("command", "machine", "labels")),
        "",
        f"Machine: {budget['machine']}",
        "",
        "Runs: "
        + ", ".join(f"{lab}: seeds {[r.seed for r in rs]}" for lab, rs in grouped.items())
        + f". Total training wall time {sum(r['wall_s'] or 0 for r in runs) / 60:.1f} min.",
        "",
    ]
    selected = {r["selected_on"] for r in runs}
    md += [
        "Early stopping selected the epoch on: "
        + ", ".join(sorted(selected))
        + (
            " (a stratified slice of train; validation below was not used for selection)"
            if selected == {"selection"}
            else ""
        ),
        "",
    ]
    for split in splits:
        md += [f"## {split}", "", render_markdown_table(comparisons[split][DETAIL_METRIC]), ""]
        md += [_short_table(comparisons[split][m]) for m in REPORTED_METRICS if m != DETAIL_METRIC]
        if split in pair_comparisons:
            md += pairs_markdown(pair_comparisons[split])
    md += [
        "## Per run",
        "",
        "| run | epochs run / budget | wall s | mean gate per task | " + " | ".join(splits) + " |",
    ]
    md += ["|---|---:|---:|---|" + "---:|" * len(splits)]
    for r in runs:
        gates = ", ".join(f"{t} {g:.2f}" for t, g in r["mean_gate"].items()) or "–"
        md.append(
            f"| {r['label']}-seed{r['seed']} | {r['epochs_run']:.0f} / {r['epochs_budget']} | {r['wall_s']} | "
            f"{gates} | " + " | ".join(f"{r['avg_macro_f1'].get(s, float('nan')):.3f}" for s in splits) + " |"
        )
    md += ["", "![macro-F1 by variant](task_f1_by_variant.png)", ""]
    md += gate_markdown(result["gates"]) + single_task_markdown(result["single_task_references"], grouped)
    (args.out / "results.md").write_text("\n".join(md))
    print("\n".join(md))


def parse_pairs(items: list[str] | None) -> list[tuple[str, str]]:
    """--pairs A:B ... as (A, B) tuples (A - B is reported)."""
    pairs = []
    for item in items or []:
        a, sep, b = item.partition(":")
        if not sep or not a or not b:
            raise SystemExit(f"--pairs takes LABEL:LABEL items, got {item!r}")
        pairs.append((a, b))
    return pairs


def _pairs_json(comparison) -> dict[str, Any]:
    keep = ("mean_a", "mean_b", "diff", "ci_low", "ci_high", "covers_zero", "p", "p_adj", "reject")
    return {
        pair: {col: {k: cell.get(k) for k in keep} for col, cell in by_col.items()}
        for pair, by_col in comparison.cells.items()
    }


def pairs_markdown(comparison) -> list[str]:
    """The pairwise table: A - B per task and on average, the Welch CI of the difference and the BH q."""
    c = comparison
    md = [
        f"### Pairs ({c.metric}, {c.split}): A - B [{round(c.level * 100)} % Welch CI of the difference] (BH q)",
        "",
        "A CI that covers 0 means the two are within noise (then the cheaper setting wins, docs/benchmarks.md); "
        "n/a: no test (one run a side, or no spread on either side).",
        "",
        "| A vs B | " + " | ".join(c.columns) + " | within noise (avg) |",
        "|---|" + "---:|" * len(c.columns) + "---|",
    ]
    for pair, by_col in c.cells.items():
        cells = [
            f"{x['diff']:+.3f} [{x['ci_low']:+.3f}, {x['ci_high']:+.3f}] ({x['p_adj']:.2g})"
            if x["p_adj"] == x["p_adj"]
            else f"{x['diff']:+.3f} (n/a)"
            for x in (by_col[col] for col in c.columns)
        ]
        noise = by_col["average"]["covers_zero"]
        md.append(
            f"| {pair} | " + " | ".join(cells) + f" | {'–' if noise is None else 'yes' if noise else 'no'} |"
        )
    return [*md, ""]


def single_task_table(singles: dict[str, list[Any]], splits: list[str]) -> dict[str, Any]:
    """Per task: the single-task reference's macro-F1 / accuracy / ROC-AUC (mean, SD, values over seeds)."""
    import numpy as np

    table: dict[str, Any] = {}
    for label, recs in singles.items():
        task = label[len(SINGLE_PREFIX) :]
        table[task] = {
            split: {
                m: {
                    "mean": float(np.mean(v)),
                    "sd": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                    "values": v,
                }
                for m in REPORTED_METRICS
                for v in [[r.tasks[task][split][m] for r in recs if split in r.tasks[task]]]
                if v
            }
            for split in splits
        }
    return table


def gate_table(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per label and task: mean over seeds of the validation mean gate, and the mean within-run spread (SD)."""
    import numpy as np

    out: dict[str, Any] = {}
    for r in runs:
        for task, g in r["mean_gate"].items():
            cell = out.setdefault(r["label"], {}).setdefault(task, {"means": [], "sds": []})
            cell["means"].append(g)
            cell["sds"].append(r["gate_sd"][task])
    for by_task in out.values():
        for cell in by_task.values():
            cell["mean"] = float(np.mean(cell["means"]))
            cell["between_seed_sd"] = float(np.std(cell["means"], ddof=1)) if len(cell["means"]) > 1 else 0.0
            cell["within_run_sd"] = float(np.mean(cell["sds"]))
    return out


def gate_markdown(gates: dict[str, Any]) -> list[str]:
    """The gate table: mean gate per task (validation), between-seed SD, mean within-run SD over examples."""
    if not gates:
        return []
    tasks = list(next(iter(gates.values())))
    md = [
        "## Gate values (validation)",
        "",
        "mean of the per-example mean gate; (SD over seeds; SD over examples within a run, averaged over seeds)",
        "",
        "| variant | " + " | ".join(tasks) + " |",
        "|---|" + "---:|" * len(tasks),
    ]
    for label, by_task in gates.items():
        cells = [by_task.get(t) for t in tasks]
        md.append(
            f"| {label} | "
            + " | ".join(
                f"{c['mean']:.3f} ({c['between_seed_sd']:.3f}; {c['within_run_sd']:.3f})" if c else "–"
                for c in cells
            )
            + " |"
        )
    return [*md, ""]


def single_task_markdown(table: dict[str, Any], grouped: dict[str, list[Any]]) -> list[str]:
    """The single-task references beside the multi-task baseline, per task (validation macro-F1)."""
    if not table:
        return []
    import numpy as np

    md = [
        "## Single-task references (plain baseline, one task per model)",
        "",
        "| task | single-task macro-F1 | multi-task baseline macro-F1 | single-task ROC-AUC |",
        "|---|---:|---:|---:|",
    ]
    base = grouped.get("baseline", [])
    for task, by_split in table.items():
        v = by_split.get("validation", {})
        mt = [r.tasks[task]["validation"]["macro_f1"] for r in base if task in r.tasks]
        md.append(
            f"| {task} | {v['macro_f1']['mean']:.3f} ± {v['macro_f1']['sd']:.3f} | "
            + (f"{np.mean(mt):.3f} ± {np.std(mt, ddof=1) if len(mt) > 1 else 0:.3f}" if mt else "–")
            + f" | {v['roc_auc']['mean']:.3f} ± {v['roc_auc']['sd']:.3f} |"
        )
    return [*md, ""]


def subsample_to_ratio(args: argparse.Namespace) -> Path:
    """A data folder (under --work-dir, outside the repository) whose listed tasks' training splits are subsampled
    to `majority:minority = R:1` (class 0 the majority; every class-0 row kept, other classes drawn, seed 0);
    validation and test are linked unchanged."""
    import numpy as np

    ratios = dict(item.split("=", 1) for item in args.class_ratio)
    folder = args.work_dir / ("ratio-" + "-".join(f"{t}{r}" for t, r in sorted(ratios.items())))
    for task_dir in sorted(p for p in args.data.iterdir() if p.is_dir()):
        (folder / task_dir.name).mkdir(parents=True, exist_ok=True)
        for f in task_dir.glob("*.jsonl"):
            target = folder / task_dir.name / f.name
            if task_dir.name in ratios and f.stem == "train":
                rows = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
                rng = np.random.default_rng(0)
                major = [r for r in rows if r["label"] == 0]
                keep = set()
                n_minor = max(1, round(len(major) / float(ratios[task_dir.name])))
                for label in sorted({r["label"] for r in rows} - {0}):
                    idx = [i for i, r in enumerate(rows) if r["label"] == label]
                    keep |= set(rng.choice(idx, size=min(n_minor, len(idx)), replace=False).tolist())
                kept = [r for i, r in enumerate(rows) if r["label"] == 0 or i in keep]
                target.write_text("".join(json.dumps(r) + "\n" for r in kept))
            elif not target.exists():
                target.symlink_to(f.resolve())
    print(f"[quality] class-ratio data {ratios} in {folder}", flush=True)
    return folder


def estimate_full_protocol_seconds(args: argparse.Namespace, repeats: int = 3) -> dict[str, Any]:
    """Time `repeats` training steps (batch 32 x max_length, mixed precision on a GPU) of the encoder with the
    SURGELLM modules and multiply by the protocol's optimizer steps (+ one evaluation pass per epoch at ~1/3 of a
    training step per batch)."""
    import time

    import torch

    from surgellm_hf import SurgeForSequenceClassification
    from surgellm_hf.encoders import resolve_encoder

    tasks = args.tasks or sorted(p.name for p in args.data.iterdir() if (p / "train.jsonl").is_file())

    def n_rows(task: str, split: str) -> int:
        f = args.data / task / f"{split}.jsonl"
        return sum(1 for line in f.open() if line.strip()) if f.is_file() else 0

    train_batches = sum(math.ceil(n_rows(t, "train") / args.batch_size) for t in tasks)
    eval_batches = sum(math.ceil(n_rows(t, "validation") / args.batch_size) for t in tasks)
    epochs = sum(variant_epochs(parse_label(lab)[0], args)[0] for lab in args.variants) * len(args.seeds)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = SurgeForSequenceClassification.from_encoder_pretrained(
        resolve_encoder(args.encoder), tasks={"t": 2}, use_gate=True, norm="iwn", num_features=16
    ).to(device)
    model.fit_feature_normalizer(
        torch.rand(8, 16).numpy(), [0, 1] * 4, [0] * 8
    )  # statistics only, to run the gate
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
    vocab = model.config.encoder_config.vocab_size
    batch = {
        "input_ids": torch.randint(5, vocab, (args.batch_size, args.max_length), device=device),
        "attention_mask": torch.ones(args.batch_size, args.max_length, dtype=torch.long, device=device),
        "lexical_features": torch.rand(args.batch_size, 16, device=device),
        "task_ids": torch.zeros(args.batch_size, dtype=torch.long, device=device),
        "labels": torch.zeros(args.batch_size, dtype=torch.long, device=device),
    }
    dtype = torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else None
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if device == "cuda":
            torch.cuda.synchronize()
        if i:  # the first step warms up
            times.append(time.perf_counter() - start)
    step_s = float(sorted(times)[len(times) // 2])
    total = epochs * (train_batches + eval_batches / 3) * step_s
    return {
        "device": device,
        "step_s": step_s,
        "epochs_total": epochs,
        "train_batches_per_epoch": train_batches,
        "eval_batches_per_epoch": eval_batches,
        "estimated_s": total,
    }


def print_full_protocol_estimate(args: argparse.Namespace) -> None:
    """Print the full protocol's estimated training time before anything trains."""
    e = estimate_full_protocol_seconds(args)
    print(
        f"[quality] full protocol: {len(args.variants)} labels x {len(args.seeds)} seeds, {e['epochs_total']} "
        f"epochs in all, {e['train_batches_per_epoch']} training batches per epoch; {e['step_s']:.3f} s per "
        f"step measured on {e['device']} -> estimated {e['estimated_s'] / 3600:.1f} h "
        f"({e['estimated_s'] / 60:.0f} min) of training (padding to max_length; dynamic padding is faster)",
        flush=True,
    )


def prepare_lexicon_files(args: argparse.Namespace) -> dict[str, str]:
    """Frozen protocol: the random and extracted lexicons built once (lexicon seed 0) into <out>/lexicons/*.json,
    so every seed and run uses the same file and extraction is not repeated per run."""
    from surgellm_hf.data.loading import load_run_data
    from surgellm_hf.encoders import resolve_encoder
    from surgellm_hf.training import build_lexicon

    wanted = {parse_label(lab)[1] for lab in args.variants} & {"random", "extracted"}
    files = {}
    for choice in sorted(wanted):
        path = args.out / "lexicons" / f"{choice}.json"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            max_rows = {"train": args.max_train_rows} if args.max_train_rows else {}
            data = {
                "folder": str(args.data),
                "max_rows": max_rows,
                **({"tasks": args.tasks} if args.tasks else {}),
            }
            lexicon = build_lexicon(choice, load_run_data(data), resolve_encoder(args.encoder), 0)
            lexicon.to_json(path)
            print(f"[quality] {choice} lexicon -> {path}", flush=True)
        files[choice] = str(path)
    return files


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    return str(o)


def machine_line(threads: int) -> str:
    """CPU model, cores, memory, torch threads and versions: what the figures were measured on."""
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem = float("nan")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{cpu}, {os.cpu_count()} cores visible, {mem:.0f} GiB RAM, {gpu}; torch {torch.__version__} "
        f"({threads} threads), transformers {transformers.__version__}, Python {platform.python_version()}"
    )


def score(args: argparse.Namespace) -> int:
    """`surgellm evaluate RUN_DIR --data FOLDER --split SPLIT`: score a saved run on `<FOLDER>/<task>/<SPLIT>.jsonl`
    for each of its tasks found there (a held-back test folder needs no train files)."""
    from surgellm_hf.cli import main as cli_main

    argv = ["evaluate", str(args.score), "--data", str(args.data), "--split", args.split]
    argv += ["--batch-size", str(args.eval_batch_size)]
    if args.output:
        argv += ["--output", str(args.output)]
    return cli_main(argv)


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags: data, output, variants, seeds and the budget knobs."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="folder of <task>/{train,validation[,test]}.jsonl"
    )
    p.add_argument("--out", type=Path, default=None, help="default benchmarks/results/quality-<date>")
    p.add_argument(
        "--variants", nargs="+", default=list(DEFAULT_LABELS), help="variant labels, e.g. IWN-random"
    )
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--encoder", default="bundled:all-MiniLM-L6-v2")
    p.add_argument(
        "--max-train-rows", type=int, default=None, help="train rows per task (stratified; all if unset)"
    )
    p.add_argument(
        "--max-eval-rows", type=int, default=None, help="validation/test rows per task (all if unset)"
    )
    p.add_argument("--max-length", type=int, default=128)
    budget = p.add_mutually_exclusive_group()
    budget.add_argument(
        "--epoch-scale", type=float, default=1.0, help="x the paper's epochs per variant (rounded)"
    )
    budget.add_argument(
        "--epochs", type=int, default=None, help="equal-budget control: every variant N epochs"
    )
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("--learning-rate", type=float, default=None, help="one rate for every variant")
    rate.add_argument(
        "--lr-scale", type=float, default=1.0, help="x the paper's per-variant rate (short budgets need more)"
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--eval-batch-size", type=int, default=64)
    p.add_argument(
        "--prefix-style",
        choices=("text", "tokens", "soft"),
        default="text",
        help="RunConfig.prefix_style (a label's text/tokens/soft part overrides it)",
    )
    p.add_argument(
        "--soft-prefix-length", type=int, choices=(1, 2), default=2, help="RunConfig.soft_prefix_length"
    )
    p.add_argument(
        "--long-text",
        type=int,
        default=1,
        metavar="K",
        help="RunConfig.long_text max_chunks for every label (1: truncation; a label's long<K> part overrides it)",
    )
    p.add_argument("--long-text-stride", type=int, default=0, help="long_text stride: tokens of overlap")
    p.add_argument(
        "--long-text-pool", choices=("mean", "max", "first"), default="mean", help="long_text pool"
    )
    p.add_argument(
        "--selection-split",
        type=float,
        default=None,
        metavar="F",
        help="select the epoch on a stratified slice F of each task's train (RunConfig.selection_split); "
        "validation is then only reported",
    )
    p.add_argument("--selection-seed", type=int, default=0, help="seed of the --selection-split slice")
    p.add_argument(
        "--pairs",
        nargs="+",
        default=None,
        metavar="A:B",
        help="label pairs compared directly (A - B, Welch CI of the difference, BH over all pairs)",
    )
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--n-resamples", type=int, default=2000, help="bootstrap resamples")
    p.add_argument("--drop-models", action="store_true", help="delete model weights after each run")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="retrain runs under --out whose saved settings differ from the requested ones (default: refuse)",
    )
    p.add_argument(
        "--protocol",
        choices=("budget", "frozen", "full"),
        default="budget",
        help="budget: full fine-tunes at the budget flags; frozen: frozen MiniLM on cached first-token states "
        "(text prefix, all rows, one learning rate and epoch budget for every variant); full: the paper's "
        "protocol (all rows, paper epochs and learning rates, mixed precision where available, seeds 0-2), "
        "printing its estimated time first",
    )
    p.add_argument(
        "--module-lr-scale", type=float, default=None, help="RunConfig.module_lr_scale (default: its default)"
    )
    p.add_argument(
        "--task-sampling",
        choices=("proportional", "equal", "temperature"),
        default="proportional",
        help="RunConfig.task_sampling: each task's share of an epoch's batches",
    )
    p.add_argument("--temperature", type=float, default=2.0, help="T of --task-sampling temperature")
    p.add_argument("--patience", type=int, default=2, help="early-stopping patience (frozen protocol)")
    p.add_argument("--tasks", nargs="+", default=None, help="only these tasks of --data")
    p.add_argument(
        "--class-ratio",
        nargs="+",
        default=[],
        metavar="TASK=R",
        help="subsample TASK's training split to majority:minority = R:1 (validation/test untouched)",
    )
    p.add_argument(
        "--work-dir",
        type=Path,
        default=Path("/tmp/surgellm-quality-data"),
        help="where --class-ratio writes its data (outside the repository)",
    )
    p.add_argument(
        "--encoder-cache-dir",
        type=Path,
        default=None,
        help="first-token state cache of the frozen protocol (default <out>/encoder_cache; share it across --out)",
    )
    p.add_argument(
        "--single-task-refs", action="store_true", help="add one plain single-task baseline per task"
    )
    p.add_argument("--aggregate-only", action="store_true", help="only rebuild results from finished runs")
    p.add_argument(
        "--all-labels", action="store_true", help="aggregate every label found, not just --variants"
    )
    p.add_argument("--score", type=Path, default=None, help="score this saved run folder on --data and exit")
    p.add_argument("--split", default="test", help="split for --score")
    p.add_argument("--output", type=Path, default=None, help="metrics JSON for --score")
    return p


def main(argv: list[str] | None = None) -> int:
    """Train the missing runs (unless --aggregate-only) and write the results; or --score one run."""
    args = build_parser().parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    if args.score is not None:
        return score(args)
    for label in args.variants:
        try:
            label_settings(label)  # bad labels fail before any training
        except ValueError as err:
            raise SystemExit(f"[quality] {err}") from None
    parse_pairs(args.pairs)
    if args.long_text < 1 or args.long_text_stride < 0:
        raise SystemExit("--long-text must be >= 1 and --long-text-stride >= 0")
    if args.selection_split is not None and not 0 < args.selection_split < 1:
        raise SystemExit(f"--selection-split must lie in (0, 1), got {args.selection_split}")
    for name in ("max_train_rows", "max_eval_rows", "epochs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.epoch_scale <= 0 or args.lr_scale <= 0:
        raise SystemExit("--epoch-scale and --lr-scale must be > 0")
    if not args.data.is_dir():
        raise SystemExit(f"--data {args.data} is not a folder")
    if args.out is None:
        args.out = REPO_ROOT / "benchmarks" / "results" / f"quality-{dt.date.today().isoformat()}"
    if args.protocol == "frozen":
        args.prefix_style = "text"  # the compact prefix's new embeddings would stay untrained
        other = [lab for lab in args.variants if label_settings(lab).get("prefix_style", "text") != "text"]
        if other:
            raise SystemExit(
                f"[quality] the frozen protocol trains on cached encoder states, which neither the compact prefix "
                f"(untrained new embeddings) nor the soft prefix (trainable encoder inputs) can use: {other}; "
                "measure them with --protocol budget"
            )
        if args.learning_rate is None:
            args.learning_rate = 2e-5
        if args.epochs is None:
            args.epochs = 8
        if args.encoder_cache_dir is None:
            args.encoder_cache_dir = args.out / "encoder_cache"
    if args.protocol == "full":
        args.max_train_rows = args.max_eval_rows = args.epochs = args.learning_rate = None
        args.epoch_scale = args.lr_scale = 1.0
        print_full_protocol_estimate(args)
    if args.class_ratio:
        args.data = subsample_to_ratio(args)
    if args.single_task_refs:
        tasks = args.tasks or sorted(p.name for p in args.data.iterdir() if (p / "train.jsonl").is_file())
        args.variants = [*args.variants, *(f"{SINGLE_PREFIX}{t}" for t in tasks)]
    budget = {
        "command": "python "
        + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], REPO_ROOT), *sys.argv[1:]]),
        "machine": machine_line(args.threads),
        "data": str(args.data.resolve()),
        "encoder": args.encoder,
        "max_train_rows_per_task": args.max_train_rows or "all",
        "max_eval_rows_per_task": args.max_eval_rows or "all",
        "max_length": args.max_length,
        "equal_budget": args.epochs is not None,
        "labels": list(args.variants),
        "epochs": {lab: variant_epochs(parse_label(lab)[0], args)[0] for lab in args.variants},
        "learning_rate": {lab: variant_lr(parse_label(lab)[0], args) for lab in args.variants},
        "batch_size": args.batch_size,
        "prefix_style": args.prefix_style,
        "seeds": args.seeds,
        "torch_threads": args.threads,
        "protocol": args.protocol,
        "module_lr_scale": args.module_lr_scale,
        "task_sampling": args.task_sampling
        + (f" (T={args.temperature:g})" if args.task_sampling == "temperature" else ""),
        "tasks": args.tasks or "all",
        "class_ratio": args.class_ratio,
        "patience": args.patience,
        "selection_split": selection_split(args),
        "long_text": long_text_default(args.long_text, args.long_text_stride, args.long_text_pool),
        "soft_prefix_length": args.soft_prefix_length,
        "label_settings": {lab: resolved_settings(lab, args) for lab in args.variants},
    }
    budget_path = args.out / "budget.json"
    old_budget = json.loads(budget_path.read_text()) if budget_path.is_file() else None
    if not args.aggregate_only:
        budget = merge_budget(
            old_budget, budget, args.overwrite
        )  # refused before anything trains or is written
        args.out.mkdir(parents=True, exist_ok=True)
        if args.protocol == "frozen":
            args.lexicon_files = prepare_lexicon_files(args)
        plan = plan_runs(args)
        budget_path.write_text(json.dumps(budget, indent=2) + "\n")
        train_all(args, plan)
    elif old_budget is not None:
        budget = {**old_budget, "aggregated_by": budget["command"]}
    aggregate(args, budget)
    return 0


if __name__ == "__main__":
    sys.exit(main())
