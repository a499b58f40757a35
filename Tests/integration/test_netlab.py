"""StreamTube across a simulated wide-area network (ops/netlab): nodes as hosts of their own in regions
40-120 ms apart, a stamped broadcast pushed to one region and relayed to its origin in another, players
elsewhere, and the faults of issue 20 (see netlab_harness.py for the set-up and the checks a-d).

Runs only as root with /dev/net/tun (network namespaces, TUN devices): skipped otherwise, with the reason.
- test_quick_netlab_...: three nodes, one per region, 10 % loss between two regions mid-broadcast, checks
  a-c. Under a minute and a half; `timing` (ops/test runs it alone, after the parallel tests: it holds fixed
  addresses and ports, and measures bounds).
- test_netlab_scenario[...]: the long fault scenarios (a 60 s partition, an origin's host cut off, a node frozen
  for 10 s, 10 % loss for 40 s), five nodes, every check, 2-3 minutes each: `slow`, skipped unless
  STREAMTUBE_NETLAB_SCENARIOS=1 (`ops/netlab/netlab scenario all|partition|cut|freeze|loss`).
Each writes what it measured as JSON to $STREAMTUBE_NETLAB_RESULTS (a folder) when set, and prints it."""
import json
import os
import signal
import time

import pytest

from conftest import wait_for
import netlab_harness as nh

REASON = nh.unavailable()
pytestmark = [pytest.mark.skipif(REASON is not None, reason=REASON or ""), pytest.mark.timing]
SCENARIOS = os.environ.get("STREAMTUBE_NETLAB_SCENARIOS") == "1"
# On top of the configured detection bound: the polling (0.2 s), a round trip across the lab, timers late on a
# busy machine (as test_failover's 1.5 s).
SLACK_SECONDS = 2.0


def tear_down(cluster, reader, observer, publisher, keep):
    """Stops the player, the observer and the broadcaster, then the lab (its logs kept if `keep`)."""
    for part in (reader, observer):
        if part:
            part.stop()
    if publisher and publisher.poll() is None:
        publisher.kill()
    cluster.stop(keep=keep)


def save(name, out):
    print(f"\n== netlab {name}\n" + json.dumps(out, indent=1, default=str)[:20000])
    folder = os.environ.get("STREAMTUBE_NETLAB_RESULTS")
    if folder:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"{name}-{int(time.time())}.json"), "w") as f:
            json.dump(out, f, indent=1, default=str)


def pick(cluster, route, ingest_region=None, not_on=()):
    origin = route["origin"]
    for name, n in cluster.nodes.items():
        if name != origin and name not in not_on and (ingest_region is None or n.region == ingest_region):
            return n
    raise AssertionError(f"no node in {ingest_region} beside {origin} {not_on}")


