"""OBS Studio itself as the broadcaster (issue 21): Debian's OBS 29 under Xvfb with Mesa's
software GL, a profile and scene collection written here (a custom RTMP server, a media
source looping a file made with ffmpeg, OBS's default output settings otherwise: x264 with
the keyframe interval left at 0 = auto, that is x264's 250 frames at most), started with
`--startstreaming`.

The node runs a ladder, which forces a keyframe every segment target whatever OBS sends: the
renditions' segments stay within 2 s, the source rendition (about 8 s between keyframes)
leaves the master playlist and the health says why and what to change in OBS. A proxy between
OBS and the node drops the connection once: OBS reconnects by itself and the viewer plays on.

OBS_TEST_KEEP=1 keeps the test's folder (OBS's own log under obs*/config/obs-studio/logs, the
node's log)."""
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import ADMIN_TOKEN, Node, free_port, http, wait_for
from test_player import advances, chromium, stats  # noqa: F401 (chromium is a fixture)
from test_single_node import decode_seconds
from test_transcode import master_renditions, wait_ended
from servers import stop_process

# Transcoding, browsers playing, several nodes: these run one at a time on one parallel worker (ops/test).

LADDER = "240p:240:400"
FPS = 30
SEGMENT_TARGET = 2.0
PROFILE = "StreamTube"


# ---------------------------------------------------------------------------------------------
# OBS under Xvfb


class Xvfb:
    """An X server of our own on a display it picks itself (-displayfd): no clash with other
    displays on the machine."""

    def __init__(self, folder):
        self.log_path = os.path.join(folder, "xvfb.log")
        self.proc = None
        self.display = None

    def start(self):
        exe = shutil.which("Xvfb")
        if not exe:
            pytest.skip("Xvfb is not installed (ops/install-deps --test installs xvfb)")
        r, w = os.pipe()
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([exe, "-displayfd", str(w), "-screen", "0", "1280x720x24", "-nolisten", "tcp"],
                                         pass_fds=(w,), stdout=log, stderr=subprocess.STDOUT)
        os.close(w)
        got = b""
        deadline = time.time() + 15
        try:
            while not got.endswith(b"\n") and time.time() < deadline:
                ready, _, _ = select.select([r], [], [], 0.5)
                if ready:
                    chunk = os.read(r, 64)
                    if not chunk:
                        break
                    got += chunk
        finally:
            os.close(r)
        if not got.strip().isdigit():
            self.stop()
            pytest.skip(f"Xvfb did not start: {open(self.log_path, errors='replace').read()[-1500:]}")
        self.display = ":" + got.strip().decode()
        return self

    def stop(self):
        stop_process(self.proc)


def make_media(path, seconds=4):
    """A few seconds of H.264/AAC in MP4 for OBS's media source to loop."""
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                    "-f", "lavfi", "-i", f"testsrc2=size=640x360:rate={FPS}",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
                    "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-movflags", "+faststart", path], check=True, timeout=60)


