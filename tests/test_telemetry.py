"""Telemetry: validation, camelCase loading, derived timings."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from otm import Telemetry

OTM_RECORD = {
    "platform": "chatgpt",
    "startTime": 1768306662.601,
    "firstTokenTime": 1768306664.028,
    "lastTokenTime": 1768306671.969,
    "inputTokens": 10,
    "outputTokens": 309,
    "inputTextLength": 20,
    "outputTextLength": 1235,
}


def test_loads_camelcase_collector_record() -> None:
    t = Telemetry.model_validate(OTM_RECORD)
    assert t.provider == "chatgpt"
    assert t.input_tokens == 10 and t.output_tokens == 309
    assert t.input_text_length == 20 and t.output_text_length == 1235
    assert t.ttft_s == pytest.approx(1.427, abs=1e-6)
    assert t.decode_s == pytest.approx(7.941, abs=1e-6)
    assert t.duration_s == pytest.approx(9.368, abs=1e-6)
    # distinct first/last token times mean it was streamed, flag or not
    assert t.itl_s == pytest.approx(7.941 / 308, rel=1e-6)
    assert t.output_tps == pytest.approx(308 / 7.941, rel=1e-6)


def test_snake_case_round_trip() -> None:
    t = Telemetry.model_validate(OTM_RECORD)
    again = Telemetry.model_validate(t.model_dump())
    assert again == t


def test_millisecond_timestamps_are_normalised() -> None:
    rec = dict(OTM_RECORD, startTime=1768306662601, firstTokenTime=1768306664028, lastTokenTime=1768306671969)
    t = Telemetry.model_validate(rec)
    assert t.start_time == pytest.approx(1768306662.601)
    assert t.ttft_s == pytest.approx(1.427, abs=1e-3)


@pytest.mark.parametrize(
    "bad",
    [
        {"inputTokens": -1},
        {"outputTokens": -5},
        {"startTime": float("nan")},
        {"startTime": float("inf")},
        {"lastTokenTime": 1768306663.0},  # before the first token
        {"firstTokenTime": 1768306660.0},  # before the start
        {"outputTokens": 2.5},
        {"cached_input_tokens": 11},  # more cached than input
        {"reasoning_tokens": 400},  # more reasoning than output
    ],
)
def test_bad_input_is_a_clear_validation_error(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError) as err:
        Telemetry.model_validate({**OTM_RECORD, **bad})
    assert err.value.error_count() >= 1


def test_partial_records_are_allowed() -> None:
    t = Telemetry.model_validate({"inputTokens": 5, "outputTokens": 7})
    assert t.ttft_s is None and t.duration_s is None and t.itl_s is None and t.output_tps is None
    t2 = Telemetry(start_time=100.0, end_time=102.0, output_tokens=3)
    assert t2.duration_s == pytest.approx(2.0)
    assert t2.decode_s is None


def test_non_streamed_has_no_inter_token_latency() -> None:
    t = Telemetry(start_time=1.0, first_token_time=3.0, last_token_time=3.0, output_tokens=50, streamed=False)
    assert t.itl_s is None
    assert t.ttft_s == pytest.approx(2.0)


@given(
    start=st.floats(1e9, 2e9),
    ttft=st.floats(0, 100),
    decode=st.floats(0, 1000),
    out=st.integers(0, 100_000),
    inp=st.integers(0, 1_000_000),
)
def test_derived_timings_are_consistent(start: float, ttft: float, decode: float, out: int, inp: int) -> None:
    t = Telemetry(
        start_time=start,
        first_token_time=start + ttft,
        last_token_time=start + ttft + decode,
        output_tokens=out,
        input_tokens=inp,
        streamed=True,
    )
    assert t.ttft_s is not None and t.ttft_s >= 0
    assert t.duration_s is not None and t.decode_s is not None
    assert t.duration_s == pytest.approx(t.ttft_s + t.decode_s, abs=1e-6)
    if t.itl_s is not None:
        assert math.isfinite(t.itl_s) and t.itl_s >= 0
        assert out >= 2


def test_hidden_reasoning_is_not_part_of_inter_token_latency() -> None:
    # 300 hidden reasoning tokens happen before the first visible token; the
    # 50 visible ones were streamed over 0.49 s.
    hidden = Telemetry(
        start_time=0.0, first_token_time=5.0, last_token_time=5.49,
        output_tokens=350, reasoning_tokens=300, streamed=True,
    )
    assert hidden.visible_output_tokens == 50
    assert hidden.itl_s == pytest.approx(0.01)
    # Streamed thinking (anthropic) is part of the decode stream.
    shown = hidden.model_copy(update={"reasoning_streamed": True})
    assert shown.visible_output_tokens == 350
    assert shown.itl_s == pytest.approx(0.49 / 349)
