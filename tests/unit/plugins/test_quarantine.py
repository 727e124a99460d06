"""amavis's quarantine as the release playbook reads it (module_utils/quarantine.py)."""

import os

import pytest
from ansible_collections.zerotrust.mailstack.plugins.module_utils import quarantine

HEADERS = (
    b"Return-Path: <peer@outside.example>\n"
    b"X-Envelope-From: <peer@outside.example>\n"
    b"X-Envelope-To: <demo@corp.example>,\n <alice@corp.example>\n"
    b"X-Quarantine-ID: <G_4oe_oTpy2Y>\n"
    b"X-Amavis-Alert: INFECTED, message contains virus:\n Eicar-Signature\n"
    b"Subject: invoice\n"
    b"Date: Mon, 07 Dec 2026 04:16:07 +0000\n"
    b"\n"
    b"Subject: not a header of this message\n"
)


def write(directory, name, data=HEADERS):
    path = directory / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return path


def test_each_message_is_listed_by_its_id_with_what_an_operator_needs(tmp_path):
    write(tmp_path, "G/virus-G_4oe_oTpy2Y")
    (entry,) = quarantine.entries(str(tmp_path))
    assert entry == {
        "id": "G_4oe_oTpy2Y",
        "kind": "virus",
        "file": "G/virus-G_4oe_oTpy2Y",
        "sender": "peer@outside.example",
        "recipients": ["demo@corp.example", "alice@corp.example"],
        "reason": "INFECTED, message contains virus: Eicar-Signature",
        "subject": "invoice",
        "date": "Mon, 07 Dec 2026 04:16:07 +0000",
    }
    line = quarantine.summary_line(dict(entry, released={"at": "T", "by": "jdoe", "reason": "INC-1"}))
    assert line.startswith("G_4oe_oTpy2Y virus ") and line.endswith(" released T by jdoe: INC-1")


def test_what_amavis_could_plant_is_not_read(tmp_path):
    # A link to a root file, a directory and a name of another form are skipped, never followed.
    secret = write(tmp_path, "secret", b"Subject: root's secret\n\n")
    (tmp_path / "a").mkdir()
    os.symlink(secret, tmp_path / "a" / "virus-AAAAAAAAAAAA")
    (tmp_path / "a" / "spam-BBBBBBBBBBBB").mkdir()
    write(tmp_path, "a/virus-CCCCCCCCCCCC.extra")
    os.symlink(tmp_path / "a", tmp_path / "b")
    assert quarantine.entries(str(tmp_path)) == []


def test_a_release_names_a_message_by_its_id_only(tmp_path):
    write(tmp_path, "G/banned-G_4oe_oTpy2Y")
    assert quarantine.find(str(tmp_path), "G_4oe_oTpy2Y")["kind"] == "banned"
    with pytest.raises(LookupError, match="no message AAAAAAAAAAAA"):
        quarantine.find(str(tmp_path), "AAAAAAAAAAAA")
    for bad in ("../../etc/x", "G/banned-G_4oe_oTpy2Y", "G_4oe_oTpy2", "G_4oe_oTpy2Y\n", None):
        with pytest.raises(ValueError, match="mail_id"):
            quarantine.find(str(tmp_path), bad)
