"""Stream thumbnails end to end: the origin takes a picture of a published stream within seconds
(a JPEG of at most 640x360, served at /thumbnails/{id}.jpg); an uploaded image is decoded and
re-encoded (never served as sent) and wins over the live pictures until it is deleted; garbage,
oversized bodies and strangers are refused with clear problems, nothing kept half-made; the
studio shows the picture and uploads one through its file input."""
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
import urllib.parse

import requests
from selenium.webdriver.common.by import By

from browsers import chromium  # noqa: F401 (fixture)
from conftest import ADMIN_TOKEN, Node, free_port, http, node, postgres, postgres_server, push, wait_for  # noqa: F401 (fixture)
from test_cluster import keygen, wait_converged
from test_edge import stream_owned_by, trio  # noqa: F401 (fixture)

PASSWORD = "correct horse battery staple"


def image(tmp_path, size, ext):
    """One frame of ffmpeg's testsrc2 as a PNG, JPEG or WebP file; its path."""
    path = str(tmp_path / f"{size}.{ext}")
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}",
                    "-frames:v", "1", path], check=True)
    return path


def probe(data, tmp_path):
    """ffprobe's codec and size of JPEG bytes."""
    path = str(tmp_path / "probe.jpg")
    with open(path, "wb") as f:
        f.write(data)
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height", "-of", "json", path],
                         capture_output=True, text=True, check=True)
    s = json.loads(out.stdout)["streams"][0]
    return s["codec_name"], s["width"], s["height"]


def thumbnail(node, stream_id, **headers):
    return http("GET", f"{node.base}/thumbnails/{stream_id}.jpg", headers=headers)


def put(url, data, content_type="image/png", **kwargs):
    return requests.put(url, data=data, headers={"Content-Type": content_type, **kwargs.pop("headers", {})}, timeout=30, **kwargs)


