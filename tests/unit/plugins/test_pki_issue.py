"""ZT-PKI-03/04: the controller issues what inventory says, whatever the request asks for.

The requests here are what root on a stack host could send: other names,
CA:TRUE, clientAuth, extensions of its own, a signature that proves nothing.
The last tests run the module and the role's CA tasks with ansible-playbook on
localhost and check the results with `openssl verify`, as a peer would.
"""

import datetime
import ipaddress
import json
import os
import pathlib
import subprocess
import sys

import pytest
from ansible_collections.zerotrust.mailstack.plugins.module_utils import pki_issue
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

ROOT = pathlib.Path(__file__).resolve().parents[3]
NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
HOST_NAMES = ["DNS:dns.corp.example", "IP:192.0.2.53"]
HOSTILE_NAMES = [x509.DNSName("ldap.corp.example"), x509.DNSName("mx.google.com")]


def new_key():
    return ec.generate_private_key(ec.SECP384R1())


def pem(obj):
    if isinstance(obj, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
        return obj.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return obj.public_bytes(serialization.Encoding.PEM)


def key_pem(key):
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_ca(key=None, permitted=None, days=3650):
    key = key or new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test stack CA")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if permitted is not None:
        builder = builder.add_extension(x509.NameConstraints(permitted, None), critical=True)
    return builder.sign(key, hashes.SHA384()), key


def hostile_request(key):
    """What root on the dns host can put in its request."""
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ldap.corp.example")]))
        .add_extension(x509.SubjectAlternativeName(HOSTILE_NAMES), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.CODE_SIGNING]
            ),
            critical=False,
        )
        .add_extension(x509.OCSPNoCheck(), critical=False)
        .add_extension(x509.NameConstraints([x509.DNSName("google.com")], None), critical=True)
    )
    return pem(builder.sign(key, hashes.SHA384()))


def plain_request(key, cn="dns.corp.example"):
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    )
    return pem(builder.sign(key, hashes.SHA384()))


def host_wanted(names=HOST_NAMES, purposes=("serverAuth",)):
    return pki_issue.Wanted("dns.corp.example", list(names), list(purposes))


def plan(existing, csr, ca, wanted=None, days=365, renew_days=30, now=NOW):
    ca_cert, ca_key = ca
    return pki_issue.plan(existing, csr, pem(ca_cert), key_pem(ca_key), wanted or host_wanted(), days, renew_days, now)


def openssl(*args, cwd=None):
    return subprocess.run(["openssl", *args], capture_output=True, text=True, cwd=cwd)


def test_a_hostile_request_gets_only_the_controllers_names_and_purpose(tmp_path):
    ca = make_ca()
    host_key = new_key()
    cert, reasons = plan(None, hostile_request(host_key), ca)
    assert reasons == ["no certificate yet"]
    assert cert.subject.rfc4514_string() == "CN=dns.corp.example"
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans) == {x509.DNSName("dns.corp.example"), x509.IPAddress(ipaddress.ip_address("192.0.2.53"))}
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    assert {ext.oid for ext in cert.extensions} == set(pki_issue.ISSUED_EXTENSIONS)
    assert ExtensionOID.NAME_CONSTRAINTS not in {ext.oid for ext in cert.extensions}
    # The key is the request's: the host holds the private key, nobody else.
    assert pem(cert.public_key()) == pem(host_key.public_key())

    # As a peer sees it: a server certificate for dns only.
    (tmp_path / "ca.pem").write_bytes(pem(ca[0]))
    (tmp_path / "host.pem").write_bytes(pem(cert))
    assert openssl("verify", "-CAfile", "ca.pem", "-purpose", "sslserver", "host.pem", cwd=tmp_path).returncode == 0
    assert openssl("verify", "-CAfile", "ca.pem", "-purpose", "sslclient", "host.pem", cwd=tmp_path).returncode != 0
    for name in ("ldap.corp.example", "mx.google.com"):
        out = openssl("x509", "-in", "host.pem", "-noout", "-checkhost", name, cwd=tmp_path).stdout
        assert "does NOT match" in out, out


