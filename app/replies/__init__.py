"""Canned replies (快捷回复): reusable answers staff insert when replying, shared or per skill group."""
