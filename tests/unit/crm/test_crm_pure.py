"""Tier 1: the CRM's pure parts (numbers, PIN rule, CSV rows, mapping, URLs, signing)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from pydantic import ValidationError

from callcenter.clock import ManualClock
from callcenter.crm.csv_import import parse_csv, validate_row
from callcenter.crm.http import TtlCache, map_contact, render_url
from callcenter.crm.model import (
    Contact,
    PinPolicy,
    PinState,
    PinStatus,
    normalize_number,
    number_variants,
    pin_attempt,
)
from callcenter.crm.settings import CrmSettings, HttpCrmSettings, WebhookEndpoint
from callcenter.crm.webhooks import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    build_signed,
    verify,
)
from callcenter.errors import ConfigError, ProtocolError

SEED = Path(__file__).parents[3] / "ivr_scripts" / "fixtures" / "contacts.csv"
HEADER = "id,name,company,phones,email,language,vip,account,pin,notes\n"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


# --- phone numbers ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0612345678", "0612345678"),
        ("06 12 34 56 78", "0612345678"),
        ("06.12.34.56.78", "0612345678"),
        ("+33 6 12 34 56 78", "0612345678"),
        ("+33 (0)6 12 34 56 78", "0612345678"),
        ("0033612345678", "0612345678"),
        ("+44 20 7946 0958", "00442079460958"),
        ("3901", "3901"),
        ("", None),
        ("anonymous", None),
        ("0612<script>", None),
        ("06123456789012345678901", None),  # more than 20 digits
        ("٠٦١٢٣٤٥٦٧٨", None),  # Arabic-Indic digits are digits to str.isdigit
        ("+", None),
        ("0612345678;DROP", None),
    ],
)
def test_numbers_are_normalised_to_national_digits(raw: str, expected: str | None) -> None:
    assert normalize_number(raw) == expected


def test_variants_cover_the_spellings_of_a_caller_id() -> None:
    assert number_variants("0612345678") == [
        "0612345678",
        "+33612345678",
        "0033612345678",
        "33612345678",
    ]
    assert number_variants("00442079460958") == ["00442079460958", "+442079460958"]


# --- PIN attempts -----------------------------------------------------------------


def test_the_third_wrong_pin_locks_and_a_locked_account_refuses_the_right_pin() -> None:
    policy = PinPolicy(max_failures=3, lockout=timedelta(minutes=30))
    state = PinState()
    status, state = pin_attempt(state, False, T0, policy)
    assert (status, state) == (PinStatus.WRONG, PinState(1, None))
    status, state = pin_attempt(state, False, T0, policy)
    assert (status, state.failures) == (PinStatus.WRONG, 2)
    status, state = pin_attempt(state, False, T0, policy)
    assert status is PinStatus.LOCKED
    assert state == PinState(3, T0 + timedelta(minutes=30))
    # Locked: the PIN is not even looked at, nothing changes.
    status, after = pin_attempt(state, None, T0 + timedelta(minutes=29), policy)
    assert (status, after) == (PinStatus.LOCKED, state)


def test_an_expired_lock_starts_the_count_again_and_a_right_pin_clears_it() -> None:
    policy = PinPolicy(max_failures=3, lockout=timedelta(minutes=30))
    locked = PinState(3, T0)
    later = T0 + timedelta(seconds=1)
    status, state = pin_attempt(locked, False, later, policy)
    assert (status, state) == (PinStatus.WRONG, PinState(1, None))
    status, state = pin_attempt(PinState(2, None), True, later, policy)
    assert (status, state) == (PinStatus.OK, PinState())


# --- CSV rows ---------------------------------------------------------------------

GOOD = {
    "id": "C001",
    "name": "Mme Claire Martin",
    "company": "",
    "phones": "0612345678; +33 1 45 67 89 01",
    "email": "claire.martin@example.fr",
    "language": "FR",
    "vip": "oui",
    "account": "12345678",
    "pin": "4567",
    "notes": "line one\nline two",
}


def test_a_good_row_becomes_a_contact() -> None:
    item, problems = validate_row(GOOD)
    assert problems == []
    assert item is not None
    assert item.contact == Contact(
        id="C001",
        name="Mme Claire Martin",
        phones=("0612345678", "0145678901"),
        email="claire.martin@example.fr",
        language="fr",
        vip=True,
        account="12345678",
        notes="line one\nline two",
    )
    assert item.pin == "4567"
    assert item.locked is False


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("id", "", "is not an id"),
        ("id", "C 001", "is not an id"),
        ("name", "  ", "missing"),
        ("name", "x" * 201, "longer than 200"),
        ("name", "Mme\x1b[2J Martin", "control characters"),
        ("company", "ACME\nInc", "control characters"),
        ("phones", "0612345678;06-CALL-ME", "'06-CALL-ME' is not a phone number"),
        ("email", "claire.martin@", "is not an e-mail address"),
        ("language", "french", "two-letter language code"),
        ("vip", "maybe", "is not yes/no"),
        ("account", "12-34", "is not an account number"),
        ("pin", "45", "must be 4 to 12 digits"),
        ("pin", "45a7", "must be 4 to 12 digits"),
    ],
)
def test_each_bad_column_is_named(column: str, value: str, message: str) -> None:
    item, problems = validate_row({**GOOD, column: value})
    assert item is None
    assert len(problems) == 1, problems
    assert problems[0][0] == column
    assert message in problems[0][1]


def test_a_pin_needs_an_account_and_is_never_echoed() -> None:
    _, problems = validate_row({**GOOD, "account": "", "pin": "98x76"})
    assert [c for c, _ in problems] == ["pin", "pin"]
    assert all("98x76" not in m for _, m in problems)


def test_a_file_reports_every_problem_with_its_line_and_keeps_nothing_on_error() -> None:
    text = (
        "\ufeff" + HEADER + "C001,Mme Martin,,0612345678,,fr,oui,12345678,4567,\n"
        'C002,M. Smith,,06 98 76 54 32,,en,non,87654321,1234,"a note\non two lines"\n'
        "C003,,,,,fr,non,,,\n"  # line 5: no name
        "\n"
        "C001,Double,,,,fr,non,,,\n"  # line 7: id again
        "C004,Shared,,0612345678,,fr,non,87654321,,\n"  # line 8: account again
        "C005,Too,few\n"  # line 9
    )
    parsed = parse_csv(text, "contacts.csv")
    assert [str(e) for e in parsed.errors] == [
        "contacts.csv:5: name: missing",
        "contacts.csv:7: id: C001 already on line 2",
        "contacts.csv:8: account: 87654321 already on line 3",
        "contacts.csv:9: expected 10 fields, found 3",
    ]
    assert [c.contact.id for c in parsed.contacts] == ["C001", "C002"]


def test_a_shared_phone_is_a_warning() -> None:
    text = HEADER + "C001,A,,0612345678,,,,,,\nC002,B,,+33612345678,,,,,,\n"
    parsed = parse_csv(text, "f.csv")
    assert parsed.errors == []
    assert [str(w) for w in parsed.warnings] == [
        "f.csv:3: phones: 0612345678 also on line 2: it will identify nobody"
    ]


def test_header_problems_stop_before_the_rows() -> None:
    parsed = parse_csv("id,name,phones,colour\nC1,A,,red\n", "f.csv")
    assert [str(e) for e in parsed.errors] == [
        "f.csv:1: missing column(s): company, email, language, vip, account, pin, notes",
        "f.csv:1: unknown column(s): colour",
    ]
    assert parse_csv("", "f.csv").errors[0].message.startswith("empty file")


def test_optional_locked_and_data_columns() -> None:
    text = HEADER.strip() + ",locked,data.segment\nC3,Durand,,,,fr,non,11112222,0000,,oui,pro\n"
    parsed = parse_csv(text)
    assert parsed.errors == []
    (item,) = parsed.contacts
    assert item.locked is True
    assert item.contact.data == {"segment": "pro"}


def test_the_seed_file_is_valid_and_matches_the_ivr_fixture() -> None:
    parsed = parse_csv(SEED.read_text(encoding="utf-8"), str(SEED))
    assert parsed.errors == []
    assert parsed.warnings == []
    by_id = {c.contact.id: c for c in parsed.contacts}
    fixture = json.loads((SEED.parent / "crm.json").read_text(encoding="utf-8"))
    for customer in fixture["customers"]:
        item = by_id[customer["id"]]
        assert item.contact.name == customer["name"]
        assert item.contact.account == customer["account"]
        assert item.pin == customer["pin"]
        assert item.contact.vip == customer["vip"]
        assert item.locked == bool(customer.get("locked"))
        assert set(item.contact.phones) == {normalize_number(a) for a in customer["ani"]}
    assert len(parsed.contacts) >= 6
    assert {c.contact.language for c in parsed.contacts} == {"fr", "en"}


# --- external CRM answers ---------------------------------------------------------


def test_field_map_reads_nested_answers_and_search_results() -> None:
    answer = {
        "results": [
            {
                "uid": 42,
                "display_name": "Mme Claire Martin",
                "org": {"name": "ACME"},
                "contact": {"phones": [{"number": "+33 6 12 34 56 78"}, "bogus", "0145678901"]},
                "flags": {"vip": "yes"},
                "lang": "FR",
                "tier": "gold",
            }
        ]
    }
    field_map = {
        "id": "uid",
        "name": "display_name",
        "company": "org.name",
        "phones": "contact.phones",
        "vip": "flags.vip",
        "language": "lang",
        "data.segment": "tier",
    }
    contact = map_contact(answer, field_map, results_path="results")
    assert contact == Contact(
        id="42",
        name="Mme Claire Martin",
        company="ACME",
        phones=("0612345678", "0145678901"),
        language="fr",
        vip=True,
        data={"segment": "gold"},
    )
    assert map_contact({"results": []}, field_map, results_path="results") is None
    assert map_contact({"results": None}, field_map, results_path="results") is None


@pytest.mark.parametrize(
    "answer",
    [
        {"name": "no id"},
        {"id": "C1"},
        {"id": "C1", "name": {"first": "Claire"}},
        {"id": True, "name": "x"},
        ["not", "objects"],
        "a string",
    ],
)
def test_unusable_answers_are_protocol_errors(answer: object) -> None:
    with pytest.raises(ProtocolError):
        map_contact(answer, {})


# --- URL templates ------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "../../admin?debug=1#x",
        "0612345678&phone=0000000000",
        "%2e%2e/secret",
        "a b+c",
        "Élodie/€",
        "{number}",
        "\r\nX-Injected: 1",
    ],
)
def test_hostile_values_stay_inside_their_query_parameter(value: str) -> None:
    url = render_url("https://crm.example/api/contacts?phone={number}&v=2", number=value)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path, parts.fragment) == (
        "https",
        "crm.example",
        "/api/contacts",
        "",
    )
    assert parse_qs(parts.query) == {"phone": [value], "v": ["2"]}
    assert "\r" not in url
    assert "\n" not in url
    assert " " not in url


def test_a_hostile_value_in_the_path_stays_one_segment() -> None:
    url = render_url("https://crm.example/api/accounts/{account}/card", account="../../admin")
    assert urlsplit(url).path == "/api/accounts/..%2F..%2Fadmin/card"
    assert unquote(urlsplit(url).path.split("/")[3]) == "../../admin"


@pytest.mark.parametrize(
    "template",
    [
        "https://crm.example/?q={number.__class__}",
        "https://crm.example/?q={number!r}",
        "https://crm.example/?q={number:>30}",
        "https://crm.example/?q={secret}",
        "file:///etc/passwd?{number}",
        "https://crm.example/?q={number",
    ],
)
def test_templates_are_checked(template: str) -> None:
    with pytest.raises(ConfigError):
        render_url(template, number="1")
    with pytest.raises(ValidationError):
        HttpCrmSettings(by_number_url=template)


def test_settings_refuse_unknown_fields_and_http_without_its_section() -> None:
    with pytest.raises(ValidationError):
        HttpCrmSettings(by_number_url="https://x/{number}", field_map={"colour": "c"})
    with pytest.raises(ValidationError):
        CrmSettings(backend="http")
    with pytest.raises(ValidationError):
        WebhookEndpoint(url="https://hooks.example/")  # no secret


def test_ttl_cache_expires_and_evicts_the_least_recent() -> None:
    clock = ManualClock()
    cache = TtlCache(2, clock)
    one = Contact("1", "One")
    cache.put(("number", "1"), one, ttl=10)
    cache.put(("number", "2"), None, ttl=5)  # a cached "not found"
    assert cache.get(("number", "1")) == (True, one)
    assert cache.get(("number", "2")) == (True, None)
    clock.advance(5)
    assert cache.get(("number", "2")) == (False, None)
    cache.put(("number", "3"), None, ttl=10)
    cache.put(("number", "4"), None, ttl=10)  # evicts 1, the least recently used
    assert cache.get(("number", "1")) == (False, None)
    assert len(cache) == 2


# --- webhook signatures -----------------------------------------------------------

SECRET = b"a-webhook-secret-of-32-characters"


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    signed = build_signed(
        "call.ended",
        {"interaction_id": "i-1", "queue": "support", "caller_number": "0612345678"},
        SECRET,
        delivery_id="d-1",
        created_at=1_700_000_000.25,
        timestamp=1_700_000_001,
        sequence=7,
    )
    assert signed.body == (
        b'{"created_at":1700000000.25,"data":{"caller_number":"0612345678",'
        b'"interaction_id":"i-1","queue":"support"},"event":"call.ended","id":"d-1",'
        b'"sequence":7}'
    )
    expected = hmac.new(SECRET, b"1700000001." + signed.body, hashlib.sha256).hexdigest()
    assert signed.headers[SIGNATURE_HEADER] == f"sha256={expected}"
    assert signed.headers[TIMESTAMP_HEADER] == "1700000001"
    assert signed.headers[DELIVERY_HEADER] == "d-1"
    assert signed.headers["X-Callcenter-Event"] == "call.ended"


def test_verification_refuses_tampering_replays_and_other_secrets() -> None:
    signed = build_signed(
        "call.started", {"x": 1}, SECRET, delivery_id="d", created_at=0, timestamp=1_000
    )
    headers = signed.headers
    assert verify(SECRET, signed.body, headers, now=1_010)
    assert not verify(SECRET, signed.body.replace(b"1", b"2"), headers, now=1_010)
    assert not verify(b"another-secret-entirely!", signed.body, headers, now=1_010)
    # The same signature with a newer timestamp (a replay made to look fresh).
    assert not verify(SECRET, signed.body, {**headers, TIMESTAMP_HEADER: "1301"}, now=1_301)
    # The genuine request, too late.
    assert not verify(SECRET, signed.body, headers, now=1_000 + 301)
    assert not verify(SECRET, signed.body, {**headers, TIMESTAMP_HEADER: "-5"}, now=1_000)
    assert not verify(SECRET, signed.body, {SIGNATURE_HEADER: "sha256=00"}, now=1_000)
