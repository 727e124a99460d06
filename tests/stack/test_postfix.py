"""ZT-SMTP / ZT-TLS: the MX refuses what it must, from outside, over the network."""

import json
import re
import smtplib
import socket
import ssl
import subprocess
import time

import pytest
from conftest import STATE, container, ext_source_address, fqdn, run_playbook, sh, wait_for

MX = fqdn("mx")
PEER = fqdn("ext")
CLIENT_HELO = "client.outside.example"


@pytest.fixture(scope="module")
def mx(addresses):
    return addresses["mx"]


@pytest.fixture(scope="module")
def tls_context():
    return ssl.create_default_context(cafile=str(STATE / "ca.pem"))


def smtp(address, port=25):
    return smtplib.SMTP(address, port, local_hostname=CLIENT_HELO, timeout=20)


def test_banner_names_no_software(mx):
    # postscreen's first line (a new client) and smtpd's: both name the host alone.
    with socket.create_connection((mx, 25), timeout=20) as conn:
        replies = conn.makefile("rb")
        banner = [replies.readline().decode()]
        while banner[-1][3:4] == "-":
            banner.append(replies.readline().decode())
    assert all(line[4:].startswith("%s ESMTP" % MX) for line in banner) and banner[-1].startswith("220 ")
    for word in ("Postfix", "Debian", "Ubuntu", "Linux"):
        assert word.lower() not in "".join(banner).lower()


def test_port_25_offers_tls_13_and_no_auth(mx, tls_context):
    with smtp(mx) as client:
        client.ehlo()
        assert "auth" not in client.esmtp_features
        client.starttls(context=tls_context)
        assert client.sock.version() == "TLSv1.3"
        client.ehlo()
        assert "auth" not in client.esmtp_features
        assert client.docmd("AUTH", "PLAIN AGRvZQBzZWNyZXQ=")[0] == 503


def test_open_relay_is_refused_at_rcpt(mx, tls_context):
    with smtp(mx) as client:
        client.starttls(context=tls_context)
        client.ehlo()
        assert client.mail("peer@outside.example")[0] == 250
        code, message = client.rcpt("victim@elsewhere.example")
    assert code == 554 and b"Relay access denied" in message


def test_open_relay_is_refused_from_the_outside_peer():
    out = sh(
        "ext",
        "swaks --server %s --ehlo %s --from peer@outside.example --to victim@elsewhere.example" % (MX, PEER),
    )
    assert out.returncode != 0
    assert "554 5.7.1" in out.stdout and "Relay access denied" in out.stdout


def test_unknown_recipient_is_rejected_at_rcpt(mx):
    with smtp(mx) as client:
        client.ehlo()
        client.mail("peer@outside.example")
        code, message = client.rcpt("nobody@corp.example")
        assert code == 550 and b"User unknown" in message
        assert client.rcpt("demo@corp.example")[0] == 250


def test_vrfy_is_disabled(mx):
    with smtp(mx) as client:
        assert client.docmd("VRFY", "demo@corp.example")[0] == 502


def test_helo_is_required_and_checked(mx):
    with smtp(mx) as client:
        assert client.docmd("MAIL FROM:<peer@outside.example>")[0] == 503
        assert client.docmd("HELO", "not_a_host")[0] == 250
        client.docmd("MAIL FROM:<peer@outside.example>")
        code, message = client.docmd("RCPT TO:<demo@corp.example>")
    assert code in (501, 504) and b"Helo command rejected" in message


def test_bare_lf_smuggling_probe_is_rejected(mx):
    """An end-of-data with bare LF (\\n.\\n) must not end the message and start another."""
    with socket.create_connection((mx, 25), timeout=20) as conn:
        stream = conn.makefile("rwb")

        def reply():
            lines = []
            while True:
                line = stream.readline().decode()
                lines.append(line)
                if len(line) < 4 or line[3] != "-":
                    return "".join(lines)

        reply()
        for command in (
            "EHLO %s" % CLIENT_HELO,
            "MAIL FROM:<peer@outside.example>",
            "RCPT TO:<demo@corp.example>",
            "DATA",
        ):
            stream.write(command.encode() + b"\r\n")
            stream.flush()
            assert reply()[0] in "23"
        smuggled = (
            b"Subject: probe\r\n\r\nfirst\n.\nMAIL FROM:<admin@corp.example>\r\n"
            b"RCPT TO:<demo@corp.example>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\n"
        )
        stream.write(smuggled)
        stream.flush()
        answer = reply()
    assert answer.startswith("5") and "bare <LF>" in answer, answer


