"""The Hub side of SURGELLM: publishing (model + processor + lexicon + card in one commit), the model card, repo ids,
and the declared set of remote-code files.

- `publishing`: `publish`, `publish_run` (`surgellm push`), `update_model_card`, `check_publishable`;
- `model_card`: `SurgeModelCardData` and its Jinja template `surgellm_model_card.md`;
- `repo_id`: `check_repo_id`, `is_hub_id`;
- `remote_code`: `REMOTE_CODE_MODULES`, the files a model repo carries for `trust_remote_code`.
"""

from .model_card import SurgeModelCardData, TaskCardInfo, template_path
from .publishing import RUN_FILE_NAME, check_publishable, publish, publish_run, update_model_card
from .remote_code import REMOTE_CODE_DEPENDENCIES, REMOTE_CODE_MODULES, copy_remote_code, remote_code_files
from .repo_id import check_repo_id, is_hub_id

__all__ = [
    "REMOTE_CODE_DEPENDENCIES",
    "REMOTE_CODE_MODULES",
    "RUN_FILE_NAME",
    "SurgeModelCardData",
    "TaskCardInfo",
    "check_publishable",
    "check_repo_id",
    "copy_remote_code",
    "is_hub_id",
    "publish",
    "publish_run",
    "remote_code_files",
    "template_path",
    "update_model_card",
]
