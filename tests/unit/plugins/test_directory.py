import pytest
from ansible_collections.zerotrust.mailstack.plugins.module_utils import directory
from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import InputError

PEOPLE = "ou=people,dc=corp,dc=example"


def test_defaults_are_filled_in_and_addresses_lower_cased():
    users = directory.mail_users([{"login": "alice", "mail": "Alice@Corp.Example"}])
    assert users == [
        {"login": "alice", "name": "alice", "mail": "alice@corp.example", "aliases": [], "groups": [], "enabled": True}
    ]


@pytest.mark.parametrize(
    ("users", "path", "message"),
    [
        ([{"login": "Alice", "mail": "a@corp.example"}], "mailstack_users[0].login", "not a login"),
        ([{"login": "a\nb", "mail": "a@corp.example"}], "mailstack_users[0].login", "not a login"),
        ([{"login": "a", "mail": "a@corp.example\nRCPT"}], "mailstack_users[0].mail", "control character"),
        ([{"login": "a", "mail": "a@corp.example", "enabled": "no"}], "mailstack_users[0].enabled", "boolean"),
        ([{"login": "a", "mail": "a@corp.example", "shell": "/bin/sh"}], "mailstack_users[0]", "unknown keys shell"),
        (
            [{"login": "a", "mail": "a@corp.example"}, {"login": "a", "mail": "b@corp.example"}],
            "mailstack_users[1].login",
            "declared twice",
        ),
        (
            [
                {"login": "a", "mail": "a@corp.example"},
                {"login": "b", "mail": "x@corp.example", "aliases": ["A@corp.example"]},
            ],
            "mailstack_users[1]",
            "already belongs to a",
        ),
        ("alice", "mailstack_users", "must be a list"),
    ],
)
def test_bad_users_are_refused_naming_the_entry(users, path, message):
    with pytest.raises(InputError, match=message) as err:
        directory.mail_users(users)
    assert err.value.path == path


def test_groups_hold_only_enabled_members_sorted():
    users = [
        {"login": "bob", "mail": "bob@corp.example", "groups": ["staff"]},
        {"login": "alice", "mail": "alice@corp.example", "groups": ["staff", "admins"]},
        {"login": "carol", "mail": "carol@corp.example", "groups": ["staff"], "enabled": False},
    ]
    assert directory.user_groups(users, PEOPLE) == {
        "admins": ["uid=alice," + PEOPLE],
        "staff": ["uid=alice," + PEOPLE, "uid=bob," + PEOPLE],
    }


def test_revoked_users_stay_disabled_whatever_the_inventory_says():
    users = [{"login": "alice", "mail": "alice@corp.example"}, {"login": "bob", "mail": "bob@corp.example"}]
    assert [u["enabled"] for u in directory.effective_users(users, ["bob"])] == [True, False]


def test_service_secret_path():
    assert directory.service_secret_path("/state/", "dovecot") == "/state/secrets/ldap-dovecot"


@pytest.mark.parametrize(
    ("state_dir", "account"),
    [("relative/state", "dovecot"), ("/state", "../ca"), ("/state", "postfix\n"), ("/state\n", "postfix")],
)
def test_service_secret_path_refuses_what_could_leave_the_state_dir(state_dir, account):
    with pytest.raises(InputError):
        directory.service_secret_path(state_dir, account)
