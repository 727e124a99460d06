import base64
import dataclasses
import datetime
import json
import os
import stat
import threading
import time

import pytest
from ansible_collections.zerotrust.mailstack.plugins.module_utils import mail_auth as m

UTC = m.UTC
NOW = datetime.datetime(2025, 6, 1, 12, 0, 10, tzinfo=UTC)
STEP = int(NOW.timestamp()) // 30
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
APP_PW = "k3x9q2ab-Abcdefghijklmnopqrstuvw1"
APP_PW2 = "zz11yy22-QWERTYUIOPASDFGHJKLZXCVB"


def code(offset=0, secret=SECRET):
    return m.totp(secret, STEP + offset)


# A well-formed code that is valid at no step near NOW.
NEAR = {code(offset) for offset in range(-3, 4)}
WRONG = next(c for c in ("%06d" % n for n in range(1000000)) if c not in NEAR)


def wrong_codes(count):
    """`count` distinct well-formed codes, none valid near NOW."""
    return [c for c in ("%06d" % n for n in range(0, 10**6, 7919)) if c not in NEAR][:count]


ALICE_DN = "uid=alice,ou=people,dc=corp,dc=example"
HOME = "192.0.2.7"  # where alice logs in from; the auth() default
OUTSIDER = "198.51.100.66"


class FakeDirectory:
    """The duck-typed directory: users by login or address, app passwords per user, bind by DN."""

    def __init__(self, delay=0.0):
        self.users = {}
        self.addresses = {}
        self.apps = {}
        self.passwords = {}
        self.binds = []
        self.lookups = []
        self.down = set()
        self.delay = delay  # seconds each call takes, so concurrent requests overlap
        self.failed_binds = {}  # slapd's ppolicy: the fifth failed bind locks the entry
        # mailstackTotpLastStep by DN, shared by every auth host that uses this directory.
        self.steps = {}
        self.claims = []
        self.before_claim = None  # called before each compare-and-swap, to play another host
        self.after_bind = None  # called after each bind, e.g. to line concurrent logins up
        self._modify = threading.Lock()  # slapd applies one modify to an entry at a time

    def add_user(self, login, password, enabled=True, totp_secret=SECRET, address=None):
        dn = "uid=%s,ou=people,dc=corp,dc=example" % login
        self.users[login] = m.UserRecord(login, dn, enabled, totp_secret)
        self.passwords[dn] = password
        if address:
            self.addresses[address] = login
        return dn

    def add_app(self, login, password, scopes=("imap", "smtp"), expires=None, device_bound=False):
        app_id = m.parse_app_password(password)
        dn = "mailstackAppId=%s,%s" % (app_id, self.users[login].dn)
        self.apps[(login, app_id)] = m.AppRecord(app_id, dn, frozenset(scopes), expires, device_bound)
        self.passwords[dn] = password

    def _check(self, call):
        if self.delay:
            time.sleep(self.delay)
        if call in self.down:
            raise m.DirectoryUnavailable(call)

    def find_user(self, name):
        self._check("find_user")
        self.lookups.append(name)
        user = self.users.get(self.addresses.get(name, name))
        if user is not None and user.dn in self.steps:
            return dataclasses.replace(user, totp_last_step=self.steps[user.dn])
        return user

    def find_app_password(self, login, app_id):
        self._check("find_app_password")
        return self.apps.get((login, app_id))

    def bind(self, dn, password):
        self._check("bind")
        self.binds.append(dn)
        if self.after_bind is not None:
            self.after_bind()
        if self.locked(dn):
            return False
        if dn in self.passwords and self.passwords[dn] == password:
            return True
        self.failed_binds[dn] = self.failed_binds.get(dn, 0) + 1
        return False

    def locked(self, dn):
        return self.failed_binds.get(dn, 0) >= 5

    def claim_step(self, user, step):
        """The LDAP modify [delete the step read at lookup, add `step`], atomic: False when
        the stored step is no longer the one `user` was read with (another host won)."""
        self._check("claim_step")
        if self.before_claim is not None:
            self.before_claim()
        with self._modify:
            self.claims.append(step)
            if self.steps.get(user.dn) != user.totp_last_step:
                return False
            self.steps[user.dn] = step
            return True


@pytest.fixture
def directory():
    d = FakeDirectory()
    d.add_user("alice", "correct horse", address="alice@corp.example")
    d.add_user("bob", "hunter2", enabled=False)
    d.add_user("carol", "pw", totp_secret=None)
    return d


@pytest.fixture
def state(tmp_path):
    return m.AuthState(str(tmp_path / "state"))


def auth(directory, state, password, user="alice", service="imap", cert=False, now=NOW, rip=HOME, **options):
    request = m.AuthRequest(user, password, service, rip, cert)
    return m.authenticate(request, directory, state, now, **options)


def outcome(result):
    return (result.status, result.user, result.reason)


# --- TOTP -------------------------------------------------------------------

RFC6238_SECRET = base64.b32encode(b"12345678901234567890").decode("ascii")


