"""StreamTube nodes on netlab (ops/netlab): each node a host of its own (a network namespace with its own
address), regions apart (latency, jitter), and the faults of issue 20 played on them: a region partitioned
and healed, an origin's host cut off (its connections half-open), a node frozen (SIGSTOP) and resumed,
loss between two regions. After each, the checks:

  (a) no announced segment lost: every segment URI any node's playlist listed is fetchable from every
      node at the end, and the final playlists (and everything announced, per stream life) have no holes;
  (b) no two nodes serving different media under one sequence number: every segment and part URI seen is
      fetched from every node (during and after) and hashed, and a media sequence number announced under
      two stream lives (epochs) is reported too;
  (c) one origin per stream again within the detection bound after the heal: every node's /api/route names
      the same origin, that node alone publishes the stream (/healthz streamsPublishing), timed from the heal;
  (d) the recording complete: every frame number the stamped broadcaster sent, once, in one recording.

Used by test_netlab.py; `ops/netlab/netlab scenario ...` runs those tests. Nodes listen on ports 8080, 1935,
7946 of their host's address; the test process is the lab's `client` host (the root namespace) and reaches
every node through the router, outside every partition (an observer), though not a cut host.
"""
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from conftest import ADMIN_TOKEN, ROOT, Node, binary, detection_bound, http, wait_for

sys.path.insert(0, os.path.join(ROOT, "ops", "netlab"))
import lab as netlab  # noqa: E402

PORTS = (8080, 1935, 7946)
# The `lan` gossip preset (Sources/Gossip/GossipConfig.swift): its 0.5 s probe timeout outlasts the lab's round
# trips (up to 2 x 130 ms); `local`'s 0.2 s would not.
LAN_PRESET = {"probe_interval": 1.0, "probe_timeout": 0.5, "suspicion_mult": 4, "gossip_interval": 0.2,
              "retransmit_mult": 4}
LATENCY = {"eu-us": (40.0, 5.0), "ap-eu": (120.0, 10.0), "ap-us": (100.0, 10.0)}
INTRA = (1.0, 0.2)
FPS = 30
# How long after a playlist first lists a segment it must still be fetchable: the origin keeps its live window
# (8 segments) and 6 more (Sources/Origin/HLS/LiveRendition.swift, trim), 28 s of 2 s segments; less a margin.
RETAINED_SECONDS = 16.0


def unavailable():
    return netlab.available()


def lan_bound(members):
    return detection_bound(members, LAN_PRESET)


class NetNode(Node):
    """conftest's Node, started inside a lab host (`ip netns exec`), on the host's own address."""

    def __init__(self, lab, host, data_dir, extra_args):
        super().__init__(data_dir, extra_args, host=host["addr"], ports=PORTS)
        self.lab = lab
        self.name = host["name"]
        self.region = host["region"]

    def spawn(self, argv):
        return subprocess.Popen(self.lab.exec_argv(self.name, argv), stdout=self.log, stderr=subprocess.STDOUT)

    def publishing(self):
        return http("GET", self.base + "/healthz", timeout=2).json()["streamsPublishing"]


