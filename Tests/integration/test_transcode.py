"""The origin's ladder: renditions transcoded with libavcodec/libswscale/libx264, aligned
keyframes, stream health, and bad input that harms no one else."""
import json
import os
import re
import subprocess
import tempfile
import time

import pytest

from conftest import ADMIN_TOKEN, Node, http, push, wait_for
from test_single_node import decode_seconds

# Transcoding, browsers playing, several nodes: these run one at a time on one parallel worker (ops/test).

LADDER = "240p:240:400,180p:180:250"


@pytest.fixture
def ladder_node():
    d = tempfile.mkdtemp(prefix="streamtube-ladder-")
    n = Node(d, ["--ladder", LADDER]).start()
    yield n
    n.stop()


def master_renditions(text):
    out = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:"):
            attrs = dict(re.findall(r'([A-Z-]+)=("[^"]*"|[^,]*)', line.split(":", 1)[1]))
            out.append((lines[i + 1].split("/")[0], attrs))
    return out


def wait_ended(node, sid, renditions, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if all("#EXT-X-ENDLIST" in http("GET", f"{node.base}/live/{sid}/{r}/index.m3u8").text for r in renditions):
            return
        time.sleep(0.2)
    raise AssertionError("renditions did not end")


def download(node, sid, rendition, folder):
    """The rendition's init segment and every listed segment, as one fMP4 file."""
    pl = http("GET", f"{node.base}/live/{sid}/{rendition}/index.m3u8").text
    maps = re.findall(r'#EXT-X-MAP:URI="([^"]+)"', pl)
    segs = re.findall(r"^(seg\d+-[0-9a-f]{8}\.m4s)$", pl, re.M)
    durations = [float(x) for x in re.findall(r"#EXTINF:([\d.]+),", pl)]
    path = os.path.join(folder, f"{rendition}.mp4")
    with open(path, "wb") as f:
        f.write(http("GET", f"{node.base}/live/{sid}/{rendition}/{maps[0]}").body)
        for s in segs:
            r = http("GET", f"{node.base}/live/{sid}/{rendition}/{s}")
            assert r.status == 200
            f.write(r.body)
    return path, durations


def probe(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-show_packets", "-show_entries",
                          "stream=codec_name,codec_type,width,height:packet=stream_index,pts_time,flags,duration_time",
                          "-of", "json", path], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_each_rendition_is_transcoded_aligned_and_listed(ladder_node):
    node = ladder_node
    s = node.create_stream("Ladder")
    pub = push(node, s["key"], seconds=9, size="640x360")
    node.wait_playable(s["id"])
    deadline = time.time() + 15
    while len(master_renditions(http("GET", s["playlistURL"]).text)) < 3 and time.time() < deadline:
        time.sleep(0.2)
    master = master_renditions(http("GET", s["playlistURL"]).text)
    assert [name for name, _ in master] == ["source", "240p", "180p"], master
    for name, attrs in master:
        for key in ("BANDWIDTH", "AVERAGE-BANDWIDTH", "RESOLUTION", "CODECS", "FRAME-RATE"):
            assert key in attrs, (name, attrs)
        assert attrs["CODECS"].startswith('"avc1.') and "mp4a.40.2" in attrs["CODECS"]
    sizes = {name: attrs["RESOLUTION"] for name, attrs in master}
    assert sizes == {"source": "640x360", "240p": "426x240", "180p": "320x180"}
    assert pub.wait(30) == 0
    names = [name for name, _ in master]
    wait_ended(node, s["id"], names)

    folder = tempfile.mkdtemp()
    keyframes, durations, media = {}, {}, {}
    for name in names:
        path, durations[name] = download(node, s["id"], name, folder)
        info = probe(path)
        streams = {st["codec_type"]: st for st in info["streams"]}
        assert streams["video"]["codec_name"] == "h264" and streams["audio"]["codec_name"] == "aac"
        assert f'{streams["video"]["width"]}x{streams["video"]["height"]}' == sizes[name]
        vindex = next(i for i, st in enumerate(info["streams"]) if st["codec_type"] == "video")
        packets = [p for p in info["packets"] if p["stream_index"] == vindex]
        keyframes[name] = [round(float(p["pts_time"]), 3) for p in packets if "K" in p["flags"]]
        media[name] = len(packets)
        errors = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "null", "-"], capture_output=True, text=True).stderr
        assert errors.strip() == "", (name, errors)
    # Same keyframes, same segment boundaries, same duration in every rendition.
    assert keyframes["240p"] == keyframes["source"] and keyframes["180p"] == keyframes["source"], keyframes
    assert len(keyframes["source"]) >= 8
    assert durations["240p"] == durations["source"] and durations["180p"] == durations["source"], durations
    assert sum(durations["source"]) >= 8.5
    for name in names:
        assert abs(media[name] - media["source"]) <= 1, media


