"""ZT-STS: the stack publishes an MTA-STS policy and TLS-RPT address, and its MX
obeys the policies of the domains it delivers to — checked over the network.

The outside peer publishes an enforce policy naming its MX; the mx's resolver
must hand Postfix that policy, and mail must wait when the peer's certificate
no longer matches what the policy allows.
"""

import hashlib
import json
import re
import socket
import ssl
import time

import pytest
from conftest import STATE, fqdn, recap_changed, run_playbook, sh, wait_for

CA = STATE / "ca.pem"
POLICY_NAME = "mta-sts.corp.example"
POLICY = b"version: STSv1\r\nmode: enforce\r\nmx: %s\r\nmax_age: 604800\r\n" % fqdn("mx").encode()
SOCKETMAP = "socketmap:inet:127.0.0.1:8461:postfix"


def https_get(address, name=POLICY_NAME, path="/.well-known/mta-sts.txt", context=None):
    """(TLS version, status line, headers, body) of one HTTPS request with SNI `name`."""
    context = context or ssl.create_default_context(cafile=str(CA))
    raw = socket.create_connection((address, 443), timeout=20)
    with context.wrap_socket(raw, server_hostname=name) as tls:
        request = "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (path, name)
        tls.sendall(request.encode())
        data = b""
        while chunk := tls.recv(4096):
            data += chunk
        version = tls.version()
    head, _, body = data.partition(b"\r\n\r\n")
    status, _, headers = head.partition(b"\r\n")
    return version, status.decode(), headers.decode().lower(), body


def dig(name, rtype):
    return sh("ext", "dig +short %s %s" % (rtype, name), check=True).stdout.strip()


def test_policy_is_served_over_verified_https(addresses):
    version, status, headers, body = https_get(addresses["mx"])
    assert status.startswith("HTTP/1.1 200"), status
    assert "content-type: text/plain" in headers
    assert version in ("TLSv1.2", "TLSv1.3")
    assert body == POLICY


def test_policy_server_serves_nothing_else(addresses):
    assert https_get(addresses["mx"], path="/")[1].startswith("HTTP/1.1 404")
    # Another name on the same port: no handshake at all.
    with pytest.raises(ssl.SSLError):
        https_get(addresses["mx"], name=fqdn("mx"))
    # TLS 1.1 is refused by protocol version; TLS 1.2 works (the probe itself can do both).
    probe = "echo | timeout 20 openssl s_client -connect %s:443 -servername %s -cipher DEFAULT@SECLEVEL=0"
    probe %= (fqdn("mx"), POLICY_NAME)
    refused = sh("ext", probe + " -tls1_1 2>&1").stdout
    assert "alert protocol version" in refused and "Cipher is (NONE)" in refused, refused
    accepted = sh("ext", probe + " -tls1_2 2>&1").stdout
    assert re.search(r"Protocol\s*:\s*TLSv1\.2", accepted) and "Cipher is (NONE)" not in accepted, accepted
    # No plain HTTP: port 80 is neither served nor let through.
    with socket.socket() as probe:
        probe.settimeout(3)
        assert probe.connect_ex((addresses["mx"], 80)) != 0


def test_dns_publishes_the_policy_id_and_the_report_address():
    policy_id = hashlib.sha256(POLICY).hexdigest()[:20]
    assert dig("_mta-sts.corp.example", "TXT") == '"v=STSv1; id=%s"' % policy_id
    assert dig("_smtp._tls.corp.example", "TXT") == '"v=TLSRPTv1; rua=mailto:tlsrpt@corp.example"'
    assert dig("mta-sts.corp.example", "CNAME") == fqdn("mx") + "."


def peer_policy():
    return sh("mx", "postmap -q outside.example %s" % SOCKETMAP).stdout.strip()


def test_mx_applies_the_outside_peers_policy():
    answer = peer_policy()
    assert answer.startswith("secure ") and "match=%s" % fqdn("ext") in answer, answer


def mx_queue():
    listing = sh("mx", "postqueue -j", check=True).stdout
    return [json.loads(line) for line in listing.splitlines() if line.strip()]


def delivered_at_peer(marker):
    return sh("ext", "grep -rl '%s' /var/mail/vhosts/outside.example/peer/new/" % marker).returncode == 0


