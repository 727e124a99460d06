import base64
import datetime
import json
import os
import stat
import threading

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


class FakeDirectory:
    """The duck-typed directory: users by login or address, app passwords per user, bind by DN."""

    def __init__(self):
        self.users = {}
        self.addresses = {}
        self.apps = {}
        self.passwords = {}
        self.binds = []
        self.down = set()

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
        if call in self.down:
            raise m.DirectoryUnavailable(call)

    def find_user(self, name):
        self._check("find_user")
        return self.users.get(self.addresses.get(name, name))

    def find_app_password(self, login, app_id):
        self._check("find_app_password")
        return self.apps.get((login, app_id))

    def bind(self, dn, password):
        self._check("bind")
        self.binds.append(dn)
        return dn in self.passwords and self.passwords[dn] == password


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


def auth(directory, state, password, user="alice", service="imap", cert=False, now=NOW, **options):
    request = m.AuthRequest(user, password, service, "192.0.2.7", cert)
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


def test_wrong_code_counted(directory, state):
    assert outcome(auth(directory, state, "correct horse" + WRONG)) == ("fail", None, "totp-invalid")
    assert state.failures_since("alice", NOW - datetime.timedelta(seconds=1)) == 1


def test_code_outside_window_is_invalid(directory, state):
    assert auth(directory, state, "correct horse" + code(2)).reason == "totp-invalid"
    assert auth(directory, state, "correct horse" + code(2), window=2).status == "ok"


def test_lockout_after_threshold_skips_bind(directory, state):
    for _ in range(5):
        assert auth(directory, state, "correct horse" + WRONG).reason == "totp-invalid"
    binds = len(directory.binds)
    assert outcome(auth(directory, state, "correct horse" + code())) == ("fail", None, "totp-locked")
    assert len(directory.binds) == binds


def test_lockout_threshold_is_exact(directory, state):
    for _ in range(4):
        assert auth(directory, state, "correct horse" + WRONG).reason == "totp-invalid"
    assert auth(directory, state, "correct horse" + code()).status == "ok"
    assert state.failures_since("alice", 0) == 0  # success clears the count


def test_lockout_expires(directory, state):
    for _ in range(5):
        state.record_failure("alice", NOW - datetime.timedelta(seconds=901))
    assert auth(directory, state, "correct horse" + code()).status == "ok"


def test_lockout_parameters(directory, state):
    state.record_failure("alice", NOW - datetime.timedelta(seconds=100))
    state.record_failure("alice", NOW - datetime.timedelta(seconds=10))
    options = {"lockout_failures": 2, "lockout_seconds": 60}
    assert auth(directory, state, "correct horse" + code(), **options).status == "ok"
    state.record_failure("alice", NOW - datetime.timedelta(seconds=10))
    state.record_failure("alice", NOW - datetime.timedelta(seconds=5))
    later = NOW + datetime.timedelta(seconds=30)
    assert auth(directory, state, "correct horse" + code(1), now=later, **options).reason == "totp-locked"


def test_lockout_does_not_block_app_passwords(directory, state):
    directory.add_app("alice", APP_PW)
    for _ in range(5):
        state.record_failure("alice", NOW)
    assert auth(directory, state, APP_PW).status == "ok"


def test_wrong_password_not_counted_as_totp_failure(directory, state):
    assert outcome(auth(directory, state, "wrong" + code())) == ("fail", None, "bad-password")
    assert state.failures_since("alice", 0) == 0
    assert state.last_step("alice") is None


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


def test_corrupt_state_is_tempfail(directory, state):
    with open(os.path.join(state.path, "alice"), "w") as handle:
        handle.write("{not json")
    assert outcome(auth(directory, state, "correct horse" + code())) == ("tempfail", None, "state-unavailable")


# --- AuthState --------------------------------------------------------------


def test_state_claims(state):
    assert state.last_step("alice") is None
    assert state.claim_step("alice", 10)
    assert not state.claim_step("alice", 10)
    assert not state.claim_step("alice", 9)
    assert state.claim_step("alice", 11)
    assert state.last_step("alice") == 11


def test_state_failures(state):
    for seconds in (0, 10, 20):
        state.record_failure("alice", seconds)
    assert state.failures_since("alice", 10) == 2
    assert state.failures_since("bob", 0) == 0
    state.clear_failures("alice")
    assert state.failures_since("alice", 0) == 0


def test_state_keeps_bounded_failures(state):
    for seconds in range(m.MAX_FAILURES_KEPT + 20):
        state.record_failure("alice", seconds)
    assert state.failures_since("alice", 0) == m.MAX_FAILURES_KEPT


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


def test_concurrent_failures_are_all_counted(state):
    threads = [threading.Thread(target=state.record_failure, args=("alice", NOW)) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert state.failures_since("alice", NOW) == 20


def test_state_file_modes(state):
    os.chmod(state.path, 0o700)
    old = os.umask(0o022)
    try:
        state.claim_step("alice", 5)
        state.record_failure("alice", NOW)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(state.path).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.join(state.path, "alice")).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.join(state.path, ".alice.lock")).st_mode) == 0o600
    assert sorted(os.listdir(state.path)) == [".alice.lock", "alice"]
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
