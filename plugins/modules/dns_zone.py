#!/usr/bin/python
# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: dns_zone
short_description: Write a validated DNS zone file with a stable SOA serial
version_added: 0.1.0
description:
  - Renders a zone file from a list of records. Every owner name, type and
    record datum is validated; a newline, a bad address or an unknown type is
    an error naming the record and nothing is written.
  - The SOA serial (C(YYYYMMDDnn)) is raised only when the records change, so
    an unchanged zone is left untouched.
  - The new file is checked with C(named-checkzone) when that tool exists,
    then moved into place atomically.
author: zerotrust.mailstack maintainers (@zerotrust)
options:
  path:
    description: Zone file to write.
    type: path
    required: true
  zone:
    description: Zone apex, for example C(corp.example).
    type: str
    required: true
  records:
    description:
      - Records, each a mapping with C(name) (C(@), a relative or an absolute
        owner name), C(type), C(value) and optionally C(ttl).
    type: list
    elements: dict
    default: []
  primary_ns:
    description: Host name put in the SOA MNAME field.
    type: str
    required: true
  hostmaster:
    description: Mail address of the zone's administrator (SOA RNAME).
    type: str
    required: true
  ttl:
    description: Default TTL of the zone in seconds.
    type: int
    default: 3600
  checkzone:
    description: Check the rendered file with C(named-checkzone) before moving it into place.
    type: bool
    default: true
extends_documentation_fragment:
  - ansible.builtin.files
attributes:
  check_mode:
    description: Reports whether the zone would change without writing it.
    support: full
  diff_mode:
    description: Shows the zone file before and after.
    support: full
  platform:
    description: Targets POSIX hosts.
    support: full
    platforms: posix
"""

EXAMPLES = r"""
- name: Publish the corp.example zone
  zerotrust.mailstack.dns_zone:
    path: /var/lib/bind/corp.example.zone
    zone: corp.example
    primary_ns: dns.corp.example.
    hostmaster: hostmaster@corp.example
    records:
      - {name: "@", type: MX, value: "10 mx.corp.example."}
      - {name: mx, type: A, value: 192.0.2.25}
    owner: bind
    group: bind
    mode: "0640"
"""

RETURN = r"""
serial:
  description: SOA serial of the zone file after the task.
  returned: success
  type: int
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.zerotrust.mailstack.plugins.module_utils.file_output import (
    UnsafeTarget,
    exit_with_file_attributes,
    read_existing,
    write_atomically,
)
from ansible_collections.zerotrust.mailstack.plugins.module_utils.dns_zone import (
    parse_serial,
    plan_zone,
    render_zone,
)
from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import (
    InputError,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            zone=dict(type="str", required=True),
            records=dict(type="list", elements="dict", default=[]),
            primary_ns=dict(type="str", required=True),
            hostmaster=dict(type="str", required=True),
            ttl=dict(type="int", default=3600),
            checkzone=dict(type="bool", default=True),
        ),
        add_file_common_args=True,
        supports_check_mode=True,
    )
    params = module.params
    path = params["path"]
    try:
        existing = read_existing(path)
    except (UnsafeTarget, OSError, UnicodeDecodeError) as exc:
        module.fail_json(msg="cannot read the zone file: %s" % exc)
    try:
        template = render_zone(
            params["zone"], params["records"], params["primary_ns"], params["hostmaster"], params["ttl"]
        )
    except InputError as exc:
        module.fail_json(msg="invalid zone data: %s" % exc)
    text, changed = plan_zone(existing, template, time.strftime("%Y%m%d", time.gmtime()))
    result = dict(changed=changed, serial=parse_serial(text), path=path)
    if changed:
        result["diff"] = dict(before=existing or "", after=text, before_header=path, after_header=path)

    if changed and not module.check_mode:
        checker = module.get_bin_path("named-checkzone") if params["checkzone"] else None

        def checkzone(candidate):
            if not checker:
                return None
            rc, out, err = module.run_command([checker, params["zone"], candidate])
            return None if rc == 0 else dict(msg="named-checkzone refused the zone", stdout=out, stderr=err)

        write_atomically(module, path, text, checkzone)

    exit_with_file_attributes(module, path, result)


if __name__ == "__main__":
    main()
