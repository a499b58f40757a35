#!/usr/bin/env python3
"""Viewers per edge: LL-HLS players against one StreamTube edge, and against nginx serving the
same playlists and parts as files, in one run (the issue's "10,000 viewers per edge").

Starts an origin and an edge node (release build), pushes one broadcast to the origin (lavfi
test picture and tone, 640x360, encoded once and looped with `-c copy`), and sends viewers to
the edge only. Each viewer is an LL-HLS player's requests on one keep-alive HTTP/1.1 connection:
the master playlist, one rendition (viewers take them in turn when there are several), its media
playlist, the newest listed part (start-up, not counted), then in a loop a playlist reload for the
next part and that part. Where the playlist says CAN-BLOCK-RELOAD=YES the reload blocks
(`_HLS_msn`, `_HLS_part`); where it does not (nginx) the player polls: it asks for the playlist,
and while the part it wants is not listed it asks again every half part duration, as a
non-blocking player does. A viewer lives a random --life seconds (20 to 60) and is then replaced
by a new one (a new connection, master playlist and all). The viewers run in --procs processes
(a small asyncio HTTP/1.1 client on uvloop) on the same machine as the servers.

nginx's side: a thread in this script follows the edge's media playlist (blocking reloads),
writes every new part into a folder, then the playlist (renamed into place, CAN-BLOCK-RELOAD
taken out, since nginx cannot block); nginx serves that folder. Its lag is reported.

Late: a part is due when the origin first lists it, as seen by a reference player in this
script that follows the origin directly with blocking reloads (one request at a time, no other
load on it). A viewer's part is late when its last byte arrives more than one part duration
(the playlist's PART-TARGET) after it was due. Counted: every part a viewer asks for in its
loop (all of them were listed after the viewer started), by arrival in the measurement window;
parts a viewer skipped because it fell out of the playlist's window count as late. The same
definition, due times and grace apply to both servers: nginx's polling adds up to half a part
(the mirror's lag a few ms) to its viewers' waits, within the one-part grace.

Steps (--steps): for each count, each side in turn (the order swapped every step): ramp to the
count, settle, measure --seconds, drop all viewers. Per step: parts late, the server's CPU
seconds per second per 1,000 viewers (/proc/PID/stat; nginx: master and workers), resident
memory over the baseline per viewer (the edge keeps the media it fetched in memory: the bytes
of media made since the baseline are given beside it), errors, the clients' own CPU. A side
stops after a step with more than --stop-late % late. Then, per side, the most viewers with
<= 1 % late, and StreamTube / nginx at the largest count both passed.

--spike: 0 to --spike-viewers viewers in --spike-seconds against the edge (no nginx, no
mirror), held --hold seconds: the edge's upstream requests (streamtube_edge_upstream_requests_total)
against the distinct objects its viewers asked for (goal: one request to the origin per object per
edge), the origin's requests by route, and the worst wait beyond the steady state: the most a part
arrived after it was due from the spike's start to the last half of the hold, less the median of
that last half (goal: at most two part durations; moot when that median is itself over a part);
and the viewers' joins (master playlist asked to first part in hand).

Usage: .venv-test/bin/python ops/bench/viewers.py [--steps 500,1000,2000,4000,8000] [--seconds 20]
         [--procs 4] [--life 20,60] [--rate 300k] [--stop-late 5] [--bin PATH] [--json out.json]
       .venv-test/bin/python ops/bench/viewers.py --spike [--spike-viewers 5000] [--spike-seconds 10] [--hold 15]
       [--perf FILE] (the edge in perf for 10 s after its first step, not counted)
Needs: nginx, ffmpeg; uvloop in .venv-test (ops/install-deps --test).
"""
import asyncio
import http.client
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from edge import rss_kb, tree_rss_kb  # noqa: E402
from peers import bench_arguments, cpu_seconds, encode_broadcast, free_port  # noqa: E402
from wrkbench import bench_cluster, create_stream, get, raise_file_limit  # noqa: E402

now = time.monotonic  # CLOCK_MONOTONIC: one clock for every process on the machine


# MARK: Playlists

def tag_value(text, tag, default=None):
    at = text.find(tag)
    if at < 0:
        return default
    at += len(tag)
    end = at
    while end < len(text) and text[end] not in ",\n\r":
        end += 1
    return text[at:end]


def part_uri(part_text):
    at = part_text.index('URI="') + 5
    return part_text[at:part_text.index('"', at)]


def listed_from(text, msn, idx):
    """The parts a media playlist lists from part `idx` of segment `msn` on: ([(uri, msn, idx)],
    (msn, idx) to ask for next), or None when `msn` has left the window (or its parts are no
    longer listed). Splitting on the tags keeps the walk in C: a reload costs a few µs."""
    seq = int(tag_value(text, "#EXT-X-MEDIA-SEQUENCE:", "0"))
    blocks = text.split("#EXTINF:")  # block k: the parts of segment seq + k, then its EXTINF
    k = msn - seq
    if k < 0:
        return None
    out = []
    while k < len(blocks):
        parts = blocks[k].split("#EXT-X-PART:")[1:]
        complete = k < len(blocks) - 1
        if complete and not parts:
            return None
        while idx < len(parts):
            out.append((part_uri(parts[idx]), msn, idx))
            idx += 1
        if not complete:
            break
        # A finished segment's last part is followed by the next segment's first.
        msn, idx, k = msn + 1, 0, k + 1
    return out, (msn, idx)


