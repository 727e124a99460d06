"""ZT-AV-05: spam amavis marks (from the tag2 level, below the kill level) is filed into the
user's Junk during delivery, by an admin's Sieve script that runs before anything a user
could write; amavis is the only source of the X-Spam-Flag header the script trusts, so a
sender can neither put clean mail into Junk nor keep spam out of it by forging it.

Messages go in from the outside peer over SMTP; where they land is looked up in the
Maildir on imap (INBOX or .Junk) and, as a mail client sees it, over IMAP. What makes a
message score between tag2 and kill is the test inventory's own SpamAssassin rule
(inventories/local/group_vars/filter.yml: amavis_spam_rules), which only touches a
message carrying its marker; the production levels are unchanged.
"""

import contextlib
import re
import ssl

import pytest
from conftest import inventory_host, recap_changed, run_playbook, sh, wait_for
from test_content_filter import MAILBOX, delivered, from_outside, new_marker, quarantined
from test_identity import CA, _Imap, enroll

JUNK = MAILBOX + "/.Junk"
# The body marker the test rule scores 7.5 (tag2 5, kill 10).
SPAM_MARKER = "ZTMS-SPAM-TEST-d41c7e"
SCRIPT = "/etc/dovecot/sieve/spam-to-junk.sieve"
BINARY = "/etc/dovecot/sieve/spam-to-junk.svbin"


def in_junk(marker):
    return sh("imap", "grep -rl '%s' %s/new %s/cur" % (marker, JUNK, JUNK)).stdout.split()


def headers_of(path):
    return sh("imap", "sed '/^$/q' %s" % path, check=True).stdout


def assert_in_inbox_only(marker):
    assert wait_for(lambda: delivered(marker), 120), "%s never reached INBOX" % marker
    assert len(delivered(marker)) == 1
    assert not in_junk(marker)
    assert not quarantined(marker)


def assert_in_junk_only(marker):
    assert wait_for(lambda: in_junk(marker), 120), "%s never reached Junk" % marker
    (path,) = in_junk(marker)
    assert not delivered(marker)
    assert not quarantined(marker)
    return headers_of(path)


# Forged flags on clean mail: amavis removes them (clean mail scores below its tag level,
# where it adds no X-Spam header of its own), so the message stays in INBOX. The twin
# without a forged header arrives in INBOX as well.
@pytest.mark.parametrize(
    "forged",
    [(), ("X-Spam-Flag: YES",), ("x-spam-flag: yes",), ("X-Spam-Flag: YES", "X-Spam-Flag: YES")],
    ids=["none", "forged-yes", "forged-lower-case", "forged-twice"],
)
def test_clean_mail_from_outside_lands_in_inbox_even_with_a_forged_spam_flag(forged):
    marker = new_marker("junk-clean")
    from_outside(marker, headers=forged)
    assert_in_inbox_only(marker)
    headers = headers_of(delivered(marker)[0])
    assert "x-spam-flag" not in headers.lower(), headers
    assert "Subject: %s" % marker in headers


# Real spam between tag2 and kill: amavis marks it (subject tag, its own X-Spam-Flag: YES,
# replacing what the sender wrote) and it lands in Junk, with or without a forged NO.
@pytest.mark.parametrize(
    "forged",
    [(), ("X-Spam-Flag: NO",), ("X-Spam-Flag: NO", "X-Spam-Status: No, score=-5.0")],
    ids=["none", "forged-no", "forged-no-and-status"],
)
def test_spam_between_tag2_and_kill_lands_in_junk_even_with_a_forged_no(forged):
    marker = new_marker("junk-spam")
    from_outside(marker, "cheap offer %s" % SPAM_MARKER, headers=forged)
    headers = assert_in_junk_only(marker)
    flags = re.findall(r"^x-spam-flag:\s*(\S+)", headers, re.I | re.M)
    assert flags == ["YES"], headers
    score = float(re.search(r"^X-Spam-Score: (\S+)", headers, re.M).group(1))
    assert 5.0 <= score < 10.0, headers
    assert "Subject: ***SPAM*** %s" % marker in headers, headers


