"""Package surface and small building blocks: exports, clock, faults, XML helpers."""

from __future__ import annotations

import time

import pytest

import simulator
from simulator.clock import Clock
from simulator.faults import Fault, FaultTable, normalize_path
from simulator.mp.xml import cdata, element_to_dict, parse_xml, render_xml


def test_exports() -> None:
    assert simulator.__all__ == [
        "Attempt",
        "Clock",
        "DeliveryResult",
        "Fault",
        "MPAccount",
        "MPUser",
        "PassiveReply",
        "SentMessage",
        "SimulatorServer",
        "SimulatorState",
        "WeChatDriver",
        "build_demo_state",
        "create_simulator_app",
    ]
    for name in simulator.__all__:
        assert getattr(simulator, name).__module__.startswith("simulator.")


def test_clock_moves_without_sleeping() -> None:
    clock = Clock(start=1_700_000_000, frozen=True)
    assert clock.now() == 1_700_000_000
    assert clock.advance(49 * 3600) == 1_700_000_000 + 49 * 3600
    clock.unfreeze()
    assert clock.now() >= 1_700_000_000 + 49 * 3600
    clock.reset()
    assert abs(clock.now() - time.time()) < 1
    running = Clock()
    running.advance(60)
    assert running.now() - time.time() == pytest.approx(60, abs=1)


def test_fault_table_order_and_counts() -> None:
    table = FaultTable()
    table.inject("*", {"errcode": -1})
    table.inject("mp:message/custom/send", Fault(errcode=45009), times=2)
    table.inject("/cgi-bin/message/custom/send", {"http_status": 502})
    assert table.take("message/custom/send", scope="mp") == Fault(errcode=45009)
    assert table.take("message/custom/send", scope="mp") == Fault(errcode=45009)
    assert table.take("message/custom/send", scope="mp") == Fault(http_status=502)
    assert table.take("message/custom/send", scope="mp") == Fault(errcode=-1)
    assert table.take("message/custom/send", scope="mp") is None
    assert normalize_path("/cgi-bin/token/") == "token"
    with pytest.raises(ValueError):
        Fault.from_mapping({})
    with pytest.raises(ValueError):
        table.inject("token", {"errcode": 1}, times=0)


def test_xml_helpers() -> None:
    xml = render_xml([("Content", "a]]>b <&>"), ("CreateTime", 5), ("Location_X", 1.5)])
    assert xml == (
        "<xml><Content><![CDATA[a]]]]><![CDATA[>b <&>]]></Content><CreateTime>5</CreateTime>"
        "<Location_X>1.5</Location_X></xml>"
    )
    assert element_to_dict(parse_xml(xml)) == {"Content": "a]]>b <&>", "CreateTime": "5", "Location_X": "1.5"}
    assert cdata("") == "<![CDATA[]]>"
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]><xml>&b;</xml>'
    with pytest.raises(Exception, match=r"(?i)entit"):
        parse_xml(bomb)
