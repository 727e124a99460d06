"""The daemon's own code: configuration checks and the socket server (decisions are tested in test_mail_auth)."""

import grp
import importlib.machinery
import importlib.util
import json
import logging
import os
import socket
import stat
import sys
import threading
import types

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
DAEMON = os.path.join(ROOT, "roles", "dovecot", "files", "mailstack-authd")
LIB = os.path.join(ROOT, "plugins", "module_utils")


def _stub_ldap():
    """Just enough of python-ldap for the import; the LDAP adapter itself needs a server to test."""
    stub = types.ModuleType("ldap")
    stub.filter = types.ModuleType("ldap.filter")
    return {"ldap": stub, "ldap.filter": stub.filter}


def _load_daemon():
    saved_path, saved_env = list(sys.path), os.environ.get("MAILSTACK_LIB")
    stubs = {}
    try:
        import ldap  # noqa: F401
    except ImportError:
        stubs = _stub_ldap()
    sys.modules.update(stubs)
    os.environ["MAILSTACK_LIB"] = LIB
    try:
        loader = importlib.machinery.SourceFileLoader("mailstack_authd", DAEMON)
        module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
        loader.exec_module(module)
    finally:
        sys.path[:] = saved_path
        for name in stubs:
            del sys.modules[name]
        if saved_env is None:
            del os.environ["MAILSTACK_LIB"]
        else:
            os.environ["MAILSTACK_LIB"] = saved_env
    return module


authd = _load_daemon()
mail_auth = authd.mail_auth
GROUP = grp.getgrgid(os.getgid()).gr_name


def write_config(tmp_path, **changes):
    config = {
        "socket": str(tmp_path / "auth.sock"),
        "socket_group": GROUP,
        "state_dir": str(tmp_path / "state"),
        "ldap_uri": "ldaps://ldap.corp.example",
        "ldap_ca_file": "/etc/ssl/mailstack/ca.pem",
        "base_dn": "dc=corp,dc=example",
        "people_dn": "ou=people,dc=corp,dc=example",
        "bind_dn": "cn=authd,ou=services,dc=corp,dc=example",
        "bind_password_file": str(tmp_path / "bind.pw"),
    }
    config.update(changes)
    config = {key: value for key, value in config.items() if value is not None}
    path = tmp_path / "authd.json"
    path.write_text(json.dumps(config))
    return str(path)


def test_config_defaults(tmp_path):
    config = authd.load_config(write_config(tmp_path))
    assert (config["ldap_starttls"], config["totp_window"], config["timeout"]) == (False, 1, 5)
    throttle = ("throttle_login_failures", "throttle_source_failures", "throttle_seconds")
    assert tuple(config[key] for key in throttle) == (5, 30, 900)
    assert config["services"] == ["imap", "smtp"]


def test_config_starttls(tmp_path):
    path = write_config(tmp_path, ldap_uri="ldap://ldap.corp.example", ldap_starttls=True)
    assert authd.load_config(path)["ldap_starttls"] is True


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"ldap_uri": "ldap://ldap.corp.example"}, "ldap_uri"),
        ({"ldap_uri": "ldaps://ldap.corp.example", "ldap_starttls": True}, "ldap_uri"),
        ({"ldap_uri": "ldapi:///"}, "ldap_uri"),
        ({"bind_dn": None}, "bind_dn"),
        ({"socket": ""}, "socket"),
        ({"people_dn": "ou=people,dc=evilcorp,dc=example"}, "base_dn"),
        ({"totp_window": 4}, "totp_window"),
        ({"totp_window": True}, "totp_window"),
        ({"throttle_login_failures": 0}, "throttle_login_failures must be positive"),
        ({"throttle_source_failures": -1}, "throttle_source_failures must be positive"),
        ({"throttle_seconds": 0}, "throttle_seconds must be positive"),
        ({"throttle_seconds": 1.5}, "throttle_seconds has the wrong type"),
        ({"lockout_failures": 5}, "unknown keys lockout_failures"),
        ({"timeout": "5"}, "timeout"),
        ({"ldap_starttls": "yes"}, "ldap_starttls"),
        ({"bind_password": "x"}, "unknown keys bind_password"),
        ({"services": []}, "services must be a non-empty list of imap and smtp"),
        ({"services": ["imap", "pop3"]}, "services must be a non-empty list of imap and smtp"),
        ({"services": "smtp"}, "services has the wrong type"),
    ],
)
def test_config_refused(tmp_path, changes, message):
    with pytest.raises(ValueError, match=message):
        authd.load_config(write_config(tmp_path, **changes))


def test_read_secret(tmp_path):
    (tmp_path / "pw").write_text("s3cret\n")
    assert authd.read_secret(str(tmp_path / "pw")) == "s3cret"
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValueError):
        authd.read_secret(str(tmp_path / "empty"))


