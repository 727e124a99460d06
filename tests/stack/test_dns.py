"""ZT-DNS: every host resolves through the stack's signed zones."""

import re

import pytest
from conftest import ALL_HOSTS, DOMAIN, STACK_HOSTS, STATE, copy_to, fqdn, run_playbook, sh


@pytest.mark.parametrize("host", ALL_HOSTS)
def test_host_resolves_through_the_stack_name_server(host, addresses):
    # dns answers itself; mx asks its own validating resolver, which forwards to dns.
    expected = "127.0.0.1" if host in ("dns", "mx") else addresses["dns"]
    nameservers = [
        line.split()[1]
        for line in sh(host, "cat /etc/resolv.conf").stdout.splitlines()
        if line.startswith("nameserver")
    ]
    assert nameservers == [expected]
    for peer in STACK_HOSTS:
        answer = sh(host, "getent ahostsv4 %s" % fqdn(peer), check=True).stdout.split()
        assert answer[0] == addresses[peer], "%s resolved %s wrongly" % (host, peer)


def test_mx_records_point_at_the_mail_hosts(addresses):
    assert sh("ext", "dig +short MX %s" % DOMAIN).stdout.strip() == "10 %s." % fqdn("mx")
    assert sh("mx", "dig +short MX outside.example").stdout.strip() == "10 %s." % fqdn("ext")
    assert sh("mx", "dig +short A %s" % fqdn("ext")).stdout.strip() == addresses["ext"]


@pytest.fixture(scope="module")
def anchors():
    copy_to("ext", STATE / "dns" / "trust-anchors.conf", "/tmp/trust-anchors.conf")
    return "/tmp/trust-anchors.conf"


@pytest.mark.parametrize(
    "zone, name",
    [
        ("corp.example", fqdn("mx")),
        ("corp.example", "corp.example MX"),
        ("outside.example", fqdn("ext")),
    ],
)
def test_dnssec_answers_validate_against_the_exported_anchor(anchors, addresses, zone, name):
    out = sh("ext", "delv -a %s +root=%s @%s %s" % (anchors, zone, addresses["dns"], name))
    assert "; fully validated" in out.stdout, out.stdout + out.stderr


def test_dnssec_validation_fails_with_a_wrong_anchor(anchors, addresses, tmp_path):
    # Change one character of each key: a validator must then refuse the answers.
    text = (STATE / "dns" / "trust-anchors.conf").read_text()
    bad = re.sub(r'(static-key 257 3 13 ")(.)', lambda m: m.group(1) + ("B" if m.group(2) == "A" else "A"), text)
    assert bad != text
    (tmp_path / "bad.conf").write_text(bad)
    copy_to("ext", tmp_path / "bad.conf", "/tmp/bad-anchors.conf")
    out = sh("ext", "delv -a /tmp/bad-anchors.conf +root=corp.example @%s %s" % (addresses["dns"], fqdn("mx")))
    assert "fully validated" not in out.stdout
    assert "resolution failed" in out.stdout + out.stderr


def test_zone_transfer_is_refused(addresses):
    out = sh("ext", "dig AXFR %s @%s" % (DOMAIN, addresses["dns"]))
    assert "Transfer failed" in out.stdout
    assert "IN\tA" not in out.stdout


def test_server_does_not_reveal_its_version(addresses):
    out = sh("ext", "dig +short CH TXT version.bind @%s" % addresses["dns"])
    assert "BIND" not in out.stdout and "9." not in out.stdout


def test_exported_ds_set_matches_the_served_key(addresses):
    ds = (STATE / "dns" / ("%s.ds" % DOMAIN)).read_text().split()
    assert ds[:3] == ["corp.example.", "IN", "DS"] and ds[5] == "2"
    served = sh(
        "dns",
        "dig +short DNSKEY %s @127.0.0.1 | grep '^257' | sed 's/^/%s. 3600 IN DNSKEY /' | dnssec-dsfromkey -2 -f - %s"
        % (DOMAIN, DOMAIN, DOMAIN),
    )
    assert served.stdout.split()[-1] == ds[-1]


def answered_in_a_burst(host, server, queries=60):
    """How many of `queries` simultaneous lookups of one name get an answer (no retry
    over TCP after a truncated reply, no second try: what a stub resolver counts on)."""
    burst = "for i in $(seq %d); do dig +short +tries=1 +timeout=3 +ignore @%s %s A & done; wait" % (
        queries,
        server,
        fqdn("ldap"),
    )
    return len(re.findall(r"^[0-9.]+$", sh(host, burst, check=True, timeout=60).stdout, re.M))


def test_stack_hosts_are_not_rate_limited_by_their_own_name_server(addresses):
    # Response rate limiting protects the Internet from reflection through the
    # authoritative zones. Left to apply to the stack's own hosts, it dropped the auth
    # daemon's lookups of the directory under ten concurrent logins (5 s stalls).
    assert answered_in_a_burst("imap", addresses["dns"]) == 60


def test_other_clients_are_still_rate_limited(addresses):
    # The twin: a client outside the stack gets at most the configured rate.
    assert answered_in_a_burst("ext", addresses["dns"]) < 60


ZONE_FILE = "/var/lib/bind/zones/corp.example.zone"
SECRET_CANARY = "/root/mailstack-secret-canary"


@pytest.fixture
def bind_plants():
    """Keep the zone file and a root-only secret bind must never reach; restore both."""
    sh("dns", f"printf SECRET-5e1f0b0b > {SECRET_CANARY} && chmod 600 {SECRET_CANARY}", check=True)
    sh("dns", f"cp -a {ZONE_FILE} /root/zone.keep", check=True)
    yield lambda command: sh("dns", "runuser -u bind -- sh -c '%s'" % command, check=True)
    sh("dns", f"rm -f {ZONE_FILE} && mv /root/zone.keep {ZONE_FILE} && rm -f {SECRET_CANARY}", check=True)
    sh("dns", "rndc reload corp.example", check=True)


def test_a_zone_file_swapped_for_a_link_does_not_show_its_target_in_the_run(bind_plants):
    """ZT-DNS-02: bind owns its zone directory. If it swaps a zone file for a link to a
    root-only secret, the converge must not read it (a --diff run would print it) nor
    write, chown or chmod through it; it stops on the link. The twin below passes."""
    bind_plants(f"ln -sfn {SECRET_CANARY} {ZONE_FILE}.lnk && mv -T {ZONE_FILE}.lnk {ZONE_FILE}")
    refused = run_playbook("--diff", "tests/stack/playbooks/dns.yml")
    output = refused.stdout + refused.stderr
    assert "5e1f0b0b" not in output
    assert sh("dns", f"cat {SECRET_CANARY}; stat -c ' %U:%G:%a' {SECRET_CANARY}").stdout == (
        "SECRET-5e1f0b0b root:root:600\n"
    )
    assert refused.returncode != 0, output[-3000:]


def test_the_zone_converge_passes_on_the_zone_files_as_written():
    accepted = run_playbook("--diff", "tests/stack/playbooks/dns.yml")
    assert accepted.returncode == 0, accepted.stdout[-3000:]
    assert "changed=0" in accepted.stdout
