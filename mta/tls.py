"""TLS for the SMTP listeners: the configured certificate, or a self-signed one generated on
first start (development)."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from pathlib import Path

from mta.config import Config, ConfigError

SELF_SIGNED_DAYS = 3650  # ten years: a development certificate should never be the thing expiring


def tls_paths(config: Config) -> tuple[Path, Path]:
    """The certificate and key files: `smtp.tls_cert`/`smtp.tls_key`, else in the state dir."""
    cert, key = config.smtp.tls_cert, config.smtp.tls_key
    if bool(cert) != bool(key):
        raise ConfigError("smtp.tls_cert and smtp.tls_key must be set together")
    if cert and key:
        return Path(cert), Path(key)
    folder = config.state_path / "tls"
    return folder / "cert.pem", folder / "key.pem"


def _subject_names(hostname: str) -> list:
    from cryptography import x509

    names: list[x509.GeneralName] = []
    for name in dict.fromkeys([hostname.lower(), "localhost", "127.0.0.1"]):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            names.append(x509.DNSName(name))
    return names


def ensure_self_signed(cert_path: Path, key_path: Path, hostname: str) -> None:
    """Generate a self-signed certificate (EC P-256) for `hostname`, localhost and 127.0.0.1
    unless both files exist. The key file is written 0600."""
    if cert_path.exists() and key_path.exists():
        return
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(_subject_names(hostname)), critical=False)
        .sign(private, hashes.SHA256())
    )
    key_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), 0o600)  # O_CREAT's mode does not apply to a file that existed
        f.write(
            private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    """A server context for STARTTLS and implicit TLS: TLS 1.2 or later, no client certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert_path), str(key_path))
    return context
