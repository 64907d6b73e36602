"""A small Hugging Face Hub-compatible HTTP server for tests, bound to 127.0.0.1 on a free port.

It implements the endpoints that `huggingface_hub` (2.x) and `transformers` call to create a repo,
push commits (files travel inline as base64: preupload answers "regular" for every file, so no LFS or
Xet path is used), list trees, read repo info and download files (`resolve` GET/HEAD with the
X-Repo-Commit / ETag headers the client requires). Errors carry the `X-Error-Code` header that the
client maps to `RepositoryNotFoundError`, `RevisionNotFoundError` and `EntryNotFoundError`.
Blobs are stored content-addressed under a directory; repo, branch and commit state live in memory.
Tests can inspect that state directly (`repo_exists`, `files`, `read`, `commits`, `requests`).
Stdlib only, so it adds no dependency.
"""

from __future__ import annotations

import base64
import collections
import datetime as _dt
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

DEFAULT_TOKEN = "hf_localhubtesttoken"
DEFAULT_USER = "tester"
MAX_BODY_BYTES = 512 * 1024 * 1024
_REPO_TYPES = ("model", "dataset", "space")
_REPO_ID = r"(?P<repo>[\w.\-]+(?:/[\w.\-]+)?)"
_API_RE = re.compile(
    rf"^/api/(?P<type>models|datasets|spaces)/{_REPO_ID}"
    r"(?:/(?P<op>revision|preupload|commit|tree|paths-info|branch)(?:/(?P<rest>.*))?)?$"
)
_RESOLVE_RE = re.compile(rf"^/(?:(?P<type>datasets|spaces)/)?{_REPO_ID}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


def git_blob_oid(data: bytes) -> str:
    """Git SHA-1 of a blob (what `git hash-object` prints), the oid the Hub reports for regular files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass
class _Blob:
    sha256: str
    size: int
    oid: str


@dataclass
class _Commit:
    oid: str
    parent: str | None
    title: str
    date: str
    files: dict[str, _Blob]


@dataclass
class _Repo:
    repo_id: str
    repo_type: str
    private: bool
    created_at: str
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, _Commit] = field(default_factory=dict)


class HubError(Exception):
    """An HTTP error answer: status, optional X-Error-Code, message (also sent as X-Error-Message)."""

    def __init__(self, status: int, message: str, code: str | None = None, commit: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.commit = status, message, code, commit


class LocalHub:
    """In-memory Hub state with content-addressed blobs on disk, served over HTTP by `start()`."""

    def __init__(self, root: str | Path, token: str = DEFAULT_TOKEN, user: str = DEFAULT_USER):
        self.root = Path(root)
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        self.token, self.user = token, user
        self._repos: dict[tuple[str, str], _Repo] = {}
        self._lock = threading.RLock()
        self._counter = 0
        self.requests: collections.deque[tuple[str, str, int]] = collections.deque(maxlen=20_000)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> LocalHub:
        """Bind 127.0.0.1 on a free port and serve in a daemon thread."""
        hub = self

        class Handler(_Handler):
            local_hub = hub

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="local-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=10)
            self._httpd = None

    @property
    def endpoint(self) -> str:
        if self._httpd is None:
            raise RuntimeError("LocalHub is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ inspection (for tests)
    def repo_exists(self, repo_id: str, repo_type: str = "model") -> bool:
        with self._lock:
            return (repo_type, repo_id) in self._repos

    def files(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> list[str]:
        """Sorted file paths of a revision."""
        with self._lock:
            return sorted(self._resolve(repo_type, repo_id, revision).files)

    def read(self, repo_id: str, path: str, revision: str = "main", repo_type: str = "model") -> bytes:
        with self._lock:
            blob = self._resolve(repo_type, repo_id, revision).files[path]
        return self._blob_path(blob.sha256).read_bytes()

    def commits(self, repo_id: str, repo_type: str = "model") -> list[str]:
        """Titles of the commits on main, oldest first."""
        with self._lock:
            repo = self._repos[(repo_type, repo_id)]
            out, oid = [], repo.branches["main"]
            while oid is not None:
                out.append(repo.commits[oid].title)
                oid = repo.commits[oid].parent
        return out[::-1]

    def add_folder(
        self, repo_id: str, folder: str | Path, message: str = "add folder", repo_type: str = "model"
    ) -> str:
        """Commit every file under `folder` to `repo_id` (created if needed) without HTTP; returns the commit oid.

        For seeding a test Hub with a fixture (e.g. a base encoder) that the code under test then downloads.
        """
        folder = Path(folder)
        blobs = {
            p.relative_to(folder).as_posix(): self._store(p.read_bytes())
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        }
        with self._lock:
            if (repo_type, repo_id) not in self._repos:
                self.create_repo(
                    {
                        "name": repo_id.split("/")[-1],
                        "organization": repo_id.split("/")[0],
                        "type": repo_type,
                    },
                    "http://unused",
                )
            repo = self._repos[(repo_type, repo_id)]
            head = repo.commits[repo.branches["main"]]
            commit = self._new_commit(repo, head.oid, message, {**head.files, **blobs})
            repo.branches["main"] = commit.oid
        return commit.oid

    def write_requests(self) -> list[tuple[str, str, int]]:
        """Requests that change state or would (POST/PUT/DELETE), as (method, path, status)."""
        return [r for r in list(self.requests) if r[0] in ("POST", "PUT", "DELETE")]

    # ------------------------------------------------------------------ state helpers
    def _blob_path(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256

    def _store(self, data: bytes) -> _Blob:
        sha = hashlib.sha256(data).hexdigest()
        path = self._blob_path(sha)
        if not path.exists():
            tmp = path.with_suffix(f".tmp{threading.get_ident()}")
            tmp.write_bytes(data)
            tmp.replace(path)
        return _Blob(sha256=sha, size=len(data), oid=git_blob_oid(data))

    def _repo(self, repo_type: str, repo_id: str, authorized: bool) -> _Repo:
        repo = self._repos.get((repo_type, repo_id))
        if repo is None or (repo.private and not authorized):
            raise HubError(404 if authorized else 401, f"Repository {repo_id} not found", "RepoNotFound")
        return repo

    def _resolve(self, repo_type: str, repo_id: str, revision: str, authorized: bool = True) -> _Commit:
        repo = self._repo(repo_type, repo_id, authorized)
        oid = repo.branches.get(revision, revision if revision in repo.commits else None)
        if oid is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return repo.commits[oid]

    def _new_commit(self, repo: _Repo, parent: str | None, title: str, files: dict[str, _Blob]) -> _Commit:
        self._counter += 1
        seed = json.dumps(
            [repo.repo_id, parent, title, self._counter, sorted((p, b.oid) for p, b in files.items())]
        )
        commit = _Commit(hashlib.sha1(seed.encode()).hexdigest(), parent, title, _now(), files)
        repo.commits[commit.oid] = commit
        return commit

    # ------------------------------------------------------------------ endpoints
    def whoami(self) -> dict[str, Any]:
        return {
            "type": "user",
            "id": "0" * 24,
            "name": self.user,
            "fullname": "Local Hub Tester",
            "orgs": [],
            "auth": {"type": "access_token", "accessToken": {"displayName": "local", "role": "write"}},
        }

    def create_repo(self, payload: dict[str, Any], endpoint: str) -> tuple[int, dict[str, Any]]:
        repo_type = payload.get("type") or "model"
        if repo_type not in _REPO_TYPES:
            raise HubError(400, f"Invalid repo type {repo_type!r}")
        name, org = payload.get("name"), payload.get("organization")
        if not isinstance(name, str) or not re.fullmatch(r"[\w.\-]{1,96}", name):
            raise HubError(400, f"Invalid repo name {name!r}")
        repo_id = f"{org or self.user}/{name}"
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        url = f"{endpoint}/{prefix}{repo_id}"
        with self._lock:
            if (repo_type, repo_id) in self._repos:
                return 409, {"error": f"You already created this {repo_type} repo", "url": url}
            repo = _Repo(repo_id, repo_type, bool(payload.get("private")), _now())
            gitattributes = self._store(b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n")
            commit = self._new_commit(repo, None, "initial commit", {".gitattributes": gitattributes})
            repo.branches["main"] = commit.oid
            self._repos[(repo_type, repo_id)] = repo
        return 200, {"url": url, "name": repo_id, "id": repo_id}

    def delete_repo(self, payload: dict[str, Any]) -> None:
        repo_type = payload.get("type") or "model"
        org = payload.get("organization") or self.user
        with self._lock:
            if self._repos.pop((repo_type, f"{org}/{payload.get('name')}"), None) is None:
                raise HubError(404, "Repository not found", "RepoNotFound")

    def repo_info(self, repo_type: str, repo_id: str, revision: str, query: dict, authorized: bool) -> dict:
        with self._lock:
            repo = self._repo(repo_type, repo_id, authorized)
            commit = self._resolve(repo_type, repo_id, revision, authorized)
            files = dict(commit.files)
        blobs = query.get("blobs", ["false"])[0].lower() == "true"
        siblings = [
            {"rfilename": p, **({"size": b.size, "blobId": b.oid} if blobs else {})}
            for p, b in sorted(files.items())
        ]
        info: dict[str, Any] = {
            "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24],
            "id": repo_id,
            "author": repo_id.split("/")[0] if "/" in repo_id else None,
            "sha": commit.oid,
            "lastModified": commit.date,
            "createdAt": repo.created_at,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
        }
        if repo_type == "model":
            info["modelId"] = repo_id
        card = self._card_data(files.get("README.md"))
        if card:
            info["cardData"] = card
            for key in ("pipeline_tag", "library_name"):
                if isinstance(card.get(key), str):
                    info[key] = card[key]
            if isinstance(card.get("tags"), list):
                info["tags"] = [str(t) for t in card["tags"]]
        return info

    def _card_data(self, blob: _Blob | None) -> dict[str, Any] | None:
        if blob is None:
            return None
        text = self._blob_path(blob.sha256).read_text(encoding="utf-8", errors="replace")
        match = re.match(r"^---\s*\n(.*?)\n---\s*\n", text, re.DOTALL)
        if not match:
            return None
        data = yaml.safe_load(match.group(1))
        return data if isinstance(data, dict) else None

    def validate_yaml(self, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        text = payload.get("content", "")
        match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", text, re.DOTALL)
        if not match:
            return 200, {"errors": [], "warnings": []}
        try:
            data = yaml.safe_load(match.group(1))
        except yaml.YAMLError as err:
            return 400, {"error": "Invalid metadata", "errors": [{"message": f"Invalid YAML: {err}"}]}
        if data is not None and not isinstance(data, dict):
            return 400, {
                "error": "Invalid metadata",
                "errors": [{"message": "Metadata must be a YAML mapping"}],
            }
        return 200, {"errors": [], "warnings": []}

    def preupload(self, repo_type: str, repo_id: str, revision: str, payload: dict[str, Any]) -> dict:
        with self._lock:
            commit = self._resolve(repo_type, repo_id, revision)
            existing = dict(commit.files)
        files = payload.get("files")
        if not isinstance(files, list):
            raise HubError(400, "preupload payload needs a 'files' list")
        return {
            "files": [
                {
                    "path": f["path"],
                    "uploadMode": "regular",
                    "shouldIgnore": False,
                    "oid": existing[f["path"]].oid if f["path"] in existing else None,
                }
                for f in files
            ],
            "commitOid": commit.oid,
        }

    def commit(self, repo_type: str, repo_id: str, revision: str, body: bytes, endpoint: str) -> dict:
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "The commit payload must start with a header line")
        header = lines[0]["value"]
        additions: dict[str, _Blob] = {}
        deletions: list[tuple[str, bool]] = []
        for line in lines[1:]:
            key, value = line.get("key"), line.get("value", {})
            path = _check_path(value.get("path"))
            if key == "file":
                if value.get("encoding") != "base64":
                    raise HubError(400, f"Unsupported encoding {value.get('encoding')!r} for {path}")
                additions[path] = self._store(base64.b64decode(value["content"]))
            elif key in ("deletedFile", "deletedFolder"):
                deletions.append((path.rstrip("/"), key == "deletedFolder"))
            elif key == "lfsFile":
                raise HubError(400, f"{path}: LFS uploads are not supported (preupload answers 'regular')")
            else:
                raise HubError(400, f"Unknown commit operation {key!r}")
        with self._lock:
            repo = self._repo(repo_type, repo_id, True)
            if revision not in repo.branches:
                raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            head = repo.commits[repo.branches[revision]]
            parent = header.get("parentCommit")
            if parent is not None and parent != head.oid:
                raise HubError(412, f"Parent commit {parent} is not the head of {revision} ({head.oid})")
            files = dict(head.files)
            for path, is_folder in deletions:
                gone = [p for p in files if p == path or (is_folder and p.startswith(path + "/"))]
                if not gone:
                    raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                for p in gone:
                    del files[p]
            files.update(additions)
            commit = self._new_commit(repo, head.oid, str(header.get("summary") or "commit"), files)
            repo.branches[revision] = commit.oid
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        return {
            "success": True,
            "commitOid": commit.oid,
            "commitUrl": f"{endpoint}/{prefix}{repo_id}/commit/{commit.oid}",
            "pullRequestUrl": None,
        }

    def create_branch(self, repo_type: str, repo_id: str, branch: str, payload: dict) -> None:
        with self._lock:
            repo = self._repo(repo_type, repo_id, True)
            if branch in repo.branches:
                raise HubError(409, f"Reference already exists: refs/heads/{branch}")
            start = payload.get("startingPoint") or "main"
            repo.branches[branch] = self._resolve(repo_type, repo_id, start).oid

    def tree(self, repo_type: str, repo_id: str, revision: str, path: str, recursive: bool, authorized: bool):
        with self._lock:
            commit = self._resolve(repo_type, repo_id, revision, authorized)
            files = dict(commit.files)
        path = path.strip("/")
        entries = _entries(files, commit.oid)
        if path and (path not in entries or entries[path]["type"] != "directory"):
            raise HubError(404, f"{path} does not exist on {revision}", "EntryNotFound", commit.oid)
        prefix = f"{path}/" if path else ""
        out = []
        for p, entry in sorted(entries.items()):
            if not p.startswith(prefix) or p == path:
                continue
            if recursive or "/" not in p[len(prefix) :]:
                out.append(entry)
        return out

    def paths_info(self, repo_type: str, repo_id: str, revision: str, paths: list[str], authorized: bool):
        with self._lock:
            commit = self._resolve(repo_type, repo_id, revision, authorized)
            files = dict(commit.files)
        entries = _entries(files, commit.oid)
        return [entries[p.strip("/")] for p in paths if p.strip("/") in entries]

    def resolve(self, repo_type: str, repo_id: str, revision: str, path: str, authorized: bool):
        with self._lock:
            commit = self._resolve(repo_type, repo_id, revision, authorized)
            blob = commit.files.get(path)
        if blob is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", commit.oid)
        return commit.oid, blob, self._blob_path(blob.sha256)


def _check_path(path: Any) -> str:
    if (
        not isinstance(path, str)
        or not path
        or path.startswith("/")
        or ".." in path.split("/")
        or "\\" in path
    ):
        raise HubError(400, f"Invalid path in repo: {path!r}")
    return path


def _entries(files: dict[str, _Blob], commit_oid: str) -> dict[str, dict[str, Any]]:
    """Tree entries (files and implied directories) keyed by path, in the Hub's JSON shape."""
    out: dict[str, dict[str, Any]] = {}
    for path, blob in files.items():
        out[path] = {"type": "file", "oid": blob.oid, "size": blob.size, "path": path}
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            oid = hashlib.sha1(f"{commit_oid}:{d}".encode()).hexdigest()
            out.setdefault(d, {"type": "directory", "oid": oid, "size": 0, "path": d})
    return out


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60
    local_hub: LocalHub

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr logging
        pass

    # --- plumbing
    def _authorized(self) -> bool:
        auth = self.headers.get("Authorization", "")
        return auth == f"Bearer {self.local_hub.token}"

    def _require_auth(self) -> None:
        if not self._authorized():
            raise HubError(401, "Invalid credentials in Authorization header")

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                total += size
                if total > MAX_BODY_BYTES:
                    raise HubError(413, "Request body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise HubError(413, "Request body too large")
        return self.rfile.read(length) if length else b""

    def _json_body(self) -> dict[str, Any]:
        body = self._body()
        try:
            data = json.loads(body or b"{}")
        except json.JSONDecodeError as err:
            raise HubError(400, f"Invalid JSON body: {err}") from err
        if not isinstance(data, dict):
            raise HubError(400, "JSON body must be an object")
        return data

    def _send(
        self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, ctype: str = ""
    ) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if ctype:
            self.send_header("Content-Type", ctype)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
        self.local_hub.requests.append((self.command, self.path, status))

    def _send_json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(data).encode(), headers, "application/json")

    def _dispatch(self) -> None:
        try:
            self._route()
        except HubError as err:
            # An error may leave an unread request body on the socket: close the connection after answering.
            self.close_connection = True
            headers = {"X-Error-Message": err.message.replace("\n", " "), "Connection": "close"}
            if err.code:
                headers["X-Error-Code"] = err.code
            if err.commit:
                headers["X-Repo-Commit"] = err.commit
            self._send_json(err.status, {"error": err.message}, headers)
        except Exception as err:  # a server bug must surface as a 500 the client reports, not a hang
            self.close_connection = True
            self._send_json(500, {"error": f"{type(err).__name__}: {err}"}, {"Connection": "close"})

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _dispatch

    # --- routing
    def _route(self) -> None:
        hub, method = self.local_hub, self.command
        split = urlsplit(self.path)
        raw, query = split.path, parse_qs(split.query)
        endpoint = hub.endpoint
        if raw == "/api/whoami-v2" and method == "GET":
            self._require_auth()
            return self._send_json(200, hub.whoami())
        if raw == "/api/repos/create" and method == "POST":
            self._require_auth()
            status, data = hub.create_repo(self._json_body(), endpoint)
            return self._send_json(status, data)
        if raw == "/api/repos/delete" and method == "DELETE":
            self._require_auth()
            hub.delete_repo(self._json_body())
            return self._send_json(200, {})
        if raw == "/api/validate-yaml" and method == "POST":
            status, data = hub.validate_yaml(self._json_body())
            return self._send_json(status, data)
        match = _API_RE.match(raw)
        if match:
            return self._api(match, query, endpoint)
        match = _RESOLVE_RE.match(raw)
        if match and method in ("GET", "HEAD"):
            repo_type = (match.group("type") or "models")[:-1]
            return self._resolve(
                repo_type, match.group("repo"), unquote(match.group("rev")), unquote(match.group("path"))
            )
        raise HubError(404, f"No route for {method} {raw}")

    def _api(self, match: re.Match, query: dict, endpoint: str) -> None:
        hub, method = self.local_hub, self.command
        repo_type, repo_id = match.group("type")[:-1], match.group("repo")
        op, rest = match.group("op"), match.group("rest") or ""
        auth = self._authorized()
        if op is None and method == "GET":
            return self._send_json(200, hub.repo_info(repo_type, repo_id, "main", query, auth))
        if op == "revision" and method == "GET":
            return self._send_json(200, hub.repo_info(repo_type, repo_id, unquote(rest), query, auth))
        if op == "tree" and method == "GET":
            revision, _, path = rest.partition("/")
            recursive = query.get("recursive", ["false"])[0].lower() == "true"
            return self._send_json(
                200, hub.tree(repo_type, repo_id, unquote(revision), unquote(path), recursive, auth)
            )
        if op == "paths-info" and method == "POST":
            body = self._body()
            if self.headers.get("Content-Type", "").startswith("application/json"):
                paths = json.loads(body or b"{}").get("paths", [])
            else:
                paths = parse_qs(body.decode()).get("paths", [])
            return self._send_json(200, hub.paths_info(repo_type, repo_id, unquote(rest), paths, auth))
        if method == "POST" and op in ("preupload", "commit", "branch"):
            self._require_auth()
            if "create_pr" in query:
                raise HubError(400, "Pull requests are not supported by the local Hub")
            if op == "preupload":
                return self._send_json(
                    200, hub.preupload(repo_type, repo_id, unquote(rest), self._json_body())
                )
            if op == "commit":
                return self._send_json(
                    200, hub.commit(repo_type, repo_id, unquote(rest), self._body(), endpoint)
                )
            hub.create_branch(repo_type, repo_id, unquote(rest), self._json_body())
            return self._send_json(200, {})
        raise HubError(404, f"No route for {method} {self.path}")

    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        commit, blob, blob_path = self.local_hub.resolve(
            repo_type, repo_id, revision, path, self._authorized()
        )
        headers = {
            "X-Repo-Commit": commit,
            "ETag": f'"{blob.oid}"',
            "Accept-Ranges": "bytes",
            "Content-Disposition": f'inline; filename="{path.rsplit("/", 1)[-1]}"',
        }
        data = b"" if self.command == "HEAD" else blob_path.read_bytes()
        status, start, end = 200, 0, blob.size
        range_match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
        if range_match and range_match.group(1):
            start = int(range_match.group(1))
            end = min(int(range_match.group(2)) + 1, blob.size) if range_match.group(2) else blob.size
            if start >= blob.size:
                raise HubError(416, f"Range not satisfiable for {path}")
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{blob.size}"
        headers["Content-Length"] = str(end - start)
        self._send(status, data[start:end], headers, "application/octet-stream")
