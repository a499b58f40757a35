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
import json
import os
import socket
import subprocess
import sys
import time

from wrkbench import alternate, bench_cluster, cluster_arguments, free_port, get, median, object_epoch, perf_during_run


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


def idle_connections(port, n):
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        socks.append(s)
    return socks


def main():
    args = cluster_arguments(__doc__, "also record the edge with perf during one extra run into PERF.part / PERF.segment")
    with bench_cluster(args, "edge", {"segment": ("4M", {}), "part": ("160k", {})}) as cluster:
        nodes, streams, tmp, procs = cluster["nodes"], cluster["streams"], cluster["tmp"], cluster["procs"]
        files = {}
        www = os.path.join(tmp, "www")
        os.makedirs(www)
        for label, stem in (("segment", "seg1"), ("part", "part1.1")):
            epoch = object_epoch(get(nodes["origin"]["base"] + f"/live/{streams[label]['id']}/source/index.m3u8").decode())
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
            if args.perf:
                # Where the edge's time goes (not counted): perf on the edge process during one run.
                perf_during_run(f"{args.perf}.{label}", nodes["edge"]["proc"].pid, info["edgeURL"], args.seconds)
            rounds = alternate({"ours": info["edgeURL"], "theirs": f"http://127.0.0.1:{nginx_port}/{info['name']}"},
                               args.rounds, args.seconds)
            ours, theirs = median(rounds["ours"]), median(rounds["theirs"])
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


if __name__ == "__main__":
    main()
