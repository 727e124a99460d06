#!/usr/bin/python
# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: validate_inputs
short_description: Refuse malformed role inputs before any host changes
version_added: 0.1.0
description:
  - Runs on the controller. Reads the calling role's C(meta/argument_specs.yml),
    checks every variable it declares for its type, then checks every string
    inside those variables for control characters (newline, carriage return,
    NUL) and the named variables for their format (domain, host name, CIDR,
    IP address, mail address, port).
  - A failure names the variable and its path, for example
    C(dns_zones[1].name), and nothing on the host is touched.
author: zerotrust.mailstack maintainers (@zerotrust)
options:
  formats:
    description:
      - Mapping of variable path to format.
      - A path is a variable name, optionally followed by C([]) for every list
        element, C({}) for every mapping value, C({key}) for every mapping key,
        or C(.key) for a mapping key.
      - Formats are C(text), C(login), C(hostname), C(domain), C(ip), C(cidr),
        C(email), C(port), C(positive) (a whole number of at least 1),
        C(socket) (C(unix:<path>) or C(inet:<host>:<port>)) and C(table) (a Postfix
        table, C(type:name)).
    type: dict
    default: {}
  entry_point:
    description: The argument spec entry point whose options are checked.
    type: str
    default: main
  argument_spec_file:
    description:
      - Path of an argument spec file; defaults to the calling role's
        C(meta/argument_specs.yml).
    type: path
attributes:
  action:
    description: Runs on the controller as an action plugin.
    support: full
  check_mode:
    description: Changes nothing, so it runs the same in check mode.
    support: full
  diff_mode:
    description: Produces no diff.
    support: none
  platform:
    description: Runs on the controller only.
    support: full
    platforms: all
"""

EXAMPLES = r"""
- name: Validate the dns role's inputs
  zerotrust.mailstack.validate_inputs:
    formats:
      dns_zones[].name: domain
      dns_allow_recursion[]: cidr
"""

RETURN = r"""
validated:
  description: Names of the variables that were checked.
  returned: success
  type: list
  elements: str
"""
