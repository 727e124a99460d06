"""ZT-BASE: minimal hosts, no login shells for services, journal on disk."""

import json
import re

import pytest
from conftest import ALL_HOSTS, inventory_host, recap_changed, run_playbook, sh

# Read-only checks, and runs on the filter's accounts and /root, which no other test uses.
# It reads every host's facts, so it runs in the same stream as the lockout guard's test.
pytestmark = pytest.mark.beside_mail_flow

NOLOGIN = {"/usr/sbin/nologin", "/sbin/nologin", "/bin/false", "/usr/bin/false"}


@pytest.mark.parametrize("host", ALL_HOSTS)
def test_service_accounts_have_no_login_shell(host):
    offenders = []
    for line in sh(host, "getent passwd", check=True).stdout.splitlines():
        name, _, uid, _, _, _, shell = line.split(":")
        if int(uid) < 1000 and name != "root" and shell not in NOLOGIN:
            offenders.append((name, shell))
    assert offenders == []


@pytest.mark.parametrize("host", ALL_HOSTS)
def test_unneeded_network_packages_are_absent(host):
    for package in ("telnet", "rsh-client", "xinetd", "avahi-daemon", "rpcbind"):
        status = sh(host, "dpkg-query -W -f='${Status}' %s 2>/dev/null" % package).stdout
        assert "install ok installed" not in status, package


@pytest.mark.parametrize("host", ALL_HOSTS)
def test_journal_is_persistent(host):
    sh(host, "logger -t zt-test persistent-journal-probe; journalctl --flush", check=True)
    assert sh(host, "ls /var/log/journal/*/system.journal").returncode == 0


@pytest.mark.parametrize("host", ALL_HOSTS)
def test_sensitive_directories_are_closed(host):
    assert sh(host, "stat -c %a /root /etc/cron.d").stdout.split() == ["700", "700"]


def test_a_run_asks_apt_only_for_packages_the_host_lacks():
    """The package list read once per run reaches the install tasks: packages a converged
    host has are not asked for again, while a package it lacks is."""
    result = run_playbook("tests/stack/playbooks/packages.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    missing = json.loads(re.search(r"MISSING=(\[.*?\])", result.stdout).group(1))
    assert missing == ["hello"]


def test_one_control_converges_alone_and_leaves_the_others_as_found():
    """Tasks carry their control id as a tag: `--tags ZT-BASE-04` on the site playbook puts
    back the closed /root (ZT-BASE-04) and nothing of another control, here a service
    account given a login shell (ZT-BASE-03). Its twin run with that tag takes the shell
    back, so each control is converged, and checked, on its own."""
    sh("filter", "chmod 755 /root && usermod -s /bin/sh daemon", check=True)
    try:
        first = run_playbook("playbooks/site.yml", "--limit", "filter", "--tags", "ZT-BASE-04")
        assert first.returncode == 0, first.stdout[-3000:]
        assert sh("filter", "stat -c %a /root").stdout.strip() == "700"
        assert sh("filter", "getent passwd daemon | cut -d: -f7").stdout.strip() == "/bin/sh"
        assert recap_changed(first.stdout, "filter") == 1, first.stdout[-1500:]

        second = run_playbook("playbooks/site.yml", "--limit", "filter", "--tags", "ZT-BASE-03")
        assert second.returncode == 0, second.stdout[-3000:]
        assert sh("filter", "getent passwd daemon | cut -d: -f7").stdout.strip() in NOLOGIN
        assert recap_changed(second.stdout, "filter") == 1, second.stdout[-1500:]
    finally:
        sh("filter", "chmod 700 /root && usermod -s /usr/sbin/nologin daemon")


@pytest.mark.parametrize("declared", [True, False], ids=["addresses declared", "addresses from facts"])
def test_a_run_limited_to_one_host_renders_the_other_hosts_addresses(addresses, declared):
    """A run with --limit needs the other hosts' addresses. Where the inventory declares
    none (mailstack_address), it reads their facts first. It once read them from the limited
    host itself (an ansible_host made from inventory_hostname, templated for the wrong host
    on delegation): the filter then resolved through itself and amavis let only itself in.
    Where the inventory declares them, as the local one does, no other host is visited.
    Either way the limited run renders exactly what the full converge did."""
    blank = [] if declared else ["-e", "mailstack_address="]
    result = run_playbook("playbooks/site.yml", "--limit", "filter", "--tags", "ZT-DNS-10,ZT-AV-02", *blank)
    assert result.returncode == 0, result.stdout[-3000:]
    reads = result.stdout.split("TASK [Read the addresses of the hosts outside the limit]")[1].split("TASK [")[0]
    visited = re.findall(r"^ok: \[filter1\.corp\.example -> (\S+)\]", reads, re.M)
    others = [] if declared else [inventory_host(host) for host in ALL_HOSTS if host != "filter"]
    assert sorted(visited) == sorted(others), result.stdout[:3000]
    assert recap_changed(result.stdout, "filter") == 0, result.stdout[-3000:]
    resolvers = re.findall(r"^nameserver (\S+)", sh("filter", "cat /etc/resolv.conf", check=True).stdout, re.M)
    assert resolvers == [addresses["dns"]]
    acl = sh("filter", "grep '^@inet_acl' /etc/amavis/conf.d/60-mailstack", check=True).stdout
    assert acl.strip() == "@inet_acl = ('%s');" % addresses["mx"]