@pytest.mark.parametrize(
    ("unix_time", "expected"),
    [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    ],
)
def test_rfc6238_sha1_vectors(unix_time, expected):
    assert m.totp(RFC6238_SECRET, unix_time // 30, digits=8) == expected
    # Six digits are the same truncation modulo 10**6.
    assert m.totp(RFC6238_SECRET, unix_time // 30) == expected[2:]


@pytest.mark.parametrize(
    "secret",
    [RFC6238_SECRET, RFC6238_SECRET.lower(), RFC6238_SECRET.rstrip("="), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"],
)
def test_secret_case_and_padding_do_not_matter(secret):
    assert m.totp(secret, 59 // 30, digits=8) == "94287082"


@pytest.mark.parametrize("secret", ["", "not base32!", "A1B2", 42, None])
def test_bad_secret_refused(secret):
    with pytest.raises(ValueError):
        m.totp(secret, 1)


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_skew_of_one_step_accepted(offset):
    assert m.verify_totp(SECRET, code(offset), NOW) == STEP + offset


@pytest.mark.parametrize("offset", [-2, 2, 5])
def test_skew_of_two_steps_refused(offset):
    assert m.verify_totp(SECRET, code(offset), NOW) is None


def test_window_zero_accepts_only_current_step():
    assert m.verify_totp(SECRET, code(0), NOW, window=0) == STEP
    assert m.verify_totp(SECRET, code(1), NOW, window=0) is None


def test_verify_accepts_unix_seconds():
    assert m.verify_totp(SECRET, code(0), NOW.timestamp()) == STEP


def test_verify_refuses_naive_datetime():
    with pytest.raises(ValueError, match="naive"):
        m.verify_totp(SECRET, code(0), NOW.replace(tzinfo=None))


@pytest.mark.parametrize(
    "value",
    ["12345", "1234567", " 12345", "12345\n", "12 456", "١٢٣٤٥٦", "abcdef", 123456, None],
)
def test_code_must_be_six_ascii_digits(value):
    assert m.verify_totp(SECRET, value, NOW) is None


def test_code_with_trailing_newline_refused_even_if_digits_match():
    assert m.verify_totp(SECRET, code(0) + "\n", NOW) is None


def test_otpauth_uri():
    uri = m.otpauth_uri("gezdgnbvgy3tqojq", "alice@corp.example", "Corp Mail & Co")
    assert uri == (
        "otpauth://totp/Corp%20Mail%20%26%20Co:alice@corp.example"
        "?secret=GEZDGNBVGY3TQOJQ&issuer=Corp%20Mail%20%26%20Co&algorithm=SHA1&digits=6&period=30"
    )


@pytest.mark.parametrize(("account", "issuer"), [("a:b", "Corp"), ("alice", "Co:rp"), ("", "Corp"), ("al\nice", "C")])
def test_otpauth_uri_refuses_ambiguous_labels(account, issuer):
    with pytest.raises(ValueError):
        m.otpauth_uri(SECRET, account, issuer)


def test_new_totp_secret_is_160_bits():
    secret = m.new_totp_secret()
    assert len(m.decode_secret(secret)) == 20
    assert "=" not in secret


# --- App passwords and names -----------------------------------------------


def test_parse_app_password():
    assert m.parse_app_password(APP_PW) == "k3x9q2ab"


@pytest.mark.parametrize(
    "value",
    [
        "K3X9Q2AB-Abcdefghijklmnopqrstuvw1",
        "k3x9q2a-Abcdefghijklmnopqrstuvw1",
        "k3x9q2ab-Abcdefghijklmnopqrstuvw",
        "k3x9q2ab-Abcdefghijklmnopqrstuvw12",
        "k3x9q2ab_Abcdefghijklmnopqrstuvw1",
        "k3x9q2ab-Abcdefghijklmnopqrstuv-1",
        APP_PW + "\n",
        "",
        None,
    ],
)
def test_parse_app_password_refuses_other_shapes(value):
    assert m.parse_app_password(value) is None


def test_new_app_password():
    first, second = m.new_app_password(), m.new_app_password()
    assert m.APP_PASSWORD_RE.match(first) and m.APP_PASSWORD_RE.match(second)
    assert first != second


@pytest.mark.parametrize(
    "value", ["alice", "a", "a.b-c_d", "0day", "x" * 64, "alice@corp.example", "a.b+t@mx.corp.example"]
)
def test_valid_login_names(value):
    assert m.check_login_name(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        "Alice",
        ".alice",
        "-alice",
        "x" * 65,
        "al/ice",
        "..",
        "alice\n",
        "al ice",
        "Alice@corp.example",
        "alice@Corp.example",
        ".a@corp.example",
        "a..b@corp.example",
        "alice@corp",
        "alice@corp.123",
        "a*@corp.example",
        "alice@-corp.example",
        None,
    ],
)
def test_invalid_login_names(value):
    with pytest.raises(ValueError):
        m.check_login_name(value)


# --- Password + TOTP ---------------------------------------------------------


def test_password_and_code_accepted(directory, state):
    assert outcome(auth(directory, state, "correct horse" + code())) == ("ok", "alice", "totp")
    assert directory.binds == [directory.users["alice"].dn]
    assert state.last_step("alice") == STEP


def test_address_logs_in_as_canonical_login(directory, state):
    result = auth(directory, state, "correct horse" + code(), user="alice@corp.example")
    assert outcome(result) == ("ok", "alice", "totp")


def test_binds_with_the_password_part_only(directory, state):
    directory.add_user("dave", "pin123456")  # a password ending in digits keeps them
    assert auth(directory, state, "pin123456" + code(), user="dave").status == "ok"


def test_replayed_code_refused(directory, state):
    assert auth(directory, state, "correct horse" + code()).status == "ok"
    assert outcome(auth(directory, state, "correct horse" + code())) == ("fail", None, "totp-replayed")


def test_older_step_refused_after_newer_one(directory, state):
    assert auth(directory, state, "correct horse" + code(1)).status == "ok"
    assert auth(directory, state, "correct horse" + code(0)).reason == "totp-replayed"
    assert auth(directory, state, "correct horse" + code(-1)).reason == "totp-replayed"
    later = NOW + datetime.timedelta(seconds=60)
    assert auth(directory, state, "correct horse" + code(2), now=later).status == "ok"


def test_replay_is_per_user(directory, state):
    directory.add_user("dave", "pw2")
    assert auth(directory, state, "correct horse" + code()).status == "ok"
    assert auth(directory, state, "pw2" + code(), user="dave").status == "ok"


# --- Replay across auth hosts (issue 9 item 4) ----------------------------------
# Each IMAP host runs its own mailstack-authd with its own state directory; the last
# accepted step lives in the directory they share, claimed by compare-and-swap.


@pytest.fixture
def hosts(tmp_path):
    """The local state of two auth hosts, imap1 and imap2."""
    return m.AuthState(str(tmp_path / "imap1")), m.AuthState(str(tmp_path / "imap2"))


def test_code_accepted_by_one_auth_host_is_refused_by_another(directory, hosts):
    imap1, imap2 = hosts
    assert outcome(auth(directory, imap1, "correct horse" + code())) == ("ok", "alice", "totp")
    assert outcome(auth(directory, imap2, "correct horse" + code())) == ("fail", None, "totp-replayed")
    assert directory.steps[ALICE_DN] == STEP
    assert imap2.last_step("alice") is None  # refused on the directory's word alone
    # Refused at the lookup: a replayed code never reaches a bind, on either host.
    assert directory.binds == [ALICE_DN]


def test_newer_step_after_an_older_one_is_accepted_on_either_host(directory, hosts):
    imap1, imap2 = hosts
    assert auth(directory, imap1, "correct horse" + code(-1)).status == "ok"
    assert auth(directory, imap2, "correct horse" + code(0)).status == "ok"
    # imap1's own file still says STEP - 1; the directory refuses what imap2 took.
    assert auth(directory, imap1, "correct horse" + code(0)).reason == "totp-replayed"
    assert auth(directory, imap1, "correct horse" + code(-1)).reason == "totp-replayed"
    assert auth(directory, imap1, "correct horse" + code(1)).status == "ok"
    assert directory.claims == [STEP - 1, STEP, STEP + 1]


def test_race_of_two_hosts_for_one_step_has_one_winner(hosts):
    """Both hosts read the same stored step, both binds succeed, then both claim: the
    compare-and-swap lets exactly one through."""
    shared = FakeDirectory()
    shared.add_user("alice", "correct horse")
    shared.steps[ALICE_DN] = STEP - 2
    barrier = threading.Barrier(2, timeout=5)
    shared.after_bind = barrier.wait
    results = _concurrently(2, lambda n: auth(shared, hosts[n], "correct horse" + code()))
    assert sorted(outcome(r) for r in results) == [("fail", None, "totp-replayed"), ("ok", "alice", "totp")]
    assert shared.steps[ALICE_DN] == STEP


def test_race_of_many_hosts_for_one_step_has_one_winner(tmp_path):
    shared = FakeDirectory(delay=0.01)
    shared.add_user("alice", "correct horse")
    states = [m.AuthState(str(tmp_path / ("imap%d" % n))) for n in range(8)]
    results = _concurrently(8, lambda n: auth(shared, states[n], "correct horse" + code()))
    assert sorted(r.reason for r in results) == ["totp"] + ["totp-replayed"] * 7
    assert shared.steps[ALICE_DN] == STEP


def test_lost_race_to_an_older_step_is_retried(directory, state):
    """Another host claimed an older step after this one's lookup: the swap fails, the
    re-read shows an older step, and the claim is retried against it."""

    def other_host():
        directory.before_claim = None
        directory.steps[ALICE_DN] = STEP - 1

    directory.before_claim = other_host
    assert outcome(auth(directory, state, "correct horse" + code())) == ("ok", "alice", "totp")
    assert directory.steps[ALICE_DN] == STEP
    assert directory.claims == [STEP, STEP]


@pytest.mark.parametrize("taken", [STEP, STEP + 1])
def test_lost_race_to_the_same_or_a_newer_step_is_a_replay(directory, state, taken):
    def other_host():
        directory.steps[ALICE_DN] = taken

    directory.before_claim = other_host
    assert outcome(auth(directory, state, "correct horse" + code())) == ("fail", None, "totp-replayed")
    assert directory.steps[ALICE_DN] == taken
    assert state.last_step("alice") is None


def test_endless_contention_is_tempfail(directory, state):
    """Each retry loses to yet another older step: after a few, retry later, never grant."""
    older = iter(range(STEP - 100, STEP))

    def other_host():
        directory.steps[ALICE_DN] = next(older)

    directory.before_claim = other_host
    assert outcome(auth(directory, state, "correct horse" + code())) == ("tempfail", None, "directory-unavailable")
    assert directory.steps[ALICE_DN] < STEP and state.last_step("alice") is None
    directory.before_claim = None
    assert auth(directory, state, "correct horse" + code()).status == "ok"


def test_directory_write_failure_is_tempfail_and_claims_nothing(directory, state):
    directory.down.add("claim_step")
    assert outcome(auth(directory, state, "correct horse" + code())) == ("tempfail", None, "directory-unavailable")
    assert ALICE_DN not in directory.steps
    assert state.last_step("alice") is None
    # Never recorded, so never accepted: the same code works once the directory is back.
    directory.down.clear()
    assert auth(directory, state, "correct horse" + code()).status == "ok"


def test_step_beyond_the_window_in_the_directory_refuses_codes(directory, state):
    """A stored step ahead of every code now valid: a clock far ahead on some auth host, or
    a write by someone holding the dovecot account. Refused, and said so, never reset."""
    directory.steps[ALICE_DN] = STEP + 10
    assert outcome(auth(directory, state, "correct horse" + code())) == ("fail", None, "totp-step-ahead")
    assert directory.binds == [] and directory.steps[ALICE_DN] == STEP + 10


def test_local_state_still_refuses_a_replay_the_directory_forgot(directory, state):
    """Defence in depth: the host's own file is checked too, so deleting the directory's
    value (a restore from backup, say) does not reopen codes this host accepted."""
    assert auth(directory, state, "correct horse" + code()).status == "ok"
    del directory.steps[ALICE_DN]
    assert auth(directory, state, "correct horse" + code()).reason == "totp-replayed"


def test_app_passwords_claim_no_step(directory, hosts):
    directory.add_app("alice", APP_PW)
    assert auth(directory, hosts[0], APP_PW).status == "ok"
    assert auth(directory, hosts[1], APP_PW).status == "ok"
    assert directory.claims == []


def cutoff(seconds=900):
    return NOW.timestamp() - seconds


def test_wrong_code_counted_for_the_source(directory, state):
    assert outcome(auth(directory, state, "correct horse" + WRONG)) == ("fail", None, "totp-invalid")
    assert state.source_failures("192.0.2.7", cutoff()) == 1
    assert state.source_failures("192.0.2.8", cutoff()) == 0
    assert directory.binds == []


def test_code_outside_window_is_invalid(directory, state):
    assert auth(directory, state, "correct horse" + code(2)).reason == "totp-invalid"
    assert auth(directory, state, "correct horse" + code(2), window=2).status == "ok"


def test_throttle_parameters(directory, state):
    options = {"login_failures": 2, "source_failures": 3, "throttle_seconds": 60}
    for user in ("alice", "alice", "mallory"):
        assert auth(directory, state, "x" + WRONG, user=user, **options).status == "fail"
    assert auth(directory, state, "correct horse" + code(), **options).reason == "source-throttled"
    later = NOW + datetime.timedelta(seconds=61)
    assert auth(directory, state, "correct horse" + code(2), now=later, **options).status == "ok"


def test_login_limit_is_per_login_and_source(directory, state):
    directory.add_user("dave", "pw2")
    options = {"login_failures": 2}
    for _ in range(2):
        assert auth(directory, state, "x" + WRONG, **options).reason == "totp-invalid"
    assert auth(directory, state, "correct horse" + code(), **options).reason == "source-throttled"
    assert auth(directory, state, "pw2" + code(), user="dave", **options).status == "ok"


def test_aliases_share_the_login_count(directory, state):
    for user in ("alice", "alice@corp.example", "alice", "alice@corp.example", "alice"):
        assert auth(directory, state, "x" + WRONG, user=user).reason == "totp-invalid"
    assert auth(directory, state, "correct horse" + code(), user="alice@corp.example").reason == "source-throttled"


def test_failures_of_other_users_do_not_block_app_passwords_elsewhere(directory, state):
    directory.add_app("alice", APP_PW)
    for guess in wrong_codes(5):
        assert auth(directory, state, "x" + guess, rip=OUTSIDER).status == "fail"
    assert auth(directory, state, APP_PW).status == "ok"


def test_wrong_password_claims_no_step(directory, state):
    assert outcome(auth(directory, state, "wrong" + code())) == ("fail", None, "bad-password")
    assert state.last_step("alice") is None
    assert state.source_failures("192.0.2.7", cutoff()) == 1


@pytest.mark.parametrize("password", ["correct horse", "123456", "correct horse12345", "correct horse12345x"])
def test_password_without_code(directory, state, password):
    assert outcome(auth(directory, state, password)) == ("fail", None, "totp-missing")
    assert directory.binds == []


def test_user_without_totp_secret(directory, state):
    assert outcome(auth(directory, state, "pw" + code(), user="carol")) == ("fail", None, "totp-not-enrolled")
    assert directory.binds == []


def test_user_with_broken_totp_secret(directory, state):
    directory.add_user("dave", "pw", totp_secret="not base32!")
    assert auth(directory, state, "pw" + code(), user="dave").reason == "totp-secret-invalid"


@pytest.mark.parametrize("user", ["mallory", "mallory@corp.example"])
def test_unknown_user(directory, state, user):
    assert outcome(auth(directory, state, "x" + code(), user=user)) == ("fail", None, "unknown-user")


def test_invalid_login_name_not_looked_up(directory, state):
    directory.down.add("find_user")
    assert auth(directory, state, "x" + code(), user="ALICE*").reason == "unknown-user"


def test_disabled_user(directory, state):
    assert outcome(auth(directory, state, "hunter2" + code(), user="bob")) == ("fail", None, "disabled")
    assert directory.binds == []


def test_disabled_user_app_password_refused(directory, state):
    directory.add_app("bob", APP_PW)
    assert auth(directory, state, APP_PW, user="bob").reason == "disabled"


@pytest.mark.parametrize(
    ("user", "password", "service"),
    [
        ("alice\n", "correct horse", "imap"),
        ("alice", "correct\thorse", "imap"),
        ("alice", "correct horse\r", "imap"),
        ("alice", "correct\x00horse", "imap"),
        ("alice", "correct\x7fhorse", "imap"),
        ("alice", "correct horse", "imap\n"),
        ("", "correct horse", "imap"),
        ("alice", "", "imap"),
    ],
)
def test_control_characters_and_empty_fields(directory, state, user, password, service):
    request = m.AuthRequest(user, password + code() if password else "", service, "192.0.2.7", False)
    assert outcome(m.authenticate(request, directory, state, NOW)) == ("fail", None, "bad-input")
    assert directory.binds == []


@pytest.mark.parametrize("service", ["pop3", "IMAP", "", "submission"])
def test_unknown_service(directory, state, service):
    result = auth(directory, state, "correct horse" + code(), service=service)
    assert outcome(result) == ("fail", None, "bad-service")
    assert directory.binds == []


# --- App passwords ----------------------------------------------------------


def test_app_password_accepted(directory, state):
    directory.add_app("alice", APP_PW)
    result = auth(directory, state, APP_PW, service="smtp")
    assert outcome(result) == ("ok", "alice", "app-password")
    assert result.app_id == "k3x9q2ab"
    assert directory.binds == [directory.apps[("alice", "k3x9q2ab")].dn]


def test_app_password_scope(directory, state):
    directory.add_app("alice", APP_PW, scopes=("smtp",))
    assert outcome(auth(directory, state, APP_PW, service="imap")) == ("fail", None, "app-scope")
    assert auth(directory, state, APP_PW, service="smtp").status == "ok"


def test_app_password_without_scopes_refused(directory, state):
    directory.add_app("alice", APP_PW, scopes=())
    assert auth(directory, state, APP_PW).reason == "app-scope"


def test_app_password_expired(directory, state):
    directory.add_app("alice", APP_PW, expires=NOW)
    assert outcome(auth(directory, state, APP_PW)) == ("fail", None, "app-expired")
    assert directory.binds == []


def test_app_password_not_yet_expired(directory, state):
    directory.add_app("alice", APP_PW, expires=NOW + datetime.timedelta(seconds=1))
    assert auth(directory, state, APP_PW).status == "ok"


def test_device_bound_app_password_needs_certificate(directory, state):
    directory.add_app("alice", APP_PW, device_bound=True)
    assert outcome(auth(directory, state, APP_PW)) == ("fail", None, "app-device")
    assert auth(directory, state, APP_PW, cert=True).status == "ok"


# Postfix never verifies a client certificate for Dovecot: an SMTP login that claims
# one (a client of the auth protocol can set valid-client-cert) proves nothing.
def test_device_binding_cannot_be_claimed_for_smtp(directory, state):
    directory.add_app("alice", APP_PW, scopes=("imap", "smtp"), device_bound=True)
    assert outcome(auth(directory, state, APP_PW, service="smtp", cert=True)) == ("fail", None, "app-device")
    assert directory.binds == []
    assert auth(directory, state, APP_PW, service="imap", cert=True).status == "ok"


def test_service_not_served_by_this_host_is_refused_before_anything(directory, state):
    directory.add_app("alice", APP_PW, device_bound=True)
    result = auth(directory, state, APP_PW, service="imap", cert=True, services=frozenset({"smtp"}))
    assert outcome(result) == ("fail", None, "service-not-served")
    assert directory.binds == []
    directory.add_app("alice", APP_PW2, scopes=("smtp",))
    assert auth(directory, state, APP_PW2, service="smtp", services=frozenset({"smtp"})).status == "ok"


def test_revoked_app_password_falls_through_and_fails(directory, state):
    directory.add_app("alice", APP_PW2)
    assert outcome(auth(directory, state, APP_PW)) == ("fail", None, "totp-missing")
    assert directory.binds == []


def test_app_password_of_another_user_refused(directory, state):
    directory.add_user("dave", "pw")
    directory.add_app("dave", APP_PW)
    assert auth(directory, state, APP_PW).reason == "totp-missing"


def test_app_password_with_wrong_secret(directory, state):
    directory.add_app("alice", APP_PW)
    wrong = APP_PW[:-1] + "2"
    assert outcome(auth(directory, state, wrong)) == ("fail", None, "bad-password")


def test_app_password_is_not_subject_to_replay(directory, state):
    directory.add_app("alice", APP_PW)
    assert auth(directory, state, APP_PW).status == "ok"
    assert auth(directory, state, APP_PW).status == "ok"


# --- Directory outages -------------------------------------------------------


@pytest.mark.parametrize(
    ("down", "password"),
    [
        ("find_user", "correct horse"),
        ("find_app_password", APP_PW),
        ("bind", APP_PW),
        ("bind", "correct horse"),
    ],
)
def test_directory_unavailable_is_tempfail(directory, state, down, password):
    directory.add_app("alice", APP_PW)
    directory.down.add(down)
    result = auth(directory, state, password + ("" if password == APP_PW else code()))
    assert outcome(result) == ("tempfail", None, "directory-unavailable")
    assert state.last_step("alice") is None


@pytest.mark.parametrize("name", ["alice", ".sources/192.0.2.7"])
def test_corrupt_state_is_tempfail(directory, state, name):
    with open(os.path.join(state.path, name), "w") as handle:
        handle.write("{not json")
    assert outcome(auth(directory, state, "correct horse" + code())) == ("tempfail", None, "state-unavailable")
    assert directory.binds == []


# --- Outsiders cannot lock anyone out ------------------------------------------
# An outsider knows login names but neither a password nor a code. Each negative test
# below has its positive twin: the real user, from another address, still logs in.


@pytest.fixture
def evaluations(monkeypatch):
    """Counts code checks: a refused-before-evaluation login checks no code."""
    calls = []
    real = m.verify_totp

    def counting(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(m, "verify_totp", counting)
    return calls


def test_wrong_codes_never_reach_the_directory(directory, state):
    for guess in wrong_codes(5):
        assert auth(directory, state, "guess" + guess, rip=OUTSIDER).status == "fail"
    assert directory.binds == []  # slapd's password policy has nothing to count
    assert auth(directory, state, "correct horse" + code()).status == "ok"
    assert directory.binds == [ALICE_DN]


def test_outsider_cannot_lock_the_directory_entry(directory, state):
    for number, guess in enumerate(wrong_codes(20)):
        assert auth(directory, state, "guess%d" % number + guess, rip=OUTSIDER).status == "fail"
    assert not directory.locked(ALICE_DN)
    assert outcome(auth(directory, state, "correct horse" + code(), rip=HOME)) == ("ok", "alice", "totp")


def test_throttled_source_is_refused_without_evaluation(directory, state, evaluations):
    for guess in wrong_codes(5):
        assert auth(directory, state, "correct horse" + guess, rip=OUTSIDER).reason == "totp-invalid"
    checked, binds = len(evaluations), len(directory.binds)
    result = auth(directory, state, "correct horse" + code(), rip=OUTSIDER)
    assert outcome(result) == ("fail", None, "source-throttled")
    assert (len(evaluations), len(directory.binds)) == (checked, binds)
    # The same login from another address is not affected.
    assert outcome(auth(directory, state, "correct horse" + code(), rip=HOME)) == ("ok", "alice", "totp")


def test_throttle_threshold_is_exact_and_success_clears_it(directory, state):
    for guess in wrong_codes(4):
        assert auth(directory, state, "correct horse" + guess).reason == "totp-invalid"
    assert auth(directory, state, "correct horse" + code()).status == "ok"
    for guess in wrong_codes(5):  # the count started again after the success
        assert auth(directory, state, "correct horse" + guess).reason == "totp-invalid"
    assert auth(directory, state, "correct horse" + code(1)).reason == "source-throttled"


def test_throttle_expires(directory, state):
    for guess in wrong_codes(5):
        assert auth(directory, state, "x" + guess, rip=OUTSIDER).status == "fail"
    assert auth(directory, state, "correct horse" + code(), rip=OUTSIDER).reason == "source-throttled"
    later = NOW + datetime.timedelta(seconds=901)
    assert auth(directory, state, "correct horse" + code(30), rip=OUTSIDER, now=later).status == "ok"


def test_password_spraying_is_throttled_per_source(directory, state):
    for number in range(30):  # one guess each at many logins, known and unknown
        user = "alice" if number == 0 else "user%d" % number
        assert auth(directory, state, "Spring2025!" + WRONG, user=user, rip=OUTSIDER).status == "fail"
    lookups = len(directory.lookups)
    assert auth(directory, state, "correct horse" + code(), user="carol", rip=OUTSIDER).reason == "source-throttled"
    assert len(directory.lookups) == lookups  # refused before the directory is asked
    assert auth(directory, state, "correct horse" + code(), rip=HOME).status == "ok"


@pytest.mark.parametrize(("rip", "other"), [("", HOME), (HOME, "")])
def test_unknown_address_is_a_bucket_of_its_own(directory, state, rip, other):
    for guess in wrong_codes(5):
        assert auth(directory, state, "x" + guess, rip=rip).status == "fail"
    assert auth(directory, state, "correct horse" + code(), rip=rip).reason == "source-throttled"
    assert auth(directory, state, "correct horse" + code(), rip=other).status == "ok"


def test_ipv6_sources_are_counted_per_64(directory, state):
    for number, guess in enumerate(wrong_codes(5)):
        assert auth(directory, state, "x" + guess, rip="2001:db8::%x" % (number + 1)).status == "fail"
    assert auth(directory, state, "correct horse" + code(), rip="2001:db8::ffff").reason == "source-throttled"
    assert auth(directory, state, "correct horse" + code(), rip="2001:db8:0:1::1").status == "ok"


# Whoever holds a whole IPv6 prefix (a tunnel broker hands out /48s) rotates /64s: the
# coarser buckets, with 4x (/56) and 16x (/48) the limits, still stop the rotation.
def test_ipv6_rotation_of_64s_within_a_56_is_throttled(directory, state):
    rips = ["2001:db8:0:%x::1" % n for n in range(21)]  # 21 /64s of one /56
    reasons = [auth(directory, state, "x" + g, rip=rip).reason for rip, g in zip(rips, wrong_codes(21), strict=True)]
    assert reasons[:20] == ["totp-invalid"] * 20 and reasons[20] == "source-throttled"
    # Another /56 of the same /48, and the user's own address, are still evaluated.
    assert auth(directory, state, "x" + WRONG, rip="2001:db8:0:100::1").reason == "totp-invalid"
    assert auth(directory, state, "correct horse" + code(), rip=HOME).status == "ok"


def test_ipv6_rotation_of_56s_within_a_48_is_throttled(directory, state):
    rips = ["2001:db8:0:%x00::1" % n for n in range(81)]  # one /64 in each of 81 /56s
    reasons = [auth(directory, state, "x" + g, rip=rip).reason for rip, g in zip(rips, wrong_codes(81), strict=True)]
    assert reasons[:80] == ["totp-invalid"] * 80 and reasons[80] == "source-throttled"
    assert auth(directory, state, "correct horse" + code(), rip="2001:db8:1::1").status == "ok"


def test_a_refused_coarse_bucket_leaves_no_count_in_the_finer_ones(directory, state):
    for n, guess in enumerate(wrong_codes(20)):
        auth(directory, state, "x" + guess, rip="2001:db8:0:%x::1" % n)
    assert auth(directory, state, "x" + WRONG, rip="2001:db8:0:ff::1").reason == "source-throttled"
    # The refused attempt was not counted in its /64: that /64 has no file.
    assert "2001:db8:0:ff::_64" not in os.listdir(state.sources)


def test_wrong_app_passwords_count_per_source(directory, state):
    directory.add_app("alice", APP_PW)
    guesses = [m.new_app_password() for _ in range(4)] + [APP_PW[:-1] + "2"]  # random ids, then the right one
    for guess in guesses:
        assert auth(directory, state, guess, rip=OUTSIDER).reason in ("totp-missing", "bad-password")
    assert auth(directory, state, APP_PW, rip=OUTSIDER).reason == "source-throttled"
    assert len(directory.binds) == 1  # only a guess with the right (secret, random) id binds
    assert auth(directory, state, APP_PW, rip=HOME).status == "ok"


def test_observed_code_gives_one_failed_bind_per_source(directory, state):
    """Someone who saw a valid code (not the password) cannot turn it into a lockout."""
    assert auth(directory, state, "guess1" + code(), rip=OUTSIDER).reason == "bad-password"
    assert auth(directory, state, "guess2" + code(), rip=OUTSIDER).reason == "totp-spent"
    assert directory.binds == [ALICE_DN]
    assert state.last_step("alice") is None  # a failed bind claims no step
    # The user's own login with that very code still works from her address.
    assert auth(directory, state, "correct horse" + code(), rip=HOME).status == "ok"
    assert state.last_step("alice") == STEP


def test_replayed_code_never_reaches_the_directory(directory, state):
    assert auth(directory, state, "correct horse" + code()).status == "ok"
    assert auth(directory, state, "guess" + code(), rip=OUTSIDER).reason == "totp-replayed"
    assert directory.binds == [ALICE_DN]
    assert auth(directory, state, "correct horse" + code(1)).status == "ok"


def test_directory_outage_is_not_counted_against_the_source(directory, state):
    directory.down.add("bind")
    for _ in range(8):
        assert auth(directory, state, "correct horse" + code()).reason == "directory-unavailable"
    directory.down.clear()
    assert auth(directory, state, "correct horse" + code()).status == "ok"


def _concurrently(count, attempt):
    barrier = threading.Barrier(count)
    results = []

    def run(number):
        barrier.wait()
        results.append(attempt(number))

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_wrong_codes_are_evaluated_at_most_the_limit(state, evaluations):
    """Issue 9 item 3: the attempt is counted before it is evaluated, under the lock."""
    slow = FakeDirectory(delay=0.05)
    slow.add_user("alice", "correct horse")
    guesses = wrong_codes(30)
    results = _concurrently(30, lambda n: auth(slow, state, "correct horse" + guesses[n], rip=OUTSIDER))
    assert len(evaluations) <= 5 and len(slow.binds) <= 5, (len(evaluations), len(slow.binds))
    assert sorted(r.reason for r in results).count("source-throttled") >= 25
    assert auth(slow, state, "correct horse" + code(), rip=HOME).status == "ok"


def test_concurrent_spraying_is_evaluated_at_most_the_source_limit(state, evaluations):
    slow = FakeDirectory(delay=0.02)
    for number in range(60):
        slow.add_user("user%d" % number, "pw%d" % number)
    results = _concurrently(60, lambda n: auth(slow, state, "guess" + WRONG, user="user%d" % n, rip=OUTSIDER))
    assert len(evaluations) <= 30, len(evaluations)
    assert [r.reason for r in results].count("source-throttled") >= 30
    assert auth(slow, state, "pw7" + code(), user="user7", rip=HOME).status == "ok"


# --- AuthState --------------------------------------------------------------


def test_state_claims(state):
    assert state.last_step("alice") is None
    assert state.claim_step("alice", 10)
    assert not state.claim_step("alice", 10)
    assert not state.claim_step("alice", 9)
    assert state.claim_step("alice", 11)
    assert state.last_step("alice") == 11


def test_state_reserve_and_release(state):
    limits = (2, 3)
    assert state.reserve("192.0.2.7", "alice", 100, 0, *limits)
    assert state.reserve("192.0.2.7", "alice", 101, 0, *limits)
    assert not state.reserve("192.0.2.7", "alice", 102, 0, *limits)  # login limit
    assert state.reserve("192.0.2.7", "bob", 103, 0, *limits)
    assert not state.reserve("192.0.2.7", "carol", 104, 0, *limits)  # source limit
    assert not state.reserve("192.0.2.7", None, 104, 0, *limits)
    assert state.source_failures("192.0.2.7", 0) == 3
    assert state.source_failures("192.0.2.7", 101) == 2  # older ones fall out of the window
    state.release("192.0.2.7", "bob", 103, 0)
    assert state.source_failures("192.0.2.7", 0) == 2
    state.release("192.0.2.7", "alice", 101, 0, success=True)  # forgets alice's other failure too
    assert state.reserve("192.0.2.7", "alice", 105, 0, *limits)
    assert state.reserve("192.0.2.7", "alice", 106, 0, *limits)
    assert state.source_failures("192.0.2.8", 0) == 0


def test_state_spends_a_step_once_per_login_and_source(state):
    for source in ("192.0.2.7", "192.0.2.8"):
        assert state.reserve(source, "alice", 100, 0, 5, 30)
    assert state.spend_step("192.0.2.7", "alice", STEP, 0)
    assert not state.spend_step("192.0.2.7", "alice", STEP, 0)
    assert state.spend_step("192.0.2.8", "alice", STEP, 0)
    state.release("192.0.2.7", "alice", 100, 0, step=STEP)  # an outage takes the spend back
    assert state.reserve("192.0.2.7", "alice", 101, 0, 5, 30)
    assert state.spend_step("192.0.2.7", "alice", STEP, 0)


def test_state_forgets_quiet_sources(state):
    state.reserve("192.0.2.7", "alice", 100, 0, 5, 30)
    state.reserve("2001:db8::_64", None, 200, 0, 5, 30)

    def files():
        return sorted(n for n in os.listdir(state.sources) if not n.startswith("."))

    assert files() == ["192.0.2.7", "2001:db8::_64"]
    assert state.sweep(150) == 1
    assert files() == ["2001:db8::_64"]
    state.release("2001:db8::_64", None, 200, 0)  # the last failure taken back: no file left
    assert files() == []


@pytest.mark.parametrize(
    ("rip", "bucket"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::_64"),
        ("2001:DB8:1:2::9", "2001:db8:1:2::_64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("fe80::1%eth0", "fe80::_64"),  # a scope id is no other client
        ("", "unknown"),
        ("not an address", "unknown"),
        (None, "unknown"),
    ],
)
def test_source_bucket(rip, bucket):
    assert m.source_bucket(rip) == bucket


def test_source_buckets_of_ipv6_are_64_56_and_48():
    assert m.source_buckets("2001:db8:1:2a3:3::6") == [
        ("2001:db8:1:2a3::_64", 1),
        ("2001:db8:1:200::_56", 4),
        ("2001:db8:1::_48", 16),
    ]
    assert m.source_buckets("192.0.2.7") == [("192.0.2.7", 1)]
    assert m.source_buckets("") == [("unknown", 1)]


@pytest.mark.parametrize("name", ["../x", ".lock", "alice", "192.0.2.7/24", ""])
def test_state_refuses_unsafe_source_names(state, name):
    with pytest.raises(ValueError):
        state.reserve(name, "alice", 100, 0, 5, 30)


def test_state_refuses_unsafe_names(state):
    for name in ("../etc", ".alice", "a/b"):
        with pytest.raises(ValueError):
            state.claim_step(name, 1)


def test_concurrent_claims_of_one_step(state):
    barrier = threading.Barrier(8)
    results = []

    def claim():
        barrier.wait()
        results.append(state.claim_step("alice", STEP))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]


def test_concurrent_reservations_stop_at_the_limit(state):
    results = _concurrently(20, lambda n: state.reserve("192.0.2.7", "alice", 100 + n, 0, 5, 30))
    assert sorted(results) == [False] * 15 + [True] * 5


def test_state_file_modes(state):
    os.chmod(state.path, 0o700)
    old = os.umask(0o022)
    try:
        state.claim_step("alice", 5)
        state.reserve("192.0.2.7", "alice", 100, 0, 5, 30)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(state.path).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(state.sources).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.join(state.path, "alice")).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.join(state.path, ".alice.lock")).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.join(state.sources, "192.0.2.7")).st_mode) == 0o600
    assert sorted(os.listdir(state.path)) == [".alice.lock", ".sources", "alice"]
    with open(os.path.join(state.path, "alice")) as handle:
        assert json.load(handle)["step"] == 5


