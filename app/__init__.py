"""Gongdan (工单): a helpdesk built around WeCom and WeChat."""

__version__ = "0.1.0"
