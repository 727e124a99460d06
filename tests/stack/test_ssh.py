"""ZT-SSH: the admin path. Keys only, no root, only the allowed groups, modern algorithms.

The controller is on the management network (the only place that reaches port 22);
each refusal is paired with the same login or scan succeeding where it should.
"""

import json
import os
import subprocess
import sys

import pytest
from conftest import (
    CUT_OFF_ROLLBACK_SECONDS,
    ROLLBACK_SECONDS,
    STACK_HOSTS,
    STATE,
    controller_cut_off,
    run_playbook,
    sh,
    ssh_login,
)

# sshd's policy changes on log1 alone (cut off under controller_cut_off, as in the lockout
# guard's test); elsewhere it is only read, or refused before it is written. The extra sshd
# and account are the tests' own (on ext, and 'intruder' on mx).
pytestmark = pytest.mark.beside_mail_flow

KEY = STATE / "ssh" / "deploy_ed25519"
SSH_AUDIT = os.path.join(os.path.dirname(sys.executable), "ssh-audit")


def audit(address, port=22):
    """ssh-audit's findings of level warn or fail: ["kex curve25519-sha256: warn ...", ...]."""
    out = subprocess.run([SSH_AUDIT, "-j", "-p", str(port), address], capture_output=True, text=True, timeout=60).stdout
    report = json.loads(out)
    findings = []
    for section in ("kex", "key", "enc", "mac"):
        for algorithm in report.get(section, []):
            for level in ("fail", "warn"):
                for note in algorithm.get("notes", {}).get(level, []):
                    findings.append("%s %s: %s %s" % (section, algorithm["algorithm"], level, note))
    return findings


@pytest.mark.parametrize("host", STACK_HOSTS)
def test_ssh_offers_no_weak_algorithm(host, addresses):
    assert audit(addresses[host]) == []


def test_the_same_audit_flags_a_stock_sshd(addresses):
    """The scan can fail: an sshd on its compiled-in defaults is flagged."""
    sh(
        "ext",
        "/usr/sbin/sshd -f /dev/null -p 2222 -o PidFile=/run/sshd-stock.pid "
        "-h /etc/ssh/ssh_host_ed25519_key -h /etc/ssh/ssh_host_ecdsa_key -h /etc/ssh/ssh_host_rsa_key",
        check=True,
    )
    try:
        findings = audit(addresses["ext"], 2222)
    finally:
        sh("ext", "kill $(cat /run/sshd-stock.pid)")
    assert any(finding.startswith("kex ") for finding in findings), findings
    assert any(finding.startswith("mac ") for finding in findings), findings


@pytest.mark.parametrize("host", ["mx", "ldap"])
def test_deploy_account_logs_in_with_its_key_and_elevates(host):
    result = ssh_login(host, command="sudo -n id -u")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"


@pytest.mark.parametrize("host", ["mx", "ldap"])
def test_root_cannot_log_in_even_with_an_authorized_key(host):
    public = (KEY.parent / (KEY.name + ".pub")).read_text().strip()
    sh(host, "install -d -m 0700 /root/.ssh && echo '%s' > /root/.ssh/authorized_keys" % public, check=True)
    try:
        result = ssh_login(host, "root")
    finally:
        sh(host, "rm -f /root/.ssh/authorized_keys")
    assert result.returncode == 255 and "Permission denied" in result.stderr, result.stderr


def test_a_key_outside_the_allowed_groups_is_refused():
    """An account with the deploy key but in no allowed group; the same account once in the group logs in."""
    public = (KEY.parent / (KEY.name + ".pub")).read_text().strip()
    sh(
        "mx",
        "useradd --create-home --shell /bin/bash intruder && install -d -m 0700 -o intruder /home/intruder/.ssh"
        " && echo '%s' > /home/intruder/.ssh/authorized_keys && chown intruder /home/intruder/.ssh/authorized_keys"
        % public,
        check=True,
    )
    try:
        refused = ssh_login("mx", "intruder", command="true")
        sh("mx", "usermod -aG mailstack-deploy intruder", check=True)
        admitted = ssh_login("mx", "intruder", command="true")
    finally:
        sh("mx", "userdel --remove intruder")
    assert refused.returncode == 255 and "Permission denied" in refused.stderr, refused.stderr
    assert admitted.returncode == 0, admitted.stderr


