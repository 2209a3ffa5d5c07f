"""The local control plane's key material, built with the cryptography the lock installs (51 refuses an empty
SubjectAlternativeName, which once broke every control-plane test on a fresh machine)."""

import ipaddress

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from rerank_localdev import pki


def _cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def test_client_certificate_with_no_names_has_no_subject_alternative_name():
    material = pki.make_control_plane_pki()
    client = _cert(material.kubelet_client.cert)
    extensions = {e.oid for e in client.extensions}
    assert x509.oid.ExtensionOID.SUBJECT_ALTERNATIVE_NAME not in extensions
    usage = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    # Signed by the control plane's CA.
    client.verify_directly_issued_by(_cert(material.ca.cert))


def test_serving_certificate_names_every_address_the_api_server_is_called_by():
    material = pki.make_control_plane_pki(service_ip="10.96.0.1", extra_ips=("192.0.2.7",))
    serving = _cert(material.apiserver.cert)
    san = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == set(pki.API_SERVER_DNS_NAMES)
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address(a) for a in ("127.0.0.1", "10.96.0.1", "192.0.2.7")
    }
    serving.verify_directly_issued_by(_cert(material.ca.cert))
