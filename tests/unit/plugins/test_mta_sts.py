import hashlib
import re

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.zerotrust.mailstack.plugins.filter.mta_sts import (
    FilterModule,
    mta_sts_policy,
    mta_sts_records,
)
from ansible_collections.zerotrust.mailstack.plugins.module_utils import dns_zone, mta_sts
from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import InputError

MX = ["mx1.corp.example", "*.mx.corp.example"]
POLICY = mta_sts.policy_text("enforce", MX, 604800)
ID = re.compile(r"[A-Za-z0-9]{1,32}")


def test_policy_is_rfc_shaped():
    assert POLICY == (
        "version: STSv1\r\nmode: enforce\r\nmx: mx1.corp.example\r\nmx: *.mx.corp.example\r\nmax_age: 604800\r\n"
    )
    # Every line ends with CRLF; no bare LF or CR anywhere.
    assert POLICY.count("\r\n") == POLICY.count("\n") == POLICY.count("\r") == 5


def test_mx_keep_their_order_and_are_lower_cased():
    text = mta_sts.policy_text("testing", ["MX2.Corp.Example", "*.Backup.Example", "mx1.corp.example"], 86400)
    assert text.splitlines() == [
        "version: STSv1",
        "mode: testing",
        "mx: mx2.corp.example",
        "mx: *.backup.example",
        "mx: mx1.corp.example",
        "max_age: 86400",
    ]


@pytest.mark.parametrize("mode", ["enforce", "testing", "none"])
def test_modes(mode):
    assert mta_sts.policy_text(mode, MX, 86400).splitlines()[1] == "mode: %s" % mode


@pytest.mark.parametrize("mode", ["Enforce", "ENFORCE", "off", "", "enforce ", None, 1, True])
def test_refuses_other_modes(mode):
    with pytest.raises(InputError) as err:
        mta_sts.policy_text(mode, MX, 86400)
    assert err.value.path == "mta_sts_mode"


@pytest.mark.parametrize("pattern", ["*.corp.example", "*.mx.corp.example", "mx.corp.example", "MX-1.corp.example"])
def test_accepts_host_names_and_leftmost_wildcards(pattern):
    assert "mx: %s\r\n" % pattern.lower() in mta_sts.policy_text("enforce", [pattern], 86400)


@pytest.mark.parametrize(
    "pattern",
    [
        "mx.*.example",
        "*",
        "*.",
        "**.a.example",
        "a*.b.example",
        "*a.b.example",
        "*.*.b.example",
        "mx.corp.example.",
        "*.example",
        "mx",
        "",
        "mx corp.example",
        "mx_1.corp.example",
        "-mx.corp.example",
        None,
        3,
        ["mx.corp.example"],
    ],
)
def test_refuses_bad_mx_patterns(pattern):
    with pytest.raises(InputError) as err:
        mta_sts.policy_text("enforce", ["mx1.corp.example", pattern], 86400)
    assert err.value.path == "mta_sts_mx[1]"


def test_refuses_duplicate_mx_also_after_lower_casing():
    for second in ("mx1.corp.example", "MX1.corp.example"):
        with pytest.raises(InputError, match="twice") as err:
            mta_sts.policy_text("enforce", ["mx1.corp.example", second], 86400)
        assert err.value.path == "mta_sts_mx[1]"


def test_empty_mx_only_with_mode_none():
    assert mta_sts.policy_text("none", [], 86400) == "version: STSv1\r\nmode: none\r\nmax_age: 86400\r\n"
    for mode in ("enforce", "testing"):
        with pytest.raises(InputError, match="at least one") as err:
            mta_sts.policy_text(mode, [], 86400)
        assert err.value.path == "mta_sts_mx"


@pytest.mark.parametrize("mx", ["mx.corp.example", None, {"mx.corp.example": 1}])
def test_mx_must_be_a_list(mx):
    with pytest.raises(InputError, match="list") as err:
        mta_sts.policy_text("enforce", mx, 86400)
    assert err.value.path == "mta_sts_mx"


@pytest.mark.parametrize("max_age", [0, 1, 86400, 31557600])
def test_max_age_bounds_accepted(max_age):
    assert mta_sts.policy_text("enforce", MX, max_age).endswith("\r\nmax_age: %d\r\n" % max_age)


@pytest.mark.parametrize("max_age", [-1, 31557601, True, False, "86400", 86400.0, None])
def test_max_age_refused(max_age):
    with pytest.raises(InputError, match="whole number") as err:
        mta_sts.policy_text("enforce", MX, max_age)
    assert err.value.path == "mta_sts_max_age"


