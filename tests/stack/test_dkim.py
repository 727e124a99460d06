"""ZT-DKIM, ZT-SMTP-07: the MX signs what its users submit, annotates what arrives,
and a stopped milter defers mail — from outside, with real sessions.

Mail is submitted with an smtp-scoped app password (enrolled through
playbooks/user_enroll.yml) and checked where it lands: the outside peer
verifies the signature against the key the stack's DNS publishes.
"""

import base64
import json
import re
import time

import pytest
from conftest import STATE, fqdn, run_playbook, sh, signing_selector, wait_for
from test_identity import enroll, submission

MX = fqdn("mx")
# The selector signing now: mail on a new stack, another once test_dkim_rotate.py rotated
# the key (a second session on the same stack).
SELECTOR = signing_selector()
PEER_MAILDIR = "/var/mail/vhosts/outside.example/peer/new/"


@pytest.fixture(scope="module")
def alice_sender():
    _, (app_id,), creds = enroll("alice", "app_name=dkim-test", "app_scopes=smtp")
    return creds["app_passwords"][app_id]["secret"]


def received_at_peer(marker):
    """Path of the message with `marker` in the outside peer's Maildir, or ''."""
    return sh("ext", "grep -rl '%s' %s" % (marker, PEER_MAILDIR)).stdout.strip().split("\n")[0]


def swaks_from_ext(to, marker, extra=""):
    return sh(
        "ext",
        "swaks --server %s --tls --ehlo %s --from peer@outside.example "
        "--to %s --header 'Subject: %s' %s" % (MX, fqdn("ext"), to, marker, extra),
    )


def test_published_key_is_the_signing_key():
    published = sh("ext", "dig +short TXT %s._domainkey.corp.example" % SELECTOR, check=True).stdout
    assert "v=DKIM1" in published and "p=" in published, published
    check = sh("mx", "opendkim-testkey -d corp.example -s %s -vvv 2>&1" % SELECTOR)
    assert check.returncode == 0 and "key OK" in check.stdout, check.stdout


def test_submitted_mail_is_signed_and_verifies_at_the_outside_peer(alice_sender, addresses):
    marker = "dkim-signed-%d" % time.time()
    with submission(addresses["mx"]) as client:
        assert client.login("alice", alice_sender)[0] == 235
        message = "From: alice@corp.example\r\nTo: peer@outside.example\r\nSubject: %s\r\n\r\nsigned\r\n" % marker
        assert client.sendmail("alice@corp.example", ["peer@outside.example"], message) == {}
    assert wait_for(lambda: received_at_peer(marker)), "the outside peer never received the message"
    path = received_at_peer(marker)
    headers = sh("ext", "sed '/^$/q' %s" % path, check=True).stdout
    assert "DKIM-Signature:" in headers and "d=corp.example" in headers and "s=%s;" % SELECTOR in headers, headers
    verified = sh("ext", "dkimverify < %s" % path)
    assert verified.returncode == 0 and "signature ok" in verified.stdout, verified.stdout + verified.stderr
    # A body changed on the way no longer verifies: the check can fail.
    tampered = sh("ext", "sed 's/^signed$/tampered/' %s | dkimverify" % path)
    assert tampered.returncode != 0, tampered.stdout


def test_inbound_mail_is_verified_and_annotated():
    marker = "dkim-inbound-%d" % time.time()
    out = swaks_from_ext("demo@corp.example", marker)
    assert "250 2.0.0 Ok: queued" in out.stdout, out.stdout[-1500:]
    found = lambda: sh("imap", "grep -rl '%s' /var/vmail/demo/Maildir/new/" % marker).stdout.strip()  # noqa: E731
    assert wait_for(found), "the message never reached demo's mailbox"
    headers = sh("imap", "sed '/^$/q' %s" % found().split("\n")[0], check=True).stdout
    assert "Authentication-Results: %s" % MX in headers, headers


def ext_queue():
    listing = sh("ext", "postqueue -j", check=True).stdout
    return [json.loads(line) for line in listing.splitlines() if line.strip()]


def test_stopped_milter_defers_mail_then_it_is_delivered():
    """milter_default_action = tempfail: with OpenDKIM down nothing is accepted
    unchecked; the sender keeps the mail and it arrives once the milter is back."""
    marker = "milter-down-%d" % time.time()
    sh("mx", "systemctl stop opendkim", check=True)
    try:
        direct = swaks_from_ext("demo@corp.example", marker + "-direct")
        assert "Ok: queued" not in direct.stdout
        # Refused with a temporary code at the first command the milter would see.
        assert re.search(r"^<\*\* 4\d\d 4\.\d\.\d", direct.stdout, re.M), direct.stdout[-1500:]
        sh(
            "ext",
            "printf 'Subject: %s\\n\\nwaits for the milter\\n' | sendmail -f peer@outside.example demo@corp.example"
            % marker,
            check=True,
        )
        assert wait_for(
            lambda: any(
                re.search(r"said: 4\d\d 4\.\d\.\d", r.get("delay_reason", ""))
                for m in ext_queue()
                for r in m["recipients"]
            )
        )
    finally:
        sh("mx", "systemctl start opendkim", check=True)
    sh("ext", "postqueue -f", check=True)
    delivered = wait_for(lambda: sh("imap", "grep -rl '%s' /var/vmail/demo/Maildir/new/" % marker).returncode == 0)
    assert delivered, "the deferred message never arrived after the milter came back"


