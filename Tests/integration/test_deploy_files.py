"""Every deployment file in ops/ checked by the tool its ecosystem uses: the systemd unit
(systemd-analyze), Prometheus' configuration and alert rules (promtool, with unit tests of the
rules), the Grafana dashboard (its queries parse, and every metric it reads is in a node's
/metrics), the Containerfile (hadolint), the compose file and Kubernetes manifests
(kubernetes-validate, strict), the Terraform module and example (python-hcl2, checkov: no
finding left but those skipped in place with a reason), HAProxy's and nginx's configurations
(haproxy -c, nginx -t). And every STREAMTUBE_* setting these files give is one the node has."""
import glob
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile

import pytest
import yaml

from conftest import ROOT, Node, binary, free_port, http

# One node (the scrape) and the copied folders are made once for the file.
pytestmark = pytest.mark.xdist_group("deploy_files")

OPS = os.path.join(ROOT, "ops")
LINT = os.path.join(ROOT, ".venv-lint", "bin")


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)


def lint_tool(name):
    path = os.path.join(LINT, name)
    assert os.path.exists(path), f"{path} is missing: run ops/install-deps --test"
    return path


@pytest.fixture(scope="module")
def settings():
    """The node's settings, as environment variable names, from `streamtube serve --help`."""
    out = run([binary(), "serve", "--help"]).stdout
    names = set(re.findall(r"environment (STREAMTUBE_[A-Z0-9_]+)", out))
    assert "STREAMTUBE_CLUSTER_KEY" in names and "STREAMTUBE_TRUSTED_PROXIES" in names, out[:2000]
    return names


def assert_known(names, settings, where):
    unknown = sorted(set(names) - settings)
    assert not unknown, f"{where} sets {unknown}, which `streamtube serve` does not read"


# --- systemd --------------------------------------------------------------------------------