@pytest.mark.parametrize("bad", ["\n", "\r", "\r\n", "\x00", "\x1b", "\x7f"])
def test_policy_refuses_control_characters_in_every_field(bad):
    cases = [
        (("enforce" + bad, MX, 86400), "mta_sts_mode"),
        (("enforce", ["mx1.corp.example" + bad + "mx: *"], 86400), "mta_sts_mx[0]"),
        (("enforce", ["mx1.corp.example", bad + "mx2.corp.example"], 86400), "mta_sts_mx[1]"),
        (("enforce", MX, "86400" + bad), "mta_sts_max_age"),
    ]
    for args, path in cases:
        with pytest.raises(InputError) as err:
            mta_sts.policy_text(*args)
        assert err.value.path == path
        assert str(err.value).startswith(path + ": ")


def test_path_prefix_is_configurable():
    with pytest.raises(InputError) as err:
        mta_sts.policy_text("enforce", ["mx1.corp.example", "mx.*.example"], 86400, path="stack_mta_sts")
    assert err.value.path == "stack_mta_sts_mx[1]"


def test_policy_id_is_short_sha256_and_rfc_shaped():
    policy_id = mta_sts.policy_id(POLICY)
    assert policy_id == hashlib.sha256(POLICY.encode()).hexdigest()[:20]
    assert ID.fullmatch(policy_id)
    assert ID.fullmatch(mta_sts.policy_id(""))


def test_policy_id_changes_exactly_when_the_policy_changes():
    same = mta_sts.policy_text("enforce", list(MX), 604800)
    assert mta_sts.policy_id(same) == mta_sts.policy_id(POLICY)
    changed = [
        mta_sts.policy_text("enforce", MX + ["mx3.corp.example"], 604800),
        mta_sts.policy_text("enforce", MX[:1], 604800),
        mta_sts.policy_text("enforce", list(reversed(MX)), 604800),
        mta_sts.policy_text("testing", MX, 604800),
        mta_sts.policy_text("enforce", MX, 604801),
    ]
    ids = {mta_sts.policy_id(text) for text in changed}
    assert len(ids) == len(changed)
    assert mta_sts.policy_id(POLICY) not in ids


@pytest.mark.parametrize("text", [None, b"version: STSv1\r\n", ["version: STSv1"]])
def test_policy_id_needs_text(text):
    with pytest.raises(InputError, match="policy text"):
        mta_sts.policy_id(text)


def test_records_without_rua():
    expected = [
        {"name": "_mta-sts", "type": "TXT", "value": "v=STSv1; id=%s" % mta_sts.policy_id(POLICY)},
        {"name": "mta-sts", "type": "CNAME", "value": "web.corp.example."},
    ]
    assert mta_sts.records("corp.example", POLICY, "web.corp.example", []) == expected
    assert mta_sts.records("corp.example", POLICY, "web.corp.example.", None) == expected


def test_records_with_rua():
    rua = ["mailto:tlsrpt@corp.example", "https://reports.example.net/v1/tls-rpt%2Cin", "mailto:a+tls@b.example"]
    records = mta_sts.records("corp.example", POLICY, "web.corp.example", rua)
    assert records[2] == {
        "name": "_smtp._tls",
        "type": "TXT",
        "value": "v=TLSRPTv1; rua=mailto:tlsrpt@corp.example,https://reports.example.net/v1/tls-rpt%2Cin,"
        "mailto:a+tls@b.example",
    }
    assert [record["name"] for record in records] == ["_mta-sts", "mta-sts", "_smtp._tls"]
    assert mta_sts.records("corp.example", POLICY, "web.corp.example", ["https://r.example"])[2]["value"] == (
        "v=TLSRPTv1; rua=https://r.example"
    )


@pytest.mark.parametrize(
    "uri",
    [
        "mailto:not an address",
        "http://x",
        "http://reports.example.net/tls",
        "mailto:a@b.example,mailto:c@d.example",
        "https://a.example/x;y",
        "https://a.example/x,y",
        "https://a.example/x y",
        "https://a.example:8443/x",
        "https://a.example/x?y=1",
        "https://a.example/%zz",
        "https://x",
        "https://",
        "mailto:a!10m@b.example",
        "mailto:a@b.example!10m",
        "mailto:a@b.example; v=x",
        "mailto:a@b",
        "mailto:.a@b.example",
        "mailto:a..b@b.example",
        'mailto:"a"@b.example',
        "mailto:a@b.example?subject=x",
        "tlsrpt@corp.example",
        "MAILTO:a@b.example",
        "mailto:a@b.example\n",
        "https://a.example/\x00",
        "",
        None,
        ["mailto:a@b.example"],
    ],
)
def test_refuses_bad_rua(uri):
    with pytest.raises(InputError) as err:
        mta_sts.records("corp.example", POLICY, "web.corp.example", ["mailto:ok@corp.example", uri])
    assert err.value.path == "mta_sts_tlsrpt_rua[1]"