def test_live_capture_upload_garbage_and_back_to_live(node, tmp_path):  # noqa: F811
    s = node.create_stream("Thumbs")
    sid = s["id"]
    assert thumbnail(node, sid).status == 404
    assert thumbnail(node, "nosuchstream0").status == 404
    assert thumbnail(node, "../../etc/passwd").status == 404

    # A picture of the live stream within seconds of its start.
    pub = push(node, s["key"], seconds=40, size="1280x720")
    try:
        node.wait_playable(sid)
        r = wait_for(lambda: (lambda r: r if r.status == 200 else None)(thumbnail(node, sid)), 12, "a thumbnail of the live stream")
        # The home page names the picture (only now that it exists).
        home = http("GET", node.base + "/").text
        assert f'<img class="thumb" src="/thumbnails/{sid}.jpg" alt="" width="320" height="180" loading="lazy">' in home, home
    finally:
        pub.kill()
        pub.wait()
    assert r.headers["Content-Type"] == "image/jpeg"
    assert r.headers["Cache-Control"] == "public, max-age=60"
    live_etag = r.headers["ETag"]
    assert probe(r.body, tmp_path) == ("mjpeg", 640, 360)
    assert thumbnail(node, sid, **{"If-None-Match": live_etag}).status == 304
    # Kept in the data folder, closed to other users.
    folder = os.path.join(node.data_dir, "thumbnails")
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.join(folder, f"{sid}.jpg")).st_mode) == 0o600

    # An upload (operator API): decoded and re-encoded, and shown instead of the live picture.
    url = f"{node.base}/api/streams/{sid}/thumbnail"
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with open(image(tmp_path, "1000x1000", "png"), "rb") as f:
        png = f.read()
    assert put(url, png).status_code == 401
    r = put(url, png, headers=auth)
    assert r.status_code == 204, r.text
    r = thumbnail(node, sid)
    assert r.status == 200 and r.body != png and r.body[:3] == b"\xff\xd8\xff"
    assert probe(r.body, tmp_path) == ("mjpeg", 360, 360)
    uploaded = r.body
    uploaded_etag = r.headers["ETag"]
    assert uploaded_etag != live_etag

    # Garbage: 400 with the reason; a body over 5 MiB: 413; another type: 415. Nothing is kept.
    cases = [
        (b"", "image/png", 400, "empty"),
        (os.urandom(5000), "image/jpeg", 400, "not a JPEG, PNG or WebP image"),
        (png[: len(png) // 2], "image/png", 400, "could not be decoded"),
        (b"GIF89a" + os.urandom(100), "image/png", 400, "not a JPEG, PNG or WebP image"),
        (png[:16] + bytes([0, 1, 0x86, 0xA0, 0, 1, 0x86, 0xA0]) + png[24:], "image/png", 400, "100000x100000"),
        (os.urandom(6 * 1024 * 1024), "image/png", 413, "5 MiB"),
        (png, "text/plain", 415, "image/jpeg, image/png or image/webp"),
    ]
    for body, ctype, status, words in cases:
        r = put(url, body, content_type=ctype, headers=auth)
        assert r.status_code == status, (status, r.text)
        assert r.headers["Content-Type"] == "application/problem+json" and words in r.json()["detail"], r.text
    r = thumbnail(node, sid)
    assert r.body == uploaded and r.headers["ETag"] == uploaded_etag
    # The folder keeps the live pictures only: an upload is kept with the stream's record.
    assert sorted(os.listdir(folder)) == [f"{sid}.jpg"]

    # Back to the live pictures.
    r = requests.delete(url, headers=auth, timeout=10)
    assert r.status_code == 204, r.text
    r = thumbnail(node, sid)
    assert r.status == 200 and r.headers["ETag"] == live_etag
    assert probe(r.body, tmp_path) == ("mjpeg", 640, 360)


def sign_up(base, email, name):
    s = requests.Session()
    s.get(base + "/signup", timeout=10)
    r = s.post(base + "/signup", data={"csrf": s.cookies["st_csrf"], "email": email, "name": name, "password": PASSWORD},
               allow_redirects=False, timeout=30)
    assert r.status_code in (302, 303), r.text
    return s


def token_for(base, email):
    r = requests.post(base + "/api/v1/auth/token", json={"email": email, "password": PASSWORD, "name": "thumbs"}, timeout=30)
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_public_api_owner_only_and_the_studio(node, chromium, tmp_path):  # noqa: F811
    ann_browser = sign_up(node.base, "ann@example.com", "Ann")
    sign_up(node.base, "bob@example.com", "Bob")
    ann, bob = token_for(node.base, "ann@example.com"), token_for(node.base, "bob@example.com")
    r = requests.post(node.base + "/api/v1/streams", json={"title": "Ann's show"}, headers=ann, timeout=10)
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    url = f"{node.base}/api/v1/streams/{sid}/thumbnail"
    with open(image(tmp_path, "1000x1000", "png"), "rb") as f:
        png = f.read()

    # Strangers: no credentials 401, another account 404 (not even confirmed to exist), a
    # session cookie without the anti-forgery header 403.
    assert put(url, png).status_code == 401
    assert put(url, png, headers=bob).status_code == 404
    assert requests.delete(url, headers=bob, timeout=10).status_code == 404
    assert ann_browser.put(url, data=png, headers={"Content-Type": "image/png"}, timeout=10).status_code == 403
    assert thumbnail(node, sid).status == 404
    # The owner, with a token, and with the session and its CSRF header.
    assert put(url, png, headers=ann).status_code == 204
    assert thumbnail(node, sid).status == 200
    r = ann_browser.put(url, data=png, headers={"Content-Type": "image/png", "X-CSRF-Token": ann_browser.cookies["st_csrf"]}, timeout=10)
    assert r.status_code == 204, r.text

    # The studio shows it, and uploads another through its file input.
    b = chromium
    b.get(node.base + "/signin")
    b.driver.find_element(By.NAME, "email").send_keys("ann@example.com")
    b.driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    b.driver.find_element(By.XPATH, "//button[normalize-space()='Sign in']").click()
    wait_for(lambda: urllib.parse.urlsplit(b.driver.current_url).path != "/signin", 10, "signed in")
    b.get(node.base + "/studio")
    img = f"img[src^='/thumbnails/{sid}.jpg']"
    wait_for(lambda: b.js(f"const i = document.querySelector(\"{img}\"); return i && i.complete && i.naturalWidth"), 10,
             "the studio's thumbnail") == 360
    wide = image(tmp_path, "1280x720", "jpg")
    b.driver.find_element(By.CSS_SELECTOR, f"form[data-stream='{sid}'] input[type=file]").send_keys(wide)
    b.js("window.__before = true")
    b.driver.find_element(By.CSS_SELECTOR, f"form[data-stream='{sid}'] button[type=submit]").click()
    wait_for(lambda: b.js("return !window.__before && document.readyState === 'complete'"), 15, "the studio to reload")
    assert wait_for(lambda: b.js(f"const i = document.querySelector(\"{img}\"); return i && i.complete && i.naturalWidth"), 10,
                    "the new thumbnail") == 640
    r = thumbnail(node, sid)
    assert probe(r.body, tmp_path) == ("mjpeg", 640, 360)
    with open(wide, "rb") as f:
        assert r.body != f.read()
    # A refused file says why, on the page.
    bad = str(tmp_path / "not-an-image.png")
    with open(bad, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + os.urandom(300))
    b.driver.find_element(By.CSS_SELECTOR, f"form[data-stream='{sid}'] input[type=file]").send_keys(bad)
    b.driver.find_element(By.CSS_SELECTOR, f"form[data-stream='{sid}'] button[type=submit]").click()
    wait_for(lambda: "Not saved:" in b.driver.find_element(By.CSS_SELECTOR, f"form[data-stream='{sid}'] [role=status]").text, 10,
             "the refusal on the page")
    # "Use the live picture": the upload is gone, and with no live picture taken, no image is named.
    b.js("window.__before = true")
    b.driver.find_element(By.CSS_SELECTOR, f"button[data-thumbnail-live='{sid}']").click()
    wait_for(lambda: b.js("return !window.__before && document.readyState === 'complete'"), 15, "the studio to reload")
    assert b.driver.find_elements(By.CSS_SELECTOR, img) == []
    assert "No thumbnail yet" in b.driver.find_element(By.TAG_NAME, "body").text
    assert thumbnail(node, sid).status == 404

    # A private stream's picture is a frame of it: strangers get 403; the studio names it with
    # its owner's playback token, and it shows there.
    r = requests.post(node.base + "/api/v1/streams", json={"title": "Ann's secret", "visibility": "invite-only"}, headers=ann, timeout=10)
    secret = r.json()["id"]
    assert put(f"{node.base}/api/v1/streams/{secret}/thumbnail", png, headers=ann).status_code == 204
    assert thumbnail(node, secret).status == 403
    b.get(node.base + "/studio")
    img = f"img[src^='/thumbnails/{secret}.jpg']"
    assert wait_for(lambda: b.js(f"const i = document.querySelector(\"{img}\"); return i && i.complete && i.naturalWidth"), 10,
                    "the private stream's picture in the studio") == 360
    src = b.js(f"return document.querySelector(\"{img}\").getAttribute('src')")
    assert "token=" in src
    assert http("GET", node.base + src).headers["Cache-Control"].startswith("private")


def test_a_node_that_is_not_the_origin_serves_the_origins_thumbnail(trio):  # noqa: F811
    """The picture is taken on the stream's origin (b, the broadcaster pushing to a); a and c
    answer with the origin's bytes through the edge, keeping no file of their own."""
    a, b, c = trio["a"], trio["b"], trio["c"]
    s = stream_owned_by(trio, "b")
    sid = s["id"]
    pub = push(a, s["key"], seconds=25, size="640x360")
    try:
        b.wait_playable(sid)
        r = wait_for(lambda: (lambda r: r if r.status == 200 else None)(thumbnail(b, sid)), 15, "the origin's thumbnail")
    finally:
        pub.kill()
        pub.wait()
    for n in (a, c):
        e = thumbnail(n, sid)
        assert e.status == 200 and e.body == r.body and e.headers["Content-Type"] == "image/jpeg", (n.base, e.status)
        assert not os.path.exists(os.path.join(n.data_dir, "thumbnails", f"{sid}.jpg"))
    assert thumbnail(c, "nosuchstream0").status == 404


def version_of(jpeg):
    """An uploaded picture's version, as every node names it: the first 64 bits of its SHA-256."""
    return hashlib.sha256(jpeg).hexdigest()[:16]


def cluster_of(names, extra=()):
    """Nodes joined in one cluster, started in order (the first is the seed); `stop_all` ends them."""
    key, root, seed = keygen(), tempfile.mkdtemp(prefix="streamtube-thumbs-"), free_port()
    nodes = {}
    for i, name in enumerate(names):
        args = ["--node-id", name, "--cluster-key", key, "--gossip-preset", "local", "--ladder", "none", *extra]
        if i:
            args += ["--seeds", f"127.0.0.1:{seed}"]
        nodes[name] = Node(os.path.join(root, name), args, gossip_port=seed if i == 0 else None).start()
    wait_converged(list(nodes.values()), list(names))
    return nodes


def stop_all(nodes):
    for n in nodes.values():
        n.stop()
    shutil.rmtree(os.path.dirname(next(iter(nodes.values())).data_dir), ignore_errors=True)


def holders(node, sid):
    r = http("GET", f"{node.base}/api/route/{sid}").json()
    return {r["origin"], *r.get("standbys", [])}


def test_an_upload_on_any_node_is_the_picture_on_every_node_with_databases_of_their_own(tmp_path):
    """Four nodes, each with its own SQLite file: the picture uploaded on one node (not the
    stream's maker) goes with the record to the stream's holders and is asked of them by a node
    that is not one; the same bytes and ETag everywhere, kept for good at the versioned URL;
    removed on another node, no node shows it any more."""
    nodes = cluster_of(["a", "b", "c", "d"])
    try:
        a, c = nodes["a"], nodes["c"]
        # A stream d does not hold: d knows nothing of it until asked.
        for i in range(40):
            s = a.create_stream(f"Pictured {i}")
            if "d" not in holders(a, s["id"]):
                break
        sid = s["id"]
        with open(image(tmp_path, "800x600", "png"), "rb") as f:
            png = f.read()
        r = put(f"{c.base}/api/streams/{sid}/thumbnail", png, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert r.status_code == 204, r.text
        shown = thumbnail(c, sid)
        assert shown.status == 200 and shown.body[:3] == b"\xff\xd8\xff"
        version = version_of(shown.body)
        assert shown.headers["ETag"] == f'"u-{version}"'
        for n in nodes.values():
            got = wait_for(lambda: (lambda r: r if r.status == 200 and r.body == shown.body else None)(thumbnail(n, sid)), 10,
                           f"the uploaded picture on {n.base}")
            assert got.headers["ETag"] == shown.headers["ETag"] and got.headers["Cache-Control"] == "public, max-age=60"
            v = http("GET", f"{n.base}/thumbnails/{sid}.jpg?v={version}")
            assert v.body == shown.body and v.headers["Cache-Control"] == "public, max-age=31536000, immutable", n.base
            assert thumbnail(n, sid, **{"If-None-Match": shown.headers["ETag"]}).status == 304
            # The share card names the versioned picture once the record is here (the page as this node
            # makes it, not the nearest edge's; the picture may have come from the origin before the record).
            tag = f'<meta property="og:image" content="{n.base}/thumbnails/{sid}.jpg?v={version}">'
            wait_for(lambda: tag in http("GET", f"{n.base}/watch/{sid}?routed=1").text, 10, f"the versioned card on {n.base}")
        # The holders keep it in their own databases (placed with the record), not in the live pictures' folder.
        for name in holders(a, sid):
            assert not os.path.exists(os.path.join(nodes[name].data_dir, "thumbnails", f"{sid}.jpg"))

        # Removed on another node: gone everywhere (no live picture was taken: 404).
        remover = nodes["b"]
        r = requests.delete(f"{remover.base}/api/streams/{sid}/thumbnail", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
        assert r.status_code == 204, r.text
        for n in nodes.values():
            wait_for(lambda: thumbnail(n, sid).status == 404, 10, f"no picture on {n.base}")
    finally:
        stop_all(nodes)


def test_nodes_sharing_postgres_show_an_upload_in_every_page_and_a_live_picture_after_its_removal(postgres, tmp_path):
    """Two nodes on one PostgreSQL database: a broadcaster's upload on b is the picture on a, in
    the thumbnail route and in the home, upcoming, channel and studio pages there (named from the
    record, versioned); removed on a, both go back to the live picture, which the origin takes
    while the stream is live, and which an upload wins over again."""
    nodes = cluster_of(["a", "b"], extra=["--database", postgres])
    try:
        a, b = nodes["a"], nodes["b"]
        ann = sign_up(a.base, "ann@example.com", "Ann")
        token = token_for(a.base, "ann@example.com")
        later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 30 * 86400))
        r = requests.post(a.base + "/api/v1/streams", json={"title": "Ann's evening", "startsAt": later, "timeZone": "Europe/Paris"},
                          headers=token, timeout=10)
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        with open(image(tmp_path, "640x480", "png"), "rb") as f:
            png = f.read()
        r = put(f"{b.base}/api/v1/streams/{sid}/thumbnail", png, headers=token)
        assert r.status_code == 204, r.text
        shown = thumbnail(b, sid)
        version = version_of(shown.body)
        src = f"/thumbnails/{sid}.jpg?v={version}"
        got = wait_for(lambda: (lambda r: r if r.status == 200 and r.body == shown.body else None)(thumbnail(a, sid)), 5, "the upload on a")
        assert got.headers["ETag"] == f'"u-{version}"'
        channel = re.search(r'href="(/c/[^"]+)"', ann.get(a.base + "/studio", timeout=10).text).group(1)
        for n in (a, b):
            for path in ("/", "/upcoming", channel):
                page = wait_for(lambda: (lambda t: t if src in t else None)(http("GET", n.base + path).text), 5, f"{path} on {n.base}")
                assert f'<img class="thumb" src="{src}" alt="" width="320" height="180" loading="lazy">' in page, path
            studio = ann.get(n.base + "/studio", timeout=10).text
            assert f'src="{src}"' in studio and "data-thumbnail-live" in studio
            assert f'<meta property="og:image" content="{n.base}{src}">' in http("GET", n.base + channel).text

        # Removed on a: no picture anywhere (the stream is not live), and the pages name none.
        r = requests.delete(f"{a.base}/api/v1/streams/{sid}/thumbnail", headers=token, timeout=10)
        assert r.status_code == 204, r.text
        for n in (a, b):
            wait_for(lambda: thumbnail(n, sid).status == 404, 5, f"no picture on {n.base}")
            assert f"/thumbnails/{sid}.jpg" not in http("GET", n.base + "/upcoming").text
            assert "No thumbnail yet" in ann.get(n.base + "/studio", timeout=10).text
            assert "og:image" not in http("GET", n.base + channel).text

        # Live: the origin's picture on both nodes; an upload wins over it, its removal brings it back.
        key = ann.get(a.base + "/studio", timeout=10).text
        key = re.search(r'id="key-' + sid + r'">([^<]+)<', key).group(1)
        origin = nodes[http("GET", f"{a.base}/api/route/{sid}").json()["origin"]]
        other = b if origin is a else a
        pub = push(other, key, seconds=30, size="1280x720")
        try:
            live = wait_for(lambda: (lambda r: r if r.status == 200 else None)(thumbnail(origin, sid)), 20, "the live picture")
            assert probe(live.body, tmp_path) == ("mjpeg", 640, 360)
            e = thumbnail(other, sid)
            assert e.status == 200 and e.body == live.body
            assert put(f"{other.base}/api/v1/streams/{sid}/thumbnail", png, headers=token).status_code == 204
            for n in (a, b):
                wait_for(lambda: thumbnail(n, sid).body == shown.body, 5, f"the upload over the live picture on {n.base}")
            assert requests.delete(f"{origin.base}/api/v1/streams/{sid}/thumbnail", headers=token, timeout=10).status_code == 204
            again = wait_for(lambda: (lambda r: r if r.status == 200 and r.headers["ETag"].startswith('"l-') else None)(thumbnail(origin, sid)),
                             5, "the live picture again on the origin")
            wait_for(lambda: thumbnail(other, sid).body == again.body, 5, "the origin's live picture on the other node")
        finally:
            pub.kill()
            pub.wait()
    finally:
        stop_all(nodes)