def test_systemd_unit_verifies_and_is_sandboxed(tmp_path, settings):
    unit = open(os.path.join(OPS, "systemd", "streamtube.service")).read()
    # Verified as installed: its ExecStart names the binary where the README installs it; here, the one built.
    path = tmp_path / "streamtube.service"
    path.write_text(unit.replace("/usr/local/bin/streamtube", binary()))
    r = run(["systemd-analyze", "verify", str(path)])
    # systemd-analyze exits 0 on unknown or malformed settings and only says so: any word from it is a finding.
    findings = [l for l in (r.stdout + r.stderr).splitlines() if l.strip()]
    assert r.returncode == 0 and not findings, findings
    # The threshold is on systemd's 0-100 scale: 30 is an overall exposure of 3.0 (of 10).
    r = run(["systemd-analyze", "security", "--offline=true", "--threshold=30", str(path)])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    exposure = re.search(r"Overall exposure level for streamtube.service: ([0-9.]+)", r.stdout)
    assert exposure and float(exposure.group(1)) <= 3.0, r.stdout[-500:]
    for setting in ["DynamicUser=yes", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                    "CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "SystemCallFilter=@system-service"]:
        assert setting in unit
    assert_known(re.findall(r"STREAMTUBE_[A-Z0-9_]+", unit), settings, "the unit")


def test_systemd_verify_finds_a_mistake(tmp_path):
    """The check above can fail: a misspelt setting is reported."""
    unit = open(os.path.join(OPS, "systemd", "streamtube.service")).read()
    path = tmp_path / "streamtube.service"
    path.write_text(unit.replace("/usr/local/bin/streamtube", binary()).replace("ProtectSystem=strict", "ProtectSytem=strict"))
    r = run(["systemd-analyze", "verify", str(path)])
    assert "Unknown key" in r.stdout + r.stderr


# --- Prometheus and Grafana -----------------------------------------------------------------

@pytest.fixture(scope="module")
def monitoring(tmp_path_factory):
    """ops/monitoring copied, with the operator token's file where promtool can see one."""
    d = tmp_path_factory.mktemp("monitoring")
    for f in glob.glob(os.path.join(OPS, "monitoring", "*")):
        shutil.copy(f, d)
    token = d / "token"
    token.write_text("t")
    cfg = (d / "prometheus.yml").read_text().replace("/etc/prometheus/streamtube-admin-token", str(token))
    (d / "prometheus.yml").write_text(cfg)
    return d


def test_prometheus_configuration_and_rules_check(monitoring):
    r = run(["promtool", "check", "config", "prometheus.yml"], cwd=monitoring)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout + r.stderr
    r = run(["promtool", "check", "rules", "alerts.yml"], cwd=monitoring)
    assert r.returncode == 0 and "7 rules found" in r.stdout, r.stdout + r.stderr


def test_alert_rules_unit_tests_pass(monitoring):
    r = run(["promtool", "test", "rules", "alerts_test.yml"], cwd=monitoring)
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr
    names = {a["alert"] for g in yaml.safe_load((monitoring / "alerts.yml").read_text())["groups"] for a in g["rules"]}
    tested = set(re.findall(r"alertname: (\w+)", (monitoring / "alerts_test.yml").read_text()))
    assert names == tested, f"alerts without a unit test: {names - tested}"


def test_alert_rules_unit_tests_can_fail(monitoring, tmp_path):
    """A rule made wrong (the edge hit ratio's threshold) fails its unit test."""
    for f in ["alerts.yml", "alerts_test.yml"]:
        shutil.copy(monitoring / f, tmp_path)
    rules = (tmp_path / "alerts.yml").read_text()
    assert ") < 0.8" in rules
    (tmp_path / "alerts.yml").write_text(rules.replace(") < 0.8", ") < 0.4"))
    r = run(["promtool", "test", "rules", "alerts_test.yml"], cwd=tmp_path)
    assert r.returncode != 0 and "StreamTubeLowEdgeHitRatio" in r.stdout + r.stderr


def dashboard_queries():
    d = json.load(open(os.path.join(OPS, "monitoring", "grafana-dashboard.json")))
    exprs = [t["expr"] for p in d["panels"] for t in p["targets"]]
    assert len(exprs) >= 15 and d["uid"] and d["title"]
    return exprs


def metric_names(expr):
    return set(re.findall(r"\b(streamtube_[a-z0-9_]+)", expr))


def test_dashboard_queries_parse(tmp_path):
    """Each query as a recording rule: promtool parses its PromQL (Grafana's variables given values)."""
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:q{i}", "expr": e.replace("$__rate_interval", "5m").replace("$job", "streamtube")}
        for i, e in enumerate(dashboard_queries())]}]}
    (tmp_path / "q.yml").write_text(yaml.safe_dump(rules))
    r = run(["promtool", "check", "rules", "q.yml"], cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.fixture(scope="module")
def scraped():
    """A node's /metrics as it starts, before anything happens on it: what a quiet node exports."""
    d = tempfile.mkdtemp(prefix="streamtube-it-deploy-")
    n = Node(d, extra_args=["--test-payments", "on"]).start()
    try:
        r = http("GET", n.base + "/metrics")
        assert r.status == 200
        text = r.text
        ready = http("GET", n.base + "/healthz/ready")
        yield text, ready
    finally:
        n.stop()
        shutil.rmtree(d, ignore_errors=True)


def test_every_metric_the_dashboard_reads_is_exported(scraped):
    text, _ = scraped
    exported = set(re.findall(r"^# TYPE (streamtube_[a-z0-9_]+) ", text, re.M))
    wanted = set().union(*(metric_names(e) for e in dashboard_queries()))
    assert {"streamtube_edge_cache_hits_total", "streamtube_payments_failed_total", "streamtube_disk_free_bytes"} <= wanted
    assert wanted <= exported, f"the dashboard reads {sorted(wanted - exported)}, not in /metrics"


def test_every_metric_the_alerts_read_is_exported(scraped):
    text, _ = scraped
    exported = set(re.findall(r"^# TYPE (streamtube_[a-z0-9_]+) ", text, re.M))
    rules = open(os.path.join(OPS, "monitoring", "alerts.yml")).read()
    wanted = metric_names(rules)
    # Only a node serving HTTPS itself (--tls-cert) has a certificate to report.
    only_with_tls = {"streamtube_tls_certificate_expiry_timestamp_seconds"}
    assert wanted - only_with_tls <= exported, f"the alerts read {sorted(wanted - only_with_tls - exported)}, not in /metrics"


def test_a_lone_node_without_seeds_is_ready(scraped):
    _, ready = scraped
    assert ready.status == 200 and ready.json()["ready"] is True


# --- Containers and Kubernetes --------------------------------------------------------------

def test_containerfile_passes_hadolint():
    path = os.path.join(OPS, "container", "Containerfile")
    r = run([lint_tool("hadolint"), "--failure-threshold", "info", path])
    assert r.returncode == 0, r.stdout + r.stderr
    text = open(path).read()
    # Multi-stage, the runtime stage on Debian slim, as an unprivileged user.
    assert text.count("\nFROM ") == 2 and "bookworm-slim" in text and re.search(r"^USER 10001", text, re.M)


def test_compose_file_validates_and_names_real_settings(settings, tmp_path):
    path = os.path.join(OPS, "container", "compose.yaml")
    env = {**os.environ, "POSTGRES_PASSWORD": "p", "STREAMTUBE_CLUSTER_KEY": "k", "STREAMTUBE_ADMIN_TOKEN": "t"}
    # Compose's own check (Debian's docker-compose: it needs no daemon to validate a file).
    r = run(["docker-compose", "-f", path, "config", "-q"], env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    bad = tmp_path / "compose.yaml"
    bad.write_text(open(path).read().replace("read_only: true", "read_only: maybe"))
    assert run(["docker-compose", "-f", str(bad), "config", "-q"], env=env).returncode != 0
    # The secrets are required: without them Compose refuses to start anything.
    r = run(["docker-compose", "-f", path, "config", "-q"], env={k: v for k, v in env.items() if k != "POSTGRES_PASSWORD"})
    assert r.returncode != 0 and "POSTGRES_PASSWORD" in r.stdout + r.stderr
    doc = yaml.safe_load(open(path))
    nodes = [s for name, s in doc["services"].items() if name.startswith("node")]
    assert len(nodes) == 3 and "postgres" in doc["services"] and "haproxy" in doc["services"]
    for s in nodes:
        assert s["stop_grace_period"] and s["read_only"] is True and s["cap_drop"] == ["ALL"]
        assert_known([k for k in s["environment"] if k.startswith("STREAMTUBE_")], settings, "compose.yaml")


def test_kubernetes_manifests_validate(settings):
    files = sorted(glob.glob(os.path.join(OPS, "k8s", "*.yaml")))
    r = run([lint_tool("kubernetes-validate"), "--strict", "--kubernetes-version", "1.37.0", *files])
    assert r.returncode == 0, r.stdout + r.stderr
    docs = [d for f in files for d in yaml.safe_load_all(open(f)) if d]
    kinds = {d["kind"] for d in docs}
    assert {"StatefulSet", "Service", "PodDisruptionBudget", "NetworkPolicy"} <= kinds
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    pod = sts["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["readinessProbe"]["httpGet"]["path"] == "/healthz/ready" and c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["terminationGracePeriodSeconds"] >= 60 and c["lifecycle"]["preStop"]
    assert c["securityContext"]["readOnlyRootFilesystem"] and c["securityContext"]["allowPrivilegeEscalation"] is False
    assert_known([e["name"] for e in c["env"] if e["name"].startswith("STREAMTUBE_")], settings, "the StatefulSet")
    # The gossip seeds are the headless Service's stable names of the StatefulSet's pods.
    seeds = next(e["value"] for e in c["env"] if e["name"] == "STREAMTUBE_SEEDS")
    headless = next(d for d in docs if d["kind"] == "Service" and d["spec"].get("clusterIP") == "None")
    assert all(s.startswith(f"{sts['metadata']['name']}-") and f".{headless['metadata']['name']}." in s for s in seeds.split(","))


# --- Terraform ------------------------------------------------------------------------------

def test_terraform_parses_and_checkov_finds_nothing_unexplained(settings):
    tf = os.path.join(OPS, "terraform")
    r = run([os.path.join(LINT, "python"), "-c", "import glob, hcl2, sys\n"
             "for f in sorted(glob.glob(sys.argv[1] + '/**/*.tf', recursive=True)):\n"
             "    hcl2.load(open(f)); print('parsed', f)", tf])
    assert r.returncode == 0 and r.stdout.count("parsed") >= 5, r.stdout + r.stderr
    r = run([lint_tool("checkov"), "-d", tf, "--framework", "terraform", "--skip-download", "--compact", "-o", "json"])
    report = json.loads(r.stdout)
    summary = report["summary"]
    assert summary["failed"] == 0, json.dumps(report["results"]["failed_checks"], indent=1)[:5000]
    assert summary["passed"] > 300
    # Every finding skipped says why, where it is skipped.
    for skipped in report["results"]["skipped_checks"]:
        assert len(skipped["check_result"].get("suppress_comment", "")) > 20, skipped
    cloud_init = open(os.path.join(tf, "modules", "streamtube-region", "node.cloud-init.yaml")).read()
    assert_known(re.findall(r"STREAMTUBE_[A-Z0-9_]+", cloud_init), settings, "the nodes' cloud-init")


# --- Load balancers -------------------------------------------------------------------------

def test_haproxy_configuration_checks(tmp_path):
    env = {**os.environ, "STREAMTUBE_NODE1": "127.0.0.1", "STREAMTUBE_NODE2": "127.0.0.2", "STREAMTUBE_NODE3": "127.0.0.3",
           "HAPROXY_HTTP_BIND": "127.0.0.1:1", "HAPROXY_RTMP_BIND": "127.0.0.1:2"}
    r = run(["haproxy", "-c", "-f", os.path.join(OPS, "haproxy", "haproxy.cfg")], env=env)
    assert r.returncode == 0 and "valid" in r.stdout + r.stderr, r.stdout + r.stderr
    # With TLS and the redirect to HTTPS (the .if blocks).
    pem = tmp_path / "tls.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(pem), "-out", str(tmp_path / "crt"), "-days", "2", "-subj", "/CN=streamtube.test"],
                   check=True, capture_output=True)
    pem.write_text(pem.read_text() + (tmp_path / "crt").read_text())
    r = run(["haproxy", "-c", "-f", os.path.join(OPS, "haproxy", "haproxy.cfg")],
            env={**env, "HAPROXY_TLS_PEM": str(pem), "HAPROXY_HTTPS_BIND": "127.0.0.1:3", "HAPROXY_REDIRECT_HTTPS": "1"})
    assert r.returncode == 0, r.stdout + r.stderr


def test_nginx_configuration_checks(tmp_path):
    tls = tmp_path / "tls"
    tls.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(tls / "streamtube.key"), "-out", str(tls / "streamtube.crt"), "-days", "2",
                    "-subj", "/CN=streamtube.test"], check=True, capture_output=True)
    conf = open(os.path.join(OPS, "nginx", "streamtube.conf")).read().replace("/etc/nginx/tls/", f"{tls}/")
    (tmp_path / "streamtube.conf").write_text(conf)
    (tmp_path / "logs").mkdir()
    (tmp_path / "nginx.conf").write_text(
        "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n"
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/logs/error.log;\nevents {{}}\ninclude {tmp_path}/streamtube.conf;\n")
    r = run(["nginx", "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")])
    assert r.returncode == 0 and "successful" in r.stderr, r.stdout + r.stderr