def test_new_state_directory_is_private(tmp_path):
    old = os.umask(0o022)
    try:
        path = m.AuthState(str(tmp_path / "new")).path
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o700


# --- Protocol ---------------------------------------------------------------


def test_auth_request_round_trip():
    line = m.format_request("AUTH", "imap", "alice", "pw 123456", "2001:db8::7", "valid")
    assert line == "AUTH\timap\talice\tpw 123456\t2001:db8::7\tvalid\n"
    assert m.parse_request(line) == ("AUTH", m.AuthRequest("alice", "pw 123456", "imap", "2001:db8::7", True))
    assert m.parse_request(line.encode().rstrip(b"\n")) == m.parse_request(line)


def test_auth_request_without_certificate_or_address():
    command, request = m.parse_request("AUTH\tsmtp\talice\tpw\t\t\n")
    assert command == "AUTH"
    assert (request.remote_ip, request.cert_valid) == ("", False)


def test_user_request_round_trip():
    assert m.parse_request(m.format_request("USER", "alice@corp.example")) == ("USER", "alice@corp.example")


@pytest.mark.parametrize(
    "line",
    [
        "",
        "\n",
        "AUTH\timap\talice\tpw\t192.0.2.7\n",
        "AUTH\timap\talice\tpw\t192.0.2.7\tvalid\textra\n",
        "AUTH\timap\talice\tpw\t192.0.2.7\tyes\n",
        "AUTH\timap\talice\tpw\tnot-an-ip\t\n",
        "AUTH\timap\talice\tp\rw\t192.0.2.7\t\n",
        "AUTH\timap\talice\tpw\t192.0.2.7\t\r\n",
        "AUTH\timap\talice\tp\tw\t192.0.2.7\t\n",
        "USER\n",
        "USER\talice\tbob\n",
        "USER\tal\x00ice\n",
        "auth\timap\talice\tpw\t\t\n",
        "QUIT\n",
        b"USER\t\xff\n",
        None,
    ],
)
def test_malformed_requests(line):
    with pytest.raises(ValueError):
        m.parse_request(line)


