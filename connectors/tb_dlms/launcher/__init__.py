"""Run the ThingsBoard IoT Gateway with the DLMS connector (used by start_gateway.sh and the tests).

``python -m tb_dlms.launcher --config-dir DIR``: see :mod:`tb_dlms.launcher.run_gateway`; YAML -> JSON
config handling in :mod:`tb_dlms.launcher.config`.
"""
