"""The intake decision on the staff timeline: where a ticket came from and which rule did what, in Chinese."""

from __future__ import annotations

from h5.views import created_text


def test_the_created_entry_says_where_from_and_what_each_rule_did() -> None:
    data = {"source": "wechat_mp", "reason": "keyword", "matched": ["投诉优先", "VIP 提升优先级", "非工作时间"],
            "steps": [{"rule": "投诉优先", "group": "售后组", "priority": "high"},
                      {"rule": "VIP 提升优先级", "priority": "urgent", "tags": ["VIP"]},
                      {"rule": "非工作时间", "after_hours_until": "2026-12-05T01:00:00+00:00",
                       "auto_reply": "您好，现在是非工作时间……", "stop": True}],
            "result": {"group": "售后组"}}
    assert created_text(data) == ("创建了工单（来源：公众号）· 路由：投诉优先（技能组 售后组，优先级 高）；"
                                  "VIP 提升优先级（优先级 紧急，标签 VIP）；非工作时间（非工作时间排队，自动回复）")
    assert created_text({"source": "api", "steps": []}) == "创建了工单（来源：接口）· 路由：未命中路由规则"
