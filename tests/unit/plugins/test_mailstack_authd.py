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
    assert (config["ldap_starttls"], config["totp_window"], config["lockout_failures"]) == (False, 1, 5)
    assert (config["lockout_seconds"], config["timeout"]) == (900, 5)


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
        ({"lockout_failures": 0}, "positive"),
        ({"timeout": "5"}, "timeout"),
        ({"ldap_starttls": "yes"}, "ldap_starttls"),
        ({"bind_password": "x"}, "unknown keys bind_password"),
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
        assert ask(server, b"AUTH\timap\talice\tbad123456\t192.0.2.7\t\n") == b"FAIL\tbad-password\n"
    assert caplog.messages == [
        "auth result=ok reason=totp service=imap user=alice rip=192.0.2.7",
        "auth result=fail reason=bad-password service=imap user=alice rip=192.0.2.7",
    ]
    assert "bad123456" not in caplog.text


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
