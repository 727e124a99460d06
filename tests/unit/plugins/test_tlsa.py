import datetime
import hashlib

import pytest
from ansible_collections.zerotrust.mailstack.plugins.module_utils.tlsa import tlsa_rdata
from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import InputError
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID


def certificate(key, serial):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mx.corp.example")])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    return builder.sign(key, hashes.SHA256()).public_bytes(Encoding.PEM).decode()


def test_tlsa_pins_the_public_key():
    key = ec.generate_private_key(ec.SECP256R1())
    spki = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    expected = "3 1 1 " + hashlib.sha256(spki).hexdigest()
    assert tlsa_rdata(certificate(key, 1)) == expected
    # A renewed certificate for the same key keeps the same record.
    assert tlsa_rdata(certificate(key, 2)) == expected
    other = ec.generate_private_key(ec.SECP256R1())
    assert tlsa_rdata(certificate(other, 1)) != expected


@pytest.mark.parametrize(
    "value", ["not a certificate", 42, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]
)
def test_tlsa_refuses_what_is_not_a_certificate(value):
    with pytest.raises(InputError):
        tlsa_rdata(value)