def set_peer_policy(mx):
    result = run_playbook("tests/stack/playbooks/peer_policy.yml", "-e", "peer_mx=%s" % mx)
    assert result.returncode == 0, result.stdout[-3000:]
    # The mx must see the new policy now, not when the TXT record's TTL runs out or the
    # daemon's cached policy ages (unbound and the daemon cache both): restart unbound and
    # start the daemon on an empty cache, so its next lookup fetches the policy afresh.
    sh(
        "mx",
        "systemctl stop postfix-mta-sts-resolver && rm -f /var/lib/mta-sts/cache.db"
        " && systemctl restart unbound && systemctl start postfix-mta-sts-resolver",
        check=True,
    )
    assert wait_for(lambda: "match=%s" % mx in peer_policy(), 90), peer_policy()


def test_mail_waits_when_the_peer_breaks_its_own_policy():
    """The peer's policy now names another MX: its MX no longer qualifies, so the mail
    is deferred, not sent over weaker TLS; with the right policy back it is delivered.
    Where the resolver names the policy to Postfix (ZT-TLSRPT-01), Postfix refuses the MX
    by the policy's pattern before it connects; otherwise the certificate, for the MX's
    own name, fails the policy's match."""
    marker = "mta-sts-mismatch-%d" % time.time()
    set_peer_policy("other.outside.example")
    queued_before = {m["queue_id"] for m in mx_queue()}
    since = int(time.time())
    try:
        sh(
            "mx",
            "printf 'Subject: %s\\n\\nwaits\\n' | sendmail -f postmaster@corp.example peer@outside.example" % marker,
            check=True,
        )
        refused = "does not match STS MX pattern for 'outside.example'"

        def deferred_for_the_policy():
            ours = [m for m in mx_queue() if m["queue_id"] not in queued_before and m["queue_name"] == "deferred"]
            reasons = [r.get("delay_reason", "") for m in ours for r in m["recipients"]]
            log = sh("mx", "journalctl -t postfix/smtp --since @%d --no-pager" % since).stdout
            return reasons and (refused in log or any("certificate" in reason for reason in reasons))

        assert wait_for(deferred_for_the_policy, 90), mx_queue()
        assert not delivered_at_peer(marker)
    finally:
        set_peer_policy(fqdn("ext"))
    sh("mx", "postqueue -f", check=True)
    assert wait_for(lambda: delivered_at_peer(marker), 90), "the deferred message never reached the peer"


def test_a_run_that_fails_later_still_applies_the_config_it_changed(addresses):
    """A converge that stops on an error must not leave a daemon running the old
    configuration: the next run finds the file already right and would never reload it.
    The policy server's config drifts and nginx is reloaded with it (nothing on 443);
    then a run restores the file and fails further on (a file stands where the records
    for the dns role go). The reload it notified must still happen: the policy is served
    again. Its twin, with nothing in the way, passes and changes nothing."""
    conf = "/etc/nginx/conf.d/mta-sts.conf"
    records = STATE / "records" / "corp.example"
    aside = records.with_name("corp.example.aside")
    sh("mx", f"cp -a {conf} /root/mta-sts.conf.keep", check=True)
    sh("mx", f"echo '# drifted: serves nothing' > {conf} && systemctl reload nginx", check=True)
    records.rename(aside)
    records.write_text("in the way\n")
    try:
        assert wait_for(lambda: sh("mx", "ss -Hltn 'sport = :443'").stdout.strip() == "", 20)
        failed = run_playbook("playbooks/site.yml", "--limit", "mx", "--tags", "ZT-STS-01,ZT-STS-02")
        assert failed.returncode != 0, failed.stdout[-3000:]
        assert sh("mx", f"cmp {conf} /root/mta-sts.conf.keep").returncode == 0
        assert wait_for(lambda: sh("mx", "ss -Hltn 'sport = :443'").stdout.strip() != "", 20), failed.stdout[-3000:]
        assert https_get(addresses["mx"])[3] == POLICY
    finally:
        records.unlink()
        aside.rename(records)
        sh("mx", f"cp -a /root/mta-sts.conf.keep {conf} && systemctl reload nginx")
    passed = run_playbook("playbooks/site.yml", "--limit", "mx", "--tags", "ZT-STS-01,ZT-STS-02")
    assert passed.returncode == 0, passed.stdout[-3000:]
    assert recap_changed(passed.stdout, "mx") == 0, passed.stdout[-1500:]
