"""The search space of `surgellm tune`: a YAML mapping of run-config keys (dotted keys reach into sections, e.g.
`lora.r`, `data.max_rows.train`) to what a trial may set them to.

```yaml
learning_rate: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}   # float: uniform, log or with a step
warmup_ratio: {type: float, low: 0.0, high: 0.2, step: 0.05}
epochs: {type: int, low: 2, high: 6}                                   # int: step (default 1) or log
lora.r: {type: int, low: 4, high: 32, log: true}
task_sampling: [proportional, equal, temperature]                      # a list: one of these values
class_weights: {type: categorical, choices: [null, balanced]}          # the same, spelled out
freeze_encoder: [true, false]
seed: 0                                                                # a fixed value: every trial uses it
```

Every key is checked against `RunConfig` and every bound and choice is applied to the base configuration, so a wrong
key or value is refused, naming the space file and the key, before any trial trains.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..training.run_config import RunConfig

SPEC_KEYS = {
    "float": {"type", "low", "high", "log", "step"},
    "int": {"type", "low", "high", "log", "step"},
    "categorical": {"type", "choices"},
    "fixed": {"type", "value"},
}
"""The keys each kind of entry takes."""


@dataclass(frozen=True)
class Param:
    """One entry of the space: a run-config key (dotted for sections) and what a trial sets it to."""

    key: str
    kind: str  # float, int, categorical or fixed
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()
    value: Any = None

    def distribution(self) -> Any:
        """The Optuna distribution of a searched entry (None for a fixed one)."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "float":
            return FloatDistribution(self.low, self.high, log=self.log, step=self.step)
        if self.kind == "int":
            return IntDistribution(self.low, self.high, log=self.log, step=self.step or 1)
        if self.kind == "categorical":
            return CategoricalDistribution(self.choices)
        return None

    def values_to_check(self) -> list[Any]:
        """The values whose configurations are built before the study starts: bounds, every choice, the value."""
        if self.kind in ("float", "int"):
            return [self.low, self.high]
        return list(self.choices) if self.kind == "categorical" else [self.value]


@dataclass(frozen=True)
class SearchSpace:
    """The parsed space: its entries in file order, and where it was read from (for messages)."""

    params: tuple[Param, ...]
    source: str = "the search space"

    @property
    def searched(self) -> list[Param]:
        """The entries a trial samples (not the fixed ones)."""
        return [p for p in self.params if p.kind != "fixed"]

    def sample(self, trial: Any) -> dict[str, Any]:
        """The values of one trial (Optuna's `suggest_*`), fixed entries included, by key."""
        values = {}
        for p in self.params:
            if p.kind == "float":
                values[p.key] = trial.suggest_float(p.key, p.low, p.high, log=p.log, step=p.step)
            elif p.kind == "int":
                values[p.key] = trial.suggest_int(p.key, p.low, p.high, log=p.log, step=p.step or 1)
            elif p.kind == "categorical":
                values[p.key] = trial.suggest_categorical(p.key, list(p.choices))
            else:
                values[p.key] = p.value
        return values

    def check(self, base: RunConfig) -> None:
        """Build the base configuration with every bound, choice and fixed value, one entry at a time: a value the
        run config refuses is named here, with the space file and key, before anything trains."""
        for p in self.params:
            for value in p.values_to_check():
                try:
                    apply_values(base, {p.key: value})
                except (ValueError, TypeError) as err:
                    raise ValueError(
                        f"{self.source}: `{p.key}`: the value {value!r} is refused: {err}"
                    ) from None


def apply_values(base: RunConfig, values: Mapping[str, Any], **fields: Any) -> RunConfig:
    """`base` with `values` (dotted keys reach into sections, creating them) and `fields` set; checked by
    `RunConfig` as any configuration."""
    mapping = copy.deepcopy(base.to_dict())
    for key, value in values.items():
        parts = key.split(".")
        target = mapping
        for part in parts[:-1]:
            if target.get(part) is None:
                target[part] = {}
            target = target[part]
            if not isinstance(target, dict):
                raise ValueError(f"`{key}`: `{part}` is not a section")
        target[parts[-1]] = copy.deepcopy(value)
    mapping.update(fields)
    return RunConfig.from_mapping(mapping)


def _number(value: Any, integer: bool) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) if integer else isinstance(value, int | float) and math.isfinite(value)


