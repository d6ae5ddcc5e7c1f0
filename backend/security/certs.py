"""A certificate authority made on this device, for HTTPS on the local network.

Browsers give camera, microphone and app install only to secure pages, and a page on a
LAN address over plain HTTP is not one. So the app makes its own CA once, the tablet
installs it once (the guide shows its fingerprint to compare), and the server gets a
certificate for its LAN address, made again whenever the address changes.

The CA is name-constrained to private addresses and `.local` names: even if its key
leaked, a device that trusts it could not be shown a false certificate for any site on
the internet.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..core.errors import AppError, ErrorCode

__all__ = ["LocalCA", "ServerCertificate", "is_private_address"]

CA_YEARS = 10
LEAF_DAYS = 397
"""Apple platforms refuse server certificates valid for longer than 398 days."""
RENEW_WITHIN_DAYS = 30
LEAF_SUBJECT = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "gridless"),
                          x509.NameAttribute(NameOID.COMMON_NAME, "gridless server")])
"""Not the address: OpenSSL checks a dotted common name against the CA's DNS name
constraints when the certificate names no DNS host, so `CN=192.168.1.20` would be refused."""
PERMITTED_NETWORKS = [ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10",
    "127.0.0.0/8", "fc00::/7", "fe80::/10", "::1/128")]


def is_private_address(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in PERMITTED_NETWORKS)


@dataclass(frozen=True, slots=True)
class ServerCertificate:
    cert_file: Path
    key_file: Path
    address: str


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class LocalCA:
    """Files under `<data>/tls/`: ca.pem, ca.key, server.pem, server.key (keys mode 0600)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ca_file = folder / "ca.pem"
        self.ca_key_file = folder / "ca.key"
        self.cert_file = folder / "server.pem"
        self.key_file = folder / "server.key"

    # the authority

    def ca(self) -> x509.Certificate:
        """The CA certificate, made on first use (or again if its files are unusable)."""
        try:
            cert = x509.load_pem_x509_certificate(self.ca_file.read_bytes())
            key = serialization.load_pem_private_key(self.ca_key_file.read_bytes(), password=None)
            if cert.public_key() == key.public_key() and cert.not_valid_after_utc > _now() + dt.timedelta(days=400):
                return cert
        except (OSError, ValueError, TypeError):
            pass
        return self._make_ca()

    def ca_pem(self) -> bytes:
        return self.ca().public_bytes(serialization.Encoding.PEM)

    def ca_der(self) -> bytes:
        return self.ca().public_bytes(serialization.Encoding.DER)

    def fingerprint(self) -> str:
        """SHA-256 of the CA certificate, as phones show it: 32 hex pairs joined by colons."""
        return self.ca().fingerprint(hashes.SHA256()).hex(":").upper()

    def _make_ca(self) -> x509.Certificate:
        self.folder.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "gridless"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"gridless local CA ({socket.gethostname()[:40]})"),
        ])
        now = _now()
        constraints = x509.NameConstraints(
            permitted_subtrees=[x509.DNSName("local"), *(x509.IPAddress(n) for n in PERMITTED_NETWORKS)],
            excluded_subtrees=None)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=365 * CA_YEARS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False, key_agreement=False,
                                             key_cert_sign=True, crl_sign=True, encipher_only=False,
                                             decipher_only=False), critical=True)
                .add_extension(constraints, critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        _write_private(self.ca_key_file, _key_pem(key))
        _write_private(self.ca_file, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        self.cert_file.unlink(missing_ok=True)  # issued by the old CA
        return cert

    # the server's certificate

    def server_certificate(self, address: str) -> ServerCertificate:
        """A certificate for `address`, reused while it names that address, was issued by
        the current CA and has a month left; otherwise a new one."""
        if not is_private_address(address):
            raise AppError(ErrorCode.CERTIFICATE_FAILED,
                           f"HTTPS is offered for private network addresses only, not {address}.")
        ca = self.ca()
        if not self._leaf_current(ca, address):
            self._issue(ca, address)
        return ServerCertificate(self.cert_file, self.key_file, address)

    def _leaf_current(self, ca: x509.Certificate, address: str) -> bool:
        try:
            cert = x509.load_pem_x509_certificate(self.cert_file.read_bytes())
            key = serialization.load_pem_private_key(self.key_file.read_bytes(), password=None)
            ips = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value \
                .get_values_for_type(x509.IPAddress)
            cert.verify_directly_issued_by(ca)
        except (OSError, ValueError, TypeError, x509.ExtensionNotFound, InvalidSignature):
            return False
        return (cert.public_key() == key.public_key() and ips == [ipaddress.ip_address(address)]
                and cert.subject == LEAF_SUBJECT
                and cert.not_valid_after_utc > _now() + dt.timedelta(days=RENEW_WITHIN_DAYS))

    def _issue(self, ca: x509.Certificate, address: str) -> None:
        ca_key = serialization.load_pem_private_key(self.ca_key_file.read_bytes(), password=None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        cert = (x509.CertificateBuilder()
                .subject_name(LEAF_SUBJECT)
                .issuer_name(ca.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False, key_agreement=False,
                                             key_cert_sign=False, crl_sign=False, encipher_only=False,
                                             decipher_only=False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]),
                               critical=False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        _write_private(self.key_file, _key_pem(key))
        _write_private(self.cert_file, cert.public_bytes(serialization.Encoding.PEM), 0o644)
