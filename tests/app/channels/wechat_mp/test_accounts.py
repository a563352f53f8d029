"""An account from the row the inbound job holds (issue 15): its secrets are decrypted once per row content, and a
changed secret is read again."""

from __future__ import annotations

from app.channels.models import ChannelAccount
from app.channels.wechat_mp import accounts

AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


async def test_from_row_decrypts_once_per_row_content(db: None) -> None:
    accounts.forget_cache()
    await accounts.upsert_account(key="main", name="主号", appid="wx0000000000000001", secret="s1", token="t1",
                                  aes_key=AES_KEY, template_id="TPL")
    row = await ChannelAccount.get(key="main")
    first = accounts.from_row(row)
    assert (first.account_id, first.key, first.appid, first.secret, first.template_id) == (
        row.id, "main", "wx0000000000000001", "s1", "TPL")
    assert first.callback.token == "t1"
    assert accounts.from_row(await ChannelAccount.get(key="main")) is first

    await accounts.upsert_account(key="main", name="主号", appid="wx0000000000000001", secret="s2", token="t1",
                                  aes_key=AES_KEY, template_id="TPL")
    changed = accounts.from_row(await ChannelAccount.get(key="main"))
    assert changed.secret == "s2"
    accounts.forget_cache()
    assert accounts.from_row(await ChannelAccount.get(key="main")) is not changed