class OBS:
    """OBS Studio with a configuration folder of its own (HOME and XDG_CONFIG_HOME point into
    `folder`): global.ini with the first-run wizard done, a profile (custom RTMP server and key;
    OBS's defaults for the output) and a scene collection whose one scene holds one media
    source looping `media`."""

    def __init__(self, folder, server, key, media):
        self.folder = folder
        self.config = os.path.join(folder, "config", "obs-studio")
        self.proc = None
        self._write_config(server, key, media)

    def _write_config(self, server, key, media):
        c = self.config
        profile = os.path.join(c, "basic", "profiles", PROFILE)
        scenes = os.path.join(c, "basic", "scenes")
        os.makedirs(profile)
        os.makedirs(scenes)
        # FirstRun and LastVersion (29.0.2) set: no auto-configuration wizard, no "what's new";
        # ConfirmOnExit off: SIGINT closes OBS (stopping the stream first) without asking;
        # obs-websocket's server off (it would listen on port 4455).
        with open(os.path.join(c, "global.ini"), "w") as f:
            f.write("[General]\nFirstRun=true\nLastVersion=486539266\nEnableAutoUpdates=false\nConfirmOnExit=false\n\n"
                    f"[Basic]\nProfile={PROFILE}\nProfileDir={PROFILE}\n"
                    f"SceneCollection={PROFILE}\nSceneCollectionFile={PROFILE}\nConfigOnNewProfile=false\n\n"
                    "[OBSWebSocket]\nFirstLoad=false\nServerEnabled=false\nAlertsEnabled=false\n")
        # The profile: a small canvas (software GL and x264 on two cores) at OBS's default
        # 30 fps; the output in Simple mode on OBS's defaults (x264 veryfast, 2500 kbit/s CBR,
        # keyframe interval auto; reconnect on, after 2 s in OBS 29).
        with open(os.path.join(profile, "basic.ini"), "w") as f:
            f.write(f"[General]\nName={PROFILE}\n\n"
                    f"[Video]\nBaseCX=640\nBaseCY=360\nOutputCX=640\nOutputCY=360\nFPSType=0\nFPSCommon={FPS}\n\n"
                    "[Output]\nMode=Simple\n")
        with open(os.path.join(profile, "service.json"), "w") as f:
            json.dump({"type": "rtmp_custom",
                       "settings": {"server": server, "key": key, "use_auth": False, "bwtest": False}}, f)
        item = {"name": "Media", "id": 1, "visible": True, "locked": False, "rot": 0.0,
                "pos": {"x": 0.0, "y": 0.0}, "scale": {"x": 1.0, "y": 1.0}, "align": 5,
                "bounds_type": 0, "bounds_align": 0, "bounds": {"x": 0.0, "y": 0.0},
                "crop_left": 0, "crop_top": 0, "crop_right": 0, "crop_bottom": 0}
        collection = {
            "name": PROFILE,
            "current_scene": "Scene", "current_program_scene": "Scene",
            "scene_order": [{"name": "Scene"}],
            "current_transition": "Fade", "transition_duration": 300, "transitions": [], "groups": [],
            "sources": [
                {"id": "scene", "versioned_id": "scene", "name": "Scene", "enabled": True, "mixers": 0,
                 "settings": {"id_counter": 1, "custom_size": False, "items": [item]}},
                {"id": "ffmpeg_source", "versioned_id": "ffmpeg_source", "name": "Media", "enabled": True,
                 "mixers": 255, "volume": 1.0, "muted": False, "monitoring_type": 0,
                 "settings": {"is_local_file": True, "local_file": media, "looping": True,
                              "restart_on_activate": False, "close_when_inactive": False, "hw_decode": False}},
            ],
        }
        with open(os.path.join(scenes, PROFILE + ".json"), "w") as f:
            json.dump(collection, f)

    def start(self, display):
        exe = shutil.which("obs")
        if not exe:
            pytest.skip("OBS Studio is not installed (ops/install-deps --test installs obs-studio)")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "DBUS_", "WAYLAND_", "QT_"))}
        runtime = os.path.join(self.folder, "runtime")
        os.makedirs(runtime, mode=0o700, exist_ok=True)
        # rtmp-services asks obsproject.com for its service list at every start (libcurl): a
        # proxy on a closed loopback port turns that down at once, without a DNS look-up; RTMP
        # does not go through it.
        closed = f"http://127.0.0.1:{free_port()}"
        env.update(HOME=self.folder, XDG_CONFIG_HOME=os.path.join(self.folder, "config"), DISPLAY=display,
                   XDG_RUNTIME_DIR=runtime, LIBGL_ALWAYS_SOFTWARE="1", QT_QPA_PLATFORM="xcb",
                   http_proxy=closed, https_proxy=closed, HTTPS_PROXY=closed, ALL_PROXY=closed, no_proxy="")
        self.out = open(os.path.join(self.folder, "obs.out"), "wb")
        self.proc = subprocess.Popen(
            [exe, "--multi", "--disable-updater", "--minimize-to-tray", "--disable-missing-files-check",
             "--profile", PROFILE, "--collection", PROFILE, "--startstreaming"],
            cwd=self.folder, env=env, stdout=self.out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        """OBS's own log of this run (config/obs-studio/logs), else what it printed."""
        logs = os.path.join(self.config, "logs")
        text = ""
        if os.path.isdir(logs):
            files = sorted(os.listdir(logs))
            if files:
                with open(os.path.join(logs, files[-1]), errors="replace") as f:
                    text = f.read()
        if not text:
            with open(os.path.join(self.folder, "obs.out"), errors="replace") as f:
                text = f.read()
        return text

    def stop(self):
        if self.running():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.out.close()


# ---------------------------------------------------------------------------------------------
# A TCP proxy between OBS and the node's RTMP port, to drop the connection from the node's side.


class Proxy:
    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self.open = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.accepted += 1
                self.open += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def drop(self):
        """Closes every connection through the proxy, both ways, once."""
        with self.lock:
            socks, self.open = self.open, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        return len(socks) // 2

    def close(self):
        self.closed = True
        self.listener.close()
        self.drop()


# ---------------------------------------------------------------------------------------------


@pytest.fixture
def obs_run():
    """A folder, an X server, and whatever OBS and node the test starts, all stopped after."""
    folder = tempfile.mkdtemp(prefix="streamtube-obs-")
    try:
        run = {"folder": folder, "xvfb": Xvfb(folder).start(), "procs": []}
    except BaseException:  # skipped: no Xvfb here
        shutil.rmtree(folder, ignore_errors=True)
        raise
    yield run
    for p in reversed(run["procs"]):
        p.stop() if not isinstance(p, Proxy) else p.close()
    run["xvfb"].stop()
    if not os.environ.get("OBS_TEST_KEEP"):  # OBS_TEST_KEEP=1: keep OBS's and the node's logs
        shutil.rmtree(folder, ignore_errors=True)


def start_obs(run, server, key):
    media = os.path.join(run["folder"], "loop.mp4")
    if not os.path.exists(media):
        make_media(media)
    home = os.path.join(run["folder"], f"obs{len(run['procs'])}")
    os.makedirs(home)
    obs = OBS(home, server, key, media)
    run["procs"].append(obs)
    return obs.start(run["xvfb"].display)


def wait_streaming(obs, node, stream_id, timeout=30):
    """Until the stream is playable on the node. Skipped when OBS cannot run here at all: it
    exits before its start-up is complete (no X server, no OpenGL)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not obs.running():
            if "==== Startup complete" not in obs.log():
                pytest.skip(f"OBS Studio cannot start on this machine:\n{obs.log()[-3000:]}")
            raise AssertionError(f"OBS exited:\n{obs.log()[-3000:]}")
        if http("GET", f"{node.base}/live/{stream_id}/master.m3u8").status == 200:
            return
        time.sleep(0.2)
    raise AssertionError(f"the stream from OBS never became playable\nOBS:\n{obs.log()[-3000:]}\n"
                         f"node:\n{node.logs()[-3000:]}")


def health(node, stream_id):
    r = http("GET", f"{node.base}/api/streams/{stream_id}/health", token=ADMIN_TOKEN)
    assert r.status == 200, r.text
    return r.json()


def durations(playlist):
    return [float(x) for x in re.findall(r"#EXTINF:([\d.]+),", playlist)]


def discontinuities(playlist):
    """Discontinuities since the stream began: those slid out of the window
    (EXT-X-DISCONTINUITY-SEQUENCE) and those still in it."""
    m = re.search(r"#EXT-X-DISCONTINUITY-SEQUENCE:(\d+)", playlist)
    return (int(m.group(1)) if m else 0) + len(re.findall(r"^#EXT-X-DISCONTINUITY$", playlist, re.M))


def test_obs_on_its_defaults_plays_in_ffmpeg_and_chromium(obs_run, chromium):
    folder = obs_run["folder"]
    node = Node(os.path.join(folder, "node"), ["--ladder", LADDER])
    obs_run["procs"].append(node)
    node.start()
    s = node.create_stream("From OBS")
    obs = start_obs(obs_run, f"rtmp://127.0.0.1:{node.rtmp_port}/live", s["key"])
    started = time.time()
    wait_streaming(obs, node, s["id"])

    # A viewer on the watch page plays it.
    chromium.get(s["watchURL"])
    wait_for(lambda: (stats(chromium) or {}).get("state") == "playing", 15, "the player to play")
    advances(chromium, 4, 3.0)
    assert stats(chromium)["rendition"] == "240p", stats(chromium)

    # OBS's default keyframe interval (x264's 250 frames at most: 8.3 s at 30 fps; its scene-cut
    # detection may put one earlier, at the media's loop) is seen and explained; the source
    # rendition, with segments that long, is out of the master playlist.
    def advised():
        h = health(node, s["id"])
        return h if not h["sourceInMaster"] and h.get("keyframeInterval") and any("Keyframe Interval" in a for a in h["advice"]) \
            else None
    h = wait_for(advised, 20, "the health to measure the keyframe interval and advise one")
    assert h["keyframeInterval"] > 2 * SEGMENT_TARGET, h
    assert re.search(r"keyint:\s+250\b", obs.log()), obs.log()[-3000:]  # x264's default: OBS left it at auto
    master = http("GET", s["playlistURL"]).text
    assert [name for name, _ in master_renditions(master)] == ["240p"], master

    # About 20 s of streaming, then OBS stops.
    time.sleep(max(0.0, 20 - (time.time() - started)))
    assert obs.running(), obs.log()[-3000:]
    advances(chromium, 2, 1.5)
    obs.stop()
    wait_ended(node, s["id"], ["240p"])

    # The ladder's segments are at most a segment target long (plus a frame) although OBS
    # sends a keyframe about every 8 s; the source rendition's follow OBS's keyframes.
    listed = {}
    for name, _ in master_renditions(http("GET", s["playlistURL"]).text):
        d = listed[name] = durations(http("GET", f"{node.base}/live/{s['id']}/{name}/index.m3u8").text)
        assert len(d) >= 6 and all(x <= SEGMENT_TARGET + 1 / FPS + 0.001 for x in d[:-1]), (name, d)
    source = durations(http("GET", f"{node.base}/live/{s['id']}/source/index.m3u8").text)
    assert source and max(source) > 2 * SEGMENT_TARGET, source

    # ffmpeg decodes the master playlist (the 240p rendition) without an error: video and audio,
    # all that the playlist lists (audio may stop a few AAC frames before the last picture).
    video, audio, errors = decode_seconds(s["playlistURL"])
    assert errors.strip() == "", errors
    listed_seconds = sum(listed["240p"])
    assert video >= listed_seconds - 0.1 and audio >= listed_seconds - 0.25, (video, audio, listed)


def test_obs_reconnects_by_itself_and_the_viewer_plays_on(obs_run, chromium):
    """The node's side drops OBS's connection (a proxy in between closes it, once): OBS
    reconnects by itself with the same key, the playlists go on behind one discontinuity and
    the viewer's page plays on without a reload."""
    folder = obs_run["folder"]
    node = Node(os.path.join(folder, "node"), ["--ladder", LADDER])
    obs_run["procs"].append(node)
    node.start()
    proxy = Proxy(node.rtmp_port)
    obs_run["procs"].append(proxy)
    s = node.create_stream("OBS reconnects")
    obs = start_obs(obs_run, f"rtmp://127.0.0.1:{proxy.port}/live", s["key"])
    wait_streaming(obs, node, s["id"])
    chromium.get(s["watchURL"])
    wait_for(lambda: (stats(chromium) or {}).get("state") == "playing", 15, "the player to play")
    advances(chromium, 2, 1.5)
    chromium.js("window.__marker = 1")  # gone if the page reloads

    # Mid-stream: once the source rendition (OBS's keyframes, 8 s apart) has a segment too.
    playlists = {r: f"{node.base}/live/{s['id']}/{r}/index.m3u8" for r in ("240p", "source")}
    wait_for(lambda: durations(http("GET", playlists["source"]).text), 15, "a segment of the source rendition")
    before = {r: discontinuities(http("GET", u).text) for r, u in playlists.items()}
    assert proxy.accepted == 1 and proxy.drop() == 1
    wait_for(lambda: proxy.accepted >= 2, 15, f"OBS to reconnect\n{obs.log()[-2000:]}")

    def went_on(rendition, segments):
        text = http("GET", playlists[rendition]).text
        if discontinuities(text) != before[rendition] + 1:
            return None
        after = text.rsplit("#EXT-X-DISCONTINUITY\n", 1)[-1]
        return text if "#EXT-X-ENDLIST" not in text and len(durations(after)) >= segments else None
    # The ladder's segments every 2 s; the source's at OBS's next keyframe after the first.
    for rendition, segments in (("240p", 2), ("source", 1)):
        wait_for(lambda: went_on(rendition, segments), 25, f"{rendition} to go on behind one discontinuity")
    assert proxy.accepted == 2, proxy.accepted  # one reconnection, kept
    assert obs.running() and "Reconnecting in 2.00 seconds" in obs.log(), obs.log()[-3000:]  # OBS 29's default

    wait_for(lambda: (stats(chromium) or {}).get("state") == "playing", 15, "playback to go on")
    advances(chromium, 4, 3.0)
    assert chromium.js("return window.__marker") == 1, "the page was reloaded"
