"""Constants shared by the simulator tests (imported by bare name: tests/simulator is not a package)."""

from __future__ import annotations

APPID = "wx1234567890abcdef"
SECRET = "s3cret-0123456789"
TOKEN = "simtoken"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
OPENID = "oCustomer000000000000000001"
