"""SurgeProcessor: tokenizer + lexicon + task prefix -> every input SurgeForSequenceClassification.forward takes.

`processor(texts, task="sst2")` returns `input_ids`, `attention_mask`, `token_type_ids` (where the tokenizer makes
them), `lexical_features` (RAW features s(x) of the full text, float32; the model normalises them) and `task_ids`.

Prefix styles (docs/method.md#prefix):
- "text" (the paper's): the string `[TASK:<task>|F1:<v1>|...|Fn:<vn>]` with v_j = floor(s_j), then a space, then the
  text, tokenized together by the encoder's own tokenizer;
- "tokens" (compact): one added special token for the task (`[SURGE_TASK_<task>]`) and one per feature holding its
  bucket (`[SURGE_F<j>_B<b>]`), so the prefix costs exactly n_features + 1 tokens. Buckets of floor(s_j):
  mean word length is linear, b = min(v, 15) (16 buckets); every other feature is a count with log2 buckets,
  b = 0 for 0, else min(bit_length(v), 9): 0 | 1 | 2-3 | 4-7 | 8-15 | 16-31 | 32-63 | 64-127 | 128-255 | 256+;
- "soft": no text at all: the model puts k = `soft_prefix_length` (1 or 2) virtual token embeddings, built from
  the task and the normalized features, after the first token (`SurgeConfig.soft_prefix_length`); the processor
  reserves those k positions of `max_length` (the text is cut at max_length - k tokens);
- None: no prefix.
The prefix is never truncated: the tokenizer cuts from the right (the text) and the processor raises an error when
the prefix and the special tokens alone do not fit `max_length`.

Sentence pairs (`processor(texts, text_pair=others, task="nli")`, for the tasks listed in `pair_tasks`):
- layout: the tokenizer's own pair encoding of (prefix + " " + text, text_pair), i.e. `tokenizer(first, second)`:
  `[CLS] prefix text [SEP] text_pair [SEP]` for BERT, `<s> prefix text</s></s>text_pair</s>` for RoBERTa, with
  the token_type_ids the tokenizer makes (the prefix belongs to the first segment);
- truncation: the prefix and the pair's special tokens are reserved first; the remaining budget
  T = max_length - prefix tokens - special tokens is shared by the two texts by the tokenizer's `longest_first`
  rule, each text cut at its end: when both fit, nothing is cut; when the shorter one fits in half the budget
  (T // 2), it is kept and the longer one gets the rest; otherwise the longer one keeps ceil(T / 2) tokens and the
  shorter floor(T / 2) (equal lengths: `text` keeps floor(T / 2), `text_pair` ceil(T / 2)). Without a prefix this is
  exactly `tokenizer(text, text_pair, truncation="longest_first", max_length=...)`. Pairs need a fast
  (tokenizers-backed) tokenizer, whose `sequence_ids` say which tokens belong to which text;
- lexical features: those of the two texts joined by one space (`pair_feature_text`), so every count covers both
  texts (a lexicon entry present in both counts once: groups count distinct entries) and the feature vector keeps
  its size; the gate, the statistics and IWN work unchanged;
- a pair task called without `text_pair`, or a single-text task called with one, is an error. In a batch,
  `text_pair` holds one entry per text: a string for rows of pair tasks, None for rows of single-text tasks.

Long texts (`long_text={"max_chunks": K, "stride": S}`, for every task, or `{task: {...}}` per task): a text longer
than one input is split into up to K overlapping windows. Each window holds the special tokens, the prefix (computed
once, from the features of the whole text) and T = max_length - special tokens - prefix tokens text tokens; window
j starts at token j (T - S) of the text (S = `stride`, the overlap between consecutive windows, as in the
tokenizers' `stride`); the text after the K-th window is dropped. Window 1 is exactly what truncation gives, so
K = 1 is today's truncation. Once any task has K > 1 the processor is "windowed": every example (K = 1 tasks: one
window) comes as its windows, `input_ids` etc. of shape ``[windows, length]`` with tensors (each row an example's
list of windows without), plus `num_windows` (windows per example); `lexical_features` and `task_ids` stay one per
example. Sentence-pair tasks cannot be windowed (refused).

Saving, loading and pushing are ProcessorMixin's (`save_pretrained`, `from_pretrained`, `push_to_hub`): the
tokenizer files, `processor_config.json` (the settings of `__init__`, `processor_class` and the `auto_map` for
AutoProcessor) and this module with its siblings, so `AutoProcessor.from_pretrained(repo, trust_remote_code=True)`
works for a user without surgellm_hf. SurgeProcessor adds only what is its own: `lexicon.json`, and in
`processor_config.json` the lexicon's feature names and the prefix bucket scheme, checked on load. This module is
copied to the Hub: it imports only stdlib, numpy, torch, transformers, huggingface_hub and its flat siblings.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from huggingface_hub import create_repo
from transformers import AutoConfig, AutoTokenizer, BatchEncoding, PreTrainedTokenizerBase
from transformers.processing_utils import ProcessorMixin
from transformers.utils import PROCESSOR_NAME, cached_file

from .configuration_surge import resolve_task_id
from .features import as_text_list, pair_feature_text
from .lexicon import LEXICON_FILE_NAME, Lexicon

PROCESSOR_CONFIG_VERSION = 1
PREFIX_STYLES = ("text", "tokens", "soft")
LONG_TEXT_KEYS = ("max_chunks", "stride")
TASK_TOKEN = "[SURGE_TASK_{task}]"
FEATURE_TOKEN = "[SURGE_F{index}_B{bucket}]"
COUNT_BUCKETS = 10  # log2 buckets 0 | 1 | 2-3 | ... | 128-255 | 256+
LINEAR_BUCKETS = 16  # floor value 0..14, then 15+
LINEAR_FEATURES = ("mean_word_length",)
BUCKET_SCHEME = f"count:log2x{COUNT_BUCKETS};linear:{'+'.join(LINEAR_FEATURES)}x{LINEAR_BUCKETS}"
_HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder", "proxies")
# trust/code kwargs and the model-only kwargs pipeline() forwards to every loader (dtype is always among them)
_IGNORED_LOAD_KWARGS = (
    "trust_remote_code",
    "code_revision",
    "use_fast",
    "user_agent",
    "dtype",
    "torch_dtype",
    "device_map",
    "attn_implementation",
)
_LOAD_KWARGS = (*_HUB_KWARGS, "max_length", "default_task", *_IGNORED_LOAD_KWARGS)
_PUSH_KWARGS = (
    "repo_id",
    "commit_message",
    "commit_description",
    "private",
    "token",
    "revision",
    "create_pr",
)


def feature_bucket(value: float, linear: bool = False) -> int:
    """Bucket of a raw feature value for the compact prefix (see the module docstring)."""
    v = max(int(math.floor(value)), 0)
    if linear:
        return min(v, LINEAR_BUCKETS - 1)
    return min(v.bit_length(), COUNT_BUCKETS - 1)


def _check_tasks(tasks: Any) -> list[str]:
    if tasks is None:
        return ["default"]
    if isinstance(tasks, Mapping):
        tasks = list(tasks)
    if isinstance(tasks, str) or not isinstance(tasks, Sequence):
        raise TypeError(
            f"tasks must be a list of task names (e.g. list(model.config.tasks)), got {tasks!r:.80}"
        )
    tasks = list(tasks)
    if not tasks:
        raise ValueError("tasks must name at least one task")
    for t in tasks:
        if not isinstance(t, str) or not t.strip():
            raise ValueError(f"task names must be non-blank strings, got {t!r}")
    if len(set(tasks)) != len(tasks):
        raise ValueError(f"task names must be unique, got {tasks}")
    return tasks


def _check_pair_tasks(pair_tasks: Any, tasks: list[str]) -> list[str]:
    """The pair tasks as a list in the order of `tasks` (JSON-safe); unknown or repeated names raise."""
    if pair_tasks is None:
        return []
    if isinstance(pair_tasks, str) or not isinstance(pair_tasks, Sequence | set | frozenset):
        raise TypeError(f"pair_tasks must be a list of task names, got {pair_tasks!r:.80}")
    names = list(pair_tasks)
    unknown = [t for t in names if t not in tasks]
    if unknown:
        raise ValueError(f"pair_tasks names unknown task(s) {unknown}; tasks: {tasks}")
    if len(set(names)) != len(names):
        raise ValueError(f"pair_tasks repeats a task: {names}")
    return [t for t in tasks if t in names]


def pair_lengths(len_text: int, len_pair: int, budget: int) -> tuple[int, int]:
    """Tokens kept of each text of a pair under `budget` (the tokenizer's `longest_first` rule, see the module
    docstring): nothing cut when both fit; else the shorter text is kept when it fits in budget // 2 and the longer
    gets the rest; else the longer keeps ceil(budget / 2), the shorter floor(budget / 2) (a tie: text_pair ceil)."""
    budget = max(budget, 0)
    if len_text + len_pair <= budget:
        return len_text, len_pair
    swap = len_text > len_pair
    short, long_ = (len_pair, len_text) if swap else (len_text, len_pair)
    if short > budget // 2:
        short, long_ = budget // 2, budget - budget // 2
    else:
        long_ = budget - short
    return (long_, short) if swap else (short, long_)


def _check_long_text(long_text: Any, tasks: list[str], pair_tasks: list[str]) -> dict[str, dict[str, int]]:
    """`long_text` as {task: {"max_chunks": K, "stride": S}} for the tasks with K > 1 (JSON-safe); a mapping of
    the two keys applies to every task, a mapping of mappings names tasks. Bad values raise, naming them."""
    if long_text is None:
        return {}
    if not isinstance(long_text, Mapping):
        raise TypeError(f"long_text must be a mapping, got {long_text!r:.80}")
    if long_text and all(isinstance(v, Mapping) for v in long_text.values()):
        unknown = [t for t in long_text if t not in tasks]
        if unknown:
            raise ValueError(f"long_text names unknown task(s) {unknown}; tasks: {tasks}")
        per_task = dict(long_text)
    else:
        per_task = dict.fromkeys(tasks, long_text)
    out = {}
    for task, spec in per_task.items():
        extra = sorted(set(spec) - set(LONG_TEXT_KEYS))
        if extra:
            hint = " (pool is the model's setting: SurgeConfig.long_text_pool)" if "pool" in extra else ""
            raise ValueError(
                f"long_text of task {task!r} has unknown key(s) {extra}{hint}; keys: {LONG_TEXT_KEYS}"
            )
        k, stride = spec.get("max_chunks", 1), spec.get("stride", 0)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"long_text.max_chunks of task {task!r} must be a positive integer, got {k!r}")
        if isinstance(stride, bool) or not isinstance(stride, int) or stride < 0:
            raise ValueError(f"long_text.stride of task {task!r} must be an integer >= 0, got {stride!r}")
        if k > 1:
            if task in pair_tasks:
                raise ValueError(
                    f"long_text (max_chunks {k}) is not supported for the sentence-pair task {task!r}: its two texts "
                    "are cut by the longest-first rule; set max_chunks 1 for it"
                )
            out[task] = {"max_chunks": k, "stride": stride}
    return {t: out[t] for t in tasks if t in out}


def window_starts(n_text: int, window: int, stride: int, max_chunks: int) -> list[int]:
    """Start offsets (in text tokens) of the windows of a text of `n_text` tokens: windows of `window` tokens,
    consecutive ones overlapping by `stride`, at most `max_chunks`; one window when the text fits in one."""
    starts = [0]
    while len(starts) < max_chunks and starts[-1] + window < n_text:
        starts.append(starts[-1] + window - stride)
    return starts


def _rows_shown(rows: list[int], limit: int = 5) -> str:
    return "rows " + ", ".join(map(str, rows[:limit])) + (", ..." if len(rows) > limit else "")


def _to_tensor(values: Any, return_tensors: Any, dtype: str) -> Any:
    if return_tensors is None:
        return values
    kind = getattr(return_tensors, "value", return_tensors)
    if kind == "pt":
        import torch

        return torch.tensor(values, dtype=getattr(torch, dtype))
    if kind == "np":
        return np.asarray(values, dtype=dtype)
    raise ValueError(f"return_tensors must be None, 'pt' or 'np', got {return_tensors!r}")


def _file_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The Hub / cache kwargs among `kwargs` that are set, for `cached_file` and `AutoTokenizer.from_pretrained`."""
    return {k: kwargs[k] for k in _HUB_KWARGS if kwargs.get(k) is not None}


