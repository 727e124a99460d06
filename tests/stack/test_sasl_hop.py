"""ZT-AUTH-05: no login check on the network. Dovecot's auth protocol lets its client
state the service, the client address (which the throttle counts), that TLS was used
and that a valid client certificate was shown. So only the postfix user on the mx may
ask there, through a local socket, and only for SMTP; IMAP logins are asked by the imap
host's own TLS front end. Attacks from the admin network (the controller), the outside
peer and other users of the mx speak the auth protocol as a client would.
"""

import subprocess
import sys

import pytest
from conftest import sh
from test_identity import enroll, imap_login, reason_of

MX_SOCKET = "/var/spool/postfix/private/auth"
# A fake client address: the throttle counts per source, so a client that may state it dodges it.
FAKE_SOURCE = "rip=198.51.100.9"

# A client of Dovecot's auth protocol (version 1): handshake, one PLAIN request, the
# first word of the answer (OK, FAIL), or why it could not ask.
AUTH_CLIENT = r"""
import base64, os, socket, sys
target, service, user, password, extra = sys.argv[1:6]
try:
    if target.startswith("/"):
        conn = socket.socket(socket.AF_UNIX)
        conn.settimeout(15)
        conn.connect(target)
    else:
        host, port = target.rsplit(":", 1)
        conn = socket.create_connection((host, int(port)), timeout=15)
except OSError as exc:
    print("unreachable: %s" % (exc.strerror or exc))
    sys.exit(0)
stream = conn.makefile("rwb")
stream.write(b"VERSION\t1\t2\nCPID\t%d\n" % os.getpid())
stream.flush()
while not stream.readline().startswith(b"DONE"):
    pass
resp = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
fields = ["AUTH", "1", "PLAIN", "service=" + service] + [f for f in extra.split(",") if f] + ["resp=" + resp]
stream.write(("\t".join(fields) + "\n").encode())
stream.flush()
print(stream.readline().decode().split("\t")[0].strip() or "closed")
"""


def ask(where, target, service, user, password, extra="", as_user=None):
    """Ask a login check from a container (as `as_user`, or root) or, with where=None, the controller."""
    args = [target, service, user, password, extra]
    if where is None:
        # The controller cannot resolve the stack's names; the test passes addresses.
        run = subprocess.run([sys.executable, "-c", AUTH_CLIENT, *args], capture_output=True, text=True, timeout=60)
        return run.stdout.strip() or run.stderr
    quoted = " ".join("'%s'" % a for a in ["python3", "-c", AUTH_CLIENT.replace("'", "'\\''"), *args])
    command = "runuser -u %s -- %s" % (as_user, quoted) if as_user else quoted
    run = sh(where, command)
    return run.stdout.strip() or run.stderr


@pytest.fixture(scope="module")
def bob_device():
    """A device-bound app password of bob's and its device certificate (bob-hop)."""
    _, (app_id,), creds = enroll("bob", "app_name=hop", "app_device_bound=true", "device_cert=true")
    return creds["app_passwords"][app_id]["secret"]


def dovecot_tcp_ports(host):
    out = sh(host, "ss -Hltnp", check=True).stdout
    return {int(line.split()[3].rsplit(":", 1)[1]) for line in out.splitlines() if '"dovecot"' in line}


def test_login_check_listens_on_no_network_port():
    assert dovecot_tcp_ports("imap") == {993, 24}
    assert dovecot_tcp_ports("mx") == set()


@pytest.mark.parametrize("where", ["controller", "ext", "mx"])
def test_no_one_reaches_a_login_check_over_the_network(where, addresses, bob_device, imap):
    """The admin network, the outside peer and a non-postfix user of the mx try to claim
    bob's device certificate from a made-up address; nothing answers."""
    host = None if where == "controller" else where
    for target in ("%s:12345" % addresses["imap"], "%s:12345" % addresses["mx"]):
        claim = ask(host, target, "imap", "bob", bob_device, "secured,valid-client-cert," + FAKE_SOURCE, "nobody")
        assert claim.startswith("unreachable"), (where, target, claim)
    # Positive twin: the same password works through the real front end, with the certificate.
    assert imap_login(imap, "bob", bob_device, cert="bob-hop")


@pytest.fixture(scope="module")
def imap(addresses):
    return addresses["imap"]


def test_only_postfix_may_open_the_mx_login_socket(alice_smtp):
    for user in ("nobody", "opendkim"):
        refused = ask("mx", MX_SOCKET, "smtp", "alice", alice_smtp, "secured", user)
        assert refused.startswith("unreachable: Permission denied"), (user, refused)
    # Positive twin: the same request from the postfix user is checked and accepted.
    assert ask("mx", MX_SOCKET, "smtp", "alice", alice_smtp, "secured," + FAKE_SOURCE, "postfix") == "OK"


def test_device_binding_cannot_be_claimed_through_the_mx_socket(bob_device, imap):
    claim = ask("mx", MX_SOCKET, "imap", "bob", bob_device, "secured,valid-client-cert", "postfix")
    assert claim == "FAIL" and reason_of("bob", "mx") == "service-not-served"
    claim = ask("mx", MX_SOCKET, "smtp", "bob", bob_device, "secured,valid-client-cert", "postfix")
    assert claim == "FAIL" and reason_of("bob", "mx") == "app-scope"
    # Positive twin: with the device certificate, at the imap host's TLS front end.
    assert imap_login(imap, "bob", bob_device, cert="bob-hop")


@pytest.mark.parametrize(
    "socket",
    [
        "/run/dovecot/auth-client",
        "/run/dovecot/auth-login",
        "/run/dovecot/auth-userdb",
        "/run/mailstack-auth/auth.sock",
    ],
)
def test_dovecot_and_authd_sockets_on_mx_are_closed_to_other_users(socket):
    refused = ask("mx", socket, "smtp", "nobody-here", "x000000", "secured", "nobody")
    assert refused.startswith("unreachable: Permission denied"), refused


def test_root_on_mx_still_reaches_its_own_login_check():
    # The twin of the refusals above: the socket is there and answers its owner.
    assert ask("mx", "/run/dovecot/auth-client", "smtp", "nobody-here", "x000000", "secured") == "FAIL"


@pytest.fixture(scope="module")
def alice_smtp():
    """An smtp-scoped app password of alice's: the other stack tests change her password."""
    _, (app_id,), creds = enroll("alice", "app_name=hop-smtp", "app_scopes=smtp")
    return creds["app_passwords"][app_id]["secret"]
