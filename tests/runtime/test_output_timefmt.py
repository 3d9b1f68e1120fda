"""time() / strftime() text, including bpftrace's %f (microseconds) extension."""

from __future__ import annotations

import datetime
import re
import time

import pytest

from runtime.output import OutputError, make_output
from runtime.output.jsonl import value_json
from runtime.output.text import value_line
from runtime.output.timefmt import (
    TIME_DEFAULT_FORMAT,
    boot_ns_to_epoch_ns,
    monotonic_ns_to_epoch_ns,
    strftime_text,
    time_text,
)
from runtime.output.values import Timestamp


def test_microseconds_extension_like_bpftrace():
    # bpftrace tests/runtime/call strftime_microsecond_extension(_rollover)
    a, b = strftime_text("1%f", 1000123000), strftime_text("1%f", 0)
    assert int(a) - int(b) == 123
    a = strftime_text("1%f", 1000000123000)
    assert int(a) - int(b) == 123
    assert strftime_text("%f", 999_999_999) == "999999"


def test_percent_percent_f_is_literal():
    assert strftime_text("%%f %f", 5_000, utc=True) == "%f 000005"


def test_utc_fields():
    ns = (86400 + 3600 + 61) * 10**9 + 250_000_000
    assert strftime_text("%Y-%m-%d %H:%M:%S.%f", ns, utc=True) == "1970-01-02 01:01:01.250000"


def test_local_time_agrees_with_datetime():
    ns = 1_764_000_000 * 10**9 + 42_000
    want = datetime.datetime.fromtimestamp(ns // 10**9).strftime("%Y-%m-%d %H:%M:%S")
    assert strftime_text("%Y-%m-%d %H:%M:%S", ns) == want


def test_time_default_format():
    assert TIME_DEFAULT_FORMAT == "%H:%M:%S\n"
    assert re.fullmatch(r"[0-9]{2}:[0-9]{2}:[0-9]{2}\n", time_text())
    assert time_text("%Y", 0) == time.strftime("%Y", time.localtime(0))


def test_clock_conversions_land_on_now():
    now = time.time_ns()
    boot = boot_ns_to_epoch_ns(time.clock_gettime_ns(time.CLOCK_BOOTTIME))
    mono = monotonic_ns_to_epoch_ns(time.monotonic_ns())
    assert abs(boot - now) < 10**9 and abs(mono - now) < 10**9


def test_timestamp_values_print_formatted():
    ts = Timestamp("%m/%d/%y", 0)
    assert re.fullmatch(r"[0-9]{2}/[0-9]{2}/[0-9]{2}\n", value_line(ts))
    assert re.fullmatch(r'\[1,"[0-9]{2}/[0-9]{2}/[0-9]{2}"\]', value_json((1, ts)))


def test_unknown_output_format_is_a_one_line_error():
    with pytest.raises(OutputError, match="unknown output format 'yaml'"):
        make_output("yaml", None)  # type: ignore[arg-type]