def _encoder_config_kwarg(path: str, file_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``{"config": <encoder config>}`` when the folder holds a SURGELLM model config, else ``{}``.

    Without it, AutoTokenizer would read config.json (model_type "surge", remote code it may not trust) and fall back
    to the bare PreTrainedConfig, which logs "You are using a model of type surge to instantiate a model of type".
    """
    config_file = cached_file(path, "config.json", _raise_exceptions_for_missing_entries=False, **file_kwargs)
    if config_file is None:
        return {}
    with open(config_file, encoding="utf-8") as f:
        encoder = json.load(f).get("encoder_config")
    if not isinstance(encoder, dict) or "model_type" not in encoder:
        return {}
    return {"config": AutoConfig.for_model(**encoder)}


class SurgeProcessor(ProcessorMixin):
    """Turns raw texts and task names into SURGELLM model inputs (token ids, raw lexical features, task ids).

    Args:
        tokenizer: the encoder's tokenizer (a transformers tokenizer; "tokens" prefix mode adds special tokens to it).
        lexicon: the `Lexicon` whose features the model was built for (default: `Lexicon.curated()`).
        tasks: task names in the model's order (`list(model.config.tasks)`); a mapping is taken by its keys.
            Default: a single task "default", as in SurgeConfig.
        prefix: "text" (the paper's prefix string), "tokens" (compact added tokens), "soft" (virtual tokens the model
            adds; the processor reserves their positions) or None (no prefix).
        max_length: maximum sequence length in tokens, prefix included; the text is truncated, never the prefix.
        default_task: task used when a call names none (default: the first task).
        pair_tasks: the tasks whose examples are sentence pairs (`text` + `text_pair`), e.g. NLI or paraphrase;
            saved in processor_config.json in the order of `tasks`. Default: none.
        soft_prefix_length: virtual tokens of the soft prefix (1 or 2; only with prefix="soft"), reserved in
            `max_length`; must equal the model's `soft_prefix_length`.
        long_text: split long texts into overlapping windows (see the module docstring): {"max_chunks": K,
            "stride": S} for every task, or {task: {...}} per task. Default: none (truncation).
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        lexicon: Lexicon | Mapping[str, Any] | None = None,
        tasks: Sequence[str] | Mapping[str, Any] | None = None,
        prefix: str | None = "text",
        max_length: int = 128,
        default_task: str | None = None,
        pair_tasks: Sequence[str] | None = None,
        soft_prefix_length: int = 2,
        long_text: Mapping[str, Any] | None = None,
    ):
        if not isinstance(tokenizer, PreTrainedTokenizerBase):
            raise TypeError(f"tokenizer must be a transformers tokenizer, got {type(tokenizer).__name__}")
        if lexicon is None:
            lexicon = Lexicon.curated()
        elif isinstance(lexicon, Mapping):
            lexicon = Lexicon.from_dict(lexicon)
        elif not isinstance(lexicon, Lexicon):
            raise TypeError(f"lexicon must be a Lexicon, got {type(lexicon).__name__}")
        tasks = _check_tasks(tasks)
        if prefix not in (None, *PREFIX_STYLES):
            raise ValueError(f"prefix must be one of 'text', 'tokens', 'soft' or None, got {prefix!r}")
        if isinstance(soft_prefix_length, bool) or soft_prefix_length not in (1, 2):
            raise ValueError(f"soft_prefix_length must be 1 or 2, got {soft_prefix_length!r}")
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"max_length must be a positive integer, got {max_length!r}")
        if default_task is None:
            default_task = tasks[0]
        elif default_task not in tasks:
            raise ValueError(f"default_task {default_task!r} is not one of the tasks {tasks}")
        pair_tasks = _check_pair_tasks(pair_tasks, tasks)
        long_text = _check_long_text(long_text, tasks, pair_tasks)
        # all checks passed: only now touch the tokenizer
        super().__init__(tokenizer)
        self.lexicon = lexicon
        self.tasks = tasks
        self.prefix = prefix
        self.max_length = max_length
        self.default_task = default_task
        self.pair_tasks = pair_tasks
        self.soft_prefix_length = soft_prefix_length
        self.long_text = long_text
        self._special_layout_cache: tuple[int, int] | None = None
        self._linear = [name in LINEAR_FEATURES for name in lexicon.feature_names]
        self._prefix_len_cache: dict[str, int] = {}
        if prefix == "tokens":
            self.tokenizer.add_tokens(self.prefix_tokens(), special_tokens=True)

    # ------------------------------------------------------------------ prefix
    def prefix_tokens(self) -> list[str]:
        """All added tokens of the "tokens" prefix style: one per task, then one per (feature, bucket)."""
        out = [TASK_TOKEN.format(task=t) for t in self.tasks]
        for j, linear in enumerate(self._linear, start=1):
            n_buckets = LINEAR_BUCKETS if linear else COUNT_BUCKETS
            out += [FEATURE_TOKEN.format(index=j, bucket=b) for b in range(n_buckets)]
        return out

    def make_prefix(self, features: Sequence[float], task: str | int | None = None) -> str:
        """The prefix string of one example from its RAW features (empty string when prefix is None)."""
        task_name = self.tasks[self._task_id(task)]
        values = [math.floor(float(v)) for v in features]
        if len(values) != self.lexicon.num_features:
            raise ValueError(f"expected {self.lexicon.num_features} features, got {len(values)}")
        if self.prefix in (None, "soft"):
            return ""
        if self.prefix == "text":
            return "[TASK:" + task_name + "".join(f"|F{j}:{v}" for j, v in enumerate(values, start=1)) + "]"
        tokens = [TASK_TOKEN.format(task=task_name)]
        for j, (v, linear) in enumerate(zip(values, self._linear), start=1):
            tokens.append(FEATURE_TOKEN.format(index=j, bucket=feature_bucket(v, linear)))
        return "".join(tokens)

    def _prefix_token_count(self, prefix: str) -> int:
        """Tokens of the prefix inside the token ids (the soft prefix has none there: see `reserved_tokens`)."""
        if self.prefix in (None, "soft"):
            return 0
        if self.prefix == "tokens":
            return self.lexicon.num_features + 1
        n = self._prefix_len_cache.get(prefix)
        if n is None:
            n = len(self.tokenizer(prefix, add_special_tokens=False)["input_ids"])
            if len(self._prefix_len_cache) > 100_000:
                self._prefix_len_cache.clear()
            self._prefix_len_cache[prefix] = n
        return n

    def prefix_length(
        self,
        text: str | Sequence[str],
        task: str | int | Sequence[str | int] | None = None,
        text_pair: str | Sequence[str | None] | None = None,
    ) -> Any:
        """Tokens the prefix costs for `text` (an int for one string, a list for a batch; 0 without a prefix);
        `text_pair` as in `__call__` (a pair's prefix carries the features of both texts)."""
        texts = as_text_list(text, "text")
        task_ids = self._task_ids(task, len(texts))
        pairs = self._pair_list(text_pair, texts, task_ids, isinstance(text, str))
        if pairs is not None:
            texts = [t if p is None else pair_feature_text(t, p) for t, p in zip(texts, pairs)]
        features = self.lexicon.featurize(texts)
        reserved = self.reserved_tokens
        lengths = [
            self._prefix_token_count(self.make_prefix(f, t)) + reserved for f, t in zip(features, task_ids)
        ]
        return lengths[0] if isinstance(text, str) else lengths

    @property
    def reserved_tokens(self) -> int:
        """Positions of `max_length` held for the model's virtual tokens (the soft prefix's k; else 0)."""
        return self.soft_prefix_length if self.prefix == "soft" else 0

    @property
    def windowed(self) -> bool:
        """Whether long texts are split into windows (some task has `long_text` max_chunks > 1): then every
        example comes as its windows plus `num_windows`."""
        return bool(self.long_text)

    # ------------------------------------------------------------------ tasks
    def _task_id(self, task: str | int | None) -> int:
        return resolve_task_id(task, self.tasks, self.default_task)

    def _task_ids(self, task: Any, n: int) -> list[int]:
        if task is None or isinstance(task, (str, int, np.integer)):
            return [self._task_id(task)] * n
        if not isinstance(task, Sequence):
            raise TypeError(
                f"task must be a task name, a task id or a list with one per text, got {type(task).__name__}"
            )
        if len(task) != n:
            raise ValueError(
                f"task has {len(task)} entries for {n} texts; give one task per text or a single task"
            )
        return [self._task_id(t) for t in task]

    # ------------------------------------------------------------------ call
    def __call__(
        self,
        text: str | Sequence[str] | None = None,
        text_pair: str | Sequence[str | None] | None = None,
        task: str | int | Sequence[str | int] | None = None,
        *,
        return_tensors: str | None = None,
        padding: bool | str = False,
        truncation: bool = True,
        max_length: int | None = None,
        **tokenizer_kwargs: Any,
    ) -> BatchEncoding:
        """Model inputs for one text or a batch: input_ids, attention_mask, token_type_ids (if the tokenizer makes
        them), lexical_features (raw, float32) and task_ids. Lists when return_tensors is None (datasets.map),
        tensors with return_tensors="pt" (or "np").

        `text_pair` (tasks in `pair_tasks` only): the second text of each pair, a string for one text or a list
        with one entry per text (None for rows of single-text tasks); see the module docstring for the layout,
        the truncation rule and the features of a pair."""
        if text is None:
            raise TypeError("SurgeProcessor needs `text`: a string or a list of strings, got None")
        single = isinstance(text, str)
        texts = as_text_list(text, "text")
        task_ids = self._task_ids(task, len(texts))
        pairs = self._pair_list(text_pair, texts, task_ids, single)
        if max_length is None:
            max_length = self.max_length
        elif isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"max_length must be a positive integer, got {max_length!r}")
        if return_tensors is not None and getattr(return_tensors, "value", return_tensors) not in (
            "pt",
            "np",
        ):
            raise ValueError(f"return_tensors must be None, 'pt' or 'np', got {return_tensors!r}")
        for key in ("add_special_tokens", "is_split_into_words"):
            if key in tokenizer_kwargs:
                raise TypeError(
                    f"SurgeProcessor does not take {key!r}: the prefix layout depends on the defaults"
                )

        feature_texts = (
            texts
            if pairs is None
            else [t if p is None else pair_feature_text(t, p) for t, p in zip(texts, pairs)]
        )
        features = self.lexicon.featurize(feature_texts)
        if self.prefix in (None, "soft"):
            prefixes = [""] * len(texts)
            inputs = texts
        else:
            prefixes = [self.make_prefix(f, t) for f, t in zip(features, task_ids)]
            inputs = [p + " " + t for p, t in zip(prefixes, texts)]
        if self.reserved_tokens:  # the soft prefix's virtual tokens take k positions of max_length
            n_special = self.tokenizer.num_special_tokens_to_add(pair=pairs is not None)
            if max_length - self.reserved_tokens < n_special + 1:
                raise ValueError(
                    f"the soft prefix takes {self.reserved_tokens} positions and the special tokens {n_special}, "
                    f"which leaves no text in max_length={max_length}; raise max_length"
                )
            max_length -= self.reserved_tokens
        if self.windowed:
            if pairs is not None:  # the pair tasks are never windowed: refused when long_text was set
                raise ValueError(
                    "this processor splits long texts into windows (long_text), which sentence pairs cannot use"
                )
            encoded = self._encode_windows(
                inputs,
                prefixes,
                task_ids,
                single,
                return_tensors,
                padding,
                truncation,
                max_length,
                tokenizer_kwargs,
            )
        elif pairs is None:
            if truncation and self.prefix is not None:
                self._check_prefix_fits(prefixes, max_length)
            encoded = self.tokenizer(
                inputs[0] if single else inputs,
                padding=padding,
                truncation=truncation,
                max_length=max_length if truncation or padding == "max_length" else None,
                return_tensors=return_tensors,
                **tokenizer_kwargs,
            )
        else:
            encoded = self._encode_with_pairs(
                inputs,
                pairs,
                prefixes,
                single,
                return_tensors,
                padding,
                truncation,
                max_length,
                tokenizer_kwargs,
            )
        if single:
            feats: Any = features[:1].tolist() if return_tensors is not None else features[0].tolist()
            tids: Any = task_ids[:1] if return_tensors is not None else task_ids[0]
        else:
            feats, tids = features.tolist(), task_ids
        encoded["lexical_features"] = _to_tensor(feats, return_tensors, "float32")
        encoded["task_ids"] = _to_tensor(tids, return_tensors, "int64")
        return encoded

    def _pair_list(
        self, text_pair: Any, texts: list[str], task_ids: list[int], single: bool
    ) -> list[str | None] | None:
        """`text_pair` as one entry per text (None: no pairs in the call), checked against the pair tasks."""
        pair_ids = {self.tasks.index(t) for t in self.pair_tasks}
        if text_pair is None:
            rows = [i for i, t in enumerate(task_ids) if t in pair_ids]
            if rows:
                names = sorted({self.tasks[task_ids[i]] for i in rows}, key=self.tasks.index)
                raise ValueError(
                    f"task(s) {names} take sentence pairs: pass text_pair= (the second text of each pair); "
                    f"rows without one: {_rows_shown(rows)}"
                )
            return None
        if single:
            if not isinstance(text_pair, str):
                raise TypeError(
                    f"text is one string, so text_pair must be one string, got {type(text_pair).__name__}"
                )
            pairs: list[str | None] = [text_pair]
        else:
            if isinstance(text_pair, (str, bytes)) or not isinstance(text_pair, Sequence):
                raise TypeError(
                    "text is a list, so text_pair must be a list with one entry per text (a string for rows of "
                    f"pair tasks, None for the others), got {type(text_pair).__name__}"
                )
            pairs = list(text_pair)
            if len(pairs) != len(texts):
                raise ValueError(f"text_pair has {len(pairs)} entries for {len(texts)} texts")
            bad = [i for i, p in enumerate(pairs) if p is not None and not isinstance(p, str)]
            if bad:
                raise TypeError(
                    f"text_pair[{bad[0]}] must be a string or None, got {type(pairs[bad[0]]).__name__}"
                )
        missing = [i for i, (p, t) in enumerate(zip(pairs, task_ids)) if p is None and t in pair_ids]
        extra = [i for i, (p, t) in enumerate(zip(pairs, task_ids)) if p is not None and t not in pair_ids]
        problems = []
        if missing:
            names = sorted({self.tasks[task_ids[i]] for i in missing}, key=self.tasks.index)
            problems.append(
                f"task(s) {names} take sentence pairs but text_pair is None in {_rows_shown(missing)}"
            )
        if extra:
            names = sorted({self.tasks[task_ids[i]] for i in extra}, key=self.tasks.index)
            problems.append(
                f"task(s) {names} take a single text but text_pair is given in {_rows_shown(extra)} "
                f"(pair tasks of this processor: {self.pair_tasks})"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return pairs if any(p is not None for p in pairs) else None

    def _encode_with_pairs(
        self,
        inputs: list[str],
        pairs: list[str | None],
        prefixes: list[str],
        single: bool,
        return_tensors: Any,
        padding: bool | str,
        truncation: bool,
        max_length: int,
        tokenizer_kwargs: dict[str, Any],
    ) -> BatchEncoding:
        """Encode a batch holding pairs: pair rows in the tokenizer's pair format, cut by `pair_lengths`; single
        rows as without pairs; then padded together by the tokenizer."""
        unsupported = sorted(set(tokenizer_kwargs) - {"return_attention_mask", "return_token_type_ids"})
        if unsupported:
            raise TypeError(f"SurgeProcessor does not take {unsupported} together with text_pair")
        if not getattr(self.tokenizer, "is_fast", False):
            raise ValueError(
                f"sentence pairs need a fast (tokenizers-backed) tokenizer, got {type(self.tokenizer).__name__}"
            )
        pair_rows = [i for i, p in enumerate(pairs) if p is not None]
        single_rows = [i for i, p in enumerate(pairs) if p is None]
        if truncation:
            if single_rows and self.prefix is not None:
                self._check_prefix_fits([prefixes[i] for i in single_rows], max_length)
            self._check_prefix_fits([prefixes[i] for i in pair_rows], max_length, pair=True)
        rows: list[dict[str, Any] | None] = [None] * len(inputs)
        if single_rows:
            enc = self.tokenizer(
                [inputs[i] for i in single_rows],
                truncation=truncation,
                max_length=max_length if truncation else None,
                **tokenizer_kwargs,
            )
            for j, i in enumerate(single_rows):
                rows[i] = {k: v[j] for k, v in enc.items()}
        enc = self.tokenizer(
            [inputs[i] for i in pair_rows],
            [pairs[i] for i in pair_rows],
            truncation=False,
            **tokenizer_kwargs,
        )
        n_special = self.tokenizer.num_special_tokens_to_add(pair=True)
        for j, i in enumerate(pair_rows):
            seq = enc.sequence_ids(j)
            n_prefix = self._prefix_token_count(prefixes[i])
            first = [k for k, s in enumerate(seq) if s == 0]
            second = [k for k, s in enumerate(seq) if s == 1]
            keep = set(range(len(seq)))
            if truncation:
                n_a, n_b = pair_lengths(len(first) - n_prefix, len(second), max_length - n_special - n_prefix)
                keep -= set(first[n_prefix + n_a :]) | set(second[n_b:])
            rows[i] = {k: [x for n, x in enumerate(v[j]) if n in keep] for k, v in enc.items()}
        batch = self.tokenizer.pad(
            rows,
            padding=padding,
            max_length=max_length if padding == "max_length" else None,
            return_tensors=return_tensors,
            return_attention_mask=tokenizer_kwargs.get("return_attention_mask"),
        )
        if single and return_tensors is None:
            return BatchEncoding({k: v[0] for k, v in batch.items()})
        return batch

    def _special_layout(self) -> tuple[int, int]:
        """(special tokens before the text, after it) of one single-text encoding, e.g. (1, 1) for [CLS] x [SEP]."""
        if self._special_layout_cache is None:
            full = self.tokenizer("a")["input_ids"]
            body = self.tokenizer("a", add_special_tokens=False)["input_ids"]
            head = next(i for i in range(len(full) - len(body) + 1) if full[i : i + len(body)] == body)
            self._special_layout_cache = (head, len(full) - head - len(body))
        return self._special_layout_cache

    def _encode_windows(
        self,
        inputs: list[str],
        prefixes: list[str],
        task_ids: list[int],
        single: bool,
        return_tensors: Any,
        padding: bool | str,
        truncation: bool,
        max_length: int,
        tokenizer_kwargs: dict[str, Any],
    ) -> BatchEncoding:
        """Encode a batch into windows (see the module docstring): one tokenizer call for the whole batch, cut at
        the longest text any row's windows can hold, then each row's windows sliced from its encoding."""
        unsupported = sorted(set(tokenizer_kwargs) - {"return_attention_mask", "return_token_type_ids"})
        if unsupported:
            raise TypeError(f"SurgeProcessor does not take {unsupported} together with long_text windows")
        if not truncation:
            raise ValueError("long_text windows need truncation=True (each window holds max_length tokens)")
        self._check_prefix_fits(prefixes, max_length)
        n_special = self.tokenizer.num_special_tokens_to_add(pair=False)
        head, tail = self._special_layout()
        plans = []
        for prefix, task in zip(prefixes, task_ids):
            spec = self.long_text.get(self.tasks[task], {"max_chunks": 1, "stride": 0})
            n_prefix = self._prefix_token_count(prefix)
            window = max_length - n_special - n_prefix
            if spec["max_chunks"] > 1 and spec["stride"] >= window:
                raise ValueError(
                    f"long_text.stride {spec['stride']} of task {self.tasks[task]!r} must be smaller than the "
                    f"{window} text tokens a window holds (max_length {max_length + self.reserved_tokens} less "
                    f"{n_special} special, {n_prefix + self.reserved_tokens} prefix tokens)"
                )
            plans.append((n_prefix, window, spec["max_chunks"], spec["stride"]))
        cap = max(n_special + p + w + (k - 1) * (w - s) for p, w, k, s in plans)
        enc = self.tokenizer(inputs, truncation=True, max_length=cap, **tokenizer_kwargs)
        keys = list(enc.keys())
        flat, num_windows = [], []
        for i, (n_prefix, window, k, stride) in enumerate(plans):
            row = {key: enc[key][i] for key in keys}
            text_start, text_end = head + n_prefix, len(row["input_ids"]) - tail
            starts = window_starts(text_end - text_start, window, stride, k)
            for start in starts:
                lo, hi = text_start + start, min(text_start + start + window, text_end)
                flat.append({key: v[:text_start] + v[lo:hi] + v[text_end:] for key, v in row.items()})
            num_windows.append(len(starts))
        if return_tensors is not None or padding:
            padded = self.tokenizer.pad(
                flat,
                padding=padding or True,  # tensors need one width: an example's windows differ in length
                max_length=max_length if padding == "max_length" else None,
                return_tensors=return_tensors,
                return_attention_mask=tokenizer_kwargs.get("return_attention_mask"),
            )
            flat = [{key: padded[key][j] for key in padded} for j in range(len(flat))]
        else:
            padded = None
        if return_tensors is not None:
            out = BatchEncoding(dict(padded))
            out["num_windows"] = _to_tensor(num_windows, return_tensors, "int64")
            return out
        grouped: dict[str, Any] = {key: [] for key in flat[0]}
        pos = 0
        for n in num_windows:
            for key in grouped:
                grouped[key].append([w[key] for w in flat[pos : pos + n]])
            pos += n
        if single:
            return BatchEncoding({**{k: v[0] for k, v in grouped.items()}, "num_windows": num_windows[0]})
        return BatchEncoding({**grouped, "num_windows": num_windows})

    def _check_prefix_fits(self, prefixes: list[str], max_length: int, pair: bool = False) -> None:
        if self.tokenizer.truncation_side != "right":
            raise ValueError(
                f"the tokenizer truncates on the {self.tokenizer.truncation_side!r}, which would cut the "
                "prefix; set tokenizer.truncation_side = 'right' (the text is cut, never the prefix)"
            )
        n_special = self.tokenizer.num_special_tokens_to_add(pair=pair)
        longest = max((self._prefix_token_count(p) for p in prefixes), default=0)
        if longest + n_special > max_length:
            compact = (
                f" or use the compact prefix (prefix='tokens', in a run config prefix_style: tokens; "
                f"{self.lexicon.num_features + 1} tokens)"
                if self.prefix == "text"
                else ""
            )
            raise ValueError(
                f"the {self.prefix!r} prefix takes {longest} tokens plus {n_special} special tokens"
                + (" of a sentence pair" if pair else "")
                + f", more than max_length={max_length}; raise max_length above {longest + n_special} so "
                "that text fits" + compact
            )

    @property
    def model_input_names(self) -> list[str]:
        """Names of the model inputs this processor returns (the tokenizer's, then lexical_features, task_ids, and
        num_windows when it splits long texts)."""
        windows = ["num_windows"] if self.windowed else []
        return [*self.tokenizer.model_input_names, "lexical_features", "task_ids", *windows]

    # ------------------------------------------------------------------ model checks
    def check_model(self, model: Any) -> None:
        """Raise ValueError naming every mismatch between this processor and a SURGELLM model (or its config):
        feature count and names, task names and order, and a vocabulary too small for the tokenizer."""
        config = getattr(model, "config", model)
        problems = []
        num_features = getattr(config, "num_features", None)
        if num_features is None:
            raise ValueError(
                f"{type(model).__name__} has no num_features in its config: not a SURGELLM model"
            )
        if num_features != self.lexicon.num_features:
            problems.append(
                f"the model takes {num_features} lexical features but the lexicon {self.lexicon.name!r} "
                f"gives {self.lexicon.num_features} ({self.lexicon.n_groups} groups + 6)"
            )
        names = getattr(config, "feature_names", None)
        if names is not None and list(names) != self.lexicon.feature_names:
            problems.append(
                f"feature names differ: model {list(names)} vs lexicon {self.lexicon.feature_names}"
            )
        model_tasks = getattr(config, "task_names", None)
        if model_tasks is None and getattr(config, "tasks", None) is not None:
            model_tasks = list(config.tasks)
        if model_tasks is not None and list(model_tasks) != self.tasks:
            problems.append(
                f"tasks differ (names and order must match): model {list(model_tasks)} vs processor "
                f"{self.tasks}"
            )
        model_soft = getattr(config, "soft_prefix_length", 0) or 0
        if model_soft != self.reserved_tokens:
            problems.append(
                f"the model has a soft prefix of {model_soft} virtual tokens but the processor reserves "
                f"{self.reserved_tokens} (prefix {self.prefix!r}, soft_prefix_length {self.soft_prefix_length})"
            )
        get_emb = getattr(model, "get_input_embeddings", None)
        if callable(get_emb) and get_emb() is not None and get_emb().num_embeddings < len(self.tokenizer):
            problems.append(
                f"the model has {get_emb().num_embeddings} token embeddings but the tokenizer has "
                f"{len(self.tokenizer)} tokens; call processor.prepare_model(model)"
            )
        if problems:
            raise ValueError("processor and model do not match:\n- " + "\n- ".join(problems))

    def prepare_model(self, model: Any) -> Any:
        """Resize the model's token embeddings when the tokenizer has more tokens (compact prefix); returns model."""
        n_tokens = len(self.tokenizer)
        if model.get_input_embeddings().num_embeddings < n_tokens:
            model.resize_token_embeddings(n_tokens)
        return model

    # ------------------------------------------------------------------ save / load (ProcessorMixin + lexicon.json)
    def to_dict(self) -> dict[str, Any]:
        """ProcessorMixin's settings (tasks, default_task, prefix, max_length, pair_tasks when there are any,
        auto_map, processor_class) plus the lexicon's identity and the prefix scheme; the lexicon itself is saved
        to lexicon.json."""
        out = super().to_dict()
        out.pop("lexicon", None)
        if not out.get("pair_tasks"):  # no pair tasks: the file stays as before sentence pairs existed
            out.pop("pair_tasks", None)
        if not out.get("long_text"):  # likewise without long-text windows and without a soft prefix
            out.pop("long_text", None)
        if self.prefix != "soft":
            out.pop("soft_prefix_length", None)
        out.update(
            surge_processor_version=PROCESSOR_CONFIG_VERSION,
            prefix_buckets=BUCKET_SCHEME,
            lexicon_file=LEXICON_FILE_NAME,
            lexicon_name=self.lexicon.name,
            num_features=self.lexicon.num_features,
            feature_names=self.lexicon.feature_names,
        )
        return out

    def save_pretrained(
        self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs: Any
    ) -> list[str]:
        """What ProcessorMixin saves (tokenizer files, processor_config.json, remote code) plus lexicon.json.

        With push_to_hub=True the new or changed files are uploaded (kwargs: repo_id, commit_message,
        commit_description, private, token, revision, create_pr)."""
        save_directory = os.fspath(save_directory)
        kwargs.pop("max_shard_size", None)  # PushToHubMixin.push_to_hub passes it; a processor has no shards
        unknown = sorted(set(kwargs) - (set(_PUSH_KWARGS) if push_to_hub else set()))
        if unknown:
            raise TypeError(f"save_pretrained got unexpected arguments {unknown}")
        if os.path.isfile(save_directory):
            raise ValueError(f"save_directory {save_directory!r} is a file, not a directory")
        if push_to_hub:
            # ProcessorMixin would upload before lexicon.json exists: push its way, after the lexicon is written
            os.makedirs(save_directory, exist_ok=True)
            repo_id = kwargs.pop("repo_id", None) or os.path.basename(os.path.abspath(save_directory))
            token, private = kwargs.pop("token", None), kwargs.pop("private", None)
            repo_id = create_repo(repo_id, private=private, token=token, exist_ok=True).repo_id
            files_timestamps = self._get_files_timestamps(save_directory)
        files = super().save_pretrained(save_directory)
        lexicon_path = os.path.join(save_directory, LEXICON_FILE_NAME)
        self.lexicon.to_json(lexicon_path)
        if push_to_hub:
            self._upload_modified_files(save_directory, repo_id, files_timestamps, token=token, **kwargs)
        return [*files, lexicon_path]

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any
    ) -> SurgeProcessor:
        """Load a processor saved with `save_pretrained` / `push_to_hub` from a folder or a Hub repo.

        Hub kwargs: cache_dir, force_download, local_files_only, token, revision, subfolder, proxies.
        Overrides: max_length, default_task."""
        unknown = [k for k in kwargs if not k.startswith("_") and k not in _LOAD_KWARGS]
        if unknown:
            raise TypeError(f"SurgeProcessor.from_pretrained got unexpected arguments {unknown}")
        return super().from_pretrained(os.fspath(pretrained_model_name_or_path), **kwargs)

    @classmethod
    def get_processor_dict(
        cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """ProcessorMixin's processor_config.json, checked as a SurgeProcessor's, with the Lexicon of lexicon.json."""
        path = os.fspath(pretrained_model_name_or_path)
        file_kwargs = _file_kwargs(kwargs)
        config, kwargs = super().get_processor_dict(path, **kwargs)
        if not config.keys() - {"chat_template"}:
            raise OSError(
                f"{path!r} has no {PROCESSOR_NAME}: it is not a saved SurgeProcessor "
                "(create one with SurgeProcessor.from_encoder_pretrained and save_pretrained)"
            )
        version = config.get("surge_processor_version")
        if config.get("processor_class") != "SurgeProcessor" or version is None:
            raise ValueError(
                f"{PROCESSOR_NAME} of {path!r} describes {config.get('processor_class')!r}, "
                "not a SurgeProcessor"
            )
        if version != PROCESSOR_CONFIG_VERSION:
            raise ValueError(
                f"{path!r} holds a SurgeProcessor of config version {version}; this code reads "
                f"version {PROCESSOR_CONFIG_VERSION}"
            )
        if config.get("prefix") == "tokens" and config.get("prefix_buckets") != BUCKET_SCHEME:
            raise ValueError(
                f"{path!r} uses prefix buckets {config.get('prefix_buckets')!r}; this code makes "
                f"{BUCKET_SCHEME!r}"
            )
        lexicon_name = config.get("lexicon_file", LEXICON_FILE_NAME)
        lexicon_file = cached_file(
            path, lexicon_name, _raise_exceptions_for_missing_entries=False, **file_kwargs
        )
        if lexicon_file is None:
            raise OSError(f"{path!r} has {PROCESSOR_NAME} but no {lexicon_name}; save the processor again")
        lexicon = Lexicon.from_json(lexicon_file)
        if config.get("feature_names") not in (None, lexicon.feature_names):
            raise ValueError(
                f"{lexicon_name} of {path!r} gives features {lexicon.feature_names} but "
                f"{PROCESSOR_NAME} records {config['feature_names']}; the files do not belong together"
            )
        return {**config, "lexicon": lexicon}, kwargs

    @classmethod
    def _get_arguments_from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        processor_dict: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Any]:
        """The one sub-processor, the tokenizer: a stock one (never the repo's remote code: that would prompt the
        user a second time), built with the encoder config (see `_encoder_config_kwarg`)."""
        path = os.fspath(pretrained_model_name_or_path)
        file_kwargs = _file_kwargs(kwargs)
        config = _encoder_config_kwarg(path, file_kwargs)
        return [AutoTokenizer.from_pretrained(path, trust_remote_code=False, **config, **file_kwargs)]

    @classmethod
    def from_encoder_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        lexicon: Lexicon | None = None,
        tasks: Sequence[str] | Mapping[str, Any] | None = None,
        prefix: str | None = "text",
        max_length: int = 128,
        default_task: str | None = None,
        pair_tasks: Sequence[str] | None = None,
        soft_prefix_length: int = 2,
        long_text: Mapping[str, Any] | None = None,
        **tokenizer_kwargs: Any,
    ) -> SurgeProcessor:
        """A new processor around the tokenizer of an encoder checkpoint (path or Hub id)."""
        tokenizer = AutoTokenizer.from_pretrained(os.fspath(name_or_path), **tokenizer_kwargs)
        return cls(
            tokenizer,
            lexicon=lexicon,
            tasks=tasks,
            prefix=prefix,
            max_length=max_length,
            default_task=default_task,
            pair_tasks=pair_tasks,
            soft_prefix_length=soft_prefix_length,
            long_text=long_text,
        )


SurgeProcessor.register_for_auto_class("AutoProcessor")

__all__ = ["SurgeProcessor", "feature_bucket", "pair_lengths", "window_starts", "PREFIX_STYLES"]
