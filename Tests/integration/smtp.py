"""A real SMTP server for the integration tests: aiosmtpd on a free port on 127.0.0.1, keeping
every message it accepts, so a test can read the mail the node sends (a verification link, a
password reset) the way a person would.

    from smtp import SMTPServer, TestCA

    with SMTPServer() as smtp:                    # plaintext relay, no AUTH
        node = Node(d, extra_args=smtp.node_args()).start()
        ...                                       # something that sends mail to a@example.com
        msg = smtp.wait_for_message("a@example.com", timeout=10)
        link = extract_url(msg, r"/verify\\?token=")

    ca = TestCA(tmp_path)                         # a CA and a certificate for localhost/127.0.0.1
    with SMTPServer(starttls=ca, user="mailer", password="s3cret", require_starttls=True) as smtp:
        args = smtp.node_args()                   # --smtp-host localhost --smtp-security starttls
                                                  # --smtp-ca-file CA --smtp-user ... --smtp-password ...

Options of `SMTPServer`:
  - `starttls=TestCA`: offer STARTTLS with the CA's server certificate (else STARTTLS is not offered);
  - `implicit_tls=TestCA`: TLS from the first byte (like port 465) instead;
  - `user`, `password`: offer AUTH PLAIN and LOGIN (`mechanisms=("LOGIN",)` for LOGIN only) and
    accept only these credentials; `auth_required` (default: True when a user is given) refuses
    MAIL before AUTH; AUTH is offered over plaintext too unless `starttls` is given;
  - `require_starttls`: refuse every command but EHLO/QUIT/STARTTLS before STARTTLS.

What it keeps: `smtp.messages`, a list of `Received` (envelope `mail_from`, `rcpt_tos`, the raw
`data` bytes, and `message`, an `email.message.EmailMessage` parsed with the default policy, so
`message["Subject"]` and display names come back decoded). `smtp.auth_attempts` counts AUTH
tries. Helpers: `wait_for_message(address, timeout)`, `messages_to(address)`, `body_text(msg)`,
`extract_url(msg, pattern)`.
"""
import datetime
import email
import email.policy
import ipaddress
import os
import re
import ssl
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from conftest import free_port


class TestCA:
    """A throwaway certificate authority and a server certificate it signed, valid for
    `localhost` and 127.0.0.1, written as PEM files in `folder`: `ca_file` (give it to the
    client, e.g. --smtp-ca-file), `cert_file` and `key_file` (the server's)."""

    __test__ = False  # not a pytest test class

    def __init__(self, folder, name="StreamTube test CA"):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        os.makedirs(folder, exist_ok=True)
        now = datetime.datetime.now(datetime.timezone.utc)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
              .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
              .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
              .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                           data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                           crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
              .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
              .sign(ca_key, hashes.SHA256()))
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
                .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                            x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                               critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
                .sign(ca_key, hashes.SHA256()))
        self.ca_file = os.path.join(folder, "ca.pem")
        self.cert_file = os.path.join(folder, "server.pem")
        self.key_file = os.path.join(folder, "server.key")
        with open(self.ca_file, "wb") as f:
            f.write(ca.public_bytes(serialization.Encoding.PEM))
        with open(self.cert_file, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(self.key_file, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))

    def server_context(self):
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx


class Received:
    """One accepted message: the envelope and the parsed message."""

    def __init__(self, mail_from, rcpt_tos, data):
        self.mail_from = mail_from
        self.rcpt_tos = list(rcpt_tos)
        self.data = data
        self.message = email.message_from_bytes(data, policy=email.policy.default)

    def __repr__(self):
        return f"<Received from {self.mail_from} to {self.rcpt_tos}: {self.message['Subject']!r}>"


class _Handler:
    def __init__(self, server):
        self.server = server

    async def handle_DATA(self, server, session, envelope):
        with self.server._cond:
            self.server.messages.append(Received(envelope.mail_from, envelope.rcpt_tos, envelope.original_content
                                                 or envelope.content))
            self.server._cond.notify_all()
        return "250 2.0.0 Ok: queued"


class SMTPServer:
    def __init__(self, starttls=None, implicit_tls=None, user=None, password=None, require_starttls=False,
                 auth_required=None, mechanisms=("PLAIN", "LOGIN")):
        self.host = "127.0.0.1"
        self.port = free_port()
        self.ca = starttls or implicit_tls
        self.starttls = starttls is not None
        self.implicit_tls = implicit_tls is not None
        self.user, self.password = user, password
        self.messages = []
        self.auth_attempts = 0
        self._cond = threading.Condition()
        kwargs = {}
        if user is not None:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_required"] = True if auth_required is None else auth_required
            kwargs["auth_require_tls"] = self.starttls
            excluded = [m for m in ("PLAIN", "LOGIN") if m not in mechanisms]
            if excluded:
                kwargs["auth_exclude_mechanism"] = excluded
        if starttls is not None:
            kwargs["tls_context"] = starttls.server_context()
            kwargs["require_starttls"] = require_starttls
        if implicit_tls is not None:
            kwargs["ssl_context"] = implicit_tls.server_context()
            kwargs["server_hostname"] = "localhost"
        self.controller = Controller(_Handler(self), hostname=self.host, port=self.port, **kwargs)

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        self.auth_attempts += 1
        ok = isinstance(auth_data, LoginPassword) and auth_data.login == self.user.encode() \
            and auth_data.password == self.password.encode()
        return AuthResult(success=ok, handled=False)

    def start(self):
        self.controller.start()
        return self

    def stop(self):
        self.controller.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def node_args(self, host=None):
        """The `serve`/`mail-test` options that send mail here (host: `localhost` when TLS is on,
        which the certificate names; 127.0.0.1 otherwise)."""
        host = host or ("localhost" if self.ca else self.host)
        security = "tls" if self.implicit_tls else "starttls" if self.starttls else "none"
        args = ["--smtp-host", host, "--smtp-port", str(self.port), "--smtp-security", security]
        if self.ca:
            args += ["--smtp-ca-file", self.ca.ca_file]
        if self.user is not None:
            args += ["--smtp-user", self.user, "--smtp-password", self.password]
        return args

    def messages_to(self, address):
        with self._cond:
            return [m for m in self.messages if address.lower() in (r.lower() for r in m.rcpt_tos)]

    def wait_for_message(self, address, timeout=10):
        """The first message to `address` (waits up to `timeout` s for it to arrive)."""
        deadline = time.time() + timeout
        with self._cond:
            while True:
                found = [m for m in self.messages if address.lower() in (r.lower() for r in m.rcpt_tos)]
                if found:
                    return found[0]
                left = deadline - time.time()
                if left <= 0:
                    raise AssertionError(f"no mail to {address} within {timeout} s (got: {self.messages})")
                self._cond.wait(left)


def body_text(received):
    """The text of a message (a `Received` or an EmailMessage), transfer encoding undone."""
    msg = received.message if isinstance(received, Received) else received
    part = msg.get_body(preferencelist=("plain", "html")) or msg
    return part.get_content()


def extract_url(received, pattern=r""):
    """The first http(s) URL in the message's body that matches `pattern` (a regex searched
    in the URL); fails if there is none."""
    text = body_text(received)
    for url in re.findall(r"https?://[^\s<>\"')]+", text):
        if re.search(pattern, url):
            return url
    raise AssertionError(f"no URL matching {pattern!r} in:\n{text}")
