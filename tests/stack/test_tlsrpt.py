"""ZT-TLSRPT-01: the mx reports how its outbound TLS sessions went (RFC 8460).

Postfix (3.10 and later) hands each session's result to the collector; a day later
the report daemon sends the day's report to every domain whose `_smtp._tls` record asks.
The test closes the collector's day at once (its development signal, SIGUSR2) and runs
the report daemon's unit on a database of its own, without the production spread of
the sending over the morning."""

import email
import email.policy
import gzip
import json
import time

import pytest
from conftest import sh, wait_for
from test_dmarc import mx_queue

PEER_POSTMASTER = "/var/mail/vhosts/outside.example/postmaster"
STATE = "/var/lib/tlsrpt"
SOCKET = "/var/spool/postfix/tlsrpt/tlsrpt.sock"
DROPIN = "/run/systemd/system/tlsrpt-reportd.service.d/zz-test.conf"
# The collector's sessions of today (UTC), as JSON rows: day, domain, record, policy,
# successes, failures, time.
TODAY_ROWS = (
    "python3 -c \"import json, sqlite3; db = sqlite3.connect('file:/var/lib/tlsrpt/collectd.sqlite?mode=ro', uri=True);"
    " print(json.dumps(db.execute('SELECT * FROM finalresults WHERE day = date()').fetchall()))\""
)

# Skipped only where Postfix itself says it has no such parameter, as the role does; an
# mx that cannot be asked fails the collection instead (check=True).
pytestmark = pytest.mark.skipif(
    sh("mx", "postconf -d -h smtp_tlsrpt_enable", check=True).stdout.strip() not in ("yes", "no"),
    reason="this Postfix (before 3.10) cannot report TLS sessions; the role says so and installs nothing",
)


def send_out(marker, *recipients):
    sh(
        "mx",
        "printf 'Subject: %s\\n\\nhello\\n' | sendmail -f demo@corp.example %s" % (marker, " ".join(recipients)),
        check=True,
    )
    maildirs = ["/var/mail/vhosts/%s/%s/new/" % tuple(reversed(recipient.split("@"))) for recipient in recipients]
    delivered = "grep -rl '%s' %s" % (marker, " ".join(maildirs))
    assert wait_for(lambda: len(sh("ext", delivered).stdout.split()) == len(maildirs)), recipients


def today():
    """Today's sessions so far, counted by domain."""
    sessions = {}
    for row in json.loads(sh("mx", TODAY_ROWS, check=True).stdout):
        sessions[row[1]] = sessions.get(row[1], 0) + row[4] + row[5]
    return sessions


def tls_reports(since):
    """The TLS report messages the peer's postmaster received after `since`, parsed."""
    paths = sh(
        "ext", "find %s/new %s/cur -type f -newermt @%d 2>/dev/null" % (PEER_POSTMASTER, PEER_POSTMASTER, since)
    ).stdout.split()
    messages = [
        email.message_from_string(sh("ext", "cat %s" % path, check=True).stdout, policy=email.policy.default)
        for path in paths
    ]
    return [message for message in messages if message["TLS-Report-Domain"]]


def document(report):
    (attachment,) = list(report.iter_attachments())
    assert attachment.get_content_type() == "application/tlsrpt+gzip"
    return json.loads(gzip.decompress(attachment.get_payload(decode=True)))


def remove_queued(recipient):
    """Delete the mx's queued messages to `recipient`."""
    for item in mx_queue():
        if any(r["address"] == recipient for r in item["recipients"]):
            sh("mx", "postsuper -d %s" % item["queue_id"], check=True)


@pytest.fixture(scope="module")
def reports():
    """A day of outbound mail to three domains of the peer's, the collector's day closed
    and the report daemon run on that day: the report mails, by the domain they report on.

    outside.example asks for reports and has an MTA-STS policy; wrongkey.outside.example
    asks too, and its published TLSA record does not match the key its host shows (the
    mail waits in the queue; the test removes it); dane.outside.example asks for none."""
    since = int(time.time())
    marker = "tlsrpt-%d" % since
    refused = "printf 'Subject: %s\\n\\nhello\\n' | sendmail -f demo@corp.example peer@wrongkey.outside.example"
    sh("mx", refused % marker, check=True)
    send_out(marker, "peer@outside.example", "peer@dane.outside.example")
    assert wait_for(lambda: {"wrongkey.outside.example", "outside.example"} <= set(today()), 20), today()
    sh("mx", "systemctl kill -s USR2 tlsrpt-collectd", check=True)
    # The day just closed is yesterday's to the daemon, which fetches it at once on a new database.
    environment = {"DBNAME": "%s/reportd-test.sqlite" % STATE, "SPREAD_OUT_DELIVERY": 1, "INTERVAL_MAIN_LOOP": 2}
    dropin = "[Service]\\n" + "".join("Environment=TLSRPT_REPORTD_%s=%s\\n" % item for item in environment.items())
    restart = "systemctl daemon-reload && systemctl restart tlsrpt-reportd"
    sh("mx", "mkdir -p %s && printf '%s' > %s" % (DROPIN.rsplit("/", 1)[0], dropin, DROPIN), check=True)
    try:
        sh("mx", "rm -f %s && %s" % (environment["DBNAME"], restart), check=True)
        sent = wait_for(lambda: len(tls_reports(since)) >= 2, 90)
        assert sent, sh("mx", "journalctl -u tlsrpt-reportd -n 30 --no-pager").stdout
        # The day's reports leave together; one more, had there been one, would be in by now.
        time.sleep(5)
    finally:
        sh("mx", "rm -f %s %s && %s" % (DROPIN, environment["DBNAME"], restart), check=True)
        remove_queued("peer@wrongkey.outside.example")
    return {message["TLS-Report-Domain"]: message for message in tls_reports(since)}