SIGNING_KEY = "/etc/dkimkeys/corp.example/%s.private" % SELECTOR


def test_a_signing_key_swapped_for_a_link_does_not_hand_its_target_to_opendkim():
    """ZT-DKIM-03: the opendkim account owns the key directories. If it swaps its key for a
    link to /etc/shadow, the converge must not follow the link (chown and chmod would give
    the target to opendkim): it stops on the link and /etc/shadow stays root's. With the
    key back, the same converge passes."""
    shadow = sh("mx", "stat -c %U:%G:%a /etc/shadow", check=True).stdout.strip()
    sh("mx", "cp -a %s /root/dkim-key.keep" % SIGNING_KEY, check=True)
    swap = f"ln -s /etc/shadow {SIGNING_KEY}.lnk && mv -T {SIGNING_KEY}.lnk {SIGNING_KEY}"
    sh("mx", "runuser -u opendkim -- sh -c '%s'" % swap, check=True)
    try:
        refused = run_playbook("tests/stack/playbooks/dkim.yml")
        after = sh("mx", "stat -c %U:%G:%a /etc/shadow", check=True).stdout.strip()
    finally:
        sh("mx", "chown %s:%s /etc/shadow && chmod %s /etc/shadow" % tuple(shadow.split(":")), check=True)
        sh("mx", "rm -f %s && mv /root/dkim-key.keep %s" % (SIGNING_KEY, SIGNING_KEY), check=True)
    assert after == shadow
    assert refused.returncode != 0, refused.stdout[-3000:]

    accepted = run_playbook("tests/stack/playbooks/dkim.yml")
    assert accepted.returncode == 0, accepted.stdout[-3000:]
    assert "changed=0" in accepted.stdout


KEY_DIR = "/etc/dkimkeys/corp.example"
CANARY = "/etc/mailstack-canary"
SECRET_CANARY = "/root/mailstack-secret-canary"


@pytest.fixture
def opendkim_plants():
    """Keep the domain's key directory and two root files opendkim must never reach: a
    world-readable one it cannot write and a root-only secret. Everything is restored."""
    sh("mx", f"printf keep > {CANARY} && chmod 644 {CANARY}", check=True)
    sh("mx", f"printf SECRET-b4f1c0de > {SECRET_CANARY} && chmod 600 {SECRET_CANARY}", check=True)
    sh("mx", f"rm -rf /root/dkim-dir.keep && cp -a {KEY_DIR} /root/dkim-dir.keep", check=True)
    # The record the converge exports for the dns role, which a new key would replace.
    record = STATE / "records" / "corp.example" / ("dkim-%s.json" % SELECTOR)
    published = record.read_bytes()

    def plant(command):
        sh("mx", "runuser -u opendkim -- sh -c '%s'" % command, check=True)

    yield plant
    sh("mx", f"rm -rf {KEY_DIR} && mv /root/dkim-dir.keep {KEY_DIR}", check=True)
    sh("mx", f"rm -f {CANARY} {SECRET_CANARY}", check=True)
    record.write_bytes(published)


def test_a_key_made_again_does_not_write_through_links_opendkim_planted(opendkim_plants):
    """ZT-DKIM-03: opendkim can delete its key, so the converge makes one again, and plant a
    link where the key generator writes the DNS record. Made as root, the record would be
    written through the link into a file opendkim may not touch. The link's target keeps
    its content and owner; with the key back the same converge passes unchanged."""
    opendkim_plants(f"rm -f {KEY_DIR}/{SELECTOR}.private && ln -sfn {CANARY} {KEY_DIR}/{SELECTOR}.txt")
    run_playbook("tests/stack/playbooks/dkim.yml")
    assert sh("mx", f"cat {CANARY}; stat -c ' %U:%G:%a' {CANARY}").stdout == "keep root:root:644\n"


def test_a_record_swapped_for_a_link_neither_leaks_its_target_nor_reaches_dns(opendkim_plants):
    """ZT-DKIM-04: the converge publishes each domain's public key record. If opendkim swaps
    the record file opendkim-genkey wrote for a link to a root-only secret, the run must not
    read it (at -v what a task reads is in the job output, base64 or not): the record is
    derived from the key itself, so the run passes and publishes the same record."""
    record = STATE / "records" / "corp.example" / ("dkim-%s.json" % SELECTOR)
    published = record.read_text()
    txt = f"{KEY_DIR}/{SELECTOR}.txt"
    swap = f"ln -sfn {SECRET_CANARY} {txt}.lnk && mv -T {txt}.lnk {txt}"
    opendkim_plants(swap)
    run = run_playbook("-v", "tests/stack/playbooks/dkim.yml")
    output = run.stdout + run.stderr
    for form in ("SECRET-b4f1c0de", base64.b64encode(b"SECRET-b4f1c0de").decode()[:16], "b4f1c0de"):
        assert form not in output
    assert run.returncode == 0, output[-3000:]
    assert record.read_text() == published


def test_the_key_checks_pass_on_an_untouched_key_directory():
    """The twin of the two above: the same converge on the key directory as the role left
    it reads the record and changes nothing."""
    accepted = run_playbook("tests/stack/playbooks/dkim.yml")
    assert accepted.returncode == 0, accepted.stdout[-3000:]
    assert "changed=0" in accepted.stdout
