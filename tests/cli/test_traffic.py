"""Rates from two scrapes of the gateway's metrics, as `modelplane top` shows them."""

from __future__ import annotations

import math

import pytest

from modelplane.cli.traffic import parse, quantile, rates

M = 'model="default/iris",revision="iris-r1"'
D = "modelplane_gateway_request_duration_seconds_bucket"
BEFORE = f"""\
modelplane_gateway_requests_total{{{M},outcome="success"}} 100
modelplane_gateway_requests_total{{{M},outcome="error"}} 0
{D}{{{M},le="0.001"}} 50
{D}{{{M},le="0.01"}} 100
{D}{{{M},le="+Inf"}} 100
modelplane_gateway_in_flight_requests{{{M}}} 0
"""
AFTER = f"""\
modelplane_gateway_requests_total{{{M},outcome="success"}} 290
modelplane_gateway_requests_total{{{M},outcome="error"}} 10
modelplane_gateway_requests_total{{model="default/iris",revision="-",outcome="client_error"}} 7
{D}{{{M},le="0.001"}} 50
{D}{{{M},le="0.01"}} 250
{D}{{{M},le="+Inf"}} 300
modelplane_gateway_in_flight_requests{{{M}}} 3
"""


def test_rates_between_two_scrapes() -> None:
    found = rates(parse(BEFORE, 10.0), parse(AFTER, 12.0))
    assert set(found) == {("default/iris", "iris-r1")}  # refused requests have no revision
    iris = found["default/iris", "iris-r1"]
    assert iris.requests_per_second == pytest.approx(100.0)  # 200 requests in 2 s
    assert iris.error_rate == pytest.approx(0.05)
    # Of the 200 new requests, 150 took 1-10 ms and 50 longer than the last bound.
    assert iris.p50_seconds == pytest.approx(0.001 + 0.009 * (100 / 150))
    assert iris.p99_seconds == pytest.approx(0.01)  # beyond the last finite bucket
    assert iris.in_flight == 3


def test_quantile_of_nothing_is_unknown() -> None:
    assert quantile(0.5, {}) is None
    assert quantile(0.5, {0.1: 0.0, math.inf: 0.0}) is None
    assert quantile(0.5, {0.1: 4.0, math.inf: 4.0}) == pytest.approx(0.05)
