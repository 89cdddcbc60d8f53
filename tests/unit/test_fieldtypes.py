import pytest

from shared.core.fieldtypes import InvalidValue, normalise, truncate_ip


@pytest.mark.parametrize(
    ("field_type", "raw", "stored"),
    [
        ("string", "  Jane  ", "Jane"),
        ("email", "Jane.Doe@Example.COM", "Jane.Doe@example.com"),
        ("phone", "+47 (223) 34-455", "+4722334455"),
        ("phone", "0047 22 33 44 55", "+4722334455"),
        ("phone", "(+47) 22 33 44 55", "+4722334455"),
        ("phone", "+1 (650) 253-0000", "+16502530000"),
        ("url", "https://www.contoso.example/pricing?plan=pro", "https://www.contoso.example/pricing?plan=pro"),
        ("integer", "42", 42),
        ("integer", 7, 7),
        ("number", "1.5", 1.5),
        ("boolean", "on", True),
        ("boolean", "false", False),
        ("date", "2026-02-28", "2026-02-28"),
        ("datetime", "2026-02-28T10:00:00+02:00", "2026-02-28T08:00:00Z"),
        ("datetime", "2026-02-28T10:00", "2026-02-28T10:00:00Z"),
        ("ip", "203.0.113.77", "203.0.113.0"),
        ("ip", "2001:db8:abcd:12:1::9", "2001:db8:abcd::"),
        ("ip", "::ffff:198.51.100.9", "198.51.100.0"),
    ],
)
def test_valid_values_are_normalised(field_type, raw, stored):
    assert normalise(field_type, raw) == stored


@pytest.mark.parametrize(
    ("field_type", "raw"),
    [
        ("string", {"nested": 1}),
        ("email", "not-an-address"),
        ("phone", "12345"),
        ("phone", "22 33 44 55"),  # national, and the field declares no default_region
        ("phone", "+4700000000000"),  # well-formed, but no Norwegian number
        ("phone", "+4712345678"),  # Norwegian numbers do not start with 1
        ("phone", "+47 22 33 44 55 ext. 12"),
        ("phone", "+47 22 33 44 55 +1"),
        ("phone", "1-800-FLOWERS"),
        ("url", "javascript:alert(1)"),
        ("url", "https://exa mple.com"),
        ("integer", "4.2"),
        ("integer", True),
        ("number", "nan"),
        ("number", "inf"),
        ("boolean", "maybe"),
        ("date", "2026-2-28"),
        ("date", "2026-02-30"),
        ("datetime", "yesterday"),
        ("ip", "999.1.1.1"),
        ("choice", "purple"),
    ],
)
def test_invalid_values_are_refused_without_quoting_them(field_type, raw):
    with pytest.raises(InvalidValue) as caught:
        normalise(field_type, raw, options=("red", "green"))
    assert str(raw) not in str(caught.value)


def test_max_length_applies():
    assert normalise("string", "abc", max_length=3) == "abc"
    with pytest.raises(InvalidValue, match="longer than 3"):
        normalise("string", "abcd", max_length=3)


def test_choice_accepts_declared_options_only():
    assert normalise("choice", "red", options=("red", "green")) == "red"


def test_truncated_ip_keeps_no_host_part():
    assert truncate_ip("192.0.2.255") == "192.0.2.0"
    assert truncate_ip("2001:db8:1:2:3:4:5:6") == "2001:db8:1::"


@pytest.mark.parametrize(
    ("raw", "region", "stored"),
    [
        ("22 33 44 55", "NO", "+4722334455"),
        ("412 34 567", "NO", "+4741234567"),
        ("+47 22 33 44 55", "NO", "+4722334455"),
        ("0047 22 33 44 55", "NO", "+4722334455"),
        ("+46 8 123 456 78", "NO", "+46812345678"),  # international: its own country, whatever the default
        ("020 7946 0958", "GB", "+442079460958"),
        ("(650) 253-0000", "US", "+16502530000"),
    ],
)
def test_a_phone_field_with_a_default_region_reads_national_numbers_of_that_region(raw, region, stored):
    assert normalise("phone", raw, default_region=region) == stored


@pytest.mark.parametrize(("raw", "region"), [("+4700000000000", "NO"), ("22 33 44", "NO"), ("22 33 44 55", "GB")])
def test_an_invalid_phone_number_names_the_expected_form_never_the_value(raw, region):
    with pytest.raises(InvalidValue) as caught:
        normalise("phone", raw, default_region=region)
    reason = str(caught.value)
    assert f"national for {region}" in reason and "E.164" in reason
    assert raw not in reason and raw.replace(" ", "") not in reason
