"""Early stopping through the real transformers Trainer, checked against a reference implementation of the patience rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from surgellm_hf.training import callbacks
from tests._early_stopping_reference import EarlyStopper

# ----------------------------------------------------------------------------------------------- early stopping


@pytest.mark.parametrize(
    ("scores", "stop_at", "best", "best_step"),
    [
        ([0.5, 0.6, 0.6, 0.59, 0.7], 3, 0.6, 1),  # equal is no improvement: stops after two non-improvements
        ([0.5, 0.5, 0.5], 2, 0.5, 0),
        ([0.5, 0.4, 0.6, 0.55, 0.7, 0.69, 0.71], None, 0.71, 6),  # count resets on each strict improvement
        ([0.5, float("nan"), float("nan")], 2, 0.5, 0),  # NaN never improves
    ],
)
def test_early_stopper_scripted_sequences(scores, stop_at, best, best_step):
    stopper = EarlyStopper(patience=2)
    decisions = [stopper.update(s) for s in scores[: (stop_at + 1 if stop_at is not None else None)]]
    expected = [False] * len(decisions)
    if stop_at is not None:
        expected[stop_at] = True
    assert decisions == expected
    assert stopper.best_score == best and stopper.best_step == best_step


def test_early_stopper_rejects_bad_arguments():
    with pytest.raises(ValueError, match="patience"):
        EarlyStopper(patience=0)
    with pytest.raises(TypeError, match="real number"):
        EarlyStopper().update("0.5")


class _TinyClassifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 2)

    def forward(self, x, labels=None):
        logits = self.linear(x)
        return {"loss": torch.nn.functional.cross_entropy(logits, labels), "logits": logits}


def _train_with_scripted_metric(tmp_path, scores, callback):
    """Real Trainer: evaluates every epoch, compute_metrics returns the next scripted score."""
    from datasets import Dataset
    from transformers import Trainer, TrainerCallback, TrainingArguments

    rng = np.random.default_rng(0)
    data = Dataset.from_dict({"x": rng.normal(size=(8, 2)).astype("float32").tolist(), "labels": [0, 1] * 4})
    scripted = iter(scores)
    snapshots = []

    class Snapshot(TrainerCallback):
        def on_evaluate(self, args, state, control, model=None, **kwargs):
            snapshots.append({k: v.detach().clone() for k, v in model.state_dict().items()})

    args = TrainingArguments(
        output_dir=str(tmp_path),
        num_train_epochs=len(scores),
        per_device_train_batch_size=4,
        learning_rate=0.5,
        report_to="none",
        use_cpu=True,
        logging_strategy="no",
        disable_tqdm=True,
        save_only_model=True,
        seed=0,
        **callbacks.early_stopping_arguments(),
    )
    torch.manual_seed(0)
    trainer = Trainer(
        model=_TinyClassifier(),
        args=args,
        train_dataset=data,
        eval_dataset=data,
        compute_metrics=lambda _: {"avg_macro_f1": next(scripted)},
        callbacks=[callback, Snapshot()],
    )
    trainer.train()
    return trainer, snapshots


@pytest.mark.parametrize(
    ("scores", "n_evals", "best_eval"),
    [([0.5, 0.6, 0.6, 0.59, 0.7, 0.8], 4, 1), ([0.5, 0.4, 0.6, 0.55, 0.7, 0.65], 6, 4)],
)
def test_callback_in_real_trainer_stops_and_restores_best(tmp_path, scores, n_evals, best_eval):
    trainer, snapshots = _train_with_scripted_metric(tmp_path, scores, callbacks.SurgeEarlyStoppingCallback())
    assert len(snapshots) == n_evals
    # the pure rule agrees with the callback on the same sequence
    stopper = EarlyStopper(patience=2)
    stops = [stopper.update(s) for s in scores[:n_evals]]
    assert stops[-1] == (n_evals < len(scores)) and not any(stops[:-1])
    assert stopper.best_step == best_eval
    assert trainer.state.best_metric == scores[best_eval]
    assert trainer.state.best_global_step == 2 * (best_eval + 1)  # 2 steps per epoch
    restored = trainer.model.state_dict()
    for k, v in snapshots[best_eval].items():
        torch.testing.assert_close(restored[k], v)
    assert not torch.equal(restored["linear.weight"], snapshots[-1]["linear.weight"])


@pytest.mark.parametrize("scores", [[0.5, 0.6, 0.6, 0.59, 0.7, 0.7], [0.3, 0.3, 0.1, 0.4, 0.2]])
def test_patience_count_replayed_from_the_log_equals_the_live_count(tmp_path, scores):
    """What a resumed run restores (the count replayed from trainer_state.json's log) is what the live run had."""
    live, replayed = [], []

    class Recording(callbacks.SurgeEarlyStoppingCallback):
        def on_evaluate(self, args, state, control, metrics, **kwargs):
            super().on_evaluate(args, state, control, metrics, **kwargs)
            live.append(self.early_stopping_patience_counter)
            replayed.append(callbacks.patience_counter_from_history(state.log_history))

    trainer, _ = _train_with_scripted_metric(tmp_path, scores, Recording(patience=len(scores) + 1))
    assert len(live) == len(scores) and replayed == live and live[-1] > 0
    assert callbacks.patience_counter_from_history(trainer.state.log_history) == live[-1]


def test_a_nan_score_is_an_error_not_a_silent_non_improvement(tmp_path):
    with pytest.raises(ValueError, match=r"'eval_avg_macro_f1' is nan at epoch 2\.0: it cannot be compared"):
        _train_with_scripted_metric(
            tmp_path, [0.5, float("nan"), 0.6], callbacks.SurgeEarlyStoppingCallback()
        )


def test_nan_in_a_saved_log_is_replayed_as_no_improvement_with_a_warning(caplog):
    """Logs written before undefined correlations counted 0 may hold NaN; a resumed run replays them by the rule."""
    scores = [float("nan"), 0.3, float("nan"), 0.3, 0.2]
    history = [{"eval_avg_macro_f1": s, "epoch": float(i + 1)} for i, s in enumerate(scores)]
    stopper = EarlyStopper(patience=len(scores) + 1)
    for s in scores:
        stopper.update(s)
    with caplog.at_level("WARNING"):
        assert callbacks.patience_counter_from_history(history) == stopper.num_bad_updates == 3
    assert "eval_avg_macro_f1 is NaN at epoch 1.0" in caplog.text and "epoch 3.0" in caplog.text


def test_callback_checks_trainer_arguments(tmp_path):
    from transformers import TrainerControl, TrainerState, TrainingArguments

    cb = callbacks.SurgeEarlyStoppingCallback()
    wrong_metric = TrainingArguments(
        output_dir=str(tmp_path),
        report_to="none",
        use_cpu=True,
        **callbacks.early_stopping_arguments("eval_loss"),
    )
    with pytest.raises(ValueError, match="metric_for_best_model"):
        cb.on_train_begin(wrong_metric, TrainerState(), TrainerControl())
    lower = TrainingArguments(
        output_dir=str(tmp_path),
        report_to="none",
        use_cpu=True,
        **{**callbacks.early_stopping_arguments(), "greater_is_better": False},
    )
    with pytest.raises(ValueError, match="greater_is_better"):
        cb.on_train_begin(lower, TrainerState(), TrainerControl())
    ok = TrainingArguments(
        output_dir=str(tmp_path), report_to="none", use_cpu=True, **callbacks.early_stopping_arguments()
    )
    with pytest.raises(KeyError, match="eval_avg_macro_f1"):
        cb.on_evaluate(ok, TrainerState(), TrainerControl(), {"eval_loss": 0.3})
    # the callback's own rule, driven by hand with a real TrainerState/TrainerControl the way the Trainer does it
    state, control = TrainerState(), TrainerControl()
    for score in [0.5, 0.6, 0.6]:
        cb.on_evaluate(ok, state, control, {"eval_avg_macro_f1": score})
        if state.best_metric is None or score > state.best_metric:
            state.best_metric = score
    assert not control.should_training_stop
    cb.on_evaluate(ok, state, control, {"eval_avg_macro_f1": 0.59})
    assert control.should_training_stop


# ------------------------------------------------------------------------------------------- early stopping state


def test_callback_refuses_to_leave_last_epoch_weights(tmp_path):
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from surgellm_hf.training import SurgeEarlyStoppingCallback, early_stopping_arguments

    no_restore = TrainingArguments(
        output_dir=str(tmp_path),
        report_to="none",
        use_cpu=True,
        **{**early_stopping_arguments(), "save_strategy": "no", "load_best_model_at_end": False},
    )
    with pytest.raises(ValueError, match="last epoch's weights"):
        SurgeEarlyStoppingCallback().on_train_begin(no_restore, TrainerState(), TrainerControl())
    SurgeEarlyStoppingCallback(keep_best_in_memory=True).on_train_begin(
        no_restore, TrainerState(), TrainerControl()
    )
    # a resumed state carries on with its count
    state = TrainerState(log_history=[{"eval_avg_macro_f1": s} for s in (0.5, 0.7, 0.6)])
    cb = SurgeEarlyStoppingCallback(patience=2, keep_best_in_memory=True)
    cb.on_train_begin(no_restore, state, TrainerControl())
    assert cb.early_stopping_patience_counter == 1
    # its exported state rebuilds it (transformers' restore_callback_states_from_checkpoint)
    exported = cb.state()
    rebuilt = type(cb)(**exported["args"])
    assert rebuilt.early_stopping_patience == 2 and rebuilt.keep_best_in_memory
