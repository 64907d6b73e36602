"""Publishing SURGELLM models to the Hub: model + processor + lexicon + model card in one commit, adapters, run folders.

Everything is checked before anything is uploaded (repo id, fitted normalization statistics, processor/model
agreement), so a refused push leaves the Hub untouched. The uploaded folder is exactly what `save_pretrained`
writes (safetensors weights, config with `auto_map` and `custom_pipelines`, remote-code files, tokenizer,
processor config, `lexicon.json`), plus `README.md` rendered by `model_card`, for a run `surgellm_run.json`, and the
Inference Endpoints files (`handler.py`, `surgellm_runtime.py`, `requirements.txt`; `hub.endpoint`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import CommitInfo, HfApi, hf_hub_download
from transformers import AutoModel

from ..configuration_surge import SurgeConfig
from ..encoders import local_encoder
from ..inference import load_run_model
from ..lora import LORA_ADAPTER_CONFIG, LORA_ADAPTER_WEIGHTS, is_lora_folder
from ..processing_surge import SurgeProcessor
from .endpoint import write_endpoint_files
from .model_card import SurgeModelCardData
from .remote_code import copy_remote_code
from .repo_id import check_repo_id

RUN_FILE_NAME = "surgellm_run.json"
"""The run's metrics.json, published beside the weights so the card can be rebuilt from the repo alone."""


def check_publishable(model: Any, processor: Any = None, repo_id: str | None = None) -> None:
    """Refuse, with a ValueError naming the problem, what must not reach the Hub.

    Checks the repo id, that the model's normalization statistics were fitted (unless ``norm == "none"`` or there is
    no gate) and, with a processor, that its tasks and lexicon features match the model (`processor.check_model`).
    """
    if repo_id is not None:
        check_repo_id(repo_id)
    config = getattr(model, "config", None)
    if config is None or getattr(config, "model_type", None) != "surge":
        raise TypeError(
            f"Expected a SURGELLM model (SurgeForSequenceClassification), got {type(model).__name__}."
        )
    if not model.feature_normalizer_fitted:
        raise ValueError(
            f"The model uses norm={config.norm!r} but its feature normalization statistics were never fitted, so its "
            "predictions would be meaningless. Call `model.fit_feature_normalizer(features, labels, task_ids)` on the "
            "training features (before training) and train, then publish."
        )
    if processor is not None:
        check = getattr(processor, "check_model", None)
        if check is None:
            raise TypeError(f"Expected a SurgeProcessor, got {type(processor).__name__}.")
        check(model)


def _save_folder(
    model: Any,
    processor: Any,
    folder: Path,
    card: SurgeModelCardData | None,
    adapter: bool,
    lora_dir: Path | None = None,
) -> None:
    """Write everything that gets uploaded into `folder`: weights (or the adapter), processor, remote code, card.

    With `lora_dir` (a LoRA run folder) the adapter is that folder's PEFT adapter and SurgeConfig."""
    if adapter and lora_dir is not None:
        for name in (LORA_ADAPTER_WEIGHTS, LORA_ADAPTER_CONFIG, "config.json"):
            shutil.copyfile(lora_dir / name, folder / name)
    elif adapter:
        model.save_surge_modules(folder)
    else:
        model.save_pretrained(folder)  # config with auto_map and custom_pipelines (the pipeline route)
    if processor is not None:
        processor.save_pretrained(folder)
    # every remote-code file, so that a user without surgellm_hf can load the classes (and call from_adapter)
    copy_remote_code(folder)
    if lora_dir is None or not adapter:  # the Inference Endpoints handler (a LoRA adapter needs the package)
        write_endpoint_files(folder)
    if card is not None:
        card.to_model_card().save(folder / "README.md")


def publish(
    model: Any,
    processor: Any,
    repo_id: str,
    *,
    card: SurgeModelCardData | None = None,
    metrics: dict[str, dict[str, dict[str, Any]]] | None = None,
    training: dict[str, Any] | None = None,
    run_file: str | os.PathLike | None = None,
    adapter_only: bool = False,
    private: bool | None = None,
    token: str | bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    lora_dir: str | os.PathLike | None = None,
) -> CommitInfo:
    """Push model (or only its adapter; `lora_dir`: the PEFT LoRA adapter of that run folder), processor and a rendered model card to `repo_id` in one commit.

    `metrics` is split -> task -> metric -> value for the card (ignored when `card` is given). Returns the
    `CommitInfo` (a str holding the commit URL). Raises before any upload when `check_publishable` fails.
    """
    check_publishable(model, processor, repo_id)
    if processor is None:
        raise ValueError(
            "Publishing needs the model's SurgeProcessor (tokenizer, lexicon, prefix settings): without it a Hub "
            "user cannot compute the lexical features. Pass `processor=`."
        )
    if card is None:
        card = SurgeModelCardData.from_model(
            model, processor, repo_id=repo_id, metrics=metrics, training=training
        )
    card.adapter_only = adapter_only
    card.lora_adapter = adapter_only and lora_dir is not None
    with tempfile.TemporaryDirectory(prefix="surgellm_push_") as tmp:
        folder = Path(tmp)
        _save_folder(
            model, processor, folder, card, adapter_only, Path(lora_dir) if lora_dir else None
        )  # may still refuse (e.g. save_adapter checks)
        if run_file is not None:
            shutil.copyfile(run_file, folder / RUN_FILE_NAME)
        api = HfApi(token=token)
        repo_url = api.create_repo(repo_id, private=private, exist_ok=True)
        what = "adapter" if adapter_only else "model"
        return api.upload_folder(
            repo_id=repo_url.repo_id,
            folder_path=folder,
            revision=revision,
            commit_message=commit_message or f"Upload SURGELLM {what}, processor, lexicon and model card",
        )


