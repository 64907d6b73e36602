"""Explanations of SURGELLM predictions from the lexical features: what each of the named features did to a decision.

An explanation of one prediction holds the raw feature values s(x) by name, the normalized values the gate saw, the
lexicon entries found in the text, the row's mean gate value, and one contribution per feature: the prediction
minus the prediction with that feature set to its task's mean in the fitted statistics (its normalized value 0),
from `SurgeForSequenceClassification.explain_features` (one encoder pass; the counterfactuals run the fusion
modules and heads only). What a contribution is of, by problem type:

- single-label: the logit of the predicted label;
- multi-label: every label's logit (``{feature: {label: contribution}}``);
- regression: the predicted value.

A model without the gate gives no mean gate value and no contributions (the features do not reach it; None, with
a note); a model with ``norm="none"`` has no task mean to set a feature to, so no contributions either.
Contributions are on logits, before any temperature. A prefix carries the floored feature values into the encoder;
the contributions do not capture that path (the encoder input is left as it was).

Copied to the Hub for ``trust_remote_code`` loading (the pipeline imports it): numpy, torch and its flat sibling
`features` and `problem_types` only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .features import pair_feature_text
from .problem_types import info, task_probabilities

NO_GATE_NOTE = "the model has no feature gate: the features do not reach its decision"
NO_STATISTICS_NOTE = "norm 'none': no fitted task means to set a feature to"


def feature_contributions(
    logits: np.ndarray, counterfactual: np.ndarray, num_labels: int, problem_type: str
) -> np.ndarray:
    """One row's contributions from its logits ``[C]`` and counterfactual logits ``[F, C]``: ``[F]`` for the
    predicted label's logit (single-label) or the value (regression), ``[F, L]`` for every label (multi-label).
    The predicted label is the one the type decides from `logits` (single-label: the argmax, which a temperature
    does not change)."""
    own = np.asarray(logits, dtype=np.float64)[:num_labels]
    moved = np.asarray(counterfactual, dtype=np.float64)[:, :num_labels]
    entry = info(problem_type)
    if entry.multi_hot:
        return own[None, :] - moved
    column = 0
    if entry.has_classes:  # the label the type decides on (single-label: the argmax)
        column = int(entry.decide(task_probabilities(own[None, :], num_labels, problem_type), None)[1][0])
    return own[column] - moved[:, column]


def explanation(
    feature_names: Sequence[str],
    features: np.ndarray,
    normalized: np.ndarray | None,
    matches: Mapping[str, Sequence[str]],
    mean_gate: float | None,
    contributions: np.ndarray | None,
    label_names: Sequence[str],
    problem_type: str,
    note: str | None = None,
) -> dict[str, Any]:
    """The JSON ``explanation`` of one prediction (see the module docstring)."""
    names = list(feature_names)
    out: dict[str, Any] = {
        "features": {n: float(v) for n, v in zip(names, features)},
        "normalized": None if normalized is None else {n: float(v) for n, v in zip(names, normalized)},
        "matches": {g: list(e) for g, e in matches.items()},
        "mean_gate": None if mean_gate is None else float(mean_gate),
        "contributions": None,
    }
    if contributions is not None:
        if info(problem_type).multi_hot:
            out["contributions"] = {
                n: {label: float(v) for label, v in zip(label_names, row)}
                for n, row in zip(names, contributions)
            }
            out["contribution_of"] = "each label's logit"
        elif not info(problem_type).has_classes:
            out["contributions"] = {n: float(v) for n, v in zip(names, contributions)}
            out["contribution_of"] = "the predicted value"
        else:
            out["contributions"] = {n: float(v) for n, v in zip(names, contributions)}
            out["contribution_of"] = "the predicted label's logit"
    elif note:
        out["note"] = note
    return out


def _label_setup(config: Any, task: str) -> tuple[int, list[str], str]:
    return config.tasks[task], config.label_names(task), config.task_problem_types[task]


def _explanations(
    model: Any, processor: Any, outputs: Any, raw: np.ndarray, tasks: Sequence[str], matches: list[dict]
) -> list[dict[str, Any]]:
    """One explanation per row of `explain_features` outputs, row i under ``tasks[i]``."""
    config = model.config
    gate = None if outputs.mean_gate is None else outputs.mean_gate.float().cpu().numpy()
    normalized = None
    if outputs.normalized_features is not None:
        normalized = outputs.normalized_features.float().cpu().numpy()
    moved = reference = None
    if outputs.counterfactual_logits is not None:
        moved = outputs.counterfactual_logits.float().cpu().numpy()
        reference = outputs.reference_logits.float().cpu().numpy()
    note = None if moved is not None else NO_GATE_NOTE if not config.use_gate else NO_STATISTICS_NOTE
    names = list(processor.lexicon.feature_names)
    out = []
    for i, task in enumerate(tasks):
        num_labels, labels, kind = _label_setup(config, task)
        contributions = (
            None if moved is None else feature_contributions(reference[i], moved[i], num_labels, kind)
        )
        out.append(
            explanation(
                names,
                raw[i],
                None if normalized is None else normalized[i],
                matches[i],
                None if gate is None else gate[i],
                contributions,
                labels,
                kind,
                note,
            )
        )
    return out


def _matches(processor: Any, texts: Sequence[str], text_pairs: Sequence[str | None] | None) -> list[dict]:
    pairs = list(text_pairs) if text_pairs is not None else [None] * len(texts)
    joined = [t if p is None else pair_feature_text(t, p) for t, p in zip(texts, pairs)]
    return processor.lexicon.matches(joined)


def explain_batch(
    model: Any,
    processor: Any,
    texts: Sequence[str],
    tasks: Sequence[str],
    text_pairs: Sequence[str | None] | None = None,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """``(logits [N, max_num_labels], explanations)`` of one batch, text i under ``tasks[i]``: one encoder pass."""
    import torch

    enc = processor(
        list(texts),
        text_pair=None if text_pairs is None else list(text_pairs),
        task=list(tasks),
        return_tensors="pt",
        padding=True,
    )
    raw = enc["lexical_features"].numpy()
    inputs = {k: v.to(model.device) for k, v in enc.items()}
    with torch.inference_mode():
        outputs = model.explain_features(**inputs)
    explanations = _explanations(
        model, processor, outputs, raw, tasks, _matches(processor, texts, text_pairs)
    )
    return outputs.logits.float().cpu().numpy(), explanations


def explain_every_task(
    model: Any, processor: Any, texts: Sequence[str], one_pass: bool
) -> tuple[np.ndarray, list[dict[str, dict[str, Any]]]]:
    """``(logits [N, num_tasks, max_num_labels], one {task: explanation} per text)``: every task from one encoder
    pass when the encoder input does not depend on the task (`one_pass`), else one pass per task."""
    import torch

    names = list(model.config.task_names)
    matches = _matches(processor, texts, None)
    if not one_pass:
        per_task = [explain_batch(model, processor, texts, [t] * len(texts)) for t in names]
        logits = np.stack([p[0] for p in per_task], axis=1)
        return logits, [{t: p[1][i] for t, p in zip(names, per_task)} for i in range(len(texts))]
    enc = processor(list(texts), task=model.config.default_task, return_tensors="pt", padding=True)
    raw = enc["lexical_features"].numpy()
    inputs = {k: v.to(model.device) for k, v in enc.items() if k != "task_ids"}
    logits, explanations = [], []
    with torch.inference_mode():
        states = model.surge.first_token_states(**inputs)
        for t, name in enumerate(names):
            outputs = model.explain_features(
                first_token_state=states,
                lexical_features=inputs.get("lexical_features"),
                task_ids=torch.full((len(texts),), t, dtype=torch.long, device=states.device),
                num_windows=inputs.get("num_windows"),  # a long text's window states, pooled per example
            )
            logits.append(outputs.logits.float().cpu().numpy())
            explanations.append(_explanations(model, processor, outputs, raw, [name] * len(texts), matches))
    return np.stack(logits, axis=1), [
        {t: e[i] for t, e in zip(names, explanations)} for i in range(len(texts))
    ]


def mean_abs_contributions(contributions: Sequence[np.ndarray]) -> np.ndarray:
    """Mean |contribution| per feature over rows (a multi-label row's over its labels too): ``[F]``."""
    rows = [np.abs(np.asarray(c, dtype=np.float64)).reshape(len(c), -1).mean(axis=1) for c in contributions]
    return np.mean(rows, axis=0)


__all__ = [
    "explain_batch",
    "explain_every_task",
    "explanation",
    "feature_contributions",
    "mean_abs_contributions",
]