@pytest.mark.parametrize("port, starttls", [(25, True), (587, True), (465, False)])
def test_tls_11_handshake_is_refused(port, starttls):
    base = "echo | timeout 20 openssl s_client -connect %s:%d %s -cipher DEFAULT@SECLEVEL=0" % (
        MX,
        port,
        "-starttls smtp" if starttls else "",
    )
    refused = sh("ext", base + " -tls1_1 2>&1").stdout
    assert "alert protocol version" in refused and "Cipher is (NONE)" in refused
    accepted = sh("ext", base + " -tls1_2 2>&1").stdout
    assert re.search(r"Protocol\s*:\s*TLSv1\.2", accepted) and "Cipher is (NONE)" not in accepted, accepted


def test_submission_requires_starttls_before_auth(mx):
    with smtp(mx, 587) as client:
        client.ehlo()
        assert "auth" not in client.esmtp_features
        code, message = client.docmd("AUTH", "PLAIN AGRlbW8Ac2VjcmV0")
        assert code == 530 and b"STARTTLS" in message
        assert client.docmd("MAIL FROM:<demo@corp.example>")[0] == 530


def test_implicit_tls_submission_verifies_for_the_mx_name(mx, tls_context):
    with (
        socket.create_connection((mx, 465), timeout=20) as raw,
        tls_context.wrap_socket(raw, server_hostname=MX) as conn,
    ):
        assert conn.version() == "TLSv1.3"
        assert conn.recv(512).startswith(b"220 ")


def test_mail_from_outside_is_accepted_over_tls_13():
    out = sh(
        "ext",
        "swaks --server %s --tls --ehlo %s --from peer@outside.example "
        "--to demo@corp.example --header 'Subject: inbound-probe'" % (MX, PEER),
    )
    assert out.returncode == 0, out.stdout[-1500:]
    assert "TLS started with cipher TLSv1.3" in out.stdout
    assert "250 2.0.0 Ok: queued" in out.stdout


def send_from_mx_and_wait(recipient, maildir, header=""):
    """Send from the mx to the outside peer; the smtp client's TLS log line of that delivery."""
    marker = "outbound-probe-%d" % time.time()
    sh(
        "mx",
        "printf '%sSubject: %s\\n\\nhello\\n' | sendmail -f demo@corp.example %s"
        % (header + "\\n" if header else "", marker, recipient),
        check=True,
    )
    assert wait_for(lambda: sh("ext", "grep -rl '%s' /var/mail/vhosts/%s/new/" % (marker, maildir)).returncode == 0), (
        "the message never reached %s" % recipient
    )
    log = sh("mx", "journalctl -t postfix/smtp --no-pager -n 300", check=True).stdout.splitlines()
    sent = [line for line in log if "to=<%s>" % recipient in line and "status=sent" in line][-1]
    pid = re.search(r"postfix/smtp\[(\d+)\]", sent).group(1)
    before = [line for line in log[: log.index(sent)] if "postfix/smtp[%s]" % pid in line]
    return [line for line in before if "TLS connection established" in line][-1]


VERIFIED = re.compile(r"Verified TLS connection established to %s\[[^]]+\]:25: TLSv1\.3" % re.escape(PEER))


def test_mail_to_a_dane_domain_leaves_over_dane_verified_tls():
    # dane.outside.example has no MTA-STS policy, so Postfix's default level applies:
    # dane, the peer's key matched against its DNSSEC-validated TLSA record.
    assert sh("mx", "postmap -q dane.outside.example socketmap:inet:127.0.0.1:8461:postfix").stdout.strip() == ""
    assert sh("mx", "postconf -h smtp_tls_security_level", check=True).stdout.strip() == "dane"
    assert VERIFIED.search(send_from_mx_and_wait("peer@dane.outside.example", "dane.outside.example/peer"))


def test_mail_to_outside_leaves_over_verified_tls():
    # outside.example publishes MTA-STS (enforce): verified against the CA, name matched.
    assert VERIFIED.search(send_from_mx_and_wait("peer@outside.example", "outside.example/peer"))


HOP_LOG = "journalctl -t postfix/amavis/smtp -t postfix/lmtp -t postfix/reinjection/smtpd --no-pager -n 400"


def hop_tls_lines(first_queue_id):
    """The TLS line of each hop that took one message from outside to its mailbox: the
    mx's hand-off to amavis, then (under the queue id of the copy amavis handed back)
    its LMTP delivery to the imap host. Each delivery opens its own TLS connection, and
    the client process logs the connection before the delivery."""
    returned = re.compile(r"\]: (\w+): client=.*orig_queue_id=%s," % first_queue_id)

    def sent_line(log, queue_id):
        sent = [line for line in log if "%s: to=<demo@corp.example>" % queue_id in line and "status=sent" in line]
        return sent[-1] if sent else None

    found = []

    def delivered():
        log = sh("mx", HOP_LOG).stdout.splitlines()
        second = [match.group(1) for match in map(returned.search, log) if match]
        found[:] = [log, second[0]] if second and sent_line(log, second[0]) else []
        return bool(found)

    assert wait_for(delivered), "message %s never reached the mailbox" % first_queue_id
    log, second_queue_id = found
    lines = []
    for queue_id in (first_queue_id, second_queue_id):
        sent = sent_line(log, queue_id)
        client = re.search(r"(postfix/(?:amavis/smtp|lmtp)\[\d+\])", sent).group(1)
        before = [line for line in log[: log.index(sent)] if client in line and "TLS connection established to" in line]
        lines.append(before[-1].split("]: ", 1)[1])
    return lines


