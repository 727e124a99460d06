# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue stack certificates from the controller's data, never from the request's.

A certificate signing request proves one thing: that its sender holds the
private key of the public key in it (the request's self-signature). That
public key is all this code takes from it. Subject, names, key usage and
every other extension come from the caller (the inventory), so root on a host
that edits its request gets no other name, no CA flag and no other purpose.

Every issued certificate has exactly these extensions: basicConstraints
CA:FALSE (critical), keyUsage digitalSignature (critical), extendedKeyUsage
(the wanted purposes), subjectAltName (the wanted names), and the subject
and authority key identifiers. A certificate that has anything else, or
misses anything, or has another key, or names, or issuer, or expires within
the renewal window, is issued again; otherwise it is kept as it is.
"""

import datetime
import ipaddress

# The module reports a missing cryptography library itself (IMPORT_ERROR); the
# names below exist only where it is installed.
try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID
except ImportError as exc:
    IMPORT_ERROR = exc
else:
    IMPORT_ERROR = None
    PURPOSES = {"serverAuth": ExtendedKeyUsageOID.SERVER_AUTH, "clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH}
    ISSUED_EXTENSIONS = frozenset(
        [
            ExtensionOID.BASIC_CONSTRAINTS,
            ExtensionOID.KEY_USAGE,
            ExtensionOID.EXTENDED_KEY_USAGE,
            ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
            ExtensionOID.SUBJECT_KEY_IDENTIFIER,
            ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
        ]
    )
    KEY_USAGE = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    EC_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
MIN_RSA_BITS = 2048
# Issued certificates start a little in the past: a peer whose clock is a few
# minutes behind must not see a certificate from the future.
BACKDATE = datetime.timedelta(minutes=5)


class PkiError(Exception):
    """A request, name or CA this module refuses; the message says which and why."""


def load_ca(cert_pem, key_pem):
    """The CA certificate and its private key, refusing a key that is not the certificate's."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except ValueError as exc:
        raise PkiError("cannot read the CA certificate or key: %s" % exc) from None
    if _spki(key.public_key()) != _spki(cert.public_key()):
        raise PkiError("the CA key does not belong to the CA certificate")
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise PkiError("the CA certificate is no CA (basicConstraints CA:TRUE missing)")
    return cert, key


def request_public_key(csr_pem):
    """The public key of a request whose self-signature proves possession of its private key.

    Nothing else of the request is read: not its subject, not its extensions.
    """
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise PkiError("cannot read the certificate signing request: %s" % exc) from None
    try:
        valid = csr.is_signature_valid
    except (InvalidSignature, ValueError):
        valid = False
    if not valid:
        raise PkiError("the request's signature does not match its public key: no proof of key possession")
    key = csr.public_key()
    check_key(key)
    return key


def check_key(key):
    """Refuse key types and sizes the stack does not issue for."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, EC_CURVES):
            raise PkiError(
                "the request's key is on curve %s; allowed: secp256r1, secp384r1, secp521r1" % key.curve.name
            )
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise PkiError("the request's RSA key has %d bits; at least %d" % (key.key_size, MIN_RSA_BITS))
    elif not isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        raise PkiError("the request's key type %s is not issued for" % type(key).__name__)


def parse_name(entry):
    """One subjectAltName entry (C(DNS:name), C(IP:address), C(email:address)) as a GeneralName."""
    kind, sep, value = str(entry).partition(":")
    if not sep or not value or value != value.strip():
        raise PkiError("subject_alt_name entry %r: expected DNS:<name>, IP:<address> or email:<address>" % entry)
    if kind == "DNS":
        if "*" in value:
            raise PkiError("subject_alt_name entry %r: wildcard names are not issued" % entry)
        return x509.DNSName(value.lower())
    if kind == "IP":
        try:
            return x509.IPAddress(ipaddress.ip_address(value))
        except ValueError:
            raise PkiError("subject_alt_name entry %r: not an IP address" % entry) from None
    if kind == "email":
        if value.count("@") != 1:
            raise PkiError("subject_alt_name entry %r: not a mail address" % entry)
        local, domain = value.split("@")
        return x509.RFC822Name("%s@%s" % (local, domain.lower()))
    raise PkiError("subject_alt_name entry %r: unknown type %s (DNS, IP or email)" % (entry, kind))


def name_text(name):
    """The C(TYPE:value) text of a GeneralName (the inverse of parse_name)."""
    if isinstance(name, x509.DNSName):
        return "DNS:%s" % name.value
    if isinstance(name, x509.IPAddress):
        return "IP:%s" % name.value
    if isinstance(name, x509.RFC822Name):
        return "email:%s" % name.value
    return "%s:%s" % (type(name).__name__, name.value)


def _dns_within(name, base):
    base = base.lower().rstrip(".")
    name = name.lower().rstrip(".")
    if base.startswith("."):
        return name.endswith(base)
    return name == base or name.endswith("." + base)


def _email_within(address, base):
    base = base.lower()
    if "@" in base:
        return address.lower() == base
    domain = address.rpartition("@")[2].lower()
    if base.startswith("."):
        return domain.endswith(base)
    return domain == base


def _within(name, subtree):
    """RFC 5280 4.2.1.10 matching of one name against one subtree of the same type."""
    if isinstance(name, x509.DNSName) and isinstance(subtree, x509.DNSName):
        return _dns_within(name.value, subtree.value)
    if isinstance(name, x509.RFC822Name) and isinstance(subtree, x509.RFC822Name):
        return _email_within(name.value, subtree.value)
    if isinstance(name, x509.IPAddress) and isinstance(subtree, x509.IPAddress):
        network = subtree.value
        return isinstance(network, (ipaddress.IPv4Network, ipaddress.IPv6Network)) and name.value in network
    return False


def check_name_constraints(names, ca_cert, common_name=None):
    """Refuse names the CA's name constraints do not allow, before anything is signed.

    A peer would refuse such a certificate anyway; refusing it here says which
    name and which variable (pki_name_constraints) to look at. Like OpenSSL, a
    common name with a dot counts as a DNS name when there is no DNS name.
    """
    try:
        constraints = ca_cert.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return
    names = list(names)
    if common_name and "." in common_name and not any(isinstance(n, x509.DNSName) for n in names):
        names.append(x509.DNSName(common_name.lower()))
    permitted = list(constraints.permitted_subtrees or [])
    excluded = list(constraints.excluded_subtrees or [])
    outside = []
    for name in names:
        allowed = [tree for tree in permitted if type(tree) is type(name)]
        not_permitted = bool(allowed) and not any(_within(name, tree) for tree in allowed)
        if not_permitted or any(_within(name, tree) for tree in excluded):
            outside.append(name_text(name))
    if outside:
        raise PkiError(
            "%s outside the CA's name constraints (%s); add the domain to pki_name_constraints"
            % (", ".join(outside), ", ".join(name_text(tree) for tree in permitted) or "none permitted")
        )


class Wanted:
    """What a certificate must say: subject common name, names and purposes, all from the caller."""

    def __init__(self, common_name, subject_alt_name, extended_key_usage):
        if not common_name or any(ord(char) < 32 for char in common_name):
            raise PkiError("common_name must be a non-empty line of text")
        self.common_name = common_name
        self.names = [parse_name(entry) for entry in subject_alt_name]
        if not self.names:
            raise PkiError("subject_alt_name is empty: a certificate names its holder in subjectAltName")
        unknown = [purpose for purpose in extended_key_usage if purpose not in PURPOSES]
        if unknown or not extended_key_usage:
            raise PkiError("extended_key_usage must be a non-empty list of %s, not %s" % (sorted(PURPOSES), unknown))
        self.purposes = list(dict.fromkeys(extended_key_usage))
        self.subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    def name_set(self):
        return set(self.names)

    def purpose_set(self):
        return {PURPOSES[purpose] for purpose in self.purposes}


def _spki(key):
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _extension(cert, cls):
    try:
        return cert.extensions.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None


def reasons_to_issue(cert, ca_cert, public_key, wanted, renew_days, now):
    """Why `cert` cannot be kept (an empty list: keep it)."""
    if cert is None:
        return ["no certificate yet"]
    reasons = []
    if not _signed_by(cert, ca_cert):
        reasons.append("not issued by this CA")
    if _spki(cert.public_key()) != _spki(public_key):
        reasons.append("its key is not the key of the request")
    if cert.subject != wanted.subject:
        reasons.append("subject %s, wanted CN=%s" % (cert.subject.rfc4514_string(), wanted.common_name))
    sans = _extension(cert, x509.SubjectAlternativeName)
    have = set(sans) if sans is not None else set()
    if have != wanted.name_set():
        reasons.append(
            "names %s, wanted %s" % (sorted(name_text(n) for n in have), sorted(name_text(n) for n in wanted.names))
        )
    eku = _extension(cert, x509.ExtendedKeyUsage)
    if eku is None or set(eku) != wanted.purpose_set():
        reasons.append("extended key usage %s, wanted %s" % (_purpose_names(eku), wanted.purposes))
    constraints = _extension(cert, x509.BasicConstraints)
    if constraints is None or constraints.ca:
        reasons.append("basicConstraints is not CA:FALSE")
    if _extension(cert, x509.KeyUsage) != KEY_USAGE:
        reasons.append("key usage is not digitalSignature alone")
    extra = sorted(ext.oid.dotted_string for ext in cert.extensions if ext.oid not in ISSUED_EXTENSIONS)
    if extra:
        reasons.append("extensions the stack does not issue: %s" % ", ".join(extra))
    if not_after(cert) <= now + datetime.timedelta(days=renew_days):
        reasons.append("expires %s, within %d days" % (not_after(cert).isoformat(), renew_days))
    return reasons


def not_after(cert):
    """Expiry as an aware UTC datetime (cryptography before 42 has no not_valid_after_utc)."""
    value = getattr(cert, "not_valid_after_utc", None)
    return value if value is not None else cert.not_valid_after.replace(tzinfo=datetime.UTC)


def _signed_by(cert, ca_cert):
    """True when `ca_cert` names and signed `cert` (works with cryptography 38 and later)."""
    if cert.issuer != ca_cert.subject:
        return False
    key = ca_cert.public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm)
        else:
            key.verify(cert.signature, cert.tbs_certificate_bytes)
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False
    return True


def _purpose_names(eku):
    if eku is None:
        return []
    names = {oid: name for name, oid in PURPOSES.items()}
    return [names.get(oid, oid.dotted_string) for oid in eku]


def _hash_for(key):
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {256: hashes.SHA256(), 384: hashes.SHA384()}.get(key.curve.key_size, hashes.SHA512())
    return hashes.SHA256()


def issue(ca_cert, ca_key, public_key, wanted, days, now):
    """A new certificate for `public_key` with exactly the wanted subject, names and purposes."""
    ca_ski = _extension(ca_cert, x509.SubjectKeyIdentifier)
    if ca_ski is not None:
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski)
    else:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key())
    expiry = min(now + datetime.timedelta(days=days), not_after(ca_cert))
    builder = (
        x509.CertificateBuilder()
        .subject_name(wanted.subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(expiry)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(KEY_USAGE, critical=True)
        .add_extension(x509.ExtendedKeyUsage([PURPOSES[p] for p in wanted.purposes]), critical=False)
        .add_extension(x509.SubjectAlternativeName(wanted.names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(aki, critical=False)
    )
    return builder.sign(ca_key, _hash_for(ca_key))


def summary(cert):
    """A readable account of a certificate for diff output (no key material)."""
    if cert is None:
        return ""
    sans = _extension(cert, x509.SubjectAlternativeName)
    constraints = _extension(cert, x509.BasicConstraints)
    lines = [
        "subject: %s" % cert.subject.rfc4514_string(),
        "issuer: %s" % cert.issuer.rfc4514_string(),
        "serial: %x" % cert.serial_number,
        "not_after: %s" % not_after(cert).isoformat(),
        "subject_alt_name: %s" % ", ".join(name_text(n) for n in (sans or [])),
        "extended_key_usage: %s" % ", ".join(_purpose_names(_extension(cert, x509.ExtendedKeyUsage))),
        "ca: %s" % (constraints.ca if constraints is not None else "absent"),
        "public_key_sha256: %s" % hashes_hex(_spki(cert.public_key())),
    ]
    return "\n".join(lines) + "\n"


def hashes_hex(data):
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize().hex()


def load_certificate(pem):
    """The certificate in `pem`, or None when there is none or it cannot be read (it is then reissued)."""
    if not pem:
        return None
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError:
        return None


def plan(existing_pem, csr_pem, ca_cert_pem, ca_key_pem, wanted, days, renew_days, now):
    """(certificate, reasons): the existing certificate kept (no reasons) or a new one and why."""
    ca_cert, ca_key = load_ca(ca_cert_pem, ca_key_pem)
    public_key = request_public_key(csr_pem)
    check_name_constraints(wanted.names, ca_cert, wanted.common_name)
    current = load_certificate(existing_pem)
    if existing_pem and current is None:
        reasons = ["the existing file is no certificate"]
    else:
        reasons = reasons_to_issue(current, ca_cert, public_key, wanted, renew_days, now)
    if not reasons:
        return current, []
    return issue(ca_cert, ca_key, public_key, wanted, days, now), reasons


def to_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode()