def publish_run(
    run_dir: str | os.PathLike,
    repo_id: str,
    *,
    private: bool | None = None,
    adapter_only: bool = False,
    token: str | bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
) -> CommitInfo:
    """Publish a finished `surgellm train` run folder (model + processor + metrics.json) — `surgellm push RUN_DIR REPO`.

    Any folder `inference.load_run_model` reads is accepted (a LoRA run, a `save_adapter` folder with its
    processor); without metrics.json the card shows no metrics. The card shows the run's per-task validation and
    test metrics, variant, lexicon and training settings; the published copy of metrics.json
    (`surgellm_run.json`) holds no path of this machine (`portable_record`).
    """
    check_repo_id(repo_id)
    run_dir = Path(run_dir)
    model, processor = load_run_model(run_dir)
    lora_dir = run_dir if is_lora_folder(run_dir) else None  # a LoRA run: its adapter is the PEFT adapter
    if adapter_only and lora_dir is None:
        _check_encoder_is_base(model)
        model.freeze_encoder()  # weights equal the base encoder's, so the adapter loses nothing
    with tempfile.TemporaryDirectory(prefix="surgellm_run_") as tmp:
        run_file = None
        if (run_dir / "metrics.json").is_file():
            record = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
            run_file = Path(tmp) / "metrics.json"
            run_file.write_text(
                json.dumps(portable_record(record, run_dir), indent=2) + "\n", encoding="utf-8"
            )
            card = SurgeModelCardData.from_run(tmp, model, processor, repo_id=repo_id)
        else:
            card = SurgeModelCardData.from_model(model, processor, repo_id=repo_id)
        return publish(
            model,
            processor,
            repo_id,
            card=card,
            run_file=run_file,
            adapter_only=adapter_only,
            private=private,
            token=token,
            revision=revision,
            commit_message=commit_message,
            lora_dir=lora_dir if adapter_only else None,
        )


LOCAL_PATH_MARK = "<local>"
"""What a published run record shows in place of a folder outside the run folder (`<local>/name`)."""


def portable_record(record: Any, run_dir: str | os.PathLike) -> Any:
    """`record` (a run's metrics.json) without the paths of this machine: a path inside `run_dir` becomes relative
    to it (``checkpoints/checkpoint-40``), any other absolute path ``<local>/`` plus its last part (the data folder,
    output_dir, a local encoder), so a published record tells what was used and nothing of the machine."""
    root = os.path.realpath(run_dir)
    if isinstance(record, dict):
        return {k: portable_record(v, run_dir) for k, v in record.items()}
    if isinstance(record, list):
        return [portable_record(v, run_dir) for v in record]
    if isinstance(record, str) and os.path.isabs(record):
        path = os.path.realpath(record)
        if path == root or path.startswith(root + os.sep):
            return Path(os.path.relpath(path, root)).as_posix()
        return f"{LOCAL_PATH_MARK}/{Path(record).name}"
    return record


def _check_encoder_is_base(model: Any) -> None:
    """Refuse an adapter-only push of a run whose encoder weights differ from its base checkpoint's."""
    base_name = model.config.encoder_name_or_path
    if not base_name:
        raise ValueError(
            "The run's model names no base encoder (`encoder_name_or_path`); push the full model."
        )
    base = AutoModel.from_pretrained(local_encoder(base_name)).state_dict()
    changed = [
        key
        for key, value in model.surge.encoder.state_dict().items()
        if key not in base or base[key].shape != value.shape or not torch.equal(base[key], value)
    ]
    if changed:
        raise ValueError(
            f"The encoder of this run differs from its base {base_name!r} ({len(changed)} tensors, e.g. "
            f"{changed[:3]}): it was fine-tuned, so an adapter-only push would lose it. Push the full model."
        )


def update_model_card(
    repo_id: str, *, token: str | bool | None = None, revision: str | None = None
) -> CommitInfo | None:
    """Re-render a repo's README from what the repo holds (config, processor, `surgellm_run.json`).

    For the plain `model.push_to_hub` / `processor.push_to_hub` path: whichever is pushed last leaves a complete card.
    Returns None (uploads nothing) when the repo has no SURGELLM config yet.
    """
    check_repo_id(repo_id)
    api = HfApi(token=token)
    files = set(api.list_repo_files(repo_id, revision=revision))
    if "config.json" not in files:
        return None
    config = SurgeConfig.from_pretrained(repo_id, revision=revision, token=token)
    processor = None
    if "lexicon.json" in files:
        processor = SurgeProcessor.from_pretrained(repo_id, revision=revision, token=token)
    holder = type("_ConfigHolder", (), {"config": config})()
    if RUN_FILE_NAME in files:
        with tempfile.TemporaryDirectory() as tmp:
            path = hf_hub_download(repo_id, RUN_FILE_NAME, revision=revision, token=token)
            shutil.copyfile(path, Path(tmp) / "metrics.json")
            card = SurgeModelCardData.from_run(tmp, holder, processor, repo_id=repo_id)
    else:
        card = SurgeModelCardData.from_model(holder, processor, repo_id=repo_id)
    content = str(card.to_model_card())
    return api.upload_file(
        path_or_fileobj=content.encode("utf-8"),
        path_in_repo="README.md",
        repo_id=repo_id,
        revision=revision,
        commit_message="Update SURGELLM model card",
    )


__all__ = [
    "publish",
    "publish_run",
    "portable_record",
    "check_publishable",
    "check_repo_id",
    "update_model_card",
    "RUN_FILE_NAME",
]