@pytest.mark.parametrize("extra_header", ["", "TLS-Required: No"])
def test_a_header_from_outside_cannot_relax_the_stacks_own_hops(extra_header):
    # RFC 8689 lets a sender waive TLS policy for its message ("TLS-Required: no"), and
    # Postfix 3.10 honours that by default on every hop it makes: an outsider adding the
    # header had the mx hand its message to amavis and to Dovecot unverified (level may,
    # plaintext if TLS failed). The stack's own hops verify every message's peer.
    marker = "hop-%d" % time.time()
    header = "--add-header '%s'" % extra_header if extra_header else ""
    sent = sh(
        "ext",
        "swaks --helo %s --server %s --tls --from peer@outside.example --to demo@corp.example"
        " --h-From peer@outside.example --h-Subject %s %s" % (PEER, MX, marker, header),
        check=True,
    )
    first_queue_id = re.search(r"queued as (\w+)", sent.stdout).group(1)
    to_filter, to_mailbox = hop_tls_lines(first_queue_id)
    assert to_filter.startswith("Verified TLS connection established to %s" % fqdn("filter")), to_filter
    assert to_mailbox.startswith("Verified TLS connection established to %s" % fqdn("imap")), to_mailbox


# Skipped only where Postfix itself says it has no such parameter (a warning, nothing on
# stdout); an mx that cannot be asked fails the collection instead (check=True).
@pytest.mark.skipif(
    "tls_required_enable" not in sh("mx", "postconf -d tls_required_enable", check=True).stdout,
    reason="Postfix before 3.10 knows no TLS-Required header",
)
def test_only_outbound_delivery_honours_a_senders_tls_waiver():
    # The other side of the test above: the outbound smtp service keeps RFC 8689's
    # behaviour (postfix_outbound_tls_required_header), so a waiver the sender put on
    # its own message leaves at level may, not DANE-verified.
    line = send_from_mx_and_wait("peer@outside.example", "outside.example/peer", header="TLS-Required: no")
    assert "TLS connection established to %s" % PEER in line and not VERIFIED.search(line), line


def test_mx_resolver_validates_the_stack_zones():
    answer = sh("mx", "dig +dnssec %s @127.0.0.1" % PEER).stdout
    flags = re.search(r"^;; flags:([^;]*);", answer, re.M).group(1).split()
    assert "ad" in flags, answer


def test_published_tlsa_matches_the_mx_key():
    published = sh("ext", "dig +short TLSA _25._tcp.%s" % MX).stdout.split()
    digest = sh(
        "mx",
        "openssl x509 -in /etc/ssl/mailstack/host.pem -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum",
        check=True,
    ).stdout.split()[0]
    assert published[:3] == ["3", "1", "1"]
    assert "".join(published[3:]).lower() == digest


def test_dane_refuses_a_peer_whose_key_does_not_match_its_tlsa():
    good = sh("mx", "posttls-finger -c -l dane -t 10 '[%s]:25' 2>&1" % PEER).stdout
    assert "Verified TLS connection established" in good, good
    bad = sh("mx", "posttls-finger -c -l dane -t 10 '[wrongkey.outside.example]:25' 2>&1").stdout
    assert "Verified TLS connection established" not in bad
    assert "Untrusted TLS connection established" in bad or "not verified" in bad, bad


def test_connection_rate_limit_answers_4xx():
    """From an address of its own, so the limit does not touch the other tests' client.

    The client waits for the whole greeting, as an MTA does: postscreen (ZT-SMTP-12) then
    passes it to smtpd at once from the second connection on, and smtpd counts."""
    script = (
        "import socket,sys\n"
        "codes=[]\n"
        "for i in range(40):\n"
        "    s=socket.create_connection(('%s',25),timeout=30,source_address=('%s',0))\n"
        "    f=s.makefile('rb'); line=f.readline()\n"
        "    while line[:4]==b'220-': line=f.readline()\n"
        "    codes.append(line[:3].decode()); s.sendall(b'QUIT\\r\\n'); s.close()\n"
        "print(' '.join(codes))\n"
    )
    with ext_source_address(250) as source:
        mx = sh("ext", "getent ahostsv4 %s | head -1 | cut -d' ' -f1" % MX, check=True).stdout.strip()
        codes = sh("ext", 'python3 -c "%s"' % (script % (mx, source)), check=True).stdout.split()
    assert codes[:30] == ["220"] * 30
    assert "421" in codes[30:]


