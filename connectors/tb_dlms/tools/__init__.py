"""Operator tools: pre-deploy check (test_config.py), meter discovery, fleet inventory.

They reuse the connector's own config schema and meter session, so a config that passes here is
exactly a config the connector accepts, and a meter that answers here answers the connector.
"""