def run(kind, regions, fault_seconds, before=12.0, after=15.0, loss_percent=10):
    """One broadcast through one fault; returns what was measured and checked."""
    from gaptools import FrameReader, max_gap, playback_gaps, repeats, stamped_publisher
    cluster = nh.Cluster(regions)
    out = {"kind": kind, "regions": regions, "latency_ms": nh.LATENCY, "fault_seconds": fault_seconds}
    publisher = reader = observer = None
    failed = True
    t_begin = time.time()
    try:
        cluster.start()
        out["cluster_up_seconds"] = round(time.time() - t_begin, 1)
        members = len(cluster.nodes)
        out["detection_bound_seconds"] = nh.lan_bound(members)
        reported = next(iter(cluster.nodes.values())).cluster().get("failureDetectionBoundSeconds")
        out["detection_bound_reported"] = reported
        # The origin in another region than the broadcaster's node (the relay crosses regions), not in `ap`
        # (the viewers' edge is there).
        origin_region = "us"
        s, route = cluster.stream_placed(origin_region=origin_region)
        sid = s["id"]
        origin = cluster.nodes[route["origin"]]
        standby = route["standbys"][0] if route.get("standbys") else None
        ingest = pick(cluster, route, "eu")
        viewer = pick(cluster, route, "ap", not_on=(ingest.name,))
        out.update(stream=sid, origin=origin.name, standby=standby, ingest=ingest.name, viewer_edge=viewer.name)
        total = before + fault_seconds + 25 + after
        if kind == "loss":
            total = before + fault_seconds + after
        frames_sent = int(total) * nh.FPS
        out["broadcast_seconds"] = int(total)
        publisher = stamped_publisher(ingest.rtmp_url(s["key"]), seconds=int(total))
        origin.wait_playable(sid, timeout=30)
        observer = nh.Observer(cluster, sid).start()
        reader = FrameReader(f"{viewer.base}/live/{sid}/master.m3u8?routed=1").start()
        wait_for(lambda: len(reader.frames) >= 3 * nh.FPS, 30, "the player at the edge to decode")
        time.sleep(max(0.0, before - 3))
        t_fault = time.time()
        out["fault_at"] = round(t_fault - t_begin, 1)
        if kind == "partition":
            cluster.lab.partition([origin.region])
            outside = [n for n in cluster.nodes.values() if n.region != origin.region]
        elif kind == "cut":
            cluster.lab.cut(origin.name)
            outside = [n for n in cluster.nodes.values() if n is not origin]
        elif kind == "freeze":
            os.kill(origin.proc.pid, signal.SIGSTOP)
            outside = [n for n in cluster.nodes.values() if n is not origin]
        elif kind == "loss":
            cluster.lab.loss(ingest.region, origin.region, loss_percent)
            outside = list(cluster.nodes.values())
        # (a) once the cluster has had the detection bound to act: what was announced before the fault and since,
        # from the nodes the fault left together.
        check_at = out["detection_bound_seconds"] + 3
        if fault_seconds > check_at + 2:
            time.sleep(check_at)
            v = observer.verify_recent(outside, "after the takeover")
            out["after_takeover"] = {"missing": v["missing"][:10], "checked": v["checked"],
                                     "publishing": {n.name: _safe_publishing(n) for n in outside}}
        time.sleep(max(0.0, t_fault + fault_seconds - time.time()))
        # During the fault: who published, who was named origin.
        t_heal = time.time()
        if kind == "freeze":
            os.kill(origin.proc.pid, signal.SIGCONT)
        else:
            cluster.lab.heal()
        out["healed_at"] = round(t_heal - t_begin, 1)
        out["during_fault"] = [(round(t, 1), {k: list(x) for k, x in v.items()}) for t, v in
                               observer.publishing_timeline(t_fault) if -1 <= t <= fault_seconds + 1][::3]
        # (c) one origin again, timed from the heal.
        secs, view = nh.wait_one_origin(cluster, sid, t_heal, limit=max(45.0, total - (t_heal - t_begin) - 5))
        out["one_origin_after_heal_seconds"] = None if secs is None else round(secs, 2)
        out["one_origin_view"] = view
        out["bound_with_slack"] = round(out["detection_bound_seconds"] + SLACK_SECONDS, 2)
        v = observer.verify_recent(list(cluster.nodes.values()), "after the heal")
        out["after_heal"] = {"missing": v["missing"][:10], "checked": v["checked"], "unreachable": v["unreachable"][:5]}
        # The rest of the broadcast, then the end.
        try:
            _, err = publisher.communicate(timeout=total + 60)
            out["publisher_rc"] = publisher.returncode
            out["publisher_stderr"] = err.decode(errors="replace")[-800:]
        except Exception as e:  # noqa: BLE001
            out["publisher_rc"] = f"{e!r}"
        out["broadcast_ended_at"] = round(time.time() - t_begin, 1)
        time.sleep(2)
        observer.stop()
        out["split_brain_rounds"] = [(round(t - (t_fault - t_begin) - t_begin, 1), v) for t, v in observer.split_brain()][:20]
        out["segments"] = observer.check_segments(list(cluster.nodes.values()))
        out["observer_errors"] = len(observer.errors)
        reader.stop()
        out["player"] = {"frames": len(reader.frames), "max_gap_seconds": max_gap(reader.frames),
                         "gaps": playback_gaps(reader.frames)[:10], "repeats": repeats(reader.frames)[:10],
                         "stderr": reader.stderr_text()[-600:]}
        out["recording"] = nh.recording_check(cluster, sid, frames_sent)
        out["total_seconds"] = round(time.time() - t_begin, 1)
        # Log lines that tell the story, from the fault on.
        out["logs"] = {}
        for name, n in cluster.nodes.items():
            lines = [r for r in nh.log_excerpt(n) if str(r.get("stream", sid)) in (sid, "") or "stream" not in r]
            out["logs"][name] = [nh.compact(r, t_fault) for r in lines if r.get("ts", t_fault) >= t_fault - 2][:80]
        out["router"] = router_figures(cluster)
        out["root"] = cluster.root
        failed = False
        return out
    finally:
        tear_down(cluster, reader, observer, publisher, keep=failed or os.environ.get("STREAMTUBE_NETLAB_KEEP") == "1")


