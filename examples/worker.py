#!/usr/bin/env python3
"""A persistent-task-status worker in pure-stdlib Python, written from docs/http.md alone.

    PTS_URL=http://127.0.0.1:8080 PTS_TOKEN=pts_... PTS_CONTAINER=my-job python3 examples/worker.py

The token needs the `worker` scope (`pts token create --scope worker`). The loop is the one of
docs/http.md "Worker protocol":

1. `POST /api/v1/claim` long-polls for a ready task (`waitMs`; 204 = nothing ready yet);
2. the handler reports progress and a checkpoint with `heartbeat`, well within `leaseMs`;
3. the task ends with `succeed` (with a result) or `fail` (the server decides about retries);
4. a 409 `PTS_LEASE_LOST` means the task is no longer ours: drop it, claim the next one (so do
   `PTS_TASK_TIMEOUT` / `PTS_TASK_STALLED`: the attempt ran past its deadline);
5. after a 204 the worker reads the container (`GET /api/v1/containers/:name`) and exits when
   its `status` is final (`succeeded`, `failed` or `cancelled`: nothing left that can run).

Environment: PTS_URL, PTS_TOKEN (required), PTS_CONTAINER (without it: any container the token
may see, and the worker only stops on PTS_IDLE_EXIT_MS), PTS_OWNER (worker id), PTS_LEASE_MS
(default 30000), PTS_WAIT_MS (long-poll, default 5000, at most 30000), PTS_IDLE_EXIT_MS (also
exit after this long without a task; 0 = never, the default).

The example handler sums `taskData.numbers` one number at a time, checkpointing
`{"i": ..., "total": ...}` so that a task claimed again after a crash resumes where it stopped,
and fails on purpose when `taskData.failOnAttempt` equals the attempt being run (to show `fail`).
"""
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

URL = os.environ.get("PTS_URL", "http://127.0.0.1:8080").rstrip("/") + "/api/v1"
TOKEN = os.environ["PTS_TOKEN"]
CONTAINER = os.environ.get("PTS_CONTAINER") or None
OWNER = os.environ.get("PTS_OWNER", "py-%s-%d" % (socket.gethostname(), os.getpid()))
LEASE_MS = int(os.environ.get("PTS_LEASE_MS", "30000"))
WAIT_MS = min(30000, int(os.environ.get("PTS_WAIT_MS", "5000")))
IDLE_EXIT_MS = int(os.environ.get("PTS_IDLE_EXIT_MS", "0"))
# Heartbeat at most every third of the lease, so two can be lost before it expires.
HEARTBEAT_EVERY_S = LEASE_MS / 3000.0


LEASE_LOST_CODES = ("PTS_LEASE_LOST", "PTS_TASK_TIMEOUT", "PTS_TASK_STALLED")


class LeaseLost(Exception):
    """409 PTS_LEASE_LOST: the lease expired and was recovered, or the task was cancelled (or
    PTS_TASK_TIMEOUT / PTS_TASK_STALLED: the attempt ran past its timeoutMs / stallMs)."""


class ApiError(Exception):
    def __init__(self, status, code, message):
        super().__init__("%d %s: %s" % (status, code, message))
        self.status = status
        self.code = code


def call(method, path, body=None, timeout=None):
    """One request; returns (status, JSON body or None). 503s are retried (the server restarts)."""
    data = None if body is None else json.dumps(body).encode("utf-8")
    # A claim may be held for waitMs by the server: give the socket that much more.
    timeout = timeout or (WAIT_MS / 1000.0 + 30)
    for attempt in range(8):
        req = urllib.request.Request(URL + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + TOKEN)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as res:
                raw = res.read()
                return res.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                err = json.loads(raw)["error"]
            except (ValueError, KeyError, TypeError):
                err = {"code": "HTTP_%d" % e.code, "message": raw.decode("utf-8", "replace")}
            if e.code == 409 and err["code"] in LEASE_LOST_CODES:
                raise LeaseLost(err["message"])
            if e.code == 503 and attempt < 7:
                time.sleep(min(10, 0.5 * 2**attempt))
                continue
            raise ApiError(e.code, err["code"], err["message"])
        except (urllib.error.URLError, ConnectionError, socket.timeout):
            if attempt == 7:
                raise
            time.sleep(min(10, 0.5 * 2**attempt))
    raise RuntimeError("unreachable")