def test_device_certificate_is_for_client_authentication_only():
    ca = make_ca()
    wanted = pki_issue.Wanted("alice-laptop", ["email:alice@corp.example"], ["clientAuth"])
    cert, _ = plan(None, hostile_request(new_key()), ca, wanted=wanted)
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    assert list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value) == [
        x509.RFC822Name("alice@corp.example")
    ]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


def _swap(der, old, new):
    assert der.count(old) == 1 and len(old) == len(new)
    return der.replace(old, new)


def _der_to_pem(der):
    return pem(x509.load_der_x509_csr(der))


def test_a_request_whose_signature_does_not_match_is_refused():
    ca = make_ca()
    key = new_key()
    der = x509.load_pem_x509_csr(plain_request(key)).public_bytes(serialization.Encoding.DER)
    # Another subject under the same signature.
    tampered = _swap(der, b"dns.corp.example", b"dnx.corp.example")
    with pytest.raises(pki_issue.PkiError, match="no proof of key possession"):
        plan(None, _der_to_pem(tampered), ca)
    # Another public key (one the sender does not hold) under the same signature.
    spki = lambda k: k.public_key().public_bytes(  # noqa: E731
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    stolen = _swap(der, spki(key), spki(new_key()))
    with pytest.raises(pki_issue.PkiError, match="no proof of key possession"):
        plan(None, _der_to_pem(stolen), ca)


def test_weak_keys_are_refused():
    ca = make_ca()
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the weak key under test
    with pytest.raises(pki_issue.PkiError, match="1024 bits"):
        plan(None, plain_request(weak), ca)


def test_a_valid_certificate_is_kept():
    ca = make_ca()
    csr = plain_request(new_key())
    first, reasons = plan(None, csr, ca)
    assert reasons
    again, reasons = plan(pem(first), csr, ca, now=NOW + datetime.timedelta(days=100))
    assert reasons == []
    assert again.serial_number == first.serial_number


def test_the_same_key_with_a_hostile_request_keeps_the_certificate():
    ca = make_ca()
    key = new_key()
    first, _ = plan(None, plain_request(key), ca)
    kept, reasons = plan(pem(first), hostile_request(key), ca)
    assert reasons == [] and kept.serial_number == first.serial_number


def test_an_expiring_certificate_is_renewed():
    ca = make_ca()
    csr = plain_request(new_key())
    first, _ = plan(None, csr, ca, days=365)
    renewed, reasons = plan(pem(first), csr, ca, now=NOW + datetime.timedelta(days=340))
    assert len(reasons) == 1 and reasons[0].startswith("expires"), reasons
    assert renewed.serial_number != first.serial_number
    assert pki_issue.not_after(renewed) > pki_issue.not_after(first)


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"names": ["DNS:dns.corp.example", "DNS:ns.corp.example", "IP:192.0.2.53"]}, "names"),
        ({"purposes": ["serverAuth", "clientAuth"]}, "extended key usage"),
        ({"key": True}, "its key is not the key of the request"),
        ({"ca": True}, "not issued by this CA"),
    ],
)
def test_a_certificate_that_differs_is_reissued(change, reason):
    ca = make_ca()
    key = new_key()
    first, _ = plan(None, plain_request(key), ca)
    wanted = host_wanted(change.get("names", HOST_NAMES), change.get("purposes", ["serverAuth"]))
    csr = plain_request(new_key() if change.get("key") else key)
    other_ca = make_ca() if change.get("ca") else ca
    cert, reasons = plan(pem(first), csr, other_ca, wanted=wanted)
    assert any(r.startswith(reason) for r in reasons), reasons
    assert cert.serial_number != first.serial_number


