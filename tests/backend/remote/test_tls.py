"""Engine servers over https with a self-signed certificate: refused with the certificate's real
fingerprint, added only with that fingerprint, and from then on verified against the pinned
certificate alone, before anything is sent."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from backend.core.errors import AppError, ErrorCode
from backend.remote.service import RemoteEngines
from backend.security.certs import LocalCA

from .answers import answer, soon
from .fake_remote import WORDS, FakeRemote

TEXT = "".join(WORDS)


def self_signed(folder: Path, name: str) -> tuple[Path, Path, str]:
    """A self-signed certificate for 127.0.0.1, its key, and its SHA-256 fingerprint."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / f"{name}.pem", folder / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file, cert.fingerprint(hashes.SHA256()).hex(":").upper()


def fingerprint_of_file(cert_file: Path) -> str:
    return x509.load_pem_x509_certificate(cert_file.read_bytes()).fingerprint(hashes.SHA256()).hex(":").upper()


async def refused(engines: RemoteEngines, url: str, **kw: str) -> AppError:
    with pytest.raises(AppError) as caught:
        await engines.add(url, **kw)
    assert caught.value.code == ErrorCode.REMOTE_UNTRUSTED, caught.value.message
    assert engines.servers() == [] and await engines.store.all() == []  # nothing kept
    return caught.value


async def test_pinning_a_self_signed_server(engines: RemoteEngines, tmp_path: Path) -> None:
    cert, key, real = self_signed(tmp_path, "box")
    other_cert, other_key, other = self_signed(tmp_path, "impostor")
    assert real != other
    with FakeRemote(tls=(cert, key)) as fake:
        url = f"https://{fake.host}"

        first = await refused(engines, url)
        assert real in first.message and first.param == "fingerprint"
        assert "self-signed" in first.message
        assert fake.connections >= 2 and fake.http_bytes == 0  # the check and the look at the certificate

        wrong = await refused(engines, url, fingerprint=other)
        assert real in wrong.message and other in wrong.message
        # the one request made: whether it is a gridless with an authority of that fingerprint (public, no key)
        assert [(s.method, s.path, s.headers.get("authorization")) for s in fake.seen] == \
            [("GET", "/ca/gridless-ca.pem", None)]

        engine = await engines.add(url, fingerprint=real.replace(":", "").lower())
        assert engine.fingerprint == real and engine.url == url + "/v1" and engine.secure
        assert engine.certificate is not None and engine.certificate.startswith("-----BEGIN CERTIFICATE-----")
        assert engine.models == ["big-model", "small-model"] and engine.state == "up"
        stored = await engines.store.all()
        assert [(e.id, e.fingerprint, e.certificate) for e in stored] == [(engine.id, real, engine.certificate)]
        said = await answer(engines, f"{engine.id}/big-model")
        assert said.text == TEXT and said.result.finish_reason == "stop"
        assert fake.http_bytes > 0

        # the same address now shows another certificate: nothing is sent to it
        fake.down()
        fake.up(tls=(other_cert, other_key))
        connections, failed, received = fake.connections, fake.handshakes_failed, fake.http_bytes
        cut = await answer(engines, f"{engine.id}/big-model")
        assert cut.failed.code == ErrorCode.REMOTE_UNTRUSTED and "not trusted" in cut.failed.message
        await soon(lambda: fake.handshakes_failed > failed)  # the fake's own thread sees the refusal
        assert fake.connections > connections
        assert fake.http_bytes == received  # not one byte of the request reached it
        assert engines.engine(engine.id).state == "down"
        checked = await engines.check(engine.id)
        assert checked.state == "down" and checked.error is not None and "not trusted" in checked.error
        assert fake.http_bytes == received

        # the real one is back: verified and used again
        fake.down()
        fake.up(tls=(cert, key))
        assert (await engines.check(engine.id)).state == "up"
        assert (await answer(engines, f"{engine.id}/big-model")).text == TEXT


async def test_a_fingerprint_only_for_https(engines: RemoteEngines, fake: FakeRemote, tmp_path: Path) -> None:
    _, _, real = self_signed(tmp_path, "box")
    with pytest.raises(AppError) as caught:
        await engines.add(fake.host, fingerprint=real)
    assert caught.value.code == ErrorCode.INVALID_VALUE and caught.value.param == "fingerprint"
    with pytest.raises(AppError) as caught:
        await engines.add(f"https://{fake.host}", fingerprint="12:34")
    assert caught.value.code == ErrorCode.INVALID_VALUE
    assert engines.servers() == [] and fake.seen == []


async def test_another_gridless_in_secure_mode(engines: RemoteEngines, tmp_path: Path) -> None:
    """Another gridless serves a certificate its own local authority issued for its address."""
    ca = LocalCA(tmp_path / "tls")
    leaf = ca.server_certificate("127.0.0.1")
    shown = fingerprint_of_file(leaf.cert_file)
    with FakeRemote(tls=(leaf.cert_file, leaf.key_file), owned_by="gridless") as fake:
        url = f"https://{fake.host}"
        first = await refused(engines, url)
        assert shown in first.message
        engine = await engines.add(url, fingerprint=shown)
        assert engine.fingerprint == shown
        assert (await answer(engines, f"{engine.id}/small-model")).text == TEXT


async def test_another_gridless_by_the_fingerprint_it_shows(engines: RemoteEngines, tmp_path: Path) -> None:
    """Another gridless shows its own authority's fingerprint (Sharing page) and serves that authority at
    /ca/gridless-ca.pem: the authority is pinned, so a certificate it renews is still trusted, and one
    from any other authority is not."""
    ca = LocalCA(tmp_path / "tls")
    leaf = ca.server_certificate("127.0.0.1")
    with FakeRemote(tls=(leaf.cert_file, leaf.key_file), authority=ca.ca_pem()) as fake:
        engine = await engines.add(f"https://{fake.host}", fingerprint=ca.fingerprint())
        assert engine.models == ["big-model", "small-model"]
        assert engine.fingerprint == ca.fingerprint()
        assert not any(s.headers.get("authorization") for s in fake.requests("/ca/gridless-ca.pem"))
        renewed = ca.server_certificate("127.0.0.2")  # another certificate from the same authority
        fake.down()
        fake.up(tls=(renewed.cert_file, renewed.key_file))
        assert (await answer(engines, f"{engine.id}/small-model")).text == TEXT
        stranger = LocalCA(tmp_path / "other").server_certificate("127.0.0.1")
        fake.down()
        fake.up(tls=(stranger.cert_file, stranger.key_file))
        with pytest.raises(AppError) as refused_later:
            await engines.check(engine.id)
            raise AppError(engines.engine(engine.id).state, engines.engine(engine.id).error or "")
        assert "not trusted" in refused_later.value.message


async def test_an_authority_with_another_fingerprint_is_not_pinned(engines: RemoteEngines, tmp_path: Path) -> None:
    ca = LocalCA(tmp_path / "tls")
    leaf = ca.server_certificate("127.0.0.1")
    other = LocalCA(tmp_path / "other")
    with FakeRemote(tls=(leaf.cert_file, leaf.key_file), authority=ca.ca_pem()) as fake:
        with pytest.raises(AppError) as refused_now:
            await engines.add(f"https://{fake.host}", fingerprint=other.fingerprint())
        assert refused_now.value.code == ErrorCode.REMOTE_UNTRUSTED
        assert engines.servers() == []
        assert fake.requests("/models") == []
