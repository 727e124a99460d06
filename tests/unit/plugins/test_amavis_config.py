import os
import re

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.zerotrust.mailstack.plugins.filter.amavis import (
    FilterModule,
    amavis_conf,
    amavis_overrides,
    clamd_conf,
    spam_rules,
)
from ansible_collections.zerotrust.mailstack.plugins.module_utils.amavis_config import (
    check_overrides,
    render_amavis_conf,
    render_clamd_conf,
    render_spam_rules,
)
from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import InputError

ROLE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "roles", "amavis")


def test_scalars_lists_and_hashes_are_written_as_perl():
    text = render_amavis_conf(
        {
            "$myhostname": "filter1.corp.example",
            "$max_servers": 2,
            "$sa_tag_level_deflt": 2.5,
            "$sa_local_tests_only": True,
            "$inet_socket_port": [10024, 10026],
            "@inet_acl": ["192.0.2.25"],
            "@bypass_virus_checks_maps": [],
            "%smtpd_tls_server_options": {"SSL_verify_mode": 3},
            "$interface_policy{10026}": "ORIGINATING",
            "$policy_bank{ORIGINATING}": {"originating": 1},
        }
    )
    assert text == (
        "$myhostname = 'filter1.corp.example';\n"
        "$max_servers = 2;\n"
        "$sa_tag_level_deflt = 2.5;\n"
        "$sa_local_tests_only = 1;\n"
        "$inet_socket_port = [10024, 10026];\n"
        "@inet_acl = ('192.0.2.25');\n"
        "@bypass_virus_checks_maps = ();\n"
        "%smtpd_tls_server_options = ('SSL_verify_mode' => 3);\n"
        "$interface_policy{'10026'} = 'ORIGINATING';\n"
        "$policy_bank{'ORIGINATING'} = {'originating' => 1};\n"
    )


def test_regexes_and_constants():
    text = render_amavis_conf(
        {
            "$banned_filename_re": {"regexes": [{"regex": r".\.(exe|com)$", "flags": "i"}, {"regex": r"^\.exe-ms$"}]},
            "$final_virus_destiny": {"constant": "D_DISCARD"},
        }
    )
    assert text == (
        "$banned_filename_re = new_RE(qr'.\\.(exe|com)$'i, qr'^\\.exe-ms$');\n$final_virus_destiny = D_DISCARD;\n"
    )


def test_a_null_setting_is_left_out_so_an_override_removes_it():
    assert render_amavis_conf({"$a": 1, "$b": None}) == "$a = 1;\n"


@pytest.mark.parametrize(
    "value",
    [
        "x'; system('id'); '",
        "x\\",
        "it's",
    ],
)
def test_strings_cannot_leave_their_quotes(value):
    text = render_amavis_conf({"$virus_admin": value})
    body = text[len("$virus_admin = '") : -len("';\n")]
    # Every quote inside is escaped, and so is every backslash: the string ends where it should.
    unescaped = body.replace("\\\\", "").replace("\\'", "")
    assert "'" not in unescaped and "\\" not in unescaped


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        ({"$a": "line\nsystem('id');"}, r"amavis_conf\.\$a.*control character"),
        ({"a": 1}, "not an amavis setting name"),
        ({"$a{k'} = 1; system('id'); $b{'}": 1}, "not an amavis setting name"),
        ({"@a{k}": 1}, "not an amavis setting name"),
        ({"$ENV{PATH}": "/tmp"}, "Perl's own variables"),
        ({"@INC": ["/tmp"]}, "Perl's own variables"),
        ({"%SIG": {"HUP": "IGNORE"}}, "Perl's own variables"),
        ({"%ENV": {"PATH": "/tmp"}}, "Perl's own variables"),
        ({"$a; system('id')": 1}, "not an amavis setting name"),
        ({"$a": {"regex": "x'; system('id'); qr'"}}, "single quote"),
        ({"$a": {"regex": "(?{ system(qq(id)) })"}}, "Perl code"),
        ({"$a": {"regex": "(??{ system(qq(id)) })"}}, "Perl code"),
        ({"$a": {"regex": "abc\\"}}, "not a regular expression"),
        ({"$a": {"regex": "abc", "flags": "ie"}}, "flags"),
        ({"$a": {"regex": "abc", "code": 1}}, "only 'regex' and 'flags'"),
        ({"$a": {"constant": "system('id')"}}, "not one of"),
        ({"$a": {"regexes": []}}, "non-empty list"),
        ({"$a": {"regexes": ["abc"]}}, r"regexes\[0\]"),
        ({"$a": float("nan")}, "finite"),
        ({"@a": "x"}, "takes a list"),
        ({"%a": ["x"]}, "takes a mapping"),
        ({"%a": {"k'); system('id'); ('": 1}}, "not a key name"),
        ({"$a": object()}, "must be a string"),
        ("$a = 1", "mapping of amavis settings"),
    ],
)
def test_anything_that_is_not_data_is_refused_naming_the_setting(conf, message):
    with pytest.raises(InputError, match=message):
        render_amavis_conf(conf)