def test_format_request_refuses_control_characters():
    with pytest.raises(ValueError):
        m.format_request("AUTH", "imap", "alice", "pw\t123456", "", "")


@pytest.mark.parametrize(
    ("kind", "value", "line"),
    [
        ("OK", "alice", "OK\talice\n"),
        ("FAIL", "totp-invalid", "FAIL\ttotp-invalid\n"),
        ("NOTFOUND", None, "NOTFOUND\n"),
    ],
)
def test_reply_round_trip(kind, value, line):
    assert m.format_reply(kind, value) == line
    assert m.parse_reply(line) == (kind, value)


@pytest.mark.parametrize(
    ("kind", "value"), [("OK", None), ("OK", ""), ("FAIL", "a\tb"), ("NOTFOUND", "x"), ("YES", "a")]
)
def test_bad_replies_refused(kind, value):
    with pytest.raises(ValueError):
        m.format_reply(kind, value)


def test_handle_auth_line(directory, state):
    logged = []
    line = m.format_request("AUTH", "imap", "alice@corp.example", "correct horse" + code(), "192.0.2.7", "")
    assert m.handle_line(line, directory, state, NOW, log=logged.append) == "OK\talice\n"
    assert m.handle_line(line, directory, state, NOW, log=logged.append) == "FAIL\ttotp-replayed\n"
    assert logged == [
        "auth result=ok reason=totp service=imap user=alice@corp.example rip=192.0.2.7 login=alice",
        "auth result=fail reason=totp-replayed service=imap user=alice@corp.example rip=192.0.2.7",
    ]
    assert not any("horse" in entry for entry in logged)