@pytest.fixture(scope="module")
def demo_imap(addresses):
    """An IMAP session as demo with an app password, as a mail client would log in."""
    _, (app_id,), creds = enroll("demo", "app_name=junk-test", "app_scopes=imap")
    context = ssl.create_default_context(cafile=str(CA))
    client = _Imap(addresses["imap"], 993, ssl_context=context, timeout=30)
    client.login("demo", creds["app_passwords"][app_id]["secret"])
    yield client
    with contextlib.suppress(Exception):
        client.logout()


def imap_find(client, mailbox, marker):
    status, _ = client.select(mailbox, readonly=True)
    assert status == "OK", mailbox
    status, data = client.search(None, "SUBJECT", marker)
    assert status == "OK"
    return data[0].split()


def test_a_mail_client_sees_junk_as_the_special_use_junk_mailbox_with_the_spam(demo_imap):
    status, listed = demo_imap.list('""', "*")
    assert status == "OK"
    junk = [line.decode() for line in listed if line.decode().endswith(" Junk") or line.decode().endswith('"Junk"')]
    assert len(junk) == 1 and "\\Junk" in junk[0], listed
    status, subscribed = demo_imap.lsub('""', "*")
    assert any(line.decode().endswith("Junk") for line in subscribed), subscribed
    spam, clean = new_marker("junk-imap-spam"), new_marker("junk-imap-clean")
    from_outside(spam, "cheap offer %s" % SPAM_MARKER, headers=("X-Spam-Flag: NO",))
    from_outside(clean, headers=("X-Spam-Flag: YES",))
    assert wait_for(lambda: imap_find(demo_imap, "Junk", spam) and imap_find(demo_imap, "INBOX", clean), 120)
    assert not imap_find(demo_imap, "INBOX", spam)
    assert not imap_find(demo_imap, "Junk", clean)


def test_a_script_in_the_users_home_does_not_run_at_delivery():
    # A script where Dovecot and Pigeonhole look for a user's own by default would file
    # everything into INBOX: it is not run. Spam still lands in Junk alone, clean mail
    # in INBOX once.
    home = MAILBOX.rsplit("/", 1)[0]
    script = 'require "fileinto"; fileinto "INBOX"; keep;'
    sh(
        "imap",
        "runuser -u vmail -- sh -c 'mkdir -p %s/sieve && for f in %s/.dovecot.sieve %s/sieve/main.sieve;"
        ' do printf %%s "%s" > $f; done\'' % (home, home, home, script.replace('"', '\\"')),
        check=True,
    )
    try:
        spam, clean = new_marker("junk-user-spam"), new_marker("junk-user-clean")
        from_outside(spam, "cheap offer %s" % SPAM_MARKER)
        from_outside(clean)
        assert_in_junk_only(spam)
        assert_in_inbox_only(clean)
    finally:
        sh("imap", "rm -rf %s/.dovecot.sieve %s/sieve" % (home, home), check=True)


def test_the_script_is_the_admins_and_the_delivering_user_cannot_change_it():
    for path in (SCRIPT, BINARY):
        assert sh("imap", "stat -c '%%U %%G %%a' %s" % path, check=True).stdout.split() == ["root", "root", "644"]
        assert sh("imap", "runuser -u vmail -- sh -c 'echo stop\\; >> %s'" % path).returncode != 0
    # The twin: the delivering user can read both (LMTP runs as vmail).
    assert sh("imap", "runuser -u vmail -- cat %s %s > /dev/null" % (SCRIPT, BINARY)).returncode == 0


def test_the_script_is_compiled_again_only_when_it_changed_and_check_mode_is_clean():
    host = inventory_host("imap")
    args = ("playbooks/site.yml", "--limit", host, "--tags", "ZT-AV-05")
    # A binary older than its script is compiled again (and made readable again), once.
    # Dated before any script: on a stack older than an hour, '-1 hour' is not.
    sh("imap", "touch -t 200001010000 %s" % BINARY, check=True)
    compiled = run_playbook(*args)
    assert compiled.returncode == 0, compiled.stdout[-3000:]
    assert "Compile the Sieve script (sievec)] ***\nchanged:" in compiled.stdout, compiled.stdout[-3000:]
    for extra in ((), ("--check",)):
        again = run_playbook(*args, *extra)
        assert again.returncode == 0, again.stdout[-3000:]
        assert recap_changed(again.stdout, "imap") == 0, again.stdout[-3000:]
