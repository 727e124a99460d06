"""ZT-SMTP-11: a logged-in user sends only as herself. Every author address of a
submitted message (From:, Sender:, anything address-shaped in their display names
or comments) must be one the login owns, checked before OpenDKIM signs; a null
envelope sender is refused; a stopped guard defers mail. Real submission sessions
on 587, the outcome read where the mail would land.

alice owns alice@ and alice.example@; ceo@corp.example is an alias of bob's
(inventories/local/group_vars/all.yml).
"""

import re
import smtplib
import time

import pytest
from conftest import sh, wait_for
from test_dkim import received_at_peer
from test_identity import enroll, submission

PEER = "peer@outside.example"
QUEUE_DIRS = "/var/spool/postfix/incoming /var/spool/postfix/active /var/spool/postfix/deferred /var/spool/postfix/hold"


@pytest.fixture(scope="module")
def alice_app():
    _, (app_id,), creds = enroll("alice", "app_name=guard-test", "app_scopes=smtp")
    return creds["app_passwords"][app_id]["secret"]


def message(marker, headers):
    return "%sTo: %s\r\nSubject: %s\r\n\r\nguard probe\r\n" % ("".join(h + "\r\n" for h in headers), PEER, marker)


@pytest.fixture(scope="module")
def session(alice_app, addresses):
    """One logged-in submission session for many messages (port 587 limits connections per minute)."""
    with submission(addresses["mx"]) as client:
        assert client.login("alice", alice_app)[0] == 235
        yield client


def send(client, marker, headers, envelope="alice@corp.example"):
    """None when the message was accepted, else (SMTP code, reply text) of its refusal."""
    try:
        assert client.sendmail(envelope, [PEER], message(marker, headers)) == {}
        return None
    except smtplib.SMTPResponseException as exc:  # MAIL FROM, DATA, or any other command
        client.rset()
        return exc.smtp_code, exc.smtp_error.decode()
    except smtplib.SMTPRecipientsRefused as exc:
        client.rset()
        code, text = exc.recipients[PEER]
        return code, text.decode()


def send_in_new_session(address, password, marker, headers):
    """As send(), in a session of its own; a refusal may come at any command, STARTTLS included."""
    try:
        with submission(address) as client:
            assert client.login("alice", password)[0] == 235
            return send(client, marker, headers)
    except smtplib.SMTPResponseException as exc:
        return exc.smtp_code, exc.smtp_error.decode()


def queued(marker):
    """True if any message carrying `marker` sits in the mx's queue."""
    return sh("mx", "grep -rqs '%s' %s" % (marker, QUEUE_DIRS)).returncode == 0


def signed_copy_at_peer(marker):
    assert wait_for(lambda: received_at_peer(marker)), "the outside peer never received %s" % marker
    headers = sh("ext", "sed '/^$/q' %s" % received_at_peer(marker), check=True).stdout
    assert "DKIM-Signature:" in headers and "d=corp.example" in headers, headers
    return headers


@pytest.mark.parametrize(
    "headers",
    [
        ["From: Alice Example <alice@corp.example>"],
        ["From: Alice Example <alice.example@corp.example>"],  # her alias
        ["From: ALICE@CORP.EXAMPLE"],  # case does not matter for her own address
        ['From: "alice@corp.example" <alice@corp.example>', "Sender: alice.example@corp.example"],
        ["From: =?utf-8?q?Alice_=C3=89xample?= <alice@corp.example>"],
    ],
    ids=["own-address", "alias", "upper-case", "own-address-in-display-name-and-sender", "encoded-display-name"],
)
def test_own_addresses_are_sent_and_signed(session, headers):
    marker = "guard-ok-%d" % time.time_ns()
    assert send(session, marker, headers) is None
    signed_copy_at_peer(marker)


@pytest.mark.parametrize(
    "headers, reason",
    [
        (["From: ceo@corp.example"], "ceo@corp.example is not an address of alice"),
        (["From: Bob <BOB@corp.example>"], "bob@corp.example is not an address of alice"),
        (["From: alice@corp.example, bob@corp.example"], "exactly one mailbox"),
        (["From: alice@corp.example", "From: bob@corp.example"], "2 From: headers"),
        (['From: "ceo@corp.example" <alice@corp.example>'], "ceo@corp.example is not an address of alice"),
        (["From: =?utf-8?b?Y2VvQGNvcnAuZXhhbXBsZQ==?= <alice@corp.example>"], "ceo@corp.example is not an address"),
        (["From: alice@corp.example (ceo@corp.example)"], "ceo@corp.example is not an address of alice"),
        (["From: =?utf-8?q?ceo=EF=BC=A0corp.example?= <alice@corp.example>"], "ceo@corp.example is not an address"),
        (["From: alice@corp.example", "Sender: bob@corp.example"], "Sender: bob@corp.example is not an address"),
        (["Reply-To: alice@corp.example"], "no From: header"),
    ],
    ids=[
        "colleague-alias",
        "colleague-upper-case",
        "two-addresses",
        "two-from-headers",
        "display-name-trick",
        "encoded-display-name-trick",
        "comment-trick",
        "full-width-at-sign",
        "colleague-as-sender",
        "no-from",
    ],
)
def test_impersonation_is_refused_and_nothing_queued(session, headers, reason):
    marker = "guard-refused-%d" % time.time_ns()
    refusal = send(session, marker, headers)
    assert refusal is not None, "the message was accepted"
    code, text = refusal
    assert code == 550 and text.startswith("5.7.1") and reason in text, refusal
    assert not queued(marker)


def test_null_envelope_sender_is_refused_at_mail_from(session):
    marker = "guard-null-%d" % time.time_ns()
    refusal = send(session, marker, ["From: alice@corp.example"], envelope="")
    assert refusal is not None and refusal[0] == 550 and "null sender" in refusal[1], refusal
    assert not queued(marker)


def test_stopped_guard_defers_submissions_then_accepts_them(alice_app, addresses):
    marker = "guard-down-%d" % time.time_ns()
    sh("mx", "systemctl stop mailstack-sender-guard", check=True)
    try:
        refusal = send_in_new_session(addresses["mx"], alice_app, marker, ["From: alice@corp.example"])
        assert refusal is not None and 400 <= refusal[0] < 500, refusal
        assert not queued(marker)
    finally:
        sh("mx", "systemctl start mailstack-sender-guard", check=True)
    assert wait_for(lambda: sh("mx", "test -S /var/spool/postfix/sender-guard/milter.sock").returncode == 0)
    assert send_in_new_session(addresses["mx"], alice_app, marker + "-again", ["From: alice@corp.example"]) is None
    assert re.search("d=corp.example", signed_copy_at_peer(marker + "-again"))