def test_handle_line_passes_options(directory, state):
    line = m.format_request("AUTH", "imap", "alice", "correct horse" + code(2), "", "")
    assert m.handle_line(line, directory, state, NOW) == "FAIL\ttotp-invalid\n"
    assert m.handle_line(line, directory, state, NOW, window=2) == "OK\talice\n"


def test_handle_line_tempfail(directory, state):
    directory.down.add("bind")
    line = m.format_request("AUTH", "smtp", "alice", "correct horse" + code(), "", "")
    assert m.handle_line(line.encode(), directory, state, NOW) == "TEMPFAIL\tdirectory-unavailable\n"


@pytest.mark.parametrize(
    ("name", "reply"),
    [
        ("alice", "OK\talice\n"),
        ("alice@corp.example", "OK\talice\n"),
        ("bob", "NOTFOUND\n"),
        ("mallory", "NOTFOUND\n"),
        ("Alice*", "NOTFOUND\n"),
        ("", "NOTFOUND\n"),
    ],
)
def test_handle_user_line(directory, state, name, reply):
    assert m.handle_line("USER\t%s\n" % name, directory, state, NOW) == reply


def test_handle_user_line_tempfail(directory, state):
    directory.down.add("find_user")
    assert m.handle_line("USER\talice\n", directory, state, NOW) == "TEMPFAIL\tdirectory-unavailable\n"


