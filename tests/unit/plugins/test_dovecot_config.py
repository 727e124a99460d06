import os
import re

import pytest
import yaml
from ansible_collections.zerotrust.mailstack.plugins.filter.stack import FilterModule as StackFilters
from ansible.errors import AnsibleFilterError
from ansible_collections.zerotrust.mailstack.plugins.filter.dovecot import dovecot_conf, dovecot_spam_sieve
from ansible_collections.zerotrust.mailstack.plugins.module_utils import dovecot_config as dc
from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import InputError
from jinja2.nativetypes import NativeEnvironment

ROLE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "roles", "dovecot")


def test_renders_settings_sections_and_types_in_order():
    text = dc.render_dovecot_conf(
        {
            "protocols": ["imap", "lmtp"],
            "auth_verbose": True,
            "auth_allow_cleartext": False,
            "auth_cache_size": 0,
            "removed": None,
            "service imap-login": {
                "inet_listener imap": {"port": 0},
                "inet_listener imaps": {"port": 993, "ssl": True},
                "gone": None,
            },
            "passdb lua": {"lua_file": "/etc/dovecot/a.lua", "lua_settings": {"socket": "/run/a.sock"}},
            "auth_username_format": "%{user | lower}",
        }
    )
    assert text == (
        "protocols = imap lmtp\n"
        "auth_verbose = yes\n"
        "auth_allow_cleartext = no\n"
        "auth_cache_size = 0\n"
        "service imap-login {\n"
        "  inet_listener imap {\n"
        "    port = 0\n"
        "  }\n"
        "  inet_listener imaps {\n"
        "    port = 993\n"
        "    ssl = yes\n"
        "  }\n"
        "}\n"
        "passdb lua {\n"
        "  lua_file = /etc/dovecot/a.lua\n"
        "  lua_settings {\n"
        "    socket = /run/a.sock\n"
        "  }\n"
        "}\n"
        "auth_username_format = %{user | lower}\n"
    )


def test_empty_values_sections_and_quoting():
    assert dc.render_dovecot_conf({"mail_plugins": "", "plugin": {}}) == "mail_plugins =\nplugin {\n}\n"
    assert dc.render_dovecot_conf({"log_timestamp": "%b %d "}) == 'log_timestamp = "%b %d "\n'
    assert dc.render_dovecot_conf({"x": "a#b"}) == 'x = "a#b"\n'
    assert dc.render_dovecot_conf({}) == "\n"


def test_section_heads_with_listener_paths():
    text = dc.render_dovecot_conf({"service auth": {"unix_listener login/login": {"mode": "0666"}}})
    assert "  unix_listener login/login {\n" in text


def test_file_includes_only_for_allowed_keys():
    assert dc.render_dovecot_conf({"ssl_cert": "</etc/ssl/a.pem"}) == "ssl_cert = </etc/ssl/a.pem\n"
    assert dc.render_dovecot_conf({"ssl_key": "</k"}, ["ssl_key"]) == "ssl_key = </k\n"
    assert dc.render_dovecot_conf({"ssl_client_ca_file": "</c"}, ["ssl_client_ca_file"])
    with pytest.raises(InputError, match="reads a file") as err:
        dc.render_dovecot_conf({"passdb lua": {"lua_file": "</etc/shadow"}})
    assert err.value.path == "dovecot_conf.passdb lua.lua_file"
    with pytest.raises(InputError, match="reads a file"):
        dc.render_dovecot_conf({"auth_mechanisms": ["plain", " <x"]})


