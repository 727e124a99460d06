# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the Trusted Domain Project milters (DKIM record value, opendkim.conf,
opendmarc.conf: one syntax); the logic is in module_utils/dkim.py."""

from ansible.errors import AnsibleFilterError
from ansible_collections.zerotrust.mailstack.plugins.module_utils import dkim
from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import InputError


def dkim_key_record(pem):
    try:
        return dkim.public_key_record(pem)
    except InputError as exc:
        raise AnsibleFilterError("zerotrust.mailstack.dkim_key_record: %s" % exc) from None


def opendkim_conf(conf):
    try:
        return dkim.render_opendkim_conf(conf)
    except InputError as exc:
        raise AnsibleFilterError("zerotrust.mailstack.opendkim_conf: %s" % exc) from None


def opendmarc_conf(conf):
    try:
        return dkim.render_opendkim_conf(conf, path="opendmarc_conf")
    except InputError as exc:
        raise AnsibleFilterError("zerotrust.mailstack.opendmarc_conf: %s" % exc) from None


class FilterModule:
    def filters(self):
        return {"dkim_key_record": dkim_key_record, "opendkim_conf": opendkim_conf, "opendmarc_conf": opendmarc_conf}