def test_passwords_are_never_asked_for():
    """The server offers public-key authentication only (no password, no keyboard-interactive)."""
    result = ssh_login(
        "mx", "deploy", "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password,keyboard-interactive"
    )
    assert result.returncode == 255
    assert "Permission denied (publickey)." in result.stderr, result.stderr


def test_a_policy_that_would_lock_the_converge_out_is_refused_before_it_is_written():
    """ZT-SSH-02: allowing only a group the deploy account is not in stops the run
    before sshd's policy changes; the same run with the shipped groups passes."""
    dropin = "/etc/ssh/sshd_config.d/00-mailstack.conf"
    before = sh("filter", "sha256sum %s" % dropin, check=True).stdout
    refused = run_playbook(
        "tests/stack/playbooks/base.yml", "-e", "target=filter", "-e", '{"base_ssh_allow_groups": ["sshonly"]}'
    )
    assert refused.returncode != 0
    assert "ZT-SSH-02: this converge logs in over SSH as 'deploy'" in refused.stdout, refused.stdout[-3000:]
    assert sh("filter", "sha256sum %s" % dropin, check=True).stdout == before

    accepted = run_playbook("tests/stack/playbooks/base.yml", "-e", "target=filter")
    assert accepted.returncode == 0, accepted.stdout[-3000:]
    assert "changed=0" in accepted.stdout


DROPIN = "/etc/ssh/sshd_config.d/00-mailstack.conf"
# The lockout guard's test host; its runs that cut the controller off hold controller_cut_off.
GUARDED = "log"


def converge_sshd(**overrides):
    """The sshd part of the base role on the guarded host (--tags ZT-SSH-01, the run that once
    skipped the guard), with the tests' rollback delay unless the caller sets one."""
    overrides.setdefault("base_sshd_rollback_seconds", ROLLBACK_SECONDS)
    extra = ["-e", "target=%s" % GUARDED, "-e", json.dumps(overrides)]
    return run_playbook("tests/stack/playbooks/base.yml", *extra, "--tags", "ZT-SSH-01")


def sshd_state():
    """The drop-in, the addresses sshd listens on, and any copy the guard kept."""
    return sh(
        GUARDED,
        "sha256sum %s; ss -Hltn 'sport = :22' | awk '{print $4}' | sort; ls %s.*~ 2>/dev/null" % (DROPIN, DROPIN),
    ).stdout


def test_a_policy_that_cuts_the_controller_off_is_rolled_back():
    """ZT-SSH-03: the pre-check (ZT-SSH-02) knows the allowed groups, not every way a policy
    can shut the controller out. sshd on loopback alone passes `sshd -t` and the pre-check;
    the host puts the previous policy back by itself and the controller logs in anew."""
    with controller_cut_off():
        before = sshd_state()
        assert ssh_login(GUARDED).returncode == 0
        cut = converge_sshd(base_sshd_listen=["127.0.0.1"], base_sshd_rollback_seconds=CUT_OFF_ROLLBACK_SECONDS)
        back = ssh_login(GUARDED)
    assert cut.returncode != 0, cut.stdout[-3000:]
    assert "ZT-SSH-03" in cut.stdout and "rolled back" in cut.stdout, cut.stdout[-3000:]
    assert back.returncode == 0, back.stderr
    assert sshd_state() == before


def test_a_policy_that_keeps_the_controller_stays(addresses):
    """The twin: sshd on the host's own address keeps the management path; the guard's
    timer is disarmed and the policy stays. The shipped policy is converged back after."""
    own = addresses[GUARDED]
    try:
        kept = converge_sshd(base_sshd_listen=[own])
        assert kept.returncode == 0, kept.stdout[-3000:]
        assert "rolled back" not in kept.stdout
        assert sh(GUARDED, "systemctl is-active mailstack-sshd-rollback.timer").stdout.strip() != "active"
        assert sshd_state().split("\n")[1] == "%s:22" % own
        assert ssh_login(GUARDED).returncode == 0
    finally:
        assert converge_sshd().returncode == 0
    assert "0.0.0.0:22" in sshd_state()
