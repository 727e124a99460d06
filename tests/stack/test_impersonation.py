"""ZT-SMTP-13: mail from outside that poses as one of ours is marked and carries a warning.

An impostor's mail passes SPF, DKIM and DMARC for its own domain; what it imitates is
what a reader sees: a colleague's name, one of our addresses in the display name, a
domain that looks like ours. The same mail from a colleague, submitted, is not marked.
"""

import re

import pytest
from test_dmarc import delivered_headers, new_marker, send, sent_while_down
from test_identity import submission
from test_sender_guard import alice_app  # noqa: F401  (a fixture)

HEADER = "X-Mailstack-Impersonation"
WARNING = "[Impersonation warning]"
SOCKET = "/var/spool/postfix/impersonation-guard/milter.sock"


def header(headers, name):
    """The unfolded values of header `name` in a header block."""
    lines = re.sub(r"\n[ \t]+", " ", headers).splitlines()
    return [line.split(":", 1)[1].strip() for line in lines if line.lower().startswith(name.lower() + ":")]


@pytest.mark.parametrize(
    "header_from, envelope, sign, reason",
    [
        ("Alice Example <peer@outside.example>", "peer@outside.example", True, "shows the name of Alice Example"),
        # Cyrillic А and е, encoded as a mail client would
        ("=?utf-8?b?0JBsaWPQtSBFeGFtcGxl?= <peer@outside.example>", "peer@outside.example", True,
         "shows the name of Alice Example"),
        ('"alice@corp.example" <peer@outside.example>', "peer@outside.example", True,
         "shows the address alice@corp.example of ours"),
        ("IT Helpdesk <it@corp-example.outside.example>", "it@corp-example.outside.example", False,
         "uses the domain corp-example.outside.example, which looks like corp.example"),
    ],
)  # fmt: skip
def test_mail_posing_as_one_of_ours_is_delivered_marked_and_with_a_warning(header_from, envelope, sign, reason):
    marker = new_marker("impostor")
    assert "250 2.0.0 Ok: queued" in send(marker, header_from, sign=sign, envelope=envelope)
    headers = delivered_headers(marker)
    # It passed DMARC for its own domain: only the mark tells the reader.
    assert "dmarc=pass" in headers
    assert reason in header(headers, HEADER)[0]
    assert header(headers, "Subject") == ["%s %s" % (WARNING, marker)]


def test_mail_from_outside_posing_as_no_one_is_not_marked_and_a_forged_mark_is_removed():
    marker = new_marker("peer")
    forged = ["%s: shows the name of Peer" % HEADER]
    assert "250 2.0.0 Ok: queued" in send(marker, "Peer Person <peer@outside.example>", forged, sign=True)
    headers = delivered_headers(marker)
    assert "dmarc=pass" in headers
    assert header(headers, HEADER) == [] and header(headers, "Subject") == [marker]


def test_the_same_name_submitted_by_its_owner_is_not_marked(alice_app, addresses):  # noqa: F811
    marker = new_marker("colleague")
    message = "From: Alice Example <alice@corp.example>\r\nTo: demo@corp.example\r\nSubject: %s\r\n\r\nhi\r\n" % marker
    with submission(addresses["mx"]) as client:
        assert client.login("alice", alice_app)[0] == 235
        assert client.sendmail("alice@corp.example", ["demo@corp.example"], message) == {}
    headers = delivered_headers(marker)
    assert header(headers, HEADER) == [] and header(headers, "Subject") == [marker]


def test_mail_from_outside_waits_while_the_guard_is_down_then_is_marked_once():
    marker = new_marker("guard-down")
    headers = sent_while_down("mailstack-impersonation-guard", SOCKET, marker, "Alice Example <peer@outside.example>")
    assert len(header(headers, HEADER)) == 1 and header(headers, "Subject") == ["%s %s" % (WARNING, marker)]