def test_clamd_conf_lines():
    conf = {"LocalSocket": "/run/clamav/clamd.ctl", "ScanMail": True, "MaxThreads": 4, "X": None}
    assert render_clamd_conf(conf) == "LocalSocket /run/clamav/clamd.ctl\nScanMail yes\nMaxThreads 4\n"


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        ({"LocalSocket": "/run/x\nUser root"}, "control character"),
        ({"User root\nX": "y"}, "not a clamd setting name"),
        ({"LogFile": "/var/log/x # y"}, "without '#'"),
        ({"LogFile": " "}, "non-empty"),
        ({"LogFile": ["a"]}, "non-empty"),
    ],
)
def test_clamd_conf_refuses_injections(conf, message):
    with pytest.raises(InputError, match=message):
        render_clamd_conf(conf)


def test_filters_name_themselves_in_errors():
    assert set(FilterModule().filters()) == {
        "amavis_conf",
        "amavis_overrides",
        "clamd_conf",
        "quarantine_line",
        "spam_rules",
    }
    with pytest.raises(AnsibleFilterError, match=r"zerotrust.mailstack.amavis_overrides: amavis_conf.@mynetworks"):
        amavis_overrides({"@mynetworks": ["0.0.0.0/0"]})
    with pytest.raises(AnsibleFilterError, match="zerotrust.mailstack.amavis_conf: amavis_conf.a"):
        amavis_conf({"a": 1})
    with pytest.raises(AnsibleFilterError, match="zerotrust.mailstack.clamd_conf"):
        clamd_conf({"a b": 1})


def test_the_role_settings_are_data_the_filter_accepts():
    """Every key of the role's own settings has a sigil, and the clamd keys are names."""
    with open(os.path.join(ROLE, "vars", "main.yml")) as handle:
        role_vars = yaml.safe_load(handle)
    assert all(key[0] in "$@%" for key in role_vars["__amavis_conf"])
    assert all(key.isalnum() for key in role_vars["__amavis_clamd_conf"])


@pytest.mark.parametrize(
    "key",
    [
        "@bypass_virus_checks_maps",
        "$bypass_decode_parts",
        "@spam_lovers_maps",
        "@virus_lovers_maps",
        "$final_virus_destiny",
        "$final_unchecked_destiny",
        "$policy_bank{ORIGINATING}",
        "%policy_bank",
        "$interface_policy{10024}",
        "@client_ipaddr_policy",
        "@author_to_policy_bank_maps",
        "@av_scanners",
        "@av_scanners_backup",
        "$virus_scanners_failure_is_fatal",
        "@mynetworks",
        "@inet_acl",
        "$inet_socket_bind",
        "$tls_security_level_in",
        "%smtpd_tls_server_options",
        "%smtp_tls_client_options",
        "$forward_method",
        "$notify_method",
    ],
)
def test_an_override_may_not_change_what_the_role_decides(key):
    with pytest.raises(InputError, match=r"amavis_conf\.%s: is decided by the role" % re.escape(key)):
        check_overrides({key: None})


def test_other_overrides_pass_unchanged():
    # The twin: tuning that keeps every message scanned is the operator's.
    conf = {"$sa_spam_subject_tag": "[spam] ", "$MAXLEVELS": 20, "@banned_namepath_re": [], "$log_level": 2}
    assert check_overrides(conf) is conf
    with pytest.raises(InputError, match="mapping"):
        check_overrides(["$log_level"])


# --- the site's own SpamAssassin rules (amavis_spam_rules) ----------------------


