"""A fake Kubernetes API server on loopback that speaks the real REST protocol for the objects onexd uses.

The official client talks to it unmodified (a kubeconfig pointing at http://127.0.0.1:PORT): create, get, list,
watch (`?watch=true`, newline-delimited events), merge patch, delete (owner garbage collection included),
pods/log (with follow and limitBytes) and pods/attach (websocket, v5/v4 channel protocol). A tiny "kubelet"
plays each Job's pod from a scripted Outcome: succeed, fail, OOM, hang until the Job's deadline, or never start.
It is test code: no authentication, one process, equality label selectors only.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

Obj = dict[str, Any]

KINDS = {  # plural -> (kind, apiVersion)
    "pods": ("Pod", "v1"), "secrets": ("Secret", "v1"), "configmaps": ("ConfigMap", "v1"),
    "services": ("Service", "v1"), "jobs": ("Job", "batch/v1"),
    "networkpolicies": ("NetworkPolicy", "networking.k8s.io/v1"), "deployments": ("Deployment", "apps/v1"),
}


@dataclass
class Outcome:
    """What the pod does. `output` is a function of the stdin it received (the log it prints)."""

    exit_code: int = 0
    output: Callable[[bytes], bytes] = lambda stdin: stdin
    reason: str = ""  # Completed / Error / OOMKilled; derived from exit_code when empty
    hang: bool = False  # runs until deleted or the Job's deadline
    waiting: str | None = None  # never starts: e.g. ErrImagePull
    run_s: float = 0.0
    # Run the pod's argv for real on this host (test commands only: it is not sandboxed), from its ConfigMap
    # volumes written back at their mount paths; exit code and output are the program's.
    program: bool = False


@dataclass
class PodRun:
    stdin: bytearray = field(default_factory=bytearray)
    stdin_closed: asyncio.Event = field(default_factory=asyncio.Event)
    log: bytearray = field(default_factory=bytearray)
    log_changed: asyncio.Event = field(default_factory=asyncio.Event)
    done: bool = False


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _status(code: int, reason: str, message: str) -> web.Response:
    return web.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                              "message": message, "reason": reason, "code": code}, status=code)


def _matches(obj: Obj, selector: str | None) -> bool:
    if not selector:
        return True
    labels = obj.get("metadata", {}).get("labels") or {}
    for term in selector.split(","):
        key, _, value = term.partition("=")
        if labels.get(key.strip()) != value.strip():
            return False
    return True


def _merge(target: Obj, patch: Obj) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


class FakeKubernetes:
    """Start with start(); `script` decides each pod's Outcome; `requests` records (method, path) calls;
    `fail` maps (method, plural) to an HTTP status to answer once; `stall` delays matching requests."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[tuple[str, str], Obj]] = {p: {} for p in KINDS}
        self.events: dict[str, list[tuple[int, str, Obj]]] = {p: [] for p in KINDS}
        self.rv = 0
        self.script: Callable[[Obj], Outcome] = lambda pod: Outcome()
        self.requests: list[tuple[str, str]] = []
        self.fail: dict[tuple[str, str], int] = {}
        self.stall: dict[tuple[str, str], float] = {}
        self.runs: dict[str, PodRun] = {}
        self.pod_ips = 0
        self.attach_protocols: tuple[str, ...] = ("v5.channel.k8s.io", "v4.channel.k8s.io")  # v4 only: older API
        self.enforce_deadlines = True  # False: a cluster whose job controller never ends a Job at its deadline
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Condition | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._setup())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._teardown())
            loop.close()

        self._thread = threading.Thread(target=serve, name="fake-kube-apiserver", daemon=True)
        self._thread.start()
        assert ready.wait(10), "the fake API server did not start"

    async def _setup(self) -> None:
        self._changed = asyncio.Condition()
        app = web.Application()
        base = r"/{group:api/v1|apis/[a-z0-9.]+/v1}/namespaces/{ns}/{plural}"
        app.router.add_route("*", base, self._collection)
        app.router.add_route("*", base + "/{name}", self._item)
        app.router.add_route("GET", base + "/{name}/log", self._log)
        app.router.add_route("*", base + "/{name}/attach", self._attach)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _teardown(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kubeconfig(self, namespace: str = "onexd") -> str:
        return json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "onexd", "user": {"token": "fake-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "onexd", "namespace": namespace}}],
        })

    def write_kubeconfig(self, directory: Path) -> str:
        """A kubeconfig file for this server in `directory`; its path."""
        path = directory / "kubeconfig"
        path.write_text(self.kubeconfig())
        return str(path)

    # --- inspection from tests (thread-safe enough: dict reads of finished writes) ------------------

    def names(self, plural: str) -> list[str]:
        return sorted(name for _, name in list(self.objects[plural]))

    def get(self, plural: str, name: str, namespace: str = "onexd") -> Obj | None:
        return self.objects[plural].get((namespace, name))

    def put(self, plural: str, obj: Obj) -> None:
        """Seed an object (e.g. a leftover of a previous daemon)."""
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self._store(plural, obj, "ADDED"), self._loop).result(5)

    def delete(self, plural: str, name: str, namespace: str = "onexd") -> None:
        """Delete an object as someone else would (kubectl delete)."""
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self._delete(plural, namespace, name), self._loop).result(5)

    # --- storage and events -------------------------------------------------------------------------

    async def _store(self, plural: str, obj: Obj, event: str) -> Obj:
        assert self._changed is not None
        self.rv += 1
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", _now())
        meta["resourceVersion"] = str(self.rv)
        kind, api_version = KINDS[plural]
        obj["kind"], obj["apiVersion"] = kind, api_version
        key = (meta["namespace"], meta["name"])
        if event == "DELETED":
            self.objects[plural].pop(key, None)
        else:
            self.objects[plural][key] = obj
        self.events[plural].append((self.rv, event, json.loads(json.dumps(obj))))
        async with self._changed:
            self._changed.notify_all()
        return obj

    async def _delete(self, plural: str, namespace: str, name: str) -> Obj | None:
        obj = self.objects[plural].get((namespace, name))
        if obj is None:
            return None
        uid = obj["metadata"]["uid"]
        # The controllers' pods (Job, Deployment), then the garbage collector's other dependents.
        for pod in [p for p in list(self.objects["pods"].values())
                    if any(o.get("uid") == uid for o in p["metadata"].get("ownerReferences") or [])]:
            await self._delete("pods", namespace, pod["metadata"]["name"])
        if plural == "pods":
            run = self.runs.get(name)
            if run is not None:
                run.done = True
                run.stdin_closed.set()
                run.log_changed.set()
        for dep_plural in ("secrets", "configmaps"):
            for dep in list(self.objects[dep_plural].values()):
                if any(o.get("uid") == uid for o in dep["metadata"].get("ownerReferences") or []):
                    await self._delete(dep_plural, namespace, dep["metadata"]["name"])
        obj["metadata"]["deletionTimestamp"] = _now()
        return await self._store(plural, obj, "DELETED")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- HTTP ----------------------------------------------------------------------------------------

    async def _gate(self, request: web.Request) -> web.Response | None:
        plural = request.match_info["plural"]
        self.requests.append((request.method, request.path))
        if plural not in KINDS:
            return _status(404, "NotFound", f"the server could not find the requested resource ({plural})")
        delay = self.stall.pop((request.method, plural), 0.0)
        if delay:
            await asyncio.sleep(delay)
        code = self.fail.pop((request.method, plural), 0)
        if code:
            reason = {403: "Forbidden", 409: "Conflict", 422: "Invalid", 500: "InternalError"}.get(code, "Unknown")
            return _status(code, reason, f"injected failure {code} for {request.method} {plural}")
        return None

    async def _collection(self, request: web.Request) -> web.StreamResponse:
        refused = await self._gate(request)
        if refused is not None:
            return refused
        plural, ns = request.match_info["plural"], request.match_info["ns"]
        if request.method == "POST":
            obj = await request.json()
            name = obj.get("metadata", {}).get("name")
            if not name:
                return _status(422, "Invalid", "metadata.name: Required value")
            if (ns, name) in self.objects[plural]:
                return _status(409, "AlreadyExists", f'{plural} "{name}" already exists')
            obj["metadata"]["namespace"] = ns
            if plural == "jobs":
                obj.setdefault("status", {})
            stored = await self._store(plural, obj, "ADDED")
            if plural == "jobs" and not obj["spec"].get("suspend"):
                await self._start_job(stored)
            if plural == "deployments":
                await self._spawn_pod(stored, {"pod-template-hash": "fake"})
            return web.json_response(stored, status=201)
        if request.method == "GET":
            selector = request.query.get("labelSelector")
            if request.query.get("watch") in ("true", "1"):
                return await self._watch(request, plural, ns, selector)
            items = [o for (n, _), o in sorted(self.objects[plural].items()) if n == ns and _matches(o, selector)]
            kind, api_version = KINDS[plural]
            return web.json_response({"kind": f"{kind}List", "apiVersion": api_version,
                                      "metadata": {"resourceVersion": str(self.rv)}, "items": items})
        return _status(405, "MethodNotAllowed", request.method)

    async def _watch(self, request: web.Request, plural: str, ns: str, selector: str | None) -> web.StreamResponse:
        assert self._changed is not None
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        timeout = float(request.query.get("timeoutSeconds", "1800"))
        deadline = time.monotonic() + timeout
        try:
            await self._stream_events(response, plural, ns, selector, request.query.get("resourceVersion"), deadline)
            await response.write_eof()
        except ConnectionResetError:  # the client has what it wanted and closed the watch
            pass
        return response

    async def _stream_events(self, response: web.StreamResponse, plural: str, ns: str, selector: str | None,
                             since: str | None, deadline: float) -> None:
        assert self._changed is not None
        if since is None:  # ADDED for what exists now, then changes
            cursor = self.rv
            for (n, _), obj in sorted(self.objects[plural].items()):
                if n == ns and _matches(obj, selector):
                    await response.write(json.dumps({"type": "ADDED", "object": obj}).encode() + b"\n")
        else:
            cursor = int(since)
        while time.monotonic() < deadline:
            for rv, event, obj in list(self.events[plural]):
                if rv > cursor:
                    cursor = rv
                    if obj["metadata"].get("namespace") == ns and _matches(obj, selector):
                        await response.write(json.dumps({"type": event, "object": obj}).encode() + b"\n")
            async with self._changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), max(0.0, deadline - time.monotonic()))

    async def _item(self, request: web.Request) -> web.Response:
        refused = await self._gate(request)
        if refused is not None:
            return refused
        plural, ns, name = request.match_info["plural"], request.match_info["ns"], request.match_info["name"]
        obj = self.objects[plural].get((ns, name))
        if obj is None:
            return _status(404, "NotFound", f'{plural} "{name}" not found')
        if request.method == "GET":
            return web.json_response(obj)
        if request.method == "DELETE":
            body = await request.read()
            options = json.loads(body) if body else {}
            self.requests.append(("DELETE-OPTIONS", json.dumps(options, sort_keys=True)))
            await self._delete(plural, ns, name)
            return web.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                      "details": {"name": name, "kind": plural, "uid": obj["metadata"]["uid"]}})
        if request.method == "PATCH":
            patch = await request.json()
            was_suspended = bool(obj.get("spec", {}).get("suspend"))
            _merge(obj, patch)
            stored = await self._store(plural, obj, "MODIFIED")
            if plural == "jobs" and was_suspended and not obj["spec"].get("suspend"):
                await self._start_job(stored)
            return web.json_response(stored)
        return _status(405, "MethodNotAllowed", request.method)

    async def _log(self, request: web.Request) -> web.StreamResponse:
        refused = await self._gate(request)
        if refused is not None:
            return refused  # type: ignore[return-value]
        ns, name = request.match_info["ns"], request.match_info["name"]
        pod = self.objects["pods"].get((ns, name))
        run = self.runs.get(name)
        if pod is None or run is None:
            return _status(404, "NotFound", f'pods "{name}" not found')
        if pod["status"].get("phase") == "Pending":
            return _status(400, "BadRequest", f'container "job" in pod "{name}" is waiting to start')
        limit = int(request.query.get("limitBytes", "0")) or None
        follow = request.query.get("follow") in ("true", "1")
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        sent = 0
        while True:
            run.log_changed.clear()
            chunk = bytes(run.log[sent:])
            if limit is not None:
                chunk = chunk[:max(0, limit - sent)]
            if chunk:
                await response.write(chunk)
                sent += len(chunk)
            if not follow or (limit is not None and sent >= limit):
                break
            if run.done:
                if sent >= len(run.log):
                    break
                continue
            await run.log_changed.wait()
        await response.write_eof()
        return response

    async def _attach(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        ns, name = request.match_info["ns"], request.match_info["name"]
        run = self.runs.get(name)
        if self.objects["pods"].get((ns, name)) is None or run is None:
            return _status(404, "NotFound", f'pods "{name}" not found')
        ws = web.WebSocketResponse(protocols=self.attach_protocols)
        await ws.prepare(request)
        async for message in ws:
            if message.type == WSMsgType.BINARY and message.data:
                data: bytes = message.data
                if data[0] == 0:
                    run.stdin += data[1:]
                elif data[0] == 255 and data[1:2] == b"\x00" and ws.ws_protocol == "v5.channel.k8s.io":
                    break  # v5: close stdin
            elif message.type == WSMsgType.TEXT and message.data:
                text: str = message.data
                if text[0] == "\x00":
                    run.stdin += text[1:].encode()
            elif message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                break
        run.stdin_closed.set()  # stdinOnce: the first attach session's end is the program's EOF
        await ws.close()
        return ws

    # --- the job controller and kubelet ------------------------------------------------------------

    async def _spawn_pod(self, owner: Obj, extra_labels: dict[str, str]) -> None:
        """The controller's one pod from the owner's template, played by the kubelet."""
        ns, owner_name, uid = owner["metadata"]["namespace"], owner["metadata"]["name"], owner["metadata"]["uid"]
        template = json.loads(json.dumps(owner["spec"]["template"]))
        labels = {**template["metadata"].get("labels", {}), **extra_labels}
        pod_name = f"{owner_name}-{uuid.uuid4().hex[:5]}"
        pod = {"metadata": {"name": pod_name, "namespace": ns, "labels": labels,
                            "annotations": template["metadata"].get("annotations", {}),
                            "ownerReferences": [{"apiVersion": owner["apiVersion"], "kind": owner["kind"],
                                                 "name": owner_name, "uid": uid, "controller": True}]},
               "spec": template["spec"], "status": {"phase": "Pending"}}
        self.runs[pod_name] = PodRun()
        await self._store("pods", pod, "ADDED")
        self._spawn(self._kubelet(ns, pod_name))

    async def _start_job(self, job: Obj) -> None:
        ns, job_name, uid = job["metadata"]["namespace"], job["metadata"]["name"], job["metadata"]["uid"]
        await self._spawn_pod(job, {"job-name": job_name, "controller-uid": uid})
        deadline = job["spec"].get("activeDeadlineSeconds")
        if deadline and self.enforce_deadlines:
            self._spawn(self._deadline(ns, job_name, float(deadline)))

    async def _set_pod(self, ns: str, name: str, status: Obj) -> bool:
        pod = self.objects["pods"].get((ns, name))
        if pod is None:
            return False
        pod["status"] = status
        await self._store("pods", pod, "MODIFIED")
        return True

    async def _kubelet(self, ns: str, name: str) -> None:
        run = self.runs[name]
        pod = self.objects["pods"][(ns, name)]
        spec = pod["spec"]
        while True:  # volumes first: a pod whose Secret or ConfigMap is missing does not start
            needed = [("secrets", v["secret"]["secretName"]) for v in spec.get("volumes", []) if "secret" in v]
            needed += [("configmaps", v["configMap"]["name"]) for v in spec.get("volumes", []) if "configMap" in v]
            if all((ns, n) in self.objects[p] for p, n in needed):
                break
            if (ns, name) not in self.objects["pods"]:
                return
            await asyncio.sleep(0.02)
        outcome = self.script(pod)
        if outcome.waiting:
            await self._set_pod(ns, name, {"phase": "Pending", "containerStatuses": [
                {"name": "job", "ready": False, "restartCount": 0, "image": spec["containers"][0]["image"],
                 "imageID": "", "state": {"waiting": {"reason": outcome.waiting, "message": "scripted"}}}]})
            return
        started = _now()
        running = {"name": "job", "ready": True, "restartCount": 0, "image": spec["containers"][0]["image"],
                   "imageID": "", "started": True, "state": {"running": {"startedAt": started}}}
        self.pod_ips += 1
        pod_ip = f"10.244.0.{self.pod_ips}"
        if not await self._set_pod(ns, name, {"phase": "Running", "startTime": started, "podIP": pod_ip,
                                              "containerStatuses": [running]}):
            return
        if spec["containers"][0].get("stdin"):
            await run.stdin_closed.wait()
        if run.done:
            return
        if outcome.program:
            code = await self._run_program(pod, run)
            if code is None:
                return
            outcome = dataclasses.replace(outcome, exit_code=code, output=lambda stdin: b"")
        run.log += outcome.output(bytes(run.stdin))
        run.log_changed.set()
        if outcome.hang:
            while not run.done:
                await asyncio.sleep(0.05)
            return
        await asyncio.sleep(outcome.run_s)
        if run.done:
            return
        code = outcome.exit_code
        reason = outcome.reason or ("Completed" if code == 0 else "Error")
        terminated = {**running, "ready": False, "started": False,
                      "state": {"terminated": {"exitCode": code, "reason": reason, "startedAt": started,
                                               "finishedAt": _now()}}}
        run.done = True
        run.log_changed.set()
        await self._set_pod(ns, name, {"phase": "Succeeded" if code == 0 else "Failed", "startTime": started,
                                       "podIP": pod_ip, "containerStatuses": [terminated]})
        job_name = pod["metadata"]["labels"].get("job-name", "")
        job = self.objects["jobs"].get((ns, job_name))
        if job is not None:
            condition = {"type": "Complete", "status": "True"} if code == 0 else \
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}
            job["status"] = {"succeeded" if code == 0 else "failed": 1, "conditions": [condition]}
            await self._store("jobs", job, "MODIFIED")

    async def _run_program(self, pod: Obj, run: PodRun) -> int | None:
        """The pod's program as a host process; its output goes to the log as it comes. None when the pod was
        deleted first (the process is killed)."""
        spec, ns = pod["spec"], pod["metadata"]["namespace"]
        container = spec["containers"][0]
        with tempfile.TemporaryDirectory() as tmp:
            mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
            rewrite: dict[str, str] = {}
            for volume in spec.get("volumes", []):
                if "configMap" not in volume:
                    continue
                cm = self.objects["configmaps"][(ns, volume["configMap"]["name"])]
                target = Path(tmp) / mounts[volume["name"]].lstrip("/")
                for item in volume["configMap"]["items"]:
                    path = target / item["path"]
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(cm["data"][item["key"]])
                rewrite[mounts[volume["name"]]] = str(target)

            def local(arg: str) -> str:
                for mount, where in rewrite.items():
                    if arg == mount or arg.startswith(mount + "/"):
                        return where + arg[len(mount):]
                return arg

            env = {"PATH": os.environ.get("PATH", ""), **{e["name"]: e["value"] for e in container.get("env", [])}}
            proc = await asyncio.create_subprocess_exec(
                *[local(a) for a in container["command"]], stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                cwd=local(container.get("workingDir") or "/"), env=env)
            assert proc.stdin is not None and proc.stdout is not None
            with contextlib.suppress(OSError):
                proc.stdin.write(bytes(run.stdin))
                await proc.stdin.drain()
                proc.stdin.close()

            async def pump() -> None:
                assert proc.stdout is not None
                while chunk := await proc.stdout.read(65536):
                    run.log += chunk
                    run.log_changed.set()

            pumping = asyncio.ensure_future(pump())
            try:
                while proc.returncode is None:
                    if run.done:  # deleted: the container is killed
                        return None
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(proc.wait()), 0.05)
                await pumping
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
                pumping.cancel()
                await asyncio.gather(pumping, return_exceptions=True)
            code = proc.returncode
            return code if code >= 0 else 128 - code

    async def _deadline(self, ns: str, job_name: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        job = self.objects["jobs"].get((ns, job_name))
        if job is None or job.get("status", {}).get("conditions"):
            return
        job["status"] = {"failed": 1, "conditions": [{"type": "Failed", "status": "True",
                                                      "reason": "DeadlineExceeded",
                                                      "message": "Job was active longer than specified deadline"}]}
        await self._store("jobs", job, "MODIFIED")
        for pod in [p for p in list(self.objects["pods"].values()) if _matches(p, f"job-name={job_name}")]:
            await self._delete("pods", ns, pod["metadata"]["name"])

