"""ZT-SMTP-13: mail from outside that poses as one of ours is marked and carries a warning.

An impostor's mail passes SPF, DKIM and DMARC for its own domain; what it imitates is
what a reader sees: a colleague's name, one of our addresses in the display name, a
domain that looks like ours. The same mail from a colleague, submitted, is not marked.
"""

import re

import pytest
from conftest import run_playbook, sh, wait_for
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


def submitted_by_alice(password, address, marker):
    """Alice's own mail to demo, submitted; its delivered headers."""
    message = "From: Alice Example <alice@corp.example>\r\nTo: demo@corp.example\r\nSubject: %s\r\n\r\nhi\r\n" % marker
    with submission(address) as client:
        assert client.login("alice", password)[0] == 235
        assert client.sendmail("alice@corp.example", ["demo@corp.example"], message) == {}
    return delivered_headers(marker)


def test_the_same_name_submitted_by_its_owner_is_not_marked(alice_app, addresses):  # noqa: F811
    marker = new_marker("colleague")
    headers = submitted_by_alice(alice_app, addresses["mx"], marker)
    assert header(headers, HEADER) == [] and header(headers, "Subject") == [marker]


@pytest.fixture
def external_tag():
    """The mx with sender_guard_external_tag set for the test by a converge, and its settings
    as they were after (the file put back and the guard restarted: a second converge would
    only write the same bytes)."""
    settings = "/etc/mailstack/impersonation-guard.json"
    sh("mx", "cp -a %s /root/impersonation-guard.json.keep" % settings, check=True)
    tagged = run_playbook(
        "playbooks/site.yml", "--limit", "mx", "--tags", "ZT-SMTP-13", "-e", "sender_guard_external_tag=[EXTERNAL]"
    )
    assert tagged.returncode == 0, tagged.stdout[-2000:]
    yield "[EXTERNAL]"
    restore = "cp -a /root/impersonation-guard.json.keep %s && touch /root/restarted" % settings
    sh("mx", restore + " && systemctl restart mailstack-impersonation-guard", check=True)
    # The restarted guard's own socket, not the one the stopped process left behind.
    assert wait_for(lambda: sh("mx", 'test -n "$(find %s -newer /root/restarted)"' % SOCKET).returncode == 0, 30)


def test_the_external_tag_marks_every_message_from_outside_and_no_submission(external_tag, alice_app, addresses):  # noqa: F811
    peer, impostor, colleague = new_marker("tag-peer"), new_marker("tag-impostor"), new_marker("tag-colleague")
    assert "250 2.0.0 Ok: queued" in send(peer, "Peer Person <peer@outside.example>", sign=True)
    assert "250 2.0.0 Ok: queued" in send(impostor, "Alice Example <peer@outside.example>", sign=True)
    assert header(delivered_headers(peer), "Subject") == ["%s %s" % (external_tag, peer)]
    assert header(delivered_headers(impostor), "Subject") == ["%s %s %s" % (WARNING, external_tag, impostor)]
    assert header(submitted_by_alice(alice_app, addresses["mx"], colleague), "Subject") == [colleague]


def test_mail_from_outside_waits_while_the_guard_is_down_then_is_marked_once():
    marker = new_marker("guard-down")
    headers = sent_while_down("mailstack-impersonation-guard", SOCKET, marker, "Alice Example <peer@outside.example>")
    assert len(header(headers, HEADER)) == 1 and header(headers, "Subject") == ["%s %s" % (WARNING, marker)]
