"""ZT-NET: each host accepts only the flows its roles declare; the rest is dropped."""

import re

import pytest
from conftest import fqdn, sh


def reachable(client, server, port):
    """A TCP connection from one container to another succeeds within 5 seconds."""
    probe = "timeout 5 bash -c 'exec 3<>/dev/tcp/%s/%d' 2>/dev/null" % (fqdn(server), port)
    return sh(client, probe).returncode == 0


@pytest.mark.parametrize(
    ("client", "server", "port"),
    [
        ("ext", "imap", 993),
        ("ext", "mx", 25),
        ("ext", "mx", 587),
        ("ext", "mx", 443),
        ("mx", "imap", 24),
        ("imap", "ldap", 636),
        ("mx", "ldap", 636),
        ("imap", "ldap", 389),
    ],
)
def test_declared_flows_are_open(client, server, port):
    assert reachable(client, server, port)


# LMTP answers the mx hosts only; the directory answers imap and mx only; the
# login check has no network port (ZT-AUTH-05); nothing else is open.
@pytest.mark.parametrize(
    ("client", "server", "port"),
    [
        ("ext", "imap", 12345),
        ("ext", "imap", 24),
        ("ldap", "imap", 12345),
        ("mx", "imap", 12345),
        ("ext", "ldap", 636),
        ("ext", "ldap", 389),
        ("dns", "ldap", 636),
        ("ext", "imap", 143),
        ("ext", "mx", 10025),
        ("ext", "mx", 80),
        ("ext", "log", 514),
    ],
)
def test_undeclared_flows_are_dropped(client, server, port):
    assert not reachable(client, server, port)


def dropped(host):
    rule = sh(host, "nft list chain inet mailstack input | grep 'comment \"dropped\"'", check=True).stdout
    return int(re.search(r"counter packets (\d+)", rule).group(1))


def test_dropped_packets_are_counted_and_logged():
    # The kernel logs "mailstack-drop:" lines on hosts; a container's netfilter
    # log goes nowhere (nf_log_all_netns), so the test reads the drop counter.
    before = dropped("imap")
    assert not reachable("ext", "imap", 12345)
    assert dropped("imap") > before
    assert 'log prefix "mailstack-drop: "' in sh("imap", "nft list chain inet mailstack input", check=True).stdout