def newest_part(text):
    """(uri, msn, idx) of the last part listed, and the parts a segment has."""
    seq = int(tag_value(text, "#EXT-X-MEDIA-SEQUENCE:", "0"))
    blocks = text.split("#EXTINF:")
    per_segment = 6
    for k in range(len(blocks) - 1, -1, -1):
        parts = blocks[k].split("#EXT-X-PART:")[1:]
        if parts:
            if k < len(blocks) - 1:
                per_segment = len(parts)
            elif k > 0:
                per_segment = max(len(blocks[k - 1].split("#EXT-X-PART:")) - 1, len(parts))
            return (part_uri(parts[-1]), seq + k, len(parts) - 1), per_segment
    return None, per_segment


def name_of(uri):
    return uri.split("?", 1)[0].rsplit("/", 1)[-1]


def joined(base_path, uri):
    """A playlist's URI against the path of the playlist it is in."""
    if uri.startswith("/"):
        return uri
    return base_path.split("?", 1)[0].rsplit("/", 1)[0] + "/" + uri


# MARK: The viewers' HTTP/1.1 client

class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time: Content-Length, chunked, or a
    body to the close. `get` answers (status, body bytes)."""

    def __init__(self, host):
        self.host = host.encode()
        self.buf = bytearray()
        self.transport = None
        self.waiter = None
        self.head = None
        self.closed = False

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        self.closed = True
        w = self.waiter
        if w is not None and not w.done():
            if self.head is not None and self.head[1] is None and not self.head[2]:
                w.set_result((self.head[0], bytes(self.buf)))  # body to the close
            else:
                w.set_exception(ConnectionError("connection closed"))

    def get(self, target):
        if self.closed:
            raise ConnectionError("connection closed")
        self.head = None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(b"GET " + target.encode() + b" HTTP/1.1\r\nHost: " + self.host + b"\r\n\r\n")
        return self.waiter

    def data_received(self, data):
        self.buf += data
        if self.waiter is not None and not self.waiter.done():
            self.parse()

    def parse(self):
        buf = self.buf
        if self.head is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
            del buf[:end + 4]
            status = int(lines[0].split(" ", 2)[1])
            length, chunked, close = None, False, False
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "transfer-encoding":
                    chunked = "chunked" in value.lower()
                elif name == "connection":
                    close = "close" in value.lower()
            self.head = (status, length, chunked, close)
        status, length, chunked, close = self.head
        if chunked:
            body = self.dechunk()
            if body is None:
                return
        elif length is not None:
            if len(buf) < length:
                return
            body = bytes(buf[:length])
            del buf[:length]
        else:
            return  # the body ends with the connection
        self.waiter.set_result((status, body))
        if close:
            self.transport.close()
            self.closed = True

    def dechunk(self):
        buf, pos, out = self.buf, 0, bytearray()
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
            if size == 0:
                end = buf.find(b"\r\n\r\n", eol)  # after the trailers, if any
                if end < 0:
                    return None
                del buf[:end + 4]
                return bytes(out)
            if len(buf) < eol + 2 + size + 2:
                return None
            out += buf[eol + 2:eol + 2 + size]
            pos = eol + 2 + size + 2

    def close(self):
        if self.transport is not None:
            self.transport.close()
        self.closed = True


# MARK: The client processes

class Viewers:
    """One client process's viewers: as many sessions as it is told, each replaced when its
    life ends; what they saw, collected on request."""

    def __init__(self, pipe, seed):
        self.pipe = pipe
        self.random = random.Random(seed)
        self.sessions = set()
        self.wanted = 0
        self.target = None
        self.life = (20, 60)
        self.spawner = None
        self.counter = 0
        self.keep_keys = False
        self.reset()

    def reset(self):
        self.arrivals = {}  # part name -> [arrival, ...]
        self.missed = []  # when a viewer skipped parts: (time, how many)
        self.statuses = {}  # "503", "part timeout", "connect timeout", "ConnectionError", ...
        self.requests = {"master": 0, "playlist": 0, "part": 0}
        self.joins = []  # (session start, seconds to its first part)
        self.keys = set()
        self.started = 0
        self.ended = 0

    def note(self, what):
        self.statuses[what] = self.statuses.get(what, 0) + 1

    async def fetch(self, conn, target, kind, timeout):
        self.requests[kind] += 1
        if self.keep_keys:
            self.keys.add(strip_session(target))
        try:
            status, body = await asyncio.wait_for(conn.get(target), timeout)
        except asyncio.TimeoutError:
            self.note(f"{kind} timeout")
            raise
        if status != 200:
            self.note(str(status))
        return status, body

    async def session(self, life):
        t = self.target
        start = now()
        until = start + life
        self.started += 1
        self.counter += 1
        state = {"pick": self.counter, "start": start, "at": None, "conn": None}
        try:
            while now() < until:
                try:
                    await self.play(t, until, state)
                except Exception as e:  # noqa: BLE001 (a viewer notes what went wrong and starts again, as a player does)
                    if not isinstance(e, asyncio.TimeoutError):  # those are noted where they happen
                        self.note(type(e).__name__)
                    if state["conn"] is not None:
                        state["conn"].close()
                    state["conn"] = None
                    await asyncio.sleep(0.5)  # a player's retry after an error, not a storm
        finally:
            if state["conn"] is not None:
                state["conn"].close()
            self.ended += 1

    async def play(self, t, until, state):
        """One viewer from the master playlist on (again after an error), until `until`.
        `state`: the session's connection, where it is in the stream, its rendition pick."""
        loop = asyncio.get_running_loop()
        conn = state["conn"]
        if conn is None or conn.closed:
            try:
                _, conn = await asyncio.wait_for(loop.create_connection(lambda: Connection(t["host"]), t["ip"], t["port"]), 10)
            except asyncio.TimeoutError:
                self.note("connect timeout")
                raise
            state["conn"] = conn
        status, body = await self.fetch(conn, t["master"], "master", 10)
        if status != 200:
            await asyncio.sleep(1)
            return
        renditions = [line for line in body.decode().splitlines() if line and not line.startswith("#")]
        media = joined(t["master"], renditions[state["pick"] % len(renditions)])
        sep = "&" if "?" in media else "?"
        status, body = await self.fetch(conn, media, "playlist", 10)
        if status != 200:
            await asyncio.sleep(1)
            return
        text = body.decode()
        blocking = "CAN-BLOCK-RELOAD=YES" in text
        part_target = float(tag_value(text, "PART-TARGET=", "0.334"))
        # The watch page's wait for a blocking reload: three target durations and two seconds.
        wait = max(4.0, 3 * float(tag_value(text, "#EXT-X-TARGETDURATION:", "2")) + 2)
        (uri, msn, idx), per_segment = newest_part(text)
        if state["at"] is not None:
            # Started again after an error: the parts between count as lost.
            self.missed.append((now(), max(0, (msn - state["at"][0]) * per_segment + idx - state["at"][1])))
        await self.fetch(conn, joined(media, uri), "part", 10)  # start-up: not counted
        if state["start"] is not None:
            self.joins.append((state["start"], now() - state["start"]))
            state["start"] = None
        at = state["at"] = (msn, idx + 1)
        while now() < until:
            if blocking:
                target = f"{media}{sep}_HLS_msn={at[0]}&_HLS_part={at[1]}"
                status, body = await self.fetch(conn, target, "playlist", wait)
            else:
                status, body = await self.fetch(conn, media, "playlist", 10)
            if status != 200:
                await asyncio.sleep(part_target / 2)
                continue
            text = body.decode()
            found = listed_from(text, *at)
            if found is None:
                # Fell out of the window: on from the newest part, the ones between lost.
                (uri, msn, idx), per_segment = newest_part(text)
                lost = max(0, (msn - at[0]) * per_segment + idx - at[1])
                self.missed.append((now(), lost))
                found = ([(uri, msn, idx)], (msn, idx + 1))
            parts, following = found
            if not parts:
                if not blocking:
                    await asyncio.sleep(part_target / 2)
                continue
            for uri, msn, idx in parts:
                status, _ = await self.fetch(conn, joined(media, uri), "part", 10)
                if status == 200:
                    self.arrivals.setdefault(name_of(uri), []).append(now())
            at = state["at"] = following

    async def spawn(self, ramp):
        """Up to `wanted` sessions, the missing ones started evenly over `ramp` seconds; then
        each ended one replaced."""
        missing = self.wanted - len(self.sessions)
        gap = ramp / missing if missing > 0 and ramp > 0 else 0
        while True:
            if len(self.sessions) < self.wanted:
                task = asyncio.ensure_future(self.session(self.random.uniform(*self.life)))
                self.sessions.add(task)
                task.add_done_callback(self.sessions.discard)
                await asyncio.sleep(gap)
            else:
                gap = 0
                await asyncio.sleep(0.05)

    def command(self, message):
        kind = message[0]
        if kind == "target":
            self.target, self.life, self.keep_keys = message[1], message[2], message[3]
        elif kind == "viewers":
            self.wanted = message[1]
            if self.spawner is not None:
                self.spawner.cancel()
            if self.wanted < len(self.sessions):
                for task in list(self.sessions)[self.wanted:]:
                    task.cancel()
            self.spawner = asyncio.ensure_future(self.spawn(message[2]))
        elif kind == "collect":
            out = {"arrivals": self.arrivals, "missed": self.missed, "statuses": self.statuses, "requests": self.requests,
                   "joins": self.joins, "keys": self.keys, "started": self.started, "ended": self.ended,
                   "sessions": len(self.sessions)}
            self.reset()
            return out
        return None

    async def run(self):
        loop = asyncio.get_running_loop()
        while True:
            message = await loop.run_in_executor(None, self.pipe.recv)
            if message[0] == "quit":
                for task in list(self.sessions):
                    task.cancel()
                await asyncio.sleep(0.2)
                return
            self.pipe.send(self.command(message))


