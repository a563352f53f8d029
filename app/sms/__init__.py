"""Text messages to customers' mobiles (today: verification codes, through Tencent Cloud SMS)."""