def test_bind_with_empty_password_never_reaches_ldap(tmp_path):
    directory = authd.LdapDirectory(authd.load_config(write_config(tmp_path)), "pw")
    assert directory.bind("uid=alice,ou=people,dc=corp,dc=example", "") is False
    assert directory.bind("", "pw") is False


class OneUser:
    def __init__(self):
        self.dn = "uid=alice,ou=people,dc=corp,dc=example"

    def find_user(self, name):
        if name == "alice":
            return mail_auth.UserRecord("alice", self.dn, True, "JBSWY3DPEHPK3PXP")
        if name == "boom":
            raise RuntimeError("bug")
        return None

    def find_app_password(self, login, app_id):
        return None

    def bind(self, dn, password):
        return dn == self.dn and password == "pw"

    def claim_step(self, user, step):
        return True


@pytest.fixture
def server(tmp_path):
    config = authd.load_config(write_config(tmp_path, timeout=1))
    srv = authd.AuthServer(config, OneUser(), mail_auth.AuthState(config["state_dir"]))
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join()


def ask(srv, data):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(5)
        client.connect(srv.server_address)
        client.sendall(data)
        client.shutdown(socket.SHUT_WR)
        return client.makefile("rb").read()


def test_socket_mode_and_group(server):
    info = os.stat(server.server_address)
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o660
    assert info.st_gid == os.getgid()


def test_auth_over_the_socket(server, caplog):
    code = mail_auth.totp("JBSWY3DPEHPK3PXP", mail_auth.time_step(mail_auth.datetime.datetime.now(mail_auth.UTC)))
    with caplog.at_level(logging.INFO, logger="mailstack-authd"):
        assert ask(server, b"AUTH\timap\talice\tpw" + code.encode() + b"\t192.0.2.7\t\n") == b"OK\talice\n"
        assert ask(server, b"AUTH\timap\talice\tbad123456\t192.0.2.7\t\n") == b"FAIL\ttotp-invalid\n"
    assert caplog.messages == [
        "auth result=ok reason=totp service=imap user=alice rip=192.0.2.7",
        "auth result=fail reason=totp-invalid service=imap user=alice rip=192.0.2.7",
    ]
    assert "bad123456" not in caplog.text


def test_throttle_options_reach_the_decision(tmp_path):
    config = authd.load_config(write_config(tmp_path, throttle_login_failures=1, throttle_source_failures=7))
    srv = authd.AuthServer(config, OneUser(), mail_auth.AuthState(config["state_dir"]))
    try:
        assert srv.answer(b"AUTH\timap\talice\tbad123456\t192.0.2.7\t\n") == "FAIL\ttotp-invalid\n"
        assert srv.answer(b"AUTH\timap\talice\tbad123456\t192.0.2.7\t\n") == "FAIL\tsource-throttled\n"
        assert srv.answer(b"AUTH\timap\talice\tbad123456\t192.0.2.8\t\n") == "FAIL\ttotp-invalid\n"
    finally:
        srv.server_close()


# The mx's daemon checks SMTP logins only: a client of its socket that names another
# service (to claim imap's certificate check, say) is refused before anything is evaluated.
def test_services_option_reaches_the_decision(tmp_path):
    config = authd.load_config(write_config(tmp_path, services=["smtp"]))
    srv = authd.AuthServer(config, OneUser(), mail_auth.AuthState(config["state_dir"]))
    try:
        assert srv.answer(b"AUTH\timap\talice\tbad123456\t192.0.2.7\tvalid\n") == "FAIL\tservice-not-served\n"
        assert srv.answer(b"AUTH\tsmtp\talice\tbad123456\t192.0.2.7\t\n") == "FAIL\ttotp-invalid\n"
    finally:
        srv.server_close()


def test_quiet_sources_are_swept_between_requests(tmp_path):
    config = authd.load_config(write_config(tmp_path, throttle_seconds=60))
    state = mail_auth.AuthState(config["state_dir"])
    srv = authd.AuthServer(config, OneUser(), state)
    try:
        state.reserve("192.0.2.7", "alice", authd.time.time() - 61, 0, 5, 30)
        state.reserve("192.0.2.8", "alice", authd.time.time(), 0, 5, 30)
        srv.service_actions()
        assert sorted(n for n in os.listdir(state.sources) if not n.startswith(".")) == ["192.0.2.8"]
    finally:
        srv.server_close()


def test_user_over_the_socket(server):
    assert ask(server, b"USER\talice\n") == b"OK\talice\n"
    assert ask(server, b"USER\tmallory\n") == b"NOTFOUND\n"