def strip_session(target):
    """A request's target as the edge names the object: without the viewer's `vsid=`."""
    if "?" not in target:
        return target
    path, query = target.split("?", 1)
    kept = [p for p in query.split("&") if not p.startswith("vsid=")]
    return path + ("?" + "&".join(kept) if kept else "")


def client_process(pipe, seed):
    raise_file_limit()
    # uvloop: the clients share two cores with the servers; asyncio's own loop would measure itself.
    import uvloop
    uvloop.run(Viewers(pipe, seed).run())


class Clients:
    """The client processes, told together."""

    def __init__(self, procs):
        ctx = multiprocessing.get_context("fork")
        self.pipes, self.procs = [], []
        for i in range(procs):
            ours, theirs = ctx.Pipe()
            p = ctx.Process(target=client_process, args=(theirs, 1000 + i), daemon=True)
            p.start()
            self.pipes.append(ours)
            self.procs.append(p)

    def tell(self, *message):
        for pipe in self.pipes:
            pipe.send(message)
        return [pipe.recv() for pipe in self.pipes]

    def viewers(self, n, ramp):
        k = len(self.pipes)
        for i, pipe in enumerate(self.pipes):
            pipe.send(("viewers", n // k + (1 if i < n % k else 0), ramp))
        for pipe in self.pipes:
            pipe.recv()

    def collect(self):
        merged = {"arrivals": {}, "missed": [], "statuses": {}, "requests": {}, "joins": [], "keys": set(),
                  "started": 0, "ended": 0, "sessions": 0}
        for part in self.tell("collect"):
            for name, times in part["arrivals"].items():
                merged["arrivals"].setdefault(name, []).extend(times)
            for key in ("missed", "joins"):
                merged[key] += part[key]
            for key in ("statuses", "requests"):
                for k, v in part[key].items():
                    merged[key][k] = merged[key].get(k, 0) + v
            merged["keys"] |= part["keys"]
            for key in ("started", "ended", "sessions"):
                merged[key] += part[key]
        return merged

    def cpu(self):
        return sum(cpu_seconds(p.pid, children=False) for p in self.procs)

    def quit(self):
        for pipe in self.pipes:
            pipe.send(("quit",))
        for p in self.procs:
            p.join(10)
            if p.is_alive():
                p.terminate()


# MARK: Followers in this process: due times (origin), nginx's folder (mirror)

class Follower(threading.Thread):
    """Follows a media playlist with blocking reloads, one request at a time. `on_parts(conn,
    text, [(uri, msn, idx)], seen_at)` is handed each reload's new parts (and the connection,
    to fetch them on)."""

    def __init__(self, base, path, on_parts):
        super().__init__(daemon=True)
        self.host, self.port = base.split("//", 1)[1].split(":")
        self.path, self.on_parts = path, on_parts
        self.running = True
        self.requests = 0
        self.errors = 0

    def get(self, conn, target):
        self.requests += 1
        conn.request("GET", target)
        r = conn.getresponse()
        return r.status, r.read()

    def run(self):
        conn = http.client.HTTPConnection(self.host, int(self.port), timeout=15)
        at = None
        while self.running:
            try:
                target = self.path if at is None else f"{self.path}?_HLS_msn={at[0]}&_HLS_part={at[1]}"
                status, body = self.get(conn, target)
                seen = now()
                if status != 200:
                    self.errors += 1
                    time.sleep(0.1)
                    continue
                text = body.decode()
                if at is None:
                    (uri, msn, idx), _ = newest_part(text)
                    found = ([], (msn, idx + 1))
                else:
                    found = listed_from(text, *at)
                if found is None:
                    (uri, msn, idx), _ = newest_part(text)
                    found = ([(uri, msn, idx)], (msn, idx + 1))
                parts, at = found
                self.on_parts(conn, text, parts, seen)
            except (OSError, http.client.HTTPException):
                self.errors += 1
                conn.close()
                conn = http.client.HTTPConnection(self.host, int(self.port), timeout=15)
                time.sleep(0.1)


class DueTimes:
    """When the origin first listed each part (its name), and the bytes of media made."""

    def __init__(self, origin, path):
        self.due = {}
        self.sizes = {}
        self.path = path
        self.follower = Follower(origin, path, self.seen)

    def seen(self, conn, text, parts, at):
        for uri, _, _ in parts:
            self.due.setdefault(name_of(uri), at)
        # Sizes, for the media the edge keeps in memory; after the due time is taken.
        for uri, _, _ in parts:
            _, body = self.follower.get(conn, joined(self.path, uri))
            self.sizes[name_of(uri)] = (at, len(body))

    def media_bytes(self, since):
        return sum(size for at, size in list(self.sizes.values()) if at >= since)


class Mirror:
    """The edge's playlist and parts as files, for nginx: parts first, then the playlist that
    lists them, renamed into place; CAN-BLOCK-RELOAD taken out (nginx cannot block)."""

    def __init__(self, edge, stream, www, due):
        self.folder = os.path.join(www, "live", stream, "source")
        os.makedirs(self.folder)
        self.path = f"/live/{stream}/source/index.m3u8"
        self.due = due
        self.lag = []  # (when, a part's file in place minus its due time)
        master = get(f"{edge}/live/{stream}/master.m3u8").decode()
        self.write(os.path.join(www, "live", stream, "master.m3u8"),
                   "\n".join(line.split("?", 1)[0] for line in master.splitlines()) + "\n")
        self.follower = Follower(edge, self.path, self.seen)

    def write(self, path, data):
        mode = "wb" if isinstance(data, bytes) else "w"
        with open(path + ".tmp", mode) as f:
            f.write(data)
        os.chmod(path + ".tmp", 0o644)
        os.rename(path + ".tmp", path)

    def seen(self, conn, text, parts, at):
        init = tag_value(text, '#EXT-X-MAP:URI="', "").rstrip('"')
        if init and not os.path.exists(os.path.join(self.folder, init)):
            _, body = self.follower.get(conn, joined(self.path, init))
            self.write(os.path.join(self.folder, init), body)
        # Every part the playlist lists is in place before it (the first one lists many).
        for chunk in text.split("#EXT-X-PART:")[1:]:
            uri = part_uri(chunk)
            if not os.path.exists(os.path.join(self.folder, name_of(uri))):
                _, body = self.follower.get(conn, joined(self.path, uri))
                self.write(os.path.join(self.folder, name_of(uri)), body)
        self.write(os.path.join(self.folder, "index.m3u8"), text.replace("CAN-BLOCK-RELOAD=YES,", ""))
        placed = now()
        for uri, _, _ in parts:
            due = self.due.get(name_of(uri))
            if due is not None:
                self.lag.append((placed, placed - due))


def start_nginx(tmp, www):
    port = free_port()
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""worker_processes auto; worker_rlimit_nofile 20000; daemon off; pid {tmp}/nginx.pid; error_log {tmp}/nginx-error.log;
events {{ worker_connections 20000; }}
http {{ access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000;
  types {{ application/vnd.apple.mpegurl m3u8; video/mp4 mp4 m4s; }}
  server {{ listen 127.0.0.1:{port} backlog=4096; root {www};
    location ~ \\.m3u8$ {{ add_header Cache-Control "no-cache"; }} }} }}
""")
    proc = subprocess.Popen(["nginx", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(50):
        try:
            get(f"http://127.0.0.1:{port}/nothing-here")
        except urllib.error.HTTPError:
            return proc, port
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("nginx did not start")


# MARK: Figures

def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else float("nan")


def lateness(seen, due, t0, t1):
    """Arrival minus due time, in seconds, of every part that arrived in [t0, t1)."""
    out, unknown = [], 0
    for name, times in seen["arrivals"].items():
        d = due.get(name)
        for t in times:
            if t0 <= t < t1:
                if d is None:
                    unknown += 1
                else:
                    out.append(t - d)
    return out, unknown


def metrics(base):
    """A node's /metrics as {"name{labels}": value}."""
    out = {}
    for line in get(base + "/metrics").decode().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def wait_for_parts(base, path, seconds=60):
    for _ in range(seconds * 10):
        try:
            text = get(base + path).decode()
            if "#EXT-X-PART:" in text:
                return text
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"no parts listed at {base}{path}")


def push_looped(tmp, rtmp_port, key, rate):
    """ffmpeg pushing a 60 s broadcast encoded once (640x360, `rate` video + AAC, a keyframe every
    2 s), looped, in real time, without encoding: the broadcaster costs the machine next to nothing."""
    path = os.path.join(tmp, "broadcast.flv")
    encode_broadcast(path, 60, size="640x360", rate=rate)
    return subprocess.Popen(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-stream_loop", "-1", "-i", path,
                             "-c", "copy", "-f", "flv", f"rtmp://127.0.0.1:{rtmp_port}/live/{key}"])