# --- streamtube doctor ----------------------------------------------------------------------

def doctor(tmp_path, *args, env=None):
    ports = ["--http-port", str(free_port()), "--rtmp-port", str(free_port()), "--gossip-port", str(free_port())]
    return run([binary(), "doctor", "--data-dir", str(tmp_path), "--host", "127.0.0.1", *ports, *args],
               env={k: v for k, v in {**os.environ, **(env or {})}.items() if k != "STREAMTUBE_CLUSTER_KEY"})


def test_doctor_passes_a_fresh_host(tmp_path):
    r = doctor(tmp_path, "--json")
    checks = {c["name"]: c for c in json.loads(r.stdout)}
    assert r.returncode == 0, r.stdout + r.stderr
    for name in ["port http", "port rtmp", "port gossip/tcp", "port gossip/udp", "FFmpeg", "RocksDB", "disk", "cluster key", "database"]:
        assert checks[name]["verdict"] == "ok", checks[name]
    assert "libavcodec" in checks["FFmpeg"]["detail"] and "made at the first start" in checks["database"]["detail"]
    assert checks["clock"]["verdict"] in ("ok", "warn")
    # It changed nothing: no key made, no database, no leftover of its RocksDB check.
    assert sorted(os.listdir(tmp_path)) in ([], ["cache"]), os.listdir(tmp_path)