@pytest.mark.parametrize(
    "data",
    [
        b"USER\t" + b"a" * 4096 + b"\n",  # longer than one line may be
        b"USER\talice",  # no newline before the client stopped sending
        b"HELLO\n",
        b"USER\t\xffalice\n",
    ],
)
def test_bad_requests_over_the_socket(server, data):
    assert ask(server, data) == b"FAIL\tbad-request\n"


def test_silent_client_is_dropped_after_the_timeout(server):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(5)
        client.connect(server.server_address)
        client.sendall(b"USER\talice")
        assert client.recv(100) == b""


def test_internal_error_is_tempfail(server, caplog):
    with caplog.at_level(logging.ERROR, logger="mailstack-authd"):
        assert ask(server, b"USER\tboom\n") == b"TEMPFAIL\tinternal-error\n"
    assert "internal error" in caplog.text


def test_stale_socket_replaced(tmp_path):
    path = write_config(tmp_path)
    config = authd.load_config(path)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(config["socket"])
    stale.close()
    srv = authd.AuthServer(config, OneUser(), mail_auth.AuthState(config["state_dir"]))
    srv.server_close()


def test_other_file_at_socket_path_refused(tmp_path):
    config = authd.load_config(write_config(tmp_path))
    with open(config["socket"], "w") as handle:
        handle.write("not a socket")
    with pytest.raises(ValueError, match="not a socket"):
        authd.AuthServer(config, OneUser(), mail_auth.AuthState(config["state_dir"]))


def test_main_refuses_bad_config(tmp_path, caplog):
    path = write_config(tmp_path, ldap_uri="ldap://ldap.corp.example")
    assert authd.main(["mailstack-authd", path]) == 1
    assert "cannot start" in caplog.text
    assert authd.main(["mailstack-authd"]) == 2


# --- The last TOTP step in the directory (issue 9 item 4) ----------------------
# python-ldap is not needed: a fake module with its names, and a fake slapd whose
# modify is atomic and answers like slapd 2.5/2.6 (checked against a scratch slapd).


class _LdapError(Exception):
    pass


def _fake_ldap():
    module = types.SimpleNamespace(
        MOD_ADD=0,
        MOD_DELETE=1,
        SCOPE_SUBTREE=2,
        SCOPE_ONELEVEL=1,
        LDAPError=_LdapError,
        filter=types.SimpleNamespace(escape_filter_chars=lambda value: value),
    )
    for name in (
        "SERVER_DOWN",
        "TIMEOUT",
        "CONNECT_ERROR",
        "NO_SUCH_OBJECT",
        "NO_SUCH_ATTRIBUTE",  # 16: a deleted value is not there
        "CONSTRAINT_VIOLATION",  # 19: a second value of a SINGLE-VALUE attribute
        "TYPE_OR_VALUE_EXISTS",  # 20: the added value is there already
        "INSUFFICIENT_ACCESS",
        "INVALID_CREDENTIALS",
        "INAPPROPRIATE_AUTH",
        "UNWILLING_TO_PERFORM",
    ):
        setattr(module, name, type(name, (_LdapError,), {}))
    return module


class FakeSlapd:
    """One user entry shared by every connection; each modify applied whole or not at all."""

    DN = "uid=alice,ou=people,dc=corp,dc=example"

    def __init__(self, ldap_module):
        self.ldap = ldap_module
        self.attrs = {"uid": [b"alice"], "mailstackEnabled": [b"TRUE"], "mailstackTotpSecret": [b"JBSWY3DPEHPK3PXP"]}
        self.lock = threading.Lock()
        self.modifies = []
        self.refuse = None  # an exception class every modify raises
        self.after_search = None

    def connect(self):
        return FakeConnection(self)


class FakeConnection:
    def __init__(self, server):
        self.server = server

    def simple_bind_s(self, dn, password):
        if dn == FakeSlapd.DN and password != "pw":
            raise self.server.ldap.INVALID_CREDENTIALS({"desc": "Invalid credentials"})

    def unbind_s(self):
        pass

    def search_ext_s(self, base, scope, filterstr, attrs, timeout=None):
        with self.server.lock:
            entry = {name: list(values) for name, values in self.server.attrs.items() if name in attrs}
        if self.server.after_search is not None:
            self.server.after_search()
        return [(FakeSlapd.DN, entry)] if "uid=alice)" in filterstr else []

    def modify_ext_s(self, dn, mods):
        ldap = self.server.ldap
        self.server.modifies.append(mods)
        if self.server.refuse is not None:
            raise self.server.refuse({"desc": "refused"})
        with self.server.lock:
            attrs = {name: list(values) for name, values in self.server.attrs.items()}
            for op, name, values in mods:
                current = attrs.setdefault(name, [])
                for value in values:
                    if op == ldap.MOD_DELETE:
                        if value not in current:
                            raise ldap.NO_SUCH_ATTRIBUTE({"desc": "No such attribute"})
                        current.remove(value)
                    elif value in current:
                        raise ldap.TYPE_OR_VALUE_EXISTS({"desc": "Type or value exists"})
                    elif current and name == authd.STEP_ATTR:
                        raise ldap.CONSTRAINT_VIOLATION({"desc": "cannot have multiple values"})
                    else:
                        current.append(value)
            self.server.attrs = {name: values for name, values in attrs.items() if values}