# MARK: The runs

def run_step(side, n, clients, due, part_target, args, baseline, server_pid, nginx_tree, mirror):
    host = f"127.0.0.1:{side['port']}"
    clients.tell("target", {"host": host, "ip": "127.0.0.1", "port": side["port"], "master": side["master"]},
                 tuple(args.life_range), False)
    ramp = max(5.0, n / 500)
    clients.viewers(n, ramp)
    time.sleep(ramp + args.settle)
    ramped = clients.collect()
    cpu0, ccpu0, t0 = (cpu_seconds(server_pid, children=nginx_tree), clients.cpu(), now())
    time.sleep(args.seconds)
    seen = clients.collect()
    cpu1, ccpu1, t1 = (cpu_seconds(server_pid, children=nginx_tree), clients.cpu(), now())
    rss = tree_rss_kb(server_pid) if nginx_tree else rss_kb(server_pid)
    gauge = None
    if not nginx_tree:
        gauge = metrics(side["base"]).get("streamtube_viewer_sessions")
    if args.perf and not nginx_tree and not args.perf_done:
        # Where the edge's time goes, after the measured window (not counted): the same viewers, 10 s more.
        rec = subprocess.Popen(["perf", "record", "-g", "-o", args.perf, "-p", str(server_pid)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(10)
        rec.send_signal(signal.SIGINT)
        rec.wait(30)
        args.perf_done = True
    clients.viewers(0, 0)
    time.sleep(2)
    clients.collect()
    waits, unknown = lateness(seen, due.due, t0, t1)
    missed = sum(k for at, k in seen["missed"] if t0 <= at < t1)
    late = sum(1 for w in waits if w > part_target) + missed
    counted = len(waits) + missed
    media = due.media_bytes(baseline["at"]) / 1024 if not nginx_tree else 0
    errors = dict(seen["statuses"])
    for k, v in ramped["statuses"].items():
        errors["ramp " + k] = errors.get("ramp " + k, 0) + v
    joins = [j for _, j in ramped["joins"] + seen["joins"]]
    seconds = t1 - t0
    result = {
        "viewers": n, "sessions_at_end": seen["sessions"], "parts": counted, "late": late, "missed": missed,
        "late_pct": 100 * late / max(1, counted), "unknown_due": unknown,
        "wait_ms_p50": 1000 * percentile(waits, 50), "wait_ms_p99": 1000 * percentile(waits, 99),
        "wait_ms_max": 1000 * max(waits) if waits else float("nan"),
        "cpu_per_s": (cpu1 - cpu0) / seconds, "cpu_per_s_per_1000": (cpu1 - cpu0) / seconds / (n / 1000),
        "rss_mb": rss / 1024, "rss_over_baseline_kb_per_viewer": (rss - baseline["rss"]) / n,
        "media_kb_since_baseline": media, "clients_cpu_per_s": (ccpu1 - ccpu0) / seconds,
        "requests_per_s": {k: v / seconds for k, v in seen["requests"].items()},
        "sessions_started": seen["started"], "sessions_ended": seen["ended"],
        "join_ms_p50": 1000 * percentile(joins, 50), "join_ms_p99": 1000 * percentile(joins, 99),
        "errors": errors, "node_viewer_sessions_gauge": gauge, "loadavg": os.getloadavg()[0],
    }
    if nginx_tree:
        lag = [x for at, x in list(mirror.lag) if t0 <= at < t1]
        result["mirror_lag_ms_p50"], result["mirror_lag_ms_p99"] = 1000 * percentile(lag, 50), 1000 * percentile(lag, 99)
    print(f"{side['name']:>10} {n:>6} viewers: {result['late_pct']:.2f}% late ({late}/{counted}, {missed} skipped), "
          f"wait p50 {result['wait_ms_p50']:.0f} p99 {result['wait_ms_p99']:.0f} ms, "
          f"cpu {result['cpu_per_s']:.2f} s/s ({result['cpu_per_s_per_1000']:.3f} per 1k), "
          f"rss {result['rss_mb']:.0f} MB ({result['rss_over_baseline_kb_per_viewer']:.1f} KB/viewer over baseline), "
          f"clients {result['clients_cpu_per_s']:.2f} s/s, errors {errors}, load {result['loadavg']:.1f}", file=sys.stderr)
    return result


def steps_run(args, cluster, clients, due, stream, part_target):
    nodes, tmp, procs = cluster["nodes"], cluster["tmp"], cluster["procs"]
    www = os.path.join(tmp, "www")
    os.makedirs(www)
    mirror = Mirror(nodes["edge"]["base"], stream, www, due.due)
    mirror.follower.start()
    for folder in (tmp, www):
        os.chmod(folder, 0o755)
    for root, dirs, _ in os.walk(www):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
    nginx, nginx_port = start_nginx(tmp, www)
    procs.append(nginx)
    wait_for_parts(f"http://127.0.0.1:{nginx_port}", f"/live/{stream}/source/index.m3u8")
    edge_port = int(nodes["edge"]["base"].rsplit(":", 1)[1])
    sides = {
        "streamtube": {"name": "streamtube", "port": edge_port, "base": nodes["edge"]["base"],
                       "master": f"/live/{stream}/master.m3u8", "pid": nodes["edge"]["proc"].pid, "tree": False},
        "nginx": {"name": "nginx", "port": nginx_port, "base": f"http://127.0.0.1:{nginx_port}",
                  "master": f"/live/{stream}/master.m3u8", "pid": nginx.pid, "tree": True},
    }
    time.sleep(3)
    baselines = {name: {"at": now(), "rss": tree_rss_kb(s["pid"]) if s["tree"] else rss_kb(s["pid"])} for name, s in sides.items()}
    print(f"baseline rss: streamtube edge {baselines['streamtube']['rss'] / 1024:.1f} MB, "
          f"nginx {baselines['nginx']['rss'] / 1024:.1f} MB", file=sys.stderr)
    results = {name: [] for name in sides}
    going = set(sides)
    for i, n in enumerate(args.step_counts):
        order = list(sides) if i % 2 == 0 else list(sides)[::-1]
        for name in order:
            if name not in going:
                continue
            s = sides[name]
            r = run_step(s, n, clients, due, part_target, args, baselines[name], s["pid"], s["tree"], mirror)
            previous = results[name][-1] if results[name] else None
            if previous:
                # Each step is a new high-water mark: what it added over the last, per viewer added.
                r["rss_added_kb_per_added_viewer"] = (r["rss_mb"] - previous["rss_mb"]) * 1024 / (n - previous["viewers"])
            results[name].append(r)
            if r["late_pct"] > args.stop_late:
                going.discard(name)
        if not going:
            break
    mirror.follower.running = False
    return results, mirror


def best(runs):
    ok = [r for r in runs if r["late_pct"] <= 1.0]
    return max(ok, key=lambda r: r["viewers"]) if ok else None


def report_steps(results, mirror, part_target, args, load_before):
    lag = [1000 * max(r.get("mirror_lag_ms_p99", 0) for r in results["nginx"]) / 1000] if results["nginx"] else []
    lag_p50 = [r["mirror_lag_ms_p50"] for r in results["nginx"]]
    print(f"Machine: {os.cpu_count()} cores, shared with another developer's builds (load average {load_before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after); servers and clients on the same cores, loopback.")
    print(f"Part duration {part_target * 1000:.0f} ms; late = last byte more than one part duration after the origin listed the "
          f"part. nginx polls (no blocking reload); during its steps its mirror placed parts p50 {max(lag_p50 or [0]):.0f} ms "
          f"(the worst step's), p99 {max(lag or [0]):.0f} ms (the worst step's) after the origin listed them.")
    print()
    print("| server | viewers | parts late | wait p50 / p99 | server CPU s/s | CPU s/s per 1,000 viewers | RSS (over baseline per viewer) "
          "| RSS added per viewer added | clients CPU s/s | requests/s (playlist, part) | errors |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, runs in results.items():
        for r in runs:
            req = r["requests_per_s"]
            media = f"; media since baseline {r['media_kb_since_baseline'] / 1024:.1f} MB" if name == "streamtube" else ""
            errors = ", ".join(f"{k}: {v}" for k, v in sorted(r["errors"].items())) or "none"
            added = f"{r['rss_added_kb_per_added_viewer']:.1f} KB" if "rss_added_kb_per_added_viewer" in r else ""
            print(f"| {name} | {r['viewers']:,} | {r['late_pct']:.2f} % ({r['late']:,} of {r['parts']:,}) | "
                  f"{r['wait_ms_p50']:.0f} / {r['wait_ms_p99']:.0f} ms | {r['cpu_per_s']:.2f} | {r['cpu_per_s_per_1000']:.3f} | "
                  f"{r['rss_mb']:.0f} MB ({r['rss_over_baseline_kb_per_viewer']:.1f} KB{media}) | {added} | "
                  f"{r['clients_cpu_per_s']:.2f} | {req.get('playlist', 0):,.0f}, {req.get('part', 0):,.0f} | {errors} |")
    print()
    ours, theirs = best(results["streamtube"]), best(results["nginx"])
    both = sorted({r["viewers"] for r in results["streamtube"] if r["late_pct"] <= 1.0}
                  & {r["viewers"] for r in results["nginx"] if r["late_pct"] <= 1.0})
    summary = {"streamtube_most_viewers": ours and ours["viewers"], "nginx_most_viewers": theirs and theirs["viewers"]}
    print("| measure | StreamTube edge | nginx (files) | ratio (ours / nginx) | goal |")
    print("| --- | --- | --- | --- | --- |")
    ratio = f"{ours['viewers'] / theirs['viewers']:.2f}" if ours and theirs else ""
    print(f"| most viewers with <= 1 % parts late (of the steps {','.join(map(str, args.step_counts))}) | "
          f"{ours['viewers'] if ours else 'none'} | {theirs['viewers'] if theirs else 'none'} | {ratio} | >= 10,000 per edge core |")
    if both:
        n = both[-1]
        a = next(r for r in results["streamtube"] if r["viewers"] == n)
        b = next(r for r in results["nginx"] if r["viewers"] == n)
        summary.update({"compared_at": n, "cpu_ratio": a["cpu_per_s_per_1000"] / b["cpu_per_s_per_1000"],
                        "memory_ratio": a["rss_over_baseline_kb_per_viewer"] / max(b["rss_over_baseline_kb_per_viewer"], 1e-9)})
        print(f"| CPU s/s per 1,000 viewers, at {n:,} | {a['cpu_per_s_per_1000']:.3f} | {b['cpu_per_s_per_1000']:.3f} | "
              f"{summary['cpu_ratio']:.2f} | |")
        print(f"| viewers per core at that CPU rate | {1000 / a['cpu_per_s_per_1000']:,.0f} | {1000 / b['cpu_per_s_per_1000']:,.0f} | | "
              f">= 10,000 |")
        media = a["media_kb_since_baseline"] / n
        print(f"| resident memory over baseline per viewer, at {n:,} | {a['rss_over_baseline_kb_per_viewer']:.1f} KB "
              f"(of which media kept since baseline at most {media:.1f} KB) | {b['rss_over_baseline_kb_per_viewer']:.1f} KB | "
              f"{summary['memory_ratio']:.1f} | <= 4 KB |")
    return summary


def spike_run(args, cluster, clients, due, stream, part_target):
    nodes = cluster["nodes"]
    edge, origin = nodes["edge"]["base"], nodes["origin"]["base"]
    edge_port = int(edge.rsplit(":", 1)[1])
    clients.tell("target", {"host": f"127.0.0.1:{edge_port}", "ip": "127.0.0.1", "port": edge_port,
                            "master": f"/live/{stream}/master.m3u8"}, (args.spike_seconds + args.hold + 60,) * 2, True)
    time.sleep(2)
    m0, o0, w0 = metrics(edge), metrics(origin), due.follower.requests
    cpu0, t0 = cpu_seconds(nodes["edge"]["proc"].pid, children=False), now()
    clients.viewers(args.spike_viewers, args.spike_seconds)
    time.sleep(args.spike_seconds + args.hold)
    seen = clients.collect()
    t1 = now()
    m1, o1, w1 = metrics(edge), metrics(origin), due.follower.requests
    cpu1 = cpu_seconds(nodes["edge"]["proc"].pid, children=False)
    clients.viewers(0, 0)
    time.sleep(2)
    clients.collect()

    def delta(a, b, name):
        return b.get(name, 0) - a.get(name, 0)

    upstream = delta(m0, m1, "streamtube_edge_upstream_requests_total")
    hits = delta(m0, m1, "streamtube_edge_cache_hits_total")
    at_origin = delta(o0, o1, "streamtube_origin_edge_requests_total")
    routes = {}
    for key in o1:
        if key.startswith("hb_requests{"):
            route = key.split('http_route="', 1)[1].split('"', 1)[0]
            status = key.split('http_response_status_code="', 1)[1].split('"', 1)[0]
            routes[f"{route} {status}"] = routes.get(f"{route} {status}", 0) + delta(o0, o1, key)
    reference = w1 - w0  # this script's own reference player asks the origin too
    keys = seen["keys"]
    parts = {k for k in keys if k.endswith(".m4s") or k.endswith(".mp4")}
    blocking = {k for k in keys if "_HLS_msn=" in k}
    plain = {k for k in keys if k.endswith(".m3u8")}
    objects = len(parts) + len(blocking) + len(plain)
    steady_from = t0 + args.spike_seconds + args.hold / 2
    waits_spike, _ = lateness(seen, due.due, t0, steady_from)
    waits_steady, _ = lateness(seen, due.due, steady_from, t1)
    steady = percentile(waits_steady, 50)
    joins = [j for _, j in seen["joins"]]
    worst = max(waits_spike) - steady if waits_spike else float("nan")
    out = {
        "viewers": args.spike_viewers, "seconds": args.spike_seconds, "hold": args.hold, "sessions_started": seen["started"],
        "edge_upstream_requests": upstream, "edge_cache_hits": hits, "origin_edge_requests": at_origin,
        "origin_requests_by_route": routes, "reference_player_requests_at_origin": reference,
        "distinct_objects": {"parts": len(parts), "blocking_playlists": len(blocking), "plain_playlists": len(plain)},
        "upstream_per_object": upstream / max(1, objects),
        "requests": seen["requests"], "errors": seen["statuses"],
        "steady_wait_ms_p50": 1000 * steady, "spike_wait_ms_p99": 1000 * percentile(waits_spike, 99),
        "spike_wait_ms_max": 1000 * max(waits_spike) if waits_spike else None,
        "worst_beyond_steady_ms": 1000 * worst, "worst_beyond_steady_parts": worst / part_target,
        "join_ms_p50": 1000 * percentile(joins, 50), "join_ms_p99": 1000 * percentile(joins, 99),
        "join_ms_max": 1000 * max(joins) if joins else None,
        "edge_cpu_per_s": (cpu1 - cpu0) / (t1 - t0), "loadavg": os.getloadavg()[0],
    }
    print(f"Machine: {os.cpu_count()} cores, shared with another developer's builds (load average {out['loadavg']:.1f}); "
          f"servers and clients on the same cores, loopback. Part duration {part_target * 1000:.0f} ms.")
    print()
    print("| spike | figure | goal |")
    print("| --- | --- | --- |")
    print(f"| viewers | 0 to {args.spike_viewers:,} in {args.spike_seconds} s, held {args.hold} s ({seen['started']:,} sessions) | |")
    print(f"| edge upstream requests / distinct objects asked | {upstream:.0f} / {objects} ({len(parts)} parts, "
          f"{len(blocking)} blocking playlists, {len(plain)} playlists without blocking) = {out['upstream_per_object']:.2f} | 1 |")
    print(f"| origin: requests from the edge; by route (less this script's {reference} reference requests, all on the media route) | "
          f"{at_origin:.0f}; " + ", ".join(f"{k}: {v:.0f}" for k, v in sorted(routes.items()) if v) + " | |")
    req = seen["requests"]
    print(f"| the viewers' requests to the edge: master playlists, media playlists, parts | {req['master']:,}, {req['playlist']:,}, "
          f"{req['part']:,} | |")
    print(f"| edge cache hits | {hits:.0f} | |")
    print(f"| part wait after due: steady (last {args.hold / 2:.0f} s) p50 | {out['steady_wait_ms_p50']:.0f} ms | |")
    print(f"| part wait from the spike's start to the steady window: p99, max | {out['spike_wait_ms_p99']:.0f} ms, {out['spike_wait_ms_max']:.0f} ms | |")
    moot = steady > part_target
    out["steady_state_overloaded"] = moot
    print(f"| worst wait beyond the steady state | {out['worst_beyond_steady_ms']:.0f} ms = "
          f"{out['worst_beyond_steady_parts']:.1f} part durations"
          + (" (moot: the steady state itself is more than a part late, the edge did not carry these viewers)" if moot else "")
          + " | <= 2 part durations |")
    print(f"| join (master playlist asked to first part in hand): p50, p99, max | {out['join_ms_p50']:.0f}, "
          f"{out['join_ms_p99']:.0f}, {out['join_ms_max']:.0f} ms | |")
    print(f"| errors | {', '.join(f'{k}: {v}' for k, v in sorted(seen['statuses'].items())) or 'none'} | |")
    print(f"| edge CPU s/s over the spike and hold | {out['edge_cpu_per_s']:.2f} | |")
    return out


def main():
    ap = bench_arguments(__doc__, "not used: each step runs once a side, the sides taking turns")
    ap.add_argument("--steps", default="500,1000,2000,4000,8000", help="viewer counts, in order")
    ap.add_argument("--seconds", type=float, default=20, help="measured seconds per step")
    ap.add_argument("--settle", type=float, default=3, help="seconds after the ramp before measuring")
    ap.add_argument("--procs", type=int, default=4, help="client processes")
    ap.add_argument("--life", default="20,60", help="a viewer's life in seconds: min,max")
    ap.add_argument("--rate", default="300k", help="the broadcast's video bit rate (AAC 128k beside it)")
    ap.add_argument("--stop-late", type=float, default=5, help="a side stops after a step with more than this %% late")
    ap.add_argument("--perf", help="record the edge with perf into PERF for 10 s after its first step's window (not counted)")
    ap.add_argument("--spike", action="store_true", help="the spike instead of the steps")
    ap.add_argument("--spike-viewers", type=int, default=5000)
    ap.add_argument("--spike-seconds", type=float, default=10)
    ap.add_argument("--hold", type=float, default=15, help="seconds held after the spike")
    args = ap.parse_args()
    args.step_counts = [int(x) for x in args.steps.split(",")]
    args.life_range = [float(x) for x in args.life.split(",")]
    args.perf_done = False
    raise_file_limit()
    load_before = os.getloadavg()[0]
    with bench_cluster(args, "viewers", {}) as cluster:
        nodes, tmp, procs = cluster["nodes"], cluster["tmp"], cluster["procs"]
        stream = create_stream(nodes["origin"]["base"], title="viewers")
        procs.append(push_looped(tmp, nodes["origin"]["rtmp"], stream["key"], args.rate))
        path = f"/live/{stream['id']}/source/index.m3u8"
        text = wait_for_parts(nodes["origin"]["base"], path)
        wait_for_parts(nodes["edge"]["base"], path)
        part_target = float(tag_value(text, "PART-TARGET=", "0.334"))
        # Forked before this process starts threads: a child of a threaded parent can inherit held locks.
        clients = Clients(args.procs)
        try:
            due = DueTimes(nodes["origin"]["base"], path)
            due.follower.start()
            time.sleep(2)
            if args.spike:
                out = spike_run(args, cluster, clients, due, stream["id"], part_target)
            else:
                results, mirror = steps_run(args, cluster, clients, due, stream["id"], part_target)
                summary = report_steps(results, mirror, part_target, args, load_before)
                out = {"steps": results, "summary": summary, "part_target": part_target}
            due.follower.running = False
            out.update({"cores": os.cpu_count(), "loadavg_before": load_before, "loadavg_after": os.getloadavg()[0],
                        "reference_errors": due.follower.errors, "machine": "shared with another developer's builds"})
            edge_log = os.path.join(tmp, "edge.log")
            out["edge_log_tail"] = open(edge_log, errors="replace").read()[-4000:] if os.path.exists(edge_log) else ""
            if out["edge_log_tail"].strip():
                print("\nedge log (last lines):\n" + "\n".join(out["edge_log_tail"].splitlines()[-15:]), file=sys.stderr)
            if args.json:
                with open(args.json, "w") as f:
                    json.dump(out, f, indent=2, default=list)
        finally:
            clients.quit()


if __name__ == "__main__":
    main()
