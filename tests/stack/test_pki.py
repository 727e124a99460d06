"""ZT-PKI: every host proves its name with a certificate from the stack CA."""

import json
import re
import subprocess

import pytest
from conftest import ALL_HOSTS, STATE, run_playbook, sh

PORT = 8443


def peer_name(host):
    return "%s.%s" % (host, "outside.example" if host == "ext" else "corp.example")


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
    out = handshake("ext", peer_name(tls_server), peer_name(tls_server))
    assert out.returncode == 0, out.stdout[-500:] + out.stderr[-500:]
    assert "Verify return code: 0 (ok)" in out.stdout


@pytest.mark.parametrize("tls_server", ["ext"], indirect=True)
def test_outside_peer_certificate_verifies_from_mx(tls_server):
    out = handshake("mx", peer_name("ext"), peer_name("ext"))
    assert "Verify return code: 0 (ok)" in out.stdout, out.stderr[-500:]


@pytest.mark.parametrize("tls_server", ["mx"], indirect=True)
def test_certificate_is_refused_for_another_name(tls_server):
    out = handshake("ext", "mx.corp.example", "ldap.corp.example")
    assert out.returncode != 0
    assert "hostname mismatch" in out.stdout + out.stderr


# slapd is not root when it opens its key: on ldap the group openldap reads it.
KEY_GROUP = {"ldap": "openldap"}


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
    assert again.returncode == 0 and re.search(r"log\s+: ok=\d+\s+changed=0", again.stdout), again.stdout[-2000:]
    assert cert_serial("log") == after


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
