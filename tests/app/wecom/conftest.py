from tests.wecomenv import wecom, wecom_server  # noqa: F401