@pytest.mark.parametrize(
    "conf, path, message",
    [
        ({"ssl": "yes\nauth_mechanisms = plain"}, "dovecot_conf.ssl", "control character"),
        ({"ssl": "yes\rx"}, "dovecot_conf.ssl", "control character"),
        ({"ssl": "yes\x00"}, "dovecot_conf.ssl", "control character"),
        ({"ssl": "yes\tno"}, "dovecot_conf.ssl", "control character"),
        ({"ssl = no\n": "yes"}, "dovecot_conf.ssl = no\n", "control character"),
        ({"ssl = no": "yes"}, "dovecot_conf.ssl = no", "not a Dovecot setting name"),
        ({"Ssl": "yes"}, "dovecot_conf.Ssl", "not a Dovecot setting name"),
        ({"!include": "/etc/passwd"}, "dovecot_conf.!include", "not a Dovecot setting name"),
        ({"protocols": ["imap", "pop3\nssl = no"]}, "dovecot_conf.protocols[1]", "control character"),
        ({"protocols": ["imap", {"x": 1}]}, "dovecot_conf.protocols[1]", "list items"),
        ({"protocols": [["imap"]]}, "dovecot_conf.protocols[0]", "list items"),
        ({"protocols": [None]}, "dovecot_conf.protocols[0]", "list items"),
        ({"ssl": 1.5}, "dovecot_conf.ssl", "must be a string"),
        ({"ssl": "yes {"}, "dovecot_conf.ssl", "braces"),
        ({"ssl": "}"}, "dovecot_conf.ssl", "braces"),
        ({"mail_home": "/var/%{user}}"}, "dovecot_conf.mail_home", "braces"),
        ({"ssl": 'yes"'}, "dovecot_conf.ssl", "quotes"),
        ({"ssl": "yes\\"}, "dovecot_conf.ssl", "backslashes"),
        ({"service imap-login {\n  x": {"a": 1}}, "dovecot_conf.service imap-login {\n  x", "control"),
        ({"service imap-login {": {"a": 1}}, "dovecot_conf.service imap-login {", "section head"),
        ({"service imap login": {"a": 1}}, "dovecot_conf.service imap login", "section head"),
        ({"service  imap": {"a": 1}}, "dovecot_conf.service  imap", "section head"),
        ({"Service imap": {"a": 1}}, "dovecot_conf.Service imap", "section head"),
        ({"service }": {"a": 1}}, "dovecot_conf.service }", "section head"),
        (
            {"service auth": {"inet_listener sasl": {"port": "1 }"}}},
            "dovecot_conf.service auth.inet_listener sasl.port",
            "braces",
        ),
        (
            {"service auth": {"unix_listener a": {"mode\n": 1}}},
            "dovecot_conf.service auth.unix_listener a.mode\n",
            "control",
        ),
        ({1: "x"}, "dovecot_conf.1", "keys must be strings"),
    ],
)
def test_refuses_injection_and_bad_shapes(conf, path, message):
    with pytest.raises(InputError, match=message) as err:
        dc.render_dovecot_conf(conf)
    assert err.value.path == path


def test_must_be_a_mapping():
    with pytest.raises(InputError, match="mapping"):
        dc.render_dovecot_conf(["ssl = yes"])


def test_filter_returns_text_and_raises_ansible_errors():
    assert dovecot_conf({"ssl": "required"}) == "ssl = required\n"
    assert dovecot_conf({"x_file": "<x"}, ["x_file"]) == "x_file = <x\n"
    with pytest.raises(AnsibleFilterError, match=r"dovecot_conf\.service auth\.port"):
        dovecot_conf({"service auth": {"port": "1\n}"}})


def _role_vars(**inventory):
    # What the inventory and fact gathering would give the role.
    data = {
        "mailstack_domain": "corp.example",
        "groups": {"mx": ["mx"], "ldap": ["ldap"]},
        "inventory_hostname": "imap",
        "hostvars": {"imap": {"mailstack_hostname": "imap"}},
        "ansible_facts": {"virtualization_type": "podman"},
    }
    # The role's defaults build on those of its dependency, the mailstack role.
    for path in (
        os.path.join(ROLE, "..", "mailstack", "defaults", "main.yml"),
        os.path.join(ROLE, "defaults", "main.yml"),
        os.path.join(ROLE, "vars", "main.yml"),
    ):
        with open(path) as handle:
            data.update(yaml.safe_load(handle))
    data.update(inventory)
    env = NativeEnvironment()
    env.filters["regex_replace"] = lambda value, pattern, replacement="": re.sub(pattern, replacement, value)
    for name, function in StackFilters().filters().items():
        env.filters["zerotrust.mailstack." + name] = function

    def resolve(value):
        while isinstance(value, str) and "{{" in value:
            value = env.from_string(value).render(**data)
        if isinstance(value, dict):
            return {key: resolve(item) for key, item in value.items()}
        if isinstance(value, list):
            return [resolve(item) for item in value]
        return value

    for _ in range(3):
        data = {key: resolve(value) for key, value in data.items()}
    return data


@pytest.fixture(scope="module")
def role_vars():
    return _role_vars()


def _host_conf(role_vars, version, mailbox, sasl_socket=""):
    """The role's dovecot.conf dict for a mailbox host or an auth-only (mx) host."""
    from ansible.plugins.filter.core import combine

    if not mailbox:
        role_vars = _role_vars(dovecot_protocols=[], dovecot_sasl_socket=sasl_socket)
    parts = [role_vars["__dovecot_conf_" + version]]
    parts.append(role_vars["__dovecot_mailbox_conf_" + version] if mailbox else role_vars["__dovecot_auth_only_conf"])
    if sasl_socket:
        parts.append(role_vars["__dovecot_sasl_conf"])
    return combine(*parts, recursive=True)


