#!/usr/bin/env python3
"""Moves one logical shard holding MESSAGES messages while two senders write into it, and
reports how long the move took, how long writes to it were fenced, and the send latencies the
senders saw during the move. Driven by scripts/bench/shard-move.sh, which starts the server.

Usage: shard-move.py BASE_URL DUET_BINARY MESSAGES   (the server's settings in the environment)
Python's standard library only; loopback only; bounded by MESSAGES and the move itself.
"""
import http.client
import json
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

base, binary, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
url = urllib.parse.urlparse(base)


class Client:
    def __init__(self, token=None):
        self.conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        self.token = token

    def call(self, method, path, body=None):
        headers = {"content-type": "application/json"}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        self.conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        reply = self.conn.getresponse()
        data = reply.read()
        return reply.status, (json.loads(data) if data else None)


def fnv1a(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


run = uuid.uuid4().hex[:8]
users = []
for name in ("alice", "bob"):
    handle = f"{name}{run}"
    c = Client()
    c.call("POST", "/v1/accounts", {"handle": handle, "password": "correct horse battery"})
    status, session = c.call("POST", "/v1/sessions", {"handle": handle, "password": "correct horse battery"})
    assert status == 201, session
    users.append((handle, session["token"]))
status, conv = Client(users[0][1]).call("POST", "/v1/conversations", {"peer_handle": users[1][0]})
conversation = conv["id"]
logical = fnv1a(uuid.UUID(conversation).bytes) % 1024


def send(client, body, client_id=None):
    client_id = client_id or str(uuid.uuid4())
    while True:
        status, reply = client.call(
            "POST", f"/v1/conversations/{conversation}/messages",
            {"client_msg_id": client_id, "body": body})
        if status in (200, 201):
            return reply["seq"]
        if status != 503:
            raise SystemExit(f"send answered {status}: {reply}")
        time.sleep(0.05)


# Fill: 16 writers, keep-alive connections.
started = time.time()
counter = iter(range(total))
lock = threading.Lock()


def fill(token):
    client = Client(token)
    while True:
        with lock:
            n = next(counter, None)
        if n is None:
            return
        send(client, f"filler {n}")


threads = [threading.Thread(target=fill, args=(users[i % 2][1],)) for i in range(16)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(f"filled conversation {conversation} (logical shard {logical}) with {total} messages "
      f"in {time.time() - started:.1f} s")

status_text = subprocess.run([binary, "shards", "status"], capture_output=True, text=True, check=True).stdout
owner = next(int(m.group(1)) for m in re.finditer(r"physical (\d+) \(.*?\): \d+ logical \[(.*?)\]", status_text)
             if any((lambda a, b=None: int(a) <= logical <= int(b or a))(*r.split("-")) for r in m.group(2).split(", ") if r))
target = (owner + 1) % 4
print(status_text, end="")

# Two senders into the moving conversation, timing every send, while the move runs.
latencies = []
stop = threading.Event()


def sender(token):
    client = Client(token)
    while not stop.is_set():
        t0 = time.perf_counter()
        send(client, "during the move")
        with lock:
            latencies.append(time.perf_counter() - t0)


senders = [threading.Thread(target=sender, args=(users[i][1],)) for i in range(2)]
for t in senders:
    t.start()
time.sleep(1)
t0 = time.time()
move = subprocess.run([binary, "shards", "move", str(logical), "--to", str(target)],
                      capture_output=True, text=True)
took = time.time() - t0
time.sleep(1)
stop.set()
for t in senders:
    t.join()
print(move.stdout.strip() or move.stderr.strip())
if move.returncode != 0:
    raise SystemExit("the move failed")

latencies.sort()
ms = lambda s: f"{s * 1000:.1f} ms"
print(f"move of logical shard {logical} ({owner} -> {target}) took {took:.1f} s as a command "
      f"(grace period included); {len(latencies)} sends by 2 senders around it: "
      f"p50 {ms(latencies[len(latencies) // 2])}, p99 {ms(latencies[int(len(latencies) * 0.99)])}, "
      f"max {ms(latencies[-1])}")

# Everything is there once, gap-free.
client = Client(users[1][1])
after, seen = 0, 0
while True:
    status, page = client.call("GET", f"/v1/conversations/{conversation}/messages?after_seq={after}&limit=200")
    for item in page["items"]:
        seen += 1
        assert item["seq"] == seen, (item["seq"], seen)
    if not page["items"] or not page["has_more"]:
        break
    after = page["items"][-1]["seq"]
expected = total + len(latencies)
print(f"history: {seen} messages, seq 1..{seen} gap-free; expected {expected}: "
      f"{'ok' if seen == expected else 'MISMATCH'}")
