"""Shared inputs of the evaluation tests: noisy predictions and run folders written with `save_run`."""

from __future__ import annotations

import numpy as np

from surgellm_hf import evaluation as ev


def noisy_predictions(n: int, accuracy: float, seed: int, k: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    wrong = (y + rng.integers(1, k, n)) % k
    return y, np.where(rng.random(n) < accuracy, y, wrong)


def write_runs(tmp_path, accuracy_by_variant, tasks=("t1", "t2"), n=120, seeds=(0, 1, 2)):
    dirs, truth = [], {}
    for v_i, (variant, acc) in enumerate(accuracy_by_variant.items()):
        for seed in seeds:
            metrics, preds = {}, {}
            for t_i, task in enumerate(tasks):
                rng = np.random.default_rng(100 * t_i + 10 * v_i + seed)
                y = np.random.default_rng(t_i).integers(0, 2, n)  # same examples in every run
                p = np.where(rng.random(n) < acc, y, 1 - y)
                score = np.clip(0.6 * y + 0.5 * rng.random(n), 0, 1)
                if t_i == 1:  # class probabilities, as training writes them
                    score = np.stack([1 - score, score], axis=1)
                metrics[task] = {"test": ev.task_metrics(y, p, score), "validation": ev.task_metrics(y, p)}
                preds[task] = {
                    "test": {
                        "y_true": y,
                        "y_pred": p,
                        "score": score,
                        "gate": rng.random(n),
                        "id": [f"{task}-{i}" for i in range(n)],
                    }
                }
                truth[(variant, seed, task)] = metrics[task]["test"]["macro_f1"]
            dirs.append(
                ev.save_run(
                    tmp_path / f"{variant}-{seed}", variant, seed, metrics, preds, extra={"epochs": 3}
                ).parent
            )
    return dirs, truth
