"""ZT-DKIM-05: the steps of a DKIM key rotation and the state that records them
(module_utils/dkim_rotation.py), and the inputs of the rotation (validation.py)."""

import json
import os
import stat

import pytest
from ansible_collections.zerotrust.mailstack.plugins.module_utils import dkim_rotation as rot
from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import (
    InputError,
    check_label,
    check_seconds,
    validate_formats,
)

DOMAINS = ["corp.example"]
T0 = 1_800_000_000
HOUR = 3600


def run(document, selector, now, propagation=48 * HOUR, grace=7 * 24 * HOUR, domains=DOMAINS):
    """One run of the playbook: plan, then record the planned steps (as the playbook does)."""
    steps, waits, planned = rot.plan(document, domains, "mail", selector, propagation, grace, now)
    recorded = rot.advance(document, domains, "mail", selector, steps, now)
    assert recorded == planned
    return steps, waits, rot.load(rot.dump(recorded))


def signing(document, domain="corp.example"):
    return rot.selectors(document, [domain], "mail")[domain]


def test_a_host_that_never_rotated_signs_with_its_first_selector():
    empty = rot.load(None)
    assert signing(empty) == {"sign": "mail", "publish": ["mail"], "retired": []}
    steps, _, planned = rot.plan(empty, DOMAINS, "mail", None, 0, 0, T0)
    assert steps == {"corp.example": "done"} and planned == empty


def test_a_rotation_takes_three_steps_each_only_when_its_time_has_come():
    state = rot.load(None)
    steps, _, state = run(state, "2026q4", T0)
    assert steps == {"corp.example": "publish"}
    # Published beside the one signing; the old one still signs.
    assert signing(state) == {"sign": "mail", "publish": ["mail", "2026q4"], "retired": []}
    assert state["domains"]["corp.example"]["published"] == rot.format_time(T0)

    # Before the propagation time: nothing changes, and the wait is reported.
    steps, waits, again = run(state, "2026q4", T0 + 47 * HOUR)
    assert steps == {"corp.example": "wait"} and waits == {"corp.example": HOUR} and again == state

    steps, _, state = run(state, "2026q4", T0 + 48 * HOUR)
    assert steps == {"corp.example": "switch"}
    assert signing(state) == {"sign": "2026q4", "publish": ["2026q4", "mail"], "retired": []}

    steps, waits, again = run(state, "2026q4", T0 + 48 * HOUR + 7 * 24 * HOUR - 1)
    assert steps == {"corp.example": "wait"} and waits == {"corp.example": 1} and again == state

    steps, _, state = run(state, "2026q4", T0 + 48 * HOUR + 7 * 24 * HOUR)
    assert steps == {"corp.example": "retire"}
    assert signing(state) == {"sign": "2026q4", "publish": ["2026q4"], "retired": ["mail"]}
    entry = state["domains"]["corp.example"]
    assert (entry["published"], entry["switched"], entry["retired"]) == (
        rot.format_time(T0),
        rot.format_time(T0 + 48 * HOUR),
        rot.format_time(T0 + 48 * HOUR + 7 * 24 * HOUR),
    )

    # Finished: any later run with the same selector changes nothing.
    steps, _, again = run(state, "2026q4", T0 + 365 * 24 * HOUR)
    assert steps == {"corp.example": "done"} and again == state


def test_with_no_waiting_each_run_still_takes_one_step():
    """A step's clock starts when its run records it: the records a run publishes have not
    propagated by the end of that run, even with propagation 0."""
    state = rot.load(None)
    taken = []
    for _ in range(4):
        steps, _, state = run(state, "b", T0, propagation=0, grace=0)
        taken.append(steps["corp.example"])
    assert taken == ["publish", "switch", "retire", "done"]