@pytest.mark.parametrize("line", ["QUIT\n", "AUTH\timap\talice\tp\tw\t\t\n", b"\xff\n"])
def test_handle_malformed_line(directory, state, line):
    logged = []
    assert m.handle_line(line, directory, state, NOW, log=logged.append) == "FAIL\tbad-request\n"
    assert logged == []


def test_log_line_sanitizes_user():
    request = m.AuthRequest("ev il\u200b=x rip=10.0.0.1", "secret", "imap", "", False)
    line = m.log_line(request, m.AuthResult("fail", None, "unknown-user"))
    assert line == "auth result=fail reason=unknown-user service=imap user=ev?il??x?rip?10.0.0.1 rip=-"
    assert "secret" not in line


def test_log_line_truncates_long_user():
    request = m.AuthRequest("a" * 500, "pw", "imap", "192.0.2.7", False)
    line = m.log_line(request, m.AuthResult("fail", None, "unknown-user"))
    assert "user=" + "a" * 128 + "... rip=192.0.2.7" in line


def test_log_line_names_the_app():
    request = m.AuthRequest("alice", APP_PW, "smtp", "192.0.2.7", True)
    line = m.log_line(request, m.AuthResult("ok", "alice", "app-password", "k3x9q2ab"))
    assert line == "auth result=ok reason=app-password service=smtp user=alice rip=192.0.2.7 app=k3x9q2ab"


