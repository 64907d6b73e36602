"""Fetch transformers' own common model tests for the installed transformers version.

``ModelTesterMixin`` and ``ConfigTester`` are not in the transformers wheel; they ship in the source distribution
of the same version, under ``tests/`` (docs/architecture.md#pitfall-17). This script downloads that sdist with pip into
a cache folder outside the repository, extracts only the two common test modules, and writes small stand-ins for
the test subpackages they import that the sdist lacks. Nothing from transformers is copied into the repository.

Run it once before pytest (``.ci/run`` does)::

    python tests/transformers_common/fetch.py

The cache folder is ``$SURGELLM_TRANSFORMERS_TESTS_DIR`` or ``~/.cache/surgellm_hf/transformers-tests-<version>``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = (
    "hf_transformers_tests"  # not ``tests``: that name would collide with this repository's tests folder
)
COMMON_FILES = ("test_modeling_common.py", "test_configuration_common.py")
TEST_REQUIREMENTS = ("parameterized",)  # imported by test_modeling_common.py, not a transformers dependency
MARKER = "FETCHED.json"

# Stand-ins for the test subpackages the common modules import but the sdist does not ship. They are written
# here, not copied: the common tests only need the names to exist.
STAND_INS: dict[str, str] = {
    "exporters/__init__.py": "",
    "exporters/test_export.py": (
        '"""Stand-in: the sdist lacks tests/exporters. Its export tests are replaced by the project\'s own\n'
        'torch.export / torch.compile tests (tests/test_modeling_surge_contract.py, tests/test_transformers_common.py)."""\n\n\n'
        "class ExportTesterMixin:\n"
        "    pass\n"
    ),
    "generation/__init__.py": "",
    "generation/test_utils.py": (
        '"""Stand-in: the sdist lacks tests/generation. ModelTesterMixin only checks inheritance from this class;\n'
        'SURGELLM models do not generate."""\n\n\n'
        "class GenerationTesterMixin:\n"
        "    pass\n"
    ),
    "utils/__init__.py": "",
    "utils/test_configuration_utils.py": (
        '"""Stand-in: the sdist lacks tests/utils. ConfigTester.check_config_arguments_init reads this mapping of\n'
        "common PreTrainedConfig arguments to non-default values (it returns early for composite configs such as\n"
        'SurgeConfig)."""\n\n'
        "config_common_kwargs = {\n"
        '    "return_dict": False,\n'
        '    "output_hidden_states": True,\n'
        '    "output_attentions": True,\n'
        '    "dtype": "float16",\n'
        '    "problem_type": "single_label_classification",\n'
        '    "id2label": {0: "neg", 1: "pos"},\n'
        '    "label2id": {"neg": 0, "pos": 1},\n'
        '    "pad_token_id": 3,\n'
        "}\n"
    ),
}

# test_torch_save_load's bool-buffer branch calls the state dict (``state_dict()[key]``), a typo of transformers'
# own that fails for every model with a bool buffer; fix that one expression in the cached copy.
PATCHES: dict[str, list[tuple[str, str]]] = {
    "test_modeling_common.py": [("state_dict()[key] ^ loaded[key]", "state_dict[key] ^ loaded[key]")],
}


def installed_transformers_version() -> str:
    """Version of the installed transformers (read from metadata, without importing it)."""
    from importlib.metadata import version

    return version("transformers")


def cache_dir(version: str | None = None) -> Path:
    """Folder holding the fetched common tests for `version` (env override: SURGELLM_TRANSFORMERS_TESTS_DIR)."""
    override = os.environ.get("SURGELLM_TRANSFORMERS_TESTS_DIR")
    if override:
        return Path(override).expanduser()
    version = version or installed_transformers_version()
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "surgellm_hf" / f"transformers-tests-{version}"


def is_fetched(root: Path, version: str) -> bool:
    """Whether `root` holds a complete fetch for `version`."""
    marker = root / MARKER
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()).get("transformers_version") == version
    except (OSError, ValueError):
        return False


def _download_sdist(version: str, dest: Path) -> Path:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-binary",
        ":all:",
        "--no-deps",
        "--disable-pip-version-check",
        f"transformers=={version}",
        "-d",
        str(dest),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    found = sorted(dest.glob(f"transformers-{version}.tar.gz"))
    if not found:
        raise RuntimeError(f"pip downloaded no transformers-{version}.tar.gz into {dest}")
    return found[0]


def _extract_common_tests(sdist: Path, version: str, package_dir: Path) -> None:
    prefix = f"transformers-{version}/tests/"
    with tarfile.open(sdist) as tar:
        for name in COMMON_FILES:
            member = tar.getmember(prefix + name)
            data = tar.extractfile(member).read().decode("utf-8")
            for old, new in PATCHES.get(name, []):
                if data.count(old) != 1:
                    raise RuntimeError(f"expected one {old!r} in {name} of transformers {version} to patch")
                data = data.replace(old, new)
            (package_dir / name).write_text(data, encoding="utf-8")


def _install_test_requirements(deps_dir: Path) -> list[str]:
    missing = [req for req in TEST_REQUIREMENTS if importlib.util.find_spec(req) is None]
    if missing:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-deps",
            "--target",
            str(deps_dir),
            *missing,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"`{' '.join(cmd)}` failed:\n{proc.stderr[-2000:]}")
    return missing


def fetch(force: bool = False) -> Path:
    """Download, extract and prepare the common tests for the installed transformers; return the cache folder."""
    version = installed_transformers_version()
    root = cache_dir(version)
    if is_fetched(root, version) and not force:
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".fetch-", dir=root.parent))
    try:
        package_dir = staging / PACKAGE
        package_dir.mkdir()
        # the package marker must exist: test_configuration_common runs direct_transformers_import on its folder
        (package_dir / "__init__.py").write_text("")
        for rel, text in STAND_INS.items():
            path = package_dir / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        sdist = _download_sdist(version, staging / "sdist")
        _extract_common_tests(sdist, version, package_dir)
        shutil.rmtree(staging / "sdist")
        installed = _install_test_requirements(staging / "deps")
        (staging / MARKER).write_text(
            json.dumps(
                {
                    "transformers_version": version,
                    "files": list(COMMON_FILES),
                    "stand_ins": sorted(STAND_INS),
                    "test_requirements_installed_here": installed,
                },
                indent=2,
            )
        )
        if root.exists():
            shutil.rmtree(root)
        staging.rename(root)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="fetch again even if the cache is complete")
    args = parser.parse_args(argv)
    root = fetch(force=args.force)
    print(f"transformers {installed_transformers_version()} common tests ready in {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