def mail_from_code(address, tls_context=None):
    with smtp(address) as client:
        if tls_context:
            client.starttls(context=tls_context)
        client.ehlo()
        return client.mail("peer@outside.example")


def test_mandatory_inbound_tls_refuses_plaintext_mail(mx, tls_context):
    """postfix_inbound_tls: encrypt (closed deployments): no envelope without TLS."""
    sh("mx", "cp -a /etc/postfix/main.cf /root/main.cf.keep", check=True)
    switched = run_playbook("tests/stack/playbooks/postfix.yml", "-e", "postfix_inbound_tls=encrypt")
    try:
        assert switched.returncode == 0, switched.stdout[-3000:]
        code, message = mail_from_code(mx)
        assert code == 530 and b"STARTTLS" in message
        assert mail_from_code(mx, tls_context)[0] == 250
    finally:
        # The converged file back, as a second converge would write it, in a fraction of its time.
        sh("mx", "cp -a /root/main.cf.keep /etc/postfix/main.cf && postfix reload", check=True)
    # Opportunistic again, the Internet default (once the reload reached the listeners).
    assert wait_for(lambda: mail_from_code(mx)[0] == 250, 20)


def queue_ids(queue=None):
    """Ids of the messages in the mx's queue (or in one of its queues, e.g. deferred)."""
    listing = [json.loads(line) for line in sh("mx", "postqueue -j", check=True).stdout.splitlines() if line.strip()]
    return {item["queue_id"] for item in listing if queue in (None, item["queue_name"])}


def test_mail_waits_while_imap_is_down_survives_a_restart_then_arrives():
    # A fault defers mail, it never loses it: LMTP down -> 4xx, the message
    # stays queued on the persistent spool across a restart of mx.
    marker = "queued-probe-%d" % time.time()
    sh("imap", "systemctl stop dovecot", check=True)
    try:
        out = sh(
            "ext",
            "swaks --server %s --tls --ehlo %s --from peer@outside.example "
            "--to demo@corp.example --header 'Subject: %s'" % (MX, PEER, marker),
        )
        assert "250 2.0.0 Ok: queued" in out.stdout, out.stdout[-1500:]
        # Scanned first (the content filter hands it back under a new id), then deferred.
        assert wait_for(lambda: queue_ids("deferred")), "the message was not kept in the queue"
        before = queue_ids("deferred")
        subprocess.run(["podman", "restart", container("mx")], check=True, capture_output=True)
        sh("mx", "systemctl is-system-running --wait", timeout=120)
        assert before <= queue_ids()
    finally:
        sh("imap", "systemctl start dovecot", check=True)
    # Postfix may still be starting after the restart; then postqueue says the mail system is down.
    assert wait_for(lambda: sh("mx", "postqueue -f").returncode == 0), "Postfix did not come back after the restart"
    delivered = wait_for(lambda: sh("imap", "grep -rl '%s' /var/vmail/demo/Maildir/new/" % marker).returncode == 0)
    assert delivered, "the queued message never reached the mailbox"


def test_a_burst_to_one_mailbox_is_delivered_without_a_deferral():
    # 200 messages to one user over 10 sessions: Postfix may open no more LMTP sessions
    # to the mailbox host than Dovecot lets one user have, and every lookup a delivery
    # makes reaches the auth daemon, so none is answered 451 and retried minutes later.
    # Sent from the mx's loopback, which is in mynetworks and so not rate limited; as
    # many sessions as postscreen lets any one client have at once (ZT-SMTP-12).
    since = int(time.time())
    sender = "burst-%d@outside.example" % since
    sent = sh(
        "mx",
        "smtp-source -M %s -s 10 -m 200 -l 2048 -f %s -t bob@corp.example 127.0.0.1:25" % (MX, sender),
        timeout=300,
    )
    assert sent.returncode == 0, sent.stderr[-1500:]
    assert wait_for(lambda: not sh("mx", "postqueue -j", check=True).stdout.strip(), 300), "the burst was not drained"
    log = sh("mx", "journalctl -t postfix/qmgr -t postfix/lmtp -o cat --no-pager --since @%d" % since, check=True)
    # Each message is queued twice (as received, and as the content filter hands it back);
    # LMTP delivers each once, and a deferral would add a line.
    burst = set(re.findall(r"^(\w+): from=<%s>" % re.escape(sender), log.stdout, re.M))
    outcomes = re.findall(r"^(\w+): to=<bob@corp\.example>.* status=(\w+)", log.stdout, re.M)
    outcomes = [status for queue_id, status in outcomes if queue_id in burst]
    assert len(burst) == 400
    assert outcomes == ["sent"] * 200, sorted(set(outcomes))
