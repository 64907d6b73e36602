"""transformers' own common model tests (``ModelTesterMixin``, ``ConfigTester``) run against the SURGELLM classes.

The common tests come from the source distribution of the installed transformers version, fetched into a cache
folder by ``tests/transformers_common/fetch.py`` (``.ci/run`` runs it before pytest). Without that fetch this
module skips, unless ``SURGELLM_REQUIRE_TRANSFORMERS_TESTS=1`` (CI), where it fails. The same contract is tested
directly, without the sdist, in ``tests/test_modeling_surge_contract.py``.
"""

from __future__ import annotations

import tempfile
import unittest
from collections.abc import Iterator
from unittest import mock

import pytest
import torch
from transformers import AutoModel, AutoModelForSequenceClassification, BertConfig
from transformers.models.auto import modeling_auto
from transformers.testing_utils import CaptureLogger, LoggingLevel
from transformers.utils import logging

from surgellm_hf import SurgeConfig, SurgeForSequenceClassification, SurgeModel
from tests.transformers_common import CommonTestsUnavailable, load_common_tests, required

try:
    _modeling_common, _configuration_common = load_common_tests()
except CommonTestsUnavailable as _err:
    if required():
        raise
    pytest.skip(str(_err), allow_module_level=True)

ModelTesterMixin = _modeling_common.ModelTesterMixin
ConfigTester = _configuration_common.ConfigTester
ids_tensor = _modeling_common.ids_tensor
floats_tensor = _modeling_common.floats_tensor
random_attention_mask = _modeling_common.random_attention_mask

# Task order is deliberately not alphabetical: ids follow the order given, never a sorted one (docs/architecture.md#pitfall-11).
TASKS = {"sst2": 2, "llm7": 3}
LABEL_NAMES = {"sst2": ["negative", "positive"], "llm7": ["gpt", "llama", "human"]}


@pytest.fixture(autouse=True, scope="module")
def _surge_in_transformers_name_tables() -> Iterator[None]:
    """List the SURGELLM classes in the static class-name tables an in-tree model would be in.

    Several common tests run only for classes named there (``test_problem_types``, the gradient-checkpointing
    training tests, ``test_model_forward_default_config_values``, the labels in ``_prepare_for_class``);
    ``AutoModel.register`` fills the lazy mappings but not these tables, so without this those tests would pass
    without testing anything.
    """
    with (
        mock.patch.dict(modeling_auto.MODEL_MAPPING_NAMES, {"surge": "SurgeModel"}),
        mock.patch.dict(
            modeling_auto.MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
            {"surge": "SurgeForSequenceClassification"},
        ),
    ):
        yield


class SurgeModelTester:
    """Builds a tiny SURGELLM config (tiny BERT encoder, two tasks) and matching inputs, as BertModelTester does."""

    def __init__(
        self,
        parent: unittest.TestCase,
        batch_size: int = 7,
        seq_length: int = 7,
        is_training: bool = True,
        vocab_size: int = 99,
        hidden_size: int = 32,
        num_hidden_layers: int = 2,
        num_attention_heads: int = 4,
        intermediate_size: int = 37,
        max_position_embeddings: int = 64,
        type_vocab_size: int = 2,
        num_features: int = 16,
        use_gate: bool = True,
    ) -> None:
        self.parent = parent
        self.batch_size = batch_size
        self.seq_length = seq_length
        self.is_training = is_training
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.num_features = num_features
        self.use_gate = use_gate
        self.tasks = dict(TASKS)

    def get_encoder_config(self) -> BertConfig:
        """The tiny BERT encoder config."""
        return BertConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size,
            max_position_embeddings=self.max_position_embeddings,
            type_vocab_size=self.type_vocab_size,
            pad_token_id=0,
        )

    def get_config(self) -> SurgeConfig:
        """SurgeConfig around the tiny encoder.

        ``norm="none"``: every common test builds a fresh model, and a model whose normalization statistics were
        never fitted refuses to run by design; the gate, task embedding and features are all still used.
        """
        return SurgeConfig(
            encoder_config=self.get_encoder_config(),
            tasks=dict(self.tasks),
            task_label_names={k: list(v) for k, v in LABEL_NAMES.items()},
            num_features=self.num_features,
            use_gate=self.use_gate,
            norm="none",
        )

    def prepare_config_and_inputs(self) -> tuple[SurgeConfig, dict[str, torch.Tensor]]:
        """Config plus a mixed-task batch: ids, mask, token types, lexical features and task ids."""
        inputs = {
            "input_ids": ids_tensor([self.batch_size, self.seq_length], self.vocab_size),
            "attention_mask": random_attention_mask([self.batch_size, self.seq_length]),
            "token_type_ids": ids_tensor([self.batch_size, self.seq_length], self.type_vocab_size),
            "lexical_features": floats_tensor([self.batch_size, self.num_features], scale=4.0),
            # rows alternate between the tasks, so every batch mixes them
            "task_ids": torch.arange(self.batch_size) % len(self.tasks),
        }
        return self.get_config(), inputs

    def prepare_config_and_inputs_for_common(self) -> tuple[SurgeConfig, dict[str, torch.Tensor]]:
        return self.prepare_config_and_inputs()

    def labels_for(self, task_ids: torch.Tensor) -> torch.Tensor:
        """Valid labels for a batch: row i gets label i modulo its own task's label count."""
        counts = torch.tensor(list(self.tasks.values()))[task_ids.cpu()]
        return (torch.arange(task_ids.shape[0]) % counts).to(task_ids.device)