def test_health_while_live(ladder_node):
    node = ladder_node
    s = node.create_stream("Health")
    pub = push(node, s["key"], seconds=10, size="640x360")
    try:
        node.wait_playable(s["id"])
        time.sleep(3)
        h = http("GET", f"{node.base}/api/streams/{s['id']}/health", token=ADMIN_TOKEN)
        assert h.status == 200
        h = h.json()
        assert h["state"] == "live"
        assert h["inputBitrate"] > 50_000
        assert 25 <= h["frameRate"] <= 35, h
        assert h["keyframeInterval"] == pytest.approx(1.0, abs=0.05)
        assert abs(h["audioVideoDriftMs"]) < 500
        assert h["encoderSpeed"] > 0
        assert h["droppedFrames"] == 0
        outs = {o["rendition"]: o for o in h["outputs"]}
        assert set(outs) == {"source", "240p", "180p"}
        assert outs["240p"]["height"] == 240 and outs["240p"]["averageBitrate"] > 0
        assert http("GET", f"{node.base}/api/streams/{s['id']}/health").status == 401
        # Per-stream series name the stream: behind the operator token, not on the public /metrics.
        assert http("GET", node.base + "/api/metrics").status == 401
        metrics = http("GET", node.base + "/api/metrics", token=ADMIN_TOKEN).text
        for name in ("streamtube_stream_input_bitrate_bps", "streamtube_stream_frame_rate", "streamtube_stream_encoder_speed"):
            assert re.search(rf'^{name}{{stream="{s["id"]}"}} [\d.]+', metrics, re.M), name
        public = http("GET", node.base + "/metrics").text
        assert s["id"] not in public and "streamtube_rtmp_connections_total" in public
        assert re.search(rf'^streamtube_rendition_bitrate_bps{{stream="{s["id"]}",rendition="240p"}} [\d.]+', metrics, re.M) \
            or re.search(rf'^streamtube_rendition_bitrate_bps{{rendition="240p",stream="{s["id"]}"}} [\d.]+', metrics, re.M), metrics
    finally:
        pub.wait(30)
    # The stream ended: its series leave the export (they said their last values forever before).
    wait_for(lambda: http("GET", f"{node.base}/api/streams/{s['id']}/health", token=ADMIN_TOKEN).json()["state"] != "live", 20,
             "the stream to end")
    metrics = http("GET", node.base + "/api/metrics", token=ADMIN_TOKEN).text
    assert f'stream="{s["id"]}"' not in metrics, [l for l in metrics.splitlines() if s["id"] in l]


def test_two_streams_are_transcoded_and_served_at_once(ladder_node):
    node = ladder_node
    a, b = node.create_stream("A"), node.create_stream("B")
    pa = push(node, a["key"], seconds=10, size="640x360")
    pb = push(node, b["key"], seconds=10, size="640x360")
    node.wait_playable(a["id"])
    node.wait_playable(b["id"])
    for s in (a, b):
        deadline = time.time() + 15
        while len(master_renditions(http("GET", s["playlistURL"]).text)) < 3 and time.time() < deadline:
            time.sleep(0.2)
        assert [n for n, _ in master_renditions(http("GET", s["playlistURL"]).text)] == ["source", "240p", "180p"]
    assert pa.wait(30) == 0 and pb.wait(30) == 0
    for s in (a, b):
        wait_ended(node, s["id"], ["source", "240p", "180p"])
        v, au, err = decode_seconds(f"{node.base}/live/{s['id']}/180p/index.m3u8")
        assert err.strip() == "" and v >= 8.5 and au >= 8.5, (v, au, err)