class Cluster:
    """A lab and one node per host. `regions`: {"eu": 2, ...}."""

    def __init__(self, regions, name="nt", subnet="10.79", latency=LATENCY, intra=INTRA, extra=()):
        self.lab = netlab.Lab(name)
        self.root = tempfile.mkdtemp(prefix="streamtube-netlab-")
        self.lab.state = os.path.join(self.root, "lab")
        self.regions, self.latency, self.intra, self.subnet = regions, latency, intra, subnet
        self.extra = list(extra)
        self.nodes = {}
        self.key = None

    def start(self):
        self.lab.up(self.regions, self.latency, subnet=self.subnet, intra=self.intra)
        self.key = subprocess.run([binary(), "keygen"], capture_output=True, text=True, check=True).stdout.strip()
        db = os.path.join(self.root, "streamtube.sqlite")
        hosts = self.lab.hosts()
        seed = hosts[0]
        for h in hosts:
            args = ["--node-id", h["name"], "--region", h["region"], "--cluster-key", self.key, "--gossip-preset", "lan",
                    "--advertise-host", h["addr"], "--database", db, "--ladder", "none",
                    "--recording-reconnect-grace", "3", *self.extra]
            if h is not seed:
                args += ["--seeds", f"{seed['addr']}:{PORTS[2]}"]
            self.nodes[h["name"]] = NetNode(self.lab, h, os.path.join(self.root, h["name"]), args).start()
        self.wait_converged(list(self.nodes))
        return self

    def wait_converged(self, ids, timeout=40, among=None):
        def ok():
            for n in (among or self.nodes.values()):
                st = n.statuses()
                if {k for k, v in st.items() if v == "alive"} != set(ids):
                    return False
            return True
        wait_for(ok, timeout, f"{ids} to converge")

    def stop(self, keep=False):
        for n in self.nodes.values():
            try:
                if n.proc and n.proc.poll() is None:
                    os.kill(n.proc.pid, signal.SIGCONT)  # a frozen node can take its SIGTERM
                    n.stop()
            except Exception:  # noqa: BLE001 - tearing down whatever is left
                pass
        self.lab.down()
        if not keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def stream_placed(self, origin_region=None, not_on=(), tries=80, standby_region=None):
        """A stream whose origin (by the ring) is in `origin_region` and none of `not_on`."""
        any_node = next(iter(self.nodes.values()))
        for i in range(tries):
            s = any_node.create_stream(f"Netlab {i}")
            route = http("GET", f"{any_node.base}/api/route/{s['id']}").json()
            o = route.get("origin")
            sb = (route.get("standbys") or [None])[0]
            if o in self.nodes and o not in not_on and (origin_region is None or self.nodes[o].region == origin_region) \
                    and (standby_region is None or (sb in self.nodes and self.nodes[sb].region == standby_region)):
                return s, route
        raise AssertionError(f"no stream landed in {origin_region}")


def h(body):
    return hashlib.sha256(body).hexdigest()[:16]


SEG_RE = re.compile(r"^(seg(\d+)-([0-9a-f]{8})\.m4s)$", re.M)
PART_RE = re.compile(r'URI="(part(\d+)\.(\d+)-([0-9a-f]{8})\.m4s)"')
MAP_RE = re.compile(r'#EXT-X-MAP:URI="([^"]+)"')


