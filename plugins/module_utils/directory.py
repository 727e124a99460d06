# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mail users as the directory holds them, derived from the `mailstack_users` inventory list."""

from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import (
    InputError,
    check_email,
    check_login,
    check_text,
    records,
)

USER_KEYS = {"login", "name", "mail", "aliases", "groups", "enabled"}


def mail_users(users, path="mailstack_users"):
    """Check the user list and fill in defaults; a login or address used twice is an error."""
    logins, addresses, result = set(), {}, []
    for where, user in records(users, USER_KEYS, path):
        login = check_login(user.get("login"), where + ".login")
        if login in logins:
            raise InputError(where + ".login", "%r is declared twice" % login)
        logins.add(login)
        enabled = user.get("enabled", True)
        if not isinstance(enabled, bool):
            raise InputError(where + ".enabled", "must be a boolean")
        entry = {
            "login": login,
            "name": check_text(user.get("name") or login, where + ".name"),
            "mail": check_email(user.get("mail"), where + ".mail").lower(),
            "aliases": [check_email(a, where + ".aliases").lower() for a in user.get("aliases") or []],
            "groups": [check_login(g, where + ".groups") for g in user.get("groups") or []],
            "enabled": enabled,
        }
        for address in [entry["mail"]] + entry["aliases"]:
            if address in addresses:
                raise InputError(where, "%s already belongs to %s" % (address, addresses[address]))
            addresses[address] = login
        result.append(entry)
    return result


def user_groups(users, people_dn):
    """{group: [member DN, ...]} of the enabled users, members sorted."""
    groups = {}
    for user in mail_users(users):
        if not user["enabled"]:
            continue
        for group in user["groups"]:
            groups.setdefault(group, []).append("uid=%s,%s" % (user["login"], people_dn))
    return {name: sorted(members) for name, members in sorted(groups.items())}


def effective_users(users, revoked=()):
    """The checked users, with those revoked in the directory disabled."""
    revoked = set(revoked)
    return [dict(user, enabled=user["enabled"] and user["login"] not in revoked) for user in mail_users(users)]


def service_secret_path(state_dir, account):
    """Where the controller keeps a service account's directory password."""
    check_text(state_dir, "state_dir")
    if not state_dir.startswith("/"):
        raise InputError("state_dir", "%r is not an absolute path" % state_dir)
    check_login(account, "service account")
    return "%s/secrets/ldap-%s" % (state_dir.rstrip("/"), account)
