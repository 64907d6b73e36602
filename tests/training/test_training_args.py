"""Precision choices and the TrainingArguments of a run."""

from __future__ import annotations

import pytest
import torch

from surgellm_hf.training import (
    RunConfig,
)

# ------------------------------------------------------------------------------------------- mixed precision


def test_precision_choices_on_cpu_and_gpu():
    from surgellm_hf.training import resolve_precision

    assert resolve_precision("bf16", cuda=False) == "bf16"  # CPU autocast, not silently fp32
    assert resolve_precision("auto", cuda=False) == "fp32"
    assert resolve_precision("no", cuda=True) == "fp32"
    assert resolve_precision("fp16", cuda=True) == "fp16"
    with pytest.raises(ValueError, match="fp16 needs a CUDA GPU"):
        resolve_precision("fp16", cuda=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU route")
def test_bf16_on_cpu_reaches_the_training_arguments():
    from surgellm_hf.training import training_arguments

    args = training_arguments(RunConfig(data={"folder": "x"}, mixed_precision="bf16"), num_tasks=2)
    assert args.bf16 and args.use_cpu and args.mixed_precision == "bf16"
    fp32 = training_arguments(RunConfig(data={"folder": "x"}, mixed_precision="auto"), num_tasks=2)
    assert not fp32.bf16 and not fp32.fp16
    with pytest.raises(ValueError, match="fp16 needs a CUDA GPU"):
        training_arguments(RunConfig(data={"folder": "x"}, mixed_precision="fp16"), num_tasks=2)