def test_role_base_config_24(role_vars):
    text = dc.render_dovecot_conf(_host_conf(role_vars, "24", mailbox=True))
    lines = text.splitlines()
    assert lines[:2] == ["dovecot_config_version = 2.4.0", "dovecot_storage_version = 2.4.0"]
    for line in (
        "protocols = imap lmtp",
        "ssl = required",
        "ssl_server_cert_file = /etc/ssl/mailstack/host.pem",
        "ssl_server_key_file = /etc/ssl/mailstack/private/host.key",
        "ssl_server_ca_file = /etc/ssl/mailstack/ca.pem",
        "ssl_server_request_client_cert = yes",
        "ssl_min_protocol = TLSv1.2",
        "ssl_server_prefer_ciphers = client",
        "auth_allow_cleartext = no",
        "auth_mechanisms = plain login",
        "auth_cache_size = 0",
        "auth_verbose = yes",
        "passdb lua {",
        "userdb lua {",
        "  lua_file = /etc/dovecot/mailstack-auth.lua",
        "    socket = /run/mailstack-auth/auth.sock",
        "mail_driver = maildir",
        "mail_path = ~/Maildir",
        "first_valid_uid = 5000",
        "last_valid_uid = 5000",
        "    port = 0",
        "    port = 993",
        "    port = 24",
    ):
        assert line in lines, line
    assert "ssl_cipher_list = " + role_vars["dovecot_tls_ciphers"] in lines
    assert "!include" not in text and "pop3" not in text and "<" not in text
    # No login check on the network (ZT-AUTH-05): Postfix asks a local socket on the mx.
    assert "service auth" not in text and "12345" not in text


def test_role_base_config_23(role_vars):
    text = dc.render_dovecot_conf(_host_conf(role_vars, "23", mailbox=True))
    lines = text.splitlines()
    for line in (
        "protocols = imap lmtp",
        "ssl = required",
        "ssl_cert = </etc/ssl/mailstack/host.pem",
        "ssl_key = </etc/ssl/mailstack/private/host.key",
        "ssl_ca = </etc/ssl/mailstack/ca.pem",
        "ssl_verify_client_cert = yes",
        "ssl_prefer_server_ciphers = no",
        "disable_plaintext_auth = yes",
        "auth_username_format = %Lu",
        "auth_cache_size = 0",
        "  driver = lua",
        "  args = file=/etc/dovecot/mailstack-auth.lua blocking=yes",
        "mail_location = maildir:~/Maildir",
    ):
        assert line in lines, line
    env = next(line for line in lines if line.startswith("import_environment = "))
    assert env.split()[2:8] == ["TZ", "CORE_OUTOFMEM", "CORE_ERROR", "LISTEN_PID", "LISTEN_FDS", "NOTIFY_SOCKET"]
    assert "MAILSTACK_AUTH_SOCKET=/run/mailstack-auth/auth.sock" in env.split()
    assert "MAILSTACK_AUTH_MAIL_ROOT=/var/vmail" in env.split()
    assert "!include" not in text and "pop3" not in text and "service auth" not in text


# ZT-AUTH-05: the mx's Dovecot serves no client and no network port; only the
# postfix user may open its login socket, and nobody else the userdb socket.
@pytest.mark.parametrize("version", ["24", "23"])
def test_role_auth_only_config(role_vars, version):
    socket = "/var/spool/postfix/private/auth"
    text = dc.render_dovecot_conf(_host_conf(role_vars, version, mailbox=False, sasl_socket=socket))
    lines = text.splitlines()
    assert "protocols =" in lines and "ssl = no" in lines
    service = text[text.index("service auth {\n") :]
    assert service == (
        "service auth {\n"
        "  unix_listener auth-userdb {\n"
        "    mode = 0600\n"
        "  }\n"
        "  unix_listener /var/spool/postfix/private/auth {\n"
        "    mode = 0600\n"
        "    user = postfix\n"
        "    group = postfix\n"
        "  }\n"
        "}\n"
    )
    for absent in (
        "inet_listener",
        "ssl_server_cert_file",
        "ssl_cert",
        "mail_driver",
        "mail_location",
        "first_valid_uid",
        "service lmtp",
    ):
        assert absent not in text, absent
    assert ("passdb lua {" if version == "24" else "passdb {") in lines


def test_role_overrides_remove_and_change(role_vars):
    from ansible.plugins.filter.core import combine

    conf = combine(
        _host_conf(role_vars, "24", mailbox=True),
        {"auth_verbose": None, "service imap-login": None, "service lmtp": {"inet_listener lmtp": {"port": 2424}}},
        recursive=True,
    )
    text = dc.render_dovecot_conf(conf)
    assert "auth_verbose" not in text and "imap-login" not in text and "    port = 2424\n" in text