def test_a_domain_that_asks_gets_a_report_of_its_sessions(reports):
    report = reports["outside.example"]
    assert report["TLS-Report-Submitter"] == "corp.example"
    assert report.get_content_type() == "multipart/report" and report.get_param("report-type") == "tlsrpt"
    content = document(report)
    assert content["organization-name"] == "corp.example"
    assert content["contact-info"] == "postmaster@corp.example"
    (policy,) = content["policies"]
    # The peer's MTA-STS policy, as the resolver handed it to Postfix; every session a success.
    assert policy["policy"]["policy-type"] == "sts" and policy["policy"]["policy-domain"] == "outside.example"
    assert "mx: mx.outside.example" in policy["policy"]["policy-string"]
    assert policy["summary"]["total-successful-session-count"] >= 1
    assert policy["summary"]["total-failure-session-count"] == 0


def test_a_tlsa_record_that_does_not_match_is_reported_as_a_failure(reports):
    # What an attacker in the path (or a botched key roll-over) looks like to the owner.
    (policy,) = document(reports["wrongkey.outside.example"])["policies"]
    assert policy["policy"]["policy-type"] == "tlsa"
    assert policy["summary"]["total-successful-session-count"] == 0
    assert policy["summary"]["total-failure-session-count"] >= 1
    (failure, *_) = policy["failure-details"]
    assert failure["receiving-mx-hostname"] == "wrongkey.outside.example"
    assert failure["result-type"] == "certificate-not-trusted", failure


def test_a_domain_without_a_tlsrpt_record_gets_none(reports):
    # The same run delivered to dane.outside.example, which asks for no reports.
    assert sorted(reports) == ["outside.example", "wrongkey.outside.example"]


def datagram_as(user):
    """Whether `user` may write to the collector's socket (a one-byte datagram)."""
    send = "import socket; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b'x', '%s')" % SOCKET
    return sh("mx", 'runuser -u %s -- python3 -c "%s"' % (user, send)).returncode == 0


def collector_pid():
    return sh("mx", "systemctl show -p MainPID --value tlsrpt-collectd", check=True).stdout.strip()


def test_only_postfix_can_feed_the_collector():
    # A local account that could write there could make us report a failure (an attack
    # on the peer's TLS) that never happened, or hide one.
    assert datagram_as("postfix")
    assert not datagram_as("nobody")
    assert not datagram_as("opendkim")


def test_a_datagram_the_collector_cannot_read_does_not_stop_it():
    # tlsrpt-reporter 0.6.0 stops on one unless it has a file to keep it in (the role names one).
    kept = "%s/invalid-datagram" % STATE
    sh("mx", "rm -f %s" % kept, check=True)
    running = collector_pid()
    assert datagram_as("postfix")
    assert wait_for(lambda: sh("mx", "test -s %s" % kept).returncode == 0, 10)
    assert collector_pid() == running != "0"


def test_a_stopped_collector_never_holds_mail():
    # Reporting is advice: with the collector down, mail still leaves (and is reported
    # by nobody), and the collector comes back.
    sh("mx", "systemctl stop tlsrpt-collectd", check=True)
    try:
        send_out("tlsrpt-down-%d" % time.time(), "peer@outside.example")
    finally:
        sh("mx", "systemctl start tlsrpt-collectd", check=True)
    assert wait_for(lambda: sh("mx", "test -S %s" % SOCKET).returncode == 0, 20)
    before = today().get("outside.example", 0)
    send_out("tlsrpt-back-%d" % time.time(), "peer@outside.example")
    assert wait_for(lambda: today().get("outside.example", 0) > before, 20), today()
