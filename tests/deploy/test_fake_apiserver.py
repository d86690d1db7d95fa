"""The loopback fake Kubernetes API server the chart is rendered against (standard library only)."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from .fake_apiserver import FakeKubeAPIServer


@pytest.fixture
def server() -> Iterator[FakeKubeAPIServer]:
    srv = FakeKubeAPIServer(max_watch_s=1.5, extra_group_versions=("custom.metrics.k8s.io/v1beta1",)).start()
    try:
        yield srv
    finally:
        srv.stop()


def _request(srv: FakeKubeAPIServer, method: str, path: str, body: Any = None,
             content_type: str = "application/json") -> tuple[int, Any]:
    host, port = srv.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers={"Content-Type": content_type} if data else {})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        conn.close()


def _configmap(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def test_discovery(server: FakeKubeAPIServer) -> None:
    status, version = _request(server, "GET", "/version")
    assert status == 200 and version["gitVersion"] == "v1.34.0" and version["minor"] == "34"
    status, api = _request(server, "GET", "/api")
    assert api["versions"] == ["v1"]
    status, core = _request(server, "GET", "/api/v1")
    kinds = {r["kind"] for r in core["resources"] if "/" not in r["name"]}
    assert {"ConfigMap", "Secret", "Service", "Pod"} <= kinds
    status, groups = _request(server, "GET", "/apis")
    names = {g["name"] for g in groups["groups"]}
    assert {"apps", "autoscaling", "policy", "networking.k8s.io", "monitoring.coreos.com",
            "custom.metrics.k8s.io"} <= names
    status, apps = _request(server, "GET", "/apis/apps/v1")
    deployments = next(r for r in apps["resources"] if r["name"] == "deployments")
    assert deployments["namespaced"] and "create" in deployments["verbs"]
    status, openapi = _request(server, "GET", "/openapi/v2")
    assert status == 200 and openapi["swagger"] == "2.0"
    assert _request(server, "GET", "/apis/nope/v1")[0] == 404


def test_create_get_conflict_list_patch_delete(server: FakeKubeAPIServer) -> None:
    path = "/api/v1/namespaces/ns/configmaps"
    assert _request(server, "GET", f"{path}/a")[0] == 404
    status, created = _request(server, "POST", path, _configmap("a", x="1"))
    assert status == 201 and created["metadata"]["namespace"] == "ns" and created["metadata"]["uid"]
    assert _request(server, "POST", path, _configmap("a"))[0] == 409
    status, got = _request(server, "GET", f"{path}/a")
    assert status == 200 and got["data"] == {"x": "1"}
    status, listed = _request(server, "GET", path)
    assert listed["kind"] == "ConfigMapList" and [i["metadata"]["name"] for i in listed["items"]] == ["a"]
    status, patched = _request(server, "PATCH", f"{path}/a", {"data": {"y": "2"}},
                               "application/strategic-merge-patch+json")
    assert status == 200 and patched["data"] == {"x": "1", "y": "2"}
    assert int(patched["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    assert _request(server, "DELETE", f"{path}/a")[0] == 200
    assert _request(server, "GET", f"{path}/a")[0] == 404
    # The recording keeps what the client sent, not what the server filled in.
    assert server.created_manifests() == [_configmap("a", x="1"), _configmap("a")]
    assert _request(server, "POST", path, {"apiVersion": "apps/v1", "kind": "Deployment",
                                           "metadata": {"name": "d"}})[0] == 400
    assert not server.errors


def test_watch_sends_initial_events_then_the_bookmark_then_live_events(server: FakeKubeAPIServer) -> None:
    path = "/api/v1/namespaces/ns/configmaps"
    _request(server, "POST", path, _configmap("before"))
    host, port = server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    started = time.monotonic()
    try:
        conn.request("GET", f"{path}?watch=true&sendInitialEvents=true&allowWatchBookmarks=true"
                            "&resourceVersionMatch=NotOlderThan&timeoutSeconds=300")
        response = conn.getresponse()
        assert response.status == 200
        first = json.loads(response.readline())
        bookmark = json.loads(response.readline())
        threading.Timer(0.2, _request, (server, "POST", path, _configmap("after"))).start()
        live = json.loads(response.readline())
        rest = response.read()  # the server ends the watch at max_watch_s, not after 300 s
    finally:
        conn.close()
    assert first["type"] == "ADDED" and first["object"]["metadata"]["name"] == "before"
    assert bookmark["type"] == "BOOKMARK"
    assert bookmark["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert live["type"] == "ADDED" and live["object"]["metadata"]["name"] == "after"
    assert rest == b""
    assert time.monotonic() - started < 4


def test_stop_is_prompt_with_a_watch_open(server: FakeKubeAPIServer) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.request("GET", "/api/v1/namespaces/ns/secrets?watch=1")
    response = conn.getresponse()
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2
    assert response.read() == b""  # the watch ended with the server
    conn.close()


def test_kubeconfig_points_at_the_server(server: FakeKubeAPIServer) -> None:
    kubeconfig = server.kubeconfig("telephony")
    assert f"server: {server.url}" in kubeconfig
    assert "namespace: telephony" in kubeconfig
    assert server.url.startswith("http://127.0.0.1:")


def test_openapi_v2_protobuf_is_an_empty_document(server: FakeKubeAPIServer) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("GET", "/openapi/v2", headers={
            "Accept": "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"})
        response = conn.getresponse()
        assert response.status == 200 and response.read() == b""
        assert "protobuf" in response.getheader("Content-Type", "")
    finally:
        conn.close()


def test_pods_report_the_configured_phase() -> None:
    with FakeKubeAPIServer(pod_phase="Succeeded") as srv:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "t"},
               "spec": {"containers": [{"name": "c", "image": "i"}]}}
        status, created = _request(srv, "POST", "/api/v1/namespaces/ns/pods", pod)
        assert status == 201 and created["status"]["phase"] == "Succeeded"
        assert created["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
        assert srv.created_manifests() == [pod]


def test_seeded_objects_are_served(server: FakeKubeAPIServer) -> None:
    server.add_object({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "ns"},
                       "data": {"K": "dg=="}})
    status, secret = _request(server, "GET", "/api/v1/namespaces/ns/secrets/s")
    assert status == 200 and secret["data"] == {"K": "dg=="}
    assert server.created_manifests() == []
