"""module_utils/enrollment.py: what user_enroll.yml and user_revoke.yml check and decide."""

import datetime
import json

import pytest
from ansible_collections.zerotrust.mailstack.plugins.module_utils import enrollment, mail_auth
from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import InputError

USERS = [
    {"login": "alice", "mail": "Alice@corp.example"},
    {"login": "bob", "mail": "bob@corp.example"},
    {"login": "carol", "mail": "carol@corp.example", "enabled": False},
]
NOW = datetime.datetime(2026, 12, 1, 12, 0, 0, 750000, tzinfo=enrollment.UTC)
DN = "uid=alice,ou=people,dc=corp,dc=example"
ENTRY = {"dn": DN, "userPassword": "{ARGON2}x", "mailstackTotpSecret": "JBSWY3DPEHPK3PXP"}


def enroll(**raw):
    return enrollment.enroll_request(dict({"user": "alice"}, **raw), USERS)


def refused(function, *args, **kwargs):
    with pytest.raises(InputError) as err:
        function(*args, **kwargs)
    return err.value


# --- enroll: the request ---------------------------------------------------------


def test_minimal_request_is_normalised():
    assert enroll() == {
        "user": "alice",
        "mail": "alice@corp.example",
        "new_password": None,
        "new_totp": None,
        "app_device_bound": False,
        "device_cert": False,
        "app_name": None,
        "app_scopes": ["imap", "smtp"],
        "app_days": 365,
        "reinstate": False,
    }


@pytest.mark.parametrize(
    "user", [None, "Alice", "alice\n", "alice\nbob", "-alice", "", "a" * 65, 5, ["alice"], "al ice", "alice\x00"]
)
def test_malformed_user_is_refused_quoting_it(user):
    error = refused(enrollment.enroll_request, {"user": user}, USERS)
    assert error.path == "user"
    assert str(error).startswith("user must be the login of a mail user")
    assert str(error).endswith("got %s" % json.dumps("nothing" if user is None else user))


@pytest.mark.parametrize("user", ["alice", "a", "a.b_c-d", "a" * 64])
def test_wellformed_declared_user_is_accepted(user):
    users = USERS + [{"login": user, "mail": "x@corp.example"}] if user != "alice" else USERS
    assert enrollment.enroll_request({"user": user}, users)["user"] == user


@pytest.mark.parametrize("user", ["carol", "mallory"])
def test_undeclared_or_disabled_user_is_refused(user):
    error = refused(enrollment.enroll_request, {"user": user}, USERS)
    assert str(error) == "%s is not an enabled user of mailstack_users; nothing was changed" % user


def test_user_enabled_again_is_accepted():
    users = [dict(USERS[2], enabled=True)]
    assert enrollment.enroll_request({"user": "carol"}, users)["mail"] == "carol@corp.example"


def test_malformed_mailstack_users_is_refused_naming_it():
    error = refused(enrollment.enroll_request, {"user": "alice"}, [{"login": "alice", "mail": "a\n@corp.example"}])
    assert error.path == "mailstack_users[0].mail"


def test_unknown_option_is_refused_naming_it():
    error = refused(enrollment.enroll_request, {"user": "alice", "app_nmae": "x"}, USERS)
    assert error.path == "app_nmae"
    assert '"app_nmae"' in str(error) and "known: user, new_password" in str(error)


@pytest.mark.parametrize("option", ["new_password", "new_totp", "app_device_bound", "device_cert", "reinstate"])
@pytest.mark.parametrize("value", ["maybe", "true\n", "", 2, -1, 1.0, ["true"], {"a": 1}, "tru e"])
def test_boolean_options_refuse_anything_but_a_boolean(option, value):
    raw = {option: value, "app_name": "x"}
    error = refused(enroll, **raw)
    assert error.path == option
    assert str(error) == "%s must be true or false; nothing was changed" % option


@pytest.mark.parametrize("option", ["new_password", "new_totp", "app_device_bound", "device_cert", "reinstate"])
@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), ("true", True), ("Yes", True), ("ON", True), ("1", True), (1, True)]
    + [(False, False), ("false", False), ("no", False), ("off", False), ("0", False), (0, False)],
)
def test_boolean_options_accept_the_usual_spellings(option, value, expected):
    assert enroll(**{option: value, "app_name": "x", "app_scopes": "imap"})[option] is expected


