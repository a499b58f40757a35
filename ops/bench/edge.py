#!/usr/bin/env python3
"""A warm StreamTube edge against nginx serving the same bytes from files, in one run.

Starts an origin and an edge node (release build), pushes two streams with ffmpeg (one at
~4 Mbit/s for a ~1 MB segment, one at ~160 kbit/s for a ~10 KB part), warms the edge with
one request each, writes the same bytes to files served by nginx, then runs wrk with 256
connections against both. Also reports resident memory with 10,000 idle connections.

Each side runs --rounds times, alternating, and the median run counts.

Usage: ops/bench/edge.py [--seconds 8] [--rounds 3] [--json out.json]
Needs: nginx, wrk, ffmpeg (ops/install-deps --bench installs them).
"""
import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKEN = "bench-token"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, token=None, data=None, timeout=30):
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read()


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def tree_rss_kb(pid):
    total = rss_kb(pid)
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return total + sum(rss_kb(int(c)) for c in out)


def wrk(url, seconds):
    out = subprocess.run(["wrk", "-t2", "-c256", f"-d{seconds}s", "--latency", url], capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p99_ms": float(p99.group(1)) * scale, "non2xx": int(non2xx.group(1)) if non2xx else 0}


def idle_connections(port, n):
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        socks.append(s)
    return socks


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=8, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=3, help="alternating runs per side; the median counts")
    ap.add_argument("--perf", help="also record the edge with perf during one extra run into PERF.part / PERF.segment")
    ap.add_argument("--json")
    ap.add_argument("--bin", default=os.environ.get("STREAMTUBE_BIN"))
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    binary = args.bin
    if not binary:
        subprocess.run(["swift", "build", "-c", "release", "--product", "streamtube"], cwd=ROOT, check=True)
        binary = os.path.join(subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT,
                                             capture_output=True, text=True, check=True).stdout.strip(), "streamtube")
    tmp = tempfile.mkdtemp(prefix="streamtube-edge-bench-")
    key = subprocess.run([binary, "keygen"], capture_output=True, text=True, check=True).stdout.strip()
    seed = free_port()
    procs = []
    nodes = {}
    try:
        for name in ("origin", "edge"):
            http_port, rtmp_port = free_port(), free_port()
            gport = seed if name == "origin" else free_port()
            cmd = [binary, "serve", "--node-id", name, "--host", "127.0.0.1", "--http-port", str(http_port),
                   "--rtmp-port", str(rtmp_port), "--gossip-port", str(gport), "--data-dir", os.path.join(tmp, name),
                   "--database", os.path.join(tmp, "db.sqlite"), "--cluster-key", key, "--admin-token", TOKEN,
                   "--gossip-preset", "local", "--ladder", "none", "--log-level", "warning"]
            if name == "edge":
                cmd += ["--seeds", f"127.0.0.1:{seed}", "--capacity", "0"]  # the edge owns no streams
            p = subprocess.Popen(cmd, stdout=open(os.path.join(tmp, f"{name}.log"), "wb"), stderr=subprocess.STDOUT)
            procs.append(p)
            nodes[name] = {"base": f"http://127.0.0.1:{http_port}", "rtmp": rtmp_port, "proc": p}
            for _ in range(300):
                try:
                    get(nodes[name]["base"] + "/healthz")
                    break
                except OSError:
                    time.sleep(0.1)
        time.sleep(3)  # gossip converges
        streams = {}
        for label, rate in (("segment", "4M"), ("part", "160k")):
            s = json.loads(get(nodes["origin"]["base"] + "/api/streams", TOKEN, json.dumps({"title": label}).encode()))
            streams[label] = s
            pub = subprocess.Popen(
                ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
                 "-t", "7", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "60",
                 "-b:v", rate, "-minrate", rate, "-maxrate", rate, "-bufsize", rate, "-x264-params", "nal-hrd=cbr:force-cfr=1",
                 "-an", "-f", "flv", f"rtmp://127.0.0.1:{nodes['origin']['rtmp']}/live/{s['key']}"])
            procs.append(pub)
        for p in procs[2:]:
            p.wait(60)
        files = {}
        www = os.path.join(tmp, "www")
        os.makedirs(www)
        for label, stem in (("segment", "seg1"), ("part", "part1.1")):
            # Object names carry the stream's epoch (seg1-1f2a3b4c.m4s): read it off the playlist.
            playlist = get(nodes["origin"]["base"] + f"/live/{streams[label]['id']}/source/index.m3u8").decode()
            epoch = re.search(r"-([0-9a-f]{8})\.m(?:4s|p4)", playlist).group(1)
            name = f"{stem}-{epoch}.m4s"
            path = f"/live/{streams[label]['id']}/source/{name}"
            body = get(nodes["edge"]["base"] + path)  # warms the edge
            with open(os.path.join(www, name), "wb") as f:
                f.write(body)
            files[label] = {"edgeURL": nodes["edge"]["base"] + path, "bytes": len(body), "name": name}
        # nginx's workers run as an unprivileged user: let them read the files.
        os.chmod(tmp, 0o755)
        os.chmod(www, 0o755)
        for name in os.listdir(www):
            os.chmod(os.path.join(www, name), 0o644)
        nginx_port = free_port()
        conf = os.path.join(tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""worker_processes auto; daemon off; pid {tmp}/nginx.pid; error_log {tmp}/nginx-error.log;
events {{ worker_connections 20000; }}
http {{ access_log off; sendfile on; tcp_nopush on; keepalive_requests 100000;
  server {{ listen 127.0.0.1:{nginx_port}; root {www}; location / {{ add_header Cache-Control "public, max-age=31536000, immutable"; }} }} }}
""")
        nginx = subprocess.Popen(["nginx", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(nginx)
        time.sleep(1)
        results = {}
        for label, info in files.items():
            # Alternating rounds, the median of each side: a busy shared machine slows one
            # run or another, not one side.
            rounds = {"ours": [], "theirs": []}
            if args.perf:
                # Where the edge's time goes (not counted): perf on the edge process during one run.
                rec = subprocess.Popen(["perf", "record", "-g", "-o", f"{args.perf}.{label}", "-p", str(nodes["edge"]["proc"].pid)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                wrk(info["edgeURL"], args.seconds)
                rec.send_signal(signal.SIGINT)
                rec.wait(30)
            for _ in range(args.rounds):
                rounds["ours"].append(wrk(info["edgeURL"], args.seconds))
                rounds["theirs"].append(wrk(f"http://127.0.0.1:{nginx_port}/{info['name']}", args.seconds))
            ours, theirs = (sorted(rounds[k], key=lambda r: r["rps"])[len(rounds[k]) // 2] for k in ("ours", "theirs"))
            assert ours["non2xx"] == 0 and theirs["non2xx"] == 0, (ours, theirs)
            results[label] = {"bytes": info["bytes"], "streamtube": ours, "nginx": theirs,
                              "rps_ratio": ours["rps"] / theirs["rps"], "p99_ratio": ours["p99_ms"] / theirs["p99_ms"]}
            print(f"{label}: {info['bytes']} B  streamtube {ours['rps']:.0f} req/s p99 {ours['p99_ms']:.1f} ms | "
                  f"nginx {theirs['rps']:.0f} req/s p99 {theirs['p99_ms']:.1f} ms | ratio {ours['rps'] / theirs['rps']:.2f}",
                  file=sys.stderr)
        edge_pid = nodes["edge"]["proc"].pid
        base_ours, base_nginx = rss_kb(edge_pid), tree_rss_kb(nginx.pid)
        port = int(nodes["edge"]["base"].rsplit(":", 1)[1])
        held = idle_connections(port, 10000)
        time.sleep(2)
        ours_idle = rss_kb(edge_pid)
        for s in held:
            s.close()
        held = idle_connections(nginx_port, 10000)
        time.sleep(2)
        nginx_idle = tree_rss_kb(nginx.pid)
        for s in held:
            s.close()
        results["idle10k"] = {"streamtube_rss_mb": ours_idle / 1024, "streamtube_rss_before_mb": base_ours / 1024,
                              "nginx_rss_mb": nginx_idle / 1024, "nginx_rss_before_mb": base_nginx / 1024}
        print(json.dumps(results, indent=2))
        print("| object | StreamTube edge req/s, p99 | nginx req/s, p99 | req/s ratio |")
        print("| --- | --- | --- | --- |")
        for label in ("part", "segment"):
            r = results[label]
            print(f"| {label} ({r['bytes'] // 1024} KB) | {r['streamtube']['rps']:.0f}, {r['streamtube']['p99_ms']:.1f} ms | "
                  f"{r['nginx']['rps']:.0f}, {r['nginx']['p99_ms']:.1f} ms | {r['rps_ratio']:.2f} |")
        i = results["idle10k"]
        print(f"| 10,000 idle connections: resident memory | {i['streamtube_rss_mb']:.0f} MB (from {i['streamtube_rss_before_mb']:.0f}) | "
              f"{i['nginx_rss_mb']:.0f} MB (from {i['nginx_rss_before_mb']:.0f}) | |")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
