"""Certificates, the service-account key, static tokens and one kubeconfig per user."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import secrets
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .config import USERS, InstanceConfig

# user -> groups in the static token file. Only admin is a superuser; the others get RBAC bindings.
USER_GROUPS = {
    "admin": ["system:masters"],
    "shadow-operator": ["darklaunch:operators"],
    "viewer": ["darklaunch:viewers"],
    "traefik": ["darklaunch:ingress"],
}


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.write_bytes(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert(
    subject: str,
    public_key: ec.EllipticCurvePublicKey,
    issuer_key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name | None,
    *,
    ca: bool,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.DNSName("kubernetes.default.svc"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def ensure_pki(cfg: InstanceConfig) -> None:
    """Create the CA, the apiserver serving cert and the service-account key once per state dir."""
    pki = cfg.pki_dir
    if (pki / "apiserver.crt").is_file() and (pki / "sa.key").is_file():
        return
    pki.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _cert("darklaunch-test-ca", ca_key.public_key(), ca_key, None, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _cert("kube-apiserver", server_key.public_key(), ca_key, ca_cert.subject, ca=False)
    sa_key = ec.generate_private_key(ec.SECP256R1())

    _write_private(pki / "ca.key", _key_pem(ca_key))
    (pki / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_private(pki / "apiserver.key", _key_pem(server_key))
    (pki / "apiserver.crt").write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    (pki / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    _write_private(pki / "sa.key", _key_pem(sa_key))  # written last: it marks the PKI complete


def tokens_file(cfg: InstanceConfig) -> Path:
    return cfg.pki_dir / "tokens.csv"


def read_tokens(cfg: InstanceConfig) -> dict[str, str]:
    tokens = {}
    for line in tokens_file(cfg).read_text().splitlines():
        token, user = line.split(",")[:2]
        tokens[user] = token
    return tokens


def ensure_tokens(cfg: InstanceConfig) -> dict[str, str]:
    path = tokens_file(cfg)
    if path.is_file():
        return read_tokens(cfg)
    tokens = {user: secrets.token_hex(24) for user in USERS}
    lines = [f'{tokens[user]},{user},uid-{user},"{",".join(USER_GROUPS[user])}"' for user in USERS]
    _write_private(path, ("\n".join(lines) + "\n").encode())
    return tokens


def write_kubeconfigs(cfg: InstanceConfig, tokens: dict[str, str]) -> None:
    """One kubeconfig per user; the CA is embedded so nobody needs insecure-skip-tls-verify."""
    ca_data = base64.b64encode((cfg.pki_dir / "ca.crt").read_bytes()).decode()
    for user in USERS:
        context = f"darklaunch-{user}"
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "darklaunch", "cluster": {"server": cfg.apiserver_url, "certificate-authority-data": ca_data}}
            ],
            "users": [{"name": user, "user": {"token": tokens[user]}}],
            "contexts": [{"name": context, "context": {"cluster": "darklaunch", "user": user}}],
            "current-context": context,
        }
        _write_private(cfg.kubeconfig(user), yaml.safe_dump(doc, sort_keys=False).encode())
