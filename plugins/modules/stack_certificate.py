#!/usr/bin/python
# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: stack_certificate
short_description: Issue a stack certificate from the controller's data, taking only the key from the request
version_added: 0.1.0
description:
  - Signs a certificate with the stack CA for the public key of a certificate
    signing request. The request's self-signature must verify (proof that its
    sender holds the private key); its subject and extensions are never read.
  - The certificate's subject, names and purposes are the module's options,
    which the pki role takes from inventory. It always says C(CA:FALSE),
    key usage C(digitalSignature), and carries no other extension than
    subjectAltName, extendedKeyUsage and the key identifiers.
  - Names outside the CA's name constraints are refused before anything is signed.
  - The existing certificate at I(path) is kept while it is issued by this CA
    for the request's key with exactly these names and purposes and does not
    expire within I(renew_days); otherwise a new one is written atomically.
  - "Runs where the CA key is: on the controller (C(delegate_to: localhost))."
author: zerotrust.mailstack maintainers (@zerotrust)
requirements:
  - cryptography >= 38 (on the controller)
options:
  path:
    description: Certificate file on the controller; read to decide whether to keep it, written when issued.
    type: path
    required: true
  csr_content:
    description: The request in PEM form (for example slurped from the host). Mutually exclusive with I(csr_path).
    type: str
  csr_path:
    description: File holding the request in PEM form. Mutually exclusive with I(csr_content).
    type: path
  ca_cert_path:
    description: The stack CA certificate.
    type: path
    required: true
  ca_key_path:
    description: The stack CA private key (unencrypted, readable by the controller user only).
    type: path
    required: true
  common_name:
    description: Subject common name of the certificate.
    type: str
    required: true
  subject_alt_name:
    description:
      - Names of the holder, each C(DNS:<name>), C(IP:<address>) or C(email:<address>).
      - Exactly these are issued, whatever the request names.
    type: list
    elements: str
    required: true
  extended_key_usage:
    description: Purposes of the certificate; exactly these are issued.
    type: list
    elements: str
    choices: [serverAuth, clientAuth]
    required: true
  days:
    description: Validity of a new certificate in days (never beyond the CA's own).
    type: int
    default: 365
  renew_days:
    description: Issue a new certificate when the existing one expires within this many days.
    type: int
    default: 30
extends_documentation_fragment:
  - ansible.builtin.files
attributes:
  check_mode:
    description: Decides and reports whether a certificate would be issued, without writing it.
    support: full
  diff_mode:
    description: Shows subject, names, purposes, CA flag, expiry and key fingerprint before and after.
    support: full
  platform:
    description: Runs on the controller, where the CA key is.
    support: full
    platforms: posix
seealso:
  - module: community.crypto.openssl_csr
"""

EXAMPLES = r"""
- name: Issue the host certificate from inventory data
  zerotrust.mailstack.stack_certificate:
    path: "{{ pki_ca_dir }}/hosts/{{ inventory_hostname }}.pem"
    csr_content: "{{ csr.content | b64decode }}"
    ca_cert_path: "{{ pki_ca_dir }}/ca.pem"
    ca_key_path: "{{ pki_ca_dir }}/ca.key"
    common_name: mx.corp.example
    subject_alt_name: [DNS:mx.corp.example, DNS:mta-sts.corp.example, IP:192.0.2.25]
    extended_key_usage: [serverAuth]
    days: 365
    renew_days: 30
    mode: "0644"
  delegate_to: localhost
  become: false
"""

RETURN = r"""
certificate:
  description: The certificate in PEM form after the task (the kept or the new one).
  returned: success
  type: str
serial:
  description: Serial number of that certificate, in hexadecimal.
  returned: success
  type: str
not_after:
  description: Expiry of that certificate (ISO 8601, UTC).
  returned: success
  type: str
reasons:
  description: Why a new certificate was issued; empty when the existing one was kept.
  returned: success
  type: list
  elements: str
  sample: ["names ['DNS:ldap.corp.example'], wanted ['DNS:dns.corp.example']"]
"""

import datetime

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.zerotrust.mailstack.plugins.module_utils.file_output import (
    exit_with_file_attributes,
    write_atomically,
)

from ansible_collections.zerotrust.mailstack.plugins.module_utils import pki_issue


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def _required(module, path, what):
    data = _read(path)
    if data is None:
        module.fail_json(msg="cannot read %s %s" % (what, path))
    return data


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            csr_content=dict(type="str"),
            csr_path=dict(type="path"),
            ca_cert_path=dict(type="path", required=True),
            ca_key_path=dict(type="path", required=True, no_log=False),
            common_name=dict(type="str", required=True),
            subject_alt_name=dict(type="list", elements="str", required=True),
            extended_key_usage=dict(type="list", elements="str", required=True, choices=["serverAuth", "clientAuth"]),
            days=dict(type="int", default=365),
            renew_days=dict(type="int", default=30),
        ),
        mutually_exclusive=[("csr_content", "csr_path")],
        required_one_of=[("csr_content", "csr_path")],
        add_file_common_args=True,
        supports_check_mode=True,
    )
    if pki_issue.IMPORT_ERROR:
        module.fail_json(msg="the cryptography library is needed on the controller: %s" % pki_issue.IMPORT_ERROR)
    params = module.params
    path = params["path"]
    if params["days"] < 1 or params["renew_days"] < 0:
        module.fail_json(msg="days must be at least 1 and renew_days not negative")
    csr = (
        params["csr_content"].encode()
        if params["csr_content"]
        else _required(module, params["csr_path"], "the request")
    )
    existing = _read(path)
    try:
        wanted = pki_issue.Wanted(params["common_name"], params["subject_alt_name"], params["extended_key_usage"])
        cert, reasons = pki_issue.plan(
            existing,
            csr,
            _required(module, params["ca_cert_path"], "the CA certificate"),
            _required(module, params["ca_key_path"], "the CA key"),
            wanted,
            params["days"],
            params["renew_days"],
            datetime.datetime.now(datetime.UTC),
        )
    except pki_issue.PkiError as exc:
        module.fail_json(msg="%s: %s" % (path, exc))

    pem = pki_issue.to_pem(cert)
    changed = bool(reasons)
    result = dict(
        changed=changed,
        path=path,
        certificate=pem,
        serial="%x" % cert.serial_number,
        not_after=pki_issue.not_after(cert).isoformat(),
        reasons=reasons,
    )
    if changed:
        result["diff"] = dict(
            before=pki_issue.summary(pki_issue.load_certificate(existing)),
            after=pki_issue.summary(cert),
            before_header=path,
            after_header=path,
        )

    if changed and not module.check_mode:
        write_atomically(module, path, pem)

    exit_with_file_attributes(module, path, result)


if __name__ == "__main__":
    main()