def test_a_certificate_signed_from_the_old_request_is_reissued():
    """What x509_certificate_pipe made of a hostile request is replaced on the next converge."""
    ca_cert, ca_key = make_ca()
    key = new_key()
    csr = x509.load_pem_x509_csr(hostile_request(key))
    old = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + datetime.timedelta(days=365))
    )
    for ext in csr.extensions:
        old = old.add_extension(ext.value, critical=ext.critical)
    old = old.sign(ca_key, hashes.SHA384())
    cert, reasons = plan(pem(old), plain_request(key), (ca_cert, ca_key))
    text = " | ".join(reasons)
    for expected in ("subject", "names", "extended key usage", "basicConstraints", "extensions the stack"):
        assert expected in text, text
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


def test_names_outside_the_name_constraints_are_refused():
    ca = make_ca(permitted=[x509.DNSName("corp.example"), x509.RFC822Name("corp.example")])
    assert plan(None, plain_request(new_key()), ca)[1]
    with pytest.raises(pki_issue.PkiError, match="DNS:mx.google.com outside the CA's name constraints"):
        plan(None, plain_request(new_key()), ca, wanted=host_wanted(["DNS:dns.corp.example", "DNS:mx.google.com"]))
    with pytest.raises(pki_issue.PkiError, match="email:eve@evil.example"):
        plan(
            None, plain_request(new_key()), ca, wanted=pki_issue.Wanted("x", ["email:eve@evil.example"], ["clientAuth"])
        )
    # A device certificate names no host: its common name counts as one if it has a dot (as OpenSSL sees it).
    device = pki_issue.Wanted("laptop.google.com", ["email:alice@corp.example"], ["clientAuth"])
    with pytest.raises(pki_issue.PkiError, match="DNS:laptop.google.com"):
        plan(None, plain_request(new_key()), ca, wanted=device)
    assert plan(
        None,
        plain_request(new_key()),
        ca,
        wanted=pki_issue.Wanted("alice-laptop", ["email:alice@corp.example"], ["clientAuth"]),
    )[1]
    # A suffix is no subdomain.
    with pytest.raises(pki_issue.PkiError, match="DNS:notcorp.example"):
        plan(None, plain_request(new_key()), ca, wanted=host_wanted(["DNS:notcorp.example"]))


@pytest.mark.parametrize(
    "names, purposes, message",
    [
        (["dns.corp.example"], ["serverAuth"], "expected DNS"),
        (["DNS:*.corp.example"], ["serverAuth"], "wildcard"),
        (["IP:not-an-ip"], ["serverAuth"], "not an IP"),
        ([], ["serverAuth"], "subject_alt_name is empty"),
        (["DNS:dns.corp.example"], ["codeSigning"], "extended_key_usage"),
    ],
)
def test_bad_wanted_data_is_refused(names, purposes, message):
    with pytest.raises(pki_issue.PkiError, match=message):
        pki_issue.Wanted("dns.corp.example", names, purposes)


# --- the module and the role's CA tasks, run by ansible-playbook on localhost ---