def test_a_corrupt_stream_harms_no_one_else(ladder_node):
    node = ladder_node
    good, bad = node.create_stream("Good"), node.create_stream("Corrupt")
    pg = push(node, good["key"], seconds=10, size="640x360")
    pbad = push(node, bad["key"], seconds=8, size="640x360", extra=["-bsf:v", "noise=amount=500"])
    node.wait_playable(good["id"])
    pbad.wait(30)
    assert pg.wait(30) == 0
    assert http("GET", node.base + "/healthz").status == 200
    wait_ended(node, good["id"], ["source", "240p", "180p"])
    for rendition in ("source", "180p"):
        v, au, err = decode_seconds(f"{node.base}/live/{good['id']}/{rendition}/index.m3u8")
        assert err.strip() == "" and v >= 8.5 and au >= 8.5, (rendition, v, au, err)
    # The corrupt stream got through as far as it could, and the node said what it dropped.
    deadline = time.time() + 10
    while time.time() < deadline:
        h = http("GET", f"{node.base}/api/streams/{bad['id']}/health", token=ADMIN_TOKEN).json()
        if h["state"] == "ended" and h["droppedFrames"] > 0:
            break
        time.sleep(0.3)
    assert h["state"] == "ended" and h["droppedFrames"] > 0, h


def test_a_stream_can_have_its_own_ladder(node):
    bad = http("POST", node.base + "/api/streams", {"title": "x", "ladder": "tall:9999:1"}, token=ADMIN_TOKEN)
    assert bad.status == 400 and b"ladder" in bad.body
    bad = http("POST", node.base + "/api/streams", {"title": "x", "x264Preset": "warp"}, token=ADMIN_TOKEN)
    assert bad.status == 400
    r = http("POST", node.base + "/api/streams", {"title": "Own ladder", "ladder": "200p:200:300", "x264Preset": "ultrafast"},
             token=ADMIN_TOKEN)
    assert r.status == 201, r.text
    s = r.json()
    assert s["ladder"] == "200p:200:300"
    pub = push(node, s["key"], seconds=6, size="640x360")
    node.wait_playable(s["id"])
    deadline = time.time() + 10
    while len(master_renditions(http("GET", s["playlistURL"]).text)) < 2 and time.time() < deadline:
        time.sleep(0.2)
    master = master_renditions(http("GET", s["playlistURL"]).text)
    assert [(n, a["RESOLUTION"]) for n, a in master] == [("source", "640x360"), ("200p", "356x200")]
    assert pub.wait(30) == 0


def test_a_rung_that_cannot_keep_up_is_shed_and_counted(node):
    """x264's placebo preset on a 720p rung from a single thread is an order of magnitude
    slower than real time on any machine: the 720p rung is shed (logged, counted in
    streamtube_renditions_shed_total, gone from the master playlist, its playlist ended)
    while the source and the 180p rung go on."""
    r = http("POST", node.base + "/api/streams", {"title": "Too slow", "ladder": "720p:720:2500,180p:180:250",
                                                  "x264Preset": "placebo"}, token=ADMIN_TOKEN)
    assert r.status == 201, r.text
    s = r.json()
    pub = push(node, s["key"], seconds=8, size="1280x720", rate=15)
    node.wait_playable(s["id"])

    def shed():
        h = http("GET", f"{node.base}/api/streams/{s['id']}/health", token=ADMIN_TOKEN).json()
        return h if h.get("shedRenditions") else None
    h = wait_for(shed, 30, "a rendition to be shed")
    assert h["shedRenditions"] == ["720p"], h
    metrics = http("GET", node.base + "/metrics").text
    assert re.search(r'^streamtube_renditions_shed_total\{rendition="720p"\} 1$', metrics, re.M), \
        [line for line in metrics.splitlines() if "shed" in line]
    assert "180p" not in {m[0] for m in re.findall(r'^streamtube_renditions_shed_total\{rendition="(\w+)"\}', metrics, re.M)}
    assert any(rec.get("msg") == "rendition shed: encoding cannot keep up" and rec.get("rendition") == "720p"
               for rec in node.log_records())
    names = [n for n, _ in master_renditions(http("GET", s["playlistURL"]).text)]
    assert "720p" not in names and "source" in names, names
    assert pub.wait(30) == 0, pub.stderr.read()
    wait_ended(node, s["id"], ["source", "180p"])
    assert "#EXT-X-ENDLIST" in http("GET", f"{node.base}/live/{s['id']}/720p/index.m3u8").text