def test_refuses_rua_that_is_not_a_list_or_repeats():
    with pytest.raises(InputError, match="list") as err:
        mta_sts.records("corp.example", POLICY, "web.corp.example", "mailto:a@b.example")
    assert err.value.path == "mta_sts_tlsrpt_rua"
    with pytest.raises(InputError, match="twice") as err:
        mta_sts.records("corp.example", POLICY, "web.corp.example", ["mailto:a@b.example", "mailto:a@b.example"])
    assert err.value.path == "mta_sts_tlsrpt_rua[1]"


@pytest.mark.parametrize(
    "args, path",
    [
        (("corp.example\n", POLICY, "web.corp.example", []), "mta_sts_domain"),
        (("corp\x00.example", POLICY, "web.corp.example", []), "mta_sts_domain"),
        (("corp", POLICY, "web.corp.example", []), "mta_sts_domain"),
        (("*.corp.example", POLICY, "web.corp.example", []), "mta_sts_domain"),
        ((None, POLICY, "web.corp.example", []), "mta_sts_domain"),
        (("corp.example", POLICY, "web.corp.example\n", []), "mta_sts_policy_host"),
        (("corp.example", POLICY, "web.corp.example\r\nevil IN A 192.0.2.1", []), "mta_sts_policy_host"),
        (("corp.example", POLICY, "web", []), "mta_sts_policy_host"),
        (("corp.example", POLICY, "web corp.example", []), "mta_sts_policy_host"),
        (("corp.example", POLICY, None, []), "mta_sts_policy_host"),
        (("corp.example", "enforce", "web.corp.example", []), "mta_sts_policy"),
        (("corp.example", mta_sts.policy_id(POLICY), "web.corp.example", []), "mta_sts_policy"),
        (("corp.example", None, "web.corp.example", []), "mta_sts_policy"),
        (("corp.example", POLICY, "web.corp.example", ["mailto:a@b.example\r\n"]), "mta_sts_tlsrpt_rua[0]"),
        (("corp.example", POLICY, "web.corp.example", ["https://a.example/\x00"]), "mta_sts_tlsrpt_rua[0]"),
    ],
)
def test_records_refuse_bad_input_naming_the_path(args, path):
    with pytest.raises(InputError) as err:
        mta_sts.records(*args)
    assert err.value.path == path


def test_zone_module_accepts_every_record():
    rua = ["mailto:tlsrpt@corp.example", "https://reports.example.net/v1/tls-rpt"]
    records = mta_sts.records("corp.example", POLICY, "web.corp.example", rua)
    assert len(records) == 3
    for index, record in enumerate(records):
        rdata = dns_zone.format_rdata(record["type"], record["value"], "records[%d].value" % index)
        if record["type"] == "TXT":
            assert rdata == '"%s"' % record["value"]
        else:
            assert rdata == record["value"]
    # The whole set also passes the zone module's record check (owner names included).
    normalized = dns_zone.normalize_records(records)
    assert {(owner, rtype) for owner, _ttl, rtype, _rdata in normalized} == {
        ("_mta-sts", "TXT"),
        ("mta-sts", "CNAME"),
        ("_smtp._tls", "TXT"),
    }


def test_filters_raise_ansible_errors_naming_the_filter():
    assert set(FilterModule().filters()) == {"mta_sts_policy", "mta_sts_records"}
    assert mta_sts_policy("enforce", MX, 604800) == POLICY
    assert mta_sts_records("corp.example", POLICY, "web.corp.example", []) == mta_sts.records(
        "corp.example", POLICY, "web.corp.example", []
    )
    with pytest.raises(AnsibleFilterError, match=r"^zerotrust\.mailstack\.mta_sts_policy: mta_sts_mx\[1\]: "):
        mta_sts_policy("enforce", ["mx1.corp.example", "mx.*.example"], 604800)
    with pytest.raises(AnsibleFilterError, match=r"^zerotrust\.mailstack\.mta_sts_records: mta_sts_tlsrpt_rua\[0\]: "):
        mta_sts_records("corp.example", POLICY, "web.corp.example", ["http://x"])
