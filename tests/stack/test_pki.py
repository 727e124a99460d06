"""ZT-PKI: every host proves its name with a certificate from the stack CA."""

import datetime
import json
import re
import subprocess

import pytest
from conftest import ALL_HOSTS, STACK_HOSTS, STATE, fqdn, recap_changed, run_playbook, sh, wait_for
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

PORT = 8443


@pytest.fixture
def tls_server(request):
    """A TLS server on the host using its installed key and certificate.

    The test port is no flow of the stack, so the fixture opens it in the
    host's firewall for the test and closes it again.
    """
    host = request.param
    sh(host, "pkill -f 'openssl s_server' || true")
    opened = sh(host, "nft list table inet mailstack >/dev/null 2>&1").returncode == 0
    if opened:
        sh(host, 'nft insert rule inet mailstack input tcp dport %d accept comment "pki-test"' % PORT, check=True)
    sh(
        host,
        "timeout 60 openssl s_server -quiet -accept %d -cert /etc/ssl/mailstack/host.pem "
        "-key /etc/ssl/mailstack/private/host.key -www >/dev/null 2>&1 &" % PORT,
        check=True,
    )
    sh(host, "for i in $(seq 50); do ss -ltn | grep -q ':%d ' && exit 0; sleep 0.1; done; exit 1" % PORT, check=True)
    yield host
    sh(host, "pkill -f 'openssl s_server' || true")
    if opened:
        sh(
            host,
            "nft -a list chain inet mailstack input | sed -n 's/.*\"pki-test\" # handle //p' "
            "| xargs -r -n1 nft delete rule inet mailstack input handle",
            check=True,
        )


def handshake(client, name, expect_name):
    return sh(
        client,
        "echo | openssl s_client -connect %s:%d -servername %s -verify_return_error "
        "-verify_hostname %s -CAfile /etc/ssl/mailstack/ca.pem" % (name, PORT, name, expect_name),
    )


@pytest.mark.parametrize("tls_server", [h for h in ALL_HOSTS if h != "ext"], indirect=True)
def test_certificate_verifies_for_the_name_peers_use(tls_server):
    out = handshake("ext", fqdn(tls_server), fqdn(tls_server))
    assert out.returncode == 0, out.stdout[-500:] + out.stderr[-500:]
    assert "Verify return code: 0 (ok)" in out.stdout


@pytest.mark.parametrize("tls_server", ["ext"], indirect=True)
def test_outside_peer_certificate_verifies_from_mx(tls_server):
    out = handshake("mx", fqdn("ext"), fqdn("ext"))
    assert "Verify return code: 0 (ok)" in out.stdout, out.stderr[-500:]


@pytest.mark.parametrize("tls_server", ["mx"], indirect=True)
def test_certificate_is_refused_for_another_name(tls_server):
    out = handshake("ext", fqdn("mx"), fqdn("ldap"))
    assert out.returncode != 0
    assert "hostname mismatch" in out.stdout + out.stderr


# slapd is not root when it opens its key: on ldap the group openldap reads it.
KEY_GROUP = {"ldap": "openldap", "filter": "amavis"}


@pytest.mark.parametrize("host", ALL_HOSTS)
def test_private_key_is_readable_by_its_owner_only(host):
    group = KEY_GROUP.get(host, "root")
    mode = "640" if host in KEY_GROUP else "600"
    assert sh(host, "stat -c '%a %U %G' /etc/ssl/mailstack/private/host.key").stdout.split() == [mode, "root", group]
    assert sh(host, "stat -c '%a %G' /etc/ssl/mailstack/private").stdout.split() == ["710", group]


def test_host_keys_never_reach_the_controller():
    keys = sorted(str(p.relative_to(STATE)) for p in STATE.rglob("*.key"))
    assert keys == [k for k in keys if k == "pki/ca.key" or k.startswith("pki/devices/")]
    assert oct((STATE / "pki" / "ca.key").stat().st_mode & 0o777) == "0o600"


def test_ca_is_a_constrained_ca():
    text = sh("ext", "openssl x509 -in /etc/ssl/mailstack/ca.pem -noout -text").stdout
    assert re.search(r"CA:TRUE, pathlen:0", text)
    assert "Certificate Sign" in text
    # ZT-PKI-06: it vouches for the stack's domains (and the test peer's) only.
    assert "X509v3 Name Constraints: critical" in text, text
    permitted = text.split("Permitted:", 1)[1]
    for subtree in ("DNS:corp.example", "DNS:outside.example", "email:corp.example"):
        assert subtree in permitted, text


