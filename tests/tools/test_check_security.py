"""test_config.py probing every HLS mechanism and security suite (issue 15), and diagnosing a wrong
secret per mechanism by name, against simulated meters over real sockets."""
from __future__ import annotations

import json

import pytest

from tools_support import device, make_config_dir
from tb_dlms.simulator import MeterSpec, Simulator, keys
from tb_dlms.simulator.client_config import connection_for
from tb_dlms.tools import check

#: name -> (auth, suite, policy, title)
MECHANISMS = {
    "hls": ("high", 0, None, "HLS (manufacturer-specific)"),
    "md5": ("high_md5", 0, None, "HLS-MD5"),
    "sha1": ("high_sha1", 0, "authentication", "HLS-SHA1"),
    "sha256": ("high_sha256", 0, None, "HLS-SHA256"),
    "gmac": ("high_gmac", 0, None, "HLS-GMAC"),
    "gmac2": ("high_gmac", 2, None, "HLS-GMAC"),
    "ecdsa1": ("high_ecdsa", 1, None, "HLS-ECDSA"),
    "ecdsa2": ("high_ecdsa", 2, "authentication_encryption", "HLS-ECDSA"),
}
SECRET_BASED = ("hls", "md5", "sha1", "sha256")
WRONG = "wrong-secret-value"


@pytest.fixture(scope="module")
def meters():
    specs = [MeterSpec(name, auth=auth, security_suite=suite, security_policy=policy)
             for name, (auth, suite, policy, _) in MECHANISMS.items()]
    specs += [MeterSpec(f"wrong-{name}", auth=MECHANISMS[name][0]) for name in SECRET_BASED]
    specs.append(MeterSpec("wrong-ecdsa", auth="high_ecdsa", security_suite=1, client_key_label="another client"))
    with Simulator(specs) as s:
        yield s


def probe(capsys, config) -> tuple[int, dict]:
    code = check.main(["--config-dir", str(config), "--json"])
    return code, json.loads(capsys.readouterr().out)


def _device(meters, name: str, key_dir, **override) -> dict:
    spec = meters.meter(name).spec
    conn = connection_for(spec, meters.port_of(name), key_dir)
    conn.pop("host"), conn.pop("port")
    conn.update(override)
    return device(name, meters.port_of(name), **conn)


def test_every_mechanism_and_suite_probes_ok(meters, tmp_path, token, capsys):
    config = make_config_dir(tmp_path, [_device(meters, name, tmp_path / "keys") for name in MECHANISMS])
    code, report = probe(capsys, config)
    statuses = {m["device"]: (m["status"], m.get("diagnosis")) for m in report["meters"]}
    assert code == 0, statuses
    assert all(status == "ok" for status, _ in statuses.values()), statuses


def test_ecdsa_keys_from_environment_variables(meters, tmp_path, token, capsys, monkeypatch):
    monkeypatch.setenv("TB_TEST_SIGNING_KEY", keys.private_pem(keys.CLIENT, 1).decode())
    monkeypatch.setenv("TB_TEST_METER_KEY", keys.public_pem("ecdsa1", 1).decode())
    d = _device(meters, "ecdsa1", tmp_path / "keys")
    d["connection"]["security"].update(signingKey="${TB_TEST_SIGNING_KEY}", meterPublicKey="${TB_TEST_METER_KEY}")
    code, report = probe(capsys, make_config_dir(tmp_path, [d]))
    assert code == 0, report
    assert "PRIVATE KEY" not in json.dumps(report)


@pytest.mark.parametrize("name", SECRET_BASED)
def test_wrong_secret_is_diagnosed_naming_the_mechanism(meters, tmp_path, token, capsys, name):
    config = make_config_dir(tmp_path, [_device(meters, f"wrong-{name}", tmp_path / "keys", password=WRONG)])
    code, report = probe(capsys, config)
    assert code == check.EXIT_METER
    diagnosis = report["meters"][0]["diagnosis"]
    title = MECHANISMS[name][3]
    assert diagnosis["kind"] == "authentication", diagnosis
    assert diagnosis["cause"] == f"{title} authentication failed: check the secret" + (
        " (password) and systemTitle" if name == "sha256" else ""), diagnosis
    assert WRONG not in json.dumps(report), "secrets never printed"


def test_ecdsa_key_the_meter_does_not_know_is_diagnosed(meters, tmp_path, token, capsys):
    d = _device(meters, "wrong-ecdsa", tmp_path / "keys")
    # our key pair, not the one this meter was given
    (tmp_path / "keys" / "wrong-ecdsa.client.pem").write_bytes(keys.private_pem(keys.CLIENT, 1))
    code, report = probe(capsys, make_config_dir(tmp_path, [d]))
    assert code == check.EXIT_METER
    diagnosis = report["meters"][0]["diagnosis"]
    assert diagnosis["cause"].startswith("HLS-ECDSA authentication failed: check signingKey"), diagnosis


def test_ecdsa_key_on_the_wrong_curve_is_a_config_error(meters, tmp_path, token, capsys):
    d = _device(meters, "ecdsa2", tmp_path / "keys")
    (tmp_path / "keys" / "ecdsa2.client.pem").write_bytes(keys.private_pem(keys.CLIENT, 1))
    code = check.main(["--config-dir", str(make_config_dir(tmp_path, [d]))])
    out = capsys.readouterr().out
    assert code != 0
    assert "security.signingKey" in out and "P-384" in out, out
    assert "BEGIN" not in out


def _discover_args(conn: dict) -> list[str]:
    """The --discover options that give ``conn`` (what an operator types for that meter)."""
    args = ["--auth", conn["authentication"], "--client", str(conn["clientAddress"])]
    if "password" in conn:
        args += ["--password", conn["password"]]
    flags = {"systemTitle": "--system-title", "blockCipherKey": "--block-cipher-key",
             "authenticationKey": "--authentication-key", "suite": "--suite", "policy": "--policy",
             "signingKey": "--signing-key", "meterPublicKey": "--meter-public-key"}
    for key, value in conn.get("security", {}).items():
        if key in flags:
            args += [flags[key], str(value)]
    return args


@pytest.mark.parametrize("name", list(MECHANISMS))
def test_discover_takes_every_mechanism_and_suite(meters, tmp_path, capsys, name):
    """--discover reaches each mechanism's meter with the options alone, and prints an entry the
    schema accepts with the same mechanism (before: --auth took none, low and high_gmac only)."""
    spec = meters.meter(name).spec
    conn = connection_for(spec, meters.port_of(name), tmp_path / "keys")
    code = check.main(["--discover", f"127.0.0.1:{meters.port_of(name)}", "--name", name, *_discover_args(conn)])
    out = capsys.readouterr()
    assert code == 0, out.err
    entry = json.loads(out.out)
    assert entry["connection"]["authentication"] == spec.auth
    from tb_dlms.config import load_connector_config

    config, errors = load_connector_config({"devices": [entry]})
    assert errors == [] and config.devices[0].connection.authentication.value == spec.auth
    if spec.security_suite:
        assert config.devices[0].connection.security.suite == spec.security_suite