def router_figures(cluster):
    """The router's counters over the run: packets, bytes, drops, its own delay on delayed packets."""
    st = cluster.lab.status()["stats"]
    seconds = max(1e-3, time.time() - st["since"])
    return {"packets": st["packets"], "mbit_per_s": round(st["bytes"] * 8 / seconds / 1e6, 2),
            "dropped": {k[8:]: v for k, v in st.items() if k.startswith("dropped_") and v},
            "own_delay_ms": {"max": round(st["late_max_ms"], 2), "mean": round(st["late_sum_ms"] / max(1, st["delayed"]), 3),
                             "delayed_packets": st["delayed"], "over_5ms": st["late_over_5ms"],
                             "over_20ms": st["late_over_20ms"]},
            "queue_max": st["queue_max"]}


def _safe_publishing(n):
    try:
        return n.publishing()
    except Exception as e:  # noqa: BLE001
        return repr(e)[:60]


def verdicts(out, bound_applies=True):
    """The checks a-d as (name, ok, detail)."""
    seg = out["segments"]
    checks = [
        ("a: no announced segment lost", not seg["missing"] and not seg["holes"],
         {"missing": seg["missing"][:10], "holes": seg["holes"][:10], "announced": seg["announced"]}),
        ("b: one media per URI and sequence number", not seg["differ"] and not seg["seq_under_two_epochs"],
         {"differ": seg["differ"][:5], "seq_under_two_epochs": seg["seq_under_two_epochs"][:20], "epochs": seg["epochs"]}),
        ("c: one origin within the bound after the heal",
         out["one_origin_after_heal_seconds"] is not None and
         (not bound_applies or out["one_origin_after_heal_seconds"] <= out["bound_with_slack"]),
         {"seconds": out["one_origin_after_heal_seconds"], "bound": out["bound_with_slack"], "view": out["one_origin_view"]}),
    ]
    if "recording" in out:
        checks.append(("d: the recording complete", out["recording"].get("complete"), out["recording"]))
    return checks


def known_gaps(out):
    """The known weaknesses (issue 20's list) the evidence shows, each with the checks it explains."""
    gaps = []
    view = out.get("one_origin_view") or {}
    origins = {o for o, _ in view.values() if o != "unreachable"}
    publishing = [k for k, (o, p) in view.items() if o != "unreachable" and p]
    if out["one_origin_after_heal_seconds"] is None and len(origins) == 1 and publishing and set(publishing) != origins:
        gaps.append((f"(i) no ownership handover: the ring names {sorted(origins)[0]}, {publishing} publish(es)", {"c"}))
    resumed_as_origin = [x for x in out.get("logs", {}).get(out["origin"], [])
                         if "standby asks for a snapshot" in x and "being published on this node" in x]
    if out["kind"] == "freeze" and (resumed_as_origin or any(v.get(out["origin"]) for t, v in out["split_brain_rounds"]
                                                             if t >= out["fault_seconds"])):
        # Explains (c) only: what the resumed node served is another matter.
        gaps.append((f"(ii) the resumed node took itself for the origin ({len(resumed_as_origin)} replication attempts "
                     f"to the node publishing the stream)", {"c"}))
    if len(out["segments"]["epochs"]) > 1:
        gaps.append((f"(iii) a new stream life (epochs {out['segments']['epochs']})", {"a", "b", "d"}))
    return gaps


def judge(name, out, bound_applies=True):
    """Fails with every failing check; xfails instead only when each failing check is explained by a known gap."""
    checks = verdicts(out, bound_applies)
    out["checks"] = [(c, ok) for c, ok, _ in checks]
    gaps = known_gaps(out)
    out["known_gaps"] = [g for g, _ in gaps]
    save(name, out)
    failing = [(c, detail) for c, ok, detail in checks if not ok]
    if failing:
        text = "; ".join(f"{c}: {json.dumps(d, default=str)[:1500]}" for c, d in failing)
        explained = set().union(*(letters for _, letters in gaps)) if gaps else set()
        if all(c[0] in explained for c, _ in failing):
            pytest.xfail(f"known gaps {[g for g, _ in gaps]}; failing: {text[:3000]}")
        raise AssertionError(f"{text}\nknown gaps seen: {[g for g, _ in gaps]}")