# Every audio codec FLV carries besides AAC, as ffmpeg's FLV muxer writes it, with the
# sample rates that codec allows there.
AUDIO_CODECS = {
    "MP3": ["-c:a", "libmp3lame", "-ar", "44100"],
    "PCM": ["-c:a", "pcm_s16le", "-ar", "44100"],
    "G.711 A-law": ["-c:a", "pcm_alaw", "-ar", "8000", "-ac", "1"],
    "G.711 mu-law": ["-c:a", "pcm_mulaw", "-ar", "8000", "-ac", "1"],
    "Speex": ["-c:a", "libspeex", "-ar", "16000", "-ac", "1"],
    "Nellymoser": ["-c:a", "nellymoser", "-ar", "44100", "-ac", "1"],
}


def test_audio_that_is_not_aac_is_transcoded_to_aac(node):
    """MP3, PCM, G.711, Speex and Nellymoser (the README's list), pushed at the same time."""
    streams = {}
    for name, args in AUDIO_CODECS.items():
        s = node.create_stream(f"{name} audio")
        streams[name] = (s, push(node, s["key"], seconds=6, size="320x240", audio=args))
    for name, (s, pub) in streams.items():
        node.wait_playable(s["id"])
    for name, (s, pub) in streams.items():
        assert pub.wait(30) == 0, (name, pub.stderr.read())
    for name, (s, pub) in streams.items():
        wait_ended(node, s["id"], ["source"])
        master = http("GET", s["playlistURL"]).text
        assert "mp4a.40.2" in master, (name, master)
        video, audio, errors = decode_seconds(s["playlistURL"])
        assert errors.strip() == "", (name, errors)
        assert video >= 5.5 and audio >= 5.5, (name, video, audio)


@pytest.mark.parametrize("gop", [250, 600])
def test_a_long_gop_source_still_gets_segments_at_the_target(ladder_node, gop):
    """A broadcaster on OBS's default keyframe interval (250 frames) or longer: every
    rendition the master playlist lists has 2 s segments (±1 frame), each starting with a
    part marked INDEPENDENT, decodable; the source rendition, which keeps the broadcaster's
    keyframes, is left out; the health says so and what to change."""
    node = ladder_node
    s = node.create_stream(f"GOP {gop}")
    pub = push(node, s["key"], seconds=11, size="640x360", extra=["-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0"])
    try:
        wait_for(lambda: len(master_renditions(http("GET", s["playlistURL"]).text)) == 2, 20, "the ladder in the master playlist")
        time.sleep(3)
        health = http("GET", f"{node.base}/api/streams/{s['id']}/health", token=ADMIN_TOKEN).json()
    finally:
        assert pub.wait(40) == 0, pub.stderr.read()
    names = [name for name, _ in master_renditions(http("GET", s["playlistURL"]).text)]
    assert names == ["240p", "180p"], names
    assert health["sourceInMaster"] is False, health
    assert any("set Keyframe Interval to 2 s" in a and "OBS" in a for a in health["advice"]), health["advice"]
    wait_ended(node, s["id"], names)
    folder = tempfile.mkdtemp()
    for name in names:
        pl = http("GET", f"{node.base}/live/{s['id']}/{name}/index.m3u8").text
        path, durations = download(node, s["id"], name, folder)
        assert len(durations) >= 4, pl
        assert all(abs(d - 2.0) <= 1 / 30 + 0.001 for d in durations[:-1]), (name, durations)
        # The first part after each segment boundary is independent (parts are listed for the last segments).
        lines = pl.splitlines()
        firsts = [lines[i + 1] for i, line in enumerate(lines[:-1])
                  if line.startswith("#EXT-X-PROGRAM-DATE-TIME") and lines[i + 1].startswith("#EXT-X-PART:")]
        assert firsts and all(f.endswith("INDEPENDENT=YES") for f in firsts), firsts
        errors = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "null", "-"], capture_output=True, text=True).stderr
        assert errors.strip() == "", (name, errors)
