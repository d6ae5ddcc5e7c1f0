from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import re
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from backend.core.errors import AppError
from backend.security.certs import PERMITTED_NETWORKS, LocalCA, is_private_address


@pytest.fixture
def ca(tmp_path: Path) -> LocalCA:
    return LocalCA(tmp_path / "tls")


def verify(ca_cert: x509.Certificate, leaf: x509.Certificate, name: x509.GeneralName) -> None:
    verifier = PolicyBuilder().store(Store([ca_cert])).build_server_verifier(name)  # type: ignore[arg-type]
    verifier.verify(leaf, [])


def ip(address: str) -> x509.IPAddress:
    return x509.IPAddress(ipaddress.ip_address(address))


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def signed_by_ca(ca: LocalCA, san: x509.GeneralName, subject: x509.Name | None = None,
                 key: ec.EllipticCurvePrivateKey | None = None) -> x509.Certificate:
    """A leaf made with the CA's own key, as somebody holding a copy of ca.key could."""
    ca_cert = ca.ca()
    ca_key = serialization.load_pem_private_key(ca.ca_key_file.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = key or ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    return (x509.CertificateBuilder()
            .subject_name(subject or x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "rogue")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))


def test_private_addresses() -> None:
    for address in ("192.168.1.20", "10.0.0.1", "172.16.0.1", "172.31.255.254", "169.254.3.4", "100.64.0.1",
                    "127.0.0.1", "fe80::1", "fd12::3", "::1"):
        assert is_private_address(address), address
    for address in ("8.8.8.8", "172.32.0.1", "192.169.0.1", "2001:db8::1", "", "localhost", "example.com",
                    "192.168.1.256"):
        assert not is_private_address(address), address


def test_leaf_verifies_for_its_address_only(ca: LocalCA) -> None:
    issued = ca.server_certificate("192.168.1.20")
    assert issued.address == "192.168.1.20" and issued.cert_file == ca.cert_file
    leaf, ca_cert = load(issued.cert_file), ca.ca()
    verify(ca_cert, leaf, ip("192.168.1.20"))
    with pytest.raises(VerificationError):
        verify(ca_cert, leaf, ip("192.168.1.21"))
    with pytest.raises(VerificationError):
        verify(ca_cert, leaf, x509.DNSName("gridless.local"))
    # the key on disk belongs to the certificate
    key = serialization.load_pem_private_key(issued.key_file.read_bytes(), password=None)
    assert key.public_key() == leaf.public_key()
    # a short-lived server certificate, as Apple platforms require
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert dt.timedelta(days=300) < lifetime <= dt.timedelta(days=398)


def test_ipv6_leaf(ca: LocalCA) -> None:
    leaf = load(ca.server_certificate("fe80::1").cert_file)
    verify(ca.ca(), leaf, ip("fe80::1"))


def test_public_address_is_refused(ca: LocalCA) -> None:
    for address in ("8.8.8.8", "2606:4700::1111", "example.com", ""):
        with pytest.raises(AppError):
            ca.server_certificate(address)
    assert not ca.cert_file.exists() and not ca.key_file.exists()


def test_reuse_for_same_address_and_reissue_on_change(ca: LocalCA) -> None:
    ca.server_certificate("192.168.1.20")
    first_cert, first_key = ca.cert_file.read_bytes(), ca.key_file.read_bytes()
    ca_before = ca.ca_file.read_bytes()

    ca.server_certificate("192.168.1.20")
    assert ca.cert_file.read_bytes() == first_cert and ca.key_file.read_bytes() == first_key
    assert LocalCA(ca.folder).server_certificate("192.168.1.20").cert_file.read_bytes() == first_cert

    ca.server_certificate("10.0.0.7")
    second = load(ca.cert_file)
    assert ca.cert_file.read_bytes() != first_cert and ca.key_file.read_bytes() != first_key
    assert second.extensions.get_extension_for_class(x509.SubjectAlternativeName).value \
        .get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.7")]
    verify(ca.ca(), second, ip("10.0.0.7"))
    assert ca.ca_file.read_bytes() == ca_before  # the CA the tablets installed stays


def test_leaf_from_another_ca_is_reissued(ca: LocalCA, tmp_path: Path) -> None:
    other = LocalCA(tmp_path / "other")
    other.server_certificate("192.168.1.20")
    ca.ca()
    ca.cert_file.write_bytes(other.cert_file.read_bytes())
    ca.key_file.write_bytes(other.key_file.read_bytes())
    ca.server_certificate("192.168.1.20")
    assert ca.cert_file.read_bytes() != other.cert_file.read_bytes()
    verify(ca.ca(), load(ca.cert_file), ip("192.168.1.20"))


def test_leaf_naming_its_address_as_common_name_is_reissued(ca: LocalCA) -> None:
    """OpenSSL refuses such a leaf under the CA's DNS constraint (see the handshake tests)."""
    key = ec.generate_private_key(ec.SECP256R1())
    old = signed_by_ca(ca, ip("192.168.1.20"), x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "192.168.1.20")]),
                       key)
    ca.cert_file.write_bytes(old.public_bytes(serialization.Encoding.PEM))
    ca.key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
    leaf = load(ca.server_certificate("192.168.1.20").cert_file)
    assert leaf.serial_number != old.serial_number
    assert not any("." in str(a.value) for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME))