def test_quick_netlab_cluster_across_regions_with_loss():
    """Three nodes in three regions (40-120 ms apart); a broadcast pushed in eu, its origin in us, played from the
    edge in ap; 10 % loss between eu and us for 15 s. Checks a-c (no failover must happen: one origin all along)."""
    from gaptools import FrameReader, stamped_publisher
    t0 = time.time()
    cluster = nh.Cluster({"eu": 1, "us": 1, "ap": 1})
    publisher = reader = observer = None
    failed = True
    try:
        cluster.start()
        up = time.time() - t0
        s, route = cluster.stream_placed(origin_region="us")
        sid = s["id"]
        eu, us, ap = cluster.nodes["eu1"], cluster.nodes["us1"], cluster.nodes["ap1"]
        seconds = 30
        publisher = stamped_publisher(eu.rtmp_url(s["key"]), seconds=seconds)
        us.wait_playable(sid, timeout=30)
        observer = nh.Observer(cluster, sid).start()
        reader = FrameReader(f"{ap.base}/live/{sid}/master.m3u8?routed=1").start()
        wait_for(lambda: len(reader.frames) >= 2 * nh.FPS, 30, "the player at the ap edge to decode")
        cluster.lab.loss("eu", "us", 10)
        time.sleep(15)
        t_heal = time.time()
        cluster.lab.heal()
        secs, view = nh.wait_one_origin(cluster, sid, t_heal, limit=20)
        observer.verify_recent(list(cluster.nodes.values()), "after the loss")
        _, err = publisher.communicate(timeout=60)
        time.sleep(2)
        observer.stop()
        seg = observer.check_segments(list(cluster.nodes.values()))
        reader.stop()
        # The cluster formed across the latency, with round trips that show it (eu-us: 2 x 40 ms ± 5, eu-ap:
        # 2 x 120 ms ± 10). `rttMs` is the median of eu1's last three probes of the member: the Vivaldi
        # estimate it showed before came out of ~30 s of lossy samples off by far (CI saw eu-us 46 ms, and
        # once eu-us 215 ms > eu-ap 170 ms), and routing by it sent viewers to the farther edge.
        rtt = {m["id"]: m.get("rttMs") for m in eu.cluster()["members"]}
        out = {"kind": "quick", "cluster_up_seconds": round(up, 1), "rtt_ms_seen_by_eu1": rtt, "origin": route["origin"],
               "publisher_rc": publisher.returncode, "publisher_stderr": err.decode(errors="replace")[-500:],
               "segments": seg, "one_origin_after_heal_seconds": secs, "one_origin_view": view,
               "bound_with_slack": nh.lan_bound(3) + SLACK_SECONDS, "split_brain_rounds": observer.split_brain()[:10],
               "player_frames": len(reader.frames), "seconds": round(time.time() - t0, 1),
               "router": router_figures(cluster)}
        checks = verdicts(out)
        out["checks"] = [(c, ok) for c, ok, _ in checks]
        save("quick", out)
        assert route["origin"] == "us1"
        assert rtt.get("us1") and rtt.get("ap1") and 60 <= rtt["us1"] <= 140 and 200 <= rtt["ap1"] <= 320, rtt
        assert publisher.returncode == 0, out["publisher_stderr"]
        assert len(reader.frames) >= (seconds - 10) * nh.FPS, out
        assert not out["split_brain_rounds"], out["split_brain_rounds"]
        for c, ok, detail in checks:
            assert ok, f"{c}: {json.dumps(detail, default=str)[:3000]}"
        failed = False
    finally:
        tear_down(cluster, reader, observer, publisher, keep=failed)


LONG = [
    # kind, fault seconds
    ("partition", 60),
    ("cut", 30),
    ("freeze", 10),
    ("loss", 40),
]


@pytest.mark.slow
@pytest.mark.skipif(not SCENARIOS, reason="long netlab scenario: STREAMTUBE_NETLAB_SCENARIOS=1 (ops/netlab/netlab scenario)")
@pytest.mark.parametrize("kind,seconds", LONG, ids=[k for k, _ in LONG])
def test_netlab_scenario(kind, seconds):
    out = run(kind, {"eu": 2, "us": 2, "ap": 1}, seconds)
    judge(kind, out)
