"""Values ThingsBoard would refuse as too large are taken out of what goes to the gateway."""
from __future__ import annotations

from thingsboard_gateway.gateway.entities.converted_data import ConvertedData
from thingsboard_gateway.gateway.entities.datapoint_key import DatapointKey
from thingsboard_gateway.gateway.entities.telemetry_entry import TelemetryEntry

from tb_dlms.gateway.payload_limit import datapoint_bytes, gateway_limit, is_empty, within_limit


def data(**values) -> ConvertedData:
    out = ConvertedData("Meter 1", "dlms-meter")
    out.add_to_telemetry(TelemetryEntry({DatapointKey(k): v for k, v in values.items()}, 1000))
    out.add_to_attributes(DatapointKey("serial"), "x" * 5000)
    return out


def test_only_the_oversized_values_go():
    kept, dropped = within_limit(data(voltageL1=230.1, blob="a" * 9000), 4096)
    assert [(o.key, o.limit) for o in dropped] == [("blob", 4096), ("serial", 4096)]
    assert dropped[0].size == datapoint_bytes("blob", "a" * 9000) > 9000
    assert [e.values for e in kept.telemetry] == [{DatapointKey("voltageL1"): 230.1}]
    assert kept.telemetry[0].ts == 1000 and not kept.attributes.values
    assert "Meter 1: value of blob is" in dropped[0].describe("Meter 1")


def test_data_within_the_limit_is_handed_on_as_it_is():
    original = data(voltageL1=230.1)
    kept, dropped = within_limit(original, 65536)
    assert kept is original and dropped == []
    assert is_empty(within_limit(data(blob="a" * 9000), 100)[0])


def test_the_limit_comes_from_the_gateway_or_its_client_default():
    class Gateway:
        def get_max_payload_size_bytes(self):
            return 58982

    assert gateway_limit(Gateway()) == 58982
    assert gateway_limit(object()) == 8196