def sign_with_the_ca_key(tmp_path, name):
    """A certificate for `name` made with the CA key by hand: what a stolen key or a
    signing path around the module could make. Returns its file."""
    ca_cert = x509.load_pem_x509_certificate((STATE / "pki" / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((STATE / "pki" / "ca.key").read_bytes(), None)
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(ec.generate_private_key(ec.SECP384R1()).public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA384())
    )
    path = tmp_path / ("%s.pem" % name)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_the_ca_cannot_vouch_for_names_outside_the_stack(tmp_path):
    def verify(name):
        return subprocess.run(
            ["openssl", "verify", "-CAfile", str(STATE / "ca.pem"), str(sign_with_the_ca_key(tmp_path, name))],
            capture_output=True,
            text=True,
        )

    assert verify("ldap.corp.example").returncode == 0
    for name in ("mx.google.com", "corp.example.evil.example"):
        refused = verify(name)
        assert refused.returncode != 0 and "permitted subtree violation" in refused.stdout + refused.stderr


HOST_PEM = "/etc/ssl/mailstack/host.pem"


@pytest.mark.parametrize("host", STACK_HOSTS)
def test_system_trust_store_does_not_hold_the_stack_ca(host):
    """Public delivery trusts the public bundle: the stack CA is only in the explicit CA file."""
    assert sh(host, "openssl verify -CAfile /etc/ssl/mailstack/ca.pem %s" % HOST_PEM).returncode == 0
    bundle = sh(host, "openssl verify -CAfile /etc/ssl/certs/ca-certificates.crt %s" % HOST_PEM)
    assert bundle.returncode != 0, bundle.stdout
    # Nor through OpenSSL's default file and directory (what a program without a CA file uses).
    assert sh(host, "openssl verify %s" % HOST_PEM).returncode != 0
    assert sh(host, "ls /usr/local/share/ca-certificates/").stdout.strip() == ""


@pytest.mark.parametrize("host", ALL_HOSTS)
def test_host_certificate_is_a_server_certificate_for_the_hosts_names_only(host):
    text = sh(host, "openssl x509 -in %s -noout -text" % HOST_PEM, check=True).stdout
    assert "CA:FALSE" in text
    eku = text.split("X509v3 Extended Key Usage:", 1)[1].splitlines()[1].strip()
    # The mx and the content filter also show their certificates to each other as clients.
    client = ", TLS Web Client Authentication" if host in ("mx", "filter") else ""
    assert eku == "TLS Web Server Authentication" + client, eku
    sans = text.split("X509v3 Subject Alternative Name:", 1)[1].splitlines()[1].strip().split(", ")
    dns = sorted(s for s in sans if s.startswith("DNS:"))
    assert "DNS:%s" % fqdn(host) in dns
    assert all(s.endswith((".corp.example", ".outside.example")) for s in dns), dns


HOSTILE = (
    "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes -keyout /root/attacker.key "
    "-out /root/hostile.csr -subj /CN={ldap} "
    "-addext subjectAltName=DNS:{ldap},DNS:mx.google.com "
    "-addext basicConstraints=critical,CA:TRUE -addext extendedKeyUsage=serverAuth,clientAuth,codeSigning"
).format(ldap=fqdn("ldap"))
# Root on the host keeps putting its request back, atomically, faster than a task runs:
# whatever the role's CSR task writes, the controller reads the hostile request.
OVERWRITE = (
    "nohup sh -c 'while :; do cp /root/hostile.csr /etc/ssl/mailstack/.h && "
    "mv /etc/ssl/mailstack/.h /etc/ssl/mailstack/host.csr; sleep 0.05; done' >/dev/null 2>&1 & echo $!"
)


def pubkey(host, command):
    return sh(host, command + " | openssl pkey -pubin -outform DER | sha256sum", check=True).stdout.split()[0]


def test_a_hostile_request_gets_only_the_controllers_names():
    """ZT-PKI-03: root on dns asks for the ldap host's name, mx.google.com, CA:TRUE and
    clientAuth; the controller issues a server certificate for dns's names only."""
    sh("dns", HOSTILE, check=True)
    loop = sh("dns", OVERWRITE, check=True).stdout.strip()
    try:
        run = run_playbook("tests/stack/playbooks/pki.yml", "-e", "target=dns")
    finally:
        sh("dns", "kill %s" % loop)
    assert run.returncode == 0, run.stdout[-3000:]
    # The request that reached the controller was the hostile one: the certificate has its key.
    attacker = pubkey("dns", "openssl pkey -in /root/attacker.key -pubout")
    assert pubkey("dns", "openssl x509 -in %s -noout -pubkey" % HOST_PEM) == attacker
    text = sh("dns", "openssl x509 -in %s -noout -text" % HOST_PEM, check=True).stdout
    assert fqdn("ldap") not in text and "mx.google.com" not in text, text
    assert "Subject: CN=%s" % fqdn("dns") in text
    assert "CA:FALSE" in text and "CA:TRUE" not in text
    assert "Client Authentication" not in text and "Code Signing" not in text
    assert "TLS Web Server Authentication" in text
    assert sh("dns", "openssl x509 -in %s -noout -checkhost %s" % (HOST_PEM, fqdn("ldap"))).stdout.count("NOT") == 1

    # The next converge puts the host's own key back (its request is its own again).
    sh("dns", "rm -f /root/attacker.key /root/hostile.csr", check=True)
    again = run_playbook("tests/stack/playbooks/pki.yml", "-e", "target=dns")
    assert again.returncode == 0, again.stdout[-3000:]
    own = pubkey("dns", "openssl pkey -in /etc/ssl/mailstack/private/host.key -pubout")
    assert pubkey("dns", "openssl x509 -in %s -noout -pubkey" % HOST_PEM) == own


def cert_serial(host):
    return sh(host, "openssl x509 -in /etc/ssl/mailstack/host.pem -noout -serial", check=True).stdout.strip()


def test_certificate_due_for_renewal_is_reissued_and_then_left_alone():
    before = cert_serial("log")
    # A renewal window longer than the validity makes the current certificate due.
    renew = run_playbook("tests/stack/playbooks/pki.yml", "-e", "target=log", "-e", "pki_renew_days=400")
    assert renew.returncode == 0, renew.stdout[-2000:]
    after = cert_serial("log")
    assert after != before
    assert sh("log", "openssl verify -CAfile /etc/ssl/mailstack/ca.pem /etc/ssl/mailstack/host.pem").returncode == 0
    again = run_playbook("tests/stack/playbooks/pki.yml", "-e", "target=log")
    assert again.returncode == 0 and recap_changed(again.stdout, "log") == 0, again.stdout[-2000:]
    assert cert_serial("log") == after


def served_serial(address, port):
    """Serial of the certificate a TLS port presents, as `openssl x509 -serial` prints it."""
    hello = subprocess.run(
        ["openssl", "s_client", "-connect", "%s:%d" % (address, port)],
        input="",
        capture_output=True,
        text=True,
        timeout=30,
    )
    return subprocess.run(
        ["openssl", "x509", "-noout", "-serial"], input=hello.stdout, capture_output=True, text=True
    ).stdout.strip()


def test_renewed_certificate_is_served_at_once(addresses):
    """A reissued certificate reaches the daemon in the same run, not at its next restart."""
    renew = run_playbook("tests/stack/playbooks/pki.yml", "-e", "target=imap", "-e", "pki_renew_days=400")
    assert renew.returncode == 0, renew.stdout[-2000:]
    on_disk = sh("imap", "openssl x509 -noout -serial -in /etc/ssl/mailstack/host.pem", check=True).stdout.strip()
    assert wait_for(lambda: served_serial(addresses["imap"], 993) == on_disk, 30), (
        served_serial(addresses["imap"], 993),
        on_disk,
    )


def test_device_certificate_is_a_client_certificate_of_the_stack_ca():
    device = {"pki_device_certificates": [{"name": "alice-laptop", "user": "alice@corp.example"}]}
    run = run_playbook("tests/stack/playbooks/pki.yml", "-e", "target=log", "-e", json.dumps(device))
    assert run.returncode == 0, run.stdout[-2000:]
    pem = STATE / "pki" / "devices" / "alice-laptop.pem"
    key = STATE / "pki" / "devices" / "alice-laptop.key"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    ca = STATE / "ca.pem"

    def verify(purpose):
        return subprocess.run(
            ["openssl", "verify", "-CAfile", str(ca), "-purpose", purpose, str(pem)], capture_output=True, text=True
        )

    assert verify("sslclient").returncode == 0
    assert verify("sslserver").returncode != 0
    text = subprocess.run(
        ["openssl", "x509", "-in", str(pem), "-noout", "-text"], capture_output=True, text=True
    ).stdout
    assert "email:alice@corp.example" in text