def test_password_and_totp_not_given_stay_undecided():
    request = enroll(new_password="false", new_totp="true")
    assert (request["new_password"], request["new_totp"]) == (False, True)
    assert (enroll()["new_password"], enroll()["new_totp"]) == (None, None)


@pytest.mark.parametrize(
    "name", ["", "Laptop", "-x", "_x", "x" * 33, "lap top", "laptop\n", "lap/top", "lap.top", 7, ["x"]]
)
def test_malformed_app_name_is_refused(name):
    error = refused(enroll, app_name=name)
    assert error.path == "app_name"
    assert "app_name must be 1 to 32 of a-z, 0-9, '_', '-'" in str(error)


@pytest.mark.parametrize("name", ["x", "laptop", "0phone", "my_phone-2", "x" * 32])
def test_wellformed_app_name_is_accepted(name):
    assert enroll(app_name=name)["app_name"] == name


@pytest.mark.parametrize(
    "scopes", ["pop3", "imap,pop3", "", "imap,", [], ["imap", "pop3"], ["imap", 1], "IMAP", 5, {"imap": 1}, "imap\n"]
)
def test_malformed_scopes_are_refused(scopes):
    error = refused(enroll, app_name="x", app_scopes=scopes)
    assert error.path == "app_scopes"
    assert str(error) == "app_scopes must be a non-empty list of imap and smtp; nothing was changed"


@pytest.mark.parametrize(
    ("scopes", "expected"),
    [
        ("imap", ["imap"]),
        ("smtp", ["smtp"]),
        ("imap, smtp", ["imap", "smtp"]),
        ("smtp,imap,smtp", ["smtp", "imap"]),
        (["imap"], ["imap"]),
        (["imap", "imap"], ["imap"]),
        (None, ["imap", "smtp"]),
    ],
)
def test_scopes_are_a_list_without_duplicates(scopes, expected):
    assert enroll(app_name="x", app_scopes=scopes)["app_scopes"] == expected


def test_device_bound_defaults_to_imap_and_refuses_smtp():
    assert enroll(app_name="x", app_device_bound="true")["app_scopes"] == ["imap"]
    error = refused(enroll, app_name="x", app_device_bound="true", app_scopes="imap,smtp")
    assert error.path == "app_scopes" and "cannot be scoped to smtp" in str(error)
    assert enroll(app_name="x", app_device_bound="false", app_scopes="imap,smtp")["app_scopes"] == ["imap", "smtp"]


@pytest.mark.parametrize("days", ["-1", "1.5", "100000", "", "x", "3\n", " 3", 1.0, True, -1, [3]])
def test_malformed_days_are_refused(days):
    error = refused(enroll, app_name="x", app_days=days)
    assert error.path == "app_days"
    assert str(error) == "app_days must be a whole number of days (0 to 99999); nothing was changed"


@pytest.mark.parametrize(("days", "expected"), [("0", 0), (0, 0), ("30", 30), (99999, 99999), ("00007", 7)])
def test_wellformed_days_are_accepted(days, expected):
    assert enroll(app_name="x", app_days=days)["app_days"] == expected


@pytest.mark.parametrize("option", ["app_device_bound", "device_cert"])
def test_device_options_need_an_app_name(option):
    error = refused(enroll, **{option: "true"})
    assert error.path == "app_name"
    assert str(error) == "app_device_bound and device_cert need app_name; nothing was changed"
    assert enroll(**{option: "true", "app_name": "phone"})[option] is True
    assert enroll(**{option: "false"})[option] is False


# --- enroll: the plan -------------------------------------------------------------


def plan(entry=ENTRY, apps=(), **raw):
    return enrollment.enroll_plan(enroll(**raw), [entry], list(apps), DN, NOW)


def test_user_missing_from_the_directory_is_refused_with_the_search_error():
    error = refused(enrollment.enroll_plan, enroll(), [], [], DN, NOW, "No such object")
    assert str(error) == "%s is not in the directory (run playbooks/site.yml first): No such object" % DN
    assert plan()["user"] == "alice"


