"""Access to transformers' own common model tests (``ModelTesterMixin``, ``ConfigTester``) fetched by fetch.py.

The tests never download anything: :func:`load_common_tests` imports what ``fetch.py`` put in the cache folder and
raises :class:`CommonTestsUnavailable` (a skip reason) when it is not there. With
``SURGELLM_REQUIRE_TRANSFORMERS_TESTS=1`` (set by ``.ci/run``) a missing fetch is an error instead of a skip.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

from .fetch import PACKAGE, cache_dir, installed_transformers_version, is_fetched

REQUIRE_ENV = "SURGELLM_REQUIRE_TRANSFORMERS_TESTS"


class CommonTestsUnavailable(RuntimeError):
    """The common tests were not fetched (or cannot be imported); the message says how to fetch them."""


def required() -> bool:
    """Whether the environment demands the common tests run (CI) rather than skip."""
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0", "false", "False")


def load_common_tests() -> tuple[ModuleType, ModuleType]:
    """Import the cached ``test_modeling_common`` and ``test_configuration_common`` of the installed version."""
    version = installed_transformers_version()
    root = cache_dir(version)
    if not is_fetched(root, version):
        raise CommonTestsUnavailable(
            f"transformers {version}'s common model tests are not fetched into {root}; run "
            "`python tests/transformers_common/fetch.py` (needs network access to PyPI) before pytest."
        )
    for path in (root / "deps", root):
        if path.is_dir() and str(path) not in sys.path:
            sys.path.insert(0, str(path))
    try:
        modeling = importlib.import_module(f"{PACKAGE}.test_modeling_common")
        configuration = importlib.import_module(f"{PACKAGE}.test_configuration_common")
    except ImportError as err:
        raise CommonTestsUnavailable(
            f"transformers {version}'s common tests in {root} cannot be imported ({err}); fetch them again with "
            "`python tests/transformers_common/fetch.py --force`."
        ) from err
    return modeling, configuration


__all__ = ["CommonTestsUnavailable", "REQUIRE_ENV", "load_common_tests", "required"]