class SurgeModelTest(ModelTesterMixin, unittest.TestCase):
    """The common model tests over both SURGELLM classes (gate on: the SURGELLM path)."""

    all_model_classes = (SurgeModel, SurgeForSequenceClassification)
    tester_kwargs: dict = {}
    # a composite model: the encoder is a sub-model with its own sub-config (and attention implementation)
    _is_composite = True
    # inputs besides input_ids/attention_mask that tests building their own batches (eager vs sdpa) must pass
    additional_model_inputs = ["token_type_ids", "lexical_features", "task_ids"]
    # _init_weights must cover every SURGELLM parameter and buffer (docs/architecture.md#pitfall-1): run the check the common tests
    # otherwise reserve for models whose config file carries a copyright year of 2023 or later
    test_can_init_all_missing_weights_before_2023 = True

    def setUp(self) -> None:
        self.model_tester = SurgeModelTester(self, **self.tester_kwargs)
        # A composite config: text properties (vocab_size, ...) live in get_text_config(), as for other
        # composite models, so has_text_modality=False.
        self.config_tester = ConfigTester(
            self,
            config_class=SurgeConfig,
            has_text_modality=False,
            tasks=[[name, n] for name, n in TASKS.items()],
            task_label_names=[[k, list(v)] for k, v in LABEL_NAMES.items()],
            default_task="llm7",
            norm="none",
            num_features=16,
        )

    def _prepare_for_class(self, inputs_dict: dict, model_class: type, return_labels: bool = False) -> dict:
        inputs_dict = super()._prepare_for_class(inputs_dict, model_class, return_labels=return_labels)
        if return_labels and model_class is SurgeForSequenceClassification:
            inputs_dict["labels"] = self.model_tester.labels_for(inputs_dict["task_ids"])
        return inputs_dict

    # -- common tests that do not apply, each with its reason ---------------------------------------------------
    @unittest.skip(
        "SURGELLM problem types are per task (task_problem_types) and a num_labels other than the default task's is "
        "refused by design; test_problem_types.py checks each type's loss, labels and the problem_type rules."
    )
    def test_problem_types(self) -> None:
        pass

    @unittest.skip(
        "num_labels/id2label/label2id are derived from the default task; SurgeConfig(num_labels=5) with other "
        "tasks is refused by design (test_modeling_surge_contract.py checks the refusal and the derived values)."
    )
    def test_config_with_num_labels(self) -> None:
        pass

    # -- common tests adapted to per-task heads ---------------------------------------------------------------------
    def test_load_with_mismatched_shapes(self) -> None:
        """The common test with head sizes changed through `tasks` (num_labels=42 is refused by design).

        Everything else as in ModelTesterMixin: a mismatch raises RuntimeError unless ignore_mismatched_sizes=True,
        which re-initialises the mismatched weights and logs it; the encoder's vocab mismatch likewise.
        """
        config, inputs_dict = self.model_tester.prepare_config_and_inputs_for_common()
        bigger = {"sst2": 2, "llm7": 5}
        with tempfile.TemporaryDirectory() as tmp_dir:
            SurgeForSequenceClassification(config).save_pretrained(tmp_dir)
            with self.assertRaises(RuntimeError):
                AutoModelForSequenceClassification.from_pretrained(
                    tmp_dir, tasks=bigger, task_label_names=None
                )
            logger = logging.get_logger("transformers.modeling_utils")
            with LoggingLevel(logging.WARNING), CaptureLogger(logger) as cl:  # earlier tests may lower it
                new_model = AutoModelForSequenceClassification.from_pretrained(
                    tmp_dir, tasks=bigger, task_label_names=None, ignore_mismatched_sizes=True
                )
            self.assertIn("Reinit due to size mismatch", cl.out)
            self.assertEqual(list(new_model.config.tasks.items()), list(bigger.items()))
            inputs = self._prepare_for_class(inputs_dict, SurgeForSequenceClassification)
            self.assertEqual(new_model(**inputs).logits.shape[1], 5)

            config.get_text_config().vocab_size = 10
            with self.assertRaises(RuntimeError):
                AutoModel.from_pretrained(tmp_dir, config=config)
            with LoggingLevel(logging.WARNING), CaptureLogger(logger) as cl:  # earlier tests may lower it
                encoder_only = AutoModel.from_pretrained(tmp_dir, config=config, ignore_mismatched_sizes=True)
            self.assertIn("Reinit due to size mismatch", cl.out)
            self.assertEqual(encoder_only.get_input_embeddings().weight.shape[0], 10)
            small = dict(inputs_dict, input_ids=ids_tensor(list(inputs_dict["input_ids"].shape), 10))
            encoder_only(**self._prepare_for_class(small, SurgeModel))

    def test_can_load_ignoring_mismatched_shapes(self) -> None:
        """The common test with one task's label count changed through `tasks` instead of num_labels=42.

        Only that task's last head layer is re-initialised; every other weight (encoder, gate, the other heads)
        loads unchanged.
        """
        torch.manual_seed(42)
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        bigger = [["sst2", 2], ["llm7", 5]]  # the saved (list) form; the Auto test above passes a dict
        changed = "heads.1.4."
        with tempfile.TemporaryDirectory() as tmp_dir:
            model = SurgeForSequenceClassification(config)
            model.save_pretrained(tmp_dir)
            with self.assertRaises(RuntimeError):
                SurgeForSequenceClassification.from_pretrained(tmp_dir, tasks=bigger, task_label_names=None)
            logger = logging.get_logger("transformers.modeling_utils")
            with LoggingLevel(logging.WARNING), CaptureLogger(logger) as cl:  # earlier tests may lower it
                new_model = SurgeForSequenceClassification.from_pretrained(
                    tmp_dir, tasks=bigger, task_label_names=None, ignore_mismatched_sizes=True
                )
            self.assertIn("Reinit due to size mismatch", cl.out)
        old, new = dict(model.named_parameters()), dict(new_model.named_parameters())
        self.assertEqual(set(old), set(new))
        for name, value in new.items():
            if name.startswith(changed):
                self.assertEqual(value.shape[0], 5, name)
            else:
                torch.testing.assert_close(value, old[name], msg=f"{name} changed on load")

    # -- stand-in for the export tests of tests/exporters (missing from the sdist) ----------------------------------
    def test_torch_export_matches_eager(self) -> None:
        """torch.export.export of every class runs and gives eager's outputs (no data-dependent Python branches)."""
        config, inputs_dict = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            with self.subTest(model_class.__name__):
                model = model_class(config).eval()
                inputs = self._prepare_for_class(inputs_dict, model_class)
                with torch.no_grad():
                    eager = model(**inputs)
                    program = torch.export.export(model, args=(), kwargs=inputs, strict=False)
                    exported = program.module()(**inputs)
                key = "logits" if model_class is SurgeForSequenceClassification else "pooled_output"
                torch.testing.assert_close(exported[key], eager[key])

    # -- ConfigTester, one test per check so each failure is reported on its own --------------------------------
    def test_config_common_properties(self) -> None:
        self.config_tester.create_and_test_config_common_properties()

    def test_config_to_json_string(self) -> None:
        self.config_tester.create_and_test_config_to_json_string()

    def test_config_to_json_file(self) -> None:
        self.config_tester.create_and_test_config_to_json_file()

    def test_config_from_and_save_pretrained(self) -> None:
        self.config_tester.create_and_test_config_from_and_save_pretrained()

    def test_config_from_and_save_pretrained_subfolder(self) -> None:
        self.config_tester.create_and_test_config_from_and_save_pretrained_subfolder()

    def test_config_from_and_save_pretrained_composite(self) -> None:
        self.config_tester.create_and_test_config_from_and_save_pretrained_composite()

    def test_config_arguments_init(self) -> None:
        self.config_tester.check_config_arguments_init()

    def test_config_from_pretrained_custom_kwargs(self) -> None:
        self.config_tester.create_and_test_config_from_pretrained_custom_kwargs()

    def test_config_can_be_init_without_params(self) -> None:
        self.config_tester.check_config_can_be_init_without_params()


class SurgeBaselineModelTest(SurgeModelTest):
    """The same common tests with the gate off (the baseline and prefix-only variants: z = h).

    Run as a non-composite model too, so the SDPA/eager dispatch check for plain models
    (test_sdpa_can_dispatch_non_composite_models) runs besides the composite ones above.
    """

    tester_kwargs = {"use_gate": False}
    _is_composite = False