def test_another_selector_is_refused_while_a_rotation_is_under_way():
    _, _, published = run(rot.load(None), "b", T0)
    with pytest.raises(rot.RotationError, match=r"corp.example: the rotation to 'b' .* finish it first \(selector=b\)"):
        rot.plan(published, DOMAINS, "mail", "c", 0, 0, T0 + 1)
    _, _, switched = run(published, "b", T0 + 48 * HOUR)
    with pytest.raises(rot.RotationError, match=r"the old selector 'mail' is still published .*selector=b"):
        rot.plan(switched, DOMAINS, "mail", "c", 0, 0, T0 + 49 * HOUR)
    # Its twin: the same selector goes on, and a new rotation may start once it is done.
    _, _, retired = run(switched, "b", T0 + 48 * HOUR, grace=0)
    steps, _, _ = run(retired, "c", T0 + 49 * HOUR)
    assert steps == {"corp.example": "publish"}


def test_a_retired_selector_may_sign_again_with_a_new_key_after_a_rotation_back():
    state = rot.load(None)
    for _ in range(3):
        _, _, state = run(state, "b", T0, propagation=0, grace=0)
    assert signing(state)["retired"] == ["mail"]
    steps, _, state = run(state, "mail", T0, propagation=0, grace=0)
    assert steps == {"corp.example": "publish"}
    # Published again: no longer among the retired, so its (new) key is not deleted.
    assert signing(state) == {"sign": "b", "publish": ["b", "mail"], "retired": []}
    for _ in range(2):
        _, _, state = run(state, "mail", T0, propagation=0, grace=0)
    assert signing(state) == {"sign": "mail", "publish": ["mail"], "retired": ["b"]}
    assert state["domains"]["corp.example"]["history"] == ["mail", "b"]
    # Retired again: last in the history, which lists each selector once.
    for _ in range(3):
        _, _, state = run(state, "b", T0, propagation=0, grace=0)
    assert state["domains"]["corp.example"]["history"] == ["b", "mail"]


def test_each_domain_advances_on_its_own():
    """A domain added after a rotation started begins at its first selector."""
    _, _, state = run(rot.load(None), "b", T0)
    domains = ["corp.example", "other.example"]
    with pytest.raises(rot.RotationError, match="corp.example"):
        run(state, "c", T0 + 48 * HOUR, domains=domains)
    steps, _, state = run(state, "b", T0 + 48 * HOUR, domains=domains)
    assert steps == {"corp.example": "switch", "other.example": "publish"}
    assert rot.keys(rot.selectors(state, domains, "mail"), "publish") == [
        {"domain": "corp.example", "selector": "b"},
        {"domain": "corp.example", "selector": "mail"},
        {"domain": "other.example", "selector": "mail"},
        {"domain": "other.example", "selector": "b"},
    ]


def test_recording_a_step_the_state_no_longer_allows_fails():
    """Two runs planned the same switch: the second to record it finds the state moved on."""
    _, _, published = run(rot.load(None), "b", T0)
    steps, _, _ = rot.plan(published, DOMAINS, "mail", "b", 0, 0, T0 + 1)
    switched = rot.advance(published, DOMAINS, "mail", "b", steps, T0 + 1)
    with pytest.raises(rot.RotationError, match="cannot switch"):
        rot.advance(switched, DOMAINS, "mail", "b", steps, T0 + 2)
    with pytest.raises(rot.RotationError, match="unknown step"):
        rot.advance(published, DOMAINS, "mail", "b", {"corp.example": "rm -rf"}, T0)


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"version": 2, "domains": {}}',
        '{"version": 1, "domains": {"corp.example": {"active": "mail"}}}',
        '{"version": 1, "domains": {"corp.example": {"active": "a\\nb", "new": null, "old": null,'
        ' "published": null, "switched": null, "retired": null, "history": []}}}',
        '{"version": 1, "domains": {"corp.example": {"active": "mail", "new": "b", "old": null,'
        ' "published": "yesterday", "switched": null, "retired": null, "history": []}}}',
        '{"version": 1, "domains": {"corp.example": {"active": "mail", "new": null, "old": "mail",'
        ' "published": null, "switched": "2026-12-07T00:00:00Z", "retired": null, "history": []}}}',
        '{"version": 1, "domains": {"corp.example": {"active": "mail", "new": null, "old": "b",'
        ' "published": null, "switched": null, "retired": null, "history": []}}}',
    ],
    ids=["not-json", "not-a-dict", "version", "fields", "newline", "time", "same-selector", "no-switch-time"],
)
def test_a_corrupt_state_is_refused_never_guessed(text):
    with pytest.raises(rot.RotationError):
        rot.load(text)