def test_key_files_are_private(ca: LocalCA) -> None:
    ca.server_certificate("192.168.1.20")
    for path in (ca.ca_key_file, ca.key_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert not list(ca.folder.glob("*.tmp"))


def test_ca_is_constrained(ca: LocalCA) -> None:
    cert = ca.ca()
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length == 0
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and not usage.digital_signature
    constraints = cert.extensions.get_extension_for_class(x509.NameConstraints)
    assert constraints.critical
    permitted = constraints.value.permitted_subtrees
    assert permitted is not None
    assert x509.DNSName("local") in permitted
    assert {n.value for n in permitted if isinstance(n, x509.IPAddress)} == set(PERMITTED_NETWORKS)
    assert cert.subject == cert.issuer
    assert cert.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=365 * 9)


def test_name_constraints_stop_certificates_for_the_internet(ca: LocalCA) -> None:
    ca_cert = ca.ca()
    # the same kind of certificate verifies for names inside the constraints...
    verify(ca_cert, signed_by_ca(ca, ip("192.168.7.7")), ip("192.168.7.7"))
    verify(ca_cert, signed_by_ca(ca, x509.DNSName("printer.local")), x509.DNSName("printer.local"))
    # ...and not for a public address or a public name, though signed with the real CA key
    with pytest.raises(VerificationError):
        verify(ca_cert, signed_by_ca(ca, ip("93.184.216.34")), ip("93.184.216.34"))
    with pytest.raises(VerificationError):
        verify(ca_cert, signed_by_ca(ca, x509.DNSName("example.com")), x509.DNSName("example.com"))
    with pytest.raises(VerificationError):
        verify(ca_cert, signed_by_ca(ca, ip("2606:4700::1111")), ip("2606:4700::1111"))


@pytest.mark.parametrize("broken", ["ca.pem", "ca.key", "both", "swapped_key"])
def test_unusable_ca_files_make_a_new_ca(ca: LocalCA, tmp_path: Path, broken: str) -> None:
    old_fp = ca.fingerprint()
    ca.server_certificate("192.168.1.20")
    if broken in ("ca.pem", "both"):
        ca.ca_file.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    if broken in ("ca.key", "both"):
        ca.ca_key_file.write_bytes(b"garbage")
    if broken == "swapped_key":  # a valid key, but not the one the certificate names
        other = LocalCA(tmp_path / "other")
        other.ca()
        ca.ca_key_file.write_bytes(other.ca_key_file.read_bytes())
    new_fp = ca.fingerprint()
    assert new_fp != old_fp
    assert not ca.cert_file.exists()  # the old leaf was issued by the old CA
    assert ca.fingerprint() == new_fp  # the new CA is kept
    leaf = load(ca.server_certificate("192.168.1.20").cert_file)
    verify(ca.ca(), leaf, ip("192.168.1.20"))
    assert stat.S_IMODE(ca.ca_key_file.stat().st_mode) == 0o600


def test_fingerprint(ca: LocalCA) -> None:
    fp = ca.fingerprint()
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", fp)
    assert fp.replace(":", "").lower() == hashlib.sha256(ca.ca_der()).hexdigest()
    assert LocalCA(ca.folder).fingerprint() == fp
    assert x509.load_pem_x509_certificate(ca.ca_pem()).public_bytes(serialization.Encoding.DER) == ca.ca_der()


class TLSServer:
    """Accepts connections on loopback and sends b'hello' over each completed handshake."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.errors: list[Exception] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._stop = False
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            try:
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"hello")
            except (OSError, ssl.SSLError) as exc:
                self.errors.append(exc)
                conn.close()

    def close(self) -> None:
        self._stop = True
        self.sock.close()
        self._thread.join(5)


def test_tls_handshake_on_loopback(ca: LocalCA) -> None:
    issued = ca.server_certificate("127.0.0.1")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(issued.cert_file, issued.key_file)
    server = TLSServer(server_context)
    try:
        trusting = ssl.create_default_context(cafile=str(ca.ca_file))
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw, \
                trusting.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.recv(5) == b"hello"
            peer = tls.getpeercert()
            assert peer is not None and ("IP Address", "127.0.0.1") in peer["subjectAltName"]

        # a browser that has not installed the CA refuses the server
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw, \
                pytest.raises(ssl.SSLCertVerificationError):
            ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")

        # and one that has, for another address, refuses it too
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw, \
                pytest.raises(ssl.SSLCertVerificationError):
            trusting.wrap_socket(raw, server_hostname="127.0.0.2")
    finally:
        server.close()


def test_openssl_accepts_the_chain_for_a_lan_address(ca: LocalCA) -> None:
    """The name constraints as OpenSSL applies them, for a LAN address this machine need not have:
    the chain is verified in full, only the host name check is left out."""
    issued = ca.server_certificate("192.168.1.20")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(issued.cert_file, issued.key_file)
    server = TLSServer(server_context)
    try:
        client = ssl.create_default_context(cafile=str(ca.ca_file))
        client.check_hostname = False
        assert client.verify_mode == ssl.CERT_REQUIRED
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw, \
                client.wrap_socket(raw) as tls:
            assert tls.recv(5) == b"hello"
            peer = tls.getpeercert()
            assert peer is not None and ("IP Address", "192.168.1.20") in peer["subjectAltName"]
    finally:
        server.close()
