from __future__ import annotations

from h5 import jssdk

J1_TICKET = "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg"


def test_j1_vector_verifies() -> None:
    assert jssdk.sign(ticket=J1_TICKET, noncestr="Wm3WZYTPz0wzccnW", timestamp=1414587457,
                      url="http://mp.weixin.qq.com?params=value") == "0f9de62fce790f9a083d5c99e95740ceb90c27ed"
    assert jssdk.sign(ticket=J1_TICKET, noncestr="Wm3WZYTPz0wzccnW", timestamp=1414587457,
                      url="http://mp.weixin.qq.com") == "f4d90daf4b3bca3078ab155816175ba34c443a7b"


def test_fragment_is_not_signed() -> None:
    assert jssdk.sign(ticket=J1_TICKET, noncestr="Wm3WZYTPz0wzccnW", timestamp=1414587457,
                      url="http://mp.weixin.qq.com?params=value#/section") == "0f9de62fce790f9a083d5c99e95740ceb90c27ed"


def test_config_shapes_use_their_own_ticket() -> None:
    config = jssdk.wx_config(corp_id="wwcorp", ticket="T-corp", url="https://desk/h5/sidebar", now=1700000000)
    agent = jssdk.agent_config(corp_id="wwcorp", agent_id="1000002", ticket="T-agent", url="https://desk/h5/sidebar",
                               now=1700000000)
    assert set(config) == {"beta", "debug", "appId", "timestamp", "nonceStr", "signature", "jsApiList"}
    assert config["signature"] == jssdk.sign(ticket="T-corp", noncestr=config["nonceStr"], timestamp=1700000000,
                                             url="https://desk/h5/sidebar")
    assert agent["signature"] == jssdk.sign(ticket="T-agent", noncestr=agent["nonceStr"], timestamp=1700000000,
                                            url="https://desk/h5/sidebar")
    assert (agent["corpid"], agent["agentid"], agent["jsApiList"]) == (
        "wwcorp", "1000002", ["getCurExternalContact", "selectExternalContact", "getContext"])
