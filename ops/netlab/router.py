#!/usr/bin/env python3
"""netlab router: the wide-area network between StreamTube's test hosts, in one process.

Why a process and not `tc netem`: the kernels this runs on may lack sch_netem (Debian's cloud kernels,
Firecracker guests); TUN devices, network namespaces and `ip` are everywhere. So every host of the lab
(a network namespace, see lab.py) has exactly one link, a layer-3 TUN device whose other end is this
process: it reads each IPv4 packet a host sends, looks at the destination address and writes the packet
to that host's TUN device, after

  - the one-way delay of the region pair (plus uniform jitter in [-j, +j]; packets between two hosts keep
    their order: a packet is never released before the one sent before it on the same pair of hosts),
  - dropping it with the pair's loss probability,
  - dropping it outright across a partition, or to or from a host that is cut off. Dropped silently:
    no RST, no ICMP, so TCP connections across the cut stay half-open, as on a real network.

The rules change at run time over a UNIX socket (`<state>/router.sock`, one JSON object per connection,
one JSON answer), which `ops/netlab/netlab` and the tests use (lab.py: Lab.control). Rules can carry a
lifetime (`for`: seconds) after which the router lifts them itself (`fault partition us 60s`).

The host named `client` (the root namespace, where the test process, ffmpeg broadcasters and players run)
is in region `client`: no delay unless given, and outside every partition (an observer on a management
network), but a cut host is cut from it too.

Run by lab.py (`netlab up`), never by hand:  router.py STATE_DIR   (reads STATE_DIR/lab.json, writes
STATE_DIR/router.ready when every TUN device is in place, logs rule changes to STATE_DIR/router.log).
"""
import errno
import fcntl
import heapq
import json
import os
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def open_tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def sh(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def pair_key(a, b):
    return "-".join(sorted((a, b)))


class Router:
    def __init__(self, state):
        self.state = state
        with open(os.path.join(state, "lab.json")) as f:
            self.lab = json.load(f)
        self.hosts = self.lab["hosts"]  # [{name, region, addr, ns (None: root), dev}]
        self.index = {h["name"]: i for i, h in enumerate(self.hosts)}
        self.by_addr = {socket.inet_aton(h["addr"]): i for i, h in enumerate(self.hosts)}
        self.fds = []
        self.fd_host = {}
        # Rules. latency: pair -> [delay_ms, jitter_ms]; loss: pair -> [fraction, until]; partitions: [[regions], until];
        # cuts: host -> until (None: until healed).
        self.latency = {k: list(v) for k, v in self.lab.get("latency", {}).items()}
        self.loss = {}
        self.partitions = []
        self.cuts = {}
        self.seq = 0
        self.heap = []  # (release_at, seq, dst_index, packet)
        self.last_release = {}
        self.stats = {}
        self.reset_stats()
        self.table = None
        self.rebuild()
        self.log = open(os.path.join(state, "router.log"), "a", buffering=1)
        self.rng = random.Random()

    def reset_stats(self):
        self.stats = {"since": time.time(), "packets": 0, "bytes": 0, "forwarded": 0, "dropped_loss": 0,
                      "dropped_partition": 0, "dropped_cut": 0, "dropped_noroute": 0, "dropped_write": 0,
                      "late_max_ms": 0.0, "late_sum_ms": 0.0, "late_over_5ms": 0, "late_over_20ms": 0, "delayed": 0,
                      "queue_max": 0}

    def note(self, event_, **kw):
        self.log.write(json.dumps({"t": round(time.time(), 3), "event": event_, **kw}) + "\n")

    # MARK: rules

    def expire(self, now):
        changed = False
        for p, (frac, until) in list(self.loss.items()):
            if until is not None and until <= now:
                del self.loss[p]
                self.note("loss expired", pair=p)
                changed = True
        keep = [(g, u) for g, u in self.partitions if u is None or u > now]
        if len(keep) != len(self.partitions):
            self.note("partition expired", left=[g for g, _ in keep])
            self.partitions = keep
            changed = True
        for h, until in list(self.cuts.items()):
            if until is not None and until <= now:
                del self.cuts[h]
                self.note("cut expired", host=h)
                changed = True
        if changed:
            self.rebuild()

    def next_expiry(self):
        times = [u for _, u in self.loss.values() if u is not None]
        times += [u for _, u in self.partitions if u is not None]
        times += [u for u in self.cuts.values() if u is not None]
        return min(times) if times else None

    def rebuild(self):
        """The verdict for every (source, destination) host pair: None (drop: reason in `why`) or
        (delay s, jitter s, loss fraction)."""
        n = len(self.hosts)
        table = [[None] * n for _ in range(n)]
        for i, a in enumerate(self.hosts):
            for j, b in enumerate(self.hosts):
                ra, rb = a["region"], b["region"]
                if a["name"] in self.cuts or b["name"] in self.cuts:
                    table[i][j] = "cut"
                    continue
                if ra != rb and "client" not in (ra, rb):
                    if any((ra in g) != (rb in g) for g, _ in self.partitions):
                        table[i][j] = "partition"
                        continue
                d, jit = self.latency.get(pair_key(ra, rb), (0.0, 0.0))
                loss = self.loss.get(pair_key(ra, rb), (0.0, None))[0]
                table[i][j] = (d / 1000.0, jit / 1000.0, loss)
        self.table = table

    def describe(self):
        now = time.monotonic()
        left = lambda u: None if u is None else round(u - now, 1)  # noqa: E731
        return {"hosts": self.hosts, "latency": self.latency,
                "loss": {p: {"percent": f * 100, "seconds_left": left(u)} for p, (f, u) in self.loss.items()},
                "partitions": [{"regions": g, "seconds_left": left(u)} for g, u in self.partitions],
                "cuts": {h: left(u) for h, u in self.cuts.items()},
                "queued": len(self.heap), "stats": self.stats}

    def command(self, msg):
        op = msg.get("op")
        now = time.monotonic()
        until = now + float(msg["for"]) if msg.get("for") else None
        regions = {h["region"] for h in self.hosts}
        if op == "status":
            return {"ok": True, **self.describe()}
        if op == "stats-reset":
            self.reset_stats()
            return {"ok": True}
        if op == "latency":
            a, b = msg["pair"]
            for r in (a, b):
                if r not in regions:
                    return {"ok": False, "error": f"no region {r}"}
            self.latency[pair_key(a, b)] = [float(msg.get("delay_ms", 0)), float(msg.get("jitter_ms", 0))]
        elif op == "loss":
            a, b = msg["pair"]
            for r in (a, b):
                if r not in regions:
                    return {"ok": False, "error": f"no region {r}"}
            frac = float(msg["percent"]) / 100.0
            if frac <= 0:
                self.loss.pop(pair_key(a, b), None)
            else:
                self.loss[pair_key(a, b)] = [frac, until]
        elif op == "partition":
            group = sorted(msg["regions"])
            bad = [r for r in group if r not in regions or r == "client"]
            if bad:
                return {"ok": False, "error": f"no node region {bad}"}
            self.partitions.append((group, until))
        elif op == "cut":
            if msg["host"] not in self.index:
                return {"ok": False, "error": f"no host {msg['host']}"}
            self.cuts[msg["host"]] = until
        elif op == "heal":
            what = msg.get("what", "all")
            if what in ("all", "partition"):
                self.partitions = []
            if what in ("all", "cut"):
                self.cuts = {}
            if what in ("all", "loss"):
                self.loss = {}
        elif op == "shutdown":
            self.note("shutdown")
            raise SystemExit(0)
        else:
            return {"ok": False, "error": f"unknown op {op!r}"}
        self.rebuild()
        self.note(op, **{k: v for k, v in msg.items() if k != "op"})
        return {"ok": True, **self.describe()}

    # MARK: the data path

    def on_packet(self, src, pkt, now):
        st = self.stats
        st["packets"] += 1
        st["bytes"] += len(pkt)
        if len(pkt) < 20 or pkt[0] >> 4 != 4:
            st["dropped_noroute"] += 1
            return
        dst = self.by_addr.get(pkt[16:20])
        if dst is None:
            st["dropped_noroute"] += 1
            return
        verdict = self.table[src][dst]
        if verdict.__class__ is str:
            st["dropped_" + verdict] += 1
            return
        delay, jitter, loss = verdict
        if loss and self.rng.random() < loss:
            st["dropped_loss"] += 1
            return
        pair = src * 64 + dst
        last = self.last_release.get(pair, 0.0)
        if delay == 0.0 and jitter == 0.0 and last <= now:
            self.write(dst, pkt)
            return
        at = now + delay + (self.rng.uniform(-jitter, jitter) if jitter else 0.0)
        if at < last:
            at = last  # keep the order of the pair's packets
        self.last_release[pair] = at
        self.seq += 1
        heapq.heappush(self.heap, (at, self.seq, dst, pkt))
        st["delayed"] += 1
        if len(self.heap) > st["queue_max"]:
            st["queue_max"] = len(self.heap)

    def write(self, dst, pkt):
        try:
            os.write(self.fds[dst], pkt)
            self.stats["forwarded"] += 1
        except OSError:
            self.stats["dropped_write"] += 1

    def release(self, now):
        heap = self.heap
        st = self.stats
        while heap and heap[0][0] <= now:
            at, _, dst, pkt = heapq.heappop(heap)
            late = (now - at) * 1000.0
            st["late_sum_ms"] += late
            if late > 5.0:
                st["late_over_5ms"] += 1
                if late > 20.0:
                    st["late_over_20ms"] += 1
            if late > st["late_max_ms"]:
                st["late_max_ms"] = late
            self.write(dst, pkt)

    # MARK: set-up and the loop

    def setup(self):
        for h in self.hosts:
            fd = open_tun(h["dev"])
            self.fds.append(fd)
            self.fd_host[fd] = self.index[h["name"]]
            prefix = self.lab["prefix_len"]
            if h.get("ns"):
                sh("ip", "link", "set", "dev", h["dev"], "netns", h["ns"])
                ns = ["ip", "-n", h["ns"]]
                sh("ip", "netns", "exec", h["ns"], "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1")
                sh(*ns, "link", "set", "lo", "up")
            else:
                ns = ["ip"]
                sh("sysctl", "-q", "-w", f"net.ipv6.conf.{h['dev']}.disable_ipv6=1")
            sh(*ns, "link", "set", "dev", h["dev"], "mtu", str(self.lab.get("mtu", 1500)), "up")
            sh(*ns, "addr", "add", f"{h['addr']}/{prefix}", "dev", h["dev"])
            if h.get("ns"):
                sh(*ns, "route", "add", "default", "dev", h["dev"])

    def run(self):
        ctl_path = os.path.join(self.state, "router.sock")
        try:
            os.unlink(ctl_path)
        except FileNotFoundError:
            pass
        ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ctl.bind(ctl_path)
        os.chmod(ctl_path, 0o600)
        ctl.listen(16)
        ctl.setblocking(False)
        ep = select.epoll()
        for fd in self.fds:
            ep.register(fd, select.EPOLLIN)
        ep.register(ctl.fileno(), select.EPOLLIN)
        with open(os.path.join(self.state, "router.ready"), "w") as f:
            f.write(str(os.getpid()))
        self.note("up", hosts=[h["name"] for h in self.hosts], latency=self.latency)
        ctl_fd = ctl.fileno()
        mono = time.monotonic
        while True:
            now = mono()
            timeout = -1
            if self.heap:
                timeout = max(0.0, self.heap[0][0] - now)
            exp = self.next_expiry()
            if exp is not None:
                timeout = max(0.0, exp - now) if timeout < 0 else min(timeout, max(0.0, exp - now))
            try:
                events = ep.poll(timeout)
            except InterruptedError:
                continue
            now = mono()
            for fd, _ in events:
                if fd == ctl_fd:
                    self.serve_control(ctl)
                    continue
                src = self.fd_host[fd]
                for _ in range(256):
                    try:
                        pkt = os.read(fd, 65536)
                    except BlockingIOError:
                        break
                    except OSError as e:
                        if e.errno == errno.EBADFD:
                            raise SystemExit("a TUN device went away")
                        break
                    self.on_packet(src, pkt, now)
            now = mono()
            self.release(now)
            if exp is not None and exp <= now:
                self.expire(now)

    def serve_control(self, ctl):
        while True:
            try:
                conn, _ = ctl.accept()
            except BlockingIOError:
                return
            with conn:
                conn.settimeout(2)
                data = b""
                try:
                    while not data.endswith(b"\n"):
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    try:
                        answer = self.command(json.loads(data))
                    except SystemExit:
                        conn.sendall(b'{"ok": true}\n')
                        raise
                    except (ValueError, KeyError, TypeError) as e:
                        answer = {"ok": False, "error": f"{type(e).__name__}: {e}"}
                    conn.sendall(json.dumps(answer).encode() + b"\n")
                except OSError:
                    pass


def main():
    state = sys.argv[1]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # Ahead of the nodes, players and builds sharing the machine: the delays are the lab's, not the scheduler's.
    # A real-time priority (SCHED_RR 10), so that a machine loaded past its cores does not add its scheduling delays
    # (tens of ms at a load of 10 on 2 cores; 1-2 ms with it). The kernel's RT throttling leaves the others 5 % of a
    # core even when the router is flat out (a bench; a broadcast needs a few %). NETLAB_ROUTER_RT=0: nice -15 instead.
    try:
        if os.environ.get("NETLAB_ROUTER_RT", "1") != "0":
            os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(10))
        else:
            os.nice(-15)
    except (OSError, AttributeError):
        pass
    r = Router(state)
    try:
        r.setup()
        r.run()
    finally:
        for fd in r.fds:
            try:
                os.close(fd)
            except OSError:
                pass


if __name__ == "__main__":
    main()