class Observer:
    """Polls every node's media playlist of a stream (like players everywhere) and hashes every segment,
    part and init segment it lists, as that node serves it. Also samples each node's route answer and
    publishing count. Everything is kept, timestamped, for the checks."""

    def __init__(self, cluster, sid, every=1.0, rendition="source"):
        self.cluster, self.sid, self.every, self.rendition = cluster, sid, every, rendition
        self.playlists = []       # (t, node, media sequence, [seg uri], text)
        self.hashes = {}          # uri -> {node: set(hash)}
        self.samples = []         # (t, node, origin by route, publishing count) or (t, node, None, None) unreachable
        self.first_seen = {}      # segment uri -> when a playlist first listed it
        self.unserved = []        # (t, node, uri, status): listed by a node that then did not serve it
        self.verifications = []   # verify_recent's passes
        self.errors = []
        self._stop = threading.Event()
        self._threads = []

    def url(self, node, name):
        return f"{node.base}/live/{self.sid}/{self.rendition}/{name}"

    def start(self):
        for n in self.cluster.nodes.values():
            t = threading.Thread(target=self._loop, args=(n,), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(15)

    def _fetch(self, node, uri):
        r = http("GET", self.url(node, uri), timeout=3)
        if r.status == 200:
            self.hashes.setdefault(uri, {}).setdefault(node.name, set()).add(h(r.body))
        return r.status

    def _loop(self, node):
        seen = set()
        while not self._stop.is_set():
            t = time.time()
            try:
                route = http("GET", f"{node.base}/api/route/{self.sid}", timeout=2).json()
                pub = node.publishing()
                self.samples.append((t, node.name, route.get("origin"), pub))
            except Exception:  # noqa: BLE001 - cut off, frozen, partitioned: noted as unreachable
                self.samples.append((t, node.name, None, None))
            try:
                r = http("GET", self.url(node, "index.m3u8?routed=1"), timeout=3)
                if r.status == 200:
                    text = r.text
                    m = re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text)
                    segs = [g[0] for g in SEG_RE.findall(text)]
                    self.playlists.append((t, node.name, int(m.group(1)) if m else None, segs, text))
                    for uri in segs:
                        self.first_seen.setdefault(uri, t)
                    names = segs + [g[0] for g in PART_RE.findall(text)] + MAP_RE.findall(text)
                    for uri in names:
                        if uri not in seen:
                            status = self._fetch(node, uri)
                            if status == 200:
                                seen.add(uri)
                            elif uri in segs:
                                self.unserved.append((round(t, 1), node.name, uri, status))
            except Exception as e:  # noqa: BLE001
                self.errors.append((t, node.name, repr(e)[:200]))
            self._stop.wait(max(0.0, self.every - (time.time() - t)))

    # MARK: checks

    def verify_recent(self, nodes, label, max_age=RETAINED_SECONDS):
        """(a) now: every segment first listed (by any node) within `max_age` s, fetched from each of `nodes`: a
        status other than 200 is a lost segment (the origin keeps a window and 6 segments more, 28 s at the
        defaults, so a younger one must be there). Connection failures are noted apart (a node still cut off)."""
        now = time.time()
        recent = sorted((u for u, t in self.first_seen.items() if now - t <= max_age), key=seg_key)
        missing, unreachable = [], []
        for uri in recent:
            for n in nodes:
                try:
                    r = http("GET", self.url(n, uri), timeout=5)
                except OSError as e:
                    unreachable.append((uri, n.name, repr(e)[:60]))
                    continue
                if r.status == 200:
                    self.hashes.setdefault(uri, {}).setdefault(n.name, set()).add(h(r.body))
                else:
                    missing.append((uri, n.name, r.status, round(now - self.first_seen[uri], 1)))
        v = {"label": label, "t": round(now, 1), "checked": len(recent), "nodes": [n.name for n in nodes],
             "missing": missing, "unreachable": unreachable[:10]}
        self.verifications.append(v)
        return v

    def announced_segments(self):
        out = {}
        for _, node, _, segs, _ in self.playlists:
            for s in segs:
                out.setdefault(s, set()).add(node)
        return out

    def check_segments(self, nodes):
        """(a) and (b) at the end: the recent segments from every node (verify_recent), and what every pass and
        poll found; every hash seen of one URI compared; holes; sequence numbers under two epochs."""
        announced = self.announced_segments()
        differ = []
        self.verify_recent(nodes, "end")
        missing = [(label_v["label"],) + tuple(m) for label_v in self.verifications for m in label_v["missing"]]
        missing += [("listed-not-served",) + tuple(u) for u in self.unserved]
        # Parts and init segments still served: their bytes, from every node, once more.
        for uri in list(self.hashes):
            if uri.startswith("seg"):
                continue
            for n in nodes:
                try:
                    r = http("GET", self.url(n, uri), timeout=5)
                    if r.status == 200:
                        self.hashes[uri].setdefault(n.name, set()).add(h(r.body))
                except OSError:
                    pass
        for uri, by_node in self.hashes.items():
            all_hashes = set().union(*by_node.values())
            if len(all_hashes) > 1:
                differ.append((uri, {k: sorted(v) for k, v in by_node.items()}))
        # Holes: per stream life (epoch), the sequence numbers ever announced must be contiguous, and each final
        # playlist too.
        holes = []
        by_epoch = {}
        for uri in announced:
            n, e = seg_key(uri)[1], seg_key(uri)[0]
            by_epoch.setdefault(e, set()).add(n)
        for e, nums in by_epoch.items():
            gaps = sorted(set(range(min(nums), max(nums) + 1)) - nums)
            if gaps:
                holes.append(("announced", e, gaps))
        finals = {}
        for n in nodes:
            r = http("GET", self.url(n, "index.m3u8?routed=1"), timeout=10)
            if r.status == 200:
                segs = [(g[2], int(g[1])) for g in SEG_RE.findall(r.text)]
                finals[n.name] = segs
                nums = [x for _, x in segs]
                if nums != list(range(nums[0], nums[0] + len(nums))) if nums else False:
                    holes.append(("final", n.name, nums))
            else:
                finals[n.name] = f"status {r.status}"
        # One sequence number, two stream lives: the same number announced under different epochs.
        lives = {}
        for uri in announced:
            e, n = seg_key(uri)
            lives.setdefault(n, set()).add(e)
        two_lives = sorted(n for n, es in lives.items() if len(es) > 1)
        # Reported, not failed on: a node's EXT-X-MEDIA-SEQUENCE going backwards (players treat it as an error).
        regressions, last = [], {}
        for t, node, seq, segs, _ in sorted(self.playlists, key=lambda p: p[0]):
            if seq is not None and node in last and seq < last[node]:
                regressions.append((round(t, 1), node, last[node], seq))
            if seq is not None:
                last[node] = seq
        return {"announced": len(announced), "epochs": sorted(by_epoch), "missing": missing, "differ": differ,
                "media_sequence_regressions": regressions[:20],
                "verifications": [{k: v for k, v in x.items() if k != "missing"} | {"missing": len(x["missing"])}
                                  for x in self.verifications],
                "holes": holes, "seq_under_two_epochs": two_lives, "finals": {k: (v if isinstance(v, str) else
                                                                                      f"{len(v)} segs {v[0] if v else ''}..{v[-1] if v else ''}")
                                                                                  for k, v in finals.items()}}

    def publishing_timeline(self, t0):
        """[(t - t0, {node: (origin by route, publishing)})] per poll round (roughly)."""
        rounds = {}
        for t, node, origin, pub in self.samples:
            rounds.setdefault(round((t - t0) / self.every), {})[node] = (origin, pub)
        return [(k * self.every, v) for k, v in sorted(rounds.items())]

    def split_brain(self):
        """Sampling rounds where more than one node published the stream at once."""
        rounds = {}
        for t, node, origin, pub in self.samples:
            rounds.setdefault(round(t / self.every), {})[node] = pub
        return [(k * self.every, v) for k, v in sorted(rounds.items()) if sum(1 for p in v.values() if p) > 1]


