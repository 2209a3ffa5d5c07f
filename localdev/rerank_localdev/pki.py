"""Key material for the local control plane: a CA, the API server's serving certificate and the
service-account signing key pair.

Pure functions returning PEM bytes (nothing touches the disk here). EC P-256 keys: generated in
milliseconds, and accepted by the API server both for TLS and for signing service-account tokens (ES256).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# What in-cluster clients and local clients call the API server.
API_SERVER_DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


@dataclass(frozen=True)
class Pair:
    cert: bytes
    key: bytes


@dataclass(frozen=True)
class ControlPlanePKI:
    ca: Pair
    apiserver: Pair
    sa_private_key: bytes
    sa_public_key: bytes
    # The API server's client identity towards kubelets (logs, exec, port-forward).
    kubelet_client: Pair


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _validity(builder: x509.CertificateBuilder, days: int) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    # A little slack backwards so that clocks a few seconds apart still agree the cert is valid.
    return builder.not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=days))


def make_ca(common_name: str = "rerank-local-ca", days: int = 365) -> tuple[Pair, ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    cert = _validity(builder, days).sign(key, hashes.SHA256())
    return Pair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)), key, cert


def make_serving_cert(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    common_name: str,
    dns_names: tuple[str, ...],
    ips: tuple[str, ...],
    days: int = 365,
    usage: x509.ObjectIdentifier = ExtendedKeyUsageOID.SERVER_AUTH,
) -> Pair:
    """A leaf certificate signed by the CA: a serving one by default, a client one with `usage=CLIENT_AUTH`.
    A certificate with no names (a client's) gets no SubjectAlternativeName extension: RFC 5280 forbids an
    empty one, and cryptography 51 refuses to build it."""
    key = _key()
    san = [x509.DNSName(n) for n in dns_names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    cert = _validity(builder, days).sign(ca_key, hashes.SHA256())
    return Pair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def make_control_plane_pki(service_ip: str = "10.96.0.1", extra_ips: tuple[str, ...] = ()) -> ControlPlanePKI:
    """Everything the API server needs; `service_ip` is the `kubernetes` Service's ClusterIP, `extra_ips` the
    addresses it is advertised on besides loopback (a real node's pods reach it there)."""
    ca, ca_key, ca_cert = make_ca()
    apiserver = make_serving_cert(
        ca_key, ca_cert, "kube-apiserver", API_SERVER_DNS_NAMES, ("127.0.0.1", service_ip, *extra_ips)
    )
    kubelet_client = make_serving_cert(ca_key, ca_cert, "kube-apiserver-kubelet-client", (), (),
                                       usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    sa = _key()
    sa_public = sa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return ControlPlanePKI(ca=ca, apiserver=apiserver, sa_private_key=_key_pem(sa), sa_public_key=sa_public,
                           kubelet_client=kubelet_client)
