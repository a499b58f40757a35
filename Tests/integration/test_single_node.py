"""One node end to end: the operator API, RTMP in from ffmpeg, LL-HLS out to ffmpeg."""
import re
import subprocess
import time


from conftest import ADMIN_TOKEN, Node, binary, epoch_of, http, push, wait_for

# Transcoding, browsers playing, several nodes: these run one at a time on one parallel worker (ops/test).


def media_playlist(node, sid, query=""):
    return http("GET", f"{node.base}/live/{sid}/source/index.m3u8{query}")


def last_part(playlist_text):
    parts = re.findall(r'#EXT-X-PART:.*URI="part(\d+)\.(\d+)-[0-9a-f]{8}\.m4s"', playlist_text)
    assert parts, playlist_text
    return int(parts[-1][0]), int(parts[-1][1])


def hinted_part(playlist_text):
    m = re.search(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part(\d+)\.(\d+)-[0-9a-f]{8}\.m4s"', playlist_text)
    assert m, playlist_text
    return int(m.group(1)), int(m.group(2))


def decode_seconds(url, timeout=60):
    """Plays `url` with ffmpeg, decoding every frame; returns (video s, audio s, stderr)."""
    p = subprocess.run(["ffmpeg", "-hide_banner", "-v", "error", "-nostdin", "-i", url,
                        "-map", "0:v:0", "-map", "0:a:0", "-f", "framecrc", "-"],
                       capture_output=True, text=True, timeout=timeout)
    tb, dur = {}, {0: 0, 1: 0}
    for line in p.stdout.splitlines():
        m = re.match(r"#tb (\d+): (\d+)/(\d+)", line)
        if m:
            tb[int(m.group(1))] = int(m.group(2)) / int(m.group(3))
            continue
        if line.startswith("#") or not line.strip():
            continue
        f = [x.strip() for x in line.split(",")]
        dur[int(f[0])] += int(f[3])
    return dur[0] * tb.get(0, 0), dur[1] * tb.get(1, 0), p.stderr


def test_operator_api_requires_the_admin_token(node):
    assert http("POST", node.base + "/api/streams", {"title": "x"}).status == 401
    assert http("POST", node.base + "/api/streams", {"title": "x"}, token="wrong").status == 401
    r = http("POST", node.base + "/api/streams", {"title": "Keynote"}, token=ADMIN_TOKEN)
    assert r.status == 201
    s = r.json()
    assert set(["id", "key", "rtmpURL", "watchURL", "playlistURL"]) <= set(s)
    assert s["rtmpURL"] == f"rtmp://127.0.0.1:{node.rtmp_port}/live/{s['key']}"
    assert s["watchURL"] == f"{node.base}/watch/{s['id']}"
    assert s["playlistURL"] == f"{node.base}/live/{s['id']}/master.m3u8"
    got = http("GET", f"{node.base}/api/streams/{s['id']}", token=ADMIN_TOKEN)
    assert got.status == 200 and got.json()["title"] == "Keynote"
    assert http("GET", f"{node.base}/api/streams/{s['id']}").status == 401
    assert http("GET", f"{node.base}/api/streams/doesnotexist", token=ADMIN_TOKEN).status == 404


def test_bad_requests_get_clear_errors(node):
    r = http("POST", node.base + "/api/streams", b"{not json", token=ADMIN_TOKEN)
    assert r.status == 400 and b"title" in r.body
    r = http("POST", node.base + "/api/streams", {"title": "   "}, token=ADMIN_TOKEN)
    assert r.status == 400 and b"title" in r.body
    r = http("POST", node.base + "/api/streams", {"title": "x" * 201}, token=ADMIN_TOKEN)
    assert r.status == 400
    assert http("GET", node.base + "/live/nope/master.m3u8").status == 404
    assert http("GET", node.base + "/live/../../etc/passwd").status == 404
    assert http("GET", node.base + "/watch/nope").status == 404
    s = node.create_stream()
    assert http("GET", f"{node.base}/live/{s['id']}/master.m3u8").status == 404  # offline: not published yet
    assert http("GET", node.base + "/healthz").json()["status"] == "ok"


def test_cli_creates_a_stream_through_the_api(node):
    out = subprocess.run([binary(), "streams", "create", "--title", "From the CLI", "--server", node.base,
                          "--admin-token", ADMIN_TOKEN], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    fields = dict(line.split(": ", 1) for line in out.stdout.strip().splitlines())
    assert fields["rtmpURL"].endswith("/live/" + fields["key"])
    assert fields["watchURL"].endswith("/watch/" + fields["id"])
    assert http("GET", f"{node.base}/api/streams/{fields['id']}", token=ADMIN_TOKEN).json()["title"] == "From the CLI"
    bad = subprocess.run([binary(), "streams", "create", "--title", "x", "--server", node.base, "--admin-token", "wrong"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "401" in bad.stderr


def test_streams_survive_a_restart(tmp_path):
    n = Node(str(tmp_path / "data")).start()
    s = n.create_stream("Kept")
    n.stop()
    n2 = Node(str(tmp_path / "data")).start()
    try:
        assert http("GET", f"{n2.base}/api/streams/{s['id']}", token=ADMIN_TOKEN).json()["key"] == s["key"]
    finally:
        n2.stop()


def test_live_push_is_played_back_while_live_and_ends(node):
    s = node.create_stream("Ten seconds")
    pub = push(node, s["key"], seconds=10, size="320x240")
    node.wait_playable(s["id"])
    assert pub.poll() is None, "the reader must start while the stream is live"
    master = http("GET", s["playlistURL"])
    assert master.status == 200
    assert master.headers["Content-Type"] == "application/vnd.apple.mpegurl"
    assert "RESOLUTION=320x240" in master.text and 'CODECS="avc1.' in master.text and "mp4a.40.2" in master.text
    video_s, audio_s, errors = decode_seconds(s["playlistURL"])
    assert pub.wait(30) == 0, pub.stderr.read()
    assert errors.strip() == "", errors
    assert video_s >= 9.0, (video_s, node.logs()[-2000:])
    assert audio_s >= 9.0, audio_s
    wait_for(lambda: "#EXT-X-ENDLIST" in media_playlist(node, s["id"]).text, 30, "the playlist to end", every=0.1)
    pl = media_playlist(node, s["id"]).text
    assert "#EXT-X-ENDLIST" in pl
    assert "#EXT-X-PRELOAD-HINT" not in pl
    status = http("GET", f"{node.base}/api/streams/{s['id']}", token=ADMIN_TOKEN).json()["live"]
    assert status["state"] == "ended" and status["videoFrames"] >= 290


def parts_of(playlist_text):
    return [(int(a), int(b)) for a, b in re.findall(r'#EXT-X-PART:.*URI="part(\d+)\.(\d+)-[0-9a-f]{8}\.m4s"', playlist_text)]


def test_ll_hls_playlist_blocking_reload_and_preload_hint(node):
    s = node.create_stream("Blocking")
    pub = push(node, s["key"], seconds=19, size="320x240")
    try:
        node.wait_playable(s["id"])
        r = media_playlist(node, s["id"])
        pl = r.text
        assert r.headers["Cache-Control"].startswith("public, max-age=")
        # The node's default part target is a third of a second; PART-HOLD-BACK is three parts.
        assert "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.00200" in pl
        assert "#EXT-X-PART-INF:PART-TARGET=0.33400" in pl
        assert re.search(r'#EXT-X-MAP:URI="init0-[0-9a-f]{8}\.mp4"', pl), pl
        durations = [float(d) for d in re.findall(r"#EXT-X-PART:DURATION=([\d.]+)", pl)]
        assert durations and max(durations) <= 0.334 + 1e-6
        assert re.search(r"#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part\d+\.\d+-[0-9a-f]{8}\.m4s\"", pl)

        # Ask for the hinted part, then for the one after it. The hinted part is by definition
        # not in the playlist that hints it; each blocking answer must hold it (the server
        # waited until it existed rather than answer without it). How long that takes is a
        # latency figure: ops/bench/latency.py measures it.
        seq, idx = hinted_part(pl)
        assert (seq, idx) not in parts_of(pl)
        first = media_playlist(node, s["id"], f"?_HLS_msn={seq}&_HLS_part={idx}")
        nseq, nidx = hinted_part(first.text)
        assert (nseq, nidx) not in parts_of(first.text)
        second = media_playlist(node, s["id"], f"?_HLS_msn={nseq}&_HLS_part={nidx}")
        assert first.status == 200 and second.status == 200
        # A part index one past a segment's last part means the next segment's first part.
        assert (seq, idx) in parts_of(first.text) or (seq + 1, 0) in parts_of(first.text), (parts_of(first.text), seq, idx)
        assert (nseq, nidx) in parts_of(second.text) or (nseq + 1, 0) in parts_of(second.text)

        # The preload hint's part is served as soon as it is made.
        hint = re.search(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="(part\d+\.\d+-[0-9a-f]{8}\.m4s)"', second.text).group(1)
        part = http("GET", f"{node.base}/live/{s['id']}/source/{hint}")
        assert part.status == 200 and part.body[4:8] == b"moof"
        assert part.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert part.headers["Content-Type"] == "video/mp4"
        epoch = epoch_of(second.text)
        init = http("GET", f"{node.base}/live/{s['id']}/source/init0-{epoch}.mp4")
        assert init.status == 200 and init.body[4:8] == b"ftyp"
        # Another epoch's name, or none, finds nothing (a stream started again never serves
        # new bytes under an old name).
        other = "00000000" if epoch != "00000000" else "00000001"
        assert http("GET", f"{node.base}/live/{s['id']}/source/init0-{other}.mp4").status == 404
        assert http("GET", f"{node.base}/live/{s['id']}/source/init0.mp4").status == 404

        # Bad blocking requests get clear errors.
        assert media_playlist(node, s["id"], f"?_HLS_msn={seq + 10}").status == 400
        assert media_playlist(node, s["id"], "?_HLS_part=1").status == 400
        assert media_playlist(node, s["id"], "?_HLS_msn=abc").status == 400

        # Delta updates over HTTP (_HLS_skip=YES): once the live playlist holds more than
        # CAN-SKIP-UNTIL seconds, the oldest segments are replaced by one EXT-X-SKIP tag;
        # what is listed still covers at least CAN-SKIP-UNTIL seconds from the live edge.
        until = float(re.search(r"CAN-SKIP-UNTIL=([\d.]+)", pl).group(1))

        def delta_if_skipping():
            d = media_playlist(node, s["id"], "?_HLS_skip=YES")
            return d if "#EXT-X-SKIP:" in d.text else None
        delta = wait_for(delta_if_skipping, 25, "a delta update that skips")
        assert delta.status == 200 and "#EXT-X-ENDLIST" not in delta.text
        skipped = int(re.search(r"#EXT-X-SKIP:SKIPPED-SEGMENTS=(\d+)", delta.text).group(1))
        msn = int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", delta.text).group(1))
        listed = [int(n) for n in re.findall(r"^seg(\d+)-[0-9a-f]{8}\.m4s$", delta.text, re.M)]
        assert skipped >= 1 and listed and listed[0] == msn + skipped, delta.text
        after_last = delta.text.split(f"seg{listed[-1]}-{epoch}.m4s")[-1]
        covered = sum(float(x) for x in re.findall(r"#EXTINF:([\d.]+),", delta.text)) \
            + sum(float(x) for x in re.findall(r"#EXT-X-PART:DURATION=([\d.]+)", after_last))
        assert covered >= until - 0.01, (covered, until, delta.text)
        full = media_playlist(node, s["id"]).text
        assert "#EXT-X-SKIP" not in full
        full_segments = [int(n) for n in re.findall(r"^seg(\d+)-[0-9a-f]{8}\.m4s$", full, re.M)]
        assert full_segments[:skipped + 1] == list(range(msn, msn + skipped + 1)), full
    finally:
        assert pub.wait(40) == 0, pub.stderr.read()
    # Once the stream has ended, a blocking request for the segment after the last one (which
    # will never come) is answered with the final playlist, without holding: a held request
    # would return only after the node's block timeout, three segment targets (6 s).
    final = wait_for(lambda: (lambda t: t if "#EXT-X-ENDLIST" in t else None)(media_playlist(node, s["id"]).text),
                     30, "the playlist to end", every=0.1)
    last_segment = max(int(n) for n in re.findall(r"^seg(\d+)-[0-9a-f]{8}\.m4s$", final, re.M))
    t0 = time.time()
    r = media_playlist(node, s["id"], f"?_HLS_msn={last_segment + 1}")
    assert r.status == 200 and "#EXT-X-ENDLIST" in r.text
    assert time.time() - t0 < 3 * 2.0, "an ended stream's blocking request was held"


def test_wrong_key_is_refused_and_other_streams_go_on(node):
    good = node.create_stream("Good")
    pub = push(node, good["key"], seconds=12, size="320x240")
    node.wait_playable(good["id"])
    before = last_part(media_playlist(node, good["id"]).text)
    bad = push(node, "not-a-key", seconds=5, size="320x240")
    assert bad.wait(20) != 0
    bad2 = push(node, "../../etc", seconds=5, size="320x240")
    assert bad2.wait(20) != 0
    # The good stream goes on: new parts after the refusals, its publisher still on.
    wait_for(lambda: last_part(media_playlist(node, good["id"]).text) > before, 30, "the good stream to go on", every=0.1)
    assert pub.poll() is None
    refused = [r for r in node.log_records() if r.get("msg") == "rtmp publish refused"]
    # ffmpeg sends "live/../.." as the application of the second URL: refused as an unknown app.
    assert sorted(r["reason"] for r in refused) == ["bad_app", "bad_key"]
    assert pub.wait(30) == 0


def test_second_publisher_on_a_live_key_is_refused(node):
    s = node.create_stream("Only one")
    first = push(node, s["key"], seconds=10, size="320x240")
    node.wait_playable(s["id"])
    second = push(node, s["key"], seconds=5, size="320x240")
    assert second.wait(20) != 0
    assert first.poll() is None
    assert any(r.get("reason") == "already_publishing" for r in node.log_records())
    assert first.wait(30) == 0
    video_s, _, errors = decode_seconds(s["playlistURL"])
    assert errors.strip() == "" and video_s >= 9.0


def test_unsupported_codec_is_refused_without_harm(node):
    s = node.create_stream("Old codec")
    old = push(node, s["key"], seconds=5, video="flv", size="320x240")
    assert old.wait(20) != 0
    assert any(r.get("msg") == "rtmp media refused, closing" and "H.264" in r.get("error", "") for r in node.log_records())
    assert http("GET", node.base + "/healthz").status == 200
    # The key is free again, and a proper stream on it plays.
    ok = push(node, s["key"], seconds=4, size="320x240")
    node.wait_playable(s["id"])
    assert ok.wait(30) == 0


def test_metrics_are_prometheus_text(node):
    def value(text, series):
        m = re.search(rf"^{re.escape(series)} (\d+)(\.0)?$", text, re.M)
        assert m, f"{series} missing:\n{text[:3000]}"
        return int(m.group(1))
    # The fixture's readiness check has connected to the RTMP port already.
    connections = value(http("GET", node.base + "/metrics").text, "streamtube_rtmp_connections_total")
    s = node.create_stream()
    pub = push(node, s["key"], seconds=3, size="320x240")
    assert pub.wait(30) == 0, pub.stderr.read()
    r = http("GET", node.base + "/metrics")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
    # One publisher: one more connection, one publish.
    assert value(r.text, "streamtube_rtmp_connections_total") == connections + 1
    assert value(r.text, "streamtube_rtmp_publish_started_total") == 1
    # HTTP requests are counted per route: the scrape above is one more /metrics request. Hummingbird
    # counts a request when its body has been written, which may be a moment after the client has read
    # it, so the next scrapes wait for the count: scrape k sees r and at most the k - 1 scrapes before it.
    series = 'hb_requests{http_route="/metrics",http_request_method="GET",http_response_status_code="200"}'
    before, scrapes = value(r.text, series), 0
    deadline = time.monotonic() + 5
    while True:
        seen = value(http("GET", node.base + "/metrics").text, series)
        scrapes += 1
        if seen > before or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert before + 1 <= seen <= before + scrapes
