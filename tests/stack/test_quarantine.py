"""ZT-AV-06: playbooks/quarantine.yml lists what the quarantine holds and releases one
message to its own recipients, once, with who and why in the filter's mail log; a
release without a reason, or of a message the quarantine does not hold, changes nothing.

The message is quarantined the way any is (EICAR from the outside peer) and looked for
where it lands: the mailbox on imap.
"""

import json
import re

import pytest
from conftest import recap_changed, run_playbook, sh
from test_content_filter import (
    EICAR,
    assert_delivered_once,
    assert_quarantined_not_delivered,
    delivered,
    from_outside,
    new_marker,
    quarantined,
)


@pytest.fixture(scope="module")
def held():
    """(marker, mail_id) of a message in the quarantine."""
    marker = new_marker("virus")
    from_outside(marker, "see attachment", ("eicar.txt", EICAR.encode()))
    assert_quarantined_not_delivered(marker, "virus")
    (path,) = quarantined(marker)
    return marker, path.rsplit("/", 1)[1].split("-", 1)[1]


def flat(output):
    """Playbook output with the callback's line folding undone."""
    return " ".join(output.split())


def quarantine(*extra):
    return run_playbook("playbooks/quarantine.yml", *extra)


def test_the_listing_names_each_message_and_why_it_is_held(held):
    marker, mail_id = held
    run = quarantine()
    assert run.returncode == 0, run.stdout[-3000:]
    assert re.search(r"%s virus [^']*%s [^']*Mailstack\.Test\.EICAR" % (mail_id, marker), flat(run.stdout)), run.stdout
    assert recap_changed(run.stdout, "filter") == 0


@pytest.mark.parametrize(
    ("extra", "refusal"),
    [
        (["-e", "release={id}"], "amavis_quarantine_reason is required"),
        (["-e", "release=AAAAAAAAAAAA", "-e", "reason=test"], "no filter host holds a message AAAAAAAAAAAA"),
        (["-e", "release=../../../etc/shadow", "-e", "reason=test"], "no filter host holds"),
    ],
    ids=["no-reason", "unknown-id", "a-path"],
)
def test_a_release_without_a_reason_or_of_an_unknown_message_changes_nothing(held, extra, refusal):
    marker, mail_id = held
    run = quarantine(*[arg.format(id=mail_id) for arg in extra])
    assert run.returncode != 0 and refusal in run.stdout, run.stdout[-3000:]
    assert not delivered(marker)


def test_a_release_reaches_the_recipient_once_and_is_logged(held):
    marker, mail_id = held
    reason = "INC-%s checked by hand" % marker
    request = json.dumps({"release": mail_id, "reason": reason})
    released = quarantine("-e", request)
    assert released.returncode == 0 and recap_changed(released.stdout, "filter") == 1, released.stdout[-3000:]
    assert_delivered_once(marker)
    log = sh("filter", "journalctl -t mailstack-quarantine --no-pager -q | grep -F 'id=%s'" % mail_id).stdout
    assert "by=unknown" not in log and 'reason="%s"' % reason in log and "to=<demo@corp.example>" in log, log
    # Again: nothing is sent twice, and the listing says when and why it was released.
    again = quarantine("-e", request)
    assert again.returncode == 0 and recap_changed(again.stdout, "filter") == 0, again.stdout[-3000:]
    listing = flat(quarantine().stdout)
    assert re.search(r"%s virus [^']* released [^']* by [^']*: %s" % (mail_id, reason), listing), listing
    assert_delivered_once(marker, 30)