# --- LDAP entries -----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20261231235959Z", datetime.datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("2026123123Z", datetime.datetime(2026, 12, 31, 23, 0, 0, tzinfo=UTC)),
        ("20261231235959.5Z", datetime.datetime(2026, 12, 31, 23, 59, 59, 500000, tzinfo=UTC)),
        ("20270101003000+0100", datetime.datetime(2026, 12, 31, 23, 30, 0, tzinfo=UTC)),
        ("20261231233000-0030", datetime.datetime(2027, 1, 1, 0, 0, 0, tzinfo=UTC)),
    ],
)
def test_generalized_time(value, expected):
    assert m.parse_generalized_time(value) == expected


@pytest.mark.parametrize("value", ["20261231235959", "2026-12-31T23:59:59Z", "20261331235959Z", "", None])
def test_bad_generalized_time(value):
    with pytest.raises(ValueError):
        m.parse_generalized_time(value)


def test_user_record_from_ldap():
    dn = "uid=alice,ou=people,dc=corp,dc=example"
    attrs = {"uid": [b"alice"], "mailstackenabled": [b"TRUE"], "mailstackTotpSecret": [SECRET.encode()]}
    assert m.user_record_from_ldap(dn, attrs) == m.UserRecord("alice", dn, True, SECRET)