def test_revoked_user_is_refused_unless_reinstated_and_then_gets_new_secrets():
    revoked = dict(ENTRY, mailstackRevoked="TRUE")
    error = refused(plan, revoked)
    assert error.path == "reinstate"
    assert str(error) == "alice was revoked; enroll it again with -e reinstate=true (new password and TOTP secret)"
    reinstated = plan(revoked, reinstate="true", new_password="false", new_totp="false")
    assert reinstated["reinstate"] and reinstated["password"] and reinstated["totp"]
    assert reinstated["changes"] == ["password", "totp"]
    # An unrevoked user asked to be reinstated is just enrolled.
    assert plan(reinstate="true")["reinstate"] is False
    assert plan(dict(ENTRY, mailstackRevoked="FALSE"))["reinstate"] is False
    assert plan(dict(ENTRY, mailstackRevoked=["TRUE"]), reinstate="yes")["reinstate"] is True


@pytest.mark.parametrize(
    ("entry", "raw", "password", "totp"),
    [
        (ENTRY, {}, False, False),
        ({"dn": DN}, {}, True, True),
        ({"dn": DN, "userPassword": "x"}, {}, False, True),
        (ENTRY, {"new_password": "true"}, True, False),
        (ENTRY, {"new_totp": "true"}, False, True),
        ({"dn": DN}, {"new_password": "false", "new_totp": "no"}, False, False),
    ],
)
def test_password_and_totp_issued_when_asked_or_missing(entry, raw, password, totp):
    result = plan(entry, **raw)
    assert (result["password"], result["totp"]) == (password, totp)


def test_nothing_asked_nothing_changed():
    result = plan()
    assert result["changes"] == []
    assert result["app"] is False and result["pki_device"] is None


def test_app_and_device_certificate_plan():
    result = plan(app_name="phone", app_device_bound="true", device_cert="true", app_days="30")
    assert result["changes"] == ["app", "device-cert"]
    assert result["app_scopes"] == ["imap"] and result["app_device_bound"] is True
    assert result["app_expires"] == "20261231120000Z"
    assert result["pki_device"] == {"name": "alice-phone", "user": "alice@corp.example", "days": 30}


def test_app_days_zero_has_already_expired_and_the_certificate_takes_the_pki_default():
    result = plan(app_name="old", app_days=0, device_cert="true")
    assert result["app_expires"] == "20261201120000Z"
    assert result["pki_device"] == {"name": "alice-old", "user": "alice@corp.example"}


def test_held_apps_are_the_directory_ids():
    apps = [{"dn": "mailstackAppId=aaaaaaaa," + DN, "mailstackAppId": "aaaaaaaa"}, {"dn": "x"}]
    assert plan(apps=apps)["held_apps"] == ["aaaaaaaa"]


# --- enroll: secrets, document, log line -------------------------------------------


FRESH = {"password": "p" * 20, "totp_secret": "A" * 32, "app_password": "bbbbbbbb-" + "c" * 24, "app_id": "bbbbbbbb"}
OLD = {
    "login": "alice",
    "mail": "alice@corp.example",
    "password": "old-password",
    "totp_secret": "JBSWY3DPEHPK3PXP",
    "otpauth_uri": "stale",
    "app_passwords": {"aaaaaaaa": {"secret": "aaaaaaaa-x"}, "gonegone": {"secret": "gonegone-x"}},
}


def test_new_secrets_are_made_only_as_planned():
    made = enrollment.new_secrets({"password": True, "totp": False, "app": True})
    assert len(made["password"]) == mail_auth.LOGIN_PASSWORD_LENGTH and made["totp_secret"] is None
    assert mail_auth.parse_app_password(made["app_password"]) == made["app_id"]
    none = enrollment.new_secrets({"password": False, "totp": True, "app": False})
    assert none["password"] is none["app_password"] is none["app_id"] is None
    mail_auth.decode_secret(none["totp_secret"])


def test_document_keeps_old_secrets_prunes_apps_the_directory_lost():
    result = plan(apps=[{"dn": "x", "mailstackAppId": "aaaaaaaa"}])
    document = enrollment.enroll_credentials(result, OLD, FRESH, "corp.example")
    assert document == {
        "login": "alice",
        "mail": "alice@corp.example",
        "password": "old-password",
        "totp_secret": "JBSWY3DPEHPK3PXP",
        "otpauth_uri": mail_auth.otpauth_uri("JBSWY3DPEHPK3PXP", "alice@corp.example", "corp.example"),
        "app_passwords": {"aaaaaaaa": {"secret": "aaaaaaaa-x"}},
    }
    # The same inputs give the same document: a rerun without flags rewrites nothing.
    assert enrollment.enroll_credentials(result, OLD, FRESH, "corp.example") == document


