"""ZT-DMARC-06: the mx sends DMARC aggregate reports to the domains that ask for them.

The outside peer's domain asks for reports to its postmaster; one of its subdomains asks
for them to go to an address of ours, which never agreed in its DNS: that one is not sent.
"""

import email
import email.policy
import gzip
import time
import xml.etree.ElementTree as ET

import pytest
from conftest import sh, wait_for
from test_dmarc import delivered_headers, mx_queue, new_marker, send

PEER_POSTMASTER = "/var/mail/vhosts/outside.example/postmaster"
OUR_POSTMASTER = "/var/vmail/demo/Maildir"  # postmaster@corp.example is an alias of demo
JOB = "mailstack-dmarc-reports.service"


def run_job():
    sh("mx", "systemctl start %s" % JOB, check=True, timeout=120)


def reports(host, maildir, domain):
    """The report messages for `domain` in a Maildir, parsed."""
    subject = "Report Domain: %s Submitter: corp.example" % domain
    paths = sh(host, "grep -rl '%s' %s/new %s/cur 2>/dev/null" % (subject, maildir, maildir)).stdout.split()
    messages = [email.message_from_string(sh(host, "cat %s" % path, check=True).stdout, policy=email.policy.default)
                for path in paths]  # fmt: skip
    # TLS reports (ZT-TLSRPT-01) have the same Subject; they name their domain in a header.
    return [message for message in messages if not message["TLS-Report-Domain"]]


def feedback(message):
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_content_type() == "application/gzip"
    return ET.fromstring(gzip.decompress(attachment.get_payload(decode=True)))  # noqa: S314 - our own mx's report


def begins(message):
    return int(feedback(message).findtext("report_metadata/date_range/begin"))


@pytest.fixture(scope="module")
def reported(addresses):
    """What earlier tests left is reported first; then one signed message from the peer and
    one its quarantine subdomain disowns, and the job runs. The reports of this run: those
    whose period begins after the first run (the first run's may still be on their way)."""
    run_job()
    started = int(time.time())
    sh("imap", "grep -rl 'Report Domain: ' %s/new %s/cur | xargs -r rm -f" % (OUR_POSTMASTER, OUR_POSTMASTER))
    accepted, held = new_marker("report"), new_marker("report-held")
    assert "250 2.0.0 Ok: queued" in send(accepted, "Peer <peer@outside.example>", sign=True)
    assert "250 2.0.0 Ok: queued" in send(held, "News <news@quarantine.outside.example>")
    delivered_headers(accepted)
    on_hold = lambda: [m for m in mx_queue() if m["queue_name"] == "hold"]  # noqa: E731
    assert wait_for(on_hold, 60), mx_queue()
    for message in on_hold():
        sh("mx", "postsuper -d %s hold" % message["queue_id"], check=True)
    run_job()
    fresh = lambda: [m for m in reports("ext", PEER_POSTMASTER, "outside.example") if begins(m) >= started]  # noqa: E731
    assert wait_for(fresh, 120), "no report of this run reached the peer"
    return fresh()


def test_a_domain_that_asks_gets_a_report_counting_its_mail(reported, addresses):
    (message,) = reported
    # Our own job's mail, not marked as mail from outside posing as us (ZT-SMTP-13).
    assert message["Subject"].startswith("Report Domain: outside.example Submitter: corp.example Report-ID: <")
    root = feedback(message)
    assert root.findtext("report_metadata/org_name") == "corp.example"
    assert root.findtext("policy_published/domain") == "outside.example"
    assert root.findtext("policy_published/p") == "reject"
    rows = [r for r in root.findall("record") if r.findtext("row/source_ip") == addresses["ext"]]
    assert rows and all(r.findtext("row/policy_evaluated/disposition") == "none" for r in rows)
    assert sum(int(r.findtext("row/count")) for r in rows) >= 1
    assert all(r.findtext("auth_results/dkim/result") == "pass" for r in rows)
    assert all(r.findtext("auth_results/spf/result") == "pass" for r in rows)
    # The history the report came from was moved aside and sent: nothing is counted twice.
    assert sh("mx", "test -e /var/lib/opendmarc/history.sending").returncode != 0


def test_an_address_that_never_agreed_gets_no_report(reported):
    # Sent in the same run as the peer's, which has arrived: none came for the subdomain.
    assert reports("imap", OUR_POSTMASTER, "quarantine.outside.example") == []
    log = sh("mx", "journalctl -u %s -o cat --no-pager -n 50" % JOB, check=True).stdout
    assert "sent the report of outside.example" in log
    assert "sent the report of quarantine.outside.example" not in log
