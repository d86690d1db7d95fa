"""Runs Helm (through helm-sdkpy) in a child process for the deploy checks.

Helm's Go library lives inside this process: a child keeps a hang or a crash of it away
from pytest (the parent kills it at its deadline), and gets the environment Go reads at
load time (HELM_DRIVER=memory keeps release records in memory, not in cluster Secrets).

Reads one JSON request on stdin and prints one JSON answer on stdout:

    {"action": "install", "chart": DIR, "release": NAME, "namespace": NS, "kubeconfig": YAML,
     "values": {...}, "upgrade": true|false, "test": true|false, "timeout": SECONDS}
      -> {"ok": true, "install": <release>, "upgrade": <release or null>, "test": <release or null>}
    {"action": "lint", "chart": DIR}
      -> {"ok": true, "lint": <lint result>}

and on a Helm error {"ok": false, "error": "..."}. Install runs with wait=False: nothing
to wait for on a fake API server.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

# A kubeconfig for actions that never reach a cluster (lint).
_NO_CLUSTER = (
    "apiVersion: v1\nkind: Config\nclusters:\n- name: none\n  cluster:\n    server: http://127.0.0.1:9\n"
    "users:\n- name: none\n  user: {}\ncontexts:\n- name: none\n  context:\n    cluster: none\n    user: none\n"
    "current-context: none\n"
)


async def _install(request: dict[str, Any]) -> dict[str, Any]:
    import helm_sdkpy

    if os.environ.get("HELM_DRIVER") != "memory":
        raise RuntimeError("HELM_DRIVER=memory must be set in the environment before this process starts")
    config = helm_sdkpy.Configuration(namespace=request["namespace"], kubeconfig=request["kubeconfig"])
    timeout = int(request.get("timeout", 60))
    installed = await helm_sdkpy.Install(config).run(
        request["release"], request["chart"], values=request.get("values") or None,
        wait=False, timeout=timeout,
    )
    upgraded = None
    if request.get("upgrade"):
        upgraded = await helm_sdkpy.Upgrade(config).run(
            request["release"], request["chart"], values=request.get("values") or None,
            wait=False, timeout=timeout,
        )
    tested = None
    if request.get("test"):  # `helm test`: creates the test hook pod and waits for it to finish
        tested = await asyncio.wait_for(helm_sdkpy.ReleaseTest(config).run(request["release"]), timeout)
    return {"ok": True, "install": installed, "upgrade": upgraded, "test": tested}


async def _lint(request: dict[str, Any]) -> dict[str, Any]:
    import helm_sdkpy

    config = helm_sdkpy.Configuration(namespace="default", kubeconfig=_NO_CLUSTER)
    return {"ok": True, "lint": await helm_sdkpy.Lint(config).run(request["chart"])}


def main() -> int:
    request = json.loads(sys.stdin.read())
    action = {"install": _install, "lint": _lint}[request["action"]]
    try:
        answer = asyncio.run(action(request))
    except Exception as exc:
        answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write(json.dumps(answer))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
