"""The lead model and its text rules, without a database."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import msgspec
import pytest

from app.errors import InvalidInput
from app.outbox.ingest import read_ndjson
from app.outbox.leads import TEXT_CAPS, clean_text, decode_lead, stored_row
from tests.outbox.conftest import lead, lead_json

MINIMAL = (
    b'{"id": "a1", "streamId": 5, "accountId": 9, "sourceType": "liker", '
    b'"matchConfidence": "low", "handle": "h"}'
)


def test_a_minimal_lead_decodes_with_nulls_for_what_is_missing() -> None:
    decoded = decode_lead(MINIMAL)

    assert decoded.stream_id == 5
    assert decoded.feedback_status is None
    assert decoded.bio is None
    assert decoded.discovered_at is None


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (b'"followers": 9223372036854775808', "<= 9223372036854775807"),
        (b'"followers": -1', ">= 0"),
        (b'"followers": 1.5', "got `float`"),
        (b'"streamId": 0', ">= 1"),
        (b'"sourceType": "viewer"', r"enum value .viewer. - at `\$.sourceType`"),
        (b'"feedbackStatus": "meh"', r"enum value .meh. - at `\$.feedbackStatus`"),
        (b'"discoveredAt": "2025-03-14T10:00:00"', "timezone"),
        (b'"segmentId": 4', "unknown field `segmentId`"),
        (b'"feedback_status": "good"', "unknown field `feedback_status`"),
        (b'"id": ""', "length >= 1"),
    ],
)
def test_an_invalid_field_is_refused_naming_it(change: bytes, complaint: str) -> None:
    line = MINIMAL[:-1] + b", " + change + b"}"

    with pytest.raises(msgspec.ValidationError, match=complaint):
        decode_lead(line)


def test_an_id_that_cannot_be_stored_exactly_is_refused() -> None:
    line = MINIMAL.replace(b'"a1"', b'"a\\u0000b"')

    with pytest.raises(msgspec.ValidationError, match="stored exactly"):
        decode_lead(line)


def test_a_lone_surrogate_escape_is_read_and_then_replaced() -> None:
    line = MINIMAL[:-1] + b', "bio": "broken \\ud83d here"}'

    decoded = decode_lead(line)

    assert decoded.bio == "broken \ud83d here"
    assert stored_row(decoded)[9] == "broken \ufffd here"


def test_bytes_that_are_not_utf8_become_replacement_characters() -> None:
    line = MINIMAL[:-1] + b', "displayName": "Ann\xff\xfe"}'

    decoded = decode_lead(line)

    assert decoded.display_name == "Ann\ufffd\ufffd"


def test_truly_malformed_json_keeps_the_parsers_message() -> None:
    with pytest.raises(msgspec.DecodeError, match="malformed"):
        decode_lead(b'{"id": "a1",, }')


def test_nan_is_not_accepted_by_the_lenient_reader() -> None:
    line = MINIMAL[:-1] + b', "bio": "\\udc00", "followers": NaN}'

    with pytest.raises(msgspec.DecodeError):
        decode_lead(line)


def test_nul_and_lone_surrogates_become_replacement_characters() -> None:
    assert clean_text("a\x00b\udfffc", 10) == "a\ufffdb\ufffdc"


def test_valid_text_of_any_script_is_kept_unchanged() -> None:
    text = "Zoë 👩‍💻 東京 مصممة Ελένη 🇫🇮 \u200b\t\x01"

    assert clean_text(text, 100) == text


def test_text_over_its_cap_is_cut_to_the_cap_ending_in_an_ellipsis() -> None:
    cut = clean_text("🎉" * 10, 4)

    assert cut == "🎉🎉🎉…"


def test_each_capped_field_is_cut_in_the_stored_row() -> None:
    long = "x" * 6000
    row = stored_row(
        lead("a", handle=long, display_name=long, profile_url=long, bio=long)
    )

    assert [len(value) for value in row[6:10]] == [  # type: ignore[arg-type]
        TEXT_CAPS["handle"],
        TEXT_CAPS["display_name"],
        TEXT_CAPS["profile_url"],
        TEXT_CAPS["bio"],
    ]


def test_ndjson_skips_blank_lines_and_a_leading_byte_order_mark() -> None:
    stream = io.BytesIO(b"\xef\xbb\xbf" + lead_json("a") + b"\n  \n" + lead_json("b"))

    leads = read_ndjson(stream)

    assert [item.id for item in leads] == ["a", "b"]


def test_ndjson_names_the_line_of_every_malformed_lead() -> None:
    stream = io.BytesIO(lead_json("a") + b"\n{oops\n" + lead_json("b") + b"[]\n")

    with pytest.raises(InvalidInput) as caught:
        read_ndjson(stream)

    assert [p.path for p in caught.value.problems] == ["line 3", "line 5"]


def test_ndjson_names_both_lines_of_a_repeated_id() -> None:
    stream = io.BytesIO(lead_json("a") + lead_json("b") + lead_json("a"))

    with pytest.raises(InvalidInput, match=r"line 3: lead id 'a' .*line 1"):
        read_ndjson(stream)


def test_discovered_at_keeps_its_instant_whatever_the_offset() -> None:
    line = MINIMAL[:-1] + b', "discoveredAt": "2025-03-14T12:00:00+02:00"}'

    decoded = decode_lead(line)

    assert decoded.discovered_at == datetime(2025, 3, 14, 10, 0, tzinfo=UTC)
