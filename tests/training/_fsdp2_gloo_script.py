"""Run under `torchrun --nproc_per_node 2`: FSDP2 (`fully_shard`) trains a SURGELLM model on CPU with gloo.

Both ranks see the same batch, so after sharded training the gathered weights must equal those of an unsharded
copy trained on that batch in one process. Prints one JSON line per rank.
"""

from __future__ import annotations

import copy
import gc
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.distributed.fsdp import fully_shard

from surgellm_hf import SurgeForSequenceClassification


def main(encoder: str) -> None:
    """Train two AdamW steps sharded and unsharded; print whether they agree."""
    dist.init_process_group("gloo")
    torch.manual_seed(0)
    tasks = {"a": 2, "b": 3}
    model = SurgeForSequenceClassification.from_encoder_pretrained(encoder, tasks=tasks, norm="iwn")
    rng = np.random.default_rng(0)
    n = 8
    feats = rng.normal(size=(n, model.config.num_features)).astype(np.float32)
    labels = np.array([0, 1, 0, 1, 0, 1, 2, 2])
    tids = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    model.fit_feature_normalizer(feats, labels, tids)
    model.train()
    reference = copy.deepcopy(model)
    initial = {k: v.clone() for k, v in reference.state_dict().items()}
    batch = {
        "input_ids": torch.randint(5, 100, (n, 12)),
        "attention_mask": torch.ones(n, 12, dtype=torch.long),
        "lexical_features": torch.from_numpy(feats),
        "task_ids": torch.from_numpy(tids),
        "labels": torch.from_numpy(labels),
    }
    for layer in model.surge.encoder.encoder.layer:
        fully_shard(layer)
    fully_shard(model)
    losses = {}
    for name, m in (("fsdp2", model), ("reference", reference)):
        opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
        for _ in range(2):
            torch.manual_seed(1)  # the same dropout masks in both
            loss = m(**batch).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
        losses[name] = float(loss.detach())
    full = {k: (v.full_tensor() if hasattr(v, "full_tensor") else v) for k, v in model.state_dict().items()}
    ref = reference.state_dict()
    max_diff = max(float((full[k].float() - ref[k].float()).abs().max()) for k in ref)
    moved = max(float((ref[k].float() - initial[k].float()).abs().max()) for k in ref)
    sharded = sum(type(p).__name__ == "DTensor" for p in model.parameters())
    # one file per rank (in the working directory): two ranks printing to one pipe can interleave their lines
    Path(f"fsdp2_rank{dist.get_rank()}.json").write_text(
        json.dumps(
            {
                "rank": dist.get_rank(),
                "losses": losses,
                "max_diff": max_diff,
                "moved": moved,
                "dtensor_params": sharded,
            }
        )
    )
    # An orderly teardown: both ranks past every collective, then the sharded model (whose DeviceMesh holds the gloo
    # group) freed before the group is destroyed. Leaving the group to interpreter exit let gloo's threads be torn
    # down in any order; rank 0 once aborted at the end in CI ("terminate called without an active exception").
    dist.barrier()
    del model, reference, m, full, opt
    gc.collect()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
