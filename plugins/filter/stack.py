# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that derive stack facts from inventory; logic in module_utils/inventory.py."""

from ansible_collections.zerotrust.mailstack.plugins.module_utils import (
    directory,
    dmarc,
    firewall,
    inventory,
    packages,
    sshd_policy,
    systemd_sandbox,
    tlsa,
)
from ansible_collections.zerotrust.mailstack.plugins.plugin_utils.filter_errors import wrap as _wrap


class FilterModule:
    def filters(self):
        return {
            "host_records": _wrap(inventory.host_records),
            "server_sans": _wrap(inventory.server_sans),
            "host_fqdn": _wrap(inventory.host_fqdn),
            "host_addresses": _wrap(inventory.host_addresses),
            "hosts_without_address": _wrap(inventory.hosts_without_address),
            "stack_endpoint": _wrap(inventory.stack_endpoint),
            "stack_endpoints": _wrap(inventory.stack_endpoints),
            "accounts_with_login_shell": _wrap(inventory.accounts_with_login_shell),
            "tlsa_rdata": _wrap(tlsa.tlsa_rdata),
            "mail_users": _wrap(directory.mail_users),
            "effective_users": _wrap(directory.effective_users),
            "nft_rules": _wrap(firewall.nft_rules),
            "user_groups": _wrap(directory.user_groups),
            "sshd_offered": _wrap(sshd_policy.sshd_offered),
            "sshd_drift": _wrap(sshd_policy.sshd_drift),
            "missing_packages": _wrap(packages.missing_packages),
            "present_packages": _wrap(packages.present_packages),
            "systemd_sandbox": _wrap(systemd_sandbox.systemd_sandbox),
            "sender_policy_records": _wrap(dmarc.sender_policy_records),
        }