def test_spam_rules_are_written_as_spamassassin_lines():
    text = spam_rules(
        [
            {"name": "LOCAL_MARKER", "body": "ZTMS-SPAM-TEST", "score": 7.5, "description": "Test marker"},
            {"name": "LOCAL_SUBJECT", "header": "Subject", "regex": "wire (the )?money", "flags": "i", "score": 2},
            {"name": "LOCAL_URI", "uri": "evil\\.example", "score": -0.5},
        ]
    )
    assert text == (
        "body LOCAL_MARKER /ZTMS-SPAM-TEST/\n"
        "score LOCAL_MARKER 7.5\n"
        "describe LOCAL_MARKER Test marker\n"
        "header LOCAL_SUBJECT Subject =~ /wire (the )?money/i\n"
        "score LOCAL_SUBJECT 2\n"
        "uri LOCAL_URI /evil\\.example/\n"
        "score LOCAL_URI -0.5\n"
    )
    assert render_spam_rules([]) == ""


@pytest.mark.parametrize(
    ("rules", "path", "message"),
    [
        ({"name": "X"}, "amavis_spam_rules", "list"),
        (["body X /a/"], "amavis_spam_rules[0]", "mapping"),
        ([{"name": "lower", "body": "a", "score": 1}], "amavis_spam_rules[0].name", "rule name"),
        ([{"name": "__META", "body": "a", "score": 1}], "amavis_spam_rules[0].name", "rule name"),
        ([{"name": "X\nscore Y", "body": "a", "score": 1}], "amavis_spam_rules[0].name", "rule name"),
        ([{"name": "X", "score": 1}], "amavis_spam_rules[0]", "exactly one"),
        ([{"name": "X", "body": "a", "uri": "b", "score": 1}], "amavis_spam_rules[0]", "exactly one"),
        ([{"name": "X", "body": "a", "score": 1, "eval": "x"}], "amavis_spam_rules[0]", "unknown keys"),
        ([{"name": "X", "body": "a/\nloadplugin Evil /tmp/e.pm", "score": 1}], "amavis_spam_rules[0].body", "control"),
        ([{"name": "X", "body": "a/ ; b", "score": 1}], "amavis_spam_rules[0].body", "without '/'"),
        ([{"name": "X", "body": "(?{ system('id') })", "score": 1}], "amavis_spam_rules[0].body", "Perl code"),
        ([{"name": "X", "body": "(", "score": 1}], "amavis_spam_rules[0].body", "not a regular expression"),
        ([{"name": "X", "body": "", "score": 1}], "amavis_spam_rules[0].body", "non-empty"),
        ([{"name": "X", "body": "a", "flags": "ie", "score": 1}], "amavis_spam_rules[0].flags", "letters"),
        ([{"name": "X", "body": "a", "regex": "b", "score": 1}], "amavis_spam_rules[0]", "header rules"),
        (
            [{"name": "X", "header": "Subject =~ /a/ #", "regex": "a", "score": 1}],
            "amavis_spam_rules[0].header",
            "header",
        ),
        ([{"name": "X", "header": "Subject", "score": 1}], "amavis_spam_rules[0]", "needs a regex"),
        ([{"name": "X", "body": "a", "score": "7"}], "amavis_spam_rules[0].score", "number"),
        ([{"name": "X", "body": "a", "score": True}], "amavis_spam_rules[0].score", "number"),
        ([{"name": "X", "body": "a", "score": float("nan")}], "amavis_spam_rules[0].score", "number"),
        ([{"name": "X", "body": "a", "score": 1000}], "amavis_spam_rules[0].score", "between"),
        (
            [{"name": "X", "body": "a", "score": 1, "description": "a\nbody Y /b/"}],
            "amavis_spam_rules[0].description",
            "control",
        ),
        (
            [{"name": "X", "body": "a", "score": 1}, {"name": "X", "body": "b", "score": 2}],
            "amavis_spam_rules[1].name",
            "twice",
        ),
    ],
)
def test_spam_rules_refuse_what_is_not_a_rule(rules, path, message):
    with pytest.raises(InputError, match=message) as err:
        render_spam_rules(rules)
    assert err.value.path == path
    with pytest.raises(AnsibleFilterError, match="zerotrust.mailstack.spam_rules: "):
        spam_rules(rules)
