"""Managing recordings (issue 16): a broadcaster's recording renamed, trimmed (at keyframes, no re-encode) and made
invite-only through /api/v1, its playlists and MP4 following the trim on every node (ffprobe), its picture a frame
of it; the studio's pages and the channel's past broadcasts in Chromium (axe, 1280 and 390 px, by keyboard); then
deleted: the origin's and the standby's copies gone from disk, and a viewer's next playlist and segment requests 404
on every node. Three nodes on one SQLite file (the `trio` of test_recordings)."""
import os
import re
import subprocess
import urllib.parse

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from browsers import chromium  # noqa: F401 (fixture)
from conftest import http, push, wait_for
from test_accessibility import Axe, describe, violations
from test_accounts import PASSWORD, Web, post_form
from test_channels import api
from test_recordings import probe_duration, recordings, trio  # noqa: F401 (trio: the fixture)

# Transcoding, browsers playing, several nodes: these run one at a time on one parallel worker (ops/test).


def ffprobe_duration(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return float(out.stdout.strip())


def check_accessible(browser, what):
    if Axe is None:
        return
    found = violations(browser)
    assert not found, f"{what}: " + describe(found)


def test_rename_trim_restrict_and_delete_a_recording_on_every_node(trio, chromium, tmp_path):  # noqa: F811
    a = trio[0]
    r = post_form(a, "/signup", {"email": "rec@example.com", "name": "Rec Owner", "password": PASSWORD})
    assert r.status == 303, r.text
    session = re.search(r"st_session=([^;]+)", r.headers["Set-Cookie"]).group(1)
    made = api(a, session, "POST", "/api/v1/streams", {"title": "Keynote"})
    assert made.status == 201, made.text
    sid, key = made.json()["id"], made.json()["key"]
    route = http("GET", f"{a.base}/api/route/{sid}").json()
    by_id = {n.extra_args[1]: n for n in trio}
    origin, standby = by_id[route["origin"]], by_id[route["standbys"][0]]
    other = next(n for n in trio if n not in (origin, standby))
    ffmpeg = push(origin, key, seconds=12)
    try:
        origin.wait_playable(sid)
    finally:
        _, err = ffmpeg.communicate(timeout=40)
    assert ffmpeg.returncode == 0, err

    def ready():
        rs = recordings(other, sid)
        return rs if rs and rs[0]["state"] == "ready" and len(rs[0]["nodes"]) == 2 else None
    rec = wait_for(ready, 20, "the recording ready on origin and standby")[0]
    rid = rec["id"]

    # Listed as the owner's, with a default title; a trim outside the recording says the valid range.
    mine = api(other, session, "GET", "/api/v1/recordings").json()
    assert [m["id"] for m in mine] == [rid], mine
    assert mine[0]["title"].startswith("Keynote ("), mine
    assert mine[0]["visibility"] == "public" and mine[0]["inheritsVisibility"] is True, mine
    whole = mine[0]["durationSeconds"]
    bad = api(other, session, "PATCH", f"/api/v1/recordings/{rid}", {"trimStart": 3, "trimEnd": whole + 30})
    assert bad.status == 400 and "the valid range is 0 to" in bad.json()["detail"], bad.text

    # Rename and trim through a node holding no copy: the trim snaps to keyframes (segment boundaries).
    changed = api(other, session, "PATCH", f"/api/v1/recordings/{rid}", {"title": "Keynote, cut", "trimStart": 2.5, "trimEnd": 7})
    assert changed.status == 200, changed.text
    c = changed.json()
    assert c["title"] == "Keynote, cut"
    assert c["trimStart"] <= 2.5 < c["trimStart"] + 3 and 7 <= c["trimEnd"] < 7 + 3, c
    assert abs(c["trimmedDurationSeconds"] - (c["trimEnd"] - c["trimStart"])) < 0.01, c
    trimmed = c["trimmedDurationSeconds"]
    # The first segment is trimmed away: no node serves it, a node holding no copy (and maybe caching it) either.
    assert c["trimStart"] > 0, c
    first = int(rid.rsplit("-", 1)[1])
    for n in (origin, other):
        assert http("GET", f"{n.base}/recordings/{rid}/source/seg{first}.m4s").status == 404, n.base
    assert trimmed < whole - 3, (trimmed, whole)
    for n in (origin, other):
        url = f"{n.base}/recordings/{rid}/source/index.m3u8"
        assert abs(probe_duration(url) - trimmed) < 0.5, (n.base, probe_duration(url), trimmed)
        download = http("GET", f"{n.base}/recordings/{rid}/download.mp4", timeout=120)
        assert download.status == 200, (n.base, download.status, download.text[:300])
        assert "Keynote-cut" in download.headers["Content-Disposition"], download.headers
        path = str(tmp_path / f"trimmed-{n.extra_args[1]}.mp4")
        with open(path, "wb") as f:
            f.write(download.body)
        assert abs(ffprobe_duration(path) - trimmed) < 0.5, (n.base, ffprobe_duration(path), trimmed)
    # A trimmed MP4 is a file of its own beside the recording (a new trim makes a new one).
    folder = os.path.join(origin.data_dir, "recordings", sid, rid)
    assert any(name.startswith("download-") for name in os.listdir(folder)), os.listdir(folder)

    # Its picture: a frame of it (a JPEG made here), from any node.
    picture = http("GET", f"{other.base}/recordings/{rid}/thumbnail.jpg")
    assert picture.status == 200 and picture.headers["Content-Type"] == "image/jpeg", (picture.status, picture.headers)
    assert picture.body[:2] == b"\xff\xd8", picture.body[:8]
    # Or an uploaded one (checked and re-encoded as a stream's), the same on every node; removed, a frame again.
    png = str(tmp_path / "picture.png")
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "color=c=red:s=320x180",
                    "-frames:v", "1", png], check=True)
    csrf = "x" * 43
    browser_headers = {"Cookie": f"st_session={session}; st_csrf={csrf}", "X-CSRF-Token": csrf}
    with open(png, "rb") as f:
        image = f.read()
    up = http("PUT", f"{origin.base}/api/v1/recordings/{rid}/thumbnail", image, headers={**browser_headers, "Content-Type": "image/png"})
    assert up.status == 204, up.text
    bad = http("PUT", f"{origin.base}/api/v1/recordings/{rid}/thumbnail", b"not a picture",
               headers={**browser_headers, "Content-Type": "image/png"})
    assert bad.status == 400, bad.text
    uploaded_path = urllib.parse.urlsplit(api(a, session, "GET", f"/api/v1/recordings/{rid}").json()["thumbnailURL"])
    assert uploaded_path.query.startswith("v="), uploaded_path
    uploaded = [http("GET", f"{n.base}{uploaded_path.path}?{uploaded_path.query}") for n in trio]
    assert all(u.status == 200 and u.body[:2] == b"\xff\xd8" for u in uploaded), [u.status for u in uploaded]
    assert len({u.body for u in uploaded}) == 1 and uploaded[0].body != picture.body
    assert api(a, session, "DELETE", f"/api/v1/recordings/{rid}/thumbnail").status == 204
    again = http("GET", f"{other.base}/recordings/{rid}/thumbnail.jpg")
    assert again.status == 200 and again.body[:2] == b"\xff\xd8" and again.body != uploaded[0].body

    # The studio's pages and the channel's past broadcasts, in Chromium: axe clean at both widths, usable by keyboard.
    web = Web(chromium, a)
    web.sign_in("rec@example.com")
    for width in (1280, 390):
        chromium.driver.set_window_size(width, 900)
        web.open("/studio/recordings")
        assert "Keynote, cut" in web.text(), web.text()
        check_accessible(chromium, f"/studio/recordings at {width}px")
        web.open(f"/studio/recordings/{rid}")
        assert "0:00 to" in web.text(), web.text()
        check_accessible(chromium, f"/studio/recordings/{rid} at {width}px")
    # By keyboard: Tab to the title field, change it, Enter submits.
    body = chromium.driver.find_element(By.TAG_NAME, "body")
    body.click()
    title = chromium.driver.find_element(By.NAME, "title")
    for _ in range(60):
        if chromium.driver.switch_to.active_element == title:
            break
        ActionChains(chromium.driver).send_keys(Keys.TAB).perform()
    assert chromium.driver.switch_to.active_element == title, "the title field is not reachable by Tab"
    title.send_keys(Keys.CONTROL, "a")
    title.send_keys("Keynote, by keyboard")
    chromium.js("window.__before = true")
    title.send_keys(Keys.ENTER)
    wait_for(lambda: chromium.js("return !window.__before && document.readyState === 'complete'"), 15, "the saved page")
    assert "The recording is saved." in web.text(), web.text()
    assert api(a, session, "GET", f"/api/v1/recordings/{rid}").json()["title"] == "Keynote, by keyboard"
    web.open("/studio")
    channel_path = re.search(r'href="(/c/[^"]+)"', chromium.driver.page_source).group(1)
    for width in (1280, 390):
        chromium.driver.set_window_size(width, 900)
        web.open(channel_path)
        link = chromium.driver.find_element(By.CSS_SELECTOR, f'a[href="/recordings/{rid}"]')
        assert link.text == "Keynote, by keyboard", link.text
        check_accessible(chromium, f"{channel_path} at {width}px")

    # Invite-only: every node refuses its media without a token; the stream's token opens it.
    assert api(a, session, "PATCH", f"/api/v1/recordings/{rid}", {"visibility": "invite-only"}).status == 200
    wait_for(lambda: all(http("GET", f"{n.base}/recordings/{rid}/master.m3u8").status == 403 for n in trio), 10,
             "every node to refuse the invite-only recording without a token")
    token = api(a, session, "GET", f"/api/v1/streams/{sid}/playback-token").json()["token"]
    web.open(channel_path)
    assert f"/recordings/{rid}" not in chromium.driver.page_source, "an invite-only recording is no past broadcast"
    # A viewer holding its playlists and a segment's URL, on every node.
    watched = {}
    for n in trio:
        playlist = http("GET", f"{n.base}/recordings/{rid}/240p/index.m3u8?token={token}")
        assert playlist.status == 200, (n.base, playlist.text)
        segment = next(line for line in playlist.text.splitlines() if line and not line.startswith("#"))
        assert http("GET", f"{n.base}/recordings/{rid}/240p/{segment}").status == 200
        watched[n.base] = (f"{n.base}/recordings/{rid}/240p/index.m3u8?token={token}", f"{n.base}/recordings/{rid}/240p/{segment}")

    # Delete: both copies' folders go; every node's next answer to the viewer is 404, and the node goes on.
    folders = [os.path.join(n.data_dir, "recordings", sid, rid) for n in (origin, standby)]
    assert all(os.path.isdir(f) for f in folders), folders
    gone = api(other, session, "DELETE", f"/api/v1/recordings/{rid}")
    assert gone.status == 204, gone.text
    wait_for(lambda: not any(os.path.exists(f) for f in folders), 10, "the origin's and the standby's copies deleted")
    for n in trio:
        playlist, segment = watched[n.base]
        wait_for(lambda: http("GET", playlist).status == 404 and http("GET", segment).status == 404, 5,
                 f"{n.base} to answer 404 for the deleted recording")
        assert http("GET", f"{n.base}/healthz").status == 200
    assert api(a, session, "GET", "/api/v1/recordings").json() == []
    assert recordings(a, sid) == []
    assert api(a, session, "GET", f"/api/v1/recordings/{rid}").status == 404