def _param(key: str, spec: Any, where: str) -> Param:
    """One entry: a mapping with a `type`, a list (categorical) or a scalar (fixed)."""
    if isinstance(spec, list):
        spec = {"type": "categorical", "choices": spec}
    elif not isinstance(spec, Mapping):
        spec = {"type": "fixed", "value": spec}
    kind = spec.get("type")
    if kind not in SPEC_KEYS:
        raise ValueError(f"{where}: `{key}`: type must be one of {sorted(SPEC_KEYS)}, got {kind!r}")
    unknown = sorted(set(spec) - SPEC_KEYS[kind])
    if unknown:
        raise ValueError(f"{where}: `{key}`: a {kind} entry takes {sorted(SPEC_KEYS[kind])}, not {unknown}")
    if kind == "fixed":
        if "value" not in spec:
            raise ValueError(f"{where}: `{key}`: a fixed entry needs `value`")
        return Param(key, "fixed", value=spec["value"])
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ValueError(f"{where}: `{key}`: choices must be a non-empty list, got {choices!r}")
        bad = [c for c in choices if c is not None and not isinstance(c, bool | int | float | str)]
        if bad:
            raise ValueError(
                f"{where}: `{key}`: choices must be strings, numbers, true/false or null, got {bad!r} (search a "
                "section's keys one by one, e.g. lora.r)"
            )
        if len(set(map(repr, choices))) != len(choices):
            raise ValueError(f"{where}: `{key}`: choices repeat a value: {choices!r}")
        return Param(key, "categorical", choices=tuple(choices))
    integer = kind == "int"
    low, high, log, step = spec.get("low"), spec.get("high"), spec.get("log", False), spec.get("step")
    if isinstance(low, str) or isinstance(high, str):  # YAML 1.1 reads 1e-5 (no dot) as a string
        try:
            low, high = (float(v) if isinstance(v, str) else v for v in (low, high))
        except ValueError:
            raise ValueError(
                f"{where}: `{key}`: low and high must be numbers, got {low!r}, {high!r}"
            ) from None
    what = "integers" if integer else "finite numbers"
    if not (_number(low, integer) and _number(high, integer)) or low > high:
        raise ValueError(
            f"{where}: `{key}`: low and high must be {what} with low <= high, got {low!r}, {high!r}"
        )
    if not isinstance(log, bool):
        raise ValueError(f"{where}: `{key}`: log must be true or false, got {log!r}")
    if log and low <= 0:
        raise ValueError(f"{where}: `{key}`: a log scale needs low > 0, got {low!r}")
    if step is not None and (not _number(step, integer) or step <= 0 or log):
        raise ValueError(
            f"{where}: `{key}`: step must be a positive {kind} and not used with log, got {step!r}"
        )
    if not integer:
        low, high = float(low), float(high)
        step = float(step) if step is not None else None
    return Param(key, kind, low=low, high=high, log=log, step=step)


def _check_key(key: str, where: str) -> None:
    """A space key names a RunConfig field, or (dotted) a key inside one of its sections."""
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    top = key.split(".")[0]
    if not key or any(not part for part in key.split(".")) or top not in fields:
        raise ValueError(f"{where}: `{key}` is not a run config key (valid keys: {sorted(fields)})")
    if top in ("output_dir", "overwrite", "resume", "push_to_hub", "resume_from", "hub_model_id"):
        raise ValueError(f"{where}: `{key}` is set by `surgellm tune` for every trial and cannot be searched")


def parse_space(mapping: Any, source: str = "the search space") -> SearchSpace:
    """A `SearchSpace` from a parsed YAML mapping; a wrong entry is refused naming `source` and its key."""
    if not isinstance(mapping, Mapping) or not mapping:
        raise ValueError(f"{source} must be a mapping of run-config keys to search, got {mapping!r}")
    params = []
    for key, spec in mapping.items():
        key = str(key)
        _check_key(key, source)
        params.append(_param(key, spec, source))
    if not any(p.kind != "fixed" for p in params):
        raise ValueError(f"{source} searches nothing: every entry is a fixed value")
    return SearchSpace(tuple(params), source)


def load_space(path: str | os.PathLike) -> SearchSpace:
    """Read a search-space YAML file (`parse_space`)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"search space not found: {path}")
    try:
        mapping = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ValueError(
            f"search space {path} is not valid YAML{where}: {getattr(err, 'problem', err)}"
        ) from None
    return parse_space(mapping, str(path))
