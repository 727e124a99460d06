"""ZT-DKIM-05: playbooks/dkim_rotate.yml rotates the mx's DKIM key to a new selector in
three runs (publish, switch, retire), each only once its time has come, and a run before
its time changes nothing; mail stays signed and verifies at the outside peer throughout.

The tests run in order and share the stack's rotation: one rotation of this session, to a
selector of its own. The records are read from the stack's name server as the outside peer
reads them, the signatures from mail a user submits and the peer receives.
"""

import json
import re
import time

import pytest
from conftest import DOMAIN, STATE, recap_changed, run_playbook, sh, wait_for
from test_identity import credentials, enroll, submission

PEER_MAILDIR = "/var/mail/vhosts/outside.example/peer/new/"
STATE_FILE = "/var/lib/mailstack-dkim/rotation.json"
# A selector no earlier session used: a second session on the same stack rotates again.
NEW = "t%d" % time.time()


def rotate(*extra, selector=NEW):
    args = ["playbooks/dkim_rotate.yml"] + (["-e", "selector=%s" % selector] if selector is not None else [])
    for item in extra:
        args += ["-e", item]
    return run_playbook(*args)


def flat(output):
    """Playbook output with the callback's line folding undone."""
    return " ".join(output.split())


def published(selector):
    """The TXT record of the selector as the stack's name server answers the outside peer."""
    return sh("ext", "dig +short TXT %s._domainkey.%s" % (selector, DOMAIN), check=True).stdout


def rotation_state():
    return json.loads(sh("mx", "cat %s" % STATE_FILE, check=True).stdout)["domains"][DOMAIN]


@pytest.fixture(scope="module")
def old():
    """The selector signing before this session's rotation (mail on a fresh stack)."""
    found = sh("mx", "cat %s" % STATE_FILE)
    return json.loads(found.stdout)["domains"][DOMAIN]["active"] if found.returncode == 0 else "mail"


@pytest.fixture(scope="module")
def alice(addresses):
    """alice's smtp-scoped app password (the DKIM tests' one when it is there)."""
    apps = credentials("alice")["app_passwords"] if (STATE / "credentials" / "alice.json").exists() else {}
    usable = [app for app in apps.values() if "smtp" in app.get("scopes", []) and app.get("secret")]
    if not usable:
        _, (app_id,), creds = enroll("alice", "app_name=dkim-rotate", "app_scopes=smtp")
        usable = [creds["app_passwords"][app_id]]
    return usable[0]["secret"]


def signature_of_submitted_mail(alice, addresses):
    """(selector, dkimverify's verdict) of a message alice submits, as the outside peer gets it."""
    marker = "dkim-rotate-%d" % (time.time() * 1000)
    with submission(addresses["mx"]) as client:
        assert client.login("alice", alice)[0] == 235
        message = "From: alice@corp.example\r\nTo: peer@outside.example\r\nSubject: %s\r\n\r\nsigned\r\n" % marker
        assert client.sendmail("alice@corp.example", ["peer@outside.example"], message) == {}
    path = lambda: sh("ext", "grep -rl '%s' %s" % (marker, PEER_MAILDIR)).stdout.strip()  # noqa: E731
    assert wait_for(path), "the outside peer never received the message"
    headers = sh("ext", "sed '/^$/q' %s" % path(), check=True).stdout
    selectors = re.findall(r"\bs=([a-z0-9-]+);", headers)
    assert "d=corp.example" in headers and len(selectors) == 1, headers
    verified = sh("ext", "dkimverify < %s" % path())
    return selectors[0], verified.returncode == 0 and "signature ok" in verified.stdout


@pytest.mark.parametrize(
    ("extra", "selector", "refusal"),
    [
        ([], "a.b", "opendkim_rotate_selector: 'a.b' is not one DNS label"),
        ([], "a\nb", "opendkim_rotate_selector: contains the control character"),
        ([], None, "opendkim_rotate_selector (selector=) is required"),
        (["propagation=-1"], NEW, "opendkim_rotate_propagation: '-1' is not a whole number of seconds"),
        (["grace=7d"], NEW, "opendkim_rotate_grace"),
    ],
    ids=["dot", "newline", "none", "negative-propagation", "grace-not-seconds"],
)
def test_a_bad_selector_or_duration_is_refused_and_changes_nothing(old, extra, selector, refusal):
    if selector is not None and "\n" in selector:
        run = run_playbook("playbooks/dkim_rotate.yml", "-e", json.dumps({"selector": selector}))
    else:
        run = rotate(*extra, selector=selector)
    output = flat(run.stdout)
    assert run.returncode != 0 and refusal in output, run.stdout[-3000:]
    assert recap_changed(run.stdout, "mx") == 0
    assert sh("mx", "ls /etc/dkimkeys/%s" % DOMAIN, check=True).stdout.split() == ["%s.private" % old, "%s.txt" % old]
    assert NEW not in published(NEW) and "v=DKIM1" not in published(NEW)


