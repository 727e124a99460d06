# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Derive per-host facts of the stack (names, addresses, SANs) from inventory data."""

import ipaddress

from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import (
    InputError,
    check_domain,
    check_hostname,
    check_ip,
)

NOLOGIN_SHELLS = ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false", "/usr/bin/false")


def host_name(host, hostvars):
    """The host's short DNS name: `mailstack_hostname`, else its inventory name."""
    name = hostvars.get(host, {}).get("mailstack_hostname") or host
    return check_hostname(name, "hostvars[%s].mailstack_hostname" % host)


def host_address(host, hostvars):
    """The address peers use: `mailstack_address`, else the default IPv4 fact."""
    values = hostvars.get(host, {})
    address = values.get("mailstack_address")
    if not address:
        address = (values.get("ansible_default_ipv4") or {}).get("address")
    if not address:
        raise InputError(
            "hostvars[%s].mailstack_address" % host,
            "not set and no ansible_default_ipv4 fact gathered for this host",
        )
    return check_ip(address, "hostvars[%s].mailstack_address" % host)


def host_addresses(hosts, hostvars):
    """The address of each inventory host in `hosts` (see host_address), in order."""
    if isinstance(hosts, str) or not isinstance(hosts, (list, tuple)):
        raise InputError("hosts", "must be a list of inventory host names")
    return [host_address(host, hostvars) for host in hosts]


def hosts_without_address(hosts, hostvars):
    """The hosts in `hosts` that declare no `mailstack_address`: only their facts can say where they are."""
    if isinstance(hosts, str) or not isinstance(hosts, (list, tuple)):
        raise InputError("hosts", "must be a list of inventory host names")
    return [host for host in hosts if not hostvars.get(host, {}).get("mailstack_address")]


def host_records(hosts, hostvars):
    """A/AAAA records, relative to the zone, for each inventory host."""
    records = []
    for host in hosts:
        address = host_address(host, hostvars)
        rtype = "A" if ipaddress.ip_address(address).version == 4 else "AAAA"
        records.append({"name": host_name(host, hostvars), "type": rtype, "value": address})
    return records


def host_fqdn(host, hostvars, domain):
    """The name peers use for the host: `<mailstack_hostname or inventory name>.<domain>`."""
    check_domain(domain, "mailstack_domain")
    return "%s.%s" % (host_name(host, hostvars), domain)


# The contract between roles: which inventory group provides a service, and how a
# consumer addresses it. A provider's port may be overridden in its inventory vars
# (e.g. dovecot_lmtp_port); the constant is the providing role's default, and a
# unit test keeps the two in step.
LMTP_PORT = 24
ENDPOINTS = {
    "ldap": ("ldap", lambda fqdn, values: "ldaps://%s" % fqdn),
    "lmtp": ("imap", lambda fqdn, values: "lmtp:inet:%s:%s" % (fqdn, values.get("dovecot_lmtp_port", LMTP_PORT))),
    "mx": ("mx", lambda fqdn, values: fqdn),
    "content_filter": ("filter", lambda fqdn, values: fqdn),
}


def stack_endpoints(service, groups, hostvars, domain):
    """How consumers reach `service` (ldap, lmtp, mx): one entry per host of the
    providing inventory group, in inventory order; empty when the group has no host."""
    if service not in ENDPOINTS:
        raise InputError("service", "%r is not one of %s" % (service, ", ".join(sorted(ENDPOINTS))))
    group, render = ENDPOINTS[service]
    return [render(host_fqdn(host, hostvars, domain), hostvars.get(host, {})) for host in groups.get(group, [])]


def stack_endpoint(service, groups, hostvars, domain):
    """The first of stack_endpoints (services a consumer names once), or '' when none."""
    endpoints = stack_endpoints(service, groups, hostvars, domain)
    return endpoints[0] if endpoints else ""


def server_sans(host, hostvars, domain, extra=()):
    """subjectAltName entries under which the host's peers reach it."""
    check_domain(domain, "mailstack_domain")
    short = host_name(host, hostvars)
    names = ["%s.%s" % (short, domain), short]
    for index, name in enumerate(extra):
        names.append(check_hostname(name, "pki_extra_sans[%d]" % index))
    sans = ["DNS:%s" % name for name in dict.fromkeys(names)]
    sans.append("IP:%s" % host_address(host, hostvars))
    return sans


def accounts_with_login_shell(passwd, exempt=("root",), max_uid=999):
    """System accounts (uid < 1000, not exempt) whose shell still allows a login.

    `passwd` is the `getent passwd` fact: name -> [pw, uid, gid, gecos, home, shell].
    """
    found = []
    for name, fields in sorted(passwd.items()):
        if name in exempt or len(fields) < 6:
            continue
        uid, shell = int(fields[1]), fields[5]
        if uid <= max_uid and shell and shell not in NOLOGIN_SHELLS:
            found.append(name)
    return found
