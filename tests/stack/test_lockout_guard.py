"""ZT-NET-02: a ruleset that cuts the controller off is rolled back by the host itself.

The controller reaches the hosts as operators do, over SSH as the deploy account.
The log host declares no flow of its own yet, so converging its firewall alone
renders what site.yml renders. (The filter did too, until amavis came: converging
its firewall alone then dropped the mx's mail to amavis for the rest of the run.)
"""

import json
import time

import pytest
from conftest import (
    CUT_OFF_ROLLBACK_SECONDS,
    ROLLBACK_SECONDS,
    controller_cut_off,
    recap_changed,
    run_playbook,
    sh,
    ssh_login,
)

# Only log1's firewall changes (the filter's is rendered again, unchanged), and only the
# controller's SSH to log1 is ever cut (every declared flow stays): meanwhile the other
# stream's playbooks wait (controller_cut_off) and its sh() calls fall back to Podman.
pytestmark = pytest.mark.beside_mail_flow

HOST = "log"
UNREACHABLE_ADMIN = "192.0.2.1"


def fresh_ssh_login(host):
    return ssh_login(host).returncode == 0


def ruleset(host):
    # Without counters (-s): the other stream's probes may count a dropped packet meanwhile.
    return sh(host, "nft -s list table inet mailstack", check=True).stdout


def converge_firewall(*args, **overrides):
    overrides.setdefault("nftables_rollback_seconds", ROLLBACK_SECONDS)
    return run_playbook("tests/stack/playbooks/firewall.yml", "-l", HOST, "-e", json.dumps(overrides), *args)


def boot_ruleset(host):
    """The ruleset file nftables.service loads at boot."""
    return sh(host, "cat /etc/nftables.conf", check=True).stdout


def kept_copies(host):
    """Copies of the ruleset file kept for a rollback: none once a run is over."""
    return sh(host, "ls /etc/nftables.conf.*~ 2>/dev/null").stdout.split()


def test_ruleset_that_cuts_the_controller_off_is_rolled_back():
    """Even a run limited to the ruleset file's control (--tags ZT-NET-01) loads it under the
    guard: such a run once wrote the file and skipped the guard, leaving the ruleset that cut
    the controller off for the next boot to load, unguarded."""
    with controller_cut_off():
        before = ruleset(HOST)
        boot_before = boot_ruleset(HOST)
        assert fresh_ssh_login(HOST)
        result = converge_firewall(
            "--tags",
            "ZT-NET-01",
            nftables_admin_sources=[UNREACHABLE_ADMIN],
            nftables_rollback_seconds=CUT_OFF_ROLLBACK_SECONDS,
        )
        back = fresh_ssh_login(HOST)

    # The run says what happened instead of reporting success...
    assert result.returncode != 0, result.stdout
    assert "ZT-NET-02" in result.stdout and "rolled back" in result.stdout, result.stdout
    # ...and the host, on its own, is back on the ruleset it had, reachable again.
    assert ruleset(HOST) == before
    assert UNREACHABLE_ADMIN not in ruleset(HOST)
    assert back
    # So is the file loaded at boot: a reboot brings back the ruleset that kept the path open.
    assert boot_ruleset(HOST) == boot_before
    assert kept_copies(HOST) == []


def test_ruleset_that_keeps_the_controller_stays():
    """The positive twin: a change that keeps the management path is not rolled back."""
    try:
        result = converge_firewall(nftables_extra_flows=[{"name": "guard-probe", "port": 4242, "from": "any"}])
        assert result.returncode == 0, result.stdout
        time.sleep(ROLLBACK_SECONDS + 5)
        assert "4242" in ruleset(HOST)
        assert "4242" in boot_ruleset(HOST)
        assert kept_copies(HOST) == []
        assert fresh_ssh_login(HOST)
    finally:
        assert converge_firewall().returncode == 0
    assert "4242" not in ruleset(HOST)


def test_a_run_tagged_with_the_guard_alone_keeps_every_flow():
    """A run limited to the guard's control (--tags ZT-NET-02) renders the whole ruleset: it
    once declared no role's flows, so it loaded a ruleset without the filter's amavis ports
    (the mx's mail to the filter then waited in its queue). On the filter it changes nothing."""
    before = ruleset("filter")
    assert 'tcp dport { 10024, 10026 } accept comment "amavis"' in before
    result = run_playbook("playbooks/site.yml", "--limit", "filter", "--tags", "ZT-NET-02")
    assert result.returncode == 0, result.stdout[-3000:]
    assert recap_changed(result.stdout, "filter") == 0, result.stdout[-3000:]
    assert ruleset("filter") == before