def test_the_first_run_publishes_the_new_record_and_mail_is_still_signed_with_the_old(old, alice, addresses):
    run = rotate("propagation=0")
    assert run.returncode == 0, run.stdout[-3000:]
    assert recap_changed(run.stdout, "mx") > 0 and recap_changed(run.stdout, "dns") > 0
    assert "this run: publish" in flat(run.stdout), run.stdout[-3000:]
    assert "v=DKIM1" in published(NEW) and "v=DKIM1" in published(old)
    assert signature_of_submitted_mail(alice, addresses) == (old, True)
    state = rotation_state()
    assert (state["active"], state["new"], state["switched"]) == (old, NEW, None), state
    assert sh("mx", "stat -c '%U %a' " + STATE_FILE, check=True).stdout.split() == ["root", "644"]


def test_before_the_propagation_time_a_run_changes_nothing():
    run = rotate("propagation=3600")
    assert run.returncode == 0, run.stdout[-3000:]
    assert [recap_changed(run.stdout, host) for host in ("mx", "dns")] == [0, 0], run.stdout[-3000:]
    assert re.search(r"this run: wait, switch due in 3[0-9]{3}s", flat(run.stdout)), run.stdout[-3000:]


def opendkim_pid():
    return sh("mx", "systemctl show -p MainPID --value opendkim", check=True).stdout.strip()


def test_once_propagated_mail_is_signed_with_the_new_selector_and_verifies(old, alice, addresses):
    before = opendkim_pid()
    run = rotate("propagation=0")
    assert run.returncode == 0, run.stdout[-3000:]
    assert "this run: switch" in flat(run.stdout), run.stdout[-3000:]
    # Reloaded, not restarted: the milter was there all along, so no submission was deferred.
    assert opendkim_pid() == before != "0"
    assert signature_of_submitted_mail(alice, addresses) == (NEW, True)
    # The old record stays published for mail signed before the switch.
    assert "v=DKIM1" in published(old) and "v=DKIM1" in published(NEW)


def test_during_the_grace_period_a_run_changes_nothing_and_the_old_record_stays(old):
    run = rotate("grace=3600")
    assert run.returncode == 0, run.stdout[-3000:]
    assert [recap_changed(run.stdout, host) for host in ("mx", "dns")] == [0, 0], run.stdout[-3000:]
    assert re.search(r"this run: wait, retire due in 3[0-9]{3}s", flat(run.stdout)), run.stdout[-3000:]
    assert "v=DKIM1" in published(old)


def test_after_the_grace_period_the_old_record_and_key_are_gone(old, alice, addresses):
    run = rotate("grace=0")
    assert run.returncode == 0, run.stdout[-3000:]
    assert "this run: retire" in flat(run.stdout), run.stdout[-3000:]
    assert published(old) == "" and "v=DKIM1" in published(NEW)
    assert sh("mx", "ls /etc/dkimkeys/%s" % DOMAIN, check=True).stdout.split() == ["%s.private" % NEW, "%s.txt" % NEW]
    assert not (STATE / "records" / DOMAIN / ("dkim-%s.json" % old)).exists()
    state = rotation_state()
    assert (state["active"], state["new"], state["old"], state["history"][-1]) == (NEW, None, None, old), state
    assert signature_of_submitted_mail(alice, addresses) == (NEW, True)


def test_a_finished_rotation_run_again_changes_nothing():
    run = rotate("grace=0", "propagation=0")
    assert run.returncode == 0, run.stdout[-3000:]
    assert [recap_changed(run.stdout, host) for host in ("mx", "dns")] == [0, 0], run.stdout[-3000:]
    assert "this run: done" in flat(run.stdout), run.stdout[-3000:]


def test_a_converge_after_the_rotation_keeps_the_new_selector(old, alice, addresses):
    """site.yml (its DKIM and zone tasks) signs with the rotated selector, publishes only its
    record and makes no key for opendkim_selector again: it changes nothing."""
    run = run_playbook(
        "playbooks/site.yml", "--limit", "mx,dns", "--tags", "ZT-DKIM-01,ZT-DKIM-03,ZT-DKIM-04,ZT-DKIM-05,ZT-DNS-02"
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert [recap_changed(run.stdout, host) for host in ("mx", "dns")] == [0, 0], run.stdout[-3000:]
    assert published(old) == "" and "v=DKIM1" in published(NEW)
    assert signature_of_submitted_mail(alice, addresses) == (NEW, True)