def test_document_takes_the_new_secrets_and_app():
    result = plan(new_password="true", new_totp="true", app_name="laptop", app_scopes="imap")
    document = enrollment.enroll_credentials(result, OLD, FRESH, "corp.example")
    assert document["password"] == FRESH["password"] and document["totp_secret"] == FRESH["totp_secret"]
    assert document["otpauth_uri"] == mail_auth.otpauth_uri(FRESH["totp_secret"], "alice@corp.example", "corp.example")
    assert document["app_passwords"] == {
        "bbbbbbbb": {
            "secret": FRESH["app_password"],
            "name": "laptop",
            "scopes": ["imap"],
            "expires": "20271201120000Z",
            "device_bound": False,
        }
    }


@pytest.mark.parametrize("old", [{}, {"app_passwords": None}, {"app_passwords": "junk"}])
def test_document_from_nothing_has_no_totp_uri_without_a_secret(old):
    document = enrollment.enroll_credentials(plan(entry=ENTRY), old, FRESH, "corp.example")
    assert document["password"] is document["totp_secret"] is document["otpauth_uri"] is None
    assert document["app_passwords"] == {}


def test_log_fields_name_what_changed_and_no_secret():
    result = plan(new_totp="true", app_name="phone", app_device_bound="true", device_cert="true")
    fields = enrollment.enroll_log_fields(result, "bbbbbbbb")
    assert fields == [
        "enroll",
        "user=alice",
        "changed=totp,app,device-cert",
        "app=bbbbbbbb",
        "device=phone",
        "scopes=imap",
        "device_bound=true",
    ]
    line = " ".join(fields)
    assert all(secret not in line for secret in (FRESH["password"], FRESH["totp_secret"], FRESH["app_password"]))
    quiet = enrollment.enroll_log_fields(plan(new_password="true"), None)
    assert quiet == ["enroll", "user=alice", "changed=password", "app=-", "device=-", "scopes=-", "device_bound=-"]


# --- revoke --------------------------------------------------------------------------


APPS = [
    {"dn": "mailstackAppId=aaaaaaaa," + DN, "mailstackAppId": "aaaaaaaa", "mailstackDevice": "phone"},
    {"dn": "mailstackAppId=bbbbbbbb," + DN, "mailstackAppId": "bbbbbbbb", "mailstackDevice": "phone"},
    {"dn": "mailstackAppId=cccccccc," + DN, "mailstackAppId": "cccccccc"},
]
EXACTLY_ONE = "name exactly one thing to revoke"


def revoke(**raw):
    return enrollment.revoke_request(dict({"user": "alice"}, **raw))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"app": "aaaaaaaa"}, {"what": "app", "app": "aaaaaaaa", "device": None}),
        ({"device": "phone"}, {"what": "device", "app": None, "device": "phone"}),
        ({"all": "true"}, {"what": "all", "app": None, "device": None}),
        ({"all": True}, {"what": "all", "app": None, "device": None}),
        ({"app": "aaaaaaaa", "all": "false"}, {"what": "app", "app": "aaaaaaaa", "device": None}),
    ],
)
def test_revoke_request_names_one_thing(raw, expected):
    assert revoke(**raw) == dict(expected, user="alice")


@pytest.mark.parametrize(
    "raw", [{}, {"all": "no"}, {"app": "aaaaaaaa", "device": "phone"}, {"app": "aaaaaaaa", "all": "yes"}]
)
def test_revoke_request_naming_nothing_or_two_things_is_refused(raw):
    assert str(refused(revoke, **raw)).startswith(EXACTLY_ONE)


@pytest.mark.parametrize("app", ["aaaaaaa", "aaaaaaaaa", "AAAAAAAA", "aaaaaaa\n", "aaaa-aaa", 12345678, ["aaaaaaaa"]])
def test_malformed_app_id_is_refused_naming_app(app):
    error = refused(revoke, app=app)
    assert error.path == "app" and str(error).startswith("app must be an 8-character app id")


def test_a_whole_app_password_given_as_app_is_refused_without_echoing_it():
    pasted = "rcyhx3f2-4DOVxQZM1HY804uunQHdMjBM"
    error = refused(revoke, app=pasted)
    assert error.path == "app" and "4DOVxQZM1HY804uunQHdMjBM" not in str(error)
    assert enrollment.revoke_request({"user": "alice", "app": pasted.split("-")[0]})["app"] == "rcyhx3f2"


