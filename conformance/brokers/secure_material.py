"""The certificates, passwords and NKEY of the secure brokers (`brokers up --secure`).

    python secure_material.py DIR     write what is missing into DIR, print nothing

Everything is generated locally with `cryptography` (no download): a private CA, a server
certificate for 127.0.0.1 (IP address only, so ``localhost`` is a host name mismatch), a
client certificate, and for the negative tests a client certificate signed by another CA and
an expired one. Passwords and the NKEY seed are random; private keys and secrets are written
with mode 0600. Running it again keeps what exists, so brokers and clients stay in step.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import os
import secrets
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HOST_IP = "127.0.0.1"
#: Users every secure broker knows: one that may use eventwire's channels, one that may not.
USERS = ("eventwire", "denied")


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "eventwire test"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_secret(path, data)


def _write_secret(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    common_name: str,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    *,
    server: bool,
    expired: bool = False,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    ca_cert, ca_key = ca
    now = datetime.datetime.now(datetime.UTC)
    if expired:
        start, end = now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)
    else:
        start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=825)
    # A server certificate serves both ways: Kafka's broker also connects to itself with it.
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if server:
        usages.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST_IP))]),
            critical=False,
        )
    return builder.sign(ca_key, hashes.SHA256()), key


def _crc16(data: bytes) -> int:
    """CRC-16/XMODEM, the checksum of the NKEY encoding."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def _b32(data: bytes) -> str:
    payload = data + _crc16(data).to_bytes(2, "little")
    return base64.b32encode(payload).decode().rstrip("=")


def nkey_user() -> tuple[str, str]:
    """A new NATS user NKEY: (seed ``SU...``, public key ``U...``)."""
    raw = secrets.token_bytes(32)
    public = ed25519.Ed25519PrivateKey.from_private_bytes(raw).public_key()
    public_raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    user, seed = 20 << 3, 18 << 3
    seed_text = _b32(bytes([seed | (user >> 5), (user & 31) << 3]) + raw)
    return seed_text, _b32(bytes([user]) + public_raw)


def generate(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / "material.json").exists():
        return
    ca = _ca("eventwire test CA")
    other = _ca("another CA")
    (directory / "ca.pem").write_bytes(_pem(ca[0]))
    (directory / "other-ca.pem").write_bytes(_pem(other[0]))
    leaves = {
        "server": _leaf(HOST_IP, ca, server=True),
        "client": _leaf("eventwire", ca, server=False),
        "other-client": _leaf("eventwire", other, server=False),
        "expired-client": _leaf("eventwire", ca, server=False, expired=True),
    }
    for stem, (cert, key) in leaves.items():
        (directory / f"{stem}.pem").write_bytes(_pem(cert))
        _write_key(directory / f"{stem}.key", key)
    # Kafka reads its key and chain from one PEM file.
    _write_secret(
        directory / "server-keystore.pem",
        (directory / "server.key").read_bytes() + (directory / "server.pem").read_bytes(),
    )
    for user in USERS:
        _write_secret(directory / f"{user}.password", secrets.token_urlsafe(24).encode())
    seed, public = nkey_user()
    _write_secret(directory / "nkey.seed", seed.encode())
    (directory / "nkey.pub").write_text(public)
    (directory / "material.json").write_text(json.dumps({"users": list(USERS), "nkey": public}))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        sys.exit(2)
    generate(Path(sys.argv[1]))