def q(name):
    """Names are single URL segments: `a/b` -> `a%2Fb`."""
    return urllib.parse.quote(name, safe="")


def task_path(task, action):
    return "/containers/%s/tasks/%s/%s" % (q(task["container"]), q(task["name"]), action)


class Progress:
    """Heartbeats carrying progress and a checkpoint, sent at most every HEARTBEAT_EVERY_S
    (and always for the first call), so a fast handler does not flood the server."""

    def __init__(self, task, token):
        self.task, self.token, self.last = task, token, 0.0

    def report(self, pct, text, checkpoint, force=False):
        now = time.time()
        if not force and now - self.last < HEARTBEAT_EVERY_S:
            return
        self.last = now
        call("POST", task_path(self.task, "heartbeat"), {
            "token": self.token,
            "percentageComplete": pct,
            "statusText": text,
            "processingData": checkpoint,
        })


def handle(task, progress):
    """The example job. `taskData` is the `data` the task was added with."""
    data = task.get("taskData") or {}
    if data.get("failOnAttempt") == task["attempts"]:
        raise RuntimeError("failing attempt %d on purpose" % task["attempts"])
    numbers = data.get("numbers", [])
    checkpoint = task.get("processingData") or {"i": 0, "total": 0}  # resume after a crash
    i, total = checkpoint["i"], checkpoint["total"]
    while i < len(numbers):
        total += numbers[i]
        i += 1
        progress.report(round(100.0 * i / len(numbers), 2), "summed %d of %d" % (i, len(numbers)),
                        {"i": i, "total": total}, force=(i == len(numbers)))
    return {"sum": total, "worker": OWNER}


FINAL_STATUSES = ("succeeded", "failed", "cancelled")


def container_finished():
    """True when the container's summary has a final `status` (`isComplete` is only `succeeded`)."""
    if not CONTAINER:
        return False
    _, summary = call("GET", "/containers/%s" % q(CONTAINER))
    finished = summary["status"] in FINAL_STATUSES
    if finished:
        print("worker %s: %s is %s (%s)" % (OWNER, CONTAINER, summary["status"],
                                           json.dumps(summary["counts"], sort_keys=True)), flush=True)
    return finished


def main():
    idle_since = time.time()
    done = 0
    while True:
        claim = {"owner": OWNER, "leaseMs": LEASE_MS, "waitMs": WAIT_MS}
        if CONTAINER:
            claim["container"] = CONTAINER
        status, body = call("POST", "/claim", claim)
        if status == 204:  # nothing ready within waitMs
            if container_finished():
                return 0
            if IDLE_EXIT_MS and (time.time() - idle_since) * 1000 >= IDLE_EXIT_MS:
                print("worker %s: idle, exiting after %d task(s)" % (OWNER, done), flush=True)
                return 0
            continue
        task, token = body["task"], body["token"]
        try:
            try:
                result = handle(task, Progress(task, token))
            except (LeaseLost, ApiError):
                raise
            except Exception as e:  # the handler failed: report it, the server decides about retries
                call("POST", task_path(task, "fail"), {
                    "token": token,
                    "error": {"message": str(e), "code": type(e).__name__},
                    "retryable": True,
                })
                print("worker %s: %s failed: %s" % (OWNER, task["name"], e), flush=True)
            else:
                call("POST", task_path(task, "succeed"), {"token": token, "result": result})
                done += 1
                print("worker %s: %s succeeded" % (OWNER, task["name"]), flush=True)
        except LeaseLost as e:  # not ours any more: nothing was written, move on
            print("worker %s: dropped %s: %s" % (OWNER, task["name"], e), flush=True)
        except ApiError as e:
            if e.status != 404:  # 400/401/403: a mistake of this worker or its token
                raise
            print("worker %s: dropped %s (deleted): %s" % (OWNER, task["name"], e), flush=True)
        idle_since = time.time()


if __name__ == "__main__":
    sys.exit(main())
