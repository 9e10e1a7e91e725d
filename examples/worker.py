#!/usr/bin/env python3
"""A persistent-task-status worker in pure-stdlib Python, speaking the HTTP worker protocol.

    PTS_URL=http://127.0.0.1:8080 PTS_TOKEN=... PTS_CONTAINER=my-job python3 examples/worker.py

It long-polls `POST /api/v1/claim`, reports progress with heartbeats, and completes each task
with `succeed` (or `fail` when the handler raises). It exits when the container has no ready
task for `PTS_IDLE_EXIT_MS` (default: never, if 0). The example "handler" sums the numbers in
the task's `data.numbers`.
"""
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

URL = os.environ.get("PTS_URL", "http://127.0.0.1:8080").rstrip("/")
TOKEN = os.environ["PTS_TOKEN"]
CONTAINER = os.environ.get("PTS_CONTAINER")
OWNER = os.environ.get("PTS_OWNER", "py-%s-%d" % (socket.gethostname(), os.getpid()))
IDLE_EXIT_MS = int(os.environ.get("PTS_IDLE_EXIT_MS", "0"))
LEASE_MS = int(os.environ.get("PTS_LEASE_MS", "30000"))


class LeaseLost(Exception):
    pass


def call(method, path, body=None, timeout=60):
    data = None if body is None else json.dumps(body).encode("utf-8")
    req = urllib.request.Request(URL + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + TOKEN)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            raw = res.read()
            return res.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        payload = json.loads(raw) if raw else None
        if e.code == 409 and payload and payload["error"]["code"] == "PTS_LEASE_LOST":
            raise LeaseLost(payload["error"]["message"])
        raise RuntimeError("%s %s -> %d %s" % (method, path, e.code, raw.decode("utf-8", "replace")))


def task_path(task, action):
    q = urllib.parse.quote
    return "/api/v1/containers/%s/tasks/%s/%s" % (q(task["container"], safe=""), q(task["name"], safe=""), action)


def handle(task, token):
    numbers = (task.get("taskData") or {}).get("numbers", [])
    total = 0
    for i, n in enumerate(numbers):
        total += n
        pct = round(100.0 * (i + 1) / max(1, len(numbers)), 2)
        call("POST", task_path(task, "heartbeat"), {"token": token, "percentageComplete": pct, "statusText": "summed %d" % (i + 1), "processingData": {"i": i + 1, "total": total}})
    return {"sum": total, "worker": OWNER}


def main():
    idle_since = time.time()
    done = 0
    while True:
        claim = {"owner": OWNER, "waitMs": 2000, "leaseMs": LEASE_MS}
        if CONTAINER:
            claim["container"] = CONTAINER
        status, body = call("POST", "/api/v1/claim", claim)
        if status == 204:
            if IDLE_EXIT_MS and (time.time() - idle_since) * 1000 >= IDLE_EXIT_MS:
                print("worker %s: idle, exiting after %d task(s)" % (OWNER, done), flush=True)
                return 0
            continue
        task, token = body["task"], body["token"]
        try:
            result = handle(task, token)
            call("POST", task_path(task, "succeed"), {"token": token, "result": result})
            done += 1
            print("worker %s: %s succeeded" % (OWNER, task["name"]), flush=True)
        except LeaseLost as e:
            print("worker %s: lost the lease on %s: %s" % (OWNER, task["name"], e), flush=True)
        except Exception as e:  # the handler failed: report it, the server decides about retries
            call("POST", task_path(task, "fail"), {"token": token, "error": {"message": str(e), "code": type(e).__name__}})
        idle_since = time.time()


if __name__ == "__main__":
    sys.exit(main())