@pytest.mark.parametrize("device", ["Phone", "", "phone\n", "-x", "x" * 33, "../x", 3])
def test_malformed_device_is_refused_naming_device(device):
    error = refused(revoke, device=device)
    assert error.path == "device" and str(error).startswith("device must be a device name")


@pytest.mark.parametrize("value", ["maybe", "true\n", 2])
def test_malformed_all_is_refused_naming_all(value):
    error = refused(revoke, all=value)
    assert str(error) == "all must be true or false; nothing was changed"


def test_revoke_malformed_user_and_unknown_option_are_refused():
    assert str(refused(enrollment.revoke_request, {"user": "alice\n", "all": "true"})).startswith(
        "user must be the login of a mail user"
    )
    assert str(refused(enrollment.revoke_request, {"all": "true"})).endswith('got "nothing"')
    assert refused(revoke, all="true", everything="true").path == "everything"


def revoke_plan(apps=APPS, cert_exists=False, **raw):
    return enrollment.revoke_plan(revoke(**raw), apps, DN, "/pki/devices", cert_exists)


def test_revoke_plan_refuses_a_user_the_directory_lacks():
    error = refused(enrollment.revoke_plan, revoke(all="true"), None, DN, "/pki/devices", False, "No such object")
    assert str(error) == "%s is not in the directory: No such object" % DN
    assert revoke_plan(all="true", apps=[])["targets"] == []


def test_revoke_one_app():
    result = revoke_plan(app="bbbbbbbb")
    assert result["targets"] == [{"dn": APPS[1]["dn"], "id": "bbbbbbbb"}] and result["ids"] == ["bbbbbbbb"]
    assert result["cert"] == "" and result["all"] is False
    assert result["log_fields"] == ["revoke", "user=alice", "what=app", "apps=bbbbbbbb", "device=-"]
    error = refused(revoke_plan, app="zzzzzzzz")
    assert str(error) == "alice has no app password zzzzzzzz; nothing was changed"


def test_revoke_a_device_with_or_without_app_passwords():
    result = revoke_plan(device="phone")
    assert result["ids"] == ["aaaaaaaa", "bbbbbbbb"] and result["cert"] == "/pki/devices/alice-phone.pem"
    assert result["log_fields"][-2:] == ["apps=aaaaaaaa,bbbbbbbb", "device=phone"]
    only_cert = revoke_plan(device="tablet", cert_exists=True)
    assert only_cert["ids"] == [] and only_cert["log_fields"][-2:] == ["apps=-", "device=tablet"]
    error = refused(revoke_plan, device="tablet")
    assert str(error) == "alice has no app password and no certificate for the device tablet; nothing was changed"


def test_revoke_all_takes_every_app_password():
    result = revoke_plan(all="true")
    assert result["ids"] == ["aaaaaaaa", "bbbbbbbb", "cccccccc"] and result["all"] is True
    assert result["log_fields"] == ["revoke", "user=alice", "what=all", "apps=aaaaaaaa,bbbbbbbb,cccccccc", "device=-"]


def test_revoked_document_drops_apps_and_for_all_the_secrets():
    old = dict(OLD, app_passwords={"aaaaaaaa": {}, "cccccccc": {}})
    document = enrollment.revoke_credentials(revoke_plan(app="aaaaaaaa"), old)
    assert document == dict(OLD, app_passwords={"cccccccc": {}})
    everything = enrollment.revoke_credentials(revoke_plan(all="true"), old)
    assert everything == dict(old, password=None, totp_secret=None, otpauth_uri=None, app_passwords={})
    assert enrollment.revoke_credentials(revoke_plan(all="true"), None) is None
    assert enrollment.revoke_credentials(revoke_plan(all="true"), {"login": "alice"})["app_passwords"] == {}


def test_a_plan_is_refused_when_the_app_passwords_could_not_be_read():
    """Otherwise the credentials file would be rewritten without the app passwords it lists."""
    with pytest.raises(enrollment.RequestError, match="cannot read the app passwords") as refusal:
        enrollment.enroll_plan(enroll(user="alice"), [{}], None, DN, NOW, "Can't contact LDAP server")
    assert refusal.value.path == "user" and "Can't contact LDAP server" in str(refusal.value)
    assert enrollment.enroll_plan(enroll(user="alice"), [{}], [], DN, NOW)["held_apps"] == []
