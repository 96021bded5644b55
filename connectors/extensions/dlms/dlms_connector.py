from tb_dlms.gateway.connector import DLMSConnector  # noqa: F401