@pytest.fixture
def slapd(monkeypatch):
    fake = _fake_ldap()
    monkeypatch.setattr(authd, "ldap", fake)
    server = FakeSlapd(fake)
    monkeypatch.setattr(authd.LdapDirectory, "_open", lambda self: server.connect())
    return server


def auth_host(tmp_path, name):
    """An auth host: its own LdapDirectory (own connection) and its own state directory."""
    config = authd.load_config(write_config(tmp_path, state_dir=str(tmp_path / name)))
    return authd.LdapDirectory(config, "service-pw"), mail_auth.AuthState(config["state_dir"])


def login(host, password, now, rip="192.0.2.7"):
    directory, state = host
    request = mail_auth.AuthRequest("alice", password, "imap", rip)
    return mail_auth.authenticate(request, directory, state, now)


NOW = mail_auth.datetime.datetime(2025, 6, 1, 12, 0, 10, tzinfo=mail_auth.UTC)
STEP = mail_auth.time_step(NOW)


def code(step):
    return mail_auth.totp("JBSWY3DPEHPK3PXP", step)


def test_code_accepted_by_one_auth_host_is_refused_by_another_over_ldap(tmp_path, slapd):
    imap1, imap2 = auth_host(tmp_path, "imap1"), auth_host(tmp_path, "imap2")
    assert login(imap1, "pw" + code(STEP), NOW).status == "ok"
    assert login(imap2, "pw" + code(STEP), NOW).reason == "totp-replayed"
    assert slapd.attrs[authd.STEP_ATTR] == [str(STEP).encode()]
    # The first claim only adds; the next deletes the value it read and adds its own.
    later = NOW + mail_auth.datetime.timedelta(seconds=30)
    assert login(imap2, "pw" + code(STEP + 1), later).status == "ok"
    assert login(imap1, "pw" + code(STEP + 1), later).reason == "totp-replayed"
    assert slapd.modifies == [
        [(0, authd.STEP_ATTR, [str(STEP).encode()])],
        [(1, authd.STEP_ATTR, [str(STEP).encode()]), (0, authd.STEP_ATTR, [str(STEP + 1).encode()])],
    ]


@pytest.mark.parametrize("stored", [None, STEP - 5])
def test_two_auth_hosts_racing_for_one_step_over_ldap(tmp_path, slapd, stored):
    """Both look the user up before either claims (a barrier after the first two searches)."""
    if stored is not None:
        slapd.attrs[authd.STEP_ATTR] = [str(stored).encode()]
    barrier = threading.Barrier(2, timeout=5)
    lookups = []

    def line_up():
        lookups.append(1)
        if len(lookups) <= 2:
            barrier.wait()

    slapd.after_search = line_up
    hosts = [auth_host(tmp_path, "imap%d" % n) for n in (1, 2)]
    results = []

    def run(host):
        results.append(login(host, "pw" + code(STEP), NOW).reason)

    threads = [threading.Thread(target=run, args=(host,)) for host in hosts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    slapd.after_search = None
    assert sorted(results) == ["totp", "totp-replayed"]
    assert slapd.attrs[authd.STEP_ATTR] == [str(STEP).encode()]


@pytest.mark.parametrize("error", ["NO_SUCH_ATTRIBUTE", "CONSTRAINT_VIOLATION", "TYPE_OR_VALUE_EXISTS"])
def test_claim_lost_to_another_host_is_false(tmp_path, slapd, error):
    directory, _ = auth_host(tmp_path, "imap1")
    user = directory.find_user("alice")
    slapd.refuse = getattr(authd.ldap, error)
    assert directory.claim_step(user, STEP) is False


@pytest.mark.parametrize("error", ["INSUFFICIENT_ACCESS", "SERVER_DOWN", "NO_SUCH_OBJECT"])
def test_step_that_cannot_be_written_is_tempfail(tmp_path, slapd, error, caplog):
    host = auth_host(tmp_path, "imap1")
    slapd.refuse = getattr(authd.ldap, error)
    with caplog.at_level(logging.WARNING, logger="mailstack-authd"):
        result = login(host, "pw" + code(STEP), NOW)
    assert (result.status, result.reason) == ("tempfail", "directory-unavailable")
    assert "cannot record the TOTP step" in caplog.text
    assert host[1].last_step("alice") is None and authd.STEP_ATTR not in slapd.attrs
    slapd.refuse = None
    assert login(host, "pw" + code(STEP), NOW).status == "ok"
