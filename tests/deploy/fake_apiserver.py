"""A loopback stand-in for the Kubernetes API server, just enough for `helm install`.

Helm has no offline "template" action in the library the deploy checks use (helm-sdkpy):
its Install talks to an API server. This module answers what Helm asks on the way:

* ``GET /version``, legacy discovery (``/api``, ``/api/v1``, ``/apis``, ``/apis/G/V``) for the
  resource types it is told about, and an empty ``/openapi/v2`` / ``/openapi/v3`` document;
* ``GET`` / ``LIST`` / ``WATCH`` / ``POST`` / ``PUT`` / ``PATCH`` / ``DELETE`` on those types, kept
  in memory. Every object written is recorded exactly as the client sent it, so the
  recording is the chart's rendered manifest;
* watches the way recent client-go expects them: with ``sendInitialEvents=true`` the
  existing objects come as ``ADDED`` events followed by a ``BOOKMARK`` annotated
  ``k8s.io/initial-events-end``; then live events until the watch's time is up.

Everything is bounded in time: sockets time out, a watch lasts at most ``max_watch_s``,
and :meth:`FakeKubeAPIServer.stop` closes the listener and every open connection.
It binds to 127.0.0.1 on a free port and never reaches anywhere else.
"""

from __future__ import annotations

import copy
import json
import queue
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["DEFAULT_RESOURCES", "FakeKubeAPIServer", "Recorded", "ResourceType"]


@dataclass(frozen=True)
class ResourceType:
    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    namespaced: bool = True

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()


# The kinds the chart renders, plus the few Helm itself may touch.
DEFAULT_RESOURCES: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "Namespace", "namespaces", namespaced=False),
    ResourceType("", "v1", "ConfigMap", "configmaps"),
    ResourceType("", "v1", "Secret", "secrets"),
    ResourceType("", "v1", "Service", "services"),
    ResourceType("", "v1", "ServiceAccount", "serviceaccounts"),
    ResourceType("", "v1", "Pod", "pods"),
    ResourceType("", "v1", "Event", "events"),
    ResourceType("apps", "v1", "Deployment", "deployments"),
    ResourceType("apps", "v1", "ReplicaSet", "replicasets"),
    ResourceType("batch", "v1", "Job", "jobs"),
    ResourceType("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
    ResourceType("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets"),
    ResourceType("networking.k8s.io", "v1", "Ingress", "ingresses"),
    ResourceType("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies"),
    ResourceType("monitoring.coreos.com", "v1", "ServiceMonitor", "servicemonitors"),
    ResourceType("monitoring.coreos.com", "v1", "PrometheusRule", "prometheusrules"),
)

_VERBS_NAMESPACED = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
_VERBS_CLUSTER = ["create", "delete", "get", "list", "patch", "update", "watch"]


@dataclass
class Recorded:
    """One write the client made, as sent (before the fake server fills in metadata)."""

    method: str
    path: str
    content_type: str
    body: dict[str, Any]