# Dovecot 2.3 splits import_environment (and every list setting) at spaces: an
# item with a space would inject a second item, e.g. LD_PRELOAD into every process.
@pytest.mark.parametrize("item", ["MAILSTACK_AUTH_MAIL_ROOT=/var/vmail LD_PRELOAD=/tmp/x.so", " TZ", "TZ "])
def test_list_item_with_whitespace_is_refused(item):
    with pytest.raises(InputError, match=r"dovecot_conf\.import_environment\[1\].*whitespace"):
        dc.render_dovecot_conf({"import_environment": ["TZ", item]})


# ZT-AV-05: special-use flags are the one value with a backslash, and only as special_use.
@pytest.mark.parametrize("flag", sorted(dc.SPECIAL_USE))
def test_special_use_flags_are_written_as_they_are(flag):
    assert dc.render_dovecot_conf({"mailbox Junk": {"special_use": flag}}) == (
        "mailbox Junk {\n  special_use = %s\n}\n" % flag
    )


@pytest.mark.parametrize(
    ("conf", "path", "message"),
    [
        ({"mailbox Junk": {"special_use": "\\Spam"}}, "dovecot_conf.mailbox Junk.special_use", "special-use flag"),
        ({"mailbox Junk": {"special_use": "\\Junk\\"}}, "dovecot_conf.mailbox Junk.special_use", "special-use flag"),
        ({"mailbox Junk": {"special_use": "\\Junk\n}"}}, "dovecot_conf.mailbox Junk.special_use", "control"),
        ({"mailbox Junk": {"auto": "\\Junk"}}, "dovecot_conf.mailbox Junk.auto", "backslashes"),
    ],
)
def test_special_use_refuses_anything_but_a_flag(conf, path, message):
    with pytest.raises(InputError, match=message) as err:
        dc.render_dovecot_conf(conf)
    assert err.value.path == path


def test_spam_sieve_files_only_amavis_flag_into_the_mailbox_and_stops():
    assert dc.render_spam_sieve("Junk") == (
        'require ["fileinto", "mailbox"];\n'
        'if header :is "X-Spam-Flag" "YES" {\n'
        '  fileinto :create "Junk";\n'
        "  stop;\n"
        "}\n"
    )
    assert 'fileinto :create "Spam-2";' in dovecot_spam_sieve("Spam-2")


@pytest.mark.parametrize(
    "mailbox",
    [
        "",
        "INBOX",
        "inbox",
        'Junk"; redirect "x@evil.example',
        "Junk\nkeep;",
        "Junk\\",
        "Junk Mail",
        "Junk.Sub",
        "Junk/Sub",
        "*",
        "-Junk",
        "x" * 65,
        ["Junk"],
    ],
)
def test_spam_sieve_refuses_a_mailbox_that_is_not_one_plain_level(mailbox):
    with pytest.raises(InputError) as err:
        dc.render_spam_sieve(mailbox)
    assert err.value.path == "dovecot_junk_mailbox"
    with pytest.raises(AnsibleFilterError, match="dovecot_spam_sieve: dovecot_junk_mailbox"):
        dovecot_spam_sieve(mailbox)


def test_role_delivery_host_files_spam_into_junk_24(role_vars):
    text = dc.render_dovecot_conf(role_vars["__dovecot_junk_conf_24"])
    assert text == (
        "protocol lmtp {\n"
        "  mail_plugins {\n"
        "    sieve = yes\n"
        "  }\n"
        "}\n"
        "sieve_script spam_to_junk {\n"
        "  type = before\n"
        "  driver = file\n"
        "  path = /etc/dovecot/sieve/spam-to-junk.sieve\n"
        "}\n"
        "namespace inbox {\n"
        "  inbox = yes\n"
        "  mailbox Junk {\n"
        "    auto = subscribe\n"
        "    special_use = \\Junk\n"
        "  }\n"
        "}\n"
    )
    # No script of the user's own: nothing a user wrote runs at delivery.
    assert "personal" not in text and "managesieve" not in text


def test_role_delivery_host_files_spam_into_junk_23(role_vars):
    text = dc.render_dovecot_conf(role_vars["__dovecot_junk_conf_23"])
    lines = text.splitlines()
    assert "  mail_plugins = $mail_plugins sieve" in lines
    assert "  sieve_before = /etc/dovecot/sieve/spam-to-junk.sieve" in lines
    assert "    special_use = \\Junk" in lines


def test_role_junk_mailbox_is_the_operators(role_vars):
    conf = _role_vars(dovecot_junk_mailbox="Spam")["__dovecot_junk_conf_24"]
    assert conf["namespace inbox"]["mailbox Spam"] == {"auto": "subscribe", "special_use": "\\Junk"}
