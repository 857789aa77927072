#!/usr/bin/env python
"""A self-signed certificate and its key in one PEM, the form HAProxy's ``crt`` takes.

    python scripts/dev_cert.py docker/certs/site.pem     # for `docker compose up` on a laptop

HAProxy refuses to start without its TLS certificate (docker/haproxy.cfg); in production the PEM is
the real chain and key. The tests and ``bench/haproxy_bid.py`` make a throwaway one with this.
"""
from __future__ import annotations

import datetime
import sys
from pathlib import Path


def write_self_signed_pem(path: Path, *, common_name: str = "localhost", days: int = 30) -> Path:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
            .sign(key, hashes.SHA256()))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    path.chmod(0o600)
    return path


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(write_self_signed_pem(Path(sys.argv[1])))