def _status(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if code < 400 else "Failure",
        "message": message,
        "reason": reason,
        "details": details or {},
        "code": code,
    }


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (also good enough for strategic merge patches of Helm's)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):  # strategic-merge directives: not needed here
            continue
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, owner: FakeKubeAPIServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    # Socket timeout: an idle keep-alive connection or a stalled client frees its thread.
    timeout = 10

    def log_message(self, format: str, *args: Any) -> None:  # quiet; requests are kept in `requests`
        return

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._untrack(self.connection)

    # -- plumbing ---------------------------------------------------------------------------

    def _send_json(self, code: int, payload: Any, content_type: str = "application/json") -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _read_body(self) -> tuple[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        if length > 16 * 1024 * 1024:
            raise ValueError("request body too large")
        raw = self.rfile.read(length) if length else b""
        ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip()
        if not raw:
            return ctype, None
        return ctype, json.loads(raw)

    def _dispatch(self) -> None:
        owner = self.server.owner
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        owner._log_request(self.command, self.path)
        try:
            owner._handle(self, self.command, url.path, query)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        except Exception as exc:  # a bug in the fake must show up as a failure, not a hang
            owner._errors.append(f"{self.command} {self.path}: {exc!r}")
            try:
                self._send_json(500, _status(500, "InternalError", repr(exc)))
            except OSError:
                self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _dispatch


class FakeKubeAPIServer:
    """In-memory Kubernetes API on 127.0.0.1 for one test session. Use as a context manager."""

    def __init__(
        self,
        resources: tuple[ResourceType, ...] = DEFAULT_RESOURCES,
        *,
        git_version: str = "v1.34.0",
        extra_group_versions: tuple[str, ...] = (),
        max_watch_s: float = 3.0,
        pod_phase: str | None = None,
    ) -> None:
        self.resources = resources
        self.git_version = git_version
        # Group/versions advertised in discovery with no resources (e.g. custom.metrics.k8s.io/v1beta1,
        # which a metrics adapter registers): lets a chart's `.Capabilities.APIVersions.Has` see them.
        self.extra_group_versions = extra_group_versions
        self.max_watch_s = max_watch_s
        # When set, a created Pod is stored with this status.phase ("Succeeded" lets `helm test`
        # see its test pod finish, since no kubelet runs it).
        self.pod_phase = pod_phase
        self.recorded: list[Recorded] = []
        self.requests: list[tuple[str, str]] = []
        self._errors: list[str] = []
        self._lock = threading.RLock()
        self._objects: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self._rv = 1000
        self._watchers: list[tuple[ResourceType, str | None, queue.Queue[dict[str, Any] | None]]] = []
        self._conns: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> FakeKubeAPIServer:
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="fake-kube-api", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        with self._lock:
            for _, _, q in self._watchers:
                q.put(None)
            conns = list(self._conns)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> FakeKubeAPIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def kubeconfig(self, namespace: str = "default") -> str:
        """A kubeconfig (YAML text) that points a client at this server, with a dummy token."""
        return (
            "apiVersion: v1\n"
            "kind: Config\n"
            "clusters:\n"
            f"- name: fake\n  cluster:\n    server: {self.url}\n"
            "users:\n"
            "- name: fake\n  user:\n    token: fake-token\n"
            "contexts:\n"
            f"- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: {namespace}\n"
            "current-context: fake\n"
        )

    @property
    def errors(self) -> list[str]:
        return list(self._errors)

    # -- seeding and inspection ---------------------------------------------------------------

    def add_object(self, obj: dict[str, Any]) -> None:
        """Pre-create an object, as if it already existed in the cluster."""
        rt = self._type_for(obj["apiVersion"], obj["kind"])
        ns = obj["metadata"].get("namespace", "default") if rt.namespaced else ""
        with self._lock:
            self._objects[(rt.group_version, rt.plural, ns, obj["metadata"]["name"])] = self._stamp(
                copy.deepcopy(obj), rt, ns
            )

    def objects(self) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(o) for o in self._objects.values()]

    def created_manifests(self) -> list[dict[str, Any]]:
        """The bodies of the objects the client created, in order, exactly as sent."""
        return [copy.deepcopy(r.body) for r in self.recorded if r.method == "POST"]

    # -- internals ----------------------------------------------------------------------------

    def _track(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.add(conn)

    def _untrack(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.discard(conn)

    def _log_request(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, path))

    def _type_for(self, api_version: str, kind: str) -> ResourceType:
        for rt in self.resources:
            if rt.group_version == api_version and rt.kind == kind:
                return rt
        raise KeyError(f"{api_version} {kind} is not served by the fake API server")

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _stamp(self, obj: dict[str, Any], rt: ResourceType, ns: str) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        if rt.namespaced:
            meta["namespace"] = ns
        meta.setdefault("uid", str(uuid.UUID(int=self._rv)))
        meta.setdefault("creationTimestamp", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(0)))
        meta["resourceVersion"] = self._next_rv()
        meta["generation"] = int(meta.get("generation", 0)) + 1
        obj.setdefault("apiVersion", rt.group_version)
        obj.setdefault("kind", rt.kind)
        return obj

    def _pod_status(self, pod: dict[str, Any]) -> dict[str, Any]:
        done = self.pod_phase in ("Succeeded", "Failed")
        exit_code = 0 if self.pod_phase != "Failed" else 1
        statuses = []
        for container in pod.get("spec", {}).get("containers", []):
            state: dict[str, Any] = (
                {"terminated": {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error"}}
                if done else {"running": {}}
            )
            statuses.append({"name": container.get("name", ""), "image": container.get("image", ""),
                             "imageID": "", "ready": not done, "restartCount": 0, "started": not done,
                             "state": state})
        return {"phase": self.pod_phase, "containerStatuses": statuses,
                "conditions": [{"type": "Ready", "status": "False" if done else "True"}]}

    def _publish(self, event_type: str, rt: ResourceType, obj: dict[str, Any]) -> None:
        ns = obj.get("metadata", {}).get("namespace", "")
        for wrt, wns, q in self._watchers:
            if wrt == rt and (wns is None or wns == ns):
                q.put({"type": event_type, "object": copy.deepcopy(obj)})

    def _discovery_resources(self, group_version: str) -> list[dict[str, Any]]:
        out = []
        for rt in self.resources:
            if rt.group_version != group_version:
                continue
            out.append(
                {
                    "name": rt.plural,
                    "singularName": rt.singular,
                    "namespaced": rt.namespaced,
                    "kind": rt.kind,
                    "verbs": _VERBS_NAMESPACED if rt.namespaced else _VERBS_CLUSTER,
                }
            )
            out.append({"name": f"{rt.plural}/status", "singularName": "", "namespaced": rt.namespaced,
                        "kind": rt.kind, "verbs": ["get", "patch", "update"]})
        return out

    def _groups(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for rt in self.resources:
            if rt.group:
                versions = groups.setdefault(rt.group, [])
                if rt.version not in versions:
                    versions.append(rt.version)
        for gv in self.extra_group_versions:
            group, version = gv.split("/")
            versions = groups.setdefault(group, [])
            if version not in versions:
                versions.append(version)
        return groups

    def _handle(self, h: _Handler, method: str, path: str, query: dict[str, str]) -> None:
        parts = [p for p in path.split("/") if p]
        if method in ("GET", "HEAD"):
            if path == "/version":
                major, minor = self.git_version.lstrip("v").split(".")[:2]
                return h._send_json(200, {"major": major, "minor": minor, "gitVersion": self.git_version,
                                          "gitCommit": "0" * 40, "gitTreeState": "clean",
                                          "buildDate": "1970-01-01T00:00:00Z", "goVersion": "go1.24",
                                          "compiler": "gc", "platform": "linux/amd64"})
            if path in ("/healthz", "/readyz", "/livez"):
                data = b"ok"
                h.send_response(200)
                h.send_header("Content-Type", "text/plain")
                h.send_header("Content-Length", str(len(data)))
                h.end_headers()
                h.wfile.write(data)
                return None
            if path == "/openapi/v2":
                if "protobuf" in (h.headers.get("Accept") or ""):
                    # An empty protobuf message is zero bytes: an OpenAPI v2 Document with nothing
                    # in it, which is what client-go's validation asks for before hooks.
                    h.send_response(200)
                    h.send_header("Content-Type", "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
                    h.send_header("Content-Length", "0")
                    h.end_headers()
                    return None
                return h._send_json(200, {"swagger": "2.0", "info": {"title": "fake", "version": "v0"},
                                          "paths": {}, "definitions": {}})
            if path == "/openapi/v3":
                return h._send_json(200, {"paths": {}})
            if path == "/api":
                return h._send_json(200, {"kind": "APIVersions", "versions": ["v1"],
                                          "serverAddressByClientCIDRs": [
                                              {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
            if path == "/api/v1":
                return h._send_json(200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1",
                                          "resources": self._discovery_resources("v1")})
            if path == "/apis":
                groups = [
                    {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
                     "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]}}
                    for g, vs in self._groups().items()
                ]
                return h._send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
            if len(parts) == 3 and parts[0] == "apis":
                gv = f"{parts[1]}/{parts[2]}"
                if parts[1] in self._groups() and parts[2] in self._groups()[parts[1]]:
                    return h._send_json(200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                                              "resources": self._discovery_resources(gv)})
        route = self._route(parts)
        if route is None:
            h._read_body() if method in ("POST", "PUT", "PATCH") else None
            return h._send_json(404, _status(404, "NotFound", f"the server could not find {path}"))
        rt, ns, name, sub = route
        if method in ("GET", "HEAD"):
            if name is None:
                if query.get("watch") in ("1", "true"):
                    return self._watch(h, rt, ns, query)
                return self._list(h, rt, ns)
            return self._get(h, rt, ns, name)
        if method == "POST" and name is None:
            return self._create(h, rt, ns or "")
        if method == "PUT" and name is not None:
            return self._replace(h, rt, ns or "", name, sub)
        if method == "PATCH" and name is not None:
            return self._patch(h, rt, ns or "", name)
        if method == "DELETE" and name is not None:
            return self._delete(h, rt, ns or "", name)
        return h._send_json(405, _status(405, "MethodNotAllowed", f"{method} {path}"))

    def _route(self, parts: list[str]) -> tuple[ResourceType, str | None, str | None, str | None] | None:
        if parts[:2] == ["api", "v1"]:
            gv, rest = "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            gv, rest = f"{parts[1]}/{parts[2]}", parts[3:]
        else:
            return None
        ns: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            ns, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            return None
        plural = rest[0]
        for rt in self.resources:
            if rt.group_version == gv and rt.plural == plural:
                if rt.namespaced != (ns is not None) and not (rt.namespaced and ns is None and len(rest) == 1):
                    return None
                name = rest[1] if len(rest) >= 2 else None
                sub = rest[2] if len(rest) == 3 else None
                return rt, ns, name, sub
        # /api/v1/namespaces/NAME itself
        if gv == "v1" and ns is None and rest[0] == "namespaces":
            return self._type_for("v1", "Namespace"), None, rest[1] if len(rest) > 1 else None, None
        return None

    def _key(self, rt: ResourceType, ns: str | None, name: str) -> tuple[str, str, str, str]:
        return (rt.group_version, rt.plural, ns if rt.namespaced and ns else "", name)

    def _not_found(self, h: _Handler, rt: ResourceType, name: str) -> None:
        group = rt.group
        h._send_json(404, _status(404, "NotFound", f'{rt.plural}{"." + group if group else ""} "{name}" not found',
                                  {"name": name, "group": group, "kind": rt.plural}))

    def _get(self, h: _Handler, rt: ResourceType, ns: str | None, name: str) -> None:
        with self._lock:
            obj = self._objects.get(self._key(rt, ns, name))
            obj = copy.deepcopy(obj) if obj is not None else None
        if obj is None:
            return self._not_found(h, rt, name)
        return h._send_json(200, obj)

    def _list(self, h: _Handler, rt: ResourceType, ns: str | None) -> None:
        with self._lock:
            items = [copy.deepcopy(o) for k, o in self._objects.items()
                     if k[0] == rt.group_version and k[1] == rt.plural and (ns is None or k[2] == ns)]
            rv = str(self._rv)
        return h._send_json(200, {"kind": f"{rt.kind}List", "apiVersion": rt.group_version,
                                  "metadata": {"resourceVersion": rv}, "items": items})

    def _watch(self, h: _Handler, rt: ResourceType, ns: str | None, query: dict[str, str]) -> None:
        q: queue.Queue[dict[str, Any] | None] = queue.Queue()
        try:
            wanted = float(query.get("timeoutSeconds") or self.max_watch_s)
        except ValueError:
            wanted = self.max_watch_s
        deadline = time.monotonic() + min(wanted, self.max_watch_s)
        with self._lock:
            if query.get("sendInitialEvents") == "true":
                for k, o in self._objects.items():
                    if k[0] == rt.group_version and k[1] == rt.plural and (ns is None or k[2] == ns):
                        q.put({"type": "ADDED", "object": copy.deepcopy(o)})
                if query.get("allowWatchBookmarks") == "true":
                    q.put({"type": "BOOKMARK", "object": {
                        "kind": rt.kind, "apiVersion": rt.group_version,
                        "metadata": {"resourceVersion": str(self._rv),
                                     "annotations": {"k8s.io/initial-events-end": "true"}}}})
            watcher = (rt, ns, q)
            self._watchers.append(watcher)
        try:
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            h.wfile.flush()
            while not self._stopping.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    event = q.get(timeout=min(remaining, 0.5))
                except queue.Empty:
                    continue
                if event is None:
                    break
                chunk = json.dumps(event).encode() + b"\n"
                h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                h.wfile.flush()
            h.wfile.write(b"0\r\n\r\n")
            h.wfile.flush()
        finally:
            with self._lock:
                if watcher in self._watchers:
                    self._watchers.remove(watcher)

    def _record(self, h: _Handler, body: Any, ctype: str) -> None:
        if isinstance(body, dict):
            with self._lock:
                self.recorded.append(Recorded(h.command, h.path, ctype, copy.deepcopy(body)))

    def _create(self, h: _Handler, rt: ResourceType, ns: str) -> None:
        ctype, body = h._read_body()
        if not isinstance(body, dict) or not body.get("metadata", {}).get("name"):
            return h._send_json(422, _status(422, "Invalid", "object has no metadata.name"))
        if body.get("kind") != rt.kind or body.get("apiVersion") != rt.group_version:
            return h._send_json(400, _status(400, "BadRequest",
                                             f"{body.get('apiVersion')} {body.get('kind')} posted to {rt.plural}"))
        self._record(h, body, ctype)
        name = body["metadata"]["name"]
        if not ns:
            ns = body["metadata"].get("namespace", "")
        dry_run = "dryRun=" in (h.path or "")
        with self._lock:
            key = self._key(rt, ns, name)
            if key in self._objects:
                return h._send_json(409, _status(409, "AlreadyExists", f'{rt.plural} "{name}" already exists',
                                                 {"name": name, "group": rt.group, "kind": rt.plural}))
            obj = self._stamp(copy.deepcopy(body), rt, ns)
            if rt.kind == "Pod" and self.pod_phase:
                obj["status"] = self._pod_status(obj)
            if not dry_run:
                self._objects[key] = obj
                self._publish("ADDED", rt, obj)
            obj = copy.deepcopy(obj)
        return h._send_json(201, obj)

    def _replace(self, h: _Handler, rt: ResourceType, ns: str, name: str, sub: str | None) -> None:
        ctype, body = h._read_body()
        if not isinstance(body, dict):
            return h._send_json(400, _status(400, "BadRequest", "body is not an object"))
        if sub is None:
            self._record(h, body, ctype)
        with self._lock:
            key = self._key(rt, ns, name)
            if key not in self._objects:
                return self._not_found(h, rt, name)
            obj = self._stamp(copy.deepcopy(body), rt, ns)
            self._objects[key] = obj
            self._publish("MODIFIED", rt, obj)
            obj = copy.deepcopy(obj)
        return h._send_json(200, obj)

    def _patch(self, h: _Handler, rt: ResourceType, ns: str, name: str) -> None:
        ctype, body = h._read_body()
        self._record(h, body, ctype)
        with self._lock:
            key = self._key(rt, ns, name)
            current = self._objects.get(key)
            if ctype == "application/apply-patch+yaml":  # server-side apply: the body is the whole object
                obj = _merge_patch(current or {}, body)
            elif current is None:
                return self._not_found(h, rt, name)
            elif ctype == "application/json-patch+json":
                return h._send_json(415, _status(415, "UnsupportedMediaType", "JSON patch is not supported"))
            else:
                obj = _merge_patch(current, body)
            obj = self._stamp(obj, rt, ns)
            self._objects[key] = obj
            self._publish("MODIFIED" if current is not None else "ADDED", rt, obj)
            obj = copy.deepcopy(obj)
        return h._send_json(200 if current is not None else 201, obj)

    def _delete(self, h: _Handler, rt: ResourceType, ns: str, name: str) -> None:
        h._read_body()
        with self._lock:
            obj = self._objects.pop(self._key(rt, ns, name), None)
            if obj is not None:
                self._publish("DELETED", rt, obj)
        if obj is None:
            return self._not_found(h, rt, name)
        return h._send_json(200, _status(200, "", "deleted", {"name": name, "kind": rt.plural}))
