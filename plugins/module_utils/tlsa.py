# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""TLSA record data (RFC 6698) for a certificate."""

import hashlib

from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import InputError

try:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    HAS_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - reported when the filter is used
    HAS_CRYPTOGRAPHY = False

# DANE-EE(3) SPKI(1) SHA2-256(1): pins the key, so a renewed certificate for
# the same key keeps matching and the record does not churn.
USAGE, SELECTOR, MATCHING = 3, 1, 1


def tlsa_rdata(pem):
    """'3 1 1 <hex>' for the certificate in `pem`."""
    if not HAS_CRYPTOGRAPHY:
        raise InputError("tlsa_rdata", "the Python cryptography library is required")
    if not isinstance(pem, (str, bytes)):
        raise InputError("tlsa_rdata", "expects a PEM certificate as text")
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise InputError("tlsa_rdata", "not a PEM certificate (%s)" % exc) from None
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return "%d %d %d %s" % (USAGE, SELECTOR, MATCHING, hashlib.sha256(spki).hexdigest())
