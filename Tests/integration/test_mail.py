"""The platform's mail, end to end: `streamtube mail-test` (serve's settings, the Mail target's
SMTP client) against a real aiosmtpd server (smtp.py): plaintext to a local relay, STARTTLS
with AUTH and the test's CA, implicit TLS, an untrusted certificate, a wrong password, a server
without STARTTLS, non-ASCII headers, a hostile server, and the outbox folder when no SMTP
server is configured."""
import email
import email.policy
import json
import os
import socket
import stat
import subprocess
import threading

import pytest

from conftest import binary, free_port
from smtp import SMTPServer, TestCA, body_text

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # implicit TLS is TLS

SENDER = "StreamTube <noreply@stream.example>"


def mail_test(to, *args, data_dir, timeout=60):
    """Runs `streamtube mail-test --to TO ARGS` with no STREAMTUBE_* environment of the caller's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMTUBE_") or k == "STREAMTUBE_BIN"}
    env.pop("STREAMTUBE_BIN", None)
    return subprocess.run([binary(), "mail-test", "--to", to, "--data-dir", data_dir, "--mail-from", SENDER, *args],
                          capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def ca(tmp_path):
    return TestCA(str(tmp_path / "ca"))


def test_plaintext_to_a_local_relay(tmp_path):
    with SMTPServer() as smtp:
        out = mail_test("alice@example.com", *smtp.node_args(), data_dir=str(tmp_path))
        assert out.returncode == 0, out.stderr
        assert f"127.0.0.1:{smtp.port}" in out.stdout and "250" in out.stdout, out.stdout
        got = smtp.wait_for_message("alice@example.com")
    assert got.mail_from == "noreply@stream.example"
    assert got.rcpt_tos == ["alice@example.com"]
    msg = got.message
    assert msg["Subject"] == "StreamTube mail test"
    assert msg["From"].addresses[0].display_name == "StreamTube"
    assert msg["Message-ID"].endswith("@stream.example>")
    assert msg["Date"] and msg["MIME-Version"] == "1.0"
    assert msg.get_content_type() == "text/plain" and msg.get_content_charset() == "utf-8"
    assert msg["Content-Transfer-Encoding"] == "quoted-printable"
    assert "mail-test" in body_text(got)
    # CRLF throughout, no line over 998.
    assert b"\n" not in got.data.replace(b"\r\n", b"")
    assert all(len(line) <= 998 for line in got.data.split(b"\r\n"))
    assert not os.path.exists(tmp_path / "outbox")


def test_starttls_and_auth_with_the_tests_ca(ca, tmp_path):
    with SMTPServer(starttls=ca, user="mailer", password="pa55-word", require_starttls=True) as smtp:
        out = mail_test("bob@example.com", *smtp.node_args(), data_dir=str(tmp_path))
        assert out.returncode == 0, out.stderr
        got = smtp.wait_for_message("bob@example.com")
        assert smtp.auth_attempts == 1
    assert got.message["Subject"] == "StreamTube mail test"
    assert "pa55-word" not in out.stdout + out.stderr


def test_auth_login_when_plain_is_not_offered(ca, tmp_path):
    with SMTPServer(starttls=ca, user="mailer", password="pa55-word", mechanisms=("LOGIN",)) as smtp:
        out = mail_test("bob@example.com", *smtp.node_args(), data_dir=str(tmp_path))
        assert out.returncode == 0, out.stderr
        smtp.wait_for_message("bob@example.com")


def test_implicit_tls(ca, tmp_path):
    with SMTPServer(implicit_tls=ca, user="mailer", password="pa55-word") as smtp:
        # By address: the certificate's IP address is what is checked.
        out = mail_test("carol@example.com", *smtp.node_args(host="127.0.0.1"), data_dir=str(tmp_path))
        assert out.returncode == 0, out.stderr
        smtp.wait_for_message("carol@example.com")


def test_untrusted_certificate_is_refused_and_nothing_sent(ca, tmp_path):
    with SMTPServer(starttls=ca, user="mailer", password="pa55-word") as smtp:
        args = [a for a in smtp.node_args() if a != ca.ca_file and a != "--smtp-ca-file"]
        out = mail_test("dave@example.com", *args, data_dir=str(tmp_path))
        assert out.returncode != 0
        assert "TLS" in out.stderr and f"localhost:{smtp.port}" in out.stderr, out.stderr
        assert "certificate" in out.stderr.lower(), out.stderr
        assert smtp.messages == [] and smtp.auth_attempts == 0
    assert "pa55-word" not in out.stdout + out.stderr


def test_certificate_from_another_ca_is_refused(ca, tmp_path):
    other = TestCA(str(tmp_path / "other"), name="Someone else's CA")
    with SMTPServer(starttls=ca) as smtp:
        args = [other.ca_file if a == ca.ca_file else a for a in smtp.node_args()]
        out = mail_test("dave@example.com", *args, data_dir=str(tmp_path))
        assert out.returncode != 0 and "TLS" in out.stderr, out.stderr
        assert smtp.messages == []


def test_wrong_password_names_auth_and_hides_the_password(ca, tmp_path):
    with SMTPServer(starttls=ca, user="mailer", password="right-one") as smtp:
        args = [("wrong-Pa55word" if a == "right-one" else a) for a in smtp.node_args()]
        out = mail_test("erin@example.com", *args, "--log-level", "trace", data_dir=str(tmp_path))
        assert out.returncode != 0
        assert "AUTH" in out.stderr and "535" in out.stderr, out.stderr
        assert f"localhost:{smtp.port}" in out.stderr
        assert "wrong-Pa55word" not in out.stdout + out.stderr
        assert smtp.messages == []


def test_server_without_starttls_is_refused_when_starttls_is_required(tmp_path):
    with SMTPServer() as smtp:
        args = smtp.node_args()
        args[args.index("--smtp-security") + 1] = "starttls"
        out = mail_test("frank@example.com", *args, data_dir=str(tmp_path))
        assert out.returncode != 0
        assert "STARTTLS" in out.stderr and "nothing was sent" in out.stderr, out.stderr
        assert smtp.messages == []


def test_password_over_plaintext_to_another_host_is_refused(tmp_path):
    out = mail_test("gina@example.com", "--smtp-host", "mail.example.com", "--smtp-security", "none",
                    "--smtp-user", "u", "--smtp-password", "plain-secret", data_dir=str(tmp_path))
    assert out.returncode != 0
    assert "in the clear" in out.stderr, out.stderr
    assert "plain-secret" not in out.stdout + out.stderr


def test_non_ascii_subject_and_names_arrive_decoded(tmp_path):
    with SMTPServer() as smtp:
        out = mail_test("Zoë Ünïcode <zoe@example.com>", *smtp.node_args(),
                        "--mail-from", "Ströme & Co. — Ünïcode <noreply@stream.example>", data_dir=str(tmp_path))
        assert out.returncode == 0, out.stderr
        got = smtp.wait_for_message("zoe@example.com")
    msg = got.message
    assert msg["From"].addresses[0].display_name == "Ströme & Co. — Ünïcode"
    assert msg["To"].addresses[0].display_name == "Zoë Ünïcode"
    assert msg["To"].addresses[0].addr_spec == "zoe@example.com"
    # Seven-bit on the wire: the names travel as RFC 2047 encoded words.
    assert all(b < 0x80 for b in got.data)
    assert b"=?utf-8?B?" in got.data


def test_header_injection_is_refused(tmp_path):
    with SMTPServer() as smtp:
        out = mail_test("x@example.com\r\nBcc: victim@example.com", *smtp.node_args(), data_dir=str(tmp_path))
        assert out.returncode != 0 and "line break" in out.stderr, out.stderr
        assert smtp.messages == []


def test_a_hostile_server_cannot_make_the_client_buffer_without_bound(tmp_path):
    """A server whose greeting never ends (an endless multi-line reply): the client gives up
    at its bound on lines, with a clear error, instead of reading forever."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", free_port()))
    listener.listen(1)
    stop = threading.Event()

    def serve():
        conn, _ = listener.accept()
        with conn:
            try:
                while not stop.is_set():
                    conn.sendall(b"220-" + b"x" * 100 + b"\r\n")
            except OSError:
                pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        out = mail_test("h@example.com", "--smtp-host", "127.0.0.1", "--smtp-port", str(listener.getsockname()[1]),
                        "--smtp-security", "none", data_dir=str(tmp_path), timeout=30)
    finally:
        stop.set()
        listener.close()
    assert out.returncode != 0
    assert "more than 100 lines" in out.stderr, out.stderr


def test_outbox_when_no_smtp_server_is_set(tmp_path):
    data = tmp_path / "data"
    out = mail_test("ivy@example.com", "--log-format", "json", data_dir=str(data))
    assert out.returncode == 0, out.stderr
    outbox = data / "outbox"
    assert stat.S_IMODE(os.stat(outbox).st_mode) == 0o700
    files = list(outbox.iterdir())
    assert len(files) == 1 and files[0].suffix == ".eml", files
    assert stat.S_IMODE(os.stat(files[0]).st_mode) == 0o600
    assert str(files[0]) in out.stdout
    raw = files[0].read_bytes()
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["To"].addresses[0].addr_spec == "ivy@example.com"
    assert msg["Subject"] == "StreamTube mail test"
    assert "mail-test" in msg.get_content()
    # The log says where and to whom, never the body.
    records = [json.loads(line) for line in out.stderr.splitlines() if line.startswith("{")]
    written = [r for r in records if r["msg"] == "mail written to the outbox"]
    assert len(written) == 1, out.stderr
    assert written[0]["mail.path"] == str(files[0]) and written[0]["mail.to"] == "ivy@example.com"
    assert "mail-test" not in out.stderr and "reach people" not in out.stderr
