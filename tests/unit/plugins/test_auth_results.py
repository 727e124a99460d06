from ansible_collections.zerotrust.mailstack.plugins.module_utils import auth_results

ID = "mx1.corp.example"
DKIM = ID + ";\n\tdkim=pass (2048-bit key; unprotected) header.d=outside.example header.b=AbCd"
SPF = ID + "; spf=pass smtp.mailfrom=outside.example"
DMARC = ID + "; dmarc=pass (p=reject dis=none) header.from=outside.example"
FOREIGN = "mx.outside.example; dkim=fail header.d=corp.example"


def test_three_headers_of_ours_become_one_with_every_result_in_order():
    merged = auth_results.merge([DKIM, SPF, DMARC], ID)
    assert merged == (
        ID + ";\n\tdkim=pass (2048-bit key; unprotected) header.d=outside.example header.b=AbCd"
        ";\n\tspf=pass smtp.mailfrom=outside.example;\n\tdmarc=pass (p=reject dis=none) header.from=outside.example"
    )
    # The merged header reads back as the same three results.
    assert auth_results.parse(merged) == (ID, [r for v in (DKIM, SPF, DMARC) for r in auth_results.parse(v)[1]])


def test_headers_of_other_ids_are_left_out_and_not_counted():
    assert auth_results.merge([FOREIGN, SPF], ID) is None
    merged = auth_results.merge([FOREIGN, SPF, DMARC], ID)
    assert "mx.outside.example" not in merged and "dkim=fail" not in merged
    assert auth_results.our_indexes([FOREIGN, SPF, DMARC], ID) == [2, 3]


def test_one_header_of_ours_needs_no_merge():
    assert auth_results.merge([DKIM], ID) is None
    assert auth_results.merge([], ID) is None


def test_semicolons_in_comments_and_quoted_strings_do_not_split_a_result():
    value = ID + '; dkim=pass (a; b (nested; c)) header.i="x;y"@outside.example; spf=none'
    dkim = 'dkim=pass (a; b (nested; c)) header.i="x;y"@outside.example'
    assert auth_results.parse(value) == (ID, [dkim, "spf=none"])
    assert auth_results.split_top_level(r"a (b \) ; c); d") == [r"a (b \) ; c)", " d"]


def test_none_is_no_result_and_an_empty_merge_says_none():
    assert auth_results.parse(ID + "; none") == (ID, [])
    assert auth_results.merge([ID + "; none", ID + ";\n none"], ID) == ID + ";\n\tnone"
    assert auth_results.merge([ID + "; none", SPF], ID) == ID + ";\n\tspf=pass smtp.mailfrom=outside.example"


def test_the_id_is_matched_without_case_and_may_carry_a_version_and_comments():
    assert auth_results.parse("MX1.Corp.Example 1 (our mx); spf=pass")[0] == "MX1.Corp.Example"
    assert auth_results.our_indexes(["MX1.Corp.Example 1; spf=pass", "(c) " + SPF], ID) == [1, 2]


def test_repeated_results_are_kept_once():
    assert auth_results.merge([SPF, SPF], ID) == ID + ";\n\tspf=pass smtp.mailfrom=outside.example"