def test_a_recorded_state_reads_back_the_same():
    _, _, state = run(rot.load(None), "b", T0)
    assert rot.load(rot.dump(state)) == state
    assert json.loads(rot.dump(state))["domains"]["corp.example"]["new"] == "b"


@pytest.mark.parametrize(
    "selector",
    ["", "a.b", "a\nb", "2026q4\n", "a b", "-a", "a-", "A", "a/b", "../x", "a" * 64, 5],
    ids=["empty", "dot", "newline", "trailing-newline", "space", "leading-hyphen", "trailing-hyphen", "upper",
         "slash", "path", "too-long", "number"],
)  # fmt: skip
def test_a_selector_that_is_not_one_dns_label_is_refused(selector):
    with pytest.raises(InputError, match="selector"):
        rot.check_selector(selector)
    with pytest.raises(InputError, match="opendkim_rotate_selector"):
        validate_formats({"opendkim_rotate_selector": selector}, {"opendkim_rotate_selector": "label"})


@pytest.mark.parametrize("selector", ["2026q4", "mail", "s1", "a" * 63, "k-2027-01"])
def test_a_dns_label_is_a_selector(selector):
    assert rot.check_selector(selector) == selector == check_label(selector, "x")


@pytest.mark.parametrize("value", [-1, "-1", "1.5", 1.5, "", "48h", True, None, "1\n"])
def test_a_duration_must_be_whole_seconds_from_zero(value):
    with pytest.raises(InputError, match="grace"):
        check_seconds(value, "grace")


@pytest.mark.parametrize(("value", "seconds"), [(0, 0), ("0", 0), (172800, 172800), ("604800", 604800)])
def test_whole_seconds_from_zero_are_durations(value, seconds):
    assert check_seconds(value, "grace") == seconds


def test_the_report_says_what_signs_and_when_the_next_step_is_due():
    _, _, state = run(rot.load(None), "b", T0)
    steps, waits, planned = rot.plan(state, DOMAINS, "mail", "b", 48 * HOUR, 0, T0 + HOUR)
    (line,) = rot.report(planned, DOMAINS, "mail", steps, waits, T0 + HOUR)
    assert line.startswith("corp.example: signs with mail; b published %s" % rot.format_time(T0))
    assert "switch due in %ds (%s)" % (47 * HOUR, rot.format_time(T0 + 48 * HOUR)) in line


def test_the_module_refuses_a_state_file_it_cannot_trust(tmp_path, monkeypatch):
    from ansible_collections.zerotrust.mailstack.plugins.module_utils.file_output import UnsafeTarget
    from ansible_collections.zerotrust.mailstack.plugins.modules import dkim_rotation as module

    target = tmp_path / "secret"
    target.write_text("{}")
    link = tmp_path / "rotation.json"
    link.symlink_to(target)
    with pytest.raises(UnsafeTarget, match="link"):
        module.read_state(str(link))
    link.unlink()
    link.write_text(rot.dump(rot.load(None)))
    os.chmod(link, 0o620)
    if os.getuid() == 0:
        with pytest.raises(UnsafeTarget, match="root"):
            module.read_state(str(link))
        # Its twin: root's, written by root alone.
        os.chmod(link, 0o644)
        assert rot.load(module.read_state(str(link))) == rot.load(None)
    assert stat.S_IMODE(os.stat(link).st_mode) in (0o644, 0o620)