def test_user_record_carries_the_last_step():
    attrs = {"uid": [b"alice"], "mailstackEnabled": [b"TRUE"], "mailstackTotpLastStep": [b"58300001"]}
    assert m.user_record_from_ldap(ALICE_DN, attrs).totp_last_step == 58300001
    assert m.user_record_from_ldap(ALICE_DN, {"uid": [b"alice"]}).totp_last_step is None


@pytest.mark.parametrize("value", [b"", b"12x", b"1.5", b" 7", b"-3", b"99999999999999999999999"])
def test_unreadable_last_step_refuses_every_code(directory, state, value):
    """A step that cannot be read counts as far ahead, never as absent (which would reopen replays)."""
    attrs = {"uid": [b"alice"], "mailstackEnabled": [b"TRUE"], "mailstackTotpLastStep": [value]}
    record = m.user_record_from_ldap(ALICE_DN, attrs)
    assert record.totp_last_step > STEP + 10**6
    directory.users["alice"] = dataclasses.replace(directory.users["alice"], totp_last_step=record.totp_last_step)
    assert auth(directory, state, "correct horse" + code()).reason == "totp-step-ahead"


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ({"uid": [b"alice"], "mailstackEnabled": [b"FALSE"]}, ("alice", False, None)),
        ({"uid": [b"alice"], "mailstackEnabled": [b"true"]}, ("alice", False, None)),
        ({"uid": [b"alice"]}, ("alice", False, None)),
        ({"uid": [b"Alice"], "mailstackEnabled": [b"TRUE"]}, None),
        ({"uid": [b"alice", b"al"], "mailstackEnabled": [b"TRUE"]}, None),
        ({"mailstackEnabled": [b"TRUE"]}, None),
    ],
)
def test_user_record_from_ldap_fails_closed(attrs, expected):
    record = m.user_record_from_ldap("uid=x", attrs)
    assert (record and (record.login, record.enabled, record.totp_secret)) == expected


def test_app_record_from_ldap():
    dn = "mailstackAppId=k3x9q2ab,uid=alice,ou=people,dc=corp,dc=example"
    attrs = {
        "mailstackAppId": [b"k3x9q2ab"],
        "mailstackScope": [b"imap", b"SMTP", b"pop3"],
        "mailstackExpires": [b"20261231235959Z"],
        "mailstackDeviceBound": [b"TRUE"],
    }
    expires = datetime.datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert m.app_record_from_ldap(dn, attrs) == m.AppRecord("k3x9q2ab", dn, frozenset(("imap", "smtp")), expires, True)


def test_app_record_with_unreadable_expiry_is_expired(directory, state):
    record = m.app_record_from_ldap("x", {"mailstackAppId": [b"k3x9q2ab"], "mailstackExpires": [b"someday"]})
    assert record.expires < NOW
    assert record.scopes == frozenset() and record.device_bound is False


def test_new_login_password_shape_and_randomness():
    passwords = {m.new_login_password() for _ in range(50)}
    assert len(passwords) == 50
    for password in passwords:
        assert len(password) == m.LOGIN_PASSWORD_LENGTH
        assert set(password) <= set(m.LOGIN_PASSWORD_ALPHABET)
