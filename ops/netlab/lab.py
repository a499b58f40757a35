"""netlab: StreamTube nodes on hosts of their own (network namespaces), joined by a wide-area network
with latency, jitter, loss and partitions per region pair (router.py), on one machine. Needs root and
/dev/net/tun; no sch_netem (this was written for a kernel without it), no veth, no bridge.

    lab = Lab("nl")                                  # state in $NETLAB_STATE or <tmp>/streamtube-netlab-nl
    lab.up({"eu": 2, "us": 2, "ap": 1}, {"eu-us": (40, 5), "eu-ap": (120, 0), "us-ap": (100, 0)})
    lab.hosts()                                      # [{"name": "eu1", "region": "eu", "addr": "10.77.1.1", ...}, ...]
    lab.partition(["us"], seconds=60); lab.heal(); lab.cut("eu1"); lab.loss("eu", "us", 10)
    lab.exec_argv("eu1", ["streamtube", "serve", ...])   # ["ip", "netns", "exec", "nl-eu1", ...]
    lab.down()                                       # idempotent: processes, namespaces, TUN devices, router

Addresses: host i (from 1) of the r-th region (from 1) is <subnet>.r.i; the root namespace, where the caller
runs (tests, ffmpeg), is host `client` at <subnet>.0.1, reaching every host through the router. Every host has
the whole lab's /16 on its TUN device and a default route through it.

`ops/netlab/netlab` is the command line over this module (lab up/down, faults, nodes, bench, scenarios).
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def available():
    """None when a lab can run here, else why not."""
    if os.geteuid() != 0:
        return "netlab needs root (network namespaces, TUN devices)"
    if not os.path.exists("/dev/net/tun"):
        return "netlab needs /dev/net/tun (CONFIG_TUN)"
    if not shutil.which("ip"):
        return "netlab needs iproute2's `ip`"
    try:
        subprocess.run(["ip", "netns", "list"], check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as e:
        return f"netlab needs network namespaces: {e}"
    return None


def parse_duration(text):
    """'60s', '1.5s', '250ms', '2m', '60' -> seconds."""
    t = str(text).strip()
    for suffix, scale in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
        if t.endswith(suffix):
            return float(t[: -len(suffix)]) * scale
    return float(t)


def parse_latency(spec):
    """'eu-us=40ms±5ms,eu-ap=120ms' (also '40ms+-5ms', '40ms~5ms') -> {"eu-us": (40.0, 5.0), "ap-eu": (120.0, 0.0)}."""
    out = {}
    for item in filter(None, (s.strip() for s in (spec or "").split(","))):
        pair, value = item.split("=", 1)
        a, b = pair.split("-", 1)
        for sep in ("±", "+-", "~"):
            if sep in value:
                d, j = value.split(sep, 1)
                break
        else:
            d, j = value, "0ms"
        out["-".join(sorted((a, b)))] = (parse_duration(d) * 1000.0, parse_duration(j) * 1000.0)
    return out


def parse_regions(spec):
    """'eu:2,us:2,ap:1' -> {"eu": 2, "us": 2, "ap": 1} (in that order)."""
    out = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, count = item.partition(":")
        out[name] = int(count or 1)
    return out


def sh(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True)


class Lab:
    def __init__(self, name="nl", state=None):
        assert name.isalnum() and len(name) <= 4, "a lab's name: at most 4 letters or digits (device names are short)"
        self.name = name
        self.state = state or os.environ.get("NETLAB_STATE") or os.path.join(tempfile.gettempdir(), f"streamtube-netlab-{name}")
        self.router = None

    # MARK: state

    @property
    def config_path(self):
        return os.path.join(self.state, "lab.json")

    def config(self):
        with open(self.config_path) as f:
            return json.load(f)

    def is_up(self):
        return os.path.exists(self.config_path) and self._router_pid() is not None

    def hosts(self, include_client=False):
        return [h for h in self.config()["hosts"] if include_client or h["name"] != "client"]

    def host(self, name):
        for h in self.config()["hosts"]:
            if h["name"] == name:
                return h
        raise KeyError(f"no host {name} in the lab (hosts: {[h['name'] for h in self.config()['hosts']]})")

    def _router_pid(self):
        try:
            with open(os.path.join(self.state, "router.pid")) as f:
                pid = int(f.read().strip())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    # MARK: up and down

    def up(self, regions, latency=None, subnet="10.77", mtu=1500, intra=None):
        """Makes the hosts (regions: {name: count}), starts the router and waits for it. `latency`:
        {"a-b": (delay_ms, jitter_ms)}; `intra`: (delay_ms, jitter_ms) between hosts of one region."""
        reason = available()
        if reason:
            raise RuntimeError(reason)
        self.down()
        os.makedirs(self.state, exist_ok=True)
        hosts = [{"name": "client", "region": "client", "addr": f"{subnet}.0.1", "ns": None, "dev": f"{self.name}-client"}]
        for r, (region, count) in enumerate(regions.items(), start=1):
            assert region.isalnum() and region != "client" and len(region) <= 6, f"bad region name {region!r}"
            for i in range(1, count + 1):
                name = f"{region}{i}"
                hosts.append({"name": name, "region": region, "addr": f"{subnet}.{r}.{i}", "ns": f"{self.name}-{name}",
                              "dev": f"{self.name}-{name}"})
        lat = {k: list(v) for k, v in (latency or {}).items()}
        if intra:
            for region in regions:
                lat.setdefault(f"{region}-{region}", list(intra))
        cfg = {"name": self.name, "subnet": subnet, "prefix_len": 16, "mtu": mtu, "hosts": hosts, "latency": lat,
               "created": time.time()}
        with open(self.config_path, "w") as f:
            json.dump(cfg, f, indent=1)
        for h in hosts:
            if h["ns"]:
                sh("ip", "netns", "add", h["ns"])
        out = open(os.path.join(self.state, "router.out"), "ab")
        self.router = subprocess.Popen([sys.executable, os.path.join(HERE, "router.py"), self.state], stdout=out,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        with open(os.path.join(self.state, "router.pid"), "w") as f:
            f.write(str(self.router.pid))
        deadline = time.time() + 20
        while not os.path.exists(os.path.join(self.state, "router.ready")):
            if self.router.poll() is not None or time.time() > deadline:
                with open(os.path.join(self.state, "router.out"), "rb") as f:
                    tail = f.read()[-3000:].decode(errors="replace")
                self.down()
                raise RuntimeError(f"the netlab router did not come up:\n{tail}")
            time.sleep(0.05)
        return self

    def namespaces(self):
        out = sh("ip", "netns", "list", check=False).stdout
        return [line.split()[0] for line in out.splitlines() if line.split() and line.split()[0].startswith(self.name + "-")]

    def down(self, purge=False):
        """Stops every process in the lab's hosts (SIGCONT first: a frozen one too), the router (its TUN devices go
        with it) and removes the namespaces. Safe to call any number of times, with or without a lab."""
        for ns in self.namespaces():
            pids = [int(p) for p in sh("ip", "netns", "pids", ns, check=False).stdout.split()]
            for sig in (signal.SIGCONT, signal.SIGTERM):
                for p in pids:
                    try:
                        os.kill(p, sig)
                    except OSError:
                        pass
            deadline = time.time() + 5
            while pids and time.time() < deadline:
                pids = [p for p in pids if _alive(p)]
                time.sleep(0.05)
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
        pid = self._router_pid()
        if pid:
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass
            deadline = time.time() + 5
            while _alive(pid) and time.time() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if self.router is not None:
            try:
                self.router.wait(5)
            except subprocess.TimeoutExpired:
                pass
            self.router = None
        for ns in self.namespaces():
            sh("ip", "netns", "del", ns, check=False)
        # Devices left over (a router killed while moving them, say).
        links = sh("ip", "-o", "link", "show", check=False).stdout
        for line in links.splitlines():
            parts = line.split(":")
            if len(parts) > 1:
                dev = parts[1].strip().split("@")[0]
                if dev.startswith(self.name + "-"):
                    sh("ip", "link", "del", dev, check=False)
        for f in ("lab.json", "router.pid", "router.ready", "router.sock"):
            try:
                os.unlink(os.path.join(self.state, f))
            except FileNotFoundError:
                pass
        if purge:
            shutil.rmtree(self.state, ignore_errors=True)

    # MARK: rules

    def control(self, **msg):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(os.path.join(self.state, "router.sock"))
            s.sendall(json.dumps(msg).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
        answer = json.loads(data)
        if not answer.get("ok"):
            raise RuntimeError(f"netlab router: {answer.get('error')}")
        return answer

    def status(self):
        return self.control(op="status")

    def partition(self, regions, seconds=None):
        """Cuts the regions listed (a group) off from every other node region (the client still reaches all)."""
        return self.control(op="partition", regions=list(regions), **({"for": seconds} if seconds else {}))

    def cut(self, host, seconds=None):
        """Drops everything to and from `host` (the client too): its connections stay half-open."""
        return self.control(op="cut", host=host, **({"for": seconds} if seconds else {}))

    def loss(self, a, b, percent, seconds=None):
        return self.control(op="loss", pair=[a, b], percent=percent, **({"for": seconds} if seconds else {}))

    def latency(self, a, b, delay_ms, jitter_ms=0.0):
        return self.control(op="latency", pair=[a, b], delay_ms=delay_ms, jitter_ms=jitter_ms)

    def heal(self, what="all"):
        """Lifts partitions, cuts and losses ("all"), or one kind ("partition", "cut", "loss"); latency stays."""
        return self.control(op="heal", what=what)

    # MARK: processes in hosts

    def exec_argv(self, host, argv):
        ns = self.host(host)["ns"]
        return list(argv) if ns is None else ["ip", "netns", "exec", ns, *argv]

    def pids(self, host):
        ns = self.host(host)["ns"]
        return [int(p) for p in sh("ip", "netns", "pids", ns, check=False).stdout.split()]

    def freeze(self, host, seconds=None):
        """SIGSTOP to every process in `host`; with `seconds`, SIGCONT after that long (blocking)."""
        pids = self.pids(host)
        for p in pids:
            os.kill(p, signal.SIGSTOP)
        if seconds:
            time.sleep(seconds)
            self.thaw(host)
        return pids

    def thaw(self, host):
        for p in self.pids(host):
            os.kill(p, signal.SIGCONT)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie child of ours
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


# MARK: streamtube nodes (the command line's; tests make their own with conftest's Node)

DEFAULT_PORTS = (8080, 1935, 7946)


def serve_argv(binary, host, data_dir, seeds=None, ports=DEFAULT_PORTS, preset="lan", database=None, extra=()):
    """The `streamtube serve` command line for a lab host, as conftest's Node builds it (the admin token and the
    cluster key come by environment: STREAMTUBE_ADMIN_TOKEN, STREAMTUBE_CLUSTER_KEY)."""
    http_port, rtmp_port, gossip_port = ports
    argv = [binary, "serve", "--host", host["addr"], "--http-port", str(http_port), "--rtmp-port", str(rtmp_port),
            "--gossip-port", str(gossip_port), "--data-dir", data_dir, "--log-format", "json",
            "--node-id", host["name"], "--region", host["region"], "--advertise-host", host["addr"],
            "--gossip-preset", preset]
    if seeds:
        argv += ["--seeds", seeds]
    if database:
        argv += ["--database", database]
    return argv + list(extra)


def streamtube_binary():
    path = os.environ.get("STREAMTUBE_BIN")
    if not path:
        out = subprocess.run(["swift", "build", "--show-bin-path"], cwd=ROOT, capture_output=True, text=True, check=True)
        path = os.path.join(out.stdout.strip(), "streamtube")
    if not os.path.exists(path):
        raise RuntimeError(f"build streamtube first: {path} is missing (or set STREAMTUBE_BIN)")
    return path