def seg_key(uri):
    m = re.match(r"seg(\d+)-([0-9a-f]{8})\.m4s", uri)
    return (m.group(2), int(m.group(1))) if m else (uri, 0)


def one_origin(cluster, sid):
    """(c) now: every node reachable names the same origin and exactly that node publishes. Returns (ok, view)."""
    view = {}
    for name, n in cluster.nodes.items():
        try:
            route = http("GET", f"{n.base}/api/route/{sid}", timeout=2).json()
            view[name] = (route.get("origin"), n.publishing())
        except Exception as e:  # noqa: BLE001
            view[name] = ("unreachable", repr(e)[:60])
    origins = {o for o, _ in view.values()}
    publishing = [k for k, (_, p) in view.items() if p]
    ok = len(origins) == 1 and len(publishing) == 1 and publishing[0] in origins
    return ok, view


def wait_one_origin(cluster, sid, since, limit=90):
    """Seconds from `since` until one_origin holds (None if not within `limit`), and the last view."""
    view = None
    while time.time() - since < limit:
        ok, view = one_origin(cluster, sid)
        if ok:
            return time.time() - since, view
        time.sleep(0.2)
    return None, view


def recording_check(cluster, sid, frames_sent, timeout=60):
    """(d): the stream's recordings once ready; each copy read through its holder; complete when one recording
    holds every frame number 0..frames_sent-1 (a few unreadable stamps at the ends allowed) once."""
    from gaptools import FrameReader, clean_numbers, playback_gaps, repeats
    any_node = next(iter(cluster.nodes.values()))

    def ready():
        r = http("GET", f"{any_node.base}/api/streams/{sid}/recordings", token=ADMIN_TOKEN, timeout=5)
        rs = r.json() if r.status == 200 else None
        return rs if rs and all(x["state"] != "recording" for x in rs) else None
    try:
        recs = wait_for(ready, timeout, "the recordings to be finished")
    except AssertionError as e:
        return {"complete": False, "error": str(e)[:500]}
    out = {"recordings": [], "complete": False}
    for rec in recs:
        item = {k: rec.get(k) for k in ("id", "state", "reason", "durationSeconds", "nodes")}
        item["copies"] = {}
        for holder in rec["nodes"]:
            n = cluster.nodes.get(holder)
            if not n:
                continue
            url = f"{n.base}/recordings/{rec['id']}/source/index.m3u8"
            pl = http("GET", url, timeout=10)
            # A recording's playlist ends (#EXT-X-ENDLIST); one that does not is read as far as it goes.
            reader = FrameReader(url, hls_options=["-http_persistent", "0", "-m3u8_hold_counters", "3"]).start()
            ended = reader.wait(90)
            reader.stop()
            numbers = [x for x in clean_numbers(reader.frames) if x is not None]
            copy = {"status": pl.status, "endlist": "#EXT-X-ENDLIST" in pl.text, "read_to_the_end": ended,
                    "discontinuities": pl.text.count("#EXT-X-DISCONTINUITY") if pl.status == 200 else None,
                    "frames": len(reader.frames), "first": numbers[0] if numbers else None,
                    "last": numbers[-1] if numbers else None,
                    "gaps": playback_gaps(reader.frames)[:10], "repeats": repeats(reader.frames)[:10],
                    "missing": len(set(range(frames_sent)) - set(numbers)) if numbers else frames_sent}
            copy["complete"] = bool(numbers) and numbers[0] <= 3 and numbers[-1] >= frames_sent - 4 and not copy["gaps"] \
                and not copy["repeats"]
            item["copies"][holder] = copy
        out["recordings"].append(item)
    # Complete: one recording, and every copy the API lists complete (a node holding a copy serves its own, so a
    # partial copy is what some viewers get). `best_copy_complete`: at least one is.
    copies = [c for r in out["recordings"] for c in r["copies"].values()]
    out["best_copy_complete"] = len(recs) == 1 and any(c["complete"] for c in copies)
    out["complete"] = len(recs) == 1 and bool(copies) and all(c["complete"] for c in copies)
    return out


def log_excerpt(node, since=0.0, patterns=("relay", "origin", "replica", "standby", "takes", "publish", "epoch",
                                           "handover", "hand", "ring", "member", "join", "record")):
    """The node's JSON log lines whose message matches one of `patterns` (case-insensitive)."""
    out = []
    for r in node.log_records():
        msg = str(r.get("msg") or r.get("message") or "")
        if any(p in msg.lower() for p in patterns):
            out.append(r)
    return out


def compact(rec, t0=None):
    """A log record on one line, its time as seconds from `t0` (the fault) when given."""
    keep = {k: v for k, v in rec.items() if k not in ("level", "logger", "label", "source", "file", "function", "line")}
    if t0 is not None and isinstance(keep.get("ts"), (int, float)):
        keep["ts"] = f"{keep['ts'] - t0:+.2f}s"
    return json.dumps(keep, separators=(",", ":"))[:400]