def run_playbook(tmp_path, text, *args):
    playbook = tmp_path / "play.yml"
    playbook.write_text(text)
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / "build" / "collections"),
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
    )
    out = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", str(playbook), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return json.loads(out.stdout[out.stdout.index("{") :])


def task_results(report, name):
    for play in report["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"] == name:
                return task["hosts"]["localhost"]
    raise AssertionError("no task %s" % name)


MODULE_PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: issue
      zerotrust.mailstack.stack_certificate:
        path: "{{ playbook_dir }}/host.pem"
        csr_path: "{{ playbook_dir }}/host.csr"
        ca_cert_path: "{{ playbook_dir }}/ca.pem"
        ca_key_path: "{{ playbook_dir }}/ca.key"
        common_name: dns.corp.example
        subject_alt_name: [DNS:dns.corp.example, IP:192.0.2.53]
        extended_key_usage: [serverAuth]
        mode: "0644"
"""


def test_module_issues_once_then_reports_no_change(tmp_path):
    ca_cert, ca_key = make_ca()
    (tmp_path / "ca.pem").write_bytes(pem(ca_cert))
    (tmp_path / "ca.key").write_bytes(key_pem(ca_key))
    (tmp_path / "host.csr").write_bytes(hostile_request(new_key()))

    checked = task_results(run_playbook(tmp_path, MODULE_PLAY, "--check", "--diff"), "issue")
    assert checked["changed"] and not (tmp_path / "host.pem").exists()
    assert "subject: CN=dns.corp.example" in checked["diff"]["after"]
    assert checked["diff"]["before"] == ""

    first = task_results(run_playbook(tmp_path, MODULE_PLAY), "issue")
    assert first["changed"] and first["reasons"] == ["no certificate yet"]
    assert (tmp_path / "host.pem").read_text() == first["certificate"]
    assert oct((tmp_path / "host.pem").stat().st_mode & 0o777) == "0o644"

    second = task_results(run_playbook(tmp_path, MODULE_PLAY), "issue")
    assert not second["changed"] and second["serial"] == first["serial"]


CA_PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    mailstack_domain: corp.example
    mailstack_state_dir: "{{ playbook_dir }}/state"
  tasks:
    - name: CA
      ansible.builtin.include_role:
        name: zerotrust.mailstack.pki
        tasks_from: ca
"""


def sign_directly(ca_dir, out, name):
    """A certificate for `name` made with the CA key by hand, bypassing the module."""
    ca_cert = x509.load_pem_x509_certificate((ca_dir / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((ca_dir / "ca.key").read_bytes(), None)
    key = new_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1))
        .not_valid_after(datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA384())
    )
    out.write_bytes(pem(cert))
    return out


def test_the_role_constrains_the_ca_to_the_stacks_domains(tmp_path):
    run_playbook(tmp_path, CA_PLAY, "-e", '{"pki_name_constraints": ["corp.example", "outside.example"]}')
    ca_dir = tmp_path / "state" / "pki"
    ca_cert = x509.load_pem_x509_certificate((ca_dir / "ca.pem").read_bytes())
    constraints = ca_cert.extensions.get_extension_for_class(x509.NameConstraints)
    assert constraints.critical
    assert set(constraints.value.permitted_subtrees) >= {x509.DNSName("corp.example"), x509.DNSName("outside.example")}

    def verify(name):
        cert = sign_directly(ca_dir, tmp_path / ("%s.pem" % name), name)
        return openssl("verify", "-CAfile", str(ca_dir / "ca.pem"), str(cert))

    for inside in ("mx.corp.example", "ext.outside.example"):
        assert verify(inside).returncode == 0, verify(inside).stderr
    for outside in ("mx.google.com", "corp.example.evil.example", "notcorp.example"):
        refused = verify(outside)
        assert refused.returncode != 0
        assert "permitted subtree violation" in refused.stdout + refused.stderr


def test_an_unconstrained_ca_is_reissued_from_its_key_and_old_certificates_still_verify(tmp_path):
    # The CA as the role made it before name constraints.
    run_playbook(tmp_path, CA_PLAY, "-e", '{"pki_name_constraints": []}')
    ca_dir = tmp_path / "state" / "pki"
    old_ca = x509.load_pem_x509_certificate((ca_dir / "ca.pem").read_bytes())
    with pytest.raises(x509.ExtensionNotFound):
        old_ca.extensions.get_extension_for_class(x509.NameConstraints)
    host = sign_directly(ca_dir, tmp_path / "host.pem", "mx.corp.example")

    run_playbook(tmp_path, CA_PLAY)
    new_ca = x509.load_pem_x509_certificate((ca_dir / "ca.pem").read_bytes())
    assert new_ca.extensions.get_extension_for_class(x509.NameConstraints).value.permitted_subtrees
    assert new_ca.serial_number != old_ca.serial_number
    assert pem(new_ca.public_key()) == pem(old_ca.public_key())
    assert openssl("verify", "-CAfile", str(ca_dir / "ca.pem"), str(host)).returncode == 0
    assert (tmp_path / "state" / "ca.pem").read_bytes() == (ca_dir / "ca.pem").read_bytes()