def test_doctor_names_what_is_wrong(tmp_path):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        r = doctor(tmp_path, "--http-port", str(port), "--seeds", f"127.0.0.1:{free_port()}")
        assert r.returncode == 1, r.stdout + r.stderr
        lines = r.stdout.splitlines()
        assert any(l.startswith("FAIL  port http:") and f"127.0.0.1:{port}" in l for l in lines), r.stdout
        assert any(l.startswith("FAIL  seed 127.0.0.1:") and "not reachable" in l for l in lines), r.stdout
        # Seeds and no key: a node that would make a key of its own could never join.
        assert any(l.startswith("FAIL  cluster key:") and "same --cluster-key" in l for l in lines), r.stdout
    finally:
        taken.close()
    r = doctor(tmp_path, "--cluster-key", "not base64!")
    assert r.returncode == 1 and any(l.startswith("FAIL  cluster key:") for l in r.stdout.splitlines()), r.stdout


def test_doctor_reads_an_existing_database_without_changing_it(tmp_path):
    n = Node(str(tmp_path)).start()
    n.stop()
    before = os.path.getmtime(tmp_path / "streamtube.sqlite")
    r = doctor(tmp_path, "--json")
    db = next(c for c in json.loads(r.stdout) if c["name"] == "database")
    assert db["verdict"] == "ok" and re.search(r"schema \d+, up to date", db["detail"]), db
    assert os.path.getmtime(tmp_path / "streamtube.sqlite") == before
