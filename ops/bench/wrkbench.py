"""What the wrk benchmarks share (edge.py, playback.py, accounts.py): one wrk run, parsed;
alternating rounds over several targets; the median run and the median of paired ratios; and
the bench cluster the edge benchmarks start (arguments, an origin and an edge, streams pushed).

Alternating rounds: on a shared machine other work slows one run or another, not one side,
and each round's runs are back to back, so the ratio within a round is steadier than the
ratio of medians when the machine's speed drifts.
"""
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request

from peers import TOKEN, bench_arguments, free_port, release_binary  # noqa: F401 (re-exported for the scripts)


def raise_file_limit():
    """As many open files as allowed: 256 connections each side, or 10,000 idle ones."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))


def cpu_seconds(pid):
    """User + system CPU seconds of one process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url, seconds, connections=256, threads=2, headers=(), pid=None):
    """One wrk run against `url`: req/s, p99 in ms, requests, non-2xx/3xx answers and socket
    errors; with `pid`, that process's CPU time per request in µs."""
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for h in headers:
        cmd += ["-H", h]
    before = cpu_seconds(pid) if pid else 0
    out = subprocess.run(cmd + [url], capture_output=True, text=True).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not rps:
        raise RuntimeError(f"wrk said nothing of {url}:\n{out}")
    total = int(re.search(r"(\d+) requests in", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    run = {"rps": float(rps.group(1)), "p99_ms": float(p99.group(1)) * scale, "requests": total,
           "non2xx": int(non2xx.group(1)) if non2xx else 0,
           "socket_errors": sum(int(g) for g in errors.groups()) if errors else 0}
    if pid:
        run["cpu_us_per_request"] = (cpu_seconds(pid) - before) / max(total, 1) * 1e6
    return run


def alternate(targets, rounds, seconds, warmup=0, **options):
    """`targets`: {label: url, or {"url": ..., "headers": [...]}}. Runs each target once per
    round, in turn, `rounds` times (after `warmup` seconds of each, not counted); `options` go
    to `wrk`. Returns {label: [run, ...]} in round order."""
    def run(target, s):
        if isinstance(target, str):
            return wrk(target, s, **options)
        return wrk(target["url"], s, headers=target.get("headers", ()), **options)
    if warmup:
        for target in targets.values():
            run(target, warmup)
    runs = {label: [] for label in targets}
    for _ in range(rounds):
        for label, target in targets.items():
            runs[label].append(run(target, seconds))
    return runs


def median(runs):
    """The run with the median req/s."""
    return sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]


def paired_ratio(runs_a, runs_b):
    """The median over rounds of a's req/s over b's in the same round."""
    ratios = sorted(a["rps"] / b["rps"] for a, b in zip(runs_a, runs_b))
    return ratios[len(ratios) // 2]


def get(url, token=None, data=None, timeout=30):
    """The body of a GET (or a POST of `data`), with the operator token if given."""
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read()


def start_origin_and_edge(binary, tmp, key):
    """An origin and an edge node (the edge owns no streams) on one SQLite file, under `tmp`:
    {"origin"|"edge": {"base", "rtmp", "proc"}}, once both answer and gossip has converged."""
    seed = free_port()
    nodes = {}
    for name in ("origin", "edge"):
        http_port, rtmp_port = free_port(), free_port()
        cmd = [binary, "serve", "--node-id", name, "--host", "127.0.0.1", "--http-port", str(http_port),
               "--rtmp-port", str(rtmp_port), "--gossip-port", str(seed if name == "origin" else free_port()),
               "--data-dir", os.path.join(tmp, name), "--database", os.path.join(tmp, "db.sqlite"), "--cluster-key", key,
               "--admin-token", TOKEN, "--gossip-preset", "local", "--ladder", "none", "--log-level", "warning"]
        if name == "edge":
            cmd += ["--seeds", f"127.0.0.1:{seed}", "--capacity", "0"]
        p = subprocess.Popen(cmd, stdout=open(os.path.join(tmp, f"{name}.log"), "wb"), stderr=subprocess.STDOUT)
        nodes[name] = {"base": f"http://127.0.0.1:{http_port}", "rtmp": rtmp_port, "proc": p}
        for _ in range(300):
            try:
                get(nodes[name]["base"] + "/healthz")
                break
            except OSError:
                time.sleep(0.1)
    time.sleep(3)  # gossip converges
    return nodes


def push_cbr(rtmp_port, stream_key, rate, seconds=7):
    """ffmpeg pushing `seconds` of 640x360 test video at a constant `rate` ("160k": parts of
    ~10 KB; "4M": segments of ~1 MB), no audio; a keyframe every 2 s."""
    return subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
         "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "60",
         "-b:v", rate, "-minrate", rate, "-maxrate", rate, "-bufsize", rate, "-x264-params", "nal-hrd=cbr:force-cfr=1",
         "-an", "-f", "flv", f"rtmp://127.0.0.1:{rtmp_port}/live/{stream_key}"])


def create_stream(base, **fields):
    """A stream made with the operator API on the node at `base`."""
    return json.loads(get(base + "/api/streams", TOKEN, json.dumps(fields).encode()))


def stop(procs):
    """SIGTERM to each process still running, then SIGKILL to any not gone within 10 s."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def cluster_arguments(doc, perf_help):
    """The options of a benchmark run on a bench cluster (`doc`: the script's docstring), parsed."""
    ap = bench_arguments(doc, "alternating runs per side; the median counts")
    ap.add_argument("--seconds", type=int, default=8, help="seconds per wrk run")
    ap.add_argument("--perf", help=perf_help)
    return ap.parse_args()


@contextlib.contextmanager
def bench_cluster(args, name, streams):
    """An origin and an edge (release build, `args.bin` or built here) in a temporary folder,
    with one stream made on the origin for each of `streams` ({label: (rate, stream fields)}),
    each pushed for 7 s at its constant `rate` (see `push_cbr`), all at once, and pushed to the
    end. Yields {"nodes": start_origin_and_edge's, "streams": {label: the stream as made},
    "tmp": the folder, "procs": processes stopped on leaving (append yours)}; on leaving, stops
    them and removes the folder."""
    raise_file_limit()
    binary = release_binary(args.bin)
    tmp = tempfile.mkdtemp(prefix=f"streamtube-{name}-bench-")
    key = subprocess.run([binary, "keygen"], capture_output=True, text=True, check=True).stdout.strip()
    procs = []
    try:
        nodes = start_origin_and_edge(binary, tmp, key)
        procs += [n["proc"] for n in nodes.values()]
        made = {}
        pushes = []
        for label, (rate, fields) in streams.items():
            made[label] = create_stream(nodes["origin"]["base"], title=label, **fields)
            pushes.append(push_cbr(nodes["origin"]["rtmp"], made[label]["key"], rate))
        procs += pushes
        for p in pushes:
            p.wait(60)
        yield {"nodes": nodes, "streams": made, "tmp": tmp, "procs": procs}
    finally:
        stop(procs)
        shutil.rmtree(tmp, ignore_errors=True)


def object_epoch(playlist):
    """The stream's epoch, read off a media playlist: object names carry it (seg1-1f2a3b4c.m4s)."""
    return re.search(r"-([0-9a-f]{8})\.m(?:4s|p4)", playlist).group(1)


def perf_during_run(out, pid, url, seconds):
    """`perf record -g` of process `pid` into `out` during one wrk run against `url` (not counted):
    where that process's time goes."""
    rec = subprocess.Popen(["perf", "record", "-g", "-o", out, "-p", str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wrk(url, seconds)
    rec.send_signal(signal.SIGINT)
    rec.wait(30)
